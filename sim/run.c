/* run.c - one agent, delivered to synchronously. */
#include "cmsim.h"

guint
cm_sim_run_agent(CmAgent *agent, CmTime *now, CmTime until, guint max_steps,
                 CmSimDeliverFn deliver, void *ctx)
{
    CmAgentActions act;
    guint steps = 0, delivered = 0;

    cm_agent_actions_init(&act);
    if (cm_agent_status(agent)->state == CM_AGENT_INSTALLED)
        cm_agent_start(agent, *now, &act);
    else
        cm_agent_on_timer(agent, *now, &act);
    while (steps++ < max_steps) {
        if (act.sends->len > 0) {
            /* The agent may append to sends while answering: keep the
             * pointer, remove by index once it is done with. */
            CmAgentSend *send = g_ptr_array_index(act.sends, 0);
            CmResponse resp = {0};
            CmRequest req;

            cm_agent_send_request(send, &req);
            if (deliver(ctx, send, &req, &resp, *now)) {
                delivered++;
                cm_agent_on_response(agent, send->id, &resp, *now, &act);
            } else {
                cm_agent_on_response(agent, send->id, NULL, *now, &act);
            }
            cm_response_clear(&resp);
            g_ptr_array_remove_index(act.sends, 0);
            continue;
        }
        if (act.wake_at == 0 || act.wake_at > until)
            break;
        if (act.wake_at > *now)
            *now = act.wake_at;
        act.wake_at = 0;
        cm_agent_on_timer(agent, *now, &act);
    }
    cm_agent_actions_clear(&act);
    return delivered;
}
