/*
 * unit: the findings of one unit of work (a streamed transaction, or a chunk
 * or the end of a snapshotted table) on their way to the supervisor: owns
 * copies of the findings, splits them into FINDINGS frames, gives the unit
 * its seq and closes it with TXN_END or TABLE_DONE (docs/protocol.md).
 */
#ifndef PGSENSE_UNIT_H_INCLUDED
#define PGSENSE_UNIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "frame.h"

typedef struct unit unit;

/* Seqs are per worker process; one counter shared by every unit. */
typedef struct {
    uint64_t next; /* the next seq to hand out, starts at 1 */
} unit_seq;

unit *unit_new(void);
void unit_free(unit *u);

/* Copy fi into the unit (strings included). -1 on ENOMEM. */
__attribute__((warn_unused_result)) int unit_add(unit *u, const frame_finding *fi);

size_t unit_count(const unit *u);    /* findings buffered, not yet sent */
uint32_t unit_total(const unit *u);  /* findings of this unit so far, sent or not */
size_t unit_bytes(const unit *u);    /* encoded size of what is buffered */
bool unit_has_seq(const unit *u);
uint64_t unit_seq_of(const unit *u); /* 0 before the unit got one */

/* Send what is buffered as FINDINGS frames (the unit gets its seq now if it had none). */
__attribute__((warn_unused_result)) int unit_flush(unit *u, chan *c, unit_seq *seq);

/* Flush, send TXN_END, and reset the unit; *seq_out gets the unit's seq. */
__attribute__((warn_unused_result)) int unit_end_txn(unit *u, chan *c, unit_seq *seq, uint64_t commit_lsn,
                                                     uint64_t end_lsn, int64_t commit_time, uint64_t *seq_out);

/* Flush, send TABLE_DONE, and reset the unit; *seq_out gets the unit's seq. */
__attribute__((warn_unused_result)) int unit_end_table(unit *u, chan *c, unit_seq *seq, uint32_t relid,
                                                       const char *schema, const char *table,
                                                       uint64_t snapshot_lsn, uint64_t *seq_out);

/* Drop the buffered findings, keeping the unit's seq and total (they are counted elsewhere). */
void unit_drop_pending(unit *u);

/* Drop everything buffered and forget the seq (a transaction abandoned on reconnect). */
void unit_reset(unit *u);

#endif /* PGSENSE_UNIT_H_INCLUDED */
