/*
 * policy.c - findings to one verdict; see policy.h
 *
 * The lookups walk [policy]'s open-ended keys in file order (a handful):
 * a rule's own entry before its category's.
 */
#include <string.h>
#include "custos/mailout.h"
#include "custos/policy.h"

/* Built-in actions of categories no action.NAME names. */
static const struct {
    const char *category;
    enum cfg_action action;
} pol_builtin[] = {
    { "departed-sender", CFG_ACT_REJECT },
};

static const struct cfg_policy *rule_find(const struct cfg *cfg, enum cfg_pol_kind kind,
                                          const char *name)
{
    for (size_t i = 0; i < cfg->n_pol_rules; i++)
        if (cfg->pol_rules[i].kind == kind && strcmp(cfg->pol_rules[i].name, name) == 0)
            return &cfg->pol_rules[i];
    return NULL;
}

enum cfg_action pol_action(const struct cfg *cfg, const char *category, const char *rule,
                           int leaving)
{
    const struct cfg_policy *r;
    enum cfg_action a = (enum cfg_action)cfg->pol_default;
    int found = 0;

    if ((r = rule_find(cfg, CFG_POL_ACTION, rule)) != NULL ||
        (r = rule_find(cfg, CFG_POL_ACTION, category)) != NULL) {
        a = r->action;
        found = 1;
    }
    for (size_t i = 0; !found && i < G_N_ELEMENTS(pol_builtin); i++)
        if (strcmp(pol_builtin[i].category, category) == 0) {
            a = pol_builtin[i].action;
            found = 1;
        }
    if (!leaving)
        return a;
    if ((r = rule_find(cfg, CFG_POL_LEAVING, rule)) != NULL ||
        (r = rule_find(cfg, CFG_POL_LEAVING, category)) != NULL)
        return MAX(a, r->action);
    if (cfg->pol_leaving > 0)
        return MAX(a, (enum cfg_action)(cfg->pol_leaving - 1));
    return a;
}

/* addr (lower case) is entry: the same address, or "@domain" of it or a parent. */
static int allow_match(const char *entry, const char *addr)
{
    const char *at = strrchr(addr, '@'), *dom;
    size_t n, m;

    if (*entry != '@')
        return strcmp(entry, addr) == 0;
    if (at == NULL)
        return 0;
    dom = at + 1;
    n = strlen(dom);
    m = strlen(entry + 1);
    return strcmp(dom, entry + 1) == 0 ||
           (n > m && dom[n - m - 1] == '.' && strcmp(dom + n - m, entry + 1) == 0);
}

static int allowed_by(const struct cfg_policy *r, const char *addr)
{
    for (int i = 0; r != NULL && r->allow[i] != NULL; i++)
        if (allow_match(r->allow[i], addr))
            return 1;
    return 0;
}

int pol_allowed(const struct cfg *cfg, const struct det_finding *f, const char *sender)
{
    const struct cfg_policy *byrule = rule_find(cfg, CFG_POL_ALLOW, f->rule);
    const struct cfg_policy *bycat = rule_find(cfg, CFG_POL_ALLOW, f->category);

    if (byrule == NULL && bycat == NULL)
        return 0;
    if (f->rcpts == NULL || f->rcpts->len == 0)
        return sender != NULL && *sender != '\0' &&
               (allowed_by(byrule, sender) || allowed_by(bycat, sender));
    for (guint i = 0; i < f->rcpts->len; i++) {
        const char *a = g_ptr_array_index(f->rcpts, i);
        if (!allowed_by(byrule, a) && !allowed_by(bycat, a))
            return 0;
    }
    return 1;
}

int pol_leaving(const struct det_envelope *env)
{
    const struct det_party *p[] = { &env->sender, &env->from, &env->login };

    for (size_t i = 0; i < G_N_ELEMENTS(p); i++)
        if (p[i]->emp != NULL && p[i]->emp->status == DIR_LEAVING)
            return 1;
    return 0;
}

static void item_free(gpointer p)
{
    struct pol_item *it = p;

    g_free(it->category);
    g_free(it->rule);
    g_free(it->evidence);
    g_ptr_array_free(it->rcpts, TRUE);
    g_free(it);
}

static int str_in(const GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (g_ascii_strcasecmp(g_ptr_array_index(a, i), s) == 0)
            return 1;
    return 0;
}

void pol_decide(const struct cfg *cfg, const struct det_envelope *env,
                const GPtrArray *findings, struct pol_verdict *v)
{
    int all_stripped = 1;

    memset(v, 0, sizeof(*v));
    v->action = CFG_ACT_MONITOR;
    v->items = g_ptr_array_new_with_free_func(item_free);
    v->strip = g_ptr_array_new_with_free_func(g_free);
    v->leaving = pol_leaving(env);
    for (guint i = 0; findings != NULL && i < findings->len; i++) {
        const struct det_finding *f = g_ptr_array_index(findings, i);
        struct pol_item *it;

        if (pol_allowed(cfg, f, env->sender.addr)) {
            v->dropped++;
            continue;
        }
        it = g_new0(struct pol_item, 1);
        it->category = g_strdup(f->category);
        it->rule = g_strdup(f->rule);
        it->evidence = g_strdup(f->evidence);
        it->rcpts = g_ptr_array_new_with_free_func(g_free);
        for (guint j = 0; f->rcpts != NULL && j < f->rcpts->len; j++)
            g_ptr_array_add(it->rcpts, g_strdup(g_ptr_array_index(f->rcpts, j)));
        it->action = pol_action(cfg, f->category, f->rule, v->leaving);
        /* stripping the whole message is refusing it */
        if (it->action == CFG_ACT_STRIP && it->rcpts->len == 0)
            it->action = CFG_ACT_REJECT;
        for (guint j = 0; it->action == CFG_ACT_STRIP && j < it->rcpts->len; j++)
            if (!str_in(v->strip, g_ptr_array_index(it->rcpts, j)))
                g_ptr_array_add(v->strip, g_strdup(g_ptr_array_index(it->rcpts, j)));
        g_ptr_array_add(v->items, it);
    }
    for (size_t i = 0; i < env->n_rcpts && all_stripped; i++)
        all_stripped = str_in(v->strip, env->rcpts[i].addr);
    for (guint i = 0; i < v->items->len; i++) {
        struct pol_item *it = g_ptr_array_index(v->items, i);
        /* no one would be left: refused */
        if (it->action == CFG_ACT_STRIP && all_stripped)
            it->action = CFG_ACT_REJECT;
        v->action = MAX(v->action, it->action);
    }
    if (v->action == CFG_ACT_REJECT)
        g_ptr_array_set_size(v->strip, 0);
}

void pol_verdict_clear(struct pol_verdict *v)
{
    if (v->items != NULL)
        g_ptr_array_free(v->items, TRUE);
    if (v->strip != NULL)
        g_ptr_array_free(v->strip, TRUE);
    memset(v, 0, sizeof(*v));
}

char *pol_flag_value(const struct pol_item *it)
{
    return g_strdup_printf("%s; rule=%s; action=%s", it->category, it->rule,
                           cfg_action_name(it->action));
}

/* s without control characters and '%' (one line of an SMTP reply). */
static char *reply_clean(char *s)
{
    char *o = s;

    for (char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x20 && *p != 0x7f && *p != '%')
            *o++ = *p;
    *o = '\0';
    return s;
}

void pol_reject_text(const struct cfg *cfg, const struct pol_verdict *v, char **en_r,
                     char **zh_r)
{
    GString *cats = g_string_new(NULL), *rules = g_string_new(NULL);
    const char *kv[] = { "category", NULL, "rule", NULL, NULL };

    for (guint i = 0; i < v->items->len; i++) {
        const struct pol_item *it = g_ptr_array_index(v->items, i);
        if (it->action != CFG_ACT_REJECT)
            continue;
        if (strstr(cats->str, it->category) == NULL)
            g_string_append_printf(cats, "%s%s", cats->len ? ", " : "", it->category);
        g_string_append_printf(rules, "%s%s", rules->len ? ", " : "", it->rule);
    }
    kv[1] = cats->str;
    kv[3] = rules->str;
    *en_r = reply_clean(mout_fill(cfg->pol_reject_text != NULL ? cfg->pol_reject_text
                                                              : "Message refused", kv));
    *zh_r = cfg->pol_reject_text_zh != NULL ? reply_clean(mout_fill(cfg->pol_reject_text_zh, kv))
                                            : NULL;
    g_string_free(cats, TRUE);
    g_string_free(rules, TRUE);
}
