/* Unit tests for supervisor/metrics.c (exact Prometheus text) and supervisor/http.c (served from libev). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"

static char *render(metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    cr_assert_not_null(out);
    cr_assert_eq(metrics_render(m, out), 0);
    cr_assert_eq(fclose(out), 0);
    return buf;
}

Test(metrics, text_is_exact)
{
    metrics *m = metrics_new();
    static const char *const dbl[] = {"database"};
    static const char *const ds[] = {"database", "outcome"};
    metrics_family *ev =
        metrics_register(m, "pgsense_events_total", "Row changes seen.", METRICS_COUNTER, 1, dbl);
    metrics_family *rl = metrics_register(m, "pgsense_rules_loaded", "Rules loaded.", METRICS_GAUGE, 0, NULL);
    metrics_family *dd =
        metrics_register(m, "pgsense_dedup_total", "Dedup outcomes.", METRICS_COUNTER, 2, ds);
    metrics_family *em = metrics_register(m, "pgsense_empty", "No series yet.", METRICS_GAUGE, 1, dbl);
    cr_assert(ev && rl && dd && em);
    const char *a[] = {"localhost/app"}, *b[] = {"db\"x\\y\nz"};
    cr_assert_eq(metrics_add(ev, a, 1200), 0);
    cr_assert_eq(metrics_add(ev, b, 3), 0);
    cr_assert_eq(metrics_add(ev, a, 5), 0);
    cr_assert_eq(metrics_set(rl, NULL, 14), 0);
    const char *p[] = {"localhost/app", "passed"}, *s[] = {"localhost/app", "suppressed"};
    cr_assert_eq(metrics_add(dd, p, 2), 0);
    cr_assert_eq(metrics_add(dd, s, 1), 0);
    cr_assert_eq(metrics_get(ev, a), 1205);
    cr_assert_eq(metrics_get(dd, (const char *[]){"nope", "passed"}), 0);
    char *t = render(m);
    cr_assert_str_eq(t, "# HELP pgsense_events_total Row changes seen.\n"
                        "# TYPE pgsense_events_total counter\n"
                        "pgsense_events_total{database=\"localhost/app\"} 1205\n"
                        "pgsense_events_total{database=\"db\\\"x\\\\y\\nz\"} 3\n"
                        "# HELP pgsense_rules_loaded Rules loaded.\n"
                        "# TYPE pgsense_rules_loaded gauge\n"
                        "pgsense_rules_loaded 14\n"
                        "# HELP pgsense_dedup_total Dedup outcomes.\n"
                        "# TYPE pgsense_dedup_total counter\n"
                        "pgsense_dedup_total{database=\"localhost/app\",outcome=\"passed\"} 2\n"
                        "pgsense_dedup_total{database=\"localhost/app\",outcome=\"suppressed\"} 1\n"
                        "# HELP pgsense_empty No series yet.\n"
                        "# TYPE pgsense_empty gauge\n");
    free(t);
    metrics_remove(ev, a);
    t = render(m);
    cr_assert_null(strstr(t, "localhost/app\"} 1205"));
    cr_assert_not_null(strstr(t, "pgsense_events_total{database=\"db\\\"x\\\\y\\nz\"} 3\n"));
    free(t);
    metrics_free(m);
}

Test(metrics, many_series_stay_addressable)
{
    metrics *m = metrics_new();
    static const char *const l[] = {"rule_id"};
    metrics_family *f = metrics_register(m, "pgsense_script_errors_total", "x", METRICS_COUNTER, 1, l);
    char id[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 500; i++) {
            snprintf(id, sizeof(id), "rule-%d", i);
            const char *v[] = {id};
            cr_assert_eq(metrics_add(f, v, i), 0);
        }
    snprintf(id, sizeof(id), "rule-%d", 321);
    cr_assert_eq(metrics_get(f, (const char *[]){id}), 642);
    metrics_free(m);
}

Test(http, split_listen)
{
    char h[64], p[8];
    cr_assert(http_split_listen("127.0.0.1:9187", h, sizeof(h), p, sizeof(p)));
    cr_assert_str_eq(h, "127.0.0.1");
    cr_assert_str_eq(p, "9187");
    cr_assert(http_split_listen("[::1]:80", h, sizeof(h), p, sizeof(p)));
    cr_assert_str_eq(h, "::1");
    cr_assert(!http_split_listen("::1:80", h, sizeof(h), p, sizeof(p)));
    cr_assert(!http_split_listen("host", h, sizeof(h), p, sizeof(p)));
    cr_assert(!http_split_listen("host:99999", h, sizeof(h), p, sizeof(p)));
    cr_assert(!http_split_listen(":80", h, sizeof(h), p, sizeof(p)));
    cr_assert(!http_split_listen("host:8x", h, sizeof(h), p, sizeof(p)));
}

static bool ready_value;
static int metrics_calls;

static int t_metrics(void *ctx, FILE *out)
{
    (void)ctx;
    metrics_calls++;
    fputs("pgsense_rules_loaded 3\n", out);
    return 0;
}

static bool t_ready(void *ctx)
{
    (void)ctx;
    return ready_value;
}

/* Send one request and drive the loop until the server closes the connection. */
static char *request(struct ev_loop *loop, uint16_t port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    static char buf[65536];
    size_t len = 0;
    for (int i = 0; i < 2000; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 2) > 0) {
            ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
        }
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

Test(http, serves_health_ready_metrics_from_libev)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256];
    http_handlers h = {.metrics = t_metrics, .ready = t_ready, .ctx = NULL};
    bool before[256];
    for (int fd = 0; fd < 256; fd++)
        before[fd] = fcntl(fd, F_GETFD) != -1;
    http *srv = http_new(loop, "127.0.0.1:0", &h, err, sizeof(err));
    cr_assert_not_null(srv, "%s", err);
    /* every descriptor the server opened (listen socket, epoll) is close-on-exec */
    int opened = 0;
    for (int fd = 0; fd < 256; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl == -1 || before[fd])
            continue;
        opened++;
        cr_assert(fl & FD_CLOEXEC, "fd %d is not close-on-exec", fd);
    }
    cr_assert_geq(opened, 2);
    uint16_t port = http_port(srv);
    cr_assert_gt(port, 0);

    char *r = request(loop, port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "\r\n\r\nok\n"), "%s", r);

    ready_value = false;
    r = request(loop, port, "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 503", 12) == 0, "%s", r);
    ready_value = true;
    r = request(loop, port, "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);

    r = request(loop, port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "Content-Type: text/plain; version=0.0.4"), "%s", r);
    cr_assert_not_null(strstr(r, "\r\n\r\npgsense_rules_loaded 3\n"), "%s", r);
    cr_assert_eq(metrics_calls, 1);

    r = request(loop, port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 404", 12) == 0, "%s", r);
    r = request(loop, port, "DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 405", 12) == 0, "%s", r);

    http_free(srv);
    ev_loop_destroy(loop);
}

Test(http, bad_listen_is_refused)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256];
    http_handlers h = {0};
    cr_assert_null(http_new(loop, "nonsense", &h, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "nonsense"), "%s", err);
    ev_loop_destroy(loop);
}
