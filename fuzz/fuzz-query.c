/*
 * fuzz-query.c - libFuzzer target for the query language
 *
 * The input (up to its first NUL) goes to qry_compile(). A syntax error
 * must come back as "query: ..." with no result. A compiled query must be
 * one valid SQL expression: it is prepared into the search statement of
 * index.c against an in-memory index.db made by idx_open() (the real
 * schema and tokenizer, a few rows in it), its placeholders must match its
 * parameters, and stepping it must succeed (FTS5 parses the bound MATCH
 * expression only then). Its SQL text must be plain ASCII: nothing of the
 * query is ever copied into it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <sqlite3.h>

#include "custos/index.h"
#include "custos/query.h"

static struct idx *fuzz_idx;

/* Two messages with addresses, an attachment, a delivery and CJK text. */
static const char fuzz_rows[] =
    "INSERT INTO messages(id, sha256, segment, offset, length, raw_size, date,"
    " message_id, subject, n_att, limits, added) VALUES"
    " (1, x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',"
    "  1, 0, 100, 100, 1735689600, 'a@example.com', 'quarterly report', 1, '', 0),"
    " (2, x'ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',"
    "  1, 100, 100, 100, 0, '', '请把客户资料发我', 0, 'text limit', 0);"
    "INSERT INTO addrs(msg, role, name, addr, domain) VALUES"
    " (1, 0, 'Alice', 'alice@example.com', 'example.com'),"
    " (1, 1, '张三', 'zhang@corp.example.cn', 'corp.example.cn'),"
    " (2, 2, '', 'bob@163.com', '163.com');"
    "INSERT INTO attachments(msg, seq, name, type, path, size, sha256, depth) VALUES"
    " (1, 0, '客户名单.xlsx', 'application/zip', '', 10, '00', 1);"
    "INSERT INTO deliveries(id, msg, time, sender, client, queue_id, source) VALUES"
    " (1, 1, 0, 'alice@example.com', '', '', 'fuzz');"
    "INSERT INTO rcpts(delivery, msg, addr, domain) VALUES"
    " (1, 1, 'me@163.com', '163.com');"
    "INSERT INTO fts(rowid, subject, body, attname, atttext) VALUES"
    " (1, 'quarterly report', 'price list 10:30', '客户名单.xlsx', '客户 资料'),"
    " (2, '请把客户资料发我', 'ｑ３ 2024年', '', '');";

static void fuzz_fail(const char *what, const char *query, const char *detail)
{
    fprintf(stderr, "fuzz-query: %s\n  query: %.300s\n  %.600s\n", what, query,
            detail != NULL ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *error = NULL;

    setenv("G_SLICE", "always-malloc", 1);
    if (idx_open(":memory:", IDX_CREATE, &fuzz_idx, &error) < 0) {
        fprintf(stderr, "fuzz-query: %s\n", error);
        exit(1);
    }
    if (sqlite3_exec(idx_db(fuzz_idx), fuzz_rows, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "fuzz-query: rows: %s\n", sqlite3_errmsg(idx_db(fuzz_idx)));
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sqlite3 *db = idx_db(fuzz_idx);
    char *text = g_strndup((const char *)data, size), *error = NULL, *sql;
    struct qry *q = NULL;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc, next;

    if (qry_compile(text, &q, &error) < 0) {
        if (q != NULL || error == NULL || strncmp(error, "query: ", 7) != 0)
            fuzz_fail("error without \"query: \"", text, error);
        goto out;
    }
    if (q == NULL || q->where == NULL || q->params == NULL)
        fuzz_fail("no result", text, error);
    for (gsize i = 0; i < q->where->len; i++)
        if ((unsigned char)q->where->str[i] < 0x20 || (unsigned char)q->where->str[i] > 0x7e)
            fuzz_fail("query text in SQL", text, q->where->str);
    sql = g_strdup_printf("SELECT m.id, m.date FROM messages m WHERE %s"
                          " ORDER BY m.date DESC, m.id DESC LIMIT ? OFFSET ?", q->where->str);
    rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
    if (rc != SQLITE_OK)
        fuzz_fail("prepare failed", text, sqlite3_errmsg(db));
    if (st == NULL || *tail != '\0')
        fuzz_fail("not one statement", text, sql);
    if (sqlite3_bind_parameter_count(st) != (int)q->params->len + 2)
        fuzz_fail("placeholders do not match parameters", text, sql);
    next = qry_bind(q, st, 1);
    if (next != (int)q->params->len + 1)
        fuzz_fail("qry_bind", text, sqlite3_errmsg(db));
    sqlite3_bind_int64(st, next, 10);
    sqlite3_bind_int64(st, next + 1, 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE)
        fuzz_fail("step failed", text, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    g_free(sql);
out:
    qry_free(&q);
    g_free(error);
    g_free(text);
    return 0;
}
