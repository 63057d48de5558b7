#ifndef RS_DASHBOARD_H
#define RS_DASHBOARD_H

/*
 * The browser dashboard's data: the JSON bodies of GET /api/stats, /api/problems and
 * /api/deadletters, rendered from plain structs (pure functions: no I/O, no clock), and the
 * page itself (dashboard/index.html, app.js and style.css, embedded at build time).
 *
 * Every text from outside (stream names, field values, log lines) becomes a valid JSON string
 * (in a text that is not valid UTF-8 each invalid byte becomes U+FFFD, json.h's rule; a dead
 * letter's field value is shown in base64 instead); the page shows it with textContent only.
 * Nothing rendered here holds the Redis password: no input carries it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "metrics.h"
#include "stats_ring.h"
#include "stream_info.h"

/* How many dead letters /api/deadletters shows, and the bytes kept of each field. */
#define RS_DASHBOARD_DEAD_LETTERS 50
#define RS_DASHBOARD_FIELD_MAX    200

/* One embedded file of the page. */
typedef struct {
    const char *path; /* "/", "/app.js", "/style.css" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} rs_dashboard_asset_t;

/* The embedded files, defined by the generated dashboard_assets.c; use rs_dashboard_asset(). */
extern const rs_dashboard_asset_t rs_dashboard_assets[];
extern const size_t rs_dashboard_nassets;

/* The embedded file served at `path`, or NULL. Any thread. */
const rs_dashboard_asset_t *rs_dashboard_asset(const char *path);

/* The overview for /api/stats. */
typedef struct {
    const rs_metrics_t *m;        /* the consumer's snapshot (its `redis` unused) */
    double uptime_s;              /* since the process started */
    bool redis_ready;             /* every reader connected, its group existing */
    const char *redis_state;      /* "connected", or /readyz's reason */
    const rs_stats_rate_t *rates; /* RS_STATS_RING_SECONDS, oldest first */
} rs_dashboard_stats_t;

/* Renders /api/stats: version, uptime_s, redis {ready, state}, group, consumer, queue {depth,
 * capacity}, workers {busy, total}, totals {handled, failed, retried, dead_lettered},
 * per-stream {name, handler, ordering, handled, failed, retried, dead_lettered, inflight,
 * reader_connected}, and series {handled, failed}: RS_STATS_RING_SECONDS per-second rates,
 * oldest first, null where unknown. Returns a heap string and its length (caller frees), or
 * NULL when out of memory. Pure; any thread. */
char *rs_dashboard_stats_json(const rs_dashboard_stats_t *s, size_t *len);

/* Renders /api/problems: {"problems": [{time, level, module, stream, message}]}, newest
 * first. Returns a heap string and its length (caller frees), or NULL when out of memory.
 * Pure; any thread. */
char *rs_dashboard_problems_json(const rs_log_problem_t *p, size_t n, size_t *len);

/* Renders /api/deadletters for `stream` whose dead-letter stream is `dlq`: {stream,
 * dead_letter_stream, replay (the command that moves them back), error (null or Redis's),
 * dead_letters: [{id, original_id, delivery_count, error, time, fields: [{name, value,
 * cut}]}]} with the redstream.* metadata taken out of `fields`. A value that is not valid
 * UTF-8 or holds a NUL is shown as "base64:" and its bytes in base64. `config_path` is the
 * consumer's configuration file for the replay command (NULL leaves -c out). Returns a heap
 * string and its length (caller frees), or NULL when out of memory. Pure; any thread. */
char *rs_dashboard_dead_letters_json(const char *stream, const char *dlq,
                                     const rs_info_entries_t *e, const char *config_path,
                                     size_t *len);

#endif
