/*
 * driver: plays the supervisor's part for one pgsense-worker in tests. It
 * starts the worker on a socketpair, sends HELLO, START and RULES, prints
 * every finding and unit end as one JSON line on stdout, and acknowledges
 * everything (optionally late, or never). SIGTERM/SIGINT: SHUTDOWN drain.
 *
 *   driver --worker PATH --rules FILE --dsn-host H --port P --dbname D
 *          [--user U] [--publication P] [--name N] [--store-ready RELID:SCHEMA:TABLE ...]
 *          [--no-ack] [--ack-delay-ms N] [--credit BYTES]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "rules.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(4 << 20);
    size_t n = buf ? fread(buf, 1, (4 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    uint64_t seq, end_lsn, due_ms;
} pending;

int main(int argc, char **argv)
{
    const char *worker = NULL, *rules_path = NULL, *host = "localhost", *dbname = NULL, *user = NULL;
    const char *publication = "pgsense_pub", *name = "test";
    int port = 5432, ack_delay = 0;
    bool no_ack = false;
    uint64_t credit = 8 << 20;
    frame_table_state ready[64];
    uint32_t n_ready = 0;
    static const struct option opts[] = {
        {"worker", required_argument, NULL, 'w'},   {"rules", required_argument, NULL, 'r'},
        {"host", required_argument, NULL, 'h'},     {"port", required_argument, NULL, 'p'},
        {"dbname", required_argument, NULL, 'd'},   {"user", required_argument, NULL, 'u'},
        {"publication", required_argument, NULL, 'P'}, {"name", required_argument, NULL, 'n'},
        {"no-ack", no_argument, NULL, 'N'},         {"ack-delay-ms", required_argument, NULL, 'D'},
        {"credit", required_argument, NULL, 'c'},   {"store-ready", required_argument, NULL, 'R'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'w': worker = optarg; break;
        case 'r': rules_path = optarg; break;
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'd': dbname = optarg; break;
        case 'u': user = optarg; break;
        case 'P': publication = optarg; break;
        case 'n': name = optarg; break;
        case 'N': no_ack = true; break;
        case 'D': ack_delay = atoi(optarg); break;
        case 'c': credit = strtoull(optarg, NULL, 10); break;
        case 'R': {
            if (n_ready == 64)
                break;
            char *a = strdup(optarg), *s1 = strchr(a, ':'), *s2 = s1 ? strchr(s1 + 1, ':') : NULL;
            if (!s1 || !s2)
                return 2;
            *s1 = *s2 = '\0';
            ready[n_ready++] = (frame_table_state){.schema = s1 + 1, .table = s2 + 1,
                                                   .relid = (uint32_t)atoi(a), .state = FRAME_TABLE_READY};
            break;
        }
        default: return 2;
        }
    }
    if (!worker || !rules_path || !dbname) {
        fprintf(stderr, "usage: driver --worker PATH --rules FILE --host H --port P --dbname D ...\n");
        return 2;
    }
    rules_set *rs;
    rules_diag diag;
    if (rules_load(rules_path, &rs, &diag) < 0) {
        rules_diag_print(&diag, stderr, NULL);
        return 1;
    }
    frame_file files[64];
    uint32_t nfiles = 0;
    size_t len;
    char *yaml = slurp(rules_path, &len);
    if (!yaml)
        return 1;
    files[nfiles++] = (frame_file){.path = rules_path, .data = (const uint8_t *)yaml, .len = (uint32_t)len};
    for (size_t i = 0; i < rules_count(rs) && nfiles < 64; i++) {
        const char *p = rules_script_path(rs, i);
        if (!p)
            continue;
        size_t sl;
        const char *src = rules_script_source(rs, i, &sl);
        files[nfiles++] = (frame_file){.path = p, .data = (const uint8_t *)src, .len = (uint32_t)sl};
    }

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        if (dup2(sv[1], 3) < 0)
            _exit(127);
        char fdarg[] = "3";
        execl(worker, worker, "--fd", fdarg, "--name", name, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    int fd = sv[0];
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_SUPERVISOR);
    frame_outq *out = frame_outq_new(0);
    frame f;
    frame_hello_init(&f, FRAME_ROLE_SUPERVISOR, (uint32_t)getpid());
    if (frame_outq_push(out, &f) != FRAME_OK)
        return 1;
    frame s = {.type = FRAME_START};
    s.start.name = name;
    s.start.host = host;
    s.start.port = (uint16_t)port;
    s.start.dbname = dbname;
    s.start.username = user;
    s.start.publication = publication;
    char identity[512];
    snprintf(identity, sizeof(identity), "%s/%s", host, dbname);
    s.start.identity = identity;
    s.start.slot_name = getenv("DRIVER_SLOT") ? getenv("DRIVER_SLOT") : "pgsense_test";
    s.start.snapshot_connections = 2;
    s.start.publication_poll_s = getenv("DRIVER_POLL_S") ? (uint32_t)atoi(getenv("DRIVER_POLL_S")) : 60;
    s.start.credit_bytes = credit;
    s.start.log_level = 0;
    s.start.heartbeat_ms = 1000;
    s.start.tables = ready;
    s.start.n_tables = n_ready;
    for (unsigned i = 0; i < FRAME_HASH_SIZE; i++)
        s.start.hash_key[i] = (uint8_t)i;
    if (frame_outq_push(out, &s) != FRAME_OK)
        return 1;
    frame r = {.type = FRAME_RULES};
    r.rules.generation = 1;
    r.rules.files = files;
    r.rules.n_files = nfiles;
    if (frame_outq_push(out, &r) != FRAME_OK)
        return 1;

    pending *pend = calloc(1 << 20, sizeof(pending));
    size_t npend = 0, head = 0;
    bool shutdown_sent = false;
    int status = -1;
    for (;;) {
        if (stop_requested && !shutdown_sent) {
            frame sd = {.type = FRAME_SHUTDOWN};
            sd.shutdown.mode = FRAME_SHUTDOWN_DRAIN;
            sd.shutdown.reason = "driver stop";
            if (frame_outq_push(out, &sd) != FRAME_OK)
                break;
            shutdown_sent = true;
        }
        int64_t now = now_ms();
        while (head < npend && pend[head].due_ms <= (uint64_t)now) {
            frame a = {.type = FRAME_ACK};
            a.ack.seq = pend[head].seq;
            a.ack.end_lsn = pend[head].end_lsn;
            if (frame_outq_push(out, &a) != FRAME_OK)
                break;
            head++;
        }
        if (frame_outq_flush(out, fd) == FRAME_ERR)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN | (frame_outq_pending(out) ? POLLOUT : 0)};
        int pr = poll(&p, 1, 50);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        frame_status rs2 = frame_decoder_read(dec, fd);
        frame in;
        while (frame_next(dec, &in) == FRAME_OK) {
            switch (in.type) {
            case FRAME_FINDINGS:
                for (uint32_t i = 0; i < in.findings.n_findings; i++) {
                    const frame_finding *fi = &in.findings.findings[i];
                    printf("{\"seq\":%" PRIu64 ",\"rule_id\":", in.findings.seq);
                    json_str(fi->rule_id);
                    printf(",\"schema\":");
                    json_str(fi->schema);
                    printf(",\"table\":");
                    json_str(fi->table);
                    printf(",\"column\":");
                    json_str(fi->column);
                    printf(",\"masked\":");
                    json_str(fi->masked_sample);
                    printf(",\"source\":%u,\"op\":%u,\"lsn\":%" PRIu64 ",\"commit_time\":%" PRId64 ",\"pks\":[",
                           fi->source, fi->op, fi->lsn, fi->commit_time == FRAME_TIME_NULL ? 0 : fi->commit_time);
                    for (uint32_t k = 0; k < fi->n_primary_keys; k++) {
                        printf("%s[", k ? "," : "");
                        json_str(fi->primary_keys[k].name);
                        putchar(',');
                        json_str(fi->primary_keys[k].value);
                        putchar(']');
                    }
                    printf("]}\n");
                }
                {
                    frame c = {.type = FRAME_CREDIT};
                    c.credit.bytes = 0;
                    size_t l = 0;
                    if (frame_encode(&in, NULL, 0, &l, NULL, 0) != FRAME_ERR)
                        c.credit.bytes = l;
                    if (!no_ack && frame_outq_push(out, &c) != FRAME_OK)
                        fprintf(stderr, "driver: credit not queued\n");
                }
                break;
            case FRAME_TXN_END:
            case FRAME_TABLE_DONE: {
                bool txn = in.type == FRAME_TXN_END;
                uint64_t seq = txn ? in.txn_end.seq : in.table_done.seq;
                if (txn)
                    printf("{\"txn_end\":%" PRIu64 ",\"end_lsn\":%" PRIu64 ",\"n\":%u}\n", seq, in.txn_end.end_lsn,
                           in.txn_end.n_findings);
                else {
                    printf("{\"table_done\":%" PRIu64 ",\"relid\":%u,\"table\":", seq, in.table_done.relid);
                    json_str(in.table_done.table);
                    printf("}\n");
                }
                if (!no_ack && npend < (1 << 20))
                    pend[npend++] = (pending){seq, txn ? in.txn_end.end_lsn : 0, (uint64_t)(now + ack_delay)};
                break;
            }
            case FRAME_STATS:
                printf("{\"stats\":{\"state\":%u,\"events\":%" PRIu64 ",\"findings\":%" PRIu64
                       ",\"tables_done\":%u,\"tables_total\":%u,\"table_errors\":%u,\"confirmed\":%" PRIu64
                       ",\"retained\":%" PRId64 ",\"skipped_type\":%" PRIu64 "}}\n",
                       in.stats.state, in.stats.events, in.stats.findings, in.stats.tables_done,
                       in.stats.tables_total, in.stats.n_table_errors, in.stats.confirmed_lsn,
                       in.stats.retained_wal_bytes, in.stats.skipped_type);
                for (uint32_t k = 0; k < in.stats.n_table_errors; k++) {
                    printf("{\"table_error\":");
                    json_str(in.stats.table_errors[k].table);
                    printf(",\"reason\":");
                    json_str(in.stats.table_errors[k].reason);
                    printf("}\n");
                }
                break;
            case FRAME_RULES_RESULT:
                printf("{\"rules_ok\":%s}\n", in.rules_result.ok ? "true" : "false");
                break;
            case FRAME_EXIT:
                printf("{\"exit\":%u,\"reason\":", in.exit.code);
                json_str(in.exit.reason);
                printf("}\n");
                break;
            default:
                break;
            }
            fflush(stdout);
        }
        if (rs2 == FRAME_EOF || rs2 == FRAME_ERR)
            break;
    }
    if (waitpid(pid, &status, 0) == pid) {
        if (WIFEXITED(status))
            printf("{\"worker_exit\":%d}\n", WEXITSTATUS(status));
        else
            printf("{\"worker_signal\":%d}\n", WTERMSIG(status));
    }
    fflush(stdout);
    frame_decoder_free(dec);
    frame_outq_free(out);
    rules_free(rs);
    free(yaml);
    free(pend);
    return 0;
}
