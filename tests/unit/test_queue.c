/* Unit tests for queue.c: the bounded work queue between readers and workers. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
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

/* --- ordering lanes ------------------------------------------------------------------------ */

static const int scope_a, scope_b; /* two streams' scopes */

/* Entry number `n` of key `key` ("" too) in `scope`. The key is a static string. */
static rs_entry_t *keyed(unsigned n, const void *scope, const char *key)
{
    rs_entry_t *e = make(n);
    e->order_scope = scope;
    e->order_key = key;
    e->order_key_len = strlen(key);
    return e;
}

static void push(rs_queue_t *q, rs_entry_t *e)
{
    atomic_bool cancel = false;
    assert_int_equal(rs_queue_reserve(q, 1, &cancel), 1);
    rs_queue_push_reserved(q, &e, 1);
}

/* Pops one entry (there must be one ready) and checks its id. */
static rs_entry_t *pop_expect(rs_queue_t *q, unsigned n)
{
    rs_entry_t *e = rs_queue_pop(q);
    assert_non_null(e);
    char id[32];
    snprintf(id, sizeof(id), "%u-0", n);
    assert_string_equal(e->id, id);
    return e;
}

/* The holder is done: releases its lane and frees it. */
static void finish(rs_queue_t *q, rs_entry_t *e)
{
    rs_queue_done(q, e->lane);
    rs_entry_free(e);
}

static void queue_lane_one_at_a_time_in_order(void **state)
{
    (void)state;
    rs_queue_t *q = rs_queue_new(16);
    push(q, keyed(1, &scope_a, "k"));
    push(q, keyed(2, &scope_a, "k"));
    push(q, keyed(3, &scope_a, "other"));
    push(q, keyed(4, &scope_b, "k")); /* same key, another stream: another lane */
    push(q, keyed(5, &scope_a, "k"));
    push(q, make(6)); /* unordered */
    assert_int_equal(rs_queue_depth(q), 6);
    assert_int_equal(rs_queue_lanes(q), 3);
    assert_int_equal(rs_queue_lane_waiting(q), 2);

    rs_entry_t *one = pop_expect(q, 1);
    rs_entry_t *three = pop_expect(q, 3);
    rs_entry_t *four = pop_expect(q, 4);
    rs_entry_t *six = pop_expect(q, 6);
    assert_null(six->lane);
    rs_entry_free(six);
    /* 2 waits behind 1: nothing is ready, though 2 entries are queued. */
    assert_int_equal(rs_queue_depth(q), 2);
    assert_int_equal(rs_queue_try_reserve(q, 14), 14); /* they count against the capacity */
    assert_int_equal(rs_queue_try_reserve(q, 1), 0);
    rs_queue_unreserve(q, 14);
    finish(q, three);
    finish(q, four);
    assert_int_equal(rs_queue_lanes(q), 1);
    finish(q, one);
    rs_entry_t *two = pop_expect(q, 2);
    finish(q, two);
    finish(q, pop_expect(q, 5));
    assert_int_equal(rs_queue_lanes(q), 0);
    assert_int_equal(rs_queue_lane_waiting(q), 0);
    assert_int_equal(rs_queue_depth(q), 0);
    rs_queue_free(q);
}

static void queue_lanes_take_turns(void **state)
{
    (void)state;
    /* A hot key's next entry joins the back of the ready entries: the cold keys pushed after
     * its backlog still come before its second entry. */
    rs_queue_t *q = rs_queue_new(16);
    for (unsigned i = 1; i <= 5; i++)
        push(q, keyed(i, &scope_a, "hot"));
    push(q, keyed(6, &scope_a, "c1"));
    push(q, keyed(7, &scope_a, "c2"));
    rs_entry_t *h = pop_expect(q, 1);
    finish(q, h); /* hot's 2 is ready now, behind 6 and 7 */
    finish(q, pop_expect(q, 6));
    finish(q, pop_expect(q, 7));
    for (unsigned i = 2; i <= 5; i++)
        finish(q, pop_expect(q, i));
    rs_queue_free(q);
}

static void queue_lane_held_across_retry(void **state)
{
    (void)state;
    rs_queue_t *q = rs_queue_new(3);
    push(q, keyed(1, &scope_a, "k"));
    push(q, keyed(2, &scope_a, "k"));
    rs_entry_t *one = pop_expect(q, 1);
    struct rs_lane *lane = one->lane;
    rs_queue_hold(q); /* 1 waits for its retry; its slot stays taken */
    rs_entry_free(one);
    push(q, keyed(3, &scope_a, "x"));
    assert_int_equal(rs_queue_try_reserve(q, 1), 0); /* 2 waiting, 3 ready, 1 held */
    rs_entry_t *three = pop_expect(q, 3);
    finish(q, three);
    assert_int_equal(rs_queue_depth(q), 1); /* only 2, waiting: nothing is ready */
    assert_int_equal(rs_queue_lane_waiting(q), 1);

    /* 1 comes back (a fresh entry from XCLAIM) and goes first, then 2. */
    rs_entry_t *again = make(1);
    again->lane = lane;
    rs_queue_push_held(q, &again, 1);
    finish(q, pop_expect(q, 1));
    rs_entry_t *two = pop_expect(q, 2);

    /* 2 goes to retry too, and is dropped: the lane goes away, and its slot is free. */
    lane = two->lane;
    rs_queue_hold(q);
    rs_entry_free(two);
    assert_int_equal(rs_queue_lanes(q), 1);
    rs_queue_unhold(q, lane);
    assert_int_equal(rs_queue_lanes(q), 0);
    assert_int_equal(rs_queue_try_reserve(q, 3), 3);
    rs_queue_unreserve(q, 3);
    rs_queue_free(q);
}

static void queue_close_leaves_entries_behind_held_lanes(void **state)
{
    (void)state;
    rs_queue_t *q = rs_queue_new(8);
    push(q, keyed(1, &scope_a, "k"));
    push(q, keyed(2, &scope_a, "k"));
    push(q, keyed(3, &scope_a, "j"));
    push(q, keyed(4, &scope_a, "j"));
    rs_entry_t *one = pop_expect(q, 1);
    rs_entry_t *three = pop_expect(q, 3);
    rs_queue_hold(q); /* 1 waits for a retry that will not come (the scheduler stopped) */
    rs_entry_free(one);
    rs_queue_close(q);
    finish(q, three); /* 4 becomes ready: the drain goes on */
    finish(q, pop_expect(q, 4));
    /* Only 2 is left, behind the held 1: pops end (rs_queue_free frees it, which ASan checks). */
    assert_null(rs_queue_pop(q));
    assert_int_equal(rs_queue_depth(q), 1);
    rs_queue_free(q);
}

/* Workers racing over many keys: never two entries of a key at once, each key in order. */
#define ORDER_KEYS    16
#define ORDER_ENTRIES 4000
#define ORDER_WORKERS 6

typedef struct {
    rs_queue_t *q;
    atomic_int busy[ORDER_KEYS];  /* entries of the key in a worker now */
    atomic_uint next[ORDER_KEYS]; /* the next sequence number expected per key */
    atomic_uint violations;
    atomic_uint handled;
} order_race_t;

static const char *const order_keys[ORDER_KEYS] = {"0", "1", "2", "3", "4", "5", "6", "7",
                                                   "8", "9", "a", "b", "c", "d", "e", "f"};

static void *order_worker(void *arg)
{
    order_race_t *t = arg;
    rs_entry_t *batch[8];
    size_t n;
    while ((n = rs_queue_pop_batch(t->q, batch, 8)) > 0) {
        for (size_t i = 0; i < n; i++) {
            rs_entry_t *e = batch[i];
            unsigned num = (unsigned)strtoul(e->id, NULL, 10);
            unsigned k = num % ORDER_KEYS, seq = num / ORDER_KEYS;
            if (atomic_fetch_add(&t->busy[k], 1) != 0)
                atomic_fetch_add(&t->violations, 1);
            if (atomic_load(&t->next[k]) != seq)
                atomic_fetch_add(&t->violations, 1);
            atomic_store(&t->next[k], seq + 1);
            if (num % 7 == 0)
                sched_yield();
            atomic_fetch_sub(&t->busy[k], 1);
            atomic_fetch_add(&t->handled, 1);
            finish(t->q, e);
        }
    }
    return NULL;
}

static void queue_lanes_under_concurrency(void **state)
{
    (void)state;
    order_race_t t = {.q = rs_queue_new(32)};
    pthread_t w[ORDER_WORKERS];
    for (int i = 0; i < ORDER_WORKERS; i++)
        pthread_create(&w[i], NULL, order_worker, &t);
    atomic_bool cancel = false;
    for (unsigned num = 0; num < ORDER_ENTRIES;) {
        size_t k =
            rs_queue_reserve(t.q, ORDER_ENTRIES - num < 5 ? ORDER_ENTRIES - num : 5, &cancel);
        rs_entry_t *es[5];
        for (size_t i = 0; i < k; i++, num++)
            es[i] = keyed(num, &scope_a, order_keys[num % ORDER_KEYS]);
        rs_queue_push_reserved(t.q, es, k);
    }
    rs_queue_close(t.q);
    for (int i = 0; i < ORDER_WORKERS; i++)
        pthread_join(w[i], NULL);
    assert_int_equal(atomic_load(&t.violations), 0);
    assert_int_equal(atomic_load(&t.handled), ORDER_ENTRIES);
    assert_int_equal(rs_queue_lanes(t.q), 0);
    rs_queue_free(t.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_reservation_caps_content),
        cmocka_unit_test(queue_close_drains_then_ends),
        cmocka_unit_test(queue_abandon_stops_at_once),
        cmocka_unit_test(queue_cancel_wakes_reserver),
        cmocka_unit_test(queue_concurrent_exactly_once),
        cmocka_unit_test(queue_lane_one_at_a_time_in_order),
        cmocka_unit_test(queue_lanes_take_turns),
        cmocka_unit_test(queue_lane_held_across_retry),
        cmocka_unit_test(queue_close_leaves_entries_behind_held_lanes),
        cmocka_unit_test(queue_lanes_under_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
