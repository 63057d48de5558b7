/* Unit tests for entry.c: binary-safe entries and their JSON encoding. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

/* Decodes standard base64 for checking; test-only, assumes valid input. */
static size_t unbase64(const char *in, unsigned char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *in != '\0' && *in != '='; in++) {
        acc = acc << 6 | (uint32_t)(strchr(alphabet, *in) - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    return n;
}

/* Encodes `fields` and parses the JSON back. */
static json_t *roundtrip(const rs_field_t *fields, size_t n)
{
    rs_entry_t *e = rs_entry_new(NULL, "events", "1-0", 3, fields, n);
    assert_non_null(e);
    size_t len = 0;
    char *text = rs_entry_to_json(e, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_null(strchr(text, '\n')); /* one line, whatever the content */
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_ALLOW_NUL, &jerr);
    if (root == NULL)
        fail_msg("invalid JSON (%s): %s", jerr.text, text);
    free(text);
    rs_entry_free(e);
    return root;
}

static void entry_json_carries_head(void **state)
{
    (void)state;
    rs_field_t f[] = {{"message", 7, "Message #1", 10}, {"type", 4, "test", 4}};
    json_t *root = roundtrip(f, 2);
    assert_string_equal(json_string_value(json_object_get(root, "stream")), "events");
    assert_string_equal(json_string_value(json_object_get(root, "id")), "1-0");
    assert_int_equal(json_integer_value(json_object_get(root, "delivery")), 3);
    json_t *fields = json_object_get(root, "fields");
    assert_string_equal(json_string_value(json_object_get(fields, "message")), "Message #1");
    assert_string_equal(json_string_value(json_object_get(fields, "type")), "test");
    json_decref(root);
}

static void entry_json_is_binary_safe(void **state)
{
    (void)state;
    static const char nul[] = {'a', '\0', 'b'};
    static const char bad_utf8[] = {'\xff', '\xfe', 'x', '\xc3'};
    static const char bad_name[] = {'k', '\x80'};
    rs_field_t f[] = {
        {"nul", 3, nul, sizeof(nul)},           /* NUL inside: a JSON string \u0000 */
        {"bad", 3, bad_utf8, sizeof(bad_utf8)}, /* invalid UTF-8: {"base64": ...} */
        {"empty", 5, "", 0},                    /* empty value stays an empty string */
        {bad_name, sizeof(bad_name), "v", 1},   /* invalid UTF-8 name: "base64:" key */
        {"quote", 5, "\"}\n</script>", 12},     /* JSON metacharacters are escaped */
        {nul, sizeof(nul), "n", 1},             /* NUL in a name: "base64:" key, since
                                                 * jansson refuses \u0000 in a key */
    };
    json_t *root = roundtrip(f, 6);
    json_t *fields = json_object_get(root, "fields");

    json_t *v = json_object_get(fields, "nul");
    assert_int_equal(json_string_length(v), 3);
    assert_memory_equal(json_string_value(v), nul, 3);

    v = json_object_get(json_object_get(fields, "bad"), "base64");
    unsigned char buf[16];
    assert_int_equal(unbase64(json_string_value(v), buf), sizeof(bad_utf8));
    assert_memory_equal(buf, bad_utf8, sizeof(bad_utf8));

    assert_string_equal(json_string_value(json_object_get(fields, "empty")), "");
    assert_string_equal(json_string_value(json_object_get(fields, "base64:a4A=")), "v");
    assert_string_equal(json_string_value(json_object_get(fields, "quote")), "\"}\n</script>");
    assert_string_equal(json_string_value(json_object_get(fields, "base64:YQBi")), "n");
    json_decref(root);
}

static void entry_json_keeps_large_values(void **state)
{
    (void)state;
    /* 1 MiB of invalid UTF-8 and 1 MiB of text: neither is truncated. */
    size_t big = 1 << 20;
    char *text = malloc(big), *bin = malloc(big);
    assert_non_null(text);
    assert_non_null(bin);
    for (size_t i = 0; i < big; i++) {
        text[i] = (char)('a' + i % 26);
        bin[i] = (char)(0x80 | (i & 0x7f));
    }
    rs_field_t f[] = {{"text", 4, text, big}, {"bin", 3, bin, big}};
    json_t *root = roundtrip(f, 2);
    json_t *fields = json_object_get(root, "fields");
    assert_int_equal(json_string_length(json_object_get(fields, "text")), big);
    assert_memory_equal(json_string_value(json_object_get(fields, "text")), text, big);
    const char *b64 = json_string_value(json_object_get(json_object_get(fields, "bin"), "base64"));
    assert_int_equal(strlen(b64), (big + 2) / 3 * 4);
    unsigned char *back = malloc(big);
    assert_int_equal(unbase64(b64, back), big);
    assert_memory_equal(back, bin, big);
    free(back);
    json_decref(root);
    free(text);
    free(bin);
}

static void entry_base64_padding(void **state)
{
    (void)state;
    /* Lengths 1, 2 and 3 exercise both padding cases and none. */
    static const struct {
        const char *bytes;
        size_t len;
        const char *b64;
    } cases[] = {
        {"\xff", 1, "/w=="},
        {"\xff\xfe", 2, "//4="},
        {"\xff\xfe\xfd", 3, "//79"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_field_t f = {"v", 1, cases[i].bytes, cases[i].len};
        json_t *root = roundtrip(&f, 1);
        json_t *v =
            json_object_get(json_object_get(json_object_get(root, "fields"), "v"), "base64");
        assert_string_equal(json_string_value(v), cases[i].b64);
        json_decref(root);
    }
}

static void entry_json_keeps_every_name(void **state)
{
    (void)state;
    /* Redis lets a name repeat, and a UTF-8 name may itself begin with "base64:": neither may
     * lose a value or be mistaken for another name. */
    rs_field_t f[] = {
        {"a", 1, "1", 1},              /* first of three values of "a" */
        {"b", 1, "x", 1},              /* a single value stays a plain string */
        {"a", 1, "2", 1},              /* second value: "a" becomes an array */
        {"a", 1, "\xff", 1},           /* third value, not UTF-8: {"base64": ...} inside */
        {"base64:x", 8, "literal", 7}, /* a literal name with the prefix is encoded too */
    };
    json_t *root = roundtrip(f, 5);
    json_t *fields = json_object_get(root, "fields");
    json_t *a = json_object_get(fields, "a");
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "1");
    assert_string_equal(json_string_value(json_array_get(a, 1)), "2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 2), "base64")), "/w==");
    assert_string_equal(json_string_value(json_object_get(fields, "b")), "x");
    assert_null(json_object_get(fields, "base64:x"));
    /* "base64:x" in base64 is YmFzZTY0Ong= */
    assert_string_equal(json_string_value(json_object_get(fields, "base64:YmFzZTY0Ong=")),
                        "literal");
    assert_int_equal(json_object_size(fields), 3);
    json_decref(root);
}

static void entry_rejects_oversized_id(void **state)
{
    (void)state;
    char id[RS_ENTRY_ID_MAX + 1];
    memset(id, '1', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    assert_null(rs_entry_new(NULL, "s", id, 1, NULL, 0));
    /* An entry without fields is fine. */
    rs_entry_t *e = rs_entry_new(NULL, "s", "5-1", 1, NULL, 0);
    assert_non_null(e);
    assert_int_equal(e->nfields, 0);
    rs_entry_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entry_json_carries_head),
        cmocka_unit_test(entry_json_is_binary_safe),
        cmocka_unit_test(entry_json_keeps_large_values),
        cmocka_unit_test(entry_base64_padding),
        cmocka_unit_test(entry_json_keeps_every_name),
        cmocka_unit_test(entry_rejects_oversized_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
