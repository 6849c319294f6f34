/*
 * lsn: PostgreSQL log sequence numbers as text ("16/B374D848") and back.
 * Shared by the worker (replication) and the supervisor (status, metrics).
 */
#ifndef PGSENSE_LSN_H_INCLUDED
#define PGSENSE_LSN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSN_TEXT_MAX 18 /* "FFFFFFFF/FFFFFFFF" + NUL */

/* Format as PostgreSQL does: upper-case hex, no leading zeros. */
void lsn_format(uint64_t lsn, char out[LSN_TEXT_MAX]);

/* Parse "X/Y"; false on anything else (empty parts, junk, overflow). */
bool lsn_parse(const char *s, uint64_t *out);

#endif /* PGSENSE_LSN_H_INCLUDED */
