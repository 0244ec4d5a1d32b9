/*
 * test-tok.c - the "custos" FTS5 tokenizer: token tables, then real FTS5
 *
 * Tokens are written as one string, space-separated, a colocated token
 * prefixed with '+': "请把客户" in document mode is "请把 把客 客户 +户".
 */
#include <string.h>
#include <sqlite3.h>

#include "cutest.h"
#include "custos/tok.h"

#define DOC FTS5_TOKENIZE_DOCUMENT
#define QRY FTS5_TOKENIZE_QUERY
#define PFX (FTS5_TOKENIZE_QUERY | FTS5_TOKENIZE_PREFIX)

static int collect_cb(void *ctx, int tflags, const char *token, int ntoken,
                      int start, int end)
{
    GString *s = ctx;

    if (s->len > 0)
        g_string_append_c(s, ' ');
    if (tflags & FTS5_TOKEN_COLOCATED)
        g_string_append_c(s, '+');
    g_string_append_len(s, token, ntoken);
    return SQLITE_OK;
}

static char *tokens(const char *text, int len, int flags)
{
    GString *s = g_string_new(NULL);

    tok_run(text, len < 0 ? (int)strlen(text) : len, flags, collect_cb, s);
    return g_string_free(s, FALSE);
}

static const struct {
    const char *in;
    int flags;
    const char *out;
} tok_cases[] = {
    /* ASCII */
    { "Hello, World!", DOC, "hello world" },
    { "  foo_bar-baz.qux  ", DOC, "foo bar baz qux" },
    { "Q3 2024 x1y2", DOC, "q3 2024 x1y2" },
    { "", DOC, "" },
    { " \t\n.,;!?", DOC, "" },
    /* accents and case: NFKC, folded, diacritics removed */
    { "Café naïve RÉSUMÉ", DOC, "cafe naive resume" },
    { "Ångström Øre Straße", DOC, "angstrom øre straße" },
    { "İstanbul ΣΟΦΟΣ σοφος", DOC, "istanbul σοφοσ σοφοσ" },
    { "ﬁle ⑴ ²", DOC, "file 1 2" },
    { "Cafe\xcc\x81", DOC, "cafe" },                    /* combining acute */
    /* full width latin and digits are not CJK */
    { "ＡＢＣ１２３ ｑ３", DOC, "abc123 q3" },
    { "合同ＡＢ－２０２４", DOC, "合同 +同 ab 2024" },
    /* CJK bigrams, last char colocated in documents */
    { "请把客户资料发我", DOC, "请把 把客 客户 户资 资料 料发 发我 +我" },
    { "请把客户资料发我", QRY, "请把 把客 客户 户资 资料 料发 发我" },
    { "客户", DOC, "客户 +户" },
    { "客户", QRY, "客户" },
    { "客", DOC, "客" },
    { "客", QRY, "客" },
    { "客", PFX, "客" },
    { "Q3报告 2024年度", DOC, "q3 报告 +告 2024 年度 +度" },
    { "Q3报告 2024年", QRY, "q3 报告 2024 年" },
    { "Hello世界123", DOC, "hello 世界 +界 123" },
    /* full-width punctuation and the ideographic space separate */
    { "（全角）标点，测试。", DOC, "全角 +角 标点 +点 测试 +试" },
    { "客户　资料", QRY, "客户 资料" },
    /* Japanese: kana and kanji in one run; ・ separates */
    { "会議の資料", DOC, "会議 議の の資 資料 +料" },
    { "カタカナ・テスト", DOC, "カタ タカ カナ +ナ テス スト +ト" },
    { "ひらがな", QRY, "ひら らが がな" },
    { "ｶﾞｲﾄﾞ", DOC, "ガイ イド +ド" },                   /* half width */
    { "人々", DOC, "人々 +々" },
    /* Korean */
    { "한국어 테스트", DOC, "한국 국어 +어 테스 스트 +트" },
    /* Han extension B, compatibility ideograph */
    { "\xf0\xa0\x80\x80\xf0\xa0\x80\x81", DOC,
      "\xf0\xa0\x80\x80\xf0\xa0\x80\x81 +\xf0\xa0\x80\x81" },
    { "\xef\xa4\x80", DOC, "\xe8\xb1\x88" },          /* U+F900 -> U+8C48 */
    /* emoji are separators */
    { "a😀b ❤️ c👍🏽d 🇨🇳", DOC, "a b c d" },
    { "客户😀资料", DOC, "客户 +户 资料 +料" },
    /* invalid UTF-8 skipped */
    { "bad\xff\xc3x\xe4\xb8", DOC, "bad x" },
    { "\xed\xa0\x80ok", DOC, "ok" },                  /* surrogate */
    { "\xc0\xafz\xf8\x88\x80\x80\x80", DOC, "z" },    /* overlong, 5 bytes */
    { "客\xff户", DOC, "客 户" },
};

static void test_tok_table(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(tok_cases); i++) {
        char *got = tokens(tok_cases[i].in, -1, tok_cases[i].flags);
        if (strcmp(got, tok_cases[i].out) != 0)
            fprintf(stderr, "\ncase %zu: %s -> [%s], want [%s]\n", i,
                    tok_cases[i].in, got, tok_cases[i].out);
        CU_ASSERT_STRING_EQUAL(got, tok_cases[i].out);
        g_free(got);
    }
}

static int offsets_cb(void *ctx, int tflags, const char *token, int ntoken,
                      int start, int end)
{
    g_string_append_printf(ctx, "%.*s:%d-%d ", ntoken, token, start, end);
    return SQLITE_OK;
}

static void test_tok_offsets(void)
{
    GString *s = g_string_new(NULL);
    const char *text = "Café 客户 ＡＢ";

    tok_run(text, (int)strlen(text), DOC, offsets_cb, s);
    CU_ASSERT_STRING_EQUAL(s->str, "cafe:0-5 客户:6-12 户:9-12 ab:13-19 ");
    g_string_free(s, TRUE);
}

static int stop_cb(void *ctx, int tflags, const char *token, int ntoken,
                   int start, int end)
{
    int *n = ctx;
    return ++*n == 2 ? SQLITE_NOMEM : SQLITE_OK;
}

static void test_tok_stop_and_limits(void)
{
    int n = 0;
    char *long_word = g_strnfill(1000, 'a'), *got, *want;

    /* the callback's error stops the run and is returned */
    CU_ASSERT_EQUAL(tok_run("a b c d", 7, DOC, stop_cb, &n), SQLITE_NOMEM);
    CU_ASSERT_EQUAL(n, 2);
    n = 0;
    CU_ASSERT_EQUAL(tok_run("客户资料", 12, DOC, stop_cb, &n), SQLITE_NOMEM);
    CU_ASSERT_EQUAL(n, 2);
    /* a long word is cut at 128 bytes, in documents and queries alike */
    got = tokens(long_word, -1, DOC);
    want = g_strnfill(128, 'a');
    CU_ASSERT_STRING_EQUAL(got, want);
    g_free(got);
    got = tokens(long_word, -1, QRY);
    CU_ASSERT_STRING_EQUAL(got, want);
    g_free(got);
    g_free(want);
    g_free(long_word);
    /* a length shorter than the string is honoured (no NUL needed) */
    got = tokens("客户资料", 6, DOC);
    CU_ASSERT_STRING_EQUAL(got, "客户 +户");
    g_free(got);
    got = tokens("客户资料", 7, DOC);                 /* cut mid-char */
    CU_ASSERT_STRING_EQUAL(got, "客户 +户");
    g_free(got);
}

static void test_tok_is_cjk(void)
{
    static const struct { unsigned int c; int cjk; } cases[] = {
        { 'a', 0 }, { 0xFF21, 0 } /* Ａ */, { 0xFF11, 0 } /* １ */,
        { 0x3001, 0 } /* 、 */, { 0x3002, 0 } /* 。 */, { 0xFF0C, 0 } /* ， */,
        { 0x3000, 0 } /* ideographic space */, { 0x30FB, 0 } /* ・ */,
        { 0x4E00, 1 }, { 0x9FFF, 1 }, { 0x3400, 1 }, { 0xF900, 1 },
        { 0x20000, 1 }, { 0x2A6DF, 1 }, { 0x3042, 1 } /* あ */,
        { 0x30A2, 1 } /* ア */, { 0x30FC, 1 } /* ー */, { 0xFF71, 1 } /* ｱ */,
        { 0xAC00, 1 } /* 가 */, { 0xD7A3, 1 }, { 0x1F600, 0 } /* 😀 */,
        { 0xE9, 0 } /* é */, { 0x0410, 0 } /* А */,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
        CU_ASSERT_EQUAL(tok_is_cjk(cases[i].c), cases[i].cjk);
}

/* Random bytes and random cuts of real text: no crash, offsets in range. */
static int bounds_cb(void *ctx, int tflags, const char *token, int ntoken,
                     int start, int end)
{
    int len = *(int *)ctx;

    CU_ASSERT(ntoken > 0 && ntoken <= 128 + 4);
    CU_ASSERT(start >= 0 && start < end && end <= len);
    CU_ASSERT(g_utf8_validate(token, ntoken, NULL));
    return SQLITE_OK;
}

static void test_tok_garbage(void)
{
    GRand *r = g_rand_new_with_seed(42);
    const char *text = "请把客户资料发我 Café ＡＢＣ ｶﾞｲﾄﾞ 한국어 😀 İ";
    unsigned char buf[512];

    for (int round = 0; round < 2000; round++) {
        int len = g_rand_int_range(r, 0, sizeof(buf));
        for (int i = 0; i < len; i++)
            buf[i] = round % 2 ? (unsigned char)g_rand_int_range(r, 0, 256)
                               : (unsigned char)text[g_rand_int_range(r, 0,
                                                 (int)strlen(text))];
        tok_run((const char *)buf, len, round % 3 == 0 ? QRY : DOC, bounds_cb, &len);
    }
    g_rand_free(r);
}

/* ---- real FTS5 ---------------------------------------------------------- */

static const char *const fts_rows[] = {
    /* rowid 1.. : subject, body */
    "", "请把客户资料发我",
    "Quarterly numbers", "The Q3 report is attached",
    "Café meeting", "see you at the cafe",
    "", "客人来了",
    "", "ＡＢＣ公司的ｑ３报告",
    "", "我们的客户很满意",
    "ミーティング", "会議の資料を送ります",
};

static const struct {
    const char *match;
    const char *ids;
} fts_cases[] = {
    { "\"客户\"", "1 6" },
    { "\"客\"*", "1 4 6" },              /* 客户, 客人 */
    { "\"我\"*", "1 6" },                /* last char of a run; 我们 */
    { "\"意\"*", "6" },
    { "\"户\"*", "1 6" },                /* 户资, 户很 */
    { "\"资料发\"", "1" },
    { "\"客户\" \"资料\"", "1" },
    { "\"客户资料\"", "1" },
    { "\"把客户资料发我\"", "1" },
    { "\"客户满\"", "" },                 /* not adjacent in row 6 */
    { "\"资发\"", "" },
    { "\"ｑ３\"", "2 5" },
    { "\"Q3 report\"", "2" },
    { "\"report Q3\"", "" },
    { "cafe", "3" },
    { "\"Café\"", "3" },
    { "\"CAFÉ\"", "3" },
    { "subject : \"cafe\"", "3" },
    { "body : \"cafe\"", "3" },
    { "subject : \"report\"", "" },
    { "\"abc\"", "5" },
    { "\"ＡＢＣ公司\"", "5" },
    { "\"报告\"", "5" },
    { "\"ミーティング\"", "7" },
    { "\"資料\"", "7" },
    { "\"会議の資料\"", "7" },
    { "\"q3\" AND \"报告\"", "5" },
    { "\"客户\" NOT \"资料\"", "6" },
    { "\"😀\"", "" },
};

static char *fts_ids(sqlite3 *db, const char *match)
{
    sqlite3_stmt *st = NULL;
    GString *s = g_string_new(NULL);

    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, "SELECT rowid FROM fts WHERE fts "
                          "MATCH ? ORDER BY rowid", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW)
        g_string_append_printf(s, "%s%lld", s->len ? " " : "",
                               (long long)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return g_string_free(s, FALSE);
}

static void test_tok_fts5(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_open(":memory:", &db), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(tok_register(db, &err), 0);
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "CREATE VIRTUAL TABLE fts USING "
        "fts5(subject, body, attname, atttext, content='', tokenize='custos')",
        NULL, NULL, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, "INSERT INTO fts(rowid, subject, "
        "body, attname, atttext) VALUES (?, ?, ?, '', '')", -1, &ins, NULL), SQLITE_OK);
    for (size_t i = 0; i < G_N_ELEMENTS(fts_rows) / 2; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i + 1);
        sqlite3_bind_text(ins, 2, fts_rows[2 * i], -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, fts_rows[2 * i + 1], -1, SQLITE_STATIC);
        CU_ASSERT_EQUAL(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);

    for (size_t i = 0; i < G_N_ELEMENTS(fts_cases); i++) {
        char *got = fts_ids(db, fts_cases[i].match);
        if (strcmp(got, fts_cases[i].ids) != 0)
            fprintf(stderr, "\nMATCH %s -> [%s], want [%s]\n", fts_cases[i].match,
                    got, fts_cases[i].ids);
        CU_ASSERT_STRING_EQUAL(got, fts_cases[i].ids);
        g_free(got);
    }
    /* a tokenizer argument is refused */
    CU_ASSERT_NOT_EQUAL(sqlite3_exec(db, "CREATE VIRTUAL TABLE f2 USING "
        "fts5(x, tokenize='custos foo')", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

CUS_SUITE(tok)
{
    CU_pSuite s = CU_add_suite("tok", NULL, NULL);

    CU_add_test(s, "token table", test_tok_table);
    CU_add_test(s, "offsets", test_tok_offsets);
    CU_add_test(s, "stop and limits", test_tok_stop_and_limits);
    CU_add_test(s, "tok_is_cjk", test_tok_is_cjk);
    CU_add_test(s, "garbage", test_tok_garbage);
    CU_add_test(s, "fts5 match", test_tok_fts5);
}
