/*
 * test-det-rules.c - what payment-details, self-forward and evasion build on
 *
 * Card numbers (BIN, Luhn) and IBANs (mod 97) found in text and not found
 * in look-alikes; the spellings of a name in mailbox names (ICU
 * Han-Latin); the part of a body its sender wrote; [detect] word lists
 * inline and from a file; attachments flagged encrypted (a zip made with
 * Debian's zip -P, 7z archives with 7-Zip's -p, data only and listing too,
 * at test time; RAR 4 and 5 archives built here, as no free tool writes
 * RAR) or
 * not what their extension says.
 */
#include <string.h>
#include <glib/gstdio.h>
#include <zlib.h>

#include "cutest.h"
#include "custos/det-account.h"
#include "custos/det-name.h"
#include "custos/det-text.h"
#include "custos/msg.h"

static void test_luhn_iban(void)
{
    static const struct {
        const char *s;
        int luhn;
    } luhn[] = {
        { "6222021234561236", 1 }, { "6222021234561234", 0 }, { "6228480012345678903", 1 },
        { "4111111111111111", 1 }, { "2024052812345675", 1 }, { "0", 0 }, { "12a4", 0 },
    };
    static const struct {
        const char *s;
        int ok;
    } iban[] = {
        { "DE89370400440532013000", 1 }, { "de89370400440532013000", 1 },
        { "GB82WEST12345698765432", 1 }, { "GB82WEST12345698765433", 0 },
        { "DE8937040044053201300", 0 },         /* one short */
        { "XX89370400440532013000", 0 },         /* no such country */
        { "FR1420041010050500013M02606", 1 }, { "NL91ABNA0417164300", 1 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(luhn); i++) {
        if (det_luhn_ok(luhn[i].s) != luhn[i].luhn)
            fprintf(stderr, "\nluhn(%s) != %d\n", luhn[i].s, luhn[i].luhn);
        CU_ASSERT_EQUAL(det_luhn_ok(luhn[i].s), luhn[i].luhn);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(iban); i++) {
        if (det_iban_ok(iban[i].s) != iban[i].ok)
            fprintf(stderr, "\niban(%s) != %d\n", iban[i].s, iban[i].ok);
        CU_ASSERT_EQUAL(det_iban_ok(iban[i].s), iban[i].ok);
    }
    CU_ASSERT(det_card_prefix_ok("6222021234561236"));
    CU_ASSERT(!det_card_prefix_ok("2024052812345675"));
}

static const struct {
    const char *text;
    const char *want;       /* the numbers found, space-separated */
} scan_cases[] = {
    { "账号:6222021234561236", "6222021234561236" },
    { "card 6222 0212 3456 1236 thanks", "6222021234561236" },
    { "6228-4800-1234-5678-903.", "6228480012345678903" },
    { "622848 0012345678903", "6228480012345678903" },
    /* a date after the number does not hide it */
    { "卡号 6222021234561236 2024-05-01", "6222021234561236" },
    /* fails Luhn; a date-like order number passing Luhn; too long; inside a word */
    { "order 6222021234561234", "" },
    { "订单号 2024052812345675", "" },
    { "62220212345612360000000", "" },
    { "x6222021234561236", "" },
    { "6222021234561236abc", "" },
    /* IBANs, grouped or not, in any case */
    { "IBAN: DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX", "DE89370400440532013000" },
    { "iban gb82west12345698765432.", "GB82WEST12345698765432" },
    { "GB82 WEST 1234 5698 7654 33", "" },
    { "two: 4111111111111111 and NL91ABNA0417164300", "4111111111111111 NL91ABNA0417164300" },
};

static void test_scan(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(scan_cases); i++) {
        const char *t = scan_cases[i].text;
        GPtrArray *hits = det_account_scan(t, strlen(t), 16);
        GString *got = g_string_new(NULL);

        for (guint k = 0; k < hits->len; k++) {
            const struct det_account_hit *h = hits->pdata[k];
            g_string_append_printf(got, "%s%s", k ? " " : "", h->number);
            /* the offsets frame the number as written */
            CU_ASSERT(g_ascii_isalnum(t[h->start]) && g_ascii_isalnum(t[h->end - 1]));
        }
        if (strcmp(got->str, scan_cases[i].want) != 0)
            fprintf(stderr, "\nscan(%s) = [%s], want [%s]\n", t, got->str, scan_cases[i].want);
        CU_ASSERT_STRING_EQUAL(got->str, scan_cases[i].want);
        g_string_free(got, TRUE);
        g_ptr_array_free(hits, TRUE);
    }
}

static int has_variant(GPtrArray *v, const char *s)
{
    for (guint i = 0; i < v->len; i++)
        if (strcmp(v->pdata[i], s) == 0)
            return 1;
    return 0;
}

static const struct {
    const char *name;
    const char *yes;        /* space-separated variants that must be there */
    const char *no;
} name_cases[] = {
    { "张三", "zhangsan zhang.san zhang_san zhang-san sanzhang san.zhang zs zhangs szhang", "z s" },
    { "王小明", "wangxiaoming wang.xiaoming xiaomingwang wxm wangxm xmwang", "xiaoming wang" },
    { "欧阳娜娜", "ouyangnana ouyang.nana nanaouyang oynn ouyangnn", "ouyang" },
    { "曾国藩", "zengguofan", "cengguofan" },
    { "John Smith", "johnsmith john.smith smithjohn smith.john js jsmith johns", "john" },
    { "Sean O'Brien", "seanobrien sean.obrien obrien.sean sobrien", "o" },
    { "李娜", "lina li.na nali ln", "" },
    /* ü: as ASCII, as typed with a pinyin input method, as on a passport */
    { "吕方", "lufang lvfang lyufang lv.fang fanglv lf lvf", "l#fang" },
    { "张女士", "zhangnushi zhangnvshi zhang.nvshi", "" },
    { "Jürgen Müller", "jurgenmuller muller.jurgen", "mvller myuller" },
    /* a '#' in the name is no ü */
    { "李娜 #2", "lina", "linau lu" },
};

static void test_name_variants(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(name_cases); i++) {
        GPtrArray *v = NULL;
        char *err = NULL, **yes, **no;

        CU_ASSERT_EQUAL_FATAL(det_name_variants(name_cases[i].name, &v, &err), 0);
        yes = g_strsplit(name_cases[i].yes, " ", -1);
        no = g_strsplit(name_cases[i].no, " ", -1);
        for (int k = 0; yes[k] != NULL; k++) {
            if (!has_variant(v, yes[k]))
                fprintf(stderr, "\nvariants(%s) lack %s\n", name_cases[i].name, yes[k]);
            CU_ASSERT(has_variant(v, yes[k]));
        }
        for (int k = 0; no[k] != NULL; k++) {
            if (*no[k] && has_variant(v, no[k]))
                fprintf(stderr, "\nvariants(%s) have %s\n", name_cases[i].name, no[k]);
            CU_ASSERT(!*no[k] || !has_variant(v, no[k]));
        }
        g_strfreev(yes);
        g_strfreev(no);
        g_ptr_array_free(v, TRUE);
    }
}

static void test_name_match(void)
{
    GPtrArray *v = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(det_name_variants("张三", &v, &err), 0);
    CU_ASSERT_STRING_EQUAL(det_name_local_matches("zhangsan@163.com", v), "zhangsan");
    CU_ASSERT_STRING_EQUAL(det_name_local_matches("Zhang.San1988@qq.com", v), "zhang.san");
    CU_ASSERT_STRING_EQUAL(det_name_local_matches("zs+work@gmail.com", v), "zs");
    CU_ASSERT_PTR_NULL(det_name_local_matches("lisi@163.com", v));
    CU_ASSERT_PTR_NULL(det_name_local_matches("zhangsanfeng@163.com", v));
    CU_ASSERT_PTR_NULL(det_name_local_matches("13800138000@139.com", v));
    g_ptr_array_free(v, TRUE);
    /* no letters at all: nothing to match */
    CU_ASSERT_EQUAL_FATAL(det_name_variants("123", &v, &err), 0);
    CU_ASSERT_EQUAL(v->len, 0);
    g_ptr_array_free(v, TRUE);
}

static const struct {
    const char *in, *out;
} unquoted_cases[] = {
    { "Hi,\nplease pay.\n\n> old line\n> 账号 6222\nthanks\n", "Hi,\nplease pay.\n\nthanks\n" },
    { "ok\n-----Original Message-----\nFrom: a\n账号: 1\n", "ok\n" },
    { "好的\n------------------ 原始邮件 ------------------\n发件人: x\n", "好的\n" },
    { "收到\n发件人: 张三 <z@x>\n发送时间: 2024\n", "收到\n" },
    { "Sure.\nOn Mon, 3 Jun 2024 at 10:00, Wang <w@x> wrote:\n> hi\n", "Sure.\n" },
    { "好\n在 2024年6月3日 10:00，王芳 写道:\n> 你好\n", "好\n" },
    { "fwd\nBegin forwarded message:\n\nFrom: a\n", "fwd\n" },
    { "no quote at all", "no quote at all" },
};

static void test_unquoted(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(unquoted_cases); i++) {
        char *got = det_text_unquoted(unquoted_cases[i].in, strlen(unquoted_cases[i].in));
        if (strcmp(got, unquoted_cases[i].out) != 0)
            fprintf(stderr, "\nunquoted(%s) = [%s]\n", unquoted_cases[i].in, got);
        CU_ASSERT_STRING_EQUAL(got, unquoted_cases[i].out);
        g_free(got);
    }
}

static void test_words(void)
{
    char *const *w = NULL, *const *w2 = NULL;
    char *err = NULL, *dir = cut_tmpdir(), *path = g_build_filename(dir, "words.txt", NULL);

    CU_ASSERT_EQUAL_FATAL(det_words(" 账号 , ＩＢＡＮ,, sort code ", &w, &err), 0);
    CU_ASSERT_STRING_EQUAL(w[0], "账号");
    CU_ASSERT_STRING_EQUAL(w[1], "IBAN");
    CU_ASSERT_STRING_EQUAL(w[2], "sort code");
    CU_ASSERT_PTR_NULL(w[3]);
    /* the same list again: the same copy */
    CU_ASSERT_EQUAL(det_words(" 账号 , ＩＢＡＮ,, sort code ", &w2, &err), 0);
    CU_ASSERT_PTR_EQUAL(w, w2);
    /* a file: one a line, comments, commas kept inside a word */
    g_file_set_contents(path, "# payment words\n收款人\n\nbank, account # both\n", -1, NULL);
    CU_ASSERT_EQUAL_FATAL(det_words(path, &w, &err), 0);
    CU_ASSERT_STRING_EQUAL(w[0], "收款人");
    CU_ASSERT_STRING_EQUAL(w[1], "bank, account");
    CU_ASSERT_PTR_NULL(w[2]);
    /* a missing file is an error naming it */
    g_unlink(path);
    CU_ASSERT_EQUAL(det_words(path, &w, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, path) != NULL);
    g_free(err);
    cut_rmtree(dir);
    g_free(dir);
    g_free(path);
}

/* A message with one base64 attachment. */
static char *mail_with(const char *name, const char *ctype, const void *data, gsize len)
{
    char *b64 = g_base64_encode(data, len);
    char *raw = g_strdup_printf(
        "From: li.na@corp.example\r\nTo: x@163.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
        "Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        "Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n", ctype, name, name, b64);

    g_free(b64);
    return raw;
}

static struct msg *parse(const char *raw)
{
    struct msg_limits lim;
    struct msg *m = NULL;
    char *err = NULL;

    msg_init();
    msg_limits_default(&lim);
    CU_ASSERT_EQUAL_FATAL(msg_parse(raw, strlen(raw), &lim, &m, &err), 0);
    return m;
}

static const struct msg_att *att_named(const struct msg *m, const char *name)
{
    for (guint i = 0; i < m->atts->len; i++)
        if (strcmp(((struct msg_att *)m->atts->pdata[i])->name, name) == 0)
            return m->atts->pdata[i];
    return NULL;
}

static void test_att_flags(void)
{
    char *dir = cut_tmpdir(), *csv = g_build_filename(dir, "客户.csv", NULL);
    char *zip = g_build_filename(dir, "c.zip", NULL), *plain = g_build_filename(dir, "p.zip", NULL);
    char *zipbin = g_find_program_in_path("zip");
    char *argv1[] = { zipbin, "-q", "-j", "-P", "s3cret", zip, csv, NULL };
    char *argv2[] = { zipbin, "-q", "-j", plain, csv, NULL };
    char *data = NULL, *raw, *outer;
    gsize len = 0;
    struct msg *m;
    const struct msg_att *a;
    static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0 };

    CU_ASSERT_PTR_NOT_NULL_FATAL(zipbin);     /* Debian's zip (make deps) */
    g_file_set_contents(csv, "name,email\n王芳,wang.fang@xingchen.example\n", -1, NULL);
    CU_ASSERT_EQUAL_FATAL(cut_run(argv1, NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cut_run(argv2, NULL, NULL), 0);

    /* encrypted: flagged, its member listed all the same */
    CU_ASSERT_FATAL(g_file_get_contents(zip, &data, &len, NULL));
    raw = mail_with("c.zip", "application/zip", data, len);
    m = parse(raw);
    a = att_named(m, "c.zip");
    CU_ASSERT_FATAL(a != NULL);
    CU_ASSERT_EQUAL(a->encrypted, 1);
    CU_ASSERT_EQUAL(a->mismatch, 0);
    /* nested in a plain zip: the inner one is flagged, the outer not */
    {
        char *inner = g_build_filename(dir, "c.zip", NULL);
        char *wrap = g_build_filename(dir, "outer.zip", NULL);
        char *argv3[] = { zipbin, "-q", "-j", wrap, inner, NULL };
        char *wdata = NULL;
        gsize wlen = 0;
        struct msg *m2;

        CU_ASSERT_EQUAL_FATAL(cut_run(argv3, NULL, NULL), 0);
        CU_ASSERT_FATAL(g_file_get_contents(wrap, &wdata, &wlen, NULL));
        outer = mail_with("outer.zip", "application/zip", wdata, wlen);
        m2 = parse(outer);
        CU_ASSERT(att_named(m2, "outer.zip") != NULL && !att_named(m2, "outer.zip")->encrypted);
        CU_ASSERT(att_named(m2, "c.zip") != NULL && att_named(m2, "c.zip")->encrypted);
        msg_free(&m2);
        g_free(outer);
        g_free(wdata);
        g_free(inner);
        g_free(wrap);
    }
    msg_free(&m);
    g_free(raw);
    g_free(data);

    /* the same zip without a password: not flagged; its text is read */
    CU_ASSERT_FATAL(g_file_get_contents(plain, &data, &len, NULL));
    raw = mail_with("p.zip", "application/zip", data, len);
    m = parse(raw);
    CU_ASSERT(att_named(m, "p.zip") != NULL && !att_named(m, "p.zip")->encrypted);
    CU_ASSERT(strstr(m->att_text->str, "wang.fang@xingchen.example") != NULL);
    msg_free(&m);
    g_free(raw);

    /* a zip named .jpg: not what it says; a PNG named .jpg: alike enough */
    raw = mail_with("photo.jpg", "image/jpeg", data, len);
    m = parse(raw);
    CU_ASSERT(att_named(m, "photo.jpg") != NULL && att_named(m, "photo.jpg")->mismatch);
    msg_free(&m);
    g_free(raw);
    raw = mail_with("photo.jpg", "image/jpeg", png, sizeof(png));
    m = parse(raw);
    CU_ASSERT(att_named(m, "photo.jpg") != NULL && !att_named(m, "photo.jpg")->mismatch);
    msg_free(&m);
    g_free(raw);
    /* an image named .txt hides nothing from inspection */
    raw = mail_with("note.txt", "text/plain", png, sizeof(png));
    m = parse(raw);
    CU_ASSERT(att_named(m, "note.txt") != NULL && !att_named(m, "note.txt")->mismatch);
    msg_free(&m);
    g_free(raw);
    /* a PDF named .png does */
    raw = mail_with("scan.png", "image/png", "%PDF-1.4\n%%EOF\n", 15);
    m = parse(raw);
    CU_ASSERT(att_named(m, "scan.png") != NULL && att_named(m, "scan.png")->mismatch);
    msg_free(&m);
    g_free(raw);
    /* an xlsx is a zip: not a mismatch */
    raw = mail_with("list.xlsx", "application/octet-stream", data, len);
    m = parse(raw);
    CU_ASSERT(att_named(m, "list.xlsx") != NULL && !att_named(m, "list.xlsx")->mismatch);
    msg_free(&m);
    g_free(raw);
    g_free(data);

    cut_rmtree(dir);
    g_free(dir);
    g_free(csv);
    g_free(zip);
    g_free(plain);
    g_free(zipbin);
}

/* A mail with the archive data attached as name: flagged encrypted or
 * not as expected, not a mismatch, and the text of its member (a CSV with
 * wang.fang@xingchen.example) read when not encrypted, never when it is. */
static void check_archive(const char *name, const char *ctype, const void *data, gsize len,
                          int encrypted)
{
    char *raw = mail_with(name, ctype, data, len);
    struct msg *m = parse(raw);
    const struct msg_att *a = att_named(m, name);
    int read;

    CU_ASSERT_FATAL(a != NULL);
    read = strstr(m->att_text->str, "wang.fang@xingchen.example") != NULL;
    if (a->encrypted != encrypted || read == encrypted)
        fprintf(stderr, "%s: encrypted %d, text %s; expected encrypted %d ", name,
                a->encrypted, read ? "read" : "not read", encrypted);
    CU_ASSERT_EQUAL(a->encrypted, encrypted);
    CU_ASSERT_EQUAL(a->mismatch, 0);
    CU_ASSERT_EQUAL(read, !encrypted);
    msg_free(&m);
    g_free(raw);
}

/* 7z: encrypted data (the listing readable) and an encrypted listing
 * (-mhe=on: not even the names without the password) are both flagged;
 * the same archive without a password is not, and its text is read. The
 * archives are made by Debian's 7-Zip (7zz, make deps). */
static void test_att_7z(void)
{
    char *dir = cut_tmpdir(), *csv = g_build_filename(dir, "客户.csv", NULL);
    char *bin = g_find_program_in_path("7zz");
    static const struct {
        const char *name, *opt1, *opt2;
        int encrypted;
    } cases[] = {
        { "data.7z", "-ps3cret", NULL, 1 },
        { "listing.7z", "-ps3cret", "-mhe=on", 1 },
        { "plain.7z", NULL, NULL, 0 },
    };

    CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
    g_file_set_contents(csv, "name,email\n王芳,wang.fang@xingchen.example\n", -1, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *path = g_build_filename(dir, cases[i].name, NULL);
        GPtrArray *argv = g_ptr_array_new();
        char *data = NULL;
        gsize len = 0;

        g_ptr_array_add(argv, bin);
        g_ptr_array_add(argv, "a");
        g_ptr_array_add(argv, "-bd");
        g_ptr_array_add(argv, "-bso0");
        if (cases[i].opt1 != NULL)
            g_ptr_array_add(argv, (char *)cases[i].opt1);
        if (cases[i].opt2 != NULL)
            g_ptr_array_add(argv, (char *)cases[i].opt2);
        g_ptr_array_add(argv, path);
        g_ptr_array_add(argv, csv);
        g_ptr_array_add(argv, NULL);
        CU_ASSERT_EQUAL_FATAL(cut_run((char **)argv->pdata, NULL, NULL), 0);
        g_ptr_array_free(argv, TRUE);
        CU_ASSERT_FATAL(g_file_get_contents(path, &data, &len, NULL));
        check_archive(cases[i].name, "application/x-7z-compressed", data, len,
                      cases[i].encrypted);
        g_free(data);
        g_free(path);
    }
    cut_rmtree(dir);
    g_free(dir);
    g_free(csv);
    g_free(bin);
}

/* One RAR 4 block: HEAD_CRC (the low 16 bits of the CRC-32 of the rest of
 * the header), HEAD_TYPE, HEAD_FLAGS, HEAD_SIZE, then rest (its fields). */
static void rar_block(GByteArray *out, guint8 type, guint16 flags, const guint8 *rest,
                      size_t rlen)
{
    guint16 size = (guint16)(7 + rlen);
    guint8 h[7] = { 0, 0, type, flags & 0xff, flags >> 8, size & 0xff, size >> 8 };
    uLong crc = crc32(crc32(0, h + 2, 5), rest, (uInt)rlen);

    h[0] = crc & 0xff;
    h[1] = (crc >> 8) & 0xff;
    g_byte_array_append(out, h, 7);
    g_byte_array_append(out, rest, (guint)rlen);
}

static void le32(guint8 *p, guint32 v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (v >> (8 * i)) & 0xff;
}

enum rar_how { RAR_PLAIN, RAR_DATA_ENCRYPTED, RAR_HEADERS_ENCRYPTED };

/* A RAR 4 archive (the format of WinRAR 2.9 to 4, and of WinRAR 5 when
 * asked) holding the stored member name with data: plain; with the member
 * encrypted (FHD_PASSWORD, its salt, data as AES would leave it: blocks of
 * 16 bytes of noise); or with the headers encrypted (MHD_PASSWORD: after
 * the main header nothing can be read, not even the names). */
static GByteArray *rar4(enum rar_how how, const char *name, const char *data, size_t len)
{
    static const guint8 mark[] = { 0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x00 };
    GByteArray *out = g_byte_array_new();
    guint8 main_rest[6] = { 0 }, f[25 + 64 + 8];
    size_t nl = strlen(name), flen, plen = how == RAR_PLAIN ? len : (len + 15) / 16 * 16;
    guint32 dos_time = (46u << 25) | (12u << 21) | (1u << 16);     /* 2026-12-01 */
    guint16 flags = 0x8000 | (how == RAR_DATA_ENCRYPTED ? 0x0004 | 0x0400 : 0);

    g_assert(nl <= 64);
    g_byte_array_append(out, mark, sizeof(mark));
    rar_block(out, 0x73, how == RAR_HEADERS_ENCRYPTED ? 0x0080 : 0, main_rest,
              sizeof(main_rest));
    if (how == RAR_HEADERS_ENCRYPTED) {
        /* the salt, then every other header encrypted */
        for (int i = 0; i < 8 + 48; i++)
            g_byte_array_append(out, (guint8[]){ (guint8)(i * 37 + 11) }, 1);
        return out;
    }
    le32(f, (guint32)plen);                     /* PACK_SIZE */
    le32(f + 4, (guint32)len);                  /* UNP_SIZE */
    f[8] = 3;                                   /* HOST_OS: Unix */
    le32(f + 9, (guint32)crc32(0, (const Bytef *)data, (uInt)len));
    le32(f + 13, dos_time);
    f[17] = 29;                                 /* UNP_VER 2.9 */
    f[18] = 0x30;                               /* METHOD: stored */
    f[19] = nl & 0xff;
    f[20] = (nl >> 8) & 0xff;
    le32(f + 21, 0100644);                      /* ATTR: a regular file */
    memcpy(f + 25, name, nl);
    flen = 25 + nl;
    if (how == RAR_DATA_ENCRYPTED) {
        memcpy(f + flen, "\x5a\x17\xc3\x08\x91\x4e\x2b\xd6", 8);     /* SALT */
        flen += 8;
    }
    rar_block(out, 0x74, flags, f, flen);
    if (how == RAR_PLAIN) {
        g_byte_array_append(out, (const guint8 *)data, (guint)len);
    } else {
        for (size_t i = 0; i < plen; i++)
            g_byte_array_append(out, (guint8[]){ (guint8)(i * 73 + 5) }, 1);
    }
    rar_block(out, 0x7b, 0x4000, NULL, 0);      /* end of archive */
    return out;
}

/* A RAR 5 vint: 7 bits a byte, low first, the high bit set on all but the
 * last. */
static void vint(GByteArray *out, guint64 v)
{
    do {
        guint8 b = (v & 0x7f) | (v > 0x7f ? 0x80 : 0);
        g_byte_array_append(out, &b, 1);
        v >>= 7;
    } while (v > 0);
}

/* One RAR 5 header: CRC32 (of the size and the rest), its size, then type,
 * flags, [extra area size], [data size], fields, the extra area. */
static void rar5_header(GByteArray *out, guint64 type, const GByteArray *fields,
                        const GByteArray *extra, guint64 data_size)
{
    GByteArray *h = g_byte_array_new(), *all = g_byte_array_new();
    guint8 crc[4];
    uLong c;

    vint(h, type);
    vint(h, (extra != NULL ? 1 : 0) | (data_size > 0 ? 2 : 0));
    if (extra != NULL)
        vint(h, extra->len);
    if (data_size > 0)
        vint(h, data_size);
    if (fields != NULL)
        g_byte_array_append(h, fields->data, fields->len);
    if (extra != NULL)
        g_byte_array_append(h, extra->data, extra->len);
    vint(all, h->len);
    g_byte_array_append(all, h->data, h->len);
    c = crc32(0, all->data, all->len);
    le32(crc, (guint32)c);
    g_byte_array_append(out, crc, 4);
    g_byte_array_append(out, all->data, all->len);
    g_byte_array_free(h, TRUE);
    g_byte_array_free(all, TRUE);
}

/* Noise as AES would leave it, n bytes. */
static void noise(GByteArray *out, size_t n, guint8 seed)
{
    for (size_t i = 0; i < n; i++)
        g_byte_array_append(out, (guint8[]){ (guint8)(i * 73 + seed) }, 1);
}

/* A RAR 5 archive (WinRAR's own format since 5.0) of the stored member
 * name with data: plain; the member encrypted (a file encryption record
 * in its extra area); or the listing encrypted (an archive encryption
 * header first: nothing after it readable). */
static GByteArray *rar5(enum rar_how how, const char *name, const char *data, size_t len)
{
    static const guint8 sig[] = { 0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x01, 0x00 };
    GByteArray *out = g_byte_array_new(), *f = g_byte_array_new(), *x = NULL;
    size_t plen = how == RAR_PLAIN ? len : (len + 15) / 16 * 16;
    guint8 crc[4];

    g_byte_array_append(out, sig, sizeof(sig));
    if (how == RAR_HEADERS_ENCRYPTED) {
        vint(f, 0);                             /* AES-256 */
        vint(f, 0);                             /* no password check value */
        g_byte_array_append(f, (guint8[]){ 15 }, 1);   /* KDF count */
        noise(f, 16, 3);                        /* salt */
        rar5_header(out, 4, f, NULL, 0);
        noise(out, 16 + 48, 9);                 /* IV, then headers encrypted */
        g_byte_array_free(f, TRUE);
        return out;
    }
    vint(f, 0);                                 /* archive flags */
    rar5_header(out, 1, f, NULL, 0);
    g_byte_array_set_size(f, 0);
    vint(f, 0x4);                               /* file flags: data CRC32 */
    vint(f, len);                               /* unpacked size */
    vint(f, 0100644);                           /* attributes */
    le32(crc, (guint32)crc32(0, (const Bytef *)data, (uInt)len));
    g_byte_array_append(f, crc, 4);
    vint(f, 0);                                 /* compression: stored */
    vint(f, 1);                                 /* host OS: Unix */
    vint(f, strlen(name));
    g_byte_array_append(f, (const guint8 *)name, (guint)strlen(name));
    if (how == RAR_DATA_ENCRYPTED) {
        GByteArray *r = g_byte_array_new();

        vint(r, 1);                             /* file encryption */
        vint(r, 0);                             /* AES-256 */
        vint(r, 0);                             /* flags */
        g_byte_array_append(r, (guint8[]){ 15 }, 1);
        noise(r, 32, 5);                        /* salt, IV */
        x = g_byte_array_new();
        vint(x, r->len);
        g_byte_array_append(x, r->data, r->len);
        g_byte_array_free(r, TRUE);
    }
    rar5_header(out, 2, f, x, plen);
    if (how == RAR_PLAIN)
        g_byte_array_append(out, (const guint8 *)data, (guint)len);
    else
        noise(out, plen, 7);
    g_byte_array_set_size(f, 0);
    vint(f, 0);                                 /* end of archive flags */
    rar5_header(out, 5, f, NULL, 0);
    g_byte_array_free(f, TRUE);
    if (x != NULL)
        g_byte_array_free(x, TRUE);
    return out;
}

/* RAR 4 and 5: a member encrypted, or the whole listing, is flagged; the
 * same archive without a password is not, and its member's text is read.
 * (libarchive reads RAR 5 but does not report its encryption: msg-attach.c
 * looks at the headers.) */
static void test_att_rar(void)
{
    static const char csv[] = "name,email\n王芳,wang.fang@xingchen.example\n";
    static const struct {
        const char *name;
        int v5;
        enum rar_how how;
        int encrypted;
    } cases[] = {
        { "data.rar", 0, RAR_DATA_ENCRYPTED, 1 },
        { "listing.rar", 0, RAR_HEADERS_ENCRYPTED, 1 },
        { "plain.rar", 0, RAR_PLAIN, 0 },
        { "data5.rar", 1, RAR_DATA_ENCRYPTED, 1 },
        { "listing5.rar", 1, RAR_HEADERS_ENCRYPTED, 1 },
        { "plain5.rar", 1, RAR_PLAIN, 0 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GByteArray *rar = (cases[i].v5 ? rar5 : rar4)(cases[i].how, "kehu.csv", csv,
                                                      sizeof(csv) - 1);

        check_archive(cases[i].name, "application/vnd.rar", rar->data, rar->len,
                      cases[i].encrypted);
        g_byte_array_free(rar, TRUE);
    }
    /* a RAR 5 header with a wrong CRC is no evidence: not flagged */
    {
        GByteArray *rar = rar5(RAR_HEADERS_ENCRYPTED, "kehu.csv", csv, sizeof(csv) - 1);
        char *raw;
        struct msg *m;

        rar->data[8] ^= 0x01;                   /* the encryption header's CRC */
        raw = mail_with("bad.rar", "application/vnd.rar", (char *)rar->data, rar->len);
        m = parse(raw);
        CU_ASSERT(att_named(m, "bad.rar") != NULL && !att_named(m, "bad.rar")->encrypted);
        msg_free(&m);
        g_free(raw);
        g_byte_array_free(rar, TRUE);
    }
}

CUS_SUITE(det_rules)
{
    CU_pSuite s = CU_add_suite("det_rules", NULL, NULL);

    CU_add_test(s, "Luhn and IBAN checks", test_luhn_iban);
    CU_add_test(s, "account numbers in text", test_scan);
    CU_add_test(s, "name variants (ICU Han-Latin)", test_name_variants);
    CU_add_test(s, "local part against a name", test_name_match);
    CU_add_test(s, "the sender's own text", test_unquoted);
    CU_add_test(s, "word lists", test_words);
    CU_add_test(s, "attachments: encrypted, disguised", test_att_flags);
    CU_add_test(s, "attachments: 7z, encrypted data or listing", test_att_7z);
    CU_add_test(s, "attachments: RAR 4 and 5, encrypted data or listing", test_att_rar);
}
