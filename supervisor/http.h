/*
 * http: the supervisor's small HTTP endpoint (/health, /ready, /metrics),
 * libmicrohttpd driven from the libev loop (no thread, no parser of ours).
 * Owns the listening socket and MHD; what the pages say comes from callbacks.
 */
#ifndef PGSENSE_HTTP_H_INCLUDED
#define PGSENSE_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ev_loop;

typedef struct {
    int (*metrics)(void *ctx, FILE *out); /* write the Prometheus text; 0 or -1 (500) */
    bool (*ready)(void *ctx);             /* /ready: 200 when true, else 503 */
    void *ctx;
} http_handlers;

typedef struct http http;

/*
 * Listen on "host:port" or "[v6addr]:port" (port 0: an ephemeral port, see
 * http_port). GET or HEAD /health: 200 "ok"; /ready: 200 "ready" or 503
 * "not ready"; /metrics: 200 text/plain; version=0.0.4; other paths 404,
 * other methods 405. NULL with err filled on failure.
 */
http *http_new(struct ev_loop *loop, const char *listen, const http_handlers *h, char *err, size_t errlen);
void http_free(http *h);
uint16_t http_port(const http *h); /* the bound port */

/* Split "host:port" / "[v6]:port"; false on a malformed address. */
bool http_split_listen(const char *listen, char *host, size_t hostlen, char *port, size_t portlen);

#endif /* PGSENSE_HTTP_H_INCLUDED */
