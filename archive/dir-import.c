/*
 * dir-import.c - employees, customers and accounts from CSV files
 *
 * A file is read whole and checked against itself and the directory
 * before anything is written: every bad row is reported (FILE:LINE:
 * reason, each reason of a row on its own line), and a file with any is
 * not applied at all. Rows are upserts by key (an employee's address, a
 * customer's name, an account number); a column the header does not have
 * leaves the stored value as it is, an empty field clears it.
 *
 * What is required (see directory.h for the values):
 *  - employees: address, name, department, status in every row; departed
 *    (date) and successor for status departed; for status active neither
 *    (left out of the file, they are cleared); successor and manager are
 *    employees (in this file or the directory), not the employee itself;
 *    following successors from a departed employee reaches someone not
 *    departed; a personal address is no employee's work address, not in
 *    the company's domains, and registered for one employee only.
 *  - customers: a name; domains neither the company's own nor personal
 *    webmail (list webmail users as contacts); contacts not employees; a
 *    domain or contact belongs to one customer: taking one from an
 *    imported customer not in the file is an error, from a learned one it
 *    moves (and a learned customer left with nothing goes); owner an
 *    employee in the directory.
 *  - accounts: the account number.
 */
#include <stdarg.h>
#include <string.h>
#include "custos/csv.h"
#include "custos/util.h"
#include "directory-private.h"

struct colspec {
    const char *name;
    int required;
};

enum { E_ADDRESS, E_NAME, E_DEPT, E_STATUS, E_DEPARTED, E_SUCCESSOR, E_MANAGER, E_PERSONAL,
       E_MOBILE, E_NCOLS };
static const struct colspec emp_cols[E_NCOLS] = {
    { "address", 1 }, { "name", 1 }, { "department", 1 }, { "status", 1 },
    { "departed", 0 }, { "successor", 0 }, { "manager", 0 }, { "personal_addresses", 0 },
    { "mobile", 0 },
};
enum { C_NAME, C_DOMAINS, C_CONTACTS, C_PHONES, C_OWNER, C_NCOLS };
static const struct colspec cust_cols[C_NCOLS] = {
    { "name", 1 }, { "domains", 0 }, { "contacts", 0 }, { "phones", 0 }, { "owner", 0 },
};
enum { A_ACCOUNT, A_BANK, A_HOLDER, A_NCOLS };
static const struct colspec acct_cols[A_NCOLS] = {
    { "account", 1 }, { "bank", 0 }, { "holder", 0 },
};

#define MAX_COLS 9

struct ierr {
    int line, seq;
    char *text;
};

struct row {
    int line;
    int bad;                    /* something is wrong with it */
    int dup;                    /* its key is on an earlier row too */
    gpointer rec;               /* the record as it will be stored */
    gpointer old;               /* the stored one (borrowed), or NULL */
};

struct ictx {
    struct dir *d;
    struct dir_import *imp;
    const char *file;
    GArray *errs;               /* struct ierr */
    int cols[MAX_COLS];         /* field index of each column, -1 absent */
    const struct colspec *spec;
    int ncols;
    int nheader;                /* fields of the header */
    GPtrArray *rows;            /* struct row * */
    GPtrArray *stored;          /* the directory's rows of this list (owned) */
    GPtrArray *employees;       /* the directory's employees (owned; = stored) */
    GHashTable *old_by_key;     /* key -> stored record */
    GHashTable *emp_by_addr;    /* address -> stored employee */
};

static void err_at(struct ictx *x, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_at(struct ictx *x, int line, const char *fmt, ...)
{
    struct ierr e;
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    e.line = line;
    e.seq = (int)x->errs->len;
    e.text = line > 0 ? g_strdup_printf("%s:%d: %s", x->file, line, msg)
                      : g_strdup_printf("%s: %s", x->file, msg);
    g_free(msg);
    g_array_append_val(x->errs, e);
}

static void row_err(struct ictx *x, struct row *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void row_err(struct ictx *x, struct row *r, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    err_at(x, r->line, "%s", msg);
    g_free(msg);
    r->bad = 1;
}

/* A normaliser's verdict on column name of row r: 0, or -1 reported. */
static int norm(struct ictx *x, struct row *r, const char *name,
                int (*fn)(const char *, char **, char **), const char *in, char **out_r)
{
    char *err = NULL;

    if (fn(in, out_r, &err) == 0)
        return 0;
    row_err(x, r, "%s: %s", name, err);
    g_free(err);
    return -1;
}

/* Split a list field: ';' (and ',', '；', '，', line breaks) between items. */
static char **split_list(const char *s)
{
    GString *t = g_string_new(NULL);
    char **v;

    for (const char *p = s; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c == ',' || c == '\n' || c == '\r' || c == 0xff1b || c == 0xff0c)
            g_string_append_c(t, ';');
        else
            g_string_append_unichar(t, c);
    }
    v = g_strsplit(t->str, ";", -1);
    g_string_free(t, TRUE);
    return v;
}

/* Each item of list field in through fn into out (replaced). */
static void norm_list(struct ictx *x, struct row *r, const char *name,
                      int (*fn)(const char *, char **, char **), const char *in,
                      GPtrArray *out)
{
    char **items = split_list(in);

    g_ptr_array_set_size(out, 0);
    for (int i = 0; items[i] != NULL; i++) {
        char *v = NULL, *t = NULL;
        if (dir_norm_text(items[i], &t, NULL) == 0 && *t == '\0') {
            g_free(t);
            continue;
        }
        g_free(t);
        if (norm(x, r, name, fn, items[i], &v) == 0)
            g_ptr_array_add(out, v);
    }
    g_strfreev(items);
    dir_strv_sort_uniq(out);
}

/* The raw field of column c, or NULL if the header has no such column. */
static const char *field(struct ictx *x, GPtrArray *f, int c)
{
    return x->cols[c] >= 0 ? g_ptr_array_index(f, x->cols[c]) : NULL;
}

/* ---- the header ---------------------------------------------------------------- */

/* "a, b, c": the columns of the list (required ones only, if required). */
static char *col_names(const struct ictx *x, int required)
{
    GString *s = g_string_new(NULL);

    for (int c = 0; c < x->ncols; c++)
        if (!required || x->spec[c].required)
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", x->spec[c].name);
    return g_string_free(s, FALSE);
}

static int read_header(struct ictx *x, GPtrArray *f, int line)
{
    char *all = col_names(x, 0), *req = col_names(x, 1);
    int ok = 1;

    for (int c = 0; c < x->ncols; c++)
        x->cols[c] = -1;
    x->nheader = (int)f->len;
    for (guint i = 0; i < f->len; i++) {
        char *t = NULL, *h;
        int found = -1;

        dir_norm_text(g_ptr_array_index(f, i), &t, NULL);
        h = g_ascii_strdown(t != NULL ? t : "", -1);
        g_free(t);
        for (int c = 0; c < x->ncols; c++)
            if (strcmp(h, x->spec[c].name) == 0)
                found = c;
        if (*h == '\0') {
            err_at(x, line, "column %u of the header has no name (%s has: %s)", i + 1,
                   dir_list_name(x->imp->list), all);
            ok = 0;
        } else if (found < 0) {
            err_at(x, line, "unknown column '%s' (%s has: %s)", h,
                   dir_list_name(x->imp->list), all);
            ok = 0;
        } else if (x->cols[found] >= 0) {
            err_at(x, line, "column '%s' twice in the header", h);
            ok = 0;
        } else {
            x->cols[found] = (int)i;
        }
        g_free(h);
    }
    for (int c = 0; c < x->ncols; c++)
        if (x->spec[c].required && x->cols[c] < 0) {
            err_at(x, line, "the header has no column '%s' (%s needs: %s)", x->spec[c].name,
                   dir_list_name(x->imp->list), req);
            ok = 0;
        }
    g_free(all);
    g_free(req);
    return ok ? 0 : -1;
}

/* ---- pass 1: each row on its own ---------------------------------------------- */

/* An optional address field: "" or a normalised address into *dst. */
static void set_addr_or_empty(struct ictx *x, struct row *r, const char *name,
                              const char *v, char **dst)
{
    char *s = NULL;

    if (norm(x, r, name, dir_norm_text, v, &s) < 0)
        return;
    if (*s != '\0') {
        char *a = NULL;
        if (norm(x, r, name, dir_norm_addr, v, &a) == 0) {
            g_free(s);
            s = a;
        }       /* else the row is bad; s stands in, so nothing says "needs" */
    }
    g_free(*dst);
    *dst = s;
}

/* An optional field through fn, "" kept as "": into *dst. */
static void set_opt(struct ictx *x, struct row *r, const char *name,
                    int (*fn)(const char *, char **, char **), const char *v, char **dst)
{
    char *s = NULL;

    if (norm(x, r, name, dir_norm_text, v, &s) < 0)
        return;
    if (*s != '\0' && fn != NULL) {
        char *n = NULL;
        if (norm(x, r, name, fn, v, &n) == 0) {
            g_free(s);
            s = n;
        }
    }
    g_free(*dst);
    *dst = s;
}

static void employee_row(struct ictx *x, struct row *r, GPtrArray *f)
{
    struct dir_employee *e, *old;
    const char *v;
    char *s = NULL;

    if (norm(x, r, "address", dir_norm_addr, field(x, f, E_ADDRESS), &s) < 0)
        return;
    old = g_hash_table_lookup(x->old_by_key, s);
    e = old != NULL ? dir_employee_copy(old) : dir_employee_new();
    g_free(e->address);
    e->address = s;
    r->rec = e;
    r->old = old;
    s = NULL;
    if (norm(x, r, "name", dir_norm_text, field(x, f, E_NAME), &s) == 0) {
        if (*s == '\0')
            row_err(x, r, "name: empty");
        g_free(e->name);
        e->name = s;
    }
    s = NULL;
    if (norm(x, r, "department", dir_norm_text, field(x, f, E_DEPT), &s) == 0) {
        if (*s == '\0')
            row_err(x, r, "department: empty");
        g_free(e->department);
        e->department = s;
    }
    v = field(x, f, E_STATUS);
    if (norm(x, r, "status", dir_norm_text, v, &s) == 0) {
        int ok = 0;
        for (int i = 0; i < 3 && !ok; i++)
            if (g_ascii_strcasecmp(s, dir_status_name((enum dir_status)i)) == 0) {
                e->status = (enum dir_status)i;
                ok = 1;
            }
        if (!ok)
            row_err(x, r, "status: '%s' is not active, leaving or departed", s);
        g_free(s);
    }
    if ((v = field(x, f, E_DEPARTED)) != NULL)
        set_opt(x, r, "departed", dir_norm_date, v, &e->departed);
    if ((v = field(x, f, E_SUCCESSOR)) != NULL)
        set_addr_or_empty(x, r, "successor", v, &e->successor);
    if ((v = field(x, f, E_MANAGER)) != NULL)
        set_addr_or_empty(x, r, "manager", v, &e->manager);
    if ((v = field(x, f, E_MOBILE)) != NULL)
        set_opt(x, r, "mobile", dir_norm_phone, v, &e->mobile);
    if ((v = field(x, f, E_PERSONAL)) != NULL)
        norm_list(x, r, "personal_addresses", dir_norm_addr, v, e->personal);
    /* the status and what goes with it */
    if (e->status == DIR_ACTIVE) {
        if (x->cols[E_DEPARTED] < 0)
            g_free(e->departed), e->departed = g_strdup("");
        else if (*e->departed != '\0')
            row_err(x, r, "departed: a date, but the status is active");
        if (x->cols[E_SUCCESSOR] < 0)
            g_free(e->successor), e->successor = g_strdup("");
        else if (*e->successor != '\0')
            row_err(x, r, "successor: given, but the status is active");
    } else if (e->status == DIR_DEPARTED) {
        if (*e->departed == '\0')
            row_err(x, r, "departed: status departed needs the date (YYYY-MM-DD)");
        if (*e->successor == '\0')
            row_err(x, r, "successor: status departed needs a successor (who gets the mail)");
    }
    if (strcmp(e->successor, e->address) == 0)
        row_err(x, r, "successor: the employee itself");
    if (strcmp(e->manager, e->address) == 0)
        row_err(x, r, "manager: the employee itself");
}

/* Is domain (or a parent of it) in set? */
static int in_domain_set(GHashTable *set, const char *domain)
{
    if (set == NULL)
        return 0;
    for (const char *s = domain; s != NULL; s = strchr(s, '.')) {
        if (*s == '.')
            s++;
        if (strchr(s, '.') == NULL)
            break;
        if (g_hash_table_contains(set, s))
            return 1;
    }
    return 0;
}

static void customer_row(struct ictx *x, struct row *r, GPtrArray *f)
{
    struct dir_customer *c, *old;
    const char *v;
    char *s = NULL;

    if (norm(x, r, "name", dir_norm_text, field(x, f, C_NAME), &s) < 0)
        return;
    if (*s == '\0') {
        row_err(x, r, "name: empty");
        g_free(s);
        return;
    }
    old = g_hash_table_lookup(x->old_by_key, s);
    c = old != NULL ? dir_customer_copy(old) : dir_customer_new();
    g_free(c->name);
    c->name = s;
    g_free(c->source);
    c->source = g_strdup("import");
    r->rec = c;
    r->old = old;
    if ((v = field(x, f, C_DOMAINS)) != NULL) {
        norm_list(x, r, "domains", dir_norm_domain, v, c->domains);
        for (guint i = 0; i < c->domains->len; i++)
            if (in_domain_set(dir_webmail(x->d), c->domains->pdata[i]))
                row_err(x, r, "domains: %s is personal webmail (list the customer's "
                        "addresses there as contacts)", (char *)c->domains->pdata[i]);
    }
    if ((v = field(x, f, C_CONTACTS)) != NULL)
        norm_list(x, r, "contacts", dir_norm_addr, v, c->contacts);
    if ((v = field(x, f, C_PHONES)) != NULL)
        norm_list(x, r, "phones", dir_norm_phone, v, c->phones);
    if ((v = field(x, f, C_OWNER)) != NULL)
        set_addr_or_empty(x, r, "owner", v, &c->owner);
}

static void account_row(struct ictx *x, struct row *r, GPtrArray *f)
{
    struct dir_account *a, *old;
    const char *v;
    char *s = NULL;

    if (norm(x, r, "account", dir_norm_text, field(x, f, A_ACCOUNT), &s) < 0)
        return;
    if (*s == '\0') {
        row_err(x, r, "account: empty");
        g_free(s);
        return;
    }
    g_free(s);
    if (norm(x, r, "account", dir_norm_account, field(x, f, A_ACCOUNT), &s) < 0)
        return;
    old = g_hash_table_lookup(x->old_by_key, s);
    a = dir_account_new();
    if (old != NULL) {
        g_free(a->bank);
        a->bank = g_strdup(old->bank);
        g_free(a->holder);
        a->holder = g_strdup(old->holder);
    }
    g_free(a->account);
    a->account = s;
    r->rec = a;
    r->old = old;
    if ((v = field(x, f, A_BANK)) != NULL)
        set_opt(x, r, "bank", NULL, v, &a->bank);
    if ((v = field(x, f, A_HOLDER)) != NULL)
        set_opt(x, r, "holder", NULL, v, &a->holder);
}

/* ---- pass 2: rows against each other and the directory ------------------------- */

/* The line of the first row with key (in first_line), or records it. */
static int first_line(GHashTable *first, const char *key, int line)
{
    gpointer v;

    if (g_hash_table_lookup_extended(first, key, NULL, &v))
        return GPOINTER_TO_INT(v);
    g_hash_table_insert(first, g_strdup(key), GINT_TO_POINTER(line));
    return 0;
}

/* Is s an address as dir_norm_addr() leaves it (and no raw stand-in)? */
static int is_addr(const char *s)
{
    char *n = NULL;
    int ok = *s != '\0' && dir_norm_addr(s, &n, NULL) == 0 && strcmp(n, s) == 0;

    g_free(n);
    return ok;
}

static void check_employees(struct ictx *x)
{
    GHashTable *file = g_hash_table_new(g_str_hash, g_str_equal);    /* addr -> row */
    GHashTable *first = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTable *internal = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *personal = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    for (guint i = 0; i < x->rows->len; i++) {
        struct row *r = x->rows->pdata[i];
        const struct dir_employee *e = r->rec;
        int dup;

        if (e == NULL)
            continue;
        if ((dup = first_line(first, e->address, r->line)) != 0) {
            row_err(x, r, "address %s is also on line %d", e->address, dup);
            continue;
        }
        g_hash_table_insert(file, e->address, r);
        g_hash_table_add(internal, (gpointer)dir_domain_of(e->address));
    }
    for (guint i = 0; i < x->employees->len; i++) {
        const struct dir_employee *e = x->employees->pdata[i];
        g_hash_table_add(internal, (gpointer)dir_domain_of(e->address));
        if (g_hash_table_contains(file, e->address))
            continue;               /* its personal addresses are the file's now */
        for (guint p = 0; p < e->personal->len; p++)
            g_hash_table_insert(personal, g_strdup(e->personal->pdata[p]),
                                g_strdup_printf("employee %s (in the directory)", e->address));
    }
#define KNOWN(a) (g_hash_table_contains(file, (a)) || g_hash_table_contains(x->emp_by_addr, (a)))
    for (guint i = 0; i < x->rows->len; i++) {
        struct row *r = x->rows->pdata[i];
        const struct dir_employee *e = r->rec;
        const char *owner;

        if (e == NULL || g_hash_table_lookup(file, e->address) != r)
            continue;
        if (is_addr(e->successor) && !KNOWN(e->successor))
            row_err(x, r, "successor: %s is not an employee (in this file or the directory)",
                    e->successor);
        if (is_addr(e->manager) && !KNOWN(e->manager))
            row_err(x, r, "manager: %s is not an employee (in this file or the directory)",
                    e->manager);
        if ((owner = g_hash_table_lookup(personal, e->address)) != NULL)
            row_err(x, r, "address %s is a personal address of %s", e->address, owner);
        for (guint p = 0; p < e->personal->len; p++) {
            const char *a = e->personal->pdata[p];
            if (KNOWN(a)) {
                row_err(x, r, "personal_addresses: %s is an employee's work address", a);
            } else if (in_domain_set(internal, dir_domain_of(a))) {
                row_err(x, r, "personal_addresses: %s is in the company's domain %s", a,
                        dir_domain_of(a));
            } else if ((owner = g_hash_table_lookup(personal, a)) != NULL) {
                row_err(x, r, "personal_addresses: %s is also registered for %s", a, owner);
            } else {
                g_hash_table_insert(personal, g_strdup(a),
                                    g_strdup_printf("%s (line %d)", e->address, r->line));
            }
        }
    }
#undef KNOWN
    /* From each departed employee of the file, successors lead to someone
     * who is not departed. */
    for (guint i = 0; i < x->rows->len; i++) {
        struct row *r = x->rows->pdata[i];
        const struct dir_employee *e = r->rec;
        GString *path;
        GHashTable *seen;
        const char *cur;

        if (e == NULL || r->bad || e->status != DIR_DEPARTED)
            continue;
        path = g_string_new(e->address);
        seen = g_hash_table_new(g_str_hash, g_str_equal);
        for (cur = e->address;;) {
            struct row *fr = g_hash_table_lookup(file, cur);
            const struct dir_employee *ce = fr != NULL ? fr->rec :
                                            g_hash_table_lookup(x->emp_by_addr, cur);
            if (ce == NULL || ce->status != DIR_DEPARTED)
                break;                              /* unknown: reported above */
            g_hash_table_add(seen, (gpointer)cur);
            if (*ce->successor == '\0') {
                row_err(x, r, "successor: %s leads to %s, departed with no successor",
                        path->str, ce->address);
                break;
            }
            cur = ce->successor;
            g_string_append_printf(path, " -> %s", cur);
            if (g_hash_table_contains(seen, cur)) {
                row_err(x, r, "successor: %s goes round in a circle of departed employees",
                        path->str);
                break;
            }
        }
        g_hash_table_unref(seen);
        g_string_free(path, TRUE);
    }
    g_hash_table_unref(file);
    g_hash_table_unref(first);
    g_hash_table_unref(internal);
    g_hash_table_unref(personal);
}

/* A domain or contact of row r (of customer c) against the other rows
 * (first: key -> line) and the customer that has it now (owners: key ->
 * stored customer); names: the file's customer names. */
static void check_owned(struct ictx *x, struct row *r, const struct dir_customer *c,
                        const char *what, const char *key, GHashTable *first,
                        GHashTable *owners, GHashTable *names)
{
    const struct dir_customer *o = g_hash_table_lookup(owners, key);
    int dup = first_line(first, key, r->line);

    if (dup != 0) {
        row_err(x, r, "%s: %s is also on line %d", what, key, dup);
        return;
    }
    if (o == NULL || strcmp(o->name, c->name) == 0 || g_hash_table_contains(names, o->name))
        return;
    if (strcmp(o->source, "learn") == 0)
        g_ptr_array_add(x->imp->notes, g_strdup_printf("%s:%d: %s %s moves from the learned "
                        "customer '%s' to '%s'", x->file, r->line, what, key, o->name,
                        c->name));
    else
        row_err(x, r, "%s: %s belongs to the customer '%s', which is not in this file (add "
                "that customer's row without it)", what, key, o->name);
}

static void check_customers(struct ictx *x)
{
    GHashTable *first = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTable *dfirst = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTable *cfirst = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *internal = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *by_domain = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *by_contact = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < x->employees->len; i++) {
        const struct dir_employee *e = x->employees->pdata[i];
        g_hash_table_add(internal, (gpointer)dir_domain_of(e->address));
    }
    for (guint i = 0; i < x->stored->len; i++) {
        const struct dir_customer *c = x->stored->pdata[i];
        for (guint k = 0; k < c->domains->len; k++)
            g_hash_table_insert(by_domain, c->domains->pdata[k], (gpointer)c);
        for (guint k = 0; k < c->contacts->len; k++)
            g_hash_table_insert(by_contact, c->contacts->pdata[k], (gpointer)c);
    }
    for (guint i = 0; i < x->rows->len; i++) {
        struct row *r = x->rows->pdata[i];
        const struct dir_customer *c = r->rec;
        char *fold;
        int dup;

        if (c == NULL)
            continue;
        fold = g_utf8_casefold(c->name, -1);
        dup = first_line(first, fold, r->line);
        g_free(fold);
        if (dup != 0) {
            row_err(x, r, "name: the customer '%s' is also on line %d", c->name, dup);
            r->dup = 1;
            continue;
        }
        g_hash_table_add(names, c->name);
    }
    for (guint i = 0; i < x->rows->len; i++) {
        struct row *r = x->rows->pdata[i];
        const struct dir_customer *c = r->rec;

        if (c == NULL || r->dup)
            continue;
        if (is_addr(c->owner) && !g_hash_table_contains(x->emp_by_addr, c->owner))
            row_err(x, r, "owner: %s is not an employee in the directory (import the "
                    "employees first)", c->owner);
        for (guint k = 0; k < c->domains->len; k++) {
            const char *dom = c->domains->pdata[k];
            if (in_domain_set(internal, dom))
                row_err(x, r, "domains: %s is the company's own (an employee's domain)", dom);
            else
                check_owned(x, r, c, "domain", dom, dfirst, by_domain, names);
        }
        for (guint k = 0; k < c->contacts->len; k++) {
            const char *a = c->contacts->pdata[k];
            if (g_hash_table_contains(x->emp_by_addr, a))
                row_err(x, r, "contacts: %s is an employee", a);
            else
                check_owned(x, r, c, "contact", a, cfirst, by_contact, names);
        }
    }
    g_hash_table_unref(first);
    g_hash_table_unref(dfirst);
    g_hash_table_unref(cfirst);
    g_hash_table_unref(names);
    g_hash_table_unref(internal);
    g_hash_table_unref(by_domain);
    g_hash_table_unref(by_contact);
}

static void check_accounts(struct ictx *x)
{
    GHashTable *first = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    for (guint i = 0; i < x->rows->len; i++) {
        struct row *r = x->rows->pdata[i];
        const struct dir_account *a = r->rec;
        int dup;

        if (a != NULL && (dup = first_line(first, a->account, r->line)) != 0)
            row_err(x, r, "account %s is also on line %d", a->account, dup);
    }
    g_hash_table_unref(first);
}

/* ---- the whole file ------------------------------------------------------------- */

static gint cmp_err(gconstpointer a, gconstpointer b)
{
    const struct ierr *x = a, *y = b;

    return x->line != y->line ? (x->line < y->line ? -1 : 1) : x->seq - y->seq;
}

static void row_free(gpointer p)
{
    g_free(p);          /* its record goes to imp->rows, or is freed by the reader */
}

/* Read the directory as it is: x->employees, x->stored and the maps. */
static int load_stored(struct ictx *x, char **error_r)
{
    enum dir_list l = x->imp->list;

    if (dir_list(x->d, DIR_EMPLOYEES, &x->employees, error_r) < 0)
        return -1;
    x->emp_by_addr = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < x->employees->len; i++) {
        struct dir_employee *e = x->employees->pdata[i];
        g_hash_table_insert(x->emp_by_addr, e->address, e);
    }
    if (l == DIR_EMPLOYEES) {
        x->old_by_key = g_hash_table_ref(x->emp_by_addr);
        return 0;
    }
    if (dir_list(x->d, l, &x->stored, error_r) < 0)
        return -1;
    x->old_by_key = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < x->stored->len; i++) {
        if (l == DIR_CUSTOMERS) {
            struct dir_customer *c = x->stored->pdata[i];
            g_hash_table_insert(x->old_by_key, c->name, c);
        } else {
            struct dir_account *a = x->stored->pdata[i];
            g_hash_table_insert(x->old_by_key, a->account, a);
        }
    }
    return 0;
}

static void read_rows(struct ictx *x, struct csv *csv)
{
    GPtrArray *f;
    int line, rc, header = 0;
    char *err = NULL;

    while ((rc = csv_next(csv, &f, &line, &err)) != 0) {
        struct row *r;
        int empty = 1;

        if (rc < 0) {
            struct ierr e = { line, (int)x->errs->len, err };
            g_array_append_val(x->errs, e);
            err = NULL;
            if (!header)
                return;         /* no header, nothing to read rows by */
            continue;
        }
        if (!header) {
            if (read_header(x, f, line) < 0)
                return;
            header = 1;
            continue;
        }
        for (guint i = 0; i < f->len && empty; i++) {
            char *t = NULL;
            if (dir_norm_text(g_ptr_array_index(f, i), &t, NULL) < 0 || *t != '\0')
                empty = 0;
            g_free(t);
        }
        if (empty)
            continue;           /* ",,,," from a spreadsheet */
        r = g_new0(struct row, 1);
        r->line = line;
        g_ptr_array_add(x->rows, r);
        if (f->len != (guint)x->nheader) {
            row_err(x, r, "%u fields, the header has %d", f->len, x->nheader);
            continue;
        }
        if (x->imp->list == DIR_EMPLOYEES)
            employee_row(x, r, f);
        else if (x->imp->list == DIR_CUSTOMERS)
            customer_row(x, r, f);
        else
            account_row(x, r, f);
    }
    if (!header) {
        char *all = col_names(x, 0);
        err_at(x, 0, "empty: no header row (%s has: %s)", dir_list_name(x->imp->list), all);
        g_free(all);
    }
}

int dir_import_read(struct dir *d, enum dir_list list, const char *path,
                    struct dir_import **imp_r, char **error_r)
{
    struct dir_import *imp = g_new0(struct dir_import, 1);
    GDestroyNotify rec_free = dir_row_free_func(list);
    struct ictx x;
    struct csv *csv = NULL;
    char *err = NULL;
    int ret = -1;

    *imp_r = NULL;
    imp->list = list;
    imp->file = g_strdup(path);
    imp->rows = g_ptr_array_new_with_free_func(rec_free);
    imp->errors = g_ptr_array_new_with_free_func(g_free);
    imp->notes = g_ptr_array_new_with_free_func(g_free);
    memset(&x, 0, sizeof(x));
    x.d = d;
    x.imp = imp;
    x.file = path;
    x.errs = g_array_new(FALSE, FALSE, sizeof(struct ierr));
    x.rows = g_ptr_array_new_with_free_func(row_free);
    x.spec = list == DIR_EMPLOYEES ? emp_cols : list == DIR_CUSTOMERS ? cust_cols : acct_cols;
    x.ncols = list == DIR_EMPLOYEES ? E_NCOLS : list == DIR_CUSTOMERS ? C_NCOLS : A_NCOLS;
    if (list == DIR_CUSTOMERS && dir_webmail(d) == NULL) {
        cus_error(error_r, "importing customers needs the webmail list "
                  "([directory] webmail_domains)");
        goto out;
    }
    if (load_stored(&x, error_r) < 0)
        goto out;
    if (csv_open_file(path, &csv, &err) < 0) {
        struct ierr e = { 0, 0, err };
        g_array_append_val(x.errs, e);
    } else {
        memcpy(imp->sha256, csv_sha256(csv), sizeof(imp->sha256));
        imp->encoding = csv_encoding(csv);
        read_rows(&x, csv);
        csv_free(&csv);
    }
    if (list == DIR_EMPLOYEES)
        check_employees(&x);
    else if (list == DIR_CUSTOMERS)
        check_customers(&x);
    else
        check_accounts(&x);
    g_array_sort(x.errs, cmp_err);
    for (guint i = 0; i < x.errs->len; i++) {
        struct ierr *e = &g_array_index(x.errs, struct ierr, i);
        g_ptr_array_add(imp->errors, e->text);
        e->text = NULL;
    }
    for (guint i = 0; i < x.rows->len; i++) {
        struct row *r = x.rows->pdata[i];
        int same;

        if (r->rec == NULL)
            continue;
        if (imp->errors->len > 0) {
            rec_free(r->rec);
            continue;
        }
        same = r->old == NULL ? 0 :
               list == DIR_EMPLOYEES ? dir_employee_equal(r->rec, r->old) :
               list == DIR_CUSTOMERS ? dir_customer_equal(r->rec, r->old) :
               dir_account_equal(r->rec, r->old);
        if (r->old == NULL)
            imp->added++;
        else if (same)
            imp->unchanged++;
        else
            imp->updated++;
        g_ptr_array_add(imp->rows, r->rec);
    }
    *imp_r = imp;
    imp = NULL;
    ret = 0;
out:
    if (ret < 0)
        for (guint i = 0; i < x.rows->len; i++)
            if (((struct row *)x.rows->pdata[i])->rec != NULL)
                rec_free(((struct row *)x.rows->pdata[i])->rec);
    for (guint i = 0; i < x.errs->len; i++)
        g_free(g_array_index(x.errs, struct ierr, i).text);
    g_array_free(x.errs, TRUE);
    g_ptr_array_free(x.rows, TRUE);
    if (x.employees != NULL)
        g_ptr_array_free(x.employees, TRUE);
    if (x.stored != NULL)
        g_ptr_array_free(x.stored, TRUE);
    if (x.emp_by_addr != NULL)
        g_hash_table_unref(x.emp_by_addr);
    if (x.old_by_key != NULL)
        g_hash_table_unref(x.old_by_key);
    dir_import_free(&imp);
    return ret;
}

int dir_import_apply(struct arc *arc, struct dir_import *imp, char **error_r)
{
    if (imp->errors->len > 0)
        return cus_error(error_r, "%s: %u bad rows: nothing applied", imp->file,
                         imp->errors->len);
    return dir_change(arc, imp->list, "import", imp->file, imp->sha256, imp->rows, error_r);
}

void dir_import_free(struct dir_import **ip)
{
    struct dir_import *imp = *ip;

    if (imp == NULL)
        return;
    g_free(imp->file);
    g_ptr_array_free(imp->rows, TRUE);
    g_ptr_array_free(imp->errors, TRUE);
    g_ptr_array_free(imp->notes, TRUE);
    g_free(imp);
    *ip = NULL;
}
