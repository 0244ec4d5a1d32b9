/*
 * route.c - a departed employee's mail to the successor; see route.h
 */
#include <string.h>
#include "custos/mailout.h"
#include "custos/route.h"
#include "custos/util.h"

static void route_free(gpointer p)
{
    struct rt_route *r = p;

    g_free(r->leaver);
    g_free(r->leaver_name);
    g_free(r->departed);
    g_free(r->to);
    g_free(r->to_name);
    g_free(r->to_mobile);
    g_free(r);
}

int rt_plan(struct dir *d, const struct cfg *cfg, const struct det_envelope *env,
            GPtrArray **routes_r, char **error_r)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(route_free);

    for (size_t i = 0; cfg->rt_enabled && i < env->n_rcpts; i++) {
        const struct det_party *p = &env->rcpts[i];
        struct dir_employee *succ = NULL;
        struct rt_route *r;
        char *to = NULL;
        int rc;

        /* the work address of someone departed (not a personal one: that
         * mailbox is not ours) */
        if (p->emp == NULL || p->emp->status != DIR_DEPARTED ||
            strcmp(p->addr, p->emp->address) != 0)
            continue;
        if ((rc = dir_route(d, p->addr, &to, error_r)) < 0)
            goto fail;
        if (rc == 0 || strcmp(to, p->addr) == 0) {
            g_free(to);
            continue;
        }
        if (dir_employee_get(d, to, &succ, error_r) < 0) {
            g_free(to);
            goto fail;
        }
        r = g_new0(struct rt_route, 1);
        r->rcpt = i;
        r->leaver = g_strdup(p->addr);
        r->leaver_name = g_strdup(*p->emp->name ? p->emp->name : p->addr);
        r->departed = g_strdup(p->emp->departed);
        r->to = to;
        r->to_name = g_strdup(succ != NULL && *succ->name ? succ->name : "");
        r->to_mobile = g_strdup(succ != NULL ? succ->mobile : "");
        dir_employee_free(&succ);
        g_ptr_array_add(out, r);
    }
    *routes_r = out;
    return 0;
fail:
    g_ptr_array_free(out, TRUE);
    return -1;
}

char *rt_subject(const struct cfg *cfg, const char *subject, const GPtrArray *routes)
{
    GString *names = g_string_new(NULL), *addrs = g_string_new(NULL), *tag = g_string_new(NULL);
    char *s, *enc = NULL;

    if (cfg->rt_subject_tag == NULL || routes->len == 0)
        goto out;
    for (guint i = 0; i < routes->len; i++) {
        const struct rt_route *r = g_ptr_array_index(routes, i);
        g_string_append_printf(names, "%s%s", i ? ", " : "", r->leaver_name);
        g_string_append_printf(addrs, "%s%s", i ? ", " : "", r->leaver);
    }
    for (const char *p = cfg->rt_subject_tag; *p != '\0'; p++) {
        if (p[0] == '%' && p[1] == 'n') {
            g_string_append(tag, names->str);
            p++;
        } else if (p[0] == '%' && p[1] == 'a') {
            g_string_append(tag, addrs->str);
            p++;
        } else {
            g_string_append_c(tag, *p);
        }
    }
    if (subject != NULL && strstr(subject, tag->str) != NULL)
        goto out;
    s = g_strdup_printf("%s%s%s", tag->str, subject != NULL && *subject ? " " : "",
                        subject != NULL ? subject : "");
    enc = g_mime_utils_header_encode_text(NULL, s, "utf-8");
    g_free(s);
out:
    g_string_free(names, TRUE);
    g_string_free(addrs, TRUE);
    g_string_free(tag, TRUE);
    return enc;
}

int rt_notice_wanted(const struct cfg *cfg, const struct det_envelope *env, GMimeMessage *msg,
                     const char **why_r)
{
    GMimeHeaderList *hl;

    if (!cfg->rt_notices)
        return *why_r = "[route] notices = false", 0;
    if (*env->sender.addr == '\0')
        return *why_r = "null sender", 0;
    if (env->sender.internal)
        return *why_r = "internal sender", 0;
    if (msg == NULL)
        return *why_r = "the message could not be parsed", 0;
    hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));     /* borrowed */
    for (int i = 0; i < g_mime_header_list_get_count(hl); i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h), *value = g_mime_header_get_value(h);
        char *v = g_strstrip(g_ascii_strdown(value != NULL ? value : "", -1));
        int automatic =
            (g_ascii_strcasecmp(name, "Auto-Submitted") == 0 && strcmp(v, "no") != 0) ||
            g_ascii_strncasecmp(name, "List-", 5) == 0 ||
            (g_ascii_strcasecmp(name, "Precedence") == 0 &&
             (strcmp(v, "bulk") == 0 || strcmp(v, "list") == 0 || strcmp(v, "junk") == 0));
        g_free(v);
        if (automatic)
            return *why_r = "automatic, list or bulk mail", 0;
    }
    return 1;
}

/* The sender's display name in the From header, or "". */
static char *from_name(GMimeMessage *msg)
{
    InternetAddressList *l = g_mime_message_get_from(msg);     /* borrowed */
    char *name = NULL;

    if (l != NULL && internet_address_list_length(l) > 0) {
        const char *n = internet_address_get_name(internet_address_list_get_address(l, 0));
        name = g_strdup(n != NULL ? n : "");
    }
    return name != NULL ? name : g_strdup("");
}

int rt_notice(const struct cfg *cfg, const struct det_envelope *env, GMimeMessage *msg,
              const struct rt_route *r, char **text_r, char **from_r, char **key_r,
              char **error_r)
{
    const char *subject = msg != NULL ? g_mime_message_get_subject(msg) : NULL;
    const char *dom = strrchr(env->sender.addr, '@');
    char *name = msg != NULL ? from_name(msg) : g_strdup("");
    char *tsubj = NULL, *tbody = NULL, *s = NULL, *b = NULL, *id;
    const char *from = cfg->rt_notice_from != NULL ? cfg->rt_notice_from : r->to;
    int zh;

    switch (cfg->rt_notice_lang) {
    case CFG_LANG_ZH: zh = 1; break;
    case CFG_LANG_EN: zh = 0; break;
    default:
        /* the sender's side: their name, their subject, their company */
        zh = mout_has_han(name) || mout_has_han(subject) ||
             (env->sender.cust != NULL && mout_has_han(env->sender.cust->name)) ||
             (dom != NULL && g_str_has_suffix(dom, ".cn"));
    }
    if (mout_template_load(zh ? cfg->rt_notice_zh : cfg->rt_notice_en, &tsubj, &tbody,
                           error_r) < 0) {
        g_free(name);
        return -1;
    }
    {
        const char *kv[] = {
            "sender_name", *name ? name : env->sender.addr,
            "sender_address", env->sender.addr,
            "leaver_name", r->leaver_name,
            "leaver_address", r->leaver,
            "successor_name", *r->to_name ? r->to_name : r->to,
            "successor_address", r->to,
            "successor_mobile", r->to_mobile,
            "subject", subject != NULL ? subject : "",
            NULL,
        };
        s = mout_fill(tsubj, kv);
        b = mout_fill(tbody, kv);
    }
    id = g_strdup_printf("route-notice-%" G_GINT64_FORMAT "-%08x", g_get_real_time(),
                         g_random_int());
    *text_r = mout_message(cfg->rt_notice_from != NULL ? "" : r->to_name, from, name,
                           env->sender.addr, s, id, NULL, b);
    *from_r = g_strdup(from);
    *key_r = g_strdup_printf("route-notice %s %s", env->sender.addr, r->leaver);
    g_free(id);
    g_free(s);
    g_free(b);
    g_free(tsubj);
    g_free(tbody);
    g_free(name);
    return 0;
}

char *rt_evidence(const struct rt_route *r)
{
    return g_strdup_printf("mail for %s (%s, departed%s%s) delivered to %s%s%s%s",
                           r->leaver, r->leaver_name, *r->departed ? " " : "", r->departed,
                           *r->to_name ? r->to_name : r->to, *r->to_name ? " <" : "",
                           *r->to_name ? r->to : "", *r->to_name ? ">" : "");
}
