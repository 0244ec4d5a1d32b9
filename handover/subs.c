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
    *text_r = g_strndup(p != NULL ? p : "", len);
    *version_r = len >= strlen(v2_header) && memcmp(p, v2_header, strlen(v2_header)) == 0
                     ? 2 : 1;
    g_bytes_unref(data);
    return 0;
}

int hov_subs_read(const char *root, GPtrArray **names_r, char **error_r)
{
    char *path = g_build_filename(root, "subscriptions", NULL), *text = NULL, **lines;
    GPtrArray *names;
    int version, ret;

    ret = subs_load(path, &text, &version, error_r);
    g_free(path);
    if (ret < 0)
        return -1;
    names = g_ptr_array_new_with_free_func(g_free);
    lines = g_strsplit(version == 2 && *text != '\0' ? text + strlen(v2_header) : text,
                       "\n", -1);
    for (int i = 0; lines[i] != NULL; i++) {
        if (lines[i][0] == '\0')
            continue;
        g_ptr_array_add(names, version == 2 ? tab_unescape_line(lines[i])
                                            : g_strdup(lines[i]));
    }
    g_strfreev(lines);
    g_free(text);
    *names_r = names;
    return 0;
}

int hov_subs_add(const char *root, GPtrArray *names, const struct hov_owner *o,
                 int *added_r, char **error_r)
{
    char *path = g_build_filename(root, "subscriptions", NULL), *text = NULL, **lines = NULL;
    GHashTable *there;
    GString *out;
    int version, added = 0, ret = -1;

    if (subs_load(path, &text, &version, error_r) < 0)
        goto out;
    there = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] != NULL; i++)
        g_hash_table_add(there, g_strdup(lines[i]));
    out = g_string_new(text);
    if (version == 2 && out->len == 0)
        g_string_append(out, v2_header);
    if (out->len > 0 && out->str[out->len - 1] != '\n')
        g_string_append_c(out, '\n');
    for (guint i = 0; i < names->len; i++) {
        char *line = version == 2 ? v2_line(names->pdata[i]) : g_strdup(names->pdata[i]);

        if (!g_hash_table_contains(there, line)) {
            g_string_append_printf(out, "%s\n", line);
            g_hash_table_add(there, line);
            added++;
        } else {
            g_free(line);
        }
    }
    g_hash_table_destroy(there);
    ret = added == 0 ? 0 : hov_write_owned(path, out->str, out->len, o, error_r);
    g_string_free(out, TRUE);
    if (added_r != NULL)
        *added_r = ret == 0 ? added : 0;
out:
    g_strfreev(lines);
    g_free(text);
    g_free(path);
    return ret;
}
