/*
 * rules: reads rules.yaml with libyaml's document loader (node marks give
 * every error its line), checks each rule, dry-runs scripts, and builds an
 * immutable rules_set. A single error rejects the whole file.
 */
#include "rules.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "engine_lua.h"
#include "engine_regex.h"

typedef struct {
    char **items;
    size_t n;
} strlist;

typedef struct {
    char *s;
    size_t len;
} bytes;

struct rule {
    char *id;
    unsigned line;
    rules_type type;
    rules_severity sev;
    char *category;
    char *description;
    strlist channels;
    char *pattern;
    bool has_validator;
    detect_validator validator;
    detect_builtin builtin;
    char *script_path;
    char *script_src;
    size_t script_len;
    bytes *allow_values;
    size_t n_allow_values;
    strlist allow_patterns;
    strlist scope[RULES_SCOPE__COUNT][2]; /* [kind][include] */
};

struct rules_set {
    char *file;
    struct rule *rules;
    size_t n;
};

typedef struct {
    rules_diag *diag;
    yaml_document_t *doc;
    rules_file_lookup lookup;
    void *lookup_ctx;
    rules_set *rs;
    bool oom;
} load_ctx;

static const char *const severity_names[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"};
static const char *const severity_lower[] = {"critical", "high", "medium", "low", "info"};
static const char *const type_names[] = {"regex", "builtin", "script"};
static const char *const scope_keys[RULES_SCOPE__COUNT][2] = {
    {"exclude_schemas", "include_schemas"},
    {"exclude_tables", "include_tables"},
    {"exclude_columns", "include_columns"},
};

const char *rules_type_name(rules_type t)
{
    return (unsigned)t < 3 ? type_names[t] : "?";
}

const char *rules_severity_name(rules_severity s)
{
    return (unsigned)s < 5 ? severity_names[s] : "?";
}

bool rules_severity_parse(const char *s, rules_severity *out)
{
    for (unsigned i = 0; i < 5; i++) {
        if (strcmp(s, severity_lower[i]) == 0) {
            *out = (rules_severity)i;
            return true;
        }
    }
    return false;
}

static void diag_add(rules_diag *d, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void diag_add(rules_diag *d, unsigned line, const char *fmt, ...)
{
    d->total++;
    if (d->count >= RULES_DIAG_MAX)
        return;
    d->items[d->count].line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->items[d->count].msg, sizeof(d->items[d->count].msg), fmt, ap);
    va_end(ap);
    d->count++;
}

static void diag_init(rules_diag *d, const char *file)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->file, sizeof(d->file), "%s", file);
}

void rules_diag_print(const rules_diag *diag, FILE *out, const char *prefix)
{
    for (size_t i = 0; i < diag->count; i++) {
        if (diag->items[i].line > 0)
            fprintf(out, "%s%s:%u: %s\n", prefix ? prefix : "", diag->file, diag->items[i].line,
                    diag->items[i].msg);
        else
            fprintf(out, "%s%s: %s\n", prefix ? prefix : "", diag->file, diag->items[i].msg);
    }
    if (diag->total > diag->count)
        fprintf(out, "%s%s: %zu more errors\n", prefix ? prefix : "", diag->file, diag->total - diag->count);
}

static unsigned node_line(const yaml_node_t *n)
{
    return (unsigned)n->start_mark.line + 1;
}

static char *xstrndup(load_ctx *c, const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p == NULL) {
        c->oom = true;
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* A scalar's text, or NULL with an error naming what was expected. */
static const char *scalar(load_ctx *c, const yaml_node_t *n, const char *rid, const char *key)
{
    if (n->type != YAML_SCALAR_NODE) {
        diag_add(c->diag, node_line(n), "rule '%s': %s must be a string", rid, key);
        return NULL;
    }
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
        diag_add(c->diag, node_line(n), "rule '%s': %s contains a NUL character", rid, key);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* A list of strings; a lone string counts as a one-element list. */
static int string_list(load_ctx *c, yaml_node_t *n, const char *rid, const char *key, strlist *out)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = scalar(c, n, rid, key);
        if (s == NULL)
            return -1;
        out->items = calloc(1, sizeof(char *));
        if (out->items == NULL || (out->items[0] = xstrndup(c, s, strlen(s))) == NULL) {
            c->oom = true;
            return -1;
        }
        out->n = 1;
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        diag_add(c->diag, node_line(n), "rule '%s': %s must be a list", rid, key);
        return -1;
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    out->items = calloc(cnt ? cnt : 1, sizeof(char *));
    if (out->items == NULL) {
        c->oom = true;
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        const char *s = it != NULL ? scalar(c, it, rid, key) : NULL;
        if (s == NULL) {
            rc = -1;
            continue;
        }
        if ((out->items[out->n] = xstrndup(c, s, strlen(s))) == NULL)
            return -1;
        out->n++;
    }
    return rc;
}

static yaml_node_t *seq_item(load_ctx *c, yaml_node_t *n, size_t i)
{
    return yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
}

static size_t seq_len(const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                                         : 0;
}

/*
 * Walks a mapping's pairs against known keys: values[k] gets the node of
 * keys[k]; unknown and repeated keys are errors.
 */
static int map_fields(load_ctx *c, yaml_node_t *map, const char *rid, const char *where,
                      const char *const *keys, size_t nkeys, yaml_node_t **values)
{
    int rc = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k == NULL || v == NULL)
            continue;
        if (k->type != YAML_SCALAR_NODE) {
            diag_add(c->diag, node_line(k), "%s%s%s: keys must be strings", rid ? "rule '" : "",
                     rid ? rid : "", rid ? "'" : "");
            rc = -1;
            continue;
        }
        const char *ks = (const char *)k->data.scalar.value;
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], ks) != 0)
            i++;
        if (i == nkeys) {
            if (rid != NULL)
                diag_add(c->diag, node_line(k), "rule '%s': unknown key '%s'%s%s", rid, ks,
                         where ? " in " : "", where ? where : "");
            else
                diag_add(c->diag, node_line(k), "unknown key '%s'%s%s", ks, where ? " in " : "",
                         where ? where : "");
            rc = -1;
            continue;
        }
        if (values[i] != NULL) {
            diag_add(c->diag, node_line(k), "%s%s%sduplicate key '%s'", rid ? "rule '" : "", rid ? rid : "",
                     rid ? "': " : "", ks);
            rc = -1;
            continue;
        }
        values[i] = v;
    }
    return rc;
}

static bool has_glob_chars(const char *s)
{
    return strpbrk(s, "*?[\\") != NULL;
}

static int parse_scope(load_ctx *c, struct rule *r, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) {
        diag_add(c->diag, node_line(n), "rule '%s': scope must be a mapping", r->id);
        return -1;
    }
    const char *keys[6];
    yaml_node_t *vals[6] = {0};
    for (unsigned k = 0; k < RULES_SCOPE__COUNT; k++) {
        keys[2 * k] = scope_keys[k][0];
        keys[2 * k + 1] = scope_keys[k][1];
    }
    int rc = map_fields(c, n, r->id, "scope", keys, 6, vals);
    for (unsigned k = 0; k < RULES_SCOPE__COUNT; k++) {
        for (unsigned inc = 0; inc < 2; inc++) {
            yaml_node_t *v = vals[2 * k + inc];
            if (v != NULL && string_list(c, v, r->id, scope_keys[k][inc], &r->scope[k][inc]) != 0)
                rc = -1;
        }
        /* A name (or the same glob) both included and excluded is a mistake. */
        yaml_node_t *exn = vals[2 * k];
        for (size_t i = 0; i < r->scope[k][1].n; i++) {
            const char *name = r->scope[k][1].items[i];
            for (size_t j = 0; j < r->scope[k][0].n; j++) {
                const char *ex = r->scope[k][0].items[j];
                bool clash = strcmp(name, ex) == 0 || (!has_glob_chars(name) && fnmatch(ex, name, 0) == 0);
                if (!clash)
                    continue;
                yaml_node_t *item = exn != NULL && j < seq_len(exn) ? seq_item(c, exn, j) : exn;
                diag_add(c->diag, item != NULL ? node_line(item) : node_line(n),
                         "rule '%s': scope: '%s' is both in %s and excluded by '%s' in %s", r->id, name,
                         scope_keys[k][1], ex, scope_keys[k][0]);
                rc = -1;
            }
        }
    }
    return rc;
}

static int check_pattern(load_ctx *c, const char *rid, const char *key, const yaml_node_t *n, const char *pat)
{
    char err[300];
    pcre2_code *re = engine_regex_compile(pat, err, sizeof(err));
    if (re == NULL) {
        diag_add(c->diag, node_line(n), "rule '%s': %s: %s", rid, key, err);
        return -1;
    }
    pcre2_code_free(re);
    return 0;
}

static int parse_allowlist(load_ctx *c, struct rule *r, yaml_node_t *n)
{
    static const char *const keys[] = {"values", "patterns"};
    yaml_node_t *vals[2] = {0};
    if (n->type != YAML_MAPPING_NODE) {
        diag_add(c->diag, node_line(n), "rule '%s': allowlist must be a mapping (values, patterns)", r->id);
        return -1;
    }
    int rc = map_fields(c, n, r->id, "allowlist", keys, 2, vals);
    if (vals[0] != NULL) {
        yaml_node_t *v = vals[0];
        if (v->type != YAML_SEQUENCE_NODE) {
            diag_add(c->diag, node_line(v), "rule '%s': allowlist values must be a list", r->id);
            rc = -1;
        } else {
            size_t cnt = seq_len(v);
            r->allow_values = calloc(cnt ? cnt : 1, sizeof(bytes));
            if (r->allow_values == NULL) {
                c->oom = true;
                return -1;
            }
            for (size_t i = 0; i < cnt; i++) {
                yaml_node_t *it = seq_item(c, v, i);
                if (it == NULL || it->type != YAML_SCALAR_NODE) {
                    diag_add(c->diag, it ? node_line(it) : node_line(v),
                             "rule '%s': allowlist values must be strings", r->id);
                    rc = -1;
                    continue;
                }
                bytes *b = &r->allow_values[r->n_allow_values];
                b->len = it->data.scalar.length;
                if ((b->s = xstrndup(c, (const char *)it->data.scalar.value, b->len)) == NULL)
                    return -1;
                r->n_allow_values++;
            }
        }
    }
    if (vals[1] != NULL) {
        if (string_list(c, vals[1], r->id, "allowlist patterns", &r->allow_patterns) != 0)
            rc = -1;
        for (size_t i = 0; i < r->allow_patterns.n; i++) {
            yaml_node_t *it = vals[1]->type == YAML_SEQUENCE_NODE ? seq_item(c, vals[1], i) : vals[1];
            if (check_pattern(c, r->id, "allowlist pattern", it != NULL ? it : vals[1],
                              r->allow_patterns.items[i]) != 0)
                rc = -1;
        }
    }
    return rc;
}

static int noop_span(void *ctx, size_t start, size_t end)
{
    (void)ctx;
    (void)start;
    (void)end;
    return 0;
}

static int load_script(load_ctx *c, struct rule *r, const yaml_node_t *n)
{
    const char *data = NULL;
    size_t len = 0;
    char err[300] = "";
    if (c->lookup == NULL || c->lookup(c->lookup_ctx, r->script_path, &data, &len, err, sizeof(err)) != 0) {
        diag_add(c->diag, node_line(n), "rule '%s': script '%s' cannot be read%s%s", r->id, r->script_path,
                 err[0] ? ": " : "", err);
        return -1;
    }
    if (len > RULES_MAX_SCRIPT_BYTES) {
        diag_add(c->diag, node_line(n), "rule '%s': script '%s' is larger than %u bytes", r->id,
                 r->script_path, RULES_MAX_SCRIPT_BYTES);
        return -1;
    }
    if ((r->script_src = xstrndup(c, data, len)) == NULL)
        return -1;
    r->script_len = len;

    engine_lua *l = engine_lua_new(r->script_path, data, len, err, sizeof(err));
    if (l == NULL) {
        diag_add(c->diag, node_line(n), "rule '%s': script '%s': %s", r->id, r->script_path, err);
        return -1;
    }
    char msg[300] = "";
    engine_lua_status st = engine_lua_detect(l, "", 0, noop_span, NULL, msg, sizeof(msg));
    engine_lua_free(l);
    if (st != ENGINE_LUA_OK) {
        if (st == ENGINE_LUA_RUNTIME)
            diag_add(c->diag, node_line(n), "rule '%s': script '%s': dry run detect(\"\") failed: %s", r->id,
                     r->script_path, msg);
        else
            diag_add(c->diag, node_line(n), "rule '%s': script '%s': dry run detect(\"\") failed: %s", r->id,
                     r->script_path, engine_lua_status_name(st));
        return -1;
    }
    return 0;
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

enum {
    K_ID,
    K_DESCRIPTION,
    K_TYPE,
    K_BUILTIN,
    K_PATTERN,
    K_VALIDATE,
    K_CATEGORY,
    K_SEVERITY,
    K_CHANNELS,
    K_ALLOWLIST,
    K_SCOPE,
    K_SCRIPT,
    K__COUNT
};
static const char *const rule_keys[K__COUNT] = {"id",       "description", "type",     "builtin",
                                                "pattern",  "validate",    "category", "severity",
                                                "channels", "allowlist",   "scope",    "script"};

static int parse_rule(load_ctx *c, yaml_node_t *n, size_t idx)
{
    struct rule *r = &c->rs->rules[idx];
    r->line = node_line(n);
    r->sev = RULES_SEV_MEDIUM;
    if (n->type != YAML_MAPPING_NODE) {
        diag_add(c->diag, node_line(n), "rule #%zu must be a mapping (id, category, ...)", idx + 1);
        return -1;
    }
    yaml_node_t *v[K__COUNT] = {0};
    char label[160];
    int rc = 0;

    /* The id first, so every later message can name the rule. */
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, "id") == 0) {
            yaml_node_t *val = yaml_document_get_node(c->doc, p->value);
            if (val != NULL && val->type == YAML_SCALAR_NODE)
                r->id = xstrndup(c, (const char *)val->data.scalar.value,
                                 strlen((const char *)val->data.scalar.value));
            break;
        }
    }
    snprintf(label, sizeof(label), "%s", r->id != NULL ? r->id : "");
    if (r->id == NULL)
        snprintf(label, sizeof(label), "#%zu", idx + 1);
    if (map_fields(c, n, label, NULL, rule_keys, K__COUNT, v) != 0)
        rc = -1;

    if (v[K_ID] == NULL) {
        diag_add(c->diag, r->line, "rule #%zu has no id", idx + 1);
        rc = -1;
    } else if (scalar(c, v[K_ID], label, "id") == NULL) {
        rc = -1;
    } else if (!valid_id(r->id)) {
        diag_add(c->diag, node_line(v[K_ID]), "rule id '%s' is invalid (1-128 of A-Z a-z 0-9 - _ . :)",
                 r->id);
        rc = -1;
    } else {
        for (size_t j = 0; j < idx; j++) {
            if (c->rs->rules[j].id != NULL && strcmp(c->rs->rules[j].id, r->id) == 0) {
                diag_add(c->diag, node_line(v[K_ID]), "duplicate rule id '%s' (first at line %u)", r->id,
                         c->rs->rules[j].line);
                rc = -1;
                break;
            }
        }
    }
    if (r->id == NULL && (r->id = xstrndup(c, label, strlen(label))) == NULL)
        return -1;

    const char *s;
    if (v[K_CATEGORY] == NULL) {
        diag_add(c->diag, r->line, "rule '%s': missing category", label);
        rc = -1;
    } else if ((s = scalar(c, v[K_CATEGORY], label, "category")) == NULL) {
        rc = -1;
    } else if (s[0] == '\0') {
        diag_add(c->diag, node_line(v[K_CATEGORY]), "rule '%s': category is empty", label);
        rc = -1;
    } else if ((r->category = xstrndup(c, s, strlen(s))) == NULL) {
        return -1;
    }

    if (v[K_DESCRIPTION] != NULL) {
        if ((s = scalar(c, v[K_DESCRIPTION], label, "description")) == NULL)
            rc = -1;
        else if ((r->description = xstrndup(c, s, strlen(s))) == NULL)
            return -1;
    }

    if (v[K_SEVERITY] != NULL) {
        if ((s = scalar(c, v[K_SEVERITY], label, "severity")) == NULL) {
            rc = -1;
        } else if (!rules_severity_parse(s, &r->sev)) {
            diag_add(c->diag, node_line(v[K_SEVERITY]),
                     "rule '%s': bad severity '%s' (critical, high, medium, low or info)", label, s);
            rc = -1;
        }
    }

    r->type = RULES_TYPE_REGEX;
    bool type_ok = true;
    if (v[K_TYPE] != NULL) {
        if ((s = scalar(c, v[K_TYPE], label, "type")) == NULL) {
            rc = -1;
            type_ok = false;
        } else if (strcmp(s, "regex") == 0) {
            r->type = RULES_TYPE_REGEX;
        } else if (strcmp(s, "builtin") == 0) {
            r->type = RULES_TYPE_BUILTIN;
        } else if (strcmp(s, "script") == 0) {
            r->type = RULES_TYPE_SCRIPT;
        } else {
            diag_add(c->diag, node_line(v[K_TYPE]), "rule '%s': bad type '%s' (regex, builtin or script)",
                     label, s);
            rc = -1;
            type_ok = false;
        }
    }

    if (type_ok) {
        /* Keys that belong to another type are mistakes, not silently ignored. */
        static const struct {
            int key;
            rules_type type;
        } owner[] = {{K_PATTERN, RULES_TYPE_REGEX},
                     {K_VALIDATE, RULES_TYPE_REGEX},
                     {K_BUILTIN, RULES_TYPE_BUILTIN},
                     {K_SCRIPT, RULES_TYPE_SCRIPT}};
        for (size_t i = 0; i < sizeof(owner) / sizeof(owner[0]); i++) {
            if (v[owner[i].key] != NULL && owner[i].type != r->type) {
                diag_add(c->diag, node_line(v[owner[i].key]), "rule '%s': key '%s' does not apply to type %s",
                         label, rule_keys[owner[i].key], type_names[r->type]);
                rc = -1;
                v[owner[i].key] = NULL;
            }
        }
        static const int needs[] = {K_PATTERN, K_BUILTIN, K_SCRIPT};
        if (v[needs[r->type]] == NULL) {
            diag_add(c->diag, r->line, "rule '%s': type %s needs '%s'", label, type_names[r->type],
                     rule_keys[needs[r->type]]);
            rc = -1;
        }
    }

    if (v[K_PATTERN] != NULL) {
        if ((s = scalar(c, v[K_PATTERN], label, "pattern")) == NULL) {
            rc = -1;
        } else if (s[0] == '\0') {
            diag_add(c->diag, node_line(v[K_PATTERN]), "rule '%s': pattern is empty", label);
            rc = -1;
        } else if (check_pattern(c, label, "pattern", v[K_PATTERN], s) != 0) {
            rc = -1;
        } else if ((r->pattern = xstrndup(c, s, strlen(s))) == NULL) {
            return -1;
        }
    }
    if (v[K_VALIDATE] != NULL) {
        if ((s = scalar(c, v[K_VALIDATE], label, "validate")) == NULL) {
            rc = -1;
        } else if (!detect_validator_parse(s, &r->validator)) {
            diag_add(c->diag, node_line(v[K_VALIDATE]),
                     "rule '%s': unknown validator '%s' (luhn, ssn, phone, email or iban)", label, s);
            rc = -1;
        } else {
            r->has_validator = true;
        }
    }
    if (v[K_BUILTIN] != NULL) {
        if ((s = scalar(c, v[K_BUILTIN], label, "builtin")) == NULL) {
            rc = -1;
        } else if (!detect_builtin_parse(s, &r->builtin)) {
            diag_add(c->diag, node_line(v[K_BUILTIN]),
                     "rule '%s': unknown builtin '%s' (credit_card, ssn, phone, email or iban)", label, s);
            rc = -1;
        }
    }
    if (v[K_CHANNELS] != NULL && string_list(c, v[K_CHANNELS], label, "channels", &r->channels) != 0)
        rc = -1;
    if (v[K_ALLOWLIST] != NULL && parse_allowlist(c, r, v[K_ALLOWLIST]) != 0)
        rc = -1;
    if (v[K_SCOPE] != NULL && parse_scope(c, r, v[K_SCOPE]) != 0)
        rc = -1;
    if (v[K_SCRIPT] != NULL) {
        if ((s = scalar(c, v[K_SCRIPT], label, "script")) == NULL) {
            rc = -1;
        } else if (s[0] == '\0') {
            diag_add(c->diag, node_line(v[K_SCRIPT]), "rule '%s': script is empty", label);
            rc = -1;
        } else if ((r->script_path = xstrndup(c, s, strlen(s))) == NULL) {
            return -1;
        } else if (load_script(c, r, v[K_SCRIPT]) != 0) {
            rc = -1;
        }
    }
    return rc;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

void rules_free(rules_set *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        struct rule *r = &rs->rules[i];
        free(r->id);
        free(r->category);
        free(r->description);
        strlist_free(&r->channels);
        free(r->pattern);
        free(r->script_path);
        free(r->script_src);
        for (size_t k = 0; k < r->n_allow_values; k++)
            free(r->allow_values[k].s);
        free(r->allow_values);
        strlist_free(&r->allow_patterns);
        for (unsigned k = 0; k < RULES_SCOPE__COUNT; k++) {
            strlist_free(&r->scope[k][0]);
            strlist_free(&r->scope[k][1]);
        }
    }
    free(rs->rules);
    free(rs->file);
    free(rs);
}

static void parse_document(load_ctx *c, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL) {
        diag_add(c->diag, 1, "the file is empty: expected a mapping with a 'rules' list");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        diag_add(c->diag, node_line(root), "expected a mapping with a 'rules' list at the top level");
        return;
    }
    static const char *const top_keys[] = {"rules"};
    yaml_node_t *rules = NULL;
    if (map_fields(c, root, NULL, NULL, top_keys, 1, &rules) != 0)
        return;
    if (rules == NULL) {
        diag_add(c->diag, node_line(root), "no 'rules' list");
        return;
    }
    /* "rules:" with nothing after it is an empty set. */
    if (rules->type == YAML_SCALAR_NODE && rules->data.scalar.length == 0)
        return;
    if (rules->type != YAML_SEQUENCE_NODE) {
        diag_add(c->diag, node_line(rules), "'rules' must be a list");
        return;
    }
    size_t cnt = seq_len(rules);
    if (cnt > RULES_MAX_RULES) {
        diag_add(c->diag, node_line(rules), "more than %d rules", RULES_MAX_RULES);
        return;
    }
    c->rs->rules = calloc(cnt ? cnt : 1, sizeof(struct rule));
    if (c->rs->rules == NULL) {
        c->oom = true;
        return;
    }
    c->rs->n = cnt;
    for (size_t i = 0; i < cnt && !c->oom; i++) {
        yaml_node_t *item = seq_item(c, rules, i);
        if (item != NULL)
            (void)parse_rule(c, item, i); /* errors are in the diag */
    }
}

int rules_load_mem(const char *name, const char *yaml, size_t len, rules_file_lookup lookup, void *ctx,
                   rules_set **out, rules_diag *diag)
{
    rules_diag local;
    if (diag == NULL)
        diag = &local;
    diag_init(diag, name);
    *out = NULL;

    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;
    load_ctx c = {.diag = diag, .doc = &doc, .lookup = lookup, .lookup_ctx = ctx};

    c.rs = calloc(1, sizeof(rules_set));
    if (c.rs == NULL || (c.rs->file = strdup(name)) == NULL) {
        c.oom = true;
        goto done;
    }
    if (len > RULES_MAX_FILE_BYTES) {
        diag_add(diag, 0, "file larger than %u bytes", RULES_MAX_FILE_BYTES);
        goto done;
    }
    if (!yaml_parser_initialize(&parser)) {
        c.oom = true;
        goto done;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.context != NULL)
            diag_add(diag, (unsigned)parser.problem_mark.line + 1, "invalid YAML: %s %s (line %u)",
                     parser.problem ? parser.problem : "error", parser.context,
                     (unsigned)parser.context_mark.line + 1);
        else
            diag_add(diag, (unsigned)parser.problem_mark.line + 1, "invalid YAML: %s",
                     parser.problem ? parser.problem : "error");
        goto done;
    }
    have_doc = true;
    parse_document(&c, &doc);

done:
    if (c.oom)
        diag_add(diag, 0, "out of memory");
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    if (diag->total > 0) {
        rules_free(c.rs);
        return -1;
    }
    *out = c.rs;
    return 0;
}

/* Reads a whole file up to max bytes; 0, or -1 with err. */
static int read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    int rc = -1;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s", strerror(errno));
        goto done;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    size_t n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s", strerror(errno));
        goto done;
    }
    if (n > max) {
        snprintf(err, errlen, "larger than %zu bytes", max);
        goto done;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

typedef struct {
    char dir[4096];
    char *last; /* the previous script read, freed at the next read */
} file_lookup_ctx;

static int file_lookup(void *ctx, const char *path, const char **data, size_t *len, char *err, size_t errlen)
{
    file_lookup_ctx *fc = ctx;
    char full[8192];
    int n = path[0] == '/' ? snprintf(full, sizeof(full), "%s", path)
                           : snprintf(full, sizeof(full), "%s%s", fc->dir, path);
    if (n < 0 || (size_t)n >= sizeof(full)) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    free(fc->last);
    fc->last = NULL;
    char *buf = NULL;
    if (read_file(full, RULES_MAX_SCRIPT_BYTES, &buf, len, err, errlen) != 0)
        return -1;
    fc->last = buf;
    *data = buf;
    return 0;
}

int rules_load(const char *path, rules_set **out, rules_diag *diag)
{
    rules_diag local;
    if (diag == NULL)
        diag = &local;
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    char err[256];
    if (read_file(path, RULES_MAX_FILE_BYTES, &text, &len, err, sizeof(err)) != 0) {
        diag_init(diag, path);
        diag_add(diag, 0, "cannot read: %s", err);
        return -1;
    }
    file_lookup_ctx fc = {.last = NULL};
    const char *slash = strrchr(path, '/');
    if (slash != NULL) {
        size_t dl = (size_t)(slash - path) + 1;
        if (dl >= sizeof(fc.dir))
            dl = 0;
        memcpy(fc.dir, path, dl);
        fc.dir[dl] = '\0';
    }
    int rc = rules_load_mem(path, text, len, file_lookup, &fc, out, diag);
    free(fc.last);
    free(text);
    return rc;
}

int rules_validate_report(const char *path, FILE *out)
{
    rules_diag *diag = malloc(sizeof(*diag));
    rules_set *rs = NULL;
    if (diag == NULL) {
        fprintf(out, "[ERROR] %s: out of memory\n", path);
        return 1;
    }
    int nerr = 0;
    if (rules_load(path, &rs, diag) != 0) {
        rules_diag_print(diag, out, "[ERROR] ");
        nerr = diag->total > 0 ? (int)diag->total : 1;
    } else {
        fprintf(out, "[OK] rules %s: %zu rules\n", path, rules_count(rs));
    }
    rules_free(rs);
    free(diag);
    return nerr;
}

/* Accessors. */
size_t rules_count(const rules_set *rs)
{
    return rs->n;
}
const char *rules_file(const rules_set *rs)
{
    return rs->file;
}
const char *rules_id(const rules_set *rs, size_t i)
{
    return rs->rules[i].id;
}
unsigned rules_line(const rules_set *rs, size_t i)
{
    return rs->rules[i].line;
}
rules_type rules_type_of(const rules_set *rs, size_t i)
{
    return rs->rules[i].type;
}
rules_severity rules_severity_of(const rules_set *rs, size_t i)
{
    return rs->rules[i].sev;
}
const char *rules_severity_str(const rules_set *rs, size_t i)
{
    return rules_severity_name(rs->rules[i].sev);
}
const char *rules_category(const rules_set *rs, size_t i)
{
    return rs->rules[i].category;
}
const char *rules_description(const rules_set *rs, size_t i)
{
    return rs->rules[i].description != NULL ? rs->rules[i].description : "";
}
size_t rules_channel_count(const rules_set *rs, size_t i)
{
    return rs->rules[i].channels.n;
}
const char *rules_channel(const rules_set *rs, size_t i, size_t k)
{
    return rs->rules[i].channels.items[k];
}
size_t rules_find(const rules_set *rs, const char *id)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->rules[i].id, id) == 0)
            return i;
    return (size_t)-1;
}
const char *rules_pattern(const rules_set *rs, size_t i)
{
    return rs->rules[i].pattern;
}
bool rules_validator(const rules_set *rs, size_t i, detect_validator *out)
{
    if (rs->rules[i].has_validator && out != NULL)
        *out = rs->rules[i].validator;
    return rs->rules[i].has_validator;
}
detect_builtin rules_builtin(const rules_set *rs, size_t i)
{
    return rs->rules[i].builtin;
}
const char *rules_script_path(const rules_set *rs, size_t i)
{
    return rs->rules[i].script_path;
}
const char *rules_script_source(const rules_set *rs, size_t i, size_t *len)
{
    *len = rs->rules[i].script_len;
    return rs->rules[i].script_src;
}
size_t rules_allow_value_count(const rules_set *rs, size_t i)
{
    return rs->rules[i].n_allow_values;
}
const char *rules_allow_value(const rules_set *rs, size_t i, size_t k, size_t *len)
{
    *len = rs->rules[i].allow_values[k].len;
    return rs->rules[i].allow_values[k].s;
}
size_t rules_allow_pattern_count(const rules_set *rs, size_t i)
{
    return rs->rules[i].allow_patterns.n;
}
const char *rules_allow_pattern(const rules_set *rs, size_t i, size_t k)
{
    return rs->rules[i].allow_patterns.items[k];
}
size_t rules_scope_count(const rules_set *rs, size_t i, rules_scope_kind kind, bool include)
{
    return rs->rules[i].scope[kind][include ? 1 : 0].n;
}
const char *rules_scope_glob(const rules_set *rs, size_t i, rules_scope_kind kind, bool include, size_t k)
{
    return rs->rules[i].scope[kind][include ? 1 : 0].items[k];
}
bool rules_has_scope(const rules_set *rs, size_t i)
{
    for (unsigned k = 0; k < RULES_SCOPE__COUNT; k++)
        if (rs->rules[i].scope[k][0].n > 0 || rs->rules[i].scope[k][1].n > 0)
            return true;
    return false;
}
