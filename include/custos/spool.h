/*
 * spool.h - the durable spool between custos-milter and the archive
 *
 * One file per message under SPOOL/new/, named
 *   TIME.USEC.PID.RANDOM16HEX      (e.g. 1764556800.123456.4242.9f3c0a1be27d4c55)
 * which is its spool id, unique for ever (recorded with the delivery, so
 * an entry ingested twice is archived once). The writer creates it in
 * SPOOL/tmp/, writes, fsyncs, renames into SPOOL/new/ and fsyncs
 * SPOOL/new/: once spool_write() returns 0 the message survives a crash
 * and the milter may let Postfix accept it. Entries that cannot be read
 * are moved to SPOOL/failed/ (with NAME.reason beside them), never deleted.
 *
 * File format, version 1: a text header, an empty line, the raw message.
 *   CUSTOS-SPOOL 1
 *   time 1764556800                 unix time received
 *   client 192.0.2.7 [mx.example]   free text, may be empty
 *   sender alice@example.com        envelope sender, may be empty (<>)
 *   rcpt bob@example.com            one line per envelope recipient (>= 0)
 *   queue-id 4Xk2Lp1z3Nz9           may be empty
 *   source milter                   who wrote it
 *   auth alice                      SASL login; optional (absent: none;
 *                                   never empty)
 *   finding CATEGORY RULE ACTION EVIDENCE
 *                                   optional, one line per finding (>= 0)
 *   size 12345                      bytes of the raw message
 *   sha256 HEX64                    of the raw message
 *   <empty line>
 *   raw message bytes (exactly size of them, nothing after)
 * Header lines are "key SP value" (the space is there when the value is
 * empty too); values are UTF-8 with '%', CR, LF and NUL written as %25,
 * %0D, %0A, %00. Keys in this order; rcpt and finding repeat, auth and
 * finding may be absent (entries written before they existed have
 * neither). An unknown key, a missing key, a size or hash that does not
 * match is an error naming it.
 *
 * A finding is what a detector flagged and what policy did about it:
 * CATEGORY, RULE and ACTION are tokens of [a-z0-9./_-] (at least one
 * byte, nothing else: checked strictly by the writer and the reader), each
 * followed by one space, then EVIDENCE, free text with the escapes above
 * (may be empty; the space before it is still there). Actions known today:
 * tag, notify, hold, reject, strip, monitor (and route); any token is
 * taken, so a new action needs no new format.
 *
 * Strictness, in detail: lines end in LF alone; time and size are decimal
 * digits; sha256 is lower-case hex; a '%' not starting one of the four
 * escapes, a raw CR or NUL in the header, or a value that is not valid
 * UTF-8 is an error. Values are C strings, so the writer never produces
 * %00 and the reader rejects it (a NUL cannot be kept). The writer repairs
 * invalid UTF-8 (U+FFFD) rather than refuse a message. The header is at
 * most SPOOL_HEADER_MAX bytes, the message at most SPOOL_SIZE_MAX.
 *
 * File format, version 2 (the streaming writer: custos-milter writes the
 * message as it arrives, before it knows its size, hash or queue id): the
 * magic line, the raw message, then the same envelope lines as version 1
 * (same keys, order, escapes and rules) and a last line giving their
 * length in bytes, so a reader finds them from the end of the file:
 *   CUSTOS-SPOOL 2
 *   raw message bytes (exactly size of them)
 *   time 1764556800
 *   ...                             every key of version 1, time .. sha256
 *   sha256 HEX64
 *   envelope 187                    bytes from "time" to the end of sha256's line
 * The envelope must end exactly where the "envelope" line starts and the
 * message must be exactly size bytes; anything else (a torn file, a wrong
 * length, bytes between) is an error naming the envelope line. Readers
 * take both versions; spool_write() writes version 1.
 *
 * Journals. A message small enough to be held in memory (the streaming
 * writer's mem_max: custos-milter's [detect] text_size) is not given a
 * file of its own: its entry (version 1) is appended to the process's
 * journal, SPOOL/journal/ID, which all its threads share, and one
 * fdatasync makes every entry appended before it durable (group commit;
 * no file created, renamed or fsync'd per message). A journal is handed
 * to the reader, renamed into SPOOL/new/ under its own id, when it is
 * JOURNAL_MAX bytes or JOURNAL_LINGER_MS old and no append is in flight,
 * and when the process ends (spool_journal_close()). Format:
 *   CUSTOS-JOURNAL 1
 *   entry ID LEN                    ID a fresh spool id (the entry's), LEN
 *   LEN bytes: a version-1 entry    decimal digits
 *   <LF>
 *   entry ID LEN ...                as many as were appended
 * An entry is acknowledged only once its bytes and everything before them
 * are synced, so a journal left by a crash ends with at most one entry
 * that was never acknowledged, possibly torn. The writer holds an
 * flock(2) on its journal as long as it may grow (made as journal/.ID,
 * locked, then named; a .ID that spool_recover() removed between its
 * open and its lock is made again under a new id); a journal no process
 * holds locked is moved into new/ by spool_recover() (custos-milter at
 * start and reload, ingest on every pass), whatever process or PID
 * namespace wrote it. The reader takes every entry that parses; an entry
 * that does not, and a tail that is not an entry (torn), go to failed/ as
 * files of their own with the reason beside them: nothing is dropped.
 */
#ifndef CUSTOS_SPOOL_H
#define CUSTOS_SPOOL_H

#include <stddef.h>
#include <glib.h>
#include "custos/util.h"

#define SPOOL_MAGIC "CUSTOS-SPOOL 1"
#define SPOOL_MAGIC2 "CUSTOS-SPOOL 2"
#define SPOOL_ID_MAX 64
#define SPOOL_JOURNAL_MAGIC "CUSTOS-JOURNAL 1"
#define SPOOL_JOURNAL_MAX (4 * 1024 * 1024)
#define SPOOL_JOURNAL_LINGER_MS 200
#define SPOOL_HEADER_MAX (4 * 1024 * 1024)
#define SPOOL_SIZE_MAX (1024ULL * 1024 * 1024)

/* One finding of the envelope (see above); spool_entry_free() frees the
 * ones spool_parse() made. */
struct spool_finding {
    char *category, *rule, *action;     /* tokens */
    char *evidence;                     /* UTF-8 text */
};

/* An entry's envelope and raw message. */
struct spool_entry {
    char id[SPOOL_ID_MAX + 1];  /* the file name; "" from spool_parse() */
    gint64 time;
    char *client, *sender, *queue_id, *source;
    char **rcpts;               /* NULL-terminated, never NULL */
    char *auth;                 /* SASL login, or NULL (written only when set
                                 * and not empty) */
    struct spool_finding **findings;    /* n_findings of them; NULL when none */
    size_t n_findings;
    GBytes *raw;
    unsigned char sha256[CUS_SHA256_LEN];   /* raw's, checked against the
                                             * entry's sha256 line when read */
};

/* Is s (len bytes of s) a finding token: [a-z0-9./_-]+ ? */
int spool_token_valid(const char *s);
int spool_token_valid_n(const char *s, size_t len);
void spool_finding_free(struct spool_finding **f);

/* 1 if name has the form of a spool id (and so is safe as a file name). */
int spool_id_valid(const char *name);

/* Create SPOOL and its tmp/, new/, failed/, journal/ (mode 0770).
 * Idempotent. Run as root in a spool of another user, the directories it
 * makes are that user's (and group's), as SPOOL is. */
int spool_init(const char *spool_dir, char **error_r);

/* Write one entry durably (see above). e->id is ignored; the new id is
 * copied to id_r (SPOOL_ID_MAX + 1 bytes) if not NULL. On error nothing
 * is left in new/ (the temp file is removed). A finding whose category,
 * rule or action is not a token is an error naming it (nothing written). */
int spool_write(const char *spool_dir, const struct spool_entry *e,
                char *id_r, char **error_r);

/*
 * The streaming writer (format 2): open, write the raw message in pieces as
 * it arrives (buffered, hashed on the way; memory stays at the buffer's
 * size whatever the message's), then commit with the envelope: the
 * envelope lines are appended, the file fsync'd, renamed into new/ and
 * new/ fsync'd. Once commit returns 0 the entry is as durable as one from
 * spool_write(). A writer that is aborted, or whose commit fails, leaves
 * nothing in new/ (its temp file is removed). A writer killed before it
 * commits leaves its temp file in tmp/: spool_sweep_tmp() removes those.
 * One writer is used by one thread at a time; writers in several threads
 * commit together: new/ is fsync'd once for every entry renamed into it
 * before that fsync started (group commit), and each commit returns once
 * such a sync of its own entry succeeded.
 */
struct spool_writer;

/* Start an entry under a fresh id: held in memory while the message is no
 * bigger than mem_max bytes (committed into the journal, which is opened
 * now if none is: a spool that cannot be written fails here), else in
 * SPOOL/tmp/ (the file made when the message outgrows mem_max; mem_max 0:
 * at once). */
int spool_writer_open(const char *spool_dir, size_t mem_max, struct spool_writer **w_r,
                      char **error_r);
/* The id the entry gets in new/ when committed. */
const char *spool_writer_id(const struct spool_writer *w);
/* The message written so far while it is held in memory (borrowed: valid
 * until the next write, commit or abort), else NULL. */
GByteArray *spool_writer_memory(const struct spool_writer *w);
/* Bytes of the message written so far. */
guint64 spool_writer_size(const struct spool_writer *w);
/* The temp file being written, and everything written so far pushed to
 * it (so the message can be read from there before the commit: the
 * message starts at SPOOL_STREAM_OFFSET). An entry held in memory is
 * written to its file by spool_writer_flush(); before that the path is
 * NULL. */
#define SPOOL_STREAM_OFFSET (sizeof(SPOOL_MAGIC2))
const char *spool_writer_path(const struct spool_writer *w);
int spool_writer_flush(struct spool_writer *w, char **error_r);
/* Append len bytes of the raw message. After an error every later call
 * fails too (the entry can only be aborted). */
int spool_writer_write(struct spool_writer *w, const void *buf, size_t len, char **error_r);
/* Finish the entry with env's envelope (env->raw and env->id are ignored)
 * and make it durable; the SHA-256 of the message goes to sha_hex_r (65
 * bytes) if not NULL. The writer is freed (and *w cleared) either way. */
int spool_writer_commit(struct spool_writer **w, const struct spool_entry *env,
                        char *sha_hex_r, char **error_r);
/* Drop an unfinished entry: its temp file removed, the writer freed. */
void spool_writer_abort(struct spool_writer **w);

/* Entries committed (spool_write, spool_writer_commit) and fsyncs (of new/,
 * of a journal) they took in this process so far: fewer syncs than entries
 * is the group commit at work. */
void spool_commit_stats(guint64 *entries_r, guint64 *syncs_r);

/* Hand the open journal (if any) to the reader and stop its timer: at the
 * end of the process, after the last commit. Appends in flight finish
 * first. 0, or -1 (the journal stays in journal/ for spool_recover()). */
int spool_journal_close(char **error_r);

/* Move the journals no writer holds (see above) from journal/ to new/;
 * their number goes to moved_r. A .ID left by a writer gone before its
 * journal was named (nothing in it was ever promised) is removed. */
int spool_recover(const char *spool_dir, guint *moved_r, char **error_r);

/* A journal in memory (the whole file) split into its entries: good gets
 * struct spool_entry * (id set, raw sharing data), bad gets struct
 * spool_bad * for every entry that does not parse and for a tail that is
 * not an entry. -1 only when data is not a journal at all. Also the fuzzing
 * entry point. */
struct spool_bad {
    char *name;         /* the entry's id, or JOURNAL-ID.at-OFFSET for a tail */
    GBytes *bytes;      /* what was there */
    char *reason;
};
int spool_parse_journal(GBytes *data, GPtrArray **good_r, GPtrArray **bad_r, char **error_r);
void spool_bad_free(struct spool_bad *b);

/* Read SPOOL/new/NAME, an entry (one, its id NAME) or a journal (its
 * entries, in order), into entries_r (struct spool_entry *; free with
 * spool_entry_free via the array). A journal's entries that cannot be read
 * are written to failed/ (NAME and NAME.reason, see spool_fail) and their
 * count goes to failed_r, a line each to reasons_r (may be NULL). On -1
 * errno is as for spool_read(). */
int spool_read_all(const char *spool_dir, const char *name, GPtrArray **entries_r,
                   guint *failed_r, GPtrArray **reasons_r, char **error_r);

/* Remove what writers that are gone left in SPOOL/tmp/: files whose id's
 * PID is not a running process, and any file older than max_age seconds
 * (<= 0: age alone never removes). The number removed goes to removed_r. */
int spool_sweep_tmp(const char *spool_dir, int max_age, guint *removed_r, char **error_r);

/* Parse an entry from memory (the whole file). error_r says what is wrong
 * and where (the header line). Also the fuzzing entry point. */
int spool_parse(const void *buf, size_t len, struct spool_entry **e_r, char **error_r);

/* Read SPOOL/new/ID. On -1 errno says why: ENOENT when the entry is gone
 * (another reader took it), EINVAL when it does not parse (or is not a
 * file, or is too big), else the I/O error; error_r names the file. */
int spool_read(const char *spool_dir, const char *id, struct spool_entry **e_r,
               char **error_r);

/* Entries waiting in SPOOL/new/, oldest first (by name); names that are
 * not spool ids (editor droppings, dot files) are skipped. */
int spool_list(const char *spool_dir, GPtrArray **ids_r, char **error_r);

/* Remove SPOOL/new/ID once archived (already gone is not an error).
 * Directory fsync is left to spool_sync() so a batch costs one. */
int spool_remove(const char *spool_dir, const char *id, char **error_r);
int spool_sync(const char *spool_dir, char **error_r);

/* Move SPOOL/new/ID to SPOOL/failed/ID and write failed/ID.reason (the
 * reason and a newline; written first, so a crash never leaves an entry in
 * failed/ without one); both directories synced. The entry is kept whole. */
int spool_fail(const char *spool_dir, const char *id, const char *reason,
               char **error_r);

void spool_entry_free(struct spool_entry **e);

#endif
