/*
 * test-spool.c - the spool format and its files: every field round trips
 * (escapes, UTF-8, empty values, no recipients), every parse error names
 * its line and what is wrong, failed entries keep their bytes and say why,
 * listing is oldest first and skips what is not an entry. The streaming
 * writer (format 2): any chunking reads back the same, every error of its
 * trailer names the envelope line, an aborted or failed entry leaves
 * nothing, and tmp/ files of dead writers are swept. The journal: small
 * entries of many threads share files and syncs and each reads back once;
 * damage and a torn tail go to failed/ whole; gone writers' journals are
 * recovered.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <pwd.h>
#include "cutest.h"
#include "custos/spool.h"

static char *sp_dir;

static int sp_init(void)
{
    char *err = NULL;

    sp_dir = cut_tmpdir();
    if (spool_init(sp_dir, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        g_free(err);
        return 1;
    }
    return 0;
}

static int sp_clean(void)
{
    cut_rmtree(sp_dir);
    g_free(sp_dir);
    return 0;
}

static char *entry_path(const char *sub, const char *id)
{
    return g_build_filename(sp_dir, sub, id, NULL);
}

static int count_dir(const char *sub)
{
    char *p = g_build_filename(sp_dir, sub, NULL);
    GDir *d = g_dir_open(p, 0, NULL);
    int n = 0;

    while (d != NULL && g_dir_read_name(d) != NULL)
        n++;
    if (d != NULL)
        g_dir_close(d);
    g_free(p);
    return n;
}

/* Write e, read it back, compare every field. */
static void round_trip(const struct spool_entry *e, const char *const *want_rcpts,
                       const char *want_sender)
{
    struct spool_entry *r = NULL, *p = NULL;
    char id[SPOOL_ID_MAX + 1] = "", *err = NULL, *path, *file = NULL;
    gsize flen;
    int n = 0;

    CU_ASSERT_EQUAL_FATAL(spool_write(sp_dir, e, id, &err), 0);
    CU_ASSERT(spool_id_valid(id));
    CU_ASSERT_EQUAL_FATAL(spool_read(sp_dir, id, &r, &err), 0);
    CU_ASSERT_STRING_EQUAL(r->id, id);
    CU_ASSERT_EQUAL(r->time, e->time);
    CU_ASSERT_STRING_EQUAL(r->client, e->client ? e->client : "");
    CU_ASSERT_STRING_EQUAL(r->sender, want_sender);
    CU_ASSERT_STRING_EQUAL(r->queue_id, e->queue_id ? e->queue_id : "");
    CU_ASSERT_STRING_EQUAL(r->source, e->source ? e->source : "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->rcpts);
    for (; want_rcpts[n] != NULL; n++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(r->rcpts[n]);
        CU_ASSERT_STRING_EQUAL(r->rcpts[n], want_rcpts[n]);
    }
    CU_ASSERT_PTR_NULL(r->rcpts[n]);
    CU_ASSERT(g_bytes_equal(r->raw, e->raw));
    {   /* the hash the reader checked, given on to ingest (not hashed again) */
        unsigned char sha[CUS_SHA256_LEN];
        gsize rlen;
        const void *raw = g_bytes_get_data(r->raw, &rlen);

        cus_sha256(raw != NULL ? raw : "", rlen, sha);
        CU_ASSERT_EQUAL(memcmp(r->sha256, sha, CUS_SHA256_LEN), 0);
    }

    /* spool_parse of the same bytes: the same entry, with no id. */
    path = entry_path("new", id);
    CU_ASSERT_FATAL(g_file_get_contents(path, &file, &flen, NULL));
    CU_ASSERT_EQUAL_FATAL(spool_parse(file, flen, &p, &err), 0);
    CU_ASSERT_STRING_EQUAL(p->id, "");
    CU_ASSERT_STRING_EQUAL(p->sender, r->sender);
    CU_ASSERT(g_bytes_equal(p->raw, e->raw));
    CU_ASSERT_EQUAL(memcmp(p->sha256, r->sha256, CUS_SHA256_LEN), 0);
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    CU_ASSERT_FALSE(g_file_test(path, G_FILE_TEST_EXISTS));
    spool_entry_free(&r);
    spool_entry_free(&p);
    CU_ASSERT_PTR_NULL(r);
    g_free(path);
    g_free(file);
}

static void test_round_trip(void)
{
    static const char raw[] = "From: a@example.com\r\nSubject: x\r\n\r\n"
                              "CUSTOS-SPOOL 1\nsize 3\n\n%25%0A\0binary\0\n";
    const char *rcpts[] = { "bob@example.com", "", "张三@例子.公司", "x%25y%z\r\n", "  ", NULL };
    const char *none[] = { NULL };
    struct spool_entry e = {
        .time = 1764556800, .client = "192.0.2.7 [mx.example]\n%0A",
        .sender = "alice%@exämple.com\r\nX-Injected: 1", .queue_id = "4Xk2Lp1z3Nz9",
        .source = "milter", .rcpts = (char **)rcpts,
    };
    char id[SPOOL_ID_MAX + 1], *err = NULL, *path, *file = NULL;

    e.raw = g_bytes_new(raw, sizeof(raw) - 1);
    round_trip(&e, rcpts, e.sender);

    /* The header on disk: escapes, one line per field, nothing injected. */
    CU_ASSERT_EQUAL_FATAL(spool_write(sp_dir, &e, id, &err), 0);
    path = entry_path("new", id);
    CU_ASSERT_FATAL(g_file_get_contents(path, &file, NULL, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(file, "\nclient 192.0.2.7 [mx.example]%0A%250A\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(file, "\nsender alice%25@exämple.com%0D%0AX-Injected: 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(file, "\nrcpt \n"));
    CU_ASSERT_PTR_NULL(strstr(file, "\nX-Injected"));
    CU_ASSERT(g_str_has_prefix(file, SPOOL_MAGIC "\ntime 1764556800\n"));
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    g_free(file);
    g_free(path);

    /* Empty values everywhere, no recipients, time 0. */
    e.time = 0;
    e.client = e.sender = e.queue_id = e.source = "";
    e.rcpts = (char **)none;
    round_trip(&e, none, "");
    /* NULL values and NULL rcpts are written as empty. */
    e.client = e.sender = e.queue_id = e.source = NULL;
    e.rcpts = NULL;
    round_trip(&e, none, "");
    /* An empty message. */
    g_bytes_unref(e.raw);
    e.raw = g_bytes_new("", 0);
    round_trip(&e, none, "");
    /* Invalid UTF-8 is repaired, not refused. */
    e.sender = "bad\xff@example.com";
    round_trip(&e, none, "bad\xef\xbf\xbd@example.com");
    /* A negative time is refused; nothing is left behind. */
    e.time = -1;
    CU_ASSERT_EQUAL(spool_write(sp_dir, &e, id, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(err);
    g_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(count_dir("new"), 0);
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    g_bytes_unref(e.raw);
}

/* The valid entry the error cases below start from. */
static GString *base_entry(void)
{
    static const char body[] = "From: a@example.com\nSubject: hi\n\nbody\n";
    unsigned char sha[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX];
    GString *s = g_string_new(NULL);

    cus_sha256(body, sizeof(body) - 1, sha);
    cus_hex(sha, CUS_SHA256_LEN, hex);
    g_string_append_printf(s, "CUSTOS-SPOOL 1\n"             /* 1 */
                              "time 1764556800\n"            /* 2 */
                              "client 192.0.2.7 [mx]\n"      /* 3 */
                              "sender alice@example.com\n"   /* 4 */
                              "rcpt bob@example.com\n"       /* 5 */
                              "queue-id 4Xk2Lp1z3Nz9\n"      /* 6 */
                              "source milter\n"              /* 7 */
                              "size %zu\n"                   /* 8 */
                              "sha256 %s\n"                  /* 9 */
                              "\n%s", sizeof(body) - 1, hex, body);
    return s;
}

static void test_parse_errors(void)
{
    static const struct {
        const char *what, *from, *to;   /* replace from by to (once); to NULL:
                                         * delete the line from starts */
        int cut;                        /* or: drop this many bytes at the end */
        const char *expect;
    } cases[] = {
        { "bad magic", "CUSTOS-SPOOL 1\n", "CUSTOS-SPOOL\n", 0,
          "line 1: not a custos spool entry (expected \"CUSTOS-SPOOL 1\")" },
        { "other format", "CUSTOS-SPOOL 1\n", "Return-Path: <x@y>\n", 0,
          "line 1: not a custos spool entry" },
        { "CRLF magic", "CUSTOS-SPOOL 1\n", "CUSTOS-SPOOL 1\r\n", 0,
          "line 1: spool format version \"1\\r\" not supported" },
        { "version 3", "CUSTOS-SPOOL 1\n", "CUSTOS-SPOOL 3\n", 0,
          "line 1: spool format version \"3\" not supported (only 1 and 2)" },
        { "unknown key", "client ", "colour blue\nclient ", 0,
          "line 3: unknown key \"colour\"" },
        { "key case", "sender ", "Sender ", 0, "line 4: unknown key \"Sender\"" },
        { "missing key", "client 192.0.2.7 [mx]\n", "", 0,
          "line 3 (sender): missing key \"client\" before it" },
        { "missing size", "size 38", NULL, 0,
          "line 8 (sha256): missing key \"size\" before it" },
        { "missing last key", "sha256 ", NULL, 0,
          "line 9: missing key \"sha256\" before the empty line" },
        { "repeated key", "client ", "time 1\nclient ", 0,
          "line 3 (time): key repeated or out of order (expected \"client\")" },
        { "no rcpt line (fine)", "rcpt bob@example.com\n", "", 0, NULL },
        { "rcpt after queue-id", "source milter\n", "rcpt late@x\nsource milter\n", 0,
          "line 7 (rcpt): key repeated or out of order (expected \"source\")" },
        { "no space", "queue-id 4Xk2Lp1z3Nz9\n", "queue-id\n", 0,
          "line 6 (queue-id): no space after the key (an empty value is written \"queue-id \")" },
        { "bad time", "time 1764556800", "time 17645x", 0,
          "line 2 (time): \"17645x\" is not a number" },
        { "negative time", "time 1764556800", "time -1", 0,
          "line 2 (time): \"-1\" is not a number" },
        { "empty time", "time 1764556800", "time ", 0, "line 2 (time): \"\" is not a number" },
        { "bad size", "size 38", "size 3 8", 0, "line 8 (size): \"3 8\" is not a number" },
        { "huge size", "size 38", "size 9999999999999999999", 0,
          "line 8 (size): 9999999999999999999 is over the limit of 1073741824" },
        { "size too long", "size 38", "size 99999999999999999999", 0,
          "line 8 (size): \"99999999999999999999\" has too many digits" },
        { "bad sha256", "sha256 ", "sha256 AB", 0,
          "line 9 (sha256): expected 64 lower-case hex digits" },
        { "sha256 mismatch", "\n\nFrom: a@", "\n\nFrom: b@", 0,
          "line 9 (sha256): does not match the message (its SHA-256 is " },
        { "truncated raw", NULL, NULL, 5,
          "line 8 (size): 38 bytes declared, only 33 follow the header (truncated entry)" },
        { "trailing bytes", "body\n", "body\nmore", 0,
          "line 8 (size): 38 bytes declared, 42 follow the header (trailing bytes)" },
        { "truncated header", NULL, NULL, 38 + 1 + 1, "line 9: no newline at the end of the line"
          " (truncated entry)" },
        { "header never ends", NULL, NULL, 38 + 1, "line 10: the file ends inside the header"
          " (truncated entry)" },
        { "bad escape", "alice@", "al%41ice@", 0,
          "line 4 (sender): bad escape \"%41\" (only %25 %0D %0A)" },
        { "lower-case escape", "alice@", "al%0aice@", 0, "line 4 (sender): bad escape \"%0a\"" },
        { "escape cut short", "[mx]\n", "[mx]%2\n", 0, "line 3 (client): bad escape \"%2\"" },
        { "escaped NUL", "alice@", "al%00ice@", 0, "line 4 (sender): a NUL byte (%00)" },
        { "raw CR", "milter\n", "milter\r\n", 0, "line 7 (source): a raw CR in the header" },
        { "raw NUL", "4Xk2", "4X\0k2", 0, "line 6 (queue-id): a raw NUL byte in the header" },
        { "bad UTF-8", "bob@", "b\xc3\x28@", 0, "line 5 (rcpt): the value is not valid UTF-8" },
        /* auth and finding: optional, in their place, tokens strict */
        { "auth and findings (fine)", "size ", "auth alice\nfinding a b c \n"
          "finding x/y z.1 reject %25 %0A 中文\nsize ", 0, NULL },
        { "auth empty", "size ", "auth \nsize ", 0,
          "line 8 (auth): empty (an entry with no SASL login has no auth line)" },
        { "auth twice", "size ", "auth a\nauth b\nsize ", 0,
          "line 9 (auth): key repeated or out of order (expected \"finding\")" },
        { "auth after finding", "size ", "finding a b c d\nauth a\nsize ", 0,
          "line 9 (auth): key repeated or out of order (expected \"finding\")" },
        { "finding before source", "source milter\n", "finding a b c d\nsource milter\n", 0,
          "line 7 (finding): missing key \"source\" before it" },
        { "finding after size", "sha256 ", "finding a b c d\nsha256 ", 0,
          "line 9 (finding): key repeated or out of order (expected \"sha256\")" },
        { "finding upper case", "size ", "finding Departed b c d\nsize ", 0,
          "line 8 (finding): category \"Departed\" is not a token" },
        { "finding empty rule", "size ", "finding a  c d\nsize ", 0,
          "line 8 (finding): rule \"\" is not a token" },
        { "finding bad action", "size ", "finding a b re%6Aect d\nsize ", 0,
          "line 8 (finding): action \"re%6Aect\" is not a token" },
        { "finding no evidence space", "size ", "finding a b c\nsize ", 0,
          "line 8 (finding): no space after the action" },
        { "finding two words", "size ", "finding a b\nsize ", 0,
          "line 8 (finding): no space after the rule" },
        { "finding empty", "size ", "finding \nsize ", 0,
          "line 8 (finding): category \"\" is not a token" },
        { "finding bad escape", "size ", "finding a b c 50%\nsize ", 0,
          "line 8 (finding): bad escape \"%\"" },
        { "finding bad UTF-8", "size ", "finding a b c \xff\nsize ", 0,
          "line 8 (finding): the value is not valid UTF-8" },
    };
    struct spool_entry *e = NULL;
    char *err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GString *s = base_entry();
        size_t fromlen = cases[i].from ? strlen(cases[i].from) : 0;

        if (cases[i].from != NULL) {
            /* "raw NUL": the replacement holds a NUL, so splice by hand */
            const char *at = strstr(s->str, cases[i].from);
            CU_ASSERT_PTR_NOT_NULL_FATAL(at);
            gssize pos = at - s->str;
            if (cases[i].to == NULL) {
                g_string_erase(s, pos, (gssize)(strchr(at, '\n') + 1 - at));
            } else {
                size_t tolen = strcmp(cases[i].what, "raw NUL") == 0 ? 5 : strlen(cases[i].to);
                g_string_erase(s, pos, (gssize)fromlen);
                g_string_insert_len(s, pos, cases[i].to, (gssize)tolen);
            }
        }
        if (cases[i].cut)
            g_string_truncate(s, s->len - (size_t)cases[i].cut);
        /* Exactly len bytes, copied so ASan sees any read past them. */
        {
            void *buf = g_memdup2(s->str, s->len);
            int ret = spool_parse(buf, s->len, &e, &err);
            if (cases[i].expect == NULL) {
                /* no recipients is fine */
                CU_ASSERT_EQUAL(ret, 0);
                spool_entry_free(&e);
            } else if (ret != -1 || err == NULL || strstr(err, cases[i].expect) == NULL) {
                fprintf(stderr, "\n  %s: got %d \"%s\", want \"%s\"", cases[i].what, ret,
                        err ? err : "", cases[i].expect);
                CU_FAIL("parse error message");
                spool_entry_free(&e);
            }
            CU_ASSERT_PTR_NULL(e);
            g_free(buf);
        }
        g_free(err);
        err = NULL;
        g_string_free(s, TRUE);
    }
    /* Nothing at all; and every prefix of a good entry fails cleanly. */
    CU_ASSERT_EQUAL(spool_parse("", 0, &e, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 1: not a custos spool entry"));
    g_free(err);
    {
        GString *s = base_entry();
        for (size_t n = 0; n < s->len; n++) {
            void *buf = g_memdup2(s->str, n);
            err = NULL;
            CU_ASSERT_EQUAL(spool_parse(buf, n, &e, &err), -1);
            CU_ASSERT(err != NULL && g_str_has_prefix(err, "line "));
            g_free(err);
            g_free(buf);
        }
        CU_ASSERT_EQUAL(spool_parse(s->str, s->len, &e, &err), 0);
        spool_entry_free(&e);
        g_string_free(s, TRUE);
    }
}

/* spool_read names the file; errno tells a missing entry from a bad one. */
static void test_read_errors(void)
{
    struct spool_entry *e = NULL;
    const char *id = "1764556800.000001.77.0123456789abcdef";
    char *err = NULL, *path = entry_path("new", id);

    CU_ASSERT_EQUAL(spool_read(sp_dir, id, &e, &err), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    g_free(err);

    g_file_set_contents(path, "CUSTOS-SPOOL 1\ntime x\n", -1, NULL);
    CU_ASSERT_EQUAL(spool_read(sp_dir, id, &e, &err), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2 (time)"));
    g_free(err);
    unlink(path);

    /* Not an id: never used as a path. */
    CU_ASSERT_EQUAL(spool_read(sp_dir, "../../etc/passwd", &e, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a spool id"));
    g_free(err);
    CU_ASSERT_EQUAL(spool_fail(sp_dir, "../x", "r", &err), -1);
    g_free(err);
    CU_ASSERT_PTR_NULL(e);
    g_free(path);
}

static void test_fail(void)
{
    static const char raw[] = "Subject: keep me\n\nwhole\n";
    struct spool_entry e = { .time = 1, .source = "test" };
    char id[SPOOL_ID_MAX + 1], *err = NULL, *before = NULL, *after = NULL, *reason = NULL;
    char *src, *dst, *rpath;
    gsize blen = 0, alen = 0;

    e.raw = g_bytes_new(raw, sizeof(raw) - 1);
    CU_ASSERT_EQUAL_FATAL(spool_write(sp_dir, &e, id, &err), 0);
    src = entry_path("new", id);
    dst = entry_path("failed", id);
    rpath = g_strconcat(dst, ".reason", NULL);
    g_file_get_contents(src, &before, &blen, NULL);
    CU_ASSERT_EQUAL(spool_fail(sp_dir, id, "line 2 (time): broken\non two lines", &err), 0);
    CU_ASSERT_FALSE(g_file_test(src, G_FILE_TEST_EXISTS));
    CU_ASSERT_FATAL(g_file_get_contents(dst, &after, &alen, NULL));
    CU_ASSERT(alen == blen && memcmp(before, after, alen) == 0);
    CU_ASSERT_FATAL(g_file_get_contents(rpath, &reason, NULL, NULL));
    CU_ASSERT_STRING_EQUAL(reason, "line 2 (time): broken\non two lines\n");
    /* Not in new/ any more: a second fail is an error naming the file. */
    CU_ASSERT_EQUAL(spool_fail(sp_dir, id, "again", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, src));
    g_free(err);
    /* ...and the entry and its first reason are untouched. */
    g_free(reason);
    CU_ASSERT_FATAL(g_file_get_contents(rpath, &reason, NULL, NULL));
    CU_ASSERT_STRING_EQUAL(reason, "line 2 (time): broken\non two lines\n");
    CU_ASSERT(g_file_test(dst, G_FILE_TEST_EXISTS));
    /* remove of what is gone: fine */
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    unlink(dst);
    unlink(rpath);
    g_bytes_unref(e.raw);
    g_free(before); g_free(after); g_free(reason);
    g_free(src); g_free(dst); g_free(rpath);
}

static void test_list(void)
{
    static const char *const made[] = {
        "1000000000.000001.5.00000000000000aa",
        "999999999.999999.5.00000000000000ff",  /* 9 digits: older */
        "1000000000.000000.77.0000000000000001",
        "1000000000.000000.5.0000000000000002",
    };
    static const char *const junk[] = {
        ".hidden", "1000000000.000000.5.0000000000000002~", "1000000000.000000.5.000000000000000G",
        "1000000000.0000.5.0000000000000002", "x.000000.5.0000000000000002", "ingest.lock",
        "1000000000.000000.5.0000000000000002.reason", "#1000000000.000000.5.0000000000000002#",
    };
    static const char *const want[] = {
        "999999999.999999.5.00000000000000ff", "1000000000.000000.5.0000000000000002",
        "1000000000.000000.77.0000000000000001", "1000000000.000001.5.00000000000000aa",
    };
    struct spool_entry e = { .time = 1 };
    char id1[SPOOL_ID_MAX + 1], id2[SPOOL_ID_MAX + 1], *err = NULL;
    GPtrArray *ids = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(made); i++) {
        char *p = entry_path("new", made[i]);
        g_file_set_contents(p, "x", 1, NULL);
        g_free(p);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
        char *p = entry_path("new", junk[i]);
        g_file_set_contents(p, "x", 1, NULL);
        CU_ASSERT_FALSE(spool_id_valid(junk[i]));
        g_free(p);
    }
    CU_ASSERT_EQUAL_FATAL(spool_list(sp_dir, &ids, &err), 0);
    CU_ASSERT_EQUAL_FATAL(ids->len, G_N_ELEMENTS(want));
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
        CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, i), want[i]);
    g_ptr_array_free(ids, TRUE);

    /* Fresh entries from the writer come after, in writing order. */
    e.raw = g_bytes_new("a", 1);
    CU_ASSERT_EQUAL(spool_write(sp_dir, &e, id1, &err), 0);
    CU_ASSERT_EQUAL(spool_write(sp_dir, &e, id2, &err), 0);
    CU_ASSERT_EQUAL_FATAL(spool_list(sp_dir, &ids, &err), 0);
    CU_ASSERT_EQUAL_FATAL(ids->len, G_N_ELEMENTS(want) + 2);
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, ids->len - 2), id1);
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, ids->len - 1), id2);
    g_ptr_array_free(ids, TRUE);

    /* A missing spool: an error naming the directory. */
    CU_ASSERT_EQUAL(spool_list("/nonexistent/spool", &ids, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/spool/new"));
    g_free(err);
    /* A write to a missing spool names the file and leaves nothing. */
    CU_ASSERT_EQUAL(spool_write("/nonexistent/spool", &e, id1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/spool/tmp/"));
    g_free(err);
    g_bytes_unref(e.raw);
}

/* A format 2 entry written by the streaming writer in chunks of the given
 * sizes (cycled); the file's bytes returned (g_free). */
static char *stream_entry(const struct spool_entry *env, const void *raw, size_t len,
                          const size_t *chunks, size_t n_chunks, char id_r[SPOOL_ID_MAX + 1],
                          char sha_r[CUS_SHA256_HEX], gsize *flen_r)
{
    struct spool_writer *w = NULL;
    char *err = NULL, *path, *file = NULL;
    size_t off = 0;

    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 0, &w, &err), 0);
    g_strlcpy(id_r, spool_writer_id(w), SPOOL_ID_MAX + 1);
    CU_ASSERT(spool_id_valid(id_r));
    for (size_t i = 0; off < len; i++) {
        size_t n = MIN(chunks[i % n_chunks], len - off);
        CU_ASSERT_EQUAL_FATAL(spool_writer_write(w, (const char *)raw + off, n, &err), 0);
        off += n;
    }
    CU_ASSERT_EQUAL(spool_writer_size(w), len);
    /* nothing in new/ until the commit */
    path = entry_path("new", id_r);
    CU_ASSERT_FALSE(g_file_test(path, G_FILE_TEST_EXISTS));
    if (spool_writer_commit(&w, env, sha_r, &err) < 0) {
        fprintf(stderr, "\n  commit: %s", err);
        CU_FAIL_FATAL("commit");
    }
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_FATAL(g_file_get_contents(path, &file, flen_r, NULL));
    g_free(path);
    return file;
}

static void test_stream(void)
{
    static const size_t chunk_sets[][4] = {
        { 1, 1, 1, 1 }, { 7, 100, 3, 65536 }, { 65536, 65536, 65536, 65536 },
        { 200000, 1, 65535, 65537 },
    };
    const char *rcpts[] = { "bob@example.com", "张三@例子.公司", "x%y\r\nz", NULL };
    struct spool_entry env = { .time = 1764556800, .client = "192.0.2.7 [mx.example]",
                               .sender = "alice@example.com", .queue_id = "4Xk2Lp1z3Nz9",
                               .source = "milter", .rcpts = (char **)rcpts };
    GString *raw = g_string_new("Received: from x\r\nSubject: =?GB2312?B?1tDOxA==?=\r\n\r\n");
    char id[SPOOL_ID_MAX + 1], sha[CUS_SHA256_HEX], hex[CUS_SHA256_HEX], *err = NULL;
    unsigned char bin[CUS_SHA256_LEN];
    int new0 = count_dir("new");    /* what earlier tests left */

    /* 300 KB: bytes of every value, lines that look like envelope lines */
    for (int i = 0; raw->len < 300000; i++) {
        g_string_append_c(raw, (char)(i * 7 % 256));
        if (i % 997 == 0)
            g_string_append(raw, "\nsize 3\nsha256 00\nenvelope 12\n");
    }
    cus_sha256(raw->str, raw->len, bin);
    cus_hex(bin, CUS_SHA256_LEN, hex);
    for (size_t c = 0; c < G_N_ELEMENTS(chunk_sets); c++) {
        /* whole, empty, and ending in "envelope 5\n" itself */
        static const char *const tails[] = { NULL, "", "x\nenvelope 5\n" };
        for (size_t t = 0; t < G_N_ELEMENTS(tails); t++) {
            struct spool_entry *r = NULL, *p = NULL;
            const char *data = tails[t] == NULL ? raw->str : tails[t];
            size_t len = tails[t] == NULL ? raw->len : strlen(tails[t]);
            gsize flen;
            char *file = stream_entry(&env, data, len, chunk_sets[c], 4, id, sha, &flen);
            char want_tail[64];

            CU_ASSERT(g_str_has_prefix(file, SPOOL_MAGIC2 "\n"));
            CU_ASSERT(flen > len + 15 && memcmp(file + 15, data, len) == 0);
            CU_ASSERT_EQUAL_FATAL(spool_read(sp_dir, id, &r, &err), 0);
            CU_ASSERT_STRING_EQUAL(r->id, id);
            CU_ASSERT_EQUAL(r->time, env.time);
            CU_ASSERT_STRING_EQUAL(r->client, env.client);
            CU_ASSERT_STRING_EQUAL(r->sender, env.sender);
            CU_ASSERT_STRING_EQUAL(r->queue_id, env.queue_id);
            CU_ASSERT_STRING_EQUAL(r->source, env.source);
            for (int i = 0; i < 3; i++)
                CU_ASSERT(r->rcpts[i] != NULL && strcmp(r->rcpts[i], rcpts[i]) == 0);
            CU_ASSERT_PTR_NULL(r->rcpts[3]);
            CU_ASSERT_EQUAL(g_bytes_get_size(r->raw), len);
            CU_ASSERT(len == 0 || memcmp(g_bytes_get_data(r->raw, NULL), data, len) == 0);
            if (tails[t] == NULL)
                CU_ASSERT_STRING_EQUAL(sha, hex);
            /* the same from memory, and the envelope line is exact */
            CU_ASSERT_EQUAL(spool_parse(file, flen, &p, &err), 0);
            spool_entry_free(&p);
            g_snprintf(want_tail, sizeof(want_tail), "\nsha256 %s\nenvelope ", sha);
            CU_ASSERT_PTR_NOT_NULL(g_strstr_len(file + flen - 120, 120, want_tail));
            CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
            spool_entry_free(&r);
            g_free(file);
        }
    }
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), new0);
    g_string_free(raw, TRUE);
}

/* Writers in threads committing at once: every entry whole in new/, and
 * new/ synced fewer times than there are entries (the group commit). */
#define GC_THREADS 8
#define GC_EACH 40

/* What a writer thread writes: each entries (0: GC_EACH) of queue id qid,
 * held in memory up to mem_max bytes; close_each: the journal closed after
 * each, so that the next opens one of its own; failures counted. */
struct gc_job {
    const char *qid;
    size_t mem_max;
    int each, close_each;
    int failures;
};

static gpointer gc_writer(gpointer arg)
{
    struct gc_job *job = arg;
    const char *rcpts[] = { "bob@example.com", NULL };
    struct spool_entry env = { .time = 1764556800, .client = "", .sender = "a@example.com",
                               .queue_id = (char *)job->qid, .source = "test",
                               .rcpts = (char **)rcpts };

    for (int i = 0; i < (job->each > 0 ? job->each : GC_EACH); i++) {
        struct spool_writer *w = NULL;
        char body[128], *err = NULL;
        int n = g_snprintf(body, sizeof(body), "Subject: writer %p, entry %d\r\n\r\nbody\r\n",
                           (void *)g_thread_self(), i);

        if (spool_writer_open(sp_dir, job->mem_max, &w, &err) < 0 ||
            spool_writer_write(w, body, n, &err) < 0 ||
            /* held in memory: no file yet */
            (job->mem_max > 0 && spool_writer_path(w) != NULL &&
             (err = g_strdup("a file for a small entry")) != NULL) ||
            spool_writer_commit(&w, &env, NULL, &err) < 0 ||
            (job->close_each && spool_journal_close(&err) < 0)) {
            fprintf(stderr, "\n  writer: %s", err);
            g_atomic_int_inc(&job->failures);
            g_free(err);
            spool_writer_abort(&w);
        }
    }
    return NULL;
}

/* GC_THREADS writers of job at once: every entry committed, with fewer
 * syncs (of what, for the message) than entries, nothing left in tmp/. */
static void gc_run(struct gc_job *job, const char *what)
{
    GThread *t[GC_THREADS];
    guint64 e0, s0, e1, s1;

    spool_commit_stats(&e0, &s0);
    for (int i = 0; i < GC_THREADS; i++)
        t[i] = g_thread_new("writer", gc_writer, job);
    for (int i = 0; i < GC_THREADS; i++)
        g_thread_join(t[i]);
    spool_commit_stats(&e1, &s1);
    fprintf(stderr, "(%d entries, %d syncs%s) ", (int)(e1 - e0), (int)(s1 - s0), what);
    CU_ASSERT_EQUAL(job->failures, 0);
    CU_ASSERT_EQUAL(e1 - e0, GC_THREADS * GC_EACH);
    CU_ASSERT(s1 - s0 >= 1 && s1 - s0 < e1 - e0);
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
}

static void test_group_commit(void)
{
    struct gc_job job = { .qid = "GROUP" };
    int found = 0, new0 = count_dir("new");
    GPtrArray *ids = NULL;
    char *err = NULL;

    gc_run(&job, " of new/");
    CU_ASSERT_EQUAL(count_dir("new"), new0 + GC_THREADS * GC_EACH);
    CU_ASSERT_EQUAL_FATAL(spool_list(sp_dir, &ids, &err), 0);
    for (guint i = 0; i < ids->len; i++) {
        struct spool_entry *e = NULL;
        const char *id = g_ptr_array_index(ids, i);
        if (spool_read(sp_dir, id, &e, &err) < 0) {
            /* one an earlier test left on purpose; ours are counted below */
            g_free(err);
            err = NULL;
            continue;
        }
        if (strcmp(e->queue_id, "GROUP") == 0) {
            found++;
            CU_ASSERT(g_str_has_prefix(g_bytes_get_data(e->raw, NULL), "Subject: writer "));
            CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
        }
        spool_entry_free(&e);
    }
    CU_ASSERT_EQUAL(found, GC_THREADS * GC_EACH);
    g_ptr_array_free(ids, TRUE);
}

/* Format 2 errors: torn anywhere, lengths that do not add up, damage. */
static void test_stream_errors(void)
{
    static const size_t one[] = { 1000 };
    static const char body[] = "Subject: s\r\n\r\nline\r\n";
    const char *rcpts[] = { "bob@example.com", NULL };
    struct spool_entry env = { .time = 5, .client = "c", .sender = "s@x", .queue_id = "Q",
                               .source = "milter", .rcpts = (char **)rcpts };
    static const struct {
        const char *what, *from, *to;   /* replace from by to (the last one) */
        const char *expect;
    } cases[] = {
        { "longer envelope", "\nenvelope ", "\nenvelope 9", "last line (envelope): 9" },
        { "shorter envelope", "\nenvelope 1", "\nenvelope ", "envelope line 1: unknown key" },
        { "zero envelope", NULL, NULL, "missing key \"time\" before the end of the envelope" },
        { "bytes after", NULL, NULL, "last line: expected \"envelope LENGTH\"" },
        { "empty line", "\nclient c\n", "\n\nclient \n",
          "envelope line 2: an empty line in the envelope" },
        { "size", "\nsize 20\n", "\nsize 21\n", "envelope line 7 (size): 21 bytes declared, "
          "the message before the envelope is 20" },
        { "body", "line\r\n", "lime\r\n", "envelope line 8 (sha256): does not match" },
        { "key order", "\nclient c\nsender s@x\n", "\nsender s@x\nclient c\n",
          "envelope line 2 (sender): missing key \"client\" before it" },
        { "bad number", "\nenvelope ", "\nenvelope x", "last line (envelope): \"x" },
    };
    char id[SPOOL_ID_MAX + 1], sha[CUS_SHA256_HEX], *err = NULL;
    struct spool_entry *e = NULL;
    gsize flen;
    char *file = stream_entry(&env, body, sizeof(body) - 1, one, 1, id, sha, &flen);

    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    /* Every cut short fails, naming a line. */
    for (size_t n = 0; n < flen; n++) {
        err = NULL;
        CU_ASSERT_EQUAL(spool_parse(file, n, &e, &err), -1);
        CU_ASSERT(err != NULL && (g_str_has_prefix(err, "line ") ||
                                  g_str_has_prefix(err, "last line") ||
                                  g_str_has_prefix(err, "envelope line ")));
        g_free(err);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GString *s = g_string_new_len(file, (gssize)flen);
        int ret;

        if (cases[i].from != NULL) {
            const char *at = g_strrstr(s->str, cases[i].from);
            CU_ASSERT_PTR_NOT_NULL_FATAL(at);
            gssize pos = at - s->str;
            g_string_erase(s, pos, (gssize)strlen(cases[i].from));
            g_string_insert(s, pos, cases[i].to);
        } else if (strcmp(cases[i].what, "zero envelope") == 0) {
            /* the envelope lines gone, "envelope 0" */
            const char *at = strstr(s->str, "\r\n\r\nline\r\n") + 10;
            g_string_truncate(s, (gsize)(at - s->str));
            g_string_append(s, "envelope 0\n");
        } else {
            g_string_append(s, "junk\n");
        }
        err = NULL;
        ret = spool_parse(s->str, s->len, &e, &err);
        if (ret != -1 || err == NULL || strstr(err, cases[i].expect) == NULL) {
            fprintf(stderr, "\n  %s: got %d \"%s\", want \"%s\"", cases[i].what, ret,
                    err ? err : "", cases[i].expect);
            CU_FAIL("format 2 parse error");
            spool_entry_free(&e);
        }
        g_free(err);
        g_string_free(s, TRUE);
    }
    g_free(file);
}

/* Abort, a commit that cannot rename, writes after an error, the sweep. */
static void test_stream_fail(void)
{
    struct spool_entry env = { .time = 1 };
    struct spool_writer *w = NULL;
    char *err = NULL, *newdir = g_build_filename(sp_dir, "new", NULL);
    char *moved = g_strconcat(newdir, ".away", NULL);
    char dead[SPOOL_ID_MAX + 1], mine[SPOOL_ID_MAX + 1], *p;
    guint removed = 0;
    int new0 = count_dir("new");
    pid_t pid;

    /* abort: the temp file goes */
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 0, &w, &err), 0);
    CU_ASSERT_EQUAL(spool_writer_write(w, "abc", 3, &err), 0);
    CU_ASSERT_EQUAL(count_dir("tmp"), 1);
    spool_writer_abort(&w);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    spool_writer_abort(&w);     /* NULL: nothing */

    /* new/ gone: the commit fails, names the file, leaves nothing */
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 0, &w, &err), 0);
    CU_ASSERT_EQUAL(spool_writer_write(w, "abc", 3, &err), 0);
    CU_ASSERT_EQUAL_FATAL(rename(newdir, moved), 0);
    CU_ASSERT_EQUAL(spool_writer_commit(&w, &env, NULL, &err), -1);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "rename(") : NULL);
    g_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(rename(moved, newdir), 0);
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), new0);

    /* a negative time is refused at commit */
    env.time = -1;
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 0, &w, &err), 0);
    CU_ASSERT_EQUAL(spool_writer_commit(&w, &env, NULL, &err), -1);
    g_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);

    /* A missing spool: open names the file. */
    CU_ASSERT_EQUAL(spool_writer_open("/nonexistent/spool", 0, &w, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "/nonexistent/spool/tmp/") : NULL);
    CU_ASSERT_PTR_NULL(w);
    g_free(err);
    err = NULL;

    /* Sweep: a writer that died (a child that exited) vs. one alive (us). */
    pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    g_snprintf(dead, sizeof(dead), "1764556800.000001.%d.0123456789abcdef", (int)pid);
    p = entry_path("tmp", dead);
    g_file_set_contents(p, "torn", -1, NULL);
    g_free(p);
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 0, &w, &err), 0);
    g_strlcpy(mine, spool_writer_id(w), sizeof(mine));
    p = entry_path("tmp", "notes.txt");         /* not an id: left alone */
    g_file_set_contents(p, "x", -1, NULL);
    CU_ASSERT_EQUAL(spool_sweep_tmp(sp_dir, 0, &removed, &err), 0);
    CU_ASSERT_EQUAL(removed, 1);
    CU_ASSERT_EQUAL(count_dir("tmp"), 2);
    /* by age: anything older than max_age, even of a live writer */
    {
        char *mp = entry_path("tmp", mine);
        struct timespec old[2] = { { .tv_sec = 1000 }, { .tv_sec = 1000 } };
        CU_ASSERT_EQUAL(utimensat(AT_FDCWD, mp, old, 0), 0);
        CU_ASSERT_EQUAL(spool_sweep_tmp(sp_dir, 3600, &removed, &err), 0);
        CU_ASSERT_EQUAL(removed, 1);
        CU_ASSERT_FALSE(g_file_test(mp, G_FILE_TEST_EXISTS));
        g_free(mp);
    }
    spool_writer_abort(&w);
    unlink(p);
    g_free(p);
    CU_ASSERT_EQUAL(spool_sweep_tmp("/nonexistent/spool", 0, &removed, &err), -1);
    g_free(err);
    g_free(newdir);
    g_free(moved);
}

/* Compare the findings and auth of two entries. */
static void same_findings(const struct spool_entry *want, const struct spool_entry *got,
                          const char *const *evidence)
{
    CU_ASSERT_EQUAL_FATAL(got->n_findings, want->n_findings);
    CU_ASSERT((got->findings == NULL) == (want->n_findings == 0));
    for (size_t i = 0; i < want->n_findings; i++) {
        CU_ASSERT_STRING_EQUAL(got->findings[i]->category, want->findings[i]->category);
        CU_ASSERT_STRING_EQUAL(got->findings[i]->rule, want->findings[i]->rule);
        CU_ASSERT_STRING_EQUAL(got->findings[i]->action, want->findings[i]->action);
        CU_ASSERT_STRING_EQUAL(got->findings[i]->evidence, evidence[i]);
    }
    if (want->auth == NULL || *want->auth == '\0') {
        CU_ASSERT_PTR_NULL(got->auth);
    } else {
        CU_ASSERT(got->auth != NULL && strcmp(got->auth, want->auth) == 0);
    }
}

/* Findings and auth: both writers, read back exact; old entries have
 * none; the writer refuses a finding that is not tokens and leaves
 * nothing. */
static void test_findings(void)
{
    static const char raw[] = "From: =?GB2312?B?1tDOxA==?= <a@example.com>\r\n\r\nbody\r\n";
    static const size_t chunks[] = { 5 };
    struct spool_finding f[] = {
        { "departed-sender", "departed-sender/sasl", "hold",
          "SASL login a@example.com: departed employee (left 2026-11-01; successor b@x)" },
        { "customer-data", "customer-data/attachment.xlsx", "reject",
          "附件 客户名单.xlsx: 40 个客户 100% \r\nX-Injected: 1" },
        { "x", "y", "route", "" },
        { "bad-utf8", "r_1", "monitor", "caf\xe9" },
    };
    const char *const evidence[] = {
        f[0].evidence, f[1].evidence, "", "caf\xef\xbf\xbd",
    };
    struct spool_finding *fp[] = { &f[0], &f[1], &f[2], &f[3] };
    const char *rcpts[] = { "bob@example.com", NULL };
    struct spool_entry e = { .time = 1764556800, .client = "c", .sender = "a@example.com",
                             .queue_id = "Q1", .source = "milter", .rcpts = (char **)rcpts,
                             .auth = "alice", .findings = fp, .n_findings = 4 };
    char id[SPOOL_ID_MAX + 1], sha[CUS_SHA256_HEX], *err = NULL, *file = NULL, *path;
    struct spool_entry *r = NULL;
    gsize flen;
    int new0 = count_dir("new");

    e.raw = g_bytes_new(raw, sizeof(raw) - 1);
    /* format 1 */
    CU_ASSERT_EQUAL_FATAL(spool_write(sp_dir, &e, id, &err), 0);
    path = entry_path("new", id);
    CU_ASSERT_FATAL(g_file_get_contents(path, &file, &flen, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(file, "\nsource milter\nauth alice\nfinding departed-sender "
                                        "departed-sender/sasl hold SASL login a@example.com: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(file, "\nfinding customer-data customer-data/attachment.xlsx "
                                        "reject 附件 客户名单.xlsx: 40 个客户 100%25 "
                                        "%0D%0AX-Injected: 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(file, "\nfinding x y route \nfinding bad-utf8 r_1 monitor "
                                        "caf\xef\xbf\xbd\nsize "));
    CU_ASSERT_PTR_NULL(strstr(file, "\nX-Injected"));
    CU_ASSERT_EQUAL_FATAL(spool_read(sp_dir, id, &r, &err), 0);
    same_findings(&e, r, evidence);
    spool_entry_free(&r);
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    g_free(file);
    g_free(path);
    /* format 2 */
    file = stream_entry(&e, raw, sizeof(raw) - 1, chunks, 1, id, sha, &flen);
    CU_ASSERT_EQUAL_FATAL(spool_read(sp_dir, id, &r, &err), 0);
    same_findings(&e, r, evidence);
    spool_entry_free(&r);
    CU_ASSERT_EQUAL_FATAL(spool_parse(file, flen, &r, &err), 0);
    same_findings(&e, r, evidence);
    spool_entry_free(&r);
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    g_free(file);
    /* none, and an empty auth: not written, read back as none */
    e.n_findings = 0;
    e.auth = "";
    CU_ASSERT_EQUAL_FATAL(spool_write(sp_dir, &e, id, &err), 0);
    CU_ASSERT_EQUAL_FATAL(spool_read(sp_dir, id, &r, &err), 0);
    same_findings(&e, r, evidence);
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);
    spool_entry_free(&r);

    /* not tokens: refused by both writers, naming the finding and field */
    {
        static const struct {
            const char *category, *rule, *action, *expect;
        } bad[] = {
            { "Departed", "r", "hold", "finding 2: category \"Departed\" is not a token" },
            { "c", "a rule", "hold", "finding 2: rule \"a rule\" is not a token" },
            { "c", "r", "", "finding 2: action \"\" is not a token" },
            { "c", "r", NULL, "finding 2: action (none) is not a token" },
            { "c", "r\n", "hold", "finding 2: rule \"r\\n\" is not a token" },
            { "客户", "r", "hold", "finding 2: category \"" },
        };
        struct spool_finding b;
        struct spool_finding *two[] = { &f[0], &b };

        e.findings = two;
        e.n_findings = 2;
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            struct spool_writer *w = NULL;

            b = (struct spool_finding){ (char *)bad[i].category, (char *)bad[i].rule,
                                        (char *)bad[i].action, "e" };
            CU_ASSERT_EQUAL(spool_write(sp_dir, &e, id, &err), -1);
            CU_ASSERT(err != NULL && strstr(err, bad[i].expect) != NULL);
            if (err == NULL || strstr(err, bad[i].expect) == NULL)
                fprintf(stderr, "\n  %s: want \"%s\"", err ? err : "(none)", bad[i].expect);
            g_free(err);
            err = NULL;
            CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 0, &w, &err), 0);
            CU_ASSERT_EQUAL(spool_writer_write(w, "x", 1, &err), 0);
            CU_ASSERT_EQUAL(spool_writer_commit(&w, &e, NULL, &err), -1);
            CU_ASSERT(err != NULL && strstr(err, bad[i].expect) != NULL);
            CU_ASSERT_PTR_NULL(w);
            g_free(err);
            err = NULL;
        }
    }
    CU_ASSERT(spool_token_valid("departed-sender/sasl.v2_x"));
    CU_ASSERT_FALSE(spool_token_valid(""));
    CU_ASSERT_FALSE(spool_token_valid(NULL));
    CU_ASSERT_FALSE(spool_token_valid("a b"));
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), new0);

    /* an entry of before (no auth, no finding): none */
    {
        GString *s = base_entry();
        CU_ASSERT_EQUAL_FATAL(spool_parse(s->str, s->len, &r, &err), 0);
        CU_ASSERT_PTR_NULL(r->auth);
        CU_ASSERT_PTR_NULL(r->findings);
        CU_ASSERT_EQUAL(r->n_findings, 0);
        spool_entry_free(&r);
        g_string_free(s, TRUE);
    }
    g_bytes_unref(e.raw);
}

/* ---- the journal ---------------------------------------------------------- */

/* Every entry of every file in new/ whose queue id is qid, by id; the files
 * that held them removed. */
static GHashTable *take_entries(const char *qid, guint *failed_r)
{
    GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GPtrArray *ids = NULL;
    char *err = NULL;

    *failed_r = 0;
    CU_ASSERT_EQUAL_FATAL(spool_list(sp_dir, &ids, &err), 0);
    for (guint i = 0; i < ids->len; i++) {
        const char *name = g_ptr_array_index(ids, i);
        GPtrArray *es = NULL;
        guint failed = 0, ours = 0;

        if (spool_read_all(sp_dir, name, &es, &failed, NULL, &err) < 0) {
            g_free(err);        /* one an earlier test left on purpose */
            err = NULL;
            continue;
        }
        *failed_r += failed;
        for (guint k = 0; k < es->len; k++) {
            struct spool_entry *e = g_ptr_array_index(es, k);
            if (strcmp(e->queue_id, qid) == 0) {
                ours++;
                CU_ASSERT_PTR_NULL(g_hash_table_lookup(h, e->id));
                g_hash_table_insert(h, g_strdup(e->id), GINT_TO_POINTER(1));
            }
        }
        if (ours > 0)
            CU_ASSERT_EQUAL(spool_remove(sp_dir, name, &err), 0);
        g_ptr_array_free(es, TRUE);
    }
    g_ptr_array_free(ids, TRUE);
    return h;
}

/* Small entries from 8 threads share journals: every one reads back whole
 * and once, fewer syncs than entries, nothing in tmp/, no file per entry. */
static void test_journal(void)
{
    struct gc_job job = { .qid = "JOURNAL", .mem_max = 4096 };
    GHashTable *got;
    guint failed = 0;
    char *err = NULL;

    gc_run(&job, "");
    /* handed over when closed (or earlier, by age): journal/ empty */
    CU_ASSERT_EQUAL(spool_journal_close(&err), 0);
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    CU_ASSERT(count_dir("new") < GC_THREADS * GC_EACH / 4);
    got = take_entries("JOURNAL", &failed);
    CU_ASSERT_EQUAL(g_hash_table_size(got), GC_THREADS * GC_EACH);
    CU_ASSERT_EQUAL(failed, 0);
    g_hash_table_destroy(got);
    /* the timer hands a journal over by itself */
    {
        struct spool_writer *w = NULL;
        struct spool_entry env = { .time = 1, .queue_id = "LINGER" };
        int n = 0;

        CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 4096, &w, &err), 0);
        CU_ASSERT_EQUAL(spool_writer_write(w, "Subject: x\r\n\r\n", 14, &err), 0);
        CU_ASSERT_EQUAL(spool_writer_commit(&w, &env, NULL, &err), 0);
        CU_ASSERT_EQUAL(count_dir("journal"), 1);
        while (count_dir("journal") > 0 && n++ < 100)
            g_usleep(20000);
        CU_ASSERT_EQUAL(count_dir("journal"), 0);
        got = take_entries("LINGER", &failed);
        CU_ASSERT_EQUAL(g_hash_table_size(got), 1);
        g_hash_table_destroy(got);
    }
    CU_ASSERT_EQUAL(spool_journal_close(&err), 0);
}

/* A message that outgrows the writer's memory goes to tmp/ and is an entry
 * of its own; flush puts a small one in its file too. */
static void test_journal_spill(void)
{
    struct spool_entry env = { .time = 7, .queue_id = "SPILL" }, *e = NULL;
    struct spool_writer *w = NULL;
    char big[3000], *err = NULL, id[SPOOL_ID_MAX + 1];
    guint failed = 0;
    int n_new;
    GHashTable *got;

    memset(big, 'x', sizeof(big));
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 1000, &w, &err), 0);
    g_strlcpy(id, spool_writer_id(w), sizeof(id));
    CU_ASSERT_EQUAL(spool_writer_write(w, big, 600, &err), 0);
    CU_ASSERT_PTR_NULL(spool_writer_path(w));
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    CU_ASSERT_EQUAL(spool_writer_write(w, big, sizeof(big), &err), 0);
    CU_ASSERT_PTR_NOT_NULL(spool_writer_path(w));
    CU_ASSERT_EQUAL(count_dir("tmp"), 1);
    CU_ASSERT_STRING_EQUAL(spool_writer_id(w), id);     /* the id it was given */
    CU_ASSERT_EQUAL(spool_writer_commit(&w, &env, NULL, &err), 0);
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    CU_ASSERT_EQUAL_FATAL(spool_read(sp_dir, id, &e, &err), 0);
    CU_ASSERT_EQUAL(g_bytes_get_size(e->raw), 600 + sizeof(big));
    spool_entry_free(&e);
    CU_ASSERT_EQUAL(spool_remove(sp_dir, id, &err), 0);

    /* small, but flushed: read from its file (the milter's parse of it) */
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 1000, &w, &err), 0);
    CU_ASSERT_EQUAL(spool_writer_write(w, "Subject: s\r\n\r\nb\r\n", 17, &err), 0);
    CU_ASSERT_EQUAL(spool_writer_flush(w, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(spool_writer_path(w));
    CU_ASSERT_EQUAL(count_dir("tmp"), 1);
    spool_writer_abort(&w);
    CU_ASSERT_EQUAL(count_dir("tmp"), 0);
    /* aborted in memory: nothing anywhere; the journal its open made is
     * closed all the same, by the timer (which closed the last one and
     * waits for the next), and with no entry in it, removed: not handed
     * to ingest */
    n_new = count_dir("new");
    CU_ASSERT_EQUAL(count_dir("journal"), 1);
    for (int n = 0; count_dir("journal") > 0 && n < 100; n++)
        g_usleep(20000);
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), n_new);
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 1000, &w, &err), 0);
    CU_ASSERT_EQUAL(spool_writer_write(w, "x", 1, &err), 0);
    spool_writer_abort(&w);
    CU_ASSERT_EQUAL(count_dir("journal"), 1);
    for (int n = 0; count_dir("journal") > 0 && n < 100; n++)
        g_usleep(20000);
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), n_new);
    /* one by spool_journal_close() too */
    CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 1000, &w, &err), 0);
    spool_writer_abort(&w);
    CU_ASSERT_EQUAL(count_dir("journal"), 1);
    CU_ASSERT_EQUAL(spool_journal_close(&err), 0);
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), n_new);
    got = take_entries("SPILL", &failed);
    CU_ASSERT_EQUAL(g_hash_table_size(got), 0);
    g_hash_table_destroy(got);
}

/* Journal bytes with entries whose bodies are "Subject: N": written by the
 * writer, handed over, read back as a file (the caller frees). */
static GString *journal_of(int n, const char *qid)
{
    struct spool_entry env = { .time = 3, .queue_id = (char *)qid };
    GPtrArray *ids = NULL;
    GString *file = NULL;
    char *err = NULL;

    for (int i = 0; i < n; i++) {
        struct spool_writer *w = NULL;
        char body[32];
        int len = g_snprintf(body, sizeof(body), "Subject: %d\r\n\r\n", i);

        CU_ASSERT_EQUAL_FATAL(spool_writer_open(sp_dir, 4096, &w, &err), 0);
        CU_ASSERT_EQUAL(spool_writer_write(w, body, len, &err), 0);
        CU_ASSERT_EQUAL(spool_writer_commit(&w, &env, NULL, &err), 0);
    }
    CU_ASSERT_EQUAL(spool_journal_close(&err), 0);
    CU_ASSERT_EQUAL_FATAL(spool_list(sp_dir, &ids, &err), 0);
    for (guint i = 0; i < ids->len && file == NULL; i++) {
        char *p = entry_path("new", g_ptr_array_index(ids, i)), *data = NULL;
        gsize len = 0;

        if (g_file_get_contents(p, &data, &len, NULL) &&
            g_str_has_prefix(data, SPOOL_JOURNAL_MAGIC "\n") && strstr(data, qid) != NULL) {
            file = g_string_new_len(data, (gssize)len);
            unlink(p);
        }
        g_free(data);
        g_free(p);
    }
    g_ptr_array_free(ids, TRUE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    return file;
}

/* A damaged entry and a torn tail: the rest is read, those go to failed/
 * whole, with reasons; nothing is dropped. */
static void test_journal_damage(void)
{
    GString *j = journal_of(3, "DAMAGE");
    char name[SPOOL_ID_MAX + 1], *p, *err = NULL, *second, *data = NULL;
    GPtrArray *es = NULL, *reasons = NULL;
    guint failed = 0;
    size_t off2, tail_off;

    /* the second entry's message damaged: its sha256 no longer matches */
    second = strstr(strstr(j->str, "Subject: 1\r\n"), "1\r\n");
    *second = '9';
    off2 = (size_t)(g_strrstr_len(j->str, second - j->str, "\nentry ") + 1 - j->str);
    tail_off = j->len;
    g_string_append(j, "entry 1764556800.000001.1.0123456789abcdef 500\nCUSTOS-SPOOL 1\ntime");
    g_snprintf(name, sizeof(name), "1764556799.000001.%d.00000000000000aa", (int)getpid());
    p = entry_path("new", name);
    CU_ASSERT_TRUE_FATAL(g_file_set_contents(p, j->str, (gssize)j->len, NULL));
    CU_ASSERT_EQUAL_FATAL(spool_read_all(sp_dir, name, &es, &failed, &reasons, &err), 0);
    CU_ASSERT_EQUAL(es->len, 2);
    CU_ASSERT_EQUAL(failed, 2);
    CU_ASSERT_EQUAL_FATAL(reasons != NULL ? reasons->len : 0, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_ptr_array_index(reasons, 0), "sha256"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g_ptr_array_index(reasons, 1), "torn"));
    {
        /* the damaged entry kept as it was, under its id, with its reason */
        const char *l = j->str + off2 + 6;
        char id[SPOOL_ID_MAX + 1], *fp, *rp, *tp;
        size_t n = (size_t)(strchr(l, ' ') - l);
        gsize len = 0;

        memcpy(id, l, n);
        id[n] = '\0';
        fp = entry_path("failed", id);
        rp = g_strconcat(fp, ".reason", NULL);
        CU_ASSERT_TRUE(g_file_get_contents(fp, &data, &len, NULL));
        CU_ASSERT(data != NULL && g_str_has_prefix(data, SPOOL_MAGIC "\n") &&
                  strstr(data, "Subject: 9") != NULL);
        g_free(data);
        CU_ASSERT_TRUE(g_file_get_contents(rp, &data, NULL, NULL));
        CU_ASSERT(data != NULL && strstr(data, name) != NULL && strstr(data, "sha256") != NULL);
        g_free(data);
        /* the torn tail: every byte of it, named after the journal */
        tp = g_strdup_printf("%s/failed/%s.tail-%zu", sp_dir, name, tail_off);
        CU_ASSERT_TRUE(g_file_get_contents(tp, &data, &len, NULL));
        CU_ASSERT(len == j->len - tail_off && data != NULL &&
                  memcmp(data, j->str + tail_off, len) == 0);
        g_free(data);
        unlink(fp);
        unlink(rp);
        unlink(tp);
        g_free(tp);
        tp = g_strconcat(sp_dir, "/failed/", name, ".tail-", NULL);
        g_free(rp);
        rp = g_strdup_printf("%s%zu.reason", tp, tail_off);
        CU_ASSERT_TRUE(g_file_test(rp, G_FILE_TEST_EXISTS));
        unlink(rp);
        g_free(rp);
        g_free(tp);
        g_free(fp);
    }
    CU_ASSERT_STRING_EQUAL(((struct spool_entry *)g_ptr_array_index(es, 1))->queue_id, "DAMAGE");
    g_ptr_array_free(es, TRUE);
    g_ptr_array_free(reasons, TRUE);
    /* not a journal, not an entry: EINVAL, as for any entry that does not parse */
    CU_ASSERT_TRUE(g_file_set_contents(p, "CUSTOS-JOURNAL 2\n", -1, NULL));
    CU_ASSERT_EQUAL(spool_read_all(sp_dir, name, &es, &failed, NULL, &err), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    g_free(err);
    err = NULL;
    unlink(p);
    g_free(p);
    g_string_free(j, TRUE);
}

/* Journals no writer holds are moved to new/; one held (locked) stays, and
 * a .ID of a writer gone before naming its journal is removed. */
static void test_journal_recover(void)
{
    GString *j = journal_of(2, "RECOVER");
    char dead[SPOOL_ID_MAX + 1], live[SPOOL_ID_MAX + 1], *p, *q, *err = NULL;
    guint moved = 0, failed = 0;
    GHashTable *got;
    int fd;

    g_snprintf(dead, sizeof(dead), "1764556800.000002.%d.0123456789abcdef", (int)getpid());
    g_snprintf(live, sizeof(live), "1764556800.000003.1.0123456789abcdef");
    p = entry_path("journal", dead);
    CU_ASSERT_TRUE(g_file_set_contents(p, j->str, (gssize)j->len, NULL));
    g_free(p);
    p = entry_path("journal", live);
    CU_ASSERT_TRUE(g_file_set_contents(p, SPOOL_JOURNAL_MAGIC "\n", -1, NULL));
    fd = open(p, O_RDONLY | O_CLOEXEC);
    CU_ASSERT_EQUAL_FATAL(flock(fd, LOCK_EX | LOCK_NB), 0);    /* its writer's lock */
    q = g_strdup_printf("%s/journal/.1764556800.000004.1.0123456789abcdef", sp_dir);
    CU_ASSERT_TRUE(g_file_set_contents(q, SPOOL_JOURNAL_MAGIC "\n", -1, NULL));
    CU_ASSERT_EQUAL(spool_recover(sp_dir, &moved, &err), 0);
    CU_ASSERT_EQUAL(moved, 1);
    CU_ASSERT_EQUAL(count_dir("journal"), 1);
    CU_ASSERT_TRUE(g_file_test(p, G_FILE_TEST_EXISTS));
    CU_ASSERT_FALSE(g_file_test(q, G_FILE_TEST_EXISTS));
    got = take_entries("RECOVER", &failed);
    CU_ASSERT_EQUAL(g_hash_table_size(got), 2);
    g_hash_table_destroy(got);
    /* the lock let go (its writer gone): taken */
    close(fd);
    CU_ASSERT_EQUAL(spool_recover(sp_dir, &moved, &err), 0);
    CU_ASSERT_EQUAL(moved, 1);
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    {
        char *np = entry_path("new", live);
        CU_ASSERT_TRUE(g_file_test(np, G_FILE_TEST_EXISTS));
        unlink(np);
        g_free(np);
    }
    g_free(p);
    g_free(q);
    CU_ASSERT_EQUAL(spool_recover("/nonexistent/spool", &moved, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "/nonexistent/spool/journal") : NULL);
    g_free(err);
    g_string_free(j, TRUE);
}

/* spool_recover() run over and over (as every ingest pass does) while
 * writers open and hand over journal after journal: no append fails, no
 * entry is lost or read twice. */
#define RACE_CYCLES 300

static gpointer race_recover(gpointer arg)
{
    int *stop = arg;

    while (!g_atomic_int_get(stop)) {
        char *err = NULL;

        if (spool_recover(sp_dir, NULL, &err) < 0) {
            fprintf(stderr, "\n  recover: %s", err);
            g_free(err);
        }
    }
    return NULL;
}

static void test_journal_race(void)
{
    struct gc_job job = { .qid = "RACE", .mem_max = 4096, .each = RACE_CYCLES,
                          .close_each = 1 };
    GThread *rec[2], *wr[2];
    int stop = 0;
    guint failed = 0;
    GHashTable *got;

    for (int i = 0; i < 2; i++)
        rec[i] = g_thread_new("recover", race_recover, &stop);
    for (int i = 0; i < 2; i++)
        wr[i] = g_thread_new("writer", gc_writer, &job);
    for (int i = 0; i < 2; i++)
        g_thread_join(wr[i]);
    g_atomic_int_set(&stop, 1);
    for (int i = 0; i < 2; i++)
        g_thread_join(rec[i]);
    CU_ASSERT_EQUAL(job.failures, 0);
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    got = take_entries("RACE", &failed);
    CU_ASSERT_EQUAL(g_hash_table_size(got), (guint)(2 * RACE_CYCLES - job.failures));
    CU_ASSERT_EQUAL(failed, 0);
    g_hash_table_destroy(got);
}

/* One small entry committed into the journal; 0 or -1 (error in *err). */
static int journal_one(const char *qid, char **err)
{
    struct spool_entry env = { .time = 3, .queue_id = (char *)qid };
    struct spool_writer *w = NULL;

    if (spool_writer_open(sp_dir, 4096, &w, err) < 0)
        return -1;
    if (spool_writer_write(w, "Subject: s\r\n\r\nbody\r\n", 21, err) < 0) {
        spool_writer_abort(&w);
        return -1;
    }
    return spool_writer_commit(&w, &env, NULL, err);
}

/* A journal whose sync fails (CUSTOS_FAULT=journal-sync: EIO) is handed
 * over at once with only what was synced before: an entry whose sync
 * failed is never read back (its sender was answered 451), and a journal
 * with nothing synced in it is removed, not handed over. */
static void test_journal_sync_fail(void)
{
    char *err = NULL;
    int new0;
    guint failed = 0;
    GHashTable *got;

    CU_ASSERT_EQUAL(spool_journal_close(&err), 0);
    new0 = count_dir("new");
    /* the first sync fails: nothing left */
    setenv("CUSTOS_FAULT", "journal-sync", 1);
    CU_ASSERT_EQUAL(journal_one("SYNCFAIL", &err), -1);
    CU_ASSERT(err != NULL && strstr(err, "fdatasync(") != NULL &&
              strstr(err, g_strerror(EIO)) != NULL);
    g_free(err);
    err = NULL;
    unsetenv("CUSTOS_FAULT");
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), new0);
    /* one synced, then one whose sync fails: the first only */
    CU_ASSERT_EQUAL(journal_one("SYNCFAIL", &err), 0);
    setenv("CUSTOS_FAULT", "journal-sync", 1);
    CU_ASSERT_EQUAL(journal_one("SYNCFAIL", &err), -1);
    g_free(err);
    err = NULL;
    unsetenv("CUSTOS_FAULT");
    CU_ASSERT_EQUAL(count_dir("journal"), 0);
    CU_ASSERT_EQUAL(count_dir("new"), new0 + 1);
    got = take_entries("SYNCFAIL", &failed);
    CU_ASSERT_EQUAL(g_hash_table_size(got), 1);
    CU_ASSERT_EQUAL(failed, 0);
    g_hash_table_destroy(got);
    /* and the next goes into a new journal, as ever */
    CU_ASSERT_EQUAL(journal_one("SYNCFAIL", &err), 0);
    CU_ASSERT_EQUAL(spool_journal_close(&err), 0);
    got = take_entries("SYNCFAIL", &failed);
    CU_ASSERT_EQUAL(g_hash_table_size(got), 1);
    g_hash_table_destroy(got);
}

/* spool_init as root in a spool of another user: what it makes is that
 * user's and group's (custos-milter, that user, must write it); what was
 * there is left as it was; a file where a directory goes is an error that
 * names it. */
static void test_init_owner(void)
{
    struct passwd *pw = getpwnam("nobody");
    char *top = cut_tmpdir(), *spool = g_build_filename(top, "spool", NULL);
    char *sub = g_build_filename(spool, "new", NULL), *err = NULL;
    struct stat sb;

    if (geteuid() != 0 || pw == NULL) {
        printf("(not root, or no user nobody: skipped) ");
        goto out;
    }
    CU_ASSERT_EQUAL_FATAL(mkdir(spool, 0770), 0);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);             /* root's, already there */
    CU_ASSERT_EQUAL_FATAL(chown(spool, pw->pw_uid, pw->pw_gid), 0);
    CU_ASSERT_EQUAL(spool_init(spool, &err), 0);
    for (const char *const *n = (const char *const[]){ "tmp", "failed", "journal", NULL };
         *n != NULL; n++) {
        char *p = g_build_filename(spool, *n, NULL);
        CU_ASSERT(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == pw->pw_uid &&
                  sb.st_gid == pw->pw_gid);
        g_free(p);
    }
    CU_ASSERT(stat(sub, &sb) == 0 && sb.st_uid == 0);
    /* a file in the way */
    cut_rmtree(top);
    CU_ASSERT_EQUAL_FATAL(g_mkdir_with_parents(spool, 0770), 0);
    CU_ASSERT(g_file_set_contents(sub, "", 0, NULL));
    CU_ASSERT_EQUAL(spool_init(spool, &err), -1);
    CU_ASSERT(err != NULL && strstr(err, sub) != NULL);
out:
    g_free(err);
    cut_rmtree(top);
    g_free(sub);
    g_free(spool);
    g_free(top);
}

CUS_SUITE(spool)
{
    CU_pSuite s = CU_add_suite("spool", sp_init, sp_clean);
    CU_add_test(s, "every field round trips (escapes, UTF-8, empty, no rcpts)", test_round_trip);
    CU_add_test(s, "every parse error names its line and what is wrong", test_parse_errors);
    CU_add_test(s, "read errors name the file; errno tells gone from bad", test_read_errors);
    CU_add_test(s, "a failed entry keeps its bytes and says why", test_fail);
    CU_add_test(s, "list: oldest first, non-entries skipped", test_list);
    CU_add_test(s, "streaming writer: any chunking reads back the same (format 2)", test_stream);
    CU_add_test(s, "writers in 8 threads: every entry whole, new/ synced fewer times than "
                   "entries (group commit)", test_group_commit);
    CU_add_test(s, "format 2: torn or damaged trailers name the envelope line",
                test_stream_errors);
    CU_add_test(s, "streaming writer: abort, failed commit, sweep of dead writers",
                test_stream_fail);
    CU_add_test(s, "findings and auth round trip in both formats; bad tokens refused",
                test_findings);
    CU_add_test(s, "journal: small entries from 8 threads share files and syncs, each read "
                   "back once; handed over when closed or old", test_journal);
    CU_add_test(s, "journal: an entry that outgrows memory is a file of its own",
                test_journal_spill);
    CU_add_test(s, "journal: a damaged entry and a torn tail go to failed/ whole, the rest "
                   "is read", test_journal_damage);
    CU_add_test(s, "journal: one no writer holds is moved to new/, a held one stays",
                test_journal_recover);
    CU_add_test(s, "journal: recovery running all the while never takes a writer's journal",
                test_journal_race);
    CU_add_test(s, "journal: a failed sync hands it over with only what was synced before; "
                   "nothing synced, nothing handed over", test_journal_sync_fail);
    CU_add_test(s, "init as root in another user's spool: what it makes is that user's; a "
                   "file in the way named", test_init_owner);
}
