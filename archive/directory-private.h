/*
 * directory-private.h - what directory.c, dir-import.c and dir-learn.c share
 */
#ifndef CUSTOS_DIRECTORY_PRIVATE_H
#define CUSTOS_DIRECTORY_PRIVATE_H

#include <sqlite3.h>
#include "custos/directory.h"

/* "active", "leaving", "departed" (ASCII case ignored): 0, or -1. */
int dir_status_parse(const char *s, enum dir_status *st_r);

/* The domain part of an address (after the last '@'), "" if none. */
const char *dir_domain_of(const char *addr);

/* Sort a list of strings (char *) and drop repeats. */
void dir_strv_sort_uniq(GPtrArray *a);
/* Are two sorted lists the same? */
int dir_strv_equal(const GPtrArray *a, const GPtrArray *b);

/* The free function of a list's rows, for a GPtrArray. */
GDestroyNotify dir_row_free_func(enum dir_list l);

struct dir_employee *dir_employee_copy(const struct dir_employee *e);
struct dir_customer *dir_customer_copy(const struct dir_customer *c);
int dir_employee_equal(const struct dir_employee *a, const struct dir_employee *b);
int dir_customer_equal(const struct dir_customer *a, const struct dir_customer *b);
int dir_account_equal(const struct dir_account *a, const struct dir_account *b);

/* The SQLite handle under d. */
sqlite3 *dir_db(struct dir *d);
/* The webmail set of d, or NULL if d was opened without one. */
GHashTable *dir_webmail(struct dir *d);

/* Write rows (of list l) into the index, in the caller's transaction, as
 * of time now; customers: learned customers left with neither a domain nor
 * a contact are removed after. */
int dir_apply(struct idx *idx, enum dir_list l, GPtrArray *rows, gint64 now, char **error_r);

/* The fields of a "directory" chain event for rows (key, value, ...,
 * NULL; the strings are owned by the returned array's own copies). */
GPtrArray *dir_event_fields(enum dir_list l, const char *action, const char *file,
                            const char *sha256, GPtrArray *rows);
/* dir_change(): directory.h. */

#endif
