/*
 * test-audit.c - the audit log and access to the archive: every read
 * recorded before it happens and sealed into the chain; a user outside
 * the archive's group refused with a clear message, a reader inside it
 * able to search and show but not to change anything.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>
#include <sys/stat.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include "cutest.h"

#define READER_GROUP "users"    /* in Debian's base-passwd; nobody is not in it */

static char *au_dir, *au_conf, *au_bin, *au_index;
static gid_t au_gid;

static int au_init(void)
{
    char *text, *cjk = cut_src("tests/data/cjk");
    struct group *gr = getgrnam(READER_GROUP);
    char *argv[6];

    if (gr == NULL)
        return -1;
    au_gid = gr->gr_gid;
    au_dir = cut_tmpdir();
    chmod(au_dir, 0755);    /* others may reach the archive dir, not enter it */
    au_conf = g_build_filename(au_dir, "custos.conf", NULL);
    au_bin = cut_bin("custos-archive");
    au_index = g_build_filename(au_dir, "archive", "index.db", NULL);
    text = g_strdup_printf("[archive]\ndir = %s/archive\ngroup = " READER_GROUP "\n", au_dir);
    g_file_set_contents(au_conf, text, -1, NULL);
    chmod(au_conf, 0644);
    g_free(text);
    argv[0] = au_bin; argv[1] = "-c"; argv[2] = au_conf; argv[3] = "init"; argv[4] = NULL;
    if (cut_run(argv, NULL, NULL) != 0)
        return -1;
    argv[3] = "import"; argv[4] = cjk; argv[5] = NULL;
    if (cut_run(argv, NULL, NULL) != 0)
        return -1;
    g_free(cjk);
    return 0;
}

static int au_clean(void)
{
    cut_rmtree(au_dir);
    g_free(au_dir);
    g_free(au_conf);
    g_free(au_bin);
    g_free(au_index);
    return 0;
}

static int cli(char **out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = cut_cli(au_bin, au_conf, out, err, ap);
    va_end(ap);
    return rc;
}

/* custos-archive -c CONF ARGS... as nobody, in the reader group or not. */
static int as_nobody(int in_group, char **out, char **err, ...)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    va_list ap;
    const char *s;
    int rc;

    g_ptr_array_add(a, g_strdup("/usr/bin/setpriv"));
    g_ptr_array_add(a, g_strdup("--reuid=65534"));
    g_ptr_array_add(a, g_strdup("--regid=65534"));
    if (in_group)
        g_ptr_array_add(a, g_strdup_printf("--groups=%u", (unsigned)au_gid));
    else
        g_ptr_array_add(a, g_strdup("--clear-groups"));
    g_ptr_array_add(a, g_strdup(au_bin));
    g_ptr_array_add(a, g_strdup("-c"));
    g_ptr_array_add(a, g_strdup(au_conf));
    va_start(ap, err);
    while ((s = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(a, g_strdup(s));
    va_end(ap);
    g_ptr_array_add(a, NULL);
    rc = cut_run((char **)a->pdata, out, err);
    g_ptr_array_free(a, TRUE);
    if (*out == NULL)
        *out = g_strdup("");
    if (*err == NULL)
        *err = g_strdup("");
    return rc;
}

static gint64 sql_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    gint64 v = -999;

    if (sqlite3_open_v2(au_index, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static char *sql_text(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *v = NULL;

    if (sqlite3_open_v2(au_index, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = g_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_audit_modes(void)
{
    char *p = g_build_filename(au_dir, "archive", NULL), *s = g_build_filename(p, "store", NULL);
    struct stat st;

    CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, 02750);
    CU_ASSERT_EQUAL(st.st_gid, au_gid);
    CU_ASSERT_EQUAL_FATAL(stat(s, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, 02750);
    CU_ASSERT_EQUAL_FATAL(stat(au_index, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, 0660);
    CU_ASSERT_EQUAL(st.st_gid, au_gid);
    g_free(p);
    g_free(s);
}

/* A search is recorded, with its query and how many it found, and sealed
 * into the chain by the next writer. */
static void test_audit_search_recorded(void)
{
    char *out = NULL, *err = NULL, *args;
    gint64 before = sql_int("SELECT count(*) FROM audit"), id;

    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "subject:合同", NULL), 0);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM audit"), before + 1);
    id = sql_int("SELECT max(id) FROM audit");
    args = sql_text("SELECT args FROM audit ORDER BY id DESC LIMIT 1");
    CU_ASSERT_STRING_EQUAL(args, "--count subject:合同");
    CU_ASSERT_EQUAL(sql_int("SELECT results FROM audit ORDER BY id DESC LIMIT 1"), atoi(out));
    CU_ASSERT_EQUAL(sql_int("SELECT status FROM audit ORDER BY id DESC LIMIT 1"), 0);
    CU_ASSERT_EQUAL(sql_int("SELECT seq IS NULL FROM audit ORDER BY id DESC LIMIT 1"), 1);
    g_free(args); g_free(out); g_free(err);

    /* A bad query: recorded as failed (65), nothing found. */
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "subject:(", NULL), 65);
    CU_ASSERT_EQUAL(sql_int("SELECT status FROM audit ORDER BY id DESC LIMIT 1"), 65);
    g_free(out); g_free(err);

    /* The writer seals every finished entry into the chain. */
    CU_ASSERT_EQUAL(cli(&out, &err, "checkpoint", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM audit WHERE seq IS NULL"), 0);
    {
        char *q = g_strdup_printf("SELECT c.type FROM audit a JOIN chain c ON c.seq = a.seq"
                                  " WHERE a.id = %" G_GINT64_FORMAT, id);
        char *type = sql_text(q);
        CU_ASSERT_STRING_EQUAL(type, "audit");
        g_free(type);
        g_free(q);
    }
    CU_ASSERT_EQUAL(cli(&out, &err, "verify", NULL), 0);
    g_free(out); g_free(err);
}

static void test_audit_list(void)
{
    char *out = NULL, *err = NULL;
    JsonParser *jp = json_parser_new();
    JsonArray *arr;
    int saw_show = 0;

    CU_ASSERT_EQUAL(cli(&out, &err, "show", "1", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "show", "99999", NULL), 1);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "audit", "--json", NULL), 0);
    CU_ASSERT_FATAL(json_parser_load_from_data(jp, out, -1, NULL));
    arr = json_node_get_array(json_parser_get_root(jp));
    CU_ASSERT_FATAL(json_array_get_length(arr) >= 3);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);
        const char *cmd = json_object_get_string_member(o, "command");

        CU_ASSERT_STRING_EQUAL(json_object_get_string_member(o, "user"), "root");
        if (strcmp(cmd, "show") == 0 &&
            strcmp(json_object_get_string_member(o, "args"), "99999") == 0) {
            CU_ASSERT_EQUAL(json_object_get_int_member(o, "results"), 0);
            CU_ASSERT_EQUAL(json_object_get_int_member(o, "status"), 1);
            saw_show = 1;
        }
    }
    CU_ASSERT(saw_show);
    g_object_unref(jp);
    g_free(out); g_free(err);

    /* --since in the future: nothing but the header; a bad date refused. */
    CU_ASSERT_EQUAL(cli(&out, &err, "audit", "--since", "2999-01-01", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "audit", "--since", "last week", NULL), 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is not a date"));
    g_free(out); g_free(err);
}

static void test_audit_sudo_user(void)
{
    char *out = NULL, *err = NULL, *user;

    g_setenv("SUDO_USER", "alice", TRUE);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "客户", NULL), 0);
    g_unsetenv("SUDO_USER");
    user = sql_text("SELECT user FROM audit ORDER BY id DESC LIMIT 1");
    CU_ASSERT_STRING_EQUAL(user, "root (sudo: alice)");
    g_free(user); g_free(out); g_free(err);
}

/* Not in the group: refused, clearly, and nothing recorded or shown. */
static void test_audit_outsider_refused(void)
{
    char *out = NULL, *err = NULL;
    gint64 before = sql_int("SELECT count(*) FROM audit");
    static const char *const cmds[][3] = {
        { "search", "客户", NULL }, { "show", "1", NULL }, { "audit", NULL, NULL },
        { "import", "/dev/null", NULL }, { "stats", NULL, NULL },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
        CU_ASSERT_EQUAL(as_nobody(0, &out, &err, cmds[i][0], cmds[i][1], NULL), 77);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "permission denied: nobody cannot"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "group " READER_GROUP));
        CU_ASSERT_PTR_NULL(strstr(err, "sqlite"));
        CU_ASSERT_PTR_NULL(strstr(err, "database"));
        CU_ASSERT_STRING_EQUAL(out, "");
        g_free(out); g_free(err);
    }
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM audit"), before);
}

/* In the group: reads (recorded under its own name), never writes. */
static void test_audit_reader(void)
{
    char *out = NULL, *err = NULL, *user;

    CU_ASSERT_EQUAL(as_nobody(1, &out, &err, "search", "--count", "客户", NULL), 0);
    CU_ASSERT(atoi(out) >= 1);
    g_free(out); g_free(err);
    user = sql_text("SELECT user FROM audit ORDER BY id DESC LIMIT 1");
    CU_ASSERT_STRING_EQUAL(user, "nobody");
    g_free(user);
    CU_ASSERT_EQUAL(as_nobody(1, &out, &err, "show", "1", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Archive-Id: 1"));
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(as_nobody(1, &out, &err, "import", "/dev/null", NULL), 77);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "only root changes the archive"));
    g_free(out); g_free(err);
    /* Its entries are sealed by the next writer like anyone's. */
    CU_ASSERT_EQUAL(cli(&out, &err, "checkpoint", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM audit WHERE user = 'nobody' AND seq IS NULL"),
                    0);
}

/* No audit entry can be written: nothing is shown. */
static void test_audit_unwritable(void)
{
    char *out = NULL, *err = NULL;

    CU_ASSERT_EQUAL_FATAL(chmod(au_index, 0640), 0);
    CU_ASSERT_EQUAL(as_nobody(1, &out, &err, "search", "客户", NULL), 77);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot write"));
    g_free(out); g_free(err);
    /* init repairs the modes. */
    CU_ASSERT_EQUAL(cli(&out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(as_nobody(1, &out, &err, "search", "--count", "客户", NULL), 0);
    g_free(out); g_free(err);
}

/* reindex rebuilds the sealed audit log from the chain. */
static void test_audit_reindex(void)
{
    char *out = NULL, *err = NULL;
    gint64 n, sum, dir;

    CU_ASSERT_EQUAL(cli(&out, &err, "checkpoint", NULL), 0);
    g_free(out); g_free(err);
    n = sql_int("SELECT count(*) FROM audit");
    sum = sql_int("SELECT sum(id * 7 + results + status + seq + length(args) + length(user))"
                  " FROM audit");
    /* The directory comes back from its chain events. */
    {
        char *csv = cut_src("conf/employees.sample.csv");
        char *conf2 = g_strdup_printf("%s.dir", au_conf), *text = NULL;
        char *argv[] = { au_bin, "-c", conf2, "directory", "import", "employees", csv, NULL };

        g_file_get_contents(au_conf, &text, NULL, NULL);
        {
            char *wm = cut_src("conf/webmail-domains.txt");
            char *t2 = g_strdup_printf("%s[directory]\nwebmail_domains = %s\n", text, wm);
            g_file_set_contents(conf2, t2, -1, NULL);
            g_free(t2);
            g_free(wm);
        }
        CU_ASSERT_EQUAL(cut_run(argv, NULL, NULL), 0);
        g_free(csv); g_free(conf2); g_free(text);
    }
    CU_ASSERT_EQUAL(cli(&out, &err, "checkpoint", NULL), 0);
    g_free(out); g_free(err);
    n = sql_int("SELECT count(*) FROM audit");
    sum = sql_int("SELECT sum(id * 7 + results + status + seq + length(args) + length(user))"
                  " FROM audit");
    CU_ASSERT(sql_int("SELECT count(*) FROM employees") >= 3);
    dir = sql_int("SELECT count(*) * 1000 + sum(length(name) + length(department) +"
                  " length(status)) FROM employees");
    /* An entry not sealed yet: carried over from the old index. */
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "pending-entry", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "reindex", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) * 1000 + sum(length(name) + length(department) +"
                            " length(status)) FROM employees"), dir);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM audit WHERE args = '--count pending-entry'"
                            " AND seq IS NULL"), 1);
    /* the reindex's own entry is not there yet */
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM audit WHERE seq IS NOT NULL"), n);
    CU_ASSERT_EQUAL(sql_int("SELECT sum(id * 7 + results + status + seq + length(args) +"
                            " length(user)) FROM audit WHERE seq IS NOT NULL"), sum);
}

CUS_SUITE(audit)
{
    CU_pSuite s = CU_add_suite("audit", au_init, au_clean);

    CU_add_test(s, "modes", test_audit_modes);
    CU_add_test(s, "search recorded and sealed", test_audit_search_recorded);
    CU_add_test(s, "audit list", test_audit_list);
    CU_add_test(s, "sudo user", test_audit_sudo_user);
    CU_add_test(s, "outsider refused", test_audit_outsider_refused);
    CU_add_test(s, "reader", test_audit_reader);
    CU_add_test(s, "unwritable audit log", test_audit_unwritable);
    CU_add_test(s, "reindex keeps it", test_audit_reindex);
}
