/* lsn: text form of log sequence numbers. */
#include "lsn.h"

#include <stdio.h>

void lsn_format(uint64_t lsn, char out[LSN_TEXT_MAX])
{
    snprintf(out, LSN_TEXT_MAX, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}

/* One hex part of 1 to 8 digits ending at stop; returns the position after it. */
static const char *hex_part(const char *s, char stop, uint32_t *out)
{
    uint32_t v = 0;
    int n = 0;
    for (; *s && *s != stop; s++, n++) {
        char c = *s;
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return NULL;
        if (n == 8)
            return NULL;
        v = (v << 4) | (uint32_t)d;
    }
    if (n == 0 || *s != stop)
        return NULL;
    *out = v;
    return s;
}

bool lsn_parse(const char *s, uint64_t *out)
{
    uint32_t hi, lo;
    const char *p = hex_part(s, '/', &hi);
    if (!p)
        return false;
    if (!hex_part(p + 1, '\0', &lo))
        return false;
    *out = ((uint64_t)hi << 32) | lo;
    return true;
}
