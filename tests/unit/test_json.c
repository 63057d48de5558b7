/* Unit tests for json.c: the base64 encoder, the one rule for text that is not valid UTF-8,
 * and the failure-counting tree builders the renderers share. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Bytes with a length, for cases that hold NUL. */
typedef struct {
    const char *s;
    size_t len;
} bytes_t;

#define BYTES(lit)                                                                                 \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* Checks that `j` is a JSON string of exactly want[0..len), then releases it. */
static void assert_json_bytes(json_t *j, const char *want, size_t len)
{
    assert_non_null(j);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), len);
    assert_memory_equal(json_string_value(j), want, len);
    json_decref(j);
}

/* The test vectors of RFC 4648 section 10, with no prefix and with the dashboard's. */
static void json_base64_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"", ""},               /* nothing: no padding either */
        {"f", "Zg=="},          /* one byte left over: two pads */
        {"fo", "Zm8="},         /* two bytes left over: one pad */
        {"foo", "Zm9v"},        /* a whole group */
        {"foob", "Zm9vYg=="},   /* a group and one byte */
        {"fooba", "Zm9vYmE="},  /* a group and two bytes */
        {"foobar", "Zm9vYmFy"}, /* two whole groups */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *plain = rs_json_base64(cases[i].in, strlen(cases[i].in), "");
        assert_non_null(plain);
        assert_string_equal(plain, cases[i].out);
        free(plain);

        char *prefixed = rs_json_base64(cases[i].in, strlen(cases[i].in), "base64:");
        assert_non_null(prefixed);
        assert_memory_equal(prefixed, "base64:", 7);
        assert_string_equal(prefixed + 7, cases[i].out);
        free(prefixed);
    }
}

/* Binary input: every byte value is encoded, NUL included, and the alphabet's last two
 * digits are '+' and '/' (not the URL-safe '-' and '_'). */
static void json_base64_binary(void **state)
{
    (void)state;
    static const struct {
        bytes_t in;
        const char *out;
    } cases[] = {
        {BYTES("\x00"), "AA=="},         /* a lone NUL */
        {BYTES("\x00\xff"), "AP8="},     /* NUL then 0xff, as a dead letter's binary value */
        {BYTES("\xfb\xff\xbf"), "+/+/"}, /* digits 62 and 63 */
        {BYTES("\xff\xff\xff"), "////"}, /* all bits set */
        {BYTES("\x00\x00\x00"), "AAAA"}, /* no bit set */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *out = rs_json_base64(cases[i].in.s, cases[i].in.len, "");
        assert_non_null(out);
        assert_string_equal(out, cases[i].out);
        free(out);
    }
    /* No data at all: a NULL pointer with length 0 is allowed. */
    char *out = rs_json_base64(NULL, 0, "p:");
    assert_non_null(out);
    assert_string_equal(out, "p:");
    free(out);
}

/* Valid UTF-8 passes through unchanged; each byte that does not start a valid sequence
 * becomes U+FFFD and the rest is kept. */
static void json_text_replaces_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        bytes_t in;
        bytes_t out;
    } cases[] = {
        {BYTES("events"), BYTES("events")},                          /* ASCII */
        {BYTES(""), BYTES("")},                                      /* empty */
        {BYTES("caf\xc3\xa9"), BYTES("caf\xc3\xa9")},                /* two-byte sequence */
        {BYTES("\xe2\x82\xac"), BYTES("\xe2\x82\xac")},              /* three bytes: the euro */
        {BYTES("\xf0\x9f\x98\x80"), BYTES("\xf0\x9f\x98\x80")},      /* four bytes: an emoji */
        {BYTES("x\xffy"), BYTES("x\xef\xbf\xbdy")},                  /* a byte never valid */
        {BYTES("bad\xff"), BYTES("bad\xef\xbf\xbd")},                /* at the end */
        {BYTES("\x80z"), BYTES("\xef\xbf\xbdz")},                    /* a stray continuation */
        {BYTES("\xc0\xaf"), BYTES("\xef\xbf\xbd\xef\xbf\xbd")},      /* overlong '/': 2 bytes */
        {BYTES("\xed\xa0\x80"),                                      /* a surrogate (U+D800) */
         BYTES("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd")},             /* is 3 invalid bytes */
        {BYTES("\xf4\x90\x80\x80"),                                  /* past U+10FFFF */
         BYTES("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd")}, /* is 4 invalid bytes */
        {BYTES("ab\xe2\x82"), BYTES("ab\xef\xbf\xbd\xef\xbf\xbd")},  /* a sequence cut short */
        {BYTES("\xc3(\xc3\xa9"), BYTES("\xef\xbf\xbd(\xc3\xa9")},    /* a lead byte without
                                                                      * its continuation */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        assert_json_bytes(rs_json_text(cases[i].in.s, cases[i].in.len), cases[i].out.s,
                          cases[i].out.len);
}

/* NUL is valid UTF-8: it is kept, in valid and repaired text alike, and serialised as
 * \u0000; the length, not a terminator, says where the text ends. */
static void json_text_keeps_nul(void **state)
{
    (void)state;
    assert_json_bytes(rs_json_text("a\0b", 3), "a\0b", 3);
    assert_json_bytes(rs_json_text("a\0\xff", 3), "a\0\xef\xbf\xbd", 5);
    assert_json_bytes(rs_json_text("\0", 1), "\0", 1);
    assert_json_bytes(rs_json_text("abc", 1), "a", 1); /* only len bytes are read */
    assert_json_bytes(rs_json_text(NULL, 0), "", 0);

    json_t *j = rs_json_text("a\0\xff", 3);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_ENCODE_ANY);
    assert_non_null(text);
    assert_string_equal(text, "\"a\\u0000\xef\xbf\xbd\"");
    free(text);
    json_decref(j);
}

/* What rs_json_utf8_each() handed over, in order. */
typedef struct {
    size_t n;
    const char *p[8];
    size_t len[8];
} pieces_t;

static void collect(void *arg, const char *p, size_t n)
{
    pieces_t *c = arg;
    assert_true(c->n < ARRAY_LEN(c->p));
    c->p[c->n] = p;
    c->len[c->n] = n;
    c->n++;
}

/* The walk behind rs_json_text() and the Prometheus labels: each valid sequence is handed
 * over whole, pointing into the input; each invalid byte is one U+FFFD. */
static void json_utf8_each_pieces(void **state)
{
    (void)state;
    static const char in[] = "a\xc3\xa9\xff";
    pieces_t c = {0};
    rs_json_utf8_each(in, sizeof(in) - 1, collect, &c);
    assert_int_equal(c.n, 3);
    assert_ptr_equal(c.p[0], in); /* 'a' */
    assert_int_equal(c.len[0], 1);
    assert_ptr_equal(c.p[1], in + 1); /* U+00E9, both bytes at once */
    assert_int_equal(c.len[1], 2);
    assert_int_equal(c.len[2], 3); /* 0xff */
    assert_memory_equal(c.p[2], "\xef\xbf\xbd", 3);

    pieces_t none = {0};
    rs_json_utf8_each("", 0, collect, &none); /* nothing in, nothing out */
    assert_int_equal(none.n, 0);
}

/* A C string is its text; NULL is JSON null (a value that is absent, not empty). */
static void json_cstr_null_is_null(void **state)
{
    (void)state;
    json_t *j = rs_json_cstr(NULL);
    assert_non_null(j);
    assert_true(json_is_null(j));
    json_decref(j);
    assert_json_bytes(rs_json_cstr("caf\xc3\xa9"), "caf\xc3\xa9", 5);
    assert_json_bytes(rs_json_cstr("q\xfe"), "q\xef\xbf\xbd", 4);
    assert_json_bytes(rs_json_cstr(""), "", 0);
}

/* A counter fits JSON's signed 64 bits or is held at INT64_MAX, never wrapped negative. */
static void json_u64_saturates(void **state)
{
    (void)state;
    static const struct {
        uint64_t in;
        json_int_t out;
    } cases[] = {
        {0, 0},                               /* zero */
        {42, 42},                             /* small */
        {(uint64_t)INT64_MAX, INT64_MAX},     /* the largest that fits */
        {(uint64_t)INT64_MAX + 1, INT64_MAX}, /* one past: held */
        {UINT64_MAX, INT64_MAX},              /* the largest counter: held */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        json_t *j = rs_json_u64(cases[i].in);
        assert_non_null(j);
        assert_true(json_is_integer(j));
        assert_true(json_integer_value(j) == cases[i].out);
        json_decref(j);
    }
}

/* Setting and appending build the tree and count nothing on the happy path; a missing value
 * (an allocation that failed) or a missing container is counted, and a value that cannot be
 * placed is released (the ASan build's leak check proves it). */
static void json_set_append_count_failures(void **state)
{
    (void)state;
    int bad = 0;
    json_t *root = json_object(), *list = json_array();
    assert_non_null(root);
    assert_non_null(list);
    rs_json_set(root, "name", rs_json_cstr("events"), &bad);
    rs_json_set(root, "count", rs_json_u64(7), &bad);
    rs_json_append(list, rs_json_text("a", 1), &bad);
    rs_json_append(list, json_null(), &bad);
    rs_json_set(root, "list", list, &bad);
    assert_int_equal(bad, 0);
    assert_string_equal(json_string_value(json_object_get(root, "name")), "events");
    assert_int_equal(json_integer_value(json_object_get(root, "count")), 7);
    assert_int_equal(json_array_size(json_object_get(root, "list")), 2);

    rs_json_set(root, "missing", NULL, &bad); /* a NULL value */
    assert_int_equal(bad, 1);
    assert_null(json_object_get(root, "missing"));
    rs_json_append(list, NULL, &bad);
    assert_int_equal(bad, 2);
    rs_json_set(NULL, "orphan", json_string("x"), &bad); /* no object: the value is freed */
    assert_int_equal(bad, 3);
    rs_json_append(root, json_string("x"), &bad); /* not an array: the value is freed */
    assert_int_equal(bad, 4);
    json_decref(root);
}

/* Serialising: compact or indented with a final line feed, the length matching; nothing when
 * any part failed or there is no tree, and the tree is released either way. */
static void json_finish_serialises_and_releases(void **state)
{
    (void)state;
    static const struct {
        size_t flags;
        bool newline;
        const char *want;
    } cases[] = {
        {JSON_COMPACT, false, "{\"a\":1,\"b\":[null]}"}, /* the dashboard */
        {JSON_INDENT(2), true, "{\n  \"a\": 1,\n  \"b\": [\n    null\n  ]\n}\n"}, /* /streams */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        json_t *root = json_pack("{s:i,s:[n]}", "a", 1, "b");
        assert_non_null(root);
        size_t len = 0;
        char *text =
            rs_json_finish(root, 0, cases[i].flags | JSON_PRESERVE_ORDER, cases[i].newline, &len);
        assert_non_null(text);
        assert_string_equal(text, cases[i].want);
        assert_int_equal(len, strlen(cases[i].want));
        free(text);
    }

    /* len may be NULL. */
    char *text = rs_json_finish(json_object(), 0, JSON_COMPACT, false, NULL);
    assert_non_null(text);
    assert_string_equal(text, "{}");
    free(text);

    /* A failure counted: no text, the tree released, *len untouched. */
    size_t len = 99;
    assert_null(rs_json_finish(json_pack("{s:s}", "k", "v"), 1, JSON_COMPACT, false, &len));
    assert_int_equal(len, 99);

    /* No tree (its allocation failed): no text. */
    assert_null(rs_json_finish(NULL, 0, JSON_COMPACT, true, &len));
    assert_int_equal(len, 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_base64_rfc4648_vectors),
        cmocka_unit_test(json_base64_binary),
        cmocka_unit_test(json_text_replaces_invalid_utf8),
        cmocka_unit_test(json_text_keeps_nul),
        cmocka_unit_test(json_utf8_each_pieces),
        cmocka_unit_test(json_cstr_null_is_null),
        cmocka_unit_test(json_u64_saturates),
        cmocka_unit_test(json_set_append_count_failures),
        cmocka_unit_test(json_finish_serialises_and_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
