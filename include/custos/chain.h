/*
 * chain.h - the archive's hash chain and its signed checkpoints
 *
 * Every archive event (a message added, a delivery of one already there;
 * purged, held, handed over, audit entries, incidents: incident.h) is stored as a
 * STORE_EVENT record whose bytes are its canonical form, and extends the
 * chain:
 *
 *   h_0 = SHA-256("custos chain 1")
 *   h_n = SHA-256(h_{n-1} || canonical bytes of event n)
 *
 * Canonical event, version 1: UTF-8 lines, LF-terminated, nothing else:
 *   custos-event 1
 *   seq N                  1, 2, 3, ... without gaps
 *   time T                 unix time
 *   type TYPE              [a-z-]+
 *   KEY VALUE              further fields, in the order written
 * KEY is [a-z0-9_-]+; in VALUE (UTF-8) '%', CR and LF are %25 %0D %0A.
 * "add" (a new message) and "deliver" (one already archived, again) are a
 * delivery: id (archive id), message (SHA-256 hex of the raw bytes, whose
 * record comes right before an "add"), received (unix time), sender,
 * client, queue-id, source, spool-id (only for spool entries), then one
 * rcpt line per envelope recipient. Values that are not valid UTF-8 are
 * written with U+FFFD for the bad bytes.
 *
 * A checkpoint (STORE_CHECKPOINT record) vouches for h_seq:
 *   custos-checkpoint 1
 *   seq N
 *   hash HEX64             h_N
 *   time T
 *   key ed25519:HEX16      first 8 bytes of SHA-256 of the raw public key,
 *                          or "none" (unsigned)
 *   signature BASE64       Ed25519 over every byte before this line
 *                          (absent when key is none)
 */
#ifndef CUSTOS_CHAIN_H
#define CUSTOS_CHAIN_H

#include <stddef.h>
#include <glib.h>
#include "custos/util.h"

struct chain_event {
    gint64 seq, time;
    char *type;
    GPtrArray *fields;      /* char *: key, value, key, value, ... */
};

/* h_0. */
void chain_genesis(unsigned char h[CUS_SHA256_LEN]);
/* out = SHA-256(prev || event); out may be prev. */
void chain_step(const unsigned char prev[CUS_SHA256_LEN], const void *event, size_t len,
                unsigned char out[CUS_SHA256_LEN]);

/* The canonical bytes. kv: key, value, ..., NULL (may be NULL). */
GString *chain_event_format(gint64 seq, gint64 time, const char *type,
                            const char *const *kv);
/* A VALUE as the canonical forms write it (events, checkpoints, export
 * statements): '%', CR, LF as %25 %0D %0A; bytes that are not UTF-8
 * become U+FFFD. chain_value_get() undoes it: NULL unless len bytes at s
 * are canonical and give UTF-8 without NUL. */
void chain_value_put(GString *out, const char *v);
char *chain_value_get(const char *s, size_t len);

/* Parse (strictly: the bytes must be canonical). */
int chain_event_parse(const void *buf, size_t len, struct chain_event **ev_r,
                      char **error_r);
const char *chain_event_get(const struct chain_event *ev, const char *key);
void chain_event_free(struct chain_event **ev);

/* An Ed25519 key: private (can sign) or public only. */
struct chain_key;
/* PEM private key; refused if readable by group or others. */
int chain_key_load_private(const char *path, struct chain_key **k_r, char **error_r);
/* PEM public key (or a private key file: its public half is used). */
int chain_key_load_public(const char *path, struct chain_key **k_r, char **error_r);
/* A key from len bytes of PEM: a private key when the text says "PRIVATE
 * KEY" (it can sign), else a public one; what names it in messages. No
 * file mode check: for keys that come in an export, say. */
int chain_key_parse(const void *pem, size_t len, const char *what, struct chain_key **k_r,
                    char **error_r);
const char *chain_key_id(const struct chain_key *k);    /* "ed25519:HEX16" */
int chain_key_is_private(const struct chain_key *k);
#define CHAIN_SIG_LEN 64
/* Ed25519 (PureEdDSA) over len bytes of buf; a public key cannot sign. */
int chain_key_sign(const struct chain_key *k, const void *buf, size_t len,
                   unsigned char sig[CHAIN_SIG_LEN], char **error_r);
/* 1 sig is k's over buf, 0 not. */
int chain_key_verify(const struct chain_key *k, const void *buf, size_t len,
                     const unsigned char sig[CHAIN_SIG_LEN]);
/* The public half as PEM (SubjectPublicKeyInfo). */
GString *chain_key_public_pem(const struct chain_key *k);
void chain_key_free(struct chain_key **k);

struct chain_checkpoint {
    gint64 seq, time;
    unsigned char hash[CUS_SHA256_LEN];
    char key[64];           /* "none" or "ed25519:HEX16" */
    unsigned char sig[64];
    int is_signed;
    size_t signed_len;      /* bytes the signature covers */
};

/* A checkpoint of h_seq, signed with k if not NULL. */
int chain_checkpoint_format(gint64 seq, const unsigned char hash[CUS_SHA256_LEN],
                            gint64 time, const struct chain_key *k, GString **out_r,
                            char **error_r);
int chain_checkpoint_parse(const void *buf, size_t len, struct chain_checkpoint *cp,
                           char **error_r);
/* 1 the signature is good, 0 it is not (error_r says why), -1 error. */
int chain_checkpoint_verify(const void *buf, const struct chain_checkpoint *cp,
                            const struct chain_key *pub, char **error_r);

#endif
