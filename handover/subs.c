/*
 * subs.c - the Maildir's subscriptions file, in the format it already has
 *
 * Dovecot reads two formats (lib-storage/list/subscription-file.c):
 * version 1, one storage name a line; version 2, a "V\t2\n\n" header, then
 * each name's levels joined by TAB, each level with \001, TAB, CR and LF
 * written \001 1, \001 t, \001 r, \001 n. Lines we do not add are kept
 * byte for byte; the file is replaced atomically with its owner and mode.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/handover-maildir.h"

static const char v2_header[] = "V\t2\n\n";

static void tab_escape(GString *s, const char *level)
{
    for (const char *p = level; *p != '\0'; p++) {
        switch (*p) {
        case '\001': g_string_append(s, "\0011"); break;
        case '\t': g_string_append(s, "\001t"); break;
        case '\r': g_string_append(s, "\001r"); break;
        case '\n': g_string_append(s, "\001n"); break;
        default: g_string_append_c(s, *p);
        }
    }
}

static char *tab_unescape_line(const char *line)
{
    GString *s = g_string_new(NULL);

    for (const char *p = line; *p != '\0'; p++) {
        if (*p == '\t') {
            g_string_append_c(s, '.');
        } else if (*p == '\001' && p[1] != '\0') {
            p++;
            g_string_append_c(s, *p == '1' ? '\001' : *p == 't' ? '\t' : *p == 'r' ? '\r' :
                                 *p == 'n' ? '\n' : *p);
        } else {
            g_string_append_c(s, *p);
        }
    }
    return g_string_free(s, FALSE);
}

/* A storage name as a version 2 line. */
static char *v2_line(const char *storage)
{
    char **levels = g_strsplit(storage, ".", -1);
    GString *s = g_string_new(NULL);

    for (int i = 0; levels[i] != NULL; i++) {
        if (i > 0)
            g_string_append_c(s, '\t');
        tab_escape(s, levels[i]);
    }
    g_strfreev(levels);
    return g_string_free(s, FALSE);
}

static int text_version(const char *text)
{
    return g_str_has_prefix(text, v2_header) ? 2 : 1;
}

/* The file's text ("" if missing), and its version (1 or 2; 2 if missing). */
static int subs_load(const char *path, char **text_r, int *version_r, char **error_r)
{
    GBytes *data = NULL;
    gsize len;
    const char *p;

    if (access(path, F_OK) < 0 && errno == ENOENT) {
        *text_r = g_strdup("");
        *version_r = 2;
        return 0;
    }
    if (cus_read_file(path, 16 << 20, &data, error_r) < 0)
        return -1;
    p = g_bytes_get_data(data, &len);
    if (p != NULL && memchr(p, '\0', len) != NULL) {
        g_bytes_unref(data);
        return cus_error(error_r, "%s has a NUL byte: not a subscriptions file, not changed",
                         path);
    }
    *text_r = g_strndup(p != NULL ? p : "", len);
    *version_r = text_version(*text_r);
    g_bytes_unref(data);
    return 0;
}

GPtrArray *hov_subs_parse(const char *text)
{
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    int version = text_version(text);
    char **lines = g_strsplit(version == 2 ? text + strlen(v2_header) : text, "\n", -1);

    for (int i = 0; lines[i] != NULL; i++) {
        if (lines[i][0] == '\0')
            continue;
        g_ptr_array_add(names, version == 2 ? tab_unescape_line(lines[i])
                                            : g_strdup(lines[i]));
    }
    g_strfreev(lines);
    return names;
}

char *hov_subs_merge(const char *text, int new_file, GPtrArray *names, int *added_r)
{
    int version = new_file ? 2 : text_version(text), added = 0;
    GPtrArray *there = hov_subs_parse(text);
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    GString *out = g_string_new(text);

    for (guint i = 0; i < there->len; i++)
        g_hash_table_add(seen, there->pdata[i]);
    if (version == 2 && out->len == 0)
        g_string_append(out, v2_header);
    if (out->len > 0 && out->str[out->len - 1] != '\n')
        g_string_append_c(out, '\n');
    for (guint i = 0; i < names->len; i++) {
        const char *name = names->pdata[i];
        char *line;

        if (*name == '\0' || g_hash_table_contains(seen, name))
            continue;
        line = version == 2 ? v2_line(name) : g_strdup(name);
        g_string_append_printf(out, "%s\n", line);
        g_free(line);
        g_hash_table_add(seen, (gpointer)name);
        added++;
    }
    g_hash_table_destroy(seen);
    g_ptr_array_free(there, TRUE);
    *added_r = added;
    return g_string_free(out, FALSE);
}

int hov_subs_read(const char *root, GPtrArray **names_r, char **error_r)
{
    char *path = g_build_filename(root, "subscriptions", NULL), *text = NULL;
    int version, ret;

    ret = subs_load(path, &text, &version, error_r);
    g_free(path);
    if (ret < 0)
        return -1;
    *names_r = hov_subs_parse(text);
    g_free(text);
    return 0;
}

int hov_subs_add(const char *root, GPtrArray *names, const struct hov_owner *o,
                 int *added_r, char **error_r)
{
    char *path = g_build_filename(root, "subscriptions", NULL), *text = NULL, *out = NULL;
    int version, added = 0, ret = -1;

    if (subs_load(path, &text, &version, error_r) < 0)
        goto out;
    out = hov_subs_merge(text, *text == '\0' && version == 2, names, &added);
    ret = added == 0 ? 0 : hov_write_owned(path, out, strlen(out), o, error_r);
    if (added_r != NULL)
        *added_r = ret == 0 ? added : 0;
out:
    g_free(out);
    g_free(text);
    g_free(path);
    return ret;
}
