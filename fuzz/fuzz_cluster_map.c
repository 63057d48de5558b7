/*
 * Fuzz harness for cluster_map.c: what a Redis Cluster node (or anything answering in its
 * place) sends back. The input goes two ways:
 *   - as the text of an error reply, to rs_cluster_redirect_parse() (-MOVED / -ASK);
 *   - as RESP, through hiredis's own reader, and each reply it yields to
 *     rs_cluster_map_parse() as a CLUSTER SLOTS reply (and, when it is an error reply, its
 *     text to rs_cluster_redirect_parse() too, as the cluster client will do).
 *
 * Beyond the sanitizers it checks:
 *   - a redirection accepted formats back, "MOVED|ASK <slot> <host>:<port>", to exactly the
 *     input (with an empty host when the asked host was substituted), which proves that no
 *     junk, sign, leading zero or out-of-range number was accepted; its host is non-empty,
 *     shorter than RS_CLUSTER_HOST_MAX, free of spaces and control bytes, and not "?"; a
 *     refused one leaves `out` untouched; without an asked host the verdict is the same
 *     unless the host was empty;
 *   - a map accepted indexes only its nodes, uses every node, holds each address once, with
 *     a port in 1..65535 and a host neither empty nor "?" nor too long; each range of the
 *     reply gives its first and last slot to its master's address; slots no range names are
 *     unowned and rs_cluster_map_unowned() counts them; a map equals itself; parsed without
 *     an asked host it is refused or the same map;
 *   - a refused map has a message and owns nothing.
 * Only hiredis APIs that are also in hiredis 1.x are used.
 */

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cluster_map.h"
#include "fuzz.h"

#define ASKED_HOST "10.0.0.9"

/* hiredis allocates an aggregate's element pointers as soon as it reads "*N", before the
 * elements arrive: a count this large is a memory exhaustion of hiredis, not of ours (as in
 * fuzz_entry_json.c). */
#define MAX_ARRAY_COUNT 65536

static void check_host(const char *host)
{
    size_t len = strnlen(host, RS_CLUSTER_HOST_MAX);
    FUZZ_CHECK(len > 0 && len < RS_CLUSTER_HOST_MAX, "host of %zu bytes", len);
    FUZZ_CHECK(strcmp(host, "?") != 0, "host \"?\" accepted");
}

static void check_redirect(const char *msg, size_t len)
{
    rs_redirect_t r, untouched;
    memset(&r, 0xa5, sizeof(r));
    memset(&untouched, 0xa5, sizeof(untouched));
    rs_redirect_kind_t kind = rs_cluster_redirect_parse(msg, len, ASKED_HOST, &r);
    FUZZ_CHECK(kind == RS_REDIRECT_NONE || kind == RS_REDIRECT_MOVED || kind == RS_REDIRECT_ASK,
               "kind %d", (int)kind);

    rs_redirect_t bare;
    rs_redirect_kind_t bare_kind = rs_cluster_redirect_parse(msg, len, NULL, &bare);
    if (kind == RS_REDIRECT_NONE) {
        FUZZ_CHECK(memcmp(&r, &untouched, sizeof(r)) == 0, "refused, but `out` was written");
        FUZZ_CHECK(bare_kind == RS_REDIRECT_NONE, "accepted only without an asked host");
        return;
    }
    FUZZ_CHECK(r.kind == kind, "out.kind %d, returned %d", (int)r.kind, (int)kind);
    FUZZ_CHECK(r.slot < RS_CLUSTER_SLOTS, "slot %u", r.slot);
    FUZZ_CHECK(r.node.port >= 1 && r.node.port <= 65535, "port %d", r.node.port);
    check_host(r.node.host);
    for (const char *p = r.node.host; *p != '\0'; p++)
        FUZZ_CHECK((unsigned char)*p > ' ' && *p != 0x7f, "host byte 0x%02x",
                   (unsigned)(unsigned char)*p);

    const char *word = kind == RS_REDIRECT_MOVED ? "MOVED" : "ASK";
    char text[RS_CLUSTER_HOST_MAX + 32];
    int n = snprintf(text, sizeof(text), "%s %u %s:%d", word, r.slot, r.node.host, r.node.port);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(text), "formatting failed");
    bool same = (size_t)n == len && memcmp(text, msg, len) == 0;
    if (!same) {
        /* The host was empty in the text and the asked one was put in its place. */
        FUZZ_CHECK(strcmp(r.node.host, ASKED_HOST) == 0, "'%.*s' formats as '%s'", (int)len, msg,
                   text);
        n = snprintf(text, sizeof(text), "%s %u :%d", word, r.slot, r.node.port);
        FUZZ_CHECK((size_t)n == len && memcmp(text, msg, len) == 0, "'%.*s' formats as '%s'",
                   (int)len, msg, text);
        FUZZ_CHECK(bare_kind == RS_REDIRECT_NONE, "an empty host accepted without an asked host");
    } else {
        FUZZ_CHECK(bare_kind == kind && bare.slot == r.slot && bare.node.port == r.node.port &&
                       strcmp(bare.node.host, r.node.host) == 0,
                   "another verdict without an asked host");
    }
}

/* The master address a well-formed range element names (the reply was accepted). */
static void range_master(const redisReply *range, char host[RS_CLUSTER_HOST_MAX], int *port)
{
    const redisReply *master = range->element[2], *h = master->element[0], *p = master->element[1];
    if (h->type == REDIS_REPLY_NIL || h->len == 0) {
        snprintf(host, RS_CLUSTER_HOST_MAX, "%s", ASKED_HOST);
    } else {
        FUZZ_CHECK(h->len < RS_CLUSTER_HOST_MAX, "a host of %zu bytes accepted", (size_t)h->len);
        memcpy(host, h->str, h->len);
        host[h->len] = '\0';
    }
    if (p->type == REDIS_REPLY_INTEGER) {
        *port = (int)p->integer;
    } else {
        FUZZ_CHECK(p->type == REDIS_REPLY_STRING, "port of type %d accepted", p->type);
        *port = 0;
        for (size_t i = 0; i < p->len; i++)
            *port = *port * 10 + (p->str[i] - '0');
    }
}

static void check_accepted(const redisReply *reply, const rs_cluster_map_t *map)
{
    FUZZ_CHECK(map->nnodes <= RS_CLUSTER_SLOTS, "%zu nodes", map->nnodes);
    FUZZ_CHECK(map->nnodes == 0 || map->nodes != NULL, "nodes missing");
    for (size_t i = 0; i < map->nnodes; i++) {
        check_host(map->nodes[i].host);
        FUZZ_CHECK(map->nodes[i].port >= 1 && map->nodes[i].port <= 65535, "port %d",
                   map->nodes[i].port);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(map->nodes[j].port != map->nodes[i].port ||
                           strcmp(map->nodes[j].host, map->nodes[i].host) != 0,
                       "nodes %zu and %zu are both %s:%d", j, i, map->nodes[i].host,
                       map->nodes[i].port);
    }

    /* Which slots the reply names, read independently of the parser. */
    bool named[RS_CLUSTER_SLOTS] = {false};
    FUZZ_CHECK(reply->type == REDIS_REPLY_ARRAY, "a reply of type %d accepted", reply->type);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *range = reply->element[i];
        FUZZ_CHECK(range->type == REDIS_REPLY_ARRAY && range->elements >= 3,
                   "range %zu malformed but accepted", i);
        long long start = range->element[0]->integer, end = range->element[1]->integer;
        FUZZ_CHECK(start >= 0 && start <= end && end < RS_CLUSTER_SLOTS, "range %lld-%lld", start,
                   end);
        char host[RS_CLUSTER_HOST_MAX];
        int port;
        range_master(range, host, &port);
        for (long long s = start; s <= end; s++) {
            FUZZ_CHECK(!named[s], "slot %lld in two ranges accepted", s);
            named[s] = true;
        }
        const long long ends[2] = {start, end};
        for (int k = 0; k < 2; k++) {
            const rs_cluster_node_t *n = rs_cluster_map_owner(map, (unsigned)ends[k]);
            FUZZ_CHECK(n != NULL && n->port == port && strcmp(n->host, host) == 0,
                       "slot %lld: not served by %s:%d", ends[k], host, port);
        }
    }

    size_t unowned = 0;
    bool used[RS_CLUSTER_SLOTS] = {false};
    for (unsigned s = 0; s < RS_CLUSTER_SLOTS; s++) {
        uint16_t o = map->owner[s];
        FUZZ_CHECK(o == RS_CLUSTER_NO_OWNER || o < map->nnodes, "slot %u: owner %u of %zu", s,
                   (unsigned)o, map->nnodes);
        FUZZ_CHECK((o != RS_CLUSTER_NO_OWNER) == named[s], "slot %u: owner %u, named %d", s,
                   (unsigned)o, (int)named[s]);
        if (o == RS_CLUSTER_NO_OWNER)
            unowned++;
        else
            used[o] = true;
    }
    for (size_t i = 0; i < map->nnodes; i++)
        FUZZ_CHECK(used[i], "node %zu serves no slot", i);
    FUZZ_CHECK(rs_cluster_map_unowned(map) == unowned, "%zu unowned, counted %zu",
               rs_cluster_map_unowned(map), unowned);
    FUZZ_CHECK(rs_cluster_map_equal(map, map), "a map differs from itself");
}

static void check_refused(const rs_cluster_map_t *map, const char *err, size_t errlen)
{
    FUZZ_CHECK(err[0] != '\0' && strlen(err) < errlen, "refused without a message");
    FUZZ_CHECK(map->nodes == NULL && map->nnodes == 0, "a refused map owns nodes");
    FUZZ_CHECK(rs_cluster_map_unowned(map) == RS_CLUSTER_SLOTS, "a refused map serves slots");
}

static void check_reply(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        check_redirect(reply->str, reply->len);

    rs_cluster_map_t map, bare;
    char err[256] = "", bare_err[256] = "";
    if (rs_cluster_map_parse(reply, ASKED_HOST, &map, err, sizeof(err)) == 0)
        check_accepted(reply, &map);
    else
        check_refused(&map, err, sizeof(err));

    if (rs_cluster_map_parse(reply, NULL, &bare, bare_err, sizeof(bare_err)) == 0) {
        FUZZ_CHECK(err[0] == '\0', "accepted only without an asked host: %s", err);
        FUZZ_CHECK(rs_cluster_map_equal(&map, &bare) && rs_cluster_map_equal(&bare, &map),
                   "another map without an asked host");
    } else {
        check_refused(&bare, bare_err, sizeof(bare_err));
    }
    rs_cluster_map_clear(&bare);
    rs_cluster_map_clear(&map);
    FUZZ_CHECK(map.nodes == NULL && rs_cluster_map_unowned(&map) == RS_CLUSTER_SLOTS,
               "a cleared map still owns something");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_redirect((const char *)data, size);

    if (!fuzz_resp_counts_bounded(data, size, MAX_ARRAY_COUNT))
        return 0;
    redisReader *reader = redisReaderCreate();
    FUZZ_CHECK(reader != NULL, "out of memory");
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        void *reply = NULL;
        while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != NULL) {
            check_reply(reply);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    redisReaderFree(reader);
    return 0;
}
