/*
 * export.h - evidence exports: archived messages a third party can check
 *
 * exp_export() writes every message a query matches, with its exact raw
 * bytes, and the evidence that they are what the archive holds. A zip or
 * tar export holds:
 *
 *   messages/NNNNNN-YYYY-MM-DD-subject.eml  the raw bytes (archive id,
 *                          date or "nodate", a safe slice of the subject)
 *   manifest.csv           RFC 4180, UTF-8, CRLF, a header row, one row per
 *                          message in export order (newest first):
 *                          id,date,from,to,cc,subject,sha256,chain_seq,file
 *                          (addresses "Name <addr>" joined by "; "; chain_seq
 *                          the seq of the message's "add" chain event, empty
 *                          for a message archived before the chain; file the
 *                          .eml's name)
 *   chain.txt              the "add" event of each message (chain.h):
 *                            custos-export-chain 1
 *                            then per message, in manifest order:
 *                            event SEQ PREV HASH LENGTH   (PREV = h_{SEQ-1},
 *                                                          HASH = h_SEQ, hex)
 *                            LENGTH bytes: the canonical event
 *                          so HASH = SHA-256(PREV || event) can be recomputed
 *                          and the event's "message" field (the .eml's
 *                          SHA-256) and "id" read
 *   checkpoint.txt         the exact bytes of the newest checkpoint whose seq
 *                          is >= every chain_seq exported ("custos-checkpoint
 *                          1", chain.h), made by the export if none was
 *   signing-key.pem        the Ed25519 public key (PEM) that signed the
 *                          statement (only when [chain] sign_key is set)
 *   export.txt             the signed statement (below)
 *   README.txt             how to check all this, for the recipient
 *   SHA256SUMS             sha256sum(1) lines for every file above
 *
 * An mbox export is FILE, an mboxrd mbox (below), with the other files
 * beside it as FILE.manifest.csv, FILE.chain.txt, FILE.checkpoint.txt,
 * FILE.signing-key.pem, FILE.export.txt, FILE.README.txt and
 * FILE.SHA256SUMS (which names FILE and those by their base names). The
 * manifest's file column still gives each message the .eml name it would
 * have.
 *
 * The mbox: each message is
 *   "From custos-export-ID[-noeol] Www Mmm dd hh:mm:ss yyyy\n"  (UTC, the
 *                                      message date, else the export time)
 *   the raw bytes, every line matching ^>*From  given one more '>'
 *   "\n" if the bytes do not end in one (and then "-noeol" above)
 *   "\n"
 * Reading undoes exactly that: a line starting "From " is a separator,
 * ">From ", ">>From ", ... lose one '>', the last "\n" (two with -noeol)
 * goes. So every message's exact bytes and SHA-256 come back.
 *
 * The statement (export.txt), UTF-8 "key value" lines in this order, values
 * escaped like chain events ('%', CR, LF as %25 %0D %0A):
 *   custos-export 1
 *   format zip|tar|mbox
 *   time YYYY-MM-DDTHH:MM:SSZ
 *   user NAME                the Unix user who exported (audit.h)
 *   query TEXT
 *   messages N               rows of the manifest
 *   manifest-sha256 HEX      of manifest.csv
 *   chain-sha256 HEX         of chain.txt
 *   checkpoint-sha256 HEX    of checkpoint.txt
 *   checkpoint-seq N
 *   checkpoint-hash HEX      h_N, as the checkpoint says
 *   key ed25519:HEX16|none   as for checkpoints (chain.h)
 *   signature BASE64         Ed25519 over every byte before this line
 *                            (absent when key is none)
 *
 * The export is written to temp files in FILE's directory (unlinked, or
 * hidden ".FILE.export-XXXXXX" names where the file system has no
 * O_TMPFILE) and put in place at the end, FILE last; an existing FILE (or
 * FILE.* evidence of an mbox) is never replaced unless force. Messages are
 * read one at a time; only their ids, hashes and names stay in memory.
 *
 * exp_verify() checks an export with nothing but the export (and a key).
 */
#ifndef CUSTOS_EXPORT_H
#define CUSTOS_EXPORT_H

#include <stddef.h>
#include <glib.h>
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/util.h"

enum exp_format { EXP_ZIP = 1, EXP_TAR = 2, EXP_MBOX = 3 };

#define EXP_MANIFEST "manifest.csv"
#define EXP_CHAIN "chain.txt"
#define EXP_CHECKPOINT "checkpoint.txt"
#define EXP_PUBKEY "signing-key.pem"
#define EXP_STATEMENT "export.txt"
#define EXP_README "README.txt"
#define EXP_SUMS "SHA256SUMS"
#define EXP_MSGDIR "messages/"

/* Bounds on what exp_verify() reads. */
#define EXP_MESSAGES_MAX 2000000            /* messages in one export */
#define EXP_EVIDENCE_MAX (1024ULL << 20)    /* manifest, chain.txt, SHA256SUMS */
#define EXP_SMALL_MAX (64 * 1024)           /* statement, checkpoint, key, README */
#define EXP_FIELD_MAX (1 << 20)             /* one manifest field */
#define EXP_EVENT_MAX (16 << 20)            /* one chain event */
#define EXP_NAME_MAX 240                    /* a file name in the export */
#define EXP_SUBJECT_BYTES 60                /* of the subject in a file name */

/* "zip", "tar", "mbox" -> format: 0, or -1. */
int exp_format_parse(const char *s, enum exp_format *f_r);
const char *exp_format_name(enum exp_format f);

/* ---- exporting ----------------------------------------------------------- */

struct exp_opts {
    enum exp_format format;
    const char *path;           /* FILE */
    int force;                  /* replace an existing FILE */
    const char *query;          /* query.h */
    const char *user;           /* for the statement (audit_user()) */
    gint64 now;                 /* unix time of the export; 0: now */
};

enum exp_fail {
    EXP_FAIL_IO = 0,            /* reading the archive or writing FILE */
    EXP_FAIL_QUERY,             /* the query does not parse */
    EXP_FAIL_EXISTS,            /* FILE exists and not force */
    EXP_FAIL_CREATE,            /* FILE's directory cannot be written */
    EXP_FAIL_BUSY,              /* a checkpoint was needed; the writer's lock
                                 * stayed taken (CUSTOS_LOCK_WAIT, archive.h) */
};

struct exp_result {
    gint64 messages;            /* exported; 0: nothing matched, nothing written */
    char manifest_sha256[CUS_SHA256_HEX];
    gint64 checkpoint_seq;
    int checkpoint_made;        /* the export made the checkpoint */
    char key[64];               /* "none" or the statement's key id */
    enum exp_fail fail;         /* why, when -1 is returned */
};

/* Export what o->query matches from arc (opened with ARC_AUDIT or
 * ARC_WRITE; the caller records the audit entry). cfg: for [chain]
 * sign_key and for opening the writer to make a checkpoint. */
int exp_export(struct arc *arc, const struct cfg *cfg, const struct exp_opts *o,
               struct exp_result *r, char **error_r);

/* ---- verifying ----------------------------------------------------------- */

struct exp_problem {
    const char *object;         /* the file it is about, as named in the
                                 * export ("messages/...eml", "manifest.csv",
                                 * FILE.manifest.csv beside an mbox) */
    gint64 row;                 /* manifest row (1 = first after the header), or 0 */
    gint64 seq;                 /* chain position, or 0 */
    const char *what;
    int warning;                /* not a problem: something left unchecked */
};
typedef void exp_problem_cb(void *ctx, const struct exp_problem *p);

struct exp_verify_opts {
    const char *key_path;       /* --key: a PEM public (or private) key */
    const char *config_key;     /* [chain] verify_key of a configuration, or NULL */
};

struct exp_verify_stats {
    enum exp_format format;
    gint64 messages;            /* manifest rows */
    gint64 files;               /* files (zip/tar members, mbox messages) read */
    gint64 bytes;
    gint64 problems, warnings;
    gint64 checkpoint_seq;
    int statement_signed, checkpoint_signed;
    int signatures_checked;     /* with key, from key_source */
    char key[64];
    const char *key_source;     /* "--key", "verify_key", "export" or NULL */
    char manifest_sha256[CUS_SHA256_HEX];
    int unreadable;             /* with -1: 65 (not an export / damaged
                                 * container) or 74 (I/O) */
};

/* Check the export at path (zip, tar or mbox, told from its first bytes).
 * Every problem goes to cb once. 0: checked (st->problems says how it
 * went); -1: could not be checked at all (error_r, st->unreadable). */
int exp_verify(const char *path, const struct exp_verify_opts *o, exp_problem_cb *cb,
               void *ctx, struct exp_verify_stats *st, char **error_r);
/* The same for a zip or tar export in memory (fuzzing, tests). */
int exp_verify_buffer(const void *buf, size_t len, const struct exp_verify_opts *o,
                      exp_problem_cb *cb, void *ctx, struct exp_verify_stats *st,
                      char **error_r);

/* ---- the parts, for tests and fuzzing ------------------------------------ */

/* manifest.csv: strict RFC 4180 as written (CRLF, the header row, 9
 * fields). rows: struct exp_row *, freed with the array. */
struct exp_row {
    gint64 line;                /* line of the file where the row starts */
    gint64 id;
    char *date, *from, *to, *cc, *subject, *file;
    unsigned char sha[CUS_SHA256_LEN];
    gint64 seq;                 /* 0: none */
};
int exp_manifest_parse(const void *buf, size_t len, GPtrArray **rows_r, char **error_r);
/* Append one CSV record (fields, n of them) with CRLF. */
void exp_csv_record(GString *out, const char *const *fields, int n);

/* SHA256SUMS: "HEX  NAME\n" lines (also "HEX *NAME"). sums: struct exp_sum *. */
struct exp_sum {
    gint64 line;
    unsigned char sha[CUS_SHA256_LEN];
    char *name;
};
int exp_sums_parse(const void *buf, size_t len, GPtrArray **sums_r, char **error_r);

/* chain.txt. events: struct exp_event * (bytes point into buf). */
struct exp_event {
    gint64 seq;
    unsigned char prev[CUS_SHA256_LEN], hash[CUS_SHA256_LEN];
    const char *bytes;
    size_t len;
};
int exp_chain_parse(const void *buf, size_t len, GPtrArray **events_r, char **error_r);

/* export.txt. */
struct exp_statement {
    enum exp_format format;
    gint64 time, messages, checkpoint_seq;
    char *user, *query;
    unsigned char manifest_sha[CUS_SHA256_LEN], chain_sha[CUS_SHA256_LEN],
        checkpoint_sha[CUS_SHA256_LEN], checkpoint_hash[CUS_SHA256_LEN];
    char key[64];               /* "none" or "ed25519:HEX16" */
    unsigned char sig[64];
    int is_signed;
    size_t signed_len;
};
int exp_statement_parse(const void *buf, size_t len, struct exp_statement *s,
                        char **error_r);
void exp_statement_clear(struct exp_statement *s);

/* The mbox: the writer puts one message through put (0 or -1), the reader
 * is pushed bytes in any pieces and calls back per message. */
typedef int exp_put_fn(void *ctx, const void *buf, size_t len);
int exp_mbox_write(gint64 id, gint64 date, const void *raw, size_t len, exp_put_fn *put,
                   void *ctx);

struct exp_mbox_cbs {
    /* A separator line: id -1 if it is not one custos wrote (then the
     * message is reported with it), noeol its flag. */
    void (*begin)(void *ctx, gint64 id, int noeol, gint64 offset);
    void (*data)(void *ctx, const void *buf, size_t len);
    /* The message ended; problem NULL, or what is wrong with its end. */
    void (*end)(void *ctx, const char *problem);
};
struct exp_mbox;
struct exp_mbox *exp_mbox_new(const struct exp_mbox_cbs *cbs, void *ctx);
/* -1 (error_r) only when the input is not an mbox custos could have made
 * at all (it does not start with "From "). */
int exp_mbox_feed(struct exp_mbox *m, const void *buf, size_t len, char **error_r);
int exp_mbox_finish(struct exp_mbox *m, char **error_r);
void exp_mbox_free(struct exp_mbox **m);

/* ---- for import ------------------------------------------------------------ */

/* 1 if name is one of the evidence files of a zip/tar export (manifest.csv,
 * chain.txt, ... at its top level): not mail, an importer skips it. */
int exp_evidence_name(const char *name);

/* 1 if buf starts like an mbox custos exported ("From custos-export-"). */
int exp_mbox_is_export(const void *buf, size_t len);
/* Each message of such an mbox with its exact bytes (quoting undone): cb
 * gets the id of its From line (-1 for one custos did not write), the
 * bytes and NULL, or what is wrong with its end; a non-zero return stops.
 * -1 (error_r) if buf is not such an mbox. */
typedef int exp_mbox_msg_cb(void *ctx, gint64 id, const void *raw, size_t len,
                            const char *problem);
int exp_mbox_each(const void *buf, size_t len, exp_mbox_msg_cb *cb, void *ctx,
                  char **error_r);

#endif
