/*
 * proc: the process table: one row per [[databases]] entry with its worker's
 * pid, channel, state, restarts, last exit and next start; fork/exec, the
 * frame dialogue, worker stderr into worker-NAME.log, reaping (it owns the
 * ev_child watcher: the loop must be the default loop), backoff,
 * heartbeat watchdog, mark-and-sweep reload, stop. It never loads config or
 * rules (main does) and never touches sinks (the pipeline does).
 */
#ifndef PGSENSE_PROC_H_INCLUDED
#define PGSENSE_PROC_H_INCLUDED

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "frame.h"
#include "pipeline.h"
#include "status.h"
#include "store.h"

#define PROC_BACKOFF_INITIAL_MS 1000u
#define PROC_BACKOFF_MAX_MS     60000u
#define PROC_HEALTHY_S          60.0    /* a worker up this long resets its backoff */
#define PROC_FAILED_RETRY_MS    300000u /* state failed: retried every 5 minutes (and on SIGHUP) */
#define PROC_HEARTBEAT_MS       5000u   /* both ways; sent in START */
#define PROC_WATCHDOG_S         30.0    /* no frame for this long: SIGKILL and restart */
#define PROC_STOP_KILL_S        25.0    /* SHUTDOWN not obeyed by then: SIGKILL (all done within 30 s) */

/* Worker exit codes (SPEC section 1). */
#define PROC_EXIT_CLEAN  0
#define PROC_EXIT_ERROR  1
#define PROC_EXIT_FATAL  3
#define PROC_EXIT_SCHEMA 4

typedef enum {
    PROC_STARTING,   /* forked, rules not yet loaded (or waiting for its slot to be free) */
    PROC_CONNECTING, /* connecting to PostgreSQL */
    PROC_SNAPSHOT,   /* copying tables */
    PROC_STREAMING,  /* following the replication stream */
    PROC_BACKOFF,    /* exited; restarts when its timer fires */
    PROC_FAILED,     /* needs the operator; retried on SIGHUP or every 5 minutes */
    PROC_STOPPED,    /* stopped on purpose */
} proc_state;

const char *proc_state_name(proc_state st); /* "streaming", ... as in status.json */

/* ---- restart policy, pure (unit-tested) ---- */

typedef struct {
    unsigned attempt;    /* backoff restarts since the last healthy minute */
    bool schema_restart; /* the "at once" restart after exit 4 is used up */
} proc_backoff;

/*
 * Delay before backoff restart number attempt (0-based): 1 s doubling to
 * 60 s, minus up to a quarter of it as jitter (rnd picks how much), so the
 * delay lies in [3/4 d, d] and never exceeds the maximum.
 */
uint64_t proc_backoff_ms(unsigned attempt, uint32_t rnd);

typedef struct {
    proc_state state;  /* PROC_BACKOFF, PROC_FAILED or PROC_STOPPED */
    uint64_t delay_ms; /* before the next start (BACKOFF, FAILED); 0: at once */
} proc_decision;

/*
 * What a worker's exit means (SPEC section 1): a stop we asked for ->
 * stopped; exit 3 -> failed (retry in 5 minutes); exit 4 -> at once the
 * first time, then backoff; anything else (1, 0 unasked, a signal) ->
 * backoff. ran_s >= PROC_HEALTHY_S resets b first.
 */
proc_decision proc_exit_decide(proc_backoff *b, bool stop_requested, bool signaled, int code, double ran_s,
                               uint32_t rnd);

/* ---- the table ---- */

/* A validated rules generation: rules.yaml first, then its scripts. Owned by main. */
typedef struct {
    uint64_t generation;
    const frame_file *files;
    uint32_t n_files;
} proc_rules;

typedef struct {
    struct ev_loop *loop;
    pipeline *pipe;
    store *mem;              /* store = memory; NULL for postgres */
    const char *worker_path; /* absolute */
    const char *log_dir;     /* absolute, fixed for the process lifetime */
    uint8_t hash_key[FRAME_HASH_SIZE];
} proc_env;

typedef struct proc_table proc_table;

/* cfg and rules stay owned by the caller and must outlive their use (until the next reload). */
proc_table *proc_table_new(const proc_env *env, const config *cfg, const proc_rules *rules);
void proc_table_free(proc_table *pt); /* kills nothing: call after every worker is gone */

/* Start a worker for every database. 0, or -1 on ENOMEM. */
__attribute__((warn_unused_result)) int proc_table_start_all(proc_table *pt);

/*
 * Reload (SPEC section 2), mark and sweep: start added databases; stop
 * removed ones (WARN naming the slot kept); stop-then-start those whose
 * connection, secret, identity (WARN: old slot orphaned) or scan filters
 * changed, or all of them when a [pipeline] setting sent in START changed;
 * retry failed ones. rules non-NULL: a new generation for every running
 * worker. new_cfg replaces the old one, which the caller may free on return.
 * 0, or -1 on ENOMEM (the table stays usable).
 */
__attribute__((warn_unused_result)) int proc_table_reload(proc_table *pt, const config *new_cfg,
                                                          const proc_rules *rules);

/* A new rules generation for every running worker (rules file watch). */
void proc_table_set_rules(proc_table *pt, const proc_rules *rules);

/* logrotate: reopen every worker-NAME.log. */
void proc_table_reopen_logs(proc_table *pt);

/*
 * Stop every worker (SHUTDOWN drain, SIGKILL at PROC_STOP_KILL_S); done is
 * called once when the last one has exited (maybe before this returns).
 */
void proc_table_shutdown(proc_table *pt, void (*done)(void *ctx), void *ctx);

/* Rows for status; the array and its strings are valid until the table changes. */
size_t proc_table_status(proc_table *pt, const status_worker **out);

#endif /* PGSENSE_PROC_H_INCLUDED */
