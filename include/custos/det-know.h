/*
 * det-know.h - the customers as the detectors look for them in text
 *
 * A snapshot of the directory's customers kept in memory for every
 * message: contacts and domains by address, phones by their last ten
 * digits (so +86 10 8888 0000 and 010-8888-0000 are one number), and
 * customer names (imported ones: a learned customer is named after its
 * domain) by their first two characters. One snapshot per process,
 * shared by every thread, rebuilt when the directory's customer lists
 * changed (dir_customers_stamp(), looked at every DET_KNOW_CHECK seconds
 * at most). det_know_scan() finds known customer addresses, phone numbers
 * and names in decoded text.
 */
#ifndef CUSTOS_DET_KNOW_H
#define CUSTOS_DET_KNOW_H

#include <glib.h>
#include "custos/directory.h"

#define DET_KNOW_CHECK 5        /* seconds a snapshot is used unchecked */

struct det_know;

/* The current snapshot for d's directory (a reference: det_know_unref).
 * name_min: names shorter than this many characters are not looked for. */
int det_know_get(struct dir *d, int name_min, struct det_know **k_r, char **error_r);
void det_know_unref(struct det_know **k);
/* A snapshot of custs (struct dir_customer *, taken over), not shared:
 * for tests and fuzzing. */
struct det_know *det_know_new(GPtrArray *custs, int name_min);
/* Forget the snapshot (tests: the directory changed within a second). */
void det_know_reset(void);

/* The customer an address belongs to (contact, else domain; lower case),
 * or NULL. Borrowed from k. */
const struct dir_customer *det_know_addr(const struct det_know *k, const char *addr);

/* Kinds of customer data found in text. */
enum det_item_kind { DET_ITEM_ADDR, DET_ITEM_PHONE, DET_ITEM_NAME };

struct det_item {
    enum det_item_kind kind;
    char *value;                        /* address, phone as written, name */
    const struct dir_customer *cust;    /* borrowed from the snapshot */
};

/* Add each known customer address, phone and name in text (len bytes of
 * valid UTF-8 and a NUL after them, normalised: det_text_norm) to items: key (kind and canonical value) ->
 * struct det_item *, so a value found twice counts once. items: made by
 * det_items_new(). */
GHashTable *det_items_new(void);
void det_know_scan(const struct det_know *k, const char *text, size_t len, GHashTable *items);

/* Canonical key of a phone number (digits; the last ten of them), or NULL
 * if it has fewer than 7 or more than 15 digits. g_free. */
char *det_phone_key(const char *phone);

#endif
