/* Unit tests for cluster_slot.c: Redis Cluster key slots (CRC16/XMODEM and hash tags) and the
 * dead-letter stream name that shares its stream's slot. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster_slot.h"

static void cluster_slot_matches_redis(void **state)
{
    (void)state;
    /* Every slot below was read from redis 7.0 (7.0.15) CLUSTER KEYSLOT on a server started
     * with --cluster-enabled yes (binary keys sent as raw RESP bulk strings). */
    static const struct {
        const char *key;
        size_t len;
        unsigned slot;
    } cases[] = {
        /* The empty key: CRC16 of nothing is 0. */
        {"", 0, 0},
        /* Plain keys: the whole key is hashed. */
        {"foo", 3, 12182},
        {"bar", 3, 5061},
        {"orders", 6, 105},
        {"events", 6, 9102},
        /* The CRC16/XMODEM check value 0x31c3, modulo 16384. */
        {"123456789", 9, 12739},
        /* A hash tag: only "user1000" is hashed, so both keys share a slot. */
        {"{user1000}.following", 20, 3443},
        {"{user1000}.followers", 20, 3443},
        /* "{}" is an empty tag: the whole key is hashed, tags after it are not looked for. */
        {"foo{}{bar}", 10, 8363},
        {"{}", 2, 15257},
        /* The tag runs from the first '{' to the first '}' after it: "{bar". */
        {"foo{{bar}}zap", 13, 4015},
        /* Only the first tag counts: "bar", hence the slot of "bar". */
        {"foo{bar}{zap}", 13, 5061},
        /* A '}' before any '{' is an ordinary byte. */
        {"}{x}", 4, 16287},
        {"x", 1, 16287},
        {"a}b", 3, 7866},
        /* An unclosed '{' is an ordinary byte. */
        {"a{b", 3, 13340},
        {"{a{b}:dlq", 9, 13340},
        /* Binary keys: bytes above 0x7f, and NUL bytes inside the key and its tag. */
        {"\x00", 1, 0},
        {"\x00\xff", 2, 7920},
        {"\xff\xfe\xfd", 3, 287},
        {"a\x00"
         "b",
         3, 8383},
        {"{\x00}x", 4, 0},
        {"{\xff}\x00", 4, 7920},
        {"\xc3\xa9v\xc3\xa9nements", 12, 7969},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned got = rs_cluster_keyslot(cases[i].key, cases[i].len);
        if (got != cases[i].slot)
            fail_msg("case %zu: slot %u, redis says %u", i, got, cases[i].slot);
    }
}

static void cluster_slot_hash_tag_detection(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        bool tag;
    } cases[] = {
        {"{orders}.eu", true},   /* a tag at the start */
        {"eu.{orders}", true},   /* anywhere */
        {"foo{{bar}}zap", true}, /* "{bar" is a tag */
        {"{x}", true},           /* one byte is enough */
        {"orders", false},       /* no braces */
        {"", false},             /* the empty key */
        {"foo{}{bar}", false},   /* the first '{' closes at once: no tag at all */
        {"{}", false},           /* an empty tag */
        {"a{b", false},          /* never closed */
        {"a}b", false},          /* '}' alone */
        {"}{", false},           /* '}' before the '{' */
        {"}{x", false},          /* the '{' is never closed */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (rs_cluster_has_hash_tag(cases[i].key, strlen(cases[i].key)) != cases[i].tag)
            fail_msg("case %zu (\"%s\"): expected %s", i, cases[i].key,
                     cases[i].tag ? "a tag" : "no tag");
}

static void cluster_slot_in_range(void **state)
{
    (void)state;
    /* Every two-byte key lands in 0..16383. */
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            char key[2] = {(char)a, (char)b};
            assert_true(rs_cluster_keyslot(key, 2) < RS_CLUSTER_SLOTS);
        }
    }
}

static void cluster_slot_dlq_names(void **state)
{
    (void)state;
    static const struct {
        const char *stream, *suffix;
        bool cluster;
        const char *name; /* NULL: refused */
        const char *err;  /* a part of the message when refused */
    } cases[] = {
        /* Standalone: "<stream><suffix>" whatever the name holds. */
        {"orders", ":dlq", false, "orders:dlq", NULL},
        {"a}b", ":dlq", false, "a}b:dlq", NULL},
        {"", ":dlq", false, ":dlq", NULL},
        /* Cluster, no tag: the whole name becomes the tag. */
        {"orders", ":dlq", true, "{orders}:dlq", NULL},
        {"events", ".dead", true, "{events}.dead", NULL},
        /* An unclosed '{' is fine inside the new tag: "{a{b}" tags "a{b". */
        {"a{b", ":dlq", true, "{a{b}:dlq", NULL},
        /* "foo{}{bar}" has no tag (its first '{' closes at once) but holds '}': refused. */
        {"foo{}{bar}", ":dlq", true, NULL, "must not contain '}'"},
        /* Cluster, with a tag: kept, the tag still decides. */
        {"{x}y", ":dlq", true, "{x}y:dlq", NULL},
        {"{orders}.eu", ":dlq", true, "{orders}.eu:dlq", NULL},
        /* A suffix with braces does not matter: the stream's tag comes first. */
        {"orders", "{dlq}", true, "{orders}{dlq}", NULL},
        {"{x}y", "{dlq}", true, "{x}y{dlq}", NULL},
        /* Cluster, no tag but a '}': no tag could reproduce the slot. */
        {"a}b", ":dlq", true, NULL,
         "stream \"a}b\": in cluster mode a stream name without a hash tag must not contain "
         "'}' (its dead-letter stream could not share its slot); rename it or give it a hash "
         "tag like {a}b"},
        /* ... and a name starting with '}' gets a suggestion whose tag is not empty. */
        {"}ab", ":dlq", true, NULL, "give it a hash tag like {tag}}ab"},
        /* Cluster, the empty name: "{}:dlq" would hash the whole name. */
        {"", ":dlq", true, NULL, "stream \"\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64], err[256] = "";
        int rc = rs_cluster_dlq_name(cases[i].stream, cases[i].suffix, cases[i].cluster, out,
                                     sizeof(out), err, sizeof(err));
        if (cases[i].name == NULL) {
            if (rc != -1 || strstr(err, cases[i].err) == NULL)
                fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err);
            continue;
        }
        if (rc != 0 || strcmp(out, cases[i].name) != 0)
            fail_msg("case %zu: rc %d, name \"%s\" (%s)", i, rc, rc == 0 ? out : "", err);
        if (cases[i].cluster)
            assert_int_equal(rs_cluster_keyslot(out, strlen(out)),
                             rs_cluster_keyslot(cases[i].stream, strlen(cases[i].stream)));
    }
}

static void cluster_slot_dlq_name_too_small(void **state)
{
    (void)state;
    static const struct {
        bool cluster;
        size_t outlen; /* the buffer given */
        int rc;
    } cases[] = {
        /* "orders:dlq" is 10 bytes plus the NUL. */
        {false, 11, 0},
        {false, 10, -1},
        {false, 0, -1},
        /* "{orders}:dlq" is 12 bytes plus the NUL. */
        {true, 13, 0},
        {true, 12, -1},
        {true, 11, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[16], err[256] = "";
        int rc = rs_cluster_dlq_name("orders", ":dlq", cases[i].cluster, out, cases[i].outlen, err,
                                     sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d", i, rc);
        if (rc != 0 && (strstr(err, "stream \"orders\"") == NULL || strstr(err, "longer") == NULL))
            fail_msg("case %zu: message \"%s\"", i, err);
    }
}

static void cluster_slot_dlq_name_shares_slot(void **state)
{
    (void)state;
    /* Every stream name of up to 3 bytes from an alphabet rich in braces: in cluster mode the
     * name is either refused or on the stream's slot. */
    static const char abc[] = "ab{}";
    char stream[4];
    size_t count = 0;
    for (size_t len = 1; len <= 3; len++) {
        size_t combos = 1;
        for (size_t k = 0; k < len; k++)
            combos *= 4;
        for (size_t c = 0; c < combos; c++) {
            size_t v = c;
            for (size_t k = 0; k < len; k++, v /= 4)
                stream[k] = abc[v % 4];
            stream[len] = '\0';
            char out[32], err[256];
            if (rs_cluster_dlq_name(stream, ":dlq", true, out, sizeof(out), err, sizeof(err)) !=
                0) {
                /* Refused only for a '}' without a tag. */
                assert_false(rs_cluster_has_hash_tag(stream, len));
                assert_non_null(strchr(stream, '}'));
                continue;
            }
            assert_int_equal(rs_cluster_keyslot(out, strlen(out)), rs_cluster_keyslot(stream, len));
            count++;
        }
    }
    assert_true(count > 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cluster_slot_matches_redis),
        cmocka_unit_test(cluster_slot_hash_tag_detection),
        cmocka_unit_test(cluster_slot_in_range),
        cmocka_unit_test(cluster_slot_dlq_names),
        cmocka_unit_test(cluster_slot_dlq_name_too_small),
        cmocka_unit_test(cluster_slot_dlq_name_shares_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
