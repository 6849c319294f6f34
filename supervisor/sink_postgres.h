/*
 * sink_postgres: the durable PostgreSQL sink ([alerts.postgres], SPEC
 * section 5): findings inserted in batches by non-blocking libpq on the
 * supervisor's loop. Owns its connection, queue and timers.
 */
#ifndef PGSENSE_SINK_POSTGRES_H_INCLUDED
#define PGSENSE_SINK_POSTGRES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "sink.h"

struct ev_loop;

#define SINK_PG_BATCH_ROWS      1000  /* rows per INSERT (15 parameters each, under libpq's 65535) */
#define SINK_PG_RETRY_MIN_MS    250   /* first reconnect after a failure */
#define SINK_PG_RETRY_MAX_MS    10000 /* backoff cap */
#define SINK_PG_STEP_TIMEOUT_MS 30000 /* a connect or an INSERT taking longer counts as failed */

/*
 * The sink named "postgres" for cfg->alerts.postgres. Checks the settings
 * (identifiers, the table not scanned by a configured database) and starts
 * connecting; a server that is down is not an error here (the sink retries).
 * NULL with err filled on a bad configuration.
 */
sink *sink_postgres_new(struct ev_loop *loop, const config *cfg, char *err, size_t errlen);

/* Whether s is connected and idle-or-inserting (tests, status). */
bool sink_postgres_connected(const sink *s);

/*
 * The load-time checks, also for `pgsense validate`: schema and table match
 * [A-Za-z_][A-Za-z0-9_]{0,62}; the target is not a table that a configured
 * [[databases]] entry on the same server/port/dbname scans (unless its scan
 * settings exclude it). 0, or -1 with err naming the entry and the fix.
 */
__attribute__((warn_unused_result)) int sink_postgres_check_config(const config *cfg, char *err, size_t errlen);

#endif /* PGSENSE_SINK_POSTGRES_H_INCLUDED */
