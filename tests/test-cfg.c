/*
 * test-cfg.c - custos.conf parsing: values, defaults, and every error names
 * the file, the line and the key.
 */
#include <stdio.h>
#include <string.h>
#include "cutest.h"
#include "custos/cfg.h"

static char *write_conf(const char *dir, const char *text)
{
    char *path = g_build_filename(dir, "custos.conf", NULL);
    g_file_set_contents(path, text, -1, NULL);
    return path;
}

static void test_cfg_values(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    char *path = write_conf(dir,
        "# comment\n[archive]\ndir = /srv/custos\nsegment_size = 1M\n"
        "dictionary = false\n\n[limits]\ndepth = 4\n[log]\nlevel = debug\n");
    struct cfg *cfg = NULL;

    CU_ASSERT_EQUAL_FATAL(cfg_load(path, &cfg, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg->arc_dir, "/srv/custos");
    CU_ASSERT_EQUAL(cfg->arc_segment_size, 1 << 20);
    CU_ASSERT_EQUAL(cfg->arc_dict, 0);
    CU_ASSERT_EQUAL(cfg->lim_depth, 4);
    CU_ASSERT_EQUAL(cfg->lim_parts, 1000); /* default kept */
    CU_ASSERT_EQUAL(cfg->log_level, 0);
    CU_ASSERT_PTR_NULL(cfg->arc_key_file);
    cfg_free(&cfg);
    CU_ASSERT_PTR_NULL(cfg);
    g_free(path);
    cut_rmtree(dir);
    g_free(dir);
}

static const struct {
    const char *text;
    const char *want[3];        /* substrings of the error */
} bad_cases[] = {
    { "[archive]\nfoo = 1\n", { ":2:", "unknown key \"foo\"", "[archive]" } },
    { "[nope]\n", { ":1:", "unknown group [nope]", NULL } },
    { "[archive]\n\nzstd_level = 99\n", { ":3:", "zstd_level", "out of range" } },
    { "[archive]\nzstd_level = x3\n", { ":2:", "zstd_level", "whole number" } },
    { "[archive]\ndir = var/rel\n", { ":2:", "dir", "absolute path" } },
    { "[archive]\nsegment_size = 12Q\n", { ":2:", "segment_size", "size" } },
    { "[log]\nlevel = loud\n", { ":2:", "level", "loud" } },
    { "[log]\nsyslog = maybe\n", { ":2:", "syslog", "true or false" } },
    { "dir = /x\n", { ":1:", "before any [group]", NULL } },
    { "[archive]\njust words\n", { ":2:", "key = value", NULL } },
    { "[archive\n", { ":1:", "bad group", NULL } },
};

static void test_cfg_errors(void)
{
    char *dir = cut_tmpdir();

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        char *path = write_conf(dir, bad_cases[i].text), *err = NULL;
        struct cfg *cfg = NULL;

        CU_ASSERT_EQUAL(cfg_load(path, &cfg, &err), -1);
        CU_ASSERT_PTR_NULL(cfg);
        CU_ASSERT_PTR_NOT_NULL_FATAL(err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
        for (int j = 0; j < 3 && bad_cases[i].want[j]; j++)
            if (strstr(err, bad_cases[i].want[j]) == NULL) {
                fprintf(stderr, "case %zu: \"%s\" not in \"%s\"\n", i, bad_cases[i].want[j], err);
                CU_FAIL("error text");
            }
        g_free(err);
        g_free(path);
    }
    cut_rmtree(dir);
    g_free(dir);
}

static void test_cfg_missing(void)
{
    char *err = NULL;
    struct cfg *cfg = NULL;

    CU_ASSERT_EQUAL(cfg_load("/nonexistent/custos.conf", &cfg, &err), -1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/custos.conf"));
    g_free(err);
}

static void test_cfg_sample(void)
{
    /* The shipped sample documents every key and loads as it is. */
    char *path = cut_src("conf/custos.conf.sample"), *err = NULL;
    struct cfg *cfg = NULL;

    CU_ASSERT_EQUAL(cfg_load(path, &cfg, &err), 0);
    if (err)
        fprintf(stderr, "%s\n", err);
    cfg_free(&cfg);
    g_free(err);
    g_free(path);
}

CUS_SUITE(cfg)
{
    CU_pSuite s = CU_add_suite("cfg", NULL, NULL);
    CU_add_test(s, "values and defaults", test_cfg_values);
    CU_add_test(s, "errors name file, line, key", test_cfg_errors);
    CU_add_test(s, "missing file", test_cfg_missing);
    CU_add_test(s, "sample config loads", test_cfg_sample);
}
