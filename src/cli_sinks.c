/*
 * cli_sinks: `validate --connect` checks of the webhook and Slack sinks.
 * A webhook is reachable when it answers a HEAD at all (any status: many
 * receivers only take POST); Slack's auth.test must say ok:true, else its
 * error code is shown. Output names the sink and the URL's origin only.
 */
#include "cli_sinks.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CLI_SINKS_MAX_BODY   (64u * 1024u)
#define CLI_SLACK_TIMEOUT_MS 10000L

typedef struct {
    char data[CLI_SINKS_MAX_BODY + 1];
    size_t len;
} body_buf;

static size_t body_cb(char *p, size_t size, size_t nmemb, void *userp)
{
    body_buf *b = userp;
    size_t n = size * nmemb, room = CLI_SINKS_MAX_BODY - b->len, take = n < room ? n : room;
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = '\0';
    return n;
}

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)clientp;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* scheme://host[:port] of url, credentials and path left out. */
static void origin_of(const char *url, char *out, size_t outlen)
{
    const char *sep = strstr(url, "://");
    int scheme_len = sep ? (int)(sep - url) + 3 : 0;
    const char *host = url + scheme_len;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    snprintf(out, outlen, "%.*s%.*s", scheme_len, url, (int)n, host);
}

/*
 * One blocking request: HEAD when body is NULL, else POST. Returns the
 * CURLcode; *status gets the HTTP status (0 without an answer).
 */
static CURLcode request(const char *url, struct curl_slist *headers, const char *body, long timeout_ms,
                        long *status, body_buf *resp)
{
    CURL *e = curl_easy_init();
    CURLcode c = e ? CURLE_OK : CURLE_OUT_OF_MEMORY;
    *status = 0;
#define SET(opt, val)                                                                                        \
    do {                                                                                                     \
        if (c == CURLE_OK)                                                                                   \
            c = curl_easy_setopt(e, opt, val);                                                               \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_cb);
    SET(CURLOPT_WRITEFUNCTION, body_cb);
    SET(CURLOPT_WRITEDATA, resp);
    SET(CURLOPT_USERAGENT, "pgsense");
    SET(CURLOPT_HTTPHEADER, headers);
    if (body) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, body);
    } else {
        SET(CURLOPT_NOBODY, 1L);
    }
#undef SET
    if (c == CURLE_OK)
        c = curl_easy_perform(e);
    if (c == CURLE_OK && curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status) != CURLE_OK)
        *status = 0;
    if (e)
        curl_easy_cleanup(e);
    return c;
}

static int check_webhook(const config_webhook *w, FILE *out)
{
    char origin[256];
    struct curl_slist *h = NULL;
    body_buf *resp = calloc(1, sizeof(*resp));
    int errors = 0;
    origin_of(w->url, origin, sizeof(origin));
    for (size_t i = 0; resp && i < w->headers.n; i++) {
        const config_header *ch = &w->headers.items[i];
        size_t n = strlen(ch->name) + strlen(ch->value ? ch->value : "") + 3;
        char *line = malloc(n);
        struct curl_slist *l = NULL;
        if (line) {
            snprintf(line, n, "%s: %s", ch->name, ch->value ? ch->value : "");
            l = curl_slist_append(h, line);
            free(line);
        }
        if (!l) {
            free(resp);
            resp = NULL;
            break;
        }
        h = l;
    }
    if (!resp) {
        fprintf(out, "[ERROR] sink %s: webhook %s/...: out of memory\n", w->name, origin);
        curl_slist_free_all(h);
        return 1;
    }
    long status = 0;
    CURLcode c = request(w->url, h, NULL, w->timeout_ms > 0 ? w->timeout_ms : 5000, &status, resp);
    if (c == CURLE_OK && status > 0) {
        fprintf(out, "[OK] sink %s: webhook %s/... answered HEAD with HTTP %ld (reachable)\n", w->name,
                origin, status);
    } else {
        fprintf(out, "[ERROR] sink %s: webhook %s/... did not answer: %s (check url and network)\n", w->name,
                origin, curl_easy_strerror(c));
        errors++;
    }
    curl_slist_free_all(h);
    free(resp);
    return errors;
}

/* Copy a JSON string member, keeping printable ASCII only (Slack codes, team and user names). */
static void json_member(json_object *root, const char *key, char *out, size_t outlen)
{
    json_object *v = NULL;
    size_t k = 0;
    out[0] = '\0';
    if (!json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_string))
        return;
    for (const char *s = json_object_get_string(v); s && *s && k + 1 < outlen; s++)
        if ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f)
            out[k++] = *s;
    out[k] = '\0';
}

static int check_slack(const config_slack *s, FILE *out)
{
    const char *api = s->api_url ? s->api_url : "https://slack.com/api";
    char origin[256], url[2048], team[128], user[128], code[128];
    origin_of(api, origin, sizeof(origin));
    size_t alen = strlen(api);
    while (alen > 0 && api[alen - 1] == '/')
        alen--;
    if ((size_t)snprintf(url, sizeof(url), "%.*s/auth.test", (int)alen, api) >= sizeof(url)) {
        fprintf(out, "[ERROR] sink %s: slack api_url too long\n", s->name);
        return 1;
    }
    if (!s->token || !*s->token) {
        fprintf(out, "[ERROR] sink %s: slack has no token (set token_file)\n", s->name);
        return 1;
    }
    size_t tlen = strlen(s->token) + sizeof("Authorization: Bearer ");
    char *auth = malloc(tlen);
    body_buf *resp = calloc(1, sizeof(*resp));
    struct curl_slist *h = NULL, *l = NULL;
    int errors = 1;
    if (auth && resp) {
        snprintf(auth, tlen, "Authorization: Bearer %s", s->token);
        l = curl_slist_append(NULL, auth);
        h = l ? curl_slist_append(l, "Content-Type: application/x-www-form-urlencoded") : NULL;
        if (!h)
            curl_slist_free_all(l);
        memset(auth, 0, tlen);
    }
    if (!h) {
        fprintf(out, "[ERROR] sink %s: slack: out of memory\n", s->name);
        goto out;
    }
    long status = 0;
    CURLcode c = request(url, h, "", CLI_SLACK_TIMEOUT_MS, &status, resp);
    if (c != CURLE_OK || status == 0) {
        fprintf(out, "[ERROR] sink %s: slack %s auth.test did not answer: %s\n", s->name, origin,
                curl_easy_strerror(c));
        goto out;
    }
    json_object *root = json_tokener_parse(resp->data);
    json_object *ok = NULL;
    if (!root || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "ok", &ok) || !json_object_is_type(ok, json_type_boolean)) {
        fprintf(out,
                "[ERROR] sink %s: slack %s auth.test: HTTP %ld, not a Slack API answer (check api_url)\n",
                s->name, origin, status);
        json_object_put(root);
        goto out;
    }
    if (json_object_get_boolean(ok)) {
        json_member(root, "team", team, sizeof(team));
        json_member(root, "user", user, sizeof(user));
        fprintf(out, "[OK] sink %s: slack %s auth.test ok: team %s, user %s; channel %s\n", s->name, origin,
                team[0] ? team : "?", user[0] ? user : "?", s->channel);
        errors = 0;
    } else {
        json_member(root, "error", code, sizeof(code));
        fprintf(out, "[ERROR] sink %s: slack %s auth.test failed: %s%s\n", s->name, origin,
                code[0] ? code : "unknown",
                strcmp(code, "invalid_auth") == 0 || strcmp(code, "not_authed") == 0 ||
                        strcmp(code, "token_revoked") == 0
                    ? " (check token / token_file)"
                    : "");
    }
    json_object_put(root);
out:
    curl_slist_free_all(h);
    free(auth);
    free(resp);
    return errors;
}

int cli_sinks_check(const config *cfg, FILE *out)
{
    const config_alerts *a = &cfg->alerts;
    int errors = 0;
    if (a->n_webhooks == 0 && a->n_slack == 0)
        return 0;
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (c != CURLE_OK) {
        fprintf(out, "[ERROR] sinks: cannot initialise libcurl: %s\n", curl_easy_strerror(c));
        return 1;
    }
    for (size_t i = 0; i < a->n_webhooks; i++)
        errors += check_webhook(&a->webhooks[i], out);
    for (size_t i = 0; i < a->n_slack; i++)
        errors += check_slack(&a->slack[i], out);
    fflush(out);
    curl_global_cleanup();
    return errors;
}
