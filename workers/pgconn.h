/*
 * pgconn: one libpq connection driven by libev without ever blocking:
 * asynchronous connect, a queue of queries answered by callbacks, COPY OUT
 * rows and COPY BOTH messages handed to a handler. Owns the PGconn and its
 * watchers; knows nothing of replication or rules.
 */
#ifndef PGSENSE_PGCONN_H_INCLUDED
#define PGSENSE_PGCONN_H_INCLUDED

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct pgconn pgconn;

/* Connection outcome: ok, or err holds libpq's message (first line only). */
typedef void (*pgconn_connected_cb)(pgconn *c, void *ctx, bool ok, const char *err);

/*
 * A query's answer: res is its last result (PGRES_COMMAND_OK, TUPLES_OK, or
 * an error status); NULL when the connection broke (see pgconn_error). The
 * result is cleared after the callback returns.
 */
typedef void (*pgconn_result_cb)(pgconn *c, void *ctx, const PGresult *res);

/*
 * COPY data: one row (COPY OUT) or one CopyData message (COPY BOTH), valid
 * during the call. Return 0 to go on, 1 to pause reading (resume with
 * pgconn_resume), -1 to abort (the connection is closed).
 */
typedef int (*pgconn_copy_cb)(pgconn *c, void *ctx, const char *data, size_t len);

/* keys/values: NULL-terminated libpq connection keywords (PQconnectStartParams). */
pgconn *pgconn_new(struct ev_loop *loop, const char *const *keys, const char *const *values, const char *label);
void pgconn_free(pgconn *c);

/* Start connecting; cb is called once. Returns -1 when libpq cannot even start. */
__attribute__((warn_unused_result)) int pgconn_connect(pgconn *c, pgconn_connected_cb cb, void *ctx);

/*
 * Queue a simple-protocol query. For a COPY OUT / COPY BOTH query, copy_cb
 * gets the data; result_cb then gets the final result of the command.
 */
__attribute__((warn_unused_result)) int pgconn_query(pgconn *c, const char *sql, pgconn_result_cb result_cb,
                                                     pgconn_copy_cb copy_cb, void *ctx);

/* COPY BOTH: send one CopyData message now (queued in libpq if the socket is full). */
__attribute__((warn_unused_result)) int pgconn_copy_send(pgconn *c, const void *data, size_t len);
/* COPY BOTH: end our side (CopyDone); the server answers and the query completes. */
__attribute__((warn_unused_result)) int pgconn_copy_end(pgconn *c);

/* Stop / restart handing out copy data (flow control); the socket stays watched for writes. */
void pgconn_pause(pgconn *c);
void pgconn_resume(pgconn *c);
bool pgconn_paused(const pgconn *c);

bool pgconn_busy(const pgconn *c); /* a query is running or queued */
bool pgconn_broken(const pgconn *c); /* the connection failed or was closed by the server */
PGconn *pgconn_raw(pgconn *c);     /* for PQserverVersion, PQescapeLiteral, ... */
const char *pgconn_label(const pgconn *c);
/* The last error, reduced to one line (no DETAIL/CONTEXT: they may quote row data). */
const char *pgconn_error(const pgconn *c);
/* SQLSTATE of a result, "" when none. */
const char *pgconn_sqlstate(const PGresult *res);
/* A result's error reduced to "SQLSTATE: primary message". */
void pgconn_result_error(const PGresult *res, char *out, size_t cap);

#endif /* PGSENSE_PGCONN_H_INCLUDED */
