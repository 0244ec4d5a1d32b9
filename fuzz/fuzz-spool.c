/*
 * fuzz-spool.c - libFuzzer target for the spool file format
 *
 * The input is a whole spool file for spool_parse(). When it parses, the
 * entry is written with spool_write() into a scratch spool (on /dev/shm
 * when there is one: fsync is free there), read back with spool_read()
 * and compared field by field: the round trip must be exact (time,
 * client, sender, every rcpt in order, queue id, source, raw bytes). A
 * parse error must say what is wrong. A broken promise aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "custos/spool.h"

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

static void fuzz_cleanup(void)
{
    static const char *const subs[] = { "tmp", "new", "failed" };

    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *d = g_build_filename(fuzz_dir, subs[i], NULL);
        g_rmdir(d);
        g_free(d);
    }
    g_rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
    char *error = NULL;

    setenv("G_SLICE", "always-malloc", 1);
    fuzz_dir = g_build_filename(base, "custos-fuzz-spool-XXXXXX", NULL);
    if (g_mkdtemp(fuzz_dir) == NULL || spool_init(fuzz_dir, &error) < 0) {
        fprintf(stderr, "fuzz-spool: %s: %s\n", fuzz_dir, error ? error : "mkdtemp failed");
        exit(1);
    }
    atexit(fuzz_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spool_entry *e = NULL, *back = NULL;
    char id[SPOOL_ID_MAX + 1] = "", *error = NULL;
    int n;

    if (spool_parse(data, size, &e, &error) < 0) {
        if (e != NULL || error == NULL || *error == '\0')
            fuzz_fail("parse error without a message", error);
        g_free(error);
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
