/*
 * tok.c - the "custos" FTS5 tokenizer: CJK bigrams, unicode61-like for the rest
 *
 * One pass over the UTF-8 text, no allocation: tokens are built in a stack
 * buffer and handed to the callback. ASCII letters and digits take a table
 * lookup; other characters are classified with GLib's Unicode tables and
 * folded one at a time (compatibility decomposition, combining marks
 * dropped, lower case), which is NFKC + case fold + diacritics removal for
 * every token that can come out of a run of letters, digits and marks.
 * Invalid UTF-8 bytes are separators. Tokens are cut at TOK_MAX bytes, the
 * same way for documents and queries, so long words still match themselves.
 */
#include <string.h>
#include <glib.h>
#include <sqlite3.h>

#include "custos/tok.h"
#include "custos/util.h"

#define TOK_MAX 128                 /* bytes kept of one token */
#define TOK_BAD 0xFFFFFFFFu         /* utf8_next(): invalid byte */

/* ASCII letters and digits -> lower case; everything else 0. */
static const unsigned char ascii_fold[256] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5',
    ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9', ['A'] = 'a', ['B'] = 'b',
    ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f', ['G'] = 'g', ['H'] = 'h',
    ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n',
    ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't',
    ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z',
    ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f',
    ['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l',
    ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r',
    ['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x',
    ['y'] = 'y', ['z'] = 'z',
};

/* Decode one UTF-8 character at p (p < end, *p >= 0x80): its length, and
 * *cp, TOK_BAD for an invalid sequence (overlong, surrogate, > U+10FFFF,
 * truncated), which is then one byte long. */
static inline int utf8_next(const unsigned char *p, const unsigned char *end,
                            unsigned int *cp)
{
    unsigned int c = p[0];
    size_t left = (size_t)(end - p);

    if (c >= 0xC2 && c <= 0xDF) {
        if (left >= 2 && (p[1] & 0xC0) == 0x80) {
            *cp = ((c & 0x1F) << 6) | (p[1] & 0x3F);
            return 2;
        }
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (left >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
            unsigned int v = ((c & 0x0F) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3F);
            if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) {
                *cp = v;
                return 3;
            }
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (left >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
            (p[3] & 0xC0) == 0x80) {
            unsigned int v = ((c & 0x07) << 18) | ((p[1] & 0x3Fu) << 12) |
                             ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3F);
            if (v >= 0x10000 && v <= 0x10FFFF) {
                *cp = v;
                return 4;
            }
        }
    }
    *cp = TOK_BAD;
    return 1;
}

int tok_is_cjk(unsigned int c)
{
    if (c < 0x3005)
        return 0;
    if (c <= 0x9FFF) {
        if (c >= 0x4E00 || (c >= 0x3400 && c <= 0x4DBF))
            return 1;                               /* Han, ext A */
        if (c <= 0x3007)
            return 1;                               /* 々 〆 〇 */
        if (c >= 0x3041 && c <= 0x309F)
            return 1;                               /* Hiragana */
        if (c >= 0x30A1 && c <= 0x30FF && c != 0x30FB)
            return 1;                               /* Katakana, not ・ */
        return c >= 0x31F0 && c <= 0x31FF;          /* Katakana ext */
    }
    if (c >= 0xAC00 && c <= 0xD7A3)
        return 1;                                   /* Hangul syllables */
    if (c >= 0xF900 && c <= 0xFAFF)
        return 1;                                   /* compatibility ideographs */
    if (c >= 0xFF66 && c <= 0xFF9F)
        return 1;                                   /* half-width Katakana */
    return c >= 0x20000 && c <= 0x3FFFF;            /* Han ext B.., compat supp */
}

/* Letters, marks and numbers make words (as in unicode61). */
static inline int is_word_char(unsigned int c)
{
    switch (g_unichar_type(c)) {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_SPACING_MARK:
    case G_UNICODE_ENCLOSING_MARK:
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
        return 1;
    default:
        return 0;
    }
}

/* Append the folded form of a non-ASCII word character to buf[n..]:
 * compatibility decomposition, combining marks and non-word results
 * dropped ("⑴" -> "1"), lower case. Returns the new length; stops
 * adding at TOK_MAX. */
static int fold_append(char *buf, int n, unsigned int c)
{
    gunichar d[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
    gsize nd = g_unichar_fully_decompose(c, TRUE, d, G_N_ELEMENTS(d));

    for (gsize i = 0; i < nd; i++) {
        gunichar x = d[i];
        GUnicodeType t;

        if (x < 0x80) {
            if (ascii_fold[x] != 0 && n < TOK_MAX)
                buf[n++] = (char)ascii_fold[x];
            continue;
        }
        t = g_unichar_type(x);
        if (t == G_UNICODE_NON_SPACING_MARK || t == G_UNICODE_ENCLOSING_MARK ||
            !is_word_char(x))
            continue;
        x = g_unichar_tolower(x);
        if (x == 0x3C2)
            x = 0x3C3;                              /* final sigma */
        if (n + 4 > TOK_MAX)
            break;
        n += g_unichar_to_utf8(x, buf + n);
    }
    return n;
}

/* The form a CJK character is indexed under: half-width Katakana become
 * full width (with a following half-width voiced mark composed in, *p
 * moved past it), compatibility ideographs their unified ideograph.
 * Others stay as they are. */
static unsigned int cjk_fold(unsigned int c, const unsigned char **p,
                             const unsigned char *end)
{
    gunichar d[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
    gsize nd;

    if (c < 0xF900 || (c > 0xFAFF && c < 0xFF66) || (c > 0xFF9F && c < 0x2F800) ||
        c > 0x2FA1F)
        return c;
    if (c == 0xFF9E || c == 0xFF9F)                 /* lone voiced marks */
        return c == 0xFF9E ? 0x309B : 0x309C;
    nd = g_unichar_fully_decompose(c, TRUE, d, G_N_ELEMENTS(d));
    if (nd != 1)
        return c;
    if (c >= 0xFF66 && c <= 0xFF9D && end - *p >= 3 && (*p)[0] == 0xEF &&
        (*p)[1] == 0xBE && ((*p)[2] == 0x9E || (*p)[2] == 0x9F)) {
        gunichar composed;
        if (g_unichar_compose(d[0], (*p)[2] == 0x9E ? 0x3099 : 0x309A, &composed)) {
            *p += 3;
            return composed;
        }
    }
    return d[0];
}

struct tok_state {
    const unsigned char *text;
    const unsigned char *end;
    int query;
    tok_cb *cb;
    void *ctx;
};

/* A run of word characters from *pp: one token. */
static int tok_word(struct tok_state *st, const unsigned char **pp)
{
    char buf[TOK_MAX + 8];
    const unsigned char *p = *pp, *start = p, *end = st->end;
    int n = 0;

    while (p < end) {
        unsigned int c = *p;
        int len;

        if (c < 0x80) {
            /* a run of ASCII word characters (most of any text) in a
             * tight loop: folded into buf up to TOK_MAX, the rest passed */
            const unsigned char *q = p;
            while (q < end && *q < 0x80 && ascii_fold[*q] != 0 && n < TOK_MAX)
                buf[n++] = (char)ascii_fold[*q++];
            while (q < end && *q < 0x80 && ascii_fold[*q] != 0)
                q++;
            if (q == p)
                break;              /* a separator */
            p = q;
            continue;
        }
        len = utf8_next(p, end, &c);
        if (c == TOK_BAD || tok_is_cjk(c) || !is_word_char(c))
            break;
        n = fold_append(buf, n, c);
        p += len;
    }
    *pp = p;
    if (n == 0)             /* only combining marks, say */
        return SQLITE_OK;
    return st->cb(st->ctx, 0, buf, n, (int)(start - st->text), (int)(p - st->text));
}

/* A run of CJK characters from *pp: overlapping bigrams, and the last
 * character alone (colocated) in document mode or for a one-char run. */
static int tok_cjk(struct tok_state *st, const unsigned char **pp)
{
    char buf[16];
    const unsigned char *p = *pp, *end = st->end;
    int prev_len = 0, prev_start = 0, prev_end = 0, count = 0, rc = SQLITE_OK;

    while (p < end && *p >= 0x80) {
        unsigned int c;
        const unsigned char *at = p;
        int len = utf8_next(p, end, &c), cur_len;

        if (c == TOK_BAD || !tok_is_cjk(c))
            break;
        p += len;
        c = cjk_fold(c, &p, end);
        cur_len = g_unichar_to_utf8(c, buf + prev_len);
        if (count > 0) {
            rc = st->cb(st->ctx, 0, buf, prev_len + cur_len, prev_start,
                        (int)(p - st->text));
            if (rc != SQLITE_OK)
                goto out;
            memmove(buf, buf + prev_len, cur_len);
        }
        prev_len = cur_len;
        prev_start = (int)(at - st->text);
        prev_end = (int)(p - st->text);
        count++;
    }
    if (count == 1)
        rc = st->cb(st->ctx, 0, buf, prev_len, prev_start, prev_end);
    else if (count > 1 && !st->query)
        rc = st->cb(st->ctx, FTS5_TOKEN_COLOCATED, buf, prev_len, prev_start,
                    prev_end);
out:
    *pp = p;
    return rc;
}

int tok_run(const char *text, int len, int flags, tok_cb *cb, void *ctx)
{
    struct tok_state st;
    const unsigned char *p = (const unsigned char *)text;
    int rc = SQLITE_OK;

    if (text == NULL || len <= 0)
        return SQLITE_OK;
    st.text = p;
    st.end = p + len;
    st.query = (flags & FTS5_TOKENIZE_QUERY) != 0;
    st.cb = cb;
    st.ctx = ctx;

    while (p < st.end && rc == SQLITE_OK) {
        unsigned int c = *p;

        if (c < 0x80) {
            if (ascii_fold[c] != 0)
                rc = tok_word(&st, &p);
            else
                p++;
            continue;
        }
        int n = utf8_next(p, st.end, &c);
        if (c == TOK_BAD)
            p++;
        else if (tok_is_cjk(c))
            rc = tok_cjk(&st, &p);
        else if (is_word_char(c))
            rc = tok_word(&st, &p);
        else
            p += n;
    }
    return rc;
}

/* FTS5 glue: the tokenizer has no state and takes no arguments. */
static int tok_dummy;

static int tok_create(void *ctx, const char **argv, int argc, Fts5Tokenizer **out)
{
    if (argc > 0)
        return SQLITE_ERROR;
    *out = (Fts5Tokenizer *)&tok_dummy;
    return SQLITE_OK;
}

static void tok_delete(Fts5Tokenizer *t)
{
}

static int tok_tokenize(Fts5Tokenizer *t, void *ctx, int flags, const char *text,
                        int len, int (*token)(void *, int, const char *, int, int, int))
{
    return tok_run(text, len, flags, token, ctx);
}

int tok_register(sqlite3 *db, char **error_r)
{
    static fts5_tokenizer tokenizer = { tok_create, tok_delete, tok_tokenize };
    sqlite3_stmt *stmt = NULL;
    fts5_api *api = NULL;
    int rc;

    rc = sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return cus_error(error_r, "tokenizer: FTS5 not available: %s",
                         sqlite3_errmsg(db));
    sqlite3_bind_pointer(stmt, 1, &api, "fts5_api_ptr", NULL);
    (void)sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (api == NULL || api->iVersion < 2)
        return cus_error(error_r, "tokenizer: FTS5 API not available");
    rc = api->xCreateTokenizer(api, TOK_NAME, NULL, &tokenizer, NULL);
    if (rc != SQLITE_OK)
        return cus_error(error_r, "tokenizer: registering %s failed: %s",
                         TOK_NAME, sqlite3_errstr(rc));
    return 0;
}
