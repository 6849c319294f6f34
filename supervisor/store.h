/*
 * store: the memory store (`[pipeline] store = memory`): per database identity,
 * the tables whose snapshot the supervisor acknowledged, handed back to a
 * restarted worker in START. Owns that table list only; no I/O, no frames sent.
 */
#ifndef PGSENSE_STORE_H_INCLUDED
#define PGSENSE_STORE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define STORE_MAX_TABLES 1000000u /* per identity; beyond it a table is re-snapshotted after a restart */

typedef struct store store;

store *store_new(void); /* NULL on ENOMEM */
void store_free(store *s);

/*
 * Record an acknowledged TABLE_DONE of the database with this identity as
 * FRAME_TABLE_READY. A table is the same when its relid or its schema.table
 * matches (a rename keeps the relid, a drop-and-create keeps the name).
 * 0, or -1 on ENOMEM / limit (the table is then simply snapshotted again).
 */
__attribute__((warn_unused_result)) int store_table_ready(store *s, const char *identity,
                                                          const frame_table_done *t);

/*
 * The tables kept for identity, as START wants them. The array and its
 * strings stay valid until the next store_table_ready/store_forget/store_free.
 */
const frame_table_state *store_tables(const store *s, const char *identity, uint32_t *n);

/* Drop everything kept for identity (its slot changed: a full snapshot follows). */
void store_forget(store *s, const char *identity);

/* Identities kept (tests, status). */
size_t store_identities(const store *s);

#endif /* PGSENSE_STORE_H_INCLUDED */
