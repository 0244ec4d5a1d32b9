/*
 * postfix.h - a private Postfix on 127.0.0.1 for integration tests
 *
 * Each instance has its own config_directory, queue and data directories
 * and maillog under DIR, an smtpd on a free loopback port, no chroot, and
 * relays everything to [127.0.0.1]:RELAY_PORT (an smtp-sink started with
 * pfx_sink_start, or another instance). master runs under setsid and is
 * stopped by its pid, its children checked gone. Needs root (Postfix drops
 * to its own users) and the Debian postfix package. Nothing is ever sent
 * anywhere but 127.0.0.1.
 */
#ifndef CUSTOS_TESTS_POSTFIX_H
#define CUSTOS_TESTS_POSTFIX_H

#include <glib.h>

struct pfx {
    char *dir;          /* DIR: conf/, queue/, data/, maillog */
    char *conf;         /* DIR/conf */
    char *maillog;
    int port;           /* its smtpd: 127.0.0.1:port */
    GPid master;
};

struct pfx_sink {
    char *dir;          /* each message dumped as a file here (smtp-sink -d) */
    int port;
    GPid pid;
};

/* 1 when root with postfix, swaks and smtp-sink installed; else 0 and
 * why_r says what is missing (g_free). */
int pfx_usable(char **why_r);
/* A TCP port on 127.0.0.1 nothing listens on (bound and released). */
int pfx_free_port(void);

/* Set up DIR (created) and start master. milters: the smtpd_milters value
 * (also non_smtpd_milters), or NULL. extra: more main.cf lines or NULL. */
int pfx_start(struct pfx *p, const char *dir, int relay_port, const char *milters,
              const char *extra, char **error_r);
/* TERM master, wait for it and every child it had; then free p's fields. */
void pfx_stop(struct pfx *p);
/* postqueue -f: deliver what is queued now. */
void pfx_flush(struct pfx *p);
/* Messages in the queue (postqueue -j), -1 on error. */
int pfx_queue_count(struct pfx *p);
/* Wait until the queue is empty (flushing now and then); 0 or -1. */
int pfx_wait_empty(struct pfx *p, double timeout);
/* The maillog's text (g_free). */
char *pfx_log(struct pfx *p);
/* Queue ids the maillog says were accepted ("QID: from=<...>" of qmgr). */
GPtrArray *pfx_log_queued(struct pfx *p);

/* smtp-sink on a free port, dumping each message into a file in dir. */
int pfx_sink_start(struct pfx_sink *s, const char *dir, char **error_r);
void pfx_sink_stop(struct pfx_sink *s);
/* The dumped messages (GBytes *), oldest first; wait until at least n. */
GPtrArray *pfx_sink_messages(struct pfx_sink *s, guint n, double timeout);

/* swaks to 127.0.0.1:port with args (NULL-terminated): its exit status,
 * its transcript in out_r (g_free, may be NULL). */
int pfx_swaks(int port, char **out_r, ...) G_GNUC_NULL_TERMINATED;

/* Stop every master and smtp-sink still running (a test that failed
 * fatally skipped its pfx_stop): for a suite's cleanup. */
void pfx_cleanup(void);

/* Wait for pid to exit (reaped), at most timeout s: 0, or -1. */
int pfx_wait_pid(GPid pid, double timeout, int *status_r);

#endif
