/*
 * engine: a rules_set compiled for scanning (one Hyperscan database for the
 * regex rules, PCRE2 spans, builtins, Lua scripts), and the scan itself:
 * ordered, masked findings per value. Single-threaded; never logs row data.
 */
#ifndef PGSENSE_ENGINE_H_INCLUDED
#define PGSENSE_ENGINE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

typedef struct engine engine;

/* Where a value comes from; any field may be NULL (that part is not filtered). */
typedef struct {
    const char *schema;
    const char *table;
    const char *column;
} engine_scope;

typedef struct {
    size_t rule;        /* index into the rules_set */
    size_t start;       /* byte offset into the value */
    size_t end;         /* exclusive */
    const char *masked; /* NUL-terminated masked sample, owned by the engine_findings */
} engine_finding;

/*
 * Reused across scans: engine_scan() resets and refills it, growing its
 * buffers only when a value needs more than any before.
 */
typedef struct {
    engine_finding *items; /* ordered by start, end, then rule order */
    size_t count;
    size_t scope_skipped; /* rules not applied to this value because of their scope */
    /* private */
    size_t cap;
    char *text;
    size_t text_cap;
} engine_findings;

void engine_findings_init(engine_findings *f);
void engine_findings_free(engine_findings *f);

/*
 * Compile rs; rs must outlive the engine. Returns NULL with err filled
 * (out of memory, a script that no longer loads, ...).
 */
engine *engine_new(const rules_set *rs, char *err, size_t errlen);
void engine_free(engine *e);
const rules_set *engine_rules(const engine *e);

/*
 * Scan value[0..len) (not NUL-terminated, any bytes). where may be NULL: no
 * scope filtering. Returns 0, or -1 when out of memory (out is then empty).
 */
__attribute__((warn_unused_result)) int engine_scan(engine *e, const engine_scope *where, const char *value,
                                                    size_t len, engine_findings *out);

/*
 * Primary key check (SPEC section 3): whether any rule matches value,
 * scope and allowlists ignored (validators still apply).
 */
bool engine_matches_any_rule(engine *e, const char *value, size_t len);

/* Counters since engine_new. */
typedef struct {
    uint64_t values;            /* engine_scan calls */
    uint64_t values_scoped_out; /* values no rule applied to, by scope */
    uint64_t rule_scope_skips;  /* (rule, value) pairs skipped by scope */
    uint64_t script_errors;     /* all script rules together */
    uint64_t regex_errors;      /* PCRE2 match errors (limits), treated as no match */
    size_t hs_patterns;         /* regex rules prefiltered by Hyperscan */
} engine_stats;

void engine_get_stats(const engine *e, engine_stats *out);
/* Script errors of rule i (pgsense_script_errors_total{rule_id}); 0 for other types. */
uint64_t engine_script_errors(const engine *e, size_t rule);
/* Whether regex rule i goes through the Hyperscan prefilter. */
bool engine_rule_uses_hyperscan(const engine *e, size_t rule);

/*
 * Profiling for `rules bench`: when on, every scan records the nanoseconds
 * spent in each rule (and in the shared Hyperscan pass), read back with
 * engine_profile_ns() after the scan.
 */
void engine_set_profiling(engine *e, bool on);
uint64_t engine_profile_ns(const engine *e, size_t rule);
uint64_t engine_profile_prefilter_ns(const engine *e);

#endif /* PGSENSE_ENGINE_H_INCLUDED */
