/*
 * jsonw: writing JSON strings to a stdio stream, for the command-line
 * outputs and status.json. Owns no state; the jsonl sink has its own
 * bounded buffer writer.
 */
#ifndef PGSENSE_JSONW_H_INCLUDED
#define PGSENSE_JSONW_H_INCLUDED

#include <stdio.h>

/* s (NUL-terminated UTF-8, NULL as "") as a quoted JSON string, every control character escaped. */
void jsonw_str(FILE *out, const char *s);

#endif /* PGSENSE_JSONW_H_INCLUDED */
