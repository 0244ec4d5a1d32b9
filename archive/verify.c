/*
 * verify.c - re-read the segments, recompute the chain, cross-check
 * index.db; see verify.h
 *
 * One sequential pass over the segments (store_walk_par: decoding and
 * hashing in worker threads; message bytes are checked and dropped), then
 * checks in memory: per object a few dozen bytes, so 10 million messages
 * need well under 1 GB.
 */
#include <inttypes.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "custos/chain.h"
#include "custos/index.h"
#include "custos/log.h"
#include "custos/store.h"
#include "custos/verify.h"

struct obj {
    unsigned char sha[CUS_SHA256_LEN];
    enum store_kind kind;
    struct store_loc loc;
    gint64 index_id;        /* messages/deliveries row that names it, 0 */
    gint64 event_seq;       /* chain entry that names it, 0 */
};

struct ev {
    gint64 seq, time, id;
    char *type;
    unsigned char msg[CUS_SHA256_LEN], deliv[CUS_SHA256_LEN];
    int has_msg, has_deliv;
    struct store_loc loc;
    GBytes *bytes;
};

struct cpt {
    struct chain_checkpoint cp;
    struct store_loc loc;
    GBytes *bytes;
};

struct vfy {
    const struct cfg *cfg;
    verify_cb *cb;
    void *ctx;
    struct verify_stats *st;
    struct store_loc committed;     /* index snapshot's store end */
    int have_committed;
    GHashTable *objs;               /* sha -> struct obj (messages, deliveries) */
    GHashTable *at;                 /* loc key -> struct obj */
    GArray *evs;                    /* struct ev, store order */
    GArray *cps;                    /* struct cpt, store order */
    struct chain_key *pub;
};

static guint sha_hash(gconstpointer p)
{
    const unsigned char *s = p;
    return (guint)s[0] | (guint)s[1] << 8 | (guint)s[2] << 16 | (guint)s[3] << 24;
}

static gboolean sha_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, CUS_SHA256_LEN) == 0;
}

static guint64 loc_key(uint32_t seg, uint64_t off)
{
    return (guint64)seg << 40 | off;
}

static guint u64_hash(gconstpointer p)
{
    return g_int64_hash(p);
}

static void problem(struct vfy *v, const char *kind, const char *object, gint64 id,
                    gint64 seq, const unsigned char *sha, const struct store_loc *loc,
                    const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static void problem(struct vfy *v, const char *kind, const char *object, gint64 id,
                    gint64 seq, const unsigned char *sha, const struct store_loc *loc,
                    const char *fmt, ...)
{
    struct verify_problem p;
    va_list ap;
    char *detail;

    memset(&p, 0, sizeof(p));
    p.kind = kind;
    p.object = object;
    p.id = id;
    p.seq = seq;
    if (sha != NULL)
        cus_hex(sha, CUS_SHA256_LEN, p.sha256);
    if (loc != NULL) {
        p.segment = loc->segment;
        p.offset = loc->offset;
    }
    va_start(ap, fmt);
    detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p.detail = detail;
    v->st->problems++;
    v->cb(v->ctx, &p);
    g_free(detail);
}

static int loc_before(const struct store_loc *a, const struct store_loc *b)
{
    return a->segment < b->segment || (a->segment == b->segment && a->offset < b->offset);
}

static const char *kind_name(enum store_kind k)
{
    switch (k) {
    case STORE_MESSAGE: return "message";
    case STORE_DELIVERY: return "delivery";
    case STORE_DICT: return "dictionary";
    case STORE_EVENT: return "event";
    case STORE_CHECKPOINT: return "checkpoint";
    }
    return "record";
}

/* ---- the pass over the segments ----------------------------------------- */

static void add_event(struct vfy *v, const struct store_rec *rec, GBytes *data)
{
    struct chain_event *ce = NULL;
    struct ev e;
    gsize len;
    const char *text = g_bytes_get_data(data, &len), *s;
    char *err = NULL;

    if (chain_event_parse(text, len, &ce, &err) < 0) {
        problem(v, "altered", "event", 0, 0, rec->sha, &rec->loc, "%s", err);
        g_free(err);
        return;
    }
    memset(&e, 0, sizeof(e));
    e.seq = ce->seq;
    e.time = ce->time;
    e.type = g_strdup(ce->type);
    e.loc = rec->loc;
    e.bytes = g_bytes_ref(data);
    if ((s = chain_event_get(ce, "id")) != NULL)
        e.id = g_ascii_strtoll(s, NULL, 10);
    if ((s = chain_event_get(ce, "message")) != NULL)
        e.has_msg = cus_unhex(s, e.msg, CUS_SHA256_LEN) == 0;
    if ((s = chain_event_get(ce, "delivery")) != NULL)
        e.has_deliv = cus_unhex(s, e.deliv, CUS_SHA256_LEN) == 0;
    g_array_append_val(v->evs, e);
    chain_event_free(&ce);
}

static int walk_cb(void *ctx, const struct store_rec *rec, GBytes *data)
{
    struct vfy *v = ctx;
    struct obj *o;

    v->st->records++;
    if (v->have_committed && !loc_before(&rec->loc, &v->committed)) {
        v->st->uncommitted++;
        return 0;
    }
    if (rec->error != NULL) {
        if (rec->tail)
            problem(v, "truncated", "segment", 0, 0, NULL, &rec->loc, "%s", rec->error);
        else
            problem(v, "altered", rec->kind ? kind_name(rec->kind) : "record", 0, 0,
                    rec->kind ? rec->sha : NULL, &rec->loc, "%s", rec->error);
        return 0;
    }
    switch (rec->kind) {
    case STORE_MESSAGE:
    case STORE_DELIVERY:
        if (rec->kind == STORE_MESSAGE)
            v->st->messages++;
        else
            v->st->deliveries++;
        o = g_hash_table_lookup(v->objs, rec->sha);
        if (o != NULL) {
            problem(v, "extra", kind_name(rec->kind), 0, 0, rec->sha, &rec->loc,
                    "a second copy (the first is in seg-%06" PRIu32 ".cseg at offset %"
                    PRIu64 ")", o->loc.segment, o->loc.offset);
            return 0;
        }
        o = g_new0(struct obj, 1);
        memcpy(o->sha, rec->sha, CUS_SHA256_LEN);
        o->kind = rec->kind;
        o->loc = rec->loc;
        g_hash_table_insert(v->objs, o->sha, o);
        {
            guint64 *k = g_new(guint64, 1);
            *k = loc_key(rec->loc.segment, rec->loc.offset);
            g_hash_table_insert(v->at, k, o);
        }
        return 0;
    case STORE_EVENT:
        add_event(v, rec, data);
        return 0;
    case STORE_CHECKPOINT: {
        struct cpt c;
        gsize len;
        const char *text = g_bytes_get_data(data, &len);
        char *err = NULL;

        memset(&c, 0, sizeof(c));
        if (chain_checkpoint_parse(text, len, &c.cp, &err) < 0) {
            problem(v, "altered", "checkpoint", 0, 0, rec->sha, &rec->loc, "%s", err);
            g_free(err);
            return 0;
        }
        c.loc = rec->loc;
        c.bytes = g_bytes_ref(data);
        g_array_append_val(v->cps, c);
        v->st->checkpoints++;
        if (c.cp.is_signed)
            v->st->signed_checkpoints++;
        return 0;
    }
    case STORE_DICT:
        return 0;
    }
    problem(v, "altered", "record", 0, 0, rec->sha, &rec->loc, "unknown record kind %d",
            (int)rec->kind);
    return 0;
}

/* ---- the chain ------------------------------------------------------------ */

static gint ev_by_seq(gconstpointer a, gconstpointer b)
{
    const struct ev *x = *(struct ev *const *)a, *y = *(struct ev *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static gint cmp_i64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

/* The chain entries of index.db: seq -> (hash, loc). */
struct crow {
    unsigned char hash[CUS_SHA256_LEN];
    struct store_loc loc;
    gint64 msg;
};

static int check_chain(struct vfy *v, sqlite3 *db, GHashTable *hashes, char **error_r)
{
    GPtrArray *order = g_ptr_array_new();
    GHashTable *rows = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    sqlite3_stmt *q = NULL;
    unsigned char h[CUS_SHA256_LEN];
    gint64 max_seen = 0, max_seq = 0, prev = 0, idx_max = 0;
    int known = 1;

    /* Order in the store. */
    for (guint i = 0; i < v->evs->len; i++) {
        struct ev *e = &g_array_index(v->evs, struct ev, i);

        if (e->seq < max_seen)
            problem(v, "reordered", "event", e->id, e->seq, NULL, &e->loc,
                    "chain entry %" G_GINT64_FORMAT " is stored after entry %" G_GINT64_FORMAT,
                    e->seq, max_seen);
        if (e->seq > max_seen)
            max_seen = e->seq;
        g_ptr_array_add(order, e);
    }
    g_ptr_array_sort(order, ev_by_seq);

    if (sqlite3_prepare_v2(db, "SELECT seq, hash, segment, offset, msg FROM chain", -1, &q,
                           NULL) != SQLITE_OK)
        goto dberr;
    while (sqlite3_step(q) == SQLITE_ROW) {
        gint64 *k = g_new(gint64, 1);
        struct crow *r = g_new0(struct crow, 1);

        *k = sqlite3_column_int64(q, 0);
        if (sqlite3_column_bytes(q, 1) == CUS_SHA256_LEN)
            memcpy(r->hash, sqlite3_column_blob(q, 1), CUS_SHA256_LEN);
        r->loc.segment = (uint32_t)sqlite3_column_int64(q, 2);
        r->loc.offset = (uint64_t)sqlite3_column_int64(q, 3);
        r->msg = sqlite3_column_int64(q, 4);
        if (*k > idx_max)
            idx_max = *k;
        g_hash_table_insert(rows, k, r);
    }
    sqlite3_finalize(q);
    q = NULL;

    /* Recompute in seq order. */
    chain_genesis(h);
    for (guint i = 0; i < order->len; i++) {
        struct ev *e = g_ptr_array_index(order, i);
        struct crow *r = g_hash_table_lookup(rows, &e->seq);
        gsize len;
        const void *b = g_bytes_get_data(e->bytes, &len);
        unsigned char *copy;

        if (e->seq == prev) {
            problem(v, "reordered", "event", e->id, e->seq, NULL, &e->loc,
                    "a second chain entry %" G_GINT64_FORMAT, e->seq);
            continue;
        }
        if (e->seq != prev + 1) {
            if (e->seq - prev == 2)
                problem(v, "missing", "event", 0, prev + 1, NULL, &e->loc,
                        "chain entry %" G_GINT64_FORMAT " is not in the store (the chain "
                        "breaks before entry %" G_GINT64_FORMAT ")", prev + 1, e->seq);
            else
                problem(v, "missing", "event", 0, prev + 1, NULL, &e->loc,
                        "chain entries %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " are not "
                        "in the store (the chain breaks before entry %" G_GINT64_FORMAT ")",
                        prev + 1, e->seq - 1, e->seq);
            /* Go on from index.db's hash before this entry, if it has it. */
            {
                gint64 before = e->seq - 1;
                struct crow *rb = g_hash_table_lookup(rows, &before);
                if (rb != NULL) {
                    memcpy(h, rb->hash, CUS_SHA256_LEN);
                    known = 1;
                } else {
                    known = 0;
                }
            }
        }
        prev = e->seq;
        if (known)
            chain_step(h, b, len, h);
        copy = g_memdup2(h, CUS_SHA256_LEN);
        g_hash_table_insert(hashes, g_memdup2(&e->seq, sizeof(gint64)), known ? copy : NULL);
        if (!known)
            g_free(copy);
        if (r == NULL) {
            if (v->have_committed)
                problem(v, "missing", "index", e->id, e->seq, NULL, &e->loc,
                        "chain entry %" G_GINT64_FORMAT " is in the store but not in "
                        "index.db", e->seq);
        } else {
            if (known && memcmp(r->hash, h, CUS_SHA256_LEN) != 0)
                problem(v, "mismatch", "index", e->id, e->seq, NULL, &e->loc,
                        "index.db's hash for chain entry %" G_GINT64_FORMAT " is not the "
                        "one the events give", e->seq);
            if (r->loc.segment != e->loc.segment || r->loc.offset != e->loc.offset)
                problem(v, "misplaced", "event", e->id, e->seq, NULL, &e->loc,
                        "index.db says chain entry %" G_GINT64_FORMAT " is in seg-%06" PRIu32
                        ".cseg at offset %" PRIu64, e->seq, r->loc.segment, r->loc.offset);
            g_hash_table_remove(rows, &e->seq);
        }
        if (e->seq > max_seq)
            max_seq = e->seq;
    }
    /* Rows of index.db with no event record. */
    {
        GHashTableIter it;
        gpointer k, val;
        GArray *left = g_array_new(FALSE, FALSE, sizeof(gint64));

        g_hash_table_iter_init(&it, rows);
        while (g_hash_table_iter_next(&it, &k, &val))
            g_array_append_val(left, *(gint64 *)k);
        g_array_sort(left, cmp_i64);
        for (guint i = 0; i < left->len; i++) {
            gint64 s = g_array_index(left, gint64, i);
            struct crow *r = g_hash_table_lookup(rows, &s);
            problem(v, "missing", "event", r->msg, s, NULL, &r->loc,
                    "chain entry %" G_GINT64_FORMAT " is in index.db but its event record "
                    "is not in the store", s);
        }
        g_array_unref(left);
    }
    v->st->events = (gint64)v->evs->len;
    v->st->head_seq = max_seq;
    if (known && max_seq > 0)
        cus_hex(h, CUS_SHA256_LEN, v->st->head);
    (void)idx_max;
    g_ptr_array_unref(order);
    g_hash_table_destroy(rows);
    return 0;
dberr:
    cus_error(error_r, "index.db: %s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
    g_ptr_array_unref(order);
    g_hash_table_destroy(rows);
    return -1;
}

static void check_checkpoints(struct vfy *v, sqlite3 *db, GHashTable *hashes)
{
    sqlite3_stmt *q = NULL;
    gint64 n_rows = 0;

    for (guint i = 0; i < v->cps->len; i++) {
        struct cpt *c = &g_array_index(v->cps, struct cpt, i);
        const unsigned char *h = NULL;
        char *err = NULL;

        if (c->cp.seq > v->st->head_seq) {
            problem(v, "truncated", "checkpoint", 0, c->cp.seq, NULL, &c->loc,
                    "the checkpoint vouches for chain entry %" G_GINT64_FORMAT ", but the "
                    "chain ends at %" G_GINT64_FORMAT, c->cp.seq, v->st->head_seq);
        } else if (c->cp.seq > 0) {
            h = g_hash_table_lookup(hashes, &c->cp.seq);
            if (h != NULL && memcmp(h, c->cp.hash, CUS_SHA256_LEN) != 0)
                problem(v, "mismatch", "checkpoint", 0, c->cp.seq, NULL, &c->loc,
                        "the chain's hash at entry %" G_GINT64_FORMAT " is not the one the "
                        "checkpoint vouches for", c->cp.seq);
        }
        if (c->cp.is_signed && v->pub != NULL) {
            int ok = chain_checkpoint_verify(g_bytes_get_data(c->bytes, NULL), &c->cp,
                                             v->pub, &err);
            if (ok != 1)
                problem(v, "signature", "checkpoint", 0, c->cp.seq, NULL, &c->loc, "%s",
                        err != NULL ? err : "bad signature");
            g_free(err);
        } else if (!c->cp.is_signed && v->pub != NULL) {
            problem(v, "signature", "checkpoint", 0, c->cp.seq, NULL, &c->loc,
                    "checkpoint at chain entry %" G_GINT64_FORMAT " is not signed, but a "
                    "verify key is configured", c->cp.seq);
        }
    }
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM checkpoints", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n_rows = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (v->have_committed && n_rows != (gint64)v->cps->len)
        problem(v, n_rows > (gint64)v->cps->len ? "missing" : "extra", "checkpoint", 0, 0,
                NULL, NULL, "index.db lists %" G_GINT64_FORMAT " checkpoints, the store "
                "holds %u", n_rows, v->cps->len);
}

/* ---- objects against the chain and index.db ------------------------------ */

static void check_objects(struct vfy *v, sqlite3 *db)
{
    static const char *const sql[2] = {
        "SELECT id, sha256, segment, offset FROM messages ORDER BY id",
        "SELECT d.id, d.segment, d.offset, d.msg FROM deliveries d ORDER BY d.id",
    };
    sqlite3_stmt *q = NULL;
    GHashTableIter it;
    gpointer k, val;

    /* What the chain names must be in the store. */
    for (guint i = 0; i < v->evs->len; i++) {
        struct ev *e = &g_array_index(v->evs, struct ev, i);
        struct obj *o;

        if (e->has_msg) {
            o = g_hash_table_lookup(v->objs, e->msg);
            if (o == NULL || o->kind != STORE_MESSAGE) {
                if (strcmp(e->type, "add") == 0)
                    problem(v, "missing", "message", e->id, e->seq, e->msg, &e->loc,
                            "message %" G_GINT64_FORMAT " added by chain entry %"
                            G_GINT64_FORMAT " is not in the store", e->id, e->seq);
            } else if (strcmp(e->type, "add") == 0) {
                o->event_seq = e->seq;
                o->index_id = -e->id;  /* expected id, until index.db says */
            }
        }
        if (e->has_deliv) {
            o = g_hash_table_lookup(v->objs, e->deliv);
            if (o == NULL || o->kind != STORE_DELIVERY)
                problem(v, "missing", "delivery", e->id, e->seq, e->deliv, &e->loc,
                        "the delivery of chain entry %" G_GINT64_FORMAT " is not in the "
                        "store", e->seq);
            else
                o->event_seq = e->seq;
        }
    }
    /* index.db's messages. */
    if (sqlite3_prepare_v2(db, sql[0], -1, &q, NULL) == SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            gint64 id = sqlite3_column_int64(q, 0);
            struct store_loc loc = { (uint32_t)sqlite3_column_int64(q, 2),
                                     (uint64_t)sqlite3_column_int64(q, 3), 0 };
            const unsigned char *sha = sqlite3_column_blob(q, 1);
            struct obj *o;

            if (sha == NULL || sqlite3_column_bytes(q, 1) != CUS_SHA256_LEN)
                continue;
            o = g_hash_table_lookup(v->objs, sha);
            if (o == NULL || o->kind != STORE_MESSAGE) {
                guint64 lk = loc_key(loc.segment, loc.offset);
                struct obj *there = g_hash_table_lookup(v->at, &lk);
                if (v->have_committed && !loc_before(&loc, &v->committed))
                    continue;
                problem(v, "missing", "message", id, 0, sha, &loc,
                        "message %" G_GINT64_FORMAT " is not in the store%s", id,
                        there != NULL ? " (another object is where index.db says it is)" : "");
                continue;
            }
            if (o->loc.segment != loc.segment || o->loc.offset != loc.offset) {
                guint64 lk = loc_key(loc.segment, loc.offset);
                struct obj *there = g_hash_table_lookup(v->at, &lk);
                char other[80] = "";

                if (there != NULL && there->index_id > 0)
                    g_snprintf(other, sizeof(other), " (message %" G_GINT64_FORMAT " is there)",
                               there->index_id);
                else if (there != NULL && there->index_id < 0)
                    g_snprintf(other, sizeof(other), " (message %" G_GINT64_FORMAT " is there)",
                               -there->index_id);
                problem(v, "misplaced", "message", id, o->event_seq, sha, &o->loc,
                        "index.db says message %" G_GINT64_FORMAT " is in seg-%06" PRIu32
                        ".cseg at offset %" PRIu64 "%s", id, loc.segment, loc.offset, other);
            }
            if (o->event_seq == 0)
                problem(v, "extra", "message", id, 0, sha, &o->loc,
                        "message %" G_GINT64_FORMAT " is in no chain entry", id);
            else if (o->index_id < 0 && -o->index_id != id)
                problem(v, "mismatch", "index", id, o->event_seq, sha, &o->loc,
                        "index.db gives the message of chain entry %" G_GINT64_FORMAT
                        " archive id %" G_GINT64_FORMAT ", the chain %" G_GINT64_FORMAT,
                        o->event_seq, id, -o->index_id);
            o->index_id = id;
        }
    }
    sqlite3_finalize(q);
    q = NULL;
    /* index.db's deliveries: their record must be where it says. */
    if (sqlite3_prepare_v2(db, sql[1], -1, &q, NULL) == SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            struct store_loc loc = { (uint32_t)sqlite3_column_int64(q, 1),
                                     (uint64_t)sqlite3_column_int64(q, 2), 0 };
            guint64 lk = loc_key(loc.segment, loc.offset);
            struct obj *o = g_hash_table_lookup(v->at, &lk);

            if (sqlite3_column_type(q, 1) == SQLITE_NULL)
                continue;
            if (v->have_committed && !loc_before(&loc, &v->committed))
                continue;
            if (o == NULL || o->kind != STORE_DELIVERY)
                problem(v, "missing", "delivery", sqlite3_column_int64(q, 3), 0, NULL, &loc,
                        "delivery %" G_GINT64_FORMAT " of message %" G_GINT64_FORMAT
                        " is not where index.db says", (gint64)sqlite3_column_int64(q, 0),
                        (gint64)sqlite3_column_int64(q, 3));
            else
                o->index_id = sqlite3_column_int64(q, 0);
        }
    }
    sqlite3_finalize(q);
    /* Objects of the store nothing (or only the chain) names. */
    g_hash_table_iter_init(&it, v->objs);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        struct obj *o = val;

        if (o->kind == STORE_MESSAGE && o->index_id <= 0) {
            if (o->event_seq != 0)
                problem(v, "missing", "index", -o->index_id, o->event_seq, o->sha, &o->loc,
                        "message %" G_GINT64_FORMAT " (chain entry %" G_GINT64_FORMAT ") is "
                        "in the store but not in index.db", -o->index_id, o->event_seq);
            else
                problem(v, "extra", "message", 0, 0, o->sha, &o->loc,
                        "a message in no chain entry and not in index.db");
        } else if (o->kind == STORE_DELIVERY && o->event_seq == 0) {
            problem(v, "extra", "delivery", 0, 0, o->sha, &o->loc,
                    "a delivery record in no chain entry");
        }
    }
}

/* ---- the run ------------------------------------------------------------- */

static void ev_clear(gpointer p)
{
    struct ev *e = p;
    g_free(e->type);
    g_bytes_unref(e->bytes);
}

static void cpt_clear(gpointer p)
{
    struct cpt *c = p;
    g_bytes_unref(c->bytes);
}

static guint64 segment_bytes(const char *arcdir, int *n_r)
{
    char *dir = g_build_filename(arcdir, "store", NULL);
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *n;
    guint64 sum = 0;
    struct stat sb;

    *n_r = 0;
    while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
        char *p;

        if (!g_str_has_prefix(n, "seg-") || !g_str_has_suffix(n, ".cseg"))
            continue;
        p = g_build_filename(dir, n, NULL);
        if (stat(p, &sb) == 0) {
            sum += (guint64)sb.st_size;
            (*n_r)++;
        }
        g_free(p);
    }
    if (d != NULL)
        g_dir_close(d);
    g_free(dir);
    return sum;
}

int verify_run(const struct cfg *cfg, int threads, verify_cb *cb, void *ctx,
               struct verify_stats *stats, char **error_r)
{
    struct vfy v;
    struct store *st = NULL;
    struct idx *idx = NULL;
    struct store_opts so;
    struct store_walk_opts wo;
    struct store_loc end;
    GHashTable *hashes = NULL;
    char *path = g_build_filename(cfg->arc_dir, "index.db", NULL), *val = NULL, *err = NULL;
    double t0 = cus_now();
    int ret = -1;

    memset(stats, 0, sizeof(*stats));
    memset(&v, 0, sizeof(v));
    v.cfg = cfg;
    v.cb = cb;
    v.ctx = ctx;
    v.st = stats;
    v.objs = g_hash_table_new_full(sha_hash, sha_equal, NULL, g_free);
    v.at = g_hash_table_new_full(u64_hash, g_int64_equal, g_free, NULL);
    v.evs = g_array_new(FALSE, TRUE, sizeof(struct ev));
    g_array_set_clear_func(v.evs, ev_clear);
    v.cps = g_array_new(FALSE, TRUE, sizeof(struct cpt));
    g_array_set_clear_func(v.cps, cpt_clear);

    /* The key checkpoints are checked with. */
    if (cfg->chain_verify_key != NULL) {
        if (chain_key_load_public(cfg->chain_verify_key, &v.pub, error_r) < 0)
            goto out;
    } else if (cfg->chain_sign_key != NULL) {
        if (chain_key_load_public(cfg->chain_sign_key, &v.pub, &err) < 0) {
            log_warn("checkpoint signatures not checked: %s (set [chain] verify_key)", err);
            g_free(err);
            err = NULL;
        }
    }
    if (v.pub != NULL) {
        stats->signatures_checked = 1;
        g_strlcpy(stats->key, chain_key_id(v.pub), sizeof(stats->key));
    }

    memset(&so, 0, sizeof(so));
    so.key_file = cfg->arc_key_file;
    so.key_id = cfg->arc_key_id;
    if (access(path, F_OK) < 0) {
        cus_error(error_r, "no archive at %s (index.db missing): run custos-archive init, "
                  "or custos-archive reindex to rebuild it from the segments", cfg->arc_dir);
        goto out;
    }
    if (idx_open(path, IDX_RDONLY, &idx, error_r) < 0)
        goto out;
    /* One snapshot of index.db for the whole run. */
    if (sqlite3_exec(idx_db(idx), "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        idx_meta_get(idx, "store_end", &val, error_r) < 0)
        goto out;
    if (val != NULL) {
        unsigned long seg;
        unsigned long long off;
        if (sscanf(val, "%lu:%llu", &seg, &off) == 2) {
            v.committed.segment = (uint32_t)seg;
            v.committed.offset = off;
            v.have_committed = 1;
        }
    }
    if (store_open(cfg->arc_dir, &so, 0, &st, error_r) < 0)
        goto out;
    stats->segment_bytes = segment_bytes(cfg->arc_dir, &stats->segments);
    if (store_tell(st, &end, error_r) < 0)
        goto out;
    if (v.have_committed && loc_before(&end, &v.committed))
        problem(&v, "truncated", "segment", 0, 0, NULL, &end,
                "the store ends here, but index.db committed records up to seg-%06" PRIu32
                ".cseg offset %" PRIu64, v.committed.segment, v.committed.offset);
    memset(&wo, 0, sizeof(wo));
    wo.threads = threads;
    wo.flags = STORE_WALK_NO_MESSAGE_DATA | STORE_WALK_REPORT_TAIL;
    if (store_walk_par(st, &wo, walk_cb, &v, error_r) < 0)
        goto out;
    hashes = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    if (check_chain(&v, idx_db(idx), hashes, error_r) < 0)
        goto out;
    check_checkpoints(&v, idx_db(idx), hashes);
    check_objects(&v, idx_db(idx));
    ret = 0;
out:
    stats->seconds = cus_now() - t0;
    if (idx != NULL)
        sqlite3_exec(idx_db(idx), "COMMIT", NULL, NULL, NULL);
    idx_close(&idx);
    store_close(&st);
    chain_key_free(&v.pub);
    if (hashes != NULL)
        g_hash_table_destroy(hashes);
    g_hash_table_destroy(v.at);
    g_hash_table_destroy(v.objs);
    g_array_unref(v.evs);
    g_array_unref(v.cps);
    g_free(val);
    g_free(path);
    return ret;
}
