/*
 * spool.c - the durable spool between custos-milter and the archive
 *
 * Writer: SPOOL/tmp/ID, written, fsync'd, closed, renamed to SPOOL/new/ID,
 * then SPOOL/new/ fsync'd; on any error the temp file (or the renamed
 * entry, if only the directory fsync failed) is removed. The streaming
 * writer does the same with format 2: the message first, through a small
 * buffer and an incremental SHA-256, the envelope at commit. Reader: the
 * whole file in memory, parsed strictly (spool.h), either format; the
 * parser never reads past the buffer it is given and names the line of
 * every error. Failed entries are renamed, never deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <openssl/evp.h>
#include "custos/spool.h"

#define SPOOL_MODE_DIR 0770
#define SPOOL_MODE_FILE 0640
#define SPOOL_WBUF (64 * 1024)       /* the streaming writer's buffer */
#define SPOOL_LAST_MAX 32            /* "envelope " and up to 19 digits, LF */

enum { K_TIME, K_CLIENT, K_SENDER, K_RCPT, K_QUEUE_ID, K_SOURCE, K_AUTH, K_FINDING,
       K_SIZE, K_SHA256, K_N };

enum { ONE, OPT, MANY };    /* exactly once; at most once; any number of times */

static const struct {
    const char *name;
    int how;
} spool_keys[K_N] = {
    [K_TIME] = { "time", ONE },         [K_CLIENT] = { "client", ONE },
    [K_SENDER] = { "sender", ONE },     [K_RCPT] = { "rcpt", MANY },
    [K_QUEUE_ID] = { "queue-id", ONE }, [K_SOURCE] = { "source", ONE },
    [K_AUTH] = { "auth", OPT },         [K_FINDING] = { "finding", MANY },
    [K_SIZE] = { "size", ONE },         [K_SHA256] = { "sha256", ONE },
};

static char *sub_path(const char *spool_dir, const char *sub, const char *name)
{
    return g_build_filename(spool_dir, sub, name, NULL);
}

/* 1..max decimal digits: an unsigned number. */
static int digits(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int spool_init(const char *spool_dir, char **error_r)
{
    static const char *subs[] = { "tmp", "new", "failed", "journal" };
    struct stat top;

    if (cus_mkdirs(spool_dir, SPOOL_MODE_DIR, error_r) < 0)
        return -1;
    if (stat(spool_dir, &top) < 0)
        return cus_error_errno(error_r, "stat(%s) failed", spool_dir);
    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *p = g_build_filename(spool_dir, subs[i], NULL);
        int ret = 0;

        if (mkdir(p, SPOOL_MODE_DIR) < 0) {
            int e = errno;
            if (!g_file_test(p, G_FILE_TEST_IS_DIR)) {      /* else there already */
                errno = e;
                ret = cus_error_errno(error_r, "mkdir(%s) failed", p);
            }
        } else if (geteuid() == 0 && (top.st_uid != 0 || top.st_gid != 0) &&
                   chown(p, top.st_uid, top.st_gid) < 0) {
            /* made by root (ingest run by hand, say) in the spool of
             * another user: that user's, as the spool is, else
             * custos-milter could not write it */
            ret = cus_error_errno(error_r, "chown(%s) failed", p);
        }
        g_free(p);
        if (ret < 0)
            return -1;
    }
    return 0;
}

static int token_valid(const char *s, size_t len)
{
    return len > 0 && spool_token_valid_n(s, len);
}

void spool_finding_free(struct spool_finding **fp)
{
    struct spool_finding *f = *fp;

    if (f == NULL)
        return;
    g_free(f->category);
    g_free(f->rule);
    g_free(f->action);
    g_free(f->evidence);
    g_free(f);
    *fp = NULL;
}

/* The writer's check of what it cannot repair: every finding's tokens. */
static int check_findings(const struct spool_entry *e, char **error_r)
{
    for (size_t i = 0; i < e->n_findings; i++) {
        const struct spool_finding *f = e->findings[i];
        const char *const what[] = { "category", "rule", "action" };
        const char *const v[] = { f->category, f->rule, f->action };

        for (int k = 0; k < 3; k++)
            if (!spool_token_valid(v[k])) {
                char *esc = v[k] != NULL ? g_strescape(v[k], NULL) : NULL;
                cus_error(error_r, "spool: finding %zu: %s %s%s%s is not a token "
                          "(only a-z 0-9 . / _ -, at least one)", i + 1, what[k],
                          esc != NULL ? "\"" : "(none)", esc != NULL ? esc : "",
                          esc != NULL ? "\"" : "");
                g_free(esc);
                return -1;
            }
    }
    return 0;
}

/* Append text escaped (invalid UTF-8 repaired first). */
static void put_escaped(GString *h, const char *v)
{
    char *u = cus_utf8_repair(v != NULL ? v : "", v != NULL ? strlen(v) : 0);

    for (const char *p = u; *p != '\0'; p++) {
        switch (*p) {
        case '%': g_string_append(h, "%25"); break;
        case '\r': g_string_append(h, "%0D"); break;
        case '\n': g_string_append(h, "%0A"); break;
        default: g_string_append_c(h, *p);
        }
    }
    g_free(u);
}

/* Append a header line, the value escaped. */
static void put_value(GString *h, const char *key, const char *v)
{
    g_string_append(h, key);
    g_string_append_c(h, ' ');
    put_escaped(h, v);
    g_string_append_c(h, '\n');
}

/* The envelope lines, time .. sha256, in both formats. */
static void put_envelope(GString *h, const struct spool_entry *e, guint64 len, const char *hex)
{
    g_string_append_printf(h, "time %" G_GINT64_FORMAT "\n", e->time);
    put_value(h, "client", e->client);
    put_value(h, "sender", e->sender);
    for (int i = 0; e->rcpts != NULL && e->rcpts[i] != NULL; i++)
        put_value(h, "rcpt", e->rcpts[i]);
    put_value(h, "queue-id", e->queue_id);
    put_value(h, "source", e->source);
    if (e->auth != NULL && *e->auth != '\0')
        put_value(h, "auth", e->auth);
    for (size_t i = 0; i < e->n_findings; i++) {
        const struct spool_finding *f = e->findings[i];

        g_string_append_printf(h, "finding %s %s %s ", f->category, f->rule, f->action);
        put_escaped(h, f->evidence);
        g_string_append_c(h, '\n');
    }
    g_string_append_printf(h, "size %" G_GUINT64_FORMAT "\nsha256 %s\n", len, hex);
}

/* The header of a version-1 entry: magic, envelope, empty line; -1 when
 * it is over SPOOL_HEADER_MAX. */
static int put_header_v1(GString *h, const struct spool_entry *e, guint64 len, const char *hex,
                         char **error_r)
{
    g_string_append(h, SPOOL_MAGIC "\n");
    put_envelope(h, e, len, hex);
    g_string_append_c(h, '\n');
    if (h->len > SPOOL_HEADER_MAX)
        return cus_error(error_r, "spool: envelope of %zu bytes is over the limit of %d",
                         h->len, SPOOL_HEADER_MAX);
    return 0;
}

/*
 * Group commit of SPOOL/new/: a writer whose entry is renamed into new/
 * waits for an fsync of the directory that started after its rename. One
 * writer runs that fsync for every entry renamed before it started, the
 * others wait for it, so concurrent writers share directory syncs instead
 * of queueing one each. Rounds are numbered: a writer's round is the first
 * one to start after it took the lock (later than its rename). If a round
 * fails, its writers and every writer still waiting then fail: success is
 * never claimed for an entry whose directory sync did not succeed.
 */
struct dsync {
    GMutex lock;
    GCond done;
    guint64 started, finished;  /* rounds */
    guint64 failed;             /* the last round that failed, 0: none */
    int failed_errno;
    int running;
};

static GMutex dsync_lock;
static GHashTable *dsync_dirs;  /* directory path -> struct dsync * (kept: few) */
static guint64 dsync_rounds, dsync_entries;  /* statistics (dsync_lock) */

static struct dsync *dsync_of(const char *dir)
{
    struct dsync *d;

    g_mutex_lock(&dsync_lock);
    if (dsync_dirs == NULL)
        dsync_dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if ((d = g_hash_table_lookup(dsync_dirs, dir)) == NULL) {
        d = g_new0(struct dsync, 1);
        g_mutex_init(&d->lock);
        g_cond_init(&d->done);
        g_hash_table_insert(dsync_dirs, g_strdup(dir), d);
    }
    g_mutex_unlock(&dsync_lock);
    return d;
}

/* fsync(dir): 0, or -1 with errno. */
static int dsync_run(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;

    if (fd < 0)
        return -1;
    if (fsync(fd) < 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

/* Make what was renamed into dir so far durable (see above). */
static int dir_commit(const char *dir, char **error_r)
{
    struct dsync *d = dsync_of(dir);
    guint64 mine;
    int ret = 0;

    g_mutex_lock(&d->lock);
    mine = d->started + 1;
    while (d->finished < mine) {
        if (d->running) {
            g_cond_wait(&d->done, &d->lock);
            continue;
        }
        guint64 round = ++d->started;
        int r, e;

        d->running = 1;
        g_mutex_unlock(&d->lock);
        r = dsync_run(dir);
        e = errno;
        g_mutex_lock(&dsync_lock);
        dsync_rounds++;
        g_mutex_unlock(&dsync_lock);
        g_mutex_lock(&d->lock);
        d->running = 0;
        d->finished = round;
        if (r < 0) {
            d->failed = round;
            d->failed_errno = e;
        }
        g_cond_broadcast(&d->done);
    }
    if (d->failed >= mine) {
        errno = d->failed_errno;
        ret = cus_error_errno(error_r, "fsync(%s) failed", dir);
    }
    g_mutex_unlock(&d->lock);
    g_mutex_lock(&dsync_lock);
    dsync_entries++;
    g_mutex_unlock(&dsync_lock);
    return ret;
}

void spool_commit_stats(guint64 *entries_r, guint64 *syncs_r)
{
    g_mutex_lock(&dsync_lock);
    *entries_r = dsync_entries;
    *syncs_r = dsync_rounds;
    g_mutex_unlock(&dsync_lock);
}

/* A fresh id: TIME.USEC.PID.RANDOM16HEX. */
static void new_id(char id[SPOOL_ID_MAX + 1])
{
    gint64 now = g_get_real_time();

    g_snprintf(id, SPOOL_ID_MAX + 1, "%" G_GINT64_FORMAT ".%06d.%ld.%08x%08x",
               now / G_USEC_PER_SEC, (int)(now % G_USEC_PER_SEC), (long)getpid(),
               g_random_int(), g_random_int());
}

/* The temp file tmp/ID of an entry whose id is already chosen (O_EXCL). */
static int open_tmp_id(const char *spool_dir, const char *id, char **tmp_r, char **error_r)
{
    char *tmp = sub_path(spool_dir, "tmp", id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_MODE_FILE);

    if (fd < 0) {
        int e = errno;

        cus_error_errno(error_r, "open(%s) failed", tmp);
        g_free(tmp);
        errno = e;
        return -1;
    }
    *tmp_r = tmp;
    return fd;
}

/* A fresh entry's temp file in tmp/ (O_EXCL), its id and path: a new id
 * while one is taken, ten times at most. */
static int open_tmp(const char *spool_dir, char id[SPOOL_ID_MAX + 1], char **tmp_r,
                    char **error_r)
{
    for (int tries = 0;; tries++) {
        char *err = NULL;
        int fd;

        new_id(id);
        fd = open_tmp_id(spool_dir, id, tmp_r, &err);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST || tries >= 10) {
            if (error_r != NULL)
                *error_r = err;
            else
                g_free(err);
            return -1;
        }
        g_free(err);
    }
}

int spool_write(const char *spool_dir, const struct spool_entry *e, char *id_r,
                char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX], id[SPOOL_ID_MAX + 1];
    char *tmp = NULL, *dst = NULL, *newdir = NULL;
    const void *raw;
    gsize len = 0;
    GString *h;
    int fd = -1, ret = -1;

    raw = e->raw != NULL ? g_bytes_get_data(e->raw, &len) : NULL;
    if (raw == NULL)
        raw = "";
    if (e->time < 0)
        return cus_error(error_r, "spool: negative receive time %" G_GINT64_FORMAT, e->time);
    if (len > SPOOL_SIZE_MAX)
        return cus_error(error_r, "spool: message of %zu bytes is over the limit of %llu",
                         (size_t)len, (unsigned long long)SPOOL_SIZE_MAX);
    if (check_findings(e, error_r) < 0)
        return -1;
    cus_sha256(raw, len, sha);
    cus_hex(sha, CUS_SHA256_LEN, hex);
    h = g_string_sized_new(512);
    if (put_header_v1(h, e, len, hex, error_r) < 0)
        goto out;
    newdir = g_build_filename(spool_dir, "new", NULL);
    fd = open_tmp(spool_dir, id, &tmp, error_r);
    if (fd < 0)
        goto out;
    if (cus_write_all(fd, h->str, h->len) < 0 || cus_write_all(fd, raw, len) < 0) {
        cus_error_errno(error_r, "write(%s) failed", tmp);
        goto out_unlink;
    }
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s) failed", tmp);
        goto out_unlink;
    }
    if (close(fd) < 0) {
        fd = -1;
        cus_error_errno(error_r, "close(%s) failed", tmp);
        goto out_unlink;
    }
    fd = -1;
    dst = sub_path(spool_dir, "new", id);
    if (rename(tmp, dst) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", tmp, dst);
        goto out_unlink;
    }
    if (dir_commit(newdir, error_r) < 0) {
        /* Not promised durable: take it back, the caller will retry. */
        unlink(dst);
        goto out;
    }
    if (id_r != NULL)
        memcpy(id_r, id, sizeof(id));
    ret = 0;
    goto out;
out_unlink:
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    g_string_free(h, TRUE);
    g_free(tmp);
    g_free(dst);
    g_free(newdir);
    return ret;
}

/* ---- the journal (spool.h) ------------------------------------------------
 *
 * One per process. Appends are made under jn.lock at jn.written; an append
 * then waits for an fdatasync that covers its end, run by one of the
 * waiting appenders for everything written before it started (group
 * commit, as dir_commit). busy counts appends between their write and
 * their answer: a journal is handed to the reader (closed, renamed into
 * new/) only when none is, after `closing` stopped new appends to it (they
 * wait, then open the next journal). A failed write is cut off again; a
 * failed sync fails every append not yet synced (never claimed durable),
 * and the journal is retired, cut back to what was synced. The timer thread
 * closes a journal JOURNAL_LINGER_MS after it was opened.
 */
struct journal {
    GMutex lock;
    GCond cond;                 /* any change below */
    char *spool;                /* the open journal's spool; NULL: none */
    char id[SPOOL_ID_MAX + 1];
    char *path;                 /* SPOOL/journal/ID */
    int fd;
    guint64 written, synced;    /* bytes of the file */
    int syncing, busy, closing, broken;
    int fail_errno;             /* broken by a failed sync: appends past synced fail */
    gint64 opened;              /* monotonic, us */
    GThread *timer;
    int timer_stop;
};

static struct journal jn = { .fd = -1 };

/* How often a journal is made again when its .ID was removed before it was
 * locked (jn_open). */
#define JOURNAL_OPEN_TRIES 16

static void *jn_timer(void *arg);

/* Open a fresh journal in spool (jn.lock held). */
static int jn_open(const char *spool, char **error_r)
{
    char id[SPOOL_ID_MAX + 1], dot[SPOOL_ID_MAX + 2], *path, *tmp, *dir;
    GError *gerr = NULL;
    int fd;

    /* made as .ID, locked, then named: a journal under its id is always
     * locked by its writer while it may still grow (spool_recover). Between
     * the open and the lock, spool_recover() may take the .ID for one of a
     * writer gone and remove it: then it is made again under a new id. */
    path = tmp = NULL;
    dir = g_build_filename(spool, "journal", NULL);
    for (int tries = 0;; tries++) {
        struct stat st;

        g_free(path);
        g_free(tmp);
        new_id(id);
        g_snprintf(dot, sizeof(dot), ".%s", id);
        path = sub_path(spool, "journal", id);
        tmp = sub_path(spool, "journal", dot);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_MODE_FILE);
        if (fd < 0) {
            cus_error_errno(error_r, "open(%s) failed", tmp);
            goto fail;
        }
        /* waits only while spool_recover() looks at it */
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                cus_error_errno(error_r, "flock(%s) failed", tmp);
                goto fail;
            }
        }
        if (fstat(fd, &st) < 0) {
            cus_error_errno(error_r, "fstat(%s) failed", tmp);
            goto fail;
        }
        if (st.st_nlink > 0)
            break;
        close(fd);
        fd = -1;
        if (tries == JOURNAL_OPEN_TRIES) {
            cus_error(error_r, "spool: %s was removed %d times before it could be locked: "
                      "is something other than custos removing files in %s?", tmp,
                      tries + 1, dir);
            goto fail;
        }
    }
    /* the file and its name durable before any entry in it is promised */
    if (cus_write_all(fd, SPOOL_JOURNAL_MAGIC "\n", sizeof(SPOOL_JOURNAL_MAGIC)) < 0 ||
        fsync(fd) < 0) {
        cus_error_errno(error_r, "write(%s) failed", tmp);
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", tmp, path);
        goto fail;
    }
    if (cus_fsync_dir(dir, error_r) < 0)
        goto fail;
    if (jn.timer == NULL) {
        jn.timer_stop = 0;
        jn.timer = g_thread_try_new("spool-journal", jn_timer, NULL, &gerr);
        if (jn.timer == NULL) {
            cus_error(error_r, "spool: cannot start the journal's timer: %s", gerr->message);
            g_error_free(gerr);
            goto fail;
        }
    }
    g_free(dir);
    g_free(tmp);
    g_strlcpy(jn.id, id, sizeof(jn.id));
    jn.spool = g_strdup(spool);
    jn.path = path;
    jn.fd = fd;
    jn.written = jn.synced = sizeof(SPOOL_JOURNAL_MAGIC);
    jn.syncing = jn.busy = jn.closing = jn.broken = 0;
    jn.opened = g_get_monotonic_time();
    g_cond_broadcast(&jn.cond);         /* the timer: one to close in time */
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    unlink(path);
    g_free(path);
    g_free(tmp);
    g_free(dir);
    return -1;
}

/* Hand the open journal to the reader (jn.lock held, nothing in flight;
 * dropped meanwhile). What a broken journal has past its last sync was
 * never promised: cut off first. On error the journal stays in journal/
 * (spool_recover() moves it). */
static int jn_handoff(char **error_r)
{
    char *spool = jn.spool, *path = jn.path, *dst, *newdir;
    int fd = jn.fd, ret = 0;
    /* a failed sync: only what was synced before it stays */
    guint64 cut = jn.written != jn.synced ? jn.synced : 0, left = cut > 0 ? cut : jn.written;
    char id[SPOOL_ID_MAX + 1];

    g_strlcpy(id, jn.id, sizeof(id));
    jn.fd = -1;
    jn.spool = jn.path = NULL;
    jn.id[0] = '\0';
    g_mutex_unlock(&jn.lock);
    if (cut > 0 && ftruncate(fd, (off_t)cut) < 0 && ret == 0)
        ret = cus_error_errno(error_r, "ftruncate(%s) failed", path);
    if (left <= sizeof(SPOOL_JOURNAL_MAGIC)) {
        /* nothing in it but its magic (its messages were dropped: not archived, or
         * refused): nothing for ingest */
        if (unlink(path) < 0 && errno != ENOENT)
            ret = cus_error_errno(error_r, "unlink(%s) failed", path);
        close(fd);
    } else {
        dst = sub_path(spool, "new", id);
        newdir = g_build_filename(spool, "new", NULL);
        /* renamed while still locked, so spool_recover() never takes it too */
        if (ret == 0 && rename(path, dst) < 0)
            ret = cus_error_errno(error_r, "rename(%s, %s) failed", path, dst);
        close(fd);
        if (ret == 0)
            ret = dir_commit(newdir, error_r);
        g_free(newdir);
        g_free(dst);
    }
    g_free(path);
    g_free(spool);
    g_mutex_lock(&jn.lock);
    g_cond_broadcast(&jn.cond);
    return ret;
}

/* Close the open journal if it should be and can be (jn.lock held). */
static void jn_maybe_handoff(void)
{
    if (jn.fd >= 0 && (jn.closing || jn.broken) && jn.busy == 0 && !jn.syncing)
        jn_handoff(NULL);
}

/* One step of closing the open journal (jn.lock held): no new append goes
 * into it; it is handed over if none is in flight, else this waits for a
 * change. 0, or jn_handoff()'s -1. */
static int jn_close_step(char **error_r)
{
    jn.closing = 1;
    if (jn.busy == 0 && !jn.syncing)
        return jn_handoff(error_r);
    g_cond_wait(&jn.cond, &jn.lock);
    return 0;
}

static void *jn_timer(void *arg)
{
    (void)arg;
    g_mutex_lock(&jn.lock);
    while (!jn.timer_stop) {
        gint64 now = g_get_monotonic_time(), due = jn.opened + SPOOL_JOURNAL_LINGER_MS * 1000;

        if (jn.fd < 0) {
            g_cond_wait(&jn.cond, &jn.lock);
        } else if (now < due && !jn.closing) {
            g_cond_wait_until(&jn.cond, &jn.lock, due);
        } else {
            jn_close_step(NULL);    /* on error it stays for spool_recover() */
        }
    }
    g_mutex_unlock(&jn.lock);
    return NULL;
}

/* write all of iov at off. */
static int pwritev_all(int fd, struct iovec *iov, int n, off_t off)
{
    while (n > 0) {
        ssize_t r = pwritev(fd, iov, n, off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        off += r;
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* fdatasync(fd); for the tests, CUSTOS_FAULT=journal-sync makes it fail
 * with EIO, as a disk that lost the write. */
static int jn_sync(int fd)
{
    const char *f = getenv("CUSTOS_FAULT");

    if (f != NULL && strcmp(f, "journal-sync") == 0) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

/* Append entry ID (header h, then the message) to the journal of spool and
 * wait until it is synced. */
static int journal_append(const char *spool, const char *id, const GString *h,
                          const void *raw, size_t raw_len, char **error_r)
{
    char line[SPOOL_ID_MAX + 48];
    struct iovec iov[4];
    guint64 off, mine;
    int n, ret = 0;

    n = g_snprintf(line, sizeof(line), "entry %s %zu\n", id, h->len + raw_len);
    iov[0] = (struct iovec){ line, (size_t)n };
    iov[1] = (struct iovec){ h->str, h->len };
    iov[2] = (struct iovec){ (void *)raw, raw_len };
    iov[3] = (struct iovec){ "\n", 1 };
    g_mutex_lock(&jn.lock);
    /* not into a journal being closed, or of another spool (a reload) */
    while (jn.fd >= 0 && (jn.closing || jn.broken || strcmp(jn.spool, spool) != 0))
        jn_close_step(NULL);
    if (jn.fd < 0 && jn_open(spool, error_r) < 0) {
        g_mutex_unlock(&jn.lock);
        return -1;
    }
    off = jn.written;
    if (pwritev_all(jn.fd, iov, 4, (off_t)off) < 0) {
        ret = cus_error_errno(error_r, "write(%s) failed", jn.path);
        /* the torn entry cut off; if that fails, the journal goes as it
         * was synced */
        if (ftruncate(jn.fd, (off_t)off) < 0)
            jn.broken = 1;
        jn_maybe_handoff();
        g_mutex_unlock(&jn.lock);
        return ret;
    }
    jn.written = mine = off + (guint64)n + h->len + raw_len + 1;
    jn.busy++;
    while (jn.synced < mine && !jn.broken) {
        if (jn.syncing) {
            g_cond_wait(&jn.cond, &jn.lock);
            continue;
        }
        guint64 target = jn.written;
        int fd = jn.fd, r, e;

        jn.syncing = 1;
        g_mutex_unlock(&jn.lock);
        r = jn_sync(fd);
        e = errno;
        g_mutex_lock(&dsync_lock);
        dsync_rounds++;
        g_mutex_unlock(&dsync_lock);
        g_mutex_lock(&jn.lock);
        jn.syncing = 0;
        if (r == 0) {
            jn.synced = target;
        } else {
            jn.broken = 1;
            jn.fail_errno = e;
        }
        g_cond_broadcast(&jn.cond);
    }
    if (jn.synced < mine) {
        errno = jn.fail_errno;
        ret = cus_error_errno(error_r, "fdatasync(%s) failed", jn.path);
    }
    jn.busy--;
    if (jn.written >= SPOOL_JOURNAL_MAX)
        jn.closing = 1;
    jn_maybe_handoff();
    g_cond_broadcast(&jn.cond);
    g_mutex_unlock(&jn.lock);
    if (ret == 0) {
        g_mutex_lock(&dsync_lock);
        dsync_entries++;
        g_mutex_unlock(&dsync_lock);
    }
    return ret;
}

/* A journal open to append to, so that a spool that cannot be written is
 * known when a message starts, not only when it ends. */
static int journal_ready(const char *spool, char **error_r)
{
    int ret = 0;

    g_mutex_lock(&jn.lock);
    if (jn.fd < 0)
        ret = jn_open(spool, error_r);
    g_mutex_unlock(&jn.lock);
    return ret;
}

int spool_journal_close(char **error_r)
{
    GThread *t;
    int ret = 0;

    g_mutex_lock(&jn.lock);
    while (jn.fd >= 0)
        if (jn_close_step(ret == 0 ? error_r : NULL) < 0)
            ret = -1;
    t = jn.timer;
    jn.timer = NULL;
    jn.timer_stop = 1;
    g_cond_broadcast(&jn.cond);
    g_mutex_unlock(&jn.lock);
    if (t != NULL)
        g_thread_join(t);
    return ret;
}

/* The PID in a spool id: TIME.USEC.PID.RANDOM */
static long id_pid(const char *id)
{
    return strtol(strchr(strchr(id, '.') + 1, '.') + 1, NULL, 10);
}

static int pid_gone(long pid)
{
    return pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

int spool_recover(const char *spool_dir, guint *moved_r, char **error_r)
{
    char *dir = g_build_filename(spool_dir, "journal", NULL);
    char *newdir = g_build_filename(spool_dir, "new", NULL);
    GError *gerr = NULL;
    GDir *d = g_dir_open(dir, 0, &gerr);
    const char *n;
    guint moved = 0;
    int ret = 0;

    if (moved_r != NULL)
        *moved_r = 0;
    if (d == NULL) {
        cus_error(error_r, "spool: cannot read %s: %s", dir, gerr->message);
        g_error_free(gerr);
        g_free(dir);
        g_free(newdir);
        return -1;
    }
    while ((n = g_dir_read_name(d)) != NULL && ret == 0) {
        int opening = n[0] == '.', fd;
        char *src;

        if (!spool_id_valid(n + opening))
            continue;
        src = g_build_filename(dir, n, NULL);
        /* its writer holds a lock on it as long as it may grow */
        fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                ret = cus_error_errno(error_r, "open(%s) failed", src);
        } else if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (opening) {
                /* a writer gone before the journal had a name: no entry in it */
                if (unlink(src) < 0 && errno != ENOENT)
                    ret = cus_error_errno(error_r, "unlink(%s) failed", src);
            } else {
                char *dst = sub_path(spool_dir, "new", n);

                if (rename(src, dst) == 0)
                    moved++;
                else if (errno != ENOENT)
                    ret = cus_error_errno(error_r, "rename(%s, %s) failed", src, dst);
                g_free(dst);
            }
        } else if (errno != EWOULDBLOCK) {
            ret = cus_error_errno(error_r, "flock(%s) failed", src);
        }
        if (fd >= 0)
            close(fd);
        g_free(src);
    }
    g_dir_close(d);
    if (ret == 0 && moved > 0)
        ret = dir_commit(newdir, error_r);
    if (moved_r != NULL)
        *moved_r = moved;
    g_free(dir);
    g_free(newdir);
    return ret;
}

struct spool_writer {
    char *dir, *tmp;
    char id[SPOOL_ID_MAX + 1];
    int fd;
    int failed;                 /* a write failed: only abort is left */
    guint64 size;
    EVP_MD_CTX *sha;
    GByteArray *mem;            /* the message while held in memory; NULL:
                                 * in tmp/ (fd, buf) */
    size_t mem_max;
    size_t blen;
    char *buf;                  /* SPOOL_WBUF bytes, once in tmp/ */
};

/* The file buffer of a writer that writes to tmp/ (one held in memory has
 * none). */
static int writer_buf(struct spool_writer *w, char **error_r)
{
    if ((w->buf = g_try_malloc(SPOOL_WBUF)) == NULL) {
        w->failed = 1;
        return cus_error(error_r, "spool: out of memory for a writer");
    }
    return 0;
}

int spool_writer_open(const char *spool_dir, size_t mem_max, struct spool_writer **w_r,
                      char **error_r)
{
    struct spool_writer *w = g_try_new0(struct spool_writer, 1);

    if (w == NULL)
        return cus_error(error_r, "spool: out of memory for a writer");
    w->fd = -1;
    w->sha = EVP_MD_CTX_new();
    if (w->sha == NULL || cus_sha256_md() == NULL ||
        EVP_DigestInit_ex2(w->sha, cus_sha256_md(), NULL) != 1) {
        cus_error(error_r, "spool: cannot start a SHA-256 (out of memory)");
        goto fail;
    }
    w->dir = g_strdup(spool_dir);
    w->mem_max = mem_max;
    if (mem_max > 0) {
        if (journal_ready(spool_dir, error_r) < 0)
            goto fail;
        new_id(w->id);
        w->mem = g_byte_array_sized_new((guint)MIN(mem_max, 16 * 1024));
        *w_r = w;
        return 0;
    }
    if (writer_buf(w, error_r) < 0)
        goto fail;
    w->fd = open_tmp(spool_dir, w->id, &w->tmp, error_r);
    if (w->fd < 0)
        goto fail;
    memcpy(w->buf, SPOOL_MAGIC2 "\n", sizeof(SPOOL_MAGIC2));
    w->blen = sizeof(SPOOL_MAGIC2);
    *w_r = w;
    return 0;
fail:
    spool_writer_abort(&w);
    return -1;
}

/* An entry held in memory goes to its file in tmp/ (version 2, as if
 * streamed there from the start). */
static int writer_spill(struct spool_writer *w, char **error_r)
{
    if (w->mem == NULL)
        return 0;
    if (writer_buf(w, error_r) < 0)
        return -1;
    w->fd = open_tmp_id(w->dir, w->id, &w->tmp, error_r);
    if (w->fd < 0) {
        w->failed = 1;
        return -1;
    }
    if (cus_write_all(w->fd, SPOOL_MAGIC2 "\n", sizeof(SPOOL_MAGIC2)) < 0 ||
        cus_write_all(w->fd, w->mem->data, w->mem->len) < 0) {
        w->failed = 1;
        return cus_error_errno(error_r, "write(%s) failed", w->tmp);
    }
    g_byte_array_unref(w->mem);
    w->mem = NULL;
    w->blen = 0;
    return 0;
}

const char *spool_writer_id(const struct spool_writer *w)
{
    return w->id;
}

GByteArray *spool_writer_memory(const struct spool_writer *w)
{
    return w->mem;
}

guint64 spool_writer_size(const struct spool_writer *w)
{
    return w->size;
}

static int writer_flush(struct spool_writer *w, char **error_r)
{
    if (w->blen > 0 && cus_write_all(w->fd, w->buf, w->blen) < 0) {
        w->failed = 1;
        return cus_error_errno(error_r, "write(%s) failed", w->tmp);
    }
    w->blen = 0;
    return 0;
}

const char *spool_writer_path(const struct spool_writer *w)
{
    return w->tmp;
}

int spool_writer_flush(struct spool_writer *w, char **error_r)
{
    if (w->failed)
        return cus_error(error_r, "spool: %s: an earlier write failed", w->id);
    if (writer_spill(w, error_r) < 0)
        return -1;
    return writer_flush(w, error_r);
}

int spool_writer_write(struct spool_writer *w, const void *buf, size_t len, char **error_r)
{
    if (w->failed)
        return cus_error(error_r, "spool: %s: an earlier write failed", w->id);
    if (len > SPOOL_SIZE_MAX - w->size) {
        w->failed = 1;
        return cus_error(error_r, "spool: message of more than %llu bytes is over the limit",
                         (unsigned long long)SPOOL_SIZE_MAX);
    }
    if (EVP_DigestUpdate(w->sha, buf, len) != 1) {
        w->failed = 1;
        return cus_error(error_r, "spool: SHA-256 failed");
    }
    w->size += len;
    if (w->mem != NULL && w->mem->len + len <= w->mem_max) {
        g_byte_array_append(w->mem, buf, (guint)len);
        return 0;
    }
    if (writer_spill(w, error_r) < 0)
        return -1;
    if (w->blen + len <= SPOOL_WBUF) {
        memcpy(w->buf + w->blen, buf, len);
        w->blen += len;
        return 0;
    }
    if (writer_flush(w, error_r) < 0)
        return -1;
    if (len >= SPOOL_WBUF) {
        if (cus_write_all(w->fd, buf, len) < 0) {
            w->failed = 1;
            return cus_error_errno(error_r, "write(%s) failed", w->tmp);
        }
        return 0;
    }
    memcpy(w->buf, buf, len);
    w->blen = len;
    return 0;
}

int spool_writer_commit(struct spool_writer **wp, const struct spool_entry *env,
                        char *sha_hex_r, char **error_r)
{
    struct spool_writer *w = *wp;
    unsigned char sha[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX], *dst = NULL, *newdir = NULL;
    GString *h = NULL;
    size_t elen;
    int ret = -1;

    if (w->failed) {
        cus_error(error_r, "spool: %s: an earlier write failed", w->id);
        goto out;
    }
    if (env->time < 0) {
        cus_error(error_r, "spool: negative receive time %" G_GINT64_FORMAT, env->time);
        goto out;
    }
    if (check_findings(env, error_r) < 0)
        goto out;
    if (EVP_DigestFinal_ex(w->sha, sha, NULL) != 1) {
        cus_error(error_r, "spool: SHA-256 failed");
        goto out;
    }
    cus_hex(sha, CUS_SHA256_LEN, hex);
    h = g_string_sized_new(512);
    if (w->mem != NULL) {
        /* held in memory: a version-1 entry, into the journal */
        if (put_header_v1(h, env, w->size, hex, error_r) < 0)
            goto out;
        if (journal_append(w->dir, w->id, h, w->mem->data, w->mem->len, error_r) < 0)
            goto out;
        if (sha_hex_r != NULL)
            memcpy(sha_hex_r, hex, sizeof(hex));
        ret = 0;
        goto out;
    }
    put_envelope(h, env, w->size, hex);
    elen = h->len;
    if (elen > SPOOL_HEADER_MAX) {
        cus_error(error_r, "spool: envelope of %zu bytes is over the limit of %d", elen,
                  SPOOL_HEADER_MAX);
        goto out;
    }
    g_string_append_printf(h, "envelope %zu\n", elen);
    if (writer_flush(w, error_r) < 0)
        goto out;
    if (cus_write_all(w->fd, h->str, h->len) < 0) {
        cus_error_errno(error_r, "write(%s) failed", w->tmp);
        goto out;
    }
    if (fsync(w->fd) < 0) {
        cus_error_errno(error_r, "fsync(%s) failed", w->tmp);
        goto out;
    }
    if (close(w->fd) < 0) {
        w->fd = -1;
        cus_error_errno(error_r, "close(%s) failed", w->tmp);
        goto out;
    }
    w->fd = -1;
    dst = sub_path(w->dir, "new", w->id);
    if (rename(w->tmp, dst) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", w->tmp, dst);
        goto out;
    }
    newdir = g_build_filename(w->dir, "new", NULL);
    if (dir_commit(newdir, error_r) < 0) {
        /* Not promised durable: take it back, the caller will retry. */
        unlink(dst);
        goto out;
    }
    if (sha_hex_r != NULL)
        memcpy(sha_hex_r, hex, sizeof(hex));
    g_free(w->tmp);
    w->tmp = NULL;      /* renamed: nothing for abort to remove */
    ret = 0;
out:
    if (h != NULL)
        g_string_free(h, TRUE);
    g_free(dst);
    g_free(newdir);
    spool_writer_abort(wp);
    return ret;
}

void spool_writer_abort(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;

    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp != NULL)
        unlink(w->tmp);
    if (w->sha != NULL)
        EVP_MD_CTX_free(w->sha);
    if (w->mem != NULL)
        g_byte_array_unref(w->mem);
    g_free(w->buf);
    g_free(w->tmp);
    g_free(w->dir);
    g_free(w);
    *wp = NULL;
}

int spool_sweep_tmp(const char *spool_dir, int max_age, guint *removed_r, char **error_r)
{
    char *dir = g_build_filename(spool_dir, "tmp", NULL);
    GError *gerr = NULL;
    GDir *d = g_dir_open(dir, 0, &gerr);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    const char *n;
    guint removed = 0;
    int ret = 0;

    if (d == NULL) {
        cus_error(error_r, "spool: cannot read %s: %s", dir, gerr->message);
        g_error_free(gerr);
        g_free(dir);
        return -1;
    }
    while ((n = g_dir_read_name(d)) != NULL) {
        char *p;
        struct stat st;
        int gone;

        if (!spool_id_valid(n))
            continue;
        gone = pid_gone(id_pid(n));
        p = g_build_filename(dir, n, NULL);
        if (!gone && max_age > 0 && lstat(p, &st) == 0 && now - st.st_mtime > max_age)
            gone = 1;
        if (gone) {
            if (unlink(p) == 0)
                removed++;
            else if (errno != ENOENT && ret == 0)
                ret = cus_error_errno(error_r, "unlink(%s) failed", p);
        }
        g_free(p);
    }
    g_dir_close(d);
    g_free(dir);
    if (removed_r != NULL)
        *removed_r = removed;
    return ret;
}

/* Printable, bounded form of untrusted bytes for an error message. */
static char *show(const char *s, size_t len)
{
    char *cut = g_strndup(s, MIN(len, 40));
    char *esc = g_strescape(cut, NULL);
    char *ret = g_strdup_printf("\"%s\"%s", esc, len > 40 ? "..." : "");

    g_free(cut);
    g_free(esc);
    return ret;
}

/* line > 0: a header line of format 1; < 0: line -line of a format 2
 * envelope; 0: the last line of format 2 (its "envelope" line). */
static int parse_error(char **error_r, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int parse_error(char **error_r, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (error_r == NULL)
        return -1;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (line == 0)
        *error_r = g_strdup_printf("last line%s%s%s: %s", key ? " (" : "", key ? key : "",
                                   key ? ")" : "", msg);
    else if (key != NULL)
        *error_r = g_strdup_printf("%sline %d (%s): %s", line < 0 ? "envelope " : "",
                                   ABS(line), key, msg);
    else
        *error_r = g_strdup_printf("%sline %d: %s", line < 0 ? "envelope " : "", ABS(line),
                                   msg);
    g_free(msg);
    return -1;
}

/* Unescape a value; it must be valid UTF-8 with no NUL. */
static int parse_value(const char *v, size_t len, int line, const char *key, char **out_r,
                       char **error_r)
{
    GString *s = g_string_sized_new(len + 1);

    for (size_t i = 0; i < len; i++) {
        if (v[i] == '%') {
            char *bad;
            if (len - i >= 3 && memcmp(v + i, "%25", 3) == 0)
                g_string_append_c(s, '%');
            else if (len - i >= 3 && memcmp(v + i, "%0D", 3) == 0)
                g_string_append_c(s, '\r');
            else if (len - i >= 3 && memcmp(v + i, "%0A", 3) == 0)
                g_string_append_c(s, '\n');
            else if (len - i >= 3 && memcmp(v + i, "%00", 3) == 0) {
                g_string_free(s, TRUE);
                return parse_error(error_r, line, key,
                                   "a NUL byte (%%00) in the value: envelope values are text");
            } else {
                bad = show(v + i, MIN(len - i, 3));
                parse_error(error_r, line, key, "bad escape %s (only %%25 %%0D %%0A)", bad);
                g_free(bad);
                g_string_free(s, TRUE);
                return -1;
            }
            i += 2;
        } else if (v[i] == '\r') {
            g_string_free(s, TRUE);
            return parse_error(error_r, line, key,
                               "a raw CR in the header (written %%0D; lines end in LF only)");
        } else if (v[i] == '\0') {
            g_string_free(s, TRUE);
            return parse_error(error_r, line, key, "a raw NUL byte in the header");
        } else {
            g_string_append_c(s, v[i]);
        }
    }
    if (!g_utf8_validate(s->str, (gssize)s->len, NULL)) {
        g_string_free(s, TRUE);
        return parse_error(error_r, line, key, "the value is not valid UTF-8");
    }
    *out_r = g_string_free(s, FALSE);
    return 0;
}

static int parse_number(const char *v, size_t len, int line, const char *key,
                        guint64 max, guint64 *n_r, char **error_r)
{
    guint64 n = 0;

    if (!digits(v, len, 19)) {
        char *bad = show(v, len);
        parse_error(error_r, line, key, "%s %s", bad,
                    digits(v, len, len) ? "has too many digits" : "is not a number");
        g_free(bad);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        n = n * 10 + (guint64)(v[i] - '0');
    if (n > max)
        return parse_error(error_r, line, key, "%" G_GUINT64_FORMAT " is over the limit of %"
                           G_GUINT64_FORMAT, n, max);
    *n_r = n;
    return 0;
}

static int lower_hex(const char *v, size_t len)
{
    if (len != 2 * CUS_SHA256_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isdigit(v[i]) && !(v[i] >= 'a' && v[i] <= 'f'))
            return 0;
    return 1;
}

/* A finding's value: three tokens, each followed by a space, then the
 * evidence (escaped text). */
static int parse_finding(const char *v, size_t len, int line, struct spool_finding **f_r,
                         char **error_r)
{
    static const char *const what[] = { "category", "rule", "action" };
    struct spool_finding *f = g_new0(struct spool_finding, 1);
    char **slot[] = { &f->category, &f->rule, &f->action };
    size_t pos = 0;

    for (int k = 0; k < 3; k++) {
        const char *sp = memchr(v + pos, ' ', len - pos);
        size_t tlen = sp != NULL ? (size_t)(sp - (v + pos)) : len - pos;

        if (!token_valid(v + pos, tlen)) {
            char *bad = show(v + pos, tlen);
            parse_error(error_r, line, "finding", "%s %s is not a token (expected "
                        "[a-z0-9./_-]+ in CATEGORY RULE ACTION EVIDENCE)", what[k], bad);
            g_free(bad);
            goto fail;
        }
        if (sp == NULL) {
            parse_error(error_r, line, "finding", "no space after the %s (expected "
                        "CATEGORY RULE ACTION EVIDENCE; empty evidence still has the space)",
                        what[k]);
            goto fail;
        }
        *slot[k] = g_strndup(v + pos, tlen);
        pos += tlen + 1;
    }
    if (parse_value(v + pos, len - pos, line, "finding", &f->evidence, error_r) < 0)
        goto fail;
    *f_r = f;
    return 0;
fail:
    spool_finding_free(&f);
    return -1;
}

/* What the key lines said that is checked against the message. */
struct fields {
    guint64 size;
    unsigned char want[CUS_SHA256_LEN];
    int size_line, sha_line;
};

/*
 * The key lines from buf + *posp. Format 1 (v2 0): up to the empty line,
 * *posp then after it, lines numbered from 2. Format 2: up to exactly
 * end, lines numbered -1, -2, ...
 */
static int parse_fields(const char *buf, size_t *posp, size_t end, int v2,
                        struct spool_entry *e, GPtrArray *rcpts, GPtrArray *findings,
                        struct fields *f, char **error_r)
{
    size_t pos = *posp;
    int line = v2 ? 0 : 1, next = 0;
    guint64 num;

    for (;;) {
        const char *l = buf + pos, *nl, *sp;
        size_t llen, klen;
        int k;

        line += v2 ? -1 : 1;
        if (v2 && pos == end)
            break;
        if (pos >= end)
            return parse_error(error_r, line, NULL,
                               "the file ends inside the header (truncated entry)");
        nl = memchr(l, '\n', end - pos);
        if (nl == NULL)
            return parse_error(error_r, line, NULL,
                               "no newline at the end of the line (truncated entry)");
        llen = (size_t)(nl - l);
        pos += llen + 1;
        if (!v2 && pos > SPOOL_HEADER_MAX)
            return parse_error(error_r, line, NULL, "the header is longer than %d bytes",
                               SPOOL_HEADER_MAX);
        if (llen == 0) {
            if (v2)
                return parse_error(error_r, line, NULL, "an empty line in the envelope");
            break;
        }
        sp = memchr(l, ' ', llen);
        klen = sp != NULL ? (size_t)(sp - l) : llen;
        for (k = 0; k < K_N; k++)
            if (strlen(spool_keys[k].name) == klen && memcmp(spool_keys[k].name, l, klen) == 0)
                break;
        if (k == K_N) {
            char *bad = show(l, klen);
            parse_error(error_r, line, NULL, "unknown key %s", bad);
            g_free(bad);
            return -1;
        }
        if (sp == NULL)
            return parse_error(error_r, line, spool_keys[k].name,
                               "no space after the key (an empty value is written \"%s \")",
                               spool_keys[k].name);
        if (k < next)
            return parse_error(error_r, line, spool_keys[k].name,
                               "key repeated or out of order (expected \"%s\")",
                               next < K_N ? spool_keys[next].name
                                          : v2 ? "the end of the envelope" : "the empty line");
        for (int skip = next; skip < k; skip++)
            if (spool_keys[skip].how == ONE)
                return parse_error(error_r, line, spool_keys[k].name,
                                   "missing key \"%s\" before it", spool_keys[skip].name);
        next = spool_keys[k].how == MANY ? k : k + 1;
        {
            const char *v = sp + 1, *key = spool_keys[k].name;
            size_t vlen = llen - klen - 1;
            char *s = NULL;

            switch (k) {
            case K_TIME:
                if (parse_number(v, vlen, line, key, G_MAXINT64, &num, error_r) < 0)
                    return -1;
                e->time = (gint64)num;
                break;
            case K_SIZE:
                if (parse_number(v, vlen, line, key, SPOOL_SIZE_MAX, &f->size, error_r) < 0)
                    return -1;
                f->size_line = line;
                break;
            case K_FINDING: {
                struct spool_finding *fd;
                if (parse_finding(v, vlen, line, &fd, error_r) < 0)
                    return -1;
                g_ptr_array_add(findings, fd);
                break;
            }
            case K_SHA256: {
                char hx[CUS_SHA256_HEX];
                if (!lower_hex(v, vlen))
                    return parse_error(error_r, line, key, "expected 64 lower-case hex digits");
                memcpy(hx, v, 2 * CUS_SHA256_LEN);
                hx[2 * CUS_SHA256_LEN] = '\0';
                cus_unhex(hx, f->want, CUS_SHA256_LEN);
                f->sha_line = line;
                break;
            }
            default:
                if (parse_value(v, vlen, line, key, &s, error_r) < 0)
                    return -1;
                if (k == K_CLIENT)
                    e->client = s;
                else if (k == K_SENDER)
                    e->sender = s;
                else if (k == K_QUEUE_ID)
                    e->queue_id = s;
                else if (k == K_SOURCE)
                    e->source = s;
                else if (k == K_AUTH && *s == '\0') {
                    g_free(s);
                    return parse_error(error_r, line, key, "empty (an entry with no SASL "
                                       "login has no auth line)");
                } else if (k == K_AUTH)
                    e->auth = s;
                else
                    g_ptr_array_add(rcpts, s);
            }
        }
    }
    for (int k = next; k < K_N; k++)
        if (spool_keys[k].how == ONE)
            return parse_error(error_r, line, NULL, "missing key \"%s\" before %s",
                               spool_keys[k].name,
                               v2 ? "the end of the envelope" : "the empty line");
    *posp = pos;
    return 0;
}

/* Format 2: the "envelope N" line at the end, the envelope before it; the
 * message from pos to the envelope. *env_r: where the envelope starts,
 * *last_r: where the last line starts. */
static int find_envelope(const char *buf, size_t pos, size_t len, size_t *env_r,
                         size_t *last_r, char **error_r)
{
    static const char kw[] = "envelope ";
    const size_t kwlen = sizeof(kw) - 1;
    size_t ls;
    guint64 n;

    if (len == pos || buf[len - 1] != '\n')
        return parse_error(error_r, 0, NULL, "the file does not end with the envelope line "
                           "(truncated entry)");
    for (ls = len - 1; ls > pos && buf[ls - 1] != '\n' && len - ls < SPOOL_LAST_MAX; ls--)
        ;
    if (len - ls < kwlen + 2 || memcmp(buf + ls, kw, kwlen) != 0) {
        char *bad = show(buf + ls, len - 1 - ls);
        parse_error(error_r, 0, NULL, "expected \"envelope LENGTH\", found %s "
                    "(truncated entry?)", bad);
        g_free(bad);
        return -1;
    }
    if (parse_number(buf + ls + kwlen, len - 1 - ls - kwlen, 0, "envelope", SPOOL_HEADER_MAX,
                     &n, error_r) < 0)
        return -1;
    if (n > ls - pos)
        return parse_error(error_r, 0, "envelope", "%" G_GUINT64_FORMAT " bytes declared, only "
                           "%zu before this line (truncated entry)", n, ls - pos);
    *env_r = ls - (size_t)n;
    *last_r = ls;
    return 0;
}

/* Parse the file in data (borrowed; the entry's raw shares it). */
static int parse_bytes(GBytes *data, struct spool_entry **e_r, char **error_r)
{
    gsize len;
    const char *buf = g_bytes_get_data(data, &len);
    const size_t mlen = strlen(SPOOL_MAGIC);
    struct spool_entry *e = g_new0(struct spool_entry, 1);
    GPtrArray *rcpts = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *findings = g_ptr_array_new();
    unsigned char sha[CUS_SHA256_LEN];
    struct fields f = { 0 };
    size_t pos, raw_pos, raw_len, env = 0, last = 0;
    int v2, ret = -1;

    if (buf == NULL)
        buf = "";
    v2 = len >= mlen + 1 && memcmp(buf, SPOOL_MAGIC2 "\n", mlen + 1) == 0;
    if (!v2 && (len < mlen + 1 || memcmp(buf, SPOOL_MAGIC "\n", mlen + 1) != 0)) {
        if (len >= 13 && memcmp(buf, "CUSTOS-SPOOL ", 13) == 0) {
            const char *nl = memchr(buf, '\n', len);
            char *v = show(buf + 13, (nl != NULL ? (size_t)(nl - buf) : len) - 13);
            parse_error(error_r, 1, NULL, "spool format version %s not supported (only 1 and 2)",
                        v);
            g_free(v);
        } else {
            parse_error(error_r, 1, NULL, "not a custos spool entry (expected \"%s\")",
                        SPOOL_MAGIC);
        }
        goto out;
    }
    pos = mlen + 1;
    if (!v2) {
        if (parse_fields(buf, &pos, len, 0, e, rcpts, findings, &f, error_r) < 0)
            goto out;
        raw_pos = pos;
        raw_len = len - pos;
        if (f.size > raw_len) {
            parse_error(error_r, f.size_line, "size", "%" G_GUINT64_FORMAT " bytes declared, "
                        "only %zu follow the header (truncated entry)", f.size, raw_len);
            goto out;
        }
        if (f.size < raw_len) {
            parse_error(error_r, f.size_line, "size", "%" G_GUINT64_FORMAT " bytes declared, "
                        "%zu follow the header (trailing bytes)", f.size, raw_len);
            goto out;
        }
    } else {
        if (find_envelope(buf, pos, len, &env, &last, error_r) < 0)
            goto out;
        raw_pos = pos;
        raw_len = env - pos;
        if (parse_fields(buf, &env, last, 1, e, rcpts, findings, &f, error_r) < 0)
            goto out;
        if (f.size != raw_len) {
            parse_error(error_r, f.size_line, "size", "%" G_GUINT64_FORMAT " bytes declared, "
                        "the message before the envelope is %zu", f.size, raw_len);
            goto out;
        }
    }
    cus_sha256(buf + raw_pos, raw_len, sha);
    if (memcmp(sha, f.want, CUS_SHA256_LEN) != 0) {
        char hex[CUS_SHA256_HEX];
        cus_hex(sha, CUS_SHA256_LEN, hex);
        parse_error(error_r, f.sha_line, "sha256", "does not match the message (its SHA-256 is %s)",
                    hex);
        goto out;
    }
    e->raw = g_bytes_new_from_bytes(data, raw_pos, raw_len);
    memcpy(e->sha256, sha, CUS_SHA256_LEN);
    g_ptr_array_add(rcpts, NULL);
    e->rcpts = (char **)g_ptr_array_free(rcpts, FALSE);
    rcpts = NULL;
    e->n_findings = findings->len;
    if (findings->len > 0)
        e->findings = (struct spool_finding **)g_ptr_array_free(findings, FALSE);
    else
        g_ptr_array_free(findings, TRUE);
    findings = NULL;
    *e_r = e;
    e = NULL;
    ret = 0;
out:
    if (rcpts != NULL)
        g_ptr_array_free(rcpts, TRUE);
    for (guint i = 0; findings != NULL && i < findings->len; i++) {
        struct spool_finding *fd = g_ptr_array_index(findings, i);
        spool_finding_free(&fd);
    }
    if (findings != NULL)
        g_ptr_array_free(findings, TRUE);
    spool_entry_free(&e);
    return ret;
}

int spool_parse(const void *buf, size_t len, struct spool_entry **e_r, char **error_r)
{
    GBytes *data = g_bytes_new(buf, len);
    int ret = parse_bytes(data, e_r, error_r);

    g_bytes_unref(data);
    return ret;
}

/* The whole of SPOOL/new/NAME and its path: 0, or -1 with errno (EINVAL
 * for a name that is not an id, a file too big or not a file; else the
 * system's: never a stale ENOENT) and *path_r NULL. */
static int read_new(const char *spool_dir, const char *name, GBytes **data_r, char **path_r,
                    char **error_r)
{
    char *path;
    int saved;

    *path_r = NULL;
    if (!spool_id_valid(name)) {
        errno = EINVAL;
        return cus_error(error_r, "spool: \"%s\" is not a spool id", name);
    }
    path = sub_path(spool_dir, "new", name);
    errno = 0;
    if (cus_read_file(path, SPOOL_HEADER_MAX + SPOOL_SIZE_MAX, data_r, error_r) < 0) {
        saved = errno == 0 ? EINVAL : errno;
        g_free(path);
        errno = saved;
        return -1;
    }
    *path_r = path;
    return 0;
}

int spool_read(const char *spool_dir, const char *id, struct spool_entry **e_r,
               char **error_r)
{
    GBytes *data = NULL;
    char *path, *err = NULL;
    int ret;

    if (read_new(spool_dir, id, &data, &path, error_r) < 0)
        return -1;
    ret = parse_bytes(data, e_r, &err);
    if (ret < 0)
        cus_error(error_r, "%s: %s", path, err);
    else
        g_strlcpy((*e_r)->id, id, sizeof((*e_r)->id));
    g_bytes_unref(data);
    g_free(err);
    g_free(path);
    errno = ret < 0 ? EINVAL : 0;
    return ret;
}

void spool_bad_free(struct spool_bad *b)
{
    if (b == NULL)
        return;
    g_free(b->name);
    if (b->bytes != NULL)
        g_bytes_unref(b->bytes);
    g_free(b->reason);
    g_free(b);
}

static void bad_add(GPtrArray *bad, char *name, GBytes *bytes, char *reason)
{
    struct spool_bad *b = g_new0(struct spool_bad, 1);

    b->name = name;
    b->bytes = bytes;
    b->reason = reason;
    g_ptr_array_add(bad, b);
}

static void entry_free_v(gpointer p)
{
    struct spool_entry *e = p;

    spool_entry_free(&e);
}

int spool_parse_journal(GBytes *data, GPtrArray **good_r, GPtrArray **bad_r, char **error_r)
{
    gsize len;
    const char *buf = g_bytes_get_data(data, &len);
    const size_t mlen = sizeof(SPOOL_JOURNAL_MAGIC);    /* with its LF */
    GPtrArray *good, *bad;
    size_t pos;

    if (buf == NULL || len < mlen || memcmp(buf, SPOOL_JOURNAL_MAGIC "\n", mlen) != 0)
        return parse_error(error_r, 1, NULL, "not a custos journal (expected \"%s\")",
                           SPOOL_JOURNAL_MAGIC);
    good = g_ptr_array_new_with_free_func(entry_free_v);
    bad = g_ptr_array_new_with_free_func((GDestroyNotify)spool_bad_free);
    for (pos = mlen; pos < len;) {
        /* "entry ID LEN" LF */
        const size_t max_line = 6 + SPOOL_ID_MAX + 1 + 20 + 1;
        const char *l = buf + pos, *nl = memchr(l, '\n', MIN(len - pos, max_line));
        const char *sp = nl != NULL && nl - l > 6 ? memchr(l + 6, ' ', (size_t)(nl - l) - 6)
                                                 : NULL;
        char id[SPOOL_ID_MAX + 1] = "", *why = NULL;
        guint64 n = 0;
        size_t start = 0;

        if (nl == NULL || nl - l < 8 || memcmp(l, "entry ", 6) != 0 || sp == NULL ||
            (size_t)(sp - l - 6) > SPOOL_ID_MAX) {
            why = g_strdup("not an entry line");
        } else {
            memcpy(id, l + 6, (size_t)(sp - l - 6));
            id[sp - l - 6] = '\0';
            if (!spool_id_valid(id) || !digits(sp + 1, (size_t)(nl - sp - 1), 19) ||
                (n = g_ascii_strtoull(sp + 1, NULL, 10)) > SPOOL_HEADER_MAX + SPOOL_SIZE_MAX)
                why = g_strdup("not an entry line");
            else if ((start = (size_t)(nl + 1 - buf)) > len || n > len - start ||
                     len - start - n < 1 || buf[start + n] != '\n')
                why = g_strdup_printf("entry %s: %" G_GUINT64_FORMAT " bytes declared, %zu "
                                      "follow (torn: a write that never finished)", id, n,
                                      len - MIN(start, len));
        }
        if (why != NULL) {
            /* nothing after this can be found: the rest is one piece */
            char *s = show(l, len - pos);

            bad_add(bad, g_strdup_printf("tail-%zu", pos),
                    g_bytes_new_from_bytes(data, pos, len - pos),
                    g_strdup_printf("journal offset %zu: %s: %s", pos, why, s));
            g_free(s);
            g_free(why);
            break;
        }
        {
            GBytes *sub = g_bytes_new_from_bytes(data, start, (gsize)n);
            struct spool_entry *e = NULL;
            char *err = NULL;

            if (parse_bytes(sub, &e, &err) < 0) {
                bad_add(bad, g_strdup(id), sub,
                        g_strdup_printf("journal offset %zu: entry %s: %s", pos, id, err));
                g_free(err);
            } else {
                g_strlcpy(e->id, id, sizeof(e->id));
                g_ptr_array_add(good, e);
                g_bytes_unref(sub);
            }
        }
        pos = start + (size_t)n + 1;
    }
    *good_r = good;
    *bad_r = bad;
    return 0;
}

/* Write bytes to failed/NAME, the reason first (as spool_fail). */
static int fail_bytes(const char *spool_dir, const char *name, GBytes *bytes,
                      const char *reason, char **error_r)
{
    char *rname = g_strconcat(name, ".reason", NULL);
    char *rpath = sub_path(spool_dir, "failed", rname), *path = sub_path(spool_dir, "failed", name);
    char *text = g_strdup_printf("%s\n", reason);
    gsize len;
    const void *data = g_bytes_get_data(bytes, &len);
    int ret = -1;

    if (cus_write_file_atomic(rpath, text, strlen(text), SPOOL_MODE_FILE, error_r) == 0 &&
        cus_write_file_atomic(path, data != NULL ? data : "", len, SPOOL_MODE_FILE,
                              error_r) == 0)
        ret = 0;
    g_free(rname);
    g_free(rpath);
    g_free(path);
    g_free(text);
    return ret;
}

int spool_read_all(const char *spool_dir, const char *name, GPtrArray **entries_r,
                   guint *failed_r, GPtrArray **reasons_r, char **error_r)
{
    GBytes *data = NULL;
    GPtrArray *good = NULL, *bad = NULL;
    char *path, *err = NULL, *faildir = NULL;
    int ret, saved;
    gsize len;
    const char *buf;

    *failed_r = 0;
    if (reasons_r != NULL)
        *reasons_r = NULL;
    if (read_new(spool_dir, name, &data, &path, error_r) < 0)
        return -1;
    saved = 0;
    buf = g_bytes_get_data(data, &len);
    if (buf == NULL || len < sizeof(SPOOL_JOURNAL_MAGIC) ||
        memcmp(buf, SPOOL_JOURNAL_MAGIC "\n", sizeof(SPOOL_JOURNAL_MAGIC)) != 0) {
        struct spool_entry *e = NULL;

        if ((ret = parse_bytes(data, &e, &err)) < 0) {
            cus_error(error_r, "%s: %s", path, err);
            saved = EINVAL;
            goto out;
        }
        g_strlcpy(e->id, name, sizeof(e->id));
        good = g_ptr_array_new_with_free_func(entry_free_v);
        g_ptr_array_add(good, e);
    } else {
        spool_parse_journal(data, &good, &bad, NULL);   /* the magic is there */
        if (reasons_r != NULL && bad->len > 0)
            *reasons_r = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < bad->len; i++) {
            struct spool_bad *b = g_ptr_array_index(bad, i);
            char *fname = spool_id_valid(b->name) ? g_strdup(b->name)
                                                  : g_strdup_printf("%s.%s", name, b->name);
            char *why = g_strdup_printf("%s: %s", path, b->reason);

            ret = fail_bytes(spool_dir, fname, b->bytes, why, error_r);
            if (ret == 0 && reasons_r != NULL)
                g_ptr_array_add(*reasons_r, g_strdup_printf("%s (kept as failed/%s)", why,
                                                            fname));
            g_free(fname);
            g_free(why);
            if (ret < 0) {
                saved = errno;
                g_ptr_array_free(good, TRUE);
                good = NULL;
                goto out;
            }
            (*failed_r)++;
        }
        faildir = g_build_filename(spool_dir, "failed", NULL);
        if (bad->len > 0 && (ret = cus_fsync_dir(faildir, error_r)) < 0) {
            saved = errno;
            g_ptr_array_free(good, TRUE);
            good = NULL;
            goto out;
        }
    }
    *entries_r = good;
    ret = 0;
out:
    if (ret < 0 && reasons_r != NULL && *reasons_r != NULL) {
        g_ptr_array_free(*reasons_r, TRUE);
        *reasons_r = NULL;
    }
    if (bad != NULL)
        g_ptr_array_free(bad, TRUE);
    if (data != NULL)
        g_bytes_unref(data);
    g_free(err);
    g_free(path);
    g_free(faildir);
    errno = saved;
    return ret;
}

/* Oldest first: TIME and USEC as numbers, then the whole name. */
static gint id_cmp(gconstpointer a, gconstpointer b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    guint64 tx = g_ascii_strtoull(x, NULL, 10), ty = g_ascii_strtoull(y, NULL, 10);

    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(strchr(x, '.'), strchr(y, '.'));
}

int spool_list(const char *spool_dir, GPtrArray **ids_r, char **error_r)
{
    char *dir = g_build_filename(spool_dir, "new", NULL);
    GError *gerr = NULL;
    GDir *d = g_dir_open(dir, 0, &gerr);
    GPtrArray *ids;
    const char *n;

    if (d == NULL) {
        cus_error(error_r, "spool: cannot read %s: %s", dir, gerr->message);
        g_error_free(gerr);
        g_free(dir);
        return -1;
    }
    ids = g_ptr_array_new_with_free_func(g_free);
    while ((n = g_dir_read_name(d)) != NULL)
        if (spool_id_valid(n))
            g_ptr_array_add(ids, g_strdup(n));
    g_dir_close(d);
    g_free(dir);
    g_ptr_array_sort(ids, id_cmp);
    *ids_r = ids;
    return 0;
}

int spool_remove(const char *spool_dir, const char *id, char **error_r)
{
    char *path;
    int ret = 0;

    if (!spool_id_valid(id))
        return cus_error(error_r, "spool: \"%s\" is not a spool id", id);
    path = sub_path(spool_dir, "new", id);
    if (unlink(path) < 0 && errno != ENOENT)
        ret = cus_error_errno(error_r, "unlink(%s) failed", path);
    g_free(path);
    return ret;
}

int spool_sync(const char *spool_dir, char **error_r)
{
    char *dir = g_build_filename(spool_dir, "new", NULL);
    int ret = cus_fsync_dir(dir, error_r);

    g_free(dir);
    return ret;
}

int spool_fail(const char *spool_dir, const char *id, const char *reason, char **error_r)
{
    char *src = NULL, *dst = NULL, *rpath = NULL, *text = NULL, *rname = NULL;
    char *faildir = g_build_filename(spool_dir, "failed", NULL);
    int ret = -1;

    if (!spool_id_valid(id)) {
        cus_error(error_r, "spool: \"%s\" is not a spool id", id);
        goto out;
    }
    src = sub_path(spool_dir, "new", id);
    dst = sub_path(spool_dir, "failed", id);
    rname = g_strconcat(id, ".reason", NULL);
    rpath = sub_path(spool_dir, "failed", rname);
    /* The reason first: a crash in between leaves the entry in new/, tried
     * again next time, rather than an entry in failed/ with no reason. */
    if (access(src, F_OK) < 0) {
        cus_error_errno(error_r, "spool: cannot move %s to failed/", src);
        goto out;
    }
    text = g_strdup_printf("%s\n", reason != NULL ? reason : "");
    if (cus_write_file_atomic(rpath, text, strlen(text), SPOOL_MODE_FILE, error_r) < 0)
        goto out;
    if (rename(src, dst) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", src, dst);
        unlink(rpath);
        goto out;
    }
    if (cus_fsync_dir(faildir, error_r) < 0 || spool_sync(spool_dir, error_r) < 0)
        goto out;
    ret = 0;
out:
    g_free(src);
    g_free(dst);
    g_free(rpath);
    g_free(rname);
    g_free(text);
    g_free(faildir);
    return ret;
}

void spool_entry_free(struct spool_entry **ep)
{
    struct spool_entry *e = *ep;

    if (e == NULL)
        return;
    g_free(e->client);
    g_free(e->sender);
    g_free(e->queue_id);
    g_free(e->source);
    g_free(e->auth);
    g_strfreev(e->rcpts);
    for (size_t i = 0; i < e->n_findings; i++)
        spool_finding_free(&e->findings[i]);
    g_free(e->findings);
    if (e->raw != NULL)
        g_bytes_unref(e->raw);
    g_free(e);
    *ep = NULL;
}
