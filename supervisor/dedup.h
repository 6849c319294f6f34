/*
 * dedup: suppresses repeats of a finding within a time window, keyed by
 * (database, schema, table, column, rule id, keyed value hash), bounded by a
 * maximum entry count with oldest-first eviction. Owns only its table; it
 * never sees a raw value and does not know about sinks or metrics.
 */
#ifndef PGSENSE_DEDUP_H_INCLUDED
#define PGSENSE_DEDUP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

typedef struct dedup dedup;

typedef enum {
    DEDUP_PASSED,     /* first sighting in the window: deliver */
    DEDUP_SUPPRESSED, /* seen within the window: do not deliver */
} dedup_outcome;

/* Called with the database of an entry evicted to make room (not for expiry). */
typedef void (*dedup_evict_cb)(void *ctx, const char *database);

typedef struct {
    const char *database; /* identity "host/dbname" */
    const char *schema;
    const char *table;
    const char *column;
    const char *rule_id;
    const uint8_t *value_hash; /* FRAME_HASH_SIZE bytes */
} dedup_key;

/*
 * window_ms 0 disables dedup (everything passes, nothing is kept);
 * max_entries 0 means no entry is kept either. NULL on ENOMEM.
 */
dedup *dedup_new(uint64_t window_ms, size_t max_entries, dedup_evict_cb evict, void *ctx);
void dedup_free(dedup *d);

/*
 * Reload: new window and bound; entries over the new bound are evicted
 * (oldest first, reported through the callback).
 */
void dedup_configure(dedup *d, uint64_t window_ms, size_t max_entries);

/*
 * Check a finding at now_ms (a monotonic clock). A passed key is recorded
 * for window_ms from now (a repeat does not extend it: at most one delivery
 * per key per window). O(1) amortised. Out of memory: DEDUP_PASSED and the
 * key is not recorded (a duplicate is better than a loss).
 */
dedup_outcome dedup_check(dedup *d, const dedup_key *k, uint64_t now_ms);

/* Drop entries older than the window (timers call it; dedup_check does it too). */
void dedup_expire(dedup *d, uint64_t now_ms);

size_t dedup_count(const dedup *d);
uint64_t dedup_evictions(const dedup *d);

#endif /* PGSENSE_DEDUP_H_INCLUDED */
