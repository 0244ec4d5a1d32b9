/*
 * index.c - index.db: messages, addresses, deliveries, attachments, FTS5
 *
 * SQLite in WAL mode with synchronous=FULL: a commit is durable, and the
 * store is fsync'd before every commit (archive.c), so an index row never
 * points at bytes that could vanish. The schema is versioned with
 * PRAGMA user_version and migrated forward in idx_migrate(). Every
 * statement binds its parameters.
 */
#include <string.h>
#include <sys/stat.h>
#include "custos/index.h"
#include "custos/log.h"
#include "custos/query.h"
#include "custos/tok.h"
#include "custos/util.h"

enum idx_stmt {
    S_FIND_SHA, S_FIND_ID, S_INS_MSG, S_INS_ADDR, S_INS_ATT, S_INS_FTS,
    S_INS_DELIV, S_INS_RCPT, S_HIT_ADDRS, S_HIT_BCC, S_HIT_ATTS, S_FIND_SPOOL,
    S_INS_CHAIN, S_CHAIN_HEAD, S_INS_CP, S_META_GET, S_META_SET, S_REF_IDS, S_REF_ADDRS,
    S_REF_RCPTS, S_SET_BODY, S_BODY_IDS, S_COUNT
};

/* an archived message's (m's) first From address, for the refs */
#define REF_FROM "SELECT addr FROM addrs WHERE msg = m.id AND role = 0 AND addr <> ''" \
                 " ORDER BY rowid LIMIT 1"

static const char *const idx_sql[S_COUNT] = {
    [S_FIND_SHA] = "SELECT id, segment, offset, length FROM messages WHERE sha256 = ?",
    [S_FIND_ID] = "SELECT sha256, segment, offset, length FROM messages WHERE id = ?",
    [S_INS_MSG] = "INSERT INTO messages(sha256, segment, offset, length, raw_size, date,"
                  " message_id, subject, n_att, limits, added, id)"
                  " VALUES (?,?,?,?,?,?,?,?,?,?,?,coalesce(?, (SELECT max(id) FROM"
                  " (SELECT max(id) AS id FROM messages UNION ALL"
                  " SELECT max(id) FROM purged)) + 1))",
    [S_INS_ADDR] = "INSERT INTO addrs(msg, role, name, addr, domain) VALUES (?,?,?,?,?)",
    [S_INS_ATT] = "INSERT INTO attachments(msg, seq, name, type, path, size, sha256, depth)"
                  " VALUES (?,?,?,?,?,?,?,?)",
    [S_INS_FTS] = "INSERT INTO fts(rowid, subject, body, attname, atttext) VALUES (?,?,?,?,?)",
    [S_INS_DELIV] = "INSERT INTO deliveries(msg, time, sender, client, queue_id, source,"
                    " segment, offset, length, spool_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
    [S_INS_RCPT] = "INSERT INTO rcpts(delivery, msg, addr, domain) VALUES (?,?,?,?)",
    [S_HIT_ADDRS] = "SELECT role, name, addr FROM addrs WHERE msg = ? AND role IN (0,1,2)"
                    " ORDER BY rowid",
    [S_HIT_BCC] = "SELECT DISTINCT r.addr FROM rcpts r WHERE r.msg = ?1 AND NOT EXISTS"
                  " (SELECT 1 FROM addrs a WHERE a.msg = ?1 AND a.role IN (1,2)"
                  " AND a.addr = r.addr) ORDER BY r.rowid",
    [S_HIT_ATTS] = "SELECT name FROM attachments WHERE msg = ? AND depth = 1 ORDER BY seq",
    [S_FIND_SPOOL] = "SELECT msg FROM deliveries WHERE spool_id = ?",
    [S_INS_CHAIN] = "INSERT INTO chain(seq, time, type, msg, hash, segment, offset, length)"
                    " VALUES (?,?,?,?,?,?,?,?)",
    [S_CHAIN_HEAD] = "SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1",
    [S_INS_CP] = "INSERT INTO checkpoints(seq, time, hash, key, signature, segment, offset,"
                 " length) VALUES (?,?,?,?,?,?,?,?)",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [S_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)",
    [S_REF_IDS] = "SELECT id, (" REF_FROM ") FROM messages m WHERE message_id = ?"
                  " ORDER BY id DESC LIMIT ?",
    [S_REF_ADDRS] = "SELECT addr FROM addrs WHERE msg = ? AND role IN (1,2) ORDER BY rowid",
    [S_REF_RCPTS] = "SELECT DISTINCT addr FROM rcpts WHERE msg = ?",
    [S_SET_BODY] = "UPDATE messages SET body_sha256 = ? WHERE id = ?",
    [S_BODY_IDS] = "SELECT id, (" REF_FROM ") FROM messages m WHERE body_sha256 = ?"
                   " ORDER BY id DESC LIMIT ?",
};

struct idx {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[S_COUNT];    /* prepared when first used */
};

/* Statement s, prepared on first use (a search needs three of them: a
 * command starts faster). NULL only if the schema is broken: logged, and
 * every sqlite3_ call on NULL fails with SQLITE_MISUSE. */
static sqlite3_stmt *stmt(struct idx *idx, enum idx_stmt s)
{
    if (idx->stmt[s] == NULL &&
        sqlite3_prepare_v3(idx->db, idx_sql[s], -1, SQLITE_PREPARE_PERSISTENT, &idx->stmt[s],
                           NULL) != SQLITE_OK)
        log_error("%s: %s", idx->path, sqlite3_errmsg(idx->db));
    return idx->stmt[s];
}

/* Schema version 1; see index.h. */
static const char idx_schema_v1[] =
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE,"
    " segment INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,"
    " raw_size INTEGER NOT NULL, date INTEGER NOT NULL, message_id TEXT NOT NULL,"
    " subject TEXT NOT NULL, n_att INTEGER NOT NULL, limits TEXT NOT NULL,"
    " added INTEGER NOT NULL);"
    "CREATE INDEX messages_date ON messages(date);"
    "CREATE INDEX messages_msgid ON messages(message_id);"
    "CREATE TABLE addrs(msg INTEGER NOT NULL REFERENCES messages(id), role INTEGER NOT NULL,"
    " name TEXT NOT NULL, addr TEXT NOT NULL, domain TEXT NOT NULL);"
    "CREATE INDEX addrs_msg ON addrs(msg);"
    "CREATE INDEX addrs_addr ON addrs(addr);"
    "CREATE INDEX addrs_domain ON addrs(domain);"
    "CREATE TABLE attachments(msg INTEGER NOT NULL REFERENCES messages(id),"
    " seq INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, path TEXT NOT NULL,"
    " size INTEGER NOT NULL, sha256 TEXT NOT NULL, depth INTEGER NOT NULL);"
    "CREATE INDEX attachments_msg ON attachments(msg);"
    "CREATE TABLE deliveries(id INTEGER PRIMARY KEY, msg INTEGER NOT NULL REFERENCES messages(id),"
    " time INTEGER NOT NULL, sender TEXT NOT NULL, client TEXT NOT NULL,"
    " queue_id TEXT NOT NULL, source TEXT NOT NULL,"
    " segment INTEGER, offset INTEGER, length INTEGER);"
    "CREATE INDEX deliveries_msg ON deliveries(msg);"
    "CREATE INDEX deliveries_sender ON deliveries(sender);"
    "CREATE TABLE rcpts(delivery INTEGER NOT NULL REFERENCES deliveries(id),"
    " msg INTEGER NOT NULL, addr TEXT NOT NULL, domain TEXT NOT NULL);"
    "CREATE INDEX rcpts_msg ON rcpts(msg);"
    "CREATE INDEX rcpts_addr ON rcpts(addr);"
    "CREATE INDEX rcpts_domain ON rcpts(domain);"
    "CREATE VIRTUAL TABLE fts USING fts5(subject, body, attname, atttext,"
    " content='', tokenize='" TOK_NAME "');";

/* Version 2: the spool id of a delivery (an entry is archived once), the
 * hash chain and its checkpoints, and where the store ended at the last
 * commit. */
static const char idx_schema_v2[] =
    "ALTER TABLE deliveries ADD COLUMN spool_id TEXT;"
    "CREATE UNIQUE INDEX deliveries_spool ON deliveries(spool_id)"
    " WHERE spool_id IS NOT NULL;"
    "CREATE TABLE chain(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
    " type TEXT NOT NULL, msg INTEGER, hash BLOB NOT NULL,"
    " segment INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL);"
    "CREATE INDEX chain_msg ON chain(msg);"
    "CREATE TABLE checkpoints(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"
    " time INTEGER NOT NULL, hash BLOB NOT NULL, key TEXT NOT NULL,"
    " signature BLOB, segment INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " length INTEGER NOT NULL);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL);";

/* Version 3: governance. The directory (who is who: employees, customers,
 * the company's bank accounts), legal holds, tombstones of purged
 * messages, and the audit log (sealed into the chain by the writer). */
static const char idx_schema_v3[] =
    "CREATE TABLE employees(address TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " department TEXT NOT NULL, status TEXT NOT NULL"
    " CHECK (status IN ('active','leaving','departed')),"
    " departed TEXT NOT NULL, successor TEXT NOT NULL, manager TEXT NOT NULL,"
    " mobile TEXT NOT NULL, updated INTEGER NOT NULL);"
    "CREATE INDEX employees_department ON employees(department);"
    "CREATE INDEX employees_domain ON employees(substr(address, instr(address, '@') + 1));"
    "CREATE TABLE employee_personal(employee TEXT NOT NULL, addr TEXT NOT NULL,"
    " PRIMARY KEY (employee, addr));"
    "CREATE INDEX employee_personal_addr ON employee_personal(addr);"
    "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " owner TEXT NOT NULL, source TEXT NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE customer_domains(domain TEXT PRIMARY KEY,"
    " customer INTEGER NOT NULL REFERENCES customers(id));"
    "CREATE INDEX customer_domains_customer ON customer_domains(customer);"
    "CREATE TABLE customer_contacts(addr TEXT PRIMARY KEY,"
    " customer INTEGER NOT NULL REFERENCES customers(id));"
    "CREATE INDEX customer_contacts_customer ON customer_contacts(customer);"
    "CREATE TABLE customer_phones(phone TEXT NOT NULL,"
    " customer INTEGER NOT NULL REFERENCES customers(id), PRIMARY KEY (phone, customer));"
    "CREATE INDEX customer_phones_customer ON customer_phones(customer);"
    "CREATE TABLE accounts(account TEXT PRIMARY KEY, bank TEXT NOT NULL,"
    " holder TEXT NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE holds(id INTEGER PRIMARY KEY, name TEXT NOT NULL, query TEXT NOT NULL,"
    " note TEXT NOT NULL, created INTEGER NOT NULL, created_by TEXT NOT NULL,"
    " released INTEGER, released_by TEXT, seq INTEGER NOT NULL, release_seq INTEGER);"
    "CREATE UNIQUE INDEX holds_active ON holds(name) WHERE released IS NULL;"
    "CREATE TABLE purged(id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL,"
    " time INTEGER NOT NULL, rule TEXT NOT NULL, seq INTEGER NOT NULL,"
    " segment INTEGER, offset INTEGER, length INTEGER);"
    "CREATE INDEX purged_pending ON purged(segment, offset) WHERE segment IS NOT NULL;"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
    " user TEXT NOT NULL, uid INTEGER NOT NULL, command TEXT NOT NULL,"
    " args TEXT NOT NULL, results INTEGER NOT NULL, status INTEGER NOT NULL,"
    " detail TEXT NOT NULL, seq INTEGER UNIQUE);"
    "CREATE INDEX audit_time ON audit(time);"
    "CREATE INDEX audit_pending ON audit(id) WHERE seq IS NULL;";

/* Version 4: incidents (incident.h), one row per "incident" chain event;
 * the body hash (idx_body_hash) of each message, for the detectors (the
 * same text re-sent under other headers), NULL for a message archived
 * before (reindex fills it). */
static const char idx_schema_v4[] =
    "CREATE TABLE incidents(seq INTEGER PRIMARY KEY, msg INTEGER NOT NULL,"
    " time INTEGER NOT NULL, n INTEGER NOT NULL, sha256 TEXT NOT NULL, spool_id TEXT,"
    " category TEXT NOT NULL, rule TEXT NOT NULL, action TEXT NOT NULL,"
    " evidence TEXT NOT NULL, sender TEXT NOT NULL, auth TEXT NOT NULL,"
    " rcpts TEXT NOT NULL);"
    "CREATE UNIQUE INDEX incidents_spool ON incidents(spool_id, n)"
    " WHERE spool_id IS NOT NULL;"
    "CREATE INDEX incidents_category ON incidents(category, time);"
    "CREATE INDEX incidents_time ON incidents(time);"
    "CREATE INDEX incidents_msg ON incidents(msg);"
    "CREATE INDEX incidents_sender ON incidents(sender, time);"
    "CREATE INDEX incidents_auth ON incidents(auth, time) WHERE auth <> '';"
    "ALTER TABLE messages ADD COLUMN body_sha256 BLOB;"
    "CREATE INDEX messages_body ON messages(body_sha256) WHERE body_sha256 IS NOT NULL;";

static int idx_exec(struct idx *idx, const char *sql, char **error_r)
{
    char *msg = NULL;

    if (sqlite3_exec(idx->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cus_error(error_r, "%s: %s", idx->path, msg ? msg : sqlite3_errmsg(idx->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int idx_migrate(struct idx *idx, char **error_r)
{
    sqlite3_stmt *st;
    int version;

    if (sqlite3_prepare_v2(idx->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return cus_error(error_r, "%s: %s", idx->path, sqlite3_errmsg(idx->db));
    }
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > IDX_SCHEMA_VERSION)
        return cus_error(error_r, "%s: schema version %d is newer than this custos (%d)",
                         idx->path, version, IDX_SCHEMA_VERSION);
    if (version == IDX_SCHEMA_VERSION)
        return 0;
    if (sqlite3_db_readonly(idx->db, "main") == 1)
        return cus_error(error_r, "%s: schema version %d, this custos reads %d: the archive's "
                         "owner upgrades it by running any command that writes (such as "
                         "custos-archive checkpoint)", idx->path, version, IDX_SCHEMA_VERSION);
    if (idx_exec(idx, "BEGIN IMMEDIATE", error_r) < 0)
        return -1;
    /* Each step takes the schema one version forward. */
    if (version < 1 && idx_exec(idx, idx_schema_v1, error_r) < 0)
        goto fail;
    if (version < 2 && idx_exec(idx, idx_schema_v2, error_r) < 0)
        goto fail;
    if (version < 3 && idx_exec(idx, idx_schema_v3, error_r) < 0)
        goto fail;
    if (version < 4 && idx_exec(idx, idx_schema_v4, error_r) < 0)
        goto fail;
    if (idx_exec(idx, "PRAGMA user_version = " G_STRINGIFY(IDX_SCHEMA_VERSION), error_r) < 0)
        goto fail;
    return idx_exec(idx, "COMMIT", error_r);
fail:
    idx_exec(idx, "ROLLBACK", NULL);
    return -1;
}

int idx_open(const char *path, int flags, struct idx **idx_r, char **error_r)
{
    struct idx *idx = g_new0(struct idx, 1);
    int oflags = (flags & IDX_RDONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;

    if (flags & IDX_CREATE)
        oflags |= SQLITE_OPEN_CREATE;
    idx->path = g_strdup(path);
    if (sqlite3_open_v2(path, &idx->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        cus_error(error_r, "open(%s) failed: %s", path,
                  idx->db ? sqlite3_errmsg(idx->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(idx->db, 10000);
    if (tok_register(idx->db, error_r) < 0)
        goto fail;
    if (!(flags & IDX_RDONLY)) {
        int persist = 1;

        /* The -wal and -shm files outlive each connection: a reader of the
         * archive's group never has to create a file (perm.h). */
        sqlite3_file_control(idx->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
        /* A reader that only records its audit entry leaves the WAL to the
         * writer's checkpoints: no copy into index.db, no fsync, at close. */
        if (flags & IDX_NO_CKPT_ON_CLOSE)
            sqlite3_db_config(idx->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        /* Its entry then survives the process being killed at any moment
         * (it is in the WAL before anything is read); only a crash of the
         * machine itself before the next checkpoint could lose it. */
        if (idx_exec(idx, flags & IDX_NO_CKPT_ON_CLOSE ?
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          " PRAGMA foreign_keys=OFF" :
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                          " PRAGMA foreign_keys=OFF", error_r) < 0 ||
            idx_migrate(idx, error_r) < 0)
            goto fail;
    } else if (idx_migrate(idx, error_r) < 0) {
        goto fail;
    }
    idx_exec(idx, "PRAGMA cache_size=-32768; PRAGMA mmap_size=1073741824", NULL);
    *idx_r = idx;
    return 0;
fail:
    idx_close(&idx);
    return -1;
}

void idx_close(struct idx **idxp)
{
    struct idx *idx = *idxp;

    if (idx == NULL)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(idx->stmt[i]);
    sqlite3_close(idx->db);
    g_free(idx->path);
    g_free(idx);
    *idxp = NULL;
}

sqlite3 *idx_db(struct idx *idx)
{
    return idx->db;
}

int idx_begin(struct idx *idx, char **error_r)
{
    return idx_exec(idx, "BEGIN IMMEDIATE", error_r);
}

int idx_commit(struct idx *idx, char **error_r)
{
    return idx_exec(idx, "COMMIT", error_r);
}

void idx_rollback(struct idx *idx)
{
    if (!sqlite3_get_autocommit(idx->db))
        idx_exec(idx, "ROLLBACK", NULL);
}

int idx_savepoint(struct idx *idx, char **error_r)
{
    return idx_exec(idx, "SAVEPOINT msg", error_r);
}

int idx_release(struct idx *idx, char **error_r)
{
    return idx_exec(idx, "RELEASE msg", error_r);
}

void idx_rollback_savepoint(struct idx *idx)
{
    idx_exec(idx, "ROLLBACK TO msg; RELEASE msg", NULL);
}

/* Reset a cached statement and report its error. */
static int stmt_fail(struct idx *idx, sqlite3_stmt *st, char **error_r)
{
    cus_error(error_r, "%s: %s", idx->path, sqlite3_errmsg(idx->db));
    sqlite3_reset(st);
    return -1;
}

static int step_done(struct idx *idx, sqlite3_stmt *st, char **error_r)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        return stmt_fail(idx, st, error_r);
    sqlite3_reset(st);
    return 0;
}

static void loc_from(sqlite3_stmt *st, int col, struct store_loc *loc)
{
    if (loc == NULL)
        return;
    loc->segment = (uint32_t)sqlite3_column_int64(st, col);
    loc->offset = (uint64_t)sqlite3_column_int64(st, col + 1);
    loc->length = (uint32_t)sqlite3_column_int64(st, col + 2);
}

int idx_find_sha(struct idx *idx, const unsigned char sha[CUS_SHA256_LEN],
                 gint64 *id_r, struct store_loc *loc_r, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_FIND_SHA);
    int rc, found = 0;

    sqlite3_bind_blob(st, 1, sha, CUS_SHA256_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        if (id_r != NULL)
            *id_r = sqlite3_column_int64(st, 0);
        loc_from(st, 1, loc_r);
    } else if (rc != SQLITE_DONE) {
        return stmt_fail(idx, st, error_r);
    }
    sqlite3_reset(st);
    return found;
}

int idx_find_id(struct idx *idx, gint64 id, unsigned char sha_r[CUS_SHA256_LEN],
                struct store_loc *loc_r, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_FIND_ID);
    int rc, found = 0;

    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        if (sqlite3_column_bytes(st, 0) == CUS_SHA256_LEN)
            memcpy(sha_r, sqlite3_column_blob(st, 0), CUS_SHA256_LEN);
        loc_from(st, 1, loc_r);
    } else if (rc != SQLITE_DONE) {
        return stmt_fail(idx, st, error_r);
    }
    sqlite3_reset(st);
    return found;
}

int idx_find_spool(struct idx *idx, const char *spool_id, gint64 *msg_r, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_FIND_SPOOL);
    int rc, found = 0;

    sqlite3_bind_text(st, 1, spool_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        if (msg_r != NULL)
            *msg_r = sqlite3_column_int64(st, 0);
    } else if (rc != SQLITE_DONE) {
        return stmt_fail(idx, st, error_r);
    }
    sqlite3_reset(st);
    return found;
}

static void ref_free(gpointer p)
{
    struct idx_ref *r = p;

    g_free(r->from);
    if (r->rcpts != NULL)
        g_ptr_array_free(r->rcpts, TRUE);
    g_free(r);
}

int idx_ref_rcpts(struct idx *idx, struct idx_ref *r, char **error_r)
{
    sqlite3_stmt *st;
    GPtrArray *a;
    int rc;

    if (r->rcpts != NULL)
        return 0;
    a = g_ptr_array_new_with_free_func(g_free);
    st = stmt(idx, S_REF_ADDRS);
    sqlite3_bind_int64(st, 1, r->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *addr = (const char *)sqlite3_column_text(st, 0);
        if (addr != NULL && *addr != '\0')
            g_ptr_array_add(a, g_utf8_strdown(addr, -1));
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_reset(st);
    st = stmt(idx, S_REF_RCPTS);
    sqlite3_bind_int64(st, 1, r->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_ptr_array_add(a, g_strdup((const char *)sqlite3_column_text(st, 0)));
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_reset(st);
    r->rcpts = a;
    return 0;
fail:
    g_ptr_array_free(a, TRUE);
    return stmt_fail(idx, st, error_r);
}

static void (*body_sha256)(const void *, size_t, unsigned char *);

void idx_body_hash_use(void (*sha256)(const void *buf, size_t len,
                                      unsigned char out[CUS_SHA256_LEN]))
{
    body_sha256 = sha256;
}

int idx_body_hash(const struct msg *m, unsigned char sha_r[CUS_SHA256_LEN])
{
    const char *p = m->body->str, *end = m->body->str + m->body->len, *run = p;
    GChecksum *ck = NULL;
    char *buf = NULL;
    gsize kept = 0, n = CUS_SHA256_LEN;
    int ok;

    /* the text without its white space, run by run as found (ASCII, most
     * of any body, without a GLib call per byte): copied for the given
     * SHA-256, else hashed as it goes by GLib's */
    if (body_sha256 != NULL)
        buf = g_malloc(m->body->len + 1);
    else
        ck = g_checksum_new(G_CHECKSUM_SHA256);
#define BODY_RUN(from, to) do { \
        if (buf != NULL) \
            memcpy(buf + kept, (from), (size_t)((to) - (from))); \
        else \
            g_checksum_update(ck, (const guchar *)(from), (to) - (from)); \
        kept += (gsize)((to) - (from)); \
    } while (0)
    if (cus_is_ascii(p, m->body->len)) {
        /* ASCII (most bodies): from white space to white space by strcspn
         * (the body is a GString: a NUL ends it; one inside is kept) */
        for (const char *q = p; q < end;) {
            q += strcspn(q, " \t\n\r\f");
            if (q >= end)
                break;
            if (*q != '\0') {
                if (q > run)
                    BODY_RUN(run, q);
                run = q + 1;
            }
            q++;
        }
        p = end;
    }
    while (p < end) {
        const char *next;
        int space;
        if ((unsigned char)*p < 0x80) {
            space = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f';
            next = p + 1;
        } else {
            gunichar c = g_utf8_get_char(p);
            space = g_unichar_isspace(c) || c == 0xFEFF || c == 0x200B;
            next = g_utf8_next_char(p);
        }
        if (space) {
            if (p > run)
                BODY_RUN(run, p);
            run = next;
        }
        p = next;
    }
    if (end > run)
        BODY_RUN(run, end);
#undef BODY_RUN
    ok = kept >= IDX_BODY_HASH_MIN;
    if (ok && buf != NULL)
        body_sha256(buf, kept, sha_r);
    else if (ok)
        g_checksum_get_digest(ck, sha_r, &n);
    if (ck != NULL)
        g_checksum_free(ck);
    g_free(buf);
    return ok;
}

/* The messages statement st (bound but for its limit, parameter 2) finds,
 * each with its From address. */
static int refs_find(struct idx *idx, sqlite3_stmt *st, int max, GPtrArray **refs_r,
                     char **error_r)
{
    GPtrArray *refs = g_ptr_array_new_with_free_func(ref_free);
    int rc;

    *refs_r = NULL;
    sqlite3_bind_int(st, 2, max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct idx_ref *r = g_new0(struct idx_ref, 1);
        const char *from = (const char *)sqlite3_column_text(st, 1);
        r->id = sqlite3_column_int64(st, 0);
        r->from = from != NULL ? g_utf8_strdown(from, -1) : g_strdup("");
        g_ptr_array_add(refs, r);
    }
    if (rc != SQLITE_DONE) {
        g_ptr_array_free(refs, TRUE);
        return stmt_fail(idx, st, error_r);
    }
    sqlite3_reset(st);
    *refs_r = refs;
    return 0;
}

int idx_find_refs(struct idx *idx, const char *message_id, int max, GPtrArray **refs_r,
                  char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_REF_IDS);

    sqlite3_bind_text(st, 1, message_id, -1, SQLITE_TRANSIENT);
    return refs_find(idx, st, max, refs_r, error_r);
}

int idx_find_body_refs(struct idx *idx, const unsigned char sha[CUS_SHA256_LEN], int max,
                       GPtrArray **refs_r, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_BODY_IDS);

    sqlite3_bind_blob(st, 1, sha, CUS_SHA256_LEN, SQLITE_TRANSIENT);
    return refs_find(idx, st, max, refs_r, error_r);
}

int idx_add_chain(struct idx *idx, gint64 seq, gint64 time, const char *type, gint64 msg,
                  const unsigned char hash[CUS_SHA256_LEN], const struct store_loc *loc,
                  char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_INS_CHAIN);

    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, time);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
    if (msg > 0)
        sqlite3_bind_int64(st, 4, msg);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_blob(st, 5, hash, CUS_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, loc->segment);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)loc->offset);
    sqlite3_bind_int64(st, 8, loc->length);
    return step_done(idx, st, error_r);
}

int idx_chain_head(struct idx *idx, gint64 *seq_r, unsigned char hash_r[CUS_SHA256_LEN],
                   char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_CHAIN_HEAD);
    int rc, found = 0;

    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        *seq_r = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) != CUS_SHA256_LEN) {
            sqlite3_reset(st);
            return cus_error(error_r, "%s: chain entry %" G_GINT64_FORMAT " has no valid hash",
                             idx->path, *seq_r);
        }
        memcpy(hash_r, sqlite3_column_blob(st, 1), CUS_SHA256_LEN);
    } else if (rc != SQLITE_DONE) {
        return stmt_fail(idx, st, error_r);
    }
    sqlite3_reset(st);
    return found;
}

int idx_add_checkpoint(struct idx *idx, gint64 seq, gint64 time,
                       const unsigned char hash[CUS_SHA256_LEN], const char *key,
                       const unsigned char *sig, size_t sig_len, const struct store_loc *loc,
                       char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_INS_CP);

    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, time);
    sqlite3_bind_blob(st, 3, hash, CUS_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, key, -1, SQLITE_STATIC);
    if (sig != NULL)
        sqlite3_bind_blob(st, 5, sig, (int)sig_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, loc->segment);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)loc->offset);
    sqlite3_bind_int64(st, 8, loc->length);
    return step_done(idx, st, error_r);
}

int idx_meta_get(struct idx *idx, const char *key, char **value_r, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_META_GET);
    int rc, found = 0;

    *value_r = NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        found = 1;
        *value_r = g_strdup((const char *)sqlite3_column_text(st, 0));
    } else if (rc != SQLITE_DONE) {
        return stmt_fail(idx, st, error_r);
    }
    sqlite3_reset(st);
    return found;
}

int idx_meta_set(struct idx *idx, const char *key, const char *value, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_META_SET);

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    return step_done(idx, st, error_r);
}

static const char *addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at != NULL ? at + 1 : "";
}

int idx_add_message(struct idx *idx, const unsigned char sha[CUS_SHA256_LEN],
                    const struct store_loc *loc, uint64_t raw_size,
                    const struct msg *m, gint64 added, gint64 want_id, gint64 *id_r,
                    char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_INS_MSG);
    GString *limits = g_string_new(NULL), *attnames = g_string_new(NULL);
    gint64 id;
    int ret = -1;

    for (guint i = 0; i < m->limits->len; i++)
        g_string_append_printf(limits, "%s%s", i ? "\n" : "",
                               (const char *)g_ptr_array_index(m->limits, i));
    sqlite3_bind_blob(st, 1, sha, CUS_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, loc->segment);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)loc->offset);
    sqlite3_bind_int64(st, 4, loc->length);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)raw_size);
    sqlite3_bind_int64(st, 6, m->date);
    sqlite3_bind_text(st, 7, m->message_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, m->subject, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, (int)m->atts->len);
    sqlite3_bind_text(st, 10, limits->str, (int)limits->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, added);
    if (want_id > 0)
        sqlite3_bind_int64(st, 12, want_id);
    else
        sqlite3_bind_null(st, 12);
    if (step_done(idx, st, error_r) < 0)
        goto out;
    id = sqlite3_last_insert_rowid(idx->db);

    st = stmt(idx, S_INS_ADDR);
    for (guint i = 0; i < m->addrs->len; i++) {
        const struct msg_addr *a = g_ptr_array_index(m->addrs, i);
        char *addr = g_utf8_strdown(a->addr, -1);   /* index.h: lower case */
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, a->role);
        sqlite3_bind_text(st, 3, a->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, addr, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, addr_domain(addr), -1, SQLITE_TRANSIENT);
        g_free(addr);
        if (step_done(idx, st, error_r) < 0)
            goto out;
    }
    st = stmt(idx, S_INS_ATT);
    for (guint i = 0; i < m->atts->len; i++) {
        const struct msg_att *a = g_ptr_array_index(m->atts, i);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_text(st, 3, a->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, a->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, a->path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)a->size);
        sqlite3_bind_text(st, 7, a->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, a->depth);
        if (step_done(idx, st, error_r) < 0)
            goto out;
        if (*a->name != '\0')
            g_string_append_printf(attnames, "%s\n", a->name);
    }
    st = stmt(idx, S_INS_FTS);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, m->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->body->str, (int)m->body->len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, attnames->str, (int)attnames->len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, m->att_text->str, (int)m->att_text->len, SQLITE_STATIC);
    if (step_done(idx, st, error_r) < 0)
        goto out;
    {
        unsigned char body[CUS_SHA256_LEN];
        int hashed = m->body_hashed;

        if (hashed == 1)
            memcpy(body, m->body_sha256, CUS_SHA256_LEN);
        else if (hashed == 0)
            hashed = idx_body_hash(m, body) ? 1 : -1;
        if (hashed == 1) {
            st = stmt(idx, S_SET_BODY);
            sqlite3_bind_blob(st, 1, body, CUS_SHA256_LEN, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, id);
            if (step_done(idx, st, error_r) < 0)
                goto out;
        }
    }
    if (id_r != NULL)
        *id_r = id;
    ret = 0;
out:
    g_string_free(limits, TRUE);
    g_string_free(attnames, TRUE);
    return ret;
}

int idx_add_delivery(struct idx *idx, gint64 msg_id, const struct idx_envelope *env,
                     const struct store_loc *loc, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_INS_DELIV);
    gint64 did;

    sqlite3_bind_int64(st, 1, msg_id);
    sqlite3_bind_int64(st, 2, env->time);
    sqlite3_bind_text(st, 3, env->sender ? env->sender : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, env->client ? env->client : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, env->queue_id ? env->queue_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, env->source ? env->source : "", -1, SQLITE_STATIC);
    if (loc != NULL) {
        sqlite3_bind_int64(st, 7, loc->segment);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)loc->offset);
        sqlite3_bind_int64(st, 9, loc->length);
    } else {
        for (int i = 7; i <= 9; i++)
            sqlite3_bind_null(st, i);
    }
    if (env->spool_id != NULL && *env->spool_id != '\0')
        sqlite3_bind_text(st, 10, env->spool_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 10);
    if (step_done(idx, st, error_r) < 0)
        return -1;
    did = sqlite3_last_insert_rowid(idx->db);
    st = stmt(idx, S_INS_RCPT);
    for (int i = 0; env->rcpts != NULL && env->rcpts[i] != NULL; i++) {
        char *addr = g_utf8_strdown(env->rcpts[i], -1);
        sqlite3_bind_int64(st, 1, did);
        sqlite3_bind_int64(st, 2, msg_id);
        sqlite3_bind_text(st, 3, addr, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, addr_domain(addr), -1, SQLITE_TRANSIENT);
        g_free(addr);
        if (step_done(idx, st, error_r) < 0)
            return -1;
    }
    return 0;
}

static char *fmt_addr(const char *name, const char *addr)
{
    if (name == NULL || *name == '\0')
        return g_strdup(addr);
    return g_strdup_printf("%s <%s>", name, addr);
}

static void hit_clear(struct idx_hit *h)
{
    g_ptr_array_set_size(h->from, 0);
    g_ptr_array_set_size(h->to, 0);
    g_ptr_array_set_size(h->cc, 0);
    g_ptr_array_set_size(h->bcc, 0);
    g_ptr_array_set_size(h->att_names, 0);
}

/* Run st for message id; add its first column of every row to out. */
static int collect_text(struct idx *idx, sqlite3_stmt *st, gint64 id, GPtrArray *out,
                        char **error_r)
{
    int rc;

    sqlite3_bind_int64(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_ptr_array_add(out, g_strdup((const char *)sqlite3_column_text(st, 0)));
    if (rc != SQLITE_DONE)
        return stmt_fail(idx, st, error_r);
    sqlite3_reset(st);
    return 0;
}

/* Fill the lists of hit h (id already set) from addrs, rcpts, attachments. */
static int hit_fill(struct idx *idx, struct idx_hit *h, char **error_r)
{
    sqlite3_stmt *st = stmt(idx, S_HIT_ADDRS);
    GPtrArray *lists[3] = { h->from, h->to, h->cc };
    int rc;

    hit_clear(h);
    sqlite3_bind_int64(st, 1, h->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int role = sqlite3_column_int(st, 0);
        g_ptr_array_add(lists[role], fmt_addr((const char *)sqlite3_column_text(st, 1),
                                              (const char *)sqlite3_column_text(st, 2)));
    }
    if (rc != SQLITE_DONE)
        return stmt_fail(idx, st, error_r);
    sqlite3_reset(st);
    if (collect_text(idx, stmt(idx, S_HIT_BCC), h->id, h->bcc, error_r) < 0 ||
        collect_text(idx, stmt(idx, S_HIT_ATTS), h->id, h->att_names, error_r) < 0)
        return -1;
    return 0;
}

int idx_search(struct idx *idx, const char *query, gint64 limit, gint64 offset,
               gint64 *total_r, idx_hit_cb *cb, void *ctx, char **error_r)
{
    struct qry *q = NULL;
    sqlite3_stmt *st = NULL;
    char *sql = NULL;
    struct idx_hit h;
    int rc, ret = -1, n;

    memset(&h, 0, sizeof(h));
    if (qry_compile(query, &q, error_r) < 0)
        return -1;
    if (total_r != NULL) {
        sql = g_strdup_printf("SELECT count(*) FROM messages m WHERE %s", q->where->str);
        if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK) {
            cus_error(error_r, "%s: search: %s", idx->path, sqlite3_errmsg(idx->db));
            goto out;
        }
        qry_bind(q, st, 1);
        if (sqlite3_step(st) != SQLITE_ROW) {
            cus_error(error_r, "%s: search: %s", idx->path, sqlite3_errmsg(idx->db));
            goto out;
        }
        *total_r = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        st = NULL;
        g_free(sql);
        sql = NULL;
    }
    if (cb == NULL) {
        ret = 0;
        goto out;
    }
    sql = g_strdup_printf("SELECT m.id, m.date, m.raw_size, m.n_att, m.sha256, m.message_id,"
                          " m.subject, m.limits FROM messages m WHERE %s"
                          " ORDER BY m.date DESC, m.id DESC LIMIT ? OFFSET ?", q->where->str);
    if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK) {
        cus_error(error_r, "%s: search: %s", idx->path, sqlite3_errmsg(idx->db));
        goto out;
    }
    n = qry_bind(q, st, 1);
    sqlite3_bind_int64(st, n, limit < 0 ? -1 : limit);
    sqlite3_bind_int64(st, n + 1, offset < 0 ? 0 : offset);
    h.from = g_ptr_array_new_with_free_func(g_free);
    h.to = g_ptr_array_new_with_free_func(g_free);
    h.cc = g_ptr_array_new_with_free_func(g_free);
    h.bcc = g_ptr_array_new_with_free_func(g_free);
    h.att_names = g_ptr_array_new_with_free_func(g_free);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        h.id = sqlite3_column_int64(st, 0);
        h.date = sqlite3_column_int64(st, 1);
        h.size = sqlite3_column_int64(st, 2);
        h.n_att = sqlite3_column_int(st, 3);
        if (sqlite3_column_bytes(st, 4) == CUS_SHA256_LEN)
            cus_hex(sqlite3_column_blob(st, 4), CUS_SHA256_LEN, h.sha256);
        else
            h.sha256[0] = '\0';
        h.message_id = (char *)sqlite3_column_text(st, 5);
        h.subject = (char *)sqlite3_column_text(st, 6);
        h.limits = (char *)sqlite3_column_text(st, 7);
        if (hit_fill(idx, &h, error_r) < 0)
            goto out;
        if (cb(ctx, &h) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        cus_error(error_r, "%s: search: %s", idx->path, sqlite3_errmsg(idx->db));
        goto out;
    }
    ret = 0;
out:
    if (h.from != NULL) {
        g_ptr_array_free(h.from, TRUE);
        g_ptr_array_free(h.to, TRUE);
        g_ptr_array_free(h.cc, TRUE);
        g_ptr_array_free(h.bcc, TRUE);
        g_ptr_array_free(h.att_names, TRUE);
    }
    sqlite3_finalize(st);
    g_free(sql);
    qry_free(&q);
    return ret;
}

int idx_search_brief(struct idx *idx, const char *query, idx_brief_cb *cb, void *ctx,
                     char **error_r)
{
    struct qry *q = NULL;
    sqlite3_stmt *st = NULL;
    struct idx_brief b;
    char *sql;
    int rc, ret = -1;

    if (qry_compile(query, &q, error_r) < 0)
        return -1;
    sql = g_strdup_printf("SELECT m.id, m.date, m.sha256, m.message_id FROM messages m"
                          " WHERE %s ORDER BY m.date DESC, m.id DESC", q->where->str);
    if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK) {
        cus_error(error_r, "%s: search: %s", idx->path, sqlite3_errmsg(idx->db));
        goto out;
    }
    qry_bind(q, st, 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        b.id = sqlite3_column_int64(st, 0);
        b.date = sqlite3_column_int64(st, 1);
        b.sha256 = sqlite3_column_bytes(st, 2) == CUS_SHA256_LEN ? sqlite3_column_blob(st, 2)
                                                                 : NULL;
        b.message_id = (const char *)sqlite3_column_text(st, 3);
        if (cb(ctx, &b) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        cus_error(error_r, "%s: search: %s", idx->path, sqlite3_errmsg(idx->db));
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    g_free(sql);
    qry_free(&q);
    return ret;
}

int idx_stats(struct idx *idx, struct idx_stats *s, char **error_r)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM deliveries),"
        " (SELECT count(*) FROM rcpts), (SELECT coalesce(sum(raw_size),0) FROM messages),"
        " (SELECT coalesce(sum(m.raw_size),0) FROM deliveries d JOIN messages m ON m.id = d.msg),"
        " (SELECT count(*) FROM messages WHERE limits != '')";
    sqlite3_stmt *st;

    if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        cus_error(error_r, "%s: stats: %s", idx->path, sqlite3_errmsg(idx->db));
        sqlite3_finalize(st);
        return -1;
    }
    s->messages = sqlite3_column_int64(st, 0);
    s->deliveries = sqlite3_column_int64(st, 1);
    s->rcpts = sqlite3_column_int64(st, 2);
    s->raw_bytes = sqlite3_column_int64(st, 3);
    s->delivered_bytes = sqlite3_column_int64(st, 4);
    s->limited = sqlite3_column_int64(st, 5);
    sqlite3_finalize(st);
    return 0;
}
