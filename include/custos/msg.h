/*
 * msg.h - the message model: one parsed mail message, decoded to UTF-8
 *
 * msg_parse() reads raw RFC 5322 bytes with GMime 3 and yields every header
 * decoded (RFC 2047 in any charset, adjacent encoded-words joined before
 * decoding, every GB* label decoded as GB18030, undeclared 8-bit tried as
 * UTF-8 then GB18030), addresses with decoded names, the date, the text of
 * text/plain and text/html parts (HTML reduced to text), and attachments with
 * their text extracted where there is text (text/ types, CSV, vCard,
 * message/rfc822 recursively, archives via libarchive, nested, and OOXML).
 *
 * Parsing is bounded by struct msg_limits. A limit hit is recorded in
 * msg->limits and parsing goes on with what it has: never fatal. Malformed
 * MIME still parses (as much as can be). All strings are valid UTF-8 with
 * no NUL bytes. msg_parse() fails only on allocation-level trouble.
 */
#ifndef CUSTOS_MSG_H
#define CUSTOS_MSG_H

#include <stddef.h>
#include <glib.h>
#include "custos/util.h"

struct msg_limits {
    size_t message_size;    /* raw bytes parsed at most */
    int depth;              /* MIME + archive nesting */
    int parts;              /* MIME parts + archive members, all levels */
    size_t expanded_size;   /* decoded bytes of all parts and members */
    int expansion_ratio;    /* member size / compressed size */
    size_t text_size;       /* extracted text kept (body + attachments) */
};

/* Defaults: 64 MiB, depth 8, 1000 parts, 256 MiB, ratio 100, 8 MiB text. */
void msg_limits_default(struct msg_limits *lim);

enum msg_role { MSG_FROM = 0, MSG_TO = 1, MSG_CC = 2, MSG_REPLY_TO = 3, MSG_SENDER = 4 };

struct msg_addr {
    enum msg_role role;
    char *name;             /* decoded display name, "" if none */
    char *addr;             /* addr-spec, domain lower-cased, "" if none */
};

struct msg_att {
    char *name;             /* decoded file name (UTF-8), "" if none */
    char *type;             /* "application/zip", lower case */
    char *path;             /* where: "report.zip/inner/a.docx"; "" at top */
    int encrypted;          /* an archive (zip, 7z, rar) with encrypted
                             * members, or whose listing is encrypted */
    int mismatch;           /* the content's magic bytes say an archive, a
                             * document (PDF, Office) or a program, the name's
                             * extension another kind of file (a zip named
                             * .jpg; not a GIF named .txt, nor an xlsx, which
                             * is a zip) */
    guint64 size;           /* decoded size in bytes */
    char sha256[CUS_SHA256_HEX]; /* of the decoded content */
    int depth;              /* 1 = attached to the message */
    char *from;             /* an attached message (message/rfc822, .eml):
                             * its first From address, lower case; else "" */
    char *message_id;       /* an attached message: its Message-ID without
                             * <>; else "" */
};

struct msg_header {
    char *name;
    char *value;            /* decoded, unfolded */
};

struct msg {
    char *message_id;       /* without <>, "" if none */
    char *subject;          /* decoded, "" if none */
    gint64 date;            /* unix time from Date:, 0 if none/unparseable */
    GPtrArray *headers;     /* struct msg_header *, in order */
    GPtrArray *addrs;       /* struct msg_addr *, all roles, in order */
    GString *body;          /* text of the text parts, UTF-8 */
    GPtrArray *atts;        /* struct msg_att * */
    GString *att_text;      /* text extracted from attachments, UTF-8 */
    GPtrArray *limits;      /* char *: each limit hit, human-readable */
    int malformed;          /* GMime reported broken structure/headers */
    int body_hashed;        /* 1: body_sha256 is idx_body_hash()'s, -1: it has
                             * none, 0: not computed yet */
    unsigned char body_sha256[CUS_SHA256_LEN];
};

/* Parse raw bytes. *msg_r is always set on success. */
int msg_parse(const void *raw, size_t len, const struct msg_limits *lim,
              struct msg **msg_r, char **error_r);

void msg_free(struct msg **msg);

/* The same model of a message GMime has already parsed (borrowed; e.g.
 * from a file stream whose parts are read on demand). lim as above; its
 * message_size is not applied (the caller parsed what it parsed), and
 * malformed is set only by what the walk itself finds. */
struct _GMimeMessage;
int msg_from_gmime(struct _GMimeMessage *message, const struct msg_limits *lim,
                   struct msg **msg_r, char **error_r);

/* The GMime parser options msg_parse uses (loose RFC 2047, addresses and
 * parameters; UTF-8, GB18030, Latin-1 tried for undeclared 8-bit), for a
 * caller that parses with GMime itself. Valid after msg_init(). */
struct _GMimeParserOptions *msg_parser_options(void);

/* An empty message for raw bytes that could not be parsed at all (kept
 * byte-exact all the same); why is recorded in limits. */
struct msg *msg_new_unparsed(const char *why);

/* Decode one raw header value (RFC 2047, joined words, 8-bit guess). */
char *msg_decode_header(const char *raw);

/* Convert len bytes in charset (may be NULL: guess UTF-8, then GB18030,
 * then Latin-1) to valid UTF-8. GB2312/GBK/x-gbk/cp936 are read as GB18030. */
char *msg_to_utf8(const char *buf, size_t len, const char *charset);

/* Reduce HTML to text (tags dropped, entities decoded, blocks as lines). */
char *msg_html_to_text(const char *html, size_t len);

/* Call once before any msg_* use (g_mime_init). Idempotent. */
void msg_init(void);

#endif
