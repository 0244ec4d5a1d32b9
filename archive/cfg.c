/*
 * cfg.c - custos.conf: a declarative option table over GLib's GKeyFile
 *
 * Every option is one row of cfg_opts (group, key, type, default, bounds,
 * where in struct cfg). Loading checks every line: an unknown group or key,
 * a bad value or a missing file is an error naming the file, the line and
 * the key. The struct is immutable once loaded.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "custos/cfg.h"
#include "custos/log.h"
#include "custos/util.h"

enum cfg_type { CT_STR, CT_PATH, CT_BOOL, CT_INT, CT_SIZE, CT_LEVEL };

struct cfg_opt {
    const char *group, *key;
    enum cfg_type type;
    const char *dflt;           /* as it would be written in the file */
    long long min, max;         /* CT_INT, CT_SIZE */
    size_t off;                 /* offset in struct cfg */
};

#define O(f) offsetof(struct cfg, f)
static const struct cfg_opt cfg_opts[] = {
    { "archive", "dir", CT_PATH, "/var/lib/custos", 0, 0, O(arc_dir) },
    { "archive", "segment_size", CT_SIZE, "256M", 1 << 16, 1LL << 40, O(arc_segment_size) },
    { "archive", "zstd_level", CT_INT, "3", 1, 19, O(arc_zstd_level) },
    { "archive", "dictionary", CT_BOOL, "true", 0, 0, O(arc_dict) },
    { "archive", "key_file", CT_PATH, "", 0, 0, O(arc_key_file) },
    { "archive", "key_id", CT_STR, "", 0, 0, O(arc_key_id) },
    { "archive", "batch", CT_INT, "500", 1, 100000, O(arc_batch) },
    { "archive", "group", CT_STR, "", 0, 0, O(arc_group) },
    { "archive", "departments", CT_STR, "sales", 0, 0, O(arc_departments) },
    { "directory", "webmail_domains", CT_PATH, "/etc/custos/webmail-domains.txt", 0, 0,
      O(dir_webmail) },
    { "spool", "dir", CT_PATH, "", 0, 0, O(spool_dir) },
    { "chain", "sign_key", CT_PATH, "", 0, 0, O(chain_sign_key) },
    { "chain", "verify_key", CT_PATH, "", 0, 0, O(chain_verify_key) },
    { "chain", "checkpoint_interval", CT_INT, "300", 0, 86400 * 7, O(chain_interval) },
    { "limits", "message_size", CT_SIZE, "64M", 1024, 1LL << 32, O(lim_message_size) },
    { "limits", "depth", CT_INT, "8", 1, 64, O(lim_depth) },
    { "limits", "parts", CT_INT, "1000", 1, 100000, O(lim_parts) },
    { "limits", "expanded_size", CT_SIZE, "256M", 1024, 1LL << 34, O(lim_expanded_size) },
    { "limits", "expansion_ratio", CT_INT, "100", 2, 100000, O(lim_expansion_ratio) },
    { "limits", "text_size", CT_SIZE, "8M", 1024, 1LL << 31, O(lim_text_size) },
    { "log", "level", CT_LEVEL, "info", 0, 0, O(log_level) },
    { "log", "syslog", CT_BOOL, "false", 0, 0, O(log_syslog) },
};
#undef O
#define N_OPTS (sizeof(cfg_opts) / sizeof(cfg_opts[0]))

const char *cfg_path(const char *explicit_path)
{
    const char *env;

    if (explicit_path != NULL)
        return explicit_path;
    env = getenv("CUSTOS_CONF");
    if (env != NULL && *env != '\0')
        return env;
    return CFG_DEFAULT_PATH;
}

static int parse_size(const char *s, unsigned long long *v)
{
    char *end;
    unsigned long long n, mul = 1;

    errno = 0;
    if (!g_ascii_isdigit(*s))
        return -1;
    n = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    switch (g_ascii_toupper(*end)) {
    case '\0': break;
    case 'K': mul = 1ULL << 10; end++; break;
    case 'M': mul = 1ULL << 20; end++; break;
    case 'G': mul = 1ULL << 30; end++; break;
    case 'T': mul = 1ULL << 40; end++; break;
    default: return -1;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || (n != 0 && mul > ULLONG_MAX / n))
        return -1;
    *v = n * mul;
    return 0;
}

/* Store text as the value of opt in cfg; an error says what was expected. */
static int opt_set(struct cfg *cfg, const struct cfg_opt *opt, const char *text,
                   char **error_r)
{
    char *p = (char *)cfg + opt->off;
    unsigned long long u;
    long long n;
    char *end;
    int lvl;

    switch (opt->type) {
    case CT_STR:
    case CT_PATH:
        if (opt->type == CT_PATH && *text != '\0' && *text != '/')
            return cus_error(error_r, "must be an absolute path, not \"%s\"", text);
        g_free(*(char **)p);
        *(char **)p = *text == '\0' ? NULL : g_strdup(text);
        return 0;
    case CT_BOOL:
        if (g_ascii_strcasecmp(text, "true") == 0 || g_ascii_strcasecmp(text, "yes") == 0 ||
            strcmp(text, "1") == 0)
            *(int *)p = 1;
        else if (g_ascii_strcasecmp(text, "false") == 0 || g_ascii_strcasecmp(text, "no") == 0 ||
                 strcmp(text, "0") == 0)
            *(int *)p = 0;
        else
            return cus_error(error_r, "expected true or false, not \"%s\"", text);
        return 0;
    case CT_INT:
        errno = 0;
        n = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0')
            return cus_error(error_r, "expected a whole number, not \"%s\"", text);
        if (n < opt->min || n > opt->max)
            return cus_error(error_r, "%lld is out of range %lld..%lld", n, opt->min, opt->max);
        *(int *)p = (int)n;
        return 0;
    case CT_SIZE:
        if (parse_size(text, &u) < 0)
            return cus_error(error_r, "expected a size like 64M, not \"%s\"", text);
        if (u < (unsigned long long)opt->min || u > (unsigned long long)opt->max)
            return cus_error(error_r, "%s is out of range %lld..%lld bytes", text,
                             opt->min, opt->max);
        *(uint64_t *)p = u;
        return 0;
    case CT_LEVEL:
        lvl = log_level_parse(text);
        if (lvl < 0)
            return cus_error(error_r, "expected debug, info, warning or error, not \"%s\"", text);
        *(int *)p = lvl;
        return 0;
    }
    return cus_error(error_r, "internal: bad option type");
}

static const struct cfg_opt *opt_find(const char *group, const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(cfg_opts[i].group, group) == 0 &&
            (key == NULL || strcmp(cfg_opts[i].key, key) == 0))
            return &cfg_opts[i];
    return NULL;
}

struct cfg *cfg_defaults(void)
{
    struct cfg *cfg = g_new0(struct cfg, 1);

    for (size_t i = 0; i < N_OPTS; i++)
        if (opt_set(cfg, &cfg_opts[i], cfg_opts[i].dflt, NULL) < 0)
            log_fatal("internal: bad default for [%s] %s", cfg_opts[i].group,
                      cfg_opts[i].key);
    return cfg;
}

/*
 * GKeyFile keeps no line numbers, so we walk the lines ourselves: each
 * must be blank, a comment, [group] or key = value. Then GKeyFile reads
 * the same text (for its escapes and list syntax) and each value is
 * checked against the table, with the line we found it on.
 */
int cfg_load(const char *path, struct cfg **cfg_r, char **error_r)
{
    GBytes *data = NULL;
    GKeyFile *kf = NULL;
    GError *gerr = NULL;
    struct cfg *cfg = NULL;
    char **lines = NULL, *group = NULL, *err = NULL;
    const char *text;
    int ret = -1;

    if (cus_read_file(path, 1 << 20, &data, &err) < 0) {
        cus_error(error_r, "config %s: %s", path, err);
        goto out;
    }
    text = g_bytes_get_data(data, NULL);
    if (!g_utf8_validate(text, -1, NULL)) {
        cus_error(error_r, "config %s: not valid UTF-8", path);
        goto out;
    }
    kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &gerr)) {
        /* Our own pass below gives the line; GLib's message is the fallback. */
    }
    cfg = cfg_defaults();
    cfg->path = g_strdup(path);
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] != NULL; i++) {
        char *line = g_strstrip(lines[i]), *eq, *key, *val;
        const struct cfg_opt *opt;

        if (*line == '\0' || *line == '#' || *line == ';')
            continue;
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (close == NULL || close[1] != '\0') {
                cus_error(error_r, "config %s:%d: bad group line \"%s\"", path, i + 1, line);
                goto out;
            }
            g_free(group);
            group = g_strndup(line + 1, (gsize)(close - line - 1));
            if (opt_find(group, NULL) == NULL) {
                cus_error(error_r, "config %s:%d: unknown group [%s]", path, i + 1, group);
                goto out;
            }
            continue;
        }
        eq = strchr(line, '=');
        if (eq == NULL) {
            cus_error(error_r, "config %s:%d: expected key = value, got \"%s\"", path, i + 1, line);
            goto out;
        }
        if (group == NULL) {
            cus_error(error_r, "config %s:%d: key before any [group]", path, i + 1);
            goto out;
        }
        *eq = '\0';
        key = g_strstrip(line);
        opt = opt_find(group, key);
        if (opt == NULL) {
            cus_error(error_r, "config %s:%d: unknown key \"%s\" in [%s]", path, i + 1, key, group);
            goto out;
        }
        /* Take the value as GKeyFile reads it (escapes), or raw if it failed. */
        val = gerr == NULL ? g_key_file_get_string(kf, group, key, NULL) : NULL;
        if (val == NULL)
            val = g_strdup(g_strstrip(eq + 1));
        if (opt_set(cfg, opt, val, &err) < 0) {
            cus_error(error_r, "config %s:%d: [%s] %s: %s", path, i + 1, group, key, err);
            g_free(val);
            goto out;
        }
        g_free(val);
    }
    if (gerr != NULL) {
        cus_error(error_r, "config %s: %s", path, gerr->message);
        goto out;
    }
    *cfg_r = cfg;
    cfg = NULL;
    ret = 0;
out:
    g_free(err);
    g_free(group);
    g_strfreev(lines);
    if (gerr != NULL)
        g_error_free(gerr);
    if (kf != NULL)
        g_key_file_free(kf);
    if (data != NULL)
        g_bytes_unref(data);
    cfg_free(&cfg);
    return ret;
}

void cfg_free(struct cfg **cfgp)
{
    struct cfg *cfg = *cfgp;

    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_OPTS; i++)
        if (cfg_opts[i].type == CT_STR || cfg_opts[i].type == CT_PATH)
            g_free(*(char **)((char *)cfg + cfg_opts[i].off));
    g_free(cfg->path);
    g_free(cfg);
    *cfgp = NULL;
}

char *cfg_spool_dir(const struct cfg *cfg)
{
    if (cfg->spool_dir != NULL)
        return g_strdup(cfg->spool_dir);
    return g_build_filename(cfg->arc_dir, "spool", NULL);
}

void cfg_dump(const struct cfg *cfg, FILE *out)
{
    static const char *levels[] = { "debug", "info", "warning", "error" };
    const char *group = "";

    for (size_t i = 0; i < N_OPTS; i++) {
        const struct cfg_opt *o = &cfg_opts[i];
        const char *p = (const char *)cfg + o->off;

        if (strcmp(group, o->group) != 0) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", o->group);
            group = o->group;
        }
        fprintf(out, "%s = ", o->key);
        switch (o->type) {
        case CT_STR:
        case CT_PATH:
            fprintf(out, "%s\n", *(char *const *)p ? *(char *const *)p : "");
            break;
        case CT_BOOL:
            fprintf(out, "%s\n", *(const int *)p ? "true" : "false");
            break;
        case CT_INT:
            fprintf(out, "%d\n", *(const int *)p);
            break;
        case CT_SIZE:
            fprintf(out, "%llu\n", (unsigned long long)*(const uint64_t *)p);
            break;
        case CT_LEVEL:
            fprintf(out, "%s\n", levels[*(const int *)p]);
            break;
        }
    }
}
