/*
 * sink_webhook: one HTTP POST per finding ([[alerts.webhooks]]), the body
 * being the SPEC section 5 JSON object (sink_format_json, the jsonl line).
 * Owns its queue, its retry timer and its settings; sends through httpc.
 *
 * Queue: a FIFO of findings, at most SINK_WEBHOOK_INFLIGHT in flight. A
 * finished POST marks its finding done; durable_pos walks the done prefix,
 * so it only ever covers findings answered 2xx (or given up), in order.
 *
 * Failures: no answer, 408, 429, 5xx pause the whole sink (Retry-After, else
 * exponential backoff with jitter) and retry the finding. A non-durable
 * webhook gives a finding up after SINK_WEBHOOK_MAX_RETRIES retries (other
 * 4xx at once) and refuses findings past SINK_WEBHOOK_QUEUE_MAX: both
 * counted in dropped and logged, rate-limited. A durable webhook never gives
 * up: past SINK_WEBHOOK_QUEUE_MAX it is blocked, so the pipeline withholds
 * credit and the workers stop reading, as the jsonl sink on a full disk.
 */
#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpc.h"
#include "log.h"
#include "sink.h"
#include "sink_http.h"

#define MOD "sink"

#define WEBHOOK_LOG_EVERY_S 10.0 /* at most one drop / failure line per this many seconds */

struct sink_webhook;

typedef struct wh_item {
    struct wh_item *next;
    struct sink_webhook *w;
    httpc_req *req;    /* while in flight */
    unsigned attempts; /* failed POSTs so far */
    bool done;         /* delivered or given up */
    size_t len;
    char body[];
} wh_item;

typedef struct {
    char *url;
    char **headers; /* "Name: value" lines, Content-Type first unless configured */
    size_t n_headers;
    long timeout_ms;
    bool durable;
    char origin[256]; /* scheme://host[:port], what logs show */
} wh_conf;

typedef struct sink_webhook {
    sink base;
    httpc *http;
    wh_conf conf, next;
    bool have_next;
    wh_item *head, *tail;
    size_t n_items; /* queued, in flight included */
    size_t n_inflight;
    sink_buf scratch; /* JSON formatting */
    ev_timer retry;   /* pause after a failure */
    unsigned streak;  /* failed pauses in a row (backoff exponent) */
    ev_tstamp fail_since;
    ev_tstamp last_fail_log, last_drop_log;
    uint64_t drops_unlogged, fails_unlogged;
} sink_webhook;

/* ---- settings ---- */

static void conf_free(wh_conf *c)
{
    for (size_t i = 0; i < c->n_headers; i++)
        free(c->headers[i]);
    free(c->headers);
    free(c->url);
    memset(c, 0, sizeof(*c));
}

static int conf_build(wh_conf *c, const config_webhook *w, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    const char *name = w->name ? w->name : "webhook";
    if (!w->url || (strncmp(w->url, "http://", 7) != 0 && strncmp(w->url, "https://", 8) != 0)) {
        snprintf(err, errlen, "webhook \"%s\": url must start with http:// or https://", name);
        return -1;
    }
    bool own_type = false;
    for (size_t i = 0; i < w->headers.n; i++) {
        const config_header *h = &w->headers.items[i];
        if (strcasecmp(h->name, "Content-Type") == 0)
            own_type = true;
        if (strpbrk(h->name, "\r\n:") || (h->value && strpbrk(h->value, "\r\n"))) {
            snprintf(err, errlen, "webhook \"%s\": header %s holds a line break; fix its value", name,
                     strpbrk(h->name, "\r\n") ? "(name)" : h->name);
            return -1;
        }
    }
    c->url = strdup(w->url);
    c->headers = calloc(w->headers.n + 1, sizeof(char *));
    if (!c->url || !c->headers)
        goto oom;
    if (!own_type) {
        if (!(c->headers[c->n_headers] = strdup("Content-Type: application/json")))
            goto oom;
        c->n_headers++;
    }
    for (size_t i = 0; i < w->headers.n; i++) {
        const config_header *h = &w->headers.items[i];
        size_t n = strlen(h->name) + strlen(h->value ? h->value : "") + 3;
        char *line = malloc(n);
        if (!line)
            goto oom;
        snprintf(line, n, "%s: %s", h->name, h->value ? h->value : "");
        c->headers[c->n_headers++] = line;
    }
    c->timeout_ms = w->timeout_ms > 0 ? w->timeout_ms : 5000;
    c->durable = w->durable;
    httpc_url_origin(w->url, c->origin, sizeof(c->origin));
    return 0;
oom:
    conf_free(c);
    snprintf(err, errlen, "out of memory");
    return -1;
}

static const config_webhook *conf_find(const config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->alerts.n_webhooks; i++)
        if (cfg->alerts.webhooks[i].name && strcmp(cfg->alerts.webhooks[i].name, name) == 0)
            return &cfg->alerts.webhooks[i];
    return NULL;
}

/* ---- queue ---- */

static void wh_kick(sink_webhook *w);
static void wh_done_cb(void *ctx, const httpc_result *r);

static double jitter(void)
{
    return drand48();
}

/* Pop the done prefix into durable_pos; true when something moved or the block lifted. */
static bool wh_advance(sink_webhook *w)
{
    sink *s = &w->base;
    bool moved = false;
    while (w->head && w->head->done) {
        wh_item *it = w->head;
        w->head = it->next;
        if (!w->head)
            w->tail = NULL;
        w->n_items--;
        s->buffered -= it->len;
        s->durable_pos++;
        free(it);
        moved = true;
    }
    if (s->blocked && (w->n_items < SINK_WEBHOOK_QUEUE_MAX || !s->durable)) {
        s->blocked = false;
        log_info(MOD, "webhook \"%s\": queue below %d findings again, workers resume", s->name,
                 SINK_WEBHOOK_QUEUE_MAX);
        moved = true;
    }
    return moved;
}

static void wh_log_drop(sink_webhook *w, uint64_t n, const char *why)
{
    sink *s = &w->base;
    ev_tstamp now = ev_now(s->loop);
    w->drops_unlogged += n;
    if (now - w->last_drop_log < WEBHOOK_LOG_EVERY_S)
        return;
    log_error(MOD, "webhook \"%s\" (%s/...): %" PRIu64 " finding(s) dropped (%s); %" PRIu64 " dropped in all",
              s->name, w->conf.origin, w->drops_unlogged, why, s->dropped);
    w->drops_unlogged = 0;
    w->last_drop_log = now;
}

static void wh_log_failure(sink_webhook *w, const httpc_result *r, long delay_ms)
{
    sink *s = &w->base;
    ev_tstamp now = ev_now(s->loop);
    w->fails_unlogged++;
    if (now - w->last_fail_log < WEBHOOK_LOG_EVERY_S)
        return;
    char what[96];
    if (r->status)
        snprintf(what, sizeof(what), "HTTP %ld", r->status);
    else
        snprintf(what, sizeof(what), "%s", r->error && *r->error ? r->error : "no answer");
    log_warn(MOD,
             "webhook \"%s\" (%s/...): POST failed: %s (%" PRIu64 " failure(s) in %.0f s); %zu finding(s) "
             "queued, retrying in %ld ms%s",
             s->name, w->conf.origin, what, w->fails_unlogged, now - w->fail_since, w->n_items, delay_ms,
             s->durable ? " (durable: acknowledgements wait)" : "");
    w->fails_unlogged = 0;
    w->last_fail_log = now;
}

/* Start POSTs for waiting findings, up to the in-flight bound, unless paused. */
static void wh_kick(sink_webhook *w)
{
    sink *s = &w->base;
    char err[256];
    if (ev_is_active(&w->retry))
        return;
    for (wh_item *it = w->head; it && w->n_inflight < SINK_WEBHOOK_INFLIGHT; it = it->next) {
        if (it->done || it->req)
            continue;
        it->req =
            httpc_start(w->http, "POST", w->conf.url, (const char *const *)w->conf.headers, w->conf.n_headers,
                        it->body, it->len, w->conf.timeout_ms, wh_done_cb, it, err, sizeof(err));
        if (!it->req) {
            log_error(MOD, "webhook \"%s\": %s; retrying", s->name, err);
            ev_timer_set(&w->retry, SINK_WEBHOOK_RETRY_MIN_MS / 1000.0, 0.);
            ev_timer_start(s->loop, &w->retry);
            return;
        }
        w->n_inflight++;
    }
}

/* A POST finished. Calls progress last: the pipeline may destroy the sink from it. */
static void wh_done_cb(void *ctx, const httpc_result *r)
{
    wh_item *it = ctx;
    sink_webhook *w = it->w;
    sink *s = &w->base;
    it->req = NULL;
    w->n_inflight--;
    if (r->status >= 200 && r->status < 300) {
        it->done = true;
        s->delivered++;
        if (w->streak > 0 && !ev_is_active(&w->retry)) {
            log_info(MOD, "webhook \"%s\" (%s/...): delivering again after %.1f s of failures", s->name,
                     w->conf.origin, ev_now(s->loop) - w->fail_since);
            w->streak = 0;
            w->fails_unlogged = 0;
        }
    } else {
        bool retry = httpc_retryable(r->status, r->curl_code);
        s->errors++;
        it->attempts++;
        if (!s->durable && (!retry || it->attempts > SINK_WEBHOOK_MAX_RETRIES)) {
            it->done = true;
            s->dropped++;
            char why[64];
            if (r->status)
                snprintf(why, sizeof(why), "HTTP %ld after %u attempt(s)", r->status, it->attempts);
            else
                snprintf(why, sizeof(why), "no answer after %u attempts", it->attempts);
            wh_log_drop(w, 1, why);
        } else if (!ev_is_active(&w->retry)) {
            /* one pause for the whole sink: the receiver is the one in trouble */
            if (w->streak == 0)
                w->fail_since = ev_now(s->loop);
            w->streak++;
            long delay = httpc_retry_delay_ms(r, w->streak, SINK_WEBHOOK_RETRY_MIN_MS,
                                              SINK_WEBHOOK_RETRY_MAX_MS, jitter());
            if (!retry)
                log_error(MOD,
                          "webhook \"%s\" (%s/...): the receiver refuses findings (HTTP %ld); durable, so "
                          "kept and retried: fix the receiver or the webhook's headers",
                          s->name, w->conf.origin, r->status);
            wh_log_failure(w, r, delay);
            ev_timer_set(&w->retry, (double)delay / 1000.0, 0.);
            ev_timer_start(s->loop, &w->retry);
        }
    }
    bool moved = wh_advance(w);
    wh_kick(w);
    if (moved && s->progress)
        s->progress(s->progress_ctx, s);
}

static void wh_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    sink_webhook *w = t->data;
    wh_kick(w);
}

/* ---- sink_ops ---- */

static int wh_write(sink *s, const sink_record *r)
{
    sink_webhook *w = (sink_webhook *)s;
    if (!s->durable && w->n_items >= SINK_WEBHOOK_QUEUE_MAX) {
        s->dropped++;
        wh_log_drop(w, 1, "queue full: the receiver is slow or down");
        return -1;
    }
    w->scratch.len = 0;
    if (sink_format_json(&w->scratch, r) < 0)
        goto oom;
    size_t len = w->scratch.len;
    if (len > 0 && w->scratch.data[len - 1] == '\n')
        len--; /* the object, not the line */
    wh_item *it = malloc(sizeof(*it) + len + 1);
    if (!it)
        goto oom;
    memset(it, 0, sizeof(*it));
    it->w = w;
    it->len = len;
    memcpy(it->body, w->scratch.data, len);
    it->body[len] = '\0';
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->n_items++;
    s->taken++;
    s->buffered += len;
    if (s->durable && !s->blocked && w->n_items >= SINK_WEBHOOK_QUEUE_MAX) {
        s->blocked = true; /* read by the pipeline right after write: credit is withheld */
        log_warn(MOD,
                 "webhook \"%s\" (%s/...): %zu findings waiting for the receiver; durable: workers paused "
                 "(credit withheld) until it catches up",
                 s->name, w->conf.origin, w->n_items);
    }
    return 0;
oom:
    s->dropped++;
    log_error(MOD, "webhook \"%s\": out of memory queueing a finding; it is lost", s->name);
    return -1;
}

static void wh_flush(sink *s)
{
    wh_kick((sink_webhook *)s);
}

static int wh_prepare(sink *s, const config *cfg, char *err, size_t errlen)
{
    sink_webhook *w = (sink_webhook *)s;
    const config_webhook *c = conf_find(cfg, s->name);
    if (!c) {
        snprintf(err, errlen, "webhook \"%s\" is not in the new configuration", s->name);
        return -1;
    }
    if (w->have_next)
        conf_free(&w->next);
    w->have_next = false;
    if (conf_build(&w->next, c, err, errlen) < 0)
        return -1;
    w->have_next = true;
    return 0;
}

static void wh_commit(sink *s)
{
    sink_webhook *w = (sink_webhook *)s;
    if (!w->have_next)
        return;
    conf_free(&w->conf);
    w->conf = w->next;
    memset(&w->next, 0, sizeof(w->next));
    w->have_next = false;
    s->durable = w->conf.durable;
    /* new settings may fix what failed: try again now (in-flight POSTs finish with the old ones) */
    ev_timer_stop(s->loop, &w->retry);
    w->streak = 0;
    if (s->blocked && !s->durable)
        s->blocked = false; /* the pipeline looks at blocked after the reload */
    wh_kick(w);
}

static void wh_abort(sink *s)
{
    sink_webhook *w = (sink_webhook *)s;
    if (w->have_next)
        conf_free(&w->next);
    w->have_next = false;
}

static void wh_destroy(sink *s)
{
    sink_webhook *w = (sink_webhook *)s;
    wh_abort(s);
    if (w->drops_unlogged > 0) /* what the rate limit held back */
        log_error(MOD, "webhook \"%s\": %" PRIu64 " more finding(s) dropped; %" PRIu64 " dropped in all",
                  s->name, w->drops_unlogged, s->dropped);
    if (s->loop)
        ev_timer_stop(s->loop, &w->retry);
    while (w->head) {
        wh_item *it = w->head;
        w->head = it->next;
        if (it->req)
            httpc_cancel(w->http, it->req);
        free(it);
    }
    httpc_release(w->http);
    conf_free(&w->conf);
    sink_buf_free(&w->scratch);
    free(s->name);
    free(w);
}

static const sink_ops webhook_ops = {
    .kind = "webhook",
    .write = wh_write,
    .flush = wh_flush,
    .prepare = wh_prepare,
    .commit = wh_commit,
    .abort = wh_abort,
    .destroy = wh_destroy,
};

sink *sink_webhook_new(struct ev_loop *loop, const config_webhook *cfg, char *err, size_t errlen)
{
    sink_webhook *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->base.ops = &webhook_ops;
    w->base.loop = loop;
    ev_timer_init(&w->retry, wh_retry_cb, 0., 0.);
    w->retry.data = w;
    w->last_drop_log = w->last_fail_log = -1e9;
    w->base.name = strdup(cfg->name ? cfg->name : "webhook");
    if (!w->base.name) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (conf_build(&w->conf, cfg, err, errlen) < 0)
        goto fail;
    w->base.durable = w->conf.durable;
    w->http = httpc_acquire(loop, err, errlen);
    if (!w->http)
        goto fail;
    return &w->base;
fail:
    wh_destroy(&w->base);
    return NULL;
}

size_t sink_webhook_queued(const sink *s)
{
    return s->ops == &webhook_ops ? ((const sink_webhook *)s)->n_items : 0;
}
