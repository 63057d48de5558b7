/*
 * The "log" handler: one line per entry on stdout, the entry as a JSON object
 *     {"stream":"events","id":"1-0","delivery":1,"fields":{"message":"Message #1",...}}
 * as the Go demo printed each message it processed, but machine-readable and binary-safe.
 *
 * DESIGN: the line is built outside any lock (rs_entry_to_json), then written with one fwrite
 * and flushed under the FILE's own lock (flockfile), so lines from concurrent workers (and
 * from other streams' log handlers, which share stdout) never interleave, even for a 1 MiB
 * value that a single write(2) to a pipe would not keep atomic. A failed
 * write (stdout closed, disk full) is a retryable failure: the entry stays pending.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

typedef struct {
    rs_handler_t base;
    FILE *out; /* borrowed */
} log_handler_t;

static rs_outcome_t log_handle(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                               rs_handler_report_t *report)
{
    (void)worker;
    log_handler_t *lh = (log_handler_t *)h;
    size_t len;
    char *line = rs_entry_to_json(e, &len);
    if (line == NULL) {
        snprintf(report->error, sizeof(report->error), "out of memory encoding the entry");
        return RS_OUTCOME_RETRY;
    }
    line[len++] = '\n'; /* replaces the terminating NUL, which fwrite does not need */
    /* stdout's own lock spans both calls, so a line is never split by another's flush. */
    flockfile(lh->out);
    int ok = fwrite(line, 1, len, lh->out) == len && fflush(lh->out) == 0;
    int saved = errno;
    funlockfile(lh->out);
    free(line);
    if (!ok) {
        snprintf(report->error, sizeof(report->error), "writing to stdout: %s", strerror(saved));
        return RS_OUTCOME_RETRY;
    }
    return RS_OUTCOME_SUCCESS;
}

static void log_free(rs_handler_t *h)
{
    free(h);
}

static const rs_handler_ops_t log_ops = {"log", log_handle, log_free};

rs_handler_t *rs_handler_log_new(FILE *out, rs_logger_t *log)
{
    log_handler_t *lh = calloc(1, sizeof(*lh));
    if (lh == NULL)
        return NULL;
    lh->base.ops = &log_ops;
    lh->base.log = log;
    lh->out = out;
    return &lh->base;
}
