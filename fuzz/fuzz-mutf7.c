/*
 * fuzz-mutf7.c - libFuzzer target for folder names: IMAP modified UTF-7
 * and Dovecot's listescape (handover/mutf7.c)
 *
 * The input (up to its first NUL) is taken as a storage name read from a
 * leaver's Maildir and as a UTF-8 folder name to write. A name that
 * decodes must decode to valid UTF-8 without NUL and encode back to
 * itself (decoding is strict: there is one form of each name); a UTF-8
 * name must encode and decode back to itself, as one level too; an error
 * must say something. hov_storage_display() of anything must give valid
 * UTF-8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "custos/handover-maildir.h"

static void fuzz_fail(const char *what, const char *in, const char *detail)
{
    fprintf(stderr, "fuzz-mutf7: %s\n  input: %.300s\n  %.600s\n", what, in,
            detail != NULL ? detail : "");
    abort();
}

static void need_error(const char *err, const char *in)
{
    if (err == NULL || *err == '\0')
        fuzz_fail("an error without a message", in, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("G_SLICE", "always-malloc", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = g_strndup((const char *)data, size);
    char *out = NULL, *back = NULL, *err = NULL, *disp;

    /* as a name on disk */
    if (hov_mutf7_decode(in, &out, &err) == 0) {
        if (!g_utf8_validate(out, -1, NULL))
            fuzz_fail("decoded name not UTF-8", in, out);
        if (hov_mutf7_encode(out, &back, &err) < 0)
            fuzz_fail("a decoded name does not encode", in, err);
        if (strcmp(back, in) != 0)
            fuzz_fail("decode then encode is not the name", in, back);
    } else {
        need_error(err, in);
    }
    g_free(out);
    g_free(back);
    g_free(err);
    out = back = err = NULL;
    if (hov_level_decode(in, &out, &err) == 0) {
        if (!g_utf8_validate(out, -1, NULL))
            fuzz_fail("decoded level not UTF-8", in, out);
    } else {
        need_error(err, in);
    }
    g_free(out);
    g_free(err);
    out = err = NULL;
    disp = hov_storage_display(in);
    if (!g_utf8_validate(disp, -1, NULL))
        fuzz_fail("displayed name not UTF-8", in, disp);
    g_free(disp);

    /* as a UTF-8 name to write */
    if (hov_mutf7_encode(in, &out, &err) == 0) {
        for (const char *p = out; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                fuzz_fail("encoded name not printable ASCII", in, out);
        if (hov_mutf7_decode(out, &back, &err) < 0)
            fuzz_fail("an encoded name does not decode", in, err);
        if (strcmp(back, in) != 0)
            fuzz_fail("encode then decode is not the name", in, back);
    } else {
        need_error(err, in);
        if (g_utf8_validate(in, -1, NULL))
            fuzz_fail("valid UTF-8 refused", in, err);
    }
    g_free(out);
    g_free(back);
    g_free(err);
    out = back = err = NULL;
    for (int esc = HOV_ESC_LISTESCAPE; esc <= HOV_ESC_UNDERSCORE; esc++) {
        if (hov_level_encode(in, (enum hov_escape)esc, &out, &err) == 0) {
            if (strchr(out, '.') != NULL || strchr(out, '/') != NULL)
                fuzz_fail("an encoded level holds a separator", in, out);
            if (hov_level_decode(out, &back, &err) < 0)
                fuzz_fail("an encoded level does not decode", in, err);
            if (esc == HOV_ESC_LISTESCAPE && strcmp(back, in) != 0)
                fuzz_fail("level encode then decode is not the name", in, back);
        } else {
            need_error(err, in);
        }
        g_free(out);
        g_free(back);
        g_free(err);
        out = back = err = NULL;
    }
    g_free(in);
    return 0;
}
