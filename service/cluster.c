/*
 * The cluster router: the slot map of a Redis Cluster, fetched with CLUSTER SLOTS and kept
 * current, so each connection can find the master serving its key.
 *
 * DESIGN: the map (cluster_map.h) sits under one mutex; lookups copy the answer out, so no
 * caller ever holds a pointer into a map another thread may replace. A refresh runs outside
 * the lock on a short-lived connection of its own (the threads asking for it each own their
 * connections, which the router never touches) and only its result is swapped in under the
 * lock. At most one refresh runs at a time: `refreshing` marks it, and callers that arrive
 * meanwhile wait on `done` for its outcome instead of asking the cluster again, because a
 * failover makes every reader, the acknowledger and the retry thread ask at once. A refresh
 * within RS_CLUSTER_REFRESH_MIN_MS of the last good one is answered from the map already
 * held, for the same reason.
 *
 * The nodes asked, in order: the masters of the current map (they know the newest
 * configuration), then the seeds of the configuration (the map may be empty, or every master
 * in it gone).
 */

#include "cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define LOG_MODULE "cluster"

struct rs_cluster {
    rs_logger_t *log;
    char *username; /* NULL: AUTH with the password alone */
    char *password; /* NULL: no AUTH; wiped before it is freed */
    int connect_timeout_ms;
    rs_cluster_node_t *seeds;
    size_t nseeds;

    pthread_mutex_t lock;
    pthread_cond_t done;           /* a refresh finished */
    rs_cluster_map_t map;          /* guarded by lock */
    bool have_map;                 /* guarded by lock: map was fetched at least once */
    bool refreshing;               /* guarded by lock: a thread is fetching the map */
    unsigned long finished;        /* guarded by lock: refreshes completed */
    rs_redis_status_t last_status; /* guarded by lock: the last refresh's outcome */
    char last_err[256];            /* guarded by lock: and its message */
    int64_t last_ok_ns;            /* guarded by lock: when a refresh last succeeded */
    unsigned failures;             /* guarded by lock: refreshes failed in a row */
};

static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

rs_cluster_t *rs_cluster_new(const rs_config_t *cfg, rs_logger_t *log, char *err, size_t errlen)
{
    rs_cluster_t *c = calloc(1, sizeof(*c));
    size_t nseeds = cfg->redis.nodes.n > 0 ? cfg->redis.nodes.n : 1;
    if (c == NULL || (c->seeds = calloc(nseeds, sizeof(*c->seeds))) == NULL)
        goto oom;
    c->log = log;
    c->connect_timeout_ms = cfg->redis.connect_timeout_ms;
    if (cfg->redis.username != NULL && (c->username = strdup(cfg->redis.username)) == NULL)
        goto oom;
    if (cfg->redis.password != NULL && cfg->redis.password[0] != '\0' &&
        (c->password = strdup(cfg->redis.password)) == NULL)
        goto oom;
    for (size_t i = 0; i < nseeds; i++) {
        rs_cluster_node_t *n = &c->seeds[i];
        if (rs_config_cluster_seed(cfg, i, n->host, sizeof(n->host), &n->port) != 0) {
            snprintf(err, errlen, "redis.nodes[%zu]: not a host:port address", i);
            rs_cluster_free(c);
            return NULL;
        }
    }
    c->nseeds = nseeds;
    rs_cluster_map_clear(&c->map);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->done, NULL);
    return c;

oom:
    snprintf(err, errlen, "cluster: out of memory");
    if (c != NULL) {
        free(c->seeds);
        free(c->username);
        free_secret(c->password);
        free(c);
    }
    return NULL;
}

void rs_cluster_free(rs_cluster_t *c)
{
    if (c == NULL)
        return;
    rs_cluster_map_clear(&c->map);
    free(c->seeds);
    free(c->username);
    free_secret(c->password);
    if (c->nseeds > 0) { /* the lock exists only once construction finished */
        pthread_cond_destroy(&c->done);
        pthread_mutex_destroy(&c->lock);
    }
    free(c);
}

static bool same_node(const rs_cluster_node_t *a, const rs_cluster_node_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Asks one node for the map. Returns RS_REDIS_OK with `out` filled (caller clears it), or the
 * failure's kind with its message in `err`. */
static rs_redis_status_t fetch_map(rs_cluster_t *c, const rs_cluster_node_t *node,
                                   rs_cluster_map_t *out, char *err, size_t errlen)
{
    rs_redis_opts_t opts = {
        .host = node->host,
        .port = node->port,
        .username = c->username,
        .password = c->password,
        .connect_timeout_ms = c->connect_timeout_ms,
        .command_timeout_ms = c->connect_timeout_ms,
        .client_name = "cluster",
    };
    rs_redis_t *r = rs_redis_new(&opts, c->log);
    if (r == NULL) {
        snprintf(err, errlen, "cluster: out of memory");
        return RS_REDIS_ERR_IO;
    }
    rs_redis_status_t st = rs_redis_connect(r);
    if (st != RS_REDIS_OK) {
        snprintf(err, errlen, "%s", rs_redis_errstr(r));
        rs_redis_free(r);
        return st;
    }
    const char *argv[] = {"CLUSTER", "SLOTS"};
    const size_t argvlen[] = {7, 5};
    redisReply *reply = rs_redis_command_argv(r, 2, argv, argvlen);
    if (reply == NULL) {
        snprintf(err, errlen, "%s", rs_redis_errstr(r));
        st = RS_REDIS_ERR_IO;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* "ERR This instance has cluster support disabled": redis.cluster names a server
         * that is not a cluster node, which no retry can fix. */
        st = rs_redis_classify_error(reply->str, reply->len);
        snprintf(err, errlen, "redis %s: CLUSTER SLOTS refused: %.*s%s", rs_redis_addr(r),
                 reply->len > 160 ? 160 : (int)reply->len, reply->str,
                 st == RS_REDIS_ERR_REPLY ? " (is this node part of a Redis Cluster?)" : "");
    } else {
        char why[200];
        if (rs_cluster_map_parse(reply, node->host, out, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "redis %s: CLUSTER SLOTS: %s", rs_redis_addr(r), why);
            st = RS_REDIS_ERR_REPLY;
        } else if (out->nnodes == 0) {
            /* A node that has not joined a cluster yet: ask another. */
            snprintf(err, errlen, "redis %s: CLUSTER SLOTS: no slot is assigned yet",
                     rs_redis_addr(r));
            rs_cluster_map_clear(out);
            st = RS_REDIS_ERR_IO;
        }
    }
    freeReplyObject(reply);
    rs_redis_free(r);
    return st;
}

/* Writes a one-line description of `map` ("127.0.0.1:7000 (5461 slots), ...") to `buf`. */
static void describe_map(const rs_cluster_map_t *map, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < map->nnodes && used < len; i++) {
        size_t slots = 0;
        for (unsigned s = 0; s < RS_CLUSTER_SLOTS; s++)
            slots += map->owner[s] == i;
        const rs_cluster_node_t *n = &map->nodes[i];
        bool v6 = strchr(n->host, ':') != NULL;
        int w = snprintf(buf + used, len - used, "%s%s%s%s:%d (%zu slots)", i > 0 ? ", " : "",
                         v6 ? "[" : "", n->host, v6 ? "]" : "", n->port, slots);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    size_t unowned = rs_cluster_map_unowned(map);
    if (unowned > 0 && used < len)
        snprintf(buf + used, len - used, "; %zu slots without a master", unowned);
}

/* How bad a failure is, to report the worst one of a refresh: an AUTH refusal means a
 * person must act, and hides behind no other failure. */
static int severity(rs_redis_status_t st)
{
    return st == RS_REDIS_ERR_AUTH ? 3 : st == RS_REDIS_ERR_REPLY ? 2 : 1;
}

rs_redis_status_t rs_cluster_refresh(rs_cluster_t *c, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    if (c->refreshing) {
        unsigned long seen = c->finished;
        while (c->finished == seen)
            pthread_cond_wait(&c->done, &c->lock);
        rs_redis_status_t st = c->last_status;
        snprintf(err, errlen, "%s", c->last_err);
        pthread_mutex_unlock(&c->lock);
        return st;
    }
    int64_t now = rs_clock_monotonic_ns();
    if (c->have_map && c->last_status == RS_REDIS_OK &&
        now - c->last_ok_ns < (int64_t)RS_CLUSTER_REFRESH_MIN_MS * 1000000) {
        pthread_mutex_unlock(&c->lock);
        return RS_REDIS_OK;
    }
    c->refreshing = true;
    /* The nodes to ask, copied out so the network calls run without the lock. */
    size_t nask = 0, cap = c->map.nnodes + c->nseeds;
    rs_cluster_node_t *ask = malloc(cap * sizeof(*ask));
    if (ask != NULL) {
        for (size_t i = 0; i < c->map.nnodes; i++)
            ask[nask++] = c->map.nodes[i];
        for (size_t i = 0; i < c->nseeds; i++) {
            bool dup = false;
            for (size_t j = 0; j < nask && !dup; j++)
                dup = same_node(&ask[j], &c->seeds[i]);
            if (!dup)
                ask[nask++] = c->seeds[i];
        }
    }
    pthread_mutex_unlock(&c->lock);

    rs_cluster_map_t fresh = {0};
    rs_cluster_map_clear(&fresh);
    rs_redis_status_t st = RS_REDIS_ERR_IO, worst = RS_REDIS_OK;
    char why[512] = "cluster: out of memory", worst_why[512] = "";
    for (size_t i = 0; i < nask; i++) {
        st = fetch_map(c, &ask[i], &fresh, why, sizeof(why));
        if (st == RS_REDIS_OK)
            break;
        if (worst == RS_REDIS_OK || severity(st) > severity(worst)) {
            worst = st;
            snprintf(worst_why, sizeof(worst_why), "%s", why);
        }
    }
    free(ask);
    if (st != RS_REDIS_OK && worst != RS_REDIS_OK) {
        st = worst;
        snprintf(why, sizeof(why), "%s", worst_why);
    }

    pthread_mutex_lock(&c->lock);
    if (st == RS_REDIS_OK) {
        if (!c->have_map || !rs_cluster_map_equal(&c->map, &fresh)) {
            char desc[1024];
            describe_map(&fresh, desc, sizeof(desc));
            rs_log(c->log, RS_LOG_INFO, LOG_MODULE, "slot map %s: %s",
                   c->have_map ? "changed" : "fetched", desc);
        }
        rs_cluster_map_clear(&c->map);
        c->map = fresh; /* takes over fresh's nodes */
        c->have_map = true;
        c->last_ok_ns = rs_clock_monotonic_ns();
        if (c->failures > 0)
            rs_log(c->log, RS_LOG_INFO, LOG_MODULE, "slot map fetched again after %u failure%s",
                   c->failures, c->failures == 1 ? "" : "s");
        c->failures = 0;
        c->last_err[0] = '\0';
    } else {
        if (c->failures++ == 0)
            rs_log(c->log, RS_LOG_WARN, LOG_MODULE, "cannot fetch the slot map: %s", why);
        snprintf(c->last_err, sizeof(c->last_err), "%s", why);
    }
    c->last_status = st;
    c->refreshing = false;
    c->finished++;
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->lock);
    if (st != RS_REDIS_OK)
        snprintf(err, errlen, "%s", why);
    return st;
}

/* Copies the owner of `slot` into `out`; true when there is one. Caller holds the lock. */
static bool owner_locked(const rs_cluster_t *c, unsigned slot, rs_cluster_node_t *out)
{
    const rs_cluster_node_t *n = rs_cluster_map_owner(&c->map, slot);
    if (n != NULL)
        *out = *n;
    return n != NULL;
}

rs_redis_status_t rs_cluster_owner(rs_cluster_t *c, const char *key, size_t len,
                                   rs_cluster_node_t *out, char *err, size_t errlen)
{
    unsigned slot = rs_cluster_keyslot(key, len);
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&c->lock);
        bool found = c->have_map && owner_locked(c, slot, out);
        pthread_mutex_unlock(&c->lock);
        if (found)
            return RS_REDIS_OK;
        if (attempt == 1) {
            snprintf(err, errlen, "cluster: no master serves slot %u (of key '%.*s') yet", slot,
                     len > 64 ? 64 : (int)len, key);
            return RS_REDIS_ERR_IO;
        }
        rs_redis_status_t st = rs_cluster_refresh(c, err, errlen);
        if (st != RS_REDIS_OK)
            return st;
    }
}

void rs_cluster_moved(rs_cluster_t *c, unsigned slot, const rs_cluster_node_t *to)
{
    if (slot >= RS_CLUSTER_SLOTS)
        return;
    pthread_mutex_lock(&c->lock);
    size_t idx = c->map.nnodes;
    for (size_t i = 0; i < c->map.nnodes; i++)
        if (same_node(&c->map.nodes[i], to))
            idx = i;
    if (idx == c->map.nnodes && idx < RS_CLUSTER_NO_OWNER) {
        rs_cluster_node_t *nodes = realloc(c->map.nodes, (idx + 1) * sizeof(*nodes));
        if (nodes != NULL) {
            c->map.nodes = nodes;
            c->map.nodes[c->map.nnodes++] = *to;
        }
    }
    bool changed = idx < c->map.nnodes && c->map.owner[slot] != idx;
    if (changed) {
        c->map.owner[slot] = (uint16_t)idx;
        c->have_map = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (changed) {
        bool v6 = strchr(to->host, ':') != NULL;
        rs_log(c->log, RS_LOG_INFO, LOG_MODULE, "slot %u moved to %s%s%s:%d", slot, v6 ? "[" : "",
               to->host, v6 ? "]" : "", to->port);
    }
    char err[256];
    (void)rs_cluster_refresh(c, err, sizeof(err)); /* a failure is logged there */
}

size_t rs_cluster_masters(rs_cluster_t *c, rs_cluster_node_t *out, size_t max)
{
    pthread_mutex_lock(&c->lock);
    size_t n = 0;
    for (size_t i = 0; i < c->map.nnodes; i++) {
        bool serves = false;
        for (unsigned s = 0; s < RS_CLUSTER_SLOTS && !serves; s++)
            serves = c->map.owner[s] == i;
        if (!serves)
            continue;
        if (n < max)
            out[n] = c->map.nodes[i];
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}
