/*
 * metrics: families hold their series in a list in creation order plus a
 * small hash index over the label values, so an update is O(1) and the
 * output order is stable.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct metrics_series {
    struct metrics_series *next;  /* creation order */
    struct metrics_series *hnext; /* bucket chain */
    uint64_t hash;
    int64_t value;
    char *values[METRICS_MAX_LABELS];
} metrics_series;

struct metrics_family {
    struct metrics_family *next;
    char *name, *help;
    metrics_type type;
    size_t n_labels;
    char *labels[METRICS_MAX_LABELS];
    metrics_series *first, *last;
    metrics_series **buckets;
    size_t n_buckets, count;
};

struct metrics {
    metrics_family *first, *last;
};

metrics *metrics_new(void)
{
    return calloc(1, sizeof(metrics));
}

static void series_free(metrics_series *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s->values[i]);
    free(s);
}

static void family_free(metrics_family *f)
{
    metrics_series *s = f->first;
    while (s) {
        metrics_series *next = s->next;
        series_free(s, f->n_labels);
        s = next;
    }
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    free(f->buckets);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    metrics_family *f = m->first;
    while (f) {
        metrics_family *next = f->next;
        family_free(f);
        f = next;
    }
    free(m);
}

static uint64_t hash_values(const metrics_family *f, const char *const *values)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < f->n_labels; i++) {
        for (const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : ""); *p; p++) {
            h ^= *p;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff; /* separator: ("ab","") differs from ("a","b") */
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool same_values(const metrics_family *f, const metrics_series *s, const char *const *values)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

static metrics_series *find(const metrics_family *f, const char *const *values, uint64_t h)
{
    if (!f->buckets)
        return f->first; /* no labels: the one series */
    for (metrics_series *s = f->buckets[h & (f->n_buckets - 1)]; s; s = s->hnext)
        if (s->hash == h && same_values(f, s, values))
            return s;
    return NULL;
}

static int grow(metrics_family *f)
{
    size_t n = f->n_buckets * 2;
    metrics_series **b = calloc(n, sizeof(*b));
    if (!b)
        return -1;
    for (metrics_series *s = f->first; s; s = s->next) {
        s->hnext = b[s->hash & (n - 1)];
        b[s->hash & (n - 1)] = s;
    }
    free(f->buckets);
    f->buckets = b;
    f->n_buckets = n;
    return 0;
}

static metrics_series *get_or_create(metrics_family *f, const char *const *values)
{
    uint64_t h = f->n_labels ? hash_values(f, values) : 0;
    metrics_series *s = find(f, values, h);
    if (s)
        return s;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->hash = h;
    for (size_t i = 0; i < f->n_labels; i++) {
        s->values[i] = strdup(values[i] ? values[i] : "");
        if (!s->values[i]) {
            series_free(s, i);
            return NULL;
        }
    }
    if (f->buckets) {
        if (f->count >= f->n_buckets && grow(f) < 0) {
            series_free(s, f->n_labels);
            return NULL;
        }
        s->hnext = f->buckets[h & (f->n_buckets - 1)];
        f->buckets[h & (f->n_buckets - 1)] = s;
    }
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    f->count++;
    return s;
}

metrics_family *metrics_register(metrics *m, const char *name, const char *help, metrics_type type, size_t n,
                                 const char *const *labels)
{
    if (!m || !name || n > METRICS_MAX_LABELS)
        return NULL;
    metrics_family *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        f->labels[i] = strdup(labels[i]);
        if (!f->labels[i])
            goto fail;
        f->n_labels = i + 1;
    }
    if (n > 0) {
        f->n_buckets = 16;
        f->buckets = calloc(f->n_buckets, sizeof(*f->buckets));
        if (!f->buckets)
            goto fail;
    } else if (!get_or_create(f, NULL)) {
        goto fail;
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
fail:
    family_free(f);
    return NULL;
}

int metrics_add(metrics_family *f, const char *const *values, int64_t delta)
{
    metrics_series *s = get_or_create(f, values);
    if (!s)
        return -1;
    s->value += delta;
    return 0;
}

int metrics_set(metrics_family *f, const char *const *values, int64_t v)
{
    metrics_series *s = get_or_create(f, values);
    if (!s)
        return -1;
    s->value = v;
    return 0;
}

int64_t metrics_get(const metrics_family *f, const char *const *values)
{
    metrics_series *s = find(f, values, f->n_labels ? hash_values(f, values) : 0);
    return s ? s->value : 0;
}

void metrics_remove(metrics_family *f, const char *const *values)
{
    if (!f->buckets)
        return; /* the series of a family without labels stays */
    uint64_t h = hash_values(f, values);
    metrics_series *s = find(f, values, h);
    if (!s)
        return;
    metrics_series **pp = &f->buckets[h & (f->n_buckets - 1)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    metrics_series *prev = NULL;
    for (metrics_series *it = f->first; it != s; it = it->next)
        prev = it;
    if (prev)
        prev->next = s->next;
    else
        f->first = s->next;
    if (f->last == s)
        f->last = prev;
    f->count--;
    series_free(s, f->n_labels);
}

/* Label values escape backslash, double quote and newline; HELP text backslash and newline. */
static void put_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

int metrics_render(const metrics *m, FILE *out)
{
    for (const metrics_family *f = m->first; f; f = f->next) {
        fprintf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, false);
        fprintf(out, "\n# TYPE %s %s\n", f->name, f->type == METRICS_COUNTER ? "counter" : "gauge");
        for (const metrics_series *s = f->first; s; s = s->next) {
            fputs(f->name, out);
            if (f->n_labels) {
                fputc('{', out);
                for (size_t i = 0; i < f->n_labels; i++) {
                    fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
                    put_escaped(out, s->values[i], true);
                    fputc('"', out);
                }
                fputc('}', out);
            }
            fprintf(out, " %" PRId64 "\n", s->value);
        }
    }
    return ferror(out) ? -1 : 0;
}
