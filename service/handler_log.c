/*
 * The "log" handler: one line per entry on stdout, the entry as a JSON object
 *     {"stream":"events","id":"1-0","delivery":1,"fields":{"message":"Message #1",...}}
 * as the Go demo printed each message it processed, but machine-readable and binary-safe.
 *
 * DESIGN: the line is built outside any lock (rs_entry_to_json), then handed whole to the
 * service's stdout output (output.h), which writes it with write(2) under its own mutex: lines
 * from concurrent workers, and from other streams' log handlers sharing stdout, never
 * interleave, even for a 1 MiB value that one write(2) to a pipe would not keep whole, and
 * nothing is left in a stdio buffer when the entry is acknowledged. A failed write (stdout
 * closed, disk full) is a retryable failure.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

typedef struct {
    rs_handler_t base;
    rs_output_t *out; /* borrowed */
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
    line[len++] = '\n'; /* replaces the terminating NUL, which write(2) does not need */
    int rc = rs_output_write(lh->out, line, len);
    int saved = errno;
    free(line);
    if (rc != 0) {
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

rs_handler_t *rs_handler_log_new(rs_output_t *out, rs_logger_t *log)
{
    log_handler_t *lh = calloc(1, sizeof(*lh));
    if (lh == NULL)
        return NULL;
    lh->base.ops = &log_ops;
    lh->base.log = log;
    lh->out = out;
    return &lh->base;
}
