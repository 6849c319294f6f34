/*
 * pgoutput: decoder for pgoutput protocol version 1 messages. Every read is
 * bounds-checked against the message; a short or inconsistent message is an
 * error, never a crash. The relation cache is an open-addressing table keyed
 * by relid, replaced entry by entry on every 'R' message.
 */
#include "pgoutput.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PGO_MAX_COLS 1664 /* PostgreSQL's MaxTupleAttributeNumber */

typedef struct {
    uint32_t relid;
    pgo_relation *rel; /* NULL: empty slot */
} rel_slot;

struct pgo_decoder {
    rel_slot *slots;
    size_t nslots; /* power of two */
    size_t nrels;
    pgo_value *vals; /* two tuples' worth: old and new */
    size_t vals_cap;
};

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    char *err;
    size_t errlen;
    int failed;
} reader;

static void fail(reader *r, const char *what)
{
    if (!r->failed)
        snprintf(r->err, r->errlen, "malformed pgoutput message: %s", what);
    r->failed = 1;
}

static int need(reader *r, size_t n, const char *what)
{
    if (r->failed)
        return 0;
    if ((size_t)(r->end - r->p) < n) {
        fail(r, what);
        return 0;
    }
    return 1;
}

static uint8_t get_u8(reader *r, const char *what)
{
    if (!need(r, 1, what))
        return 0;
    return *r->p++;
}

static uint16_t get_u16(reader *r, const char *what)
{
    if (!need(r, 2, what))
        return 0;
    uint16_t v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return v;
}

static uint32_t get_u32(reader *r, const char *what)
{
    if (!need(r, 4, what))
        return 0;
    uint32_t v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return v;
}

static uint64_t get_u64(reader *r, const char *what)
{
    uint64_t hi = get_u32(r, what);
    uint64_t lo = get_u32(r, what);
    return (hi << 32) | lo;
}

/* A NUL-terminated string inside the message. */
static const char *get_str(reader *r, const char *what)
{
    if (r->failed)
        return "";
    const uint8_t *nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
    if (!nul) {
        fail(r, what);
        return "";
    }
    const char *s = (const char *)r->p;
    r->p = nul + 1;
    return s;
}

pgo_decoder *pgo_decoder_new(void)
{
    pgo_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->nslots = 64;
    d->slots = calloc(d->nslots, sizeof(*d->slots));
    if (!d->slots) {
        free(d);
        return NULL;
    }
    return d;
}

static void relation_free(pgo_relation *rel)
{
    if (!rel)
        return;
    for (uint16_t i = 0; i < rel->ncols; i++)
        free(rel->cols[i].name);
    free(rel->cols);
    free(rel->nspname);
    free(rel->relname);
    free(rel);
}

void pgo_decoder_reset(pgo_decoder *d)
{
    for (size_t i = 0; i < d->nslots; i++) {
        relation_free(d->slots[i].rel);
        d->slots[i].rel = NULL;
    }
    d->nrels = 0;
}

void pgo_decoder_free(pgo_decoder *d)
{
    if (!d)
        return;
    pgo_decoder_reset(d);
    free(d->slots);
    free(d->vals);
    free(d);
}

static size_t slot_index(const pgo_decoder *d, uint32_t relid)
{
    size_t mask = d->nslots - 1;
    size_t i = (size_t)(relid * 2654435761u) & mask;
    while (d->slots[i].rel && d->slots[i].relid != relid)
        i = (i + 1) & mask;
    return i;
}

const pgo_relation *pgo_relation_get(const pgo_decoder *d, uint32_t relid)
{
    return d->slots[slot_index(d, relid)].rel;
}

static int grow_slots(pgo_decoder *d)
{
    size_t n = d->nslots * 2;
    rel_slot *old = d->slots;
    size_t oldn = d->nslots;
    d->slots = calloc(n, sizeof(*d->slots));
    if (!d->slots) {
        d->slots = old;
        return -1;
    }
    d->nslots = n;
    for (size_t i = 0; i < oldn; i++)
        if (old[i].rel)
            d->slots[slot_index(d, old[i].relid)] = old[i];
    free(old);
    return 0;
}

/* Insert or replace; takes ownership of rel. */
static int relation_put(pgo_decoder *d, pgo_relation *rel)
{
    if ((d->nrels + 1) * 2 > d->nslots && grow_slots(d) < 0)
        return -1;
    size_t i = slot_index(d, rel->relid);
    if (d->slots[i].rel) {
        relation_free(d->slots[i].rel);
    } else {
        d->nrels++;
    }
    d->slots[i].relid = rel->relid;
    d->slots[i].rel = rel;
    return 0;
}

static int decode_relation(pgo_decoder *d, reader *r, pgo_msg *out)
{
    uint32_t relid = get_u32(r, "relation id");
    const char *nsp = get_str(r, "relation namespace");
    const char *name = get_str(r, "relation name");
    uint8_t replident = get_u8(r, "replica identity");
    uint16_t ncols = get_u16(r, "column count");
    if (r->failed)
        return -1;
    if (ncols > PGO_MAX_COLS) {
        fail(r, "too many columns");
        return -1;
    }
    pgo_relation *rel = calloc(1, sizeof(*rel));
    if (!rel)
        goto nomem;
    rel->relid = relid;
    rel->replident = (char)replident;
    rel->nspname = strdup(nsp[0] ? nsp : "pg_catalog");
    rel->relname = strdup(name);
    rel->cols = calloc(ncols ? ncols : 1, sizeof(*rel->cols));
    if (!rel->nspname || !rel->relname || !rel->cols)
        goto nomem;
    for (uint16_t i = 0; i < ncols; i++) {
        uint8_t flags = get_u8(r, "column flags");
        const char *cname = get_str(r, "column name");
        uint32_t type = get_u32(r, "column type");
        uint32_t typmod = get_u32(r, "column typmod");
        if (r->failed) {
            relation_free(rel);
            return -1;
        }
        rel->cols[i].name = strdup(cname);
        if (!rel->cols[i].name)
            goto nomem;
        rel->ncols = (uint16_t)(i + 1);
        rel->cols[i].key = (flags & 1) != 0;
        rel->cols[i].type_oid = type;
        rel->cols[i].typmod = (int32_t)typmod;
    }
    if (relation_put(d, rel) < 0)
        goto nomem;
    out->u.relation = rel;
    return 0;

nomem:
    relation_free(rel);
    snprintf(r->err, r->errlen, "out of memory decoding a relation message");
    r->failed = 1;
    return -1;
}

/* Reserve room for n values starting at offset base of d->vals. */
static pgo_value *vals_reserve(pgo_decoder *d, size_t base, size_t n)
{
    if (!d->vals || base + n > d->vals_cap) {
        size_t cap = d->vals_cap ? d->vals_cap : 64;
        while (cap < base + n)
            cap *= 2;
        pgo_value *v = realloc(d->vals, cap * sizeof(*v));
        if (!v)
            return NULL;
        d->vals = v;
        d->vals_cap = cap;
    }
    return d->vals + base;
}

/*
 * A TupleData at r; stores its values at d->vals[base...]. The caller fixes
 * up tup->cols afterwards (a later reserve may move the array).
 */
static int decode_tuple(pgo_decoder *d, reader *r, size_t base, pgo_tuple *tup)
{
    uint16_t n = get_u16(r, "tuple column count");
    if (r->failed)
        return -1;
    if (n > PGO_MAX_COLS) {
        fail(r, "too many tuple columns");
        return -1;
    }
    pgo_value *vals = vals_reserve(d, base, n);
    if (!vals) {
        snprintf(r->err, r->errlen, "out of memory decoding a tuple");
        r->failed = 1;
        return -1;
    }
    for (uint16_t i = 0; i < n; i++) {
        uint8_t kind = get_u8(r, "tuple value kind");
        vals[i].data = NULL;
        vals[i].len = 0;
        switch (kind) {
        case 'n':
        case 'u':
            vals[i].kind = (pgo_val_kind)kind;
            break;
        case 't':
        case 'b': {
            uint32_t len = get_u32(r, "tuple value length");
            if (!need(r, len, "tuple value"))
                return -1;
            vals[i].kind = (pgo_val_kind)kind;
            vals[i].data = (const char *)r->p;
            vals[i].len = len;
            r->p += len;
            break;
        }
        default:
            fail(r, "unknown tuple value kind");
            return -1;
        }
        if (r->failed)
            return -1;
    }
    tup->ncols = n;
    tup->cols = NULL;
    return 0;
}

static const pgo_relation *known_relation(pgo_decoder *d, reader *r, uint32_t relid)
{
    const pgo_relation *rel = pgo_relation_get(d, relid);
    if (!rel && !r->failed) {
        snprintf(r->err, r->errlen, "change for relation %u before its relation message", relid);
        r->failed = 1;
    }
    return rel;
}

/* A tuple's column count must match its relation's, or values would be mislabelled. */
static int check_width(reader *r, const pgo_relation *rel, const pgo_tuple *t)
{
    if (t->ncols != rel->ncols) {
        snprintf(r->err, r->errlen, "tuple of %u columns for relation %u (%s.%s) of %u columns", t->ncols,
                 rel->relid, rel->nspname, rel->relname, rel->ncols);
        r->failed = 1;
        return -1;
    }
    return 0;
}

int pgo_decode(pgo_decoder *d, const uint8_t *buf, size_t len, pgo_msg *out, char *err, size_t errlen)
{
    reader r = {.p = buf, .end = buf + len, .err = err, .errlen = errlen, .failed = 0};
    memset(out, 0, sizeof(*out));
    uint8_t tag = get_u8(&r, "empty message");
    if (r.failed)
        return -1;
    switch (tag) {
    case 'B':
        out->kind = PGO_BEGIN;
        out->u.begin.final_lsn = get_u64(&r, "begin lsn");
        out->u.begin.commit_time = (int64_t)get_u64(&r, "begin commit time");
        out->u.begin.xid = get_u32(&r, "begin xid");
        break;
    case 'C':
        out->kind = PGO_COMMIT;
        out->u.commit.flags = get_u8(&r, "commit flags");
        out->u.commit.commit_lsn = get_u64(&r, "commit lsn");
        out->u.commit.end_lsn = get_u64(&r, "commit end lsn");
        out->u.commit.commit_time = (int64_t)get_u64(&r, "commit time");
        break;
    case 'R':
        out->kind = PGO_RELATION;
        if (decode_relation(d, &r, out) < 0)
            return -1;
        break;
    case 'Y':
        out->kind = PGO_TYPE;
        out->u.type.oid = get_u32(&r, "type oid");
        out->u.type.nspname = get_str(&r, "type namespace");
        out->u.type.name = get_str(&r, "type name");
        break;
    case 'O':
        out->kind = PGO_ORIGIN;
        out->u.origin.lsn = get_u64(&r, "origin lsn");
        out->u.origin.name = get_str(&r, "origin name");
        break;
    case 'M':
        out->kind = PGO_MESSAGE;
        out->u.message.flags = get_u8(&r, "message flags");
        out->u.message.lsn = get_u64(&r, "message lsn");
        out->u.message.prefix = get_str(&r, "message prefix");
        out->u.message.len = get_u32(&r, "message length");
        if (need(&r, out->u.message.len, "message content")) {
            out->u.message.content = (const char *)r.p;
            r.p += out->u.message.len;
        }
        break;
    case 'T':
        out->kind = PGO_TRUNCATE;
        out->u.truncate.nrelids = get_u32(&r, "truncate relation count");
        out->u.truncate.flags = get_u8(&r, "truncate flags");
        if (!r.failed && out->u.truncate.nrelids > (size_t)(r.end - r.p) / 4)
            fail(&r, "truncate relation count");
        else
            r.p += (size_t)out->u.truncate.nrelids * 4;
        break;
    case 'I': {
        out->kind = PGO_INSERT;
        uint32_t relid = get_u32(&r, "insert relation id");
        if (get_u8(&r, "insert tuple tag") != 'N' && !r.failed)
            fail(&r, "insert without a new tuple");
        const pgo_relation *rel = known_relation(d, &r, relid);
        if (r.failed || decode_tuple(d, &r, 0, &out->u.insert.newtup) < 0)
            return -1;
        out->u.insert.rel = rel;
        out->u.insert.newtup.cols = d->vals;
        if (check_width(&r, rel, &out->u.insert.newtup) < 0)
            return -1;
        break;
    }
    case 'U': {
        out->kind = PGO_UPDATE;
        uint32_t relid = get_u32(&r, "update relation id");
        const pgo_relation *rel = known_relation(d, &r, relid);
        uint8_t t = get_u8(&r, "update tuple tag");
        if (r.failed)
            return -1;
        size_t oldn = 0;
        if (t == 'K' || t == 'O') {
            out->u.update.old_kind = (char)t;
            if (decode_tuple(d, &r, 0, &out->u.update.oldtup) < 0)
                return -1;
            oldn = out->u.update.oldtup.ncols;
            t = get_u8(&r, "update new tuple tag");
        }
        if (t != 'N' && !r.failed)
            fail(&r, "update without a new tuple");
        if (r.failed || decode_tuple(d, &r, oldn, &out->u.update.newtup) < 0)
            return -1;
        out->u.update.rel = rel;
        if (out->u.update.old_kind)
            out->u.update.oldtup.cols = d->vals;
        out->u.update.newtup.cols = d->vals + oldn;
        if (check_width(&r, rel, &out->u.update.newtup) < 0)
            return -1;
        if (out->u.update.old_kind && check_width(&r, rel, &out->u.update.oldtup) < 0)
            return -1;
        break;
    }
    case 'D': {
        out->kind = PGO_DELETE;
        uint32_t relid = get_u32(&r, "delete relation id");
        const pgo_relation *rel = known_relation(d, &r, relid);
        uint8_t t = get_u8(&r, "delete tuple tag");
        if (r.failed)
            return -1;
        if (t != 'K' && t != 'O') {
            fail(&r, "delete without an old tuple");
            return -1;
        }
        out->u.del.old_kind = (char)t;
        if (decode_tuple(d, &r, 0, &out->u.del.oldtup) < 0)
            return -1;
        out->u.del.rel = rel;
        out->u.del.oldtup.cols = d->vals;
        if (check_width(&r, rel, &out->u.del.oldtup) < 0)
            return -1;
        break;
    }
    default:
        snprintf(err, errlen, "unknown pgoutput message type 0x%02x", tag);
        return -1;
    }
    if (r.failed)
        return -1;
    if (r.p != r.end) {
        /* Messages of the kinds we decode have no trailing fields in version 1. */
        snprintf(err, errlen, "malformed pgoutput message: %zu trailing bytes after '%c'", (size_t)(r.end - r.p),
                 tag);
        return -1;
    }
    return 0;
}
