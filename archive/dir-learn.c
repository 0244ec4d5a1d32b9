/*
 * dir-learn.c - customers derived from what sales staff wrote and received
 *
 * For each employee of the given departments, two indexed queries: the
 * messages they sent (From) with the domains of their recipients (To, Cc
 * and envelope recipients), and the messages sent to them (To, Cc or
 * envelope) with the sender's domain. Counted per domain in distinct
 * messages (a message to two salespeople counts once for the domain, once
 * for each of them). Domains that are the company's own (or a subdomain of
 * one) or personal webmail are left out. Dates are the messages' Date:
 * headers; messages without one count but do not date anything.
 *
 * The learned customer is named after its domain: a better name is the
 * job of a customers CSV (importing one that lists the domain takes it
 * over from the learned customer).
 */
#include <string.h>
#include "custos/archive.h"
#include "custos/util.h"
#include "directory-private.h"

/* Messages from ?1 (an address) with each recipient domain. */
static const char sql_out[] =
    "SELECT f.msg, m.date, r.domain FROM addrs f JOIN messages m ON m.id = f.msg"
    " JOIN addrs r ON r.msg = f.msg AND r.role IN (1, 2) WHERE f.addr = ?1 AND f.role = 0"
    " UNION SELECT f.msg, m.date, r.domain FROM addrs f JOIN messages m ON m.id = f.msg"
    " JOIN rcpts r ON r.msg = f.msg WHERE f.addr = ?1 AND f.role = 0";
/* Messages to ?1 (To, Cc or envelope) with the sender's domain. */
static const char sql_in[] =
    "SELECT f.msg, m.date, f.domain FROM addrs f JOIN messages m ON m.id = f.msg"
    " WHERE f.role = 0 AND f.msg IN (SELECT msg FROM addrs WHERE addr = ?1 AND role IN (1, 2)"
    " UNION SELECT msg FROM rcpts WHERE addr = ?1)";

struct ldom {
    GHashTable *out, *in;       /* message ids (gint64 *) */
    GHashTable *emp;            /* employee address -> message ids (GHashTable *) */
    gint64 first, last;
};

static void ldom_free(gpointer p)
{
    struct ldom *l = p;

    g_hash_table_unref(l->out);
    g_hash_table_unref(l->in);
    g_hash_table_unref(l->emp);
    g_free(l);
}

static GHashTable *id_set(void)
{
    return g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
}

static void id_add(GHashTable *set, gint64 id)
{
    if (!g_hash_table_contains(set, &id))
        g_hash_table_add(set, g_memdup2(&id, sizeof(id)));
}

struct lctx {
    struct dir *d;
    GHashTable *doms;           /* domain -> struct ldom * */
    GHashTable *skip;           /* domain -> GINT(1 skip, 2 keep): classified */
};

/* Is the domain one to learn (not empty, internal or webmail)? -1 error. */
static int wanted(struct lctx *x, const char *domain, char **error_r)
{
    gpointer v = g_hash_table_lookup(x->skip, domain);
    int internal;

    if (v != NULL)
        return GPOINTER_TO_INT(v) == 2;
    if (*domain == '\0' || dir_is_webmail(x->d, domain)) {
        internal = 1;
    } else if ((internal = dir_is_internal(x->d, domain, error_r)) < 0) {
        return -1;
    }
    g_hash_table_insert(x->skip, g_strdup(domain), GINT_TO_POINTER(internal ? 1 : 2));
    return !internal;
}

static int run(struct lctx *x, sqlite3_stmt *st, const char *emp, int out, char **error_r)
{
    int rc;

    sqlite3_bind_text(st, 1, emp, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        gint64 msg = sqlite3_column_int64(st, 0), date = sqlite3_column_int64(st, 1);
        const char *dom = (const char *)sqlite3_column_text(st, 2);
        struct ldom *l;
        GHashTable *em;
        int w;

        if ((w = wanted(x, dom != NULL ? dom : "", error_r)) < 0) {
            sqlite3_reset(st);
            return -1;
        }
        if (!w)
            continue;
        if ((l = g_hash_table_lookup(x->doms, dom)) == NULL) {
            l = g_new0(struct ldom, 1);
            l->out = id_set();
            l->in = id_set();
            l->emp = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)g_hash_table_unref);
            g_hash_table_insert(x->doms, g_strdup(dom), l);
        }
        id_add(out ? l->out : l->in, msg);
        if ((em = g_hash_table_lookup(l->emp, emp)) == NULL) {
            em = id_set();
            g_hash_table_insert(l->emp, g_strdup(emp), em);
        }
        id_add(em, msg);
        if (date != 0) {
            if (l->first == 0 || date < l->first)
                l->first = date;
            if (date > l->last)
                l->last = date;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cus_error(error_r, "%s: learn: %s",
                         sqlite3_db_filename(dir_db(x->d), "main"),
                         sqlite3_errmsg(dir_db(x->d)));
    return 0;
}

static gint cmp_learned(gconstpointer a, gconstpointer b)
{
    const struct dir_learned *x = *(const struct dir_learned *const *)a;
    const struct dir_learned *y = *(const struct dir_learned *const *)b;
    gint64 nx = x->out + x->in, ny = y->out + y->in;

    if (nx != ny)
        return nx > ny ? -1 : 1;
    return strcmp(x->domain, y->domain);
}

static void learned_free1(gpointer p)
{
    dir_learned_free(p);
}

void dir_learned_free(struct dir_learned *l)
{
    if (l == NULL)
        return;
    g_free(l->domain);
    g_free(l->owner);
    g_free(l->customer);
    g_free(l->customer_source);
    g_free(l);
}

/* Is department one of the comma-separated list (ASCII case ignored)? */
static int dept_in(const char *department, char **depts)
{
    for (int i = 0; depts[i] != NULL; i++)
        if (g_ascii_strcasecmp(department, depts[i]) == 0)
            return 1;
    return 0;
}

int dir_learn(struct dir *d, const char *departments, gint64 min_messages,
              GPtrArray **learned_r, char **error_r)
{
    struct lctx x = { d, NULL, NULL };
    sqlite3_stmt *st_out = NULL, *st_in = NULL;
    GPtrArray *emps = NULL, *res = NULL;
    char **depts = NULL;
    GHashTableIter it;
    gpointer k, v;
    int ret = -1, ndepts = 0;

    *learned_r = NULL;
    if (dir_webmail(d) == NULL)
        return cus_error(error_r, "learn needs the webmail list ([directory] webmail_domains)");
    depts = g_strsplit(departments != NULL ? departments : "", ",", -1);
    for (int i = 0; depts[i] != NULL; i++)
        if (*g_strstrip(depts[i]) != '\0')
            ndepts++;
    if (ndepts == 0) {
        cus_error(error_r, "learn: no departments of sales staff ([archive] departments)");
        goto out;
    }
    if (sqlite3_prepare_v2(dir_db(d), sql_out, -1, &st_out, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(dir_db(d), sql_in, -1, &st_in, NULL) != SQLITE_OK) {
        cus_error(error_r, "%s: learn: %s", sqlite3_db_filename(dir_db(d), "main"),
                  sqlite3_errmsg(dir_db(d)));
        goto out;
    }
    if (dir_list(d, DIR_EMPLOYEES, &emps, error_r) < 0)
        goto out;
    x.doms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, ldom_free);
    x.skip = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < emps->len; i++) {
        const struct dir_employee *e = emps->pdata[i];
        if (!dept_in(e->department, depts))
            continue;
        if (run(&x, st_out, e->address, 1, error_r) < 0 ||
            run(&x, st_in, e->address, 0, error_r) < 0)
            goto out;
    }
    res = g_ptr_array_new_with_free_func(learned_free1);
    g_hash_table_iter_init(&it, x.doms);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct ldom *l = v;
        struct dir_learned *n;
        struct dir_customer *c = NULL;
        GHashTableIter ei;
        gpointer ek, ev;

        if (g_hash_table_size(l->out) < (guint)min_messages ||
            g_hash_table_size(l->in) < (guint)min_messages)
            continue;
        n = g_new0(struct dir_learned, 1);
        n->domain = g_strdup(k);
        n->out = g_hash_table_size(l->out);
        n->in = g_hash_table_size(l->in);
        n->first = l->first;
        n->last = l->last;
        g_hash_table_iter_init(&ei, l->emp);
        while (g_hash_table_iter_next(&ei, &ek, &ev)) {
            gint64 m = g_hash_table_size(ev);
            if (m > n->owner_messages ||
                (m == n->owner_messages && strcmp(ek, n->owner) < 0)) {
                g_free(n->owner);
                n->owner = g_strdup(ek);
                n->owner_messages = m;
            }
        }
        g_ptr_array_add(res, n);
        if (dir_customer_by_domain(d, n->domain, &c, error_r) < 0)
            goto out;
        if (c != NULL) {
            n->customer = g_strdup(c->name);
            n->customer_source = g_strdup(c->source);
            dir_customer_free(&c);
        }
    }
    g_ptr_array_sort(res, cmp_learned);
    *learned_r = res;
    res = NULL;
    ret = 0;
out:
    sqlite3_finalize(st_out);
    sqlite3_finalize(st_in);
    if (emps != NULL)
        g_ptr_array_free(emps, TRUE);
    if (res != NULL)
        g_ptr_array_free(res, TRUE);
    if (x.doms != NULL)
        g_hash_table_unref(x.doms);
    if (x.skip != NULL)
        g_hash_table_unref(x.skip);
    g_strfreev(depts);
    return ret;
}

int dir_learn_apply(struct arc *arc, struct dir *d, GPtrArray *learned,
                    struct dir_learn_result *res, char **error_r)
{
    GPtrArray *rows = g_ptr_array_new_with_free_func(dir_row_free_func(DIR_CUSTOMERS));
    int ret = -1;

    memset(res, 0, sizeof(*res));
    for (guint i = 0; i < learned->len; i++) {
        const struct dir_learned *l = learned->pdata[i];
        struct dir_customer *c = NULL;
        int found = dir_customer_by_domain(d, l->domain, &c, error_r);

        if (found < 0)
            goto out;
        if (found == 0 && (found = dir_customer_by_name(d, l->domain, &c, error_r)) < 0)
            goto out;
        if (found && strcmp(c->source, "learn") != 0) {
            res->skipped++;             /* an imported customer has it: theirs */
            dir_customer_free(&c);
            continue;
        }
        if (found) {
            int has = 0;
            for (guint k = 0; k < c->domains->len && !has; k++)
                has = strcmp(c->domains->pdata[k], l->domain) == 0;
            if (strcmp(c->owner, l->owner) == 0 && has) {
                res->unchanged++;
                dir_customer_free(&c);
                continue;
            }
            g_free(c->owner);
            c->owner = g_strdup(l->owner);
            if (!has) {
                g_ptr_array_add(c->domains, g_strdup(l->domain));
                dir_strv_sort_uniq(c->domains);
            }
            res->updated++;
        } else {
            c = dir_customer_new();
            g_free(c->name);
            c->name = g_strdup(l->domain);
            g_free(c->owner);
            c->owner = g_strdup(l->owner);
            g_free(c->source);
            c->source = g_strdup("learn");
            g_ptr_array_add(c->domains, g_strdup(l->domain));
            res->added++;
        }
        g_ptr_array_add(rows, c);
    }
    ret = rows->len > 0 ? dir_change(arc, DIR_CUSTOMERS, "learn", NULL, NULL, rows, error_r)
                        : 0;
out:
    g_ptr_array_free(rows, TRUE);
    return ret;
}
