/*
 * package.c - the handover's documents in one zip (libarchive)
 *
 * ID/report.txt, report.html, report.json, plan.json, journal, contacts.vcf,
 * contacts.csv, crm.csv, customers.json, forwards.json, the forwarding
 * backups and their MANIFEST, and a copy of the Postfix map: whatever of
 * them the plan has. Written to a temp file beside FILE and renamed into
 * place; an existing FILE is replaced only with --force. Member names are
 * ours (never taken from mail).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>
#include "handover-private.h"

static int add_member(struct archive *a, const char *name, const void *data, size_t len,
                      gint64 mtime, char **error_r)
{
    struct archive_entry *e = archive_entry_new();
    int ret = 0;

    archive_entry_set_pathname_utf8(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_mtime(e, (time_t)mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len))
        ret = cus_error(error_r, "zip member %s: %s", name, archive_error_string(a));
    archive_entry_free(e);
    return ret;
}

static int add_file(struct archive *a, const char *prefix, const char *name, const char *path,
                    gint64 mtime, char **error_r)
{
    GBytes *data = NULL;
    gsize len;
    const void *p;
    char *member;
    int ret;

    if (access(path, F_OK) < 0)
        return 0;
    if (cus_read_file(path, 512 << 20, &data, error_r) < 0)
        return -1;
    p = g_bytes_get_data(data, &len);
    member = g_strconcat(prefix, "/", name, NULL);
    ret = add_member(a, member, p != NULL ? p : "", len, mtime, error_r);
    g_free(member);
    g_bytes_unref(data);
    return ret;
}

int hov_package(const struct cfg *cfg, struct hov_plan *p, const char *path, int force,
                char **error_r)
{
    static const char *const files[] = {
        "plan.json", "journal", "contacts.vcf", "contacts.csv", "crm.csv", "customers.json",
        "forwards.json",
    };
    static const char *const formats[][2] = {
        { "text", "report.txt" }, { "html", "report.html" }, { "json", "report.json" },
    };
    char *dir = g_path_get_dirname(path), *tmp = NULL;
    struct archive *a = NULL;
    gint64 now = (gint64)time(NULL);
    int fd = -1, ret = HOV_ERROR;

    if (!g_str_has_suffix(path, ".zip")) {
        cus_error(error_r, "-o %s: the package is a zip file: give a name ending in .zip",
                  path);
        ret = HOV_BAD_INPUT;
        goto out;
    }
    if (!force && access(path, F_OK) == 0) {
        cus_error(error_r, "-o %s: the file is there already (--force replaces it)", path);
        ret = HOV_CANT_CREATE;
        goto out;
    }
    tmp = g_strdup_printf("%s/.custos-handover-package.XXXXXX", dir);
    if ((fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0644)) < 0) {
        cus_error_errno(error_r, "-o %s: cannot write in %s", path, dir);
        ret = HOV_CANT_CREATE;
        goto out;
    }
    a = archive_write_new();
    archive_write_set_format_zip(a);
    archive_write_set_format_option(a, "zip", "hdrcharset", "UTF-8");
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        cus_error(error_r, "-o %s: %s", path, archive_error_string(a));
        goto out;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
        GString *r = g_string_new(NULL);
        char *member = g_strconcat(p->id, "/", formats[i][1], NULL);
        int rr = hov_report(cfg, p, formats[i][0], r, error_r);
        if (rr == HOV_OK)
            rr = add_member(a, member, r->str, r->len, now, error_r) < 0 ? HOV_ERROR : HOV_OK;
        g_free(member);
        g_string_free(r, TRUE);
        if (rr != HOV_OK)
            goto out;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
        char *f = g_build_filename(p->dir, files[i], NULL);
        int rr = add_file(a, p->id, files[i], f, now, error_r);
        g_free(f);
        if (rr < 0)
            goto out;
    }
    {
        char *bdir = g_build_filename(p->dir, "backups", NULL);
        GDir *d = g_dir_open(bdir, 0, NULL);
        const char *n;
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        int rr = 0;

        while (d != NULL && (n = g_dir_read_name(d)) != NULL)
            g_ptr_array_add(names, g_strdup(n));
        if (d != NULL)
            g_dir_close(d);
        g_ptr_array_sort(names, hov_strptr_cmp);
        for (guint i = 0; i < names->len && rr == 0; i++) {
            char *f = g_build_filename(bdir, names->pdata[i], NULL);
            char *m = g_strconcat("backups/", (char *)names->pdata[i], NULL);
            rr = add_file(a, p->id, m, f, now, error_r);
            g_free(f);
            g_free(m);
        }
        g_ptr_array_free(names, TRUE);
        g_free(bdir);
        if (rr < 0)
            goto out;
    }
    if (p->postfix_map != NULL) {
        char *base = g_path_get_basename(p->postfix_map), *m = g_strconcat("postfix/", base, NULL);
        int rr = add_file(a, p->id, m, p->postfix_map, now, error_r);
        g_free(base);
        g_free(m);
        if (rr < 0)
            goto out;
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        cus_error(error_r, "-o %s: %s", path, archive_error_string(a));
        goto out;
    }
    if (fsync(fd) < 0) {
        cus_error_errno(error_r, "fsync(%s)", tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        cus_error_errno(error_r, "rename(%s, %s)", tmp, path);
        ret = HOV_CANT_CREATE;
        goto out;
    }
    g_free(tmp);
    tmp = NULL;
    ret = cus_fsync_dir(dir, error_r) < 0 ? HOV_ERROR : HOV_OK;
out:
    if (a != NULL)
        archive_write_free(a);
    if (fd >= 0)
        close(fd);
    if (tmp != NULL)
        unlink(tmp);
    g_free(tmp);
    g_free(dir);
    return ret;
}
