/*
 * http: libmicrohttpd in external-poll mode with MHD_USE_EPOLL: MHD keeps
 * its sockets in its own epoll set, the loop watches that one fd (ev_io)
 * and MHD's timeout (ev_timer), and calls MHD_run when either fires. MHD
 * never blocks in MHD_run in this mode.
 */
#include "http.h"

#include <errno.h>
#include <ev.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

#define MOD "http"

#define HTTP_CONNECTION_LIMIT   64
#define HTTP_CONNECTION_TIMEOUT 10 /* seconds */

struct http {
    struct ev_loop *loop;
    struct MHD_Daemon *d;
    ev_io io;
    ev_timer timer;
    http_handlers h;
    uint16_t port;
};

bool http_split_listen(const char *listen, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    size_t hl;
    const char *hs;
    if (!listen || !*listen)
        return false;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':')
            return false;
        hs = listen + 1;
        hl = (size_t)(end - hs);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
            return false; /* a bare v6 address needs brackets */
        hs = listen;
        hl = (size_t)(colon - listen);
    }
    const char *ps = colon + 1;
    size_t pl = strlen(ps);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen || strspn(ps, "0123456789") != pl || pl > 5 ||
        atoi(ps) > 65535)
        return false;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    memcpy(port, ps, pl + 1);
    return true;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    log_warn(MOD, "libmicrohttpd: %s", text);
}

static enum MHD_Result reply_static(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    enum MHD_Result rc =
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (rc == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
        rc = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (rc == MHD_YES)
        rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_metrics(http *h, struct MHD_Connection *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return reply_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    int rc = h->h.metrics ? h->h.metrics(h->h.ctx, out) : 0;
    if (fclose(out) != 0 || rc < 0) {
        free(buf);
        return reply_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics unavailable\n");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    enum MHD_Result res =
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    if (res == MHD_YES)
        res = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    http *h = cls;
    if (*upload_data_size != 0)
        return reply_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/health") == 0)
        return reply_static(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/ready") == 0) {
        bool ready = h->h.ready ? h->h.ready(h->h.ctx) : true;
        return reply_static(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            ready ? "ready\n" : "not ready\n");
    }
    if (strcmp(url, "/metrics") == 0)
        return reply_metrics(h, c);
    return reply_static(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* After every MHD_run: arm the timer for MHD's next deadline, if any. */
static void http_rearm(http *h)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    ev_timer_stop(h->loop, &h->timer);
    if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
        ev_timer_set(&h->timer, (double)ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->timer);
    }
}

static void http_run(http *h)
{
    if (MHD_run(h->d) != MHD_YES)
        log_warn(MOD, "MHD_run failed");
    http_rearm(h);
}

static void http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    http_run(w->data);
}

static void http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_run(w->data);
}

http *http_new(struct ev_loop *loop, const char *listen, const http_handlers *hd, char *err, size_t errlen)
{
    char host[256], port[8];
    struct addrinfo hints, *ai = NULL;
    http *h = NULL;

    if (!http_split_listen(listen, host, sizeof(host), port, sizeof(port))) {
        snprintf(err, errlen, "[server] listen \"%s\" is not host:port or [v6]:port", listen ? listen : "");
        goto fail;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "[server] listen \"%s\": cannot resolve %s: %s", listen, host,
                 gai_strerror(gai));
        goto fail;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    h->loop = loop;
    h->h = *hd;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the logger goes first so MHD never writes to stderr itself */
    h->d = MHD_start_daemon(flags, (uint16_t)atoi(port), NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "[server] cannot listen on %s (address in use or not local?)", listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || info->epoll_fd < 0) {
        snprintf(err, errlen, "libmicrohttpd has no epoll support");
        goto fail;
    }
    ev_io_init(&h->io, http_io_cb, info->epoll_fd, EV_READ);
    h->io.data = h;
    ev_init(&h->timer, http_timer_cb);
    h->timer.data = h;
    const union MHD_DaemonInfo *pinfo = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = pinfo ? pinfo->port : 0;
    ev_io_start(loop, &h->io);
    http_rearm(h);
    freeaddrinfo(ai);
    log_info(MOD, "serving /health, /ready and /metrics on %s (port %u)", listen, (unsigned)h->port);
    return h;
fail:
    if (ai)
        freeaddrinfo(ai);
    if (h) {
        if (h->d)
            MHD_stop_daemon(h->d);
        free(h);
    }
    return NULL;
}

void http_free(http *h)
{
    if (!h)
        return;
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->timer);
    MHD_stop_daemon(h->d);
    free(h);
}

uint16_t http_port(const http *h)
{
    return h->port;
}
