/*
 * test-archive.c - the archive end to end: real mail in, exact bytes out,
 * deliveries and BCC kept, dedup, and custos-archive's commands and errors.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cutest.h"
#include "custos/archive.h"
#include "custos/import.h"
#include "custos/util.h"

struct fixture {
    char *dir;
    struct cfg *cfg;
    struct arc *arc;
};

static void fx_open(struct fixture *fx)
{
    char *err = NULL;

    fx->dir = cut_tmpdir();
    fx->cfg = cfg_defaults();
    g_free(fx->cfg->arc_dir);
    fx->cfg->arc_dir = g_build_filename(fx->dir, "archive", NULL);
    fx->cfg->arc_batch = 50;
    CU_ASSERT_EQUAL_FATAL(arc_init(fx->cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_open(fx->cfg, ARC_WRITE, &fx->arc, &err), 0);
}

static void fx_close(struct fixture *fx)
{
    arc_close(&fx->arc);
    cfg_free(&fx->cfg);
    cut_rmtree(fx->dir);
    g_free(fx->dir);
}

static gint64 count(struct arc *arc, const char *q)
{
    gint64 total = -1;
    char *err = NULL;

    if (idx_search(arc_index(arc), q, -1, 0, &total, NULL, NULL, &err) < 0) {
        fprintf(stderr, "search %s: %s\n", q, err);
        g_free(err);
        return -1;
    }
    return total;
}

static const char plain_msg[] =
    "From: Alice <alice@corp.example>\r\n"
    "To: Bob@Customer.Example\r\n"
    "Subject: quote\r\n"
    "Message-ID: <q1@corp.example>\r\n"
    "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    "\r\n"
    "Price list attached.\r\n";

static void test_deliveries_and_bcc(void)
{
    struct fixture fx;
    const char *r1[] = { "bob@customer.example", "alice.private@163.com", NULL };
    const char *r2[] = { "bob@customer.example", NULL };
    struct idx_envelope e1 = { 1000, "alice@corp.example", "127.0.0.1", "ABC", "test", r1, NULL, NULL, NULL, 0, NULL };
    struct idx_envelope e2 = { 2000, "alice@corp.example", "127.0.0.1", "DEF", "test", r2, NULL, NULL, NULL, 0, NULL };
    struct idx_stats st;
    gint64 id1, id2;
    int dup1, dup2;
    char *err = NULL;

    fx_open(&fx);
    CU_ASSERT_EQUAL(arc_add(fx.arc, plain_msg, strlen(plain_msg), &e1, &id1, &dup1, &err), 0);
    CU_ASSERT_EQUAL(arc_add(fx.arc, plain_msg, strlen(plain_msg), &e2, &id2, &dup2, &err), 0);
    CU_ASSERT_EQUAL(arc_flush(fx.arc, &err), 0);
    CU_ASSERT_EQUAL(id1, id2);
    CU_ASSERT_EQUAL(dup1, 0);
    CU_ASSERT_EQUAL(dup2, 1);
    CU_ASSERT_EQUAL(idx_stats(arc_index(fx.arc), &st, &err), 0);
    CU_ASSERT_EQUAL(st.messages, 1);
    CU_ASSERT_EQUAL(st.deliveries, 2);
    CU_ASSERT_EQUAL(st.rcpts, 3);
    /* The BCC copy to webmail is in no header: only the envelope knows. */
    CU_ASSERT_EQUAL(count(fx.arc, "bcc:alice.private@163.com"), 1);
    CU_ASSERT_EQUAL(count(fx.arc, "bcc:bob@customer.example"), 0);
    CU_ASSERT_EQUAL(count(fx.arc, "to:bob@customer.example"), 1);
    CU_ASSERT_EQUAL(count(fx.arc, "domain:163.com"), 1);
    CU_ASSERT_EQUAL(count(fx.arc, "msgid:q1@corp.example"), 1);
    fx_close(&fx);
}

static void test_no_envelope_dup(void)
{
    struct fixture fx;
    struct idx_envelope e = { .time = 1000, .sender = "", .client = "", .queue_id = "", .source = "import:x" };
    struct idx_stats st;
    int dup;
    char *err = NULL;

    fx_open(&fx);
    CU_ASSERT_EQUAL(arc_add(fx.arc, plain_msg, strlen(plain_msg), &e, NULL, &dup, &err), 0);
    CU_ASSERT_EQUAL(arc_add(fx.arc, plain_msg, strlen(plain_msg), &e, NULL, &dup, &err), 0);
    CU_ASSERT_EQUAL(dup, 1);
    CU_ASSERT_EQUAL(arc_flush(fx.arc, &err), 0);
    CU_ASSERT_EQUAL(idx_stats(arc_index(fx.arc), &st, &err), 0);
    CU_ASSERT_EQUAL(st.messages, 1);
    CU_ASSERT_EQUAL(st.deliveries, 1);
    fx_close(&fx);
}

/* Messages with no Message-ID, a duplicate Message-ID, broken headers, or
 * no header at all are archived like any other, byte-exact. */
#define M(s) { s, sizeof(s) - 1 }
static const struct { const char *s; size_t len; } odd_msgs[] = {
    M("Subject: no id\n\nbody\n"),
    M("Message-ID: <same@x>\nSubject: one\n\nfirst\n"),
    M("Message-ID: <same@x>\nSubject: two\n\nsecond\n"),
    M("Subject: =?utf-8?B?broken\nFrom: <<<@>>>\n"
      "Content-Type: multipart/mixed; boundary=\"\n\n--\n"),
    M("just some text with no header at all\n"),
    M("From: a@b\nContent-Type: text/plain; charset=bogus-charset\n\n\xff\xfe\x00 binary\n"),
};
#undef M

static void test_odd_messages(void)
{
    struct fixture fx;
    struct idx_envelope e = { .time = 1, .sender = "", .client = "", .queue_id = "", .source = "test" };
    gint64 ids[G_N_ELEMENTS(odd_msgs)];
    char *err = NULL;

    fx_open(&fx);
    for (size_t i = 0; i < G_N_ELEMENTS(odd_msgs); i++) {
        CU_ASSERT_EQUAL(arc_add(fx.arc, odd_msgs[i].s, odd_msgs[i].len, &e, &ids[i], NULL,
                                &err), 0);
        if (err) { fprintf(stderr, "%s\n", err); g_free(err); err = NULL; }
    }
    CU_ASSERT_EQUAL(arc_flush(fx.arc, &err), 0);
    for (size_t i = 0; i < G_N_ELEMENTS(odd_msgs); i++) {
        GBytes *raw = NULL;
        gsize len;
        const char *b;

        CU_ASSERT_EQUAL_FATAL(arc_get_raw(fx.arc, ids[i], &raw, &err), 0);
        b = g_bytes_get_data(raw, &len);
        CU_ASSERT_EQUAL(len, odd_msgs[i].len);
        CU_ASSERT(len == odd_msgs[i].len && memcmp(b, odd_msgs[i].s, len) == 0);
        g_bytes_unref(raw);
    }
    CU_ASSERT_EQUAL(count(fx.arc, "msgid:same@x"), 2);
    CU_ASSERT_EQUAL(count(fx.arc, "*"), (gint64)G_N_ELEMENTS(odd_msgs));
    fx_close(&fx);
}

/* Every file of the real corpus that is one message comes back byte-exact. */
static int check_file(struct arc *arc, const char *path, int *n_checked)
{
    GBytes *data = NULL, *raw = NULL;
    unsigned char sha[CUS_SHA256_LEN];
    const char *b;
    gsize len;
    gint64 id;
    char *err = NULL;
    int ok = 1;

    if (cus_read_file(path, 1 << 28, &data, &err) < 0) {
        g_free(err);
        return 1;
    }
    b = g_bytes_get_data(data, &len);
    if (len == 0 || (len >= 5 && memcmp(b, "From ", 5) == 0) ||
        (len >= 2 && (memcmp(b, "PK", 2) == 0 || memcmp(b, "\037\213", 2) == 0))) {
        g_bytes_unref(data);
        return 1;   /* mbox, archive or empty: not one message */
    }
    cus_sha256(b, len, sha);
    if (idx_find_sha(arc_index(arc), sha, &id, NULL, &err) != 1) {
        fprintf(stderr, "not archived: %s\n", path);
        ok = 0;
    } else if (arc_get_raw(arc, id, &raw, &err) < 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        ok = 0;
    } else {
        gsize rlen;
        const char *r = g_bytes_get_data(raw, &rlen);
        if (rlen != len || memcmp(r, b, len) != 0) {
            fprintf(stderr, "not byte-exact: %s\n", path);
            ok = 0;
        }
        (*n_checked)++;
    }
    g_free(err);
    if (raw)
        g_bytes_unref(raw);
    g_bytes_unref(data);
    return ok;
}

static int walk_check(struct arc *arc, const char *dir, int *n)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    int ok = 1;

    if (d == NULL)
        return 0;
    while ((name = g_dir_read_name(d)) != NULL) {
        char *p = g_build_filename(dir, name, NULL);
        if (*name == '.')
            ;
        else if (g_file_test(p, G_FILE_TEST_IS_DIR))
            ok &= walk_check(arc, p, n);
        else
            ok &= check_file(arc, p, n);
        g_free(p);
    }
    g_dir_close(d);
    return ok;
}

static void test_corpus_exact(void)
{
    struct fixture fx;
    struct imp_stats st = { 0 };
    char *corpus = cut_corpus(""), *cjk = cut_src("tests/data/cjk"), *err = NULL;
    int n = 0;

    fx_open(&fx);
    CU_ASSERT_EQUAL_FATAL(imp_path(fx.arc, corpus, &st, NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL_FATAL(imp_path(fx.arc, cjk, &st, NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL(arc_flush(fx.arc, &err), 0);
    CU_ASSERT(st.messages >= 250);
    CU_ASSERT_EQUAL(st.skipped, 0);
    CU_ASSERT(walk_check(fx.arc, corpus, &n));
    CU_ASSERT(walk_check(fx.arc, cjk, &n));
    CU_ASSERT(n >= 200);
    fprintf(stderr, "\n    corpus: %" G_GUINT64_FORMAT " messages imported, %d checked byte-exact ",
            st.messages, n);
    fx_close(&fx);
    g_free(corpus);
    g_free(cjk);
}

/* Every constructed CJK message (GB2312-labelled GBK, GB18030, Big5,
 * UTF-8, ISO-2022-JP, raw 8-bit, split encoded-words) is found by the
 * words its .expect file says it holds: subject, body and attachment text
 * searched as phrases, and by the first character of its subject alone. */
static void test_cjk_search(void)
{
    struct fixture fx;
    struct imp_stats st = { 0 };
    char *cjk = cut_src("tests/data/cjk"), *err = NULL;
    GDir *d;
    const char *name;
    int checked = 0;

    fx_open(&fx);
    CU_ASSERT_EQUAL_FATAL(imp_path(fx.arc, cjk, &st, NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL(arc_flush(fx.arc, &err), 0);
    d = g_dir_open(cjk, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((name = g_dir_read_name(d)) != NULL) {
        char *base, *eml, *exp, *raw = NULL, *text = NULL, **lines;
        unsigned char sha[CUS_SHA256_LEN];
        char hex[CUS_SHA256_HEX];
        gsize len;

        if (!g_str_has_suffix(name, ".expect"))
            continue;
        base = g_strndup(name, strlen(name) - 7);
        eml = g_strdup_printf("%s/%s.eml", cjk, base);
        exp = g_strdup_printf("%s/%s", cjk, name);
        if (!g_file_get_contents(eml, &raw, &len, NULL) ||
            !g_file_get_contents(exp, &text, NULL, NULL)) {
            CU_FAIL("read cjk case");
            goto next;
        }
        cus_sha256(raw, len, sha);
        cus_hex(sha, CUS_SHA256_LEN, hex);
        lines = g_strsplit(text, "\n", -1);
        for (int i = 0; lines[i] != NULL; i++) {
            static const struct { const char *key, *field; } keys[] = {
                { "subject: ", "subject:" }, { "body-contains: ", "body:" },
                { "att-text-contains: ", "" },
            };
            for (size_t k = 0; k < G_N_ELEMENTS(keys); k++) {
                const char *val = lines[i] + strlen(keys[k].key);
                char *q;
                gint64 n;

                if (!g_str_has_prefix(lines[i], keys[k].key) || strchr(val, '"') != NULL ||
                    *val == '\0')
                    continue;
                q = g_strdup_printf("sha256:%s %s\"%s\"", hex, keys[k].field, val);
                n = count(fx.arc, q);
                if (n != 1) {
                    fprintf(stderr, "\n    %s: %s -> %" G_GINT64_FORMAT, name, q, n);
                    CU_FAIL("CJK search");
                }
                checked++;
                g_free(q);
                /* and the same phrase with a word it lacks does not match */
                q = g_strdup_printf("sha256:%s %s\"%s 鑫淼\"", hex, keys[k].field, val);
                if (count(fx.arc, q) != 0) {
                    fprintf(stderr, "\n    %s: %s matches", name, q);
                    CU_FAIL("CJK search matches too much");
                }
                g_free(q);
                if (k == 0) {
                    /* one character of the subject, alone */
                    gunichar c = 0;
                    for (const char *p = val; *p; p = g_utf8_next_char(p))
                        if (g_unichar_type(g_utf8_get_char(p)) == G_UNICODE_OTHER_LETTER) {
                            c = g_utf8_get_char(p);
                            break;
                        }
                    if (c != 0) {
                        char ch[8] = { 0 };
                        g_unichar_to_utf8(c, ch);
                        q = g_strdup_printf("sha256:%s %s", hex, ch);
                        if (count(fx.arc, q) != 1) {
                            fprintf(stderr, "\n    %s: %s finds nothing", name, q);
                            CU_FAIL("CJK one-character search");
                        }
                        g_free(q);
                    }
                }
            }
        }
        g_strfreev(lines);
next:
        g_free(raw);
        g_free(text);
        g_free(base);
        g_free(eml);
        g_free(exp);
    }
    g_dir_close(d);
    CU_ASSERT(checked >= 30);
    fx_close(&fx);
    g_free(cjk);
}

CUS_SUITE(archive)
{
    CU_pSuite s = CU_add_suite("archive", NULL, NULL);
    CU_add_test(s, "deliveries and BCC kept, raw stored once", test_deliveries_and_bcc);
    CU_add_test(s, "import of the same bytes adds no delivery", test_no_envelope_dup);
    CU_add_test(s, "odd messages archived byte-exact", test_odd_messages);
    CU_add_test(s, "real corpus: every message archived byte-exact", test_corpus_exact);
    CU_add_test(s, "CJK mail in every charset found by its words", test_cjk_search);
}
