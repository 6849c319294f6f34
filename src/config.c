/*
 * config: pgsense.ini through inih. Our line reader counts lines, notices
 * [[entry]] headers and over-long lines; the inih handler stores values as
 * the key table says; env overrides, *_file secrets and checks follow.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

_Static_assert(LOG_LVL_DEBUG == 0 && LOG_LVL_INFO == 1 && LOG_LVL_WARN == 2 && LOG_LVL_ERROR == 3,
               "[log] level names follow log_level");
_Static_assert(LOG_FMT_CONSOLE == 0 && LOG_FMT_JSON == 1, "[log] format names follow log_format");
_Static_assert(INI_MAX_LINE == 200, "the too-long-line message says 199 characters");
_Static_assert(INI_ALLOW_MULTILINE == 1, "continuation lines need INI_ALLOW_MULTILINE");

#define SEC_IGNORE    CONFIG_SEC_COUNT /* keys of an unknown or misplaced section */
#define DIAG_TEXT_MAX 512
#define ENV_PREFIX    "PGSENSE__"
#define ENV_NAME_MAX  128

typedef enum {
    LINE_BLANK,  /* empty or comment */
    LINE_HEADER, /* [section] or [[entry]] */
    LINE_KEY,    /* key = value */
    LINE_CONT,   /* indented: continues the previous key */
    LINE_BAD,    /* syntax error, already reported */
} line_kind;

typedef enum {
    SET_FIRST,   /* key = value in the file */
    SET_APPEND,  /* a continuation line */
    SET_REPLACE, /* an environment override */
} set_mode;

/* Where a key got its value, for "set twice" and for later errors. */
typedef struct {
    config_section_id sec;
    size_t idx; /* entry index in an array section */
    const config_key_def *def;
    unsigned line; /* 0: from the environment */
    char env[ENV_NAME_MAX];
} seen_key;

typedef struct {
    config *cfg;
    config_diag *diag;
    FILE *fp;
    unsigned lineno;
    line_kind kind;
    bool has_prev;                       /* mirrors inih's prev_name != "" */
    unsigned sec;                        /* config_section_id or SEC_IGNORE */
    size_t idx;                          /* current entry of an array section */
    const config_key_def *last_def;      /* what a continuation continues; NULL: drop it */
    unsigned sec_line[CONFIG_SEC_COUNT]; /* first header line of each singleton section */
    bool sec_env[CONFIG_SEC_COUNT];      /* an env override named the section */
    unsigned syntax_errors;
    seen_key *seen;
    size_t n_seen, cap_seen;
    int read_errno; /* errno of a failed read, 0 */
    bool oom;
} load_ctx;

/* ---------------------------------------------------------------- diag */

void config_diag_init(config_diag *d)
{
    memset(d, 0, sizeof(*d));
}

void config_diag_free(config_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i].text);
    free(d->items);
    memset(d, 0, sizeof(*d));
}

void config_diag_print(const config_diag *d, FILE *out)
{
    for (int pass = 0; pass < 2; pass++) {
        config_severity want = pass == 0 ? CONFIG_DIAG_ERROR : CONFIG_DIAG_WARN;
        for (size_t i = 0; i < d->n; i++)
            if (d->items[i].severity == want)
                fprintf(out, "[%s] %s\n", want == CONFIG_DIAG_ERROR ? "ERROR" : "WARN", d->items[i].text);
    }
    size_t total = d->errors + d->warnings;
    if (total > d->n)
        fprintf(out, "[%s] ... and %zu more not shown\n", d->errors ? "ERROR" : "WARN", total - d->n);
    if (d->oom)
        fprintf(out, "[ERROR] out of memory while loading the configuration\n");
}

static void diag_vadd(config_diag *d, config_severity sev, const char *fmt, va_list ap)
{
    if (sev == CONFIG_DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->n >= CONFIG_MAX_DIAG)
        return;
    char buf[DIAG_TEXT_MAX];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        config_diag_item *items = realloc(d->items, cap * sizeof(*items));
        if (!items) {
            d->oom = true;
            return;
        }
        d->items = items;
        d->cap = cap;
    }
    char *text = strdup(buf);
    if (!text) {
        d->oom = true;
        return;
    }
    d->items[d->n].severity = sev;
    d->items[d->n].text = text;
    d->n++;
}

static void report(load_ctx *ctx, config_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(load_ctx *ctx, config_severity sev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(ctx->diag, sev, fmt, ap);
    va_end(ap);
}

/* "FILE:LINE", or "FILE" for line 0. */
static const char *where_line(const load_ctx *ctx, unsigned line, char *buf, size_t len)
{
    if (line)
        snprintf(buf, len, "%s:%u", ctx->cfg->path, line);
    else
        snprintf(buf, len, "%s", ctx->cfg->path);
    return buf;
}

/* ------------------------------------------------------------- helpers */

static char *ctx_strdup(load_ctx *ctx, const char *s)
{
    char *p = strdup(s);
    if (!p)
        ctx->oom = true;
    return p;
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static char *rstrip(char *s)
{
    char *p = s + strlen(s);
    while (p > s && isspace((unsigned char)p[-1]))
        *--p = '\0';
    return s;
}

static char *lskip(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* inih's rule: the first of chars, or an inline ';' after whitespace, or the end. */
static char *find_chars_or_comment(char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* s with control characters as '?', bounded, for quoting user text in a message. */
static const char *printable(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > CONFIG_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return false;
    return true;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* "[pipeline]", "[[databases]]", or "the top of the file". */
static const char *section_label(unsigned sec, char *buf, size_t len)
{
    if (sec == CONFIG_SEC_TOP)
        snprintf(buf, len, "the top of the file");
    else if (config_section_is_array((config_section_id)sec))
        snprintf(buf, len, "[[%s]]", config_section_name((config_section_id)sec));
    else
        snprintf(buf, len, "[%s]", config_section_name((config_section_id)sec));
    return buf;
}

static const config_key_def *find_key(unsigned sec, const char *name)
{
    size_t n;
    const config_key_def *k = config_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (k[i].section == sec && strcasecmp(k[i].key, name) == 0)
            return &k[i];
    return NULL;
}

/* " (did you mean \"port\"?)", " (rules_file belongs in the top of the file)" or "". */
static void key_hint(unsigned sec, const char *name, char *buf, size_t len)
{
    size_t n;
    const config_key_def *k = config_keys(&n);
    const config_key_def *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        if (k[i].section != sec)
            continue;
        size_t d = edit_distance(name, k[i].key);
        if (d < best_d) {
            best_d = d;
            best = &k[i];
        }
    }
    buf[0] = '\0';
    if (best) {
        snprintf(buf, len, " (did you mean \"%s\"?)", best->key);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(k[i].key, name) == 0) {
            char lab[64];
            snprintf(buf, len, " (%s is a key of %s)", k[i].key,
                     section_label(k[i].section, lab, sizeof(lab)));
            return;
        }
    }
}

static int find_section(const char *name)
{
    for (int s = 0; s < CONFIG_SEC_COUNT; s++)
        if (s != CONFIG_SEC_TOP && strcasecmp(config_section_name((config_section_id)s), name) == 0)
            return s;
    return -1;
}

/* The struct a key of section sec (entry idx) is stored in; NULL if none. */
static void *section_base(config *cfg, unsigned sec, size_t idx)
{
    switch (sec) {
    case CONFIG_SEC_TOP:
        return cfg;
    case CONFIG_SEC_DATABASES:
        return idx < cfg->n_dbs ? &cfg->dbs[idx] : NULL;
    case CONFIG_SEC_DATABASES_SCAN:
        return idx < cfg->n_dbs ? &cfg->dbs[idx].scan : NULL;
    case CONFIG_SEC_SCAN:
        return &cfg->scan;
    case CONFIG_SEC_PIPELINE:
        return &cfg->pipeline;
    case CONFIG_SEC_ALERTS:
        return &cfg->alerts;
    case CONFIG_SEC_ALERTS_LOG:
        return &cfg->alerts.log_sink;
    case CONFIG_SEC_ALERTS_STDOUT:
        return &cfg->alerts.stdout_sink;
    case CONFIG_SEC_ALERTS_JSONL:
        return &cfg->alerts.jsonl;
    case CONFIG_SEC_ALERTS_WEBHOOKS:
        return idx < cfg->alerts.n_webhooks ? &cfg->alerts.webhooks[idx] : NULL;
    case CONFIG_SEC_ALERTS_SLACK:
        return idx < cfg->alerts.n_slack ? &cfg->alerts.slack[idx] : NULL;
    case CONFIG_SEC_ALERTS_POSTGRES:
        return &cfg->alerts.postgres;
    case CONFIG_SEC_SERVER:
        return &cfg->server;
    case CONFIG_SEC_LOG:
        return &cfg->log;
    default:
        return NULL;
    }
}

#define FIELD(base, def, T) ((T *)(void *)((char *)(base) + (def)->offset))

/* ------------------------------------------------------- lists, headers */

static void list_free(config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static bool list_push(load_ctx *ctx, config_list *l, const char *item, size_t len)
{
    char **items = realloc(l->items, (l->n + 1) * sizeof(*items));
    if (!items) {
        ctx->oom = true;
        return false;
    }
    l->items = items;
    char *s = strndup(item, len);
    if (!s) {
        ctx->oom = true;
        return false;
    }
    l->items[l->n++] = s;
    return true;
}

/* Split a comma list onto l; empty items (a trailing comma) are skipped. */
static bool list_add(load_ctx *ctx, config_list *l, const char *value, char *why, size_t whylen)
{
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            if (l->n >= CONFIG_MAX_LIST) {
                snprintf(why, whylen, "more than %d items", CONFIG_MAX_LIST);
                return false;
            }
            if (!list_push(ctx, l, a, (size_t)(b - a)))
                return false;
        }
        p = comma ? comma + 1 : end;
    }
    return true;
}

static bool list_copy(load_ctx *ctx, config_list *dst, const config_list *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (!list_push(ctx, dst, src->items[i], strlen(src->items[i])))
            return false;
    return true;
}

static void headers_free(config_headers *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].name);
        free_secret(h->items[i].value);
        free(h->items[i].file);
    }
    free(h->items);
    h->items = NULL;
    h->n = 0;
}

/* Drop the headers that came from header (from_file false) or header_file. */
static void headers_drop(config_headers *h, bool from_file)
{
    size_t w = 0;
    for (size_t i = 0; i < h->n; i++) {
        if ((h->items[i].file != NULL) == from_file) {
            free(h->items[i].name);
            free_secret(h->items[i].value);
            free(h->items[i].file);
        } else {
            h->items[w++] = h->items[i];
        }
    }
    h->n = w;
}

/* RFC 9110 token characters. */
static bool header_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

/*
 * Read a secret file: one line, trailing whitespace stripped. On failure why
 * gets the cause (never any of the content) and *out stays NULL.
 */
static bool read_secret(const char *path, char **out, char *why, size_t whylen)
{
    char buf[CONFIG_MAX_SECRET + 1];
    size_t len = 0;
    bool ok = false;
    int fd;
    *out = NULL;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        goto done;
    }
    while (len < sizeof(buf)) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(why, whylen, "%s", strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > CONFIG_MAX_SECRET) {
        snprintf(why, whylen, "larger than %d bytes", CONFIG_MAX_SECRET);
        goto done;
    }
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        len--;
    if (len == 0) {
        snprintf(why, whylen, "the file is empty");
        goto done;
    }
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\0' || buf[i] == '\n' || buf[i] == '\r') {
            snprintf(why, whylen, "more than one line (or a NUL byte): a secret file holds one line");
            goto done;
        }
    }
    *out = strndup(buf, len);
    if (!*out) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    ok = true;
done:
    explicit_bzero(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return ok;
}

static char *resolve_path(load_ctx *ctx, const char *value)
{
    if (value[0] == '/')
        return ctx_strdup(ctx, value);
    size_t n = strlen(ctx->cfg->dir) + 1 + strlen(value) + 1;
    char *p = malloc(n);
    if (!p) {
        ctx->oom = true;
        return NULL;
    }
    snprintf(p, n, "%s/%s", ctx->cfg->dir, value);
    return p;
}

/* -------------------------------------------------------------- values */

static bool parse_int(const char *s, long long *out)
{
    if (!*s || (!isdigit((unsigned char)*s) && *s != '-' && *s != '+'))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

/* Bytes with an optional PostgreSQL-style unit (B, kB, MB, GB, TB; x1024). */
static bool parse_size(const char *s, long long *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    while (*end == ' ')
        end++;
    static const struct {
        const char *unit;
        unsigned long long mult;
    } units[] = {{"", 1},           {"B", 1}, {"kB", 1ULL << 10}, {"MB", 1ULL << 20}, {"GB", 1ULL << 30},
                 {"TB", 1ULL << 40}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            if (v > (unsigned long long)LLONG_MAX / units[i].mult)
                return false;
            *out = (long long)(v * units[i].mult);
            return true;
        }
    }
    return false;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool listen_valid(const char *s)
{
    const char *colon;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb == s + 1 || rb[1] != ':')
            return false;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return false;
    }
    long long port;
    if (!parse_int(colon + 1, &port) || port < 1 || port > 65535)
        return false;
    for (const char *p = s; p < colon; p++)
        if (isspace((unsigned char)*p))
            return false;
    return true;
}

static bool url_valid(const char *s)
{
    size_t skip;
    if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else
        return false;
    if (!s[skip] || s[skip] == '/')
        return false;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p))
            return false;
    return true;
}

static void replace_str(char **slot, char *v, bool secret)
{
    if (secret)
        free_secret(*slot);
    else
        free(*slot);
    *slot = v;
}

/* header / header_file: "Name: value" (value is a path for header_file). */
static bool header_add(load_ctx *ctx, const config_key_def *def, config_headers *h, const char *value,
                       char *why, size_t whylen)
{
    const char *colon = strchr(value, ':');
    const char *a = value, *b = colon ? colon : value;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    if (!colon || !header_name_valid(a, (size_t)(b - a))) {
        snprintf(why, whylen, "%s: expected \"Name: %s\" with a header name of letters, digits or -",
                 def->key, def->type == CONFIG_T_HEADER_FILE ? "/path" : "value");
        return false;
    }
    const char *v = colon + 1;
    while (isspace((unsigned char)*v))
        v++;
    if (!*v) {
        snprintf(why, whylen, "%s: header %.*s has no %s", def->key, (int)(b - a), a,
                 def->type == CONFIG_T_HEADER_FILE ? "path" : "value");
        return false;
    }
    if (h->n >= CONFIG_MAX_HEADERS) {
        snprintf(why, whylen, "more than %d headers", CONFIG_MAX_HEADERS);
        return false;
    }
    config_header item = {0};
    item.name = strndup(a, (size_t)(b - a));
    if (!item.name) {
        ctx->oom = true;
        goto done;
    }
    if (def->type == CONFIG_T_HEADER_FILE) {
        item.file = resolve_path(ctx, v);
        if (!item.file)
            goto done;
        char cause[160];
        if (!read_secret(item.file, &item.value, cause, sizeof(cause))) {
            snprintf(why, whylen, "%s: header %s: \"%s\": cannot read: %s", def->key, item.name, item.file,
                     cause);
            goto done;
        }
    } else {
        item.value = strdup(v);
        if (!item.value) {
            ctx->oom = true;
            goto done;
        }
    }
    config_header *items = realloc(h->items, (h->n + 1) * sizeof(*items));
    if (!items) {
        ctx->oom = true;
        goto done;
    }
    h->items = items;
    h->items[h->n++] = item;
    return true;
done:
    free(item.name);
    free_secret(item.value);
    free(item.file);
    return false;
}

/*
 * Store value into base as def says. On a bad value, why gets the reason;
 * it never quotes a secret, a URL (it may hold a token) or a header.
 */
static bool set_value(load_ctx *ctx, const config_key_def *def, void *base, const char *value, set_mode mode,
                      char *why, size_t whylen)
{
    why[0] = '\0';
    if (mode == SET_APPEND && def->type != CONFIG_T_LIST && def->type != CONFIG_T_HEADER &&
        def->type != CONFIG_T_HEADER_FILE) {
        snprintf(why, whylen,
                 "indented line continues %s, which takes one value (only lists and header continue "
                 "over indented lines; remove the indentation to start a new key)",
                 def->key);
        return false;
    }
    if (def->type == CONFIG_T_LIST) {
        config_list *l = FIELD(base, def, config_list);
        if (mode != SET_APPEND)
            list_free(l);
        if (has_ctl(value)) {
            snprintf(why, whylen, "%s: control character in the list", def->key);
            return false;
        }
        return list_add(ctx, l, value, why, whylen);
    }
    if (def->type == CONFIG_T_HEADER || def->type == CONFIG_T_HEADER_FILE) {
        config_headers *h = FIELD(base, def, config_headers);
        if (mode == SET_REPLACE)
            headers_drop(h, def->type == CONFIG_T_HEADER_FILE);
        if (has_ctl(value)) {
            snprintf(why, whylen, "%s: control character in the value", def->key);
            return false;
        }
        if (!header_add(ctx, def, h, value, why, whylen)) {
            if (!why[0])
                snprintf(why, whylen, "%s: out of memory", def->key);
            return false;
        }
        return true;
    }
    if (!*value) {
        snprintf(why, whylen, "%s: empty value (remove the line to use the default%s%s)", def->key,
                 def->def ? " " : "", def->def ? def->def : "");
        return false;
    }
    if (has_ctl(value)) {
        snprintf(why, whylen, "%s: control character in the value", def->key);
        return false;
    }
    switch (def->type) {
    case CONFIG_T_STRING:
    case CONFIG_T_SECRET:
    case CONFIG_T_NAME:
    case CONFIG_T_URL:
    case CONFIG_T_LISTEN: {
        if (def->type == CONFIG_T_NAME && !name_valid(value)) {
            snprintf(why, whylen, "%s: invalid name \"%s\": use 1 to %d of A-Z a-z 0-9 _ . -", def->key,
                     value, CONFIG_NAME_MAX);
            return false;
        }
        if (def->type == CONFIG_T_URL && !url_valid(value)) {
            snprintf(why, whylen, "%s: not an http:// or https:// URL", def->key);
            return false;
        }
        if (def->type == CONFIG_T_LISTEN && !listen_valid(value)) {
            snprintf(why, whylen, "%s: bad address \"%s\": expected host:port or [v6]:port, port 1..65535",
                     def->key, value);
            return false;
        }
        char *v = ctx_strdup(ctx, value);
        if (!v)
            return false;
        replace_str(FIELD(base, def, char *), v, def->type == CONFIG_T_SECRET);
        return true;
    }
    case CONFIG_T_PATH:
    case CONFIG_T_SECRET_FILE: {
        char *v = resolve_path(ctx, value);
        if (!v)
            return false;
        replace_str(FIELD(base, def, char *), v, false);
        return true;
    }
    case CONFIG_T_INT:
    case CONFIG_T_SIZE: {
        long long v;
        bool ok = def->type == CONFIG_T_INT ? parse_int(value, &v) : parse_size(value, &v);
        if (!ok || v < def->min || v > def->max) {
            if (def->type == CONFIG_T_INT)
                snprintf(why, whylen, "%s: bad number \"%s\": expected an integer from %lld to %lld",
                         def->key, value, def->min, def->max);
            else
                snprintf(why, whylen,
                         "%s: bad size \"%s\": expected bytes from %lld to %lld, or a number with kB, MB, GB "
                         "or TB",
                         def->key, value, def->min, def->max);
            return false;
        }
        if (def->type == CONFIG_T_INT)
            *FIELD(base, def, int) = (int)v;
        else
            *FIELD(base, def, uint64_t) = (uint64_t)v;
        return true;
    }
    case CONFIG_T_BOOL:
        if (!parse_bool(value, FIELD(base, def, bool))) {
            snprintf(why, whylen, "%s: bad boolean \"%s\": expected true/false, yes/no, on/off or 1/0",
                     def->key, value);
            return false;
        }
        return true;
    case CONFIG_T_ENUM: {
        for (int i = 0; def->enum_names[i]; i++) {
            if (strcasecmp(value, def->enum_names[i]) == 0) {
                *FIELD(base, def, int) = i;
                return true;
            }
        }
        char allowed[160] = "";
        size_t pos = 0;
        for (int i = 0; def->enum_names[i] && pos < sizeof(allowed); i++)
            pos += (size_t)snprintf(allowed + pos, sizeof(allowed) - pos, "%s%s", i ? ", " : "",
                                    def->enum_names[i]);
        snprintf(why, whylen, "%s: bad value \"%s\": expected one of %s", def->key, value, allowed);
        return false;
    }
    default:
        snprintf(why, whylen, "%s: unsupported type", def->key);
        return false;
    }
}

/* Defaults of every key of sec into base (derived ones are left to finalize). */
static void apply_defaults(load_ctx *ctx, unsigned sec, void *base)
{
    size_t n;
    const config_key_def *k = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (k[i].section != sec || !k[i].def || (k[i].flags & CONFIG_F_DERIVED))
            continue;
        char why[DIAG_TEXT_MAX];
        if (!set_value(ctx, &k[i], base, k[i].def, SET_FIRST, why, sizeof(why)) && !ctx->oom)
            report(ctx, CONFIG_DIAG_ERROR, "internal: default of %s: %s", k[i].key, why);
    }
}

/* Table-driven: free every string, list and header list of a section struct. */
static void free_section(unsigned sec, void *base)
{
    size_t n;
    const config_key_def *k = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (k[i].section != sec)
            continue;
        switch (k[i].type) {
        case CONFIG_T_LIST:
            list_free(FIELD(base, &k[i], config_list));
            break;
        case CONFIG_T_HEADER:
            headers_free(FIELD(base, &k[i], config_headers));
            break;
        case CONFIG_T_HEADER_FILE: /* shares the header list */
        case CONFIG_T_INT:
        case CONFIG_T_SIZE:
        case CONFIG_T_BOOL:
        case CONFIG_T_ENUM:
            break;
        default:
            replace_str(FIELD(base, &k[i], char *), NULL, k[i].type == CONFIG_T_SECRET);
            break;
        }
    }
}

/* ------------------------------------------------------------ seen keys */

static seen_key *seen_find(load_ctx *ctx, unsigned sec, size_t idx, const config_key_def *def)
{
    for (size_t i = 0; i < ctx->n_seen; i++)
        if (ctx->seen[i].sec == sec && ctx->seen[i].idx == idx && ctx->seen[i].def == def)
            return &ctx->seen[i];
    return NULL;
}

static seen_key *seen_add(load_ctx *ctx, unsigned sec, size_t idx, const config_key_def *def)
{
    seen_key *s = seen_find(ctx, sec, idx, def);
    if (s)
        return s;
    if (ctx->n_seen == ctx->cap_seen) {
        size_t cap = ctx->cap_seen ? ctx->cap_seen * 2 : 32;
        seen_key *p = realloc(ctx->seen, cap * sizeof(*p));
        if (!p) {
            ctx->oom = true;
            return NULL;
        }
        ctx->seen = p;
        ctx->cap_seen = cap;
    }
    s = &ctx->seen[ctx->n_seen++];
    memset(s, 0, sizeof(*s));
    s->sec = (config_section_id)sec;
    s->idx = idx;
    s->def = def;
    return s;
}

/* Where key of (sec, idx) was set: "FILE:LINE", "environment VAR", else fallback line. */
static const char *key_where(load_ctx *ctx, unsigned sec, size_t idx, const char *key, unsigned fallback,
                             char *buf, size_t len)
{
    const config_key_def *def = find_key(sec, key);
    seen_key *s = def ? seen_find(ctx, sec, idx, def) : NULL;
    if (s && s->line)
        return where_line(ctx, s->line, buf, len);
    if (s) {
        snprintf(buf, len, "environment %s", s->env);
        return buf;
    }
    return where_line(ctx, fallback, buf, len);
}

/* --------------------------------------------------------- line reader */

/* A new [section] or [[entry]] header on the current line. */
static void begin_section(load_ctx *ctx, const char *name, bool array)
{
    config *cfg = ctx->cfg;
    char w[PATH_MAX + 32];
    where_line(ctx, ctx->lineno, w, sizeof(w));
    ctx->sec = SEC_IGNORE;
    ctx->last_def = NULL;
    int sec = find_section(name);
    if (sec < 0) {
        const char *best = NULL;
        size_t best_d = 3;
        for (int s = 1; s < CONFIG_SEC_COUNT; s++) {
            size_t d = edit_distance(name, config_section_name((config_section_id)s));
            if (d < best_d) {
                best_d = d;
                best = config_section_name((config_section_id)s);
            }
        }
        char shown[80];
        name = printable(name, shown, sizeof(shown));
        if (best)
            report(ctx, CONFIG_DIAG_ERROR, "%s: unknown section [%s] (did you mean [%s%s%s]?)", w, name,
                   config_section_is_array((config_section_id)find_section(best)) ? "[" : "", best,
                   config_section_is_array((config_section_id)find_section(best)) ? "]" : "");
        else
            report(ctx, CONFIG_DIAG_ERROR, "%s: unknown section [%s]", w, name);
        return;
    }
    bool want_array = config_section_is_array((config_section_id)sec);
    if (want_array != array) {
        if (want_array)
            report(ctx, CONFIG_DIAG_ERROR, "%s: write [[%s]] (double brackets: each header opens one entry)",
                   w, config_section_name((config_section_id)sec));
        else
            report(ctx, CONFIG_DIAG_ERROR, "%s: write [%s] (single brackets: it is not a list of entries)", w,
                   config_section_name((config_section_id)sec));
        return;
    }
    switch (sec) {
    case CONFIG_SEC_DATABASES: {
        if (cfg->n_dbs >= CONFIG_MAX_DATABASES) {
            report(ctx, CONFIG_DIAG_ERROR, "%s: more than %d [[databases]] entries", w, CONFIG_MAX_DATABASES);
            return;
        }
        config_db *dbs = realloc(cfg->dbs, (cfg->n_dbs + 1) * sizeof(*dbs));
        if (!dbs) {
            ctx->oom = true;
            return;
        }
        cfg->dbs = dbs;
        memset(&dbs[cfg->n_dbs], 0, sizeof(*dbs));
        dbs[cfg->n_dbs].line = ctx->lineno;
        ctx->idx = cfg->n_dbs++;
        apply_defaults(ctx, CONFIG_SEC_DATABASES, &dbs[ctx->idx]);
        break;
    }
    case CONFIG_SEC_DATABASES_SCAN: {
        if (cfg->n_dbs == 0) {
            report(
                ctx, CONFIG_DIAG_ERROR,
                "%s: [databases.scan] before any [[databases]] (it belongs to the [[databases]] entry above "
                "it; use [scan] for every database)",
                w);
            return;
        }
        ctx->idx = cfg->n_dbs - 1;
        config_db *db = &cfg->dbs[ctx->idx];
        if (!db->own_scan) {
            db->own_scan = true;
            db->scan_line = ctx->lineno;
            apply_defaults(ctx, CONFIG_SEC_DATABASES_SCAN, &db->scan);
        }
        break;
    }
    case CONFIG_SEC_ALERTS_WEBHOOKS: {
        config_alerts *a = &cfg->alerts;
        if (a->n_webhooks >= CONFIG_MAX_WEBHOOKS) {
            report(ctx, CONFIG_DIAG_ERROR, "%s: more than %d [[alerts.webhooks]] entries", w,
                   CONFIG_MAX_WEBHOOKS);
            return;
        }
        config_webhook *p = realloc(a->webhooks, (a->n_webhooks + 1) * sizeof(*p));
        if (!p) {
            ctx->oom = true;
            return;
        }
        a->webhooks = p;
        memset(&p[a->n_webhooks], 0, sizeof(*p));
        p[a->n_webhooks].line = ctx->lineno;
        ctx->idx = a->n_webhooks++;
        apply_defaults(ctx, CONFIG_SEC_ALERTS_WEBHOOKS, &p[ctx->idx]);
        break;
    }
    case CONFIG_SEC_ALERTS_SLACK: {
        config_alerts *a = &cfg->alerts;
        if (a->n_slack >= CONFIG_MAX_SLACK) {
            report(ctx, CONFIG_DIAG_ERROR, "%s: more than %d [[alerts.slack]] entries", w, CONFIG_MAX_SLACK);
            return;
        }
        config_slack *p = realloc(a->slack, (a->n_slack + 1) * sizeof(*p));
        if (!p) {
            ctx->oom = true;
            return;
        }
        a->slack = p;
        memset(&p[a->n_slack], 0, sizeof(*p));
        p[a->n_slack].line = ctx->lineno;
        ctx->idx = a->n_slack++;
        apply_defaults(ctx, CONFIG_SEC_ALERTS_SLACK, &p[ctx->idx]);
        break;
    }
    default:
        ctx->idx = 0;
        if (!ctx->sec_line[sec])
            ctx->sec_line[sec] = ctx->lineno;
        break;
    }
    ctx->sec = (unsigned)sec;
}

static void classify_header(load_ctx *ctx, char *start)
{
    char w[PATH_MAX + 32];
    where_line(ctx, ctx->lineno, w, sizeof(w));
    bool array = start[1] == '[';
    char *name = start + (array ? 2 : 1);
    char *end = array ? strstr(name, "]]") : find_chars_or_comment(name, "]");
    ctx->kind = LINE_HEADER;
    ctx->last_def = NULL;
    if (!end || *end != ']') { /* inih keeps its section and previous key */
        report(ctx, CONFIG_DIAG_ERROR, "%s: section header without its closing %s", w, array ? "]]" : "]");
        ctx->kind = LINE_BAD;
        ctx->sec = SEC_IGNORE;
        ctx->syntax_errors++;
        return;
    }
    ctx->has_prev = false;
    char *rest = lskip(end + (array ? 2 : 1));
    *end = '\0';
    name = rstrip(lskip(name));
    if (*rest && *rest != ';' && *rest != '#') {
        report(ctx, CONFIG_DIAG_ERROR, "%s: unexpected text after the section header", w);
        ctx->sec = SEC_IGNORE;
        return;
    }
    begin_section(ctx, name, array);
}

/* Mirror inih's view of the line so the handler knows what it is looking at. */
static void classify(load_ctx *ctx, const char *line)
{
    char buf[INI_MAX_LINE];
    snprintf(buf, sizeof(buf), "%s", line);
    char *start = lskip(rstrip(buf));
    if (!*start || *start == ';' || *start == '#') {
        ctx->kind = LINE_BLANK;
    } else if (ctx->has_prev && start > buf) {
        ctx->kind = LINE_CONT;
    } else if (*start == '[') {
        classify_header(ctx, start);
    } else {
        char *end = find_chars_or_comment(start, "=:");
        if (*end == '=' || *end == ':') {
            ctx->kind = LINE_KEY;
            *end = '\0';
            ctx->has_prev = *rstrip(start) != '\0';
        } else {
            char w[PATH_MAX + 32];
            report(ctx, CONFIG_DIAG_ERROR, "%s: expected key = value",
                   where_line(ctx, ctx->lineno, w, sizeof(w)));
            ctx->kind = LINE_BAD;
            ctx->syntax_errors++;
        }
    }
}

/*
 * inih's reader: one physical line per call (getc, so a NUL byte or an
 * over-long line is seen exactly), counted for file:line; the line is then
 * classified so the handler knows headers and continuations.
 */
static char *read_line(char *str, int num, void *stream)
{
    load_ctx *ctx = stream;
    size_t len = 0, extra = 0;
    bool any = false, nul = false;
    int c;
    if (ctx->oom)
        return NULL;
    while ((c = getc(ctx->fp)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (c == '\0')
            nul = true;
        else if (len + 1 < (size_t)num)
            str[len++] = (char)c;
        else if (c != '\r')
            extra++;
    }
    if (c == EOF && ferror(ctx->fp))
        ctx->read_errno = errno;
    if (!any)
        return NULL;
    str[len] = '\0';
    ctx->lineno++;
    if (ctx->lineno == 1 && len >= 3 && memcmp(str, "\xEF\xBB\xBF", 3) == 0)
        memmove(str, str + 3, len - 2);
    char w[PATH_MAX + 32];
    if (extra > 0 || nul) {
        if (extra > 0)
            report(ctx, CONFIG_DIAG_ERROR,
                   "%s: line longer than %d characters (split a long list over indented continuation lines)",
                   where_line(ctx, ctx->lineno, w, sizeof(w)), INI_MAX_LINE - 1);
        else
            report(ctx, CONFIG_DIAG_ERROR, "%s: NUL byte in the line (is this a text file?)",
                   where_line(ctx, ctx->lineno, w, sizeof(w)));
        str[0] = '\0';
        ctx->kind = LINE_BLANK;
        ctx->last_def = NULL; /* its continuation lines are dropped, not misattributed */
        return str;
    }
    classify(ctx, str);
    return str;
}

/* ------------------------------------------------------------- handler */

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    load_ctx *ctx = user;
    (void)section; /* the reader tracks sections; inih sees [[x]] as "[x" */
    if (ctx->oom || ctx->sec == SEC_IGNORE)
        return 1;
    char w[PATH_MAX + 32];
    where_line(ctx, ctx->lineno, w, sizeof(w));
    char why[DIAG_TEXT_MAX];
    void *base = section_base(ctx->cfg, ctx->sec, ctx->idx);
    if (!base)
        return 1;
    if (ctx->kind == LINE_CONT) {
        if (!ctx->last_def)
            return 1;
        /* inih 55 strips " ;comment" from key lines only: do it for continuations too. */
        char cont[INI_MAX_LINE];
        snprintf(cont, sizeof(cont), "%s", value);
        *find_chars_or_comment(cont, NULL) = '\0';
        value = rstrip(cont);
        if (!*value)
            return 1;
        size_t vl = strlen(value);
        if (value[0] == '[' && value[vl - 1] == ']') {
            report(ctx, CONFIG_DIAG_ERROR,
                   "%s: indented section header reads as a continuation of %s; remove the indentation", w,
                   ctx->last_def->key);
            return 1;
        }
        if (ctx->last_def->type == CONFIG_T_LIST && strchr(value, '=')) {
            report(ctx, CONFIG_DIAG_ERROR,
                   "%s: indented \"key = value\" reads as more items of %s; remove the indentation", w,
                   ctx->last_def->key);
            return 1;
        }
        if (!set_value(ctx, ctx->last_def, base, value, SET_APPEND, why, sizeof(why)) && !ctx->oom)
            report(ctx, CONFIG_DIAG_ERROR, "%s: %s", w, why);
        return 1;
    }
    char lab[64];
    const config_key_def *def = find_key(ctx->sec, name);
    ctx->last_def = def;
    if (!*name) {
        report(ctx, CONFIG_DIAG_ERROR, "%s: missing key name before =", w);
        return 1;
    }
    if (!def) {
        char hint[128];
        key_hint(ctx->sec, name, hint, sizeof(hint));
        char shown[80];
        report(ctx, CONFIG_DIAG_ERROR, "%s: unknown key \"%s\" in %s%s", w,
               printable(name, shown, sizeof(shown)), section_label(ctx->sec, lab, sizeof(lab)), hint);
        return 1;
    }
    bool repeatable = def->type == CONFIG_T_HEADER || def->type == CONFIG_T_HEADER_FILE;
    seen_key *s = seen_find(ctx, ctx->sec, ctx->idx, def);
    if (s && !repeatable) {
        report(ctx, CONFIG_DIAG_ERROR, "%s: %s set twice in %s (first on line %u); keep one", w, def->key,
               section_label(ctx->sec, lab, sizeof(lab)), s->line);
        ctx->last_def = NULL;
        return 1;
    }
    if (!s) {
        s = seen_add(ctx, ctx->sec, ctx->idx, def);
        if (!s)
            return 1;
        s->line = ctx->lineno;
    }
    if (!set_value(ctx, def, base, value, SET_FIRST, why, sizeof(why)) && !ctx->oom) {
        report(ctx, CONFIG_DIAG_ERROR, "%s: %s", w, why);
        ctx->last_def = NULL;
    }
    return 1;
}

/* ---------------------------------------------------- env overrides */

/*
 * PGSENSE__SECTION[__INDEX][__SUB]__KEY=value, case-insensitive: parts are
 * joined with '.' into the section name, a numeric part is the entry index.
 */
static void apply_env_one(load_ctx *ctx, const char *var)
{
    const char *eq = strchr(var, '=');
    if (!eq)
        return;
    char name[ENV_NAME_MAX];
    size_t nlen = (size_t)(eq - var);
    if (nlen >= sizeof(name)) {
        report(ctx, CONFIG_DIAG_ERROR, "environment %.40s...: name too long", var);
        return;
    }
    memcpy(name, var, nlen);
    name[nlen] = '\0';
    const char *value = eq + 1;

    char lower[ENV_NAME_MAX];
    for (size_t i = 0; i <= nlen; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    char *parts[8];
    size_t np = 0;
    char *p = lower + strlen(ENV_PREFIX);
    for (;;) {
        char *sep = strstr(p, "__");
        if (np == 8 || !*p) {
            report(ctx, CONFIG_DIAG_ERROR,
                   "environment %s: malformed name (expected PGSENSE__SECTION__KEY, e.g. "
                   "PGSENSE__PIPELINE__STORE)",
                   name);
            return;
        }
        parts[np++] = p;
        if (!sep)
            break;
        *sep = '\0';
        p = sep + 2;
    }
    const char *key = parts[np - 1];
    char secname[ENV_NAME_MAX] = "";
    size_t pos = 0;
    long idx = -1;
    for (size_t i = 0; i + 1 < np; i++) {
        const char *q = parts[i];
        bool digits = *q != '\0';
        for (const char *c = q; *c; c++)
            if (!isdigit((unsigned char)*c))
                digits = false;
        if (digits) {
            if (idx >= 0 || strlen(q) > 6) {
                report(ctx, CONFIG_DIAG_ERROR, "environment %s: malformed entry index", name);
                return;
            }
            idx = strtol(q, NULL, 10);
            continue;
        }
        pos += (size_t)snprintf(secname + pos, sizeof(secname) - pos, "%s%s", pos ? "." : "", q);
        if (pos >= sizeof(secname))
            return;
    }
    int sec = np == 1 ? CONFIG_SEC_TOP : find_section(secname);
    if (sec < 0) {
        report(ctx, CONFIG_DIAG_ERROR, "environment %s: unknown section [%s]", name, secname);
        return;
    }
    bool indexed = sec == CONFIG_SEC_DATABASES || sec == CONFIG_SEC_DATABASES_SCAN ||
                   sec == CONFIG_SEC_ALERTS_WEBHOOKS || sec == CONFIG_SEC_ALERTS_SLACK;
    char lab[64];
    section_label(sec == CONFIG_SEC_DATABASES_SCAN ? CONFIG_SEC_DATABASES : (unsigned)sec, lab, sizeof(lab));
    if (indexed && idx < 0) {
        static const char *const example[CONFIG_SEC_COUNT] = {
            [CONFIG_SEC_DATABASES] = "PGSENSE__DATABASES__0__KEY",
            [CONFIG_SEC_DATABASES_SCAN] = "PGSENSE__DATABASES__0__SCAN__KEY",
            [CONFIG_SEC_ALERTS_WEBHOOKS] = "PGSENSE__ALERTS__WEBHOOKS__0__KEY",
            [CONFIG_SEC_ALERTS_SLACK] = "PGSENSE__ALERTS__SLACK__0__KEY",
        };
        report(ctx, CONFIG_DIAG_ERROR, "environment %s: %s needs an entry index, numbered from 0: %s", name,
               lab, example[sec]);
        return;
    }
    if (!indexed && idx >= 0) {
        report(ctx, CONFIG_DIAG_ERROR, "environment %s: %s has no entries to index", name, lab);
        return;
    }
    const config_key_def *def = find_key((unsigned)sec, key);
    if (!def) {
        char hint[128];
        key_hint((unsigned)sec, key, hint, sizeof(hint));
        report(ctx, CONFIG_DIAG_ERROR, "environment %s: unknown key \"%s\" in %s%s", name, key,
               section_label((unsigned)sec, lab, sizeof(lab)), hint);
        return;
    }
    size_t count = sec == CONFIG_SEC_ALERTS_WEBHOOKS ? ctx->cfg->alerts.n_webhooks
                   : sec == CONFIG_SEC_ALERTS_SLACK  ? ctx->cfg->alerts.n_slack
                                                     : ctx->cfg->n_dbs;
    if (indexed && (size_t)idx >= count) {
        report(
            ctx, CONFIG_DIAG_ERROR,
            "environment %s: no %s entry %ld (the file defines %zu, numbered from 0; the environment cannot "
            "add entries)",
            name, lab, idx, count);
        return;
    }
    size_t i = idx < 0 ? 0 : (size_t)idx;
    if (sec == CONFIG_SEC_DATABASES_SCAN && !ctx->cfg->dbs[i].own_scan) {
        ctx->cfg->dbs[i].own_scan = true; /* an override opens the entry's own [databases.scan] */
        apply_defaults(ctx, CONFIG_SEC_DATABASES_SCAN, &ctx->cfg->dbs[i].scan);
    }
    ctx->sec_env[sec] = true;
    seen_key *s = seen_add(ctx, (unsigned)sec, i, def);
    if (!s)
        return;
    s->line = 0;
    snprintf(s->env, sizeof(s->env), "%s", name);
    char why[DIAG_TEXT_MAX];
    if (!set_value(ctx, def, section_base(ctx->cfg, (unsigned)sec, i), value, SET_REPLACE, why,
                   sizeof(why)) &&
        !ctx->oom)
        report(ctx, CONFIG_DIAG_ERROR, "environment %s: %s", name, why);
}

static void apply_env(load_ctx *ctx, char **envp)
{
    for (size_t i = 0; envp && envp[i] && !ctx->oom; i++)
        if (strncmp(envp[i], ENV_PREFIX, strlen(ENV_PREFIX)) == 0)
            apply_env_one(ctx, envp[i]);
}

/* ------------------------------------------------------------ finalize */

/* password + password_file (or token + token_file): one of them; read the file. */
static void resolve_secret(load_ctx *ctx, unsigned sec, size_t idx, void *base, const char *lit_key,
                           const char *file_key, unsigned entry_line, const char *what)
{
    const config_key_def *fdef = find_key(sec, file_key);
    char **lit = FIELD(base, find_key(sec, lit_key), char *);
    char *file = *FIELD(base, fdef, char *);
    if (!file)
        return;
    char w1[PATH_MAX + 64], w2[PATH_MAX + 64];
    key_where(ctx, sec, idx, file_key, entry_line, w1, sizeof(w1));
    if (*lit) {
        key_where(ctx, sec, idx, lit_key, entry_line, w2, sizeof(w2));
        report(ctx, CONFIG_DIAG_ERROR, "%s: %s: both %s and %s are set (%s at %s); keep one", w1, what,
               lit_key, file_key, lit_key, w2);
        return;
    }
    char cause[160];
    if (!read_secret(file, lit, cause, sizeof(cause)))
        report(ctx, CONFIG_DIAG_ERROR, "%s: %s: %s \"%s\": cannot read: %s", w1, what, file_key, file, cause);
}

static bool set_default_name(load_ctx *ctx, char **slot, const char *base, size_t idx)
{
    char buf[CONFIG_NAME_MAX + 1];
    if (idx == 0)
        snprintf(buf, sizeof(buf), "%s", base);
    else
        snprintf(buf, sizeof(buf), "%s-%zu", base, idx + 1);
    *slot = ctx_strdup(ctx, buf);
    return *slot != NULL;
}

static void finalize_dbs(load_ctx *ctx)
{
    config *cfg = ctx->cfg;
    char w[PATH_MAX + 64], w2[PATH_MAX + 64];
    for (size_t i = 0; i < cfg->n_dbs && !ctx->oom; i++) {
        config_db *db = &cfg->dbs[i];
        where_line(ctx, db->line, w, sizeof(w));
        if (!db->dbname) {
            report(ctx, CONFIG_DIAG_ERROR, "%s: [[databases]] entry %zu has no dbname (add dbname = ...)", w,
                   i);
            continue;
        }
        if (!db->name) {
            if (!name_valid(db->dbname)) {
                report(
                    ctx, CONFIG_DIAG_ERROR,
                    "%s: invalid name \"%s\" (taken from dbname): add name = ... with 1 to %d of A-Z a-z 0-9 "
                    "_ . -",
                    w, db->dbname, CONFIG_NAME_MAX);
                continue;
            }
            db->name = ctx_strdup(ctx, db->dbname);
            if (!db->name)
                return;
        }
        char what[96];
        snprintf(what, sizeof(what), "database %s", db->name);
        resolve_secret(ctx, CONFIG_SEC_DATABASES, i, db, "password", "password_file", db->line, what);
        size_t n = strlen(db->host) + 1 + strlen(db->dbname) + 1;
        db->identity = malloc(n);
        if (!db->identity) {
            ctx->oom = true;
            return;
        }
        snprintf(db->identity, n, "%s/%s", db->host, db->dbname);
        if (config_slot_name(db->identity, db->slot) != 0)
            report(ctx, CONFIG_DIAG_ERROR, "%s: cannot compute the slot name (libcrypto SHA-256 failed)", w);
        if (!db->own_scan) {
            apply_defaults(ctx, CONFIG_SEC_DATABASES_SCAN, &db->scan);
            db->scan.scan_numeric = cfg->scan.scan_numeric;
            db->scan.primary_keys = cfg->scan.primary_keys;
            if (!list_copy(ctx, &db->scan.include_schemas, &cfg->scan.include_schemas) ||
                !list_copy(ctx, &db->scan.exclude_tables, &cfg->scan.exclude_tables) ||
                !list_copy(ctx, &db->scan.exclude_columns, &cfg->scan.exclude_columns))
                return;
        }
        for (size_t j = 0; j < i; j++) {
            config_db *o = &cfg->dbs[j];
            if (o->name && strcmp(o->name, db->name) == 0) {
                key_where(ctx, CONFIG_SEC_DATABASES, i, "name", db->line, w2, sizeof(w2));
                report(ctx, CONFIG_DIAG_ERROR,
                       "%s: duplicate database name \"%s\" (also the entry on line %u); names must be unique",
                       w2, db->name, o->line);
            }
            if (o->identity && strcmp(o->identity, db->identity) == 0)
                report(ctx, CONFIG_DIAG_ERROR,
                       "%s: duplicate identity %s: database %s has the same host/dbname as database %s on "
                       "line %u "
                       "(one entry per database: they would share a slot)",
                       w, db->identity, db->name, o->name ? o->name : "?", o->line);
        }
    }
}

typedef struct {
    const char *name;
    unsigned line;
} sink_name;

static void finalize_sinks(load_ctx *ctx)
{
    config_alerts *a = &ctx->cfg->alerts;
    char w[PATH_MAX + 64], what[96];

    bool jsonl_present = ctx->sec_line[CONFIG_SEC_ALERTS_JSONL] || ctx->sec_env[CONFIG_SEC_ALERTS_JSONL];
    a->jsonl.line = ctx->sec_line[CONFIG_SEC_ALERTS_JSONL];
    if (!jsonl_present)
        a->jsonl.enabled = false;
    if (a->jsonl.enabled && !a->jsonl.path)
        report(
            ctx, CONFIG_DIAG_ERROR,
            "%s: [alerts.jsonl] is enabled but has no path (add path = findings.jsonl, or enabled = false)",
            where_line(ctx, a->jsonl.line, w, sizeof(w)));

    for (size_t i = 0; i < a->n_webhooks && !ctx->oom; i++) {
        config_webhook *wh = &a->webhooks[i];
        if (!wh->name && !set_default_name(ctx, &wh->name, "webhook", i))
            return;
        if (!wh->url)
            report(ctx, CONFIG_DIAG_ERROR, "%s: webhook %s has no url (add url = https://...)",
                   where_line(ctx, wh->line, w, sizeof(w)), wh->name);
    }
    for (size_t i = 0; i < a->n_slack && !ctx->oom; i++) {
        config_slack *sl = &a->slack[i];
        if (!sl->name && !set_default_name(ctx, &sl->name, "slack", i))
            return;
        snprintf(what, sizeof(what), "slack %s", sl->name);
        resolve_secret(ctx, CONFIG_SEC_ALERTS_SLACK, i, sl, "token", "token_file", sl->line, what);
        where_line(ctx, sl->line, w, sizeof(w));
        if (!sl->token && !sl->token_file)
            report(ctx, CONFIG_DIAG_ERROR, "%s: slack %s has no token (add token_file = /path/to/token)", w,
                   sl->name);
        if (!sl->channel)
            report(ctx, CONFIG_DIAG_ERROR, "%s: slack %s has no channel (add channel = #alerts)", w,
                   sl->name);
    }

    config_pgsink *pg = &a->postgres;
    pg->line = ctx->sec_line[CONFIG_SEC_ALERTS_POSTGRES];
    if (!ctx->sec_line[CONFIG_SEC_ALERTS_POSTGRES] && !ctx->sec_env[CONFIG_SEC_ALERTS_POSTGRES])
        pg->enabled = false;
    if (pg->enabled) {
        resolve_secret(ctx, CONFIG_SEC_ALERTS_POSTGRES, 0, pg, "password", "password_file", pg->line,
                       "[alerts.postgres]");
        if (!pg->dbname)
            report(ctx, CONFIG_DIAG_ERROR,
                   "%s: [alerts.postgres] has no dbname (add dbname = ..., or enabled = false)",
                   where_line(ctx, pg->line, w, sizeof(w)));
    }

    /* Sink names are what rules route by: unique, and not a fixed sink's. */
    sink_name names[1 + CONFIG_MAX_WEBHOOKS + CONFIG_MAX_SLACK];
    size_t n = 0;
    if (jsonl_present && a->jsonl.name)
        names[n++] = (sink_name){a->jsonl.name, a->jsonl.line};
    for (size_t i = 0; i < a->n_webhooks; i++)
        if (a->webhooks[i].name)
            names[n++] = (sink_name){a->webhooks[i].name, a->webhooks[i].line};
    for (size_t i = 0; i < a->n_slack; i++)
        if (a->slack[i].name)
            names[n++] = (sink_name){a->slack[i].name, a->slack[i].line};
    static const char *const fixed[] = {"log", "stdout", "postgres"};
    for (size_t i = 0; i < n; i++) {
        where_line(ctx, names[i].line, w, sizeof(w));
        for (size_t f = 0; f < 3; f++)
            if (strcmp(names[i].name, fixed[f]) == 0)
                report(ctx, CONFIG_DIAG_ERROR,
                       "%s: sink name \"%s\" is reserved for [alerts.%s]; choose another", w, names[i].name,
                       fixed[f]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i].name, names[j].name) == 0)
                report(
                    ctx, CONFIG_DIAG_ERROR,
                    "%s: duplicate sink name \"%s\" (also the sink on line %u); set name = ... so rules can "
                    "route to each",
                    w, names[i].name, names[j].line);
    }
}

static void finalize(load_ctx *ctx)
{
    finalize_dbs(ctx);
    finalize_sinks(ctx);
    if (!ctx->oom && ctx->cfg->n_dbs == 0)
        report(ctx, CONFIG_DIAG_WARN, "%s: no [[databases]] entry: nothing to scan", ctx->cfg->path);
    if (!ctx->oom && !config_has_durable_sink(ctx->cfg))
        report(ctx, CONFIG_DIAG_WARN,
               "%s: no durable sink enabled ([alerts.jsonl] or [alerts.postgres]): findings are delivered at "
               "most "
               "once",
               ctx->cfg->path);
}

/* ---------------------------------------------------------------- API */

int config_load(const char *path, char **envp, config **out, config_diag *diag)
{
    load_ctx ctx = {0};
    int rc = -1;
    size_t errors_before = diag->errors;
    *out = NULL;
    ctx.diag = diag;
    ctx.sec = CONFIG_SEC_TOP;
    ctx.cfg = calloc(1, sizeof(config));
    if (!ctx.cfg) {
        diag->oom = true;
        diag->errors++;
        return -1;
    }
    ctx.cfg->path = ctx_strdup(&ctx, path);
    if (!ctx.cfg->path)
        goto done;
    ctx.fp = fopen(path, "re");
    if (!ctx.fp) {
        report(&ctx, CONFIG_DIAG_ERROR, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    /* The directory as named (a symlinked file keeps its link's directory). */
    char dirbuf[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dirbuf, sizeof(dirbuf), ".");
    else if (slash == path)
        snprintf(dirbuf, sizeof(dirbuf), "/");
    else
        snprintf(dirbuf, sizeof(dirbuf), "%.*s", (int)(slash - path), path);
    char *real = realpath(dirbuf, NULL);
    if (!real) {
        report(&ctx, CONFIG_DIAG_ERROR, "%s: cannot resolve its directory: %s", path, strerror(errno));
        goto done;
    }
    ctx.cfg->dir = real;

    for (unsigned s = 0; s < CONFIG_SEC_COUNT; s++)
        if (!config_section_is_array((config_section_id)s) && s != CONFIG_SEC_DATABASES_SCAN)
            apply_defaults(&ctx, s, section_base(ctx.cfg, s, 0));

    int r = ini_parse_stream(read_line, &ctx, on_key, &ctx);
    if (ferror(ctx.fp)) {
        report(&ctx, CONFIG_DIAG_ERROR, "%s: cannot read: %s", path, strerror(ctx.read_errno));
        goto done;
    }
    if (r > 0 && ctx.syntax_errors == 0 && !ctx.oom)
        report(&ctx, CONFIG_DIAG_ERROR, "%s:%d: syntax error", path, r);
    if (ctx.oom)
        goto done;
    apply_env(&ctx, envp);
    if (!ctx.oom)
        finalize(&ctx);
done:
    if (ctx.fp)
        fclose(ctx.fp);
    free(ctx.seen);
    if (ctx.oom)
        diag->oom = true;
    if (!ctx.oom && diag->errors == errors_before) {
        *out = ctx.cfg;
        rc = 0;
    } else {
        config_free(ctx.cfg);
    }
    return rc;
}

void config_free(config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        free_section(CONFIG_SEC_DATABASES, &cfg->dbs[i]);
        free_section(CONFIG_SEC_DATABASES_SCAN, &cfg->dbs[i].scan);
        free(cfg->dbs[i].identity);
    }
    free(cfg->dbs);
    for (size_t i = 0; i < cfg->alerts.n_webhooks; i++)
        free_section(CONFIG_SEC_ALERTS_WEBHOOKS, &cfg->alerts.webhooks[i]);
    free(cfg->alerts.webhooks);
    for (size_t i = 0; i < cfg->alerts.n_slack; i++)
        free_section(CONFIG_SEC_ALERTS_SLACK, &cfg->alerts.slack[i]);
    free(cfg->alerts.slack);
    for (unsigned s = 0; s < CONFIG_SEC_COUNT; s++)
        if (!config_section_is_array((config_section_id)s) && s != CONFIG_SEC_DATABASES_SCAN)
            free_section(s, section_base(cfg, s, 0));
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

int config_slot_name(const char *identity, char out[static CONFIG_SLOT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(identity, strlen(identity), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8) {
        out[0] = '\0';
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "pgsense_", 8);
    for (int i = 0; i < 8; i++) {
        out[8 + 2 * i] = hex[md[i] >> 4];
        out[9 + 2 * i] = hex[md[i] & 0xf];
    }
    out[CONFIG_SLOT_LEN] = '\0';
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool config_db_same_identity(const config_db *a, const config_db *b)
{
    return str_eq(a->identity, b->identity);
}

bool config_db_same_connection(const config_db *a, const config_db *b)
{
    return str_eq(a->host, b->host) && a->port == b->port && str_eq(a->dbname, b->dbname) &&
           str_eq(a->username, b->username) && str_eq(a->password, b->password) &&
           str_eq(a->publication, b->publication) && a->sslmode == b->sslmode &&
           str_eq(a->sslrootcert, b->sslrootcert) && str_eq(a->sslcert, b->sslcert) &&
           str_eq(a->sslkey, b->sslkey);
}

static bool list_equal(const config_list *a, const config_list *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    return true;
}

bool config_scan_equal(const config_scan *a, const config_scan *b)
{
    return list_equal(&a->include_schemas, &b->include_schemas) &&
           list_equal(&a->exclude_tables, &b->exclude_tables) &&
           list_equal(&a->exclude_columns, &b->exclude_columns) && a->scan_numeric == b->scan_numeric &&
           a->primary_keys == b->primary_keys;
}

const config_db *config_find_db(const config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_dbs; i++)
        if (str_eq(cfg->dbs[i].name, name))
            return &cfg->dbs[i];
    return NULL;
}

size_t config_sink_count(const config *cfg)
{
    const config_alerts *a = &cfg->alerts;
    return (size_t)a->log_sink.enabled + (size_t)a->stdout_sink.enabled + (size_t)a->jsonl.enabled +
           a->n_webhooks + a->n_slack + (size_t)a->postgres.enabled;
}

bool config_has_durable_sink(const config *cfg)
{
    const config_alerts *a = &cfg->alerts;
    if (a->jsonl.enabled || a->postgres.enabled)
        return true;
    for (size_t i = 0; i < a->n_webhooks; i++)
        if (a->webhooks[i].durable)
            return true;
    return false;
}

bool config_sink_exists(const config *cfg, const char *name)
{
    const config_alerts *a = &cfg->alerts;
    if ((a->log_sink.enabled && strcmp(name, "log") == 0) || (a->stdout_sink.enabled && strcmp(name, "stdout") == 0))
        return true;
    if (a->jsonl.enabled && a->jsonl.name && strcmp(name, a->jsonl.name) == 0)
        return true;
    if (a->postgres.enabled && strcmp(name, "postgres") == 0)
        return true;
    for (size_t i = 0; i < a->n_webhooks; i++)
        if (strcmp(name, a->webhooks[i].name) == 0)
            return true;
    for (size_t i = 0; i < a->n_slack; i++)
        if (strcmp(name, a->slack[i].name) == 0)
            return true;
    return false;
}
