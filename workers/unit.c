/*
 * unit: findings buffered per unit of work. Strings live in an arena of
 * chunks released together when the unit is reset, so a finding costs no
 * malloc of its own.
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

struct unit {
    frame_finding *items;
    size_t n, cap;
    size_t bytes;
    uint32_t total;
    uint64_t seq;
    chunk *chunks;
};

unit *unit_new(void)
{
    return calloc(1, sizeof(unit));
}

static void arena_free(unit *u)
{
    chunk *c = u->chunks;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    u->chunks = NULL;
}

void unit_free(unit *u)
{
    if (!u)
        return;
    arena_free(u);
    free(u->items);
    free(u);
}

static void *arena_alloc(unit *u, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    chunk *c = u->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof(chunk) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = u->chunks;
        u->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static const char *arena_str(unit *u, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(u, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int unit_add(unit *u, const frame_finding *fi)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 64;
        frame_finding *items = realloc(u->items, cap * sizeof(*items));
        if (!items)
            return -1;
        u->items = items;
        u->cap = cap;
    }
    frame_finding *dst = &u->items[u->n];
    *dst = *fi;
    dst->rule_id = arena_str(u, fi->rule_id);
    dst->description = arena_str(u, fi->description);
    dst->category = arena_str(u, fi->category);
    dst->schema = arena_str(u, fi->schema);
    dst->table = arena_str(u, fi->table);
    dst->column = arena_str(u, fi->column);
    dst->masked_sample = arena_str(u, fi->masked_sample);
    if (!dst->rule_id || !dst->description || !dst->category || !dst->schema || !dst->table || !dst->column ||
        !dst->masked_sample)
        return -1;
    if (fi->n_primary_keys) {
        frame_pk *pks = arena_alloc(u, fi->n_primary_keys * sizeof(*pks));
        if (!pks)
            return -1;
        for (uint32_t i = 0; i < fi->n_primary_keys; i++) {
            pks[i].name = arena_str(u, fi->primary_keys[i].name);
            pks[i].value = arena_str(u, fi->primary_keys[i].value);
            if (!pks[i].name || !pks[i].value)
                return -1;
        }
        dst->primary_keys = pks;
    } else {
        dst->primary_keys = NULL;
    }
    u->bytes += frame_finding_size(dst);
    u->n++;
    u->total++;
    return 0;
}

size_t unit_count(const unit *u)
{
    return u->n;
}

uint32_t unit_total(const unit *u)
{
    return u->total;
}

size_t unit_bytes(const unit *u)
{
    return u->bytes;
}

bool unit_has_seq(const unit *u)
{
    return u->seq != 0;
}

uint64_t unit_seq_of(const unit *u)
{
    return u->seq;
}

static void take_seq(unit *u, unit_seq *seq)
{
    if (!u->seq)
        u->seq = seq->next++;
}

int unit_flush(unit *u, chan *c, unit_seq *seq)
{
    if (u->n == 0)
        return 0;
    take_seq(u, seq);
    size_t off = 0;
    while (off < u->n) {
        uint32_t fit = frame_findings_fit(u->items + off, (uint32_t)(u->n - off), FRAME_MAX);
        if (fit == 0)
            return -1; /* one finding over 1 MiB: texts are bounded upstream, so a bug */
        frame f = {.type = FRAME_FINDINGS};
        f.findings.seq = u->seq;
        f.findings.findings = u->items + off;
        f.findings.n_findings = fit;
        if (chan_send_findings(c, &f) < 0)
            return -1;
        off += fit;
    }
    u->n = 0;
    u->bytes = 0;
    arena_free(u);
    return 0;
}

static void clear(unit *u)
{
    u->n = 0;
    u->bytes = 0;
    u->total = 0;
    u->seq = 0;
    arena_free(u);
}

void unit_drop_pending(unit *u)
{
    u->n = 0;
    u->bytes = 0;
    arena_free(u);
}

void unit_reset(unit *u)
{
    clear(u);
}

int unit_end_txn(unit *u, chan *c, unit_seq *seq, uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_time,
                 uint64_t *seq_out)
{
    if (unit_flush(u, c, seq) < 0)
        return -1;
    take_seq(u, seq);
    frame f = {.type = FRAME_TXN_END};
    f.txn_end.seq = u->seq;
    f.txn_end.commit_lsn = commit_lsn;
    f.txn_end.end_lsn = end_lsn;
    f.txn_end.commit_time = commit_time;
    f.txn_end.n_findings = u->total;
    *seq_out = u->seq;
    clear(u);
    return chan_send(c, &f);
}

int unit_end_table(unit *u, chan *c, unit_seq *seq, uint32_t relid, const char *schema, const char *table,
                   uint64_t snapshot_lsn, uint64_t *seq_out)
{
    if (unit_flush(u, c, seq) < 0)
        return -1;
    take_seq(u, seq);
    frame f = {.type = FRAME_TABLE_DONE};
    f.table_done.seq = u->seq;
    f.table_done.relid = relid;
    f.table_done.schema = schema;
    f.table_done.table = table;
    f.table_done.snapshot_lsn = snapshot_lsn;
    *seq_out = u->seq;
    clear(u);
    return chan_send(c, &f);
}
