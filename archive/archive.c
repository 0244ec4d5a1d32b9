/*
 * archive.c - store + index behind one handle, with batched, durable adds
 *
 * Order of writes for a batch: store records appended (not yet durable),
 * index rows inserted in one open transaction; at flush, the store is
 * fsync'd first and the index committed second. A crash before the commit
 * leaves at most unreferenced records at the end of a segment (truncated or
 * ignored on reopen); never an index row without its bytes.
 *
 * A zstd dictionary is trained once from the first messages archived
 * (ARC_DICT_SAMPLES of them) and used for every message after.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>
#include "custos/archive.h"
#include "custos/audit.h"
#include "custos/chain.h"
#include "custos/incident.h"
#include "custos/log.h"
#include "custos/perm.h"
#include "custos/replay.h"
#include "custos/retention.h"
#include "custos/spool.h"
#include "custos/util.h"

#define ARC_DICT_SAMPLES 1000
#define ARC_DICT_SAMPLE_MAX (64 * 1024)

struct arc {
    struct cfg const *cfg;
    char *dir;
    struct store *store;
    struct idx *idx;
    struct msg_limits lim;
    int writable;
    int in_txn;
    int pending;                /* adds in the open transaction */
    GPtrArray *samples;         /* GBytes *: dictionary training set */
    /* The hash chain: head of what is written (pending included) and of
     * what is committed. */
    gint64 seq, seq_committed;
    unsigned char head[CUS_SHA256_LEN], head_committed[CUS_SHA256_LEN];
    struct chain_key *sign_key; /* [chain] sign_key, or NULL */
    gint64 seq_opened;          /* chain head when opened */
    struct store_loc committed; /* store end at the last commit */
    int failed;                 /* a batch was dropped: no checkpoint at close */
    int no_close_checkpoint;    /* ARC_NO_CLOSE_CHECKPOINT */
};

static char *index_path(const char *dir)
{
    return g_build_filename(dir, "index.db", NULL);
}

static const volatile sig_atomic_t *arc_cancel_flag;

void arc_set_cancel(const volatile sig_atomic_t *flag)
{
    arc_cancel_flag = flag;
}

/* How long a writer waits for the lock: CUSTOS_LOCK_WAIT seconds (< 0:
 * without limit), ARC_LOCK_WAIT by default. */
static int lock_wait_seconds(void)
{
    const char *s = getenv("CUSTOS_LOCK_WAIT");
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return ARC_LOCK_WAIT;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v > 86400 * 7) {
        log_warn("CUSTOS_LOCK_WAIT=\"%s\" is not a number of seconds; waiting %d s", s,
                 ARC_LOCK_WAIT);
        return ARC_LOCK_WAIT;
    }
    return v < 0 ? -1 : (int)v;
}

static void store_opts_from(const struct cfg *cfg, struct store_opts *o)
{
    gid_t gid;

    memset(o, 0, sizeof(*o));
    o->lock_wait = lock_wait_seconds();
    o->cancel = arc_cancel_flag;
    if (perm_group(cfg, &gid, NULL) > 0) {
        o->has_reader_gid = 1;
        o->reader_gid = gid;
    }
    o->segment_size = cfg->arc_segment_size;
    o->zstd_level = cfg->arc_zstd_level;
    o->use_dict = cfg->arc_dict;
    o->key_file = cfg->arc_key_file;
    o->key_id = cfg->arc_key_id;
}

/* The modes and group perm.h describes, on everything the archive has:
 * init makes them so and repairs them when run again. */
static int arc_apply_perms(const struct cfg *cfg, char **error_r)
{
    char *store = g_build_filename(cfg->arc_dir, "store", NULL);
    GDir *d = NULL;
    const char *n;
    int ret = -1;

    if (perm_apply(cfg, cfg->arc_dir, PERM_DIR, error_r) < 0 ||
        perm_apply(cfg, store, PERM_DIR, error_r) < 0)
        goto out;
    for (const char *const *sfx = (const char *const[]){ "", "-wal", "-shm", NULL };
         *sfx != NULL; sfx++) {
        char *p = g_strconcat(cfg->arc_dir, "/index.db", *sfx, NULL);
        int r = access(p, F_OK) == 0 ? perm_apply(cfg, p, PERM_SHARED, error_r) : 0;
        g_free(p);
        if (r < 0)
            goto out;
    }
    d = g_dir_open(store, 0, NULL);
    while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
        char *p;
        int r;

        if (strcmp(n, "lock") == 0)
            continue;
        p = g_build_filename(store, n, NULL);
        r = perm_apply(cfg, p, 0, error_r);
        g_free(p);
        if (r < 0)
            goto out;
    }
    ret = 0;
out:
    if (d != NULL)
        g_dir_close(d);
    g_free(store);
    return ret;
}

int arc_init(const struct cfg *cfg, char **error_r)
{
    struct idx *idx = NULL;
    char *path;
    int ret;
    gid_t gid;

    if (perm_group(cfg, &gid, error_r) < 0)
        return -1;
    if (cus_mkdirs(cfg->arc_dir, 0700, error_r) < 0)
        return -1;
    if (perm_apply(cfg, cfg->arc_dir, PERM_DIR, error_r) < 0)
        return -1;
    if (store_init(cfg->arc_dir, error_r) < 0)
        return -1;
    path = index_path(cfg->arc_dir);
    ret = idx_open(path, IDX_CREATE, &idx, error_r);
    idx_close(&idx);
    g_free(path);
    if (ret == 0)
        ret = arc_apply_perms(cfg, error_r);
    return ret;
}

static int arc_set_end(struct arc *arc, const struct store_loc *end, char **error_r)
{
    char buf[48];

    g_snprintf(buf, sizeof(buf), "%u:%" G_GUINT64_FORMAT, end->segment, end->offset);
    return idx_meta_set(arc->idx, "store_end", buf, error_r);
}

static int chain_load_head(struct arc *arc, char **error_r)
{
    int found = idx_chain_head(arc->idx, &arc->seq, arc->head, error_r);

    if (found < 0)
        return -1;
    if (found == 0) {
        arc->seq = 0;
        chain_genesis(arc->head);
    }
    arc->seq_committed = arc->seq;
    memcpy(arc->head_committed, arc->head, CUS_SHA256_LEN);
    return 0;
}

/* "SEGMENT:OFFSET", as kept in meta store_end. */
static int parse_loc(const char *s, struct store_loc *loc)
{
    unsigned long seg;
    unsigned long long off;
    char *end;

    memset(loc, 0, sizeof(*loc));
    seg = strtoul(s, &end, 10);
    if (*end != ':')
        return -1;
    off = strtoull(end + 1, &end, 10);
    if (*end != '\0' || seg > UINT32_MAX)
        return -1;
    loc->segment = (uint32_t)seg;
    loc->offset = off;
    return 0;
}

static int loc_cmp(const struct store_loc *a, const struct store_loc *b)
{
    if (a->segment != b->segment)
        return a->segment < b->segment ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/*
 * After a crash: the store may hold records past what index.db committed
 * (meta store_end). Whole groups there (ending in their chain event) were
 * synced before the index commit that did not happen: index them now (roll
 * forward). Records of a group that was never finished are cut off; their
 * source (a spool entry, an import) is still there to be run again.
 */
static int arc_recover(struct arc *arc, char **error_r)
{
    struct store_loc committed, end, done;
    struct replay *rp = NULL;
    struct replay_stats rs;
    char *val = NULL;
    int found, ret = -1;

    if (store_tell(arc->store, &end, error_r) < 0)
        return -1;
    found = idx_meta_get(arc->idx, "store_end", &val, error_r);
    if (found < 0)
        return -1;
    if (found == 0 || parse_loc(val, &committed) < 0) {
        gint64 n = 0;
        unsigned char h[CUS_SHA256_LEN];

        /* A new archive, or one from before the chain: all of it counts. */
        if (idx_chain_head(arc->idx, &n, h, NULL) <= 0 && end.segment != 0)
            log_warn("archive %s: index.db does not say where the store ended "
                     "(an archive made before the hash chain?); taking it as is",
                     arc->dir);
        g_free(val);
        return 0;
    }
    g_free(val);
    if (loc_cmp(&end, &committed) == 0)
        return 0;
    if (loc_cmp(&end, &committed) < 0) {
        log_error("archive %s: the store ends at seg-%06u.cseg offset %" G_GUINT64_FORMAT
                  ", before what index.db committed (seg-%06u.cseg offset %"
                  G_GUINT64_FORMAT "): data is missing; run custos-archive verify",
                  arc->dir, end.segment, end.offset, committed.segment, committed.offset);
        return 0;
    }
    if (chain_load_head(arc, error_r) < 0)
        return -1;
    if (idx_begin(arc->idx, error_r) < 0)
        return -1;
    rp = replay_new(arc->idx, &arc->lim, arc->seq, arc->head);
    if (replay_run(rp, arc->store, &committed, error_r) < 0)
        goto out;
    replay_stats(rp, &rs, &done);
    if (rs.problems > 0)
        log_error("archive %s: %" G_GINT64_FORMAT " records after the last commit could "
                  "not be indexed (see above); run custos-archive verify", arc->dir,
                  rs.problems);
    if (rs.pending > 0) {
        /* A group never spans segments: it started at the top of this one. */
        if (done.segment != end.segment) {
            done.segment = end.segment;
            done.offset = 0;
        }
        if (store_truncate(arc->store, &done, error_r) < 0)
            goto out;
    }
    if (store_tell(arc->store, &end, error_r) < 0 || arc_set_end(arc, &end, error_r) < 0)
        goto out;
    if (idx_commit(arc->idx, error_r) < 0)
        goto out;
    if (rs.events > 0)
        log_warn("archive %s: indexed %" G_GINT64_FORMAT " messages and %" G_GINT64_FORMAT
                 " deliveries (chain up to %" G_GINT64_FORMAT ") stored before a crash "
                 "but not yet in index.db", arc->dir, rs.messages, rs.deliveries, rs.seq);
    ret = 0;
out:
    if (ret < 0)
        idx_rollback(arc->idx);
    replay_free(&rp);
    return ret;
}

int arc_open(const struct cfg *cfg, int flags, struct arc **arc_r, char **error_r)
{
    struct arc *arc = g_new0(struct arc, 1);
    struct store_opts so;
    char *path = index_path(cfg->arc_dir);
    struct stat st;

    arc->cfg = cfg;
    arc->dir = g_strdup(cfg->arc_dir);
    arc->writable = (flags & ARC_WRITE) != 0;
    if (stat(path, &st) < 0 && errno != EACCES) {
        cus_error(error_r, "no archive at %s (index.db missing): run custos-archive init",
                  cfg->arc_dir);
        goto fail;
    }
    if (perm_check(cfg, cfg->arc_dir, X_OK, error_r) < 0 ||
        perm_check(cfg, path, R_OK | (flags & (ARC_WRITE | ARC_AUDIT) ? W_OK : 0),
                   error_r) < 0)
        goto fail;
    if (arc->writable) {
        char *sdir = g_build_filename(cfg->arc_dir, "store", NULL);
        int r = perm_check(cfg, sdir, W_OK | X_OK, error_r);
        g_free(sdir);
        if (r < 0)
            goto fail;
    }
    store_opts_from(cfg, &so);
    arc->no_close_checkpoint = (flags & ARC_NO_CLOSE_CHECKPOINT) != 0;
    if (flags & ARC_WAIT_ALWAYS) {
        so.lock_wait = -1;
        flags |= ARC_WAIT;
    }
    if (store_open(cfg->arc_dir, &so, (arc->writable ? STORE_WRITE : 0) |
                   (flags & ARC_WAIT ? STORE_WAIT : 0), &arc->store, error_r) < 0)
        goto fail;
    if (idx_open(path, arc->writable || (flags & ARC_AUDIT) ? 0 : IDX_RDONLY, &arc->idx,
                 error_r) < 0)
        goto fail;
    arc_limits_from_cfg(cfg, &arc->lim);
    if (arc->writable && cfg->arc_dict && !store_has_dict(arc->store))
        arc->samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    if (arc->writable && cfg->chain_sign_key != NULL &&
        chain_key_load_private(cfg->chain_sign_key, &arc->sign_key, error_r) < 0)
        goto fail;
    /* A segment rewrite (retention.h) interrupted after its commit is put
     * in place before the roll forward reads the store; purged records
     * still in the store go after it. */
    if (arc->writable && retention_open_store(arc->idx, arc->store, error_r) < 0)
        goto fail;
    if (arc->writable && arc_recover(arc, error_r) < 0)
        goto fail;
    if (arc->writable && retention_open_finish(arc->idx, arc->store, error_r) < 0)
        goto fail;
    if (chain_load_head(arc, error_r) < 0)
        goto fail;
    arc->seq_opened = arc->seq;
    if (arc->writable && store_tell(arc->store, &arc->committed, error_r) < 0)
        goto fail;
    g_free(path);
    *arc_r = arc;
    return 0;
fail:
    g_free(path);
    arc->failed = 1;        /* nothing to flush, no checkpoint */
    arc_close(&arc);
    return -1;
}

void arc_close(struct arc **arcp)
{
    struct arc *arc = *arcp;
    char *err = NULL;

    if (arc == NULL)
        return;
    if ((arc->in_txn || (arc->writable && !arc->failed)) && arc_flush(arc, &err) < 0) {
        log_error("%s", err);
        g_free(err);
        err = NULL;
        arc->failed = 1;
    }
    /* A writer that added to the chain leaves a checkpoint of it. */
    if (arc->writable && !arc->failed && !arc->no_close_checkpoint &&
        arc->seq > arc->seq_opened) {
        struct arc_checkpoint_info ci;

        if (arc_checkpoint(arc, 0, &ci, &err) < 0) {
            log_error("checkpoint not made: %s", err);
            g_free(err);
        } else if (ci.made) {
            char hex[CUS_SHA256_HEX];
            cus_hex(ci.hash, CUS_SHA256_LEN, hex);
            log_info("checkpoint seq %" G_GINT64_FORMAT " hash %s key %s", ci.seq, hex,
                     ci.key);
        }
    }
    idx_close(&arc->idx);
    store_close(&arc->store);
    chain_key_free(&arc->sign_key);
    if (arc->samples != NULL)
        g_ptr_array_free(arc->samples, TRUE);
    g_free(arc->dir);
    g_free(arc);
    *arcp = NULL;
}

int arc_writer_wanted(struct arc *arc)
{
    return arc->writable && store_writer_wanted(arc->store);
}

struct idx *arc_index(struct arc *arc) { return arc->idx; }
struct store *arc_store(struct arc *arc) { return arc->store; }
const struct msg_limits *arc_limits(struct arc *arc) { return &arc->lim; }

void arc_limits_from_cfg(const struct cfg *cfg, struct msg_limits *lim)
{
    msg_limits_default(lim);
    lim->message_size = cfg->lim_message_size;
    lim->depth = cfg->lim_depth;
    lim->parts = cfg->lim_parts;
    lim->expanded_size = cfg->lim_expanded_size;
    lim->expansion_ratio = cfg->lim_expansion_ratio;
    lim->text_size = cfg->lim_text_size;
}

/* Keep a sample for the dictionary; train once there are enough. */
static void dict_sample(struct arc *arc, const void *raw, size_t len)
{
    if (arc->samples == NULL)
        return;
    if (arc->samples->len < ARC_DICT_SAMPLES)
        g_ptr_array_add(arc->samples, g_bytes_new(raw, MIN(len, ARC_DICT_SAMPLE_MAX)));
}

/* Train the dictionary between batches (its record stands alone, never in
 * the middle of a message's group of records). */
static void dict_train(struct arc *arc)
{
    char *err = NULL;

    if (arc->samples == NULL || arc->samples->len < ARC_DICT_SAMPLES)
        return;
    if (store_train_dict(arc->store, (GBytes *const *)arc->samples->pdata,
                         arc->samples->len, &err) < 0) {
        log_warn("zstd dictionary not trained, messages stored without: %s", err);
        g_free(err);
    }
    g_ptr_array_free(arc->samples, TRUE);
    arc->samples = NULL;
}


static int arc_txn(struct arc *arc, char **error_r)
{
    if (!arc->writable)
        return cus_error(error_r, "archive %s opened read-only", arc->dir);
    if (arc->in_txn)
        return 0;
    if (idx_begin(arc->idx, error_r) < 0)
        return -1;
    arc->in_txn = 1;
    return 0;
}

/* Append chain event seq+1 (store record, chain row); the group's last
 * record. The chain head moves only once the caller's savepoint holds. */
static int chain_append(struct arc *arc, const char *type, gint64 msg, const char *const *kv,
                        gint64 *seq_r, unsigned char head_r[CUS_SHA256_LEN],
                        struct store_loc *loc_r, char **error_r)
{
    gint64 seq = arc->seq + 1, now = (gint64)time(NULL);
    GString *ev = chain_event_format(seq, now, type, kv);
    unsigned char esha[CUS_SHA256_LEN];
    struct store_loc loc;
    int ret = -1;

    cus_sha256(ev->str, ev->len, esha);
    if (store_append(arc->store, STORE_EVENT, esha, ev->str, ev->len, &loc, error_r) < 0)
        goto out;
    chain_step(arc->head, ev->str, ev->len, head_r);
    if (idx_add_chain(arc->idx, seq, now, type, msg, head_r, &loc, error_r) < 0)
        goto out;
    *seq_r = seq;
    if (loc_r != NULL)
        *loc_r = loc;
    ret = 0;
out:
    g_string_free(ev, TRUE);
    return ret;
}

/* One "incident" event and row per finding of env (incident.h) for
 * message id (hex its SHA-256), but those the entry already has (it was
 * archived before a crash kept it in the spool). An error fails the batch
 * (the caller aborts it). */
static int add_incidents(struct arc *arc, const struct idx_envelope *env, gint64 id,
                         const char *hex, char **error_r)
{
    for (size_t i = 0; i < env->n_findings; i++) {
        const struct spool_finding *f = env->findings[i];
        struct incident inc = {
            .msg = id, .time = env->time, .n = (int)i + 1,
            .spool_id = (char *)env->spool_id, .category = f->category, .rule = f->rule,
            .action = f->action, .evidence = f->evidence, .sender = (char *)env->sender,
            .auth = (char *)env->auth, .rcpts = (char **)env->rcpts,
        };
        GPtrArray *kv;
        int ret;

        if (env->spool_id != NULL) {
            int have = incident_exists(arc->idx, env->spool_id, inc.n, error_r);
            if (have < 0)
                return -1;
            if (have)
                continue;
        }
        memcpy(inc.sha256, hex, sizeof(inc.sha256));
        kv = incident_fields(&inc);
        ret = arc_event(arc, "incident", id, (const char *const *)kv->pdata, &inc.seq,
                        error_r);
        g_ptr_array_free(kv, TRUE);
        if (ret < 0 || incident_insert(arc->idx, &inc, error_r) < 0)
            return -1;
    }
    return 0;
}

/* The fields of an "add" or "deliver" event: the message and one delivery
 * of it (chain.h). Strings point into env and the buffers given. */
static GPtrArray *delivery_fields(const struct idx_envelope *env, const char *id,
                                  const char *hex, const char *received)
{
    GPtrArray *kv = g_ptr_array_new();

#define KV(k, v) do { g_ptr_array_add(kv, (gpointer)(k)); \
                      g_ptr_array_add(kv, (gpointer)((v) != NULL ? (v) : "")); } while (0)
    KV("id", id);
    KV("message", hex);
    KV("received", received);
    KV("sender", env->sender);
    KV("client", env->client);
    KV("queue-id", env->queue_id);
    KV("source", env->source);
    if (env->spool_id != NULL)
        KV("spool-id", env->spool_id);
    for (int i = 0; env->rcpts != NULL && env->rcpts[i] != NULL; i++)
        KV("rcpt", env->rcpts[i]);
#undef KV
    g_ptr_array_add(kv, NULL);
    return kv;
}

/* Archive one delivery whose SHA-256 is known; m is the parsed message or
 * NULL (parsed here if the bytes are new). m is freed. The records of one
 * add -- message (if new), chain event with the envelope -- are one group: all of
 * them or (after an error, cut back off) none. */
static int arc_add_parsed(struct arc *arc, const void *raw, size_t len,
                          const unsigned char sha[CUS_SHA256_LEN], struct msg *m,
                          const struct idx_envelope *env, gint64 *id_r, int *dup_r,
                          char **error_r)
{
    unsigned char head[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX], idbuf[24], received[24];
    struct store_loc loc, eloc, start;
    GPtrArray *kv = NULL;
    gint64 id = 0, seq = 0;
    int found = -1, held = 0, ret = -1;
    char *perr = NULL;

    if (arc_txn(arc, error_r) < 0) {
        msg_free(&m);
        return -1;
    }
    if (env->spool_id != NULL) {
        /* An entry archived before a crash kept it from being removed. */
        found = idx_find_spool(arc->idx, env->spool_id, &id, error_r);
        if (found != 0) {
            msg_free(&m);
            if (found < 0)
                return -1;
            if (id_r != NULL)
                *id_r = id;
            if (dup_r != NULL)
                *dup_r = 1;
            if (env->n_findings == 0)
                return 0;
            found = idx_find_id(arc->idx, id, head, NULL, error_r);
            if (found <= 0) {
                if (found == 0)
                    log_warn("spool entry %s: message %" G_GINT64_FORMAT " is gone "
                             "(purged): its incidents are not added again", env->spool_id, id);
                return found;
            }
            cus_hex(head, CUS_SHA256_LEN, hex);
            return add_incidents(arc, env, id, hex, error_r);
        }
    }
    cus_hex(sha, CUS_SHA256_LEN, hex);
    found = idx_find_sha(arc->idx, sha, &id, NULL, error_r);
    if (found < 0)
        goto out;
    if (found && env->rcpts == NULL) {
        /* Same bytes again with no envelope to add: nothing new to keep. */
        ret = 0;
        goto out;
    }
    if (idx_savepoint(arc->idx, error_r) < 0) {
        found = -1;
        goto out;
    }
    if (store_tell(arc->store, &start, error_r) < 0)
        goto out;
    store_hold_seal(arc->store, 1, NULL);
    held = 1;
    if (!found) {
        if (m == NULL && msg_parse(raw, len, &arc->lim, &m, &perr) < 0) {
            log_warn("message %s: %s; archived unparsed", hex, perr);
            m = msg_new_unparsed(perr);
            g_free(perr);
        }
        if (store_append(arc->store, STORE_MESSAGE, sha, raw, len, &loc, error_r) < 0)
            goto out;
        if (idx_add_message(arc->idx, sha, &loc, len, m, (gint64)time(NULL), 0, &id,
                            error_r) < 0)
            goto out;
    }
    g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, id);
    g_snprintf(received, sizeof(received), "%" G_GINT64_FORMAT, env->time);
    kv = delivery_fields(env, idbuf, hex, received);
    if (chain_append(arc, found ? "deliver" : "add", id, (const char *const *)kv->pdata, &seq,
                     head, &eloc, error_r) < 0)
        goto out;
    if (idx_add_delivery(arc->idx, id, env, &eloc, error_r) < 0)
        goto out;
    ret = 0;
out:
    if (held) {
        char *err = NULL;

        if (ret < 0 && start.segment != 0 && store_truncate(arc->store, &start, &err) < 0) {
            log_error("%s", err);
            g_free(err);
        }
        if (store_hold_seal(arc->store, 0, ret == 0 ? error_r : &err) < 0) {
            if (ret < 0) {
                g_free(err);
            }
            ret = -1;
        }
    }
    if (found >= 0 && held) {
        /* Keep this message's rows only if all of them made it. */
        if (ret == 0)
            ret = idx_release(arc->idx, error_r);
        else
            idx_rollback_savepoint(arc->idx);
    }
    if (ret == 0) {
        if (seq > 0) {
            arc->seq = seq;
            memcpy(arc->head, head, CUS_SHA256_LEN);
        }
        if (!found)
            dict_sample(arc, raw, len);
        if (env->n_findings > 0 && add_incidents(arc, env, id, hex, error_r) < 0) {
            ret = -1;
            goto fail;
        }
        if (id_r != NULL)
            *id_r = id;
        if (dup_r != NULL)
            *dup_r = found;
        if (++arc->pending >= arc->cfg->arc_batch)
            ret = arc_flush(arc, error_r);
    }
fail:
    if (kv != NULL)
        g_ptr_array_unref(kv);
    msg_free(&m);
    return ret;
}

int arc_event(struct arc *arc, const char *type, gint64 msg, const char *const *kv,
              gint64 *seq_r, char **error_r)
{
    unsigned char head[CUS_SHA256_LEN];
    struct store_loc start;
    gint64 seq = 0;
    char *err = NULL;

    if (arc_txn(arc, error_r) < 0 || store_tell(arc->store, &start, error_r) < 0)
        return -1;
    if (idx_savepoint(arc->idx, error_r) < 0)
        return -1;
    if (chain_append(arc, type, msg, kv, &seq, head, NULL, error_r) < 0) {
        idx_rollback_savepoint(arc->idx);
        if (start.segment != 0 && store_truncate(arc->store, &start, &err) < 0) {
            log_error("%s", err);
            g_free(err);
        }
        return -1;
    }
    if (idx_release(arc->idx, error_r) < 0)
        return -1;
    arc->seq = seq;
    memcpy(arc->head, head, CUS_SHA256_LEN);
    if (seq_r != NULL)
        *seq_r = seq;
    return 0;
}

int arc_event_find(struct arc *arc, const char *type, const char *key, const char *value,
                   gint64 *seq_r, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int ret = 0, rc = SQLITE_DONE;

    if (sqlite3_prepare_v2(idx_db(arc->idx), "SELECT seq, segment, offset, length FROM chain "
                           "WHERE type = ?1 ORDER BY seq DESC", -1, &st, NULL) != SQLITE_OK) {
        cus_error(error_r, "index.db: %s", sqlite3_errmsg(idx_db(arc->idx)));
        return -1;
    }
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_loc loc = {
            .segment = (uint32_t)sqlite3_column_int64(st, 1),
            .offset = (uint64_t)sqlite3_column_int64(st, 2),
            .length = (uint32_t)sqlite3_column_int64(st, 3),
        };
        struct chain_event *ev = NULL;
        GBytes *b = NULL;
        const char *v;
        gsize len;
        const void *data;

        if (store_read(arc->store, &loc, NULL, &b, error_r) < 0) {
            ret = -1;
            break;
        }
        data = g_bytes_get_data(b, &len);
        if (chain_event_parse(data, len, &ev, error_r) < 0) {
            ret = -1;
        } else if ((v = chain_event_get(ev, key)) != NULL && strcmp(v, value) == 0) {
            *seq_r = sqlite3_column_int64(st, 0);
            ret = 1;
        }
        chain_event_free(&ev);
        g_bytes_unref(b);
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        cus_error(error_r, "index.db: %s", sqlite3_errmsg(idx_db(arc->idx)));
        ret = -1;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Seal the audit entries that are finished (audit.h) into the chain, in
 * the open batch or in one of their own. */
static int arc_seal_audit(struct arc *arc, char **error_r)
{
    GPtrArray *pend = NULL;
    int ret = 0;

    if (!arc->writable || audit_pending(arc->idx, (gint64)time(NULL), &pend, error_r) < 0)
        return arc->writable ? -1 : 0;
    for (guint i = 0; i < pend->len && ret == 0; i++) {
        const struct audit_entry *e = g_ptr_array_index(pend, i);
        GPtrArray *kv = audit_fields(e);
        gint64 seq;

        ret = arc_event(arc, "audit", 0, (const char *const *)kv->pdata, &seq, error_r);
        if (ret == 0)
            ret = audit_sealed(arc->idx, e->id, seq, error_r);
        g_ptr_array_free(kv, TRUE);
    }
    g_ptr_array_free(pend, TRUE);
    return ret;
}

int arc_add(struct arc *arc, const void *raw, size_t len, const struct idx_envelope *env,
            gint64 *id_r, int *dup_r, char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN];

    cus_sha256(raw, len, sha);
    return arc_add_parsed(arc, raw, len, sha, NULL, env, id_r, dup_r, error_r);
}

/*
 * The parse pipeline: hashing and MIME parsing (most of the CPU) run in a
 * pool of worker threads; the index and the store are written by the
 * submitting thread alone, in submission order, so the result is the same
 * as one arc_add() after another.
 */
#define PIPE_INFLIGHT 256

struct arc_job {
    GBytes *raw;
    char *where;
    unsigned char sha[CUS_SHA256_LEN];
    int have_sha;               /* sha given by arc_pipe_add's caller */
    struct msg *msg;
    char *err;
    int parse_rc;
    int done;                   /* under pipe->lock */
    struct idx_envelope env;    /* strings owned by the job */
    char **rcpts;
    struct spool_finding **findings;
};

struct arc_pipe {
    struct arc *arc;
    GThreadPool *pool;
    GQueue jobs;                /* struct arc_job *, submission order */
    GMutex lock;
    GCond cond;
    arc_pipe_cb *cb;
    void *ctx;
};

static void job_free(struct arc_job *j)
{
    g_bytes_unref(j->raw);
    g_free(j->where);
    msg_free(&j->msg);
    g_free(j->err);
    g_free((char *)j->env.sender);
    g_free((char *)j->env.client);
    g_free((char *)j->env.queue_id);
    g_free((char *)j->env.source);
    g_free((char *)j->env.spool_id);
    g_free((char *)j->env.auth);
    for (size_t i = 0; i < j->env.n_findings; i++)
        spool_finding_free(&j->findings[i]);
    g_free(j->findings);
    g_strfreev(j->rcpts);
    g_free(j);
}

static void pipe_work(gpointer data, gpointer user)
{
    struct arc_job *j = data;
    struct arc_pipe *p = user;
    gsize len;
    const void *raw = g_bytes_get_data(j->raw, &len);

    if (!j->have_sha)
        cus_sha256(raw, len, j->sha);
    j->parse_rc = msg_parse(raw, len, &p->arc->lim, &j->msg, &j->err);
    /* the body's hash here too, in parallel, not in the writer's turn */
    if (j->parse_rc == 0)
        j->msg->body_hashed = idx_body_hash(j->msg, j->msg->body_sha256) ? 1 : -1;
    g_mutex_lock(&p->lock);
    j->done = 1;
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
}

int arc_pipe_new(struct arc *arc, int threads, arc_pipe_cb *cb, void *ctx,
                 struct arc_pipe **pipe_r, char **error_r)
{
    struct arc_pipe *p = g_new0(struct arc_pipe, 1);
    GError *gerr = NULL;

    p->arc = arc;
    p->cb = cb;
    p->ctx = ctx;
    g_mutex_init(&p->lock);
    g_cond_init(&p->cond);
    g_queue_init(&p->jobs);
    if (threads <= 0)
        threads = (int)MIN(MAX(g_get_num_processors(), 1), 4);
    p->pool = g_thread_pool_new(pipe_work, p, threads, FALSE, &gerr);
    if (p->pool == NULL) {
        cus_error(error_r, "cannot start parser threads: %s", gerr->message);
        g_error_free(gerr);
        g_mutex_clear(&p->lock);
        g_cond_clear(&p->cond);
        g_free(p);
        return -1;
    }
    *pipe_r = p;
    return 0;
}

/* Write the oldest job once it is parsed; -1 only if the archive failed. */
static int pipe_finish_head(struct arc_pipe *p, char **error_r)
{
    struct arc_job *j = g_queue_pop_head(&p->jobs);
    gsize len;
    const void *raw = g_bytes_get_data(j->raw, &len);
    gint64 id = 0;
    int dup = 0, ret;
    char *err = NULL;

    g_mutex_lock(&p->lock);
    while (!j->done)
        g_cond_wait(&p->cond, &p->lock);
    g_mutex_unlock(&p->lock);
    ret = arc_add_parsed(p->arc, raw, len, j->sha, j->parse_rc == 0 ? j->msg : NULL,
                         &j->env, &id, &dup, &err);
    j->msg = NULL;  /* arc_add_parsed took it */
    if (ret < 0)
        cus_error(error_r, "%s: %s", j->where, err);
    if (p->cb != NULL)
        p->cb(p->ctx, j->where, ret, id, dup);
    g_free(err);
    job_free(j);
    return ret;
}

int arc_pipe_add(struct arc_pipe *p, GBytes *raw, const struct idx_envelope *env,
                 const char *where, char **error_r)
{
    struct arc_job *j = g_new0(struct arc_job, 1);
    int n = 0;

    j->raw = g_bytes_ref(raw);
    j->where = g_strdup(where);
    if (env->sha256 != NULL) {
        memcpy(j->sha, env->sha256, CUS_SHA256_LEN);
        j->have_sha = 1;
    }
    j->env.time = env->time;
    j->env.sender = g_strdup(env->sender);
    j->env.client = g_strdup(env->client);
    j->env.queue_id = g_strdup(env->queue_id);
    j->env.source = g_strdup(env->source);
    j->env.spool_id = g_strdup(env->spool_id);
    j->env.auth = g_strdup(env->auth);
    if (env->n_findings > 0) {
        j->findings = g_new0(struct spool_finding *, env->n_findings);
        for (size_t i = 0; i < env->n_findings; i++) {
            const struct spool_finding *f = env->findings[i];
            j->findings[i] = g_new0(struct spool_finding, 1);
            j->findings[i]->category = g_strdup(f->category);
            j->findings[i]->rule = g_strdup(f->rule);
            j->findings[i]->action = g_strdup(f->action);
            j->findings[i]->evidence = g_strdup(f->evidence);
        }
        j->env.findings = j->findings;
        j->env.n_findings = env->n_findings;
    }
    if (env->rcpts != NULL) {
        while (env->rcpts[n] != NULL)
            n++;
        j->rcpts = g_new0(char *, n + 1);
        for (int i = 0; i < n; i++)
            j->rcpts[i] = g_strdup(env->rcpts[i]);
        j->env.rcpts = (const char *const *)j->rcpts;
    }
    g_queue_push_tail(&p->jobs, j);
    g_thread_pool_push(p->pool, j, NULL);
    /* Write what is ready; wait only when too much is in flight. */
    for (;;) {
        struct arc_job *head = g_queue_peek_head(&p->jobs);
        int ready;

        if (head == NULL)
            break;
        g_mutex_lock(&p->lock);
        ready = head->done;
        g_mutex_unlock(&p->lock);
        if (!ready && g_queue_get_length(&p->jobs) < PIPE_INFLIGHT)
            break;
        if (pipe_finish_head(p, error_r) < 0)
            return -1;
    }
    return 0;
}

int arc_pipe_drain(struct arc_pipe *p, char **error_r)
{
    while (!g_queue_is_empty(&p->jobs))
        if (pipe_finish_head(p, error_r) < 0)
            return -1;
    return 0;
}

void arc_pipe_free(struct arc_pipe **pp)
{
    struct arc_pipe *p = *pp;
    struct arc_job *j;

    if (p == NULL)
        return;
    /* Wait for the workers, then drop what was not written. */
    g_thread_pool_free(p->pool, FALSE, TRUE);
    while ((j = g_queue_pop_head(&p->jobs)) != NULL)
        job_free(j);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->cond);
    g_free(p);
    *pp = NULL;
}

int arc_flush(struct arc *arc, char **error_r)
{
    struct store_loc end;

    if (arc->writable && !arc->failed && arc_seal_audit(arc, error_r) < 0)
        return -1;
    if (!arc->in_txn)
        return 0;
    if (store_sync(arc->store, error_r) < 0)
        return -1;
    if (store_tell(arc->store, &end, error_r) < 0 || arc_set_end(arc, &end, error_r) < 0)
        return -1;
    if (idx_commit(arc->idx, error_r) < 0)
        return -1;
    arc->committed = end;
    arc->in_txn = 0;
    arc->pending = 0;
    arc->seq_committed = arc->seq;
    memcpy(arc->head_committed, arc->head, CUS_SHA256_LEN);
    dict_train(arc);
    return 0;
}

void arc_abort(struct arc *arc)
{
    struct store_loc end;
    char *err = NULL;

    arc->failed = 1;
    if (arc->in_txn)
        idx_rollback(arc->idx);
    /* The dropped batch's records go too (else the next writer would roll
     * them forward); if they reach into a newer segment, that is left to
     * roll forward: the records are whole. */
    if (arc->in_txn && arc->committed.segment != 0 &&
        store_tell(arc->store, &end, NULL) == 0 && end.segment == arc->committed.segment &&
        end.offset > arc->committed.offset &&
        store_truncate(arc->store, &arc->committed, &err) < 0) {
        log_warn("%s", err);
        g_free(err);
    }
    arc->in_txn = 0;
    arc->pending = 0;
    arc->seq = arc->seq_committed;
    memcpy(arc->head, arc->head_committed, CUS_SHA256_LEN);
}

int arc_checkpoint(struct arc *arc, int force, struct arc_checkpoint_info *info,
                   char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN];
    struct chain_checkpoint cp;
    struct store_loc loc;
    GString *text = NULL;
    sqlite3_stmt *st = NULL;
    gint64 last = -1;
    int ret = -1;

    if (arc_flush(arc, error_r) < 0)
        return -1;
    if (sqlite3_prepare_v2(idx_db(arc->idx), "SELECT max(seq) FROM checkpoints", -1, &st,
                           NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        last = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!force && (last == arc->seq || arc->seq == 0)) {
        if (info != NULL)
            memset(info, 0, sizeof(*info));
        return 0;
    }
    if (chain_checkpoint_format(arc->seq, arc->head, (gint64)time(NULL), arc->sign_key,
                                &text, error_r) < 0)
        return -1;
    if (chain_checkpoint_parse(text->str, text->len, &cp, error_r) < 0)
        goto out;
    if (arc_txn(arc, error_r) < 0)
        goto out;
    cus_sha256(text->str, text->len, sha);
    if (store_append(arc->store, STORE_CHECKPOINT, sha, text->str, text->len, &loc,
                     error_r) < 0 ||
        idx_add_checkpoint(arc->idx, cp.seq, cp.time, cp.hash, cp.key,
                           cp.is_signed ? cp.sig : NULL, sizeof(cp.sig), &loc, error_r) < 0) {
        arc_abort(arc);
        goto out;
    }
    if (arc_flush(arc, error_r) < 0)
        goto out;
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
        info->made = 1;
        info->seq = cp.seq;
        info->time = cp.time;
        memcpy(info->hash, cp.hash, CUS_SHA256_LEN);
        g_strlcpy(info->key, cp.key, sizeof(info->key));
    }
    ret = 0;
out:
    if (text != NULL)
        g_string_free(text, TRUE);
    return ret;
}

int arc_get_raw(struct arc *arc, gint64 id, GBytes **raw_r, char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN];
    struct store_loc loc;
    int found = idx_find_id(arc->idx, id, sha, &loc, error_r);

    if (found < 0)
        return -1;
    if (found == 0)
        return cus_error(error_r, "no message with archive id %" G_GINT64_FORMAT " in %s",
                         id, arc->dir);
    return store_read(arc->store, &loc, sha, raw_r, error_r);
}

/* Move a file aside to NAME.before-reindex-TIME (never over another). */
static int move_aside(const char *path, gint64 now, char **error_r)
{
    char *to = g_strdup_printf("%s.before-reindex-%" G_GINT64_FORMAT, path, now);
    int ret = 0;

    for (int n = 1; access(to, F_OK) == 0 && n < 1000; n++) {
        g_free(to);
        to = g_strdup_printf("%s.before-reindex-%" G_GINT64_FORMAT ".%d", path, now, n);
    }
    if (access(to, F_OK) == 0)
        ret = cus_error(error_r, "%s already exists: not overwriting it", to);
    else if (rename(path, to) == 0)
        log_info("previous %s kept as %s", path, to);
    else if (errno != ENOENT)
        ret = cus_error_errno(error_r, "rename(%s, %s) failed", path, to);
    g_free(to);
    return ret;
}

/* What the segments do not hold comes from the old index, if it can be
 * read: audit entries not sealed yet (everything else, the directory
 * included, is in the chain). A failure is logged: the index is whole. */
static void keep_from_old(struct idx *idx, const char *old_path)
{
    sqlite3 *db = idx_db(idx);
    sqlite3_stmt *st = NULL;
    char *err = NULL;

    if (sqlite3_prepare_v2(db, "ATTACH ? AS old", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, old_path, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        log_warn("reindex: the old index %s cannot be read (%s): audit entries not yet "
                 "sealed into the chain are not carried over", old_path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return;
    }
    sqlite3_finalize(st);
    /* They keep their ids; new ids go on after the highest either index
     * has seen. */
    if (sqlite3_exec(db, "BEGIN;"
                     "INSERT INTO main.audit SELECT * FROM old.audit WHERE seq IS NULL"
                     " AND id NOT IN (SELECT id FROM main.audit);"
                     "DELETE FROM main.sqlite_sequence WHERE name = 'audit';"
                     "INSERT INTO main.sqlite_sequence(name, seq) SELECT 'audit',"
                     " max(coalesce((SELECT max(seq) FROM old.sqlite_sequence"
                     " WHERE name = 'audit'), 0), coalesce((SELECT max(id) FROM main.audit),"
                     " 0));"
                     "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        if (strstr(err != NULL ? err : "", "no such table") == NULL)
            log_warn("reindex: carrying unsealed audit entries over from %s failed (%s)",
                     old_path, err != NULL ? err : sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_free(err);
    sqlite3_exec(db, "DETACH old", NULL, NULL, NULL);
}

int arc_reindex(const struct cfg *cfg, int force, struct replay_stats *rs, char **error_r)
{
    char *path = index_path(cfg->arc_dir);
    char *tmp = g_strconcat(path, ".reindex", NULL);
    char *tmp_wal = g_strconcat(tmp, "-wal", NULL), *tmp_shm = g_strconcat(tmp, "-shm", NULL);
    char *wal = g_strconcat(path, "-wal", NULL), *shm = g_strconcat(path, "-shm", NULL);
    struct store *st = NULL;
    struct store_opts so;
    struct idx *idx = NULL;
    struct replay *rp = NULL;
    struct msg_limits lim;
    struct store_loc end;
    unsigned char genesis[CUS_SHA256_LEN];
    char buf[48];
    gint64 now = (gint64)time(NULL);
    int ret = -1;

    memset(rs, 0, sizeof(*rs));
    store_opts_from(cfg, &so);
    /* The writer's lock: nothing is added while the index is rebuilt. */
    if (store_open(cfg->arc_dir, &so, STORE_WRITE | STORE_WAIT, &st, error_r) < 0)
        goto out;
    unlink(tmp);
    unlink(tmp_wal);
    unlink(tmp_shm);
    if (idx_open(tmp, IDX_CREATE, &idx, error_r) < 0 || idx_begin(idx, error_r) < 0)
        goto out;
    arc_limits_from_cfg(cfg, &lim);
    chain_genesis(genesis);
    rp = replay_new(idx, &lim, 0, genesis);
    if (replay_run(rp, st, NULL, error_r) < 0)
        goto out;
    replay_stats(rp, rs, NULL);
    if (store_tell(st, &end, error_r) < 0)
        goto out;
    g_snprintf(buf, sizeof(buf), "%u:%" G_GUINT64_FORMAT, end.segment, end.offset);
    if (idx_meta_set(idx, "store_end", buf, error_r) < 0 || idx_commit(idx, error_r) < 0)
        goto out;
    if (access(path, F_OK) == 0)
        keep_from_old(idx, path);
    /* The last connection: WAL folded into the file, then gone. */
    sqlite3_exec(idx_db(idx), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    idx_close(&idx);
    unlink(tmp_wal);
    unlink(tmp_shm);
    if ((rs->problems > 0 || rs->pending > 0) && !force) {
        /* Do not swap a good index for one that misses things. */
        cus_error(error_r, "%" G_GINT64_FORMAT " records could not be indexed (see above): "
                  "index.db left as it was; the new index is %s (reindex --force puts it "
                  "in place)", rs->problems + rs->pending, tmp);
        g_free(path);
        g_free(tmp);
        path = tmp = NULL;
        goto keep;
    }
    {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) {
            cus_error_errno(error_r, "fsync(%s) failed", tmp);
            if (fd >= 0)
                close(fd);
            goto out;
        }
        close(fd);
    }
    /* The old index (if any) is kept, its WAL folded in first. */
    if (access(path, F_OK) == 0) {
        sqlite3 *db = NULL;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
            sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db);
        if (move_aside(path, now, error_r) < 0)
            goto out;
    }
    unlink(wal);
    unlink(shm);
    if (perm_apply(cfg, tmp, PERM_SHARED, error_r) < 0)
        goto out;
    if (rename(tmp, path) < 0) {
        cus_error_errno(error_r, "putting the new index in place (%s) failed", path);
        goto out;
    }
    if (cus_fsync_dir(cfg->arc_dir, error_r) < 0)
        goto out;
    ret = 0;
out:
    if (ret < 0) {
        unlink(tmp);
        unlink(tmp_wal);
        unlink(tmp_shm);
    }
keep:
    replay_free(&rp);
    idx_close(&idx);
    store_close(&st);
    g_free(path);
    g_free(tmp);
    g_free(tmp_wal);
    g_free(tmp_shm);
    g_free(wal);
    g_free(shm);
    return ret;
}
