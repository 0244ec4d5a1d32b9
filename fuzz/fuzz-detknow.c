/*
 * fuzz-detknow.c - libFuzzer target for finding customer data in text
 *
 * The input is any bytes of mail text, normalised (det_text_norm) and
 * scanned (det_know_scan) against a fixed set of customers: every item
 * found must belong to one of them, be valid UTF-8 and be in the text
 * (an address as written, ASCII case aside; a phone whose key is the
 * customer's; a name of the list); the same text scanned again finds the
 * same items. det_phone_key() of the input: NULL, or 7 to 10 digits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/det-know.h"
#include "custos/det-text.h"
#include "custos/directory.h"

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz-detknow: %s: %.600s\n", what, detail != NULL ? detail : "");
    abort();
}

static struct det_know *know(void)
{
    static struct det_know *k;
    static const char *const rows[][5] = {
        /* name, domains, contacts, phones, source */
        { "北京星辰科技有限公司", "xingchen.example", "purchasing@xingchen.example",
          "+861088880000;01088880001;+8613911112222", "import" },
        { "Acme Trading, Ltd.", "acme.example", "buyer@acme.example", "+14155550100",
          "import" },
        { "深圳个体户张先生", "", "zhang.xiansheng@163.com", "+8613500000000", "import" },
        { "hongyuan.example", "hongyuan.example", "", "+862166661234", "learn" },
    };

    if (k == NULL) {
        /* kept for the process's life */
        GPtrArray *custs = g_ptr_array_new();
        for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
            struct dir_customer *c = dir_customer_new();
            GPtrArray *lists[3] = { c->domains, c->contacts, c->phones };
            c->id = (gint64)i + 1;
            g_free(c->name);
            c->name = g_strdup(rows[i][0]);
            g_free(c->source);
            c->source = g_strdup(rows[i][4]);
            for (int l = 0; l < 3; l++) {
                char **v = g_strsplit(rows[i][l + 1], ";", -1);
                for (int j = 0; v[j] != NULL; j++)
                    if (*v[j])
                        g_ptr_array_add(lists[l], g_strdup(v[j]));
                g_strfreev(v);
            }
            g_ptr_array_add(custs, c);
        }
        k = det_know_new(custs, 4);
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *norm = det_text_norm((const char *)data, (gssize)size), *raw, *key;
    GHashTable *items = det_items_new(), *again = det_items_new();
    GHashTableIter it;
    gpointer kp, vp;
    size_t n = strlen(norm);

    det_know_scan(know(), norm, n, items);
    det_know_scan(know(), norm, n, again);
    if (g_hash_table_size(items) != g_hash_table_size(again))
        fuzz_fail("a second scan found something else", norm);
    g_hash_table_iter_init(&it, items);
    while (g_hash_table_iter_next(&it, &kp, &vp)) {
        const struct det_item *item = vp;
        if (!g_hash_table_contains(again, kp))
            fuzz_fail("a second scan found something else", kp);
        if (item->cust == NULL || item->value == NULL || !g_utf8_validate(item->value, -1, NULL))
            fuzz_fail("item without customer or not UTF-8", kp);
        if (item->kind == DET_ITEM_ADDR) {
            char *low = g_ascii_strdown(norm, -1);
            if (strstr(low, item->value) == NULL)
                fuzz_fail("address not in the text", item->value);
            g_free(low);
        } else if (item->kind == DET_ITEM_PHONE) {
            char *k = det_phone_key(item->value);
            if (k == NULL || strcmp((const char *)kp + 2, k) != 0)
                fuzz_fail("phone and its key differ", item->value);
            g_free(k);
        }
    }
    raw = g_strndup((const char *)data, size);
    if ((key = det_phone_key(raw)) != NULL) {
        size_t kl = strlen(key);
        if (kl < 7 || kl > 10 || strspn(key, "0123456789") != kl)
            fuzz_fail("phone key", key);
    }
    g_free(key);
    g_free(raw);
    g_hash_table_destroy(items);
    g_hash_table_destroy(again);
    g_free(norm);
    return 0;
}
