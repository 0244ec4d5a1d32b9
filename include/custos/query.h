/*
 * query.h - the custos query language, compiled to SQL with bound parameters
 *
 * One string, Gmail/notmuch-like:
 *   bare words and "quoted phrases" in any script (full text: subject, body,
 *   attachment names and text); from: to: cc: bcc: participant: domain:
 *   subject: body: attachment: has:attachment after: before: date: id:
 *   msgid: sha256: employee: customer: department: flagged: spool:; AND
 *   (implicit), OR,
 *   NOT or a leading '-', parentheses.
 *   '*' or an empty query matches every message. word* is a prefix search.
 *   A single CJK character is searched as a prefix (see tok.h).
 * Precedence: NOT > AND > OR. Keywords AND/OR/NOT in upper case only.
 *
 * Fields: subject: body: attachment: (file names) search one full-text
 * column, bare words all four. from: to: cc: with an '@' compare the whole
 * address, "@domain" the end of it, otherwise a substring of address or
 * display name (from:alice, from:张三). bcc: an envelope recipient in
 * neither To nor Cc. participant: any header address, envelope recipient
 * or envelope sender. domain:example.com also matches its subdomains.
 * after:D (>=), before:D (<), date:D, date:D1..D2 with D = YYYY, YYYY-MM or
 * YYYY-MM-DD (UTC). id:N, msgid:X (<> optional), sha256:HEX (8 to 64 hex
 * digits, fewer is a prefix), has:attachment.
 * From the directory (directory.h), as it is when the query runs:
 * employee:ADDRESS (work or registered personal address) or employee:NAME
 * (the directory name, ASCII case ignored, or the local part of the work
 * address): messages with one of that employee's addresses (work and
 * personal) in any header or as an envelope recipient. customer:NAME or
 * customer:DOMAIN (customer:ADDRESS: the customer with that contact):
 * messages with any of its domains (exact) or contacts likewise.
 * department:NAME: messages of any employee of that department. A '*'
 * after the value makes it a prefix. Nobody in the directory: no match.
 * flagged:CATEGORY: messages with an incident of that category
 * (incident.h; ASCII case ignored; CATEGORY* a prefix); flagged:any or
 * flagged:* any incident at all. spool:ID: the message archived from spool
 * entry ID (the X-Custos-Archive header custos-milter adds); an ID that is
 * not a spool id is an error.
 * A word with ':' that is not a field is an error if it looks like one
 * ("foo:bar"), else a word ("10:30", "http://x"); quote it to search it. A term with no token at
 * all ("!!!", an emoji) is ignored, as if not written.
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
 * the next free index, or -1 if SQLite refused a binding. */
struct sqlite3_stmt;
int qry_bind(const struct qry *q, struct sqlite3_stmt *stmt, int first);

#endif
