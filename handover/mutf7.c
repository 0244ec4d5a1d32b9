/*
 * mutf7.c - folder names: IMAP modified UTF-7 and Dovecot's listescape
 *
 * Modified UTF-7 (RFC 3501 5.1.3) is what Dovecot keeps Maildir++ folder
 * names in. Decoding is as strict as Dovecot's own (an encoded printable
 * ASCII character or NUL, adjacent runs, bad padding: errors), so a name
 * decodes here exactly when Dovecot can read it; encoding gives the one
 * canonical form. Level names add listescape's "\XX" for the characters
 * a Maildir++ level cannot hold.
 */
#include <string.h>
#include "custos/handover-maildir.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64, c) : NULL;
    return p != NULL ? (int)(p - b64) : -1;
}

/* Append the UTF-16 units as one '&' ... '-' run. */
static void run_encode(GString *out, const guint16 *u, size_t n)
{
    guint32 bits = 0;
    int nbits = 0;

    g_string_append_c(out, '&');
    for (size_t i = 0; i < n; i++) {
        bits = (bits << 16) | u[i];
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            g_string_append_c(out, b64[(bits >> nbits) & 0x3f]);
        }
        bits &= (1u << nbits) - 1;
    }
    if (nbits > 0)
        g_string_append_c(out, b64[(bits << (6 - nbits)) & 0x3f]);
    g_string_append_c(out, '-');
}

int hov_mutf7_encode(const char *utf8, char **out_r, char **error_r)
{
    GString *out;
    GArray *run;
    const char *p;

    if (!g_utf8_validate(utf8, -1, NULL))
        return cus_error(error_r, "folder name \"%s\" is not valid UTF-8", utf8);
    out = g_string_new(NULL);
    run = g_array_new(FALSE, FALSE, sizeof(guint16));
    for (p = utf8; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);

        if (c >= 0x20 && c < 0x7f) {
            if (run->len > 0) {
                run_encode(out, (const guint16 *)(void *)run->data, run->len);
                g_array_set_size(run, 0);
            }
            g_string_append(out, c == '&' ? "&-" : (char[]){ (char)c, '\0' });
            continue;
        }
        if (c < 0x10000) {
            guint16 u = (guint16)c;
            g_array_append_val(run, u);
        } else {
            guint16 hi = (guint16)(0xd800 + ((c - 0x10000) >> 10));
            guint16 lo = (guint16)(0xdc00 + ((c - 0x10000) & 0x3ff));
            g_array_append_val(run, hi);
            g_array_append_val(run, lo);
        }
    }
    if (run->len > 0)
        run_encode(out, (const guint16 *)(void *)run->data, run->len);
    g_array_free(run, TRUE);
    *out_r = g_string_free(out, FALSE);
    return 0;
}

/* Decode the run starting after '&' at *pp up to and past its '-'. */
static int run_decode(const char **pp, GString *out, const char *whole, char **error_r)
{
    const char *p = *pp;
    guint32 bits = 0;
    int nbits = 0;
    guint16 hi = 0;
    int n_units = 0;

    for (; *p != '-'; p++) {
        int v = b64_value(*p);

        if (*p == '\0')
            return cus_error(error_r, "folder name \"%s\": a modified UTF-7 run is not "
                             "closed with '-'", whole);
        if (v < 0)
            return cus_error(error_r, "folder name \"%s\": '%c' in a modified UTF-7 run",
                             whole, g_ascii_isprint(*p) ? *p : '?');
        bits = (bits << 6) | (guint32)v;
        nbits += 6;
        if (nbits < 16)
            continue;
        nbits -= 16;
        {
            guint16 u = (guint16)(bits >> nbits);
            bits &= (1u << nbits) - 1;
            n_units++;
            if (hi != 0) {
                if (u < 0xdc00 || u > 0xdfff)
                    return cus_error(error_r, "folder name \"%s\": an unpaired UTF-16 "
                                     "surrogate", whole);
                g_string_append_unichar(out, 0x10000 + (((gunichar)hi - 0xd800) << 10) +
                                             ((gunichar)u - 0xdc00));
                hi = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                hi = u;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                return cus_error(error_r, "folder name \"%s\": an unpaired UTF-16 surrogate",
                                 whole);
            } else if (u == 0 || (u >= 0x20 && u < 0x7f)) {
                return cus_error(error_r, "folder name \"%s\": %s encoded in a modified "
                                 "UTF-7 run", whole, u == 0 ? "NUL" : "printable ASCII");
            } else {
                g_string_append_unichar(out, u);
            }
        }
    }
    if (hi != 0)
        return cus_error(error_r, "folder name \"%s\": an unpaired UTF-16 surrogate", whole);
    if (n_units == 0 || nbits >= 6 || bits != 0)
        return cus_error(error_r, "folder name \"%s\": a modified UTF-7 run of bad length "
                         "or padding", whole);
    *pp = p + 1;
    return 0;
}

int hov_mutf7_decode(const char *in, char **out_r, char **error_r)
{
    GString *out = g_string_new(NULL);
    const char *p = in;
    int after_run = 0;

    while (*p != '\0') {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c >= 0x7f) {
            cus_error(error_r, "folder name \"%s\": byte 0x%02x is not printable ASCII "
                      "(not modified UTF-7)", in, c);
            goto fail;
        }
        if (c != '&') {
            g_string_append_c(out, (char)c);
            p++;
            after_run = 0;
            continue;
        }
        if (p[1] == '-') {
            g_string_append_c(out, '&');
            p += 2;
            after_run = 0;
            continue;
        }
        if (after_run) {
            cus_error(error_r, "folder name \"%s\": two modified UTF-7 runs next to each "
                      "other", in);
            goto fail;
        }
        p++;
        if (run_decode(&p, out, in, error_r) < 0)
            goto fail;
        after_run = 1;
    }
    *out_r = g_string_free(out, FALSE);
    return 0;
fail:
    g_string_free(out, TRUE);
    return -1;
}

int hov_level_encode(const char *utf8, enum hov_escape esc, char **out_r, char **error_r)
{
    GString *s;
    int ret;

    if (*utf8 == '\0')
        return cus_error(error_r, "an empty folder name");
    if (!g_utf8_validate(utf8, -1, NULL))
        return cus_error(error_r, "folder name \"%s\" is not valid UTF-8", utf8);
    for (const char *p = utf8; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return cus_error(error_r, "folder name \"%s\" has a control character", utf8);
    s = g_string_new(NULL);
    for (const char *p = utf8; *p != '\0'; p++) {
        int special = *p == '.' || *p == '/' || *p == '\\' || (*p == '~' && p == utf8);

        if (!special)
            g_string_append_c(s, *p);
        else if (esc == HOV_ESC_LISTESCAPE)
            g_string_append_printf(s, "\\%02x", (unsigned char)*p);
        else
            g_string_append_c(s, '_');
    }
    ret = hov_mutf7_encode(s->str, out_r, error_r);
    g_string_free(s, TRUE);
    return ret;
}

int hov_level_decode(const char *level, char **out_r, char **error_r)
{
    char *utf8 = NULL;
    GString *s;

    if (hov_mutf7_decode(level, &utf8, error_r) < 0)
        return -1;
    s = g_string_new(NULL);
    for (const char *p = utf8; *p != '\0'; p++) {
        if (*p == '\\' && g_ascii_isxdigit(p[1]) && g_ascii_isxdigit(p[2])) {
            int v = g_ascii_xdigit_value(p[1]) * 16 + g_ascii_xdigit_value(p[2]);
            if (v >= 0x20 && v < 0x7f) {
                g_string_append_c(s, (char)v);
                p += 2;
                continue;
            }
        }
        g_string_append_c(s, *p);
    }
    g_free(utf8);
    *out_r = g_string_free(s, FALSE);
    return 0;
}

char *hov_storage_display(const char *storage)
{
    char **levels;
    GString *s;

    if (*storage == '\0')
        return g_strdup("INBOX");
    levels = g_strsplit(storage, ".", -1);
    s = g_string_new(NULL);
    for (int i = 0; levels[i] != NULL; i++) {
        char *d = NULL;

        if (i > 0)
            g_string_append_c(s, '/');
        if (hov_level_decode(levels[i], &d, NULL) == 0) {
            g_string_append(s, d);
            g_free(d);
        } else {
            char *r = cus_utf8_repair(levels[i], strlen(levels[i]));
            g_string_append(s, r);
            g_free(r);
        }
    }
    g_strfreev(levels);
    return g_string_free(s, FALSE);
}
