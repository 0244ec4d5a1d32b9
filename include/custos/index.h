/*
 * index.h - index.db: the SQLite index of the archive
 *
 * WAL mode, schema versioned with PRAGMA user_version and migrated forward
 * on open. Schema version 1:
 *
 *   messages(id INTEGER PRIMARY KEY,        -- the archive id (never reused,
 *                                           -- a purged one neither)
 *            sha256 BLOB NOT NULL UNIQUE,   -- of the raw bytes: dedup
 *            segment INTEGER, offset INTEGER, length INTEGER, -- store_loc
 *            raw_size INTEGER NOT NULL,
 *            date INTEGER NOT NULL,         -- unix time, 0 = unknown
 *            message_id TEXT NOT NULL,      -- without <>, '' if none
 *            subject TEXT NOT NULL,
 *            n_att INTEGER NOT NULL,
 *            limits TEXT NOT NULL,          -- limits hit, '\n'-separated, ''
 *            added INTEGER NOT NULL)        -- unix time archived
 *   addrs(msg INTEGER NOT NULL REFERENCES messages(id),
 *         role INTEGER NOT NULL,            -- enum msg_role
 *         name TEXT NOT NULL, addr TEXT NOT NULL,   -- addr lower case
 *         domain TEXT NOT NULL)             -- lower case, '' if none
 *   attachments(msg INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT,
 *               type TEXT, path TEXT, size INTEGER, sha256 TEXT, depth INTEGER)
 *   deliveries(id INTEGER PRIMARY KEY, msg INTEGER NOT NULL,
 *              time INTEGER NOT NULL, sender TEXT NOT NULL,
 *              client TEXT NOT NULL, queue_id TEXT NOT NULL,
 *              source TEXT NOT NULL,         -- "import:PATH", "milter", ...
 *              segment INTEGER, offset INTEGER, length INTEGER, -- its record
 *              spool_id TEXT UNIQUE)          -- v2: the spool entry, or NULL
 *   rcpts(delivery INTEGER NOT NULL, msg INTEGER NOT NULL,
 *         addr TEXT NOT NULL,               -- envelope recipient, lower case
 *         domain TEXT NOT NULL)
 *   fts USING fts5(subject, body, attname, atttext,
 *                  content='', tokenize='custos')   -- rowid = messages.id
 *
 * Version 2 adds (deliveries.spool_id above, and):
 *   chain(seq INTEGER PRIMARY KEY,          -- chain.h: entry n
 *         time INTEGER NOT NULL, type TEXT NOT NULL,
 *         msg INTEGER,                      -- the message it is about
 *         hash BLOB NOT NULL,               -- h_n
 *         segment, offset, length)          -- its event record, which for
 *                                           -- add/deliver also holds the
 *                                           -- delivery (deliveries' loc)
 *   checkpoints(id, seq, time, hash, key, signature, segment, offset, length)
 *   meta(key TEXT PRIMARY KEY, value)       -- store_end: "SEG:OFFSET" the
 *                                           -- store had at the last commit
 *
 * Version 3 adds governance (addresses and domains lower case, dates ISO):
 *   employees(address PRIMARY KEY, name, department,
 *             status 'active'|'leaving'|'departed', departed, successor,
 *             manager, mobile, updated)
 *   employee_personal(employee, addr)       -- registered private addresses
 *   customers(id, name UNIQUE, owner,       -- owner: an employee address
 *             source 'import'|'learn', updated)
 *   customer_domains(domain PRIMARY KEY, customer)
 *   customer_contacts(addr PRIMARY KEY, customer)
 *   customer_phones(phone, customer)
 *   accounts(account PRIMARY KEY, bank, holder, updated)  -- the company's
 *   holds(id, name, query, note, created, created_by, released, released_by,
 *         seq, release_seq)                 -- chain entries of add/release;
 *                                           -- name unique among active
 *   purged(id, sha256, time, rule, seq,     -- tombstones: messages.id gone
 *          segment, offset, length)         -- its record while still in the
 *                                           -- store (retention.h), else NULL
 *   audit(id AUTOINCREMENT, time, user, uid, command, args, results,
 *         status, detail, seq UNIQUE)       -- seq: its chain entry once
 *                                           -- sealed (audit.h), else NULL
 *
 * Version 4 adds incidents (incident.h): what custos-milter flagged.
 *   incidents(seq PRIMARY KEY,              -- its "incident" chain entry
 *             msg, time, n, sha256 TEXT,    -- archive id (kept after a
 *                                           -- purge), received, finding n
 *             spool_id,                     -- (spool_id, n) unique
 *             category, rule, action, evidence,
 *             sender, auth, rcpts)          -- lower case; rcpts LF-joined
 *   indexes on (category, time), (time), (msg), (sender, time), (auth, time)
 *   messages.body_sha256 BLOB               -- idx_body_hash(), NULL if the
 *                                           -- body is too short or the row
 *                                           -- older (index messages_body)
 *
 * Every statement binds its parameters; no SQL is built from input.
 */
#ifndef CUSTOS_INDEX_H
#define CUSTOS_INDEX_H

#include <stdint.h>
#include <sqlite3.h>
#include "custos/msg.h"
#include "custos/store.h"

#define IDX_SCHEMA_VERSION 4

#define IDX_CREATE 1
#define IDX_RDONLY 2
#define IDX_NO_CKPT_ON_CLOSE 4  /* a reader writing only its audit entry */

struct idx;
struct spool_finding;

struct idx_envelope {
    gint64 time;            /* when received / imported */
    const char *sender;     /* envelope sender, "" if unknown */
    const char *client;     /* client address, "" if unknown */
    const char *queue_id;   /* Postfix queue id, "" if none */
    const char *source;     /* "import:PATH", "milter", ... */
    const char *const *rcpts; /* envelope recipients, NULL-terminated */
    const char *spool_id;   /* spool entry it came from, or NULL */
    const char *auth;       /* SASL login, or NULL (kept with incidents) */
    struct spool_finding *const *findings;  /* what was flagged (spool.h):
                            * one incident each (incident.h) */
    size_t n_findings;
    const unsigned char *sha256;    /* the message's SHA-256 when the caller
                            * has it already (a spool entry's, checked when
                            * read), or NULL: then it is computed */
};

/* One search hit, as search --json prints it. */
struct idx_hit {
    gint64 id, date, size;
    int n_att;
    char sha256[CUS_SHA256_HEX];
    char *message_id, *subject, *limits;
    GPtrArray *from, *to, *cc, *bcc;   /* char *: "Name <addr>" or "addr" */
    GPtrArray *att_names;              /* char * */
};

int idx_open(const char *path, int flags, struct idx **idx_r, char **error_r);
void idx_close(struct idx **idx);
sqlite3 *idx_db(struct idx *idx);

int idx_begin(struct idx *idx, char **error_r);
int idx_commit(struct idx *idx, char **error_r);
void idx_rollback(struct idx *idx);
/* A savepoint inside the open transaction: one message's rows at a time. */
int idx_savepoint(struct idx *idx, char **error_r);
int idx_release(struct idx *idx, char **error_r);
void idx_rollback_savepoint(struct idx *idx);

/* Look a raw message up by SHA-256: 1 found (id_r, loc_r set), 0 not, -1. */
int idx_find_sha(struct idx *idx, const unsigned char sha[CUS_SHA256_LEN],
                 gint64 *id_r, struct store_loc *loc_r, char **error_r);

/* Look a message up by archive id: 1 found, 0 not, -1 error. */
int idx_find_id(struct idx *idx, gint64 id, unsigned char sha_r[CUS_SHA256_LEN],
                struct store_loc *loc_r, char **error_r);

/* The message a spool entry was archived as: 1 found (msg_r), 0 not, -1. */
int idx_find_spool(struct idx *idx, const char *spool_id, gint64 *msg_r, char **error_r);

/* Archived messages with a Message-ID (without <>; the messages_msgid
 * index), newest first, at most max: each one's archive id and its From
 * address ("" if none), lower case. For the detectors: what a reply or a
 * re-sent message refers to. The addresses it went to are read only when
 * asked for (idx_ref_rcpts): most refs are ruled out by their From.
 * refs_r: struct idx_ref *, freed with the array. */
struct idx_ref {
    gint64 id;
    char *from;
    GPtrArray *rcpts;       /* char *; NULL until idx_ref_rcpts */
};
int idx_find_refs(struct idx *idx, const char *message_id, int max, GPtrArray **refs_r,
                  char **error_r);
/* SHA-256 of the body text with all white space removed: the same text
 * re-sent under other headers, re-encoded or re-wrapped, has the same
 * hash. 1 (sha_r set), or 0 when fewer than IDX_BODY_HASH_MIN bytes are
 * left (short bodies are alike too often to say anything). */
#define IDX_BODY_HASH_MIN 64
int idx_body_hash(const struct msg *m, unsigned char sha_r[CUS_SHA256_LEN]);
/* The SHA-256 idx_body_hash uses: GLib's (the lean custos-archive links no
 * OpenSSL) until a program that links OpenSSL gives cus_sha256 here, several
 * times faster (SHA extensions); the hash is the same. NULL: GLib's again. */
void idx_body_hash_use(void (*sha256)(const void *buf, size_t len,
                                      unsigned char out[CUS_SHA256_LEN]));
/* The same for archived messages whose body hash (idx_body_hash) is sha:
 * the same text re-sent under other headers (the messages_body index). */
int idx_find_body_refs(struct idx *idx, const unsigned char sha[CUS_SHA256_LEN], int max,
                       GPtrArray **refs_r, char **error_r);
/* Every address ref r went to (To, Cc and envelope recipients, lower case)
 * into r->rcpts, if not there yet: 0, or -1 and r unchanged. */
int idx_ref_rcpts(struct idx *idx, struct idx_ref *r, char **error_r);

/* Insert a new message (its sha must not be there yet) as archive id
 * want_id, or if want_id is 0 the one after the highest of every message
 * and every purged one (ids are never reused). */
int idx_add_message(struct idx *idx, const unsigned char sha[CUS_SHA256_LEN],
                    const struct store_loc *loc, uint64_t raw_size,
                    const struct msg *m, gint64 added, gint64 want_id, gint64 *id_r,
                    char **error_r);

/* One chain entry (chain.h): seq, its time and type, the message it is
 * about (0: none), h_seq, and where its event record is. */
int idx_add_chain(struct idx *idx, gint64 seq, gint64 time, const char *type, gint64 msg,
                  const unsigned char hash[CUS_SHA256_LEN], const struct store_loc *loc,
                  char **error_r);
/* The newest chain entry: 1 (seq_r, hash_r set), 0 none yet, -1. */
int idx_chain_head(struct idx *idx, gint64 *seq_r, unsigned char hash_r[CUS_SHA256_LEN],
                   char **error_r);
int idx_add_checkpoint(struct idx *idx, gint64 seq, gint64 time,
                       const unsigned char hash[CUS_SHA256_LEN], const char *key,
                       const unsigned char *sig, size_t sig_len, const struct store_loc *loc,
                       char **error_r);

/* meta(key, value): 1 found (*value_r g_free'd by the caller), 0, -1. */
int idx_meta_get(struct idx *idx, const char *key, char **value_r, char **error_r);
int idx_meta_set(struct idx *idx, const char *key, const char *value, char **error_r);

/* Record one delivery of message id with its envelope recipients. */
int idx_add_delivery(struct idx *idx, gint64 msg_id,
                     const struct idx_envelope *env,
                     const struct store_loc *loc, char **error_r);

/* Search: every hit from offset, at most limit (-1: all), newest first.
 * total_r gets the number of all matches. cb gets each hit (borrowed). */
typedef int idx_hit_cb(void *ctx, const struct idx_hit *hit);
int idx_search(struct idx *idx, const char *query, gint64 limit,
               gint64 offset, gint64 *total_r, idx_hit_cb *cb, void *ctx,
               char **error_r);

/* Search for many: each match's id, date, SHA-256 (raw, 32 bytes) and
 * Message-ID only, without the address and attachment lists idx_search
 * fills in (three more statements per hit); newest first. cb's strings are
 * borrowed. */
struct idx_brief {
    gint64 id, date;
    const unsigned char *sha256;       /* NULL if the row has none */
    const char *message_id;
};
typedef int idx_brief_cb(void *ctx, const struct idx_brief *b);
int idx_search_brief(struct idx *idx, const char *query, idx_brief_cb *cb, void *ctx,
                     char **error_r);

struct idx_stats {
    gint64 messages, deliveries, rcpts;
    gint64 raw_bytes;       /* sum of raw sizes of distinct messages */
    gint64 delivered_bytes; /* sum over deliveries of raw size */
    gint64 limited;         /* messages with a limit hit */
};
int idx_stats(struct idx *idx, struct idx_stats *st, char **error_r);

#endif
