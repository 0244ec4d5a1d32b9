/*
 * audit-event.c - the audit log's chain events (audit.h): read back by
 * verify, reindex and roll forward. Apart from audit.c so that the lean
 * custos-archive (search) needs no OpenSSL.
 */
#include <string.h>
#include "custos/audit.h"
#include "custos/util.h"

#define AUDIT_COLS "id, time, user, uid, command, args, results, status, detail, seq"

static int get_num(const struct chain_event *ev, const char *key, gint64 *v, char **error_r)
{
    const char *s = chain_event_get(ev, key);
    char *end;

    if (s == NULL || *s == '\0')
        return cus_error(error_r, "audit event %" G_GINT64_FORMAT ": no %s", ev->seq, key);
    *v = g_ascii_strtoll(s, &end, 10);
    if (*end != '\0')
        return cus_error(error_r, "audit event %" G_GINT64_FORMAT ": %s \"%s\" is not a "
                         "number", ev->seq, key, s);
    return 0;
}

int audit_from_event(const struct chain_event *ev, struct audit_entry *e, char **error_r)
{
    static const char *const strs[] = { "user", "command", "args", "detail" };
    gint64 status;

    memset(e, 0, sizeof(*e));
    if (get_num(ev, "audit-id", &e->id, error_r) < 0 || get_num(ev, "at", &e->time, error_r) < 0 ||
        get_num(ev, "uid", &e->uid, error_r) < 0 ||
        get_num(ev, "results", &e->results, error_r) < 0 ||
        get_num(ev, "status", &status, error_r) < 0)
        return -1;
    for (size_t i = 0; i < G_N_ELEMENTS(strs); i++)
        if (chain_event_get(ev, strs[i]) == NULL)
            return cus_error(error_r, "audit event %" G_GINT64_FORMAT ": no %s", ev->seq,
                             strs[i]);
    e->status = (int)status;
    e->user = g_strdup(chain_event_get(ev, "user"));
    e->command = g_strdup(chain_event_get(ev, "command"));
    e->args = g_strdup(chain_event_get(ev, "args"));
    e->detail = g_strdup(chain_event_get(ev, "detail"));
    e->seq = ev->seq;
    return 0;
}

int audit_apply_event(struct idx *idx, const struct chain_event *ev, char **error_r)
{
    struct audit_entry e;
    sqlite3_stmt *st = NULL;
    int ret = -1;

    if (audit_from_event(ev, &e, error_r) < 0)
        return -1;
    if (sqlite3_prepare_v2(idx_db(idx), "INSERT OR REPLACE INTO audit(" AUDIT_COLS ")"
                           " VALUES (?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) {
        cus_error(error_r, "audit log in %s: %s", sqlite3_db_filename(idx_db(idx), "main"),
                  sqlite3_errmsg(idx_db(idx)));
        goto out;
    }
    sqlite3_bind_int64(st, 1, e.id);
    sqlite3_bind_int64(st, 2, e.time);
    sqlite3_bind_text(st, 3, e.user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, e.uid);
    sqlite3_bind_text(st, 5, e.command, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e.args, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, e.results);
    sqlite3_bind_int(st, 8, e.status);
    sqlite3_bind_text(st, 9, e.detail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, e.seq);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cus_error(error_r, "audit log in %s: %s", sqlite3_db_filename(idx_db(idx), "main"),
                  sqlite3_errmsg(idx_db(idx)));
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    audit_entry_clear(&e);
    return ret;
}

