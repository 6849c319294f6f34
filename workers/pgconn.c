/*
 * pgconn: libpq in non-blocking mode on libev (see header). One read watcher
 * and one write watcher per connection; queries run one at a time from a
 * FIFO. libpq's own buffers absorb partial reads and writes.
 */
#include "pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct query {
    char *sql;
    pgconn_result_cb result_cb;
    pgconn_copy_cb copy_cb;
    void *ctx;
    struct query *next;
} query;

typedef enum {
    PC_NEW,
    PC_CONNECTING,
    PC_READY,
    PC_BROKEN,
} pc_state;

struct pgconn {
    struct ev_loop *loop;
    PGconn *conn;
    char label[64];
    pc_state state;
    ev_io rio, wio;
    int fd; /* socket the watchers are set on */
    pgconn_connected_cb connected_cb;
    void *connected_ctx;
    query *head, *tail; /* head is running once sent */
    bool sent;          /* head was sent */
    bool in_copy;       /* head is in COPY OUT / COPY BOTH */
    bool paused;
    bool processing; /* re-entrancy guard */
    PGresult *last;
    char err[512];
};

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void process(pgconn *c);

/* First line of a libpq message: later lines (DETAIL, CONTEXT) may quote row data. */
static void set_err(pgconn *c, const char *msg)
{
    if (!msg || !*msg)
        msg = "connection lost";
    size_t n = strcspn(msg, "\n");
    if (n >= sizeof(c->err))
        n = sizeof(c->err) - 1;
    memcpy(c->err, msg, n);
    c->err[n] = '\0';
}

pgconn *pgconn_new(struct ev_loop *loop, const char *const *keys, const char *const *values, const char *label)
{
    pgconn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->fd = -1;
    snprintf(c->label, sizeof(c->label), "%s", label ? label : "pg");
    c->conn = PQconnectStartParams(keys, values, 0);
    if (!c->conn) {
        free(c);
        return NULL;
    }
    ev_init(&c->rio, on_read);
    ev_init(&c->wio, on_write);
    c->rio.data = c;
    c->wio.data = c;
    return c;
}

static void watchers_stop(pgconn *c)
{
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
}

/* (Re)point the watchers at the current socket; libpq may change it while connecting. */
static void watch(pgconn *c, bool rd, bool wr)
{
    int fd = PQsocket(c->conn);
    if (fd != c->fd) {
        watchers_stop(c);
        c->fd = fd;
        if (fd < 0)
            return;
        ev_io_set(&c->rio, fd, EV_READ);
        ev_io_set(&c->wio, fd, EV_WRITE);
    }
    if (rd)
        ev_io_start(c->loop, &c->rio);
    else
        ev_io_stop(c->loop, &c->rio);
    if (wr)
        ev_io_start(c->loop, &c->wio);
    else
        ev_io_stop(c->loop, &c->wio);
}

static void query_free(query *q)
{
    free(q->sql);
    free(q);
}

/* The connection is unusable: tell every waiting query, once. */
static void broken(pgconn *c)
{
    if (c->state == PC_BROKEN)
        return;
    c->state = PC_BROKEN;
    watchers_stop(c);
    if (!c->err[0])
        set_err(c, PQerrorMessage(c->conn));
    while (c->head) {
        query *q = c->head;
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        if (q->result_cb)
            q->result_cb(c, q->ctx, NULL);
        query_free(q);
    }
    if (c->last) {
        PQclear(c->last);
        c->last = NULL;
    }
}

static void connect_step(pgconn *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        watch(c, true, false);
        return;
    case PGRES_POLLING_WRITING:
        watch(c, false, true);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->conn, 1) != 0) {
            set_err(c, PQerrorMessage(c->conn));
            break;
        }
        c->state = PC_READY;
        watch(c, true, false);
        c->connected_cb(c, c->connected_ctx, true, NULL);
        /* the callback may have queued queries */
        return;
    default:
        set_err(c, PQerrorMessage(c->conn));
        break;
    }
    c->state = PC_BROKEN;
    watchers_stop(c);
    c->connected_cb(c, c->connected_ctx, false, c->err);
}

int pgconn_connect(pgconn *c, pgconn_connected_cb cb, void *ctx)
{
    if (c->state != PC_NEW)
        return -1;
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        set_err(c, PQerrorMessage(c->conn));
        return -1;
    }
    c->connected_cb = cb;
    c->connected_ctx = ctx;
    c->state = PC_CONNECTING;
    watch(c, false, true);
    return 0;
}

/* Push libpq's output buffer; arm the write watcher while bytes remain. */
static int flush_out(pgconn *c)
{
    int r = PQflush(c->conn);
    if (r < 0) {
        set_err(c, PQerrorMessage(c->conn));
        return -1;
    }
    if (r > 0)
        ev_io_start(c->loop, &c->wio);
    else
        ev_io_stop(c->loop, &c->wio);
    return 0;
}

static void send_next(pgconn *c)
{
    if (c->state != PC_READY || !c->head || c->sent)
        return;
    if (!PQsendQuery(c->conn, c->head->sql)) {
        set_err(c, PQerrorMessage(c->conn));
        broken(c);
        return;
    }
    c->sent = true;
    if (flush_out(c) < 0)
        broken(c);
}

int pgconn_query(pgconn *c, const char *sql, pgconn_result_cb result_cb, pgconn_copy_cb copy_cb, void *ctx)
{
    if (c->state == PC_BROKEN)
        return -1;
    query *q = calloc(1, sizeof(*q));
    if (!q)
        return -1;
    q->sql = strdup(sql);
    if (!q->sql) {
        free(q);
        return -1;
    }
    q->result_cb = result_cb;
    q->copy_cb = copy_cb;
    q->ctx = ctx;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    send_next(c);
    return 0;
}

/* The head query finished: hand over its last result and start the next. */
static void complete_head(pgconn *c)
{
    query *q = c->head;
    c->head = q->next;
    if (!c->head)
        c->tail = NULL;
    c->sent = false;
    c->in_copy = false;
    PGresult *res = c->last;
    c->last = NULL;
    if (q->result_cb)
        q->result_cb(c, q->ctx, res);
    if (res)
        PQclear(res);
    query_free(q);
    send_next(c);
}

static void process(pgconn *c)
{
    if (c->processing)
        return;
    c->processing = true;
    while (c->state == PC_READY && c->head && c->sent) {
        if (c->in_copy) {
            if (c->paused)
                break;
            char *buf = NULL;
            int n = PQgetCopyData(c->conn, &buf, 1);
            if (n > 0) {
                int r = c->head->copy_cb ? c->head->copy_cb(c, c->head->ctx, buf, (size_t)n) : 0;
                PQfreemem(buf);
                if (r < 0) {
                    set_err(c, "aborted by the copy handler");
                    broken(c);
                    break;
                }
                if (r > 0)
                    pgconn_pause(c);
                continue;
            }
            if (n == 0)
                break; /* wait for more input */
            if (n == -2) {
                set_err(c, PQerrorMessage(c->conn));
                broken(c);
                break;
            }
            c->in_copy = false; /* -1: copy finished; results follow */
            continue;
        }
        if (PQisBusy(c->conn))
            break;
        PGresult *res = PQgetResult(c->conn);
        if (!res) {
            complete_head(c);
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(res);
            c->in_copy = true;
            continue;
        }
        if (st == PGRES_COPY_IN) {
            PQclear(res);
            set_err(c, "unexpected COPY FROM STDIN");
            broken(c);
            break;
        }
        if (c->last)
            PQclear(c->last);
        c->last = res;
    }
    c->processing = false;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    pgconn *c = w->data;
    if (c->state == PC_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->state != PC_READY)
        return;
    if (!PQconsumeInput(c->conn)) {
        set_err(c, PQerrorMessage(c->conn));
        broken(c);
        return;
    }
    if (ev_is_active(&c->wio) && flush_out(c) < 0) {
        broken(c);
        return;
    }
    process(c);
    if (c->state == PC_READY && !c->head) {
        /* Idle: a notice or an error (server shutting down) may be pending. */
        PGresult *res;
        while (!PQisBusy(c->conn) && (res = PQgetResult(c->conn)) != NULL) {
            set_err(c, PQresultErrorMessage(res));
            PQclear(res);
        }
        if (PQstatus(c->conn) == CONNECTION_BAD)
            broken(c);
    }
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    pgconn *c = w->data;
    if (c->state == PC_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->state != PC_READY)
        return;
    if (flush_out(c) < 0)
        broken(c);
}

int pgconn_copy_send(pgconn *c, const void *data, size_t len)
{
    if (c->state != PC_READY || !c->in_copy)
        return -1;
    if (PQputCopyData(c->conn, data, (int)len) != 1) {
        set_err(c, PQerrorMessage(c->conn));
        return -1;
    }
    return flush_out(c);
}

int pgconn_copy_end(pgconn *c)
{
    if (c->state != PC_READY || !c->in_copy)
        return -1;
    if (PQputCopyEnd(c->conn, NULL) != 1) {
        set_err(c, PQerrorMessage(c->conn));
        return -1;
    }
    return flush_out(c);
}

/*
 * Pausing also stops reading the socket, so the server (not our memory)
 * buffers what we do not take: that is the flow control.
 */
void pgconn_pause(pgconn *c)
{
    c->paused = true;
    ev_io_stop(c->loop, &c->rio);
}

void pgconn_resume(pgconn *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    if (c->state == PC_READY) {
        ev_io_start(c->loop, &c->rio);
        ev_feed_event(c->loop, &c->rio, EV_READ); /* rows may wait in libpq's buffer */
    }
}

bool pgconn_paused(const pgconn *c)
{
    return c->paused;
}

bool pgconn_broken(const pgconn *c)
{
    return c->state == PC_BROKEN;
}

bool pgconn_busy(const pgconn *c)
{
    return c->head != NULL;
}

PGconn *pgconn_raw(pgconn *c)
{
    return c->conn;
}

const char *pgconn_label(const pgconn *c)
{
    return c->label;
}

const char *pgconn_error(const pgconn *c)
{
    return c->err[0] ? c->err : "no error";
}

const char *pgconn_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

void pgconn_result_error(const PGresult *res, char *out, size_t cap)
{
    if (!res) {
        snprintf(out, cap, "connection lost");
        return;
    }
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!msg)
        msg = PQresStatus(PQresultStatus(res));
    snprintf(out, cap, "%s: %s", pgconn_sqlstate(res)[0] ? pgconn_sqlstate(res) : "-----", msg);
}

void pgconn_free(pgconn *c)
{
    if (!c)
        return;
    watchers_stop(c);
    while (c->head) {
        query *q = c->head;
        c->head = q->next;
        query_free(q);
    }
    if (c->last)
        PQclear(c->last);
    PQfinish(c->conn);
    free(c);
}
