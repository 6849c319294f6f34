/*
 * status: renders the USR1 status dump: status.json (SPEC section 5), written
 * atomically, and the human-readable table in the supervisor log. Owns the
 * rendering only: the rows come from proc, the sinks from the pipeline.
 */
#ifndef PGSENSE_STATUS_H_INCLUDED
#define PGSENSE_STATUS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define STATUS_MAX_TABLE_ERRORS 32 /* per worker; more are counted in tables_errors_more */

typedef struct {
    char schema[64], table[64], reason[256];
} status_table_error;

/* One worker row, a plain copy of what proc keeps (no pointers into it). */
typedef struct {
    const char *name;
    const char *database; /* identity "host/dbname" */
    const char *slot;
    const char *log_file;
    int pid;           /* 0: not running (rendered null) */
    const char *state; /* starting, connecting, snapshot, streaming, backoff, failed, stopped */
    unsigned restarts;
    bool has_exit;      /* last_exit null when false */
    bool exit_signaled; /* {"signal":N} rather than {"code":N} */
    int exit_value;
    const char *exit_reason;
    uint64_t backoff_ms; /* time left before the next start, 0 when none is pending */
    uint64_t confirmed_lsn;
    bool has_stats;             /* confirmed_lsn, wal etc. known */
    int64_t retained_wal_bytes; /* -1 unknown */
    const char *wal_status;     /* "" unknown */
    uint64_t events, findings;
    uint64_t undelivered_findings; /* confirmed without acknowledgement (max_retained_wal) */
    uint32_t tables_done, tables_total;
    const status_table_error *table_errors;
    size_t n_table_errors;
} status_worker;

typedef struct {
    long pid;
    time_t started_at;
    time_t now;
    size_t rules_loaded;
    unsigned long reloads_ok, reloads_failed;
} status_supervisor;

/* Writes the "sinks" array (the pipeline's pipeline_status_json); 0 or -1. */
typedef int (*status_sinks_fn)(void *ctx, FILE *out);

/* The whole document, one line, newline-terminated. 0, or -1 on a write error. */
__attribute__((warn_unused_result)) int status_render(FILE *out, const status_supervisor *sup,
                                                      const status_worker *w, size_t n, status_sinks_fn sinks,
                                                      void *sinks_ctx);

/*
 * status_render into dir/status.json atomically: a temp file in dir,
 * fsync, rename, fsync of dir. 0, or -1 with err set (the old file stays).
 */
__attribute__((warn_unused_result)) int status_write_file(const char *dir, const status_supervisor *sup,
                                                          const status_worker *w, size_t n,
                                                          status_sinks_fn sinks, void *sinks_ctx, char *err,
                                                          size_t errlen);

/* The table in the supervisor log: a header line and one line per worker (log_info). */
void status_log_table(const status_supervisor *sup, const status_worker *w, size_t n);

#endif /* PGSENSE_STATUS_H_INCLUDED */
