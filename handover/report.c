/*
 * report.c - what a handover did: status, and the report as text, HTML or JSON
 *
 * Everything comes from the plan directory (plan.json and the journal),
 * never from the archive: a report can be printed, and packaged, by whoever
 * may read the plans directory, as often as wanted, and says exactly what
 * apply recorded as done.
 */
#include <string.h>
#include <time.h>
#include "custos/handover-forwards.h"
#include "custos/log.h"
#include "handover-private.h"

static const char *state_of(const struct hov_journal *j, char *buf, size_t size)
{
    const struct hov_jentry *last;

    if (hov_journal_find(j, "record", "") != NULL)
        return "applied";
    if (j->entries->len == 0)
        return "planned";
    last = j->entries->pdata[j->entries->len - 1];
    g_snprintf(buf, size, "half applied (last step done: %s%s%s)", last->step,
               *last->key ? " " : "", last->key);
    return buf;
}

JsonNode *hov_report_json(struct hov_plan *p, char **error_r)
{
    struct hov_journal *j = NULL;
    JsonObject *o, *steps;
    JsonArray *folders;
    JsonNode *n;
    char buf[256];
    const struct hov_jentry *rec;

    if (hov_journal_load(p->dir, &j, error_r) < 0)
        return NULL;
    o = json_object_new();
    steps = json_object_new();
    folders = json_array_new();
    json_object_set_member(o, "plan", json_node_copy(p->root));
    json_object_set_string_member(o, "state", state_of(j, buf, sizeof(buf)));
    rec = hov_journal_find(j, "record", "");
    if (rec != NULL) {
        char t[32];
        cus_iso8601(rec->time, t, sizeof(t));
        json_object_set_string_member(o, "applied", t);
    } else {
        json_object_set_null_member(o, "applied");
    }
    for (guint i = 0; i < j->entries->len; i++) {
        const struct hov_jentry *e = j->entries->pdata[i];

        if (strcmp(e->step, "folder") == 0)
            json_array_add_element(folders, json_node_copy(e->data));
        else if (!g_str_has_prefix(e->step, "notice-") && strcmp(e->step, "notice") != 0)
            json_object_set_member(steps, e->step, json_node_copy(e->data));
    }
    json_object_set_array_member(steps, "folders", folders);
    json_object_set_object_member(o, "steps", steps);
    n = json_node_alloc();
    json_node_init_object(n, o);
    json_object_unref(o);
    hov_journal_free(&j);
    return n;
}

/* ---- helpers over JSON -------------------------------------------------------------- */

static JsonObject *obj(JsonObject *o, const char *m)
{
    JsonNode *n = o != NULL ? json_object_get_member(o, m) : NULL;
    return n != NULL && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static JsonArray *arr(JsonObject *o, const char *m)
{
    JsonNode *n = o != NULL ? json_object_get_member(o, m) : NULL;
    return n != NULL && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
}

static const char *str(JsonObject *o, const char *m)
{
    JsonNode *n = o != NULL ? json_object_get_member(o, m) : NULL;
    return n != NULL && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
               ? json_node_get_string(n) : "";
}

static gint64 num(JsonObject *o, const char *m)
{
    return o != NULL ? json_object_get_int_member_with_default(o, m, 0) : 0;
}

static guint len(JsonArray *a)
{
    return a != NULL ? json_array_get_length(a) : 0;
}

/* A tiny writer for both text and HTML. */
struct w {
    GString *out;
    int html;
};

static void esc(struct w *w, const char *s)
{
    if (w->html) {
        char *e = g_markup_escape_text(s, -1);
        g_string_append(w->out, e);
        g_free(e);
    } else {
        g_string_append(w->out, s);
    }
}

static void heading(struct w *w, const char *h)
{
    if (w->html) {
        g_string_append(w->out, "<h2>");
        esc(w, h);
        g_string_append(w->out, "</h2>\n");
    } else {
        g_string_append_printf(w->out, "\n%s\n", h);
    }
}

/* A line of text, or a paragraph. fmt's %s arguments are escaped. */
static void para(struct w *w, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void para(struct w *w, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (w->html)
        g_string_append(w->out, "<p>");
    else
        g_string_append(w->out, "  ");
    esc(w, s);
    g_string_append(w->out, w->html ? "</p>\n" : "\n");
    g_free(s);
}

/* A table: cols header names; rows of cells (char **, NULL-ended each). */
static void table(struct w *w, const char *const *cols, GPtrArray *rows)
{
    guint nc = g_strv_length((char **)cols);

    if (w->html) {
        g_string_append(w->out, "<table>\n<tr>");
        for (guint c = 0; c < nc; c++) {
            g_string_append(w->out, "<th>");
            esc(w, cols[c]);
            g_string_append(w->out, "</th>");
        }
        g_string_append(w->out, "</tr>\n");
        for (guint r = 0; r < rows->len; r++) {
            char **cells = rows->pdata[r];
            g_string_append(w->out, "<tr>");
            for (guint c = 0; c < nc; c++) {
                g_string_append(w->out, "<td>");
                esc(w, cells[c] != NULL ? cells[c] : "");
                g_string_append(w->out, "</td>");
            }
            g_string_append(w->out, "</tr>\n");
        }
        g_string_append(w->out, "</table>\n");
        return;
    }
    {
        gsize *wd = g_new0(gsize, nc);
        for (guint c = 0; c < nc; c++)
            wd[c] = (gsize)g_utf8_strlen(cols[c], -1);
        for (guint r = 0; r < rows->len; r++)
            for (guint c = 0; c < nc; c++) {
                char **cells = rows->pdata[r];
                wd[c] = MAX(wd[c], (gsize)g_utf8_strlen(cells[c] != NULL ? cells[c] : "", -1));
            }
        for (guint r = 0; r <= rows->len; r++) {
            const char *const *cells = r == 0 ? cols : (const char *const *)rows->pdata[r - 1];
            g_string_append(w->out, "  ");
            for (guint c = 0; c < nc; c++) {
                const char *v = cells[c] != NULL ? cells[c] : "";
                g_string_append(w->out, v);
                if (c + 1 < nc)
                    for (gsize k = (gsize)g_utf8_strlen(v, -1); k < wd[c] + 2; k++)
                        g_string_append_c(w->out, ' ');
            }
            g_string_append_c(w->out, '\n');
        }
        g_free(wd);
    }
}

static char **row(const char *first, ...) G_GNUC_NULL_TERMINATED;
static char **row(const char *first, ...)
{
    GPtrArray *a = g_ptr_array_new();
    va_list ap;
    const char *s;

    va_start(ap, first);
    for (s = first; s != NULL; s = va_arg(ap, const char *))
        g_ptr_array_add(a, g_strdup(s));
    va_end(ap);
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

static char *itoa64(gint64 v)
{
    return g_strdup_printf("%" G_GINT64_FORMAT, v);
}

/* ---- the report ------------------------------------------------------------------------ */

static void render(JsonObject *rep, struct w *w)
{
    JsonObject *plan = obj(rep, "plan"), *st = obj(rep, "steps");
    JsonObject *l = obj(plan, "leaver"), *su = obj(plan, "successor");
    JsonObject *dep = obj(st, "depart"), *hold = obj(st, "hold"), *fw = obj(st, "forwards");
    JsonObject *rec = obj(st, "recovered"), *ct = obj(st, "contacts"), *crm = obj(st, "crm");
    JsonObject *pm = obj(st, "postfix-map"), *no = obj(st, "notices");
    JsonObject *an = obj(st, "analysis"), *record = obj(st, "record");
    JsonArray *folders = arr(st, "folders");
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    gint64 total = 0;
    char *tmp, *tmp2;

    if (w->html)
        g_string_append(w->out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                        "<title>custos-handover report</title><style>body{font-family:sans-serif}"
                        "table{border-collapse:collapse}td,th{border:1px solid #999;"
                        "padding:2px 6px;text-align:left}</style></head><body>\n<h1>");
    esc(w, "custos-handover report, plan ");
    esc(w, str(plan, "id"));
    g_string_append(w->out, w->html ? "</h1>\n" : "\n");
    para(w, "state: %s%s%s", str(rep, "state"), *str(rep, "applied") ? ", " : "",
         str(rep, "applied"));
    para(w, "leaver: %s <%s>; successor: %s <%s>", str(l, "name"), str(l, "address"),
         str(su, "name"), str(su, "address"));
    para(w, "notice period from %s; effective %s", str(plan, "notice"), str(plan, "effective"));

    if (dep == NULL) {
        JsonObject *pv = obj(plan, "preview");
        GString *t = g_string_new(NULL);
        heading(w, "Planned (not applied yet)");
        if (pv != NULL)
            hov_preview_text(plan, pv, t);
        if (w->html) {
            g_string_append(w->out, "<pre>");
            esc(w, t->str);
            g_string_append(w->out, "</pre>\n");
        } else {
            g_string_append(w->out, t->str);
        }
        g_string_free(t, TRUE);
        goto end;
    }

    heading(w, "Mail moved to the successor's mailbox");
    for (guint i = 0; i < len(folders); i++) {
        JsonObject *f = json_array_get_object_element(folders, i);
        char *a = itoa64(num(f, "messages")), *b = itoa64(num(f, "unique")),
             *c = itoa64(num(f, "duplicates")), *d = itoa64(num(f, "copied"));
        g_ptr_array_add(rows, row(str(f, "folder"), a, b, c, d, str(f, "dest"), NULL));
        total += num(f, "unique");
        g_free(a);
        g_free(b);
        g_free(c);
        g_free(d);
    }
    if (rec != NULL) {
        char *a = itoa64(num(rec, "messages")), *b = itoa64(num(rec, "unique")),
             *d = itoa64(num(rec, "copied"));
        g_ptr_array_add(rows, row("(recovered from the archive)", a, b, "0", d, str(rec, "dest"),
                                  NULL));
        g_free(a);
        g_free(b);
        g_free(d);
    }
    {
        static const char *const cols[] = { "folder", "messages", "handed over", "duplicates",
                                            "written by this run", "to", NULL };
        table(w, cols, rows);
    }
    g_ptr_array_set_size(rows, 0);
    para(w, "%" G_GINT64_FORMAT " messages from the mailbox and %" G_GINT64_FORMAT
         " recovered from the archive", total, num(rec, "unique"));

    heading(w, "Contacts");
    para(w, "%" G_GINT64_FORMAT " external correspondents: %s, %s (and contacts.vcf, "
         "contacts.csv in the package)", num(ct, "contacts"), str(ct, "vcf"), str(ct, "csv"));

    heading(w, "Customers reassigned");
    {
        JsonArray *cs = arr(an, "customers");
        for (guint i = 0; i < len(cs); i++) {
            JsonObject *c = json_array_get_object_element(cs, i);
            JsonArray *open = arr(c, "open_threads");
            char *n = g_strdup_printf("%u", len(open));
            g_ptr_array_add(rows, row(str(c, "customer"), str(dep, "leaver"), str(c, "owner"),
                                      *str(c, "last_contact") ? str(c, "last_contact") : "none",
                                      n, NULL));
            g_free(n);
        }
        {
            static const char *const cols[] = { "customer", "old owner", "new owner",
                                                "last contact", "open threads", NULL };
            table(w, cols, rows);
        }
        g_ptr_array_set_size(rows, 0);
        for (guint i = 0; i < len(cs); i++) {
            JsonObject *c = json_array_get_object_element(cs, i);
            JsonArray *open = arr(c, "open_threads");
            for (guint k = 0; k < len(open); k++) {
                JsonObject *t = json_array_get_object_element(open, k);
                g_ptr_array_add(rows, row(str(c, "customer"), str(t, "subject"), str(t, "date"),
                                          str(t, "from"), NULL));
            }
        }
        if (rows->len > 0) {
            static const char *const cols[] = { "customer", "open thread (last message "
                                                "from the customer, unanswered)", "date",
                                                "from", NULL };
            table(w, cols, rows);
        } else {
            para(w, "no open threads");
        }
        g_ptr_array_set_size(rows, 0);
        cs = arr(an, "other_customers");
        if (len(cs) > 0) {
            for (guint i = 0; i < len(cs); i++) {
                JsonObject *c = json_array_get_object_element(cs, i);
                char *n = g_strdup_printf("%u", len(arr(c, "open_threads")));
                g_ptr_array_add(rows, row(str(c, "customer"), str(c, "owner"),
                                          str(c, "last_contact"), n, NULL));
                g_free(n);
            }
            para(w, "other customers the leaver corresponded with (not reassigned):");
            {
                static const char *const cols[] = { "customer", "owner", "last contact",
                                                    "open threads", NULL };
                table(w, cols, rows);
            }
            g_ptr_array_set_size(rows, 0);
        }
    }

    heading(w, "Routing");
    para(w, "%s: %s since %s, successor %s (a directory chain event: custos-milter routes "
         "the leaver's mail to the successor and flags mail sent as the leaver)",
         str(dep, "leaver"), str(dep, "status"), str(dep, "departed"), str(dep, "successor"));
    if (pm != NULL) {
        para(w, "Postfix virtual alias map %s: %s", *str(pm, "map") ? str(pm, "map")
                                                                   : str(pm, "file"),
             str(pm, "line"));
        if (*str(pm, "note"))
            para(w, "  %s; in main.cf: virtual_alias_maps = ..., %s", str(pm, "note"),
                 *str(pm, "map") ? str(pm, "map") : str(pm, "file"));
    }

    heading(w, "Forwarding audit");
    {
        JsonArray *found = arr(fw, "found"), *changes = arr(fw, "changes"), *notes = arr(fw, "notes");
        for (guint i = 0; i < len(found); i++) {
            JsonObject *f = json_array_get_object_element(found, i);
            char *where = g_strdup_printf("%s:%" G_GINT64_FORMAT, str(f, "file"), num(f, "line"));
            const char *flag = json_object_get_boolean_member_with_default(f, "outside", FALSE)
                                   ? (json_object_get_boolean_member_with_default(f, "webmail",
                                                                                  FALSE)
                                          ? "outside (webmail)" : "outside")
                                   : "internal";
            g_ptr_array_add(rows, row(str(f, "source"), where, str(f, "dest"), flag, NULL));
            g_free(where);
        }
        if (rows->len > 0) {
            static const char *const cols[] = { "found in", "where", "to", "", NULL };
            table(w, cols, rows);
        } else {
            para(w, "no forwarding of the leaver's found");
        }
        g_ptr_array_set_size(rows, 0);
        for (guint i = 0; i < len(changes); i++) {
            JsonObject *c = json_array_get_object_element(changes, i);
            g_ptr_array_add(rows, row(str(c, "file"), str(c, "action"), str(c, "backup"), NULL));
        }
        if (rows->len > 0) {
            static const char *const cols[] = { "disabled", "how", "backup", NULL };
            table(w, cols, rows);
        }
        g_ptr_array_set_size(rows, 0);
        for (guint i = 0; i < len(notes); i++)
            para(w, "%s", json_array_get_string_element(notes, i));
    }

    heading(w, "Legal hold");
    para(w, "hold \"%s\" on %s (chain entry %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
         " messages when placed)", str(hold, "name"), str(hold, "query"), num(hold, "seq"),
         num(hold, "matches"));

    heading(w, "CRM owner reassignment");
    para(w, "%s: %" G_GINT64_FORMAT " rows (customer, contact, old owner, new owner)",
         str(crm, "file"), num(crm, "rows"));

    heading(w, "Notices to customer contacts");
    if (no == NULL || !json_object_get_boolean_member_with_default(no, "enabled", FALSE)) {
        para(w, "off ([handover] notices = false)");
    } else {
        tmp = itoa64(len(arr(no, "sent")));
        tmp2 = itoa64(len(arr(no, "uncertain")));
        para(w, "%s sent of %" G_GINT64_FORMAT "; %s uncertain (a run was stopped while "
             "handing them to sendmail: not sent again)", tmp, num(no, "planned"), tmp2);
        g_free(tmp);
        g_free(tmp2);
    }

    heading(w, "Incidents of the last 90 days");
    {
        JsonArray *inc = arr(an, "incidents");
        for (guint i = 0; i < len(inc); i++) {
            JsonObject *x = json_array_get_object_element(inc, i);
            char *n = num(x, "attachments") >= 0 ? itoa64(num(x, "attachments")) : g_strdup("?");
            g_ptr_array_add(rows, row(str(x, "date"), str(x, "subject"), str(x, "to"), n,
                                      str(x, "rule"), str(x, "evidence"), str(x, "where"),
                                      NULL));
            g_free(n);
        }
        if (rows->len > 0) {
            static const char *const cols[] = { "date", "subject", "sent to", "attachments",
                                                "flagged as", "evidence", "seen in", NULL };
            para(w, "since %s: what custos-milter flagged in the leaver's mail, and mail the "
                 "leaver sent to personal webmail or a private address of their own that "
                 "it did not see (found in the archive or the mailbox)",
                 str(an, "incidents_since"));
            table(w, cols, rows);
        } else {
            para(w, "none since %s", str(an, "incidents_since"));
        }
        g_ptr_array_set_size(rows, 0);
    }

    heading(w, "Record");
    if (record != NULL)
        para(w, "the handover is chain entry %" G_GINT64_FORMAT " of the archive (event "
             "\"handover\"), with an audit entry for each run", num(record, "seq"));
    else
        para(w, "not recorded yet: the handover is half done; run custos-handover apply %s",
             str(plan, "id"));
end:
    if (w->html)
        g_string_append(w->out, "</body></html>\n");
    g_ptr_array_free(rows, TRUE);
}

int hov_report(const struct cfg *cfg, struct hov_plan *p, const char *format, GString *out,
               char **error_r)
{
    JsonNode *rep;

    if (strcmp(format, "text") != 0 && strcmp(format, "html") != 0 &&
        strcmp(format, "json") != 0) {
        cus_error(error_r, "--format %s: expected text, html or json", format);
        return HOV_BAD_INPUT;
    }
    if ((rep = hov_report_json(p, error_r)) == NULL)
        return HOV_ERROR;
    if (strcmp(format, "json") == 0) {
        JsonGenerator *g = json_generator_new();
        char *t;
        json_generator_set_pretty(g, TRUE);
        json_generator_set_root(g, rep);
        t = json_generator_to_data(g, NULL);
        g_string_append(out, t);
        g_string_append_c(out, '\n');
        g_free(t);
        g_object_unref(g);
    } else {
        struct w w = { out, strcmp(format, "html") == 0 };
        render(json_node_get_object(rep), &w);
    }
    json_node_unref(rep);
    return HOV_OK;
}

int hov_status(const struct cfg *cfg, const char *id, GString *out, char **error_r)
{
    char *plans = hov_plans_dir(cfg), buf[256];
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    int ret = HOV_OK;

    if (id != NULL) {
        g_ptr_array_add(ids, g_strdup(id));
    } else {
        GDir *d = g_dir_open(plans, 0, NULL);
        const char *n;
        while (d != NULL && (n = g_dir_read_name(d)) != NULL)
            g_ptr_array_add(ids, g_strdup(n));
        if (d != NULL)
            g_dir_close(d);
        g_ptr_array_sort(ids, hov_strptr_cmp);
        if (ids->len == 0)
            g_string_append_printf(out, "no plans in %s\n", plans);
    }
    for (guint i = 0; i < ids->len; i++) {
        struct hov_plan *p = NULL;
        struct hov_journal *j = NULL;
        char *err = NULL;
        int r = hov_plan_load(cfg, ids->pdata[i], &p, &err);

        if (r != HOV_OK) {
            if (id != NULL) {
                cus_error(error_r, "%s", err);
                g_free(err);
                ret = r;
                break;
            }
            g_free(err);
            continue;
        }
        if (hov_journal_load(p->dir, &j, error_r) < 0) {
            hov_plan_free(&p);
            ret = HOV_ERROR;
            break;
        }
        g_string_append_printf(out, "%s  %s -> %s  effective %s  %s\n", p->id, p->leaver,
                               p->successor, p->effective, state_of(j, buf, sizeof(buf)));
        for (guint k = 0; id != NULL && k < j->entries->len; k++) {
            const struct hov_jentry *e = j->entries->pdata[k];
            char t[32];
            cus_iso8601(e->time, t, sizeof(t));
            g_string_append_printf(out, "  %s  %s%s%s\n", t, e->step, *e->key ? " " : "",
                                   e->key);
        }
        hov_journal_free(&j);
        hov_plan_free(&p);
    }
    g_ptr_array_free(ids, TRUE);
    g_free(plans);
    return ret;
}

int hov_forwards_report(const struct cfg *cfg, const char *address, GString *out,
                        gint64 *outside_r, char **error_r)
{
    struct arc *arc = NULL;
    struct dir *d = NULL;
    GPtrArray *fw = NULL;
    char *addr = NULL;
    gint64 outside = 0;
    int ret = HOV_ERROR;

    if (address != NULL && dir_norm_addr(address, &addr, error_r) < 0)
        return HOV_BAD_INPUT;
    if (arc_open(cfg, 0, &arc, error_r) < 0 ||
        dir_open_idx(arc_index(arc), hov_webmail_path(cfg), &d, error_r) < 0)
        goto out;
    if (hov_forwards_find(cfg, d, addr, &fw, error_r) < 0)
        goto out;
    for (guint i = 0; i < fw->len; i++) {
        const struct hov_forward *f = fw->pdata[i];
        outside += f->outside;
        g_string_append_printf(out, "%s\t%s:%d\t%s -> %s\t%s%s\n", hov_fwd_source_name(f->source),
                               f->file, f->line, f->owner, f->dest,
                               f->outside ? (f->kind == HOV_FWD_PROGRAM ? "OUTSIDE (program)"
                                             : f->kind == HOV_FWD_FILE ? "OUTSIDE (file)"
                                                                       : "OUTSIDE")
                                          : "internal",
                               f->webmail ? " webmail" : "");
    }
    g_string_append_printf(out, "%u forwarding%s, %" G_GINT64_FORMAT " leading outside the "
                           "company\n", fw->len, fw->len == 1 ? "" : "s", outside);
    *outside_r = outside;
    ret = HOV_OK;
out:
    if (fw != NULL)
        g_ptr_array_free(fw, TRUE);
    dir_close(&d);
    arc_close(&arc);
    g_free(addr);
    return ret;
}
