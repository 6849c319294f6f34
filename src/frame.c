/*
 * frame: encoding and decoding of the supervisor/worker protocol, driven by
 * one field table per frame type, plus the decoder's buffer and the output
 * queue. No logging and no fd ownership: callers decide what an error means.
 */
#include "frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define DEC_INITIAL_ALLOC  (16u * 1024u)
#define ARENA_CHUNK        (64u * 1024u)
#define OUTQ_INITIAL_ALLOC (16u * 1024u)
#define OUTQ_KEEP_ALLOC    (1024u * 1024u) /* an emptied queue bigger than this is released */

/* ------------------------------------------------------------------------ */
/* Field tables: each frame type is described once, as data; the encoder,   */
/* the decoder and frame_equal all walk the same table, so they cannot drift. */

typedef enum {
    FK_MAGIC,   /* "PGSN", no storage */
    FK_VERSION, /* u16 protocol version, checked on decode */
    FK_U8,
    FK_ENUM, /* u8 within [min, max] */
    FK_BOOL,
    FK_U16,
    FK_U32,
    FK_U64,
    FK_I64,
    FK_STR,   /* const char *, u32 length + bytes, no NUL */
    FK_BYTES, /* const uint8_t * at off, u32 length at off2 */
    FK_HASH,  /* uint8_t[FRAME_HASH_SIZE] inline */
    FK_ARRAY, /* const T * at off, u32 count at off2, T described by elem */
} field_kind;

typedef struct fieldset fieldset;

typedef struct {
    const char *name;
    field_kind kind;
    uint8_t min, max; /* FK_ENUM */
    size_t off, off2;
    const fieldset *elem; /* FK_ARRAY */
} field;

struct fieldset {
    const char *name; /* for error texts */
    const field *v;
    size_t n;
    size_t size; /* sizeof the struct it describes */
};

/* clang-format cannot lay out brace initialisers in macros. */
// clang-format off
/* Compile-time check that a member has the C type its field kind handles. */
#define TYPE_IS(S, m, T) (0 * sizeof(char[_Generic(((S *)0)->m, T : 1, default : -1)]))
#define SIZE_IS(S, m, n) (0 * sizeof(char[sizeof(((S *)0)->m) == (n) ? 1 : -1]))

#define F_MAGIC              {"magic", FK_MAGIC, 0, 0, 0, 0, NULL}
#define F_VERSION(S, m)      {#m, FK_VERSION, 0, 0, offsetof(S, m) + TYPE_IS(S, m, uint16_t), 0, NULL}
#define F_U8(S, m)           {#m, FK_U8, 0, 0, offsetof(S, m) + TYPE_IS(S, m, uint8_t), 0, NULL}
#define F_ENUM(S, m, lo, hi) {#m, FK_ENUM, (lo), (hi), offsetof(S, m) + TYPE_IS(S, m, uint8_t), 0, NULL}
#define F_BOOL(S, m)         {#m, FK_BOOL, 0, 0, offsetof(S, m) + TYPE_IS(S, m, bool), 0, NULL}
#define F_U16(S, m)          {#m, FK_U16, 0, 0, offsetof(S, m) + TYPE_IS(S, m, uint16_t), 0, NULL}
#define F_U32(S, m)          {#m, FK_U32, 0, 0, offsetof(S, m) + TYPE_IS(S, m, uint32_t), 0, NULL}
#define F_U64(S, m)          {#m, FK_U64, 0, 0, offsetof(S, m) + TYPE_IS(S, m, uint64_t), 0, NULL}
#define F_I64(S, m)          {#m, FK_I64, 0, 0, offsetof(S, m) + TYPE_IS(S, m, int64_t), 0, NULL}
#define F_STR(S, m)          {#m, FK_STR, 0, 0, offsetof(S, m) + TYPE_IS(S, m, const char *), 0, NULL}
#define F_HASH(S, m)         {#m, FK_HASH, 0, 0, offsetof(S, m) + SIZE_IS(S, m, FRAME_HASH_SIZE), 0, NULL}
#define F_BYTES(S, m, len)                                                              \
    {#m, FK_BYTES, 0, 0, offsetof(S, m) + TYPE_IS(S, m, const uint8_t *),              \
     offsetof(S, len) + TYPE_IS(S, len, uint32_t), NULL}
#define F_ARRAY(S, m, count, set)                                                       \
    {#m, FK_ARRAY, 0, 0, offsetof(S, m), offsetof(S, count) + TYPE_IS(S, count, uint32_t), &(set)}
#define F_STRLIST(S, m)                                                                 \
    {#m, FK_ARRAY, 0, 0, offsetof(S, m.v) + TYPE_IS(S, m.v, const char *const *),      \
     offsetof(S, m.n) + TYPE_IS(S, m.n, uint32_t), &strlist_item_set}
#define SET(name, fields, S) {(name), (fields), sizeof(fields) / sizeof((fields)[0]), sizeof(S)}
// clang-format on

typedef struct {
    const char *s;
} str_item;

static const field strlist_item_fields[] = {F_STR(str_item, s)};
static const fieldset strlist_item_set = {"item", strlist_item_fields, 1, sizeof(const char *)};

static const field hello_fields[] = {
    F_MAGIC,
    F_VERSION(frame_hello, version),
    F_ENUM(frame_hello, role, FRAME_ROLE_SUPERVISOR, FRAME_ROLE_WORKER),
    F_U32(frame_hello, pid),
};

static const field table_state_fields[] = {
    F_STR(frame_table_state, schema),       F_STR(frame_table_state, table),
    F_U32(frame_table_state, relid),        F_ENUM(frame_table_state, state, 0, FRAME_TABLE_ERROR),
    F_U64(frame_table_state, snapshot_lsn),
};
static const fieldset table_state_set = SET("tables", table_state_fields, frame_table_state);

static const field start_fields[] = {
    F_STR(frame_start, name),
    F_STR(frame_start, host),
    F_U16(frame_start, port),
    F_STR(frame_start, dbname),
    F_STR(frame_start, username),
    F_STR(frame_start, password),
    F_STR(frame_start, publication),
    F_STR(frame_start, sslmode),
    F_STR(frame_start, sslrootcert),
    F_STR(frame_start, sslcert),
    F_STR(frame_start, sslkey),
    F_STR(frame_start, identity),
    F_STR(frame_start, slot_name),
    F_STRLIST(frame_start, include_schemas),
    F_STRLIST(frame_start, exclude_tables),
    F_STRLIST(frame_start, exclude_columns),
    F_BOOL(frame_start, scan_numeric),
    F_ENUM(frame_start, primary_keys, 0, FRAME_PK_OMIT),
    F_ENUM(frame_start, store, 0, FRAME_STORE_POSTGRES),
    F_U32(frame_start, snapshot_connections),
    F_U32(frame_start, publication_poll_s),
    F_U64(frame_start, max_retained_wal),
    F_ENUM(frame_start, on_slot_lost, 0, FRAME_SLOT_LOST_RECREATE),
    F_U64(frame_start, credit_bytes),
    F_HASH(frame_start, hash_key),
    F_ENUM(frame_start, log_level, 0, LOG_LVL_FATAL),
    F_ENUM(frame_start, log_format, 0, LOG_FMT_JSON),
    F_U32(frame_start, heartbeat_ms),
    F_ARRAY(frame_start, tables, n_tables, table_state_set),
};

static const field file_fields[] = {
    F_STR(frame_file, path),
    F_BYTES(frame_file, data, len),
};
static const fieldset file_set = SET("files", file_fields, frame_file);

static const field rules_fields[] = {
    F_U64(frame_rules, generation),
    F_ARRAY(frame_rules, files, n_files, file_set),
};

static const field rules_result_fields[] = {
    F_U64(frame_rules_result, generation),
    F_BOOL(frame_rules_result, ok),
    F_STR(frame_rules_result, error),
};

static const field pk_fields[] = {
    F_STR(frame_pk, name),
    F_STR(frame_pk, value),
};
static const fieldset pk_set = SET("primary_keys", pk_fields, frame_pk);

static const field finding_fields[] = {
    F_STR(frame_finding, rule_id),
    F_STR(frame_finding, description),
    F_STR(frame_finding, category),
    F_ENUM(frame_finding, severity, 0, FRAME_SEV_INFO),
    F_STR(frame_finding, schema),
    F_STR(frame_finding, table),
    F_STR(frame_finding, column),
    F_STR(frame_finding, masked_sample),
    F_ARRAY(frame_finding, primary_keys, n_primary_keys, pk_set),
    F_U64(frame_finding, lsn),
    F_ENUM(frame_finding, source, 0, FRAME_SOURCE_SNAPSHOT),
    F_ENUM(frame_finding, op, 0, FRAME_OP_SNAPSHOT),
    F_I64(frame_finding, commit_time),
    F_I64(frame_finding, detected_at),
    F_HASH(frame_finding, value_hash),
};
static const fieldset finding_set = SET("findings", finding_fields, frame_finding);

static const field findings_fields[] = {
    F_U64(frame_findings, seq),
    F_ARRAY(frame_findings, findings, n_findings, finding_set),
};

static const field txn_end_fields[] = {
    F_U64(frame_txn_end, seq),         F_U64(frame_txn_end, commit_lsn), F_U64(frame_txn_end, end_lsn),
    F_I64(frame_txn_end, commit_time), F_U32(frame_txn_end, n_findings),
};

static const field table_done_fields[] = {
    F_U64(frame_table_done, seq),   F_U32(frame_table_done, relid),        F_STR(frame_table_done, schema),
    F_STR(frame_table_done, table), F_U64(frame_table_done, snapshot_lsn),
};

static const field ack_fields[] = {
    F_U64(frame_ack, seq),
    F_U64(frame_ack, end_lsn),
    F_U64(frame_ack, credit),
};

static const field credit_fields[] = {F_U64(frame_credit, bytes)};

static const field heartbeat_fields[] = {F_I64(frame_heartbeat, sent_at)};

static const field table_error_fields[] = {
    F_STR(frame_table_error, schema),
    F_STR(frame_table_error, table),
    F_STR(frame_table_error, reason),
};
static const fieldset table_error_set = SET("table_errors", table_error_fields, frame_table_error);

static const field script_error_fields[] = {
    F_STR(frame_script_error, rule_id),
    F_U64(frame_script_error, count),
};
static const fieldset script_error_set = SET("script_errors", script_error_fields, frame_script_error);

static const field stats_fields[] = {
    F_ENUM(frame_stats, state, 0, FRAME_WSTATE_STOPPING),
    F_U64(frame_stats, events),
    F_U64(frame_stats, findings),
    F_U64(frame_stats, confirmed_lsn),
    F_U64(frame_stats, current_lsn),
    F_U64(frame_stats, lag_bytes),
    F_I64(frame_stats, retained_wal_bytes),
    F_STR(frame_stats, wal_status),
    F_U32(frame_stats, tables_done),
    F_U32(frame_stats, tables_total),
    F_ARRAY(frame_stats, table_errors, n_table_errors, table_error_set),
    F_U64(frame_stats, skipped_filter),
    F_U64(frame_stats, skipped_type),
    F_U64(frame_stats, skipped_scope),
    F_U64(frame_stats, reconnects),
    F_ARRAY(frame_stats, script_errors, n_script_errors, script_error_set),
    F_U64(frame_stats, undelivered_findings),
};

static const field shutdown_fields[] = {
    F_ENUM(frame_shutdown, mode, 0, FRAME_SHUTDOWN_IMMEDIATE),
    F_STR(frame_shutdown, reason),
};

static const field exit_fields[] = {
    F_U8(frame_exit, code),
    F_STR(frame_exit, reason),
};

#define BY_S (1u << FRAME_ROLE_SUPERVISOR)
#define BY_W (1u << FRAME_ROLE_WORKER)

static const struct {
    unsigned senders; /* BY_S | BY_W */
    fieldset set;     /* set.name is the frame type's name */
} frame_types[FRAME_TYPE_MAX + 1] = {
    [FRAME_HELLO] = {BY_S | BY_W, SET("HELLO", hello_fields, frame_hello)},
    [FRAME_START] = {BY_S, SET("START", start_fields, frame_start)},
    [FRAME_RULES] = {BY_S, SET("RULES", rules_fields, frame_rules)},
    [FRAME_RULES_RESULT] = {BY_W, SET("RULES_RESULT", rules_result_fields, frame_rules_result)},
    [FRAME_FINDINGS] = {BY_W, SET("FINDINGS", findings_fields, frame_findings)},
    [FRAME_TXN_END] = {BY_W, SET("TXN_END", txn_end_fields, frame_txn_end)},
    [FRAME_TABLE_DONE] = {BY_W, SET("TABLE_DONE", table_done_fields, frame_table_done)},
    [FRAME_ACK] = {BY_S, SET("ACK", ack_fields, frame_ack)},
    [FRAME_CREDIT] = {BY_S, SET("CREDIT", credit_fields, frame_credit)},
    [FRAME_HEARTBEAT] = {BY_S | BY_W, SET("HEARTBEAT", heartbeat_fields, frame_heartbeat)},
    [FRAME_STATS] = {BY_W, SET("STATS", stats_fields, frame_stats)},
    [FRAME_SHUTDOWN] = {BY_S, SET("SHUTDOWN", shutdown_fields, frame_shutdown)},
    [FRAME_EXIT] = {BY_W, SET("EXIT", exit_fields, frame_exit)},
};

static bool type_known(int type)
{
    return type >= FRAME_HELLO && type <= FRAME_TYPE_MAX;
}

/* The union member of a frame, whatever its type: all start at the same address. */
static void *frame_body(frame *f)
{
    return (char *)f + offsetof(frame, hello);
}

static const void *frame_body_const(const frame *f)
{
    return (const char *)f + offsetof(frame, hello);
}

const char *frame_type_name(int type)
{
    return type_known(type) ? frame_types[type].set.name : "unknown";
}

const char *frame_status_name(frame_status st)
{
    switch (st) {
    case FRAME_OK:
        return "ok";
    case FRAME_AGAIN:
        return "again";
    case FRAME_EOF:
        return "eof";
    case FRAME_ERR:
        return "error";
    case FRAME_VERSION:
        return "protocol version mismatch";
    case FRAME_TOOBIG:
        return "frame too big";
    case FRAME_FULL:
        return "full";
    }
    return "unknown";
}

static const char *role_name(int role)
{
    switch (role) {
    case FRAME_ROLE_SUPERVISOR:
        return "supervisor";
    case FRAME_ROLE_WORKER:
        return "worker";
    default:
        return "unknown role";
    }
}

__attribute__((format(printf, 3, 4))) static void set_err(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

void frame_hello_init(frame *f, frame_role role, uint32_t pid)
{
    memset(f, 0, sizeof(*f));
    f->type = FRAME_HELLO;
    f->hello.version = FRAME_PROTOCOL_VERSION;
    f->hello.role = (uint8_t)role;
    f->hello.pid = pid;
}

/* ------------------------------------------------------------------------ */
/* Encoding. A writer with buf == NULL only counts, so sizes come from the   */
/* same code that writes.                                                    */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len; /* bytes the encoding needs so far, may exceed cap */
    bool failed;
    char *err;
    size_t errlen;
} writer;

static void wr_put(writer *w, const void *p, size_t n)
{
    if (n > SIZE_MAX / 2 - w->len) {
        w->failed = true;
        set_err(w->err, w->errlen, "encoded size overflows");
        return;
    }
    if (w->buf != NULL && w->len <= w->cap && n <= w->cap - w->len && n > 0)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void wr_u16(writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_put(w, b, sizeof(b));
}

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static void wr_u32(writer *w, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    wr_put(w, b, sizeof(b));
}

static void wr_u64(writer *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    wr_put(w, b, sizeof(b));
}

static void wr_fail(writer *w, const fieldset *set, const field *f, const char *what)
{
    w->failed = true;
    set_err(w->err, w->errlen, "%s.%s: %s", set->name, f->name, what);
}

static void enc_set(writer *w, const fieldset *set, const void *base)
{
    const char *b = base;
    for (size_t i = 0; i < set->n && !w->failed; i++) {
        const field *f = &set->v[i];
        const void *p = b + f->off;
        switch (f->kind) {
        case FK_MAGIC:
            wr_put(w, FRAME_MAGIC, 4);
            break;
        case FK_VERSION:
        case FK_U16:
            wr_u16(w, *(const uint16_t *)p);
            break;
        case FK_U8:
            wr_put(w, p, 1);
            break;
        case FK_ENUM: {
            uint8_t v = *(const uint8_t *)p;
            if (v < f->min || v > f->max) {
                wr_fail(w, set, f, "value out of range");
                break;
            }
            wr_put(w, &v, 1);
            break;
        }
        case FK_BOOL: {
            uint8_t v = *(const bool *)p ? 1 : 0;
            wr_put(w, &v, 1);
            break;
        }
        case FK_U32:
            wr_u32(w, *(const uint32_t *)p);
            break;
        case FK_U64:
            wr_u64(w, *(const uint64_t *)p);
            break;
        case FK_I64:
            wr_u64(w, (uint64_t) * (const int64_t *)p);
            break;
        case FK_STR: {
            const char *s = *(const char *const *)p;
            size_t n = s != NULL ? strlen(s) : 0;
            if (n > UINT32_MAX) {
                wr_fail(w, set, f, "string longer than 4 GiB");
                break;
            }
            wr_u32(w, (uint32_t)n);
            wr_put(w, s, n);
            break;
        }
        case FK_BYTES: {
            const uint8_t *data = *(const uint8_t *const *)p;
            uint32_t n = *(const uint32_t *)(b + f->off2);
            if (data == NULL && n > 0) {
                wr_fail(w, set, f, "NULL data with a non-zero length");
                break;
            }
            wr_u32(w, n);
            wr_put(w, data, n);
            break;
        }
        case FK_HASH:
            wr_put(w, p, FRAME_HASH_SIZE);
            break;
        case FK_ARRAY: {
            const char *items = *(const void *const *)p;
            uint32_t n = *(const uint32_t *)(b + f->off2);
            if (items == NULL && n > 0) {
                wr_fail(w, set, f, "NULL array with a non-zero count");
                break;
            }
            wr_u32(w, n);
            for (uint32_t k = 0; k < n && !w->failed; k++)
                enc_set(w, f->elem, items + (size_t)k * f->elem->size);
            break;
        }
        }
    }
}

frame_status frame_encode(const frame *f, uint8_t *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    writer w = {.buf = buf, .cap = buf != NULL ? cap : 0, .err = err, .errlen = errlen};
    *len = 0;
    set_err(err, errlen, "%s", "");
    if (!type_known(f->type)) {
        set_err(err, errlen, "unknown frame type %d", (int)f->type);
        return FRAME_ERR;
    }
    wr_u32(&w, 0); /* length, filled below */
    uint8_t type = (uint8_t)f->type;
    wr_put(&w, &type, 1);
    enc_set(&w, &frame_types[f->type].set, frame_body_const(f));
    if (w.failed)
        return FRAME_ERR;
    *len = w.len;
    if (w.len > FRAME_MAX) {
        set_err(err, errlen, "%s frame of %zu bytes exceeds the %u-byte limit", frame_type_name(f->type),
                w.len, FRAME_MAX);
        return FRAME_TOOBIG;
    }
    if (w.len > w.cap) {
        set_err(err, errlen, "%s frame needs %zu bytes, buffer holds %zu", frame_type_name(f->type), w.len,
                w.cap);
        return FRAME_FULL;
    }
    put_be32(buf, (uint32_t)(w.len - 4));
    return FRAME_OK;
}

size_t frame_finding_size(const frame_finding *fi)
{
    writer w = {0};
    enc_set(&w, &finding_set, fi);
    return w.failed ? SIZE_MAX : w.len;
}

uint32_t frame_findings_fit(const frame_finding *findings, uint32_t n, size_t limit)
{
    size_t total = FRAME_FINDINGS_OVERHEAD;
    uint32_t i;
    for (i = 0; i < n; i++) {
        size_t s = frame_finding_size(&findings[i]);
        if (s == SIZE_MAX || total > limit || s > limit - total)
            break;
        total += s;
    }
    return i;
}

/* ------------------------------------------------------------------------ */
/* Equality, walking the same tables.                                        */

static bool eq_set(const fieldset *set, const void *a, const void *b)
{
    const char *pa = a, *pb = b;
    for (size_t i = 0; i < set->n; i++) {
        const field *f = &set->v[i];
        const void *x = pa + f->off, *y = pb + f->off;
        switch (f->kind) {
        case FK_MAGIC:
            break;
        case FK_VERSION:
        case FK_U16:
            if (*(const uint16_t *)x != *(const uint16_t *)y)
                return false;
            break;
        case FK_U8:
        case FK_ENUM:
            if (*(const uint8_t *)x != *(const uint8_t *)y)
                return false;
            break;
        case FK_BOOL:
            if (*(const bool *)x != *(const bool *)y)
                return false;
            break;
        case FK_U32:
            if (*(const uint32_t *)x != *(const uint32_t *)y)
                return false;
            break;
        case FK_U64:
        case FK_I64:
            if (*(const uint64_t *)x != *(const uint64_t *)y)
                return false;
            break;
        case FK_STR: {
            const char *s = *(const char *const *)x, *t = *(const char *const *)y;
            if (strcmp(s != NULL ? s : "", t != NULL ? t : "") != 0)
                return false;
            break;
        }
        case FK_BYTES: {
            uint32_t n = *(const uint32_t *)(pa + f->off2);
            if (n != *(const uint32_t *)(pb + f->off2))
                return false;
            if (n > 0 && memcmp(*(const uint8_t *const *)x, *(const uint8_t *const *)y, n) != 0)
                return false;
            break;
        }
        case FK_HASH:
            if (memcmp(x, y, FRAME_HASH_SIZE) != 0)
                return false;
            break;
        case FK_ARRAY: {
            uint32_t n = *(const uint32_t *)(pa + f->off2);
            if (n != *(const uint32_t *)(pb + f->off2))
                return false;
            const char *ia = *(const void *const *)x, *ib = *(const void *const *)y;
            for (uint32_t k = 0; k < n; k++)
                if (!eq_set(f->elem, ia + (size_t)k * f->elem->size, ib + (size_t)k * f->elem->size))
                    return false;
            break;
        }
        }
    }
    return true;
}

bool frame_equal(const frame *a, const frame *b)
{
    if (a->type != b->type || !type_known(a->type))
        return false;
    return eq_set(&frame_types[a->type].set, frame_body_const(a), frame_body_const(b));
}

/* ------------------------------------------------------------------------ */
/* Arena for one decoded frame: chunks, zeroed when released.                */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    max_align_t data[];
} arena_chunk;

typedef struct {
    arena_chunk *head;
} arena;

/* Zeroed memory for n bytes, aligned; NULL on ENOMEM. */
static void *arena_alloc(arena *ar, size_t n)
{
    const size_t align = sizeof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + align - 1) / align * align;
    if (ar->head == NULL || ar->head->size - ar->head->used < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        arena_chunk *c = calloc(1, sizeof(*c) + size);
        if (c == NULL)
            return NULL;
        c->size = size;
        c->next = ar->head;
        ar->head = c;
    }
    void *p = (char *)ar->head->data + ar->head->used;
    ar->head->used += n;
    return p;
}

/* Zero what the last frame used; keep one ordinary chunk for the next frame. */
static void arena_reset(arena *ar, bool keep)
{
    arena_chunk *keep_chunk = NULL;
    for (arena_chunk *c = ar->head, *next; c != NULL; c = next) {
        next = c->next;
        explicit_bzero(c->data, c->used);
        c->used = 0;
        if (keep && keep_chunk == NULL && c->size == ARENA_CHUNK) {
            keep_chunk = c;
            c->next = NULL;
        } else {
            free(c);
        }
    }
    ar->head = keep_chunk;
}

/* ------------------------------------------------------------------------ */
/* Decoding of one payload.                                                  */

typedef struct {
    const uint8_t *p;
    size_t len, off;
    arena *ar;
    const char *frame_name;
    char *err;
    size_t errlen;
    uint16_t peer_version; /* FRAME_VERSION */
} reader;

static size_t rd_left(const reader *r)
{
    return r->len - r->off;
}

__attribute__((format(printf, 4, 5))) static frame_status rd_fail(reader *r, const fieldset *set,
                                                                  const field *f, const char *fmt, ...)
{
    char what[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (set->name == r->frame_name)
        set_err(r->err, r->errlen, "%s: field %s: %s", r->frame_name, f->name, what);
    else
        set_err(r->err, r->errlen, "%s: field %s.%s: %s", r->frame_name, set->name, f->name, what);
    return FRAME_ERR;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Bytes a field takes at least: all of it for fixed-size kinds, the u32 prefix for the others. */
static size_t kind_min_size(field_kind kind)
{
    switch (kind) {
    case FK_U8:
    case FK_ENUM:
    case FK_BOOL:
        return 1;
    case FK_VERSION:
    case FK_U16:
        return 2;
    case FK_MAGIC:
    case FK_U32:
    case FK_STR:
    case FK_BYTES:
    case FK_ARRAY:
        return 4;
    case FK_U64:
    case FK_I64:
        return 8;
    case FK_HASH:
        return FRAME_HASH_SIZE;
    }
    return 1;
}

/* Smallest encoding of one element of set: caps array counts by the bytes left. */
static size_t min_size(const fieldset *set)
{
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        n += kind_min_size(set->v[i].kind);
    return n > 0 ? n : 1;
}

/* Copy n bytes of the payload into the arena with a NUL after them. */
static const void *rd_copy(reader *r, size_t n)
{
    static const char empty[1] = "";
    if (n == 0) {
        return empty;
    }
    char *s = arena_alloc(r->ar, n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, r->p + r->off, n);
    s[n] = '\0';
    r->off += n;
    return s;
}

static frame_status dec_set(reader *r, const fieldset *set, void *base)
{
    char *b = base;
    for (size_t i = 0; i < set->n; i++) {
        const field *f = &set->v[i];
        void *p = b + f->off;
        size_t need = kind_min_size(f->kind);
        if (rd_left(r) < need)
            return rd_fail(r, set, f, "payload ends %zu bytes short", need - rd_left(r));
        const uint8_t *q = r->p + r->off;
        switch (f->kind) {
        case FK_MAGIC:
            if (memcmp(q, FRAME_MAGIC, 4) != 0)
                return rd_fail(r, set, f, "bad magic: the peer does not speak the pgsense protocol");
            r->off += 4;
            break;
        case FK_VERSION: {
            uint16_t v = (uint16_t)get_be(q, 2);
            r->off += 2;
            *(uint16_t *)p = v;
            if (v != FRAME_PROTOCOL_VERSION) {
                r->peer_version = v;
                set_err(r->err, r->errlen,
                        "peer speaks protocol version %u, this side %u: restart the supervisor", v,
                        FRAME_PROTOCOL_VERSION);
                return FRAME_VERSION;
            }
            break;
        }
        case FK_U8:
            *(uint8_t *)p = q[0];
            r->off += 1;
            break;
        case FK_ENUM:
            if (q[0] < f->min || q[0] > f->max)
                return rd_fail(r, set, f, "value %u out of range %u..%u", q[0], f->min, f->max);
            *(uint8_t *)p = q[0];
            r->off += 1;
            break;
        case FK_BOOL:
            if (q[0] > 1)
                return rd_fail(r, set, f, "boolean value %u is neither 0 nor 1", q[0]);
            *(bool *)p = q[0] == 1;
            r->off += 1;
            break;
        case FK_U16:
            *(uint16_t *)p = (uint16_t)get_be(q, 2);
            r->off += 2;
            break;
        case FK_U32:
            *(uint32_t *)p = (uint32_t)get_be(q, 4);
            r->off += 4;
            break;
        case FK_U64:
            *(uint64_t *)p = get_be(q, 8);
            r->off += 8;
            break;
        case FK_I64:
            *(int64_t *)p = (int64_t)get_be(q, 8);
            r->off += 8;
            break;
        case FK_HASH:
            memcpy(p, q, FRAME_HASH_SIZE);
            r->off += FRAME_HASH_SIZE;
            break;
        case FK_STR:
        case FK_BYTES: {
            uint32_t n = (uint32_t)get_be(q, 4);
            r->off += 4;
            if (n > rd_left(r))
                return rd_fail(r, set, f, "length %u exceeds the %zu bytes left", n, rd_left(r));
            if (f->kind == FK_STR && memchr(r->p + r->off, '\0', n) != NULL)
                return rd_fail(r, set, f, "string of length %u contains a NUL byte", n);
            const void *s = rd_copy(r, n);
            if (s == NULL)
                return rd_fail(r, set, f, "out of memory copying %u bytes", n);
            if (f->kind == FK_STR) {
                *(const char **)p = s;
            } else {
                *(const uint8_t **)p = s;
                *(uint32_t *)(b + f->off2) = n;
            }
            break;
        }
        case FK_ARRAY: {
            uint32_t n = (uint32_t)get_be(q, 4);
            r->off += 4;
            size_t per = min_size(f->elem);
            if (n > rd_left(r) / per)
                return rd_fail(r, set, f, "count %u exceeds what the %zu bytes left can hold", n, rd_left(r));
            char *items = NULL;
            if (n > 0) {
                items = arena_alloc(r->ar, (size_t)n * f->elem->size);
                if (items == NULL)
                    return rd_fail(r, set, f, "out of memory for %u items", n);
            }
            for (uint32_t k = 0; k < n; k++) {
                frame_status st = dec_set(r, f->elem, items + (size_t)k * f->elem->size);
                if (st != FRAME_OK)
                    return st;
            }
            *(void **)p = items;
            *(uint32_t *)(b + f->off2) = n;
            break;
        }
        }
    }
    return FRAME_OK;
}

/* ------------------------------------------------------------------------ */
/* Incremental decoder.                                                      */

struct frame_decoder {
    frame_role self;
    uint8_t *buf;
    size_t alloc;
    size_t start, end; /* undecoded bytes are buf[start, end) */
    arena ar;
    frame_status failed; /* FRAME_OK, or the sticky FRAME_ERR / FRAME_VERSION */
    uint16_t peer_version;
    char err[192];
};

frame_decoder *frame_decoder_new(frame_role self)
{
    frame_decoder *dec = calloc(1, sizeof(*dec));
    if (dec == NULL)
        goto fail;
    dec->self = self;
    dec->alloc = DEC_INITIAL_ALLOC;
    dec->buf = calloc(1, dec->alloc);
    if (dec->buf == NULL)
        goto fail;
    return dec;
fail:
    free(dec);
    return NULL;
}

void frame_decoder_free(frame_decoder *dec)
{
    if (dec == NULL)
        return;
    explicit_bzero(dec->buf, dec->alloc);
    free(dec->buf);
    arena_reset(&dec->ar, false);
    free(dec);
}

const char *frame_decoder_error(const frame_decoder *dec)
{
    return dec->err;
}

size_t frame_decoder_buffered(const frame_decoder *dec)
{
    return dec->end - dec->start;
}

size_t frame_decoder_alloc(const frame_decoder *dec)
{
    return dec->alloc;
}

/* Frame length from a buffered header, 0 when none or when it is invalid. */
static size_t dec_pending_frame_size(const frame_decoder *dec)
{
    if (dec->end - dec->start < 4)
        return 0;
    uint32_t len = (uint32_t)get_be(dec->buf + dec->start, 4);
    if (len == 0 || len > FRAME_MAX - 4)
        return 0;
    return (size_t)len + 4;
}

/*
 * Move undecoded bytes to the front and grow the buffer when the frame in
 * progress, whose length prefix has been checked, does not fit. Never grows
 * past FRAME_MAX, never on an invalid length. False on ENOMEM.
 */
static bool dec_make_room(frame_decoder *dec)
{
    size_t have = dec->end - dec->start;
    if (dec->start > 0) {
        memmove(dec->buf, dec->buf + dec->start, have);
        explicit_bzero(dec->buf + have, dec->end - have);
        dec->start = 0;
        dec->end = have;
    }
    size_t need = dec_pending_frame_size(dec);
    if (need <= dec->alloc)
        return true;
    size_t alloc = dec->alloc;
    while (alloc < need)
        alloc *= 2;
    if (alloc > FRAME_MAX)
        alloc = FRAME_MAX;
    uint8_t *buf = calloc(1, alloc);
    if (buf == NULL)
        return false;
    memcpy(buf, dec->buf, have);
    explicit_bzero(dec->buf, dec->alloc);
    free(dec->buf);
    dec->buf = buf;
    dec->alloc = alloc;
    return true;
}

frame_status frame_decoder_read(frame_decoder *dec, int fd)
{
    if (!dec_make_room(dec)) {
        set_err(dec->err, sizeof(dec->err), "out of memory growing the frame buffer");
        errno = ENOMEM;
        return FRAME_ERR;
    }
    size_t room = dec->alloc - dec->end;
    if (room == 0)
        return FRAME_OK; /* a complete frame is buffered: frame_next */
    for (;;) {
        ssize_t n = read(fd, dec->buf + dec->end, room);
        if (n > 0) {
            dec->end += (size_t)n;
            return FRAME_OK;
        }
        if (n == 0)
            return FRAME_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FRAME_AGAIN;
        int saved = errno;
        set_err(dec->err, sizeof(dec->err), "read: %s", strerror(saved));
        errno = saved;
        return FRAME_ERR;
    }
}

size_t frame_decoder_feed(frame_decoder *dec, const void *bytes, size_t n)
{
    size_t taken = 0;
    while (taken < n) {
        if (!dec_make_room(dec))
            break;
        size_t room = dec->alloc - dec->end;
        if (room == 0)
            break;
        size_t k = n - taken < room ? n - taken : room;
        memcpy(dec->buf + dec->end, (const uint8_t *)bytes + taken, k);
        dec->end += k;
        taken += k;
    }
    return taken;
}

static frame_status dec_fail(frame_decoder *dec, frame *out, frame_status st)
{
    arena_reset(&dec->ar, true);
    memset(out, 0, sizeof(*out));
    if (st == FRAME_VERSION) {
        out->type = FRAME_HELLO;
        out->hello.version = dec->peer_version;
    }
    dec->failed = st;
    return st;
}

frame_status frame_next(frame_decoder *dec, frame *out)
{
    arena_reset(&dec->ar, true);
    memset(out, 0, sizeof(*out));
    if (dec->failed != FRAME_OK)
        return dec_fail(dec, out, dec->failed);
    size_t have = dec->end - dec->start;
    if (have < 4)
        return FRAME_AGAIN;
    const uint8_t *h = dec->buf + dec->start;
    uint32_t len = (uint32_t)get_be(h, 4);
    if (len == 0) {
        set_err(dec->err, sizeof(dec->err), "frame length 0: no type byte");
        return dec_fail(dec, out, FRAME_ERR);
    }
    if (len > FRAME_MAX - 4) {
        set_err(dec->err, sizeof(dec->err), "frame length %u exceeds the %u-byte limit", len, FRAME_MAX - 4);
        return dec_fail(dec, out, FRAME_ERR);
    }
    if (have - 4 < len)
        return FRAME_AGAIN;

    int type = h[4];
    if (!type_known(type)) {
        set_err(dec->err, sizeof(dec->err), "unknown frame type %d", type);
        return dec_fail(dec, out, FRAME_ERR);
    }
    int peer = dec->self == FRAME_ROLE_SUPERVISOR ? FRAME_ROLE_WORKER
               : dec->self == FRAME_ROLE_WORKER   ? FRAME_ROLE_SUPERVISOR
                                                  : FRAME_ROLE_ANY;
    if (peer != FRAME_ROLE_ANY && !(frame_types[type].senders & (1u << peer))) {
        set_err(dec->err, sizeof(dec->err), "%s frame is not expected from a %s", frame_type_name(type),
                role_name(peer));
        return dec_fail(dec, out, FRAME_ERR);
    }

    const fieldset *set = &frame_types[type].set;
    reader r = {.p = h + 5,
                .len = len - 1,
                .ar = &dec->ar,
                .frame_name = set->name,
                .err = dec->err,
                .errlen = sizeof(dec->err)};
    out->type = (frame_type)type;
    frame_status st = dec_set(&r, set, frame_body(out));
    if (st == FRAME_VERSION)
        dec->peer_version = r.peer_version;
    if (st != FRAME_OK)
        return dec_fail(dec, out, st);
    if (r.off != r.len) {
        set_err(dec->err, sizeof(dec->err), "%s: %zu trailing bytes after the payload", set->name,
                r.len - r.off);
        return dec_fail(dec, out, FRAME_ERR);
    }
    if (type == FRAME_HELLO && peer != FRAME_ROLE_ANY && out->hello.role != peer) {
        set_err(dec->err, sizeof(dec->err), "HELLO from a %s, expected a %s", role_name(out->hello.role),
                role_name(peer));
        return dec_fail(dec, out, FRAME_ERR);
    }

    explicit_bzero(dec->buf + dec->start, (size_t)len + 4);
    dec->start += (size_t)len + 4;
    if (dec->start == dec->end)
        dec->start = dec->end = 0;
    return FRAME_OK;
}

/* ------------------------------------------------------------------------ */
/* Output queue.                                                             */

struct frame_outq {
    uint8_t *buf;
    size_t alloc;
    size_t start, end; /* queued bytes are buf[start, end) */
    size_t limit;
    char err[192];
};

frame_outq *frame_outq_new(size_t limit)
{
    frame_outq *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    if (limit == 0)
        limit = FRAME_OUTQ_DEFAULT_LIMIT;
    q->limit = limit < 2 * (size_t)FRAME_MAX ? 2 * (size_t)FRAME_MAX : limit;
    return q;
}

void frame_outq_free(frame_outq *q)
{
    if (q == NULL)
        return;
    if (q->buf != NULL)
        explicit_bzero(q->buf, q->alloc);
    free(q->buf);
    free(q);
}

size_t frame_outq_pending(const frame_outq *q)
{
    return q->end - q->start;
}

size_t frame_outq_limit(const frame_outq *q)
{
    return q->limit;
}

const char *frame_outq_error(const frame_outq *q)
{
    return q->err;
}

/* Room for n more bytes at the end: compact first, grow if still short. */
static bool outq_make_room(frame_outq *q, size_t n)
{
    size_t have = q->end - q->start;
    if (q->alloc - q->end >= n)
        return true;
    if (q->start > 0) {
        memmove(q->buf, q->buf + q->start, have);
        explicit_bzero(q->buf + have, q->end - have);
        q->start = 0;
        q->end = have;
        if (q->alloc - q->end >= n)
            return true;
    }
    size_t alloc = q->alloc > 0 ? q->alloc : OUTQ_INITIAL_ALLOC;
    while (alloc - have < n)
        alloc *= 2;
    uint8_t *buf = malloc(alloc);
    if (buf == NULL)
        return false;
    if (have > 0)
        memcpy(buf, q->buf, have);
    if (q->buf != NULL)
        explicit_bzero(q->buf, q->alloc);
    free(q->buf);
    q->buf = buf;
    q->alloc = alloc;
    return true;
}

frame_status frame_outq_push(frame_outq *q, const frame *f)
{
    size_t size = 0;
    frame_status st = frame_encode(f, NULL, 0, &size, q->err, sizeof(q->err));
    if (st != FRAME_FULL)
        return st == FRAME_OK ? FRAME_ERR : st; /* FRAME_OK cannot happen with cap 0 */
    if (size > q->limit - frame_outq_pending(q)) {
        set_err(q->err, sizeof(q->err), "output queue full: %zu bytes queued, %s frame of %zu, limit %zu",
                frame_outq_pending(q), frame_type_name(f->type), size, q->limit);
        return FRAME_FULL;
    }
    if (!outq_make_room(q, size)) {
        set_err(q->err, sizeof(q->err), "out of memory queueing a %s frame of %zu bytes",
                frame_type_name(f->type), size);
        return FRAME_ERR;
    }
    size_t len = 0;
    st = frame_encode(f, q->buf + q->end, size, &len, q->err, sizeof(q->err));
    if (st != FRAME_OK)
        return st;
    q->end += len;
    return FRAME_OK;
}

frame_status frame_outq_flush(frame_outq *q, int fd)
{
    bool use_write = false;
    while (q->start < q->end) {
        const uint8_t *p = q->buf + q->start;
        size_t n = q->end - q->start;
        ssize_t k = use_write ? write(fd, p, n) : send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOTSOCK && !use_write) {
                use_write = true;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return FRAME_AGAIN;
            int saved = errno;
            set_err(q->err, sizeof(q->err), "send: %s", strerror(saved));
            errno = saved;
            return FRAME_ERR;
        }
        explicit_bzero(q->buf + q->start, (size_t)k);
        q->start += (size_t)k;
    }
    q->start = q->end = 0;
    if (q->alloc > OUTQ_KEEP_ALLOC) {
        free(q->buf); /* already zeroed as it was sent */
        q->buf = NULL;
        q->alloc = 0;
    }
    return FRAME_OK;
}
