/*
 * replproto: the streaming replication sub-protocol inside CopyData: XLogData
 * ('w') and primary keepalive ('k') parsing, standby status update ('r')
 * building. Pure byte work; the connection itself belongs to the worker.
 */
#ifndef PGSENSE_REPLPROTO_H_INCLUDED
#define PGSENSE_REPLPROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    REPL_XLOGDATA,  /* 'w' */
    REPL_KEEPALIVE, /* 'k' */
} repl_kind;

typedef struct {
    repl_kind kind;
    uint64_t wal_start;     /* 'w' only */
    uint64_t wal_end;       /* both: the server's current end of WAL */
    int64_t send_time;      /* microseconds since 2000-01-01 */
    bool reply_requested;   /* 'k' only: answer at once */
    const uint8_t *payload; /* 'w' only: the pgoutput message */
    size_t payload_len;
} repl_msg;

#define REPL_STATUS_LEN 34 /* 'r' + 3 LSNs + time + flag */

/* Parse one CopyData message; -1 on a short or unknown message. */
__attribute__((warn_unused_result)) int repl_parse(const uint8_t *buf, size_t len, repl_msg *out);

/*
 * Build a standby status update: write/flush/apply positions, the send time,
 * and whether the server should reply at once. Only flush advances a logical
 * slot. Fills out[REPL_STATUS_LEN].
 */
void repl_build_status(uint8_t out[REPL_STATUS_LEN], uint64_t write, uint64_t flush, uint64_t apply,
                       int64_t now_pg_us, bool reply);

/* Now, in microseconds since 2000-01-01 (PostgreSQL's epoch). */
int64_t repl_now_pg_us(void);

#endif /* PGSENSE_REPLPROTO_H_INCLUDED */
