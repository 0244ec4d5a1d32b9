/*
 * export.c - evidence exports and their verification; formats in export.h
 *
 * Writing: the query's hits are collected as ids, hashes and names (and
 * their manifest rows written to a temp file as they come); a checkpoint
 * covering them is found or made; then each message is read from the
 * store, written, and its "add" event read, checked and copied. The
 * evidence files go last. Temp files live in FILE's directory (O_TMPFILE
 * where possible: an interrupted export leaves nothing), and are linked
 * into place at the end, FILE last.
 *
 * Verifying: the export is read once, in order (libarchive for zip and
 * tar, the mbox reader below for mbox), every file hashed as it streams
 * by; messages are never held, evidence files (bounded) are. Then the
 * statement, the checkpoint, the manifest, the chain events and
 * SHA256SUMS are checked against each other and against what was read.
 * A file that is found wrong once is not reported again by a later check.
 *
 * Everything read here is untrusted: parsers are strict (only what
 * exp_export() writes is accepted) and bounded (export.h), and names from
 * the export are only ever compared and printed (escaped), never opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include "custos/chain.h"
#include "custos/export.h"
#include "custos/log.h"
#include "custos/safename.h"

#define CHAIN_MAGIC "custos-export-chain 1\n"
#define STMT_MAGIC "custos-export 1\n"
#define MANIFEST_HEADER "id,date,from,to,cc,subject,sha256,chain_seq,file"
#define MANIFEST_FIELDS 9
#define SIG_LEN CHAIN_SIG_LEN
#define IO_CHUNK (64 * 1024)
#define SEP_MAX 256             /* an mbox separator line custos writes */

static const char *const fmt_names[] = { NULL, "zip", "tar", "mbox" };

int exp_format_parse(const char *s, enum exp_format *f_r)
{
    for (int i = EXP_ZIP; i <= EXP_MBOX; i++)
        if (strcmp(s, fmt_names[i]) == 0) {
            *f_r = (enum exp_format)i;
            return 0;
        }
    return -1;
}

const char *exp_format_name(enum exp_format f)
{
    return f >= EXP_ZIP && f <= EXP_MBOX ? fmt_names[f] : "?";
}

/* ---- small helpers ---------------------------------------------------------- */

static EVP_MD_CTX *sha_new(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        g_error("SHA-256: out of memory");
    return md;
}

static void sha_done(EVP_MD_CTX **md, unsigned char out[CUS_SHA256_LEN])
{
    unsigned int n = CUS_SHA256_LEN;

    EVP_DigestFinal_ex(*md, out, &n);
    EVP_MD_CTX_free(*md);
    *md = NULL;
}

/* A decimal number > 0 (or >= 0 with zero_ok), canonical: no sign, no
 * leading zero, at most 18 digits. */
static int parse_num(const char *s, size_t len, int zero_ok, gint64 *v)
{
    gint64 n = 0;

    if (len == 0 || len > 18 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (s[i] - '0');
    }
    if (n == 0 && !zero_ok)
        return -1;
    *v = n;
    return 0;
}

/* 64 lower-case hex digits. */
static int parse_hex(const char *s, size_t len, unsigned char out[CUS_SHA256_LEN])
{
    if (len != 2 * CUS_SHA256_LEN)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isdigit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return -1;
    return cus_unhex_n(s, out, CUS_SHA256_LEN);
}

/* "YYYY-MM-DDTHH:MM:SSZ" -> unix time; -1 if it is not that. */
static gint64 parse_iso(const char *s, size_t len)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
    GDateTime *dt;
    GTimeZone *utc;
    char buf[sizeof(pat)];
    gint64 t;

    if (len != sizeof(pat) - 1)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (pat[i] == 'd' ? !g_ascii_isdigit(s[i]) : s[i] != pat[i])
            return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    utc = g_time_zone_new_utc();
    dt = g_date_time_new_from_iso8601(buf, utc);
    g_time_zone_unref(utc);
    if (dt == NULL)
        return -1;
    t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return t;
}

/* A name from an export, fit to print: valid UTF-8, controls as \xNN,
 * at most 200 bytes. */
static char *show(const char *s)
{
    char *u = cus_utf8_repair(s, strlen(s));
    GString *o = g_string_new(NULL);

    for (const char *p = u; *p != '\0' && o->len < 200; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x202E || c == 0x202D)
            g_string_append_printf(o, "\\x%02X", c < 0x100 ? c : 0x3F);
        else
            g_string_append_len(o, p, g_utf8_next_char(p) - p);
    }
    if (strlen(u) > o->len && o->len >= 200)
        g_string_append(o, "...");
    g_free(u);
    return g_string_free(o, FALSE);
}

/* libarchive's message for a, without the newline some end with. */
static const char *ar_err(struct archive *a)
{
    static __thread char buf[512];
    const char *e = archive_error_string(a);
    size_t n;

    g_strlcpy(buf, e != NULL ? e : "unknown error", sizeof(buf));
    n = strlen(buf);
    while (n > 0 && g_ascii_isspace(buf[n - 1]))
        buf[--n] = '\0';
    return buf;
}

/* ---- keys ------------------------------------------------------------------- */

/* ---- manifest.csv ------------------------------------------------------------ */

static void csv_field(GString *out, const char *f)
{
    size_t n = strlen(f);

    if (n == 0 || (strpbrk(f, ",\"\r\n") == NULL && f[0] != ' ' && f[n - 1] != ' ')) {
        g_string_append(out, f);
        return;
    }
    g_string_append_c(out, '"');
    for (; *f != '\0'; f++) {
        if (*f == '"')
            g_string_append_c(out, '"');
        g_string_append_c(out, *f);
    }
    g_string_append_c(out, '"');
}

void exp_csv_record(GString *out, const char *const *fields, int n)
{
    for (int i = 0; i < n; i++) {
        if (i > 0)
            g_string_append_c(out, ',');
        csv_field(out, fields[i]);
    }
    g_string_append(out, "\r\n");
}

/* One record at *pos: 1 (fields filled), 0 at the end, -1. *line counts
 * the file's lines. */
static int csv_record(const char *buf, size_t len, size_t *pos, gint64 *line,
                      GPtrArray *fields, char **error_r)
{
    size_t p = *pos;
    gint64 start = *line;

    g_ptr_array_set_size(fields, 0);
    if (p >= len)
        return 0;
    for (;;) {
        GString *f = g_string_new(NULL);

        if (p < len && buf[p] == '"') {
            for (p++; ; p++) {
                if (p >= len) {
                    g_string_free(f, TRUE);
                    return cus_error(error_r, "line %" G_GINT64_FORMAT ": a quoted field "
                                     "is not closed", start);
                }
                if (buf[p] == '"') {
                    if (p + 1 < len && buf[p + 1] == '"') {
                        p++;
                    } else {
                        p++;
                        break;
                    }
                }
                if (buf[p] == '\n')
                    (*line)++;
                g_string_append_c(f, buf[p]);
                if (f->len > EXP_FIELD_MAX)
                    break;
            }
        } else {
            while (p < len && buf[p] != ',' && buf[p] != '\r' && buf[p] != '\n' &&
                   f->len <= EXP_FIELD_MAX) {
                if (buf[p] == '"') {
                    g_string_free(f, TRUE);
                    return cus_error(error_r, "line %" G_GINT64_FORMAT ": a '\"' inside an "
                                     "unquoted field", *line);
                }
                g_string_append_c(f, buf[p++]);
            }
        }
        if (f->len > EXP_FIELD_MAX || memchr(f->str, '\0', f->len) != NULL ||
            !g_utf8_validate(f->str, (gssize)f->len, NULL)) {
            g_string_free(f, TRUE);
            return cus_error(error_r, "line %" G_GINT64_FORMAT ": a field is %s", *line,
                             f->len > EXP_FIELD_MAX ? "longer than 1 MiB" : "not UTF-8 text");
        }
        g_ptr_array_add(fields, g_string_free(f, FALSE));
        if (fields->len > MANIFEST_FIELDS)
            return cus_error(error_r, "line %" G_GINT64_FORMAT ": more than %d fields",
                             start, MANIFEST_FIELDS);
        if (p < len && buf[p] == ',') {
            p++;
            continue;
        }
        if (p + 1 < len && buf[p] == '\r' && buf[p + 1] == '\n') {
            p += 2;
            (*line)++;
            break;
        }
        return cus_error(error_r, "line %" G_GINT64_FORMAT ": expected ',' or CRLF %s",
                         *line, p >= len ? "before the end of the file" : "here");
    }
    *pos = p;
    return 1;
}

static void row_free(gpointer p)
{
    struct exp_row *r = p;

    g_free(r->date);
    g_free(r->from);
    g_free(r->to);
    g_free(r->cc);
    g_free(r->subject);
    g_free(r->file);
    g_free(r);
}

int exp_manifest_parse(const void *buf0, size_t len, GPtrArray **rows_r, char **error_r)
{
    const void *buf = buf0 != NULL ? buf0 : "";   /* an empty GBytes has no data */
    GPtrArray *f = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *rows = g_ptr_array_new_with_free_func(row_free);
    gint64 line = 1, start;
    size_t pos = 0;
    int rc;
    char *err = NULL;

    *rows_r = NULL;
    if ((rc = csv_record(buf, len, &pos, &line, f, &err)) <= 0) {
        cus_error(error_r, "manifest: %s", rc == 0 ? "empty" : err);
        goto fail;
    }
    {
        GString *h = g_string_new(NULL);
        for (guint i = 0; i < f->len; i++)
            g_string_append_printf(h, "%s%s", i ? "," : "", (char *)g_ptr_array_index(f, i));
        rc = strcmp(h->str, MANIFEST_HEADER) == 0 && f->len == MANIFEST_FIELDS;
        g_string_free(h, TRUE);
    }
    if (!rc) {
        cus_error(error_r, "manifest: line 1 is not the header \"%s\"", MANIFEST_HEADER);
        goto fail;
    }
    for (;;) {
        struct exp_row *r;
        const char *v;

        start = line;
        if ((rc = csv_record(buf, len, &pos, &line, f, &err)) < 0) {
            cus_error(error_r, "manifest: %s", err);
            goto fail;
        }
        if (rc == 0)
            break;
        if (f->len != MANIFEST_FIELDS) {
            cus_error(error_r, "manifest: line %" G_GINT64_FORMAT ": %u fields, not %d",
                      start, f->len, MANIFEST_FIELDS);
            goto fail;
        }
        if (rows->len >= EXP_MESSAGES_MAX) {
            cus_error(error_r, "manifest: more than %d rows", EXP_MESSAGES_MAX);
            goto fail;
        }
        r = g_new0(struct exp_row, 1);
        r->line = start;
        g_ptr_array_add(rows, r);
#define FLD(i) ((const char *)g_ptr_array_index(f, (i)))
        if (parse_num(FLD(0), strlen(FLD(0)), 0, &r->id) < 0) {
            cus_error(error_r, "manifest: line %" G_GINT64_FORMAT ": id \"%.40s\" is not a "
                      "number", start, FLD(0));
            goto fail;
        }
        v = FLD(1);
        if (*v != '\0' && parse_iso(v, strlen(v)) < 0) {
            cus_error(error_r, "manifest: line %" G_GINT64_FORMAT ": date is not "
                      "YYYY-MM-DDTHH:MM:SSZ", start);
            goto fail;
        }
        if (parse_hex(FLD(6), strlen(FLD(6)), r->sha) < 0) {
            cus_error(error_r, "manifest: line %" G_GINT64_FORMAT ": sha256 is not 64 "
                      "lower-case hex digits", start);
            goto fail;
        }
        v = FLD(7);
        if (*v != '\0' && parse_num(v, strlen(v), 0, &r->seq) < 0) {
            cus_error(error_r, "manifest: line %" G_GINT64_FORMAT ": chain_seq is not a "
                      "number", start);
            goto fail;
        }
        if (*FLD(8) == '\0') {
            cus_error(error_r, "manifest: line %" G_GINT64_FORMAT ": no file name", start);
            goto fail;
        }
        r->date = g_strdup(FLD(1));
        r->from = g_strdup(FLD(2));
        r->to = g_strdup(FLD(3));
        r->cc = g_strdup(FLD(4));
        r->subject = g_strdup(FLD(5));
        r->file = g_strdup(FLD(8));
#undef FLD
    }
    g_ptr_array_free(f, TRUE);
    *rows_r = rows;
    return 0;
fail:
    g_free(err);
    g_ptr_array_free(f, TRUE);
    g_ptr_array_free(rows, TRUE);
    return -1;
}

/* ---- SHA256SUMS ------------------------------------------------------------- */

static void sum_free(gpointer p)
{
    struct exp_sum *s = p;

    g_free(s->name);
    g_free(s);
}

int exp_sums_parse(const void *buf0, size_t len, GPtrArray **sums_r, char **error_r)
{
    const void *buf = buf0 != NULL ? buf0 : "";   /* an empty GBytes has no data */
    GPtrArray *sums = g_ptr_array_new_with_free_func(sum_free);
    const char *p = buf, *end = p + len;
    gint64 line = 0;

    *sums_r = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *name;
        struct exp_sum *s;
        size_t n;

        line++;
        if (nl == NULL) {
            cus_error(error_r, "SHA256SUMS line %" G_GINT64_FORMAT ": no newline at the end",
                      line);
            goto fail;
        }
        name = p + 2 * CUS_SHA256_LEN + 2;
        if (name > nl || (name[-2] != ' ' || (name[-1] != ' ' && name[-1] != '*'))) {
            cus_error(error_r, "SHA256SUMS line %" G_GINT64_FORMAT ": not \"HASH  NAME\"",
                      line);
            goto fail;
        }
        n = (size_t)(nl - name);
        if (n == 0 || n > 4096 || memchr(name, '\0', n) != NULL ||
            memchr(name, '\r', n) != NULL || !g_utf8_validate(name, (gssize)n, NULL)) {
            cus_error(error_r, "SHA256SUMS line %" G_GINT64_FORMAT ": bad file name", line);
            goto fail;
        }
        if (sums->len >= EXP_MESSAGES_MAX + 16) {
            cus_error(error_r, "SHA256SUMS: more than %d lines", EXP_MESSAGES_MAX + 16);
            goto fail;
        }
        s = g_new0(struct exp_sum, 1);
        s->line = line;
        g_ptr_array_add(sums, s);
        if (parse_hex(p, 2 * CUS_SHA256_LEN, s->sha) < 0) {
            cus_error(error_r, "SHA256SUMS line %" G_GINT64_FORMAT ": the hash is not 64 "
                      "lower-case hex digits", line);
            goto fail;
        }
        s->name = g_strndup(name, n);
        p = nl + 1;
    }
    *sums_r = sums;
    return 0;
fail:
    g_ptr_array_free(sums, TRUE);
    return -1;
}

/* ---- chain.txt -------------------------------------------------------------- */

int exp_chain_parse(const void *buf0, size_t len, GPtrArray **events_r, char **error_r)
{
    const void *buf = buf0 != NULL ? buf0 : "";   /* an empty GBytes has no data */
    GPtrArray *evs = g_ptr_array_new_with_free_func(g_free);
    const char *p = buf, *end = p + len;
    gint64 n = 0;

    *events_r = NULL;
    if (len < strlen(CHAIN_MAGIC) || memcmp(p, CHAIN_MAGIC, strlen(CHAIN_MAGIC)) != 0) {
        cus_error(error_r, "chain evidence: no \"%.*s\" line", (int)strlen(CHAIN_MAGIC) - 1,
                  CHAIN_MAGIC);
        goto fail;
    }
    p += strlen(CHAIN_MAGIC);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)MIN(end - p, 256));
        char **f = NULL;
        struct exp_event *e;
        gint64 elen = 0;
        int ok;

        n++;
        if (nl == NULL) {
            cus_error(error_r, "chain evidence: record %" G_GINT64_FORMAT ": no \"event\" "
                      "line", n);
            goto fail;
        }
        {
            char *l = g_strndup(p, (size_t)(nl - p));
            f = g_strsplit(l, " ", 6);
            g_free(l);
        }
        e = g_new0(struct exp_event, 1);
        g_ptr_array_add(evs, e);
        ok = g_strv_length(f) == 5 && strcmp(f[0], "event") == 0 &&
             parse_num(f[1], strlen(f[1]), 0, &e->seq) == 0 &&
             parse_hex(f[2], strlen(f[2]), e->prev) == 0 &&
             parse_hex(f[3], strlen(f[3]), e->hash) == 0 &&
             parse_num(f[4], strlen(f[4]), 0, &elen) == 0 && elen <= EXP_EVENT_MAX;
        g_strfreev(f);
        if (!ok) {
            cus_error(error_r, "chain evidence: record %" G_GINT64_FORMAT ": not \"event SEQ "
                      "PREV HASH LENGTH\"", n);
            goto fail;
        }
        p = nl + 1;
        if ((gint64)(end - p) < elen) {
            cus_error(error_r, "chain evidence: record %" G_GINT64_FORMAT " (seq %"
                      G_GINT64_FORMAT "): the event is cut short", n, e->seq);
            goto fail;
        }
        if (evs->len > EXP_MESSAGES_MAX) {
            cus_error(error_r, "chain evidence: more than %d records", EXP_MESSAGES_MAX);
            goto fail;
        }
        e->bytes = p;
        e->len = (size_t)elen;
        p += elen;
    }
    *events_r = evs;
    return 0;
fail:
    g_ptr_array_free(evs, TRUE);
    return -1;
}

/* ---- export.txt ------------------------------------------------------------- */

void exp_statement_clear(struct exp_statement *s)
{
    g_free(s->user);
    g_free(s->query);
    memset(s, 0, sizeof(*s));
}

/* The value of line "key VALUE\n" at *p (unescaped), or NULL; *p moves on. */
static char *stmt_line(const char **p, const char *end, const char *key)
{
    size_t kl = strlen(key);
    const char *nl;
    char *v;

    if ((size_t)(end - *p) < kl + 1 || memcmp(*p, key, kl) != 0 || (*p)[kl] != ' ')
        return NULL;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return NULL;
    v = chain_value_get(*p + kl + 1, (size_t)(nl - *p - kl - 1));
    *p = nl + 1;
    return v;
}

int exp_statement_parse(const void *buf0, size_t len, struct exp_statement *s,
                        char **error_r)
{
    const void *buf = buf0 != NULL ? buf0 : "";   /* an empty GBytes has no data */
    static const char *const keys[] = {
        "format", "time", "user", "query", "messages", "manifest-sha256", "chain-sha256",
        "checkpoint-sha256", "checkpoint-seq", "checkpoint-hash", "key",
    };
    const char *p = buf, *end = p + len;
    char *v = NULL;

    memset(s, 0, sizeof(*s));
    if (len > EXP_SMALL_MAX)
        return cus_error(error_r, "statement: longer than %d bytes", EXP_SMALL_MAX);
    if (len < strlen(STMT_MAGIC) || memcmp(p, STMT_MAGIC, strlen(STMT_MAGIC)) != 0)
        return cus_error(error_r, "statement: no \"custos-export 1\" line");
    p += strlen(STMT_MAGIC);
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        int ok;

        v = stmt_line(&p, end, keys[i]);
        if (v == NULL) {
            exp_statement_clear(s);
            return cus_error(error_r, "statement: the \"%s\" line is missing, out of order "
                             "or badly escaped", keys[i]);
        }
        switch (i) {
        case 0: ok = exp_format_parse(v, &s->format) == 0; break;
        case 1: ok = (s->time = parse_iso(v, strlen(v))) >= 0; break;
        case 2: s->user = v; v = NULL; ok = 1; break;
        case 3: s->query = v; v = NULL; ok = 1; break;
        case 4: ok = parse_num(v, strlen(v), 0, &s->messages) == 0; break;
        case 5: ok = parse_hex(v, strlen(v), s->manifest_sha) == 0; break;
        case 6: ok = parse_hex(v, strlen(v), s->chain_sha) == 0; break;
        case 7: ok = parse_hex(v, strlen(v), s->checkpoint_sha) == 0; break;
        case 8: ok = parse_num(v, strlen(v), 0, &s->checkpoint_seq) == 0; break;
        case 9: ok = parse_hex(v, strlen(v), s->checkpoint_hash) == 0; break;
        default:
            ok = strlen(v) < sizeof(s->key) &&
                 (strcmp(v, "none") == 0 ||
                  (strlen(v) == 24 && strncmp(v, "ed25519:", 8) == 0 &&
                   strspn(v + 8, "0123456789abcdef") == 16));
            if (ok)
                strcpy(s->key, v);
        }
        g_free(v);
        v = NULL;
        if (!ok) {
            exp_statement_clear(s);
            return cus_error(error_r, "statement: bad \"%s\" line", keys[i]);
        }
    }
    s->signed_len = (size_t)(p - (const char *)buf);
    if (strcmp(s->key, "none") == 0) {
        if (p != end) {
            exp_statement_clear(s);
            return cus_error(error_r, "statement: unsigned, but more follows the key line");
        }
        return 0;
    }
    v = stmt_line(&p, end, "signature");
    if (v != NULL && strlen(v) == 88) {
        gsize n = 0;
        guchar *sig = g_base64_decode(v, &n);
        char *again = sig != NULL && n == SIG_LEN ? g_base64_encode(sig, n) : NULL;

        if (again != NULL && strcmp(again, v) == 0) {     /* canonical base64 only */
            memcpy(s->sig, sig, SIG_LEN);
            s->is_signed = 1;
        }
        g_free(again);
        g_free(sig);
    }
    g_free(v);
    if (!s->is_signed || p != end) {
        exp_statement_clear(s);
        return cus_error(error_r, "statement: bad or missing \"signature\" line");
    }
    return 0;
}

/* The statement's text; signed with k when k is not NULL. */
static GString *statement_format(const struct exp_statement *s, const struct chain_key *k,
                                 char **error_r)
{
    GString *o = g_string_new(STMT_MAGIC);
    char when[32], hex[CUS_SHA256_HEX];
    unsigned char sig[SIG_LEN];

    cus_iso8601(s->time, when, sizeof(when));
    g_string_append_printf(o, "format %s\ntime %s\nuser ", exp_format_name(s->format), when);
    chain_value_put(o, s->user);
    g_string_append(o, "\nquery ");
    chain_value_put(o, s->query);
    g_string_append_printf(o, "\nmessages %" G_GINT64_FORMAT "\n", s->messages);
    cus_hex(s->manifest_sha, CUS_SHA256_LEN, hex);
    g_string_append_printf(o, "manifest-sha256 %s\n", hex);
    cus_hex(s->chain_sha, CUS_SHA256_LEN, hex);
    g_string_append_printf(o, "chain-sha256 %s\n", hex);
    cus_hex(s->checkpoint_sha, CUS_SHA256_LEN, hex);
    g_string_append_printf(o, "checkpoint-sha256 %s\n", hex);
    cus_hex(s->checkpoint_hash, CUS_SHA256_LEN, hex);
    g_string_append_printf(o, "checkpoint-seq %" G_GINT64_FORMAT "\ncheckpoint-hash %s\n"
                           "key %s\n", s->checkpoint_seq, hex, k != NULL ? chain_key_id(k) : "none");
    if (k != NULL) {
        char *b64;

        if (chain_key_sign(k, o->str, o->len, sig, error_r) < 0) {
            g_string_free(o, TRUE);
            return NULL;
        }
        b64 = g_base64_encode(sig, SIG_LEN);
        g_string_append_printf(o, "signature %s\n", b64);
        g_free(b64);
    }
    return o;
}

/* ---- the mbox ----------------------------------------------------------------- */

/* "Www Mmm dd hh:mm:ss yyyy" (asctime, UTC, C locale). */
static void mbox_date(gint64 t, char buf[32])
{
    static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                      "Sep", "Oct", "Nov", "Dec" };
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    g_snprintf(buf, 32, "%s %s %2d %02d:%02d:%02d %04d", wd[tm.tm_wday], mo[tm.tm_mon],
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

/* Whether the line at p (n bytes, to its end) matches ^>*From . */
static int from_line(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && p[i] == '>')
        i++;
    return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

int exp_mbox_write(gint64 id, gint64 date, const void *raw, size_t len, exp_put_fn *put,
                   void *ctx)
{
    const char *p = raw, *end = p + len;
    int noeol = len == 0 || p[len - 1] != '\n';
    char when[32], *sep;
    int ret;

    if (date <= 0 || date > G_GINT64_CONSTANT(253402300799))
        date = 0;
    mbox_date(date, when);
    sep = g_strdup_printf("From custos-export-%" G_GINT64_FORMAT "%s %s\n", id,
                          noeol ? "-noeol" : "", when);
    ret = put(ctx, sep, strlen(sep));
    g_free(sep);
    while (ret == 0 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl + 1 - p) : (size_t)(end - p);

        if (from_line(p, n))
            ret = put(ctx, ">", 1);
        if (ret == 0)
            ret = put(ctx, p, n);
        p += n;
    }
    if (ret == 0 && noeol)
        ret = put(ctx, "\n", 1);
    if (ret == 0)
        ret = put(ctx, "\n", 1);
    return ret;
}

enum mbox_state {
    MB_LINE_START,              /* at the start of a line */
    MB_GT,                      /* '>'s at the start of a line (gt of them) */
    MB_FROM,                    /* after them, matched bytes of "From " */
    MB_MID,                     /* inside a line */
    MB_SEP,                     /* a separator line, kept in sep */
};

struct exp_mbox {
    struct exp_mbox_cbs cbs;
    void *ctx;
    enum mbox_state st;
    gint64 gt;
    int matched;
    int in_msg, noeol, seen;
    gint64 offset;              /* of the next byte fed */
    gint64 sep_offset;
    GString *sep;
    unsigned char hold[3];      /* the last bytes of the message, held back */
    int nhold;
};

struct exp_mbox *exp_mbox_new(const struct exp_mbox_cbs *cbs, void *ctx)
{
    struct exp_mbox *m = g_new0(struct exp_mbox, 1);

    m->cbs = *cbs;
    m->ctx = ctx;
    m->sep = g_string_new(NULL);
    return m;
}

void exp_mbox_free(struct exp_mbox **m)
{
    if (*m == NULL)
        return;
    g_string_free((*m)->sep, TRUE);
    g_free(*m);
    *m = NULL;
}

/* Message bytes (unquoted), through the hold-back of 3. */
static int mb_emit(struct exp_mbox *m, const char *p, size_t n, char **error_r)
{
    if (n == 0)
        return 0;
    if (!m->in_msg)
        return cus_error(error_r, "not an mbox made by custos-archive export: it does not "
                         "start with a \"From custos-export-\" line");
    if (n >= 3) {
        if (m->nhold > 0)
            m->cbs.data(m->ctx, m->hold, (size_t)m->nhold);
        m->cbs.data(m->ctx, p, n - 3);
        memcpy(m->hold, p + n - 3, 3);
        m->nhold = 3;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (m->nhold == 3) {
            m->cbs.data(m->ctx, m->hold, 1);
            memmove(m->hold, m->hold + 1, 2);
            m->nhold = 2;
        }
        m->hold[m->nhold++] = (unsigned char)p[i];
    }
    return 0;
}

static int mb_emit_gt(struct exp_mbox *m, gint64 n, char **error_r)
{
    static const char gts[64] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";

    while (n > 0) {
        size_t k = (size_t)MIN(n, (gint64)sizeof(gts));
        if (mb_emit(m, gts, k, error_r) < 0)
            return -1;
        n -= (gint64)k;
    }
    return 0;
}

/* The message ends: what is held must be the blank line (and with
 * -noeol the newline the writer added). */
static void mb_end(struct exp_mbox *m)
{
    const char *problem = NULL;
    int h = m->nhold, keep;

    if (!m->in_msg)
        return;
    if (!m->noeol) {
        keep = h - 1;
        if (h < 2 || m->hold[h - 1] != '\n' || m->hold[h - 2] != '\n')
            problem = "it does not end with a newline and the blank line before the next "
                      "\"From \" line";
    } else {
        keep = h - 2;
        if (h < 3 || m->hold[h - 1] != '\n' || m->hold[h - 2] != '\n' || m->hold[h - 3] == '\n')
            problem = "marked -noeol, but it does not end with a last line without a newline "
                      "and a blank line";
    }
    if (problem != NULL)
        keep = h;               /* what is wrong shows in its SHA-256 too */
    if (keep > 0)
        m->cbs.data(m->ctx, m->hold, (size_t)keep);
    m->nhold = 0;
    m->in_msg = 0;
    m->cbs.end(m->ctx, problem);
}

/* "From custos-export-ID[-noeol] Www Mmm dd hh:mm:ss yyyy": the id, or -1. */
static gint64 mb_sep_parse(const char *s, size_t n, int *noeol)
{
    static const char pfx[] = "From custos-export-";
    const char *p = s + strlen(pfx), *sp;
    gint64 id;

    *noeol = 0;
    if (n < strlen(pfx) || memcmp(s, pfx, strlen(pfx)) != 0)
        return -1;
    sp = memchr(p, ' ', n - (size_t)(p - s));
    if (sp == NULL || (size_t)(s + n - (sp + 1)) != 24)
        return -1;
    if (sp - p > 6 && memcmp(sp - 6, "-noeol", 6) == 0) {
        *noeol = 1;
        if (parse_num(p, (size_t)(sp - 6 - p), 0, &id) < 0)
            return -1;
    } else if (parse_num(p, (size_t)(sp - p), 0, &id) < 0) {
        return -1;
    }
    sp++;
    if (sp[3] != ' ' || sp[7] != ' ' || sp[10] != ' ' || sp[13] != ':' || sp[16] != ':' ||
        sp[19] != ' ')
        return -1;
    return id;
}

static void mb_begin(struct exp_mbox *m)
{
    int noeol = 0;
    gint64 id = mb_sep_parse(m->sep->str, m->sep->len, &noeol);

    m->in_msg = 1;
    m->noeol = id > 0 && noeol;
    m->nhold = 0;
    m->seen = 1;
    m->cbs.begin(m->ctx, id > 0 ? id : -1, m->noeol, m->sep_offset);
    g_string_truncate(m->sep, 0);
}

int exp_mbox_feed(struct exp_mbox *m, const void *buf0, size_t len, char **error_r)
{
    const void *buf = buf0 != NULL ? buf0 : "";   /* an empty GBytes has no data */
    static const char from[] = "From ";
    const char *p = buf, *end = p + len;

    while (p < end) {
        char c = *p;

        switch (m->st) {
        case MB_LINE_START:
            if (c == '>') {
                m->st = MB_GT;
                m->gt = 1;
                p++;
                break;
            }
            if (c == 'F') {
                m->st = MB_FROM;
                m->gt = 0;
                m->matched = 1;
                p++;
                break;
            }
            m->st = MB_MID;
            break;
        case MB_GT:
            if (c == '>') {
                m->gt++;
                p++;
            } else if (c == 'F') {
                m->st = MB_FROM;
                m->matched = 1;
                p++;
            } else {
                if (mb_emit_gt(m, m->gt, error_r) < 0)
                    return -1;
                m->st = MB_MID;
            }
            break;
        case MB_FROM:
            if (c == from[m->matched]) {
                p++;
                if (++m->matched < 5)
                    break;
                if (m->gt == 0) {
                    mb_end(m);
                    m->st = MB_SEP;
                    m->sep_offset = m->offset + (gint64)(p - (const char *)buf) - 5;
                    g_string_assign(m->sep, from);
                } else {
                    if (mb_emit_gt(m, m->gt - 1, error_r) < 0 ||
                        mb_emit(m, from, 5, error_r) < 0)
                        return -1;
                    m->st = MB_MID;
                }
                break;
            }
            if (mb_emit_gt(m, m->gt, error_r) < 0 ||
                mb_emit(m, from, (size_t)m->matched, error_r) < 0)
                return -1;
            m->st = MB_MID;
            break;
        case MB_MID: {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl != NULL ? nl + 1 : end;

            if (mb_emit(m, p, (size_t)(stop - p), error_r) < 0)
                return -1;
            p = stop;
            if (nl != NULL)
                m->st = MB_LINE_START;
            break;
        }
        case MB_SEP: {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl != NULL ? nl : end;

            if (m->sep->len < SEP_MAX)
                g_string_append_len(m->sep, p, MIN(stop - p, (gssize)(SEP_MAX - m->sep->len)));
            p = nl != NULL ? nl + 1 : end;
            if (nl != NULL) {
                mb_begin(m);
                m->st = MB_LINE_START;
            }
            break;
        }
        }
    }
    m->offset += (gint64)len;
    return 0;
}

int exp_mbox_finish(struct exp_mbox *m, char **error_r)
{
    static const char from[] = "From ";

    switch (m->st) {
    case MB_GT:
        if (mb_emit_gt(m, m->gt, error_r) < 0)
            return -1;
        break;
    case MB_FROM:
        if (mb_emit_gt(m, m->gt, error_r) < 0 ||
            mb_emit(m, from, (size_t)m->matched, error_r) < 0)
            return -1;
        break;
    case MB_SEP:
        /* a separator line cut off: a message of its own, wrong */
        mb_begin(m);
        break;
    default:
        break;
    }
    m->st = MB_LINE_START;
    if (!m->seen && !m->in_msg)
        return cus_error(error_r, "an empty mbox: no message in it");
    mb_end(m);
    return 0;
}

/* ---- for import ---- */

int exp_mbox_is_export(const void *buf, size_t len)
{
    return buf != NULL && len >= 19 && memcmp(buf, "From custos-export-", 19) == 0;
}

struct each {
    exp_mbox_msg_cb *cb;
    void *ctx;
    GByteArray *msg;
    gint64 id;
    int stop;
};

static void each_begin(void *ctx, gint64 id, int noeol, gint64 offset)
{
    struct each *e = ctx;

    g_byte_array_set_size(e->msg, 0);
    e->id = id;
}

static void each_data(void *ctx, const void *buf, size_t len)
{
    struct each *e = ctx;

    if (!e->stop)
        g_byte_array_append(e->msg, buf, (guint)len);
}

static void each_end(void *ctx, const char *problem)
{
    struct each *e = ctx;

    if (!e->stop && e->cb(e->ctx, e->id, e->msg->data, e->msg->len, problem) != 0)
        e->stop = 1;
    g_byte_array_set_size(e->msg, 0);
}

int exp_mbox_each(const void *buf, size_t len, exp_mbox_msg_cb *cb, void *ctx,
                  char **error_r)
{
    static const struct exp_mbox_cbs cbs = { each_begin, each_data, each_end };
    struct each e = { cb, ctx, g_byte_array_new(), 0, 0 };
    struct exp_mbox *m;
    int ret;

    if (!exp_mbox_is_export(buf, len)) {
        g_byte_array_free(e.msg, TRUE);
        return cus_error(error_r, "not an mbox made by custos-archive export");
    }
    m = exp_mbox_new(&cbs, &e);
    ret = exp_mbox_feed(m, buf, len, error_r);
    if (ret == 0)
        ret = exp_mbox_finish(m, error_r);
    exp_mbox_free(&m);
    g_byte_array_free(e.msg, TRUE);
    return ret;
}

/* ---- output files -------------------------------------------------------------- */

/* A file being written: unlinked (O_TMPFILE) or, where the file system
 * cannot, a hidden name in the same directory; hashed as it is written. */
struct tmpf {
    int fd;
    char *path;                 /* the hidden name, or NULL for O_TMPFILE */
    char *linked;               /* where it was put in place, or NULL */
    EVP_MD_CTX *md;
    guint64 size;
    unsigned char sha[CUS_SHA256_LEN];
};

static int tmpf_open(const char *dir, const char *base, struct tmpf *t, char **error_r)
{
    memset(t, 0, sizeof(*t));
    t->fd = -1;
#ifdef O_TMPFILE
    if (access("/proc/self/fd", X_OK) == 0)
        t->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (t->fd < 0) {
        t->path = g_strdup_printf("%s/.%s.export-XXXXXX", dir, base);
        t->fd = g_mkstemp_full(t->path, O_RDWR | O_CLOEXEC, 0600);
        if (t->fd < 0) {
            cus_error_errno(error_r, "cannot create a file in %s", dir);
            g_free(t->path);
            t->path = NULL;
            return -1;
        }
    }
    t->md = sha_new();
    return 0;
}

static int tmpf_write(struct tmpf *t, const void *buf, size_t len, char **error_r)
{
    if (cus_write_all(t->fd, buf, len) < 0)
        return cus_error_errno(error_r, "write(%s) failed", t->path != NULL ? t->path :
                               "a temporary file of the export");
    EVP_DigestUpdate(t->md, buf, len);
    t->size += len;
    return 0;
}

static int tmpf_put(void *ctx, const void *buf, size_t len)
{
    struct tmpf *t = ctx;

    if (cus_write_all(t->fd, buf, len) < 0)
        return -1;
    EVP_DigestUpdate(t->md, buf, len);
    t->size += len;
    return 0;
}

static void tmpf_done(struct tmpf *t)
{
    if (t->md != NULL)
        sha_done(&t->md, t->sha);
}

/* Put the file in place at dest: never over an existing file unless
 * force. Synced first. -1 with errno EEXIST when dest exists. */
static int tmpf_link(struct tmpf *t, const char *dest, int force, char **error_r)
{
    char *tmp = NULL;
    int ret = -1, e = 0;

    if (fsync(t->fd) < 0)
        return cus_error_errno(error_r, "fsync(%s) failed", dest);
    if (t->path == NULL) {
        char proc[64];

        g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
        if (!force) {
            if (linkat(AT_FDCWD, proc, AT_FDCWD, dest, AT_SYMLINK_FOLLOW) < 0)
                goto fail;
        } else {
            int rc = -1;

            for (int i = 0; i < 100 && rc < 0; i++) {
                g_free(tmp);
                tmp = g_strdup_printf("%s.tmp-%08x", dest, g_random_int());
                rc = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW);
                if (rc < 0 && errno != EEXIST)
                    break;
            }
            if (rc < 0)
                goto fail;
            if (rename(tmp, dest) < 0) {
                e = errno;
                unlink(tmp);
                errno = e;
                goto fail;
            }
        }
    } else if (!force) {
        if (link(t->path, dest) < 0)
            goto fail;
        unlink(t->path);
    } else if (rename(t->path, dest) < 0) {
        goto fail;
    }
    g_free(t->path);
    t->path = NULL;
    t->linked = g_strdup(dest);
    ret = 0;
fail:
    if (ret < 0) {
        e = errno;
        cus_error(error_r, "%s: %s", dest, e == EEXIST ?
                  "exists already (--force replaces it)" : g_strerror(e));
    }
    g_free(tmp);
    errno = e;
    return ret;
}

static void tmpf_close(struct tmpf *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    if (t->path != NULL)
        unlink(t->path);
    g_free(t->path);
    g_free(t->linked);
    if (t->md != NULL)
        EVP_MD_CTX_free(t->md);
    memset(t, 0, sizeof(*t));
    t->fd = -1;
}

/* ---- exporting ----------------------------------------------------------------- */

static const char readme_text[] =
    "custos evidence export\n"
    "======================\n"
    "\n"
    "These are messages exactly as the custos mail archive holds them, with the\n"
    "evidence that they are. Files (%s):\n"
    "\n"
    "%s"
    "  %-22s one row per message: id, date, from, to, cc, subject, the SHA-256\n"
    "                         of its raw bytes, its position in the archive's hash\n"
    "                         chain (chain_seq) and its file name\n"
    "  %-22s for each message its \"add\" event of the hash chain and the hash\n"
    "                         before it: \"event SEQ PREV HASH LENGTH\", then LENGTH\n"
    "                         bytes; HASH = SHA-256(PREV || event bytes), and the\n"
    "                         event's \"message\" line is the message's SHA-256\n"
    "  %-22s a checkpoint of the chain at or past every position above, signed\n"
    "                         by the archive when it has a signing key\n"
    "  %-22s the statement: who exported what and when, the SHA-256 of the\n"
    "                         manifest, the chain events and the checkpoint, signed\n"
    "  %-22s the public key of those signatures (when signed); compare its id\n"
    "                         (the statement's \"key\" line) with the one published\n"
    "  %-22s the SHA-256 of every file\n"
    "\n"
    "To check it:\n"
    "  sha256sum -c %s          (in the directory of the files)\n"
    "  custos-archive verify-export %s [--key PUBLISHED-KEY.pem]\n"
    "                         (needs no archive and no configuration)\n"
    "By hand: openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in SIGNED-PART\n"
    "-sigfile SIG checks a signature over every byte before the \"signature\" line\n"
    "(base64-decoded). The link from an event to the checkpoint needs the whole chain,\n"
    "which the archive keeps: custos-archive verify checks it there.\n";

struct item {
    gint64 id, seq, date;
    unsigned char sha[CUS_SHA256_LEN];
    struct store_loc ev;        /* the "add" event's record */
    char *name;                 /* messages/NNNNNN-DATE-SUBJECT.eml */
};

/* One evidence file beside an mbox (or a member of a zip/tar). */
struct side {
    const char *name;           /* EXP_MANIFEST, ... */
    struct tmpf t;
    int used;
};

enum { S_MANIFEST, S_CHAIN, S_CHECKPOINT, S_PUBKEY, S_STATEMENT, S_README, S_SUMS, S_N };

struct xp {
    const struct exp_opts *o;
    struct arc *arc;
    sqlite3_stmt *q_add, *q_hash;
    GArray *items;              /* struct item */
    struct side side[S_N];
    struct tmpf main;           /* FILE */
    struct archive *a;          /* zip/tar being written to main */
    char *dir, *base;
    gint64 now, max_seq, no_chain;
    char *err;                  /* what stopped the search callback */
};

static void xp_clear(struct xp *x)
{
    if (x->items != NULL) {
        for (guint i = 0; i < x->items->len; i++)
            g_free(g_array_index(x->items, struct item, i).name);
        g_array_free(x->items, TRUE);
    }
    sqlite3_finalize(x->q_add);
    sqlite3_finalize(x->q_hash);
    if (x->a != NULL)
        archive_write_free(x->a);
    for (int i = 0; i < S_N; i++)
        tmpf_close(&x->side[i].t);
    tmpf_close(&x->main);
    g_free(x->dir);
    g_free(x->base);
    g_free(x->err);
}

static void join(GString *out, GPtrArray *a)
{
    for (guint i = 0; i < a->len; i++) {
        if (i > 0)
            g_string_append(out, "; ");
        g_string_append(out, g_ptr_array_index(a, i));
    }
}

/* A manifest field as verify-export reads it back: UTF-8 (repaired if
 * index.db had anything else), at most EXP_FIELD_MAX bytes (a cut said
 * at its end, on a character boundary). g_free it. */
static char *field(const char *v)
{
    char *u = g_utf8_validate(v, -1, NULL) ? g_strdup(v) : cus_utf8_repair(v, strlen(v));
    size_t n = strlen(u), keep = EXP_FIELD_MAX - 64;
    char *cut;

    if (n <= EXP_FIELD_MAX)
        return u;
    while (keep > 0 && ((unsigned char)u[keep] & 0xC0) == 0x80)
        keep--;
    cut = g_strdup_printf("%.*s [cut: %zu bytes more]", (int)keep, u, n - keep);
    g_free(u);
    return cut;
}

/* h_seq as index.db has it: 1, 0 no such entry, -1. */
static int chain_hash(struct xp *x, gint64 seq, unsigned char out[CUS_SHA256_LEN],
                      char **error_r)
{
    sqlite3_stmt *q = x->q_hash;
    int rc, found = 0;

    if (seq == 0) {
        chain_genesis(out);
        return 1;
    }
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, seq);
    if ((rc = sqlite3_step(q)) == SQLITE_ROW && sqlite3_column_bytes(q, 0) == CUS_SHA256_LEN) {
        memcpy(out, sqlite3_column_blob(q, 0), CUS_SHA256_LEN);
        found = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        found = cus_error(error_r, "index.db: reading chain entry %" G_GINT64_FORMAT ": %s",
                          seq, sqlite3_errmsg(sqlite3_db_handle(q)));
    }
    sqlite3_reset(q);
    return found;
}

/* One hit: its manifest row now, the rest when its bytes are written. */
static int xp_hit(void *ctx, const struct idx_hit *h)
{
    struct xp *x = ctx;
    struct item it;
    GString *row = NULL;
    char date[32] = "", day[16], idbuf[24], seqbuf[24], *slice;
    const char *f[MANIFEST_FIELDS];
    int rc;

    memset(&it, 0, sizeof(it));
    it.id = h->id;
    it.date = h->date;
    if (x->items->len >= EXP_MESSAGES_MAX) {
        x->err = g_strdup_printf("more than %d messages match: narrow the query (e.g. with "
                                 "after: and before:) and export in parts",
                                 EXP_MESSAGES_MAX);
        return 1;
    }
    if (cus_unhex(h->sha256, it.sha, CUS_SHA256_LEN) < 0) {
        x->err = g_strdup_printf("index.db: message %" G_GINT64_FORMAT " has no SHA-256; "
                                 "run custos-archive verify", h->id);
        return 1;
    }
    sqlite3_reset(x->q_add);
    sqlite3_bind_int64(x->q_add, 1, h->id);
    rc = sqlite3_step(x->q_add);
    if (rc == SQLITE_ROW) {
        it.seq = sqlite3_column_int64(x->q_add, 0);
        it.ev.segment = (uint32_t)sqlite3_column_int64(x->q_add, 1);
        it.ev.offset = (uint64_t)sqlite3_column_int64(x->q_add, 2);
        it.ev.length = (uint32_t)sqlite3_column_int64(x->q_add, 3);
    } else if (rc != SQLITE_DONE) {
        x->err = g_strdup_printf("index.db: chain entry of message %" G_GINT64_FORMAT ": %s",
                                 h->id, sqlite3_errmsg(sqlite3_db_handle(x->q_add)));
        return 1;
    }
    sqlite3_reset(x->q_add);
    if (it.seq == 0)
        x->no_chain++;
    x->max_seq = MAX(x->max_seq, it.seq);
    if (h->date > 0 && h->date < G_GINT64_CONSTANT(253402300800)) {      /* up to 9999 */
        cus_iso8601(h->date, date, sizeof(date));
        g_strlcpy(day, date, 11);
    } else {
        strcpy(day, "nodate");
    }
    slice = safename(h->subject, strlen(h->subject), EXP_SUBJECT_BYTES, "no-subject",
                     SAFENAME_DASH);
    it.name = g_strdup_printf(EXP_MSGDIR "%06" G_GINT64_FORMAT "-%s-%s.eml", h->id, day, slice);
    g_free(slice);
    g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, h->id);
    if (it.seq > 0)
        g_snprintf(seqbuf, sizeof(seqbuf), "%" G_GINT64_FORMAT, it.seq);
    else
        seqbuf[0] = '\0';
    {
        GString *from = g_string_new(NULL), *to = g_string_new(NULL), *cc = g_string_new(NULL);

        char *ff, *ft, *fc, *fs;

        join(from, h->from);
        join(to, h->to);
        join(cc, h->cc);
        ff = field(from->str);
        ft = field(to->str);
        fc = field(cc->str);
        fs = field(h->subject);
        f[0] = idbuf; f[1] = date; f[2] = ff; f[3] = ft; f[4] = fc;
        f[5] = fs; f[6] = h->sha256; f[7] = seqbuf; f[8] = it.name;
        row = g_string_new(NULL);
        exp_csv_record(row, f, MANIFEST_FIELDS);
        g_string_free(from, TRUE);
        g_string_free(to, TRUE);
        g_string_free(cc, TRUE);
        g_free(ff);
        g_free(ft);
        g_free(fc);
        g_free(fs);
    }
    g_array_append_val(x->items, it);
    rc = tmpf_write(&x->side[S_MANIFEST].t, row->str, row->len, &x->err);
    g_string_free(row, TRUE);
    return rc < 0 ? 1 : 0;
}

struct cprow {
    gint64 seq;
    struct store_loc loc;
};

/* The newest checkpoint at or past need (signed by key, if not NULL):
 * 1, 0 none, -1. */
static int cp_find(struct arc *arc, gint64 need, const char *key, struct cprow *c,
                   char **error_r)
{
    sqlite3 *db = idx_db(arc_index(arc));
    sqlite3_stmt *q = NULL;
    int rc, found = 0;

    if (sqlite3_prepare_v2(db, "SELECT seq, segment, offset, length FROM checkpoints "
                           "WHERE seq >= ?1 AND (?2 IS NULL OR key = ?2) "
                           "ORDER BY id DESC LIMIT 1", -1, &q, NULL) != SQLITE_OK)
        return cus_error(error_r, "index.db: checkpoints: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(q, 1, need);
    if (key != NULL)
        sqlite3_bind_text(q, 2, key, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        c->seq = sqlite3_column_int64(q, 0);
        c->loc.segment = (uint32_t)sqlite3_column_int64(q, 1);
        c->loc.offset = (uint64_t)sqlite3_column_int64(q, 2);
        c->loc.length = (uint32_t)sqlite3_column_int64(q, 3);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = cus_error(error_r, "index.db: checkpoints: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(q);
    return found;
}

/* A checkpoint covering the export: found, or made with the writer's lock
 * (ARC_WAIT: waited for as long as CUSTOS_LOCK_WAIT says, while ingest
 * --follow lets it go for us). */
static int cp_get(struct xp *x, const struct cfg *cfg, const char *key, struct cprow *c,
                  int *made_r, enum exp_fail *fail_r, char **error_r)
{
    struct arc *w = NULL;
    struct arc_checkpoint_info ci;
    char *err = NULL;
    int found, ret = 0;

    if ((found = cp_find(x->arc, x->max_seq, key, c, error_r)) != 0)
        return found < 0 ? -1 : 0;
    log_info("export: no checkpoint covers chain position %" G_GINT64_FORMAT " yet: making "
             "one", x->max_seq);
    if (arc_open(cfg, ARC_WRITE | ARC_WAIT, &w, &err) < 0) {
        if (strstr(err, "in use by another writer") != NULL) {
            *fail_r = EXP_FAIL_BUSY;
            cus_error(error_r, "no checkpoint covers chain position %" G_GINT64_FORMAT " yet, "
                      "and one cannot be made now: %s; run custos-archive checkpoint once the "
                      "writer lets go (or wait for ingest's next checkpoint), then export again",
                      x->max_seq, err);
        } else {
            cus_error(error_r, "no checkpoint covers chain position %" G_GINT64_FORMAT " yet, "
                      "and one could not be made: %s (an administrator can run "
                      "custos-archive checkpoint)", x->max_seq, err);
        }
        g_free(err);
        return -1;
    }
    /* another writer may have made one while we waited for its lock */
    if ((found = cp_find(x->arc, x->max_seq, key, c, error_r)) == 0) {
        ret = arc_checkpoint(w, 0, &ci, &err);
        if (ret == 0 && !ci.made)       /* the newest is at the head, but not ours */
            ret = arc_checkpoint(w, 1, &ci, &err);
        if (ret == 0) {
            *made_r = 1;
            log_info("export: made checkpoint seq %" G_GINT64_FORMAT " (key %s)", ci.seq,
                     ci.key);
        }
    }
    arc_close(&w);
    if (found < 0)
        return -1;
    if (ret < 0) {
        cus_error(error_r, "a checkpoint covering the export could not be made: %s", err);
        g_free(err);
        return -1;
    }
    if (found == 0 && (found = cp_find(x->arc, x->max_seq, key, c, error_r)) == 0)
        cus_error(error_r, "made a checkpoint, but index.db shows none at or past chain "
                  "position %" G_GINT64_FORMAT "; run custos-archive verify", x->max_seq);
    return found > 0 ? 0 : -1;
}

static int sums_line(struct xp *x, const unsigned char sha[CUS_SHA256_LEN], const char *name,
                     char **error_r)
{
    char hex[CUS_SHA256_HEX], *l;
    int ret;

    cus_hex(sha, CUS_SHA256_LEN, hex);
    l = g_strdup_printf("%s  %s\n", hex, name);
    ret = tmpf_write(&x->side[S_SUMS].t, l, strlen(l), error_r);
    g_free(l);
    return ret;
}

/* A member of the zip/tar: data, or the contents of from; listed in
 * SHA256SUMS with sha (unless NULL). */
static int ar_add(struct xp *x, const char *name, const void *data, size_t len,
                  struct tmpf *from, const unsigned char sha[CUS_SHA256_LEN], char **error_r)
{
    struct archive_entry *e = archive_entry_new();
    char buf[IO_CHUNK];
    int ret = -1;

    archive_entry_set_pathname_utf8(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, from != NULL ? (la_int64_t)from->size : (la_int64_t)len);
    archive_entry_set_mtime(e, x->now, 0);
    if (archive_write_header(x->a, e) != ARCHIVE_OK)
        goto fail;
    if (from != NULL) {
        ssize_t n;

        if (lseek(from->fd, 0, SEEK_SET) < 0) {
            cus_error_errno(error_r, "%s: lseek failed", name);
            goto out;
        }
        while ((n = read(from->fd, buf, sizeof(buf))) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                cus_error_errno(error_r, "%s: read of its temporary file failed", name);
                goto out;
            }
            if (archive_write_data(x->a, buf, (size_t)n) != n)
                goto fail;
        }
    } else {
        const char *p = data;
        while (len > 0) {
            la_ssize_t n = archive_write_data(x->a, p, MIN(len, (size_t)(1 << 20)));
            if (n <= 0)
                goto fail;
            p += n;
            len -= (size_t)n;
        }
    }
    ret = sha != NULL ? sums_line(x, sha, name, error_r) : 0;
    goto out;
fail:
    cus_error(error_r, "%s: writing %s: %s", x->o->path, name, ar_err(x->a));
out:
    archive_entry_free(e);
    return ret;
}

/* The message's "add" event, checked against index.db and its bytes, into
 * chain.txt. */
static int xp_event(struct xp *x, const struct item *it, char **error_r)
{
    unsigned char prev[CUS_SHA256_LEN], hash[CUS_SHA256_LEN], h[CUS_SHA256_LEN];
    char phex[CUS_SHA256_HEX], hhex[CUS_SHA256_HEX], shex[CUS_SHA256_HEX], *l;
    struct chain_event *ev = NULL;
    GBytes *data = NULL;
    const char *b, *v;
    gsize len;
    int ret = -1;

    if (chain_hash(x, it->seq - 1, prev, error_r) <= 0 ||
        chain_hash(x, it->seq, hash, error_r) <= 0) {
        if (error_r != NULL && *error_r == NULL)
            cus_error(error_r, "index.db: chain entry %" G_GINT64_FORMAT " or the one before "
                      "is missing; run custos-archive verify", it->seq);
        return -1;
    }
    if (store_read(arc_store(x->arc), &it->ev, NULL, &data, error_r) < 0)
        return -1;
    b = g_bytes_get_data(data, &len);
    chain_step(prev, b, len, h);
    cus_hex(it->sha, CUS_SHA256_LEN, shex);
    if (memcmp(h, hash, CUS_SHA256_LEN) != 0 || chain_event_parse(b, len, &ev, NULL) < 0 ||
        ev->seq != it->seq || strcmp(ev->type, "add") != 0 ||
        (v = chain_event_get(ev, "message")) == NULL || strcmp(v, shex) != 0 ||
        (v = chain_event_get(ev, "id")) == NULL || g_ascii_strtoll(v, NULL, 10) != it->id) {
        cus_error(error_r, "the archive's chain entry %" G_GINT64_FORMAT " (message %"
                  G_GINT64_FORMAT ") does not check out against index.db: run "
                  "custos-archive verify; nothing exported", it->seq, it->id);
        goto out;
    }
    cus_hex(prev, CUS_SHA256_LEN, phex);
    cus_hex(hash, CUS_SHA256_LEN, hhex);
    l = g_strdup_printf("event %" G_GINT64_FORMAT " %s %s %zu\n", it->seq, phex, hhex,
                        (size_t)len);
    ret = tmpf_write(&x->side[S_CHAIN].t, l, strlen(l), error_r);
    g_free(l);
    if (ret == 0)
        ret = tmpf_write(&x->side[S_CHAIN].t, b, len, error_r);
out:
    chain_event_free(&ev);
    g_bytes_unref(data);
    return ret;
}

static int xp_message(struct xp *x, const struct item *it, char **error_r)
{
    GBytes *raw = NULL;
    const char *b;
    gsize len;
    int ret;

    if (arc_get_raw(x->arc, it->id, &raw, error_r) < 0)
        return -1;
    b = g_bytes_get_data(raw, &len);
    if (x->o->format == EXP_MBOX) {
        ret = exp_mbox_write(it->id, it->date > 0 ? it->date : x->now, b, len, tmpf_put,
                             &x->main);
        if (ret < 0)
            cus_error_errno(error_r, "write(%s) failed", x->o->path);
    } else {
        ret = ar_add(x, it->name, b, len, NULL, it->sha, error_r);
    }
    g_bytes_unref(raw);
    if (ret == 0 && it->seq > 0)
        ret = xp_event(x, it, error_r);
    return ret;
}

/* The path of evidence file i beside an mbox. */
static char *side_path(const struct xp *x, int i)
{
    return g_strdup_printf("%s.%s", x->o->path, x->side[i].name);
}

static int xp_small(struct xp *x, int i, const void *data, size_t len, char **error_r)
{
    struct tmpf *t = &x->side[i].t;

    x->side[i].used = 1;
    if (tmpf_open(x->dir, x->base, t, error_r) < 0 || tmpf_write(t, data, len, error_r) < 0)
        return -1;
    tmpf_done(t);
    return 0;
}

static GString *readme(const struct xp *x)
{
    GString *r = g_string_new(NULL);
    char *n[S_N], *msgs;
    int mbox = x->o->format == EXP_MBOX;

    for (int i = 0; i < S_N; i++)
        n[i] = mbox ? g_strdup_printf("%s.%s", x->base, x->side[i].name)
                    : g_strdup(x->side[i].name);
    msgs = mbox ? g_strdup_printf("  %-22s the messages, mboxrd: each after a \"From "
                                  "custos-export-ID\" line,\n%25s lines \">*From \" "
                                  "quoted with one more '>', then a blank line\n"
                                  "%25s (\"-noeol\": the message did not end in a newline)\n",
                                  x->base, "", "")
                : g_strdup_printf("  %-22s each message's exact raw bytes\n",
                                  EXP_MSGDIR "*.eml");
    g_string_append_printf(r, readme_text, exp_format_name(x->o->format), msgs, n[S_MANIFEST],
                           n[S_CHAIN], n[S_CHECKPOINT], n[S_STATEMENT], n[S_PUBKEY], n[S_SUMS],
                           n[S_SUMS], mbox ? x->base : "THIS-FILE");
    for (int i = 0; i < S_N; i++)
        g_free(n[i]);
    g_free(msgs);
    return r;
}

static int exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 || errno != ENOENT;
}

int exp_export(struct arc *arc, const struct cfg *cfg, const struct exp_opts *o,
               struct exp_result *r, char **error_r)
{
    static const char *const names[S_N] = {
        EXP_MANIFEST, EXP_CHAIN, EXP_CHECKPOINT, EXP_PUBKEY, EXP_STATEMENT, EXP_README,
        EXP_SUMS,
    };
    struct xp x;
    struct chain_key *key = NULL;
    struct exp_statement s;
    struct cprow cp;
    struct chain_checkpoint cpi;
    GBytes *cpdata = NULL;
    GString *text = NULL;
    sqlite3 *db = idx_db(arc_index(arc));
    locale_t loc = (locale_t)0, old = (locale_t)0;
    const char *cpb;
    gsize cplen;
    char *err = NULL;
    int ret = -1;

    memset(r, 0, sizeof(*r));
    strcpy(r->key, "none");
    memset(&x, 0, sizeof(x));
    memset(&s, 0, sizeof(s));
    x.o = o;
    x.arc = arc;
    x.main.fd = -1;
    for (int i = 0; i < S_N; i++) {
        x.side[i].name = names[i];
        x.side[i].t.fd = -1;
    }
    x.now = o->now > 0 ? o->now : (gint64)time(NULL);
    x.items = g_array_new(FALSE, FALSE, sizeof(struct item));
    x.dir = g_path_get_dirname(o->path);
    x.base = g_path_get_basename(o->path);
    if (*o->path == '\0' || g_str_has_suffix(o->path, "/") || strcmp(x.base, ".") == 0 ||
        strcmp(x.base, "..") == 0) {
        cus_error(error_r, "-o %s: not a file name", o->path);
        goto out;
    }
    /* Nothing is replaced unless asked to. */
    if (!o->force) {
        int taken = exists(o->path);
        for (int i = 0; i < S_N && !taken && o->format == EXP_MBOX; i++) {
            char *p = side_path(&x, i);
            if ((taken = exists(p)))
                cus_error(error_r, "%s exists already (--force replaces it)", p);
            g_free(p);
        }
        if (taken) {
            if (error_r != NULL && *error_r == NULL)
                cus_error(error_r, "%s exists already (--force replaces it)", o->path);
            r->fail = EXP_FAIL_EXISTS;
            goto out;
        }
    }
    if (access(x.dir, W_OK | X_OK) < 0) {
        cus_error_errno(error_r, "-o %s: cannot create files in %s", o->path, x.dir);
        r->fail = EXP_FAIL_CREATE;
        goto out;
    }
    if (o->format != EXP_MBOX) {
        loc = cus_utf8_locale();
        if (loc == (locale_t)0) {
            cus_error(error_r, "no UTF-8 locale (C.UTF-8) to write file names with");
            goto out;
        }
        old = uselocale(loc);
    }
    if (cfg->chain_sign_key != NULL && access(cfg->chain_sign_key, R_OK) < 0 && errno == EACCES) {
        cus_error(error_r, "the statement of an export is signed with [chain] sign_key %s, "
                  "which this user cannot read: run the export as the archive's owner "
                  "(e.g. with sudo -u; the audit log names who asked)", cfg->chain_sign_key);
        goto out;
    }
    if (cfg->chain_sign_key != NULL &&
        chain_key_load_private(cfg->chain_sign_key, &key, error_r) < 0)
        goto out;
    if (sqlite3_prepare_v2(db, "SELECT seq, segment, offset, length FROM chain WHERE msg = ?1 "
                           "AND type = 'add' ORDER BY seq LIMIT 1", -1, &x.q_add,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT hash FROM chain WHERE seq = ?1", -1, &x.q_hash,
                           NULL) != SQLITE_OK) {
        cus_error(error_r, "index.db: %s", sqlite3_errmsg(db));
        goto out;
    }

    /* The hits: ids and names kept, manifest rows written. */
    if (tmpf_open(x.dir, x.base, &x.side[S_MANIFEST].t, error_r) < 0 ||
        tmpf_write(&x.side[S_MANIFEST].t, MANIFEST_HEADER "\r\n",
                   strlen(MANIFEST_HEADER) + 2, error_r) < 0)
        goto out;
    if (idx_search(arc_index(arc), o->query, -1, 0, NULL, xp_hit, &x, &err) < 0) {
        if (strncmp(err, "query:", 6) == 0)
            r->fail = EXP_FAIL_QUERY;
        cus_error(error_r, "%s", err);
        goto out;
    }
    if (x.err != NULL) {
        cus_error(error_r, "%s", x.err);
        goto out;
    }
    if (x.items->len == 0) {
        ret = 0;                /* nothing matched: nothing written */
        goto out;
    }
    if (x.no_chain > 0)
        log_warn("export: %" G_GINT64_FORMAT " of the messages were archived before the "
                 "hash chain: no chain evidence for them (empty chain_seq)", x.no_chain);

    /* The checkpoint that covers them. */
    if (cp_get(&x, cfg, key != NULL ? chain_key_id(key) : NULL, &cp, &r->checkpoint_made, &r->fail,
               error_r) < 0)
        goto out;
    if (store_read(arc_store(arc), &cp.loc, NULL, &cpdata, error_r) < 0)
        goto out;
    cpb = g_bytes_get_data(cpdata, &cplen);
    if (chain_checkpoint_parse(cpb, cplen, &cpi, &err) < 0 || cpi.seq != cp.seq) {
        cus_error(error_r, "the archive's checkpoint at seq %" G_GINT64_FORMAT " does not "
                  "parse: %s; run custos-archive verify", cp.seq, err != NULL ? err : "seq");
        goto out;
    }
    {
        unsigned char h[CUS_SHA256_LEN];
        if (chain_hash(&x, cpi.seq, h, error_r) <= 0 || memcmp(h, cpi.hash, CUS_SHA256_LEN)) {
            if (error_r != NULL && *error_r == NULL)
                cus_error(error_r, "the archive's checkpoint at seq %" G_GINT64_FORMAT
                          " does not match its chain entry; run custos-archive verify",
                          cpi.seq);
            goto out;
        }
    }

    /* The messages, one at a time. */
    if (tmpf_open(x.dir, x.base, &x.side[S_CHAIN].t, error_r) < 0 ||
        tmpf_write(&x.side[S_CHAIN].t, CHAIN_MAGIC, strlen(CHAIN_MAGIC), error_r) < 0 ||
        tmpf_open(x.dir, x.base, &x.side[S_SUMS].t, error_r) < 0 ||
        tmpf_open(x.dir, x.base, &x.main, error_r) < 0)
        goto out;
    x.side[S_MANIFEST].used = x.side[S_CHAIN].used = x.side[S_SUMS].used = 1;
    if (o->format != EXP_MBOX) {
        x.a = archive_write_new();
        if (o->format == EXP_ZIP) {
            archive_write_set_format_zip(x.a);
            archive_write_set_format_option(x.a, "zip", "hdrcharset", "UTF-8");
            archive_write_set_bytes_in_last_block(x.a, 1);
        } else {
            archive_write_set_format_pax_restricted(x.a);
        }
        if (archive_write_open_fd(x.a, x.main.fd) != ARCHIVE_OK) {
            cus_error(error_r, "%s: %s", o->path, ar_err(x.a));
            goto out;
        }
    }
    for (guint i = 0; i < x.items->len; i++)
        if (xp_message(&x, &g_array_index(x.items, struct item, i), error_r) < 0)
            goto out;
    tmpf_done(&x.side[S_MANIFEST].t);
    tmpf_done(&x.side[S_CHAIN].t);

    /* The evidence. */
    if (xp_small(&x, S_CHECKPOINT, cpb, cplen, error_r) < 0)
        goto out;
    if (key != NULL) {
        GString *pem = chain_key_public_pem(key);
        int rc = pem->len > 0 ? xp_small(&x, S_PUBKEY, pem->str, pem->len, error_r)
                              : cus_error(error_r, "cannot write the public key of %s", chain_key_id(key));
        g_string_free(pem, TRUE);
        if (rc < 0)
            goto out;
    }
    s.format = o->format;
    s.time = x.now;
    s.user = (char *)(o->user != NULL ? o->user : "");
    s.query = (char *)o->query;
    s.messages = x.items->len;
    memcpy(s.manifest_sha, x.side[S_MANIFEST].t.sha, CUS_SHA256_LEN);
    memcpy(s.chain_sha, x.side[S_CHAIN].t.sha, CUS_SHA256_LEN);
    memcpy(s.checkpoint_sha, x.side[S_CHECKPOINT].t.sha, CUS_SHA256_LEN);
    s.checkpoint_seq = cpi.seq;
    memcpy(s.checkpoint_hash, cpi.hash, CUS_SHA256_LEN);
    if ((text = statement_format(&s, key, error_r)) == NULL ||
        xp_small(&x, S_STATEMENT, text->str, text->len, error_r) < 0)
        goto out;
    g_string_free(text, TRUE);
    text = readme(&x);
    if (xp_small(&x, S_README, text->str, text->len, error_r) < 0)
        goto out;

    if (o->format != EXP_MBOX) {
        for (int i = 0; i < S_SUMS; i++)
            if (x.side[i].used && ar_add(&x, x.side[i].name, NULL, 0, &x.side[i].t,
                                         x.side[i].t.sha, error_r) < 0)
                goto out;
        tmpf_done(&x.side[S_SUMS].t);
        if (ar_add(&x, EXP_SUMS, NULL, 0, &x.side[S_SUMS].t, NULL, error_r) < 0)
            goto out;
        if (archive_write_close(x.a) != ARCHIVE_OK) {
            cus_error(error_r, "%s: %s", o->path, ar_err(x.a));
            goto out;
        }
        if (tmpf_link(&x.main, o->path, o->force, error_r) < 0) {
            if (errno == EEXIST)
                r->fail = EXP_FAIL_EXISTS;
            goto out;
        }
    } else {
        tmpf_done(&x.main);
        if (sums_line(&x, x.main.sha, x.base, error_r) < 0)
            goto out;
        for (int i = 0; i < S_SUMS; i++) {
            char *n = g_strdup_printf("%s.%s", x.base, x.side[i].name);
            int rc = x.side[i].used ? sums_line(&x, x.side[i].t.sha, n, error_r) : 0;
            g_free(n);
            if (rc < 0)
                goto out;
        }
        tmpf_done(&x.side[S_SUMS].t);
        /* The evidence first, FILE last: no FILE without its evidence. */
        for (int i = 0; i < S_N; i++) {
            char *p = side_path(&x, i);
            int rc = 0;

            if (x.side[i].used)
                rc = tmpf_link(&x.side[i].t, p, o->force, error_r);
            else if (o->force)
                unlink(p);      /* a stale file of an export replaced */
            g_free(p);
            if (rc < 0) {
                if (errno == EEXIST)
                    r->fail = EXP_FAIL_EXISTS;
                goto undo;
            }
        }
        if (tmpf_link(&x.main, o->path, o->force, error_r) < 0) {
            if (errno == EEXIST)
                r->fail = EXP_FAIL_EXISTS;
            goto undo;
        }
    }
    if (cus_fsync_dir(x.dir, error_r) < 0)
        goto out;
    r->messages = x.items->len;
    cus_hex(x.side[S_MANIFEST].t.sha, CUS_SHA256_LEN, r->manifest_sha256);
    r->checkpoint_seq = cpi.seq;
    g_strlcpy(r->key, key != NULL ? chain_key_id(key) : "none", sizeof(r->key));
    ret = 0;
    goto out;
undo:
    for (int i = 0; i < S_N; i++)
        if (x.side[i].t.linked != NULL)
            unlink(x.side[i].t.linked);
out:
    if (old != (locale_t)0)
        uselocale(old);
    if (text != NULL)
        g_string_free(text, TRUE);
    if (cpdata != NULL)
        g_bytes_unref(cpdata);
    chain_key_free(&key);
    g_free(err);
    xp_clear(&x);
    return ret;
}

/* ---- verifying ----------------------------------------------------------------- */

/* One file of the export (a zip/tar member, an mbox message, the mbox or
 * a file beside it). */
struct vfile {
    char *name;                 /* as the export names it (key in vx.files) */
    char *shown;                /* for problems: name escaped, or an mbox
                                 * message's "FILE (message ID at byte N)" */
    unsigned char sha[CUS_SHA256_LEN];
    guint64 size;
    GBytes *data;               /* evidence files: the bytes (bounded) */
    int ok;                     /* read to the end and hashed */
    int reported;               /* a problem named it: no second one */
    int vouched;                /* other evidence matched its hash */
    int claimed;                /* a manifest row is about it */
    int in_sums;
    int message;                /* a message (.eml, or in the mbox) */
    gint64 id;                  /* mbox message: the id of its From line */
};

struct vx {
    exp_problem_cb *cb;
    void *ctx;
    struct exp_verify_stats *st;
    enum exp_format fmt;
    char *base;                 /* FILE's base name */
    GHashTable *files;          /* name -> struct vfile * */
    GPtrArray *all;             /* struct vfile *, in the order read (owns) */
    GHashTable *msgs;           /* mbox: id -> struct vfile * */
    GHashTable *missing;        /* names reported missing */
    struct vfile *cur;          /* mbox: the message being read */
    EVP_MD_CTX *md;
    struct chain_key *key;
    int damaged;                /* the container could not be read to its end */
    GPtrArray *sums;            /* SHA256SUMS parsed (struct exp_sum *), or NULL */
    GHashTable *sums_by_name;   /* name -> struct exp_sum * (the first) */
    GPtrArray *evs;             /* chain.txt parsed (struct exp_event *), or NULL */
    GHashTable *ev_by_seq;      /* seq -> struct exp_event * (the first) */
    GHashTable *bad_rows;       /* struct exp_row * whose sha256 was found edited */
};

/* The bytes of b, never NULL (an empty GBytes may have no data). */
static const void *bytes_of(GBytes *b, gsize *len)
{
    const void *d = g_bytes_get_data(b, len);

    return d != NULL ? d : "";
}

static void vfile_free(gpointer p)
{
    struct vfile *f = p;

    g_free(f->name);
    g_free(f->shown);
    if (f->data != NULL)
        g_bytes_unref(f->data);
    g_free(f);
}

static void vreport(struct vx *v, int warning, const char *object, gint64 row, gint64 seq,
                    const char *fmt, ...) G_GNUC_PRINTF(6, 7);
static void vreport(struct vx *v, int warning, const char *object, gint64 row, gint64 seq,
                    const char *fmt, ...)
{
    struct exp_problem p;
    va_list ap;
    char *what;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p.object = object;
    p.row = row;
    p.seq = seq;
    p.what = what;
    p.warning = warning;
    if (warning)
        v->st->warnings++;
    else
        v->st->problems++;
    if (v->cb != NULL)
        v->cb(v->ctx, &p);
    g_free(what);
}

#define PROBLEM(v, obj, row, seq, ...) vreport((v), 0, (obj), (row), (seq), __VA_ARGS__)
#define WARNING(v, obj, row, seq, ...) vreport((v), 1, (obj), (row), (seq), __VA_ARGS__)

/* The name of evidence file ev in this export. */
static char *ev_name(const struct vx *v, const char *ev)
{
    return v->fmt == EXP_MBOX ? g_strdup_printf("%s.%s", v->base, ev) : g_strdup(ev);
}

static struct vfile *vget(struct vx *v, const char *ev)
{
    char *n = ev_name(v, ev);
    struct vfile *f = g_hash_table_lookup(v->files, n);

    g_free(n);
    return f;
}

static struct vfile *vfile_add(struct vx *v, const char *name, char *shown)
{
    struct vfile *f = g_new0(struct vfile, 1);

    f->name = g_strdup(name);
    f->shown = shown != NULL ? shown : show(name);
    g_ptr_array_add(v->all, f);
    if (!g_hash_table_contains(v->files, f->name))
        g_hash_table_insert(v->files, f->name, f);
    return f;
}

static void vmissing(struct vx *v, const char *name, gint64 row, const char *why)
{
    char *s = show(name);

    if (!g_hash_table_contains(v->missing, name)) {
        g_hash_table_add(v->missing, g_strdup(name));
        PROBLEM(v, s, row, 0, "missing (%s)", why);
    }
    g_free(s);
}

/* What a zip/tar member name is: the index of its evidence file, S_N for
 * a message, -1 for anything else. */
static int member_kind(const char *name)
{
    static const char *const ev[S_N] = {
        EXP_MANIFEST, EXP_CHAIN, EXP_CHECKPOINT, EXP_PUBKEY, EXP_STATEMENT, EXP_README,
        EXP_SUMS,
    };
    const char *rest;

    for (int i = 0; i < S_N; i++)
        if (strcmp(name, ev[i]) == 0)
            return i;
    if (!g_str_has_prefix(name, EXP_MSGDIR))
        return -1;
    rest = name + strlen(EXP_MSGDIR);
    return g_str_has_suffix(rest, ".eml") && strchr(rest, '/') == NULL &&
           safename_ok(rest, EXP_NAME_MAX) ? S_N : -1;
}

int exp_evidence_name(const char *name)
{
    int k = member_kind(name);

    return k >= 0 && k < S_N;
}

static guint64 ev_limit(int kind)
{
    return kind == S_MANIFEST || kind == S_CHAIN || kind == S_SUMS ? EXP_EVIDENCE_MAX
                                                                  : EXP_SMALL_MAX;
}

/* Every member of a zip/tar, hashed as it streams by. */
static int vread_archive(struct vx *v, struct archive *a, char **error_r)
{
    struct archive_entry *e;
    char *buf = g_malloc(IO_CHUNK);
    gint64 n = 0;
    int rc;

    while ((rc = archive_read_next_header(a, &e)) != ARCHIVE_EOF && rc != ARCHIVE_FATAL) {
        const char *name = archive_entry_pathname_utf8(e);
        struct vfile *f;
        GByteArray *keep = NULL;
        la_ssize_t r;
        int kind;
        char *what = NULL;

        n++;
        if (n > EXP_MESSAGES_MAX + 16) {
            PROBLEM(v, v->base, 0, 0, "more than %d members: not checked further",
                    EXP_MESSAGES_MAX + 16);
            v->damaged = 1;
            break;
        }
        if (name == NULL) {
            char *s = g_strdup_printf("member %" G_GINT64_FORMAT, n);
            PROBLEM(v, s, 0, 0, "its name is not UTF-8: not part of a custos export");
            g_free(s);
            continue;
        }
        if (rc == ARCHIVE_FAILED) {
            char *s = show(name);
            PROBLEM(v, s, 0, 0, "cannot be read: %s", ar_err(a));
            g_free(s);
            continue;
        }
        if (archive_entry_filetype(e) == AE_IFDIR) {
            if (strcmp(name, EXP_MSGDIR) != 0 && strcmp(name, "messages") != 0) {
                char *s = show(name);
                PROBLEM(v, s, 0, 0, "a directory that is not part of a custos export");
                g_free(s);
            }
            continue;
        }
        kind = member_kind(name);
        if (g_hash_table_contains(v->files, name)) {
            f = vfile_add(v, name, NULL);
            PROBLEM(v, f->shown, 0, 0, "appears twice in the export");
            f->reported = 1;
            continue;
        }
        f = vfile_add(v, name, NULL);
        f->message = kind == S_N;
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != NULL ||
            archive_entry_symlink(e) != NULL) {
            PROBLEM(v, f->shown, 0, 0, "not a regular file");
            f->reported = 1;
            continue;
        }
        if (archive_entry_is_encrypted(e)) {
            PROBLEM(v, f->shown, 0, 0, "encrypted: custos does not encrypt exports");
            f->reported = 1;
            continue;
        }
        if (kind >= 0 && kind < S_N)
            keep = g_byte_array_new();
        v->md = sha_new();
        while ((r = archive_read_data(a, buf, IO_CHUNK)) > 0) {
            EVP_DigestUpdate(v->md, buf, (size_t)r);
            f->size += (guint64)r;
            if (keep != NULL && f->size > ev_limit(kind)) {
                g_byte_array_free(keep, TRUE);
                keep = NULL;
                what = g_strdup_printf("larger than %" G_GUINT64_FORMAT " bytes: not read",
                                       ev_limit(kind));
            } else if (keep != NULL) {
                g_byte_array_append(keep, (guint8 *)buf, (guint)r);
            }
            if (f->message && f->size > STORE_MAX_OBJECT) {
                what = g_strdup("larger than any message custos archives (1 GiB)");
                break;
            }
        }
        sha_done(&v->md, f->sha);
        v->st->files++;
        v->st->bytes += (gint64)f->size;
        if (r < 0) {
            char *s = g_strdup(ar_err(a));
            if (r == ARCHIVE_FATAL) {
                PROBLEM(v, v->base, 0, 0, "damaged at %s: %s", f->shown, s);
                v->damaged = 1;
            } else {
                PROBLEM(v, f->shown, 0, 0, "damaged, cannot be read: %s", s);
            }
            f->reported = 1;
            g_free(s);
        } else if (what != NULL) {
            PROBLEM(v, f->shown, 0, 0, "%s", what);
            f->reported = 1;
        } else {
            f->ok = 1;
            if (keep != NULL) {
                f->data = g_byte_array_free_to_bytes(keep);
                keep = NULL;
            }
        }
        if (keep != NULL)
            g_byte_array_free(keep, TRUE);
        g_free(what);
        if (kind < 0 && !f->reported) {
            PROBLEM(v, f->shown, 0, 0, "not part of a custos export (an extra file)");
            f->reported = 1;
        }
        if (v->damaged)
            break;
    }
    g_free(buf);
    if (rc == ARCHIVE_FATAL && !v->damaged) {
        if (n == 0) {
            v->st->unreadable = 65;
            return cus_error(error_r, "%s: not a readable %s: %s", v->base,
                             exp_format_name(v->fmt), ar_err(a));
        }
        PROBLEM(v, v->base, 0, 0, "damaged after member %" G_GINT64_FORMAT ": %s", n,
                ar_err(a));
        v->damaged = 1;
    }
    return 0;
}

/* ---- the mbox, as exp_mbox reads it ---- */

static void vm_begin(void *ctx, gint64 id, int noeol, gint64 offset)
{
    struct vx *v = ctx;
    char *shown = id > 0 ? g_strdup_printf("%s (message %" G_GINT64_FORMAT " at byte %"
                                           G_GINT64_FORMAT ")", v->base, id, offset)
                         : g_strdup_printf("%s (message at byte %" G_GINT64_FORMAT ")",
                                           v->base, offset);
    struct vfile *f = g_new0(struct vfile, 1);

    f->name = g_strdup_printf("#%" G_GINT64_FORMAT, offset);
    f->shown = shown;
    f->id = id;
    f->message = 1;
    g_ptr_array_add(v->all, f);
    v->cur = f;
    v->md = sha_new();
    if (id <= 0) {
        PROBLEM(v, f->shown, 0, 0, "its \"From \" line is not one custos writes: a message "
                "added, or a \"From \" line in a message not quoted");
        f->reported = 1;
    } else if (g_hash_table_contains(v->msgs, &f->id)) {
        PROBLEM(v, f->shown, 0, 0, "a second message with id %" G_GINT64_FORMAT, id);
        f->reported = 1;
    } else if (g_hash_table_size(v->msgs) < EXP_MESSAGES_MAX) {
        g_hash_table_insert(v->msgs, &f->id, f);
    }
}

static void vm_data(void *ctx, const void *buf, size_t len)
{
    struct vx *v = ctx;

    EVP_DigestUpdate(v->md, buf, len);
    v->cur->size += len;
}

static void vm_end(void *ctx, const char *problem)
{
    struct vx *v = ctx;
    struct vfile *f = v->cur;

    sha_done(&v->md, f->sha);
    f->ok = 1;
    v->st->files++;
    if (problem != NULL && !f->reported) {
        PROBLEM(v, f->shown, 0, 0, "%s", problem);
        f->reported = 1;
    }
    v->cur = NULL;
}

/* The mbox from fd (or buf), hashed whole and message by message. */
static int vread_mbox(struct vx *v, int fd, const void *mem, size_t mlen, char **error_r)
{
    static const struct exp_mbox_cbs cbs = { vm_begin, vm_data, vm_end };
    struct exp_mbox *m = exp_mbox_new(&cbs, v);
    struct vfile *whole = vfile_add(v, v->base, NULL);
    EVP_MD_CTX *md = sha_new();
    char *buf = g_malloc(IO_CHUNK);
    ssize_t n;
    int ret = -1;

    for (size_t off = 0;;) {
        const char *p = buf;

        if (fd >= 0) {
            n = read(fd, buf, IO_CHUNK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                v->st->unreadable = 74;
                cus_error_errno(error_r, "read(%s) failed", v->base);
                goto out;
            }
        } else {
            n = (ssize_t)MIN((size_t)IO_CHUNK, mlen - off);
            p = (const char *)mem + off;
            off += (size_t)n;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, p, (size_t)n);
        whole->size += (guint64)n;
        if (exp_mbox_feed(m, p, (size_t)n, error_r) < 0) {
            v->st->unreadable = 65;
            goto out;
        }
    }
    if (exp_mbox_finish(m, error_r) < 0) {
        v->st->unreadable = 65;
        goto out;
    }
    v->st->bytes = (gint64)whole->size;
    whole->ok = 1;
    ret = 0;
out:
    sha_done(&md, whole->sha);
    if (v->md != NULL)
        EVP_MD_CTX_free(v->md);
    v->md = NULL;
    g_free(buf);
    exp_mbox_free(&m);
    return ret;
}

/* The files beside an mbox. */
static void vread_beside(struct vx *v, const char *path)
{
    static const char *const ev[S_N] = {
        EXP_MANIFEST, EXP_CHAIN, EXP_CHECKPOINT, EXP_PUBKEY, EXP_STATEMENT, EXP_README,
        EXP_SUMS,
    };

    for (int i = 0; path != NULL && i < S_N; i++) {
        char *p = g_strdup_printf("%s.%s", path, ev[i]), *n = ev_name(v, ev[i]), *err = NULL;
        GBytes *data = NULL;
        struct vfile *f;

        if (access(p, F_OK) < 0 && errno == ENOENT) {
            g_free(p);
            g_free(n);
            continue;
        }
        f = vfile_add(v, n, NULL);
        if (cus_read_file(p, ev_limit(i), &data, &err) < 0) {
            PROBLEM(v, f->shown, 0, 0, "cannot be read: %s", err);
            f->reported = 1;
            g_free(err);
        } else {
            gsize len;
            const void *b = bytes_of(data, &len);
            cus_sha256(b, len, f->sha);
            f->size = len;
            f->data = data;
            f->ok = 1;
            v->st->files++;
        }
        g_free(p);
        g_free(n);
    }
}

/* ---- the checks ---- */

static void hexs(const unsigned char *sha, char out[CUS_SHA256_HEX])
{
    cus_hex(sha, CUS_SHA256_LEN, out);
}

/* The key signatures are checked with: --key, verify_key, else the
 * export's own. */
static void vkey(struct vx *v, const struct exp_statement *s, int have_s)
{
    struct vfile *kf = vget(v, EXP_PUBKEY);
    struct chain_key *own = NULL;
    char *err = NULL;

    if (kf != NULL && kf->data != NULL) {
        gsize len;
        const void *b = bytes_of(kf->data, &len);

        if (chain_key_parse(b, len, kf->shown, &own, &err) < 0) {
            PROBLEM(v, kf->shown, 0, 0, "%s", err);
            kf->reported = 1;
            g_free(err);
        } else if (chain_key_is_private(own)) {
            PROBLEM(v, kf->shown, 0, 0, "holds a private key: it must never leave the "
                    "archive (make a new signing key)");
            kf->reported = 1;
        } else if (have_s && strcmp(chain_key_id(own), s->key) != 0) {
            PROBLEM(v, kf->shown, 0, 0, "holds key %s, but the statement names %s", chain_key_id(own),
                    s->key);
            kf->reported = 1;
        } else {
            kf->vouched = have_s;
        }
    }
    if (v->key == NULL && own != NULL && !kf->reported) {
        v->key = own;
        own = NULL;
        v->st->key_source = "export";
    }
    if (v->key != NULL)
        g_strlcpy(v->st->key, chain_key_id(v->key), sizeof(v->st->key));
    chain_key_free(&own);
}

/* Check a signature over buf[0..signed_len) made by key id: 1 good. */
static int vsig(struct vx *v, struct vfile *f, const char *what, const char *id,
                const unsigned char sig[SIG_LEN], size_t signed_len)
{
    gsize len;
    const void *b = bytes_of(f->data, &len);

    if (v->key == NULL) {
        WARNING(v, f->shown, 0, 0, "%s signed by %s, but not checked: no key (give --key "
                "with the published public key)", what, id);
        return 0;
    }
    if (strcmp(chain_key_id(v->key), id) != 0) {
        PROBLEM(v, f->shown, 0, 0, "%s signed by %s, not by the key checked with (%s, from "
                "%s)", what, id, chain_key_id(v->key), v->st->key_source);
        return 0;
    }
    if (!chain_key_verify(v->key, b, signed_len, sig)) {
        PROBLEM(v, f->shown, 0, 0, "%s: bad signature (key %s): altered after it was signed",
                what, id);
        return 0;
    }
    v->st->signatures_checked = 1;
    return 1;
}

/* An evidence file against the hash the statement gives it. */
static void vvouch(struct vx *v, const char *ev, const unsigned char want[CUS_SHA256_LEN])
{
    struct vfile *f = vget(v, ev);
    char a[CUS_SHA256_HEX], b[CUS_SHA256_HEX], *n;

    if (f == NULL) {
        n = ev_name(v, ev);
        vmissing(v, n, 0, "the statement gives its SHA-256");
        g_free(n);
        return;
    }
    if (!f->ok || f->reported)
        return;
    if (memcmp(f->sha, want, CUS_SHA256_LEN) != 0) {
        hexs(f->sha, a);
        hexs(want, b);
        PROBLEM(v, f->shown, 0, 0, "altered: its SHA-256 is %s, the statement says %s", a, b);
        f->reported = 1;
    } else {
        f->vouched = 1;
    }
}

/* The message a manifest row is about. */
static struct vfile *vrow_file(struct vx *v, const struct exp_row *r)
{
    if (v->fmt == EXP_MBOX)
        return g_hash_table_lookup(v->msgs, &r->id);
    return g_hash_table_lookup(v->files, r->file);
}

/* Whether a row's file name is one custos makes for its id. */
static int vrow_name_ok(const struct exp_row *r)
{
    char *pfx = g_strdup_printf(EXP_MSGDIR "%06" G_GINT64_FORMAT "-", r->id);
    int ok = g_str_has_prefix(r->file, pfx) && member_kind(r->file) == S_N;

    g_free(pfx);
    return ok;
}

/* The "message" of chain event seq as chain.txt has it, if the event
 * checks out (its HASH recomputes, it parses); else NULL. */
static const char *vev_message(struct vx *v, gint64 seq, char buf[CUS_SHA256_HEX])
{
    struct exp_event *e = v->ev_by_seq != NULL ? g_hash_table_lookup(v->ev_by_seq, &seq) : NULL;
    struct chain_event *ev = NULL;
    unsigned char h[CUS_SHA256_LEN];
    const char *m;

    if (e == NULL)
        return NULL;
    chain_step(e->prev, e->bytes, e->len, h);
    if (memcmp(h, e->hash, CUS_SHA256_LEN) != 0 ||
        chain_event_parse(e->bytes, e->len, &ev, NULL) < 0)
        return NULL;
    m = chain_event_get(ev, "message");
    if (m != NULL)
        g_strlcpy(buf, m, CUS_SHA256_HEX);
    chain_event_free(&ev);
    return m != NULL ? buf : NULL;
}

/* How many of the other witnesses of a message -- its SHA256SUMS line
 * (name, NULL for an mbox message) and its chain event (seq) -- give sha. */
static int vsays(struct vx *v, const char *name, gint64 seq, const unsigned char sha[CUS_SHA256_LEN])
{
    struct exp_sum *su = name != NULL && v->sums_by_name != NULL ?
                         g_hash_table_lookup(v->sums_by_name, name) : NULL;
    char buf[CUS_SHA256_HEX], hex[CUS_SHA256_HEX];
    const char *m = seq > 0 ? vev_message(v, seq, buf) : NULL;
    int n = 0;

    cus_hex(sha, CUS_SHA256_LEN, hex);
    if (su != NULL && memcmp(su->sha, sha, CUS_SHA256_LEN) == 0)
        n++;
    if (m != NULL && strcmp(m, hex) == 0)
        n++;
    return n;
}

static void vrows(struct vx *v, GPtrArray *rows, GHashTable *by_seq, gint64 *max_seq,
                  gint64 *max_row)
{
    GHashTable *ids = g_hash_table_new(g_int64_hash, g_int64_equal);
    GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);
    char a[CUS_SHA256_HEX], b[CUS_SHA256_HEX];

    for (guint i = 0; i < rows->len; i++) {
        struct exp_row *r = g_ptr_array_index(rows, i);
        gint64 row = (gint64)i + 1;
        struct vfile *f;
        char *fs = show(r->file);

        if (g_hash_table_contains(ids, &r->id)) {
            PROBLEM(v, EXP_MANIFEST, row, 0, "id %" G_GINT64_FORMAT " is in an earlier row "
                    "too", r->id);
        } else if (g_hash_table_contains(names, r->file)) {
            PROBLEM(v, EXP_MANIFEST, row, 0, "file %s is in an earlier row too", fs);
        } else if (r->seq > 0 && g_hash_table_contains(by_seq, &r->seq)) {
            PROBLEM(v, EXP_MANIFEST, row, r->seq, "chain_seq %" G_GINT64_FORMAT " is in an "
                    "earlier row too", r->seq);
        } else if (!vrow_name_ok(r)) {
            PROBLEM(v, EXP_MANIFEST, row, 0, "file name %s is not one custos makes for id %"
                    G_GINT64_FORMAT, fs, r->id);
        } else {
            g_hash_table_add(ids, &r->id);
            g_hash_table_add(names, r->file);
            if (r->seq > 0)
                g_hash_table_insert(by_seq, &r->seq, r);
            if (r->seq > *max_seq) {
                *max_seq = r->seq;
                *max_row = row;
            }
            if (r->seq == 0)
                WARNING(v, EXP_MANIFEST, row, 0, "message %" G_GINT64_FORMAT " was archived "
                        "before the hash chain: it has no chain evidence", r->id);
            f = vrow_file(v, r);
            if (f == NULL) {
                char *what = g_strdup_printf("manifest row %" G_GINT64_FORMAT, row);
                if (v->fmt == EXP_MBOX) {
                    char *n = g_strdup_printf("%s (message %" G_GINT64_FORMAT ")", v->base,
                                              r->id);
                    struct vfile *whole = g_hash_table_lookup(v->files, v->base);

                    vmissing(v, n, row, what);
                    if (whole != NULL)
                        whole->reported = 1;
                    g_free(n);
                } else {
                    vmissing(v, r->file, row, what);
                }
                g_free(what);
            } else {
                const char *sname = v->fmt == EXP_MBOX ? NULL : r->file;

                f->claimed = 1;
                hexs(f->sha, a);
                hexs(r->sha, b);
                if (f->ok && !f->reported && memcmp(f->sha, r->sha, CUS_SHA256_LEN) != 0 &&
                    vsays(v, sname, r->seq, f->sha) > 0 && vsays(v, sname, r->seq, r->sha) == 0) {
                    /* the others agree with the file: the row was edited */
                    PROBLEM(v, EXP_MANIFEST, row, r->seq, "sha256 was edited: it says %s, but "
                            "%s is %s, as %s say", b, fs, a, sname != NULL ?
                            "SHA256SUMS and its chain event" : "its chain event");
                    g_hash_table_add(v->bad_rows, r);
                    f->vouched = 1;
                } else if (f->ok && !f->reported && memcmp(f->sha, r->sha, CUS_SHA256_LEN) != 0) {
                    PROBLEM(v, f->shown, row, r->seq, "altered: its SHA-256 is %s, manifest "
                            "row %" G_GINT64_FORMAT " says %s", a, row, b);
                    f->reported = 1;
                } else if (f->ok && !f->reported) {
                    f->vouched = 1;
                }
            }
        }
        g_free(fs);
    }
    g_hash_table_destroy(ids);
    g_hash_table_destroy(names);
}

static void vchain(struct vx *v, struct vfile *cf, GPtrArray *rows, GHashTable *by_seq)
{
    GPtrArray *evs = v->evs;
    GHashTable *seen = g_hash_table_new(g_int64_hash, g_int64_equal);
    char *err = NULL;

    for (guint i = 0; i < evs->len; i++) {
        struct exp_event *e = g_ptr_array_index(evs, i);
        struct chain_event *ev = NULL;
        struct exp_row *r = g_hash_table_lookup(by_seq, &e->seq);
        unsigned char h[CUS_SHA256_LEN];
        char hex[CUS_SHA256_HEX];
        const char *val;

        if (g_hash_table_contains(seen, &e->seq)) {
            PROBLEM(v, cf->shown, 0, e->seq, "a second record for chain position %"
                    G_GINT64_FORMAT, e->seq);
            continue;
        }
        g_hash_table_add(seen, &e->seq);
        chain_step(e->prev, e->bytes, e->len, h);
        if (memcmp(h, e->hash, CUS_SHA256_LEN) != 0) {
            PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": SHA-256(PREV || "
                    "event) is not the HASH given: the event or a hash was altered", e->seq);
            continue;
        }
        /* where the chain's links are in the export too, they must hold */
        {
            gint64 before = e->seq - 1;
            struct exp_event *pe = before > 0 ? g_hash_table_lookup(v->ev_by_seq, &before) : NULL;

            if (before == 0)
                chain_genesis(h);
            if ((before == 0 || pe != NULL) &&
                memcmp(e->prev, before == 0 ? h : pe->hash, CUS_SHA256_LEN) != 0) {
                PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": its PREV is not "
                        "%s", e->seq, before == 0 ? "h_0 = SHA-256(\"custos chain 1\")" :
                        "the HASH of the event before it");
                continue;
            }
        }
        if (chain_event_parse(e->bytes, e->len, &ev, &err) < 0) {
            PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": %s", e->seq, err);
            g_free(err);
            err = NULL;
            continue;
        }
        if (ev->seq != e->seq || strcmp(ev->type, "add") != 0) {
            PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": is %s event %"
                    G_GINT64_FORMAT ", not the \"add\" event %" G_GINT64_FORMAT, e->seq,
                    ev->type, ev->seq, e->seq);
        } else if (rows != NULL && r == NULL) {
            PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": no manifest row "
                    "has this chain position", e->seq);
        } else if (r != NULL) {
            struct vfile *f = vrow_file(v, r);

            char idbuf[24];

            hexs(r->sha, hex);
            g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, r->id);
            val = chain_event_get(ev, "id");
            if (val == NULL || strcmp(val, idbuf) != 0) {
                PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": adds message "
                        "id %s, the manifest row with this chain position is id %"
                        G_GINT64_FORMAT, e->seq, val != NULL ? val : "(none)", r->id);
            } else if ((val = chain_event_get(ev, "message")) == NULL ||
                       strcmp(val, hex) != 0) {
                if ((f == NULL || !f->reported) && !g_hash_table_contains(v->bad_rows, r))
                    PROBLEM(v, cf->shown, 0, e->seq, "event %" G_GINT64_FORMAT ": adds "
                            "message %s, the manifest says %s", e->seq,
                            val != NULL ? val : "(none)", hex);
            }
        }
        chain_event_free(&ev);
    }
    for (guint i = 0; rows != NULL && i < rows->len; i++) {
        struct exp_row *r = g_ptr_array_index(rows, i);

        if (r->seq > 0 && g_hash_table_lookup(by_seq, &r->seq) == r &&
            !g_hash_table_contains(seen, &r->seq))
            PROBLEM(v, cf->shown, (gint64)i + 1, r->seq, "no event for chain position %"
                    G_GINT64_FORMAT " (manifest row %u)", r->seq, i + 1);
    }
    g_hash_table_destroy(seen);
}

static void vsums(struct vx *v, struct vfile *sf)
{
    GPtrArray *sums = v->sums;
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    char a[CUS_SHA256_HEX], h[CUS_SHA256_HEX];

    for (guint i = 0; i < sums->len; i++) {
        struct exp_sum *s = g_ptr_array_index(sums, i);
        struct vfile *f = g_hash_table_lookup(v->files, s->name);
        char *n = show(s->name);

        if (g_hash_table_contains(seen, s->name)) {
            PROBLEM(v, sf->shown, 0, 0, "line %" G_GINT64_FORMAT ": %s is listed twice",
                    s->line, n);
        } else if (f == sf) {
            PROBLEM(v, sf->shown, 0, 0, "line %" G_GINT64_FORMAT ": lists itself", s->line);
        } else if (f == NULL) {
            if (!g_hash_table_contains(v->missing, s->name)) {
                char *why = g_strdup_printf("%s line %" G_GINT64_FORMAT, sf->shown, s->line);
                vmissing(v, s->name, 0, why);
                g_free(why);
            }
        } else {
            f->in_sums = 1;
            if (f->ok && !f->reported && memcmp(f->sha, s->sha, CUS_SHA256_LEN) != 0) {
                hexs(f->sha, a);
                hexs(s->sha, h);
                if (f->vouched) {
                    PROBLEM(v, sf->shown, 0, 0, "line %" G_GINT64_FORMAT ": wrong SHA-256 for "
                            "%s (%s; the file is %s, as the other evidence says)", s->line, n,
                            h, a);
                } else {
                    PROBLEM(v, f->shown, 0, 0, "altered: its SHA-256 is %s, %s says %s", a,
                            sf->shown, h);
                    f->reported = 1;
                }
            }
        }
        g_hash_table_add(seen, s->name);
        g_free(n);
    }
    for (guint i = 0; i < v->all->len; i++) {
        struct vfile *f = g_ptr_array_index(v->all, i);

        if (f != sf && !f->in_sums && !f->reported && !(v->fmt == EXP_MBOX && f->message) &&
            g_hash_table_lookup(v->files, f->name) == f)
            PROBLEM(v, f->shown, 0, 0, "not listed in %s", sf->shown);
    }
    g_hash_table_destroy(seen);
}

/* An mbox export renamed (with the files beside it): SHA256SUMS names
 * them as they were made. Said once; the names are then read as now. */
static void vrenamed(struct vx *v, struct vfile *sf)
{
    const char *suffix = "." EXP_MANIFEST;
    char *orig = NULL, *o, *b;

    for (guint i = 0; i < v->sums->len && orig == NULL; i++) {
        struct exp_sum *su = g_ptr_array_index(v->sums, i);
        if (g_str_has_suffix(su->name, suffix) && strlen(su->name) > strlen(suffix))
            orig = g_strndup(su->name, strlen(su->name) - strlen(suffix));
    }
    if (orig == NULL || strcmp(orig, v->base) == 0 || strchr(orig, '/') != NULL) {
        g_free(orig);
        return;
    }
    o = show(orig);
    b = show(v->base);
    WARNING(v, sf->shown, 0, 0, "the export was made as %s and renamed to %s: sha256sum -c "
            "needs the files under their first names", o, b);
    for (guint i = 0; i < v->sums->len; i++) {
        struct exp_sum *su = g_ptr_array_index(v->sums, i);
        size_t n = strlen(orig);

        if (strncmp(su->name, orig, n) == 0 && (su->name[n] == '\0' || su->name[n] == '.')) {
            char *nn = g_strconcat(v->base, su->name + n, NULL);
            g_free(su->name);
            su->name = nn;
        }
    }
    g_free(o);
    g_free(b);
    g_free(orig);
}

static void vcheck(struct vx *v)
{
    struct vfile *stf = vget(v, EXP_STATEMENT), *mf = vget(v, EXP_MANIFEST);
    struct vfile *cf = vget(v, EXP_CHAIN), *cpf = vget(v, EXP_CHECKPOINT);
    struct vfile *sf = vget(v, EXP_SUMS);
    GHashTable *by_seq = g_hash_table_new(g_int64_hash, g_int64_equal);
    struct exp_statement s;
    struct chain_checkpoint cp;
    GPtrArray *rows = NULL;
    gint64 max_seq = 0, max_row = 0;
    int have_s = 0, have_cp = 0;
    char *err = NULL, a[CUS_SHA256_HEX], b[CUS_SHA256_HEX];

    memset(&s, 0, sizeof(s));
    /* The statement and its signature. */
    if (stf == NULL) {
        char *n = ev_name(v, EXP_STATEMENT);
        vmissing(v, n, 0, "nothing vouches for the export");
        g_free(n);
    } else if (stf->data != NULL) {
        gsize len;
        const void *d = bytes_of(stf->data, &len);

        if (exp_statement_parse(d, len, &s, &err) < 0) {
            PROBLEM(v, stf->shown, 0, 0, "%s", err);
            stf->reported = 1;
            g_free(err);
            err = NULL;
        } else {
            have_s = 1;
        }
    }
    vkey(v, &s, have_s);
    if (have_s) {
        v->st->statement_signed = s.is_signed;
        if (s.format != v->fmt)
            PROBLEM(v, stf->shown, 0, 0, "says the export is a %s, but it is a %s",
                    exp_format_name(s.format), exp_format_name(v->fmt));
        if (!s.is_signed)
            WARNING(v, stf->shown, 0, 0, "not signed (the archive had no [chain] sign_key): "
                    "nothing shows who made this export");
        else if (vsig(v, stf, "the statement is", s.key, s.sig, s.signed_len))
            stf->vouched = 1;
        else
            stf->reported = 1;
        vvouch(v, EXP_MANIFEST, s.manifest_sha);
        vvouch(v, EXP_CHAIN, s.chain_sha);
        vvouch(v, EXP_CHECKPOINT, s.checkpoint_sha);
    }

    /* The checkpoint. */
    if (cpf == NULL && !have_s) {
        char *n = ev_name(v, EXP_CHECKPOINT);
        vmissing(v, n, 0, "every export has one");
        g_free(n);
    } else if (cpf != NULL && cpf->data != NULL && !cpf->reported) {
        gsize len;
        const void *d = bytes_of(cpf->data, &len);

        if (chain_checkpoint_parse(d, len, &cp, &err) < 0) {
            PROBLEM(v, cpf->shown, 0, 0, "%s", err);
            cpf->reported = 1;
            g_free(err);
            err = NULL;
        } else {
            have_cp = 1;
            v->st->checkpoint_seq = cp.seq;
            v->st->checkpoint_signed = cp.is_signed;
            if (have_s && !stf->reported &&
                (cp.seq != s.checkpoint_seq ||
                 memcmp(cp.hash, s.checkpoint_hash, CUS_SHA256_LEN) != 0)) {
                hexs(s.checkpoint_hash, a);
                hexs(cp.hash, b);
                PROBLEM(v, stf->shown, 0, 0, "names checkpoint seq %" G_GINT64_FORMAT " hash "
                        "%s, the checkpoint is seq %" G_GINT64_FORMAT " hash %s",
                        s.checkpoint_seq, a, cp.seq, b);
            }
            if (!cp.is_signed)
                WARNING(v, cpf->shown, 0, 0, "the checkpoint is not signed (the archive had "
                        "no [chain] sign_key)");
            else
                vsig(v, cpf, "the checkpoint is", cp.key, cp.sig, cp.signed_len);
        }
    }

    /* SHA256SUMS and the chain events, parsed now: witnesses for the rows. */
    if (sf != NULL && sf->data != NULL) {
        gsize len;
        const void *d = bytes_of(sf->data, &len);

        if (exp_sums_parse(d, len, &v->sums, &err) < 0) {
            PROBLEM(v, sf->shown, 0, 0, "%s", err);
            sf->reported = 1;
            g_free(err);
            err = NULL;
        } else {
            if (v->fmt == EXP_MBOX)
                vrenamed(v, sf);
            v->sums_by_name = g_hash_table_new(g_str_hash, g_str_equal);
            for (guint i = v->sums->len; i-- > 0;) {
                struct exp_sum *su = g_ptr_array_index(v->sums, i);
                g_hash_table_insert(v->sums_by_name, su->name, su);
            }
        }
    }
    if (cf != NULL && cf->data != NULL) {
        gsize len;
        const void *d = bytes_of(cf->data, &len);

        if (exp_chain_parse(d, len, &v->evs, &err) < 0) {
            PROBLEM(v, cf->shown, 0, 0, "%s", err);
            cf->reported = 1;
            g_free(err);
            err = NULL;
        } else {
            v->ev_by_seq = g_hash_table_new(g_int64_hash, g_int64_equal);
            for (guint i = v->evs->len; i-- > 0;) {
                struct exp_event *e = g_ptr_array_index(v->evs, i);
                g_hash_table_insert(v->ev_by_seq, &e->seq, e);
            }
        }
    }

    /* The manifest against the messages. */
    if (mf == NULL) {
        if (!have_s) {
            char *n = ev_name(v, EXP_MANIFEST);
            vmissing(v, n, 0, "every export has one");
            g_free(n);
        }
    } else if (mf->data != NULL) {
        gsize len;
        const void *d = bytes_of(mf->data, &len);

        if (exp_manifest_parse(d, len, &rows, &err) < 0) {
            PROBLEM(v, mf->shown, 0, 0, "%s", err);
            mf->reported = 1;
            g_free(err);
            err = NULL;
        }
    }
    if (rows != NULL) {
        v->st->messages = rows->len;
        if (have_s && s.messages != (gint64)rows->len && !mf->reported && !stf->reported)
            PROBLEM(v, stf->shown, 0, 0, "says %" G_GINT64_FORMAT " messages, the manifest has "
                    "%u rows", s.messages, rows->len);
        vrows(v, rows, by_seq, &max_seq, &max_row);
        if (have_cp && max_seq > cp.seq)
            PROBLEM(v, cpf->shown, max_row, max_seq, "checkpoint seq %" G_GINT64_FORMAT
                    " does not cover chain position %" G_GINT64_FORMAT " (manifest row %"
                    G_GINT64_FORMAT ")", cp.seq, max_seq, max_row);
        for (guint i = 0; i < v->all->len; i++) {
            struct vfile *f = g_ptr_array_index(v->all, i);
            if (f->message && !f->claimed && !f->reported) {
                PROBLEM(v, f->shown, 0, 0, "not in the manifest (a message added)");
                f->reported = 1;
            }
        }
    }

    /* The chain events. */
    if (v->evs != NULL)
        vchain(v, cf, rows, by_seq);

    /* SHA256SUMS last: a file already found wrong is not named again. */
    if (v->fmt == EXP_MBOX) {
        struct vfile *whole = g_hash_table_lookup(v->files, v->base);
        for (guint i = 0; whole != NULL && i < v->all->len; i++) {
            struct vfile *f = g_ptr_array_index(v->all, i);
            if (f->message && f->reported)
                whole->reported = 1;
        }
        if (whole != NULL && !whole->reported && rows != NULL)
            whole->vouched = 1;
    }
    if (sf == NULL) {
        char *n = ev_name(v, EXP_SUMS);
        vmissing(v, n, 0, "every export has one");
        g_free(n);
    } else if (v->sums != NULL) {
        vsums(v, sf);
    }
    if (rows != NULL)
        g_ptr_array_free(rows, TRUE);
    g_hash_table_destroy(by_seq);
    exp_statement_clear(&s);
}

static void vx_init(struct vx *v, enum exp_format fmt, const char *base,
                    exp_problem_cb *cb, void *ctx, struct exp_verify_stats *st)
{
    memset(v, 0, sizeof(*v));
    v->cb = cb;
    v->ctx = ctx;
    v->st = st;
    v->fmt = fmt;
    v->base = g_strdup(base);
    v->files = g_hash_table_new(g_str_hash, g_str_equal);
    v->all = g_ptr_array_new_with_free_func(vfile_free);
    v->msgs = g_hash_table_new(g_int64_hash, g_int64_equal);
    v->missing = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    v->bad_rows = g_hash_table_new(g_direct_hash, g_direct_equal);
    st->format = fmt;
}

static void vx_clear(struct vx *v)
{
    g_hash_table_destroy(v->files);
    g_hash_table_destroy(v->msgs);
    g_hash_table_destroy(v->missing);
    g_hash_table_destroy(v->bad_rows);
    if (v->sums_by_name != NULL)
        g_hash_table_destroy(v->sums_by_name);
    if (v->sums != NULL)
        g_ptr_array_free(v->sums, TRUE);
    if (v->ev_by_seq != NULL)
        g_hash_table_destroy(v->ev_by_seq);
    if (v->evs != NULL)
        g_ptr_array_free(v->evs, TRUE);
    g_ptr_array_free(v->all, TRUE);
    if (v->md != NULL)
        EVP_MD_CTX_free(v->md);
    chain_key_free(&v->key);
    g_free(v->base);
}

/* The key given (--key or verify_key), before anything is read. */
static int vkey_given(struct vx *v, const struct exp_verify_opts *o, char **error_r)
{
    const char *path = o != NULL ? (o->key_path != NULL ? o->key_path : o->config_key) : NULL;
    GBytes *data = NULL;
    const void *b;
    gsize len;
    int ret;

    if (path == NULL)
        return 0;
    if (cus_read_file(path, EXP_SMALL_MAX, &data, error_r) < 0) {
        v->st->unreadable = errno == ENOENT ? 66 : 74;
        return -1;
    }
    b = bytes_of(data, &len);
    ret = chain_key_parse(b, len, path, &v->key, error_r);
    g_bytes_unref(data);
    if (ret < 0) {
        v->st->unreadable = 65;
        return -1;
    }
    v->st->key_source = o->key_path != NULL ? "--key" : "verify_key";
    return 0;
}

/* What the first bytes say: a format, or 0. Only what exp_export()
 * writes: a zip, a plain (pax/ustar) tar -- a compressed one is
 * uncompressed first, by the recipient -- or an mbox. */
static enum exp_format sniff(const unsigned char *b, size_t n)
{
    if (n >= 4 && (memcmp(b, "PK\003\004", 4) == 0 || memcmp(b, "PK\005\006", 4) == 0))
        return EXP_ZIP;
    if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0)
        return EXP_TAR;
    if (n >= 5 && memcmp(b, "From ", 5) == 0)
        return EXP_MBOX;
    return 0;
}

/* A reader of the central directory for zip (what unzip and Windows
 * see, not the local headers a streaming reader would trust), tar
 * without filters. */
static struct archive *vopen_archive(enum exp_format fmt)
{
    struct archive *a = archive_read_new();

    if (fmt == EXP_ZIP)
        archive_read_support_format_zip_seekable(a);
    else
        archive_read_support_format_tar(a);
    return a;
}

static int verify_common(const char *path, const void *buf, size_t len,
                         const struct exp_verify_opts *o, exp_problem_cb *cb, void *ctx,
                         struct exp_verify_stats *st, char **error_r)
{
    unsigned char head[512];
    size_t hn = 0;
    enum exp_format fmt;
    struct vx v;
    struct archive *a = NULL;
    locale_t loc = cus_utf8_locale(), old = (locale_t)0;
    char *base = path != NULL ? g_path_get_basename(path) : g_strdup("export");
    int fd = -1, ret = -1;

    memset(st, 0, sizeof(*st));
    if (path != NULL) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            st->unreadable = errno == ENOENT ? 66 : 74;
            cus_error_errno(error_r, "open(%s) failed", path);
            g_free(base);
            return -1;
        }
        while (hn < sizeof(head)) {
            ssize_t n = read(fd, head + hn, sizeof(head) - hn);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            hn += (size_t)n;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
            st->unreadable = 74;
            cus_error_errno(error_r, "%s: lseek failed (not a file?)", path);
            goto done;
        }
    } else {
        hn = MIN(len, sizeof(head));
        memcpy(head, buf, hn);
    }
    fmt = sniff(head, hn);
    if (fmt == 0) {
        st->unreadable = 65;
        cus_error(error_r, "%s: not a custos export: neither a zip, a tar nor an mbox "
                  "(a compressed tar: uncompress it first)", path != NULL ? path : "input");
        goto done;
    }
    vx_init(&v, fmt, base, cb, ctx, st);
    if (vkey_given(&v, o, error_r) < 0)
        goto out;
    if (loc == (locale_t)0) {
        st->unreadable = 74;
        cus_error(error_r, "no UTF-8 locale (C.UTF-8) to read file names with");
        goto out;
    }
    old = uselocale(loc);
    if (fmt == EXP_MBOX) {
        if (vread_mbox(&v, fd, buf, len, error_r) < 0)
            goto out;
        vread_beside(&v, path);
    } else {
        int orc;

        a = vopen_archive(fmt);
        orc = path != NULL ? archive_read_open_fd(a, fd, IO_CHUNK)
                           : archive_read_open_memory(a, buf, len);
        if (orc != ARCHIVE_OK) {
            st->unreadable = 65;
            cus_error(error_r, "%s: not a readable %s: %s", base, exp_format_name(fmt),
                      ar_err(a));
            goto out;
        }
        if (vread_archive(&v, a, error_r) < 0)
            goto out;
    }
    if (!v.damaged)
        vcheck(&v);
    ret = 0;
out:
    if (old != (locale_t)0)
        uselocale(old);
    if (a != NULL)
        archive_read_free(a);
    vx_clear(&v);
done:
    if (fd >= 0)
        close(fd);
    g_free(base);
    return ret;
}

int exp_verify(const char *path, const struct exp_verify_opts *o, exp_problem_cb *cb,
               void *ctx, struct exp_verify_stats *st, char **error_r)
{
    return verify_common(path, NULL, 0, o, cb, ctx, st, error_r);
}

int exp_verify_buffer(const void *buf, size_t len, const struct exp_verify_opts *o,
                      exp_problem_cb *cb, void *ctx, struct exp_verify_stats *st,
                      char **error_r)
{
    return verify_common(NULL, buf, len, o, cb, ctx, st, error_r);
}
