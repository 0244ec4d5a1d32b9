/*
 * msg.c - the message model: parse raw mail into struct msg with GMime 3
 *
 * Headers are decoded by custos itself (msg-text.c) from GMime's raw
 * values, so joined encoded words and GB18030 apply everywhere. The MIME
 * tree is walked here: text parts feed msg->body (or att_text inside an
 * attached message), everything else goes to msg-attach.c. Every limit in
 * struct msg_limits is checked as we go; a hit is written to msg->limits
 * and parsing continues with what it has. Parsing is from memory, without
 * copying the input; the GMime options are built once.
 */
#include <stdarg.h>
#include <string.h>
#include "msg-private.h"

/* multipart nesting kept apart from lim->depth (rfc822 + archives), so a
 * forward of a forward is not cut short; this only guards the stack */
#define MSG_MULTIPART_NEST 64

static GMimeParserOptions *parser_options;
static __thread struct msg_ctx *current_ctx;   /* for the warning callback */

static void parser_warning(gint64 offset, GMimeParserWarning errcode,
                           const gchar *item, gpointer user_data)
{
    if (current_ctx != NULL)
        current_ctx->m->malformed = 1;
}

static gpointer init_once(gpointer unused)
{
    static const char *fallback[] = { "utf-8", "gb18030", "iso-8859-1", NULL };

    g_mime_init();
    parser_options = g_mime_parser_options_new();
    g_mime_parser_options_set_fallback_charsets(parser_options, fallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(parser_options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(parser_options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(parser_options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_warning_callback(parser_options, parser_warning, NULL);
    return NULL;
}

void msg_init(void)
{
    static GOnce once = G_ONCE_INIT;

    g_once(&once, init_once, NULL);
}

GMimeParserOptions *msg_parser_options(void)
{
    return parser_options;
}

void msg_limits_default(struct msg_limits *lim)
{
    lim->message_size = 64u << 20;
    lim->depth = 8;
    lim->parts = 1000;
    lim->expanded_size = 256u << 20;
    lim->expansion_ratio = 100;
    lim->text_size = 8u << 20;
}

/* --- limits ------------------------------------------------------------ */

void msg_ctx_limit(struct msg_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    char *line, *fixed;

    if (ctx->limit_lines >= MSG_LIMIT_LINES) {
        ctx->limits_dropped++;
        return;
    }
    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fixed = cus_utf8_repair(line, strlen(line));
    g_free(line);
    g_ptr_array_add(ctx->m->limits, fixed);
    ctx->limit_lines++;
}

int msg_ctx_take_part(struct msg_ctx *ctx, const char *where)
{
    if (ctx->parts >= ctx->lim->parts) {
        if (!(ctx->hit_flags & MSG_HIT_PARTS)) {
            ctx->hit_flags |= MSG_HIT_PARTS;
            msg_ctx_limit(ctx, "part limit %d reached at %s; later parts not read",
                          ctx->lim->parts, where);
        }
        return 0;
    }
    ctx->parts++;
    return 1;
}

void msg_ctx_text(struct msg_ctx *ctx, GString *to, const char *text, size_t len)
{
    size_t used = ctx->m->body->len + ctx->m->att_text->len;
    size_t room = used >= ctx->lim->text_size ? 0 : ctx->lim->text_size - used;
    int sep = to->len > 0 && to->str[to->len - 1] != '\n';

    while (len > 0 && (*text == '\n' || *text == ' ' || *text == '\r' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\r'))
        len--;
    if (len == 0)
        return;
    if (len + sep > room) {
        if (!(ctx->hit_flags & MSG_HIT_TEXT)) {
            ctx->hit_flags |= MSG_HIT_TEXT;
            msg_ctx_limit(ctx, "text limit %zu bytes reached; the rest of the text not kept",
                          ctx->lim->text_size);
        }
        if (room <= (size_t)sep)
            return;
        len = room - sep;
        /* cut on a character boundary */
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
        if (len == 0)
            return;
    }
    if (sep)
        g_string_append_c(to, '\n');
    g_string_append_len(to, text, len);
}

/* --- headers ----------------------------------------------------------- */

static const char *header_raw(GMimeObject *obj, const char *name)
{
    GMimeHeader *h = g_mime_header_list_get_header(g_mime_object_get_header_list(obj), name);

    return h ? g_mime_header_get_raw_value(h) : NULL; /* borrowed */
}

/* A valid-UTF-8 copy of a GMime string. */
static char *clean_dup(const char *s)
{
    if (s == NULL)
        return g_strdup("");
    if (g_utf8_validate(s, -1, NULL))
        return g_strdup(s);
    return cus_utf8_repair(s, strlen(s));
}

/* Make an address header GMime can parse without decoding anything
 * itself: 8-bit made UTF-8, runs of encoded words replaced by their
 * decoded text as a quoted string (or escaped inside one). */
static char *addr_prepare(const char *raw)
{
    char *utf8 = msg_to_utf8(raw, strlen(raw), NULL);
    char *u = msg_unfold(utf8);
    GString *out;
    const char *p;
    int quoted = 0, comment = 0;

    g_free(utf8);
    if (strstr(u, "=?") == NULL)
        return u;
    out = g_string_sized_new(strlen(u) + 16);
    for (p = u; *p;) {
        if (*p == '\\' && p[1]) {
            g_string_append_len(out, p, 2);
            p += 2;
            continue;
        }
        if (!comment && *p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '(')
            comment++;
        else if (!quoted && *p == ')' && comment > 0)
            comment--;
        if (p[0] == '=' && p[1] == '?') {
            /* extent of the run: words and the white space between */
            const char *q = p, *last = NULL;
            while (q[0] == '=' && q[1] == '?') {
                const char *e = strstr(q + 2, "?=");
                const char *qm1, *qm2;
                if (e == NULL)
                    break;
                /* "=?cs?X?" needs two '?' before the closing "?=" */
                qm1 = strchr(q + 2, '?');
                qm2 = qm1 ? strchr(qm1 + 1, '?') : NULL;
                if (qm2 == NULL || qm2 >= e)
                    break;
                /* the closing "?=" must come after the text's start */
                if (e == qm2) {
                    e = strstr(qm2 + 1, "?=");
                    if (e == NULL)
                        break;
                }
                last = e + 2;
                q = last;
                while (*q == ' ' || *q == '\t')
                    q++;
            }
            if (last != NULL) {
                char *run = g_strndup(p, last - p);
                char *dec = msg_decode_header(run);
                if (!quoted && !comment)
                    g_string_append_c(out, '"');
                for (const char *d = dec; *d; d++) {
                    if (*d == '"' || *d == '\\' || (comment && (*d == '(' || *d == ')')))
                        g_string_append_c(out, '\\');
                    g_string_append_c(out, *d);
                }
                if (!quoted && !comment)
                    g_string_append_c(out, '"');
                g_free(dec);
                g_free(run);
                p = last;
                continue;
            }
        }
        g_string_append_c(out, *p++);
    }
    g_free(u);
    return g_string_free(out, FALSE);
}

static void addr_add(struct msg *m, enum msg_role role, InternetAddressList *list)
{
    int n = list ? internet_address_list_length(list) : 0;

    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        struct msg_addr *a;
        char *at;

        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            addr_add(m, role, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)));
            continue;
        }
        a = g_new0(struct msg_addr, 1);
        a->role = role;
        a->name = clean_dup(internet_address_get_name(ia));
        a->addr = clean_dup(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)));
        at = strrchr(a->addr, '@');
        if (at != NULL) {
            if (g_str_is_ascii(at)) {
                for (char *c = at; *c; c++)
                    *c = g_ascii_tolower(*c);
            } else {
                char *low = g_utf8_strdown(at, -1);
                *at = '\0';
                char *joined = g_strconcat(a->addr, low, NULL);
                g_free(a->addr);
                g_free(low);
                a->addr = joined;
            }
        }
        g_ptr_array_add(m->addrs, a);
    }
}

static void addr_parse(struct msg *m, enum msg_role role, const char *raw)
{
    char *prep = addr_prepare(raw);
    InternetAddressList *list = internet_address_list_parse(parser_options, prep);

    if (list != NULL) {
        addr_add(m, role, list);
        g_object_unref(list);
    }
    g_free(prep);
}

static const struct {
    const char *name;
    enum msg_role role;
} addr_headers[] = {
    { "From", MSG_FROM }, { "To", MSG_TO }, { "Cc", MSG_CC },
    { "Reply-To", MSG_REPLY_TO }, { "Sender", MSG_SENDER },
};

static char *message_id_clean(const char *raw)
{
    char *id = g_mime_utils_decode_message_id(raw);
    char *s, *ret;

    if (id == NULL || *id == '\0') {
        g_free(id);
        s = msg_unfold(raw);
        g_strstrip(s);
        id = s;
        if (*id == '<') {
            char *gt = strchr(id, '>');
            if (gt != NULL)
                *gt = '\0';
            id = g_strdup(id + 1);
            g_free(s);
        }
    }
    ret = clean_dup(id);
    g_free(id);
    return ret;
}

static void headers_read(struct msg *m, GMimeObject *obj)
{
    GMimeHeaderList *list = g_mime_object_get_header_list(obj);
    int n = g_mime_header_list_get_count(list);
    int have_subject = 0, have_id = 0, have_date = 0;

    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
        const char *name = g_mime_header_get_name(h);
        const char *raw = g_mime_header_get_raw_value(h);
        struct msg_header *mh = g_new(struct msg_header, 1);

        if (raw == NULL)
            raw = "";
        mh->name = clean_dup(name);
        mh->value = msg_decode_header(raw);
        g_ptr_array_add(m->headers, mh);
        if (!have_subject && g_ascii_strcasecmp(name, "Subject") == 0) {
            g_free(m->subject);
            m->subject = g_strdup(mh->value);
            have_subject = 1;
        } else if (!have_id && g_ascii_strcasecmp(name, "Message-ID") == 0) {
            g_free(m->message_id);
            m->message_id = message_id_clean(raw);
            have_id = 1;
        } else if (!have_date && g_ascii_strcasecmp(name, "Date") == 0) {
            GDateTime *dt = g_mime_utils_header_decode_date(raw);
            if (dt != NULL) {
                m->date = g_date_time_to_unix(dt);
                g_date_time_unref(dt);
            }
            have_date = 1;
        } else {
            for (size_t k = 0; k < G_N_ELEMENTS(addr_headers); k++)
                if (g_ascii_strcasecmp(name, addr_headers[k].name) == 0)
                    addr_parse(m, addr_headers[k].role, raw);
        }
    }
}

/* --- MIME walk --------------------------------------------------------- */

/* "type/subtype" in lower case (g_free). GMime keeps what the header
 * says, bytes of any kind ("Content-Type: /\xf6"); a type that is not two
 * non-empty printable ASCII words is application/octet-stream, as GMime
 * makes of one it cannot parse at all. */
static char *part_type(GMimeObject *obj)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *t = ct ? g_mime_content_type_get_mime_type(ct) : g_strdup("text/plain");
    const char *slash = strchr(t, '/');
    char *low;

    for (const char *p = t; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || (*p == '/' && p != slash))
            slash = NULL;
    }
    if (slash == NULL || slash == t || slash[1] == '\0')
        low = g_strdup("application/octet-stream");
    else
        low = g_ascii_strdown(t, -1);
    g_free(t);
    return low;
}

static char *part_filename(GMimeObject *obj)
{
    char *name = msg_param_decode(header_raw(obj, "Content-Disposition"), "filename");

    if (name == NULL || *name == '\0') {
        g_free(name);
        name = msg_param_decode(header_raw(obj, "Content-Type"), "name");
    }
    return name;
}

static char *part_charset(GMimeObject *obj)
{
    char *cs = msg_param_decode(header_raw(obj, "Content-Type"), "charset");

    if (cs != NULL && *cs == '\0') {
        g_free(cs);
        cs = NULL;
    }
    return cs;
}

/* Decoded content of a leaf part (transfer encoding undone), at most max
 * bytes of it; *cut_r says whether there was more. */
static GByteArray *part_content(GMimePart *part, size_t max, int *cut_r)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);     /* borrowed */
    GByteArray *ba = g_byte_array_new();
    GMimeContentEncoding enc;
    GMimeStream *src, *in;
    char buf[65536];
    gssize n;

    *cut_r = 0;
    if (w == NULL || (src = g_mime_data_wrapper_get_stream(w)) == NULL)
        return ba;
    /* what g_mime_data_wrapper_write_to_stream() does, read by the piece */
    g_mime_stream_reset(src);
    in = g_mime_stream_filter_new(src);
    if ((enc = g_mime_data_wrapper_get_encoding(w)) != GMIME_CONTENT_ENCODING_DEFAULT) {
        GMimeFilter *dec = g_mime_filter_basic_new(enc, FALSE);
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(in), dec);
        g_object_unref(dec);
    }
    while ((n = g_mime_stream_read(in, buf, sizeof(buf))) > 0) {
        size_t take = ba->len >= max ? 0 : MIN((size_t)n, max - ba->len);
        g_byte_array_append(ba, (const guint8 *)buf, (guint)take);
        if (take < (size_t)n) {
            *cut_r = 1;
            break;
        }
    }
    g_object_unref(in);
    return ba;
}

/*
 * How much of a body text part is worth decoding: the text still kept,
 * with room for charsets that take more bytes a character than UTF-8
 * (UTF-16, UTF-32, UTF-7) and, for HTML, for the markup that the text is a
 * small part of. The rest of a huge text part is never held in memory.
 */
static size_t text_part_max(struct msg_ctx *ctx, const char *type, const char *charset)
{
    size_t used = ctx->m->body->len + ctx->m->att_text->len;
    size_t room = used >= ctx->lim->text_size ? 0 : ctx->lim->text_size - used;
    int wide = charset != NULL && (g_ascii_strncasecmp(charset, "utf-16", 6) == 0 ||
                                   g_ascii_strncasecmp(charset, "utf-32", 6) == 0 ||
                                   g_ascii_strncasecmp(charset, "ucs", 3) == 0 ||
                                   g_ascii_strncasecmp(charset, "utf-7", 5) == 0);

    if (strcmp(type, "text/html") == 0)
        return 16 * room + 65536;
    /* every other charset takes at least a byte of UTF-8 for each byte */
    return wide ? 4 * room + 64 : room + 64;
}

/* Charge n decoded bytes; returns how many may be used (n or fewer). */
size_t msg_ctx_charge(struct msg_ctx *ctx, size_t n, const char *where)
{
    guint64 room = ctx->expanded >= ctx->lim->expanded_size ? 0
                 : ctx->lim->expanded_size - ctx->expanded;

    if (n > room) {
        if (!(ctx->hit_flags & MSG_HIT_EXPANDED)) {
            ctx->hit_flags |= MSG_HIT_EXPANDED;
            msg_ctx_limit(ctx, "expanded size limit %zu bytes reached at %s; content cut",
                          ctx->lim->expanded_size, where);
        }
        n = (size_t)room;
    }
    ctx->expanded += n;
    return n;
}

/* Text of a text/plain or text/html part, UTF-8, appended via ctx. */
static void text_part(struct msg_ctx *ctx, GString *dest, const char *data, size_t len,
                      const char *type, const char *charset)
{
    char cbuf[MSG_CHARSET_MAX];
    const char *cs = charset ? msg_charset_canon(charset, strlen(charset), cbuf) : NULL;
    char *meta = NULL;
    GString *u = g_string_sized_new(len + 1);

    if (strcmp(type, "text/html") == 0) {
        char *t;
        if (cs == NULL && (meta = msg_html_meta_charset(data, len)) != NULL)
            cs = msg_charset_canon(meta, strlen(meta), cbuf);
        msg_append_utf8(u, data, len, cs);
        t = msg_html_to_text(u->str, u->len);
        msg_ctx_text(ctx, dest, t, strlen(t));
        g_free(t);
    } else {
        msg_append_utf8(u, data, len, cs);
        msg_ctx_text(ctx, dest, u->str, u->len);
    }
    g_string_free(u, TRUE);
    g_free(meta);
}

static int is_body_text(GMimeObject *obj, const char *type, const char *filename)
{
    GMimeContentDisposition *d;

    if (strcmp(type, "text/plain") != 0 && strcmp(type, "text/html") != 0)
        return 0;
    if (filename != NULL && *filename != '\0')
        return 0;
    d = g_mime_object_get_content_disposition(obj);
    return d == NULL || !g_mime_content_disposition_is_attachment(d);
}

static void walk_object(struct msg_ctx *ctx, GMimeObject *obj, GString *dest, int depth,
                        int nest, const char *partid, const char *path, int skip_text);

static char *child_id(const char *partid, int i)
{
    return *partid ? g_strdup_printf("%s.%d", partid, i + 1) : g_strdup_printf("%d", i + 1);
}

static void walk_multipart(struct msg_ctx *ctx, GMimeMultipart *mp, GString *dest, int depth,
                           int nest, const char *partid, const char *path, int skip_text)
{
    int n = g_mime_multipart_get_count(mp);
    int prefer = -1;
    char *type = part_type(GMIME_OBJECT(mp));

    if (nest >= MSG_MULTIPART_NEST) {
        msg_ctx_limit(ctx, "multipart nesting %d reached at part %s%s%s%s; deeper parts not read",
                      MSG_MULTIPART_NEST, *partid ? partid : "1", *path ? " (" : "",
                      path, *path ? ")" : "");
        g_free(type);
        return;
    }
    if (strcmp(type, "multipart/alternative") == 0) {
        /* one representation of the text: plain if there, else html */
        for (int pass = 0; pass < 2 && prefer < 0; pass++) {
            for (int i = 0; i < n && prefer < 0; i++) {
                GMimeObject *c = g_mime_multipart_get_part(mp, i);
                char *ct = part_type(c);
                if (strcmp(ct, pass == 0 ? "text/plain" : "text/html") == 0)
                    prefer = i;
                g_free(ct);
            }
        }
    }
    g_free(type);
    for (int i = 0; i < n; i++) {
        char *id = child_id(partid, i);
        walk_object(ctx, g_mime_multipart_get_part(mp, i), dest, depth, nest + 1, id, path,
                    skip_text || (prefer >= 0 && i != prefer));
        g_free(id);
        if (ctx->hit_flags & MSG_HIT_PARTS)
            break;
    }
}

/* Serialize an attached message (for its size and hash). */
static GByteArray *object_bytes(GMimeObject *obj)
{
    GByteArray *ba = g_byte_array_new();
    GMimeStream *out = g_mime_stream_mem_new_with_byte_array(ba);

    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(out), FALSE);
    g_mime_object_write_to_stream(obj, NULL, out);
    g_object_unref(out);
    return ba;
}

static void addr_free(gpointer p);
static void att_message_info(struct msg_ctx *ctx, GMimeMessage *sub);

static void walk_message_part(struct msg_ctx *ctx, GMimeMessagePart *mp, int depth,
                              const char *partid, const char *path)
{
    GMimeMessage *sub = g_mime_message_part_get_message(mp);  /* borrowed */
    GMimeObject *obj = GMIME_OBJECT(mp);
    char *name = part_filename(obj);
    GByteArray *ba;
    struct msg_att *att;
    unsigned char sha[CUS_SHA256_LEN];
    char *where, *subpath;
    size_t use;

    if (name == NULL || *name == '\0') {
        const char *s = sub ? header_raw(GMIME_OBJECT(sub), "Subject") : NULL;
        char *subj = s ? msg_decode_header(s) : g_strdup("");
        g_free(name);
        name = g_strconcat(*subj ? subj : "message", ".eml", NULL);
        g_free(subj);
    }
    where = g_strdup_printf("part %s (%s%s%s)", partid, path, *path ? "/" : "", name);
    ba = sub ? object_bytes(GMIME_OBJECT(sub)) : g_byte_array_new();
    use = msg_ctx_charge(ctx, ba->len, where);
    att = g_new0(struct msg_att, 1);
    att->name = name;
    att->type = g_strdup("message/rfc822");
    att->path = *path ? g_strdup_printf("%s/%s", path, name) : g_strdup("");
    att->size = ba->len;
    cus_sha256(ba->data, ba->len, sha);
    cus_hex(sha, sizeof(sha), att->sha256);
    att->depth = depth;
    att->from = g_strdup("");
    att->message_id = g_strdup("");
    g_ptr_array_add(ctx->m->atts, att);
    g_byte_array_free(ba, TRUE);
    if (sub != NULL && use > 0) {
        if (depth >= ctx->lim->depth) {
            msg_ctx_limit(ctx, "depth limit %d reached at part %s (%s%s%s); not opened",
                          ctx->lim->depth, partid, path, *path ? "/" : "", name);
        } else {
            subpath = *path ? g_strdup_printf("%s/%s", path, name) : g_strdup(name);
            att_message_info(ctx, sub);
            msg_walk_message(ctx, sub, depth + 1, partid, subpath, 1);
            g_free(subpath);
        }
    }
    g_free(where);
}

static void walk_object(struct msg_ctx *ctx, GMimeObject *obj, GString *dest, int depth,
                        int nest, const char *partid, const char *path, int skip_text)
{
    char *where = NULL;

    if (obj == NULL)
        return;
    where = g_strdup_printf("part %s%s%s%s", *partid ? partid : "1", *path ? " (" : "",
                            path, *path ? ")" : "");
    if (!msg_ctx_take_part(ctx, where))
        goto out;
    if (GMIME_IS_MULTIPART(obj)) {
        walk_multipart(ctx, GMIME_MULTIPART(obj), dest, depth, nest, partid, path, skip_text);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        walk_message_part(ctx, GMIME_MESSAGE_PART(obj), depth, *partid ? partid : "1", path);
    } else if (GMIME_IS_PART(obj)) {
        char *type = part_type(obj);
        char *fname = part_filename(obj);
        char *charset = part_charset(obj);
        int text = is_body_text(obj, type, fname), cut;
        GByteArray *ba = part_content(GMIME_PART(obj), !text ? SIZE_MAX : skip_text ? 0
                                      : text_part_max(ctx, type, charset), &cut);
        size_t use = msg_ctx_charge(ctx, ba->len, where);

        if (text) {
            if (!skip_text)
                text_part(ctx, dest, (ba->len ? (char *)ba->data : ""), use, type, charset);
            if (cut && !skip_text && !(ctx->hit_flags & MSG_HIT_TEXT)) {
                ctx->hit_flags |= MSG_HIT_TEXT;
                msg_ctx_limit(ctx, "text limit %zu bytes reached; the rest of the text not kept",
                              ctx->lim->text_size);
            }
        } else {
            msg_attach(ctx, (ba->len ? (char *)ba->data : ""), use, fname ? fname : "", type, charset,
                       depth, *partid ? partid : "1", path);
        }
        g_byte_array_free(ba, TRUE);
        g_free(type);
        g_free(fname);
        g_free(charset);
    }
out:
    g_free(where);
}

void msg_walk_message(struct msg_ctx *ctx, GMimeMessage *message, int depth,
                      const char *partid, const char *path, int nested)
{
    GString *dest = nested ? ctx->m->att_text : ctx->m->body;

    if (nested) {
        /* an attached message: its subject and sender are text too */
        static const char *const keep[] = { "Subject", "From", "To", "Date" };
        GString *h = g_string_new(NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(keep); i++) {
            const char *raw = header_raw(GMIME_OBJECT(message), keep[i]);
            if (raw != NULL) {
                char *v = msg_decode_header(raw);
                g_string_append_printf(h, "%s: %s\n", keep[i], v);
                g_free(v);
            }
        }
        msg_ctx_text(ctx, dest, h->str, h->len);
        g_string_free(h, TRUE);
    }
    walk_object(ctx, g_mime_message_get_mime_part(message), dest, depth, 0,
                nested ? partid : "", path, 0);
}

/* An attached message's From and Message-ID, on the attachment it was
 * read from (the last one listed: both callers list it, then walk it). */
static void att_message_info(struct msg_ctx *ctx, GMimeMessage *sub)
{
    struct msg_att *att;
    const char *raw;

    if (ctx->m->atts->len == 0)
        return;
    att = g_ptr_array_index(ctx->m->atts, ctx->m->atts->len - 1);
    if ((raw = header_raw(GMIME_OBJECT(sub), "From")) != NULL) {
        struct msg tmp = { .addrs = g_ptr_array_new_with_free_func(addr_free) };
        addr_parse(&tmp, MSG_FROM, raw);
        if (tmp.addrs->len > 0) {
            const struct msg_addr *a = g_ptr_array_index(tmp.addrs, 0);
            g_free(att->from);
            att->from = g_utf8_strdown(a->addr, -1);
        }
        g_ptr_array_free(tmp.addrs, TRUE);
    }
    if ((raw = header_raw(GMIME_OBJECT(sub), "Message-ID")) != NULL) {
        g_free(att->message_id);
        att->message_id = message_id_clean(raw);
    }
}

/* Parse bytes as a message and walk it as an attached one (from
 * msg-attach.c: message/rfc822 leaves, .eml in archives). */
void msg_walk_rfc822_bytes(struct msg_ctx *ctx, const char *data, size_t len, int depth,
                           const char *partid, const char *path)
{
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(st);
    GMimeMessage *sub;

    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    sub = g_mime_parser_construct_message(parser, parser_options);
    if (sub != NULL) {
        att_message_info(ctx, sub);
        msg_walk_message(ctx, sub, depth, partid, path, 1);
        g_object_unref(sub);
    }
    g_object_unref(parser);
    g_object_unref(st);
}

/* --- the public face --------------------------------------------------- */

static void header_free(gpointer p)
{
    struct msg_header *h = p;

    g_free(h->name);
    g_free(h->value);
    g_free(h);
}

static void addr_free(gpointer p)
{
    struct msg_addr *a = p;

    g_free(a->name);
    g_free(a->addr);
    g_free(a);
}

static void att_free(gpointer p)
{
    struct msg_att *a = p;

    g_free(a->name);
    g_free(a->type);
    g_free(a->path);
    g_free(a->from);
    g_free(a->message_id);
    g_free(a);
}

static struct msg *msg_new(void)
{
    struct msg *m = g_new0(struct msg, 1);

    m->message_id = g_strdup("");
    m->subject = g_strdup("");
    m->headers = g_ptr_array_new_with_free_func(header_free);
    m->addrs = g_ptr_array_new_with_free_func(addr_free);
    m->body = g_string_new(NULL);
    m->atts = g_ptr_array_new_with_free_func(att_free);
    m->att_text = g_string_new(NULL);
    m->limits = g_ptr_array_new_with_free_func(g_free);
    return m;
}

/* The last line of msg->limits: how many hits were not listed. */
static void limits_close(struct msg_ctx *ctx)
{
    if (ctx->limits_dropped > 0)
        g_ptr_array_add(ctx->m->limits,
                        g_strdup_printf("%d more limit hits not listed", ctx->limits_dropped));
}

int msg_from_gmime(GMimeMessage *message, const struct msg_limits *lim, struct msg **msg_r,
                   char **error_r)
{
    struct msg_limits dflt;
    struct msg_ctx ctx = { 0 };

    msg_init();
    if (message == NULL)
        return cus_error(error_r, "msg_from_gmime: no message");
    if (lim == NULL) {
        msg_limits_default(&dflt);
        lim = &dflt;
    }
    ctx.m = msg_new();
    ctx.lim = lim;
    current_ctx = &ctx;
    headers_read(ctx.m, GMIME_OBJECT(message));
    msg_walk_message(&ctx, message, 1, "", "", 0);
    current_ctx = NULL;
    limits_close(&ctx);
    *msg_r = ctx.m;
    return 0;
}

int msg_parse(const void *raw, size_t len, const struct msg_limits *lim,
              struct msg **msg_r, char **error_r)
{
    struct msg_limits dflt;
    struct msg_ctx ctx = { 0 };
    const char *data = raw;
    char *copy = NULL;
    GByteArray *wrap;
    GMimeStream *st;
    GMimeParser *parser;
    GMimeMessage *message;

    msg_init();
    if (lim == NULL) {
        msg_limits_default(&dflt);
        lim = &dflt;
    }
    if (raw == NULL && len > 0)
        return cus_error(error_r, "msg_parse: no data");
    ctx.m = msg_new();
    ctx.lim = lim;
    if (len > lim->message_size) {
        msg_ctx_limit(&ctx, "message size limit %zu bytes reached: %zu bytes, only the first %zu parsed",
                      lim->message_size, len, lim->message_size);
        len = lim->message_size;
    }
    /* an mbox "From " line before the headers */
    if (len > 5 && memcmp(data, "From ", 5) == 0) {
        const char *nl = memchr(data, '\n', len);
        size_t skip = nl ? (size_t)(nl - data) + 1 : len;
        data += skip;
        len -= skip;
    }
    /* a first header line that starts with white space: drop that (a
     * copy, rare) so the headers are still read */
    if (len > 0 && (data[0] == ' ' || data[0] == '\t')) {
        size_t skip = 0;
        while (skip < len && (data[skip] == ' ' || data[skip] == '\t'))
            skip++;
        if (skip < len && data[skip] != '\r' && data[skip] != '\n') {
            copy = g_memdup2(data + skip, len - skip);
            data = copy;
            len -= skip;
            ctx.m->malformed = 1;
        }
    }
    /* read the caller's buffer in place: the array does not own it */
    wrap = g_byte_array_new_take((guint8 *)data, len);
    st = g_mime_stream_mem_new_with_byte_array(wrap);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(st), FALSE);
    parser = g_mime_parser_new_with_stream(st);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    current_ctx = &ctx;
    message = g_mime_parser_construct_message(parser, parser_options);
    if (message != NULL) {
        headers_read(ctx.m, GMIME_OBJECT(message));
        msg_walk_message(&ctx, message, 1, "", "", 0);
        g_object_unref(message);
    } else {
        /* not even headers: keep the bytes as text */
        GString *u = g_string_new(NULL);
        ctx.m->malformed = 1;
        msg_append_utf8(u, data, len, NULL);
        msg_ctx_text(&ctx, ctx.m->body, u->str, u->len);
        g_string_free(u, TRUE);
    }
    current_ctx = NULL;
    limits_close(&ctx);
    g_object_unref(parser);
    g_object_unref(st);
    g_byte_array_free(wrap, FALSE);      /* frees the array, not the data */
    g_free(copy);
    *msg_r = ctx.m;
    return 0;
}

void msg_free(struct msg **msg)
{
    struct msg *m = *msg;

    if (m == NULL)
        return;
    g_free(m->message_id);
    g_free(m->subject);
    g_ptr_array_free(m->headers, TRUE);
    g_ptr_array_free(m->addrs, TRUE);
    g_string_free(m->body, TRUE);
    g_ptr_array_free(m->atts, TRUE);
    g_string_free(m->att_text, TRUE);
    g_ptr_array_free(m->limits, TRUE);
    g_free(m);
    *msg = NULL;
}

struct msg *msg_new_unparsed(const char *why)
{
    struct msg *m = msg_new();

    g_ptr_array_add(m->limits, g_strdup_printf("not parsed: %s", why));
    m->malformed = 1;
    return m;
}
