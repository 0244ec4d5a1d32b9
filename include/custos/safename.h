/*
 * safename.h - any string from mail made safe to name a file
 *
 * Subjects and attachment names are hostile input: they may hold '/',
 * "..", control characters, bidi overrides that turn "gpj.exe" around,
 * Windows device names, or no valid UTF-8 at all. safename() makes a name
 * that is safe on Unix and Windows file systems and inside zip and tar:
 *
 *   - input that is not UTF-8 has each bad byte replaced by '_'; the rest
 *     is NFC-normalised
 *   - '/', '\' and look-alikes that some systems map to them (U+2044,
 *     U+2215, U+29F8, U+FE68, U+FF0F, U+FF3C), the Windows-forbidden
 *     < > : " | ? *, NUL, control characters (C0, DEL, C1), format
 *     characters (zero-width, bidi controls), line/paragraph separators,
 *     surrogates, private-use and unassigned code points: each run becomes
 *     one '_'
 *   - white space (tab, newline, U+3000, ...) becomes one ' ' per run
 *     (one '-' with SAFENAME_DASH, where '-' counts as white space); a
 *     run of bad characters with white space in it is white space
 *   - ".." and longer runs of dots become one '.' (no traversal, and no
 *     ".."-only name)
 *   - leading dots, '-' (an option to a tool) and white space are dropped;
 *     so are trailing dots and white space (Windows drops them itself, so
 *     names would collide), and with SAFENAME_DASH trailing '-'
 *   - a Windows device name (CON PRN AUX NUL COM1-9 LPT1-9, also with
 *     the superscript digits ¹²³, CONIN$ CONOUT$), in any case, alone or
 *     before an extension ("con.txt", "Nul .tar.gz"), gets a '_' in front
 *   - at most max_bytes bytes, cut on a UTF-8 character boundary; an
 *     extension of up to 16 bytes after the last '.' is kept when the
 *     name is cut
 *   - an empty result, or one of nothing but '_', is replaced by fallback
 *     (itself made safe; "unnamed" if that is no better)
 *
 * Letters, digits, marks, punctuation and symbols of every script stay:
 * a Chinese subject stays readable.
 */
#ifndef CUSTOS_SAFENAME_H
#define CUSTOS_SAFENAME_H

#include <stddef.h>

#define SAFENAME_DASH 1         /* white space runs become '-', not ' ' */

/* The smallest max_bytes honoured (room for "_CON" and a character). */
#define SAFENAME_MIN_BYTES 8

/* A safe file name from len bytes of in (any bytes); max_bytes < 8 is
 * taken as 8. Never NULL; g_free it. */
char *safename(const char *in, size_t len, size_t max_bytes, const char *fallback,
               unsigned flags);

/* 1 if name is what safename() could return (same rules, checked). */
int safename_ok(const char *name, size_t max_bytes);

#endif
