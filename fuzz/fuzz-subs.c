/*
 * fuzz-subs.c - libFuzzer target for the subscriptions file of a Maildir
 * (handover/subs.c)
 *
 * The input (up to its first NUL) is the successor's subscriptions file,
 * version 1 or 2. Parsing gives names, none empty. Subscribing the
 * Handover folders (names with listescape, '&', ',' and modified UTF-7,
 * plus one made of the input's first line) must keep the text as it was
 * (a missing last newline added), keep its format, add each name that
 * was not subscribed yet once, and give a text from which the parser
 * reads the old names, then the new ones; subscribing them again adds
 * nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/handover-maildir.h"

static void fuzz_fail(const char *what, const char *in, const char *detail)
{
    fprintf(stderr, "fuzz-subs: %s\n  file: %.300s\n  %.600s\n", what, in,
            detail != NULL ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("G_SLICE", "always-malloc", 1);
    return 0;
}

static int has(GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (strcmp(a->pdata[i], s) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fixed[] = {
        "Handover.wang\\2ewei.INBOX", "Handover.wang\\2ewei.&W6JiNw-.&Zg6P3A-",
        "Handover.wang\\2ewei.A&-B, Partners", "Handover.wang\\2ewei.Recovered",
    };
    char *in = g_strndup((const char *)data, size), *out, *out2, *first, *lvl = NULL;
    GPtrArray *old, *names = g_ptr_array_new_with_free_func(g_free), *now;
    int added = 0, added2 = 0, v2 = g_str_has_prefix(in, "V\t2\n\n");
    guint k;

    old = hov_subs_parse(in);
    for (guint i = 0; i < old->len; i++)
        if (*(const char *)old->pdata[i] == '\0')
            fuzz_fail("an empty name", in, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++)
        g_ptr_array_add(names, g_strdup(fixed[i]));
    first = g_strndup(in, strcspn(in, "\n"));
    if (hov_level_encode(first, HOV_ESC_LISTESCAPE, &lvl, NULL) == 0)
        g_ptr_array_add(names, g_strconcat("Handover.", lvl, NULL));
    g_free(lvl);
    g_free(first);

    out = hov_subs_merge(in, 0, names, &added);
    if (strncmp(out, in, strlen(in)) != 0)
        fuzz_fail("the old text was changed", in, out);
    if (g_str_has_prefix(out, "V\t2\n\n") != v2)
        fuzz_fail("the format changed", in, out);
    now = hov_subs_parse(out);
    if (now->len != old->len + (guint)added)
        fuzz_fail("not each name added once", in, out);
    for (k = 0; k < old->len; k++)
        if (strcmp(now->pdata[k], old->pdata[k]) != 0)
            fuzz_fail("an old name reads differently", in, now->pdata[k]);
    for (guint i = 0; i < names->len; i++)
        if (!has(now, names->pdata[i]))
            fuzz_fail("a name not subscribed", out, names->pdata[i]);
    out2 = hov_subs_merge(out, 0, names, &added2);
    if (added2 != 0 || strcmp(out2, out) != 0)
        fuzz_fail("subscribing again added something", out, out2);
    g_free(out2);
    g_free(out);
    g_ptr_array_free(now, TRUE);
    g_ptr_array_free(old, TRUE);
    g_ptr_array_free(names, TRUE);
    g_free(in);
    return 0;
}
