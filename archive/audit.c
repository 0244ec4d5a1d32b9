/*
 * audit.c - the audit log: rows in index.db, sealed into the chain by the
 * writer; see audit.h
 */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "custos/audit.h"
#include "custos/util.h"

char *audit_user(gint64 *uid_r)
{
    uid_t uid = getuid();
    struct passwd *pw = getpwuid(uid);
    const char *sudo = getenv("SUDO_USER");
    char *name = pw != NULL ? g_strdup(pw->pw_name) : g_strdup_printf("uid %u", (unsigned)uid);

    if (uid_r != NULL)
        *uid_r = uid;
    if (uid == 0 && sudo != NULL && *sudo != '\0' && strcmp(sudo, name) != 0) {
        char *u = cus_utf8_repair(sudo, strlen(sudo)), *s;
        s = g_strdup_printf("%s (sudo: %s)", name, u);
        g_free(u);
        g_free(name);
        name = s;
    }
    return name;
}

static int db_error(struct idx *idx, const char *what, char **error_r)
{
    sqlite3 *db = idx_db(idx);
    int code = sqlite3_errcode(db);

    if (code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM ||
        code == SQLITE_AUTH)
        return cus_error(error_r, "%s: cannot write the audit log in %s (%s): nothing is "
                         "read from the archive without an audit entry; readers need write "
                         "access to index.db and its directory (see [archive] group)",
                         what, sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
    return cus_error(error_r, "%s: audit log in %s: %s", what,
                     sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
}

int audit_begin(struct idx *idx, const char *command, const char *args, gint64 *id_r,
                char **error_r)
{
    sqlite3_stmt *st = NULL;
    gint64 uid;
    char *user = audit_user(&uid), *a = cus_utf8_repair(args, strlen(args));
    int ret = -1;

    if (sqlite3_prepare_v2(idx_db(idx), "INSERT INTO audit(time, user, uid, command, args,"
                           " results, status, detail) VALUES (?,?,?,?,?,-1,-1,'')", -1, &st,
                           NULL) != SQLITE_OK) {
        db_error(idx, command, error_r);
        goto out;
    }
    sqlite3_bind_int64(st, 1, (gint64)time(NULL));
    sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, uid);
    sqlite3_bind_text(st, 4, command, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, a, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_error(idx, command, error_r);
        goto out;
    }
    *id_r = sqlite3_last_insert_rowid(idx_db(idx));
    ret = 0;
out:
    sqlite3_finalize(st);
    g_free(user);
    g_free(a);
    return ret;
}

int audit_end(struct idx *idx, gint64 id, gint64 results, int status, const char *detail,
              char **error_r)
{
    sqlite3_stmt *st = NULL;
    int ret = -1, relaxed = 0;

    /* A sealed row is not changed (a writer sealed a stale entry). */
    if (sqlite3_prepare_v2(idx_db(idx), "UPDATE audit SET results = ?, status = ?,"
                           " detail = ? WHERE id = ? AND seq IS NULL", -1, &st,
                           NULL) != SQLITE_OK) {
        db_error(idx, "audit", error_r);
        goto out;
    }
    sqlite3_bind_int64(st, 1, results);
    sqlite3_bind_int(st, 2, status < 0 ? 0 : status);
    sqlite3_bind_text(st, 3, detail != NULL ? detail : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, id);
    /* The entry was made durable before the command read anything; its
     * outcome need not wait for the disk (outside a writer's transaction:
     * its commits stay synchronous). */
    if (sqlite3_get_autocommit(idx_db(idx)))
        relaxed = sqlite3_exec(idx_db(idx), "PRAGMA synchronous=NORMAL", NULL, NULL,
                               NULL) == SQLITE_OK;
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_error(idx, "audit", error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    if (relaxed)
        sqlite3_exec(idx_db(idx), "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    return ret;
}

#define AUDIT_COLS "id, time, user, uid, command, args, results, status, detail, seq"

static struct audit_entry *entry_from_row(sqlite3_stmt *st, struct audit_entry *e)
{
    e->id = sqlite3_column_int64(st, 0);
    e->time = sqlite3_column_int64(st, 1);
    e->user = g_strdup((const char *)sqlite3_column_text(st, 2));
    e->uid = sqlite3_column_int64(st, 3);
    e->command = g_strdup((const char *)sqlite3_column_text(st, 4));
    e->args = g_strdup((const char *)sqlite3_column_text(st, 5));
    e->results = sqlite3_column_int64(st, 6);
    e->status = sqlite3_column_int(st, 7);
    e->detail = g_strdup((const char *)sqlite3_column_text(st, 8));
    e->seq = sqlite3_column_type(st, 9) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 9);
    return e;
}

int audit_list(struct idx *idx, gint64 since, audit_cb *cb, void *ctx, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;

    if (sqlite3_prepare_v2(idx_db(idx), "SELECT " AUDIT_COLS " FROM audit WHERE time >= ?"
                           " ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        db_error(idx, "audit", error_r);
        goto out;
    }
    sqlite3_bind_int64(st, 1, since);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct audit_entry e;
        int r;

        memset(&e, 0, sizeof(e));
        r = cb(ctx, entry_from_row(st, &e));
        audit_entry_clear(&e);
        if (r < 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_error(idx, "audit", error_r);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int audit_pending(struct idx *idx, gint64 now, GPtrArray **entries_r, char **error_r)
{
    sqlite3_stmt *st = NULL;
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)audit_entry_free);
    int rc;

    if (sqlite3_prepare_v2(idx_db(idx), "SELECT " AUDIT_COLS " FROM audit WHERE seq IS NULL"
                           " AND (status >= 0 OR time < ?) ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, now - AUDIT_STALE);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_ptr_array_add(a, entry_from_row(st, g_new0(struct audit_entry, 1)));
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    *entries_r = a;
    return 0;
fail:
    db_error(idx, "audit", error_r);
    sqlite3_finalize(st);
    g_ptr_array_free(a, TRUE);
    return -1;
}

/* Every string is a copy owned by the array; NULL-terminated. */
GPtrArray *audit_fields(const struct audit_entry *e)
{
    GPtrArray *kv = g_ptr_array_new_with_free_func(g_free);

#define NUM(k, v) do { g_ptr_array_add(kv, g_strdup(k)); \
                       g_ptr_array_add(kv, g_strdup_printf("%" G_GINT64_FORMAT, \
                                                           (gint64)(v))); } while (0)
#define STR(k, v) do { g_ptr_array_add(kv, g_strdup(k)); \
                       g_ptr_array_add(kv, g_strdup((v) != NULL ? (v) : "")); } while (0)
    NUM("audit-id", e->id);
    NUM("at", e->time);
    STR("user", e->user);
    NUM("uid", e->uid);
    STR("command", e->command);
    STR("args", e->args);
    NUM("results", e->results);
    NUM("status", e->status);
    STR("detail", e->detail);
#undef NUM
#undef STR
    g_ptr_array_add(kv, NULL);
    return kv;
}

int audit_sealed(struct idx *idx, gint64 id, gint64 seq, char **error_r)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;

    if (sqlite3_prepare_v2(idx_db(idx), "UPDATE audit SET seq = ? WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK || (sqlite3_bind_int64(st, 1, seq),
                                                  sqlite3_bind_int64(st, 2, id),
                                                  sqlite3_step(st)) != SQLITE_DONE)
        db_error(idx, "audit", error_r);
    else
        ret = 0;
    sqlite3_finalize(st);
    return ret;
}

void audit_entry_clear(struct audit_entry *e)
{
    g_free(e->user);
    g_free(e->command);
    g_free(e->args);
    g_free(e->detail);
    memset(e, 0, sizeof(*e));
}

void audit_entry_free(struct audit_entry *e)
{
    if (e == NULL)
        return;
    audit_entry_clear(e);
    g_free(e);
}
