/*
 * sink_http: the HTTP alert sinks, webhook (sink_webhook.c) and Slack
 * (sink_slack.c): constructors, bounds and the pure helpers their unit tests
 * reach. Both send through httpc; neither decides routing or acks.
 */
#ifndef PGSENSE_SINK_HTTP_H_INCLUDED
#define PGSENSE_SINK_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "sink.h"

struct ev_loop;

/* ---- webhook: one POST per finding, body = the SPEC section 5 JSON object ---- */

#define SINK_WEBHOOK_QUEUE_MAX    10000 /* findings queued per webhook; then drop (or block if durable) */
#define SINK_WEBHOOK_INFLIGHT     8     /* concurrent POSTs per webhook */
#define SINK_WEBHOOK_MAX_RETRIES  5     /* non-durable: retries before a finding is given up */
#define SINK_WEBHOOK_RETRY_MIN_MS 250   /* first pause after a failed POST */
#define SINK_WEBHOOK_RETRY_MAX_MS 10000 /* backoff cap (a Retry-After may ask for longer) */

/* cfg is copied; the sink's name is cfg->name. NULL with err filled (never the URL or a header). */
sink *sink_webhook_new(struct ev_loop *loop, const config_webhook *cfg, char *err, size_t errlen);
/* Findings queued, in flight included (tests, status). */
size_t sink_webhook_queued(const sink *s);

/* ---- Slack: chat.postMessage, batched ---- */

#define SINK_SLACK_QUEUE_MAX     10000 /* findings waiting; then dropped (counted) */
#define SINK_SLACK_RETRY_MIN_MS  1000  /* first pause after a failed post */
#define SINK_SLACK_RETRY_MAX_MS  30000 /* backoff cap (a Retry-After may ask for longer) */
#define SINK_SLACK_MAX_SECTIONS  45    /* Block Kit allows 50 blocks per message */
#define SINK_SLACK_SECTION_CHARS 2900  /* a section's text is limited to 3000 characters */

sink *sink_slack_new(struct ev_loop *loop, const config_slack *cfg, char *err, size_t errlen);

/* What a Slack message shows of one finding (strings owned by the caller). */
typedef struct {
    const char *database, *worker, *rule_id, *description, *category;
    unsigned severity; /* frame severity: 0 CRITICAL .. 4 INFO */
    const char *schema, *table, *column, *masked_sample;
    const char *keys; /* "id=42, region=eu" or "" */
    const char *source, *op;
} sink_slack_item;

typedef struct {
    const char *channel, *username, *icon_emoji; /* username / icon_emoji may be NULL */
} sink_slack_opts;

/*
 * The chat.postMessage JSON body for items[0..n): one finding gets a rich
 * layout (fields), several a list; attachment colour of the most severe.
 * *n_used is how many items fit in the message (Block Kit limits); the
 * caller sends the rest in the next one. malloc'ed string, NULL on ENOMEM.
 */
char *sink_slack_render(const sink_slack_item *items, size_t n, const sink_slack_opts *o, size_t *n_used);
/* The attachment colour and emoji of a severity. */
const char *sink_slack_color(unsigned severity);
const char *sink_slack_emoji(unsigned severity);
/*
 * Slack's answer to a 2xx: 1 {"ok":true}, 0 {"ok":false}: code gets its
 * "error" (letters, digits, _ only), -1 not a Slack answer.
 */
int sink_slack_parse_answer(const char *body, char *code, size_t codelen);
/* Whether a Slack error code is worth retrying (internal_error, ratelimited, ...). */
bool sink_slack_error_retryable(const char *code);

#endif /* PGSENSE_SINK_HTTP_H_INCLUDED */
