/*
 * A table of routed connections, one per key, for a thread that writes to many streams of a
 * Redis Cluster.
 *
 * DESIGN: a singly linked list, newest first, whose head is published with an atomic store.
 * Only the owner thread adds to it and nothing is removed before the table is freed, so
 * another thread (the HTTP server summing reconnections for /metrics) can walk it without a
 * lock. Lookups are linear: a consumer has a handful of streams, and the owner looks each up
 * once per batch, not per entry.
 */

#include "redis_routes.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct route {
    struct route *next; /* older routes; immutable once published */
    char *key;
    rs_redis_t *redis;
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

rs_redis_t *rs_redis_routes_get(rs_redis_routes_t *t, const char *key)
{
    route_t *head = atomic_load_explicit(&t->head, memory_order_relaxed);
    for (route_t *r = head; r != NULL; r = r->next)
        if (strcmp(r->key, key) == 0)
            return r->redis;

    route_t *r = calloc(1, sizeof(*r));
    size_t nlen = strlen(t->client_name) + strlen(key) + 2;
    char *name = malloc(nlen);
    if (r == NULL || name == NULL || (r->key = strdup(key)) == NULL) {
        free(name);
        free(r);
        return NULL;
    }
    snprintf(name, nlen, "%s %s", t->client_name, key);
    r->redis = rs_redis_new_from_config(t->cfg, name, t->command_timeout_ms, t->log);
    free(name);
    if (r->redis == NULL) {
        free(r->key);
        free(r);
        return NULL;
    }
    rs_redis_route(r->redis, t->cluster, key, strlen(key));
    r->next = head;
    atomic_store_explicit(&t->head, r, memory_order_release);
    return r->redis;
}

unsigned long rs_redis_routes_reconnects(const rs_redis_routes_t *t)
{
    unsigned long n = 0;
    const route_t *r = atomic_load_explicit(&((rs_redis_routes_t *)t)->head, memory_order_acquire);
    for (; r != NULL; r = r->next)
        n += rs_redis_reconnects(r->redis);
    return n;
}

void rs_redis_routes_free(rs_redis_routes_t *t)
{
    if (t == NULL)
        return;
    route_t *r = atomic_load(&t->head);
    while (r != NULL) {
        route_t *next = r->next;
        rs_redis_free(r->redis);
        free(r->key);
        free(r);
        r = next;
    }
    free(t->client_name);
    free(t);
}
