/*
 * pgoutput: decodes the messages of PostgreSQL's pgoutput plugin (protocol
 * version 1, no streaming) carried in XLogData, and owns the relation cache
 * those messages refer to. Knows nothing of sockets, rules or frames.
 */
#ifndef PGSENSE_PGOUTPUT_H_INCLUDED
#define PGSENSE_PGOUTPUT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PGO_BEGIN,    /* 'B' */
    PGO_COMMIT,   /* 'C' */
    PGO_RELATION, /* 'R': the cache entry was replaced */
    PGO_TYPE,     /* 'Y' */
    PGO_INSERT,   /* 'I' */
    PGO_UPDATE,   /* 'U' */
    PGO_DELETE,   /* 'D' */
    PGO_TRUNCATE, /* 'T' */
    PGO_ORIGIN,   /* 'O' */
    PGO_MESSAGE,  /* 'M' */
} pgo_kind;

typedef enum {
    PGO_VAL_NULL = 'n',      /* SQL NULL */
    PGO_VAL_UNCHANGED = 'u', /* unchanged TOAST value, not sent */
    PGO_VAL_TEXT = 't',      /* text form */
    PGO_VAL_BINARY = 'b',    /* binary form (never requested by pgsense) */
} pgo_val_kind;

typedef struct {
    pgo_val_kind kind;
    const char *data; /* points into the message buffer; not NUL-terminated */
    uint32_t len;
} pgo_value;

typedef struct {
    uint16_t ncols;
    pgo_value *cols; /* owned by the decoder, valid until the next pgo_decode */
} pgo_tuple;

typedef struct {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    bool key; /* part of the replica identity */
} pgo_column;

typedef struct {
    uint32_t relid;
    char *nspname; /* "pg_catalog" when pgoutput sent an empty namespace */
    char *relname;
    char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint16_t ncols;
    pgo_column *cols;
} pgo_relation;

typedef struct {
    pgo_kind kind;
    union {
        struct {
            uint64_t final_lsn;
            int64_t commit_time; /* microseconds since 2000-01-01 (PostgreSQL epoch) */
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            uint64_t commit_lsn;
            uint64_t end_lsn;
            int64_t commit_time;
        } commit;
        const pgo_relation *relation;
        struct {
            uint32_t oid;
            const char *nspname; /* NUL-terminated, inside the message buffer */
            const char *name;
        } type;
        struct {
            const pgo_relation *rel;
            pgo_tuple newtup;
        } insert;
        struct {
            const pgo_relation *rel;
            char old_kind; /* 0 (none), 'K' (key columns) or 'O' (whole old row) */
            pgo_tuple oldtup;
            pgo_tuple newtup;
        } update;
        struct {
            const pgo_relation *rel;
            char old_kind; /* 'K' or 'O' */
            pgo_tuple oldtup;
        } del;
        struct {
            uint32_t nrelids;
            uint8_t flags;
        } truncate;
        struct {
            uint64_t lsn;
            const char *name;
        } origin;
        struct {
            uint8_t flags; /* 1 = transactional */
            uint64_t lsn;
            const char *prefix;
            const char *content;
            uint32_t len;
        } message;
    } u;
} pgo_msg;

typedef struct pgo_decoder pgo_decoder;

pgo_decoder *pgo_decoder_new(void);
void pgo_decoder_free(pgo_decoder *d);

/*
 * Decode one pgoutput message buf[0..len) (the XLogData payload). Strings and
 * values in *out point into buf or into the decoder, valid until the next call.
 * Returns 0, or -1 with a message in err (never quoting row data): malformed
 * message, or a change for a relation that no 'R' message described.
 */
__attribute__((warn_unused_result)) int pgo_decode(pgo_decoder *d, const uint8_t *buf, size_t len,
                                                   pgo_msg *out, char *err, size_t errlen);

/* The cached relation, or NULL. */
const pgo_relation *pgo_relation_get(const pgo_decoder *d, uint32_t relid);

/* Forget every cached relation (after a reconnect the server re-sends them). */
void pgo_decoder_reset(pgo_decoder *d);

/* PostgreSQL timestamps count microseconds from 2000-01-01; Unix from 1970. */
#define PGO_EPOCH_OFFSET_US INT64_C(946684800000000)

#endif /* PGSENSE_PGOUTPUT_H_INCLUDED */
