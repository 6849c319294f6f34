/*
 * detect_ssn: US social security numbers in free text (ddd-dd-dddd with
 * '-', ' ' or '.' used throughout) and the ssn validator.
 */
#include <stdbool.h>
#include <stddef.h>

#include "detect_int.h"

/* Area not 000, 666 or 9xx; group not 00; serial not 0000. d holds 9 digits. */
static bool ssn_digits_ok(const char *d)
{
    if (d[0] == '9')
        return false;
    if (memcmp(d, "000", 3) == 0 || memcmp(d, "666", 3) == 0)
        return false;
    if (d[3] == '0' && d[4] == '0')
        return false;
    if (memcmp(d + 5, "0000", 4) == 0)
        return false;
    return true;
}

static bool ssn_is_sep(char c)
{
    return c == '-' || c == ' ' || c == '.';
}

/* s[0..11) is ddd S dd S dddd with one separator S. Copies the 9 digits. */
static bool ssn_shape(const char *s, char *d)
{
    char sep = s[3];
    if (!ssn_is_sep(sep) || s[6] != sep)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < 11; i++) {
        if (i == 3 || i == 6)
            continue;
        if (!DC(s[i], DC_DIGIT))
            return false;
        d[n++] = s[i];
    }
    return true;
}

size_t detect_ssn_scan(const detect_value *v, detect_match_cb cb, void *ctx)
{
    const char *s = v->s;
    size_t len = v->len, found = 0, skip_to = 0;
    char d[9];
    for (size_t x = 0; x < v->n_bound; x++) {
        size_t k = v->bound[x];
        size_t i = v->runs[k].start, r = v->runs[k].end;
        if (i < skip_to)
            continue;
        /* Plain nine-digit runs are not reported (see detect.h). */
        if (r - i == 3 && i + 11 <= len && detect_num_left_ok(s, i) && ssn_shape(s + i, d) &&
            detect_num_right_ok(s, len, i + 11) && ssn_digits_ok(d)) {
            found++;
            if (cb(ctx, i, i + 11) != 0)
                break;
            skip_to = i + 11;
        }
    }
    return found;
}

/* ssn validator: the separated shapes, or exactly nine digits. */
bool detect_ssn_valid(const char *s, size_t len)
{
    char d[9];
    if (len == 11)
        return ssn_shape(s, d) && ssn_digits_ok(d);
    if (len != 9)
        return false;
    for (size_t i = 0; i < 9; i++)
        if (!DC(s[i], DC_DIGIT))
            return false;
    return ssn_digits_ok(s);
}
