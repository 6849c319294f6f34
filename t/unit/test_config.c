/* Unit tests for src/config.c: table, defaults, entries, continuations, secrets, env, every error with
 * file:line. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define DATA TEST_DATA_DIR "/config/"

static config_diag diag;
static config *cfg;
static char cfg_path[PATH_MAX];
static char data_dir[PATH_MAX]; /* realpath of DATA, as the loader resolves it */

static void setup(void)
{
    config_diag_init(&diag);
    cfg = NULL;
    cr_assert_not_null(realpath(TEST_DATA_DIR "/config", data_dir));
}

static void teardown(void)
{
    config_free(cfg);
    config_diag_free(&diag);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Load a fixture; returns config_load's result. */
static int load_env(const char *name, char **envp)
{
    snprintf(cfg_path, sizeof(cfg_path), DATA "%s", name);
    return config_load(cfg_path, envp, &cfg, &diag);
}

static int load(const char *name)
{
    return load_env(name, NULL);
}

static void dump(void)
{
    config_diag_print(&diag, stderr);
}

/* Whether some diagnostic of severity sev contains the formatted text. */
static bool has(config_severity sev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool has(config_severity sev, const char *fmt, ...)
{
    char want[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof(want), fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < diag.n; i++)
        if (diag.items[i].severity == sev && strstr(diag.items[i].text, want))
            return true;
    return false;
}

/* An error "<fixture path>:LINE: text..." exists. */
#define assert_error_at(line, text)                                                                          \
    do {                                                                                                     \
        bool found_ = has(CONFIG_DIAG_ERROR, "%s:%d: %s", cfg_path, (line), (text));                         \
        if (!found_)                                                                                         \
            dump();                                                                                          \
        cr_assert(found_, "no error \"%s:%d: %s\"", cfg_path, (line), (text));                               \
    } while (0)

static void assert_loaded(int rc)
{
    if (rc != 0)
        dump();
    cr_assert_eq(rc, 0);
    cr_assert_not_null(cfg);
    cr_assert_eq(diag.errors, 0);
}

static void assert_failed(int rc)
{
    cr_assert_eq(rc, -1);
    cr_assert_null(cfg);
    cr_assert_gt(diag.errors, 0);
}

static char *abs_data(const char *rel)
{
    static char buf[PATH_MAX + 64];
    snprintf(buf, sizeof(buf), "%s/%s", data_dir, rel);
    return buf;
}

/* ------------------------------------------------------------- table */

Test(config, table_has_every_key_once_with_types_and_reload)
{
    size_t n;
    const config_key_def *k = config_keys(&n);
    cr_assert_gt(n, 50);
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(k[i].doc, "%s has no doc", k[i].key);
        cr_assert(k[i].doc[0] != '\0');
        for (size_t j = i + 1; j < n; j++)
            cr_assert(!(k[i].section == k[j].section && strcmp(k[i].key, k[j].key) == 0), "%s twice",
                      k[i].key);
        if (k[i].type == CONFIG_T_ENUM)
            cr_assert_not_null(k[i].enum_names);
    }
    /* SPEC section 2: store, listen and log dir need a restart; scan filters are live. */
    const struct {
        config_section_id sec;
        const char *key;
        config_reload reload;
        config_type type;
        const char *def;
    } want[] = {
        {CONFIG_SEC_PIPELINE, "store", CONFIG_RELOAD_RESTART, CONFIG_T_ENUM, "memory"},
        {CONFIG_SEC_SERVER, "listen", CONFIG_RELOAD_RESTART, CONFIG_T_LISTEN, "127.0.0.1:9187"},
        {CONFIG_SEC_LOG, "dir", CONFIG_RELOAD_RESTART, CONFIG_T_PATH, "log"},
        {CONFIG_SEC_SCAN, "exclude_tables", CONFIG_RELOAD_LIVE, CONFIG_T_LIST, NULL},
        {CONFIG_SEC_DATABASES_SCAN, "include_schemas", CONFIG_RELOAD_LIVE, CONFIG_T_LIST, NULL},
        {CONFIG_SEC_DATABASES, "host", CONFIG_RELOAD_WORKER, CONFIG_T_STRING, "localhost"},
        {CONFIG_SEC_DATABASES, "password_file", CONFIG_RELOAD_WORKER, CONFIG_T_SECRET_FILE, NULL},
        {CONFIG_SEC_ALERTS_WEBHOOKS, "header", CONFIG_RELOAD_SINK, CONFIG_T_HEADER, NULL},
        {CONFIG_SEC_PIPELINE, "credit_bytes", CONFIG_RELOAD_WORKER, CONFIG_T_SIZE, "8388608"},
        {CONFIG_SEC_TOP, "rules_file", CONFIG_RELOAD_LIVE, CONFIG_T_PATH, "rules.yaml"},
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        const config_key_def *found = NULL;
        for (size_t i = 0; i < n; i++)
            if (k[i].section == want[w].sec && strcmp(k[i].key, want[w].key) == 0)
                found = &k[i];
        cr_assert_not_null(found, "missing %s", want[w].key);
        cr_assert_eq(found->reload, want[w].reload, "%s reload", want[w].key);
        cr_assert_eq(found->type, want[w].type, "%s type", want[w].key);
        if (want[w].def)
            cr_assert_str_eq(found->def, want[w].def);
        else
            cr_assert_null(found->def);
        cr_assert_eq(config_key_reloadable(found), want[w].reload != CONFIG_RELOAD_RESTART);
    }
    cr_assert_str_eq(config_section_name(CONFIG_SEC_ALERTS_JSONL), "alerts.jsonl");
    cr_assert(config_section_is_array(CONFIG_SEC_ALERTS_SLACK));
    cr_assert(!config_section_is_array(CONFIG_SEC_DATABASES_SCAN));
}

/* ---------------------------------------------------------- defaults */

Test(config, empty_file_gives_defaults)
{
    assert_loaded(load("empty.ini"));
    cr_assert_str_eq(cfg->rules_file, abs_data("rules.yaml"));
    cr_assert_str_eq(cfg->dir, data_dir);
    cr_assert_eq(cfg->n_dbs, 0);
    cr_assert_eq(cfg->scan.include_schemas.n, 0);
    cr_assert_eq(cfg->scan.scan_numeric, false);
    cr_assert_eq(cfg->scan.primary_keys, CONFIG_PK_OMIT_MATCHING);
    cr_assert_eq(cfg->pipeline.store, CONFIG_STORE_MEMORY);
    cr_assert_eq(cfg->pipeline.snapshot_connections, 2);
    cr_assert_eq(cfg->pipeline.publication_poll_s, 60);
    cr_assert_eq(cfg->pipeline.max_retained_wal, 0);
    cr_assert_eq(cfg->pipeline.on_slot_lost, CONFIG_SLOT_LOST_FAIL);
    cr_assert_eq(cfg->pipeline.credit_bytes, 8388608);
    cr_assert_eq(cfg->alerts.dedup_window_seconds, 300);
    cr_assert_eq(cfg->alerts.dedup_max_entries, 100000);
    cr_assert_eq(cfg->alerts.log_sink.enabled, true);
    cr_assert_eq(cfg->alerts.stdout_sink.enabled, false);
    cr_assert_eq(cfg->alerts.jsonl.enabled, false, "absent [alerts.jsonl] is off");
    cr_assert_eq(cfg->alerts.postgres.enabled, false, "absent [alerts.postgres] is off");
    cr_assert_eq(cfg->alerts.n_webhooks, 0);
    cr_assert_eq(cfg->alerts.n_slack, 0);
    cr_assert_eq(cfg->server.enabled, false);
    cr_assert_str_eq(cfg->server.listen, "127.0.0.1:9187");
    cr_assert_str_eq(cfg->log.dir, abs_data("log"));
    cr_assert_eq(cfg->log.level, 1 /* LOG_LVL_INFO */);
    cr_assert_eq(cfg->log.format, 0 /* LOG_FMT_CONSOLE */);
    cr_assert_eq(config_sink_count(cfg), 1);
    /* SPEC: validate warns when no durable sink is enabled */
    cr_assert(has(CONFIG_DIAG_WARN, "no durable sink enabled"));
}

Test(config, database_defaults)
{
    assert_loaded(load("warn_no_durable.ini"));
    cr_assert_eq(cfg->n_dbs, 1);
    config_db *db = &cfg->dbs[0];
    cr_assert_str_eq(db->name, "app", "name defaults to dbname");
    cr_assert_str_eq(db->host, "localhost");
    cr_assert_eq(db->port, 5432);
    cr_assert_str_eq(db->publication, "pgsense_pub");
    cr_assert_eq(db->sslmode, CONFIG_SSL_PREFER);
    cr_assert_str_eq(config_sslmode_name(db->sslmode), "prefer");
    cr_assert_null(db->username);
    cr_assert_null(db->password);
    cr_assert_str_eq(db->identity, "localhost/app");
    cr_assert_eq(db->line, 1);
    cr_assert_eq(db->own_scan, false);
    cr_assert_eq(diag.warnings, 1);
}

/* ------------------------------------------------------------ full */

Test(config, full_file_every_key)
{
    assert_loaded(load("full.ini"));
    cr_assert_eq(diag.warnings, 0, "durable sinks present: no warning");
    cr_assert_str_eq(cfg->rules_file, "/etc/pgsense/rules.yaml");
    cr_assert_eq(cfg->n_dbs, 2);

    config_db *a = &cfg->dbs[0];
    cr_assert_str_eq(a->name, "orders");
    cr_assert_str_eq(a->host, "db1.internal");
    cr_assert_eq(a->port, 6432);
    cr_assert_str_eq(a->dbname, "app");
    cr_assert_str_eq(a->username, "pgsense");
    cr_assert_str_eq(a->password, "s3cret-pg", "trailing whitespace and newlines stripped");
    cr_assert_str_eq(a->password_file, abs_data("secrets/pg_password"));
    cr_assert_str_eq(a->publication, "orders_pub");
    cr_assert_eq(a->sslmode, CONFIG_SSL_VERIFY_FULL);
    cr_assert_str_eq(a->sslrootcert, "/etc/ssl/root.crt");
    cr_assert_str_eq(a->sslcert, abs_data("certs/client.crt"));
    cr_assert_str_eq(a->sslkey, abs_data("certs/client.key"));
    cr_assert_str_eq(a->identity, "db1.internal/app");
    cr_assert_eq(a->line, 4);
    cr_assert(a->own_scan);
    cr_assert_eq(a->scan_line, 17);
    cr_assert_eq(a->scan.include_schemas.n, 2);
    cr_assert_str_eq(a->scan.include_schemas.items[0], "public");
    cr_assert_str_eq(a->scan.include_schemas.items[1], "sales");
    cr_assert_eq(a->scan.exclude_tables.n, 2);
    cr_assert_str_eq(a->scan.exclude_tables.items[1], "tmp_*");
    cr_assert_str_eq(a->scan.exclude_columns.items[0], "*_hash");
    cr_assert_eq(a->scan.scan_numeric, true);
    cr_assert_eq(a->scan.primary_keys, CONFIG_PK_OMIT);

    config_db *b = &cfg->dbs[1];
    cr_assert_str_eq(b->name, "billing");
    cr_assert_str_eq(b->password, "literal-pw");
    cr_assert_null(b->password_file);
    cr_assert(!b->own_scan);
    cr_assert_eq(b->scan.include_schemas.n, 1);
    cr_assert_str_eq(b->scan.include_schemas.items[0], "public");

    cr_assert_eq(cfg->pipeline.store, CONFIG_STORE_POSTGRES);
    cr_assert_eq(cfg->pipeline.snapshot_connections, 4);
    cr_assert_eq(cfg->pipeline.publication_poll_s, 30);
    cr_assert_eq(cfg->pipeline.max_retained_wal, 10ULL << 30);
    cr_assert_eq(cfg->pipeline.on_slot_lost, CONFIG_SLOT_LOST_RECREATE);
    cr_assert_eq(cfg->pipeline.credit_bytes, 16ULL << 20);
    cr_assert_eq(cfg->alerts.dedup_window_seconds, 0);
    cr_assert_eq(cfg->alerts.dedup_max_entries, 5000);
    cr_assert_eq(cfg->alerts.log_sink.enabled, false);
    cr_assert_eq(cfg->alerts.stdout_sink.enabled, true);

    config_jsonl *j = &cfg->alerts.jsonl;
    cr_assert(j->enabled);
    cr_assert_str_eq(j->name, "archive");
    cr_assert_str_eq(j->path, abs_data("out/findings.jsonl"));

    cr_assert_eq(cfg->alerts.n_webhooks, 1);
    config_webhook *w = &cfg->alerts.webhooks[0];
    cr_assert_str_eq(w->name, "siem");
    cr_assert_str_eq(w->url, "https://siem.example.com/ingest?token=abc");
    cr_assert_eq(w->timeout_ms, 2500);
    cr_assert(w->durable);
    cr_assert_eq(w->headers.n, 3);
    cr_assert_str_eq(w->headers.items[0].name, "Content-Type");
    cr_assert_str_eq(w->headers.items[0].value, "application/json");
    cr_assert_null(w->headers.items[0].file);
    cr_assert_str_eq(w->headers.items[1].name, "X-Source");
    cr_assert_str_eq(w->headers.items[2].name, "Authorization");
    cr_assert_str_eq(w->headers.items[2].value, "Bearer abc123");
    cr_assert_str_eq(w->headers.items[2].file, abs_data("secrets/siem_auth"));

    cr_assert_eq(cfg->alerts.n_slack, 1);
    config_slack *s = &cfg->alerts.slack[0];
    cr_assert_str_eq(s->name, "slack");
    cr_assert_str_eq(s->token, "xoxb-from-file");
    cr_assert_str_eq(s->channel, "#security", "a # after text is not a comment");
    cr_assert_str_eq(s->username, "pgsense-bot");
    cr_assert_str_eq(s->icon_emoji, ":lock:");
    cr_assert_eq(s->batch_size, 10);
    cr_assert_eq(s->batch_window_ms, 500);
    cr_assert_eq(s->max_retries, 5);
    cr_assert_str_eq(s->api_url, "https://slack.example.com/api");

    config_pgsink *pg = &cfg->alerts.postgres;
    cr_assert(pg->enabled, "present [alerts.postgres] is on");
    cr_assert_str_eq(pg->host, "sinkdb");
    cr_assert_eq(pg->port, 5433);
    cr_assert_str_eq(pg->dbname, "security");
    cr_assert_str_eq(pg->username, "sink");
    cr_assert_str_eq(pg->password, "sinkpw");
    cr_assert_str_eq(pg->schema, "audit");
    cr_assert_str_eq(pg->table, "hits");
    cr_assert_eq(pg->sslmode, CONFIG_SSL_REQUIRE);

    cr_assert(cfg->server.enabled);
    cr_assert_str_eq(cfg->server.listen, "[::1]:9999");
    cr_assert_str_eq(cfg->log.dir, "/var/log/pgsense");
    cr_assert_eq(cfg->log.level, 0 /* debug */);
    cr_assert_eq(cfg->log.format, 1 /* json */);
    cr_assert_eq(config_sink_count(cfg), 5); /* stdout, jsonl, siem, slack, postgres */
    cr_assert(config_has_durable_sink(cfg));
}

Test(config, shipped_example_is_valid)
{
    int rc = config_load(TEST_DATA_DIR "/../../../conf/pgsense.ini", NULL, &cfg, &diag);
    assert_loaded(rc);
    cr_assert_eq(diag.warnings, 0);
    cr_assert_eq(cfg->n_dbs, 1);
    cr_assert_str_eq(cfg->dbs[0].identity, "localhost/app");
    cr_assert(cfg->alerts.jsonl.enabled);
    cr_assert_eq(config_sink_count(cfg), 2);
    char want[PATH_MAX];
    cr_assert_not_null(realpath(TEST_DATA_DIR "/../../../conf", want));
    strcat(want, "/rules.yaml");
    cr_assert_str_eq(cfg->rules_file, want);
}

/* --------------------------------------------------- entries, scan */

Test(config, databases_own_scan_replaces_global_scan)
{
    assert_loaded(load("multi_db.ini"));
    cr_assert_eq(cfg->n_dbs, 3);
    config_db *a = &cfg->dbs[0], *b = &cfg->dbs[1], *c = &cfg->dbs[2];
    /* a: own scan, no merge with [scan] (its exclude_tables stays empty, pk mode default) */
    cr_assert(a->own_scan);
    cr_assert_eq(a->scan.include_schemas.n, 1);
    cr_assert_str_eq(a->scan.include_schemas.items[0], "only_a");
    cr_assert_eq(a->scan.exclude_tables.n, 0);
    cr_assert_eq(a->scan.scan_numeric, true);
    cr_assert_eq(a->scan.primary_keys, CONFIG_PK_OMIT_MATCHING);
    /* b: inherits [scan], even though [scan] comes later in the file */
    cr_assert(!b->own_scan);
    cr_assert_eq(b->scan.include_schemas.n, 2);
    cr_assert_str_eq(b->scan.include_schemas.items[1], "reporting");
    cr_assert_str_eq(b->scan.exclude_tables.items[0], "tmp_*");
    cr_assert_eq(b->scan.primary_keys, CONFIG_PK_OMIT);
    cr_assert(config_scan_equal(&b->scan, &cfg->scan));
    cr_assert(!config_scan_equal(&a->scan, &cfg->scan));
    /* c: an empty [databases.scan] still replaces [scan]: scan everything */
    cr_assert(c->own_scan);
    cr_assert_eq(c->scan_line, 18);
    cr_assert_eq(c->scan.include_schemas.n, 0);
    cr_assert_eq(c->scan.exclude_tables.n, 0);
    cr_assert_str_eq(c->identity, "/var/run/postgresql/app_c");
    cr_assert_eq(a->line, 1);
    cr_assert_eq(b->line, 9);
    cr_assert_eq(c->line, 13);
    cr_assert_eq(config_find_db(cfg, "b"), b);
    cr_assert_null(config_find_db(cfg, "zz"));
}

Test(config, default_sink_names_by_position)
{
    assert_loaded(load("names.ini"));
    cr_assert_eq(cfg->alerts.n_webhooks, 3);
    cr_assert_str_eq(cfg->alerts.webhooks[0].name, "webhook");
    cr_assert_str_eq(cfg->alerts.webhooks[1].name, "custom");
    cr_assert_str_eq(cfg->alerts.webhooks[2].name, "webhook-3");
    cr_assert_eq(cfg->alerts.webhooks[2].timeout_ms, 5000);
    cr_assert_eq(cfg->alerts.webhooks[2].durable, false);
    cr_assert_eq(cfg->alerts.webhooks[2].line, 8);
    cr_assert_eq(cfg->alerts.n_slack, 2);
    cr_assert_str_eq(cfg->alerts.slack[0].name, "slack");
    cr_assert_str_eq(cfg->alerts.slack[1].name, "slack-2");
    cr_assert_str_eq(cfg->alerts.slack[1].token, "xoxb-2");
    cr_assert_eq(cfg->alerts.slack[1].batch_size, 20);
    cr_assert_eq(cfg->alerts.slack[1].batch_window_ms, 2000);
    cr_assert_eq(cfg->alerts.slack[1].max_retries, 3);
    cr_assert_str_eq(cfg->alerts.slack[1].api_url, "https://slack.com/api");
    config_pgsink *pg = &cfg->alerts.postgres;
    cr_assert(pg->enabled);
    cr_assert_str_eq(pg->host, "localhost");
    cr_assert_eq(pg->port, 5432);
    cr_assert_str_eq(pg->schema, "pgsense");
    cr_assert_str_eq(pg->table, "findings");
    cr_assert_eq(diag.warnings, 1, "only: no [[databases]]");
}

Test(config, continuation_lines_append_to_lists_and_headers)
{
    assert_loaded(load("continuation.ini"));
    config_list *l = &cfg->scan.include_schemas;
    cr_assert_eq(l->n, 4);
    cr_assert_str_eq(l->items[0], "public");
    cr_assert_str_eq(l->items[1], "sales");
    cr_assert_str_eq(l->items[2], "hr");
    cr_assert_str_eq(l->items[3], "finance", "inline comment stripped");
    cr_assert_eq(cfg->scan.exclude_tables.n, 2);
    cr_assert_str_eq(cfg->scan.exclude_tables.items[1], "b_*", "tab-indented continuation");
    config_headers *h = &cfg->alerts.webhooks[0].headers;
    cr_assert_eq(h->n, 3);
    cr_assert_str_eq(h->items[0].name, "X-One");
    cr_assert_str_eq(h->items[1].name, "X-Two");
    cr_assert_str_eq(h->items[1].value, "2");
    cr_assert_str_eq(h->items[2].name, "X-Three");
}

Test(config, line_of_199_characters_is_fine)
{
    assert_loaded(load("big_line_ok.ini"));
    cr_assert_gt(cfg->scan.exclude_tables.n, 30);
}

/* ---------------------------------------------------------- errors */

Test(config, too_long_line_reported_with_line_and_fix)
{
    assert_failed(load("err_too_long.ini"));
    assert_error_at(3,
                    "line longer than 199 characters (split a long list over indented continuation lines)");
    assert_error_at(7, "line longer than 199 characters");
    cr_assert_eq(diag.errors, 2, "its continuation line is dropped, not misattributed");
}

Test(config, unknown_key_named_with_suggestion)
{
    assert_failed(load("err_unknown_key.ini"));
    assert_error_at(3, "unknown key \"prot\" in [[databases]] (did you mean \"port\"?)");
    assert_error_at(4, "unknown key \"zzzzzz\" in [[databases]]");
    assert_error_at(
        7, "unknown key \"dedup_window_seconds\" in [pipeline] (dedup_window_seconds is a key of [alerts])");
    cr_assert_eq(diag.errors, 3);
}

Test(config, unknown_section)
{
    assert_failed(load("err_unknown_section.ini"));
    assert_error_at(1, "unknown section [pipline] (did you mean [pipeline]?)");
    assert_error_at(4, "unknown section [nothing_like_it]");
    cr_assert_eq(diag.errors, 2, "keys of an unknown section are not reported again");
}

Test(config, bad_numbers_bools_enums_sizes_all_collected)
{
    assert_failed(load("err_bad_values.ini"));
    assert_error_at(3, "port: bad number \"70000\": expected an integer from 1 to 65535");
    assert_error_at(7, "port: bad number \"54x\"");
    assert_error_at(10, "scan_numeric: bad boolean \"maybe\": expected true/false, yes/no, on/off or 1/0");
    assert_error_at(13, "store: bad value \"disk\": expected one of memory, postgres");
    assert_error_at(14, "max_retained_wal: bad size \"10 parsecs\"");
    assert_error_at(15, "credit_bytes: bad size \"1kB\": expected bytes from 1048576");
    assert_error_at(18, "listen: bad address \"localhost\"");
    assert_error_at(21, "level: bad value \"loud\": expected one of debug, info, warn, error");
    cr_assert_eq(diag.errors, 8);
}

Test(config, invalid_names)
{
    assert_failed(load("err_invalid_name.ini"));
    assert_error_at(2, "name: invalid name \"orders db\"");
    assert_error_at(5, "invalid name \"my app\" (taken from dbname): add name = ...");
    assert_error_at(9, "name: invalid name \"a/b\"");
    cr_assert_eq(diag.errors, 3);
}

Test(config, duplicate_name_names_both_lines)
{
    assert_failed(load("err_dup_name.ini"));
    assert_error_at(6, "duplicate database name \"orders\" (also the entry on line 1)");
    cr_assert_eq(diag.errors, 1);
}

Test(config, duplicate_identity_names_both_lines)
{
    assert_failed(load("err_dup_identity.ini"));
    assert_error_at(
        11, "duplicate identity db1/app: database three has the same host/dbname as database one on line 1");
    cr_assert_eq(diag.errors, 1, "db2/app is a different identity");
}

Test(config, databases_scan_before_any_database)
{
    assert_failed(load("err_scan_before_db.ini"));
    assert_error_at(1, "[databases.scan] before any [[databases]]");
    cr_assert_eq(diag.errors, 1);
}

Test(config, missing_dbname)
{
    assert_failed(load("err_missing_dbname.ini"));
    assert_error_at(1, "[[databases]] entry 0 has no dbname (add dbname = ...)");
}

Test(config, sinks_missing_required_keys)
{
    assert_failed(load("err_sinks.ini"));
    assert_error_at(1, "[alerts.jsonl] is enabled but has no path");
    assert_error_at(4, "webhook webhook has no url");
    assert_error_at(7, "slack slack has no token");
    assert_error_at(7, "slack slack has no channel");
    assert_error_at(10, "[alerts.postgres] has no dbname");
    cr_assert_eq(diag.errors, 5);
}

Test(config, repeated_scalar_key_names_both_lines)
{
    assert_failed(load("err_repeat.ini"));
    assert_error_at(5, "port set twice in [[databases]] (first on line 3)");
    assert_error_at(13, "include_schemas set twice in [scan] (first on line 12)");
    cr_assert_eq(diag.errors, 2, "the same key in another entry is fine");
}

Test(config, continuation_of_scalar_and_indented_pitfalls)
{
    assert_failed(load("err_scalar_cont.ini"));
    assert_error_at(3, "indented line continues store, which takes one value");
    assert_error_at(6, "indented \"key = value\" reads as more items of include_schemas");
    assert_error_at(7, "indented section header reads as a continuation of include_schemas");
    cr_assert_eq(diag.errors, 3);
}

Test(config, syntax_errors_all_reported)
{
    assert_failed(load("err_syntax.ini"));
    assert_error_at(2, "expected key = value");
    assert_error_at(3, "section header without its closing ]");
    assert_error_at(5, "section header without its closing ]]");
    assert_error_at(7, "write [[databases]]");
    assert_error_at(8, "write [pipeline]");
    assert_error_at(9, "unexpected text after the section header");
    cr_assert_eq(diag.errors, 6);
}

Test(config, nul_byte_and_control_characters)
{
    assert_failed(load("err_nul.ini"));
    assert_error_at(2, "NUL byte in the line");
    assert_error_at(1, "[[databases]] entry 0 has no dbname");
    assert_error_at(4, "unknown section [pipe?line]");
    for (size_t i = 0; i < diag.n; i++)
        cr_assert_null(strchr(diag.items[i].text, '\033'));
}

Test(config, missing_file)
{
    assert_failed(load("no_such_file.ini"));
    cr_assert(has(CONFIG_DIAG_ERROR, "%s: cannot open: No such file or directory", cfg_path));
}

/* --------------------------------------------------------- secrets */

Test(config, password_and_password_file_both_set)
{
    assert_failed(load("err_both_password.ini"));
    char w[2 * PATH_MAX + 256];
    snprintf(w, sizeof(w), "database app: both password and password_file are set (password at %s:3)",
             cfg_path);
    assert_error_at(4, w);
    assert_error_at(9, "slack slack: both token and token_file are set");
    cr_assert_eq(diag.errors, 2);
}

Test(config, unreadable_secret_file_names_key_path_and_cause)
{
    assert_failed(load("err_secret_missing.ini"));
    char w[2 * PATH_MAX + 256];
    snprintf(w, sizeof(w), "database app: password_file \"%s\": cannot read: No such file or directory",
             abs_data("secrets/does_not_exist"));
    assert_error_at(3, w);
}

Test(config, bad_secret_file_error_never_shows_content)
{
    assert_failed(load("err_secret_multiline.ini"));
    char w[2 * PATH_MAX + 256];
    snprintf(w, sizeof(w), "database app: password_file \"%s\": cannot read: more than one line",
             abs_data("secrets/multiline"));
    assert_error_at(3, w);
    cr_assert(has(CONFIG_DIAG_ERROR,
                  "%s:7: database app2: password_file \"%s\": cannot read: the file is empty", cfg_path,
                  abs_data("secrets/empty")));
    assert_error_at(11, "header_file: header Authorization");
    cr_assert_eq(diag.errors, 3);
    for (size_t i = 0; i < diag.n; i++) {
        cr_assert_null(strstr(diag.items[i].text, "hunter2"), "leaked: %s", diag.items[i].text);
        cr_assert_null(strstr(diag.items[i].text, "second line"), "leaked: %s", diag.items[i].text);
    }
}

Test(config, errors_never_quote_secrets_or_urls)
{
    assert_failed(load("secret_leak.ini"));
    cr_assert_geq(diag.errors, 5);
    assert_error_at(9, "url set twice");
    assert_error_at(10, "header: expected \"Name: value\"");
    assert_error_at(15, "token set twice");
    for (size_t i = 0; i < diag.n; i++)
        cr_assert_null(strstr(diag.items[i].text, "TOPSECRET"), "leaked: %s", diag.items[i].text);
}

/* ----------------------------------------------------------- paths */

Test(config, relative_paths_resolve_against_config_dir)
{
    assert_loaded(load("relative.ini"));
    cr_assert_str_eq(cfg->rules_file, abs_data("rules/r.yaml"));
    cr_assert_str_eq(cfg->dbs[0].sslrootcert, "/abs/root.crt");
    cr_assert_str_eq(cfg->dbs[0].sslcert, abs_data("../certs/c.crt"));
    cr_assert_str_eq(cfg->alerts.jsonl.path, abs_data("out/f.jsonl"));
    cr_assert_str_eq(cfg->log.dir, abs_data("log"));
    cr_assert_eq(cfg->dir[0], '/');
}

/* ------------------------------------------------------------- env */

Test(config, env_overrides_apply_on_top)
{
    char *envp[] = {
        "HOME=/root",
        "PGSENSE_NOT_OURS=1",
        "PGSENSE__RULES_FILE=/opt/rules.yaml",
        "PGSENSE__PIPELINE__STORE=postgres",
        "pgsense__pipeline__credit_bytes=2MB", /* prefix must be exact: ignored */
        "PGSENSE__Pipeline__Snapshot_Connections=7",
        "PGSENSE__ALERTS__JSONL__PATH=env.jsonl",
        "PGSENSE__DATABASES__0__PASSWORD=from-env",
        "PGSENSE__DATABASES__1__PORT=7000",
        "PGSENSE__DATABASES__1__SCAN__EXCLUDE_TABLES=x_*, y_*",
        "PGSENSE__SCAN__INCLUDE_SCHEMAS=env_schema",
        NULL,
    };
    assert_loaded(load_env("multi_db.ini", envp));
    cr_assert_str_eq(cfg->rules_file, "/opt/rules.yaml");
    cr_assert_eq(cfg->pipeline.store, CONFIG_STORE_POSTGRES);
    cr_assert_eq(cfg->pipeline.credit_bytes, 8388608);
    cr_assert_eq(cfg->pipeline.snapshot_connections, 7, "case-insensitive section and key");
    cr_assert_str_eq(cfg->alerts.jsonl.path, abs_data("env.jsonl"));
    cr_assert_str_eq(cfg->dbs[0].password, "from-env");
    cr_assert_eq(cfg->dbs[1].port, 7000);
    cr_assert(cfg->dbs[1].own_scan, "an override opens the entry's own scan");
    cr_assert_eq(cfg->dbs[1].scan.exclude_tables.n, 2);
    cr_assert_str_eq(cfg->dbs[1].scan.exclude_tables.items[1], "y_*");
    cr_assert_eq(cfg->dbs[1].scan.include_schemas.n, 0, "own scan: no merge with [scan]");
    cr_assert_eq(cfg->scan.include_schemas.n, 1, "env replaces a list, does not append");
    cr_assert_str_eq(cfg->scan.include_schemas.items[0], "env_schema");
    cr_assert_str_eq(cfg->dbs[0].scan.include_schemas.items[0], "only_a",
                     "own scans ignore [scan] overrides");
}

Test(config, env_webhook_index_and_out_of_range)
{
    char *envp[] = {
        "PGSENSE__ALERTS__WEBHOOKS__1__URL=https://env.example.com/h",
        "PGSENSE__ALERTS__WEBHOOKS__1__HEADER=X-Env: 1",
        NULL,
    };
    assert_loaded(load_env("names.ini", envp));
    cr_assert_str_eq(cfg->alerts.webhooks[1].url, "https://env.example.com/h");
    cr_assert_eq(cfg->alerts.webhooks[1].headers.n, 1);
    cr_assert_str_eq(cfg->alerts.webhooks[1].headers.items[0].name, "X-Env");
}

Test(config, env_errors_name_the_variable)
{
    char *envp[] = {
        "PGSENSE__PIPELINE__STOR=memory",
        "PGSENSE__PIPELINE__STORE=disk",
        "PGSENSE__NOPE__KEY=1",
        "PGSENSE__DATABASES__5__PASSWORD=x",
        "PGSENSE__DATABASES__PASSWORD=x",
        "PGSENSE__PIPELINE__0__STORE=memory",
        "PGSENSE__DATABASES__0__PORT=0",
        "PGSENSE__=x",
        NULL,
    };
    assert_failed(load_env("multi_db.ini", envp));
    cr_assert(has(
        CONFIG_DIAG_ERROR,
        "environment PGSENSE__PIPELINE__STOR: unknown key \"stor\" in [pipeline] (did you mean \"store\"?)"));
    cr_assert(has(CONFIG_DIAG_ERROR, "environment PGSENSE__PIPELINE__STORE: store: bad value \"disk\""));
    cr_assert(has(CONFIG_DIAG_ERROR, "environment PGSENSE__NOPE__KEY: unknown section [nope]"));
    cr_assert(has(CONFIG_DIAG_ERROR,
                  "environment PGSENSE__DATABASES__5__PASSWORD: no [[databases]] entry 5 (the file "
                  "defines 3, numbered from 0"));
    cr_assert(has(CONFIG_DIAG_ERROR,
                  "environment PGSENSE__DATABASES__PASSWORD: [[databases]] needs an entry index"));
    cr_assert(has(CONFIG_DIAG_ERROR,
                  "environment PGSENSE__PIPELINE__0__STORE: [pipeline] has no entries to index"));
    cr_assert(has(CONFIG_DIAG_ERROR, "environment PGSENSE__DATABASES__0__PORT: port: bad number \"0\""));
    cr_assert(has(CONFIG_DIAG_ERROR, "environment PGSENSE__: malformed name"));
    cr_assert_eq(diag.errors, 8);
    for (size_t i = 0; i < diag.n; i++)
        cr_assert_null(strstr(diag.items[i].text, "=x"), "value leaked: %s", diag.items[i].text);
}

Test(config, env_secret_file_error_points_at_variable)
{
    char *envp[] = {"PGSENSE__DATABASES__0__PASSWORD_FILE=secrets/nope", NULL};
    assert_failed(load_env("warn_no_durable.ini", envp));
    cr_assert(has(CONFIG_DIAG_ERROR,
                  "environment PGSENSE__DATABASES__0__PASSWORD_FILE: database app: password_file "
                  "\"%s\": cannot read",
                  abs_data("secrets/nope")));
}

Test(config, env_can_enable_jsonl_and_clear_warning)
{
    char *envp[] = {"PGSENSE__ALERTS__JSONL__PATH=/tmp/f.jsonl", NULL};
    assert_loaded(load_env("warn_no_durable.ini", envp));
    cr_assert(cfg->alerts.jsonl.enabled);
    cr_assert_str_eq(cfg->alerts.jsonl.path, "/tmp/f.jsonl");
    cr_assert_eq(diag.warnings, 0);
}

/* ----------------------------------------------- slot and helpers */

Test(config, slot_name_known_vector)
{
    /* printf %s localhost/app | sha256sum -> f7a49bc8d1fdc15eaad743c9c3d74d935b04cd22528d3fd9ca314f05600c16b5
     */
    char slot[CONFIG_SLOT_LEN + 1];
    cr_assert_eq(config_slot_name("localhost/app", slot), 0);
    cr_assert_str_eq(slot, "pgsense_f7a49bc8d1fdc15e");
    assert_loaded(load("relative.ini"));
    cr_assert_str_eq(cfg->dbs[0].slot, "pgsense_f7a49bc8d1fdc15e");
}

Test(config, same_identity_and_connection)
{
    assert_loaded(load("full.ini"));
    config *other = NULL;
    config_diag d2;
    config_diag_init(&d2);
    char *envp[] = {"PGSENSE__DATABASES__0__PORT=6433", "PGSENSE__DATABASES__1__PASSWORD=changed", NULL};
    cr_assert_eq(config_load(cfg_path, envp, &other, &d2), 0);
    cr_assert(config_db_same_identity(&cfg->dbs[0], &other->dbs[0]));
    cr_assert(!config_db_same_connection(&cfg->dbs[0], &other->dbs[0]), "port changed");
    cr_assert(config_db_same_identity(&cfg->dbs[1], &other->dbs[1]));
    cr_assert(!config_db_same_connection(&cfg->dbs[1], &other->dbs[1]), "secret content changed");
    cr_assert(!config_db_same_identity(&cfg->dbs[0], &cfg->dbs[1]));
    cr_assert(config_db_same_connection(&cfg->dbs[0], &cfg->dbs[0]));
    config_free(other);
    config_diag_free(&d2);
}

Test(config, diag_print_format)
{
    assert_failed(load("err_dup_name.ini"));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    config_diag_print(&diag, f);
    fclose(f);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "[ERROR] %s:6: duplicate database name", cfg_path);
    cr_assert_not_null(strstr(buf, want), "got: %s", buf);
    cr_assert_not_null(strstr(buf, "[WARN] "), "got: %s", buf);
    cr_assert_lt(strstr(buf, "[ERROR]"), strstr(buf, "[WARN]"), "errors first");
    free(buf);
}
