/*
 * The batch span processor and OTLP/HTTP JSON exporter (the "rs-trace" thread).
 *
 * DESIGN: a ring buffer of RS_TRACE_BUFFER_SPANS spans under one mutex. Producers of spans
 * (workers, the producer's main thread) hold the mutex only to copy one span in, and signal
 * the thread when a full batch is waiting; when the ring is full the span is dropped and
 * counted, so no caller ever waits for the collector. The thread moves up to
 * RS_TRACE_BATCH_SPANS spans into its own batch array under the mutex, then encodes and POSTs
 * them with the mutex released (no lock across a network call). A batch that failed for a
 * reason time may cure (connection refused or reset, timeout, 429, 502/503/504) is kept and
 * sent again after a capped exponential backoff, while new spans keep filling the ring; any
 * other answer drops the batch (counted). The libcurl easy handle is created by the main
 * thread but used only by this thread once it started, and freed after it was joined.
 * Stopping: the main thread sets `stopping` and a deadline under the mutex and broadcasts;
 * the thread keeps flushing until the ring and its batch are empty or the deadline passes
 * (each request is given only the time left), counts what is left as dropped, and exits.
 * Counters are atomics so /metrics reads them without the lock.
 */

#include "trace_export.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"

#define LOG_MODULE "trace"

/* The longest a single export request may take in normal operation. */
#define REQUEST_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 2000
#define NS_PER_MS          INT64_C(1000000)

struct rs_trace_exporter {
    rs_logger_t *log;        /* borrowed */
    const char *endpoint;    /* borrowed from the configuration */
    char *endpoint_shown;    /* owned: the endpoint for messages, user:password@ as ***@ */
    rs_trace_resource_t res; /* names borrowed from the configuration and host_name */
    char host_name[256];

    /* Owned by the rs-trace thread while it runs. */
    CURL *curl;
    struct curl_slist *headers;
    char curl_err[CURL_ERROR_SIZE];
    rs_span_t *batch; /* RS_TRACE_BATCH_SPANS */
    size_t nbatch;
    rs_backoff_t backoff;
    unsigned failures; /* consecutive failed requests, for rate-limited logging */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    rs_span_t *ring;   /* RS_TRACE_BUFFER_SPANS; guarded by mu */
    size_t head, count;
    bool stopping;
    int64_t deadline_ns;

    atomic_uint_fast64_t dropped, exported;
    pthread_t thread;
    bool started; /* main thread only */
};

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

rs_trace_exporter_t *rs_trace_exporter_new(const rs_config_t *cfg, const char *program_version,
                                           rs_logger_t *log, char *err, size_t errlen)
{
    rs_trace_exporter_t *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(err, errlen, "tracing: out of memory");
        return NULL;
    }
    x->log = log;
    x->endpoint = cfg->tracing.endpoint;
    x->endpoint_shown = rs_config_url_redacted(x->endpoint);
    if (x->endpoint_shown == NULL) {
        snprintf(err, errlen, "tracing: out of memory");
        free(x);
        return NULL;
    }
    if (gethostname(x->host_name, sizeof(x->host_name) - 1) != 0)
        snprintf(x->host_name, sizeof(x->host_name), "unknown");
    x->res.service_name = cfg->tracing.service_name;
    x->res.service_version = program_version;
    x->res.host_name = x->host_name;
    rs_backoff_init(&x->backoff, 100, 5000, 0);
    int rc = pthread_mutex_init(&x->mu, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "tracing: %s", strerror(rc));
        free(x->endpoint_shown);
        free(x);
        return NULL;
    }
    rc = rs_clock_cond_init(&x->cv);
    if (rc != 0) {
        snprintf(err, errlen, "tracing: %s", strerror(rc));
        pthread_mutex_destroy(&x->mu);
        free(x->endpoint_shown);
        free(x);
        return NULL;
    }
    x->ring = calloc(RS_TRACE_BUFFER_SPANS, sizeof(*x->ring));
    x->batch = calloc(RS_TRACE_BATCH_SPANS, sizeof(*x->batch));
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    x->curl = curl_easy_init();
    if (x->ring == NULL || x->batch == NULL || x->headers == NULL || x->curl == NULL) {
        snprintf(err, errlen, "tracing: cannot set up libcurl or the span buffer");
        rs_trace_exporter_free(x);
        return NULL;
    }
    CURL *c = x->curl;
    if (curl_easy_setopt(c, CURLOPT_URL, x->endpoint) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->curl_err) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
        snprintf(err, errlen, "tracing: cannot configure libcurl for %s", x->endpoint_shown);
        rs_trace_exporter_free(x);
        return NULL;
    }
    return x;
}

void rs_trace_exporter_submit(rs_trace_exporter_t *x, const rs_span_t *span)
{
    if (!rs_span_sampled(span))
        return;
    pthread_mutex_lock(&x->mu);
    if (x->count == RS_TRACE_BUFFER_SPANS || x->stopping) {
        pthread_mutex_unlock(&x->mu);
        atomic_fetch_add(&x->dropped, 1);
        return;
    }
    x->ring[(x->head + x->count) % RS_TRACE_BUFFER_SPANS] = *span;
    x->count++;
    if (x->count == RS_TRACE_BATCH_SPANS)
        pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

uint64_t rs_trace_exporter_dropped(const rs_trace_exporter_t *x)
{
    return atomic_load(&((rs_trace_exporter_t *)x)->dropped);
}

uint64_t rs_trace_exporter_exported(const rs_trace_exporter_t *x)
{
    return atomic_load(&((rs_trace_exporter_t *)x)->exported);
}

typedef enum { SENT, RETRY, REJECTED } send_result_t;

/* POSTs the batch. Returns what became of it. rs-trace thread, no lock held. */
static send_result_t send_batch(rs_trace_exporter_t *x, int64_t timeout_ms)
{
    size_t len = 0;
    char *body = rs_trace_otlp_json(&x->res, x->batch, x->nbatch, &len);
    if (body == NULL) {
        rs_log(x->log, RS_LOG_WARN, LOG_MODULE, "out of memory encoding %zu spans", x->nbatch);
        return RETRY;
    }
    x->curl_err[0] = '\0';
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, (long)(timeout_ms < 1 ? 1 : timeout_ms));
    CURLcode rc = curl_easy_perform(x->curl);
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, NULL);
    free(body);

    send_result_t result;
    char why[CURL_ERROR_SIZE + 64];
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s",
                 x->curl_err[0] != '\0' ? x->curl_err : curl_easy_strerror(rc));
        result = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ? REJECTED : RETRY;
    } else if (status >= 200 && status < 300) {
        result = SENT;
    } else {
        snprintf(why, sizeof(why), "HTTP status %ld", status);
        result =
            status == 429 || status == 502 || status == 503 || status == 504 ? RETRY : REJECTED;
    }
    if (result == SENT) {
        if (x->failures > 0)
            rs_log(x->log, RS_LOG_INFO, LOG_MODULE,
                   "collector %s accepts spans again after %u failed requests", x->endpoint_shown,
                   x->failures);
        x->failures = 0;
        return SENT;
    }
    x->failures++;
    /* Rate-limited: the first failure, then every 10th, then the recovery above. */
    if (result == REJECTED)
        rs_log(x->log, RS_LOG_WARN, LOG_MODULE,
               "collector %s rejected %zu spans: %s; they are dropped", x->endpoint_shown,
               x->nbatch, why);
    else if (x->failures == 1 || x->failures % 10 == 0)
        rs_log(x->log, RS_LOG_WARN, LOG_MODULE,
               "exporting %zu spans to %s failed: %s; retrying (failure %u), new spans are "
               "buffered up to %d",
               x->nbatch, x->endpoint_shown, why, x->failures, RS_TRACE_BUFFER_SPANS);
    return result;
}

/* Moves up to a batch of spans from the ring into the batch. Called with mu held. */
static void take_batch_locked(rs_trace_exporter_t *x)
{
    size_t n = x->count < RS_TRACE_BATCH_SPANS ? x->count : RS_TRACE_BATCH_SPANS;
    for (size_t i = 0; i < n; i++)
        x->batch[i] = x->ring[(x->head + i) % RS_TRACE_BUFFER_SPANS];
    x->head = (x->head + n) % RS_TRACE_BUFFER_SPANS;
    x->count -= n;
    x->nbatch = n;
}

/* Waits on the condition until `until_ns` or a broadcast. Called with mu held. */
static void wait_until_locked(rs_trace_exporter_t *x, int64_t until_ns)
{
    struct timespec ts = rs_clock_timespec(until_ns);
    pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

static void *exporter_main(void *arg)
{
    rs_trace_exporter_t *x = arg;
    pthread_setname_np(pthread_self(), "rs-trace");
    int64_t next_flush = rs_clock_monotonic_ns() + RS_TRACE_EXPORT_MS * NS_PER_MS;

    pthread_mutex_lock(&x->mu);
    for (;;) {
        int64_t now = rs_clock_monotonic_ns();
        if (x->stopping && now >= x->deadline_ns)
            break;
        if (x->nbatch == 0) {
            /* A batch is due when full, every RS_TRACE_EXPORT_MS, or at once when stopping. */
            if (!x->stopping && x->count < RS_TRACE_BATCH_SPANS && now < next_flush) {
                wait_until_locked(x, next_flush);
                continue;
            }
            take_batch_locked(x);
            if (x->nbatch == 0) {
                if (x->stopping)
                    break;
                next_flush = now + RS_TRACE_EXPORT_MS * NS_PER_MS;
                continue;
            }
        }
        int64_t timeout_ms = REQUEST_TIMEOUT_MS;
        if (x->stopping && (x->deadline_ns - now) / NS_PER_MS < timeout_ms)
            timeout_ms = (x->deadline_ns - now) / NS_PER_MS;
        pthread_mutex_unlock(&x->mu);
        send_result_t result = send_batch(x, timeout_ms);
        if (result == SENT)
            atomic_fetch_add(&x->exported, x->nbatch);
        else if (result == REJECTED)
            atomic_fetch_add(&x->dropped, x->nbatch);
        int64_t retry_at = 0;
        if (result == RETRY) {
            retry_at = rs_clock_monotonic_ns() + rs_backoff_next_ms(&x->backoff) * NS_PER_MS;
        } else {
            x->nbatch = 0;
            rs_backoff_reset(&x->backoff);
        }
        pthread_mutex_lock(&x->mu);
        if (result != RETRY) {
            next_flush = rs_clock_monotonic_ns() + RS_TRACE_EXPORT_MS * NS_PER_MS;
            continue;
        }
        /* Keep the batch; wait out the backoff (or until the stop deadline). */
        for (;;) {
            now = rs_clock_monotonic_ns();
            int64_t until = retry_at;
            if (x->stopping && x->deadline_ns < until)
                until = x->deadline_ns;
            if (now >= until)
                break;
            wait_until_locked(x, until);
        }
    }
    /* Past the deadline, or nothing left: whatever remains is lost. */
    size_t lost = x->nbatch + x->count;
    x->nbatch = 0;
    x->count = 0;
    pthread_mutex_unlock(&x->mu);
    if (lost > 0) {
        atomic_fetch_add(&x->dropped, lost);
        rs_log(x->log, RS_LOG_WARN, LOG_MODULE,
               "shutdown deadline reached: %zu spans could not be exported", lost);
    }
    return NULL;
}

int rs_trace_exporter_start(rs_trace_exporter_t *x, char *err, size_t errlen)
{
    int rc = pthread_create(&x->thread, NULL, exporter_main, x);
    if (rc != 0) {
        snprintf(err, errlen, "tracing: cannot start the exporter thread: %s", strerror(rc));
        return -1;
    }
    x->started = true;
    rs_log(x->log, RS_LOG_INFO, LOG_MODULE, "exporting sampled spans to %s as service %s",
           x->endpoint_shown, x->res.service_name);
    return 0;
}

void rs_trace_exporter_stop(rs_trace_exporter_t *x, int64_t deadline_ns)
{
    if (x == NULL || !x->started)
        return;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    x->deadline_ns = deadline_ns;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    x->started = false;
    rs_log(x->log, RS_LOG_INFO, LOG_MODULE, "stopped: %llu spans exported, %llu dropped",
           (unsigned long long)atomic_load(&x->exported),
           (unsigned long long)atomic_load(&x->dropped));
}

void rs_trace_exporter_free(rs_trace_exporter_t *x)
{
    if (x == NULL)
        return;
    if (x->curl != NULL)
        curl_easy_cleanup(x->curl);
    curl_slist_free_all(x->headers);
    free(x->ring);
    free(x->batch);
    free(x->endpoint_shown);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
}
