/*
 * scan: turns one row (streamed or snapshotted) into findings: column and
 * table filters of [scan], the type filter, the rules engine, primary keys,
 * the keyed value hash. Raw values go no further than this module: what it
 * emits carries only masked samples and hashes.
 */
#ifndef PGSENSE_SCAN_H_INCLUDED
#define PGSENSE_SCAN_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "frame.h"
#include "pgoutput.h"
#include "unit.h"

/* What the scanner needs to know of a table, prepared once per relation. */
typedef struct {
    char *schema;
    char *table;
    uint16_t ncols;
    char **colnames;
    bool *scanned; /* type and column filters passed */
    bool *is_key;  /* primary key column (else replica identity index) */
    bool excluded; /* the table is filtered out by [scan] */
    uint64_t skipped_type_cols;   /* columns left out for their type */
    uint64_t skipped_filter_cols; /* columns left out by exclude_columns */
} scan_table;

typedef struct {
    uint64_t events; /* rows seen (not excluded) */
    uint64_t findings;
    uint64_t skipped_filter; /* rows of excluded tables, values of excluded columns */
    uint64_t skipped_type;   /* values of columns whose type is not scanned */
    uint64_t skipped_scope;  /* (rule, value) pairs left out by a rule's scope */
} scan_counters;

typedef struct scanner scanner;

/* Settings from START (copied). */
scanner *scanner_new(const frame_start *st);
void scanner_free(scanner *s);

/* The engine to use from now on (owned by the caller; swapped at transaction boundaries). */
void scanner_set_engine(scanner *s, engine *e);

/* Whether a table is filtered out by include_schemas / exclude_tables. */
bool scanner_table_excluded(const scanner *s, const char *schema, const char *table);
/* Whether a column is filtered out by exclude_columns. */
bool scanner_column_excluded(const scanner *s, const char *column);
bool scanner_scan_numeric(const scanner *s);

typedef struct {
    uint64_t lsn;
    uint8_t source; /* frame_source */
    uint8_t op;     /* frame_op */
    int64_t commit_time;
} scan_origin;

/*
 * Scan one row. newvals has t->ncols values; oldvals (may be NULL) the old
 * row of an UPDATE: columns whose value did not change are skipped. Findings
 * go into u. Returns 0, or -1 when out of memory.
 */
__attribute__((warn_unused_result)) int scanner_row(scanner *s, const scan_table *t, const pgo_value *newvals,
                                                    const pgo_value *oldvals, const scan_origin *o, unit *u);

const scan_counters *scanner_counters(const scanner *s);

/* Build / free a scan_table from column names, type verdicts and key flags. */
scan_table *scan_table_new(const scanner *s, const char *schema, const char *table, uint16_t ncols,
                           const char *const *colnames, const bool *type_scanned, const bool *is_key);
void scan_table_free(scan_table *t);

#endif /* PGSENSE_SCAN_H_INCLUDED */
