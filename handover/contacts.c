/*
 * contacts.c - a leaver's external correspondents, their phones, vCard and CSV
 *
 * Headers are decoded by the archive's own parser (msg_parse on the header
 * block alone: RFC 2047 in any charset, undeclared GBK), so a name reads
 * the same here as in a search. Phones come from signatures only: the
 * lines after "-- ", else the last lines before quoted text, and a number
 * must look like one (a label such as Tel/手机, a leading '+', or at least
 * ten digits) and not like a date.
 */
#include <string.h>
#include <gmime/gmime.h>
#include "custos/handover-contacts.h"

#define HDR_MAX (256 * 1024)

/* ---- one message -------------------------------------------------------------- */

void hov_msginfo_free(gpointer p)
{
    struct hov_msginfo *mi = p;

    if (mi == NULL)
        return;
    g_free(mi->message_id);
    g_free(mi->from.name);
    g_free(mi->from.addr);
    if (mi->rcpts != NULL)
        g_ptr_array_free(mi->rcpts, TRUE);
    g_free(mi->subject);
    g_free(mi->thread);
    g_free(mi);
}

static void addr_free(gpointer p)
{
    struct hov_addr *a = p;

    g_free(a->name);
    g_free(a->addr);
    g_free(a);
}

/* Where the header block ends (its blank line included), at most max. */
static size_t header_len(const char *raw, size_t len, size_t max)
{
    size_t n = MIN(len, max);

    for (size_t i = 0; i + 1 < n; i++) {
        if (raw[i] != '\n')
            continue;
        if (raw[i + 1] == '\n')
            return i + 2;
        if (raw[i + 1] == '\r' && i + 2 < n && raw[i + 2] == '\n')
            return i + 3;
    }
    return n;
}

char *hov_thread_key(const char *subject)
{
    static const char *const prefixes[] = {
        "re:", "re：", "fw:", "fw：", "fwd:", "fwd：", "aw:", "wg:", "sv:", "vs:",
        "回复:", "回复：", "答复:", "答复：", "转发:", "转发：", "回覆:", "回覆：",
    };
    char *fold = g_utf8_casefold(subject, -1), *p = fold, *out;
    GString *s;
    gboolean changed = TRUE;

    while (changed) {
        changed = FALSE;
        while (*p == ' ' || *p == '\t')
            p++;
        /* "re[2]:" */
        if (g_str_has_prefix(p, "re[")) {
            char *q = p + 3;
            while (g_ascii_isdigit(*q))
                q++;
            if (q[0] == ']' && q[1] == ':') {
                p = q + 2;
                changed = TRUE;
                continue;
            }
        }
        for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
            if (g_str_has_prefix(p, prefixes[i])) {
                p += strlen(prefixes[i]);
                changed = TRUE;
                break;
            }
    }
    s = g_string_new(NULL);
    for (char *q = p; *q != '\0'; q++) {
        if (g_ascii_isspace(*q)) {
            if (s->len > 0 && s->str[s->len - 1] != ' ')
                g_string_append_c(s, ' ');
        } else {
            g_string_append_c(s, *q);
        }
    }
    if (s->len > 0 && s->str[s->len - 1] == ' ')
        g_string_truncate(s, s->len - 1);
    out = g_string_free(s, FALSE);
    g_free(fold);
    return out;
}

static char *phrase_decode_subject(const char *raw)
{
    char *d = msg_decode_header(raw);

    if (!g_utf8_validate(d, -1, NULL)) {
        char *r = cus_utf8_repair(d, strlen(d));
        g_free(d);
        d = r;
    }
    return d;
}

/* ---- a header block, read by hand (GMime objects per message cost more
 * than copying the message does) ----------------------------------------- */

static void mailbox_add_full(const char *p, size_t n, GPtrArray *out);

/* Remove comments, collapse nothing else. */
static void drop_comments(GString *s)
{
    GString *o = g_string_sized_new(s->len);
    int depth = 0, quoted = 0;

    for (gsize i = 0; i < s->len; i++) {
        char c = s->str[i];
        if (c == '\\' && i + 1 < s->len && (quoted || depth > 0)) {
            if (depth == 0) {
                g_string_append_c(o, c);
                g_string_append_c(o, s->str[i + 1]);
            }
            i++;
            continue;
        }
        if (!quoted && c == '(') {
            depth++;
            continue;
        }
        if (!quoted && c == ')' && depth > 0) {
            depth--;
            continue;
        }
        if (depth == 0) {
            if (c == '"')
                quoted = !quoted;
            g_string_append_c(o, c);
        }
    }
    g_string_assign(s, o->str);
    g_string_free(o, TRUE);
}

/* The text of a phrase: quotes and their escapes removed, white space
 * runs one space, then RFC 2047 and 8-bit decoded. */
static char *phrase_decode(const char *p, size_t n)
{
    GString *s;
    char *dec;
    int plain = 1;

    /* plain ASCII words: the text as it is, white space trimmed */
    while (n > 0 && g_ascii_isspace(*p)) {
        p++;
        n--;
    }
    while (n > 0 && g_ascii_isspace(p[n - 1]))
        n--;
    for (size_t i = 0; i < n && plain; i++)
        plain = (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f && p[i] != '"' &&
                p[i] != '\\' && !(p[i] == '=' && i + 1 < n && p[i + 1] == '?') &&
                !(p[i] == ' ' && i + 1 < n && p[i + 1] == ' ');
    if (plain)
        return g_strndup(p, n);
    s = g_string_sized_new(n);

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            continue;
        if (p[i] == '\\' && i + 1 < n) {
            g_string_append_c(s, p[++i]);
            continue;
        }
        if (g_ascii_isspace(p[i])) {
            if (s->len > 0 && s->str[s->len - 1] != ' ')
                g_string_append_c(s, ' ');
            continue;
        }
        g_string_append_c(s, p[i]);
    }
    dec = msg_decode_header(g_strstrip(s->str));
    g_string_free(s, TRUE);
    if (!g_utf8_validate(dec, -1, NULL)) {
        char *r = cus_utf8_repair(dec, strlen(dec));
        g_free(dec);
        dec = r;
    }
    return dec;
}

static void addr_take(const char *name, size_t name_len, const char *addr, size_t addr_len,
                      GPtrArray *out)
{
    const char *at = NULL;
    struct hov_addr *a;
    int ascii = 1;

    while (addr_len > 0 && g_ascii_isspace(*addr)) {
        addr++;
        addr_len--;
    }
    while (addr_len > 0 && g_ascii_isspace(addr[addr_len - 1]))
        addr_len--;
    for (size_t i = 0; i < addr_len; i++) {
        if (addr[i] == '@')
            at = addr + i;
        if ((unsigned char)addr[i] >= 0x80)
            ascii = 0;
        if (g_ascii_isspace(addr[i]) || (unsigned char)addr[i] < 0x20)
            return;
    }
    if (at == NULL || at == addr || at == addr + addr_len - 1 ||
        (!ascii && !g_utf8_validate(addr, (gssize)addr_len, NULL)))
        return;
    a = g_new(struct hov_addr, 1);
    a->addr = ascii ? g_ascii_strdown(addr, (gssize)addr_len)
                    : g_utf8_strdown(addr, (gssize)addr_len);
    a->name = phrase_decode(name, name_len);
    g_ptr_array_add(out, a);
}

/* One mailbox ("Name <addr>", "addr", "addr (Name)") into out. */
static void mailbox_add(const char *p, size_t n, GPtrArray *out)
{
    /* the common forms, without quotes or comments: directly */
    if (memchr(p, '"', n) == NULL && memchr(p, '(', n) == NULL && memchr(p, '\\', n) == NULL) {
        const char *lt = memchr(p, '<', n), *gt;

        if (lt == NULL) {
            addr_take("", 0, p, n, out);
            return;
        }
        gt = memchr(lt, '>', n - (size_t)(lt - p));
        if (gt != NULL && memchr(lt + 1, '<', (size_t)(gt - lt - 1)) == NULL &&
            (lt[1] != '@')) {
            addr_take(p, (size_t)(lt - p), lt + 1, (size_t)(gt - lt - 1), out);
            return;
        }
    }
    mailbox_add_full(p, n, out);
}

/* The same for any form: quoted names, comments, routes. */
static void mailbox_add_full(const char *p, size_t n, GPtrArray *out)
{
    GString *m = g_string_new_len(p, (gssize)n), *name = g_string_new(NULL);
    const char *lt = NULL, *gt = NULL;
    struct hov_addr *a;
    char *addr, *at;
    int quoted = 0, depth = 0;

    /* a comment after a bare address names it: "a@b (Name)" */
    for (gsize i = 0; i < m->len; i++) {
        char c = m->str[i];
        if (c == '\\') {
            i++;
            continue;
        }
        if (!quoted && c == '(') {
            if (depth++ == 0)
                continue;
        } else if (!quoted && c == ')' && depth > 0) {
            if (--depth == 0)
                continue;
        } else if (c == '"' && depth == 0) {
            quoted = !quoted;
        }
        if (depth > 0)
            g_string_append_c(name, c);
    }
    drop_comments(m);
    quoted = 0;
    for (gsize i = 0; i < m->len; i++) {
        char c = m->str[i];
        if (c == '\\') {
            i++;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == '<' && lt == NULL)
            lt = m->str + i;
        else if (!quoted && c == '>' && lt != NULL && gt == NULL)
            gt = m->str + i;
    }
    a = g_new0(struct hov_addr, 1);
    if (lt != NULL) {
        const char *colon;
        addr = g_strndup(lt + 1, (gsize)((gt != NULL ? gt : m->str + m->len) - lt - 1));
        colon = strchr(addr, ':');          /* an obsolete route "@a,@b:" */
        if (addr[0] == '@' && colon != NULL)
            memmove(addr, colon + 1, strlen(colon));
        a->name = phrase_decode(m->str, (size_t)(lt - m->str));
    } else {
        addr = g_strdup(m->str);
        a->name = phrase_decode(name->str, name->len);
    }
    g_strstrip(addr);
    for (char *c = addr; *c != '\0'; c++)
        if (g_ascii_isspace(*c))
            *c = '_';
    at = strrchr(addr, '@');
    if (at == NULL || at == addr || at[1] == '\0' || !g_utf8_validate(addr, -1, NULL)) {
        g_free(a->name);
        g_free(a);
    } else {
        a->addr = g_utf8_strdown(addr, -1);
        g_ptr_array_add(out, a);
    }
    g_free(addr);
    g_string_free(m, TRUE);
    g_string_free(name, TRUE);
}

/* An address list (groups flattened) into out. */
static void addr_list(const char *v, GPtrArray *out)
{
    const char *start = v;
    int quoted = 0, depth = 0, angle = 0;

    for (const char *p = v;; p++) {
        char c = *p;
        if (c == '\\' && p[1] != '\0' && (quoted || depth > 0)) {
            p++;
            continue;
        }
        if (c == '\0' || (!quoted && depth == 0 && !angle && (c == ',' || c == ';' || c == ':'))) {
            if (c == ':') {                 /* "group:": its name is no mailbox */
                start = p + 1;
                continue;
            }
            {
                const char *a = start, *b = p;
                while (a < b && g_ascii_isspace(*a))
                    a++;
                while (b > a && g_ascii_isspace(b[-1]))
                    b--;
                if (b > a)
                    mailbox_add(a, (size_t)(b - a), out);
            }
            if (c == '\0')
                break;
            start = p + 1;
            continue;
        }
        if (!quoted && c == '(')
            depth++;
        else if (!quoted && c == ')' && depth > 0)
            depth--;
        else if (depth == 0 && c == '"')
            quoted = !quoted;
        else if (!quoted && depth == 0 && c == '<')
            angle = 1;
        else if (!quoted && depth == 0 && c == '>')
            angle = 0;
    }
}

/* Message-ID without <>, as msg.c keeps it (index.h messages.message_id). */
static char *message_id_clean(const char *raw)
{
    char *id = g_mime_utils_decode_message_id(raw), *ret;

    if (id == NULL || *id == '\0') {
        char *s = g_strstrip(g_strdup(raw));
        g_free(id);
        id = s;
        if (*id == '<') {
            char *gt = strchr(id, '>');
            if (gt != NULL)
                *gt = '\0';
            id = g_strdup(s + 1);
            g_free(s);
        }
    }
    ret = g_utf8_validate(id, -1, NULL) ? g_strdup(id) : cus_utf8_repair(id, strlen(id));
    g_free(id);
    return ret;
}

enum { H_FROM, H_TO, H_CC, H_SUBJECT, H_DATE, H_MSGID, H_COUNT };

int hov_msginfo_from_raw(const char *raw, size_t len, const struct msg_limits *lim,
                         struct hov_msginfo **mi_r, char **error_r)
{
    static const char *const names[H_COUNT] = { "from", "to", "cc", "subject", "date",
                                                "message-id" };
    size_t hlen = header_len(raw, len, HDR_MAX);
    GString *val[H_COUNT] = { NULL };
    struct hov_msginfo *mi;
    size_t pos = 0;
    int cur = -1;

    while (pos < hlen) {
        const char *line = raw + pos, *nl = memchr(line, '\n', hlen - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : hlen - pos;
        size_t tl = ll > 0 && line[ll - 1] == '\r' ? ll - 1 : ll;

        pos += ll + (nl != NULL ? 1 : 0);
        if (tl == 0)
            break;                          /* the blank line */
        if (line[0] == ' ' || line[0] == '\t') {
            if (cur >= 0)                   /* unfold */
                g_string_append_len(val[cur], line, (gssize)tl);
            continue;
        }
        cur = -1;
        for (int k = 0; k < H_COUNT; k++) {
            size_t n = strlen(names[k]);
            if (tl > n && line[n] == ':' && g_ascii_strncasecmp(line, names[k], n) == 0) {
                if (val[k] == NULL) {
                    val[k] = g_string_new_len(line + n + 1, (gssize)(tl - n - 1));
                    cur = k;
                } else if (k == H_TO || k == H_CC) {    /* a second To: adds to it */
                    g_string_append_c(val[k], ',');
                    g_string_append_len(val[k], line + n + 1, (gssize)(tl - n - 1));
                    cur = k;
                }
                break;
            }
        }
    }
    mi = g_new0(struct hov_msginfo, 1);
    mi->message_id = val[H_MSGID] != NULL ? message_id_clean(val[H_MSGID]->str) : g_strdup("");
    if (val[H_DATE] != NULL) {
        GDateTime *dt = g_mime_utils_header_decode_date(val[H_DATE]->str);
        if (dt != NULL) {
            mi->date = g_date_time_to_unix(dt);
            g_date_time_unref(dt);
        }
    }
    mi->subject = val[H_SUBJECT] != NULL ? phrase_decode_subject(val[H_SUBJECT]->str)
                                         : g_strdup("");
    mi->thread = hov_thread_key(mi->subject);
    mi->rcpts = g_ptr_array_new_with_free_func(addr_free);
    {
        GPtrArray *from = g_ptr_array_new_with_free_func(addr_free);
        if (val[H_FROM] != NULL)
            addr_list(val[H_FROM]->str, from);
        if (from->len > 0) {
            struct hov_addr *a = from->pdata[0];
            mi->from.name = a->name;
            mi->from.addr = a->addr;
            a->name = a->addr = NULL;
        } else {
            mi->from.name = g_strdup("");
            mi->from.addr = g_strdup("");
        }
        g_ptr_array_free(from, TRUE);
    }
    if (val[H_TO] != NULL)
        addr_list(val[H_TO]->str, mi->rcpts);
    if (val[H_CC] != NULL)
        addr_list(val[H_CC]->str, mi->rcpts);
    for (int k = 0; k < H_COUNT; k++)
        if (val[k] != NULL)
            g_string_free(val[k], TRUE);
    *mi_r = mi;
    return 0;
}

/* ---- phones in signatures --------------------------------------------------------- */

static int is_quote_start(const char *line)
{
    const char *l = line;

    while (*l == ' ' || *l == '\t')
        l++;
    if (*l == '>')
        return 1;
    if (strstr(l, "-----Original Message-----") != NULL || strstr(l, "原始邮件") != NULL ||
        strstr(l, "-----原始") != NULL)
        return 1;
    if (g_str_has_prefix(l, "On ") && g_str_has_suffix(l, "wrote:"))
        return 1;
    if (g_str_has_prefix(l, "在") && (g_str_has_suffix(l, "写道：") ||
                                      g_str_has_suffix(l, "写道:")))
        return 1;
    if (g_str_has_prefix(l, "发件人:") || g_str_has_prefix(l, "发件人：") ||
        g_str_has_prefix(l, "From: "))
        return 1;
    return 0;
}

static int has_label(const char *line)
{
    static const char *const labels[] = {
        "tel", "phone", "mobile", "mob", "cell", "handy", "电话", "手机", "座机", "联系电话",
        "t:", "m:", "p:", "t.", "m.",
    };
    char *low = g_utf8_strdown(line, -1);
    int found = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(labels) && !found; i++)
        found = strstr(low, labels[i]) != NULL;
    g_free(low);
    return found;
}

static int is_fax(const char *line)
{
    char *low = g_utf8_strdown(line, -1);
    int fax = strstr(low, "fax") != NULL || strstr(low, "传真") != NULL;

    g_free(low);
    return fax;
}

static int phone_char(gunichar c)
{
    return g_unichar_isdigit(c) || c == '+' || c == 0xff0b || c == ' ' || c == '-' ||
           c == '.' || c == '(' || c == ')' || c == 0xff08 || c == 0xff09 || c == '/' ||
           c == 0x2013 || c == 0x3000 || c == 0x00a0;
}

/* YYYY-MM-DD, YYYY.MM.DD, YYYY/MM/DD (maybe with a time after). */
static int looks_like_date(const char *run)
{
    int y, m, d;
    char s1, s2;

    return sscanf(run, "%4d%c%2d%c%2d", &y, &s1, &m, &s2, &d) == 5 && y >= 1900 &&
           y <= 2199 && s1 == s2 && (s1 == '-' || s1 == '.' || s1 == '/') && m >= 1 &&
           m <= 12 && d >= 1 && d <= 31;
}

static void line_phones(const char *line, GPtrArray *out)
{
    int label = has_label(line);
    const char *p = line;

    while (*p != '\0') {
        const char *start, *end;
        char *run, *norm = NULL, *trim;
        int digits = 0, plus;

        if (!phone_char(g_utf8_get_char(p)) || g_utf8_get_char(p) == ' ') {
            p = g_utf8_next_char(p);
            continue;
        }
        start = p;
        while (*p != '\0' && phone_char(g_utf8_get_char(p))) {
            if (g_unichar_isdigit(g_utf8_get_char(p)))
                digits++;
            p = g_utf8_next_char(p);
        }
        end = p;
        run = g_strndup(start, (gsize)(end - start));
        trim = g_strstrip(run);
        plus = trim[0] == '+' || g_str_has_prefix(trim, "＋") || trim[0] == '(';
        if (digits >= 7 && digits <= 20 && (label || plus || digits >= 10) &&
            !looks_like_date(trim) && dir_norm_phone(trim, &norm, NULL) == 0) {
            gboolean dup = FALSE;
            for (guint i = 0; i < out->len && !dup; i++)
                dup = strcmp(out->pdata[i], norm) == 0;
            if (!dup)
                g_ptr_array_add(out, norm);
            else
                g_free(norm);
        }
        g_free(run);
    }
}

GPtrArray *hov_sig_phones(const char *body)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    char **lines = g_strsplit(body != NULL ? body : "", "\n", -1);
    int n = 0, sig = -1, first;

    for (; lines[n] != NULL; n++) {
        g_strchomp(lines[n]);           /* "\r" and trailing blanks */
        if (is_quote_start(lines[n]))
            break;
        if (strcmp(lines[n], "--") == 0)
            sig = n;
    }
    /* lines[0..n) is the text before any quote; "-- " was chomped to "--" */
    if (sig >= 0) {
        first = sig + 1;
    } else {
        int nonempty = 0;
        first = n;
        while (first > 0 && nonempty < 8) {
            first--;
            if (lines[first][0] != '\0')
                nonempty++;
        }
    }
    for (int i = first; i < n && i < first + 20; i++)
        if (!is_fax(lines[i]))
            line_phones(lines[i], out);
    g_strfreev(lines);
    return out;
}

/* ---- the collection --------------------------------------------------------------- */

struct agg {
    struct hov_contact c;
    GHashTable *names;          /* name -> count (GINT_TO_POINTER) */
};

struct hov_contacts {
    struct dir *d;
    GHashTable *self;           /* the leaver's addresses */
    GHashTable *external;       /* addr -> 1 external, 2 not */
    GHashTable *by_addr;        /* addr -> struct agg * */
    GPtrArray *list;            /* struct hov_contact *, made by _list() */
};

static void agg_free(gpointer p)
{
    struct agg *a = p;

    g_free(a->c.addr);
    g_free(a->c.name);
    g_free(a->c.org);
    g_free(a->c.customer);
    g_ptr_array_free(a->c.phones, TRUE);
    g_hash_table_destroy(a->names);
    g_free(a);
}

struct hov_contacts *hov_contacts_new(struct dir *d, const struct dir_employee *e)
{
    struct hov_contacts *cs = g_new0(struct hov_contacts, 1);

    cs->d = d;
    cs->self = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_add(cs->self, g_strdup(e->address));
    for (guint i = 0; i < e->personal->len; i++)
        g_hash_table_add(cs->self, g_strdup(e->personal->pdata[i]));
    cs->external = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    cs->by_addr = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, agg_free);
    return cs;
}

void hov_contacts_free(struct hov_contacts **csp)
{
    struct hov_contacts *cs = *csp;

    if (cs == NULL)
        return;
    if (cs->list != NULL)
        g_ptr_array_free(cs->list, TRUE);
    g_hash_table_destroy(cs->by_addr);
    g_hash_table_destroy(cs->external);
    g_hash_table_destroy(cs->self);
    g_free(cs);
    *csp = NULL;
}

int hov_contacts_is_external(struct hov_contacts *cs, const char *addr)
{
    gpointer v = g_hash_table_lookup(cs->external, addr);
    struct dir_employee *e = NULL;
    int ext;

    if (v != NULL)
        return GPOINTER_TO_INT(v) == 1;
    if (*addr == '\0' || strchr(addr, '@') == NULL || g_hash_table_contains(cs->self, addr))
        ext = 0;
    else if (dir_is_internal(cs->d, addr, NULL) != 0)
        ext = 0;                        /* internal, or could not tell: left out */
    else if (dir_employee_of_personal(cs->d, addr, &e, NULL) != 0)
        ext = 0;
    else
        ext = 1;
    if (e != NULL)
        dir_employee_free(&e);
    g_hash_table_insert(cs->external, g_strdup(addr), GINT_TO_POINTER(ext ? 1 : 2));
    return ext;
}

static struct agg *agg_get(struct hov_contacts *cs, const char *addr)
{
    struct agg *a = g_hash_table_lookup(cs->by_addr, addr);

    if (a == NULL) {
        a = g_new0(struct agg, 1);
        a->c.addr = g_strdup(addr);
        a->c.phones = g_ptr_array_new_with_free_func(g_free);
        a->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_hash_table_insert(cs->by_addr, a->c.addr, a);
    }
    return a;
}

static void agg_seen(struct agg *a, const char *name, gint64 date)
{
    if (name != NULL && *name != '\0' && strcmp(name, a->c.addr) != 0) {
        gpointer n = g_hash_table_lookup(a->names, name);
        g_hash_table_replace(a->names, g_strdup(name), GINT_TO_POINTER(GPOINTER_TO_INT(n) + 1));
    }
    if (date > 0) {
        if (a->c.first == 0 || date < a->c.first)
            a->c.first = date;
        if (date > a->c.last)
            a->c.last = date;
    }
}

int hov_contacts_add(struct hov_contacts *cs, const struct hov_msginfo *mi, char **error_r)
{
    int outgoing = g_hash_table_contains(cs->self, mi->from.addr);

    if (!outgoing && hov_contacts_is_external(cs, mi->from.addr)) {
        struct agg *a = agg_get(cs, mi->from.addr);
        a->c.n_from++;
        agg_seen(a, mi->from.name, mi->date);
    }
    for (guint i = 0; i < mi->rcpts->len; i++) {
        const struct hov_addr *r = mi->rcpts->pdata[i];
        struct agg *a;

        if (!hov_contacts_is_external(cs, r->addr))
            continue;
        a = agg_get(cs, r->addr);
        if (outgoing)
            a->c.n_to++;
        agg_seen(a, r->name, mi->date);
    }
    return 0;
}

void hov_contacts_add_phones(struct hov_contacts *cs, const char *addr, GPtrArray *phones)
{
    struct agg *a = g_hash_table_lookup(cs->by_addr, addr);

    if (a == NULL)
        return;
    for (guint i = 0; i < phones->len; i++) {
        gboolean dup = FALSE;
        for (guint j = 0; j < a->c.phones->len && !dup; j++)
            dup = strcmp(a->c.phones->pdata[j], phones->pdata[i]) == 0;
        if (!dup)
            g_ptr_array_add(a->c.phones, g_strdup(phones->pdata[i]));
    }
}

static gint str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static gint contact_cmp(gconstpointer a, gconstpointer b)
{
    const struct hov_contact *x = *(const struct hov_contact *const *)a;
    const struct hov_contact *y = *(const struct hov_contact *const *)b;
    int c = strcmp(x->org, y->org);

    return c != 0 ? c : strcmp(x->addr, y->addr);
}

GPtrArray *hov_contacts_list(struct hov_contacts *cs)
{
    GHashTableIter it;
    gpointer k, v;

    if (cs->list != NULL)
        return cs->list;
    cs->list = g_ptr_array_new();
    g_hash_table_iter_init(&it, cs->by_addr);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct agg *a = v;
        struct dir_customer *cu = NULL;
        GHashTableIter ni;
        gpointer nk, nv;
        int best = 0;

        g_free(a->c.name);
        a->c.name = NULL;
        g_hash_table_iter_init(&ni, a->names);
        while (g_hash_table_iter_next(&ni, &nk, &nv)) {
            int n = GPOINTER_TO_INT(nv);
            if (n > best || (n == best && strcmp(nk, a->c.name) < 0)) {
                best = n;
                g_free(a->c.name);
                a->c.name = g_strdup(nk);
            }
        }
        if (a->c.name == NULL)
            a->c.name = g_strdup("");
        g_free(a->c.org);
        g_free(a->c.customer);
        if (dir_customer_by_addr(cs->d, a->c.addr, &cu, NULL) == 1) {
            a->c.org = g_strdup(cu->name);
            a->c.customer = g_strdup(cu->name);
            dir_customer_free(&cu);
        } else {
            const char *at = strrchr(a->c.addr, '@');
            a->c.org = g_strdup(at != NULL ? at + 1 : "");
            a->c.customer = g_strdup("");
        }
        g_ptr_array_sort(a->c.phones, str_cmp);
        g_ptr_array_add(cs->list, &a->c);
    }
    g_ptr_array_sort(cs->list, contact_cmp);
    return cs->list;
}

/* ---- vCard and CSV ------------------------------------------------------------------- */

void hov_vcard_escape(GString *out, const char *s, int component)
{
    for (const char *p = s; *p != '\0'; p++) {
        switch (*p) {
        case '\\': g_string_append(out, "\\\\"); break;
        case ',': g_string_append(out, "\\,"); break;
        case ';':
            g_string_append(out, component ? "\\;" : ";");
            break;
        case '\r':
            if (p[1] == '\n')
                p++;
            /* fall through */
        case '\n': g_string_append(out, "\\n"); break;
        default:
            if ((unsigned char)*p < 0x20 && *p != '\t')
                break;          /* other controls have no place in a vCard */
            g_string_append_c(out, *p);
        }
    }
}

void hov_vcard_line(GString *out, const char *line)
{
    size_t len = strlen(line), pos = 0;
    int first = 1;

    while (pos < len || first) {
        size_t room = first ? 75 : 74, n = MIN(room, len - pos);

        /* never cut a UTF-8 character: back up to its first byte */
        while (pos + n < len && n > 0 && ((unsigned char)line[pos + n] & 0xc0) == 0x80)
            n--;
        if (!first)
            g_string_append_c(out, ' ');
        g_string_append_len(out, line + pos, (gssize)n);
        g_string_append(out, "\r\n");
        pos += n;
        first = 0;
    }
}

static void date_str(gint64 t, char *buf, size_t size)
{
    if (t <= 0) {
        g_strlcpy(buf, "", size);
        return;
    }
    cus_iso8601(t, buf, size);
    if (strlen(buf) >= 10)
        buf[10] = '\0';         /* YYYY-MM-DD */
}

/* A name-based UUID (version 8, from SHA-256) for the contact's UID. */
static void contact_uuid(const char *addr, char out[37])
{
    unsigned char h[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX];
    char *in = g_strconcat("custos contact ", addr, NULL);

    cus_sha256(in, strlen(in), h);
    g_free(in);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    cus_hex(h, 16, hex);
    g_snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
               hex + 20);
}

void hov_vcard_append(GString *out, const struct hov_contact *c)
{
    GString *l = g_string_new(NULL);
    char uuid[37], first[32], last[32];

    hov_vcard_line(out, "BEGIN:VCARD");
    hov_vcard_line(out, "VERSION:4.0");
    contact_uuid(c->addr, uuid);
    g_string_printf(l, "UID:urn:uuid:%s", uuid);
    hov_vcard_line(out, l->str);
    g_string_assign(l, "FN:");
    hov_vcard_escape(l, *c->name != '\0' ? c->name : c->addr, 0);
    hov_vcard_line(out, l->str);
    if (*c->org != '\0') {
        g_string_assign(l, "ORG:");
        hov_vcard_escape(l, c->org, 1);
        hov_vcard_line(out, l->str);
    }
    g_string_assign(l, "EMAIL;TYPE=work:");
    hov_vcard_escape(l, c->addr, 0);
    hov_vcard_line(out, l->str);
    for (guint i = 0; i < c->phones->len; i++) {
        const char *ph = c->phones->pdata[i];
        if (ph[0] == '+')
            g_string_printf(l, "TEL;VALUE=uri;TYPE=voice:tel:%s", ph);
        else
            g_string_printf(l, "TEL;VALUE=text;TYPE=voice:%s", ph);
        hov_vcard_line(out, l->str);
    }
    date_str(c->first, first, sizeof(first));
    date_str(c->last, last, sizeof(last));
    {
        char *note = g_strdup_printf("first contact %s, last contact %s; %" G_GINT64_FORMAT
                                     " messages from them, %" G_GINT64_FORMAT " to them",
                                     *first ? first : "unknown", *last ? last : "unknown",
                                     c->n_from, c->n_to);
        g_string_assign(l, "NOTE:");
        hov_vcard_escape(l, note, 0);
        hov_vcard_line(out, l->str);
        g_free(note);
    }
    if (*c->customer != '\0') {
        g_string_assign(l, "CATEGORIES:");
        hov_vcard_escape(l, "customer", 0);
        hov_vcard_line(out, l->str);
    }
    hov_vcard_line(out, "END:VCARD");
    g_string_free(l, TRUE);
}

void hov_csv_field(GString *out, const char *s, int last)
{
    if (strpbrk(s, ",\"\r\n") != NULL || (*s != '\0' && (s[0] == ' ' || s[strlen(s) - 1] == ' '))) {
        g_string_append_c(out, '"');
        for (const char *p = s; *p != '\0'; p++) {
            if (*p == '"')
                g_string_append_c(out, '"');
            g_string_append_c(out, *p);
        }
        g_string_append_c(out, '"');
    } else {
        g_string_append(out, s);
    }
    g_string_append(out, last ? "\r\n" : ",");
}

GString *hov_contacts_vcf(GPtrArray *contacts)
{
    GString *out = g_string_new(NULL);

    for (guint i = 0; i < contacts->len; i++)
        hov_vcard_append(out, contacts->pdata[i]);
    return out;
}

GString *hov_contacts_csv(GPtrArray *contacts)
{
    GString *out = g_string_new("name,email,phones,organisation,customer,first_contact,"
                                "last_contact,messages_from,messages_to\r\n");

    for (guint i = 0; i < contacts->len; i++) {
        const struct hov_contact *c = contacts->pdata[i];
        char first[32], last[32], nf[24], nt[24];
        char *phones;

        g_ptr_array_add(c->phones, NULL);
        phones = g_strjoinv(";", (char **)c->phones->pdata);
        g_ptr_array_remove_index(c->phones, c->phones->len - 1);
        date_str(c->first, first, sizeof(first));
        date_str(c->last, last, sizeof(last));
        g_snprintf(nf, sizeof(nf), "%" G_GINT64_FORMAT, c->n_from);
        g_snprintf(nt, sizeof(nt), "%" G_GINT64_FORMAT, c->n_to);
        hov_csv_field(out, c->name, 0);
        hov_csv_field(out, c->addr, 0);
        hov_csv_field(out, phones, 0);
        hov_csv_field(out, c->org, 0);
        hov_csv_field(out, c->customer, 0);
        hov_csv_field(out, first, 0);
        hov_csv_field(out, last, 0);
        hov_csv_field(out, nf, 0);
        hov_csv_field(out, nt, 1);
        g_free(phones);
    }
    return out;
}
