/*
 * fake_worker: a stand-in for pgsense-worker in the supervisor's integration
 * tests. Speaks the frame protocol on fd 3; what it does depends on the
 * worker name in START (prefix): ok, crash, fatal, schema, silent, badframe,
 * oldproto, snap, rulesfail, burst. Every step is reported on stderr, which the
 * supervisor writes to worker-NAME.log, where the tests read it.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "frame.h"

extern char **environ;

static char name[128] = "?";
static frame_outq *q;
static frame_decoder *dec; /* globals: still reachable at exit, whichever path exits */
static int fd = 3;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fake-worker %s: ", name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

static bool is(const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

static void flush_all(void)
{
    for (;;) {
        frame_status st = frame_outq_flush(q, fd);
        if (st == FRAME_OK)
            return;
        if (st != FRAME_AGAIN) {
            say("send failed: %s", frame_outq_error(q));
            exit(1);
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        (void)poll(&p, 1, 1000);
    }
}

static void send_frame(const frame *f)
{
    if (frame_outq_push(q, f) != FRAME_OK) {
        say("cannot queue a frame");
        exit(1);
    }
    flush_all();
}

static void send_exit(int code, const char *reason)
{
    frame f = {.type = FRAME_EXIT};
    f.exit.code = (uint8_t)code;
    f.exit.reason = reason;
    send_frame(&f);
    say("exit %d: %s", code, reason);
    exit(code);
}

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void report_env_and_fds(void)
{
    char buf[1024] = "";
    for (char **e = environ; *e; e++) {
        size_t n = strcspn(*e, "=");
        strncat(buf, *e, n < 60 ? n : 60);
        strncat(buf, ",", sizeof(buf) - strlen(buf) - 1);
    }
    say("env: %s", buf);
    char fds[512] = "";
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        struct dirent *de;
        while ((de = readdir(d))) {
            int n = atoi(de->d_name);
            if (de->d_name[0] == '.' || n <= 3 || n == self)
                continue;
            char one[16];
            snprintf(one, sizeof(one), "%d,", n);
            strncat(fds, one, sizeof(fds) - strlen(fds) - 1);
        }
        closedir(d);
    }
    say("fds: %s", fds[0] ? fds : "ok");
}

/* burst: BURST_FRAMES one-finding FINDINGS frames queued and written at
 * once; the supervisor should return their credit in a few CREDIT frames,
 * not one per FINDINGS frame. Returns the credit those frames charged. */
#define BURST_FRAMES 300

static uint64_t send_burst(uint64_t *seq)
{
    uint64_t charged = 0;
    for (int i = 0; i < BURST_FRAMES; i++) {
        frame_finding fi = {.rule_id = "email", .description = "Email address", .category = "pii",
                            .schema = "public", .table = "users", .column = "email",
                            .masked_sample = "b***@example.com", .lsn = 0x16B3748, .commit_time = now_us(),
                            .detected_at = now_us()};
        frame f = {.type = FRAME_FINDINGS};
        f.findings.seq = ++*seq;
        f.findings.findings = &fi;
        f.findings.n_findings = 1;
        size_t len = 0;
        if (frame_encode(&f, NULL, 0, &len, NULL, 0) == FRAME_ERR || frame_outq_push(q, &f) != FRAME_OK) {
            say("cannot queue a burst frame");
            exit(1);
        }
        charged += len;
    }
    flush_all();
    return charged;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--name") == 0)
            snprintf(name, sizeof(name), "%s", argv[i + 1]);
    q = frame_outq_new(0);
    dec = frame_decoder_new(FRAME_ROLE_WORKER);
    if (!q || !dec)
        return 1;

    if (strncmp(name, "oldproto", 8) == 0) {
        /* a HELLO of protocol version 99, by hand: len, type, magic, version, role, pid */
        uint8_t b[] = {0, 0, 0, 12, FRAME_HELLO, 'P', 'G', 'S', 'N', 0, 99, FRAME_ROLE_WORKER, 0, 0, 0, 1};
        if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
            return 1;
        say("sent a HELLO of protocol version 99");
    } else {
        frame h;
        frame_hello_init(&h, FRAME_ROLE_WORKER, (uint32_t)getpid());
        send_frame(&h);
    }

    bool started = false, silent = false;
    uint32_t hb_ms = 5000;
    uint64_t seq = 0, events = 0;
    int64_t last_beat = now_us();
    bool heard_beat = false;
    uint64_t burst_charged = 0, credit_got = 0, credit_frames = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 200);
        if (r < 0 && errno != EINTR)
            return 1;
        if (r > 0) {
            frame_status rs = frame_decoder_read(dec, fd);
            if (rs == FRAME_ERR) {
                say("read error: %s", frame_decoder_error(dec));
                return 1;
            }
            frame f;
            frame_status st;
            while ((st = frame_next(dec, &f)) == FRAME_OK) {
                switch (f.type) {
                case FRAME_HELLO:
                    break;
                case FRAME_START:
                    snprintf(name, sizeof(name), "%s", f.start.name);
                    hb_ms = f.start.heartbeat_ms;
                    started = true;
                    say("started pid %d slot %s identity %s tables=%u heartbeat_ms=%u password=%s",
                        (int)getpid(), f.start.slot_name, f.start.identity, f.start.n_tables, hb_ms,
                        f.start.password && f.start.password[0] ? "set" : "none");
                    for (uint32_t i = 0; i < f.start.n_tables; i++)
                        say("table %s.%s relid %u state %u", f.start.tables[i].schema,
                            f.start.tables[i].table, f.start.tables[i].relid, f.start.tables[i].state);
                    report_env_and_fds();
                    if (is("crash")) {
                        say("simulated crash: FAKE-CRASH-MESSAGE");
                        return 1;
                    }
                    if (is("fatal"))
                        send_exit(3, "password authentication failed (fake)");
                    if (is("schema"))
                        send_exit(4, "schema change it could not apply (fake)");
                    if (is("silent"))
                        silent = true;
                    if (is("badframe")) {
                        uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x42};
                        if (write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
                            return 1;
                        say("sent a malformed frame");
                    }
                    break;
                case FRAME_RULES: {
                    say("rules generation %llu files=%u", (unsigned long long)f.rules.generation,
                        f.rules.n_files);
                    if (silent)
                        break;
                    frame rr = {.type = FRAME_RULES_RESULT};
                    rr.rules_result.generation = f.rules.generation;
                    rr.rules_result.ok = !(is("rulesfail") && f.rules.generation > 1);
                    rr.rules_result.error = rr.rules_result.ok ? "" : "out of memory (fake)";
                    send_frame(&rr);
                    if (is("burst") && f.rules.generation == 1) {
                        burst_charged = send_burst(&seq);
                        say("burst of %d FINDINGS frames sent, %llu bytes charged", BURST_FRAMES,
                            (unsigned long long)burst_charged);
                    }
                    if (is("snap") && f.rules.generation == 1) {
                        frame td = {.type = FRAME_TABLE_DONE};
                        td.table_done.seq = ++seq;
                        td.table_done.relid = 16384;
                        td.table_done.schema = "public";
                        td.table_done.table = "users";
                        td.table_done.snapshot_lsn = 0x16B3748;
                        send_frame(&td);
                    }
                    break;
                }
                case FRAME_ACK:
                    say("ack seq=%llu", (unsigned long long)f.ack.seq);
                    if (is("snap")) {
                        say("snapshot acknowledged; simulated crash");
                        return 1;
                    }
                    break;
                case FRAME_CREDIT:
                    credit_frames++;
                    credit_got += f.credit.bytes;
                    if (is("burst") && burst_charged && credit_got == burst_charged)
                        say("burst credit returned: %llu bytes in %llu CREDIT frames",
                            (unsigned long long)credit_got, (unsigned long long)credit_frames);
                    break;
                case FRAME_HEARTBEAT:
                    if (!heard_beat)
                        say("heartbeat from the supervisor");
                    heard_beat = true;
                    break;
                case FRAME_SHUTDOWN:
                    say("shutdown mode=%u reason=%s", f.shutdown.mode, f.shutdown.reason);
                    return 0;
                default:
                    say("frame %s", frame_type_name(f.type));
                    break;
                }
            }
            if (st != FRAME_AGAIN) {
                say("bad frame from the supervisor: %s", frame_decoder_error(dec));
                return 1;
            }
            if (rs == FRAME_EOF) {
                say("supervisor gone (EOF)");
                return 0;
            }
        }
        if (started && !silent && now_us() - last_beat >= (int64_t)(hb_ms > 1000 ? 1000 : hb_ms) * 1000) {
            last_beat = now_us();
            frame hb = {.type = FRAME_HEARTBEAT};
            hb.heartbeat.sent_at = last_beat;
            send_frame(&hb);
            events += 10;
            frame sf = {.type = FRAME_STATS};
            sf.stats.state = FRAME_WSTATE_STREAMING;
            sf.stats.events = events;
            sf.stats.confirmed_lsn = 0x16B3748;
            sf.stats.retained_wal_bytes = 81920;
            sf.stats.wal_status = "reserved";
            sf.stats.tables_done = 3;
            sf.stats.tables_total = 3;
            send_frame(&sf);
            frame te = {.type = FRAME_TXN_END};
            te.txn_end.seq = ++seq;
            te.txn_end.end_lsn = 0x16B3748 + seq;
            send_frame(&te);
        }
    }
}
