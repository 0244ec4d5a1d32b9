/*
 * once.c - at most once per period, by key: one SQLite table
 *
 *   once(key TEXT PRIMARY KEY, at INTEGER)      at: unix time of the claim,
 *                                               negative while pending
 *
 * A claim is one upsert that only overwrites a confirmed claim older than
 * the period or a pending one older than ONCE_PENDING; sqlite3_changes()
 * says whether it went through. Confirming flips the sign. When the file
 * is opened, rows older than a year are pruned, and so are pending claims:
 * the process that made them is gone before it knew whether the thing was
 * done, so it may be done again.
 */
#include <sqlite3.h>
#include "custos/once.h"
#include "custos/util.h"

struct once {
    sqlite3 *db;
    GMutex lock;                /* one statement at a time, and changes() read
                                 * right after it */
    sqlite3_stmt *claim, *release, *confirm;
};

static int db_err(sqlite3 *db, const char *what, char **error_r)
{
    return cus_error(error_r, "%s %s: %s", what, sqlite3_db_filename(db, "main"),
                     sqlite3_errmsg(db));
}

int once_open(const char *path, struct once **o_r, char **error_r)
{
    struct once *o = g_new0(struct once, 1);
    char *prune;

    g_mutex_init(&o->lock);
    if (sqlite3_open_v2(path, &o->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        cus_error(error_r, "open %s: %s", path,
                  o->db != NULL ? sqlite3_errmsg(o->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(o->db, 5000);
    prune = g_strdup_printf("DELETE FROM once WHERE at < 0 OR at < %" G_GINT64_FORMAT,
                            g_get_real_time() / G_USEC_PER_SEC - 366 * 86400);
    if (sqlite3_exec(o->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS once(key TEXT PRIMARY KEY, at INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(o->db, prune, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(o->db, "INSERT INTO once(key, at) VALUES (?1, -?2) ON CONFLICT(key) "
                           "DO UPDATE SET at = excluded.at WHERE (at > 0 AND at <= ?3) OR "
                           "(at < 0 AND -at <= ?4)", -1, &o->claim, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(o->db, "DELETE FROM once WHERE key = ?1 AND at = -?2", -1,
                           &o->release, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(o->db, "UPDATE once SET at = ?2 WHERE key = ?1 AND at = -?2", -1,
                           &o->confirm, NULL) != SQLITE_OK) {
        db_err(o->db, "set up", error_r);
        g_free(prune);
        goto fail;
    }
    g_free(prune);
    *o_r = o;
    return 0;
fail:
    once_close(&o);
    return -1;
}

void once_close(struct once **op)
{
    struct once *o = *op;

    if (o == NULL)
        return;
    sqlite3_finalize(o->claim);
    sqlite3_finalize(o->release);
    sqlite3_finalize(o->confirm);
    sqlite3_close(o->db);
    g_mutex_clear(&o->lock);
    g_free(o);
    *op = NULL;
}

int once_claim(struct once *o, const char *key, gint64 now, gint64 period, char **error_r)
{
    int ret;

    g_mutex_lock(&o->lock);
    sqlite3_bind_text(o->claim, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(o->claim, 2, now);
    sqlite3_bind_int64(o->claim, 3, now - period);
    sqlite3_bind_int64(o->claim, 4, now - ONCE_PENDING);
    if (sqlite3_step(o->claim) != SQLITE_DONE)
        ret = db_err(o->db, "claim in", error_r);
    else
        ret = sqlite3_changes(o->db) > 0;
    sqlite3_reset(o->claim);
    sqlite3_clear_bindings(o->claim);
    g_mutex_unlock(&o->lock);
    return ret;
}

/* Run st (release or confirm) for the claim of key made at at. */
static int claim_step(struct once *o, sqlite3_stmt *st, const char *what, const char *key,
                      gint64 at, char **error_r)
{
    int ret = 0;

    g_mutex_lock(&o->lock);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, at);
    if (sqlite3_step(st) != SQLITE_DONE)
        ret = db_err(o->db, what, error_r);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    g_mutex_unlock(&o->lock);
    return ret;
}

int once_release(struct once *o, const char *key, gint64 now, char **error_r)
{
    return claim_step(o, o->release, "release in", key, now, error_r);
}

int once_confirm(struct once *o, const char *key, gint64 now, char **error_r)
{
    return claim_step(o, o->confirm, "confirm in", key, now, error_r);
}
