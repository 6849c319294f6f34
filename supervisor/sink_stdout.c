/*
 * sink_stdout: the "stdout" sink, the JSON line of every finding on
 * standard output. Owns a non-blocking descriptor of stdout, a bounded
 * buffer and a write watcher; not durable (over the bound it drops, counted).
 */
#include "sink.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define MOD "sink"

typedef struct {
    sink base;
    int fd;
    sink_buf buf;
    ev_io wio;
    bool drop_logged;
    bool failed; /* stdout is gone (EPIPE...): everything is dropped */
} sink_stdout;

/*
 * A descriptor of stdout that never blocks the loop. A pipe or a terminal
 * is reopened through /proc so O_NONBLOCK stays on our own open file
 * description (not the one shared with the parent); a regular file never
 * blocks; anything else (a socket, such as journald's) is dup'ed and set
 * non-blocking.
 */
static int stdout_open(char *err, size_t errlen)
{
    struct stat st;
    int fd = -1;
    if (fstat(STDOUT_FILENO, &st) < 0) {
        snprintf(err, errlen, "stdout sink: standard output is not open: %s", strerror(errno));
        return -1;
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        do {
            fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        } while (fd < 0 && errno == EINTR);
        if (fd >= 0)
            return fd;
    }
    fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        snprintf(err, errlen, "stdout sink: cannot duplicate standard output: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            snprintf(err, errlen, "stdout sink: cannot make standard output non-blocking: %s",
                     strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static size_t count_lines(const char *p, size_t n)
{
    size_t c = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        c++;
    return c;
}

static void stdout_flush(sink *s)
{
    sink_stdout *o = (sink_stdout *)s;
    size_t off = 0;
    while (off < o->buf.len && !o->failed) {
        ssize_t n = write(o->fd, o->buf.data + off, o->buf.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            s->errors++;
            log_error(MOD,
                      "stdout sink: writing standard output failed: %s; its findings are dropped from now on",
                      strerror(errno));
            o->failed = true;
            break;
        }
        off += (size_t)n;
    }
    size_t written = count_lines(o->buf.data, off);
    s->delivered += written;
    s->durable_pos += written;
    sink_buf_consume(&o->buf, off);
    if (o->failed && o->buf.len > 0) {
        size_t lost = count_lines(o->buf.data, o->buf.len);
        s->dropped += lost;
        s->durable_pos += lost;
        o->buf.len = 0;
    }
    s->buffered = o->buf.len;
    if (o->buf.len > 0 && !ev_is_active(&o->wio))
        ev_io_start(s->loop, &o->wio);
    else if (o->buf.len == 0 && ev_is_active(&o->wio))
        ev_io_stop(s->loop, &o->wio);
}

static void stdout_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    stdout_flush(w->data);
}

static int stdout_write(sink *s, const sink_record *r)
{
    sink_stdout *o = (sink_stdout *)s;
    size_t before = o->buf.len;
    if (o->failed || o->buf.len >= SINK_STDOUT_MAX_BUFFER || sink_format_json(&o->buf, r) < 0) {
        s->dropped++;
        if (!o->drop_logged && !o->failed) {
            log_warn(MOD,
                     "stdout sink: standard output does not keep up (%zu bytes queued); findings dropped",
                     before);
            o->drop_logged = true;
        }
        return -1;
    }
    o->drop_logged = false;
    s->taken++;
    s->buffered = o->buf.len;
    return 0;
}

static void stdout_destroy(sink *s)
{
    sink_stdout *o = (sink_stdout *)s;
    if (s->loop)
        ev_io_stop(s->loop, &o->wio);
    if (o->fd >= 0)
        close(o->fd);
    sink_buf_free(&o->buf);
    free(s->name);
    free(o);
}

static const sink_ops stdout_ops = {
    .kind = "stdout",
    .write = stdout_write,
    .flush = stdout_flush,
    .destroy = stdout_destroy,
};

sink *sink_stdout_new(struct ev_loop *loop, char *err, size_t errlen)
{
    sink_stdout *o = calloc(1, sizeof(*o));
    if (!o || !(o->base.name = strdup("stdout"))) {
        free(o);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    o->base.ops = &stdout_ops;
    o->base.loop = loop;
    o->fd = stdout_open(err, errlen);
    if (o->fd < 0) {
        stdout_destroy(&o->base);
        return NULL;
    }
    ev_io_init(&o->wio, stdout_io_cb, o->fd, EV_WRITE);
    o->wio.data = o;
    return &o->base;
}
