/*
 * query.c - the custos query language, compiled to SQL with bound parameters
 *
 * A hand-written lexer and recursive-descent parser build a small tree;
 * terms that yield no token (punctuation only, emoji) are dropped from it;
 * the tree is then written out as one SQL expression over "m" (messages).
 * Full-text terms become FTS5 strings ("..." with " doubled) inside an
 * FTS5 expression that is itself a bound parameter, so neither SQL nor
 * FTS5 syntax can be injected. AND-ed and OR-ed full-text terms share one
 * MATCH. Input is bounded: QRY_MAX_LEN bytes, QRY_MAX_DEPTH nesting,
 * QRY_MAX_TERMS terms; past that, an error, never deep recursion.
 *
 * Semantics decided here (see also query.h):
 *  - A term with no token in it ("!!!", "—", an emoji) is ignored, as if
 *    it were not there: dropped from AND and OR, NOT of it is dropped too.
 *    A query left with nothing matches everything, like the empty query.
 *  - A term whose last token is a lone CJK character is searched as a
 *    prefix ("客"*, "2024年"*): the index has a lone character only at the
 *    end of a CJK run (see tok.h).
 *  - from:/to:/cc:/bcc:/participant: with an '@' inside compare the whole
 *    address (lower-cased); starting with '@' they match the end of the
 *    address; without '@' they match a substring of the address or of the
 *    display name (LIKE: ASCII case-insensitive; CJK names work).
 *  - participant: is any header address (From, To, Cc, Reply-To, Sender),
 *    any envelope recipient, or the envelope sender of any delivery.
 *  - bcc: is an envelope recipient that is in neither To nor Cc.
 *  - employee:, customer: and department: look the directory up when the
 *    query runs (index.h: employees, customers, ...), inside the SQL: the
 *    addresses (or domains) they stand for are gathered in a CTE, then
 *    messages are found through the indexes on addrs(addr), addrs(domain),
 *    rcpts(addr) and rcpts(domain), one UNION arm each, never by scanning.
 *    A message is the employee's if one of the employee's addresses (work
 *    or registered personal) is in any header address or is an envelope
 *    recipient; a customer's if one of its contacts or domains (exactly:
 *    a customer lists its subdomains) is. employee:X with an '@' is the
 *    employee with that work or personal address; without, the employee
 *    named X (ASCII case ignored) or whose address is X@something.
 *    customer:X is the customer named X or that has domain X (or, with an
 *    '@' inside, contact X). department:X is every employee of X. With
 *    '*' after it, X is a prefix of the name, address or domain. Someone
 *    not in the directory matches nothing.
 */
#include <string.h>
#include <glib.h>
#include <sqlite3.h>

#include "custos/query.h"
#include "custos/spool.h"
#include "custos/tok.h"
#include "custos/util.h"


enum node_kind { N_AND, N_OR, N_NOT, N_FTS, N_SQL, N_ALL, N_EMPTY };

struct node {
    enum node_kind kind;
    GPtrArray *kids;            /* AND, OR, NOT: struct node * (borrowed) */
    char *fts;                  /* N_FTS: one FTS5 phrase, with colspec */
    GString *sql;               /* N_SQL */
    GPtrArray *params;          /* N_SQL: struct qry_param * (owned) */
};

enum tk { T_END, T_LPAREN, T_RPAREN, T_AND, T_OR, T_NOT, T_NEG, T_TERM, T_ERR };

struct token {
    enum tk kind;
    size_t at;                  /* byte offset, for the column */
    char *field;                /* T_TERM: known field name, NULL if bare */
    char *value;                /* T_TERM: the word or the quoted text */
    size_t value_at;            /* byte offset of value's first byte */
    int prefix;                 /* T_TERM: followed by '*' */
    int all;                    /* T_TERM: a bare '*' */
};

struct parser {
    const char *text;
    size_t len, pos;
    struct token tok;           /* the lookahead */
    int after_neg;              /* a word right after '-' is never a keyword */
    int depth, terms;
    GPtrArray *nodes;           /* every node, owned */
    char *error;
};

static const char *const fields[] = {
    "from", "to", "cc", "bcc", "participant", "domain", "subject", "body",
    "attachment", "has", "after", "before", "date", "id", "msgid", "sha256",
    "employee", "customer", "department", "flagged", "spool",
};

/* ---- parameters and nodes ---------------------------------------------- */

static void param_free(gpointer p)
{
    struct qry_param *qp = p;

    g_free(qp->text);
    if (qp->blob != NULL)
        g_bytes_unref(qp->blob);
    g_free(qp);
}

static struct qry_param *param_dup(const struct qry_param *qp)
{
    struct qry_param *c = g_new0(struct qry_param, 1);

    c->type = qp->type;
    c->text = g_strdup(qp->text);
    c->num = qp->num;
    c->blob = qp->blob != NULL ? g_bytes_ref(qp->blob) : NULL;
    return c;
}

static void node_free(gpointer p)
{
    struct node *n = p;

    if (n->kids != NULL)
        g_ptr_array_free(n->kids, TRUE);
    g_free(n->fts);
    if (n->sql != NULL)
        g_string_free(n->sql, TRUE);
    if (n->params != NULL)
        g_ptr_array_free(n->params, TRUE);
    g_free(n);
}

static struct node *node_new(struct parser *p, enum node_kind kind)
{
    struct node *n = g_new0(struct node, 1);

    n->kind = kind;
    if (kind == N_AND || kind == N_OR || kind == N_NOT)
        n->kids = g_ptr_array_new();
    if (kind == N_SQL) {
        n->sql = g_string_new(NULL);
        n->params = g_ptr_array_new_with_free_func(param_free);
    }
    g_ptr_array_add(p->nodes, n);
    return n;
}

static void add_text(struct node *n, char *owned)
{
    struct qry_param *qp = g_new0(struct qry_param, 1);

    qp->type = QRY_TEXT;
    qp->text = owned;
    g_ptr_array_add(n->params, qp);
}

static void add_int(struct node *n, gint64 v)
{
    struct qry_param *qp = g_new0(struct qry_param, 1);

    qp->type = QRY_INT;
    qp->num = v;
    g_ptr_array_add(n->params, qp);
}

static void add_blob(struct node *n, const void *data, size_t len)
{
    struct qry_param *qp = g_new0(struct qry_param, 1);

    qp->type = QRY_BLOB;
    qp->blob = g_bytes_new(data, len);
    g_ptr_array_add(n->params, qp);
}

/* ---- errors -------------------------------------------------------------- */

static int column(const struct parser *p, size_t at)
{
    return (int)g_utf8_strlen(p->text, (gssize)at) + 1;
}

static void *fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first error, at byte offset at. Returns NULL. */
static void *fail(struct parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (p->error != NULL)
        return NULL;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p->error = g_strdup_printf("query: column %d: %s", column(p, at), msg);
    g_free(msg);
    return NULL;
}

/* ---- lexer --------------------------------------------------------------- */

static int is_space_at(const struct parser *p, size_t at)
{
    unsigned char c = (unsigned char)p->text[at];

    if (c < 0x80)
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
               c == '\v';
    return g_unichar_isspace(g_utf8_get_char(p->text + at));
}

static size_t next_char(const struct parser *p, size_t at)
{
    return (size_t)(g_utf8_next_char(p->text + at) - p->text);
}

/* Ends a word: space, parentheses, a quote, the end. */
static int word_end(const struct parser *p, size_t at)
{
    char c = p->text[at];

    return at >= p->len || c == '(' || c == ')' || c == '"' || is_space_at(p, at);
}

static void token_clear(struct token *t)
{
    g_free(t->field);
    g_free(t->value);
    memset(t, 0, sizeof(*t));
}

/* A quoted string opening at p->pos: value set, pos after the closing
 * quote and an optional '*'. */
static int lex_quoted(struct parser *p, struct token *t)
{
    size_t open = p->pos, close;
    const char *q = memchr(p->text + open + 1, '"', p->len - open - 1);

    if (q == NULL) {
        fail(p, open, "missing closing quote");
        return -1;
    }
    close = (size_t)(q - p->text);
    t->value = g_strndup(p->text + open + 1, close - open - 1);
    t->value_at = open + 1;
    p->pos = close + 1;
    if (p->pos < p->len && p->text[p->pos] == '*') {
        t->prefix = 1;
        while (p->pos < p->len && p->text[p->pos] == '*')
            p->pos++;
    }
    return 0;
}

static int is_field(const char *name, size_t len)
{
    for (size_t i = 0; i < G_N_ELEMENTS(fields); i++)
        if (strlen(fields[i]) == len && g_ascii_strncasecmp(fields[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* Does "name" look like a field name someone meant (letters first)? */
static int looks_like_field(const char *name, size_t len)
{
    if (len == 0 || !g_ascii_isalpha(name[0]))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!g_ascii_isalnum(name[i]) && name[i] != '_' && name[i] != '-')
            return 0;
    return 1;
}

/* Read the next token into p->tok. */
static void lex(struct parser *p)
{
    struct token *t = &p->tok;
    size_t start, colon;
    int after_neg = p->after_neg;

    token_clear(t);
    p->after_neg = 0;
    while (p->pos < p->len && is_space_at(p, p->pos))
        p->pos = next_char(p, p->pos);
    t->at = start = p->pos;
    if (p->pos >= p->len) {
        t->kind = T_END;
        return;
    }
    switch (p->text[p->pos]) {
    case '(':
        t->kind = T_LPAREN;
        p->pos++;
        return;
    case ')':
        t->kind = T_RPAREN;
        p->pos++;
        return;
    case '-':
        if (p->pos + 1 < p->len && p->text[p->pos + 1] != ')' &&
            !is_space_at(p, p->pos + 1)) {
            t->kind = T_NEG;
            p->pos++;
            p->after_neg = 1;
            return;
        }
        break;
    case '"':
        t->kind = lex_quoted(p, t) == 0 ? T_TERM : T_ERR;
        return;
    }

    /* A word, maybe field:value. */
    while (!word_end(p, p->pos))
        p->pos = next_char(p, p->pos);
    size_t wlen = p->pos - start;
    const char *w = p->text + start;
    if (!after_neg) {
        if (wlen == 3 && memcmp(w, "AND", 3) == 0) {
            t->kind = T_AND;
            return;
        }
        if (wlen == 2 && memcmp(w, "OR", 2) == 0) {
            t->kind = T_OR;
            return;
        }
        if (wlen == 3 && memcmp(w, "NOT", 3) == 0) {
            t->kind = T_NOT;
            return;
        }
    }
    t->kind = T_TERM;
    const char *c = memchr(w, ':', wlen);
    if (c != NULL) {
        colon = (size_t)(c - w);
        const char *rest = c + 1;
        size_t rlen = wlen - colon - 1;
        int quote_next = rlen == 0 && p->pos < p->len && p->text[p->pos] == '"';
        int f = is_field(w, colon);

        if (f >= 0) {
            t->field = g_strdup(fields[f]);
            if (quote_next)
                return (void)(t->kind = lex_quoted(p, t) == 0 ? T_TERM : T_ERR);
            if (rlen == 0) {
                fail(p, start, "%s: needs a value", fields[f]);
                t->kind = T_ERR;
                return;
            }
            t->value_at = start + colon + 1;
            while (rlen > 0 && rest[rlen - 1] == '*') {
                t->prefix = 1;
                rlen--;
            }
            t->value = g_strndup(rest, rlen);
            return;
        }
        if (looks_like_field(w, colon) && (quote_next ||
            (rlen > 0 && !(rlen >= 2 && rest[0] == '/' && rest[1] == '/')))) {
            char *name = g_strndup(w, colon);
            fail(p, start, "unknown field '%s'", name);
            g_free(name);
            t->kind = T_ERR;
            return;
        }
    }
    if (wlen == 1 && w[0] == '*') {
        t->all = 1;
        return;
    }
    t->value_at = start;
    while (wlen > 0 && w[wlen - 1] == '*') {
        t->prefix = 1;
        wlen--;
    }
    t->value = g_strndup(w, wlen);
}

/* ---- leaves ------------------------------------------------------------- */

struct tok_probe {
    int count;
    int last_cjk1;      /* the last token is one CJK character */
};

static int probe_cb(void *ctx, int tflags, const char *token, int ntoken,
                    int start, int end)
{
    struct tok_probe *pr = ctx;
    gunichar c = g_utf8_get_char_validated(token, ntoken);

    pr->count++;
    pr->last_cjk1 = c != (gunichar)-1 && c != (gunichar)-2 &&
                    g_utf8_next_char(token) == token + ntoken && tok_is_cjk(c);
    return SQLITE_OK;
}

/* A full-text term on column col (NULL: all columns). */
static struct node *fts_leaf(struct parser *p, const char *col, const char *text,
                             int prefix)
{
    struct tok_probe pr = { 0, 0 };
    struct node *n;
    GString *e;

    tok_run(text, (int)strlen(text), FTS5_TOKENIZE_QUERY |
            (prefix ? FTS5_TOKENIZE_PREFIX : 0), probe_cb, &pr);
    if (pr.count == 0)
        return node_new(p, N_EMPTY);
    e = g_string_new(NULL);
    if (col != NULL)
        g_string_append_printf(e, "%s : ", col);
    g_string_append_c(e, '"');
    for (const char *s = text; *s != '\0'; s++) {
        if (*s == '"')
            g_string_append_c(e, '"');
        g_string_append_c(e, *s);
    }
    g_string_append_c(e, '"');
    if (prefix || pr.last_cjk1)
        g_string_append_c(e, '*');
    n = node_new(p, N_FTS);
    n->fts = g_string_free(e, FALSE);
    return n;
}

/* v with LIKE's wildcards and the escape escaped, between pre and post. */
static char *like_pattern(const char *pre, const char *v, const char *post)
{
    GString *s = g_string_new(pre);

    for (; *v != '\0'; v++) {
        if (*v == '%' || *v == '_' || *v == '\\')
            g_string_append_c(s, '\\');
        g_string_append_c(s, *v);
    }
    g_string_append(s, post);
    return g_string_free(s, FALSE);
}

enum addr_kind { ADDR_EXACT, ADDR_SUFFIX, ADDR_SUBSTR };

static enum addr_kind addr_kind(const char *v)
{
    if (v[0] == '@')
        return ADDR_SUFFIX;
    return strchr(v, '@') != NULL ? ADDR_EXACT : ADDR_SUBSTR;
}

/* The condition on an address column (and a name column, or NULL). */
static void addr_cond(struct node *n, const char *acol, const char *ncol,
                      const char *v)
{
    char *low = g_utf8_strdown(v, -1);

    switch (addr_kind(v)) {
    case ADDR_EXACT:
        g_string_append_printf(n->sql, "%s = ?", acol);
        add_text(n, g_strdup(low));
        break;
    case ADDR_SUFFIX:
        g_string_append_printf(n->sql, "%s LIKE ? ESCAPE '\\'", acol);
        add_text(n, like_pattern("%", low, ""));
        break;
    case ADDR_SUBSTR:
        if (ncol != NULL) {
            g_string_append_printf(n->sql, "(%s LIKE ? ESCAPE '\\' OR %s LIKE ? "
                                   "ESCAPE '\\')", acol, ncol);
            add_text(n, like_pattern("%", v, "%"));
        } else {
            g_string_append_printf(n->sql, "%s LIKE ? ESCAPE '\\'", acol);
        }
        add_text(n, like_pattern("%", v, "%"));
        break;
    }
    g_free(low);
}

/* The condition on deliveries.sender (not guaranteed lower case). */
static void sender_cond(struct node *n, const char *v)
{
    switch (addr_kind(v)) {
    case ADDR_EXACT:
        g_string_append(n->sql, "sender = ? COLLATE NOCASE");
        add_text(n, g_strdup(v));
        break;
    case ADDR_SUFFIX:
        g_string_append(n->sql, "sender LIKE ? ESCAPE '\\'");
        add_text(n, like_pattern("%", v, ""));
        break;
    case ADDR_SUBSTR:
        g_string_append(n->sql, "sender LIKE ? ESCAPE '\\'");
        add_text(n, like_pattern("%", v, "%"));
        break;
    }
}

static struct node *role_leaf(struct parser *p, int role, const char *v)
{
    struct node *n = node_new(p, N_SQL);

    g_string_append_printf(n->sql, "m.id IN (SELECT msg FROM addrs WHERE role = %d "
                           "AND ", role);
    addr_cond(n, "addr", "name", v);
    g_string_append_c(n->sql, ')');
    return n;
}

static struct node *bcc_leaf(struct parser *p, const char *v)
{
    struct node *n = node_new(p, N_SQL);

    g_string_append(n->sql, "m.id IN (SELECT r.msg FROM rcpts r WHERE ");
    addr_cond(n, "r.addr", NULL, v);
    g_string_append(n->sql, " AND NOT EXISTS (SELECT 1 FROM addrs a WHERE "
                    "a.msg = r.msg AND a.role IN (1, 2) AND lower(a.addr) = r.addr))");
    return n;
}

static struct node *participant_leaf(struct parser *p, const char *v)
{
    struct node *n = node_new(p, N_SQL);

    g_string_append(n->sql, "m.id IN (SELECT msg FROM addrs WHERE "
                    "role IN (0, 1, 2, 3, 4) AND ");
    addr_cond(n, "addr", "name", v);
    g_string_append(n->sql, ") OR m.id IN (SELECT msg FROM rcpts WHERE ");
    addr_cond(n, "addr", NULL, v);
    g_string_append(n->sql, ") OR m.id IN (SELECT msg FROM deliveries WHERE ");
    sender_cond(n, v);
    g_string_append_c(n->sql, ')');
    return n;
}

static struct node *domain_leaf(struct parser *p, const struct token *t)
{
    const char *v = t->value;
    struct node *n;
    char *d;

    while (*v == '@')
        v++;
    if (*v == '\0')
        return fail(p, t->value_at, "domain: needs a domain name");
    d = g_utf8_strdown(v, -1);
    n = node_new(p, N_SQL);
    g_string_append(n->sql,
        "m.id IN (SELECT msg FROM addrs WHERE domain = ? OR domain LIKE ? ESCAPE '\\')"
        " OR m.id IN (SELECT msg FROM rcpts WHERE domain = ? OR domain LIKE ? ESCAPE '\\')"
        " OR m.id IN (SELECT msg FROM deliveries WHERE sender LIKE ? ESCAPE '\\'"
        " OR sender LIKE ? ESCAPE '\\')");
    for (int i = 0; i < 2; i++) {
        add_text(n, g_strdup(d));
        add_text(n, like_pattern("%.", d, ""));
    }
    add_text(n, like_pattern("%@", d, ""));
    add_text(n, like_pattern("%@%.", d, ""));
    g_free(d);
    return n;
}

/* ---- the directory ------------------------------------------------------- */

/* Messages with one of the addresses a CTE "x(a)" holds in a header or as
 * an envelope recipient; the CTEs (ending in ", ") are in n->sql already. */
static void addrs_in_x(struct node *n)
{
    g_string_append(n->sql, "SELECT msg FROM addrs WHERE addr IN x"
                    " UNION SELECT msg FROM rcpts WHERE addr IN x)");
}

/* employee:V and department:V: the employees e(a) the value names, their
 * work and personal addresses x(a), the messages with one of those. */
static struct node *employee_leaf(struct parser *p, const struct token *t, int department)
{
    const char *v = t->value;
    struct node *n = node_new(p, N_SQL);
    char *low = g_utf8_strdown(v, -1);

    g_string_append(n->sql, "m.id IN (WITH e(a) AS (");
    if (department && t->prefix) {
        g_string_append(n->sql, "SELECT address FROM employees"
                        " WHERE department LIKE ? ESCAPE '\\'");
        add_text(n, like_pattern("", v, "%"));
    } else if (department) {
        g_string_append(n->sql, "SELECT address FROM employees"
                        " WHERE department = ? COLLATE NOCASE");
        add_text(n, g_strdup(v));
    } else if (t->prefix) {
        g_string_append(n->sql, "SELECT address FROM employees WHERE name LIKE ? ESCAPE"
                        " '\\' OR address LIKE ? ESCAPE '\\'");
        add_text(n, like_pattern("", v, "%"));
        add_text(n, like_pattern("", low, "%"));
    } else if (strchr(v, '@') != NULL) {
        g_string_append(n->sql, "SELECT address FROM employees WHERE address = ?"
                        " UNION SELECT employee FROM employee_personal WHERE addr = ?");
        add_text(n, g_strdup(low));
        add_text(n, g_strdup(low));
    } else {
        g_string_append(n->sql, "SELECT address FROM employees WHERE name = ?"
                        " COLLATE NOCASE OR address LIKE ? ESCAPE '\\'");
        add_text(n, g_strdup(v));
        add_text(n, like_pattern("", low, "@%"));
    }
    g_string_append(n->sql, "), x(a) AS (SELECT a FROM e UNION SELECT addr FROM"
                    " employee_personal WHERE employee IN e) ");
    addrs_in_x(n);
    g_free(low);
    return n;
}

/* customer:V: the customers c(id) the value names, their domains d(v) and
 * contacts k(v), the messages with one of those. */
static struct node *customer_leaf(struct parser *p, const struct token *t)
{
    const char *v = t->value;
    struct node *n = node_new(p, N_SQL);
    char *low = g_utf8_strdown(*v == '@' ? v + 1 : v, -1);

    g_string_append(n->sql, "m.id IN (WITH c(id) AS (");
    if (t->prefix) {
        g_string_append(n->sql, "SELECT id FROM customers WHERE name LIKE ? ESCAPE '\\'"
                        " UNION SELECT customer FROM customer_domains"
                        " WHERE domain LIKE ? ESCAPE '\\'");
        add_text(n, like_pattern("", v, "%"));
        add_text(n, like_pattern("", low, "%"));
    } else if (*v != '@' && strchr(v, '@') != NULL) {
        g_string_append(n->sql, "SELECT customer FROM customer_contacts WHERE addr = ?");
        add_text(n, g_strdup(low));
    } else {
        g_string_append(n->sql, "SELECT id FROM customers WHERE name = ? COLLATE NOCASE"
                        " UNION SELECT customer FROM customer_domains WHERE domain = ?");
        add_text(n, g_strdup(*v == '@' ? v + 1 : v));
        add_text(n, g_strdup(low));
    }
    g_string_append(n->sql, "), d(v) AS (SELECT domain FROM customer_domains"
                    " WHERE customer IN c), k(v) AS (SELECT addr FROM customer_contacts"
                    " WHERE customer IN c) SELECT msg FROM addrs WHERE domain IN d"
                    " UNION SELECT msg FROM addrs WHERE addr IN k"
                    " UNION SELECT msg FROM rcpts WHERE domain IN d"
                    " UNION SELECT msg FROM rcpts WHERE addr IN k)");
    g_free(low);
    return n;
}

/* Parse YYYY, YYYY-MM or YYYY-MM-DD ('/' also allowed) into the unix
 * times of the start of that period and of the next one. */
static int parse_date(const char *s, size_t len, gint64 *start_r, gint64 *end_r)
{
    int part[3] = { 0, 1, 1 }, nparts = 0;
    size_t i = 0;
    GDateTime *a, *b;

    while (nparts < 3) {
        size_t d0 = i;
        int v = 0;
        while (i < len && g_ascii_isdigit(s[i]) && i - d0 < 4)
            v = v * 10 + (s[i++] - '0');
        if (i == d0 || (nparts == 0 && i - d0 != 4) || (nparts > 0 && i - d0 > 2))
            return -1;
        part[nparts++] = v;
        if (i == len)
            break;
        if (nparts == 3 || (s[i] != '-' && s[i] != '/'))
            return -1;
        i++;
    }
    if (i != len || part[0] < 1 || part[1] < 1 || part[1] > 12 || part[2] < 1 ||
        part[2] > g_date_get_days_in_month((GDateMonth)part[1], (GDateYear)part[0]))
        return -1;
    a = g_date_time_new_utc(part[0], part[1], part[2], 0, 0, 0);
    if (a == NULL)
        return -1;
    b = nparts == 1 ? g_date_time_add_years(a, 1) :
        nparts == 2 ? g_date_time_add_months(a, 1) : g_date_time_add_days(a, 1);
    *start_r = g_date_time_to_unix(a);
    *end_r = b != NULL ? g_date_time_to_unix(b) : G_MAXINT64;
    g_date_time_unref(a);
    if (b != NULL)
        g_date_time_unref(b);
    return 0;
}

static struct node *date_leaf(struct parser *p, const struct token *t)
{
    const char *v = t->value, *dots = strstr(v, "..");
    gint64 s1, e1, s2, e2;
    struct node *n;
    int bad;

    if (strcmp(t->field, "date") == 0 && dots != NULL) {
        size_t l1 = (size_t)(dots - v), l2 = strlen(dots + 2);
        if (l1 == 0 && l2 == 0)
            return fail(p, t->value_at, "date: needs a date before or after '..'");
        if (l1 > 0 && parse_date(v, l1, &s1, &e1) < 0)
            return fail(p, t->value_at, "date: bad date (YYYY, YYYY-MM or YYYY-MM-DD)");
        if (l2 > 0 && parse_date(dots + 2, l2, &s2, &e2) < 0)
            return fail(p, t->value_at + l1 + 2,
                        "date: bad date (YYYY, YYYY-MM or YYYY-MM-DD)");
        n = node_new(p, N_SQL);
        if (l1 > 0) {
            g_string_append(n->sql, "m.date >= ?");
            add_int(n, s1);
        }
        if (l2 > 0) {
            /* date 0 means the message had no usable Date: */
            g_string_append(n->sql, l1 > 0 ? " AND m.date < ?" : "m.date != 0 AND m.date < ?");
            add_int(n, e2);
        }
        return n;
    }
    bad = parse_date(v, strlen(v), &s1, &e1) < 0;
    if (bad)
        return fail(p, t->value_at, "%s: bad date (YYYY, YYYY-MM or YYYY-MM-DD)",
                    t->field);
    n = node_new(p, N_SQL);
    if (strcmp(t->field, "after") == 0) {
        g_string_append(n->sql, "m.date >= ?");
        add_int(n, s1);
    } else if (strcmp(t->field, "before") == 0) {
        g_string_append(n->sql, "m.date != 0 AND m.date < ?");   /* 0: no Date: */
        add_int(n, s1);
    } else {
        g_string_append(n->sql, "m.date >= ? AND m.date < ?");
        add_int(n, s1);
        add_int(n, e1);
    }
    return n;
}

static struct node *sha_leaf(struct parser *p, const struct token *t)
{
    unsigned char lo[CUS_SHA256_LEN], hi[CUS_SHA256_LEN];
    const char *v = t->value;
    size_t len = strlen(v);
    struct node *n;

    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isxdigit(v[i]))
            return fail(p, t->value_at + i, "sha256: not a hex digit");
    if (len < 8 || len > 2 * CUS_SHA256_LEN)
        return fail(p, t->value_at, "sha256: needs 8 to 64 hex digits");
    n = node_new(p, N_SQL);
    if (len == 2 * CUS_SHA256_LEN) {
        if (cus_unhex(v, lo, sizeof(lo)) < 0)
            return fail(p, t->value_at, "sha256: not a hex digit");
        g_string_append(n->sql, "m.sha256 = ?");
        add_blob(n, lo, sizeof(lo));
        return n;
    }
    memset(lo, 0x00, sizeof(lo));
    memset(hi, 0xff, sizeof(hi));
    for (size_t i = 0; i < len; i++) {
        int x = g_ascii_xdigit_value(v[i]);
        if (i % 2 == 0) {
            lo[i / 2] = (unsigned char)(x << 4);
            hi[i / 2] = (unsigned char)((x << 4) | 0x0f);
        } else {
            lo[i / 2] |= (unsigned char)x;
            hi[i / 2] = (unsigned char)((hi[i / 2] & 0xf0) | x);
        }
    }
    g_string_append(n->sql, "m.sha256 BETWEEN ? AND ?");
    add_blob(n, lo, sizeof(lo));
    add_blob(n, hi, sizeof(hi));
    return n;
}

/* flagged:CATEGORY, flagged:PREFIX*, flagged:any (or flagged:*): messages
 * with an incident (incident.h) of that category, through the index on
 * incidents(category, time) or incidents(msg). */
static struct node *flagged_leaf(struct parser *p, const struct token *t)
{
    struct node *n;
    char *cat;

    if (t->value[0] == '\0' || (!t->prefix && g_ascii_strcasecmp(t->value, "any") == 0)) {
        n = node_new(p, N_SQL);
        g_string_append(n->sql, "m.id IN (SELECT msg FROM incidents)");
        return n;
    }
    cat = g_ascii_strdown(t->value, -1);
    if (!spool_token_valid(cat)) {
        g_free(cat);
        return fail(p, t->value_at, "flagged: '%s' is not a category (letters, digits and "
                    ". / _ - only; flagged:any for every incident)", t->value);
    }
    n = node_new(p, N_SQL);
    if (t->prefix) {
        /* tokens are ASCII below 0x7f: the range [cat, cat + 0x7f) */
        g_string_append(n->sql, "m.id IN (SELECT msg FROM incidents WHERE category >= ?"
                        " AND category < ?)");
        add_text(n, g_strdup(cat));
        add_text(n, g_strconcat(cat, "\x7f", NULL));
        g_free(cat);
    } else {
        g_string_append(n->sql, "m.id IN (SELECT msg FROM incidents WHERE category = ?)");
        add_text(n, cat);
    }
    return n;
}

/* spool:ID, the X-Custos-Archive header's value: the message of the
 * delivery that spool entry became (deliveries.spool_id, unique). */
static struct node *spool_leaf(struct parser *p, const struct token *t)
{
    struct node *n;

    if (!spool_id_valid(t->value) || t->prefix)
        return fail(p, t->value_at, "spool: '%s' is not a spool id (the X-Custos-Archive "
                    "header's value, TIME.USEC.PID.HEX16)", t->value);
    n = node_new(p, N_SQL);
    g_string_append(n->sql, "m.id IN (SELECT msg FROM deliveries WHERE spool_id = ?)");
    add_text(n, g_strdup(t->value));
    return n;
}

/* The node for one term token. */
static struct node *term(struct parser *p, const struct token *t)
{
    const char *f = t->field, *v = t->value;
    struct node *n;

    if (++p->terms > QRY_MAX_TERMS)
        return fail(p, t->at, "too many terms (at most %d)", QRY_MAX_TERMS);
    if (t->all)
        return node_new(p, N_ALL);
    if (f == NULL)
        return fts_leaf(p, NULL, v, t->prefix);
    if (strcmp(f, "subject") == 0 || strcmp(f, "body") == 0)
        return fts_leaf(p, f, v, t->prefix);
    if (strcmp(f, "attachment") == 0)
        return fts_leaf(p, "attname", v, t->prefix);
    if (strcmp(f, "flagged") == 0 && (*v != '\0' || t->prefix))
        return flagged_leaf(p, t);
    if (*v == '\0')
        return fail(p, t->at, "%s: needs a value", f);
    if (strcmp(f, "from") == 0)
        return role_leaf(p, 0, v);
    if (strcmp(f, "to") == 0)
        return role_leaf(p, 1, v);
    if (strcmp(f, "cc") == 0)
        return role_leaf(p, 2, v);
    if (strcmp(f, "bcc") == 0)
        return bcc_leaf(p, v);
    if (strcmp(f, "participant") == 0)
        return participant_leaf(p, v);
    if (strcmp(f, "domain") == 0)
        return domain_leaf(p, t);
    if (strcmp(f, "employee") == 0 || strcmp(f, "department") == 0)
        return employee_leaf(p, t, f[0] == 'd');
    if (strcmp(f, "customer") == 0)
        return customer_leaf(p, t);
    if (strcmp(f, "has") == 0) {
        if (g_ascii_strcasecmp(v, "attachment") != 0 &&
            g_ascii_strcasecmp(v, "attachments") != 0)
            return fail(p, t->value_at, "has: unknown value '%s' (has:attachment)", v);
        n = node_new(p, N_SQL);
        g_string_append(n->sql, "m.n_att > 0");
        return n;
    }
    if (strcmp(f, "after") == 0 || strcmp(f, "before") == 0 || strcmp(f, "date") == 0)
        return date_leaf(p, t);
    if (strcmp(f, "id") == 0) {
        guint64 id;
        if (!g_ascii_string_to_unsigned(v, 10, 1, G_MAXINT64, &id, NULL))
            return fail(p, t->value_at, "id: needs a positive number");
        n = node_new(p, N_SQL);
        g_string_append(n->sql, "m.id = ?");
        add_int(n, (gint64)id);
        return n;
    }
    if (strcmp(f, "spool") == 0)
        return spool_leaf(p, t);
    if (strcmp(f, "msgid") == 0) {
        size_t len = strlen(v);
        if (v[0] == '<')
            v++, len--;
        if (len > 0 && v[len - 1] == '>')
            len--;
        if (len == 0)
            return fail(p, t->value_at, "msgid: needs a Message-ID");
        n = node_new(p, N_SQL);
        g_string_append(n->sql, "m.message_id = ?");
        add_text(n, g_strndup(v, len));
        return n;
    }
    return sha_leaf(p, t);      /* the last field left */
}

/* ---- parser ------------------------------------------------------------- */

static struct node *parse_or(struct parser *p);

static int starts_term(enum tk k)
{
    return k == T_TERM || k == T_LPAREN || k == T_NOT || k == T_NEG;
}

static struct node *parse_unary(struct parser *p)
{
    struct node *n, *kid;
    struct token *t = &p->tok;

    if (t->kind == T_ERR)
        return NULL;
    if (t->kind == T_NOT || t->kind == T_NEG) {
        size_t at = t->at;
        if (++p->depth > QRY_MAX_DEPTH)
            return fail(p, at, "nested too deeply (at most %d)", QRY_MAX_DEPTH);
        lex(p);
        if (t->kind == T_ERR)
            return NULL;
        if (!starts_term(t->kind))
            return fail(p, at, "NOT needs a term after it");
        if ((kid = parse_unary(p)) == NULL)
            return NULL;
        p->depth--;
        n = node_new(p, N_NOT);
        g_ptr_array_add(n->kids, kid);
        return n;
    }
    if (t->kind == T_LPAREN) {
        size_t open = t->at;
        if (++p->depth > QRY_MAX_DEPTH)
            return fail(p, open, "nested too deeply (at most %d)", QRY_MAX_DEPTH);
        lex(p);
        if (t->kind == T_RPAREN)
            return fail(p, open, "empty parentheses");
        if (t->kind == T_END)
            return fail(p, open, "unbalanced parenthesis");
        if ((n = parse_or(p)) == NULL)
            return NULL;
        if (t->kind != T_RPAREN)
            return fail(p, open, "unbalanced parenthesis");
        p->depth--;
        lex(p);
        return n;
    }
    if (t->kind == T_TERM) {
        n = term(p, t);
        if (n != NULL)
            lex(p);
        return n;
    }
    if (t->kind == T_RPAREN)
        return fail(p, t->at, "unbalanced parenthesis");
    return fail(p, t->at, "expected a term");
}

static struct node *parse_and(struct parser *p)
{
    struct node *n, *kid;
    struct token *t = &p->tok;

    if (t->kind == T_AND || t->kind == T_OR)
        return fail(p, t->at, "%s needs a term on both sides",
                    t->kind == T_AND ? "AND" : "OR");
    if ((kid = parse_unary(p)) == NULL)
        return NULL;
    n = node_new(p, N_AND);
    g_ptr_array_add(n->kids, kid);
    for (;;) {
        if (t->kind == T_AND) {
            size_t at = t->at;
            lex(p);
            if (t->kind == T_ERR)
                return NULL;
            if (!starts_term(t->kind))
                return fail(p, at, "AND needs a term on both sides");
        } else if (!starts_term(t->kind)) {
            break;
        }
        if ((kid = parse_unary(p)) == NULL)
            return NULL;
        g_ptr_array_add(n->kids, kid);
    }
    return n;
}

static struct node *parse_or(struct parser *p)
{
    struct node *n, *kid;
    struct token *t = &p->tok;

    if ((kid = parse_and(p)) == NULL)
        return NULL;
    n = node_new(p, N_OR);
    g_ptr_array_add(n->kids, kid);
    while (t->kind == T_OR) {
        size_t at = t->at;
        lex(p);
        if (t->kind == T_ERR)
            return NULL;
        if (!starts_term(t->kind))
            return fail(p, at, "OR needs a term on both sides");
        if ((kid = parse_and(p)) == NULL)
            return NULL;
        g_ptr_array_add(n->kids, kid);
    }
    return n;
}

/* ---- simplification and SQL --------------------------------------------- */

/* Drop ignored terms, collapse one-child AND/OR and NOT NOT, and lift an
 * AND inside an AND (OR inside OR) into it: the SQL and the FTS5
 * expression get no deeper than they must (both parsers have a small
 * fixed stack). Returns the node to use. */
static struct node *simplify(struct node *n)
{
    if (n->kind == N_NOT) {
        struct node *kid = simplify(n->kids->pdata[0]);
        if (kid->kind == N_EMPTY)
            return kid;
        if (kid->kind == N_NOT)
            return kid->kids->pdata[0];
        n->kids->pdata[0] = kid;
        return n;
    }
    if (n->kind != N_AND && n->kind != N_OR)
        return n;
    GPtrArray *kids = g_ptr_array_new();
    for (guint i = 0; i < n->kids->len; i++) {
        struct node *kid = simplify(n->kids->pdata[i]);
        if (kid->kind == n->kind) {
            for (guint k = 0; k < kid->kids->len; k++)
                g_ptr_array_add(kids, kid->kids->pdata[k]);
        } else if (kid->kind != N_EMPTY) {
            g_ptr_array_add(kids, kid);
        }
    }
    g_ptr_array_free(n->kids, TRUE);
    n->kids = kids;
    if (kids->len == 1)
        return kids->pdata[0];
    if (kids->len == 0)
        n->kind = N_EMPTY;
    return n;
}

/* Can n be written as one FTS5 expression? */
static int fts_able(const struct node *n)
{
    int pos = 0;

    switch (n->kind) {
    case N_FTS:
        return 1;
    case N_OR:
        for (guint i = 0; i < n->kids->len; i++)
            if (!fts_able(n->kids->pdata[i]))
                return 0;
        return 1;
    case N_AND:
        for (guint i = 0; i < n->kids->len; i++) {
            const struct node *k = n->kids->pdata[i];
            if (k->kind == N_NOT)
                k = k->kids->pdata[0];
            else
                pos = 1;
            if (!fts_able(k))
                return 0;
        }
        return pos;
    default:
        return 0;
    }
}

static void fts_write(const struct node *n, GString *out);

/* AND of fts_able positive nodes pos, minus fts_able nodes neg:
 * (((p1) AND (p2)) NOT ((n1) OR (n2))), one level however many are
 * negated, parenthesized to leave nothing to FTS5's precedence. */
static void fts_write_and(GPtrArray *pos, GPtrArray *neg, GString *out)
{
    if (neg->len > 0)
        g_string_append_c(out, '(');
    if (pos->len > 1)
        g_string_append_c(out, '(');
    for (guint i = 0; i < pos->len; i++) {
        if (i > 0)
            g_string_append(out, " AND ");
        fts_write(pos->pdata[i], out);
    }
    if (pos->len > 1)
        g_string_append_c(out, ')');
    if (neg->len == 0)
        return;
    g_string_append(out, " NOT ");
    if (neg->len > 1)
        g_string_append_c(out, '(');
    for (guint i = 0; i < neg->len; i++) {
        if (i > 0)
            g_string_append(out, " OR ");
        fts_write(neg->pdata[i], out);
    }
    if (neg->len > 1)
        g_string_append_c(out, ')');
    g_string_append_c(out, ')');
}

static void fts_write(const struct node *n, GString *out)
{
    if (n->kind == N_FTS) {
        g_string_append_c(out, '(');
        g_string_append(out, n->fts);
        g_string_append_c(out, ')');
    } else if (n->kind == N_OR) {
        g_string_append_c(out, '(');
        for (guint i = 0; i < n->kids->len; i++) {
            if (i > 0)
                g_string_append(out, " OR ");
            fts_write(n->kids->pdata[i], out);
        }
        g_string_append_c(out, ')');
    } else {                                    /* N_AND, fts_able */
        GPtrArray *pos = g_ptr_array_new(), *neg = g_ptr_array_new();
        for (guint i = 0; i < n->kids->len; i++) {
            struct node *k = n->kids->pdata[i];
            if (k->kind == N_NOT)
                g_ptr_array_add(neg, k->kids->pdata[0]);
            else
                g_ptr_array_add(pos, k);
        }
        fts_write_and(pos, neg, out);
        g_ptr_array_free(pos, TRUE);
        g_ptr_array_free(neg, TRUE);
    }
}

static void emit_match(struct qry *q, const char *expr)
{
    struct qry_param *qp = g_new0(struct qry_param, 1);

    qp->type = QRY_TEXT;
    qp->text = g_strdup(expr);
    g_ptr_array_add(q->params, qp);
    g_string_append(q->where, "m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)");
}

static void emit(const struct node *n, struct qry *q)
{
    GString *e;

    switch (n->kind) {
    case N_ALL:
    case N_EMPTY:
        g_string_append(q->where, "1");
        return;
    case N_SQL:
        g_string_append_c(q->where, '(');
        g_string_append_len(q->where, n->sql->str, n->sql->len);
        g_string_append_c(q->where, ')');
        for (guint i = 0; i < n->params->len; i++)
            g_ptr_array_add(q->params, param_dup(n->params->pdata[i]));
        return;
    case N_NOT:
        g_string_append(q->where, "NOT (");
        emit(n->kids->pdata[0], q);
        g_string_append_c(q->where, ')');
        return;
    default:
        break;
    }
    if (fts_able(n)) {
        e = g_string_new(NULL);
        fts_write(n, e);
        emit_match(q, e->str);
        g_string_free(e, TRUE);
        return;
    }
    /* AND or OR with some terms FTS5 cannot take: the ones it can share
     * one MATCH, the rest are joined in SQL. */
    GPtrArray *pos = g_ptr_array_new(), *neg = g_ptr_array_new(),
              *rest = g_ptr_array_new();
    const char *op = n->kind == N_AND ? " AND " : " OR ";
    int first = 1;
    for (guint i = 0; i < n->kids->len; i++) {
        struct node *k = n->kids->pdata[i];
        if (fts_able(k))
            g_ptr_array_add(pos, k);
        else if (n->kind == N_AND && k->kind == N_NOT && fts_able(k->kids->pdata[0]))
            g_ptr_array_add(neg, k);
        else
            g_ptr_array_add(rest, k);
    }
    g_string_append_c(q->where, '(');
    if (pos->len > 0) {
        e = g_string_new(NULL);
        if (n->kind == N_AND) {
            GPtrArray *negk = g_ptr_array_new();
            for (guint i = 0; i < neg->len; i++)
                g_ptr_array_add(negk, ((struct node *)neg->pdata[i])->kids->pdata[0]);
            fts_write_and(pos, negk, e);
            g_ptr_array_free(negk, TRUE);
            g_ptr_array_set_size(neg, 0);
        } else {
            for (guint i = 0; i < pos->len; i++) {
                if (i > 0)
                    g_string_append(e, " OR ");
                fts_write(pos->pdata[i], e);
            }
        }
        emit_match(q, e->str);
        g_string_free(e, TRUE);
        first = 0;
    }
    g_ptr_array_extend_and_steal(rest, neg);
    for (guint i = 0; i < rest->len; i++) {
        if (!first)
            g_string_append(q->where, op);
        emit(rest->pdata[i], q);
        first = 0;
    }
    g_string_append_c(q->where, ')');
    g_ptr_array_free(pos, TRUE);
    g_ptr_array_free(rest, TRUE);
}

/* ---- public ------------------------------------------------------------- */

int qry_compile(const char *text, struct qry **q_r, char **error_r)
{
    struct parser p;
    struct node *root;
    const char *bad;
    struct qry *q;
    int ret = -1;

    *q_r = NULL;
    memset(&p, 0, sizeof(p));
    p.text = text != NULL ? text : "";
    p.len = strlen(p.text);
    p.nodes = g_ptr_array_new_with_free_func(node_free);
    if (p.len > QRY_MAX_LEN) {
        cus_error(error_r, "query: too long (%zu bytes, at most %d)", p.len,
                  QRY_MAX_LEN);
        goto out;
    }
    if (!g_utf8_validate(p.text, (gssize)p.len, &bad)) {
        cus_error(error_r, "query: column %d: invalid UTF-8",
                  (int)g_utf8_strlen(p.text, bad - p.text) + 1);
        goto out;
    }
    lex(&p);
    if (p.tok.kind == T_END) {
        root = node_new(&p, N_ALL);
    } else {
        root = parse_or(&p);
        if (root != NULL && p.tok.kind == T_RPAREN)
            root = fail(&p, p.tok.at, "unbalanced parenthesis");
        else if (root != NULL && p.tok.kind != T_END)
            root = NULL;        /* T_ERR: the lexer said why */
    }
    if (root == NULL) {
        cus_error(error_r, "%s", p.error != NULL ? p.error : "query: parse error");
        goto out;
    }
    root = simplify(root);
    q = g_new0(struct qry, 1);
    q->where = g_string_new(NULL);
    q->params = g_ptr_array_new_with_free_func(param_free);
    emit(root, q);
    *q_r = q;
    ret = 0;
out:
    token_clear(&p.tok);
    g_ptr_array_free(p.nodes, TRUE);
    g_free(p.error);
    return ret;
}

void qry_free(struct qry **q)
{
    if (q == NULL || *q == NULL)
        return;
    g_string_free((*q)->where, TRUE);
    g_ptr_array_free((*q)->params, TRUE);
    g_free(*q);
    *q = NULL;
}

int qry_bind(const struct qry *q, struct sqlite3_stmt *stmt, int first)
{
    int i = first;

    for (guint k = 0; k < q->params->len; k++, i++) {
        const struct qry_param *qp = q->params->pdata[k];
        int rc;
        gsize len;
        const void *data;

        switch (qp->type) {
        case QRY_TEXT:
            rc = sqlite3_bind_text(stmt, i, qp->text, -1, SQLITE_TRANSIENT);
            break;
        case QRY_INT:
            rc = sqlite3_bind_int64(stmt, i, qp->num);
            break;
        default:
            data = g_bytes_get_data(qp->blob, &len);
            rc = sqlite3_bind_blob(stmt, i, data, (int)len, SQLITE_TRANSIENT);
            break;
        }
        if (rc != SQLITE_OK)
            return -1;
    }
    return i;
}
