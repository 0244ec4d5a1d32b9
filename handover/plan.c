/*
 * plan.c - checking a handover's input and saving its plan
 *
 * Every bad input is refused here, before anything is written, with an
 * error naming it: an unknown leaver or successor, the two the same, a
 * departed successor, a leaver already handed over to someone else (a
 * second handover needs --force), a plan of the same leaver half applied,
 * dates that are not dates, mailboxes that are missing or unreadable, a
 * split that names no customer of the leaver's. The preview is what apply
 * would do as the mailbox and archive are now; apply looks again.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/audit.h"
#include "custos/cli.h"
#include "custos/handover-forwards.h"
#include "custos/log.h"
#include "custos/retention.h"
#include "custos/safename.h"
#include "handover-private.h"

/* ---- plans on disk --------------------------------------------------------------- */

char *hov_plans_dir(const struct cfg *cfg)
{
    if (cfg->hov_plans != NULL)
        return g_strdup(cfg->hov_plans);
    return g_build_filename(cfg->arc_dir, "handover", NULL);
}

static int id_ok(const char *id)
{
    if (*id == '\0' || *id == '.' || strlen(id) > 128)
        return 0;
    for (const char *p = id; *p != '\0'; p++)
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_')
            return 0;
    return 1;
}

static void split_free(gpointer p)
{
    struct hov_split *s = p;

    g_free(s->key);
    g_free(s->to);
    g_free(s);
}

void hov_plan_free(struct hov_plan **pp)
{
    struct hov_plan *p = *pp;

    if (p == NULL)
        return;
    g_free(p->id);
    g_free(p->dir);
    if (p->root != NULL)
        json_node_unref(p->root);
    g_free(p->leaver);
    g_free(p->successor);
    g_free(p->effective);
    g_free(p->notice);
    g_free(p->postfix_map);
    g_free(p->postfix_map_type);
    if (p->splits != NULL)
        g_ptr_array_free(p->splits, TRUE);
    g_free(p);
    *pp = NULL;
}

const char *hov_plan_id(const struct hov_plan *p)
{
    return p->id;
}

const char *hov_plan_dir(const struct hov_plan *p)
{
    return p->dir;
}

/* The plan's fields from its JSON. */
static int plan_from_json(struct hov_plan *p, char **error_r)
{
    JsonObject *o, *l, *s;
    JsonArray *sp;

    if (!JSON_NODE_HOLDS_OBJECT(p->root))
        return cus_error(error_r, "plan %s: plan.json is not an object", p->id);
    o = json_node_get_object(p->root);
    l = json_object_get_object_member(o, "leaver");
    s = json_object_get_object_member(o, "successor");
    if (l == NULL || s == NULL || !json_object_has_member(o, "effective"))
        return cus_error(error_r, "plan %s: plan.json lacks the leaver, the successor or "
                         "the effective date", p->id);
    p->created = json_object_get_int_member_with_default(o, "created", 0);
    p->leaver = g_strdup(json_object_get_string_member_with_default(l, "address", ""));
    p->successor = g_strdup(json_object_get_string_member_with_default(s, "address", ""));
    p->effective = g_strdup(json_object_get_string_member_with_default(o, "effective", ""));
    p->notice = g_strdup(json_object_get_string_member_with_default(o, "notice", ""));
    if (json_object_has_member(o, "postfix_map") &&
        JSON_NODE_HOLDS_VALUE(json_object_get_member(o, "postfix_map")))
        p->postfix_map = g_strdup(json_object_get_string_member(o, "postfix_map"));
    p->postfix_map_type = g_strdup(json_object_get_string_member_with_default(o,
                                       "postfix_map_type", "hash"));
    p->force = json_object_get_boolean_member_with_default(o, "force", FALSE);
    p->splits = g_ptr_array_new_with_free_func(split_free);
    sp = json_object_has_member(o, "splits") ? json_object_get_array_member(o, "splits") : NULL;
    for (guint i = 0; sp != NULL && i < json_array_get_length(sp); i++) {
        JsonObject *so = json_array_get_object_element(sp, i);
        struct hov_split *x = g_new0(struct hov_split, 1);
        x->key = g_strdup(json_object_get_string_member_with_default(so, "key", ""));
        x->to = g_strdup(json_object_get_string_member_with_default(so, "to", ""));
        g_ptr_array_add(p->splits, x);
    }
    if (*p->leaver == '\0' || *p->successor == '\0' || hov_day_parse(p->effective) < 0)
        return cus_error(error_r, "plan %s: plan.json has a bad leaver, successor or date",
                         p->id);
    return 0;
}

int hov_plan_load(const struct cfg *cfg, const char *id, struct hov_plan **p_r,
                  char **error_r)
{
    struct hov_plan *p;
    char *plans, *file;

    if (!id_ok(id)) {
        cus_error(error_r, "\"%s\" is not a plan id (letters, digits, '.', '-', '_')", id);
        return HOV_BAD_INPUT;
    }
    plans = hov_plans_dir(cfg);
    p = g_new0(struct hov_plan, 1);
    p->id = g_strdup(id);
    p->dir = g_build_filename(plans, id, NULL);
    g_free(plans);
    file = g_build_filename(p->dir, "plan.json", NULL);
    if (access(file, F_OK) < 0) {
        cus_error(error_r, "no plan %s (%s: %s)", id, file, g_strerror(errno));
        g_free(file);
        hov_plan_free(&p);
        return HOV_BAD_INPUT;
    }
    if (hov_json_load(file, &p->root, error_r) < 0 || plan_from_json(p, error_r) < 0) {
        g_free(file);
        hov_plan_free(&p);
        return HOV_ERROR;
    }
    g_free(file);
    *p_r = p;
    return HOV_OK;
}

/* ---- checking the input ------------------------------------------------------------- */

/* A config that can be used for a handover. */
static int check_config(const struct cfg *cfg, char **error_r)
{
    const char *m = cfg->hov_maildir;

    if (m == NULL || (strstr(m, "%n") == NULL && strstr(m, "%u") == NULL))
        return cus_error(error_r, "config %s: [handover] maildir \"%s\" must name the user "
                         "(%%n or %%u)", cfg->path != NULL ? cfg->path : "(defaults)",
                         m != NULL ? m : "");
    if (cfg->hov_folder == NULL || strpbrk(cfg->hov_folder, "./~\\") != NULL ||
        !g_utf8_validate(cfg->hov_folder, -1, NULL))
        return cus_error(error_r, "config %s: [handover] folder \"%s\" must be one folder "
                         "name (no '.', '/', '~' or '\\')",
                         cfg->path != NULL ? cfg->path : "(defaults)",
                         cfg->hov_folder != NULL ? cfg->hov_folder : "");
    return 0;
}

static int norm_addr(const char *opt, const char *in, char **out_r, char **error_r)
{
    char *err = NULL;

    if (in == NULL)
        return cus_error(error_r, "%s is required", opt);
    if (dir_norm_addr(in, out_r, &err) < 0) {
        cus_error(error_r, "%s: %s", opt, err);
        g_free(err);
        return -1;
    }
    if (strchr(*out_r, '"') != NULL) {
        cus_error(error_r, "%s: '\"' cannot be in an address here (%s)", opt, *out_r);
        g_free(*out_r);
        *out_r = NULL;
        return -1;
    }
    return 0;
}

static int norm_day(const char *opt, const char *in, gint64 now, char **out_r, char **error_r)
{
    char *err = NULL;

    if (in == NULL) {
        char day[16];
        hov_day(now, day, sizeof(day));
        *out_r = g_strdup(day);
        return 0;
    }
    if (dir_norm_date(in, out_r, &err) < 0) {
        cus_error(error_r, "%s: %s (YYYY-MM-DD)", opt, err);
        g_free(err);
        return -1;
    }
    return 0;
}

/* Every other plan of leaver: one done with someone else, or one half
 * done, stands in the way (unless force for the first). */
int hov_check_other_plans(const struct cfg *cfg, const char *leaver, const char *successor,
                             const char *self_id, int force, char **error_r)
{
    char *plans = hov_plans_dir(cfg);
    GDir *d = g_dir_open(plans, 0, NULL);
    const char *n;
    int ret = 0;

    while (d != NULL && ret == 0 && (n = g_dir_read_name(d)) != NULL) {
        struct hov_plan *p = NULL;
        struct hov_journal *j = NULL;
        char *err = NULL;

        if (!id_ok(n) || (self_id != NULL && strcmp(n, self_id) == 0))
            continue;
        if (hov_plan_load(cfg, n, &p, &err) != HOV_OK) {
            g_free(err);
            continue;
        }
        if (strcmp(p->leaver, leaver) == 0 && hov_journal_load(p->dir, &j, &err) == 0) {
            int done = hov_journal_find(j, "record", "") != NULL;
            if (done && strcmp(p->successor, successor) != 0 && !force)
                ret = cus_error(error_r, "leaver %s was already handed over to %s (plan %s); "
                                "a second handover needs --force", leaver, p->successor, n);
            else if (!done && j->entries->len > 0)
                ret = cus_error(error_r, "plan %s of leaver %s is half applied: finish it "
                                "(custos-handover apply %s) first", n, leaver, n);
        }
        g_free(err);
        hov_journal_free(&j);
        hov_plan_free(&p);
    }
    if (d != NULL)
        g_dir_close(d);
    g_free(plans);
    return ret;
}

/* The people: both employees, the successor not departed, the leaver not
 * handed to someone else before. applying: the leaver may already be
 * departed with this successor (an earlier run of the same plan). */
int hov_check_people(struct dir *d, const char *leaver, const char *successor, int force,
                     struct dir_employee **leaver_r, struct dir_employee **successor_r,
                     char **error_r)
{
    struct dir_employee *l = NULL, *s = NULL;
    int r;

    if (strcmp(leaver, successor) == 0) {
        cus_error(error_r, "--to %s: the successor cannot be the leaver", successor);
        return HOV_BAD_INPUT;
    }
    if ((r = dir_employee_get(d, leaver, &l, error_r)) <= 0) {
        if (r == 0)
            cus_error(error_r, "--from %s: no such employee in the directory (custos-archive "
                      "directory import employees FILE)", leaver);
        return r == 0 ? HOV_BAD_INPUT : HOV_ERROR;
    }
    if ((r = dir_employee_get(d, successor, &s, error_r)) <= 0) {
        if (r == 0)
            cus_error(error_r, "--to %s: no such employee in the directory", successor);
        dir_employee_free(&l);
        return r == 0 ? HOV_BAD_INPUT : HOV_ERROR;
    }
    if (s->status == DIR_DEPARTED) {
        cus_error(error_r, "--to %s: the successor has departed (%s)", successor,
                  *s->departed ? s->departed : "no date");
        goto bad;
    }
    if (l->status == DIR_DEPARTED && *l->successor != '\0' &&
        strcmp(l->successor, successor) != 0 && !force) {
        cus_error(error_r, "--from %s: already departed and handed over to %s; a second "
                  "handover needs --force", leaver, l->successor);
        goto bad;
    }
    *leaver_r = l;
    *successor_r = s;
    return HOV_OK;
bad:
    dir_employee_free(&l);
    dir_employee_free(&s);
    return HOV_BAD_INPUT;
}

/* A Maildir we may read (the leaver's) or must find (the successor's). */
int hov_check_mailbox(const char *who, const char *path, char **error_r)
{
    struct stat st;
    char *cur = g_build_filename(path, "cur", NULL);
    int ret = HOV_OK;

    if (stat(path, &st) < 0)
        ret = cus_error(error_r, "%s mailbox %s: %s", who, path, g_strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        ret = cus_error(error_r, "%s mailbox %s is not a directory", who, path);
    else if (access(path, R_OK | X_OK) < 0)
        ret = cus_error(error_r, "%s mailbox %s cannot be read: %s", who, path,
                        g_strerror(errno));
    else if (access(cur, F_OK) < 0)
        ret = cus_error(error_r, "%s mailbox %s is not a Maildir (no cur/)", who, path);
    else if (access(cur, R_OK | X_OK) < 0)
        ret = cus_error(error_r, "%s mailbox %s cannot be read: %s", who, cur,
                        g_strerror(errno));
    g_free(cur);
    return ret == HOV_OK ? HOV_OK : HOV_NO_INPUT;
}

void hov_customer_free(gpointer p)
{
    struct dir_customer *c = p;

    dir_customer_free(&c);
}

static GPtrArray *strv_copy(const GPtrArray *a)
{
    GPtrArray *b = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < a->len; i++)
        g_ptr_array_add(b, g_strdup(a->pdata[i]));
    return b;
}

struct dir_customer *hov_customer_copy(const struct dir_customer *c)
{
    struct dir_customer *n = dir_customer_new();

    n->id = c->id;
    g_free(n->name);
    g_free(n->owner);
    g_free(n->source);
    n->name = g_strdup(c->name);
    n->owner = g_strdup(c->owner);
    n->source = g_strdup(c->source);
    g_ptr_array_free(n->domains, TRUE);
    g_ptr_array_free(n->contacts, TRUE);
    g_ptr_array_free(n->phones, TRUE);
    n->domains = strv_copy(c->domains);
    n->contacts = strv_copy(c->contacts);
    n->phones = strv_copy(c->phones);
    return n;
}

int hov_customers(struct dir *d, const char *leaver, const char *successor, GPtrArray *splits,
                  GPtrArray **customers_r, char **error_r)
{
    GPtrArray *all = NULL, *out;
    guint *used = NULL;

    if (dir_list(d, DIR_CUSTOMERS, &all, error_r) < 0)
        return HOV_ERROR;
    out = g_ptr_array_new_with_free_func(hov_customer_free);
    used = g_new0(guint, splits != NULL ? splits->len + 1 : 1);
    for (guint i = 0; i < all->len; i++) {
        struct dir_customer *c = all->pdata[i];

        if (strcmp(c->owner, leaver) != 0)
            continue;
        c = hov_customer_copy(c);
        g_free(c->owner);
        c->owner = g_strdup(successor);
        for (guint k = 0; splits != NULL && k < splits->len; k++) {
            const struct hov_split *x = splits->pdata[k];
            int match = g_ascii_strcasecmp(x->key, c->name) == 0;
            for (guint m = 0; !match && m < c->domains->len; m++)
                match = g_ascii_strcasecmp(x->key, c->domains->pdata[m]) == 0;
            if (match) {
                g_free(c->owner);
                c->owner = g_strdup(x->to);
                used[k]++;
                break;
            }
        }
        g_ptr_array_add(out, c);
    }
    for (guint k = 0; splits != NULL && k < splits->len; k++)
        if (used[k] == 0) {
            const struct hov_split *x = splits->pdata[k];
            cus_error(error_r, "--split %s=%s: %s is neither the name nor a domain of a "
                      "customer of %s", x->key, x->to, x->key, leaver);
            g_free(used);
            g_ptr_array_free(out, TRUE);
            g_ptr_array_free(all, TRUE);
            return HOV_BAD_INPUT;
        }
    g_free(used);
    g_ptr_array_free(all, TRUE);
    *customers_r = out;
    return HOV_OK;
}

/* ---- a session: the archive, the directory, the two people and mailboxes ------------- */

int hov_session_open(const struct cfg *cfg, const char *leaver, const char *successor,
                     int force, const char *audit_args, struct hov_session *ss,
                     char **error_r)
{
    char *err = NULL, *lvl = NULL, *top = NULL, *local;
    int r;

    memset(ss, 0, sizeof(*ss));
    ss->cfg = cfg;
    if (check_config(cfg, error_r) < 0)
        return HOV_CONFIG;
    if (arc_open(cfg, ARC_AUDIT, &ss->arc, error_r) < 0)
        return HOV_ERROR;
    if (audit_begin(arc_index(ss->arc), "handover", audit_args, &ss->audit_id, &err) < 0) {
        cus_error(error_r, "%s (nothing is done without an audit entry)", err);
        g_free(err);
        hov_session_close(ss, -1, 0, "");
        return HOV_ERROR;
    }
    if (dir_open_idx(arc_index(ss->arc), hov_webmail_path(cfg), &ss->dir, error_r) < 0) {
        hov_session_close(ss, EX_IOERR_, 0, "");
        return HOV_ERROR;
    }
    r = hov_check_people(ss->dir, leaver, successor, force, &ss->leaver, &ss->successor,
                         error_r);
    if (r != HOV_OK)
        return r;
    ss->src_root = hov_expand(cfg->hov_maildir, leaver);
    ss->dst_root = hov_expand(cfg->hov_maildir, successor);
    if (ss->src_root == NULL || ss->dst_root == NULL || *ss->src_root != '/' ||
        *ss->dst_root != '/') {
        cus_error(error_r, "config %s: [handover] maildir \"%s\" does not give an absolute "
                  "path", cfg->path != NULL ? cfg->path : "(defaults)", cfg->hov_maildir);
        return HOV_CONFIG;
    }
    if ((r = hov_check_mailbox("the leaver's", ss->src_root, error_r)) != HOV_OK ||
        (r = hov_check_mailbox("the successor's", ss->dst_root, error_r)) != HOV_OK)
        return r;
    if (hov_owner_of(ss->dst_root, &ss->owner, error_r) < 0)
        return HOV_NO_INPUT;
    local = hov_local_part(leaver);
    if (hov_level_encode(cfg->hov_folder, cfg->hov_folder_escape, &top, error_r) < 0 ||
        hov_level_encode(local, cfg->hov_folder_escape, &lvl, error_r) < 0) {
        g_free(local);
        g_free(top);
        return HOV_CONFIG;
    }
    ss->prefix = g_strconcat(top, ".", lvl, NULL);
    g_free(local);
    g_free(top);
    g_free(lvl);
    return HOV_OK;
}

void hov_session_close(struct hov_session *ss, int status, gint64 results, const char *detail)
{
    char *err = NULL;

    if (ss->arc != NULL && ss->audit_id > 0 &&
        audit_end(arc_index(ss->arc), ss->audit_id, results, status, detail, &err) < 0) {
        log_error("%s", err);
        g_free(err);
    }
    ss->audit_id = 0;
    dir_employee_free(&ss->leaver);
    dir_employee_free(&ss->successor);
    dir_close(&ss->dir);
    arc_close(&ss->arc);
    g_free(ss->src_root);
    g_free(ss->dst_root);
    g_free(ss->prefix);
    ss->src_root = ss->dst_root = ss->prefix = NULL;
}

void hov_survey_setup(struct hov_session *ss, struct hov_plan *p, struct hov_survey *s)
{
    memset(s, 0, sizeof(*s));
    s->plan = p;
    s->cfg = ss->cfg;
    s->arc = ss->arc;
    s->dir = ss->dir;
    s->leaver = ss->leaver;
    s->src_root = ss->src_root;
    s->dst_root = ss->dst_root;
    s->prefix = ss->prefix;
    s->lim = arc_limits(ss->arc);
    s->incident_since = hov_day_parse(p->effective) - (gint64)HOV_INCIDENT_DAYS * 86400;
}

/* ---- the preview ----------------------------------------------------------------------- */

static JsonNode *obj_node(JsonObject *o)
{
    JsonNode *n = json_node_alloc();

    json_node_init_object(n, o);
    json_object_unref(o);
    return n;
}

JsonNode *hov_forwards_json(GPtrArray *forwards)
{
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_alloc();

    for (guint i = 0; forwards != NULL && i < forwards->len; i++) {
        const struct hov_forward *f = forwards->pdata[i];
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "source", hov_fwd_source_name(f->source));
        json_object_set_string_member(o, "file", f->file);
        json_object_set_int_member(o, "line", f->line);
        json_object_set_string_member(o, "owner", f->owner);
        json_object_set_string_member(o, "dest", f->dest);
        json_object_set_string_member(o, "kind", hov_fwd_kind_name(f->kind));
        json_object_set_boolean_member(o, "outside", f->outside);
        json_object_set_boolean_member(o, "webmail", f->webmail);
        json_array_add_object_element(a, o);
    }
    json_node_init_array(n, a);
    json_array_unref(a);
    return n;
}

/* CRM rows: every contact of each reassigned customer (directory contacts
 * and correspondents the directory puts in it). */
JsonNode *hov_crm_rows(GPtrArray *customers, struct hov_survey *s, const char *leaver)
{
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_alloc();
    GPtrArray *contacts = s->contacts != NULL ? hov_contacts_list(s->contacts) : NULL;

    for (guint i = 0; customers != NULL && i < customers->len; i++) {
        const struct dir_customer *c = customers->pdata[i];
        GPtrArray *addrs = g_ptr_array_new_with_free_func(g_free);

        for (guint k = 0; k < c->contacts->len; k++)
            g_ptr_array_add(addrs, g_strdup(c->contacts->pdata[k]));
        for (guint k = 0; contacts != NULL && k < contacts->len; k++) {
            const struct hov_contact *ct = contacts->pdata[k];
            gboolean dup = FALSE;
            if (strcmp(ct->customer, c->name) != 0)
                continue;
            for (guint m = 0; m < addrs->len && !dup; m++)
                dup = strcmp(addrs->pdata[m], ct->addr) == 0;
            if (!dup)
                g_ptr_array_add(addrs, g_strdup(ct->addr));
        }
        g_ptr_array_sort(addrs, hov_strptr_cmp);
        if (addrs->len == 0)
            g_ptr_array_add(addrs, g_strdup(""));
        for (guint k = 0; k < addrs->len; k++) {
            JsonObject *o = json_object_new();
            const char *name = "";
            for (guint m = 0; contacts != NULL && m < contacts->len; m++)
                if (strcmp(((struct hov_contact *)contacts->pdata[m])->addr, addrs->pdata[k]) == 0)
                    name = ((struct hov_contact *)contacts->pdata[m])->name;
            json_object_set_string_member(o, "customer", c->name);
            json_object_set_string_member(o, "contact", addrs->pdata[k]);
            json_object_set_string_member(o, "contact_name", name);
            json_object_set_string_member(o, "old_owner", leaver);
            json_object_set_string_member(o, "new_owner", c->owner);
            json_array_add_object_element(a, o);
        }
        g_ptr_array_free(addrs, TRUE);
    }
    json_node_init_array(n, a);
    json_array_unref(a);
    return n;
}

static JsonNode *hov_preview(struct hov_session *ss, struct hov_survey *s, GPtrArray *customers,
                      GPtrArray *forwards, JsonNode *notices, gint64 hold_matches)
{
    JsonObject *o = json_object_new(), *r = json_object_new(), *h = json_object_new();
    JsonArray *fa = json_array_new(), *ca = json_array_new();
    gint64 total = 0;
    char *q;

    for (guint i = 0; i < s->folders->len; i++) {
        const struct hov_fstat *f = s->folders->pdata[i];
        JsonObject *fo = json_object_new();
        char *dd = hov_storage_display(f->dest);

        json_object_set_string_member(fo, "folder", f->display);
        json_object_set_string_member(fo, "storage", f->storage);
        json_object_set_string_member(fo, "dest", dd);
        json_object_set_string_member(fo, "dest_storage", f->dest);
        json_object_set_int_member(fo, "messages", f->messages);
        json_object_set_int_member(fo, "duplicates", f->dups);
        json_object_set_int_member(fo, "skipped", f->skipped);
        json_object_set_int_member(fo, "bytes", f->bytes);
        json_array_add_object_element(fa, fo);
        total += f->unique;
        g_free(dd);
    }
    json_object_set_array_member(o, "folders", fa);
    json_object_set_int_member(o, "mailbox_messages", total);
    json_object_set_int_member(o, "archive_messages", s->archive_hits);
    json_object_set_int_member(o, "recovered", s->recovered->len);
    {
        char *rs = g_strconcat(ss->prefix, ".Recovered", NULL), *rd = hov_storage_display(rs);
        json_object_set_string_member(o, "recovered_folder", rd);
        g_free(rs);
        g_free(rd);
    }
    json_object_set_int_member(o, "contacts", hov_contacts_list(s->contacts)->len);
    for (guint i = 0; customers != NULL && i < customers->len; i++) {
        const struct dir_customer *c = customers->pdata[i];
        JsonObject *co = json_object_new();
        json_object_set_string_member(co, "customer", c->name);
        json_object_set_string_member(co, "old_owner", ss->leaver->address);
        json_object_set_string_member(co, "new_owner", c->owner);
        json_array_add_object_element(ca, co);
    }
    json_object_set_array_member(o, "customers", ca);
    json_object_set_member(o, "crm", hov_crm_rows(customers, s, ss->leaver->address));
    json_object_set_string_member(r, "address", ss->leaver->address);
    json_object_set_string_member(r, "status", "departed");
    json_object_set_string_member(r, "successor", ss->successor->address);
    json_object_set_member(o, "routing", obj_node(r));
    json_object_set_member(o, "forwards", hov_forwards_json(forwards));
    json_object_set_member(o, "notices", notices != NULL ? json_node_copy(notices)
                                                        : json_node_new(JSON_NODE_NULL));
    q = g_strdup_printf("participant:\"%s\"", ss->leaver->address);
    json_object_set_string_member(h, "query", q);
    json_object_set_int_member(h, "matches", hold_matches);
    json_object_set_member(o, "hold", obj_node(h));
    g_free(q);
    return obj_node(o);
}

/* What the preview says, for people. */
void hov_preview_text(JsonObject *plan, JsonObject *pv, GString *out)
{
    JsonObject *l = json_object_get_object_member(plan, "leaver");
    JsonObject *su = json_object_get_object_member(plan, "successor");
    JsonObject *mb = json_object_get_object_member(plan, "mailboxes");
    JsonArray *fa = json_object_get_array_member(pv, "folders");
    JsonArray *ca = json_object_get_array_member(pv, "customers");
    JsonArray *fw = json_object_get_array_member(pv, "forwards");
    JsonNode *nn = json_object_get_member(pv, "notices");
    JsonObject *h = json_object_get_object_member(pv, "hold");

    g_string_append_printf(out, "leaver     %s <%s> (%s)\n",
                           json_object_get_string_member_with_default(l, "name", ""),
                           json_object_get_string_member_with_default(l, "address", ""),
                           json_object_get_string_member_with_default(l, "status", ""));
    g_string_append_printf(out, "successor  %s <%s>\n",
                           json_object_get_string_member_with_default(su, "name", ""),
                           json_object_get_string_member_with_default(su, "address", ""));
    g_string_append_printf(out, "dates      notice period from %s, effective %s\n",
                           json_object_get_string_member_with_default(plan, "notice", ""),
                           json_object_get_string_member_with_default(plan, "effective", ""));
    g_string_append_printf(out, "mailboxes  %s\n        -> %s\n",
                           json_object_get_string_member_with_default(mb, "leaver", ""),
                           json_object_get_string_member_with_default(mb, "successor", ""));
    g_string_append(out, "folders (messages, duplicates copied once):\n");
    for (guint i = 0; fa != NULL && i < json_array_get_length(fa); i++) {
        JsonObject *f = json_array_get_object_element(fa, i);
        const char *name = json_object_get_string_member(f, "folder");
        glong w = g_utf8_strlen(name, -1);

        /* CJK characters take two columns */
        for (const char *c = name; *c != '\0'; c = g_utf8_next_char(c))
            w += g_unichar_iswide(g_utf8_get_char(c)) ? 1 : 0;
        g_string_append_printf(out, "  %s%*s %6" G_GINT64_FORMAT " %4" G_GINT64_FORMAT
                               "  -> %s\n", name, (int)MAX(0, 28 - w), "",
                               json_object_get_int_member(f, "messages"),
                               json_object_get_int_member(f, "duplicates"),
                               json_object_get_string_member(f, "dest"));
    }
    g_string_append_printf(out, "recovered  %" G_GINT64_FORMAT " messages the archive holds "
                           "(of %" G_GINT64_FORMAT ") that the mailbox lacks -> %s\n",
                           json_object_get_int_member(pv, "recovered"),
                           json_object_get_int_member(pv, "archive_messages"),
                           json_object_get_string_member(pv, "recovered_folder"));
    g_string_append_printf(out, "contacts   %" G_GINT64_FORMAT " external correspondents "
                           "(vCard and CSV, in the successor's mailbox and the package)\n",
                           json_object_get_int_member(pv, "contacts"));
    g_string_append_printf(out, "customers  %u reassigned\n",
                           ca != NULL ? json_array_get_length(ca) : 0);
    for (guint i = 0; ca != NULL && i < json_array_get_length(ca); i++) {
        JsonObject *c = json_array_get_object_element(ca, i);
        g_string_append_printf(out, "  %s: %s -> %s\n", json_object_get_string_member(c, "customer"),
                               json_object_get_string_member(c, "old_owner"),
                               json_object_get_string_member(c, "new_owner"));
    }
    g_string_append_printf(out, "routing    %s marked departed with successor %s: "
                           "custos-milter sends the leaver's mail to the successor\n",
                           json_object_get_string_member_with_default(l, "address", ""),
                           json_object_get_string_member_with_default(su, "address", ""));
    if (json_object_has_member(plan, "postfix_map") &&
        JSON_NODE_HOLDS_VALUE(json_object_get_member(plan, "postfix_map")))
        g_string_append_printf(out, "           and a Postfix virtual alias map %s:%s\n",
                               json_object_get_string_member_with_default(plan,
                                   "postfix_map_type", "hash"),
                               json_object_get_string_member(plan, "postfix_map"));
    g_string_append_printf(out, "forwards   %u of the leaver's, disabled on apply (backups "
                           "kept)\n", fw != NULL ? json_array_get_length(fw) : 0);
    for (guint i = 0; fw != NULL && i < json_array_get_length(fw); i++) {
        JsonObject *f = json_array_get_object_element(fw, i);
        g_string_append_printf(out, "  %s %s:%" G_GINT64_FORMAT ": %s -> %s%s%s\n",
                               json_object_get_string_member(f, "source"),
                               json_object_get_string_member(f, "file"),
                               json_object_get_int_member(f, "line"),
                               json_object_get_string_member(f, "owner"),
                               json_object_get_string_member(f, "dest"),
                               json_object_get_boolean_member(f, "outside") ? "  OUTSIDE" : "",
                               json_object_get_boolean_member(f, "webmail") ? " (webmail)" : "");
    }
    if (nn != NULL && JSON_NODE_HOLDS_OBJECT(nn)) {
        JsonObject *no = json_node_get_object(nn);
        JsonArray *na = json_object_get_array_member(no, "messages");
        if (!json_object_get_boolean_member_with_default(no, "enabled", FALSE))
            g_string_append_printf(out, "notices    off ([handover] notices); %u customer "
                                   "contacts would be told\n",
                                   na != NULL ? json_array_get_length(na) : 0);
        else
            g_string_append_printf(out, "notices    %u, at most %" G_GINT64_FORMAT
                                   " a minute:\n", na != NULL ? json_array_get_length(na) : 0,
                                   json_object_get_int_member_with_default(no, "rate", 0));
        for (guint i = 0; na != NULL && i < json_array_get_length(na); i++) {
            JsonObject *m = json_array_get_object_element(na, i);
            g_string_append_printf(out, "  %s (%s, %s): %s\n",
                                   json_object_get_string_member(m, "to"),
                                   json_object_get_string_member(m, "customer"),
                                   json_object_get_string_member(m, "language"),
                                   json_object_get_string_member(m, "subject"));
        }
    }
    g_string_append_printf(out, "legal hold on %s (%" G_GINT64_FORMAT " messages now)\n",
                           json_object_get_string_member(h, "query"),
                           json_object_get_int_member(h, "matches"));
}

static JsonNode *person_json(const struct dir_employee *e)
{
    JsonObject *o = json_object_new();
    JsonArray *pa = json_array_new();

    json_object_set_string_member(o, "address", e->address);
    json_object_set_string_member(o, "name", e->name);
    json_object_set_string_member(o, "department", e->department);
    json_object_set_string_member(o, "status", dir_status_name(e->status));
    json_object_set_string_member(o, "departed", e->departed);
    json_object_set_string_member(o, "successor", e->successor);
    json_object_set_string_member(o, "manager", e->manager);
    json_object_set_string_member(o, "mobile", e->mobile);
    for (guint i = 0; i < e->personal->len; i++)
        json_array_add_string_element(pa, e->personal->pdata[i]);
    json_object_set_array_member(o, "personal", pa);
    return obj_node(o);
}

/* Everything a preview needs, from a session: survey, customers,
 * forwards, notices, hold matches. */
int hov_preview_build(struct hov_session *ss, struct hov_plan *p, JsonNode **pv_r,
                      char **error_r)
{
    struct hov_survey s;
    GPtrArray *customers = NULL, *forwards = NULL;
    JsonNode *notices = NULL;
    gint64 matches = 0;
    char *q = NULL;
    int r;

    hov_survey_setup(ss, p, &s);
    if (hov_survey_run(&s, error_r) < 0) {
        hov_survey_clear(&s);
        return HOV_ERROR;
    }
    r = hov_customers(ss->dir, ss->leaver->address, ss->successor->address, p->splits,
                      &customers, error_r);
    if (r != HOV_OK)
        goto out;
    s.customers = customers;
    r = HOV_ERROR;
    if (hov_forwards_find(ss->cfg, ss->dir, ss->leaver->address, &forwards, error_r) < 0)
        goto out;
    if ((notices = hov_notices_plan(ss->cfg, &s, error_r)) == NULL) {
        r = HOV_CONFIG;
        goto out;
    }
    q = g_strdup_printf("participant:\"%s\"", ss->leaver->address);
    if (hold_matches(arc_index(ss->arc), q, &matches, error_r) < 0)
        goto out;
    *pv_r = hov_preview(ss, &s, customers, forwards, notices, matches);
    r = HOV_OK;
out:
    g_free(q);
    if (notices != NULL)
        json_node_unref(notices);
    if (forwards != NULL)
        g_ptr_array_free(forwards, TRUE);
    if (customers != NULL)
        g_ptr_array_free(customers, TRUE);
    s.customers = NULL;
    hov_survey_clear(&s);
    return r;
}

/* ---- making a plan ------------------------------------------------------------------------ */

static char *new_id(const char *leaver, gint64 now)
{
    char day[16], *local = hov_local_part(leaver), *safe, *id;

    hov_day(now, day, sizeof(day));
    memmove(day + 4, day + 5, 2);   /* YYYYMM */
    memmove(day + 6, day + 8, 3);   /* YYYYMMDD and the NUL */
    safe = safename(local, strlen(local), 48, "leaver", SAFENAME_DASH);
    for (char *c = safe; *c != '\0'; c++)
        if (!g_ascii_isalnum(*c) && *c != '.' && *c != '-')
            *c = '_';
    id = g_strdup_printf("%s-%s-%04x", day, safe, g_random_int_range(0, 0x10000));
    g_free(local);
    g_free(safe);
    return id;
}

char *hov_audit_args(const char *verb, const struct hov_opts *o, const char *id)
{
    GString *s = g_string_new(verb);

    if (id != NULL)
        g_string_append_printf(s, " %s", id);
    if (o->from != NULL)
        g_string_append_printf(s, " --from %s", o->from);
    if (o->to != NULL)
        g_string_append_printf(s, " --to %s", o->to);
    if (o->effective != NULL)
        g_string_append_printf(s, " --effective %s", o->effective);
    if (o->notice != NULL)
        g_string_append_printf(s, " --notice %s", o->notice);
    for (int i = 0; o->splits != NULL && o->splits[i] != NULL; i++)
        g_string_append_printf(s, " --split %s", o->splits[i]);
    if (o->postfix_map != NULL)
        g_string_append_printf(s, " --postfix-map %s", o->postfix_map);
    if (o->force)
        g_string_append(s, " --force");
    if (o->dry_run)
        g_string_append(s, " --dry-run");
    return g_string_free(s, FALSE);
}

int hov_plan_make(const struct cfg *cfg, const struct hov_opts *o, struct hov_plan **p_r,
                  GString *out, char **error_r)
{
    struct hov_session ss;
    struct hov_plan *p = g_new0(struct hov_plan, 1);
    gint64 now = o->now > 0 ? o->now : (gint64)time(NULL);
    char *leaver = NULL, *successor = NULL, *args = NULL, *plans = NULL, *file = NULL;
    JsonObject *root;
    JsonNode *pv = NULL;
    int r = HOV_BAD_INPUT, opened = 0;

    memset(&ss, 0, sizeof(ss));
    p->splits = g_ptr_array_new_with_free_func(split_free);
    if (norm_addr("--from", o->from, &leaver, error_r) < 0 ||
        norm_addr("--to", o->to, &successor, error_r) < 0 ||
        norm_day("--effective", o->effective, now, &p->effective, error_r) < 0 ||
        norm_day("--notice", o->notice, now, &p->notice, error_r) < 0)
        goto out;
    if (o->notice == NULL && strcmp(p->notice, p->effective) > 0) {
        g_free(p->notice);                  /* today, or the effective date if earlier */
        p->notice = g_strdup(p->effective);
    }
    if (strcmp(p->notice, p->effective) > 0) {
        cus_error(error_r, "--notice %s is after --effective %s", p->notice, p->effective);
        goto out;
    }
    for (int i = 0; o->splits != NULL && o->splits[i] != NULL; i++) {
        const char *eq = strrchr(o->splits[i], '=');
        struct hov_split *x;
        char *to = NULL;

        if (eq == NULL || eq == o->splits[i] ||
            norm_addr("--split", eq + 1, &to, error_r) < 0) {
            if (eq == NULL || eq == o->splits[i])
                cus_error(error_r, "--split \"%s\": expected CUSTOMER=ADDRESS or "
                          "DOMAIN=ADDRESS", o->splits[i]);
            goto out;
        }
        x = g_new0(struct hov_split, 1);
        x->key = g_strndup(o->splits[i], (gsize)(eq - o->splits[i]));
        x->to = to;
        g_ptr_array_add(p->splits, x);
    }
    if (o->postfix_map != NULL) {
        if (hov_map_spec(cfg, o->postfix_map, &p->postfix_map_type, &p->postfix_map,
                         error_r) < 0) {
            r = HOV_BAD_INPUT;
            goto out;
        }
        if (access(p->postfix_map, F_OK) == 0) {
            cus_error(error_r, "--postfix-map %s: the file is there already (it is never "
                      "overwritten; give a new name)", p->postfix_map);
            r = HOV_CANT_CREATE;
            goto out;
        }
    }
    p->leaver = g_strdup(leaver);
    p->successor = g_strdup(successor);
    p->force = o->force;
    p->created = now;
    if (hov_check_other_plans(cfg, leaver, successor, NULL, o->force, error_r) < 0) {
        r = HOV_BAD_INPUT;
        goto out;
    }
    args = hov_audit_args("plan", o, NULL);
    r = hov_session_open(cfg, leaver, successor, o->force, args, &ss, error_r);
    opened = 1;
    if (r != HOV_OK)
        goto out;
    for (guint i = 0; i < p->splits->len; i++) {
        struct hov_split *x = p->splits->pdata[i];
        struct dir_employee *e = NULL;
        int f = dir_employee_get(ss.dir, x->to, &e, error_r);
        if (f <= 0 || e->status == DIR_DEPARTED || strcmp(x->to, leaver) == 0) {
            if (f == 0 || (f > 0))
                cus_error(error_r, "--split %s=%s: %s", x->key, x->to,
                          f == 0 ? "no such employee in the directory"
                                 : "the leaver or someone departed cannot take customers");
            dir_employee_free(&e);
            r = f < 0 ? HOV_ERROR : HOV_BAD_INPUT;
            goto out;
        }
        dir_employee_free(&e);
    }
    p->id = new_id(leaver, now);
    plans = hov_plans_dir(cfg);
    p->dir = g_build_filename(plans, p->id, NULL);
    if ((r = hov_preview_build(&ss, p, &pv, error_r)) != HOV_OK)
        goto out;
    root = json_object_new();
    json_object_set_int_member(root, "version", 1);
    json_object_set_string_member(root, "id", p->id);
    json_object_set_int_member(root, "created", now);
    {
        char *user = audit_user(NULL);
        json_object_set_string_member(root, "created_by", user);
        g_free(user);
    }
    json_object_set_member(root, "leaver", person_json(ss.leaver));
    json_object_set_member(root, "successor", person_json(ss.successor));
    json_object_set_string_member(root, "effective", p->effective);
    json_object_set_string_member(root, "notice", p->notice);
    {
        JsonArray *sa = json_array_new();
        for (guint i = 0; i < p->splits->len; i++) {
            const struct hov_split *x = p->splits->pdata[i];
            JsonObject *so = json_object_new();
            json_object_set_string_member(so, "key", x->key);
            json_object_set_string_member(so, "to", x->to);
            json_array_add_object_element(sa, so);
        }
        json_object_set_array_member(root, "splits", sa);
    }
    if (p->postfix_map != NULL) {
        json_object_set_string_member(root, "postfix_map", p->postfix_map);
        json_object_set_string_member(root, "postfix_map_type", p->postfix_map_type);
    }
    else
        json_object_set_null_member(root, "postfix_map");
    json_object_set_boolean_member(root, "force", o->force);
    {
        JsonObject *mb = json_object_new();
        char *pd = hov_storage_display(ss.prefix);
        json_object_set_string_member(mb, "leaver", ss.src_root);
        json_object_set_string_member(mb, "successor", ss.dst_root);
        json_object_set_string_member(mb, "prefix", ss.prefix);
        json_object_set_string_member(mb, "prefix_display", pd);
        json_object_set_member(root, "mailboxes", obj_node(mb));
        g_free(pd);
    }
    json_object_set_member(root, "preview", pv);
    pv = NULL;
    p->root = obj_node(root);
    file = g_build_filename(p->dir, "plan.json", NULL);
    if (cus_mkdirs(plans, 0700, error_r) < 0 || mkdir(p->dir, 0700) < 0) {
        if (error_r != NULL && *error_r == NULL)
            cus_error_errno(error_r, "mkdir(%s)", p->dir);
        r = HOV_CANT_CREATE;
        goto out;
    }
    if (hov_json_save(file, p->root, error_r) < 0) {
        r = HOV_CANT_CREATE;
        goto out;
    }
    if (out != NULL) {
        JsonObject *ro = json_node_get_object(p->root);
        g_string_append_printf(out, "plan %s saved in %s\n", p->id, p->dir);
        hov_preview_text(ro, json_object_get_object_member(ro, "preview"), out);
        g_string_append_printf(out, "nothing has been changed; apply it with: custos-handover "
                               "apply %s\n", p->id);
    }
    *p_r = p;
    p = NULL;
    r = HOV_OK;
out:
    if (opened)
        hov_session_close(&ss, r == HOV_OK ? 0 : r == HOV_BAD_INPUT ? EX_DATAERR_ : EX_IOERR_,
                          r == HOV_OK ? 1 : 0, r == HOV_OK ? (*p_r)->id : "");
    if (pv != NULL)
        json_node_unref(pv);
    g_free(file);
    g_free(plans);
    g_free(args);
    g_free(leaver);
    g_free(successor);
    hov_plan_free(&p);
    return r;
}
