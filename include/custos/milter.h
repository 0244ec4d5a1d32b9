/*
 * milter.h - custos-milter's core: the libmilter callbacks and their state
 *
 * Every message is journalled into the spool before Postfix may accept it:
 * the header and body stream into a spool writer as they arrive (memory
 * stays at the writer's buffer whatever the size), and at end of message
 * the envelope (sender, every recipient, client, queue id, SASL login) is
 * committed with fsync. Only then is the message let through, with
 * "X-Custos-Archive: SPOOL-ID" added; if the journal cannot be written
 * the answer is 451 4.3.0 and Postfix keeps the mail. Ingest (custos-archive
 * ingest --follow, a service of its own) takes the entries from there.
 *
 * Before the commit the message is classified and the detectors run
 * (detect.h); policy (policy.h) turns the findings into one verdict and
 * routing (route.h) sends a departed employee's mail to the successor.
 * The findings, each with the action taken, and the routes go into the
 * envelope; then the verdict is carried out: tags, stripped and routed
 * recipients, the subject, hold, or 550 5.7.1. Summaries and notices
 * leave by the outbox (notify.h), never holding up the answer.
 *
 * The raw message is rebuilt from the milter events as it went over SMTP:
 * "Name:" + value (with its leading space: SMFIP_HDR_LEADSPC) and CRLF per
 * header, LF inside a folded value made CRLF, an empty line, the body as
 * Postfix sends it (CRLF). Postfix does not pass its own Received: header
 * to milters: the archived copy is the message as the client sent it.
 *
 * HELO is not asked for (SMFIP_NOHELO): nothing uses it. Over a unix
 * socket the MTA is asked not to wait for an answer but at DATA and end
 * of message (SMFIP_NR_CONN, _MAIL, _RCPT, _HDR, _EOH, _BODY): Postfix then
 * sends connect, MAIL and RCPT together with DATA, and the header and body
 * with end of message, three round trips a message where every step
 * answered took eight or more. A failure in a step with no answer is kept
 * and answered (451 4.3.0; 421 4.3.2 while stopping) at DATA or at end of
 * message. Over TCP every step is answered (else the MTA's Nagle stalls
 * on our delayed ACK), and the socket has TCP_NODELAY.
 *
 * State: one struct per connection (smfi_setpriv) holding the current
 * message, freed on every path: a new MAIL FROM, abort, end of message,
 * close. The configuration is shared, reference counted, and swapped whole
 * by mlt_reload(). Every libmilter call goes through struct mlt_smfi, so
 * tests can drive the mlfi_* callbacks with a fake context.
 */
#ifndef CUSTOS_MILTER_H
#define CUSTOS_MILTER_H

#include <libmilter/mfapi.h>
#include "custos/cfg.h"

#define MLT_HEADER "X-Custos-Archive"

/* What custos-milter may do to a message: tag it, change its subject,
 * strip and route recipients, hold it (smfi_register, negotiate). */
#define MLT_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT | SMFIF_DELRCPT | \
                     SMFIF_QUARANTINE)

/* The libmilter calls the callbacks make (milter/smfi.c has the real ones). */
struct mlt_smfi {
    char *(*getsymval)(SMFICTX *ctx, char *name);
    int (*setpriv)(SMFICTX *ctx, void *priv);
    void *(*getpriv)(SMFICTX *ctx);
    int (*setreply)(SMFICTX *ctx, char *rcode, char *xcode, char *message);
    int (*insheader)(SMFICTX *ctx, int idx, char *name, char *value);
    int (*chgheader)(SMFICTX *ctx, char *name, int idx, char *value);
    int (*addrcpt)(SMFICTX *ctx, char *rcpt);
    int (*delrcpt)(SMFICTX *ctx, char *rcpt);
    int (*quarantine)(SMFICTX *ctx, char *reason);
    /* a reply of one line, or of two when line2 is not NULL */
    int (*setmlreply)(SMFICTX *ctx, const char *rcode, const char *xcode, const char *line1,
                      const char *line2);
};

/* The real ones (milter/smfi.c: only custos-milter links libmilter). */
const struct mlt_smfi *mlt_smfi_libmilter(void);

/* Set up the core with cfg (taken over) and the libmilter calls to use.
 * The spool is created if missing and temp files of dead writers swept;
 * a spool that cannot be written is logged, not fatal: each message then
 * gets 451 until it can. */
int mlt_init(struct cfg *cfg, const struct mlt_smfi *smfi, char **error_r);
/* Swap in a new configuration (taken over); messages under way finish
 * with the one they started with. */
void mlt_reload(struct cfg *cfg);
/* Free the configuration (after the last connection closed). */
void mlt_deinit(void);
/* Connections open now, and messages under way in them. */
int mlt_active(void);
int mlt_in_flight(void);
/* Stopping: messages under way finish, a new MAIL FROM gets 421 4.3.2. */
void mlt_stop(void);

/* The filter description for smfi_register(): every callback below, and
 * the actions custos uses (MLT_ACTIONS). */
struct smfiDesc *mlt_desc(void);

sfsistat mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                        unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                        unsigned long *pf2, unsigned long *pf3);
sfsistat mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr);
sfsistat mlfi_envfrom(SMFICTX *ctx, char **argv);
sfsistat mlfi_envrcpt(SMFICTX *ctx, char **argv);
sfsistat mlfi_data(SMFICTX *ctx);
sfsistat mlfi_header(SMFICTX *ctx, char *name, char *value);
sfsistat mlfi_eoh(SMFICTX *ctx);
sfsistat mlfi_body(SMFICTX *ctx, unsigned char *buf, size_t len);
sfsistat mlfi_eom(SMFICTX *ctx);
sfsistat mlfi_abort(SMFICTX *ctx);
sfsistat mlfi_close(SMFICTX *ctx);

#endif
