/* scan: one row in, findings out (see header). */
#include "scan.h"

#include <fnmatch.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "rules.h"

#define PK_VALUE_MAX 1024  /* a key value longer than this is cut (it is an identifier, not data) */
#define MASKED_MAX   512   /* bytes of a masked sample kept */
#define MAX_PKS      32

typedef struct {
    char **v;
    size_t n;
} glob_list;

struct scanner {
    engine *eng;
    glob_list include_schemas, exclude_tables, exclude_columns;
    bool scan_numeric;
    uint8_t pk_mode;
    uint8_t key[FRAME_HASH_SIZE];
    engine_findings ef;
    scan_counters counters;
    char pkbuf[MAX_PKS][PK_VALUE_MAX + 1];
    char masked[MASKED_MAX + 1];
};

static void glob_free(glob_list *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i]);
    free(g->v);
    g->v = NULL;
    g->n = 0;
}

static int glob_copy(glob_list *g, const frame_strlist *src)
{
    g->n = 0;
    g->v = calloc(src->n ? src->n : 1, sizeof(char *));
    if (!g->v)
        return -1;
    for (uint32_t i = 0; i < src->n; i++) {
        g->v[i] = strdup(src->v[i]);
        if (!g->v[i])
            return -1;
        g->n++;
    }
    return 0;
}

static bool glob_any(const glob_list *g, const char *s)
{
    for (size_t i = 0; i < g->n; i++)
        if (fnmatch(g->v[i], s, 0) == 0)
            return true;
    return false;
}

scanner *scanner_new(const frame_start *st)
{
    scanner *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (glob_copy(&s->include_schemas, &st->include_schemas) < 0 ||
        glob_copy(&s->exclude_tables, &st->exclude_tables) < 0 ||
        glob_copy(&s->exclude_columns, &st->exclude_columns) < 0) {
        scanner_free(s);
        return NULL;
    }
    s->scan_numeric = st->scan_numeric;
    s->pk_mode = st->primary_keys;
    memcpy(s->key, st->hash_key, sizeof(s->key));
    engine_findings_init(&s->ef);
    return s;
}

void scanner_free(scanner *s)
{
    if (!s)
        return;
    glob_free(&s->include_schemas);
    glob_free(&s->exclude_tables);
    glob_free(&s->exclude_columns);
    engine_findings_free(&s->ef);
    OPENSSL_cleanse(s->key, sizeof(s->key));
    free(s);
}

void scanner_set_engine(scanner *s, engine *e)
{
    s->eng = e;
}

/* pgsense's own state (store = postgres) is never scanned: it would scan its own writes. */
static bool own_table(const char *schema, const char *table)
{
    static const char *const own[] = {"_sqlx_migrations", "replication_state", "table_schemas", "table_columns",
                                      "destination_tables_metadata"};
    if (strcmp(schema, "etl") != 0)
        return false;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strcmp(table, own[i]) == 0)
            return true;
    return false;
}

bool scanner_table_excluded(const scanner *s, const char *schema, const char *table)
{
    if (own_table(schema, table))
        return true;
    if (s->include_schemas.n && !glob_any(&s->include_schemas, schema))
        return true;
    if (s->exclude_tables.n) {
        if (glob_any(&s->exclude_tables, table))
            return true;
        char qualified[256];
        snprintf(qualified, sizeof(qualified), "%s.%s", schema, table);
        if (glob_any(&s->exclude_tables, qualified))
            return true;
    }
    return false;
}

bool scanner_column_excluded(const scanner *s, const char *column)
{
    return s->exclude_columns.n && glob_any(&s->exclude_columns, column);
}

bool scanner_scan_numeric(const scanner *s)
{
    return s->scan_numeric;
}

const scan_counters *scanner_counters(const scanner *s)
{
    return &s->counters;
}

scan_table *scan_table_new(const scanner *s, const char *schema, const char *table, uint16_t ncols,
                           const char *const *colnames, const bool *type_scanned, const bool *is_key)
{
    scan_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->schema = strdup(schema);
    t->table = strdup(table);
    t->ncols = ncols;
    t->colnames = calloc(ncols ? ncols : 1, sizeof(char *));
    t->scanned = calloc(ncols ? ncols : 1, sizeof(bool));
    t->is_key = calloc(ncols ? ncols : 1, sizeof(bool));
    if (!t->schema || !t->table || !t->colnames || !t->scanned || !t->is_key)
        goto fail;
    t->excluded = scanner_table_excluded(s, schema, table);
    for (uint16_t i = 0; i < ncols; i++) {
        t->colnames[i] = strdup(colnames[i]);
        if (!t->colnames[i])
            goto fail;
        t->is_key[i] = is_key ? is_key[i] : false;
        t->scanned[i] = type_scanned[i] && !scanner_column_excluded(s, colnames[i]);
        if (!type_scanned[i])
            t->skipped_type_cols++;
        else if (!t->scanned[i])
            t->skipped_filter_cols++;
    }
    return t;
fail:
    scan_table_free(t);
    return NULL;
}

void scan_table_free(scan_table *t)
{
    if (!t)
        return;
    for (uint16_t i = 0; i < t->ncols && t->colnames; i++)
        free(t->colnames[i]);
    free(t->colnames);
    free(t->scanned);
    free(t->is_key);
    free(t->schema);
    free(t->table);
    free(t);
}

static int64_t now_unix_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static void copy_utf8_cut(char *dst, const char *src, size_t len, size_t max)
{
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Key columns of the row, leaving out those whose value matches a rule. */
static uint32_t collect_pks(scanner *s, const scan_table *t, const pgo_value *vals, frame_pk *pks)
{
    if (s->pk_mode == FRAME_PK_OMIT)
        return 0;
    uint32_t n = 0;
    for (uint16_t i = 0; i < t->ncols && n < MAX_PKS; i++) {
        if (!t->is_key[i] || vals[i].kind != PGO_VAL_TEXT)
            continue;
        if (engine_matches_any_rule(s->eng, vals[i].data, vals[i].len))
            continue;
        copy_utf8_cut(s->pkbuf[n], vals[i].data, vals[i].len, PK_VALUE_MAX);
        pks[n].name = t->colnames[i];
        pks[n].value = s->pkbuf[n];
        n++;
    }
    return n;
}

static bool unchanged(const pgo_value *oldv, const pgo_value *newv)
{
    return oldv->kind == PGO_VAL_TEXT && oldv->len == newv->len && memcmp(oldv->data, newv->data, newv->len) == 0;
}

int scanner_row(scanner *s, const scan_table *t, const pgo_value *newvals, const pgo_value *oldvals,
                const scan_origin *o, unit *u)
{
    if (t->excluded) {
        s->counters.skipped_filter++;
        return 0;
    }
    s->counters.events++;
    s->counters.skipped_type += t->skipped_type_cols;
    s->counters.skipped_filter += t->skipped_filter_cols;
    if (!s->eng)
        return 0;
    const rules_set *rs = engine_rules(s->eng);
    frame_pk pks[MAX_PKS];
    uint32_t npks = 0;
    bool pks_done = false;
    engine_scope where = {.schema = t->schema, .table = t->table};

    for (uint16_t i = 0; i < t->ncols; i++) {
        const pgo_value *v = &newvals[i];
        if (v->kind != PGO_VAL_TEXT)
            continue; /* NULL, unchanged TOAST, binary */
        if (!t->scanned[i])
            continue; /* type skips are counted per row above, column filters here */
        if (oldvals && unchanged(&oldvals[i], v))
            continue;
        where.column = t->colnames[i];
        if (engine_scan(s->eng, &where, v->data, v->len, &s->ef) < 0)
            return -1;
        s->counters.skipped_scope += s->ef.scope_skipped;
        if (s->ef.count == 0)
            continue;
        if (!pks_done) {
            npks = collect_pks(s, t, newvals, pks);
            pks_done = true;
        }
        int64_t detected = now_unix_us();
        for (size_t k = 0; k < s->ef.count; k++) {
            const engine_finding *ef = &s->ef.items[k];
            frame_finding fi = {0};
            fi.rule_id = rules_id(rs, ef->rule);
            fi.description = rules_description(rs, ef->rule);
            fi.category = rules_category(rs, ef->rule);
            fi.severity = (uint8_t)rules_severity_of(rs, ef->rule);
            fi.schema = t->schema;
            fi.table = t->table;
            fi.column = t->colnames[i];
            copy_utf8_cut(s->masked, ef->masked, strlen(ef->masked), MASKED_MAX);
            fi.masked_sample = s->masked;
            fi.primary_keys = pks;
            fi.n_primary_keys = npks;
            fi.lsn = o->lsn;
            fi.source = o->source;
            fi.op = o->op;
            fi.commit_time = o->commit_time;
            fi.detected_at = detected;
            unsigned int hlen = 0;
            if (!HMAC(EVP_sha256(), s->key, (int)sizeof(s->key), (const unsigned char *)v->data + ef->start,
                      ef->end - ef->start, fi.value_hash, &hlen))
                return -1;
            if (unit_add(u, &fi) < 0)
                return -1;
            s->counters.findings++;
        }
    }
    return 0;
}
