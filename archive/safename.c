/*
 * safename.c - any string from mail made safe to name a file; see safename.h
 *
 * One pass over the characters sorts each into keep, dot, space or bad;
 * runs of space and bad collapse into one separator, runs of dots into
 * one dot. Then the ends are trimmed, the length cut (keeping a short
 * extension), and Windows device names defused. The result is a fixed
 * point: safename() of a safe name is the name itself (safename_ok()).
 */
#include <string.h>
#include <glib.h>
#include "custos/safename.h"

#define EXT_MAX 16              /* longest extension kept when cutting */

enum cls { C_KEEP, C_DOT, C_SPACE, C_BAD };

/* Look-alikes of '/' and '\' that "best fit" code page conversion and
 * some tools turn into the real thing. */
static int is_slash_like(gunichar c)
{
    return c == 0x2044 || c == 0x2215 || c == 0x29F8 || c == 0xFE68 || c == 0xFF0F ||
           c == 0xFF3C;
}

static enum cls classify(gunichar c, unsigned flags)
{
    if (c == '.')
        return C_DOT;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
        (c == '-' && (flags & SAFENAME_DASH)))
        return C_SPACE;
    if (c < 0x80)
        return c < 0x20 || c == 0x7F || strchr("/\\<>:\"|?*", (int)c) != NULL ? C_BAD : C_KEEP;
    if (c <= 0x9F || c == 0xFFFD || is_slash_like(c))
        return C_BAD;
    switch (g_unichar_type(c)) {
    case G_UNICODE_SPACE_SEPARATOR:
        return C_SPACE;
    case G_UNICODE_CONTROL:
    case G_UNICODE_FORMAT:
    case G_UNICODE_SURROGATE:
    case G_UNICODE_PRIVATE_USE:
    case G_UNICODE_UNASSIGNED:
    case G_UNICODE_LINE_SEPARATOR:
    case G_UNICODE_PARAGRAPH_SEPARATOR:
        return C_BAD;
    default:
        return C_KEEP;
    }
}

/* Valid UTF-8 from any bytes: each byte that does not start a valid
 * sequence (NUL included) becomes U+FFFD, which classify() calls bad. */
static char *to_utf8(const char *in, size_t len)
{
    GString *s = g_string_sized_new(len + 1);
    const char *p = in, *end = in + len;

    while (p < end) {
        gunichar c = *p == '\0' ? (gunichar)-1 : g_utf8_get_char_validated(p, end - p);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            g_string_append(s, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        g_string_append_len(s, p, g_utf8_next_char(p) - p);
        p = g_utf8_next_char(p);
    }
    return g_string_free(s, FALSE);
}

static int trim_lead(int ch)
{
    return ch == '.' || ch == '-' || ch == ' ';
}

static int trim_tail(int ch, unsigned flags)
{
    return ch == '.' || ch == ' ' || ((flags & SAFENAME_DASH) && ch == '-');
}

static void trim_end(GString *s, unsigned flags)
{
    while (s->len > 0 && trim_tail(s->str[s->len - 1], flags))
        g_string_truncate(s, s->len - 1);
}

/* Windows device names: the part before the first '.', trailing spaces
 * ignored, any case; COM and LPT with 1-9 or a superscript 1-3. */
static int is_reserved(const char *name)
{
    static const char *const plain[] = { "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$" };
    const char *dot = strchr(name, '.');
    size_t n = dot != NULL ? (size_t)(dot - name) : strlen(name);

    while (n > 0 && name[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < G_N_ELEMENTS(plain); i++)
        if (n == strlen(plain[i]) && g_ascii_strncasecmp(name, plain[i], n) == 0)
            return 1;
    if (n >= 4 && (g_ascii_strncasecmp(name, "COM", 3) == 0 ||
                   g_ascii_strncasecmp(name, "LPT", 3) == 0)) {
        const char *d = name + 3;
        if (n == 4 && *d >= '1' && *d <= '9')
            return 1;
        /* ¹ U+00B9, ² U+00B2, ³ U+00B3 */
        if (n == 5 && (unsigned char)d[0] == 0xC2 &&
            ((unsigned char)d[1] == 0xB9 || (unsigned char)d[1] == 0xB2 ||
             (unsigned char)d[1] == 0xB3))
            return 1;
    }
    return 0;
}

/* The longest prefix of s of at most max bytes that ends on a character
 * boundary (s is valid UTF-8). */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    size_t n = MIN(len, max);

    while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Cut s to max bytes, keeping a short extension when there is one. */
static void cut(GString *s, size_t max, unsigned flags)
{
    const char *dot;
    size_t ext = 0;
    GString *stem;

    if (s->len <= max)
        return;
    dot = strrchr(s->str, '.');
    if (dot != NULL && dot != s->str)
        ext = s->len - (size_t)(dot - s->str);      /* with the dot */
    if (ext < 2 || ext > EXT_MAX + 1 || ext > max / 2)
        ext = 0;
    stem = g_string_new_len(s->str, (gssize)utf8_cut(s->str, s->len - ext, max - ext));
    trim_end(stem, flags);
    if (stem->len == 0)
        ext = 0;
    if (ext > 0)
        g_string_append_len(stem, s->str + s->len - ext, (gssize)ext);
    else if (stem->len == 0)
        g_string_append_len(stem, s->str, (gssize)utf8_cut(s->str, s->len, max));
    trim_end(stem, flags);
    g_string_assign(s, stem->str);
    g_string_free(stem, TRUE);
}

static char *safename_once(const char *in, size_t len, size_t max, unsigned flags)
{
    char *u = to_utf8(in, len), *nfc = g_utf8_normalize(u, -1, G_NORMALIZE_NFC);
    GString *s = g_string_sized_new(strlen(u) + 2);
    enum cls run = C_KEEP;      /* the run being collapsed: C_DOT, C_BAD
                                 * (bad and space mixed), or C_KEEP: none */
    int run_space = 0;          /* the run had white space in it */
    const char *p;
    size_t lead = 0;

    g_free(u);
    for (p = nfc != NULL ? nfc : ""; ; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        enum cls k = c == 0 ? C_KEEP : classify(c, flags);
        enum cls kr = k == C_SPACE ? C_BAD : k;

        if (run != C_KEEP && kr != run) {
            /* the run ends: one character stands for it */
            if (run == C_DOT)
                g_string_append_c(s, '.');
            else
                g_string_append_c(s, run_space ? ((flags & SAFENAME_DASH) ? '-' : ' ') : '_');
            run = C_KEEP;
            run_space = 0;
        }
        if (c == 0)
            break;
        if (k == C_KEEP)
            g_string_append_len(s, p, g_utf8_next_char(p) - p);
        run = kr;
        run_space |= k == C_SPACE;
    }
    g_free(nfc);
    while (lead < s->len && trim_lead(s->str[lead]))
        lead++;
    g_string_erase(s, 0, (gssize)lead);
    trim_end(s, flags);
    cut(s, max, flags);
    if (s->len > 0 && is_reserved(s->str)) {
        g_string_prepend_c(s, '_');
        if (s->len > max) {
            g_string_truncate(s, utf8_cut(s->str, s->len, max));
            trim_end(s, flags);
        }
    }
    return g_string_free(s, FALSE);
}

/* Nothing but what stood for bad bytes (or nothing at all). */
static int only_underscores(const char *s)
{
    while (*s == '_')
        s++;
    return *s == '\0';
}

char *safename(const char *in, size_t len, size_t max_bytes, const char *fallback,
               unsigned flags)
{
    char *s;

    if (max_bytes < SAFENAME_MIN_BYTES)
        max_bytes = SAFENAME_MIN_BYTES;
    s = safename_once(in != NULL ? in : "", in != NULL ? len : 0, max_bytes, flags);
    if (only_underscores(s) && fallback != NULL) {
        g_free(s);
        s = safename_once(fallback, strlen(fallback), max_bytes, flags);
    }
    if (only_underscores(s)) {
        g_free(s);
        s = g_strdup("unnamed");
    }
    return s;
}

int safename_ok(const char *name, size_t max_bytes)
{
    char *again;
    int ok;

    if (name == NULL || *name == '\0')
        return 0;
    again = safename(name, strlen(name), max_bytes, NULL, 0);
    ok = strcmp(again, name) == 0;
    g_free(again);
    return ok;
}
