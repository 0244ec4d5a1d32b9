/*
 * fuzz-dettext.c - libFuzzer target for the detectors' text functions
 *
 * The input is any bytes of mail text: det_text_norm() must give valid
 * UTF-8 that normalising again leaves as it is (NFKC is idempotent) and
 * with no invisible character left; det_text_unquoted() a prefix-ordered
 * subset of its lines; det_account_scan() hits inside the text, ordered,
 * each passing its checksum, their excerpts and masks valid UTF-8 without
 * the whole number; det_text_near() and det_mask_*() on what it finds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/det-account.h"
#include "custos/det-text.h"

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz-dettext: %s: %.600s\n", what, detail != NULL ? detail : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *words[] = { "账号", "iban", "beneficiary", "户名", NULL };
    char *norm = det_text_norm((const char *)data, (gssize)size), *again, *own;
    size_t n = strlen(norm);
    GPtrArray *hits;
    size_t prev_end = 0;

    if (!g_utf8_validate(norm, -1, NULL))
        fuzz_fail("normalised text not UTF-8", norm);
    for (const char *p = norm; *p != '\0'; p = g_utf8_next_char(p))
        if (det_text_is_invisible(g_utf8_get_char(p)))
            fuzz_fail("invisible character left", norm);
    again = det_text_norm(norm, -1);
    if (strcmp(again, norm) != 0)
        fuzz_fail("normalising twice changes the text", norm);
    own = det_text_unquoted(norm, n);
    if (strlen(own) > n || !g_utf8_validate(own, -1, NULL))
        fuzz_fail("unquoted text longer or not UTF-8", own);
    hits = det_account_scan(norm, n, 64);
    for (guint i = 0; i < hits->len; i++) {
        const struct det_account_hit *h = hits->pdata[i];
        char *mask, *x;

        if (h->start >= h->end || h->end > n || h->start < prev_end)
            fuzz_fail("hit outside the text or out of order", norm);
        prev_end = h->end;
        if (h->kind == DET_ACCOUNT_CARD ? !det_luhn_ok(h->number) : !det_iban_ok(h->number))
            fuzz_fail("hit fails its checksum", h->number);
        mask = det_mask_number(h->number);
        x = det_text_excerpt(norm, n, h->start, h->end, 16, mask);
        if (!g_utf8_validate(x, -1, NULL) || strstr(x, h->number) != NULL)
            fuzz_fail("excerpt not UTF-8 or not masked", x);
        (void)det_text_near(norm, n, h->start, h->end, 40, words);
        g_free(mask);
        g_free(x);
    }
    g_ptr_array_free(hits, TRUE);
    {
        char *m1 = det_mask_phone(norm), *m2 = det_mask_addr(norm);
        if (!g_utf8_validate(m2, -1, NULL))
            fuzz_fail("masked address not UTF-8", m2);
        g_free(m1);
        g_free(m2);
    }
    g_free(norm);
    g_free(again);
    g_free(own);
    return 0;
}
