/*
 * incident.c - what custos-milter flagged: chain events and index rows
 *
 * The event is the record (incident.h gives its fields); the row in
 * index.db's incidents table is derived from it, at ingest and again on
 * reindex, the same way both times (sender and rcpts lower case), so
 * verify can compare the two field by field. Listing goes through the
 * indexes on time, category and sender; a query restricts to messages
 * through the query language's own SQL (query.h).
 */
#include <string.h>
#include <sqlite3.h>
#include "custos/incident.h"
#include "custos/spool.h"
#include "custos/util.h"

static int db_error(struct idx *idx, char **error_r)
{
    return cus_error(error_r, "index.db (incidents): %s", sqlite3_errmsg(idx_db(idx)));
}

void incident_clear(struct incident *inc)
{
    g_free(inc->spool_id);
    g_free(inc->category);
    g_free(inc->rule);
    g_free(inc->action);
    g_free(inc->evidence);
    g_free(inc->sender);
    g_free(inc->auth);
    g_strfreev(inc->rcpts);
    memset(inc, 0, sizeof(*inc));
}

void incident_free(struct incident *inc)
{
    if (inc == NULL)
        return;
    incident_clear(inc);
    g_free(inc);
}

GPtrArray *incident_fields(const struct incident *inc)
{
    GPtrArray *kv = g_ptr_array_new_with_free_func(g_free);

#define KV(k, v) do { g_ptr_array_add(kv, g_strdup(k)); \
                      g_ptr_array_add(kv, g_strdup((v) != NULL ? (v) : "")); } while (0)
#define KVN(k, fmt, v) do { g_ptr_array_add(kv, g_strdup(k)); \
                            g_ptr_array_add(kv, g_strdup_printf(fmt, v)); } while (0)
    KVN("id", "%" G_GINT64_FORMAT, inc->msg);
    KV("message", inc->sha256);
    if (inc->spool_id != NULL && *inc->spool_id != '\0')
        KV("spool-id", inc->spool_id);
    KVN("n", "%d", inc->n);
    KVN("received", "%" G_GINT64_FORMAT, inc->time);
    KV("category", inc->category);
    KV("rule", inc->rule);
    KV("action", inc->action);
    KV("evidence", inc->evidence);
    KV("sender", inc->sender);
    if (inc->auth != NULL && *inc->auth != '\0')
        KV("auth", inc->auth);
    for (int i = 0; inc->rcpts != NULL && inc->rcpts[i] != NULL; i++)
        KV("rcpt", inc->rcpts[i]);
#undef KV
#undef KVN
    g_ptr_array_add(kv, NULL);
    return kv;
}

static int ev_num(const struct chain_event *ev, const char *key, gint64 min, gint64 *v,
                  char **error_r)
{
    const char *s = chain_event_get(ev, key);

    if (s == NULL || *s == '\0')
        return cus_error(error_r, "incident event %" G_GINT64_FORMAT ": no %s", ev->seq, key);
    if (!g_ascii_string_to_signed(s, 10, min, G_MAXINT64, v, NULL))
        return cus_error(error_r, "incident event %" G_GINT64_FORMAT ": %s \"%s\" is not a "
                         "number of at least %" G_GINT64_FORMAT, ev->seq, key, s, min);
    return 0;
}

static char *ev_str(const struct chain_event *ev, const char *key, int token, char **error_r)
{
    const char *s = chain_event_get(ev, key);

    if (s == NULL) {
        cus_error(error_r, "incident event %" G_GINT64_FORMAT ": no %s", ev->seq, key);
        return NULL;
    }
    if (token && !spool_token_valid(s)) {
        cus_error(error_r, "incident event %" G_GINT64_FORMAT ": %s \"%s\" is not a token",
                  ev->seq, key, s);
        return NULL;
    }
    return g_strdup(s);
}

int incident_from_event(const struct chain_event *ev, struct incident *inc, char **error_r)
{
    GPtrArray *rcpts = g_ptr_array_new();
    const char *hex = chain_event_get(ev, "message"), *sid = chain_event_get(ev, "spool-id");
    const char *auth = chain_event_get(ev, "auth");
    gint64 n;

    memset(inc, 0, sizeof(*inc));
    inc->seq = ev->seq;
    if (strcmp(ev->type, "incident") != 0) {
        cus_error(error_r, "chain event %" G_GINT64_FORMAT ": type %s, not incident", ev->seq,
                  ev->type);
        goto fail;
    }
    if (ev_num(ev, "id", 1, &inc->msg, error_r) < 0 || ev_num(ev, "n", 1, &n, error_r) < 0 ||
        ev_num(ev, "received", 0, &inc->time, error_r) < 0)
        goto fail;
    if (n > G_MAXINT) {
        cus_error(error_r, "incident event %" G_GINT64_FORMAT ": n is too big", ev->seq);
        goto fail;
    }
    inc->n = (int)n;
    if (hex == NULL || strlen(hex) != 2 * CUS_SHA256_LEN) {
        cus_error(error_r, "incident event %" G_GINT64_FORMAT ": no message SHA-256", ev->seq);
        goto fail;
    }
    memcpy(inc->sha256, hex, sizeof(inc->sha256));
    inc->spool_id = g_strdup(sid != NULL ? sid : "");
    inc->auth = g_strdup(auth != NULL ? auth : "");
    if ((inc->category = ev_str(ev, "category", 1, error_r)) == NULL ||
        (inc->rule = ev_str(ev, "rule", 1, error_r)) == NULL ||
        (inc->action = ev_str(ev, "action", 1, error_r)) == NULL ||
        (inc->evidence = ev_str(ev, "evidence", 0, error_r)) == NULL ||
        (inc->sender = ev_str(ev, "sender", 0, error_r)) == NULL)
        goto fail;
    for (guint i = 0; i + 1 < ev->fields->len; i += 2)
        if (strcmp(g_ptr_array_index(ev->fields, i), "rcpt") == 0)
            g_ptr_array_add(rcpts, g_strdup(g_ptr_array_index(ev->fields, i + 1)));
    g_ptr_array_add(rcpts, NULL);
    inc->rcpts = (char **)g_ptr_array_free(rcpts, FALSE);
    return 0;
fail:
    g_ptr_array_set_free_func(rcpts, g_free);
    g_ptr_array_free(rcpts, TRUE);
    incident_clear(inc);
    return -1;
}

/* The rcpts column: lower case, one per line. */
static char *rcpts_text(char *const *rcpts)
{
    GString *s = g_string_new(NULL);

    for (int i = 0; rcpts != NULL && rcpts[i] != NULL; i++) {
        char *low = g_utf8_strdown(rcpts[i], -1);
        if (i > 0)
            g_string_append_c(s, '\n');
        g_string_append(s, low);
        g_free(low);
    }
    return g_string_free(s, FALSE);
}

int incident_insert(struct idx *idx, const struct incident *inc, char **error_r)
{
    sqlite3_stmt *st = NULL;
    char *sender = g_utf8_strdown(inc->sender != NULL ? inc->sender : "", -1);
    char *auth = g_utf8_strdown(inc->auth != NULL ? inc->auth : "", -1);
    char *rcpts = rcpts_text(inc->rcpts);
    int ret = -1;

    if (sqlite3_prepare_v2(idx_db(idx), "INSERT INTO incidents(seq, msg, time, n, sha256,"
                           " spool_id, category, rule, action, evidence, sender, auth, rcpts)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) {
        db_error(idx, error_r);
        goto out;
    }
    sqlite3_bind_int64(st, 1, inc->seq);
    sqlite3_bind_int64(st, 2, inc->msg);
    sqlite3_bind_int64(st, 3, inc->time);
    sqlite3_bind_int(st, 4, inc->n);
    sqlite3_bind_text(st, 5, inc->sha256, -1, SQLITE_STATIC);
    if (inc->spool_id != NULL && *inc->spool_id != '\0')
        sqlite3_bind_text(st, 6, inc->spool_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_text(st, 7, inc->category, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, inc->rule, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, inc->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, inc->evidence != NULL ? inc->evidence : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, auth, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, rcpts, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_error(idx, error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    g_free(sender);
    g_free(auth);
    g_free(rcpts);
    return ret;
}

int incident_apply_event(struct idx *idx, const struct chain_event *ev, char **error_r)
{
    struct incident inc;
    int ret;

    if (incident_from_event(ev, &inc, error_r) < 0)
        return -1;
    ret = incident_insert(idx, &inc, error_r);
    incident_clear(&inc);
    return ret;
}

int incident_exists(struct idx *idx, const char *spool_id, int n, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;

    if (sqlite3_prepare_v2(idx_db(idx), "SELECT 1 FROM incidents WHERE spool_id = ? AND n = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(idx, error_r);
    sqlite3_bind_text(st, 1, spool_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, n);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = 1;
    else if (rc == SQLITE_DONE)
        ret = 0;
    else
        db_error(idx, error_r);
    sqlite3_finalize(st);
    return ret;
}

void incident_from_row(sqlite3_stmt *st, struct incident *inc)
{
    const char *rc = (const char *)sqlite3_column_text(st, 12);
    const char *hex = (const char *)sqlite3_column_text(st, 4);

    memset(inc, 0, sizeof(*inc));
    inc->seq = sqlite3_column_int64(st, 0);
    inc->msg = sqlite3_column_int64(st, 1);
    inc->time = sqlite3_column_int64(st, 2);
    inc->n = sqlite3_column_int(st, 3);
    g_strlcpy(inc->sha256, hex != NULL ? hex : "", sizeof(inc->sha256));
    inc->spool_id = g_strdup((const char *)sqlite3_column_text(st, 5));
    inc->category = g_strdup((const char *)sqlite3_column_text(st, 6));
    inc->rule = g_strdup((const char *)sqlite3_column_text(st, 7));
    inc->action = g_strdup((const char *)sqlite3_column_text(st, 8));
    inc->evidence = g_strdup((const char *)sqlite3_column_text(st, 9));
    inc->sender = g_strdup((const char *)sqlite3_column_text(st, 10));
    inc->auth = g_strdup((const char *)sqlite3_column_text(st, 11));
    inc->rcpts = rc != NULL && *rc != '\0' ? g_strsplit(rc, "\n", -1) : g_new0(char *, 1);
    inc->purged = sqlite3_column_int(st, 13);
}

static int same(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

const char *incident_diff(const struct incident *row, const struct incident *ev)
{
    char *sender = g_utf8_strdown(ev->sender != NULL ? ev->sender : "", -1);
    char *auth = g_utf8_strdown(ev->auth != NULL ? ev->auth : "", -1);
    char *rr = rcpts_text(row->rcpts), *er = rcpts_text(ev->rcpts);
    const char *d = NULL;

    if (row->msg != ev->msg) d = "id";
    else if (row->time != ev->time) d = "received";
    else if (row->n != ev->n) d = "n";
    else if (strcmp(row->sha256, ev->sha256) != 0) d = "message";
    else if (!same(row->spool_id, ev->spool_id)) d = "spool-id";
    else if (!same(row->category, ev->category)) d = "category";
    else if (!same(row->rule, ev->rule)) d = "rule";
    else if (!same(row->action, ev->action)) d = "action";
    else if (!same(row->evidence, ev->evidence)) d = "evidence";
    else if (!same(row->sender, sender)) d = "sender";
    else if (!same(row->auth, auth)) d = "auth";
    else if (!same(rr, er)) d = "rcpt";
    g_free(sender);
    g_free(auth);
    g_free(rr);
    g_free(er);
    return d;
}

/* A JSON array of the addresses, lower case (for json_each). */
static char *addr_json(const char *const *addrs)
{
    GString *j = g_string_new("[");

    for (int i = 0; addrs[i] != NULL; i++) {
        char *low = g_utf8_strdown(addrs[i], -1);
        if (i > 0)
            g_string_append_c(j, ',');
        cus_json_str(j, low);
        g_free(low);
    }
    g_string_append_c(j, ']');
    return g_string_free(j, FALSE);
}

int incident_list(struct idx *idx, const struct incident_filter *f, incident_cb *cb,
                  void *ctx, char **error_r)
{
    GString *sql = g_string_new("SELECT " INCIDENT_COLS " FROM incidents i WHERE 1");
    sqlite3_stmt *st = NULL;
    char *senders = NULL;
    int next = 1, rc, ret = -1;

    if (f->since != 0)
        g_string_append(sql, " AND i.time >= ?");
    if (f->until != 0)
        g_string_append(sql, " AND i.time < ?");
    if (f->category != NULL)
        g_string_append(sql, " AND i.category = ?");
    if (f->msg != 0)
        g_string_append(sql, " AND i.msg = ?");
    if (f->query != NULL)
        g_string_append_printf(sql, " AND i.msg IN (SELECT m.id FROM messages m WHERE %s)",
                               f->query->where->str);
    /* numbered, after every plain '?' (which would count on from it) */
    if (f->senders != NULL)
        g_string_append(sql, " AND (i.sender IN (SELECT value FROM json_each(?1000))"
                        " OR i.auth IN (SELECT value FROM json_each(?1000)))");
    g_string_append(sql, " ORDER BY i.time, i.seq");
    if (f->limit > 0)
        g_string_append_printf(sql, " LIMIT %" G_GINT64_FORMAT, f->limit);
    if (sqlite3_prepare_v2(idx_db(idx), sql->str, -1, &st, NULL) != SQLITE_OK) {
        db_error(idx, error_r);
        goto out;
    }
    if (f->since != 0)
        sqlite3_bind_int64(st, next++, f->since);
    if (f->until != 0)
        sqlite3_bind_int64(st, next++, f->until);
    if (f->category != NULL)
        sqlite3_bind_text(st, next++, f->category, -1, SQLITE_STATIC);
    if (f->msg != 0)
        sqlite3_bind_int64(st, next++, f->msg);
    if (f->senders != NULL) {
        senders = addr_json(f->senders);
        sqlite3_bind_text(st, 1000, senders, -1, SQLITE_STATIC);
    }
    if (f->query != NULL && qry_bind(f->query, st, next) < 0) {
        db_error(idx, error_r);
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct incident inc;
        int r;

        incident_from_row(st, &inc);
        r = cb(ctx, &inc);
        incident_clear(&inc);
        if (r != 0) {
            ret = r;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        db_error(idx, error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    g_string_free(sql, TRUE);
    g_free(senders);
    return ret;
}

static int collect(void *ctx, const struct incident *inc)
{
    struct incident *c = g_new0(struct incident, 1);

    *c = *inc;
    c->spool_id = g_strdup(inc->spool_id);
    c->category = g_strdup(inc->category);
    c->rule = g_strdup(inc->rule);
    c->action = g_strdup(inc->action);
    c->evidence = g_strdup(inc->evidence);
    c->sender = g_strdup(inc->sender);
    c->auth = g_strdup(inc->auth);
    c->rcpts = g_strdupv(inc->rcpts);
    g_ptr_array_add(ctx, c);
    return 0;
}

int incident_of_employee(struct idx *idx, const char *const *addrs, gint64 since,
                         GPtrArray **out_r, char **error_r)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)incident_free);
    struct incident_filter f = { .since = since, .senders = addrs };

    if (addrs == NULL || addrs[0] == NULL) {
        *out_r = out;
        return 0;
    }
    if (incident_list(idx, &f, collect, out, error_r) != 0) {
        g_ptr_array_free(out, TRUE);
        return -1;
    }
    *out_r = out;
    return 0;
}
