/*
 * apply.c - doing a plan, step by step, so that a second run finishes the first
 *
 * The steps and what makes each safe to run again are in handover.h. The
 * archive is changed in one batch (directory rows, the "handover" event,
 * the hold last: see depart_hold_fn), which a later run recognises by what
 * the archive then holds, not by the journal alone. What a step needs from
 * an earlier one that has since changed things (the leaver's customers,
 * the forwardings found before they were disabled) is saved in the plan
 * directory before the change. The directory batch runs in a thread of its
 * own while the mailbox is copied: neither needs the other.
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

/* Every run fills every folder: what an earlier run wrote whole is found
 * (by hash and size) and not written again, what it lost (a crash, a power
 * cut before the data reached the disk) is. So a folder's journal line is
 * what it reports, never a reason to skip it. */
int hov_copy_folder_begin(struct hov_copy *c, struct hov_fstat *f, int *skip_r, char **error_r)
{
    char *kw;
    int ret;

    g_ptr_array_add(c->subscribe, g_strdup(f->dest));
    *skip_r = 0;
    kw = g_build_filename(f->path, "dovecot-keywords", NULL);
    ret = hov_dest_open(c->ss->dst_root, f->dest, &c->ss->owner,
                        access(kw, F_OK) == 0 ? kw : NULL, &c->dest, error_r);
    if (ret == 0)
        hov_dest_writeback(c->dest, c->ss->cfg->hov_sync);
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
    hov_dest_close(&c->dest);
    if (hov_journal_find(c->j, "folder", f->storage) != NULL)
        return 0;
    hov_crash_point("folder");
    return hov_journal_add(c->j, "folder", f->storage, fstat_json(f), error_r);
}

/* The handed-over mail on disk before the handover is recorded as done. */
static int sync_all(const struct hov_session *ss, char **error_r)
{
    int fd, ret = 0;

    if (!ss->cfg->hov_sync)
        return 0;
    fd = open(ss->dst_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) < 0 || fsync(fd) < 0)
        ret = cus_error_errno(error_r, "syncfs(%s)", ss->dst_root);
    if (fd >= 0)
        close(fd);
    return ret;
}

/* ---- depart: the directory ------------------------------------------------------------- */

struct depart {
    struct hov_plan *p;
    struct hov_session *ss;
    GPtrArray *customers;
    int already;
    gint64 seq;                     /* the "handover" chain event */
};

static void kv_add(GPtrArray *kv, const char *k, const char *v)
{
    g_ptr_array_add(kv, g_strdup(k));
    g_ptr_array_add(kv, g_strdup(v != NULL ? v : ""));
}

/* The "handover" chain event: who to whom, when, the plan, the customers
 * given over, the hold; written with the directory changes (what the
 * handover did is in the journal, the report, and the audit entry of the
 * run, which the next writer seals into the chain). */
static GPtrArray *handover_event(const struct depart *d)
{
    GPtrArray *kv = g_ptr_array_new_with_free_func(g_free);
    char *user = audit_user(NULL), *hold = g_strdup_printf("handover-%s", d->p->id);

    kv_add(kv, "plan", d->p->id);
    kv_add(kv, "leaver", d->p->leaver);
    kv_add(kv, "successor", d->p->successor);
    kv_add(kv, "notice", d->p->notice);
    kv_add(kv, "effective", d->p->effective);
    kv_add(kv, "mailbox", d->ss->src_root);
    kv_add(kv, "to-mailbox", d->ss->dst_root);
    for (guint i = 0; i < d->customers->len; i++) {
        const struct dir_customer *c = d->customers->pdata[i];
        char *v = g_strdup_printf("%s -> %s", c->name, c->owner);
        kv_add(kv, "customer", v);
        g_free(v);
    }
    kv_add(kv, "hold", hold);
    kv_add(kv, "user", user);
    g_ptr_array_add(kv, NULL);
    g_free(user);
    g_free(hold);
    return kv;
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

/* The directory rows the handover writes, those not already so: the
 * leaver departed (with the successor, on the effective date), each
 * customer with its new owner. Rows already as wanted -- written by an
 * earlier run whose batch a writer's roll-forward took in, or by HR -- are
 * not written again. */
static int depart_rows(struct arc *arc, struct depart *d, GPtrArray **emps_r,
                       GPtrArray **custs_r, char **error_r)
{
    const struct dir_employee *l = d->ss->leaver;
    struct dir *dr = NULL;
    struct dir_employee *now = NULL, *e;
    GPtrArray *emps = g_ptr_array_new_with_free_func(employee_free);
    GPtrArray *custs = g_ptr_array_new_with_free_func(hov_customer_free);
    int ret = -1, f;

    if (dir_open_idx(arc_index(arc), NULL, &dr, error_r) < 0)
        goto out;
    if ((f = dir_employee_get(dr, l->address, &now, error_r)) < 0)
        goto out;
    if (f == 0 || now->status != DIR_DEPARTED || strcmp(now->departed, d->p->effective) != 0 ||
        strcmp(now->successor, d->p->successor) != 0) {
        e = g_new0(struct dir_employee, 1);     /* every field set below */
        e->address = g_strdup(l->address);
        e->name = g_strdup(l->name);
        e->department = g_strdup(l->department);
        e->status = DIR_DEPARTED;
        e->departed = g_strdup(d->p->effective);
        e->successor = g_strdup(d->p->successor);
        e->manager = g_strdup(l->manager);
        e->mobile = g_strdup(l->mobile);
        e->personal = strv_dup(l->personal);
        g_ptr_array_add(emps, e);
    }
    for (guint i = 0; i < d->customers->len; i++) {
        const struct dir_customer *want = d->customers->pdata[i];
        struct dir_customer *c = NULL;

        if ((f = dir_customer_by_name(dr, want->name, &c, error_r)) < 0)
            goto out;
        if (f > 0 && strcmp(c->owner, want->owner) != 0) {
            g_free(c->owner);
            c->owner = g_strdup(want->owner);
            g_ptr_array_add(custs, c);
        } else if (c != NULL) {
            dir_customer_free(&c);
        }
    }
    *emps_r = emps;
    *custs_r = custs;
    emps = custs = NULL;
    ret = 0;
out:
    dir_employee_free(&now);
    dir_close(&dr);
    if (emps != NULL)
        g_ptr_array_free(emps, TRUE);
    if (custs != NULL)
        g_ptr_array_free(custs, TRUE);
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

static int journal_depart(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                          GPtrArray *customers, gint64 seq, char **error_r)
{
    JsonObject *o;
    JsonArray *ca;
    JsonNode *n;

    o = json_object_new();
    json_object_set_int_member(o, "seq", seq);
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
    gint64 seq;                     /* the hold's chain entry */
    gint64 event_seq;               /* the handover event's */
    gint64 matches;                 /* messages the hold covers now */
};

static int hold_find(void *ctx, const struct hold *h)
{
    struct holdx *x = ctx;
    const char *e;

    if (h->released == 0 && strcmp(h->name, x->name) == 0) {
        x->seq = h->seq;
        /* the note names the handover's chain entry */
        if ((e = strstr(h->note, "chain entry ")) != NULL)
            x->event_seq = g_ascii_strtoll(e + 12, NULL, 10);
    }
    return 0;
}

static int journal_hold(struct hov_session *ss, struct hov_journal *j, struct holdx *xp,
                        char **error_r)
{
    struct holdx x = *xp;
    JsonObject *o;
    JsonNode *n;

    o = json_object_new();
    json_object_set_string_member(o, "name", x.name);
    {
        char *q = g_strdup_printf("participant:\"%s\"", ss->leaver->address);
        json_object_set_string_member(o, "query", q);
        g_free(q);
    }
    json_object_set_int_member(o, "seq", x.seq);
    json_object_set_int_member(o, "matches", x.matches);
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    return hov_journal_add(j, "hold", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
}

struct dh {
    struct depart *d;
    struct holdx *x;
};

/*
 * depart and hold: one batch of one session of the writer (opening one
 * scans the archive's open segment: once is enough). The directory rows,
 * the "handover" event, then the hold, whose hold_add() commits the batch.
 * Each is a group of its own in the store; a run killed before the commit
 * leaves a prefix of them, which the next writer's roll-forward takes in.
 * So the next run looks at what is there: the hold (last) there means all
 * is done; else rows already as wanted are not written again, and the
 * handover event already there (found by its plan id: a run died between
 * it and the hold) is not written twice.
 */
static int depart_hold_fn(struct arc *arc, void *ctx, char **error_r)
{
    struct dh *dh = ctx;
    struct depart *d = dh->d;
    struct holdx *x = dh->x;
    GPtrArray *emps = NULL, *custs = NULL, *kv = NULL;
    char *q = g_strdup_printf("participant:\"%s\"", x->leaver), *note = NULL;
    int ret = -1, r;

    if (hold_list(arc_index(arc), hold_find, x, error_r) < 0)
        goto out;
    if (x->seq > 0) {                   /* all of it committed by an earlier run */
        d->seq = x->event_seq;
        d->already = 1;
        ret = 0;
        goto matches;
    }
    if (depart_rows(arc, d, &emps, &custs, error_r) < 0)
        goto out;
    if (emps->len > 0 && dir_change(arc, DIR_EMPLOYEES, "handover", NULL, NULL, emps,
                                    error_r) < 0)
        goto out;
    if (custs->len > 0 && dir_change(arc, DIR_CUSTOMERS, "handover", NULL, NULL, custs,
                                     error_r) < 0)
        goto out;
    hov_crash_point("depart-rows");     /* rows in the store, not committed */
    /* an earlier run that died before the hold left its event: that one */
    r = arc_event_find(arc, "handover", "plan", d->p->id, &d->seq, error_r);
    if (r < 0)
        goto out;
    if (r == 0) {
        kv = handover_event(d);
        if (arc_event(arc, "handover", 0, (const char *const *)kv->pdata, &d->seq,
                      error_r) < 0)
            goto out;
        hov_crash_point("depart-event");    /* the event stored, the hold not yet */
    }
    note = g_strdup_printf("custos-handover plan %s (chain entry %" G_GINT64_FORMAT
                           "): the leaver's archived mail", d->p->id, d->seq);
    r = hold_add(arc, x->name, q, note, &x->seq, error_r);
    if (r != HOLD_OK)
        goto out;
    x->event_seq = d->seq;
    ret = 0;
matches:
    if (hold_matches(arc_index(arc), q, &x->matches, NULL) < 0)
        x->matches = -1;
out:
    if (emps != NULL)
        g_ptr_array_free(emps, TRUE);
    if (custs != NULL)
        g_ptr_array_free(custs, TRUE);
    if (kv != NULL)
        g_ptr_array_free(kv, TRUE);
    g_free(note);
    g_free(q);
    return ret;
}

static int step_depart_hold(struct hov_session *ss, struct hov_plan *p, struct hov_journal *j,
                            GPtrArray *customers, char **error_r)
{
    struct depart d = { p, ss, customers, 0, 0 };
    struct holdx x = { p, ss->leaver->address, NULL, 0, 0, -1 };
    struct dh dh = { &d, &x };
    int ret = HOV_OK;

    if (hov_journal_find(j, "depart", "") != NULL && hov_journal_find(j, "hold", "") != NULL)
        return HOV_OK;
    x.name = g_strdup_printf("handover-%s", p->id);
    if (hov_with_writer(ss->cfg, depart_hold_fn, &dh, error_r) < 0) {
        g_free(x.name);
        return HOV_ERROR;
    }
    if (hov_journal_find(j, "depart", "") == NULL) {
        hov_crash_point("depart");
        ret = journal_depart(ss, p, j, customers, d.seq, error_r);
    }
    if (ret == HOV_OK && hov_journal_find(j, "hold", "") == NULL) {
        hov_crash_point("hold");
        ret = journal_hold(ss, j, &x, error_r);
    }
    g_free(x.name);
    return ret;
}

struct depart_thread {
    struct hov_session *ss;
    struct hov_plan *p;
    struct hov_journal *j;
    GPtrArray *customers;
    int r;
    char *error;
};

static gpointer depart_thread(gpointer data)
{
    struct depart_thread *t = data;

    t->r = step_depart_hold(t->ss, t->p, t->j, t->customers, &t->error);
    hov_batch_busy(0);
    return NULL;
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
    if (hov_forwards_disable(ss->cfg, fw, p->id, backups, &changes, error_r) < 0)
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
    /* like the folders: filled on every run, journalled once */
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
    ret = HOV_OK;
    if (hov_journal_find(j, "recovered", "") == NULL &&
        hov_journal_add(j, "recovered", "", fstat_json(&f), error_r) < 0)
        ret = HOV_ERROR;
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

/* The map's text is written once (never over a file that is not this
 * plan's), then built as its type says; a run that failed to build it
 * builds it again. Where Postfix is not (no main.cf), the note says what
 * to run there; that is not an error. */
static int step_postfix_map(const struct cfg *cfg, struct hov_plan *p, struct hov_journal *j,
                            char **error_r)
{
    const char *type = p->postfix_map_type != NULL ? p->postfix_map_type : "hash";
    GString *m;
    GBytes *there = NULL;
    JsonObject *o;
    JsonNode *n;
    char *note = NULL;
    int ret = HOV_OK, built = 0;

    if (p->postfix_map == NULL || hov_journal_find(j, "postfix-map", "") != NULL)
        return HOV_OK;
    m = g_string_new(NULL);
    g_string_append_printf(m, "# custos-handover plan %s: %s departed %s; mail for the leaver "
                           "goes to the successor.\n# In main.cf: virtual_alias_maps = ... "
                           "%s:%s\n%s %s\n", p->id, p->leaver, p->effective, type,
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
        built = hov_map_build(cfg, "postmap", type, p->postfix_map, &note, error_r);
        if (built < 0)
            ret = HOV_ERROR;
    }
    if (ret == HOV_OK) {
        char *spec = g_strdup_printf("%s:%s", type, p->postfix_map);
        o = json_object_new();
        json_object_set_string_member(o, "file", p->postfix_map);
        json_object_set_string_member(o, "type", type);
        json_object_set_string_member(o, "map", spec);
        json_object_set_string_member(o, "line", strrchr(g_strchomp(m->str), '\n') + 1);
        json_object_set_boolean_member(o, "built", built == 0);
        json_object_set_string_member(o, "note", note);
        n = json_node_alloc();
        json_node_init_object(n, o);
        json_object_unref(o);
        ret = hov_journal_add(j, "postfix-map", "", n, error_r) < 0 ? HOV_ERROR : HOV_OK;
        g_free(spec);
    }
    g_free(note);
    g_string_free(m, TRUE);
    return ret;
}

/* ---- record ------------------------------------------------------------------------------------------- */

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

/* What was handed over, in one line (the audit entry's detail). */
static char *summary(const struct hov_plan *p, const struct hov_journal *j)
{
    return g_strdup_printf("plan %s: %s to %s: %" G_GINT64_FORMAT " folders, %" G_GINT64_FORMAT
                           " messages, %" G_GINT64_FORMAT " recovered, %" G_GINT64_FORMAT
                           " contacts", p->id, p->leaver, p->successor, jcount(j, "folder"),
                           jint(j, "folder", "unique"), jint(j, "recovered", "unique"),
                           jint(j, "contacts", "contacts"));
}

static int step_record(struct hov_plan *p, struct hov_journal *j, char **error_r)
{
    const struct hov_jentry *de = hov_journal_find(j, "depart", "");
    JsonObject *o;
    JsonNode *n;
    char *sum;

    if (hov_journal_find(j, "record", "") != NULL)
        return HOV_OK;
    hov_crash_point("record");
    sum = summary(p, j);
    o = json_object_new();
    json_object_set_int_member(o, "seq", de != NULL && JSON_NODE_HOLDS_OBJECT(de->data)
                                             ? json_object_get_int_member_with_default(
                                                   json_node_get_object(de->data), "seq", 0)
                                             : 0);
    json_object_set_string_member(o, "summary", sum);
    g_free(sum);
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
    double t0 = cus_now();
    struct depart_thread dt = { 0 };
    GThread *dthread = NULL;
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
    log_debug("apply %s: started %.3f s", p->id, cus_now() - t0);
    /* The directory and the hold go to the archive's writer (whose opening
     * reads the open segment: CPU the copy leaves idle) while the mailbox
     * is copied; the copy does not depend on them. */
    if ((r = step_forwards(&ss, p, j, error_r)) != HOV_OK)
        goto out;
    log_debug("apply %s: forwardings %.3f s", p->id, cus_now() - t0);
    dt.ss = &ss;
    dt.p = p;
    dt.j = j;
    dt.customers = customers;
    hov_batch_busy(1);
    dthread = g_thread_new("directory", depart_thread, &dt);
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
    g_thread_join(dthread);
    dthread = NULL;
    log_debug("apply %s: directory and hold %.3f s", p->id, cus_now() - t0);
    if ((r = dt.r) != HOV_OK) {
        cus_error(error_r, "%s", dt.error);
        goto out;
    }
    r = HOV_ERROR;
    log_debug("apply %s: mailbox copied, archive searched %.3f s", p->id, cus_now() - t0);
    if ((r = step_recovered(&ss, j, &s, &c, error_r)) != HOV_OK)
        goto out;
    log_debug("apply %s: recovered %.3f s", p->id, cus_now() - t0);
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
        (r = step_postfix_map(ss.cfg, p, j, error_r)) != HOV_OK)
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
    log_debug("apply %s: contacts, CRM, map, notices, analysis %.3f s", p->id,
              cus_now() - t0);
    if (hov_journal_find(j, "record", "") == NULL && sync_all(&ss, error_r) < 0) {
        r = HOV_ERROR;
        goto out;
    }
    if ((r = step_record(p, j, error_r)) != HOV_OK)
        goto out;
    log_debug("apply %s: recorded %.3f s", p->id, cus_now() - t0);
    if (out != NULL)
        r = hov_report(cfg, p, "text", out, error_r);
out:
    if (dthread != NULL) {
        g_thread_join(dthread);
        if (dt.r != HOV_OK)
            log_error("%s", dt.error);
    }
    g_free(dt.error);
    if (opened) {
        char *sum = j != NULL ? summary(p, j) : g_strdup(p->id);
        hov_session_close(&ss, r == HOV_OK ? 0 : r == HOV_BAD_INPUT ? EX_DATAERR_ : EX_IOERR_,
                          c.copied, sum);
        g_free(sum);
    }
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
