/*
 * phone_shim: the C face of libphonenumber (C++). Answers one question,
 * "is this a valid phone number", and lets no C++ exception escape.
 */
#ifndef PGSENSE_PHONE_SHIM_H_INCLUDED
#define PGSENSE_PHONE_SHIM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Loads the numbering metadata (the library's singleton); idempotent. */
bool phone_shim_init(void);

/*
 * Whether number[0..len) is a valid number per libphonenumber's metadata
 * (IsValidNumber). number is "+<digits>" (international) or national
 * digits read with default_region ("US"). False on any error.
 */
bool phone_shim_valid(const char *number, size_t len, const char *default_region);

/*
 * Same question for a number already split into country calling code and
 * national significant digits (no trunk prefix), skipping the text parser:
 * about 2.5x cheaper. Used for NANP (country code 1).
 */
bool phone_shim_valid_split(int country_code, const char *national, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* PGSENSE_PHONE_SHIM_H_INCLUDED */
