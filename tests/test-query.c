/*
 * test-query.c - the query language: SQL shapes and errors, then end to end
 *
 * The end-to-end table runs every query against a small in-memory index
 * built by hand with the schema of index.h and the custos tokenizer.
 */
#include <string.h>
#include <sqlite3.h>

#include "cutest.h"
#include "custos/query.h"
#include "custos/tok.h"

#define FTS_IN "m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"

/* ---- shapes ----------------------------------------------------------- */

static const struct {
    const char *q;
    const char *where;      /* exact WHERE text, or NULL */
    const char *param0;     /* first parameter as text, or NULL */
} shape_cases[] = {
    { "", "1", NULL },
    { "  \t ", "1", NULL },
    { "*", "1", NULL },
    { "!!!", "1", NULL },                           /* ignored term */
    { "- — 😀", "1", NULL },
    { "foo", FTS_IN, "(\"foo\")" },
    { "foo bar", FTS_IN, "((\"foo\") AND (\"bar\"))" },
    { "foo !!! bar", FTS_IN, "((\"foo\") AND (\"bar\"))" },
    { "foo OR !!!", FTS_IN, "(\"foo\")" },
    { "foo -!!!", FTS_IN, "(\"foo\")" },
    { "foo OR bar baz", FTS_IN, "((\"foo\") OR ((\"bar\") AND (\"baz\")))" },
    { "foo -bar -baz", FTS_IN, "((\"foo\") NOT ((\"bar\") OR (\"baz\")))" },
    { "foo bar -baz", FTS_IN, "(((\"foo\") AND (\"bar\")) NOT (\"baz\"))" },
    { "(a (b (c d)))", FTS_IN, "((\"a\") AND (\"b\") AND (\"c\") AND (\"d\"))" },
    { "a OR (b OR (c OR d))", FTS_IN, "((\"a\") OR (\"b\") OR (\"c\") OR (\"d\"))" },
    { "NOT NOT NOT a", "NOT (" FTS_IN ")", "(\"a\")" },
    { "foo or bar", FTS_IN, "((\"foo\") AND (\"or\") AND (\"bar\"))" },
    { "-NOT", "NOT (" FTS_IN ")", "(\"NOT\")" },
    { "rep*", FTS_IN, "(\"rep\"*)" },
    { "\"quarterly report\"*", FTS_IN, "(\"quarterly report\"*)" },
    { "客", FTS_IN, "(\"客\"*)" },
    { "客户", FTS_IN, "(\"客户\")" },
    { "2024年", FTS_IN, "(\"2024年\"*)" },
    { "subject:\"quarterly report\"", FTS_IN, "(subject : \"quarterly report\")" },
    { "Subject:Q3", FTS_IN, "(subject : \"Q3\")" },
    { "body:客", FTS_IN, "(body : \"客\"*)" },
    { "attachment:report.xlsx", FTS_IN, "(attname : \"report.xlsx\")" },
    { "\"a OR b NEAR(c)\"", FTS_IN, "(\"a OR b NEAR(c)\")" },
    { "NEAR(a b)", FTS_IN, "((\"NEAR\") AND (\"a\") AND (\"b\"))" },
    { "10:30", FTS_IN, "(\"10:30\")" },
    { "http://example.com/x", FTS_IN, "(\"http://example.com/x\")" },
    { "Re:", FTS_IN, "(\"Re:\")" },
    { "'; DROP TABLE messages; --", FTS_IN, "((\"DROP\") AND (\"TABLE\") AND "
      "(\"messages;\"))" },
    { "from:Alice@Example.COM", "(m.id IN (SELECT msg FROM addrs WHERE role = 0 "
      "AND addr = ?))", "alice@example.com" },
    { "to:a%b_c", NULL, "%a\\%b\\_c%" },
    { "cc:@corp.example.com", NULL, "%@corp.example.com" },
    { "has:attachment", "(m.n_att > 0)", NULL },
    { "id:42", "(m.id = ?)", "42" },
    { "msgid:<a@b>", "(m.message_id = ?)", "a@b" },
    { "sha256:0123456789abcdef", "(m.sha256 BETWEEN ? AND ?)", "<blob>" },
    { "foo from:bob", "(" FTS_IN " AND (m.id IN (SELECT msg FROM addrs WHERE "
      "role = 0 AND (addr LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\'))))",
      "(\"foo\")" },
    { "foo -from:bob", NULL, "(\"foo\")" },
    { "foo OR from:bob bar", NULL, "(\"foo\")" },
    /* the directory: looked up inside the SQL, values bound */
    { "employee:Bob@Corp.Example.COM", "(m.id IN (WITH e(a) AS (SELECT address FROM "
      "employees WHERE address = ? UNION SELECT employee FROM employee_personal WHERE "
      "addr = ?), x(a) AS (SELECT a FROM e UNION SELECT addr FROM employee_personal "
      "WHERE employee IN e) SELECT msg FROM addrs WHERE addr IN x UNION SELECT msg FROM "
      "rcpts WHERE addr IN x))", "bob@corp.example.com" },
    { "employee:\"Alice Smith\"", NULL, "Alice Smith" },
    { "employee:a_b*", NULL, "a\\_b%" },
    { "department:Sales", NULL, "Sales" },
    { "customer:@Acme.COM", NULL, "Acme.COM" },
    { "customer:buyer@Acme.com", NULL, "buyer@acme.com" },
    { "customer:\"'; DROP TABLE customers; --\"", NULL, "'; DROP TABLE customers; --" },
    /* incidents and the spool id */
    { "flagged:Departed-Sender", "(m.id IN (SELECT msg FROM incidents WHERE category = ?))",
      "departed-sender" },
    { "flagged:any", "(m.id IN (SELECT msg FROM incidents))", NULL },
    { "flagged:*", "(m.id IN (SELECT msg FROM incidents))", NULL },
    { "flagged:cust*", "(m.id IN (SELECT msg FROM incidents WHERE category >= ? AND "
      "category < ?))", "cust" },
    { "spool:1764556800.000001.4242.0123456789abcdef", "(m.id IN (SELECT msg FROM deliveries "
      "WHERE spool_id = ?))", "1764556800.000001.4242.0123456789abcdef" },
};

static char *param_str(const struct qry *q, guint i)
{
    const struct qry_param *p;

    if (i >= q->params->len)
        return NULL;
    p = q->params->pdata[i];
    if (p->type == QRY_TEXT)
        return g_strdup(p->text);
    if (p->type == QRY_INT)
        return g_strdup_printf("%" G_GINT64_FORMAT, p->num);
    return g_strdup("<blob>");
}

static void test_query_shapes(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(shape_cases); i++) {
        struct qry *q = NULL;
        char *err = NULL, *p0;

        if (qry_compile(shape_cases[i].q, &q, &err) < 0) {
            fprintf(stderr, "\n%s: %s\n", shape_cases[i].q, err);
            CU_FAIL("qry_compile failed");
            g_free(err);
            continue;
        }
        p0 = param_str(q, 0);
        if ((shape_cases[i].where != NULL &&
             strcmp(q->where->str, shape_cases[i].where) != 0) ||
            g_strcmp0(p0, shape_cases[i].param0) != 0)
            fprintf(stderr, "\n%s -> [%s] [%s]\n", shape_cases[i].q, q->where->str,
                    p0 ? p0 : "(none)");
        if (shape_cases[i].where != NULL)
            CU_ASSERT_STRING_EQUAL(q->where->str, shape_cases[i].where);
        CU_ASSERT_EQUAL(g_strcmp0(p0, shape_cases[i].param0), 0);
        /* as many placeholders as parameters; nothing of the query in SQL */
        int marks = 0;
        for (const char *s = q->where->str; *s; s++)
            marks += *s == '?';
        CU_ASSERT_EQUAL(marks, (int)q->params->len);
        CU_ASSERT_PTR_NULL(strstr(q->where->str, "DROP"));
        g_free(p0);
        qry_free(&q);
        CU_ASSERT_PTR_NULL(q);
    }
}

/* ---- errors ------------------------------------------------------------- */

static const struct {
    const char *q;
    const char *error;      /* the whole message, or its start */
} error_cases[] = {
    { "foo:bar", "query: column 1: unknown field 'foo'" },
    { "a flagged:x!y", "query: column 11: flagged: 'x!y' is not a category" },
    { "spool:1764556800.1.4242.0123456789abcdef", "query: column 7: spool: "
      "'1764556800.1.4242.0123456789abcdef' is not a spool id" },
    { "spool:1764556800.000001.4242.0123456789abcdef*", "query: column 7: spool: " },
    { "a foo:\"bar\"", "query: column 3: unknown field 'foo'" },
    { "(a b", "query: column 1: unbalanced parenthesis" },
    { "a b)", "query: column 4: unbalanced parenthesis" },
    { "a (b (c) d", "query: column 3: unbalanced parenthesis" },
    { ")", "query: column 1: unbalanced parenthesis" },
    { "(", "query: column 1: unbalanced parenthesis" },
    { "a ()", "query: column 3: empty parentheses" },
    { "\"abc", "query: column 1: missing closing quote" },
    { "客户 \"abc", "query: column 4: missing closing quote" },  /* chars */
    { "from:\"张 三", "query: column 6: missing closing quote" },
    { "OR a", "query: column 1: OR needs a term on both sides" },
    { "a OR", "query: column 3: OR needs a term on both sides" },
    { "a OR OR b", "query: column 3: OR needs a term on both sides" },
    { "(a OR) b", "query: column 4: OR needs a term on both sides" },
    { "AND a", "query: column 1: AND needs a term on both sides" },
    { "a AND", "query: column 3: AND needs a term on both sides" },
    { "a AND OR b", "query: column 3: AND needs a term on both sides" },
    { "NOT", "query: column 1: NOT needs a term after it" },
    { "a NOT", "query: column 3: NOT needs a term after it" },
    { "a NOT OR b", "query: column 3: NOT needs a term after it" },
    { "subject:", "query: column 1: subject: needs a value" },
    { "after:2024-13-01", "query: column 7: after: bad date" },
    { "客户 before:2024-02-30", "query: column 11: before: bad date" },
    { "date:24", "query: column 6: date: bad date" },
    { "date:2024-1-1x", "query: column 6: date: bad date" },
    { "date:2024..2024-99", "query: column 12: date: bad date" },
    { "date:..", "query: column 6: date: needs a date" },
    { "sha256:xyz12345", "query: column 8: sha256: not a hex digit" },
    { "sha256:1234567g", "query: column 15: sha256: not a hex digit" },
    { "sha256:abc", "query: column 8: sha256: needs 8 to 64 hex digits" },
    { "id:abc", "query: column 4: id: needs a positive number" },
    { "id:0", "query: column 4: id: needs a positive number" },
    { "has:pictures", "query: column 5: has: unknown value" },
    { "msgid:<>", "query: column 7: msgid: needs a Message-ID" },
    { "domain:@", "query: column 8: domain: needs a domain name" },
    { "ok \xff", "query: column 4: invalid UTF-8" },
    { "employee:", "query: column 1: employee: needs a value" },
    { "a customer:\"\"", "query: column 3: customer: needs a value" },
    { "department:", "query: column 1: department: needs a value" },
    { "employees:x", "query: column 1: unknown field 'employees'" },
};

static void check_error(const char *query, const char *want)
{
    struct qry *q = NULL;
    char *err = NULL;
    int rc = qry_compile(query, &q, &err);

    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NULL(q);
    if (rc == 0) {
        fprintf(stderr, "\n%.60s: compiled to %s\n", query, q->where->str);
        qry_free(&q);
        return;
    }
    if (err == NULL || strncmp(err, want, strlen(want)) != 0)
        fprintf(stderr, "\n%.60s: [%s], want [%s]\n", query, err, want);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
    g_free(err);
}

static void test_query_errors(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(error_cases); i++)
        check_error(error_cases[i].q, error_cases[i].error);
}

static char *repeat(const char *s, int n, const char *mid, const char *post)
{
    GString *g = g_string_new(NULL);

    for (int i = 0; i < n; i++)
        g_string_append(g, s);
    g_string_append(g, mid);
    for (int i = 0; i < n && post != NULL; i++)
        g_string_append(g, post);
    return g_string_free(g, FALSE);
}

static void test_query_limits(void)
{
    struct qry *q = NULL;
    char *err = NULL, *s;

    char want[64];

    s = repeat("(", QRY_MAX_DEPTH, "a", ")");       /* deep but allowed */
    CU_ASSERT_EQUAL(qry_compile(s, &q, &err), 0);
    qry_free(&q);
    g_free(s);
    g_snprintf(want, sizeof(want), "query: column %d: nested too deeply",
               QRY_MAX_DEPTH + 1);
    s = repeat("(", QRY_MAX_DEPTH + 1, "a", ")");
    check_error(s, want);
    g_free(s);
    s = repeat("(", 2000, "a", ")");
    check_error(s, want);
    g_free(s);
    s = repeat("-", 1000, "a", NULL);
    check_error(s, want);
    g_free(s);
    s = repeat("NOT ", 1000, "a", NULL);
    g_snprintf(want, sizeof(want), "query: column %d: nested too deeply",
               4 * QRY_MAX_DEPTH + 1);
    check_error(s, want);
    g_free(s);
    s = repeat("a ", 256, "", NULL);                /* 256 terms: allowed */
    CU_ASSERT_EQUAL(qry_compile(s, &q, &err), 0);
    qry_free(&q);
    g_free(s);
    s = repeat("a ", 257, "", NULL);
    check_error(s, "query: column 513: too many terms");
    g_free(s);
    s = repeat("a", 4097, "", NULL);
    check_error(s, "query: too long");
    g_free(s);
    s = repeat("客", 1365, "", NULL);               /* 4095 bytes */
    CU_ASSERT_EQUAL(qry_compile(s, &q, &err), 0);
    qry_free(&q);
    g_free(s);
    CU_ASSERT_EQUAL(qry_compile(NULL, &q, &err), 0);   /* NULL: match all */
    CU_ASSERT_STRING_EQUAL(q->where->str, "1");
    qry_free(&q);
    qry_free(&q);                                   /* twice is fine */
}

/* ---- end to end ----------------------------------------------------------- */

static const char schema[] =
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE,"
    " segment INTEGER, offset INTEGER, length INTEGER, raw_size INTEGER NOT NULL,"
    " date INTEGER NOT NULL, message_id TEXT NOT NULL, subject TEXT NOT NULL,"
    " n_att INTEGER NOT NULL, limits TEXT NOT NULL, added INTEGER NOT NULL);"
    "CREATE TABLE addrs(msg INTEGER NOT NULL REFERENCES messages(id),"
    " role INTEGER NOT NULL, name TEXT NOT NULL, addr TEXT NOT NULL,"
    " domain TEXT NOT NULL);"
    "CREATE TABLE attachments(msg INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT,"
    " type TEXT, path TEXT, size INTEGER, sha256 TEXT, depth INTEGER);"
    "CREATE TABLE deliveries(id INTEGER PRIMARY KEY, msg INTEGER NOT NULL,"
    " time INTEGER NOT NULL, sender TEXT NOT NULL, client TEXT NOT NULL,"
    " queue_id TEXT NOT NULL, source TEXT NOT NULL, segment INTEGER,"
    " offset INTEGER, length INTEGER, spool_id TEXT UNIQUE);"
    "CREATE TABLE incidents(seq INTEGER PRIMARY KEY, msg INTEGER NOT NULL,"
    " time INTEGER NOT NULL, category TEXT NOT NULL);"   /* schema v4, in part */
    "CREATE TABLE rcpts(delivery INTEGER NOT NULL, msg INTEGER NOT NULL,"
    " addr TEXT NOT NULL, domain TEXT NOT NULL);"
    "CREATE VIRTUAL TABLE fts USING fts5(subject, body, attname, atttext,"
    " content='', tokenize='custos');"
    "CREATE INDEX addrs_addr ON addrs(addr);"
    "CREATE INDEX rcpts_addr ON rcpts(addr);"
    /* the directory (index.h, schema v3) */
    "CREATE TABLE employees(address TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " department TEXT NOT NULL, status TEXT NOT NULL, departed TEXT NOT NULL,"
    " successor TEXT NOT NULL, manager TEXT NOT NULL, mobile TEXT NOT NULL,"
    " updated INTEGER NOT NULL);"
    "CREATE TABLE employee_personal(employee TEXT NOT NULL, addr TEXT NOT NULL,"
    " PRIMARY KEY (employee, addr));"
    "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " owner TEXT NOT NULL, source TEXT NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE customer_domains(domain TEXT PRIMARY KEY, customer INTEGER NOT NULL);"
    "CREATE TABLE customer_contacts(addr TEXT PRIMARY KEY, customer INTEGER NOT NULL);"
    "INSERT INTO employees VALUES ('alice@example.com', 'Alice Smith', 'sales', 'active',"
    " '', '', '', '', 0), ('bob@corp.example.com', 'Bob Jones', 'engineering', 'active',"
    " '', '', '', '', 0), ('zhangsan@example.cn', '张三', 'sales', 'departed',"
    " '2024-01-31', 'alice@example.com', '', '', 0);"
    "INSERT INTO employee_personal VALUES ('alice@example.com', 'eve@example.com');"
    "INSERT INTO customers VALUES (1, 'Other Org', '', 'import', 0),"
    " (2, 'Evil Test', 'bob@corp.example.com', 'learn', 0), (3, '客户甲', '', 'import', 0);"
    "INSERT INTO customer_domains VALUES ('other.org', 1), ('evil.test', 2),"
    " ('sub.example.cn', 3);"
    "INSERT INTO customer_contacts VALUES ('replies@lists.example.net', 2);";

struct tmsg {
    gint64 id;
    const char *date;       /* "YYYY-MM-DD HH:MM:SS" UTC, NULL: 0 */
    const char *msgid, *subject, *body, *attname, *atttext;
    const char *addrs;      /* "role|name|addr;..." */
    const char *sender;     /* envelope sender */
    const char *rcpts;      /* "a;b;..." */
};

/* sha256 of message i is 32 bytes of i * 0x11. */
static const struct tmsg tmsgs[] = {
    { 1, "2024-05-02 10:00:00", "a1@example.com", "Q3 sales report",
      "Please find the Q3 report attached. 请把客户资料发我",
      "report.xlsx", "revenue table",
      "0|Alice Smith|alice@example.com;1||bob@corp.example.com;2||carol@other.org",
      "alice@example.com",
      "bob@corp.example.com;carol@other.org;dave@corp.example.com" },
    { 2, "2024-06-15 12:00:00", "lunch-2@corp.example.com", "Lunch",
      "Café at noon? naïve question", "", "",
      "0|Bob Jones|bob@corp.example.com;1||alice@example.com",
      "bob@corp.example.com", "alice@example.com" },
    { 3, "2023-12-31 23:59:59", "zs3@example.cn", "客户名单",
      "张三发来的客户名单，请查收。", "名单.xlsx", "客户 电话",
      "0|张三|zhangsan@example.cn;1||alice@example.com",
      "zhangsan@example.cn", "alice@example.com;eve@example.com" },
    { 4, "2024-01-01 00:00:00", "b4@other.org", "Re: budget 10:30",
      "Meeting at 10:30 about the ＡＢＣ budget. See http://example.com/x", "", "",
      "0||carol@other.org;1||bob@corp.example.com;2||alice@example.com;"
      "3||replies@lists.example.net",
      "carol@other.org", "bob@corp.example.com;alice@example.com" },
    { 5, "2024-05-31 23:59:59", "m5@evil.test", "100% discount_code",
      "use code a_b now", "", "",
      "0|Mallory|mallory@evil.test;1||bob@corp.example.com",
      "bounce@mail.evil.test", "bob@corp.example.com" },
    { 6, NULL, "", "Quarterly", "客人来了 我们的客户很满意", "", "",
      "0||alice@example.com;1|王五|wangwu@sub.example.cn",
      "", "" },
};

static gint64 utc(const char *s)
{
    int y, mo, d, h, mi, se;
    GDateTime *dt;
    gint64 t;

    if (s == NULL)
        return 0;
    CU_ASSERT_EQUAL_FATAL(sscanf(s, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &se), 6);
    dt = g_date_time_new_utc(y, mo, d, h, mi, se);
    t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return t;
}

static void exec_bind(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;

    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    va_start(ap, fmt);
    for (int i = 0; fmt[i] != '\0'; i++) {
        if (fmt[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, gint64));
        else if (fmt[i] == 's')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else {
            const void *b = va_arg(ap, const void *);
            sqlite3_bind_blob(st, i + 1, b, 32, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at != NULL ? at + 1 : "";
}

static sqlite3 *make_db(void)
{
    sqlite3 *db = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_open(":memory:", &db), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(tok_register(db, &err), 0);
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, schema, NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < G_N_ELEMENTS(tmsgs); i++) {
        const struct tmsg *m = &tmsgs[i];
        unsigned char sha[32];
        char **parts;

        memset(sha, (int)(m->id * 0x11), sizeof(sha));
        exec_bind(db, "INSERT INTO messages(id, sha256, raw_size, date, message_id, "
                  "subject, n_att, limits, added) VALUES (?, ?, 100, ?, ?, ?, ?, '', 0)",
                  "ibissi", m->id, sha, utc(m->date), m->msgid, m->subject,
                  (gint64)(m->attname[0] != '\0'));
        exec_bind(db, "INSERT INTO fts(rowid, subject, body, attname, atttext) "
                  "VALUES (?, ?, ?, ?, ?)", "issss", m->id, m->subject, m->body,
                  m->attname, m->atttext);
        if (m->attname[0] != '\0')
            exec_bind(db, "INSERT INTO attachments(msg, seq, name, depth) "
                      "VALUES (?, 1, ?, 1)", "is", m->id, m->attname);
        parts = g_strsplit(m->addrs, ";", -1);
        for (int k = 0; parts[k] != NULL; k++) {
            char **f = g_strsplit(parts[k], "|", 3);
            exec_bind(db, "INSERT INTO addrs(msg, role, name, addr, domain) "
                      "VALUES (?, ?, ?, ?, ?)", "iisss", m->id,
                      (gint64)atoi(f[0]), f[1], f[2], domain_of(f[2]));
            g_strfreev(f);
        }
        g_strfreev(parts);
        if (m->sender[0] == '\0')
            continue;
        exec_bind(db, "INSERT INTO deliveries(id, msg, time, sender, client, "
                  "queue_id, source) VALUES (?, ?, 0, ?, '', '', 'test')", "iis",
                  m->id, m->id, m->sender);
        parts = g_strsplit(m->rcpts, ";", -1);
        for (int k = 0; parts[k] != NULL; k++)
            exec_bind(db, "INSERT INTO rcpts(delivery, msg, addr, domain) "
                      "VALUES (?, ?, ?, ?)", "iiss", m->id, m->id, parts[k],
                      domain_of(parts[k]));
        g_strfreev(parts);
    }
    return db;
}

static const struct {
    const char *q;
    const char *ids;
} e2e_cases[] = {
    /* everything */
    { "", "1 2 3 4 5 6" },
    { "*", "1 2 3 4 5 6" },
    { "!!!", "1 2 3 4 5 6" },
    /* full text, any script */
    { "report", "1" },
    { "REPORT", "1" },
    { "Q3", "1" },
    { "ｑ３", "1" },
    { "q3 report", "1" },
    { "\"Q3 report\"", "1" },
    { "\"report Q3\"", "" },
    { "rep*", "1" },
    { "\"quarter\"*", "6" },
    { "report !!!", "1" },
    { "客户", "1 3 6" },
    { "客", "1 3 6" },
    { "我", "1 6" },
    { "意", "6" },
    { "满意", "6" },
    { "资料发", "1" },
    { "客户 资料", "1" },
    { "\"客户资料\"", "1" },
    { "客户名单", "3" },
    { "客户满", "" },
    { "cafe", "2" },
    { "Café", "2" },
    { "CAFÉ", "2" },
    { "naive", "2" },
    { "abc", "4" },
    { "ＡＢＣ", "4" },
    { "10:30", "4" },
    { "Re:", "4" },
    { "http://example.com/x", "4" },
    { "discount_code", "5" },
    { "100%", "5" },
    { "a_b", "5" },
    { "revenue", "1" },
    { "cafe or noon", "" },                     /* lower-case or is a word */
    /* columns */
    { "subject:客户", "3" },
    { "body:客户", "1 3 6" },
    { "subject:report", "1" },
    { "subject:\"sales report\"", "1" },
    { "body:lunch", "" },
    { "attachment:report", "1" },
    { "attachment:名单", "3" },
    { "attachment:名", "3" },
    { "attachment:revenue", "" },
    /* addresses */
    { "from:alice", "1 6" },
    { "from:ALICE", "1 6" },
    { "from:smith", "1" },
    { "from:alice@example.com", "1 6" },
    { "from:ALICE@EXAMPLE.COM", "1 6" },
    { "from:\"Alice Smith\"", "1" },
    { "from:张三", "3" },
    { "from:张", "3" },
    { "from:@example.com", "1 6" },
    { "from:@corp.example.com", "2" },
    { "from:a_ice", "" },                       /* _ is no wildcard */
    { "from:%", "" },
    { "from:ali*", "1 6" },
    { "to:bob", "1 4 5" },
    { "to:王五", "6" },
    { "cc:alice", "4" },
    { "cc:carol@other.org", "1" },
    { "bcc:dave", "1" },
    { "bcc:dave@corp.example.com", "1" },
    { "bcc:eve@example.com", "3" },
    { "bcc:bob", "" },
    { "bcc:alice", "" },
    { "participant:dave", "1" },
    { "participant:replies@lists.example.net", "4" },
    { "participant:bounce@mail.evil.test", "5" },
    { "participant:BOUNCE", "5" },
    { "participant:zhangsan", "3" },
    { "participant:王五", "6" },
    { "domain:corp.example.com", "1 2 4 5" },
    { "domain:other.org", "1 4" },
    { "domain:@other.org", "1 4" },
    { "domain:OTHER.ORG", "1 4" },
    { "domain:evil.test", "5" },
    { "domain:mail.evil.test", "5" },
    { "domain:example.cn", "3 6" },
    { "domain:ample.cn", "" },
    { "domain:lists.example.net", "4" },
    { "domain:example.net", "4" },
    /* the rest */
    { "has:attachment", "1 3" },
    { "-has:attachment", "2 4 5 6" },
    { "after:2024-05-01", "1 2 5" },
    { "after:2024-05-02", "1 2 5" },
    { "after:2024-05-03", "2 5" },
    { "before:2024", "3" },          /* 6 has no Date: (0): never before anything */
    { "after:2024 before:2024-02", "4" },
    { "date:2024-05", "1 5" },
    { "date:2024/05/31", "5" },
    { "date:2023", "3" },
    { "date:2024-01-01", "4" },
    { "date:2023..2024-01", "3 4" },
    { "date:2024-06..", "2" },
    { "date:..2023", "3" },
    { "id:3", "3" },
    { "id:99", "" },
    { "id:3 OR id:5", "3 5" },
    { "msgid:<a1@example.com>", "1" },
    { "msgid:lunch-2@corp.example.com", "2" },
    { "sha256:2222222222222222222222222222222222222222222222222222222222222222", "2" },
    { "sha256:11111111", "1" },
    { "sha256:333333333", "3" },
    { "sha256:4444444444444444444444444444444444444444444444444444444444444", "4" },
    { "sha256:ABABABAB", "" },
    { "sha256:5555555555555555555555555555555555555555555555555555555555555554", "" },
    /* boolean */
    { "report OR cafe", "1 2" },
    { "客户 -资料", "3 6" },
    { "客户 NOT 资料", "3 6" },
    { "-客户", "2 4 5" },
    { "NOT 客户 NOT cafe", "4 5" },
    { "NOT NOT cafe", "2" },
    { "--cafe", "2" },
    { "(report OR cafe) from:alice", "1" },
    { "(report OR cafe) -from:alice", "2" },
    { "from:alice OR from:bob", "1 2 6" },
    { "report OR from:bob", "1 2" },
    { "客户 (from:张三 OR id:6)", "3 6" },
    { "cafe OR report q3", "1 2" },
    { "cafe OR report -q3", "2" },
    { "(cafe OR report) -q3", "2" },
    { "NOT (report OR cafe)", "3 4 5 6" },
    { "-(report OR cafe) -客户", "4 5" },
    { "-report -from:bob", "3 4 5 6" },
    { "((((客户))))", "1 3 6" },
    { "客户 AND has:attachment AND -date:2023", "1" },
    { "-!!! report", "1" },
    { "* report", "1" },
    /* the directory: employees with their personal addresses (eve is
     * alice's), customers with domains and contacts, departments */
    { "employee:alice@example.com", "1 2 3 4 6" },
    { "employee:ALICE@EXAMPLE.COM", "1 2 3 4 6" },
    { "employee:eve@example.com", "1 2 3 4 6" },
    { "employee:\"alice smith\"", "1 2 3 4 6" },
    { "employee:alice", "1 2 3 4 6" },
    { "employee:ali*", "1 2 3 4 6" },
    { "employee:smith", "" },
    { "employee:bob@corp.example.com", "1 2 4 5" },
    { "employee:张三", "3" },
    { "employee:张*", "3" },
    { "employee:carol@other.org", "" },
    { "employee:nobody", "" },
    { "department:sales", "1 2 3 4 6" },
    { "department:SALES", "1 2 3 4 6" },
    { "department:engineering", "1 2 4 5" },
    { "department:eng*", "1 2 4 5" },
    { "department:legal", "" },
    { "customer:other.org", "1 4" },
    { "customer:@OTHER.ORG", "1 4" },
    { "customer:\"other org\"", "1 4" },
    { "customer:Other*", "1 4" },
    { "customer:evil.test", "4 5" },
    { "customer:\"Evil Test\"", "4 5" },
    { "customer:replies@lists.example.net", "4 5" },
    { "customer:mallory@evil.test", "" },       /* an address, but no contact */
    { "customer:客户甲", "6" },
    { "customer:sub*", "6" },
    { "customer:example.cn", "" },              /* domains are exact */
    { "customer:nobody", "" },
    { "employee:alice -customer:other.org", "2 3 6" },
    { "department:sales OR customer:evil.test", "1 2 3 4 5 6" },
    { "customer:other.org has:attachment", "1" },
    { "report employee:bob", "1" },
    { "-department:sales", "5" },
};

static char *run_query(sqlite3 *db, const char *query)
{
    struct qry *q = NULL;
    sqlite3_stmt *st = NULL;
    char *err = NULL, *sql;
    GString *ids = g_string_new(NULL);
    int rc;

    if (qry_compile(query, &q, &err) < 0) {
        g_string_printf(ids, "error: %s", err);
        g_free(err);
        return g_string_free(ids, FALSE);
    }
    sql = g_strdup_printf("SELECT m.id FROM messages m WHERE %s ORDER BY m.id",
                          q->where->str);
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        g_string_printf(ids, "prepare: %s: %s", sqlite3_errmsg(db), sql);
        goto out;
    }
    CU_ASSERT_EQUAL(qry_bind(q, st, 1), (int)q->params->len + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_string_append_printf(ids, "%s%lld", ids->len ? " " : "",
                               (long long)sqlite3_column_int64(st, 0));
    if (rc != SQLITE_DONE)
        g_string_printf(ids, "step: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    g_free(sql);
    qry_free(&q);
    return g_string_free(ids, FALSE);
}

/* Nesting patterns, each level a pair of words: "%d" is the level; the
 * pattern is repeated until depth levels of nesting, then closed. */
static const char *const deep_cases[] = {
    "(w%d OR (w%d ", "(id:%d OR (from:x%d ", "(w%d OR -(w%d ",
    "(id:%d OR -(id:%d ", "(w%d OR -(id:%d ", "-(w%d OR -(w%d ",
    "(participant:x%d OR -(domain:x%d.org ", "(w%d -(w%d OR ",
    "(id:%d -(from:x%d OR ",
};

/* A query of nested alternating AND/OR (and NOT) groups, using at most
 * depth levels of the parser's depth count. */
static char *deep_query(const char *pattern, int depth)
{
    GString *s = g_string_new(NULL);
    int level = 1, opened = 0, d = 0, cost = 0, parens = 0;

    for (const char *c = pattern; *c != '\0'; c++) {
        cost += *c == '(' || *c == '-';
        parens += *c == '(';
    }
    for (; d + cost <= depth; d += cost, opened += parens, level += 2)
        g_string_append_printf(s, pattern, level, level + 1);
    g_string_append(s, "last");
    while (opened-- > 0)
        g_string_append_c(s, ')');
    return g_string_free(s, FALSE);
}

static void test_query_e2e(void)
{
    sqlite3 *db = make_db();

    for (size_t i = 0; i < G_N_ELEMENTS(e2e_cases); i++) {
        char *got = run_query(db, e2e_cases[i].q);
        if (strcmp(got, e2e_cases[i].ids) != 0)
            fprintf(stderr, "\n%s -> [%s], want [%s]\n", e2e_cases[i].q, got,
                    e2e_cases[i].ids);
        CU_ASSERT_STRING_EQUAL(got, e2e_cases[i].ids);
        g_free(got);
    }
    /* the longest NOT chain still parses (FTS5 and SQL parsers have small
     * fixed stacks), and so does the deepest nesting allowed */
    GString *chain = g_string_new("report");
    for (int i = 1; i < QRY_MAX_TERMS; i++)
        g_string_append_printf(chain, " -zz%d", i);
    char *got = run_query(db, chain->str);
    CU_ASSERT_STRING_EQUAL(got, "1");
    g_free(got);
    g_string_free(chain, TRUE);
    for (size_t i = 0; i < G_N_ELEMENTS(deep_cases); i++) {
        char *q = deep_query(deep_cases[i], QRY_MAX_DEPTH);
        got = run_query(db, q);
        if (strncmp(got, "prepare", 7) == 0 || strncmp(got, "step", 4) == 0 ||
            strncmp(got, "error", 5) == 0)
            fprintf(stderr, "\n%s -> %.200s\n", q, got);
        CU_ASSERT(strncmp(got, "prepare", 7) != 0 && strncmp(got, "step", 4) != 0 &&
                  strncmp(got, "error", 5) != 0);
        g_free(got);
        g_free(q);
        q = deep_query(deep_cases[i], QRY_MAX_DEPTH + 4);
        got = run_query(db, q);
        CU_ASSERT(strstr(got, "nested too deeply") != NULL);
        g_free(got);
        g_free(q);
    }
    /* every shape case runs too (valid SQL and FTS5 syntax) */
    for (size_t i = 0; i < G_N_ELEMENTS(shape_cases); i++) {
        char *got = run_query(db, shape_cases[i].q);
        if (strncmp(got, "prepare", 7) == 0 || strncmp(got, "step", 4) == 0 ||
            strncmp(got, "error", 5) == 0)
            fprintf(stderr, "\n%s -> %s\n", shape_cases[i].q, got);
        CU_ASSERT(strncmp(got, "prepare", 7) != 0 && strncmp(got, "step", 4) != 0 &&
                  strncmp(got, "error", 5) != 0);
        g_free(got);
    }
    sqlite3_close(db);
}

/* Random queries from a vocabulary: never crash, always valid SQL. */
static void test_query_random(void)
{
    static const char *const words[] = {
        "a", "客户", "客", "(", ")", "\"", "OR", "AND", "NOT", "-", "*", "from:",
        "from:al", "domain:x.org", "date:2024", "sha256:", "foo:bar", "!!!", "'",
        "\\", "%", "_", "NEAR(", "subject:", "\"x y\"", "id:1", "10:30", "ｑ３",
        "body:\"", "-(", "has:attachment", "😀", "\xff", "AND(", ":", "::",
    };
    sqlite3 *db = make_db();
    GRand *r = g_rand_new_with_seed(7);

    for (int round = 0; round < 3000; round++) {
        GString *s = g_string_new(NULL);
        int n = g_rand_int_range(r, 1, 12);
        for (int i = 0; i < n; i++) {
            g_string_append(s, words[g_rand_int_range(r, 0, G_N_ELEMENTS(words))]);
            if (g_rand_boolean(r))
                g_string_append_c(s, ' ');
        }
        char *got = run_query(db, s->str);
        if (strncmp(got, "prepare", 7) == 0 || strncmp(got, "step", 4) == 0)
            fprintf(stderr, "\n%s -> %s\n", s->str, got);
        CU_ASSERT(strncmp(got, "prepare", 7) != 0 && strncmp(got, "step", 4) != 0);
        if (strncmp(got, "error: ", 7) == 0)
            CU_ASSERT(strncmp(got, "error: query: ", 14) == 0);
        g_free(got);
        g_string_free(s, TRUE);
    }
    g_rand_free(r);
    sqlite3_close(db);
}

CUS_SUITE(query)
{
    CU_pSuite s = CU_add_suite("query", NULL, NULL);

    CU_add_test(s, "shapes", test_query_shapes);
    CU_add_test(s, "errors", test_query_errors);
    CU_add_test(s, "limits", test_query_limits);
    CU_add_test(s, "end to end", test_query_e2e);
    CU_add_test(s, "random", test_query_random);
}
