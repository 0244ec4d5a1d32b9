/*
 * det-name.c - a name's spellings in mailbox names (ICU Han-Latin); see det-name.h
 *
 * The transliterator (Han-Latin/Names: names reading of surnames; lower
 * case; ASCII, ü marked: trans_rules) is opened once (det_name_init at
 * start-up, else on first use) and used under a lock: opening costs about
 * half a second, a name a tenth of a millisecond.
 */
#include <string.h>
#include <unicode/utrans.h>
#include <unicode/ustring.h>
#include "custos/det-name.h"
#include "custos/util.h"

#define NAME_MAX_UNITS 512

static GMutex trans_lock;
static UTransliterator *trans;
static UErrorCode trans_status = U_ZERO_ERROR;
static int trans_tried;

/* Han-Latin with the surnames' readings, lower case, then ASCII; but ü
 * (with its tones: 吕 lǚ, 女 nǚ) becomes UMLAUT_MARK, a private-use
 * character no name has and Latin-ASCII leaves alone, so that its
 * spellings in mailbox names can all be made: lu (ASCII), lv (as typed with
 * a pinyin input method), lyu (Chinese passports). */
#define UMLAUT_MARK "\xee\x80\x80"            /* U+E000 in UTF-8 */
static const UChar trans_rules[] =
    u"::Han-Latin/Names; ::Lower; ::NFC; [\u00FC\u01D6\u01D8\u01DA\u01DC] > \uE000; "
    u"::Latin-ASCII;";

/* Open the transliterator once (under trans_lock). */
static int trans_open(char **error_r)
{
    if (!trans_tried) {
        UParseError pe;
        trans_tried = 1;
        trans = utrans_openU(u"custos-names", -1, UTRANS_FORWARD, trans_rules, -1, &pe,
                             &trans_status);
    }
    if (trans == NULL || U_FAILURE(trans_status))
        return cus_error(error_r, "ICU transliterator Han-Latin/Names unavailable: %s",
                         u_errorName(trans_status));
    return 0;
}

int det_name_init(char **error_r)
{
    int r;

    g_mutex_lock(&trans_lock);
    r = trans_open(error_r);
    g_mutex_unlock(&trans_lock);
    return r;
}

/* name in lower-case ASCII letters and spaces; -1 if ICU cannot be used. */
static int to_latin(const char *name, char **out_r, char **error_r)
{
    UChar buf[NAME_MAX_UNITS];
    int32_t len = 0, limit;
    UErrorCode st = U_ZERO_ERROR;
    char out[NAME_MAX_UNITS * 3];
    int ret = -1;

    u_strFromUTF8(buf, NAME_MAX_UNITS / 2, &len, name, -1, &st);
    if (U_FAILURE(st))
        return cus_error(error_r, "name \"%s\": not UTF-8 or too long: %s", name,
                         u_errorName(st));
    g_mutex_lock(&trans_lock);
    if (trans_open(error_r) < 0)
        goto out;
    limit = len;
    utrans_transUChars(trans, buf, &len, NAME_MAX_UNITS, 0, &limit, &st);
    if (U_FAILURE(st)) {
        cus_error(error_r, "name \"%s\": transliteration failed: %s", name, u_errorName(st));
        goto out;
    }
    u_strToUTF8(out, sizeof(out), NULL, buf, len, &st);
    if (U_FAILURE(st)) {
        cus_error(error_r, "name \"%s\": transliteration too long", name);
        goto out;
    }
    *out_r = g_strdup(out);
    ret = 0;
out:
    g_mutex_unlock(&trans_lock);
    return ret;
}

static int has_han(const char *s)
{
    for (const char *p = s; *p != '\0'; p = g_utf8_next_char(p))
        if (g_unichar_get_script(g_utf8_get_char(p)) == G_UNICODE_SCRIPT_HAN)
            return 1;
    return 0;
}

/* Does the name start with a two-character surname? */
static int compound_surname(const char *name)
{
    static const char *const two[] = {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐",
        "长孙", "宇文", "夏侯", "端木", "轩辕", "司徒", "申屠", "独孤", "南宫", "西门",
        "万俟", "闻人", "澹台", "公冶", "太叔", "呼延", "赫连", "钟离", "百里", "东郭",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(two); i++)
        if (g_str_has_prefix(name, two[i]))
            return 1;
    return 0;
}

static void add(GHashTable *set, GPtrArray *out, char *v)
{
    if (strlen(v) >= 2 && !g_hash_table_contains(set, v)) {
        g_hash_table_add(set, v);
        g_ptr_array_add(out, v);
    } else {
        g_free(v);
    }
}

/* Tokens [a, b) of t joined; initials: first letters only. */
static char *join(char **t, int a, int b, int initials)
{
    GString *s = g_string_new(NULL);

    for (int i = a; i < b; i++)
        if (initials)
            g_string_append_c(s, t[i][0]);
        else
            g_string_append(s, t[i]);
    return g_string_free(s, FALSE);
}

/* Surname t[sa, sb), given name t[ga, gb). */
static void variants_of(GHashTable *set, GPtrArray *out, char **t, int sa, int sb, int ga,
                        int gb)
{
    char *s = join(t, sa, sb, 0), *g = join(t, ga, gb, 0);
    char *si = join(t, sa, sb, 1), *gi = join(t, ga, gb, 1);

    if (ga == gb) {
        add(set, out, g_strdup(s));
    } else {
        static const char seps[] = { 0, '.', '_', '-' };
        for (size_t i = 0; i < G_N_ELEMENTS(seps); i++) {
            char sep[2] = { seps[i], 0 };
            add(set, out, g_strconcat(s, sep, g, NULL));
            add(set, out, g_strconcat(g, sep, s, NULL));
        }
        add(set, out, g_strconcat(si, gi, NULL));
        add(set, out, g_strconcat(s, gi, NULL));
        add(set, out, g_strconcat(gi, s, NULL));
    }
    g_free(s);
    g_free(g);
    g_free(si);
    g_free(gi);
}

int det_name_variants(const char *name, GPtrArray **variants_r, char **error_r)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GHashTable *set = g_hash_table_new(g_str_hash, g_str_equal);   /* keys owned by out */
    char *latin = NULL, **t;
    GString *clean;
    int n, han;

    if (to_latin(name, &latin, error_r) < 0) {
        g_hash_table_destroy(set);
        g_ptr_array_free(out, TRUE);
        return -1;
    }
    /* the spellings of ü: u, v, yu in Chinese names; u in others (Müller) */
    han = has_han(name);
    for (int u = 0; u < (han && strstr(latin, UMLAUT_MARK) != NULL ? 3 : 1); u++) {
        static const char *const umlaut[] = { "u", "v", "yu" };

        /* letters and spaces; apostrophes vanish (o'brien -> obrien) */
        clean = g_string_new(NULL);
        for (const char *p = latin; *p != '\0'; p++) {
            if (g_str_has_prefix(p, UMLAUT_MARK)) {
                g_string_append(clean, umlaut[u]);
                p += strlen(UMLAUT_MARK) - 1;
            } else if (g_ascii_isalpha(*p)) {
                g_string_append_c(clean, g_ascii_tolower(*p));
            } else if (*p != '\'') {
                g_string_append_c(clean, ' ');
            }
        }
        t = g_strsplit(clean->str, " ", -1);
        n = 0;
        for (int i = 0; t[i] != NULL; i++)      /* drop the empty tokens */
            if (*t[i] != '\0')
                t[n++] = t[i];
            else
                g_free(t[i]);
        t[n] = NULL;
        if (n == 1) {
            variants_of(set, out, t, 0, 1, 1, 1);
        } else if (n > 1 && han) {
            int ns = compound_surname(name) || n == 4 ? 2 : 1;
            variants_of(set, out, t, 0, ns, ns, n);
        } else if (n > 1) {
            variants_of(set, out, t, n - 1, n, 0, n - 1);  /* Western order */
            variants_of(set, out, t, 0, 1, 1, n);          /* surname first */
        }
        g_strfreev(t);
        g_string_free(clean, TRUE);
    }
    g_free(latin);
    g_hash_table_destroy(set);
    *variants_r = out;
    return 0;
}

const char *det_name_local_matches(const char *addr, GPtrArray *variants)
{
    const char *at = strchr(addr, '@');
    size_t n = at != NULL ? (size_t)(at - addr) : strlen(addr);
    const char *plus = memchr(addr, '+', n);
    char *local;
    const char *found = NULL;

    if (plus != NULL)
        n = plus - addr;
    while (n > 0 && g_ascii_isdigit(addr[n - 1]))
        n--;
    local = g_ascii_strdown(addr, n);
    for (guint i = 0; i < variants->len && found == NULL; i++)
        if (strcmp(local, variants->pdata[i]) == 0)
            found = variants->pdata[i];
    g_free(local);
    return found;
}
