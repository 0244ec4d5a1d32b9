/*
 * fuzz-spool.c - libFuzzer target for the spool file format
 *
 * The input is a whole spool file for spool_parse(). When it parses, the
 * entry is written with spool_write() into a scratch spool (on /dev/shm
 * when there is one: fsync is free there), read back with spool_read()
 * and compared field by field: the round trip must be exact (time,
 * client, sender, every rcpt in order, queue id, source, auth, every
 * finding in order, raw bytes). A
 * parse error must say what is wrong. Scratch spools left by a crash are
 * swept at the next start. An input that starts as a journal is split
 * into entries (each with an id) and failed pieces (each with a reason; a
 * torn tail last, running to the end).
 *
 * An input that does not parse is also read as an envelope to write:
 * byte 0 the number of rcpts (low 3 bits) and of findings (next 2 bits),
 * then client, sender, queue id, source, the rcpts and four fields per
 * finding (category, rule, action, evidence), each ended by a NUL, then
 * the raw message. Any bytes at all go in (CR, LF, '%', invalid UTF-8);
 * what comes back must be the same, with invalid UTF-8 repaired as
 * spool.h says; a finding whose category, rule or action is not a token
 * must be refused, with a message, and leave nothing.
 * A broken promise aborts.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "custos/spool.h"
#include "custos/util.h"

static char *fuzz_dir;

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz-spool: %s: %.600s\n", what, detail != NULL ? detail : "");
    abort();
}

static void same_str(const char *what, const char *a, const char *b)
{
    if (a == NULL || b == NULL || strcmp(a, b) != 0) {
        char *d = g_strdup_printf("\"%s\" became \"%s\"", a ? a : "(null)", b ? b : "(null)");
        fuzz_fail(what, d);
    }
}

/* Remove a scratch spool: the files in tmp/, new/, failed/, then the
 * directories. */
static void scratch_remove(const char *dir)
{
    static const char *const subs[] = { "tmp", "new", "failed" };

    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *d = g_build_filename(dir, subs[i], NULL);
        GDir *gd = g_dir_open(d, 0, NULL);
        const char *name;

        while (gd != NULL && (name = g_dir_read_name(gd)) != NULL) {
            char *f = g_build_filename(d, name, NULL);
            g_unlink(f);
            g_free(f);
        }
        if (gd != NULL)
            g_dir_close(gd);
        g_rmdir(d);
        g_free(d);
    }
    g_rmdir(dir);
}

static void fuzz_cleanup(void)
{
    scratch_remove(fuzz_dir);
}

/* A crash (or a run over files) ends without atexit: remove the scratch
 * spools of processes that are gone. */
static void sweep_stale(const char *base)
{
    GDir *gd = g_dir_open(base, 0, NULL);
    const char *name;

    while (gd != NULL && (name = g_dir_read_name(gd)) != NULL) {
        long pid;
        char *end, *dir;

        if (!g_str_has_prefix(name, "custos-fuzz-spool-"))
            continue;
        pid = strtol(name + 18, &end, 10);
        if (end == name + 18 || *end != '.' || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        dir = g_build_filename(base, name, NULL);
        scratch_remove(dir);
        g_free(dir);
    }
    if (gd != NULL)
        g_dir_close(gd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
    char *error = NULL, *name;

    setenv("G_SLICE", "always-malloc", 1);
    sweep_stale(base);
    name = g_strdup_printf("custos-fuzz-spool-%ld.XXXXXX", (long)getpid());
    fuzz_dir = g_build_filename(base, name, NULL);
    g_free(name);
    if (g_mkdtemp(fuzz_dir) == NULL || spool_init(fuzz_dir, &error) < 0) {
        fprintf(stderr, "fuzz-spool: %s: %s\n", fuzz_dir, error ? error : "mkdtemp failed");
        exit(1);
    }
    atexit(fuzz_cleanup);
    return 0;
}

/* What a value written with spool_write() reads back as. */
static char *repaired(const char *v)
{
    return cus_utf8_repair(v, strlen(v));
}

/* Write any envelope, read it back: the same but for repaired UTF-8. */
static void write_envelope(const uint8_t *data, size_t size)
{
    struct spool_entry e = { .id = "" }, *back = NULL;
    char *fields[4 + 7 + 1 + 4 * 3] = { NULL }, id[SPOOL_ID_MAX + 1] = "", *error = NULL;
    struct spool_finding fs[3], *fp[3];
    int nrcpt, nfind, nf, tokens = 1;
    size_t pos = 1;

    if (size == 0)
        return;
    nrcpt = data[0] & 7;
    nfind = (data[0] >> 3) & 3;
    for (nf = 0; nf < 4 + nrcpt + 1 + 4 * nfind; nf++) {
        if (nf == 4 + nrcpt) {
            fields[nf] = NULL;  /* the rcpts' end */
            continue;
        }
        const uint8_t *nul = pos < size ? memchr(data + pos, '\0', size - pos) : NULL;
        if (nul == NULL)
            goto out;           /* too few fields: not an envelope */
        fields[nf] = g_strndup((const char *)data + pos, (size_t)(nul - (data + pos)));
        pos = (size_t)(nul - data) + 1;
    }
    e.time = (gint64)size * 1000003;
    e.client = fields[0];
    e.sender = fields[1];
    e.queue_id = fields[2];
    e.source = fields[3];
    e.rcpts = fields + 4;       /* NULL after the last */
    for (int i = 0; i < nfind; i++) {
        char **f = fields + 4 + nrcpt + 1 + 4 * i;
        fs[i] = (struct spool_finding){ f[0], f[1], f[2], f[3] };
        fp[i] = &fs[i];
        tokens = tokens && spool_token_valid(f[0]) && spool_token_valid(f[1]) &&
                 spool_token_valid(f[2]);
    }
    e.findings = fp;
    e.n_findings = (size_t)nfind;
    e.raw = g_bytes_new(data + pos, size - pos);
    if (!tokens) {
        if (spool_write(fuzz_dir, &e, id, &error) == 0)
            fuzz_fail("spool_write took a finding that is not tokens", id);
        if (error == NULL || strstr(error, "is not a token") == NULL)
            fuzz_fail("spool_write refused a finding without saying why", error);
        g_free(error);
        g_bytes_unref(e.raw);
        goto out;
    }
    if (spool_write(fuzz_dir, &e, id, &error) < 0)
        fuzz_fail("spool_write", error);
    if (spool_read(fuzz_dir, id, &back, &error) < 0)
        fuzz_fail("spool_read of a written entry", error);
    for (int i = 0; i < 4 + nrcpt; i++) {
        char *want = repaired(fields[i]);
        const char *got = i == 0 ? back->client : i == 1 ? back->sender :
                          i == 2 ? back->queue_id : i == 3 ? back->source : back->rcpts[i - 4];
        same_str(i < 4 ? "envelope value" : "rcpt", want, got);
        g_free(want);
    }
    if (back->rcpts[nrcpt] != NULL)
        fuzz_fail("rcpt added", back->rcpts[nrcpt]);
    if (back->n_findings != (size_t)nfind)
        fuzz_fail("findings lost or added", id);
    for (int i = 0; i < nfind; i++) {
        char *want = repaired(fs[i].evidence);
        same_str("finding category", fs[i].category, back->findings[i]->category);
        same_str("finding rule", fs[i].rule, back->findings[i]->rule);
        same_str("finding action", fs[i].action, back->findings[i]->action);
        same_str("finding evidence", want, back->findings[i]->evidence);
        g_free(want);
    }
    if (back->time != e.time || !g_bytes_equal(e.raw, back->raw))
        fuzz_fail("time or raw message changed", id);
    if (spool_remove(fuzz_dir, id, &error) < 0)
        fuzz_fail("spool_remove", error);
    spool_entry_free(&back);
    g_bytes_unref(e.raw);
out:
    for (int i = 0; i < nf; i++)
        g_free(fields[i]);
}

/* A journal: split into entries and failures, every byte accounted for
 * (the entries and the failed pieces never overlap and a tail is last). */
static void fuzz_journal(const uint8_t *data, size_t size)
{
    GBytes *b = g_bytes_new(data, size);
    GPtrArray *good = NULL, *bad = NULL;
    char *error = NULL;

    if (spool_parse_journal(b, &good, &bad, &error) < 0)
        fuzz_fail("a journal's magic line refused", error);
    for (guint i = 0; i < good->len; i++) {
        struct spool_entry *e = g_ptr_array_index(good, i);
        if (!spool_id_valid(e->id) || e->raw == NULL || e->rcpts == NULL)
            fuzz_fail("a journal entry without id, message or recipients", e->id);
    }
    for (guint i = 0; i < bad->len; i++) {
        struct spool_bad *f = g_ptr_array_index(bad, i);
        int tail = g_str_has_prefix(f->name, "tail-");
        if (f->reason == NULL || *f->reason == '\0' || f->bytes == NULL)
            fuzz_fail("a failed journal piece without reason or bytes", f->name);
        if (tail ? i + 1 != bad->len : !spool_id_valid(f->name))
            fuzz_fail("a tail not last, or a failed entry without an id", f->name);
        if (tail && g_bytes_get_size(f->bytes) !=
                    size - g_ascii_strtoull(f->name + 5, NULL, 10))
            fuzz_fail("a tail that does not run to the end", f->name);
    }
    g_ptr_array_free(good, TRUE);
    g_ptr_array_free(bad, TRUE);
    g_bytes_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spool_entry *e = NULL, *back = NULL;
    char id[SPOOL_ID_MAX + 1] = "", *error = NULL;
    int n;

    if (size >= sizeof(SPOOL_JOURNAL_MAGIC) &&
        memcmp(data, SPOOL_JOURNAL_MAGIC "\n", sizeof(SPOOL_JOURNAL_MAGIC)) == 0) {
        fuzz_journal(data, size);
        return 0;
    }

    if (spool_parse(data, size, &e, &error) < 0) {
        if (e != NULL || error == NULL || *error == '\0')
            fuzz_fail("parse error without a message", error);
        g_free(error);
        write_envelope(data, size);
        return 0;
    }
    if (e == NULL || e->rcpts == NULL || e->raw == NULL || e->id[0] != '\0')
        fuzz_fail("parsed entry incomplete", error);
    if (spool_write(fuzz_dir, e, id, &error) < 0)
        fuzz_fail("spool_write of a parsed entry", error);
    if (!spool_id_valid(id))
        fuzz_fail("spool_write made a bad id", id);
    if (spool_read(fuzz_dir, id, &back, &error) < 0)
        fuzz_fail("spool_read of a written entry", error);
    same_str("id", id, back->id);
    if (e->time != back->time)
        fuzz_fail("time changed", id);
    same_str("client", e->client, back->client);
    same_str("sender", e->sender, back->sender);
    same_str("queue-id", e->queue_id, back->queue_id);
    same_str("source", e->source, back->source);
    if ((e->auth == NULL) != (back->auth == NULL) || (e->auth != NULL && *e->auth == '\0'))
        fuzz_fail("auth lost, added or empty", e->auth != NULL ? e->auth : back->auth);
    if (e->auth != NULL)
        same_str("auth", e->auth, back->auth);
    if (e->n_findings != back->n_findings || (e->n_findings == 0) != (e->findings == NULL))
        fuzz_fail("findings lost or added", id);
    for (size_t i = 0; i < e->n_findings; i++) {
        if (!spool_token_valid(e->findings[i]->category) ||
            !spool_token_valid(e->findings[i]->rule) || !spool_token_valid(e->findings[i]->action))
            fuzz_fail("a parsed finding is not tokens", e->findings[i]->rule);
        same_str("finding category", e->findings[i]->category, back->findings[i]->category);
        same_str("finding rule", e->findings[i]->rule, back->findings[i]->rule);
        same_str("finding action", e->findings[i]->action, back->findings[i]->action);
        same_str("finding evidence", e->findings[i]->evidence, back->findings[i]->evidence);
    }
    for (n = 0; e->rcpts[n] != NULL; n++) {
        if (back->rcpts[n] == NULL)
            fuzz_fail("rcpt lost", e->rcpts[n]);
        same_str("rcpt", e->rcpts[n], back->rcpts[n]);
    }
    if (back->rcpts[n] != NULL)
        fuzz_fail("rcpt added", back->rcpts[n]);
    if (!g_bytes_equal(e->raw, back->raw))
        fuzz_fail("raw message changed", id);
    if (spool_remove(fuzz_dir, id, &error) < 0)
        fuzz_fail("spool_remove", error);
    spool_entry_free(&e);
    spool_entry_free(&back);
    return 0;
}
