/*
 * archive.h - the archive: store + index behind one handle
 *
 * DIR (mode 0700) holds store/ (segments) and index.db. arc_add() archives
 * one delivery of a raw message: the raw bytes are stored once per SHA-256
 * (the index's UNIQUE constraint), every delivery and its envelope
 * recipients are kept, also when the same bytes arrive again. Adds are
 * batched: arc_flush() (or the batch filling up) fsyncs the store, then
 * commits the index, so an index row never points at bytes that are not on
 * disk. Until then nothing of the batch is promised.
 *
 * Every add writes one group of records -- the message (if new), its
 * delivery (envelope JSON), its chain event (chain.h) -- and a writer's
 * arc_open() indexes whole groups a crash left stored but uncommitted, and
 * cuts off an unfinished one. So the segments alone hold everything, and
 * index.db never misses what they hold.
 */
#ifndef CUSTOS_ARCHIVE_H
#define CUSTOS_ARCHIVE_H

#include <signal.h>
#include <glib.h>
#include "custos/cfg.h"
#include "custos/index.h"
#include "custos/msg.h"
#include "custos/replay.h"
#include "custos/store.h"

#define ARC_WRITE 1     /* the writer: takes the archive's lock */
#define ARC_AUDIT 2     /* a reader that records audit entries (audit.h):
                         * index.db opened read-write, no lock */
#define ARC_WAIT 4      /* a writer whose lock another holds waits for it
                         * (CUSTOS_LOCK_WAIT seconds, ARC_LOCK_WAIT by
                         * default; a long-running writer lets it go for
                         * a waiter, see arc_writer_wanted) */
#define ARC_WAIT_ALWAYS 16 /* ARC_WAIT without a time limit (ingest) */
#define ARC_NO_CLOSE_CHECKPOINT 8 /* arc_close() makes no checkpoint (the
                         * caller makes its own, e.g. every interval) */

#define ARC_LOCK_WAIT 120

struct arc;

/* Stop waiting for the lock once *flag is set (by a signal handler). */
void arc_set_cancel(const volatile sig_atomic_t *flag);

/* A writer: does another process wait for the lock (ARC_WAIT)? Then the
 * writer should commit, arc_close(), store_wait_for_waiters(), and open
 * again with ARC_WAIT. */
int arc_writer_wanted(struct arc *arc);

struct arc;

/* Create the archive at cfg->arc_dir (idempotent). */
int arc_init(const struct cfg *cfg, char **error_r);

int arc_open(const struct cfg *cfg, int flags, struct arc **arc_r, char **error_r);
/* Close; a pending batch is flushed (errors logged) first. A writer that
 * extended the chain (and did not arc_abort()) makes a checkpoint of it,
 * as arc_checkpoint(arc, 0, ...) would. */
void arc_close(struct arc **arc);

struct idx *arc_index(struct arc *arc);
struct store *arc_store(struct arc *arc);
const struct msg_limits *arc_limits(struct arc *arc);
/* The parse limits of cfg's [limits] (what arc_limits() holds). */
void arc_limits_from_cfg(const struct cfg *cfg, struct msg_limits *lim);

/* Archive one delivery. env may have rcpts NULL (no envelope known, e.g.
 * an import): then a message already archived is not recorded again.
 * *id_r the archive id; *dup_r 1 if the raw bytes were already archived. */
int arc_add(struct arc *arc, const void *raw, size_t len,
            const struct idx_envelope *env, gint64 *id_r, int *dup_r,
            char **error_r);

/* Append a chain event of type (not "add" or "deliver": those are
 * arc_add's) about message msg (0: none) with fields kv (key, value, ...,
 * NULL) to the open batch, as a group of its own. The caller writes its
 * index rows for it in the same transaction; arc_flush() makes both
 * durable, arc_abort() drops both. *seq_r its chain position. Every
 * flush also seals the finished audit entries (audit.h). */
int arc_event(struct arc *arc, const char *type, gint64 msg, const char *const *kv,
              gint64 *seq_r, char **error_r);

/* The newest chain event of type whose field key has value (its first
 * such field): 1 and *seq_r, 0 if there is none, -1. Committed events and
 * those of the open batch alike; for events a caller writes once and must
 * recognise when it runs again (custos-handover's "handover" event). */
int arc_event_find(struct arc *arc, const char *type, const char *key, const char *value,
                   gint64 *seq_r, char **error_r);

/* A parse pipeline: arc_pipe_add() hands a message to worker threads
 * (hashing, MIME parsing) and writes finished ones to the archive in
 * submission order from the calling thread; cb reports each (ret 0 or -1,
 * archive id, dup). arc_pipe_drain() writes all that is pending. After a
 * -1 the archive failed: stop, arc_abort(), arc_pipe_free(). threads <= 0:
 * one per CPU (at most 4). */
struct arc_pipe;
typedef void arc_pipe_cb(void *ctx, const char *where, int ret, gint64 id, int dup);
int arc_pipe_new(struct arc *arc, int threads, arc_pipe_cb *cb, void *ctx,
                 struct arc_pipe **pipe_r, char **error_r);
int arc_pipe_add(struct arc_pipe *p, GBytes *raw, const struct idx_envelope *env,
                 const char *where, char **error_r);
int arc_pipe_drain(struct arc_pipe *p, char **error_r);
void arc_pipe_free(struct arc_pipe **p);

/* Make every add so far durable: fsync the store, commit the index. */
int arc_flush(struct arc *arc, char **error_r);

/* Drop the pending batch (after an error). */
void arc_abort(struct arc *arc);

/* Flush, then append a checkpoint of the chain head (chain.h), signed with
 * [chain] sign_key if one is configured. Unless force, nothing is made
 * when the newest checkpoint is already at the head (or the chain is
 * empty): info->made says. */
struct arc_checkpoint_info {
    int made;
    gint64 seq, time;
    unsigned char hash[CUS_SHA256_LEN];
    char key[64];           /* "none" or "ed25519:..." */
};
int arc_checkpoint(struct arc *arc, int force, struct arc_checkpoint_info *info,
                   char **error_r);

/* The exact raw bytes of message id (hash re-checked). 0, or -1; a
 * missing id is an error saying so. */
int arc_get_raw(struct arc *arc, gint64 id, GBytes **raw_r, char **error_r);

/* Rebuild index.db from the segments alone (under the writer's lock): a
 * new index is built beside it, synced, and put in place; the old one is
 * kept as index.db.before-reindex-TIME. rs: what was indexed; records
 * that could not be are logged and counted in rs->problems, and then the
 * new index is left beside the old one (index.db.reindex) unless force. */
int arc_reindex(const struct cfg *cfg, int force, struct replay_stats *rs, char **error_r);

#endif
