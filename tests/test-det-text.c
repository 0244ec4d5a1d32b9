/*
 * test-det-text.c - the detectors' text normaliser, masks, excerpts and word windows
 */
#include <string.h>

#include "cutest.h"
#include "custos/det-text.h"

static const struct {
    const char *in;
    const char *out;
} norm_cases[] = {
    { "plain ascii 123", "plain ascii 123" },
    { "", "" },
    /* full-width digits, letters, punctuation and the ideographic space */
    { "账号：６２２２　０２１２　３４５６", "账号:6222 0212 3456" },
    { "ＩＢＡＮ ＤＥ８９", "IBAN DE89" },
    /* zero-width characters and the soft hyphen inside a number and a word */
    { "6222\xe2\x80\x8b" "0212\xe2\x80\x8c" "3456\xe2\x80\x8d" "7890", "6222021234567890" },
    { "\xef\xbb\xbf" "开\xe2\x81\xa0户\xc2\xad行", "开户行" },
    { "pan\xe2\x80\x8e.baidu\xe2\x80\x8f.com", "pan.baidu.com" },
    /* compatibility forms */
    { "①②③ ﬁle ㈱", "123 file (株)" },
    /* composed: e + combining acute is é */
    { "Cafe\xcc\x81", "Caf\xc3\xa9" },
    /* invalid UTF-8 is repaired, not lost */
    { "ab\xff" "cd", "ab\xef\xbf\xbd" "cd" },
    /* Chinese stays */
    { "请把客户资料发我", "请把客户资料发我" },
};

static void test_norm(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(norm_cases); i++) {
        char *got = det_text_norm(norm_cases[i].in, -1);
        if (strcmp(got, norm_cases[i].out) != 0)
            fprintf(stderr, "\nnorm(%s) = [%s], want [%s]\n", norm_cases[i].in, got,
                    norm_cases[i].out);
        CU_ASSERT_STRING_EQUAL(got, norm_cases[i].out);
        g_free(got);
    }
    /* a length shorter than the string, and a NUL inside */
    char *got = det_text_norm("１２３４", 6);
    CU_ASSERT_STRING_EQUAL(got, "12");
    g_free(got);
    got = det_text_norm("a\0\xef\xbc\x91", 5);
    CU_ASSERT_STRING_EQUAL(got, "a1");
    g_free(got);
}

/* The fast path against GLib's NFKC of the whole text, on random mixes of
 * what mail holds: ASCII, CJK, full-width forms, combining marks (which
 * join the character before them), Hangul jamo, compatibility forms. */
static void test_norm_random(void)
{
    static const gunichar pool[] = {
        'a', 'e', 'Z', '1', ' ', '\n', ':', 0x4E2D, 0x6587, 0x3002, 0x3001, 0xFF21, 0xFF41,
        0xFF10, 0xFF1A, 0xFF0C, 0x3000, 0x0301, 0x0308, 0x0327, 0x00E9, 0x00C5, 0x212B,
        0x1100, 0x1161, 0x11A8, 0xAC00, 0xFB01, 0x2460, 0x3392, 0xF900, 0x00BD, 0x2126,
        0x1E9B, 0x0323, 0x0345, 0x03B1, 0x0313, 0x200B, 0x00AD, 0x30AB, 0x3099, 0xFF76,
        0xFF9E,
    };
    GRand *r = g_rand_new_with_seed(6);

    for (int t = 0; t < 3000; t++) {
        GString *in = g_string_new(NULL), *vis = g_string_new(NULL);
        int n = g_rand_int_range(r, 1, 12);
        char *got, *want;

        for (int i = 0; i < n; i++) {
            gunichar c = pool[g_rand_int_range(r, 0, G_N_ELEMENTS(pool))];
            g_string_append_unichar(in, c);
            if (!det_text_is_invisible(c))
                g_string_append_unichar(vis, c);
        }
        got = det_text_norm(in->str, in->len);
        want = g_utf8_normalize(vis->str, vis->len, G_NORMALIZE_NFKC);
        if (strcmp(got, want) != 0)
            fprintf(stderr, "\nnorm(%s) = [%s], NFKC [%s]\n", in->str, got, want);
        CU_ASSERT_STRING_EQUAL(got, want);
        g_free(got);
        g_free(want);
        g_string_free(in, TRUE);
        g_string_free(vis, TRUE);
    }
    g_rand_free(r);
}

static const struct {
    int kind;                   /* 0 number, 1 phone, 2 address */
    const char *in, *out;
} mask_cases[] = {
    { 0, "6222021234561234", "6222****1234" },
    { 0, "6222 0212 3456 1234 567", "6222****4567" },
    { 0, "6222-0212-3456-1234", "6222****1234" },
    { 0, "DE89 3704 0044 0532 0130 00", "DE89****3000" },
    { 0, "12345678", "******78" },
    { 0, "12", "**" },
    { 0, "", "" },
    { 1, "13812345678", "138****5678" },
    { 1, "+86 138-1234-5678", "+86138****5678" },
    { 1, "010-12345678", "010****5678" },
    { 1, "5551234", "*****34" },
    { 2, "zhangsan@163.com", "z***@163.com" },
    { 2, "张三@example.cn", "张***@example.cn" },
    { 2, "@x.com", "***@x.com" },
    { 2, "nobody", "n***" },
};

static void test_mask(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(mask_cases); i++) {
        char *got = mask_cases[i].kind == 0 ? det_mask_number(mask_cases[i].in)
                    : mask_cases[i].kind == 1 ? det_mask_phone(mask_cases[i].in)
                                              : det_mask_addr(mask_cases[i].in);
        if (strcmp(got, mask_cases[i].out) != 0)
            fprintf(stderr, "\nmask(%s) = [%s], want [%s]\n", mask_cases[i].in, got,
                    mask_cases[i].out);
        CU_ASSERT_STRING_EQUAL(got, mask_cases[i].out);
        g_free(got);
    }
}

static void test_excerpt(void)
{
    const char *t = "请汇款到以下账号：\n  6222021234561234\n户名 张三，谢谢";
    const char *num = strstr(t, "6222");
    size_t s = num - t, e = s + 16;
    char *x = det_text_excerpt(t, strlen(t), s, e, 5, "6222****1234");

    if (strcmp(x, "…号： 6222****1234 户名 张…") != 0) fprintf(stderr, "[%s]\n", x);
    CU_ASSERT_STRING_EQUAL(x, "…号： 6222****1234 户名 张…");
    g_free(x);
    /* at the very start and end: no ellipsis; match kept */
    x = det_text_excerpt("abc", 3, 0, 3, 10, NULL);
    CU_ASSERT_STRING_EQUAL(x, "abc");
    g_free(x);
    x = det_text_excerpt("hello world", 11, 6, 11, 2, "W");
    CU_ASSERT_STRING_EQUAL(x, "…o W");
    g_free(x);
}

static void test_near(void)
{
    char *words[] = { "账号", "iban", "Beneficiary", NULL };
    const char *t = "Please pay to BENEFICIARY: John Smith, 6222021234561234 thanks";
    const char *num = strstr(t, "6222");
    size_t s = num - t, e = s + 16;

    CU_ASSERT_STRING_EQUAL(det_text_near(t, strlen(t), s, e, 40, words), "Beneficiary");
    CU_ASSERT_PTR_NULL(det_text_near(t, strlen(t), s, e, 10, words));
    /* after the match, in Chinese, counted in characters */
    const char *c = "号码 6222021234561234 是我的账号";
    s = strstr(c, "6222") - c;
    e = s + 16;
    CU_ASSERT_STRING_EQUAL(det_text_near(c, strlen(c), s, e, 6, words), "账号");
    CU_ASSERT_PTR_NULL(det_text_near(c, strlen(c), s, e, 5, words));
    CU_ASSERT_EQUAL(det_text_find("abcABC", 1, 6, "abc"), 3);
    CU_ASSERT_EQUAL(det_text_find("abcABC", 4, 6, "abc"), -1);
    CU_ASSERT_EQUAL(det_text_find("abc", 0, 3, ""), -1);
}

/* det_text_find against the obvious scan, on random text over a small
 * alphabet (both cases, a UTF-8 lead byte) at every range. */
static gssize find_slow(const char *text, size_t from, size_t to, const char *word)
{
    size_t wl = strlen(word);

    for (size_t i = from; wl > 0 && i + wl <= to; i++)
        if (g_ascii_strncasecmp(text + i, word, wl) == 0)
            return (gssize)i;
    return -1;
}

static void test_find(void)
{
    static const char alpha[] = "aAbB \xe8:";
    static const char *const words[] = { "a", "Ab", "ba", "bAb", ("\xe8" "a"), ":", "aaaa", "B:" };
    GRand *r = g_rand_new_with_seed(42);
    int wrong = 0;

    for (int n = 0; n < 300; n++) {
        char text[40];
        size_t len = (size_t)g_rand_int_range(r, 0, sizeof(text));
        for (size_t i = 0; i < len; i++)
            text[i] = alpha[g_rand_int_range(r, 0, sizeof(alpha) - 1)];
        text[len] = '\0';
        for (size_t w = 0; w < G_N_ELEMENTS(words); w++)
            for (size_t from = 0; from <= len; from++)
                for (size_t to = from; to <= len; to++)
                    wrong += det_text_find(text, from, to, words[w]) !=
                             find_slow(text, from, to, words[w]);
    }
    CU_ASSERT_EQUAL(wrong, 0);
    g_rand_free(r);
}

CUS_SUITE(det_text)
{
    CU_pSuite s = CU_add_suite("det_text", NULL, NULL);

    CU_add_test(s, "normalise", test_norm);
    CU_add_test(s, "normalise: the same as NFKC", test_norm_random);
    CU_add_test(s, "masks", test_mask);
    CU_add_test(s, "excerpt", test_excerpt);
    CU_add_test(s, "words near", test_near);
    CU_add_test(s, "find: the same as a plain scan on random text, any range", test_find);
}
