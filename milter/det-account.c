/*
 * det-account.c - card numbers (BIN, Luhn) and IBANs (length, mod 97) in text; see det-account.h
 *
 * One pass over the text: a run of digit groups joined by single spaces
 * or dashes is tried as a whole and, when longer than a card number, as
 * every stretch of whole groups 16 to 19 digits long; two letters and two
 * digits start an IBAN candidate read to its country's length.
 */
#include <string.h>
#include "custos/det-account.h"
#include "custos/det-text.h"

#define CARD_MIN 16
#define CARD_MAX 19
#define GROUPS_MAX 16

int det_luhn_ok(const char *digits)
{
    size_t n = strlen(digits);
    int sum = 0;

    if (n < 2)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int d = digits[n - 1 - i] - '0';
        if (d < 0 || d > 9)
            return 0;
        if (i % 2 == 1 && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return sum % 10 == 0;
}

int det_card_prefix_ok(const char *d)
{
    static const char *const prefixes[] = { "62", "60", "4", "5", "35" };

    for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
        if (g_str_has_prefix(d, prefixes[i]))
            return 1;
    return 0;
}

/* The IBAN registry's lengths (SWIFT, ISO 13616). */
static const struct {
    char cc[3];
    int len;
} iban_lengths[] = {
    { "AD", 24 }, { "AE", 23 }, { "AL", 28 }, { "AT", 20 }, { "AZ", 28 }, { "BA", 20 },
    { "BE", 16 }, { "BG", 22 }, { "BH", 22 }, { "BR", 29 }, { "BY", 28 }, { "CH", 21 },
    { "CR", 22 }, { "CY", 28 }, { "CZ", 24 }, { "DE", 22 }, { "DK", 18 }, { "DO", 28 },
    { "EE", 20 }, { "EG", 29 }, { "ES", 24 }, { "FI", 18 }, { "FO", 18 }, { "FR", 27 },
    { "GB", 22 }, { "GE", 22 }, { "GI", 23 }, { "GL", 18 }, { "GR", 27 }, { "GT", 28 },
    { "HR", 21 }, { "HU", 28 }, { "IE", 22 }, { "IL", 23 }, { "IQ", 23 }, { "IS", 26 },
    { "IT", 27 }, { "JO", 30 }, { "KW", 30 }, { "KZ", 20 }, { "LB", 28 }, { "LC", 32 },
    { "LI", 21 }, { "LT", 20 }, { "LU", 20 }, { "LV", 21 }, { "MC", 27 }, { "MD", 24 },
    { "ME", 22 }, { "MK", 19 }, { "MR", 27 }, { "MT", 31 }, { "MU", 30 }, { "NL", 18 },
    { "NO", 15 }, { "PK", 24 }, { "PL", 28 }, { "PS", 29 }, { "PT", 25 }, { "QA", 29 },
    { "RO", 24 }, { "RS", 22 }, { "SA", 24 }, { "SC", 31 }, { "SE", 24 }, { "SI", 19 },
    { "SK", 24 }, { "SM", 27 }, { "ST", 25 }, { "SV", 28 }, { "TL", 23 }, { "TN", 24 },
    { "TR", 26 }, { "UA", 29 }, { "VA", 22 }, { "VG", 24 }, { "XK", 20 },
};

static int iban_length(char a, char b)
{
    a = g_ascii_toupper(a);
    b = g_ascii_toupper(b);
    for (size_t i = 0; i < G_N_ELEMENTS(iban_lengths); i++)
        if (iban_lengths[i].cc[0] == a && iban_lengths[i].cc[1] == b)
            return iban_lengths[i].len;
    return 0;
}

int det_iban_ok(const char *iban)
{
    size_t n = strlen(iban);
    unsigned rem = 0;

    if (n < 5 || (int)n != iban_length(iban[0], iban[1]) || !g_ascii_isdigit(iban[2]) ||
        !g_ascii_isdigit(iban[3]))
        return 0;
    /* the first four characters moved to the end; letters are 10..35 */
    for (size_t k = 0; k < n; k++) {
        char c = g_ascii_toupper(iban[(k + 4) % n]);
        if (g_ascii_isdigit(c))
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else if (c >= 'A' && c <= 'Z')
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
        else
            return 0;
    }
    return rem == 1;
}

static int is_alnum_at(const char *text, size_t len, size_t i)
{
    return i < len && g_ascii_isalnum(text[i]);
}

static void hit_add(GPtrArray *hits, enum det_account_kind kind, size_t start, size_t end,
                    const char *number)
{
    struct det_account_hit *h = g_new0(struct det_account_hit, 1);

    h->kind = kind;
    h->start = start;
    h->end = end;
    g_strlcpy(h->number, number, sizeof(h->number));
    g_ptr_array_add(hits, h);
}

/* A run of digit groups at i; returns its end. Adds the card numbers in it. */
static size_t card_run(const char *text, size_t len, size_t i, GPtrArray *hits, size_t max)
{
    size_t gstart[GROUPS_MAX], gend[GROUPS_MAX];
    int ng = 0;
    size_t p = i, end;

    for (;;) {
        size_t s = p;
        while (p < len && g_ascii_isdigit(text[p]))
            p++;
        if (ng < GROUPS_MAX) {
            gstart[ng] = s;
            gend[ng] = p;
        }
        ng++;
        if (p + 1 < len && (text[p] == ' ' || text[p] == '-') && g_ascii_isdigit(text[p + 1]))
            p++;
        else
            break;
    }
    end = p;
    if (ng > GROUPS_MAX || (end < len && g_ascii_isalpha(text[end])))
        return end;
    for (int a = 0; a < ng && hits->len < max; a++) {
        char num[CARD_MAX + 1];
        size_t nd = 0;
        for (int b = a; b < ng; b++) {
            size_t gl = gend[b] - gstart[b];
            if (nd + gl > CARD_MAX)
                break;
            memcpy(num + nd, text + gstart[b], gl);
            nd += gl;
            num[nd] = '\0';
            if (nd >= CARD_MIN && det_card_prefix_ok(num) && det_luhn_ok(num)) {
                hit_add(hits, DET_ACCOUNT_CARD, gstart[a], gend[b], num);
                a = b;          /* go on after this number */
                break;
            }
        }
    }
    return end;
}

/* An IBAN starting at i (two letters, two digits)? Its end, or 0. */
static size_t iban_at(const char *text, size_t len, size_t i, char *out, size_t outsize)
{
    int want = iban_length(text[i], text[i + 1]);
    size_t p = i, n = 0;

    if (want == 0 || (size_t)want >= outsize)
        return 0;
    while ((int)n < want && p < len) {
        if (g_ascii_isalnum(text[p])) {
            out[n++] = g_ascii_toupper(text[p++]);
        } else if (text[p] == ' ' && n > 0 && n % 4 == 0 && is_alnum_at(text, len, p + 1)) {
            p++;
        } else {
            break;
        }
    }
    out[n] = '\0';
    if ((int)n != want || is_alnum_at(text, len, p) || !det_iban_ok(out))
        return 0;
    return p;
}

GPtrArray *det_account_scan(const char *text, size_t len, size_t max)
{
    GPtrArray *hits = g_ptr_array_new_with_free_func(g_free);
    size_t i = 0;

    /* A number starts a word (a place after no letter or digit), and so
     * does an IBAN, whose check digits come two letters after its start:
     * the scan goes from digit to digit (det_text_cspan: this runs over
     * every byte of every message), and only there looks for either. */
    while (i < len && hits->len < max) {
        size_t q = i + det_text_cspan(text + i, len - i, "0123456789");

        if (q >= len)
            break;
        if (q >= i + 2 && q + 1 < len && g_ascii_isalpha(text[q - 2]) &&
            g_ascii_isalpha(text[q - 1]) && g_ascii_isdigit(text[q + 1]) &&
            (q == 2 || !g_ascii_isalnum(text[q - 3]))) {
            char iban[40];
            size_t e = iban_at(text, len, q - 2, iban, sizeof(iban));
            if (e > 0) {
                hit_add(hits, DET_ACCOUNT_IBAN, q - 2, e, iban);
                i = e;
                continue;
            }
        }
        if (q == 0 || !g_ascii_isalnum(text[q - 1]))
            i = card_run(text, len, q, hits, max);
        else
            i = q + 1;          /* inside a word */
    }
    return hits;
}
