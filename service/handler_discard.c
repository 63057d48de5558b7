/*
 * The "discard" handler: succeeds at once without output, so the entry is acknowledged. It
 * measures the service itself (reading, queueing, acknowledging) in benchmarks, and drains
 * streams whose content is not wanted.
 */

#include <stdlib.h>

#include "handler.h"

static rs_outcome_t discard_handle(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                                   rs_handler_report_t *report)
{
    (void)h, (void)worker, (void)e, (void)report;
    return RS_OUTCOME_SUCCESS;
}

static void discard_free(rs_handler_t *h)
{
    free(h);
}

static const rs_handler_ops_t discard_ops = {"discard", discard_handle, discard_free};

rs_handler_t *rs_handler_discard_new(rs_logger_t *log)
{
    rs_handler_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->ops = &discard_ops;
    h->log = log;
    return h;
}
