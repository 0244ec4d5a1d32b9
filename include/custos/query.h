/*
 * query.h - the custos query language, compiled to SQL with bound parameters
 *
 * One string, Gmail/notmuch-like:
 *   bare words and "quoted phrases" in any script (full text: subject, body,
 *   attachment names and text); from: to: cc: bcc: participant: domain:
 *   subject: body: attachment: has:attachment after: before: date: id:
 *   msgid: sha256:; AND (implicit), OR, NOT or a leading '-', parentheses.
 *   '*' or an empty query matches every message. word* is a prefix search.
 *   A single CJK character is searched as a prefix (see tok.h).
 * Precedence: NOT > AND > OR. Keywords AND/OR/NOT in upper case only.
 *
 * qry_compile() yields an SQL boolean expression over the alias "m" of the
 * messages table (see index.h for the schema), with '?' placeholders and a
 * matching parameter list. Nothing from the query is ever put into the SQL
 * text itself. A syntax error names the 1-based column.
 */
#ifndef CUSTOS_QUERY_H
#define CUSTOS_QUERY_H

#include <glib.h>

/* Bounds on query text: longer, deeper (parentheses and NOTs, counted
 * together) or with more terms (words, phrases, field:value) is an error. */
#define QRY_MAX_LEN   4096
#define QRY_MAX_DEPTH 16
#define QRY_MAX_TERMS 256

enum qry_param_type { QRY_TEXT, QRY_INT, QRY_BLOB };

struct qry_param {
    /* Bounds on query text: longer, deeper (parentheses and NOTs, counted
 * together) or with more terms (words, phrases, field:value) is an error. */
#define QRY_MAX_LEN   4096
#define QRY_MAX_DEPTH 16
#define QRY_MAX_TERMS 256

enum qry_param_type type;
    char *text;             /* QRY_TEXT (UTF-8) */
    gint64 num;             /* QRY_INT */
    GBytes *blob;           /* QRY_BLOB */
};

struct qry {
    GString *where;         /* SQL expression, e.g. "(m.id IN (SELECT ...))" */
    GPtrArray *params;      /* struct qry_param *, in placeholder order */
};

/* Compile query text. On a syntax error: -1 and a message like
 * "query: column 7: unbalanced parenthesis". */
int qry_compile(const char *text, struct qry **q_r, char **error_r);
void qry_free(struct qry **q);

/* Bind q's parameters to stmt starting at index first (1-based); returns
 * the next free index. */
struct sqlite3_stmt;
int qry_bind(const struct qry *q, struct sqlite3_stmt *stmt, int first);

#endif
