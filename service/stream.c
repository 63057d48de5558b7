/*
 * Per-stream state of the consumer.
 *
 * DESIGN: the in-flight count is an atomic so the hot path (a reader adding a batch, the
 * acknowledger settling one) never takes a lock; only the transition to zero takes the mutex
 * to broadcast, and only waiters (a reader after a reconnect) sleep on the condition.
 */

#include "stream.h"

#include <stdio.h>
#include <stdlib.h>

rs_stream_t *rs_stream_new(const rs_stream_config_t *sc, const rs_handler_env_t *env, char *err,
                           size_t errlen)
{
    rs_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "stream %s: out of memory", sc->name);
        return NULL;
    }
    s->cfg = sc;
    s->name = sc->name;
    rs_histogram_init(&s->handler_duration);
    s->handler = rs_handler_new(sc, env, err, errlen);
    if (s->handler == NULL) {
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
    if (atomic_fetch_sub(&s->inflight, n) == n)
        rs_stream_wake(s);
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
