/*
 * dedup: a chained hash table for lookups and a doubly linked list in
 * insertion order, so expiry and eviction take the oldest entry in O(1).
 * Keys are stored whole (length-prefixed strings + the value hash) and
 * compared byte for byte: a hash collision never suppresses a finding.
 */
#include "dedup.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct dedup_entry {
    struct dedup_entry *hnext;       /* bucket chain */
    struct dedup_entry *prev, *next; /* age list, oldest at head */
    uint64_t hash;
    uint64_t seen_ms; /* first sighting; expires at seen_ms + the current window */
    size_t key_len;
    unsigned char key[]; /* database first (NUL-terminated), then the rest */
} dedup_entry;

struct dedup {
    uint64_t window_ms;
    size_t max_entries;
    dedup_entry **buckets;
    size_t n_buckets; /* power of two */
    size_t count;
    dedup_entry *head, *tail;
    uint64_t evictions;
    uint64_t seed;
    dedup_evict_cb evict;
    void *ctx;
};

#define DEDUP_MIN_BUCKETS 64u
#define DEDUP_MAX_KEY     (16u * 1024u) /* texts are identifiers: longer keys are cut by hashing all */

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Mix the final hash so the low bits (bucket index) depend on every byte. */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

dedup *dedup_new(uint64_t window_ms, size_t max_entries, dedup_evict_cb evict, void *ctx)
{
    dedup *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->n_buckets = DEDUP_MIN_BUCKETS;
    d->buckets = calloc(d->n_buckets, sizeof(*d->buckets));
    if (!d->buckets) {
        free(d);
        return NULL;
    }
    d->window_ms = window_ms;
    d->max_entries = max_entries;
    d->evict = evict;
    d->ctx = ctx;
    d->seed = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)d;
    return d;
}

static void unlink_entry(dedup *d, dedup_entry *e)
{
    dedup_entry **pp = &d->buckets[e->hash & (d->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        d->tail = e->prev;
    d->count--;
}

static void drop_oldest(dedup *d, bool evicted)
{
    dedup_entry *e = d->head;
    unlink_entry(d, e);
    if (evicted) {
        d->evictions++;
        if (d->evict)
            d->evict(d->ctx, (const char *)e->key);
    }
    free(e);
}

void dedup_free(dedup *d)
{
    if (!d)
        return;
    while (d->head)
        drop_oldest(d, false);
    free(d->buckets);
    free(d);
}

void dedup_expire(dedup *d, uint64_t now_ms)
{
    while (d->head && d->head->seen_ms + d->window_ms <= now_ms)
        drop_oldest(d, false);
}

void dedup_configure(dedup *d, uint64_t window_ms, size_t max_entries)
{
    d->window_ms = window_ms;
    d->max_entries = max_entries;
    if (window_ms == 0) {
        while (d->head)
            drop_oldest(d, false);
        return;
    }
    while (d->count > max_entries)
        drop_oldest(d, true);
}

/* Double the bucket array when the load passes 1; a failed grow only costs speed. */
static void maybe_grow(dedup *d)
{
    if (d->count < d->n_buckets || d->n_buckets > SIZE_MAX / 4 / sizeof(*d->buckets))
        return;
    size_t n = d->n_buckets * 2;
    dedup_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < d->n_buckets; i++) {
        dedup_entry *e = d->buckets[i];
        while (e) {
            dedup_entry *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->n_buckets = n;
}

/* Serialise k into buf (each text NUL-terminated, then the hash); its length, 0 if too long. */
static size_t build_key(const dedup_key *k, unsigned char *buf, size_t cap)
{
    const char *parts[] = {k->database, k->schema, k->table, k->column, k->rule_id};
    size_t pos = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        const char *s = parts[i] ? parts[i] : "";
        size_t n = strlen(s) + 1;
        if (n > cap - pos)
            return 0;
        memcpy(buf + pos, s, n);
        pos += n;
    }
    if (cap - pos < FRAME_HASH_SIZE)
        return 0;
    memcpy(buf + pos, k->value_hash, FRAME_HASH_SIZE);
    return pos + FRAME_HASH_SIZE;
}

dedup_outcome dedup_check(dedup *d, const dedup_key *k, uint64_t now_ms)
{
    unsigned char buf[DEDUP_MAX_KEY];
    if (d->window_ms == 0 || d->max_entries == 0)
        return DEDUP_PASSED;
    dedup_expire(d, now_ms);

    size_t len = build_key(k, buf, sizeof(buf));
    if (len == 0)
        return DEDUP_PASSED; /* absurdly long names: never suppressed */
    uint64_t h = mix(fnv1a(d->seed, buf, len));
    for (dedup_entry *e = d->buckets[h & (d->n_buckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->key_len == len && memcmp(e->key, buf, len) == 0)
            return DEDUP_SUPPRESSED;

    dedup_entry *e = malloc(sizeof(*e) + len);
    if (!e)
        return DEDUP_PASSED;
    while (d->count >= d->max_entries)
        drop_oldest(d, true);
    e->hash = h;
    e->key_len = len;
    memcpy(e->key, buf, len);
    e->seen_ms = now_ms;
    e->prev = d->tail;
    e->next = NULL;
    if (d->tail)
        d->tail->next = e;
    else
        d->head = e;
    d->tail = e;
    e->hnext = d->buckets[h & (d->n_buckets - 1)];
    d->buckets[h & (d->n_buckets - 1)] = e;
    d->count++;
    maybe_grow(d);
    return DEDUP_PASSED;
}

size_t dedup_count(const dedup *d)
{
    return d->count;
}

uint64_t dedup_evictions(const dedup *d)
{
    return d->evictions;
}
