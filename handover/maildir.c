/*
 * maildir.c - reading a leaver's Maildir++, filling a successor's
 *
 * Reading lists folders and message files as Dovecot lays them out.
 * Writing puts each message in tmp/ under its final base name (derived
 * from its SHA-256, see handover-maildir.h), gives it to the Maildir's
 * owner with its mode and the source's mtime, and renames it into cur/ or
 * new/: a message is either whole in cur/new or not there. Nothing is
 * fsync'd per message (a copy of 50,000 messages must stay near cp -a): the
 * caller makes the whole copy durable at once (syncfs) before it says it
 * is done, and a file a crash cut short is recognised by its size and
 * written again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include "custos/handover-maildir.h"

#define HOV_TMP_TAG ".custos,S="    /* in every name we write */

/* ---- reading ---------------------------------------------------------------- */

void hov_folder_free(gpointer p)
{
    struct hov_folder *f = p;

    if (f == NULL)
        return;
    g_free(f->storage);
    g_free(f->display);
    g_free(f->path);
    g_free(f);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_mail_dirs(const char *dir)
{
    char *cur = g_build_filename(dir, "cur", NULL), *nw = g_build_filename(dir, "new", NULL);
    int ok = is_dir(cur) || is_dir(nw);

    g_free(cur);
    g_free(nw);
    return ok;
}

static gint folder_cmp(gconstpointer a, gconstpointer b)
{
    const struct hov_folder *x = *(const struct hov_folder *const *)a;
    const struct hov_folder *y = *(const struct hov_folder *const *)b;

    return strcmp(x->storage, y->storage);     /* "" (INBOX) first */
}

int hov_maildir_folders(const char *root, GPtrArray **folders_r, char **error_r)
{
    GPtrArray *out;
    DIR *d;
    struct dirent *de;
    struct hov_folder *f;

    if (!is_dir(root))
        return cus_error_errno(error_r, "mailbox %s", root);
    if (!has_mail_dirs(root))
        return cus_error(error_r, "mailbox %s is not a Maildir (no cur/ or new/ in it)", root);
    if ((d = opendir(root)) == NULL)
        return cus_error_errno(error_r, "mailbox %s: opendir", root);
    out = g_ptr_array_new_with_free_func(hov_folder_free);
    f = g_new0(struct hov_folder, 1);
    f->storage = g_strdup("");
    f->display = g_strdup("INBOX");
    f->path = g_strdup(root);
    g_ptr_array_add(out, f);
    while ((errno = 0, de = readdir(d)) != NULL) {
        char *path;

        if (de->d_name[0] != '.' || de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0)
            continue;
        path = g_build_filename(root, de->d_name, NULL);
        if (!is_dir(path) || !has_mail_dirs(path)) {
            g_free(path);
            continue;
        }
        f = g_new0(struct hov_folder, 1);
        f->storage = g_strdup(de->d_name + 1);
        f->display = hov_storage_display(f->storage);
        f->path = path;
        g_ptr_array_add(out, f);
    }
    if (errno != 0) {
        cus_error_errno(error_r, "mailbox %s: readdir", root);
        closedir(d);
        g_ptr_array_free(out, TRUE);
        return -1;
    }
    closedir(d);
    g_ptr_array_sort(out, folder_cmp);
    *folders_r = out;
    return 0;
}

void hov_mfile_free(gpointer p)
{
    struct hov_mfile *m = p;

    if (m == NULL)
        return;
    g_free(m->name);
    g_free(m->base);
    g_free(m->flags);
    g_free(m);
}

void hov_mfile_split(const char *name, char **base_r, char **flags_r)
{
    const char *info = g_strrstr(name, ":2,");
    const char *colon = strchr(name, ':');
    gboolean seen[128] = { 0 };
    GString *fl = g_string_new(NULL);

    if (info != NULL) {
        for (const char *p = info + 3; *p != '\0'; p++)
            if (g_ascii_isalpha(*p))
                seen[(unsigned char)*p] = TRUE;
        for (int c = 'A'; c <= 'z'; c++)
            if (seen[c])
                g_string_append_c(fl, (char)c);
    }
    /* ":1,..." (experimental info) or any other ':' ends the base too */
    *base_r = g_strndup(name, colon != NULL ? (gsize)(colon - name) : strlen(name));
    *flags_r = g_string_free(fl, FALSE);
}

static gint mfile_cmp(gconstpointer a, gconstpointer b)
{
    const struct hov_mfile *x = *(const struct hov_mfile *const *)a;
    const struct hov_mfile *y = *(const struct hov_mfile *const *)b;
    int c = strcmp(x->name, y->name);

    return c != 0 ? c : x->in_new - y->in_new;
}

int hov_maildir_messages(const char *folder, GPtrArray **files_r, gint64 *skipped_r,
                         char **error_r)
{
    static const char *const sub[] = { "cur", "new" };
    GPtrArray *out = g_ptr_array_new_with_free_func(hov_mfile_free);
    gint64 skipped = 0;

    for (int i = 0; i < 2; i++) {
        char *dir = g_build_filename(folder, sub[i], NULL);
        DIR *d = opendir(dir);
        struct dirent *de;
        int dfd;

        if (d == NULL) {
            if (errno == ENOENT) {
                g_free(dir);
                continue;
            }
            cus_error_errno(error_r, "mail folder %s: opendir", dir);
            g_free(dir);
            g_ptr_array_free(out, TRUE);
            return -1;
        }
        dfd = dirfd(d);
        while ((errno = 0, de = readdir(d)) != NULL) {
            struct stat st;
            struct hov_mfile *m;

            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (de->d_name[0] == '.' ||
                fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                !S_ISREG(st.st_mode)) {
                skipped++;
                continue;
            }
            m = g_new0(struct hov_mfile, 1);
            m->name = g_strdup(de->d_name);
            m->in_new = i == 1;
            hov_mfile_split(m->name, &m->base, &m->flags);
            if (m->in_new) {        /* new/ has no flags yet */
                g_free(m->flags);
                m->flags = g_strdup("");
            }
            g_ptr_array_add(out, m);
        }
        if (errno != 0) {
            cus_error_errno(error_r, "mail folder %s: readdir", dir);
            closedir(d);
            g_free(dir);
            g_ptr_array_free(out, TRUE);
            return -1;
        }
        closedir(d);
        g_free(dir);
    }
    g_ptr_array_sort(out, mfile_cmp);
    *files_r = out;
    if (skipped_r != NULL)
        *skipped_r = skipped;
    return 0;
}

/* ---- owner and modes ------------------------------------------------------------- */

int hov_owner_of(const char *root, struct hov_owner *o, char **error_r)
{
    struct stat st;

    if (stat(root, &st) < 0)
        return cus_error_errno(error_r, "mailbox %s", root);
    if (!S_ISDIR(st.st_mode))
        return cus_error(error_r, "mailbox %s is not a directory", root);
    o->uid = st.st_uid;
    o->gid = st.st_gid;
    o->dir_mode = st.st_mode & 07777;
    o->file_mode = o->dir_mode & 0666;
    if ((o->dir_mode & 0700) != 0700)
        return cus_error(error_r, "mailbox %s: its owner cannot use it (mode %04o)", root,
                         (unsigned)o->dir_mode);
    return 0;
}

static int give(int fd, const char *path, const struct hov_owner *o, mode_t mode,
                char **error_r)
{
    if (fchown(fd, o->uid, o->gid) < 0)
        return cus_error_errno(error_r, "chown(%s, %u:%u)", path, (unsigned)o->uid,
                               (unsigned)o->gid);
    if (fchmod(fd, mode) < 0)
        return cus_error_errno(error_r, "chmod(%s, %04o)", path, (unsigned)mode);
    return 0;
}

int hov_mkdir_owned(const char *path, const struct hov_owner *o, char **error_r)
{
    int fd, ret;

    if (mkdir(path, o->dir_mode & 0777) < 0 && errno != EEXIST)
        return cus_error_errno(error_r, "mkdir(%s)", path);
    if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0)
        return cus_error_errno(error_r, "open(%s)", path);
    ret = give(fd, path, o, o->dir_mode, error_r);
    close(fd);
    return ret;
}

int hov_write_owned(const char *path, const void *data, size_t len,
                    const struct hov_owner *o, char **error_r)
{
    char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
    char *tmp = g_strdup_printf("%s/.%s.custos-tmp.%d", dir, base, (int)getpid());
    struct stat st;
    uid_t uid = o->uid;
    gid_t gid = o->gid;
    mode_t mode = o->file_mode;
    int fd = -1, ret = -1;

    if (lstat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            cus_error(error_r, "%s is there and is not a regular file", path);
            goto out;
        }
        uid = st.st_uid;
        gid = st.st_gid;
        mode = st.st_mode & 07777;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        cus_error_errno(error_r, "open(%s)", tmp);
        goto out;
    }
    if (cus_write_all(fd, data, len) < 0) {
        cus_error_errno(error_r, "write(%s)", tmp);
        goto out;
    }
    if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
        cus_error_errno(error_r, "giving %s to %u:%u mode %04o", tmp, (unsigned)uid,
                        (unsigned)gid, (unsigned)mode);
        goto out;
    }
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s)", tmp);
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        cus_error_errno(error_r, "rename(%s, %s)", tmp, path);
        goto out;
    }
    ret = cus_fsync_dir(dir, error_r);
out:
    if (fd >= 0)
        close(fd);
    if (ret < 0)
        unlink(tmp);
    g_free(tmp);
    g_free(dir);
    g_free(base);
    return ret;
}

/* ---- a folder being filled ---------------------------------------------------------- */

struct hov_have {
    guint64 size;               /* S= of its name */
    char *dir, *name;           /* where it is */
};

struct hov_dest {
    char *path;                 /* the folder's directory */
    int fd_cur, fd_new, fd_tmp; /* its subdirectories */
    struct hov_owner o;
    GHashTable *have;           /* "24 hex" -> struct hov_have * */
    gint64 written;
    int no_tmpfile;             /* O_TMPFILE not supported here */
    int writeback;              /* start writing each file out at once */
};

static void have_free(gpointer p)
{
    struct hov_have *h = p;

    g_free(h->dir);
    g_free(h->name);
    g_free(h);
}

/* "MTIME.H<hex24>.custos,S=SIZE..." -> the hash part and SIZE; 0 or -1. */
static int our_name(const char *name, char hex_r[25], guint64 *size_r)
{
    const char *h = strstr(name, ".H"), *s;
    char *end;

    if (h == NULL || strlen(h) < 2 + 24 || strncmp(h + 26, HOV_TMP_TAG, strlen(HOV_TMP_TAG)) != 0)
        return -1;
    for (int i = 0; i < 24; i++)
        if (!g_ascii_isxdigit(h[2 + i]))
            return -1;
    memcpy(hex_r, h + 2, 24);
    hex_r[24] = '\0';
    s = h + 26 + strlen(HOV_TMP_TAG);
    *size_r = g_ascii_strtoull(s, &end, 10);
    return end == s ? -1 : 0;
}

static int scan_have(struct hov_dest *d, const char *sub, char **error_r)
{
    char *dir = g_build_filename(d->path, sub, NULL);
    DIR *dh = opendir(dir);
    struct dirent *de;

    if (dh == NULL) {
        cus_error_errno(error_r, "opendir(%s)", dir);
        g_free(dir);
        return -1;
    }
    while ((de = readdir(dh)) != NULL) {
        char hex[25];
        guint64 size;
        struct hov_have *h;
        struct stat st;

        if (our_name(de->d_name, hex, &size) < 0)
            continue;
        if (strcmp(sub, "tmp") == 0) {     /* a copy a crash cut off */
            unlinkat(dirfd(dh), de->d_name, 0);
            continue;
        }
        if (fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || (guint64)st.st_size != size) {
            unlinkat(dirfd(dh), de->d_name, 0);     /* cut short: written again */
            continue;
        }
        h = g_new0(struct hov_have, 1);
        h->size = size;
        h->dir = g_strdup(sub);
        h->name = g_strdup(de->d_name);
        g_hash_table_replace(d->have, g_strdup(hex), h);
    }
    closedir(dh);
    g_free(dir);
    return 0;
}

static int copy_keywords(const char *from, struct hov_dest *d, char **error_r)
{
    char *to = g_build_filename(d->path, "dovecot-keywords", NULL);
    GBytes *data = NULL;
    int ret = 0;

    if (access(to, F_OK) < 0 && access(from, F_OK) == 0) {
        ret = cus_read_file(from, 1 << 20, &data, error_r);
        if (ret == 0) {
            gsize len;
            const void *p = g_bytes_get_data(data, &len);
            ret = hov_write_owned(to, p, len, &d->o, error_r);
            g_bytes_unref(data);
        }
    }
    g_free(to);
    return ret;
}

int hov_dest_open(const char *root, const char *storage, const struct hov_owner *o,
                  const char *keywords, struct hov_dest **d_r, char **error_r)
{
    struct hov_dest *d = g_new0(struct hov_dest, 1);
    static const char *const sub[] = { "cur", "new", "tmp" };
    int *fds[] = { &d->fd_cur, &d->fd_new, &d->fd_tmp };
    char *dot = g_strconcat(".", storage, NULL), *mf;

    d->fd_cur = d->fd_new = d->fd_tmp = -1;
    d->o = *o;
    d->have = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, have_free);
    d->path = *storage == '\0' ? g_strdup(root) : g_build_filename(root, dot, NULL);
    g_free(dot);
    if (strlen(d->path) - strlen(root) > 255) {
        cus_error(error_r, "folder \"%s\": the name is too long for a directory", storage);
        goto fail;
    }
    if (hov_mkdir_owned(d->path, o, error_r) < 0)
        goto fail;
    for (int i = 0; i < 3; i++) {
        char *p = g_build_filename(d->path, sub[i], NULL);
        int r = hov_mkdir_owned(p, o, error_r);

        if (r == 0 && (*fds[i] = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            r = cus_error_errno(error_r, "open(%s)", p);
        g_free(p);
        if (r < 0)
            goto fail;
    }
    if (*storage != '\0') {
        mf = g_build_filename(d->path, "maildirfolder", NULL);
        if (access(mf, F_OK) < 0 && hov_write_owned(mf, "", 0, o, error_r) < 0) {
            g_free(mf);
            goto fail;
        }
        g_free(mf);
    }
    if (keywords != NULL && copy_keywords(keywords, d, error_r) < 0)
        goto fail;
    if (scan_have(d, "tmp", error_r) < 0 || scan_have(d, "new", error_r) < 0 ||
        scan_have(d, "cur", error_r) < 0)
        goto fail;
    *d_r = d;
    return 0;
fail:
    hov_dest_close(&d);
    return -1;
}

int hov_dest_has(struct hov_dest *d, const unsigned char sha[CUS_SHA256_LEN])
{
    char hex[CUS_SHA256_HEX];

    cus_hex(sha, CUS_SHA256_LEN, hex);
    hex[24] = '\0';
    return g_hash_table_contains(d->have, hex);
}

/* The umask now (read once; set back at once). */
static mode_t current_umask(void)
{
    static gsize once;
    static mode_t mask;

    if (g_once_init_enter(&once)) {
        mask = umask(022);
        umask(mask);
        g_once_init_leave(&once, 1);
    }
    return mask;
}

/* Write len bytes (data, or read from src_fd) to fd. */
static int put_bytes(int fd, const void *data, int src_fd, size_t len, const char *what,
                     char **error_r)
{
    char buf[65536];
    size_t done = 0;

    if (data != NULL)
        return cus_write_all(fd, data, len) < 0 ? cus_error_errno(error_r, "write(%s)", what)
                                                 : 0;
    while (done < len) {
        ssize_t n = pread(src_fd, buf, MIN(sizeof(buf), len - done), (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cus_error(error_r, "the message changed while it was copied (%s)",
                             n < 0 ? g_strerror(errno) : "shorter now");
        if (cus_write_all(fd, buf, (size_t)n) < 0)
            return cus_error_errno(error_r, "write(%s)", what);
        done += (size_t)n;
    }
    return 0;
}

/* Owner, mode and received date of a file just written. */
static int put_meta(struct hov_dest *d, int fd, gint64 mtime, const char *what, char **error_r)
{
    struct timespec ts[2] = { { (time_t)mtime, 0 }, { (time_t)mtime, 0 } };

    if ((geteuid() != d->o.uid || getegid() != d->o.gid) && fchown(fd, d->o.uid, d->o.gid) < 0)
        return cus_error_errno(error_r, "chown(%s, %u:%u)", what, (unsigned)d->o.uid,
                               (unsigned)d->o.gid);
    if ((d->o.file_mode & ~current_umask()) != d->o.file_mode && fchmod(fd, d->o.file_mode) < 0)
        return cus_error_errno(error_r, "chmod(%s, %04o)", what, (unsigned)d->o.file_mode);
    if (futimens(fd, ts) < 0)
        return cus_error_errno(error_r, "futimens(%s)", what);
    return 0;
}

/*
 * A message appears in cur/ (new/) whole or not at all. Where the file
 * system can (Linux, ext4, xfs, tmpfs...), it is written as an unnamed file
 * in that directory (O_TMPFILE) and linked in under its name once written:
 * one change of one directory. Elsewhere it is written in tmp/ and renamed,
 * as the Maildir specification has it.
 */
int hov_dest_put(struct hov_dest *d, const void *data, int src_fd, size_t len,
                 const unsigned char sha[CUS_SHA256_LEN], gint64 mtime, const char *flags,
                 int to_new, char **error_r)
{
    char hex[CUS_SHA256_HEX], *base, *final, *what;
    int dir = to_new ? d->fd_new : d->fd_cur;
    struct hov_have *h;
    int fd = -1, ret = -1, tmpfile = 0;

    cus_hex(sha, CUS_SHA256_LEN, hex);
    hex[24] = '\0';
    if (g_hash_table_contains(d->have, hex))
        return 0;
    base = g_strdup_printf("%" G_GINT64_FORMAT ".H%s%s%zu", mtime, hex, HOV_TMP_TAG, len);
    final = to_new ? g_strdup(base) : g_strdup_printf("%s:2,%s", base, flags);
    what = g_strdup_printf("%s/%s/%s", d->path, to_new ? "new" : "cur", final);
    if (!d->no_tmpfile) {
        fd = openat(dir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, d->o.file_mode & 0666);
        if (fd >= 0)
            tmpfile = 1;
        else if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
            d->no_tmpfile = 1;
        else {
            cus_error_errno(error_r, "open(%s)", what);
            goto out;
        }
    }
    if (!tmpfile) {
        fd = openat(d->fd_tmp, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    d->o.file_mode & 0666);
        if (fd < 0) {
            cus_error_errno(error_r, "open(%s/tmp/%s)", d->path, base);
            goto out;
        }
    }
    if (put_bytes(fd, data, src_fd, len, what, error_r) < 0 ||
        put_meta(d, fd, mtime, what, error_r) < 0)
        goto fail;
    /* the disk starts on it now, so the sync at the end has little left */
    if (d->writeback)
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (tmpfile) {
        char proc[64];

        g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (linkat(fd, "", dir, final, AT_EMPTY_PATH) < 0 &&
            linkat(AT_FDCWD, proc, dir, final, AT_SYMLINK_FOLLOW) < 0) {
            cus_error_errno(error_r, "link(%s)", what);
            goto fail;
        }
        if (close(fd) < 0) {
            fd = -1;
            cus_error_errno(error_r, "close(%s)", what);
            goto out;
        }
        fd = -1;
    } else {
        if (close(fd) < 0) {
            fd = -1;
            cus_error_errno(error_r, "close(%s/tmp/%s)", d->path, base);
            goto fail;
        }
        fd = -1;
        if (renameat(d->fd_tmp, base, dir, final) < 0) {
            cus_error_errno(error_r, "rename(%s/tmp/%s)", d->path, base);
            goto fail;
        }
    }
    h = g_new0(struct hov_have, 1);
    h->size = len;
    h->dir = g_strdup(to_new ? "new" : "cur");
    h->name = g_strdup(final);
    g_hash_table_replace(d->have, g_strdup(hex), h);
    d->written++;
    ret = 1;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    if (!tmpfile)
        unlinkat(d->fd_tmp, base, 0);
out:
    g_free(base);
    g_free(final);
    g_free(what);
    return ret;
}

int hov_dest_sync(struct hov_dest *d, char **error_r)
{
    if (syncfs(d->fd_cur) < 0)
        return cus_error_errno(error_r, "syncfs(%s)", d->path);
    if (fsync(d->fd_cur) < 0 || fsync(d->fd_new) < 0 || fsync(d->fd_tmp) < 0)
        return cus_error_errno(error_r, "fsync(%s)", d->path);
    return cus_fsync_dir(d->path, error_r);
}

void hov_dest_writeback(struct hov_dest *d, int on)
{
    d->writeback = on;
}

const char *hov_dest_path(struct hov_dest *d)
{
    return d->path;
}

void hov_dest_close(struct hov_dest **dp)
{
    struct hov_dest *d = *dp;

    if (d == NULL)
        return;
    if (d->fd_cur >= 0)
        close(d->fd_cur);
    if (d->fd_new >= 0)
        close(d->fd_new);
    if (d->fd_tmp >= 0)
        close(d->fd_tmp);
    g_hash_table_destroy(d->have);
    g_free(d->path);
    g_free(d);
    *dp = NULL;
}
