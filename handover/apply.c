/*
 * apply.c - doing a plan, step by step, so that a second run finishes the first
 *
 * The steps and what makes each safe to run again are in handover.h. The
 * two archive batches (depart, record) carry a marker in index.db meta,
 * "handover:ID:STEP", committed with their events: a run that died after
 * the commit but before its journal line finds the marker and does not
 * write the events again. What a step needs from an earlier one that has
 * since changed the directory (the leaver's customers, the forwardings
 * found before they were disabled) is saved in the plan directory before
 * the change.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include "custos/audit.h"
#include "custos/cli.h"
#include "custos/handover-forwards.h"
#include "custos/log.h"
#include "custos/retention.h"
#include "handover-private.h"

struct hov_copy {
    struct hov_session *ss;
    struct hov_plan *p;
    struct hov_journal *j;
    struct hov_dest *dest;
    GPtrArray *subscribe;           /* storage names */
    gint64 copied;
};

/* ---- the survey's copy callbacks -------------------------------------------------------- */

int hov_copy_folder_begin(struct hov_copy *c, struct hov_fstat *f, int *skip_r, char **error_r)
{
    const struct hov_jentry *e = hov_journal_find(c->j, "folder", f->storage);
    char *kw;
    int ret;

    g_ptr_array_add(c->subscribe, g_strdup(f->dest));
    if (e != NULL) {
        *skip_r = 1;
        return 0;
    }
    *skip_r = 0;
    kw = g_build_filename(f->path, "dovecot-keywords", NULL);
    ret = hov_dest_open(c->ss->dst_root, f->dest, &c->ss->owner,
                        access(kw, F_OK) == 0 ? kw : NULL, &c->dest, error_r);
    g_free(kw);
    return ret;
}

int hov_copy_message(struct hov_copy *c, struct hov_fstat *f, const void *data, int fd,
                     size_t len, const unsigned char sha[CUS_SHA256_LEN], gint64 mtime,
                     const char *flags, int in_new, char **error_r)
{
    int r = hov_dest_put(c->dest, data, fd, len, sha, mtime, flags, in_new, error_r);

    if (r < 0) {
        char *e = *error_r;
        *error_r = g_strdup_printf("copying %s to %s: %s", f->path, hov_dest_path(c->dest), e);
        g_free(e);
        return -1;
    }
    if (r > 0) {
        f->copied++;
        c->copied++;
    } else {
        f->present++;
    }
    hov_crash_point("copy");
    return 0;
}

static JsonNode *fstat_json(const struct hov_fstat *f)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_alloc();
    char *dd = hov_storage_display(f->dest);

    json_object_set_string_member(o, "folder", f->display);
    json_object_set_string_member(o, "storage", f->storage);
    json_object_set_string_member(o, "dest", dd);
    json_object_set_string_member(o, "dest_storage", f->dest);
    json_object_set_int_member(o, "messages", f->messages);
    json_object_set_int_member(o, "unique", f->unique);
    json_object_set_int_member(o, "duplicates", f->dups);
    json_object_set_int_member(o, "copied", f->copied);
    json_object_set_int_member(o, "already_there", f->present);
    json_object_set_int_member(o, "skipped", f->skipped);
    json_object_set_int_member(o, "bytes", f->bytes);
    json_node_init_object(n, o);
    json_object_unref(o);
    g_free(dd);
    return n;
}

int hov_copy_folder_end(struct hov_copy *c, struct hov_fstat *f, char **error_r)
{
    int ret = hov_dest_sync(c->dest, error_r);

    hov_dest_close(&c->dest);
    if (ret < 0)
        return -1;
    hov_crash_point("folder");
    return hov_journal_add(c->j, "folder", f->storage, fstat_json(f), error_r);
}

/* ---- depart: the directory ------------------------------------------------------------- */

struct depart {
    struct hov_plan *p;
    struct hov_session *ss;
    GPtrArray *customers;
    int already;
};

static char *meta_key(const struct hov_plan *p, const char *step)
{
    return g_strdup_printf("handover:%s:%s", p->id, step);
}

static GPtrArray *strv_dup(const GPtrArray *a)
{
    GPtrArray *b = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < a->len; i++)
        g_ptr_array_add(b, g_strdup(a->pdata[i]));
    return b;
}

static void employee_free(gpointer e)
{
    struct dir_employee *x = e;
    dir_employee_free(&x);
}

static int depart_fn(struct arc *arc, void *ctx, char **error_r)
{
    struct depart *d = ctx;
    const struct dir_employee *l = d->ss->leaver;
    char *key = meta_key(d->p, "depart"), *val = NULL;
    GPtrArray *rows = NULL;
    struct dir_employee *e;
    int found, ret = -1;

    found = idx_meta_get(arc_index(arc), key, &val, error_r);
    if (found != 0) {
        d->already = found > 0;
        ret = found > 0 ? 0 : -1;
        goto out;
    }
    e = dir_employee_new();
    g_free(e->address);
    g_free(e->name);
    g_free(e->department);
    g_free(e->departed);
    g_free(e->successor);
    g_free(e->manager);
    g_free(e->mobile);
    g_ptr_array_free(e->personal, TRUE);
    e->address = g_strdup(l->address);
    e->name = g_strdup(l->name);
    e->department = g_strdup(l->department);
    e->status = DIR_DEPARTED;
    e->departed = g_strdup(d->p->effective);
    e->successor = g_strdup(d->p->successor);
    e->manager = g_strdup(l->manager);
    e->mobile = g_strdup(l->mobile);
    e->personal = strv_dup(l->personal);
    rows = g_ptr_array_new_with_free_func(employee_free);
    g_ptr_array_add(rows, e);
    if (dir_change(arc, DIR_EMPLOYEES, "handover", NULL, NULL, rows, error_r) < 0)
        goto out;
    if (d->customers->len > 0 &&
        dir_change(arc, DIR_CUSTOMERS, "handover", NULL, NULL, d->customers, error_r) < 0)
        goto out;
    if (idx_meta_set(arc_index(arc), key, "done", error_r) < 0 || arc_flush(arc, error_r) < 0)
        goto out;
    ret = 0;
out:
    if (rows != NULL)
        g_ptr_array_free(rows, TRUE);
    g_free(val);
    g_free(key);
    return ret;
}

/* The leaver's customers with their new owners: saved before the
 * directory changes, read back by later runs. */
static int customers_get(struct hov_session *ss, struct hov_plan *p, GPtrArray **customers_r,
                         char **error_r)
{
    char *file = g_build_filename(p->dir, "customers.json", NULL);
    JsonNode *n = NULL;
    GPtrArray *cs = NULL;
    int r = HOV_ERROR;

    if (access(file, F_OK) == 0) {
        JsonArray *a;
        if (hov_json_load(file, &n, error_r) < 0)
            goto out;
        a = json_node_get_array(n);
        cs = g_ptr_array_new_with_free_func(hov_customer_free);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *o = json_array_get_object_element(a, i);
            struct dir_customer *c = NULL;
            int f = dir_customer_by_name(ss->dir, json_object_get_string_member(o, "customer"),
                                         &c, error_r);
            if (f < 0)
                goto out;
            if (f == 0)
                continue;       /* gone from the directory since */
            g_free(c->owner);
            c->owner = g_strdup(json_object_get_string_member(o, "new_owner"));
            g_ptr_array_add(cs, c);
        }
    } else {
        JsonArray *a = json_array_new();
        if ((r = hov_customers(ss->dir, ss->leaver->address, ss->successor->address,
                               p->splits, &cs, error_r)) != HOV_OK) {
            json_array_unref(a);
            goto out;
        }
        r = HOV_ERROR;
        for (guint i = 0; i < cs->len; i++) {
            const struct dir_customer *c = cs->pdata[i];
            JsonObject *o = json_object_new();
            json_object_set_string_member(o, "customer", c->name);
            json_object_set_string_member(o, "old_owner", ss->leaver->address);
            json_object_set_string_member(o, "new_owner", c->owner);
            json_array_add_object_element(a, o);
        }
        n = json_node_alloc();
        json_node_init_array(n, a);
        json_array_unref(a);
        if (hov_json_save(file, n, error_r) < 0)
            goto out;
    }
    *customers_r = cs;
    cs = NULL;
    r = HOV_OK;
out:
    if (cs != NULL)
        g_ptr_array_free(cs, TRUE);
    if (n != NULL)
        json_node_unref(n);
    g_free(file);
    return r;
}

static int step_depart(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                       GPtrArray *customers, char **error_r)
{
    struct depart d = { p, ss, customers, 0 };
    JsonObject *o;
    JsonArray *ca;
    JsonNode *n;

    if (hov_journal_find(j, "depart", "") != NULL)
        return HOV_OK;
    if (hov_with_writer(ss->cfg, depart_fn, &d, error_r) < 0)
        return HOV_ERROR;
    hov_crash_point("depart");
    o = json_object_new();
    json_object_set_string_member(o, "leaver", ss->leaver->address);
    json_object_set_string_member(o, "status_before", dir_status_name(ss->leaver->status));
    json_object_set_string_member(o, "status", "departed");
    json_object_set_string_member(o, "departed", p->effective);
    json_object_set_string_member(o, "notice", p->notice);
    json_object_set_string_member(o, "successor", p->successor);
    ca = json_array_new();
    for (guint i = 0; i < customers->len; i++) {
        const struct dir_customer *c = customers->pdata[i];
        JsonObject *co = json_object_new();
        json_object_set_string_member(co, "customer", c->name);
        json_object_set_string_member(co, "old_owner", ss->leaver->address);
        json_object_set_string_member(co, "new_owner", c->owner);
        json_array_add_object_element(ca, co);
    }
    json_object_set_array_member(o, "customers", ca);
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    return hov_journal_add(j, "depart", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
}

/* ---- hold ----------------------------------------------------------------------------------- */

struct holdx {
    struct hov_plan *p;
    const char *leaver;
    char *name;
    gint64 seq;
};

static int hold_find(void *ctx, const struct hold *h)
{
    struct holdx *x = ctx;

    if (h->released == 0 && strcmp(h->name, x->name) == 0)
        x->seq = h->seq;
    return 0;
}

static int hold_fn(struct arc *arc, void *ctx, char **error_r)
{
    struct holdx *x = ctx;
    char *q, *note;
    int r;

    if (hold_list(arc_index(arc), hold_find, x, error_r) < 0)
        return -1;
    if (x->seq > 0)
        return 0;                   /* placed by an earlier run */
    q = g_strdup_printf("participant:\"%s\"", x->leaver);
    note = g_strdup_printf("custos-handover plan %s: the leaver's archived mail", x->p->id);
    r = hold_add(arc, x->name, q, note, &x->seq, error_r);
    g_free(q);
    g_free(note);
    return r == HOLD_OK ? 0 : -1;
}

static int step_hold(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                     char **error_r)
{
    struct holdx x = { p, ss->leaver->address, NULL, 0 };
    JsonObject *o;
    JsonNode *n;
    gint64 matches = -1;
    int ret;

    if (hov_journal_find(j, "hold", "") != NULL)
        return HOV_OK;
    x.name = g_strdup_printf("handover-%s", p->id);
    ret = hov_with_writer(ss->cfg, hold_fn, &x, error_r);
    if (ret < 0) {
        g_free(x.name);
        return HOV_ERROR;
    }
    hov_crash_point("hold");
    o = json_object_new();
    json_object_set_string_member(o, "name", x.name);
    {
        char *q = g_strdup_printf("participant:\"%s\"", ss->leaver->address);
        json_object_set_string_member(o, "query", q);
        if (hold_matches(arc_index(ss->arc), q, &matches, NULL) < 0)
            matches = -1;
        g_free(q);
    }
    json_object_set_int_member(o, "seq", x.seq);
    json_object_set_int_member(o, "matches", matches);
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    g_free(x.name);
    return hov_journal_add(j, "hold", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
}

/* ---- forwards --------------------------------------------------------------------------------- */

static JsonNode *manifest_json(const char *backup_dir)
{
    char *man = g_build_filename(backup_dir, "MANIFEST", NULL), *text = NULL, **lines;
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_alloc();

    if (g_file_get_contents(man, &text, NULL, NULL)) {
        lines = g_strsplit(text, "\n", -1);
        for (int i = 0; lines[i] != NULL; i++) {
            char **f = g_strsplit(lines[i], "\t", 3);
            if (g_strv_length(f) == 3) {
                JsonObject *o = json_object_new();
                json_object_set_string_member(o, "file", f[0]);
                json_object_set_string_member(o, "backup", f[1]);
                json_object_set_string_member(o, "action", f[2]);
                json_array_add_object_element(a, o);
            }
            g_strfreev(f);
        }
        g_strfreev(lines);
        g_free(text);
    }
    g_free(man);
    json_node_init_array(n, a);
    json_array_unref(a);
    return n;
}

static int step_forwards(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                         char **error_r)
{
    char *found_file = g_build_filename(p->dir, "forwards.json", NULL);
    char *backups = g_build_filename(p->dir, "backups", NULL);
    GPtrArray *fw = NULL, *changes = NULL;
    JsonObject *o;
    JsonNode *n, *found = NULL;
    int ret = HOV_ERROR;

    if (hov_journal_find(j, "forwards", "") != NULL) {
        ret = HOV_OK;
        goto out;
    }
    if (hov_forwards_find(ss->cfg, ss->dir, ss->leaver->address, &fw, error_r) < 0)
        goto out;
    if (access(found_file, F_OK) == 0) {
        if (hov_json_load(found_file, &found, error_r) < 0)
            goto out;
    } else {
        found = hov_forwards_json(fw);
        if (hov_json_save(found_file, found, error_r) < 0)
            goto out;
    }
    if (hov_forwards_disable(fw, p->id, backups, &changes, error_r) < 0)
        goto out;
    for (guint i = 0; i < changes->len; i++) {
        const struct hov_fwd_change *c = changes->pdata[i];
        if (*c->note != '\0')
            log_info("forwarding audit: %s: %s", c->file, c->note);
    }
    hov_crash_point("forwards");
    o = json_object_new();
    json_object_set_member(o, "found", found);
    found = NULL;
    json_object_set_member(o, "changes", manifest_json(backups));
    {
        JsonArray *notes = json_array_new();
        for (guint i = 0; i < changes->len; i++) {
            const struct hov_fwd_change *c = changes->pdata[i];
            if (*c->note != '\0')
                json_array_add_string_element(notes, c->note);
        }
        json_object_set_array_member(o, "notes", notes);
    }
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    ret = hov_journal_add(j, "forwards", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
out:
    if (found != NULL)
        json_node_unref(found);
    if (fw != NULL)
        g_ptr_array_free(fw, TRUE);
    if (changes != NULL)
        g_ptr_array_free(changes, TRUE);
    g_free(found_file);
    g_free(backups);
    return ret;
}

/* ---- recovered ------------------------------------------------------------------------------------ */

static int step_recovered(struct hov_session *ss, struct hov_journal *j, struct hov_survey *s,
                          struct hov_copy *c, char **error_r)
{
    struct hov_fstat f = { 0 };
    struct hov_dest *d = NULL;
    int ret = HOV_ERROR;

    f.dest = g_strconcat(ss->prefix, ".Recovered", NULL);
    f.display = g_strdup("(archive)");
    f.storage = g_strdup("");
    f.path = g_strdup("");
    g_ptr_array_add(c->subscribe, g_strdup(f.dest));
    if (hov_journal_find(j, "recovered", "") != NULL) {
        ret = HOV_OK;
        goto out;
    }
    if (hov_dest_open(ss->dst_root, f.dest, &ss->owner, NULL, &d, error_r) < 0)
        goto out;
    for (guint i = 0; i < s->recovered->len; i++) {
        gint64 id = g_array_index(s->recovered, gint64, i);
        GBytes *raw = NULL;
        unsigned char sha[CUS_SHA256_LEN];
        struct hov_msginfo *mi = NULL;
        const char *data;
        gsize len;
        gint64 when;
        int r;

        if (arc_get_raw(ss->arc, id, &raw, error_r) < 0)
            goto out;
        data = g_bytes_get_data(raw, &len);
        cus_sha256(data, len, sha);
        when = hov_msginfo_from_raw(data, len, s->lim, &mi, NULL) == 0 && mi->date > 0
                   ? mi->date : (gint64)time(NULL);
        hov_msginfo_free(mi);
        f.messages++;
        r = hov_dest_put(d, data, -1, len, sha, when, "", 0, error_r);
        g_bytes_unref(raw);
        if (r < 0)
            goto out;
        if (r > 0) {
            f.copied++;
            c->copied++;
        } else {
            f.present++;
        }
        f.unique++;
        f.bytes += (gint64)len;
        hov_crash_point("recovered");
    }
    if (hov_dest_sync(d, error_r) < 0)
        goto out;
    ret = hov_journal_add(j, "recovered", "", fstat_json(&f), error_r) < 0 ? HOV_ERROR : HOV_OK;
out:
    hov_dest_close(&d);
    g_free(f.dest);
    g_free(f.display);
    g_free(f.storage);
    g_free(f.path);
    return ret;
}

/* ---- files: contacts, CRM, Postfix map --------------------------------------------------------------- */

/* Write data to path in the successor's Maildir unless a file of someone
 * else's is there: only an earlier copy of ours (the same bytes as the
 * plan's copy, mine) may be replaced. */
static int put_user_file(struct hov_session *ss, const char *path, const char *mine,
                         GString *data, char **error_r)
{
    GBytes *there = NULL, *ours = NULL;
    int same = 0;

    if (access(path, F_OK) == 0) {
        if (cus_read_file(path, 256 << 20, &there, error_r) < 0)
            return HOV_ERROR;
        if (g_bytes_get_size(there) == data->len &&
            memcmp(g_bytes_get_data(there, NULL), data->str, data->len) == 0)
            same = 1;
        else if (cus_read_file(mine, 256 << 20, &ours, NULL) == 0 && g_bytes_equal(there, ours))
            same = 2;           /* what an earlier run wrote: ours to replace */
        g_bytes_unref(there);
        if (ours != NULL)
            g_bytes_unref(ours);
        if (same == 0) {
            cus_error(error_r, "%s is there and is not custos-handover's: it is not "
                      "overwritten (move it away and run apply again)", path);
            return HOV_CANT_CREATE;
        }
        if (same == 1)
            return HOV_OK;
    }
    return hov_write_owned(path, data->str, data->len, &ss->owner, error_r) < 0
               ? HOV_CANT_CREATE : HOV_OK;
}

static int step_contacts(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                         struct hov_survey *s, char **error_r)
{
    GPtrArray *list;
    GString *vcf = NULL, *csv = NULL;
    char *local = NULL, *names[2] = { NULL, NULL }, *mine[2] = { NULL, NULL };
    JsonObject *o;
    JsonNode *n;
    int ret = HOV_ERROR;

    if (hov_journal_find(j, "contacts", "") != NULL)
        return HOV_OK;
    if (hov_survey_phones(s, error_r) < 0)
        return HOV_ERROR;
    list = hov_contacts_list(s->contacts);
    vcf = hov_contacts_vcf(list);
    csv = hov_contacts_csv(list);
    local = hov_local_part(ss->leaver->address);
    for (char *c = local; *c != '\0'; c++)
        if (*c == '/' || (unsigned char)*c < 0x20)
            *c = '_';
    names[0] = g_strdup_printf("%s/%s-%s-contacts.vcf", ss->dst_root, ss->cfg->hov_folder,
                               local[0] == '.' ? local + 1 : local);
    names[1] = g_strdup_printf("%s/%s-%s-contacts.csv", ss->dst_root, ss->cfg->hov_folder,
                               local[0] == '.' ? local + 1 : local);
    mine[0] = g_build_filename(p->dir, "contacts.vcf", NULL);
    mine[1] = g_build_filename(p->dir, "contacts.csv", NULL);
    /* the successor's copies first: an old plan copy tells ours from theirs */
    if ((ret = put_user_file(ss, names[0], mine[0], vcf, error_r)) != HOV_OK ||
        (ret = put_user_file(ss, names[1], mine[1], csv, error_r)) != HOV_OK)
        goto out;
    ret = HOV_ERROR;
    if (cus_write_file_atomic(mine[0], vcf->str, vcf->len, 0600, error_r) < 0 ||
        cus_write_file_atomic(mine[1], csv->str, csv->len, 0600, error_r) < 0)
        goto out;
    hov_crash_point("contacts");
    o = json_object_new();
    json_object_set_int_member(o, "contacts", list->len);
    json_object_set_string_member(o, "vcf", names[0]);
    json_object_set_string_member(o, "csv", names[1]);
    {
        unsigned char h[CUS_SHA256_LEN];
        char hex[CUS_SHA256_HEX];
        cus_sha256(vcf->str, vcf->len, h);
        cus_hex(h, CUS_SHA256_LEN, hex);
        json_object_set_string_member(o, "vcf_sha256", hex);
    }
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    ret = hov_journal_add(j, "contacts", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
out:
    if (vcf != NULL)
        g_string_free(vcf, TRUE);
    if (csv != NULL)
        g_string_free(csv, TRUE);
    for (int i = 0; i < 2; i++) {
        g_free(names[i]);
        g_free(mine[i]);
    }
    g_free(local);
    return ret;
}

static int step_crm(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                    struct hov_survey *s, GPtrArray *customers, char **error_r)
{
    JsonNode *rows, *n;
    JsonArray *a;
    GString *csv;
    char *file;
    JsonObject *o;
    int ret;

    if (hov_journal_find(j, "crm", "") != NULL)
        return HOV_OK;
    rows = hov_crm_rows(customers, s, ss->leaver->address);
    a = json_node_get_array(rows);
    csv = g_string_new("customer,contact,contact_name,old_owner,new_owner\r\n");
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *r = json_array_get_object_element(a, i);
        hov_csv_field(csv, json_object_get_string_member(r, "customer"), 0);
        hov_csv_field(csv, json_object_get_string_member(r, "contact"), 0);
        hov_csv_field(csv, json_object_get_string_member(r, "contact_name"), 0);
        hov_csv_field(csv, json_object_get_string_member(r, "old_owner"), 0);
        hov_csv_field(csv, json_object_get_string_member(r, "new_owner"), 1);
    }
    file = g_build_filename(p->dir, "crm.csv", NULL);
    ret = cus_write_file_atomic(file, csv->str, csv->len, 0600, error_r) < 0 ? HOV_CANT_CREATE
                                                                               : HOV_OK;
    if (ret == HOV_OK) {
        o = json_object_new();
        json_object_set_string_member(o, "file", file);
        json_object_set_int_member(o, "rows", json_array_get_length(a));
        json_object_set_member(o, "rows_list", rows);
        rows = NULL;
        n = json_node_alloc();
        json_node_init_object(n, o);
        json_object_unref(o);
        ret = hov_journal_add(j, "crm", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
    }
    if (rows != NULL)
        json_node_unref(rows);
    g_string_free(csv, TRUE);
    g_free(file);
    return ret;
}

static int step_postfix_map(struct hov_plan *p, struct hov_journal *j, char **error_r)
{
    GString *m;
    GBytes *there = NULL;
    JsonObject *o;
    JsonNode *n;
    int ret = HOV_OK;

    if (p->postfix_map == NULL || hov_journal_find(j, "postfix-map", "") != NULL)
        return HOV_OK;
    m = g_string_new(NULL);
    g_string_append_printf(m, "# custos-handover plan %s: %s departed %s; mail for the leaver "
                           "goes to the successor.\n# postmap %s, then add it to "
                           "virtual_alias_maps.\n%s %s\n", p->id, p->leaver, p->effective,
                           p->postfix_map, p->leaver, p->successor);
    if (access(p->postfix_map, F_OK) == 0) {
        if (cus_read_file(p->postfix_map, 1 << 20, &there, NULL) < 0 ||
            g_bytes_get_size(there) != m->len ||
            memcmp(g_bytes_get_data(there, NULL), m->str, m->len) != 0) {
            cus_error(error_r, "--postfix-map %s: the file is there and is not this plan's; it "
                      "is not overwritten", p->postfix_map);
            ret = HOV_CANT_CREATE;
        }
        if (there != NULL)
            g_bytes_unref(there);
    } else if (cus_write_file_atomic(p->postfix_map, m->str, m->len, 0644, error_r) < 0) {
        ret = HOV_CANT_CREATE;
    }
    if (ret == HOV_OK) {
        o = json_object_new();
        json_object_set_string_member(o, "file", p->postfix_map);
        json_object_set_string_member(o, "line", strrchr(g_strchomp(m->str), '\n') + 1);
        n = json_node_alloc();
        json_node_init_object(n, o);
        json_object_unref(o);
        ret = hov_journal_add(j, "postfix-map", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
    }
    g_string_free(m, TRUE);
    return ret;
}

/* ---- record ------------------------------------------------------------------------------------------- */

struct recordx {
    struct hov_plan *p;
    GPtrArray *kv;
    gint64 seq;
};

static int record_fn(struct arc *arc, void *ctx, char **error_r)
{
    struct recordx *x = ctx;
    char *key = meta_key(x->p, "record"), *val = NULL;
    int found, ret = -1;

    found = idx_meta_get(arc_index(arc), key, &val, error_r);
    if (found != 0) {
        if (found > 0)
            x->seq = g_ascii_strtoll(val, NULL, 10);
        ret = found > 0 ? 0 : -1;
        goto out;
    }
    if (arc_event(arc, "handover", 0, (const char *const *)x->kv->pdata, &x->seq, error_r) < 0)
        goto out;
    {
        char buf[24];
        g_snprintf(buf, sizeof(buf), "%" G_GINT64_FORMAT, x->seq);
        if (idx_meta_set(arc_index(arc), key, buf, error_r) < 0)
            goto out;
    }
    ret = arc_flush(arc, error_r);
out:
    g_free(val);
    g_free(key);
    return ret;
}

static void kv_add(GPtrArray *kv, const char *k, const char *v)
{
    g_ptr_array_add(kv, g_strdup(k));
    g_ptr_array_add(kv, g_strdup(v != NULL ? v : ""));
}

static void kv_int(GPtrArray *kv, const char *k, gint64 v)
{
    g_ptr_array_add(kv, g_strdup(k));
    g_ptr_array_add(kv, g_strdup_printf("%" G_GINT64_FORMAT, v));
}

static gint64 jint(const struct hov_journal *j, const char *step, const char *member)
{
    gint64 sum = 0;

    for (guint i = 0; i < j->entries->len; i++) {
        const struct hov_jentry *e = j->entries->pdata[i];
        if (strcmp(e->step, step) == 0 && JSON_NODE_HOLDS_OBJECT(e->data))
            sum += json_object_get_int_member_with_default(json_node_get_object(e->data),
                                                           member, 0);
    }
    return sum;
}

static gint64 jcount(const struct hov_journal *j, const char *step)
{
    gint64 n = 0;

    for (guint i = 0; i < j->entries->len; i++)
        n += strcmp(((const struct hov_jentry *)j->entries->pdata[i])->step, step) == 0;
    return n;
}

static int step_record(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                       GPtrArray *customers, char **error_r)
{
    struct recordx x = { p, g_ptr_array_new_with_free_func(g_free), 0 };
    const struct hov_jentry *fe = hov_journal_find(j, "forwards", "");
    JsonObject *o;
    JsonNode *n;
    char *user = audit_user(NULL);
    int ret;

    if (hov_journal_find(j, "record", "") != NULL) {
        g_ptr_array_free(x.kv, TRUE);
        g_free(user);
        return HOV_OK;
    }
    kv_add(x.kv, "plan", p->id);
    kv_add(x.kv, "leaver", p->leaver);
    kv_add(x.kv, "successor", p->successor);
    kv_add(x.kv, "notice", p->notice);
    kv_add(x.kv, "effective", p->effective);
    kv_int(x.kv, "folders", jcount(j, "folder"));
    kv_int(x.kv, "messages", jint(j, "folder", "unique"));
    kv_int(x.kv, "recovered", jint(j, "recovered", "unique"));
    kv_int(x.kv, "contacts", jint(j, "contacts", "contacts"));
    for (guint i = 0; i < customers->len; i++) {
        const struct dir_customer *c = customers->pdata[i];
        char *v = g_strdup_printf("%s -> %s", c->name, c->owner);
        kv_add(x.kv, "customer", v);
        g_free(v);
    }
    {
        char *h = g_strdup_printf("handover-%s", p->id);
        kv_add(x.kv, "hold", h);
        g_free(h);
    }
    kv_int(x.kv, "forwards-disabled",
           fe != NULL && JSON_NODE_HOLDS_OBJECT(fe->data)
               ? (gint64)json_array_get_length(
                     json_object_get_array_member(json_node_get_object(fe->data), "changes"))
               : 0);
    kv_add(x.kv, "user", user);
    g_ptr_array_add(x.kv, NULL);
    ret = hov_with_writer(ss->cfg, record_fn, &x, error_r);
    g_ptr_array_free(x.kv, TRUE);
    g_free(user);
    if (ret < 0)
        return HOV_ERROR;
    hov_crash_point("record");
    o = json_object_new();
    json_object_set_int_member(o, "seq", x.seq);
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    return hov_journal_add(j, "record", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
}

/* ---- apply ---------------------------------------------------------------------------------------------- */

static int lock_plan(struct hov_plan *p, int *fd_r, char **error_r)
{
    char *path = g_build_filename(p->dir, "lock", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        cus_error_errno(error_r, "%s", path);
        g_free(path);
        return HOV_ERROR;
    }
    g_free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        cus_error(error_r, "plan %s is being applied by another process", p->id);
        return HOV_BAD_INPUT;
    }
    *fd_r = fd;
    return HOV_OK;
}

int hov_apply(const struct cfg *cfg, struct hov_plan *p, const struct hov_opts *o,
              GString *out, char **error_r)
{
    struct hov_session ss;
    struct hov_journal *j = NULL;
    struct hov_survey s;
    struct hov_copy c = { 0 };
    GPtrArray *customers = NULL;
    gint64 now = o->now > 0 ? o->now : (gint64)time(NULL);
    char today[16], *args = NULL;
    int lock = -1, r, opened = 0;

    memset(&ss, 0, sizeof(ss));
    memset(&s, 0, sizeof(s));
    if (!o->dry_run && (r = lock_plan(p, &lock, error_r)) != HOV_OK)
        return r;
    if (hov_journal_load(p->dir, &j, error_r) < 0) {
        r = HOV_ERROR;
        goto out;
    }
    if (hov_journal_find(j, "record", "") != NULL) {
        if (out != NULL)
            g_string_append_printf(out, "plan %s is applied already; see custos-handover "
                                   "report %s\n", p->id, p->id);
        r = HOV_OK;
        goto out;
    }
    hov_day(now, today, sizeof(today));
    if (strcmp(today, p->effective) < 0) {
        cus_error(error_r, "plan %s takes effect on %s: apply it on or after that day "
                  "(today is %s)", p->id, p->effective, today);
        r = HOV_BAD_INPUT;
        goto out;
    }
    args = hov_audit_args("apply", o, p->id);
    r = hov_session_open(cfg, p->leaver, p->successor, p->force, args, &ss, error_r);
    opened = 1;
    if (r != HOV_OK)
        goto out;
    if (o->dry_run) {
        JsonNode *pv = NULL;
        if ((r = hov_preview_build(&ss, p, &pv, error_r)) != HOV_OK)
            goto out;
        if (out != NULL) {
            g_string_append_printf(out, "dry run of plan %s: nothing is changed\n", p->id);
            hov_preview_text(json_node_get_object(p->root), json_node_get_object(pv), out);
        }
        json_node_unref(pv);
        goto out;
    }
    if (hov_check_other_plans(cfg, p->leaver, p->successor, p->id, p->force, error_r) < 0) {
        r = HOV_BAD_INPUT;
        goto out;
    }
    /* from here on the plan is under way: other plans of the leaver wait */
    if (j->entries->len == 0 && hov_journal_add(j, "start", "", NULL, error_r) < 0) {
        r = HOV_ERROR;
        goto out;
    }
    if ((r = customers_get(&ss, p, &customers, error_r)) != HOV_OK)
        goto out;
    if ((r = step_depart(&ss, p, j, customers, error_r)) != HOV_OK ||
        (r = step_hold(&ss, p, j, error_r)) != HOV_OK ||
        (r = step_forwards(&ss, p, j, error_r)) != HOV_OK)
        goto out;
    c.ss = &ss;
    c.p = p;
    c.j = j;
    c.subscribe = g_ptr_array_new_with_free_func(g_free);
    hov_survey_setup(&ss, p, &s);
    s.copy = &c;
    s.journal = j;
    s.customers = customers;
    r = HOV_ERROR;
    if (hov_survey_run(&s, error_r) < 0)
        goto out;
    if ((r = step_recovered(&ss, j, &s, &c, error_r)) != HOV_OK)
        goto out;
    if (hov_journal_find(j, "subscribe", "") == NULL) {
        int added = 0;
        JsonObject *so = json_object_new();
        JsonNode *sn = json_node_alloc();
        if (hov_subs_add(ss.dst_root, c.subscribe, &ss.owner, &added, error_r) < 0) {
            json_object_unref(so);
            json_node_free(sn);
            r = HOV_ERROR;
            goto out;
        }
        json_object_set_int_member(so, "added", added);
        json_object_set_int_member(so, "folders", c.subscribe->len);
        json_node_init_object(sn, so);
        json_object_unref(so);
        if (hov_journal_add(j, "subscribe", "", sn, error_r) < 0) {
            r = HOV_ERROR;
            goto out;
        }
    }
    if ((r = step_contacts(&ss, p, j, &s, error_r)) != HOV_OK ||
        (r = step_crm(&ss, p, j, &s, customers, error_r)) != HOV_OK ||
        (r = step_postfix_map(p, j, error_r)) != HOV_OK)
        goto out;
    if (hov_journal_find(j, "notices", "") == NULL) {
        JsonNode *np = hov_notices_plan(cfg, &s, error_r), *res = NULL;
        if (np == NULL) {
            r = HOV_CONFIG;
            goto out;
        }
        if (hov_notices_send(cfg, p, j, np, &res, error_r) < 0) {
            json_node_unref(np);
            r = HOV_ERROR;
            goto out;
        }
        json_node_unref(np);
        if (hov_journal_add(j, "notices", "", res, error_r) < 0) {
            r = HOV_ERROR;
            goto out;
        }
    }
    if (hov_journal_find(j, "analysis", "") == NULL &&
        hov_journal_add(j, "analysis", "", hov_survey_analysis(&s), error_r) < 0) {
        r = HOV_ERROR;
        goto out;
    }
    if ((r = step_record(&ss, p, j, customers, error_r)) != HOV_OK)
        goto out;
    if (out != NULL)
        r = hov_report(cfg, p, "text", out, error_r);
out:
    if (opened)
        hov_session_close(&ss, r == HOV_OK ? 0 : r == HOV_BAD_INPUT ? EX_DATAERR_ : EX_IOERR_,
                          c.copied, p->id);
    s.customers = NULL;
    if (s.folders != NULL)
        hov_survey_clear(&s);
    hov_dest_close(&c.dest);
    if (c.subscribe != NULL)
        g_ptr_array_free(c.subscribe, TRUE);
    if (customers != NULL)
        g_ptr_array_free(customers, TRUE);
    hov_journal_free(&j);
    g_free(args);
    if (lock >= 0)
        close(lock);
    return r;
}
