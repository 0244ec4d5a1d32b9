/*
 * store.c - content-addressed segment store
 *
 * Objects are packed into append-only segments; each object is compressed
 * (zstd, with a trained dictionary for messages once there is one), optionally
 * encrypted (AES-256-GCM, key id in the record header, header as AAD) and
 * addressed by the SHA-256 of the raw bytes. Reads re-check the hash. Every
 * record describes itself, so the segments alone rebuild everything.
 *
 * Promises: an append is one positioned write at the end of the current
 * segment; a failed or short write is cut back off (ftruncate), so a segment
 * only ever holds whole records. A crash can leave a torn tail, which the
 * next writer truncates at open (and logs). Nothing is durable before
 * store_sync().
 *
 * On-disk format, version 1. Integers little-endian, fixed width.
 *
 * DIR/store/seg-NNNNNN.cseg - a segment (0640 while open, 0440 once sealed)
 *   file header, 32 bytes:
 *      0  8  magic "CUSTSEG1"
 *      8  4  format version (1)
 *     12  4  segment number (the same as in the file name)
 *     16 12  reserved, zero
 *     28  4  CRC-32 (zlib) of bytes 0..27
 *   then records back to back: a header, then stored_len payload bytes.
 *   The header is 56 bytes, or 84 + key id length when encrypted:
 *      0  4  magic "CREC"
 *      4  1  kind: 1 message, 2 delivery, 3 dictionary, 4 chain event,
 *            5 checkpoint
 *      5  1  compression: 0 none, 1 zstd, 2 zstd with dictionary dict_id
 *      6  1  encryption: 0 none, 1 AES-256-GCM
 *      7  1  key id length k: 1..32 when encrypted, else 0
 *      8  4  dictionary id: compression 2: the dictionary used;
 *            kind 3: the id of the dictionary this record defines; else 0
 *     12  4  raw length (objects are at most 1 GiB)
 *     16  4  stored length (payload bytes after the header)
 *     20 32  SHA-256 of the raw object
 *   only when encrypted:
 *     52  k  key id (ASCII [A-Za-z0-9._-])
 *   52+k 12  GCM nonce (random per record)
 *   64+k 16  GCM tag
 *   last  4  CRC-32 of the header bytes before it
 *   payload = encrypt(compress(raw)); records other than messages and
 *   dictionaries under 4 KB are not compressed. The GCM AAD is the header up to the
 *   tag, so kind, lengths, hash, key id and dictionary id are authenticated
 *   with the data. zstd frames carry neither content size nor dictionary id
 *   (the header has both). An object zstd does not shrink is stored as is.
 *   The header is kept small on purpose: most mail is a few KB, and every
 *   byte here is paid once per message.
 *
 * DIR/store/dict-N.zdict - a byte-for-byte copy of the kind-3 record that
 *   defines dictionary N (header and payload, so encrypted like the rest),
 *   for a fast load. The segment record is the truth: a missing file is
 *   found again in the segments. Dictionary ids count up from 1; new messages
 *   use the highest. If two records ever define the same id, the later one
 *   wins (it is the one the records after it were written with).
 *
 * DIR/store/seg-NNNNNN.cseg.rewrite - segment N without some of its message
 *   records (retention purged them), being put in place: written whole and
 *   synced, then renamed over the segment (store_rewrite_*). Every record
 *   kept is copied byte for byte, in order; only the offsets after a dropped
 *   record move. Which of the two files is the truth, and when, is for
 *   index.db to say (retention.c); readers that find a record missing where
 *   index.db says look in the .rewrite file too.
 *
 * DIR/store/lock - flock(LOCK_EX) by the one writer.
 *
 * Nonces are 96 random bits per record: rotate the key (a new line in the
 * keyring) well before 2^32 records have been written with one key.
 *
 * A struct store is not thread-safe: one per thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>
#include <zstd.h>
#include <zdict.h>
#include "custos/log.h"
#include "custos/store.h"
#include "custos/util.h"

#define SEG_MAGIC "CUSTSEG1"
#define SEG_VERSION 1
#define SEG_HDR_LEN 32
#define REC_MAGIC "CREC"
#define KEYID_MAX 32
#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define REC_FIXED_LEN 52    /* header bytes before the key id */
#define REC_MIN_LEN 56      /* an unencrypted record's header */
#define REC_MAX_LEN (REC_FIXED_LEN + KEYID_MAX + NONCE_LEN + TAG_LEN + 4)

#define DEFAULT_SEGMENT_SIZE (256ULL << 20)
#define SMALL_RAW 4096          /* other records under this stay uncompressed */
/* Dictionary size follows the training data (1/64 of it, so that it pays
 * for itself on a small archive too), between these bounds. */
#define DICT_SIZE_MIN (4 * 1024)
#define DICT_SIZE_MAX (110 * 1024)
#define DICT_MIN_SAMPLES 200
#define DICT_MIN_BYTES (256 * 1024)
#define DICT_SAMPLE_MIN 64              /* smaller samples are skipped */
#define DICT_SAMPLE_MAX (64 * 1024)     /* prefix of each sample used */
#define DICT_TRAIN_MAX (32 * 1024 * 1024)
#define DICT_FILE_MAX (4 * 1024 * 1024)
#define KEYFILE_MAX (64 * 1024)
#define WALK_BUF (1024 * 1024)
#define FD_CACHE_MAX 64
#define REWRITE_SUFFIX ".rewrite"
#define COPY_BUF (1024 * 1024)

enum { ENC_NONE = 0, ENC_AES256GCM = 1 };

/* Decoding failed because the record is damaged, or because something
 * needed to read it (key, dictionary) is not at hand. */
enum { DEC_OK = 0, DEC_CORRUPT = -1, DEC_UNAVAILABLE = -2 };

struct rec_hdr {
    size_t len;             /* header bytes */
    uint8_t kind, comp, enc, keyid_len;
    uint32_t dict_id;
    char keyid[KEYID_MAX + 1];
    unsigned char sha[CUS_SHA256_LEN];
    uint64_t raw_len, stored_len;
    unsigned char nonce[NONCE_LEN];
    unsigned char tag[TAG_LEN];
};

struct store_key {
    char id[KEYID_MAX + 1];
    unsigned char key[KEY_LEN];
};

struct store_dict {
    uint32_t id;
    GBytes *raw;            /* the dictionary itself */
    ZSTD_DDict *ddict;
    ZSTD_CDict *cdict;      /* only for the dictionary new messages use */
};

struct store {
    char *arcdir;
    char *dir;              /* arcdir/store */
    struct store_opts opts; /* key_file, key_id owned copies */
    int writer;
    int lock_fd;

    uint32_t last_seg;      /* highest segment on disk; 0 = none yet */
    int cur_fd;             /* last_seg open for appending; -1 = none/sealed */
    uint64_t cur_end;       /* where the next record goes */
    int cur_dirty;          /* appended since the last fsync */
    int hold_seal;          /* a group of records is being written */
    int walk_lenient;       /* store_walk_par: a bad segment header is an event */
    char *broken;           /* why appends are refused (after a failure) */

    GHashTable *fds;        /* segment number -> fd + 1, for reads */
    GHashTable *prefer;     /* segments read from their .rewrite file, or NULL */

    struct store_key *keys;
    size_t nkeys;
    int wkey;               /* index of the key for new objects; -1 none */

    GHashTable *dicts;      /* id -> struct store_dict */
    GHashTable *dict_missing; /* ids looked for in every segment in vain */
    uint32_t max_dict;      /* highest dictionary id seen */
    uint32_t cur_dict;      /* dictionary for new messages; 0 = none */

    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    EVP_CIPHER_CTX *evp;
    unsigned char *buf;     /* append scratch: header + payload */
    size_t buf_size;
};

/* ---- little helpers ---------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t crc(const unsigned char *p, size_t len)
{
    return (uint32_t)crc32(0L, p, (uInt)len);
}

static void seg_name(uint32_t segno, char buf[32])
{
    snprintf(buf, 32, "seg-%06" PRIu32 ".cseg", segno);
}

static char *seg_path(const struct store *st, uint32_t segno)
{
    char name[32];

    seg_name(segno, name);
    return g_build_filename(st->dir, name, NULL);
}

/* The file segment segno is read from: its .rewrite file while
 * store_rewrite_prefer() asked for it and it is there, else the segment. */
static char *seg_read_path(const struct store *st, uint32_t segno)
{
    char *path = seg_path(st, segno), *alt;

    if (st->prefer == NULL || !g_hash_table_contains(st->prefer, GUINT_TO_POINTER(segno)))
        return path;
    alt = g_strconcat(path, REWRITE_SUFFIX, NULL);
    if (access(alt, F_OK) == 0) {
        g_free(path);
        return alt;
    }
    g_free(alt);
    return path;
}

/* Tests stop the process at a named point (a kill, as far as the files
 * can tell): CUSTOS_FAULT=POINT. */
static void fault_point(const char *point)
{
    const char *f = getenv("CUSTOS_FAULT");

    if (f != NULL && strcmp(f, point) == 0)
        raise(SIGKILL);
}

static char *dict_path(const struct store *st, uint32_t id)
{
    char name[40];

    snprintf(name, sizeof(name), "dict-%" PRIu32 ".zdict", id);
    return g_build_filename(st->dir, name, NULL);
}

/* "seg-000012.cseg" -> 12; "dict-3.zdict" -> 3; 0 if name is neither. */
static uint32_t parse_name(const char *name, const char *prefix, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix), nl = strlen(name);
    uint64_t v = 0;

    if (nl <= pl + sl || nl - pl - sl > 10 || strncmp(name, prefix, pl) != 0 ||
        strcmp(name + nl - sl, suffix) != 0)
        return 0;
    for (size_t i = pl; i < nl - sl; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return v > UINT32_MAX ? 0 : (uint32_t)v;
}

static int valid_keyid(const char *s, size_t len)
{
    if (len == 0 || len > KEYID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isalnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

/* Error about one object: "object <hex> in seg-000003.cseg at offset N: ..." */
static int obj_error(char **error_r, const unsigned char *sha, uint32_t segno,
                     uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int obj_error(char **error_r, const unsigned char *sha, uint32_t segno,
                     uint64_t off, const char *fmt, ...)
{
    char hex[CUS_SHA256_HEX], name[32];
    va_list ap;
    char *msg;

    if (error_r == NULL)
        return -1;
    if (sha != NULL)
        cus_hex(sha, CUS_SHA256_LEN, hex);
    seg_name(segno, name);
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (sha != NULL)
        *error_r = g_strdup_printf("object %s in %s at offset %" PRIu64 ": %s",
                                   hex, name, off, msg);
    else
        *error_r = g_strdup_printf("%s at offset %" PRIu64 ": %s", name, off, msg);
    g_free(msg);
    return -1;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got_r)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *got_r = got;
    return 0;
}

/* ---- headers ----------------------------------------------------------- */

static void seg_hdr_encode(uint32_t segno, unsigned char p[SEG_HDR_LEN])
{
    memset(p, 0, SEG_HDR_LEN);
    memcpy(p, SEG_MAGIC, 8);
    put32(p + 8, SEG_VERSION);
    put32(p + 12, segno);
    put32(p + 28, crc(p, 28));
}

static const char *seg_hdr_check(const unsigned char p[SEG_HDR_LEN], uint32_t segno)
{
    if (memcmp(p, SEG_MAGIC, 8) != 0)
        return "not a custos segment (bad magic)";
    if (get32(p + 28) != crc(p, 28))
        return "segment header checksum mismatch";
    if (get32(p + 8) != SEG_VERSION)
        return "unsupported segment format version";
    if (get32(p + 12) != segno)
        return "segment number in the header differs from the file name";
    return NULL;
}

static size_t rec_hdr_len(const struct rec_hdr *h)
{
    return h->enc == ENC_NONE ? REC_MIN_LEN
                              : REC_FIXED_LEN + h->keyid_len + NONCE_LEN + TAG_LEN + 4;
}

/* The header size a record announces (bytes 6 and 7); p holds at least
 * REC_MIN_LEN bytes. Nonsense sizes come out as REC_MIN_LEN and then fail
 * rec_hdr_decode(). */
static size_t rec_hdr_size(const unsigned char *p)
{
    if (p[6] == ENC_AES256GCM && p[7] <= KEYID_MAX)
        return REC_FIXED_LEN + p[7] + NONCE_LEN + TAG_LEN + 4;
    return REC_MIN_LEN;
}

/* Write h into p (rec_hdr_len(h) bytes); h->len is set. */
static void rec_hdr_encode(struct rec_hdr *h, unsigned char *p)
{
    unsigned char *q = p + REC_FIXED_LEN;

    h->len = rec_hdr_len(h);
    memcpy(p, REC_MAGIC, 4);
    p[4] = h->kind;
    p[5] = h->comp;
    p[6] = h->enc;
    p[7] = h->keyid_len;
    put32(p + 8, h->dict_id);
    put32(p + 12, (uint32_t)h->raw_len);
    put32(p + 16, (uint32_t)h->stored_len);
    memcpy(p + 20, h->sha, CUS_SHA256_LEN);
    if (h->enc != ENC_NONE) {
        memcpy(q, h->keyid, h->keyid_len);
        q += h->keyid_len;
        memcpy(q, h->nonce, NONCE_LEN);
        q += NONCE_LEN;
        memcpy(q, h->tag, TAG_LEN);
        q += TAG_LEN;
    }
    put32(q, crc(p, h->len - 4));
}

/* Decode and sanity-check a record header (p holds rec_hdr_size(p) bytes);
 * NULL or why it is bad. */
static const char *rec_hdr_decode(const unsigned char *p, struct rec_hdr *h)
{
    const unsigned char *q = p + REC_FIXED_LEN;

    memset(h, 0, sizeof(*h));
    if (memcmp(p, REC_MAGIC, 4) != 0)
        return "bad record magic";
    h->len = rec_hdr_size(p);
    if (get32(p + h->len - 4) != crc(p, h->len - 4))
        return "record header checksum mismatch";
    h->kind = p[4];
    h->comp = p[5];
    h->enc = p[6];
    h->keyid_len = p[7];
    h->dict_id = get32(p + 8);
    h->raw_len = get32(p + 12);
    h->stored_len = get32(p + 16);
    memcpy(h->sha, p + 20, CUS_SHA256_LEN);
    if (h->kind < STORE_MESSAGE || h->kind > STORE_CHECKPOINT)
        return "unknown record kind";
    if (h->comp > STORE_COMP_ZSTD_DICT || h->enc > ENC_AES256GCM)
        return "unknown compression or encryption";
    if (h->enc == ENC_NONE ? h->keyid_len != 0 : !valid_keyid((const char *)q, h->keyid_len))
        return "bad key id";
    if (h->enc != ENC_NONE) {
        memcpy(h->keyid, q, h->keyid_len);
        q += h->keyid_len;
        memcpy(h->nonce, q, NONCE_LEN);
        memcpy(h->tag, q + NONCE_LEN, TAG_LEN);
    }
    if (h->raw_len > STORE_MAX_OBJECT || h->stored_len > UINT32_MAX - REC_MAX_LEN)
        return "record length out of range";
    if (h->comp == STORE_COMP_NONE && h->stored_len != h->raw_len)
        return "stored length differs from raw length of an uncompressed record";
    if (h->comp == STORE_COMP_ZSTD_DICT && (h->dict_id == 0 || h->kind == STORE_DICT))
        return "bad dictionary reference";
    if (h->kind == STORE_DICT && h->dict_id == 0)
        return "dictionary record without an id";
    return NULL;
}

/* ---- keys -------------------------------------------------------------- */

static const struct store_key *key_find(const struct store *st, const char *id)
{
    for (size_t i = 0; i < st->nkeys; i++)
        if (strcmp(st->keys[i].id, id) == 0)
            return &st->keys[i];
    return NULL;
}

/* Parse the keyring: "KEYID HEX64" per line, '#' comments, blank lines. */
static int keyring_parse(struct store *st, const char *path, char *text, char **error_r)
{
    char *line = text, *next;
    unsigned int lineno = 0;

    for (; line != NULL; line = next) {
        char *id, *hex, *p;

        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        lineno++;
        g_strstrip(line);
        if (*line == '\0' || *line == '#')
            continue;
        id = line;
        for (p = line; *p != '\0' && !g_ascii_isspace(*p); p++)
            ;
        if (*p == '\0')
            return cus_error(error_r, "%s:%u: expected \"KEYID HEX64\" (key id, "
                             "then 64 hex digits)", path, lineno);
        *p++ = '\0';
        hex = g_strchug(p);
        if (!valid_keyid(id, strlen(id)))
            return cus_error(error_r, "%s:%u: bad key id (1-%d characters of "
                             "A-Z a-z 0-9 . _ -)", path, lineno, KEYID_MAX);
        if (key_find(st, id) != NULL)
            return cus_error(error_r, "%s:%u: key id '%s' appears twice",
                             path, lineno, id);
        st->keys = g_renew(struct store_key, st->keys, st->nkeys + 1);
        memset(&st->keys[st->nkeys], 0, sizeof(struct store_key));
        if (strlen(hex) != 2 * KEY_LEN ||
            cus_unhex(hex, st->keys[st->nkeys].key, KEY_LEN) < 0)
            return cus_error(error_r, "%s:%u: the key must be 64 hex digits "
                             "(256 bits)", path, lineno);
        g_strlcpy(st->keys[st->nkeys].id, id, sizeof(st->keys[0].id));
        st->nkeys++;
    }
    return 0;
}

static int keyring_load(struct store *st, char **error_r)
{
    const char *path = st->opts.key_file;
    struct stat sb;
    char *text = NULL;
    size_t got = 0;
    int fd, ret = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cus_error_errno(error_r, "open(%s) failed", path);
    if (fstat(fd, &sb) < 0) {
        cus_error_errno(error_r, "fstat(%s) failed", path);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        cus_error(error_r, "key file %s is not a regular file", path);
        goto out;
    }
    /* Compliance readers ([archive] group) may read it; nobody else. */
    if ((sb.st_mode & S_IRWXO) != 0 || (sb.st_mode & (S_IWGRP | S_IXGRP)) != 0 ||
        ((sb.st_mode & S_IRGRP) != 0 &&
         (!st->opts.has_reader_gid || sb.st_gid != (gid_t)st->opts.reader_gid))) {
        cus_error(error_r, "key file %s has mode %04o: it must not be accessible "
                  "by others, nor by a group other than [archive] group (chmod 600 %s, "
                  "or chgrp to that group and chmod 640)", path,
                  (unsigned int)(sb.st_mode & 07777), path);
        goto out;
    }
    if (sb.st_size > KEYFILE_MAX) {
        cus_error(error_r, "key file %s is too large (%lld bytes)", path,
                  (long long)sb.st_size);
        goto out;
    }
    text = g_malloc0((size_t)sb.st_size + 1);
    if (pread_all(fd, text, (size_t)sb.st_size, 0, &got) < 0) {
        cus_error_errno(error_r, "read(%s) failed", path);
        goto out;
    }
    text[got] = '\0';
    if (keyring_parse(st, path, text, error_r) < 0)
        goto out;
    if (st->nkeys == 0) {
        cus_error(error_r, "key file %s holds no keys", path);
        goto out;
    }
    st->wkey = (int)st->nkeys - 1;
    if (st->opts.key_id != NULL) {
        const struct store_key *k = key_find(st, st->opts.key_id);
        if (k == NULL) {
            cus_error(error_r, "key id '%s' is not in key file %s",
                      st->opts.key_id, path);
            goto out;
        }
        st->wkey = (int)(k - st->keys);
    }
    ret = 0;
out:
    if (text != NULL) {
        OPENSSL_cleanse(text, (size_t)sb.st_size);
        g_free(text);
    }
    close(fd);
    return ret;
}

/* ---- AES-256-GCM ------------------------------------------------------- */

/* Encrypt buf in place; 0 or -1. */
static int gcm_seal(struct store *st, const unsigned char *key,
                    const unsigned char *nonce, const unsigned char *aad,
                    size_t aad_len, unsigned char *buf, size_t len, unsigned char tag[TAG_LEN])
{
    int outl;
    size_t done = 0;

    if (EVP_EncryptInit_ex(st->evp, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(st->evp, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(st->evp, NULL, NULL, key, nonce) != 1 ||
        EVP_EncryptUpdate(st->evp, NULL, &outl, aad, (int)aad_len) != 1)
        return -1;
    while (done < len) {
        int chunk = len - done > (1 << 30) ? (1 << 30) : (int)(len - done);
        if (EVP_EncryptUpdate(st->evp, buf + done, &outl, buf + done, chunk) != 1)
            return -1;
        done += (size_t)chunk;
    }
    if (EVP_EncryptFinal_ex(st->evp, buf + len, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(st->evp, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        return -1;
    return 0;
}

/* Decrypt buf in place and check the tag; 0 or -1. */
static int gcm_open(EVP_CIPHER_CTX *evp, const unsigned char *key,
                    const unsigned char *nonce, const unsigned char *aad,
                    size_t aad_len, unsigned char *buf, size_t len, const unsigned char tag[TAG_LEN])
{
    int outl;
    size_t done = 0;

    if (EVP_DecryptInit_ex(evp, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(evp, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(evp, NULL, &outl, aad, (int)aad_len) != 1)
        return -1;
    while (done < len) {
        int chunk = len - done > (1 << 30) ? (1 << 30) : (int)(len - done);
        if (EVP_DecryptUpdate(evp, buf + done, &outl, buf + done, chunk) != 1)
            return -1;
        done += (size_t)chunk;
    }
    if (EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)tag) != 1 ||
        EVP_DecryptFinal_ex(evp, buf + len, &outl) != 1)
        return -1;
    return 0;
}

/* ---- segment scanning (sequential, large buffer) ----------------------- */

enum scan_ev { EV_RECORD, EV_BAD, EV_TAIL };

struct seg_scan {
    int fd;
    uint32_t segno;
    uint64_t limit;         /* do not read past this offset */
    unsigned char *buf;
    size_t cap, len, pos;   /* buf[pos..len) is unread data */
    uint64_t base;          /* file offset of buf[0] */
    int eof;
};

/* Make need bytes available at sc->buf + sc->pos: 1 yes, 0 end of file
 * first, -1 read error (errno). */
static int scan_fill(struct seg_scan *sc, size_t need)
{
    if (sc->len - sc->pos >= need)
        return 1;
    memmove(sc->buf, sc->buf + sc->pos, sc->len - sc->pos);
    sc->base += sc->pos;
    sc->len -= sc->pos;
    sc->pos = 0;
    if (need > sc->cap) {
        sc->cap = need;
        sc->buf = g_realloc(sc->buf, sc->cap);
    }
    while (sc->len < need && !sc->eof) {
        size_t want = sc->cap - sc->len;
        ssize_t n;

        if (sc->base + sc->len + want > sc->limit)
            want = (size_t)(sc->limit - sc->base - sc->len);
        if (want == 0) {
            sc->eof = 1;
            break;
        }
        n = read(sc->fd, sc->buf + sc->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            sc->eof = 1;
        sc->len += (size_t)n;
    }
    return sc->len >= need;
}

/* One event of a segment scan. For EV_RECORD, raw/h/payload are the record
 * (payload may be modified); for EV_BAD (unreadable header) and EV_TAIL
 * (incomplete record at end of file) skip is the bytes passed over. */
typedef int scan_cb(struct store *st, void *ctx, enum scan_ev ev, uint32_t segno,
                    uint64_t off, const unsigned char *raw, const struct rec_hdr *h,
                    unsigned char *payload, const char *problem, uint64_t skip);

/* Scan one segment from its first record, fd positioned anywhere. A non-zero
 * callback return stops and is returned; -1 with error_r on I/O errors. */
static int seg_scan_run(struct store *st, int fd, uint32_t segno, uint64_t start,
                        uint64_t limit, scan_cb *cb, void *ctx, char **error_r)
{
    struct seg_scan sc = { .fd = fd, .segno = segno, .limit = limit };
    unsigned char *fh;
    struct rec_hdr h;
    const char *why;
    char name[32];
    int r, ret = 0;

    seg_name(segno, name);
    sc.cap = WALK_BUF;
    sc.buf = g_malloc(sc.cap);
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (lseek(fd, 0, SEEK_SET) < 0) {
        ret = cus_error_errno(error_r, "lseek(%s) failed", name);
        goto out;
    }
    r = scan_fill(&sc, SEG_HDR_LEN);
    if (r < 0) {
        ret = cus_error_errno(error_r, "read(%s/%s) failed", st->dir, name);
        goto out;
    }
    fh = sc.buf;
    why = r == 0 ? "shorter than the segment header" : seg_hdr_check(fh, segno);
    if (why != NULL && st->walk_lenient) {
        /* verify: a problem to report, and the records may still be read. */
        ret = cb(st, ctx, r == 0 ? EV_TAIL : EV_BAD, segno, 0, NULL, NULL, NULL,
                 r == 0 ? "shorter than the segment header" : why,
                 r == 0 ? sc.len : SEG_HDR_LEN);
        if (ret != 0 || r == 0)
            goto out;
    } else if (why != NULL) {
        ret = cus_error(error_r, "%s/%s: %s", st->dir, name, why);
        goto out;
    }
    if (start > SEG_HDR_LEN) {
        /* Resume at a record boundary the caller knows (no resync). */
        if (lseek(fd, (off_t)start, SEEK_SET) < 0) {
            ret = cus_error_errno(error_r, "lseek(%s) failed", name);
            goto out;
        }
        sc.base = start;
        sc.len = sc.pos = 0;
        sc.eof = 0;
    } else {
        sc.pos = SEG_HDR_LEN;
    }
    for (;;) {
        uint64_t off = sc.base + sc.pos;
        size_t hlen = 0;

        r = scan_fill(&sc, REC_MIN_LEN);
        if (r > 0) {
            hlen = rec_hdr_size(sc.buf + sc.pos);
            r = scan_fill(&sc, hlen);
        }
        if (r < 0)
            goto ioerr;
        if (r == 0) {
            if (sc.len > sc.pos)
                ret = cb(st, ctx, EV_TAIL, segno, off, NULL, NULL, NULL,
                         "incomplete record header at end of file", sc.len - sc.pos);
            break;
        }
        why = rec_hdr_decode(sc.buf + sc.pos, &h);
        if (why == NULL) {
            size_t total = h.len + (size_t)h.stored_len;

            r = scan_fill(&sc, total);
            if (r < 0)
                goto ioerr;
            if (r == 0) {
                ret = cb(st, ctx, EV_TAIL, segno, off, sc.buf + sc.pos, &h, NULL,
                         "incomplete record at end of file", sc.len - sc.pos);
                break;
            }
            ret = cb(st, ctx, EV_RECORD, segno, off, sc.buf + sc.pos, &h,
                     sc.buf + sc.pos + h.len, NULL, 0);
            sc.pos += total;
            if (ret != 0)
                break;
            continue;
        }
        /* Unreadable header: resynchronise on the next valid one. */
        sc.pos++;
        for (;;) {
            unsigned char *p;

            r = scan_fill(&sc, REC_MIN_LEN);
            if (r < 0)
                goto ioerr;
            if (r == 0) {
                sc.pos = sc.len;
                break;
            }
            p = memmem(sc.buf + sc.pos, sc.len - sc.pos, REC_MAGIC, 4);
            if (p == NULL) {
                sc.pos = sc.len - 3;
                continue;
            }
            sc.pos = (size_t)(p - sc.buf);
            r = scan_fill(&sc, REC_MIN_LEN);
            if (r > 0)
                r = scan_fill(&sc, rec_hdr_size(sc.buf + sc.pos));
            if (r < 0)
                goto ioerr;
            if (r == 0) {
                sc.pos = sc.len;
                break;
            }
            if (rec_hdr_decode(sc.buf + sc.pos, &h) == NULL)
                break;
            sc.pos++;
        }
        ret = cb(st, ctx, EV_BAD, segno, off, NULL, NULL, NULL, why,
                 sc.base + sc.pos - off);
        if (ret != 0)
            break;
    }
    goto out;
ioerr:
    ret = cus_error_errno(error_r, "read(%s/%s) failed", st->dir, name);
out:
    g_free(sc.buf);
    return ret;
}

static gint cmp_u32(gconstpointer a, gconstpointer b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Segment numbers on disk, ascending. */
static GArray *seg_list(const struct store *st, char **error_r)
{
    GArray *segs;
    DIR *d = opendir(st->dir);
    struct dirent *de;

    if (d == NULL) {
        cus_error_errno(error_r, "opendir(%s) failed", st->dir);
        return NULL;
    }
    segs = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    while ((de = readdir(d)) != NULL) {
        uint32_t n = parse_name(de->d_name, "seg-", ".cseg");
        if (n != 0)
            g_array_append_val(segs, n);
    }
    closedir(d);
    g_array_sort(segs, cmp_u32);
    return segs;
}

/* ---- dictionaries ------------------------------------------------------ */

static void dict_free(gpointer p)
{
    struct store_dict *d = p;

    ZSTD_freeDDict(d->ddict);
    ZSTD_freeCDict(d->cdict);
    g_bytes_unref(d->raw);
    g_free(d);
}

static struct store_dict *dict_install(struct store *st, uint32_t id, GBytes *dict,
                                       char **error_r)
{
    struct store_dict *d = g_new0(struct store_dict, 1);
    gsize size;
    const void *data = g_bytes_get_data(dict, &size);

    d->id = id;
    d->ddict = ZSTD_createDDict(data, size);
    if (d->ddict == NULL) {
        g_free(d);
        cus_error(error_r, "dictionary %" PRIu32 " cannot be loaded", id);
        return NULL;
    }
    d->raw = g_bytes_ref(dict);
    g_hash_table_replace(st->dicts, GUINT_TO_POINTER(id), d);
    g_hash_table_remove(st->dict_missing, GUINT_TO_POINTER(id));
    if (id > st->max_dict)
        st->max_dict = id;
    return d;
}

static int rec_decode(struct store *st, uint32_t segno, uint64_t off,
                      const unsigned char *raw, const struct rec_hdr *h,
                      unsigned char *payload, GBytes **data_r, char **error_r);

/* Install dictionary id from a copy of its record (a dict-N.zdict file or
 * the bytes found in a segment). rec is modified (decrypted in place). */
static struct store_dict *dict_from_record(struct store *st, uint32_t id,
                                           unsigned char *rec, size_t len,
                                           uint32_t segno, uint64_t off,
                                           char **error_r)
{
    struct rec_hdr h;
    const char *why;
    GBytes *dict = NULL;
    struct store_dict *d;

    if (len < REC_MIN_LEN || len < rec_hdr_size(rec)) {
        cus_error(error_r, "dictionary %" PRIu32 ": record too short", id);
        return NULL;
    }
    why = rec_hdr_decode(rec, &h);
    if (why == NULL && (h.kind != STORE_DICT || h.dict_id != id))
        why = "not the record of this dictionary";
    if (why == NULL && h.len + h.stored_len != len)
        why = "record length mismatch";
    if (why != NULL) {
        cus_error(error_r, "dictionary %" PRIu32 ": %s", id, why);
        return NULL;
    }
    if (rec_decode(st, segno, off, rec, &h, rec + h.len, &dict, error_r) != DEC_OK)
        return NULL;
    d = dict_install(st, id, dict, error_r);
    g_bytes_unref(dict);
    return d;
}

struct dict_find {
    uint32_t id;
    GByteArray *rec;        /* the last record defining id */
    uint32_t segno;
    uint64_t off;
};

static int dict_find_cb(struct store *st, void *ctx, enum scan_ev ev, uint32_t segno,
                        uint64_t off, const unsigned char *raw, const struct rec_hdr *h,
                        unsigned char *payload, const char *problem, uint64_t skip)
{
    struct dict_find *f = ctx;

    if (ev == EV_RECORD && h->kind == STORE_DICT && h->dict_id == f->id) {
        g_byte_array_set_size(f->rec, 0);
        g_byte_array_append(f->rec, raw, (guint)(h->len + h->stored_len));
        f->segno = segno;
        f->off = off;
    }
    return 0;
}

static int seg_open_scan(struct store *st, uint32_t segno, uint64_t start, scan_cb *cb,
                         void *ctx, int *unsealed_r, char **error_r);

/* The dictionary with this id: loaded, else from dict-N.zdict, else from
 * its record in the segments (and then the file is written again). */
static struct store_dict *dict_get(struct store *st, uint32_t id, char **error_r)
{
    struct store_dict *d = g_hash_table_lookup(st->dicts, GUINT_TO_POINTER(id));
    struct dict_find f = { .id = id };
    char *path, *err = NULL;
    GBytes *file;
    GArray *segs;

    if (d != NULL)
        return d;
    path = dict_path(st, id);
    if (cus_read_file(path, DICT_FILE_MAX, &file, &err) == 0) {
        gsize len;
        unsigned char *copy = g_bytes_unref_to_data(file, &len);

        d = dict_from_record(st, id, copy, len, 0, 0, &err);
        g_free(copy);
        if (d != NULL) {
            g_free(path);
            return d;
        }
        log_warn("%s: %s; looking for the dictionary in the segments", path, err);
    }
    g_free(err);
    err = NULL;
    if (g_hash_table_contains(st->dict_missing, GUINT_TO_POINTER(id)))
        goto missing;
    segs = seg_list(st, error_r);
    if (segs == NULL) {
        g_free(path);
        return NULL;
    }
    f.rec = g_byte_array_new();
    for (guint i = 0; i < segs->len; i++) {
        if (seg_open_scan(st, g_array_index(segs, uint32_t, i), 0, dict_find_cb, &f,
                          NULL, &err) < 0) {
            log_warn("looking for dictionary %" PRIu32 ": %s", id, err);
            g_free(err);
            err = NULL;
        }
    }
    g_array_unref(segs);
    if (f.rec->len > 0) {
        GByteArray *copy = g_byte_array_sized_new(f.rec->len);

        g_byte_array_append(copy, f.rec->data, f.rec->len);
        d = dict_from_record(st, id, f.rec->data, f.rec->len, f.segno, f.off, error_r);
        if (d != NULL && st->writer &&
            cus_write_file_atomic(path, copy->data, copy->len, 0440, &err) < 0) {
            log_warn("%s", err);
            g_free(err);
        }
        g_byte_array_unref(copy);
    }
    g_byte_array_unref(f.rec);
    if (d != NULL) {
        g_free(path);
        return d;
    }
    g_hash_table_add(st->dict_missing, GUINT_TO_POINTER(id));
missing:
    cus_error(error_r, "dictionary %" PRIu32 " is missing (no readable %s and no "
              "dictionary record in any segment)", id, path);
    g_free(path);
    return NULL;
}

/* Highest N of the dict-N.zdict files. */
static uint32_t dict_files_max(const struct store *st)
{
    DIR *d = opendir(st->dir);
    struct dirent *de;
    uint32_t max = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        uint32_t n = parse_name(de->d_name, "dict-", ".zdict");
        if (n > max)
            max = n;
    }
    closedir(d);
    return max;
}

/* Make dictionary id the one new messages are compressed with. */
static int dict_use(struct store *st, uint32_t id, char **error_r)
{
    struct store_dict *d = dict_get(st, id, error_r), *old;
    gsize size;
    const void *data;

    if (d == NULL)
        return -1;
    if (d->cdict == NULL) {
        data = g_bytes_get_data(d->raw, &size);
        d->cdict = ZSTD_createCDict(data, size, st->opts.zstd_level);
        if (d->cdict == NULL)
            return cus_error(error_r, "dictionary %" PRIu32 ": cannot prepare it "
                             "for compression", id);
    }
    old = g_hash_table_lookup(st->dicts, GUINT_TO_POINTER(st->cur_dict));
    if (old != NULL && old != d) {
        ZSTD_freeCDict(old->cdict);
        old->cdict = NULL;
    }
    st->cur_dict = id;
    return 0;
}

/* ---- decoding ---------------------------------------------------------- */

/* What decoding needs that is not shared between threads. */
struct dec {
    ZSTD_DCtx *dctx;
    EVP_CIPHER_CTX *evp;
    unsigned char *scratch; /* reused when only the hash is wanted (walks) */
    size_t scratch_cap;
};

/* Decrypt, decompress and hash-check one record; payload is modified.
 * d is the dictionary for STORE_COMP_ZSTD_DICT if the caller has it, else
 * NULL (looked up here: then only from the thread that owns st). data_r
 * NULL: check only. DEC_OK (with *data_r), else DEC_CORRUPT /
 * DEC_UNAVAILABLE with error_r. */
static int rec_decode_with(struct store *st, struct dec *dc, const struct store_dict *d,
                           uint32_t segno, uint64_t off, const unsigned char *raw,
                           const struct rec_hdr *h, unsigned char *payload,
                           GBytes **data_r, char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN];
    unsigned char *out = NULL;
    const unsigned char *plain;
    char *err = NULL;

    if (h->enc == ENC_AES256GCM) {
        const struct store_key *k = key_find(st, h->keyid);

        if (k == NULL && st->opts.key_file == NULL) {
            obj_error(error_r, h->sha, segno, off, "encrypted with key id '%s', "
                      "but no key file is configured", h->keyid);
            return DEC_UNAVAILABLE;
        }
        if (k == NULL) {
            obj_error(error_r, h->sha, segno, off, "encrypted with key id '%s', "
                      "which is not in key file %s", h->keyid, st->opts.key_file);
            return DEC_UNAVAILABLE;
        }
        if (gcm_open(dc->evp, k->key, h->nonce, raw, h->len - TAG_LEN - 4, payload,
                     (size_t)h->stored_len, h->tag) < 0) {
            obj_error(error_r, h->sha, segno, off, "authentication failed (the "
                      "record is corrupt, or key '%s' is not the key it was "
                      "written with)", h->keyid);
            return DEC_CORRUPT;
        }
    }
    if (h->comp == STORE_COMP_NONE) {
        if (h->stored_len != h->raw_len) {
            obj_error(error_r, h->sha, segno, off, "stored length %" PRIu64 " is not "
                      "the raw length %" PRIu64, h->stored_len, h->raw_len);
            return DEC_CORRUPT;
        }
        plain = payload;
    } else {
        size_t r;

        if (h->comp == STORE_COMP_ZSTD_DICT && d == NULL) {
            d = dict_get(st, h->dict_id, &err);
            if (d == NULL) {
                obj_error(error_r, h->sha, segno, off, "%s", err);
                g_free(err);
                return DEC_UNAVAILABLE;
            }
        }
        if (data_r == NULL && dc->scratch_cap > 0) {
            /* Checked, then dropped: no allocation per record. */
            if (dc->scratch_cap < h->raw_len) {
                dc->scratch_cap = MAX((size_t)h->raw_len, 2 * dc->scratch_cap);
                dc->scratch = g_realloc(dc->scratch, dc->scratch_cap);
            }
            out = dc->scratch;
        } else {
            out = g_malloc(h->raw_len > 0 ? (size_t)h->raw_len : 1);
        }
        if (h->comp == STORE_COMP_ZSTD_DICT)
            r = ZSTD_decompress_usingDDict(dc->dctx, out, (size_t)h->raw_len, payload,
                                           (size_t)h->stored_len, d->ddict);
        else
            r = ZSTD_decompressDCtx(dc->dctx, out, (size_t)h->raw_len, payload,
                                    (size_t)h->stored_len);
        if (ZSTD_isError(r) || r != h->raw_len) {
            obj_error(error_r, h->sha, segno, off, "corrupt compressed data (%s)",
                      ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
            if (out != dc->scratch)
                g_free(out);
            return DEC_CORRUPT;
        }
        plain = out;
    }
    cus_sha256(plain, (size_t)h->raw_len, sha);
    if (out == dc->scratch)
        out = NULL;     /* not ours to free */
    if (memcmp(sha, h->sha, CUS_SHA256_LEN) != 0) {
        g_free(out);
        obj_error(error_r, h->sha, segno, off, "hash mismatch (the stored data "
                  "is corrupt)");
        return DEC_CORRUPT;
    }
    if (data_r != NULL)
        *data_r = out != NULL ? g_bytes_new_take(out, (gsize)h->raw_len)
                              : g_bytes_new(payload, (gsize)h->raw_len);
    else
        g_free(out);
    return DEC_OK;
}

static int rec_decode(struct store *st, uint32_t segno, uint64_t off,
                      const unsigned char *raw, const struct rec_hdr *h,
                      unsigned char *payload, GBytes **data_r, char **error_r)
{
    struct dec dc = { st->dctx, st->evp, NULL, 0 };

    return rec_decode_with(st, &dc, NULL, segno, off, raw, h, payload, data_r, error_r);
}

/* ---- segment files ----------------------------------------------------- */

/* Open a segment and scan it; *unsealed_r tells whether it is still open
 * for appends (owner-writable). The writer's own segment is read only up to
 * what it has appended. */
static int seg_open_scan(struct store *st, uint32_t segno, uint64_t start, scan_cb *cb,
                         void *ctx, int *unsealed_r, char **error_r)
{
    char *path = seg_read_path(st, segno);
    uint64_t limit = UINT64_MAX;
    struct stat sb;
    int fd, ret;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = cus_error_errno(error_r, "open(%s) failed", path);
        g_free(path);
        return ret;
    }
    if (fstat(fd, &sb) < 0) {
        ret = cus_error_errno(error_r, "fstat(%s) failed", path);
        goto out;
    }
    if (unsealed_r != NULL)
        *unsealed_r = (sb.st_mode & S_IWUSR) != 0;
    if (st->writer && st->cur_fd >= 0 && segno == st->last_seg)
        limit = st->cur_end;
    ret = seg_scan_run(st, fd, segno, start, limit, cb, ctx, error_r);
out:
    close(fd);
    g_free(path);
    return ret;
}

/* An fd for reading segment segno (cached). */
static int seg_fd(struct store *st, uint32_t segno, char **error_r)
{
    unsigned char fh[SEG_HDR_LEN];
    const char *why;
    char *path;
    size_t got;
    int fd;

    if (st->cur_fd >= 0 && segno == st->last_seg)
        return st->cur_fd;
    fd = GPOINTER_TO_INT(g_hash_table_lookup(st->fds, GUINT_TO_POINTER(segno))) - 1;
    if (fd >= 0)
        return fd;
    path = seg_read_path(st, segno);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cus_error_errno(error_r, "open(%s) failed", path);
        g_free(path);
        return -1;
    }
    if (pread_all(fd, fh, SEG_HDR_LEN, 0, &got) < 0) {
        cus_error_errno(error_r, "read(%s) failed", path);
        goto fail;
    }
    why = got < SEG_HDR_LEN ? "shorter than the segment header" : seg_hdr_check(fh, segno);
    if (why != NULL) {
        cus_error(error_r, "%s: %s", path, why);
        goto fail;
    }
    if (g_hash_table_size(st->fds) >= FD_CACHE_MAX)
        g_hash_table_remove_all(st->fds);
    g_hash_table_insert(st->fds, GUINT_TO_POINTER(segno), GINT_TO_POINTER(fd + 1));
    g_free(path);
    return fd;
fail:
    close(fd);
    g_free(path);
    return -1;
}

static void fd_close(gpointer p)
{
    close(GPOINTER_TO_INT(p) - 1);
}

/* Seal the current segment: read-only, fsync'd; the next append starts a
 * new one. */
static int seg_seal(struct store *st, char **error_r)
{
    char *path = seg_path(st, st->last_seg);
    int ret = 0;

    if (fchmod(st->cur_fd, 0440) < 0 || fsync(st->cur_fd) < 0) {
        ret = cus_error_errno(error_r, "sealing %s failed", path);
        g_free(st->broken);
        st->broken = g_strdup_printf("sealing %s failed earlier", path);
    } else {
        log_debug("store: sealed %s (%" PRIu64 " bytes)", path, st->cur_end);
    }
    close(st->cur_fd);
    st->cur_fd = -1;
    st->cur_dirty = 0;
    g_free(path);
    return ret;
}

/* Create the next segment (header written and fsync'd, directory too). */
static int seg_start(struct store *st, char **error_r)
{
    uint32_t segno = st->last_seg + 1;
    char *path = seg_path(st, segno);
    unsigned char fh[SEG_HDR_LEN];
    int fd, ret = -1;

    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        cus_error_errno(error_r, "open(%s) failed", path);
        goto out;
    }
    seg_hdr_encode(segno, fh);
    if (pwrite(fd, fh, SEG_HDR_LEN, 0) != SEG_HDR_LEN) {
        if (errno == 0)
            errno = ENOSPC;
        cus_error_errno(error_r, "write(%s) failed", path);
        goto fail;
    }
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s) failed", path);
        goto fail;
    }
    if (cus_fsync_dir(st->dir, error_r) < 0)
        goto fail;
    st->cur_fd = fd;
    st->cur_end = SEG_HDR_LEN;
    st->cur_dirty = 0;
    st->last_seg = segno;
    ret = 0;
    goto out;
fail:
    close(fd);
    unlink(path);
out:
    g_free(path);
    return ret;
}

/* ---- opening: check the last segment, cut a torn tail ------------------ */

struct check {
    uint64_t good_end;      /* end of the last record that checked out */
    GPtrArray *bad;         /* problems since then (strings) */
    int tail_records;       /* records among them */
};

static void check_flush_bad(struct check *c, const char *path)
{
    /* Damage followed by good records is not a torn tail: leave it. */
    for (guint i = 0; i < c->bad->len; i++)
        log_error("store: %s: %s (left in place; custos-archive verify "
                  "reports it)", path, (const char *)g_ptr_array_index(c->bad, i));
    g_ptr_array_set_size(c->bad, 0);
    c->tail_records = 0;
}

static int check_cb(struct store *st, void *ctx, enum scan_ev ev, uint32_t segno,
                    uint64_t off, const unsigned char *raw, const struct rec_hdr *h,
                    unsigned char *payload, const char *problem, uint64_t skip)
{
    struct check *c = ctx;
    GBytes *data = NULL;
    unsigned char *copy = NULL;
    char *err = NULL;
    int rc;

    if (ev != EV_RECORD) {
        g_ptr_array_add(c->bad, g_strdup_printf("offset %" PRIu64 ": %s (%" PRIu64
                                                " bytes)", off, problem, skip));
        return 0;
    }
    if (h->kind == STORE_DICT)
        copy = g_memdup2(raw, h->len + (gsize)h->stored_len);
    rc = rec_decode(st, segno, off, raw, h, payload, &data, &err);
    if (rc == DEC_CORRUPT) {
        g_ptr_array_add(c->bad, err);
        c->tail_records++;
        g_free(copy);
        return 0;
    }
    if (c->bad->len > 0) {
        char *path = seg_path(st, segno);
        check_flush_bad(c, path);
        g_free(path);
    }
    c->good_end = off + h->len + h->stored_len;
    if (rc == DEC_UNAVAILABLE) {
        log_debug("store: %s (not checked)", err);
        g_free(err);
    }
    if (rc == DEC_OK && h->kind == STORE_DICT &&
        !g_hash_table_contains(st->dicts, GUINT_TO_POINTER(h->dict_id))) {
        /* A dictionary whose file was not written before a crash. */
        char *path = dict_path(st, h->dict_id);
        if (dict_install(st, h->dict_id, data, &err) == NULL ||
            (access(path, F_OK) < 0 &&
             cus_write_file_atomic(path, copy, h->len + (size_t)h->stored_len,
                                   0440, &err) < 0)) {
            log_warn("store: %s", err);
            g_free(err);
        }
        g_free(path);
    }
    if (h->kind == STORE_DICT && h->dict_id > st->max_dict)
        st->max_dict = h->dict_id;
    if (data != NULL)
        g_bytes_unref(data);
    g_free(copy);
    return 0;
}

/* Check the newest segment and get it ready for appends. */
static int seg_recover(struct store *st, char **error_r)
{
    char *path = seg_path(st, st->last_seg);
    struct check c = { .good_end = SEG_HDR_LEN };
    struct stat sb;
    int fd = -1, unsealed, ret = -1;

    if (stat(path, &sb) < 0) {
        cus_error_errno(error_r, "stat(%s) failed", path);
        goto out;
    }
    unsealed = (sb.st_mode & S_IWUSR) != 0;
    if (unsealed && sb.st_size < SEG_HDR_LEN) {
        /* Crashed while creating it: nothing in it, start it again. */
        unsigned char fh[SEG_HDR_LEN];

        log_warn("store: %s: incomplete segment header (%lld bytes), rewritten",
                 path, (long long)sb.st_size);
        fd = open(path, O_RDWR | O_CLOEXEC);
        seg_hdr_encode(st->last_seg, fh);
        if (fd < 0 || ftruncate(fd, 0) < 0 ||
            pwrite(fd, fh, SEG_HDR_LEN, 0) != SEG_HDR_LEN || fsync(fd) < 0) {
            cus_error_errno(error_r, "rewriting %s failed", path);
            goto out;
        }
        close(fd);
        fd = -1;
        sb.st_size = SEG_HDR_LEN;
    }
    c.bad = g_ptr_array_new_with_free_func(g_free);
    if (seg_open_scan(st, st->last_seg, 0, check_cb, &c, NULL, error_r) < 0)
        goto out;
    if ((uint64_t)sb.st_size > c.good_end) {
        uint64_t cut = (uint64_t)sb.st_size - c.good_end;

        if (!unsealed) {
            check_flush_bad(&c, path);
            log_error("store: %s: sealed, but its last %" PRIu64 " bytes are damaged",
                      path, cut);
        } else {
            for (guint i = 0; i < c.bad->len; i++)
                log_debug("store: %s: %s", path, (const char *)g_ptr_array_index(c.bad, i));
            fd = open(path, O_RDWR | O_CLOEXEC);
            if (fd < 0 || ftruncate(fd, (off_t)c.good_end) < 0 || fsync(fd) < 0) {
                cus_error_errno(error_r, "truncating the torn tail of %s failed", path);
                goto out;
            }
            log_warn("store: %s: truncated a torn tail of %" PRIu64 " bytes at offset %"
                     PRIu64 " (left by an interrupted write; nothing committed is lost)",
                     path, cut, c.good_end);
            close(fd);
            fd = -1;
        }
    }
    if (unsealed) {
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            cus_error_errno(error_r, "open(%s) failed", path);
            goto out;
        }
        st->cur_fd = fd;
        st->cur_end = c.good_end;
        fd = -1;
    }
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (c.bad != NULL)
        g_ptr_array_unref(c.bad);
    g_free(path);
    return ret;
}

/* ---- public ------------------------------------------------------------ */

int store_init(const char *arcdir, char **error_r)
{
    char *dir = g_build_filename(arcdir, "store", NULL);
    int ret = cus_mkdirs(dir, 0700, error_r);

    g_free(dir);
    return ret;
}

/*
 * Waiting for the writer's lock. A waiter holds a shared flock on
 * store/lock.want while it waits, so a long-running writer (ingest
 * --follow) sees that someone waits (store_writer_wanted), lets the lock go
 * and, before taking it again, waits until nobody holds lock.want
 * (store_wait_for_waiters): a waiter gets its turn even under steady mail.
 */
#define LOCK_POLL_US 50000

static char *want_path(const char *dir)
{
    return g_build_filename(dir, "lock.want", NULL);
}

static int lock_wait(struct store *st, const char *lock_path, int wait, char **error_r)
{
    double deadline = st->opts.lock_wait < 0 ? -1 : cus_now() + st->opts.lock_wait;
    char *wp;
    int wfd;

    if (errno != EWOULDBLOCK)
        return cus_error_errno(error_r, "flock(%s) failed", lock_path);
    if (!wait || st->opts.lock_wait == 0)
        return cus_error(error_r, "archive %s is in use by another writer", st->arcdir);
    wp = want_path(st->dir);
    wfd = open(wp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    g_free(wp);
    if (wfd >= 0)
        flock(wfd, LOCK_SH);
    log_info("archive %s is in use by another writer: waiting for it%s", st->arcdir,
             st->opts.lock_wait > 0 ? "" : " (no time limit)");
    for (;;) {
        if (st->opts.cancel != NULL && *st->opts.cancel) {
            cus_error(error_r, "archive %s: stopped while waiting for its writer", st->arcdir);
            break;
        }
        if (deadline >= 0 && cus_now() >= deadline) {
            cus_error(error_r, "archive %s is in use by another writer: gave up after %d s "
                      "(the wait is CUSTOS_LOCK_WAIT seconds)", st->arcdir,
                      st->opts.lock_wait);
            break;
        }
        usleep(LOCK_POLL_US);
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) == 0) {
            if (wfd >= 0)
                close(wfd);
            return 0;
        }
        if (errno != EWOULDBLOCK) {
            cus_error_errno(error_r, "flock(%s) failed", lock_path);
            break;
        }
    }
    if (wfd >= 0)
        close(wfd);
    return -1;
}

int store_writer_wanted(struct store *st)
{
    char *wp = want_path(st->dir);
    int fd = open(wp, O_RDONLY | O_CLOEXEC), wanted = 0;

    g_free(wp);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        wanted = errno == EWOULDBLOCK;
    close(fd);      /* lets go of the flock if we got it */
    return wanted;
}

void store_wait_for_waiters(const char *arcdir, double seconds,
                            const volatile sig_atomic_t *cancel)
{
    char *dir = g_build_filename(arcdir, "store", NULL), *wp = want_path(dir);
    int fd = open(wp, O_RDONLY | O_CLOEXEC);
    double deadline = cus_now() + seconds;

    g_free(dir);
    g_free(wp);
    if (fd < 0)
        return;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK &&
           cus_now() < deadline && (cancel == NULL || !*cancel))
        usleep(LOCK_POLL_US);
    close(fd);
}

int store_open(const char *arcdir, const struct store_opts *opts, int flags,
               struct store **st_r, char **error_r)
{
    struct store *st = g_new0(struct store, 1);
    char *lock_path = NULL;
    struct stat sb;
    GArray *segs;

    *st_r = NULL;
    st->arcdir = g_strdup(arcdir);
    st->dir = g_build_filename(arcdir, "store", NULL);
    if (opts != NULL)
        st->opts = *opts;
    st->opts.key_file = g_strdup(st->opts.key_file);
    st->opts.key_id = g_strdup(st->opts.key_id);
    if (st->opts.segment_size == 0)
        st->opts.segment_size = DEFAULT_SEGMENT_SIZE;
    if (st->opts.zstd_level == 0)
        st->opts.zstd_level = ZSTD_CLEVEL_DEFAULT;
    st->writer = (flags & STORE_WRITE) != 0;
    st->lock_fd = -1;
    st->cur_fd = -1;
    st->wkey = -1;
    st->fds = g_hash_table_new_full(NULL, NULL, NULL, fd_close);
    st->dicts = g_hash_table_new_full(NULL, NULL, NULL, dict_free);
    st->dict_missing = g_hash_table_new(NULL, NULL);
    st->cctx = ZSTD_createCCtx();
    st->dctx = ZSTD_createDCtx();
    st->evp = EVP_CIPHER_CTX_new();
    if (st->cctx == NULL || st->dctx == NULL || st->evp == NULL) {
        cus_error(error_r, "out of memory for compression/encryption contexts");
        goto fail;
    }
    /* Lean frames: the record header has the size and the dictionary id. */
    if (ZSTD_isError(ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_compressionLevel,
                                            st->opts.zstd_level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_contentSizeFlag, 0)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_dictIDFlag, 0))) {
        cus_error(error_r, "zstd level %d is not supported", st->opts.zstd_level);
        goto fail;
    }
    if (stat(st->dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        cus_error(error_r, "archive %s has no store (%s missing; run init)",
                  arcdir, st->dir);
        goto fail;
    }
    if (st->opts.key_file != NULL && keyring_load(st, error_r) < 0)
        goto fail;
    if (st->writer) {
        lock_path = g_build_filename(st->dir, "lock", NULL);
        st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (st->lock_fd < 0) {
            cus_error_errno(error_r, "open(%s) failed", lock_path);
            goto fail;
        }
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0 &&
            lock_wait(st, lock_path, (flags & STORE_WAIT) != 0, error_r) < 0)
            goto fail;
    }
    st->max_dict = dict_files_max(st);
    segs = seg_list(st, error_r);
    if (segs == NULL)
        goto fail;
    if (segs->len > 0)
        st->last_seg = g_array_index(segs, uint32_t, segs->len - 1);
    g_array_unref(segs);
    if (st->writer && st->last_seg > 0 && seg_recover(st, error_r) < 0)
        goto fail;
    if (st->writer && st->opts.use_dict && st->max_dict > 0 &&
        dict_use(st, st->max_dict, error_r) < 0)
        goto fail;
    g_free(lock_path);
    *st_r = st;
    return 0;
fail:
    g_free(lock_path);
    store_close(&st);
    return -1;
}

void store_close(struct store **stp)
{
    struct store *st = *stp;

    if (st == NULL)
        return;
    *stp = NULL;
    if (st->cur_fd >= 0) {
        if (st->cur_dirty && fsync(st->cur_fd) < 0)
            log_error("store: fsync(%s/seg-%06" PRIu32 ".cseg) failed: %m",
                      st->dir, st->last_seg);
        close(st->cur_fd);
    }
    if (st->lock_fd >= 0)
        close(st->lock_fd);     /* releases the flock */
    g_hash_table_destroy(st->fds);
    if (st->prefer != NULL)
        g_hash_table_destroy(st->prefer);
    g_hash_table_destroy(st->dicts);
    g_hash_table_destroy(st->dict_missing);
    ZSTD_freeCCtx(st->cctx);
    ZSTD_freeDCtx(st->dctx);
    EVP_CIPHER_CTX_free(st->evp);
    if (st->keys != NULL)
        OPENSSL_cleanse(st->keys, st->nkeys * sizeof(struct store_key));
    g_free(st->keys);
    g_free(st->buf);
    g_free(st->broken);
    g_free((char *)st->opts.key_file);
    g_free((char *)st->opts.key_id);
    g_free(st->arcdir);
    g_free(st->dir);
    g_free(st);
}

int store_has_dict(const struct store *st)
{
    struct store_dict *d;

    if (st->cur_dict == 0)
        return 0;
    d = g_hash_table_lookup(st->dicts, GUINT_TO_POINTER(st->cur_dict));
    return d != NULL && d->cdict != NULL;
}

/* Build the record for data in st->buf and append it with one write. For
 * kind STORE_DICT, dict_def is the id the record defines. */
static int append_record(struct store *st, enum store_kind kind,
                         const unsigned char sha[CUS_SHA256_LEN], const void *data,
                         size_t len, uint32_t dict_def, struct store_loc *loc_r,
                         char **error_r)
{
    struct rec_hdr h;
    struct store_dict *d = NULL;
    unsigned char *payload;
    size_t need, cap, total, done = 0;
    char *path;

    if (!st->writer)
        return cus_error(error_r, "store %s was opened read-only", st->dir);
    if (st->broken != NULL)
        return cus_error(error_r, "store %s: appends refused after an earlier "
                         "failure (%s); reopen it", st->dir, st->broken);
    if (len > STORE_MAX_OBJECT)
        return cus_error(error_r, "object of %zu bytes is larger than the store's "
                         "limit of %llu", len, STORE_MAX_OBJECT);
    if (!st->hold_seal && st->cur_fd >= 0 && st->cur_end >= st->opts.segment_size &&
        st->cur_end > SEG_HDR_LEN && seg_seal(st, error_r) < 0)
        return -1;
    if (st->cur_fd < 0 && seg_start(st, error_r) < 0)
        return -1;

    memset(&h, 0, sizeof(h));
    h.kind = (uint8_t)kind;
    memcpy(h.sha, sha, CUS_SHA256_LEN);
    h.raw_len = len;
    h.comp = STORE_COMP_NONE;
    if (st->wkey >= 0) {
        h.enc = ENC_AES256GCM;
        h.keyid_len = (uint8_t)strlen(st->keys[st->wkey].id);
        memcpy(h.keyid, st->keys[st->wkey].id, h.keyid_len);
    }
    h.len = rec_hdr_len(&h);
    cap = ZSTD_compressBound(len);
    need = h.len + (cap > len ? cap : len);
    if (st->buf_size < need) {
        g_free(st->buf);
        st->buf_size = need;
        st->buf = g_malloc(need);
    }
    payload = st->buf + h.len;
    if (kind == STORE_MESSAGE && st->cur_dict != 0)
        d = g_hash_table_lookup(st->dicts, GUINT_TO_POINTER(st->cur_dict));
    if (d != NULL && d->cdict == NULL)
        d = NULL;
    /* Small bookkeeping records (deliveries, chain events, checkpoints)
     * are stored as they are: zstd saves some 30 bytes on each but costs
     * ~2.5 us to decode, which was half of what verify spent. */
    if (len > 0 && (kind == STORE_MESSAGE || kind == STORE_DICT || len >= SMALL_RAW)) {
        size_t r = ZSTD_CCtx_refCDict(st->cctx, d != NULL ? d->cdict : NULL);

        if (!ZSTD_isError(r))
            r = ZSTD_compress2(st->cctx, payload, cap, data, len);
        if (!ZSTD_isError(r) && r < len) {
            h.comp = d != NULL ? STORE_COMP_ZSTD_DICT : STORE_COMP_ZSTD;
            h.stored_len = r;
        }
    }
    if (h.comp == STORE_COMP_NONE) {
        if (len > 0)
            memcpy(payload, data, len);
        h.stored_len = len;
    }
    if (h.comp == STORE_COMP_ZSTD_DICT)
        h.dict_id = st->cur_dict;
    else if (kind == STORE_DICT)
        h.dict_id = dict_def;
    if (h.enc != ENC_NONE) {
        if (RAND_bytes(h.nonce, NONCE_LEN) != 1)
            return cus_error(error_r, "RAND_bytes failed: no random nonce");
        rec_hdr_encode(&h, st->buf);
        if (gcm_seal(st, st->keys[st->wkey].key, h.nonce, st->buf,
                     h.len - TAG_LEN - 4, payload, (size_t)h.stored_len, h.tag) < 0)
            return cus_error(error_r, "AES-256-GCM encryption failed");
    }
    rec_hdr_encode(&h, st->buf);

    total = h.len + (size_t)h.stored_len;
    while (done < total) {
        ssize_t n = pwrite(st->cur_fd, st->buf + done, total - done,
                           (off_t)(st->cur_end + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : ENOSPC;

            path = seg_path(st, st->last_seg);
            if (ftruncate(st->cur_fd, (off_t)st->cur_end) < 0) {
                g_free(st->broken);
                st->broken = g_strdup_printf("ftruncate(%s) after a failed write "
                                             "failed: %s", path, g_strerror(errno));
            }
            cus_error(error_r, "write(%s) failed: %s (%zu of %zu bytes written, "
                      "cut back off)", path, g_strerror(saved), done, total);
            g_free(path);
            return -1;
        }
        done += (size_t)n;
    }
    if (loc_r != NULL) {
        loc_r->segment = st->last_seg;
        loc_r->offset = st->cur_end;
        loc_r->length = (uint32_t)total;
    }
    st->cur_end += total;
    st->cur_dirty = 1;
    if (!st->hold_seal && st->cur_end >= st->opts.segment_size)
        return seg_seal(st, error_r);
    return 0;
}

int store_append(struct store *st, enum store_kind kind,
                 const unsigned char sha[CUS_SHA256_LEN],
                 const void *data, size_t len, struct store_loc *loc_r,
                 char **error_r)
{
    if (kind != STORE_MESSAGE && kind != STORE_DELIVERY && kind != STORE_EVENT &&
        kind != STORE_CHECKPOINT)
        return cus_error(error_r, "store_append: kind %d cannot be appended", (int)kind);
    return append_record(st, kind, sha, data, len, 0, loc_r, error_r);
}

int store_hold_seal(struct store *st, int hold, char **error_r)
{
    st->hold_seal = hold;
    if (!hold && st->writer && st->cur_fd >= 0 && st->cur_end >= st->opts.segment_size)
        return seg_seal(st, error_r);
    return 0;
}

int store_tell(struct store *st, struct store_loc *loc_r, char **error_r)
{
    struct stat sb;
    char *path;

    memset(loc_r, 0, sizeof(*loc_r));
    if (st->last_seg == 0)
        return 0;
    loc_r->segment = st->last_seg;
    if (st->writer && st->cur_fd >= 0) {
        loc_r->offset = st->cur_end;
        return 0;
    }
    path = seg_path(st, st->last_seg);
    if (stat(path, &sb) < 0) {
        cus_error_errno(error_r, "stat(%s) failed", path);
        g_free(path);
        return -1;
    }
    g_free(path);
    loc_r->offset = (uint64_t)sb.st_size;
    return 0;
}

int store_truncate(struct store *st, const struct store_loc *at_, char **error_r)
{
    struct store_loc a = *at_, *at = &a;
    char *path;

    if (a.offset == 0)
        a.offset = SEG_HDR_LEN;
    if (!st->writer || st->cur_fd < 0 || at->segment != st->last_seg ||
        at->offset < SEG_HDR_LEN || at->offset > st->cur_end)
        return cus_error(error_r, "store %s: cannot cut back to seg-%06" PRIu32
                         ".cseg offset %" PRIu64 " (not in the open segment)",
                         st->dir, at->segment, at->offset);
    if (at->offset == st->cur_end)
        return 0;
    path = seg_path(st, st->last_seg);
    if (ftruncate(st->cur_fd, (off_t)at->offset) < 0 || fsync(st->cur_fd) < 0) {
        cus_error_errno(error_r, "truncating %s failed", path);
        g_free(path);
        return -1;
    }
    log_warn("store: %s: cut %" PRIu64 " bytes of unfinished records at offset %"
             PRIu64, path, st->cur_end - at->offset, at->offset);
    g_free(path);
    st->cur_end = at->offset;
    return 0;
}

int store_seal(struct store *st, char **error_r)
{
    if (!st->writer)
        return cus_error(error_r, "store %s was opened read-only", st->dir);
    if (st->cur_fd < 0)
        return 0;
    if (st->broken != NULL)
        return cus_error(error_r, "store %s: %s", st->dir, st->broken);
    return seg_seal(st, error_r);
}

/* Copy bytes [from, to) of in to out. */
static int copy_range(int in, int out, uint64_t from, uint64_t to, unsigned char *buf,
                      const char *src, const char *dst, char **error_r)
{
    while (from < to) {
        size_t want = to - from > COPY_BUF ? COPY_BUF : (size_t)(to - from), got;

        if (pread_all(in, buf, want, from, &got) < 0)
            return cus_error_errno(error_r, "read(%s) failed", src);
        if (got < want)
            return cus_error(error_r, "%s: shorter than it was a moment ago", src);
        if (cus_write_all(out, buf, want) < 0)
            return cus_error_errno(error_r, "write(%s) failed", dst);
        from += want;
    }
    return 0;
}

int store_rewrite_prepare(struct store *st, uint32_t segno, const struct store_drop *drop,
                          size_t n, uint64_t *size_r, char **error_r)
{
    char *path = seg_path(st, segno), *tmp = g_strconcat(path, REWRITE_SUFFIX, NULL);
    unsigned char hb[REC_MAX_LEN], *buf = NULL;
    uint64_t pos = SEG_HDR_LEN, dropped = 0;
    struct stat sb;
    struct rec_hdr h;
    const char *why;
    size_t got = 0;
    int in = -1, out = -1, created = 0, ret = -1;

    if (!st->writer) {
        cus_error(error_r, "store %s was opened read-only", st->dir);
        goto out;
    }
    if (st->cur_fd >= 0 && segno == st->last_seg) {
        cus_error(error_r, "%s is open for appends: seal it before rewriting it", path);
        goto out;
    }
    in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0 || fstat(in, &sb) < 0) {
        cus_error_errno(error_r, "open(%s) failed", path);
        goto out;
    }
    if (pread_all(in, hb, SEG_HDR_LEN, 0, &got) < 0) {
        cus_error_errno(error_r, "read(%s) failed", path);
        goto out;
    }
    why = got < SEG_HDR_LEN ? "shorter than the segment header" : seg_hdr_check(hb, segno);
    if (why != NULL) {
        cus_error(error_r, "%s: %s: not rewritten", path, why);
        goto out;
    }
    /* Every record to drop must be the message index.db says is there. */
    for (size_t i = 0; i < n; i++) {
        const struct store_drop *d = &drop[i];

        if (d->loc.segment != segno || d->loc.offset < pos ||
            d->loc.offset + d->loc.length > (uint64_t)sb.st_size) {
            obj_error(error_r, d->sha, segno, d->loc.offset, "not a record to drop in this "
                      "segment (out of order, overlapping, or past its end)");
            goto out;
        }
        if (pread_all(in, hb, REC_MIN_LEN, d->loc.offset, &got) < 0 || got < REC_MIN_LEN ||
            pread_all(in, hb, rec_hdr_size(hb), d->loc.offset, &got) < 0 ||
            got < rec_hdr_size(hb)) {
            cus_error_errno(error_r, "read(%s) failed", path);
            goto out;
        }
        why = rec_hdr_decode(hb, &h);
        if (why == NULL && h.kind != STORE_MESSAGE)
            why = "not a message record";
        if (why == NULL && memcmp(h.sha, d->sha, CUS_SHA256_LEN) != 0)
            why = "another object is there";
        if (why == NULL && h.len + h.stored_len != d->loc.length)
            why = "the record's length differs";
        if (why != NULL) {
            obj_error(error_r, d->sha, segno, d->loc.offset, "not dropped: %s; %s is left "
                      "as it is", why, path);
            goto out;
        }
        pos = d->loc.offset + d->loc.length;
        dropped += d->loc.length;
    }
    unlink(tmp);
    out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        cus_error_errno(error_r, "open(%s) failed", tmp);
        goto out;
    }
    created = 1;
    buf = g_malloc(COPY_BUF);
    pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (copy_range(in, out, pos, drop[i].loc.offset, buf, path, tmp, error_r) < 0)
            goto out;
        pos = drop[i].loc.offset + drop[i].loc.length;
        if (i == 0)
            fault_point("store-rewrite-partial");
    }
    if (copy_range(in, out, pos, (uint64_t)sb.st_size, buf, path, tmp, error_r) < 0)
        goto out;
    /* The segment's own mode and group (sealed: read-only). */
    if (fchown(out, (uid_t)-1, sb.st_gid) < 0 && errno != EPERM) {
        cus_error_errno(error_r, "fchown(%s) failed", tmp);
        goto out;
    }
    if (fchmod(out, sb.st_mode & 07777) < 0 || fsync(out) < 0) {
        cus_error_errno(error_r, "syncing %s failed", tmp);
        goto out;
    }
    if (close(out) < 0) {
        out = -1;
        cus_error_errno(error_r, "close(%s) failed", tmp);
        goto out;
    }
    out = -1;
    if (cus_fsync_dir(st->dir, error_r) < 0)
        goto out;
    if (size_r != NULL)
        *size_r = (uint64_t)sb.st_size - dropped;
    ret = 0;
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (ret < 0 && created)
        unlink(tmp);
    g_free(buf);
    g_free(tmp);
    g_free(path);
    return ret;
}

int store_rewrite_commit(struct store *st, uint32_t segno, char **error_r)
{
    char *path = seg_path(st, segno), *tmp = g_strconcat(path, REWRITE_SUFFIX, NULL);
    int ret = 0;

    if (access(tmp, F_OK) < 0 && errno == ENOENT)
        goto out;                               /* in place already */
    if (rename(tmp, path) < 0) {
        ret = cus_error_errno(error_r, "rename(%s, %s) failed", tmp, path);
        goto out;
    }
    g_hash_table_remove(st->fds, GUINT_TO_POINTER(segno));
    ret = cus_fsync_dir(st->dir, error_r);
    if (ret == 0)
        log_info("store: %s rewritten without purged records", path);
out:
    g_free(tmp);
    g_free(path);
    return ret;
}

int store_rewrite_discard(struct store *st, char **error_r)
{
    DIR *d = opendir(st->dir);
    struct dirent *de;
    int removed = 0;

    if (d == NULL)
        return cus_error_errno(error_r, "opendir(%s) failed", st->dir);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), sl = strlen(REWRITE_SUFFIX);
        char *name;

        if (len <= sl || strcmp(de->d_name + len - sl, REWRITE_SUFFIX) != 0)
            continue;
        name = g_strndup(de->d_name, len - sl);
        if (parse_name(name, "seg-", ".cseg") != 0) {
            if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                log_warn("store: unlink(%s/%s) failed: %m", st->dir, de->d_name);
            else {
                log_warn("store: removed %s/%s, an unfinished rewrite (it is done again)",
                         st->dir, de->d_name);
                removed++;
            }
        }
        g_free(name);
    }
    closedir(d);
    return removed > 0 ? cus_fsync_dir(st->dir, error_r) : 0;
}

uint64_t store_segment_bytes(struct store *st, uint32_t segno)
{
    char *path = seg_path(st, segno);
    struct stat sb;
    uint64_t n = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;

    g_free(path);
    return n;
}

void store_rewrite_prefer(struct store *st, uint32_t segno)
{
    if (st->prefer == NULL)
        st->prefer = g_hash_table_new(NULL, NULL);
    g_hash_table_add(st->prefer, GUINT_TO_POINTER(segno));
    g_hash_table_remove(st->fds, GUINT_TO_POINTER(segno));
}

int store_sync(struct store *st, char **error_r)
{
    char *path;

    if (!st->writer || st->cur_fd < 0 || !st->cur_dirty)
        return 0;
    if (st->broken != NULL)
        return cus_error(error_r, "store %s: %s", st->dir, st->broken);
    if (fsync(st->cur_fd) < 0) {
        /* After a failed fsync the page cache cannot be trusted: reopen. */
        path = seg_path(st, st->last_seg);
        cus_error_errno(error_r, "fsync(%s) failed", path);
        st->broken = g_strdup_printf("fsync(%s) failed", path);
        g_free(path);
        return -1;
    }
    st->cur_dirty = 0;
    return 0;
}

/* Read the record at loc from fd (limit: where the writer's open segment
 * ends, or 0). */
static int read_at(struct store *st, int fd, uint64_t limit, const struct store_loc *loc,
                   const unsigned char *sha, GBytes **data_r, char **error_r)
{
    const unsigned char *want = sha;
    unsigned char *buf = NULL;
    struct rec_hdr h;
    const char *why;
    char hex[CUS_SHA256_HEX];
    size_t got;
    int ret = -1;

    if (limit > 0 && loc->offset + loc->length > limit)
        return obj_error(error_r, sha, loc->segment, loc->offset,
                         "location is past the end of the segment");
    buf = g_malloc(loc->length);
    if (pread_all(fd, buf, loc->length, loc->offset, &got) < 0) {
        char name[32];
        seg_name(loc->segment, name);
        cus_error_errno(error_r, "read(%s/%s) failed", st->dir, name);
        goto out;
    }
    if (got < loc->length) {
        obj_error(error_r, sha, loc->segment, loc->offset,
                  "record runs past the end of the segment");
        goto out;
    }
    why = rec_hdr_size(buf) > loc->length ? "longer than the record" : rec_hdr_decode(buf, &h);
    if (why != NULL) {
        obj_error(error_r, sha, loc->segment, loc->offset, "bad record header (%s)", why);
        goto out;
    }
    if (want == NULL)
        want = h.sha;
    if (h.len + h.stored_len != loc->length) {
        obj_error(error_r, want, loc->segment, loc->offset, "record is %" PRIu64
                  " bytes, the location says %" PRIu32,
                  h.len + h.stored_len, loc->length);
        goto out;
    }
    if (memcmp(h.sha, want, CUS_SHA256_LEN) != 0) {
        cus_hex(h.sha, CUS_SHA256_LEN, hex);
        obj_error(error_r, want, loc->segment, loc->offset,
                  "the record there holds object %s (hash mismatch)", hex);
        goto out;
    }
    if (rec_decode(st, loc->segment, loc->offset, buf, &h, buf + h.len,
                   data_r, error_r) == DEC_OK)
        ret = 0;
out:
    g_free(buf);
    return ret;
}

/* A second try after a read at loc failed: index.db may already describe
 * a segment rewritten without purged records while the file read was the
 * one before (its .rewrite not yet renamed into place, or an fd opened
 * before the rename). 0 if the record is there. */
static int read_rewritten(struct store *st, const struct store_loc *loc,
                          const unsigned char *sha, GBytes **data_r)
{
    char *path = seg_path(st, loc->segment), *alt = g_strconcat(path, REWRITE_SUFFIX, NULL);
    const char *try[2] = { alt, path };
    int ret = -1;

    if (st->cur_fd >= 0 && loc->segment == st->last_seg)
        goto out;               /* the writer's open segment is never rewritten */
    g_hash_table_remove(st->fds, GUINT_TO_POINTER(loc->segment));
    for (int i = 0; i < 2 && ret < 0; i++) {
        int fd = open(try[i], O_RDONLY | O_CLOEXEC);

        if (fd < 0)
            continue;
        ret = read_at(st, fd, 0, loc, sha, data_r, NULL);
        close(fd);
    }
out:
    g_free(alt);
    g_free(path);
    return ret;
}

int store_read(struct store *st, const struct store_loc *loc,
               const unsigned char sha[CUS_SHA256_LEN], GBytes **data_r,
               char **error_r)
{
    char *err = NULL;
    int fd;

    *data_r = NULL;
    if (loc->length < REC_MIN_LEN)
        return obj_error(error_r, sha, loc->segment, loc->offset,
                         "bad location (length %" PRIu32 ")", loc->length);
    fd = seg_fd(st, loc->segment, error_r);
    if (fd < 0)
        return -1;
    if (read_at(st, fd, fd == st->cur_fd ? st->cur_end : 0, loc, sha, data_r, &err) == 0)
        return 0;
    if (read_rewritten(st, loc, sha, data_r) == 0) {
        g_free(err);
        return 0;
    }
    if (error_r != NULL)
        *error_r = err;
    else
        g_free(err);
    return -1;
}

uint64_t store_disk_bytes(struct store *st)
{
    DIR *d = opendir(st->dir);
    struct dirent *de;
    struct stat sb;
    uint64_t sum = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        if (parse_name(de->d_name, "seg-", ".cseg") == 0 &&
            parse_name(de->d_name, "dict-", ".zdict") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, 0) == 0)
            sum += (uint64_t)sb.st_size;
    }
    closedir(d);
    return sum;
}

/* ---- walking ----------------------------------------------------------- */

/*
 * The segments are read sequentially by the calling thread, records are
 * copied into batches, and a pool of workers decrypts, decompresses and
 * hash-checks them, each with its own zstd and cipher contexts; the
 * callback sees every record in store order, from the calling thread.
 * Dictionaries are resolved by the reading thread before a record that
 * needs one is handed out (a dictionary record is decoded right away).
 */
#define BATCH_BYTES (256 << 10)
#define BATCH_RECS 512

struct witem {
    enum scan_ev ev;
    uint32_t segno;
    uint64_t off;
    size_t pos;             /* record bytes at batch->buf + pos */
    struct rec_hdr h;
    const struct store_dict *dict;
    char *problem;          /* EV_BAD / EV_TAIL */
    uint64_t skip;
    GBytes *data;           /* result */
    char *error;            /* result */
    void *aux;              /* result of opts->work */
};

struct wbatch {
    GByteArray *buf;
    GArray *items;          /* struct witem */
    int done;               /* under walk lock */
};

struct pwalk {
    struct store *st;
    const struct store_walk_opts *o;
    store_walk_ex_cb *cb;
    void *ctx;
    GThreadPool *pool;
    GQueue batches;         /* in order */
    struct wbatch *cur;
    GMutex lock;
    GCond cond;
    GPtrArray *idle;        /* struct dec * not in use (under lock) */
    GPtrArray *spare;       /* struct wbatch * for reuse (reading thread) */
    GPtrArray *decs;        /* all of them, to free */
    int quiet_tail;
    int stop;               /* callback's non-zero return */
    int threads;
};

static void witem_clear(struct pwalk *w, struct witem *it)
{
    if (it->aux != NULL && w->o->aux_free != NULL)
        w->o->aux_free(it->aux);
    g_free(it->problem);
    g_free(it->error);
    if (it->data != NULL)
        g_bytes_unref(it->data);
}

/* Done with a batch: kept for reuse (its pages stay mapped: a fresh
 * megabyte per batch cost more in page faults than the copying itself). */
static void wbatch_free(struct pwalk *w, struct wbatch *b)
{
    for (guint i = 0; i < b->items->len; i++)
        witem_clear(w, &g_array_index(b->items, struct witem, i));
    if (w->spare->len < 16) {
        g_array_set_size(b->items, 0);
        g_byte_array_set_size(b->buf, 0);
        b->done = 0;
        g_ptr_array_add(w->spare, b);
        return;
    }
    g_array_unref(b->items);
    g_byte_array_unref(b->buf);
    g_free(b);
}

static void wbatch_destroy(gpointer p)
{
    struct wbatch *b = p;

    g_array_unref(b->items);
    g_byte_array_unref(b->buf);
    g_free(b);
}

/* A decoder for one batch: an idle one, else a new one (at most one per
 * thread is ever in use, so there are never more than threads + 1). */
static struct dec *dec_get(struct pwalk *w)
{
    struct dec *dc = NULL;

    g_mutex_lock(&w->lock);
    if (w->idle->len > 0)
        dc = g_ptr_array_steal_index_fast(w->idle, w->idle->len - 1);
    g_mutex_unlock(&w->lock);
    if (dc == NULL) {
        dc = g_new0(struct dec, 1);
        dc->dctx = ZSTD_createDCtx();
        dc->evp = EVP_CIPHER_CTX_new();
        dc->scratch_cap = 256 * 1024;
        dc->scratch = g_malloc(dc->scratch_cap);
        g_mutex_lock(&w->lock);
        g_ptr_array_add(w->decs, dc);
        g_mutex_unlock(&w->lock);
    }
    return dc;
}

static void dec_put(struct pwalk *w, struct dec *dc)
{
    g_mutex_lock(&w->lock);
    g_ptr_array_add(w->idle, dc);
    g_mutex_unlock(&w->lock);
}

static void witem_rec(const struct witem *it, struct store_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->loc.segment = it->segno;
    rec->loc.offset = it->off;
    if (it->ev != EV_RECORD) {
        rec->loc.length = it->skip > UINT32_MAX ? UINT32_MAX : (uint32_t)it->skip;
        rec->tail = it->ev == EV_TAIL;
    } else {
        rec->kind = (enum store_kind)it->h.kind;
        memcpy(rec->sha, it->h.sha, CUS_SHA256_LEN);
        rec->loc.length = (uint32_t)(it->h.len + it->h.stored_len);
        rec->raw_len = it->h.raw_len;
        rec->comp = (enum store_comp)it->h.comp;
        rec->dict_id = it->h.dict_id;
        rec->encrypted = it->h.enc != ENC_NONE;
        memcpy(rec->key_id, it->h.keyid, sizeof(rec->key_id));
    }
    rec->error = it->error;
    rec->aux = it->aux;
}

static void witem_decode(struct pwalk *w, struct dec *dc, struct wbatch *b, struct witem *it)
{
    unsigned char *raw = b->buf->data + it->pos;
    int want_data = w->o->data_kinds == 0 || (w->o->data_kinds & (1u << it->h.kind));
    struct store_rec rec;

    if (it->ev != EV_RECORD) {
        obj_error(&it->error, NULL, it->segno, it->off, "%s; %" PRIu64 " bytes skipped",
                  it->problem, it->skip);
        return;
    }
    if (it->h.comp == STORE_COMP_ZSTD_DICT && it->dict == NULL) {
        obj_error(&it->error, it->h.sha, it->segno, it->off, "dictionary %" PRIu32
                  " is missing", it->h.dict_id);
        return;
    }
    if (rec_decode_with(w->st, dc, it->dict, it->segno, it->off, raw, &it->h,
                        raw + it->h.len, want_data ? &it->data : NULL, &it->error) != DEC_OK ||
        w->o->work == NULL)
        return;
    witem_rec(it, &rec);
    it->aux = w->o->work(w->ctx, &rec, it->data);
}

static void pwalk_work(gpointer data, gpointer user)
{
    struct wbatch *b = data;
    struct pwalk *w = user;
    struct dec *dc = dec_get(w);

    for (guint i = 0; i < b->items->len; i++)
        witem_decode(w, dc, b, &g_array_index(b->items, struct witem, i));
    dec_put(w, dc);
    g_mutex_lock(&w->lock);
    b->done = 1;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
}

/* Hand the oldest batch's records to the callback once it is decoded. */
static void pwalk_deliver_head(struct pwalk *w)
{
    struct wbatch *b = g_queue_pop_head(&w->batches);

    g_mutex_lock(&w->lock);
    while (!b->done)
        g_cond_wait(&w->cond, &w->lock);
    g_mutex_unlock(&w->lock);
    for (guint i = 0; i < b->items->len && w->stop == 0; i++) {
        struct witem *it = &g_array_index(b->items, struct witem, i);
        struct store_rec rec;

        witem_rec(it, &rec);
        it->aux = NULL;     /* the callback's now */
        w->stop = w->cb(w->ctx, &rec, it->error == NULL ? it->data : NULL);
    }
    wbatch_free(w, b);
}

static void pwalk_submit(struct pwalk *w)
{
    struct wbatch *b = w->cur;

    w->cur = NULL;
    if (b == NULL || b->items->len == 0) {
        if (b != NULL)
            wbatch_free(w, b);
        return;
    }
    g_queue_push_tail(&w->batches, b);
    if (w->pool == NULL) {
        pwalk_work(b, w);
    } else {
        g_thread_pool_push(w->pool, b, NULL);
    }
    /* Deliver what is ready; bound what is in flight. */
    while (!g_queue_is_empty(&w->batches) && w->stop == 0) {
        struct wbatch *head = g_queue_peek_head(&w->batches);
        int ready;

        g_mutex_lock(&w->lock);
        ready = head->done;
        g_mutex_unlock(&w->lock);
        if (!ready && g_queue_get_length(&w->batches) < (guint)(4 * w->threads))
            break;
        pwalk_deliver_head(w);
    }
}

/* A record is about to be handed out: a dictionary record is decoded at
 * once (the records after it need it), a record that uses one gets it. */
static void pwalk_prepare(struct store *st, const unsigned char *raw, const struct rec_hdr *h,
                          uint32_t segno, uint64_t off, struct witem *it)
{
    it->h = *h;
    if (h->kind == STORE_DICT &&
        !g_hash_table_contains(st->dicts, GUINT_TO_POINTER(h->dict_id))) {
        size_t n = h->len + (size_t)h->stored_len;
        unsigned char *copy = g_memdup2(raw, n);
        GBytes *data = NULL;

        if (rec_decode(st, segno, off, copy, h, copy + h->len, &data, NULL) == DEC_OK) {
            if (dict_install(st, h->dict_id, data, NULL) == NULL)
                log_warn("store: dictionary %" PRIu32 " in seg-%06" PRIu32
                         ".cseg at offset %" PRIu64 " cannot be loaded",
                         h->dict_id, segno, off);
            g_bytes_unref(data);
        }
        g_free(copy);
    }
    if (h->comp == STORE_COMP_ZSTD_DICT)
        it->dict = dict_get(st, h->dict_id, NULL);
}

static struct wbatch *pwalk_batch(struct pwalk *w)
{
    struct wbatch *b;

    if (w->spare->len > 0)
        return g_ptr_array_steal_index_fast(w->spare, w->spare->len - 1);
    b = g_new0(struct wbatch, 1);
    b->buf = g_byte_array_sized_new(BATCH_BYTES + 4096);
    b->items = g_array_sized_new(FALSE, TRUE, sizeof(struct witem), BATCH_RECS);
    return b;
}

static int pwalk_scan_cb(struct store *st, void *ctx, enum scan_ev ev, uint32_t segno,
                         uint64_t off, const unsigned char *raw, const struct rec_hdr *h,
                         unsigned char *payload, const char *problem, uint64_t skip)
{
    struct pwalk *w = ctx;
    struct witem it;

    if (ev == EV_TAIL && w->quiet_tail)
        return 0;
    memset(&it, 0, sizeof(it));
    it.ev = ev;
    it.segno = segno;
    it.off = off;
    if (ev == EV_RECORD) {
        pwalk_prepare(st, raw, h, segno, off, &it);
    } else {
        it.problem = g_strdup(problem);
        it.skip = skip;
    }
    if (w->cur == NULL)
        w->cur = pwalk_batch(w);
    if (ev == EV_RECORD) {
        it.pos = w->cur->buf->len;
        g_byte_array_append(w->cur->buf, raw, (guint)(h->len + h->stored_len));
    }
    g_array_append_val(w->cur->items, it);
    if (w->cur->buf->len >= BATCH_BYTES || w->cur->items->len >= BATCH_RECS ||
        ev != EV_RECORD || h->kind == STORE_DICT)
        pwalk_submit(w);
    return w->stop;
}

/*
 * The common case without a copy: each batch's buffer is filled by read()
 * straight from the segment, and its whole records are handed out where
 * they lie; a record cut by the end of the buffer is carried over to the
 * next one. Anything unusual -- a bad segment or record header, an
 * incomplete record at the end -- returns 1 with *resume_r, the offset from
 * which pwalk_scan_cb()'s path (which reports and resynchronises) goes on.
 * 0 when the segment is done, -1 with error_r on I/O errors.
 */
static int pwalk_segment(struct pwalk *w, uint32_t segno, uint64_t start, uint64_t *resume_r,
                         char **error_r)
{
    struct store *st = w->st;
    char *path = seg_read_path(st, segno);
    unsigned char fh[SEG_HDR_LEN];
    uint64_t limit = UINT64_MAX, base;
    struct stat sb;
    GByteArray *carry = g_byte_array_new();
    size_t got;
    int fd, ret = 0, eof = 0;

    *resume_r = start;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        ret = cus_error_errno(error_r, "open(%s) failed", path);
        goto out;
    }
    if (st->writer && st->cur_fd >= 0 && segno == st->last_seg)
        limit = st->cur_end;
    if (limit > (uint64_t)sb.st_size)
        limit = (uint64_t)sb.st_size;
    if (start <= SEG_HDR_LEN) {
        if (pread_all(fd, fh, SEG_HDR_LEN, 0, &got) < 0 || got < SEG_HDR_LEN ||
            seg_hdr_check(fh, segno) != NULL) {
            *resume_r = 0;              /* the careful path says what is wrong */
            ret = 1;
            goto out;
        }
        start = SEG_HDR_LEN;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    base = start;                       /* file offset of the next batch's byte 0 */
    while (!eof && w->stop == 0) {
        struct wbatch *b = pwalk_batch(w);
        size_t len, pos = 0, want;

        g_byte_array_set_size(b->buf, MAX(BATCH_BYTES, carry->len + 4096));
        if (carry->len > 0)
            memcpy(b->buf->data, carry->data, carry->len);
        len = carry->len;
        want = b->buf->len;
        if (base + want > limit)
            want = (size_t)(limit - base);
        if (len < want) {
            if (pread_all(fd, b->buf->data + len, want - len, base + len, &got) < 0) {
                ret = cus_error_errno(error_r, "read(%s) failed", path);
                wbatch_free(w, b);
                goto out;
            }
            len += got;
            if (got == 0)
                eof = 1;                /* shorter than it was a moment ago */
        }
        if (base + len >= limit)
            eof = 1;
        g_byte_array_set_size(b->buf, (guint)len);
        while (len - pos >= REC_MIN_LEN) {
            const unsigned char *raw = b->buf->data + pos;
            size_t hlen = rec_hdr_size(raw), total;
            struct rec_hdr h;
            struct witem it;

            if (len - pos < hlen)
                break;
            if (rec_hdr_decode(raw, &h) != NULL) {
                eof = 1;                /* resynchronising is the careful path's */
                ret = 1;
                break;
            }
            total = h.len + (size_t)h.stored_len;
            if (len - pos < total) {
                if (total > b->buf->len && pos == 0) {
                    /* A record bigger than a batch: read it whole. */
                    size_t have = len;

                    g_byte_array_set_size(b->buf, (guint)total);
                    want = MIN(total, (size_t)(limit - base));
                    if (pread_all(fd, b->buf->data + have, want - have, base + have,
                                  &got) < 0) {
                        ret = cus_error_errno(error_r, "read(%s) failed", path);
                        wbatch_free(w, b);
                        goto out;
                    }
                    len = have + got;
                    g_byte_array_set_size(b->buf, (guint)len);
                    if (base + len >= limit || got == 0) {
                        eof = 1;
                        if (len < total)
                            break;
                    }
                    continue;
                }
                break;
            }
            memset(&it, 0, sizeof(it));
            it.ev = EV_RECORD;
            it.segno = segno;
            it.off = base + pos;
            it.pos = pos;
            pwalk_prepare(st, raw, &h, segno, it.off, &it);
            g_array_append_val(b->items, it);
            pos += total;
        }
        /* What is left is the start of the next record. */
        g_byte_array_set_size(carry, 0);
        g_byte_array_append(carry, b->buf->data + pos, (guint)(len - pos));
        *resume_r = base + pos;
        base += pos;
        w->cur = b;
        pwalk_submit(w);
        if (eof && carry->len > 0)
            ret = 1;                    /* an incomplete record: say so there */
    }
out:
    if (fd >= 0)
        close(fd);
    g_byte_array_unref(carry);
    g_free(path);
    return ret;
}

static void dec_free(gpointer p)
{
    struct dec *dc = p;

    ZSTD_freeDCtx(dc->dctx);
    EVP_CIPHER_CTX_free(dc->evp);
    g_free(dc->scratch);
    g_free(dc);
}

int store_walk_par(struct store *st, const struct store_walk_opts *o,
                   store_walk_ex_cb *cb, void *ctx, char **error_r)
{
    static const struct store_walk_opts dflt;
    struct pwalk w;
    GArray *segs;
    GError *gerr = NULL;
    int ret = 0;

    if (o == NULL)
        o = &dflt;
    memset(&w, 0, sizeof(w));
    w.st = st;
    w.o = o;
    w.cb = cb;
    w.ctx = ctx;
    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);
    g_queue_init(&w.batches);
    w.decs = g_ptr_array_new_with_free_func(dec_free);
    w.idle = g_ptr_array_new();
    w.spare = g_ptr_array_new_with_free_func(wbatch_destroy);
    w.threads = o->threads > 0 ? o->threads : (int)MIN(MAX(g_get_num_processors(), 1), 8);
    if (w.threads > 1) {
        w.pool = g_thread_pool_new(pwalk_work, &w, w.threads, FALSE, &gerr);
        if (w.pool == NULL) {
            log_warn("store: no worker threads (%s); walking in one", gerr->message);
            g_error_free(gerr);
            w.threads = 1;
        }
    }
    segs = seg_list(st, error_r);
    if (segs == NULL) {
        ret = -1;
        goto out;
    }
    for (guint i = 0; i < segs->len && ret == 0 && w.stop == 0; i++) {
        uint32_t segno = g_array_index(segs, uint32_t, i);
        uint64_t start = 0;
        int unsealed = 0;
        struct stat sb = { 0 };
        char *path;

        if (o->from.segment != 0 && segno < o->from.segment)
            continue;
        if (o->from.segment != 0 && segno == o->from.segment)
            start = o->from.offset;
        path = seg_read_path(st, segno);
        if (stat(path, &sb) == 0)
            unsealed = (sb.st_mode & S_IWUSR) != 0;
        g_free(path);
        if (start >= (uint64_t)sb.st_size && start > SEG_HDR_LEN)
            continue;
        w.quiet_tail = unsealed && i == segs->len - 1 && !(o->flags & STORE_WALK_REPORT_TAIL);
        {
            uint64_t resume = start;

            ret = pwalk_segment(&w, segno, start, &resume, error_r);
            if (ret == 1 && w.stop == 0) {
                pwalk_submit(&w);
                st->walk_lenient = 1;
                ret = seg_open_scan(st, segno, resume, pwalk_scan_cb, &w, NULL, error_r);
                st->walk_lenient = 0;
            } else if (ret == 1) {
                ret = 0;
            }
        }
        if (ret == 0)
            pwalk_submit(&w);   /* a batch never spans segments */
    }
    g_array_unref(segs);
out:
    if (w.cur != NULL) {
        wbatch_free(&w, w.cur);
        w.cur = NULL;
    }
    while (!g_queue_is_empty(&w.batches)) {
        if (w.stop == 0 && ret == 0)
            pwalk_deliver_head(&w);
        else {
            struct wbatch *b = g_queue_pop_head(&w.batches);
            g_mutex_lock(&w.lock);
            while (!b->done)
                g_cond_wait(&w.cond, &w.lock);
            g_mutex_unlock(&w.lock);
            wbatch_free(&w, b);
        }
    }
    if (w.pool != NULL)
        g_thread_pool_free(w.pool, FALSE, TRUE);
    g_ptr_array_unref(w.idle);
    g_ptr_array_unref(w.spare);
    g_ptr_array_unref(w.decs);
    g_mutex_clear(&w.lock);
    g_cond_clear(&w.cond);
    if (ret == 0 && w.stop != 0)
        ret = w.stop;
    return ret;
}

int store_walk_ex(struct store *st, store_walk_ex_cb *cb, void *ctx, char **error_r)
{
    struct store_walk_opts o = { .threads = 1 };

    return store_walk_par(st, &o, cb, ctx, error_r);
}

struct walk_plain {
    store_walk_cb *cb;
    void *ctx;
    char *error;
};

static int walk_plain_cb(void *ctx, const struct store_rec *rec, GBytes *data)
{
    struct walk_plain *w = ctx;

    if (rec->error != NULL) {
        w->error = g_strdup(rec->error);
        return -1;
    }
    return w->cb(w->ctx, rec->kind, rec->sha, &rec->loc, data);
}

int store_walk(struct store *st, store_walk_cb *cb, void *ctx, char **error_r)
{
    struct walk_plain w = { .cb = cb, .ctx = ctx };
    int ret = store_walk_ex(st, walk_plain_cb, &w, error_r);

    if (w.error != NULL) {
        cus_error(error_r, "%s", w.error);
        g_free(w.error);
        return -1;
    }
    return ret;
}

/* ---- dictionary training ----------------------------------------------- */

int store_train_dict(struct store *st, GBytes *const *samples, size_t n,
                     char **error_r)
{
    size_t total = 0, used = 0, cap, *sizes;
    unsigned char *flat, *dict, sha[CUS_SHA256_LEN];
    struct store_loc loc;
    GBytes *dbytes;
    uint32_t id;
    char *path;
    size_t r;
    int ret = -1;

    if (!st->opts.use_dict)
        return 0;
    if (!st->writer)
        return cus_error(error_r, "store %s was opened read-only", st->dir);
    for (size_t i = 0; i < n && total < DICT_TRAIN_MAX; i++) {
        size_t len = g_bytes_get_size(samples[i]);
        if (len < DICT_SAMPLE_MIN)
            continue;
        total += len < DICT_SAMPLE_MAX ? len : DICT_SAMPLE_MAX;
        used++;
    }
    if (used < DICT_MIN_SAMPLES || total < DICT_MIN_BYTES) {
        log_debug("store: %zu samples of %zu bytes: too little to train a "
                  "dictionary", used, total);
        return 0;
    }
    flat = g_malloc(total);
    sizes = g_new(size_t, used);
    total = 0;
    for (size_t i = 0, j = 0; j < used; i++) {
        gsize len;
        const void *p = g_bytes_get_data(samples[i], &len);

        if (len < DICT_SAMPLE_MIN)
            continue;
        sizes[j] = len < DICT_SAMPLE_MAX ? len : DICT_SAMPLE_MAX;
        memcpy(flat + total, p, sizes[j]);
        total += sizes[j++];
    }
    cap = total / 64;
    cap = cap < DICT_SIZE_MIN ? DICT_SIZE_MIN : cap > DICT_SIZE_MAX ? DICT_SIZE_MAX : cap;
    dict = g_malloc(cap);
    r = ZDICT_trainFromBuffer(dict, cap, flat, sizes, (unsigned)used);
    g_free(flat);
    g_free(sizes);
    if (ZDICT_isError(r)) {
        log_warn("store: no dictionary trained from %zu samples (%s); going on "
                 "without one", used, ZDICT_getErrorName(r));
        g_free(dict);
        return 0;
    }
    /* Record first (and sync it), then the file: a crash in between leaves
     * the record, and the next writer writes the file from it. */
    id = st->max_dict + 1;
    cus_sha256(dict, r, sha);
    if (append_record(st, STORE_DICT, sha, dict, r, id, &loc, error_r) < 0 ||
        store_sync(st, error_r) < 0)
        goto out;
    path = dict_path(st, id);
    if (cus_write_file_atomic(path, st->buf, loc.length, 0440, error_r) < 0) {
        g_free(path);
        goto out;
    }
    g_free(path);
    dbytes = g_bytes_new_take(dict, r);
    dict = NULL;
    if (dict_install(st, id, dbytes, error_r) == NULL) {
        g_bytes_unref(dbytes);
        goto out;
    }
    g_bytes_unref(dbytes);
    if (dict_use(st, id, error_r) < 0)
        goto out;
    log_info("store: trained dictionary %" PRIu32 " (%zu bytes) from %zu samples "
             "(%zu bytes)", id, r, used, total);
    ret = 0;
out:
    g_free(dict);
    return ret;
}
