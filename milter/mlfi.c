/*
 * mlfi.c - custos-milter's callbacks: journal every message before it is
 * accepted
 *
 * One struct mconn per SMTP connection, one struct mmsg per message in it.
 * The message streams into a spool writer from the first header on; at
 * end of message the envelope is committed (fsync) and only then does the
 * message go on, tagged with its spool id. Any failure to journal answers
 * 451 4.3.0 (mlt_tempfail, the one place a failure becomes an SMTP reply).
 * Nothing here blocks on anything but the spool's own disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <glib.h>
#include "custos/archive.h"
#include "custos/det-text.h"
#include "custos/detect.h"
#include "custos/directory.h"
#include "custos/log.h"
#include "custos/milter.h"
#include "custos/notify.h"
#include "custos/once.h"
#include "custos/policy.h"
#include "custos/route.h"
#include "custos/spool.h"
#include "custos/util.h"

/* The configuration messages use; swapped whole on reload. With it, the
 * directory: handles (struct dir, one per thread at a time) in a pool. */
struct mlt_conf {
    gint refs;
    struct cfg *cfg;
    char *spool;
    GAsyncQueue *dirs;          /* idle struct dir * */
    GMutex dir_lock;
    gint64 dir_retry;           /* no directory: when to try again (s) */
    int dir_logged;             /* its unavailability was logged */
};

#define MLT_DIR_RETRY 60        /* seconds between tries of a missing directory */
#define MLT_FROM_MAX 4096       /* bytes of the From header kept for classify */

struct mmsg {
    struct mlt_conf *conf;      /* a reference, for the message's life */
    char *sender, *auth, *qid;
    char **rcpts;               /* NULL-terminated */
    size_t n_rcpts, cap_rcpts;
    struct spool_writer *w;     /* opened at DATA (or the first header); holds
                                 * the message in memory while no bigger than
                                 * [detect] text_size (parsed from there),
                                 * else streams it to its file */
    int forged;                 /* X-Custos-Archive headers it came with */
    int forged_flag, forged_orig;       /* X-Custos-Flag, X-Custos-Original-To */
    char *from_hdr;             /* the first From header's value, or NULL */
    int leadspc;                /* header values keep their leading space */
    char *failed;               /* a header or body chunk that needs no reply
                                 * could not be journalled: why (answered at
                                 * the next step that is replied to) */
    gint64 time;
};

struct mconn {
    char *client;               /* "ADDR [HOSTNAME]" */
    int leadspc;
    int nr_env;                 /* connect, MAIL, RCPT: no reply (unix socket) */
    int nr_hdr, nr_body, nr_eoh;        /* headers, body chunks, end of header: ditto */
    unsigned long acts;         /* SMFIF_* the MTA allows (negotiate), or 0: all */
    char *failed;               /* a step with no reply failed and no message
                                 * holds it: why (answered at DATA or EOM) */
    struct mmsg *msg;
};

static GMutex mlt_lock;
static struct mlt_conf *mlt_cur;
static const struct mlt_smfi *mlt_smfi;
static gint mlt_nconn, mlt_nmsg, mlt_stopping;

/* The record of route notices sent (once per sender and leaver per
 * [route] notice_days), opened on first use in [milter] state_dir, and
 * again in the new one when a reload moved it. Used under mlt_once_lock. */
static GMutex mlt_once_lock;
static struct once *mlt_once;
static char *mlt_once_path;     /* the file mlt_once is */

static const char mlt_tempfail_text[] =
    "custos: the message could not be archived; please try again later";

/* ---- configuration ------------------------------------------------------- */

static struct mlt_conf *conf_new(struct cfg *cfg)
{
    struct mlt_conf *c = g_new0(struct mlt_conf, 1);

    c->refs = 1;
    c->cfg = cfg;
    c->spool = cfg_spool_dir(cfg);
    c->dirs = g_async_queue_new();
    g_mutex_init(&c->dir_lock);
    return c;
}

/* A directory handle for this thread, or NULL (none: logged once per
 * MLT_DIR_RETRY, and the message is archived unclassified). */
static struct dir *dir_take(struct mlt_conf *c, const char *qid)
{
    struct dir *d = g_async_queue_try_pop(c->dirs);
    gint64 now = g_get_monotonic_time() / G_USEC_PER_SEC;
    char *err = NULL;

    if (d != NULL)
        return d;
    g_mutex_lock(&c->dir_lock);
    if (now < c->dir_retry) {
        g_mutex_unlock(&c->dir_lock);
        return NULL;
    }
    if (dir_open(c->cfg, &d, &err) < 0) {
        c->dir_retry = now + MLT_DIR_RETRY;
        log_warn("%s: directory unavailable (%s): messages are archived, not classified, "
                 "no detector runs", qid, err);
        g_free(err);
        c->dir_logged = 1;
    } else if (c->dir_logged) {
        log_info("%s: directory available again", qid);
        c->dir_logged = 0;
    }
    g_mutex_unlock(&c->dir_lock);
    return d;
}

static void dir_give(struct mlt_conf *c, struct dir *d)
{
    if (d != NULL)
        g_async_queue_push(c->dirs, d);
}

static struct mlt_conf *conf_get(void)
{
    struct mlt_conf *c;

    g_mutex_lock(&mlt_lock);
    c = mlt_cur;
    if (c != NULL)
        g_atomic_int_inc(&c->refs);
    g_mutex_unlock(&mlt_lock);
    return c;
}

static void conf_put(struct mlt_conf **cp)
{
    struct mlt_conf *c = *cp;

    if (c == NULL)
        return;
    *cp = NULL;
    if (!g_atomic_int_dec_and_test(&c->refs))
        return;
    {
        struct dir *d;
        while ((d = g_async_queue_try_pop(c->dirs)) != NULL)
            dir_close(&d);
    }
    g_async_queue_unref(c->dirs);
    g_mutex_clear(&c->dir_lock);
    cfg_free(&c->cfg);
    g_free(c->spool);
    g_free(c);
}

/* Create the spool and sweep what dead writers left; log, never fatal. */
static void spool_check(const struct mlt_conf *c)
{
    char *err = NULL;
    guint removed = 0, moved = 0;

    if (spool_init(c->spool, &err) < 0 || spool_sweep_tmp(c->spool, 0, &removed, &err) < 0 ||
        spool_recover(c->spool, &moved, &err) < 0) {
        log_error("NOQUEUE: spool %s: %s (every message gets 451 until it can be written)",
                  c->spool, err);
        g_free(err);
        return;
    }
    if (removed > 0)
        log_info("NOQUEUE: spool %s: removed %u unfinished entries of writers gone",
                 c->spool, removed);
    if (moved > 0)
        log_info("NOQUEUE: spool %s: %u journals no writer holds handed to ingest",
                 c->spool, moved);
}

int mlt_init(struct cfg *cfg, const struct mlt_smfi *smfi, char **error_r)
{
    if (mlt_cur != NULL)
        return cus_error(error_r, "custos-milter: initialised twice");
    mlt_smfi = smfi;
    mlt_cur = conf_new(cfg);
    spool_check(mlt_cur);
    if (cfg->pol_compliance == NULL)
        log_warn("NOQUEUE: [policy] compliance is not set: findings are tagged and recorded, "
                 "but no summary is mailed");
    ntf_init();
    return 0;
}

void mlt_reload(struct cfg *cfg)
{
    struct mlt_conf *c = conf_new(cfg), *old;

    spool_check(c);
    g_mutex_lock(&mlt_lock);
    old = mlt_cur;
    mlt_cur = c;
    g_mutex_unlock(&mlt_lock);
    conf_put(&old);
}

void mlt_deinit(void)
{
    struct mlt_conf *c;

    g_mutex_lock(&mlt_lock);
    c = mlt_cur;
    mlt_cur = NULL;
    g_mutex_unlock(&mlt_lock);
    conf_put(&c);
    /* what the outbox still has is sent before the record closes */
    ntf_deinit();
    g_mutex_lock(&mlt_once_lock);
    once_close(&mlt_once);
    g_clear_pointer(&mlt_once_path, g_free);
    g_mutex_unlock(&mlt_once_lock);
}

int mlt_active(void)
{
    return g_atomic_int_get(&mlt_nconn);
}

int mlt_in_flight(void)
{
    return g_atomic_int_get(&mlt_nmsg);
}

void mlt_stop(void)
{
    g_atomic_int_set(&mlt_stopping, 1);
}

/* ---- per-connection and per-message state ------------------------------- */

/* Allocation in callbacks may fail (and then the answer is 451): no g_malloc. */
static char *try_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = g_try_malloc(n);

    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* An address from MAIL FROM / RCPT TO, without its angle brackets. */
static char *try_addr(const char *a)
{
    size_t n;
    char *d;

    if (a == NULL)
        return try_strdup("");
    n = strlen(a);
    if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
        d = g_try_malloc(n - 1);
        if (d != NULL) {
            memcpy(d, a + 1, n - 2);
            d[n - 2] = '\0';
        }
        return d;
    }
    return try_strdup(a);
}

static void mmsg_free(struct mmsg **mp)
{
    struct mmsg *m = *mp;

    if (m == NULL)
        return;
    spool_writer_abort(&m->w);
    for (size_t i = 0; i < m->n_rcpts; i++)
        g_free(m->rcpts[i]);
    g_free(m->rcpts);
    g_free(m->sender);
    g_free(m->failed);
    g_free(m->from_hdr);
    g_free(m->auth);
    g_free(m->qid);
    conf_put(&m->conf);
    g_free(m);
    *mp = NULL;
    g_atomic_int_add(&mlt_nmsg, -1);
}

static struct mconn *conn_of(SMFICTX *ctx)
{
    return mlt_smfi->getpriv(ctx);
}

static const char *qid_of(const struct mconn *c)
{
    return c != NULL && c->msg != NULL && c->msg->qid != NULL && *c->msg->qid != '\0'
               ? c->msg->qid : "NOQUEUE";
}

/* The queue id as Postfix has it now (it comes late: read again at EOM). */
static void qid_update(SMFICTX *ctx, struct mmsg *m)
{
    const char *i = mlt_smfi->getsymval(ctx, "i");
    char *d;

    if (i == NULL || *i == '\0' || (m->qid != NULL && strcmp(m->qid, i) == 0))
        return;
    if ((d = try_strdup(i)) != NULL) {
        g_free(m->qid);
        m->qid = d;
    }
}

/*
 * The one place a failure to journal becomes an answer: 451 4.3.0, so
 * Postfix keeps the mail (or the client retries). The message is dropped
 * here: after TEMPFAIL libmilter sends no abort for it.
 */
static sfsistat mlt_tempfail(SMFICTX *ctx, struct mconn *c, const char *what, const char *err)
{
    log_error("%s: %s: %s; answered 451 4.3.0", qid_of(c), what, err);
    mlt_smfi->setreply(ctx, "451", "4.3.0", (char *)mlt_tempfail_text);
    if (c != NULL) {
        mmsg_free(&c->msg);
        g_free(c->failed);
        c->failed = NULL;
    }
    return SMFIS_TEMPFAIL;
}

/* Stopping: no new message, 421 4.3.2 (at MAIL, or at DATA if MAIL gets
 * no reply). */
static sfsistat mlt_stopping_reply(SMFICTX *ctx, const char *what)
{
    log_info("NOQUEUE: %s while stopping: answered 421 4.3.2", what);
    mlt_smfi->setreply(ctx, "421", "4.3.2", "custos: shutting down, try again later");
    return SMFIS_TEMPFAIL;
}

/* The message's writer, opened on first use. */
static int mmsg_writer(struct mconn *c, char **error_r)
{
    struct mmsg *m = c->msg;

    if (m->w != NULL)
        return 0;
    /* held in memory (parsed from there, then journalled) while no bigger
     * than the text the detectors read */
    if (spool_writer_open(m->conf->spool, m->conf->cfg->det_text_size, &m->w, error_r) < 0)
        return -1;
    return 0;
}

static int mmsg_write(struct mconn *c, const void *buf, size_t len, char **error_r)
{
    struct mmsg *m = c->msg;

    if (mmsg_writer(c, error_r) < 0)
        return -1;
    return spool_writer_write(m->w, buf, len, error_r);
}

/* ---- callbacks ------------------------------------------------------------ */

static struct mconn *conn_get(SMFICTX *ctx);

/* A step that gets no reply failed: remembered (the first failure, by the
 * message, else by the connection), answered at the next step that does
 * (DATA, EOH, EOM). */
static sfsistat mlt_noreply_fail(struct mconn *c, char *err)
{
    char **slot = c->msg != NULL ? &c->msg->failed : &c->failed;

    if (*slot == NULL)
        *slot = err;
    else
        g_free(err);
    return SMFIS_NOREPLY;
}

/* A failure at connect, MAIL or RCPT: 451 now, or (no reply wanted: the
 * message dropped, the failure kept) at DATA. */
static sfsistat mlt_env_fail(SMFICTX *ctx, struct mconn *c, const char *what, const char *err)
{
    if (c == NULL || !c->nr_env)
        return mlt_tempfail(ctx, c, what, err);
    mmsg_free(&c->msg);
    return mlt_noreply_fail(c, g_strdup_printf("%s: %s", what, err));
}

/* What a step that is answered says for a failure remembered by the
 * connection: 451, and the failure forgotten. */
static sfsistat mlt_conn_failed(SMFICTX *ctx, struct mconn *c)
{
    char *why = c->failed;
    sfsistat r;

    c->failed = NULL;
    r = mlt_tempfail(ctx, c, "cannot journal the message", why);
    g_free(why);
    return r;
}

sfsistat mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                        unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                        unsigned long *pf2, unsigned long *pf3)
{
    const unsigned long actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
    const unsigned long nr_env = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT;

    if ((f0 & actions) != actions) {
        log_error("NOQUEUE: the MTA does not offer adding and changing headers: "
                  "custos-milter cannot tag what it archived");
        return SMFIS_REJECT;    /* libmilter: refuse the connection */
    }
    /* recipients and quarantine where offered (Postfix does): a message
     * that needs one the MTA lacks is answered 451 */
    *pf0 = f0 & MLT_ACTIONS;
    /* every step is wanted but HELO and unknown commands; header values
     * with their leading space, so the archived copy is exact */
    *pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN | SMFIP_NOHELO);
    /* and no answer wanted but at DATA and end of message, where offered:
     * Postfix then keeps the steps in its buffer and sends them with the
     * next that is answered (connect, MAIL and RCPT with DATA; headers,
     * end of header and body with end of message), in writes of its buffer
     * (over TCP twice the MSS, so Nagle never holds them back): three
     * round trips a message, over either socket */
    *pf1 |= f1 & (SMFIP_NR_HDR | SMFIP_NR_BODY | SMFIP_NR_EOH);
    if ((f1 & nr_env) == nr_env)
        *pf1 |= nr_env;
    *pf2 = *pf3 = 0;
    {
        /* negotiate comes before connect: the connection's state starts here */
        struct mconn *c = conn_get(ctx);
        if (c == NULL)
            return SMFIS_TEMPFAIL;
        c->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
        c->acts = *pf0;
        c->nr_env = (*pf1 & SMFIP_NR_MAIL) != 0;
        c->nr_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
        c->nr_body = (*pf1 & SMFIP_NR_BODY) != 0;
        c->nr_eoh = (*pf1 & SMFIP_NR_EOH) != 0;
        log_debug("NOQUEUE: negotiated: header leading space %d, no reply to connect, "
                  "MAIL and RCPT %d, to headers %d, to body chunks %d, to end of header %d",
                  c->leadspc, c->nr_env, c->nr_hdr, c->nr_body, c->nr_eoh);
    }
    return SMFIS_CONTINUE;
}

/* The connection's state, made if negotiate did not. */
static struct mconn *conn_get(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);

    if (c != NULL)
        return c;
    if ((c = g_try_new0(struct mconn, 1)) == NULL)
        return NULL;
    if (mlt_smfi->setpriv(ctx, c) != MI_SUCCESS) {
        g_free(c);
        return NULL;
    }
    g_atomic_int_inc(&mlt_nconn);
    return c;
}

sfsistat mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
    struct mconn *c = conn_get(ctx);
    char addr[INET6_ADDRSTRLEN] = "";

    if (c == NULL)
        return mlt_tempfail(ctx, NULL, "connect", "out of memory");
    if (hostaddr != NULL && hostaddr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)hostaddr)->sin_addr, addr,
                  sizeof(addr));
    else if (hostaddr != NULL && hostaddr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)hostaddr)->sin6_addr, addr,
                  sizeof(addr));
    g_free(c->client);
    c->client = g_try_malloc(strlen(addr) + strlen(hostname ? hostname : "") + 4);
    if (c->client == NULL)
        return mlt_env_fail(ctx, c, "connect", "out of memory");
    sprintf(c->client, "%s%s[%s]", addr, *addr ? " " : "", hostname ? hostname : "");
    log_debug("NOQUEUE: connect from %s", c->client);
    return c->nr_env ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat mlfi_envfrom(SMFICTX *ctx, char **argv)
{
    struct mconn *c = conn_get(ctx);
    struct mmsg *m;
    const char *auth;

    if (c == NULL)
        return mlt_tempfail(ctx, NULL, "MAIL FROM", "out of memory");
    /* a message before this one on the connection that was not finished */
    mmsg_free(&c->msg);
    if (g_atomic_int_get(&mlt_stopping)) {
        /* no message: DATA says 421 (now, if MAIL is answered) */
        if (c->nr_env)
            return SMFIS_NOREPLY;
        return mlt_stopping_reply(ctx, "MAIL FROM");
    }
    if ((m = g_try_new0(struct mmsg, 1)) == NULL)
        return mlt_env_fail(ctx, c, "MAIL FROM", "out of memory");
    g_atomic_int_inc(&mlt_nmsg);
    c->msg = m;
    m->time = g_get_real_time() / G_USEC_PER_SEC;
    m->leadspc = c->leadspc;
    if ((m->conf = conf_get()) == NULL)
        return mlt_env_fail(ctx, c, "MAIL FROM", "custos-milter is stopping");
    m->sender = try_addr(argv != NULL ? argv[0] : NULL);
    auth = mlt_smfi->getsymval(ctx, "{auth_authen}");
    m->auth = auth != NULL ? try_strdup(auth) : NULL;
    if (m->sender == NULL || (auth != NULL && m->auth == NULL))
        return mlt_env_fail(ctx, c, "MAIL FROM", "out of memory");
    qid_update(ctx, m);
    return c->nr_env ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
    struct mconn *c = conn_of(ctx);
    struct mmsg *m = c != NULL ? c->msg : NULL;
    char *r;

    if (m == NULL) {
        /* MAIL FROM while stopping, or a failure DATA answers */
        if (c != NULL && c->nr_env && (c->failed != NULL || g_atomic_int_get(&mlt_stopping)))
            return SMFIS_NOREPLY;
        return mlt_env_fail(ctx, c, "RCPT TO", "no MAIL FROM before it");
    }
    if (m->n_rcpts + 1 >= m->cap_rcpts) {
        size_t cap = m->cap_rcpts ? 2 * m->cap_rcpts : 8;
        char **n = g_try_realloc(m->rcpts, cap * sizeof(*n));
        if (n == NULL)
            return mlt_env_fail(ctx, c, "RCPT TO", "out of memory");
        m->rcpts = n;
        m->cap_rcpts = cap;
    }
    if ((r = try_addr(argv != NULL ? argv[0] : NULL)) == NULL)
        return mlt_env_fail(ctx, c, "RCPT TO", "out of memory");
    m->rcpts[m->n_rcpts++] = r;
    m->rcpts[m->n_rcpts] = NULL;
    return c->nr_env ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* DATA: the spool entry is started here, so a spool that cannot be written
 * is answered before the client sends the message. */
sfsistat mlfi_data(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    char *err = NULL;
    sfsistat r;

    if (c != NULL && c->failed != NULL)
        return mlt_conn_failed(ctx, c);
    if (c != NULL && c->msg == NULL && g_atomic_int_get(&mlt_stopping))
        return mlt_stopping_reply(ctx, "DATA");
    if (c == NULL || c->msg == NULL)
        return mlt_tempfail(ctx, c, "DATA", "no MAIL FROM before it");
    qid_update(ctx, c->msg);
    if (mmsg_writer(c, &err) == 0)
        return SMFIS_CONTINUE;
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

sfsistat mlfi_header(SMFICTX *ctx, char *name, char *value)
{
    struct mconn *c = conn_of(ctx);
    struct mmsg *m = c != NULL ? c->msg : NULL;
    char *err = NULL;
    const char *v = value != NULL ? value : "", *p;
    sfsistat r;

    if (m == NULL) {
        if (c != NULL && c->nr_hdr)
            return mlt_noreply_fail(c, g_strdup("a header with no MAIL FROM before it"));
        return mlt_tempfail(ctx, c, "header", "no MAIL FROM before it");
    }
    if (m->failed != NULL)
        return c->nr_hdr ? SMFIS_NOREPLY : mlt_tempfail(ctx, c, "header", m->failed);
    if (g_ascii_strncasecmp(name, "X-Custos-", 9) == 0) {
        /* ours only when we add them: the ones it came with are removed */
        m->forged += g_ascii_strcasecmp(name, MLT_HEADER) == 0;
        m->forged_flag += g_ascii_strcasecmp(name, POL_FLAG_HEADER) == 0;
        m->forged_orig += g_ascii_strcasecmp(name, RT_HEADER) == 0;
    }
    if (m->from_hdr == NULL && g_ascii_strcasecmp(name, "From") == 0 &&
        (m->from_hdr = g_try_malloc(MIN(strlen(v), MLT_FROM_MAX) + 1)) != NULL)
        g_strlcpy(m->from_hdr, v, MIN(strlen(v), MLT_FROM_MAX) + 1);
    if (mmsg_write(c, name, strlen(name), &err) < 0 ||
        mmsg_write(c, m->leadspc ? ":" : ": ", m->leadspc ? 1 : 2, &err) < 0)
        goto fail;
    /* a folded value: its line breaks as CRLF */
    while ((p = strchr(v, '\n')) != NULL) {
        size_t n = (size_t)(p - v);
        if (n > 0 && v[n - 1] == '\r')
            n--;
        if (mmsg_write(c, v, n, &err) < 0 || mmsg_write(c, "\r\n", 2, &err) < 0)
            goto fail;
        v = p + 1;
    }
    if (mmsg_write(c, v, strlen(v), &err) < 0 || mmsg_write(c, "\r\n", 2, &err) < 0)
        goto fail;
    return c->nr_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
fail:
    if (c->nr_hdr)
        return mlt_noreply_fail(c, err);
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

sfsistat mlfi_eoh(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    char *err = NULL;
    sfsistat r;

    if (c == NULL || c->msg == NULL) {
        if (c != NULL && c->nr_eoh)
            return mlt_noreply_fail(c, g_strdup("end of header with no MAIL FROM before it"));
        return mlt_tempfail(ctx, c, "end of header", "no MAIL FROM before it");
    }
    if (c->msg->failed != NULL)
        return c->nr_eoh ? SMFIS_NOREPLY
                         : mlt_tempfail(ctx, c, "cannot journal the message", c->msg->failed);
    if (mmsg_write(c, "\r\n", 2, &err) == 0)
        return c->nr_eoh ? SMFIS_NOREPLY : SMFIS_CONTINUE;
    if (c->nr_eoh)
        return mlt_noreply_fail(c, err);
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

sfsistat mlfi_body(SMFICTX *ctx, unsigned char *buf, size_t len)
{
    struct mconn *c = conn_of(ctx);
    char *err = NULL;
    sfsistat r;

    if (c == NULL || c->msg == NULL) {
        if (c != NULL && c->nr_body)
            return mlt_noreply_fail(c, g_strdup("a body with no MAIL FROM before it"));
        return mlt_tempfail(ctx, c, "body", "no MAIL FROM before it");
    }
    if (c->msg->failed != NULL)
        return c->nr_body ? SMFIS_NOREPLY : mlt_tempfail(ctx, c, "body", c->msg->failed);
    if (mmsg_write(c, buf, len, &err) == 0)
        return c->nr_body ? SMFIS_NOREPLY : SMFIS_CONTINUE;
    if (c->nr_body)
        return mlt_noreply_fail(c, err);
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

/* The message, parsed once for the detectors: GMime's tree (over the
 * writer's memory, or with bodies left in its file and read on demand) and
 * the message model walked from it within [limits]. 0, or -1 and nothing
 * set. */
static int mmsg_parse(struct mmsg *m, struct det_message *dm, char **error_r)
{
    struct msg_limits lim;
    GMimeMessage *mime;
    GMimeStream *st;
    GMimeParser *p;
    GByteArray *mem;
    int fd;

    msg_init();
    if ((mem = spool_writer_memory(m->w)) != NULL) {
        st = g_mime_stream_mem_new();
        g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(st), mem);   /* borrowed */
    } else {
        if (spool_writer_flush(m->w, error_r) < 0)
            return -1;
        if ((fd = open(spool_writer_path(m->w), O_RDONLY | O_CLOEXEC)) < 0)
            return cus_error_errno(error_r, "open(%s) failed", spool_writer_path(m->w));
        st = g_mime_stream_fs_new_with_bounds(fd, SPOOL_STREAM_OFFSET, -1);    /* owns fd */
    }
    p = g_mime_parser_new_with_stream(st);
    g_mime_parser_set_persist_stream(p, TRUE);
    mime = g_mime_parser_construct_message(p, msg_parser_options());
    g_object_unref(p);
    g_object_unref(st);
    if (mime == NULL)
        return cus_error(error_r, "not a message GMime can parse");
    arc_limits_from_cfg(m->conf->cfg, &lim);
    lim.text_size = MIN(lim.text_size, m->conf->cfg->det_text_size);
    if (msg_from_gmime(mime, &lim, &dm->msg, error_r) < 0) {
        g_object_unref(mime);
        return -1;
    }
    dm->mime = mime;
    return 0;
}

/* ---- end of message: decide, journal, answer ------------------------------- */

/* A notice to the sender of routed mail, sent once the message is taken. */
struct mnotice {
    char *text, *from, *to, *key;
};

/* What end of message does with the message (mmsg_inspect decides). */
struct mdec {
    int keep;                   /* archive it */
    struct pol_verdict v;       /* the findings kept, each with its action */
    GPtrArray *routes;          /* struct rt_route *: recipients to successors */
    char *subject;              /* the new Subject value, or NULL */
    GPtrArray *notices;         /* struct mnotice * */
};

static void mnotice_free(gpointer p)
{
    struct mnotice *n = p;

    g_free(n->text);
    g_free(n->from);
    g_free(n->to);
    g_free(n->key);
    g_free(n);
}

static void mdec_clear(struct mdec *dec)
{
    pol_verdict_clear(&dec->v);
    if (dec->routes != NULL)
        g_ptr_array_free(dec->routes, TRUE);
    if (dec->notices != NULL)
        g_ptr_array_free(dec->notices, TRUE);
    g_free(dec->subject);
    memset(dec, 0, sizeof(*dec));
}

static guint mdec_nitems(const struct mdec *dec)
{
    return dec->v.items != NULL ? dec->v.items->len : 0;
}

static int in_list(const GPtrArray *a, const char *s)
{
    for (guint i = 0; a != NULL && i < a->len; i++)
        if (g_ascii_strcasecmp(g_ptr_array_index(a, i), s) == 0)
            return 1;
    return 0;
}

/* Routing: the routes (not of stripped recipients), the subject tag, the
 * notices. The message is parsed here if the detectors did not. */
static void mmsg_route(struct mconn *c, struct mmsg *m, struct det_envelope *env,
                       struct det_message *dm, struct mdec *dec)
{
    const struct cfg *cfg = m->conf->cfg;
    GHashTable *told;
    char *err = NULL;

    if (rt_plan(env->dir, cfg, env, &dec->routes, &err) < 0) {
        log_error("%s: routing: %s: delivered as addressed", qid_of(c), err);
        g_free(err);
        return;
    }
    for (guint i = dec->routes->len; i-- > 0;) {
        const struct rt_route *r = g_ptr_array_index(dec->routes, i);
        if (in_list(dec->v.strip, r->leaver))
            g_ptr_array_remove_index(dec->routes, i);
    }
    if (dec->routes->len == 0 || (cfg->rt_subject_tag == NULL && !cfg->rt_notices))
        return;
    if (dm->mime == NULL && mmsg_parse(m, dm, &err) < 0) {
        log_warn("%s: routing: %s: no subject tag, no notice", qid_of(c), err);
        g_free(err);
        return;
    }
    dec->subject = rt_subject(cfg, g_mime_message_get_subject(dm->mime), dec->routes);
    told = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < dec->routes->len; i++) {
        const struct rt_route *r = g_ptr_array_index(dec->routes, i);
        struct mnotice *n;
        const char *why = NULL;

        if (g_hash_table_contains(told, r->leaver))
            continue;
        g_hash_table_add(told, r->leaver);
        if (!rt_notice_wanted(cfg, env, dm->mime, &why)) {
            log_debug("%s: no notice to <%s> about %s: %s", qid_of(c), env->sender.addr,
                      r->leaver, why);
            continue;
        }
        n = g_new0(struct mnotice, 1);
        if (rt_notice(cfg, env, dm->mime, r, &n->text, &n->from, &n->key, &err) < 0) {
            log_error("%s: notice to <%s>: %s", qid_of(c), env->sender.addr, err);
            g_free(err);
            err = NULL;
            mnotice_free(n);
            continue;
        }
        n->to = g_strdup(env->sender.addr);
        if (dec->notices == NULL)
            dec->notices = g_ptr_array_new_with_free_func(mnotice_free);
        g_ptr_array_add(dec->notices, n);
    }
    g_hash_table_destroy(told);
}

/*
 * Classify, run the detectors, decide and plan the routing. dec->keep: 1
 * archive it, 0 not (scope = departments and neither sales mail nor
 * flagged nor routed). Without the directory nothing is classified and
 * everything is archived. A message that cannot be parsed gets only the
 * detectors that need no message.
 */
static void mmsg_inspect(struct mconn *c, struct mmsg *m, struct mdec *dec)
{
    const struct cfg *cfg = m->conf->cfg;
    struct det_envelope env = { .queue_id = qid_of(c), .client = c->client, .auth = m->auth,
                                .cfg = cfg };
    struct dir *d = dir_take(m->conf, qid_of(c));
    struct det_message dm = { 0 };
    GPtrArray *findings = NULL;
    char *err = NULL;
    int parsed = 0;

    dec->keep = 1;
    if (d == NULL)
        return;
    /* every lookup of this message in one read transaction */
    dir_read_begin(d);
    if (det_classify(d, cfg->arc_departments, m->sender, m->from_hdr, m->auth, m->rcpts, &env,
                     &err) < 0) {
        log_error("%s: cannot classify (%s): archived, no detector run", qid_of(c), err);
        goto out;
    }
    if (det_want_message()) {
        if (mmsg_parse(m, &dm, &err) == 0) {
            parsed = 1;
        } else {
            log_warn("%s: %s: archived, detectors of the message not run", qid_of(c), err);
            g_free(err);
            err = NULL;
        }
    }
    if (det_run(&env, parsed ? &dm : NULL, &findings, &err) < 0)
        log_error("%s: %s", qid_of(c), err);
    for (guint i = 0; findings != NULL && i < findings->len; i++) {
        const struct det_finding *f = g_ptr_array_index(findings, i);
        log_warn("%s: finding %s: rule=%s: %s", qid_of(c), f->category, f->rule, f->evidence);
    }
    pol_decide(cfg, &env, findings, &dec->v);
    if (dec->v.dropped > 0)
        log_info("%s: %u finding(s) dropped: allowed by [policy] allow.*", qid_of(c),
                 dec->v.dropped);
    if (dec->v.action != CFG_ACT_REJECT)
        mmsg_route(c, m, &env, &dm, dec);
    dec->keep = cfg->arc_scope == CFG_SCOPE_ALL || env.sales || mdec_nitems(dec) > 0 ||
                (dec->routes != NULL && dec->routes->len > 0);
out:
    g_free(err);
    if (findings != NULL)
        g_ptr_array_free(findings, TRUE);
    msg_free(&dm.msg);
    if (dm.mime != NULL)
        g_object_unref(dm.mime);
    det_envelope_clear(&env);
    dir_read_end(d);
    dir_give(m->conf, d);
}

/* s as a finding token ([a-z0-9./_-]+): other bytes become '-'. */
static char *token_of(const char *s)
{
    char *t = g_ascii_strdown(s != NULL && *s != '\0' ? s : "unknown", -1);

    for (char *p = t; *p != '\0'; p++)
        if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && strchr("./_-", *p) == NULL)
            *p = '-';
    return t;
}

static void findings_free(struct spool_finding **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        spool_finding_free(&f[i]);
    g_free(f);
}

/* The spool envelope's findings: every finding kept, with its action and
 * its recipients (masked, as all evidence is: z***@163.com; the incident
 * lists the envelope's recipients whole), and every route (action route). */
static struct spool_finding **mdec_findings(const struct mdec *dec, size_t *n_r)
{
    guint ni = mdec_nitems(dec), nr = dec->routes != NULL ? dec->routes->len : 0;
    struct spool_finding **out = g_new0(struct spool_finding *, ni + nr + 1);
    size_t n = 0;

    for (guint i = 0; i < ni; i++) {
        const struct pol_item *it = g_ptr_array_index(dec->v.items, i);
        struct spool_finding *f = out[n++] = g_new0(struct spool_finding, 1);
        GString *ev = g_string_new(it->evidence);

        f->category = token_of(it->category);
        f->rule = token_of(it->rule);
        f->action = g_strdup(cfg_action_name(it->action));
        for (guint j = 0; j < it->rcpts->len; j++) {
            char *masked = det_mask_addr(g_ptr_array_index(it->rcpts, j));
            g_string_append_printf(ev, "%s%s", j ? ", " : " [recipients: ", masked);
            g_free(masked);
        }
        if (it->rcpts->len > 0)
            g_string_append_c(ev, ']');
        f->evidence = g_string_free(ev, FALSE);
    }
    for (guint i = 0; i < nr; i++) {
        const struct rt_route *r = g_ptr_array_index(dec->routes, i);
        struct spool_finding *f = out[n++] = g_new0(struct spool_finding, 1);

        f->category = g_strdup("route");
        f->rule = g_strdup("route/successor");
        f->action = g_strdup("route");
        f->evidence = rt_evidence(r);
    }
    *n_r = n;
    if (n == 0) {
        g_free(out);
        return NULL;
    }
    return out;
}

/* A header value as the MTA wants it (with SMFIP_HDR_LEADSPC: its space). */
static char *hval(const struct mmsg *m, const char *v)
{
    return g_strconcat(m->leadspc ? " " : "", v, NULL);
}

/* Is recipient i removed (stripped, or routed away)? */
static int rcpt_removed(const struct mmsg *m, const struct mdec *dec, size_t i)
{
    if (in_list(dec->v.strip, m->rcpts[i]))
        return 1;
    for (guint j = 0; dec->routes != NULL && j < dec->routes->len; j++)
        if (((const struct rt_route *)g_ptr_array_index(dec->routes, j))->rcpt == i)
            return 1;
    return 0;
}

/* Ask the MTA for the verdict's changes: flags, strip, routes, subject,
 * hold. What was done goes to notes, to be logged once the message is
 * journalled. -1 when the MTA refused a change (it will not take the
 * message). */
static int mmsg_apply(SMFICTX *ctx, struct mconn *c, struct mmsg *m, const struct mdec *dec,
                      GPtrArray *notes, char **error_r)
{
    GPtrArray *added = g_ptr_array_new_with_free_func(g_free);
    unsigned long need = 0;
    char *v;
    int ok = 1;

    if (dec->v.strip != NULL && dec->v.strip->len > 0)
        need |= SMFIF_DELRCPT;
    if (dec->routes != NULL && dec->routes->len > 0)
        need |= SMFIF_DELRCPT | SMFIF_ADDRCPT;
    if (mdec_nitems(dec) > 0 && dec->v.action == CFG_ACT_HOLD)
        need |= SMFIF_QUARANTINE;
    if (c->acts != 0 && (c->acts & need) != need) {
        g_ptr_array_free(added, TRUE);
        return cus_error(error_r, "the MTA does not let custos-milter %s",
                         (need & ~c->acts & SMFIF_QUARANTINE) ? "hold the message"
                                                              : "change its recipients");
    }

    /* tags: in the findings' order, above X-Custos-Archive */
    for (guint i = mdec_nitems(dec); ok && i-- > 0;) {
        const struct pol_item *it = g_ptr_array_index(dec->v.items, i);
        char *fv;
        if (it->action < CFG_ACT_TAG)
            continue;
        fv = pol_flag_value(it);
        v = hval(m, fv);
        ok = mlt_smfi->insheader(ctx, 0, POL_FLAG_HEADER, v) == MI_SUCCESS;
        g_free(fv);
        g_free(v);
    }
    for (size_t i = 0; ok && i < m->n_rcpts; i++)
        if (in_list(dec->v.strip, m->rcpts[i])) {
            ok = mlt_smfi->delrcpt(ctx, m->rcpts[i]) == MI_SUCCESS;
            g_ptr_array_add(notes, g_strdup_printf("%s: stripped recipient <%s>", qid_of(c),
                                                   m->rcpts[i]));
        }
    for (guint i = 0; ok && dec->routes != NULL && i < dec->routes->len; i++) {
        const struct rt_route *r = g_ptr_array_index(dec->routes, i);
        int have = in_list(added, r->to);

        for (size_t j = 0; !have && j < m->n_rcpts; j++)
            have = !rcpt_removed(m, dec, j) && g_ascii_strcasecmp(m->rcpts[j], r->to) == 0;
        ok = mlt_smfi->delrcpt(ctx, m->rcpts[r->rcpt]) == MI_SUCCESS;
        if (ok && !have) {
            char *a = g_strconcat("<", r->to, ">", NULL);
            ok = mlt_smfi->addrcpt(ctx, a) == MI_SUCCESS;
            g_free(a);
            g_ptr_array_add(added, g_strdup(r->to));
        }
        if (ok) {
            v = hval(m, r->leaver);
            ok = mlt_smfi->insheader(ctx, 0, RT_HEADER, v) == MI_SUCCESS;
            g_free(v);
            g_ptr_array_add(notes, g_strdup_printf("%s: routed: <%s> (departed) to <%s>",
                                                   qid_of(c), m->rcpts[r->rcpt], r->to));
        }
    }
    if (ok && dec->subject != NULL) {
        v = hval(m, dec->subject);
        ok = mlt_smfi->chgheader(ctx, "Subject", 1, v) == MI_SUCCESS;
        g_free(v);
    }
    if (ok && mdec_nitems(dec) > 0 && dec->v.action == CFG_ACT_HOLD) {
        const struct pol_item *it = g_ptr_array_index(dec->v.items, 0);
        v = g_strdup_printf("custos: %s (%s)", it->category, it->rule);
        ok = mlt_smfi->quarantine(ctx, v) == MI_SUCCESS;
        g_free(v);
        if (ok)
            g_ptr_array_add(notes, g_strdup_printf("%s: held (Postfix hold queue; postsuper -H "
                                                   "releases it)", qid_of(c)));
    }
    g_ptr_array_free(added, TRUE);
    if (!ok)
        return cus_error(error_r, "the MTA refused a change of the message (tags, recipients, "
                         "subject or hold)");
    return 0;
}

struct mnotice_claim {
    char *key, *qid, *path;     /* path: the record it was claimed in */
    gint64 at;
};

/* The outbox is done with a notice: one that went confirms its claim, one
 * that did not frees it (a claim neither confirmed nor freed, the milter
 * killed meanwhile, is gone when the record is opened again). */
static void notice_done(int ok, void *data)
{
    struct mnotice_claim *cl = data;
    char *err = NULL;

    g_mutex_lock(&mlt_once_lock);
    if (mlt_once != NULL && strcmp(cl->path, mlt_once_path) == 0 &&
        (ok ? once_confirm(mlt_once, cl->key, cl->at, &err)
            : once_release(mlt_once, cl->key, cl->at, &err)) < 0) {
        log_error("%s: %s", cl->qid, err);
        g_free(err);
    }
    g_mutex_unlock(&mlt_once_lock);
    g_free(cl->key);
    g_free(cl->qid);
    g_free(cl->path);
    g_free(cl);
}

/* The record of notices in cfg's state_dir: opened on first use, and
 * opened anew (the old one closed) when a reload moved state_dir; NULL
 * (logged) if it cannot be. mlt_once_lock held. */
static struct once *once_current(const struct cfg *cfg, const char *qid)
{
    char *dir = cfg_state_dir(cfg), *path = g_build_filename(dir, "route-notices.db", NULL);
    char *err = NULL;

    if (mlt_once != NULL && strcmp(path, mlt_once_path) != 0) {
        log_info("%s: [milter] state_dir is now %s: route notices recorded there", qid, dir);
        once_close(&mlt_once);
        g_clear_pointer(&mlt_once_path, g_free);
    }
    if (mlt_once == NULL) {
        if (cus_mkdirs(dir, 0750, &err) < 0 || once_open(path, &mlt_once, &err) < 0) {
            log_error("%s: [milter] state_dir: %s: route notices are not sent", qid, err);
            g_free(err);
        } else {
            mlt_once_path = path;
            path = NULL;
        }
    }
    g_free(dir);
    g_free(path);
    return mlt_once;
}

/* The mail that goes with an accepted or refused message: the summary to
 * compliance (notify and above), the notices to the sender (accepted). */
static void mmsg_mail(struct mconn *c, struct mmsg *m, struct mdec *dec, const char *id)
{
    const struct cfg *cfg = m->conf->cfg;
    char *text, *err = NULL;

    if (mdec_nitems(dec) > 0 && dec->v.action >= CFG_ACT_NOTIFY) {
        text = ntf_summary(cfg, qid_of(c), id, m->time, c->client, m->sender, m->rcpts, &dec->v);
        if (text != NULL)
            ntf_queue(cfg->mlt_sendmail, qid_of(c), cfg->pol_notify_from, cfg->pol_compliance,
                      text, NULL, NULL);
        else
            log_warn("%s: no summary mailed: [policy] compliance is not set", qid_of(c));
    }
    if (dec->v.action == CFG_ACT_REJECT)
        return;
    for (guint i = 0; dec->notices != NULL && i < dec->notices->len; i++) {
        struct mnotice *n = g_ptr_array_index(dec->notices, i);
        gint64 now = g_get_real_time() / G_USEC_PER_SEC;
        struct mnotice_claim *cl;
        char *path = NULL;
        int rc = -2;

        g_mutex_lock(&mlt_once_lock);
        if (once_current(cfg, qid_of(c)) != NULL) {
            rc = once_claim(mlt_once, n->key, now, (gint64)cfg->rt_notice_days * 86400, &err);
            path = g_strdup(mlt_once_path);
        }
        g_mutex_unlock(&mlt_once_lock);
        if (rc == -2)
            break;
        if (rc < 0) {
            g_free(path);
            log_error("%s: %s: no notice to <%s>", qid_of(c), err, n->to);
            g_free(err);
            err = NULL;
            continue;
        }
        if (rc == 0) {
            log_info("%s: no notice to <%s>: one went within %d days ([route] notice_days)",
                     qid_of(c), n->to, cfg->rt_notice_days);
            g_free(path);
            continue;
        }
        cl = g_new0(struct mnotice_claim, 1);
        cl->key = g_strdup(n->key);
        cl->qid = g_strdup(qid_of(c));
        cl->path = path;
        cl->at = now;
        ntf_queue(cfg->mlt_sendmail, qid_of(c), n->from, n->to, n->text, notice_done, cl);
        n->text = NULL;
    }
}

/* Refuse a journalled message: 550 5.7.1, English then Chinese. */
static sfsistat mmsg_reject(SMFICTX *ctx, struct mconn *c, struct mdec *dec)
{
    char *en = NULL, *zh = NULL;

    pol_reject_text(c->msg->conf->cfg, &dec->v, &en, &zh);
    if (mlt_smfi->setmlreply(ctx, "550", "5.7.1", en, zh) != MI_SUCCESS)
        log_warn("%s: the MTA refused the reply text: answered with its own 550",
                 qid_of(c));
    log_info("%s: rejected: 550 5.7.1 %s", qid_of(c), en);
    g_free(en);
    g_free(zh);
    return SMFIS_REJECT;
}

/* Every change of the message asked of the MTA, before it is journalled:
 * our headers that came with it removed (the archived copy keeps them, as
 * received), X-Custos-Archive added, then the verdict's (mmsg_apply). */
static int mmsg_changes(SMFICTX *ctx, struct mconn *c, struct mmsg *m, const struct mdec *dec,
                        const char *id, GPtrArray *notes, char **error_r)
{
    const struct {
        char *name;             /* as chgheader takes it */
        int n;
    } forged[] = { { MLT_HEADER, m->forged }, { POL_FLAG_HEADER, m->forged_flag },
                   { RT_HEADER, m->forged_orig } };
    char *v;
    int ok;

    /* each the last first, so that the others keep their index */
    for (size_t k = 0; k < G_N_ELEMENTS(forged); k++)
        for (int i = forged[k].n; i >= 1; i--)
            if (mlt_smfi->chgheader(ctx, forged[k].name, i, NULL) != MI_SUCCESS)
                log_warn("%s: could not remove a forged %s header", qid_of(c), forged[k].name);
    v = hval(m, id);
    ok = mlt_smfi->insheader(ctx, 0, MLT_HEADER, v) == MI_SUCCESS;
    g_free(v);
    if (!ok)    /* the MTA is gone or refused: it will not accept the message */
        return cus_error(error_r, "the MTA refused the %s header", MLT_HEADER);
    return mmsg_apply(ctx, c, m, dec, notes, error_r);
}

sfsistat mlfi_eom(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    struct mmsg *m = c != NULL ? c->msg : NULL;
    struct spool_entry env = { .source = "milter" };
    struct mdec dec = { 0 };
    char id[SPOOL_ID_MAX + 1], sha[CUS_SHA256_HEX], *err = NULL;
    const char *what = "cannot journal the message";
    GPtrArray *notes = NULL;
    guint64 size;
    sfsistat r;
    int rc, reject;

    if (m == NULL) {
        if (c != NULL && c->failed != NULL)
            return mlt_conn_failed(ctx, c);
        return mlt_tempfail(ctx, c, "end of message", "no MAIL FROM before it");
    }
    if (m->failed != NULL)
        return mlt_tempfail(ctx, c, "cannot journal the message", m->failed);
    qid_update(ctx, m);
    if (mmsg_writer(c, &err) < 0)
        goto fail;
    mmsg_inspect(c, m, &dec);
    if (!dec.keep) {
        log_info("%s: not archived: no one of [archive] departments in it, nothing flagged "
                 "(scope = departments)", qid_of(c));
        mdec_clear(&dec);
        mmsg_free(&c->msg);
        return SMFIS_CONTINUE;
    }
    notes = g_ptr_array_new_with_free_func(g_free);
    reject = mdec_nitems(&dec) > 0 && dec.v.action == CFG_ACT_REJECT;
    g_strlcpy(id, spool_writer_id(m->w), sizeof(id));
    if (!reject && mmsg_changes(ctx, c, m, &dec, id, notes, &err) < 0) {
        /* Nothing journalled (the writer is dropped with the message): the
         * MTA will not take it, and the try that it takes is archived,
         * once. */
        what = "cannot pass the message";
        goto fail;
    }
    env.time = m->time;
    env.client = c->client;
    env.sender = m->sender;
    env.rcpts = m->rcpts;
    env.queue_id = m->qid;
    env.auth = m->auth;
    env.findings = mdec_findings(&dec, &env.n_findings);
    size = spool_writer_size(m->w);
    /* The last step of the message: the changes are asked for, and the
     * MTA makes them only if it takes the message, which it does only on
     * our CONTINUE, after this. */
    rc = spool_writer_commit(&m->w, &env, sha, &err);
    findings_free(env.findings, env.n_findings);
    if (rc < 0)
        goto fail;
    log_info("%s: archived as %s (size=%" G_GUINT64_FORMAT ", sha256=%.16s, from=<%s>, "
             "nrcpt=%zu%s%s%s%s)", qid_of(c), id, size, sha, m->sender,
             m->n_rcpts, m->auth != NULL ? ", sasl_username=" : "",
             m->auth != NULL ? m->auth : "", mdec_nitems(&dec) > 0 ? ", verdict=" : "",
             mdec_nitems(&dec) > 0 ? cfg_action_name(dec.v.action) : "");
    /* Journalled, findings and all: from here on the message may be taken
     * or refused. */
    if (reject) {
        mmsg_mail(c, m, &dec, id);
        r = mmsg_reject(ctx, c, &dec);
        mdec_clear(&dec);
        mmsg_free(&c->msg);
        g_ptr_array_free(notes, TRUE);
        return r;
    }
    for (guint i = 0; i < notes->len; i++)
        log_info("%s", (const char *)g_ptr_array_index(notes, i));
    g_ptr_array_free(notes, TRUE);
    mmsg_mail(c, m, &dec, id);
    mdec_clear(&dec);
    mmsg_free(&c->msg);
    return SMFIS_CONTINUE;
fail:
    mdec_clear(&dec);
    if (notes != NULL)
        g_ptr_array_free(notes, TRUE);
    r = mlt_tempfail(ctx, c, what, err);
    g_free(err);
    return r;
}

sfsistat mlfi_abort(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);

    if (c != NULL && c->msg != NULL) {
        log_debug("%s: aborted by the MTA", qid_of(c));
        mmsg_free(&c->msg);
    }
    if (c != NULL) {
        g_free(c->failed);
        c->failed = NULL;
    }
    return SMFIS_CONTINUE;
}

sfsistat mlfi_close(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);

    if (c == NULL)
        return SMFIS_CONTINUE;
    if (c->msg != NULL)
        log_debug("%s: connection closed during the message", qid_of(c));
    mmsg_free(&c->msg);
    g_free(c->client);
    g_free(c->failed);
    g_free(c);
    mlt_smfi->setpriv(ctx, NULL);
    g_atomic_int_add(&mlt_nconn, -1);
    return SMFIS_CONTINUE;
}

struct smfiDesc *mlt_desc(void)
{
    static struct smfiDesc desc = {
        .xxfi_name = "custos-milter",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = MLT_ACTIONS,
        .xxfi_connect = mlfi_connect,
        .xxfi_envfrom = mlfi_envfrom,
        .xxfi_envrcpt = mlfi_envrcpt,
        .xxfi_header = mlfi_header,
        .xxfi_eoh = mlfi_eoh,
        .xxfi_body = mlfi_body,
        .xxfi_eom = mlfi_eom,
        .xxfi_abort = mlfi_abort,
        .xxfi_close = mlfi_close,
        .xxfi_data = mlfi_data,
        .xxfi_negotiate = mlfi_negotiate,
    };

    return &desc;
}
