/* Unit tests for queue.c: the bounded work queue between readers and workers. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

static rs_entry_t *make(unsigned n)
{
    char id[32];
    snprintf(id, sizeof(id), "%u-0", n);
    return rs_entry_new(NULL, "s", id, 1, NULL, 0);
}

static void queue_reservation_caps_content(void **state)
{
    (void)state;
    rs_queue_t *q = rs_queue_new(4);
    atomic_bool cancel = false;
    /* Asking for more than the capacity grants only the capacity. */
    assert_int_equal(rs_queue_reserve(q, 10, &cancel), 4);
    rs_entry_t *e[3] = {make(1), make(2), make(3)};
    rs_queue_push_reserved(q, e, 3);
    rs_queue_unreserve(q, 1);
    assert_int_equal(rs_queue_depth(q), 3);
    /* One slot left: a reservation gets exactly one. */
    assert_int_equal(rs_queue_reserve(q, 10, &cancel), 1);
    rs_queue_unreserve(q, 1);
    /* FIFO order. */
    for (unsigned i = 1; i <= 3; i++) {
        rs_entry_t *got = rs_queue_pop(q);
        char want[32];
        snprintf(want, sizeof(want), "%u-0", i);
        assert_string_equal(got->id, want);
        rs_entry_free(got);
    }
    assert_int_equal(rs_queue_depth(q), 0);
    rs_queue_free(q);
}

static void queue_close_drains_then_ends(void **state)
{
    (void)state;
    rs_queue_t *q = rs_queue_new(8);
    atomic_bool cancel = false;
    assert_int_equal(rs_queue_reserve(q, 2, &cancel), 2);
    rs_entry_t *e[2] = {make(1), make(2)};
    rs_queue_push_reserved(q, e, 2);
    rs_queue_close(q);
    /* Reservations fail once closed; queued entries are still handed out. */
    assert_int_equal(rs_queue_reserve(q, 1, &cancel), 0);
    rs_entry_free(rs_queue_pop(q));
    rs_entry_free(rs_queue_pop(q));
    assert_null(rs_queue_pop(q));
    rs_queue_free(q);
}

static void queue_abandon_stops_at_once(void **state)
{
    (void)state;
    rs_queue_t *q = rs_queue_new(8);
    atomic_bool cancel = false;
    assert_int_equal(rs_queue_reserve(q, 2, &cancel), 2);
    rs_entry_t *e[2] = {make(1), make(2)};
    rs_queue_push_reserved(q, e, 2);
    rs_queue_abandon(q);
    /* Entries remain (freed by rs_queue_free, which ASan checks) but nobody gets them. */
    assert_null(rs_queue_pop(q));
    assert_int_equal(rs_queue_depth(q), 2);
    rs_queue_free(q);
}

typedef struct {
    rs_queue_t *q;
    atomic_bool cancel;
    size_t got;
} reserver_t;

static void *reserve_full(void *arg)
{
    reserver_t *r = arg;
    r->got = rs_queue_reserve(r->q, 1, &r->cancel);
    return NULL;
}

static void queue_cancel_wakes_reserver(void **state)
{
    (void)state;
    /* A reader waiting for room must be woken by its cancel flag, not wait forever. */
    reserver_t r = {.q = rs_queue_new(1), .got = 99};
    atomic_init(&r.cancel, false);
    assert_int_equal(rs_queue_reserve(r.q, 1, &r.cancel), 1); /* queue now full */
    pthread_t t;
    pthread_create(&t, NULL, reserve_full, &r);
    atomic_store(&r.cancel, true);
    rs_queue_wake(r.q);
    pthread_join(t, NULL);
    assert_int_equal(r.got, 0);
    rs_queue_unreserve(r.q, 1);
    rs_queue_free(r.q);
}

#define PRODUCERS    4
#define CONSUMERS    4
#define PER_PRODUCER 20000

typedef struct {
    rs_queue_t *q;
    unsigned base;
    atomic_size_t *max_depth;
    atomic_ullong *sum;
    atomic_size_t *count;
} stress_t;

static void *stress_producer(void *arg)
{
    stress_t *s = arg;
    atomic_bool cancel = false;
    unsigned next = 0;
    while (next < PER_PRODUCER) {
        size_t k = rs_queue_reserve(s->q, 7, &cancel);
        rs_entry_t *batch[7];
        size_t n = 0;
        while (n < k && next < PER_PRODUCER)
            batch[n++] = make(s->base + next++);
        rs_queue_push_reserved(s->q, batch, n);
        rs_queue_unreserve(s->q, k - n);
        size_t d = rs_queue_depth(s->q), m = atomic_load(s->max_depth);
        while (d > m && !atomic_compare_exchange_weak(s->max_depth, &m, d))
            ;
    }
    return NULL;
}

static void *stress_consumer(void *arg)
{
    stress_t *s = arg;
    rs_entry_t *e;
    while ((e = rs_queue_pop(s->q)) != NULL) {
        atomic_fetch_add(s->sum, strtoull(e->id, NULL, 10));
        atomic_fetch_add(s->count, 1);
        rs_entry_free(e);
    }
    return NULL;
}

static void queue_concurrent_exactly_once(void **state)
{
    (void)state;
    /* Many readers and workers at once: every entry comes out exactly once and the queue
     * never holds more than its capacity. */
    atomic_size_t max_depth = 0, count = 0;
    atomic_ullong sum = 0;
    rs_queue_t *q = rs_queue_new(16);
    stress_t s[PRODUCERS + CONSUMERS];
    pthread_t t[PRODUCERS + CONSUMERS];
    for (unsigned i = 0; i < PRODUCERS + CONSUMERS; i++) {
        s[i] = (stress_t){q, i * PER_PRODUCER, &max_depth, &sum, &count};
        pthread_create(&t[i], NULL, i < PRODUCERS ? stress_producer : stress_consumer, &s[i]);
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    rs_queue_close(q);
    for (unsigned i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++)
        pthread_join(t[i], NULL);
    unsigned long long n = (unsigned long long)PRODUCERS * PER_PRODUCER;
    assert_int_equal(atomic_load(&count), n);
    assert_int_equal(atomic_load(&sum), n * (n - 1) / 2);
    assert_true(atomic_load(&max_depth) <= 16);
    rs_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_reservation_caps_content),
        cmocka_unit_test(queue_close_drains_then_ends),
        cmocka_unit_test(queue_abandon_stops_at_once),
        cmocka_unit_test(queue_cancel_wakes_reserver),
        cmocka_unit_test(queue_concurrent_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
