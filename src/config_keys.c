/*
 * config_keys: the one table describing every pgsense.ini key (SPEC section
 * 3). The loader, defaults, validation, freeing and docs all read it.
 */
#include <stddef.h>

#include "config.h"

static const char *const sslmode_names[] = {"disable",   "allow",       "prefer", "require",
                                            "verify-ca", "verify-full", NULL};
static const char *const pk_names[] = {"omit_matching", "omit", NULL};
static const char *const store_names[] = {"memory", "postgres", NULL};
static const char *const slot_lost_names[] = {"fail", "recreate", NULL};
/* Same order as log_level and log_format in log.h (checked in config.c). */
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_names[] = {"console", "json", NULL};

#define KEY(sec, k, t, d, rl, st, field, doc_)                                                               \
    {                                                                                                        \
        .section = CONFIG_SEC_##sec, .key = (k), .type = CONFIG_T_##t, .def = (d),                           \
        .reload = CONFIG_RELOAD_##rl, .doc = (doc_), .offset = offsetof(st, field)                           \
    }
#define KEY_DERIVED(sec, k, t, d, rl, st, field, doc_)                                                       \
    {                                                                                                        \
        .section = CONFIG_SEC_##sec, .key = (k), .type = CONFIG_T_##t, .def = (d),                           \
        .reload = CONFIG_RELOAD_##rl, .doc = (doc_), .offset = offsetof(st, field),                          \
        .flags = CONFIG_F_DERIVED                                                                            \
    }
#define KEY_INT(sec, k, t, d, rl, st, field, lo, hi, doc_)                                                   \
    {                                                                                                        \
        .section = CONFIG_SEC_##sec, .key = (k), .type = CONFIG_T_##t, .def = (d),                           \
        .reload = CONFIG_RELOAD_##rl, .doc = (doc_), .offset = offsetof(st, field), .min = (lo), .max = (hi) \
    }
#define KEY_ENUM(sec, k, d, rl, st, field, names, doc_)                                                      \
    {                                                                                                        \
        .section = CONFIG_SEC_##sec, .key = (k), .type = CONFIG_T_ENUM, .def = (d),                          \
        .reload = CONFIG_RELOAD_##rl, .doc = (doc_), .offset = offsetof(st, field), .enum_names = (names)    \
    }
#define KEY_SECRET_FILE(sec, k, rl, st, field, secret, doc_)                                                 \
    {                                                                                                        \
        .section = CONFIG_SEC_##sec, .key = (k), .type = CONFIG_T_SECRET_FILE, .def = NULL,                  \
        .reload = CONFIG_RELOAD_##rl, .doc = (doc_), .offset = offsetof(st, field),                          \
        .secret_offset = offsetof(st, secret)                                                                \
    }

/* The scan keys, shared by [scan] and [databases.scan]. */
#define SCAN_KEYS(sec)                                                                                       \
    KEY(sec, "include_schemas", LIST, NULL, LIVE, config_scan, include_schemas,                              \
        "schemas to scan, comma-separated globs; empty: every schema"),                                      \
        KEY(sec, "exclude_tables", LIST, NULL, LIVE, config_scan, exclude_tables,                            \
            "tables never scanned, comma-separated globs"),                                                  \
        KEY(sec, "exclude_columns", LIST, NULL, LIVE, config_scan, exclude_columns,                          \
            "columns never scanned, comma-separated globs"),                                                 \
        KEY(sec, "scan_numeric", BOOL, "false", LIVE, config_scan, scan_numeric,                             \
            "also scan int/float/numeric/oid columns"),                                                      \
        KEY_ENUM(sec, "primary_keys", "omit_matching", LIVE, config_scan, primary_keys, pk_names,            \
                 "key columns in findings: omit_matching leaves out those matching a rule, omit all")

#define MiB (1024LL * 1024)

static const config_key_def keys[] = {
    KEY(TOP, "rules_file", PATH, "rules.yaml", LIVE, config, rules_file, "rules file (rules.yaml)"),

    KEY_DERIVED(DATABASES, "name", NAME, "dbname", WORKER, config_db, name,
                "worker name, [A-Za-z0-9_.-]{1,63}, unique"),
    KEY(DATABASES, "host", STRING, "localhost", WORKER, config_db, host,
        "host name, IP or unix socket directory; with dbname the identity (so the slot)"),
    KEY_INT(DATABASES, "port", INT, "5432", WORKER, config_db, port, 1, 65535, "server port"),
    KEY(DATABASES, "dbname", STRING, NULL, WORKER, config_db, dbname, "database name (required)"),
    KEY(DATABASES, "username", STRING, NULL, WORKER, config_db, username,
        "role with REPLICATION; default: libpq's"),
    KEY(DATABASES, "password", SECRET, NULL, WORKER, config_db, password,
        "password; prefer password_file (or libpq's PGPASSFILE/.pgpass)"),
    KEY_SECRET_FILE(DATABASES, "password_file", WORKER, config_db, password_file, password,
                    "file holding the password (trailing whitespace stripped)"),
    KEY(DATABASES, "publication", STRING, "pgsense_pub", WORKER, config_db, publication,
        "publication to read"),
    KEY_ENUM(DATABASES, "sslmode", "prefer", WORKER, config_db, sslmode, sslmode_names, "libpq sslmode"),
    KEY(DATABASES, "sslrootcert", PATH, NULL, WORKER, config_db, sslrootcert, "libpq sslrootcert"),
    KEY(DATABASES, "sslcert", PATH, NULL, WORKER, config_db, sslcert, "libpq sslcert"),
    KEY(DATABASES, "sslkey", PATH, NULL, WORKER, config_db, sslkey, "libpq sslkey"),

    SCAN_KEYS(DATABASES_SCAN),
    SCAN_KEYS(SCAN),

    KEY_ENUM(PIPELINE, "store", "memory", RESTART, config_pipeline, store, store_names,
             "where replication state lives: memory or postgres (etl schema)"),
    KEY_INT(PIPELINE, "snapshot_connections", INT, "2", WORKER, config_pipeline, snapshot_connections, 1, 32,
            "COPY connections per database during a snapshot"),
    KEY_INT(PIPELINE, "publication_poll_s", INT, "60", WORKER, config_pipeline, publication_poll_s, 1, 86400,
            "seconds between checks for tables added to the publication"),
    KEY_INT(PIPELINE, "max_retained_wal", SIZE, "0", WORKER, config_pipeline, max_retained_wal, 0, 1LL << 50,
            "bytes of WAL a slot may retain before moving on (kB/MB/GB/TB); 0: unlimited"),
    KEY_ENUM(PIPELINE, "on_slot_lost", "fail", WORKER, config_pipeline, on_slot_lost, slot_lost_names,
             "a lost slot: fail (state failed) or recreate (new slot, full snapshot)"),
    KEY_INT(PIPELINE, "credit_bytes", SIZE, "8388608", WORKER, config_pipeline, credit_bytes, MiB, 1024 * MiB,
            "unacknowledged finding bytes per worker (at least 1MB, one frame)"),

    KEY_INT(ALERTS, "dedup_window_seconds", INT, "300", LIVE, config_alerts, dedup_window_seconds, 0, 604800,
            "a repeated finding within this window is suppressed; 0 disables dedup"),
    KEY_INT(ALERTS, "dedup_max_entries", INT, "100000", LIVE, config_alerts, dedup_max_entries, 1, 100000000,
            "findings remembered for dedup"),

    KEY(ALERTS_LOG, "enabled", BOOL, "true", SINK, config_sink_toggle, enabled,
        "findings in the supervisor log"),
    KEY(ALERTS_STDOUT, "enabled", BOOL, "false", SINK, config_sink_toggle, enabled,
        "findings as JSON lines on stdout"),

    KEY(ALERTS_JSONL, "enabled", BOOL, "true", SINK, config_jsonl, enabled,
        "durable JSON-lines file; on when the section is present"),
    KEY(ALERTS_JSONL, "name", NAME, "jsonl", SINK, config_jsonl, name, "sink name for rule channels"),
    KEY(ALERTS_JSONL, "path", PATH, NULL, SINK, config_jsonl, path, "file to append to (required)"),

    KEY_DERIVED(ALERTS_WEBHOOKS, "name", NAME, "webhook, webhook-2, ...", SINK, config_webhook, name,
                "sink name for rule channels"),
    KEY(ALERTS_WEBHOOKS, "url", URL, NULL, SINK, config_webhook, url,
        "http(s) URL to POST findings to (required)"),
    KEY_INT(ALERTS_WEBHOOKS, "timeout_ms", INT, "5000", SINK, config_webhook, timeout_ms, 100, 600000,
            "request timeout"),
    KEY(ALERTS_WEBHOOKS, "durable", BOOL, "false", SINK, config_webhook, durable,
        "true: findings are acknowledged only after a 2xx answer"),
    KEY(ALERTS_WEBHOOKS, "header", HEADER, NULL, SINK, config_webhook, headers,
        "Name: value, repeatable; indented lines add more"),
    KEY(ALERTS_WEBHOOKS, "header_file", HEADER_FILE, NULL, SINK, config_webhook, headers,
        "Name: /path, repeatable; the value is read from the file"),

    KEY_DERIVED(ALERTS_SLACK, "name", NAME, "slack, slack-2, ...", SINK, config_slack, name,
                "sink name for rule channels"),
    KEY(ALERTS_SLACK, "token", SECRET, NULL, SINK, config_slack, token, "bot token; prefer token_file"),
    KEY_SECRET_FILE(ALERTS_SLACK, "token_file", SINK, config_slack, token_file, token,
                    "file holding the token"),
    KEY(ALERTS_SLACK, "channel", STRING, NULL, SINK, config_slack, channel, "channel to post to (required)"),
    KEY(ALERTS_SLACK, "username", STRING, NULL, SINK, config_slack, username, "bot display name"),
    KEY(ALERTS_SLACK, "icon_emoji", STRING, NULL, SINK, config_slack, icon_emoji, "bot icon, e.g. :lock:"),
    KEY_INT(ALERTS_SLACK, "batch_size", INT, "20", SINK, config_slack, batch_size, 1, 1000,
            "findings per message"),
    KEY_INT(ALERTS_SLACK, "batch_window_ms", INT, "2000", SINK, config_slack, batch_window_ms, 0, 600000,
            "wait this long to fill a batch"),
    KEY_INT(ALERTS_SLACK, "max_retries", INT, "3", SINK, config_slack, max_retries, 0, 100,
            "retries of a failed post"),
    KEY(ALERTS_SLACK, "api_url", URL, "https://slack.com/api", SINK, config_slack, api_url,
        "Slack Web API base"),

    KEY(ALERTS_POSTGRES, "enabled", BOOL, "true", SINK, config_pgsink, enabled,
        "durable table sink; on when the section is present"),
    KEY(ALERTS_POSTGRES, "host", STRING, "localhost", SINK, config_pgsink, host, "server host"),
    KEY_INT(ALERTS_POSTGRES, "port", INT, "5432", SINK, config_pgsink, port, 1, 65535, "server port"),
    KEY(ALERTS_POSTGRES, "dbname", STRING, NULL, SINK, config_pgsink, dbname, "database (required)"),
    KEY(ALERTS_POSTGRES, "username", STRING, NULL, SINK, config_pgsink, username, "role; default: libpq's"),
    KEY(ALERTS_POSTGRES, "password", SECRET, NULL, SINK, config_pgsink, password,
        "password; prefer password_file"),
    KEY_SECRET_FILE(ALERTS_POSTGRES, "password_file", SINK, config_pgsink, password_file, password,
                    "file holding the password"),
    KEY(ALERTS_POSTGRES, "schema", STRING, "pgsense", SINK, config_pgsink, schema,
        "schema of the findings table"),
    KEY(ALERTS_POSTGRES, "table", STRING, "findings", SINK, config_pgsink, table, "findings table"),
    KEY_ENUM(ALERTS_POSTGRES, "sslmode", "prefer", SINK, config_pgsink, sslmode, sslmode_names,
             "libpq sslmode"),

    KEY(SERVER, "enabled", BOOL, "false", RESTART, config_server, enabled, "HTTP /health, /ready, /metrics"),
    KEY(SERVER, "listen", LISTEN, "127.0.0.1:9187", RESTART, config_server, listen, "host:port to listen on"),

    KEY(LOG, "dir", PATH, "log", RESTART, config_log, dir,
        "supervisor.log, worker-<name>.log and status.json go here"),
    KEY_ENUM(LOG, "level", "info", LIVE, config_log, level, level_names, "debug, info, warn or error"),
    KEY_ENUM(LOG, "format", "console", LIVE, config_log, format, format_names, "console or json"),
};

static const struct {
    const char *name;
    bool array;
} sections[CONFIG_SEC_COUNT] = {
    [CONFIG_SEC_TOP] = {"", false},
    [CONFIG_SEC_DATABASES] = {"databases", true},
    [CONFIG_SEC_DATABASES_SCAN] = {"databases.scan", false},
    [CONFIG_SEC_SCAN] = {"scan", false},
    [CONFIG_SEC_PIPELINE] = {"pipeline", false},
    [CONFIG_SEC_ALERTS] = {"alerts", false},
    [CONFIG_SEC_ALERTS_LOG] = {"alerts.log", false},
    [CONFIG_SEC_ALERTS_STDOUT] = {"alerts.stdout", false},
    [CONFIG_SEC_ALERTS_JSONL] = {"alerts.jsonl", false},
    [CONFIG_SEC_ALERTS_WEBHOOKS] = {"alerts.webhooks", true},
    [CONFIG_SEC_ALERTS_SLACK] = {"alerts.slack", true},
    [CONFIG_SEC_ALERTS_POSTGRES] = {"alerts.postgres", false},
    [CONFIG_SEC_SERVER] = {"server", false},
    [CONFIG_SEC_LOG] = {"log", false},
};

const config_key_def *config_keys(size_t *n)
{
    *n = sizeof(keys) / sizeof(keys[0]);
    return keys;
}

const char *config_section_name(config_section_id sec)
{
    if ((unsigned)sec >= CONFIG_SEC_COUNT)
        return "?";
    return sections[sec].name;
}

bool config_section_is_array(config_section_id sec)
{
    return (unsigned)sec < CONFIG_SEC_COUNT && sections[sec].array;
}

const char *config_type_name(config_type t)
{
    static const char *const names[] = {
        [CONFIG_T_STRING] = "string", [CONFIG_T_NAME] = "name",
        [CONFIG_T_INT] = "int",       [CONFIG_T_SIZE] = "size",
        [CONFIG_T_BOOL] = "bool",     [CONFIG_T_ENUM] = "enum",
        [CONFIG_T_LIST] = "list",     [CONFIG_T_PATH] = "path",
        [CONFIG_T_SECRET] = "secret", [CONFIG_T_SECRET_FILE] = "secret file",
        [CONFIG_T_URL] = "url",       [CONFIG_T_LISTEN] = "host:port",
        [CONFIG_T_HEADER] = "header", [CONFIG_T_HEADER_FILE] = "header file",
    };
    if ((unsigned)t >= sizeof(names) / sizeof(names[0]) || !names[t])
        return "?";
    return names[t];
}

bool config_key_reloadable(const config_key_def *def)
{
    return def->reload != CONFIG_RELOAD_RESTART;
}

const char *config_sslmode_name(int sslmode)
{
    if (sslmode < 0 || sslmode > CONFIG_SSL_VERIFY_FULL)
        return "prefer";
    return sslmode_names[sslmode];
}
