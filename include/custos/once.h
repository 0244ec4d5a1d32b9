/*
 * once.h - "at most once per period": a small durable record of when
 * something was last done, by key
 *
 * custos-milter uses it so that a sender who writes to a departed employee
 * gets the notice naming the successor once per [route] notice_days, not
 * with every message. One SQLite file (WAL) in the milter's state
 * directory; a claim is one statement, so concurrent claims of one key
 * (threads of one process, or processes) let exactly one through. Safe to
 * share between threads.
 */
#ifndef CUSTOS_ONCE_H
#define CUSTOS_ONCE_H

#include <glib.h>

struct once;

/* Open (create) the record at path; its directory must exist. */
int once_open(const char *path, struct once **o_r, char **error_r);
void once_close(struct once **o);

/* Claim key at time now (unix seconds): 1 when it was not claimed within
 * the last period seconds (it is now, at now, pending), 0 when it was, -1
 * on error. A pending claim holds others off until it is confirmed (then
 * for the period) or released, for ONCE_PENDING seconds at most, and only
 * while this record stays open: opened again (the process that claimed
 * died, say, between claim and deed), it is gone. */
#define ONCE_PENDING 600
int once_claim(struct once *o, const char *key, gint64 now, gint64 period, char **error_r);
/* What the claim made at now was for was done: it holds for the period. */
int once_confirm(struct once *o, const char *key, gint64 now, char **error_r);
/* Undo the claim made at now (what it was for did not happen): the key is
 * free again. A later claim is left alone. */
int once_release(struct once *o, const char *key, gint64 now, char **error_r);

#endif
