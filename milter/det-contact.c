/*
 * det-contact.c - customer-contact-private: a customer writing to an employee's private mailbox
 *
 * Inbound: a message from a customer (the header From, else the envelope
 * sender, is a customer's contact or in a customer's domain, and not
 * internal) whose To or Cc names an address some employee registered as
 * personal (directory): the relationship is already leaving the company.
 * One finding per such address (rule customer-contact-private/to or /cc),
 * about the message as a whole.
 */
#include <string.h>
#include "detect-private.h"
#include "custos/det-text.h"

static int contact_private(const struct det_envelope *env, const struct det_message *m,
                           GPtrArray *out, char **error_r)
{
    const struct det_party *s = NULL;
    GHashTable *seen;
    int ret = 0;

    if (env->from.cust != NULL && !env->from.internal)
        s = &env->from;
    else if (env->sender.cust != NULL && !env->sender.internal)
        s = &env->sender;
    if (s == NULL || m == NULL || m->msg == NULL || env->dir == NULL)
        return 0;
    seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < m->msg->addrs->len && ret == 0; i++) {
        const struct msg_addr *a = m->msg->addrs->pdata[i];
        struct dir_employee *e = NULL;
        char *low;
        int r;

        if ((a->role != MSG_TO && a->role != MSG_CC) || strchr(a->addr, '@') == NULL)
            continue;
        low = g_utf8_strdown(a->addr, -1);
        if (g_hash_table_contains(seen, low)) {
            g_free(low);
            continue;
        }
        if ((r = dir_employee_of_personal(env->dir, low, &e, error_r)) < 0) {
            ret = -1;
        } else if (r > 0) {
            char *ms = det_mask_addr(s->addr), *mp = det_mask_addr(low);
            g_ptr_array_add(out, det_finding_new(
                "customer-contact-private",
                a->role == MSG_TO ? "customer-contact-private/to" : "customer-contact-private/cc",
                "customer %s (%s) wrote to %s's registered personal address %s (%s)",
                s->cust->name, ms, e->address, mp, a->role == MSG_TO ? "To" : "Cc"));
            g_free(ms);
            g_free(mp);
            dir_employee_free(&e);
        }
        g_hash_table_add(seen, low);
    }
    g_hash_table_destroy(seen);
    return ret;
}

const struct detector det_contact_private = { "customer-contact-private", 1, contact_private };
