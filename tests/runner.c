/*
 * runner.c - the one CUnit runner for every suite (make check)
 *
 * run-tests [SUITE...]: with names, only suites whose name starts with one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <CUnit/Basic.h>
#include "cutest.h"

#define X(name) CUS_SUITE(name);
#include "suites.gen.h"
#undef X

char *cut_tmpdir(void)
{
    char *t = g_strdup("/tmp/custos-test-XXXXXX");
    if (g_mkdtemp(t) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return t;
}

void cut_rmtree(const char *dir)
{
    char *argv[] = { "rm", "-rf", (char *)dir, NULL };
    if (dir != NULL && strncmp(dir, "/tmp/custos-test-", 17) == 0)
        g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     NULL, NULL, NULL, NULL);
}

static char *env_path(const char *var, const char *dflt, const char *rel)
{
    const char *base = getenv(var);
    return g_build_filename(base ? base : dflt, rel, NULL);
}

char *cut_corpus(const char *rel) { return env_path("CUSTOS_CORPUS", "var/corpus", rel); }
char *cut_src(const char *rel) { return env_path("CUSTOS_SRC", ".", rel); }
char *cut_bin(const char *rel) { return env_path("CUSTOS_BIN", "build", rel); }

int cut_run(char **argv, char **out_r, char **err_r)
{
    int status;
    GError *err = NULL;
    char *out = NULL, *errs = NULL;

    if (out_r != NULL)
        *out_r = NULL;
    if (err_r != NULL)
        *err_r = NULL;
    if (!g_spawn_sync(NULL, argv, NULL, 0, NULL, NULL, &out, &errs, &status, &err)) {
        fprintf(stderr, "spawn %s: %s\n", argv[0], err->message);
        g_error_free(err);
        return -1;
    }
    if (out_r != NULL)
        *out_r = out;
    else
        g_free(out);
    if (err_r != NULL)
        *err_r = errs;
    else
        g_free(errs);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int cut_cli(const char *bin, const char *conf, char **out_r, char **err_r, va_list ap)
{
    GPtrArray *argv = g_ptr_array_new();
    const char *a;
    int rc;

    g_ptr_array_add(argv, (char *)bin);
    g_ptr_array_add(argv, "-c");
    g_ptr_array_add(argv, (char *)conf);
    while ((a = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(argv, (char *)a);
    g_ptr_array_add(argv, NULL);
    rc = cut_run((char **)argv->pdata, out_r, err_r);
    g_ptr_array_free(argv, TRUE);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned int failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
#define X(name) cus_suite_##name();
#include "suites.gen.h"
#undef X
    if (argc > 1) {
        /* Deactivate suites not named on the command line. */
        CU_pSuite s;
        for (s = CU_get_registry()->pSuite; s != NULL; s = s->pNext) {
            int keep = 0;
            for (int i = 1; i < argc; i++)
                if (strncmp(s->pName, argv[i], strlen(argv[i])) == 0)
                    keep = 1;
            CU_set_suite_active(s, keep);
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
