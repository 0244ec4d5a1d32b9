/*
 * import.c - .eml, mbox, Maildir, directories, and zip/tar of those
 *
 * Files are mapped read-only; mbox files are split on "From " lines that
 * start the file or follow an empty line, keeping every byte of each
 * message (no >From unquoting: the archive keeps what the mbox holds).
 * Archives are read with libarchive in memory, nested archives and mboxes
 * inside them included; member names are only ever used in messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>
#include "custos/export.h"
#include "custos/import.h"
#include "custos/log.h"
#include "custos/util.h"

#define IMP_MEMBER_MAX (1ULL << 30)     /* one archive member read at most */
#define IMP_NEST_MAX 4                  /* archives inside archives */

struct imp {
    struct arc *arc;
    struct imp_stats *st;
    imp_progress_cb *cb;
    void *ctx;
    double last_cb;
    char *source;           /* "import:PATH" of the current top-level path */
    struct arc_pipe *pipe;  /* parses in worker threads, writes in order */
};

static int imp_buffer(struct imp *im, const char *where, const char *buf, size_t len,
                      int depth, char **error_r);
static int imp_archive_in(struct imp *im, const char *where, const char *buf, size_t len,
                          int depth, char **error_r);

static void imp_progress(struct imp *im)
{
    double now;

    if (im->cb == NULL)
        return;
    now = cus_now();
    if (now - im->last_cb < 0.25)
        return;
    im->last_cb = now;
    im->cb(im->ctx, im->st);
}

/* Called in order for each message written (or not) to the archive. */
static void imp_done(void *ctx, const char *where, int ret, gint64 id, int dup)
{
    struct imp *im = ctx;

    if (ret < 0)
        im->st->skipped++;
    else if (dup)
        im->st->dups++;
    else
        im->st->added++;
    imp_progress(im);
}

/* Hand one message to the archive; -1 only when the archive failed. */
static int imp_message(struct imp *im, const char *where, const char *buf, size_t len,
                       char **error_r)
{
    struct idx_envelope env = { 0 };
    GBytes *raw;
    int ret;

    im->st->messages++;
    if (len == 0) {
        log_warn("%s: empty message, skipped", where);
        im->st->skipped++;
        return 0;
    }
    env.time = (gint64)time(NULL);
    env.source = im->source;
    raw = g_bytes_new(buf, len);
    ret = arc_pipe_add(im->pipe, raw, &env, where, error_r);
    g_bytes_unref(raw);
    im->st->bytes += len;
    return ret;
}

static int is_mbox(const char *buf, size_t len)
{
    return len >= 5 && memcmp(buf, "From ", 5) == 0;
}

/* Split an mbox into messages. */
static int imp_mbox(struct imp *im, const char *where, const char *buf, size_t len,
                    char **error_r)
{
    const char *p = buf, *end = buf + len;
    guint64 n = 0;

    while (p < end) {
        const char *body = memchr(p, '\n', (size_t)(end - p)), *next, *stop;
        char *w;
        int ret;

        if (body == NULL)
            break;
        body++;
        /* The next separator: "\n\nFrom " (or "\r\n\r\nFrom "). */
        next = body;
        stop = end;
        while ((next = memmem(next, (size_t)(end - next), "\nFrom ", 6)) != NULL) {
            if (next > body && next[-1] == '\n') {
                stop = next;    /* keep the message's last newline */
                break;
            }
            if (next > body + 1 && next[-1] == '\r' && next[-2] == '\n') {
                stop = next - 1;
                break;
            }
            next++;
        }
        w = g_strdup_printf("%s (message %" G_GUINT64_FORMAT " at byte %zu)", where,
                            ++n, (size_t)(p - buf));
        ret = imp_message(im, w, body, (size_t)(stop - body), error_r);
        g_free(w);
        if (ret < 0)
            return -1;
        p = stop == end ? end : stop + 1;
        if (p < end && *p == '\n')
            p++;
    }
    return 0;
}

/* An mbox custos exported: each message's exact bytes (">From " quoting
 * undone), so that its SHA-256 is the one in the export's manifest. */
struct exp_ctx {
    struct imp *im;
    const char *where;
    guint64 n;
    char **error_r;
    int failed;
};

static int imp_export_msg(void *ctx, gint64 id, const void *raw, size_t len,
                          const char *problem)
{
    struct exp_ctx *x = ctx;
    char *w = g_strdup_printf("%s (message %" G_GUINT64_FORMAT ", archive id %" G_GINT64_FORMAT
                              ")", x->where, ++x->n, id);
    int ret = 0;

    if (problem != NULL) {
        log_warn("%s: %s, skipped", w, problem);
        x->im->st->skipped++;
    } else if (imp_message(x->im, w, raw, len, x->error_r) < 0) {
        x->failed = 1;
        ret = 1;
    }
    g_free(w);
    return ret;
}

static int imp_export_mbox(struct imp *im, const char *where, const char *buf, size_t len,
                           char **error_r)
{
    struct exp_ctx x = { im, where, 0, error_r, 0 };
    char *err = NULL;

    if (exp_mbox_each(buf, len, imp_export_msg, &x, &err) < 0) {
        log_warn("%s: %s; read as a plain mbox", where, err);
        g_free(err);
        return imp_mbox(im, where, buf, len, error_r);
    }
    return x.failed ? -1 : 0;
}

/* Not mail: binary data (a NUL byte in the first lines: an index, a
 * segment, a picture). Anything else is archived, raw if need be: mail
 * that is damaged or has no headers is still mail someone sent. */
static int looks_like_mail(const char *buf, size_t len)
{
    return memchr(buf, '\0', MIN(len, 512)) == NULL;
}

/* The evidence files an mbox export has beside it (FILE.manifest.csv, ...,
 * export.h): skipped when FILE is there too. */
static int is_export_sidecar(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    for (const char *dot = strchr(base, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        if (dot > base && exp_evidence_name(dot + 1)) {
            char *mbox = g_strndup(path, (size_t)(dot - path));
            int there = access(mbox, F_OK) == 0;

            g_free(mbox);
            if (there)
                return 1;
        }
    }
    return 0;
}

/* Dot files and Maildir/Dovecot bookkeeping: never mail. */
static int is_bookkeeping(const char *base)
{
    return *base == '.' || strncmp(base, "dovecot", 7) == 0 ||
           strcmp(base, "maildirfolder") == 0;
}

/* Read every member of an archive in memory. */
static int imp_archive(struct imp *im, const char *where, const char *buf, size_t len,
                       int depth, char **error_r)
{
    locale_t loc = cus_utf8_locale(), old = loc != (locale_t)0 ? uselocale(loc) : (locale_t)0;
    int ret = imp_archive_in(im, where, buf, len, depth, error_r);

    if (old != (locale_t)0)
        uselocale(old);
    return ret;
}

static int imp_archive_in(struct imp *im, const char *where, const char *buf, size_t len,
                          int depth, char **error_r)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int rc, ret = 0;

    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
        log_warn("%s: not a readable archive: %s", where, archive_error_string(a));
        im->st->skipped++;
        archive_read_free(a);
        return 0;
    }
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname_utf8(e);
        char *w, *mbuf;
        la_int64_t size = archive_entry_size(e);
        GByteArray *data;
        char chunk[65536];
        la_ssize_t n;

        if (name == NULL)
            name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;
        if (name != NULL && is_bookkeeping(strrchr(name, '/') ? strrchr(name, '/') + 1 : name))
            continue;
        /* An evidence export (custos-archive export): its manifest,
         * checksums, chain events and statement are not mail. */
        if (name != NULL && exp_evidence_name(name)) {
            log_debug("%s/%s: evidence file of an export, not mail: skipped", where, name);
            continue;
        }
        w = g_strdup_printf("%s/%s", where, name ? name : "?");
        data = g_byte_array_sized_new(size > 0 && size < (1 << 26) ? (guint)size : 65536);
        while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
            if (data->len + (guint64)n > IMP_MEMBER_MAX)
                break;
            g_byte_array_append(data, (guint8 *)chunk, (guint)n);
        }
        if (n < 0 || data->len + 0ULL >= IMP_MEMBER_MAX) {
            log_warn("%s: cannot read member: %s", w,
                     n < 0 ? archive_error_string(a) : "larger than 1 GiB");
            im->st->skipped++;
        } else {
            mbuf = (char *)data->data;
            if (imp_buffer(im, w, mbuf, data->len, depth + 1, error_r) < 0)
                ret = -1;
        }
        g_byte_array_free(data, TRUE);
        g_free(w);
        if (ret < 0)
            break;
    }
    if (ret == 0 && rc != ARCHIVE_EOF) {
        log_warn("%s: archive damaged: %s", where, archive_error_string(a));
        im->st->skipped++;
    }
    archive_read_free(a);
    return ret;
}

/* Does buf look like an archive or compressed file libarchive reads? */
static int is_archive(const char *b, size_t len)
{
    static const struct { const char *magic; size_t n; size_t off; } m[] = {
        { "PK\003\004", 4, 0 }, { "PK\005\006", 4, 0 }, { "\037\213", 2, 0 },
        { "BZh", 3, 0 }, { "\3757zXZ\0", 6, 0 }, { "7z\274\257\047\034", 6, 0 },
        { "\050\265\057\375", 4, 0 }, { "ustar", 5, 257 }, { "Rar!\032\007", 6, 0 },
    };

    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (len >= m[i].off + m[i].n && memcmp(b + m[i].off, m[i].magic, m[i].n) == 0)
            return 1;
    return 0;
}

static int imp_buffer(struct imp *im, const char *where, const char *buf, size_t len,
                      int depth, char **error_r)
{
    if (is_archive(buf, len)) {
        if (depth >= IMP_NEST_MAX) {
            log_warn("%s: archive nested deeper than %d, skipped", where, IMP_NEST_MAX);
            im->st->skipped++;
            return 0;
        }
        return imp_archive(im, where, buf, len, depth, error_r);
    }
    if (exp_mbox_is_export(buf, len))
        return imp_export_mbox(im, where, buf, len, error_r);
    if (is_mbox(buf, len))
        return imp_mbox(im, where, buf, len, error_r);
    if (!looks_like_mail(buf, len)) {
        log_warn("%s: not a mail message (binary data), skipped", where);
        im->st->skipped++;
        return 0;
    }
    return imp_message(im, where, buf, len, error_r);
}

static int imp_file(struct imp *im, const char *path, char **error_r)
{
    int fd, ret;
    struct stat st;
    void *map;

    if (is_export_sidecar(path)) {
        log_debug("%s: evidence file of an mbox export, not mail: skipped", path);
        return 0;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        log_warn("%s: cannot open: %s", path, g_strerror(errno));
        im->st->skipped++;
        if (fd >= 0)
            close(fd);
        return 0;
    }
    if (st.st_size == 0) {
        log_warn("%s: empty file, skipped", path);
        im->st->skipped++;
        close(fd);
        return 0;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        log_warn("%s: cannot read: %s", path, g_strerror(errno));
        im->st->skipped++;
        return 0;
    }
    madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    ret = imp_buffer(im, path, map, (size_t)st.st_size, 0, error_r);
    munmap(map, (size_t)st.st_size);
    im->st->done_bytes += (guint64)st.st_size;
    return ret;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk a directory (Maildir or any tree) in name order. */
static int imp_dir(struct imp *im, const char *path, char **error_r)
{
    GDir *d;
    GError *gerr = NULL;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    int ret = 0;

    d = g_dir_open(path, 0, &gerr);
    if (d == NULL) {
        log_warn("%s: cannot read directory: %s", path, gerr->message);
        g_error_free(gerr);
        im->st->skipped++;
        g_ptr_array_free(names, TRUE);
        return 0;
    }
    while ((n = g_dir_read_name(d)) != NULL) {
        if (is_bookkeeping(n) || strcmp(n, "tmp") == 0 || strcmp(n, "subscriptions") == 0)
            continue;
        g_ptr_array_add(names, g_build_filename(path, n, NULL));
    }
    g_dir_close(d);
    qsort(names->pdata, names->len, sizeof(char *), name_cmp);
    for (guint i = 0; i < names->len && ret == 0; i++) {
        const char *p = g_ptr_array_index(names, i);
        struct stat st;

        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            ret = imp_dir(im, p, error_r);
        else if (S_ISREG(st.st_mode))
            ret = imp_file(im, p, error_r);
    }
    g_ptr_array_free(names, TRUE);
    return ret;
}

static guint64 measure(const char *path)
{
    struct stat st;
    guint64 sum = 0;
    GDir *d;
    const char *n;

    if (lstat(path, &st) < 0)
        return 0;
    if (S_ISREG(st.st_mode))
        return (guint64)st.st_size;
    if (!S_ISDIR(st.st_mode) || (d = g_dir_open(path, 0, NULL)) == NULL)
        return 0;
    while ((n = g_dir_read_name(d)) != NULL) {
        char *p;
        if (*n == '.')
            continue;
        p = g_build_filename(path, n, NULL);
        sum += measure(p);
        g_free(p);
    }
    g_dir_close(d);
    return sum;
}

guint64 imp_measure(char *const *paths, int n)
{
    guint64 sum = 0;

    for (int i = 0; i < n; i++)
        sum += measure(paths[i]);
    return sum;
}

int imp_path(struct arc *arc, const char *path, struct imp_stats *st,
             imp_progress_cb *cb, void *ctx, char **error_r)
{
    struct imp im = { arc, st, cb, ctx, 0, NULL, NULL };
    struct stat sb;
    char *abs;
    int ret;

    if (stat(path, &sb) < 0) {
        log_warn("%s: %s", path, g_strerror(errno));
        st->skipped++;
        return 0;
    }
    if (arc_pipe_new(arc, 0, imp_done, &im, &im.pipe, error_r) < 0)
        return -1;
    abs = g_canonicalize_filename(path, NULL);
    im.source = g_strdup_printf("import:%s", abs);
    g_free(abs);
    if (S_ISDIR(sb.st_mode))
        ret = imp_dir(&im, path, error_r);
    else
        ret = imp_file(&im, path, error_r);
    if (ret == 0)
        ret = arc_pipe_drain(im.pipe, error_r);
    arc_pipe_free(&im.pipe);
    g_free(im.source);
    return ret;
}
