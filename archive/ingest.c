/*
 * ingest.c - move spool entries into the archive, in batches, crash-safe
 *
 * Per batch: entries read and handed to the parse pipeline, the pipeline
 * drained, the archive flushed (store fsync, index commit), and only then
 * the entries unlinked from SPOOL/new/ and the directory fsync'd. An entry
 * that was committed but not unlinked (a crash in between) is recognised by
 * its spool id on the next run (arc_add() finds it and adds nothing).
 *
 * --follow: the inotify watch on SPOOL/new/ is set up before the first
 * listing, so an entry renamed in at any moment either is in a listing or
 * wakes the poll(). Events only wake us; each wake-up lists the directory
 * again, so a queue overflow needs nothing more than that rescan. After a
 * wake-up it gathers the rest of the burst (gather()), so a batch commits
 * many entries (a commit's fsyncs and index pages shared) and the archive
 * is written between bursts, not during them. SIGTERM and SIGINT set a
 * flag and write to a self-pipe the poll() watches.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include "custos/ingest.h"
#include "custos/log.h"
#include "custos/spool.h"
#include "custos/store.h"
#include "custos/util.h"

struct ingest {
    struct arc *arc;
    const char *spool;
    const struct ingest_opts *o;
    struct ingest_stats *st;
    struct arc_pipe *pipe;
    GPtrArray *batch;           /* char *: files of new/ in the open batch */
    guint64 batch_entries;      /* the entries in them */
    guint64 batch_bytes;
    guint64 batch_dups;
    int batch_size;
    double next_tick;
    guint64 since_tick;         /* entries archived since the last tick */
    double last_work;           /* when the last batch was committed */
};

#define IDLE_RELEASE 2.0        /* seconds idle before the archive is let go */

static volatile sig_atomic_t ingest_stopping;
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;

    ingest_stopping = 1;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], "", 1) < 0) {
        /* full pipe: the flag is enough */
    }
    errno = saved;
}

static void pipe_done(void *ctx, const char *where, int ret, gint64 id, int dup)
{
    struct ingest *in = ctx;

    if (ret == 0 && dup)
        in->batch_dups++;
}

/* opts.cfg: the archive is opened when there is work... */
static int arc_ensure(struct ingest *in, char **error_r)
{
    if (in->arc != NULL)
        return 0;
    if (arc_open(in->o->cfg, ARC_WRITE | ARC_WAIT_ALWAYS | ARC_NO_CLOSE_CHECKPOINT,
                 &in->arc, error_r) < 0)
        return -1;
    if (arc_pipe_new(in->arc, in->o->threads, pipe_done, in, &in->pipe, error_r) < 0) {
        arc_close(&in->arc);
        return -1;
    }
    log_debug("ingest: archive %s opened", in->o->cfg->arc_dir);
    return 0;
}

/* ...and let go (everything committed) when idle or wanted by another
 * writer, who then gets its turn before we take it again. */
static void arc_release(struct ingest *in, int for_waiter)
{
    if (in->o->cfg == NULL || in->arc == NULL)
        return;
    arc_pipe_free(&in->pipe);
    arc_close(&in->arc);
    log_debug("ingest: archive %s let go%s", in->o->cfg->arc_dir,
              for_waiter ? " for a waiting writer" : "");
    if (for_waiter)
        store_wait_for_waiters(in->o->cfg->arc_dir, ARC_LOCK_WAIT, &ingest_stopping);
}

/* A checkpoint of the chain (opts.cfg): what the tick hook does otherwise. */
static int own_checkpoint(struct ingest *in, char **error_r)
{
    struct arc_checkpoint_info ci;
    char hex[CUS_SHA256_HEX];

    if (arc_ensure(in, error_r) < 0 || arc_checkpoint(in->arc, 0, &ci, error_r) < 0)
        return -1;
    if (ci.made) {
        cus_hex(ci.hash, CUS_SHA256_LEN, hex);
        log_info("checkpoint seq %" G_GINT64_FORMAT " hash %s key %s", ci.seq, hex, ci.key);
    }
    return 0;
}

/* Call the periodic hook when it is due (or, with at_end, if anything was
 * archived since the last call). Only between batches. */
static int maybe_tick(struct ingest *in, int at_end, char **error_r)
{
    const struct ingest_opts *o = in->o;
    double now;

    if (o->cfg != NULL && at_end)
        return in->since_tick > 0 ? own_checkpoint(in, error_r) : 0;
    if ((o->tick == NULL && o->cfg == NULL) || o->tick_interval <= 0)
        return 0;
    now = cus_now();
    if (at_end ? in->since_tick == 0 : now < in->next_tick)
        return 0;
    in->next_tick = now + o->tick_interval;
    in->since_tick = 0;
    return o->cfg != NULL ? own_checkpoint(in, error_r) : o->tick(o->tick_ctx, error_r);
}

/* Commit the open batch, then take its entries out of the spool. */
static int commit_batch(struct ingest *in, char **error_r)
{
    GPtrArray *b = in->batch;

    if (b->len == 0)
        return 0;
    if (arc_pipe_drain(in->pipe, error_r) < 0 || arc_flush(in->arc, error_r) < 0)
        return -1;
    for (guint i = 0; i < b->len; i++)
        if (spool_remove(in->spool, g_ptr_array_index(b, i), error_r) < 0)
            return -1;
    if (spool_sync(in->spool, error_r) < 0)
        return -1;
    log_debug("ingest: committed %" G_GUINT64_FORMAT " entries (%" G_GUINT64_FORMAT " bytes)",
              in->batch_entries, in->batch_bytes);
    in->st->archived += in->batch_entries;
    in->st->bytes += in->batch_bytes;
    in->st->dups += in->batch_dups;
    in->st->batches++;
    in->since_tick += in->batch_entries;
    in->last_work = cus_now();
    in->batch_entries = 0;
    in->batch_bytes = 0;
    in->batch_dups = 0;
    g_ptr_array_set_size(b, 0);
    return 0;
}

/* Hand one entry to the pipeline. */
static int ingest_entry(struct ingest *in, const struct spool_entry *e, const char *name,
                        char **error_r)
{
    struct idx_envelope env;
    char *where;
    int ret;

    memset(&env, 0, sizeof(env));
    env.time = e->time;
    env.sender = e->sender;
    env.client = e->client;
    env.queue_id = e->queue_id;
    env.source = e->source;
    env.rcpts = (const char *const *)e->rcpts;
    env.spool_id = e->id;
    env.auth = e->auth;
    env.findings = e->findings;
    env.n_findings = e->n_findings;
    env.sha256 = e->sha256;     /* checked by spool_read_all(): not hashed again */
    where = strcmp(e->id, name) == 0 ? g_strdup_printf("spool entry %s", name)
                                     : g_strdup_printf("spool entry %s (journal %s)", e->id, name);
    ret = arc_pipe_add(in->pipe, e->raw, &env, where, error_r);
    g_free(where);
    if (ret == 0) {
        in->batch_entries++;
        in->batch_bytes += g_bytes_get_size(e->raw);
    }
    return ret;
}

/* Hand one file of new/ (an entry, or a journal of them) to the pipeline,
 * or move it to failed/. */
static int ingest_one(struct ingest *in, const char *name, char **error_r)
{
    GPtrArray *entries = NULL, *reasons = NULL;
    char *err = NULL;
    guint failed = 0;
    int ret = 0, why;

    if (spool_read_all(in->spool, name, &entries, &failed, &reasons, &err) < 0) {
        why = errno;
        if (why == ENOENT) {
            log_warn("spool entry %s vanished before it was read; skipped", name);
            g_free(err);
            return 0;
        }
        log_warn("spool entry %s moved to failed/: %s", name, err);
        ret = spool_fail(in->spool, name, err, error_r);
        g_free(err);
        if (ret == 0)
            in->st->failed++;
        return ret;
    }
    for (guint i = 0; reasons != NULL && i < reasons->len; i++)
        log_warn("%s", (const char *)g_ptr_array_index(reasons, i));
    in->st->failed += failed;
    for (guint i = 0; i < entries->len && ret == 0; i++)
        ret = ingest_entry(in, g_ptr_array_index(entries, i), name, error_r);
    if (ret == 0)
        g_ptr_array_add(in->batch, g_strdup(name));
    g_ptr_array_free(entries, TRUE);
    if (reasons != NULL)
        g_ptr_array_free(reasons, TRUE);
    return ret;
}

/* One pass over what SPOOL/new/ holds now. */
static int drain(struct ingest *in, char **error_r)
{
    GPtrArray *ids = NULL;
    guint moved = 0;
    int ret = 0;

    /* the journals no custos-milter holds (it was killed, it crashed) */
    if (spool_recover(in->spool, &moved, error_r) < 0)
        return -1;
    if (moved > 0)
        log_info("ingest: %u journals no writer holds taken from %s/journal", moved,
                 in->spool);
    if (spool_list(in->spool, &ids, error_r) < 0)
        return -1;
    for (guint i = 0; i < ids->len && !ingest_stopping && ret == 0; i++) {
        if (in->o->cfg != NULL && in->arc == NULL && (ret = arc_ensure(in, error_r)) < 0)
            break;
        ret = ingest_one(in, g_ptr_array_index(ids, i), error_r);
        if (ret == 0 && in->batch_entries >= (guint64)in->batch_size) {
            ret = commit_batch(in, error_r);
            if (ret == 0)
                ret = maybe_tick(in, 0, error_r);
            if (ret == 0 && in->o->cfg != NULL && arc_writer_wanted(in->arc))
                arc_release(in, 1);
        }
    }
    if (ret == 0)
        ret = commit_batch(in, error_r);
    if (ret == 0)
        ret = maybe_tick(in, 0, error_r);
    g_ptr_array_free(ids, TRUE);
    return ret;
}

/* Read (and drop) every pending inotify event: they only wake us up. */
static void inotify_consume(int ifd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    while ((n = read(ifd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            if (ev->mask & IN_Q_OVERFLOW)
                log_debug("ingest: inotify queue overflowed; rescanning the spool");
            off += (ssize_t)sizeof(struct inotify_event) + ev->len;
        }
    }
}

/* Entries come in bursts: wait until the burst pauses (INGEST_GATHER_MS
 * without a new entry) or gather_max_ms have passed since it began. Ingest
 * runs at idle priority, but while it works it still takes memory
 * bandwidth, caches and the disk from Postfix and custos-milter in the
 * middle of a burst; after it, a bigger batch costs less per entry too. A
 * signal or a writer waiting for the archive ends the wait at once. */
static void gather(struct ingest *in, int ifd)
{
    struct pollfd fds[2] = { { ifd, POLLIN, 0 }, { sig_pipe[0], POLLIN, 0 } };
    double end = cus_now() + in->o->gather_max_ms / 1000.0;

    for (int first = 1;; first = 0) {
        int wait = INGEST_GATHER_MS;

        inotify_consume(ifd);
        if (!first) {
            double left = end - cus_now();
            if (left <= 0)
                break;
            wait = MIN(wait, (int)(left * 1000) + 1);
        }
        if (poll(fds, sig_pipe[0] >= 0 ? 2 : 1, wait) <= 0)
            break;              /* quiet (or EINTR: a signal) */
        if ((fds[1].revents & POLLIN) || ingest_stopping ||
            (in->arc != NULL && arc_writer_wanted(in->arc)))
            break;
    }
    inotify_consume(ifd);
}

/* Wait for an entry, a signal or the next tick. */
static int wait_for_work(struct ingest *in, int ifd, char **error_r)
{
    struct pollfd fds[2] = { { ifd, POLLIN, 0 }, { sig_pipe[0], POLLIN, 0 } };
    int timeout = -1, n;
    char c;

    if ((in->o->tick != NULL || in->o->cfg != NULL) && in->o->tick_interval > 0) {
        double left = in->next_tick - cus_now();
        timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
    }
    /* Holding the archive: look for a writer waiting for it now and then. */
    if (in->arc != NULL && in->o->cfg != NULL && (timeout < 0 || timeout > 200))
        timeout = 200;
    n = poll(fds, sig_pipe[0] >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR)
        return cus_error_errno(error_r, "ingest: poll() failed");
    if (n > 0 && (fds[0].revents & POLLIN))
        gather(in, ifd);
    if (n > 0 && sig_pipe[0] >= 0)
        while (read(sig_pipe[0], &c, 1) > 0)
            ;
    return 0;
}

static int take_lock(const char *spool_dir, int *fd_r, char **error_r)
{
    char *path = g_build_filename(spool_dir, "ingest.lock", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);

    if (fd < 0) {
        cus_error_errno(error_r, "open(%s) failed", path);
        g_free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            cus_error(error_r, "another ingest is running on %s (%s is locked)",
                      spool_dir, path);
        else
            cus_error_errno(error_r, "flock(%s) failed", path);
        close(fd);
        g_free(path);
        return -1;
    }
    g_free(path);
    *fd_r = fd;
    return 0;
}

int ingest_run(struct arc *arc, const char *spool_dir, const struct ingest_opts *o,
               struct ingest_stats *st, char **error_r)
{
    struct ingest in = { 0 };
    struct sigaction sa, old_term, old_int;
    char *newdir = g_build_filename(spool_dir, "new", NULL), *err = NULL;
    int lock_fd = -1, ifd = -1, handlers = 0, ret = -1;

    memset(st, 0, sizeof(*st));
    in.arc = arc;
    in.spool = spool_dir;
    in.o = o;
    in.st = st;
    in.batch = g_ptr_array_new_with_free_func(g_free);
    in.batch_size = o->batch > 0 ? o->batch : INGEST_BATCH_DEFAULT;
    in.next_tick = cus_now() + o->tick_interval;
    in.last_work = cus_now();
    ingest_stopping = 0;

    if (spool_init(spool_dir, error_r) < 0 || take_lock(spool_dir, &lock_fd, error_r) < 0)
        goto out;
    if (o->follow) {
        /* Before the first listing, so no entry slips between the two. */
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0) {
            cus_error_errno(error_r, "inotify_init1() failed");
            goto out;
        }
        if (inotify_add_watch(ifd, newdir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
            cus_error_errno(error_r, "inotify_add_watch(%s) failed", newdir);
            goto out;
        }
    }
    if (o->signals) {
        if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
            cus_error_errno(error_r, "pipe2() failed");
            goto out;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGINT, &sa, &old_int);
        handlers = 1;
    }
    if (o->cfg != NULL)
        arc_set_cancel(&ingest_stopping);
    else if (arc_pipe_new(arc, o->threads, pipe_done, &in, &in.pipe, error_r) < 0)
        goto out;
    for (;;) {
        if (drain(&in, &err) < 0)
            goto failed;
        if (ingest_stopping || !o->follow)
            break;
        if (in.arc != NULL && o->cfg != NULL) {
            if (arc_writer_wanted(in.arc))
                arc_release(&in, 1);
            else if (cus_now() - in.last_work >= IDLE_RELEASE)
                arc_release(&in, 0);
        }
        if (wait_for_work(&in, ifd, &err) < 0)
            goto failed;
        if (ingest_stopping)
            break;
    }
    if (maybe_tick(&in, 1, &err) < 0)
        goto failed;
    ret = 0;
    goto out;
failed:
    /* Nothing of the open batch is kept; its entries stay in new/. */
    arc_pipe_free(&in.pipe);
    if (in.arc != NULL)
        arc_abort(in.arc);
    cus_error(error_r, "%s; ingest stopped, entries not committed stay in %s for the next run",
              err, newdir);
    g_free(err);
out:
    arc_pipe_free(&in.pipe);
    if (o->cfg != NULL) {
        if (in.arc != NULL)
            arc_close(&in.arc);
        arc_set_cancel(NULL);
    }
    if (handlers) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
    }
    for (int i = 0; i < 2; i++) {
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
        sig_pipe[i] = -1;
    }
    if (ifd >= 0)
        close(ifd);
    if (lock_fd >= 0)
        close(lock_fd);
    g_ptr_array_free(in.batch, TRUE);
    g_free(newdir);
    return ret;
}
