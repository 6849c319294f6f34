/*
 * frame: the one protocol supervisor and workers speak over their socketpair:
 * frame layout, field encoding, the incremental decoder and the output queue.
 * It owns no socket and no policy: callers own fds, watchers and what a frame means.
 */
#ifndef PGSENSE_FRAME_H_INCLUDED
#define PGSENSE_FRAME_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Wire: u32 big-endian length (of type byte + payload), u8 type, payload.
 * Integers are big-endian; bool is one byte 0/1; a string or byte string is
 * u32 length + bytes (strings hold no NUL); an array is u32 count + elements.
 * FRAME_MAX bounds a whole encoded frame, length prefix included.
 *
 * Frozen forever, so that any two versions can tell each other apart: the
 * header layout and the start of HELLO (type 1, magic "PGSN", u16 version).
 */
#define FRAME_MAX              (1024u * 1024u)
#define FRAME_HEADER_SIZE      5u /* u32 length + u8 type */
#define FRAME_PROTOCOL_VERSION 1u
#define FRAME_MAGIC            "PGSN"
#define FRAME_HASH_SIZE        32u
#define FRAME_TIME_NULL        INT64_MIN /* commit_time of a snapshot finding */
/* Bytes of a FINDINGS frame before its first finding: header, seq, count. */
#define FRAME_FINDINGS_OVERHEAD (FRAME_HEADER_SIZE + 8u + 4u)
/* Default output queue cap (frame_outq_new(0)); never below 2 * FRAME_MAX. */
#define FRAME_OUTQ_DEFAULT_LIMIT (16u * 1024u * 1024u)

typedef enum {
    FRAME_OK = 0,  /* done: a frame decoded / bytes read / queue flushed or pushed */
    FRAME_AGAIN,   /* need more bytes (decode, read) or the socket is full (flush) */
    FRAME_EOF,     /* frame_decoder_read: the peer closed its end */
    FRAME_ERR,     /* malformed input, I/O error, invalid frame: close the channel */
    FRAME_VERSION, /* frame_next: peer's HELLO has another protocol version */
    FRAME_TOOBIG,  /* encode: the frame would exceed FRAME_MAX */
    FRAME_FULL,    /* encode: buffer too small; push: queue limit reached (nothing queued) */
} frame_status;

typedef enum {
    FRAME_HELLO = 1,    /* both: first frame each way */
    FRAME_START,        /* S->W: settings and secrets, right after HELLO */
    FRAME_RULES,        /* S->W: rules.yaml and its scripts */
    FRAME_RULES_RESULT, /* W->S: a RULES generation applied or refused */
    FRAME_FINDINGS,     /* W->S: some findings of one transaction or table */
    FRAME_TXN_END,      /* W->S: end of a transaction's findings */
    FRAME_TABLE_DONE,   /* W->S: end of a snapshotted table's findings */
    FRAME_ACK,          /* S->W: everything up to seq is durable */
    FRAME_CREDIT,       /* S->W: finding bytes the worker may send again */
    FRAME_HEARTBEAT,    /* both */
    FRAME_STATS,        /* W->S: counters and state for status and metrics */
    FRAME_SHUTDOWN,     /* S->W: stop */
    FRAME_EXIT,         /* W->S: why the worker is about to exit */
    FRAME_TYPE_MAX = FRAME_EXIT,
} frame_type;

typedef enum {
    FRAME_ROLE_ANY = 0,        /* decoder only: accept every frame type (tests, fuzzing) */
    FRAME_ROLE_SUPERVISOR = 1, /* pgsense-supervisor */
    FRAME_ROLE_WORKER = 2,     /* a per-database worker */
} frame_role;

typedef enum {
    FRAME_STORE_MEMORY = 0,   /* state in the supervisor */
    FRAME_STORE_POSTGRES = 1, /* state in the source database's etl schema */
} frame_store;

typedef enum {
    FRAME_PK_OMIT_MATCHING = 0, /* leave out key columns whose value matches a rule */
    FRAME_PK_OMIT = 1,          /* leave out every key */
} frame_pk_mode;

typedef enum {
    FRAME_SLOT_LOST_FAIL = 0,     /* state failed with the reason */
    FRAME_SLOT_LOST_RECREATE = 1, /* new slot and a full snapshot */
} frame_slot_lost;

typedef enum {
    FRAME_TABLE_PENDING = 0,  /* known, not snapshotted yet */
    FRAME_TABLE_SNAPSHOT = 1, /* snapshot running, not acknowledged */
    FRAME_TABLE_READY = 2,    /* snapshot acknowledged: stream only */
    FRAME_TABLE_ERROR = 3,    /* could not be read; retried */
} frame_table_state_kind;

typedef enum {
    FRAME_SEV_CRITICAL = 0,
    FRAME_SEV_HIGH = 1,
    FRAME_SEV_MEDIUM = 2,
    FRAME_SEV_LOW = 3,
    FRAME_SEV_INFO = 4,
} frame_severity;

typedef enum {
    FRAME_SOURCE_STREAM = 0,
    FRAME_SOURCE_SNAPSHOT = 1,
} frame_source;

typedef enum {
    FRAME_OP_INSERT = 0,
    FRAME_OP_UPDATE = 1,
    FRAME_OP_SNAPSHOT = 2,
} frame_op;

typedef enum {
    FRAME_WSTATE_STARTING = 0,
    FRAME_WSTATE_CONNECTING = 1,
    FRAME_WSTATE_SNAPSHOT = 2,
    FRAME_WSTATE_STREAMING = 3,
    FRAME_WSTATE_STOPPING = 4,
} frame_worker_state;

typedef enum {
    FRAME_SHUTDOWN_DRAIN = 0,     /* stop reading, send and get acked what is pending */
    FRAME_SHUTDOWN_IMMEDIATE = 1, /* exit now */
} frame_shutdown_mode;

/*
 * Field types. Decoded strings are never NULL and always NUL-terminated;
 * encoding treats a NULL string as "". Byte strings get a NUL after their
 * last byte when decoded (not counted in len), so text files can be parsed
 * in place.
 */
typedef struct {
    const char *const *v;
    uint32_t n;
} frame_strlist;

typedef struct { /* memory-store state of one table, handed to a restarted worker */
    const char *schema;
    const char *table;
    uint32_t relid;
    uint8_t state; /* frame_table_state_kind */
    uint64_t snapshot_lsn;
} frame_table_state;

typedef struct {
    uint16_t version; /* FRAME_PROTOCOL_VERSION */
    uint8_t role;     /* frame_role of the sender, never ANY */
    uint32_t pid;
} frame_hello;

typedef struct {
    const char *name; /* worker name ([databases] name) */
    /* database settings and secrets */
    const char *host;
    uint16_t port;
    const char *dbname;
    const char *username;
    const char *password;
    const char *publication;
    const char *sslmode;
    const char *sslrootcert;
    const char *sslcert;
    const char *sslkey;
    const char *identity; /* "host/dbname" */
    const char *slot_name;
    /* scan settings */
    frame_strlist include_schemas;
    frame_strlist exclude_tables;
    frame_strlist exclude_columns;
    bool scan_numeric;
    uint8_t primary_keys; /* frame_pk_mode */
    /* pipeline settings */
    uint8_t store; /* frame_store */
    uint32_t snapshot_connections;
    uint32_t publication_poll_s;
    uint64_t max_retained_wal; /* bytes, 0 = unlimited */
    uint8_t on_slot_lost;      /* frame_slot_lost */
    uint64_t credit_bytes;
    uint8_t hash_key[FRAME_HASH_SIZE]; /* key of the keyed value hash */
    uint8_t log_level;                 /* log.h log_level */
    uint8_t log_format;                /* log.h log_format */
    uint32_t heartbeat_ms;
    const frame_table_state *tables; /* store = memory: what the supervisor kept */
    uint32_t n_tables;
} frame_start;

typedef struct {
    const char *path;    /* as named in rules.yaml; the first file is rules.yaml */
    const uint8_t *data; /* NUL-terminated after decode */
    uint32_t len;
} frame_file;

typedef struct {
    uint64_t generation;
    const frame_file *files;
    uint32_t n_files;
} frame_rules;

typedef struct {
    uint64_t generation;
    bool ok;
    const char *error; /* "" when ok */
} frame_rules_result;

typedef struct {
    const char *name;
    const char *value;
} frame_pk;

typedef struct {
    const char *rule_id;
    const char *description;
    const char *category;
    uint8_t severity; /* frame_severity */
    const char *schema;
    const char *table;
    const char *column;
    const char *masked_sample;
    const frame_pk *primary_keys;
    uint32_t n_primary_keys;
    uint64_t lsn;
    uint8_t source;      /* frame_source */
    uint8_t op;          /* frame_op */
    int64_t commit_time; /* µs since the Unix epoch, FRAME_TIME_NULL for none */
    int64_t detected_at; /* µs since the Unix epoch */
    uint8_t value_hash[FRAME_HASH_SIZE];
} frame_finding;

typedef struct {
    uint64_t seq; /* of the TXN_END / TABLE_DONE these findings belong to */
    const frame_finding *findings;
    uint32_t n_findings;
} frame_findings;

typedef struct {
    uint64_t seq;
    uint64_t commit_lsn;
    uint64_t end_lsn;
    int64_t commit_time;
    uint32_t n_findings; /* in all FINDINGS frames of this seq */
} frame_txn_end;

typedef struct {
    uint64_t seq;
    uint32_t relid;
    const char *schema;
    const char *table;
    uint64_t snapshot_lsn;
} frame_table_done;

typedef struct {
    uint64_t seq;     /* acknowledged up to and including */
    uint64_t end_lsn; /* the worker may confirm up to here */
    uint64_t credit;  /* finding bytes returned */
} frame_ack;

typedef struct {
    uint64_t bytes;
} frame_credit;

typedef struct {
    int64_t sent_at; /* µs since the Unix epoch */
} frame_heartbeat;

typedef struct {
    const char *schema;
    const char *table;
    const char *reason;
} frame_table_error;

typedef struct {
    const char *rule_id;
    uint64_t count;
} frame_script_error;

typedef struct {
    uint8_t state; /* frame_worker_state */
    uint64_t events;
    uint64_t findings;
    uint64_t confirmed_lsn;
    uint64_t current_lsn;
    uint64_t lag_bytes;
    int64_t retained_wal_bytes; /* -1 unknown */
    const char *wal_status;     /* pg_replication_slots.wal_status, "" unknown */
    uint32_t tables_done;
    uint32_t tables_total;
    const frame_table_error *table_errors;
    uint32_t n_table_errors;
    uint64_t skipped_filter;
    uint64_t skipped_type;
    uint64_t skipped_scope;
    uint64_t reconnects;
    const frame_script_error *script_errors;
    uint32_t n_script_errors;
    uint64_t undelivered_findings;
} frame_stats;

typedef struct {
    uint8_t mode; /* frame_shutdown_mode */
    const char *reason;
} frame_shutdown;

typedef struct {
    uint8_t code; /* the exit code the worker is about to use */
    const char *reason;
} frame_exit;

typedef struct {
    frame_type type;
    union {
        frame_hello hello;
        frame_start start;
        frame_rules rules;
        frame_rules_result rules_result;
        frame_findings findings;
        frame_txn_end txn_end;
        frame_table_done table_done;
        frame_ack ack;
        frame_credit credit;
        frame_heartbeat heartbeat;
        frame_stats stats;
        frame_shutdown shutdown;
        frame_exit exit;
    };
} frame;

/* "HELLO", "FINDINGS", ...; "unknown" for anything else. */
const char *frame_type_name(int type);
const char *frame_status_name(frame_status st);

/* A HELLO of this protocol version from role (SUPERVISOR or WORKER). */
void frame_hello_init(frame *f, frame_role role, uint32_t pid);

/*
 * Encode f into buf. *len gets the encoded size, also on FRAME_FULL (buf too
 * small: retry with *len bytes; buf NULL and cap 0 asks for the size only)
 * and FRAME_TOOBIG (over FRAME_MAX). FRAME_ERR:
 * a field the decoder would refuse (enum out of range, array with NULL
 * items); err (may be NULL) gets the reason.
 */
__attribute__((warn_unused_result)) frame_status frame_encode(const frame *f, uint8_t *buf, size_t cap,
                                                              size_t *len, char *err, size_t errlen);

/*
 * Encoded size of one finding inside a FINDINGS frame, and how many of the
 * first n findings fit in one FINDINGS frame of at most limit bytes (use
 * FRAME_MAX). 0 means findings[0] alone is too big (shorten its texts) or
 * invalid (an enum out of range), for which frame_finding_size gives SIZE_MAX.
 */
size_t frame_finding_size(const frame_finding *fi);
uint32_t frame_findings_fit(const frame_finding *findings, uint32_t n, size_t limit);

/* Field-by-field equality (NULL string == ""); for tests and the fuzzer. */
bool frame_equal(const frame *a, const frame *b);

/*
 * Incremental decoder, one per channel. It owns a buffer that grows up to
 * FRAME_MAX and no further, and an arena for the decoded frame.
 *
 * Lifetime: every pointer in a frame from frame_next (strings, arrays, byte
 * strings) points into the decoder and stays valid until the next
 * frame_next or frame_decoder_free; copy what you keep. Consumed input and
 * decoded data are zeroed when released (START carries secrets).
 *
 * self is the receiving side: a supervisor's decoder refuses frames only a
 * supervisor sends and a HELLO that claims role supervisor, and the other
 * way round; FRAME_ROLE_ANY accepts all. Frame order (HELLO first, START
 * next) is the caller's to enforce.
 *
 * After FRAME_ERR or FRAME_VERSION the decoder stays failed: every later
 * frame_next returns the same status.
 */
typedef struct frame_decoder frame_decoder;

frame_decoder *frame_decoder_new(frame_role self); /* NULL on ENOMEM */
void frame_decoder_free(frame_decoder *dec);

/*
 * One read(2) from a non-blocking fd (EINTR retried) into the buffer.
 * FRAME_OK: bytes were read, or the buffer is full: call frame_next until
 * it returns FRAME_AGAIN. FRAME_AGAIN: nothing to read (EAGAIN). FRAME_EOF:
 * the peer closed (frame_decoder_buffered() > 0 then means a truncated
 * frame). FRAME_ERR: read failed, errno kept, frame_decoder_error() says so.
 */
__attribute__((warn_unused_result)) frame_status frame_decoder_read(frame_decoder *dec, int fd);

/*
 * Append up to n bytes (tests, fuzzing); returns how many were taken. Fewer
 * than n: the buffer is full or (0) ENOMEM; call frame_next first.
 */
__attribute__((warn_unused_result)) size_t frame_decoder_feed(frame_decoder *dec, const void *bytes,
                                                              size_t n);

/*
 * Decode the next complete frame into *out. FRAME_AGAIN: no complete frame
 * buffered (a short read is never a frame). FRAME_ERR: malformed (length
 * over FRAME_MAX, checked before the body is buffered; unknown type; short,
 * trailing or invalid payload; a type not meant for this side); the error
 * text names the problem, never payload content. FRAME_VERSION: a HELLO
 * with magic "PGSN" and another protocol version: out->hello.version holds
 * the peer's version (role and pid are 0): "restart the supervisor".
 */
__attribute__((warn_unused_result)) frame_status frame_next(frame_decoder *dec, frame *out);

const char *frame_decoder_error(const frame_decoder *dec); /* "" when none */
size_t frame_decoder_buffered(const frame_decoder *dec);   /* bytes not yet decoded */
size_t frame_decoder_alloc(const frame_decoder *dec);      /* input buffer size (tests) */

/*
 * Output queue, one per channel: encoded frames waiting for the socket.
 * Writes use send(MSG_NOSIGNAL), so a closed peer gives EPIPE, not SIGPIPE
 * (write(2) for an fd that is not a socket: callers ignore SIGPIPE anyway).
 * The limit bounds the bytes queued: push refuses (FRAME_FULL) a frame that
 * would go over it, so a caller keeps room for its control frames and stops
 * producing while frame_outq_pending() is high (backpressure).
 */
typedef struct frame_outq frame_outq;

frame_outq *frame_outq_new(size_t limit); /* 0: FRAME_OUTQ_DEFAULT_LIMIT; NULL on ENOMEM */
void frame_outq_free(frame_outq *q);

/* Encode and append f: FRAME_OK, FRAME_TOOBIG, FRAME_FULL or FRAME_ERR (invalid frame, ENOMEM). */
__attribute__((warn_unused_result)) frame_status frame_outq_push(frame_outq *q, const frame *f);

/*
 * Write as much as fd takes (partial writes kept, EINTR retried). FRAME_OK:
 * queue empty. FRAME_AGAIN: bytes left, arm the write watcher. FRAME_ERR:
 * send failed (errno kept, EPIPE when the peer is gone): close the channel.
 */
__attribute__((warn_unused_result)) frame_status frame_outq_flush(frame_outq *q, int fd);

size_t frame_outq_pending(const frame_outq *q); /* bytes queued, not yet written */
size_t frame_outq_limit(const frame_outq *q);
const char *frame_outq_error(const frame_outq *q); /* "" when none */

#endif /* PGSENSE_FRAME_H_INCLUDED */
