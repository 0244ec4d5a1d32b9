/*
 * det-text.c - text normalised for matching, values masked for evidence; see det-text.h
 *
 * Normalisation is one copy that drops the invisible characters, then
 * NFKC: pure ASCII is left as it is; otherwise what NFKC cannot change
 * (ASCII, common CJK ideographs) is copied, full-width forms mapped, and
 * only the runs of other characters go through GLib's g_utf8_normalize. Masks and excerpts work on characters, never cutting
 * a UTF-8 sequence.
 */
#include <string.h>
#include <glib/gstdio.h>
#include "custos/det-text.h"
#include "custos/util.h"

int det_text_is_invisible(gunichar c)
{
    return c == 0x00AD || c == 0x034F || c == 0x180E || (c >= 0x200B && c <= 0x200F) ||
           (c >= 0x2060 && c <= 0x2064) || c == 0xFEFF;
}

/* Characters NFKC leaves alone and never joins with what is before them
 * (ASCII, the common CJK ideographs, 、 and 。): the text may be cut
 * before them and each piece normalised alone (UAX #15, stable code
 * points). */
static int nfkc_stable(gunichar c)
{
    return c < 0x80 || (c >= 0x4E00 && c <= 0x9FFF) || c == 0x3001 || c == 0x3002;
}

/* NFKC of valid UTF-8 vis, appended to out: stable characters copied,
 * full-width ASCII forms (U+FF01..FF5E) and the ideographic space mapped
 * as NFKC maps them, every other run normalised by GLib together with the
 * character before it (which it may join, e + U+0301 = é). */
static void nfkc_append(GString *out, const char *vis, size_t n)
{
    const char *p = vis, *end = vis + n;
    const char *run = vis, *run_last = vis;     /* stable characters not yet copied */
    gsize last = 0;                 /* where the last character of out starts */

    /* the stable ones are copied a run at a time (most of any text) */
#define RUN_FLUSH() do { \
        if (p > run) { \
            last = out->len + (gsize)(run_last - run); \
            g_string_append_len(out, run, p - run); \
        } \
    } while (0)
    while (p < end) {
        gunichar c;
        const char *q;
        char *seg, *norm;

        if ((unsigned char)*p < 0x80) {
            run_last = p++;
            continue;
        }
        c = g_utf8_get_char(p);
        if (nfkc_stable(c)) {
            run_last = p;
            p = g_utf8_next_char(p);
            continue;
        }
        RUN_FLUSH();
        if ((c >= 0xFF01 && c <= 0xFF5E) || c == 0x3000) {
            last = out->len;
            g_string_append_c(out, c == 0x3000 ? ' ' : (char)(c - 0xFEE0));
            p = run = g_utf8_next_char(p);
            continue;
        }
        /* a run of the others, up to the next stable or mapped character */
        for (q = p; q < end; q = g_utf8_next_char(q)) {
            gunichar d = g_utf8_get_char(q);
            if (nfkc_stable(d) || (d >= 0xFF01 && d <= 0xFF5E) || d == 0x3000)
                break;
        }
        seg = g_strdup_printf("%.*s%.*s", (int)(out->len - last), out->str + last,
                              (int)(q - p), p);
        norm = g_utf8_normalize(seg, -1, G_NORMALIZE_NFKC);
        g_string_truncate(out, last);
        g_string_append(out, norm != NULL ? norm : seg);
        if (out->len > 0)
            last = g_utf8_find_prev_char(out->str, out->str + out->len) - out->str;
        g_free(norm);
        g_free(seg);
        p = run = q;
    }
    RUN_FLUSH();
#undef RUN_FLUSH
}

int det_text_is_normal(const char *s, size_t len)
{
    return cus_is_ascii(s, len) && memchr(s, '\0', len) == NULL;
}

char *det_text_norm(const char *s, gssize len)
{
    char *repaired = NULL;
    GString *vis, *out;
    size_t n = len < 0 ? strlen(s) : (size_t)len;

    if (det_text_is_normal(s, n))
        return g_strndup(s, n);
    if (!g_utf8_validate(s, n, NULL) || memchr(s, '\0', n) != NULL) {
        repaired = cus_utf8_repair(s, n);
        s = repaired;
        n = strlen(repaired);
    }
    vis = g_string_sized_new(n + 1);
    {
        /* copied a run at a time, between the invisible characters */
        const char *p = s, *end = s + n, *run = s;
        while (p < end) {
            const char *next;
            if ((unsigned char)*p < 0x80) {
                p++;
                continue;
            }
            next = g_utf8_next_char(p);
            if (det_text_is_invisible(g_utf8_get_char(p))) {
                g_string_append_len(vis, run, p - run);
                run = next;
            }
            p = next;
        }
        g_string_append_len(vis, run, end - run);
    }
    out = g_string_sized_new(vis->len + 1);
    nfkc_append(out, vis->str, vis->len);
    g_string_free(vis, TRUE);
    g_free(repaired);
    return g_string_free(out, FALSE);
}

/* s without the characters that are not ASCII letters or digits (keep_plus:
 * a leading '+' stays). */
static char *alnum_only(const char *s, int keep_plus)
{
    GString *o = g_string_new(NULL);

    for (const char *p = s; *p != '\0'; p++)
        if (g_ascii_isalnum(*p) || (keep_plus && *p == '+' && o->len == 0))
            g_string_append_c(o, *p);
    return g_string_free(o, FALSE);
}

/* Replace with '*' the chars of s from..to (exclusive), in place. */
static void stars(char *s, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        s[i] = '*';
}

char *det_mask_number(const char *s)
{
    char *a = alnum_only(s, 0), *out;
    size_t n = strlen(a);

    if (n <= 8) {
        stars(a, 0, n > 2 ? n - 2 : n);
        return a;
    }
    out = g_strdup_printf("%.4s****%s", a, a + n - 4);
    g_free(a);
    return out;
}

char *det_mask_phone(const char *s)
{
    char *a = alnum_only(s, 1);
    size_t n = strlen(a), digits = n - (a[0] == '+');

    if (digits <= 8)
        stars(a, n - digits, n > 2 ? n - 2 : n);
    else
        stars(a, n - 8, n - 4);
    return a;
}

char *det_mask_addr(const char *addr)
{
    const char *at = strchr(addr, '@');
    const char *second = *addr != '\0' ? g_utf8_next_char(addr) : addr;

    if (at == addr)
        return g_strdup_printf("***%s", at);
    if (at == NULL)
        return g_strdup_printf("%.*s***", (int)(second - addr), addr);
    if (second > at)
        second = at;
    return g_strdup_printf("%.*s***%s", (int)(second - addr), addr, at);
}

/* Append text[from, to) with runs of white space (and control characters)
 * as one space. */
static void append_flat(GString *o, const char *text, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == ' ' || c == 0x7F) {
            if (o->len > 0 && o->str[o->len - 1] != ' ')
                g_string_append_c(o, ' ');
        } else {
            g_string_append_c(o, (char)c);
        }
    }
}

char *det_text_excerpt(const char *text, size_t len, size_t start, size_t end, size_t ctx,
                       const char *repl)
{
    GString *o = g_string_new(NULL);
    const char *b = text + start, *e = text + end;

    for (size_t i = 0; i < ctx && b > text; i++)
        b = g_utf8_find_prev_char(text, b);
    for (size_t i = 0; i < ctx && e < text + len; i++)
        e = g_utf8_find_next_char(e, text + len) ?: text + len;
    if (b > text)
        g_string_append(o, "…");
    append_flat(o, text, b - text, start);
    if (repl != NULL)
        g_string_append(o, repl);
    else
        append_flat(o, text, start, end);
    append_flat(o, text, end, e - text);
    if (e < text + len)
        g_string_append(o, "…");
    return g_string_free(o, FALSE);
}

size_t det_text_cspan(const char *s, size_t len, const char *set)
{
    size_t i = 0;

    while (i < len) {
        i += strcspn(s + i, set);
        if (i >= len)
            return len;
        if (s[i] != '\0')
            return i;
        i++;                    /* a NUL inside the text */
    }
    return len;
}

/* The first ch in [p, none), or none. */
static const char *next_byte(const char *p, char ch, const char *none)
{
    const char *q = memchr(p, ch, (size_t)(none - p));

    return q != NULL ? q : none;
}

gssize det_text_find(const char *text, size_t from, size_t to, const char *word)
{
    size_t wl = strlen(word);
    const char *last, *none, *lo = NULL, *up = NULL, *c;
    char l, u;

    if (wl == 0 || to < from + wl)
        return -1;
    /* this runs over every line of every message: the candidates (the first
     * byte in either case) found with memchr, each kept until passed */
    l = g_ascii_tolower(word[0]);
    u = g_ascii_toupper(word[0]);
    last = text + to - wl;
    none = last + 1;
    for (const char *p = text + from; p <= last; p = c + 1) {
        if (lo == NULL || lo < p)
            lo = next_byte(p, l, none);
        if (up == NULL || up < p)
            up = l == u ? none : next_byte(p, u, none);
        c = lo < up ? lo : up;
        if (c == none)
            return -1;
        if (g_ascii_strncasecmp(c, word, wl) == 0)
            return (gssize)(c - text);
    }
    return -1;
}

const char *det_text_near(const char *text, size_t len, size_t start, size_t end,
                          size_t window, char *const *words)
{
    const char *b = text + start, *e = text + end;

    for (size_t i = 0; i < window && b > text; i++)
        b = g_utf8_find_prev_char(text, b);
    for (size_t i = 0; i < window && e < text + len; i++)
        e = g_utf8_find_next_char(e, text + len) ?: text + len;
    for (int w = 0; words != NULL && words[w] != NULL; w++)
        if (det_text_find(text, b - text, start, words[w]) >= 0 ||
            det_text_find(text, end, e - text, words[w]) >= 0)
            return words[w];
    return NULL;
}

/* ---- word lists --------------------------------------------------------------- */

static GMutex words_lock;
static GHashTable *words_cache;         /* key (g_free) -> char ** (g_strfreev) */

static char **words_split(const char *text, const char *seps)
{
    char **raw = g_strsplit_set(text, seps, -1);
    GPtrArray *w = g_ptr_array_new();

    for (int i = 0; raw[i] != NULL; i++) {
        char *line = raw[i], *hash;
        if (*seps == '\n' && (hash = strchr(line, '#')) != NULL)
            *hash = '\0';
        g_strstrip(line);
        if (*line != '\0')
            g_ptr_array_add(w, det_text_norm(line, -1));
    }
    g_strfreev(raw);
    g_ptr_array_add(w, NULL);
    return (char **)g_ptr_array_free(w, FALSE);
}

int det_words(const char *spec, char *const **words_r, char **error_r)
{
    char *key, **words;
    GBytes *data = NULL;
    int ret = -1;

    if (spec == NULL)
        spec = "";
    if (*spec == '/') {
        GStatBuf st;
        if (g_stat(spec, &st) < 0)
            return cus_error_errno(error_r, "word list %s", spec);
        key = g_strdup_printf("%s\n%lld\n%lld", spec, (long long)st.st_size,
                              (long long)st.st_mtime);
    } else {
        key = g_strdup(spec);
    }
    g_mutex_lock(&words_lock);
    if (words_cache == NULL)
        words_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify)g_strfreev);
    if ((words = g_hash_table_lookup(words_cache, key)) == NULL) {
        if (*spec == '/') {
            gsize n;
            const char *p;
            char *text;
            if (cus_read_file(spec, 1 << 20, &data, error_r) < 0)
                goto out;
            p = g_bytes_get_data(data, &n);
            text = cus_utf8_repair(p, n);
            words = words_split(text, "\n");
            g_free(text);
        } else {
            words = words_split(spec, ",");
        }
        g_hash_table_insert(words_cache, key, words);
        key = NULL;
    }
    *words_r = words;
    ret = 0;
out:
    g_mutex_unlock(&words_lock);
    if (data != NULL)
        g_bytes_unref(data);
    g_free(key);
    return ret;
}

/* ---- the sender's own text ------------------------------------------------------ */

/* Does the line [p, e) start what is quoted or forwarded? */
static int quote_start(const char *p, const char *e)
{
    static const char *const starts[] = {
        "-----original message-----", "----- original message -----",
        "begin forwarded message", "---------- forwarded message", "-------- original message",
        "-------- forwarded message", "-----原始邮件-----", "from:", "发件人:", "寄件者:",
        "-----邮件原件-----", "________________________________",
    };
    size_t n;

    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    n = e - p;
    /* what every start begins with ('-', '_', b, f, and 0xE5 of 发 and 寄):
     * any other line is only looked at for an attribution */
    if (n == 0 || strchr("-_bBfF\xE5", *p) == NULL)
        goto attribution;
    for (size_t i = 0; i < G_N_ELEMENTS(starts); i++) {
        size_t sl = strlen(starts[i]);
        if (n >= sl && g_ascii_strncasecmp(p, starts[i], sl) == 0)
            return 1;
    }
    /* QQ Mail: "------------------ 原始邮件 ------------------" */
    if (n > 8 && *p == '-' && det_text_find(p, 0, n, "原始邮件") >= 0)
        return 1;
attribution:
    /* "On Mon, 1 Jan 2024, X wrote:", "在 2024年1月1日，X 写道:" */
    if ((n >= 6 && g_ascii_strncasecmp(e - 6, "wrote:", 6) == 0 && n < 300) ||
        (n >= 7 && memcmp(e - 7, "写道:", 7) == 0 && n < 300))
        return 1;
    return 0;
}

char *det_text_unquoted(const char *text, size_t len)
{
    /* the kept lines copied a run at a time, into room for all of them
     * (line by line, growing, it was 5% of custos-milter's CPU on a
     * 200 KB message) */
    GString *o = g_string_sized_new(len + 1);
    const char *p = text, *end = text + len, *run = text;

    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        const char *e = nl != NULL ? nl : end, *next = nl != NULL ? nl + 1 : end;
        const char *q = p;

        while (q < e && (*q == ' ' || *q == '\t'))
            q++;
        if (quote_start(p, e))
            break;
        if (q < e && *q == '>') {
            /* a quoted line: the run ends before it */
            g_string_append_len(o, run, p - run);
            run = next;
        }
        p = next;
    }
    g_string_append_len(o, run, p - run);
    return g_string_free(o, FALSE);
}
