/* placeholder */
#include "scenario.h"
