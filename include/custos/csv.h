/*
 * csv.h - an RFC 4180 reader for the files people keep in spreadsheets
 *
 * The bytes are decoded first: valid UTF-8 (with or without a BOM) is
 * taken as UTF-8; anything else is converted from GB18030 (GLib
 * g_convert); a file that is neither, has NUL bytes or starts with a
 * UTF-16 BOM is refused with a message naming it and the line.
 *
 * Records: fields separated by ',', records by CRLF, LF or CR; a field in
 * double quotes may hold commas, line breaks (kept as LF) and quotes
 * written twice. A quote inside an unquoted field, text after a closing
 * quote, or a quote that is never closed is a malformed record: reported
 * with the line it starts on, and reading goes on with the next record
 * (an unclosed quote runs to the end of the file). Lines with nothing on
 * them are skipped. Bounded: CSV_MAX_SIZE bytes of file, CSV_MAX_FIELDS
 * fields a record, CSV_MAX_FIELD bytes a field.
 */
#ifndef CUSTOS_CSV_H
#define CUSTOS_CSV_H

#include <stddef.h>
#include <glib.h>

#define CSV_MAX_SIZE   (64 * 1024 * 1024)
#define CSV_MAX_FIELDS 256
#define CSV_MAX_FIELD  (64 * 1024)

struct csv;

/* Decode data (len bytes) named name (for messages). -1 if the bytes are
 * not text in UTF-8 or GB18030: "NAME:LINE: ..." */
int csv_open(const char *name, const void *data, size_t len, struct csv **c_r,
             char **error_r);
/* The same for a file (at most CSV_MAX_SIZE bytes). */
int csv_open_file(const char *path, struct csv **c_r, char **error_r);
void csv_free(struct csv **c);

/* "UTF-8", "UTF-8 with BOM" or "GB18030". */
const char *csv_encoding(const struct csv *c);
/* SHA-256 (hex) of the bytes as given, before decoding. */
const char *csv_sha256(const struct csv *c);

/* The next record: 1 with its fields (char *, UTF-8, owned by c and valid
 * until the next call) and the line it starts on; 0 at the end; -1 for a
 * malformed record ("NAME:LINE: reason"), after which the next call goes
 * on with the record after it. */
int csv_next(struct csv *c, GPtrArray **fields_r, int *line_r, char **error_r);

#endif
