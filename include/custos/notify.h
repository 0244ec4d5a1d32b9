/*
 * notify.h - mail custos-milter sends beside a message: summaries to the
 * compliance address ([policy] compliance) and notices to senders of mail
 * routed to a successor ([route] notices)
 *
 * Each is handed to the local sendmail interface ([milter] sendmail,
 * "sendmail -i -f FROM -- TO") by a thread of its own, the outbox, so the
 * SMTP transaction never waits for it. A summary says what was flagged
 * and done (categories, rules, actions, sender, recipients, queue and
 * archive ids, the detectors' masked evidence) and nothing of the message
 * itself: no subject, no body, no attachment.
 */
#ifndef CUSTOS_NOTIFY_H
#define CUSTOS_NOTIFY_H

#include <glib.h>
#include "custos/cfg.h"
#include "custos/policy.h"

/* Start the outbox; stop it: what is queued is sent first. */
void ntf_init(void);
void ntf_deinit(void);

/* Called by the outbox once sendmail is done: ok 1, or 0 (logged). */
typedef void ntf_done_fn(int ok, void *data);

/* Queue text (taken) for "sendmail -i -f from -- to"; qid for the log;
 * done (may be NULL) is called with data after. */
void ntf_queue(const char *sendmail, const char *qid, const char *from, const char *to,
               char *text, ntf_done_fn *done, void *data);

/* The summary of verdict v about a message (the RFC 5322 text to the
 * compliance address), or NULL when no compliance address is set. */
char *ntf_summary(const struct cfg *cfg, const char *qid, const char *archive_id,
                  gint64 time, const char *client, const char *sender, char *const *rcpts,
                  const struct pol_verdict *v);

#endif
