/*
 * A table of routed connections, one per key, for a thread that writes to many streams of a
 * Redis Cluster.
 *
 * DESIGN: a singly linked list, newest first, whose head is published with an atomic store.
 * Only the owner thread adds to it and nothing is removed before the table is freed, so
 * another thread (the HTTP server summing reconnections for /metrics) can walk it without a
 * lock. Lookups are linear: a consumer has a handful of streams, and the owner looks each up
 * once per batch, not per entry. Each route also carries its owner's backoff for that key
 * (rs_redis_route_t), so the owner can leave one unreachable master's work for later and go
 * on with the others.
 */

#include "redis_routes.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The waits between failed attempts on one key's master. */
#define ROUTE_BACKOFF_BASE_MS 100
#define ROUTE_BACKOFF_CAP_MS  5000

typedef struct route {
    rs_redis_route_t pub; /* first: handed out as the route */
    struct route *next;   /* older routes; immutable once published */
    char *key;
} route_t;

struct rs_redis_routes {
    const rs_config_t *cfg;
    rs_cluster_t *cluster;
    rs_logger_t *log;
    char *client_name;
    int command_timeout_ms;
    _Atomic(route_t *) head;
};

rs_redis_routes_t *rs_redis_routes_new(const rs_config_t *cfg, rs_cluster_t *cluster,
                                       const char *client_name, int command_timeout_ms,
                                       rs_logger_t *log)
{
    rs_redis_routes_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->client_name = strdup(client_name)) == NULL) {
        free(t);
        return NULL;
    }
    t->cfg = cfg;
    t->cluster = cluster;
    t->log = log;
    t->command_timeout_ms = command_timeout_ms;
    atomic_init(&t->head, NULL);
    return t;
}

rs_redis_route_t *rs_redis_routes_get(rs_redis_routes_t *t, const char *key)
{
    route_t *head = atomic_load_explicit(&t->head, memory_order_relaxed);
    for (route_t *r = head; r != NULL; r = r->next)
        if (strcmp(r->key, key) == 0)
            return &r->pub;

    route_t *r = calloc(1, sizeof(*r));
    size_t nlen = strlen(t->client_name) + strlen(key) + 2;
    char *name = malloc(nlen);
    if (r == NULL || name == NULL || (r->key = strdup(key)) == NULL) {
        free(name);
        free(r);
        return NULL;
    }
    snprintf(name, nlen, "%s %s", t->client_name, key);
    r->pub.redis = rs_redis_new_from_config(t->cfg, name, t->command_timeout_ms, t->log);
    free(name);
    if (r->pub.redis == NULL) {
        free(r->key);
        free(r);
        return NULL;
    }
    rs_redis_route(r->pub.redis, t->cluster, key, strlen(key));
    rs_backoff_init(&r->pub.backoff, ROUTE_BACKOFF_BASE_MS, ROUTE_BACKOFF_CAP_MS, 0);
    r->next = head;
    atomic_store_explicit(&t->head, r, memory_order_release);
    return &r->pub;
}

long rs_redis_route_failed(rs_redis_route_t *route, int64_t now_ns)
{
    long ms = (long)rs_backoff_next_ms(&route->backoff);
    route->retry_at_ns = now_ns + (int64_t)ms * 1000000;
    route->failures++;
    return ms;
}

unsigned rs_redis_route_succeeded(rs_redis_route_t *route)
{
    unsigned failed = route->failures;
    route->failures = 0;
    route->retry_at_ns = 0;
    rs_backoff_reset(&route->backoff);
    return failed;
}

unsigned long rs_redis_routes_reconnects(const rs_redis_routes_t *t)
{
    unsigned long n = 0;
    const route_t *r = atomic_load_explicit(&((rs_redis_routes_t *)t)->head, memory_order_acquire);
    for (; r != NULL; r = r->next)
        n += rs_redis_reconnects(r->pub.redis);
    return n;
}

void rs_redis_routes_free(rs_redis_routes_t *t)
{
    if (t == NULL)
        return;
    route_t *r = atomic_load(&t->head);
    while (r != NULL) {
        route_t *next = r->next;
        rs_redis_free(r->pub.redis);
        free(r->key);
        free(r);
        r = next;
    }
    free(t->client_name);
    free(t);
}
