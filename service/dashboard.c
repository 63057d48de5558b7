/*
 * The dashboard's JSON bodies and embedded page (see dashboard.h).
 *
 * DESIGN: jansson builds every body, so escaping is the library's; text it refuses (not valid
 * UTF-8) gets U+FFFD for each invalid byte first, by json.c's rule, the one /streams and
 * /metrics follow too. The page's files are compiled in by CMake
 * (cmake/embed_dashboard.cmake writes dashboard_assets.c from dashboard/), so the binary needs
 * nothing at run time and the page works offline.
 */

#include "dashboard.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "message.h"

const rs_dashboard_asset_t *rs_dashboard_asset(const char *path)
{
    for (size_t i = 0; i < rs_dashboard_nassets; i++)
        if (strcmp(path, rs_dashboard_assets[i].path) == 0)
            return &rs_dashboard_assets[i];
    return NULL;
}

char *rs_dashboard_stats_json(const rs_dashboard_stats_t *s, size_t *len)
{
    const rs_metrics_t *m = s->m;
    int bad = 0;
    json_t *root = json_object();
    if (root == NULL)
        return NULL;
    rs_json_set(root, "version", rs_json_cstr(m->version), &bad);
    rs_json_set(root, "uptime_s", json_real(s->uptime_s), &bad);
    json_t *redis = json_object();
    if (redis != NULL) {
        rs_json_set(redis, "ready", json_boolean(s->redis_ready), &bad);
        rs_json_set(redis, "state", rs_json_cstr(s->redis_state), &bad);
    }
    rs_json_set(root, "redis", redis, &bad);
    rs_json_set(root, "group", rs_json_cstr(m->group), &bad);
    rs_json_set(root, "consumer", rs_json_cstr(m->consumer), &bad);
    rs_json_set(root, "queue",
                json_pack("{s:I,s:I}", "depth", (json_int_t)m->queue_depth, "capacity",
                          (json_int_t)m->queue_capacity),
                &bad);
    rs_json_set(root, "workers",
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
            rs_json_set(o, "name", rs_json_cstr(ms->name), &bad);
            rs_json_set(o, "handler", rs_json_cstr(ms->handler), &bad);
            rs_json_set(o, "ordering", rs_json_cstr(ms->ordering), &bad);
            if (ms->key_field != NULL)
                rs_json_set(o, "key_field", rs_json_cstr(ms->key_field), &bad);
            rs_json_set(o, "handled", rs_json_u64(ms->succeeded), &bad);
            rs_json_set(o, "failed", rs_json_u64(ms->failed), &bad);
            rs_json_set(o, "retried", rs_json_u64(ms->retried), &bad);
            rs_json_set(o, "dead_lettered", rs_json_u64(ms->dead_lettered), &bad);
            rs_json_set(o, "inflight", json_integer(ms->inflight), &bad);
            rs_json_set(o, "reader_connected", json_boolean(ms->reader_connected), &bad);
        }
        rs_json_append(streams, o, &bad);
    }
    rs_json_set(root, "streams", streams, &bad);
    rs_json_set(root, "totals",
                json_pack("{s:o,s:o,s:o,s:o}", "handled", rs_json_u64(handled), "failed",
                          rs_json_u64(failed), "retried", rs_json_u64(retried), "dead_lettered",
                          rs_json_u64(dead)),
                &bad);
    json_t *series = json_object(), *sh = json_array(), *sf = json_array();
    for (size_t k = 0; sh != NULL && sf != NULL && k < RS_STATS_RING_SECONDS; k++) {
        const rs_stats_rate_t *r = &s->rates[k];
        rs_json_append(sh, r->known ? rs_json_u64(r->handled) : json_null(), &bad);
        rs_json_append(sf, r->known ? rs_json_u64(r->failed) : json_null(), &bad);
    }
    if (series != NULL) {
        rs_json_set(series, "handled", sh, &bad);
        rs_json_set(series, "failed", sf, &bad);
    } else {
        json_decref(sh);
        json_decref(sf);
    }
    rs_json_set(root, "series", series, &bad);
    return rs_json_finish(root, bad, JSON_COMPACT, false, len);
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
            rs_json_set(o, "time", time_json(p[i].time_ns), &bad);
            rs_json_set(o, "level", rs_json_cstr(rs_log_level_name(p[i].level)), &bad);
            rs_json_set(o, "module", rs_json_cstr(p[i].module), &bad);
            rs_json_set(o, "stream",
                        p[i].stream[0] != '\0' ? rs_json_cstr(p[i].stream) : json_null(), &bad);
            rs_json_set(o, "message", rs_json_cstr(p[i].message), &bad);
        }
        rs_json_append(list, o, &bad);
    }
    if (root == NULL) {
        json_decref(list);
        return NULL;
    }
    rs_json_set(root, "problems", list, &bad);
    return rs_json_finish(root, bad, JSON_COMPACT, false, len);
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
    char *b64 = rs_json_base64(v->str, v->len, "base64:");
    json_t *j = b64 != NULL ? json_string(b64) : NULL;
    free(b64);
    return j;
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
    json_t *j = rs_json_text(buf, o - 1);
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
    rs_json_set(root, "stream", rs_json_cstr(stream), &bad);
    rs_json_set(root, "dead_letter_stream", rs_json_cstr(dlq), &bad);
    rs_json_set(root, "replay", replay_json(stream, config_path), &bad);
    rs_json_set(root, "error", rs_json_cstr(e->error), &bad);
    for (size_t i = 0; i < e->nentries; i++) {
        const rs_info_entry_t *d = &e->entries[i];
        json_t *o = json_object(), *fields = json_array();
        if (o == NULL || fields == NULL) {
            json_decref(o);
            json_decref(fields);
            bad++;
            break;
        }
        rs_json_set(o, "id", rs_json_text(d->id.str, d->id.len), &bad);
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
                rs_json_set(fo, "name", value_json(&f->name, f->name.len >= RS_DASHBOARD_FIELD_MAX),
                            &bad);
                rs_json_set(fo, "value",
                            value_json(&f->value, f->value.len >= RS_DASHBOARD_FIELD_MAX), &bad);
                rs_json_set(fo, "cut", json_boolean(f->cut), &bad);
            }
            rs_json_append(fields, fo, &bad);
        }
        rs_json_set(o, "original_id", orig, &bad);
        rs_json_set(o, "delivery_count", count, &bad);
        rs_json_set(o, "error", error, &bad);
        rs_json_set(o, "time", when, &bad);
        rs_json_set(o, "fields", fields, &bad);
        rs_json_append(list, o, &bad);
    }
    rs_json_set(root, "dead_letters", list, &bad);
    return rs_json_finish(root, bad, JSON_COMPACT, false, len);
}
