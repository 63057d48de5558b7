#ifndef RS_HANDLER_H
#define RS_HANDLER_H

/*
 * The handler interface: what a worker runs for each entry of a stream. Each kind lives in
 * its own file (handler_log.c, handler_discard.c, handler_exec.c, handler_http.c) and is
 * created from the stream's configuration by rs_handler_new().
 *
 * A handler instance belongs to one stream and is called concurrently by every worker
 * thread; `worker` (0 .. threads-1) lets a kind keep per-worker state (a libcurl handle, say)
 * without locks or thread-local storage.
 *
 * Tracing: while `handle` runs, e->trace points at the trace context of the worker's
 * CONSUMER span for this entry (NULL when tracing is off), borrowed until `handle` returns.
 * A kind that calls another service passes it on (the http kind sends it as the W3C
 * `traceparent` header). Carrying it in the entry keeps the handler signature unchanged.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "entry.h"
#include "log.h"
#include "output.h"

typedef enum {
    RS_OUTCOME_SUCCESS = 0, /* done: acknowledge */
    RS_OUTCOME_RETRY,       /* failed, may succeed later: deliver again */
    RS_OUTCOME_FAIL,        /* failed for good: dead-letter it */
} rs_outcome_t;

/* What a handler says about a failure, filled by `handle` when it does not succeed. */
typedef struct {
    char error[512];        /* why, for the log and the dead letter; "" on success */
    int64_t retry_after_ms; /* RS_OUTCOME_RETRY: the earliest retry the target asked for
                             * (HTTP Retry-After), 0 = the service's backoff decides */
} rs_handler_report_t;

typedef struct rs_handler rs_handler_t;

/* What each kind provides. `handle` is called from any worker thread at once with distinct
 * `worker` values; it returns the outcome and, on failure, fills `report` (which arrives
 * zeroed). */
typedef struct {
    const char *kind;
    rs_outcome_t (*handle)(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                           rs_handler_report_t *report);
    void (*free)(rs_handler_t *h);
} rs_handler_ops_t;

/* The common head of every handler; kinds embed it first. */
struct rs_handler {
    const rs_handler_ops_t *ops;
    rs_logger_t *log; /* borrowed */
};

/* What the service lends every handler, borrowed for the handler's lifetime. */
typedef struct {
    unsigned workers; /* worker threads that call handle(), numbered 0 .. workers-1 */
    rs_logger_t *log;
    rs_output_t *out; /* the service's stdout, where the log handler writes */
} rs_handler_env_t;

/* Creates the handler a stream's configuration names, for a pool of env->workers threads.
 * `log` is borrowed for the handler's lifetime. Returns NULL with a message in `err` when
 * the kind cannot be set up. Caller frees with rs_handler_free(). Main thread. */
rs_handler_t *rs_handler_new(const rs_stream_config_t *sc, const rs_handler_env_t *env, char *err,
                             size_t errlen);

/* Runs the handler on one entry. Blocks for as long as the handler works. Worker threads. */
rs_outcome_t rs_handler_handle(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                               rs_handler_report_t *report);

/* Frees the handler; NULL is ignored. No worker may be using it. */
void rs_handler_free(rs_handler_t *h);

/* Constructors of the kinds, called by rs_handler_new(). */
rs_handler_t *rs_handler_log_new(rs_output_t *out, rs_logger_t *log);
rs_handler_t *rs_handler_discard_new(rs_logger_t *log);

/* The "exec" handler: runs sc->exec.command once per entry (posix_spawn, no shell) with the
 * entry's JSON on stdin and REDSTREAM_STREAM / REDSTREAM_ID / REDSTREAM_DELIVERY in an
 * environment built from scratch; exit 0 succeeds, 75 (EX_TEMPFAIL) and a timeout are
 * retryable, anything else fails for good. The child's output goes to `log`. Copies what it
 * needs from `sc`. Returns NULL with a message in `err` when out of memory. Main thread. */
rs_handler_t *rs_handler_exec_new(const rs_stream_config_t *sc, rs_logger_t *log, char *err,
                                  size_t errlen);

/* The "http" handler: sends each entry's JSON to sc->http.url with one libcurl easy handle
 * per worker (0 .. workers-1), reused for keep-alive; 2xx succeeds, 408/429/5xx and transport
 * errors are retryable (Retry-After honoured), other statuses fail for good.
 * curl_global_init() must have run, before any thread started. Copies what it needs from
 * `sc`. Returns NULL with a message in `err` when libcurl cannot be set up. Main thread. */
rs_handler_t *rs_handler_http_new(const rs_stream_config_t *sc, unsigned workers, rs_logger_t *log,
                                  char *err, size_t errlen);

/* Longest wait a Retry-After header can ask for; longer requests are capped to it. */
#define RS_RETRY_AFTER_MAX_MS INT64_C(3600000)

/* Parses an HTTP Retry-After value: delay-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", compared with `now`). Returns the wait in milliseconds,
 * capped at RS_RETRY_AFTER_MAX_MS, 0 for a date in the past, or -1 when the text is neither.
 * Pure; any thread. */
int64_t rs_http_retry_after_ms(const char *value, time_t now);

#endif
