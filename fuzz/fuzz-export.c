/*
 * fuzz-export.c - libFuzzer target for what verify-export reads
 *
 * Byte 0 of the input picks the parser, the rest is its input:
 *   0  manifest.csv: a parsed manifest written again with exp_csv_record()
 *      must parse to the same rows
 *   1  SHA256SUMS       2  chain.txt: every event inside the input
 *   3  export.txt: what is signed lies inside the input
 *   4  the mbox reader, fed in pieces the input's bytes choose; then the
 *      input as one message: written and read back, it must come out
 *      byte for byte, with its id
 *   5  a whole export in memory (zip, tar or mbox): exp_verify_buffer()
 *      checks it or says why not; problems counted as reported
 *   6  safename(): the result keeps the rules (safename_ok(), a fixed point)
 *   7  a PEM key
 * Any other byte 0: all of them. An error must say what is wrong. A
 * broken promise aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/chain.h"
#include "custos/export.h"
#include "custos/safename.h"

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz-export: %s: %.600s\n", what, detail != NULL ? detail : "");
    abort();
}

static void need_error(int rc, char *err, const char *what)
{
    if (rc < 0 && (err == NULL || *err == '\0'))
        fuzz_fail(what, "failed without saying why");
    g_free(err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("G_SLICE", "always-malloc", 1);
    return 0;
}

static void fz_manifest(const uint8_t *d, size_t n)
{
    GPtrArray *rows = NULL, *again = NULL;
    GString *csv;
    char *err = NULL;
    int rc = exp_manifest_parse(d, n, &rows, &err);

    need_error(rc, err, "manifest");
    if (rc < 0) {
        if (rows != NULL)
            fuzz_fail("manifest", "rows despite the error");
        return;
    }
    csv = g_string_new("id,date,from,to,cc,subject,sha256,chain_seq,file\r\n");
    for (guint i = 0; i < rows->len; i++) {
        const struct exp_row *r = g_ptr_array_index(rows, i);
        char id[24], seq[24], hex[CUS_SHA256_HEX];
        const char *f[9];

        g_snprintf(id, sizeof(id), "%" G_GINT64_FORMAT, r->id);
        if (r->seq > 0)
            g_snprintf(seq, sizeof(seq), "%" G_GINT64_FORMAT, r->seq);
        else
            seq[0] = '\0';
        cus_hex(r->sha, CUS_SHA256_LEN, hex);
        f[0] = id; f[1] = r->date; f[2] = r->from; f[3] = r->to; f[4] = r->cc;
        f[5] = r->subject; f[6] = hex; f[7] = seq; f[8] = r->file;
        exp_csv_record(csv, f, 9);
    }
    err = NULL;
    if (exp_manifest_parse(csv->str, csv->len, &again, &err) < 0)
        fuzz_fail("a manifest written again does not parse", err);
    if (again->len != rows->len)
        fuzz_fail("manifest", "rows lost or gained when written again");
    for (guint i = 0; i < rows->len; i++) {
        const struct exp_row *a = g_ptr_array_index(rows, i), *b = g_ptr_array_index(again, i);
        if (a->id != b->id || a->seq != b->seq || memcmp(a->sha, b->sha, CUS_SHA256_LEN) ||
            strcmp(a->date, b->date) || strcmp(a->from, b->from) || strcmp(a->to, b->to) ||
            strcmp(a->cc, b->cc) || strcmp(a->subject, b->subject) || strcmp(a->file, b->file))
            fuzz_fail("manifest", "a row changed when written again");
    }
    g_ptr_array_free(again, TRUE);
    g_ptr_array_free(rows, TRUE);
    g_string_free(csv, TRUE);
}

static void fz_sums(const uint8_t *d, size_t n)
{
    GPtrArray *s = NULL;
    char *err = NULL;
    int rc = exp_sums_parse(d, n, &s, &err);

    need_error(rc, err, "SHA256SUMS");
    for (guint i = 0; rc == 0 && i < s->len; i++) {
        const struct exp_sum *e = g_ptr_array_index(s, i);
        if (*e->name == '\0' || strchr(e->name, '\n') != NULL)
            fuzz_fail("SHA256SUMS", "an empty name or one with a newline");
    }
    if (s != NULL)
        g_ptr_array_free(s, TRUE);
}

static void fz_chain(const uint8_t *d, size_t n)
{
    GPtrArray *evs = NULL;
    char *err = NULL;
    int rc = exp_chain_parse(d, n, &evs, &err);

    need_error(rc, err, "chain.txt");
    for (guint i = 0; rc == 0 && i < evs->len; i++) {
        const struct exp_event *e = g_ptr_array_index(evs, i);
        if ((const uint8_t *)e->bytes < d || (const uint8_t *)e->bytes + e->len > d + n)
            fuzz_fail("chain.txt", "an event outside the input");
    }
    if (evs != NULL)
        g_ptr_array_free(evs, TRUE);
}

static void fz_statement(const uint8_t *d, size_t n)
{
    struct exp_statement s;
    char *err = NULL;
    int rc = exp_statement_parse(d, n, &s, &err);

    need_error(rc, err, "statement");
    if (rc == 0 && (s.signed_len > n || s.user == NULL || s.query == NULL ||
                    (s.is_signed && strcmp(s.key, "none") == 0)))
        fuzz_fail("statement", "parsed into something it cannot be");
    if (rc == 0)
        exp_statement_clear(&s);
}

struct got {
    GString *msg;
    gint64 id;
    int begun, ended;
};

static void g_begin(void *ctx, gint64 id, int noeol, gint64 offset)
{
    struct got *g = ctx;

    if (g->begun != g->ended)
        fuzz_fail("mbox", "a message begun before the last one ended");
    g->begun++;
    g->id = id;
    g_string_truncate(g->msg, 0);
}

static void g_data(void *ctx, const void *buf, size_t len)
{
    struct got *g = ctx;

    if (g->begun != g->ended + 1)
        fuzz_fail("mbox", "message bytes outside a message");
    g_string_append_len(g->msg, buf, (gssize)len);
}

static void g_end(void *ctx, const char *problem)
{
    struct got *g = ctx;

    g->ended++;
    if (g->begun != g->ended)
        fuzz_fail("mbox", "a message ended that did not begin");
}

static int put(void *ctx, const void *buf, size_t len)
{
    g_string_append_len(ctx, buf, (gssize)len);
    return 0;
}

/* Feed buf in pieces whose sizes come from the bytes of key. */
static int feed(struct exp_mbox *m, const uint8_t *buf, size_t n, const uint8_t *key,
                size_t klen)
{
    char *err = NULL;
    size_t off = 0, k = 0;
    int rc = 0;

    while (off < n && rc == 0) {
        size_t piece = klen > 0 ? (size_t)(key[k++ % klen] % 17) + 1 : n;
        piece = MIN(piece, n - off);
        rc = exp_mbox_feed(m, buf + off, piece, &err);
        off += piece;
    }
    if (rc == 0)
        rc = exp_mbox_finish(m, &err);
    need_error(rc, err, "mbox");
    return rc;
}

static void fz_mbox(const uint8_t *d, size_t n)
{
    static const struct exp_mbox_cbs cbs = { g_begin, g_data, g_end };
    struct got g = { g_string_new(NULL), 0, 0, 0 };
    struct exp_mbox *m = exp_mbox_new(&cbs, &g);
    GString *mbox = g_string_new(NULL);

    /* any bytes as an mbox */
    feed(m, d, n, d, n);
    exp_mbox_free(&m);
    if (g.begun != g.ended)
        fuzz_fail("mbox", "a message never ended");
    /* the bytes as a message: back exactly */
    if (n > 0) {
        gint64 id = 1 + (gint64)(n * 7919);

        exp_mbox_write(id, (gint64)n * 1000, d, n, put, mbox);
        g.begun = g.ended = 0;
        m = exp_mbox_new(&cbs, &g);
        if (feed(m, (const uint8_t *)mbox->str, mbox->len, d, n) < 0)
            fuzz_fail("mbox", "what exp_mbox_write() wrote does not read");
        exp_mbox_free(&m);
        if (g.begun != 1 || g.id != id || g.msg->len != n || memcmp(g.msg->str, d, n) != 0)
            fuzz_fail("mbox", "a message did not come back byte for byte");
    }
    g_string_free(mbox, TRUE);
    g_string_free(g.msg, TRUE);
}

static void count(void *ctx, const struct exp_problem *p)
{
    gint64 *n = ctx;

    if (p->object == NULL || p->what == NULL || *p->what == '\0')
        fuzz_fail("verify", "a problem without object or text");
    if (!p->warning)
        (*n)++;
}

static void fz_verify(const uint8_t *d, size_t n)
{
    struct exp_verify_stats st;
    gint64 problems = 0;
    char *err = NULL;
    int rc = exp_verify_buffer(d, n, NULL, count, &problems, &st, &err);

    if (rc < 0 && (st.unreadable != 65 && st.unreadable != 74))
        fuzz_fail("verify", "unreadable without 65 or 74");
    need_error(rc, err, "verify");
    if (rc == 0 && problems != st.problems)
        fuzz_fail("verify", "problems counted differ from those reported");
}

static void fz_safename(const uint8_t *d, size_t n)
{
    size_t max = n > 0 ? (size_t)d[0] : 0;
    unsigned flags = n > 1 && (d[1] & 1) ? SAFENAME_DASH : 0;
    char *s = safename((const char *)d, n, max, "fallback", flags), *again;

    max = MAX(max, SAFENAME_MIN_BYTES);
    again = safename(s, strlen(s), max, "fallback", flags);
    if (!g_utf8_validate(s, -1, NULL) || strlen(s) > max || !safename_ok(s, max) ||
        strcmp(s, again) != 0 || strstr(s, "..") != NULL || strpbrk(s, "/\\") != NULL)
        fuzz_fail("safename", s);
    g_free(s);
    g_free(again);
}

static void fz_key(const uint8_t *d, size_t n)
{
    struct chain_key *k = NULL;
    char *err = NULL;
    int rc = chain_key_parse(d, n, "fuzz", &k, &err);

    need_error(rc, err, "key");
    if (rc == 0 && strncmp(chain_key_id(k), "ed25519:", 8) != 0)
        fuzz_fail("key", chain_key_id(k));
    chain_key_free(&k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static void (*const fns[])(const uint8_t *, size_t) = {
        fz_manifest, fz_sums, fz_chain, fz_statement, fz_mbox, fz_verify, fz_safename, fz_key,
    };
    const uint8_t *d = data + 1;
    size_t n;

    if (size == 0)
        return 0;
    n = size - 1;
    if (data[0] < G_N_ELEMENTS(fns)) {
        fns[data[0]](d, n);
    } else {
        for (size_t i = 0; i < G_N_ELEMENTS(fns); i++)
            fns[i](d, n);
    }
    return 0;
}
