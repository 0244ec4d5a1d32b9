/*
 * test-directory.c - who is who: normalisers, the CSV reader, imports
 * (good, updated and bad files, UTF-8 with and without BOM, GB18030), the
 * lookup API the milter uses, the chain event, learn on a corpus built
 * here, and the query fields employee:, customer:, department:.
 */
#include <string.h>
#include <sqlite3.h>
#include "cutest.h"
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/chain.h"
#include "custos/csv.h"
#include "custos/directory.h"
#include "custos/query.h"

/* ---- normalisers ---------------------------------------------------------- */

struct norm_case {
    const char *in, *out;       /* out NULL: an error starting with err */
    const char *err;
};

static const struct norm_case addr_cases[] = {
    { "Alice@Corp.Example", "alice@corp.example", NULL },
    { "  bob@corp.example\t", "bob@corp.example", NULL },
    { "\xe3\x80\x80" "zoe@corp.example", "zoe@corp.example", NULL },      /* U+3000 */
    { "采购@XingChen.example", "采购@xingchen.example", NULL },
    { "first.last+tag@sub.corp.example", "first.last+tag@sub.corp.example", NULL },
    { "no-at-sign", NULL, "'no-at-sign' is not an address" },
    { "a@b@c.example", NULL, "'a@b@c.example' is not an address" },
    { "@corp.example", NULL, "'@corp.example' is not an address" },
    { "a b@corp.example", NULL, "address 'a b@corp.example' has a space in it" },
    { "a<b>@corp.example", NULL, "address 'a<b>@corp.example': '<' cannot be in it" },
    { "a@localhost", NULL, "address 'a@localhost': the domain has no dot" },
    { "a@corp..example", NULL, "address 'a@corp..example': an empty label in the domain" },
    { "a@corp.example.", NULL, "address 'a@corp.example.': an empty label" },
    { "a@corp!.example", NULL, "address 'a@corp!.example': '!' cannot be in a domain" },
    { "a\x01@corp.example", NULL, "a control character (U+0001)" },
};

static const struct norm_case domain_cases[] = {
    { "@Acme.Example", "acme.example", NULL },
    { "xc-group.example", "xc-group.example", NULL },
    { "星辰.example", "星辰.example", NULL },
    { "acme", NULL, "domain 'acme': the domain has no dot" },
    { "a@acme.example", NULL, "domain 'a@acme.example' has an '@' in it" },
    { "", NULL, "domain '' has no domain" },
};

static const struct norm_case phone_cases[] = {
    { "+86 138-0013-8000", "+8613800138000", NULL },
    { "(010) 6552 1234", "01065521234", NULL },
    { "＋８６ １３９ ０００", "+86139000", NULL },       /* full width */
    { "010.8888/0001", "01088880001", NULL },
    { "12", NULL, "phone '12' has 2 digits (3 to 20)" },
    { "call me", NULL, "phone 'call me': only digits" },
    { "86+123456", NULL, "phone '86+123456': only digits" },
    { "123456789012345678901", NULL, "phone '123456789012345678901' has 21 digits" },
};

static const struct norm_case account_cases[] = {
    { "6222 0202 0000 1234 567", "6222020200001234567", NULL },
    { "de89-3704-0044-0532-0130-00", "DE89370400440532013000", NULL },
    { "１２３４５", "12345", NULL },
    { "123", NULL, "account '123' has 3 digits and letters (4 to 40)" },
    { "1234/5678", NULL, "account '1234/5678': only digits, letters" },
};

static const struct norm_case date_cases[] = {
    { "2024-02-29", "2024-02-29", NULL },
    { " 2024-12-31 ", "2024-12-31", NULL },
    { "2023-02-29", NULL, "'2023-02-29' is not an ISO date" },
    { "2024/5/1", NULL, "'2024/5/1' is not an ISO date" },
    { "2024-5-01", NULL, "'2024-5-01' is not an ISO date" },
    { "0024-05-01", NULL, "'0024-05-01' is not an ISO date" },
};

static const struct norm_case text_cases[] = {
    { "  Wang,  Alice \n Jr ", "Wang, Alice Jr", NULL },
    { "北京\xe3\x80\x80星辰", "北京 星辰", NULL },
    { "", "", NULL },
    { "a\x7f" "b", NULL, "a control character (U+007F)" },
};

static void check_norm(const char *what, int (*fn)(const char *, char **, char **),
                       const struct norm_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *out = NULL, *err = NULL;
        int rc = fn(c[i].in, &out, &err);

        if (c[i].out != NULL) {
            if (rc != 0 || g_strcmp0(out, c[i].out) != 0)
                fprintf(stderr, "\n%s(%s): [%s] [%s], want [%s]\n", what, c[i].in, out, err,
                        c[i].out);
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_STRING_EQUAL(out != NULL ? out : "(null)", c[i].out);
        } else {
            if (rc == 0 || err == NULL || strncmp(err, c[i].err, strlen(c[i].err)) != 0)
                fprintf(stderr, "\n%s(%s): [%s] [%s], want error [%s]\n", what, c[i].in, out,
                        err, c[i].err);
            CU_ASSERT_EQUAL(rc, -1);
            CU_ASSERT_PTR_NULL(out);
            CU_ASSERT(err != NULL && strncmp(err, c[i].err, strlen(c[i].err)) == 0);
        }
        g_free(out);
        g_free(err);
    }
}

static void test_dir_norm(void)
{
    check_norm("addr", dir_norm_addr, addr_cases, G_N_ELEMENTS(addr_cases));
    check_norm("domain", dir_norm_domain, domain_cases, G_N_ELEMENTS(domain_cases));
    check_norm("phone", dir_norm_phone, phone_cases, G_N_ELEMENTS(phone_cases));
    check_norm("account", dir_norm_account, account_cases, G_N_ELEMENTS(account_cases));
    check_norm("date", dir_norm_date, date_cases, G_N_ELEMENTS(date_cases));
    check_norm("text", dir_norm_text, text_cases, G_N_ELEMENTS(text_cases));
}

/* ---- the CSV reader -------------------------------------------------------- */

/* Records as "LINE:f1|f2|...", one a line; a malformed one as "LINE!ERROR";
 * fields with '\n' shown as '/'. */
static char *csv_dump(const char *data, size_t len, const char **enc_r)
{
    GString *s = g_string_new(NULL);
    struct csv *c = NULL;
    GPtrArray *f;
    char *err = NULL;
    int line, rc;

    if (csv_open("t.csv", data, len, &c, &err) < 0) {
        g_string_printf(s, "open!%s", err);
        g_free(err);
        return g_string_free(s, FALSE);
    }
    if (enc_r != NULL)
        *enc_r = csv_encoding(c);
    while ((rc = csv_next(c, &f, &line, &err)) != 0) {
        if (rc < 0) {
            g_string_append_printf(s, "%d!%s\n", line, err);
            g_free(err);
            err = NULL;
            continue;
        }
        g_string_append_printf(s, "%d:", line);
        for (guint i = 0; i < f->len; i++) {
            char *v = g_strdup(f->pdata[i]);
            g_strdelimit(v, "\n", '/');
            g_string_append_printf(s, "%s%s", i ? "|" : "", v);
            g_free(v);
        }
        g_string_append_c(s, '\n');
    }
    csv_free(&c);
    return g_string_free(s, FALSE);
}

static const struct {
    const char *in, *out;
} csv_cases[] = {
    { "a,b,c\n1,2,3\n", "1:a|b|c\n2:1|2|3\n" },
    { "a,b\r\n1,2\r\n", "1:a|b\n2:1|2\n" },
    { "a,b\r1,2", "1:a|b\n2:1|2\n" },                       /* lone CR, no last EOL */
    { "a,,\n,,\n\n\nx", "1:a||\n2:||\n5:x\n" },              /* blank lines skipped */
    { "\"Wang, Alice\",\"say \"\"hi\"\"\",\"\"\n",
      "1:Wang, Alice|say \"hi\"|\n" },
    { "\"two\nlines\",x\r\nnext,y\n", "1:two/lines|x\n3:next|y\n" },
    { "\"crlf\r\ninside\r\n\",x\nnext\n", "1:crlf/inside/|x\n4:next\n" },
    { "ok,1\n\"open,2\nnever closed\n",
      "1:ok|1\n2!t.csv:2: a quote opened on line 2 is never closed\n" },
    { "\"abc\"def,1\nnext,2\n",
      "1!t.csv:1: text after a closing quote (a quote inside a quoted field is written "
      "twice: \"\")\n2:next|2\n" },
    { "ab\"c,1\nnext,2\n",
      "1!t.csv:1: a quote inside an unquoted field (put the field in quotes and write the "
      "quote twice)\n2:next|2\n" },
    { "", "" },
    { "\xef\xbb\xbf" "a,b\n", "1:a|b\n" },                   /* BOM */
    { "客户,电话\n", "1:客户|电话\n" },
};

static void test_dir_csv(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(csv_cases); i++) {
        char *got = csv_dump(csv_cases[i].in, strlen(csv_cases[i].in), NULL);
        const char *want = csv_cases[i].out;

        if (strcmp(got, want) != 0)
            fprintf(stderr, "\ncsv case %zu: [%s], want [%s]\n", i, got, want);
        CU_ASSERT_STRING_EQUAL(got, want);
        g_free(got);
    }
}

static void test_dir_csv_encodings(void)
{
    /* "客户,电话\n" in GB18030, and U+20000 (four bytes in GB18030) */
    static const char gb[] = "\xbf\xcd\xbb\xa7,\xb5\xe7\xbb\xb0\n\x95\x32\x82\x36,x\n";
    static const char gb_bom[] = "\x84\x31\x95\x33" "a,b\n";
    const char *enc = NULL;
    char *got;
    GString *big;

    got = csv_dump(gb, strlen(gb), &enc);
    CU_ASSERT_STRING_EQUAL(got, "1:客户|电话\n2:\xf0\xa0\x80\x80|x\n");
    CU_ASSERT_STRING_EQUAL(enc, "GB18030");
    g_free(got);
    got = csv_dump(gb_bom, strlen(gb_bom), &enc);
    CU_ASSERT_STRING_EQUAL(got, "1:a|b\n");
    CU_ASSERT_STRING_EQUAL(enc, "GB18030");
    g_free(got);
    got = csv_dump("\xef\xbb\xbfx\n", 4, &enc);
    CU_ASSERT_STRING_EQUAL(enc, "UTF-8 with BOM");
    g_free(got);
    got = csv_dump("a\nb,\x80\xff\n", 7, NULL);
    CU_ASSERT(strncmp(got, "open!t.csv:2: neither UTF-8 nor GB18030 (invalid UTF-8 at byte "
                      "offset 4, invalid GB18030 at byte offset 4", 84) == 0);
    g_free(got);
    got = csv_dump("\xff\xfe" "a\0,\0", 6, NULL);
    CU_ASSERT_STRING_EQUAL(got, "open!t.csv: UTF-16 is not read: save the file as CSV in "
                           "UTF-8 (or GB18030)");
    g_free(got);
    got = csv_dump("a,b\nc\0d\n", 8, NULL);
    CU_ASSERT_STRING_EQUAL(got, "open!t.csv:2: a NUL byte (offset 5): not a text file");
    g_free(got);
    /* bounds */
    big = g_string_new("x,\"");
    for (int i = 0; i < CSV_MAX_FIELD + 10; i++)
        g_string_append_c(big, 'a');
    g_string_append(big, "\"\nnext,1\n");
    got = csv_dump(big->str, big->len, NULL);
    CU_ASSERT_STRING_EQUAL(got, "1!t.csv:1: a field longer than 65536 bytes\n2:next|1\n");
    g_free(got);
    g_string_truncate(big, 0);
    for (int i = 0; i < CSV_MAX_FIELDS + 1; i++)
        g_string_append(big, "f,");
    g_string_append(big, "\nnext,1\n");
    got = csv_dump(big->str, big->len, NULL);
    CU_ASSERT_STRING_EQUAL(got, "1!t.csv:1: more than 256 fields\n2:next|1\n");
    g_free(got);
    g_string_free(big, TRUE);
}

/* ---- an archive to work on -------------------------------------------------- */

struct fx {
    char *dir, *conf, *bin, *data;
    struct cfg *cfg;
};

static void fx_init(struct fx *fx)
{
    char *webmail = cut_src("conf/webmail-domains.txt"), *text, *err = NULL;

    fx->dir = cut_tmpdir();
    fx->conf = g_build_filename(fx->dir, "custos.conf", NULL);
    fx->bin = cut_bin("custos-archive");
    fx->data = cut_src("tests/data/directory");
    text = g_strdup_printf("[archive]\ndir = %s/archive\n[directory]\nwebmail_domains = %s\n",
                           fx->dir, webmail);
    g_file_set_contents(fx->conf, text, -1, NULL);
    g_free(text);
    g_free(webmail);
    CU_ASSERT_EQUAL_FATAL(cfg_load(fx->conf, &fx->cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_init(fx->cfg, &err), 0);
}

static void fx_done(struct fx *fx)
{
    cfg_free(&fx->cfg);
    cut_rmtree(fx->dir);
    g_free(fx->dir);
    g_free(fx->conf);
    g_free(fx->bin);
    g_free(fx->data);
}

static int cli(struct fx *fx, char **out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = cut_cli(fx->bin, fx->conf, out, err, ap);
    va_end(ap);
    return rc;
}

static char *data_file(struct fx *fx, const char *name)
{
    return g_build_filename(fx->data, name, NULL);
}

static char *file_sha(const char *path)
{
    char *data = NULL, *hex;
    gsize len = 0;

    g_file_get_contents(path, &data, &len, NULL);
    hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
    g_free(data);
    return hex;
}

/* stderr without the "checkpoint seq ..." line a writer logs at close
 * (the audit entry of the command is sealed into the chain). */
static char *drop_checkpoint_lines(char *e)
{
    GString *s = g_string_new(NULL);
    char **lines = g_strsplit(e != NULL ? e : "", "\n", -1);

    for (int i = 0; lines[i] != NULL; i++)
        if (strstr(lines[i], ": checkpoint seq ") == NULL && *lines[i] != '\0')
            g_string_append_printf(s, "%s\n", lines[i]);
    g_strfreev(lines);
    g_free(e);
    return g_string_free(s, FALSE);
}

/* Import name as list through the command line: exit status; out/err
 * kept when asked for. */
static int import(struct fx *fx, const char *list, const char *name, char **out, char **err)
{
    char *path = data_file(fx, name), *o = NULL, *e = NULL;
    int rc = cli(fx, &o, &e, "directory", "import", list, path, NULL);

    if (out != NULL)
        *out = o;
    else
        g_free(o);
    if (err != NULL)
        *err = drop_checkpoint_lines(e);
    else
        g_free(e);
    g_free(path);
    return rc;
}

/* Every row of an SQL query on index.db as "a|b|c\n". */
static char *db_rows(struct fx *fx, const char *sql)
{
    char *path = g_build_filename(fx->dir, "archive", "index.db", NULL);
    GString *s = g_string_new(NULL);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++)
            g_string_append_printf(s, "%s%s", i ? "|" : "",
                                   sqlite3_column_text(st, i) ? (const char *)
                                   sqlite3_column_text(st, i) : "NULL");
        g_string_append_c(s, '\n');
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    g_free(path);
    return g_string_free(s, FALSE);
}

static void assert_str(const char *what, const char *got, const char *want)
{
    if (g_strcmp0(got, want) != 0)
        fprintf(stderr, "\n%s:\n--- got ---\n%s\n--- want ---\n%s\n", what, got, want);
    CU_ASSERT_STRING_EQUAL(got != NULL ? got : "(null)", want);
}

static const char employees_list[] =
    "address\tname\tdepartment\tstatus\tdeparted\tsuccessor\tmanager\tpersonal_addresses\t"
    "mobile\n"
    "alice@corp.example\tWang, Alice\tsales\tactive\t\t\tboss@corp.example\t"
    "alice.wang@gmail.com;alice@qq.com\t+8613800138000\n"
    "bob@corp.example\tBo Eng\tengineering\tleaving\t2024-06-30\t\tboss@corp.example\t\t"
    "+8613900000000\n"
    "boss@corp.example\tBob Boss\tmanagement\tactive\t\t\t\t\t\n"
    "dave@corp.example\tDave Li\tSales\tactive\t\t\tboss@corp.example\t\t01065521234\n"
    "zoe@corp.example\tZoe Xu\tsales\tdeparted\t2024-02-29\talice@corp.example\t"
    "boss@corp.example\tzoe.xu@163.com\t\n";

/* ---- imports ------------------------------------------------------------------ */

static void test_dir_import_employees(void)
{
    struct fx fx;
    char *out = NULL, *err = NULL, *want, *sha, *path, *got;

    fx_init(&fx);
    /* a first import */
    path = data_file(&fx, "employees.csv");
    sha = file_sha(path);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", &out, &err), 0);
    want = g_strdup_printf("employees: sha256 %s, 5 added, 0 updated, 0 unchanged (%s, UTF-8)\n",
                           sha, path);
    assert_str("import stdout", out, want);
    g_free(want);
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "employees", NULL), 0);
    assert_str("list employees", out, employees_list);
    g_free(out);
    g_free(err);
    /* the same file again: nothing changes */
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ", 0 added, 0 updated, 5 unchanged ("));
    g_free(out);
    g_free(path);
    g_free(sha);

    /* an update: BOM, CRLF, a list in a quoted field over two lines, a doubled
     * quote, a column left out (mobile kept) */
    path = data_file(&fx, "employees-update.csv");
    sha = file_sha(path);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees-update.csv", &out, NULL), 0);
    want = g_strdup_printf("employees: sha256 %s, 1 added, 1 updated, 2 unchanged (%s, "
                           "UTF-8 with BOM)\n", sha, path);
    assert_str("update stdout", out, want);
    g_free(want);
    g_free(out);
    g_free(path);
    g_free(sha);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "employees", "--json", NULL), 0);
    got = g_strjoinv("\n", (char *[]){
        "{\"address\":\"alice@corp.example\",\"name\":\"Wang, Alice\",\"department\":"
        "\"sales\",\"status\":\"leaving\",\"departed\":\"2024-12-31\",\"successor\":"
        "\"dave@corp.example\",\"manager\":\"boss@corp.example\",\"mobile\":"
        "\"+8613800138000\",\"personal_addresses\":[\"alice.wang@gmail.com\","
        "\"alice@qq.com\"]}",
        "{\"address\":\"bob@corp.example\",\"name\":\"Bo Eng\",\"department\":"
        "\"engineering\",\"status\":\"leaving\",\"departed\":\"2024-06-30\",\"successor\":"
        "\"\",\"manager\":\"boss@corp.example\",\"mobile\":\"+8613900000000\","
        "\"personal_addresses\":[]}",
        "{\"address\":\"boss@corp.example\",\"name\":\"Bob Boss\",\"department\":"
        "\"management\",\"status\":\"active\",\"departed\":\"\",\"successor\":\"\","
        "\"manager\":\"\",\"mobile\":\"\",\"personal_addresses\":[]}",
        "{\"address\":\"carol@corp.example\",\"name\":\"Carol \\\"CJ\\\" Jones\","
        "\"department\":\"sales\",\"status\":\"active\",\"departed\":\"\",\"successor\":"
        "\"\",\"manager\":\"boss@corp.example\",\"mobile\":\"\",\"personal_addresses\":[]}",
        "{\"address\":\"dave@corp.example\",\"name\":\"Dave Li\",\"department\":\"Sales\","
        "\"status\":\"active\",\"departed\":\"\",\"successor\":\"\",\"manager\":"
        "\"boss@corp.example\",\"mobile\":\"01065521234\",\"personal_addresses\":[]}",
        "{\"address\":\"zoe@corp.example\",\"name\":\"Zoe Xu\",\"department\":\"sales\","
        "\"status\":\"departed\",\"departed\":\"2024-02-29\",\"successor\":"
        "\"alice@corp.example\",\"manager\":\"boss@corp.example\",\"mobile\":\"\","
        "\"personal_addresses\":[\"zoe.xu@163.com\"]}",
        "", NULL });
    assert_str("list employees --json", out, got);
    g_free(got);
    g_free(out);
    g_free(err);
    /* audit: every command, with what it did */
    path = data_file(&fx, "employees.csv");
    got = db_rows(&fx, "SELECT command, args, results, status FROM audit ORDER BY id");
    want = g_strdup_printf("directory|import employees %s|5|0\n"
                           "directory|list employees|5|0\n"
                           "directory|import employees %s|5|0\n"
                           "directory|import employees %s/employees-update.csv|4|0\n"
                           "directory|list employees --json|6|0\n", path, path, fx.data);
    assert_str("audit", got, want);
    g_free(got);
    g_free(want);
    g_free(path);
    /* each import is a chain event */
    got = db_rows(&fx, "SELECT count(*) FROM chain WHERE type = 'directory'");
    assert_str("directory events", got, "3\n");
    g_free(got);
    fx_done(&fx);
}

static void test_dir_import_bad(void)
{
    struct fx fx;
    char *out = NULL, *err = NULL, *want, *path, *got;

    fx_init(&fx);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    path = data_file(&fx, "employees-bad.csv");
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees-bad.csv", &out, &err), 65);
#define E "custos-archive: error: %1$s:"
    want = g_strdup_printf(
        E "2: address: 'not-an-address' is not an address (local@domain, one '@')\n"
        E "3: status: 'retired' is not active, leaving or departed\n"
        E "4: departed: '2024/5/1' is not an ISO date (YYYY-MM-DD, e.g. 2024-05-01; a "
        "spreadsheet may have reformatted it)\n"
        E "4: successor: status departed needs a successor (who gets the mail)\n"
        E "5: manager: nobody@corp.example is not an employee (in this file or the "
        "directory)\n"
        E "6: name: empty\n"
        E "6: personal_addresses: fay@corp.example is an employee's work address\n"
        E "7: mobile: phone 'call me': only digits, a leading +, spaces and - . ( ) /\n"
        E "8: 3 fields, the header has 9\n"
        E "9: text after a closing quote (a quote inside a quoted field is written twice: "
        "\"\")\n"
        E "10: successor: kim@corp.example -> lee@corp.example -> kim@corp.example goes "
        "round in a circle of departed employees\n"
        E "11: successor: lee@corp.example -> kim@corp.example -> lee@corp.example goes "
        "round in a circle of departed employees\n"
        E "12: address ok@corp.example is also on line 3\n"
        E "13: personal_addresses: address 'x@bad': the domain has no dot\n"
        E "13: personal_addresses: max@sub.corp.example is in the company's domain "
        "sub.corp.example\n"
        "custos-archive: error: %1$s: 15 problems: nothing of the file applied\n", path);
#undef E
    assert_str("bad rows", err, want);
    assert_str("bad rows stdout", out, "");
    g_free(want);
    g_free(out);
    g_free(err);
    g_free(path);
    /* nothing of it applied */
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "employees", NULL), 0);
    assert_str("list after bad", out, employees_list);
    g_free(out);
    g_free(err);
    /* a header that does not fit */
    path = data_file(&fx, "employees-badheader.csv");
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees-badheader.csv", NULL, &err), 65);
    want = g_strdup_printf(
        "custos-archive: error: %1$s:1: unknown column 'dept' (employees has: address, "
        "name, department, status, departed, successor, manager, personal_addresses, "
        "mobile)\n"
        "custos-archive: error: %1$s:1: column 'status' twice in the header\n"
        "custos-archive: error: %1$s:1: the header has no column 'department' (employees "
        "needs: address, name, department, status)\n"
        "custos-archive: error: %1$s: 3 problems: nothing of the file applied\n", path);
    assert_str("bad header", err, want);
    g_free(want);
    g_free(err);
    g_free(path);
    /* neither UTF-8 nor GB18030 */
    path = data_file(&fx, "not-text.csv");
    CU_ASSERT_EQUAL(import(&fx, "accounts", "not-text.csv", NULL, &err), 65);
    want = g_strdup_printf("custos-archive: error: %s:2: neither UTF-8 nor GB18030 "
                           "(invalid UTF-8 at byte offset 25", path);
    CU_ASSERT(strncmp(err, want, strlen(want)) == 0);
    g_free(want);
    g_free(err);
    g_free(path);
    /* a file that is not there; usage */
    CU_ASSERT_EQUAL(import(&fx, "employees", "missing.csv", NULL, &err), 66);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing.csv: No such file or directory"));
    g_free(err);
    CU_ASSERT_EQUAL(import(&fx, "staff", "employees.csv", NULL, NULL), 64);
    CU_ASSERT_EQUAL(cli(&fx, NULL, NULL, "directory", "list", NULL), 64);
    CU_ASSERT_EQUAL(cli(&fx, NULL, NULL, "directory", "frobnicate", NULL), 64);
    CU_ASSERT_EQUAL(cli(&fx, NULL, NULL, "directory", "learn", "--min-messages", "0", NULL),
                    64);
    /* the failed imports are in the audit log with their status */
    got = db_rows(&fx, "SELECT status, results, detail LIKE 'employees: sha256 %, 15 problems,"
                  " nothing applied' FROM audit WHERE args LIKE '%employees-bad.csv'");
    assert_str("audit of bad", got, "65|0|1\n");
    g_free(got);
    got = db_rows(&fx, "SELECT count(*) FROM chain WHERE type = 'directory'");
    assert_str("no event for bad files", got, "1\n");
    g_free(got);
    fx_done(&fx);
}

static void test_dir_import_customers(void)
{
    struct fx fx;
    char *out = NULL, *err = NULL, *want, *path;

    fx_init(&fx);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ", 3 added, 0 updated, 0 unchanged ("));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ", GB18030)\n"));
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "customers", NULL), 0);
    assert_str("list customers", out,
               "name\tdomains\tcontacts\tphones\towner\tsource\n"
               "Beta Corp\tbeta.example\t\t\tdave@corp.example\timport\n"
               "上海\xf0\xa0\x80\x80贸易, 有限公司\tshanghai-trade.example\tzhang.wei@163.com\t"
               "02155556666\tdave@corp.example\timport\n"
               "北京星辰科技有限公司\txc-group.example;xingchen.example\t采购@xingchen.example\t"
               "+861088880000;01088880001\talice@corp.example\timport\n");
    g_free(out);
    g_free(err);
    /* customers that cannot be */
    path = data_file(&fx, "customers-bad.csv");
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-bad.csv", NULL, &err), 65);
#define E "custos-archive: error: %1$s:"
    want = g_strdup_printf(
        E "2: domains: gmail.com is personal webmail (list the customer's addresses there "
        "as contacts)\n"
        E "3: domains: corp.example is the company's own (an employee's domain)\n"
        E "3: domains: sub.corp.example is the company's own (an employee's domain)\n"
        E "4: owner: ghost@corp.example is not an employee in the directory (import the "
        "employees first)\n"
        E "5: contacts: dave@corp.example is an employee\n"
        E "7: domain: dup.example is also on line 6\n"
        "custos-archive: error: %1$s: 6 problems: nothing of the file applied\n", path);
#undef E
    assert_str("bad customers", err, want);
    g_free(want);
    g_free(err);
    g_free(path);
    /* accounts */
    CU_ASSERT_EQUAL(import(&fx, "accounts", "accounts.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "accounts", NULL), 0);
    assert_str("list accounts", out,
               "account\tbank\tholder\n"
               "6222020200001234567\tIndustrial and Commercial Bank of China\t"
               "Corp Example Ltd\n"
               "DE89370400440532013000\tCommerzbank\tCorp Example GmbH\n");
    g_free(out);
    g_free(err);
    fx_done(&fx);
}

/* ---- show and the lookup API ----------------------------------------------------- */

static void test_dir_show(void)
{
    struct fx fx;
    char *out = NULL, *err = NULL;

    fx_init(&fx);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "Alice@Corp.Example", NULL), 0);
    assert_str("show employee", out,
               "class: employee\nemployee: alice@corp.example\nname: Wang, Alice\n"
               "department: sales\nstatus: active\nmanager: boss@corp.example\n"
               "mobile: +8613800138000\npersonal_address: alice.wang@gmail.com\n"
               "personal_address: alice@qq.com\nsuccessor_of: zoe@corp.example\n"
               "owns_customer: 北京星辰科技有限公司\n");
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "zoe.xu@163.com", NULL), 0);
    assert_str("show personal", out,
               "class: personal address of an employee\naddress: zoe.xu@163.com\n"
               "employee: zoe@corp.example\nname: Zoe Xu\ndepartment: sales\n"
               "status: departed\ndeparted: 2024-02-29\nsuccessor: alice@corp.example\n"
               "manager: boss@corp.example\npersonal_address: zoe.xu@163.com\n"
               "mail_goes_to: alice@corp.example\n");
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "boss@corp.example", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "manages: alice@corp.example\nmanages: "
                                  "bob@corp.example\nmanages: dave@corp.example\nmanages: "
                                  "zoe@corp.example\n"));
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "XC-Group.example", NULL), 0);
    assert_str("show domain", out,
               "class: customer domain\ncustomer: 北京星辰科技有限公司\nsource: import\n"
               "owner: alice@corp.example (Wang, Alice, active)\ndomain: xc-group.example\n"
               "domain: xingchen.example\ncontact: 采购@xingchen.example\n"
               "phone: +861088880000\nphone: 01088880001\n");
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "zhang.wei@163.com", NULL), 0);
    CU_ASSERT(g_str_has_prefix(out, "class: customer contact\ncustomer: 上海"));
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "beta corp", NULL), 0);
    CU_ASSERT(g_str_has_prefix(out, "class: customer\ncustomer: Beta Corp\n"));
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "someone@beta.example", NULL),
                    0);
    CU_ASSERT(g_str_has_prefix(out, "class: address at a customer's domain\naddress: "
                               "someone@beta.example\ncustomer: Beta Corp\n"));
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "vip.163.com", NULL), 0);
    assert_str("show webmail", out, "class: personal webmail, not in the directory\n");
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "new@mail.corp.example", NULL),
                    0);
    assert_str("show internal", out,
               "class: internal (the company's domain), not in the directory\n");
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "stranger.example", NULL), 1);
    assert_str("show nothing", out, "");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "stranger.example is not in the directory"));
    g_free(out);
    g_free(err);
    out = db_rows(&fx, "SELECT args, results, status FROM audit WHERE args LIKE 'show %'"
                  " ORDER BY id");
    assert_str("show audit", out,
               "show Alice@Corp.Example|1|0\nshow zoe.xu@163.com|1|0\n"
               "show boss@corp.example|1|0\nshow XC-Group.example|1|0\n"
               "show zhang.wei@163.com|1|0\nshow 'beta corp'|1|0\n"
               "show someone@beta.example|1|0\nshow vip.163.com|1|0\n"
               "show new@mail.corp.example|1|0\nshow stranger.example|0|1\n");
    g_free(out);
    fx_done(&fx);
}

/* The samples in conf/ import as they are. */
static void test_dir_samples(void)
{
    static const char *const lists[] = { "employees", "customers", "accounts" };
    struct fx fx;
    char *out = NULL;

    fx_init(&fx);
    for (int i = 0; i < 3; i++) {
        char *rel = g_strdup_printf("conf/%s.sample.csv", lists[i]), *path = cut_src(rel);
        char *err = NULL;
        int rc = cli(&fx, &out, &err, "directory", "import", lists[i], path, NULL);
        if (rc != 0)
            fprintf(stderr, "\n%s: %s", path, err);
        CU_ASSERT_EQUAL(rc, 0);
        g_free(out);
        g_free(err);
        g_free(path);
        g_free(rel);
    }
    CU_ASSERT_EQUAL(cli(&fx, &out, NULL, "directory", "show", "wangwei@163.com", NULL), 0);
    CU_ASSERT(g_str_has_prefix(out, "class: personal address of an employee\n"));
    g_free(out);
    fx_done(&fx);
}

/* The webmail list and the departments are needed where they are needed,
 * and their absence is said plainly. */
static void test_dir_config(void)
{
    struct fx fx;
    char *out = NULL, *err = NULL, *text;

    fx_init(&fx);
    text = g_strdup_printf("[archive]\ndir = %s/archive\ndepartments =\n[directory]\n"
                           "webmail_domains = %s/no-such-list.txt\n", fx.dir, fx.dir);
    g_file_set_contents(fx.conf, text, -1, NULL);
    g_free(text);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "accounts", "accounts.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", NULL, &err), 78);
    text = g_strdup_printf("custos-archive: error: webmail list ([directory] "
                           "webmail_domains): open(%s/no-such-list.txt) failed", fx.dir);
    if (strncmp(err, text, strlen(text)) != 0)
        fprintf(stderr, "\n[%s]\nwant [%s]\n", err, text);
    CU_ASSERT(strncmp(err, text, strlen(text)) == 0);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", NULL), 78);
    CU_ASSERT(strncmp(err, text, strlen(text)) == 0);
    g_free(text);
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "employees", NULL), 0);
    assert_str("list without webmail", out, employees_list);
    g_free(out);
    g_free(err);
    /* a list that is there, but no departments */
    text = g_strdup_printf("[archive]\ndir = %s/archive\ndepartments =\n", fx.dir);
    g_file_set_contents(fx.conf, text, -1, NULL);
    g_free(text);
    text = g_build_filename(fx.dir, "webmail.txt", NULL);
    g_file_set_contents(text, "# test\nqq.com\n\n163.com  # NetEase\n", -1, NULL);
    out = g_strdup_printf("[archive]\ndir = %s/archive\ndepartments =\n[directory]\n"
                          "webmail_domains = %s\n", fx.dir, text);
    g_file_set_contents(fx.conf, out, -1, NULL);
    g_free(out);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", NULL), 78);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "learn: no departments of sales staff ([archive] "
                                  "departments)"));
    g_free(out);
    g_free(err);
    /* a bad line in the list names the file and the line */
    g_file_set_contents(text, "qq.com\nnot a domain\n", -1, NULL);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "show", "qq.com", NULL), 78);
    g_free(out);
    out = g_strdup_printf("%s:2: domain 'not a domain' has a space in it", text);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, out));
    g_free(out);
    g_free(err);
    g_free(text);
    fx_done(&fx);
}

static void test_dir_lookup(void)
{
    struct fx fx;
    struct dir *d = NULL;
    struct dir_employee *e = NULL;
    struct dir_customer *c = NULL;
    char *err = NULL, *to = NULL;

    fx_init(&fx);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(dir_open(fx.cfg, &d, &err), 0);

    CU_ASSERT_EQUAL(dir_employee_get(d, "ALICE@corp.example", &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e->name, "Wang, Alice");
    CU_ASSERT_EQUAL(e->status, DIR_ACTIVE);
    CU_ASSERT_EQUAL(e->personal->len, 2);
    CU_ASSERT_STRING_EQUAL(e->personal->pdata[1], "alice@qq.com");
    dir_employee_free(&e);
    CU_ASSERT_EQUAL(dir_employee_get(d, "alice@qq.com", &e, &err), 0);
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT_EQUAL(dir_employee_of_personal(d, "Alice@QQ.com", &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e->address, "alice@corp.example");
    dir_employee_free(&e);
    CU_ASSERT_EQUAL(dir_employee_of_personal(d, "nobody@qq.com", &e, &err), 0);
    CU_ASSERT_PTR_NULL(e);
    {
        /* an address two employees gave: the first of them by address */
        char *path = g_build_filename(fx.dir, "archive", "index.db", NULL);
        sqlite3 *db = NULL;
        CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
        CU_ASSERT_EQUAL(sqlite3_exec(db, "INSERT INTO employee_personal(employee, addr)"
                                     " VALUES ('boss@corp.example', 'zoe.xu@163.com')",
                                     NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        g_free(path);
        CU_ASSERT_EQUAL(dir_employee_of_personal(d, "zoe.xu@163.com", &e, &err), 1);
        CU_ASSERT(e != NULL && strcmp(e->address, "boss@corp.example") == 0);
        dir_employee_free(&e);
    }
    CU_ASSERT_EQUAL(dir_employee_get(d, "zoe@corp.example", &e, &err), 1);
    CU_ASSERT_EQUAL(e->status, DIR_DEPARTED);
    CU_ASSERT_STRING_EQUAL(e->successor, "alice@corp.example");
    CU_ASSERT_STRING_EQUAL(e->departed, "2024-02-29");
    dir_employee_free(&e);

    CU_ASSERT_EQUAL(dir_route(d, "zoe@corp.example", &to, &err), 1);
    CU_ASSERT_STRING_EQUAL(to, "alice@corp.example");
    g_free(to);
    CU_ASSERT_EQUAL(dir_route(d, "bob@corp.example", &to, &err), 1);   /* leaving: still */
    CU_ASSERT_STRING_EQUAL(to, "bob@corp.example");
    g_free(to);
    CU_ASSERT_EQUAL(dir_route(d, "nobody@corp.example", &to, &err), 0);
    CU_ASSERT_PTR_NULL(to);

    CU_ASSERT_EQUAL(dir_customer_by_addr(d, "zhang.wei@163.com", &c, &err), 1);
    CU_ASSERT(g_str_has_prefix(c->name, "上海"));
    CU_ASSERT_STRING_EQUAL(c->owner, "dave@corp.example");
    dir_customer_free(&c);
    CU_ASSERT_EQUAL(dir_customer_by_addr(d, "Someone@XingChen.example", &c, &err), 1);
    CU_ASSERT_STRING_EQUAL(c->name, "北京星辰科技有限公司");
    CU_ASSERT_EQUAL(c->domains->len, 2);
    CU_ASSERT_EQUAL(c->phones->len, 2);
    dir_customer_free(&c);
    CU_ASSERT_EQUAL(dir_customer_by_addr(d, "other@163.com", &c, &err), 0);
    CU_ASSERT_EQUAL(dir_customer_by_addr(d, "x@sub.beta.example", &c, &err), 0);  /* exact */
    CU_ASSERT_EQUAL(dir_customer_by_domain(d, "@XC-GROUP.example", &c, &err), 1);
    CU_ASSERT_STRING_EQUAL(c->name, "北京星辰科技有限公司");
    dir_customer_free(&c);
    CU_ASSERT_EQUAL(dir_customer_by_name(d, "BETA CORP", &c, &err), 1);
    CU_ASSERT_STRING_EQUAL(c->name, "Beta Corp");
    dir_customer_free(&c);

    CU_ASSERT_EQUAL(dir_is_webmail(d, "qq.com"), 1);
    CU_ASSERT_EQUAL(dir_is_webmail(d, "x@VIP.163.com"), 1);
    CU_ASSERT_EQUAL(dir_is_webmail(d, "proton.me"), 1);
    CU_ASSERT_EQUAL(dir_is_webmail(d, "xingchen.example"), 0);
    CU_ASSERT_EQUAL(dir_is_webmail(d, "163.com.evil.example"), 0);
    CU_ASSERT_EQUAL(dir_is_webmail(d, "com"), 0);
    CU_ASSERT_EQUAL(dir_is_internal(d, "corp.example", &err), 1);
    CU_ASSERT_EQUAL(dir_is_internal(d, "new.hire@Mail.Corp.Example", &err), 1);
    CU_ASSERT_EQUAL(dir_is_internal(d, "corp.example.com", &err), 0);
    CU_ASSERT_EQUAL(dir_is_internal(d, "example", &err), 0);
    CU_ASSERT_EQUAL(dir_is_internal(d, "beta.example", &err), 0);
    dir_close(&d);
    CU_ASSERT_PTR_NULL(d);
    g_free(err);
    fx_done(&fx);
}

/* The plan SQLite makes: one line each, "|"-joined. */
static char *plan(sqlite3 *db, const char *sql, const struct qry *q)
{
    GString *s = g_string_new(NULL);
    char *full = g_strdup_printf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, full, -1, &st, NULL), SQLITE_OK);
    if (q != NULL)
        qry_bind(q, st, 1);
    else
        sqlite3_bind_text(st, 1, "corp.example", -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW)
        g_string_append_printf(s, "%s|", sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    g_free(full);
    return g_string_free(s, FALSE);
}

/* employee:, customer:, department: and the internal-domain lookup use the
 * indexes of the real schema: nothing is scanned but the directory's own
 * small tables. */
static void test_dir_plans(void)
{
    static const struct {
        const char *q;
        const char *const must[4];
    } cases[] = {
        { "employee:alice@corp.example", { "addrs_addr", "rcpts_addr", NULL } },
        { "employee:alice", { "addrs_addr", "rcpts_addr", NULL } },
        { "department:sales", { "addrs_addr", "rcpts_addr", NULL } },
        { "customer:acme.example", { "addrs_domain", "rcpts_domain", "addrs_addr",
                                     "rcpts_addr" } },
        { "customer:\"Acme Ltd\" employee:alice", { "addrs_domain", "addrs_addr", NULL } },
    };
    struct fx fx;
    struct idx *idx = NULL;
    char *err = NULL, *path, *got;

    fx_init(&fx);
    path = g_build_filename(fx.dir, "archive", "index.db", NULL);
    CU_ASSERT_EQUAL_FATAL(idx_open(path, IDX_RDONLY, &idx, &err), 0);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct qry *q = NULL;
        char *sql;

        CU_ASSERT_EQUAL_FATAL(qry_compile(cases[i].q, &q, &err), 0);
        sql = g_strdup_printf("SELECT m.id FROM messages m WHERE %s ORDER BY m.date DESC",
                              q->where->str);
        got = plan(idx_db(idx), sql, q);
        for (int k = 0; k < 4 && cases[i].must[k] != NULL; k++)
            if (strstr(got, cases[i].must[k]) == NULL) {
                fprintf(stderr, "\n%s: no %s in %s\n", cases[i].q, cases[i].must[k], got);
                CU_FAIL("index not used");
            }
        if (strstr(got, "SCAN addrs") || strstr(got, "SCAN rcpts") || strstr(got, "SCAN m|")) {
            fprintf(stderr, "\n%s: a scan: %s\n", cases[i].q, got);
            CU_FAIL("scan");
        }
        g_free(got);
        g_free(sql);
        qry_free(&q);
    }
    /* directory.c's DS_INTERNAL, with the expression of employees_domain */
    got = plan(idx_db(idx), "SELECT 1 FROM employees WHERE substr(address, instr(address,"
               " '@') + 1) = ? LIMIT 1", NULL);
    assert_str("internal plan", got, "SEARCH employees USING INDEX employees_domain (<expr>=?)|");
    g_free(got);
    idx_close(&idx);
    g_free(path);
    fx_done(&fx);
}

/* ---- the chain event ------------------------------------------------------------ */

/* The rows of each list, as list prints them. */
static char *lists_of(struct dir *d)
{
    GString *s = g_string_new(NULL);

    for (int l = 0; l < 3; l++) {
        GPtrArray *rows = NULL;
        char *err = NULL;

        CU_ASSERT_EQUAL_FATAL(dir_list(d, (enum dir_list)l, &rows, &err), 0);
        for (guint i = 0; i < rows->len; i++) {
            if (l == DIR_EMPLOYEES) {
                const struct dir_employee *e = rows->pdata[i];
                g_string_append_printf(s, "E %s|%s|%s|%s|%s|%s|%s|%s\n", e->address,
                                       e->name, e->department, dir_status_name(e->status),
                                       e->departed, e->successor, e->manager, e->mobile);
                for (guint k = 0; k < e->personal->len; k++)
                    g_string_append_printf(s, "  p %s\n", (char *)e->personal->pdata[k]);
            } else if (l == DIR_CUSTOMERS) {
                const struct dir_customer *c = rows->pdata[i];
                g_string_append_printf(s, "C %s|%s|%s|%u|%u|%u\n", c->name, c->owner,
                                       c->source, c->domains->len, c->contacts->len,
                                       c->phones->len);
                for (guint k = 0; k < c->domains->len; k++)
                    g_string_append_printf(s, "  d %s\n", (char *)c->domains->pdata[k]);
                for (guint k = 0; k < c->contacts->len; k++)
                    g_string_append_printf(s, "  c %s\n", (char *)c->contacts->pdata[k]);
            } else {
                const struct dir_account *a = rows->pdata[i];
                g_string_append_printf(s, "A %s|%s|%s\n", a->account, a->bank, a->holder);
            }
        }
        g_ptr_array_free(rows, TRUE);
    }
    return g_string_free(s, FALSE);
}

/* Every "directory" event of the archive, replayed into a fresh index (as
 * reindex and roll-forward would): the same directory. */
static void test_dir_event_replay(void)
{
    struct fx fx;
    struct arc *arc = NULL;
    struct idx *fresh = NULL;
    struct dir *d = NULL, *d2 = NULL;
    sqlite3_stmt *st = NULL;
    char *err = NULL, *path, *a, *b;
    int n = 0;

    fx_init(&fx);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees-update.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "accounts", "accounts.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(cli(&fx, NULL, NULL, "verify", NULL), 0);

    path = g_build_filename(fx.dir, "fresh.db", NULL);
    CU_ASSERT_EQUAL_FATAL(idx_open(path, IDX_CREATE, &fresh, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_open(fx.cfg, 0, &arc, &err), 0);
    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(idx_db(arc_index(arc)), "SELECT segment, offset,"
                          " length FROM chain WHERE type = 'directory' ORDER BY seq", -1, &st,
                          NULL), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(idx_begin(fresh, &err), 0);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct store_loc loc = { (uint32_t)sqlite3_column_int64(st, 0),
                                 (uint64_t)sqlite3_column_int64(st, 1),
                                 (uint32_t)sqlite3_column_int64(st, 2) };
        struct chain_event *ev = NULL;
        GBytes *data = NULL;
        gsize len;
        const char *text;

        CU_ASSERT_EQUAL_FATAL(store_read(arc_store(arc), &loc, NULL, &data, &err), 0);
        text = g_bytes_get_data(data, &len);
        CU_ASSERT_EQUAL_FATAL(chain_event_parse(text, len, &ev, &err), 0);
        CU_ASSERT_STRING_EQUAL(ev->type, "directory");
        if (dir_apply_event(fresh, ev, &err) < 0) {
            fprintf(stderr, "\napply: %s\n", err);
            CU_FAIL("dir_apply_event");
        }
        chain_event_free(&ev);
        g_bytes_unref(data);
        n++;
    }
    sqlite3_finalize(st);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(idx_commit(fresh, &err), 0);
    CU_ASSERT_EQUAL_FATAL(dir_open_idx(arc_index(arc), NULL, &d, &err), 0);
    CU_ASSERT_EQUAL_FATAL(dir_open_idx(fresh, NULL, &d2, &err), 0);
    a = lists_of(d);
    b = lists_of(d2);
    assert_str("replayed directory", b, a);
    CU_ASSERT(strstr(a, "E carol@corp.example|Carol \"CJ\" Jones|sales|active") != NULL);
    g_free(a);
    g_free(b);
    dir_close(&d);
    dir_close(&d2);
    arc_close(&arc);
    idx_close(&fresh);
    g_free(path);
    g_free(err);
    fx_done(&fx);
}

/* reindex rebuilds the directory from the chain alone: the same lists
 * before and after, and verify is clean. */
static void test_dir_reindex(void)
{
    static const char *const lists[] = { "employees", "customers", "accounts" };
    struct fx fx;
    char *before[3], *out = NULL, *err = NULL;

    fx_init(&fx);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees-update.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "accounts", "accounts.csv", NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(cli(&fx, &before[i], NULL, "directory", "list", lists[i], "--json",
                            NULL), 0);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "reindex", NULL), 0);
    g_free(out);
    g_free(err);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(cli(&fx, &out, NULL, "directory", "list", lists[i], "--json", NULL), 0);
        assert_str(lists[i], out, before[i]);
        CU_ASSERT(strlen(before[i]) > 100);
        g_free(out);
        g_free(before[i]);
    }
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "verify", NULL), 0);
    CU_ASSERT(g_str_has_prefix(out, "OK: "));
    g_free(out);
    g_free(err);
    fx_done(&fx);
}

/* ---- learn, and the query fields on a real archive -------------------------------- */

struct cmsg {
    int day;                    /* days after 2024-01-01; -1: no Date: */
    const char *from, *to, *cc;
    const char *rcpts;          /* envelope recipients, ';'-separated; NULL: To and Cc */
};

#define A "alice@corp.example"
#define D "dave@corp.example"
#define Z "zoe@corp.example"
#define B "bob@corp.example"

/* Sales staff (alice, dave, and zoe who left) with customers, webmail
 * friends, colleagues and a newsletter; bob (engineering) with a partner. */
static GArray *corpus(void)
{
    GArray *m = g_array_new(FALSE, TRUE, sizeof(struct cmsg));
    struct cmsg c;

#define M(d, f, t, cc_, r) do { c.day = (d); c.from = (f); c.to = (t); c.cc = (cc_); \
                                c.rcpts = (r); g_array_append_val(m, c); } while (0)
    /* acme: out 5 (alice 4, dave 1), in 3 */
    M(4, A, "buyer@acme.example", NULL, NULL);
    M(20, A, "buyer@acme.example", NULL, NULL);
    M(40, A, "Buyer <BUYER@ACME.EXAMPLE>", NULL, NULL);
    M(60, A, "buyer@acme.example", NULL, NULL);
    M(30, D, "buyer@acme.example", NULL, NULL);
    M(10, "buyer@acme.example", A, NULL, NULL);
    M(50, "buyer@acme.example", A, NULL, NULL);
    M(79, "buyer@acme.example", A, NULL, NULL);
    /* beta (an imported customer): out 3, in 3 (one to dave and alice) */
    M(5, D, "ann@beta.example", NULL, NULL);
    M(15, D, "ann@beta.example", NULL, NULL);
    M(25, D, "ann@beta.example", NULL, NULL);
    M(6, "ann@beta.example", D, NULL, NULL);
    M(16, "ann@beta.example", D, NULL, NULL);
    M(26, "ann@beta.example", D, A, NULL);
    /* delta: only the envelope says who it went to */
    M(100, A, A, NULL, "x@delta.example");
    M(101, A, A, NULL, "x@delta.example");
    M(102, A, A, NULL, "x@delta.example");
    M(103, "x@delta.example", "undisclosed-recipients:;", NULL, A);
    M(104, "x@delta.example", "undisclosed-recipients:;", NULL, A);
    M(105, "x@delta.example", "undisclosed-recipients:;", NULL, A);
    /* epsilon: zoe's, one message undated */
    M(200, Z, "e@epsilon.example", NULL, NULL);
    M(201, Z, "e@epsilon.example", NULL, NULL);
    M(-1, Z, "e@epsilon.example", NULL, NULL);
    M(202, "e@epsilon.example", Z, NULL, NULL);
    M(203, "e@epsilon.example", Z, NULL, NULL);
    M(204, "e@epsilon.example", Z, NULL, NULL);
    /* gamma: out 5, in 2 */
    for (int i = 0; i < 5; i++)
        M(300 + i, A, "g@gamma.example", NULL, NULL);
    M(305, "g@gamma.example", A, NULL, NULL);
    M(306, "g@gamma.example", A, NULL, NULL);
    /* a newsletter: in only */
    for (int i = 0; i < 10; i++)
        M(400 + i, "news@news.example", A, NULL, NULL);
    /* webmail, colleagues, a subdomain of the company's, another department */
    for (int i = 0; i < 4; i++) {
        M(410 + i, A, "friend@qq.com", NULL, NULL);
        M(414 + i, "friend@qq.com", A, NULL, NULL);
    }
    for (int i = 0; i < 3; i++) {
        M(420 + i, A, "pal@vip.163.com", NULL, NULL);
        M(423 + i, "pal@vip.163.com", A, NULL, NULL);
        M(430 + i, A, B, NULL, NULL);
        M(433 + i, B, A, NULL, NULL);
        M(440 + i, A, "ops@mail.corp.example", NULL, NULL);
        M(443 + i, "ops@mail.corp.example", A, NULL, NULL);
    }
    for (int i = 0; i < 4; i++) {
        M(450 + i, B, "p@eng-partner.example", NULL, NULL);
        M(454 + i, "p@eng-partner.example", B, NULL, NULL);
    }
#undef M
    return m;
}

/* Messages of the corpus with one of addrs (';'-separated, lower case) in
 * From, To, Cc or the envelope: what employee: and friends must find. */
static int corpus_count(GArray *m, const char *addrs)
{
    char **want = g_strsplit(addrs, ";", -1);
    int n = 0;

    for (guint i = 0; i < m->len; i++) {
        const struct cmsg *c = &g_array_index(m, struct cmsg, i);
        char *joined = g_strjoin(" ", c->from, c->to, c->cc ? c->cc : "",
                                 c->rcpts ? c->rcpts : "", NULL);
        char *all = g_ascii_strdown(joined, -1);
        int hit = 0;

        for (int k = 0; want[k] != NULL && !hit; k++)
            hit = strstr(all, want[k]) != NULL;
        n += hit;
        g_free(joined);
        g_free(all);
    }
    g_strfreev(want);
    return n;
}

static void corpus_archive(struct fx *fx, GArray *m)
{
    struct arc *arc = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(arc_open(fx->cfg, ARC_WRITE, &arc, &err), 0);
    for (guint i = 0; i < m->len; i++) {
        const struct cmsg *c = &g_array_index(m, struct cmsg, i);
        GString *raw = g_string_new(NULL);
        char **rcpts;
        char *date = NULL, *rc;
        struct idx_envelope env = { 1700000000 + i, c->from, "", "", "test", NULL, NULL, NULL, NULL, 0, NULL };
        gint64 id;
        int dup;

        if (c->day >= 0) {
            GDateTime *t0 = g_date_time_new_utc(2024, 1, 1, 10, 0, 0);
            GDateTime *t = g_date_time_add_days(t0, c->day);
            date = g_date_time_format(t, "Date: %a, %d %b %Y %H:%M:%S +0000\r\n");
            g_date_time_unref(t);
            g_date_time_unref(t0);
        }
        g_string_printf(raw, "From: %s\r\nTo: %s\r\n", c->from, c->to);
        if (c->cc != NULL)
            g_string_append_printf(raw, "Cc: %s\r\n", c->cc);
        g_string_append_printf(raw, "Subject: corpus %u\r\nMessage-ID: <c%u@test>\r\n%s\r\n"
                               "body %u\r\n", i, i, date ? date : "", i);
        rc = c->rcpts != NULL ? g_strdup(c->rcpts)
             : g_strdup_printf("%s;%s", strchr(c->to, '<') ? "buyer@acme.example" : c->to,
                               c->cc ? c->cc : "");
        rcpts = g_strsplit(rc, ";", -1);
        for (int k = 0; rcpts[k] != NULL; k++)         /* drop the empty ones */
            if (*rcpts[k] == '\0') {
                g_free(rcpts[k]);
                for (int j = k; rcpts[j] != NULL; j++)
                    rcpts[j] = rcpts[j + 1];
                k--;
            }
        env.rcpts = (const char *const *)rcpts;
        CU_ASSERT_EQUAL_FATAL(arc_add(arc, raw->str, raw->len, &env, &id, &dup, &err), 0);
        CU_ASSERT_EQUAL(dup, 0);
        g_strfreev(rcpts);
        g_free(rc);
        g_free(date);
        g_string_free(raw, TRUE);
    }
    CU_ASSERT_EQUAL_FATAL(arc_flush(arc, &err), 0);
    arc_close(&arc);
}

static const char learn_header[] = "domain\tout\tin\tfirst\tlast\towner\tcustomer\n";

static void test_dir_learn(void)
{
    struct fx fx;
    GArray *m = corpus();
    char *out = NULL, *err = NULL, *csv, *got, *want;

    fx_init(&fx);
    corpus_archive(&fx, m);
    CU_ASSERT_EQUAL(import(&fx, "employees", "employees.csv", NULL, NULL), 0);
    CU_ASSERT_EQUAL(import(&fx, "customers", "customers-gb18030.csv", NULL, NULL), 0);

    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", NULL), 0);
    want = g_strconcat(learn_header,
        "acme.example\t5\t3\t2024-01-05\t2024-03-20\t" A "\t\n"
        "beta.example\t3\t3\t2024-01-06\t2024-01-27\t" D "\tBeta Corp\n"
        "delta.example\t3\t3\t2024-04-10\t2024-04-15\t" A "\t\n"
        "epsilon.example\t3\t3\t2024-07-19\t2024-07-23\t" Z "\t\n", NULL);
    assert_str("learn", out, want);
    g_free(want);
    g_free(out);
    g_free(err);

    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", "--min-messages", "2", NULL), 0);
    want = g_strconcat(learn_header,
        "acme.example\t5\t3\t2024-01-05\t2024-03-20\t" A "\t\n"
        "gamma.example\t5\t2\t2024-10-27\t2024-11-02\t" A "\t\n"
        "beta.example\t3\t3\t2024-01-06\t2024-01-27\t" D "\tBeta Corp\n"
        "delta.example\t3\t3\t2024-04-10\t2024-04-15\t" A "\t\n"
        "epsilon.example\t3\t3\t2024-07-19\t2024-07-23\t" Z "\t\n", NULL);
    assert_str("learn --min-messages 2", out, want);
    g_free(want);
    g_free(out);
    g_free(err);

    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", "--json", NULL), 0);
    if (out != NULL && strchr(out, '\n') != NULL)
        strchr(out, '\n')[1] = '\0';          /* the first of four */
    assert_str("learn --json", out,
               "{\"domain\":\"acme.example\",\"out\":5,\"in\":3,\"first\":\"2024-01-05\","
               "\"last\":\"2024-03-20\",\"owner\":\"" A "\",\"owner_messages\":7,"
               "\"customer\":\"\",\"customer_source\":\"\"}\n");
    g_free(out);
    g_free(err);

    /* --apply: the imported customer keeps its domain */
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", "--apply", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "customers applied: 3 added, 0 updated, 0 unchanged, "
                                  "1 skipped (imported customers have them)\n"));
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "list", "customers", NULL), 0);
    assert_str("customers after learn", out,
               "name\tdomains\tcontacts\tphones\towner\tsource\n"
               "Beta Corp\tbeta.example\t\t\tdave@corp.example\timport\n"
               "acme.example\tacme.example\t\t\t" A "\tlearn\n"
               "delta.example\tdelta.example\t\t\t" A "\tlearn\n"
               "epsilon.example\tepsilon.example\t\t\t" Z "\tlearn\n"
               "上海\xf0\xa0\x80\x80贸易, 有限公司\tshanghai-trade.example\tzhang.wei@163.com\t"
               "02155556666\tdave@corp.example\timport\n"
               "北京星辰科技有限公司\txc-group.example;xingchen.example\t采购@xingchen.example\t"
               "+861088880000;01088880001\talice@corp.example\timport\n");
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "learn", "--apply", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "customers applied: 0 added, 0 updated, 3 unchanged, "
                                  "1 skipped (imported customers have them)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "acme.example\t5\t3\t2024-01-05\t2024-03-20\t" A
                                  "\tacme.example\n"));
    g_free(out);
    g_free(err);
    got = db_rows(&fx, "SELECT results, status, detail FROM audit WHERE args = 'learn --apply'"
                  " ORDER BY id");
    assert_str("learn audit", got,
               "4|0|departments sales, min-messages 3: 4 domains; applied: 3 added, 0 updated, "
               "0 unchanged, 1 skipped (imported customers have them)\n"
               "4|0|departments sales, min-messages 3: 4 domains; applied: 0 added, 0 updated, "
               "3 unchanged, 1 skipped (imported customers have them)\n");
    g_free(got);

    /* an imported customer takes the domain over; the learned one goes */
    csv = g_build_filename(fx.dir, "acme.csv", NULL);
    g_file_set_contents(csv, "name,domains,owner\nACME Ltd,acme.example," A "\n", -1, NULL);
    CU_ASSERT_EQUAL(cli(&fx, &out, &err, "directory", "import", "customers", csv, NULL), 0);
    want = g_strdup_printf("%s:2: domain acme.example moves from the learned customer "
                           "'acme.example' to 'ACME Ltd'\n", csv);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    g_free(want);
    g_free(out);
    g_free(err);
    got = db_rows(&fx, "SELECT c.name, c.source, group_concat(d.domain) FROM customers c"
                  " LEFT JOIN customer_domains d ON d.customer = c.id WHERE c.name LIKE"
                  " '%cme%' GROUP BY c.id ORDER BY c.name");
    assert_str("acme taken over", got, "ACME Ltd|import|acme.example\n");
    g_free(got);
    g_free(csv);

    /* the query fields on this archive, against the corpus itself */
    {
        static const struct {
            const char *q, *addrs;
        } qs[] = {
            { "customer:\"ACME Ltd\"", "@acme.example" },
            { "customer:acme.example", "@acme.example" },
            { "customer:delta.example", "@delta.example" },
            { "customer:\"beta corp\"", "@beta.example" },
            { "employee:zoe", Z },
            { "employee:zoe.xu@163.com", Z },
            { "employee:\"Wang, Alice\"", A },
            { "employee:alice@qq.com", A },
            { "department:engineering", B },
            { "department:sales", A ";" D ";" Z },
            { "department:Sales", A ";" D ";" Z },
            { "department:management", "boss@corp.example" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(qs); i++) {
            char *n = g_strdup_printf("%d\n", corpus_count(m, qs[i].addrs));
            CU_ASSERT_EQUAL(cli(&fx, &out, &err, "search", "--count", qs[i].q, NULL), 0);
            if (g_strcmp0(out, n) != 0)
                fprintf(stderr, "\nsearch %s: %s, want %s", qs[i].q, out, n);
            CU_ASSERT_STRING_EQUAL(out, n);
            g_free(n);
            g_free(out);
            g_free(err);
        }
    }
    g_array_free(m, TRUE);
    fx_done(&fx);
}

#undef A
#undef D
#undef Z
#undef B

CUS_SUITE(directory)
{
    CU_pSuite s = CU_add_suite("directory", NULL, NULL);

    CU_add_test(s, "normalisers", test_dir_norm);
    CU_add_test(s, "csv", test_dir_csv);
    CU_add_test(s, "csv encodings and bounds", test_dir_csv_encodings);
    CU_add_test(s, "import employees", test_dir_import_employees);
    CU_add_test(s, "import bad files", test_dir_import_bad);
    CU_add_test(s, "import customers, accounts", test_dir_import_customers);
    CU_add_test(s, "show", test_dir_show);
    CU_add_test(s, "webmail list and departments", test_dir_config);
    CU_add_test(s, "the samples in conf/", test_dir_samples);
    CU_add_test(s, "lookup API", test_dir_lookup);
    CU_add_test(s, "query plans", test_dir_plans);
    CU_add_test(s, "chain event replay", test_dir_event_replay);
    CU_add_test(s, "reindex keeps the directory", test_dir_reindex);
    CU_add_test(s, "learn", test_dir_learn);
}
