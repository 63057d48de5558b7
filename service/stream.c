/*
 * Per-stream state of the consumer.
 *
 * DESIGN: the in-flight count is an atomic so a reader adding a batch never takes a lock and
 * anyone may read it. Settling takes the stream's mutex, which costs one lock per ack batch
 * (the acknowledger settles a whole XACK's worth at once) and buys a guarantee: once
 * rs_stream_idle() has seen zero under the same mutex, no settler is still touching the
 * stream, so a reload may free a retired stream then. Waiters (a reader after a reconnect)
 * sleep on the condition, which the transition to zero broadcasts.
 *
 * The stream owns a copy of its configuration entry, so the configuration it was loaded from
 * may be freed (after a reload) while the stream lives on.
 */

#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rs_stream_t *rs_stream_new(const rs_stream_config_t *sc, const rs_handler_env_t *env, char *err,
                           size_t errlen)
{
    rs_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "stream %s: out of memory", sc->name);
        return NULL;
    }
    s->cfg = rs_stream_config_dup(sc);
    if (s->cfg == NULL) {
        snprintf(err, errlen, "stream %s: out of memory", sc->name);
        free(s);
        return NULL;
    }
    s->name = s->cfg->name;
    rs_histogram_init(&s->handler_duration);
    s->handler = rs_handler_new(s->cfg, env, err, errlen);
    if (s->handler == NULL) {
        rs_stream_config_free(s->cfg);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->settled, NULL);
    return s;
}

void rs_stream_free(rs_stream_t *s)
{
    if (s == NULL)
        return;
    rs_handler_free(s->handler);
    rs_stream_config_free(s->cfg);
    pthread_cond_destroy(&s->settled);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void rs_stream_begin(rs_stream_t *s, long n)
{
    atomic_fetch_add(&s->inflight, n);
}

void rs_stream_settle(rs_stream_t *s, long n)
{
    pthread_mutex_lock(&s->lock);
    if (atomic_fetch_sub(&s->inflight, n) == n)
        pthread_cond_broadcast(&s->settled);
    pthread_mutex_unlock(&s->lock);
}

bool rs_stream_idle(rs_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool idle = atomic_load(&s->inflight) <= 0;
    pthread_mutex_unlock(&s->lock);
    return idle;
}

void rs_stream_adopt_stats(rs_stream_t *s, const rs_stream_t *from)
{
    atomic_ullong *dst[] = {&s->stats.received, &s->stats.succeeded,     &s->stats.retried,
                            &s->stats.failed,   &s->stats.dead_lettered, &s->stats.acked,
                            &s->stats.deleted,  &s->stats.claimed};
    const atomic_ullong *src[] = {&from->stats.received,      &from->stats.succeeded,
                                  &from->stats.retried,       &from->stats.failed,
                                  &from->stats.dead_lettered, &from->stats.acked,
                                  &from->stats.deleted,       &from->stats.claimed};
    for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]); i++)
        atomic_fetch_add(dst[i], atomic_load(src[i]));
    rs_histogram_add(&s->handler_duration, &from->handler_duration);
}

bool rs_stream_wait_settled(rs_stream_t *s, const atomic_bool *cancel)
{
    pthread_mutex_lock(&s->lock);
    while (atomic_load(&s->inflight) > 0 && !atomic_load(cancel))
        pthread_cond_wait(&s->settled, &s->lock);
    bool idle = atomic_load(&s->inflight) <= 0;
    pthread_mutex_unlock(&s->lock);
    return idle;
}

void rs_stream_wake(rs_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->settled);
    pthread_mutex_unlock(&s->lock);
}

void rs_stream_order_entry(const rs_stream_t *s, rs_entry_t *e)
{
    const rs_stream_config_t *sc = s->cfg;
    if (sc->ordering == RS_ORDERING_NONE)
        return;
    e->order_scope = s;
    e->order_key = NULL;
    e->order_key_len = 0;
    if (sc->ordering != RS_ORDERING_KEY || sc->key_field == NULL)
        return;
    size_t len = strlen(sc->key_field);
    for (size_t i = 0; i < e->nfields; i++) {
        const rs_field_t *f = &e->fields[i];
        if (f->name_len == len && memcmp(f->name, sc->key_field, len) == 0) {
            e->order_key = f->value;
            e->order_key_len = f->value_len;
            return;
        }
    }
}
