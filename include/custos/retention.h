/*
 * retention.h - how long mail is kept: retention periods, legal holds, purges
 *
 * Periods ([retention] in custos.conf, cfg.h): a message's period is the
 * longest of the department.NAME and rule.NAME entries that apply to it, or
 * default when none does. A department applies when the message's sender or
 * any recipient -- header (From, Sender, To, Cc) or envelope -- is an
 * address of an employee of that department (employees, and their
 * registered personal addresses); a rule when its query matches. Age counts
 * from when the message was archived (messages.added), never from its Date
 * header, which the sender wrote.
 *
 * A legal hold covers whatever its query matches at the time of a run; a
 * message any active hold covers is never purged. Holds are chain events,
 * each with its holds row in the same batch:
 *   "hold"          hold-id, name, query, note, user (who placed it)
 *   "hold-release"  hold-id, name, query, note, user (who released it)
 *
 * A purge, per message, in one batch of the writer:
 *   - chain event "purge", the tombstone: id, message (SHA-256 hex), rule
 *     (e.g. "department.sales 10y"), archived (unix time), size;
 *   - its rows leave index.db (messages, addrs, attachments, deliveries,
 *     rcpts, and its full-text entry, removed with the values re-extracted
 *     from the message the way idx_add_message() indexed them) and a purged
 *     row takes their place, holding where its record is while the record
 *     is still in the store;
 * then the segments that hold such records are rewritten without them. The
 * chain's add and deliver events stay (the chain still verifies); verify
 * knows a purged message by its tombstone.
 *
 * The rewrite, crash-safe (store.h, store_rewrite_*):
 *   1. seg-N.cseg.rewrite written and synced for each segment of a group of
 *      segments (the open segment is sealed first);
 *   2. one index.db transaction moves every location in them (messages,
 *      deliveries, chain, checkpoints, meta store_end), clears the purged
 *      rows' locations and sets meta "rewrite" to the segment numbers: from
 *      this commit on the .rewrite files are the truth;
 *   3. each .rewrite file renamed over its segment, directory synced;
 *   4. meta "rewrite" deleted.
 * A writer's arc_open() calls retention_open_store() before its roll
 * forward (finishes 3 and 4 if "rewrite" is set; removes .rewrite files
 * nothing refers to, i.e. a crash before 2, when the segments still hold
 * what index.db says) and retention_open_finish() after it (1-4 for every
 * purged row that still has a location). Meanwhile readers find records
 * through store_read()'s second look, and verify reads the segments
 * "rewrite" names from their .rewrite files.
 */
#ifndef CUSTOS_RETENTION_H
#define CUSTOS_RETENTION_H

#include <glib.h>
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/chain.h"
#include "custos/index.h"
#include "custos/store.h"

/* One message past its period. */
struct ret_item {
    gint64 id, added, size;
    unsigned char sha[CUS_SHA256_LEN];
    struct store_loc loc;
    const char *rule;           /* "default", "department.NAME", "rule.NAME" */
    struct cfg_period period;
};

struct ret_stats {
    gint64 purged;              /* messages purged (dry run: would be) */
    gint64 bytes;               /* their raw bytes */
    gint64 held;                /* past their period, kept by an active hold */
    gint64 segments;            /* segments rewritten */
    guint64 freed;              /* bytes the rewrites took off them */
    gint64 fts_unmatched;       /* purged messages whose full-text entry did
                                 * not match their text as extracted now
                                 * (reindex drops what may be left) */
};

/* Called for each message purged (once its batch is committed) or, in a
 * dry run, that would be. */
typedef void ret_item_cb(void *ctx, const struct ret_item *it);

/* Purge what is past its period at time now and held by no active hold;
 * dry_run: only say what (arc may then be a reader). Then rewrite the
 * segments. A failure leaves what was committed purged (the rest of the
 * work is finished by the next writer). */
int retention_run(struct arc *arc, const struct cfg *cfg, gint64 now, int dry_run,
                  ret_item_cb *cb, void *ctx, struct ret_stats *stats, char **error_r);

/* The periods in effect, "default 7y; department.sales 10y; rule.legal
 * forever" (g_free). */
char *retention_rules(const struct cfg *cfg);

/* ---- legal holds ---- */

struct hold {
    gint64 id, created, released, seq, release_seq;    /* released 0: active */
    const char *name, *query, *note, *created_by, *released_by;
};

enum hold_status { HOLD_OK = 0, HOLD_ERROR = -1, HOLD_BAD_INPUT = -2 };

/* Place a hold (arc: the writer). HOLD_BAD_INPUT: a bad name, a query
 * that does not compile, or an active hold of that name; error_r says. */
int hold_add(struct arc *arc, const char *name, const char *query, const char *note,
             gint64 *seq_r, char **error_r);
/* Release the active hold of that name; HOLD_BAD_INPUT if there is none. */
int hold_release(struct arc *arc, const char *name, gint64 *seq_r, char **error_r);
/* Every hold, active ones first, then by id. */
typedef int hold_cb(void *ctx, const struct hold *h);
int hold_list(struct idx *idx, hold_cb *cb, void *ctx, char **error_r);
/* How many messages a query matches now. */
int hold_matches(struct idx *idx, const char *query, gint64 *n_r, char **error_r);

/* ---- the writer's open (archive.c) and replay (replay.c) ---- */

int retention_open_store(struct idx *idx, struct store *st, char **error_r);
int retention_open_finish(struct idx *idx, struct store *st, char **error_r);

/* Write the rows a "purge", "hold" or "hold-release" event stands for
 * (reindex, roll forward). A purged message still indexed leaves index.db
 * (its bytes are read from st for its full-text entry). */
int retention_apply_event(struct idx *idx, struct store *st, const struct msg_limits *lim,
                          const struct chain_event *ev, char **error_r);

#endif
