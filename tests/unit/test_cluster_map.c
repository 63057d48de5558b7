/* Unit tests for cluster_map.c: the slot map read from CLUSTER SLOTS, and the -MOVED / -ASK
 * redirections. Replies are built by hand as hiredis builds them (calloc'd objects, malloc'd
 * strings and element arrays) and freed with freeReplyObject(); a few real Redis 7 replies are
 * parsed from their RESP text. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_map.h"

#define NODE_ID "e0326fb121d9c36e6f3bd6b9af766e8d6b98543b"

/* ---- A redisReply builder: the allocations freeReplyObject() expects. ---- */

static redisReply *r_new(int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->type = type;
    return r;
}

static redisReply *r_int(long long v)
{
    redisReply *r = r_new(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *r_nil(void)
{
    return r_new(REDIS_REPLY_NIL);
}

/* A string-like reply of `len` bytes (binary-safe), NUL-terminated as hiredis makes it. */
static redisReply *r_typed(int type, const char *s, size_t len)
{
    redisReply *r = r_new(type);
    r->str = malloc(len + 1);
    assert_non_null(r->str);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *r_str(const char *s)
{
    return r_typed(REDIS_REPLY_STRING, s, strlen(s));
}

static redisReply *r_err(const char *s)
{
    return r_typed(REDIS_REPLY_ERROR, s, strlen(s));
}

/* An array of the `n` replies that follow (redisReply *), taking ownership of them. */
static redisReply *r_arr(size_t n, ...)
{
    redisReply *r = r_new(REDIS_REPLY_ARRAY);
    r->elements = n;
    if (n > 0) {
        r->element = malloc(n * sizeof(*r->element));
        assert_non_null(r->element);
    }
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

/* A Redis 7 node: [host, port, id, {}] (the endpoint map empty, RESP2's "*0"). */
static redisReply *r_node(const char *host, long long port)
{
    return r_arr(4, r_str(host), r_int(port), r_str(NODE_ID), r_arr(0));
}

/* A range [start, end, master] with no replica. */
static redisReply *r_range(long long start, long long end, redisReply *master)
{
    return r_arr(3, r_int(start), r_int(end), master);
}

/* A reply of one range covering every slot, served by `master`. */
static redisReply *r_whole(redisReply *master)
{
    return r_arr(1, r_range(0, RS_CLUSTER_SLOTS - 1, master));
}

/* Parses `reply` (then freed) into `map`; fails the test on an error. */
static void parse_ok(redisReply *reply, const char *asked_host, rs_cluster_map_t *map)
{
    char err[256] = "";
    int rc = rs_cluster_map_parse(reply, asked_host, map, err, sizeof(err));
    if (rc != 0)
        fail_msg("refused: %s", err);
    freeReplyObject(reply);
}

/* Parses RESP text with hiredis's reader, as the reply would arrive from Redis. */
static redisReply *from_resp(const char *text)
{
    redisReader *reader = redisReaderCreate();
    assert_non_null(reader);
    assert_int_equal(redisReaderFeed(reader, text, strlen(text)), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(reader, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(reader);
    return reply;
}

static void assert_owner(const rs_cluster_map_t *map, unsigned slot, const char *host, int port)
{
    const rs_cluster_node_t *n = rs_cluster_map_owner(map, slot);
    if (n == NULL)
        fail_msg("slot %u: no owner, expected %s:%d", slot, host, port);
    if (strcmp(n->host, host) != 0 || n->port != port)
        fail_msg("slot %u: owner %s:%d, expected %s:%d", slot, n->host, n->port, host, port);
}

/* ---- rs_cluster_map_parse: well-formed replies ---- */

static void cluster_map_three_masters_with_replicas(void **state)
{
    (void)state;
    /* The shape `redis-cli --cluster create ... --cluster-replicas 1` gives: three ranges,
     * each a master and a replica. */
    redisReply *reply = r_arr(
        3, r_arr(4, r_int(0), r_int(5460), r_node("10.0.0.1", 7000), r_node("10.0.0.4", 7003)),
        r_arr(4, r_int(5461), r_int(10922), r_node("10.0.0.2", 7001), r_node("10.0.0.5", 7004)),
        r_arr(4, r_int(10923), r_int(16383), r_node("10.0.0.3", 7002), r_node("10.0.0.6", 7005)));
    rs_cluster_map_t map;
    parse_ok(reply, "10.0.0.9", &map);

    /* Only the masters, in the order first seen. */
    assert_int_equal(map.nnodes, 3);
    assert_string_equal(map.nodes[0].host, "10.0.0.1");
    assert_int_equal(map.nodes[0].port, 7000);
    assert_string_equal(map.nodes[2].host, "10.0.0.3");
    assert_int_equal(rs_cluster_map_unowned(&map), 0);
    static const struct {
        unsigned slot;
        const char *host;
        int port;
    } cases[] = {
        {0, "10.0.0.1", 7000},     /* the first slot */
        {5460, "10.0.0.1", 7000},  /* a range's end is inclusive */
        {5461, "10.0.0.2", 7001},  /* the next range's start */
        {12182, "10.0.0.3", 7002}, /* "foo" */
        {16383, "10.0.0.3", 7002}, /* the last slot */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_owner(&map, cases[i].slot, cases[i].host, cases[i].port);
    /* Past the last slot: no owner, never a read out of bounds. */
    assert_null(rs_cluster_map_owner(&map, RS_CLUSTER_SLOTS));
    assert_null(rs_cluster_map_owner(&map, UINT32_MAX));
    rs_cluster_map_clear(&map);
    assert_null(map.nodes);
    assert_int_equal(map.nnodes, 0);
    assert_int_equal(rs_cluster_map_unowned(&map), RS_CLUSTER_SLOTS);
    /* Clearing twice, or NULL, is harmless. */
    rs_cluster_map_clear(&map);
    rs_cluster_map_clear(NULL);
}

static void cluster_map_node_forms(void **state)
{
    (void)state;
    char long_host[RS_CLUSTER_HOST_MAX]; /* the longest kept: RS_CLUSTER_HOST_MAX - 1 bytes */
    memset(long_host, 'h', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    struct {
        redisReply *master;
        const char *host;
        int port;
    } cases[] = {
        /* Redis 3.0's [host, port]: no id, no endpoint map. */
        {r_arr(2, r_str("10.0.0.1"), r_int(7000)), "10.0.0.1", 7000},
        /* Redis 3.2 to 6: [host, port, id]. */
        {r_arr(3, r_str("10.0.0.1"), r_int(7000), r_str(NODE_ID)), "10.0.0.1", 7000},
        /* Redis 7 with hostnames announced: RESP2 writes the endpoint map as a flat array. */
        {r_arr(4, r_str("10.0.0.1"), r_int(7000), r_str(NODE_ID),
               r_arr(2, r_str("hostname"), r_str("node-1.example"))),
         "10.0.0.1", 7000},
        /* Elements a later Redis may add are ignored. */
        {r_arr(5, r_str("10.0.0.1"), r_int(7000), r_str(NODE_ID), r_arr(0), r_int(1)), "10.0.0.1",
         7000},
        /* A port as a string of digits. */
        {r_arr(2, r_str("10.0.0.1"), r_str("7000")), "10.0.0.1", 7000},
        /* The port range's ends. */
        {r_node("10.0.0.1", 1), "10.0.0.1", 1},
        {r_node("10.0.0.1", 65535), "10.0.0.1", 65535},
        /* A hostname (cluster-preferred-endpoint-type hostname) and an IPv6 address. */
        {r_node("node-1.example", 7000), "node-1.example", 7000},
        {r_node("::1", 7000), "::1", 7000},
        /* "": the address that was asked (Redis before 7, a node not knowing its own). */
        {r_node("", 7000), "10.0.0.9", 7000},
        /* nil: Redis 7's unknown-endpoint, the address that was asked too. */
        {r_arr(4, r_nil(), r_int(7000), r_str(NODE_ID), r_arr(0)), "10.0.0.9", 7000},
        /* The longest host kept. */
        {r_node(long_host, 7000), long_host, 7000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_cluster_map_t map;
        char err[256] = "";
        redisReply *reply = r_whole(cases[i].master);
        if (rs_cluster_map_parse(reply, "10.0.0.9", &map, err, sizeof(err)) != 0)
            fail_msg("case %zu refused: %s", i, err);
        freeReplyObject(reply);
        assert_int_equal(map.nnodes, 1);
        assert_owner(&map, 0, cases[i].host, cases[i].port);
        assert_owner(&map, 16383, cases[i].host, cases[i].port);
        rs_cluster_map_clear(&map);
    }
}

static void cluster_map_replicas_checked_for_shape_only(void **state)
{
    (void)state;
    /* A replica's address is not used: a "?" host (hostnames preferred, none announced), a
     * nil host or a port 0 does not refuse the map. */
    redisReply *reply = r_arr(
        1, r_arr(6, r_int(0), r_int(16383), r_node("10.0.0.1", 7000), r_node("?", 7003),
                 r_arr(4, r_nil(), r_int(7004), r_str(NODE_ID), r_arr(0)), r_node("10.0.0.6", 0)));
    rs_cluster_map_t map;
    parse_ok(reply, NULL, &map);
    assert_int_equal(map.nnodes, 1);
    assert_owner(&map, 100, "10.0.0.1", 7000);
    rs_cluster_map_clear(&map);
}

static void cluster_map_dedupes_masters(void **state)
{
    (void)state;
    /* A master serving several ranges (after a resharding) is one node; the same host on
     * another port is another node. */
    redisReply *reply = r_arr(
        4, r_range(0, 99, r_node("10.0.0.1", 7000)), r_range(100, 199, r_node("10.0.0.2", 7000)),
        r_range(200, 299, r_node("10.0.0.1", 7000)), r_range(300, 16383, r_node("10.0.0.1", 7001)));
    rs_cluster_map_t map;
    parse_ok(reply, NULL, &map);
    assert_int_equal(map.nnodes, 3);
    assert_int_equal(map.owner[0], 0);
    assert_int_equal(map.owner[100], 1);
    assert_int_equal(map.owner[250], 0);
    assert_int_equal(map.owner[300], 2);
    assert_owner(&map, 300, "10.0.0.1", 7001);
    rs_cluster_map_clear(&map);
}

static void cluster_map_unowned_slots(void **state)
{
    (void)state;
    struct {
        redisReply *reply;
        size_t unowned;
        size_t nnodes;
    } cases[] = {
        /* A cluster not set up yet: no range at all. */
        {r_arr(0), RS_CLUSTER_SLOTS, 0},
        /* A gap of 100 slots (a failover in progress). */
        {r_arr(2, r_range(0, 99, r_node("10.0.0.1", 7000)),
               r_range(200, 16383, r_node("10.0.0.2", 7000))),
         100, 2},
        /* One slot served, and ranges in any order. */
        {r_arr(2, r_range(16383, 16383, r_node("10.0.0.1", 7000)),
               r_range(0, 0, r_node("10.0.0.2", 7000))),
         RS_CLUSTER_SLOTS - 2, 2},
        /* Every slot. */
        {r_whole(r_node("10.0.0.1", 7000)), 0, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_cluster_map_t map;
        parse_ok(cases[i].reply, NULL, &map);
        if (rs_cluster_map_unowned(&map) != cases[i].unowned || map.nnodes != cases[i].nnodes)
            fail_msg("case %zu: %zu unowned, %zu nodes", i, rs_cluster_map_unowned(&map),
                     map.nnodes);
        rs_cluster_map_clear(&map);
    }
}

/* ---- rs_cluster_map_parse: malformed replies ---- */

static void cluster_map_refuses_malformed(void **state)
{
    (void)state;
    char host300[301];
    memset(host300, 'h', 300);
    host300[300] = '\0';
    struct {
        redisReply *reply;
        const char *asked_host;
        const char *err; /* a part of the message */
    } cases[] = {
        /* Not an array: an error (cluster support disabled), a status, a string, nil. */
        {r_err("ERR This instance has cluster support disabled"), "h",
         "error reply: ERR This instance has cluster support disabled"},
        {r_typed(REDIS_REPLY_STATUS, "OK", 2), "h", "the reply is a status"},
        {r_str("*3"), "h", "the reply is a string"},
        {r_nil(), "h", "the reply is nil"},
        /* A range that is not an array, or too short to hold a master. */
        {r_arr(1, r_int(0)), "h", "range 0 is an integer"},
        {r_arr(1, r_arr(2, r_int(0), r_int(16383))), "h", "range 0 is a short array"},
        /* Start or end not integers. */
        {r_arr(1, r_arr(3, r_str("0"), r_int(16383), r_node("a", 1))), "h",
         "start is a string and end an integer"},
        {r_arr(1, r_arr(3, r_int(0), r_nil(), r_node("a", 1))), "h", "end nil"},
        /* Ranges out of bounds, or backwards. */
        {r_arr(1, r_range(-1, 100, r_node("a", 1))), "h", "slots -1-100 are not within 0-16383"},
        {r_arr(1, r_range(0, 16384, r_node("a", 1))), "h", "slots 0-16384"},
        {r_arr(1, r_range(100, 99, r_node("a", 1))), "h", "slots 100-99"},
        {r_arr(1, r_range(LLONG_MAX, LLONG_MAX, r_node("a", 1))), "h", "are not within"},
        /* Overlapping ranges: refused, not resolved. */
        {r_arr(2, r_range(0, 100, r_node("a", 1)), r_range(100, 200, r_node("b", 1))), "h",
         "range 1 (slots 100-200): slot 100 is in an earlier range too"},
        {r_arr(2, r_range(0, 16383, r_node("a", 1)), r_range(0, 16383, r_node("a", 1))), "h",
         "slot 0 is in an earlier range too"},
        /* The master not an array of at least host and port. */
        {r_arr(1, r_range(0, 1, r_str("a:1"))), "h", "master is a string"},
        {r_arr(1, r_range(0, 1, r_arr(1, r_str("a")))), "h", "master is a short array"},
        /* Host, port, id, endpoints of the wrong type. */
        {r_arr(1, r_range(0, 1, r_arr(2, r_int(1), r_int(7000)))), "h",
         "master host is an integer"},
        {r_arr(1, r_range(0, 1, r_arr(2, r_str("a"), r_nil()))), "h", "master port is nil"},
        {r_arr(1, r_range(0, 1, r_arr(3, r_str("a"), r_int(7000), r_int(5)))), "h",
         "master id is an integer"},
        {r_arr(1, r_range(0, 1, r_arr(4, r_str("a"), r_int(7000), r_str(NODE_ID), r_str("x")))),
         "h", "master endpoint metadata is a string"},
        /* Ports out of range, as integers or strings. */
        {r_arr(1, r_range(0, 1, r_node("a", 0))), "h", "master port is not in 1..65535"},
        {r_arr(1, r_range(0, 1, r_node("a", 70000))), "h", "master port is not in 1..65535"},
        {r_arr(1, r_range(0, 1, r_node("a", -7000))), "h", "master port is not in 1..65535"},
        {r_arr(1, r_range(0, 1, r_arr(2, r_str("a"), r_str("70000")))), "h", "not in 1..65535"},
        {r_arr(1, r_range(0, 1, r_arr(2, r_str("a"), r_str("07000")))), "h", "not in 1..65535"},
        {r_arr(1, r_range(0, 1, r_arr(2, r_str("a"), r_str("7000x")))), "h", "not in 1..65535"},
        {r_arr(1, r_range(0, 1, r_arr(2, r_str("a"), r_str("")))), "h", "not in 1..65535"},
        /* "?": hostnames preferred and the master announces none. */
        {r_arr(1, r_range(0, 1, r_node("?", 7000))), "h", "master host is \"?\""},
        /* An unknown endpoint and no asked host to put in its place. */
        {r_arr(1, r_range(0, 1, r_node("", 7000))), NULL, "unknown endpoint and no asked host"},
        {r_arr(1, r_range(0, 1, r_node("", 7000))), "", "unknown endpoint and no asked host"},
        /* A host too long, or holding a NUL byte. */
        {r_arr(1, r_range(0, 1, r_node(host300, 7000))), "h", "master host is too long"},
        {r_arr(1, r_range(0, 1, r_arr(2, r_typed(REDIS_REPLY_STRING, "a\0b", 3), r_int(1)))), "h",
         "master host holds a NUL byte"},
        /* An asked host too long. */
        {r_arr(1, r_range(0, 1, r_node("", 7000))), host300, "master host is too long"},
        /* A replica of the wrong shape. */
        {r_arr(1, r_arr(4, r_int(0), r_int(1), r_node("a", 1), r_str("b:1"))), "h",
         "range 0 (slots 0-1): replica is a string"},
        {r_arr(1, r_arr(4, r_int(0), r_int(1), r_node("a", 1), r_arr(2, r_str("b"), r_nil()))), "h",
         "replica port is nil"},
        /* A well-formed range before the bad one: nothing of it is kept. */
        {r_arr(2, r_range(0, 99, r_node("a", 1)), r_range(100, 16383, r_node("?", 1))), "h",
         "range 1 (slots 100-16383): master host is \"?\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_cluster_map_t map;
        char err[256] = "";
        int rc = rs_cluster_map_parse(cases[i].reply, cases[i].asked_host, &map, err, sizeof(err));
        if (rc != -1 || strstr(err, cases[i].err) == NULL)
            fail_msg("case %zu: rc %d, message \"%s\", expected \"%s\"", i, rc, err, cases[i].err);
        /* The map owns nothing and serves nothing. */
        assert_null(map.nodes);
        assert_int_equal(map.nnodes, 0);
        assert_int_equal(rs_cluster_map_unowned(&map), RS_CLUSTER_SLOTS);
        freeReplyObject(cases[i].reply);
    }
    /* No reply at all (a connection lost). */
    rs_cluster_map_t map;
    char err[256] = "";
    assert_int_equal(rs_cluster_map_parse(NULL, "h", &map, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no reply"));
}

/* ---- Real replies ---- */

static void cluster_map_real_redis7_replies(void **state)
{
    (void)state;
    /* Read from redis 7.0.15 (3 masters, 3 replicas, `redis-cli --cluster create
     * --cluster-replicas 1`) with raw RESP2 CLUSTER SLOTS; also in fuzz/corpus/fuzz_cluster_map/.
     */
    static const char ip[] =
        "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:34406\r\n$40\r\n"
        "828e9d7a8873d0a3a2841ccbccf7b3646c109ef8\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:34762\r\n"
        "$40\r\n5d5f7721b41ff47dadb6d1919c80260193edb4ae\r\n*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n"
        "$9\r\n127.0.0.1\r\n:40607\r\n$40\r\ne0326fb121d9c36e6f3bd6b9af766e8d6b98543b\r\n*0\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:30045\r\n$40\r\nd257bde00b506b8ec65751b8cd43e98cf7c19bb3\r\n"
        "*0\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:34840\r\n$40\r\n"
        "5c82a07245faa9b58d3bb079d39c9c903a8d7636\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:41891\r\n"
        "$40\r\neb95f984385f3fb4c71c8632cf9f905cfa15c39e\r\n*0\r\n";
    /* The same with cluster-preferred-endpoint-type unknown-endpoint: nil hosts, the address
     * in the endpoint map. */
    static const char unknown[] =
        "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$-1\r\n:34406\r\n$40\r\n"
        "828e9d7a8873d0a3a2841ccbccf7b3646c109ef8\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
        "$-1\r\n:34762\r\n$40\r\n5d5f7721b41ff47dadb6d1919c80260193edb4ae\r\n*4\r\n$2\r\nip\r\n"
        "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$18\r\nnode-34762.example\r\n*4\r\n:5461\r\n"
        ":10922\r\n*4\r\n$-1\r\n:40607\r\n$40\r\ne0326fb121d9c36e6f3bd6b9af766e8d6b98543b\r\n"
        "*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$18\r\nnode-40607.example\r\n"
        "*4\r\n$-1\r\n:30045\r\n$40\r\nd257bde00b506b8ec65751b8cd43e98cf7c19bb3\r\n*4\r\n$2\r\n"
        "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$18\r\nnode-30045.example\r\n*4\r\n:10923\r\n"
        ":16383\r\n*4\r\n$-1\r\n:34840\r\n$40\r\n5c82a07245faa9b58d3bb079d39c9c903a8d7636\r\n"
        "*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$18\r\nnode-34840.example\r\n"
        "*4\r\n$-1\r\n:41891\r\n$40\r\neb95f984385f3fb4c71c8632cf9f905cfa15c39e\r\n*4\r\n$2\r\n"
        "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$18\r\nnode-41891.example\r\n";
    /* cluster-preferred-endpoint-type hostname, the first master without a hostname: "?". */
    static const char missing[] =
        "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$1\r\n?\r\n:34406\r\n$40\r\n"
        "828e9d7a8873d0a3a2841ccbccf7b3646c109ef8\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
        "$18\r\nnode-34762.example\r\n:34762\r\n$40\r\n"
        "5d5f7721b41ff47dadb6d1919c80260193edb4ae\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
        ":5461\r\n:10922\r\n*4\r\n$18\r\nnode-40607.example\r\n:40607\r\n$40\r\n"
        "e0326fb121d9c36e6f3bd6b9af766e8d6b98543b\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
        "$18\r\nnode-30045.example\r\n:30045\r\n$40\r\n"
        "d257bde00b506b8ec65751b8cd43e98cf7c19bb3\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
        ":10923\r\n:16383\r\n*4\r\n$18\r\nnode-34840.example\r\n:34840\r\n$40\r\n"
        "5c82a07245faa9b58d3bb079d39c9c903a8d7636\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
        "$18\r\nnode-41891.example\r\n:41891\r\n$40\r\n"
        "eb95f984385f3fb4c71c8632cf9f905cfa15c39e\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n";

    rs_cluster_map_t a, b;
    parse_ok(from_resp(ip), "192.0.2.1", &a);
    assert_int_equal(a.nnodes, 3);
    assert_owner(&a, 0, "127.0.0.1", 34406);
    assert_owner(&a, 5461, "127.0.0.1", 40607);
    assert_owner(&a, 12182, "127.0.0.1", 34840);
    /* Nil hosts are the asked address: the same map when that is 127.0.0.1. */
    parse_ok(from_resp(unknown), "127.0.0.1", &b);
    assert_true(rs_cluster_map_equal(&a, &b));
    rs_cluster_map_clear(&b);
    parse_ok(from_resp(unknown), "192.0.2.1", &b);
    assert_owner(&b, 12182, "192.0.2.1", 34840);
    assert_false(rs_cluster_map_equal(&a, &b));
    rs_cluster_map_clear(&b);
    rs_cluster_map_clear(&a);

    redisReply *reply = from_resp(missing);
    char err[256] = "";
    assert_int_equal(rs_cluster_map_parse(reply, "127.0.0.1", &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "range 0 (slots 0-5460): master host is \"?\""));
    freeReplyObject(reply);
}

/* ---- rs_cluster_map_equal ---- */

static void cluster_map_equal_by_address(void **state)
{
    (void)state;
    struct {
        redisReply *a, *b;
        bool equal;
    } cases[] = {
        /* The same masters listed in another order: other indexes, same addresses. */
        {r_arr(2, r_range(0, 8191, r_node("10.0.0.1", 7000)),
               r_range(8192, 16383, r_node("10.0.0.2", 7000))),
         r_arr(2, r_range(8192, 16383, r_node("10.0.0.2", 7000)),
               r_range(0, 8191, r_node("10.0.0.1", 7000))),
         true},
        /* The same split into more ranges. */
        {r_whole(r_node("10.0.0.1", 7000)),
         r_arr(2, r_range(0, 99, r_node("10.0.0.1", 7000)),
               r_range(100, 16383, r_node("10.0.0.1", 7000))),
         true},
        /* Two empty maps. */
        {r_arr(0), r_arr(0), true},
        /* One slot moved. */
        {r_arr(2, r_range(0, 8191, r_node("10.0.0.1", 7000)),
               r_range(8192, 16383, r_node("10.0.0.2", 7000))),
         r_arr(2, r_range(0, 8192, r_node("10.0.0.1", 7000)),
               r_range(8193, 16383, r_node("10.0.0.2", 7000))),
         false},
        /* Same host, another port. */
        {r_whole(r_node("10.0.0.1", 7000)), r_whole(r_node("10.0.0.1", 7001)), false},
        /* Same port, another host. */
        {r_whole(r_node("10.0.0.1", 7000)), r_whole(r_node("10.0.0.2", 7000)), false},
        /* A slot served in one, unowned in the other. */
        {r_whole(r_node("10.0.0.1", 7000)), r_arr(1, r_range(1, 16383, r_node("10.0.0.1", 7000))),
         false},
        /* Everything unowned against everything served. */
        {r_arr(0), r_whole(r_node("10.0.0.1", 7000)), false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_cluster_map_t a, b;
        parse_ok(cases[i].a, NULL, &a);
        parse_ok(cases[i].b, NULL, &b);
        if (rs_cluster_map_equal(&a, &b) != cases[i].equal ||
            rs_cluster_map_equal(&b, &a) != cases[i].equal)
            fail_msg("case %zu: expected %s", i, cases[i].equal ? "equal" : "different");
        assert_true(rs_cluster_map_equal(&a, &a));
        rs_cluster_map_clear(&a);
        rs_cluster_map_clear(&b);
    }
}

/* ---- rs_cluster_redirect_parse ---- */

static void cluster_map_redirect_parse(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        size_t len; /* 0: strlen(msg) */
        const char *asked_host;
        rs_redirect_kind_t kind;
        unsigned slot;
        const char *host;
        int port;
    } cases[] = {
        /* The two redirections as Redis writes them (hiredis drops the '-'). */
        {"MOVED 3999 127.0.0.1:6381", 0, "h", RS_REDIRECT_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 3999 127.0.0.1:6381", 0, "h", RS_REDIRECT_ASK, 3999, "127.0.0.1", 6381},
        /* IPv6 without brackets: the port follows the last ':'. */
        {"MOVED 1 ::1:7001", 0, "h", RS_REDIRECT_MOVED, 1, "::1", 7001},
        {"ASK 2 2001:db8::7:7002", 0, "h", RS_REDIRECT_ASK, 2, "2001:db8::7", 7002},
        /* A hostname (cluster-preferred-endpoint-type hostname). */
        {"MOVED 12182 node-34840.example:34840", 0, "h", RS_REDIRECT_MOVED, 12182,
         "node-34840.example", 34840},
        /* The extremes of slot and port. */
        {"MOVED 0 a:1", 0, "h", RS_REDIRECT_MOVED, 0, "a", 1},
        {"MOVED 16383 a:65535", 0, "h", RS_REDIRECT_MOVED, 16383, "a", 65535},
        /* Redis 7's unknown endpoint: the asked host. */
        {"MOVED 12182 :34840", 0, "10.0.0.9", RS_REDIRECT_MOVED, 12182, "10.0.0.9", 34840},
        {"ASK 12182 :34840", 0, "10.0.0.9", RS_REDIRECT_ASK, 12182, "10.0.0.9", 34840},
        /* ... refused when there is none to put in its place. */
        {"MOVED 12182 :34840", 0, NULL, RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 12182 :34840", 0, "", RS_REDIRECT_NONE, 0, NULL, 0},
        /* "?": no address known. */
        {"MOVED 12182 ?:34840", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        /* Slots out of range, signed, with leading zeros, or missing. */
        {"MOVED 16384 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 99999 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 4294967297 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0}, /* 2^32 + 1 */
        {"MOVED -1 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED +1 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 01 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        /* Missing parts. */
        {"MOVED", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED ", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"ASK 3999", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 ", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 127.0.0.1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 127.0.0.1:", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 :", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        /* Ports out of range or not decimal. */
        {"MOVED 3999 a:0", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a:65536", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a:70000", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a:123456", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a:06381", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a:-1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        /* Trailing junk: a space, a word, a CRLF, a byte glued to the port. */
        {"MOVED 3999 127.0.0.1:6381 ", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 127.0.0.1:6381 extra", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 127.0.0.1:6381\r\n", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 127.0.0.1:6381x", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        /* Extra spaces, spaces or control bytes in the host, a NUL. */
        {"MOVED  3999 a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999  a:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a b:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a\tb:1", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 3999 a\0b:1", 15, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        /* Not redirections at all. */
        {"", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"ERR unknown command 'FOO'", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"CROSSSLOT Keys in request don't hash to the same slot", 0, "h", RS_REDIRECT_NONE, 0, NULL,
         0},
        {"TRYAGAIN Multiple keys request during rehashing of slot", 0, "h", RS_REDIRECT_NONE, 0,
         NULL, 0},
        {"-MOVED 3999 127.0.0.1:6381", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"moved 3999 127.0.0.1:6381", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVEDX 3999 127.0.0.1:6381", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
        {"ASKING", 0, "h", RS_REDIRECT_NONE, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len > 0 ? cases[i].len : strlen(cases[i].msg);
        rs_redirect_t r;
        memset(&r, 0x5a, sizeof(r));
        rs_redirect_kind_t kind =
            rs_cluster_redirect_parse(cases[i].msg, len, cases[i].asked_host, &r);
        if (kind != cases[i].kind)
            fail_msg("case %zu (\"%s\"): kind %d, expected %d", i, cases[i].msg, (int)kind,
                     (int)cases[i].kind);
        if (kind == RS_REDIRECT_NONE) {
            /* `out` untouched. */
            rs_redirect_t untouched;
            memset(&untouched, 0x5a, sizeof(untouched));
            assert_memory_equal(&r, &untouched, sizeof(r));
            continue;
        }
        assert_int_equal(r.kind, kind);
        assert_int_equal(r.slot, cases[i].slot);
        assert_int_equal(r.node.port, cases[i].port);
        assert_string_equal(r.node.host, cases[i].host);
    }

    /* The longest host kept (RS_CLUSTER_HOST_MAX - 1 bytes), and one byte more, in the text
     * or as the asked host. */
    for (size_t hlen = RS_CLUSTER_HOST_MAX - 1; hlen <= RS_CLUSTER_HOST_MAX; hlen++) {
        char msg[RS_CLUSTER_HOST_MAX + 32], asked[RS_CLUSTER_HOST_MAX + 1];
        memset(asked, 'h', hlen);
        asked[hlen] = '\0';
        int n = snprintf(msg, sizeof(msg), "MOVED 1 %s:7000", asked);
        assert_true(n > 0 && (size_t)n < sizeof(msg));
        rs_redirect_kind_t want = hlen < RS_CLUSTER_HOST_MAX ? RS_REDIRECT_MOVED : RS_REDIRECT_NONE;
        rs_redirect_t r;
        assert_int_equal(rs_cluster_redirect_parse(msg, (size_t)n, "h", &r), want);
        if (want != RS_REDIRECT_NONE)
            assert_string_equal(r.node.host, asked);
        assert_int_equal(rs_cluster_redirect_parse("MOVED 1 :7000", 13, asked, &r), want);
        if (want != RS_REDIRECT_NONE)
            assert_string_equal(r.node.host, asked);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cluster_map_three_masters_with_replicas),
        cmocka_unit_test(cluster_map_node_forms),
        cmocka_unit_test(cluster_map_replicas_checked_for_shape_only),
        cmocka_unit_test(cluster_map_dedupes_masters),
        cmocka_unit_test(cluster_map_unowned_slots),
        cmocka_unit_test(cluster_map_refuses_malformed),
        cmocka_unit_test(cluster_map_real_redis7_replies),
        cmocka_unit_test(cluster_map_equal_by_address),
        cmocka_unit_test(cluster_map_redirect_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
