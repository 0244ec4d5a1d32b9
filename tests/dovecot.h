/*
 * dovecot.h - a private Dovecot on 127.0.0.1 for integration tests
 *
 * Each instance has its own dovecot.conf, base_dir, state_dir and log
 * under DIR, IMAP only, on a free loopback port, plain logins from a
 * passwd-file of its own (users with their own uid/gid: what a mail store's
 * owner is), Maildir++ with the listescape plugin and '/' as separator
 * (so "Handover/li.na" is two levels, not three), and an auth socket for
 * an MTA's SASL (the same logins). It runs in the
 * foreground under setsid and is stopped by its pid (its process group is
 * checked gone). IMAP is spoken by curl (imap://). Needs root (Dovecot
 * drops to its users) and the Debian dovecot-imapd package. Nothing is
 * ever sent anywhere but 127.0.0.1.
 */
#ifndef CUSTOS_TESTS_DOVECOT_H
#define CUSTOS_TESTS_DOVECOT_H

#include <glib.h>

struct dvc {
    char *dir;          /* DIR: dovecot.conf, passwd, run/, state/, dovecot.log */
    char *log;
    int port;           /* imap on 127.0.0.1:port */
    char *auth;         /* DIR/run/auth-smtp: the auth socket an MTA's SASL uses
                         * (Postfix: smtpd_sasl_type = dovecot), mode 0666 */
    GPid pid;           /* the master, leader of its process group */
};

/* One login: address, password, and the uid/gid Dovecot runs as for it. */
struct dvc_user {
    const char *user, *pass;
    unsigned uid, gid;
};

/* 1 when root with dovecot and curl installed; else 0 and why_r says
 * what is missing (g_free). */
int dvc_usable(char **why_r);

/* Set up DIR (created) and start Dovecot with mail_location
 * maildir:MAIL (a template with %d %n, e.g. ROOT/%d/%n/Maildir) for
 * users (n of them); 0 once it answers, else -1. */
int dvc_start(struct dvc *d, const char *dir, const char *mail, const struct dvc_user *users,
              size_t n, char **error_r);
/* TERM the master, wait for it and its process group; free d's fields. */
void dvc_stop(struct dvc *d);

/* One IMAP command as user (curl imap://): mailbox (in modified UTF-7, or
 * NULL) is selected first. out_r: the server's untagged lines (g_free).
 * 0, or -1 (curl's error in error_r). */
int dvc_imap(struct dvc *d, const struct dvc_user *u, const char *mailbox,
             const char *command, char **out_r, char **error_r);

/* An IMAP INTERNALDATE ("03-Mar-2026 01:00:00 +0000") as unix time, -1 if
 * it is not one. */
gint64 dvc_internaldate(const char *s);

#endif
