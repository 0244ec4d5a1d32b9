/*
 * detect-private.h - what the detectors of milter/ share about one message
 *
 * det_run() gives every detector the same struct det_cache (through
 * det_message.cache): what one detector worked out about the message
 * that another can use without working it out again.
 */
#ifndef CUSTOS_DETECT_PRIVATE_H
#define CUSTOS_DETECT_PRIVATE_H

#include "custos/detect.h"
#include "custos/det-know.h"

/* Customer mail this message carries or refers to. */
struct det_thread {
    const char *how;                    /* "quoted-header", "attached-message",
                                         * "thread" */
    const struct dir_customer *cust;    /* borrowed from the snapshot */
    char *from;                         /* the customer's address */
    GHashTable *also;                   /* addresses it already went to (set) */
    char *excerpt;                      /* quoted-header: the line, address
                                         * masked; else NULL */
};

struct det_cache {
    int leak_done;                      /* what det-leak.c works out, once */
    int leak_failed;
    char *leak_error;
    struct det_know *know;              /* the customers (a reference) */
    GHashTable *items;                  /* det_know_scan() of subject, body and
                                         * every attachment's text */
    GPtrArray *threads;                 /* struct det_thread * */
    char *norm[3];                      /* det_cache_text(), made when first asked */
    unsigned norm_borrowed;             /* bit i: norm[i] is the message's own text */
};

/* [detect] name_min_length, or its default without a configuration (the
 * tests' detectors): the snapshot of customers is made for it. */
#define DET_NAME_MIN_DEFAULT 4
int det_name_min(const struct det_envelope *env);

struct det_cache *det_cache_new(void);
void det_cache_free(struct det_cache **c);

/* The message's text normalised (det_text_norm), once per message for
 * every detector: its subject, body or attachments' text. Owned by the
 * cache. */
enum det_text_part { DET_TEXT_SUBJECT, DET_TEXT_BODY, DET_TEXT_ATTS };
const char *det_cache_text(const struct det_message *m, enum det_text_part part);

/* det-leak.c: forward-external, auto-forward, customer-data,
 * personal-webmail, bcc-external */
extern const struct detector det_forward_external, det_auto_forward, det_customer_data,
    det_personal_webmail, det_bcc_external;

/* det-payment.c, det-self.c, det-evasion.c, det-contact.c */
extern const struct detector det_payment_details, det_self_forward, det_evasion,
    det_contact_private;

/* Is the message from the company: the envelope sender or the header From
 * an internal address? */
int det_from_internal(const struct det_envelope *env);
/* The employee sending, by a work address (envelope sender, else header
 * From), or NULL. Borrowed from env. */
const struct dir_employee *det_sending_employee(const struct det_envelope *env);

#endif
