/*
 * msg-text.c - charsets, encoded words, parameters and HTML for msg.c
 *
 * Everything here turns bytes of some labelled or unlabelled charset into
 * valid UTF-8 without NUL bytes. Every GB* label is read as GB18030 (mail
 * labelled GB2312 is often GBK); adjacent RFC 2047 words of one charset are
 * joined as bytes before conversion, since senders split characters between
 * them; unlabelled 8-bit is tried as UTF-8, then GB18030, then Latin-1.
 * iconv descriptors are cached per thread.
 */
#include <errno.h>
#include <string.h>
#include "msg-private.h"

/* --- charset labels ---------------------------------------------------- */

static const struct {
    const char *label;
    const char *canon;          /* NULL: guess */
} charset_aliases[] = {
    { "utf-8", "UTF-8" }, { "utf8", "UTF-8" }, { "unicode-1-1-utf-8", "UTF-8" },
    { "us-ascii", NULL }, { "ascii", NULL }, { "ansi_x3.4-1968", NULL },
    { "iso646-us", NULL }, { "unknown-8bit", NULL }, { "x-unknown", NULL },
    { "unknown", NULL }, { "default", NULL }, { "x-user-defined", NULL },
    { "gb2312", "GB18030" }, { "gbk", "GB18030" }, { "x-gbk", "GB18030" },
    { "cp936", "GB18030" }, { "ms936", "GB18030" }, { "windows-936", "GB18030" },
    { "euc-cn", "GB18030" }, { "x-euc-cn", "GB18030" }, { "gb18030", "GB18030" },
    { "gb_2312-80", "GB18030" }, { "gb_2312", "GB18030" }, { "csgb2312", "GB18030" },
    { "chinese", "GB18030" }, { "x-gb2312", "GB18030" }, { "gb18030-2000", "GB18030" },
    { "big5", "CP950" }, { "big-5", "CP950" }, { "x-big5", "CP950" },
    { "cn-big5", "CP950" }, { "csbig5", "CP950" }, { "cp950", "CP950" },
    { "big5-hkscs", "BIG5-HKSCS" },
    { "iso-8859-1", "WINDOWS-1252" }, { "latin1", "WINDOWS-1252" },
    { "latin-1", "WINDOWS-1252" }, { "l1", "WINDOWS-1252" },
    { "iso_8859-1", "WINDOWS-1252" }, { "iso8859-1", "WINDOWS-1252" },
    { "cp819", "WINDOWS-1252" }, { "windows-1252", "WINDOWS-1252" },
    { "cp1252", "WINDOWS-1252" },
    { "shift_jis", "CP932" }, { "shift-jis", "CP932" }, { "sjis", "CP932" },
    { "x-sjis", "CP932" }, { "ms_kanji", "CP932" }, { "csshiftjis", "CP932" },
    { "windows-31j", "CP932" }, { "cp932", "CP932" },
    { "iso-2022-jp", "ISO-2022-JP-2" }, { "csiso2022jp", "ISO-2022-JP-2" },
    { "ks_c_5601-1987", "CP949" }, { "ks_c_5601", "CP949" }, { "euc-kr", "CP949" },
    { "korean", "CP949" }, { "cp949", "CP949" }, { "ksc5601", "CP949" },
    { "utf-7", "UTF-7" }, { "unicode-1-1-utf-7", "UTF-7" },
};

const char *msg_charset_canon(const char *label, size_t len, char *buf)
{
    size_t n = 0;

    if (label == NULL)
        return NULL;
    while (len > 0 && (g_ascii_isspace(*label) || *label == '"' || *label == '\'')) {
        label++;
        len--;
    }
    /* RFC 2231 language suffix: "utf-8*en" */
    for (size_t i = 0; i < len; i++) {
        char c = label[i];
        if (c == '*' || c == '"' || c == '\'' || g_ascii_isspace(c))
            break;
        if (n + 1 >= MSG_CHARSET_MAX)
            return NULL;
        buf[n++] = g_ascii_tolower(c);
    }
    buf[n] = '\0';
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(charset_aliases); i++)
        if (strcmp(buf, charset_aliases[i].label) == 0)
            return charset_aliases[i].canon;
    for (size_t i = 0; i < n; i++)
        buf[i] = g_ascii_toupper(buf[i]);
    return buf;
}

/* --- conversion -------------------------------------------------------- */

#define ICONV_CACHE 12

struct iconv_slot {
    char name[MSG_CHARSET_MAX];
    GIConv cd;
};

struct iconv_cache {
    struct iconv_slot slot[ICONV_CACHE];
    unsigned int next;
};

/* Each thread's cache is closed when the thread ends (parser workers). */
static void iconv_cache_free(gpointer data)
{
    struct iconv_cache *c = data;

    for (int i = 0; i < ICONV_CACHE; i++)
        if (c->slot[i].name[0] != '\0' && c->slot[i].cd != (GIConv)-1)
            g_iconv_close(c->slot[i].cd);
    g_free(c);
}

static GPrivate iconv_key = G_PRIVATE_INIT(iconv_cache_free);

/* A descriptor from charset to UTF-8, cached; NULL if iconv lacks it. */
static GIConv iconv_get(const char *charset)
{
    struct iconv_cache *c = g_private_get(&iconv_key);
    struct iconv_slot *slot;
    GIConv cd;

    if (c == NULL) {
        c = g_new0(struct iconv_cache, 1);
        g_private_set(&iconv_key, c);
    }
    for (int i = 0; i < ICONV_CACHE; i++) {
        slot = &c->slot[i];
        if (slot->name[0] != '\0' && strcmp(slot->name, charset) == 0) {
            if (slot->cd != (GIConv)-1)
                g_iconv(slot->cd, NULL, NULL, NULL, NULL);
            return slot->cd == (GIConv)-1 ? NULL : slot->cd;
        }
    }
    cd = g_iconv_open("UTF-8", charset);
    slot = &c->slot[c->next++ % ICONV_CACHE];
    if (slot->name[0] != '\0' && slot->cd != (GIConv)-1)
        g_iconv_close(slot->cd);
    g_strlcpy(slot->name, charset, sizeof(slot->name));
    slot->cd = cd;                 /* failures cached too */
    return cd == (GIConv)-1 ? NULL : cd;
}

/* Append valid UTF-8 bytes, dropping NULs. */
static void append_nonul(GString *out, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *z;

    while (p < end && (z = memchr(p, '\0', end - p)) != NULL) {
        g_string_append_len(out, p, z - p);
        p = z + 1;
    }
    g_string_append_len(out, p, end - p);
}

/* Convert with iconv. strict: fail (append nothing) on any bad byte;
 * otherwise a bad byte becomes U+FFFD. -1 if charset unknown. */
static int iconv_append(GString *out, const char *buf, size_t len,
                        const char *charset, int strict)
{
    GIConv cd = iconv_get(charset);
    char tmp[4096];
    gchar *in = (gchar *)buf;
    gsize inleft = len;
    gsize start = out->len;

    if (cd == NULL)
        return -1;
    while (inleft > 0) {
        gchar *op = tmp;
        gsize outleft = sizeof(tmp);
        gsize r = g_iconv(cd, &in, &inleft, &op, &outleft);
        int err = errno;

        append_nonul(out, tmp, op - tmp);
        if (r != (gsize)-1)
            continue;
        if (err == E2BIG)
            continue;
        if (strict) {
            g_string_truncate(out, start);
            return -1;
        }
        /* EILSEQ or EINVAL (truncated at the end): skip one byte */
        g_string_append(out, "\xEF\xBF\xBD");
        in++;
        inleft--;
        g_iconv(cd, NULL, NULL, NULL, NULL);
    }
    /* flush a stateful encoding's shift state */
    {
        gchar *op = tmp;
        gsize outleft = sizeof(tmp);
        g_iconv(cd, NULL, NULL, &op, &outleft);
        append_nonul(out, tmp, op - tmp);
    }
    if (!g_utf8_validate(out->str + start, out->len - start, NULL)) {
        char *fixed = cus_utf8_repair(out->str + start, out->len - start);
        g_string_truncate(out, start);
        g_string_append(out, fixed);
        g_free(fixed);
    }
    return 0;
}

/* Big5 text also reads as GBK, but a quarter or more of its second bytes
 * fall below 0xA1, where GB2312-range text (nearly all GBK mail) has
 * none. */
static int looks_big5(const char *buf, size_t len)
{
    size_t pairs = 0, low = 0;

    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char b = (unsigned char)buf[i], t = (unsigned char)buf[i + 1];
        if (b < 0x81)
            continue;
        pairs++;
        if (t < 0xA1)
            low++;
        i++;
    }
    return pairs >= 4 && low * 4 >= pairs;
}

/* No charset: UTF-8 if valid, else GB18030 if clean, else Latin-1
 * (Big5 before GB18030 when the bytes look like Big5). */
static void guess_append(GString *out, const char *buf, size_t len)
{
    if (g_utf8_validate_len(buf, len, NULL)) {
        append_nonul(out, buf, len);
        return;
    }
    if (looks_big5(buf, len) && iconv_append(out, buf, len, "CP950", 1) == 0)
        return;
    if (iconv_append(out, buf, len, "GB18030", 1) == 0)
        return;
    if (iconv_append(out, buf, len, "WINDOWS-1252", 1) == 0)
        return;
    iconv_append(out, buf, len, "ISO-8859-1", 0);
}

void msg_append_utf8(GString *out, const char *buf, size_t len, const char *charset)
{
    if (len == 0)
        return;
    if (cus_is_ascii(buf, len)) {
        /* ASCII-compatible for every charset but the 7-bit stateful ones */
        if (charset == NULL || (strncmp(charset, "ISO-2022", 8) != 0 &&
                                strncmp(charset, "UTF-7", 5) != 0 &&
                                strcmp(charset, "HZ") != 0)) {
            append_nonul(out, buf, len);
            return;
        }
    }
    if (charset == NULL) {
        guess_append(out, buf, len);
    } else if (strcmp(charset, "UTF-8") == 0) {
        if (g_utf8_validate_len(buf, len, NULL))
            append_nonul(out, buf, len);
        else if (iconv_append(out, buf, len, "GB18030", 1) != 0) {
            /* mislabelled GBK is common; otherwise repair */
            char *fixed = cus_utf8_repair(buf, len);
            g_string_append(out, fixed);
            g_free(fixed);
        }
    } else if (strcmp(charset, "WINDOWS-1252") == 0) {
        if (iconv_append(out, buf, len, "WINDOWS-1252", 1) != 0)
            iconv_append(out, buf, len, "ISO-8859-1", 0);
    } else if (iconv_append(out, buf, len, charset, 0) != 0) {
        guess_append(out, buf, len);
    }
}

char *msg_to_utf8(const char *buf, size_t len, const char *charset)
{
    char cbuf[MSG_CHARSET_MAX];
    GString *out = g_string_sized_new(len + 1);

    msg_append_utf8(out, buf, len,
                    charset ? msg_charset_canon(charset, strlen(charset), cbuf) : NULL);
    return g_string_free(out, FALSE);
}

/* --- RFC 2047 ---------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Base64 with missing padding tolerated; -1 on a foreign character. */
static int b64_decode(const char *s, size_t len, GByteArray *out)
{
    unsigned int acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        int v;
        if (s[i] == '=')
            break;
        v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            guint8 b = (guint8)(acc >> (bits - 8));
            bits -= 8;
            g_byte_array_append(out, &b, 1);
        }
    }
    return 0;
}

static void q_decode(const char *s, size_t len, GByteArray *out)
{
    for (size_t i = 0; i < len; i++) {
        guint8 b = (guint8)s[i];
        if (b == '_') {
            b = ' ';
        } else if (b == '=' && i + 2 < len + 0 && g_ascii_isxdigit(s[i + 1]) &&
                   g_ascii_isxdigit(s[i + 2])) {
            b = (guint8)(g_ascii_xdigit_value(s[i + 1]) << 4 |
                         g_ascii_xdigit_value(s[i + 2]));
            i += 2;
        }
        g_byte_array_append(out, &b, 1);
    }
}

struct eword {
    const char *cs;             /* charset label */
    size_t cslen;
    char enc;                   /* 'B' or 'Q' */
    const char *text;
    size_t textlen;
    const char *end;            /* just past "?=" */
};

/* Parse "=?cs?X?text?=" at p (p[0..1] == "=?"); 0 if not one. */
static int eword_parse(const char *p, const char *end, struct eword *w)
{
    const char *q = p + 2, *t;

    w->cs = q;
    while (q < end && *q != '?' && !g_ascii_isspace(*q))
        q++;
    if (q >= end || *q != '?' || q == w->cs)
        return 0;
    w->cslen = q - w->cs;
    q++;
    if (q + 1 >= end || q[1] != '?')
        return 0;
    w->enc = g_ascii_toupper(*q);
    if (w->enc != 'B' && w->enc != 'Q')
        return 0;
    q += 2;
    w->text = q;
    for (t = q; t + 1 < end; t++)
        if (t[0] == '?' && t[1] == '=')
            break;
    if (t + 1 >= end)
        return 0;
    w->textlen = t - q;
    w->end = t + 2;
    return 1;
}

/* Decode a raw header value: encoded words (runs of one charset joined as
 * bytes), raw 8-bit guessed. Returns UTF-8 without NUL, unfolded. */
char *msg_decode_header(const char *raw)
{
    const char *p, *end, *run;
    GString *out;
    GByteArray *pending;
    char pcs_buf[MSG_CHARSET_MAX], cs_buf[MSG_CHARSET_MAX];
    const char *pcs = NULL;
    int have_pending = 0;
    char *unfolded = NULL;

    if (raw == NULL)
        return g_strdup("");
    if (strpbrk(raw, "\r\n") != NULL)
        raw = unfolded = msg_unfold(raw);
    while (g_ascii_isspace(*raw))
        raw++;
    end = raw + strlen(raw);
    while (end > raw && g_ascii_isspace(end[-1]))
        end--;
    /* fast path: plain ASCII */
    if (cus_is_ascii(raw, end - raw) && strstr(raw, "=?") == NULL) {
        char *s = g_strndup(raw, end - raw);
        g_free(unfolded);
        return s;
    }
    out = g_string_sized_new((end - raw) + 16);
    pending = g_byte_array_new();
    p = raw;
    run = raw;
    while (p < end) {
        struct eword w;
        GByteArray *dec;
        const char *cs;

        if (!(p[0] == '=' && p + 1 < end && p[1] == '?' && eword_parse(p, end, &w))) {
            p++;
            continue;
        }
        cs = msg_charset_canon(w.cs, w.cslen, cs_buf);
        dec = g_byte_array_new();
        if (w.enc == 'B' ? b64_decode(w.text, w.textlen, dec) < 0
                         : (q_decode(w.text, w.textlen, dec), 0)) {
            g_byte_array_free(dec, TRUE);
            p++;                       /* malformed: left as text */
            continue;
        }
        /* plain text before this word */
        if (p > run) {
            if (have_pending) {
                msg_append_utf8(out, (char *)pending->data, pending->len, pcs);
                g_byte_array_set_size(pending, 0);
                have_pending = 0;
            }
            msg_append_utf8(out, run, p - run, NULL);
        }
        if (have_pending && g_strcmp0(cs, pcs) != 0) {
            msg_append_utf8(out, (char *)pending->data, pending->len, pcs);
            g_byte_array_set_size(pending, 0);
        }
        g_byte_array_append(pending, dec->data, dec->len);
        g_byte_array_free(dec, TRUE);
        if (cs != NULL) {
            g_strlcpy(pcs_buf, cs, sizeof(pcs_buf));
            pcs = pcs_buf;
        } else {
            pcs = NULL;
        }
        have_pending = 1;
        p = w.end;
        run = p;
        /* white space between two encoded words is dropped */
        {
            const char *q = p;
            struct eword w2;
            while (q < end && g_ascii_isspace(*q))
                q++;
            if (q > p && q + 1 < end && q[0] == '=' && q[1] == '?' &&
                eword_parse(q, end, &w2)) {
                p = q;
                run = q;
            }
        }
    }
    if (have_pending && run < end) {
        msg_append_utf8(out, (char *)pending->data, pending->len, pcs);
        have_pending = 0;
    }
    if (have_pending)
        msg_append_utf8(out, (char *)pending->data, pending->len, pcs);
    else if (run < end)
        msg_append_utf8(out, run, end - run, NULL);
    g_byte_array_free(pending, TRUE);
    g_free(unfolded);
    return g_string_free(out, FALSE);
}

char *msg_unfold(const char *raw)
{
    size_t n = strlen(raw);
    char *s = g_malloc(n + 1), *o = s;

    for (size_t i = 0; i < n; i++)
        if (raw[i] != '\r' && raw[i] != '\n')
            *o++ = raw[i];
    *o = '\0';
    return s;
}

/* --- RFC 2231 parameters ----------------------------------------------- */

#define PARAM_SECTIONS 64

struct param_part {
    char *val;                  /* raw bytes (quotes removed) */
    int ext;                    /* "*" form: charset'lang'%XX */
};

static void pct_decode(GString *out, const char *s)
{
    for (; *s; s++) {
        if (s[0] == '%' && g_ascii_isxdigit(s[1]) && g_ascii_isxdigit(s[2])) {
            g_string_append_c(out, (char)(g_ascii_xdigit_value(s[1]) << 4 |
                                          g_ascii_xdigit_value(s[2])));
            s += 2;
        } else {
            g_string_append_c(out, *s);
        }
    }
}

char *msg_param_decode(const char *raw, const char *name)
{
    struct param_part sec[PARAM_SECTIONS] = { { 0 } };
    char *plain = NULL, *result = NULL, *unf;
    const char *p;
    size_t nlen = strlen(name);
    int nsec = 0;

    if (raw == NULL)
        return NULL;
    p = unf = msg_unfold(raw);
    /* skip the type / disposition value */
    while (*p && *p != ';') {
        if (*p == '"') {
            p++;
            while (*p && *p != '"')
                p += (*p == '\\' && p[1]) ? 2 : 1;
        }
        if (*p)
            p++;
    }
    while (*p) {
        const char *a, *ae;
        GString *v;

        while (*p == ';' || g_ascii_isspace(*p))
            p++;
        a = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        ae = p;
        while (ae > a && g_ascii_isspace(ae[-1]))
            ae--;
        if (*p != '=')
            continue;
        p++;
        while (g_ascii_isspace(*p))
            p++;
        v = g_string_new(NULL);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                g_string_append_c(v, *p++);
            }
            if (*p == '"')
                p++;
            while (*p && *p != ';')
                p++;
        } else {
            const char *vs = p;
            while (*p && *p != ';')
                p++;
            const char *ve = p;
            while (ve > vs && g_ascii_isspace(ve[-1]))
                ve--;
            g_string_append_len(v, vs, ve - vs);
        }
        if ((size_t)(ae - a) >= nlen && g_ascii_strncasecmp(a, name, nlen) == 0) {
            const char *rest = a + nlen;
            size_t rlen = ae - rest;
            if (rlen == 0) {
                if (plain == NULL) {
                    plain = g_string_free(v, FALSE);
                    continue;
                }
            } else if (*rest == '*') {
                int idx = 0, ext = 0;
                const char *r = rest + 1, *re = ae;
                if (r == re) {
                    ext = 1;            /* name*= */
                } else {
                    char *num_end;
                    long n = strtol(r, &num_end, 10);
                    if (num_end != r && n >= 0 && n < PARAM_SECTIONS) {
                        idx = (int)n;
                        if (num_end == re - 1 && *num_end == '*')
                            ext = 1;
                        else if (num_end != re)
                            idx = -1;
                    } else {
                        idx = -1;
                    }
                }
                if (idx >= 0 && sec[idx].val == NULL) {
                    sec[idx].val = g_string_free(v, FALSE);
                    sec[idx].ext = ext;
                    if (idx + 1 > nsec)
                        nsec = idx + 1;
                    continue;
                }
            }
        }
        g_string_free(v, TRUE);
    }
    if (nsec > 0 && sec[0].val != NULL) {
        GString *bytes = g_string_new(NULL);
        char cbuf[MSG_CHARSET_MAX];
        const char *cs = NULL;
        for (int i = 0; i < nsec && sec[i].val != NULL; i++) {
            const char *s = sec[i].val;
            if (i == 0 && sec[i].ext) {
                const char *q1 = strchr(s, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
                if (q2 != NULL) {
                    cs = msg_charset_canon(s, q1 - s, cbuf);
                    s = q2 + 1;
                }
            }
            if (sec[i].ext)
                pct_decode(bytes, s);
            else
                g_string_append(bytes, s);
        }
        if (cs == NULL && strstr(bytes->str, "=?") != NULL) {
            result = msg_decode_header(bytes->str);
        } else {
            GString *out = g_string_sized_new(bytes->len + 1);
            msg_append_utf8(out, bytes->str, bytes->len, cs);
            result = g_string_free(out, FALSE);
        }
        g_string_free(bytes, TRUE);
    } else if (plain != NULL) {
        result = msg_decode_header(plain);
    }
    for (int i = 0; i < PARAM_SECTIONS; i++)
        g_free(sec[i].val);
    g_free(plain);
    g_free(unf);
    return result;
}

/* --- HTML -------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *utf8;
} entities[] = {
    { "amp", "&" }, { "lt", "<" }, { "gt", ">" }, { "quot", "\"" }, { "apos", "'" },
    { "nbsp", " " }, { "ensp", " " }, { "emsp", " " }, { "thinsp", " " },
    { "zwnj", "" }, { "zwj", "" }, { "shy", "" }, { "lrm", "" }, { "rlm", "" },
    { "copy", "\xC2\xA9" }, { "reg", "\xC2\xAE" }, { "trade", "\xE2\x84\xA2" },
    { "mdash", "\xE2\x80\x94" }, { "ndash", "\xE2\x80\x93" }, { "hellip", "\xE2\x80\xA6" },
    { "laquo", "\xC2\xAB" }, { "raquo", "\xC2\xBB" }, { "ldquo", "\xE2\x80\x9C" },
    { "rdquo", "\xE2\x80\x9D" }, { "lsquo", "\xE2\x80\x98" }, { "rsquo", "\xE2\x80\x99" },
    { "sbquo", "\xE2\x80\x9A" }, { "bdquo", "\xE2\x80\x9E" },
    { "bull", "\xE2\x80\xA2" }, { "middot", "\xC2\xB7" }, { "euro", "\xE2\x82\xAC" },
    { "pound", "\xC2\xA3" }, { "yen", "\xC2\xA5" }, { "cent", "\xC2\xA2" },
    { "times", "\xC3\x97" }, { "divide", "\xC3\xB7" }, { "deg", "\xC2\xB0" },
    { "plusmn", "\xC2\xB1" }, { "para", "\xC2\xB6" }, { "sect", "\xC2\xA7" },
    { "iexcl", "\xC2\xA1" }, { "iquest", "\xC2\xBF" }, { "rarr", "\xE2\x86\x92" },
    { "larr", "\xE2\x86\x90" }, { "auml", "\xC3\xA4" }, { "ouml", "\xC3\xB6" },
    { "uuml", "\xC3\xBC" }, { "Auml", "\xC3\x84" }, { "Ouml", "\xC3\x96" },
    { "Uuml", "\xC3\x9C" }, { "szlig", "\xC3\x9F" }, { "eacute", "\xC3\xA9" },
    { "egrave", "\xC3\xA8" }, { "agrave", "\xC3\xA0" }, { "aacute", "\xC3\xA1" },
    { "ccedil", "\xC3\xA7" }, { "ntilde", "\xC3\xB1" }, { "oacute", "\xC3\xB3" },
    { "iacute", "\xC3\xAD" }, { "uacute", "\xC3\xBA" }, { "Eacute", "\xC3\x89" },
};

static void append_cp(GString *out, gunichar c)
{
    if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        c = 0xFFFD;
    if (c == 0xA0)
        c = ' ';
    g_string_append_unichar(out, c);
}

/* Decode the entity at s ('&'); returns bytes consumed, 0 if none. */
static size_t entity_decode(GString *out, const char *s, size_t len)
{
    size_t i = 1;

    if (len > 2 && s[1] == '#') {
        gunichar c = 0;
        int hex = (s[2] == 'x' || s[2] == 'X');
        size_t digits = 0;
        i = hex ? 3 : 2;
        for (; i < len && digits < 8; i++, digits++) {
            int v = hex ? g_ascii_xdigit_value(s[i]) : g_ascii_digit_value(s[i]);
            if (v < 0)
                break;
            c = c * (hex ? 16 : 10) + (gunichar)v;
        }
        if (digits == 0)
            return 0;
        if (i < len && s[i] == ';')
            i++;
        append_cp(out, c);
        return i;
    }
    while (i < len && i < 12 && g_ascii_isalnum(s[i]))
        i++;
    if (i == 1)
        return 0;
    for (size_t k = 0; k < G_N_ELEMENTS(entities); k++) {
        size_t n = strlen(entities[k].name);
        if (n == i - 1 && memcmp(s + 1, entities[k].name, n) == 0) {
            int semi = i < len && s[i] == ';';
            if (!semi && k > 5)
                return 0;
            g_string_append(out, entities[k].utf8);
            return i + semi;
        }
    }
    return 0;
}

static const char *const block_tags[] = {
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table",
    "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "hr", "title", "section",
    "article", "header", "footer", "nav", "form", "address", "center", "option",
    "body", "html", "thead", "tbody", "tfoot", "caption", "fieldset", "figure",
    "main", "aside",
};

static void trim_spaces(GString *out)
{
    while (out->len > 0 && out->str[out->len - 1] == ' ')
        g_string_truncate(out, out->len - 1);
}

/* End a line; max 2 allows one blank line (paragraphs), 1 does not. */
static void add_newline(GString *out, int max)
{
    int have = 0;

    trim_spaces(out);
    if (out->len == 0)
        return;
    while (have < 2 && out->len > (size_t)have && out->str[out->len - 1 - have] == '\n')
        have++;
    if (have < max)
        g_string_append_c(out, '\n');
}

/* Find needle (lower case ASCII) case-insensitively in s[0..len). */
static const char *find_ci(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; i + n <= len; i++)
        if (g_ascii_strncasecmp(s + i, needle, n) == 0)
            return s + i;
    return NULL;
}

char *msg_html_to_text(const char *html, size_t len)
{
    GString *out = g_string_sized_new(len / 2 + 16);
    size_t i = 0;
    int pre = 0, space = 0;
    char *ret;

    while (i < len) {
        unsigned char c = (unsigned char)html[i];

        if (c == '<') {
            const char *e;
            char name[16];
            size_t j = i + 1, n = 0;
            int closing = 0;

            if (len - i >= 4 && memcmp(html + i, "<!--", 4) == 0) {
                e = find_ci(html + i + 4, len - i - 4, "-->");
                i = e ? (size_t)(e - html) + 3 : len;
                continue;
            }
            if (j < len && html[j] == '/') {
                closing = 1;
                j++;
            }
            if (j < len && (html[j] == '!' || html[j] == '?')) {
                e = memchr(html + j, '>', len - j);
                i = e ? (size_t)(e - html) + 1 : len;
                continue;
            }
            if (j >= len || !g_ascii_isalpha(html[j])) {
                goto text;      /* a lone '<' is text */
            }
            while (j < len && g_ascii_isalnum(html[j])) {
                if (n + 1 < sizeof(name))
                    name[n++] = g_ascii_tolower(html[j]);
                j++;
            }
            name[n] = '\0';
            /* end of tag, skipping quoted attribute values */
            while (j < len && html[j] != '>') {
                if (html[j] == '"' || html[j] == '\'') {
                    const char *q = memchr(html + j + 1, html[j], len - j - 1);
                    j = q ? (size_t)(q - html) : len;
                }
                j++;
            }
            i = j < len ? j + 1 : len;
            if (!closing && (strcmp(name, "script") == 0 || strcmp(name, "style") == 0)) {
                char endtag[16];
                g_snprintf(endtag, sizeof(endtag), "</%s", name);
                e = find_ci(html + i, len - i, endtag);
                if (e == NULL) {
                    i = len;
                } else {
                    const char *gt = memchr(e, '>', len - (e - html));
                    i = gt ? (size_t)(gt - html) + 1 : len;
                }
                continue;
            }
            if (strcmp(name, "pre") == 0)
                pre = !closing;
            if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0) {
                space = 1;
                continue;
            }
            for (size_t k = 0; k < G_N_ELEMENTS(block_tags); k++) {
                if (strcmp(name, block_tags[k]) == 0) {
                    int para = strcmp(name, "p") == 0 ||
                               (name[0] == 'h' && name[1] >= '1' && name[1] <= '6');
                    add_newline(out, para ? 2 : 1);
                    space = 0;
                    break;
                }
            }
            continue;
        }
    text:
        if (!pre && (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f')) {
            space = 1;
            i++;
            continue;
        }
        if (space) {
            if (out->len > 0 && out->str[out->len - 1] != '\n' && out->str[out->len - 1] != ' ')
                g_string_append_c(out, ' ');
            space = 0;
        }
        if (c == '&') {
            size_t used = entity_decode(out, html + i, len - i);
            if (used > 0) {
                /* &nbsp; and friends: one space, as white space is */
                if (out->len >= 2 && out->str[out->len - 1] == ' ' &&
                    (out->str[out->len - 2] == ' ' || out->str[out->len - 2] == '\n'))
                    g_string_truncate(out, out->len - 1);
                i += used;
                continue;
            }
        }
        if (c == '\r' && pre) {
            i++;
            continue;
        }
        if (c != '\0')
            g_string_append_c(out, (char)c);
        i++;
    }
    trim_spaces(out);
    while (out->len > 0 && out->str[out->len - 1] == '\n')
        g_string_truncate(out, out->len - 1);
    if (g_utf8_validate_len(out->str, out->len, NULL))
        return g_string_free(out, FALSE);
    ret = cus_utf8_repair(out->str, out->len);
    g_string_free(out, TRUE);
    return ret;
}

char *msg_html_meta_charset(const char *html, size_t len)
{
    const char *p = html, *end;

    if (html == NULL || len == 0)
        return NULL;
    end = html + (len < 4096 ? len : 4096);

    while (p < end && (p = find_ci(p, end - p, "<meta")) != NULL) {
        const char *gt = memchr(p, '>', end - p);
        const char *tend = gt ? gt : end;
        const char *cs = find_ci(p, tend - p, "charset");
        if (cs != NULL) {
            const char *v = cs + 7, *ve;
            while (v < tend && (g_ascii_isspace(*v) || *v == '='))
                v++;
            while (v < tend && (*v == '"' || *v == '\''))
                v++;
            ve = v;
            while (ve < tend && (g_ascii_isalnum(*ve) || strchr("-_.:", *ve)))
                ve++;
            if (ve > v)
                return g_strndup(v, ve - v);
        }
        p = tend;
    }
    return NULL;
}
