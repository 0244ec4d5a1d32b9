/*
 * verify.h - prove the archive is whole and unaltered
 *
 * verify_run() re-reads every segment sequentially (records decoded and
 * hash-checked by worker threads), recomputes the hash chain from the
 * event records, checks every checkpoint against it and its Ed25519
 * signature, and cross-checks index.db (messages, deliveries, chain and
 * checkpoint rows) against the segments, in one read transaction of the
 * index. Read-only: it takes no lock and may run beside a writer; records a
 * writer appended after the index snapshot are counted, not judged.
 *
 * Each problem is reported once, with where it is:
 *   kind      altered   a record that does not decode or whose SHA-256
 *                       differs, a header that does not parse
 *             truncated a segment or the store ends early
 *             missing   something referred to (by the chain or index.db)
 *                       that is not there
 *             extra     something that nothing refers to
 *             reordered chain entries out of order, or a duplicate seq
 *             misplaced an object not where index.db says (swapped ones)
 *             mismatch  index.db or a checkpoint disagrees with the chain
 *                       the events give
 *             signature a checkpoint whose signature does not check out
 *   object    message, delivery, event, checkpoint, segment, index, audit,
 *             hold, purged, incident
 *
 * Governance, also from the chain: a message record missing because
 * retention purged it (a "purge" event for that id and hash, and its purged
 * row) is not a problem -- verify_run_ex() reports each such message to its
 * purged callback and counts them; a purge whose message record is still
 * in the store is a problem (not really gone), unless index.db still has it
 * as awaiting its segment's rewrite (counted, not judged: a retention run
 * in progress, or one the next writer finishes). Every "audit" event must
 * match the audit row with its audit-id field for field (else "altered
 * audit"), and be there ("missing audit"); a row marked sealed by an event
 * that does not hold it is "extra"; an id missing among the audit ids
 * (AUTOINCREMENT leaves no gaps: a row deleted before it was sealed) is
 * "missing audit". Holds rows and "hold"/"hold-release" events, purged rows
 * and "purge" events, the same, both ways. Every "incident" event must
 * have its incidents row (by chain seq) with the same fields ("missing" /
 * "altered incident"); a row no incident event holds is "extra".
 */
#ifndef CUSTOS_VERIFY_H
#define CUSTOS_VERIFY_H

#include <glib.h>
#include "custos/cfg.h"

struct verify_problem {
    const char *kind, *object;
    gint64 id;              /* archive id, 0 if none */
    gint64 seq;             /* chain seq, 0 if none */
    char sha256[CUS_SHA256_HEX]; /* "" if none */
    uint32_t segment;       /* 0 if not in a segment */
    uint64_t offset;
    const char *detail;
};

struct verify_stats {
    gint64 records, messages, deliveries, events, checkpoints, signed_checkpoints;
    gint64 uncommitted;     /* records after the index snapshot */
    gint64 problems;
    guint64 segment_bytes;  /* bytes of segment files read */
    int segments;
    int signatures_checked; /* a verify key was at hand */
    char key[64];           /* its id, "" if none */
    gint64 head_seq;
    char head[CUS_SHA256_HEX];
    double seconds;
    gint64 purged;          /* messages purged by retention */
    gint64 purge_pending;   /* of them, records still in the store awaiting
                             * their segment's rewrite */
    gint64 audit_entries;   /* sealed audit entries checked */
    gint64 holds;           /* legal holds (placed, and released) checked */
    gint64 incidents;       /* incident events checked against their rows */
};

/* A message retention purged, as its tombstone says. */
struct verify_purged {
    gint64 id;              /* archive id */
    gint64 seq;             /* the "purge" chain entry */
    gint64 time;            /* when purged */
    gint64 archived;        /* when it had been archived */
    char sha256[CUS_SHA256_HEX];
    const char *rule;       /* e.g. "department.sales 10y" */
    int pending;            /* its record is still in the store, awaiting
                             * the rewrite of its segment */
};

typedef void verify_cb(void *ctx, const struct verify_problem *p);

/* 0 (look at stats->problems), or -1 if the archive cannot be read at
 * all (error_r). threads <= 0: one per CPU. */
int verify_run(const struct cfg *cfg, int threads, verify_cb *cb, void *ctx,
               struct verify_stats *stats, char **error_r);

/* verify_run(), and purged_cb (may be NULL) for each purged message, in
 * chain order, after the problems. */
typedef void verify_purged_cb(void *ctx, const struct verify_purged *p);
int verify_run_ex(const struct cfg *cfg, int threads, verify_cb *cb,
                  verify_purged_cb *purged_cb, void *ctx, struct verify_stats *stats,
                  char **error_r);

#endif
