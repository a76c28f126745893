/* placeholder */
#include "report.h"
