/*
 * forwards.c - the forwarding audit: alias and virtual maps, .forward, Sieve
 *
 * Files are read as text, never as compiled maps: what an admin wrote is
 * what is audited and changed. A destination is "outside" when it is an
 * address of a domain no employee has (the directory's notion of
 * internal), or a program or a file (mail leaves Postfix's hands there).
 * Disabling never deletes: map lines are commented out, .forward renamed,
 * Sieve redirects replaced by "keep;" -- each file copied to the plan's
 * backups first and listed in its MANIFEST (one line per change, written
 * before the change), so a run killed half-way and run again reports what
 * the first run did.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/handover-forwards.h"
#include "custos/handover-maildir.h"
#include "custos/util.h"
#include "handover-private.h"

#define FWD_FILE_MAX (64 << 20)
#define FWD_TAG "#custos-handover "

static const char *const source_names[] = { "alias", "virtual", "forward", "sieve" };
static const char *const kind_names[] = { "address", "local", "program", "file" };

const char *hov_fwd_source_name(enum hov_fwd_source s)
{
    return source_names[s];
}

const char *hov_fwd_kind_name(enum hov_fwd_kind k)
{
    return kind_names[k];
}

void hov_forward_free(gpointer p)
{
    struct hov_forward *f = p;

    if (f == NULL)
        return;
    g_free(f->file);
    g_free(f->owner);
    g_free(f->dest);
    g_free(f);
}

void hov_fwd_change_free(gpointer p)
{
    struct hov_fwd_change *c = p;

    if (c == NULL)
        return;
    g_free(c->file);
    g_free(c->action);
    g_free(c->backup);
    g_free(c->note);
    g_free(c);
}

char *hov_expand(const char *tmpl, const char *address)
{
    const char *at = strrchr(address, '@');
    char *local = at != NULL ? g_strndup(address, (gsize)(at - address)) : g_strdup(address);
    const char *domain = at != NULL ? at + 1 : "";
    GString *s = g_string_new(NULL);
    const char *p = tmpl;

    if (g_str_has_prefix(tmpl, "~/")) {
        struct passwd *pw = getpwnam(local);
        if (pw == NULL || pw->pw_dir == NULL || *pw->pw_dir == '\0') {
            g_free(local);
            g_string_free(s, TRUE);
            return NULL;
        }
        g_string_append(s, pw->pw_dir);
        p = tmpl + 1;
    }
    for (; *p != '\0'; p++) {
        if (*p == '%' && (p[1] == 'd' || p[1] == 'n' || p[1] == 'u' || p[1] == '%')) {
            p++;
            g_string_append(s, *p == 'd' ? domain : *p == 'n' ? local : *p == 'u' ? address
                                                                                 : "%");
        } else {
            g_string_append_c(s, *p);
        }
    }
    g_free(local);
    return g_string_free(s, FALSE);
}

/* ---- classifying a destination ---------------------------------------------------- */

static void add_forward(GPtrArray *out, struct dir *d, enum hov_fwd_source src,
                        const char *file, int line, const char *owner, const char *dest_in)
{
    struct hov_forward *f = g_new0(struct hov_forward, 1);
    char *dest = cus_utf8_repair(dest_in, strlen(dest_in));  /* a Sieve string's bytes */

    g_strstrip(dest);
    if (dest[0] == '"' && strlen(dest) >= 2 && dest[strlen(dest) - 1] == '"') {
        char *q = g_strndup(dest + 1, strlen(dest) - 2);
        g_free(dest);
        dest = q;
    }
    f->source = src;
    f->file = g_strdup(file);
    f->line = line;
    f->owner = g_strdup(owner);
    f->dest = dest;
    if (dest[0] == '|') {
        f->kind = HOV_FWD_PROGRAM;
        f->outside = 1;
    } else if (dest[0] == '/') {
        f->kind = HOV_FWD_FILE;
        f->outside = 1;
    } else if (strchr(dest, '@') != NULL) {
        char *low = g_utf8_strdown(dest[0] == '<' ? dest + 1 : dest, -1);
        size_t n = strlen(low);

        if (n > 0 && low[n - 1] == '>')
            low[n - 1] = '\0';
        g_free(f->dest);
        f->dest = low;
        f->kind = HOV_FWD_ADDRESS;
        f->outside = dir_is_internal(d, low, NULL) != 1;
        f->webmail = dir_is_webmail(d, low);
    } else {
        f->kind = HOV_FWD_LOCAL;
    }
    g_ptr_array_add(out, f);
}

/* ---- Postfix maps --------------------------------------------------------------------- */

/* Split a map value into destinations: commas (and, for virtual, white
 * space) outside double quotes. */
static GPtrArray *split_dests(const char *v, int on_space)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);
    int quoted = 0;

    for (const char *p = v;; p++) {
        if (*p == '"')
            quoted = !quoted;
        if (*p == '\0' || (!quoted && (*p == ',' || (on_space && g_ascii_isspace(*p))))) {
            char *t = g_strstrip(g_strdup(cur->str));
            if (*t != '\0')
                g_ptr_array_add(out, t);
            else
                g_free(t);
            g_string_truncate(cur, 0);
            if (*p == '\0')
                break;
            continue;
        }
        g_string_append_c(cur, *p);
    }
    g_string_free(cur, TRUE);
    return out;
}

/* A file's bytes as they are (an admin's map may have GBK comments: a
 * file changed is changed only where it must be); one with a NUL byte is
 * no text file and is left alone. */
static int read_text(const char *path, char **text_r, char **error_r)
{
    GBytes *data = NULL;
    gsize len;
    const char *p, *nul;

    if (cus_read_file(path, FWD_FILE_MAX, &data, error_r) < 0)
        return -1;
    p = g_bytes_get_data(data, &len);
    if (p != NULL && (nul = memchr(p, '\0', len)) != NULL) {
        cus_error(error_r, "%s: a NUL byte at offset %zu: not a text file, not read",
                  path, (size_t)(nul - p));
        g_bytes_unref(data);
        return -1;
    }
    *text_r = g_strndup(p != NULL ? p : "", len);
    g_bytes_unref(data);
    return 0;
}

/* The same, valid UTF-8 (bad bytes U+FFFD: lines stay where they are). */
static int read_text_utf8(const char *path, char **text_r, char **error_r)
{
    char *raw = NULL;

    if (read_text(path, &raw, error_r) < 0)
        return -1;
    *text_r = cus_utf8_repair(raw, strlen(raw));
    g_free(raw);
    return 0;
}

static int key_matches(const char *key, const char *address)
{
    const char *at;
    char *k, *local;
    int m;

    if (address == NULL)
        return 1;
    k = g_utf8_strdown(key, -1);
    at = strrchr(address, '@');
    local = at != NULL ? g_strndup(address, (gsize)(at - address)) : g_strdup(address);
    m = strcmp(k, address) == 0 || strcmp(k, local) == 0;
    g_free(k);
    g_free(local);
    return m;
}

static int map_scan(struct dir *d, enum hov_fwd_source src, const char *path,
                    const char *address, GPtrArray *out, int depth, const char *inc_owner,
                    char **error_r);

static void map_dest(struct dir *d, enum hov_fwd_source src, const char *path, int line,
                     const char *owner, const char *dest, GPtrArray *out, int depth)
{
    if (g_str_has_prefix(dest, ":include:") && depth < 4) {
        char *inc = g_strstrip(g_strdup(dest + 9)), *err = NULL;
        guint before = out->len;

        if (map_scan(d, src, inc, NULL, out, depth + 1, owner, &err) < 0) {
            add_forward(out, d, src, path, line, owner, dest);     /* shown as it is */
            g_free(err);
        }
        /* what the included file lists is this entry's: disabling it
         * disables them (the file may be shared) */
        for (guint i = before; i < out->len; i++) {
            struct hov_forward *f = out->pdata[i];
            g_free(f->file);
            f->file = g_strdup(path);
            f->line = line;
        }
        g_free(inc);
        return;
    }
    add_forward(out, d, src, path, line, owner, dest);
}

/* An alias or virtual map, or (inc_owner set) an :include: file of
 * destinations for inc_owner. */
static int map_scan(struct dir *d, enum hov_fwd_source src, const char *path,
                    const char *address, GPtrArray *out, int depth, const char *inc_owner,
                    char **error_r)
{
    char *text = NULL, **lines;
    GString *entry = g_string_new(NULL);
    int start = 0;

    if (access(path, F_OK) < 0 && errno == ENOENT) {
        g_string_free(entry, TRUE);
        return 0;
    }
    if (read_text_utf8(path, &text, error_r) < 0) {
        g_string_free(entry, TRUE);
        return -1;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0;; i++) {
        const char *l = lines[i];
        const char *t = l;
        int cont;

        if (l != NULL) {
            while (*t == ' ' || *t == '\t' || *t == '\r')
                t++;
            if (*t == '\0' || *t == '#')
                continue;
        }
        cont = l != NULL && (l[0] == ' ' || l[0] == '\t');
        if (cont && entry->len > 0) {
            g_string_append_c(entry, ' ');
            g_string_append(entry, t);
            continue;
        }
        if (entry->len > 0) {            /* one logical entry is complete */
            char *e = g_strstrip(entry->str), *key, *val;

            if (inc_owner != NULL) {
                GPtrArray *ds = split_dests(e, 0);
                for (guint j = 0; j < ds->len; j++)
                    map_dest(d, src, path, start, inc_owner, ds->pdata[j], out, depth);
                g_ptr_array_free(ds, TRUE);
            } else {
                char *sep = src == HOV_FWD_ALIAS ? strchr(e, ':') : strpbrk(e, " \t");
                if (sep != NULL) {
                    key = g_strstrip(g_strndup(e, (gsize)(sep - e)));
                    val = sep + 1;
                    if (*key != '\0' && key_matches(key, address)) {
                        GPtrArray *ds = split_dests(val, src == HOV_FWD_VIRTUAL);
                        for (guint j = 0; j < ds->len; j++)
                            map_dest(d, src, path, start, key, ds->pdata[j], out, depth);
                        g_ptr_array_free(ds, TRUE);
                    }
                    g_free(key);
                }
            }
            g_string_truncate(entry, 0);
        }
        if (l == NULL)
            break;
        if (!cont || inc_owner != NULL) {
            g_string_assign(entry, t);
            start = i + 1;
        }
    }
    g_string_free(entry, TRUE);
    g_strfreev(lines);
    g_free(text);
    return 0;
}

/* ---- .forward and Sieve --------------------------------------------------------------- */

static int forward_scan(struct dir *d, const char *path, const char *owner, GPtrArray *out,
                        char **error_r)
{
    char *text = NULL, **lines;
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : cus_error_errno(error_r, "%s", path);
    if (read_text_utf8(path, &text, error_r) < 0)
        return -1;
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] != NULL; i++) {
        char *hash = strchr(lines[i], '#');
        GPtrArray *ds;

        if (hash != NULL && strchr(lines[i], '"') == NULL)
            *hash = '\0';
        ds = split_dests(lines[i], 0);
        for (guint j = 0; j < ds->len; j++) {
            const char *dst = ds->pdata[j];
            add_forward(out, d, HOV_FWD_FORWARD, path, i + 1, owner,
                        dst[0] == '\\' ? dst + 1 : dst);
        }
        g_ptr_array_free(ds, TRUE);
    }
    g_strfreev(lines);
    g_free(text);
    return 0;
}

/* Skip white space and comments from *pp; -1 on an unclosed comment. */
static int sieve_skip(const char **pp)
{
    const char *p = *pp;

    for (;;) {
        while (g_ascii_isspace(*p))
            p++;
        if (*p == '#') {
            while (*p != '\0' && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (e == NULL)
                return -1;
            p = e + 2;
        } else {
            break;
        }
    }
    *pp = p;
    return 0;
}

/* A quoted string or a text: block at *pp: its value, *pp past it. */
static char *sieve_string(const char **pp)
{
    const char *p = *pp;
    GString *s = g_string_new(NULL);

    if (*p == '"') {
        for (p++; *p != '\0' && *p != '"'; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            g_string_append_c(s, *p);
        }
        if (*p != '"') {
            g_string_free(s, TRUE);
            return NULL;
        }
        *pp = p + 1;
        return g_string_free(s, FALSE);
    }
    if (g_ascii_strncasecmp(p, "text:", 5) == 0) {
        /* RFC 5228 2.4.2: lines up to one that is a lone "." (CRLF or
         * LF), a leading ".." standing for "." */
        const char *line = strchr(p, '\n');

        while (line != NULL) {
            const char *e;

            line++;
            e = strchr(line, '\n');
            if (line[0] == '.' && (line[1] == '\n' || (line[1] == '\r' && line[2] == '\n'))) {
                *pp = line + (line[1] == '\n' ? 2 : 3);
                return g_string_free(s, FALSE);
            }
            if (e == NULL)
                break;
            g_string_append_len(s, line + (line[0] == '.' && line[1] == '.'),
                                (gssize)(e + 1 - line - (line[0] == '.' && line[1] == '.')));
            line = e;
        }
        g_string_free(s, TRUE);
        return NULL;
    }
    g_string_free(s, TRUE);
    return NULL;
}

int hov_sieve_redirects(const char *text, GPtrArray **dests_r, GArray **spans_r,
                        char **error_r)
{
    GPtrArray *dests = g_ptr_array_new_with_free_func(g_free);
    GArray *spans = g_array_new(FALSE, FALSE, sizeof(gsize));
    const char *p = text;
    int at_command = 1;

    while (*p != '\0') {
        if (sieve_skip(&p) < 0)
            goto bad;
        if (*p == '\0')
            break;
        if (*p == '"' || g_ascii_strncasecmp(p, "text:", 5) == 0) {
            char *s = sieve_string(&p);
            if (s == NULL)
                goto bad;
            g_free(s);
            at_command = 0;
            continue;
        }
        if (*p == ';' || *p == '{' || *p == '}') {
            at_command = 1;
            p++;
            continue;
        }
        if (g_ascii_isalpha(*p) || *p == '_') {
            const char *w = p;
            while (g_ascii_isalnum(*p) || *p == '_')
                p++;
            if (at_command && p - w == 8 && g_ascii_strncasecmp(w, "redirect", 8) == 0) {
                char *dest = NULL;
                gsize span[2];

                span[0] = (gsize)(w - text);
                for (;;) {
                    if (sieve_skip(&p) < 0) {
                        g_free(dest);
                        goto bad;
                    }
                    if (*p == ';')
                        break;
                    if (*p == ':') {
                        p++;
                        while (g_ascii_isalnum(*p) || *p == '_' || *p == '-')
                            p++;
                        continue;
                    }
                    if (*p == '"' || g_ascii_strncasecmp(p, "text:", 5) == 0) {
                        char *s = sieve_string(&p);
                        if (s == NULL) {
                            g_free(dest);
                            goto bad;
                        }
                        if (dest == NULL)
                            dest = s;
                        else
                            g_free(s);
                        continue;
                    }
                    g_free(dest);
                    goto bad;
                }
                p++;                    /* the ';' */
                span[1] = (gsize)(p - text);
                if (dest == NULL)
                    goto bad;
                g_ptr_array_add(dests, dest);
                g_array_append_vals(spans, span, 2);
                at_command = 1;
                continue;
            }
            at_command = 0;
            continue;
        }
        at_command = 0;
        p++;                            /* a byte: the text need not be UTF-8 */
    }
    *dests_r = dests;
    if (spans_r != NULL)
        *spans_r = spans;
    else
        g_array_free(spans, TRUE);
    return 0;
bad:
    g_ptr_array_free(dests, TRUE);
    g_array_free(spans, TRUE);
    return cus_error(error_r, "a Sieve script that does not parse near byte %zu",
                     (size_t)(p - text));
}

static int line_of(const char *text, gsize off)
{
    int line = 1;

    for (gsize i = 0; i < off && text[i] != '\0'; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

static int sieve_file_scan(struct dir *d, const char *path, const char *owner,
                           GPtrArray *out, char **error_r)
{
    char *text = NULL, *err = NULL;
    GPtrArray *dests = NULL;
    GArray *spans = NULL;

    if (read_text(path, &text, error_r) < 0)
        return -1;
    if (hov_sieve_redirects(text, &dests, &spans, &err) < 0) {
        cus_error(error_r, "Sieve script %s: %s", path, err);
        g_free(err);
        g_free(text);
        return -1;
    }
    for (guint i = 0; i < dests->len; i++)
        add_forward(out, d, HOV_FWD_SIEVE, path, line_of(text, g_array_index(spans, gsize, 2 * i)),
                    owner, dests->pdata[i]);
    g_ptr_array_free(dests, TRUE);
    g_array_free(spans, TRUE);
    g_free(text);
    return 0;
}

static gint strptr_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A Sieve template: a file, or a directory of *.sieve files. */
static int sieve_scan(struct dir *d, const char *path, const char *owner, GHashTable *seen,
                      GPtrArray *out, char **error_r)
{
    struct stat st;
    char *real;
    int ret = 0;

    if (stat(path, &st) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : cus_error_errno(error_r, "%s", path);
    if (S_ISDIR(st.st_mode)) {
        GDir *dh = g_dir_open(path, 0, NULL);
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        const char *n;

        if (dh == NULL)
            return cus_error_errno(error_r, "opendir(%s)", path);
        while ((n = g_dir_read_name(dh)) != NULL)
            if (g_str_has_suffix(n, ".sieve") && n[0] != '.')
                g_ptr_array_add(names, g_build_filename(path, n, NULL));
        g_dir_close(dh);
        g_ptr_array_sort(names, strptr_cmp);
        for (guint i = 0; i < names->len && ret == 0; i++)
            ret = sieve_scan(d, names->pdata[i], owner, seen, out, error_r);
        g_ptr_array_free(names, TRUE);
        return ret;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    real = realpath(path, NULL);
    if (real == NULL)
        return cus_error_errno(error_r, "realpath(%s)", path);
    if (!g_hash_table_contains(seen, real)) {
        g_hash_table_add(seen, g_strdup(real));
        ret = sieve_file_scan(d, real, owner, out, error_r);
    }
    free(real);
    return ret;
}

static int user_scan(const struct cfg *cfg, struct dir *d, const char *address,
                     GHashTable *seen, GPtrArray *out, char **error_r)
{
    char **tmpls;
    int ret = 0;

    if (cfg->hov_forward != NULL) {
        char *f = hov_expand(cfg->hov_forward, address);
        if (f != NULL && !g_hash_table_contains(seen, f)) {
            g_hash_table_add(seen, g_strdup(f));
            ret = forward_scan(d, f, address, out, error_r);
        }
        g_free(f);
    }
    tmpls = g_strsplit(cfg->hov_sieve != NULL ? cfg->hov_sieve : "", ",", -1);
    for (int i = 0; tmpls[i] != NULL && ret == 0; i++) {
        char *t = g_strstrip(tmpls[i]), *f;
        if (*t == '\0')
            continue;
        f = hov_expand(t, address);
        if (f != NULL)
            ret = sieve_scan(d, f, address, seen, out, error_r);
        g_free(f);
    }
    g_strfreev(tmpls);
    return ret;
}

int hov_forwards_find(const struct cfg *cfg, struct dir *d, const char *address,
                      GPtrArray **forwards_r, char **error_r)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(hov_forward_free);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    const char *maps[2] = { cfg->hov_alias_maps, cfg->hov_virtual_maps };
    int ret = 0;

    for (int m = 0; m < 2 && ret == 0; m++) {
        char **files = g_strsplit(maps[m] != NULL ? maps[m] : "", ",", -1);
        for (int i = 0; files[i] != NULL && ret == 0; i++) {
            char *f = g_strstrip(files[i]);
            if (*f != '\0')
                ret = map_scan(d, m == 0 ? HOV_FWD_ALIAS : HOV_FWD_VIRTUAL, f, address, out,
                               0, NULL, error_r);
        }
        g_strfreev(files);
    }
    if (ret == 0 && address != NULL) {
        ret = user_scan(cfg, d, address, seen, out, error_r);
    } else if (ret == 0) {
        GPtrArray *emps = NULL;
        if ((ret = dir_list(d, DIR_EMPLOYEES, &emps, error_r)) == 0) {
            for (guint i = 0; i < emps->len && ret == 0; i++)
                ret = user_scan(cfg, d, ((struct dir_employee *)emps->pdata[i])->address, seen,
                                out, error_r);
            g_ptr_array_free(emps, TRUE);
        }
    }
    g_hash_table_destroy(seen);
    if (ret < 0) {
        g_ptr_array_free(out, TRUE);
        return -1;
    }
    *forwards_r = out;
    return 0;
}

/* ---- disabling -------------------------------------------------------------------------- */

/* Copy path into backup_dir once (the first copy is the original) and
 * note the change in MANIFEST before it is made. */
static int backup(const char *path, const char *backup_dir, const char *action,
                  char **backup_r, char **error_r)
{
    unsigned char h[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX], *base = g_path_get_basename(path), *name, *dst, *man;
    GBytes *data = NULL;
    GString *line;
    int ret = -1, fd;

    cus_sha256(path, strlen(path), h);
    cus_hex(h, 4, hex);
    name = g_strdup_printf("%s.%s.orig", base[0] == '.' ? base + 1 : base, hex);
    dst = g_build_filename(backup_dir, name, NULL);
    man = g_build_filename(backup_dir, "MANIFEST", NULL);
    if (cus_mkdirs(backup_dir, 0700, error_r) < 0)
        goto out;
    if (access(dst, F_OK) < 0) {
        gsize len;
        const void *p;
        if (cus_read_file(path, FWD_FILE_MAX, &data, error_r) < 0)
            goto out;
        p = g_bytes_get_data(data, &len);
        if (cus_write_file_atomic(dst, p != NULL ? p : "", len, 0600, error_r) < 0)
            goto out;
    }
    line = g_string_new(NULL);
    g_string_printf(line, "%s\t%s\t%s\n", path, dst, action);
    fd = open(man, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || cus_write_all(fd, line->str, line->len) < 0 || fsync(fd) < 0) {
        cus_error_errno(error_r, "%s", man);
        if (fd >= 0)
            close(fd);
        g_string_free(line, TRUE);
        goto out;
    }
    close(fd);
    g_string_free(line, TRUE);
    *backup_r = g_strdup(dst);
    ret = 0;
out:
    if (data != NULL)
        g_bytes_unref(data);
    g_free(base);
    g_free(name);
    g_free(dst);
    g_free(man);
    return ret;
}

static struct hov_fwd_change *change_new(const char *file, const char *action,
                                         const char *backup_path)
{
    struct hov_fwd_change *c = g_new0(struct hov_fwd_change, 1);

    c->file = g_strdup(file);
    c->action = g_strdup(action);
    c->backup = g_strdup(backup_path != NULL ? backup_path : "");
    c->note = g_strdup("");
    return c;
}

static int owner_from(const char *path, struct hov_owner *o, char **error_r)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return cus_error_errno(error_r, "%s", path);
    o->uid = st.st_uid;
    o->gid = st.st_gid;
    o->file_mode = st.st_mode & 07777;
    o->dir_mode = 0700;
    return 0;
}

/* Rebuild the compiled map beside path (its type by its file name), if
 * there is one: what to tell the admin. */
static char *rebuild_map(const struct cfg *cfg, const char *path, enum hov_fwd_source src)
{
    const char *prog = src == HOV_FWD_ALIAS ? "postalias" : "postmap";
    char *type = hov_map_built_type(cfg, path), *note = NULL, *err = NULL;

    if (type == NULL)
        return g_strdup_printf("no compiled map beside it: if Postfix reads it as texthash:%s, "
                               "`postfix reload`", path);
    if (hov_map_build(cfg, prog, type, path, &note, &err) < 0) {
        note = g_strdup_printf("%s: the forwarding goes on until the map is rebuilt: %s %s:%s",
                               err, prog, type, path);
        g_free(err);
    }
    g_free(type);
    return note;
}

static int disable_map(const struct cfg *cfg, const char *path, enum hov_fwd_source src,
                       GArray *lines_to, const char *id, const char *backup_dir, GPtrArray *changes,
                       char **error_r)
{
    char *text = NULL, **lines = NULL, *bk = NULL, *tag = g_strconcat(FWD_TAG, id, ": ", NULL);
    GString *out = NULL;
    struct hov_owner o;
    int n, ret = -1, changed = 0;
    gboolean *mark;

    if (read_text(path, &text, error_r) < 0 || owner_from(path, &o, error_r) < 0)
        goto out;
    lines = g_strsplit(text, "\n", -1);
    n = (int)g_strv_length(lines);
    mark = g_new0(gboolean, n + 1);
    for (guint i = 0; i < lines_to->len; i++) {
        int l = g_array_index(lines_to, int, i) - 1;
        if (l < 0 || l >= n || g_str_has_prefix(lines[l], FWD_TAG))
            continue;
        mark[l] = TRUE;
        /* its continuation lines */
        for (int k = l + 1; k < n && (lines[k][0] == ' ' || lines[k][0] == '\t'); k++)
            mark[k] = TRUE;
    }
    for (int i = 0; i < n; i++)
        changed += mark[i];
    if (changed == 0) {
        g_free(mark);
        ret = 0;
        goto out;
    }
    if (backup(path, backup_dir, "commented out", &bk, error_r) < 0) {
        g_free(mark);
        goto out;
    }
    out = g_string_new(NULL);
    for (int i = 0; i < n; i++) {
        if (mark[i])
            g_string_append(out, tag);
        g_string_append(out, lines[i]);
        if (i + 1 < n)
            g_string_append_c(out, '\n');
    }
    g_free(mark);
    if (hov_write_owned(path, out->str, out->len, &o, error_r) < 0)
        goto out;
    {
        struct hov_fwd_change *c = change_new(path, "commented out", bk);
        g_free(c->note);
        c->note = rebuild_map(cfg, path, src);
        g_ptr_array_add(changes, c);
    }
    ret = 0;
out:
    if (out != NULL)
        g_string_free(out, TRUE);
    g_strfreev(lines);
    g_free(text);
    g_free(bk);
    g_free(tag);
    return ret;
}

static int disable_forward(const char *path, const char *id, const char *backup_dir,
                           GPtrArray *changes, char **error_r)
{
    char *to = g_strdup_printf("%s.custos-handover-%s", path, id), *bk = NULL, *act;
    int ret = -1;

    if (access(path, F_OK) < 0) {
        ret = 0;                /* gone (an earlier run renamed it) */
        goto out;
    }
    if (access(to, F_OK) == 0) {
        cus_error(error_r, "cannot disable %s: %s is already there", path, to);
        goto out;
    }
    act = g_strdup_printf("renamed to %s", to);
    if (backup(path, backup_dir, act, &bk, error_r) < 0) {
        g_free(act);
        goto out;
    }
    if (rename(path, to) < 0) {
        cus_error_errno(error_r, "rename(%s, %s)", path, to);
        g_free(act);
        goto out;
    }
    g_ptr_array_add(changes, change_new(path, act, bk));
    g_free(act);
    ret = 0;
out:
    g_free(to);
    g_free(bk);
    return ret;
}

char *hov_sieve_keep(const char *text, const GArray *spans, const char *id)
{
    GString *out = g_string_new(NULL);
    gsize from = 0;

    for (guint i = 0; i + 1 < spans->len; i += 2) {
        gsize s = g_array_index(spans, gsize, i), e = g_array_index(spans, gsize, i + 1);
        char *old = g_strndup(text + s, e - s);

        g_strdelimit(old, "\r\n", ' ');
        g_string_append_len(out, text + from, (gssize)(s - from));
        g_string_append_printf(out, "keep; # custos-handover %s disabled: %s\n", id, old);
        g_free(old);
        from = e;
    }
    g_string_append(out, text + from);
    return g_string_free(out, FALSE);
}

static int disable_sieve(const char *path, const char *id, const char *backup_dir,
                         GPtrArray *changes, char **error_r)
{
    char *text = NULL, *bk = NULL, *out = NULL;
    GPtrArray *dests = NULL;
    GArray *spans = NULL;
    struct hov_owner o;
    int ret = -1;

    if (read_text(path, &text, error_r) < 0 || owner_from(path, &o, error_r) < 0)
        goto out;
    if (hov_sieve_redirects(text, &dests, &spans, error_r) < 0)
        goto out;
    if (dests->len == 0) {
        ret = 0;
        goto out;
    }
    if (backup(path, backup_dir, "redirect replaced by keep", &bk, error_r) < 0)
        goto out;
    out = hov_sieve_keep(text, spans, id);
    if (hov_write_owned(path, out, strlen(out), &o, error_r) < 0)
        goto out;
    g_ptr_array_add(changes, change_new(path, "redirect replaced by keep", bk));
    ret = 0;
out:
    g_free(out);
    if (dests != NULL)
        g_ptr_array_free(dests, TRUE);
    if (spans != NULL)
        g_array_free(spans, TRUE);
    g_free(text);
    g_free(bk);
    return ret;
}

int hov_forwards_disable(const struct cfg *cfg, GPtrArray *forwards, const char *id,
                         const char *backup_dir,
                         GPtrArray **changes_r, char **error_r)
{
    GPtrArray *changes = g_ptr_array_new_with_free_func(hov_fwd_change_free);
    GHashTable *done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int ret = 0;

    for (guint i = 0; i < forwards->len && ret == 0; i++) {
        const struct hov_forward *f = forwards->pdata[i];
        char *key = g_strdup_printf("%d %s", f->source, f->file);

        if (g_hash_table_contains(done, key)) {
            g_free(key);
            continue;
        }
        g_hash_table_add(done, key);
        if (f->source == HOV_FWD_ALIAS || f->source == HOV_FWD_VIRTUAL) {
            GArray *lines = g_array_new(FALSE, FALSE, sizeof(int));
            for (guint j = i; j < forwards->len; j++) {
                const struct hov_forward *g = forwards->pdata[j];
                if (g->source == f->source && strcmp(g->file, f->file) == 0)
                    g_array_append_val(lines, g->line);
            }
            ret = disable_map(cfg, f->file, f->source, lines, id, backup_dir, changes,
                              error_r);
            g_array_free(lines, TRUE);
        } else if (f->source == HOV_FWD_FORWARD) {
            ret = disable_forward(f->file, id, backup_dir, changes, error_r);
        } else {
            ret = disable_sieve(f->file, id, backup_dir, changes, error_r);
        }
    }
    g_hash_table_destroy(done);
    if (ret < 0) {
        g_ptr_array_free(changes, TRUE);
        return -1;
    }
    *changes_r = changes;
    return 0;
}
