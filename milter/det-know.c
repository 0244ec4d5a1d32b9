/*
 * det-know.c - the directory's customers in memory, and finding them in text
 *
 * The snapshot is built from dir_list(DIR_CUSTOMERS) and never changed:
 * a rebuild makes a new one and swaps it in; a message keeps the one it
 * started with (reference counted). Text is scanned in one pass per kind:
 * addresses around each '@', phone numbers as runs of digits and
 * separators, names by a hash of their first two characters at every
 * character of the normalised text (det_text_norm, ASCII case folded).
 */
#include <string.h>
#include "custos/det-know.h"
#include "custos/det-text.h"
#include "custos/log.h"
#include "custos/util.h"

struct det_name {
    char *norm;                 /* normalised, ASCII lower case */
    size_t len;
    const struct dir_customer *cust;
};

struct det_know {
    gint refs;
    char *stamp;
    int name_min;
    GPtrArray *custs;           /* struct dir_customer * (owned) */
    GHashTable *contacts;       /* addr -> customer */
    GHashTable *domains;        /* domain -> customer */
    GHashTable *phones;         /* det_phone_key -> customer */
    GHashTable *names;          /* first two characters -> GPtrArray of struct det_name * */
    guint8 name_pairs[65536 / 8];   /* the first two bytes of each names key, a bit each */
    char name_firsts[17];       /* every first byte of a name (both cases), if 16 or fewer */
};

static GMutex know_lock;
static struct det_know *know_cur;
static gint64 know_checked;     /* monotonic seconds of the last stamp check */

static void name_free(gpointer p)
{
    struct det_name *n = p;

    g_free(n->norm);
    g_free(n);
}

static void know_free(struct det_know *k)
{
    g_free(k->stamp);
    g_hash_table_destroy(k->contacts);
    g_hash_table_destroy(k->domains);
    g_hash_table_destroy(k->phones);
    g_hash_table_destroy(k->names);
    g_ptr_array_free(k->custs, TRUE);
    g_free(k);
}

void det_know_unref(struct det_know **kp)
{
    struct det_know *k = *kp;

    *kp = NULL;
    if (k != NULL && g_atomic_int_dec_and_test(&k->refs))
        know_free(k);
}

void det_know_reset(void)
{
    struct det_know *old;

    g_mutex_lock(&know_lock);
    old = know_cur;
    know_cur = NULL;
    g_mutex_unlock(&know_lock);
    det_know_unref(&old);
}

char *det_phone_key(const char *phone)
{
    char digits[32];
    size_t n = 0, total = 0;

    for (const char *p = phone; *p; p++)
        if (g_ascii_isdigit(*p)) {
            if (n < sizeof(digits) - 1)
                digits[n++] = *p;
            total++;
        }
    if (total < 7 || total > 15)
        return NULL;
    digits[n] = '\0';
    return g_strdup(n > 10 ? digits + n - 10 : digits);
}

/* s in ASCII lower case, in place (g_ascii_tolower inline: it runs over
 * whole bodies). */
static char *lower(char *s)
{
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 'a' - 'A';
    return s;
}

/* Normalised, ASCII case folded (what names are matched as). */
static char *fold(const char *s, gssize len)
{
    return lower(det_text_norm(s, len));
}

/* The key of the names table: the first two characters' bytes. */
static size_t key_len(const char *s, size_t len)
{
    const char *p = s, *end = s + len;

    for (int i = 0; i < 2 && p < end; i++)
        p = g_utf8_next_char(p);
    return p <= end ? (size_t)(p - s) : len;
}

static guint name_pair(const char *p)
{
    return (guint)(guchar)g_ascii_tolower(p[0]) << 8 | (guchar)g_ascii_tolower(p[1]);
}

static void firsts_add(GString *firsts, char c)
{
    if (c != '\0' && memchr(firsts->str, c, firsts->len) == NULL)
        g_string_append_c(firsts, c);
}

static struct det_know *know_build(GPtrArray *custs, const char *stamp, int name_min)
{
    struct det_know *k = g_new0(struct det_know, 1);
    GString *firsts;

    k->refs = 1;
    k->stamp = g_strdup(stamp);
    k->name_min = name_min;
    k->custs = custs;
    k->contacts = g_hash_table_new(g_str_hash, g_str_equal);
    k->domains = g_hash_table_new(g_str_hash, g_str_equal);
    k->phones = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    k->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                     (GDestroyNotify)g_ptr_array_unref);
    firsts = g_string_new(NULL);
    for (guint i = 0; i < custs->len; i++) {
        const struct dir_customer *c = custs->pdata[i];
        for (guint j = 0; j < c->contacts->len; j++)
            g_hash_table_insert(k->contacts, c->contacts->pdata[j], (gpointer)c);
        for (guint j = 0; j < c->domains->len; j++)
            g_hash_table_insert(k->domains, c->domains->pdata[j], (gpointer)c);
        for (guint j = 0; j < c->phones->len; j++) {
            char *key = det_phone_key(c->phones->pdata[j]);
            if (key != NULL)
                g_hash_table_replace(k->phones, key, (gpointer)c);
        }
        /* a learned customer's name is its domain: found as addresses */
        if (strcmp(c->source, "learn") != 0 &&
            g_utf8_strlen(c->name, -1) >= (glong)MAX(name_min, 2)) {
            struct det_name *n = g_new0(struct det_name, 1);
            GPtrArray *list;
            char *key;
            n->norm = fold(c->name, -1);
            n->len = strlen(n->norm);
            n->cust = c;
            key = g_strndup(n->norm, key_len(n->norm, n->len));
            if (n->len >= 2) {
                guint pair = name_pair(n->norm);
                k->name_pairs[pair >> 3] |= 1 << (pair & 7);
            }
            firsts_add(firsts, n->norm[0]);
            firsts_add(firsts, g_ascii_toupper(n->norm[0]));
            if ((list = g_hash_table_lookup(k->names, key)) == NULL) {
                list = g_ptr_array_new_with_free_func(name_free);
                g_hash_table_insert(k->names, key, list);
            } else {
                g_free(key);
            }
            g_ptr_array_add(list, n);
        }
    }
    if (firsts->len < sizeof(k->name_firsts))
        memcpy(k->name_firsts, firsts->str, firsts->len + 1);
    g_string_free(firsts, TRUE);
    return k;
}

struct det_know *det_know_new(GPtrArray *custs, int name_min)
{
    return know_build(custs, "", name_min);
}

int det_know_get(struct dir *d, int name_min, struct det_know **k_r, char **error_r)
{
    gint64 now = g_get_monotonic_time() / G_USEC_PER_SEC;
    GPtrArray *custs = NULL;
    char *stamp = NULL;
    int ret = -1;

    *k_r = NULL;
    g_mutex_lock(&know_lock);
    if (know_cur != NULL && know_cur->name_min == name_min &&
        now - know_checked < DET_KNOW_CHECK)
        goto take;
    if (dir_customers_stamp(d, &stamp, error_r) < 0)
        goto out;
    know_checked = now;
    if (know_cur != NULL && know_cur->name_min == name_min &&
        strcmp(know_cur->stamp, stamp) == 0)
        goto take;
    if (dir_list(d, DIR_CUSTOMERS, &custs, error_r) < 0)
        goto out;
    {
        struct det_know *old = know_cur;
        know_cur = know_build(custs, stamp, name_min);
        det_know_unref(&old);
        log_debug("detectors: %u customers in memory", custs->len);
    }
take:
    g_atomic_int_inc(&know_cur->refs);
    *k_r = know_cur;
    ret = 0;
out:
    g_mutex_unlock(&know_lock);
    g_free(stamp);
    return ret;
}

const struct dir_customer *det_know_addr(const struct det_know *k, const char *addr)
{
    const struct dir_customer *c = g_hash_table_lookup(k->contacts, addr);
    const char *at;

    if (c == NULL && (at = strrchr(addr, '@')) != NULL)
        c = g_hash_table_lookup(k->domains, at + 1);
    return c;
}

/* ---- scanning -------------------------------------------------------------- */

static void item_free(gpointer p)
{
    struct det_item *it = p;

    g_free(it->value);
    g_free(it);
}

GHashTable *det_items_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, item_free);
}

static void item_add(GHashTable *items, enum det_item_kind kind, const char *key,
                     const char *value, size_t vlen, const struct dir_customer *c)
{
    static const char *const prefix[] = { "a:", "p:", "n:" };
    char *k = g_strconcat(prefix[kind], key, NULL);
    struct det_item *it;

    if (g_hash_table_contains(items, k)) {
        g_free(k);
        return;
    }
    it = g_new0(struct det_item, 1);
    it->kind = kind;
    it->value = g_strndup(value, vlen);
    it->cust = c;
    g_hash_table_insert(items, k, it);
}

static int addr_local_char(char c)
{
    return g_ascii_isalnum(c) || (c != '\0' && strchr("._%+-'", c) != NULL);
}

static int addr_domain_char(char c)
{
    return g_ascii_isalnum(c) || c == '.' || c == '-';
}

static void scan_addrs(const struct det_know *k, const char *t, size_t len, GHashTable *items)
{
    for (const char *at = memchr(t, '@', len); at != NULL;
         at = memchr(at + 1, '@', len - (size_t)(at + 1 - t))) {
        const char *s = at, *e = at + 1, *end = t + len;
        const struct dir_customer *c;
        char *addr;

        while (s > t && addr_local_char(s[-1]))
            s--;
        while (s < at && (*s == '.' || *s == '\''))
            s++;
        while (e < end && addr_domain_char(*e))
            e++;
        while (e > at + 1 && (e[-1] == '.' || e[-1] == '-'))
            e--;
        if (s == at || e == at + 1 || memchr(at + 1, '.', (size_t)(e - at - 1)) == NULL)
            continue;
        addr = g_ascii_strdown(s, e - s);
        if ((c = det_know_addr(k, addr)) != NULL)
            item_add(items, DET_ITEM_ADDR, addr, addr, strlen(addr), c);
        g_free(addr);
    }
}

/* Phone numbers: a run of digits and separators (space, - . ( ) /, one at
 * a time) not inside a word or a longer number, '+' allowed first. A run
 * of several numbers separated by spaces ("13800138000 13900139000") is
 * tried group by group: the longest run of groups that is a known phone. */
static void scan_phones(const struct det_know *k, const char *t, size_t len, GHashTable *items)
{
    const char *end = t + len, *p = t;

    if (g_hash_table_size(k->phones) == 0)
        return;
    while (p < end) {
        const char *s, *e;
        const char *groups[64];
        int ng = 0;

        /* to the next digit, '+' or '(' (most of any text is neither) */
        p += det_text_cspan(p, (size_t)(end - p), "0123456789+(");
        if (p >= end)
            break;
        if (!(g_ascii_isdigit(*p) || (p + 1 < end && g_ascii_isdigit(p[1]))) ||
            (p > t && (g_ascii_isalnum(p[-1]) || p[-1] == '+'))) {
            p++;
            continue;
        }
        /* the run: digits, at most two separators between them */
        s = p;
        e = p + 1;
        groups[ng++] = s;
        while (e < end) {
            const char *q = e;
            int space = 0;
            if (g_ascii_isdigit(*e)) {
                e++;
                continue;
            }
            while (q < end && q - e < 2 && strchr(" -.()/", *q) != NULL && *q != '\0') {
                space |= *q == ' ';
                q++;
            }
            if (q == e || q >= end || !g_ascii_isdigit(*q))
                break;
            if (space && ng < (int)G_N_ELEMENTS(groups))
                groups[ng++] = q;
            e = q;
        }
        p = e;
        if (e < end && g_ascii_isalpha(*e))
            continue;           /* part of a word: "12345abc" */
        /* longest match from each group start */
        for (int i = 0; i < ng;) {
            int matched = 0, digits = 0;
            for (const char *d = groups[i]; d < e; d++)
                digits += g_ascii_isdigit(*d);
            if (digits < 7)
                break;          /* no phone key (det_phone_key), nor from a later group */
            for (int j = ng; j > i && !matched; j--) {
                const char *ge = j < ng ? groups[j] : e;
                char *v = g_strndup(groups[i], ge - groups[i]);
                char *key = det_phone_key(v);
                const struct dir_customer *c = key ? g_hash_table_lookup(k->phones, key) : NULL;
                if (c != NULL) {
                    item_add(items, DET_ITEM_PHONE, key, v, strlen(v), c);
                    matched = 1;
                    i = j;
                }
                g_free(key);
                g_free(v);
            }
            if (!matched)
                i++;
        }
    }
}

/* Where a name may start after p: a Latin name starts and ends at a word
 * boundary, so the rest of an ASCII word is stepped over at once (most of
 * any text is inside a word). */
static const char *name_next(const char *p, const char *end)
{
    if (!g_ascii_isalnum(*p))
        return MIN(g_utf8_next_char(p), end);
    do
        p++;
    while (p < end && g_ascii_isalnum(*p));
    return p;
}

/* Names by the table of their first two characters, ASCII case ignored.
 * Almost no place in a text starts a name: with few first bytes, the
 * next place is found by det_text_cspan; then its first two bytes are
 * looked up in name_pairs before the table. */
static void scan_names(const struct det_know *k, const char *t, size_t n, GHashTable *items)
{
    const char *end = t + n;

    if (g_hash_table_size(k->names) == 0)
        return;
    for (const char *p = t; p + 1 < end; p = name_next(p, end)) {
        guint pair;
        char key[16];
        size_t kl;
        GPtrArray *list;

        if (k->name_firsts[0] != '\0') {
            p += det_text_cspan(p, (size_t)(end - p), k->name_firsts);
            if (p + 1 >= end)
                break;
            if (p > t && g_ascii_isalnum(*p) && g_ascii_isalnum(p[-1]))
                continue;       /* inside a word: name_next steps over the rest */
        }
        pair = name_pair(p);
        if (!(k->name_pairs[pair >> 3] & (1 << (pair & 7))))
            continue;
        kl = key_len(p, (size_t)(end - p));
        if (kl >= sizeof(key))
            continue;
        for (size_t i = 0; i < kl; i++)
            key[i] = g_ascii_tolower(p[i]);
        key[kl] = '\0';
        if ((list = g_hash_table_lookup(k->names, key)) == NULL)
            continue;
        for (guint i = 0; i < list->len; i++) {
            const struct det_name *nm = list->pdata[i];
            size_t j = 0;
            if ((size_t)(end - p) < nm->len)
                continue;
            while (j < nm->len && g_ascii_tolower(p[j]) == nm->norm[j])
                j++;
            if (j < nm->len)
                continue;
            if (g_ascii_isalnum(nm->norm[nm->len - 1]) && p + nm->len < end &&
                g_ascii_isalnum(p[nm->len]))
                continue;
            item_add(items, DET_ITEM_NAME, nm->norm, nm->cust->name, strlen(nm->cust->name),
                     nm->cust);
        }
    }
}

void det_know_scan(const struct det_know *k, const char *text, size_t len, GHashTable *items)
{
    if (len == 0)
        return;
    scan_addrs(k, text, len, items);
    scan_phones(k, text, len, items);
    scan_names(k, text, len, items);
}
