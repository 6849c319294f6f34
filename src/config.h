/*
 * config: loads pgsense.ini (SPEC section 3) into a config struct, driven by
 * one static table of keys; owns parsing, defaults, *_file secrets, env
 * overrides and validation. It never connects, logs or opens a sink.
 */
#ifndef PGSENSE_CONFIG_H_INCLUDED
#define PGSENSE_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Bounds: a file past them is rejected with file:line, never truncated. */
#define CONFIG_MAX_DATABASES 256  /* [[databases]] entries */
#define CONFIG_MAX_WEBHOOKS  64   /* [[alerts.webhooks]] entries */
#define CONFIG_MAX_SLACK     64   /* [[alerts.slack]] entries */
#define CONFIG_MAX_LIST      1024 /* items of one list key */
#define CONFIG_MAX_HEADERS   32   /* header + header_file lines of one webhook */
#define CONFIG_MAX_SECRET    8192 /* bytes of a *_file secret */
#define CONFIG_MAX_DIAG      100  /* diagnostics kept; then one "more" line */
#define CONFIG_NAME_MAX      63   /* names: [A-Za-z0-9_.-]{1,63} */
#define CONFIG_SLOT_LEN      24   /* "pgsense_" + 16 hex digits */

/*
 * File rules (conf/pgsense.ini shows them all):
 * - Sections and keys match case-insensitively; values are literal (no
 *   quotes); " ;" starts a trailing comment; a line holds at most 199
 *   characters (inih's buffer), longer lines are errors.
 * - An indented line continues the previous key: list keys get more items,
 *   header/header_file one more header each; for any other key it is an
 *   error (no concatenation). A key set twice in one section or entry is an
 *   error naming both lines; only header and header_file repeat.
 * - [[databases]], [[alerts.webhooks]], [[alerts.slack]] open one entry per
 *   header; [databases.scan] belongs to the [[databases]] entry above it and
 *   replaces [scan] for it wholesale (an empty one means "scan everything").
 * - [alerts.jsonl] and [alerts.postgres] are enabled when present.
 * - Relative paths (path, *_file, rules_file, [log] dir, ssl* files, also
 *   from the environment) are relative to the config file's directory.
 * - PGSENSE__SECTION[__INDEX][__SUB]__KEY environment variables override the
 *   file (lists are replaced, not appended; an index addresses an existing
 *   entry, numbered from 0; PGSENSE__DATABASES__0__SCAN__KEY opens that
 *   entry's own scan).
 */

/* ---- the table of keys ---- */

typedef enum {
    CONFIG_SEC_TOP,             /* keys before any section: rules_file */
    CONFIG_SEC_DATABASES,       /* [[databases]] */
    CONFIG_SEC_DATABASES_SCAN,  /* [databases.scan], belongs to the last [[databases]] */
    CONFIG_SEC_SCAN,            /* [scan] */
    CONFIG_SEC_PIPELINE,        /* [pipeline] */
    CONFIG_SEC_ALERTS,          /* [alerts] */
    CONFIG_SEC_ALERTS_LOG,      /* [alerts.log] */
    CONFIG_SEC_ALERTS_STDOUT,   /* [alerts.stdout] */
    CONFIG_SEC_ALERTS_JSONL,    /* [alerts.jsonl] */
    CONFIG_SEC_ALERTS_WEBHOOKS, /* [[alerts.webhooks]] */
    CONFIG_SEC_ALERTS_SLACK,    /* [[alerts.slack]] */
    CONFIG_SEC_ALERTS_POSTGRES, /* [alerts.postgres] */
    CONFIG_SEC_SERVER,          /* [server] */
    CONFIG_SEC_LOG,             /* [log] */
    CONFIG_SEC_COUNT,
} config_section_id;

typedef enum {
    CONFIG_T_STRING,      /* any non-empty text */
    CONFIG_T_NAME,        /* [A-Za-z0-9_.-]{1,63} */
    CONFIG_T_INT,         /* decimal integer in [min, max], stored as int */
    CONFIG_T_SIZE,        /* bytes, stored as uint64_t: 1048576, 1024kB, 8MB, 1GB, 1TB (x1024) */
    CONFIG_T_BOOL,        /* true/false/yes/no/on/off/1/0, stored as bool */
    CONFIG_T_ENUM,        /* one of enum_names, stored as int (index) */
    CONFIG_T_LIST,        /* comma-separated (globs); indented lines append; config_list */
    CONFIG_T_PATH,        /* relative to the config file's directory; stored absolute */
    CONFIG_T_SECRET,      /* literal secret: never logged nor quoted in an error */
    CONFIG_T_SECRET_FILE, /* path; its content (trailing whitespace stripped) fills secret_offset */
    CONFIG_T_URL,         /* http:// or https://; never quoted (may hold a token) */
    CONFIG_T_LISTEN,      /* host:port or [v6]:port */
    CONFIG_T_HEADER,      /* "Name: value", repeatable, indented lines add more; config_headers */
    CONFIG_T_HEADER_FILE, /* "Name: /path", repeatable; value read from the file at load */
} config_type;

/* What a SIGHUP does when the key changed (SPEC section 2, reload table). */
typedef enum {
    CONFIG_RELOAD_LIVE,    /* applied live (rules, scan filters, dedup, log level) */
    CONFIG_RELOAD_WORKER,  /* the affected workers stop, then start again */
    CONFIG_RELOAD_SINK,    /* the sink is reopened with the new settings */
    CONFIG_RELOAD_RESTART, /* needs a restart: WARN, old value kept */
} config_reload;

#define CONFIG_F_DERIVED 0x1u /* default computed at load (def is documentation only) */

typedef struct config_key_def {
    config_section_id section;
    const char *key;
    config_type type;
    const char *def; /* default as one would write it; NULL: unset */
    config_reload reload;
    const char *doc;               /* one line for docs and `validate` */
    size_t offset;                 /* into the section's struct (see config_section_struct) */
    size_t secret_offset;          /* SECRET_FILE: the char * receiving the content */
    long long min, max;            /* INT, SIZE */
    const char *const *enum_names; /* ENUM: NULL-terminated; the index is stored */
    unsigned flags;                /* CONFIG_F_* */
} config_key_def;

/* The whole table, in file order; read-only, static storage. */
const config_key_def *config_keys(size_t *n);
/* "databases.scan", "" for CONFIG_SEC_TOP. */
const char *config_section_name(config_section_id sec);
/* Whether the section is written [[name]] (one entry per header). */
bool config_section_is_array(config_section_id sec);
const char *config_type_name(config_type t);
/* true unless the key needs a restart. */
bool config_key_reloadable(const config_key_def *def);

/* ---- the loaded configuration ---- */

typedef struct {
    char **items; /* NUL-terminated strings */
    size_t n;
} config_list;

typedef enum {
    CONFIG_PK_OMIT_MATCHING, /* leave out the key columns whose value matches a rule */
    CONFIG_PK_OMIT,          /* leave out every key column */
} config_pk_mode;

typedef struct config_scan {
    config_list include_schemas; /* empty: every schema */
    config_list exclude_tables;  /* globs on table names */
    config_list exclude_columns; /* globs on column names */
    bool scan_numeric;
    int primary_keys; /* config_pk_mode */
} config_scan;

typedef enum {
    CONFIG_SSL_DISABLE,
    CONFIG_SSL_ALLOW,
    CONFIG_SSL_PREFER, /* libpq's default, and ours */
    CONFIG_SSL_REQUIRE,
    CONFIG_SSL_VERIFY_CA,
    CONFIG_SSL_VERIFY_FULL,
} config_sslmode;

/* libpq's spelling of an sslmode ("verify-full"). */
const char *config_sslmode_name(int sslmode);

typedef struct config_db {
    char *name;                           /* default: dbname */
    char *host;                           /* default localhost; may be a socket directory */
    int port;                             /* default 5432 */
    char *dbname;                         /* required */
    char *username;                       /* NULL: libpq's default */
    char *password;                       /* secret: password or password_file content; NULL: libpq's own */
    char *password_file;                  /* absolute path or NULL */
    char *publication;                    /* default pgsense_pub */
    int sslmode;                          /* config_sslmode, default prefer */
    char *sslrootcert, *sslcert, *sslkey; /* absolute paths or NULL */

    config_scan scan;   /* effective: own [databases.scan], else a copy of [scan] */
    bool own_scan;      /* true when the entry had its own [databases.scan] */
    unsigned scan_line; /* line of its [databases.scan] header, 0 if none */

    char *identity;                 /* "host/dbname" */
    char slot[CONFIG_SLOT_LEN + 1]; /* pgsense_ + 16 hex of SHA-256(identity) */
    unsigned line;                  /* line of its [[databases]] header */
} config_db;

typedef struct {
    char *name;  /* header name, e.g. "Authorization" */
    char *value; /* secret-ish: never logged */
    char *file;  /* absolute path when it came from header_file, else NULL */
} config_header;

typedef struct {
    config_header *items;
    size_t n;
} config_headers;

typedef struct {
    bool enabled;
} config_sink_toggle;

/* [alerts.jsonl] and [alerts.postgres] are on when their section is present
 * (in the file or through an environment override) unless enabled = false. */
typedef struct {
    bool enabled;
    char *name; /* default "jsonl" */
    char *path; /* absolute */
    unsigned line;
} config_jsonl;

typedef struct {
    char *name; /* default webhook, webhook-2, ... by position */
    char *url;  /* required; may hold a token: never logged */
    int timeout_ms;
    bool durable; /* true: acknowledged only after a 2xx, counts as a durable sink */
    config_headers headers;
    unsigned line;
} config_webhook;

typedef struct {
    char *name;  /* default slack, slack-2, ... by position */
    char *token; /* secret: token or token_file content; required */
    char *token_file;
    char *channel;               /* required */
    char *username, *icon_emoji; /* NULL: Slack's defaults */
    int batch_size, batch_window_ms, max_retries;
    char *api_url;
    unsigned line;
} config_slack;

typedef struct {
    bool enabled;
    char *host;
    int port;
    char *dbname; /* required when enabled */
    char *username;
    char *password; /* secret */
    char *password_file;
    char *schema, *table;
    int sslmode; /* config_sslmode */
    unsigned line;
} config_pgsink;

typedef struct {
    int dedup_window_seconds; /* 0 disables dedup */
    int dedup_max_entries;
    config_sink_toggle log_sink;    /* [alerts.log], on by default */
    config_sink_toggle stdout_sink; /* [alerts.stdout], off by default */
    config_jsonl jsonl;
    config_webhook *webhooks;
    size_t n_webhooks;
    config_slack *slack;
    size_t n_slack;
    config_pgsink postgres;
} config_alerts;

typedef enum { CONFIG_STORE_MEMORY, CONFIG_STORE_POSTGRES } config_store;
typedef enum { CONFIG_SLOT_LOST_FAIL, CONFIG_SLOT_LOST_RECREATE } config_slot_lost;

typedef struct {
    int store; /* config_store */
    int snapshot_connections;
    int publication_poll_s;
    uint64_t max_retained_wal; /* bytes, 0: unlimited */
    int on_slot_lost;          /* config_slot_lost */
    uint64_t credit_bytes;
} config_pipeline;

typedef struct {
    bool enabled;
    char *listen; /* "127.0.0.1:9187" */
} config_server;

typedef struct {
    char *dir;  /* absolute */
    int level;  /* log_level (log.h): debug, info, warn, error */
    int format; /* log_format (log.h): console, json */
} config_log;

typedef struct config {
    char *path;       /* the file as given */
    char *dir;        /* absolute directory of the file */
    char *rules_file; /* absolute; default <dir>/rules.yaml */
    config_db *dbs;
    size_t n_dbs;
    config_scan scan; /* [scan]: the default for entries without [databases.scan] */
    config_pipeline pipeline;
    config_alerts alerts;
    config_server server;
    config_log log;
} config;

/* ---- diagnostics ---- */

typedef enum { CONFIG_DIAG_ERROR, CONFIG_DIAG_WARN } config_severity;

typedef struct {
    config_severity severity;
    char *text; /* "FILE:LINE: message", "environment PGSENSE__X: message" or "FILE: message" */
} config_diag_item;

typedef struct config_diag {
    config_diag_item *items;
    size_t n, cap;
    size_t errors, warnings; /* counted even past CONFIG_MAX_DIAG */
    bool oom;                /* an item could not be stored */
} config_diag;

void config_diag_init(config_diag *d);
void config_diag_free(config_diag *d);
/* One line each: "[ERROR] text" / "[WARN] text"; errors first. */
void config_diag_print(const config_diag *d, FILE *out);

/* ---- loading ---- */

/*
 * Load path, apply PGSENSE__* overrides from envp (NULL: none) and validate.
 * Every error and warning goes to diag (initialised by the caller). Returns
 * 0 with *out set when there is no error (warnings allowed), -1 with *out
 * NULL otherwise. Secrets never appear in diag.
 */
__attribute__((warn_unused_result)) int config_load(const char *path, char **envp, config **out,
                                                    config_diag *diag);
void config_free(config *cfg);

/* "pgsense_" + first 16 hex digits of SHA-256(identity). 0, or -1 on a libcrypto failure. */
__attribute__((warn_unused_result)) int config_slot_name(const char *identity,
                                                         char out[static CONFIG_SLOT_LEN + 1]);

/* For reload: same host and dbname (so the same slot). */
bool config_db_same_identity(const config_db *a, const config_db *b);
/* For reload: every connection key equal, secret contents included. */
bool config_db_same_connection(const config_db *a, const config_db *b);
/* For reload: filters equal item by item. */
bool config_scan_equal(const config_scan *a, const config_scan *b);
const config_db *config_find_db(const config *cfg, const char *name);

/* Enabled sinks: log, stdout, jsonl, each webhook and slack, postgres. */
size_t config_sink_count(const config *cfg);
/* Whether some enabled sink is durable (jsonl, postgres, a durable webhook). */
bool config_has_durable_sink(const config *cfg);
/* Whether an enabled sink has this name ("log", "stdout", the jsonl name, "postgres", a webhook or slack name). */
bool config_sink_exists(const config *cfg, const char *name);

#endif /* PGSENSE_CONFIG_H_INCLUDED */
