/*
 * detect_email: email addresses in free text (memchr for '@', then expand
 * both ways and check the rules) and the email validator.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "detect_int.h"

#define EMAIL_LOCAL_MAX  64
#define EMAIL_LABEL_MAX  63
#define EMAIL_DOMAIN_MAX 253

/* Dot-atom over chars of class `cls`: 1-64, no leading/trailing/double dot. */
static bool email_local_ok(const char *s, size_t n, unsigned char cls)
{
    if (n == 0 || n > EMAIL_LOCAL_MAX || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!DC(s[i], cls)) {
            return false;
        }
    }
    return true;
}

/*
 * Domain: two or more labels of 1-63 [A-Za-z0-9-] not starting or ending
 * with '-', no punycode ("xn--") label, a last label (TLD) of 2+ letters.
 */
static bool email_domain_ok(const char *s, size_t n)
{
    if (n == 0 || n > EMAIL_DOMAIN_MAX)
        return false;
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!DC(s[i], DC_DOM))
                return false;
            continue;
        }
        size_t ll = i - start;
        const char *l = s + start;
        if (ll == 0 || ll > EMAIL_LABEL_MAX || l[0] == '-' || l[ll - 1] == '-')
            return false;
        if (ll >= 4 && (l[0] | 0x20) == 'x' && (l[1] | 0x20) == 'n' && l[2] == '-' && l[3] == '-')
            return false;
        labels++;
        if (i == n) {
            /* the TLD */
            if (ll < 2)
                return false;
            for (size_t k = 0; k < ll; k++)
                if (!DC(l[k], DC_UPPER | DC_LOWER))
                    return false;
        }
        start = i + 1;
    }
    return labels >= 2;
}

/* A byte that glues onto an address: ASCII alnum, '_', '@', any non-ASCII. */
static bool email_glue(unsigned char c)
{
    return c >= 0x80 || c == '@' || DC(c, DC_GLUE);
}

size_t detect_email_scan(const char *s, size_t len, detect_match_cb cb, void *ctx)
{
    size_t found = 0, from = 0;
    while (from < len) {
        const char *at = memchr(s + from, '@', len - from);
        if (at == NULL)
            break;
        size_t a = (size_t)(at - s);
        from = a + 1;

        /* left over local-part characters (bounded: longer cannot pass) */
        size_t ls = a;
        while (ls > 0 && a - ls <= EMAIL_LOCAL_MAX && DC(s[ls - 1], DC_LOCAL))
            ls--;
        if (ls == a || a - ls > EMAIL_LOCAL_MAX)
            continue;
        if (ls > 0 && email_glue((unsigned char)s[ls - 1]))
            continue;

        /* right over domain characters; a trailing '.' ends the sentence */
        size_t de = a + 1;
        while (de < len && de - a <= EMAIL_DOMAIN_MAX + 1 && (DC(s[de], DC_DOM) || s[de] == '.'))
            de++;
        if (de - a - 1 > EMAIL_DOMAIN_MAX)
            continue;
        while (de > a + 1 && s[de - 1] == '.')
            de--;
        if (de < len && email_glue((unsigned char)s[de]))
            continue;

        if (!email_local_ok(s + ls, a - ls, DC_LOCAL) || !email_domain_ok(s + a + 1, de - a - 1))
            continue;
        found++;
        if (cb(ctx, ls, de) != 0)
            break;
        from = de;
    }
    return found;
}

/* email validator: the whole span is local@domain, local part in RFC 5322 atext. */
bool detect_email_valid(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL)
        return false;
    size_t a = (size_t)(at - s);
    return email_local_ok(s, a, DC_ATEXT) && email_domain_ok(s + a + 1, len - a - 1);
}
