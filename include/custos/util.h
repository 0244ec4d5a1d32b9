/*
 * util.h - small helpers shared by every custos module
 *
 * Error convention (everywhere in custos): a function returns 0 on success
 * and -1 on failure, and on failure stores a newly allocated message in
 * *error_r (when error_r is not NULL); the caller frees it with g_free().
 * The message names the input and what is wrong with it.
 */
#ifndef CUSTOS_UTIL_H
#define CUSTOS_UTIL_H

#include <locale.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#define CUS_SHA256_LEN 32
#define CUS_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* Set *error_r to a formatted message (if error_r) and return -1. */
int cus_error(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like cus_error() with ": strerror(errno)" appended. */
int cus_error_errno(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* SHA-256 of buf into out (OpenSSL). */
void cus_sha256(const void *buf, size_t len, unsigned char out[CUS_SHA256_LEN]);

/* OpenSSL's SHA-256 (an EVP_MD), fetched once: for EVP_DigestInit_ex2(),
 * which with EVP_sha256() would fetch it again, under a lock, every time.
 * NULL if OpenSSL has none. */
struct evp_md_st;
const struct evp_md_st *cus_sha256_md(void);

/* Lower-case hex of len bytes; out must hold 2*len+1 bytes. */
void cus_hex(const unsigned char *in, size_t len, char *out);

/* Parse exactly 2*len hex digits into out; 0 or -1. */
int cus_unhex(const char *hex, unsigned char *out, size_t len);
/* The same, for 2*len hex digits followed by anything. */
int cus_unhex_n(const char *hex, unsigned char *out, size_t len);

/* Are the len bytes of buf all ASCII (below 0x80)? Eight bytes a step:
 * this runs over whole message bodies. */
int cus_is_ascii(const char *buf, size_t len);

/* Return a valid UTF-8 copy of buf: invalid sequences become U+FFFD,
 * NUL bytes are dropped. Never NULL. */
char *cus_utf8_repair(const char *buf, size_t len);

/* Read a whole file (at most max bytes; more is an error). */
int cus_read_file(const char *path, size_t max, GBytes **data_r, char **error_r);

/* Write data to path atomically: temp file in the same directory, fsync,
 * rename, fsync of the directory. mode for the new file. */
int cus_write_file_atomic(const char *path, const void *data, size_t len,
                          int mode, char **error_r);

/* write() all of data, again after EINTR and short writes: 0, or -1 with
 * errno set. */
int cus_write_all(int fd, const void *data, size_t len);

/* fsync the directory that holds path (or path itself if a directory). */
int cus_fsync_dir(const char *dir, char **error_r);

/* mkdir -p with mode for every component created. */
int cus_mkdirs(const char *path, int mode, char **error_r);

/* Format unix time as ISO 8601 UTC ("2024-05-01T12:00:00Z") into buf (>= 21 bytes). */
void cus_iso8601(gint64 t, char *buf, size_t size);

/* Append s to out as a JSON string literal (with quotes). */
void cus_json_str(GString *out, const char *s);

/* Monotonic seconds. */
double cus_now(void);

/* A UTF-8 LC_CTYPE (C.UTF-8, else en_US.UTF-8), or (locale_t)0 if there
 * is none: libarchive converts member names through the locale's charset,
 * and in the C locale it can neither read nor write a name that is not
 * ASCII. Callers run libarchive under uselocale() of it (this thread). */
locale_t cus_utf8_locale(void);

#endif
