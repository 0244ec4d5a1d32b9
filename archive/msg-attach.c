/*
 * msg-attach.c - attachments: listing, type sniffing, text, archives, OOXML
 *
 * Each attachment (MIME leaf or archive member) is listed with its decoded
 * size and SHA-256, and its text is pulled where there is text: any text type,
 * CSV, vCard, HTML, attached messages (recursively), OOXML and ODF
 * documents, and archives (anything libarchive reads, nested), all in
 * memory. Types come from the declared type, the file name and the first
 * bytes together. Member names are never used as paths. Depth, part count,
 * expanded size and expansion ratio are enforced here for archives.
 */
#include <string.h>
#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include "msg-private.h"

/* Ratios below this many decompressed bytes are not checked. */
#define RATIO_FLOOR (1u << 20)

enum att_kind {
    KIND_NONE, KIND_TEXT, KIND_HTML, KIND_RFC822, KIND_ARCHIVE, KIND_OOXML, KIND_ODF,
};

static const struct {
    const char *ext;
    const char *type;
    enum att_kind kind;
} extensions[] = {
    { "zip", "application/zip", KIND_ARCHIVE },
    { "jar", "application/java-archive", KIND_ARCHIVE },
    { "tar", "application/x-tar", KIND_ARCHIVE },
    { "tgz", "application/gzip", KIND_ARCHIVE },
    { "gz", "application/gzip", KIND_ARCHIVE },
    { "bz2", "application/x-bzip2", KIND_ARCHIVE },
    { "tbz2", "application/x-bzip2", KIND_ARCHIVE },
    { "xz", "application/x-xz", KIND_ARCHIVE },
    { "txz", "application/x-xz", KIND_ARCHIVE },
    { "zst", "application/zstd", KIND_ARCHIVE },
    { "7z", "application/x-7z-compressed", KIND_ARCHIVE },
    { "rar", "application/vnd.rar", KIND_ARCHIVE },
    { "cab", "application/vnd.ms-cab-compressed", KIND_ARCHIVE },
    { "iso", "application/x-iso9660-image", KIND_ARCHIVE },
    { "lzh", "application/x-lzh-compressed", KIND_ARCHIVE },
    { "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", KIND_OOXML },
    { "docm", "application/vnd.ms-word.document.macroenabled.12", KIND_OOXML },
    { "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", KIND_OOXML },
    { "xlsm", "application/vnd.ms-excel.sheet.macroenabled.12", KIND_OOXML },
    { "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", KIND_OOXML },
    { "pptm", "application/vnd.ms-powerpoint.presentation.macroenabled.12", KIND_OOXML },
    { "odt", "application/vnd.oasis.opendocument.text", KIND_ODF },
    { "ods", "application/vnd.oasis.opendocument.spreadsheet", KIND_ODF },
    { "odp", "application/vnd.oasis.opendocument.presentation", KIND_ODF },
    { "eml", "message/rfc822", KIND_RFC822 },
    { "txt", "text/plain", KIND_TEXT },
    { "text", "text/plain", KIND_TEXT },
    { "log", "text/plain", KIND_TEXT },
    { "md", "text/markdown", KIND_TEXT },
    { "csv", "text/csv", KIND_TEXT },
    { "tsv", "text/tab-separated-values", KIND_TEXT },
    { "vcf", "text/vcard", KIND_TEXT },
    { "vcard", "text/vcard", KIND_TEXT },
    { "ics", "text/calendar", KIND_TEXT },
    { "json", "application/json", KIND_TEXT },
    { "xml", "text/xml", KIND_TEXT },
    { "sql", "application/sql", KIND_TEXT },
    { "htm", "text/html", KIND_HTML },
    { "html", "text/html", KIND_HTML },
    { "pdf", "application/pdf", KIND_NONE },
    { "doc", "application/msword", KIND_NONE },
    { "xls", "application/vnd.ms-excel", KIND_NONE },
    { "ppt", "application/vnd.ms-powerpoint", KIND_NONE },
    { "png", "image/png", KIND_NONE },
    { "jpg", "image/jpeg", KIND_NONE },
    { "jpeg", "image/jpeg", KIND_NONE },
    { "gif", "image/gif", KIND_NONE },
    { "exe", "application/x-msdownload", KIND_NONE },
};

static const struct {
    size_t off;
    const char *magic;
    size_t len;
    const char *type;
} magics[] = {
    { 0, "PK\3\4", 4, "application/zip" },
    { 0, "PK\5\6", 4, "application/zip" },
    { 0, "\x1f\x8b", 2, "application/gzip" },
    { 0, "BZh", 3, "application/x-bzip2" },
    { 0, "\xfd" "7zXZ\0", 6, "application/x-xz" },
    { 0, "7z\xbc\xaf\x27\x1c", 6, "application/x-7z-compressed" },
    { 0, "Rar!\x1a\x07", 6, "application/vnd.rar" },
    { 0, "\x28\xb5\x2f\xfd", 4, "application/zstd" },
    { 0, "MSCF", 4, "application/vnd.ms-cab-compressed" },
    { 257, "ustar", 5, "application/x-tar" },
    { 0, "%PDF-", 5, "application/pdf" },
    { 0, "\x89PNG", 4, "image/png" },
    { 0, "\xff\xd8\xff", 3, "image/jpeg" },
    { 0, "GIF8", 4, "image/gif" },
    { 0, "\xd0\xcf\x11\xe0", 4, "application/x-ole-storage" },
    { 0, "MZ", 2, "application/x-msdownload" },
    { 0, "BEGIN:VCARD", 11, "text/vcard" },
    { 0, "BEGIN:VCALENDAR", 15, "text/calendar" },
};

static const char *name_ext(const char *name)
{
    const char *dot = name ? strrchr(name, '.') : NULL;

    return dot && dot[1] && !strchr(dot, '/') ? dot + 1 : NULL;
}

static int ext_index(const char *name)
{
    const char *ext = name_ext(name);

    if (ext == NULL)
        return -1;
    for (size_t i = 0; i < G_N_ELEMENTS(extensions); i++)
        if (g_ascii_strcasecmp(ext, extensions[i].ext) == 0)
            return (int)i;
    return -1;
}

static const char *magic_type(const char *data, size_t len)
{
    for (size_t i = 0; i < G_N_ELEMENTS(magics); i++)
        if (len >= magics[i].off + magics[i].len &&
            memcmp(data + magics[i].off, magics[i].magic, magics[i].len) == 0)
            return magics[i].type;
    return NULL;
}

const char *msg_sniff_type(const char *data, size_t len, const char *name)
{
    const char *m = magic_type(data, len);
    int e = ext_index(name);

    /* a zip named .docx is the document, not just a zip */
    if (m != NULL && strcmp(m, "application/zip") == 0 && e >= 0 &&
        (extensions[e].kind == KIND_OOXML || extensions[e].kind == KIND_ODF ||
         extensions[e].kind == KIND_ARCHIVE))
        return extensions[e].type;
    if (m != NULL)
        return m;
    return e >= 0 ? extensions[e].type : NULL;
}

static int type_is(const char *t, const char *prefix)
{
    return t != NULL && g_str_has_prefix(t, prefix);
}

/* The kind of file a type is, for comparing what a name says with what
 * the bytes are: 'i' image, 't' text, 'a' archive or zip-based document,
 * 'o' OLE (legacy Office), 'p' PDF, 'x' executable, 0 other. */
static char type_family(const char *t)
{
    if (type_is(t, "image/"))
        return 'i';
    if (type_is(t, "text/") || type_is(t, "message/") || strcmp(t, "application/json") == 0 ||
        strcmp(t, "application/sql") == 0)
        return 't';
    if (strcmp(t, "application/pdf") == 0)
        return 'p';
    if (strcmp(t, "application/x-msdownload") == 0)
        return 'x';
    if (strcmp(t, "application/x-ole-storage") == 0 || strcmp(t, "application/msword") == 0 ||
        strcmp(t, "application/vnd.ms-excel") == 0 ||
        strcmp(t, "application/vnd.ms-powerpoint") == 0)
        return 'o';
    if (type_is(t, "application/vnd.openxmlformats-officedocument.") ||
        type_is(t, "application/vnd.ms-") || type_is(t, "application/vnd.oasis.") ||
        type_is(t, "application/x-") || type_is(t, "application/zip") ||
        type_is(t, "application/gzip") || type_is(t, "application/zstd") ||
        type_is(t, "application/java-archive") || type_is(t, "application/vnd.rar"))
        return 'a';
    return 0;
}

/* Do the magic bytes say an archive, a document or a program, and the
 * extension another kind of file (what hides content from inspection: a
 * zip named .jpg; not a GIF named .txt)? */
static int kind_mismatch(const char *data, size_t len, const char *name)
{
    const char *m = magic_type(data, len);
    int e = ext_index(name);
    char fm, fe;

    if (m == NULL || e < 0)
        return 0;
    fm = type_family(m);
    fe = type_family(extensions[e].type);
    return fm != 0 && fe != 0 && fm != fe && strchr("aopx", fm) != NULL;
}

static enum att_kind kind_of_type(const char *t)
{
    static const char *const archive_types[] = {
        "application/zip", "application/x-zip", "application/x-zip-compressed",
        "application/gzip", "application/x-gzip", "application/x-tar", "application/x-gtar",
        "application/x-bzip2", "application/x-xz", "application/x-7z-compressed",
        "application/vnd.rar", "application/x-rar", "application/x-rar-compressed",
        "application/zstd", "application/vnd.ms-cab-compressed", "application/x-compressed",
        "application/java-archive",
    };
    static const char *const text_types[] = {
        "application/json", "application/xml", "application/csv", "application/x-csv",
        "application/sql", "application/x-sh", "application/javascript",
    };

    if (t == NULL)
        return KIND_NONE;
    if (strcmp(t, "text/html") == 0)
        return KIND_HTML;
    if (strcmp(t, "message/rfc822") == 0 || strcmp(t, "message/global") == 0)
        return KIND_RFC822;
    if (type_is(t, "text/"))
        return KIND_TEXT;
    if (type_is(t, "application/vnd.openxmlformats-officedocument.") ||
        type_is(t, "application/vnd.ms-word.document.macroenabled") ||
        type_is(t, "application/vnd.ms-excel.sheet.macroenabled") ||
        type_is(t, "application/vnd.ms-powerpoint.presentation.macroenabled"))
        return KIND_OOXML;
    if (type_is(t, "application/vnd.oasis.opendocument."))
        return KIND_ODF;
    for (size_t i = 0; i < G_N_ELEMENTS(archive_types); i++)
        if (strcmp(t, archive_types[i]) == 0)
            return KIND_ARCHIVE;
    for (size_t i = 0; i < G_N_ELEMENTS(text_types); i++)
        if (strcmp(t, text_types[i]) == 0)
            return KIND_TEXT;
    return KIND_NONE;
}

/* What to do with it: magic bytes first (a zip is a zip whatever the label
 * says), then the name, then the declared type. */
static enum att_kind att_kind(const char *data, size_t len, const char *name, const char *ctype)
{
    const char *m = magic_type(data, len);
    int e = ext_index(name);
    enum att_kind ek = e >= 0 ? extensions[e].kind : KIND_NONE;
    enum att_kind ck = kind_of_type(ctype);

    if (m != NULL) {
        enum att_kind mk = kind_of_type(m);
        if (strcmp(m, "application/zip") == 0) {
            if (ek == KIND_OOXML || ck == KIND_OOXML)
                return KIND_OOXML;
            if (ek == KIND_ODF || ck == KIND_ODF)
                return KIND_ODF;
            if (memmem(data, len < 4096 ? len : 4096, "[Content_Types].xml", 19) != NULL)
                return KIND_OOXML;
            if (len > 38 && memcmp(data + 30, "mimetype", 8) == 0 &&
                memmem(data, len < 256 ? len : 256, "opendocument", 12) != NULL)
                return KIND_ODF;
        }
        if (mk != KIND_NONE)
            return mk;
        return KIND_NONE;       /* binary magic: no text, whatever the label */
    }
    if (ek != KIND_NONE && ek != KIND_ARCHIVE)
        return ek;
    if (ck != KIND_NONE && ck != KIND_ARCHIVE)
        return ck;
    /* labelled or named as an archive but no magic: gz/tar variants are
     * still worth a try by libarchive */
    if (ek == KIND_ARCHIVE || ck == KIND_ARCHIVE)
        return KIND_ARCHIVE;
    return KIND_NONE;
}

/* --- text -------------------------------------------------------------- */

static void text_append(struct msg_ctx *ctx, const char *data, size_t len,
                        const char *charset, int html)
{
    char cbuf[MSG_CHARSET_MAX];
    const char *cs = charset ? msg_charset_canon(charset, strlen(charset), cbuf) : NULL;
    char *meta = NULL;
    GString *u = g_string_sized_new(len + 1);

    /* byte order marks beat labels */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
        data += 3;
        len -= 3;
        cs = "UTF-8";
    } else if (len >= 2 && (memcmp(data, "\xff\xfe", 2) == 0 || memcmp(data, "\xfe\xff", 2) == 0)) {
        cs = "UTF-16";
    }
    if (html && cs == NULL && (meta = msg_html_meta_charset(data, len)) != NULL)
        cs = msg_charset_canon(meta, strlen(meta), cbuf);
    msg_append_utf8(u, data, len, cs);
    if (html) {
        char *t = msg_html_to_text(u->str, u->len);
        msg_ctx_text(ctx, ctx->m->att_text, t, strlen(t));
        g_free(t);
    } else {
        msg_ctx_text(ctx, ctx->m->att_text, u->str, u->len);
    }
    g_string_free(u, TRUE);
    g_free(meta);
}

/* --- XML (OOXML, ODF) --------------------------------------------------- */

static int tag_is(const char *tag, size_t n, const char *name)
{
    size_t l = strlen(name);

    return n >= l && memcmp(tag, name, l) == 0 &&
           (n == l || tag[l] == ' ' || tag[l] == '/' || tag[l] == '\t' ||
            tag[l] == '\n' || tag[l] == '\r');
}

static void xml_entity(GString *out, const char **pp, const char *end)
{
    const char *p = *pp;
    const char *semi = memchr(p, ';', end - p < 12 ? end - p : 12);
    static const struct { const char *n; char c; } ents[] = {
        { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
    };

    if (semi != NULL) {
        size_t n = semi - p - 1;
        if (n > 1 && p[1] == '#') {
            gunichar c = (p[2] == 'x' || p[2] == 'X')
                ? (gunichar)g_ascii_strtoull(p + 3, NULL, 16)
                : (gunichar)g_ascii_strtoull(p + 2, NULL, 10);
            if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
                c = 0xFFFD;
            g_string_append_unichar(out, c);
            *pp = semi + 1;
            return;
        }
        for (size_t i = 0; i < G_N_ELEMENTS(ents); i++) {
            if (strlen(ents[i].n) == n && memcmp(p + 1, ents[i].n, n) == 0) {
                g_string_append_c(out, ents[i].c);
                *pp = semi + 1;
                return;
            }
        }
    }
    g_string_append_c(out, '&');
    *pp = p + 1;
}

void msg_xml_text(GString *out, const char *xml, size_t len)
{
    const char *p = xml, *end = xml + len;

    while (p < end) {
        if (*p == '<') {
            const char *gt = memchr(p, '>', end - p);
            const char *tag = p + 1;
            size_t n;
            int closing = 0;
            if (gt == NULL)
                break;
            if (*tag == '/') {
                closing = 1;
                tag++;
            }
            n = gt - tag;
            if (closing && (tag_is(tag, n, "w:p") || tag_is(tag, n, "a:p") ||
                            tag_is(tag, n, "si") || tag_is(tag, n, "row") ||
                            tag_is(tag, n, "text:p") || tag_is(tag, n, "text:h") ||
                            tag_is(tag, n, "w:tr") || tag_is(tag, n, "table:table-row"))) {
                if (out->len > 0 && out->str[out->len - 1] != '\n')
                    g_string_append_c(out, '\n');
            } else if ((closing && (tag_is(tag, n, "w:tc") || tag_is(tag, n, "c") ||
                                    tag_is(tag, n, "table:table-cell"))) ||
                       (!closing && (tag_is(tag, n, "w:tab") || tag_is(tag, n, "w:br") ||
                                     tag_is(tag, n, "text:tab") || tag_is(tag, n, "text:s") ||
                                     tag_is(tag, n, "text:line-break")))) {
                if (out->len > 0 && out->str[out->len - 1] != '\n' &&
                    out->str[out->len - 1] != ' ')
                    g_string_append_c(out, ' ');
            }
            p = gt + 1;
        } else if (*p == '&') {
            xml_entity(out, &p, end);
        } else {
            const char *q = p;
            while (q < end && *q != '<' && *q != '&')
                q++;
            g_string_append_len(out, p, q - p);
            p = q;
        }
    }
}

/* Cells of an xlsx worksheet: numbers, inline and formula strings (shared
 * strings come from sharedStrings.xml and are not repeated by index). */
static void xlsx_sheet_text(GString *out, const char *xml, size_t len)
{
    const char *p = xml, *end = xml + len;

    while (p < end && (p = memmem(p, end - p, "<c", 2)) != NULL) {
        const char *gt, *cend;
        int shared;
        if (p + 2 >= end || (p[2] != ' ' && p[2] != '>' && p[2] != '/')) {
            p += 2;
            continue;
        }
        gt = memchr(p, '>', end - p);
        if (gt == NULL)
            break;
        shared = memmem(p, gt - p, "t=\"s\"", 5) != NULL;
        if (gt[-1] == '/') {
            p = gt + 1;
            continue;
        }
        cend = memmem(gt, end - gt, "</c>", 4);
        if (cend == NULL)
            break;
        if (!shared) {
            /* the text of <v> or <is><t> */
            const char *v = gt + 1;
            GString *cell = g_string_new(NULL);
            while (v < cend) {
                const char *open = memchr(v, '<', cend - v);
                const char *close;
                if (open == NULL)
                    break;
                close = memchr(open, '>', cend - open);
                if (close == NULL)
                    break;
                if ((tag_is(open + 1, close - open - 1, "v") ||
                     tag_is(open + 1, close - open - 1, "t")) && close[-1] != '/') {
                    const char *txt_end = memchr(close, '<', cend - close);
                    if (txt_end == NULL)
                        txt_end = cend;
                    msg_xml_text(cell, close + 1, txt_end - close - 1);
                    v = txt_end;
                } else {
                    v = close + 1;
                }
            }
            if (cell->len > 0) {
                g_string_append_len(out, cell->str, cell->len);
                g_string_append_c(out, ' ');
            }
            g_string_free(cell, TRUE);
        }
        p = cend + 4;
        /* end of a row: a line */
        if (cend + 4 + 6 <= end && memcmp(cend + 4, "</row>", 6) == 0)
            g_string_append_c(out, '\n');
    }
}

/* --- libarchive --------------------------------------------------------- */

struct reader {
    struct msg_ctx *ctx;
    const char *where;          /* for limit lines */
    size_t arclen;              /* compressed size of the whole archive */
    guint64 *produced;          /* decompressed so far from this archive */
    int ratio_hit;
};

/* Read the current entry into memory within the limits. */
static GByteArray *entry_read(struct archive *a, struct reader *r, const char *what)
{
    GByteArray *ba = g_byte_array_new();
    const struct msg_limits *lim = r->ctx->lim;
    char buf[65536];

    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
        guint64 ratio_cap;
        size_t take;

        if (n <= 0)
            break;
        take = msg_ctx_charge(r->ctx, (size_t)n, what);
        g_byte_array_append(ba, (guint8 *)buf, (guint)take);
        *r->produced += take;
        if (take < (size_t)n)
            break;
        ratio_cap = (guint64)lim->expansion_ratio * (r->arclen > 0 ? r->arclen : 1);
        if (*r->produced > RATIO_FLOOR && *r->produced > ratio_cap) {
            msg_ctx_limit(r->ctx, "expansion ratio limit %d reached at %s: %" G_GUINT64_FORMAT
                          " bytes from a %zu-byte archive; member cut",
                          lim->expansion_ratio, what, *r->produced, r->arclen);
            r->ratio_hit = 1;
            break;
        }
    }
    return ba;
}

static struct archive *archive_open(const char *data, size_t len, int raw)
{
    struct archive *a = archive_read_new();

    archive_read_support_filter_all(a);
    if (raw)
        archive_read_support_format_raw(a);
    else
        archive_read_support_format_all(a);
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Name of a single compressed file: "x.csv.gz" -> "x.csv". */
static char *raw_member_name(const char *aname)
{
    static const char *const sufs[] = { ".gz", ".bz2", ".xz", ".zst", ".z", ".lz", ".lzma" };
    const char *ext = name_ext(aname);

    if (ext != NULL && g_ascii_strcasecmp(ext, "tgz") == 0)
        return g_strdup_printf("%.*s.tar", (int)(ext - 1 - aname), aname);
    for (size_t i = 0; i < G_N_ELEMENTS(sufs); i++)
        if (g_str_has_suffix(aname, sufs[i]) && strlen(aname) > strlen(sufs[i]))
            return g_strndup(aname, strlen(aname) - strlen(sufs[i]));
    return g_strdup(*aname ? aname : "data");
}

/* A header read: ARCHIVE_WARN is one whose name could not be converted
 * to the locale's charset (a Chinese name in the C locale): read on. */
static int header_ok(int rc)
{
    return rc == ARCHIVE_OK || rc == ARCHIVE_WARN;
}

/* A member's name, UTF-8 where the archive says what it is ("" if none). */
static const char *member_name(struct archive_entry *e)
{
    const char *pn = archive_entry_pathname_utf8(e);

    if (pn == NULL)
        pn = archive_entry_pathname(e);
    return pn != NULL ? pn : "";
}

static int archive_walk_in(struct msg_ctx *ctx, const char *data, size_t len, int depth,
                           const char *partid, const char *apath, const char *aname);

/* ---- RAR 5 encryption ------------------------------------------------------
 *
 * libarchive (3.6, Debian 12) reads RAR 5, the format WinRAR writes by
 * default, but says nothing of its encryption: an encrypted member reads as
 * a damaged one, and an encrypted listing as no archive at all. So the
 * headers are looked at here (RAR 5.0 archive format, rarlab.com): each is
 * CRC32, size (vint), type, flags, [extra area size], [data size], its
 * fields, its extra area, then its data. An archive encryption header
 * (type 4) means the listing is encrypted; a file header (type 2) with a
 * file encryption record (type 1) in its extra area, an encrypted member.
 * Only headers whose CRC is right count. */

static const char rar5_sig[] = "Rar!\x1a\x07\x01\x00";

/* A RAR 5 vint at *p (< end): 7 bits a byte, low first. 0, or -1 at the
 * end or past 63 bits. */
static int rar5_vint(const guchar **p, const guchar *end, guint64 *v_r)
{
    guint64 v = 0;

    for (int shift = 0; *p < end && shift < 63; shift += 7) {
        guchar b = *(*p)++;

        v |= (guint64)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v_r = v;
            return 0;
        }
    }
    return -1;
}

/* Does the extra area [p, end) of a file header hold a file encryption
 * record? */
static int rar5_extra_crypt(const guchar *p, const guchar *end)
{
    while (p < end) {
        guint64 size, type;
        const guchar *rec;

        if (rar5_vint(&p, end, &size) < 0 || size == 0 || size > (guint64)(end - p))
            return 0;
        rec = p;
        if (rar5_vint(&rec, p + size, &type) == 0 && type == 1)
            return 1;
        p += size;
    }
    return 0;
}

/* 1 if the RAR 5 archive data has an encrypted listing or member. */
static int rar5_encrypted(const char *data, size_t len)
{
    const guchar *p = (const guchar *)data + sizeof(rar5_sig) - 1;
    const guchar *end = (const guchar *)data + len;

    if (len < sizeof(rar5_sig) - 1 || memcmp(data, rar5_sig, sizeof(rar5_sig) - 1) != 0)
        return 0;
    for (int n = 0; n < 100000 && end - p >= 4; n++) {
        guint64 hsize, type, flags, extra = 0, dsize = 0;
        const guchar *h = p + 4, *hend;
        guint32 crc = (guint32)p[0] | (guint32)p[1] << 8 | (guint32)p[2] << 16 |
                      (guint32)p[3] << 24;

        if (rar5_vint(&h, end, &hsize) < 0 || hsize == 0 || hsize > (guint64)(end - h))
            return 0;
        hend = h + hsize;
        if (crc32(crc32(0, NULL, 0), p + 4, (uInt)(hend - (p + 4))) != crc)
            return 0;
        if (rar5_vint(&h, hend, &type) < 0 || rar5_vint(&h, hend, &flags) < 0 ||
            ((flags & 1) && rar5_vint(&h, hend, &extra) < 0) ||
            ((flags & 2) && rar5_vint(&h, hend, &dsize) < 0) || extra > hsize)
            return 0;
        if (type == 4)
            return 1;                           /* archive encryption header */
        if (type == 2 && extra > 0 && rar5_extra_crypt(hend - extra, hend))
            return 1;
        if (type == 5 || dsize > (guint64)(end - hend))
            return 0;                           /* end of archive, or cut */
        p = hend + dsize;
    }
    return 0;
}

/* Members of an archive, their names read in a UTF-8 locale; 1 if some
 * member (or the listing itself) is encrypted, else 0. */
static int archive_walk(struct msg_ctx *ctx, const char *data, size_t len, int depth,
                        const char *partid, const char *apath, const char *aname)
{
    locale_t loc = cus_utf8_locale(), old = loc != (locale_t)0 ? uselocale(loc) : (locale_t)0;
    int encrypted = archive_walk_in(ctx, data, len, depth, partid, apath, aname);

    if (!encrypted)
        encrypted = rar5_encrypted(data, len);
    if (old != (locale_t)0)
        uselocale(old);
    return encrypted;
}

static int archive_walk_in(struct msg_ctx *ctx, const char *data, size_t len, int depth,
                           const char *partid, const char *apath, const char *aname)
{
    struct archive *a;
    struct archive_entry *e;
    int raw = 0, encrypted = 0;
    guint64 produced = 0;
    struct reader r = { ctx, NULL, len, &produced, 0 };

    a = archive_open(data, len, 0);
    if (a == NULL || !header_ok(archive_read_next_header(a, &e))) {
        /* an encrypted 7z or rar listing cannot be read without the password */
        if (a != NULL && archive_read_has_encrypted_entries(a) > 0)
            encrypted = 1;
        /* a lone gz/bz2/xz file: the raw format with filters */
        if (a != NULL)
            archive_read_free(a);
        a = archive_open(data, len, 1);
        if (a == NULL)
            return encrypted;
        raw = 1;
        if (archive_read_next_header(a, &e) != ARCHIVE_OK ||
            archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
            archive_read_free(a);
            return encrypted;
        }
    }
    do {
        char *mname, *mpath, *where;
        GByteArray *ba;
        const char *pn;

        if (!raw && archive_entry_is_encrypted(e))
            encrypted = 1;
        if (!raw && archive_entry_filetype(e) != AE_IFREG)
            continue;
        if (raw) {
            mname = raw_member_name(aname);
        } else {
            pn = member_name(e);
            mname = msg_to_utf8(pn, strlen(pn), NULL);
        }
        mpath = g_strdup_printf("%s/%s", apath, mname);
        where = g_strdup_printf("part %s (%s)", partid, mpath);
        {
            /* the member's own name is its last component; the path
             * keeps the folders inside the archive */
            char *slash = strrchr(mname, '/');
            char *dir = slash ? g_strndup(mname, slash - mname) : NULL;
            char *base = g_strdup(slash ? slash + 1 : mname);
            g_free(mname);
            mname = base;
            if (dir != NULL) {
                char *inner = g_strdup_printf("%s/%s", apath, dir);
                g_free(dir);
                g_free(mpath);
                mpath = inner;      /* now the container path of the member */
            } else {
                g_free(mpath);
                mpath = g_strdup(apath);
            }
        }
        if (!msg_ctx_take_part(ctx, where)) {
            g_free(mname);
            g_free(mpath);
            g_free(where);
            break;
        }
        ba = entry_read(a, &r, where);
        msg_attach(ctx, (ba->len ? (char *)ba->data : ""), ba->len, mname, NULL, NULL, depth, partid, mpath);
        g_byte_array_free(ba, TRUE);
        g_free(mname);
        g_free(mpath);
        g_free(where);
        if (r.ratio_hit || (ctx->hit_flags & (MSG_HIT_EXPANDED | MSG_HIT_PARTS)))
            break;
    } while (header_ok(archive_read_next_header(a, &e)));
    if (archive_read_has_encrypted_entries(a) > 0)
        encrypted = 1;
    archive_read_free(a);
    return encrypted;
}

/* Which members of an office document hold its text. */
static int office_member(const char *pn, enum att_kind kind, int *sheet)
{
    *sheet = 0;
    if (kind == KIND_ODF)
        return strcmp(pn, "content.xml") == 0;
    if (strcmp(pn, "word/document.xml") == 0 || strcmp(pn, "xl/sharedStrings.xml") == 0)
        return 1;
    if (g_str_has_prefix(pn, "word/header") || g_str_has_prefix(pn, "word/footer") ||
        g_str_has_prefix(pn, "word/footnotes"))
        return g_str_has_suffix(pn, ".xml");
    if (g_str_has_prefix(pn, "xl/worksheets/") && g_str_has_suffix(pn, ".xml") &&
        !strchr(pn + 14, '/')) {
        *sheet = 1;
        return 1;
    }
    return g_str_has_prefix(pn, "ppt/slides/slide") && g_str_has_suffix(pn, ".xml");
}

/* Text of an OOXML or ODF document; 0 if it was not one (not a zip). */
static int office_text(struct msg_ctx *ctx, const char *data, size_t len, enum att_kind kind,
                       const char *where)
{
    struct archive *a = archive_open(data, len, 0);
    struct archive_entry *e;
    guint64 produced = 0;
    struct reader r = { ctx, where, len, &produced, 0 };
    GString *text;
    int found = 0;

    if (a == NULL)
        return 0;
    text = g_string_new(NULL);
    while (header_ok(archive_read_next_header(a, &e))) {
        const char *pn = member_name(e);
        int sheet;
        GByteArray *ba;

        if (pn == NULL || !office_member(pn, kind, &sheet))
            continue;
        found = 1;
        ba = entry_read(a, &r, where);
        if (sheet)
            xlsx_sheet_text(text, (ba->len ? (char *)ba->data : ""), ba->len);
        else
            msg_xml_text(text, (ba->len ? (char *)ba->data : ""), ba->len);
        if (text->len > 0 && text->str[text->len - 1] != '\n')
            g_string_append_c(text, '\n');
        g_byte_array_free(ba, TRUE);
        if (r.ratio_hit || (ctx->hit_flags & MSG_HIT_EXPANDED))
            break;
    }
    archive_read_free(a);
    if (text->len > 0) {
        char *u = msg_to_utf8(text->str, text->len, "utf-8");
        msg_ctx_text(ctx, ctx->m->att_text, u, strlen(u));
        g_free(u);
    }
    g_string_free(text, TRUE);
    return found;
}

/* --- the entry point ---------------------------------------------------- */

void msg_attach(struct msg_ctx *ctx, const char *data, size_t len,
                const char *name, const char *ctype, const char *charset,
                int depth, const char *partid, const char *cpath)
{
    struct msg_att *att = g_new0(struct msg_att, 1);
    unsigned char sha[CUS_SHA256_LEN];
    const char *sniff = msg_sniff_type(data, len, name);
    enum att_kind kind = att_kind(data, len, name, ctype);
    char *full = *cpath ? g_strdup_printf("%s/%s", cpath, *name ? name : "(unnamed)")
                        : g_strdup(*name ? name : "(unnamed)");

    att->name = g_strdup(name);
    if (ctype != NULL && *ctype && strcmp(ctype, "application/octet-stream") != 0 &&
        strcmp(ctype, "application/x-unknown") != 0 && strcmp(ctype, "application/unknown") != 0)
        att->type = g_strdup(ctype);
    else
        att->type = g_strdup(sniff ? sniff : "application/octet-stream");
    att->path = *cpath ? g_strdup(full) : g_strdup("");
    att->mismatch = kind_mismatch(data, len, name);
    att->size = len;
    cus_sha256(data, len, sha);
    cus_hex(sha, sizeof(sha), att->sha256);
    att->depth = depth;
    att->from = g_strdup("");
    att->message_id = g_strdup("");
    g_ptr_array_add(ctx->m->atts, att);

    switch (kind) {
    case KIND_TEXT:
        text_append(ctx, data, len, charset, 0);
        break;
    case KIND_HTML:
        text_append(ctx, data, len, charset, 1);
        break;
    case KIND_OOXML:
    case KIND_ODF: {
        char *where = g_strdup_printf("part %s (%s)", partid, full);
        office_text(ctx, data, len, kind, where);
        g_free(where);
        break;
    }
    case KIND_RFC822:
    case KIND_ARCHIVE:
        if (depth >= ctx->lim->depth) {
            msg_ctx_limit(ctx, "depth limit %d reached at part %s (%s); not opened",
                          ctx->lim->depth, partid, full);
        } else if (kind == KIND_RFC822) {
            msg_walk_rfc822_bytes(ctx, data, len, depth + 1, partid, full);
        } else {
            att->encrypted = archive_walk(ctx, data, len, depth + 1, partid, full, name);
        }
        break;
    case KIND_NONE:
        break;
    }
    g_free(full);
}
