/*
 * The dashboard's JSON bodies and embedded page (see dashboard.h).
 *
 * DESIGN: jansson builds every body, so escaping is the library's; strings it refuses (not
 * valid UTF-8) are made ASCII-safe first. The page's files are compiled in by CMake
 * (cmake/embed_dashboard.cmake writes dashboard_assets.c from dashboard/), so the binary needs
 * nothing at run time and the page works offline.
 */

#include "dashboard.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message.h"

const rs_dashboard_asset_t *rs_dashboard_asset(const char *path)
{
    for (size_t i = 0; i < rs_dashboard_nassets; i++)
        if (strcmp(path, rs_dashboard_assets[i].path) == 0)
            return &rs_dashboard_assets[i];
    return NULL;
}

const char *rs_dashboard_ordering(const char *stream)
{
    (void)stream;
    return "none";
}

/* json_object_set_new, counting failures in *bad. */
static void set(json_t *obj, const char *key, json_t *value, int *bad)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        (*bad)++;
}

static void append(json_t *arr, json_t *value, int *bad)
{
    if (value == NULL || json_array_append_new(arr, value) != 0)
        (*bad)++;
}

/* A JSON string of s[0..len); when that is not valid UTF-8, NUL and non-ASCII bytes are '?'. */
static json_t *text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j != NULL)
        return j;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = s[i] == '\0' || (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

static json_t *cstr(const char *s)
{
    return s != NULL ? text(s, strlen(s)) : json_null();
}

static json_t *u64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Serialises and frees `root` (NULL or bad > 0: NULL after freeing). */
static char *finish(json_t *root, int bad, size_t *len)
{
    char *out = NULL;
    if (root != NULL && bad == 0) {
        out = json_dumps(root, JSON_COMPACT);
        if (out != NULL)
            *len = strlen(out);
    }
    json_decref(root);
    return out;
}

char *rs_dashboard_stats_json(const rs_dashboard_stats_t *s, size_t *len)
{
    const rs_metrics_t *m = s->m;
    int bad = 0;
    json_t *root = json_object();
    if (root == NULL)
        return NULL;
    set(root, "version", cstr(m->version), &bad);
    set(root, "uptime_s", json_real(s->uptime_s), &bad);
    json_t *redis = json_object();
    if (redis != NULL) {
        set(redis, "ready", json_boolean(s->redis_ready), &bad);
        set(redis, "state", cstr(s->redis_state), &bad);
    }
    set(root, "redis", redis, &bad);
    set(root, "group", cstr(m->group), &bad);
    set(root, "consumer", cstr(m->consumer), &bad);
    set(root, "queue",
        json_pack("{s:I,s:I}", "depth", (json_int_t)m->queue_depth, "capacity",
                  (json_int_t)m->queue_capacity),
        &bad);
    set(root, "workers",
        json_pack("{s:I,s:I}", "busy", (json_int_t)m->workers_busy, "total",
                  (json_int_t)m->workers),
        &bad);
    uint64_t handled = 0, failed = 0, retried = 0, dead = 0;
    json_t *streams = json_array();
    for (size_t i = 0; streams != NULL && i < m->nstreams; i++) {
        const rs_metrics_stream_t *ms = &m->streams[i];
        handled += ms->succeeded;
        failed += ms->failed;
        retried += ms->retried;
        dead += ms->dead_lettered;
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "name", cstr(ms->name), &bad);
            set(o, "handler", cstr(ms->handler), &bad);
            set(o, "ordering", cstr(rs_dashboard_ordering(ms->name)), &bad);
            set(o, "handled", u64(ms->succeeded), &bad);
            set(o, "failed", u64(ms->failed), &bad);
            set(o, "retried", u64(ms->retried), &bad);
            set(o, "dead_lettered", u64(ms->dead_lettered), &bad);
            set(o, "inflight", json_integer(ms->inflight), &bad);
            set(o, "reader_connected", json_boolean(ms->reader_connected), &bad);
        }
        append(streams, o, &bad);
    }
    set(root, "streams", streams, &bad);
    set(root, "totals",
        json_pack("{s:o,s:o,s:o,s:o}", "handled", u64(handled), "failed", u64(failed), "retried",
                  u64(retried), "dead_lettered", u64(dead)),
        &bad);
    json_t *series = json_object(), *sh = json_array(), *sf = json_array();
    for (size_t k = 0; sh != NULL && sf != NULL && k < RS_STATS_RING_SECONDS; k++) {
        const rs_stats_rate_t *r = &s->rates[k];
        append(sh, r->known ? u64(r->handled) : json_null(), &bad);
        append(sf, r->known ? u64(r->failed) : json_null(), &bad);
    }
    if (series != NULL) {
        set(series, "handled", sh, &bad);
        set(series, "failed", sf, &bad);
    } else {
        json_decref(sh);
        json_decref(sf);
    }
    set(root, "series", series, &bad);
    return finish(root, bad, len);
}

/* RFC 3339 in UTC with milliseconds, from CLOCK_REALTIME nanoseconds. */
static json_t *time_json(int64_t ns)
{
    char buf[40];
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return json_null();
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)((ns / 1000000) % 1000));
    return json_string(buf);
}

char *rs_dashboard_problems_json(const rs_log_problem_t *p, size_t n, size_t *len)
{
    int bad = 0;
    json_t *root = json_object(), *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "time", time_json(p[i].time_ns), &bad);
            set(o, "level", cstr(rs_log_level_name(p[i].level)), &bad);
            set(o, "module", cstr(p[i].module), &bad);
            set(o, "stream", p[i].stream[0] != '\0' ? cstr(p[i].stream) : json_null(), &bad);
            set(o, "message", cstr(p[i].message), &bad);
        }
        append(list, o, &bad);
    }
    if (root == NULL) {
        json_decref(list);
        return NULL;
    }
    set(root, "problems", list, &bad);
    return finish(root, bad, len);
}

/* "base64:" and the bytes in base64, as a JSON string. */
static json_t *base64_text(const char *s, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(7 + (len + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    memcpy(out, "base64:", 7);
    o = 7;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)(unsigned char)s[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)s[i + 2];
        out[o++] = digits[(v >> 18) & 63];
        out[o++] = digits[(v >> 12) & 63];
        out[o++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? digits[v & 63] : '=';
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

/* A field value: its text when valid UTF-8 without NUL, else base64. A value cut inside a
 * UTF-8 sequence is shown without the sequence's start. */
static json_t *value_json(const rs_info_string_t *v, bool cut)
{
    size_t len = v->len;
    if (cut) /* drop a sequence the cut split */
        for (size_t back = 0; back < 3 && len > 0; back++) {
            unsigned char c = (unsigned char)v->str[len - 1];
            if (c < 0x80)
                break;
            len--;
            if (c >= 0xC0)
                break;
        }
    if (memchr(v->str, '\0', len) == NULL) {
        json_t *j = json_stringn(v->str, len);
        if (j != NULL)
            return j;
    }
    return base64_text(v->str, v->len);
}

static bool is_field(const rs_info_field_t *f, const char *name)
{
    return f->name.len == strlen(name) && memcmp(f->name.str, name, f->name.len) == 0;
}

/* The command that moves `stream`'s dead letters back, with the name quoted for a POSIX shell
 * when it holds anything but [A-Za-z0-9_.:/-]. */
static json_t *replay_json(const char *stream, const char *config_path)
{
    size_t n = strlen(stream) + (config_path != NULL ? strlen(config_path) : 0);
    char *buf = malloc(n * 4 + 128);
    if (buf == NULL)
        return NULL;
    size_t o = (size_t)sprintf(buf, "redstream-producer ");
    const char *words[] = {config_path != NULL ? "-c" : NULL, config_path, "--replay-dlq", stream};
    for (size_t w = 0; w < 4; w++) {
        const char *s = words[w];
        if (s == NULL)
            continue;
        bool plain = s[0] != '\0' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                                               "wxyz0123456789_.:/-") == strlen(s);
        if (!plain)
            buf[o++] = '\'';
        for (; *s != '\0'; s++) {
            if (!plain && *s == '\'') {
                memcpy(buf + o, "'\\''", 4);
                o += 4;
            } else
                buf[o++] = *s;
        }
        if (!plain)
            buf[o++] = '\'';
        buf[o++] = ' ';
    }
    json_t *j = text(buf, o - 1);
    free(buf);
    return j;
}

char *rs_dashboard_dead_letters_json(const char *stream, const char *dlq,
                                     const rs_info_entries_t *e, const char *config_path,
                                     size_t *len)
{
    int bad = 0;
    json_t *root = json_object(), *list = json_array();
    if (root == NULL || list == NULL) {
        json_decref(root);
        json_decref(list);
        return NULL;
    }
    set(root, "stream", cstr(stream), &bad);
    set(root, "dead_letter_stream", cstr(dlq), &bad);
    set(root, "replay", replay_json(stream, config_path), &bad);
    set(root, "error", cstr(e->error), &bad);
    for (size_t i = 0; i < e->nentries; i++) {
        const rs_info_entry_t *d = &e->entries[i];
        json_t *o = json_object(), *fields = json_array();
        if (o == NULL || fields == NULL) {
            json_decref(o);
            json_decref(fields);
            bad++;
            break;
        }
        set(o, "id", text(d->id.str, d->id.len), &bad);
        json_t *orig = json_null(), *count = json_null(), *error = json_null(), *when = json_null();
        for (size_t k = 0; k < d->nfields; k++) {
            const rs_info_field_t *f = &d->fields[k];
            json_t **meta = is_field(f, RS_DLQ_FIELD_ID)           ? &orig
                            : is_field(f, RS_DLQ_FIELD_DELIVERIES) ? &count
                            : is_field(f, RS_DLQ_FIELD_ERROR)      ? &error
                            : is_field(f, RS_DLQ_FIELD_TIME)       ? &when
                                                                   : NULL;
            if (meta != NULL) {
                json_decref(*meta);
                *meta = value_json(&f->value, f->cut);
                continue;
            }
            if (is_field(f, RS_DLQ_FIELD_STREAM))
                continue;
            json_t *fo = json_object();
            if (fo != NULL) {
                set(fo, "name", value_json(&f->name, f->name.len >= RS_DASHBOARD_FIELD_MAX), &bad);
                set(fo, "value", value_json(&f->value, f->value.len >= RS_DASHBOARD_FIELD_MAX),
                    &bad);
                set(fo, "cut", json_boolean(f->cut), &bad);
            }
            append(fields, fo, &bad);
        }
        set(o, "original_id", orig, &bad);
        set(o, "delivery_count", count, &bad);
        set(o, "error", error, &bad);
        set(o, "time", when, &bad);
        set(o, "fields", fields, &bad);
        append(list, o, &bad);
    }
    set(root, "dead_letters", list, &bad);
    return finish(root, bad, len);
}
