#ifndef RS_BACKOFF_H
#define RS_BACKOFF_H

/*
 * Capped exponential backoff with jitter, for reconnecting to Redis (and, later, for
 * retrying failed messages). Attempt n waits a random time in [d/2, d] where
 * d = min(cap, base * 2^n): the lower half keeps a herd of restarted clients from all
 * retrying at once, the floor keeps the wait from collapsing to zero.
 *
 * A rs_backoff_t is a small value embedded in its owner and used by one thread.
 */

#include <stdint.h>

typedef struct {
    int64_t base_ms;  /* first step's upper bound */
    int64_t cap_ms;   /* no step waits longer */
    unsigned attempt; /* steps taken since the last reset */
    uint64_t rng;     /* xorshift64* state; never zero */
} rs_backoff_t;

/* Initializes `b`. base_ms >= 1 and cap_ms >= base_ms; other values are clamped into that
 * range. `seed` 0 draws a seed from getrandom(2). Owner thread only. */
void rs_backoff_init(rs_backoff_t *b, int64_t base_ms, int64_t cap_ms, uint64_t seed);

/* Returns the next wait in milliseconds and counts the attempt. Owner thread only. */
int64_t rs_backoff_next_ms(rs_backoff_t *b);

/* Returns the wait for attempt number `attempt` (0 = the first) without counting it, drawing
 * the jitter from `b`'s generator. For retries whose attempt number is known from elsewhere
 * (Redis's delivery counter). Owner thread only. */
int64_t rs_backoff_at_ms(rs_backoff_t *b, unsigned attempt);

/* Starts over from the base after a success. Owner thread only. */
void rs_backoff_reset(rs_backoff_t *b);

#endif
