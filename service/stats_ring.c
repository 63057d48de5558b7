/*
 * The per-second throughput ring behind the dashboard's graph.
 *
 * DESIGN: slot `second % RS_STATS_RING_SECONDS` holds the totals sampled in `second`, tagged
 * with that second so a slot left from an older lap is recognised as stale. Rates are derived
 * on reading, so the writer does one store per second and nothing else.
 */

#include "stats_ring.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    int64_t second; /* -1: never written */
    uint64_t handled, failed;
} slot_t;

struct rs_stats_ring {
    pthread_mutex_t lock; /* a leaf: guards slots */
    slot_t slots[RS_STATS_RING_SECONDS];
};

rs_stats_ring_t *rs_stats_ring_new(void)
{
    rs_stats_ring_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    for (size_t i = 0; i < RS_STATS_RING_SECONDS; i++)
        r->slots[i].second = -1;
    return r;
}

void rs_stats_ring_free(rs_stats_ring_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static size_t index_of(int64_t second)
{
    int64_t i = second % RS_STATS_RING_SECONDS;
    return (size_t)(i < 0 ? i + RS_STATS_RING_SECONDS : i);
}

void rs_stats_ring_record(rs_stats_ring_t *r, int64_t second, uint64_t handled, uint64_t failed)
{
    pthread_mutex_lock(&r->lock);
    r->slots[index_of(second)] = (slot_t){second, handled, failed};
    pthread_mutex_unlock(&r->lock);
}

void rs_stats_ring_rates(rs_stats_ring_t *r, int64_t now, rs_stats_rate_t *out)
{
    pthread_mutex_lock(&r->lock);
    for (int64_t k = 0; k < RS_STATS_RING_SECONDS; k++) {
        int64_t second = now - RS_STATS_RING_SECONDS + 1 + k;
        const slot_t *cur = &r->slots[index_of(second)];
        const slot_t *prev = &r->slots[index_of(second - 1)];
        rs_stats_rate_t *o = &out[k];
        *o = (rs_stats_rate_t){0, 0, 0};
        if (cur->second != second || prev->second != second - 1 || cur->handled < prev->handled ||
            cur->failed < prev->failed)
            continue;
        o->known = 1;
        o->handled = cur->handled - prev->handled;
        o->failed = cur->failed - prev->failed;
    }
    pthread_mutex_unlock(&r->lock);
}
