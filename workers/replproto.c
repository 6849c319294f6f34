/* replproto: CopyData sub-protocol of streaming replication (see header). */
#include "replproto.h"

#include <time.h>

#define PG_EPOCH_OFFSET_S INT64_C(946684800)

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

int repl_parse(const uint8_t *buf, size_t len, repl_msg *out)
{
    if (len < 1)
        return -1;
    switch (buf[0]) {
    case 'w':
        if (len < 25) /* streaming header too small */
            return -1;
        out->kind = REPL_XLOGDATA;
        out->wal_start = be64(buf + 1);
        out->wal_end = be64(buf + 9);
        out->send_time = (int64_t)be64(buf + 17);
        out->reply_requested = false;
        out->payload = buf + 25;
        out->payload_len = len - 25;
        return 0;
    case 'k':
        if (len < 18)
            return -1;
        out->kind = REPL_KEEPALIVE;
        out->wal_start = 0;
        out->wal_end = be64(buf + 1);
        out->send_time = (int64_t)be64(buf + 9);
        out->reply_requested = buf[17] != 0;
        out->payload = NULL;
        out->payload_len = 0;
        return 0;
    default:
        return -1;
    }
}

void repl_build_status(uint8_t out[REPL_STATUS_LEN], uint64_t write, uint64_t flush, uint64_t apply,
                       int64_t now_pg_us, bool reply)
{
    out[0] = 'r';
    put_be64(out + 1, write);
    put_be64(out + 9, flush);
    put_be64(out + 17, apply);
    put_be64(out + 25, (uint64_t)now_pg_us);
    out[33] = reply ? 1 : 0;
}

int64_t repl_now_pg_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((int64_t)ts.tv_sec - PG_EPOCH_OFFSET_S) * 1000000 + ts.tv_nsec / 1000;
}
