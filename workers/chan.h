/*
 * chan: the worker's end of the supervisor socketpair: frame decoding and
 * the output queue on libev, heartbeats, and the credit the supervisor
 * grants. Frames received are handed to one callback; owns nothing else.
 */
#ifndef PGSENSE_CHAN_H_INCLUDED
#define PGSENSE_CHAN_H_INCLUDED

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "frame.h"

typedef struct chan chan;

/* A decoded frame (valid during the call). */
typedef void (*chan_frame_cb)(void *ctx, const frame *f);
/* The channel is gone: EOF (supervisor died or closed) or an error; reason is for the log. */
typedef void (*chan_closed_cb)(void *ctx, bool eof, const char *reason);

chan *chan_new(struct ev_loop *loop, int fd, chan_frame_cb on_frame, chan_closed_cb on_closed, void *ctx);
void chan_free(chan *c);

/* Queue a frame, written at the end of this loop iteration (or at once when
 * 64 KiB are queued); -1 if it cannot be queued (too big, queue full, channel
 * closed). */
__attribute__((warn_unused_result)) int chan_send(chan *c, const frame *f);

/* Send FINDINGS: like chan_send, and subtracts the encoded size from the credit. */
__attribute__((warn_unused_result)) int chan_send_findings(chan *c, const frame *f);

/* Heartbeats every interval_ms from now on (0 stops them). */
void chan_heartbeat(chan *c, uint32_t interval_ms);

void chan_credit_set(chan *c, int64_t bytes);
void chan_credit_add(chan *c, uint64_t bytes);
int64_t chan_credit(const chan *c);
/* Bytes queued for the supervisor and not yet written. */
size_t chan_pending(const chan *c);
/* Whether the queue is so full that producers should stop (backpressure). */
bool chan_congested(const chan *c);

/* Write what is queued now, blocking up to timeout_ms (used only just before exit). */
void chan_flush_blocking(chan *c, int timeout_ms);

#endif /* PGSENSE_CHAN_H_INCLUDED */
