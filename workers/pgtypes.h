/*
 * pgtypes: which column types the worker scans (SPEC section 3). Built-in
 * type OIDs are judged here; arrays and domains are resolved to their
 * element or base type through a resolver the caller supplies (a catalog
 * query), with the answers cached per OID.
 */
#ifndef PGSENSE_PGTYPES_H_INCLUDED
#define PGSENSE_PGTYPES_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    PGT_SCAN,         /* text-like: scanned */
    PGT_SKIP,         /* never scanned */
    PGT_SKIP_NUMERIC, /* int/float/numeric/oid: scanned only with scan_numeric */
    PGT_UNKNOWN,      /* not a built-in: ask the catalog */
} pgt_class;

/* Classify a built-in type OID (arrays of built-ins included). */
pgt_class pgtypes_builtin(uint32_t oid);

/*
 * For a user type: its base type (domain) or element type (array), or 0
 * when it is neither. Returns -1 when the catalog could not be asked.
 */
typedef int (*pgtypes_resolver)(void *ctx, uint32_t oid, uint32_t *underlying);

typedef struct pgtypes_cache pgtypes_cache;

pgtypes_cache *pgtypes_cache_new(void);
void pgtypes_cache_free(pgtypes_cache *c);
/* Forget cached user-type answers (after a 'Y' message or a reconnect). */
void pgtypes_cache_reset(pgtypes_cache *c);

/*
 * Whether a column of type oid is scanned, following domains and arrays down
 * to a built-in (at most 16 steps); a type the resolver cannot place is
 * scanned (enums, composites and other user types are text to us).
 */
bool pgtypes_scanned(pgtypes_cache *c, uint32_t oid, bool scan_numeric, pgtypes_resolver resolve, void *ctx);

#endif /* PGSENSE_PGTYPES_H_INCLUDED */
