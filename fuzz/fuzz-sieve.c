/*
 * fuzz-sieve.c - libFuzzer target for the Sieve redirect scanner of the
 * forwarding audit (handover/forwards.c)
 *
 * The input (up to its first NUL) is a leaver's Sieve script, any bytes.
 * Scanning must succeed or fail with a message; on success each redirect
 * has a destination and a span inside the text, in order, not
 * overlapping, starting with the word "redirect" and ending with ';'.
 * Disabling them (hov_sieve_keep, what apply writes) must leave a script
 * that scans again, with no redirect left and everything outside the
 * spans kept byte for byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/handover-forwards.h"

static void fuzz_fail(const char *what, const char *in, const char *detail)
{
    fprintf(stderr, "fuzz-sieve: %s\n  script: %.300s\n  %.600s\n", what, in,
            detail != NULL ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("G_SLICE", "always-malloc", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = g_strndup((const char *)data, size), *err = NULL, *kept;
    size_t len = strlen(in);
    GPtrArray *dests = NULL, *again = NULL;
    GArray *spans = NULL;
    gsize last = 0;

    if (hov_sieve_redirects(in, &dests, &spans, &err) < 0) {
        if (err == NULL || strstr(err, "does not parse") == NULL)
            fuzz_fail("an error without a message", in, err);
        g_free(err);
        g_free(in);
        return 0;
    }
    if (spans->len != 2 * dests->len)
        fuzz_fail("one span per redirect", in, NULL);
    for (guint i = 0; i < dests->len; i++) {
        gsize s = g_array_index(spans, gsize, 2 * i), e = g_array_index(spans, gsize, 2 * i + 1);
        if (dests->pdata[i] == NULL)
            fuzz_fail("a redirect without a destination", in, NULL);
        if (s < last || e <= s || e > len)
            fuzz_fail("spans out of order or outside the text", in, NULL);
        if (e - s < 9 || g_ascii_strncasecmp(in + s, "redirect", 8) != 0 || in[e - 1] != ';')
            fuzz_fail("a span that is not a redirect command", in, in + s);
        last = e;
    }
    kept = hov_sieve_keep(in, spans, "fuzz");
    if (hov_sieve_redirects(kept, &again, NULL, &err) < 0)
        fuzz_fail("the disabled script does not scan", kept, err);
    if (again->len != 0)
        fuzz_fail("a redirect left after disabling", kept, again->pdata[0]);
    {
        /* outside the spans, the bytes as they were */
        gsize from = 0, at = 0;
        for (guint i = 0; i <= dests->len; i++) {
            gsize s = i < dests->len ? g_array_index(spans, gsize, 2 * i) : len;
            const char *nl = NULL;
            if (strncmp(kept + at, in + from, s - from) != 0)
                fuzz_fail("text outside the redirects changed", in, kept);
            at += s - from;
            if (i == dests->len)
                break;
            if (!g_str_has_prefix(kept + at, "keep; # custos-handover fuzz disabled: ") ||
                (nl = strchr(kept + at, '\n')) == NULL)
                fuzz_fail("a redirect not replaced by keep", in, kept + at);
            at = (gsize)(nl + 1 - kept);
            from = g_array_index(spans, gsize, 2 * i + 1);
        }
        if (kept[at] != '\0')
            fuzz_fail("the disabled script is longer", in, kept);
    }
    g_free(kept);
    g_ptr_array_free(again, TRUE);
    g_ptr_array_free(dests, TRUE);
    g_array_free(spans, TRUE);
    g_free(in);
    return 0;
}
