/*
 * The "http" handler: sends each entry to a webhook as one JSON request. The body is the
 * entry's JSON (rs_entry_to_json, the object the log handler prints and the exec handler
 * writes to stdin), with Content-Type: application/json, Idempotency-Key: <stream>/<id> (the
 * same on every delivery of an entry, so the receiver can drop duplicates), and the headers
 * from the configuration. A 2xx status succeeds. 408, 429, 5xx, connection failures and
 * timeouts are retryable, and a Retry-After header in the response (seconds or an
 * HTTP-date) becomes report->retry_after_ms, capped at an hour. Any other status fails for
 * good, 3xx included, since redirects are not followed (a webhook that moved is a
 * configuration change, not something to chase with the entry's body).
 *
 * DESIGN: one libcurl easy handle per worker thread, created with the handler and indexed by
 * the `worker` number the pool passes in, so each handle is only ever used by one thread
 * (libcurl's rule) without a lock, and it keeps its connection open between entries
 * (keep-alive): a stream with N workers holds at most N connections to the webhook. Every
 * option that does not change per entry is set once at creation; per entry only the body and
 * the header list (which carries the per-entry Idempotency-Key) are set. CURLOPT_NOSIGNAL
 * because workers are threads (no SIGALRM for timeouts); curl_global_init() has run in main
 * before any thread. TLS peer and host verification stay on; ca_file only chooses the CA
 * bundle. The response body is read and dropped, keeping a short start of it for the error
 * message. Configured header values are never logged: they are usually credentials.
 */

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handler.h"
#include "version.h"

/* Bytes of a response body kept for the error message. */
#define HTTP_SNIPPET_MAX 160

/* The connection phase never gets longer than this, whatever the request timeout. */
#define HTTP_CONNECT_TIMEOUT_MAX_MS 10000

/* libcurl 7.85 replaced the protocol bitmasks with strings and deprecates the old option. */
#if LIBCURL_VERSION_NUM >= 0x075500
#define HTTP_HAVE_PROTOCOLS_STR 1
#endif

/* One worker's handle and the scratch its callbacks fill during one request. */
typedef struct {
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    char retry_after[64]; /* the response's Retry-After value, "" when none */
    char snippet[HTTP_SNIPPET_MAX + 1];
    size_t snippet_len;
} http_worker_t;

typedef struct {
    rs_handler_t base;
    char *url;                /* may hold user:password@; wiped on free, never logged */
    rs_string_list_t headers; /* configured "Name: value" lines; wiped on free */
    http_worker_t *workers;   /* one per worker thread */
    unsigned nworkers;
} http_handler_t;

/* ------------------------------------------------------------------------------------------ */
/* Retry-After.                                                                               */

int64_t rs_http_retry_after_ms(const char *value, time_t now)
{
    char buf[64];
    size_t len;

    if (value == NULL)
        return -1;
    value += strspn(value, " \t");
    len = strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, value, len);
    buf[len] = '\0';

    if (strspn(buf, "0123456789") == len) {
        /* delay-seconds: anything past the cap is the cap, however many digits. */
        int64_t seconds = 0;
        for (size_t i = 0; i < len && seconds <= RS_RETRY_AFTER_MAX_MS / 1000; i++)
            seconds = seconds * 10 + (buf[i] - '0');
        int64_t ms = seconds * 1000;
        return ms < RS_RETRY_AFTER_MAX_MS ? ms : RS_RETRY_AFTER_MAX_MS;
    }
    /* An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms, all of which
     * curl_getdate reads). curl_getdate only parses: it keeps no state. */
    time_t when = curl_getdate(buf, NULL);
    if (when == (time_t)-1)
        return -1;
    if (when <= now)
        return 0;
    int64_t delta = (int64_t)when - (int64_t)now;
    if (delta > RS_RETRY_AFTER_MAX_MS / 1000)
        return RS_RETRY_AFTER_MAX_MS;
    return delta * 1000;
}

/* ------------------------------------------------------------------------------------------ */
/* libcurl callbacks (on the worker thread, inside curl_easy_perform).                        */

static size_t on_header(char *data, size_t size, size_t nitems, void *arg)
{
    http_worker_t *w = arg;
    size_t len = size * nitems; /* libcurl guarantees size == 1 */
    static const char name[] = "Retry-After:";

    /* A status line starts each response's header block (a 1xx comes before the final
     * one): only the final response's Retry-After counts. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        w->retry_after[0] = '\0';
    } else if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        size_t vlen = len - (sizeof(name) - 1);
        if (vlen >= sizeof(w->retry_after))
            vlen = sizeof(w->retry_after) - 1; /* too long to be valid; parsing rejects it */
        memcpy(w->retry_after, data + sizeof(name) - 1, vlen);
        w->retry_after[vlen] = '\0';
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    http_worker_t *w = arg;
    size_t len = size * nmemb; /* libcurl guarantees size == 1 */
    size_t room = HTTP_SNIPPET_MAX - w->snippet_len;
    size_t keep = len < room ? len : room;

    memcpy(w->snippet + w->snippet_len, data, keep);
    w->snippet_len += keep;
    return len; /* everything else is read and dropped */
}

/* ------------------------------------------------------------------------------------------ */
/* One entry.                                                                                 */

/* Appends "Idempotency-Key: <stream>/<id>", with any byte that may not appear in a header
 * value as sent (controls, space, non-ASCII, and '%' itself) percent-encoded, so an odd stream
 * name can neither break the request nor collide with another. */
static struct curl_slist *add_idempotency_key(struct curl_slist *list, const rs_entry_t *e)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char prefix[] = "Idempotency-Key: ";
    size_t name_len = strlen(e->stream_name);
    size_t cap = sizeof(prefix) + name_len * 3 + 1 + strlen(e->id);
    char *line = malloc(cap);

    if (line == NULL)
        return NULL;
    size_t n = sizeof(prefix) - 1;
    memcpy(line, prefix, n);
    for (size_t i = 0; i < name_len; i++) {
        unsigned char c = (unsigned char)e->stream_name[i];
        if (c <= 0x20 || c >= 0x7f || c == '%') {
            line[n++] = '%';
            line[n++] = hex[c >> 4];
            line[n++] = hex[c & 0xf];
        } else {
            line[n++] = (char)c;
        }
    }
    line[n++] = '/';
    strcpy(line + n, e->id); /* ids are digits and '-' */
    struct curl_slist *grown = curl_slist_append(list, line);
    free(line);
    return grown;
}

/* The request's header list: the fixed ones, the configured ones, and the per-entry ones.
 * Returns NULL when out of memory. Caller frees with curl_slist_free_all(). */
static struct curl_slist *request_headers(const http_handler_t *hh, const rs_entry_t *e)
{
    struct curl_slist *list = NULL, *grown;

    /* "Expect:" stops libcurl from asking for 100-continue on a large body, which costs a
     * round trip (or a one-second wait) per entry. */
    static const char *const fixed[] = {"Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if ((grown = curl_slist_append(list, fixed[i])) == NULL)
            goto oom;
        list = grown;
    }
    for (size_t i = 0; i < hh->headers.n; i++) {
        if ((grown = curl_slist_append(list, hh->headers.items[i])) == NULL)
            goto oom;
        list = grown;
    }
    /* Per-entry headers: the idempotency key and, when tracing, the consumer span's context
     * as a W3C traceparent, so the webhook's spans join the entry's trace. */
    if ((grown = add_idempotency_key(list, e)) == NULL)
        goto oom;
    list = grown;
    if (e->trace != NULL) {
        char header[sizeof("traceparent: ") + RS_TRACEPARENT_LEN];
        memcpy(header, "traceparent: ", sizeof("traceparent: ") - 1);
        rs_traceparent_format(e->trace, header + sizeof("traceparent: ") - 1);
        if ((grown = curl_slist_append(list, header)) == NULL)
            goto oom;
    }
    return grown;
oom:
    curl_slist_free_all(list);
    return NULL;
}

/* Transport errors that no retry can cure: the request itself is impossible. Everything
 * else (refused, reset, timed out, TLS handshake, DNS) may work next time. */
static bool transport_error_is_permanent(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return true;
    default:
        return false;
    }
}

/* The kept start of the response body, controls replaced, for an error message. */
static void body_snippet(http_worker_t *w, char *buf, size_t buflen)
{
    size_t n = w->snippet_len < buflen - 1 ? w->snippet_len : buflen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w->snippet[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--; /* the body's final newline, mostly */
    buf[n] = '\0';
}

static rs_outcome_t http_handle(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                                rs_handler_report_t *report)
{
    http_handler_t *hh = (http_handler_t *)h;

    if (worker >= hh->nworkers) { /* the pool passes 0 .. workers-1: a bug if not */
        snprintf(report->error, sizeof(report->error),
                 "internal error: worker %u of a handler made for %u", worker, hh->nworkers);
        return RS_OUTCOME_RETRY;
    }
    http_worker_t *w = &hh->workers[worker];
    size_t len = 0;
    char *json = rs_entry_to_json(e, &len);
    struct curl_slist *headers = json != NULL ? request_headers(hh, e) : NULL;
    if (headers == NULL) {
        free(json);
        snprintf(report->error, sizeof(report->error), "out of memory preparing the request");
        return RS_OUTCOME_RETRY;
    }

    w->errbuf[0] = '\0';
    w->retry_after[0] = '\0';
    w->snippet_len = 0;
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode rc = curl_easy_perform(w->curl);
    long status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    /* The handle must not keep pointers to memory freed below. */
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    free(json);

    if (rc != CURLE_OK) {
        snprintf(report->error, sizeof(report->error), "request failed: %s",
                 w->errbuf[0] != '\0' ? w->errbuf : curl_easy_strerror(rc));
        return transport_error_is_permanent(rc) ? RS_OUTCOME_FAIL : RS_OUTCOME_RETRY;
    }
    rs_log(h->log, RS_LOG_DEBUG, "http", "stream=%s id=%s HTTP %ld", e->stream_name, e->id, status);
    if (status >= 200 && status <= 299)
        return RS_OUTCOME_SUCCESS;

    char body[HTTP_SNIPPET_MAX + 1];
    body_snippet(w, body, sizeof(body));
    const char *body_sep = body[0] != '\0' ? "; response: " : "";
    if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        int64_t wait = rs_http_retry_after_ms(w->retry_after, time(NULL));
        if (wait > 0) {
            report->retry_after_ms = wait;
            snprintf(report->error, sizeof(report->error), "HTTP %ld, retry after %lld ms%s%s",
                     status, (long long)wait, body_sep, body);
        } else {
            snprintf(report->error, sizeof(report->error), "HTTP %ld%s%s", status, body_sep, body);
        }
        return RS_OUTCOME_RETRY;
    }
    if (status >= 300 && status <= 399) {
        char *location = NULL;
        curl_easy_getinfo(w->curl, CURLINFO_REDIRECT_URL, &location);
        snprintf(report->error, sizeof(report->error),
                 "HTTP %ld: redirects are not followed (to %s); point url at the final address",
                 status, location != NULL ? location : "no Location");
        return RS_OUTCOME_FAIL;
    }
    snprintf(report->error, sizeof(report->error), "HTTP %ld%s%s", status, body_sep, body);
    return RS_OUTCOME_FAIL;
}

/* ------------------------------------------------------------------------------------------ */
/* Construction.                                                                              */

/* Sets the options that stay the same for every request of the handle. Returns CURLE_OK or
 * the first option libcurl refused. */
static CURLcode configure_handle(const rs_stream_config_t *sc, const http_handler_t *hh,
                                 http_worker_t *w)
{
    CURL *c = w->curl;
    long timeout = sc->http.timeout_ms;
    long connect = timeout < HTTP_CONNECT_TIMEOUT_MAX_MS ? timeout : HTTP_CONNECT_TIMEOUT_MAX_MS;
    CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, hh->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, w->errbuf);
    SET(CURLOPT_TIMEOUT_MS, timeout);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
#ifdef HTTP_HAVE_PROTOCOLS_STR
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_POST, 1L);
    if (strcmp(sc->http.method, "POST") != 0)
        SET(CURLOPT_CUSTOMREQUEST, sc->http.method); /* libcurl copies it */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (sc->http.ca_file != NULL)
        SET(CURLOPT_CAINFO, sc->http.ca_file);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_USERAGENT, "redstream/" RS_VERSION);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, w);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, w);
#undef SET
    return rc;
}

static void http_free(rs_handler_t *h)
{
    http_handler_t *hh = (http_handler_t *)h;
    if (hh == NULL)
        return;
    if (hh->workers != NULL) {
        for (unsigned i = 0; i < hh->nworkers; i++)
            curl_easy_cleanup(hh->workers[i].curl); /* NULL is ignored */
        free(hh->workers);
    }
    if (hh->url != NULL) {
        explicit_bzero(hh->url, strlen(hh->url));
        free(hh->url);
    }
    if (hh->headers.items != NULL) {
        for (size_t i = 0; i < hh->headers.n; i++) {
            explicit_bzero(hh->headers.items[i], strlen(hh->headers.items[i]));
            free(hh->headers.items[i]);
        }
        free(hh->headers.items);
    }
    free(hh);
}

static const rs_handler_ops_t http_ops = {"http", http_handle, http_free};

rs_handler_t *rs_handler_http_new(const rs_stream_config_t *sc, unsigned workers, rs_logger_t *log,
                                  char *err, size_t errlen)
{
    http_handler_t *hh = calloc(1, sizeof(*hh));
    if (hh == NULL)
        goto oom;
    hh->base.ops = &http_ops;
    hh->base.log = log;
    hh->url = strdup(sc->http.url);
    hh->headers.items = calloc(sc->http.headers.n + 1, sizeof(char *));
    if (hh->url == NULL || hh->headers.items == NULL)
        goto oom;
    for (size_t i = 0; i < sc->http.headers.n; i++) {
        if ((hh->headers.items[i] = strdup(sc->http.headers.items[i])) == NULL)
            goto oom;
        hh->headers.n++;
    }
    hh->workers = calloc(workers, sizeof(*hh->workers));
    if (hh->workers == NULL)
        goto oom;
    hh->nworkers = workers;
    for (unsigned i = 0; i < workers; i++) {
        http_worker_t *w = &hh->workers[i];
        w->curl = curl_easy_init();
        if (w->curl == NULL) {
            snprintf(err, errlen,
                     "stream %s: cannot create the http handler: curl_easy_init "
                     "failed (was curl_global_init called?)",
                     sc->name);
            goto fail;
        }
        CURLcode rc = configure_handle(sc, hh, w);
        if (rc != CURLE_OK) {
            /* The one refusal to expect: a libcurl built without a feature (TLS, say). */
            snprintf(err, errlen, "stream %s: cannot create the http handler: libcurl: %s",
                     sc->name, curl_easy_strerror(rc));
            goto fail;
        }
    }
    return &hh->base;
oom:
    snprintf(err, errlen, "stream %s: cannot create the http handler: out of memory", sc->name);
fail:
    http_free(hh != NULL ? &hh->base : NULL);
    return NULL;
}
