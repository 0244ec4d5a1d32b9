/*
 * replay.c - index what the segments hold: roll forward after a crash,
 * and custos-archive reindex
 *
 * The store's records come in the order they were written. A group (see
 * archive.h) is buffered until its chain event, which names the archive id
 * and the message and holds the delivery; then it is applied in one
 * savepoint. Message bytes are
 * parsed here (the same parser as at archive time, so the same rows).
 */
#include <string.h>
#include "custos/chain.h"
#include "custos/log.h"
#include "custos/replay.h"
#include "custos/audit.h"
#include "custos/directory.h"
#include "custos/incident.h"
#include "custos/retention.h"

struct pend {
    enum store_kind kind;
    unsigned char sha[CUS_SHA256_LEN];
    struct store_loc loc;
    GBytes *data;           /* NULL if it did not decode */
};

/* An "add" whose message record is not in the store (yet to be explained
 * by a "purge"). */
struct open_add {
    gint64 seq;
    struct store_loc loc;
};

struct replay {
    struct idx *idx;
    struct store *store;    /* during replay_run() */
    GHashTable *open_adds;  /* archive id (gint64 *) -> struct open_add * */
    const struct msg_limits *lim;
    gint64 seq;
    unsigned char head[CUS_SHA256_LEN];
    GArray *pend;           /* struct pend: the open group */
    struct store_loc complete_end;
    struct replay_stats st;
    char *fatal;            /* an index error: stop */
};

static void pend_clear(struct replay *rp)
{
    for (guint i = 0; i < rp->pend->len; i++) {
        struct pend *p = &g_array_index(rp->pend, struct pend, i);
        if (p->data != NULL)
            g_bytes_unref(p->data);
    }
    g_array_set_size(rp->pend, 0);
}

struct replay *replay_new(struct idx *idx, const struct msg_limits *lim, gint64 seq,
                          const unsigned char head[CUS_SHA256_LEN])
{
    struct replay *rp = g_new0(struct replay, 1);

    rp->idx = idx;
    rp->lim = lim;
    rp->seq = seq;
    memcpy(rp->head, head, CUS_SHA256_LEN);
    rp->pend = g_array_new(FALSE, TRUE, sizeof(struct pend));
    rp->open_adds = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    rp->st.seq = seq;
    return rp;
}

void replay_free(struct replay **rpp)
{
    struct replay *rp = *rpp;

    if (rp == NULL)
        return;
    pend_clear(rp);
    g_array_unref(rp->pend);
    g_hash_table_destroy(rp->open_adds);
    g_free(rp->fatal);
    g_free(rp);
    *rpp = NULL;
}

void replay_stats(struct replay *rp, struct replay_stats *stats,
                  struct store_loc *complete_end)
{
    *stats = rp->st;
    stats->pending = rp->pend->len;
    stats->seq = rp->seq;
    if (complete_end != NULL)
        *complete_end = rp->complete_end;
}

static const struct pend *pend_find(struct replay *rp, enum store_kind kind, const char *hex)
{
    unsigned char sha[CUS_SHA256_LEN];

    if (hex == NULL || cus_unhex(hex, sha, CUS_SHA256_LEN) < 0)
        return NULL;
    for (guint i = 0; i < rp->pend->len; i++) {
        const struct pend *p = &g_array_index(rp->pend, struct pend, i);
        if (p->kind == kind && memcmp(p->sha, sha, CUS_SHA256_LEN) == 0)
            return p;
    }
    return NULL;
}

/* The delivery an "add" or "deliver" event holds, back into an envelope;
 * its rows go to message id, located at the event record. */
static int apply_delivery(struct replay *rp, const struct chain_event *ev,
                          const struct store_loc *loc, gint64 id, char **error_r)
{
    GPtrArray *rcpts = g_ptr_array_new();
    struct idx_envelope env;
    const char *received = chain_event_get(ev, "received");
    int ret;

    memset(&env, 0, sizeof(env));
    env.time = received != NULL ? g_ascii_strtoll(received, NULL, 10) : ev->time;
    env.sender = chain_event_get(ev, "sender");
    env.client = chain_event_get(ev, "client");
    env.queue_id = chain_event_get(ev, "queue-id");
    env.source = chain_event_get(ev, "source");
    env.spool_id = chain_event_get(ev, "spool-id");
    if (env.sender == NULL || env.client == NULL || env.queue_id == NULL || env.source == NULL) {
        g_ptr_array_unref(rcpts);
        return cus_error(error_r, "chain event %" G_GINT64_FORMAT ": a delivery field is "
                         "missing", ev->seq);
    }
    for (guint i = 0; i + 1 < ev->fields->len; i += 2)
        if (strcmp(g_ptr_array_index(ev->fields, i), "rcpt") == 0)
            g_ptr_array_add(rcpts, g_ptr_array_index(ev->fields, i + 1));
    g_ptr_array_add(rcpts, NULL);
    env.rcpts = (const char *const *)rcpts->pdata;
    ret = idx_add_delivery(rp->idx, id, &env, loc, error_r);
    g_ptr_array_unref(rcpts);
    return ret;
}

/* Apply the open group, closed by this event. Problems in the group are
 * the caller's to count; -1 and *fatal for index errors. */
static int apply_event(struct replay *rp, const struct store_rec *rec, GBytes *data,
                       char **error_r)
{
    struct chain_event *ev = NULL;
    unsigned char head[CUS_SHA256_LEN];
    gsize len;
    const char *text = g_bytes_get_data(data, &len);
    const char *idstr, *mhex;
    const struct pend *m = NULL;
    int delivery, open_add = 0;
    gint64 id = 0;
    char *err = NULL, *gerr = NULL;
    int ret = -1;

    if (chain_event_parse(text, len, &ev, &err) < 0)
        goto bad;
    if (ev->seq != rp->seq + 1) {
        err = g_strdup_printf("chain event seq %" G_GINT64_FORMAT " where %" G_GINT64_FORMAT
                              " was expected", ev->seq, rp->seq + 1);
        goto bad;
    }
    idstr = chain_event_get(ev, "id");
    mhex = chain_event_get(ev, "message");
    if (idstr != NULL)
        id = g_ascii_strtoll(idstr, NULL, 10);
    delivery = strcmp(ev->type, "add") == 0 || strcmp(ev->type, "deliver") == 0;
    /* A damaged group still leaves its chain entry: the chain goes on. */
    if (delivery && (id <= 0 || mhex == NULL)) {
        gerr = g_strdup_printf("chain event %" G_GINT64_FORMAT " (%s) lacks id or message",
                               ev->seq, ev->type);
    } else if (strcmp(ev->type, "add") == 0) {
        m = pend_find(rp, STORE_MESSAGE, mhex);
        if (m != NULL && m->data == NULL)
            gerr = g_strdup_printf("chain event %" G_GINT64_FORMAT " (add, message id %"
                                   G_GINT64_FORMAT "): its message record is damaged; the "
                                   "message is not indexed", ev->seq, id);
        else if (m == NULL)
            open_add = 1;   /* purged later, or missing: the end of the walk says */
    }
    if (idx_savepoint(rp->idx, error_r) < 0)
        goto fatal;
    if (gerr == NULL) {
        if (idx_savepoint(rp->idx, error_r) < 0)
            goto fatal;
        if (m != NULL) {
            struct msg *msg = NULL;
            gsize rlen;
            const void *raw = g_bytes_get_data(m->data, &rlen);
            gint64 got = 0;

            if (msg_parse(raw, rlen, rp->lim, &msg, &err) < 0) {
                msg = msg_new_unparsed(err);
                g_free(err);
                err = NULL;
            }
            ret = idx_add_message(rp->idx, m->sha, &m->loc, rlen, msg, ev->time, id, &got,
                                  &err);
            msg_free(&msg);
            if (ret == 0)
                rp->st.messages++;
        } else {
            ret = 0;
        }
        if (ret == 0 && delivery) {
            ret = apply_delivery(rp, ev, &rec->loc, id, &err);
            if (ret == 0)
                rp->st.deliveries++;
        } else if (ret == 0 && strcmp(ev->type, "audit") == 0) {
            ret = audit_apply_event(rp->idx, ev, &err);
        } else if (ret == 0 && strcmp(ev->type, "incident") == 0) {
            ret = incident_apply_event(rp->idx, ev, &err);
        } else if (ret == 0 && strcmp(ev->type, "directory") == 0) {
            ret = dir_apply_event(rp->idx, ev, &err);
        } else if (ret == 0 && (strcmp(ev->type, "purge") == 0 ||
                                strcmp(ev->type, "hold") == 0 ||
                                strcmp(ev->type, "hold-release") == 0)) {
            ret = retention_apply_event(rp->idx, rp->store, rp->lim, ev, &err);
            if (ret == 0 && id > 0 && strcmp(ev->type, "purge") == 0)
                g_hash_table_remove(rp->open_adds, &id);
        }
        if (ret == 0 && open_add) {
            struct open_add *o = g_new0(struct open_add, 1);

            o->seq = ev->seq;
            o->loc = rec->loc;
            g_hash_table_replace(rp->open_adds, g_memdup2(&id, sizeof(id)), o);
        }
        if (ret < 0) {
            idx_rollback_savepoint(rp->idx);
            gerr = g_strdup_printf("chain event %" G_GINT64_FORMAT ": %s", ev->seq, err);
            g_free(err);
            err = NULL;
        } else if (idx_release(rp->idx, error_r) < 0) {
            goto fatal;
        }
    }
    chain_step(rp->head, text, len, head);
    if (idx_add_chain(rp->idx, ev->seq, ev->time, ev->type, gerr == NULL ? id : 0, head,
                      &rec->loc, &err) < 0)
        goto undo;
    if (idx_release(rp->idx, error_r) < 0)
        goto fatal;
    memcpy(rp->head, head, CUS_SHA256_LEN);
    rp->seq = ev->seq;
    rp->st.events++;
    chain_event_free(&ev);
    if (gerr != NULL) {
        cus_error(error_r, "seg-%06u.cseg offset %" G_GUINT64_FORMAT ": %s",
                  rec->loc.segment, rec->loc.offset, gerr);
        g_free(gerr);
        return -1;
    }
    return 0;
undo:
    idx_rollback_savepoint(rp->idx);
    cus_error(error_r, "chain event %" G_GINT64_FORMAT " at seg-%06u.cseg offset %"
              G_GUINT64_FORMAT ": %s", ev->seq, rec->loc.segment, rec->loc.offset, err);
    g_free(err);
    g_free(gerr);
    chain_event_free(&ev);
    return -1;
fatal:
    rp->fatal = g_strdup(*error_r);
    chain_event_free(&ev);
    g_free(gerr);
    return -1;
bad:
    cus_error(error_r, "seg-%06u.cseg offset %" G_GUINT64_FORMAT ": %s",
              rec->loc.segment, rec->loc.offset, err);
    g_free(err);
    chain_event_free(&ev);
    return -1;
}

static int apply_checkpoint(struct replay *rp, const struct store_rec *rec, GBytes *data,
                            char **error_r)
{
    struct chain_checkpoint cp;
    gsize len;
    const char *text = g_bytes_get_data(data, &len);
    char *err = NULL;

    if (chain_checkpoint_parse(text, len, &cp, &err) < 0) {
        cus_error(error_r, "seg-%06u.cseg offset %" G_GUINT64_FORMAT ": %s",
                  rec->loc.segment, rec->loc.offset, err);
        g_free(err);
        return -1;
    }
    if (idx_add_checkpoint(rp->idx, cp.seq, cp.time, cp.hash, cp.key,
                           cp.is_signed ? cp.sig : NULL, sizeof(cp.sig), &rec->loc,
                           error_r) < 0) {
        rp->fatal = g_strdup(*error_r);
        return -1;
    }
    rp->st.checkpoints++;
    return 0;
}

static void unit_done(struct replay *rp, const struct store_rec *rec)
{
    rp->complete_end.segment = rec->loc.segment;
    rp->complete_end.offset = rec->loc.offset + rec->loc.length;
}

/* After a failed apply: -1 to stop on an index error, else the problem is
 * logged and counted and the walk goes on. err is freed. */
static int problem(struct replay *rp, char *err)
{
    if (rp->fatal == NULL) {
        log_error("%s", err);
        rp->st.problems++;
    }
    g_free(err);
    return rp->fatal != NULL ? -1 : 0;
}

static int replay_cb(void *ctx, const struct store_rec *rec, GBytes *data)
{
    struct replay *rp = ctx;
    char *err = NULL;

    if (rec->error != NULL) {
        log_error("%s", rec->error);
        rp->st.problems++;
        if (rec->kind != STORE_MESSAGE)
            return 0;
    }
    switch (rec->kind) {
    case STORE_MESSAGE: {
        struct pend p = { .kind = rec->kind, .loc = rec->loc };

        memcpy(p.sha, rec->sha, CUS_SHA256_LEN);
        p.data = data != NULL ? g_bytes_ref(data) : NULL;
        g_array_append_val(rp->pend, p);
        return 0;
    }
    case STORE_EVENT:
        if (apply_event(rp, rec, data, &err) < 0 && problem(rp, err) < 0)
            return -1;
        pend_clear(rp);
        unit_done(rp, rec);
        return 0;
    case STORE_CHECKPOINT:
        if (apply_checkpoint(rp, rec, data, &err) < 0 && problem(rp, err) < 0)
            return -1;
        if (rp->pend->len == 0)
            unit_done(rp, rec);
        return 0;
    case STORE_DICT:
        if (rp->pend->len == 0)
            unit_done(rp, rec);
        return 0;
    case STORE_DELIVERY:    /* not written any more */
    default:
        log_error("seg-%06u.cseg offset %" G_GUINT64_FORMAT ": record of unknown kind %d",
                  rec->loc.segment, rec->loc.offset, (int)rec->kind);
        rp->st.problems++;
        return 0;
    }
}

/* The adds no purge explained: their message records are missing. Their
 * rows go, their chain entries name no message (as for a group that could
 * not be applied). -1 only for index errors. */
static int close_open_adds(struct replay *rp, char **error_r)
{
    sqlite3 *db = idx_db(rp->idx);
    GHashTableIter it;
    gpointer k, v;
    sqlite3_stmt *st[3] = { NULL, NULL, NULL };
    static const char *const sql[3] = {
        "DELETE FROM rcpts WHERE msg = ?", "DELETE FROM deliveries WHERE msg = ?",
        "UPDATE chain SET msg = NULL WHERE msg = ?",
    };
    int ret = -1;

    for (int i = 0; i < 3; i++)
        if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK) {
            cus_error(error_r, "index: %s", sqlite3_errmsg(db));
            goto out;
        }
    g_hash_table_iter_init(&it, rp->open_adds);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        gint64 id = *(gint64 *)k;
        const struct open_add *o = v;

        log_error("seg-%06u.cseg offset %" G_GUINT64_FORMAT ": chain event %" G_GINT64_FORMAT
                  " (add, message id %" G_GINT64_FORMAT "): its message record is missing "
                  "(and no purge says why); the message is not indexed", o->loc.segment,
                  o->loc.offset, o->seq, id);
        rp->st.problems++;
        for (int i = 0; i < 3; i++) {
            sqlite3_bind_int64(st[i], 1, id);
            if (sqlite3_step(st[i]) != SQLITE_DONE) {
                cus_error(error_r, "index: %s", sqlite3_errmsg(db));
                goto out;
            }
            if (i == 1)
                rp->st.deliveries -= sqlite3_changes(db);
            sqlite3_reset(st[i]);
        }
    }
    g_hash_table_remove_all(rp->open_adds);
    ret = 0;
out:
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(st[i]);
    return ret;
}

int replay_run(struct replay *rp, struct store *st, const struct store_loc *from,
               char **error_r)
{
    struct store_walk_opts o = { .threads = 0 };
    int ret;

    if (from != NULL)
        o.from = *from;
    rp->complete_end = o.from;
    rp->store = st;
    ret = store_walk_par(st, &o, replay_cb, rp, error_r);
    rp->store = NULL;
    if (ret != 0 && rp->fatal != NULL) {
        cus_error(error_r, "%s", rp->fatal);
        return -1;
    }
    if (ret < 0)
        return -1;
    return close_open_adds(rp, error_r);
}
