/* Unit tests for trace.c: the sampler, span building, and the OTLP/HTTP JSON encoding. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

static void trace_sampler_table(void **state)
{
    (void)state;
    static const uint8_t low_zero[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t low_max[16] = {0,    0,    0,    0,    0,    0,    0,    0,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t low_half[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0};
    rs_trace_context_t sampled = {.flags = RS_TRACE_FLAG_SAMPLED};
    rs_trace_context_t unsampled = {.flags = 0};
    const struct {
        const char *why;
        double ratio;
        const rs_trace_context_t *parent;
        const uint8_t *trace_id;
        bool want;
    } cases[] = {
        /* Ratio 0 never samples a root, even the smallest id. */
        {"ratio 0, low bytes 0", 0.0, NULL, low_zero, false},
        {"ratio 0, low bytes max", 0.0, NULL, low_max, false},
        /* Ratio 1 always samples a root, even the largest id. */
        {"ratio 1, low bytes max", 1.0, NULL, low_max, true},
        {"ratio 1, low bytes 0", 1.0, NULL, low_zero, true},
        /* In between, the low 8 bytes against ratio * 2^64; the high bytes do not count. */
        {"ratio 0.5, low bytes 0", 0.5, NULL, low_zero, true},
        {"ratio 0.5, low bytes 2^63", 0.5, NULL, low_half, false},
        {"ratio 0.6, low bytes 2^63", 0.6, NULL, low_half, true},
        /* With a parent, its flag wins whatever the ratio. */
        {"sampled parent, ratio 0", 0.0, &sampled, low_max, true},
        {"unsampled parent, ratio 1", 1.0, &unsampled, low_zero, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = rs_trace_should_sample(cases[i].ratio, cases[i].parent, cases[i].trace_id);
        if (got != cases[i].want)
            fail_msg("%s: got %d", cases[i].why, got);
    }
}

static void trace_span_start_ids(void **state)
{
    (void)state;
    rs_span_t root, child;
    /* A root gets fresh, non-zero ids and no parent; ratio 1 samples it. */
    assert_int_equal(rs_span_start(&root, "events publish", RS_SPAN_KIND_PRODUCER, NULL, 1.0), 0);
    assert_false(root.has_parent);
    assert_true(rs_span_sampled(&root));
    static const uint8_t zero[16];
    assert_memory_not_equal(root.ctx.trace_id, zero, 16);
    assert_memory_not_equal(root.ctx.span_id, zero, 8);
    /* A child keeps the trace id, records the parent's span id, and follows its flag even
     * with ratio 0. */
    assert_int_equal(rs_span_start(&child, "events process", RS_SPAN_KIND_CONSUMER, &root.ctx, 0.0),
                     0);
    assert_true(child.has_parent);
    assert_true(rs_span_sampled(&child));
    assert_memory_equal(child.ctx.trace_id, root.ctx.trace_id, 16);
    assert_memory_equal(child.parent_span_id, root.ctx.span_id, 8);
    assert_memory_not_equal(child.ctx.span_id, root.ctx.span_id, 8);
    /* Ratio 0 without a parent: not sampled. */
    assert_int_equal(rs_span_start(&root, "x", RS_SPAN_KIND_PRODUCER, NULL, 0.0), 0);
    assert_false(rs_span_sampled(&root));
}

static const char *attr_type(json_t *attrs, const char *key, json_t **value)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) != 0)
            continue;
        json_t *v = json_object_get(a, "value");
        assert_int_equal(json_object_size(v), 1);
        const char *type = json_object_iter_key(json_object_iter(v));
        *value = json_object_get(v, type);
        return type;
    }
    return NULL;
}

static void assert_decimal_string(json_t *v)
{
    assert_true(json_is_string(v));
    const char *s = json_string_value(v);
    assert_true(s[0] != '\0');
    assert_int_equal(strspn(s, "0123456789"), strlen(s));
}

static void assert_hex_string(json_t *v, size_t len)
{
    assert_true(json_is_string(v));
    assert_int_equal(strlen(json_string_value(v)), len);
    assert_int_equal(strspn(json_string_value(v), "0123456789abcdef"), len);
}

static void trace_otlp_json_shape(void **state)
{
    (void)state;
    rs_span_t spans[2];
    assert_int_equal(rs_span_start(&spans[0], "events publish", RS_SPAN_KIND_PRODUCER, NULL, 1.0),
                     0);
    rs_span_set_str(&spans[0], "messaging.system", "redis");
    rs_span_end(&spans[0]);
    assert_int_equal(
        rs_span_start(&spans[1], "events process", RS_SPAN_KIND_CONSUMER, &spans[0].ctx, 1.0), 0);
    rs_span_set_str(&spans[1], "messaging.message.id", "1-0");
    rs_span_set_int(&spans[1], "messaging.redis.delivery_count", 3);
    rs_span_set_status(&spans[1], RS_SPAN_STATUS_ERROR, "handler said \"no\"");
    rs_span_end(&spans[1]);
    rs_trace_resource_t res = {"redstream", "1.2.3", "host1"};

    size_t len;
    char *text = rs_trace_otlp_json(&res, spans, 2, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(root);

    json_t *rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
    json_t *value;
    json_t *rattrs = json_object_get(json_object_get(rs, "resource"), "attributes");
    assert_string_equal(attr_type(rattrs, "service.name", &value), "stringValue");
    assert_string_equal(json_string_value(value), "redstream");
    assert_string_equal(attr_type(rattrs, "service.version", &value), "stringValue");
    assert_string_equal(attr_type(rattrs, "host.name", &value), "stringValue");
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    json_t *scope = json_object_get(ss, "scope");
    assert_string_equal(json_string_value(json_object_get(scope, "name")), "redstream");
    assert_string_equal(json_string_value(json_object_get(scope, "version")), "1.2.3");
    json_t *list = json_object_get(ss, "spans");
    assert_int_equal(json_array_size(list), 2);

    /* The producer span: a root, so no parentSpanId; status unset is code 0. */
    json_t *p = json_array_get(list, 0);
    assert_hex_string(json_object_get(p, "traceId"), 32);
    assert_hex_string(json_object_get(p, "spanId"), 16);
    assert_null(json_object_get(p, "parentSpanId"));
    assert_string_equal(json_string_value(json_object_get(p, "name")), "events publish");
    assert_true(json_is_integer(json_object_get(p, "kind")));
    assert_int_equal(json_integer_value(json_object_get(p, "kind")), 4);
    assert_decimal_string(json_object_get(p, "startTimeUnixNano"));
    assert_decimal_string(json_object_get(p, "endTimeUnixNano"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "status"), "code")), 0);

    /* The consumer span: same trace, parent = the producer's span id, an int attribute as a
     * decimal string, an error status with its message. */
    json_t *c = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(c, "traceId")),
                        json_string_value(json_object_get(p, "traceId")));
    assert_string_equal(json_string_value(json_object_get(c, "parentSpanId")),
                        json_string_value(json_object_get(p, "spanId")));
    assert_int_equal(json_integer_value(json_object_get(c, "kind")), 5);
    json_t *cattrs = json_object_get(c, "attributes");
    assert_string_equal(attr_type(cattrs, "messaging.message.id", &value), "stringValue");
    assert_string_equal(json_string_value(value), "1-0");
    assert_string_equal(attr_type(cattrs, "messaging.redis.delivery_count", &value), "intValue");
    assert_string_equal(json_string_value(value), "3");
    json_t *status = json_object_get(c, "status");
    assert_int_equal(json_integer_value(json_object_get(status, "code")), 2);
    assert_string_equal(json_string_value(json_object_get(status, "message")),
                        "handler said \"no\"");
    json_decref(root);
}

/* Texts longer than a span's storage are cut at a UTF-8 boundary, so the JSON stays valid. */
static void trace_long_text_truncated(void **state)
{
    (void)state;
    rs_span_t s;
    char name[RS_SPAN_TEXT_MAX * 2];
    for (size_t i = 0; i + 2 < sizeof(name); i += 2)
        memcpy(name + i, "\xc3\xa9", 2); /* é */
    name[sizeof(name) - 2] = '\0';
    assert_int_equal(rs_span_start(&s, name + 1, RS_SPAN_KIND_CONSUMER, NULL, 1.0), 0);
    rs_span_end(&s);
    rs_trace_resource_t res = {"redstream", "1", "h"};
    size_t len;
    char *text = rs_trace_otlp_json(&res, &s, 1, &len);
    /* name + 1 starts mid-character: jansson refuses invalid UTF-8, so NULL is the honest
     * answer there; a valid name must always encode. */
    free(text);
    assert_int_equal(rs_span_start(&s, name, RS_SPAN_KIND_CONSUMER, NULL, 1.0), 0);
    rs_span_end(&s);
    text = rs_trace_otlp_json(&res, &s, 1, &len);
    assert_non_null(text);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trace_sampler_table),
        cmocka_unit_test(trace_span_start_ids),
        cmocka_unit_test(trace_otlp_json_shape),
        cmocka_unit_test(trace_long_text_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
