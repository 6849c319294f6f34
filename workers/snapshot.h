/*
 * snapshot: the initial copy of published tables (SPEC section 6): up to
 * snapshot_connections connections, each importing one snapshot (exported
 * by the slot's creation or by pg_export_snapshot()), COPY of text-like and
 * key columns honouring column lists and row filters, with row_security
 * off; findings per table closed by TABLE_DONE. Owns its connections.
 */
#ifndef PGSENSE_SNAPSHOT_H_INCLUDED
#define PGSENSE_SNAPSHOT_H_INCLUDED

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "chan.h"
#include "scan.h"
#include "unit.h"

typedef struct snapshot snapshot;

typedef struct {
    struct ev_loop *loop;
    const char *const *conn_keys; /* libpq keywords of a normal (non-replication) connection */
    const char *const *conn_values;
    int connections; /* snapshot_connections */
    scanner *scan;
    chan *ch;
    unit_seq *seq;
    /* Every connection has imported the snapshot: the replication connection may go on. */
    void (*imported)(void *ctx, bool ok, const char *err);
    /* A table's TABLE_DONE was sent with seq. */
    void (*table_sent)(void *ctx, const catalog_table *t, uint64_t seq);
    /* A table could not be read: reason is "SQLSTATE: message". */
    void (*table_error)(void *ctx, const catalog_table *t, const char *reason);
    /* Every table of this run is finished (sent or failed). */
    void (*finished)(void *ctx);
    void *ctx;
} snapshot_opts;

/*
 * Start a run over tables (copied). snapshot_name: the slot's exported
 * snapshot, or NULL to export a fresh one; lsn: its consistent point (for
 * a fresh one, taken from pg_current_wal_lsn()).
 */
snapshot *snapshot_start(const snapshot_opts *o, const catalog_table *tables, size_t n, const char *snapshot_name,
                         uint64_t lsn);
void snapshot_free(snapshot *s);

/* Flow control: stop / go on reading COPY data. */
void snapshot_pause(snapshot *s);
void snapshot_resume(snapshot *s);

/* Tables of this run still to finish. */
size_t snapshot_remaining(const snapshot *s);
uint64_t snapshot_lsn(const snapshot *s);

/* Decode one COPY text-format row in place: fields split on tabs, \N is NULL, escapes undone. */
int snapshot_parse_copy_row(char *line, size_t len, pgo_value *vals, uint16_t nvals);

#endif /* PGSENSE_SNAPSHOT_H_INCLUDED */
