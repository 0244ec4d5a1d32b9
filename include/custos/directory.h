/*
 * directory.h - who is who: employees, customers, the company's accounts
 *
 * The directory lives in index.db (tables in index.h) and is filled from
 * CSV files (dir_import_read + dir_import_apply) and from the archived
 * correspondence of sales staff (dir_learn + dir_learn_apply). Every
 * change is also a "directory" chain event holding the rows as applied
 * (normalised, complete), so that replaying the chain (reindex, roll
 * forward) rebuilds the directory: dir_apply_event.
 *
 * Values as stored: addresses and domains lower case (an address has
 * exactly one '@'), dates YYYY-MM-DD, phones digits with an optional
 * leading '+', account numbers digits and upper-case letters. Names
 * keep their case; runs of white space in them become one space.
 *
 * Classification, for the milter (one struct dir per thread: it holds
 * prepared statements on one SQLite connection):
 *  - an employee by work address, or by a registered personal address;
 *  - a customer by contact address, else by the address's domain (exact:
 *    a customer lists every domain it uses, subdomains included);
 *  - internal: the domain (or a parent domain) of some employee's work
 *    address, whatever the employee's status;
 *  - personal webmail: the domain or a parent of it is in the webmail list
 *    ([directory] webmail_domains: one domain a line, '#' comments).
 */
#ifndef CUSTOS_DIRECTORY_H
#define CUSTOS_DIRECTORY_H

#include <glib.h>
#include "custos/cfg.h"
#include "custos/chain.h"
#include "custos/index.h"

enum dir_list { DIR_EMPLOYEES, DIR_CUSTOMERS, DIR_ACCOUNTS };
enum dir_status { DIR_ACTIVE, DIR_LEAVING, DIR_DEPARTED };

struct dir_employee {
    char *address;              /* work address */
    char *name, *department;
    enum dir_status status;
    char *departed;             /* YYYY-MM-DD, or "" */
    char *successor, *manager;  /* employee addresses, or "" */
    char *mobile;               /* phone, or "" */
    GPtrArray *personal;        /* char *: registered private addresses */
};

struct dir_customer {
    gint64 id;                  /* 0 until stored */
    char *name;
    char *owner;                /* employee address, or "" */
    char *source;               /* "import" or "learn" */
    GPtrArray *domains, *contacts, *phones;     /* char * */
};

struct dir_account {
    char *account, *bank, *holder;
};

/* "employees", "customers", "accounts"; parse: 0, or -1 if none of them. */
const char *dir_list_name(enum dir_list l);
int dir_list_parse(const char *s, enum dir_list *l_r);
const char *dir_status_name(enum dir_status s);

struct dir_employee *dir_employee_new(void);
struct dir_customer *dir_customer_new(void);
struct dir_account *dir_account_new(void);
void dir_employee_free(struct dir_employee **e);
void dir_customer_free(struct dir_customer **c);
void dir_account_free(struct dir_account **a);

/* Normalisers: 0 and *out_r (g_free), or -1 and a message saying what is
 * wrong with the value (without naming the file). */
int dir_norm_addr(const char *in, char **out_r, char **error_r);
int dir_norm_domain(const char *in, char **out_r, char **error_r);   /* '@' before it ok */
int dir_norm_phone(const char *in, char **out_r, char **error_r);
int dir_norm_account(const char *in, char **out_r, char **error_r);
int dir_norm_date(const char *in, char **out_r, char **error_r);
/* Trimmed (Unicode white space too), inner runs of white space one
 * space; -1 for control characters. */
int dir_norm_text(const char *in, char **out_r, char **error_r);

/* The webmail list: a set of lower-case domains (keys owned by the
 * table). A missing or unreadable file, or a line that is not a domain,
 * is an error naming the file and the line. */
int dir_webmail_load(const char *path, GHashTable **set_r, char **error_r);

/* ---- lookups -------------------------------------------------------------- */

struct dir;

/* On index.db of cfg->arc_dir, opened read-only, with the webmail list of
 * cfg->dir_webmail (must exist). For the milter and handover. */
int dir_open(const struct cfg *cfg, struct dir **d_r, char **error_r);
/* On an index already open (borrowed: close d first). webmail: the list's
 * path, or NULL for none (then nothing is webmail). */
int dir_open_idx(struct idx *idx, const char *webmail, struct dir **d_r, char **error_r);
void dir_close(struct dir **d);
struct idx *dir_index(struct dir *d);
/* One read transaction for many lookups (and the archive's index through
 * the same handle): one snapshot of both, and the locks taken once, not
 * for every statement. begin: 0, or -1 (the lookups then run on their
 * own, as without it); end: always leaves the handle out of it. */
int dir_read_begin(struct dir *d);
void dir_read_end(struct dir *d);

/* Lookups return 1 found (*r newly allocated), 0 not, -1 error. */
/* The employee whose work address addr is. */
int dir_employee_get(struct dir *d, const char *addr, struct dir_employee **e_r,
                     char **error_r);
/* The employee who registered addr as a personal address. */
int dir_employee_of_personal(struct dir *d, const char *addr, struct dir_employee **e_r,
                             char **error_r);
/* Where mail for employee addr should go: addr itself if active or
 * leaving, else its successor's, followed until someone not departed.
 * 1 (*to_r), 0 not an employee or no one to go to (no successor, or the
 * chain loops), -1. */
int dir_route(struct dir *d, const char *addr, char **to_r, char **error_r);

/* The customer with contact addr, else with addr's domain. */
int dir_customer_by_addr(struct dir *d, const char *addr, struct dir_customer **c_r,
                         char **error_r);
int dir_customer_by_domain(struct dir *d, const char *domain, struct dir_customer **c_r,
                           char **error_r);
/* By exact name (ASCII case ignored). */
int dir_customer_by_name(struct dir *d, const char *name, struct dir_customer **c_r,
                         char **error_r);

/* Is domain (or an address's domain) personal webmail? internal? 1, 0
 * (internal: -1 on error). */
int dir_is_webmail(struct dir *d, const char *addr_or_domain);
int dir_is_internal(struct dir *d, const char *addr_or_domain, char **error_r);

/* Every row of a list, in key order: struct dir_employee / dir_customer /
 * dir_account *, freed with the array. */
int dir_list(struct dir *d, enum dir_list l, GPtrArray **rows_r, char **error_r);
/* What the customer lists are now, as a short string that changes with
 * every import or learn that changes them (counts and the last update):
 * for a copy kept in memory to know it is stale. g_free. */
int dir_customers_stamp(struct dir *d, char **stamp_r, char **error_r);

/* ---- import ----------------------------------------------------------------- */

struct arc;

struct dir_import {
    enum dir_list list;
    char *file;
    char sha256[CUS_SHA256_HEX];    /* of the file's bytes */
    const char *encoding;           /* csv_encoding() */
    GPtrArray *rows;                /* the records as they will be stored */
    GPtrArray *errors;              /* char *: "FILE:LINE: reason", every one */
    gint64 added, updated, unchanged;
    GPtrArray *notes;               /* char *: what else changes (learned
                                     * customers whose domains move) */
};

/* Read and check path as list against the directory of d. 0: read (and
 * imp->errors says whether it may be applied); -1: the directory could
 * not be read (error_r). File-level problems (encoding, header) are
 * errors in imp->errors too. */
int dir_import_read(struct dir *d, enum dir_list list, const char *path,
                    struct dir_import **imp_r, char **error_r);
/* Apply an import without errors: one "directory" chain event and its
 * rows in the archive's open batch (the caller flushes, or aborts on
 * error). arc must be the writer d's index belongs to. */
int dir_import_apply(struct arc *arc, struct dir_import *imp, char **error_r);
void dir_import_free(struct dir_import **imp);

/* ---- learn ------------------------------------------------------------------ */

struct dir_learned {
    char *domain;
    gint64 out, in;             /* messages from sales staff to it / back */
    gint64 first, last;         /* dates of the first and last of them, 0 unknown */
    char *owner;                /* the sales employee with most of them */
    gint64 owner_messages;
    char *customer;             /* the customer that has the domain, or NULL */
    char *customer_source;      /* its source */
};

/* Customers derived from correspondence: external domains (not internal,
 * not webmail) that exchanged at least min_messages messages each way
 * with employees of departments (comma-separated, ASCII case ignored):
 * out = messages from one of them with a recipient (To, Cc or envelope)
 * in the domain, in = messages from the domain with one of them as a
 * recipient. Sorted by out + in, most first, then by domain. */
int dir_learn(struct dir *d, const char *departments, gint64 min_messages,
              GPtrArray **learned_r, char **error_r);
/* Store them as customers (source "learn", named after the domain, with
 * the owner): a domain an imported customer has is skipped (theirs); a
 * learned customer that has it gets the owner updated. One chain event;
 * the caller flushes. */
struct dir_learn_result {
    gint64 added, updated, unchanged, skipped;
};
int dir_learn_apply(struct arc *arc, struct dir *d, GPtrArray *learned,
                    struct dir_learn_result *res, char **error_r);
void dir_learned_free(struct dir_learned *l);

/* ---- the chain -------------------------------------------------------------- */

/* Write rows (struct dir_employee / dir_customer / dir_account *, complete:
 * each replaces its stored row) with their "directory" chain event (action
 * e.g. "import", "learn", "handover"; file and sha256 NULL unless an
 * import's), in arc's open batch: the caller flushes, or aborts on error. */
int dir_change(struct arc *arc, enum dir_list l, const char *action, const char *file,
               const char *sha256, GPtrArray *rows, char **error_r);

/* Apply a "directory" chain event to idx (reindex, roll forward): its rows
 * as they were applied, in the caller's transaction. */
int dir_apply_event(struct idx *idx, const struct chain_event *ev, char **error_r);

#endif
