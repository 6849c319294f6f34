/* pgtypes: the scanned-type filter (see header). */
#include "pgtypes.h"

#include <stdlib.h>

/* Built-in OIDs from PostgreSQL's pg_type.dat (stable across versions). */
static const struct {
    uint32_t oid;
    uint32_t array_oid;
    pgt_class cls;
} builtin_types[] = {
    {16, 1000, PGT_SKIP},           /* bool */
    {17, 1001, PGT_SKIP},           /* bytea */
    {20, 1016, PGT_SKIP_NUMERIC},   /* int8 */
    {21, 1005, PGT_SKIP_NUMERIC},   /* int2 */
    {23, 1007, PGT_SKIP_NUMERIC},   /* int4 */
    {26, 1028, PGT_SKIP_NUMERIC},   /* oid */
    {700, 1021, PGT_SKIP_NUMERIC},  /* float4 */
    {701, 1022, PGT_SKIP_NUMERIC},  /* float8 */
    {1700, 1231, PGT_SKIP_NUMERIC}, /* numeric */
    {2950, 2951, PGT_SKIP},         /* uuid */
    {1082, 1182, PGT_SKIP},         /* date */
    {1083, 1183, PGT_SKIP},         /* time */
    {1266, 1270, PGT_SKIP},         /* timetz */
    {1114, 1115, PGT_SKIP},         /* timestamp */
    {1184, 1185, PGT_SKIP},         /* timestamptz */
    {1186, 1187, PGT_SKIP},         /* interval */
};

#define FIRST_USER_OID 16384

pgt_class pgtypes_builtin(uint32_t oid)
{
    for (size_t i = 0; i < sizeof(builtin_types) / sizeof(builtin_types[0]); i++)
        if (builtin_types[i].oid == oid || builtin_types[i].array_oid == oid)
            return builtin_types[i].cls;
    /* Any other built-in (text, varchar, bpchar, json, jsonb, xml, name, ...) is text-like. */
    return oid < FIRST_USER_OID ? PGT_SCAN : PGT_UNKNOWN;
}

typedef struct {
    uint32_t oid;
    pgt_class cls; /* PGT_UNKNOWN: empty slot */
} cache_slot;

struct pgtypes_cache {
    cache_slot *slots;
    size_t n; /* power of two */
    size_t used;
};

pgtypes_cache *pgtypes_cache_new(void)
{
    pgtypes_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->n = 64;
    c->slots = calloc(c->n, sizeof(*c->slots));
    if (!c->slots) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < c->n; i++)
        c->slots[i].cls = PGT_UNKNOWN;
    return c;
}

void pgtypes_cache_free(pgtypes_cache *c)
{
    if (!c)
        return;
    free(c->slots);
    free(c);
}

void pgtypes_cache_reset(pgtypes_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        c->slots[i].cls = PGT_UNKNOWN;
    c->used = 0;
}

static cache_slot *lookup(pgtypes_cache *c, uint32_t oid)
{
    size_t mask = c->n - 1;
    size_t i = (oid * 2654435761u) & mask;
    while (c->slots[i].cls != PGT_UNKNOWN && c->slots[i].oid != oid)
        i = (i + 1) & mask;
    return &c->slots[i];
}

/* Remember an answer; a full cache is simply emptied (answers are cheap to redo). */
static void remember(pgtypes_cache *c, uint32_t oid, pgt_class cls)
{
    if ((c->used + 1) * 2 > c->n)
        pgtypes_cache_reset(c);
    cache_slot *s = lookup(c, oid);
    if (s->cls == PGT_UNKNOWN)
        c->used++;
    s->oid = oid;
    s->cls = cls;
}

static bool decide(pgt_class cls, bool scan_numeric)
{
    return cls == PGT_SCAN || (cls == PGT_SKIP_NUMERIC && scan_numeric);
}

bool pgtypes_scanned(pgtypes_cache *c, uint32_t oid, bool scan_numeric, pgtypes_resolver resolve, void *ctx)
{
    pgt_class cls = pgtypes_builtin(oid);
    if (cls != PGT_UNKNOWN)
        return decide(cls, scan_numeric);
    cache_slot *s = lookup(c, oid);
    if (s->cls != PGT_UNKNOWN)
        return decide(s->cls, scan_numeric);

    uint32_t cur = oid;
    cls = PGT_SCAN;
    for (int step = 0; step < 16; step++) {
        uint32_t next = 0;
        if (!resolve || resolve(ctx, cur, &next) < 0)
            return true; /* unknown: scanning too much beats missing a leak; not cached */
        if (next == 0)
            break; /* a user type that is neither domain nor array: text to us */
        cur = next;
        cls = pgtypes_builtin(cur);
        if (cls != PGT_UNKNOWN)
            break;
        cls = PGT_SCAN;
    }
    remember(c, oid, cls);
    return decide(cls, scan_numeric);
}
