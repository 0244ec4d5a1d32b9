/*
 * det-leak.c - customer mail and customer data leaving the company:
 * forward-external, auto-forward, customer-data, personal-webmail,
 * bcc-external
 *
 * What the message carries is worked out once (det_cache): the known
 * customer addresses, phones and names in its subject, body and every
 * attachment's text at any depth (det_know_scan), and the customer mail it
 * carries or refers to ("threads"): quoted header blocks of a forward or
 * reply as the big clients write them (Outlook's From:/Sent:/To:/Subject:,
 * "-----Original Message-----", Gmail's "---------- Forwarded message
 * ---------" and "On ... wrote:", Apple's "Begin forwarded message:",
 * Thunderbird's, QQ Mail and Foxmail's "原始邮件" with 发件人:/发送时间:/
 * 收件人:/主题:, 163's "转发邮件信息", "在 ... 写道:"), attached messages
 * (message/rfc822 and .eml at any depth) from a customer, and archived
 * customer mail named by In-Reply-To and References. A thread counts
 * against a recipient only if that recipient is neither the customer nor
 * one its mail already went to (quoted To/Cc lines, the archived copy's
 * recipients): replying to all of a thread is no leak.
 *
 * Every detector here looks only at mail from inside (envelope sender,
 * From or SASL login internal) to external recipients, but auto-forward's
 * Message-ID rule, which looks at every message that goes out.
 */
#include <string.h>
#include "custos/det-text.h"
#include "custos/log.h"
#include "custos/util.h"
#include "detect-private.h"

#define LEAK_REFS_MAX 20        /* Message-IDs of References looked up */
#define LEAK_REF_HITS 4         /* archived copies per Message-ID */
#define LEAK_BLOCK_LINES 12     /* lines of a quoted header block */
#define LEAK_EXAMPLES 3         /* masked values shown in evidence */

/* ---- the shared cache -------------------------------------------------------- */

static void thread_free(gpointer p)
{
    struct det_thread *t = p;

    g_free(t->from);
    g_free(t->excerpt);
    g_hash_table_destroy(t->also);
    g_free(t);
}

static int cfg_int(const struct det_envelope *env, size_t which)
{
    static const int dflt[] = { 5, 2 };

    if (env->cfg == NULL)
        return dflt[which];
    return which == 0 ? env->cfg->det_customer_data : env->cfg->det_webmail_data;
}
#define CUST_THRESHOLD(env) cfg_int(env, 0)
#define WEBMAIL_THRESHOLD(env) cfg_int(env, 1)
#define NAME_MIN(env) det_name_min(env)

/* A thread of customer c (found how, from address from); NULL if the same
 * customer is already known the same way (its also-set is then added to). */
static struct det_thread *thread_add(struct det_cache *c, const char *how,
                                     const struct dir_customer *cust, const char *from)
{
    struct det_thread *t;

    for (guint i = 0; i < c->threads->len; i++) {
        t = c->threads->pdata[i];
        if (t->cust == cust && strcmp(t->how, how) == 0)
            return t;
    }
    t = g_new0(struct det_thread, 1);
    t->how = how;
    t->cust = cust;
    t->from = g_strdup(from);
    t->also = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_ptr_array_add(c->threads, t);
    return t;
}

static void also_add(struct det_thread *t, const char *addr)
{
    if (*addr)
        g_hash_table_add(t->also, g_ascii_strdown(addr, -1));
}

/* Every address in s (lower case) into out (char *). */
static void addrs_in(const char *s, size_t len, GPtrArray *out)
{
    const char *t = s, *end = s + len;

    for (const char *at = memchr(t, '@', len); at != NULL;
         at = memchr(at + 1, '@', (size_t)(end - at - 1))) {
        const char *a = at, *e = at + 1;
        while (a > t && (g_ascii_isalnum(a[-1]) || strchr("._%+-'", a[-1]) != NULL))
            a--;
        while (e < end && (g_ascii_isalnum(*e) || *e == '.' || *e == '-'))
            e++;
        while (e > at + 1 && (e[-1] == '.' || e[-1] == '-'))
            e--;
        if (a < at && e > at + 1 && memchr(at + 1, '.', (size_t)(e - at - 1)) != NULL)
            g_ptr_array_add(out, g_ascii_strdown(a, e - a));
    }
}

/* ---- quoted header blocks ---------------------------------------------------- */

enum qkey { Q_NONE, Q_FROM, Q_TO, Q_CC, Q_OTHER };

/* Header names of quoted blocks (normalised: "：" is ':' after NFKC). */
static const struct {
    const char *name;
    enum qkey key;
} qkeys[] = {
    { "from", Q_FROM }, { "发件人", Q_FROM }, { "寄件者", Q_FROM }, { "发信人", Q_FROM },
    { "寄件人", Q_FROM }, { "de", Q_FROM }, { "von", Q_FROM },
    { "to", Q_TO }, { "收件人", Q_TO }, { "收信人", Q_TO }, { "an", Q_TO },
    { "cc", Q_CC }, { "抄送", Q_CC }, { "副本", Q_CC }, { "抄送人", Q_CC },
    { "sent", Q_OTHER }, { "date", Q_OTHER }, { "subject", Q_OTHER }, { "发送时间", Q_OTHER },
    { "发送日期", Q_OTHER }, { "日期", Q_OTHER }, { "时间", Q_OTHER }, { "主题", Q_OTHER },
    { "主旨", Q_OTHER }, { "寄件日期", Q_OTHER }, { "sent at", Q_OTHER },
};

/* Lines that open a quoted message (ASCII case ignored, anywhere in the
 * line, which must also be short). */
static const char *const qseps[] = {
    "original message", "forwarded message", "begin forwarded message",
    "forwarding messages", "message transféré", "原始邮件", "原邮件", "转发邮件",
    "转发的邮件", "回复的原邮件", "邮件原文", "已转发邮件",
};

/* The key of line (without quote marks), and where its value starts. */
static enum qkey qline_key(const char *line, const char **value_r)
{
    const char *colon = strchr(line, ':');
    size_t n;

    if (colon == NULL || colon == line)
        return Q_NONE;
    n = (size_t)(colon - line);
    while (n > 0 && line[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < G_N_ELEMENTS(qkeys); i++)
        if (strlen(qkeys[i].name) == n && g_ascii_strncasecmp(line, qkeys[i].name, n) == 0) {
            *value_r = colon + 1;
            return qkeys[i].key;
        }
    return Q_NONE;
}

static int qline_sep(const char *line)
{
    /* more than 320 bytes is more than 80 characters, 80 bytes or fewer
     * are not: only between are characters counted (this runs on every
     * line of every message) */
    size_t n = strnlen(line, 321);

    if (n > 320 || (n > 80 && g_utf8_strlen(line, (gssize)n) > 80))
        return 0;
    /* every separator has "message" or "邮件" in it: the rest are looked
     * for only in a line that has one of those */
    if (det_text_find(line, 0, n, "message") < 0 && det_text_find(line, 0, n, "邮件") < 0)
        return 0;
    for (size_t i = 0; i < G_N_ELEMENTS(qseps); i++)
        if (det_text_find(line, 0, n, qseps[i]) >= 0)
            return 1;
    return 0;
}

/* Gmail's "On <date> <name> <addr> wrote:", "在 ... 写道:" */
static int qline_attribution(const char *line)
{
    size_t n = strlen(line);

    if (strchr(line, '@') == NULL || n > 400)
        return 0;
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == ':'))
        n--;
    return (n >= 5 && g_ascii_strncasecmp(line + n - 5, "wrote", 5) == 0) ||
           (n >= 6 && memcmp(line + n - 6, "写道", 6) == 0);
}

/* A line without its quote marks ("> > ") and leading white space. */
static const char *qline_strip(const char *l)
{
    while (*l == '>' || *l == ' ' || *l == '\t' || *l == '|')
        l++;
    return l;
}

/* The customer mail quoted in the body: a From line in a header block
 * (after a separator line, or followed within five lines by another
 * header line), or an attribution line; its To/Cc lines are the also-set. */
static void quoted_scan(struct det_cache *c, const char *norm)
{
    size_t n = strlen(norm);
    char *copy, **lines;
    GPtrArray *a;
    int block_until = -1;

    /* a quoted From line has a ':', an attribution an '@', a separator
     * "message" or 邮件: text with none of them quotes no one */
    if (memchr(norm, ':', n) == NULL && memchr(norm, '@', n) == NULL &&
        det_text_find(norm, 0, n, "message") < 0 && det_text_find(norm, 0, n, "邮件") < 0)
        return;
    /* the lines cut in one copy of the text (no allocation a line) */
    copy = g_strndup(norm, n);
    a = g_ptr_array_new();

    for (char *p = copy, *nl;; p = nl + 1) {
        g_ptr_array_add(a, p);
        if ((nl = strchr(p, '\n')) == NULL)
            break;
        *nl = '\0';
    }
    g_ptr_array_add(a, NULL);
    lines = (char **)a->pdata;

    for (int i = 0; lines[i] != NULL; i++) {
        const char *l = qline_strip(g_strchomp(lines[i])), *v = NULL;
        GPtrArray *from = NULL;
        int in_block = i <= block_until;

        if (qline_sep(l)) {
            block_until = i + LEAK_BLOCK_LINES;
            continue;
        }
        if (qline_attribution(l)) {
            from = g_ptr_array_new_with_free_func(g_free);
            addrs_in(l, strlen(l), from);
        } else if (qline_key(l, &v) == Q_FROM) {
            int headers = in_block;
            for (int j = i + 1; lines[j] != NULL && j <= i + 5 && !headers; j++) {
                const char *w;
                headers = qline_key(qline_strip(lines[j]), &w) != Q_NONE;
            }
            if (!headers)
                continue;
            from = g_ptr_array_new_with_free_func(g_free);
            addrs_in(v, strlen(v), from);
        }
        if (from == NULL)
            continue;
        for (guint k = 0; k < from->len; k++) {
            const char *a = from->pdata[k];
            const struct dir_customer *cust = det_know_addr(c->know, a);
            struct det_thread *t;
            if (cust == NULL)
                continue;
            t = thread_add(c, "quoted-header", cust, a);
            also_add(t, a);
            if (t->excerpt == NULL) {
                gssize at = det_text_find(l, 0, strlen(l), a);
                char *masked = det_mask_addr(a);
                if (at >= 0)
                    t->excerpt = det_text_excerpt(l, strlen(l), (size_t)at,
                                                  (size_t)at + strlen(a), 30, masked);
                g_free(masked);
            }
            /* the block's To and Cc lines */
            for (int j = i + 1; lines[j] != NULL && j <= i + 8; j++) {
                const char *w = NULL;
                enum qkey qk = qline_key(qline_strip(lines[j]), &w);
                if (qk == Q_TO || qk == Q_CC) {
                    GPtrArray *to = g_ptr_array_new_with_free_func(g_free);
                    addrs_in(w, strlen(w), to);
                    for (guint m = 0; m < to->len; m++)
                        also_add(t, to->pdata[m]);
                    g_ptr_array_free(to, TRUE);
                } else if (qk == Q_NONE && *qline_strip(lines[j]) != '\0' &&
                           j > i + 1) {
                    break;      /* the block ended */
                }
            }
        }
        g_ptr_array_free(from, TRUE);
    }
    g_ptr_array_free(a, TRUE);
    g_free(copy);
}

/* ---- archived mail by Message-ID ----------------------------------------------- */

/* The Message-IDs in a References / In-Reply-To value, into ids (set). */
static void msgids_in(const char *v, GHashTable *ids)
{
    for (const char *p = strchr(v, '<'); p != NULL; p = strchr(p + 1, '<')) {
        const char *e = strchr(p + 1, '>');
        if (e == NULL)
            break;
        if (e > p + 1 && memchr(p + 1, '@', (size_t)(e - p - 1)) != NULL &&
            g_hash_table_size(ids) < LEAK_REFS_MAX)
            g_hash_table_add(ids, g_strndup(p + 1, (size_t)(e - p - 1)));
        p = e;
    }
}

/* Archived customer mail this message replies to or references. */
static int refs_scan(struct det_cache *c, const struct det_envelope *env, const struct msg *m,
                     char **error_r)
{
    GHashTable *ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTableIter it;
    gpointer id;
    int ret = 0;

    for (guint i = 0; i < m->headers->len; i++) {
        const struct msg_header *h = m->headers->pdata[i];
        if (g_ascii_strcasecmp(h->name, "In-Reply-To") == 0 ||
            g_ascii_strcasecmp(h->name, "References") == 0)
            msgids_in(h->value, ids);
    }
    g_hash_table_iter_init(&it, ids);
    while (ret == 0 && g_hash_table_iter_next(&it, &id, NULL)) {
        GPtrArray *refs = NULL;
        if (idx_find_refs(dir_index(env->dir), id, LEAK_REF_HITS, &refs, error_r) < 0) {
            ret = -1;
            break;
        }
        for (guint i = 0; i < refs->len; i++) {
            struct idx_ref *r = refs->pdata[i];
            const struct dir_customer *cust = det_know_addr(c->know, r->from);
            struct det_thread *t;
            if (cust == NULL)
                continue;
            if (idx_ref_rcpts(dir_index(env->dir), r, error_r) < 0) {
                ret = -1;
                break;
            }
            t = thread_add(c, "thread", cust, r->from);
            also_add(t, r->from);
            for (guint k = 0; k < r->rcpts->len; k++)
                also_add(t, r->rcpts->pdata[k]);
        }
        g_ptr_array_free(refs, TRUE);
    }
    g_hash_table_destroy(ids);
    return ret;
}

/* ---- the facts, once per message ----------------------------------------------- */

static int leak_facts(const struct det_envelope *env, const struct det_message *dm,
                      struct det_cache **c_r, char **error_r)
{
    struct det_cache *c = dm->cache;
    const struct msg *m = dm->msg;

    *c_r = c;
    if (c->leak_done) {
        if (c->leak_failed)
            return cus_error(error_r, "%s", c->leak_error);
        return 0;
    }
    c->leak_done = 1;
    c->items = det_items_new();
    c->threads = g_ptr_array_new_with_free_func(thread_free);
    if (env->dir == NULL)
        return 0;
    if (det_know_get(env->dir, NAME_MIN(env), &c->know, &c->leak_error) < 0)
        goto fail;
    for (int part = DET_TEXT_SUBJECT; part <= DET_TEXT_ATTS; part++) {
        const char *t = det_cache_text(dm, part);
        det_know_scan(c->know, t, strlen(t), c->items);
    }
    quoted_scan(c, det_cache_text(dm, DET_TEXT_BODY));
    for (guint i = 0; i < m->atts->len; i++) {
        const struct msg_att *a = m->atts->pdata[i];
        const struct dir_customer *cust;
        if (a->from != NULL && *a->from && (cust = det_know_addr(c->know, a->from)) != NULL)
            also_add(thread_add(c, "attached-message", cust, a->from), a->from);
    }
    if (refs_scan(c, env, m, &c->leak_error) < 0)
        goto fail;
    return 0;
fail:
    c->leak_failed = 1;
    return cus_error(error_r, "%s", c->leak_error);
}

/* ---- parties ------------------------------------------------------------------- */

/* Mail from inside: the envelope sender, From or SASL login is internal. */
static int from_inside(const struct det_envelope *env)
{
    return det_from_internal(env) || env->login.internal;
}

static int external(const struct det_party *p)
{
    return *p->addr != '\0' && !p->internal;
}

/* Sales mail: [archive] departments is set and a party is one of them;
 * with no departments set, all mail from inside. */
static int sales(const struct det_envelope *env)
{
    return env->sales || env->cfg == NULL || env->cfg->arc_departments == NULL;
}

static int same_customer(const struct det_party *p, const struct dir_customer *c)
{
    return p->cust != NULL && c != NULL && p->cust->id == c->id;
}

/* Does thread t count against recipient p? Not if p is that customer, or
 * was on any of that customer's mail this message carries (a reply to all
 * of a thread). */
static int thread_against(const struct det_cache *c, const struct det_thread *t,
                          const struct det_party *p)
{
    if (same_customer(p, t->cust))
        return 0;
    for (guint i = 0; i < c->threads->len; i++) {
        const struct det_thread *o = c->threads->pdata[i];
        if (o->cust == t->cust && g_hash_table_contains(o->also, p->addr))
            return 0;
    }
    return 1;
}

struct counts {
    int addrs, phones, names, total, custs;
    GPtrArray *examples;        /* char *: masked values */
};

/* The customer data of customers other than p's. */
static void items_count(const struct det_cache *c, const struct det_party *p,
                        struct counts *n)
{
    GHashTable *custs = g_hash_table_new(g_direct_hash, g_direct_equal);
    GHashTableIter it;
    gpointer v;

    memset(n, 0, sizeof(*n));
    n->examples = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_iter_init(&it, c->items);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        const struct det_item *item = v;
        if (same_customer(p, item->cust))
            continue;
        n->total++;
        g_hash_table_add(custs, (gpointer)item->cust);
        if (item->kind == DET_ITEM_ADDR) {
            n->addrs++;
            if (n->examples->len < LEAK_EXAMPLES)
                g_ptr_array_add(n->examples, det_mask_addr(item->value));
        } else if (item->kind == DET_ITEM_PHONE) {
            n->phones++;
            if (n->examples->len < LEAK_EXAMPLES)
                g_ptr_array_add(n->examples, det_mask_phone(item->value));
        } else {
            n->names++;
        }
    }
    n->custs = (int)g_hash_table_size(custs);
    g_hash_table_destroy(custs);
}

static char *counts_text(const struct counts *n)
{
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "%d customer contact item%s of %d customer%s (%d address%s, "
                           "%d phone%s, %d name%s", n->total, n->total == 1 ? "" : "s",
                           n->custs, n->custs == 1 ? "" : "s", n->addrs,
                           n->addrs == 1 ? "" : "es", n->phones, n->phones == 1 ? "" : "s",
                           n->names, n->names == 1 ? "" : "s");
    for (guint i = 0; i < n->examples->len; i++)
        g_string_append_printf(s, "%s%s", i == 0 ? "; e.g. " : ", ",
                               (const char *)n->examples->pdata[i]);
    g_string_append_c(s, ')');
    return g_string_free(s, FALSE);
}

/* One finding for the recipients in rcpts (char *, masked in the text). */
static void finding_for(GPtrArray *out, const char *cat, const char *rule, const char *what,
                        GPtrArray *rcpts)
{
    GString *to = g_string_new(NULL);
    struct det_finding *f;

    for (guint i = 0; i < rcpts->len; i++) {
        char *m = det_mask_addr(rcpts->pdata[i]);
        g_string_append_printf(to, "%s%s", i ? ", " : "", m);
        g_free(m);
    }
    f = det_finding_new(cat, rule, "%s, to %s", what, to->str);
    for (guint i = 0; i < rcpts->len; i++)
        det_finding_add_rcpt(f, rcpts->pdata[i]);
    g_ptr_array_add(out, f);
    g_string_free(to, TRUE);
}

/* ---- forward-external --------------------------------------------------------- */

static int forward_external(const struct det_envelope *env, const struct det_message *dm,
                            GPtrArray *out, char **error_r)
{
    struct det_cache *c;

    if (!from_inside(env))
        return 0;
    if (leak_facts(env, dm, &c, error_r) < 0)
        return -1;
    for (guint t = 0; t < c->threads->len; t++) {
        const struct det_thread *th = c->threads->pdata[t];
        GPtrArray *to = g_ptr_array_new();
        for (size_t i = 0; i < env->n_rcpts; i++)
            if (external(&env->rcpts[i]) && thread_against(c, th, &env->rcpts[i]))
                g_ptr_array_add(to, env->rcpts[i].addr);
        if (to->len > 0) {
            char rule[64], *from = det_mask_addr(th->from), *what;
            g_snprintf(rule, sizeof(rule), "forward-external/%s", th->how);
            what = g_strdup_printf(
                "mail of customer %s from %s %s%s%s%s", th->cust->name, from,
                strcmp(th->how, "quoted-header") == 0 ? "quoted (forward or reply header)"
                : strcmp(th->how, "attached-message") == 0 ? "attached as a message"
                : "replied to or referenced (archived)",
                th->excerpt ? ": \"" : "", th->excerpt ? th->excerpt : "",
                th->excerpt ? "\"" : "");
            finding_for(out, "forward-external", rule, what, to);
            g_free(what);
            g_free(from);
        }
        g_ptr_array_free(to, TRUE);
    }
    return 0;
}

/* ---- auto-forward ----------------------------------------------------------------- */

/* Headers that forwarding software adds: name, and what its value must
 * have: a word (ASCII case ignored), or NULL for an internal address (the
 * mailbox whose rule forwarded it, the recipient it was forwarded for). */
static const struct {
    const char *name, *value;
} fwd_markers[] = {
    { "X-Forwarded-For", NULL }, { "X-Forwarded-To", NULL },
    { "X-MS-Exchange-Inbox-Rules-Loop", NULL }, { "X-Autoforward", NULL },
    { "X-Mail-Autoforward", NULL },
    { "X-MS-Exchange-Organization-AutoForwarded", "true" },
    { "X-Autoforwarded", "true" }, { "Auto-Submitted", "forward" },
};

/* Does v name an internal address? */
static int names_internal(const struct det_envelope *env, const char *v)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    int found = 0;

    addrs_in(v, strlen(v), a);
    for (guint i = 0; i < a->len && !found; i++)
        found = dir_is_internal(env->dir, a->pdata[i], NULL) > 0;
    g_ptr_array_free(a, TRUE);
    return found;
}

/* The first of refs that came from outside to us; one finding for the
 * recipients of to it did not go to then. */
static int resent_inbound(const struct det_envelope *env, GPtrArray *refs, GPtrArray *to,
                          const char *rule, const char *same, GPtrArray *out, char **error_r)
{
    const struct idx_ref *in = NULL;
    GPtrArray *new_to;

    for (guint i = 0; i < refs->len && in == NULL; i++) {
        struct idx_ref *r = refs->pdata[i];
        if (!*r->from || dir_is_internal(env->dir, r->from, NULL) != 0)
            continue;
        if (idx_ref_rcpts(dir_index(env->dir), r, error_r) < 0)
            return -1;
        for (guint k = 0; k < r->rcpts->len && in == NULL; k++)
            if (dir_is_internal(env->dir, r->rcpts->pdata[k], NULL) > 0)
                in = r;
    }
    if (in == NULL)
        return 0;
    new_to = g_ptr_array_new();
    for (guint i = 0; i < to->len; i++) {
        int seen = 0;
        for (guint k = 0; k < in->rcpts->len && !seen; k++)
            seen = strcmp(in->rcpts->pdata[k], to->pdata[i]) == 0;
        if (!seen)
            g_ptr_array_add(new_to, to->pdata[i]);
    }
    if (new_to->len > 0) {
        char *from = det_mask_addr(in->from);
        char *what = g_strdup_printf("%s as inbound mail from %s (archive id %" G_GINT64_FORMAT
                                     ") sent on", same, from, in->id);
        finding_for(out, "auto-forward", rule, what, new_to);
        g_free(what);
        g_free(from);
    }
    g_ptr_array_free(new_to, TRUE);
    return 0;
}

static int auto_forward(const struct det_envelope *env, const struct det_message *dm,
                        GPtrArray *out, char **error_r)
{
    const struct msg *m = dm->msg;
    GPtrArray *to = g_ptr_array_new();
    const char *resent = NULL, *marker = NULL;
    unsigned char body[CUS_SHA256_LEN];
    int ret = 0;

    for (size_t i = 0; i < env->n_rcpts; i++)
        if (external(&env->rcpts[i]))
            g_ptr_array_add(to, env->rcpts[i].addr);
    if (to->len == 0)
        goto out;
    /* the newest Resent-From (or -Sender) says who re-sent it: one of us;
     * Resent-* a list server or someone outside added is not ours */
    for (guint i = 0; i < m->headers->len && env->dir != NULL; i++) {
        const struct msg_header *h = m->headers->pdata[i];
        if (g_ascii_strcasecmp(h->name, "Resent-From") == 0 ||
            g_ascii_strcasecmp(h->name, "Resent-Sender") == 0) {
            if (names_internal(env, h->value))
                resent = h->name;
            break;
        }
    }
    for (guint i = 0; i < m->headers->len && marker == NULL && env->dir != NULL; i++) {
        const struct msg_header *h = m->headers->pdata[i];
        for (size_t k = 0; k < G_N_ELEMENTS(fwd_markers) && marker == NULL; k++)
            if (g_ascii_strcasecmp(h->name, fwd_markers[k].name) == 0 &&
                (fwd_markers[k].value != NULL
                     ? det_text_find(h->value, 0, strlen(h->value), fwd_markers[k].value) >= 0
                     : names_internal(env, h->value)))
                marker = h->name;
    }
    if (from_inside(env) && resent != NULL)
        finding_for(out, "auto-forward", "auto-forward/resent",
                    resent[7] == 'F' || resent[7] == 'f' ? "re-sent by one of us (Resent-From)"
                    : "re-sent by one of us (Resent-Sender)", to);
    if (from_inside(env) && marker != NULL) {
        char *what = g_strdup_printf("forwarded automatically (%s header)", marker);
        finding_for(out, "auto-forward", "auto-forward/marker", what, to);
        g_free(what);
    }
    /* the same Message-ID, or the same body text, as mail that came in
     * from outside to us */
    if (env->dir != NULL && *m->message_id) {
        GPtrArray *refs = NULL;
        if (idx_find_refs(dir_index(env->dir), m->message_id, LEAK_REF_HITS, &refs,
                          error_r) < 0) {
            ret = -1;
            goto out;
        }
        ret = resent_inbound(env, refs, to, "auto-forward/message-id", "the same Message-ID",
                             out, error_r);
        g_ptr_array_free(refs, TRUE);
        if (ret < 0)
            goto out;
    }
    if (env->dir != NULL && idx_body_hash(m, body)) {
        GPtrArray *refs = NULL;
        if (idx_find_body_refs(dir_index(env->dir), body, LEAK_REF_HITS, &refs, error_r) < 0) {
            ret = -1;
            goto out;
        }
        ret = resent_inbound(env, refs, to, "auto-forward/body-hash", "the same body text",
                             out, error_r);
        g_ptr_array_free(refs, TRUE);
    }
out:
    g_ptr_array_free(to, TRUE);
    return ret;
}

/* ---- customer-data -------------------------------------------------------------- */

static int customer_data(const struct det_envelope *env, const struct det_message *dm,
                         GPtrArray *out, char **error_r)
{
    struct det_cache *c;
    GHashTable *groups;         /* evidence text -> GPtrArray of rcpts */
    GPtrArray *order;
    int threshold = CUST_THRESHOLD(env);

    if (!from_inside(env))
        return 0;
    if (leak_facts(env, dm, &c, error_r) < 0)
        return -1;
    if ((int)g_hash_table_size(c->items) < threshold)
        return 0;
    groups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                   (GDestroyNotify)g_ptr_array_unref);
    order = g_ptr_array_new();
    for (size_t i = 0; i < env->n_rcpts; i++) {
        struct counts n;
        char *text;
        GPtrArray *to;
        if (!external(&env->rcpts[i]))
            continue;
        items_count(c, &env->rcpts[i], &n);
        if (n.total >= threshold) {
            text = counts_text(&n);
            if ((to = g_hash_table_lookup(groups, text)) == NULL) {
                to = g_ptr_array_new();
                g_hash_table_insert(groups, text, to);
                g_ptr_array_add(order, text);
            } else {
                g_free(text);
            }
            g_ptr_array_add(to, env->rcpts[i].addr);
        }
        g_ptr_array_free(n.examples, TRUE);
    }
    for (guint i = 0; i < order->len; i++)
        finding_for(out, "customer-data", "customer-data/count", order->pdata[i],
                    g_hash_table_lookup(groups, order->pdata[i]));
    g_ptr_array_free(order, TRUE);
    g_hash_table_destroy(groups);
    return 0;
}

/* ---- personal-webmail and bcc-external ---------------------------------------------- */

/* Why sales mail to p is a concern: customer data (at the webmail
 * threshold, an address or phone among it) or a customer thread that
 * counts against p; NULL if neither. */
static char *sales_concern(const struct det_envelope *env, const struct det_cache *c,
                           const struct det_party *p)
{
    struct counts n;
    char *why = NULL;

    items_count(c, p, &n);
    /* names alone are no contact data: a footer naming reference customers */
    if (n.total >= WEBMAIL_THRESHOLD(env) && n.addrs + n.phones > 0)
        why = counts_text(&n);
    g_ptr_array_free(n.examples, TRUE);
    for (guint t = 0; t < c->threads->len && why == NULL; t++) {
        const struct det_thread *th = c->threads->pdata[t];
        if (thread_against(c, th, p)) {
            char *from = det_mask_addr(th->from);
            why = g_strdup_printf("mail of customer %s from %s", th->cust->name, from);
            g_free(from);
        }
    }
    return why;
}

/* Is p in the To or Cc of the message? */
static int in_header(const struct msg *m, const struct det_party *p)
{
    for (guint i = 0; i < m->addrs->len; i++) {
        const struct msg_addr *a = m->addrs->pdata[i];
        if ((a->role == MSG_TO || a->role == MSG_CC) && g_ascii_strcasecmp(a->addr, p->addr) == 0)
            return 1;
    }
    return 0;
}

static int sales_rule(const struct det_envelope *env, const struct det_message *dm,
                      GPtrArray *out, int bcc, char **error_r)
{
    const char *cat = bcc ? "bcc-external" : "personal-webmail";
    struct det_cache *c;
    GPtrArray *to;
    GString *why;

    if (!from_inside(env) || !sales(env))
        return 0;
    if (leak_facts(env, dm, &c, error_r) < 0)
        return -1;
    to = g_ptr_array_new();
    why = g_string_new(NULL);
    for (size_t i = 0; i < env->n_rcpts; i++) {
        const struct det_party *p = &env->rcpts[i];
        char *w;
        if (!external(p) || (bcc ? in_header(dm->msg, p) : !p->webmail))
            continue;
        if ((w = sales_concern(env, c, p)) == NULL)
            continue;
        if (why->len == 0)
            g_string_assign(why, w);
        g_ptr_array_add(to, p->addr);
        g_free(w);
    }
    if (to->len > 0) {
        char *what = g_strdup_printf("sales mail %s with %s",
                                     bcc ? "to recipients only in the envelope (BCC)"
                                         : "to personal webmail", why->str);
        finding_for(out, cat, bcc ? "bcc-external/envelope-only" : "personal-webmail/sales",
                    what, to);
        g_free(what);
    }
    g_string_free(why, TRUE);
    g_ptr_array_free(to, TRUE);
    return 0;
}

static int personal_webmail(const struct det_envelope *env, const struct det_message *dm,
                            GPtrArray *out, char **error_r)
{
    return sales_rule(env, dm, out, 0, error_r);
}

static int bcc_external(const struct det_envelope *env, const struct det_message *dm,
                        GPtrArray *out, char **error_r)
{
    return sales_rule(env, dm, out, 1, error_r);
}

const struct detector det_forward_external = { "forward-external", 1, forward_external };
const struct detector det_auto_forward = { "auto-forward", 1, auto_forward };
const struct detector det_customer_data = { "customer-data", 1, customer_data };
const struct detector det_personal_webmail = { "personal-webmail", 1, personal_webmail };
const struct detector det_bcc_external = { "bcc-external", 1, bcc_external };
