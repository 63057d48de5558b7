#ifndef RS_HEALTH_H
#define RS_HEALTH_H

/*
 * The consumer's HTTP server (libmicrohttpd) on health.address:health.port:
 *
 *   GET /healthz  liveness: 200 "OK", or 503 with the reason naming the stream
 *   GET /readyz   readiness: 200 "OK", or 503 while Redis is away, refuses the credentials,
 *                 or the service is starting or shutting down
 *   GET /streams  JSON overview: each stream's length, groups, consumers (from Redis) and
 *                 this process's counters; 503 with {"error": ...} when Redis cannot be asked
 *   GET /metrics  Prometheus text format 0.0.4
 *
 * and, unless health.dashboard is false (then they are 404), the browser dashboard:
 *
 *   GET /, /app.js, /style.css   the page, embedded in the binary (dashboard/)
 *   GET /api/stats               overview, totals and the last 10 minutes' rates (JSON)
 *   GET /api/problems            the last warnings and errors logged (JSON)
 *   GET /api/deadletters?stream=NAME  a configured stream's last dead letters (JSON; 404
 *                                for a stream that is not configured)
 *
 * HEAD works wherever GET does; any other method gets 405 with an Allow header, any other
 * path 404. README.md documents the bodies.
 *
 * The server never slows the consumer down: its threads read the service's atomics and take
 * no lock a reader or a worker holds, and /streams and /metrics ask Redis on a connection of
 * their own, opened per request with short timeouts (1 s), so a slow or absent Redis costs
 * only that request. Connections are capped in number (in total and per client address), in
 * memory, in idle time and in the time one request may take, so a slow or hostile client
 * cannot exhaust the server.
 */

#include <stddef.h>

#include "config.h"
#include "consumer.h"
#include "log.h"

typedef struct rs_health rs_health_t;

/* Where a request goes: one of the endpoints, or the error it gets. */
typedef enum {
    RS_HEALTH_ROUTE_HEALTHZ,
    RS_HEALTH_ROUTE_READYZ,
    RS_HEALTH_ROUTE_STREAMS,
    RS_HEALTH_ROUTE_METRICS,
    RS_HEALTH_ROUTE_DASHBOARD,          /* /, /app.js, /style.css */
    RS_HEALTH_ROUTE_API_STATS,          /* /api/stats */
    RS_HEALTH_ROUTE_API_PROBLEMS,       /* /api/problems */
    RS_HEALTH_ROUTE_API_DEADLETTERS,    /* /api/deadletters */
    RS_HEALTH_ROUTE_NOT_FOUND,          /* 404 */
    RS_HEALTH_ROUTE_METHOD_NOT_ALLOWED, /* 405, with Allow: GET, HEAD */
} rs_health_route_t;

/* The server's routing decision for a request's `method` and `url` (as libmicrohttpd passes
 * them: the path, percent-decoded, without the query string): any method but GET and HEAD is
 * 405 whatever the path; otherwise each endpoint's path, matched exactly, is its endpoint,
 * and anything else 404 (the dashboard's routes are returned whether or not it is enabled;
 * the server answers 404 for them when it is not). Pure; any thread. */
rs_health_route_t rs_health_route(const char *method, const char *url);

/* Creates the server for consumer `c` and binds and listens on health.address:health.port,
 * so that a port already in use is reported here, before any thread starts. `cfg`, `c` and
 * `log` are borrowed for the server's lifetime. Returns NULL with a message naming the
 * address and port in `err` ("health server: cannot listen on 127.0.0.1:8083: Address already
 * in use"). Caller frees with rs_health_free(). Main thread. */
rs_health_t *rs_health_new(const rs_config_t *cfg, rs_consumer_t *c, rs_logger_t *log, char *err,
                           size_t errlen);

/* Starts serving: libmicrohttpd's three worker threads (named MHD-worker by the library) and
 * the reaper thread (rs-http-reaper) that closes requests over their time limit. Returns 0, or
 * -1 with a message in `err` (nothing is left running). Main thread; once. */
int rs_health_start(rs_health_t *h, char *err, size_t errlen);

/* Stops serving and joins every thread the server started; a request in progress finishes
 * first (at most its Redis timeouts, about 2 s). Call it after rs_consumer_stop(), so that
 * /readyz answers 503 for the whole shutdown. Main thread; idempotent. */
void rs_health_stop(rs_health_t *h);

/* Frees the server, stopping it first if needed; NULL is ignored. Main thread. */
void rs_health_free(rs_health_t *h);

#endif
