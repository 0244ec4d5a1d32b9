/*
 * cmd-directory.c - custos-archive directory: who is who
 *
 *   directory import employees|customers|accounts FILE.csv
 *   directory learn [--min-messages N] [--apply] [--json]
 *   directory list employees|customers|accounts [--json]
 *   directory show ADDRESS|DOMAIN|CUSTOMER-NAME
 *
 * Each records an audit entry before it reads anything. import and
 * learn --apply take the writer's lock and change the directory in one
 * transaction with its chain event; the rest only read. Text output is
 * tab-separated with a header line; --json prints one object a line.
 * Exit: 0; 1 show found nothing; 64 usage; 65 bad rows (nothing
 * applied); 66 the file cannot be read; 74 the archive failed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "custos/archive.h"
#include "custos/cli.h"
#include "custos/directory.h"
#include "custos/log.h"
#include "custos/util.h"

CUS_COMMAND(directory, "directory", "directory import employees|customers|accounts FILE.csv | learn [--min-messages N] [--apply] [--json] | list employees|customers|accounts [--json] | show ADDRESS|DOMAIN|NAME")

#define DIR_USAGE "directory import employees|customers|accounts FILE.csv\n" \
    "       directory learn [--min-messages N] [--apply] [--json]\n" \
    "       directory list employees|customers|accounts [--json]\n" \
    "       directory show ADDRESS|DOMAIN|NAME"

#define LEARN_MIN_DEFAULT 3

static char *join(const GPtrArray *a)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < a->len; i++)
        g_string_append_printf(s, "%s%s", i ? ";" : "", (const char *)a->pdata[i]);
    return g_string_free(s, FALSE);
}

static void json_kv(GString *j, const char *k, const char *v)
{
    g_string_append_printf(j, "%s\"%s\":", j->len > 1 ? "," : "", k);
    cus_json_str(j, v);
}

static void json_list(GString *j, const char *k, const GPtrArray *a)
{
    g_string_append_printf(j, ",\"%s\":[", k);
    for (guint i = 0; i < a->len; i++) {
        if (i)
            g_string_append_c(j, ',');
        cus_json_str(j, a->pdata[i]);
    }
    g_string_append_c(j, ']');
}

static char *date_of(gint64 t)
{
    char buf[32];

    if (t == 0)
        return g_strdup("");
    cus_iso8601(t, buf, sizeof(buf));
    return g_strndup(buf, 10);
}

/* Open the archive (ARC_WRITE or ARC_AUDIT), record the audit entry, open
 * the directory on it (with the webmail list if webmail). */
static int open_all(const struct cfg *cfg, int flags, int webmail, int argc, char **argv,
                    struct arc **arc_r, struct dir **d_r, gint64 *audit_r)
{
    char *err = NULL;
    int ret;

    if (arc_open(cfg, flags, arc_r, &err) < 0)
        return cli_fail(&err, EX_IOERR_);
    if ((ret = cli_audit_begin(arc_index(*arc_r), argc, argv, audit_r)) != 0) {
        arc_close(arc_r);
        return ret;
    }
    if (dir_open_idx(arc_index(*arc_r), webmail ? cfg->dir_webmail : NULL, d_r, &err) < 0) {
        ret = strstr(err, "webmail") != NULL ? EX_CONFIG_ : EX_IOERR_;
        cli_audit_end(arc_index(*arc_r), *audit_r, -1, ret, "");
        arc_close(arc_r);
        return cli_fail(&err, ret);
    }
    return 0;
}

/* ---- import --------------------------------------------------------------------- */

static int dir_import(const struct cfg *cfg, int argc, char **argv)
{
    struct dir_import *imp = NULL;
    struct arc *arc = NULL;
    struct dir *d = NULL;
    enum dir_list l;
    gint64 audit = 0;
    char *err = NULL, *detail = NULL;
    const char *path;
    int ret;

    if (argc != 4 || dir_list_parse(argv[2], &l) < 0)
        cli_usage(DIR_USAGE);
    path = argv[3];
    if ((ret = open_all(cfg, ARC_WRITE | ARC_WAIT, l == DIR_CUSTOMERS, argc, argv, &arc, &d, &audit)))
        return ret;
    if (access(path, R_OK) < 0) {
        log_error("%s: %s", path, g_strerror(errno));
        ret = EX_NOINPUT_;
        detail = g_strdup_printf("%s: cannot read the file", dir_list_name(l));
        goto out;
    }
    if (dir_import_read(d, l, path, &imp, &err) < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        goto out;
    }
    if (imp->errors->len > 0) {
        for (guint i = 0; i < imp->errors->len; i++)
            log_error("%s", (const char *)imp->errors->pdata[i]);
        log_error("%s: %u problem%s: nothing of the file applied", path, imp->errors->len,
                  imp->errors->len == 1 ? "" : "s");
        detail = g_strdup_printf("%s: sha256 %s, %u problems, nothing applied",
                                 dir_list_name(l), *imp->sha256 ? imp->sha256 : "-",
                                 imp->errors->len);
        ret = EX_DATAERR_;
        goto out;
    }
    if (dir_import_apply(arc, imp, &err) < 0 || arc_flush(arc, &err) < 0) {
        arc_abort(arc);
        ret = cli_fail(&err, EX_IOERR_);
        detail = g_strdup_printf("%s: sha256 %s, not applied", dir_list_name(l),
                                 imp->sha256);
        goto out;
    }
    for (guint i = 0; i < imp->notes->len; i++)
        log_info("%s", (const char *)imp->notes->pdata[i]);
    detail = g_strdup_printf("%s: sha256 %s, %" G_GINT64_FORMAT " added, %" G_GINT64_FORMAT
                             " updated, %" G_GINT64_FORMAT " unchanged", dir_list_name(l),
                             imp->sha256, imp->added, imp->updated, imp->unchanged);
    printf("%s (%s, %s)\n", detail, path, imp->encoding);
    ret = 0;
out:
    cli_audit_end(arc_index(arc), audit, ret == 0 ? (gint64)imp->rows->len : 0, ret,
                  detail != NULL ? detail : "");
    g_free(detail);
    dir_import_free(&imp);
    dir_close(&d);
    arc_close(&arc);
    return ret;
}

/* ---- list ----------------------------------------------------------------------- */

static void print_employee(const struct dir_employee *e, int json)
{
    char *p = join(e->personal);

    if (json) {
        GString *j = g_string_new("{");
        json_kv(j, "address", e->address);
        json_kv(j, "name", e->name);
        json_kv(j, "department", e->department);
        json_kv(j, "status", dir_status_name(e->status));
        json_kv(j, "departed", e->departed);
        json_kv(j, "successor", e->successor);
        json_kv(j, "manager", e->manager);
        json_kv(j, "mobile", e->mobile);
        json_list(j, "personal_addresses", e->personal);
        g_string_append(j, "}\n");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e->address, e->name, e->department,
               dir_status_name(e->status), e->departed, e->successor, e->manager, p,
               e->mobile);
    }
    g_free(p);
}

static void print_customer(const struct dir_customer *c, int json)
{
    if (json) {
        GString *j = g_string_new("{");
        json_kv(j, "name", c->name);
        json_list(j, "domains", c->domains);
        json_list(j, "contacts", c->contacts);
        json_list(j, "phones", c->phones);
        g_string_append(j, ",");
        g_string_append(j, "\"owner\":");
        cus_json_str(j, c->owner);
        g_string_append(j, ",\"source\":");
        cus_json_str(j, c->source);
        g_string_append(j, "}\n");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        char *dom = join(c->domains), *con = join(c->contacts), *ph = join(c->phones);
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", c->name, dom, con, ph, c->owner, c->source);
        g_free(dom);
        g_free(con);
        g_free(ph);
    }
}

static void print_account(const struct dir_account *a, int json)
{
    if (json) {
        GString *j = g_string_new("{");
        json_kv(j, "account", a->account);
        json_kv(j, "bank", a->bank);
        json_kv(j, "holder", a->holder);
        g_string_append(j, "}\n");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        printf("%s\t%s\t%s\n", a->account, a->bank, a->holder);
    }
}

static int dir_cmd_list(const struct cfg *cfg, int argc, char **argv)
{
    static const char *const headers[] = {
        ("address\tname\tdepartment\tstatus\tdeparted\tsuccessor\tmanager\t"
         "personal_addresses\tmobile"),
        "name\tdomains\tcontacts\tphones\towner\tsource",
        "account\tbank\tholder",
    };
    struct arc *arc = NULL;
    struct dir *d = NULL;
    GPtrArray *rows = NULL;
    enum dir_list l;
    gint64 audit = 0;
    char *err = NULL;
    int json = 0, ret;

    if (argc == 4 && strcmp(argv[3], "--json") == 0)
        json = 1;
    else if (argc != 3)
        cli_usage(DIR_USAGE);
    if (dir_list_parse(argv[2], &l) < 0)
        cli_usage(DIR_USAGE);
    if ((ret = open_all(cfg, ARC_AUDIT, 0, argc, argv, &arc, &d, &audit)))
        return ret;
    if (dir_list(d, l, &rows, &err) < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        cli_audit_end(arc_index(arc), audit, -1, ret, dir_list_name(l));
        goto out;
    }
    if (!json)
        printf("%s\n", headers[l]);
    for (guint i = 0; i < rows->len; i++) {
        if (l == DIR_EMPLOYEES)
            print_employee(rows->pdata[i], json);
        else if (l == DIR_CUSTOMERS)
            print_customer(rows->pdata[i], json);
        else
            print_account(rows->pdata[i], json);
    }
    if (fflush(stdout) != 0) {
        log_error("directory list: write to standard output failed: %s", g_strerror(errno));
        ret = EX_IOERR_;
    }
    cli_audit_end(arc_index(arc), audit, rows->len, ret, dir_list_name(l));
out:
    if (rows != NULL)
        g_ptr_array_free(rows, TRUE);
    dir_close(&d);
    arc_close(&arc);
    return ret;
}

/* ---- show ----------------------------------------------------------------------- */

static void show_employee(struct dir *d, const struct dir_employee *e)
{
    GPtrArray *all = NULL, *custs = NULL;
    char *err = NULL;

    printf("employee: %s\nname: %s\ndepartment: %s\nstatus: %s\n", e->address, e->name,
           e->department, dir_status_name(e->status));
    if (*e->departed)
        printf("departed: %s\n", e->departed);
    if (*e->successor)
        printf("successor: %s\n", e->successor);
    if (*e->manager)
        printf("manager: %s\n", e->manager);
    if (*e->mobile)
        printf("mobile: %s\n", e->mobile);
    for (guint i = 0; i < e->personal->len; i++)
        printf("personal_address: %s\n", (const char *)e->personal->pdata[i]);
    if (e->status == DIR_DEPARTED) {
        char *to = NULL;
        int r = dir_route(d, e->address, &to, &err);
        if (r > 0)
            printf("mail_goes_to: %s\n", to);
        else if (r == 0)
            printf("mail_goes_to: (no one: the successors are all departed)\n");
        g_free(to);
    }
    if (err == NULL && dir_list(d, DIR_EMPLOYEES, &all, &err) == 0) {
        for (guint i = 0; i < all->len; i++) {
            const struct dir_employee *o = all->pdata[i];
            if (strcmp(o->successor, e->address) == 0)
                printf("successor_of: %s\n", o->address);
        }
        for (guint i = 0; i < all->len; i++) {
            const struct dir_employee *o = all->pdata[i];
            if (strcmp(o->manager, e->address) == 0)
                printf("manages: %s\n", o->address);
        }
    }
    if (err == NULL && dir_list(d, DIR_CUSTOMERS, &custs, &err) == 0)
        for (guint i = 0; i < custs->len; i++) {
            const struct dir_customer *c = custs->pdata[i];
            if (strcmp(c->owner, e->address) == 0)
                printf("owns_customer: %s\n", c->name);
        }
    if (err != NULL)
        cli_fail(&err, EX_IOERR_);
    if (all != NULL)
        g_ptr_array_free(all, TRUE);
    if (custs != NULL)
        g_ptr_array_free(custs, TRUE);
}

static void show_customer(struct dir *d, const struct dir_customer *c)
{
    struct dir_employee *o = NULL;

    printf("customer: %s\nsource: %s\n", c->name, c->source);
    if (*c->owner) {
        if (dir_employee_get(d, c->owner, &o, NULL) > 0)
            printf("owner: %s (%s, %s)\n", c->owner, o->name, dir_status_name(o->status));
        else
            printf("owner: %s\n", c->owner);
        dir_employee_free(&o);
    }
    for (guint i = 0; i < c->domains->len; i++)
        printf("domain: %s\n", (const char *)c->domains->pdata[i]);
    for (guint i = 0; i < c->contacts->len; i++)
        printf("contact: %s\n", (const char *)c->contacts->pdata[i]);
    for (guint i = 0; i < c->phones->len; i++)
        printf("phone: %s\n", (const char *)c->phones->pdata[i]);
}

/* What the directory knows of what (an address, a domain or a customer's
 * name): 1 something, 0 nothing, -1. */
static int show(struct dir *d, const char *what, char **error_r)
{
    struct dir_employee *e = NULL;
    struct dir_customer *c = NULL;
    int at = strchr(what, '@') != NULL, found = 0, r;
    char *low = g_utf8_strdown(*what == '@' ? what + 1 : what, -1);

    if (at) {
        if ((r = dir_employee_get(d, low, &e, error_r)) < 0)
            goto fail;
        if (r > 0) {
            printf("class: employee\n");
            show_employee(d, e);
            found = 1;
        } else if ((r = dir_employee_of_personal(d, low, &e, error_r)) < 0) {
            goto fail;
        } else if (r > 0) {
            printf("class: personal address of an employee\naddress: %s\n", low);
            show_employee(d, e);
            found = 1;
        }
        if ((r = dir_customer_by_addr(d, low, &c, error_r)) < 0)
            goto fail;
        if (r > 0) {
            int contact = 0;
            for (guint i = 0; i < c->contacts->len; i++)
                contact |= strcmp(c->contacts->pdata[i], low) == 0;
            printf("%sclass: %s\n", found ? "\n" : "",
                   contact ? "customer contact" : "address at a customer's domain");
            if (!contact)
                printf("address: %s\n", low);
            show_customer(d, c);
            found = 1;
        }
    } else {
        if ((r = dir_customer_by_domain(d, low, &c, error_r)) < 0)
            goto fail;
        if (r == 0 && (r = dir_customer_by_name(d, what, &c, error_r)) < 0)
            goto fail;
        if (r > 0) {
            printf("class: %s\n", strcmp(c->name, what) == 0 ||
                   g_ascii_strcasecmp(c->name, what) == 0 ? "customer" : "customer domain");
            show_customer(d, c);
            found = 1;
        }
    }
    if (!found) {
        const char *dom = at ? strrchr(low, '@') + 1 : low;
        if ((r = dir_is_internal(d, dom, error_r)) < 0)
            goto fail;
        if (r > 0) {
            printf("class: internal (the company's domain), not in the directory\n");
            found = 1;
        } else if (dir_is_webmail(d, dom)) {
            printf("class: personal webmail, not in the directory\n");
            found = 1;
        }
    }
    dir_employee_free(&e);
    dir_customer_free(&c);
    g_free(low);
    return found;
fail:
    dir_employee_free(&e);
    dir_customer_free(&c);
    g_free(low);
    return -1;
}

static int dir_cmd_show(const struct cfg *cfg, int argc, char **argv)
{
    struct arc *arc = NULL;
    struct dir *d = NULL;
    gint64 audit = 0;
    char *err = NULL;
    int ret, found;

    if (argc != 3 || *argv[2] == '\0')
        cli_usage(DIR_USAGE);
    if ((ret = open_all(cfg, ARC_AUDIT, 1, argc, argv, &arc, &d, &audit)))
        return ret;
    found = show(d, argv[2], &err);
    if (found < 0) {
        ret = cli_fail(&err, EX_IOERR_);
    } else if (found == 0) {
        log_error("directory show: %s is not in the directory (no employee, customer, "
                  "contact or domain)", argv[2]);
        ret = EX_OK_SKIPPED;
    }
    cli_audit_end(arc_index(arc), audit, found > 0 ? 1 : 0, ret, "");
    dir_close(&d);
    arc_close(&arc);
    return ret;
}

/* ---- learn ---------------------------------------------------------------------- */

static void print_learned(const struct dir_learned *l, int json)
{
    char *first = date_of(l->first), *last = date_of(l->last);

    if (json) {
        GString *j = g_string_new("{");
        json_kv(j, "domain", l->domain);
        g_string_append_printf(j, ",\"out\":%" G_GINT64_FORMAT ",\"in\":%" G_GINT64_FORMAT,
                               l->out, l->in);
        json_kv(j, "first", first);
        json_kv(j, "last", last);
        json_kv(j, "owner", l->owner);
        g_string_append_printf(j, ",\"owner_messages\":%" G_GINT64_FORMAT, l->owner_messages);
        json_kv(j, "customer", l->customer != NULL ? l->customer : "");
        json_kv(j, "customer_source", l->customer_source != NULL ? l->customer_source : "");
        g_string_append(j, "}\n");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        printf("%s\t%" G_GINT64_FORMAT "\t%" G_GINT64_FORMAT "\t%s\t%s\t%s\t%s\n", l->domain,
               l->out, l->in, first, last, l->owner, l->customer != NULL ? l->customer : "");
    }
    g_free(first);
    g_free(last);
}

static int dir_cmd_learn(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "min-messages", required_argument, NULL, 'm' }, { "apply", no_argument, NULL, 'a' },
        { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
    };
    struct dir_learn_result res = { 0, 0, 0, 0 };
    gint64 min = LEARN_MIN_DEFAULT, audit = 0;
    struct arc *arc = NULL;
    struct dir *d = NULL;
    GPtrArray *learned = NULL;
    GString *detail = g_string_new(NULL);
    char *err = NULL;
    int apply = 0, json = 0, opt, ret;

    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            min = cli_count("--min-messages", optarg);
            if (min < 1) {
                log_error("--min-messages: expected a number >= 1, not \"%s\"", optarg);
                g_string_free(detail, TRUE);
                return EX_USAGE_;
            }
            break;
        case 'a': apply = 1; break;
        case 'j': json = 1; break;
        default: cli_usage(DIR_USAGE);
        }
    }
    if (optind != argc - 1)
        cli_usage(DIR_USAGE);
    if ((ret = open_all(cfg, apply ? ARC_WRITE | ARC_WAIT : ARC_AUDIT, 1, argc, argv, &arc, &d, &audit))) {
        g_string_free(detail, TRUE);
        return ret;
    }
    g_string_printf(detail, "departments %s, min-messages %" G_GINT64_FORMAT,
                    cfg->arc_departments != NULL ? cfg->arc_departments : "", min);
    if (dir_learn(d, cfg->arc_departments, min, &learned, &err) < 0) {
        ret = cli_fail(&err, strstr(err, "departments") ? EX_CONFIG_ : EX_IOERR_);
        goto out;
    }
    if (!json)
        printf("domain\tout\tin\tfirst\tlast\towner\tcustomer\n");
    for (guint i = 0; i < learned->len; i++)
        print_learned(learned->pdata[i], json);
    g_string_append_printf(detail, ": %u domains", learned->len);
    if (apply) {
        if (dir_learn_apply(arc, d, learned, &res, &err) < 0 || arc_flush(arc, &err) < 0) {
            arc_abort(arc);
            ret = cli_fail(&err, EX_IOERR_);
            g_string_append(detail, "; not applied");
            goto out;
        }
        g_string_append_printf(detail, "; applied: %" G_GINT64_FORMAT " added, %"
                               G_GINT64_FORMAT " updated, %" G_GINT64_FORMAT " unchanged, %"
                               G_GINT64_FORMAT " skipped (imported customers have them)",
                               res.added, res.updated, res.unchanged, res.skipped);
        fprintf(stderr, "customers %s\n", strstr(detail->str, "applied:"));
    }
    if (fflush(stdout) != 0) {
        log_error("directory learn: write to standard output failed: %s", g_strerror(errno));
        ret = EX_IOERR_;
    }
out:
    cli_audit_end(arc_index(arc), audit, learned != NULL ? (gint64)learned->len : -1, ret,
                  detail->str);
    if (learned != NULL)
        g_ptr_array_free(learned, TRUE);
    g_string_free(detail, TRUE);
    dir_close(&d);
    arc_close(&arc);
    return ret;
}

int cmd_directory(const struct cfg *cfg, int argc, char **argv)
{
    if (argc < 2)
        cli_usage(DIR_USAGE);
    if (strcmp(argv[1], "import") == 0)
        return dir_import(cfg, argc, argv);
    if (strcmp(argv[1], "list") == 0)
        return dir_cmd_list(cfg, argc, argv);
    if (strcmp(argv[1], "show") == 0)
        return dir_cmd_show(cfg, argc, argv);
    if (strcmp(argv[1], "learn") == 0)
        return dir_cmd_learn(cfg, argc, argv);
    cli_usage(DIR_USAGE);
}
