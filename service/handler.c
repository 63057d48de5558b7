/*
 * Handler construction and dispatch.
 *
 * DESIGN: a vtable per kind (rs_handler_ops_t) behind one small struct, so the worker loop
 * never knows which kinds exist and a new kind touches only its own file and the switch in
 * rs_handler_new().
 */

#include "handler.h"

#include <stdio.h>

rs_handler_t *rs_handler_new(const rs_stream_config_t *sc, const rs_handler_env_t *env, char *err,
                             size_t errlen)
{
    rs_logger_t *log = env->log;
    rs_handler_t *h = NULL;
    switch (sc->handler) {
    case RS_HANDLER_LOG:
        h = rs_handler_log_new(env->out, log);
        break;
    case RS_HANDLER_DISCARD:
        h = rs_handler_discard_new(log);
        break;
    case RS_HANDLER_EXEC:
        /* These two say why themselves (libcurl setup, say), not only "out of memory". */
        return rs_handler_exec_new(sc, log, err, errlen);
    case RS_HANDLER_HTTP:
        return rs_handler_http_new(sc, env->workers, log, err, errlen);
    }
    if (h == NULL)
        snprintf(err, errlen, "stream %s: cannot create the %s handler: out of memory", sc->name,
                 rs_handler_kind_name(sc->handler));
    return h;
}

rs_outcome_t rs_handler_handle(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                               rs_handler_report_t *report)
{
    report->error[0] = '\0';
    report->retry_after_ms = 0;
    return h->ops->handle(h, worker, e, report);
}

void rs_handler_free(rs_handler_t *h)
{
    if (h != NULL)
        h->ops->free(h);
}
