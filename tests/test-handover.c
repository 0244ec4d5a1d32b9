/*
 * test-handover.c - custos-handover: folder names (modified UTF-7 and
 * listescape, round trips), Maildir reading and writing (flags, odd file
 * names, what an earlier run left), subscriptions in both of Dovecot's
 * formats, vCard 4.0 escaping and folding (RFC 6350), CSV, phones in
 * signatures, Sieve redirects, the journal; then the program on a leaver
 * built from the sample directory's sales mailbox (tests/data/handover):
 * plan, apply, every bad input, resume after a kill at each step, a full
 * disk, notices, the package, the forwarding audit, incidents (custos-
 * milter's, from spool entries with findings, and the archive's); and end
 * to end with a private Dovecot on 127.0.0.1 read over IMAP by curl.
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
#include "custos/spool.h"
#include "dovecot.h"
#include "postfix.h"
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sqlite3.h>
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

    /* a name subscribed is not added again, however its line is written */
    {
        GPtrArray *one = g_ptr_array_new();
        char *m;
        g_ptr_array_add(one, "Handover.li\\2ena.INBOX");
        m = hov_subs_merge("V\t2\n\nHandover\tli\\2ena\tINBOX", 0, one, &added);
        CU_ASSERT_EQUAL(added, 0);
        CU_ASSERT_STRING_EQUAL(m, "V\t2\n\nHandover\tli\\2ena\tINBOX\n");
        g_free(m);
        g_ptr_array_free(one, TRUE);
    }
    /* a file with a NUL byte is no subscriptions file: left alone */
    CU_ASSERT(g_file_set_contents(p, "Archive\n\0garbage\n", 17, NULL));
    CU_ASSERT_EQUAL(hov_subs_add(root, names, &o, &added, &text), -1);
    CU_ASSERT(text != NULL && strstr(text, "NUL byte") != NULL);
    g_free(text);
    text = NULL;

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

static const struct {
    const char *header;             /* To: value */
    const char *want;               /* "name|addr;name|addr..." */
} addr_cases[] = {
    { "Bob <Bob@X.Example>", "Bob|bob@x.example" },
    { "bob@x.example", "|bob@x.example" },
    { "  <bob@x.example>  ", "|bob@x.example" },
    { "\"Wang, Wei\" <w@x.example>, li@x.example", "Wang, Wei|w@x.example;|li@x.example" },
    { "w@x.example (Wang Wei)", "Wang Wei|w@x.example" },
    { "Wang (the boss) Wei <w@x.example>", "Wang Wei|w@x.example" },
    { "team: a@x.example, B <b@x.example>;, c@x.example",
      "|a@x.example;B|b@x.example;|c@x.example" },
    { "undisclosed-recipients:;", "" },
    { "<@relay.example:r@x.example>", "|r@x.example" },
    { "\"=?UTF-8?B?546L5Lyf?=\" <w@x.example>", "王伟|w@x.example" },
    { "=?GBK?B?zfXOsA==?= <w@x.example>", "王伟|w@x.example" },
    { "\"a \\\"q\\\" b\" <q@x.example>", "a \"q\" b|q@x.example" },
    { "not an address, also@", "" },
    { "Tab\tName <t@x.example>", "Tab Name|t@x.example" },
};

static void test_addresses(void)
{
    struct msg_limits lim;

    msg_limits_default(&lim);
    for (size_t i = 0; i < G_N_ELEMENTS(addr_cases); i++) {
        char *raw = g_strdup_printf("From: f@x.example\nTo: %s\nSubject: s\n\nbody\n",
                                    addr_cases[i].header);
        struct hov_msginfo *mi = NULL;
        GString *got = g_string_new(NULL);

        CU_ASSERT_EQUAL_FATAL(hov_msginfo_from_raw(raw, strlen(raw), &lim, &mi, NULL), 0);
        for (guint k = 0; k < mi->rcpts->len; k++) {
            const struct hov_addr *a = mi->rcpts->pdata[k];
            g_string_append_printf(got, "%s%s|%s", k ? ";" : "", a->name, a->addr);
        }
        if (strcmp(got->str, addr_cases[i].want) != 0)
            fprintf(stderr, "\nTo: %s -> [%s], want [%s]\n", addr_cases[i].header, got->str,
                    addr_cases[i].want);
        CU_ASSERT_STRING_EQUAL(got->str, addr_cases[i].want);
        g_string_free(got, TRUE);
        hov_msginfo_free(mi);
        g_free(raw);
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
    err = NULL;
    /* a second string not closed: an error, the first one freed (ASan) */
    CU_ASSERT_EQUAL(hov_sieve_redirects("redirect \"a@b\" \"c", &d, NULL, &err), -1);
    g_free(err);
    err = NULL;
    /* text: with CRLF lines and a dot-stuffed line; GBK bytes and a cut
     * UTF-8 sequence at the end are bytes like any other */
    CU_ASSERT_EQUAL_FATAL(hov_sieve_redirects("# \xd7\xaa\xb7\xa2\r\nredirect text:\r\n"
                                              "..x@y.example\r\n.\r\n;\r\nkeep; \xf0", &d,
                                              &spans, &err), 0);
    CU_ASSERT_EQUAL_FATAL(d->len, 1);
    CU_ASSERT_STRING_EQUAL(d->pdata[0], ".x@y.example\r\n");
    g_ptr_array_free(d, TRUE);
    g_array_free(spans, TRUE);
    CU_ASSERT_EQUAL_FATAL(hov_sieve_redirects("a;redirect \"x@y\";\nb", &d, &spans, &err), 0);
    {
        char *k = hov_sieve_keep("a;redirect \"x@y\";\nb", spans, "P");
        CU_ASSERT_STRING_EQUAL(k, "a;keep; # custos-handover P disabled: redirect \"x@y\";\n\nb");
        g_free(k);
    }
    g_ptr_array_free(d, TRUE);
    g_array_free(spans, TRUE);
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

/* ---- the program, on a leaver built from the sales mailbox ---------------------------- */

struct fx {
    char *dir, *conf, *src, *bin, *arcbin;
    char *leaver, *succ;            /* the two Maildirs */
};

static int fx_run(struct fx *f, const char *bin, char **out_r, char **err_r, va_list ap)
{
    return cut_cli(bin, f->conf, out_r, err_r, ap);
}

/* custos-handover -c CONF ARGS... (NULL-terminated) */
static int hov(struct fx *f, char **out_r, char **err_r, ...) G_GNUC_NULL_TERMINATED;
static int hov(struct fx *f, char **out_r, char **err_r, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err_r);
    rc = fx_run(f, f->bin, out_r, err_r, ap);
    va_end(ap);
    return rc;
}

static int arc(struct fx *f, char **out_r, char **err_r, ...) G_GNUC_NULL_TERMINATED;
static int arc(struct fx *f, char **out_r, char **err_r, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err_r);
    rc = fx_run(f, f->arcbin, out_r, err_r, ap);
    va_end(ap);
    return rc;
}

static int sh(const char *cmd)
{
    char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
    char *err = NULL;
    int rc = cut_run(argv, NULL, &err);

    if (rc != 0)
        fprintf(stderr, "\n%s: exit %d: %s\n", cmd, rc, err);
    g_free(err);
    return rc;
}

static void put_text(const char *path, const char *text)
{
    char *dir = g_path_get_dirname(path);

    g_mkdir_with_parents(dir, 0755);
    CU_ASSERT(g_file_set_contents(path, text, -1, NULL));
    g_free(dir);
}

static const char aliases_text[] =
    "postmaster: root\n"
    "# \xcd\xf5\xce\xb0" " (GBK, as an old editor wrote it): the leaver's, to webmail\n"
    "wang.wei: wang.wei@corp.example,\n"
    "\twangwei@163.com\n"
    "li.na: li.na\n";
static const char virtual_text[] =
    "wang.wei@corp.example wang.wei@corp.example, backup@gmail.com\n"
    "chen.jie@corp.example li.na@corp.example\n";
static const char sieve_text[] =
    "require [\"copy\"];\n"
    "if header :contains \"subject\" \"order\" {\n"
    "  redirect :copy \"orders@qq.com\";\n"
    "}\n";

/* A fresh archive with the sales mailbox and the sample directory (plus
 * the leaver's 明远贸易), the two Maildirs, and forwardings of the leaver
 * in every place the audit looks. extra: more [handover] lines. 0 or -1. */
static const char *fx_archive_extra;   /* more [archive] lines for the next fx_setup */

static int fx_setup(struct fx *f, const char *extra, int subs_v2, const char *before_maildirs)
{
    char *p, *cmd;
    GString *c = g_string_new(NULL);
    int rc = 0;

    memset(f, 0, sizeof(*f));
    f->dir = cut_tmpdir();
    f->src = cut_src("");
    f->bin = cut_bin("custos-handover");
    f->arcbin = cut_bin("custos-archive");
    f->conf = g_build_filename(f->dir, "custos.conf", NULL);
    f->leaver = g_build_filename(f->dir, "vmail/corp.example/wang.wei/Maildir", NULL);
    f->succ = g_build_filename(f->dir, "vmail/corp.example/li.na/Maildir", NULL);
    g_string_printf(c, "[archive]\ndir = %s/archive\n%s[directory]\n"
                    "webmail_domains = %s/conf/webmail-domains.txt\n[handover]\n"
                    "maildir = %s/vmail/%%d/%%n/Maildir\nalias_maps = %s/etc/aliases\n"
                    "virtual_maps = %s/etc/virtual\nforward_file = %s/home/%%n/.forward\n"
                    "sieve = %s/vmail/%%d/%%n/sieve\n"
                    "notice_template_zh = %s/conf/handover-notice.zh.txt\n"
                    "notice_template_en = %s/conf/handover-notice.en.txt\n"
                    "sendmail = %s/sendmail\npostfix_config = %s/postfix\n%s",
                    f->dir, fx_archive_extra != NULL ? fx_archive_extra : "", f->src, f->dir,
                    f->dir, f->dir, f->dir, f->dir, f->src, f->src, f->dir, f->dir,
                    extra != NULL ? extra : "");
    put_text(f->conf, c->str);
    g_string_free(c, TRUE);
    if (arc(f, NULL, NULL, "init", NULL) != 0)
        return -1;
    cmd = g_strdup_printf("python3 %s/tests/data/make-sales.py %s/sales.mbox >/dev/null",
                          f->src, f->dir);
    rc |= sh(cmd);
    g_free(cmd);
    p = g_build_filename(f->dir, "sales.mbox", NULL);
    rc |= arc(f, NULL, NULL, "import", p, NULL);
    g_free(p);
    {
        char *e = g_build_filename(f->src, "conf/employees.sample.csv", NULL);
        char *cu = g_build_filename(f->src, "conf/customers.sample.csv", NULL);
        char *cu2 = g_build_filename(f->src, "tests/data/handover/customers.csv", NULL);
        rc |= arc(f, NULL, NULL, "directory", "import", "employees", e, NULL);
        rc |= arc(f, NULL, NULL, "directory", "import", "customers", cu, NULL);
        rc |= arc(f, NULL, NULL, "directory", "import", "customers", cu2, NULL);
        g_free(e);
        g_free(cu);
        g_free(cu2);
    }
    if (before_maildirs != NULL)
        rc |= sh(before_maildirs);
    cmd = g_strdup_printf("SUBS_V2=%d python3 %s/tests/data/handover/make-leaver.py "
                          "%s/sales.mbox %s/vmail >/dev/null", subs_v2, f->src, f->dir, f->dir);
    rc |= sh(cmd);
    g_free(cmd);
    p = g_strdup_printf("%s/etc/aliases", f->dir);
    put_text(p, aliases_text);
    g_free(p);
    p = g_strdup_printf("%s/etc/virtual", f->dir);
    put_text(p, virtual_text);
    g_free(p);
    p = g_strdup_printf("%s/home/wang.wei/.forward", f->dir);
    put_text(p, "\\wang.wei, \"|/usr/bin/procmail -a x\"\n");
    g_free(p);
    p = g_strdup_printf("%s/vmail/corp.example/wang.wei/sieve/main.sieve", f->dir);
    put_text(p, sieve_text);
    g_free(p);
    /* Postfix's configuration, for postmap/postalias -c (defaults do) */
    p = g_strdup_printf("%s/postfix/main.cf", f->dir);
    put_text(p, "");
    g_free(p);
    p = g_strdup_printf("%s/sendmail", f->dir);
    put_text(p, "#!/bin/sh\n{ echo \"ARGS: $*\"; cat; echo \"--END--\"; } >> \"$(dirname \"$0\")"
                "/sent.txt\"\nexit ${CUSTOS_TEST_SENDMAIL_FAIL:-0}\n");
    chmod(p, 0755);
    g_free(p);
    return rc == 0 ? 0 : -1;
}

static void fx_free(struct fx *f)
{
    cut_rmtree(f->dir);
    g_free(f->dir);
    g_free(f->conf);
    g_free(f->src);
    g_free(f->bin);
    g_free(f->arcbin);
    g_free(f->leaver);
    g_free(f->succ);
}

/* The plan id in plan's output. */
static char *plan_id(const char *out)
{
    const char *p = out != NULL ? strstr(out, "plan ") : NULL;
    const char *e = p != NULL ? strstr(p, " saved in ") : NULL;

    return e != NULL ? g_strndup(p + 5, (gsize)(e - p - 5)) : NULL;
}

static char *fx_plan(struct fx *f, const char *const *more)
{
    GPtrArray *argv = g_ptr_array_new();
    char *out = NULL, *err = NULL, *id;
    int rc;

    g_ptr_array_add(argv, f->bin);
    g_ptr_array_add(argv, "-c");
    g_ptr_array_add(argv, f->conf);
    g_ptr_array_add(argv, "plan");
    g_ptr_array_add(argv, "--from");
    g_ptr_array_add(argv, "wang.wei@corp.example");
    g_ptr_array_add(argv, "--to");
    g_ptr_array_add(argv, "li.na@corp.example");
    g_ptr_array_add(argv, "--effective");
    g_ptr_array_add(argv, "2026-04-01");
    for (int i = 0; more != NULL && more[i] != NULL; i++)
        g_ptr_array_add(argv, (char *)more[i]);
    g_ptr_array_add(argv, NULL);
    rc = cut_run((char **)argv->pdata, &out, &err);
    if (rc != 0)
        fprintf(stderr, "\nplan: exit %d: %s%s\n", rc, out, err);
    CU_ASSERT_EQUAL(rc, 0);
    id = plan_id(out);
    CU_ASSERT_PTR_NOT_NULL(id);
    g_ptr_array_free(argv, TRUE);
    g_free(out);
    g_free(err);
    return id;
}

static int apply(struct fx *f, const char *id, const char *crash, char **out_r)
{
    char *err = NULL;
    int rc;

    if (crash != NULL)
        g_setenv("CUSTOS_HANDOVER_CRASH", crash, TRUE);
    rc = hov(f, out_r, &err, "apply", id, NULL);
    g_unsetenv("CUSTOS_HANDOVER_CRASH");
    if (rc != 0 && crash == NULL)
        fprintf(stderr, "\napply %s: exit %d: %s\n", id, rc, err);
    g_free(err);
    return rc;
}

/* Messages (files) of folder storage in the successor's Maildir; -1 if
 * there is no such folder; *dups_r: files with the same hash. */
static int dest_count(struct fx *f, const char *storage, int *dups_r)
{
    char *dir = g_strconcat(f->succ, "/.", storage, NULL);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int n = 0, dups = 0;

    if (access(dir, F_OK) < 0) {
        g_free(dir);
        g_hash_table_destroy(seen);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        char *sub = g_build_filename(dir, i == 0 ? "cur" : "new", NULL);
        GDir *d = g_dir_open(sub, 0, NULL);
        const char *name;

        while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
            const char *h = strstr(name, ".H");
            char *key = h != NULL ? g_strndup(h, 26) : g_strdup(name);
            if (g_hash_table_contains(seen, key))
                dups++;
            g_hash_table_add(seen, key);
            n++;
        }
        if (d != NULL)
            g_dir_close(d);
        g_free(sub);
    }
    g_hash_table_destroy(seen);
    g_free(dir);
    if (dups_r != NULL)
        *dups_r = dups;
    return n;
}

/* Distinct messages (by content) of a folder of the leaver's Maildir. */
static int source_unique(struct fx *f, const char *storage)
{
    char *dir = *storage ? g_strconcat(f->leaver, "/.", storage, NULL) : g_strdup(f->leaver);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int n;

    for (int i = 0; i < 2; i++) {
        char *sub = g_build_filename(dir, i == 0 ? "cur" : "new", NULL);
        GDir *d = g_dir_open(sub, 0, NULL);
        const char *name;

        while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
            char *p = g_build_filename(sub, name, NULL), *data = NULL;
            gsize len;
            struct stat st;
            if (name[0] != '.' && lstat(p, &st) == 0 && S_ISREG(st.st_mode) &&
                g_file_get_contents(p, &data, &len, NULL))
                g_hash_table_add(seen, g_compute_checksum_for_data(G_CHECKSUM_SHA256,
                                                                   (guchar *)data, len));
            g_free(data);
            g_free(p);
        }
        if (d != NULL)
            g_dir_close(d);
        g_free(sub);
    }
    n = (int)g_hash_table_size(seen);
    g_hash_table_destroy(seen);
    g_free(dir);
    return n;
}

static const char *const leaver_folders[][2] = {
    { "", "INBOX" }, { "Sent", "Sent" }, { "&W6JiNw-.&Zg6P3A-", "&W6JiNw-.&Zg6P3A-" },
    { "A&-B, Partners", "A&-B, Partners" }, { "v1\\2e0", "v1\\2e0" }, { "Trash", "Trash" },
};
#define PREFIX "Handover.wang\\2ewei."

/* Every folder handed over whole, each message once, Recovered too. */
static void check_mailbox(struct fx *f)
{
    for (size_t i = 0; i < G_N_ELEMENTS(leaver_folders); i++) {
        char *dest = g_strconcat(PREFIX, leaver_folders[i][1], NULL);
        int dups = -1, n = dest_count(f, dest, &dups), want = source_unique(f, leaver_folders[i][0]);
        if (n != want)
            fprintf(stderr, "\nfolder %s: %d messages, want %d\n", dest, n, want);
        CU_ASSERT_EQUAL(n, want);
        CU_ASSERT_EQUAL(dups, 0);
        g_free(dest);
    }
    CU_ASSERT_EQUAL(dest_count(f, PREFIX "INBOX", NULL), 9);       /* 10 files, 1 twice */
    CU_ASSERT_EQUAL(dest_count(f, PREFIX "Recovered", NULL), 3);
}

static gint64 sql_int(struct fx *f, const char *sql)
{
    char *path = g_strdup_printf("%s/archive/index.db", f->dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    gint64 v = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    g_free(path);
    return v;
}

static char *read_text(const char *path)
{
    char *t = NULL;

    if (!g_file_get_contents(path, &t, NULL, NULL))
        return g_strdup("");
    return t;
}

static char *read_fmt(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static char *read_fmt(const char *fmt, ...)
{
    va_list ap;
    char *path, *t;

    va_start(ap, fmt);
    path = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    t = read_text(path);
    g_free(path);
    return t;
}

static int count_str(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_cli_plan_apply(void)
{
    struct fx f;
    char *id, *out = NULL, *err = NULL, *p, *t;
    const char *more[] = { "--postfix-map", NULL, NULL };
    struct stat st;

    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    p = g_strdup_printf("%s/etc/handover.map", f.dir);
    more[1] = p;
    id = fx_plan(&f, more);
    CU_ASSERT_PTR_NOT_NULL_FATAL(id);
    /* the plan changed nothing */
    CU_ASSERT_EQUAL(dest_count(&f, PREFIX "INBOX", NULL), -1);
    CU_ASSERT_EQUAL(arc(&f, &out, NULL, "directory", "show", "wang.wei@corp.example", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "leaving") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(access(p, F_OK), -1);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM holds"), 0);
    t = read_fmt("%s/etc/aliases", f.dir);
    CU_ASSERT_STRING_EQUAL(t, aliases_text);
    g_free(t);

    /* a dry run neither */
    CU_ASSERT_EQUAL(hov(&f, &out, &err, "apply", id, "--dry-run", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "nothing is changed") != NULL &&
              strstr(out, "客户/明远") != NULL);
    g_free(out);
    g_free(err);
    CU_ASSERT_EQUAL(dest_count(&f, PREFIX "INBOX", NULL), -1);

    CU_ASSERT_EQUAL_FATAL(apply(&f, id, NULL, &out), 0);
    CU_ASSERT(out != NULL && strstr(out, "state: applied") != NULL);
    g_free(out);
    check_mailbox(&f);
    /* owner and modes of what was written */
    t = g_strconcat(f.succ, "/." PREFIX "INBOX", NULL);
    CU_ASSERT_EQUAL(stat(t, &st), 0);
    CU_ASSERT(st.st_uid == 5000 && st.st_gid == 5000 && (st.st_mode & 07777) == 0700);
    g_free(t);
    /* subscriptions: the version 1 file stays version 1 */
    t = read_fmt("%s/subscriptions", f.succ);
    CU_ASSERT(g_str_has_prefix(t, "Archive\n" PREFIX "INBOX\n"));
    CU_ASSERT(strstr(t, PREFIX "Recovered\n") != NULL);
    g_free(t);
    /* contacts in the successor's Maildir */
    t = read_fmt("%s/Handover-wang.wei-contacts.vcf", f.succ);
    CU_ASSERT(strstr(t, "EMAIL;TYPE=work:buyer@acme.example\r\n") != NULL);
    CU_ASSERT(strstr(t, "TEL;VALUE=uri;TYPE=voice:tel:+14155550100\r\n") != NULL);
    CU_ASSERT(strstr(t, "+14155550199") == NULL);            /* the fax line */
    CU_ASSERT(strstr(t, "+19999999999") == NULL);            /* quoted text */
    CU_ASSERT(strstr(t, "FN:明远贸易\r\n") != NULL && strstr(t, "075522223333") != NULL);
    CU_ASSERT(strstr(t, "ORG:Acme Trading\\, Ltd.\r\n") != NULL);
    CU_ASSERT(strstr(t, "wangwei@163.com") == NULL);         /* the leaver's own */
    CU_ASSERT(strstr(t, "li.na@corp.example") == NULL);      /* internal */
    g_free(t);
    /* the directory: departed with the successor, customers given over */
    CU_ASSERT_EQUAL(arc(&f, &out, NULL, "directory", "show", "wang.wei@corp.example", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "departed") != NULL &&
              strstr(out, "2026-04-01") != NULL && strstr(out, "li.na@corp.example") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM customers WHERE owner = "
                                "'wang.wei@corp.example'"), 0);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM customers WHERE owner = "
                                "'li.na@corp.example' AND name IN ('Acme Trading, Ltd.',"
                                " '明远贸易')"), 2);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM holds WHERE released IS NULL AND name LIKE "
                                "'handover-%' AND query = 'participant:\"wang.wei@corp.example\"'"),
                    1);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM chain WHERE type = 'handover'"), 1);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM audit WHERE command = 'handover'"), 3);
    /* the Postfix map, built as Postfix's default type, Postfix answers from
     * it; the CRM file */
    t = read_text(p);
    CU_ASSERT(strstr(t, "\nwang.wei@corp.example li.na@corp.example\n") != NULL);
    g_free(t);
    if (access("/usr/sbin/postmap", X_OK) == 0) {
        char *cmd = g_strdup_printf("/usr/sbin/postmap -c %s/postfix -q wang.wei@corp.example "
                                    "hash:%s", f.dir, p);
        char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        CU_ASSERT_EQUAL(cut_run(argv, &out, NULL), 0);
        CU_ASSERT(out != NULL && strcmp(out, "li.na@corp.example\n") == 0);
        g_free(out);
        g_free(cmd);
    }
    t = read_fmt("%s/archive/handover/%s/crm.csv", f.dir, id);
    CU_ASSERT(g_str_has_prefix(t, "customer,contact,contact_name,old_owner,new_owner\r\n"));
    CU_ASSERT(strstr(t, "\"Acme Trading, Ltd.\",buyer@acme.example,Buyer,wang.wei@corp.example,"
                        "li.na@corp.example\r\n") != NULL);
    CU_ASSERT(strstr(t, "明远贸易,info@mingyuan.example,") != NULL);
    g_free(t);
    /* the report */
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, "--format", "json", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "\"state\" : \"applied\"") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "\"open_threads\"") != NULL &&
              strstr(out, "Re: Shipping dates") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "\"incidents\"") != NULL &&
              strstr(out, "wangwei@163.com") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, NULL), 0);
    if (access("/usr/sbin/postmap", X_OK) == 0)
        CU_ASSERT(out != NULL && strstr(out, "built: postmap -c ") != NULL &&
                  strstr(out, "virtual_alias_maps = ..., hash:") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, "--format", "html", NULL), 0);
    CU_ASSERT(out != NULL && g_str_has_prefix(out, "<!DOCTYPE html>") &&
              strstr(out, "Acme Trading, Ltd.") != NULL && strstr(out, "<script") == NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "status", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, id) != NULL && strstr(out, "applied") != NULL);
    g_free(out);
    /* again: nothing more */
    CU_ASSERT_EQUAL(apply(&f, id, NULL, &out), 0);
    CU_ASSERT(out != NULL && strstr(out, "applied already") != NULL);
    g_free(out);
    check_mailbox(&f);
    /* the archive verifies with the new events in its chain */
    CU_ASSERT_EQUAL(arc(&f, &out, &err, "verify", NULL), 0);
    g_free(out);
    g_free(err);
    g_free(p);
    g_free(id);
    fx_free(&f);
}

static void expect_fail(struct fx *f, int want, const char *msg, ...) G_GNUC_NULL_TERMINATED;
static void expect_fail(struct fx *f, int want, const char *msg, ...)
{
    va_list ap;
    char *out = NULL, *err = NULL;
    int rc;

    va_start(ap, msg);
    rc = fx_run(f, f->bin, &out, &err, ap);
    va_end(ap);
    if (rc != want || err == NULL || strstr(err, msg) == NULL)
        fprintf(stderr, "\nexpected exit %d with \"%s\", got %d: %s%s\n", want, msg, rc, out,
                err);
    CU_ASSERT_EQUAL(rc, want);
    CU_ASSERT(err != NULL && strstr(err, msg) != NULL);
    g_free(out);
    g_free(err);
}

static void test_cli_bad_input(void)
{
    struct fx f;
    char *id, *id2, *out = NULL, *p, *md;

    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    expect_fail(&f, 65, "--from nobody@corp.example: no such employee", "plan", "--from",
                "nobody@corp.example", "--to", "li.na@corp.example", NULL);
    expect_fail(&f, 65, "--to ghost@corp.example: no such employee", "plan", "--from",
                "wang.wei@corp.example", "--to", "ghost@corp.example", NULL);
    expect_fail(&f, 65, "the successor cannot be the leaver", "plan", "--from",
                "wang.wei@corp.example", "--to", "Wang.Wei@corp.example", NULL);
    expect_fail(&f, 65, "--to chen.jie@corp.example: the successor has departed", "plan",
                "--from", "wang.wei@corp.example", "--to", "chen.jie@corp.example", NULL);
    expect_fail(&f, 65, "--from: address 'not an address' has a space", "plan", "--from", "not an address",
                "--to", "li.na@corp.example", NULL);
    expect_fail(&f, 65, "--effective: '2026-02-30' is not an ISO date", "plan", "--from",
                "wang.wei@corp.example", "--to", "li.na@corp.example", "--effective",
                "2026-02-30", NULL);
    expect_fail(&f, 65, "--split nosuch=zhao.gang@corp.example: nosuch is neither", "plan",
                "--from", "wang.wei@corp.example", "--to", "li.na@corp.example", "--split",
                "nosuch=zhao.gang@corp.example", NULL);
    expect_fail(&f, 65, "--split Acme=ghost@corp.example: no such employee", "plan", "--from",
                "wang.wei@corp.example", "--to", "li.na@corp.example", "--split",
                "Acme=ghost@corp.example", NULL);
    p = g_strdup_printf("%s/etc/aliases", f.dir);
    expect_fail(&f, 73, "is there already", "plan", "--from", "wang.wei@corp.example", "--to",
                "li.na@corp.example", "--postfix-map", p, NULL);
    g_free(p);
    expect_fail(&f, 65, "--postfix-map pcre:/tmp/x: a map of type pcre is not written here",
                "plan", "--from", "wang.wei@corp.example", "--to", "li.na@corp.example",
                "--postfix-map", "pcre:/tmp/x", NULL);
    expect_fail(&f, 65, "is not a plan id", "apply", "../x", NULL);
    expect_fail(&f, 65, "no plan 20260101-nobody-0000", "apply", "20260101-nobody-0000", NULL);
    expect_fail(&f, 65, "no plan x", "report", "x", NULL);

    /* the mailbox: missing, not a directory, not a Maildir */
    md = g_strconcat(f.leaver, ".moved", NULL);
    CU_ASSERT_EQUAL(rename(f.leaver, md), 0);
    expect_fail(&f, 66, "the leaver's mailbox", "plan", "--from", "wang.wei@corp.example",
                "--to", "li.na@corp.example", NULL);
    put_text(f.leaver, "a file\n");
    expect_fail(&f, 66, "is not a directory", "plan", "--from", "wang.wei@corp.example",
                "--to", "li.na@corp.example", NULL);
    unlink(f.leaver);
    g_mkdir_with_parents(f.leaver, 0700);
    expect_fail(&f, 66, "is not a Maildir (no cur/)", "plan", "--from",
                "wang.wei@corp.example", "--to", "li.na@corp.example", NULL);
    rmdir(f.leaver);
    CU_ASSERT_EQUAL(rename(md, f.leaver), 0);
    g_free(md);
    md = g_strconcat(f.succ, ".moved", NULL);
    CU_ASSERT_EQUAL(rename(f.succ, md), 0);
    expect_fail(&f, 66, "the successor's mailbox", "plan", "--from", "wang.wei@corp.example",
                "--to", "li.na@corp.example", NULL);
    CU_ASSERT_EQUAL(rename(md, f.succ), 0);
    g_free(md);

    /* apply before the effective date */
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "plan", "--from", "wang.wei@corp.example", "--to",
                        "li.na@corp.example", "--effective", "2999-01-01", NULL), 0);
    id = plan_id(out);
    g_free(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(id);
    expect_fail(&f, 65, "takes effect on 2999-01-01", "apply", id, NULL);
    CU_ASSERT_EQUAL(dest_count(&f, PREFIX "INBOX", NULL), -1);

    /* half applied: another plan of the same leaver waits for it */
    id2 = fx_plan(&f, NULL);
    CU_ASSERT_EQUAL(apply(&f, id2, "folder:1", NULL), -1);
    expect_fail(&f, 65, "is half applied", "plan", "--from", "wang.wei@corp.example", "--to",
                "zhao.gang@corp.example", NULL);
    CU_ASSERT_EQUAL(apply(&f, id2, NULL, NULL), 0);
    /* handed over already: a second handover needs --force */
    expect_fail(&f, 65, "handed over to li.na@corp.example", "plan",
                "--from", "wang.wei@corp.example", "--to", "zhao.gang@corp.example", NULL);
    g_free(mkmaildir(f.dir, "vmail/corp.example/zhao.gang/Maildir"));
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "plan", "--from", "wang.wei@corp.example", "--to",
                        "zhao.gang@corp.example", "--force", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "successor  赵刚 <zhao.gang@corp.example>") != NULL);
    g_free(out);
    /* report and package inputs */
    expect_fail(&f, 65, "--format pdf: expected text, html or json", "report", id2, "--format",
                "pdf", NULL);
    p = g_strdup_printf("%s/p.tar", f.dir);
    expect_fail(&f, 65, "ending in .zip", "package", id2, "-o", p, NULL);
    g_free(p);
    p = g_strdup_printf("%s/nodir/p.zip", f.dir);
    expect_fail(&f, 73, "cannot write in", "package", id2, "-o", p, NULL);
    g_free(p);
    g_free(id);
    g_free(id2);
    fx_free(&f);
}

/* What a finished handover leaves, to compare a resumed one with. */
struct outcome {
    int counts[G_N_ELEMENTS(leaver_folders) + 1];
    char *vcf, *csv, *crm, *subs;
    gint64 directory_events, hold_events, handover_events, holds;
};

static void outcome_get(struct fx *f, const char *id, struct outcome *o)
{
    char *p;

    for (size_t i = 0; i < G_N_ELEMENTS(leaver_folders); i++) {
        char *dest = g_strconcat(PREFIX, leaver_folders[i][1], NULL);
        int dups = 0;
        o->counts[i] = dest_count(f, dest, &dups);
        CU_ASSERT_EQUAL(dups, 0);
        g_free(dest);
    }
    o->counts[G_N_ELEMENTS(leaver_folders)] = dest_count(f, PREFIX "Recovered", NULL);
    p = g_strconcat(f->succ, "/Handover-wang.wei-contacts.vcf", NULL);
    o->vcf = read_text(p);
    g_free(p);
    p = g_strconcat(f->succ, "/Handover-wang.wei-contacts.csv", NULL);
    o->csv = read_text(p);
    g_free(p);
    p = g_strdup_printf("%s/archive/handover/%s/crm.csv", f->dir, id);
    o->crm = read_text(p);
    g_free(p);
    p = g_strconcat(f->succ, "/subscriptions", NULL);
    o->subs = read_text(p);
    g_free(p);
    o->directory_events = sql_int(f, "SELECT count(*) FROM chain WHERE type = 'directory'");
    o->hold_events = sql_int(f, "SELECT count(*) FROM chain WHERE type = 'hold'");
    o->handover_events = sql_int(f, "SELECT count(*) FROM chain WHERE type = 'handover'");
    o->holds = sql_int(f, "SELECT count(*) FROM holds");
}

static void outcome_clear(struct outcome *o)
{
    g_free(o->vcf);
    g_free(o->csv);
    g_free(o->crm);
    g_free(o->subs);
}

static void test_cli_resume(void)
{
    static const char *const points[] = {
        "depart-rows", "depart-event", "depart", "hold", "forwards", "copy:1", "copy:12", "folder:1", "folder:4",
        "recovered:2", "contacts", "record",
    };
    struct outcome ref = { 0 };
    struct fx f;
    char *id;

    /* the reference: one run, not stopped */
    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    id = fx_plan(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(apply(&f, id, NULL, NULL), 0);
    outcome_get(&f, id, &ref);
    CU_ASSERT_EQUAL(ref.handover_events, 1);
    g_free(id);
    fx_free(&f);

    for (size_t i = 0; i < G_N_ELEMENTS(points); i++) {
        struct outcome o = { 0 };
        char *out = NULL, *t;
        int rc;

        CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
        id = fx_plan(&f, NULL);
        rc = apply(&f, id, points[i], NULL);
        if (rc != -1)
            fprintf(stderr, "\napply killed at %s: exit %d\n", points[i], rc);
        CU_ASSERT_EQUAL(rc, -1);                   /* killed, not exited */
        CU_ASSERT_EQUAL(hov(&f, &out, NULL, "status", id, NULL), 0);
        CU_ASSERT(out != NULL && strstr(out, "half applied") != NULL);
        g_free(out);
        CU_ASSERT_EQUAL(apply(&f, id, NULL, NULL), 0);
        outcome_get(&f, id, &o);
        for (size_t k = 0; k <= G_N_ELEMENTS(leaver_folders); k++) {
            if (o.counts[k] != ref.counts[k])
                fprintf(stderr, "\nkilled at %s: folder %zu has %d, want %d\n", points[i], k,
                        o.counts[k], ref.counts[k]);
            CU_ASSERT_EQUAL(o.counts[k], ref.counts[k]);
        }
        CU_ASSERT_STRING_EQUAL(o.vcf, ref.vcf);
        CU_ASSERT_STRING_EQUAL(o.csv, ref.csv);
        CU_ASSERT_STRING_EQUAL(o.crm, ref.crm);
        CU_ASSERT_STRING_EQUAL(o.subs, ref.subs);
        if (o.directory_events != ref.directory_events || o.handover_events != 1)
            fprintf(stderr, "\nkilled at %s: %" G_GINT64_FORMAT " directory events (want %"
                    G_GINT64_FORMAT "), %" G_GINT64_FORMAT " handover events\n", points[i],
                    o.directory_events, ref.directory_events, o.handover_events);
        CU_ASSERT_EQUAL(o.directory_events, ref.directory_events);
        CU_ASSERT_EQUAL(o.hold_events, ref.hold_events);
        CU_ASSERT_EQUAL(o.handover_events, 1);
        CU_ASSERT_EQUAL(o.holds, ref.holds);
        /* each forwarding file changed once, its backup the original */
        t = read_fmt("%s/etc/aliases", f.dir);
        CU_ASSERT_EQUAL(count_str(t, "#custos-handover "), 2);   /* the entry, 2 lines */
        g_free(t);
        t = read_fmt("%s/etc/virtual", f.dir);
        CU_ASSERT_EQUAL(count_str(t, "#custos-handover "), 1);
        g_free(t);
        t = read_fmt("%s/archive/handover/%s/backups/MANIFEST", f.dir, id);
        CU_ASSERT_EQUAL(count_str(t, "\n"), 4);                  /* one line per file */
        g_free(t);
        outcome_clear(&o);
        g_free(id);
        fx_free(&f);
    }
    outcome_clear(&ref);
}

static void test_cli_forwards(void)
{
    struct fx f;
    char *id, *out = NULL, *t, *bk, *p;

    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "forwards", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "chen.jie@corp.example -> li.na@corp.example\tinternal")
                                 != NULL);
    CU_ASSERT(out != NULL && strstr(out, "wang.wei -> wangwei@163.com\tOUTSIDE webmail") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "-> backup@gmail.com\tOUTSIDE webmail") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "-> |/usr/bin/procmail -a x\tOUTSIDE (program)") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "main.sieve:3\twang.wei@corp.example -> orders@qq.com") !=
                                 NULL);
    g_free(out);
    /* the aliases compiled, as newaliases leaves them */
    if (access("/usr/sbin/postalias", X_OK) == 0) {
        char *cmd = g_strdup_printf("/usr/sbin/postalias -c %s/postfix hash:%s/etc/aliases",
                                    f.dir, f.dir);
        CU_ASSERT_EQUAL(sh(cmd), 0);
        g_free(cmd);
    }
    id = fx_plan(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(apply(&f, id, NULL, NULL), 0);
    p = g_strdup_printf("%s/etc/aliases", f.dir);
    /* rebuilt: Postfix no longer forwards the leaver's mail, the rest it does */
    if (access("/usr/sbin/postalias", X_OK) == 0) {
        char *cmd = g_strdup_printf("/usr/sbin/postalias -c %s/postfix -q wang.wei hash:%s",
                                    f.dir, p);
        char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        CU_ASSERT_EQUAL(cut_run(argv, NULL, NULL), 1);
        g_free(cmd);
        cmd = g_strdup_printf("/usr/sbin/postalias -c %s/postfix -q postmaster hash:%s", f.dir, p);
        argv[2] = cmd;
        CU_ASSERT_EQUAL(cut_run(argv, &out, NULL), 0);
        CU_ASSERT(out != NULL && strcmp(out, "root\n") == 0);
        g_free(out);
        g_free(cmd);
        CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, NULL), 0);
        CU_ASSERT(out != NULL && strstr(out, "built: postalias -c ") != NULL);
        g_free(out);
    }
    t = read_text(p);
    CU_ASSERT(strstr(t, "postmaster: root\n") != NULL && strstr(t, "\nli.na: li.na\n") != NULL);
    /* the rest of the file as it was, bytes that are not UTF-8 too */
    CU_ASSERT(strstr(t, "\n# \xcd\xf5\xce\xb0" " (GBK") != NULL);
    {
        char *want = g_strdup_printf("#custos-handover %s: wang.wei: wang.wei@corp.example,\n"
                                     "#custos-handover %s: \twangwei@163.com\n", id, id);
        CU_ASSERT(strstr(t, want) != NULL);
        g_free(want);
    }
    g_free(t);
    bk = g_strdup_printf("%s/archive/handover/%s/backups", f.dir, id);
    t = read_fmt("%s/MANIFEST", bk);
    CU_ASSERT(strstr(t, p) != NULL && strstr(t, "commented out") != NULL);
    g_free(t);
    {
        /* the backup of aliases is the original */
        GDir *d = g_dir_open(bk, 0, NULL);
        const char *n;
        int found = 0;
        while (d != NULL && (n = g_dir_read_name(d)) != NULL)
            if (g_str_has_prefix(n, "aliases.")) {
                char *b = g_build_filename(bk, n, NULL);
                t = read_text(b);
                found = strcmp(t, aliases_text) == 0;
                g_free(t);
                g_free(b);
            }
        if (d != NULL)
            g_dir_close(d);
        CU_ASSERT(found);
    }
    g_free(p);
    p = g_strdup_printf("%s/home/wang.wei/.forward", f.dir);
    CU_ASSERT_EQUAL(access(p, F_OK), -1);
    t = g_strdup_printf("%s.custos-handover-%s", p, id);
    CU_ASSERT_EQUAL(access(t, F_OK), 0);
    g_free(t);
    g_free(p);
    t = read_fmt("%s/vmail/corp.example/wang.wei/sieve/main.sieve", f.dir);
    CU_ASSERT(strstr(t, "keep; # custos-handover ") != NULL &&
              strstr(t, "\n  redirect") == NULL);
    g_free(t);
    /* the leaver has no forwarding left; others keep theirs */
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "forwards", "wang.wei@corp.example", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "0 forwardings") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "forwards", "chen.jie@corp.example", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "1 forwarding, 0 leading outside") != NULL);
    g_free(out);
    g_free(bk);
    g_free(id);
    fx_free(&f);
}

static void test_cli_notices_split_package(void)
{
    struct fx f;
    const char *more[] = { "--split", "明远贸易=zhao.gang@corp.example", "--postfix-map", NULL,
                           NULL };
    char *id, *out = NULL, *t, *sent, *zip, *map;

    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, "notices = true\nnotice_rate = 6000\n", 1, NULL), 0);
    /* no Postfix here: the map is written, not built, and apply says what to run */
    t = g_strdup_printf("%s/postfix/main.cf", f.dir);
    CU_ASSERT_EQUAL(unlink(t), 0);
    g_free(t);
    map = g_strdup_printf("texthash:%s/handover-virtual", f.dir);
    more[3] = map + 9;
    id = fx_plan(&f, more);
    CU_ASSERT_PTR_NOT_NULL_FATAL(id);
    sent = g_strdup_printf("%s/sent.txt", f.dir);
    /* killed after sendmail took the first notice, before it was journalled */
    CU_ASSERT_EQUAL(apply(&f, id, "notice", NULL), -1);
    CU_ASSERT_EQUAL(apply(&f, id, NULL, NULL), 0);
    t = read_text(sent);
    CU_ASSERT_EQUAL(count_str(t, "--END--"), 2);              /* each contact once */
    CU_ASSERT_EQUAL(count_str(t, "-- buyer@acme.example\n"), 1);
    CU_ASSERT_EQUAL(count_str(t, "-- info@mingyuan.example\n"), 1);
    CU_ASSERT(strstr(t, "ARGS: -i -f li.na@corp.example -- buyer@acme.example") != NULL);
    CU_ASSERT(strstr(t, "ARGS: -i -f zhao.gang@corp.example -- info@mingyuan.example") != NULL);
    CU_ASSERT(strstr(t, "Dear Buyer,") != NULL && strstr(t, "尊敬的") != NULL &&
              strstr(t, "赵刚") != NULL);
    CU_ASSERT(strstr(t, "Subject: =?") != NULL);
    g_free(t);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, "--format", "json", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "\"uncertain\" : [\n") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, NULL), 0);
    t = g_strdup_printf("run `postmap hash:%s` where Postfix runs", map + 9);
    CU_ASSERT(out != NULL && strstr(out, t) != NULL);
    g_free(t);
    g_free(out);
    t = g_strdup_printf("%s.db", map + 9);
    CU_ASSERT_EQUAL(access(t, F_OK), -1);
    g_free(t);
    g_free(map);
    /* the split: 明远贸易 to zhao.gang, Acme to li.na */
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM customers WHERE name = '明远贸易' AND "
                                "owner = 'zhao.gang@corp.example'"), 1);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM customers WHERE name = "
                                "'Acme Trading, Ltd.' AND owner = 'li.na@corp.example'"), 1);
    /* the subscriptions file stays version 2 */
    t = read_fmt("%s/subscriptions", f.succ);
    CU_ASSERT(g_str_has_prefix(t, "V\t2\n\nArchive\nHandover\twang\\2ewei\tINBOX\n"));
    g_free(t);
    /* the package */
    zip = g_strdup_printf("%s/handover.zip", f.dir);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "package", id, "-o", zip, NULL), 0);
    g_free(out);
    {
        char *cmd = g_strdup_printf("python3 -c 'import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]);"
                                    " print(\"\\n\".join(z.namelist())); z.testzip()' %s", zip);
        char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        CU_ASSERT_EQUAL(cut_run(argv, &out, NULL), 0);
        g_free(cmd);
    }
    {
        static const char *const members[] = {
            "report.txt", "report.html", "report.json", "plan.json", "journal",
            "contacts.vcf", "contacts.csv", "crm.csv", "backups/MANIFEST",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(members); i++) {
            char *m = g_strdup_printf("%s/%s\n", id, members[i]);
            if (out == NULL || strstr(out, m) == NULL)
                fprintf(stderr, "\npackage lacks %s", m);
            CU_ASSERT(out != NULL && strstr(out, m) != NULL);
            g_free(m);
        }
    }
    g_free(out);
    expect_fail(&f, 73, "is there already", "package", id, "-o", zip, NULL);
    CU_ASSERT_EQUAL(hov(&f, NULL, NULL, "package", id, "-o", zip, "--force", NULL), 0);
    g_free(zip);
    g_free(sent);
    g_free(id);
    fx_free(&f);
}

/* The successor's Maildir on a small tmpfs: the copy fails on a full
 * disk, says so, and a run once there is room finishes it. */
static void test_cli_disk_full(void)
{
    struct fx f;
    char *id, *err = NULL, *mnt, *cmd;
    int rc;

    if (geteuid() != 0) {
        fprintf(stderr, "\n  skipped: not root (mount)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    mnt = g_strdup_printf("%s/vmail/corp.example/li.na", f.dir);
    cmd = g_strdup_printf("rm -rf %s && mkdir %s && mount -t tmpfs -o size=40k,mode=0755 "
                          "custos-test %s && SUBS_V2=0 python3 "
                          "%s/tests/data/handover/make-leaver.py %s/sales.mbox %s/vmail "
                          ">/dev/null", mnt, mnt, mnt, f.src, f.dir, f.dir);
    if (sh(cmd) != 0) {
        fprintf(stderr, "\n  skipped: no tmpfs mount here");
        g_free(cmd);
        g_free(mnt);
        fx_free(&f);
        return;
    }
    g_free(cmd);
    id = fx_plan(&f, NULL);
    rc = hov(&f, NULL, &err, "apply", id, NULL);
    if (rc != 74 || err == NULL || strstr(err, "No space left on device") == NULL)
        fprintf(stderr, "\napply on a full disk: exit %d: %s\n", rc, err);
    CU_ASSERT_EQUAL(rc, 74);
    CU_ASSERT(err != NULL && strstr(err, "No space left on device") != NULL &&
              strstr(err, mnt) != NULL);
    g_free(err);
    cmd = g_strdup_printf("mount -o remount,size=4m %s", mnt);
    CU_ASSERT_EQUAL(sh(cmd), 0);
    g_free(cmd);
    CU_ASSERT_EQUAL(apply(&f, id, NULL, NULL), 0);
    check_mailbox(&f);
    cmd = g_strdup_printf("umount %s", mnt);
    CU_ASSERT_EQUAL(sh(cmd), 0);
    g_free(cmd);
    g_free(mnt);
    g_free(id);
    fx_free(&f);
}

/* ---- end to end: a private Dovecot, read over IMAP ------------------------------------ */

/* "TIME FLAG FLAG..." of every message of a leaver's folder as the
 * successor should see it: one per content (the first by name), the
 * file's mtime, its flags as IMAP flags (keywords named by the folder's
 * dovecot-keywords), none for new/. Sorted. */
static GPtrArray *expected_view(struct fx *f, const char *storage)
{
    char *dir = *storage ? g_strconcat(f->leaver, "/.", storage, NULL) : g_strdup(f->leaver);
    char *kwf = g_build_filename(dir, "dovecot-keywords", NULL), *kwt = read_text(kwf);
    char **kwl = g_strsplit(kwt, "\n", -1);
    GPtrArray *files = NULL, *out = g_ptr_array_new_with_free_func(g_free);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    CU_ASSERT_EQUAL(hov_maildir_messages(dir, &files, NULL, NULL), 0);
    for (guint i = 0; files != NULL && i < files->len; i++) {
        const struct hov_mfile *m = files->pdata[i];
        char *p = g_build_filename(dir, m->in_new ? "new" : "cur", m->name, NULL), *data = NULL;
        gsize len;
        struct stat st;
        GPtrArray *fl = g_ptr_array_new_with_free_func(g_free);
        char *h, *line;

        CU_ASSERT_FATAL(g_file_get_contents(p, &data, &len, NULL) && stat(p, &st) == 0);
        h = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (guchar *)data, len);
        g_free(data);
        g_free(p);
        if (g_hash_table_contains(seen, h)) {
            g_free(h);
            g_ptr_array_free(fl, TRUE);
            continue;
        }
        g_hash_table_add(seen, h);
        for (const char *c = m->flags; *c != '\0'; c++) {
            switch (*c) {
            case 'S': g_ptr_array_add(fl, g_strdup("\\Seen")); break;
            case 'R': g_ptr_array_add(fl, g_strdup("\\Answered")); break;
            case 'F': g_ptr_array_add(fl, g_strdup("\\Flagged")); break;
            case 'T': g_ptr_array_add(fl, g_strdup("\\Deleted")); break;
            case 'D': g_ptr_array_add(fl, g_strdup("\\Draft")); break;
            default:
                if (*c >= 'a' && *c <= 'z')
                    for (int k = 0; kwl[k] != NULL; k++)
                        if (atoi(kwl[k]) == *c - 'a' && strchr(kwl[k], ' ') != NULL)
                            g_ptr_array_add(fl, g_strdup(strchr(kwl[k], ' ') + 1));
            }
        }
        g_ptr_array_sort(fl, hov_strptr_cmp);
        g_ptr_array_add(fl, NULL);
        line = g_strjoinv(" ", (char **)fl->pdata);
        g_ptr_array_add(out, g_strdup_printf("%lld %s", (long long)st.st_mtime, line));
        g_free(line);
        g_ptr_array_free(fl, TRUE);
    }
    g_ptr_array_sort(out, hov_strptr_cmp);
    if (files != NULL)
        g_ptr_array_free(files, TRUE);
    g_hash_table_destroy(seen);
    g_strfreev(kwl);
    g_free(kwt);
    g_free(kwf);
    g_free(dir);
    return out;
}

/* The same from "* N FETCH (FLAGS (...) INTERNALDATE "...")" lines. */
static GPtrArray *imap_view(const char *fetch)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    char **lines = g_strsplit(fetch != NULL ? fetch : "", "\n", -1);

    for (int i = 0; lines[i] != NULL; i++) {
        const char *fs = strstr(lines[i], "FLAGS ("), *ds = strstr(lines[i], "INTERNALDATE \"");
        char *flags, **fv, *line;
        GPtrArray *fl = g_ptr_array_new_with_free_func(g_free);

        if (fs == NULL || ds == NULL) {
            g_ptr_array_free(fl, TRUE);
            continue;
        }
        flags = g_strndup(fs + 7, (gsize)(strchr(fs + 7, ')') - fs - 7));
        fv = g_strsplit(flags, " ", -1);
        for (int k = 0; fv[k] != NULL; k++)
            if (*fv[k] != '\0' && strcmp(fv[k], "\\Recent") != 0)
                g_ptr_array_add(fl, g_strdup(fv[k]));
        g_ptr_array_sort(fl, hov_strptr_cmp);
        g_ptr_array_add(fl, NULL);
        line = g_strjoinv(" ", (char **)fl->pdata);
        g_ptr_array_add(out, g_strdup_printf("%lld %s", (long long)dvc_internaldate(ds + 14),
                                             line));
        g_free(line);
        g_strfreev(fv);
        g_free(flags);
        g_ptr_array_free(fl, TRUE);
    }
    g_strfreev(lines);
    g_ptr_array_sort(out, hov_strptr_cmp);
    return out;
}

static void test_dovecot_e2e(void)
{
    static const struct dvc_user users[] = {
        { "li.na@corp.example", "successor-pw", 5000, 5000 },
        { "wang.wei@corp.example", "leaver-pw", 5001, 5001 },
    };
    static const struct {
        const char *storage;        /* in the leaver's Maildir */
        const char *imap;           /* the successor's folder over IMAP (modified UTF-7) */
    } folders[] = {
        { "", "Handover/wang.wei/INBOX" },
        { "Sent", "Handover/wang.wei/Sent" },
        { "&W6JiNw-.&Zg6P3A-", "Handover/wang.wei/&W6JiNw-/&Zg6P3A-" },
        { "A&-B, Partners", "Handover/wang.wei/A&-B, Partners" },
        { "v1\\2e0", "Handover/wang.wei/v1.0" },
        { "Trash", "Handover/wang.wei/Trash" },
    };
    struct fx f;
    struct dvc d;
    char *why = NULL, *id, *dir, *mail, *out = NULL, *err = NULL;

    if (!dvc_usable(&why)) {
        fprintf(stderr, "\n  skipped: %s", why);
        g_free(why);
        return;
    }
    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    id = fx_plan(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(apply(&f, id, NULL, NULL), 0);
    dir = g_build_filename(f.dir, "dovecot", NULL);
    mail = g_strdup_printf("%s/vmail/%%d/%%n/Maildir", f.dir);
    /* Dovecot's auth and the users' imap processes walk through it */
    CU_ASSERT_EQUAL(chmod(f.dir, 0711), 0);
    if (dvc_start(&d, dir, mail, users, G_N_ELEMENTS(users), &err) < 0) {
        fprintf(stderr, "\n%s\n", err);
        CU_FAIL("dovecot did not start");
        g_free(err);
        dvc_stop(&d);
        goto out;
    }
    /* every folder, one level per name: the leaver's dot is no level */
    if (dvc_imap(&d, &users[0], NULL, "LIST \"\" \"*\"", &out, &err) < 0) {
        char *log = read_text(d.log);
        fprintf(stderr, "\n%s\n%s\n", err, log);
        g_free(log);
        CU_FAIL("IMAP LIST");
    }
    for (size_t i = 0; i < G_N_ELEMENTS(folders); i++) {
        char *l1 = g_strdup_printf("\"/\" %s\r\n", folders[i].imap);
        char *l2 = g_strdup_printf("\"/\" \"%s\"\r\n", folders[i].imap);
        if (out == NULL || (strstr(out, l1) == NULL && strstr(out, l2) == NULL))
            fprintf(stderr, "\nLIST lacks %s:\n%s", folders[i].imap, out);
        CU_ASSERT(out != NULL && (strstr(out, l1) != NULL || strstr(out, l2) != NULL));
        g_free(l1);
        g_free(l2);
    }
    CU_ASSERT(out != NULL && strstr(out, "\"/\" Handover/wang.wei/Recovered\r\n") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "Handover/wang/") == NULL);
    g_free(out);
    out = NULL;
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], NULL, "LSUB \"\" \"*\"", &out, &err), 0);
    CU_ASSERT(out != NULL && strstr(out, "Handover/wang.wei/&W6JiNw-/&Zg6P3A-") != NULL &&
              strstr(out, "Handover/wang.wei/Recovered") != NULL &&
              strstr(out, "\"/\" Archive") != NULL);
    g_free(out);
    out = NULL;
    /* counts, flags and dates, folder by folder */
    for (size_t i = 0; i < G_N_ELEMENTS(folders); i++) {
        char *cmd = g_strdup_printf("STATUS \"%s\" (MESSAGES)", folders[i].imap);
        char *want = g_strdup_printf("(MESSAGES %d)", source_unique(&f, folders[i].storage));
        GPtrArray *ev, *iv;

        CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], NULL, cmd, &out, &err), 0);
        if (out == NULL || strstr(out, want) == NULL)
            fprintf(stderr, "\n%s: %s, want %s\n", cmd, out, want);
        CU_ASSERT(out != NULL && strstr(out, want) != NULL);
        g_free(out);
        out = NULL;
        g_free(cmd);
        g_free(want);
        if (source_unique(&f, folders[i].storage) == 0)
            continue;
        CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], folders[i].imap,
                                 "FETCH 1:* (FLAGS INTERNALDATE)", &out, &err), 0);
        ev = expected_view(&f, folders[i].storage);
        iv = imap_view(out);
        CU_ASSERT_EQUAL(iv->len, ev->len);
        for (guint k = 0; k < MIN(iv->len, ev->len); k++) {
            if (strcmp(iv->pdata[k], ev->pdata[k]) != 0)
                fprintf(stderr, "\n%s: IMAP [%s], want [%s]", folders[i].imap,
                        (char *)iv->pdata[k], (char *)ev->pdata[k]);
            CU_ASSERT_STRING_EQUAL(iv->pdata[k], ev->pdata[k]);
        }
        g_ptr_array_free(ev, TRUE);
        g_ptr_array_free(iv, TRUE);
        g_free(out);
        out = NULL;
    }
    /* the recovered mail: what the leaver deleted, as archived */
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], NULL,
                             "STATUS \"Handover/wang.wei/Recovered\" (MESSAGES)", &out, &err), 0);
    CU_ASSERT(out != NULL && strstr(out, "(MESSAGES 3)") != NULL);
    g_free(out);
    out = NULL;
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], "Handover/wang.wei/Recovered",
                             "SEARCH SUBJECT \"Invoice 2026-118\"", &out, &err), 0);
    CU_ASSERT(out != NULL && g_regex_match_simple("^\\* SEARCH \\d+ \\d+\\r?$", out,
                                                  G_REGEX_MULTILINE, 0));
    g_free(out);
    out = NULL;
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], "Handover/wang.wei/Recovered",
                             "FETCH 1:* (INTERNALDATE BODY.PEEK[HEADER.FIELDS (DATE)])", &out,
                             &err), 0);
    CU_ASSERT(out != NULL && strstr(out, "INTERNALDATE \"22-Mar-2026") != NULL);   /* 备份 */
    g_free(out);
    out = NULL;
    /* the successor's own mail is untouched */
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], NULL, "STATUS INBOX (MESSAGES)", &out, &err), 0);
    CU_ASSERT(out != NULL && strstr(out, "(MESSAGES 1)") != NULL);
    g_free(out);
    out = NULL;
    dvc_stop(&d);
out:
    g_free(err);
    g_free(dir);
    g_free(mail);
    g_free(id);
    fx_free(&f);
}

/* custos-milter's findings (as its spool entries carry them) become
 * incidents on ingest; the report lists them with rule and evidence,
 * merged with what the archive search finds of the same message, and
 * keeps what only that search finds. */
static void test_incidents(void)
{
    static const char leak[] =
        "From: wang.wei@corp.example\r\nTo: wangwei@163.com\r\nSubject: customers\r\n"
        "Message-ID: <inc-1@corp.example>\r\nDate: Mon, 30 Mar 2026 18:00:00 +0800\r\n\r\n"
        "buyer@acme.example +1 415 555 0100\r\n";
    static const char partner[] =
        "From: wang.wei@corp.example\r\nTo: desk@ab-partners.example\r\nSubject: list\r\n"
        "Message-ID: <inc-2@corp.example>\r\nDate: Tue, 31 Mar 2026 18:00:00 +0800\r\n\r\n"
        "info@mingyuan.example +86 755 2222 3333\r\n";
    struct spool_finding f1 = { "personal-webmail", "personal-webmail/sales", "tag",
                                "sales mail with 2 customer contact items" };
    struct spool_finding f2 = { "self-forward", "self-forward/personal-address", "tag",
                                "to w***@163.com, a registered personal address" };
    struct spool_finding f3 = { "customer-data", "customer-data/count", "hold",
                                "2 customer contact items of 1 customer" };
    struct spool_finding *leak_f[] = { &f1, &f2 }, *partner_f[] = { &f3 };
    char *rc1[] = { "wangwei@163.com", NULL }, *rc2[] = { "desk@ab-partners.example", NULL };
    struct spool_entry e = { .time = 1774900000, .client = "127.0.0.1", .sender =
                             "wang.wei@corp.example", .queue_id = "4ABC", .source = "milter" };
    struct fx f;
    char *spool, *id, *out = NULL, *argv[5];

    CU_ASSERT_EQUAL_FATAL(fx_setup(&f, NULL, 0, NULL), 0);
    spool = g_build_filename(f.dir, "archive/spool", NULL);
    CU_ASSERT_EQUAL_FATAL(spool_init(spool, NULL), 0);
    e.rcpts = rc1;
    e.findings = leak_f;
    e.n_findings = 2;
    e.raw = g_bytes_new_static(leak, strlen(leak));
    CU_ASSERT_EQUAL(spool_write(spool, &e, NULL, NULL), 0);
    g_bytes_unref(e.raw);
    e.rcpts = rc2;
    e.findings = partner_f;
    e.n_findings = 1;
    e.time += 86400;
    e.raw = g_bytes_new_static(partner, strlen(partner));
    CU_ASSERT_EQUAL(spool_write(spool, &e, NULL, NULL), 0);
    g_bytes_unref(e.raw);
    argv[0] = f.arcbin;
    argv[1] = "-c";
    argv[2] = f.conf;
    argv[3] = "ingest";
    argv[4] = NULL;
    CU_ASSERT_EQUAL(cut_run(argv, NULL, NULL), 0);
    CU_ASSERT_EQUAL(sql_int(&f, "SELECT count(*) FROM incidents"), 3);

    id = fx_plan(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(apply(&f, id, NULL, NULL), 0);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, "--format", "json", NULL), 0);
    /* the leak: two findings, also found by the archive search */
    CU_ASSERT(out != NULL && strstr(out, "\"rule\" : \"personal-webmail/personal-webmail/sales "
                                         "(tag); self-forward/self-forward/personal-address "
                                         "(tag)\"") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "\"where\" : \"custos-milter, archive\"") != NULL);
    /* customer data to a partner: only the milter saw it as an incident */
    CU_ASSERT(out != NULL && strstr(out, "\"to\" : \"desk@ab-partners.example\"") != NULL &&
              strstr(out, "\"rule\" : \"customer-data/customer-data/count (hold)\"") != NULL &&
              strstr(out, "\"evidence\" : \"2 customer contact items of 1 customer\"") != NULL);
    /* the archive's own: 备份 to 163.com, before custos-milter ran */
    CU_ASSERT(out != NULL && strstr(out, "\"subject\" : \"\xe5\xa4\x87\xe4\xbb\xbd\"") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "flagged as") != NULL &&
              strstr(out, "customer-data/customer-data/count (hold)") != NULL);
    g_free(out);
    g_free(id);
    g_free(spool);
    fx_free(&f);
}

/* ---- end to end: Postfix and custos-milter before and after apply ---------------------- */

static int sock_up(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The gateway of the store: custos-milter on a private Postfix whose
 * virtual(8) delivers corp.example into the Maildirs and relays the rest
 * to an smtp-sink. */
struct gw {
    struct pfx pf;
    struct pfx_sink sink;
    GPid milter;
    char *spool, *sock, *log;
};

static int gw_start(struct gw *g, struct fx *f)
{
    static const char *const subs[] = { "", "tmp", "new", "failed", "journal" };
    struct passwd *pw = getpwnam("nobody");
    uid_t nobody = pw != NULL ? pw->pw_uid : 0;     /* getpw* reuse their buffer */
    struct group *gr = getgrnam("postfix");
    gid_t postfix = gr != NULL ? gr->gr_gid : 0;
    char *text, *conf, *extra, *dir, *bin = cut_bin("custos-milter"), *err = NULL;
    char *argv[] = { bin, "-f", "-c", f->conf, NULL };
    GError *gerr = NULL;
    double end = cus_now() + 20;
    int fd, ret = -1;

    memset(g, 0, sizeof(*g));
    g->spool = g_build_filename(f->dir, "spool", NULL);
    g->sock = g_build_filename(f->dir, "milter.sock", NULL);
    g->log = g_build_filename(f->dir, "milter.log", NULL);
    if (nobody == 0 || postfix == 0 || spool_init(g->spool, &err) < 0)
        goto out;
    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *p = g_build_filename(g->spool, subs[i], NULL);
        CU_ASSERT_EQUAL(chown(p, nobody, postfix), 0);
        g_free(p);
    }
    text = read_text(f->conf);
    conf = g_strdup_printf("%s[spool]\ndir = %s\n[milter]\nsocket = unix:%s\nuser = nobody\n"
                           "group = postfix\n", text, g->spool, g->sock);
    CU_ASSERT(g_file_set_contents(f->conf, conf, -1, NULL));
    g_free(conf);
    g_free(text);
    fd = open(g->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (!g_spawn_async_with_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &g->milter, -1, fd, fd, &gerr)) {
        fprintf(stderr, "\n  spawn custos-milter: %s", gerr->message);
        g_error_free(gerr);
        g->milter = 0;
        close(fd);
        goto out;
    }
    close(fd);
    while (!sock_up(g->sock) && cus_now() < end && waitpid(g->milter, NULL, WNOHANG) == 0)
        g_usleep(20000);
    if (!sock_up(g->sock)) {
        text = read_text(g->log);
        fprintf(stderr, "\n  custos-milter did not come up:\n%s", text);
        g_free(text);
        goto out;
    }
    text = g_strdup_printf("%s/vmailbox", f->dir);
    put_text(text, "li.na@corp.example corp.example/li.na/Maildir/\n"
                   "wang.wei@corp.example corp.example/wang.wei/Maildir/\n");
    g_free(text);
    text = g_strdup_printf("%s/vuid", f->dir);
    put_text(text, "li.na@corp.example 5000\nwang.wei@corp.example 5001\n");
    g_free(text);
    dir = g_build_filename(f->dir, "sink", NULL);
    if (pfx_sink_start(&g->sink, dir, &err) < 0) {
        g_free(dir);
        goto out;
    }
    g_free(dir);
    extra = g_strdup_printf("virtual_mailbox_domains = corp.example\n"
                            "virtual_mailbox_base = %s/vmail\n"
                            "virtual_mailbox_maps = texthash:%s/vmailbox\n"
                            "virtual_uid_maps = texthash:%s/vuid\n"
                            "virtual_gid_maps = texthash:%s/vuid\n"
                            "virtual_minimum_uid = 100\nvirtual_mailbox_limit = 0\n", f->dir,
                            f->dir, f->dir, f->dir);
    dir = g_build_filename(f->dir, "postfix-run", NULL);
    conf = g_strconcat("unix:", g->sock, NULL);
    ret = pfx_start(&g->pf, dir, g->sink.port, conf, extra, &err);
    g_free(conf);
    g_free(extra);
    g_free(dir);
out:
    if (err != NULL)
        fprintf(stderr, "\n  gateway: %s", err);
    g_free(err);
    g_free(bin);
    return ret;
}

static void gw_stop(struct gw *g)
{
    if (g->pf.master > 0)
        pfx_stop(&g->pf);
    if (g->sink.pid > 0)
        pfx_sink_stop(&g->sink);
    if (g->milter > 0) {
        kill(g->milter, SIGTERM);
        if (pfx_wait_pid(g->milter, 20, NULL) < 0) {
            kill(g->milter, SIGKILL);
            pfx_wait_pid(g->milter, 10, NULL);
        }
    }
    g_free(g->spool);
    g_free(g->sock);
    g_free(g->log);
}

/* Send file from -> to through the gateway; wait until Postfix is done
 * with it and custos-milter's journal is handed to ingest (new/). swaks'
 * exit status. */
static int gw_send(struct gw *g, const char *from, const char *to, const char *file)
{
    char *data = g_strconcat("@", file, NULL), *out = NULL;
    char *jdir = g_build_filename(g->spool, "journal", NULL);
    int rc = pfx_swaks(g->pf.port, &out, "--from", from, "--to", to, "--data", data, NULL);
    double end;

    if (rc != 0)
        fprintf(stderr, "\nswaks %s -> %s: exit %d\n%s\n", from, to, rc, out);
    if (pfx_wait_empty(&g->pf, 60) < 0) {
        char *log = pfx_log(&g->pf);
        fprintf(stderr, "\nthe queue did not empty:\n%s\n", log);
        g_free(log);
        CU_FAIL("Postfix did not deliver");
    }
    for (end = cus_now() + 10;; g_usleep(20000)) {
        GDir *d = g_dir_open(jdir, 0, NULL);
        int empty = d == NULL || g_dir_read_name(d) == NULL;

        if (d != NULL)
            g_dir_close(d);
        if (empty)
            break;
        if (cus_now() > end) {
            CU_FAIL("custos-milter's journal was not handed over");
            break;
        }
    }
    g_free(jdir);
    g_free(out);
    g_free(data);
    return rc;
}

/*
 * Before apply, the leaver (leaving) sends the customer list to his
 * 163.com address through the gateway: custos-milter flags it, ingest
 * archives the incident, and the handover report lists it with the
 * milter's rule and evidence. After apply, a customer's mail to the
 * leaver goes through the same gateway: custos-milter routes it and the
 * successor, logged in to a private Dovecot, finds it in her INBOX; the
 * leaver's mailbox gets nothing.
 */
static void test_milter_e2e(void)
{
    static const struct dvc_user users[] = {
        { "li.na@corp.example", "successor-pw", 5000, 5000 },
        { "wang.wei@corp.example", "leaver-pw", 5001, 5001 },
    };
    struct fx f;
    struct gw g;
    struct dvc d = { 0 };
    char *why = NULL, *id = NULL, *out = NULL, *err = NULL, *leak, *argv[6];
    char *dvdir = NULL, *mail = NULL;
    int rc;

    if (!pfx_usable(&why) || !dvc_usable(&why)) {
        fprintf(stderr, "\n  skipped: %s", why);
        g_free(why);
        return;
    }
    fx_archive_extra = "group = postfix\n";       /* custos-milter reads the directory */
    rc = fx_setup(&f, NULL, 0, NULL);
    fx_archive_extra = NULL;
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(chmod(f.dir, 0711), 0);       /* Postfix and the milter walk in */
    id = fx_plan(&f, NULL);
    if (gw_start(&g, &f) < 0) {
        CU_FAIL("the gateway did not start");
        goto out;
    }
    leak = g_build_filename(f.dir, "leak.eml", NULL);
    put_text(leak, "From: =?UTF-8?B?546L5Lyf?= <wang.wei@corp.example>\r\n"
                   "To: wangwei@163.com\r\n"
                   "Subject: =?UTF-8?B?5aSH5Lu9?=\r\n"
                   "Message-ID: <leak-e2e@corp.example>\r\n"
                   "Date: Mon, 30 Nov 2026 18:00:00 +0800\r\n"
                   "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n"
                   "\xe5\xae\xa2\xe6\x88\xb7\xef\xbc\x9a\r\n"
                   "Acme Trading, Ltd., buyer@acme.example, +1 415 555 0100\r\n"
                   "\xe6\x98\x8e\xe8\xbf\x9c\xe8\xb4\xb8\xe6\x98\x93, info@mingyuan.example, "
                   "+86 755 2222 3333\r\n");
    gw_send(&g, "wang.wei@corp.example", "wangwei@163.com", leak);
    g_free(leak);
    /* ingest, once: the spool entry and its findings into the archive */
    argv[0] = f.arcbin;
    argv[1] = "-c";
    argv[2] = f.conf;
    argv[3] = "ingest";
    argv[4] = NULL;
    {
        char *o2 = NULL, *e2 = NULL;
        CU_ASSERT_EQUAL(cut_run(argv, &o2, &e2), 0);
        if (sql_int(&f, "SELECT count(*) FROM incidents") < 1) {
            char *log = read_text(g.log);
            fprintf(stderr, "\nno incident; custos-milter said:\n%s\ningest: %s%s\n", log,
                    o2, e2);
            g_free(log);
        }
        g_free(o2);
        g_free(e2);
    }
    CU_ASSERT(sql_int(&f, "SELECT count(*) FROM incidents") >= 1);

    CU_ASSERT_EQUAL_FATAL(apply(&f, id, NULL, NULL), 0);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, "--format", "json", NULL), 0);
    if (out == NULL || strstr(out, "\"where\" : \"custos-milter") == NULL)
        fprintf(stderr, "\nreport: %s\n", out);
    CU_ASSERT(out != NULL && strstr(out, "\"where\" : \"custos-milter") != NULL &&
              strstr(out, "\"evidence\" : \"") != NULL &&
              strstr(out, "\"to\" : \"wangwei@163.com\"") != NULL &&
              strstr(out, "\"subject\" : \"\xe5\xa4\x87\xe4\xbb\xbd\"") != NULL);
    g_free(out);
    CU_ASSERT_EQUAL(hov(&f, &out, NULL, "report", id, NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "flagged as") != NULL);
    g_free(out);
    out = NULL;

    /* after apply, a customer writes to the leaver, in Chinese (GB2312) */
    leak = g_build_filename(f.dir, "to-leaver.eml", NULL);
    put_text(leak, "From: =?UTF-8?B?5piO6L+c6LS45piT?= <info@mingyuan.example>\r\n"
                   "To: =?UTF-8?B?546L5Lyf?= <wang.wei@corp.example>\r\n"
                   "Subject: =?GB2312?B?0MK2qbWlIDQ3MTI=?=\r\n"
                   "Message-ID: <route-e2e-4712@mingyuan.example>\r\n"
                   "Date: Tue, 01 Dec 2026 09:00:00 +0800\r\n"
                   "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=GB2312\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n"
                   "\xcd\xf5\xcf\xc8\xc9\xfa\xa3\xac\xd0\xc2\xb6\xa9\xb5\xa5\xc8\xe7"
                   "\xcf\xc2\xa1\xa3\r\n");
    CU_ASSERT_EQUAL(gw_send(&g, "info@mingyuan.example", "wang.wei@corp.example", leak), 0);
    g_free(leak);
    /* the successor finds it in her INBOX (Dovecot over the store) */
    dvdir = g_build_filename(f.dir, "dovecot", NULL);
    mail = g_strdup_printf("%s/vmail/%%d/%%n/Maildir", f.dir);
    if (dvc_start(&d, dvdir, mail, users, G_N_ELEMENTS(users), &err) < 0) {
        fprintf(stderr, "\n%s\n", err);
        CU_FAIL("dovecot did not start");
        goto out;
    }
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], NULL, "STATUS INBOX (MESSAGES)", &out, &err), 0);
    if (out == NULL || strstr(out, "(MESSAGES 2)") == NULL) {
        char *log = pfx_log(&g.pf), *ml = read_text(g.log);
        fprintf(stderr, "\nsuccessor's INBOX: %s\nmaillog:\n%s\nmilter:\n%s\n", out, log, ml);
        g_free(log);
        g_free(ml);
    }
    CU_ASSERT(out != NULL && strstr(out, "(MESSAGES 2)") != NULL);      /* Welcome + it */
    g_free(out);
    out = NULL;
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], "INBOX", "SEARCH HEADER Message-ID "
                             "\"route-e2e-4712@mingyuan.example\"", &out, &err), 0);
    CU_ASSERT(out != NULL && g_regex_match_simple("^\\* SEARCH \\d+\\r?$", out,
                                                  G_REGEX_MULTILINE, 0));
    g_free(out);
    out = NULL;
    /* its GB2312 subject, searched for in UTF-8 */
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[0], "INBOX", "SEARCH CHARSET UTF-8 SUBJECT "
                             "\"\xe6\x96\xb0\xe8\xae\xa2\xe5\x8d\x95\"", &out, &err), 0);
    CU_ASSERT(out != NULL && g_regex_match_simple("^\\* SEARCH \\d+\\r?$", out,
                                                  G_REGEX_MULTILINE, 0));
    g_free(out);
    out = NULL;
    /* the leaver's mailbox got nothing */
    CU_ASSERT_EQUAL(dvc_imap(&d, &users[1], "INBOX", "SEARCH HEADER Message-ID "
                             "\"route-e2e-4712@mingyuan.example\"", &out, &err), 0);
    CU_ASSERT(out != NULL && g_regex_match_simple("^\\* SEARCH\\r?$", out,
                                                  G_REGEX_MULTILINE, 0));
    g_free(out);
    out = NULL;
    dvc_stop(&d);
out:
    gw_stop(&g);
    g_free(err);
    g_free(dvdir);
    g_free(mail);
    g_free(id);
    fx_free(&f);
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
    CU_add_test(s, "address lists: groups, comments, quotes, routes", test_addresses);
    CU_add_test(s, "Sieve redirects", test_sieve);
    CU_add_test(s, "journal: a torn last line", test_journal);
    CU_add_test(s, "plan changes nothing; apply hands everything over", test_cli_plan_apply);
    CU_add_test(s, "every bad input: a clear error, its exit status", test_cli_bad_input);
    CU_add_test(s, "killed at each step, run again: the same result", test_cli_resume);
    CU_add_test(s, "forwarding audit: found, disabled, backups", test_cli_forwards);
    CU_add_test(s, "notices once each, split successors, package", test_cli_notices_split_package);
    CU_add_test(s, "disk full mid-copy, then finished", test_cli_disk_full);
    CU_add_test(s, "end to end: a private Dovecot shows the successor everything",
                test_dovecot_e2e);
    CU_add_test(s, "incidents: custos-milter's and the archive's in the report", test_incidents);
    CU_add_test(s, "end to end: Postfix and custos-milter flag the leaver's leak (in the "
                "report) and bring the customers' new mail to the successor", test_milter_e2e);
}
