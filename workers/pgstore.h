/*
 * pgstore: `store = postgres` in the worker. Applies pgsense's migrations
 * (src/migrations.h) on the source database through the side connection,
 * loads and saves per-table snapshot state and the confirmed position in
 * etl.replication_state, and keeps schema-change messages as history.
 * Every query is asynchronous on the caller's pgconn.
 */
#ifndef PGSENSE_PGSTORE_H_INCLUDED
#define PGSENSE_PGSTORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgconn.h"

typedef struct pgstore pgstore;

/* A table state read back: ready = snapshotted and acknowledged before. */
typedef void (*pgstore_table_cb)(void *ctx, uint32_t relid, const char *schema, const char *table, bool ready);
/* Start-up finished: ok, or a message and the exit code (3 for a checksum mismatch). */
typedef void (*pgstore_ready_cb)(void *ctx, bool ok, int exit_code, const char *err);

pgstore *pgstore_new(pgconn *side, const char *slot);
void pgstore_free(pgstore *s);

/* Migrations, then the table states; ready_cb is called once. */
__attribute__((warn_unused_result)) int pgstore_start(pgstore *s, pgstore_table_cb table_cb,
                                                      pgstore_ready_cb ready_cb, void *ctx);

/* Whether the schema-change trigger is installed (read messages, keep history). */
bool pgstore_schema_history(const pgstore *s);

/* A new slot: what was stored for an older one no longer holds. */
void pgstore_slot_created(pgstore *s);
/* A table's snapshot is acknowledged. */
void pgstore_table_ready(pgstore *s, uint32_t relid, const char *schema, const char *table, uint64_t snapshot_lsn);
/* The confirmed position (saved when it changed, at most every few seconds by the caller). */
void pgstore_confirmed(pgstore *s, uint64_t lsn);
/* A supabase_etl_ddl logical message: its JSON becomes a schema-history row. */
void pgstore_schema_message(pgstore *s, uint64_t lsn, const char *json, size_t len);

#define PGSTORE_MESSAGE_PREFIX "supabase_etl_ddl"

#endif /* PGSENSE_PGSTORE_H_INCLUDED */
