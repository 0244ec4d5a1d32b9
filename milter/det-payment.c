/*
 * det-payment.c - payment-details: someone else's bank account in mail to a customer
 *
 * On mail from the company to a customer (a recipient the directory puts
 * with a customer), in what the sender wrote (quoted and forwarded text
 * left out) and in the attachments' text:
 *  - payment-details/card, payment-details/iban: a card number (BIN, Luhn)
 *    or IBAN (mod 97) that is not one of the company's accounts (the
 *    directory's accounts list), with a payment word ([detect]
 *    payment_words) within payment_window characters;
 *  - payment-details/payee-name: a payee label ([detect] payee_labels,
 *    "户名:", "Account name:") followed by a person's name: two to four
 *    Chinese characters, or two to four capitalised Latin words, that is
 *    not a company (no company_suffixes ending) nor the holder of one of
 *    the company's accounts.
 * The evidence shows the number masked (6222****1234) in a short excerpt,
 * the name masked (张*); the findings are about the customer recipients.
 */
#include <string.h>
#include "detect-private.h"
#include "custos/det-account.h"
#include "custos/det-text.h"
#include "custos/util.h"

#define HITS_MAX 64
#define FINDINGS_MAX 8
#define EXCERPT_CTX 16

struct pay {
    const struct det_envelope *env;
    GPtrArray *custs;                   /* struct det_party *, borrowed */
    GPtrArray *accounts;                /* struct dir_account *, or NULL until read */
    char *const *words, *const *labels, *const *suffixes;
    GHashTable *seen;                   /* account numbers and names reported */
    GPtrArray *out;
    int findings;
};

static int accounts_get(struct pay *p, char **error_r)
{
    if (p->accounts != NULL)
        return 0;
    if (p->env->dir == NULL) {
        p->accounts = g_ptr_array_new();
        return 0;
    }
    return dir_list(p->env->dir, DIR_ACCOUNTS, &p->accounts, error_r);
}

static void finding_add(struct pay *p, struct det_finding *f)
{
    for (guint i = 0; i < p->custs->len; i++)
        det_finding_add_rcpt(f, ((struct det_party *)p->custs->pdata[i])->addr);
    g_ptr_array_add(p->out, f);
    p->findings++;
}

static int company_account(struct pay *p, const char *number)
{
    for (guint i = 0; i < p->accounts->len; i++)
        if (strcmp(((struct dir_account *)p->accounts->pdata[i])->account, number) == 0)
            return 1;
    return 0;
}

static int numbers(struct pay *p, const char *text, size_t len, const char *where,
                   char **error_r)
{
    GPtrArray *hits = det_account_scan(text, len, HITS_MAX);
    int ret = 0;

    for (guint i = 0; i < hits->len && p->findings < FINDINGS_MAX; i++) {
        const struct det_account_hit *h = hits->pdata[i];
        const char *word;
        char *masked, *excerpt;

        if (g_hash_table_contains(p->seen, h->number))
            continue;
        word = det_text_near(text, len, h->start, h->end,
                             (size_t)p->env->cfg->det_payment_window, p->words);
        if (word == NULL)
            continue;
        if (accounts_get(p, error_r) < 0) {
            ret = -1;
            break;
        }
        if (company_account(p, h->number))
            continue;
        g_hash_table_add(p->seen, g_strdup(h->number));
        masked = det_mask_number(h->number);
        excerpt = det_text_excerpt(text, len, h->start, h->end, EXCERPT_CTX, masked);
        finding_add(p, det_finding_new(
            "payment-details",
            h->kind == DET_ACCOUNT_IBAN ? "payment-details/iban" : "payment-details/card",
            "%s %s near \"%s\" in the %s, not one of the company's accounts: \"%s\"",
            h->kind == DET_ACCOUNT_IBAN ? "IBAN" : "bank card number", masked, word, where,
            excerpt));
        g_free(masked);
        g_free(excerpt);
    }
    g_ptr_array_free(hits, TRUE);
    return ret;
}

static int is_han(gunichar c)
{
    return g_unichar_get_script(c) == G_UNICODE_SCRIPT_HAN;
}

/* Does value (lower case) end with one of the company suffixes? ASCII
 * ones must start a word. */
static int company_name(struct pay *p, const char *value)
{
    char *v = g_ascii_strdown(value, -1);
    size_t vl = strlen(v);
    int found = 0;

    for (int i = 0; p->suffixes[i] != NULL && !found; i++) {
        const char *s = p->suffixes[i];
        size_t sl = strlen(s);
        if (sl == 0 || sl > vl || g_ascii_strcasecmp(v + vl - sl, s) != 0)
            continue;
        found = (unsigned char)s[0] >= 0x80 || vl == sl || !g_ascii_isalpha(v[vl - sl - 1]);
    }
    g_free(v);
    return found;
}

static int holder_name(struct pay *p, const char *value)
{
    for (guint i = 0; i < p->accounts->len; i++) {
        const char *h = ((struct dir_account *)p->accounts->pdata[i])->holder;
        char *hn = det_text_norm(h, -1);
        int same = *hn != '\0' && (g_ascii_strcasecmp(hn, value) == 0 || strstr(hn, value));
        g_free(hn);
        if (same)
            return 1;
    }
    return 0;
}

/* A person's name at p (after a label and its colon): the name (g_free)
 * or NULL. */
static char *person_at(const char *s, const char *end)
{
    static const char *const not_names[] = {
        "同上", "如下", "见下", "见附件", "本人", "公司", "我司", "贵司", "本公司", "个人",
        "待定", "未知", "姓名", "名称", "全称",
    };
    gunichar c = s < end ? g_utf8_get_char(s) : 0;

    if (is_han(c)) {
        const char *q = s;
        int n = 0;
        char *name;
        while (q < end && (is_han(g_utf8_get_char(q)) || g_utf8_get_char(q) == 0x00B7)) {
            n += is_han(g_utf8_get_char(q));
            q = g_utf8_next_char(q);
        }
        if (n < 2 || n > 4)
            return NULL;
        name = g_strndup(s, q - s);
        for (size_t i = 0; i < G_N_ELEMENTS(not_names); i++)
            if (strstr(name, not_names[i]) != NULL) {
                g_free(name);
                return NULL;
            }
        return name;
    }
    if (g_ascii_isupper(*s)) {
        /* to the end of the line or a stop; two spaces end it too */
        const char *q = s;
        int words = 0, in_word = 0;
        while (q < end && strchr("\n\r,;|\t(", *q) == NULL &&
               !(q[0] == ' ' && q + 1 < end && q[1] == ' ')) {
            if (g_ascii_isalpha(*q)) {
                if (!in_word) {
                    if (!g_ascii_isupper(*q))
                        return NULL;        /* every word capitalised */
                    words++;
                }
                in_word = 1;
            } else if (*q == ' ') {
                in_word = 0;
            } else if (*q != '.' && *q != '\'' && *q != '-') {
                return NULL;                /* digits, CJK, other signs */
            }
            q++;
        }
        while (q > s && (q[-1] == ' ' || q[-1] == '.'))
            q--;
        if (words < 2 || words > 4)
            return NULL;
        return g_strndup(s, q - s);
    }
    return NULL;
}

static char *mask_name(const char *name)
{
    GString *o = g_string_new(NULL);
    const char *second = g_utf8_next_char(name);
    int rest = (int)g_utf8_strlen(second, -1);

    g_string_append_len(o, name, second - name);
    for (int i = 0; i < rest && i < 3; i++)
        g_string_append_c(o, '*');
    return g_string_free(o, FALSE);
}

static int payees(struct pay *p, const char *text, size_t len, const char *where,
                  char **error_r)
{
    for (int l = 0; p->labels[l] != NULL && p->findings < FINDINGS_MAX; l++) {
        const char *label = p->labels[l];
        size_t ll = strlen(label), from = 0;
        int ascii = (unsigned char)label[0] < 0x80;
        gssize at;

        while ((at = det_text_find(text, from, len, label)) >= 0 &&
               p->findings < FINDINGS_MAX) {
            const char *s = text + at + ll, *end = text + len;
            char *name, *masked;
            int colon = 0;

            from = at + ll;
            if (ascii && at > 0 && g_ascii_isalpha(text[at - 1]))
                continue;
            while (s < end && (*s == ' ' || *s == ':' || *s == '\t')) {
                colon |= *s == ':';
                s++;
            }
            if ((ascii && !colon) || s == text + at + ll)
                continue;
            if ((name = person_at(s, end)) == NULL)
                continue;
            if (accounts_get(p, error_r) < 0) {
                g_free(name);
                return -1;
            }
            if (company_name(p, name) || holder_name(p, name) ||
                g_hash_table_contains(p->seen, name)) {
                g_free(name);
                continue;
            }
            masked = mask_name(name);
            finding_add(p, det_finding_new(
                "payment-details", "payment-details/payee-name",
                "payee %s after \"%s\" in the %s: a person's name, not the company's", masked,
                label, where));
            g_hash_table_add(p->seen, name);
            g_free(masked);
        }
    }
    return 0;
}

static int payment_details(const struct det_envelope *env, const struct det_message *m,
                           GPtrArray *out, char **error_r)
{
    struct pay p = { env, NULL, NULL, NULL, NULL, NULL, NULL, out, 0 };
    char *own = NULL;
    const char *body, *atts;
    int ret = -1;

    if (m == NULL || m->msg == NULL || !det_from_internal(env))
        return 0;
    p.custs = g_ptr_array_new();
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (!env->rcpts[i].internal && env->rcpts[i].cust != NULL)
            g_ptr_array_add(p.custs, &env->rcpts[i]);
    if (p.custs->len == 0) {
        g_ptr_array_free(p.custs, TRUE);
        return 0;
    }
    if (det_words(env->cfg->det_payment_words, &p.words, error_r) < 0 ||
        det_words(env->cfg->det_payee_labels, &p.labels, error_r) < 0 ||
        det_words(env->cfg->det_company_suffixes, &p.suffixes, error_r) < 0)
        goto out;
    p.seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    body = det_cache_text(m, DET_TEXT_BODY);
    own = det_text_unquoted(body, strlen(body));
    atts = det_cache_text(m, DET_TEXT_ATTS);
    if (numbers(&p, own, strlen(own), "message", error_r) < 0 ||
        numbers(&p, atts, strlen(atts), "attachments", error_r) < 0 ||
        payees(&p, own, strlen(own), "message", error_r) < 0 ||
        payees(&p, atts, strlen(atts), "attachments", error_r) < 0)
        goto out;
    ret = 0;
out:
    if (p.seen != NULL)
        g_hash_table_destroy(p.seen);
    if (p.accounts != NULL)
        g_ptr_array_free(p.accounts, TRUE);
    g_ptr_array_free(p.custs, TRUE);
    g_free(own);
    return ret;
}

const struct detector det_payment_details = { "payment-details", 1, payment_details };
