/*
 * cli_rules: `pgsense rules list|test|bench` (SPEC section 2): loads a rules
 * file, prints the rules, scans values given on the command line or in a
 * file, or measures the engine. `rules test --format json` is a contract.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine.h"
#include "rules.h"
#include "jsonw.h"

typedef struct {
    const char *rules;
    const char *input;
    const char *file;
    const char *format;
    long generate;   /* -1: not given */
    long iterations; /* -1: not given */
} rules_opts;

typedef struct {
    char **v;
    size_t *len;
    size_t n;
    size_t cap;
} value_list;

static void rules_usage(FILE *out)
{
    fprintf(out, "usage: pgsense rules list -r rules.yaml\n"
                 "       pgsense rules test -r rules.yaml (--input V | --file F) [--format text|json]\n"
                 "       pgsense rules bench -r rules.yaml (--input V | --file F | --generate N)\n"
                 "                           [--iterations N] [--format table|json]\n");
}

/* "pgsense rules: MSG [ARG]" and the usage; returns the usage exit code. */
static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "pgsense rules: %s%s%s\n", msg, arg != NULL ? " " : "", arg != NULL ? arg : "");
    rules_usage(stderr);
    return 2;
}

static bool parse_count(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 100000000)
        return false;
    *out = v;
    return true;
}

/* Parses argv after the subcommand; returns 0, or the exit code (2 usage, or -1 for help). */
static int parse_opts(int argc, char **argv, bool allow_input, bool allow_bench, rules_opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return -1;
        const char **slot = NULL;
        long *num = NULL;
        if (strcmp(a, "-r") == 0 || strcmp(a, "--rules") == 0)
            slot = &o->rules;
        else if (allow_input && (strcmp(a, "--input") == 0 || strcmp(a, "-i") == 0))
            slot = &o->input;
        else if (allow_input && (strcmp(a, "--file") == 0 || strcmp(a, "-f") == 0))
            slot = &o->file;
        else if (allow_input && strcmp(a, "--format") == 0)
            slot = &o->format;
        else if (allow_bench && strcmp(a, "--generate") == 0)
            num = &o->generate;
        else if (allow_bench && strcmp(a, "--iterations") == 0)
            num = &o->iterations;
        else
            return usage_error("unknown option", a);
        if (i + 1 >= argc)
            return usage_error("a value is missing after", a);
        const char *val = argv[++i];
        if (slot != NULL) {
            if (*slot != NULL)
                return usage_error("option given twice:", a);
            *slot = val;
        } else if (!parse_count(val, num)) {
            return usage_error("a positive number is needed after", a);
        }
    }
    if (o->rules == NULL)
        return usage_error("-r rules.yaml is required", NULL);
    return 0;
}

static int load_rules(const char *path, rules_set **rs)
{
    rules_diag *diag = malloc(sizeof(*diag));
    if (diag == NULL) {
        fprintf(stderr, "pgsense rules: out of memory\n");
        return 1;
    }
    int rc = 0;
    if (rules_load(path, rs, diag) != 0) {
        rules_diag_print(diag, stderr, NULL);
        rc = 1;
    }
    free(diag);
    return rc;
}

static int cmd_list(int argc, char **argv)
{
    rules_opts o = {.generate = -1, .iterations = -1};
    int rc = parse_opts(argc, argv, false, false, &o);
    if (rc != 0)
        return rc < 0 ? (rules_usage(stdout), 0) : rc;
    rules_set *rs = NULL;
    if (load_rules(o.rules, &rs) != 0)
        return 1;
    int w[4] = {2, 4, 8, 8};
    for (size_t i = 0; i < rules_count(rs); i++) {
        int l[4] = {(int)strlen(rules_id(rs, i)), (int)strlen(rules_type_name(rules_type_of(rs, i))),
                    (int)strlen(rules_severity_str(rs, i)), (int)strlen(rules_category(rs, i))};
        for (int k = 0; k < 4; k++)
            if (l[k] > w[k])
                w[k] = l[k];
    }
    for (size_t i = 0; i < rules_count(rs); i++)
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], rules_id(rs, i), w[1],
               rules_type_name(rules_type_of(rs, i)), w[2], rules_severity_str(rs, i), w[3],
               rules_category(rs, i), rules_description(rs, i));
    rules_free(rs);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int values_add(value_list *vl, const char *s, size_t len)
{
    if (vl->n == vl->cap) {
        size_t ncap = vl->cap ? 2 * vl->cap : 64;
        char **nv = realloc(vl->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        vl->v = nv;
        size_t *nl = realloc(vl->len, ncap * sizeof(*nl));
        if (nl == NULL)
            return -1;
        vl->len = nl;
        vl->cap = ncap;
    }
    char *c = malloc(len + 1);
    if (c == NULL)
        return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    vl->v[vl->n] = c;
    vl->len[vl->n] = len;
    vl->n++;
    return 0;
}

static void values_free(value_list *vl)
{
    for (size_t i = 0; i < vl->n; i++)
        free(vl->v[i]);
    free(vl->v);
    free(vl->len);
}

/* Each line of path ("-" = stdin) is one value, "\r?\n" stripped. */
static int values_read(const char *path, value_list *vl)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "pgsense rules: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
            if (len > 0 && line[len - 1] == '\r')
                len--;
        }
        if (values_add(vl, line, len) != 0) {
            fprintf(stderr, "pgsense rules: out of memory\n");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "pgsense rules: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

static int cmd_test(int argc, char **argv)
{
    rules_opts o = {.generate = -1, .iterations = -1};
    int rc = parse_opts(argc, argv, true, false, &o);
    if (rc != 0)
        return rc < 0 ? (rules_usage(stdout), 0) : rc;
    if ((o.input == NULL) == (o.file == NULL))
        return usage_error("give exactly one of --input V and --file F", NULL);
    bool json = false;
    if (o.format != NULL && strcmp(o.format, "json") == 0)
        json = true;
    else if (o.format != NULL && strcmp(o.format, "text") != 0)
        return usage_error("--format must be text or json, not", o.format);

    rules_set *rs = NULL;
    engine *e = NULL;
    value_list vl = {0};
    engine_findings f;
    engine_findings_init(&f);
    rc = 1;
    if (load_rules(o.rules, &rs) != 0)
        goto done;
    char err[512];
    e = engine_new(rs, err, sizeof(err));
    if (e == NULL) {
        fprintf(stderr, "%s: %s\n", o.rules, err);
        goto done;
    }
    if (o.input != NULL ? values_add(&vl, o.input, strlen(o.input)) : values_read(o.file, &vl))
        goto done;
    for (size_t i = 0; i < vl.n; i++) {
        if (engine_scan(e, NULL, vl.v[i], vl.len[i], &f) != 0) {
            fprintf(stderr, "pgsense rules: out of memory scanning line %zu\n", i + 1);
            goto done;
        }
        if (json) {
            printf("{\"line\": %zu, \"findings\": [", i + 1);
            for (size_t k = 0; k < f.count; k++) {
                const engine_finding *x = &f.items[k];
                fputs(k ? ", {\"rule_id\": " : "{\"rule_id\": ", stdout);
                jsonw_str(stdout, rules_id(rs, x->rule));
                fputs(", \"category\": ", stdout);
                jsonw_str(stdout, rules_category(rs, x->rule));
                fputs(", \"severity\": ", stdout);
                jsonw_str(stdout, rules_severity_str(rs, x->rule));
                fputs(", \"masked_sample\": ", stdout);
                jsonw_str(stdout, x->masked);
                printf(", \"start\": %zu, \"end\": %zu}", x->start, x->end);
            }
            fputs("]}\n", stdout);
        } else if (f.count == 0) {
            printf("line %zu: no findings\n", i + 1);
        } else {
            printf("line %zu: %zu finding%s\n", i + 1, f.count, f.count == 1 ? "" : "s");
            for (size_t k = 0; k < f.count; k++) {
                const engine_finding *x = &f.items[k];
                printf("  %s  %s  %s  bytes %zu-%zu  %s\n", rules_id(rs, x->rule),
                       rules_severity_str(rs, x->rule), rules_category(rs, x->rule), x->start, x->end,
                       x->masked);
            }
        }
    }
    for (size_t i = 0; i < rules_count(rs); i++)
        if (engine_script_errors(e, i) > 0)
            fprintf(stderr, "pgsense rules: rule '%s': %" PRIu64 " script errors\n", rules_id(rs, i),
                    engine_script_errors(e, i));
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    engine_findings_free(&f);
    values_free(&vl);
    engine_free(e);
    rules_free(rs);
    return rc;
}

/* ---- bench ---- */

/* Log-linear histogram of nanoseconds: exact below 64, ~3% buckets above. */
#define HIST_BUCKETS (64 + 58 * 32)

typedef struct {
    uint64_t n;
    uint64_t sum;
    uint32_t b[HIST_BUCKETS];
} hist;

static unsigned hist_bucket(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned idx = 64 + (e - 6) * 32 + (unsigned)((v >> (e - 5)) & 31);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static uint64_t hist_value(unsigned idx)
{
    if (idx < 64)
        return idx;
    unsigned e = (idx - 64) / 32 + 6, sub = (idx - 64) % 32;
    uint64_t lo = ((uint64_t)32 + sub) << (e - 5);
    return lo + ((uint64_t)1 << (e - 5)) / 2;
}

static void hist_add(hist *h, uint64_t v)
{
    h->n++;
    h->sum += v;
    h->b[hist_bucket(v)]++;
}

static double hist_pct(const hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n + 0.5), acc = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= want)
            return (double)hist_value(i);
    }
    return 0;
}

static double hist_mean(const hist *h)
{
    return h->n ? (double)h->sum / (double)h->n : 0;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static const char *pick(uint64_t *s, const char *const *a, size_t n)
{
    return a[rng_next(s) % n];
}

#define PICK(s, a) pick((s), (a), sizeof(a) / sizeof((a)[0]))

static void rand_chars(uint64_t *s, char *out, size_t n, const char *alphabet)
{
    size_t al = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rng_next(s) % al];
    out[n] = '\0';
}

/* A Luhn-valid 16-digit card number starting with 4 or 5. */
static void rand_card(uint64_t *s, char *out)
{
    int d[16];
    d[0] = (rng_next(s) & 1) ? 4 : 5;
    for (int i = 1; i < 15; i++)
        d[i] = (int)(rng_next(s) % 10);
    int sum = 0;
    for (int i = 14, dbl = 1; i >= 0; i--, dbl = !dbl) {
        int x = d[i] * (dbl ? 2 : 1);
        sum += x > 9 ? x - 9 : x;
    }
    d[15] = (10 - sum % 10) % 10;
    for (int i = 0; i < 16; i++)
        out[i] = (char)('0' + d[i]);
    out[16] = '\0';
}

/* One realistic column value; about one in ten carries sensitive data. */
static int gen_value(uint64_t *s, char *buf, size_t cap)
{
    static const char *const first[] = {"Alice", "Bob", "Carmen", "Dmitri", "Emma", "Farid", "Grace", "Hiro"};
    static const char *const last[] = {"Johnson", "Smith",    "Garcia", "Ivanov",
                                       "Müller",  "Nakamura", "Okafor"};
    static const char *const street[] = {"Oak Street", "Main St", "Rue de la Paix", "Elm Avenue",
                                         "Königstraße"};
    static const char *const city[] = {"Springfield, IL 62704", "Paris 75002", "Berlin 10115",
                                       "Austin, TX 73301"};
    static const char *const words[] = {"order",   "shipped", "customer",  "requested", "refund", "delivery",
                                        "delayed", "package", "warehouse", "invoice",   "paid",   "pending",
                                        "address", "updated", "the",       "a",         "for",    "on"};
    static const char *const status[] = {"active", "pending", "shipped", "cancelled", "on_hold"};
    static const char *const secret_fmt[] = {"card", "email", "phone", "ssn", "iban", "aws", "github", "jwt"};
    char tmp[128], tmp2[64];
    uint64_t r = rng_next(s) % 100;
    if (r < 10) {
        const char *kind = PICK(s, secret_fmt);
        if (strcmp(kind, "card") == 0) {
            rand_card(s, tmp);
            return snprintf(buf, cap, "paid with card %s on 2026-03-14", tmp);
        }
        if (strcmp(kind, "email") == 0)
            return snprintf(buf, cap, "contact %s.%s@acme-corp.com for details", PICK(s, first),
                            PICK(s, last));
        if (strcmp(kind, "phone") == 0)
            return snprintf(buf, cap, "call +44 20 7946 %04u after 5pm", (unsigned)(rng_next(s) % 10000));
        if (strcmp(kind, "ssn") == 0)
            return snprintf(buf, cap, "SSN %03u-%02u-%04u on file", (unsigned)(rng_next(s) % 600 + 100),
                            (unsigned)(rng_next(s) % 89 + 10), (unsigned)(rng_next(s) % 9000 + 1000));
        if (strcmp(kind, "iban") == 0)
            return snprintf(buf, cap, "wire to DE89 3704 0044 0532 0130 00 ref %u",
                            (unsigned)(rng_next(s) % 1000));
        if (strcmp(kind, "aws") == 0) {
            rand_chars(s, tmp, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
            return snprintf(buf, cap, "aws_access_key_id=AKIA%s", tmp);
        }
        if (strcmp(kind, "github") == 0) {
            rand_chars(s, tmp, 36, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
            return snprintf(buf, cap, "token: ghp_%s", tmp);
        }
        rand_chars(s, tmp, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
        rand_chars(s, tmp2, 43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
        return snprintf(buf, cap, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ%s.%s", tmp, tmp2);
    }
    switch (r % 8) {
    case 0:
        return snprintf(buf, cap, "%s %s", PICK(s, first), PICK(s, last));
    case 1:
        return snprintf(buf, cap, "%u %s, %s", (unsigned)(rng_next(s) % 9000 + 10), PICK(s, street),
                        PICK(s, city));
    case 2:
        rand_chars(s, tmp, 32, "0123456789abcdef");
        return snprintf(buf, cap, "%.8s-%.4s-4%.3s-a%.3s-%.12s", tmp, tmp + 8, tmp + 12, tmp + 15, tmp + 18);
    case 3:
        return snprintf(buf, cap, "2026-%02u-%02u %02u:%02u:%02u.%06u+00", (unsigned)(rng_next(s) % 12 + 1),
                        (unsigned)(rng_next(s) % 28 + 1), (unsigned)(rng_next(s) % 24),
                        (unsigned)(rng_next(s) % 60), (unsigned)(rng_next(s) % 60),
                        (unsigned)(rng_next(s) % 1000000));
    case 4:
        return snprintf(buf, cap,
                        "{\"sku\": \"AB-%05u\", \"qty\": %u, \"status\": \"%s\", \"price\": %u.%02u}",
                        (unsigned)(rng_next(s) % 100000), (unsigned)(rng_next(s) % 20 + 1), PICK(s, status),
                        (unsigned)(rng_next(s) % 500), (unsigned)(rng_next(s) % 100));
    case 5:
        rand_chars(s, tmp, 64, "0123456789abcdef");
        return snprintf(buf, cap, "%s", tmp);
    case 6:
        return snprintf(buf, cap, "%s", PICK(s, status));
    default: {
        int n = 0, w = (int)(rng_next(s) % 20) + 4;
        buf[0] = '\0';
        for (int i = 0; i < w && (size_t)n + 16 < cap; i++)
            n += snprintf(buf + n, cap - (size_t)n, "%s%s", i ? " " : "", PICK(s, words));
        return n;
    }
    }
}

static double elapsed_s(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int cmd_bench(int argc, char **argv)
{
    rules_opts o = {.generate = -1, .iterations = -1};
    int rc = parse_opts(argc, argv, true, true, &o);
    if (rc != 0)
        return rc < 0 ? (rules_usage(stdout), 0) : rc;
    int sources = (o.input != NULL) + (o.file != NULL) + (o.generate > 0);
    if (sources != 1)
        return usage_error("give exactly one of --input V, --file F and --generate N", NULL);
    bool json = false;
    if (o.format != NULL && strcmp(o.format, "json") == 0)
        json = true;
    else if (o.format != NULL && strcmp(o.format, "table") != 0)
        return usage_error("--format must be table or json, not", o.format);

    rules_set *rs = NULL;
    engine *e = NULL;
    value_list vl = {0};
    hist *h = NULL;
    engine_findings f;
    engine_findings_init(&f);
    rc = 1;
    if (load_rules(o.rules, &rs) != 0)
        goto done;
    char err[512];
    e = engine_new(rs, err, sizeof(err));
    if (e == NULL) {
        fprintf(stderr, "%s: %s\n", o.rules, err);
        goto done;
    }
    if (o.input != NULL) {
        if (values_add(&vl, o.input, strlen(o.input)) != 0)
            goto oom;
    } else if (o.file != NULL) {
        if (values_read(o.file, &vl) != 0)
            goto done;
    } else {
        uint64_t seed = 0x9e3779b97f4a7c15u;
        char buf[512];
        for (long i = 0; i < o.generate; i++) {
            int n = gen_value(&seed, buf, sizeof(buf));
            if (n < 0 || values_add(&vl, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1) != 0)
                goto oom;
        }
    }
    if (vl.n == 0) {
        fprintf(stderr, "pgsense rules: no values to scan\n");
        goto done;
    }
    long iters = o.iterations;
    if (iters < 0) {
        iters = (long)(100000 / vl.n);
        if (iters < 1)
            iters = 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < vl.n; i++)
        bytes += vl.len[i];

    /* Pass 1: the whole engine, no profiling. */
    uint64_t findings = 0;
    struct timespec t0, t1;
    if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        goto done;
    for (long it = 0; it < iters; it++) {
        for (size_t i = 0; i < vl.n; i++) {
            if (engine_scan(e, NULL, vl.v[i], vl.len[i], &f) != 0)
                goto oom;
            findings += f.count;
        }
    }
    if (clock_gettime(CLOCK_MONOTONIC, &t1) != 0)
        goto done;
    double secs = elapsed_s(&t0, &t1);
    if (secs <= 0)
        secs = 1e-9;
    double scans = (double)vl.n * (double)iters;
    double vps = scans / secs, mbps = (double)bytes * (double)iters / secs / 1e6;

    /* Pass 2: per rule, per value. h[n] is the prefilter, h[n + 1] a whole scan. */
    size_t n = rules_count(rs);
    h = calloc(n + 2, sizeof(*h));
    if (h == NULL)
        goto oom;
    engine_set_profiling(e, true);
    for (long it = 0; it < iters; it++) {
        for (size_t i = 0; i < vl.n; i++) {
            if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0 ||
                engine_scan(e, NULL, vl.v[i], vl.len[i], &f) != 0 || clock_gettime(CLOCK_MONOTONIC, &t1) != 0)
                goto oom;
            for (size_t r = 0; r < n; r++)
                hist_add(&h[r], engine_profile_ns(e, r));
            hist_add(&h[n], engine_profile_prefilter_ns(e));
            hist_add(&h[n + 1], (uint64_t)(elapsed_s(&t0, &t1) * 1e9));
        }
    }
    engine_set_profiling(e, false);

    if (json) {
        printf("{\"values\": %zu, \"iterations\": %ld, \"bytes\": %zu, \"findings\": %" PRIu64
               ", \"values_per_s\": %.0f, \"mb_per_s\": %.2f, \"rules\": [",
               vl.n, iters, bytes, findings / (uint64_t)iters, vps, mbps);
        for (size_t r = 0; r < n + 2; r++) {
            const char *id = r < n ? rules_id(rs, r) : r == n ? "(prefilter)" : "(all rules)";
            const char *type = r < n    ? rules_type_name(rules_type_of(rs, r))
                               : r == n ? "hyperscan"
                                        : "engine";
            printf("%s{\"rule_id\": ", r ? ", " : "");
            jsonw_str(stdout, id);
            printf(", \"type\": \"%s\", \"mean_ns\": %.0f, \"p50_ns\": %.0f, \"p95_ns\": %.0f, \"p99_ns\": "
                   "%.0f}",
                   type, hist_mean(&h[r]), hist_pct(&h[r], 0.50), hist_pct(&h[r], 0.95),
                   hist_pct(&h[r], 0.99));
        }
        printf("]}\n");
    } else {
        int w = 12;
        for (size_t r = 0; r < n; r++)
            if ((int)strlen(rules_id(rs, r)) > w)
                w = (int)strlen(rules_id(rs, r));
        printf("%-*s  %-9s  %10s  %10s  %10s  %10s\n", w, "rule", "type", "mean_us", "p50_us", "p95_us",
               "p99_us");
        for (size_t r = 0; r < n + 2; r++) {
            const char *id = r < n ? rules_id(rs, r) : r == n ? "(prefilter)" : "(all rules)";
            const char *type = r < n    ? rules_type_name(rules_type_of(rs, r))
                               : r == n ? "hyperscan"
                                        : "engine";
            if (r < n && rules_type_of(rs, r) == RULES_TYPE_REGEX && engine_rule_uses_hyperscan(e, r))
                type = "regex+hs";
            printf("%-*s  %-9s  %10.3f  %10.3f  %10.3f  %10.3f\n", w, id, type, hist_mean(&h[r]) / 1e3,
                   hist_pct(&h[r], 0.50) / 1e3, hist_pct(&h[r], 0.95) / 1e3, hist_pct(&h[r], 0.99) / 1e3);
        }
        printf("\n%zu values (%zu bytes) x %ld iterations: %.0f values/s, %.2f MB/s, %" PRIu64
               " findings per pass\n",
               vl.n, bytes, iters, vps, mbps, findings / (uint64_t)iters);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto done;
oom:
    fprintf(stderr, "pgsense rules: out of memory\n");
    rc = 1;
done:
    free(h);
    engine_findings_free(&f);
    values_free(&vl);
    engine_free(e);
    rules_free(rs);
    return rc;
}

int cli_rules_main(int argc, char **argv)
{
    if (argc < 2) {
        rules_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0)
        return cmd_list(argc - 2, argv + 2);
    if (strcmp(sub, "test") == 0)
        return cmd_test(argc - 2, argv + 2);
    if (strcmp(sub, "bench") == 0)
        return cmd_bench(argc - 2, argv + 2);
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        rules_usage(stdout);
        return 0;
    }
    fprintf(stderr, "pgsense rules: unknown subcommand \"%s\"\n", sub);
    rules_usage(stderr);
    return 2;
}
