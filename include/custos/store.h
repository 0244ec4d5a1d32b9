/*
 * store.h - content-addressed segment store
 *
 * Raw objects are packed into append-only segment files under DIR/store/
 * ("seg-000001.cseg"), sealed (fsync'd, made read-only) once they pass the
 * configured size. Each record is self-describing: kind, SHA-256 of the raw
 * bytes, raw and stored lengths, compression (zstd, optionally with a
 * trained dictionary, itself stored as a record), encryption (AES-256-GCM
 * with the key id in the record header and the header as AAD). So the whole
 * archive can be rebuilt from the segments alone.
 *
 * The store does not deduplicate: the index holds the one row per SHA-256
 * (UNIQUE) and asks the store to append only what is new. One writer at a
 * time (store_open with STORE_WRITE takes an flock on DIR/store/lock);
 * readers need no lock. store_read re-checks the SHA-256 on every read.
 */
#ifndef CUSTOS_STORE_H
#define CUSTOS_STORE_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <glib.h>
#include "custos/util.h"

enum store_kind {
    STORE_MESSAGE = 1,      /* a raw message */
    STORE_DELIVERY = 2,     /* reserved: early builds' envelope record; the
                             * chain event holds the envelope now */
    STORE_DICT = 3,         /* a zstd dictionary */
    STORE_EVENT = 4,        /* a hash-chain event (chain.h) */
    STORE_CHECKPOINT = 5,   /* a (signed) checkpoint of the chain (chain.h) */
};

struct store_loc {
    uint32_t segment;       /* segment number */
    uint64_t offset;        /* record start in the segment */
    uint32_t length;        /* whole record length on disk */
};

/* Largest object store_append accepts (raw bytes). */
#define STORE_MAX_OBJECT (1024ULL * 1024 * 1024)

struct store_opts {
    uint64_t segment_size;  /* seal past this many bytes; 0 = 256 MiB */
    int zstd_level;         /* 0 = zstd's default (3) */
    int use_dict;           /* train and use a zstd dictionary */
    const char *key_file;   /* keyring or NULL: "ID HEX64" per line */
    const char *key_id;     /* key for new objects; NULL = last in file */
    int lock_wait;          /* STORE_WAIT: seconds to wait for the writer's
                             * lock; < 0 without limit */
    const volatile sig_atomic_t *cancel; /* set (by a signal): stop waiting */
    int has_reader_gid;     /* the keyring may be readable by group */
    unsigned reader_gid;    /* reader_gid ([archive] group), never others */
};

#define STORE_WRITE 1
#define STORE_WAIT 2    /* a writer waits for the lock held by another
                         * (opts->lock_wait seconds) instead of failing */

struct store;

/* Open DIR/store (created by store_init). flags: 0 or STORE_WRITE.
 * opts may be NULL (defaults, no key). A writer takes the lock (a second
 * writer gets "archive DIR is in use by another writer"), then checks the
 * last segment and truncates a torn tail left by a crash (logged). */
int store_open(const char *arcdir, const struct store_opts *opts, int flags,
               struct store **st_r, char **error_r);
void store_close(struct store **st);

/* A writer: does another process wait for the lock (STORE_WAIT)? */
int store_writer_wanted(struct store *st);
/* After letting the lock go for them: wait (at most seconds) until every
 * waiter has had the lock, so that we do not take it again first. */
void store_wait_for_waiters(const char *arcdir, double seconds,
                            const volatile sig_atomic_t *cancel);

/* Create DIR/store with mode 0700. Idempotent. */
int store_init(const char *arcdir, char **error_r);

/* Whether new messages would be compressed with a dictionary. */
int store_has_dict(const struct store *st);

/* Train a dictionary from samples (raw messages) and use it for new
 * messages from now on; records it in the segment (synced) and in
 * DIR/store/dict-N.zdict. No-op if use_dict is off or there are too few
 * samples: fewer than 200 of 64+ bytes, or under 256 KB in all (returns 0,
 * store_has_dict() stays 0). The dictionary is 1/64 of the sample bytes
 * (4-110 KB), so it pays for itself on a small archive too. */
int store_train_dict(struct store *st, GBytes *const *samples, size_t n,
                     char **error_r);

/* Append one object; sha is the SHA-256 of data. Not durable until
 * store_sync(). */
int store_append(struct store *st, enum store_kind kind,
                 const unsigned char sha[CUS_SHA256_LEN],
                 const void *data, size_t len, struct store_loc *loc_r,
                 char **error_r);

/* While held, appends never seal the segment, so a group of records (a
 * message, its delivery, its chain event) lands in one segment; releasing
 * seals it if it is full. */
int store_hold_seal(struct store *st, int hold, char **error_r);

/* Where the next record would go: the newest segment and its end (segment
 * 0 when there is none yet). */
int store_tell(struct store *st, struct store_loc *loc_r, char **error_r);

/* Cut the open segment back to at (a record boundary in it; offset 0: its
 * first record), synced: drops records of a group that was never
 * finished. Writer only. */
int store_truncate(struct store *st, const struct store_loc *at, char **error_r);

/* Seal the open segment now (fsync'd, read-only); the next append starts
 * a new one. Writer only; nothing to do if none is open. */
int store_seal(struct store *st, char **error_r);

/*
 * Rewriting a sealed segment without some message records (retention):
 * store_rewrite_prepare() writes DIR/store/seg-N.cseg.rewrite -- every
 * other record copied byte for byte, in order -- synced, with the
 * segment's mode and group; each record to drop must be a message record
 * with that SHA-256 and length at that place, else nothing is written.
 * store_rewrite_commit() renames it over the segment (directory synced; 0
 * also when there is no such file: done before). What index.db says
 * decides which file is the truth meanwhile (retention.c); a failed
 * store_read() looks in the .rewrite file too, and store_rewrite_prefer()
 * makes a reader (verify) take segment N from it while it is there.
 * store_rewrite_discard() removes every .rewrite file (unfinished ones,
 * when index.db does not refer to them).
 */
struct store_drop {
    struct store_loc loc;
    unsigned char sha[CUS_SHA256_LEN];
};
/* drop: sorted by offset, all in segment segno; *size_r the new size. */
int store_rewrite_prepare(struct store *st, uint32_t segno, const struct store_drop *drop,
                          size_t n, uint64_t *size_r, char **error_r);
int store_rewrite_commit(struct store *st, uint32_t segno, char **error_r);
int store_rewrite_discard(struct store *st, char **error_r);
void store_rewrite_prefer(struct store *st, uint32_t segno);
/* Size of segment segno's file (0 if it is not there). */
uint64_t store_segment_bytes(struct store *st, uint32_t segno);

/* fsync what was appended (and the directory for a new segment). */
int store_sync(struct store *st, char **error_r);

/* Read an object back, decrypt, decompress, verify its SHA-256 against
 * sha (error if it differs; sha NULL = the one in the record header).
 * Errors name the object, segment and offset. */
int store_read(struct store *st, const struct store_loc *loc,
               const unsigned char sha[CUS_SHA256_LEN], GBytes **data_r,
               char **error_r);

/* Bytes on disk of all segments (and dictionaries). */
uint64_t store_disk_bytes(struct store *st);

/* Walk every record of every segment in order (for verify and reindex).
 * cb gets the record's kind, sha, location and the decoded data; a
 * non-zero return stops the walk and is returned. */
typedef int store_walk_cb(void *ctx, enum store_kind kind,
                          const unsigned char sha[CUS_SHA256_LEN],
                          const struct store_loc *loc, GBytes *data);
int store_walk(struct store *st, store_walk_cb *cb, void *ctx, char **error_r);
/* store_walk() decrypts, decompresses and checks every record's SHA-256; it
 * fails (-1, error_r naming the object) at the first record that does not
 * check out. store_walk_ex() below goes on and reports each bad record. */

enum store_comp { STORE_COMP_NONE = 0, STORE_COMP_ZSTD = 1, STORE_COMP_ZSTD_DICT = 2 };

/* One record as store_walk_ex() sees it. */
struct store_rec {
    enum store_kind kind;   /* 0 if the header itself is unreadable */
    unsigned char sha[CUS_SHA256_LEN]; /* from the header */
    struct store_loc loc;   /* for an unreadable stretch: where it starts
                             * and how many bytes were skipped */
    uint64_t raw_len;
    enum store_comp comp;
    uint32_t dict_id;       /* dictionary used (or defined, for STORE_DICT) */
    int encrypted;          /* AES-256-GCM */
    char key_id[33];        /* "" when not encrypted */
    int tail;               /* an incomplete record at the end of a file */
    void *aux;              /* store_walk_opts.work's result, else NULL */
    const char *error;      /* NULL: decoded and the SHA-256 matched;
                             * else why not (names object, file, offset) */
};

/* Like store_walk(), but every record is passed on, good or bad: data is
 * NULL exactly when rec->error is set. Segments are read sequentially with
 * a large buffer. An incomplete record at the very end of the newest
 * unsealed segment (an append in progress, or a torn tail not yet
 * truncated) is not reported. A non-zero cb return stops the walk and is
 * returned; -1 with error_r only for I/O errors. */
typedef int store_walk_ex_cb(void *ctx, const struct store_rec *rec, GBytes *data);
int store_walk_ex(struct store *st, store_walk_ex_cb *cb, void *ctx, char **error_r);

/* store_walk_ex() with worker threads decoding (the callback still runs in
 * the calling thread, in store order) and a starting point. */
#define STORE_WALK_REPORT_TAIL 2        /* report an incomplete last record
                                         * of the open segment too */
struct store_walk_opts {
    struct store_loc from;  /* a record boundary; segment 0: from the start */
    int threads;            /* decoding threads; <= 0: one per CPU */
    int flags;
    unsigned data_kinds;    /* if not 0: pass data only for these kinds
                             * (bit 1 << kind); the others are checked */
    /* Run in the decoding thread for every good record; the result is
     * rec->aux for the callback, which owns it. aux_free frees results a
     * stopped walk did not deliver. */
    void *(*work)(void *ctx, const struct store_rec *rec, GBytes *data);
    void (*aux_free)(void *aux);
};
int store_walk_par(struct store *st, const struct store_walk_opts *o,
                   store_walk_ex_cb *cb, void *ctx, char **error_r);

#endif
