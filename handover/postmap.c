/*
 * postmap.c - Postfix lookup tables that custos-handover writes or changes
 *
 * A map's type says whether Postfix reads the text itself (texthash: at
 * process start, so after `postfix reload`) or a file postmap(1) or
 * postalias(1) builds beside it (hash, btree: FILE.db; lmdb: FILE.lmdb;
 * cdb: FILE.cdb; dbm, sdbm: FILE.dir and FILE.pag), which Postfix's
 * processes notice on their own. The tools are run with -c
 * [handover] postfix_config; where that has no main.cf (custos-handover
 * run on another host than Postfix) nothing is built and the note says
 * the command to run where Postfix is.
 */
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "handover-private.h"

static const char *pfdir(const struct cfg *cfg)
{
    return cfg->hov_postfix_config != NULL ? cfg->hov_postfix_config : "/etc/postfix";
}

static const char *const built_types[] = { "hash", "btree", "lmdb", "cdb", "dbm", "sdbm" };

static int is_built(const char *type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(built_types); i++)
        if (strcmp(type, built_types[i]) == 0)
            return 1;
    return 0;
}

/* A Postfix tool: on PATH, else in /usr/sbin (cron's PATH lacks it); NULL if neither. */
static char *tool(const char *name)
{
    char *p = g_find_program_in_path(name);

    if (p == NULL) {
        p = g_strconcat("/usr/sbin/", name, NULL);
        if (access(p, X_OK) < 0) {
            g_free(p);
            p = NULL;
        }
    }
    return p;
}

/* Does postfix_config hold a main.cf the tools can read? */
static int config_here(const struct cfg *cfg)
{
    char *main_cf = g_build_filename(pfdir(cfg), "main.cf", NULL);
    int ok = access(main_cf, R_OK) == 0;

    g_free(main_cf);
    return ok;
}

/* Run argv; 0, or -1 with its message in error_r. */
static int run(char **argv, char **out_r, char **error_r)
{
    char *out = NULL, *err = NULL;
    GError *gerr = NULL;
    int status = 0, ret = -1;

    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                      &gerr)) {
        cus_error(error_r, "%s: %s", argv[0], gerr->message);
        g_error_free(gerr);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *cmd = g_strjoinv(" ", argv);
        cus_error(error_r, "%s failed (exit %d): %s", cmd,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                  err != NULL ? g_strstrip(err) : "");
        g_free(cmd);
    } else {
        if (out_r != NULL) {
            *out_r = g_strstrip(out);
            out = NULL;
        }
        ret = 0;
    }
    g_free(out);
    g_free(err);
    return ret;
}

char *hov_map_default_type(const struct cfg *cfg)
{
    char *postconf = tool("postconf"), *out = NULL;
    char *argv[] = { postconf, "-c", (char *)pfdir(cfg), "-h", "default_database_type",
                     NULL };

    if (postconf != NULL && config_here(cfg) && run(argv, &out, NULL) == 0 &&
        is_built(out)) {
        g_free(postconf);
        return out;
    }
    g_free(out);
    g_free(postconf);
    return g_strdup("hash");
}

int hov_map_spec(const struct cfg *cfg, const char *arg, char **type_r, char **path_r,
                 char **error_r)
{
    const char *colon = strchr(arg, ':');
    char *type;

    /* "TYPE:FILE" when what comes before ':' is a word (a path may hold ':' too) */
    if (colon != NULL && colon > arg && strspn(arg, "abcdefghijklmnopqrstuvwxyz") ==
                                            (size_t)(colon - arg)) {
        type = g_strndup(arg, (gsize)(colon - arg));
        if (!is_built(type) && strcmp(type, "texthash") != 0) {
            cus_error(error_r, "--postfix-map %s: a map of type %s is not written here "
                      "(hash, btree, lmdb, cdb, dbm, sdbm or texthash)", arg, type);
            g_free(type);
            return -1;
        }
        arg = colon + 1;
    } else {
        type = hov_map_default_type(cfg);
    }
    if (*arg == '\0') {
        g_free(type);
        return cus_error(error_r, "--postfix-map: no file name");
    }
    *type_r = type;
    *path_r = g_path_is_absolute(arg) ? g_strdup(arg)
                                      : g_build_filename(g_get_current_dir(), arg, NULL);
    return 0;
}

int hov_map_build(const struct cfg *cfg, const char *prog, const char *type, const char *path,
                  char **note_r, char **error_r)
{
    char *bin, *spec = g_strdup_printf("%s:%s", type, path);
    char *argv[] = { NULL, "-c", (char *)pfdir(cfg), spec, NULL };
    int ret;

    if (!is_built(type)) {
        *note_r = g_strdup_printf("%s is read as text: `postfix reload` makes Postfix read "
                                  "it again", spec);
        g_free(spec);
        return 0;
    }
    bin = tool(prog);
    if (bin == NULL || !config_here(cfg)) {
        *note_r = g_strdup_printf("not built here (%s): run `%s %s` where Postfix runs",
                                  bin == NULL ? "Postfix's tools are not installed"
                                              : "no main.cf in [handover] postfix_config",
                                  prog, spec);
        g_free(bin);
        g_free(spec);
        return 1;
    }
    argv[0] = bin;
    ret = run(argv, NULL, error_r);
    if (ret == 0)
        *note_r = g_strdup_printf("built: %s -c %s %s", prog, pfdir(cfg), spec);
    g_free(bin);
    g_free(spec);
    return ret;
}

char *hov_map_built_type(const struct cfg *cfg, const char *path)
{
    static const struct { const char *ext, *type; } beside[] = {
        { ".lmdb", "lmdb" }, { ".cdb", "cdb" }, { ".db", NULL }, { ".pag", "dbm" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(beside); i++) {
        char *c = g_strconcat(path, beside[i].ext, NULL);
        int there = access(c, F_OK) == 0;

        g_free(c);
        if (!there)
            continue;
        if (beside[i].type != NULL)
            return g_strdup(beside[i].type);
        /* .db: hash or btree, whichever this Postfix makes by default */
        {
            char *d = hov_map_default_type(cfg);
            if (strcmp(d, "btree") == 0)
                return d;
            g_free(d);
            return g_strdup("hash");
        }
    }
    return NULL;
}
