/*
 * httpc: libcurl multi <-> libev glue for the HTTP sinks. curl tells us
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one ev_io each) and
 * when to wake it (CURLMOPT_TIMERFUNCTION -> one ev_timer); both call
 * curl_multi_socket_action, then finished transfers are reported through
 * their callbacks. Sockets are opened by us with SOCK_CLOEXEC so that a
 * forked worker never inherits one.
 *
 * A completion callback may cancel other transfers or drop the last
 * reference (a sink destroyed by the pipeline from its progress callback):
 * the client is then freed only once the callback loop has returned.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

#define MOD "httpc"

struct httpc_req {
    httpc_req *prev, *next;
    httpc *h;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* the request body we send (POSTFIELDS points here) */
    char *resp; /* response body, NUL-terminated */
    size_t resp_len;
    httpc_done_cb cb;
    void *ctx;
};

struct httpc {
    httpc *next_client; /* the process's list of clients, one per loop */
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    int refs;
    int busy;  /* inside the completion loop */
    bool dead; /* last reference dropped while busy */
    httpc_req *reqs;
    size_t n_reqs;
    struct httpc_sock *socks; /* watched sockets */
};

typedef struct httpc_sock {
    ev_io io;
    httpc *h;
    struct httpc_sock *prev, *next; /* h->socks */
} httpc_sock;

static httpc *clients;
static bool global_done;

/* ---- curl -> libev ---- */

static void check_done(httpc *h);
static void client_free(httpc *h);
static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void sock_free(httpc *h, httpc_sock *s)
{
    ev_io_stop(h->loop, &s->io);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    httpc *h = userp;
    httpc_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_free(h, s);
            if (curl_multi_assign(h->multi, fd, NULL) != CURLM_OK)
                log_debug(MOD, "curl_multi_assign failed clearing a socket");
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            log_error(MOD, "out of memory watching an HTTP socket");
            return -1; /* curl fails the transfer */
        }
        s->h = h;
        ev_init(&s->io, io_cb);
        if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
            free(s);
            return -1;
        }
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(h->loop, &s->io);
    ev_io_set(&s->io, fd, ev);
    s->io.data = h;
    ev_io_start(h->loop, &s->io);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    httpc *h = userp;
    ev_timer_stop(h->loop, &h->timer);
    if (timeout_ms >= 0) {
        /* 0: "as soon as possible"; never call socket_action from inside this callback */
        ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->timer);
    }
    return 0;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    httpc *h = w->data;
    int running = 0;
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    /* w may be freed by sock_cb inside socket_action: nothing reads it afterwards */
    CURLMcode rc = curl_multi_socket_action(h->multi, w->fd, action, &running);
    if (rc != CURLM_OK)
        log_error(MOD, "curl_multi_socket_action: %s", curl_multi_strerror(rc));
    check_done(h);
}

static void tmo_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    httpc *h = w->data;
    int running = 0;
    CURLMcode rc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (rc != CURLM_OK)
        log_error(MOD, "curl_multi_socket_action: %s", curl_multi_strerror(rc));
    check_done(h);
}

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)clientp;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    httpc_req *r = userp;
    size_t n = size * nmemb;
    size_t room = HTTPC_MAX_RESPONSE - r->resp_len;
    size_t take = n < room ? n : room;
    if (take > 0) {
        memcpy(r->resp + r->resp_len, data, take);
        r->resp_len += take;
        r->resp[r->resp_len] = '\0';
    }
    return n; /* the rest is discarded, not an error */
}

/* ---- requests ---- */

static void req_unlink(httpc *h, httpc_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    h->n_reqs--;
}

static void req_free(httpc_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->resp);
    free(r);
}

static void check_done(httpc *h)
{
    CURLMsg *msg;
    int left = 0;
    h->busy++;
    while (!h->dead && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        httpc_req *r = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r) != CURLE_OK || !r)
            continue;
        httpc_result res = {
            .curl_code = (int)code, .retry_after_ms = -1, .body = r->resp, .body_len = r->resp_len};
        res.error = code == CURLE_OK ? "" : curl_easy_strerror(code);
        long status = 0;
        if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
            res.status = status;
        curl_off_t ra = 0;
        if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            res.retry_after_ms =
                ra > HTTPC_RETRY_AFTER_MAX_MS / 1000 ? HTTPC_RETRY_AFTER_MAX_MS : (long)ra * 1000;
        double t = 0;
        if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &t) == CURLE_OK)
            res.total_s = t;
        if (curl_multi_remove_handle(h->multi, easy) != CURLM_OK)
            log_debug(MOD, "curl_multi_remove_handle failed");
        req_unlink(h, r);
        r->cb(r->ctx, &res); /* may cancel others or release h: h->dead then */
        req_free(r);
    }
    h->busy--;
    if (h->busy == 0 && h->dead)
        client_free(h);
}

httpc_req *httpc_start(httpc *h, const char *method, const char *url, const char *const *headers,
                       size_t n_headers, const char *body, size_t body_len, long timeout_ms, httpc_done_cb cb,
                       void *ctx, char *err, size_t errlen)
{
    httpc_req *r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    r->h = h;
    r->cb = cb;
    r->ctx = ctx;
    r->resp = malloc(HTTPC_MAX_RESPONSE + 1);
    r->easy = curl_easy_init();
    if (!r->resp || !r->easy)
        goto oom;
    r->resp[0] = '\0';
    for (size_t i = 0; i < n_headers; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, headers[i]);
        if (!l)
            goto oom;
        r->headers = l;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head) {
        struct curl_slist *l = curl_slist_append(r->headers, "Expect:"); /* no 100-continue round trip */
        if (!l)
            goto oom;
        r->headers = l;
        r->body = malloc(body_len + 1);
        if (!r->body)
            goto oom;
        if (body_len)
            memcpy(r->body, body, body_len);
        r->body[body_len] = '\0';
    }
    long connect_ms = timeout_ms < HTTPC_MAX_CONNECT_MS ? timeout_ms : HTTPC_MAX_CONNECT_MS;
    CURL *e = r->easy;
    CURLcode c = CURLE_OK;
#define SET(opt, val)                                                                                        \
    do {                                                                                                     \
        if (c == CURLE_OK)                                                                                   \
            c = curl_easy_setopt(e, opt, val);                                                               \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_cb);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_PRIVATE, r);
    SET(CURLOPT_USERAGENT, "pgsense");
    SET(CURLOPT_HTTPHEADER, r->headers);
    if (head) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, r->body);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
#undef SET
    if (c != CURLE_OK) {
        snprintf(err, errlen, "cannot set up an HTTP request: %s", curl_easy_strerror(c));
        goto fail;
    }
    CURLMcode mc = curl_multi_add_handle(h->multi, e);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "cannot start an HTTP request: %s", curl_multi_strerror(mc));
        goto fail;
    }
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->n_reqs++;
    return r;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (r)
        req_free(r);
    return NULL;
}

void httpc_cancel(httpc *h, httpc_req *r)
{
    if (!r)
        return;
    if (curl_multi_remove_handle(h->multi, r->easy) != CURLM_OK)
        log_debug(MOD, "curl_multi_remove_handle failed");
    req_unlink(h, r);
    req_free(r);
}

size_t httpc_running(const httpc *h)
{
    return h->n_reqs;
}

/* ---- the client ---- */

httpc *httpc_acquire(struct ev_loop *loop, char *err, size_t errlen)
{
    for (httpc *h = clients; h; h = h->next_client) {
        if (h->loop == loop && !h->dead) {
            h->refs++;
            return h;
        }
    }
    if (!global_done) {
        /* first use, at supervisor start (sinks are created before any worker runs) */
        CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (c != CURLE_OK) {
            snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(c));
            return NULL;
        }
        global_done = true;
    }
    httpc *h = calloc(1, sizeof(*h));
    if (!h || !(h->multi = curl_multi_init())) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->refs = 1;
    ev_init(&h->timer, tmo_cb);
    h->timer.data = h;
    CURLMcode mc = curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "cannot set up the HTTP client: %s", curl_multi_strerror(mc));
        curl_multi_cleanup(h->multi);
        free(h);
        return NULL;
    }
    h->next_client = clients;
    clients = h;
    return h;
}

static void client_free(httpc *h)
{
    for (httpc **pp = &clients; *pp; pp = &(*pp)->next_client) {
        if (*pp == h) {
            *pp = h->next_client;
            break;
        }
    }
    while (h->reqs)
        httpc_cancel(h, h->reqs); /* sock_cb frees the socket watchers */
    if (curl_multi_cleanup(h->multi) != CURLM_OK)
        log_debug(MOD, "curl_multi_cleanup failed");
    /* cleanup may have called timer_cb / left cached connections' watchers behind */
    ev_timer_stop(h->loop, &h->timer);
    while (h->socks)
        sock_free(h, h->socks);
    free(h);
}

void httpc_release(httpc *h)
{
    if (!h || --h->refs > 0)
        return;
    if (h->busy > 0) {
        h->dead = true; /* freed when the completion loop returns */
        return;
    }
    client_free(h);
}

/* ---- retry arithmetic ---- */

bool httpc_retryable(long status, int curl_code)
{
    if (status == 0)
        return true; /* no answer: connection refused, reset, timeout, DNS */
    (void)curl_code;
    return status == 408 || status == 429 || status >= 500;
}

long httpc_backoff_ms(unsigned attempt, long min_ms, long max_ms, double jitter)
{
    long d = min_ms > 0 ? min_ms : 1;
    for (unsigned i = 1; i < attempt && d < max_ms; i++)
        d = d > max_ms / 2 ? max_ms : d * 2;
    if (d > max_ms)
        d = max_ms;
    if (jitter < 0)
        jitter = 0;
    if (jitter >= 1)
        jitter = 0.999999;
    d -= (long)((double)d * 0.2 * jitter);
    long floor_ms = min_ms / 2 > 0 ? min_ms / 2 : 1;
    return d < floor_ms ? floor_ms : d;
}

long httpc_retry_delay_ms(const httpc_result *r, unsigned attempt, long min_ms, long max_ms, double jitter)
{
    if (r && r->retry_after_ms >= 0)
        return r->retry_after_ms > HTTPC_RETRY_AFTER_MAX_MS ? HTTPC_RETRY_AFTER_MAX_MS : r->retry_after_ms;
    return httpc_backoff_ms(attempt, min_ms, max_ms, jitter);
}

void httpc_url_origin(const char *url, char *out, size_t outlen)
{
    const char *sep = strstr(url, "://");
    int scheme_len = sep ? (int)(sep - url) + 3 : 0;
    const char *host = url + scheme_len;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n); /* drop user:password@ */
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    snprintf(out, outlen, "%.*s%.*s", scheme_len, url, (int)n, host);
}
