/*
 * cli.c - what the custos-archive commands share; see cli.h
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "custos/audit.h"
#include "custos/cli.h"
#include "custos/log.h"
#include "custos/util.h"

void cli_usage(const char *usage)
{
    fprintf(stderr, "usage: custos-archive [-c FILE] %s\n", usage);
    exit(EX_USAGE_);
}

int cli_fail(char **err, int status)
{
    log_error("%s", *err);
    g_free(*err);
    *err = NULL;
    return status;
}

gint64 cli_count(const char *opt, const char *s)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0) {
        log_error("%s: expected a number >= 0, not \"%s\"", opt, s);
        exit(EX_USAGE_);
    }
    return v;
}

gint64 cli_date(const char *opt, const char *s, char **error_r)
{
    GDateTime *dt = NULL;
    GTimeZone *utc = g_time_zone_new_utc();
    int y, m, d;
    char c;
    gint64 t = -1;

    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &c) == 3 && strlen(s) == 10)
        dt = g_date_time_new(utc, y, m, d, 0, 0, 0);
    else
        dt = g_date_time_new_from_iso8601(s, utc);
    g_time_zone_unref(utc);
    if (dt == NULL)
        return cus_error(error_r, "%s: \"%s\" is not a date (YYYY-MM-DD, or ISO 8601 "
                         "such as 2026-05-01T09:30:00+08:00)", opt, s);
    t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return t;
}

char *cli_args(int argc, char **argv)
{
    GString *s = g_string_new(NULL);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != '\0';

        for (const char *p = a; *p != '\0' && plain; p++)
            plain = !g_ascii_isspace(*p) && strchr("'\"\\$`;&|<>(){}*?", *p) == NULL;
        if (s->len > 0)
            g_string_append_c(s, ' ');
        if (plain) {
            g_string_append(s, a);
        } else {
            char *q = g_shell_quote(a);
            g_string_append(s, q);
            g_free(q);
        }
    }
    return g_string_free(s, FALSE);
}

int cli_audit_begin(struct idx *idx, int argc, char **argv, gint64 *id_r)
{
    char *args = cli_args(argc, argv), *err = NULL;
    int ret = audit_begin(idx, argv[0], args, id_r, &err);

    g_free(args);
    if (ret < 0)
        return cli_fail(&err, EX_NOPERM_);
    return 0;
}

void cli_audit_end(struct idx *idx, gint64 id, gint64 results, int status, const char *detail)
{
    char *err = NULL;

    if (id > 0 && audit_end(idx, id, results, status, detail, &err) < 0) {
        log_error("%s", err);
        g_free(err);
    }
}

int cli_open_status(const char *err)
{
    return err != NULL && g_str_has_prefix(err, "permission denied") ? EX_NOPERM_ : EX_IOERR_;
}
