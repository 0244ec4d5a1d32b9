/*
 * audit.h - who read or changed the archive, and when
 *
 * Every command that reads mail out of the archive or changes what it
 * keeps (search, show, export, holds, retention, directory changes, later
 * handover) records one entry: the Unix user, the time, the command, its
 * arguments (the query), how many results, how it ended. The entry is
 * written to index.db's audit table *before* the command reads anything
 * (no entry, no answer) and finished when it is done.
 *
 * The writer of the archive (any process holding its lock: ingest, import,
 * retention, ...) seals finished entries into the hash chain, in id order,
 * as "audit" events at each commit; from then on deleting or editing the
 * row makes verify fail, and so does a gap in the ids (a row deleted
 * before it was sealed). Canonical fields of an "audit" event, in order:
 *
 *   audit-id N, at T (unix time of the command), user NAME, uid N,
 *   command WORD, args TEXT, results N (-1 unknown), status N, detail TEXT
 *
 * status: 0 done, 1 done with something skipped or not found, >1 the exit
 * status it failed with, -1 still running (or died: sealed as it is after
 * AUDIT_STALE seconds).
 */
#ifndef CUSTOS_AUDIT_H
#define CUSTOS_AUDIT_H

#include <glib.h>
#include "custos/chain.h"
#include "custos/index.h"

#define AUDIT_STALE (24 * 3600)

struct audit_entry {
    gint64 id, time, uid, results, seq;     /* seq 0: not sealed yet */
    int status;
    char *user, *command, *args, *detail;
};

/* The calling user: the login name of the real uid ("uid 1234" if it has
 * none); under sudo, "root (sudo: alice)". g_free it. */
char *audit_user(gint64 *uid_r);

/* Record that the calling user starts command with args: a row with
 * status -1. Fails (and the command must not go on) if it cannot be
 * written, with a message saying so. */
int audit_begin(struct idx *idx, const char *command, const char *args, gint64 *id_r,
                char **error_r);
/* Finish entry id: results (-1 unknown), status, detail ("" or e.g. the
 * SHA-256 of an export's manifest). */
int audit_end(struct idx *idx, gint64 id, gint64 results, int status, const char *detail,
              char **error_r);

/* Entries (time >= since), oldest first. */
typedef int audit_cb(void *ctx, const struct audit_entry *e);
int audit_list(struct idx *idx, gint64 since, audit_cb *cb, void *ctx, char **error_r);

/* Entries a writer should seal now (finished, or stale), oldest first:
 * the array holds struct audit_entry *, freed with it. */
int audit_pending(struct idx *idx, gint64 now, GPtrArray **entries_r, char **error_r);

/* The event's fields (key, value, ..., NULL; strings owned by the array
 * and by e). */
GPtrArray *audit_fields(const struct audit_entry *e);
/* The entry an "audit" event holds (strings newly allocated): 0, or -1 if
 * a field is missing or malformed. */
int audit_from_event(const struct chain_event *ev, struct audit_entry *e, char **error_r);

/* Mark entry id as sealed by chain entry seq. */
int audit_sealed(struct idx *idx, gint64 id, gint64 seq, char **error_r);
/* Write the entry an event holds (reindex, roll forward): the row as the
 * event has it, sealed by ev->seq. */
int audit_apply_event(struct idx *idx, const struct chain_event *ev, char **error_r);

void audit_entry_clear(struct audit_entry *e);
void audit_entry_free(struct audit_entry *e);

#endif
