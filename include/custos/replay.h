/*
 * replay.h - index what the segments hold (roll forward, reindex)
 *
 * Walks the store from a record boundary and writes what it finds into an
 * index in an open transaction: each group of records (message, delivery,
 * chain event; see archive.h) once its chain event is read, checkpoints as
 * they come. The archive id and the times come from the records, so an
 * index rebuilt this way matches the one written at the time. A record
 * that does not decode, or a group that cannot be applied, is logged and
 * counted (stats.problems) and the walk goes on. Records after the last
 * whole unit (a group, a checkpoint, a dictionary) are counted as pending:
 * an unfinished group, which the caller may cut off (complete_end).
 */
#ifndef CUSTOS_REPLAY_H
#define CUSTOS_REPLAY_H

#include <glib.h>
#include "custos/index.h"
#include "custos/msg.h"
#include "custos/store.h"

struct replay_stats {
    gint64 messages, deliveries, events, checkpoints;
    gint64 problems;        /* records or groups not indexed */
    gint64 pending;         /* records of an unfinished last group */
    gint64 seq;             /* chain head after the walk */
};

struct replay;

/* Continue the chain from (seq, head): h_seq of the index being written. */
struct replay *replay_new(struct idx *idx, const struct msg_limits *lim, gint64 seq,
                          const unsigned char head[CUS_SHA256_LEN]);
/* Walk from `from` (segment 0: the beginning). -1 only for I/O and index
 * errors. */
int replay_run(struct replay *rp, struct store *st, const struct store_loc *from,
               char **error_r);
/* Counts so far; complete_end: the end of the last whole unit. */
void replay_stats(struct replay *rp, struct replay_stats *stats,
                  struct store_loc *complete_end);
void replay_free(struct replay **rp);

#endif
