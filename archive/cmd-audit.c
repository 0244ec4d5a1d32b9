/*
 * cmd-audit.c - custos-archive audit: who read or changed the archive
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "custos/archive.h"
#include "custos/audit.h"
#include "custos/cli.h"
#include "custos/log.h"
#include "custos/util.h"

CUS_COMMAND(audit, "audit", "audit [--json] [--since DATE] [--user NAME]  who read or changed the archive")

#define AUDIT_USAGE "audit [--json] [--since DATE] [--user NAME]"

struct audit_out {
    int json;
    const char *user;
    gint64 n;
};

/* "ok", "exit N" (the command's exit status), or "running" (or died). */
static const char *status_word(int status, char *buf, size_t size)
{
    if (status < 0)
        return "running";
    if (status == 0)
        return "ok";
    g_snprintf(buf, size, "exit %d", status);
    return buf;
}

static int print_entry(void *ctx, const struct audit_entry *e)
{
    struct audit_out *o = ctx;
    char when[32], sbuf[16];

    if (o->user != NULL && strcmp(e->user, o->user) != 0 &&
        !(g_str_has_prefix(e->user, o->user) && e->user[strlen(o->user)] == ' '))
        return 0;
    cus_iso8601(e->time, when, sizeof(when));
    if (o->json) {
        GString *j = g_string_new(NULL);

        g_string_append_printf(j, "%s{\"id\":%" G_GINT64_FORMAT ",\"time\":\"%s\",\"user\":",
                               o->n > 0 ? ",\n " : "", e->id, when);
        cus_json_str(j, e->user);
        g_string_append_printf(j, ",\"uid\":%" G_GINT64_FORMAT ",\"command\":", e->uid);
        cus_json_str(j, e->command);
        g_string_append(j, ",\"args\":");
        cus_json_str(j, e->args);
        g_string_append_printf(j, ",\"results\":%" G_GINT64_FORMAT ",\"status\":%d,"
                               "\"outcome\":\"%s\",\"detail\":", e->results, e->status,
                               status_word(e->status, sbuf, sizeof(sbuf)));
        cus_json_str(j, e->detail);
        if (e->seq > 0)
            g_string_append_printf(j, ",\"chain_seq\":%" G_GINT64_FORMAT "}", e->seq);
        else
            g_string_append(j, ",\"chain_seq\":null}");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        char res[32];

        if (e->results >= 0)
            g_snprintf(res, sizeof(res), "%" G_GINT64_FORMAT, e->results);
        else
            g_strlcpy(res, "-", sizeof(res));
        printf("%-6" G_GINT64_FORMAT " %s  %-12s %-10s %6s  %-7s ", e->id, when, e->user,
               e->command, res, status_word(e->status, sbuf, sizeof(sbuf)));
        if (e->seq > 0)
            printf("chain %-8" G_GINT64_FORMAT, e->seq);
        else
            printf("%-14s", "pending");
        printf(" %s%s%s\n", e->args, *e->detail ? "  # " : "", e->detail);
    }
    o->n++;
    return 0;
}

int cmd_audit(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' }, { "since", required_argument, NULL, 's' },
        { "user", required_argument, NULL, 'u' }, { NULL, 0, NULL, 0 },
    };
    struct audit_out o = { 0, NULL, 0 };
    struct arc *arc = NULL;
    gint64 since = G_MININT64, audit_id = 0;
    char *err = NULL;
    int opt, ret;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case 'j': o.json = 1; break;
        case 's':
            if ((since = cli_date("--since", optarg, &err)) == -1 && err != NULL)
                return cli_fail(&err, EX_USAGE_);
            break;
        case 'u': o.user = optarg; break;
        default: cli_usage(AUDIT_USAGE);
        }
    }
    if (optind != argc)
        cli_usage(AUDIT_USAGE);
    if (arc_open(cfg, ARC_AUDIT, &arc, &err) < 0)
        return cli_fail(&err, cli_open_status(err));
    /* Reading the audit log is recorded too. */
    if ((ret = cli_audit_begin(arc_index(arc), argc, argv, &audit_id)) != 0) {
        arc_close(&arc);
        return ret;
    }
    if (o.json)
        fputs("[", stdout);
    ret = audit_list(arc_index(arc), since, print_entry, &o, &err);
    if (o.json)
        fputs(o.n > 0 ? "]\n" : "]\n", stdout);
    cli_audit_end(arc_index(arc), audit_id, o.n, ret < 0 ? EX_IOERR_ : 0, "");
    arc_close(&arc);
    if (ret < 0)
        return cli_fail(&err, EX_IOERR_);
    return 0;
}
