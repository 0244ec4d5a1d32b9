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
#include "custos/detect.h"
#include "custos/directory.h"
#include "custos/log.h"
#include "custos/milter.h"
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
    struct spool_writer *w;     /* opened at DATA (or the first header) */
    int forged;                 /* X-Custos-Archive headers it came with */
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
    char *failed;               /* a step with no reply failed and no message
                                 * holds it: why (answered at DATA or EOM) */
    struct mmsg *msg;
};

static GMutex mlt_lock;
static struct mlt_conf *mlt_cur;
static int mlt_noreply;         /* ask for no replies but at DATA and EOM */
static const struct mlt_smfi *mlt_smfi;
static gint mlt_nconn, mlt_nmsg, mlt_stopping;

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
    guint removed = 0;

    if (spool_init(c->spool, &err) < 0 || spool_sweep_tmp(c->spool, 0, &removed, &err) < 0) {
        log_error("NOQUEUE: spool %s: %s (every message gets 451 until it can be written)",
                  c->spool, err);
        g_free(err);
        return;
    }
    if (removed > 0)
        log_info("NOQUEUE: spool %s: removed %u unfinished entries of writers gone",
                 c->spool, removed);
}

int mlt_init(struct cfg *cfg, const struct mlt_smfi *smfi, char **error_r)
{
    if (mlt_cur != NULL)
        return cus_error(error_r, "custos-milter: initialised twice");
    mlt_smfi = smfi;
    /* Over a unix socket Postfix may send every step but DATA and end of
     * message without waiting for an answer (it buffers them and sends
     * them with the next step that is answered: connect, MAIL and RCPT go
     * with DATA, headers, body and EOH with EOM). Not over TCP: the MTA's
     * writes would then follow each other, and its Nagle would wait for
     * our delayed ACK. */
    mlt_noreply = cfg->mlt_socket != NULL && !g_str_has_prefix(cfg->mlt_socket, "inet");
    mlt_cur = conf_new(cfg);
    spool_check(mlt_cur);
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
    return spool_writer_open(m->conf->spool, &m->w, error_r);
}

static int mmsg_write(struct mconn *c, const void *buf, size_t len, char **error_r)
{
    if (mmsg_writer(c, error_r) < 0)
        return -1;
    return spool_writer_write(c->msg->w, buf, len, error_r);
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

    if ((f0 & actions) != actions) {
        log_error("NOQUEUE: the MTA does not offer adding and changing headers: "
                  "custos-milter cannot tag what it archived");
        return SMFIS_REJECT;    /* libmilter: refuse the connection */
    }
    *pf0 = actions;
    /* every step is wanted but HELO and unknown commands; header values
     * with their leading space, so the archived copy is exact */
    *pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN | SMFIP_NOHELO);
    if (mlt_noreply) {
        const unsigned long env = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT;
        *pf1 |= f1 & (SMFIP_NR_HDR | SMFIP_NR_BODY | SMFIP_NR_EOH);
        if ((f1 & env) == env)
            *pf1 |= env;
    }
    *pf2 = *pf3 = 0;
    {
        /* negotiate comes before connect: the connection's state starts here */
        struct mconn *c = conn_get(ctx);
        if (c == NULL)
            return SMFIS_TEMPFAIL;
        c->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
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
    if (g_ascii_strcasecmp(name, MLT_HEADER) == 0)
        m->forged++;
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

/* The message as it streamed into the spool, parsed once for the detectors:
 * GMime's tree (bodies stay in the file, read on demand) and the message
 * model walked from it within [limits]. 0, or -1 and nothing set. */
static int mmsg_parse(struct mmsg *m, struct det_message *dm, char **error_r)
{
    struct msg_limits lim;
    GMimeMessage *mime;
    GMimeStream *st;
    GMimeParser *p;
    int fd;

    if (spool_writer_flush(m->w, error_r) < 0)
        return -1;
    if ((fd = open(spool_writer_path(m->w), O_RDONLY | O_CLOEXEC)) < 0)
        return cus_error_errno(error_r, "open(%s) failed", spool_writer_path(m->w));
    msg_init();
    st = g_mime_stream_fs_new_with_bounds(fd, SPOOL_STREAM_OFFSET, -1);    /* owns fd */
    p = g_mime_parser_new_with_stream(st);
    g_mime_parser_set_persist_stream(p, TRUE);
    mime = g_mime_parser_construct_message(p, msg_parser_options());
    g_object_unref(p);
    g_object_unref(st);
    if (mime == NULL)
        return cus_error(error_r, "not a message GMime can parse");
    arc_limits_from_cfg(m->conf->cfg, &lim);
    if (msg_from_gmime(mime, &lim, &dm->msg, error_r) < 0) {
        g_object_unref(mime);
        return -1;
    }
    dm->mime = mime;
    return 0;
}

/*
 * Classify and run the detectors: 1 archive it, 0 not (scope =
 * departments and neither sales mail nor flagged). Without the directory
 * nothing is classified and everything is archived. A message that cannot
 * be parsed gets only the detectors that need no message.
 */
static int mmsg_inspect(struct mconn *c, struct mmsg *m)
{
    const struct cfg *cfg = m->conf->cfg;
    struct det_envelope env = { .queue_id = qid_of(c), .client = c->client, .auth = m->auth,
                                .cfg = cfg };
    struct dir *d = dir_take(m->conf, qid_of(c));
    struct det_message dm = { 0 };
    GPtrArray *findings = NULL;
    char *err = NULL;
    int keep = 1, parsed = 0;

    if (d == NULL)
        return 1;
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
    keep = cfg->arc_scope == CFG_SCOPE_ALL || env.sales ||
           (findings != NULL && findings->len > 0);
out:
    g_free(err);
    if (findings != NULL)
        g_ptr_array_free(findings, TRUE);
    msg_free(&dm.msg);
    if (dm.mime != NULL)
        g_object_unref(dm.mime);
    det_envelope_clear(&env);
    dir_give(m->conf, d);
    return keep;
}

sfsistat mlfi_eom(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    struct mmsg *m = c != NULL ? c->msg : NULL;
    struct spool_entry env = { .source = "milter" };
    char id[SPOOL_ID_MAX + 2], sha[CUS_SHA256_HEX], *err = NULL;
    guint64 size;
    sfsistat r;

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
    if (!mmsg_inspect(c, m)) {
        log_info("%s: not archived: no one of [archive] departments in it, nothing flagged "
                 "(scope = departments)", qid_of(c));
        mmsg_free(&c->msg);
        return SMFIS_CONTINUE;
    }
    env.time = m->time;
    env.client = c->client;
    env.sender = m->sender;
    env.rcpts = m->rcpts;
    env.queue_id = m->qid;
    /* with SMFIP_HDR_LEADSPC the value we add carries its own space */
    g_snprintf(id, sizeof(id), "%s%s", m->leadspc ? " " : "", spool_writer_id(m->w));
    size = spool_writer_size(m->w);
    if (spool_writer_commit(&m->w, &env, sha, &err) < 0)
        goto fail;
    /* Journalled: from here on the message may be accepted. A header of the
     * same name that came with it is not ours: removed (the archived copy
     * keeps it, as received). */
    for (int i = m->forged; i >= 1; i--)
        if (mlt_smfi->chgheader(ctx, MLT_HEADER, i, NULL) != MI_SUCCESS)
            log_warn("%s: could not remove a forged %s header", qid_of(c), MLT_HEADER);
    if (mlt_smfi->insheader(ctx, 0, MLT_HEADER, id) != MI_SUCCESS) {
        /* the MTA is gone or refused: it will not accept the message */
        err = g_strdup_printf("archived as %s, but the MTA refused the %s header",
                              g_strstrip(id), MLT_HEADER);
        goto fail;
    }
    log_info("%s: archived as %s (size=%" G_GUINT64_FORMAT ", sha256=%.16s, from=<%s>, "
             "nrcpt=%zu%s%s)", qid_of(c), g_strstrip(id), size, sha, m->sender, m->n_rcpts,
             m->auth != NULL ? ", sasl_username=" : "", m->auth != NULL ? m->auth : "");
    mmsg_free(&c->msg);
    return SMFIS_CONTINUE;
fail:
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
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
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
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
