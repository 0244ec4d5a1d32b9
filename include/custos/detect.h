/*
 * detect.h - what custos-milter knows about a message, and the detectors
 *
 * At end of message the milter classifies the envelope from the directory
 * (det_classify): the envelope sender, the header From, the SASL login and
 * every envelope recipient (BCC included), each as a party: internal or
 * not, personal webmail, the employee it is (work or registered personal
 * address) and the customer it belongs to (from the customers in memory,
 * det-know.h: what the detectors match against too). An address met twice
 * (From and sender, usually) is looked up once. Then every detector gets the
 * classified envelope (with the directory, through which the archive's
 * index is open read-only: what customers sent us) and the message, parsed
 * once from the spool file as it streamed in and only when some detector
 * wants it: GMime's tree (parts read from the file on demand) and the
 * archive's message model (msg.h: decoded headers, body text, attachments
 * at any depth with their text). Each adds zero or more findings: a
 * category, the rule that fired, the evidence in words a compliance
 * reader can act on (customer data masked), and the envelope recipients
 * it is about. Detectors read; they write nothing and decide nothing
 * (policy does, from the findings). A detector error is the message's
 * error: it is logged and the message is archived without that
 * detector's findings.
 */
#ifndef CUSTOS_DETECT_H
#define CUSTOS_DETECT_H

#include <glib.h>
#include <gmime/gmime.h>
#include "custos/cfg.h"
#include "custos/directory.h"
#include "custos/msg.h"

/* One address of the envelope or the header, classified. */
struct det_party {
    char *addr;                 /* lower case; "" for the null sender */
    int internal;               /* the company's domain (any employee's) */
    int webmail;                /* a personal free-mail domain */
    struct dir_employee *emp;   /* the employee, or NULL */
    int emp_shared;             /* emp is another party's (same address) */
    const struct dir_customer *cust;    /* the customer (by contact, else domain), or
                                         * NULL; env->know's */
};

struct det_envelope {
    const char *queue_id, *client;      /* borrowed from the milter */
    const char *auth;                   /* SASL login, or NULL */
    struct det_party sender;            /* envelope sender */
    struct det_party from;              /* header From (first address); addr ""
                                         * when there is none */
    struct det_party login;             /* the SASL login as an address (a bare
                                         * login takes the sender's domain); addr
                                         * "" when there is none */
    struct det_party *rcpts;            /* every envelope recipient */
    size_t n_rcpts;
    int sales;                          /* sender, From or a recipient is an
                                         * employee of an archived department */
    struct dir *dir;                    /* borrowed (det_classify sets it): the
                                         * directory; dir_index(dir) is the
                                         * archive's index, read-only */
    const struct cfg *cfg;              /* borrowed, set by the caller: [detect] */
    struct det_know *know;              /* the customers in memory (a reference;
                                         * det_classify takes it) */
};

/* The message as detectors read it (both borrowed, both the same mail). */
struct det_message {
    GMimeMessage *mime;                 /* GMime's tree */
    struct msg *msg;                    /* the message model (msg.h) */
    struct det_cache *cache;            /* det_run's: what detectors share
                                         * (milter/detect-private.h) */
};

struct det_finding {
    char *category;             /* e.g. "departed-sender" */
    char *rule;                 /* what fired, e.g. "departed-sender/sasl" */
    char *evidence;             /* why, in words (customer data masked) */
    GPtrArray *rcpts;           /* char *: the envelope recipients the finding
                                 * is about (as in det_envelope, lower case),
                                 * never NULL; empty: the message as a whole
                                 * (e.g. its sender). Policy's strip removes
                                 * exactly these; allow-lists match them. */
};

struct detector {
    const char *name;           /* "departed-sender" */
    int wants_message;          /* 0: the envelope is enough (msg may be NULL) */
    /* Add findings (struct det_finding *) to out; -1 with error_r on
     * failure. m is NULL when wants_message is 0. */
    int (*run)(const struct det_envelope *env, const struct det_message *m, GPtrArray *out,
               char **error_r);
};

/* Every detector, NULL-terminated. */
const struct detector *const *det_all(void);
/* Does any detector want the parsed message? (Else it is not parsed.) */
int det_want_message(void);

/* Classify sender, From (from_header: the raw From value, or NULL), login
 * and rcpts with d (kept in env->dir); departments: archived departments, comma-separated
 * (NULL: none). env's borrowed fields are set by the caller. */
int det_classify(struct dir *d, const char *departments, const char *sender,
                 const char *from_header, const char *auth, char *const *rcpts,
                 struct det_envelope *env, char **error_r);
void det_envelope_clear(struct det_envelope *env);

/* Run every detector; findings_r: struct det_finding * (free with the
 * array). An error of one detector is reported in error_r after the
 * others have run (-1). */
int det_run(const struct det_envelope *env, const struct det_message *m,
            GPtrArray **findings_r, char **error_r);
struct det_finding *det_finding_new(const char *category, const char *rule,
                                    const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Name an offending envelope recipient of f (once; lower-cased). */
void det_finding_add_rcpt(struct det_finding *f, const char *addr);
void det_finding_free(gpointer f);

#endif
