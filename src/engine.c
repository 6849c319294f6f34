/*
 * engine: compiles a rules_set and scans values. Regex rules share one
 * Hyperscan database (single-match "does it hit" pass); PCRE2 gives exact
 * spans only for the rules that hit, then the validator, allowlist and mask.
 */
#include "engine.h"

#include <fnmatch.h>
#include <hs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"
#include "engine_lua.h"
#include "engine_regex.h"
#include "mask.h"

#define SCOPE_NAME_MAX 256 /* longer names are filtered without the cache */

struct erule {
    rules_type type;
    pcre2_code *re;
    int hs_id; /* -1: not in the Hyperscan database, always run PCRE2 */
    bool has_validator;
    detect_validator validator;
    detect_builtin builtin;
    engine_lua *lua;
    pcre2_code **allow_re;
    size_t n_allow_re;
    bool scoped;
    uint64_t script_errors;
    uint64_t prof_ns;
};

struct engine {
    const rules_set *rs;
    size_t n;
    struct erule *rules;
    bool any_scoped;

    hs_database_t *db;
    hs_scratch_t *scratch;
    size_t *hs_rule; /* Hyperscan id -> rule index */
    size_t n_hs;
    unsigned char *hit; /* per Hyperscan id, filled by the prefilter */

    pcre2_match_data *md;       /* rule spans */
    pcre2_match_data *md_allow; /* allowlist patterns, used inside a span loop */
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;

    /* scope results for the last (schema, table, column) seen */
    bool scope_cached;
    bool sc_null[3];
    char sc_name[3][SCOPE_NAME_MAX];
    unsigned char *in_scope;
    size_t in_scope_count;
    char qual[2 * SCOPE_NAME_MAX + 2];

    /* the value's digit runs, found once for the number detectors */
    detect_value dv;
    size_t *direct; /* rules run for every value: builtins, scripts, regex outside Hyperscan */
    size_t n_direct;

    engine_stats stats;
    bool profiling;
    uint64_t prof_prefilter;
};

typedef struct {
    engine *e;
    size_t rule;
    const char *value;
    engine_findings *out; /* NULL: "any" mode, stop at the first match */
    bool found;
    bool oom;
    bool dv_ready; /* e->dv holds this value's digit runs */
} scan_ctx;

void engine_findings_init(engine_findings *f)
{
    memset(f, 0, sizeof(*f));
}

void engine_findings_free(engine_findings *f)
{
    free(f->items);
    free(f->text);
    memset(f, 0, sizeof(*f));
}

const rules_set *engine_rules(const engine *e)
{
    return e->rs;
}

void engine_free(engine *e)
{
    if (e == NULL)
        return;
    detect_value_free(&e->dv);
    free(e->direct);
    for (size_t i = 0; e->rules != NULL && i < e->n; i++) {
        struct erule *r = &e->rules[i];
        pcre2_code_free(r->re);
        engine_lua_free(r->lua);
        for (size_t k = 0; k < r->n_allow_re; k++)
            pcre2_code_free(r->allow_re[k]);
        free(r->allow_re);
    }
    free(e->rules);
    if (e->scratch != NULL)
        (void)hs_free_scratch(e->scratch);
    if (e->db != NULL)
        (void)hs_free_database(e->db);
    free(e->hs_rule);
    free(e->hit);
    pcre2_match_data_free(e->md);
    pcre2_match_data_free(e->md_allow);
    pcre2_match_context_free(e->mctx);
    pcre2_jit_stack_free(e->jit);
    free(e->in_scope);
    free(e);
}

/*
 * Builds the Hyperscan database from the byte-mode regex rules. A pattern
 * Hyperscan refuses is dropped from it (PCRE2 alone runs it) and the rest
 * compiled again; any other failure leaves every regex rule to PCRE2.
 */
static int build_hyperscan(engine *e)
{
    const char **pats = NULL;
    unsigned *flags = NULL, *ids = NULL;
    size_t *cand = NULL;
    int rc = -1;
    size_t nc = 0;

    if (hs_valid_platform() != HS_SUCCESS)
        return 0;
    pats = calloc(e->n + 1, sizeof(*pats));
    flags = calloc(e->n + 1, sizeof(*flags));
    ids = calloc(e->n + 1, sizeof(*ids));
    cand = calloc(e->n + 1, sizeof(*cand));
    e->hs_rule = calloc(e->n + 1, sizeof(*e->hs_rule));
    e->hit = calloc(e->n + 1, 1);
    if (pats == NULL || flags == NULL || ids == NULL || cand == NULL || e->hs_rule == NULL || e->hit == NULL)
        goto done;
    for (size_t i = 0; i < e->n; i++) {
        const char *p = rules_pattern(e->rs, i);
        if (e->rules[i].type == RULES_TYPE_REGEX && !engine_regex_is_utf(p))
            cand[nc++] = i;
    }
    while (nc > 0) {
        for (size_t k = 0; k < nc; k++) {
            pats[k] = rules_pattern(e->rs, cand[k]);
            flags[k] = HS_FLAG_SINGLEMATCH;
            ids[k] = (unsigned)k;
        }
        hs_compile_error_t *cerr = NULL;
        hs_database_t *db = NULL;
        if (hs_compile_multi(pats, flags, ids, (unsigned)nc, HS_MODE_BLOCK, NULL, &db, &cerr) == HS_SUCCESS) {
            e->db = db;
            break;
        }
        int bad = cerr != NULL ? cerr->expression : -1;
        (void)hs_free_compile_error(cerr);
        if (bad < 0 || (size_t)bad >= nc) {
            nc = 0;
            break;
        }
        memmove(cand + bad, cand + bad + 1, (nc - (size_t)bad - 1) * sizeof(*cand));
        nc--;
    }
    if (e->db != NULL) {
        if (hs_alloc_scratch(e->db, &e->scratch) != HS_SUCCESS) {
            (void)hs_free_database(e->db);
            e->db = NULL;
            nc = 0;
        }
    }
    for (size_t k = 0; k < nc; k++) {
        e->hs_rule[k] = cand[k];
        e->rules[cand[k]].hs_id = (int)k;
    }
    e->n_hs = nc;
    e->stats.hs_patterns = nc;
    rc = 0;
done:
    free(pats);
    free(flags);
    free(ids);
    free(cand);
    return rc;
}

engine *engine_new(const rules_set *rs, char *err, size_t errlen)
{
    engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        goto oom;
    e->rs = rs;
    e->n = rules_count(rs);
    e->rules = calloc(e->n + 1, sizeof(*e->rules));
    e->in_scope = calloc(e->n + 1, 1);
    e->md = pcre2_match_data_create(1, NULL);
    e->md_allow = pcre2_match_data_create(1, NULL);
    e->mctx = pcre2_match_context_create(NULL);
    e->jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (e->rules == NULL || e->in_scope == NULL || e->md == NULL || e->md_allow == NULL || e->mctx == NULL ||
        e->jit == NULL)
        goto oom;
    pcre2_jit_stack_assign(e->mctx, NULL, e->jit);
    if (pcre2_set_match_limit(e->mctx, 1000000) != 0)
        goto oom;

    for (size_t i = 0; i < e->n; i++) {
        struct erule *r = &e->rules[i];
        r->type = rules_type_of(rs, i);
        r->hs_id = -1;
        r->scoped = rules_has_scope(rs, i);
        e->any_scoped |= r->scoped;
        char why[300];
        switch (r->type) {
        case RULES_TYPE_REGEX:
            r->re = engine_regex_compile(rules_pattern(rs, i), why, sizeof(why));
            if (r->re == NULL) {
                snprintf(err, errlen, "rule '%s': %s", rules_id(rs, i), why);
                goto fail;
            }
            r->has_validator = rules_validator(rs, i, &r->validator);
            break;
        case RULES_TYPE_BUILTIN:
            r->builtin = rules_builtin(rs, i);
            break;
        case RULES_TYPE_SCRIPT: {
            size_t len = 0;
            const char *src = rules_script_source(rs, i, &len);
            r->lua = engine_lua_new(rules_script_path(rs, i), src, len, why, sizeof(why));
            if (r->lua == NULL) {
                snprintf(err, errlen, "rule '%s': script: %s", rules_id(rs, i), why);
                goto fail;
            }
            break;
        }
        }
        size_t na = rules_allow_pattern_count(rs, i);
        if (na > 0) {
            r->allow_re = calloc(na, sizeof(*r->allow_re));
            if (r->allow_re == NULL)
                goto oom;
            for (; r->n_allow_re < na; r->n_allow_re++) {
                pcre2_code *re =
                    engine_regex_compile(rules_allow_pattern(rs, i, r->n_allow_re), why, sizeof(why));
                if (re == NULL) {
                    snprintf(err, errlen, "rule '%s': allowlist pattern: %s", rules_id(rs, i), why);
                    goto fail;
                }
                r->allow_re[r->n_allow_re] = re;
            }
        }
    }
    if (build_hyperscan(e) != 0)
        goto oom;
    /* Rules the Hyperscan pass does not gate run for every value; the others only on a hit. */
    e->direct = calloc(e->n ? e->n : 1, sizeof(*e->direct));
    if (e->direct == NULL)
        goto oom;
    for (size_t i = 0; i < e->n; i++)
        if (e->rules[i].type != RULES_TYPE_REGEX || e->rules[i].hs_id < 0)
            e->direct[e->n_direct++] = i;
    detect_init();
    return e;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    engine_free(e);
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool allowlisted(scan_ctx *c, const char *s, size_t len)
{
    const rules_set *rs = c->e->rs;
    size_t nv = rules_allow_value_count(rs, c->rule);
    for (size_t k = 0; k < nv; k++) {
        size_t al = 0;
        const char *a = rules_allow_value(rs, c->rule, k, &al);
        if (al == len && memcmp(a, s, len) == 0)
            return true;
    }
    const struct erule *r = &c->e->rules[c->rule];
    for (size_t k = 0; k < r->n_allow_re; k++) {
        int rc = pcre2_match(r->allow_re[k], (PCRE2_SPTR)s, len, 0, 0, c->e->md_allow, c->e->mctx);
        if (rc >= 0)
            return true;
        if (rc != PCRE2_ERROR_NOMATCH)
            c->e->stats.regex_errors++;
    }
    return false;
}

/* One match of rule c->rule; returns non-zero to stop the rule's scan. */
static int emit(scan_ctx *c, size_t start, size_t end)
{
    if (end <= start)
        return 0;
    if (c->out == NULL) {
        c->found = true;
        return 1;
    }
    if (allowlisted(c, c->value + start, end - start))
        return 0;
    engine_findings *f = c->out;
    if (f->count == f->cap) {
        size_t ncap = f->cap ? 2 * f->cap : 16;
        engine_finding *ni = realloc(f->items, ncap * sizeof(*ni));
        if (ni == NULL) {
            c->oom = true;
            return 1;
        }
        f->items = ni;
        f->cap = ncap;
    }
    f->items[f->count++] = (engine_finding){.rule = c->rule, .start = start, .end = end, .masked = NULL};
    return 0;
}

static int emit_cb(void *ctx, size_t start, size_t end)
{
    return emit(ctx, start, end);
}

/* Every non-overlapping PCRE2 match of the rule, left to right. */
static void run_regex(scan_ctx *c, const char *v, size_t len)
{
    engine *e = c->e;
    const struct erule *r = &e->rules[c->rule];
    size_t off = 0;
    while (off <= len) {
        int rc = pcre2_match(r->re, (PCRE2_SPTR)v, len, off, 0, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return;
        if (rc < 0) {
            e->stats.regex_errors++;
            return;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t s = ov[0], en = ov[1];
        if (en <= s || en <= off) {
            off = (s > off ? s : off) + 1;
            continue;
        }
        if (!r->has_validator || detect_validate(r->validator, v + s, en - s)) {
            if (emit(c, s, en) != 0)
                return;
        }
        off = en;
    }
}

static int hs_on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags, void *ctx)
{
    (void)from;
    (void)to;
    (void)flags;
    scan_ctx *c = ctx;
    c->e->hit[id] = 1;
    /* "any" mode: a hit of a rule without validator settles it */
    if (c->out == NULL && !c->e->rules[c->e->hs_rule[id]].has_validator) {
        c->found = true;
        return 1;
    }
    return 0;
}

/* Hyperscan pass: marks which prefiltered rules may match. */
static void prefilter(scan_ctx *c, const char *v, size_t len)
{
    engine *e = c->e;
    if (e->n_hs == 0)
        return;
    memset(e->hit, 0, e->n_hs);
    if (len > UINT_MAX) {
        memset(e->hit, 1, e->n_hs); /* too long for one hs_scan: confirm with PCRE2 */
        return;
    }
    hs_error_t rc = hs_scan(e->db, v, (unsigned)len, 0, e->scratch, hs_on_match, c);
    if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED)
        memset(e->hit, 1, e->n_hs);
}

static void run_rule(scan_ctx *c, size_t i, const char *v, size_t len)
{
    engine *e = c->e;
    struct erule *r = &e->rules[i];
    c->rule = i;
    switch (r->type) {
    case RULES_TYPE_REGEX:
        if (r->hs_id >= 0 && !e->hit[r->hs_id])
            return;
        run_regex(c, v, len);
        return;
    case RULES_TYPE_BUILTIN:
        if (r->builtin == DETECT_EMAIL) {
            (void)detect_scan(r->builtin, v, len, emit_cb, c);
            return;
        }
        if (!c->dv_ready) {
            if (len > UINT32_MAX || detect_value_prepare(&e->dv, v, len) < 0) {
                c->oom = len <= UINT32_MAX;
                return;
            }
            c->dv_ready = true;
        }
        (void)detect_scan_value(r->builtin, &e->dv, emit_cb, c);
        return;
    case RULES_TYPE_SCRIPT:
        if (engine_lua_detect(r->lua, v, len, emit_cb, c, NULL, 0) != ENGINE_LUA_OK) {
            r->script_errors++;
            e->stats.script_errors++;
        }
        return;
    }
}

static bool glob_match(const rules_set *rs, size_t i, rules_scope_kind kind, bool include, const char *name,
                       const char *qual)
{
    size_t n = rules_scope_count(rs, i, kind, include);
    for (size_t k = 0; k < n; k++) {
        const char *g = rules_scope_glob(rs, i, kind, include, k);
        const char *subject =
            kind == RULES_SCOPE_TABLES && qual != NULL && strchr(g, '.') != NULL ? qual : name;
        if (fnmatch(g, subject, 0) == 0)
            return true;
    }
    return false;
}

static bool rule_in_scope(const rules_set *rs, size_t i, const char *const names[3], const char *qual)
{
    for (unsigned k = 0; k < RULES_SCOPE__COUNT; k++) {
        if (names[k] == NULL)
            continue;
        if (rules_scope_count(rs, i, (rules_scope_kind)k, true) > 0 &&
            !glob_match(rs, i, (rules_scope_kind)k, true, names[k], qual))
            return false;
        if (glob_match(rs, i, (rules_scope_kind)k, false, names[k], qual))
            return false;
    }
    return true;
}

/*
 * Fills e->in_scope for where; consecutive values of one column reuse the
 * previous answer. Returns false when no filtering applies at all.
 */
static bool eval_scope(engine *e, const engine_scope *where)
{
    if (where == NULL || !e->any_scoped)
        return false;
    const char *names[3] = {where->schema, where->table, where->column};
    bool cacheable = true;
    if (e->scope_cached) {
        bool same = true;
        for (int k = 0; k < 3 && same; k++) {
            if (names[k] == NULL)
                same = e->sc_null[k];
            else
                same = !e->sc_null[k] && strcmp(names[k], e->sc_name[k]) == 0;
        }
        if (same)
            return true;
    }
    for (int k = 0; k < 3; k++)
        if (names[k] != NULL && strlen(names[k]) >= SCOPE_NAME_MAX)
            cacheable = false;
    const char *qual = NULL;
    if (where->schema != NULL && where->table != NULL && cacheable) {
        snprintf(e->qual, sizeof(e->qual), "%s.%s", where->schema, where->table);
        qual = e->qual;
    }
    e->in_scope_count = 0;
    for (size_t i = 0; i < e->n; i++) {
        e->in_scope[i] = !e->rules[i].scoped || rule_in_scope(e->rs, i, names, qual);
        e->in_scope_count += e->in_scope[i];
    }
    e->scope_cached = cacheable;
    for (int k = 0; k < 3 && cacheable; k++) {
        e->sc_null[k] = names[k] == NULL;
        snprintf(e->sc_name[k], SCOPE_NAME_MAX, "%s", names[k] != NULL ? names[k] : "");
    }
    return true;
}

static int finding_cmp(const void *a, const void *b)
{
    const engine_finding *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->rule != y->rule)
        return x->rule < y->rule ? -1 : 1;
    return 0;
}

/* Sorts and masks the findings; the text buffer grows before any pointer into it is taken. */
static int finish(const char *v, engine_findings *f)
{
    if (f->count == 0)
        return 0;
    qsort(f->items, f->count, sizeof(*f->items), finding_cmp);
    size_t need = 0;
    for (size_t i = 0; i < f->count; i++) {
        size_t l = f->items[i].end - f->items[i].start;
        if (l > (SIZE_MAX - need - 8) / 3)
            return -1;
        need += 3 * l + 8;
    }
    if (need > f->text_cap) {
        char *nt = realloc(f->text, need);
        if (nt == NULL)
            return -1;
        f->text = nt;
        f->text_cap = need;
    }
    size_t pos = 0;
    for (size_t i = 0; i < f->count; i++) {
        engine_finding *x = &f->items[i];
        size_t room = 3 * (x->end - x->start) + 8;
        size_t got = mask_span(v + x->start, x->end - x->start, f->text + pos, room);
        x->masked = f->text + pos;
        pos += (got < room ? got : room - 1) + 1;
    }
    return 0;
}

int engine_scan(engine *e, const engine_scope *where, const char *value, size_t len, engine_findings *out)
{
    out->count = 0;
    out->scope_skipped = 0;
    e->stats.values++;
    if (value == NULL)
        value = "";
    bool filtered = eval_scope(e, where);
    if (filtered && e->in_scope_count == 0) {
        out->scope_skipped = e->n;
        e->stats.values_scoped_out++;
        e->stats.rule_scope_skips += e->n;
        return 0;
    }
    scan_ctx c = {.e = e, .value = value, .out = out};
    uint64_t t0 = e->profiling ? now_ns() : 0;
    prefilter(&c, value, len);
    if (e->profiling)
        e->prof_prefilter = now_ns() - t0;
    if (e->profiling) {
        /* every rule, timed one by one (`rules bench`) */
        for (size_t i = 0; i < e->n && !c.oom; i++) {
            if (filtered && !e->in_scope[i]) {
                out->scope_skipped++;
                continue;
            }
            uint64_t t = now_ns();
            run_rule(&c, i, value, len);
            e->rules[i].prof_ns = now_ns() - t;
        }
    } else {
        /* Findings are sorted at the end, so rules may run in any order: the always-run ones, then Hyperscan's hits. */
        for (size_t k = 0; k < e->n_direct && !c.oom; k++) {
            size_t i = e->direct[k];
            if (!filtered || e->in_scope[i])
                run_rule(&c, i, value, len);
        }
        for (size_t h = 0; h < e->n_hs && !c.oom; h++) {
            size_t i = e->hs_rule[h];
            if (e->hit[h] && (!filtered || e->in_scope[i]))
                run_rule(&c, i, value, len);
        }
        if (filtered)
            out->scope_skipped = e->n - e->in_scope_count;
    }
    e->stats.rule_scope_skips += out->scope_skipped;
    if (c.oom || finish(value, out) != 0) {
        out->count = 0;
        return -1;
    }
    return 0;
}

bool engine_matches_any_rule(engine *e, const char *value, size_t len)
{
    if (value == NULL)
        value = "";
    scan_ctx c = {.e = e, .value = value, .out = NULL};
    prefilter(&c, value, len);
    for (size_t i = 0; i < e->n && !c.found; i++)
        run_rule(&c, i, value, len);
    return c.found;
}

void engine_get_stats(const engine *e, engine_stats *out)
{
    *out = e->stats;
}

uint64_t engine_script_errors(const engine *e, size_t rule)
{
    return rule < e->n ? e->rules[rule].script_errors : 0;
}

bool engine_rule_uses_hyperscan(const engine *e, size_t rule)
{
    return rule < e->n && e->rules[rule].hs_id >= 0;
}

void engine_set_profiling(engine *e, bool on)
{
    e->profiling = on;
    for (size_t i = 0; i < e->n; i++)
        e->rules[i].prof_ns = 0;
    e->prof_prefilter = 0;
}

uint64_t engine_profile_ns(const engine *e, size_t rule)
{
    return rule < e->n ? e->rules[rule].prof_ns : 0;
}

uint64_t engine_profile_prefilter_ns(const engine *e)
{
    return e->prof_prefilter;
}
