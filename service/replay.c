/*
 * Dead-letter replay.
 *
 * DESIGN: the dead-letter stream is walked with XRANGE in pages of REPLAY_PAGE, oldest first,
 * each page starting after the last id seen, so entries that are skipped (not dead letters)
 * or listed (dry run) are not read again. A dead letter is the original entry's fields
 * followed by the RS_DLQ_FIELD_* metadata (message.h); the metadata is looked up by name and
 * stripped, and the entry is moved with
 *     MULTI; XADD <original stream> * <original fields>; XDEL <dlq> <id>; EXEC
 * A lost reply cannot duplicate it silently on a later run: the XDEL is in the same
 * transaction, so a dead letter still present was not moved.
 */

#include "replay.h"

#include <stdlib.h>
#include <string.h>

#include "message.h"

#define REPLAY_PAGE 100

static bool field_is(const redisReply *name, const char *want)
{
    return name->type == REDIS_REPLY_STRING && (size_t)name->len == strlen(want) &&
           memcmp(name->str, want, (size_t)name->len) == 0;
}

static bool is_metadata(const redisReply *name)
{
    return field_is(name, RS_DLQ_FIELD_STREAM) || field_is(name, RS_DLQ_FIELD_ID) ||
           field_is(name, RS_DLQ_FIELD_DELIVERIES) || field_is(name, RS_DLQ_FIELD_ERROR) ||
           field_is(name, RS_DLQ_FIELD_TIME);
}

/* The value of field `want` in a flat field list, or NULL. */
static const redisReply *field_value(const redisReply *fields, const char *want)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (field_is(fields->element[i], want) &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

/* Moves one dead letter. Returns 0, or -1 with `err` set. */
static int move_one(rs_redis_t *r, const char *dlq, const redisReply *id, const redisReply *fields,
                    const redisReply *origin, char *newid, size_t newidlen, char *err,
                    size_t errlen)
{
    redisContext *c = rs_redis_context(r);
    size_t cap = 3 + fields->elements;
    const char **argv = malloc(cap * sizeof(*argv));
    size_t *argvlen = malloc(cap * sizeof(*argvlen));
    if (argv == NULL || argvlen == NULL) {
        free(argv);
        free(argvlen);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    argv[n] = "XADD", argvlen[n++] = 4;
    argv[n] = origin->str, argvlen[n++] = (size_t)origin->len;
    argv[n] = "*", argvlen[n++] = 1;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (is_metadata(fields->element[i]))
            continue;
        argv[n] = fields->element[i]->str, argvlen[n++] = (size_t)fields->element[i]->len;
        argv[n] = fields->element[i + 1]->str, argvlen[n++] = (size_t)fields->element[i + 1]->len;
    }
    const char *xdel[] = {"XDEL", dlq, id->str};
    size_t xdellen[] = {4, strlen(dlq), (size_t)id->len};
    int ok = redisAppendCommand(c, "MULTI") == REDIS_OK &&
             redisAppendCommandArgv(c, (int)n, argv, argvlen) == REDIS_OK &&
             redisAppendCommandArgv(c, 3, xdel, xdellen) == REDIS_OK &&
             redisAppendCommand(c, "EXEC") == REDIS_OK;
    free(argv);
    free(argvlen);
    redisReply *replies[4] = {NULL};
    for (int k = 0; k < 4 && ok; k++)
        ok = (replies[k] = rs_redis_read_reply(r)) != NULL;
    int rc = -1;
    if (!ok) {
        rs_redis_mark_broken(r); /* an append that failed; a failed read closed it already */
        snprintf(err, errlen, "%s", rs_redis_errstr(r));
    } else if (replies[3]->type == REDIS_REPLY_ARRAY && replies[3]->elements == 2 &&
               replies[3]->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(newid, newidlen, "%s", replies[3]->element[0]->str);
        rc = 0;
    } else {
        const redisReply *why = replies[1]->type == REDIS_REPLY_ERROR ? replies[1] : replies[3];
        if (replies[3]->type == REDIS_REPLY_ARRAY && replies[3]->elements > 0)
            why = replies[3]->element[0];
        snprintf(err, errlen, "moving %s to %s refused: %s", id->str, origin->str,
                 why->type == REDIS_REPLY_ERROR ? why->str : "unexpected reply");
    }
    for (int k = 0; k < 4; k++)
        if (replies[k] != NULL)
            freeReplyObject(replies[k]);
    return rc;
}

long rs_replay_dlq(rs_redis_t *r, rs_logger_t *log, const char *dlq, uint64_t max, bool dry_run,
                   FILE *out, char *err, size_t errlen)
{
    char start[64] = "-";
    long done = 0;
    for (;;) {
        char page[24];
        snprintf(page, sizeof(page), "%d", REPLAY_PAGE);
        const char *argv[] = {"XRANGE", dlq, start, "+", "COUNT", page};
        size_t argvlen[6];
        for (int i = 0; i < 6; i++)
            argvlen[i] = strlen(argv[i]);
        redisReply *reply = rs_redis_command_argv(r, 6, argv, argvlen);
        if (reply == NULL) {
            snprintf(err, errlen, "%s", rs_redis_errstr(r));
            return -1;
        }
        if (reply->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "XRANGE %s: %s", dlq,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            freeReplyObject(reply);
            return -1;
        }
        size_t nentries = reply->elements;
        for (size_t i = 0; i < nentries && (max == 0 || (uint64_t)done < max); i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const redisReply *id = e->element[0], *fields = e->element[1];
            snprintf(start, sizeof(start), "(%s", id->str);
            const redisReply *origin = field_value(fields, RS_DLQ_FIELD_STREAM);
            const redisReply *error = field_value(fields, RS_DLQ_FIELD_ERROR);
            if (origin == NULL || origin->len == 0) {
                rs_log(log, RS_LOG_WARN, "replay",
                       "%s id=%s has no %s field; not a dead letter, skipped", dlq, id->str,
                       RS_DLQ_FIELD_STREAM);
                continue;
            }
            if (dry_run) {
                fprintf(out, "would move %s %s -> %s (last error: %s)\n", dlq, id->str, origin->str,
                        error != NULL ? error->str : "unknown");
                done++;
                continue;
            }
            char newid[64];
            if (move_one(r, dlq, id, fields, origin, newid, sizeof(newid), err, errlen) != 0) {
                freeReplyObject(reply);
                return -1;
            }
            fprintf(out, "moved %s %s -> %s %s\n", dlq, id->str, origin->str, newid);
            done++;
        }
        freeReplyObject(reply);
        if (nentries < REPLAY_PAGE || (max != 0 && (uint64_t)done >= max))
            break;
    }
    fflush(out);
    return done;
}
