/*
 * test-handover.c - custos-handover: folder names (modified UTF-7 and
 * listescape, round trips), Maildir reading and writing (flags, odd file
 * names, what an earlier run left), subscriptions in both of Dovecot's
 * formats, vCard 4.0 escaping and folding (RFC 6350), CSV, phones in
 * signatures, Sieve redirects, the journal; then the program on a leaver
 * built from the sample directory's sales mailbox (tests/data/handover):
 * plan, apply, every bad input, resume after a kill at each step, a full
 * disk, notices, the package, the forwarding audit; and end to end with a
 * private Dovecot on 127.0.0.1 read over IMAP by curl.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "cutest.h"
#include "custos/handover-contacts.h"
#include "custos/handover-forwards.h"
#include "custos/handover-maildir.h"
#include "custos/msg.h"
#include "../handover/handover-private.h"

/* ---- modified UTF-7 ------------------------------------------------------------ */

static const struct {
    const char *utf8, *mutf7;
} mutf7_cases[] = {
    { "INBOX", "INBOX" },
    { "客户", "&W6JiNw-" },
    { "明远", "&Zg6P3A-" },
    { "A&B", "A&-B" },
    { "A&B, Partners", "A&-B, Partners" },
    { "&", "&-" },
    { "&&", "&-&-" },
    { "Entwürfe", "Entw&APw-rfe" },
    { "~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
    { "𠮷野家", "&2ELft5HOW7Y-" },                 /* a surrogate pair */
    { "a,b", "a,b" },
    { "tab\there", "tab&AAk-here" },               /* controls are encoded */
    { "", "" },
};

static const char *const mutf7_bad[] = {
    "&W6JiNw",          /* not closed */
    "&AGE-",            /* printable ASCII encoded */
    "&AAA-",            /* NUL */
    "&W6JiNw-&Zg6P3A-", /* two runs next to each other */
    "&2EI-",            /* a high surrogate alone */
    "&3,4-",            /* a low surrogate alone */
    "&W6J-",            /* bits left over */
    "&W6JiNx-",         /* non-zero padding bits */
    "a\xe5\xae\xa2",    /* raw UTF-8 */
    "&W6Ji*w-",         /* not base64 */
    "&-&",              /* '&' at the end */
};

static void test_mutf7(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(mutf7_cases); i++) {
        char *enc = NULL, *dec = NULL, *err = NULL;

        CU_ASSERT_EQUAL(hov_mutf7_encode(mutf7_cases[i].utf8, &enc, &err), 0);
        CU_ASSERT_STRING_EQUAL(enc != NULL ? enc : "(null)", mutf7_cases[i].mutf7);
        if (enc == NULL || strcmp(enc, mutf7_cases[i].mutf7) != 0)
            fprintf(stderr, "\nencode(%s) = %s, want %s\n", mutf7_cases[i].utf8, enc,
                    mutf7_cases[i].mutf7);
        CU_ASSERT_EQUAL(hov_mutf7_decode(mutf7_cases[i].mutf7, &dec, &err), 0);
        CU_ASSERT_STRING_EQUAL(dec != NULL ? dec : "(null)", mutf7_cases[i].utf8);
        g_free(enc);
        g_free(dec);
        g_free(err);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(mutf7_bad); i++) {
        char *dec = NULL, *err = NULL;
        int rc = hov_mutf7_decode(mutf7_bad[i], &dec, &err);

        if (rc == 0)
            fprintf(stderr, "\ndecode(%s) accepted: %s\n", mutf7_bad[i], dec);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NULL(dec);
        CU_ASSERT(err != NULL && strstr(err, "folder name") != NULL);
        g_free(err);
    }
    {
        char *enc = NULL, *err = NULL;
        CU_ASSERT_EQUAL(hov_mutf7_encode("bad \xff", &enc, &err), -1);
        CU_ASSERT(err != NULL && strstr(err, "not valid UTF-8") != NULL);
        g_free(err);
    }
}

/* Every string of a few hundred random code points survives a round trip
 * and encodes to printable ASCII only. */
static void test_mutf7_random(void)
{
    GRand *r = g_rand_new_with_seed(7);

    for (int n = 0; n < 300; n++) {
        GString *s = g_string_new(NULL);
        char *enc = NULL, *dec = NULL;
        int len = g_rand_int_range(r, 1, 20);

        for (int i = 0; i < len; i++) {
            gunichar c;
            switch (g_rand_int_range(r, 0, 4)) {
            case 0: c = (gunichar)g_rand_int_range(r, 0x20, 0x7f); break;
            case 1: c = (gunichar)g_rand_int_range(r, 0x4e00, 0x9fff); break;
            case 2: c = (gunichar)g_rand_int_range(r, 0x10000, 0x2ffff); break;
            default: c = (gunichar)g_rand_int_range(r, 0x80, 0xd7ff); break;
            }
            g_string_append_unichar(s, c);
        }
        CU_ASSERT_EQUAL_FATAL(hov_mutf7_encode(s->str, &enc, NULL), 0);
        for (const char *p = enc; *p != '\0'; p++)
            CU_ASSERT(*p >= 0x20 && *p < 0x7f);
        CU_ASSERT_EQUAL(hov_mutf7_decode(enc, &dec, NULL), 0);
        CU_ASSERT_STRING_EQUAL(dec != NULL ? dec : "", s->str);
        g_free(enc);
        g_free(dec);
        g_string_free(s, TRUE);
    }
    g_rand_free(r);
}

static void test_levels(void)
{
    static const struct {
        const char *name, *listescape, *underscore;
    } cases[] = {
        { "wang.wei", "wang\\2ewei", "wang_wei" },
        { "li.na", "li\\2ena", "li_na" },
        { "客户", "&W6JiNw-", "&W6JiNw-" },
        { "a/b", "a\\2fb", "a_b" },
        { "~home", "\\7ehome", "_home" },
        { "x~y", "x~y", "x~y" },
        { "back\\slash", "back\\5cslash", "back_slash" },
        { "R&D.v2", "R&-D\\2ev2", "R&-D_v2" },
    };
    char *out = NULL, *err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *dec = NULL;

        CU_ASSERT_EQUAL(hov_level_encode(cases[i].name, HOV_ESC_LISTESCAPE, &out, NULL), 0);
        CU_ASSERT_STRING_EQUAL(out, cases[i].listescape);
        CU_ASSERT(strchr(out, '.') == NULL && strchr(out, '/') == NULL);
        CU_ASSERT_EQUAL(hov_level_decode(out, &dec, NULL), 0);
        CU_ASSERT_STRING_EQUAL(dec, cases[i].name);
        g_free(out);
        g_free(dec);
        CU_ASSERT_EQUAL(hov_level_encode(cases[i].name, HOV_ESC_UNDERSCORE, &out, NULL), 0);
        CU_ASSERT_STRING_EQUAL(out, cases[i].underscore);
        g_free(out);
    }
    CU_ASSERT_EQUAL(hov_level_encode("", HOV_ESC_LISTESCAPE, &out, &err), -1);
    g_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(hov_level_encode("a\nb", HOV_ESC_LISTESCAPE, &out, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, "control") != NULL);
    g_free(err);
    /* storage names as people read them */
    out = hov_storage_display("Handover.wang\\2ewei.&W6JiNw-.&Zg6P3A-");
    CU_ASSERT_STRING_EQUAL(out, "Handover/wang.wei/客户/明远");
    g_free(out);
    out = hov_storage_display("");
    CU_ASSERT_STRING_EQUAL(out, "INBOX");
    g_free(out);
    out = hov_storage_display("A&-B, Partners");
    CU_ASSERT_STRING_EQUAL(out, "A&B, Partners");
    g_free(out);
    out = hov_storage_display("broken&Zg6");      /* shown as it is */
    CU_ASSERT_STRING_EQUAL(out, "broken&Zg6");
    g_free(out);
}

/* ---- Maildir ---------------------------------------------------------------------- */

static void test_mfile_split(void)
{
    static const struct {
        const char *name, *base, *flags;
    } cases[] = {
        { "1700000000.M1P2Q3.host,S=100:2,S", "1700000000.M1P2Q3.host,S=100", "S" },
        { "1700000000.M1P2Q3.host:2,TSRF", "1700000000.M1P2Q3.host", "FRST" },
        { "1700000000.M1P2Q3.host:2,SSa", "1700000000.M1P2Q3.host", "Sa" },
        { "1700000000.M1P2Q3.host:2,", "1700000000.M1P2Q3.host", "" },
        { "1700000000.M1P2Q3.host", "1700000000.M1P2Q3.host", "" },
        { "1700000000.M1P2Q3.host:1,xyz", "1700000000.M1P2Q3.host", "" },
        { "17.host name:2,S,,x", "17.host name", "Sx" },
        { "17.h\xff:2,F", "17.h\xff", "F" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *b = NULL, *f = NULL;
        hov_mfile_split(cases[i].name, &b, &f);
        CU_ASSERT_STRING_EQUAL(b, cases[i].base);
        CU_ASSERT_STRING_EQUAL(f, cases[i].flags);
        g_free(b);
        g_free(f);
    }
}

static void write_file(const char *path, const char *data, time_t mtime)
{
    struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

    CU_ASSERT_FATAL(g_file_set_contents(path, data, -1, NULL));
    if (mtime > 0)
        utimensat(AT_FDCWD, path, ts, 0);
}

static char *mkmaildir(const char *dir, const char *sub)
{
    char *p = g_build_filename(dir, sub, NULL);
    static const char *const s[] = { "cur", "new", "tmp" };

    for (int i = 0; i < 3; i++) {
        char *q = g_build_filename(p, s[i], NULL);
        g_mkdir_with_parents(q, 0700);
        g_free(q);
    }
    return p;
}

static int count_dir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    int n = 0;

    while (d != NULL && g_dir_read_name(d) != NULL)
        n++;
    if (d != NULL)
        g_dir_close(d);
    return n;
}

static void test_maildir_read(void)
{
    char *t = cut_tmpdir(), *root = mkmaildir(t, "Maildir"), *p, *err = NULL;
    GPtrArray *folders = NULL, *files = NULL;
    gint64 skipped = 0;

    g_free(mkmaildir(root, ".Sent"));
    g_free(mkmaildir(root, ".&W6JiNw-.&Zg6P3A-"));
    p = g_build_filename(root, ".notafolder", NULL);     /* no cur/ or new/ */
    g_mkdir_with_parents(p, 0700);
    g_free(p);
    p = g_build_filename(root, ".file", NULL);           /* not a directory */
    write_file(p, "x", 0);
    g_free(p);
    p = g_build_filename(root, "cur", "1.a.h:2,SR", NULL);
    write_file(p, "Subject: a\n\nA\n", 1000);
    g_free(p);
    p = g_build_filename(root, "new", "2.b.h", NULL);
    write_file(p, "Subject: b\n\nB\n", 2000);
    g_free(p);
    p = g_build_filename(root, "cur", ".hidden", NULL);
    write_file(p, "x", 0);
    g_free(p);
    p = g_build_filename(root, "cur", "adir", NULL);
    mkdir(p, 0700);
    g_free(p);
    p = g_build_filename(root, "cur", "link:2,S", NULL);
    CU_ASSERT_EQUAL(symlink("/etc/passwd", p), 0);         /* never followed */
    g_free(p);

    CU_ASSERT_EQUAL_FATAL(hov_maildir_folders(root, &folders, &err), 0);
    CU_ASSERT_EQUAL(folders->len, 3);
    CU_ASSERT_STRING_EQUAL(((struct hov_folder *)folders->pdata[0])->display, "INBOX");
    CU_ASSERT_STRING_EQUAL(((struct hov_folder *)folders->pdata[1])->display, "客户/明远");
    CU_ASSERT_STRING_EQUAL(((struct hov_folder *)folders->pdata[2])->storage, "Sent");
    CU_ASSERT_EQUAL_FATAL(hov_maildir_messages(root, &files, &skipped, &err), 0);
    CU_ASSERT_EQUAL(files->len, 2);
    CU_ASSERT_EQUAL(skipped, 3);
    CU_ASSERT_STRING_EQUAL(((struct hov_mfile *)files->pdata[0])->flags, "RS");
    CU_ASSERT_EQUAL(((struct hov_mfile *)files->pdata[1])->in_new, 1);
    g_ptr_array_free(files, TRUE);
    g_ptr_array_free(folders, TRUE);

    /* not there, not a Maildir */
    p = g_build_filename(t, "nothing", NULL);
    CU_ASSERT_EQUAL(hov_maildir_folders(p, &folders, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, p) != NULL && strstr(err, "No such file") != NULL);
    g_free(err);
    err = NULL;
    g_free(p);
    CU_ASSERT_EQUAL(hov_maildir_folders(t, &folders, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, "not a Maildir") != NULL);
    g_free(err);
    g_free(root);
    cut_rmtree(t);
    g_free(t);
}

static void test_maildir_write(void)
{
    char *t = cut_tmpdir(), *root = mkmaildir(t, "Maildir"), *err = NULL, *p, *kw;
    struct hov_owner o;
    struct hov_dest *d = NULL;
    unsigned char sha[CUS_SHA256_LEN], sha2[CUS_SHA256_LEN];
    const char *msg = "Subject: x\n\nbody\n", *msg2 = "Subject: y\n\nother\n";
    struct stat st;
    char *cur, *tmpd;
    GDir *gd;
    const char *n;

    chmod(root, 0750);
    CU_ASSERT_EQUAL_FATAL(hov_owner_of(root, &o, &err), 0);
    CU_ASSERT_EQUAL(o.dir_mode, 0750);
    CU_ASSERT_EQUAL(o.file_mode, 0640);
    kw = g_build_filename(t, "kw", NULL);
    write_file(kw, "0 $Forwarded\n", 0);
    cus_sha256(msg, strlen(msg), sha);
    cus_sha256(msg2, strlen(msg2), sha2);
    CU_ASSERT_EQUAL_FATAL(hov_dest_open(root, "Handover.li\\2ena.INBOX", &o, kw, &d, &err), 0);
    CU_ASSERT_EQUAL(hov_dest_put(d, msg, -1, strlen(msg), sha, 1700000000, "RS", 0, &err), 1);
    CU_ASSERT_EQUAL(hov_dest_put(d, msg, -1, strlen(msg), sha, 1700000000, "RS", 0, &err), 0);
    CU_ASSERT_EQUAL(hov_dest_put(d, msg2, -1, strlen(msg2), sha2, 1700000100, "", 1, &err), 1);
    CU_ASSERT(hov_dest_has(d, sha));
    CU_ASSERT_EQUAL(hov_dest_sync(d, &err), 0);
    hov_dest_close(&d);

    p = g_build_filename(root, ".Handover.li\\2ena.INBOX", NULL);
    cur = g_build_filename(p, "cur", NULL);
    tmpd = g_build_filename(p, "tmp", NULL);
    CU_ASSERT_EQUAL(count_dir(cur), 1);
    gd = g_dir_open(cur, 0, NULL);
    n = g_dir_read_name(gd);
    CU_ASSERT(g_str_has_prefix(n, "1700000000.H") && g_str_has_suffix(n, ",S=17:2,RS"));
    {
        char *f = g_build_filename(cur, n, NULL);
        CU_ASSERT_EQUAL(stat(f, &st), 0);
        CU_ASSERT_EQUAL(st.st_mtime, 1700000000);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0640);
        CU_ASSERT_EQUAL(st.st_uid, o.uid);
        /* cut short, as by a crash: the next open removes it, the next put
         * writes it again */
        truncate(f, 5);
        g_free(f);
    }
    g_dir_close(gd);
    {
        char *f = g_build_filename(p, "new", NULL);
        CU_ASSERT_EQUAL(count_dir(f), 1);
        g_free(f);
        f = g_build_filename(p, "dovecot-keywords", NULL);
        CU_ASSERT(access(f, F_OK) == 0);
        g_free(f);
        f = g_build_filename(p, "maildirfolder", NULL);
        CU_ASSERT(access(f, F_OK) == 0);
        g_free(f);
        f = g_build_filename(tmpd, "1.H0123456789abcdef01234567.custos,S=3", NULL);
        write_file(f, "abc", 0);           /* a leftover temp file of ours */
        g_free(f);
        CU_ASSERT_EQUAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0750);
    }
    CU_ASSERT_EQUAL_FATAL(hov_dest_open(root, "Handover.li\\2ena.INBOX", &o, NULL, &d, &err), 0);
    CU_ASSERT(!hov_dest_has(d, sha));
    CU_ASSERT(hov_dest_has(d, sha2));
    CU_ASSERT_EQUAL(count_dir(tmpd), 0);
    CU_ASSERT_EQUAL(hov_dest_put(d, msg, -1, strlen(msg), sha, 1700000000, "RS", 0, &err), 1);
    CU_ASSERT_EQUAL(hov_dest_put(d, msg2, -1, strlen(msg2), sha2, 1700000100, "", 1, &err), 0);
    hov_dest_close(&d);
    CU_ASSERT_EQUAL(count_dir(cur), 1);

    /* a Maildir that is not there */
    g_free(p);
    p = g_build_filename(t, "none", NULL);
    CU_ASSERT_EQUAL(hov_owner_of(p, &o, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, p) != NULL);
    g_free(err);
    g_free(p);
    g_free(cur);
    g_free(tmpd);
    g_free(kw);
    g_free(root);
    cut_rmtree(t);
    g_free(t);
}

static void test_subscriptions(void)
{
    char *t = cut_tmpdir(), *root = mkmaildir(t, "Maildir"), *p, *text = NULL;
    GPtrArray *names = g_ptr_array_new(), *read = NULL;
    struct hov_owner o;
    int added = 0;

    CU_ASSERT_EQUAL_FATAL(hov_owner_of(root, &o, NULL), 0);
    g_ptr_array_add(names, "Handover.li\\2ena.INBOX");
    g_ptr_array_add(names, "Handover.li\\2ena.&W6JiNw-.&Zg6P3A-");
    p = g_build_filename(root, "subscriptions", NULL);

    /* version 1 stays version 1, lines kept as they are */
    write_file(p, "INBOX\nArchive", 0);
    chmod(p, 0604);
    CU_ASSERT_EQUAL(hov_subs_add(root, names, &o, &added, NULL), 0);
    CU_ASSERT_EQUAL(added, 2);
    g_file_get_contents(p, &text, NULL, NULL);
    CU_ASSERT_STRING_EQUAL(text, "INBOX\nArchive\nHandover.li\\2ena.INBOX\n"
                                 "Handover.li\\2ena.&W6JiNw-.&Zg6P3A-\n");
    g_free(text);
    {
        struct stat st;
        CU_ASSERT_EQUAL(stat(p, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0604);      /* its mode kept */
    }
    CU_ASSERT_EQUAL(hov_subs_add(root, names, &o, &added, NULL), 0);
    CU_ASSERT_EQUAL(added, 0);

    /* version 2: levels by TAB */
    write_file(p, "V\t2\n\nArchive\n", 0);
    CU_ASSERT_EQUAL(hov_subs_add(root, names, &o, &added, NULL), 0);
    g_file_get_contents(p, &text, NULL, NULL);
    CU_ASSERT_STRING_EQUAL(text, "V\t2\n\nArchive\nHandover\tli\\2ena\tINBOX\n"
                                 "Handover\tli\\2ena\t&W6JiNw-\t&Zg6P3A-\n");
    g_free(text);
    CU_ASSERT_EQUAL(hov_subs_read(root, &read, NULL), 0);
    CU_ASSERT_EQUAL(read->len, 3);
    CU_ASSERT_STRING_EQUAL(read->pdata[2], "Handover.li\\2ena.&W6JiNw-.&Zg6P3A-");
    g_ptr_array_free(read, TRUE);

    /* none yet: version 2, as Dovecot 2.3 writes it */
    unlink(p);
    CU_ASSERT_EQUAL(hov_subs_add(root, names, &o, &added, NULL), 0);
    g_file_get_contents(p, &text, NULL, NULL);
    CU_ASSERT(g_str_has_prefix(text, "V\t2\n\nHandover\tli\\2ena\tINBOX\n"));
    g_free(text);
    g_ptr_array_free(names, TRUE);
    g_free(p);
    g_free(root);
    cut_rmtree(t);
    g_free(t);
}

/* ---- vCard, CSV, phones, threads ---------------------------------------------------- */

static void test_vcard_escape(void)
{
    static const struct {
        const char *in, *text, *component;
    } cases[] = {
        { "Acme Trading, Ltd.", "Acme Trading\\, Ltd.", "Acme Trading\\, Ltd." },
        { "a;b", "a;b", "a\\;b" },
        { "back\\slash", "back\\\\slash", "back\\\\slash" },
        { "two\nlines", "two\\nlines", "two\\nlines" },
        { "crlf\r\nend", "crlf\\nend", "crlf\\nend" },
        { "北京星辰科技有限公司", "北京星辰科技有限公司", "北京星辰科技有限公司" },
        { "bell\x07", "bell", "bell" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GString *a = g_string_new(NULL), *b = g_string_new(NULL);
        hov_vcard_escape(a, cases[i].in, 0);
        hov_vcard_escape(b, cases[i].in, 1);
        CU_ASSERT_STRING_EQUAL(a->str, cases[i].text);
        CU_ASSERT_STRING_EQUAL(b->str, cases[i].component);
        g_string_free(a, TRUE);
        g_string_free(b, TRUE);
    }
}

/* Folded lines: at most 75 octets, continuation lines start with one
 * space, no UTF-8 character split, and unfolding gives the line back. */
static void check_folding(const char *line)
{
    GString *out = g_string_new(NULL), *unf = g_string_new(NULL);
    char **phys;

    hov_vcard_line(out, line);
    CU_ASSERT(g_str_has_suffix(out->str, "\r\n"));
    phys = g_strsplit(out->str, "\r\n", -1);
    for (int i = 0; phys[i] != NULL && phys[i + 1] != NULL; i++) {
        CU_ASSERT(strlen(phys[i]) <= 75);
        CU_ASSERT(g_utf8_validate(phys[i], -1, NULL));
        if (i > 0) {
            CU_ASSERT(phys[i][0] == ' ');
            g_string_append(unf, phys[i] + 1);
        } else {
            g_string_append(unf, phys[i]);
        }
        CU_ASSERT(strchr(phys[i], '\n') == NULL && strchr(phys[i], '\r') == NULL);
    }
    CU_ASSERT_STRING_EQUAL(unf->str, line);
    g_strfreev(phys);
    g_string_free(out, TRUE);
    g_string_free(unf, TRUE);
}

static void test_vcard_fold(void)
{
    GString *s = g_string_new("NOTE:");
    GString *out = g_string_new(NULL);

    check_folding("FN:short");
    check_folding("");
    for (int i = 0; i < 60; i++)
        g_string_append(s, "客户");         /* 3-octet characters across every boundary */
    check_folding(s->str);
    g_string_assign(s, "NOTE:");
    for (int i = 0; i < 300; i++)
        g_string_append_c(s, 'a' + i % 26);
    check_folding(s->str);
    g_string_assign(s, "ORG:x");
    for (int i = 0; i < 40; i++)
        g_string_append(s, "𠮷");         /* 4 octets */
    check_folding(s->str);
    /* exactly 75 octets: one line */
    g_string_assign(s, "");
    for (int i = 0; i < 75; i++)
        g_string_append_c(s, 'x');
    hov_vcard_line(out, s->str);
    CU_ASSERT_EQUAL(out->len, 77);
    g_string_free(out, TRUE);
    g_string_free(s, TRUE);
}

static void test_vcard_card(void)
{
    struct hov_contact c = { 0 };
    GString *out = g_string_new(NULL);
    GPtrArray *list = g_ptr_array_new();
    GString *csv;

    c.addr = "buyer@acme.example";
    c.name = "Buyer, John; \"JB\"";
    c.org = "Acme Trading, Ltd.";
    c.customer = "Acme Trading, Ltd.";
    c.phones = g_ptr_array_new();
    g_ptr_array_add(c.phones, "+14155550100");
    g_ptr_array_add(c.phones, "01088880000");
    c.first = 1772755200;       /* 2026-03-06 */
    c.last = 1774396800;
    c.n_from = 4;
    c.n_to = 3;
    hov_vcard_append(out, &c);
    CU_ASSERT(g_str_has_prefix(out->str, "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:"));
    CU_ASSERT(strstr(out->str, "\r\nFN:Buyer\\, John; \"JB\"\r\n") != NULL);
    CU_ASSERT(strstr(out->str, "\r\nORG:Acme Trading\\, Ltd.\r\n") != NULL);
    CU_ASSERT(strstr(out->str, "\r\nEMAIL;TYPE=work:buyer@acme.example\r\n") != NULL);
    CU_ASSERT(strstr(out->str, "\r\nTEL;VALUE=uri;TYPE=voice:tel:+14155550100\r\n") != NULL);
    CU_ASSERT(strstr(out->str, "\r\nTEL;VALUE=text;TYPE=voice:01088880000\r\n") != NULL);
    CU_ASSERT(g_str_has_suffix(out->str, "END:VCARD\r\n"));
    CU_ASSERT(strstr(out->str, "\n\n") == NULL);
    g_ptr_array_add(list, &c);
    csv = hov_contacts_csv(list);
    CU_ASSERT(strstr(csv->str, "\r\n\"Buyer, John; \"\"JB\"\"\",buyer@acme.example,"
                               "+14155550100;01088880000,\"Acme Trading, Ltd.\",") != NULL);
    g_string_free(csv, TRUE);
    g_ptr_array_free(list, TRUE);
    g_ptr_array_free(c.phones, TRUE);
    g_string_free(out, TRUE);
}

static void test_phones(void)
{
    static const struct {
        const char *body, *want;        /* want: phones joined by ' ' */
    } cases[] = {
        { "Hello.\n\n-- \nJohn\nTel: +1 (415) 555-0100\nFax: +1 415 555 0199\n", "+14155550100" },
        { "正文\n\n此致\n张明\n电话：0755-2222-3333\n传真：0755-2222-3334\n", "075522223333" },
        { "Hi\n\nBest,\nAnna\nM. +86 138 0013 8000 | T. +86 10 6552 1234\n",
          "+8613800138000 +861065521234" },
        { "Order 4711 shipped on 2026-03-20, tracking 1234.\n", "" },
        { "Thanks\n\nSee below\n> Tel: +1 999 999 9999\n> old\n", "" },
        { "Regards\nBob\n\nOn Mon, 2 Mar 2026, Carl wrote:\nMobile: +1 888 888 8888\n", "" },
        { "Call 12345 now\n", "" },
        { "Cheers\nJoe\n13800138000\n", "13800138000" },
        { "sig\n手机：＋８６ １３９ ００１３ ９０００\n", "+8613900139000" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GPtrArray *ph = hov_sig_phones(cases[i].body);
        char *got;

        g_ptr_array_add(ph, NULL);
        got = g_strjoinv(" ", (char **)ph->pdata);
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "\nphones case %zu: [%s], want [%s]\n", i, got, cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, cases[i].want);
        g_free(got);
        g_ptr_array_free(ph, TRUE);
    }
}

static void test_thread_key(void)
{
    static const struct {
        const char *subject, *key;
    } cases[] = {
        { "Re: Order 4711", "order 4711" },
        { "RE: Re: FW: Order  4711 ", "order 4711" },
        { "Re[3]: Order 4711", "order 4711" },
        { "回复：合同草案", "合同草案" },
        { "答复: 转发：合同草案", "合同草案" },
        { "Fwd: ", "" },
        { "Reply needed", "reply needed" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *k = hov_thread_key(cases[i].subject);
        CU_ASSERT_STRING_EQUAL(k, cases[i].key);
        g_free(k);
    }
}

static void test_msginfo(void)
{
    static const char raw[] =
        "From: =?GB2312?B?1cXI/Q==?= <Zhang.San@Example.COM>\r\n"
        "To: \"Li, Na\" <li.na@corp.example>, bob@x.example\r\n"
        "Cc: =?UTF-8?Q?=E6=98=8E=E8=BF=9C?= <info@mingyuan.example>\r\n"
        "Subject: =?UTF-8?B?5Zue5aSN77ya5ZCI5ZCM6I2J5qGI?=\r\n"
        "Date: Mon, 02 Mar 2026 09:00:00 +0800\r\n"
        "Message-ID: <abc@x>\r\n\r\nbody\r\n";
    struct hov_msginfo *mi = NULL;
    struct msg_limits lim;

    msg_limits_default(&lim);
    CU_ASSERT_EQUAL_FATAL(hov_msginfo_from_raw(raw, strlen(raw), &lim, &mi, NULL), 0);
    CU_ASSERT_STRING_EQUAL(mi->from.name, "张三");
    CU_ASSERT_STRING_EQUAL(mi->from.addr, "zhang.san@example.com");
    CU_ASSERT_EQUAL(mi->rcpts->len, 3);
    CU_ASSERT_STRING_EQUAL(((struct hov_addr *)mi->rcpts->pdata[0])->name, "Li, Na");
    CU_ASSERT_STRING_EQUAL(((struct hov_addr *)mi->rcpts->pdata[2])->name, "明远");
    CU_ASSERT_STRING_EQUAL(mi->subject, "回复：合同草案");
    CU_ASSERT_STRING_EQUAL(mi->thread, "合同草案");
    CU_ASSERT_STRING_EQUAL(mi->message_id, "abc@x");
    CU_ASSERT_EQUAL(mi->date, 1772413200);
    hov_msginfo_free(mi);
}

/* ---- Sieve, the journal ------------------------------------------------------------------ */

static void test_sieve(void)
{
    static const char script[] =
        "require [\"copy\", \"fileinto\"];\n"
        "# redirect \"commented@x.example\";\n"
        "/* redirect \"block@x.example\"; */\n"
        "if header :contains \"subject\" \"redirect\" {\n"
        "  redirect :copy \"orders@qq.com\";\n"
        "  fileinto \"redirect\";\n"
        "}\n"
        "REDIRECT \"a\\\"b@gmail.com\"; stop;\n"
        "redirect text:\nmulti@line.example\n.\n;\n";
    GPtrArray *d = NULL;
    GArray *spans = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(hov_sieve_redirects(script, &d, &spans, &err), 0);
    CU_ASSERT_EQUAL_FATAL(d->len, 3);
    CU_ASSERT_STRING_EQUAL(d->pdata[0], "orders@qq.com");
    CU_ASSERT_STRING_EQUAL(d->pdata[1], "a\"b@gmail.com");
    CU_ASSERT_STRING_EQUAL(d->pdata[2], "multi@line.example\n");
    CU_ASSERT(strncmp(script + g_array_index(spans, gsize, 0), "redirect :copy", 14) == 0);
    CU_ASSERT(script[g_array_index(spans, gsize, 1) - 1] == ';');
    g_ptr_array_free(d, TRUE);
    g_array_free(spans, TRUE);
    CU_ASSERT_EQUAL(hov_sieve_redirects("redirect \"x@y\"", &d, NULL, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, "does not parse") != NULL);
    g_free(err);
}

static void test_journal(void)
{
    char *t = cut_tmpdir(), *p = g_build_filename(t, "journal", NULL), *text = NULL;
    struct hov_journal *j = NULL;
    int fd;

    CU_ASSERT_EQUAL_FATAL(hov_journal_load(t, &j, NULL), 0);
    CU_ASSERT_EQUAL(j->entries->len, 0);
    CU_ASSERT_EQUAL(hov_journal_add(j, "depart", "", NULL, NULL), 0);
    CU_ASSERT_EQUAL(hov_journal_add(j, "folder", "客户", NULL, NULL), 0);
    hov_journal_free(&j);
    /* a line cut short by a crash */
    fd = open(p, O_WRONLY | O_APPEND);
    CU_ASSERT(write(fd, "{\"time\":1,\"step\":\"fold", 22) == 22);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(hov_journal_load(t, &j, NULL), 0);
    CU_ASSERT_EQUAL(j->entries->len, 2);
    CU_ASSERT_PTR_NOT_NULL(hov_journal_find(j, "folder", "客户"));
    CU_ASSERT_PTR_NULL(hov_journal_find(j, "folder", "Sent"));
    CU_ASSERT_EQUAL(hov_journal_add(j, "hold", "", NULL, NULL), 0);
    hov_journal_free(&j);
    g_file_get_contents(p, &text, NULL, NULL);
    CU_ASSERT(strstr(text, "fold\n") == NULL && strstr(text, "\"fold{") == NULL);
    CU_ASSERT_EQUAL(hov_journal_load(t, &j, NULL), 0);
    CU_ASSERT_EQUAL(j->entries->len, 3);
    hov_journal_free(&j);
    g_free(text);
    g_free(p);
    cut_rmtree(t);
    g_free(t);
}

CUS_SUITE(handover)
{
    CU_pSuite s = CU_add_suite("handover", NULL, NULL);

    msg_init();
    CU_add_test(s, "modified UTF-7: RFC 3501 cases, strict decoding", test_mutf7);
    CU_add_test(s, "modified UTF-7: random round trips", test_mutf7_random);
    CU_add_test(s, "folder levels: listescape, '_', display", test_levels);
    CU_add_test(s, "Maildir file names: base and flags", test_mfile_split);
    CU_add_test(s, "Maildir reading: folders, odd entries", test_maildir_read);
    CU_add_test(s, "Maildir writing: owner, modes, mtime, resume", test_maildir_write);
    CU_add_test(s, "subscriptions: version 1 and 2 kept", test_subscriptions);
    CU_add_test(s, "vCard: RFC 6350 escaping", test_vcard_escape);
    CU_add_test(s, "vCard: folding at 75 octets", test_vcard_fold);
    CU_add_test(s, "vCard and CSV of a contact", test_vcard_card);
    CU_add_test(s, "phones in signatures", test_phones);
    CU_add_test(s, "thread keys", test_thread_key);
    CU_add_test(s, "message headers decoded", test_msginfo);
    CU_add_test(s, "Sieve redirects", test_sieve);
    CU_add_test(s, "journal: a torn last line", test_journal);
}
