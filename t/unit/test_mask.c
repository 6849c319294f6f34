/* Unit tests for src/mask.c: SPEC section 4 masking, UTF-8 characters, bounded output. */
#include <criterion/criterion.h>
#include <string.h>

#include "mask.h"

/* Mask s with a roomy buffer; check the returned length matches what was written. */
static const char *m(const char *s, size_t len)
{
    static char out[256];
    size_t need = mask_span(s, len, out, sizeof(out));
    cr_assert_eq(need, strlen(out), "need %zu, wrote %zu (\"%s\")", need, strlen(out), out);
    return out;
}

static const char *ms(const char *s)
{
    return m(s, strlen(s));
}

Test(mask, spec_example)
{
    cr_assert_str_eq(ms("4111-1111-1111-1111"), "41***************11");
}

Test(mask, ascii_lengths)
{
    cr_assert_str_eq(ms("jane@example.com"), "ja************om");
    cr_assert_str_eq(ms("12345678"), "12****78"); /* 8: ends kept */
    cr_assert_str_eq(ms("1234567"), "*******");   /* 7: all masked */
    cr_assert_str_eq(ms("ab"), "**");
    cr_assert_str_eq(ms("a"), "*");
    cr_assert_str_eq(m("", 0), "");
}

Test(mask, multibyte_characters_not_bytes)
{
    /* "éé日本xyz😀" = 8 characters, 17 bytes */
    cr_assert_str_eq(ms("\xc3\xa9\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac"
                        "xyz\xf0\x9f\x98\x80"),
                     "\xc3\xa9\xc3\xa9****z\xf0\x9f\x98\x80");
    /* 7 characters of multi-byte text: all stars, one per character */
    cr_assert_str_eq(
        ms("\xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5"),
        "*******");
    /* emoji at both ends of an 8-character span */
    cr_assert_str_eq(ms("\xf0\x9f\x98\x80"
                        "a123456"
                        "\xf0\x9f\x98\x80"),
                     "\xf0\x9f\x98\x80"
                     "a*****6"
                     "\xf0\x9f\x98\x80");
    cr_assert_str_eq(ms("caf\xc3\xa9-caf\xc3\xa9"), "ca*****f\xc3\xa9");
}

Test(mask, invalid_utf8_is_one_character_each)
{
    /* lone continuation byte and a lone 0xFF kept at the ends become U+FFFD */
    cr_assert_str_eq(m("\x80"
                       "bcdefg"
                       "\xff",
                       8),
                     "\xef\xbf\xbd"
                     "b****g\xef\xbf\xbd");
    /* each invalid byte counts: 3 bad + 4 = 7 characters -> all stars */
    cr_assert_str_eq(m("\xc3\xc3\xc3"
                       "abcd",
                       7),
                     "*******");
    /* overlong '/' (C0 AF) and overlong 3-byte (E0 80 AF): 2 and 3 characters */
    cr_assert_str_eq(m("\xc0\xaf"
                       "abcdef",
                       8),
                     "\xef\xbf\xbd\xef\xbf\xbd****ef");
    cr_assert_str_eq(m("\xe0\x80\xaf"
                       "abcde",
                       8),
                     "\xef\xbf\xbd\xef\xbf\xbd****de");
    /* UTF-16 surrogate encoded (ED A0 80) and above U+10FFFF (F4 90 80 80) */
    cr_assert_str_eq(m("\xed\xa0\x80"
                       "abcde",
                       8),
                     "\xef\xbf\xbd\xef\xbf\xbd****de");
    cr_assert_str_eq(m("ab"
                       "\xf4\x90\x80\x80",
                       6),
                     "******");
    /* truncated sequence at the end: E6 97 = two invalid characters */
    cr_assert_str_eq(m("abcdef\xe6\x97", 8), "ab****\xef\xbf\xbd\xef\xbf\xbd");
    /* U+FFFD itself and the largest code point are valid */
    cr_assert_str_eq(m("\xef\xbf\xbd"
                       "bcdefg"
                       "\xf4\x8f\xbf\xbf",
                       13),
                     "\xef\xbf\xbd"
                     "b****g\xf4\x8f\xbf\xbf");
}

Test(mask, embedded_nul_is_a_character)
{
    cr_assert_eq(mask_span("ab\0defgh", 8, (char[16]){0}, 16), 8);
}

Test(mask, truncation_at_character_boundary)
{
    char out[8];
    /* full result "41***************11" needs 19 bytes */
    cr_assert_eq(mask_span("4111-1111-1111-1111", 19, out, sizeof(out)), 19);
    cr_assert_str_eq(out, "41*****");
    cr_assert_eq(mask_span("4111-1111-1111-1111", 19, out, 1), 19);
    cr_assert_str_eq(out, "");

    /* "ééxxxxéé" -> "éé****éé" (12 bytes); cap 4 holds one é + NUL, not half of the second */
    const char *s = "\xc3\xa9\xc3\xa9xxxx\xc3\xa9\xc3\xa9";
    cr_assert_eq(mask_span(s, strlen(s), out, 4), 12);
    cr_assert_str_eq(out, "\xc3\xa9");
    cr_assert_eq(mask_span(s, strlen(s), out, 5), 12);
    cr_assert_str_eq(out, "\xc3\xa9\xc3\xa9");

    /* kept U+FFFD (3 bytes) does not fit in 2 bytes + NUL after "" */
    cr_assert_eq(mask_span("\xff"
                           "bcdefgh",
                           8, out, 3),
                 10);
    cr_assert_str_eq(out, "");

    /* exact fit */
    char ex[20];
    cr_assert_eq(mask_span("4111-1111-1111-1111", 19, ex, sizeof(ex)), 19);
    cr_assert_str_eq(ex, "41***************11");
}

Test(mask, null_out_measures_only)
{
    cr_assert_eq(mask_span("4111-1111-1111-1111", 19, NULL, 0), 19);
}
