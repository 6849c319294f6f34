/*
 * mask: turns a matched span into the masked sample every output carries
 * (SPEC section 4): characters, not bytes; invalid UTF-8 counts as one
 * character shown as U+FFFD. Owns nothing else.
 */
#ifndef PGSENSE_MASK_H_INCLUDED
#define PGSENSE_MASK_H_INCLUDED

#include <stddef.h>

/*
 * Mask s[0..len): 8 or more characters keep their first two and last two,
 * every other character becomes '*'; shorter spans become all '*'.
 * Writes a NUL-terminated UTF-8 string into out (at most cap bytes, cap > 0;
 * truncated at a character boundary if too small). Returns the length that
 * the full result needs, excluding the NUL (like snprintf).
 */
size_t mask_span(const char *s, size_t len, char *out, size_t cap);

#endif /* PGSENSE_MASK_H_INCLUDED */
