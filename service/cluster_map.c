/*
 * The slot map of a Redis Cluster, read from a CLUSTER SLOTS reply, and the -MOVED / -ASK
 * redirections a node answers with when a key's slot is served elsewhere.
 *
 * Both inputs come from the network (a node, or anything pretending to be one), so each
 * reply element's type, size and value is checked before it is used, and whatever does not
 * fit the documented shape is refused with a message naming the element; nothing here
 * trusts a count or a length it did not check (fuzz/fuzz_cluster_map.c).
 *
 * DESIGN: the map is a flat array of RS_CLUSTER_SLOTS node indexes plus the distinct masters,
 * so the owner of a slot is one load, and two maps are compared slot by slot by address (the
 * same masters may be numbered differently in two replies). The masters are deduplicated by
 * host and port with a linear search: a cluster has at most a few hundred masters and a
 * reply is parsed only at start and after a redirection. Overlapping ranges are refused
 * rather than resolved ("last one wins"): one node's view never overlaps, so an overlap means
 * a broken or hostile reply, and routing from it would send keys to an arbitrary node.
 * Because every accepted range owns at least one slot no other range owns, a map has at most
 * RS_CLUSTER_SLOTS masters, and an index always fits in uint16_t below RS_CLUSTER_NO_OWNER.
 * Pure functions over caller-owned values; any thread.
 */

#include "cluster_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The position of a node in the reply, for messages: "range 2 (slots 10923-16383) master". */
typedef struct {
    size_t range;
    long long start, end;
} where_t;

static void clear_owners(rs_cluster_map_t *map)
{
    for (size_t i = 0; i < RS_CLUSTER_SLOTS; i++)
        map->owner[i] = RS_CLUSTER_NO_OWNER;
}

static const char *type_name(int type)
{
    switch (type) {
    case REDIS_REPLY_STRING:
        return "a string";
    case REDIS_REPLY_ARRAY:
        return "an array";
    case REDIS_REPLY_INTEGER:
        return "an integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "a status";
    case REDIS_REPLY_ERROR:
        return "an error";
#ifdef REDIS_REPLY_MAP
    case REDIS_REPLY_MAP:
        return "a map";
#endif
    default:
        return "an unexpected type";
    }
}

/* Parses `len` bytes of decimal digits (no sign, no space, no leading zero: the way Redis
 * writes a port) as a port. Returns 1..65535, or 0 when the text is not such a number. */
static int parse_port(const char *s, size_t len)
{
    if (len == 0 || len > 5 || s[0] == '0')
        return 0;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : 0;
}

/* Checks a node array [host, port, id?, metadata?, ...] and, when `node` is not NULL (a
 * master), fills it. Returns 0, or -1 with a message. Elements past the fourth are ignored:
 * Redis documents that more may be added. */
static int parse_node(const redisReply *r, const char *role, const where_t *w,
                      const char *asked_host, rs_cluster_node_t *node, char *err, size_t errlen)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        snprintf(err, errlen,
                 "range %zu (slots %lld-%lld): %s is %s, not an array of at "
                 "least host and port",
                 w->range, w->start, w->end, role,
                 r->type == REDIS_REPLY_ARRAY ? "a short array" : type_name(r->type));
        return -1;
    }
    const redisReply *host = r->element[0], *port = r->element[1];
    /* Redis 7 writes an unknown endpoint (cluster-preferred-endpoint-type unknown-endpoint)
     * as nil; older versions as "" for a node that does not know its own address. */
    if (host->type != REDIS_REPLY_STRING && host->type != REDIS_REPLY_NIL) {
        snprintf(err, errlen, "range %zu (slots %lld-%lld): %s host is %s", w->range, w->start,
                 w->end, role, type_name(host->type));
        return -1;
    }
    int portnum = 0;
    if (port->type == REDIS_REPLY_INTEGER) {
        portnum = port->integer >= 1 && port->integer <= 65535 ? (int)port->integer : 0;
    } else if (port->type == REDIS_REPLY_STRING) {
        portnum = parse_port(port->str, port->len);
    } else {
        snprintf(err, errlen, "range %zu (slots %lld-%lld): %s port is %s", w->range, w->start,
                 w->end, role, type_name(port->type));
        return -1;
    }
    if (r->elements >= 3 && r->element[2]->type != REDIS_REPLY_STRING) {
        snprintf(err, errlen, "range %zu (slots %lld-%lld): %s id is %s", w->range, w->start,
                 w->end, role, type_name(r->element[2]->type));
        return -1;
    }
    /* Redis 7's other endpoints ({"hostname": ...} or {"ip": ...}): a map in RESP3, a flat
     * array of names and values in RESP2. Not used; only its type is checked. */
    if (r->elements >= 4) {
        int t = r->element[3]->type;
        bool ok = t == REDIS_REPLY_ARRAY;
#ifdef REDIS_REPLY_MAP
        ok = ok || t == REDIS_REPLY_MAP;
#endif
        if (!ok) {
            snprintf(err, errlen, "range %zu (slots %lld-%lld): %s endpoint metadata is %s",
                     w->range, w->start, w->end, role, type_name(t));
            return -1;
        }
    }
    if (node == NULL)
        return 0; /* a replica: its address is not used, so only its shape is checked */

    if (portnum == 0) {
        snprintf(err, errlen, "range %zu (slots %lld-%lld): %s port is not in 1..65535", w->range,
                 w->start, w->end, role);
        return -1;
    }
    const char *h = host->type == REDIS_REPLY_NIL ? "" : host->str;
    size_t hlen = host->type == REDIS_REPLY_NIL ? 0 : host->len;
    if (hlen == 0) {
        if (asked_host == NULL || asked_host[0] == '\0') {
            snprintf(err, errlen,
                     "range %zu (slots %lld-%lld): %s has an unknown endpoint "
                     "and no asked host was given",
                     w->range, w->start, w->end, role);
            return -1;
        }
        h = asked_host;
        hlen = strlen(asked_host);
    }
    if (hlen == 1 && h[0] == '?') {
        snprintf(err, errlen,
                 "range %zu (slots %lld-%lld): %s host is \"?\" (the cluster "
                 "announces hostnames and this node has none: set cluster-announce-hostname, "
                 "or cluster-preferred-endpoint-type ip)",
                 w->range, w->start, w->end, role);
        return -1;
    }
    if (hlen >= RS_CLUSTER_HOST_MAX || memchr(h, '\0', hlen) != NULL) {
        snprintf(err, errlen, "range %zu (slots %lld-%lld): %s host %s", w->range, w->start, w->end,
                 role, hlen >= RS_CLUSTER_HOST_MAX ? "is too long" : "holds a NUL byte");
        return -1;
    }
    memcpy(node->host, h, hlen);
    node->host[hlen] = '\0';
    node->port = portnum;
    return 0;
}

/* The index of `node` in map->nodes, added when new. Returns -1 when out of memory. */
static long intern_node(rs_cluster_map_t *map, size_t *cap, const rs_cluster_node_t *node)
{
    for (size_t i = 0; i < map->nnodes; i++)
        if (map->nodes[i].port == node->port && strcmp(map->nodes[i].host, node->host) == 0)
            return (long)i;
    if (map->nnodes == *cap) {
        size_t ncap = *cap == 0 ? 8 : *cap * 2;
        rs_cluster_node_t *grown = realloc(map->nodes, ncap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        map->nodes = grown;
        *cap = ncap;
    }
    map->nodes[map->nnodes] = *node;
    return (long)map->nnodes++;
}

static int parse_ranges(const redisReply *reply, const char *asked_host, rs_cluster_map_t *out,
                        char *err, size_t errlen)
{
    size_t cap = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
            snprintf(err, errlen, "range %zu is %s, not an array of start, end and master", i,
                     r->type == REDIS_REPLY_ARRAY ? "a short array" : type_name(r->type));
            return -1;
        }
        const redisReply *start = r->element[0], *end = r->element[1];
        if (start->type != REDIS_REPLY_INTEGER || end->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen, "range %zu: start is %s and end %s", i, type_name(start->type),
                     type_name(end->type));
            return -1;
        }
        where_t w = {i, start->integer, end->integer};
        if (w.start < 0 || w.end < w.start || w.end >= RS_CLUSTER_SLOTS) {
            snprintf(err, errlen, "range %zu: slots %lld-%lld are not within 0-%d", i, w.start,
                     w.end, RS_CLUSTER_SLOTS - 1);
            return -1;
        }
        rs_cluster_node_t master;
        if (parse_node(r->element[2], "master", &w, asked_host, &master, err, errlen) != 0)
            return -1;
        for (size_t k = 3; k < r->elements; k++)
            if (parse_node(r->element[k], "replica", &w, asked_host, NULL, err, errlen) != 0)
                return -1;
        for (long long s = w.start; s <= w.end; s++) {
            if (out->owner[s] != RS_CLUSTER_NO_OWNER) {
                snprintf(err, errlen,
                         "range %zu (slots %lld-%lld): slot %lld is in an "
                         "earlier range too",
                         i, w.start, w.end, s);
                return -1;
            }
        }
        long idx = intern_node(out, &cap, &master);
        if (idx < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (long long s = w.start; s <= w.end; s++)
            out->owner[s] = (uint16_t)idx;
    }
    return 0;
}

int rs_cluster_map_parse(const redisReply *reply, const char *asked_host, rs_cluster_map_t *out,
                         char *err, size_t errlen)
{
    out->nodes = NULL;
    out->nnodes = 0;
    clear_owners(out);
    if (reply == NULL) {
        snprintf(err, errlen, "no reply");
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "error reply: %.*s", (int)(reply->len > 200 ? 200 : reply->len),
                 reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "the reply is %s, not an array", type_name(reply->type));
        return -1;
    }
    if (parse_ranges(reply, asked_host, out, err, errlen) != 0) {
        rs_cluster_map_clear(out);
        return -1;
    }
    return 0;
}

void rs_cluster_map_clear(rs_cluster_map_t *map)
{
    if (map == NULL)
        return;
    free(map->nodes);
    map->nodes = NULL;
    map->nnodes = 0;
    clear_owners(map);
}

const rs_cluster_node_t *rs_cluster_map_owner(const rs_cluster_map_t *map, unsigned slot)
{
    if (slot >= RS_CLUSTER_SLOTS || map->owner[slot] >= map->nnodes)
        return NULL;
    return &map->nodes[map->owner[slot]];
}

bool rs_cluster_map_equal(const rs_cluster_map_t *a, const rs_cluster_map_t *b)
{
    for (unsigned s = 0; s < RS_CLUSTER_SLOTS; s++) {
        const rs_cluster_node_t *na = rs_cluster_map_owner(a, s), *nb = rs_cluster_map_owner(b, s);
        if (na == NULL || nb == NULL) {
            if (na != nb)
                return false;
            continue;
        }
        if (na->port != nb->port || strcmp(na->host, nb->host) != 0)
            return false;
    }
    return true;
}

size_t rs_cluster_map_unowned(const rs_cluster_map_t *map)
{
    size_t n = 0;
    for (unsigned s = 0; s < RS_CLUSTER_SLOTS; s++)
        n += rs_cluster_map_owner(map, s) == NULL;
    return n;
}

/* A host as a redirection may name it: printable ASCII or UTF-8 bytes, no space, no control
 * character, no NUL. */
static bool host_bytes_ok(const char *h, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

rs_redirect_kind_t rs_cluster_redirect_parse(const char *msg, size_t len, const char *asked_host,
                                             rs_redirect_t *out)
{
    rs_redirect_kind_t kind;
    size_t i;
    if (len >= 6 && memcmp(msg, "MOVED ", 6) == 0) {
        kind = RS_REDIRECT_MOVED;
        i = 6;
    } else if (len >= 4 && memcmp(msg, "ASK ", 4) == 0) {
        kind = RS_REDIRECT_ASK;
        i = 4;
    } else {
        return RS_REDIRECT_NONE;
    }

    /* <slot>: 0..16383 in decimal, without leading zeros, as Redis writes it. */
    size_t digits = 0;
    unsigned slot = 0;
    while (i < len && msg[i] >= '0' && msg[i] <= '9' && digits < 6) {
        slot = slot * 10 + (unsigned)(msg[i] - '0');
        i++;
        digits++;
    }
    bool leading_zero = digits > 1 && msg[i - digits] == '0';
    if (digits == 0 || digits > 5 || leading_zero || slot >= RS_CLUSTER_SLOTS || i >= len ||
        msg[i] != ' ')
        return RS_REDIRECT_NONE;
    i++;

    /* <host>:<port>, the rest of the text; an IPv6 host holds ':' too, so the port is after
     * the last one. */
    const char *ep = msg + i;
    size_t eplen = len - i;
    const char *colon = NULL;
    for (size_t k = eplen; k > 0; k--) {
        if (ep[k - 1] == ':') {
            colon = ep + k - 1;
            break;
        }
    }
    if (colon == NULL)
        return RS_REDIRECT_NONE;
    const char *host = ep;
    size_t hlen = (size_t)(colon - ep);
    int port = parse_port(colon + 1, eplen - hlen - 1);
    if (port == 0)
        return RS_REDIRECT_NONE;
    if (hlen == 0) {
        if (asked_host == NULL || asked_host[0] == '\0')
            return RS_REDIRECT_NONE;
        host = asked_host;
        hlen = strlen(asked_host);
    }
    if (hlen >= RS_CLUSTER_HOST_MAX || !host_bytes_ok(host, hlen) || (hlen == 1 && host[0] == '?'))
        return RS_REDIRECT_NONE;

    out->kind = kind;
    out->slot = slot;
    memcpy(out->node.host, host, hlen);
    out->node.host[hlen] = '\0';
    out->node.port = port;
    return kind;
}
