/*
 * retention.c - retention periods, legal holds, purges and the segment
 * rewrite that makes purged bytes really gone; see retention.h
 *
 * Which messages are past their period is worked out in SQL, in temporary
 * tables of the connection: ret_match (message -> the longest period of
 * the departments and rules that apply, as the cutoff time), ret_held
 * (messages an active hold covers). Promises: nothing is purged that a hold
 * covers at the time of the run; a purge is all of its rows and its chain
 * event or none; the store keeps every byte of a record until index.db has
 * committed that it is gone, and a crash at any point is finished by the
 * next writer.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "custos/audit.h"
#include "custos/log.h"
#include "custos/query.h"
#include "custos/retention.h"
#include "custos/tok.h"
#include "custos/util.h"

/* Segments rewritten under one index.db transaction, at most this many
 * bytes of them (their .rewrite copies exist side by side meanwhile). */
#define RET_GROUP_BYTES (2ULL << 30)
#define HOLD_NAME_MAX 128
#define HOLD_NOTE_MAX 4096

/* Tests stop the process at a named point (a kill, as far as the files
 * can tell): CUSTOS_FAULT=POINT. */
static void fault_point(const char *point)
{
    const char *f = getenv("CUSTOS_FAULT");

    if (f != NULL && strcmp(f, point) == 0)
        raise(SIGKILL);
}

static int db_fail(sqlite3 *db, const char *what, char **error_r)
{
    return cus_error(error_r, "%s: %s: %s", sqlite3_db_filename(db, "main"), what,
                     sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, char **error_r)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cus_error(error_r, "%s: %s", sqlite3_db_filename(db, "main"),
                  msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char **error_r)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(db, "prepare", error_r);
    return 0;
}

/* Step a statement that returns no rows, and finalize it. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, char **error_r)
{
    int ret = 0;

    if (sqlite3_step(st) != SQLITE_DONE)
        ret = db_fail(db, what, error_r);
    sqlite3_finalize(st);
    return ret;
}

/* The time of chain entry seq. */
static int chain_time(sqlite3 *db, gint64 seq, gint64 *time_r, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;

    if (prepare(db, "SELECT time FROM chain WHERE seq = ?", &st, error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *time_r = sqlite3_column_int64(st, 0);
        ret = 0;
    } else {
        cus_error(error_r, "chain entry %" G_GINT64_FORMAT " is not in index.db", seq);
    }
    sqlite3_finalize(st);
    return ret;
}

/* ---- the plan: what is past its period ---------------------------------- */

/* The time before which a message archived is past period p at now;
 * G_MININT64 for forever. */
static gint64 period_cutoff(const struct cfg_period *p, gint64 now)
{
    GDateTime *t = g_date_time_new_from_unix_utc(now), *c = NULL;
    gint64 r = G_MININT64;

    if (t == NULL)
        return r;
    switch (p->unit) {
    case 'd': c = g_date_time_add_days(t, -p->n); break;
    case 'w': c = g_date_time_add_weeks(t, -p->n); break;
    case 'm': c = g_date_time_add_months(t, -p->n); break;
    case 'y': c = g_date_time_add_years(t, -p->n); break;
    }
    if (c != NULL) {
        r = g_date_time_to_unix(c);
        g_date_time_unref(c);
    }
    g_date_time_unref(t);
    return r;
}

char *retention_rules(const struct cfg *cfg)
{
    GString *s = g_string_new(NULL);
    char p[16];

    cfg_period_format(&cfg->ret_default, p, sizeof(p));
    g_string_append_printf(s, "default %s", p);
    for (size_t i = 0; i < cfg->n_ret_rules; i++) {
        const struct cfg_retention *r = &cfg->ret_rules[i];

        cfg_period_format(&r->period, p, sizeof(p));
        g_string_append_printf(s, "; %s.%s %s", r->kind == CFG_RET_DEPARTMENT ? "department"
                               : "rule", r->name, p);
    }
    return g_string_free(s, FALSE);
}

/* Prepare fmt, an SQL statement over "messages m" whose "%s" becomes the
 * compiled query's WHERE expression; the caller binds its own parameters
 * (those before the expression), then qry_bind() the query's. */
static int prepare_query(sqlite3 *db, const char *fmt, const char *query,
                         sqlite3_stmt **st_r, struct qry **q_r, char **error_r)
{
    struct qry *q = NULL;
    char *sql, *err = NULL;
    int ret;

    if (qry_compile(query, &q, &err) < 0) {
        cus_error(error_r, "\"%s\": %s", query, err);
        g_free(err);
        return -1;
    }
    sql = g_strdup_printf(fmt, q->where->str);
    ret = prepare(db, sql, st_r, error_r);
    g_free(sql);
    if (ret < 0)
        qry_free(&q);
    else
        *q_r = q;
    return ret;
}

static int plan_tables(sqlite3 *db, char **error_r)
{
    return exec(db, "CREATE TEMP TABLE IF NOT EXISTS ret_match(msg INTEGER PRIMARY KEY,"
                " cutoff INTEGER NOT NULL, rule INTEGER NOT NULL);"
                "CREATE TEMP TABLE IF NOT EXISTS ret_dept(addr TEXT PRIMARY KEY);"
                "CREATE TEMP TABLE IF NOT EXISTS ret_held(msg INTEGER PRIMARY KEY);"
                "DELETE FROM temp.ret_match; DELETE FROM temp.ret_dept;"
                " DELETE FROM temp.ret_held;", error_r);
}

/* Messages department dept applies to get its cutoff unless a longer
 * period (an earlier cutoff) already applies. */
static int plan_department(sqlite3 *db, const char *dept, gint64 cutoff, int rule,
                           char **error_r)
{
    sqlite3_stmt *st = NULL;

    if (exec(db, "DELETE FROM temp.ret_dept", error_r) < 0 ||
        prepare(db, "INSERT OR IGNORE INTO temp.ret_dept(addr)"
                " SELECT lower(address) FROM employees WHERE department = ?1 COLLATE NOCASE"
                " UNION SELECT lower(p.addr) FROM employee_personal p JOIN employees e"
                " ON e.address = p.employee WHERE e.department = ?1 COLLATE NOCASE",
                &st, error_r) < 0)
        return -1;
    sqlite3_bind_text(st, 1, dept, -1, SQLITE_STATIC);
    if (step_done(db, st, "department members", error_r) < 0)
        return -1;
    if (prepare(db, "INSERT INTO temp.ret_match(msg, cutoff, rule) SELECT msg, ?1, ?2 FROM"
                " (SELECT a.msg AS msg FROM addrs a JOIN temp.ret_dept d ON a.addr = d.addr"
                "  WHERE a.role IN (0, 1, 2, 4)"
                "  UNION SELECT r.msg FROM rcpts r JOIN temp.ret_dept d ON r.addr = d.addr"
                "  UNION SELECT v.msg FROM deliveries v JOIN temp.ret_dept d"
                "  ON lower(v.sender) = d.addr) WHERE 1"
                " ON CONFLICT(msg) DO UPDATE SET cutoff = excluded.cutoff, rule = excluded.rule"
                " WHERE excluded.cutoff < ret_match.cutoff", &st, error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, cutoff);
    sqlite3_bind_int(st, 2, rule);
    return step_done(db, st, "retention by department", error_r);
}

static int plan_rule(sqlite3 *db, const char *query, gint64 cutoff, int rule, char **error_r)
{
    sqlite3_stmt *st = NULL;
    struct qry *q = NULL;
    int ret;

    if (prepare_query(db, "INSERT INTO temp.ret_match(msg, cutoff, rule) SELECT m.id, ?, ?"
                      " FROM messages m WHERE %s ON CONFLICT(msg) DO UPDATE SET"
                      " cutoff = excluded.cutoff, rule = excluded.rule"
                      " WHERE excluded.cutoff < ret_match.cutoff", query, &st, &q,
                      error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, cutoff);
    sqlite3_bind_int(st, 2, rule);
    qry_bind(q, st, 3);
    ret = step_done(db, st, "retention by query", error_r);
    qry_free(&q);
    return ret;
}

/* What every active hold covers, into ret_held. */
static int plan_holds(sqlite3 *db, char **error_r)
{
    sqlite3_stmt *hs = NULL, *st = NULL;
    struct qry *q = NULL;
    int rc, ret = -1;

    if (prepare(db, "SELECT name, query FROM holds WHERE released IS NULL ORDER BY id", &hs,
                error_r) < 0)
        return -1;
    while ((rc = sqlite3_step(hs)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(hs, 0);
        char *err = NULL;

        if (prepare_query(db, "INSERT OR IGNORE INTO temp.ret_held(msg) SELECT m.id"
                          " FROM messages m WHERE %s",
                          (const char *)sqlite3_column_text(hs, 1), &st, &q, &err) < 0) {
            /* Whatever it covers must stay: better nothing purged. */
            cus_error(error_r, "hold \"%s\": %s; nothing purged", name, err);
            g_free(err);
            goto out;
        }
        qry_bind(q, st, 1);
        rc = step_done(db, st, "legal hold", error_r);
        qry_free(&q);
        if (rc < 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        db_fail(db, "holds", error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(hs);
    return ret;
}

/* Rule names as items show them: index -1 is default. */
struct plan {
    GArray *items;              /* struct ret_item */
    GPtrArray *names;           /* char *, per [retention] entry */
    gint64 held;
};

static void plan_clear(struct plan *p)
{
    if (p->items != NULL)
        g_array_unref(p->items);
    if (p->names != NULL)
        g_ptr_array_unref(p->names);
    memset(p, 0, sizeof(*p));
}

static int plan_build(sqlite3 *db, const struct cfg *cfg, gint64 now, struct plan *p,
                      char **error_r)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;

    p->items = g_array_new(FALSE, TRUE, sizeof(struct ret_item));
    p->names = g_ptr_array_new_with_free_func(g_free);
    if (plan_tables(db, error_r) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_ret_rules; i++) {
        const struct cfg_retention *r = &cfg->ret_rules[i];
        gint64 cut = period_cutoff(&r->period, now);
        char *err = NULL;

        if (r->kind == CFG_RET_DEPARTMENT) {
            g_ptr_array_add(p->names, g_strdup_printf("department.%s", r->name));
            rc = plan_department(db, r->name, cut, (int)i, error_r);
        } else {
            g_ptr_array_add(p->names, g_strdup_printf("rule.%s", r->name));
            rc = plan_rule(db, r->query, cut, (int)i, &err);
            if (rc < 0) {
                cus_error(error_r, "[retention] rule.%s: %s", r->name, err);
                g_free(err);
            }
        }
        if (rc < 0)
            return -1;
    }
    if (plan_holds(db, error_r) < 0)
        return -1;
    if (prepare(db, "SELECT m.id, m.added, m.raw_size, m.sha256, r.rule, m.segment, m.offset,"
                " m.length, m.id IN (SELECT msg FROM temp.ret_held)"
                " FROM messages m LEFT JOIN temp.ret_match r ON r.msg = m.id"
                " WHERE m.added < coalesce(r.cutoff, ?) ORDER BY m.id", &st, error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, period_cutoff(&cfg->ret_default, now));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ret_item it;
        int rule = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 4);

        if (sqlite3_column_int(st, 8)) {
            p->held++;
            continue;
        }
        memset(&it, 0, sizeof(it));
        it.id = sqlite3_column_int64(st, 0);
        it.added = sqlite3_column_int64(st, 1);
        it.size = sqlite3_column_int64(st, 2);
        if (sqlite3_column_bytes(st, 3) != CUS_SHA256_LEN) {
            cus_error(error_r, "message %" G_GINT64_FORMAT " has no valid SHA-256 in index.db",
                      it.id);
            goto out;
        }
        memcpy(it.sha, sqlite3_column_blob(st, 3), CUS_SHA256_LEN);
        it.loc.segment = (uint32_t)sqlite3_column_int64(st, 5);
        it.loc.offset = (uint64_t)sqlite3_column_int64(st, 6);
        it.loc.length = (uint32_t)sqlite3_column_int64(st, 7);
        if (rule >= 0 && (size_t)rule < cfg->n_ret_rules) {
            it.rule = g_ptr_array_index(p->names, rule);
            it.period = cfg->ret_rules[rule].period;
        } else {
            it.rule = "default";
            it.period = cfg->ret_default;
        }
        g_array_append_val(p->items, it);
    }
    if (rc != SQLITE_DONE) {
        db_fail(db, "retention", error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

/* ---- taking one message out of index.db ----------------------------------- */

/* Values of message id's full-text entry, as idx_add_message() wrote them. */
struct fts_vals {
    struct msg *m;
    GString *attnames;
};

static void fts_vals_from(const struct msg_limits *lim, GBytes *raw, struct fts_vals *v)
{
    gsize len;
    const void *data = g_bytes_get_data(raw, &len);
    char *err = NULL;

    if (msg_parse(data, len, lim, &v->m, &err) < 0) {
        v->m = msg_new_unparsed(err);
        g_free(err);
    }
    v->attnames = g_string_new(NULL);
    for (guint i = 0; i < v->m->atts->len; i++) {
        const struct msg_att *a = g_ptr_array_index(v->m->atts, i);
        if (*a->name != '\0')
            g_string_append_printf(v->attnames, "%s\n", a->name);
    }
}

static void fts_bind(sqlite3_stmt *st, int first, gint64 rowid, const struct fts_vals *v)
{
    sqlite3_bind_int64(st, first, rowid);
    sqlite3_bind_text(st, first + 1, v->m->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 2, v->m->body->str, (int)v->m->body->len, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 3, v->attnames->str, (int)v->attnames->len, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 4, v->m->att_text->str, (int)v->m->att_text->len,
                      SQLITE_STATIC);
}

/*
 * The full-text table is contentless: an entry is deleted by giving FTS5
 * the values it was made from. They are extracted again from the raw
 * message; whether they are the same (a newer parser, other [limits]) is
 * checked on the limits the message hit then and now (messages.limits) and
 * on the token counts per column, which FTS5 keeps (fts_docsize): the
 * values go through a scratch table of the same kind first. 1 if either
 * differs (the entry is deleted all the same; words only the old text had
 * stay in the index until reindex), 0, -1.
 */
static int fts_remove(sqlite3 *db, const struct msg_limits *lim, gint64 id, GBytes *raw,
                      char **error_r)
{
    struct fts_vals v = { NULL, NULL };
    GString *limits = g_string_new(NULL);
    sqlite3_stmt *st = NULL;
    int same = 0, present = 0, ret = -1;

    if (exec(db, "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ret_fts USING fts5(subject, body,"
             " attname, atttext, content='', tokenize='" TOK_NAME "')", error_r) < 0)
        goto out;
    fts_vals_from(lim, raw, &v);
    if (prepare(db, "INSERT INTO temp.ret_fts(rowid, subject, body, attname, atttext)"
                " VALUES (?,?,?,?,?)", &st, error_r) < 0)
        goto out;
    fts_bind(st, 1, 1, &v);
    if (step_done(db, st, "full-text check", error_r) < 0)
        goto out;
    for (guint i = 0; i < v.m->limits->len; i++)
        g_string_append_printf(limits, "%s%s", i ? "\n" : "",
                               (const char *)g_ptr_array_index(v.m->limits, i));
    if (prepare(db, "SELECT (SELECT sz FROM temp.ret_fts_docsize WHERE id = 1) IS"
                " (SELECT sz FROM main.fts_docsize WHERE id = ?1)"
                " AND coalesce((SELECT limits FROM main.messages WHERE id = ?1), ?2) = ?2,"
                " EXISTS (SELECT 1 FROM main.fts_docsize WHERE id = ?1)", &st, error_r) < 0)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, limits->str, (int)limits->len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_fail(db, "full-text check", error_r);
        sqlite3_finalize(st);
        goto out;
    }
    same = sqlite3_column_int(st, 0);
    present = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    if (exec(db, "INSERT INTO temp.ret_fts(ret_fts) VALUES ('delete-all')", error_r) < 0)
        goto out;
    if (!present) {
        /* No entry (FTS5 keeps a size row for each): nothing to delete. */
        log_debug("message %" G_GINT64_FORMAT ": no full-text entry", id);
        ret = 0;
        goto out;
    }
    if (prepare(db, "INSERT INTO fts(fts, rowid, subject, body, attname, atttext)"
                " VALUES ('delete',?,?,?,?,?)", &st, error_r) < 0)
        goto out;
    fts_bind(st, 1, id, &v);
    if (step_done(db, st, "full-text delete", error_r) < 0)
        goto out;
    if (!same)
        log_warn("message %" G_GINT64_FORMAT ": its text extracts differently now than when "
                 "it was indexed (another custos version or [limits]); its full-text entry "
                 "is deleted, but words only the old text had may stay in the index until "
                 "custos-archive reindex", id);
    ret = same ? 0 : 1;
out:
    msg_free(&v.m);
    if (v.attnames != NULL)
        g_string_free(v.attnames, TRUE);
    g_string_free(limits, TRUE);
    return ret;
}

/* Message id out of index.db, its tombstone in: rows, full-text entry
 * (raw: its bytes, or NULL when they are not at hand), purged row (loc:
 * its record while in the store, or NULL). 1 as fts_remove(), 0, -1. */
static int purge_rows(sqlite3 *db, const struct msg_limits *lim, gint64 id,
                      const unsigned char sha[CUS_SHA256_LEN], GBytes *raw,
                      const struct store_loc *loc, gint64 time, const char *rule, gint64 seq,
                      char **error_r)
{
    static const char *const del[] = {
        "DELETE FROM rcpts WHERE msg = ?", "DELETE FROM deliveries WHERE msg = ?",
        "DELETE FROM attachments WHERE msg = ?", "DELETE FROM addrs WHERE msg = ?",
        "DELETE FROM messages WHERE id = ?",
    };
    sqlite3_stmt *st = NULL;
    int fts = 0;

    if (raw != NULL && (fts = fts_remove(db, lim, id, raw, error_r)) < 0)
        return -1;
    for (size_t i = 0; i < G_N_ELEMENTS(del); i++) {
        if (prepare(db, del[i], &st, error_r) < 0)
            return -1;
        sqlite3_bind_int64(st, 1, id);
        if (step_done(db, st, "purge", error_r) < 0)
            return -1;
    }
    if (prepare(db, "INSERT INTO purged(id, sha256, time, rule, seq, segment, offset, length)"
                " VALUES (?,?,?,?,?,?,?,?)", &st, error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, sha, CUS_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, time);
    sqlite3_bind_text(st, 4, rule, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, seq);
    if (loc != NULL) {
        sqlite3_bind_int64(st, 6, loc->segment);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)loc->offset);
        sqlite3_bind_int64(st, 8, loc->length);
    }
    if (step_done(db, st, "tombstone", error_r) < 0)
        return -1;
    return fts;
}

/* Purge one message in the writer's open batch: event, then rows. */
static int purge_one(struct arc *arc, const struct ret_item *it, char **error_r)
{
    sqlite3 *db = idx_db(arc_index(arc));
    char hex[CUS_SHA256_HEX], id[24], added[24], size[24], period[16], *rule, *err = NULL;
    GBytes *raw = NULL;
    gint64 seq = 0, when = 0;
    int ret = -1;

    cfg_period_format(&it->period, period, sizeof(period));
    rule = g_strdup_printf("%s %s", it->rule, period);
    cus_hex(it->sha, CUS_SHA256_LEN, hex);
    g_snprintf(id, sizeof(id), "%" G_GINT64_FORMAT, it->id);
    g_snprintf(added, sizeof(added), "%" G_GINT64_FORMAT, it->added);
    g_snprintf(size, sizeof(size), "%" G_GINT64_FORMAT, it->size);
    if (arc_get_raw(arc, it->id, &raw, &err) < 0) {
        log_warn("message %" G_GINT64_FORMAT ": %s; purged without its full-text entry "
                 "(custos-archive reindex drops what is left of it)", it->id, err);
        g_free(err);
        raw = NULL;
    }
    {
        const char *kv[] = { "id", id, "message", hex, "rule", rule, "archived", added,
                             "size", size, NULL };
        if (arc_event(arc, "purge", it->id, kv, &seq, error_r) < 0)
            goto out;
    }
    if (chain_time(db, seq, &when, error_r) < 0)
        goto out;
    ret = purge_rows(db, arc_limits(arc), it->id, it->sha, raw, &it->loc, when, rule, seq,
                     error_r);
out:
    if (raw != NULL)
        g_bytes_unref(raw);
    g_free(rule);
    return ret;
}

/* ---- the segment rewrite ------------------------------------------------- */

static gint drop_cmp(gconstpointer a, gconstpointer b)
{
    const struct store_drop *x = a, *y = b;

    if (x->loc.segment != y->loc.segment)
        return x->loc.segment < y->loc.segment ? -1 : 1;
    return x->loc.offset < y->loc.offset ? -1 : x->loc.offset > y->loc.offset;
}

/* Purged rows whose record is still in the store, by place. */
static int pending_drops(sqlite3 *db, GArray **drops_r, char **error_r)
{
    sqlite3_stmt *st = NULL;
    GArray *a = g_array_new(FALSE, TRUE, sizeof(struct store_drop));
    int rc;

    if (prepare(db, "SELECT segment, offset, length, sha256, id FROM purged"
                " WHERE segment IS NOT NULL", &st, error_r) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_drop d;

        memset(&d, 0, sizeof(d));
        d.loc.segment = (uint32_t)sqlite3_column_int64(st, 0);
        d.loc.offset = (uint64_t)sqlite3_column_int64(st, 1);
        d.loc.length = (uint32_t)sqlite3_column_int64(st, 2);
        if (sqlite3_column_bytes(st, 3) != CUS_SHA256_LEN) {
            cus_error(error_r, "purged message %" G_GINT64_FORMAT " has no valid SHA-256",
                      (gint64)sqlite3_column_int64(st, 4));
            goto fail;
        }
        memcpy(d.sha, sqlite3_column_blob(st, 3), CUS_SHA256_LEN);
        g_array_append_val(a, d);
    }
    if (rc != SQLITE_DONE) {
        db_fail(db, "purged", error_r);
        goto fail;
    }
    sqlite3_finalize(st);
    g_array_sort(a, drop_cmp);
    *drops_r = a;
    return 0;
fail:
    sqlite3_finalize(st);
    g_array_unref(a);
    return -1;
}

/* "SEG:OFFSET" of meta store_end, moved back by what is dropped before it. */
static int move_store_end(struct idx *idx, const struct store_drop *d, size_t n,
                          char **error_r)
{
    char *val = NULL, buf[48];
    unsigned long seg;
    unsigned long long off;
    int found = idx_meta_get(idx, "store_end", &val, error_r);

    if (found <= 0) {
        g_free(val);
        return found;
    }
    if (sscanf(val, "%lu:%llu", &seg, &off) != 2) {
        g_free(val);
        return 0;
    }
    g_free(val);
    for (size_t i = 0; i < n; i++)
        if (d[i].loc.segment == seg && d[i].loc.offset < off)
            off -= d[i].loc.length;
    g_snprintf(buf, sizeof(buf), "%lu:%llu", seg, off);
    return idx_meta_set(idx, "store_end", buf, error_r);
}

/* Step 2 of retention.h: index.db's locations in segments segs (drops d),
 * and the mark that their .rewrite files are the truth now. */
static int rewrite_index(struct idx *idx, const struct store_drop *d, size_t n,
                         const char *segs, char **error_r)
{
    static const char *const tables[] = { "messages", "deliveries", "chain", "checkpoints" };
    sqlite3 *db = idx_db(idx);
    sqlite3_stmt *st = NULL;
    gint64 cleared;

    if (exec(db, "CREATE TEMP TABLE IF NOT EXISTS ret_drop(segment INTEGER NOT NULL,"
             " offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (segment, offset));"
             "DELETE FROM temp.ret_drop", error_r) < 0 ||
        prepare(db, "INSERT INTO temp.ret_drop(segment, offset, length) VALUES (?,?,?)", &st,
                error_r) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, d[i].loc.segment);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)d[i].loc.offset);
        sqlite3_bind_int64(st, 3, d[i].loc.length);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return db_fail(db, "rewrite", error_r);
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < G_N_ELEMENTS(tables); i++) {
        char *sql = g_strdup_printf("UPDATE %s SET \"offset\" = \"offset\" - (SELECT"
                                    " coalesce(sum(d.length), 0) FROM temp.ret_drop d"
                                    " WHERE d.segment = %s.segment AND d.\"offset\" < %s.\"offset\")"
                                    " WHERE segment IN (SELECT segment FROM temp.ret_drop)",
                                    tables[i], tables[i], tables[i]);
        int r = exec(db, sql, error_r);

        g_free(sql);
        if (r < 0)
            return -1;
    }
    if (exec(db, "UPDATE purged SET segment = NULL, \"offset\" = NULL, length = NULL"
             " WHERE (segment, \"offset\") IN (SELECT segment, \"offset\" FROM temp.ret_drop)",
             error_r) < 0)
        return -1;
    cleared = sqlite3_changes(db);
    if (cleared != (gint64)n)
        return cus_error(error_r, "rewrite: %" G_GINT64_FORMAT " purged rows for %zu records "
                         "dropped", cleared, n);
    if (move_store_end(idx, d, n, error_r) < 0)
        return -1;
    /* Counted, so that a reader's snapshot can tell one happened since. */
    if (exec(db, "INSERT INTO meta(key, value) VALUES ('rewrites', 1) ON CONFLICT(key)"
             " DO UPDATE SET value = value + 1", error_r) < 0)
        return -1;
    return idx_meta_set(idx, "rewrite", segs, error_r);
}

static int clear_mark(struct idx *idx, char **error_r)
{
    sqlite3 *db = idx_db(idx);

    if (idx_begin(idx, error_r) < 0)
        return -1;
    if (exec(db, "DELETE FROM meta WHERE key = 'rewrite'", error_r) < 0 ||
        idx_commit(idx, error_r) < 0) {
        idx_rollback(idx);
        return -1;
    }
    return 0;
}

/* Rewrite the segments the drops d[0..n) are in (steps 1-4). A segment
 * whose records are not what index.db says is left out (and named in
 * error_r, -1) while the others are done. */
static int rewrite_group(struct idx *idx, struct store *st, const struct store_drop *d,
                         size_t n, guint64 *freed_r, char **error_r)
{
    GString *segs = g_string_new(NULL), *bad = g_string_new(NULL);
    GArray *nums = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    GArray *done = g_array_new(FALSE, FALSE, sizeof(struct store_drop));
    guint64 freed = 0;
    int ret = -1;

    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t size = 0;
        uint32_t segno = d[i].loc.segment;
        char *err = NULL;

        while (j < n && d[j].loc.segment == segno)
            j++;
        if (store_rewrite_prepare(st, segno, d + i, j - i, &size, &err) < 0) {
            log_error("retention: seg-%06u.cseg not rewritten: %s", segno, err);
            g_string_append_printf(bad, "%s%s", bad->len ? "; " : "", err);
            g_free(err);
        } else {
            g_array_append_vals(done, d + i, (guint)(j - i));
            g_array_append_val(nums, segno);
            g_string_append_printf(segs, "%s%u", segs->len ? " " : "", segno);
            for (size_t k = i; k < j; k++)
                freed += d[k].loc.length;
        }
        i = j;
    }
    if (done->len == 0)
        goto out;
    fault_point("retention-rewrite-prepared");
    if (idx_begin(idx, error_r) < 0)
        goto out;
    if (rewrite_index(idx, (const struct store_drop *)done->data, done->len, segs->str,
                      error_r) < 0 || idx_commit(idx, error_r) < 0) {
        idx_rollback(idx);
        /* The segments are as index.db says: the copies are not needed. */
        store_rewrite_discard(st, NULL);
        goto out;
    }
    fault_point("retention-rewrite-committed");
    for (guint i = 0; i < nums->len; i++) {
        if (store_rewrite_commit(st, g_array_index(nums, uint32_t, i), error_r) < 0)
            goto out;
        fault_point("retention-rewrite-renamed");
    }
    if (clear_mark(idx, error_r) < 0)
        goto out;
    *freed_r += freed;
    ret = 0;
out:
    if (ret == 0 && bad->len > 0) {
        cus_error(error_r, "%s", bad->str);
        ret = -1;
    } else if (ret < 0 && done->len == 0 && bad->len > 0) {
        cus_error(error_r, "%s", bad->str);
    }
    g_string_free(segs, TRUE);
    g_string_free(bad, TRUE);
    g_array_unref(nums);
    g_array_unref(done);
    return ret;
}

/* Rewrite every segment that still holds a purged message's record. */
static int rewrite_pending(struct idx *idx, struct store *st, gint64 *segments_r,
                           guint64 *freed_r, char **error_r)
{
    GArray *drops = NULL;
    struct store_loc end;
    guint64 freed = 0;
    gint64 segments = 0;
    int failed = 0, ret = -1;

    if (pending_drops(idx_db(idx), &drops, error_r) < 0)
        return -1;
    if (drops->len == 0) {
        ret = 0;
        goto out;
    }
    if (store_tell(st, &end, error_r) < 0)
        goto out;
    for (guint i = 0; i < drops->len; i++)
        if (g_array_index(drops, struct store_drop, i).loc.segment == end.segment) {
            if (store_seal(st, error_r) < 0)
                goto out;
            break;
        }
    for (guint i = 0; i < drops->len;) {
        /* A group: whole segments, up to RET_GROUP_BYTES of them. */
        guint j = i;
        guint64 bytes = 0;

        while (j < drops->len && (j == i || bytes < RET_GROUP_BYTES)) {
            uint32_t segno = g_array_index(drops, struct store_drop, j).loc.segment;

            bytes += store_segment_bytes(st, segno);
            while (j < drops->len &&
                   g_array_index(drops, struct store_drop, j).loc.segment == segno)
                j++;
            segments++;
        }
        /* A group that fails does not keep the next ones from being done. */
        if (rewrite_group(idx, st, &g_array_index(drops, struct store_drop, i), j - i, &freed,
                          failed ? NULL : error_r) < 0)
            failed = 1;
        i = j;
    }
    ret = failed ? -1 : 0;
out:
    if (segments_r != NULL)
        *segments_r = ret == 0 ? segments : 0;
    if (freed_r != NULL)
        *freed_r = freed;
    g_array_unref(drops);
    return ret;
}

int retention_open_store(struct idx *idx, struct store *st, char **error_r)
{
    char *val = NULL, **nums = NULL;
    int found = idx_meta_get(idx, "rewrite", &val, error_r), ret = -1;

    if (found < 0)
        return -1;
    if (found > 0) {
        /* Committed: the .rewrite files are the truth; put them in place. */
        nums = g_strsplit(val, " ", -1);
        for (int i = 0; nums[i] != NULL; i++) {
            char *end;
            guint64 n = g_ascii_strtoull(nums[i], &end, 10);

            if (*nums[i] == '\0' || *end != '\0' || n == 0 || n > G_MAXUINT32) {
                cus_error(error_r, "index.db: meta rewrite \"%s\" is not a list of segment "
                          "numbers", val);
                goto out;
            }
            if (store_rewrite_commit(st, (uint32_t)n, error_r) < 0)
                goto out;
        }
        if (clear_mark(idx, error_r) < 0)
            goto out;
        log_warn("retention: finished rewriting segments %s (interrupted before)", val);
    }
    /* Any other .rewrite file is from before its commit: not the truth. */
    ret = store_rewrite_discard(st, error_r);
out:
    g_strfreev(nums);
    g_free(val);
    return ret;
}

int retention_open_finish(struct idx *idx, struct store *st, char **error_r)
{
    gint64 segs = 0;
    guint64 freed = 0;
    char *err = NULL;

    /* The archive is whole either way: what is left of a rewrite that
     * cannot be done now must not keep the writer (ingest) out. */
    if (rewrite_pending(idx, st, &segs, &freed, &err) < 0) {
        log_error("retention: purged messages are still in the store: %s (tried again at "
                  "the next writer's start and retention run; custos-archive verify counts "
                  "them)", err);
        g_free(err);
        return 0;
    }
    if (segs > 0)
        log_warn("retention: rewrote %" G_GINT64_FORMAT " segments without purged messages "
                 "(%" G_GUINT64_FORMAT " bytes; left to do by an earlier run)", segs, freed);
    return 0;
}

/* ---- the run ------------------------------------------------------------------ */

int retention_run(struct arc *arc, const struct cfg *cfg, gint64 now, int dry_run,
                  ret_item_cb *cb, void *ctx, struct ret_stats *stats, char **error_r)
{
    struct idx *idx = arc_index(arc);
    sqlite3 *db = idx_db(idx);
    struct plan p;
    guint done = 0, batch_start = 0;
    int batch = cfg->arc_batch > 0 ? cfg->arc_batch : 500, ret = -1;

    memset(stats, 0, sizeof(*stats));
    memset(&p, 0, sizeof(p));
    if (plan_build(db, cfg, now, &p, error_r) < 0)
        goto out;
    stats->held = p.held;
    if (dry_run) {
        for (guint i = 0; i < p.items->len; i++) {
            const struct ret_item *it = &g_array_index(p.items, struct ret_item, i);
            stats->purged++;
            stats->bytes += it->size;
            if (cb != NULL)
                cb(ctx, it);
        }
        ret = 0;
        goto out;
    }
    /* Freed pages of index.db are zeroed, not left with the rows in them. */
    if (exec(db, "PRAGMA secure_delete = ON", error_r) < 0)
        goto out;
    for (; done < p.items->len; done++) {
        const struct ret_item *it = &g_array_index(p.items, struct ret_item, done);
        int r = purge_one(arc, it, error_r);

        if (r < 0) {
            arc_abort(arc);
            goto out;
        }
        stats->fts_unmatched += r;
        if (done + 1 == p.items->len || (done + 1 - batch_start) % (guint)batch == 0) {
            if (done + 1 < p.items->len)
                fault_point("retention-purge-batch");
            else
                fault_point("retention-purge-last");
            if (arc_flush(arc, error_r) < 0) {
                arc_abort(arc);
                goto out;
            }
            for (guint i = batch_start; i <= done; i++) {
                const struct ret_item *c = &g_array_index(p.items, struct ret_item, i);
                stats->purged++;
                stats->bytes += c->size;
                if (cb != NULL)
                    cb(ctx, c);
            }
            batch_start = done + 1;
        }
    }
    fault_point("retention-purged");
    {
        char *err = NULL;

        if (rewrite_pending(idx, arc_store(arc), &stats->segments, &stats->freed, &err) < 0) {
            cus_error(error_r, "%" G_GINT64_FORMAT " messages purged from index.db and the "
                      "chain, but their segments are not rewritten yet: %s (the next writer "
                      "tries again)", stats->purged, err);
            g_free(err);
            goto out;
        }
    }
    /* Old page images leave the WAL too, unless a reader holds it: not
     * waited for (a verify may take long). */
    sqlite3_busy_timeout(db, 0);
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(db, 10000);    /* idx_open()'s */
    ret = 0;
out:
    plan_clear(&p);
    return ret;
}

/* ---- legal holds ---------------------------------------------------------------- */

static int hold_name_ok(const char *name, char **error_r)
{
    size_t len = strlen(name);

    if (len == 0 || len > HOLD_NAME_MAX || !g_utf8_validate(name, -1, NULL))
        return cus_error(error_r, "hold name \"%s\": 1 to %d bytes of UTF-8", name,
                         HOLD_NAME_MAX);
    for (const char *p = name; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return cus_error(error_r, "hold name \"%s\": no control characters", name);
    return 0;
}

/* The active hold of that name: 1 (id, and its fields into kv strings), 0, -1. */
static int hold_active(sqlite3 *db, const char *name, gint64 *id_r, char **query_r,
                       char **note_r, gint64 *created_r, char **by_r, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int rc, found = 0;

    if (prepare(db, "SELECT id, query, note, created, created_by FROM holds"
                " WHERE name = ? AND released IS NULL", &st, error_r) < 0)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        *id_r = sqlite3_column_int64(st, 0);
        if (query_r != NULL)
            *query_r = g_strdup((const char *)sqlite3_column_text(st, 1));
        if (note_r != NULL)
            *note_r = g_strdup((const char *)sqlite3_column_text(st, 2));
        if (created_r != NULL)
            *created_r = sqlite3_column_int64(st, 3);
        if (by_r != NULL)
            *by_r = g_strdup((const char *)sqlite3_column_text(st, 4));
    } else if (rc != SQLITE_DONE) {
        found = db_fail(db, "holds", error_r);
    }
    sqlite3_finalize(st);
    return found;
}

static int hold_row_add(sqlite3 *db, gint64 id, const char *name, const char *query,
                        const char *note, gint64 created, const char *by, gint64 seq,
                        char **error_r)
{
    sqlite3_stmt *st = NULL;

    if (prepare(db, "INSERT INTO holds(id, name, query, note, created, created_by, seq)"
                " VALUES (?,?,?,?,?,?,?)", &st, error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, query, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, note, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, created);
    sqlite3_bind_text(st, 6, by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, seq);
    return step_done(db, st, "hold", error_r);
}

static int hold_row_release(sqlite3 *db, gint64 id, gint64 when, const char *by, gint64 seq,
                            char **error_r)
{
    sqlite3_stmt *st = NULL;

    if (prepare(db, "UPDATE holds SET released = ?, released_by = ?, release_seq = ?"
                " WHERE id = ? AND released IS NULL", &st, error_r) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, when);
    sqlite3_bind_text(st, 2, by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, seq);
    sqlite3_bind_int64(st, 4, id);
    if (step_done(db, st, "hold release", error_r) < 0)
        return -1;
    if (sqlite3_changes(db) != 1)
        return cus_error(error_r, "hold %" G_GINT64_FORMAT " is not active", id);
    return 0;
}

int hold_add(struct arc *arc, const char *name, const char *query, const char *note,
             gint64 *seq_r, char **error_r)
{
    sqlite3 *db = idx_db(arc_index(arc));
    struct qry *q = NULL;
    sqlite3_stmt *st = NULL;
    char *user = NULL, *err = NULL, idbuf[24];
    gint64 id = 0, seq = 0, when = 0, other;
    int found, ret = HOLD_BAD_INPUT;

    if (note == NULL)
        note = "";
    if (hold_name_ok(name, error_r) < 0)
        return HOLD_BAD_INPUT;
    if (strlen(note) > HOLD_NOTE_MAX || !g_utf8_validate(note, -1, NULL)) {
        cus_error(error_r, "hold \"%s\": the note must be UTF-8, at most %d bytes", name,
                  HOLD_NOTE_MAX);
        return HOLD_BAD_INPUT;
    }
    if (qry_compile(query, &q, &err) < 0) {
        cus_error(error_r, "hold \"%s\": %s", name, err);
        g_free(err);
        return HOLD_BAD_INPUT;
    }
    qry_free(&q);
    found = hold_active(db, name, &other, NULL, NULL, &when, &user, error_r);
    if (found != 0) {
        if (found > 0) {
            char t[32];
            cus_iso8601(when, t, sizeof(t));
            cus_error(error_r, "a hold named \"%s\" is already active (placed %s by %s)",
                      name, t, user);
        }
        g_free(user);
        return found > 0 ? HOLD_BAD_INPUT : HOLD_ERROR;
    }
    ret = HOLD_ERROR;
    if (prepare(db, "SELECT coalesce(max(id), 0) + 1 FROM holds", &st, error_r) < 0)
        return HOLD_ERROR;
    if (sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (id <= 0)
        return db_fail(db, "holds", error_r);
    user = audit_user(NULL);
    g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, id);
    {
        const char *kv[] = { "hold-id", idbuf, "name", name, "query", query, "note", note,
                             "user", user, NULL };
        if (arc_event(arc, "hold", 0, kv, &seq, error_r) < 0) {
            arc_abort(arc);
            goto out;
        }
    }
    if (chain_time(db, seq, &when, error_r) < 0 ||
        hold_row_add(db, id, name, query, note, when, user, seq, error_r) < 0 ||
        arc_flush(arc, error_r) < 0) {
        arc_abort(arc);
        goto out;
    }
    if (seq_r != NULL)
        *seq_r = seq;
    ret = HOLD_OK;
out:
    g_free(user);
    return ret;
}

int hold_release(struct arc *arc, const char *name, gint64 *seq_r, char **error_r)
{
    sqlite3 *db = idx_db(arc_index(arc));
    char *query = NULL, *note = NULL, *user = NULL, idbuf[24];
    gint64 id = 0, seq = 0, when = 0;
    int found, ret = HOLD_ERROR;

    found = hold_active(db, name, &id, &query, &note, NULL, NULL, error_r);
    if (found <= 0) {
        if (found == 0)
            cus_error(error_r, "no active hold named \"%s\" (custos-archive hold list)", name);
        return found == 0 ? HOLD_BAD_INPUT : HOLD_ERROR;
    }
    user = audit_user(NULL);
    g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, id);
    {
        const char *kv[] = { "hold-id", idbuf, "name", name, "query", query, "note", note,
                             "user", user, NULL };
        if (arc_event(arc, "hold-release", 0, kv, &seq, error_r) < 0) {
            arc_abort(arc);
            goto out;
        }
    }
    if (chain_time(db, seq, &when, error_r) < 0 ||
        hold_row_release(db, id, when, user, seq, error_r) < 0 ||
        arc_flush(arc, error_r) < 0) {
        arc_abort(arc);
        goto out;
    }
    if (seq_r != NULL)
        *seq_r = seq;
    ret = HOLD_OK;
out:
    g_free(query);
    g_free(note);
    g_free(user);
    return ret;
}

int hold_list(struct idx *idx, hold_cb *cb, void *ctx, char **error_r)
{
    sqlite3 *db = idx_db(idx);
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;

    if (prepare(db, "SELECT id, name, query, note, created, created_by, released,"
                " released_by, seq, release_seq FROM holds"
                " ORDER BY released IS NOT NULL, id", &st, error_r) < 0)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct hold h;

        memset(&h, 0, sizeof(h));
        h.id = sqlite3_column_int64(st, 0);
        h.name = (const char *)sqlite3_column_text(st, 1);
        h.query = (const char *)sqlite3_column_text(st, 2);
        h.note = (const char *)sqlite3_column_text(st, 3);
        h.created = sqlite3_column_int64(st, 4);
        h.created_by = (const char *)sqlite3_column_text(st, 5);
        h.released = sqlite3_column_int64(st, 6);
        h.released_by = (const char *)sqlite3_column_text(st, 7);
        h.seq = sqlite3_column_int64(st, 8);
        h.release_seq = sqlite3_column_int64(st, 9);
        if (cb(ctx, &h) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_fail(db, "holds", error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int hold_matches(struct idx *idx, const char *query, gint64 *n_r, char **error_r)
{
    return idx_search(idx, query, 0, 0, n_r, NULL, NULL, error_r);
}

/* ---- replay -------------------------------------------------------------------- */

static int ev_num(const struct chain_event *ev, const char *key, gint64 *v, char **error_r)
{
    const char *s = chain_event_get(ev, key);
    char *end;

    if (s == NULL || *s == '\0')
        return cus_error(error_r, "%s event %" G_GINT64_FORMAT ": no %s", ev->type, ev->seq,
                         key);
    *v = g_ascii_strtoll(s, &end, 10);
    if (*end != '\0')
        return cus_error(error_r, "%s event %" G_GINT64_FORMAT ": %s \"%s\" is not a number",
                         ev->type, ev->seq, key, s);
    return 0;
}

static const char *ev_str(const struct chain_event *ev, const char *key, char **error_r)
{
    const char *s = chain_event_get(ev, key);

    if (s == NULL)
        cus_error(error_r, "%s event %" G_GINT64_FORMAT ": no %s", ev->type, ev->seq, key);
    return s;
}

static int apply_purge(struct idx *idx, struct store *st, const struct msg_limits *lim,
                       const struct chain_event *ev, char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN], isha[CUS_SHA256_LEN];
    const char *hex, *rule;
    struct store_loc loc;
    GBytes *raw = NULL;
    char *err = NULL;
    gint64 id;
    int found, ret;

    if (ev_num(ev, "id", &id, error_r) < 0 || (hex = ev_str(ev, "message", error_r)) == NULL ||
        (rule = ev_str(ev, "rule", error_r)) == NULL)
        return -1;
    if (strlen(hex) != 64 || cus_unhex(hex, sha, CUS_SHA256_LEN) < 0)
        return cus_error(error_r, "purge event %" G_GINT64_FORMAT ": bad message hash",
                         ev->seq);
    found = idx_find_id(idx, id, isha, &loc, error_r);
    if (found < 0)
        return -1;
    if (found && memcmp(isha, sha, CUS_SHA256_LEN) != 0)
        return cus_error(error_r, "purge event %" G_GINT64_FORMAT ": message %" G_GINT64_FORMAT
                         " is another message in index.db", ev->seq, id);
    if (found && st != NULL && store_read(st, &loc, sha, &raw, &err) < 0) {
        log_warn("purge event %" G_GINT64_FORMAT ": %s; its full-text entry stays until "
                 "custos-archive reindex", ev->seq, err);
        g_free(err);
        raw = NULL;
    }
    ret = purge_rows(idx_db(idx), lim, id, sha, raw, found ? &loc : NULL, ev->time, rule,
                     ev->seq, error_r);
    if (raw != NULL)
        g_bytes_unref(raw);
    return ret < 0 ? -1 : 0;
}

int retention_apply_event(struct idx *idx, struct store *st, const struct msg_limits *lim,
                          const struct chain_event *ev, char **error_r)
{
    sqlite3 *db = idx_db(idx);
    const char *name, *query, *note, *user;
    gint64 id;

    if (strcmp(ev->type, "purge") == 0)
        return apply_purge(idx, st, lim, ev, error_r);
    if (ev_num(ev, "hold-id", &id, error_r) < 0 ||
        (name = ev_str(ev, "name", error_r)) == NULL ||
        (query = ev_str(ev, "query", error_r)) == NULL ||
        (note = ev_str(ev, "note", error_r)) == NULL ||
        (user = ev_str(ev, "user", error_r)) == NULL)
        return -1;
    if (strcmp(ev->type, "hold") == 0)
        return hold_row_add(db, id, name, query, note, ev->time, user, ev->seq, error_r);
    if (strcmp(ev->type, "hold-release") == 0)
        return hold_row_release(db, id, ev->time, user, ev->seq, error_r);
    return cus_error(error_r, "chain event %" G_GINT64_FORMAT ": type %s is not retention's",
                     ev->seq, ev->type);
}
