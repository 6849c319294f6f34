/*
 * httpc: the supervisor's outgoing HTTP client: libcurl's multi interface
 * driven by the libev loop (one client per loop, shared by the HTTP sinks).
 * It owns the CURLM, its io/timer watchers and the transfers; it knows no
 * sink, never blocks the loop and never logs a URL, header or body.
 */
#ifndef PGSENSE_HTTPC_H_INCLUDED
#define PGSENSE_HTTPC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

typedef struct httpc httpc;         /* one per loop, reference counted */
typedef struct httpc_req httpc_req; /* one transfer, owned by httpc */

#define HTTPC_MAX_RESPONSE       (64u * 1024u) /* response body bytes kept; the rest is discarded */
#define HTTPC_MAX_CONNECT_MS     10000         /* connect timeout cap (below the request timeout) */
#define HTTPC_RETRY_AFTER_MAX_MS 300000        /* a Retry-After longer than this is capped */

/* What a finished transfer reports. Pointers are valid during the callback only. */
typedef struct {
    long status;         /* HTTP status; 0 when no answer (connect error, timeout) */
    int curl_code;       /* CURLcode, 0 on a transfer that completed */
    const char *error;   /* curl's generic text for curl_code ("Timeout was reached"), never the URL */
    long retry_after_ms; /* Retry-After (seconds or HTTP date), capped; -1 when absent */
    double total_s;      /* time from start to completion */
    const char *body;    /* response body, NUL-terminated, at most HTTPC_MAX_RESPONSE bytes */
    size_t body_len;
} httpc_result;

/* Called once per transfer, from the loop, never from inside httpc_post. */
typedef void (*httpc_done_cb)(void *ctx, const httpc_result *r);

/*
 * The loop's client, created on first use (curl_global_init then, once per
 * process); every httpc_acquire is paired with httpc_release. NULL with err
 * filled on failure.
 */
httpc *httpc_acquire(struct ev_loop *loop, char *err, size_t errlen);
/* Drop one reference; the last one cancels what is left (no callbacks) and frees. */
void httpc_release(httpc *h);

/*
 * Start a request: method "POST" (body sent) or "HEAD". headers are full
 * "Name: value" lines; url, headers and body are copied. timeout_ms bounds
 * the whole transfer. NULL on ENOMEM or a curl setup failure (err filled).
 */
httpc_req *httpc_start(httpc *h, const char *method, const char *url, const char *const *headers,
                       size_t n_headers, const char *body, size_t body_len, long timeout_ms, httpc_done_cb cb,
                       void *ctx, char *err, size_t errlen);
/* Abort a transfer still running; its callback is not called. */
void httpc_cancel(httpc *h, httpc_req *r);
/* Transfers running. */
size_t httpc_running(const httpc *h);

/* ---- shared by the HTTP sinks (and their unit tests) ---- */

/* Worth retrying: no answer, 408, 429, 5xx. */
bool httpc_retryable(long status, int curl_code);
/*
 * Backoff before retry number `attempt` (1 = first retry): min_ms doubled
 * per attempt, capped at max_ms, then lowered by up to 20 % of jitter
 * (jitter in [0,1), 0 gives the full value). Never below min_ms / 2.
 */
long httpc_backoff_ms(unsigned attempt, long min_ms, long max_ms, double jitter);
/* The delay to wait after a failed attempt: Retry-After when the answer had one, else the backoff. */
long httpc_retry_delay_ms(const httpc_result *r, unsigned attempt, long min_ms, long max_ms, double jitter);
/*
 * Scheme and host[:port] of url, without user:password@, path or query
 * (what logs may show): "https://hooks.example.com".
 */
void httpc_url_origin(const char *url, char *out, size_t outlen);

#endif /* PGSENSE_HTTPC_H_INCLUDED */
