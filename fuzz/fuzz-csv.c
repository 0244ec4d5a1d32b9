/*
 * fuzz-csv.c - libFuzzer target for the CSV reader and the directory's
 * normalisers
 *
 * The input is read as a CSV file (csv_open: UTF-8 or GB18030 decoding,
 * then every record). An input that does not decode must fail with a
 * message naming the file; every record's fields must be valid UTF-8
 * within the bounds of csv.h, and a malformed record must be reported as
 * "NAME:LINE: ...". Every field also goes through each normaliser of
 * directory.h: a result must be valid UTF-8 and normalised (normalising it
 * again gives it back), an error must say something.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/csv.h"
#include "custos/directory.h"

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz-csv: %s: %.600s\n", what, detail != NULL ? detail : "");
    abort();
}

static int (*const norms[])(const char *, char **, char **) = {
    dir_norm_addr, dir_norm_domain, dir_norm_phone, dir_norm_account, dir_norm_date,
    dir_norm_text,
};

static void check_norms(const char *field)
{
    for (size_t i = 0; i < G_N_ELEMENTS(norms); i++) {
        char *out = NULL, *again = NULL, *err = NULL;

        if (norms[i](field, &out, &err) == 0) {
            if (out == NULL || !g_utf8_validate(out, -1, NULL))
                fuzz_fail("normaliser result not UTF-8", field);
            if (norms[i](out, &again, NULL) != 0 || strcmp(again, out) != 0)
                fuzz_fail("normaliser result not stable", out);
        } else if (out != NULL || err == NULL || *err == '\0') {
            fuzz_fail("normaliser error without a message", field);
        }
        g_free(out);
        g_free(again);
        g_free(err);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("G_SLICE", "always-malloc", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct csv *c = NULL;
    GPtrArray *f;
    char *err = NULL;
    int line, rc, last = 0;

    if (csv_open("fuzz.csv", data, size, &c, &err) < 0) {
        if (c != NULL || err == NULL || strncmp(err, "fuzz.csv", 8) != 0)
            fuzz_fail("open error without the name", err);
        g_free(err);
        return 0;
    }
    while ((rc = csv_next(c, &f, &line, &err)) != 0) {
        if (line < last)
            fuzz_fail("line numbers go back", "");
        last = line;
        if (rc < 0) {
            if (err == NULL || strncmp(err, "fuzz.csv:", 9) != 0)
                fuzz_fail("record error without NAME:LINE", err);
            g_free(err);
            err = NULL;
            continue;
        }
        if (f->len == 0 || f->len > CSV_MAX_FIELDS)
            fuzz_fail("field count out of bounds", "");
        for (guint i = 0; i < f->len; i++) {
            const char *v = f->pdata[i];
            if (strlen(v) > CSV_MAX_FIELD || !g_utf8_validate(v, -1, NULL))
                fuzz_fail("field too long or not UTF-8", v);
            check_norms(v);
        }
    }
    csv_free(&c);
    return 0;
}
