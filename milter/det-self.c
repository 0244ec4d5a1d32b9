/*
 * det-self.c - self-forward: work mail to the sender's own private mailbox
 *
 * From an employee's work address to a personal-webmail recipient that is
 * the same person:
 *  - self-forward/personal-address: one of the employee's registered
 *    personal addresses (directory);
 *  - self-forward/name: a local part spelled from the employee's name
 *    (det-name.h: zhangsan, zhang.san, sanzhang, zs, zhangs ...; a +tag
 *    and trailing digits ignored);
 *  - self-forward/work-id: the local part of the work address (an
 *    employee number such as 10234@corp → 10234@qq.com, or the login);
 *  - self-forward/mobile: the employee's mobile number (13800138000@139.com).
 * The choice about notes ([detect] self_forward_notes, off by default): a
 * message to one's own webmail is flagged when it carries something from
 * work — an attachment, a forwarded or quoted message (det_text_unquoted
 * cuts something, or the subject starts Fw:/Fwd:/转发), or a customer's
 * address (a recipient, or written in the text). A note with none of
 * these ("buy milk") is not flagged unless self_forward_notes is on.
 */
#include <string.h>
#include "detect-private.h"
#include "custos/det-name.h"
#include "custos/det-text.h"
#include "custos/util.h"

#define ADDRS_MAX 50

/* The digits of s (no other characters). */
static char *digits_of(const char *s, size_t n)
{
    GString *o = g_string_new(NULL);

    for (size_t i = 0; i < n && s[i] != '\0'; i++)
        if (g_ascii_isdigit(s[i]))
            g_string_append_c(o, s[i]);
    return g_string_free(o, FALSE);
}

/* The local part of addr without a +tag (g_free). */
static char *local_of(const char *addr)
{
    const char *at = strchr(addr, '@');
    size_t n = at != NULL ? (size_t)(at - addr) : strlen(addr);
    const char *plus = memchr(addr, '+', n);

    return g_ascii_strdown(addr, plus != NULL ? (size_t)(plus - addr) : n);
}

/* Is the local part of addr the employee's mobile number? */
static int mobile_match(const char *local, const char *mobile)
{
    char *m = digits_of(mobile, strlen(mobile));
    size_t ml = strlen(m), ll = strlen(local);
    int yes = 0;

    /* all digits, at least 7, the whole number or it without the country code */
    if (ll >= 7 && strspn(local, "0123456789") == ll && ml >= ll)
        yes = strcmp(m + ml - ll, local) == 0 && (ml == ll || ml - ll <= 3);
    g_free(m);
    return yes;
}

/* Does a customer's address appear in text (normalised)? Its masked form
 * (g_free) or NULL. */
static int customer_in_text(struct dir *d, const char *text, char **what_r, char **error_r)
{
    GRegex *re = g_regex_new("[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}",
                             G_REGEX_OPTIMIZE, 0, NULL);
    GMatchInfo *mi = NULL;
    GHashTable *tried = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int found = 0;

    g_regex_match(re, text, 0, &mi);
    while (!found && g_match_info_matches(mi) && g_hash_table_size(tried) < ADDRS_MAX) {
        char *a = g_match_info_fetch(mi, 0), *low = g_ascii_strdown(a, -1);
        g_free(a);
        if (!g_hash_table_contains(tried, low)) {
            struct dir_customer *c = NULL;
            int r = dir_is_internal(d, low, error_r);
            if (r == 0)
                r = dir_customer_by_addr(d, low, &c, error_r);
            if (r < 0) {
                found = -1;
                g_free(low);
                break;
            }
            if (c != NULL) {
                char *m = det_mask_addr(low);
                *what_r = g_strdup_printf("customer %s's address %s in the text", c->name, m);
                g_free(m);
                dir_customer_free(&c);
                found = 1;
            }
            g_hash_table_add(tried, low);
        } else {
            g_free(low);
        }
        g_match_info_next(mi, NULL);
    }
    g_match_info_free(mi);
    g_regex_unref(re);
    g_hash_table_destroy(tried);
    return found;
}

/* What from work the message carries, in words (g_free), or NULL for a
 * plain note; -1 on a directory error. */
static int carries_work(const struct det_envelope *env, const struct det_message *m,
                        char **what_r, char **error_r)
{
    const struct msg *msg = m->msg;
    char *own;
    const char *body;
    int r = 0;
    const char *subj = msg->subject;

    *what_r = NULL;
    if (msg->atts->len > 0) {
        *what_r = g_strdup_printf("%u attachment%s (%s%s)", msg->atts->len,
                                  msg->atts->len == 1 ? "" : "s",
                                  ((struct msg_att *)msg->atts->pdata[0])->name,
                                  msg->atts->len > 1 ? ", ..." : "");
        return 1;
    }
    while (*subj == ' ')
        subj++;
    if (g_ascii_strncasecmp(subj, "fw:", 3) == 0 || g_ascii_strncasecmp(subj, "fwd:", 4) == 0 ||
        g_str_has_prefix(subj, "转发") || g_str_has_prefix(subj, "Fw：") ||
        g_str_has_prefix(subj, "FW：")) {
        *what_r = g_strdup("a forwarded message (subject)");
        return 1;
    }
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (env->rcpts[i].cust != NULL) {
            char *m = det_mask_addr(env->rcpts[i].addr);
            *what_r = g_strdup_printf("customer %s (%s) among the recipients",
                                      env->rcpts[i].cust->name, m);
            g_free(m);
            return 1;
        }
    body = det_cache_text(m, DET_TEXT_BODY);
    own = det_text_unquoted(body, strlen(body));
    if (strlen(own) + 16 < strlen(body)) {
        *what_r = g_strdup("a quoted or forwarded message");
        r = 1;
    } else if (env->dir != NULL) {
        r = customer_in_text(env->dir, body, what_r, error_r);
    }
    g_free(own);
    return r;
}

static int self_forward(const struct det_envelope *env, const struct det_message *m,
                        GPtrArray *out, char **error_r)
{
    const struct dir_employee *e = det_sending_employee(env);
    GPtrArray *variants = NULL;
    char *work_local = NULL, *what = NULL;
    int carries = -2, ret = -1;

    if (e == NULL || m == NULL || m->msg == NULL)
        return 0;
    work_local = local_of(e->address);
    for (size_t i = 0; i < env->n_rcpts; i++) {
        const struct det_party *r = &env->rcpts[i];
        const char *rule = NULL, *variant = NULL;
        char *local, *masked;
        struct det_finding *f;

        if (r->internal || !r->webmail)
            continue;
        local = local_of(r->addr);
        if (r->emp != NULL && strcmp(r->emp->address, e->address) == 0) {
            rule = "self-forward/personal-address";
        } else {
            if (variants == NULL && det_name_variants(e->name, &variants, error_r) < 0) {
                g_free(local);
                goto out;
            }
            if ((variant = det_name_local_matches(r->addr, variants)) != NULL)
                rule = "self-forward/name";
            else if (strcmp(local, work_local) == 0)
                rule = "self-forward/work-id";
            else if (*e->mobile != '\0' && mobile_match(local, e->mobile))
                rule = "self-forward/mobile";
        }
        g_free(local);
        if (rule == NULL)
            continue;
        if (carries == -2 && (carries = carries_work(env, m, &what, error_r)) < 0)
            goto out;
        if (!carries && !env->cfg->det_self_forward_notes)
            continue;
        masked = det_mask_addr(r->addr);
        f = det_finding_new(
            "self-forward", rule, "%s sent to %s, %s%s%s%s: %s", e->address, masked,
            strcmp(rule, "self-forward/personal-address") == 0 ? "a registered personal address"
            : strcmp(rule, "self-forward/name") == 0 ? "personal webmail named after the sender"
            : strcmp(rule, "self-forward/work-id") == 0
                ? "personal webmail with the sender's work mailbox name"
                : "personal webmail with the sender's mobile number",
            variant != NULL ? " (\"" : "", variant != NULL ? variant : "",
            variant != NULL ? "\")" : "", what != NULL ? what : "a note with nothing from work");
        det_finding_add_rcpt(f, r->addr);
        g_ptr_array_add(out, f);
        g_free(masked);
    }
    ret = 0;
out:
    if (variants != NULL)
        g_ptr_array_free(variants, TRUE);
    g_free(work_local);
    g_free(what);
    return ret;
}

const struct detector det_self_forward = { "self-forward", 1, self_forward };
