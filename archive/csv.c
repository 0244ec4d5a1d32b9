/*
 * csv.c - an RFC 4180 reader over text decoded from UTF-8 or GB18030
 *
 * The whole file is decoded to UTF-8 once (it is bounded); records are then
 * cut byte by byte: every delimiter is ASCII and no byte of a multi-byte
 * UTF-8 sequence is ASCII, so this is safe for any script. Line numbers
 * count LF, CRLF and lone CR alike, in quoted fields too, so they match
 * what an editor shows.
 */
#include <string.h>
#include "custos/csv.h"
#include "custos/util.h"

struct csv {
    char *name;
    char *text;                 /* decoded, UTF-8, NUL-terminated */
    size_t len, pos;
    int line;                   /* line of text[pos] */
    const char *encoding;
    char sha256[CUS_SHA256_HEX];
    GPtrArray *fields;          /* char *, the current record */
    GString *buf;
};

/* 1-based line of byte offset at in data. */
static int line_at(const char *data, size_t len, size_t at)
{
    int line = 1;

    for (size_t i = 0; i < at; i++)
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 >= len || data[i + 1] != '\n')))
            line++;
    return line;
}

/* Decode data into c->text: UTF-8 if valid, else GB18030. */
static int csv_decode(struct csv *c, const char *data, size_t len, char **error_r)
{
    const char *nul = memchr(data, '\0', len), *bad;
    GError *gerr = NULL;
    gsize nread = 0, nwritten = 0;
    char *out;

    if (len >= 2 && (((guchar)data[0] == 0xff && (guchar)data[1] == 0xfe) ||
                     ((guchar)data[0] == 0xfe && (guchar)data[1] == 0xff)))
        return cus_error(error_r, "%s: UTF-16 is not read: save the file as CSV in UTF-8 "
                         "(or GB18030)", c->name);
    if (nul != NULL)
        return cus_error(error_r, "%s:%d: a NUL byte (offset %zu): not a text file",
                         c->name, line_at(data, len, (size_t)(nul - data)),
                         (size_t)(nul - data));
    if (g_utf8_validate(data, (gssize)len, &bad)) {
        c->encoding = "UTF-8";
        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
            c->encoding = "UTF-8 with BOM";
            data += 3;
            len -= 3;
        }
        c->text = g_strndup(data, len);
        c->len = len;
        return 0;
    }
    out = g_convert(data, (gssize)len, "UTF-8", "GB18030", &nread, &nwritten, &gerr);
    if (out == NULL) {
        size_t at = (size_t)(bad - data);
        cus_error(error_r, "%s:%d: neither UTF-8 nor GB18030 (invalid UTF-8 at byte offset "
                  "%zu, invalid GB18030 at byte offset %zu: %s)", c->name,
                  line_at(data, len, at), at, (size_t)nread, gerr->message);
        g_error_free(gerr);
        return -1;
    }
    c->encoding = "GB18030";
    c->text = out;
    c->len = nwritten;
    if (c->len >= 3 && memcmp(c->text, "\xef\xbb\xbf", 3) == 0) {  /* GB18030's BOM */
        memmove(c->text, c->text + 3, c->len - 2);
        c->len -= 3;
    }
    return 0;
}

int csv_open(const char *name, const void *data, size_t len, struct csv **c_r,
             char **error_r)
{
    struct csv *c = g_new0(struct csv, 1);
    unsigned char sha[CUS_SHA256_LEN];

    *c_r = NULL;
    c->name = g_strdup(name);
    c->line = 1;
    if (len > CSV_MAX_SIZE) {
        cus_error(error_r, "%s: %zu bytes, more than the limit of %d", name, len,
                  CSV_MAX_SIZE);
        csv_free(&c);
        return -1;
    }
    cus_sha256(data, len, sha);
    cus_hex(sha, sizeof(sha), c->sha256);
    if (csv_decode(c, data, len, error_r) < 0) {
        csv_free(&c);
        return -1;
    }
    c->fields = g_ptr_array_new_with_free_func(g_free);
    c->buf = g_string_new(NULL);
    *c_r = c;
    return 0;
}

int csv_open_file(const char *path, struct csv **c_r, char **error_r)
{
    GBytes *data = NULL;
    gsize len;
    const void *p;
    int ret;

    *c_r = NULL;
    if (cus_read_file(path, CSV_MAX_SIZE, &data, error_r) < 0)
        return -1;
    p = g_bytes_get_data(data, &len);
    ret = csv_open(path, p != NULL ? p : "", len, c_r, error_r);
    g_bytes_unref(data);
    return ret;
}

void csv_free(struct csv **cp)
{
    struct csv *c = *cp;

    if (c == NULL)
        return;
    g_free(c->name);
    g_free(c->text);
    if (c->fields != NULL)
        g_ptr_array_free(c->fields, TRUE);
    if (c->buf != NULL)
        g_string_free(c->buf, TRUE);
    g_free(c);
    *cp = NULL;
}

const char *csv_encoding(const struct csv *c) { return c->encoding; }
const char *csv_sha256(const struct csv *c) { return c->sha256; }

/* At a line break: step over it (CRLF is one) and count it. */
static void eat_eol(struct csv *c)
{
    if (c->text[c->pos] == '\r' && c->pos + 1 < c->len && c->text[c->pos + 1] == '\n')
        c->pos++;
    c->pos++;
    c->line++;
}

static int is_eol(char ch)
{
    return ch == '\n' || ch == '\r';
}

/* After a malformed field: on to the end of the line. */
static void skip_line(struct csv *c)
{
    while (c->pos < c->len && !is_eol(c->text[c->pos]))
        c->pos++;
    if (c->pos < c->len)
        eat_eol(c);
}

/* A quoted field from c->pos (at the quote) into c->buf. */
static int read_quoted(struct csv *c, int start, char **error_r)
{
    int open_line = c->line;

    c->pos++;
    for (;;) {
        char ch;

        if (c->pos >= c->len) {
            cus_error(error_r, "%s:%d: a quote opened on line %d is never closed",
                      c->name, start, open_line);
            return -1;
        }
        ch = c->text[c->pos];
        if (ch == '"') {
            if (c->pos + 1 < c->len && c->text[c->pos + 1] == '"') {
                g_string_append_c(c->buf, '"');
                c->pos += 2;
                continue;
            }
            c->pos++;
            break;
        }
        if (is_eol(ch)) {
            g_string_append_c(c->buf, '\n');
            eat_eol(c);
        } else {
            g_string_append_c(c->buf, ch);
            c->pos++;
        }
        if (c->buf->len > CSV_MAX_FIELD)
            goto too_long;
    }
    if (c->pos < c->len && c->text[c->pos] != ',' && !is_eol(c->text[c->pos])) {
        cus_error(error_r, "%s:%d: text after a closing quote (a quote inside a quoted "
                  "field is written twice: \"\")", c->name, start);
        skip_line(c);
        return -1;
    }
    return 0;
too_long:
    cus_error(error_r, "%s:%d: a field longer than %d bytes", c->name, start, CSV_MAX_FIELD);
    while (c->pos < c->len && c->text[c->pos] != '"')
        c->pos++;
    c->pos++;
    skip_line(c);
    return -1;
}

int csv_next(struct csv *c, GPtrArray **fields_r, int *line_r, char **error_r)
{
    int start;

    for (;;) {
        g_ptr_array_set_size(c->fields, 0);
        if (c->pos >= c->len)
            return 0;
        start = c->line;
        *line_r = start;
        if (is_eol(c->text[c->pos])) {          /* an empty line */
            eat_eol(c);
            continue;
        }
        for (;;) {
            g_string_truncate(c->buf, 0);
            if (c->text[c->pos] == '"') {
                if (read_quoted(c, start, error_r) < 0)
                    return -1;
            } else {
                while (c->pos < c->len && c->text[c->pos] != ',' &&
                       !is_eol(c->text[c->pos])) {
                    if (c->text[c->pos] == '"') {
                        cus_error(error_r, "%s:%d: a quote inside an unquoted field (put "
                                  "the field in quotes and write the quote twice)",
                                  c->name, start);
                        skip_line(c);
                        return -1;
                    }
                    g_string_append_c(c->buf, c->text[c->pos++]);
                }
                if (c->buf->len > CSV_MAX_FIELD) {
                    cus_error(error_r, "%s:%d: a field longer than %d bytes", c->name,
                              start, CSV_MAX_FIELD);
                    skip_line(c);
                    return -1;
                }
            }
            g_ptr_array_add(c->fields, g_strndup(c->buf->str, c->buf->len));
            if (c->pos < c->len && c->text[c->pos] == ',') {
                c->pos++;
                if (c->fields->len >= CSV_MAX_FIELDS) {
                    cus_error(error_r, "%s:%d: more than %d fields", c->name, start,
                              CSV_MAX_FIELDS);
                    skip_line(c);
                    return -1;
                }
                continue;
            }
            if (c->pos < c->len)
                eat_eol(c);
            break;
        }
        *fields_r = c->fields;
        return 1;
    }
}
