/*
 * incident.h - what custos-milter flagged, kept in the archive
 *
 * Every finding a spool entry carries (spool.h: category, rule, action,
 * evidence) becomes an incident when ingest archives the entry: one
 * "incident" chain event per finding, written in the same batch as the
 * message's add (or deliver) event, and one row of index.db's incidents
 * table (index.h, schema v4). A flagged message is archived whatever the
 * archive's scope, a rejected one (action reject) too: it is the evidence
 * of an attempt.
 *
 * Canonical fields of an "incident" event (chain.h), in this order:
 *   id N                the archive id of the message
 *   message HEX64       the SHA-256 of its raw bytes
 *   spool-id ID         the spool entry it came in (absent if none)
 *   n N                 which finding of that entry (1, 2, ...)
 *   received T          unix time the message was received (and flagged)
 *   category WORD  rule WORD  action WORD   tokens [a-z0-9./_-]+
 *   evidence TEXT       as the detector wrote it (masked there: det-text.h)
 *   sender ADDR         envelope sender ("" for <>)
 *   auth LOGIN          SASL login (absent if none)
 *   rcpt ADDR           one per envelope recipient
 * The row holds the same; sender and rcpts lower case (rcpts joined by
 * LF). An entry archived again (a crash between commit and unlink) adds
 * only the incidents it does not have yet: (spool-id, n) is unique.
 *
 * Retention: a purge of the message removes the message and its
 * deliveries, never its incidents: the rows and events stay, with the
 * archive id of a message that is gone (incident.purged says so).
 */
#ifndef CUSTOS_INCIDENT_H
#define CUSTOS_INCIDENT_H

#include <glib.h>
#include "custos/chain.h"
#include "custos/index.h"
#include "custos/query.h"

struct incident {
    gint64 seq;                 /* its chain entry */
    gint64 msg;                 /* archive id */
    gint64 time;                /* received */
    int n;                      /* finding number within its spool entry */
    char sha256[CUS_SHA256_HEX];
    char *spool_id;             /* "" if none */
    char *category, *rule, *action, *evidence;
    char *sender, *auth;        /* auth "" if none */
    char **rcpts;               /* NULL-terminated, never NULL */
    int purged;                 /* the message was purged (lists only) */
};

/* The fields of an "incident" event (key, value, ..., NULL), copies the
 * array owns (g_ptr_array_free(kv, TRUE)). */
GPtrArray *incident_fields(const struct incident *inc);
/* The incident an event holds (strings newly allocated; seq and time from
 * the event): 0, or -1 naming a missing or malformed field. */
int incident_from_event(const struct chain_event *ev, struct incident *inc, char **error_r);
/* Write its row (ingest; reindex and roll forward through
 * incident_apply_event). */
int incident_insert(struct idx *idx, const struct incident *inc, char **error_r);
int incident_apply_event(struct idx *idx, const struct chain_event *ev, char **error_r);
/* A row of "SELECT " INCIDENT_COLS " FROM incidents i" (any connection). */
#define INCIDENT_COLS "i.seq, i.msg, i.time, i.n, i.sha256, coalesce(i.spool_id, ''), " \
    "i.category, i.rule, i.action, i.evidence, i.sender, i.auth, i.rcpts, " \
    "EXISTS (SELECT 1 FROM purged p WHERE p.id = i.msg)"
struct sqlite3_stmt;
void incident_from_row(struct sqlite3_stmt *st, struct incident *inc);
/* The first field in which a row differs from the incident its event
 * holds (as incident_insert() would write it), or NULL (verify). */
const char *incident_diff(const struct incident *row, const struct incident *ev);

/* Is finding n of spool entry spool_id an incident already? 1, 0, -1. */
int incident_exists(struct idx *idx, const char *spool_id, int n, char **error_r);

/* Which incidents to list; zero/NULL members do not filter. */
struct incident_filter {
    gint64 since, until;        /* time >= since, time < until (0: unbounded) */
    const char *category;       /* exactly this category */
    gint64 msg;                 /* of this archive id */
    const char *const *senders; /* envelope sender or SASL login is one of
                                 * these addresses (ASCII case ignored) */
    const struct qry *query;    /* the message matches (query.h); a purged
                                 * message matches no query */
    gint64 limit;               /* at most this many (<= 0: all) */
};

/* Incidents matching f, oldest first (time, then chain order); cb gets
 * each (borrowed); a cb returning non-zero stops the listing with that. */
typedef int incident_cb(void *ctx, const struct incident *inc);
int incident_list(struct idx *idx, const struct incident_filter *f, incident_cb *cb,
                  void *ctx, char **error_r);

/* For custos-handover's report: the incidents of one employee (any of
 * addrs as envelope sender or SASL login) since the unix time since, oldest
 * first; *out_r holds struct incident *, freed with the array. */
int incident_of_employee(struct idx *idx, const char *const *addrs, gint64 since,
                         GPtrArray **out_r, char **error_r);

void incident_clear(struct incident *inc);
void incident_free(struct incident *inc);

#endif
