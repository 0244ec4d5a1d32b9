/*
 * test-export.c - evidence exports: safe file names, the export's file
 * formats, and export / verify-export end to end
 *
 * The end-to-end tests build one archive (tests/data/cjk, some real mail
 * from $CUSTOS_CORPUS, and messages made here to be awkward for an mbox:
 * "From " lines, no newline at the end, CRLF, hostile subjects), signed
 * with an Ed25519 key made with openssl. Each export is checked the way
 * a recipient would: verify-export (no configuration, no archive),
 * sha256sum -c on what python3's zipfile and GNU tar unpack, and an import
 * into a fresh archive that must hold the same SHA-256s. Then exports are
 * damaged the ways an attacker would -- one byte, a manifest row, a file
 * removed or added, the statement edited -- and each must be caught
 * (exit 1) with the problem named.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <archive.h>
#include <archive_entry.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include "cutest.h"
#include "custos/chain.h"
#include "custos/export.h"
#include "custos/safename.h"
#include "custos/util.h"

/* ---- safe names ---------------------------------------------------------------- */

struct sn_case {
    const char *in;
    size_t max;
    unsigned flags;
    const char *want;
};

static void test_safename_table(void)
{
    static const struct sn_case cases[] = {
        { "Quarterly report.pdf", 100, 0, "Quarterly report.pdf" },
        { "Quarterly report.pdf", 100, SAFENAME_DASH, "Quarterly-report.pdf" },
        { "../../etc/passwd", 100, 0, "_._etc_passwd" },
        { "..", 100, 0, "fallback" },
        { ".", 100, 0, "fallback" },
        { "...hidden", 100, 0, "hidden" },
        { ".bashrc", 100, 0, "bashrc" },
        { "-rf", 100, 0, "rf" },
        { "--", 100, 0, "fallback" },
        { "a/b\\c", 100, 0, "a_b_c" },
        { "a:b*c?d\"e<f>g|h", 100, 0, "a_b_c_d_e_f_g_h" },
        { "tab\there\nnewline", 100, 0, "tab here newline" },
        { "bell\x07" "char", 100, 0, "bell_char" },
        { "del\x7f" "char", 100, 0, "del_char" },
        { "c1\xc2\x85" "char", 100, 0, "c1_char" },          /* U+0085 NEL */
        { "trailing dots...", 100, 0, "trailing dots" },
        { "trailing spaces   ", 100, 0, "trailing spaces" },
        { "name. . .", 100, 0, "name" },
        { "a..b", 100, 0, "a.b" },
        { "a....b", 100, 0, "a.b" },
        { "CON", 100, 0, "_CON" },
        { "con", 100, 0, "_con" },
        { "con.txt", 100, 0, "_con.txt" },
        { "Nul .tar.gz", 100, 0, "_Nul .tar.gz" },
        { "PRN", 100, 0, "_PRN" },
        { "aux.h", 100, 0, "_aux.h" },
        { "COM1", 100, 0, "_COM1" },
        { "lpt9.doc", 100, 0, "_lpt9.doc" },
        { "COM\xc2\xb9", 100, 0, "_COM\xc2\xb9" },           /* COM¹ */
        { "CONIN$", 100, 0, "_CONIN$" },
        { "COM0", 100, 0, "COM0" },
        { "COM10", 100, 0, "COM10" },
        { "CONSOLE.txt", 100, 0, "CONSOLE.txt" },
        { "console", 100, 0, "console" },
        { "", 100, 0, "fallback" },
        { "////", 100, 0, "fallback" },
        { "\xff\xfe\xfd", 100, 0, "fallback" },
        { "bad\xff" "utf8", 100, 0, "bad_utf8" },
        { "nul\0inside", 100, 0, NULL },        /* see test_safename_nul */
        { "gpj.exe\xe2\x80\xae", 100, 0, "gpj.exe_" },        /* RLO at the end */
        { "a\xe2\x80\x8b" "b", 100, 0, "a_b" },              /* zero-width space */
        { "a\xef\xbc\x8f" "b", 100, 0, "a_b" },              /* fullwidth solidus */
        { "a\xe2\x88\x95" "b", 100, 0, "a_b" },              /* division slash */
        { "\xe3\x80\x80\xe5\x85\xa8\xe8\xa7\x92\xe3\x80\x80", 100, 0,
          "\xe5\x85\xa8\xe8\xa7\x92" },                        /* 　全角　 */
        { "Re: \xe6\x8a\xa5\xe4\xbb\xb7\xe5\x8d\x95", 100, SAFENAME_DASH,
          "Re-\xe6\x8a\xa5\xe4\xbb\xb7\xe5\x8d\x95" },         /* Re: 报价单 */
        { "x - y", 100, SAFENAME_DASH, "x-y" },
        { "ends with -", 100, SAFENAME_DASH, "ends-with" },
        /* cut: on a character boundary, the extension kept */
        { "abcdefghijklmnopqrstuvwxyz.pdf", 12, 0, "abcdefgh.pdf" },
        { "abcdefghijklmnopqrstuvwxyz", 12, 0, "abcdefghijkl" },
        { "\xe4\xb8\xad\xe6\x96\x87\xe4\xb8\xad\xe6\x96\x87\xe4\xb8\xad", 8, 0,
          "\xe4\xb8\xad\xe6\x96\x87" },                        /* 中文中文中 -> 中文 */
        { "\xe4\xb8\xad\xe6\x96\x87\xe4\xb8\xad\xe6\x96\x87.docx", 10, 0,
          "\xe4\xb8\xad.docx" },
        { "a b c d e f g h i j.txt", 9, 0, "a b c.txt" },
        { "CONSOLE.txt", 8, 0, "CONS.txt" },
        { "CON something.txt", 8, 0, "_CON.txt" },  /* the cut makes it reserved */
        { "e\xcc\x81", 100, 0, "\xc3\xa9" },                 /* e + U+0301 -> é (NFC) */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const struct sn_case *c = &cases[i];
        char *got;

        if (c->want == NULL)
            continue;
        got = safename(c->in, strlen(c->in), c->max, "fallback", c->flags);
        if (strcmp(got, c->want) != 0)
            fprintf(stderr, "\nsafename(\"%s\", %zu) = \"%s\", want \"%s\"\n", c->in, c->max,
                    got, c->want);
        CU_ASSERT_STRING_EQUAL(got, c->want);
        CU_ASSERT(strlen(got) <= MAX(c->max, SAFENAME_MIN_BYTES));
        CU_ASSERT_TRUE(safename_ok(got, MAX(c->max, SAFENAME_MIN_BYTES)));
        g_free(got);
    }
}

static void test_safename_nul(void)
{
    static const char in[] = "nul\0inside";
    char *got = safename(in, sizeof(in) - 1, 100, NULL, 0), *none = safename(NULL, 0, 5, NULL, 0);

    CU_ASSERT_STRING_EQUAL(got, "nul_inside");
    CU_ASSERT_STRING_EQUAL(none, "unnamed");
    CU_ASSERT_FALSE(safename_ok("", 100));
    CU_ASSERT_FALSE(safename_ok("..", 100));
    CU_ASSERT_FALSE(safename_ok("a/b", 100));
    CU_ASSERT_FALSE(safename_ok("CON.txt", 100));
    CU_ASSERT_FALSE(safename_ok("x.", 100));
    CU_ASSERT_FALSE(safename_ok("-x", 100));
    CU_ASSERT_FALSE(safename_ok("abcdefghijkl", 10));
    CU_ASSERT_TRUE(safename_ok("abcdefghij", 10));
    g_free(got);
    g_free(none);
}

/* Whatever goes in, what comes out keeps every rule, and is a fixed point. */
static void test_safename_random(void)
{
    static const char alphabet[][5] = {
        "a", "Z", "0", ".", "-", "_", " ", "/", "\\", ":", "*", "\t", "\n", "\x01", "\x7f",
        "\xff", "\xc3", "\xe4\xb8\xad", "\xe2\x80\xae", "\xe2\x80\x8b", "\xef\xbc\x8f",
        "\xe3\x80\x80", "\xf0\xa0\xae\xb7", "C", "O", "N", "L", "P", "T", "1", "\xcc\x81",
        "\xc2\xb9", "e", "x", "t",
    };
    GRand *r = g_rand_new_with_seed(20260501);

    for (int n = 0; n < 20000; n++) {
        GString *in = g_string_new(NULL);
        int len = g_rand_int_range(r, 0, 40);
        size_t max = (size_t)g_rand_int_range(r, 1, 60);
        unsigned flags = g_rand_boolean(r) ? SAFENAME_DASH : 0;
        char *out, *again;

        for (int i = 0; i < len; i++)
            g_string_append(in, alphabet[g_rand_int_range(r, 0, G_N_ELEMENTS(alphabet))]);
        out = safename(in->str, in->len, max, "fb", flags);
        max = MAX(max, SAFENAME_MIN_BYTES);
        again = safename(out, strlen(out), max, "fb", flags);
        if (!g_utf8_validate(out, -1, NULL) || strlen(out) > max || strlen(out) == 0 ||
            strpbrk(out, "/\\:*?\"<>|\t\n\x01\x7f") != NULL || out[0] == '.' ||
            out[0] == '-' || out[0] == ' ' || g_str_has_suffix(out, ".") ||
            g_str_has_suffix(out, " ") || strstr(out, "..") != NULL ||
            strstr(out, "\xe2\x80\xae") != NULL || strcmp(out, again) != 0 ||
            !safename_ok(out, max)) {
            char *e = g_strescape(in->str, NULL), *o = g_strescape(out, NULL);
            fprintf(stderr, "\nsafename(\"%s\", %zu, %u) = \"%s\" breaks a rule\n", e, max,
                    flags, o);
            g_free(e);
            g_free(o);
            CU_FAIL("safename output keeps every rule");
            n = 1 << 30;
        }
        g_free(out);
        g_free(again);
        g_string_free(in, TRUE);
    }
    g_rand_free(r);
}

/* ---- the formats ----------------------------------------------------------------- */

static void test_manifest_csv(void)
{
    const char *rows[][9] = {
        { "7", "2026-05-01T09:30:00Z", "\"Doe, John\" <j@x.example>", "a@x; b@y", "",
          "He said \"hi\", then\r\nleft", "0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef", "12", "messages/000007-2026-05-01-He-said.eml" },
        { "8", "", "\xe6\x9d\x8e\xe9\x9b\xb7 <li@x>", "", " lead", "\xe5\xae\xa2\xe6\x88\xb7",
          "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "",
          "messages/000008-nodate-x.eml" },
    };
    GString *csv = g_string_new("id,date,from,to,cc,subject,sha256,chain_seq,file\r\n");
    GPtrArray *out = NULL;
    char *err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
        exp_csv_record(csv, rows[i], 9);
    CU_ASSERT_PTR_NOT_NULL(strstr(csv->str, "\"\"\"Doe, John\"\" <j@x.example>\""));
    CU_ASSERT_EQUAL_FATAL(exp_manifest_parse(csv->str, csv->len, &out, &err), 0);
    CU_ASSERT_EQUAL_FATAL(out->len, 2);
    {
        struct exp_row *a = g_ptr_array_index(out, 0), *b = g_ptr_array_index(out, 1);
        CU_ASSERT_EQUAL(a->id, 7);
        CU_ASSERT_EQUAL(a->seq, 12);
        CU_ASSERT_STRING_EQUAL(a->from, rows[0][2]);
        CU_ASSERT_STRING_EQUAL(a->subject, rows[0][5]);
        CU_ASSERT_EQUAL(a->line, 2);
        CU_ASSERT_EQUAL(b->line, 4);        /* the CRLF inside row 1 is a line of the file */
        CU_ASSERT_EQUAL(b->seq, 0);
        CU_ASSERT_STRING_EQUAL(b->cc, " lead");
        CU_ASSERT_STRING_EQUAL(b->file, rows[1][8]);
        CU_ASSERT_EQUAL(b->sha[0], 0xff);
    }
    g_ptr_array_free(out, TRUE);
    g_string_free(csv, TRUE);
}

static void test_manifest_strict(void)
{
    static const char *const bad[] = {
        "",
        "id,date\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\n",     /* LF, not CRLF */
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,s,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f",   /* no CRLF */
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n01,,,,,s,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,s,"
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,yesterday,,,,s,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,s\"x,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,\"s\"x,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,\"open,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,s,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,-3,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,s,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,\xff,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f\r\n",
        "id,date,from,to,cc,subject,sha256,chain_seq,file\r\n1,,,,,s,"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,,f,extra\r\n",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GPtrArray *rows = NULL;
        char *err = NULL;
        int rc = exp_manifest_parse(bad[i], strlen(bad[i]), &rows, &err);

        if (rc == 0)
            fprintf(stderr, "\nmanifest case %zu parsed\n", i);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NULL(rows);
        CU_ASSERT(err != NULL && g_str_has_prefix(err, "manifest: "));
        g_free(err);
    }
}

static void test_sums_chain_statement(void)
{
    const char *sums = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff  "
                       "a b.eml\n0000000000000000000000000000000000000000000000000000000000000000"
                       " *c\n";
    GPtrArray *a = NULL;
    char *err = NULL, *ev;
    unsigned char g[CUS_SHA256_LEN], h[CUS_SHA256_LEN];
    char gh[CUS_SHA256_HEX], hh[CUS_SHA256_HEX];
    GString *chain, *evs;
    struct exp_statement s;
    static const char stmt[] =
        "custos-export 1\nformat mbox\ntime 2026-05-01T00:00:00Z\nuser alice (sudo: bob)\n"
        "query subject:%25off%0Anext\nmessages 3\nmanifest-sha256 "
        "1111111111111111111111111111111111111111111111111111111111111111\nchain-sha256 "
        "2222222222222222222222222222222222222222222222222222222222222222\ncheckpoint-sha256 "
        "3333333333333333333333333333333333333333333333333333333333333333\ncheckpoint-seq 9\n"
        "checkpoint-hash 4444444444444444444444444444444444444444444444444444444444444444\n"
        "key none\n";

    /* empty input, as an empty GBytes gives it: no data pointer at all
     * (fuzz-export found NULL + 0 in the parsers) */
    CU_ASSERT_EQUAL(exp_sums_parse(NULL, 0, &a, &err), 0);
    CU_ASSERT_EQUAL(a->len, 0);
    g_ptr_array_free(a, TRUE);
    CU_ASSERT_EQUAL(exp_chain_parse(NULL, 0, &a, &err), -1);
    g_free(err);
    CU_ASSERT_EQUAL(exp_statement_parse(NULL, 0, &s, &err), -1);
    g_free(err);
    CU_ASSERT_EQUAL(exp_manifest_parse(NULL, 0, &a, &err), -1);
    g_free(err);
    err = NULL;
    CU_ASSERT_EQUAL_FATAL(exp_sums_parse(sums, strlen(sums), &a, &err), 0);
    CU_ASSERT_EQUAL(a->len, 2);
    CU_ASSERT_STRING_EQUAL(((struct exp_sum *)g_ptr_array_index(a, 0))->name, "a b.eml");
    CU_ASSERT_STRING_EQUAL(((struct exp_sum *)g_ptr_array_index(a, 1))->name, "c");
    g_ptr_array_free(a, TRUE);
    CU_ASSERT_EQUAL(exp_sums_parse("abc  x\n", 7, &a, &err), -1);
    g_free(err);
    CU_ASSERT_EQUAL(exp_sums_parse(sums, strlen(sums) - 1, &a, &err), -1);   /* no LF */
    g_free(err);

    /* chain.txt: a record per event, HASH = SHA-256(PREV || event) */
    chain_genesis(g);
    {
        const char *kv[] = { "id", "1", "message", "ab", NULL };
        GString *e = chain_event_format(1, 100, "add", kv);
        chain_step(g, e->str, e->len, h);
        cus_hex(g, CUS_SHA256_LEN, gh);
        cus_hex(h, CUS_SHA256_LEN, hh);
        chain = g_string_new("custos-export-chain 1\n");
        g_string_append_printf(chain, "event 1 %s %s %zu\n", gh, hh, e->len);
        g_string_append_len(chain, e->str, (gssize)e->len);
        evs = e;
    }
    CU_ASSERT_EQUAL_FATAL(exp_chain_parse(chain->str, chain->len, &a, &err), 0);
    CU_ASSERT_EQUAL(a->len, 1);
    {
        struct exp_event *e = g_ptr_array_index(a, 0);
        CU_ASSERT_EQUAL(e->seq, 1);
        CU_ASSERT_EQUAL(e->len, evs->len);
        CU_ASSERT(memcmp(e->bytes, evs->str, evs->len) == 0);
        CU_ASSERT(memcmp(e->hash, h, CUS_SHA256_LEN) == 0);
    }
    g_ptr_array_free(a, TRUE);
    ev = g_strndup(chain->str, chain->len - 1);     /* the event cut short */
    CU_ASSERT_EQUAL(exp_chain_parse(ev, strlen(ev), &a, &err), -1);
    g_free(err);
    g_free(ev);
    g_string_free(chain, TRUE);
    g_string_free(evs, TRUE);

    /* the statement: strict, values unescaped */
    CU_ASSERT_EQUAL_FATAL(exp_statement_parse(stmt, strlen(stmt), &s, &err), 0);
    CU_ASSERT_EQUAL(s.format, EXP_MBOX);
    CU_ASSERT_STRING_EQUAL(s.user, "alice (sudo: bob)");
    CU_ASSERT_STRING_EQUAL(s.query, "subject:%off\nnext");
    CU_ASSERT_EQUAL(s.messages, 3);
    CU_ASSERT_EQUAL(s.checkpoint_seq, 9);
    CU_ASSERT_EQUAL(s.is_signed, 0);
    CU_ASSERT_EQUAL(s.signed_len, strlen(stmt));
    exp_statement_clear(&s);
    {
        static const char *const edits[][2] = {
            { "format mbox", "format rar" }, { "messages 3", "messages 03" },
            { "key none\n", "key none\nsignature x\n" }, { "%0Anext", "\nnext" },
            { "%25off", "%zzoff" }, { "time 2026-05-01T00:00:00Z", "time 2026-05-01" },
            { "checkpoint-seq 9\n", "" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(edits); i++) {
            GString *t = g_string_new(stmt);
            char *at = strstr(t->str, edits[i][0]);
            g_string_erase(t, at - t->str, (gssize)strlen(edits[i][0]));
            g_string_insert(t, at - t->str, edits[i][1]);
            CU_ASSERT_EQUAL(exp_statement_parse(t->str, t->len, &s, &err), -1);
            g_free(err);
            err = NULL;
            g_string_free(t, TRUE);
        }
    }
}

/* ---- the mbox ---- */

struct mbox_got {
    GPtrArray *msgs;        /* GString * */
    GArray *ids;
    GPtrArray *problems;    /* char * or NULL */
};

static void mg_begin(void *ctx, gint64 id, int noeol, gint64 offset)
{
    struct mbox_got *g = ctx;

    g_ptr_array_add(g->msgs, g_string_new(NULL));
    g_array_append_val(g->ids, id);
}

static void mg_data(void *ctx, const void *buf, size_t len)
{
    struct mbox_got *g = ctx;

    g_string_append_len(g_ptr_array_index(g->msgs, g->msgs->len - 1), buf, (gssize)len);
}

static void mg_end(void *ctx, const char *problem)
{
    struct mbox_got *g = ctx;

    g_ptr_array_add(g->problems, g_strdup(problem));
}

static int put_gstring(void *ctx, const void *buf, size_t len)
{
    g_string_append_len(ctx, buf, (gssize)len);
    return 0;
}

static void gstring_free(gpointer p)
{
    g_string_free(p, TRUE);
}

/* Read mbox in pieces of random sizes. */
static int mbox_read(const GString *mbox, GRand *r, struct mbox_got *g)
{
    static const struct exp_mbox_cbs cbs = { mg_begin, mg_data, mg_end };
    struct exp_mbox *m = exp_mbox_new(&cbs, g);
    char *err = NULL;
    size_t off = 0;
    int ret = 0;

    g->msgs = g_ptr_array_new_with_free_func(gstring_free);
    g->ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    g->problems = g_ptr_array_new_with_free_func(g_free);
    while (off < mbox->len && ret == 0) {
        size_t n = (size_t)g_rand_int_range(r, 1, 9);   /* not inside MIN(): once */

        n = MIN(mbox->len - off, n);
        ret = exp_mbox_feed(m, mbox->str + off, n, &err);
        off += n;
    }
    if (ret == 0)
        ret = exp_mbox_finish(m, &err);
    g_free(err);
    exp_mbox_free(&m);
    return ret;
}

static void mbox_got_free(struct mbox_got *g)
{
    g_ptr_array_free(g->msgs, TRUE);
    g_array_free(g->ids, TRUE);
    g_ptr_array_free(g->problems, TRUE);
}

static void test_mbox_roundtrip(void)
{
    static const char *const msgs[] = {
        "Subject: plain\n\nbody\n",
        "Subject: from lines\n\nFrom here\n>From there\n>>From everywhere\nFrom \nFrom\n",
        "Subject: no newline at the end\n\nlast line",
        "Subject: crlf\r\n\r\nbody\r\nFrom crlf\r\n",
        "Subject: blank lines at the end\n\nbody\n\n\n",
        "\n",
        "x",
        "x\r",
        ">From at the very start\n",
        "From at the very start\n",
        ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>From x\n",
        "Subject: F\n\nFro\nFrom\n>Fro\n>",
    };
    GRand *r = g_rand_new_with_seed(7);

    for (int round = 0; round < 30; round++) {
        GString *mbox = g_string_new(NULL);
        struct mbox_got g;

        for (size_t i = 0; i < G_N_ELEMENTS(msgs); i++)
            CU_ASSERT_EQUAL(exp_mbox_write((gint64)i + 1, 1777777777, msgs[i], strlen(msgs[i]),
                                           put_gstring, mbox), 0);
        CU_ASSERT_EQUAL_FATAL(mbox_read(mbox, r, &g), 0);
        CU_ASSERT_EQUAL_FATAL(g.msgs->len, G_N_ELEMENTS(msgs));
        for (size_t i = 0; i < G_N_ELEMENTS(msgs); i++) {
            GString *got = g_ptr_array_index(g.msgs, i);
            if (strcmp(got->str, msgs[i]) != 0 || got->len != strlen(msgs[i]))
                fprintf(stderr, "\nmbox message %zu came back as \"%s\"\n", i, got->str);
            CU_ASSERT_STRING_EQUAL(got->str, msgs[i]);
            CU_ASSERT_EQUAL(g_array_index(g.ids, gint64, i), (gint64)i + 1);
            CU_ASSERT_PTR_NULL(g_ptr_array_index(g.problems, i));
        }
        /* every From line of a message was quoted: only separators start with it */
        {
            int seps = 0;
            for (const char *p = mbox->str; p != NULL; p = strchr(p, '\n'), p = p ? p + 1 : p)
                if (strncmp(p, "From ", 5) == 0) {
                    CU_ASSERT(strncmp(p, "From custos-export-", 19) == 0);
                    seps++;
                }
            CU_ASSERT_EQUAL(seps, (int)G_N_ELEMENTS(msgs));
        }
        mbox_got_free(&g);
        g_string_free(mbox, TRUE);
    }
    g_rand_free(r);
}

static int each_cb(void *ctx, gint64 id, const void *raw, size_t len, const char *problem)
{
    GPtrArray *got = ctx;

    g_ptr_array_add(got, g_strdup_printf("%" G_GINT64_FORMAT ":%s:%.*s", id,
                                         problem != NULL ? "bad" : "ok", (int)len,
                                         (const char *)raw));
    return 0;
}

/* What import needs: the evidence names, each message of an exported
 * mbox byte-exact. */
static void test_for_import(void)
{
    GString *mbox = g_string_new(NULL);
    GPtrArray *got = g_ptr_array_new_with_free_func(g_free);
    char *err = NULL;

    CU_ASSERT_TRUE(exp_evidence_name("manifest.csv"));
    CU_ASSERT_TRUE(exp_evidence_name("SHA256SUMS"));
    CU_ASSERT_TRUE(exp_evidence_name("export.txt"));
    CU_ASSERT_FALSE(exp_evidence_name("messages/000001-2026-05-01-x.eml"));
    CU_ASSERT_FALSE(exp_evidence_name("x/manifest.csv"));
    exp_mbox_write(5, 0, "a\nFrom b\n", 10, put_gstring, mbox);
    exp_mbox_write(6, 0, "no eol", 6, put_gstring, mbox);
    CU_ASSERT_TRUE(exp_mbox_is_export(mbox->str, mbox->len));
    CU_ASSERT_FALSE(exp_mbox_is_export("From x@y Mon", 12));
    CU_ASSERT_EQUAL(exp_mbox_each(mbox->str, mbox->len, each_cb, got, &err), 0);
    CU_ASSERT_EQUAL_FATAL(got->len, 2);
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(got, 0), "5:ok:a\nFrom b\n");
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(got, 1), "6:ok:no eol");
    CU_ASSERT_EQUAL(exp_mbox_each("From x", 6, each_cb, got, &err), -1);
    g_free(err);
    g_ptr_array_free(got, TRUE);
    g_string_free(mbox, TRUE);
}

static void test_mbox_damage(void)
{
    GRand *r = g_rand_new_with_seed(11);
    GString *mbox = g_string_new(NULL);
    struct mbox_got g;
    char *s;

    /* not an mbox custos made */
    s = "Subject: x\n\nbody\n";
    g_string_assign(mbox, s);
    CU_ASSERT_EQUAL(mbox_read(mbox, r, &g), -1);
    mbox_got_free(&g);
    g_string_truncate(mbox, 0);
    CU_ASSERT_EQUAL(mbox_read(mbox, r, &g), -1);
    mbox_got_free(&g);

    /* a From line of another kind: a message of its own, id -1 */
    exp_mbox_write(1, 0, "a\n", 2, put_gstring, mbox);
    g_string_append(mbox, "From evil Mon Jan  1 00:00:00 2024\nb\n\n");
    exp_mbox_write(2, 0, "c\n", 2, put_gstring, mbox);
    CU_ASSERT_EQUAL_FATAL(mbox_read(mbox, r, &g), 0);
    CU_ASSERT_EQUAL_FATAL(g.msgs->len, 3);
    CU_ASSERT_EQUAL(g_array_index(g.ids, gint64, 1), -1);
    CU_ASSERT_STRING_EQUAL(((GString *)g_ptr_array_index(g.msgs, 2))->str, "c\n");
    mbox_got_free(&g);

    /* the blank line missing, and a -noeol that ends in a newline */
    g_string_assign(mbox, "From custos-export-1 Mon Jan  1 00:00:00 2024\na\n"
                    "From custos-export-2-noeol Mon Jan  1 00:00:00 2024\nb\n\n\n");
    CU_ASSERT_EQUAL_FATAL(mbox_read(mbox, r, &g), 0);
    CU_ASSERT_EQUAL_FATAL(g.msgs->len, 2);
    CU_ASSERT_PTR_NOT_NULL(g_ptr_array_index(g.problems, 0));
    CU_ASSERT_PTR_NOT_NULL(g_ptr_array_index(g.problems, 1));
    mbox_got_free(&g);

    /* cut short in the separator line */
    g_string_assign(mbox, "From custos-export-1 Mon Jan  1 00:00:00 2024\na\n\nFrom cust");
    CU_ASSERT_EQUAL_FATAL(mbox_read(mbox, r, &g), 0);
    CU_ASSERT_EQUAL(g.msgs->len, 2);
    CU_ASSERT_PTR_NULL(g_ptr_array_index(g.problems, 0));
    CU_ASSERT_PTR_NOT_NULL(g_ptr_array_index(g.problems, 1));
    mbox_got_free(&g);
    g_string_free(mbox, TRUE);
    g_rand_free(r);
}

/* ---- end to end: the archive ------------------------------------------------------- */

static char *ex_dir, *ex_conf, *ex_bin, *ex_arc, *ex_pub, *ex_msgs;

/* Messages an mbox finds awkward, and names that must be made safe. */
static const struct {
    const char *name, *text;
} crafted[] = {
    { "from-lines.eml", "From: Alice <alice@example.com>\nTo: bob@example.com\n"
      "Subject: From lines inside\nDate: Tue, 5 May 2026 10:00:00 +0000\n"
      "Message-ID: <from-lines@custos.test>\n\nFrom here on, it is quoted.\n>From me\n"
      ">>From you\nFrom \n" },
    { "no-eol.eml", "From: Alice <alice@example.com>\nTo: bob@example.com\n"
      "Subject: no newline at the end\nDate: Tue, 5 May 2026 10:01:00 +0000\n"
      "Message-ID: <no-eol@custos.test>\n\nthe last line has no newline" },
    { "crlf.eml", "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
      "Subject: crlf everywhere\r\nDate: Tue, 5 May 2026 10:02:00 +0000\r\n"
      "Message-ID: <crlf@custos.test>\r\n\r\nline one\r\nline two\r\n" },
    { "traversal.eml", "From: Mallory <mallory@example.net>\nTo: bob@example.com\n"
      "Subject: ../../../etc/passwd\xe2\x80\xae" "gpj.exe\nDate: Tue, 5 May 2026 10:03:00 +0000\n"
      "Message-ID: <traversal@custos.test>\n\nsee the name\n" },
    { "con.eml", "From: Mallory <mallory@example.net>\nTo: bob@example.com\nSubject: CON\n"
      "Message-ID: <con@custos.test>\n\nno date, a device name\n" },
    { "blank-end.eml", "From: Alice <alice@example.com>\nTo: bob@example.com\n"
      "Subject: =?UTF-8?B?5oql5Lu35Y2V77ya56ys5LqM54mI?=\n"
      "Date: Tue, 5 May 2026 10:04:00 +0000\nMessage-ID: <blank-end@custos.test>\n\n"
      "\xe6\x8a\xa5\xe4\xbb\xb7\n\n\n" },
};

static int run_cli(const char *conf, char **out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = cut_cli(ex_bin, conf, out, err, ap);
    va_end(ap);
    return rc;
}

/* custos-archive ARGS with no configuration at all (verify-export). */
static int run_bare(char **out, char **err, ...)
{
    GPtrArray *argv = g_ptr_array_new();
    va_list ap;
    const char *a;
    int rc;

    g_ptr_array_add(argv, ex_bin);
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(argv, (char *)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    rc = cut_run((char **)argv->pdata, out, err);
    g_ptr_array_free(argv, TRUE);
    return rc;
}

static int run_sh(const char *cmd)
{
    char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL }, *out = NULL, *err = NULL;
    int rc = cut_run(argv, &out, &err);

    if (rc != 0)
        fprintf(stderr, "\n$ %s\n%s%s", cmd, out, err);
    g_free(out);
    g_free(err);
    return rc;
}

static char *conf_new(const char *name, const char *arc, const char *sign)
{
    char *path = g_build_filename(ex_dir, name, NULL);
    char *text = sign != NULL ?
                 g_strdup_printf("[archive]\ndir = %s\n[chain]\nsign_key = %s\n", arc, sign) :
                 g_strdup_printf("[archive]\ndir = %s\n", arc);

    g_file_set_contents(path, text, -1, NULL);
    g_free(text);
    return path;
}

static int ex_init(void)
{
    char *cjk = cut_src("tests/data/cjk"), *sa = cut_corpus("spamassassin");
    char *gm = cut_corpus("gir1.2-gmime-3.0"), *cmd, *priv;
    int rc;

    ex_dir = cut_tmpdir();
    ex_bin = cut_bin("custos-archive");
    ex_arc = g_build_filename(ex_dir, "archive", NULL);
    ex_msgs = g_build_filename(ex_dir, "crafted", NULL);
    priv = g_build_filename(ex_dir, "sign.pem", NULL);
    ex_pub = g_build_filename(ex_dir, "sign.pub", NULL);
    cmd = g_strdup_printf("openssl genpkey -algorithm ed25519 -out %s && chmod 600 %s && "
                          "openssl pkey -in %s -pubout -out %s", priv, priv, priv, ex_pub);
    rc = run_sh(cmd);
    g_free(cmd);
    ex_conf = conf_new("custos.conf", ex_arc, priv);
    mkdir(ex_msgs, 0700);
    for (size_t i = 0; i < G_N_ELEMENTS(crafted); i++) {
        char *p = g_build_filename(ex_msgs, crafted[i].name, NULL);
        g_file_set_contents(p, crafted[i].text, -1, NULL);
        g_free(p);
    }
    if (rc == 0)
        rc = run_cli(ex_conf, NULL, NULL, "init", NULL);
    if (rc == 0)
        rc = run_cli(ex_conf, NULL, NULL, "import", cjk, sa, gm, ex_msgs, NULL);
    g_free(cjk);
    g_free(sa);
    g_free(gm);
    g_free(priv);
    return rc == 0 ? 0 : -1;
}

static int ex_clean(void)
{
    cut_rmtree(ex_dir);
    g_free(ex_dir);
    g_free(ex_conf);
    g_free(ex_bin);
    g_free(ex_arc);
    g_free(ex_pub);
    g_free(ex_msgs);
    return 0;
}

/* lower-case hex SHA-256 of every message of the archive at arc. */
static GHashTable *arc_shas(const char *arc)
{
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    char *path = g_build_filename(arc, "index.db", NULL);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT lower(hex(sha256)) FROM messages", -1, &q, NULL) ==
        SQLITE_OK)
        while (sqlite3_step(q) == SQLITE_ROW)
            g_hash_table_add(set, g_strdup((const char *)sqlite3_column_text(q, 0)));
    sqlite3_finalize(q);
    sqlite3_close(db);
    g_free(path);
    return set;
}

static gint64 db_i64(const char *arc, const char *sql)
{
    char *path = g_build_filename(arc, "index.db", NULL);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    gint64 v = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(q);
        v = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    g_free(path);
    return v;
}

/* The SHA-256 of the crafted message name. */
static char *crafted_sha(const char *name)
{
    unsigned char sha[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX];

    for (size_t i = 0; i < G_N_ELEMENTS(crafted); i++)
        if (strcmp(crafted[i].name, name) == 0)
            cus_sha256(crafted[i].text, strlen(crafted[i].text), sha);
    cus_hex(sha, CUS_SHA256_LEN, hex);
    return g_strdup(hex);
}

/* ---- verify-export, as a recipient runs it ---- */

struct vres {
    int rc;
    char *text;
    JsonParser *jp;
    JsonObject *root;
    JsonArray *problems, *warnings;
};

static void vres_free(struct vres *v)
{
    g_free(v->text);
    if (v->jp != NULL)
        g_object_unref(v->jp);
    memset(v, 0, sizeof(*v));
}

/* verify-export FILE [--key KEY], text and --json (same exit status). */
static void vexp(const char *file, const char *key, struct vres *v)
{
    char *out = NULL, *err = NULL, *jout = NULL;
    int jrc;

    memset(v, 0, sizeof(*v));
    if (key != NULL) {
        v->rc = run_bare(&out, &err, "verify-export", file, "--key", key, NULL);
        jrc = run_bare(&jout, NULL, "verify-export", "--json", file, "--key", key, NULL);
    } else {
        v->rc = run_bare(&out, &err, "verify-export", file, NULL);
        jrc = run_bare(&jout, NULL, "verify-export", "--json", file, NULL);
    }
    v->text = g_strconcat(out != NULL ? out : "", err != NULL ? err : "", NULL);
    CU_ASSERT_EQUAL(jrc, v->rc);
    v->jp = json_parser_new();
    if (json_parser_load_from_data(v->jp, jout != NULL ? jout : "", -1, NULL) &&
        json_parser_get_root(v->jp) != NULL &&
        JSON_NODE_HOLDS_OBJECT(json_parser_get_root(v->jp))) {
        v->root = json_node_get_object(json_parser_get_root(v->jp));
        v->problems = json_object_get_array_member(v->root, "problems");
        v->warnings = json_object_get_array_member(v->root, "warnings");
    } else if (v->rc <= 1) {
        fprintf(stderr, "\nverify-export --json is not JSON: %s\n", jout);
        CU_FAIL("verify-export --json prints JSON");
    }
    if (g_getenv("CUSTOS_TEST_SHOW_VERIFY") != NULL)
        fprintf(stderr, "\n--- verify-export %s (exit %d)\n%s", file, v->rc, v->text);
    g_free(out);
    g_free(err);
    g_free(jout);
}

static int vclean(const char *file, const char *key)
{
    struct vres v;
    int ok;

    vexp(file, key, &v);
    ok = v.rc == 0 && g_str_has_prefix(v.text, "OK: ") && v.root != NULL &&
         json_object_get_boolean_member(v.root, "ok") && v.problems != NULL &&
         json_array_get_length(v.problems) == 0;
    if (!ok)
        fprintf(stderr, "\nverify-export %s is not clean (exit %d):\n%s", file, v.rc, v.text);
    vres_free(&v);
    return ok;
}

/* Problems whose object contains obj and whose text contains what. */
static int vcount(const struct vres *v, const char *obj, const char *what)
{
    int n = 0;

    for (guint i = 0; v->problems != NULL && i < json_array_get_length(v->problems); i++) {
        JsonObject *p = json_array_get_object_element(v->problems, i);
        if ((obj == NULL || strstr(json_object_get_string_member(p, "object"), obj) != NULL) &&
            (what == NULL || strstr(json_object_get_string_member(p, "what"), what) != NULL))
            n++;
    }
    return n;
}

/* exit 1, "FAILED:", exactly `total` problems, one of them obj/what. */
static int vfails(const char *file, const char *key, int total, const char *obj,
                  const char *what)
{
    struct vres v;
    int ok;

    vexp(file, key, &v);
    ok = v.rc == 1 && strstr(v.text, "FAILED: ") != NULL && v.root != NULL &&
         !json_object_get_boolean_member(v.root, "ok") && v.problems != NULL &&
         (total < 0 || (int)json_array_get_length(v.problems) == total) &&
         vcount(&v, obj, what) >= 1;
    if (!ok)
        fprintf(stderr, "\nverify-export %s: expected exit 1 with %d problem(s), one \"%s\" "
                "... \"%s\"; got exit %d:\n%s", file, total, obj, what, v.rc, v.text);
    vres_free(&v);
    return ok;
}

/* export --format FMT -o FILE QUERY with ex_conf; stdout and stderr kept. */
static int export(const char *fmt, const char *file, const char *query, char **text_r)
{
    char *out = NULL, *err = NULL;
    int rc = run_cli(ex_conf, &out, &err, "export", "--format", fmt, "-o", file, query, NULL);

    if (text_r != NULL)
        *text_r = g_strconcat(out != NULL ? out : "", err != NULL ? err : "", NULL);
    else if (rc != 0)
        fprintf(stderr, "\nexport %s %s: exit %d\n%s%s", fmt, file, rc, out, err);
    g_free(out);
    g_free(err);
    return rc;
}

/* ---- rewriting a zip or tar the way an attacker would ---- */

/* Return the new bytes of a member, or NULL to drop it. */
typedef GBytes *edit_fn(const char *name, GBytes *data, void *ctx);

static int ar_rewrite(const char *in, const char *out, edit_fn *edit, void *ctx,
                      const char *add_name, const char *add_data)
{
    struct archive *r = archive_read_new(), *w = archive_write_new();
    struct archive_entry *e;
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0), old = uselocale(loc);
    int ret = -1, zip = g_str_has_suffix(in, ".zip");

    archive_read_support_format_zip_seekable(r);
    archive_read_support_format_tar(r);
    if (zip) {
        archive_write_set_format_zip(w);
        archive_write_set_format_option(w, "zip", "hdrcharset", "UTF-8");
    } else {
        archive_write_set_format_pax_restricted(w);
    }
    if (archive_read_open_filename(r, in, 65536) != ARCHIVE_OK ||
        archive_write_open_filename(w, out) != ARCHIVE_OK)
        goto out;
    while (archive_read_next_header(r, &e) == ARCHIVE_OK) {
        GByteArray *a = g_byte_array_new();
        char buf[65536];
        la_ssize_t n;
        GBytes *data, *nd;
        char *name = g_strdup(archive_entry_pathname_utf8(e));

        while ((n = archive_read_data(r, buf, sizeof(buf))) > 0)
            g_byte_array_append(a, (guint8 *)buf, (guint)n);
        data = g_byte_array_free_to_bytes(a);
        nd = edit != NULL ? edit(name, data, ctx) : g_bytes_ref(data);
        if (nd != NULL) {
            struct archive_entry *o = archive_entry_new();
            gsize len;
            const void *b = g_bytes_get_data(nd, &len);

            archive_entry_set_pathname_utf8(o, name);
            archive_entry_set_filetype(o, AE_IFREG);
            archive_entry_set_perm(o, 0644);
            archive_entry_set_size(o, (la_int64_t)len);
            archive_write_header(w, o);
            archive_write_data(w, b, len);
            archive_entry_free(o);
            g_bytes_unref(nd);
        }
        g_bytes_unref(data);
        g_free(name);
    }
    if (add_name != NULL) {
        struct archive_entry *o = archive_entry_new();
        archive_entry_set_pathname_utf8(o, add_name);
        archive_entry_set_filetype(o, AE_IFREG);
        archive_entry_set_perm(o, 0644);
        archive_entry_set_size(o, (la_int64_t)strlen(add_data));
        archive_write_header(w, o);
        archive_write_data(w, add_data, strlen(add_data));
        archive_entry_free(o);
    }
    ret = archive_write_close(w) == ARCHIVE_OK ? 0 : -1;
out:
    archive_read_free(r);
    archive_write_free(w);
    uselocale(old);
    freelocale(loc);
    return ret;
}

struct edit {
    const char *name;       /* the member (prefix) to edit */
    const char *from, *to;  /* replace the first from by to (from "": all of the
                             * member); to NULL: drop the member */
    int done;
};

static GBytes *edit_replace(const char *name, GBytes *data, void *ctx)
{
    struct edit *ed = ctx;
    gsize len;
    const char *b = g_bytes_get_data(data, &len);
    const char *at;
    GString *s;

    if (ed->done || !g_str_has_prefix(name, ed->name))
        return g_bytes_ref(data);
    ed->done = 1;
    if (ed->to == NULL)
        return NULL;
    if (*ed->from == '\0')
        return g_bytes_new(ed->to, strlen(ed->to));        /* all of it */
    at = g_strstr_len(b, (gssize)len, ed->from);
    if (at == NULL) {
        ed->done = 0;
        return g_bytes_ref(data);
    }
    s = g_string_new_len(b, at - b);
    g_string_append(s, ed->to);
    g_string_append_len(s, at + strlen(ed->from), (gssize)(len - (gsize)(at - b) -
                                                          strlen(ed->from)));
    return g_string_free_to_bytes(s);
}

/* ---- the tests ---- */

static char *tpath(const char *name)
{
    return g_build_filename(ex_dir, name, NULL);
}

/* Unpack with tools that are not custos (python3's zipfile, GNU tar),
 * then sha256sum -c. */
static int unpack_and_check(const char *file, const char *dir)
{
    char *cmd = g_str_has_suffix(file, ".zip") ?
        g_strdup_printf("mkdir -p %s && python3 -m zipfile -e %s %s && cd %s && "
                        "sha256sum --quiet --strict -c SHA256SUMS", dir, file, dir, dir) :
        g_strdup_printf("mkdir -p %s && tar -xf %s -C %s && cd %s && "
                        "sha256sum --quiet --strict -c SHA256SUMS", dir, file, dir, dir);
    int rc = run_sh(cmd);

    g_free(cmd);
    return rc;
}

/* Whether two sets of SHA-256s are the same (what differs said). */
static int same_set(GHashTable *want, GHashTable *got)
{
    GHashTableIter it;
    gpointer k;
    int missing = 0, extra = 0;

    g_hash_table_iter_init(&it, want);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(got, k))
            missing++;
    g_hash_table_iter_init(&it, got);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(want, k))
            extra++;
    if (missing || extra)
        fprintf(stderr, "\nimported: %d messages missing, %d extra\n", missing, extra);
    return missing == 0 && extra == 0;
}

static void roundtrip(const char *fmt)
{
    char *file = g_strdup_printf("%s/rt.%s", ex_dir, fmt), *text = NULL;
    char *dir = g_strdup_printf("%s/rt-%s", ex_dir, fmt);
    char *arc2 = g_strdup_printf("%s/arc-%s", ex_dir, fmt), *conf2, *src;
    GHashTable *want = arc_shas(ex_arc), *got;

    CU_ASSERT_EQUAL_FATAL(export(fmt, file, "*", &text), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "statement signed by ed25519:"));
    g_free(text);
    CU_ASSERT_TRUE(vclean(file, NULL));
    CU_ASSERT_TRUE(vclean(file, ex_pub));
    if (strcmp(fmt, "mbox") != 0) {
        CU_ASSERT_EQUAL(unpack_and_check(file, dir), 0);
        src = g_strdup_printf("%s/messages", dir);
    } else {
        char *cmd = g_strdup_printf("cd %s && sha256sum --quiet --strict -c rt.mbox.SHA256SUMS",
                                    ex_dir);
        CU_ASSERT_EQUAL(run_sh(cmd), 0);
        g_free(cmd);
        src = g_strdup(file);
    }
    /* into a fresh archive: the same messages -- from what was unpacked
     * (or the mbox), and from the zip or tar itself (its evidence skipped) */
    conf2 = conf_new("custos2.conf", arc2, NULL);
    CU_ASSERT_EQUAL(run_cli(conf2, NULL, NULL, "init", NULL), 0);
    CU_ASSERT_EQUAL(run_cli(conf2, NULL, NULL, "import", src, NULL), 0);
    got = arc_shas(arc2);
    CU_ASSERT(g_hash_table_size(want) > 30);
    CU_ASSERT_TRUE(same_set(want, got));
    if (strcmp(fmt, "mbox") != 0) {
        char *arc3 = g_strdup_printf("%s/arc-%s-whole", ex_dir, fmt);
        char *conf3 = conf_new("custos3.conf", arc3, NULL);
        GHashTable *got3;

        CU_ASSERT_EQUAL(run_cli(conf3, NULL, NULL, "init", NULL), 0);
        CU_ASSERT_EQUAL(run_cli(conf3, NULL, NULL, "import", file, NULL), 0);
        got3 = arc_shas(arc3);
        CU_ASSERT_TRUE(same_set(want, got3));
        g_hash_table_destroy(got3);
        g_free(conf3);
        g_free(arc3);
    }
    {
        /* the two an mbox changes most: "From " lines, no final newline;
         * import reads an exported mbox byte-exact (exp_mbox_each) */
        char *fl = crafted_sha("from-lines.eml"), *ne = crafted_sha("no-eol.eml");

        CU_ASSERT_TRUE(g_hash_table_contains(got, fl));
        CU_ASSERT_TRUE(g_hash_table_contains(got, ne));
        g_free(fl);
        g_free(ne);
    }
    g_hash_table_destroy(want);
    g_hash_table_destroy(got);
    g_free(conf2);
    g_free(src);
    g_free(arc2);
    g_free(dir);
    g_free(file);
}

static void test_roundtrip_zip(void) { roundtrip("zip"); }
static void test_roundtrip_tar(void) { roundtrip("tar"); }
static void test_roundtrip_mbox(void) { roundtrip("mbox"); }

/* The unpacked files are the archive's exact bytes, under safe names. */
static void test_exact_bytes_and_names(void)
{
    char *file = tpath("names.tar"), *dir = tpath("names"), *mdir, *out = NULL;
    GDir *d;
    const char *n;
    int count = 0, cjk = 0;

    CU_ASSERT_EQUAL_FATAL(export("tar", file, "*", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(unpack_and_check(file, dir), 0);
    mdir = g_build_filename(dir, "messages", NULL);
    d = g_dir_open(mdir, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((n = g_dir_read_name(d)) != NULL) {
        char *p = g_build_filename(mdir, n, NULL), *data = NULL, *id = g_strndup(n, 6);
        gsize len = 0;
        gint64 idn = g_ascii_strtoll(id, NULL, 10);
        char idbuf[24];

        count++;
        CU_ASSERT_TRUE(safename_ok(n, EXP_NAME_MAX));
        CU_ASSERT_TRUE(g_str_has_suffix(n, ".eml"));
        CU_ASSERT_PTR_NULL(strstr(n, ".."));
        CU_ASSERT_PTR_NULL(strstr(n, "\xe2\x80\xae"));
        if (strstr(n, "\xe8\xaf\xb7\xe6\x8a\x8a\xe5\xae\xa2\xe6\x88\xb7") != NULL)  /* 请把客户 */
            cjk++;
        /* show --raw gives the same bytes */
        g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, idn);
        CU_ASSERT_TRUE(g_file_get_contents(p, &data, &len, NULL));
        CU_ASSERT_EQUAL(run_cli(ex_conf, &out, NULL, "show", "--raw", idbuf, NULL), 0);
        CU_ASSERT(out != NULL && strlen(out) <= len && memcmp(out, data, len) == 0);
        g_free(out);
        out = NULL;
        g_free(data);
        g_free(id);
        g_free(p);
    }
    g_dir_close(d);
    CU_ASSERT(count > 30);
    CU_ASSERT(cjk >= 1);
    /* the hostile subjects */
    {
        char *cmd = g_strdup_printf("ls %s | grep -q -- '-_._._etc_passwd_gpj.exe.eml$' && "
                                    "ls %s | grep -q -- '-nodate-_CON.eml$'", mdir, mdir);
        CU_ASSERT_EQUAL(run_sh(cmd), 0);
        g_free(cmd);
    }
    g_free(mdir);
    g_free(dir);
    g_free(file);
}

/* chain.txt with one event changed (its "received" time) and its HASH
 * made to fit: one whose successor is in the export too. */
static GBytes *forge_event(const char *name, GBytes *data, void *ctx)
{
    GPtrArray *evs = NULL;
    GString *out;
    gsize len;
    const char *b = g_bytes_get_data(data, &len);
    char *err = NULL;
    struct exp_event *victim = NULL;

    if (strcmp(name, EXP_CHAIN) != 0)
        return g_bytes_ref(data);
    CU_ASSERT_EQUAL_FATAL(exp_chain_parse(b, len, &evs, &err), 0);
    for (guint i = 0; i < evs->len && victim == NULL; i++)
        for (guint j = 0; j < evs->len; j++)
            if (((struct exp_event *)g_ptr_array_index(evs, j))->seq ==
                ((struct exp_event *)g_ptr_array_index(evs, i))->seq + 1)
                victim = g_ptr_array_index(evs, i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(victim);
    out = g_string_new("custos-export-chain 1\n");
    for (guint i = 0; i < evs->len; i++) {
        struct exp_event *e = g_ptr_array_index(evs, i);
        GString *ev = g_string_new_len(e->bytes, (gssize)e->len);
        unsigned char h[CUS_SHA256_LEN];
        char ph[CUS_SHA256_HEX], hh[CUS_SHA256_HEX];

        memcpy(h, e->hash, CUS_SHA256_LEN);
        if (e == victim) {
            char *at = strstr(ev->str, "\nreceived ");
            CU_ASSERT_PTR_NOT_NULL_FATAL(at);
            at[11] = at[11] == '1' ? '2' : '1';
            chain_step(e->prev, ev->str, ev->len, h);
        }
        cus_hex(e->prev, CUS_SHA256_LEN, ph);
        cus_hex(h, CUS_SHA256_LEN, hh);
        g_string_append_printf(out, "event %" G_GINT64_FORMAT " %s %s %zu\n", e->seq, ph, hh,
                               ev->len);
        g_string_append_len(out, ev->str, (gssize)ev->len);
        g_string_free(ev, TRUE);
    }
    g_ptr_array_free(evs, TRUE);
    return g_string_free_to_bytes(out);
}

/* manifest.csv of a zip or tar export (g_free). */
static char *manifest_of(const char *file)
{
    struct archive *r = archive_read_new();
    struct archive_entry *e;
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0), old = uselocale(loc);
    char *m = NULL;
    int rc;

    archive_read_support_format_zip_seekable(r);
    archive_read_support_format_tar(r);
    if (archive_read_open_filename(r, file, 65536) == ARCHIVE_OK)
        while (m == NULL && ((rc = archive_read_next_header(r, &e)) == ARCHIVE_OK ||
                             rc == ARCHIVE_WARN))
            if (g_strcmp0(archive_entry_pathname_utf8(e), EXP_MANIFEST) == 0) {
                la_int64_t sz = archive_entry_size(e);
                m = g_malloc0((gsize)sz + 1);
                if (archive_read_data(r, m, (size_t)sz) != sz) {
                    g_free(m);
                    m = NULL;
                    break;
                }
            }
    archive_read_free(r);
    uselocale(old);
    freelocale(loc);
    return m;
}

static void test_tamper_zip_tar(void)
{
    static const char *const fmts[] = { "zip", "tar" };

    for (size_t i = 0; i < G_N_ELEMENTS(fmts); i++) {
        char *file = g_strdup_printf("%s/t.%s", ex_dir, fmts[i]), *bad;
        struct edit ed;

        CU_ASSERT_EQUAL_FATAL(export(fmts[i], file, "*", NULL), 0);
        bad = g_strdup_printf("%s/bad.%s", ex_dir, fmts[i]);

        /* one byte of an .eml changed */
        ed = (struct edit){ "messages/", "Subject:", "Subject;", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(ed.done);
        CU_ASSERT_TRUE(vfails(bad, NULL, 1, "messages/", "altered"));

        /* a manifest row's id edited: the row no longer fits its file */
        ed = (struct edit){ EXP_MANIFEST, "\r\n", "\r\n9", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, -1, EXP_MANIFEST, "not one custos makes"));
        /* a row's from edited: only the statement's hash of the manifest shows it */
        ed = (struct edit){ EXP_MANIFEST, "alice@example.com", "alice@example.org", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(ed.done);
        CU_ASSERT_TRUE(vfails(bad, NULL, 1, EXP_MANIFEST, "altered"));
        /* a row's sha256 edited: the row is named */
        {
            char *m = manifest_of(file), **lines, **f, *sha, *nsha;
            guint nf;

            CU_ASSERT_PTR_NOT_NULL_FATAL(m);
            lines = g_strsplit(m, "\r\n", 3);
            f = g_strsplit(lines[1], ",", -1);
            nf = g_strv_length(f);
            sha = g_strdup(f[nf - 3]);
            nsha = g_strdup(sha);
            nsha[0] = nsha[0] == '0' ? '1' : '0';
            CU_ASSERT_EQUAL(strlen(sha), 64);
            ed = (struct edit){ EXP_MANIFEST, sha, nsha, 0 };
            CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
            CU_ASSERT_TRUE(ed.done);
            CU_ASSERT_TRUE(vfails(bad, NULL, 2, EXP_MANIFEST, "sha256 was edited"));
            g_free(sha);
            g_free(nsha);
            g_strfreev(f);
            g_strfreev(lines);
            g_free(m);
        }

        /* a message removed */
        ed = (struct edit){ "messages/", NULL, NULL, 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, 1, "messages/", "missing"));

        /* an extra message, and an extra file anywhere */
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, NULL, NULL, "messages/999999-2026-01-01-x.eml",
                                   "Subject: slipped in\n\nhello\n"), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, 1, "messages/999999", "not in the manifest"));
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, NULL, NULL, "../evil.sh", "rm -rf /\n"), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, 1, "../evil.sh", "not part of a custos export"));

        /* the statement edited */
        ed = (struct edit){ EXP_STATEMENT, "query *", "query from:nobody", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(ed.done);
        CU_ASSERT_TRUE(vfails(bad, NULL, 1, EXP_STATEMENT, "bad signature"));

        /* a chain event edited */
        ed = (struct edit){ EXP_CHAIN, "type add", "type del", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, -1, EXP_CHAIN, NULL));

        /* an event forged with its HASH recomputed: the next event's PREV
         * no longer links to it */
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, forge_event, NULL, NULL, NULL), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, -1, EXP_CHAIN, "its PREV is not"));

        /* SHA256SUMS edited */
        ed = (struct edit){ EXP_SUMS, "  messages/", "  messages/x", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, -1, NULL, NULL));

        /* SHA256SUMS emptied: every file unlisted (and an empty member read) */
        ed = (struct edit){ EXP_SUMS, "", "", 0 };
        CU_ASSERT_EQUAL(ar_rewrite(file, bad, edit_replace, &ed, NULL, NULL), 0);
        CU_ASSERT_TRUE(vfails(bad, NULL, -1, EXP_MANIFEST, "not listed in"));

        /* the bytes of the file itself: one flipped in the middle */
        {
            gsize len;
            char *data = NULL;
            g_file_get_contents(file, &data, &len, NULL);
            data[len / 3] ^= 0x20;
            g_file_set_contents(bad, data, (gssize)len, NULL);
            {
                struct vres v;
                vexp(bad, NULL, &v);
                CU_ASSERT(v.rc == 1 || v.rc == 65);
                CU_ASSERT(v.rc != 0);
                vres_free(&v);
            }
            g_free(data);
        }
        g_free(bad);
        g_free(file);
    }
}

static void test_tamper_mbox(void)
{
    char *file = tpath("t.mbox"), *bad = tpath("bad.mbox"), *data = NULL, *p;
    static const char *const side[] = { "manifest.csv", "chain.txt", "checkpoint.txt",
                                        "signing-key.pem", "export.txt", "README.txt",
                                        "SHA256SUMS" };
    gsize len;
    GString *s;

    CU_ASSERT_EQUAL_FATAL(export("mbox", file, "*", NULL), 0);
    CU_ASSERT_TRUE(vclean(file, ex_pub));
    g_file_get_contents(file, &data, &len, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(side); i++) {
        char *a = g_strdup_printf("%s.%s", file, side[i]), *b = g_strdup_printf("%s.%s", bad,
                                                                                side[i]);
        char *d = NULL;
        gsize l;
        g_file_get_contents(a, &d, &l, NULL);
        g_file_set_contents(b, d, (gssize)l, NULL);
        g_free(d);
        g_free(a);
        g_free(b);
    }
    /* renamed: only a warning */
    g_file_set_contents(bad, data, (gssize)len, NULL);
    {
        struct vres v;
        vexp(bad, ex_pub, &v);
        CU_ASSERT_EQUAL(v.rc, 0);
        CU_ASSERT(v.warnings != NULL && json_array_get_length(v.warnings) == 1);
        vres_free(&v);
    }
    /* one byte of a message */
    s = g_string_new_len(data, (gssize)len);
    p = strstr(s->str, "\nSubject:");
    p[1] = 's';
    g_file_set_contents(bad, s->str, (gssize)s->len, NULL);
    CU_ASSERT_TRUE(vfails(bad, NULL, 1, "bad.mbox (message", "altered"));
    /* a message added */
    g_string_assign(s, data);
    g_string_append(s, "From evil@example.com Mon Jan  1 00:00:00 2024\nSubject: x\n\nhi\n\n");
    g_file_set_contents(bad, s->str, (gssize)s->len, NULL);
    CU_ASSERT_TRUE(vfails(bad, NULL, 1, "bad.mbox (message", "\"From \" line"));
    /* a message removed (the second) */
    g_string_assign(s, data);
    {
        char *a = strstr(s->str + 1, "\nFrom custos-export-"), *b = strstr(a + 1,
                                                                          "\nFrom custos-export-");
        g_string_erase(s, a - s->str, b - a);
    }
    g_file_set_contents(bad, s->str, (gssize)s->len, NULL);
    CU_ASSERT_TRUE(vfails(bad, NULL, 1, "bad.mbox (message", "missing"));
    /* the statement edited */
    g_file_set_contents(bad, data, (gssize)len, NULL);
    {
        char *a = g_strdup_printf("%s.export.txt", bad), *d = NULL;
        gsize l;
        g_file_get_contents(a, &d, &l, NULL);
        p = strstr(d, "messages ");
        p[9] = p[9] == '9' ? '8' : '9';
        g_file_set_contents(a, d, (gssize)l, NULL);
        CU_ASSERT_TRUE(vfails(bad, NULL, -1, "bad.mbox.export.txt", "bad signature"));
        g_free(d);
        g_free(a);
    }
    g_string_free(s, TRUE);
    g_free(data);
    g_free(bad);
    g_free(file);
}

static void test_keys(void)
{
    char *file = tpath("k.zip"), *other = tpath("other.pem"), *cmd;

    CU_ASSERT_EQUAL_FATAL(export("zip", file, "subject:crlf", NULL), 0);
    cmd = g_strdup_printf("openssl genpkey -algorithm ed25519 -out %s", other);
    CU_ASSERT_EQUAL(run_sh(cmd), 0);
    CU_ASSERT_TRUE(vclean(file, ex_pub));
    CU_ASSERT_TRUE(vfails(file, other, 2, EXP_STATEMENT, "not by the key checked with"));
    /* a key file that is not there: not a problem of the export */
    {
        struct vres v;
        vexp(file, "/nonexistent/key.pem", &v);
        CU_ASSERT_EQUAL(v.rc, 66);
        vres_free(&v);
    }
    g_free(cmd);
    g_free(other);
    g_free(file);
}

/* An archive without [chain] sign_key: exported, verified, with warnings. */
static void test_unsigned(void)
{
    char *arc = tpath("arc-unsigned"), *conf = conf_new("unsigned.conf", arc, NULL);
    char *file = tpath("u.zip"), *out = NULL, *err = NULL;
    struct vres v;

    CU_ASSERT_EQUAL_FATAL(run_cli(conf, NULL, NULL, "init", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(run_cli(conf, NULL, NULL, "import", ex_msgs, NULL), 0);
    CU_ASSERT_EQUAL(run_cli(conf, &out, &err, "export", "--format", "zip", "-o", file, "*",
                            NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "statement not signed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not signed"));
    vexp(file, NULL, &v);
    CU_ASSERT_EQUAL(v.rc, 0);
    CU_ASSERT(v.warnings != NULL && json_array_get_length(v.warnings) == 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(v.text, "not signed"));
    vres_free(&v);
    g_free(out);
    g_free(err);
    g_free(file);
    g_free(conf);
    g_free(arc);
}

static void test_force_and_nothing(void)
{
    char *file = tpath("f.zip"), *text = NULL, *data = NULL, *data2 = NULL;
    gsize len, len2;

    g_file_set_contents(file, "precious", -1, NULL);
    CU_ASSERT_EQUAL(export("zip", file, "*", &text), 73);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "exists already"));
    g_free(text);
    g_file_get_contents(file, &data, &len, NULL);
    CU_ASSERT_STRING_EQUAL(data, "precious");
    g_free(data);
    CU_ASSERT_EQUAL(run_cli(ex_conf, NULL, NULL, "export", "--format", "zip", "-o", file,
                            "--force", "subject:crlf", NULL), 0);
    CU_ASSERT_TRUE(vclean(file, NULL));
    g_file_get_contents(file, &data, &len, NULL);
    /* again with --force: replaced, still clean */
    CU_ASSERT_EQUAL(run_cli(ex_conf, NULL, NULL, "export", "--format", "zip", "-o", file,
                            "--force", "from:alice", NULL), 0);
    CU_ASSERT_TRUE(vclean(file, NULL));
    g_file_get_contents(file, &data2, &len2, NULL);
    CU_ASSERT(len != len2 || memcmp(data, data2, len) != 0);
    g_free(data);
    g_free(data2);
    g_free(file);

    /* an mbox's evidence files count too */
    file = tpath("f.mbox");
    {
        char *side = tpath("f.mbox.manifest.csv");
        g_file_set_contents(side, "x", -1, NULL);
        CU_ASSERT_EQUAL(export("mbox", file, "*", &text), 73);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "f.mbox.manifest.csv exists already"));
        g_free(text);
        CU_ASSERT_FALSE(g_file_test(file, G_FILE_TEST_EXISTS));
        g_free(side);
    }
    g_free(file);

    /* a directory that is not there: 73 */
    file = tpath("no-such-dir/x.zip");
    CU_ASSERT_EQUAL(export("zip", file, "*", &text), 73);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "cannot create files in"));
    g_free(text);
    g_free(file);

    /* a query that matches nothing: exit 1, nothing written */
    file = tpath("none.zip");
    CU_ASSERT_EQUAL(export("zip", file, "subject:no-such-subject-anywhere", &text), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "no message matches"));
    CU_ASSERT_FALSE(g_file_test(file, G_FILE_TEST_EXISTS));
    g_free(text);
    /* a query that does not parse: 65 */
    CU_ASSERT_EQUAL(export("zip", file, "(unbalanced", &text), 65);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "unbalanced"));
    g_free(text);
    CU_ASSERT_FALSE(g_file_test(file, G_FILE_TEST_EXISTS));
    g_free(file);
    /* nothing left behind in the directory: no temp files */
    {
        char *cmd = g_strdup_printf("! ls -a %s | grep -q 'export-\\|\\.tmp-'", ex_dir);
        CU_ASSERT_EQUAL(run_sh(cmd), 0);
        g_free(cmd);
    }
}

/* The export's audit entry: results, the file and the manifest's hash. */
static void test_audit(void)
{
    char *file = tpath("a.tar"), *out = NULL, *sql;
    const char *h;

    CU_ASSERT_EQUAL_FATAL(run_cli(ex_conf, &out, NULL, "export", "--format", "tar", "-o", file,
                                  "from:alice", NULL), 0);
    h = strstr(out, "manifest sha256 ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    sql = g_strdup_printf("SELECT results FROM audit WHERE command = 'export' AND status = 0 "
                          "AND detail = '%s, manifest sha256 %.64s'", file, h + 16);
    {
        char *count = NULL;
        CU_ASSERT_EQUAL(run_cli(ex_conf, &count, NULL, "search", "--count", "from:alice",
                                NULL), 0);
        CU_ASSERT(count != NULL && atoi(count) >= 4);
        CU_ASSERT_EQUAL(db_i64(ex_arc, sql), count != NULL ? atoi(count) : -2);
        g_free(count);
    }
    g_free(sql);
    g_free(out);
    g_free(file);
}

/* No checkpoint covers the messages: the export makes one; with the
 * writer's lock taken it waits, then fails saying what to do. */
static void test_checkpoint_made(void)
{
    char *file = tpath("c.zip"), *text = NULL, *lock = g_build_filename(ex_arc, "store", "lock",
                                                                         NULL);
    gint64 before;
    int fd;

    CU_ASSERT(db_i64(ex_arc, "DELETE FROM checkpoints") >= 0);
    before = db_i64(ex_arc, "SELECT count(*) FROM checkpoints");
    CU_ASSERT_EQUAL(before, 0);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    g_setenv("CUSTOS_LOCK_WAIT", "1", TRUE);     /* archive.h: how long a writer waits */
    CU_ASSERT_EQUAL(run_cli(ex_conf, NULL, &text, "export", "--format", "zip", "-o", file,
                            "*", NULL), 75);
    g_unsetenv("CUSTOS_LOCK_WAIT");
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "custos-archive checkpoint"));
    CU_ASSERT_FALSE(g_file_test(file, G_FILE_TEST_EXISTS));
    g_free(text);
    /* the writer lets go while the export waits: it goes on */
    {
        char *file2 = tpath("c2.zip");
        char *argv[] = { ex_bin, "-c", ex_conf, "export", "--format", "zip", "-o", file2,
                         "*", NULL };
        GPid pid;
        int status = -1;

        CU_ASSERT_FATAL(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                                      G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                                      NULL, NULL, &pid, NULL));
        g_usleep(G_USEC_PER_SEC);
        CU_ASSERT_FALSE(g_file_test(file2, G_FILE_TEST_EXISTS));
        flock(fd, LOCK_UN);
        close(fd);
        waitpid(pid, &status, 0);
        g_spawn_close_pid(pid);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CU_ASSERT_TRUE(vclean(file2, ex_pub));
        CU_ASSERT_EQUAL(db_i64(ex_arc, "SELECT count(*) FROM checkpoints"), 1);
        g_free(file2);
    }
    CU_ASSERT(db_i64(ex_arc, "DELETE FROM checkpoints") >= 0);
    CU_ASSERT_EQUAL(export("zip", file, "*", &text), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "(made now)"));
    CU_ASSERT_EQUAL(db_i64(ex_arc, "SELECT count(*) FROM checkpoints"), 1);
    CU_ASSERT_TRUE(vclean(file, ex_pub));
    g_free(text);
    g_free(lock);
    g_free(file);
}

/* The signing key changed: the export makes a checkpoint with the new
 * key, so both signatures check with it. */
static void test_new_key(void)
{
    char *priv = tpath("new.pem"), *pub = tpath("new.pub"), *arc = tpath("arc-rot");
    char *conf_a = conf_new("rot-a.conf", arc, NULL), *conf_b, *cmd, *file = tpath("rot.zip");
    char *out = NULL;

    cmd = g_strdup_printf("openssl genpkey -algorithm ed25519 -out %s && chmod 600 %s && "
                          "openssl pkey -in %s -pubout -out %s", priv, priv, priv, pub);
    CU_ASSERT_EQUAL_FATAL(run_sh(cmd), 0);
    conf_b = conf_new("rot-b.conf", arc, priv);
    CU_ASSERT_EQUAL_FATAL(run_cli(conf_a, NULL, NULL, "init", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(run_cli(conf_a, NULL, NULL, "import", ex_msgs, NULL), 0);
    CU_ASSERT_EQUAL(run_cli(conf_b, &out, NULL, "export", "--format", "zip", "-o", file, "*",
                            NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out != NULL ? strstr(out, "(made now)") : NULL);
    CU_ASSERT_TRUE(vclean(file, pub));
    g_free(out);
    g_free(cmd);
    g_free(file);
    g_free(conf_a);
    g_free(conf_b);
    g_free(arc);
    g_free(priv);
    g_free(pub);
}

/* Killed at any moment: no FILE, no temp file; or it finished, clean. */
static void test_interrupted(void)
{
    static const int delays_ms[] = { 1, 5, 15, 40 };

    for (size_t i = 0; i < G_N_ELEMENTS(delays_ms); i++) {
        char *dir = g_strdup_printf("%s/kill%zu", ex_dir, i), *file = g_strdup_printf(
            "%s/k.tar", dir);
        char *argv[] = { ex_bin, "-c", ex_conf, "export", "--format", "tar", "-o", file, "*",
                         NULL };
        GPid pid;
        int status = 0;
        GDir *d;
        const char *n;
        int files = 0;

        mkdir(dir, 0700);
        CU_ASSERT_FATAL(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                                      G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                                      NULL, NULL, &pid, NULL));
        g_usleep((gulong)delays_ms[i] * 1000);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        g_spawn_close_pid(pid);
        d = g_dir_open(dir, 0, NULL);
        while (d != NULL && (n = g_dir_read_name(d)) != NULL)
            files++;
        if (d != NULL)
            g_dir_close(d);
        /* killed before the end: nothing; or the whole export, which checks out */
        CU_ASSERT(files <= 1);
        if (files == 1)
            CU_ASSERT_TRUE(vclean(file, NULL));
        if (files == 0)
            CU_ASSERT_TRUE(WIFSIGNALED(status));
        g_free(file);
        g_free(dir);
    }
}

CUS_SUITE(export)
{
    CU_pSuite s = CU_add_suite("export: safe names and formats", NULL, NULL);

    CU_add_test(s, "safename: the rules, table", test_safename_table);
    CU_add_test(s, "safename: NUL inside, safename_ok", test_safename_nul);
    CU_add_test(s, "safename: 20000 random names keep every rule", test_safename_random);
    CU_add_test(s, "manifest.csv: RFC 4180 round trip", test_manifest_csv);
    CU_add_test(s, "manifest.csv: only what export writes parses", test_manifest_strict);
    CU_add_test(s, "SHA256SUMS, chain.txt, export.txt parsers", test_sums_chain_statement);
    CU_add_test(s, "mbox: byte-exact round trip in any pieces", test_mbox_roundtrip);
    CU_add_test(s, "mbox: damage reported", test_mbox_damage);
    CU_add_test(s, "for import: evidence names, exported mbox byte-exact", test_for_import);

    s = CU_add_suite("export: end to end", ex_init, ex_clean);
    CU_add_test(s, "round trip zip: verify-export, sha256sum -c, import", test_roundtrip_zip);
    CU_add_test(s, "round trip tar: verify-export, sha256sum -c, import", test_roundtrip_tar);
    CU_add_test(s, "round trip mbox: verify-export, sha256sum -c, import", test_roundtrip_mbox);
    CU_add_test(s, "exact bytes under safe names (CJK, traversal, CON)",
                test_exact_bytes_and_names);
    CU_add_test(s, "zip and tar tampered: each caught", test_tamper_zip_tar);
    CU_add_test(s, "mbox tampered: each caught", test_tamper_mbox);
    CU_add_test(s, "signed: the right key checks, a wrong one fails", test_keys);
    CU_add_test(s, "unsigned archive: exported, verified with warnings", test_unsigned);
    CU_add_test(s, "no overwrite without --force; nothing matched; bad query",
                test_force_and_nothing);
    CU_add_test(s, "audit entry: results, file, manifest hash", test_audit);
    CU_add_test(s, "no covering checkpoint: made; writer busy: waits, goes on or fails",
                test_checkpoint_made);
    CU_add_test(s, "a new signing key: a new checkpoint", test_new_key);
    CU_add_test(s, "killed mid-way: nothing left", test_interrupted);
}
