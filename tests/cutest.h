/*
 * cutest.h - what every CUnit test file includes
 *
 * A test file registers its suites in one function declared with
 * CUS_SUITE(name) at the start of a line; the Makefile collects them.
 * Environment: CUSTOS_CORPUS (real mail, see tests/data/README),
 * CUSTOS_BIN (the build dir with the programs), CUSTOS_SRC (the source tree).
 */
#ifndef CUSTOS_CUTEST_H
#define CUSTOS_CUTEST_H

#include <stdarg.h>
#include <CUnit/CUnit.h>
#include <glib.h>

#define CUS_SUITE(name) void cus_suite_##name(void)

/* A fresh temp directory for a test, removed by cut_rmtree(). */
char *cut_tmpdir(void);
void cut_rmtree(const char *dir);
/* Path under $CUSTOS_CORPUS / $CUSTOS_SRC / $CUSTOS_BIN (g_free). */
char *cut_corpus(const char *rel);
char *cut_src(const char *rel);
char *cut_bin(const char *rel);
/* Run argv, capturing stdout and stderr (g_free; a NULL pointer drops
 * that output); returns exit status or -1. */
int cut_run(char **argv, char **out_r, char **err_r);
/* cut_run() of "bin -c conf ARGS..." (ap: strings, then NULL). */
int cut_cli(const char *bin, const char *conf, char **out_r, char **err_r, va_list ap);

#endif
