/* fuzz-scenario - the scenario loader over arbitrary bytes.
 *
 * The input is a scenario file.  Whatever it holds, the loader either
 * returns scenarios that keep the promises cmlab-sim relies on (at least
 * one site and population, exactly one top-level site, a sorted timeline,
 * bounded counts and samples), or refuses with a message that names the
 * file; nothing crashes or leaks.  The first bytes are also tried as a
 * duration. */
#include <stdint.h>
#include <string.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const CmScenario *s)
{
    guint64 devices = 0;
    guint top = 0;

    g_assert(s->name != NULL && s->description != NULL && s->full_size != NULL);
    g_assert(s->variant_label != NULL && s->variant != NULL);
    g_assert(s->duration > 0);
    g_assert(s->sample > 0 && s->sample <= s->duration);
    g_assert(s->sites->len >= 1 && s->populations->len >= 1);
    for (guint i = 0; i < s->sites->len; i++) {
        const CmScnSite *site = g_ptr_array_index(s->sites, i);
        g_assert(strlen(site->code) == 3 && site->segment != NULL && site->publish_to != NULL);
        g_assert(site->workers >= 1 && site->queue_limit >= 1);
        top += site->top_level ? 1 : 0;
    }
    g_assert(top == 1);
    for (guint i = 0; i < s->mps->len; i++) {
        const CmScnMp *mp = g_ptr_array_index(s->mps, i);
        g_assert(mp->site != NULL && mp->segment != NULL);
    }
    for (guint i = 0; i < s->populations->len; i++) {
        const CmScnPopulation *p = g_ptr_array_index(s->populations, i);
        g_assert(p->count >= 1 && p->segment != NULL && p->domain != NULL);
        g_assert((p->forest == NULL) == (*p->domain == '\0'));
        g_assert(p->start <= s->duration && p->policy_interval > 0);
        devices += p->count;
    }
    for (guint i = 0; i < s->attackers->len; i++) {
        const CmScnAttacker *a = g_ptr_array_index(s->attackers, i);
        g_assert(a->count >= 1 && a->segment != NULL && a->params != NULL);
        g_assert(a->stop == 0 || a->stop > a->start);
        devices += a->count;
    }
    g_assert(devices <= CM_SCENARIO_MAX_DEVICES);
    for (guint i = 0; i < s->events->len; i++) {
        const CmScnEvent *ev = g_ptr_array_index(s->events, i);
        g_assert(ev->at >= 0 && ev->at <= s->duration);
        g_assert(ev->fraction > 0 && ev->fraction <= 1);
        if (i > 0)
            g_assert(((const CmScnEvent *)g_ptr_array_index(s->events, i - 1))->at <= ev->at);
    }
    for (guint i = 0; i < s->expects->len; i++) {
        const CmScnExpect *x = g_ptr_array_index(s->expects, i);
        g_assert(x->metric != NULL && x->text != NULL);
        g_assert((x->when_variant == NULL) == (x->when_value == NULL));
        g_assert(cm_scn_cmp_name(x->op)[0] != '?');
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    GPtrArray *all;
    char text[64];
    CmTime t;

    all = cm_scenario_load_data("fuzz.scn", (const char *)data, size, 1.0, &error);
    if (all != NULL) {
        g_assert(error == NULL);
        g_assert(all->len >= 1 && all->len <= CM_SCENARIO_MAX_VARIANTS);
        for (guint i = 0; i < all->len; i++)
            check(g_ptr_array_index(all, i));
        g_ptr_array_unref(all);
    } else {
        g_assert(error != NULL);
        g_assert(g_str_has_prefix(error->message, "fuzz.scn: "));
        g_error_free(error);
    }

    /* The duration parser alone, on the first bytes as a string. */
    size = MIN(size, sizeof text - 1);
    memcpy(text, data, size);
    text[size] = '\0';
    if (cm_scn_parse_duration(text, &t, NULL))
        g_assert(t >= 0);
    return 0;
}
