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
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <glib.h>
#include "custos/log.h"
#include "custos/milter.h"
#include "custos/spool.h"
#include "custos/util.h"

/* The configuration messages use; swapped whole on reload. */
struct mlt_conf {
    gint refs;
    struct cfg *cfg;
    char *spool;
};

struct mmsg {
    struct mlt_conf *conf;      /* a reference, for the message's life */
    char *sender, *auth, *qid;
    char **rcpts;               /* NULL-terminated */
    size_t n_rcpts, cap_rcpts;
    struct spool_writer *w;     /* opened at DATA (or the first header) */
    int forged;                 /* X-Custos-Archive headers it came with */
    int leadspc;                /* header values keep their leading space */
    gint64 time;
};

struct mconn {
    char *client;               /* "ADDR [HOSTNAME]" */
    char *helo;
    int leadspc;
    struct mmsg *msg;
};

static GMutex mlt_lock;
static struct mlt_conf *mlt_cur;
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
    return c;
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
    if (c->cfg->arc_scope != CFG_SCOPE_ALL)
        log_warn("NOQUEUE: [archive] scope = departments needs the directory, which this "
                 "custos-milter does not read yet: archiving every message");
}

int mlt_init(struct cfg *cfg, const struct mlt_smfi *smfi, char **error_r)
{
    if (mlt_cur != NULL)
        return cus_error(error_r, "custos-milter: initialised twice");
    mlt_smfi = smfi;
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

static void msg_free(struct mmsg **mp)
{
    struct mmsg *m = *mp;

    if (m == NULL)
        return;
    spool_writer_abort(&m->w);
    for (size_t i = 0; i < m->n_rcpts; i++)
        g_free(m->rcpts[i]);
    g_free(m->rcpts);
    g_free(m->sender);
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
    if (c != NULL)
        msg_free(&c->msg);
    return SMFIS_TEMPFAIL;
}

/* The message's writer, opened on first use. */
static int msg_writer(struct mconn *c, char **error_r)
{
    struct mmsg *m = c->msg;

    if (m->w != NULL)
        return 0;
    return spool_writer_open(m->conf->spool, &m->w, error_r);
}

static int msg_write(struct mconn *c, const void *buf, size_t len, char **error_r)
{
    if (msg_writer(c, error_r) < 0)
        return -1;
    return spool_writer_write(c->msg->w, buf, len, error_r);
}

/* ---- callbacks ------------------------------------------------------------ */

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
    /* every step is wanted (no SMFIP_NO*), except unknown commands; header
     * values with their leading space, so the archived copy is exact */
    *pf1 = (f1 & SMFIP_HDR_LEADSPC) | (f1 & SMFIP_NOUNKNOWN);
    *pf2 = *pf3 = 0;
    {
        struct mconn *c = conn_of(ctx);
        if (c != NULL)
            c->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
        else {
            /* negotiate comes before connect: remember it for connect */
            c = g_try_new0(struct mconn, 1);
            if (c == NULL)
                return SMFIS_TEMPFAIL;
            c->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
            if (mlt_smfi->setpriv(ctx, c) != MI_SUCCESS) {
                g_free(c);
                return SMFIS_TEMPFAIL;
            }
            g_atomic_int_inc(&mlt_nconn);
        }
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
        return mlt_tempfail(ctx, c, "connect", "out of memory");
    sprintf(c->client, "%s%s[%s]", addr, *addr ? " " : "", hostname ? hostname : "");
    log_debug("NOQUEUE: connect from %s", c->client);
    return SMFIS_CONTINUE;
}

sfsistat mlfi_helo(SMFICTX *ctx, char *helo)
{
    struct mconn *c = conn_get(ctx);

    if (c == NULL)
        return mlt_tempfail(ctx, NULL, "helo", "out of memory");
    g_free(c->helo);
    c->helo = try_strdup(helo != NULL ? helo : "");
    return SMFIS_CONTINUE;
}

sfsistat mlfi_envfrom(SMFICTX *ctx, char **argv)
{
    struct mconn *c = conn_get(ctx);
    struct mmsg *m;
    const char *auth;

    if (c == NULL)
        return mlt_tempfail(ctx, NULL, "MAIL FROM", "out of memory");
    /* a message before this one on the connection that was not finished */
    msg_free(&c->msg);
    if (g_atomic_int_get(&mlt_stopping)) {
        log_info("NOQUEUE: MAIL FROM while stopping: answered 421 4.3.2");
        mlt_smfi->setreply(ctx, "421", "4.3.2", "custos: shutting down, try again later");
        return SMFIS_TEMPFAIL;
    }
    if ((m = g_try_new0(struct mmsg, 1)) == NULL)
        return mlt_tempfail(ctx, c, "MAIL FROM", "out of memory");
    g_atomic_int_inc(&mlt_nmsg);
    c->msg = m;
    m->time = g_get_real_time() / G_USEC_PER_SEC;
    m->leadspc = c->leadspc;
    if ((m->conf = conf_get()) == NULL)
        return mlt_tempfail(ctx, c, "MAIL FROM", "custos-milter is stopping");
    m->sender = try_addr(argv != NULL ? argv[0] : NULL);
    auth = mlt_smfi->getsymval(ctx, "{auth_authen}");
    m->auth = auth != NULL ? try_strdup(auth) : NULL;
    if (m->sender == NULL || (auth != NULL && m->auth == NULL))
        return mlt_tempfail(ctx, c, "MAIL FROM", "out of memory");
    qid_update(ctx, m);
    return SMFIS_CONTINUE;
}

sfsistat mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
    struct mconn *c = conn_of(ctx);
    struct mmsg *m = c != NULL ? c->msg : NULL;
    char *r;

    if (m == NULL)
        return mlt_tempfail(ctx, c, "RCPT TO", "no MAIL FROM before it");
    if (m->n_rcpts + 1 >= m->cap_rcpts) {
        size_t cap = m->cap_rcpts ? 2 * m->cap_rcpts : 8;
        char **n = g_try_realloc(m->rcpts, cap * sizeof(*n));
        if (n == NULL)
            return mlt_tempfail(ctx, c, "RCPT TO", "out of memory");
        m->rcpts = n;
        m->cap_rcpts = cap;
    }
    if ((r = try_addr(argv != NULL ? argv[0] : NULL)) == NULL)
        return mlt_tempfail(ctx, c, "RCPT TO", "out of memory");
    m->rcpts[m->n_rcpts++] = r;
    m->rcpts[m->n_rcpts] = NULL;
    return SMFIS_CONTINUE;
}

/* DATA: the spool entry is started here, so a spool that cannot be written
 * is answered before the client sends the message. */
sfsistat mlfi_data(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    char *err = NULL;
    sfsistat r;

    if (c == NULL || c->msg == NULL)
        return mlt_tempfail(ctx, c, "DATA", "no MAIL FROM before it");
    qid_update(ctx, c->msg);
    if (msg_writer(c, &err) == 0)
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

    if (m == NULL)
        return mlt_tempfail(ctx, c, "header", "no MAIL FROM before it");
    if (g_ascii_strcasecmp(name, MLT_HEADER) == 0)
        m->forged++;
    if (msg_write(c, name, strlen(name), &err) < 0 ||
        msg_write(c, m->leadspc ? ":" : ": ", m->leadspc ? 1 : 2, &err) < 0)
        goto fail;
    /* a folded value: its line breaks as CRLF */
    while ((p = strchr(v, '\n')) != NULL) {
        size_t n = (size_t)(p - v);
        if (n > 0 && v[n - 1] == '\r')
            n--;
        if (msg_write(c, v, n, &err) < 0 || msg_write(c, "\r\n", 2, &err) < 0)
            goto fail;
        v = p + 1;
    }
    if (msg_write(c, v, strlen(v), &err) < 0 || msg_write(c, "\r\n", 2, &err) < 0)
        goto fail;
    return SMFIS_CONTINUE;
fail:
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

sfsistat mlfi_eoh(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    char *err = NULL;
    sfsistat r;

    if (c == NULL || c->msg == NULL)
        return mlt_tempfail(ctx, c, "end of header", "no MAIL FROM before it");
    if (msg_write(c, "\r\n", 2, &err) == 0)
        return SMFIS_CONTINUE;
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

sfsistat mlfi_body(SMFICTX *ctx, unsigned char *buf, size_t len)
{
    struct mconn *c = conn_of(ctx);
    char *err = NULL;
    sfsistat r;

    if (c == NULL || c->msg == NULL)
        return mlt_tempfail(ctx, c, "body", "no MAIL FROM before it");
    if (msg_write(c, buf, len, &err) == 0)
        return SMFIS_CONTINUE;
    r = mlt_tempfail(ctx, c, "cannot journal the message", err);
    g_free(err);
    return r;
}

sfsistat mlfi_eom(SMFICTX *ctx)
{
    struct mconn *c = conn_of(ctx);
    struct mmsg *m = c != NULL ? c->msg : NULL;
    struct spool_entry env = { .source = "milter" };
    char id[SPOOL_ID_MAX + 2], sha[CUS_SHA256_HEX], *err = NULL;
    guint64 size;
    sfsistat r;

    if (m == NULL)
        return mlt_tempfail(ctx, c, "end of message", "no MAIL FROM before it");
    qid_update(ctx, m);
    if (msg_writer(c, &err) < 0)
        goto fail;
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
    msg_free(&c->msg);
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
        msg_free(&c->msg);
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
    msg_free(&c->msg);
    g_free(c->client);
    g_free(c->helo);
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
        .xxfi_helo = mlfi_helo,
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
