/* chan: the worker's supervisor channel (see header). */
#include "chan.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

/* Frames are written at the end of the loop iteration (ev_prepare), so the
 * FINDINGS and TXN_END of every transaction decoded in one iteration share
 * one send(2) and one wakeup of the supervisor; a queue past this size is
 * written at once. */
#define CHAN_FLUSH_NOW (64 * 1024)

struct chan {
    struct ev_loop *loop;
    int fd;
    frame_decoder *dec;
    frame_outq *out;
    ev_io rio, wio;
    ev_prepare pw; /* deferred flush */
    ev_timer hb;
    chan_frame_cb on_frame;
    chan_closed_cb on_closed;
    void *ctx;
    int64_t credit;
    bool closed;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void close_chan(chan *c, bool eof, const char *reason)
{
    if (c->closed)
        return;
    c->closed = true;
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_prepare_stop(c->loop, &c->pw);
    ev_timer_stop(c->loop, &c->hb);
    c->on_closed(c->ctx, eof, reason);
}

static void flush(chan *c)
{
    frame_status st = frame_outq_flush(c->out, c->fd);
    if (st == FRAME_OK)
        ev_io_stop(c->loop, &c->wio);
    else if (st == FRAME_AGAIN)
        ev_io_start(c->loop, &c->wio);
    else
        close_chan(c, false, frame_outq_error(c->out));
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    chan *c = w->data;
    for (int rounds = 0; rounds < 64 && !c->closed; rounds++) {
        frame_status rs = frame_decoder_read(c->dec, c->fd);
        frame f;
        frame_status st;
        while (!c->closed && (st = frame_next(c->dec, &f)) == FRAME_OK)
            c->on_frame(c->ctx, &f);
        if (c->closed)
            return;
        if (st != FRAME_AGAIN) {
            close_chan(c, false, frame_decoder_error(c->dec));
            return;
        }
        if (rs == FRAME_EOF) {
            close_chan(c, true, "supervisor closed the channel");
            return;
        }
        if (rs == FRAME_ERR) {
            close_chan(c, false, frame_decoder_error(c->dec));
            return;
        }
        if (rs == FRAME_AGAIN)
            return;
    }
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    flush(w->data);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    chan *c = w->data;
    ev_prepare_stop(loop, w);
    if (!c->closed && frame_outq_pending(c->out) > 0 && !ev_is_active(&c->wio))
        flush(c);
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    chan *c = w->data;
    frame f = {.type = FRAME_HEARTBEAT};
    f.heartbeat.sent_at = now_us();
    if (chan_send(c, &f) < 0)
        log_warn("chan", "cannot queue a heartbeat: %s", frame_outq_error(c->out));
}

chan *chan_new(struct ev_loop *loop, int fd, chan_frame_cb on_frame, chan_closed_cb on_closed, void *ctx)
{
    chan *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->fd = fd;
    c->on_frame = on_frame;
    c->on_closed = on_closed;
    c->ctx = ctx;
    c->dec = frame_decoder_new(FRAME_ROLE_WORKER);
    c->out = frame_outq_new(0);
    if (!c->dec || !c->out) {
        chan_free(c);
        return NULL;
    }
    ev_io_init(&c->rio, on_read, fd, EV_READ);
    ev_io_init(&c->wio, on_write, fd, EV_WRITE);
    ev_prepare_init(&c->pw, on_prepare);
    ev_init(&c->hb, on_heartbeat);
    c->rio.data = c->wio.data = c->pw.data = c->hb.data = c;
    ev_io_start(loop, &c->rio);
    return c;
}

void chan_free(chan *c)
{
    if (!c)
        return;
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_prepare_stop(c->loop, &c->pw);
    ev_timer_stop(c->loop, &c->hb);
    frame_decoder_free(c->dec);
    frame_outq_free(c->out);
    free(c);
}

int chan_send(chan *c, const frame *f)
{
    if (c->closed)
        return -1;
    frame_status st = frame_outq_push(c->out, f);
    if (st != FRAME_OK)
        return -1;
    if (ev_is_active(&c->wio))
        return 0; /* the socket is full: on_write sends it */
    if (frame_outq_pending(c->out) >= CHAN_FLUSH_NOW)
        flush(c);
    else
        ev_prepare_start(c->loop, &c->pw);
    return c->closed ? -1 : 0;
}

int chan_send_findings(chan *c, const frame *f)
{
    size_t len = 0;
    if (frame_encode(f, NULL, 0, &len, NULL, 0) == FRAME_ERR)
        return -1;
    if (chan_send(c, f) < 0)
        return -1;
    c->credit -= (int64_t)len;
    return 0;
}

void chan_heartbeat(chan *c, uint32_t interval_ms)
{
    ev_timer_stop(c->loop, &c->hb);
    if (interval_ms == 0)
        return;
    ev_timer_set(&c->hb, interval_ms / 1000.0, interval_ms / 1000.0);
    ev_timer_start(c->loop, &c->hb);
}

void chan_credit_set(chan *c, int64_t bytes)
{
    c->credit = bytes;
}

void chan_credit_add(chan *c, uint64_t bytes)
{
    c->credit += (int64_t)bytes;
}

int64_t chan_credit(const chan *c)
{
    return c->credit;
}

size_t chan_pending(const chan *c)
{
    return frame_outq_pending(c->out);
}

bool chan_congested(const chan *c)
{
    return frame_outq_pending(c->out) > frame_outq_limit(c->out) / 2;
}

void chan_flush_blocking(chan *c, int timeout_ms)
{
    struct timeval start, now;
    gettimeofday(&start, NULL);
    while (!c->closed && frame_outq_pending(c->out) > 0) {
        frame_status st = frame_outq_flush(c->out, c->fd);
        if (st == FRAME_OK || st == FRAME_ERR)
            return;
        gettimeofday(&now, NULL);
        long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
        if (waited >= timeout_ms)
            return;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)(timeout_ms - waited)) < 0 && errno != EINTR)
            return;
    }
}
