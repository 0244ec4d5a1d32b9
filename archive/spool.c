/*
 * spool.c - the durable spool between custos-milter and the archive
 *
 * Writer: SPOOL/tmp/ID, written, fsync'd, closed, renamed to SPOOL/new/ID,
 * then SPOOL/new/ fsync'd; on any error the temp file (or the renamed
 * entry, if only the directory fsync failed) is removed. Reader: the whole
 * file in memory, parsed strictly (spool.h); the parser never reads past
 * the buffer it is given and names the header line of every error. Failed
 * entries are renamed, never deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/spool.h"

#define SPOOL_MODE_DIR 0770
#define SPOOL_MODE_FILE 0640

enum { K_TIME, K_CLIENT, K_SENDER, K_RCPT, K_QUEUE_ID, K_SOURCE, K_SIZE, K_SHA256, K_N };

static const struct {
    const char *name;
    int many;               /* may repeat, may be absent */
} spool_keys[K_N] = {
    [K_TIME] = { "time", 0 },       [K_CLIENT] = { "client", 0 },
    [K_SENDER] = { "sender", 0 },   [K_RCPT] = { "rcpt", 1 },
    [K_QUEUE_ID] = { "queue-id", 0 }, [K_SOURCE] = { "source", 0 },
    [K_SIZE] = { "size", 0 },       [K_SHA256] = { "sha256", 0 },
};

static char *sub_path(const char *spool_dir, const char *sub, const char *name)
{
    return g_build_filename(spool_dir, sub, name, NULL);
}

/* 1..max decimal digits: an unsigned number. */
static int digits(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int spool_id_valid(const char *id)
{
    const char *p = id, *dot;
    size_t n;

    if (id == NULL || strlen(id) > SPOOL_ID_MAX)
        return 0;
    /* TIME. USEC. PID. */
    for (int part = 0; part < 3; part++) {
        static const size_t maxlen[] = { 19, 6, 10 };
        dot = strchr(p, '.');
        if (dot == NULL)
            return 0;
        n = (size_t)(dot - p);
        if (!digits(p, n, maxlen[part]) || (part == 1 && n != 6))
            return 0;
        p = dot + 1;
    }
    if (strlen(p) != 16)
        return 0;
    for (; *p != '\0'; p++)
        if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
            return 0;
    return 1;
}

int spool_init(const char *spool_dir, char **error_r)
{
    static const char *subs[] = { "tmp", "new", "failed" };

    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *p = g_build_filename(spool_dir, subs[i], NULL);
        int ret = cus_mkdirs(p, SPOOL_MODE_DIR, error_r);

        g_free(p);
        if (ret < 0)
            return -1;
    }
    return 0;
}

/* Append a header value, escaped; invalid UTF-8 repaired first. */
static void put_value(GString *h, const char *key, const char *v)
{
    char *u = cus_utf8_repair(v != NULL ? v : "", v != NULL ? strlen(v) : 0);

    g_string_append(h, key);
    g_string_append_c(h, ' ');
    for (const char *p = u; *p != '\0'; p++) {
        switch (*p) {
        case '%': g_string_append(h, "%25"); break;
        case '\r': g_string_append(h, "%0D"); break;
        case '\n': g_string_append(h, "%0A"); break;
        default: g_string_append_c(h, *p);
        }
    }
    g_string_append_c(h, '\n');
    g_free(u);
}

/* A fresh id: TIME.USEC.PID.RANDOM16HEX. */
static void new_id(char id[SPOOL_ID_MAX + 1])
{
    gint64 now = g_get_real_time();

    g_snprintf(id, SPOOL_ID_MAX + 1, "%" G_GINT64_FORMAT ".%06d.%ld.%08x%08x",
               now / G_USEC_PER_SEC, (int)(now % G_USEC_PER_SEC), (long)getpid(),
               g_random_int(), g_random_int());
}

int spool_write(const char *spool_dir, const struct spool_entry *e, char *id_r,
                char **error_r)
{
    unsigned char sha[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX], id[SPOOL_ID_MAX + 1];
    char *tmp = NULL, *dst = NULL, *newdir = NULL;
    const void *raw;
    gsize len = 0;
    GString *h;
    int fd = -1, ret = -1;

    raw = e->raw != NULL ? g_bytes_get_data(e->raw, &len) : NULL;
    if (raw == NULL)
        raw = "";
    if (e->time < 0)
        return cus_error(error_r, "spool: negative receive time %" G_GINT64_FORMAT, e->time);
    if (len > SPOOL_SIZE_MAX)
        return cus_error(error_r, "spool: message of %zu bytes is over the limit of %llu",
                         (size_t)len, (unsigned long long)SPOOL_SIZE_MAX);
    cus_sha256(raw, len, sha);
    cus_hex(sha, CUS_SHA256_LEN, hex);
    h = g_string_sized_new(512);
    g_string_append(h, SPOOL_MAGIC "\n");
    g_string_append_printf(h, "time %" G_GINT64_FORMAT "\n", e->time);
    put_value(h, "client", e->client);
    put_value(h, "sender", e->sender);
    for (int i = 0; e->rcpts != NULL && e->rcpts[i] != NULL; i++)
        put_value(h, "rcpt", e->rcpts[i]);
    put_value(h, "queue-id", e->queue_id);
    put_value(h, "source", e->source);
    g_string_append_printf(h, "size %zu\nsha256 %s\n\n", (size_t)len, hex);
    if (h->len > SPOOL_HEADER_MAX) {
        cus_error(error_r, "spool: envelope of %zu bytes is over the limit of %d",
                  h->len, SPOOL_HEADER_MAX);
        goto out;
    }
    newdir = g_build_filename(spool_dir, "new", NULL);
    for (int tries = 0; fd < 0; tries++) {
        new_id(id);
        g_free(tmp);
        tmp = sub_path(spool_dir, "tmp", id);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_MODE_FILE);
        if (fd < 0 && (errno != EEXIST || tries >= 10)) {
            cus_error_errno(error_r, "open(%s) failed", tmp);
            goto out;
        }
    }
    if (cus_write_all(fd, h->str, h->len) < 0 || cus_write_all(fd, raw, len) < 0) {
        cus_error_errno(error_r, "write(%s) failed", tmp);
        goto out_unlink;
    }
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s) failed", tmp);
        goto out_unlink;
    }
    if (close(fd) < 0) {
        fd = -1;
        cus_error_errno(error_r, "close(%s) failed", tmp);
        goto out_unlink;
    }
    fd = -1;
    dst = sub_path(spool_dir, "new", id);
    if (rename(tmp, dst) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", tmp, dst);
        goto out_unlink;
    }
    if (cus_fsync_dir(newdir, error_r) < 0) {
        /* Not promised durable: take it back, the caller will retry. */
        unlink(dst);
        goto out;
    }
    if (id_r != NULL)
        memcpy(id_r, id, sizeof(id));
    ret = 0;
    goto out;
out_unlink:
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    g_string_free(h, TRUE);
    g_free(tmp);
    g_free(dst);
    g_free(newdir);
    return ret;
}

/* Printable, bounded form of untrusted bytes for an error message. */
static char *show(const char *s, size_t len)
{
    char *cut = g_strndup(s, MIN(len, 40));
    char *esc = g_strescape(cut, NULL);
    char *ret = g_strdup_printf("\"%s\"%s", esc, len > 40 ? "..." : "");

    g_free(cut);
    g_free(esc);
    return ret;
}

static int parse_error(char **error_r, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int parse_error(char **error_r, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (error_r == NULL)
        return -1;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (key != NULL)
        *error_r = g_strdup_printf("line %d (%s): %s", line, key, msg);
    else
        *error_r = g_strdup_printf("line %d: %s", line, msg);
    g_free(msg);
    return -1;
}

/* Unescape a value; it must be valid UTF-8 with no NUL. */
static int parse_value(const char *v, size_t len, int line, const char *key, char **out_r,
                       char **error_r)
{
    GString *s = g_string_sized_new(len + 1);

    for (size_t i = 0; i < len; i++) {
        if (v[i] == '%') {
            char *bad;
            if (len - i >= 3 && memcmp(v + i, "%25", 3) == 0)
                g_string_append_c(s, '%');
            else if (len - i >= 3 && memcmp(v + i, "%0D", 3) == 0)
                g_string_append_c(s, '\r');
            else if (len - i >= 3 && memcmp(v + i, "%0A", 3) == 0)
                g_string_append_c(s, '\n');
            else if (len - i >= 3 && memcmp(v + i, "%00", 3) == 0) {
                g_string_free(s, TRUE);
                return parse_error(error_r, line, key,
                                   "a NUL byte (%%00) in the value: envelope values are text");
            } else {
                bad = show(v + i, MIN(len - i, 3));
                parse_error(error_r, line, key, "bad escape %s (only %%25 %%0D %%0A)", bad);
                g_free(bad);
                g_string_free(s, TRUE);
                return -1;
            }
            i += 2;
        } else if (v[i] == '\r') {
            g_string_free(s, TRUE);
            return parse_error(error_r, line, key,
                               "a raw CR in the header (written %%0D; lines end in LF only)");
        } else if (v[i] == '\0') {
            g_string_free(s, TRUE);
            return parse_error(error_r, line, key, "a raw NUL byte in the header");
        } else {
            g_string_append_c(s, v[i]);
        }
    }
    if (!g_utf8_validate(s->str, (gssize)s->len, NULL)) {
        g_string_free(s, TRUE);
        return parse_error(error_r, line, key, "the value is not valid UTF-8");
    }
    *out_r = g_string_free(s, FALSE);
    return 0;
}

static int parse_number(const char *v, size_t len, int line, const char *key,
                        guint64 max, guint64 *n_r, char **error_r)
{
    guint64 n = 0;

    if (!digits(v, len, 19)) {
        char *bad = show(v, len);
        parse_error(error_r, line, key, "%s %s", bad,
                    digits(v, len, len) ? "has too many digits" : "is not a number");
        g_free(bad);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        n = n * 10 + (guint64)(v[i] - '0');
    if (n > max)
        return parse_error(error_r, line, key, "%" G_GUINT64_FORMAT " is over the limit of %"
                           G_GUINT64_FORMAT, n, max);
    *n_r = n;
    return 0;
}

static int lower_hex(const char *v, size_t len)
{
    if (len != 2 * CUS_SHA256_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isdigit(v[i]) && !(v[i] >= 'a' && v[i] <= 'f'))
            return 0;
    return 1;
}

/* Parse the file in data (borrowed; the entry's raw shares it). */
static int parse_bytes(GBytes *data, struct spool_entry **e_r, char **error_r)
{
    gsize len;
    const char *buf = g_bytes_get_data(data, &len);
    const size_t mlen = strlen(SPOOL_MAGIC);
    struct spool_entry *e = g_new0(struct spool_entry, 1);
    GPtrArray *rcpts = g_ptr_array_new_with_free_func(g_free);
    unsigned char sha[CUS_SHA256_LEN], want[CUS_SHA256_LEN];
    guint64 num, size = 0;
    int line = 1, next = 0, size_line = 0, sha_line = 0, ret = -1;
    size_t pos;

    if (buf == NULL)
        buf = "";
    if (len < mlen + 1 || memcmp(buf, SPOOL_MAGIC "\n", mlen + 1) != 0) {
        if (len >= 13 && memcmp(buf, "CUSTOS-SPOOL ", 13) == 0) {
            const char *nl = memchr(buf, '\n', len);
            char *v = show(buf + 13, (nl != NULL ? (size_t)(nl - buf) : len) - 13);
            parse_error(error_r, 1, NULL, "spool format version %s not supported (only 1)", v);
            g_free(v);
        } else {
            parse_error(error_r, 1, NULL, "not a custos spool entry (expected \"%s\")",
                        SPOOL_MAGIC);
        }
        goto out;
    }
    pos = mlen + 1;
    for (;;) {
        const char *l = buf + pos, *nl, *sp;
        size_t llen, klen;
        int k;

        line++;
        if (pos >= len) {
            parse_error(error_r, line, NULL,
                        "the file ends inside the header (truncated entry)");
            goto out;
        }
        nl = memchr(l, '\n', len - pos);
        if (nl == NULL) {
            parse_error(error_r, line, NULL,
                        "no newline at the end of the line (truncated entry)");
            goto out;
        }
        llen = (size_t)(nl - l);
        pos += llen + 1;
        if (pos > SPOOL_HEADER_MAX) {
            parse_error(error_r, line, NULL, "the header is longer than %d bytes",
                        SPOOL_HEADER_MAX);
            goto out;
        }
        if (llen == 0)
            break;
        sp = memchr(l, ' ', llen);
        klen = sp != NULL ? (size_t)(sp - l) : llen;
        for (k = 0; k < K_N; k++)
            if (strlen(spool_keys[k].name) == klen && memcmp(spool_keys[k].name, l, klen) == 0)
                break;
        if (k == K_N) {
            char *bad = show(l, klen);
            parse_error(error_r, line, NULL, "unknown key %s", bad);
            g_free(bad);
            goto out;
        }
        if (sp == NULL) {
            parse_error(error_r, line, spool_keys[k].name,
                        "no space after the key (an empty value is written \"%s \")",
                        spool_keys[k].name);
            goto out;
        }
        if (k < next) {
            parse_error(error_r, line, spool_keys[k].name,
                        "key repeated or out of order (expected \"%s\")",
                        next < K_N ? spool_keys[next].name : "the empty line");
            goto out;
        }
        for (int skip = next; skip < k; skip++) {
            if (!spool_keys[skip].many) {
                parse_error(error_r, line, spool_keys[k].name, "missing key \"%s\" before it",
                            spool_keys[skip].name);
                goto out;
            }
        }
        next = spool_keys[k].many ? k : k + 1;
        {
            const char *v = sp + 1, *key = spool_keys[k].name;
            size_t vlen = llen - klen - 1;
            char *s = NULL;

            switch (k) {
            case K_TIME:
                if (parse_number(v, vlen, line, key, G_MAXINT64, &num, error_r) < 0)
                    goto out;
                e->time = (gint64)num;
                break;
            case K_SIZE:
                if (parse_number(v, vlen, line, key, SPOOL_SIZE_MAX, &size, error_r) < 0)
                    goto out;
                size_line = line;
                break;
            case K_SHA256: {
                char hx[CUS_SHA256_HEX];
                if (!lower_hex(v, vlen)) {
                    parse_error(error_r, line, key, "expected 64 lower-case hex digits");
                    goto out;
                }
                memcpy(hx, v, 2 * CUS_SHA256_LEN);
                hx[2 * CUS_SHA256_LEN] = '\0';
                cus_unhex(hx, want, CUS_SHA256_LEN);
                sha_line = line;
                break;
            }
            default:
                if (parse_value(v, vlen, line, key, &s, error_r) < 0)
                    goto out;
                if (k == K_CLIENT)
                    e->client = s;
                else if (k == K_SENDER)
                    e->sender = s;
                else if (k == K_QUEUE_ID)
                    e->queue_id = s;
                else if (k == K_SOURCE)
                    e->source = s;
                else
                    g_ptr_array_add(rcpts, s);
            }
        }
    }
    for (int k = next; k < K_N; k++) {
        if (!spool_keys[k].many) {
            parse_error(error_r, line, NULL, "missing key \"%s\" before the empty line",
                        spool_keys[k].name);
            goto out;
        }
    }
    if (size > len - pos) {
        parse_error(error_r, size_line, "size", "%" G_GUINT64_FORMAT " bytes declared, only %zu"
                    " follow the header (truncated entry)", size, len - pos);
        goto out;
    }
    if (size < len - pos) {
        parse_error(error_r, size_line, "size", "%" G_GUINT64_FORMAT " bytes declared, %zu"
                    " follow the header (trailing bytes)", size, len - pos);
        goto out;
    }
    cus_sha256(buf + pos, (size_t)size, sha);
    if (memcmp(sha, want, CUS_SHA256_LEN) != 0) {
        char hex[CUS_SHA256_HEX];
        cus_hex(sha, CUS_SHA256_LEN, hex);
        parse_error(error_r, sha_line, "sha256", "does not match the message (its SHA-256 is %s)",
                    hex);
        goto out;
    }
    e->raw = g_bytes_new_from_bytes(data, pos, (gsize)size);
    g_ptr_array_add(rcpts, NULL);
    e->rcpts = (char **)g_ptr_array_free(rcpts, FALSE);
    rcpts = NULL;
    *e_r = e;
    e = NULL;
    ret = 0;
out:
    if (rcpts != NULL)
        g_ptr_array_free(rcpts, TRUE);
    spool_entry_free(&e);
    return ret;
}

int spool_parse(const void *buf, size_t len, struct spool_entry **e_r, char **error_r)
{
    GBytes *data = g_bytes_new(buf, len);
    int ret = parse_bytes(data, e_r, error_r);

    g_bytes_unref(data);
    return ret;
}

int spool_read(const char *spool_dir, const char *id, struct spool_entry **e_r,
               char **error_r)
{
    GBytes *data = NULL;
    char *path, *err = NULL;
    int ret, saved;

    if (!spool_id_valid(id)) {
        errno = EINVAL;
        return cus_error(error_r, "spool: \"%s\" is not a spool id", id);
    }
    path = sub_path(spool_dir, "new", id);
    errno = 0;
    ret = cus_read_file(path, SPOOL_HEADER_MAX + SPOOL_SIZE_MAX, &data, error_r);
    /* errno is only the system's when a call failed (not: too big, a
     * directory): never a stale ENOENT */
    saved = ret < 0 && errno == 0 ? EINVAL : errno;
    if (ret == 0) {
        ret = parse_bytes(data, e_r, &err);
        if (ret < 0) {
            cus_error(error_r, "%s: %s", path, err);
            saved = EINVAL;
        } else {
            g_strlcpy((*e_r)->id, id, sizeof((*e_r)->id));
        }
        g_bytes_unref(data);
    }
    g_free(err);
    g_free(path);
    errno = saved;
    return ret;
}

/* Oldest first: TIME and USEC as numbers, then the whole name. */
static gint id_cmp(gconstpointer a, gconstpointer b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    guint64 tx = g_ascii_strtoull(x, NULL, 10), ty = g_ascii_strtoull(y, NULL, 10);

    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(strchr(x, '.'), strchr(y, '.'));
}

int spool_list(const char *spool_dir, GPtrArray **ids_r, char **error_r)
{
    char *dir = g_build_filename(spool_dir, "new", NULL);
    GError *gerr = NULL;
    GDir *d = g_dir_open(dir, 0, &gerr);
    GPtrArray *ids;
    const char *n;

    if (d == NULL) {
        cus_error(error_r, "spool: cannot read %s: %s", dir, gerr->message);
        g_error_free(gerr);
        g_free(dir);
        return -1;
    }
    ids = g_ptr_array_new_with_free_func(g_free);
    while ((n = g_dir_read_name(d)) != NULL)
        if (spool_id_valid(n))
            g_ptr_array_add(ids, g_strdup(n));
    g_dir_close(d);
    g_free(dir);
    g_ptr_array_sort(ids, id_cmp);
    *ids_r = ids;
    return 0;
}

int spool_remove(const char *spool_dir, const char *id, char **error_r)
{
    char *path;
    int ret = 0;

    if (!spool_id_valid(id))
        return cus_error(error_r, "spool: \"%s\" is not a spool id", id);
    path = sub_path(spool_dir, "new", id);
    if (unlink(path) < 0 && errno != ENOENT)
        ret = cus_error_errno(error_r, "unlink(%s) failed", path);
    g_free(path);
    return ret;
}

int spool_sync(const char *spool_dir, char **error_r)
{
    char *dir = g_build_filename(spool_dir, "new", NULL);
    int ret = cus_fsync_dir(dir, error_r);

    g_free(dir);
    return ret;
}

int spool_fail(const char *spool_dir, const char *id, const char *reason, char **error_r)
{
    char *src = NULL, *dst = NULL, *rpath = NULL, *text = NULL, *rname = NULL;
    char *faildir = g_build_filename(spool_dir, "failed", NULL);
    int ret = -1;

    if (!spool_id_valid(id)) {
        cus_error(error_r, "spool: \"%s\" is not a spool id", id);
        goto out;
    }
    src = sub_path(spool_dir, "new", id);
    dst = sub_path(spool_dir, "failed", id);
    rname = g_strconcat(id, ".reason", NULL);
    rpath = sub_path(spool_dir, "failed", rname);
    /* The reason first: a crash in between leaves the entry in new/, tried
     * again next time, rather than an entry in failed/ with no reason. */
    if (access(src, F_OK) < 0) {
        cus_error_errno(error_r, "spool: cannot move %s to failed/", src);
        goto out;
    }
    text = g_strdup_printf("%s\n", reason != NULL ? reason : "");
    if (cus_write_file_atomic(rpath, text, strlen(text), SPOOL_MODE_FILE, error_r) < 0)
        goto out;
    if (rename(src, dst) < 0) {
        cus_error_errno(error_r, "rename(%s, %s) failed", src, dst);
        unlink(rpath);
        goto out;
    }
    if (cus_fsync_dir(faildir, error_r) < 0 || spool_sync(spool_dir, error_r) < 0)
        goto out;
    ret = 0;
out:
    g_free(src);
    g_free(dst);
    g_free(rpath);
    g_free(rname);
    g_free(text);
    g_free(faildir);
    return ret;
}

void spool_entry_free(struct spool_entry **ep)
{
    struct spool_entry *e = *ep;

    if (e == NULL)
        return;
    g_free(e->client);
    g_free(e->sender);
    g_free(e->queue_id);
    g_free(e->source);
    g_strfreev(e->rcpts);
    if (e->raw != NULL)
        g_bytes_unref(e->raw);
    g_free(e);
    *ep = NULL;
}
