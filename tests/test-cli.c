/*
 * test-cli.c - custos-archive as an admin runs it: commands, output, and
 * every bad input giving a clear message and a non-zero exit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cutest.h"

static char *cli_dir, *cli_conf, *cli_bin;

static int cli_init(void)
{
    char *text;

    cli_dir = cut_tmpdir();
    cli_conf = g_build_filename(cli_dir, "custos.conf", NULL);
    cli_bin = cut_bin("custos-archive");
    text = g_strdup_printf("[archive]\ndir = %s/archive\n", cli_dir);
    g_file_set_contents(cli_conf, text, -1, NULL);
    g_free(text);
    return 0;
}

static int cli_clean(void)
{
    cut_rmtree(cli_dir);
    g_free(cli_dir);
    g_free(cli_conf);
    g_free(cli_bin);
    return 0;
}

/* Run custos-archive -c CONF ARGS...; NULL-terminated. */
static int cli(char **out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = cut_cli(cli_bin, cli_conf, out, err, ap);
    va_end(ap);
    return rc;
}

static void test_cli_init(void)
{
    char *out = NULL, *err = NULL, *adir = g_build_filename(cli_dir, "archive", NULL);
    struct stat st;

    CU_ASSERT_EQUAL(cli(&out, &err, "init", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(stat(adir, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 077, 0);   /* no access for others */
    g_free(out); g_free(err);
    /* again: idempotent */
    CU_ASSERT_EQUAL(cli(&out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    g_free(adir);
}

static void test_cli_import_search_show(void)
{
    char *out = NULL, *err = NULL, *cjk = cut_src("tests/data/cjk");
    char *raw_path = NULL, *file = NULL, *id = NULL;
    gsize flen;
    GDir *d;
    const char *name;

    CU_ASSERT_EQUAL(cli(&out, &err, "import", cjk, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "imported"));
    g_free(out); g_free(err);

    /* Chinese in a run of Chinese, from a GB2312-labelled message. */
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--count", "客户", NULL), 0);
    CU_ASSERT(atoi(out) >= 1);
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--json", "--limit", "1", "客户", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"id\":"));
    for (const char *k = "date\0from\0to\0cc\0bcc\0subject\0size\0attachments\0sha256\0"
                         "message_id\0"; *k; k += strlen(k) + 1) {
        char *key = g_strdup_printf("\"%s\":", k);
        if (strstr(out, key) == NULL) {
            fprintf(stderr, "--json lacks %s: %s\n", key, out);
            CU_FAIL("json key");
        }
        g_free(key);
    }
    id = g_strndup(out + 6, strspn(out + 6, "0123456789"));
    g_free(out); g_free(err);

    /* show prints decoded headers and text; show --raw the exact bytes. */
    CU_ASSERT_EQUAL(cli(&out, &err, "show", id, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Subject: "));
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--json", "--limit", "1", "--offset", "0",
                        "客户", NULL), 0);
    g_free(out); g_free(err);

    /* Each cjk file: find it by sha256 and compare show --raw with the file. */
    d = g_dir_open(cjk, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((name = g_dir_read_name(d)) != NULL) {
        GChecksum *ck;
        char *q, *sid;
        if (!g_str_has_suffix(name, ".eml"))
            continue;
        raw_path = g_build_filename(cjk, name, NULL);
        g_file_get_contents(raw_path, &file, &flen, NULL);
        ck = g_checksum_new(G_CHECKSUM_SHA256);
        g_checksum_update(ck, (guchar *)file, (gssize)flen);
        q = g_strdup_printf("sha256:%s", g_checksum_get_string(ck));
        g_checksum_free(ck);
        CU_ASSERT_EQUAL(cli(&out, &err, "search", "--json", q, NULL), 0);
        CU_ASSERT(strncmp(out, "{\"id\":", 6) == 0);
        sid = g_strndup(out + 6, strspn(out + 6, "0123456789"));
        g_free(out); g_free(err);
        CU_ASSERT_EQUAL(cli(&out, &err, "show", "--raw", sid, NULL), 0);
        if (out == NULL || strlen(out) != strlen(file) || strcmp(out, file) != 0) {
            fprintf(stderr, "show --raw differs: %s\n", name);
            CU_FAIL("show --raw byte-exact");
        }
        g_free(out); g_free(err);
        g_free(sid); g_free(q); g_free(file); g_free(raw_path);
    }
    g_dir_close(d);

    CU_ASSERT_EQUAL(cli(&out, &err, "stats", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"messages\":"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"compression_ratio\":"));
    g_free(out); g_free(err);
    g_free(id);
    g_free(cjk);
}

/* Bad input: a clear message naming the input, a non-zero exit. */
static void test_cli_errors(void)
{
    char *out = NULL, *err = NULL, *badconf = g_build_filename(cli_dir, "bad.conf", NULL);
    char *nofile = g_build_filename(cli_dir, "no-such-file.eml", NULL);
    char *argv_bad[] = { cli_bin, "-c", badconf, "stats", NULL };
    char *argv_missing[] = { cli_bin, "-c", "/nonexistent/custos.conf", "stats", NULL };

    CU_ASSERT_EQUAL(cli(&out, &err, "search", "(unbalanced", NULL), 65);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "column"));
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL(cli(&out, &err, "show", "999999", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "999999"));
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL(cli(&out, &err, "show", "abc", NULL), 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "abc"));
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL(cli(&out, &err, "import", nofile, NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, nofile));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "1 skipped"));
    g_free(out); g_free(err);

    /* Not mail: binary data (an SQLite file), named and skipped. */
    {
        char *db = g_build_filename(cli_dir, "archive", "index.db", NULL);

        CU_ASSERT_EQUAL(cli(&out, &err, "import", db, NULL), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, db));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a mail message"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "0 new"));
        g_free(out); g_free(err);
        g_free(db);
    }

    /* A zip member with a Chinese name is named as it is (in any locale). */
    {
        char *zip = g_build_filename(cli_dir, "附件.zip", NULL);
        char *py = g_strdup_printf("import zipfile\nz = zipfile.ZipFile('%s', 'w')\n"
                                   "z.writestr('图片.png', b'PNG\\0binary')\nz.close()\n",
                                   zip);
        char *argv[] = { "/usr/bin/python3", "-c", py, NULL };

        CU_ASSERT_EQUAL_FATAL(cut_run(argv, NULL, NULL), 0);
        g_setenv("LC_ALL", "C", TRUE);
        CU_ASSERT_EQUAL(cli(&out, &err, "import", zip, NULL), 1);
        g_unsetenv("LC_ALL");
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "附件.zip/图片.png: not a mail message"));
        g_free(out); g_free(err);
        g_free(py);
        g_free(zip);
    }

    CU_ASSERT_EQUAL(cli(&out, &err, "frobnicate", NULL), 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "frobnicate"));
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL(cli(&out, &err, "search", "--limit", "x", "a", NULL), 64);
    g_free(out); g_free(err);

    g_file_set_contents(badconf, "[archive]\ndir = /tmp/x\ncolour = blue\n", -1, NULL);
    CU_ASSERT_EQUAL(cut_run(argv_bad, &out, &err), 78);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, badconf));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "colour"));
    g_free(out); g_free(err);

    CU_ASSERT_EQUAL(cut_run(argv_missing, &out, &err), 78);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/custos.conf"));
    g_free(out); g_free(err);

    g_free(badconf);
    g_free(nofile);
}

static void test_cli_no_archive(void)
{
    char *out = NULL, *err = NULL, *conf = g_build_filename(cli_dir, "empty.conf", NULL);
    char *text = g_strdup_printf("[archive]\ndir = %s/nothing-here\n", cli_dir);
    char *argv[] = { cli_bin, "-c", conf, "search", "x", NULL };

    g_file_set_contents(conf, text, -1, NULL);
    CU_ASSERT_EQUAL(cut_run(argv, &out, &err), 74);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nothing-here"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "init"));
    g_free(out); g_free(err); g_free(conf); g_free(text);
}

CUS_SUITE(cli)
{
    CU_pSuite s = CU_add_suite("cli", cli_init, cli_clean);
    CU_add_test(s, "init creates a private archive", test_cli_init);
    CU_add_test(s, "import, search, show, show --raw, stats", test_cli_import_search_show);
    CU_add_test(s, "bad input: clear message, non-zero exit", test_cli_errors);
    CU_add_test(s, "no archive yet", test_cli_no_archive);
}
