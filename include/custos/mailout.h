/*
 * mailout.h - mail custos itself writes: notices from templates, handed to
 * the local sendmail interface
 *
 * Used by custos-handover (notices to a leaver's customers) and by
 * custos-milter (compliance summaries, notices to senders of mail that was
 * routed to a successor). A template is a UTF-8 file: a "Subject: ..."
 * line, a blank line, the body; {NAME} is replaced by the value given for
 * NAME (unknown names are left as written). Messages are plain text UTF-8
 * with "Auto-Submitted: auto-generated" (RFC 3834), so autoresponders
 * leave them alone, and go to "sendmail -i -f FROM -- TO".
 */
#ifndef CUSTOS_MAILOUT_H
#define CUSTOS_MAILOUT_H

#include <glib.h>

/* Does s contain a Han character (Chinese)? */
int mout_has_han(const char *s);

/* Subject and body of the template at path (at most 64 KB); -1 naming the
 * file and what is wrong. */
int mout_template_load(const char *path, char **subject_r, char **body_r, char **error_r);

/* tmpl with every {NAME} of kv (NAME, VALUE, ..., NULL) replaced. */
char *mout_fill(const char *tmpl, const char *const *kv);

/* The RFC 5322 text of a message: From and To with display names (may be
 * "" or NULL), the subject RFC 2047-encoded, Date now, Message-ID
 * <ID@DOMAIN-OF-FROM>, extra header lines (each ending in "\n"; NULL for
 * none), the body as UTF-8, 8bit. */
char *mout_message(const char *from_name, const char *from, const char *to_name,
                   const char *to, const char *subject, const char *msgid,
                   const char *extra, const char *body);

/* Hand msg to "prog -i -f FROM -- TO" and wait for it; -1 if it could not
 * be started or exited non-zero (error_r names the recipient). */
int mout_sendmail(const char *prog, const char *from, const char *to, const char *msg,
                  char **error_r);

#endif
