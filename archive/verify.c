/*
 * verify.c - re-read the segments, recompute the chain, cross-check
 * index.db; see verify.h
 *
 * One sequential pass over the segments (store_walk_par: decoding and
 * hashing in worker threads; message bytes are checked and dropped), then
 * checks in memory: per object a few dozen bytes, so 10 million messages
 * need well under 1 GB. Governance events (audit, hold, purge) are parsed
 * in full by the decoding threads and checked against their rows in small
 * hash tables at the end.
 */
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "custos/audit.h"
#include "custos/incident.h"
#include "custos/chain.h"
#include "custos/index.h"
#include "custos/log.h"
#include "custos/store.h"
#include "custos/verify.h"

struct prow;

/* A message record of the store, in store order. */
struct obj {
    unsigned char sha[CUS_SHA256_LEN];
    struct store_loc loc;
    gint64 index_id;        /* messages/deliveries row that names it, 0 */
    gint64 event_seq;       /* chain entry that names it, 0 */
    gint64 event_id;        /* the archive id that entry gives, 0 */
    char *bad;              /* why it does not decode (reported once, with
                             * the id, after the cross-checks), or NULL */
    const struct prow *pending; /* purged, awaiting its segment's rewrite */
};

/* A chain event, parsed in a decoding thread. */
struct ev {
    enum store_kind kind;   /* STORE_EVENT (first, see aux_free) */
    gint64 seq, time, id;
    char *type;
    char *error;            /* it does not parse */
    unsigned char msg[CUS_SHA256_LEN];
    int has_msg;
    int msg_found;          /* found right before it, in its group */
    int delivery;           /* "add" or "deliver": index.db has its row */
    int h_known;            /* h: h_seq, as the events give it */
    unsigned char h[CUS_SHA256_LEN];
    gint64 deliv_row;       /* that row, 0 until found */
    unsigned char esha[CUS_SHA256_LEN]; /* record sha */
    struct store_loc loc;
    GBytes *bytes;
    struct chain_event *full;   /* audit, hold, hold-release, purge: all of it */
    char *full_error;           /* why that did not parse */
};

struct cpt {
    enum store_kind kind;   /* STORE_CHECKPOINT (first, see aux_free) */
    struct chain_checkpoint cp;
    char *error;
    unsigned char esha[CUS_SHA256_LEN];
    struct store_loc loc;
    GBytes *bytes;
};

/* index.db's rows, read by a thread of their own during the walk. */
struct irow {
    gint64 id, msg;
    unsigned char sha[CUS_SHA256_LEN];  /* messages: sha256; chain: hash */
    struct store_loc loc;
    int has_loc;
    int seen;               /* chain rows: its event was found */
};

/* A purged row. */
struct prow {
    gint64 id, time, seq;
    unsigned char sha[CUS_SHA256_LEN];
    char *rule;
    struct store_loc loc;
    int has_loc;            /* its record awaits its segment's rewrite */
    int seen;               /* its purge event was found */
};

/* A holds row. */
struct hrow {
    gint64 id, created, released, seq, release_seq;
    char *name, *query, *note, *created_by, *released_by;
    int seen, release_seen;
};

struct irows {
    sqlite3 *db;
    GArray *msgs, *delivs, *chain; /* struct irow */
    gint64 n_cp;
    GArray *purged;         /* struct prow */
    GArray *holds;          /* struct hrow */
    GPtrArray *audit;       /* struct audit_entry *, by id */
    GPtrArray *incidents;   /* struct incident * */
    gint64 audit_seq;       /* sqlite_sequence for audit: the highest id given */
    char *error;
};

struct vfy {
    const struct cfg *cfg;
    verify_cb *cb;
    void *ctx;
    struct verify_stats *st;
    struct store_loc committed;     /* index snapshot's store end */
    int have_committed;
    GArray *msgs;                   /* struct obj, store order */
    GPtrArray *evs;                 /* struct ev *, store order */
    GPtrArray *cps;                 /* struct cpt *, store order */
    GPtrArray *order;               /* struct ev *, by seq */
    /* The chain, computed during the walk while the events come in order
     * from 1 (the usual case: check_chain then has nothing to hash). */
    unsigned char run_h[CUS_SHA256_LEN];
    gint64 run_seq;
    int run_broken;
    gint last_msg;                  /* of the open group, or -1 */
    struct chain_key *pub;
    struct irows ir;
    GPtrArray *gov;                 /* struct ev *: purge, hold, hold-release,
                                     * audit events, in store order */
    GHashTable *purges;             /* archive id -> struct ev * of its purge */
    GHashTable *purged_rows;        /* archive id -> struct prow * */
    verify_purged_cb *purged_cb;
    /* Problems of the walk are held back until it is known that no
     * segment was rewritten meanwhile (else the run starts again). */
    int holding;
    GArray *held;                   /* struct verify_problem, detail owned */
};

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
    if (v->holding) {
        g_array_append_val(v->held, p);
        return;
    }
    v->cb(v->ctx, &p);
    g_free(detail);
}

/* Say the problems held back; from now on each as it is found. */
static void problems_release(struct vfy *v)
{
    for (guint i = 0; i < v->held->len; i++) {
        struct verify_problem *p = &g_array_index(v->held, struct verify_problem, i);

        v->cb(v->ctx, p);
        g_free((char *)p->detail);
    }
    g_array_set_size(v->held, 0);
    v->holding = 0;
}

/* meta "rewrites" of index.db as it is now (retention counts its segment
 * rewrites there), or NULL. */
static char *rewrites_now(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char *val = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'rewrites'", -1, &q,
                           NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        val = g_strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    return val;
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

static void ev_free(gpointer p)
{
    struct ev *e = p;

    if (e == NULL)
        return;
    g_free(e->type);
    g_free(e->error);
    g_free(e->full_error);
    chain_event_free(&e->full);
    if (e->bytes != NULL)
        g_bytes_unref(e->bytes);
    g_free(e);
}

static void cpt_free(gpointer p)
{
    struct cpt *c = p;

    if (c == NULL)
        return;
    g_free(c->error);
    if (c->bytes != NULL)
        g_bytes_unref(c->bytes);
    g_free(c);
}

static void aux_free(void *p)
{
    if (*(enum store_kind *)p == STORE_EVENT)
        ev_free(p);
    else
        cpt_free(p);
}

/* The fields verify needs from an event: seq, time, type, id, message.
 * Only what chain_event_format() writes is accepted; the rest of the event
 * is covered by the chain hash (and read in full by reindex). */
static int ev_scan(const char *p, size_t len, struct ev *e)
{
    const char *end = p + len;
    static const char magic[] = "custos-event 1\n";

    if (len < sizeof(magic) - 1 || memcmp(p, magic, sizeof(magic) - 1) != 0 ||
        end[-1] != '\n') {
        e->error = g_strdup("not a chain event");
        return -1;
    }
    p += sizeof(magic) - 1;
    for (int line = 2; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp;

        sp = memchr(p, ' ', (size_t)(nl - p));
        if (sp == NULL) {
            e->error = g_strdup_printf("chain event line %d: expected \"key value\"", line);
            return -1;
        }
#define IS(k) ((size_t)(sp - p) == sizeof(k) - 1 && memcmp(p, k, sizeof(k) - 1) == 0)
        if (line == 2 && IS("seq"))
            e->seq = g_ascii_strtoll(sp + 1, NULL, 10);
        else if (line == 3 && IS("time"))
            e->time = g_ascii_strtoll(sp + 1, NULL, 10);
        else if (line == 4 && IS("type"))
            e->type = g_strndup(sp + 1, (size_t)(nl - sp - 1));
        else if (line < 5) {
            e->error = g_strdup_printf("chain event line %d: out of order", line);
            return -1;
        } else if (IS("id") && e->id == 0)
            e->id = g_ascii_strtoll(sp + 1, NULL, 10);
        else if (IS("message") && !e->has_msg)
            e->has_msg = nl - sp - 1 == 64 && cus_unhex_n(sp + 1, e->msg, CUS_SHA256_LEN) == 0;
#undef IS
        p = nl + 1;
    }
    if (e->seq < 1 || e->type == NULL) {
        e->error = g_strdup("chain event: no seq or type");
        return -1;
    }
    e->delivery = strcmp(e->type, "add") == 0 || strcmp(e->type, "deliver") == 0;
    return 0;
}

/* In a decoding thread: parse events and checkpoints. */
static void *walk_work(void *ctx, const struct store_rec *rec, GBytes *data)
{
    gsize len;
    const char *text;

    if (data == NULL)
        return NULL;
    text = g_bytes_get_data(data, &len);
    if (rec->kind == STORE_EVENT) {
        struct ev *e = g_new0(struct ev, 1);

        e->kind = STORE_EVENT;
        e->loc = rec->loc;
        memcpy(e->esha, rec->sha, CUS_SHA256_LEN);
        if (ev_scan(text, len, e) < 0)
            return e;
        e->bytes = g_bytes_ref(data);
        if (strcmp(e->type, "audit") == 0 || strcmp(e->type, "hold") == 0 ||
            strcmp(e->type, "hold-release") == 0 || strcmp(e->type, "purge") == 0 ||
            strcmp(e->type, "incident") == 0)
            chain_event_parse(text, len, &e->full, &e->full_error);
        return e;
    }
    if (rec->kind == STORE_CHECKPOINT) {
        struct cpt *c = g_new0(struct cpt, 1);

        c->kind = STORE_CHECKPOINT;
        c->loc = rec->loc;
        memcpy(c->esha, rec->sha, CUS_SHA256_LEN);
        if (chain_checkpoint_parse(text, len, &c->cp, &c->error) == 0)
            c->bytes = g_bytes_ref(data);
        return c;
    }
    return NULL;
}

static int walk_cb(void *ctx, const struct store_rec *rec, GBytes *data)
{
    struct vfy *v = ctx;
    struct obj o;

    v->st->records++;
    if (v->have_committed && !loc_before(&rec->loc, &v->committed)) {
        v->st->uncommitted++;
        if (rec->kind == STORE_EVENT)
            ev_free(rec->aux);
        else if (rec->kind == STORE_CHECKPOINT)
            cpt_free(rec->aux);
        return 0;
    }
    if (rec->error != NULL && rec->kind == STORE_MESSAGE && !rec->tail) {
        /* Its header is sound: keep it in its place, say what is wrong
         * once the chain and index.db have said which message it is. */
        memset(&o, 0, sizeof(o));
        memcpy(o.sha, rec->sha, CUS_SHA256_LEN);
        o.loc = rec->loc;
        o.bad = g_strdup(rec->error);
        g_array_append_val(v->msgs, o);
        v->last_msg = (gint)v->msgs->len - 1;
        return 0;
    }
    if (rec->error != NULL) {
        if (rec->tail)
            problem(v, "truncated", "segment", 0, 0, NULL, &rec->loc, "%s", rec->error);
        else
            problem(v, "altered", rec->kind ? kind_name(rec->kind) :
                    rec->loc.offset == 0 ? "segment" : "record", 0, 0,
                    rec->kind ? rec->sha : NULL, &rec->loc, "%s", rec->error);
        return 0;
    }
    switch (rec->kind) {
    case STORE_MESSAGE:
        memset(&o, 0, sizeof(o));
        memcpy(o.sha, rec->sha, CUS_SHA256_LEN);
        o.loc = rec->loc;
        g_array_append_val(v->msgs, o);
        v->last_msg = (gint)v->msgs->len - 1;
        return 0;
    case STORE_EVENT: {
        struct ev *e = rec->aux;

        if (e->error != NULL) {
            problem(v, "altered", "event", 0, 0, rec->sha, &rec->loc, "%s", e->error);
            ev_free(e);
        } else {
            /* Its group: the records right before it. */
            if (e->has_msg && v->last_msg >= 0) {
                struct obj *m = &g_array_index(v->msgs, struct obj, v->last_msg);
                if (memcmp(m->sha, e->msg, CUS_SHA256_LEN) == 0) {
                    m->event_seq = e->seq;
                    m->event_id = e->id;
                    e->msg_found = 1;
                }
            }
            if (!v->run_broken && e->seq == v->run_seq + 1) {
                gsize blen;
                const void *b = g_bytes_get_data(e->bytes, &blen);

                chain_step(v->run_h, b, blen, v->run_h);
                memcpy(e->h, v->run_h, CUS_SHA256_LEN);
                e->h_known = 1;
                v->run_seq = e->seq;
            } else {
                v->run_broken = 1;
            }
            g_ptr_array_add(v->evs, e);
        }
        v->last_msg = -1;
        return 0;
    }
    case STORE_CHECKPOINT: {
        struct cpt *c = rec->aux;

        if (c->error != NULL) {
            problem(v, "altered", "checkpoint", 0, 0, rec->sha, &rec->loc, "%s", c->error);
            cpt_free(c);
            return 0;
        }
        g_ptr_array_add(v->cps, c);
        v->st->checkpoints++;
        if (c->cp.is_signed)
            v->st->signed_checkpoints++;
        return 0;
    }
    case STORE_DICT:
        return 0;
    case STORE_DELIVERY:
        break;
    }
    problem(v, "extra", "record", 0, 0, rec->sha, &rec->loc, "a record of kind %d, which "
            "this archive does not write",
            (int)rec->kind);
    return 0;
}

/* ---- index.db, read beside the walk ------------------------------------- */

static char *col_str(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return t != NULL ? g_strdup((const char *)t) : NULL;
}

/* The purged, holds and audit tables (small beside messages). *q is left
 * for the caller to finalize after a failure. */
static int read_governance(struct irows *ir, sqlite3_stmt **q)
{
    int rc;

    if (sqlite3_prepare_v2(ir->db, "SELECT id, sha256, time, rule, seq, segment, offset,"
                           " length FROM purged", -1, q, NULL) != SQLITE_OK)
        return -1;
    while ((rc = sqlite3_step(*q)) == SQLITE_ROW) {
        struct prow r;

        memset(&r, 0, sizeof(r));
        r.id = sqlite3_column_int64(*q, 0);
        if (sqlite3_column_bytes(*q, 1) == CUS_SHA256_LEN)
            memcpy(r.sha, sqlite3_column_blob(*q, 1), CUS_SHA256_LEN);
        r.time = sqlite3_column_int64(*q, 2);
        r.rule = col_str(*q, 3);
        r.seq = sqlite3_column_int64(*q, 4);
        r.has_loc = sqlite3_column_type(*q, 5) != SQLITE_NULL;
        r.loc.segment = (uint32_t)sqlite3_column_int64(*q, 5);
        r.loc.offset = (uint64_t)sqlite3_column_int64(*q, 6);
        r.loc.length = (uint32_t)sqlite3_column_int64(*q, 7);
        g_array_append_val(ir->purged, r);
    }
    sqlite3_finalize(*q);
    *q = NULL;
    if (rc != SQLITE_DONE ||
        sqlite3_prepare_v2(ir->db, "SELECT id, name, query, note, created, created_by,"
                           " released, released_by, seq, release_seq FROM holds", -1, q,
                           NULL) != SQLITE_OK)
        return -1;
    while ((rc = sqlite3_step(*q)) == SQLITE_ROW) {
        struct hrow r;

        memset(&r, 0, sizeof(r));
        r.id = sqlite3_column_int64(*q, 0);
        r.name = col_str(*q, 1);
        r.query = col_str(*q, 2);
        r.note = col_str(*q, 3);
        r.created = sqlite3_column_int64(*q, 4);
        r.created_by = col_str(*q, 5);
        r.released = sqlite3_column_type(*q, 6) == SQLITE_NULL ? -1 :
                     sqlite3_column_int64(*q, 6);
        r.released_by = col_str(*q, 7);
        r.seq = sqlite3_column_int64(*q, 8);
        r.release_seq = sqlite3_column_int64(*q, 9);
        g_array_append_val(ir->holds, r);
    }
    sqlite3_finalize(*q);
    *q = NULL;
    if (rc != SQLITE_DONE ||
        sqlite3_prepare_v2(ir->db, "SELECT id, time, user, uid, command, args, results,"
                           " status, detail, seq FROM audit ORDER BY id", -1, q,
                           NULL) != SQLITE_OK)
        return -1;
    while ((rc = sqlite3_step(*q)) == SQLITE_ROW) {
        struct audit_entry *e = g_new0(struct audit_entry, 1);

        e->id = sqlite3_column_int64(*q, 0);
        e->time = sqlite3_column_int64(*q, 1);
        e->user = col_str(*q, 2);
        e->uid = sqlite3_column_int64(*q, 3);
        e->command = col_str(*q, 4);
        e->args = col_str(*q, 5);
        e->results = sqlite3_column_int64(*q, 6);
        e->status = sqlite3_column_int(*q, 7);
        e->detail = col_str(*q, 8);
        e->seq = sqlite3_column_type(*q, 9) == SQLITE_NULL ? 0 : sqlite3_column_int64(*q, 9);
        g_ptr_array_add(ir->audit, e);
    }
    sqlite3_finalize(*q);
    *q = NULL;
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_prepare_v2(ir->db, "SELECT " INCIDENT_COLS " FROM incidents i", -1, q,
                           NULL) != SQLITE_OK)
        return -1;
    while ((rc = sqlite3_step(*q)) == SQLITE_ROW) {
        struct incident *inc = g_new0(struct incident, 1);

        incident_from_row(*q, inc);
        g_ptr_array_add(ir->incidents, inc);
    }
    sqlite3_finalize(*q);
    *q = NULL;
    if (rc != SQLITE_DONE)
        return -1;
    /* The highest audit id ever given (no table before the first entry). */
    if (sqlite3_prepare_v2(ir->db, "SELECT seq FROM sqlite_sequence WHERE name = 'audit'", -1,
                           q, NULL) == SQLITE_OK && sqlite3_step(*q) == SQLITE_ROW)
        ir->audit_seq = sqlite3_column_int64(*q, 0);
    sqlite3_finalize(*q);
    *q = NULL;
    return 0;
}

static gpointer read_index(gpointer p)
{
    struct irows *ir = p;
    static const char *const sql[3] = {
        "SELECT id, sha256, segment, offset FROM messages",
        "SELECT id, msg, segment, offset FROM deliveries",
        "SELECT seq, hash, segment, offset, msg FROM chain ORDER BY seq",
    };
    GArray *out[3] = { ir->msgs, ir->delivs, ir->chain };
    sqlite3_stmt *q = NULL;

    for (int t = 0; t < 3; t++) {
        if (sqlite3_prepare_v2(ir->db, sql[t], -1, &q, NULL) != SQLITE_OK)
            goto fail;
        while (sqlite3_step(q) == SQLITE_ROW) {
            struct irow r;
            int shacol = t == 1 ? -1 : 1;

            memset(&r, 0, sizeof(r));
            r.id = sqlite3_column_int64(q, 0);
            if (t == 1)
                r.msg = sqlite3_column_int64(q, 1);
            if (t == 2)
                r.msg = sqlite3_column_int64(q, 4);
            if (shacol > 0 && sqlite3_column_bytes(q, shacol) == CUS_SHA256_LEN)
                memcpy(r.sha, sqlite3_column_blob(q, shacol), CUS_SHA256_LEN);
            r.has_loc = sqlite3_column_type(q, 2) != SQLITE_NULL;
            r.loc.segment = (uint32_t)sqlite3_column_int64(q, 2);
            r.loc.offset = (uint64_t)sqlite3_column_int64(q, 3);
            g_array_append_val(out[t], r);
        }
        sqlite3_finalize(q);
        q = NULL;
    }
    if (sqlite3_prepare_v2(ir->db, "SELECT count(*) FROM checkpoints", -1, &q, NULL) !=
        SQLITE_OK || sqlite3_step(q) != SQLITE_ROW)
        goto fail;
    ir->n_cp = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    q = NULL;
    if (read_governance(ir, &q) < 0)
        goto fail;
    return NULL;
fail:
    ir->error = g_strdup_printf("index.db: %s", sqlite3_errmsg(ir->db));
    sqlite3_finalize(q);
    return NULL;
}

/* ---- the chain ------------------------------------------------------------ */

static gint ev_by_seq(gconstpointer a, gconstpointer b)
{
    const struct ev *x = *(struct ev *const *)a, *y = *(struct ev *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static gint cmp_u32(gconstpointer a, gconstpointer b)
{
    guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;
    return x < y ? -1 : x > y;
}

/* The chain row of seq (rows are by seq). */
static struct irow *row_of(GArray *rows, gint64 seq)
{
    guint lo = 0, hi = rows->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        struct irow *r = &g_array_index(rows, struct irow, mid);

        if (r->id == seq)
            return r;
        if (r->id < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The event of seq (v->order is by seq). */
static struct ev *ev_of(struct vfy *v, gint64 seq)
{
    guint lo = 0, hi = v->order->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        struct ev *e = g_ptr_array_index(v->order, mid);

        if (e->seq == seq)
            return e;
        if (e->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void check_chain(struct vfy *v)
{
    GPtrArray *order = g_ptr_array_sized_new(v->evs->len);
    unsigned char h[CUS_SHA256_LEN];
    gint64 max_seen = 0, max_seq = 0, prev = 0;
    int known = 1, sorted = 1;

    for (guint i = 0; i < v->evs->len; i++) {
        struct ev *e = g_ptr_array_index(v->evs, i);

        if (e->seq < max_seen) {
            problem(v, "reordered", "event", e->id, e->seq, NULL, &e->loc,
                    "chain entry %" G_GINT64_FORMAT " is stored after entry %" G_GINT64_FORMAT,
                    e->seq, max_seen);
            sorted = 0;
        }
        if (e->seq > max_seen)
            max_seen = e->seq;
        g_ptr_array_add(order, e);
    }
    if (!sorted)
        g_ptr_array_sort(order, ev_by_seq);
    v->order = order;

    chain_genesis(h);
    for (guint i = 0; i < order->len; i++) {
        struct ev *e = g_ptr_array_index(order, i);
        struct irow *r = row_of(v->ir.chain, e->seq);
        gsize len;
        const void *b = g_bytes_get_data(e->bytes, &len);

        if (e->seq == prev) {
            problem(v, "reordered", "event", e->id, e->seq, NULL, &e->loc,
                    "a second chain entry %" G_GINT64_FORMAT, e->seq);
            continue;
        }
        if (e->seq != prev + 1) {
            struct irow *rb = row_of(v->ir.chain, e->seq - 1);

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
            known = rb != NULL;
            if (known)
                memcpy(h, rb->sha, CUS_SHA256_LEN);
        }
        prev = e->seq;
        if (known && e->h_known) {
            memcpy(h, e->h, CUS_SHA256_LEN);    /* hashed during the walk */
        } else if (known) {
            chain_step(h, b, len, h);
            memcpy(e->h, h, CUS_SHA256_LEN);
            e->h_known = 1;
        }
        if (r == NULL) {
            if (v->have_committed)
                problem(v, "missing", "index", e->id, e->seq, NULL, &e->loc,
                        "chain entry %" G_GINT64_FORMAT " is in the store but not in "
                        "index.db", e->seq);
        } else {
            if (known && memcmp(r->sha, h, CUS_SHA256_LEN) != 0)
                problem(v, "mismatch", "index", e->id, e->seq, NULL, &e->loc,
                        "index.db's hash for chain entry %" G_GINT64_FORMAT " is not the "
                        "one the events give", e->seq);
            if (r->loc.segment != e->loc.segment || r->loc.offset != e->loc.offset)
                problem(v, "misplaced", "event", e->id, e->seq, NULL, &e->loc,
                        "index.db says chain entry %" G_GINT64_FORMAT " is in seg-%06" PRIu32
                        ".cseg at offset %" PRIu64, e->seq, r->loc.segment, r->loc.offset);
            r->seen = 1;
        }
        if (e->seq > max_seq)
            max_seq = e->seq;
    }
    /* Rows of index.db with no event record. */
    for (guint i = 0; i < v->ir.chain->len; i++) {
        struct irow *r = &g_array_index(v->ir.chain, struct irow, i);

        if (!r->seen)
            problem(v, "missing", "event", r->msg, r->id, NULL, &r->loc,
                    "chain entry %" G_GINT64_FORMAT " is in index.db but its event record "
                    "is not in the store", r->id);
    }
    v->st->events = (gint64)v->evs->len;
    v->st->head_seq = max_seq;
    if (known && max_seq > 0)
        cus_hex(h, CUS_SHA256_LEN, v->st->head);
}

static void check_checkpoints(struct vfy *v)
{
    for (guint i = 0; i < v->cps->len; i++) {
        struct cpt *c = g_ptr_array_index(v->cps, i);
        const unsigned char *h;
        char *err = NULL;

        if (c->cp.seq > v->st->head_seq) {
            problem(v, "truncated", "checkpoint", 0, c->cp.seq, NULL, &c->loc,
                    "the checkpoint vouches for chain entry %" G_GINT64_FORMAT ", but the "
                    "chain ends at %" G_GINT64_FORMAT, c->cp.seq, v->st->head_seq);
        } else if (c->cp.seq > 0) {
            struct ev *e = ev_of(v, c->cp.seq);

            h = e != NULL && e->h_known ? e->h : NULL;
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
    if (v->have_committed && v->ir.n_cp != (gint64)v->cps->len)
        problem(v, v->ir.n_cp > (gint64)v->cps->len ? "missing" : "extra", "checkpoint", 0, 0,
                NULL, NULL, "index.db lists %" G_GINT64_FORMAT " checkpoints, the store "
                "holds %u", v->ir.n_cp, v->cps->len);
}

/* ---- objects against the chain and index.db ------------------------------ */

static guint sha_hash(gconstpointer p)
{
    const unsigned char *s = p;
    return (guint)s[0] | (guint)s[1] << 8 | (guint)s[2] << 16 | (guint)s[3] << 24;
}

static gboolean sha_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, CUS_SHA256_LEN) == 0;
}

/* Records by SHA-256, the first of each; a purged message's record that
 * awaits its segment's rewrite is not counted (the same bytes may have
 * been archived again since). */
static GHashTable *by_sha(GArray *objs)
{
    GHashTable *t = g_hash_table_new(sha_hash, sha_equal);

    for (guint i = 0; i < objs->len; i++) {
        struct obj *o = &g_array_index(objs, struct obj, i);
        if (o->pending == NULL && !g_hash_table_contains(t, o->sha))
            g_hash_table_insert(t, o->sha, o);
    }
    return t;
}

/* The object at loc (objs are in store order, so sorted by place). */
static struct obj *at_loc(GArray *objs, const struct store_loc *loc)
{
    guint lo = 0, hi = objs->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        struct obj *o = &g_array_index(objs, struct obj, mid);

        if (o->loc.segment == loc->segment && o->loc.offset == loc->offset)
            return o;
        if (loc_before(&o->loc, loc))
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The event at loc (evs are in store order). */
static struct ev *ev_at(GPtrArray *evs, const struct store_loc *loc)
{
    guint lo = 0, hi = evs->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        struct ev *e = g_ptr_array_index(evs, mid);

        if (e->loc.segment == loc->segment && e->loc.offset == loc->offset)
            return e;
        if (loc_before(&e->loc, loc))
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The purge event of message id, if one comes after chain entry seq. */
static struct ev *purge_of(struct vfy *v, gint64 id, gint64 after)
{
    struct ev *p = id > 0 && g_hash_table_size(v->purges) > 0 ?
                   g_hash_table_lookup(v->purges, &id) : NULL;

    return p != NULL && p->seq > after ? p : NULL;
}

/* Purge events by id and purged rows by id; records that index.db says
 * await their segment's rewrite are marked. */
static void prepare_purges(struct vfy *v)
{
    v->purges = g_hash_table_new(g_int64_hash, g_int64_equal);
    v->purged_rows = g_hash_table_new(g_int64_hash, g_int64_equal);
    v->gov = g_ptr_array_new();
    for (guint i = 0; i < v->evs->len; i++) {
        struct ev *e = g_ptr_array_index(v->evs, i);

        if (e->full == NULL && e->full_error == NULL)
            continue;           /* not a governance event (walk_work) */
        g_ptr_array_add(v->gov, e);
        if (strcmp(e->type, "purge") == 0 && e->id > 0 &&
            !g_hash_table_contains(v->purges, &e->id))
            g_hash_table_insert(v->purges, &e->id, e);
    }
    for (guint i = 0; i < v->ir.purged->len; i++) {
        struct prow *r = &g_array_index(v->ir.purged, struct prow, i);
        struct obj *o;

        g_hash_table_insert(v->purged_rows, &r->id, r);
        if (r->has_loc && (o = at_loc(v->msgs, &r->loc)) != NULL &&
            memcmp(o->sha, r->sha, CUS_SHA256_LEN) == 0)
            o->pending = r;
    }
}

static void check_objects(struct vfy *v)
{
    GHashTable *msgs;

    prepare_purges(v);
    msgs = by_sha(v->msgs);

    v->st->messages = v->msgs->len;
    /* A second copy of the same bytes is never written (unless the first
     * was purged since). */
    if (g_hash_table_size(msgs) != v->msgs->len) {
        for (guint i = 0; i < v->msgs->len; i++) {
            struct obj *o = &g_array_index(v->msgs, struct obj, i), *first;
            first = g_hash_table_lookup(msgs, o->sha);
            if (first != o && o->pending == NULL)
                problem(v, "extra", "message", 0, 0, o->sha, &o->loc,
                        "a second copy (the first is in seg-%06" PRIu32 ".cseg at offset %"
                        PRIu64 ")", first->loc.segment, first->loc.offset);
        }
    }
    /* What the chain names must be in the store. */
    for (guint i = 0; i < v->evs->len; i++) {
        struct ev *e = g_ptr_array_index(v->evs, i);
        int add = e->type != NULL && strcmp(e->type, "add") == 0;
        struct obj *o;

        if (e->has_msg && add && !e->msg_found && purge_of(v, e->id, e->seq) != NULL) {
            /* Purged: its record is gone (or awaits the rewrite, marked). */
        } else if (e->has_msg && add && !e->msg_found) {
            o = g_hash_table_lookup(msgs, e->msg);
            if (o == NULL)
                problem(v, "missing", "message", e->id, e->seq, e->msg, &e->loc,
                        "message %" G_GINT64_FORMAT " added by chain entry %" G_GINT64_FORMAT
                        " is not in the store", e->id, e->seq);
            else if (o->event_seq == 0) {
                o->event_seq = e->seq;
                o->event_id = e->id;
            }
        }
        if (e->delivery)
            v->st->deliveries++;
    }
    /* index.db's messages. */
    for (guint i = 0; i < v->ir.msgs->len; i++) {
        struct irow *r = &g_array_index(v->ir.msgs, struct irow, i);
        struct obj *o = g_hash_table_lookup(msgs, r->sha);

        if (v->have_committed && !loc_before(&r->loc, &v->committed))
            continue;
        if (purge_of(v, r->id, 0) != NULL) {
            problem(v, "extra", "index", r->id, purge_of(v, r->id, 0)->seq, r->sha, &r->loc,
                    "message %" G_GINT64_FORMAT " was purged (chain entry %" G_GINT64_FORMAT
                    "), but index.db still has it", r->id, purge_of(v, r->id, 0)->seq);
            continue;
        }
        if (o == NULL) {
            problem(v, "missing", "message", r->id, 0, r->sha, &r->loc,
                    "message %" G_GINT64_FORMAT " is not in the store%s", r->id,
                    at_loc(v->msgs, &r->loc) != NULL ?
                    " (another message is where index.db says it is)" : "");
            continue;
        }
        if (o->loc.segment != r->loc.segment || o->loc.offset != r->loc.offset) {
            struct obj *there = at_loc(v->msgs, &r->loc);
            char other[96] = "";

            if (there != NULL && there->event_id > 0)
                g_snprintf(other, sizeof(other), " (message %" G_GINT64_FORMAT " is there)",
                           there->event_id);
            problem(v, "misplaced", "message", r->id, o->event_seq, r->sha, &o->loc,
                    "index.db says message %" G_GINT64_FORMAT " is in seg-%06" PRIu32
                    ".cseg at offset %" PRIu64 "%s", r->id, r->loc.segment, r->loc.offset,
                    other);
        }
        if (o->event_seq == 0)
            problem(v, "extra", "message", r->id, 0, r->sha, &o->loc,
                    "message %" G_GINT64_FORMAT " is in no chain entry", r->id);
        else if (o->event_id != r->id)
            problem(v, "mismatch", "index", r->id, o->event_seq, r->sha, &o->loc,
                    "index.db gives the message of chain entry %" G_GINT64_FORMAT
                    " archive id %" G_GINT64_FORMAT ", the chain %" G_GINT64_FORMAT,
                    o->event_seq, r->id, o->event_id);
        o->index_id = r->id;
    }
    /* index.db's deliveries: each is held by a chain entry; which one,
     * index.db's chain table says (by place), the chain then by seq. A
     * moved event is reported once, as such, not for each row. */
    {
        GHashTable *seq_at = g_hash_table_new(g_int64_hash, g_int64_equal);
        GArray *keys = g_array_sized_new(FALSE, FALSE, sizeof(gint64), v->ir.chain->len);

        for (guint i = 0; i < v->ir.chain->len; i++) {
            struct irow *c = &g_array_index(v->ir.chain, struct irow, i);
            gint64 k = (gint64)((guint64)c->loc.segment << 40 | c->loc.offset);
            g_array_append_val(keys, k);
        }
        for (guint i = 0; i < v->ir.chain->len; i++)
            g_hash_table_insert(seq_at, &g_array_index(keys, gint64, i),
                                &g_array_index(v->ir.chain, struct irow, i));
        for (guint i = 0; i < v->ir.delivs->len; i++) {
            struct irow *r = &g_array_index(v->ir.delivs, struct irow, i);
            gint64 k = (gint64)((guint64)r->loc.segment << 40 | r->loc.offset);
            struct irow *c;
            struct ev *e;

            if (!r->has_loc || (v->have_committed && !loc_before(&r->loc, &v->committed)))
                continue;
            if (purge_of(v, r->msg, 0) != NULL) {
                problem(v, "extra", "index", r->msg, purge_of(v, r->msg, 0)->seq, NULL, &r->loc,
                        "delivery %" G_GINT64_FORMAT " of message %" G_GINT64_FORMAT ", which "
                        "was purged (chain entry %" G_GINT64_FORMAT "), is still in index.db",
                        r->id, r->msg, purge_of(v, r->msg, 0)->seq);
                continue;
            }
            c = g_hash_table_lookup(seq_at, &k);
            e = c != NULL ? ev_of(v, c->id) : ev_at(v->evs, &r->loc);
            if (c != NULL && e == NULL)
                continue;   /* the chain entry is missing: reported for it */
            if (e == NULL || !e->delivery)
                problem(v, "missing", "delivery", r->msg, 0, NULL, &r->loc,
                        "delivery %" G_GINT64_FORMAT " of message %" G_GINT64_FORMAT
                        ": no chain entry holds it where index.db says", r->id, r->msg);
            else if (e->deliv_row != 0)
                problem(v, "extra", "index", r->msg, e->seq, NULL, &r->loc,
                        "deliveries %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT " both say "
                        "they are chain entry %" G_GINT64_FORMAT, e->deliv_row, r->id, e->seq);
            else if (e->id != r->msg)
                problem(v, "mismatch", "index", r->msg, e->seq, NULL, &r->loc,
                        "delivery %" G_GINT64_FORMAT " is of message %" G_GINT64_FORMAT " in "
                        "index.db, of message %" G_GINT64_FORMAT " in the chain", r->id,
                        r->msg, e->id);
            else
                e->deliv_row = r->id;
        }
        g_hash_table_destroy(seq_at);
        g_array_unref(keys);
    }
    for (guint i = 0; i < v->evs->len; i++) {
        struct ev *e = g_ptr_array_index(v->evs, i);

        if (e->delivery && e->deliv_row == 0 && v->have_committed &&
            purge_of(v, e->id, e->seq) == NULL)
            problem(v, "missing", "index", e->id, e->seq, NULL, &e->loc,
                    "the delivery in chain entry %" G_GINT64_FORMAT " (message %"
                    G_GINT64_FORMAT ") is not in index.db", e->seq, e->id);
    }
    /* Objects of the store nothing (or only the chain) names. */
    for (guint i = 0; i < v->msgs->len; i++) {
        struct obj *o = &g_array_index(v->msgs, struct obj, i);
        struct ev *p;

        if (o->pending != NULL) {
            v->st->purge_pending++;     /* counted, not judged */
            continue;
        }
        if (o->index_id > 0 || g_hash_table_lookup(msgs, o->sha) != o)
            continue;
        if (o->event_seq != 0 && (p = purge_of(v, o->event_id, o->event_seq)) != NULL)
            problem(v, "extra", "message", o->event_id, p->seq, o->sha, &o->loc,
                    "message %" G_GINT64_FORMAT " was purged (chain entry %" G_GINT64_FORMAT
                    "), but its record is still in the store: not really gone",
                    o->event_id, p->seq);
        else if (o->event_seq != 0)
            problem(v, "missing", "index", o->event_id, o->event_seq, o->sha, &o->loc,
                    "message %" G_GINT64_FORMAT " (chain entry %" G_GINT64_FORMAT ") is "
                    "in the store but not in index.db", o->event_id, o->event_seq);
        else
            problem(v, "extra", "message", 0, 0, o->sha, &o->loc,
                    "a message in no chain entry and not in index.db");
    }
    for (guint i = 0; i < v->msgs->len; i++) {
        struct obj *o = &g_array_index(v->msgs, struct obj, i);

        if (o->bad != NULL)
            problem(v, "altered", "message", o->index_id > 0 ? o->index_id : o->event_id,
                    o->event_seq, o->sha, &o->loc, "%s", o->bad);
    }
    g_hash_table_destroy(msgs);
}

/* ---- governance: purges, holds, the audit log ------------------------------ */

static int str_same(const char *a, const char *b)
{
    return g_strcmp0(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

static void check_purges(struct vfy *v, GHashTable *adds)
{
    for (guint i = 0; i < v->gov->len; i++) {
        struct ev *e = g_ptr_array_index(v->gov, i), *a;
        struct prow *r;
        const char *rule;

        if (e->type == NULL || strcmp(e->type, "purge") != 0)
            continue;
        v->st->purged++;
        if (e->full == NULL) {
            problem(v, "altered", "event", e->id, e->seq, e->esha, &e->loc, "purge: %s",
                    e->full_error != NULL ? e->full_error : "not a chain event");
            continue;
        }
        a = e->id > 0 ? g_hash_table_lookup(adds, &e->id) : NULL;
        if (a == NULL || a->seq > e->seq || !e->has_msg ||
            memcmp(a->msg, e->msg, CUS_SHA256_LEN) != 0)
            problem(v, "mismatch", "event", e->id, e->seq, e->has_msg ? e->msg : NULL, &e->loc,
                    "chain entry %" G_GINT64_FORMAT " purges message %" G_GINT64_FORMAT
                    ", which no earlier chain entry added with that hash", e->seq, e->id);
        if (g_hash_table_lookup(v->purges, &e->id) != e) {
            problem(v, "extra", "event", e->id, e->seq, NULL, &e->loc, "message %"
                    G_GINT64_FORMAT " is purged a second time", e->id);
            continue;
        }
        r = g_hash_table_lookup(v->purged_rows, &e->id);
        rule = chain_event_get(e->full, "rule");
        if (r == NULL) {
            problem(v, "missing", "purged", e->id, e->seq, e->msg, &e->loc,
                    "the tombstone of message %" G_GINT64_FORMAT " (chain entry %"
                    G_GINT64_FORMAT ") is not in index.db", e->id, e->seq);
            continue;
        }
        r->seen = 1;
        if (r->seq != e->seq || r->time != e->time || !str_same(r->rule, rule) ||
            memcmp(r->sha, e->msg, CUS_SHA256_LEN) != 0)
            problem(v, "altered", "purged", e->id, e->seq, e->msg, &e->loc,
                    "index.db's tombstone of message %" G_GINT64_FORMAT " differs from chain "
                    "entry %" G_GINT64_FORMAT " (seq %" G_GINT64_FORMAT ", time %"
                    G_GINT64_FORMAT ", rule \"%s\" in index.db)", e->id, e->seq, r->seq,
                    r->time, r->rule != NULL ? r->rule : "");
        if (r->has_loc && (at_loc(v->msgs, &r->loc) == NULL ||
                           at_loc(v->msgs, &r->loc)->pending != r))
            problem(v, "mismatch", "purged", e->id, e->seq, e->msg, &r->loc,
                    "index.db says the record of purged message %" G_GINT64_FORMAT " awaits "
                    "the rewrite of its segment, but it is not there", e->id);
    }
    for (guint i = 0; i < v->ir.purged->len; i++) {
        struct prow *r = &g_array_index(v->ir.purged, struct prow, i);

        if (!r->seen)
            problem(v, "extra", "purged", r->id, r->seq, r->sha, NULL,
                    "index.db has a tombstone of message %" G_GINT64_FORMAT " (chain entry %"
                    G_GINT64_FORMAT "), but no purge of it is in the chain", r->id, r->seq);
    }
}

static void check_holds(struct vfy *v)
{
    GHashTable *rows = g_hash_table_new(g_int64_hash, g_int64_equal);

    for (guint i = 0; i < v->ir.holds->len; i++) {
        struct hrow *r = &g_array_index(v->ir.holds, struct hrow, i);
        g_hash_table_insert(rows, &r->id, r);
    }
    for (guint i = 0; i < v->gov->len; i++) {
        struct ev *e = g_ptr_array_index(v->gov, i);
        int place;
        const char *idstr, *name, *query, *note, *user;
        gint64 id;
        struct hrow *r;

        if (e->type == NULL || (strcmp(e->type, "hold") != 0 &&
                                strcmp(e->type, "hold-release") != 0))
            continue;
        place = strcmp(e->type, "hold") == 0;
        if (e->full == NULL) {
            problem(v, "altered", "event", 0, e->seq, e->esha, &e->loc, "%s: %s", e->type,
                    e->full_error != NULL ? e->full_error : "not a chain event");
            continue;
        }
        if (place)
            v->st->holds++;
        idstr = chain_event_get(e->full, "hold-id");
        name = chain_event_get(e->full, "name");
        query = chain_event_get(e->full, "query");
        note = chain_event_get(e->full, "note");
        user = chain_event_get(e->full, "user");
        id = idstr != NULL ? g_ascii_strtoll(idstr, NULL, 10) : 0;
        r = g_hash_table_lookup(rows, &id);
        if (r == NULL) {
            problem(v, "missing", "hold", 0, e->seq, NULL, &e->loc,
                    "hold %" G_GINT64_FORMAT " (\"%s\") %s by chain entry %" G_GINT64_FORMAT
                    " is not in index.db", id, name != NULL ? name : "",
                    place ? "placed" : "released", e->seq);
            continue;
        }
        if (!str_same(r->name, name) || !str_same(r->query, query) ||
            !str_same(r->note, note) ||
            (place ? r->seq != e->seq || r->created != e->time || !str_same(r->created_by, user)
                   : r->release_seq != e->seq || r->released != e->time ||
                     !str_same(r->released_by, user)))
            problem(v, "altered", "hold", 0, e->seq, NULL, &e->loc,
                    "hold %" G_GINT64_FORMAT " (\"%s\" in index.db) differs from chain entry %"
                    G_GINT64_FORMAT ", which %s it", id, r->name != NULL ? r->name : "",
                    e->seq, place ? "placed" : "released");
        if (place)
            r->seen = 1;
        else
            r->release_seen = 1;
    }
    for (guint i = 0; i < v->ir.holds->len; i++) {
        struct hrow *r = &g_array_index(v->ir.holds, struct hrow, i);

        if (!r->seen)
            problem(v, "extra", "hold", 0, r->seq, NULL, NULL, "hold %" G_GINT64_FORMAT
                    " (\"%s\") in index.db was placed by no chain entry", r->id,
                    r->name != NULL ? r->name : "");
        if ((r->released >= 0 || r->release_seq != 0) && !r->release_seen)
            problem(v, "extra", "hold", 0, r->release_seq, NULL, NULL, "hold %"
                    G_GINT64_FORMAT " (\"%s\") is released in index.db by no chain entry",
                    r->id, r->name != NULL ? r->name : "");
    }
    g_hash_table_destroy(rows);
}

/* The first field in which an audit row and its event differ, or NULL. */
static const char *audit_diff(const struct audit_entry *r, const struct audit_entry *e)
{
    if (r->time != e->time) return "at";
    if (!str_same(r->user, e->user)) return "user";
    if (r->uid != e->uid) return "uid";
    if (!str_same(r->command, e->command)) return "command";
    if (!str_same(r->args, e->args)) return "args";
    if (r->results != e->results) return "results";
    if (r->status != e->status) return "status";
    if (!str_same(r->detail, e->detail)) return "detail";
    if (r->seq != e->seq) return "seq (the chain entry that sealed it)";
    return NULL;
}

static gint cmp_i64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

static void check_audit(struct vfy *v)
{
    GHashTable *rows = g_hash_table_new(g_int64_hash, g_int64_equal);
    GHashTable *sealed = g_hash_table_new(g_int64_hash, g_int64_equal);
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    GArray *evids = g_array_new(FALSE, FALSE, sizeof(gint64));
    gint64 prev = 0;

    for (guint i = 0; i < v->ir.audit->len; i++) {
        struct audit_entry *r = g_ptr_array_index(v->ir.audit, i);
        g_hash_table_insert(rows, &r->id, r);
        g_array_append_val(ids, r->id);
    }
    for (guint i = 0; i < v->gov->len; i++) {
        struct ev *e = g_ptr_array_index(v->gov, i);
        struct audit_entry ae, *r;
        const char *diff;
        char *err = NULL;

        if (e->type == NULL || strcmp(e->type, "audit") != 0)
            continue;
        if (e->full == NULL || audit_from_event(e->full, &ae, &err) < 0) {
            problem(v, "altered", "event", 0, e->seq, e->esha, &e->loc, "audit: %s",
                    err != NULL ? err : e->full_error != NULL ? e->full_error :
                    "not a chain event");
            g_free(err);
            continue;
        }
        v->st->audit_entries++;
        g_array_append_val(evids, ae.id);
        r = g_hash_table_lookup(rows, &ae.id);
        if (r == NULL)
            problem(v, "missing", "audit", 0, e->seq, NULL, &e->loc,
                    "audit entry %" G_GINT64_FORMAT " (%s by %s, sealed by chain entry %"
                    G_GINT64_FORMAT ") is not in index.db", ae.id, ae.command, ae.user,
                    e->seq);
        else if ((diff = audit_diff(r, &ae)) != NULL)
            problem(v, "altered", "audit", 0, e->seq, NULL, &e->loc,
                    "audit entry %" G_GINT64_FORMAT " in index.db is not what chain entry %"
                    G_GINT64_FORMAT " sealed: %s differs", ae.id, e->seq, diff);
        audit_entry_clear(&ae);
    }
    for (guint i = 0; i < evids->len; i++)
        g_hash_table_add(sealed, &g_array_index(evids, gint64, i));
    for (guint i = 0; i < v->ir.audit->len; i++) {
        struct audit_entry *r = g_ptr_array_index(v->ir.audit, i);

        if (r->seq != 0 && !g_hash_table_contains(sealed, &r->id))
            problem(v, "extra", "audit", 0, r->seq, NULL, NULL,
                    "audit entry %" G_GINT64_FORMAT " (%s by %s) says chain entry %"
                    G_GINT64_FORMAT " sealed it, but no audit event holds it", r->id,
                    r->command != NULL ? r->command : "", r->user != NULL ? r->user : "",
                    r->seq);
    }
    /* AUTOINCREMENT gives ids without gaps: one is gone from both. */
    g_array_append_vals(ids, evids->data, evids->len);
    if (v->ir.audit_seq > 0)
        g_array_append_val(ids, v->ir.audit_seq);
    g_array_sort(ids, cmp_i64);
    for (guint i = 0; i < ids->len; i++) {
        gint64 id = g_array_index(ids, gint64, i);

        if (id > prev + 1) {
            if (id == prev + 2)
                problem(v, "missing", "audit", 0, 0, NULL, NULL, "audit entry %"
                        G_GINT64_FORMAT " is gone: in neither index.db nor the chain (deleted "
                        "before it was sealed)", prev + 1);
            else
                problem(v, "missing", "audit", 0, 0, NULL, NULL, "audit entries %"
                        G_GINT64_FORMAT " to %" G_GINT64_FORMAT " are gone: in neither "
                        "index.db nor the chain (deleted before they were sealed)", prev + 1,
                        id - 1);
        }
        if (id > prev)
            prev = id;
    }
    g_array_unref(ids);
    g_array_unref(evids);
    g_hash_table_destroy(sealed);
    g_hash_table_destroy(rows);
}

/* Each "incident" event against its row (by chain seq), both ways. */
static void check_incidents(struct vfy *v)
{
    GHashTable *rows = g_hash_table_new(g_int64_hash, g_int64_equal);
    GHashTable *seen = g_hash_table_new(g_int64_hash, g_int64_equal);

    for (guint i = 0; i < v->ir.incidents->len; i++) {
        struct incident *r = g_ptr_array_index(v->ir.incidents, i);
        g_hash_table_insert(rows, &r->seq, r);
    }
    for (guint i = 0; i < v->gov->len; i++) {
        struct ev *e = g_ptr_array_index(v->gov, i);
        struct incident ei, *r;
        const char *diff;
        char *err = NULL;

        if (e->type == NULL || strcmp(e->type, "incident") != 0)
            continue;
        if (e->full == NULL || incident_from_event(e->full, &ei, &err) < 0) {
            problem(v, "altered", "event", e->id, e->seq, e->esha, &e->loc, "incident: %s",
                    err != NULL ? err : e->full_error != NULL ? e->full_error :
                    "not a chain event");
            g_free(err);
            continue;
        }
        v->st->incidents++;
        r = g_hash_table_lookup(rows, &e->seq);
        if (r == NULL)
            problem(v, "missing", "incident", ei.msg, e->seq, NULL, &e->loc,
                    "incident %s (%s, message %" G_GINT64_FORMAT ") of chain entry %"
                    G_GINT64_FORMAT " is not in index.db", ei.rule, ei.action, ei.msg, e->seq);
        else if ((diff = incident_diff(r, &ei)) != NULL)
            problem(v, "altered", "incident", ei.msg, e->seq, NULL, &e->loc,
                    "incident of chain entry %" G_GINT64_FORMAT " in index.db differs from "
                    "the event in %s", e->seq, diff);
        if (r != NULL)
            g_hash_table_add(seen, &r->seq);
        incident_clear(&ei);
    }
    for (guint i = 0; i < v->ir.incidents->len; i++) {
        struct incident *r = g_ptr_array_index(v->ir.incidents, i);

        if (!g_hash_table_contains(seen, &r->seq))
            problem(v, "extra", "incident", r->msg, r->seq, NULL, NULL,
                    "incident %s (%s, message %" G_GINT64_FORMAT ") in index.db says chain "
                    "entry %" G_GINT64_FORMAT ", which is no incident event", r->rule,
                    r->action, r->msg, r->seq);
    }
    g_hash_table_destroy(rows);
    g_hash_table_destroy(seen);
}

static void check_governance(struct vfy *v)
{
    GHashTable *adds = g_hash_table_new(g_int64_hash, g_int64_equal);

    /* The add of each purged id (few of them: no table of every add). */
    for (guint i = 0; i < v->evs->len && g_hash_table_size(v->purges) > 0; i++) {
        struct ev *e = g_ptr_array_index(v->evs, i);

        if (e->delivery && e->type[0] == 'a' && g_hash_table_contains(v->purges, &e->id) &&
            !g_hash_table_contains(adds, &e->id))
            g_hash_table_insert(adds, &e->id, e);
    }
    check_purges(v, adds);
    check_holds(v);
    check_audit(v);
    check_incidents(v);
    g_hash_table_destroy(adds);
}

/* Each purged message, in chain order. */
static void report_purged(struct vfy *v)
{
    if (v->purged_cb == NULL || v->order == NULL || g_hash_table_size(v->purges) == 0)
        return;
    for (guint i = 0; i < v->order->len; i++) {
        struct ev *e = g_ptr_array_index(v->order, i);
        struct verify_purged p;
        struct prow *r;
        const char *archived;

        if (e->type == NULL || strcmp(e->type, "purge") != 0 || e->full == NULL ||
            g_hash_table_lookup(v->purges, &e->id) != e)
            continue;
        memset(&p, 0, sizeof(p));
        p.id = e->id;
        p.seq = e->seq;
        p.time = e->time;
        archived = chain_event_get(e->full, "archived");
        p.archived = archived != NULL ? g_ascii_strtoll(archived, NULL, 10) : 0;
        if (e->has_msg)
            cus_hex(e->msg, CUS_SHA256_LEN, p.sha256);
        p.rule = chain_event_get(e->full, "rule");
        r = g_hash_table_lookup(v->purged_rows, &e->id);
        p.pending = r != NULL && r->has_loc;
        v->purged_cb(v->ctx, &p);
    }
}

/* ---- the run ------------------------------------------------------------- */

static guint64 segment_bytes(const char *arcdir, int *n_r, GArray *nums)
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
            guint32 num = (guint32)strtoul(n + 4, NULL, 10);
            sum += (guint64)sb.st_size;
            (*n_r)++;
            g_array_append_val(nums, num);
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
    return verify_run_ex(cfg, threads, cb, NULL, ctx, stats, error_r);
}

static void prow_clear(gpointer p)
{
    g_free(((struct prow *)p)->rule);
}

static void hrow_clear(gpointer p)
{
    struct hrow *r = p;

    g_free(r->name);
    g_free(r->query);
    g_free(r->note);
    g_free(r->created_by);
    g_free(r->released_by);
}

#define VERIFY_ATTEMPTS 3

/* One run; *again_r set (and nothing said) if retention rewrote a segment
 * between the index snapshot and the end of the walk: the snapshot's
 * locations may not be those of the files read. The last attempt goes on
 * regardless. */
static int verify_attempt(const struct cfg *cfg, int threads, verify_cb *cb,
                          verify_purged_cb *purged_cb, void *ctx, struct verify_stats *stats,
                          int attempt, int *again_r, char **error_r)
{
    int last = attempt == VERIFY_ATTEMPTS - 1;
    struct vfy v;
    struct store *st = NULL;
    struct idx *idx = NULL;
    struct store_opts so;
    struct store_walk_opts wo;
    struct store_loc end;
    GThread *reader = NULL;
    char *path = g_build_filename(cfg->arc_dir, "index.db", NULL), *val = NULL, *err = NULL;
    char *rw0 = NULL, *rw1 = NULL;
    double t0 = cus_now();
    int ret = -1;

    memset(stats, 0, sizeof(*stats));
    memset(&v, 0, sizeof(v));
    v.holding = 1;
    v.held = g_array_new(FALSE, FALSE, sizeof(struct verify_problem));
    v.cfg = cfg;
    v.cb = cb;
    v.ctx = ctx;
    v.st = stats;
    v.msgs = g_array_new(FALSE, FALSE, sizeof(struct obj));
    v.evs = g_ptr_array_new_with_free_func(ev_free);
    v.cps = g_ptr_array_new_with_free_func(cpt_free);
    v.last_msg = -1;
    chain_genesis(v.run_h);
    v.ir.msgs = g_array_new(FALSE, FALSE, sizeof(struct irow));
    v.ir.delivs = g_array_new(FALSE, FALSE, sizeof(struct irow));
    v.ir.chain = g_array_new(FALSE, FALSE, sizeof(struct irow));
    v.ir.purged = g_array_new(FALSE, FALSE, sizeof(struct prow));
    g_array_set_clear_func(v.ir.purged, prow_clear);
    v.ir.holds = g_array_new(FALSE, FALSE, sizeof(struct hrow));
    g_array_set_clear_func(v.ir.holds, hrow_clear);
    v.ir.audit = g_ptr_array_new_with_free_func((GDestroyNotify)audit_entry_free);
    v.ir.incidents = g_ptr_array_new_with_free_func((GDestroyNotify)incident_free);
    v.purged_cb = purged_cb;

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
    /* One snapshot of index.db for the whole run, read once, sequentially:
     * plain reads (a fault per page of a memory map cost more). */
    sqlite3_exec(idx_db(idx), "PRAGMA mmap_size=0; PRAGMA cache_size=-2048", NULL, NULL, NULL);
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
    /* A segment rewrite committed but not yet in place: index.db describes
     * the .rewrite files (retention.h). */
    g_free(val);
    val = NULL;
    if (idx_meta_get(idx, "rewrites", &rw0, error_r) < 0 ||
        idx_meta_get(idx, "rewrite", &val, error_r) < 0)
        goto out;
    if (val != NULL) {
        char **nums = g_strsplit(val, " ", -1);

        for (int i = 0; nums[i] != NULL; i++) {
            guint64 n = g_ascii_strtoull(nums[i], NULL, 10);
            if (n > 0 && n <= G_MAXUINT32)
                store_rewrite_prefer(st, (uint32_t)n);
        }
        g_strfreev(nums);
    }
    {
        GArray *nums = g_array_new(FALSE, FALSE, sizeof(guint32));
        guint32 want = 1;

        stats->segment_bytes = segment_bytes(cfg->arc_dir, &stats->segments, nums);
        g_array_sort(nums, cmp_u32);
        for (guint i = 0; i < nums->len; i++, want++) {
            guint32 got = g_array_index(nums, guint32, i);
            for (; want < got; want++) {
                struct store_loc l = { want, 0, 0 };
                problem(&v, "missing", "segment", 0, 0, NULL, &l,
                        "seg-%06u.cseg is not there (the segments go up to seg-%06u.cseg)",
                        want, g_array_index(nums, guint32, nums->len - 1));
            }
        }
        g_array_unref(nums);
    }
    if (store_tell(st, &end, error_r) < 0)
        goto out;
    if (v.have_committed && loc_before(&end, &v.committed))
        problem(&v, "truncated", "segment", 0, 0, NULL, &end,
                "the store ends here, but index.db committed records up to seg-%06" PRIu32
                ".cseg offset %" PRIu64, v.committed.segment, v.committed.offset);
    if (attempt == 0 && g_strcmp0(getenv("CUSTOS_FAULT"), "verify-snapshot") == 0)
        raise(SIGSTOP);         /* tests: a retention run rewrites segments now */
    /* index.db is read by a thread of its own meanwhile. */
    v.ir.db = idx_db(idx);
    reader = g_thread_new("index", read_index, &v.ir);
    memset(&wo, 0, sizeof(wo));
    wo.threads = threads;
    wo.flags = STORE_WALK_REPORT_TAIL;
    wo.data_kinds = 1u << STORE_EVENT | 1u << STORE_CHECKPOINT;
    wo.work = walk_work;
    wo.aux_free = aux_free;
    ret = store_walk_par(st, &wo, walk_cb, &v, error_r);
    g_thread_join(reader);
    reader = NULL;
    if (ret < 0)
        goto out;
    ret = -1;
    if (v.ir.error != NULL) {
        cus_error(error_r, "%s", v.ir.error);
        goto out;
    }
    rw1 = rewrites_now(path);
    if (g_strcmp0(rw0, rw1) != 0 && !last) {
        log_info("verify: retention rewrote segments meanwhile; starting again");
        *again_r = 1;
        ret = 0;
        goto out;
    }
    if (g_strcmp0(rw0, rw1) != 0)
        log_warn("verify: retention rewrote segments while verify ran; what it says about "
                 "them may be out of date: run it again");
    problems_release(&v);
    log_debug("verify: segments read and decoded in %.3f s", cus_now() - t0);
    check_chain(&v);
    log_debug("verify: chain checked at %.3f s", cus_now() - t0);
    check_checkpoints(&v);
    check_objects(&v);
    check_governance(&v);
    report_purged(&v);
    log_debug("verify: checked in %.3f s", cus_now() - t0);
    ret = 0;
out:
    stats->seconds = cus_now() - t0;
    if (idx != NULL)
        sqlite3_exec(idx_db(idx), "COMMIT", NULL, NULL, NULL);
    idx_close(&idx);
    store_close(&st);
    chain_key_free(&v.pub);
    if (v.order != NULL)
        g_ptr_array_unref(v.order);
    for (guint i = 0; i < v.msgs->len; i++)
        g_free(g_array_index(v.msgs, struct obj, i).bad);
    g_array_unref(v.msgs);
    g_ptr_array_unref(v.evs);
    g_ptr_array_unref(v.cps);
    g_array_unref(v.ir.msgs);
    g_array_unref(v.ir.delivs);
    g_array_unref(v.ir.chain);
    g_array_unref(v.ir.purged);
    g_array_unref(v.ir.holds);
    g_ptr_array_unref(v.ir.audit);
    g_ptr_array_unref(v.ir.incidents);
    if (v.purges != NULL)
        g_hash_table_destroy(v.purges);
    if (v.gov != NULL)
        g_ptr_array_unref(v.gov);
    if (v.purged_rows != NULL)
        g_hash_table_destroy(v.purged_rows);
    g_free(v.ir.error);
    if (ret < 0 && v.holding)
        problems_release(&v);   /* what was found before the failure */
    for (guint i = 0; i < v.held->len; i++)
        g_free((char *)g_array_index(v.held, struct verify_problem, i).detail);
    g_array_unref(v.held);
    g_free(rw0);
    g_free(rw1);
    g_free(val);
    g_free(path);
    return ret;
}

int verify_run_ex(const struct cfg *cfg, int threads, verify_cb *cb,
                  verify_purged_cb *purged_cb, void *ctx, struct verify_stats *stats,
                  char **error_r)
{
    int ret;

    for (int attempt = 0;; attempt++) {
        int again = 0;

        ret = verify_attempt(cfg, threads, cb, purged_cb, ctx, stats, attempt, &again,
                             error_r);
        if (ret < 0 || !again)
            return ret;
    }
}
