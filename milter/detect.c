/*
 * detect.c - classify a message's parties from the directory; run the
 * detectors; the departed-sender detector
 *
 * departed-sender: mail sent as an employee the directory marks departed,
 * seen by the envelope sender, the header From, or the SASL login (a
 * mailbox whose password was never reset after the person left). One
 * finding per way it was seen; a registered personal address of a
 * departed employee counts as that employee.
 */
#include <stdarg.h>
#include <string.h>
#include "custos/det-text.h"
#include "detect-private.h"
#include "custos/util.h"

/* Classify addr into p; seen: the parties classified before it (one with
 * the same address is copied, not looked up again). */
static int party_set(const struct det_envelope *env, const char *addr, struct det_party *p,
                     const struct det_party *const *seen, size_t n_seen, char **error_r)
{
    struct dir *d = env->dir;
    int r;

    p->addr = g_utf8_strdown(addr != NULL ? addr : "", -1);
    if (*p->addr == '\0' || strchr(p->addr, '@') == NULL)
        return 0;
    for (size_t i = 0; i < n_seen; i++)
        if (strcmp(seen[i]->addr, p->addr) == 0) {
            p->webmail = seen[i]->webmail;
            p->internal = seen[i]->internal;
            p->emp = seen[i]->emp;
            p->emp_shared = 1;
            p->cust = seen[i]->cust;
            return 0;
        }
    p->webmail = dir_is_webmail(d, p->addr);
    if ((r = dir_employee_get(d, p->addr, &p->emp, error_r)) < 0)
        return -1;
    if (r == 1 && strchr(strrchr(p->addr, '@'), '.') != NULL) {
        p->internal = 1;    /* an employee's domain is ours: dir_is_internal() says so */
    } else {
        if ((r = dir_is_internal(d, p->addr, error_r)) < 0)
            return -1;
        p->internal = r;
    }
    if (p->emp == NULL && dir_employee_of_personal(d, p->addr, &p->emp, error_r) < 0)
        return -1;
    if (!p->internal)
        p->cust = det_know_addr(env->know, p->addr);
    return 0;
}

static void party_clear(struct det_party *p)
{
    g_free(p->addr);
    if (!p->emp_shared)
        dir_employee_free(&p->emp);
    memset(p, 0, sizeof(*p));
}

/* Is p an employee of one of departments (comma-separated, ASCII case ignored)? */
static int in_departments(const struct det_party *p, const char *departments)
{
    char **names;
    int found = 0;

    if (p->emp == NULL || departments == NULL)
        return 0;
    names = g_strsplit(departments, ",", -1);
    for (int i = 0; names[i] != NULL && !found; i++)
        found = g_ascii_strcasecmp(g_strstrip(names[i]), p->emp->department) == 0;
    g_strfreev(names);
    return found;
}

int det_classify(struct dir *d, const char *departments, const char *sender,
                 const char *from_header, const char *auth, char *const *rcpts,
                 struct det_envelope *env, char **error_r)
{
    char *from = NULL, *login = NULL;
    const struct det_party **seen = NULL;
    size_t n = 0, n_seen = 0;
    int ret = -1;

    if (from_header != NULL) {
        /* the first mailbox of the From header, RFC 2047 and all */
        InternetAddressList *l = internet_address_list_parse(NULL, from_header);
        for (int i = 0; l != NULL && i < internet_address_list_length(l) && from == NULL; i++) {
            InternetAddress *a = internet_address_list_get_address(l, i);  /* borrowed */
            if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
                /* the IDNA form of a domain is asked of libidn2 even when
                 * it is ASCII already (then it is the same) */
                InternetAddressMailbox *mb = INTERNET_ADDRESS_MAILBOX(a);
                const char *addr = internet_address_mailbox_get_addr(mb);
                from = g_strdup(cus_is_ascii(addr, strlen(addr))
                                    ? addr : internet_address_mailbox_get_idn_addr(mb));
            }
        }
        if (l != NULL)
            g_object_unref(l);
    }
    if (auth != NULL && *auth != '\0') {
        const char *at = sender != NULL ? strchr(sender, '@') : NULL;
        login = strchr(auth, '@') != NULL || at == NULL ? g_strdup(auth)
                                                         : g_strconcat(auth, at, NULL);
    }
    env->dir = d;
    while (rcpts != NULL && rcpts[n] != NULL)
        n++;
    env->rcpts = g_new0(struct det_party, n + 1);
    env->n_rcpts = n;
    seen = g_new(const struct det_party *, n + 3);
    if (det_know_get(d, det_name_min(env), &env->know, error_r) < 0)
        goto out;
    {
        struct det_party *const first[] = { &env->sender, &env->from, &env->login };
        const char *const addr[] = { sender, from, login };

        for (int i = 0; i < 3; i++) {
            if (party_set(env, addr[i], first[i], seen, n_seen, error_r) < 0)
                goto out;
            seen[n_seen++] = first[i];
        }
    }
    env->sales = in_departments(&env->sender, departments) ||
                 in_departments(&env->from, departments);
    for (size_t i = 0; i < n; i++) {
        if (party_set(env, rcpts[i], &env->rcpts[i], seen, n_seen, error_r) < 0)
            goto out;
        seen[n_seen++] = &env->rcpts[i];
        env->sales |= in_departments(&env->rcpts[i], departments);
    }
    ret = 0;
out:
    g_free(seen);
    g_free(from);
    g_free(login);
    return ret;
}

void det_envelope_clear(struct det_envelope *env)
{
    /* the parties that share an employee first, then the ones that own it */
    for (size_t i = 0; i < env->n_rcpts; i++)
        party_clear(&env->rcpts[i]);
    party_clear(&env->login);
    party_clear(&env->from);
    party_clear(&env->sender);
    g_free(env->rcpts);
    env->rcpts = NULL;
    env->n_rcpts = 0;
    det_know_unref(&env->know);
}

int det_name_min(const struct det_envelope *env)
{
    return env->cfg != NULL ? env->cfg->det_name_min : DET_NAME_MIN_DEFAULT;
}

struct det_finding *det_finding_new(const char *category, const char *rule, const char *fmt,
                                    ...)
{
    struct det_finding *f = g_new0(struct det_finding, 1);
    va_list ap;

    f->category = g_strdup(category);
    f->rule = g_strdup(rule);
    f->rcpts = g_ptr_array_new_with_free_func(g_free);
    va_start(ap, fmt);
    f->evidence = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return f;
}

void det_finding_add_rcpt(struct det_finding *f, const char *addr)
{
    char *a = g_utf8_strdown(addr, -1);

    for (guint i = 0; i < f->rcpts->len; i++)
        if (strcmp(g_ptr_array_index(f->rcpts, i), a) == 0) {
            g_free(a);
            return;
        }
    g_ptr_array_add(f->rcpts, a);
}

void det_finding_free(gpointer p)
{
    struct det_finding *f = p;

    if (f == NULL)
        return;
    g_free(f->category);
    g_free(f->rule);
    g_free(f->evidence);
    if (f->rcpts != NULL)
        g_ptr_array_free(f->rcpts, TRUE);
    g_free(f);
}

int det_from_internal(const struct det_envelope *env)
{
    return env->sender.internal || env->from.internal;
}

const struct dir_employee *det_sending_employee(const struct det_envelope *env)
{
    if (env->sender.internal && env->sender.emp != NULL &&
        strcmp(env->sender.addr, env->sender.emp->address) == 0)
        return env->sender.emp;
    if (env->from.internal && env->from.emp != NULL &&
        strcmp(env->from.addr, env->from.emp->address) == 0)
        return env->from.emp;
    return NULL;
}

/* ---- what detectors share about a message ----------------------------------- */

struct det_cache *det_cache_new(void)
{
    return g_new0(struct det_cache, 1);
}

void det_cache_free(struct det_cache **cp)
{
    struct det_cache *c = *cp;

    if (c == NULL)
        return;
    *cp = NULL;
    if (c->items != NULL)
        g_hash_table_destroy(c->items);
    if (c->threads != NULL)
        g_ptr_array_free(c->threads, TRUE);
    det_know_unref(&c->know);
    g_free(c->leak_error);
    for (size_t i = 0; i < G_N_ELEMENTS(c->norm); i++)
        if (!(c->norm_borrowed & (1u << i)))
            g_free(c->norm[i]);
    g_free(c);
}

const char *det_cache_text(const struct det_message *m, enum det_text_part part)
{
    struct det_cache *c = m->cache;
    const struct msg *msg = m->msg;

    if (c->norm[part] == NULL) {
        const char *s = part == DET_TEXT_SUBJECT ? msg->subject
                      : part == DET_TEXT_BODY ? msg->body->str : msg->att_text->str;
        size_t n = part == DET_TEXT_SUBJECT ? strlen(s)
                 : part == DET_TEXT_BODY ? msg->body->len : msg->att_text->len;
        /* text already normal is used as it is, not copied (it lives as
         * long as the message and the cache) */
        if (det_text_is_normal(s, n)) {
            c->norm[part] = (char *)s;
            c->norm_borrowed |= 1u << part;
        } else {
            c->norm[part] = det_text_norm(s, (gssize)n);
        }
    }
    return c->norm[part];
}

/* ---- departed-sender -------------------------------------------------------- */

static void departed_check(const struct det_party *p, const char *how, const char *what,
                           GPtrArray *out)
{
    char rule[64];
    const struct dir_employee *e = p->emp;

    if (e == NULL || e->status != DIR_DEPARTED)
        return;
    g_snprintf(rule, sizeof(rule), "departed-sender/%s", how);
    if (strcmp(p->addr, e->address) == 0)
        g_ptr_array_add(out, det_finding_new(
            "departed-sender", rule, "%s %s: departed employee (left %s%s%s)", what, p->addr,
            *e->departed ? e->departed : "on an unknown date",
            *e->successor ? "; successor " : "", e->successor));
    else
        g_ptr_array_add(out, det_finding_new(
            "departed-sender", rule, "%s %s: personal address of departed employee %s "
            "(left %s%s%s)", what, p->addr, e->address,
            *e->departed ? e->departed : "on an unknown date",
            *e->successor ? "; successor " : "", e->successor));
}

static int departed_sender(const struct det_envelope *env, const struct det_message *m,
                           GPtrArray *out, char **error_r)
{
    departed_check(&env->sender, "envelope", "envelope sender", out);
    if (env->from.emp == NULL || env->sender.emp == NULL ||
        strcmp(env->from.emp->address, env->sender.emp->address) != 0)
        departed_check(&env->from, "header-from", "header From", out);
    departed_check(&env->login, "sasl", "SASL login", out);
    return 0;
}

/* the envelope and the From header (classified) are all it needs */
static const struct detector det_departed = { "departed-sender", 0, departed_sender };

const struct detector *const *det_all(void)
{
    static const struct detector *const all[] = {
        &det_departed, &det_forward_external, &det_auto_forward, &det_customer_data,
        &det_personal_webmail, &det_bcc_external, &det_payment_details, &det_self_forward,
        &det_evasion, &det_contact_private, NULL,
    };

    return all;
}

int det_want_message(void)
{
    const struct detector *const *all = det_all();

    for (int i = 0; all[i] != NULL; i++)
        if (all[i]->wants_message)
            return 1;
    return 0;
}

int det_run(const struct det_envelope *env, const struct det_message *m,
            GPtrArray **findings_r, char **error_r)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(det_finding_free);
    const struct detector *const *all = det_all();
    struct det_message mc;
    int ret = 0;

    if (m != NULL) {
        mc = *m;
        mc.cache = det_cache_new();
        m = &mc;
    }

    for (int i = 0; all[i] != NULL; i++) {
        char *err = NULL;
        if (all[i]->wants_message && m == NULL)
            continue;           /* the message could not be parsed */
        if (all[i]->run(env, all[i]->wants_message ? m : NULL, out, &err) < 0) {
            if (ret == 0)
                cus_error(error_r, "detector %s: %s", all[i]->name, err ? err : "failed");
            ret = -1;
            g_free(err);
        }
    }
    if (m != NULL)
        det_cache_free(&mc.cache);
    *findings_r = out;
    return ret;
}
