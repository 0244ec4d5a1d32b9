/*
 * fuzz-msg.c - libFuzzer target for the message parser
 *
 * Raw bytes go to msg_parse() with the default limits, then through what
 * the archive does with the result: every string is checked for what
 * msg.h promises (valid UTF-8, no NUL, a 64-digit hash per attachment,
 * text within the text limit) and tokenized as FTS5 would index it
 * (subject, body, attachment names and text); addresses are lower-cased
 * and split at '@' as index.c does. A broken promise aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <sqlite3.h>

#include "custos/msg.h"
#include "custos/tok.h"

static void fuzz_fail(const char *what, const char *s)
{
    fprintf(stderr, "fuzz-msg: %s: \"%.200s\"\n", what, s != NULL ? s : "(null)");
    abort();
}

/* A string of the model: not NULL, valid UTF-8 of exactly len bytes. */
static void check_str(const char *what, const char *s, size_t len)
{
    if (s == NULL)
        fuzz_fail(what, "NULL");
    if (strlen(s) != len)
        fuzz_fail("NUL inside", what);
    if (!g_utf8_validate(s, (gssize)len, NULL))
        fuzz_fail("invalid UTF-8", what);
}

static int token_cb(void *ctx, int tflags, const char *token, int ntoken, int start, int end)
{
    int len = *(int *)ctx;

    if (ntoken <= 0 || ntoken > 128 || start < 0 || end < start || end > len)
        fuzz_fail("bad token", token);
    return 0;
}

/* Tokenize as FTS5 does when the archive indexes the text. */
static void index_text(const char *what, const char *s, size_t len)
{
    int n = (int)len;

    check_str(what, s, len);
    tok_run(s, n, FTS5_TOKENIZE_DOCUMENT, token_cb, &n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* every GLib block is its own malloc, so ASan sees each one */
    setenv("G_SLICE", "always-malloc", 1);
    msg_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg_limits lim;
    struct msg *m = NULL;
    char *error = NULL;
    GString *attnames;

    msg_limits_default(&lim);
    if (msg_parse(data, size, &lim, &m, &error) < 0 || m == NULL)
        fuzz_fail("msg_parse failed", error);   /* only on allocation trouble */

    check_str("message_id", m->message_id, strlen(m->message_id));
    index_text("subject", m->subject, strlen(m->subject));
    index_text("body", m->body->str, m->body->len);
    index_text("att_text", m->att_text->str, m->att_text->len);
    if (m->body->len + m->att_text->len > lim.text_size)
        fuzz_fail("text over the limit", m->body->str);
    for (guint i = 0; i < m->headers->len; i++) {
        const struct msg_header *h = g_ptr_array_index(m->headers, i);
        check_str("header name", h->name, strlen(h->name));
        check_str("header value", h->value, strlen(h->value));
    }
    for (guint i = 0; i < m->addrs->len; i++) {
        const struct msg_addr *a = g_ptr_array_index(m->addrs, i);
        char *addr;
        if (a->role < MSG_FROM || a->role > MSG_SENDER)
            fuzz_fail("bad role", a->addr);
        check_str("addr name", a->name, strlen(a->name));
        check_str("addr", a->addr, strlen(a->addr));
        addr = g_utf8_strdown(a->addr, -1);
        if (strrchr(addr, '@') != NULL)
            check_str("domain", strrchr(addr, '@') + 1, strlen(strrchr(addr, '@') + 1));
        g_free(addr);
    }
    if (m->atts->len > (guint)lim.parts)
        fuzz_fail("more attachments than the parts limit", "");
    attnames = g_string_new(NULL);
    for (guint i = 0; i < m->atts->len; i++) {
        const struct msg_att *a = g_ptr_array_index(m->atts, i);
        check_str("att name", a->name, strlen(a->name));
        check_str("att type", a->type, strlen(a->type));
        check_str("att path", a->path, strlen(a->path));
        if (strlen(a->sha256) != 64 || strspn(a->sha256, "0123456789abcdef") != 64)
            fuzz_fail("att sha256", a->sha256);
        if (a->depth < 1)
            fuzz_fail("att depth", a->name);
        if (*a->name != '\0')
            g_string_append_printf(attnames, "%s\n", a->name);
    }
    index_text("attnames", attnames->str, attnames->len);
    g_string_free(attnames, TRUE);
    for (guint i = 0; i < m->limits->len; i++) {
        const char *l = g_ptr_array_index(m->limits, i);
        check_str("limit", l, strlen(l));
    }
    msg_free(&m);
    g_free(error);
    return 0;
}
