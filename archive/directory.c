/*
 * directory.c - who is who: records, normalisers, lookups, and writing rows
 *
 * Lookups run on statements prepared once per struct dir (the milter asks
 * for every recipient); the webmail list is a GHashTable loaded once.
 * Internal domains are found through the expression index employees_domain
 * (index.c), so no list has to be kept in memory and go stale.
 *
 * Writing rows and the chain event: dir-apply.c.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "custos/archive.h"
#include "custos/util.h"
#include "directory-private.h"

/* ---- names and records ----------------------------------------------------- */

static const char *const list_names[] = { "employees", "customers", "accounts" };
static const char *const status_names[] = { "active", "leaving", "departed" };

const char *dir_list_name(enum dir_list l)
{
    return list_names[l];
}

int dir_list_parse(const char *s, enum dir_list *l_r)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, list_names[i]) == 0) {
            *l_r = (enum dir_list)i;
            return 0;
        }
    return -1;
}

const char *dir_status_name(enum dir_status s)
{
    return status_names[s];
}

int dir_status_parse(const char *s, enum dir_status *st_r)
{
    for (int i = 0; i < 3; i++)
        if (g_ascii_strcasecmp(s, status_names[i]) == 0) {
            *st_r = (enum dir_status)i;
            return 0;
        }
    return -1;
}

struct dir_employee *dir_employee_new(void)
{
    struct dir_employee *e = g_new0(struct dir_employee, 1);

    e->address = g_strdup("");
    e->name = g_strdup("");
    e->department = g_strdup("");
    e->departed = g_strdup("");
    e->successor = g_strdup("");
    e->manager = g_strdup("");
    e->mobile = g_strdup("");
    e->personal = g_ptr_array_new_with_free_func(g_free);
    return e;
}

struct dir_customer *dir_customer_new(void)
{
    struct dir_customer *c = g_new0(struct dir_customer, 1);

    c->name = g_strdup("");
    c->owner = g_strdup("");
    c->source = g_strdup("import");
    c->domains = g_ptr_array_new_with_free_func(g_free);
    c->contacts = g_ptr_array_new_with_free_func(g_free);
    c->phones = g_ptr_array_new_with_free_func(g_free);
    return c;
}

struct dir_account *dir_account_new(void)
{
    struct dir_account *a = g_new0(struct dir_account, 1);

    a->account = g_strdup("");
    a->bank = g_strdup("");
    a->holder = g_strdup("");
    return a;
}

void dir_employee_free(struct dir_employee **ep)
{
    struct dir_employee *e = *ep;

    if (e == NULL)
        return;
    g_free(e->address);
    g_free(e->name);
    g_free(e->department);
    g_free(e->departed);
    g_free(e->successor);
    g_free(e->manager);
    g_free(e->mobile);
    g_ptr_array_free(e->personal, TRUE);
    g_free(e);
    *ep = NULL;
}

void dir_customer_free(struct dir_customer **cp)
{
    struct dir_customer *c = *cp;

    if (c == NULL)
        return;
    g_free(c->name);
    g_free(c->owner);
    g_free(c->source);
    g_ptr_array_free(c->domains, TRUE);
    g_ptr_array_free(c->contacts, TRUE);
    g_ptr_array_free(c->phones, TRUE);
    g_free(c);
    *cp = NULL;
}

void dir_account_free(struct dir_account **ap)
{
    struct dir_account *a = *ap;

    if (a == NULL)
        return;
    g_free(a->account);
    g_free(a->bank);
    g_free(a->holder);
    g_free(a);
    *ap = NULL;
}

static void employee_free1(gpointer p)
{
    struct dir_employee *e = p;
    dir_employee_free(&e);
}

static void customer_free1(gpointer p)
{
    struct dir_customer *c = p;
    dir_customer_free(&c);
}

static void account_free1(gpointer p)
{
    struct dir_account *a = p;
    dir_account_free(&a);
}

GDestroyNotify dir_row_free_func(enum dir_list l)
{
    return l == DIR_EMPLOYEES ? employee_free1 : l == DIR_CUSTOMERS ? customer_free1
                                                                     : account_free1;
}

static void strv_copy(GPtrArray *to, const GPtrArray *from)
{
    g_ptr_array_set_size(to, 0);
    for (guint i = 0; i < from->len; i++)
        g_ptr_array_add(to, g_strdup(g_ptr_array_index(from, i)));
}

static void set_str(char **field, const char *v)
{
    g_free(*field);
    *field = g_strdup(v != NULL ? v : "");
}

struct dir_employee *dir_employee_copy(const struct dir_employee *e)
{
    struct dir_employee *c = dir_employee_new();

    set_str(&c->address, e->address);
    set_str(&c->name, e->name);
    set_str(&c->department, e->department);
    c->status = e->status;
    set_str(&c->departed, e->departed);
    set_str(&c->successor, e->successor);
    set_str(&c->manager, e->manager);
    set_str(&c->mobile, e->mobile);
    strv_copy(c->personal, e->personal);
    return c;
}

struct dir_customer *dir_customer_copy(const struct dir_customer *c)
{
    struct dir_customer *n = dir_customer_new();

    n->id = c->id;
    set_str(&n->name, c->name);
    set_str(&n->owner, c->owner);
    set_str(&n->source, c->source);
    strv_copy(n->domains, c->domains);
    strv_copy(n->contacts, c->contacts);
    strv_copy(n->phones, c->phones);
    return n;
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void dir_strv_sort_uniq(GPtrArray *a)
{
    g_ptr_array_sort(a, cmp_str);
    for (guint i = a->len; i > 1; i--)
        if (strcmp(a->pdata[i - 2], a->pdata[i - 1]) == 0)
            g_ptr_array_remove_index(a, i - 1);     /* freed by a's free function */
}

int dir_strv_equal(const GPtrArray *a, const GPtrArray *b)
{
    if (a->len != b->len)
        return 0;
    for (guint i = 0; i < a->len; i++)
        if (strcmp(a->pdata[i], b->pdata[i]) != 0)
            return 0;
    return 1;
}

int dir_employee_equal(const struct dir_employee *a, const struct dir_employee *b)
{
    return strcmp(a->address, b->address) == 0 && strcmp(a->name, b->name) == 0 &&
           strcmp(a->department, b->department) == 0 && a->status == b->status &&
           strcmp(a->departed, b->departed) == 0 && strcmp(a->successor, b->successor) == 0 &&
           strcmp(a->manager, b->manager) == 0 && strcmp(a->mobile, b->mobile) == 0 &&
           dir_strv_equal(a->personal, b->personal);
}

int dir_customer_equal(const struct dir_customer *a, const struct dir_customer *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->owner, b->owner) == 0 &&
           strcmp(a->source, b->source) == 0 && dir_strv_equal(a->domains, b->domains) &&
           dir_strv_equal(a->contacts, b->contacts) && dir_strv_equal(a->phones, b->phones);
}

int dir_account_equal(const struct dir_account *a, const struct dir_account *b)
{
    return strcmp(a->account, b->account) == 0 && strcmp(a->bank, b->bank) == 0 &&
           strcmp(a->holder, b->holder) == 0;
}

const char *dir_domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at != NULL ? at + 1 : "";
}

/* ---- normalisers ------------------------------------------------------------- */

#define DIR_TEXT_MAX 1000       /* characters of a name, bank, ... */

int dir_norm_text(const char *in, char **out_r, char **error_r)
{
    GString *s = g_string_new(NULL);
    int space = 0;
    long chars = 0;

    *out_r = NULL;
    for (const char *p = in; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);

        if (g_unichar_isspace(c) || c == 0x3000 || c == 0xa0 || c == 0xfeff) {
            space = s->len > 0;
            continue;
        }
        if (g_unichar_iscntrl(c)) {
            g_string_free(s, TRUE);
            return cus_error(error_r, "a control character (U+%04X)", (unsigned)c);
        }
        if (space)
            g_string_append_c(s, ' ');
        space = 0;
        g_string_append_unichar(s, c);
        if (++chars > DIR_TEXT_MAX) {
            g_string_free(s, TRUE);
            return cus_error(error_r, "longer than %d characters", DIR_TEXT_MAX);
        }
    }
    *out_r = g_string_free(s, FALSE);
    return 0;
}

/* Trimmed and lower-cased, or -1 if it has white space or controls inside. */
static int norm_token(const char *in, const char *what, char **out_r, char **error_r)
{
    char *t = NULL, *low;

    *out_r = NULL;
    if (dir_norm_text(in, &t, error_r) < 0)
        return -1;
    if (strchr(t, ' ') != NULL) {
        cus_error(error_r, "%s '%s' has a space in it", what, t);
        g_free(t);
        return -1;
    }
    low = g_utf8_strdown(t, -1);
    g_free(t);
    *out_r = low;
    return 0;
}

/* A lower-case domain without '@': labels of letters (any script),
 * digits, '-' and '_', separated by single dots, at least two. */
static int check_domain(const char *d, const char *what, const char *whole, char **error_r)
{
    int labels = 0, len = 0;

    if (*d == '\0')
        return cus_error(error_r, "%s '%s' has no domain", what, whole);
    if (strlen(d) > 253)
        return cus_error(error_r, "%s '%s': the domain is longer than 253 bytes", what, whole);
    for (const char *p = d; ; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);

        if (c == '.' || c == '\0') {
            if (len == 0)
                return cus_error(error_r, "%s '%s': an empty label in the domain", what, whole);
            labels++;
            len = 0;
            if (c == '\0')
                break;
            continue;
        }
        if (!(c < 0x80 ? g_ascii_isalnum((char)c) || c == '-' || c == '_' :
              g_unichar_isalnum(c) || g_unichar_ismark(c)))
            return cus_error(error_r, "%s '%s': '%.*s' cannot be in a domain", what, whole,
                             (int)(g_utf8_next_char(p) - p), p);
        len++;
    }
    if (labels < 2)
        return cus_error(error_r, "%s '%s': the domain has no dot", what, whole);
    return 0;
}

int dir_norm_domain(const char *in, char **out_r, char **error_r)
{
    char *t = NULL;
    const char *d;

    *out_r = NULL;
    if (norm_token(in, "domain", &t, error_r) < 0)
        return -1;
    d = t;
    if (*d == '@')
        d++;
    if (strchr(d, '@') != NULL) {
        cus_error(error_r, "domain '%s' has an '@' in it (an address?)", t);
        g_free(t);
        return -1;
    }
    if (check_domain(d, "domain", t, error_r) < 0) {
        g_free(t);
        return -1;
    }
    *out_r = g_strdup(d);
    g_free(t);
    return 0;
}

int dir_norm_addr(const char *in, char **out_r, char **error_r)
{
    char *t = NULL, *at;

    *out_r = NULL;
    if (norm_token(in, "address", &t, error_r) < 0)
        return -1;
    at = strchr(t, '@');
    if (at == NULL || strchr(at + 1, '@') != NULL || at == t) {
        cus_error(error_r, "'%s' is not an address (local@domain, one '@')", t);
        g_free(t);
        return -1;
    }
    for (const char *p = t; p < at; p++)
        if (strchr("<>()[],;:\"\\", *p) != NULL) {
            cus_error(error_r, "address '%s': '%c' cannot be in it unquoted", t, *p);
            g_free(t);
            return -1;
        }
    if (strlen(t) > 254 || check_domain(at + 1, "address", t, error_r) < 0) {
        if (strlen(t) > 254)
            cus_error(error_r, "address '%s' is longer than 254 bytes", t);
        g_free(t);
        return -1;
    }
    *out_r = t;
    return 0;
}

/* Unicode decimal digits (full-width too) as ASCII. */
static int digit_of(gunichar c)
{
    return g_unichar_type(c) == G_UNICODE_DECIMAL_NUMBER ? g_unichar_digit_value(c) : -1;
}

int dir_norm_phone(const char *in, char **out_r, char **error_r)
{
    GString *s = g_string_new(NULL);
    int digits = 0;

    *out_r = NULL;
    if (!g_utf8_validate(in, -1, NULL))
        goto bad;
    for (const char *p = in; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        int d = digit_of(c);

        if (d >= 0) {
            g_string_append_c(s, (char)('0' + d));
            digits++;
        } else if (c == '+' || c == 0xff0b) {
            if (s->len > 0)
                goto bad;
            g_string_append_c(s, '+');
        } else if (!(g_unichar_isspace(c) || c == 0x3000 || c == 0xa0 ||
                     strchr("-.()/", c < 0x80 ? (int)c : 'x') != NULL ||
                     c == 0x2010 || c == 0x2013 || c == 0xff08 || c == 0xff09 ||
                     c == 0xff0d)) {
            goto bad;
        }
    }
    if (digits < 3 || digits > 20) {
        cus_error(error_r, "phone '%s' has %d digits (3 to 20)", in, digits);
        g_string_free(s, TRUE);
        return -1;
    }
    *out_r = g_string_free(s, FALSE);
    return 0;
bad:
    g_string_free(s, TRUE);
    return cus_error(error_r, "phone '%s': only digits, a leading +, spaces and - . ( ) /",
                     in);
}

int dir_norm_account(const char *in, char **out_r, char **error_r)
{
    GString *s = g_string_new(NULL);

    *out_r = NULL;
    if (!g_utf8_validate(in, -1, NULL))
        goto bad;
    for (const char *p = in; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        int d = digit_of(c);

        if (d >= 0)
            g_string_append_c(s, (char)('0' + d));
        else if (c < 0x80 && g_ascii_isalpha((char)c))
            g_string_append_c(s, g_ascii_toupper((char)c));
        else if (!(g_unichar_isspace(c) || c == 0x3000 || c == 0xa0 || c == '-'))
            goto bad;
    }
    if (s->len < 4 || s->len > 40) {
        cus_error(error_r, "account '%s' has %zu digits and letters (4 to 40)", in,
                  (size_t)s->len);
        g_string_free(s, TRUE);
        return -1;
    }
    *out_r = g_string_free(s, FALSE);
    return 0;
bad:
    g_string_free(s, TRUE);
    return cus_error(error_r, "account '%s': only digits, letters, spaces and '-'", in);
}

int dir_norm_date(const char *in, char **out_r, char **error_r)
{
    char *t = NULL;
    int ok;

    *out_r = NULL;
    if (dir_norm_text(in, &t, error_r) < 0)
        return -1;
    ok = strlen(t) == 10 && t[4] == '-' && t[7] == '-';
    for (int i = 0; ok && i < 10; i++)
        if (i != 4 && i != 7 && !g_ascii_isdigit(t[i]))
            ok = 0;
    if (ok) {
        int y = atoi(t), m = atoi(t + 5), d = atoi(t + 8);
        ok = y >= 1900 && g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y);
    }
    if (!ok) {
        cus_error(error_r, "'%s' is not an ISO date (YYYY-MM-DD, e.g. 2024-05-01; a "
                  "spreadsheet may have reformatted it)", t);
        g_free(t);
        return -1;
    }
    *out_r = t;
    return 0;
}

/* ---- webmail ------------------------------------------------------------------ */

#define WEBMAIL_MAX (1024 * 1024)

int dir_webmail_load(const char *path, GHashTable **set_r, char **error_r)
{
    GBytes *data = NULL;
    GHashTable *set;
    char **lines;
    gsize len;
    const char *text;
    int ret = 0;

    *set_r = NULL;
    if (path == NULL)
        return cus_error(error_r, "no webmail list configured ([directory] webmail_domains)");
    if (cus_read_file(path, WEBMAIL_MAX, &data, error_r) < 0) {
        char *e = *error_r;
        *error_r = g_strdup_printf("webmail list ([directory] webmail_domains): %s", e);
        g_free(e);
        return -1;
    }
    text = g_bytes_get_data(data, &len);
    if (!g_utf8_validate(text != NULL ? text : "", (gssize)len, NULL) ||
        (len > 0 && memchr(text, '\0', len) != NULL)) {
        g_bytes_unref(data);
        return cus_error(error_r, "%s: not UTF-8 text", path);
    }
    set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    {
        char *copy = g_strndup(text != NULL ? text : "", len);
        lines = g_strsplit(copy, "\n", -1);
        g_free(copy);
    }
    for (int i = 0; lines[i] != NULL && ret == 0; i++) {
        char *hash = strchr(lines[i], '#'), *d = NULL, *err = NULL;

        if (hash != NULL)
            *hash = '\0';
        g_strstrip(lines[i]);
        if (*lines[i] == '\0')
            continue;
        if (dir_norm_domain(lines[i], &d, &err) < 0) {
            ret = cus_error(error_r, "%s:%d: %s", path, i + 1, err);
            g_free(err);
            continue;
        }
        g_hash_table_add(set, d);
    }
    g_strfreev(lines);
    g_bytes_unref(data);
    if (ret < 0) {
        g_hash_table_unref(set);
        return -1;
    }
    *set_r = set;
    return 0;
}

/* ---- the lookup handle ------------------------------------------------------- */

enum dir_stmt {
    DS_EMP_GET, DS_EMP_PERSONAL, DS_EMP_OF_PERSONAL, DS_CUST_CONTACT, DS_CUST_DOMAIN,
    DS_CUST_NAME, DS_CUST_ID, DS_CUST_DOMAINS, DS_CUST_CONTACTS, DS_CUST_PHONES,
    DS_INTERNAL, DS_BEGIN, DS_COMMIT, DS_COUNT
};

static const char *const dir_sql[DS_COUNT] = {
    [DS_EMP_GET] = "SELECT address, name, department, status, departed, successor, manager,"
                   " mobile FROM employees WHERE address = ?",
    [DS_EMP_PERSONAL] = "SELECT addr FROM employee_personal WHERE employee = ? ORDER BY addr",
    /* the first by name, without sorting: min() over the index on addr */
    [DS_EMP_OF_PERSONAL] = "SELECT min(employee) FROM employee_personal WHERE addr = ?"
                           " GROUP BY addr",
    [DS_CUST_CONTACT] = "SELECT customer FROM customer_contacts WHERE addr = ?",
    [DS_CUST_DOMAIN] = "SELECT customer FROM customer_domains WHERE domain = ?",
    [DS_CUST_NAME] = "SELECT id FROM customers WHERE name = ?1 COLLATE NOCASE"
                     " ORDER BY name = ?1 DESC, id LIMIT 1",
    [DS_CUST_ID] = "SELECT id, name, owner, source FROM customers WHERE id = ?",
    [DS_CUST_DOMAINS] = "SELECT domain FROM customer_domains WHERE customer = ? ORDER BY domain",
    [DS_CUST_CONTACTS] = "SELECT addr FROM customer_contacts WHERE customer = ? ORDER BY addr",
    [DS_CUST_PHONES] = "SELECT phone FROM customer_phones WHERE customer = ? ORDER BY phone",
    /* the expression of the index employees_domain, exactly */
    [DS_INTERNAL] = "SELECT 1 FROM employees"
                    " WHERE substr(address, instr(address, '@') + 1) = ? LIMIT 1",
    [DS_BEGIN] = "BEGIN",
    [DS_COMMIT] = "COMMIT",
};

struct dir {
    struct idx *idx;
    int own_idx;
    sqlite3 *db;
    sqlite3_stmt *st[DS_COUNT];
    GHashTable *webmail;        /* NULL: none */
};

int dir_open_idx(struct idx *idx, const char *webmail, struct dir **d_r, char **error_r)
{
    struct dir *d = g_new0(struct dir, 1);

    *d_r = NULL;
    d->idx = idx;
    d->db = idx_db(idx);
    if (webmail != NULL && dir_webmail_load(webmail, &d->webmail, error_r) < 0)
        goto fail;
    for (int i = 0; i < DS_COUNT; i++)
        if (sqlite3_prepare_v3(d->db, dir_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                               NULL) != SQLITE_OK) {
            cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(d->db, "main"),
                      sqlite3_errmsg(d->db));
            goto fail;
        }
    *d_r = d;
    return 0;
fail:
    dir_close(&d);
    return -1;
}

int dir_open(const struct cfg *cfg, struct dir **d_r, char **error_r)
{
    char *path = g_build_filename(cfg->arc_dir, "index.db", NULL);
    struct idx *idx = NULL;
    int ret = -1;

    *d_r = NULL;
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        cus_error(error_r, "no archive at %s (index.db missing): run custos-archive init",
                  cfg->arc_dir);
        goto out;
    }
    if (cfg->dir_webmail == NULL) {
        cus_error(error_r, "no webmail list configured ([directory] webmail_domains)");
        goto out;
    }
    if (idx_open(path, IDX_RDONLY, &idx, error_r) < 0)
        goto out;
    if (dir_open_idx(idx, cfg->dir_webmail, d_r, error_r) < 0) {
        idx_close(&idx);
        goto out;
    }
    (*d_r)->own_idx = 1;
    ret = 0;
out:
    g_free(path);
    return ret;
}

void dir_close(struct dir **dp)
{
    struct dir *d = *dp;

    if (d == NULL)
        return;
    for (int i = 0; i < DS_COUNT; i++)
        sqlite3_finalize(d->st[i]);
    if (d->webmail != NULL)
        g_hash_table_unref(d->webmail);
    if (d->own_idx)
        idx_close(&d->idx);
    g_free(d);
    *dp = NULL;
}

struct idx *dir_index(struct dir *d) { return d->idx; }

int dir_read_begin(struct dir *d)
{
    int rc = sqlite3_step(d->st[DS_BEGIN]);

    sqlite3_reset(d->st[DS_BEGIN]);
    return rc == SQLITE_DONE ? 0 : -1;
}

void dir_read_end(struct dir *d)
{
    int rc = sqlite3_step(d->st[DS_COMMIT]);

    sqlite3_reset(d->st[DS_COMMIT]);
    if (rc != SQLITE_DONE && !sqlite3_get_autocommit(d->db))
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);     /* it only read */
}
sqlite3 *dir_db(struct dir *d) { return d->db; }
GHashTable *dir_webmail(struct dir *d) { return d->webmail; }

static int st_fail(struct dir *d, sqlite3_stmt *st, char **error_r)
{
    cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(d->db, "main"),
              sqlite3_errmsg(d->db));
    sqlite3_reset(st);
    return -1;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s != NULL ? s : "";
}

/* Every first column of statement st bound to key into out. */
static int collect(struct dir *d, enum dir_stmt which, const char *key, gint64 id,
                   GPtrArray *out, char **error_r)
{
    sqlite3_stmt *st = d->st[which];
    int rc;

    if (key != NULL)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, id);
    g_ptr_array_set_size(out, 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_ptr_array_add(out, g_strdup(col(st, 0)));
    if (rc != SQLITE_DONE)
        return st_fail(d, st, error_r);
    sqlite3_reset(st);
    return 0;
}

/* One text value, or an integer: 1 found, 0 not, -1. */
static int lookup1(struct dir *d, enum dir_stmt which, const char *key, char **text_r,
                   gint64 *id_r, char **error_r)
{
    sqlite3_stmt *st = d->st[which];
    int rc, found = 0;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        if (text_r != NULL)
            *text_r = g_strdup(col(st, 0));
        if (id_r != NULL)
            *id_r = sqlite3_column_int64(st, 0);
    } else if (rc != SQLITE_DONE) {
        return st_fail(d, st, error_r);
    }
    sqlite3_reset(st);
    return found;
}

int dir_employee_get(struct dir *d, const char *addr, struct dir_employee **e_r,
                     char **error_r)
{
    sqlite3_stmt *st = d->st[DS_EMP_GET];
    struct dir_employee *e;
    char *low = g_utf8_strdown(addr, -1);
    int rc;

    *e_r = NULL;
    sqlite3_bind_text(st, 1, low, -1, SQLITE_TRANSIENT);
    g_free(low);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    if (rc != SQLITE_ROW)
        return st_fail(d, st, error_r);
    e = dir_employee_new();
    set_str(&e->address, col(st, 0));
    set_str(&e->name, col(st, 1));
    set_str(&e->department, col(st, 2));
    if (dir_status_parse(col(st, 3), &e->status) < 0)
        e->status = DIR_ACTIVE;     /* the table's CHECK keeps it from happening */
    set_str(&e->departed, col(st, 4));
    set_str(&e->successor, col(st, 5));
    set_str(&e->manager, col(st, 6));
    set_str(&e->mobile, col(st, 7));
    sqlite3_reset(st);
    if (collect(d, DS_EMP_PERSONAL, e->address, 0, e->personal, error_r) < 0) {
        dir_employee_free(&e);
        return -1;
    }
    *e_r = e;
    return 1;
}

int dir_employee_of_personal(struct dir *d, const char *addr, struct dir_employee **e_r,
                             char **error_r)
{
    char *low = g_utf8_strdown(addr, -1), *emp = NULL;
    int ret;

    *e_r = NULL;
    ret = lookup1(d, DS_EMP_OF_PERSONAL, low, &emp, NULL, error_r);
    g_free(low);
    if (ret == 1) {
        ret = dir_employee_get(d, emp, e_r, error_r);
        g_free(emp);
    }
    return ret;
}

#define DIR_ROUTE_MAX 32

int dir_route(struct dir *d, const char *addr, char **to_r, char **error_r)
{
    struct dir_employee *e = NULL;
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    char *cur = g_utf8_strdown(addr, -1);
    int ret = 0;

    *to_r = NULL;
    for (int hops = 0; hops < DIR_ROUTE_MAX; hops++) {
        if (g_hash_table_contains(seen, cur))
            break;                                  /* loops */
        ret = dir_employee_get(d, cur, &e, error_r);
        if (ret <= 0)
            break;
        ret = 0;
        g_hash_table_add(seen, g_strdup(cur));
        if (e->status != DIR_DEPARTED) {
            *to_r = g_strdup(e->address);
            ret = 1;
            break;
        }
        if (*e->successor == '\0')
            break;
        g_free(cur);
        cur = g_strdup(e->successor);
        dir_employee_free(&e);
    }
    dir_employee_free(&e);
    g_free(cur);
    g_hash_table_unref(seen);
    return ret;
}

static int customer_get(struct dir *d, gint64 id, struct dir_customer **c_r, char **error_r)
{
    sqlite3_stmt *st = d->st[DS_CUST_ID];
    struct dir_customer *c;
    int rc;

    *c_r = NULL;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    if (rc != SQLITE_ROW)
        return st_fail(d, st, error_r);
    c = dir_customer_new();
    c->id = sqlite3_column_int64(st, 0);
    set_str(&c->name, col(st, 1));
    set_str(&c->owner, col(st, 2));
    set_str(&c->source, col(st, 3));
    sqlite3_reset(st);
    if (collect(d, DS_CUST_DOMAINS, NULL, id, c->domains, error_r) < 0 ||
        collect(d, DS_CUST_CONTACTS, NULL, id, c->contacts, error_r) < 0 ||
        collect(d, DS_CUST_PHONES, NULL, id, c->phones, error_r) < 0) {
        dir_customer_free(&c);
        return -1;
    }
    *c_r = c;
    return 1;
}

/* The customer found by statement which bound to key. */
static int customer_by(struct dir *d, enum dir_stmt which, const char *key,
                       struct dir_customer **c_r, char **error_r)
{
    gint64 id = 0;
    int ret;

    *c_r = NULL;
    ret = lookup1(d, which, key, NULL, &id, error_r);
    return ret == 1 ? customer_get(d, id, c_r, error_r) : ret;
}

int dir_customer_by_domain(struct dir *d, const char *domain, struct dir_customer **c_r,
                           char **error_r)
{
    char *low = g_utf8_strdown(*domain == '@' ? domain + 1 : domain, -1);
    int ret = customer_by(d, DS_CUST_DOMAIN, low, c_r, error_r);

    g_free(low);
    return ret;
}

int dir_customer_by_addr(struct dir *d, const char *addr, struct dir_customer **c_r,
                         char **error_r)
{
    char *low = g_utf8_strdown(addr, -1);
    int ret = customer_by(d, DS_CUST_CONTACT, low, c_r, error_r);

    if (ret == 0 && *dir_domain_of(low) != '\0')
        ret = customer_by(d, DS_CUST_DOMAIN, dir_domain_of(low), c_r, error_r);
    g_free(low);
    return ret;
}

int dir_customer_by_name(struct dir *d, const char *name, struct dir_customer **c_r,
                         char **error_r)
{
    return customer_by(d, DS_CUST_NAME, name, c_r, error_r);
}

int dir_is_webmail(struct dir *d, const char *addr_or_domain)
{
    const char *p = strchr(addr_or_domain, '@') ? dir_domain_of(addr_or_domain)
                                                 : addr_or_domain;
    char *low;
    int found = 0;

    if (d->webmail == NULL || *p == '\0')
        return 0;
    low = g_utf8_strdown(p, -1);
    /* the domain and each parent of it: vip.163.com is 163.com's */
    for (const char *s = low; s != NULL && !found; s = strchr(s, '.')) {
        if (*s == '.')
            s++;
        found = g_hash_table_contains(d->webmail, s);
    }
    g_free(low);
    return found;
}

int dir_is_internal(struct dir *d, const char *addr_or_domain, char **error_r)
{
    const char *p = strchr(addr_or_domain, '@') ? dir_domain_of(addr_or_domain)
                                                 : addr_or_domain;
    char *low;
    int found = 0;

    if (*p == '\0')
        return 0;
    low = g_utf8_strdown(p, -1);
    for (const char *s = low; s != NULL && found == 0; s = strchr(s, '.')) {
        if (*s == '.')
            s++;
        if (strchr(s, '.') == NULL)
            break;                  /* a top-level domain alone is nobody's */
        found = lookup1(d, DS_INTERNAL, s, NULL, NULL, error_r);
    }
    g_free(low);
    return found;
}

/* ---- listing ------------------------------------------------------------------- */

int dir_customers_stamp(struct dir *d, char **stamp_r, char **error_r)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM customers), (SELECT max(updated) FROM customers),"
        " (SELECT count(*) FROM customer_domains), (SELECT count(*) FROM customer_contacts),"
        " (SELECT count(*) FROM customer_phones)";
    sqlite3_stmt *st = NULL;

    *stamp_r = NULL;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(d->db, "main"),
                  sqlite3_errmsg(d->db));
        sqlite3_finalize(st);
        return -1;
    }
    *stamp_r = g_strdup_printf("%lld/%lld/%lld/%lld/%lld", sqlite3_column_int64(st, 0),
                               sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                               sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4));
    sqlite3_finalize(st);
    return 0;
}

int dir_list(struct dir *d, enum dir_list l, GPtrArray **rows_r, char **error_r)
{
    static const char *const sql[] = {
        "SELECT address FROM employees ORDER BY address",
        "SELECT id FROM customers ORDER BY name",
        "SELECT account, bank, holder FROM accounts ORDER BY account",
    };
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free), *rows;
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;

    *rows_r = NULL;
    rows = g_ptr_array_new_with_free_func(dir_row_free_func(l));
    if (sqlite3_prepare_v2(d->db, sql[l], -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (l == DIR_EMPLOYEES) {
            g_ptr_array_add(keys, g_strdup(col(st, 0)));
        } else if (l == DIR_CUSTOMERS) {
            gint64 id = sqlite3_column_int64(st, 0);
            g_array_append_val(ids, id);
        } else {
            struct dir_account *a = dir_account_new();
            set_str(&a->account, col(st, 0));
            set_str(&a->bank, col(st, 1));
            set_str(&a->holder, col(st, 2));
            g_ptr_array_add(rows, a);
        }
    }
    if (rc != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    st = NULL;
    for (guint i = 0; i < keys->len; i++) {
        struct dir_employee *e = NULL;
        if (dir_employee_get(d, keys->pdata[i], &e, error_r) < 0)
            goto out;
        if (e != NULL)
            g_ptr_array_add(rows, e);
    }
    for (guint i = 0; i < ids->len; i++) {
        struct dir_customer *c = NULL;
        if (customer_get(d, g_array_index(ids, gint64, i), &c, error_r) < 0)
            goto out;
        if (c != NULL)
            g_ptr_array_add(rows, c);
    }
    *rows_r = rows;
    rows = NULL;
    ret = 0;
    goto out;
dberr:
    cus_error(error_r, "%s: directory: %s", sqlite3_db_filename(d->db, "main"),
              sqlite3_errmsg(d->db));
out:
    sqlite3_finalize(st);
    if (rows != NULL)
        g_ptr_array_free(rows, TRUE);
    g_ptr_array_free(keys, TRUE);
    g_array_free(ids, TRUE);
    return ret;
}
