/*
 * Capped exponential backoff with jitter.
 *
 * DESIGN: each owner (a Redis connection, later a retried message) embeds an rs_backoff_t and
 * uses it from one thread, so there is no lock and no shared random state. Randomness comes
 * from a per-object xorshift64* generator seeded from getrandom(2): jitter needs to differ
 * between processes and threads, not to be unpredictable. A fixed seed makes it
 * deterministic for tests.
 */

#include "backoff.h"

#include <sys/random.h>

/* Attempts past this no longer double the delay (2^30 times any base exceeds any cap). */
#define BACKOFF_MAX_SHIFT 30

static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

void rs_backoff_init(rs_backoff_t *b, int64_t base_ms, int64_t cap_ms, uint64_t seed)
{
    b->base_ms = base_ms < 1 ? 1 : base_ms;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
    if (seed == 0 && getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint64_t)(uintptr_t)b ^ UINT64_C(0x9E3779B97F4A7C15);
    b->rng = seed != 0 ? seed : UINT64_C(0x9E3779B97F4A7C15);
}

int64_t rs_backoff_at_ms(rs_backoff_t *b, unsigned attempt)
{
    unsigned shift = attempt < BACKOFF_MAX_SHIFT ? attempt : BACKOFF_MAX_SHIFT;
    int64_t d = b->cap_ms;
    if (b->base_ms <= (b->cap_ms >> shift))
        d = b->base_ms << shift;
    /* Uniform in [d - d/2, d]. */
    int64_t half = d / 2;
    return d - (int64_t)(next_random(&b->rng) % (uint64_t)(half + 1));
}

int64_t rs_backoff_next_ms(rs_backoff_t *b)
{
    return rs_backoff_at_ms(b, b->attempt++);
}

void rs_backoff_reset(rs_backoff_t *b)
{
    b->attempt = 0;
}
