/*
 * util.c - small helpers shared by every custos module
 *
 * Errors as 0/-1 with an allocated message; atomic file writes (temp name,
 * fsync, rename, directory fsync); hex; UTF-8 repair; JSON strings.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/util.h"

int cus_error(char **error_r, const char *fmt, ...)
{
    va_list ap;

    if (error_r != NULL) {
        va_start(ap, fmt);
        *error_r = g_strdup_vprintf(fmt, ap);
        va_end(ap);
    }
    return -1;
}

int cus_error_errno(char **error_r, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;
    char *msg;

    if (error_r != NULL) {
        va_start(ap, fmt);
        msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        *error_r = g_strdup_printf("%s: %s", msg, g_strerror(saved));
        g_free(msg);
    }
    errno = saved;
    return -1;
}

int cus_is_ascii(const char *buf, size_t len)
{
    guint64 acc = 0, w;
    size_t i = 0;

    for (; i + 32 <= len; i += 32) {
        guint64 a, b, c, d;
        memcpy(&a, buf + i, 8);
        memcpy(&b, buf + i + 8, 8);
        memcpy(&c, buf + i + 16, 8);
        memcpy(&d, buf + i + 24, 8);
        acc |= a | b | c | d;
        if (acc & G_GUINT64_CONSTANT(0x8080808080808080))
            return 0;
    }
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, buf + i, 8);
        acc |= w;
    }
    for (; i < len; i++)
        acc |= (guchar)buf[i];
    return (acc & G_GUINT64_CONSTANT(0x8080808080808080)) == 0;
}

void cus_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Hex digit values plus one; 0 for anything else. */
static const unsigned char xdigits[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
    ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int xdigit(unsigned char c)
{
    return (int)xdigits[c] - 1;
}

int cus_unhex(const char *hex, unsigned char *out, size_t len)
{
    if (cus_unhex_n(hex, out, len) < 0)
        return -1;
    return hex[2 * len] == '\0' ? 0 : -1;
}

int cus_unhex_n(const char *hex, unsigned char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = xdigit((unsigned char)hex[2 * i]);
        int lo = hi < 0 ? -1 : xdigit((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

char *cus_utf8_repair(const char *buf, size_t len)
{
    GString *out = g_string_sized_new(len + 1);
    const char *p = buf, *end = buf + len, *bad;

    while (p < end) {
        if (g_utf8_validate(p, end - p, &bad)) {
            bad = end;
        }
        /* copy the valid prefix, minus NUL bytes */
        for (const char *q = p; q < bad; q++)
            if (*q != '\0')
                g_string_append_c(out, *q);
        if (bad >= end)
            break;
        if (*bad != '\0')
            g_string_append(out, "\xEF\xBF\xBD");
        p = bad + 1;
    }
    return g_string_free(out, FALSE);
}

int cus_read_file(const char *path, size_t max, GBytes **data_r, char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t got = 0;

    if (fd < 0)
        return cus_error_errno(error_r, "open(%s) failed", path);
    if (fstat(fd, &st) < 0) {
        cus_error_errno(error_r, "fstat(%s) failed", path);
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return cus_error(error_r, "%s: is a directory", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return cus_error(error_r, "%s: %llu bytes, more than the limit of %zu",
                         path, (unsigned long long)st.st_size, max);
    }
    buf = g_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cus_error_errno(error_r, "read(%s) failed", path);
            g_free(buf);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *data_r = g_bytes_new_take(buf, got);
    return 0;
}

int cus_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cus_fsync_dir(const char *dir, char **error_r)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return cus_error_errno(error_r, "open(%s) failed", dir);
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s) failed", dir);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int cus_write_file_atomic(const char *path, const void *data, size_t len,
                          int mode, char **error_r)
{
    char *tmp = g_strdup_printf("%s.tmp.%ld", path, (long)getpid());
    char *dir = g_path_get_dirname(path);
    int fd, ret = -1;

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        cus_error_errno(error_r, "open(%s) failed", tmp);
        goto out;
    }
    if (cus_write_all(fd, data, len) < 0) {
        cus_error_errno(error_r, "write(%s) failed", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s) failed", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", tmp, path);
        unlink(tmp);
        goto out;
    }
    ret = cus_fsync_dir(dir, error_r);
out:
    g_free(tmp);
    g_free(dir);
    return ret;
}

int cus_mkdirs(const char *path, int mode, char **error_r)
{
    if (g_mkdir_with_parents(path, mode) < 0)
        return cus_error_errno(error_r, "mkdir(%s) failed", path);
    return 0;
}

void cus_iso8601(gint64 t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        g_strlcpy(buf, "", size);
}

void cus_json_str(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (*p < 0x20)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
}

double cus_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

locale_t cus_utf8_locale(void)
{
    static gsize once;
    static locale_t loc;

    if (g_once_init_enter(&once)) {
        locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        if (l == (locale_t)0)
            l = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
        loc = l;
        g_once_init_leave(&once, 1);
    }
    return loc;
}
