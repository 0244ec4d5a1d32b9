/*
 * test-incidents.c - what custos-milter flagged, through the archive, end
 * to end with the built custos-archive: real mail (GB2312 from the corpus,
 * custos' own CJK mail) written to the spool with findings, ingested; one
 * incident row and one chain event per finding, none twice when an entry
 * is ingested again, the missing ones added when only some made it;
 * reindex rebuilds the rows identical; verify finds a row deleted, altered
 * or added; flagged: and spool: in the query language, through indexes;
 * custos-archive incidents as text and JSON, its filters, its errors and
 * its audit entry; the handover's library call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include "cutest.h"
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/incident.h"
#include "custos/query.h"
#include "custos/spool.h"
#include "custos/util.h"

static char *in_dir, *in_conf, *in_bin, *in_spool, *in_index;
/* the three entries: A (two findings), B (one), C (none) */
static char in_id[3][SPOOL_ID_MAX + 1];

static int cli(char **out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = cut_cli(in_bin, in_conf, out, err, ap);
    va_end(ap);
    return rc;
}

static GBytes *read_msg(char *path)
{
    GBytes *b = NULL;

    if (cus_read_file(path, 1 << 24, &b, NULL) < 0)
        fprintf(stderr, "incidents: cannot read %s (make corpus)\n", path);
    g_free(path);
    return b;
}

/* Write an entry with these findings (category, rule, action, evidence,
 * ...; NULL-terminated) to the spool. */
static int enqueue(GBytes *raw, const char *sender, const char *auth, char **rcpts,
                   const char *const *f, char id_r[SPOOL_ID_MAX + 1])
{
    struct spool_finding fs[4], *fp[4];
    struct spool_entry e = { .time = 1764556800, .client = "192.0.2.7 [mx.example]",
                             .sender = (char *)sender, .queue_id = "4Xk2Lp1z3Nz9",
                             .source = "milter", .rcpts = rcpts, .auth = (char *)auth,
                             .raw = raw, .findings = fp };
    char *err = NULL;
    int ret;

    for (size_t i = 0; f != NULL && f[4 * i] != NULL; i++) {
        fs[i] = (struct spool_finding){ (char *)f[4 * i], (char *)f[4 * i + 1],
                                        (char *)f[4 * i + 2], (char *)f[4 * i + 3] };
        fp[i] = &fs[i];
        e.n_findings++;
    }
    ret = spool_write(in_spool, &e, id_r, &err);
    if (ret < 0) {
        fprintf(stderr, "incidents: %s\n", err);
        g_free(err);
    }
    return ret;
}

static int in_init(void)
{
    static const char *const fa[] = {
        "departed-sender", "departed-sender/sasl", "hold",
        "SASL login zhangsan@corp.example: departed employee (left 2026-11-01; successor "
        "lisi@corp.example)",
        "customer-data", "customer-data/attachment", "reject",
        "附件 客户名单.xlsx：40 个客户，手机 138****5678\n第二行",
        NULL,
    };
    static const char *const fb[] = {
        "webmail", "webmail/rcpt", "notify", "to personal webmail wang***@163.com", NULL,
    };
    char *rcpt_a[] = { "Wang.Personal@163.com", "boss@corp.example", NULL };
    char *rcpt_b[] = { "service@example.cn", NULL };
    char *text, *out = NULL, *err = NULL;
    GBytes *a, *b, *c;
    int ret = -1;

    in_dir = cut_tmpdir();
    in_conf = g_build_filename(in_dir, "custos.conf", NULL);
    in_bin = cut_bin("custos-archive");
    in_spool = g_build_filename(in_dir, "spool", NULL);
    in_index = g_build_filename(in_dir, "archive", "index.db", NULL);
    text = g_strdup_printf("[archive]\ndir = %s/archive\n[spool]\ndir = %s\n", in_dir,
                           in_spool);
    g_file_set_contents(in_conf, text, -1, NULL);
    g_free(text);
    a = read_msg(cut_corpus("python3-flufl.bounce/sina_01.txt"));    /* GB2312 */
    b = read_msg(cut_src("tests/data/cjk/gb2312-over-gbk.eml"));
    c = read_msg(cut_corpus("python3-flufl.bounce/yahoo_07.txt"));
    if (a == NULL || b == NULL || c == NULL || spool_init(in_spool, NULL) < 0 ||
        cli(&out, &err, "init", NULL) != 0 ||
        enqueue(a, "ZhangSan@Corp.Example", "zhangsan", rcpt_a, fa, in_id[0]) < 0 ||
        enqueue(b, "WangZhe@Example.COM", NULL, rcpt_b, fb, in_id[1]) < 0 ||
        enqueue(c, "someone@example.org", NULL, rcpt_b, NULL, in_id[2]) < 0)
        goto out;
    g_free(out); g_free(err);
    out = err = NULL;
    if (cli(&out, &err, "ingest", NULL) != 0) {
        fprintf(stderr, "incidents: ingest: %s\n", err);
        goto out;
    }
    ret = 0;
out:
    g_free(out); g_free(err);
    if (a != NULL) g_bytes_unref(a);
    if (b != NULL) g_bytes_unref(b);
    if (c != NULL) g_bytes_unref(c);
    return ret;
}

static int in_clean(void)
{
    cut_rmtree(in_dir);
    g_free(in_dir);
    g_free(in_conf);
    g_free(in_bin);
    g_free(in_spool);
    g_free(in_index);
    return 0;
}

/* One value of SQL on index.db, as text ("" for none). */
static char *sql_text(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *v = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(in_index, &db, SQLITE_OPEN_READWRITE, NULL),
                          SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        v = g_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v != NULL ? v : g_strdup("");
}

static gint64 sql_int(const char *sql)
{
    char *v = sql_text(sql);
    gint64 n = g_ascii_strtoll(v, NULL, 10);

    g_free(v);
    return n;
}

static void sql_exec(const char *sql)
{
    sqlite3 *db = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(in_index, &db, SQLITE_OPEN_READWRITE, NULL),
                          SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Every incidents row, one line each, in chain order. */
static char *dump(void)
{
    return sql_text("SELECT group_concat(r, char(10)) FROM (SELECT seq || '|' || msg || '|' ||"
                    " time || '|' || n || '|' || sha256 || '|' || coalesce(spool_id, '-') ||"
                    " '|' || category || '|' || rule || '|' || action || '|' || evidence ||"
                    " '|' || sender || '|' || auth || '|' || rcpts AS r FROM incidents"
                    " ORDER BY seq)");
}

static void test_ingest(void)
{
    char sql[256], *v;

    /* one row per finding, each its own chain entry of type incident */
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM incidents"), 3);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM chain WHERE type = 'incident'"), 3);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM incidents i JOIN chain c ON c.seq = i.seq"
                            " AND c.type = 'incident' AND c.msg = i.msg"), 3);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM deliveries"), 3);
    /* in the same batch as the message's add, right after it */
    g_snprintf(sql, sizeof(sql), "SELECT (SELECT min(seq) FROM incidents WHERE spool_id = '%s')"
               " - (SELECT seq FROM chain WHERE type = 'add' AND msg = (SELECT msg FROM"
               " deliveries WHERE spool_id = '%s'))", in_id[0], in_id[0]);
    CU_ASSERT_EQUAL(sql_int(sql), 1);
    g_snprintf(sql, sizeof(sql), "SELECT category || ' ' || rule || ' ' || action || ' ' ||"
               " n || ' ' || sender || ' ' || auth || ' ' || replace(rcpts, char(10), ',') ||"
               " ' ' || time FROM incidents WHERE spool_id = '%s' ORDER BY n", in_id[0]);
    v = sql_text(sql);
    CU_ASSERT_STRING_EQUAL(v, "departed-sender departed-sender/sasl hold 1 "
                           "zhangsan@corp.example zhangsan wang.personal@163.com,"
                           "boss@corp.example 1764556800");
    g_free(v);
    g_snprintf(sql, sizeof(sql), "SELECT evidence FROM incidents WHERE spool_id = '%s'"
               " AND n = 2", in_id[0]);
    v = sql_text(sql);
    CU_ASSERT_STRING_EQUAL(v, "附件 客户名单.xlsx：40 个客户，手机 138****5678\n第二行");
    g_free(v);
    /* the message's sha256 is the archived one */
    v = sql_text("SELECT count(*) FROM incidents i JOIN messages m ON m.id = i.msg AND"
                 " lower(hex(m.sha256)) = i.sha256");
    CU_ASSERT_STRING_EQUAL(v, "3");
    g_free(v);
}

/* Ingested again (a crash between commit and unlink): nothing twice. And
 * only the first finding written (a crash inside the batch's tail): the
 * second one is added by the next ingest. */
static void test_again(void)
{
    struct cfg *cfg = NULL;
    struct arc *arc = NULL;
    struct idx_envelope env;
    char *err = NULL, *before = dump(), *after;
    char id[SPOOL_ID_MAX + 1];
    const char *const f[] = { "a", "a/1", "tag", "first", "b", "b/2", "monitor", "second",
                              NULL };
    char *rcpts[] = { "x@corp.example", NULL };
    GBytes *raw = g_bytes_new_static("Subject: partial\n\nbody\n", 23);
    gint64 mid = 0;
    int dup = 0;

    /* a fresh spool id for the second part */
    CU_ASSERT_EQUAL_FATAL(enqueue(raw, "x@corp.example", NULL, rcpts, NULL, id), 0);
    spool_remove(in_spool, id, NULL);

    /* Entry A again, its bytes and spool id: nothing new. */
    CU_ASSERT_EQUAL_FATAL(cfg_load(in_conf, &cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_open(cfg, ARC_WRITE, &arc, &err), 0);
    memset(&env, 0, sizeof(env));
    {
        struct spool_finding f1 = { "departed-sender", "departed-sender/sasl", "hold", "x" };
        struct spool_finding f2 = { "customer-data", "customer-data/attachment", "reject",
                                    "y" };
        struct spool_finding *fp[] = { &f1, &f2 };
        GBytes *ra = NULL;
        gint64 ida = sql_int("SELECT min(msg) FROM incidents");

        CU_ASSERT_EQUAL_FATAL(arc_get_raw(arc, ida, &ra, &err), 0);
        env.time = 1764556800;
        env.sender = "ZhangSan@Corp.Example";
        env.client = env.queue_id = "";
        env.source = "milter";
        env.rcpts = (const char *const *)rcpts;
        env.spool_id = in_id[0];
        env.findings = fp;
        env.n_findings = 2;
        CU_ASSERT_EQUAL(arc_add(arc, g_bytes_get_data(ra, NULL), g_bytes_get_size(ra), &env,
                                &mid, &dup, &err), 0);
        CU_ASSERT_EQUAL(mid, ida);
        CU_ASSERT_EQUAL(dup, 1);
        CU_ASSERT_EQUAL(arc_flush(arc, &err), 0);
        g_bytes_unref(ra);
    }
    after = dump();
    CU_ASSERT_STRING_EQUAL(after, before);
    g_free(after);

    /* Only finding 1 of a new entry, then both: finding 2 is added once. */
    {
        struct spool_finding f1 = { (char *)f[0], (char *)f[1], (char *)f[2], (char *)f[3] };
        struct spool_finding f2 = { (char *)f[4], (char *)f[5], (char *)f[6], (char *)f[7] };
        struct spool_finding *fp[] = { &f1, &f2 };

        env.sender = "x@corp.example";
        env.spool_id = id;
        env.findings = fp;
        env.n_findings = 1;
        CU_ASSERT_EQUAL(arc_add(arc, "Subject: partial\n\nbody\n", 23, &env, &mid, &dup,
                                &err), 0);
        CU_ASSERT_EQUAL(dup, 0);
        CU_ASSERT_EQUAL(arc_flush(arc, &err), 0);
        env.n_findings = 2;
        CU_ASSERT_EQUAL(arc_add(arc, "Subject: partial\n\nbody\n", 23, &env, &mid, &dup,
                                &err), 0);
        CU_ASSERT_EQUAL(dup, 1);
        CU_ASSERT_EQUAL(arc_add(arc, "Subject: partial\n\nbody\n", 23, &env, &mid, &dup,
                                &err), 0);
        CU_ASSERT_EQUAL(arc_flush(arc, &err), 0);
    }
    arc_close(&arc);
    {
        char sql[200];
        g_snprintf(sql, sizeof(sql), "SELECT group_concat(n || rule, ',') FROM (SELECT n, rule"
                   " FROM incidents WHERE spool_id = '%s' ORDER BY n)", id);
        after = sql_text(sql);
        CU_ASSERT_STRING_EQUAL(after, "1a/1,2b/2");
        g_free(after);
    }
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM incidents"), 5);
    CU_ASSERT_EQUAL(sql_int("SELECT count(*) FROM chain WHERE type = 'incident'"), 5);
    g_bytes_unref(raw);
    g_free(before);
    g_free(err);
    cfg_free(&cfg);
}

/* reindex gives the same rows; verify finds a row deleted, altered, added. */
static void test_reindex_verify(void)
{
    static const struct {
        const char *sql, *expect;
    } damage[] = {
        { "DELETE FROM incidents WHERE n = 2", "missing incident" },
        { "UPDATE incidents SET evidence = 'nothing to see' WHERE n = 2",
          "differs from the event in evidence" },
        { "UPDATE incidents SET action = 'tag' WHERE action = 'reject'",
          "differs from the event in action" },
        { "UPDATE incidents SET msg = msg + 1 WHERE n = 2", "differs from the event in id" },
        { "INSERT INTO incidents SELECT seq + 100000, msg, time, n, sha256, NULL, category,"
          " rule, action, evidence, sender, auth, rcpts FROM incidents LIMIT 1",
          "extra incident" },
    };
    char *before = dump(), *after, *out = NULL, *err = NULL;

    CU_ASSERT_EQUAL(cli(&out, &err, "verify", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "verify", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "\"incidents\":5") : NULL);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "reindex", NULL), 0);
    g_free(out); g_free(err);
    after = dump();
    CU_ASSERT_STRING_EQUAL(after, before);
    g_free(after);
    for (size_t i = 0; i < G_N_ELEMENTS(damage); i++) {
        int rc;

        sql_exec(damage[i].sql);
        rc = cli(&out, &err, "verify", NULL);
        CU_ASSERT_NOT_EQUAL(rc, 0);
        if (out == NULL || strstr(out, damage[i].expect) == NULL) {
            fprintf(stderr, "\n  %s: want \"%s\" in: %s %s", damage[i].sql, damage[i].expect,
                    out ? out : "", err ? err : "");
            CU_FAIL("verify did not say what is wrong");
        }
        g_free(out); g_free(err);
        /* the segments have it all: reindex puts it right */
        CU_ASSERT_EQUAL(cli(&out, &err, "reindex", NULL), 0);
        g_free(out); g_free(err);
        after = dump();
        CU_ASSERT_STRING_EQUAL(after, before);
        g_free(after);
    }
    CU_ASSERT_EQUAL(cli(&out, &err, "verify", NULL), 0);
    g_free(out); g_free(err);
    g_free(before);
}

static int count_of(const char *s, const char *what)
{
    int n = 0;

    for (const char *p = s; p != NULL && (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* search with flagged: and spool:; the plans use the indexes. */
static void test_query(void)
{
    static const struct {
        const char *q;
        const char *plan;
    } plans[] = {
        { "flagged:departed-sender", "incidents_category" },
        { "flagged:cust*", "incidents_category" },
        { "flagged:any", "incidents_msg" },
        { "spool:1764556800.000001.4242.0123456789abcdef", "deliveries_spool" },
    };
    char *out = NULL, *err = NULL, *q, *want;
    struct idx *idx = NULL;
    gint64 ida, idb, idc;
    char sql[200];

    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[0]);
    ida = sql_int(sql);
    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[1]);
    idb = sql_int(sql);
    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[2]);
    idc = sql_int(sql);
    CU_ASSERT(ida > 0 && idb > 0 && idc > 0);
    /* spool:ID is the message of that entry, whichever it is */
    for (int i = 0; i < 3; i++) {
        q = g_strdup_printf("spool:%s", in_id[i]);
        CU_ASSERT_EQUAL(cli(&out, &err, "search", "--json", q, NULL), 0);
        want = g_strdup_printf("\"id\":%" G_GINT64_FORMAT ",", i == 0 ? ida : i == 1 ? idb : idc);
        CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, want) : NULL);
        CU_ASSERT_EQUAL(count_of(out, "\"id\":"), 1);
        g_free(want); g_free(q); g_free(out); g_free(err);
    }
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:departed-sender", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "1\n");
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:Customer-Data", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "1\n");
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:any", NULL), 0);
    want = g_strdup_printf("%" G_GINT64_FORMAT "\n", sql_int("SELECT count(DISTINCT msg)"
                           " FROM incidents"));
    CU_ASSERT_STRING_EQUAL(out, want);
    g_free(want); g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:*", NULL), 0);
    want = g_strdup_printf("%" G_GINT64_FORMAT "\n", sql_int("SELECT count(DISTINCT msg)"
                           " FROM incidents"));
    CU_ASSERT_STRING_EQUAL(out, want);
    g_free(want); g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:web*", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "1\n");
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:nosuch", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "0\n");
    g_free(out); g_free(err);
    q = g_strdup_printf("spool:%s -flagged:any", in_id[2]);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", q, NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "1\n");
    g_free(q); g_free(out); g_free(err);
    /* errors: exit 65, the column and what is wrong */
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "flagged:\"two words\"", NULL), 65);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "flagged: 'two words' is not a "
                                                "category") : NULL);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "spool:12345", NULL), 65);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "query: column 7: spool: '12345' is not "
                                                "a spool id") : NULL);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "flagged:", NULL), 65);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "flagged: needs a value") : NULL);
    g_free(out); g_free(err);

    /* the plans, on this archive's index */
    CU_ASSERT_EQUAL_FATAL(idx_open(in_index, IDX_RDONLY, &idx, &err), 0);
    for (size_t i = 0; i < G_N_ELEMENTS(plans); i++) {
        struct qry *qq = NULL;
        sqlite3_stmt *st = NULL;
        GString *got = g_string_new(NULL);
        char *full;

        CU_ASSERT_EQUAL_FATAL(qry_compile(plans[i].q, &qq, &err), 0);
        full = g_strdup_printf("EXPLAIN QUERY PLAN SELECT m.id FROM messages m WHERE %s"
                               " ORDER BY m.date DESC", qq->where->str);
        CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(idx_db(idx), full, -1, &st, NULL), SQLITE_OK);
        qry_bind(qq, st, 1);
        while (sqlite3_step(st) == SQLITE_ROW)
            g_string_append_printf(got, "%s|", sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
        if (strstr(got->str, plans[i].plan) == NULL || strstr(got->str, "SCAN m|") != NULL ||
            strstr(got->str, "SCAN m ") != NULL || strstr(got->str, "SCAN deliveries") != NULL ||
            strstr(got->str, "SCAN incidents|") != NULL) {
            fprintf(stderr, "\n  %s: want %s, no scan: %s", plans[i].q, plans[i].plan,
                    got->str);
            CU_FAIL("plan");
        }
        g_string_free(got, TRUE);
        g_free(full);
        qry_free(&qq);
    }
    idx_close(&idx);
}

/* custos-archive incidents: text, JSON, filters, errors, audit. */
static void test_command(void)
{
    char *out = NULL, *err = NULL, **lines, **cols, *want;
    JsonParser *jp;
    JsonArray *arr;
    JsonObject *o;
    gint64 ida;
    char sql[200];
    int rc;

    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[0]);
    ida = sql_int(sql);
    CU_ASSERT_EQUAL_FATAL(cli(&out, &err, "incidents", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "5 incidents"));
    lines = g_strsplit(out, "\n", -1);
    CU_ASSERT_EQUAL_FATAL(g_strv_length(lines), 6);      /* 5 and the empty tail */
    cols = g_strsplit(lines[0], "\t", -1);
    CU_ASSERT_EQUAL_FATAL(g_strv_length(cols), 8);
    CU_ASSERT_STRING_EQUAL(cols[0], "2025-12-01T02:40:00Z");
    CU_ASSERT_STRING_EQUAL(cols[1], "departed-sender");
    CU_ASSERT_STRING_EQUAL(cols[2], "departed-sender/sasl");
    CU_ASSERT_STRING_EQUAL(cols[3], "hold");
    CU_ASSERT_STRING_EQUAL(cols[4], "zhangsan@corp.example");
    CU_ASSERT_STRING_EQUAL(cols[5], "wang.personal@163.com,boss@corp.example");
    CU_ASSERT(g_str_has_prefix(cols[6], "SASL login zhangsan@corp.example: departed"));
    want = g_strdup_printf("%" G_GINT64_FORMAT, ida);
    CU_ASSERT_STRING_EQUAL(cols[7], want);
    g_free(want);
    g_strfreev(cols);
    /* the newline of an evidence is escaped: one line per incident */
    CU_ASSERT_PTR_NOT_NULL(strstr(lines[1], "\t附件 客户名单.xlsx：40 个客户，手机 138****5678"
                                            "\\n第二行\t"));
    g_strfreev(lines);
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL_FATAL(cli(&out, &err, "incidents", "--json", "--category", "customer-data",
                              NULL), 0);
    jp = json_parser_new();
    CU_ASSERT_FATAL(json_parser_load_from_data(jp, out, -1, NULL));
    arr = json_node_get_array(json_parser_get_root(jp));
    CU_ASSERT_EQUAL_FATAL(json_array_get_length(arr), 1);
    o = json_array_get_object_element(arr, 0);
    CU_ASSERT_STRING_EQUAL(json_object_get_string_member(o, "category"), "customer-data");
    CU_ASSERT_STRING_EQUAL(json_object_get_string_member(o, "action"), "reject");
    CU_ASSERT_STRING_EQUAL(json_object_get_string_member(o, "evidence"),
                           "附件 客户名单.xlsx：40 个客户，手机 138****5678\n第二行");
    CU_ASSERT_STRING_EQUAL(json_object_get_string_member(o, "auth"), "zhangsan");
    CU_ASSERT_STRING_EQUAL(json_object_get_string_member(o, "spool_id"), in_id[0]);
    CU_ASSERT_EQUAL(json_object_get_int_member(o, "archive_id"), ida);
    CU_ASSERT_FALSE(json_object_get_boolean_member(o, "purged"));
    CU_ASSERT_EQUAL(json_array_get_length(json_object_get_array_member(o, "recipients")), 2);
    g_object_unref(jp);
    g_free(out); g_free(err);

    /* a query: the incidents of the messages it matches */
    CU_ASSERT_EQUAL(cli(&out, &err, "incidents", "--json", "from:wangzhe@example.com", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"rule\":\"webmail/rcpt\""));
    CU_ASSERT_PTR_NULL(strstr(out, "departed"));
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "incidents", "--since", "2027-01-01", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "0 incidents"));
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "incidents", "--until", "2025-12-01", "--json", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "[]\n");
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "incidents", "--limit", "2", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "2 incidents"));
    g_free(out); g_free(err);

    /* bad input: what and why, exit 64 (usage) or 65 (query) */
    rc = cli(&out, &err, "incidents", "--since", "yesterday", NULL);
    CU_ASSERT_EQUAL(rc, 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--since: \"yesterday\" is not a date"));
    g_free(out); g_free(err);
    rc = cli(&out, &err, "incidents", "--category", "Customer Data", NULL);
    CU_ASSERT_EQUAL(rc, 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--category: \"Customer Data\" is not a category"));
    g_free(out); g_free(err);
    rc = cli(&out, &err, "incidents", "flagged:a+b", NULL);
    CU_ASSERT_EQUAL(rc, 65);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "flagged: 'a+b' is not a category"));
    g_free(out); g_free(err);
    rc = cli(&out, &err, "incidents", "--bogus", NULL);
    CU_ASSERT_EQUAL(rc, 64);
    g_free(out); g_free(err);

    /* show lists a message's incidents after it */
    want = g_strdup_printf("%" G_GINT64_FORMAT, ida);
    CU_ASSERT_EQUAL(cli(&out, &err, "show", want, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "\n-- incidents --\n2025-12-01T02:40:00Z "
                                         "departed-sender departed-sender/sasl hold: SASL login "
                                         "zhangsan@corp.example: departed") : NULL);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "\n2025-12-01T02:40:00Z customer-data "
                                         "customer-data/attachment reject: 附件") : NULL);
    g_free(want); g_free(out); g_free(err);
    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[2]);
    want = g_strdup_printf("%" G_GINT64_FORMAT, sql_int(sql));
    CU_ASSERT_EQUAL(cli(&out, &err, "show", want, NULL), 0);
    CU_ASSERT_PTR_NULL(out != NULL ? strstr(out, "-- incidents --") : "none");
    g_free(want); g_free(out); g_free(err);

    /* every listing is in the audit log */
    CU_ASSERT(sql_int("SELECT count(*) FROM audit WHERE command = 'incidents'") >= 5);
    CU_ASSERT_EQUAL(sql_int("SELECT results FROM audit WHERE command = 'incidents' AND"
                            " args LIKE '%customer-data%'"), 1);
}

/* The library call custos-handover's report uses. */
static void test_of_employee(void)
{
    const char *const zs[] = { "ZHANGSAN@corp.example", "zs.private@163.com", NULL };
    const char *const login[] = { "zhangsan", NULL };
    const char *const nobody[] = { "nobody@corp.example", NULL };
    struct idx *idx = NULL;
    GPtrArray *got = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(idx_open(in_index, IDX_RDONLY, &idx, &err), 0);
    CU_ASSERT_EQUAL_FATAL(incident_of_employee(idx, zs, 0, &got, &err), 0);
    CU_ASSERT_EQUAL_FATAL(got->len, 2);
    CU_ASSERT_STRING_EQUAL(((struct incident *)got->pdata[0])->rule, "departed-sender/sasl");
    CU_ASSERT_STRING_EQUAL(((struct incident *)got->pdata[1])->action, "reject");
    CU_ASSERT_STRING_EQUAL(((struct incident *)got->pdata[1])->rcpts[0],
                           "wang.personal@163.com");
    g_ptr_array_free(got, TRUE);
    /* by SASL login too */
    CU_ASSERT_EQUAL(incident_of_employee(idx, login, 0, &got, &err), 0);
    CU_ASSERT_EQUAL(got->len, 2);
    g_ptr_array_free(got, TRUE);
    CU_ASSERT_EQUAL(incident_of_employee(idx, zs, 1764556801, &got, &err), 0);
    CU_ASSERT_EQUAL(got->len, 0);
    g_ptr_array_free(got, TRUE);
    CU_ASSERT_EQUAL(incident_of_employee(idx, nobody, 0, &got, &err), 0);
    CU_ASSERT_EQUAL(got->len, 0);
    g_ptr_array_free(got, TRUE);
    idx_close(&idx);
}

/* Retention purges a flagged message: its incidents stay, marked purged;
 * no query finds the message; verify and reindex agree. A legal hold on
 * flagged: keeps another past its period. (Last: it changes the archive.) */
static void test_purge(void)
{
    char *before, *after, *out = NULL, *err = NULL, sql[300];
    gint64 ida, idb;

    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[0]);
    ida = sql_int(sql);
    g_snprintf(sql, sizeof(sql), "SELECT msg FROM deliveries WHERE spool_id = '%s'", in_id[1]);
    idb = sql_int(sql);
    CU_ASSERT_FATAL(ida > 0 && idb > 0);
    g_snprintf(sql, sizeof(sql), "UPDATE messages SET added = added - 8 * 366 * 86400"
               " WHERE id IN (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ")", ida, idb);
    sql_exec(sql);
    CU_ASSERT_EQUAL(cli(&out, &err, "hold", "add", "leaks", "flagged:customer-data", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "1 messages match now") : NULL);
    g_free(out); g_free(err);
    before = dump();
    CU_ASSERT_EQUAL(cli(&out, &err, "retention", NULL), 0);
    g_free(out); g_free(err);
    g_snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = %" G_GINT64_FORMAT,
               idb);
    CU_ASSERT_EQUAL(sql_int(sql), 0);
    g_snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = %" G_GINT64_FORMAT,
               ida);
    CU_ASSERT_EQUAL(sql_int(sql), 1);
    after = dump();
    CU_ASSERT_STRING_EQUAL(after, before);
    g_free(after);
    CU_ASSERT_EQUAL(cli(&out, &err, "incidents", "--category", "webmail", NULL), 0);
    g_snprintf(sql, sizeof(sql), "\t%" G_GINT64_FORMAT " (purged)\n", idb);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, sql) : NULL);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "incidents", "--json", "--category", "webmail", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "\"purged\":true") : NULL);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "flagged:webmail", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "0\n");
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "verify", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "reindex", NULL), 0);
    g_free(out); g_free(err);
    after = dump();
    CU_ASSERT_STRING_EQUAL(after, before);
    g_free(after);
    CU_ASSERT_EQUAL(cli(&out, &err, "verify", NULL), 0);
    g_free(out); g_free(err);
    g_free(before);
}

CUS_SUITE(incidents)
{
    CU_pSuite s = CU_add_suite("incidents", in_init, in_clean);
    CU_add_test(s, "ingest: one row and one chain event per finding", test_ingest);
    CU_add_test(s, "again: nothing twice; the missing ones added", test_again);
    CU_add_test(s, "reindex rebuilds them; verify finds rows deleted, altered, added",
                test_reindex_verify);
    CU_add_test(s, "flagged: and spool: in queries, through indexes", test_query);
    CU_add_test(s, "custos-archive incidents: text, JSON, filters, errors, audit",
                test_command);
    CU_add_test(s, "incident_of_employee for the handover report", test_of_employee);
    CU_add_test(s, "retention purges a flagged message: its incidents stay; a hold on "
                   "flagged: keeps one", test_purge);
}
