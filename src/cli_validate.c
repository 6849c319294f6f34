/*
 * cli_validate: `pgsense validate -c pgsense.ini [-r rules.yaml] [--connect]`.
 * One line per check ([OK], [WARN], [ERROR]); exit 0 without errors, 1 with,
 * 2 on usage errors. Never prints a secret or a URL's path (it may hold a token).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_sinks.h"
#include "rules.h"
#include "config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pgsense validate -c pgsense.ini [-r rules.yaml] [--connect]\n");
}

/* "https://hooks.example.com" out of a URL: scheme and host only. */
static void url_origin(const char *url, char *buf, size_t len)
{
    const char *sep = strstr(url, "://");
    int scheme_len = sep ? (int)(sep - url) + 3 : 0;
    const char *host = url + scheme_len;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n); /* drop user:password@ */
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    snprintf(buf, len, "%.*s%.*s", scheme_len, url, (int)n, host);
}

static void print_sinks(const config *cfg)
{
    const config_alerts *a = &cfg->alerts;
    char origin[256];
    if (a->log_sink.enabled)
        printf("[OK] sink log: findings in the supervisor log (at most once)\n");
    if (a->stdout_sink.enabled)
        printf("[OK] sink stdout: JSON lines on stdout (at most once)\n");
    if (a->jsonl.enabled)
        printf("[OK] sink %s: jsonl %s (durable)\n", a->jsonl.name, a->jsonl.path);
    for (size_t i = 0; i < a->n_webhooks; i++) {
        const config_webhook *w = &a->webhooks[i];
        url_origin(w->url, origin, sizeof(origin));
        printf("[OK] sink %s: webhook %s/... timeout %d ms, %zu header(s)%s\n", w->name, origin,
               w->timeout_ms, w->headers.n, w->durable ? " (durable)" : " (at most once)");
    }
    for (size_t i = 0; i < a->n_slack; i++) {
        const config_slack *s = &a->slack[i];
        printf("[OK] sink %s: slack channel %s (at most once)\n", s->name, s->channel);
    }
    if (a->postgres.enabled)
        printf("[OK] sink postgres: table %s.%s in %s/%s (durable)\n", a->postgres.schema, a->postgres.table,
               a->postgres.host, a->postgres.dbname);
}

/* The rules file: loaded as the supervisor would; channels must name enabled sinks. Returns errors. */
static int check_rules(const config *cfg, const char *path)
{
    rules_set *rs = NULL;
    rules_diag rd;
    if (rules_load(path, &rs, &rd) != 0) {
        rules_diag_print(&rd, stdout, "[ERROR] ");
        return rd.total ? (int)rd.total : 1;
    }
    printf("[OK] rules %s: %zu rules\n", path, rules_count(rs));
    for (size_t i = 0; i < rules_count(rs); i++)
        for (size_t k = 0; k < rules_channel_count(rs, i); k++)
            if (!config_sink_exists(cfg, rules_channel(rs, i, k)))
                printf("[WARN] rules %s: rule %s names channel \"%s\", which is no enabled sink\n", path,
                       rules_id(rs, i), rules_channel(rs, i, k));
    rules_free(rs);
    return 0;
}

int cli_validate_main(int argc, char **argv)
{
    const char *config_path = NULL;
    const char *rules_path = NULL; /* default: the config's rules_file */
    bool connect = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if ((strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) && i + 1 < argc) {
            config_path = argv[++i];
        } else if ((strcmp(arg, "-r") == 0 || strcmp(arg, "--rules") == 0) && i + 1 < argc) {
            rules_path = argv[++i];
        } else if (strcmp(arg, "--connect") == 0) {
            connect = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pgsense validate: unexpected argument \"%s\"\n", arg);
            usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "pgsense validate: -c pgsense.ini is required\n");
        usage(stderr);
        return 2;
    }

    extern char **environ;
    config_diag diag;
    config_diag_init(&diag);
    config *cfg = NULL;
    int rc = config_load(config_path, environ, &cfg, &diag);
    config_diag_print(&diag, stdout);
    if (rc == 0) {
        printf("[OK] config %s: %zu database(s), %zu sink(s)\n", config_path, cfg->n_dbs,
               config_sink_count(cfg));
        for (size_t i = 0; i < cfg->n_dbs; i++) {
            const config_db *db = &cfg->dbs[i];
            printf("[OK] database %s (%s) slot %s\n", db->name, db->identity, db->slot);
        }
        print_sinks(cfg);
    }
    int status = diag.errors > 0 || diag.oom || rc != 0 ? 1 : 0;
    if (rc == 0) {
        if (check_rules(cfg, rules_path ? rules_path : cfg->rules_file) > 0)
            status = 1;
        for (size_t i = 0; connect && i < cfg->n_dbs; i++)
            if (cli_db_check(&cfg->dbs[i], stdout) > 0)
                status = 1;
        if (connect && cli_sinks_check(cfg, stdout) > 0)
            status = 1;
        if (connect && cli_pgsink_check(cfg, stdout) > 0)
            status = 1;
    }
    config_free(cfg);
    config_diag_free(&diag);
    fflush(stdout);
    return status;
}
