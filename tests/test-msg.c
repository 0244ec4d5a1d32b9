/*
 * test-msg.c - the message model: header decoding (split words, GB2312 over
 * GBK, Big5, ISO-2022-JP, Latin-1, raw 8-bit, malformed words), addresses,
 * dates, HTML to text, the constructed CJK mail in tests/data/cjk against
 * its .expect, limits (bomb, nesting, parts, size, text), and a pass over
 * the real-mail corpus compared with Python's email package.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include "cutest.h"
#include "custos/msg.h"
#include "msg-private.h"

/* Every string of m valid UTF-8 without NUL; returns 1 if so. */
static int msg_valid(const struct msg *m)
{
    int ok = g_utf8_validate(m->subject, -1, NULL) && g_utf8_validate(m->message_id, -1, NULL);

    ok = ok && strlen(m->body->str) == m->body->len && g_utf8_validate(m->body->str, -1, NULL);
    ok = ok && strlen(m->att_text->str) == m->att_text->len &&
         g_utf8_validate(m->att_text->str, -1, NULL);
    for (guint i = 0; ok && i < m->headers->len; i++) {
        struct msg_header *h = m->headers->pdata[i];
        ok = g_utf8_validate(h->name, -1, NULL) && g_utf8_validate(h->value, -1, NULL);
    }
    for (guint i = 0; ok && i < m->addrs->len; i++) {
        struct msg_addr *a = m->addrs->pdata[i];
        ok = g_utf8_validate(a->name, -1, NULL) && g_utf8_validate(a->addr, -1, NULL);
    }
    for (guint i = 0; ok && i < m->atts->len; i++) {
        struct msg_att *a = m->atts->pdata[i];
        ok = g_utf8_validate(a->name, -1, NULL) && g_utf8_validate(a->type, -1, NULL) &&
             g_utf8_validate(a->path, -1, NULL) && strlen(a->sha256) == 64;
    }
    for (guint i = 0; ok && i < m->limits->len; i++)
        ok = g_utf8_validate(m->limits->pdata[i], -1, NULL);
    return ok;
}

static struct msg *parse_str(const char *raw, const struct msg_limits *lim)
{
    struct msg *m = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL(msg_parse(raw, strlen(raw), lim, &m, &err), 0);
    g_free(err);
    return m;
}

/* --- headers ------------------------------------------------------------ */

static const struct {
    const char *raw;
    const char *want;
} header_cases[] = {
    { "plain ascii", "plain ascii" },
    { "  folded\r\n\tline ", "folded\tline" },
    { "=?UTF-8?B?5Lit5paH?=", "中文" },
    { "=?utf-8?q?caf=C3=A9_au_lait?=", "café au lait" },
    /* UTF-8 split inside 客 across two words */
    { "=?UTF-8?B?6K+35oqK5a6i?= =?UTF-8?B?5oi3?=", "请把客户" },
    { "=?UTF-8?B?6K+35oqK5a4=?= =?UTF-8?B?ouaItw==?=", "请把客户" },
    /* GB2312 label, GBK-only 镕 (E946) and 喆 (86B4), 中 split D6|D0 */
    { "=?GB2312?B?1tDpRg==?= =?GB2312?B?1g==?= =?GB2312?B?0A==?=", "中镕中" },
    { "=?gb2312?B?hrQ=?=", "喆" },
    { "=?x-gbk?Q?=86=B4?=", "喆" },
    { "=?cp936?B?1tDOxA==?=", "中文" },
    { "=?euc-cn?B?1tDOxA==?=", "中文" },
    { "=?GB18030?B?lTSyNQ==?=", "\xF0\xA0\xAE\xB7" },   /* U+20BB7, four bytes */
    { "=?big5?B?pKSk5Q==?=", "中文" },
    { "=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "日本語" },
    { "=?iso-8859-1?q?Andr=E9?= Pirard", "André Pirard" },
    { "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=", "Keld Jørn Simonsen" },
    { "=?iso-8859-1?q?a?= b =?iso-8859-1?q?c?=", "a b c" },
    { "=?utf-8?q?a?=  \t =?utf-8?q?b?=", "ab" },
    /* raw 8-bit: UTF-8, then GBK/GB18030, then Latin-1 */
    { "\xE4\xB8\xAD\xE6\x96\x87 ok", "中文 ok" },
    { "\xD6\xD0\xCE\xC4 ok", "中文 ok" },
    { "caf\xE9 ", "café" },
    /* malformed words are left as they are */
    { "=?utf-8?x?abc?=", "=?utf-8?x?abc?=" },
    { "=?utf-8?B?not base64!?=", "=?utf-8?B?not base64!?=" },
    { "=?utf-8?q?unterminated", "=?utf-8?q?unterminated" },
    { "=??q?empty?=", "=??q?empty?=" },
    { "a =? b ?= c", "a =? b ?= c" },
    /* unknown charset: bytes guessed */
    { "=?x-unknown?q?abc?=", "abc" },
    { "=?utf-8*en?q?lang?=", "lang" },
    { "", "" },
};

static void test_msg_decode_header(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(header_cases); i++) {
        char *got = msg_decode_header(header_cases[i].raw);
        if (strcmp(got, header_cases[i].want) != 0)
            fprintf(stderr, "\nheader case %zu: got [%s] want [%s]\n", i, got,
                    header_cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, header_cases[i].want);
        CU_ASSERT(g_utf8_validate(got, -1, NULL));
        g_free(got);
    }
}

static const struct {
    const char *buf;
    const char *charset;
    const char *want;
} utf8_cases[] = {
    { "\xD6\xD0", "GB2312", "中" },
    { "\xE9\x46", "gb2312", "镕" },
    { "\xE9\x46", NULL, "镕" },
    { "\xA4\xA4\xA4\xE5", "Big5", "中文" },
    { "\x80", "windows-1252", "€" },
    { "\xE9", "iso-8859-1", "é" },
    { "ok\xFF", "utf-8", "ok\xEF\xBF\xBD" },
    { "abc", "no-such-charset", "abc" },
    { "\xFF\xFE" "a\0", "utf-16", "a" },
};

static void test_msg_to_utf8(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(utf8_cases); i++) {
        size_t len = strlen(utf8_cases[i].buf);
        char *got;
        if (utf8_cases[i].charset && strcmp(utf8_cases[i].charset, "utf-16") == 0)
            len = 4;
        got = msg_to_utf8(utf8_cases[i].buf, len, utf8_cases[i].charset);
        if (strcmp(got, utf8_cases[i].want) != 0)
            fprintf(stderr, "\nutf8 case %zu: got [%s] want [%s]\n", i, got, utf8_cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, utf8_cases[i].want);
        g_free(got);
    }
}

static const struct {
    const char *raw;
    const char *param;
    const char *want;
} param_cases[] = {
    { "attachment; filename=\"a b.txt\"", "filename", "a b.txt" },
    { "attachment; filename=plain.txt", "filename", "plain.txt" },
    { "attachment; filename*=utf-8''%E4%B8%AD.txt", "filename", "中.txt" },
    { "attachment; filename*0*=gb2312''%D6%D0%E9; filename*1*=%46.csv", "filename", "中镕.csv" },
    { "attachment;\r\n filename*0=\"long \"; filename*1=\"name.txt\"", "filename", "long name.txt" },
    { "attachment; filename=\"=?GB2312?B?1tDOxA==?=.doc\"", "filename", "中文.doc" },
    { "attachment; filename=\"\xD6\xD0\xCE\xC4.doc\"", "filename", "中文.doc" },
    { "text/plain; charset=\"gb2312\"; name=x", "charset", "gb2312" },
    { "text/plain; name=x", "charset", NULL },
};

static void test_msg_params(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(param_cases); i++) {
        char *got = msg_param_decode(param_cases[i].raw, param_cases[i].param);
        if (param_cases[i].want == NULL) {
            CU_ASSERT_PTR_NULL(got);
        } else {
            CU_ASSERT_PTR_NOT_NULL_FATAL(got);
            if (strcmp(got, param_cases[i].want) != 0)
                fprintf(stderr, "\nparam case %zu: got [%s]\n", i, got);
            CU_ASSERT_STRING_EQUAL(got, param_cases[i].want);
        }
        g_free(got);
    }
}

/* --- addresses and dates ------------------------------------------------- */

static const struct {
    const char *header;
    int n;
    const char *name0, *addr0, *name1, *addr1;
} addr_cases[] = {
    { "From: Joe Q. Public <john.q.public@Example.COM>", 1, "Joe Q. Public",
      "john.q.public@example.com", NULL, NULL },
    { "From: =?GB2312?B?zfWGtA==?= <wz@EXAMPLE.cn>", 1, "王喆", "wz@example.cn", NULL, NULL },
    { "From: \"=?utf-8?B?5byg5LiJ?=\" <z3@x.cn>", 1, "张三", "z3@x.cn", NULL, NULL },
    { "From: =?utf-8?q?Doe=2C_John?= <jd@x.org>", 1, "Doe, John", "jd@x.org", NULL, NULL },
    { "To: a@b.c, \"Two\" <t@B.C>", 2, "", "a@b.c", "Two", "t@b.c" },
    { "To: friends: x@y.z, w@v.u;", 2, "", "x@y.z", "", "w@v.u" },
    { "From: \xD5\xC5\xC8\xFD <zs@x.cn>", 1, "张三", "zs@x.cn", NULL, NULL },
    { "To: undisclosed-recipients:;", 0, NULL, NULL, NULL, NULL },
};

static void test_msg_addresses(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(addr_cases); i++) {
        char *raw = g_strdup_printf("%s\r\nSubject: x\r\n\r\nbody\r\n", addr_cases[i].header);
        struct msg *m = parse_str(raw, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(m->addrs->len, (guint)addr_cases[i].n);
        if (m->addrs->len >= 1 && addr_cases[i].n >= 1) {
            struct msg_addr *a = m->addrs->pdata[0];
            if (strcmp(a->name, addr_cases[i].name0) != 0)
                fprintf(stderr, "\naddr case %zu: name [%s]\n", i, a->name);
            CU_ASSERT_STRING_EQUAL(a->name, addr_cases[i].name0);
            CU_ASSERT_STRING_EQUAL(a->addr, addr_cases[i].addr0);
        }
        if (m->addrs->len >= 2 && addr_cases[i].n >= 2) {
            struct msg_addr *a = m->addrs->pdata[1];
            CU_ASSERT_STRING_EQUAL(a->name, addr_cases[i].name1);
            CU_ASSERT_STRING_EQUAL(a->addr, addr_cases[i].addr1);
        }
        CU_ASSERT(msg_valid(m));
        msg_free(&m);
        CU_ASSERT_PTR_NULL(m);
        g_free(raw);
    }
}

static const struct {
    const char *date;
    gint64 want;
} date_cases[] = {
    { "Mon, 06 May 2024 09:30:00 +0800", 1714959000 },
    { "6 May 2024 01:30:00 GMT", 1714959000 },
    { "Mon, 6 May 2024 01:30:00 +0000 (UTC)", 1714959000 },
    { "Sun, 05 May 2024 21:30:00 -0400", 1714959000 },
    { "not a date", 0 },
};

static void test_msg_dates(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(date_cases); i++) {
        char *raw = g_strdup_printf("Date: %s\r\nMessage-ID: <a.b@c>\r\n\r\nx\r\n",
                                    date_cases[i].date);
        struct msg *m = parse_str(raw, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(m->date, date_cases[i].want);
        CU_ASSERT_STRING_EQUAL(m->message_id, "a.b@c");
        CU_ASSERT_STRING_EQUAL(m->subject, "");
        msg_free(&m);
        g_free(raw);
    }
}

static void test_msg_absent(void)
{
    struct msg *m = parse_str("X-Foo: bar\r\n\r\nhello\r\n", NULL);

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->message_id, "");
    CU_ASSERT_STRING_EQUAL(m->subject, "");
    CU_ASSERT_EQUAL(m->date, 0);
    CU_ASSERT_STRING_EQUAL(m->body->str, "hello");
    msg_free(&m);
    m = parse_str("", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(msg_valid(m));
    msg_free(&m);
    msg_free(&m);       /* NULL is fine */
}

/* --- HTML ----------------------------------------------------------------- */

static const struct {
    const char *html;
    const char *want;
} html_cases[] = {
    { "<p>Hello</p><p>World</p>", "Hello\n\nWorld" },
    { "a<br>b<br/>c", "a\nb\nc" },
    { "<b>bold</b> and <i>it</i>", "bold and it" },
    { "x<script>alert('<p>')</script>y", "xy" },
    { "<style type=\"text/css\">p { color: red }</style>text", "text" },
    { "&lt;tag&gt; &amp; &quot;q&quot; &#20013;&#x6587; &nbsp;x", "<tag> & \"q\" 中文 x" },
    { "&unknown; &amp", "&unknown; &" },
    { "<!-- comment <p> -->visible", "visible" },
    { "<div>one</div><div>two</div>", "one\ntwo" },
    { "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc" },
    { "  lots   of\n\n  space  ", "lots of space" },
    { "<a href=\"x>y\">link</a>", "link" },
    { "1 < 2 and 3 > 2", "1 < 2 and 3 > 2" },
    { "<pre>a  b\n c</pre>", "a  b\n c" },
    { "&#0;&#xD800;", "\xEF\xBF\xBD\xEF\xBF\xBD" },
    { "<ul><li>一</li><li>二</li></ul>", "一\n二" },
};

static void test_msg_html(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(html_cases); i++) {
        char *got = msg_html_to_text(html_cases[i].html, strlen(html_cases[i].html));
        if (strcmp(got, html_cases[i].want) != 0)
            fprintf(stderr, "\nhtml case %zu: got [%s]\n", i, got);
        CU_ASSERT_STRING_EQUAL(got, html_cases[i].want);
        g_free(got);
    }
    {
        const char *h = "<html><head><meta charset=\"GB2312\"></head>";
        char *cs = msg_html_meta_charset(h, strlen(h));
        CU_ASSERT_STRING_EQUAL(cs, "GB2312");
        g_free(cs);
        h = "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=big5\">";
        cs = msg_html_meta_charset(h, strlen(h));
        CU_ASSERT_STRING_EQUAL(cs, "big5");
        g_free(cs);
    }
}

/* --- tests/data/cjk --------------------------------------------------- */

static int has_att(const struct msg *m, const char *field, const char *v)
{
    for (guint i = 0; i < m->atts->len; i++) {
        struct msg_att *a = m->atts->pdata[i];
        if (strcmp(field == NULL ? a->name : a->path, v) == 0)
            return 1;
    }
    return 0;
}

static int has_limit(const struct msg *m, const char *v)
{
    for (guint i = 0; i < m->limits->len; i++)
        if (strstr(m->limits->pdata[i], v) != NULL)
            return 1;
    return 0;
}

static int check_expect(const char *eml, const char *expect_text)
{
    GBytes *raw = NULL;
    char *err = NULL, **lines;
    struct msg *m = NULL;
    int bad = 0, want_limits = 0;
    gsize len;
    const char *data;

    if (cus_read_file(eml, 1 << 26, &raw, &err) < 0) {
        fprintf(stderr, "\n%s\n", err);
        g_free(err);
        return 1;
    }
    data = g_bytes_get_data(raw, &len);
    if (msg_parse(data, len, NULL, &m, &err) < 0) {
        fprintf(stderr, "\n%s: %s\n", eml, err);
        g_free(err);
        g_bytes_unref(raw);
        return 1;
    }
    if (!msg_valid(m)) {
        fprintf(stderr, "\n%s: invalid UTF-8 in output\n", eml);
        bad++;
    }
    lines = g_strsplit(expect_text, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *colon = strstr(*l, ": ");
        const char *key, *val;
        int ok = 1;
        if (**l == '\0' || colon == NULL)
            continue;
        *colon = '\0';
        key = *l;
        val = colon + 2;
        if (strcmp(key, "subject") == 0) {
            ok = strcmp(m->subject, val) == 0;
        } else if (strcmp(key, "from") == 0) {
            ok = 0;
            for (guint i = 0; i < m->addrs->len; i++) {
                struct msg_addr *a = m->addrs->pdata[i];
                char *s = *a->name ? g_strdup_printf("%s <%s>", a->name, a->addr)
                                   : g_strdup(a->addr);
                if (a->role == MSG_FROM && strcmp(s, val) == 0)
                    ok = 1;
                g_free(s);
            }
        } else if (strcmp(key, "body-contains") == 0) {
            ok = strstr(m->body->str, val) != NULL;
        } else if (strcmp(key, "body-not-contains") == 0) {
            ok = strstr(m->body->str, val) == NULL;
        } else if (strcmp(key, "att-text-contains") == 0) {
            ok = strstr(m->att_text->str, val) != NULL;
        } else if (strcmp(key, "att-name") == 0) {
            ok = has_att(m, NULL, val);
        } else if (strcmp(key, "att-path") == 0) {
            ok = has_att(m, "path", val);
        } else if (strcmp(key, "limit-contains") == 0) {
            ok = has_limit(m, val);
            want_limits = 1;
        } else {
            fprintf(stderr, "\n%s: unknown expect key %s\n", eml, key);
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "\n%s: %s: %s not met (subject [%s])\n", eml, key, val, m->subject);
            bad++;
        }
    }
    if (!want_limits && m->limits->len > 0) {
        fprintf(stderr, "\n%s: unexpected limit: %s\n", eml, (char *)m->limits->pdata[0]);
        bad++;
    }
    g_strfreev(lines);
    msg_free(&m);
    g_bytes_unref(raw);
    return bad;
}

static void test_msg_cjk(void)
{
    char *dir = cut_src("tests/data/cjk");
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *f;
    int n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((f = g_dir_read_name(d)) != NULL) {
        char *eml, *exp, *text = NULL;
        if (!g_str_has_suffix(f, ".eml"))
            continue;
        eml = g_build_filename(dir, f, NULL);
        exp = g_strdup_printf("%.*s.expect", (int)(strlen(eml) - 4), eml);
        CU_ASSERT_FATAL(g_file_get_contents(exp, &text, NULL, NULL));
        CU_ASSERT_EQUAL(check_expect(eml, text), 0);
        n++;
        g_free(text);
        g_free(eml);
        g_free(exp);
    }
    g_dir_close(d);
    CU_ASSERT(n >= 15);
    g_free(dir);
}

/* --- limits ------------------------------------------------------------ */

static struct msg *parse_file(const char *rel, const struct msg_limits *lim)
{
    char *path = cut_src(rel), *err = NULL;
    GBytes *raw = NULL;
    struct msg *m = NULL;
    gsize len;
    const char *data;

    if (cus_read_file(path, 1 << 26, &raw, &err) < 0) {
        fprintf(stderr, "\n%s\n", err);
        g_free(err);
        g_free(path);
        return NULL;
    }
    data = g_bytes_get_data(raw, &len);
    CU_ASSERT_EQUAL(msg_parse(data, len, lim, &m, &err), 0);
    g_bytes_unref(raw);
    g_free(path);
    return m;
}

static void test_msg_limits(void)
{
    struct msg_limits lim;
    struct msg *m;

    /* bomb: expanded size cap reached before the ratio */
    msg_limits_default(&lim);
    lim.expanded_size = 1 << 20;
    lim.expansion_ratio = 100000;
    m = parse_file("tests/data/cjk/zip-bomb.eml", &lim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(has_limit(m, "expanded size limit 1048576"));
    msg_free(&m);

    /* a huge text part: only what the text limit keeps is decoded (in
     * UTF-8 and in GB18030, base64), the limit recorded, the text cut on a
     * character */
    {
        static const char *const cs[] = { "UTF-8", "GB18030" };
        for (size_t k = 0; k < G_N_ELEMENTS(cs); k++) {
            GString *raw = g_string_new(NULL), *body = g_string_new(NULL);
            char *enc, *b64;
            gsize n;
            while (body->len < (3u << 20))
                g_string_append(body, "客户名单第三季度报价 quarterly pricing\n");
            enc = g_convert(body->str, (gssize)body->len, cs[k], "UTF-8", NULL, &n, NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
            b64 = g_base64_encode((const guchar *)enc, n);
            g_string_append_printf(raw, "From: a@corp.example\r\nSubject: big\r\n"
                                   "Content-Type: text/plain; charset=%s\r\n"
                                   "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n",
                                   cs[k], b64);
            msg_limits_default(&lim);
            lim.text_size = 4096;
            CU_ASSERT_EQUAL_FATAL(msg_parse(raw->str, raw->len, &lim, &m, NULL), 0);
            CU_ASSERT(m->body->len > 2048 && m->body->len <= 4096);
            CU_ASSERT(g_utf8_validate(m->body->str, (gssize)m->body->len, NULL));
            CU_ASSERT(g_str_has_prefix(m->body->str, "客户名单第三季度报价 quarterly pricing"));
            CU_ASSERT(has_limit(m, "text limit 4096 bytes reached"));
            msg_free(&m);
            g_free(b64);
            g_free(enc);
            g_string_free(raw, TRUE);
            g_string_free(body, TRUE);
        }
    }

    /* nesting with a smaller depth */
    msg_limits_default(&lim);
    lim.depth = 3;
    m = parse_file("tests/data/cjk/nested-zip.eml", &lim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(has_limit(m, "depth limit 3 reached at part 1 (level01.zip/level02.zip/level03.zip)"));
    CU_ASSERT_EQUAL(m->atts->len, 3);
    msg_free(&m);
    m = parse_file("tests/data/cjk/nested-rfc822.eml", &lim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(has_limit(m, "depth limit 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m->att_text->str, "第3层正文"));
    CU_ASSERT_PTR_NULL(strstr(m->att_text->str, "第5层正文"));
    msg_free(&m);

    /* parts */
    msg_limits_default(&lim);
    lim.parts = 3;
    m = parse_file("tests/data/cjk/archives.eml", &lim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(has_limit(m, "part limit 3"));
    msg_free(&m);

    /* text */
    msg_limits_default(&lim);
    lim.text_size = 10;
    m = parse_file("tests/data/cjk/office.eml", &lim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(has_limit(m, "text limit 10"));
    CU_ASSERT(m->body->len + m->att_text->len <= 10);
    CU_ASSERT(msg_valid(m));
    msg_free(&m);

    /* raw size */
    msg_limits_default(&lim);
    lim.message_size = 200;
    m = parse_file("tests/data/cjk/office.eml", &lim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(has_limit(m, "message size limit 200"));
    CU_ASSERT(msg_valid(m));
    msg_free(&m);
}

/* Hostile and broken input: parses, never crashes, output valid. */
static const char *const broken_cases[] = {
    "Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n--b--\r\n",
    "Subject: =?utf-8?B?\xff\xfe?=\r\n\r\n\0\0\0",
    "From: <<<>>>@@@, \"unterminated\r\n\r\n",
    ": no name\r\n\x01\x02: x\r\n\r\n",
    "Content-Type: text/plain; charset=\"\xff\"\r\n\r\n\xff\xfe\xfd",
    "Content-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBAo=\r\n",
    "Content-Type: message/rfc822\r\n\r\nnot a message",
};

static void test_msg_broken(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(broken_cases); i++) {
        struct msg *m = NULL;
        char *err = NULL;
        size_t len = strlen(broken_cases[i]);
        if (i == 2)
            len += 3;
        CU_ASSERT_EQUAL(msg_parse(broken_cases[i], len, NULL, &m, &err), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT(msg_valid(m));
        msg_free(&m);
        g_free(err);
    }
    {
        /* 200 nested multiparts */
        GString *s = g_string_new("Content-Type: multipart/mixed; boundary=b0\r\n\r\n");
        struct msg *m;
        for (int i = 0; i < 200; i++)
            g_string_append_printf(s, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n",
                                   i, i + 1);
        g_string_append(s, "--b200\r\nContent-Type: text/plain\r\n\r\ndeep\r\n");
        m = parse_str(s->str, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT(msg_valid(m));
        CU_ASSERT(m->limits->len > 0 || m->malformed);
        msg_free(&m);
        g_string_free(s, TRUE);
    }
}

/* --- inputs the fuzzer found (fuzz/fuzz-msg.c, tests/fuzz/msg/regress-*) - */

static const struct {
    const char *raw;
    size_t len;
    const char *att_type;   /* of the one attachment, NULL: none */
} fuzz_cases[] = {
    /* a type GMime keeps with raw bytes in it: not UTF-8, not a type */
    { "Content-Type:/\xf6\xbc\x90\x99", 18, "application/octet-stream" },
    { "Content-Type: /x\r\n\r\nx\r\n", 23, "application/octet-stream" },
};

static void test_msg_fuzz(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(fuzz_cases); i++) {
        struct msg *m = NULL;
        char *err = NULL;

        CU_ASSERT_EQUAL(msg_parse(fuzz_cases[i].raw, fuzz_cases[i].len, NULL, &m, &err), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT(msg_valid(m));
        if (fuzz_cases[i].att_type == NULL) {
            CU_ASSERT_EQUAL(m->atts->len, 0);
        } else if (m->atts->len != 1) {
            CU_FAIL("one attachment expected");
        } else {
            const struct msg_att *a = m->atts->pdata[0];
            if (strcmp(a->type, fuzz_cases[i].att_type) != 0)
                fprintf(stderr, "\nfuzz case %zu: type [%s]\n", i, a->type);
            CU_ASSERT_STRING_EQUAL(a->type, fuzz_cases[i].att_type);
        }
        msg_free(&m);
        g_free(err);
    }
}

/* --- the real-mail corpus ------------------------------------------------ */

/* Split like tests/data/pydecode.py: an mbox at every "From " line. */
static GPtrArray *split_mbox(const char *data, size_t len)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    size_t start = 0;

    if (len < 5 || memcmp(data, "From ", 5) != 0) {
        g_ptr_array_add(parts, g_bytes_new_static(data, len));
        return parts;
    }
    for (size_t i = 1; i + 5 <= len; i++) {
        if (data[i - 1] == '\n' && memcmp(data + i, "From ", 5) == 0) {
            g_ptr_array_add(parts, g_bytes_new_static(data + start, i - start));
            start = i;
        }
    }
    g_ptr_array_add(parts, g_bytes_new_static(data + start, len - start));
    return parts;
}

/* Collapse white space (and NBSP) to one space, trim. */
static char *norm_ws(const char *s)
{
    GString *o = g_string_new(NULL);
    int sp = 0;

    for (const char *p = s; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (g_unichar_isspace(c) || c == 0xA0) {
            sp = 1;
            continue;
        }
        if (sp && o->len > 0)
            g_string_append_c(o, ' ');
        sp = 0;
        g_string_append_unichar(o, c);
    }
    return g_string_free(o, FALSE);
}

static void corpus_walk(const char *top, const char *rel, GHashTable *py, int *files, int *msgs,
                        int *bad, int *mismatch, int *pyerr, int *c1)
{
    char *dir = g_build_filename(top, rel, NULL);
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *f;

    if (d == NULL) {
        g_free(dir);
        return;
    }
    while ((f = g_dir_read_name(d)) != NULL) {
        char *r = *rel ? g_build_filename(rel, f, NULL) : g_strdup(f);
        char *path = g_build_filename(top, r, NULL);
        GBytes *raw = NULL;
        GPtrArray *parts;
        gsize len;
        const char *data;

        if (strcmp(f, ".cache") == 0 || strcmp(f, ".done") == 0) {
            /* skip */
        } else if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
            corpus_walk(top, r, py, files, msgs, bad, mismatch, pyerr, c1);
        } else if (cus_read_file(path, 1 << 26, &raw, NULL) == 0) {
            (*files)++;
            data = g_bytes_get_data(raw, &len);
            parts = split_mbox(data, len);
            for (guint i = 0; i < parts->len; i++) {
                struct msg *m = NULL;
                char *err = NULL, *key, *want, *a, *b;
                gsize plen;
                const char *pd = g_bytes_get_data(parts->pdata[i], &plen);

                (*msgs)++;
                key = parts->len == 1 ? g_strdup(r) : g_strdup_printf("%s#%u", r, i);
                if (msg_parse(pd, plen, NULL, &m, &err) < 0 || !msg_valid(m)) {
                    fprintf(stderr, "\ncorpus %s: %s\n", key, err ? err : "invalid UTF-8");
                    (*bad)++;
                    g_free(err);
                    msg_free(&m);
                    g_free(key);
                    continue;
                }
                want = g_hash_table_lookup(py, key);
                if (want == NULL) {
                    fprintf(stderr, "\ncorpus %s: no Python line\n", key);
                    (*mismatch)++;
                } else if (g_str_has_prefix(want, "!ERR ")) {
                    (*pyerr)++;
                } else {
                    /* Python reads ISO-8859-1 0x80-0x9F as C1 controls,
                     * custos as Windows-1252; pydecode.py marks such
                     * subjects and gives the Windows-1252 reading */
                    if (g_str_has_prefix(want, "!C1 ")) {
                        want += 4;
                        (*c1)++;
                    }
                    a = norm_ws(m->subject);
                    b = norm_ws(want);
                    if (strcmp(a, b) != 0) {
                        fprintf(stderr, "\ncorpus %s: subject [%s], Python [%s]\n", key, a, b);
                        (*mismatch)++;
                    }
                    g_free(a);
                    g_free(b);
                }
                msg_free(&m);
                g_free(key);
            }
            g_ptr_array_free(parts, TRUE);
            g_bytes_unref(raw);
        }
        g_free(r);
        g_free(path);
    }
    g_dir_close(d);
    g_free(dir);
}

static void test_msg_corpus(void)
{
    char *top = cut_corpus("");
    char *script = cut_src("tests/data/pydecode.py");
    char *python = g_find_program_in_path("python3");
    char *out = NULL, *errs = NULL;
    char *argv[] = { python, script, top, NULL };
    GHashTable *py = g_hash_table_new(g_str_hash, g_str_equal);
    char **lines;
    int files = 0, msgs = 0, bad = 0, mismatch = 0, pyerr = 0, c1 = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(python);
    CU_ASSERT_EQUAL_FATAL(cut_run(argv, &out, &errs), 0);
    lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *tab = strchr(*l, '\t');
        if (tab != NULL) {
            *tab = '\0';
            g_hash_table_insert(py, *l, tab + 1);
        }
    }
    corpus_walk(top, "", py, &files, &msgs, &bad, &mismatch, &pyerr, &c1);
    fprintf(stderr, "\ncorpus: %d files, %d messages, %d bad, %d subject mismatches, "
            "%d Python could not decode, %d Latin-1 read as Windows-1252\n",
            files, msgs, bad, mismatch, pyerr, c1);
    CU_ASSERT(files >= 250);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(mismatch, 0);
    g_strfreev(lines);
    g_hash_table_destroy(py);
    g_free(out);
    g_free(errs);
    g_free(python);
    g_free(script);
    g_free(top);
}

static int suite_init(void)
{
    msg_init();
    return 0;
}

/* An attached message's From and Message-ID on its attachment; the model
 * walked from a GMime tree the caller parsed is the one msg_parse makes. */
static void test_msg_attached_and_gmime(void)
{
    char *path = cut_src("tests/data/cjk/nested-rfc822.eml"), *err = NULL;
    struct msg *m = parse_file("tests/data/cjk/nested-rfc822.eml", NULL), *g = NULL;
    GMimeStream *st;
    GMimeParser *p;
    GMimeMessage *mime;
    int fd;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_FATAL(m->atts->len >= 2);
    {
        const struct msg_att *a1 = g_ptr_array_index(m->atts, 0);
        const struct msg_att *a2 = g_ptr_array_index(m->atts, 1);
        CU_ASSERT_STRING_EQUAL(a1->type, "message/rfc822");
        CU_ASSERT_STRING_EQUAL(a1->from, "level2@example.cn");
        CU_ASSERT_STRING_EQUAL(a2->from, "level3@example.cn");
    }
    fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    st = g_mime_stream_fs_new(fd);
    p = g_mime_parser_new_with_stream(st);
    mime = g_mime_parser_construct_message(p, msg_parser_options());
    CU_ASSERT_PTR_NOT_NULL_FATAL(mime);
    CU_ASSERT_EQUAL(msg_from_gmime(mime, NULL, &g, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_STRING_EQUAL(g->message_id, m->message_id);
    CU_ASSERT_STRING_EQUAL(g->subject, m->subject);
    CU_ASSERT_STRING_EQUAL(g->body->str, m->body->str);
    CU_ASSERT_STRING_EQUAL(g->att_text->str, m->att_text->str);
    CU_ASSERT_EQUAL(g->atts->len, m->atts->len);
    CU_ASSERT_EQUAL(g->addrs->len, m->addrs->len);
    for (guint i = 0; i < g->atts->len && i < m->atts->len; i++) {
        const struct msg_att *a = g_ptr_array_index(g->atts, i), *b = g_ptr_array_index(m->atts, i);
        CU_ASSERT_STRING_EQUAL(a->sha256, b->sha256);
        CU_ASSERT_STRING_EQUAL(a->from, b->from);
    }
    msg_free(&g);
    g_object_unref(mime);
    g_object_unref(p);
    g_object_unref(st);
    msg_free(&m);
    g_free(path);
}

CUS_SUITE(msg)
{
    CU_pSuite s = CU_add_suite("msg", suite_init, NULL);

    CU_add_test(s, "decode_header", test_msg_decode_header);
    CU_add_test(s, "to_utf8", test_msg_to_utf8);
    CU_add_test(s, "params", test_msg_params);
    CU_add_test(s, "addresses", test_msg_addresses);
    CU_add_test(s, "dates", test_msg_dates);
    CU_add_test(s, "absent", test_msg_absent);
    CU_add_test(s, "html", test_msg_html);
    CU_add_test(s, "cjk", test_msg_cjk);
    CU_add_test(s, "limits", test_msg_limits);
    CU_add_test(s, "attached message; model from a GMime tree", test_msg_attached_and_gmime);
    CU_add_test(s, "broken", test_msg_broken);
    CU_add_test(s, "fuzz regressions", test_msg_fuzz);
    CU_add_test(s, "corpus", test_msg_corpus);
}
