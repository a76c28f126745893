/* fuzz-agent - every response body the client agent parses.
 *
 * The input is a chain of MP responses separated by a line "--".  An agent
 * is installed with a fixed trusted root key; each chunk answers the
 * request it has in flight with status 200 and the chunk as the body.  A
 * chunk of "!" answers 503 with Retry-After, "#" is a transport failure.
 * The corpus chains (tests/fuzz/corpus/agent) carry a real MP certificate
 * signed with that key, a site signing certificate and signed policies, so
 * the fuzzer starts from every state of the lifecycle. */
#include <stdint.h>
#include <string.h>

#include "cmagent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The corpus was made with this key's private half (not in the tree). */
static const char trk_hex[] = "3059301306072A8648CE3D020106082A8648CE3D03010703420004E7877B6436D176169C2208A287832C1F7CB797F222C879203FF7235B4099A3E5D5EB78AD5CEA252818AADB42633108AD4AFF52D35A7F1EE58A44E98AD23017FA";

/* 2030-01-01: inside the corpus certificates' validity. */
#define NOW (G_GINT64_CONSTANT(1893456000) * CM_USEC_PER_SEC)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CmAgentConfig cfg;
    CmAgentActions act;
    CmAgent *agent;
    CmRng rng;
    CmTime now = NOW;
    g_autofree char *text = g_strndup((const char *)data, size);
    g_auto(GStrv) chunks = g_strsplit(text, "\n--\n", 64);

    cm_agent_config_default(&cfg);
    cfg.name = "FUZZ01";
    cfg.smssitecode = "PS1";
    cfg.smspublicrootkey = trk_hex;
    cfg.mp = "mp1.corp.example";
    cm_rng_init_seeded(&rng, 1, 1);
    agent = cm_agent_new(&cfg, &rng, now, NULL);
    g_assert(agent != NULL);
    cm_agent_actions_init(&act);
    cm_agent_start(agent, now, &act);
    for (guint i = 0; chunks[i] != NULL; i++) {
        CmAgentSend *send;
        CmResponse resp = {0};

        if (act.sends->len == 0) {
            /* Nothing in flight: fire its timer, which sends the next. */
            if (act.wake_at == 0)
                break;
            now = MAX(now, act.wake_at);
            act.wake_at = 0;
            cm_agent_on_timer(agent, now, &act);
            if (act.sends->len == 0)
                break;
        }
        send = g_ptr_array_index(act.sends, 0);
        if (strcmp(chunks[i], "#") == 0) {
            cm_agent_on_response(agent, send->id, NULL, now, &act);
        } else if (strcmp(chunks[i], "!") == 0) {
            cm_response_refuse(&resp, CM_REASON_BUSY, "busy");
            resp.retry_after = 10 * CM_USEC_PER_SEC;
            cm_agent_on_response(agent, send->id, &resp, now, &act);
        } else {
            resp.status = 200;
            resp.body = g_bytes_new(chunks[i], strlen(chunks[i]));
            cm_agent_on_response(agent, send->id, &resp, now, &act);
        }
        cm_response_clear(&resp);
        g_ptr_array_remove_index(act.sends, 0);
    }
    /* Whatever came in, the agent is in a named state. */
    g_assert(cm_agent_state_name(cm_agent_status(agent)->state) != NULL);
    cm_agent_actions_clear(&act);
    cm_agent_free(agent);
    return 0;
}
