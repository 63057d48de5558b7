/*
 * What Redis reports about the configured streams: XLEN, XINFO GROUPS and XINFO CONSUMERS,
 * turned into plain structs for the HTTP server's /streams overview and /metrics.
 *
 * DESIGN: the caller owns the connection (the HTTP server opens a fresh one per request, with
 * short timeouts, so a slow Redis can only slow that request). The commands are pipelined in
 * two rounds: XLEN and XINFO GROUPS for every stream, then XINFO CONSUMERS for every group
 * found, so the cost in round trips does not grow with the number of streams. Replies are
 * untrusted input: every element's type is checked, unknown fields are skipped (newer Redis
 * versions add some), and fields a version lacks (entries-read and lag before 7.0) or
 * reports as nil are marked absent rather than zero. Everything is copied out of the replies,
 * which are freed at once; strings keep their length because Redis names are binary-safe.
 */

#include "stream_info.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies a string reply; returns -1 when out of memory. */
static int copy_string(rs_info_string_t *dst, const redisReply *src)
{
    dst->str = malloc(src->len + 1);
    if (dst->str == NULL)
        return -1;
    memcpy(dst->str, src->str, src->len);
    dst->str[src->len] = '\0';
    dst->len = src->len;
    return 0;
}

/* The value of field `name` in a flat name/value array (RESP2's form of XINFO's maps), or NULL
 * when absent. */
static const redisReply *field(const redisReply *info, const char *name)
{
    for (size_t i = 0; i + 1 < info->elements; i += 2) {
        const redisReply *k = info->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            k->len == strlen(name) && memcmp(k->str, name, k->len) == 0)
            return info->element[i + 1];
    }
    return NULL;
}

static bool int_field(const redisReply *info, const char *name, long long *out)
{
    const redisReply *v = field(info, name);
    if (v == NULL || v->type != REDIS_REPLY_INTEGER)
        return false;
    *out = v->integer;
    return true;
}

static bool string_field(const redisReply *info, const char *name, const redisReply **out)
{
    const redisReply *v = field(info, name);
    if (v == NULL || (v->type != REDIS_REPLY_STRING && v->type != REDIS_REPLY_STATUS))
        return false;
    *out = v;
    return true;
}

/* Records a per-stream problem (the first one wins). Returns -1 when out of memory. */
static int stream_error(rs_stream_info_t *s, const char *what, const redisReply *reply)
{
    if (s->error != NULL)
        return 0;
    char buf[256];
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        snprintf(buf, sizeof(buf), "%s: %.*s", what, reply->len > 200 ? 200 : (int)reply->len,
                 reply->str);
    else
        snprintf(buf, sizeof(buf), "%s: unexpected reply type %d", what,
                 reply != NULL ? reply->type : -1);
    s->error = strdup(buf);
    return s->error != NULL ? 0 : -1;
}

static bool is_error(const redisReply *reply, const char *prefix)
{
    size_t n = strlen(prefix);
    return reply->type == REDIS_REPLY_ERROR && reply->len >= n &&
           memcmp(reply->str, prefix, n) == 0;
}

/* XLEN's reply. Returns -1 when out of memory. */
static int take_length(rs_stream_info_t *s, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_INTEGER) {
        s->length = reply->integer;
        return 0;
    }
    return stream_error(s, "XLEN", reply);
}

/* XINFO GROUPS's reply. Returns -1 when out of memory. */
static int take_groups(rs_stream_info_t *s, const redisReply *reply)
{
    if (is_error(reply, "ERR no such key")) {
        s->exists = false;
        return 0;
    }
    if (reply->type != REDIS_REPLY_ARRAY)
        return stream_error(s, "XINFO GROUPS", reply);
    s->exists = true;
    if (reply->elements == 0)
        return 0;
    s->groups = calloc(reply->elements, sizeof(*s->groups));
    if (s->groups == NULL)
        return -1;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *g = reply->element[i];
        const redisReply *name, *last;
        rs_group_info_t *out = &s->groups[s->ngroups];
        if (g->type != REDIS_REPLY_ARRAY || !string_field(g, "name", &name) ||
            !int_field(g, "pending", &out->pending) ||
            !int_field(g, "consumers", &out->consumers) ||
            !string_field(g, "last-delivered-id", &last)) {
            if (stream_error(s, "XINFO GROUPS", g) != 0)
                return -1;
            continue;
        }
        out->has_entries_read = int_field(g, "entries-read", &out->entries_read);
        out->has_lag = int_field(g, "lag", &out->lag);
        s->ngroups++; /* counted first so that a failed copy is freed with the rest */
        if (copy_string(&out->name, name) != 0 || copy_string(&out->last_delivered_id, last) != 0)
            return -1;
    }
    return 0;
}

/* XINFO CONSUMERS's reply for group `g`. Returns -1 when out of memory. An error reply (the
 * group was deleted between the two rounds) leaves the list empty. */
static int take_consumers(rs_group_info_t *g, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return 0;
    g->consumer_list = calloc(reply->elements, sizeof(*g->consumer_list));
    if (g->consumer_list == NULL)
        return -1;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *c = reply->element[i];
        const redisReply *name;
        rs_consumer_info_t *out = &g->consumer_list[g->nconsumer_list];
        if (c->type != REDIS_REPLY_ARRAY || !string_field(c, "name", &name) ||
            !int_field(c, "pending", &out->pending) || !int_field(c, "idle", &out->idle_ms))
            continue;
        g->nconsumer_list++;
        if (copy_string(&out->name, name) != 0)
            return -1;
    }
    return 0;
}

static int fail_connection(rs_redis_t *redis, char *err, size_t errlen)
{
    const char *why = rs_redis_errstr(redis);
    snprintf(err, errlen, "%s", why[0] != '\0' ? why : "redis: not connected");
    return -1;
}

static int fail_oom(rs_redis_t *redis, char *err, size_t errlen)
{
    rs_redis_mark_broken(redis); /* replies may still be in flight: the connection is unusable */
    snprintf(err, errlen, "stream overview: out of memory");
    return -1;
}

/* Round one: XLEN and XINFO GROUPS for every stream. */
static int fetch_groups(rs_redis_t *redis, rs_streams_info_t *out, char *err, size_t errlen)
{
    redisContext *ctx = rs_redis_context(redis);
    if (ctx == NULL)
        return fail_connection(redis, err, errlen);
    for (size_t i = 0; i < out->nstreams; i++) {
        const char *name = out->streams[i].name;
        const char *xlen[] = {"XLEN", name};
        size_t xlen_len[] = {4, strlen(name)};
        const char *xinfo[] = {"XINFO", "GROUPS", name};
        size_t xinfo_len[] = {5, 6, strlen(name)};
        if (redisAppendCommandArgv(ctx, 2, xlen, xlen_len) != REDIS_OK ||
            redisAppendCommandArgv(ctx, 3, xinfo, xinfo_len) != REDIS_OK)
            return fail_oom(redis, err, errlen);
    }
    for (size_t i = 0; i < out->nstreams; i++) {
        rs_stream_info_t *s = &out->streams[i];
        for (int step = 0; step < 2; step++) {
            redisReply *reply = rs_redis_read_reply(redis);
            if (reply == NULL)
                return fail_connection(redis, err, errlen);
            int rc = step == 0 ? take_length(s, reply) : take_groups(s, reply);
            freeReplyObject(reply);
            if (rc != 0)
                return fail_oom(redis, err, errlen);
        }
    }
    return 0;
}

/* Round two: XINFO CONSUMERS for every group found in round one. */
static int fetch_consumers(rs_redis_t *redis, rs_streams_info_t *out, char *err, size_t errlen)
{
    redisContext *ctx = rs_redis_context(redis);
    size_t asked = 0;
    if (ctx == NULL)
        return fail_connection(redis, err, errlen);
    for (size_t i = 0; i < out->nstreams; i++) {
        const rs_stream_info_t *s = &out->streams[i];
        for (size_t j = 0; j < s->ngroups; j++) {
            const char *argv[] = {"XINFO", "CONSUMERS", s->name, s->groups[j].name.str};
            size_t argvlen[] = {5, 9, strlen(s->name), s->groups[j].name.len};
            if (redisAppendCommandArgv(ctx, 4, argv, argvlen) != REDIS_OK)
                return fail_oom(redis, err, errlen);
            asked++;
        }
    }
    for (size_t i = 0; i < out->nstreams && asked > 0; i++) {
        rs_stream_info_t *s = &out->streams[i];
        for (size_t j = 0; j < s->ngroups; j++) {
            redisReply *reply = rs_redis_read_reply(redis);
            if (reply == NULL)
                return fail_connection(redis, err, errlen);
            int rc = take_consumers(&s->groups[j], reply);
            freeReplyObject(reply);
            if (rc != 0)
                return fail_oom(redis, err, errlen);
        }
    }
    return 0;
}

int rs_stream_info_fetch(rs_redis_t *redis, const char *const *names, size_t n, bool consumers,
                         rs_streams_info_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (n > 0) {
        out->streams = calloc(n, sizeof(*out->streams));
        if (out->streams == NULL) {
            snprintf(err, errlen, "stream overview: out of memory");
            return -1;
        }
    }
    out->nstreams = n;
    for (size_t i = 0; i < n; i++)
        out->streams[i].name = names[i];
    if (fetch_groups(redis, out, err, errlen) != 0 ||
        (consumers && fetch_consumers(redis, out, err, errlen) != 0)) {
        rs_streams_info_clear(out);
        return -1;
    }
    return 0;
}

void rs_streams_info_clear(rs_streams_info_t *info)
{
    for (size_t i = 0; i < info->nstreams && info->streams != NULL; i++) {
        rs_stream_info_t *s = &info->streams[i];
        for (size_t j = 0; j < s->ngroups; j++) {
            rs_group_info_t *g = &s->groups[j];
            for (size_t k = 0; k < g->nconsumer_list; k++)
                free(g->consumer_list[k].name.str);
            free(g->consumer_list);
            free(g->name.str);
            free(g->last_delivered_id.str);
        }
        free(s->groups);
        free(s->error);
    }
    free(info->streams);
    memset(info, 0, sizeof(*info));
}

/* Copies at most `max` bytes of a string reply; sets *cut when it had more. Returns -1 when out
 * of memory. */
static int copy_cut(rs_info_string_t *dst, const redisReply *src, size_t max, bool *cut)
{
    redisReply shorter = *src;
    if (shorter.len > max) {
        shorter.len = max;
        *cut = true;
    }
    return copy_string(dst, &shorter);
}

int rs_stream_info_recent(rs_redis_t *redis, const char *key, size_t count, size_t max,
                          rs_info_entries_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char countbuf[32];
    snprintf(countbuf, sizeof(countbuf), "%zu", count);
    const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", countbuf};
    size_t argvlen[] = {9, strlen(key), 1, 1, 5, strlen(countbuf)};
    redisReply *reply = rs_redis_command_argv(redis, 6, argv, argvlen);
    if (reply == NULL)
        return fail_connection(redis, err, errlen);
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) {
        out->error = malloc(reply->len + 1);
        if (out->error == NULL)
            rc = -1;
        else
            snprintf(out->error, reply->len + 1, "%.*s", (int)reply->len, reply->str);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        /* An empty reply is also what a missing key gives: both show as no entries. */
        out->exists = true;
        out->entries = reply->elements > 0 ? calloc(reply->elements, sizeof(*out->entries)) : NULL;
        if (reply->elements > 0 && out->entries == NULL)
            rc = -1;
        for (size_t i = 0; rc == 0 && i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue; /* not an entry: skipped */
            const redisReply *fv = e->element[1];
            rs_info_entry_t *o = &out->entries[out->nentries++];
            if (copy_string(&o->id, e->element[0]) != 0) {
                rc = -1;
                break;
            }
            size_t pairs = fv->elements / 2;
            o->fields = pairs > 0 ? calloc(pairs, sizeof(*o->fields)) : NULL;
            if (pairs > 0 && o->fields == NULL) {
                rc = -1;
                break;
            }
            for (size_t k = 0; k < pairs; k++) {
                const redisReply *name = fv->element[2 * k], *value = fv->element[2 * k + 1];
                if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING)
                    continue;
                rs_info_field_t *f = &o->fields[o->nfields++];
                if (copy_cut(&f->name, name, max, &f->cut) != 0 ||
                    copy_cut(&f->value, value, max, &f->cut) != 0) {
                    rc = -1;
                    break;
                }
            }
        }
    } else {
        snprintf(err, errlen, "XREVRANGE %s: unexpected reply type %d", key, reply->type);
        freeReplyObject(reply);
        return -1;
    }
    freeReplyObject(reply);
    if (rc != 0) {
        rs_info_entries_clear(out);
        snprintf(err, errlen, "dead letters: out of memory");
    }
    return rc;
}

void rs_info_entries_clear(rs_info_entries_t *e)
{
    for (size_t i = 0; i < e->nentries && e->entries != NULL; i++) {
        rs_info_entry_t *o = &e->entries[i];
        for (size_t k = 0; k < o->nfields; k++) {
            free(o->fields[k].name.str);
            free(o->fields[k].value.str);
        }
        free(o->fields);
        free(o->id.str);
    }
    free(e->entries);
    free(e->error);
    memset(e, 0, sizeof(*e));
}
