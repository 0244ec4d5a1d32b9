/*
 * ingest.h - move spool entries into the archive
 *
 * Entries are taken oldest first (spool_list) and archived in batches
 * through the parse pipeline (arc_pipe_*), each with its envelope and its
 * spool id. A batch ends with arc_flush() (store fsync, index commit) and
 * only then are its entries removed from SPOOL/new/ and the directory
 * fsync'd. A crash anywhere loses nothing: an entry committed but not yet
 * removed is found by its spool id on the next run, removed, and not
 * archived twice.
 *
 * An entry that cannot be read or parsed is moved to SPOOL/failed/ with
 * the reason (spool_fail), logged and counted; the others go on. An
 * archive error (disk full, I/O) stops the run: the open batch is dropped
 * (arc_abort) and every entry not committed stays in SPOOL/new/.
 *
 * One ingest at a time per spool: ingest_run() takes an flock on
 * SPOOL/ingest.lock (not a spool id, so spool_list never sees it).
 *
 * With opts.cfg, ingest_run() holds the archive only while it has work:
 * it opens it (waiting for another writer if need be) when entries come,
 * and lets it go after IDLE_RELEASE seconds with nothing to do, or at once
 * (after committing its batch) when another writer waits for the lock
 * (arc_writer_wanted) -- so retention, holds, directory imports run
 * beside ingest --follow. It makes its own checkpoints then: every
 * tick_interval seconds, and at the end if it archived anything.
 */
#ifndef CUSTOS_INGEST_H
#define CUSTOS_INGEST_H

#include <glib.h>
#include "custos/archive.h"

struct ingest_opts {
    const struct cfg *cfg;  /* the archive to open when there is work (arc
                             * given to ingest_run() is then NULL), or NULL */
    int batch;          /* entries per commit; <= 0: INGEST_BATCH_DEFAULT. The
                         * archive's own batch (cfg arc_batch) should be >= this,
                         * else it commits sooner (harmless: entries then wait in
                         * the spool a little longer) */
    int threads;        /* parser threads; <= 0: one per CPU, at most 4 */
    int follow;         /* after the spool is empty, wait (inotify on
                         * SPOOL/new/) for more until stopped by a signal */
    int gather_max_ms;  /* --follow: while entries keep arriving, gather them
                         * for up to this long before a batch starts (see
                         * INGEST_GATHER_MS); <= 0: INGEST_GATHER_MS once */
    int signals;        /* catch SIGTERM and SIGINT while running: finish and
                         * commit the current batch, then return 0 */
    /* Periodic work (e.g. a chain checkpoint): called between batches, with
     * everything archived so far committed, once tick_interval seconds have
     * passed since the start or the last call (in --follow the wait wakes up
     * for it), and once more at a clean end of the run if entries were
     * archived since the last call. -1 stops the run with its error.
     * tick NULL or tick_interval <= 0: never. */
    int tick_interval;
    int (*tick)(void *ctx, char **error_r);
    void *tick_ctx;
};

#define INGEST_BATCH_DEFAULT 500
/* --follow: after an entry arrives, the batch starts once no other has
 * come for this long (or gather_max_ms after the first): batches of many
 * entries while mail flows instead of one commit per message, and no
 * archiving in the middle of a burst, when Postfix and custos-milter need
 * the CPU. custos-milter hands its journal over every fifth of a second
 * while mail comes: this is longer. */
#define INGEST_GATHER_MS 500

struct ingest_stats {
    guint64 archived;   /* entries committed to the archive and removed */
    guint64 dups;       /* of those, bytes already archived (the same message
                         * delivered again, or the entry itself committed
                         * before a crash) */
    guint64 failed;     /* entries moved to SPOOL/failed/ */
    guint64 bytes;      /* raw bytes of the archived entries */
    guint64 batches;    /* commits */
};

/* Ingest what is in spool_dir (created if missing) into arc, opened with
 * ARC_WRITE (or, arc NULL, into opts->cfg's archive, see above). 0 when every entry was archived or moved to failed/ (see
 * st->failed), or when stopped by a signal; -1 on an archive or spool I/O
 * error, with error_r saying what failed and that the rest stays queued.
 * st is zeroed first. */
int ingest_run(struct arc *arc, const char *spool_dir, const struct ingest_opts *o,
               struct ingest_stats *st, char **error_r);

#endif
