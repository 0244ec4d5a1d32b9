/*
 * dir-apply.c - writing directory rows, and the "directory" chain event
 *
 * Every change to the directory goes through dir_change(): one
 * "directory" chain event with the rows as they are written (complete and
 * normalised: no later lookup is needed to understand them), then the
 * rows; dir_apply_event() writes the same rows again from the event, so a
 * reindex or a roll-forward rebuilds the same directory. Canonical fields
 * of the event, in order:
 *
 *   list employees|customers|accounts, action import|learn,
 *   file PATH and sha256 HEX (imports), then per row:
 *   employees: address, name, department, status, departed, successor,
 *              manager, mobile, personal (one per address)
 *   customers: customer (the name), owner, source, domain..., contact...,
 *              phone...
 *   accounts:  account, bank, holder
 */
#include <string.h>
#include <time.h>
#include "custos/archive.h"
#include "custos/util.h"
#include "directory-private.h"

static void set_str(char **field, const char *v)
{
    g_free(*field);
    *field = g_strdup(v != NULL ? v : "");
}

/* ---- writing rows ------------------------------------------------------------ */

static int exec_bound(sqlite3 *db, sqlite3_stmt *st, char **error_r)
{
    if (sqlite3_step(st) != SQLITE_DONE) {
        cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(db, "main"),
                  sqlite3_errmsg(db));
        sqlite3_reset(st);
        return -1;
    }
    sqlite3_reset(st);
    return 0;
}

static void bind_s(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static int apply_employees(sqlite3 *db, GPtrArray *rows, gint64 now, char **error_r)
{
    static const char *const sql[] = {
        "INSERT INTO employees(address, name, department, status, departed, successor,"
        " manager, mobile, updated) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(address) DO"
        " UPDATE SET name = excluded.name, department = excluded.department,"
        " status = excluded.status, departed = excluded.departed,"
        " successor = excluded.successor, manager = excluded.manager,"
        " mobile = excluded.mobile, updated = excluded.updated",
        "DELETE FROM employee_personal WHERE employee = ?",
        "INSERT OR IGNORE INTO employee_personal(employee, addr) VALUES (?,?)",
    };
    sqlite3_stmt *st[3] = { NULL, NULL, NULL };
    int ret = -1;

    for (int i = 0; i < 3; i++)
        if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK) {
            cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(db, "main"),
                      sqlite3_errmsg(db));
            goto out;
        }
    for (guint r = 0; r < rows->len; r++) {
        const struct dir_employee *e = rows->pdata[r];

        bind_s(st[0], 1, e->address);
        bind_s(st[0], 2, e->name);
        bind_s(st[0], 3, e->department);
        bind_s(st[0], 4, dir_status_name(e->status));
        bind_s(st[0], 5, e->departed);
        bind_s(st[0], 6, e->successor);
        bind_s(st[0], 7, e->manager);
        bind_s(st[0], 8, e->mobile);
        sqlite3_bind_int64(st[0], 9, now);
        if (exec_bound(db, st[0], error_r) < 0)
            goto out;
        bind_s(st[1], 1, e->address);
        if (exec_bound(db, st[1], error_r) < 0)
            goto out;
        for (guint i = 0; i < e->personal->len; i++) {
            bind_s(st[2], 1, e->address);
            bind_s(st[2], 2, e->personal->pdata[i]);
            if (exec_bound(db, st[2], error_r) < 0)
                goto out;
        }
    }
    ret = 0;
out:
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(st[i]);
    return ret;
}

enum { C_UPSERT, C_ID, C_DEL_DOM, C_DEL_CON, C_DEL_PH, C_INS_DOM, C_INS_CON, C_INS_PH,
       C_COUNT };

static int apply_customers(sqlite3 *db, GPtrArray *rows, gint64 now, char **error_r)
{
    static const char *const sql[C_COUNT] = {
        [C_UPSERT] = "INSERT INTO customers(name, owner, source, updated) VALUES (?,?,?,?)"
                     " ON CONFLICT(name) DO UPDATE SET owner = excluded.owner,"
                     " source = excluded.source, updated = excluded.updated",
        [C_ID] = "SELECT id FROM customers WHERE name = ?",
        [C_DEL_DOM] = "DELETE FROM customer_domains WHERE customer = ?",
        [C_DEL_CON] = "DELETE FROM customer_contacts WHERE customer = ?",
        [C_DEL_PH] = "DELETE FROM customer_phones WHERE customer = ?",
        /* a domain or contact another customer had moves to this one */
        [C_INS_DOM] = "INSERT INTO customer_domains(domain, customer) VALUES (?,?)"
                      " ON CONFLICT(domain) DO UPDATE SET customer = excluded.customer",
        [C_INS_CON] = "INSERT INTO customer_contacts(addr, customer) VALUES (?,?)"
                      " ON CONFLICT(addr) DO UPDATE SET customer = excluded.customer",
        [C_INS_PH] = "INSERT OR IGNORE INTO customer_phones(phone, customer) VALUES (?,?)",
    };
    static const char orphans[] =
        "CREATE TEMP TABLE IF NOT EXISTS dir_orphans(id INTEGER PRIMARY KEY);"
        "DELETE FROM temp.dir_orphans;"
        "INSERT INTO temp.dir_orphans SELECT id FROM customers WHERE source = 'learn'"
        " AND id NOT IN (SELECT customer FROM customer_domains)"
        " AND id NOT IN (SELECT customer FROM customer_contacts);"
        "DELETE FROM customer_phones WHERE customer IN temp.dir_orphans;"
        "DELETE FROM customers WHERE id IN temp.dir_orphans;"
        "DELETE FROM temp.dir_orphans;";
    sqlite3_stmt *st[C_COUNT] = { NULL };
    char *msg = NULL;
    int ret = -1;

    for (int i = 0; i < C_COUNT; i++)
        if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK)
            goto dberr;
    for (guint r = 0; r < rows->len; r++) {
        struct dir_customer *c = rows->pdata[r];
        const GPtrArray *lists[3] = { c->domains, c->contacts, c->phones };
        gint64 id;

        bind_s(st[C_UPSERT], 1, c->name);
        bind_s(st[C_UPSERT], 2, c->owner);
        bind_s(st[C_UPSERT], 3, c->source);
        sqlite3_bind_int64(st[C_UPSERT], 4, now);
        if (exec_bound(db, st[C_UPSERT], error_r) < 0)
            goto out;
        bind_s(st[C_ID], 1, c->name);
        if (sqlite3_step(st[C_ID]) != SQLITE_ROW)
            goto dberr;
        id = sqlite3_column_int64(st[C_ID], 0);
        sqlite3_reset(st[C_ID]);
        c->id = id;
        for (int k = 0; k < 3; k++) {
            sqlite3_bind_int64(st[C_DEL_DOM + k], 1, id);
            if (exec_bound(db, st[C_DEL_DOM + k], error_r) < 0)
                goto out;
            for (guint i = 0; i < lists[k]->len; i++) {
                bind_s(st[C_INS_DOM + k], 1, lists[k]->pdata[i]);
                sqlite3_bind_int64(st[C_INS_DOM + k], 2, id);
                if (exec_bound(db, st[C_INS_DOM + k], error_r) < 0)
                    goto out;
            }
        }
    }
    if (sqlite3_exec(db, orphans, NULL, NULL, &msg) != SQLITE_OK) {
        cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(db, "main"),
                  msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        goto out;
    }
    ret = 0;
    goto out;
dberr:
    cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(db, "main"),
              sqlite3_errmsg(db));
out:
    for (int i = 0; i < C_COUNT; i++)
        sqlite3_finalize(st[i]);
    return ret;
}

static int apply_accounts(sqlite3 *db, GPtrArray *rows, gint64 now, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;

    if (sqlite3_prepare_v2(db, "INSERT INTO accounts(account, bank, holder, updated)"
                           " VALUES (?,?,?,?) ON CONFLICT(account) DO UPDATE SET"
                           " bank = excluded.bank, holder = excluded.holder,"
                           " updated = excluded.updated", -1, &st, NULL) != SQLITE_OK) {
        cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(db, "main"),
                  sqlite3_errmsg(db));
        goto out;
    }
    for (guint r = 0; r < rows->len; r++) {
        const struct dir_account *a = rows->pdata[r];

        bind_s(st, 1, a->account);
        bind_s(st, 2, a->bank);
        bind_s(st, 3, a->holder);
        sqlite3_bind_int64(st, 4, now);
        if (exec_bound(db, st, error_r) < 0)
            goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int dir_apply(struct idx *idx, enum dir_list l, GPtrArray *rows, gint64 now, char **error_r)
{
    sqlite3 *db = idx_db(idx);

    switch (l) {
    case DIR_EMPLOYEES:
        return apply_employees(db, rows, now, error_r);
    case DIR_CUSTOMERS:
        return apply_customers(db, rows, now, error_r);
    default:
        return apply_accounts(db, rows, now, error_r);
    }
}

/* ---- the chain event ------------------------------------------------------------ */

static void kv_add(GPtrArray *kv, const char *k, const char *v)
{
    g_ptr_array_add(kv, g_strdup(k));
    g_ptr_array_add(kv, g_strdup(v != NULL ? v : ""));
}

static void kv_list(GPtrArray *kv, const char *k, const GPtrArray *v)
{
    for (guint i = 0; i < v->len; i++)
        kv_add(kv, k, v->pdata[i]);
}

GPtrArray *dir_event_fields(enum dir_list l, const char *action, const char *file,
                            const char *sha256, GPtrArray *rows)
{
    GPtrArray *kv = g_ptr_array_new_with_free_func(g_free);

    kv_add(kv, "list", dir_list_name(l));
    kv_add(kv, "action", action);
    if (file != NULL)
        kv_add(kv, "file", file);
    if (sha256 != NULL)
        kv_add(kv, "sha256", sha256);
    for (guint r = 0; r < rows->len; r++) {
        if (l == DIR_EMPLOYEES) {
            const struct dir_employee *e = rows->pdata[r];
            kv_add(kv, "address", e->address);
            kv_add(kv, "name", e->name);
            kv_add(kv, "department", e->department);
            kv_add(kv, "status", dir_status_name(e->status));
            kv_add(kv, "departed", e->departed);
            kv_add(kv, "successor", e->successor);
            kv_add(kv, "manager", e->manager);
            kv_add(kv, "mobile", e->mobile);
            kv_list(kv, "personal", e->personal);
        } else if (l == DIR_CUSTOMERS) {
            const struct dir_customer *c = rows->pdata[r];
            kv_add(kv, "customer", c->name);
            kv_add(kv, "owner", c->owner);
            kv_add(kv, "source", c->source);
            kv_list(kv, "domain", c->domains);
            kv_list(kv, "contact", c->contacts);
            kv_list(kv, "phone", c->phones);
        } else {
            const struct dir_account *a = rows->pdata[r];
            kv_add(kv, "account", a->account);
            kv_add(kv, "bank", a->bank);
            kv_add(kv, "holder", a->holder);
        }
    }
    g_ptr_array_add(kv, NULL);
    return kv;
}

int dir_change(struct arc *arc, enum dir_list l, const char *action, const char *file,
               const char *sha256, GPtrArray *rows, char **error_r)
{
    GPtrArray *kv = dir_event_fields(l, action, file, sha256, rows);
    int ret = arc_event(arc, "directory", 0, (const char *const *)kv->pdata, NULL, error_r);

    g_ptr_array_free(kv, TRUE);
    if (ret == 0)
        ret = dir_apply(arc_index(arc), l, rows, (gint64)time(NULL), error_r);
    return ret;
}

/* Set field key of the row being read from an event: 0, or -1 unknown. */
static int event_set(enum dir_list l, gpointer row, const char *k, const char *v)
{
    if (l == DIR_EMPLOYEES) {
        struct dir_employee *e = row;
        if (strcmp(k, "name") == 0) set_str(&e->name, v);
        else if (strcmp(k, "department") == 0) set_str(&e->department, v);
        else if (strcmp(k, "status") == 0) return dir_status_parse(v, &e->status);
        else if (strcmp(k, "departed") == 0) set_str(&e->departed, v);
        else if (strcmp(k, "successor") == 0) set_str(&e->successor, v);
        else if (strcmp(k, "manager") == 0) set_str(&e->manager, v);
        else if (strcmp(k, "mobile") == 0) set_str(&e->mobile, v);
        else if (strcmp(k, "personal") == 0) g_ptr_array_add(e->personal, g_strdup(v));
        else return -1;
    } else if (l == DIR_CUSTOMERS) {
        struct dir_customer *c = row;
        if (strcmp(k, "owner") == 0) set_str(&c->owner, v);
        else if (strcmp(k, "source") == 0) set_str(&c->source, v);
        else if (strcmp(k, "domain") == 0) g_ptr_array_add(c->domains, g_strdup(v));
        else if (strcmp(k, "contact") == 0) g_ptr_array_add(c->contacts, g_strdup(v));
        else if (strcmp(k, "phone") == 0) g_ptr_array_add(c->phones, g_strdup(v));
        else return -1;
    } else {
        struct dir_account *a = row;
        if (strcmp(k, "bank") == 0) set_str(&a->bank, v);
        else if (strcmp(k, "holder") == 0) set_str(&a->holder, v);
        else return -1;
    }
    return 0;
}

int dir_apply_event(struct idx *idx, const struct chain_event *ev, char **error_r)
{
    static const char *const row_key[] = { "address", "customer", "account" };
    const char *list = chain_event_get(ev, "list");
    GPtrArray *rows = NULL;
    gpointer row = NULL;
    enum dir_list l;
    int ret = -1;

    if (list == NULL || dir_list_parse(list, &l) < 0)
        return cus_error(error_r, "directory event %" G_GINT64_FORMAT ": no list or an "
                         "unknown one", ev->seq);
    rows = g_ptr_array_new_with_free_func(dir_row_free_func(l));
    for (guint i = 0; i + 1 < ev->fields->len; i += 2) {
        const char *k = ev->fields->pdata[i], *v = ev->fields->pdata[i + 1];

        if (strcmp(k, row_key[l]) == 0) {
            if (l == DIR_EMPLOYEES) {
                struct dir_employee *e = dir_employee_new();
                set_str(&e->address, v);
                row = e;
            } else if (l == DIR_CUSTOMERS) {
                struct dir_customer *c = dir_customer_new();
                set_str(&c->name, v);
                row = c;
            } else {
                struct dir_account *a = dir_account_new();
                set_str(&a->account, v);
                row = a;
            }
            g_ptr_array_add(rows, row);
        } else if (row == NULL) {
            if (strcmp(k, "list") != 0 && strcmp(k, "action") != 0 &&
                strcmp(k, "file") != 0 && strcmp(k, "sha256") != 0)
                goto bad;
        } else if (event_set(l, row, k, v) < 0) {
            goto bad;
        }
        continue;
bad:
        cus_error(error_r, "directory event %" G_GINT64_FORMAT ": unexpected field '%s'",
                  ev->seq, k);
        goto out;
    }
    ret = dir_apply(idx, l, rows, ev->time, error_r);
out:
    g_ptr_array_free(rows, TRUE);
    return ret;
}
