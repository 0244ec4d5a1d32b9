/*
 * msg-private.h - internals shared by msg.c (MIME walk, headers),
 * msg-text.c (charsets, RFC 2047/2231, HTML) and msg-attach.c (attachments,
 * archives, OOXML).
 */
#ifndef CUSTOS_MSG_PRIVATE_H
#define CUSTOS_MSG_PRIVATE_H

#include <gmime/gmime.h>
#include "custos/msg.h"

/* Lines kept in msg->limits; further hits are counted in one last line. */
#define MSG_LIMIT_LINES 32

/* Per-parse state: the message being built and what has been used. */
struct msg_ctx {
    struct msg *m;
    const struct msg_limits *lim;
    int parts;                  /* MIME parts + archive members seen */
    guint64 expanded;           /* decoded bytes of parts and members */
    int limit_lines;            /* hits recorded (for MSG_LIMIT_LINES) */
    int limits_dropped;         /* hits not recorded */
    unsigned int hit_flags;     /* MSG_HIT_* already reported once */
};

enum {
    MSG_HIT_PARTS = 1 << 0,
    MSG_HIT_EXPANDED = 1 << 1,
    MSG_HIT_TEXT = 1 << 2,
};

/* msg.c */
void msg_ctx_limit(struct msg_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 1 if one more part/member may be looked at (counts it); 0 and records. */
int msg_ctx_take_part(struct msg_ctx *ctx, const char *where);
/* Append UTF-8 text to body or att_text within lim->text_size. */
void msg_ctx_text(struct msg_ctx *ctx, GString *to, const char *text, size_t len);
/* Walk a parsed GMime message: its body text goes to body (or att_text when
 * nested), its attachments to atts at depth. */
void msg_walk_message(struct msg_ctx *ctx, GMimeMessage *message, int depth,
                      const char *partid, const char *path, int nested);
/* Parse bytes as a message and walk it as an attached one at depth. */
void msg_walk_rfc822_bytes(struct msg_ctx *ctx, const char *data, size_t len, int depth,
                           const char *partid, const char *path);
/* Charge n decoded bytes to lim->expanded_size; returns how many fit. */
size_t msg_ctx_charge(struct msg_ctx *ctx, size_t n, const char *where);

/* msg-text.c */
/* Canonical iconv name for a MIME charset label ("gb2312" -> "GB18030",
 * "iso-8859-1" -> "WINDOWS-1252"), written into buf (64 bytes); NULL when
 * the label says nothing useful (empty, us-ascii): guess then. */
#define MSG_CHARSET_MAX 64
const char *msg_charset_canon(const char *label, size_t len, char *buf);
/* Append len bytes in charset (NULL: guess) to out as valid UTF-8. */
void msg_append_utf8(GString *out, const char *buf, size_t len, const char *charset);
/* Value of parameter name (RFC 2231 continuations and charset, RFC 2047,
 * raw 8-bit all decoded) in a raw Content-Type/-Disposition value; NULL
 * if absent. */
char *msg_param_decode(const char *raw, const char *name);
/* The charset a <meta> tag in the first bytes of HTML declares, or NULL. */
char *msg_html_meta_charset(const char *html, size_t len);
/* Unfold: drop CR and LF (a fold keeps its white space). */
char *msg_unfold(const char *raw);

/* msg-attach.c */
/* One decoded attachment (MIME part or archive member): list it and pull
 * its text; recurse into archives and attached messages. name UTF-8,
 * ctype lower case or NULL, charset of a text part or NULL; cpath the
 * container's path ("" for the message itself). */
void msg_attach(struct msg_ctx *ctx, const char *data, size_t len,
                const char *name, const char *ctype, const char *charset,
                int depth, const char *partid, const char *cpath);
/* XML (OOXML/ODF part) reduced to text: tags dropped, paragraphs as lines. */
void msg_xml_text(GString *out, const char *xml, size_t len);
/* Types sniffed from content and name: "application/zip" etc., or NULL. */
const char *msg_sniff_type(const char *data, size_t len, const char *name);

#endif
