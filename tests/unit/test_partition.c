/* Unit tests for partition.c: the FNV-1a hash that picks a key's partition stream, and the
 * producer's key sequence. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "partition.h"

static void partition_fnv1a_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        size_t len;
        uint32_t hash;
    } cases[] = {
        /* The published FNV-1a 32-bit test vectors. */
        {"", 0, UINT32_C(0x811c9dc5)}, /* the empty key is the offset basis */
        {"a", 1, UINT32_C(0xe40c292c)},
        {"foobar", 6, UINT32_C(0xbf9cf968)},
        /* The producer's keys, computed independently (Python 3, as in partition.h). */
        {"key-0", 5, UINT32_C(0x58e035d9)},
        {"key-1", 5, UINT32_C(0x57e03446)},
        {"key-49", 6, UINT32_C(0x50fea014)},
        /* Bytes, not characters: 0xff is 255, not -1, and a NUL inside the key counts. */
        {"\xff\x00", 2, UINT32_C(0x6e1e20ca)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rs_fnv1a32(cases[i].key, cases[i].len), cases[i].hash);
    /* NULL with no bytes is the empty key. */
    assert_int_equal(rs_fnv1a32(NULL, 0), UINT32_C(0x811c9dc5));
}

static void partition_of_is_hash_mod_n(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        unsigned n;
        uint32_t partition;
    } cases[] = {
        {"", 4, 1},      /* 0x811c9dc5 % 4 */
        {"a", 4, 0},     /* 0xe40c292c % 4 */
        {"key-0", 4, 1}, /* 0x58e035d9 % 4 */
        {"key-1", 4, 2}, /* 0x57e03446 % 4 */
        {"key-49", 1024, 20},
        {"user-42", 4, 3}, /* 0x026073ab % 4 */
        {"user-42", 1024, 939},
        {"foobar", 1, 0}, /* one partition: always 0 */
        {"foobar", 0, 0}, /* 0 is treated as 1, never a division by zero */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rs_partition_of(cases[i].key, strlen(cases[i].key), cases[i].n),
                         cases[i].partition);
}

static void partition_of_in_range_and_spread(void **state)
{
    (void)state;
    /* 1000 keys over 8 partitions: each in range, and every partition gets a fair share
     * (125 expected; FNV-1a gives 124..126 for these keys). */
    unsigned counts[8] = {0};
    for (uint64_t k = 0; k < 1000; k++) {
        char key[RS_KEY_TEXT_MAX];
        size_t len = rs_key_format(key, k);
        uint32_t p = rs_partition_of(key, len, 8);
        assert_true(p < 8);
        counts[p]++;
    }
    for (unsigned p = 0; p < 8; p++) {
        assert_true(counts[p] >= 110);
        assert_true(counts[p] <= 140);
    }
    /* The largest partition count: still in range. */
    for (uint64_t k = 0; k < 5000; k++) {
        char key[RS_KEY_TEXT_MAX];
        size_t len = rs_key_format(key, k);
        assert_true(rs_partition_of(key, len, RS_PARTITIONS_MAX) < RS_PARTITIONS_MAX);
    }
}

static void partition_key_format(void **state)
{
    (void)state;
    static const struct {
        uint64_t index;
        const char *text;
    } cases[] = {
        {0, "key-0"},
        {7, "key-7"},
        {10, "key-10"},
        {9999999, "key-9999999"},                 /* the largest --keys 10000000 makes */
        {UINT64_MAX, "key-18446744073709551615"}, /* the longest fits RS_KEY_TEXT_MAX */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[RS_KEY_TEXT_MAX];
        size_t len = rs_key_format(buf, cases[i].index);
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(len, strlen(cases[i].text));
    }
}

static void partition_key_round_robin(void **state)
{
    (void)state;
    /* Without a hot key, message n carries key (n - 1) mod K. */
    for (uint64_t seq = 1; seq <= 250; seq++)
        assert_int_equal(rs_key_index(seq, 50, RS_HOT_SHARE_NONE), (seq - 1) % 50);
    /* One key: always key 0, hot share or not. */
    assert_int_equal(rs_key_index(12345, 1, RS_HOT_SHARE_NONE), 0);
    assert_int_equal(rs_key_index(12345, 1, 30), 0);
    /* 0 keys is treated as 1. */
    assert_int_equal(rs_key_index(7, 0, RS_HOT_SHARE_NONE), 0);
    /* The largest message number wraps no arithmetic into a wrong range. */
    assert_int_equal(rs_key_index(UINT64_MAX, RS_KEYS_MAX, RS_HOT_SHARE_NONE),
                     (UINT64_MAX - 1) % RS_KEYS_MAX);
}

static void partition_key_hot_share(void **state)
{
    (void)state;
    static const struct {
        int share;
        uint64_t keys;
    } cases[] = {
        {90, 50},  /* the hot-key test: 90% to key 0 */
        {50, 2},   /* two keys, half each */
        {37, 10},  /* a share that does not divide 100 evenly */
        {0, 10},   /* no hot messages: key 0 unused, the rest round robin */
        {100, 10}, /* every message to key 0 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int share = cases[i].share;
        uint64_t keys = cases[i].keys;
        uint64_t counts[50] = {0};
        /* 1000 messages: exactly share * 10 hot, the rest spread over keys 1..K-1 in turn. */
        uint64_t next_cold = 1;
        for (uint64_t seq = 1; seq <= 1000; seq++) {
            uint64_t k = rs_key_index(seq, keys, share);
            assert_true(k < keys);
            counts[k]++;
            if (k != 0) {
                assert_int_equal(k, next_cold);
                next_cold = next_cold + 1 == keys ? 1 : next_cold + 1;
            }
        }
        assert_int_equal(counts[0], (uint64_t)share * 10);
        uint64_t cold = 1000 - (uint64_t)share * 10;
        for (uint64_t k = 1; k < keys; k++) {
            uint64_t fair = cold / (keys - 1);
            assert_true(counts[k] == fair || counts[k] == fair + 1);
        }
    }
}

static void partition_key_hot_share_any_window(void **state)
{
    (void)state;
    /* Any 100 consecutive messages hold exactly P hot ones, even at the top of the range
     * where seq * P would overflow 64 bits. */
    static const uint64_t starts[] = {1, 12345, UINT64_MAX - 99};
    static const int shares[] = {1, 37, 90, 99};
    for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++)
        for (size_t p = 0; p < sizeof(shares) / sizeof(shares[0]); p++) {
            int hot = 0;
            for (uint64_t i = 0; i < 100; i++)
                hot += rs_key_index(starts[s] + i, 1000, shares[p]) == 0;
            assert_int_equal(hot, shares[p]);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(partition_fnv1a_vectors),
        cmocka_unit_test(partition_of_is_hash_mod_n),
        cmocka_unit_test(partition_of_in_range_and_spread),
        cmocka_unit_test(partition_key_format),
        cmocka_unit_test(partition_key_round_robin),
        cmocka_unit_test(partition_key_hot_share),
        cmocka_unit_test(partition_key_hot_share_any_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
