/*
 * cmd-incidents.c - custos-archive incidents: what custos-milter flagged
 *
 * Lists incidents (incident.h) oldest first: time, category, rule,
 * action, sender, recipients, evidence and the archive id, as text (one
 * line each, tab-separated, control characters of the evidence escaped)
 * or JSON. A query (query.h) restricts them to the messages it matches.
 * Reading is recorded in the audit log like a search.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "custos/archive.h"
#include "custos/cli.h"
#include "custos/incident.h"
#include "custos/log.h"
#include "custos/spool.h"
#include "custos/util.h"

CUS_COMMAND(incidents, "incidents", "incidents [--json] [--since DATE] [--until DATE] [--category C] [--limit N] [QUERY]\n                             what custos-milter flagged, oldest first")

#define INCIDENTS_USAGE "incidents [--json] [--since DATE] [--until DATE] [--category C] " \
                        "[--limit N] [QUERY]"

struct inc_out {
    int json;
    gint64 n;
};

/* Text column: tab, CR, LF and other control characters escaped. */
static void put_text(GString *s, const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        switch (*p) {
        case '\t': g_string_append(s, "\\t"); break;
        case '\n': g_string_append(s, "\\n"); break;
        case '\r': g_string_append(s, "\\r"); break;
        case '\\': g_string_append(s, "\\\\"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                g_string_append_printf(s, "\\x%02x", *p);
            else
                g_string_append_c(s, (char)*p);
        }
    }
}

static int print_incident(void *ctx, const struct incident *inc)
{
    struct inc_out *o = ctx;
    char when[32];
    GString *s = g_string_new(NULL);

    cus_iso8601(inc->time, when, sizeof(when));
    if (o->json) {
        g_string_append_printf(s, "%s{\"time\":\"%s\",\"category\":", o->n > 0 ? ",\n " : "",
                               when);
        cus_json_str(s, inc->category);
        g_string_append(s, ",\"rule\":");
        cus_json_str(s, inc->rule);
        g_string_append(s, ",\"action\":");
        cus_json_str(s, inc->action);
        g_string_append(s, ",\"sender\":");
        cus_json_str(s, inc->sender);
        g_string_append(s, ",\"auth\":");
        if (*inc->auth != '\0')
            cus_json_str(s, inc->auth);
        else
            g_string_append(s, "null");
        g_string_append(s, ",\"recipients\":[");
        for (int i = 0; inc->rcpts[i] != NULL; i++) {
            if (i > 0)
                g_string_append_c(s, ',');
            cus_json_str(s, inc->rcpts[i]);
        }
        g_string_append(s, "],\"evidence\":");
        cus_json_str(s, inc->evidence);
        g_string_append_printf(s, ",\"archive_id\":%" G_GINT64_FORMAT ",\"purged\":%s,"
                               "\"sha256\":\"%s\",\"spool_id\":", inc->msg,
                               inc->purged ? "true" : "false", inc->sha256);
        if (*inc->spool_id != '\0')
            cus_json_str(s, inc->spool_id);
        else
            g_string_append(s, "null");
        g_string_append_printf(s, ",\"chain_seq\":%" G_GINT64_FORMAT "}", inc->seq);
    } else {
        char *rcpts = g_strjoinv(",", inc->rcpts);

        g_string_append_printf(s, "%s\t", when);
        put_text(s, inc->category);
        g_string_append_c(s, '\t');
        put_text(s, inc->rule);
        g_string_append_c(s, '\t');
        put_text(s, inc->action);
        g_string_append_c(s, '\t');
        put_text(s, *inc->sender != '\0' ? inc->sender : "<>");
        g_string_append_c(s, '\t');
        put_text(s, rcpts);
        g_string_append_c(s, '\t');
        put_text(s, inc->evidence);
        g_string_append_printf(s, "\t%" G_GINT64_FORMAT "%s\n", inc->msg,
                               inc->purged ? " (purged)" : "");
        g_free(rcpts);
    }
    fputs(s->str, stdout);
    g_string_free(s, TRUE);
    o->n++;
    return 0;
}

int cmd_incidents(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' }, { "since", required_argument, NULL, 's' },
        { "until", required_argument, NULL, 'u' },
        { "category", required_argument, NULL, 'c' },
        { "limit", required_argument, NULL, 'l' }, { NULL, 0, NULL, 0 },
    };
    struct inc_out o = { 0, 0 };
    struct incident_filter f;
    struct arc *arc = NULL;
    struct qry *q = NULL;
    char *err = NULL, *query = NULL, *cat = NULL;
    gint64 audit_id = 0;
    int opt, ret;

    memset(&f, 0, sizeof(f));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case 'j': o.json = 1; break;
        case 's':
        case 'u': {
            gint64 t = cli_date(opt == 's' ? "--since" : "--until", optarg, &err);
            if (t == -1 && err != NULL) {
                g_free(cat);
                return cli_fail(&err, EX_USAGE_);
            }
            /* 0 means "no bound" to the filter: the epoch itself is 1 s on */
            if (opt == 's')
                f.since = t != 0 ? t : 1;
            else
                f.until = t != 0 ? t : 1;
            break;
        }
        case 'c':
            g_free(cat);
            cat = g_ascii_strdown(optarg, -1);
            if (!spool_token_valid(cat)) {
                log_error("--category: \"%s\" is not a category (letters, digits and . / _ - "
                          "only, such as departed-sender)", optarg);
                g_free(cat);
                return EX_USAGE_;
            }
            break;
        case 'l': f.limit = cli_count("--limit", optarg); break;
        default: cli_usage(INCIDENTS_USAGE);
        }
    }
    f.category = cat;
    query = g_strjoinv(" ", argv + optind);
    g_strstrip(query);
    if (*query != '\0' && qry_compile(query, &q, &err) < 0) {
        g_free(query);
        g_free(cat);
        return cli_fail(&err, EX_DATAERR_);
    }
    f.query = q;
    if (arc_open(cfg, ARC_AUDIT, &arc, &err) < 0) {
        ret = cli_fail(&err, cli_open_status(err));
        goto out;
    }
    if ((ret = cli_audit_begin(arc_index(arc), argc, argv, &audit_id)) != 0)
        goto out;
    if (o.json)
        fputs("[", stdout);
    ret = incident_list(arc_index(arc), &f, print_incident, &o, &err);
    if (o.json)
        fputs("]\n", stdout);
    cli_audit_end(arc_index(arc), audit_id, ret < 0 ? -1 : o.n, ret < 0 ? EX_IOERR_ : 0, "");
    if (ret < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        goto out;
    }
    if (!o.json)
        fprintf(stderr, "%" G_GINT64_FORMAT " incident%s\n", o.n, o.n == 1 ? "" : "s");
    ret = 0;
out:
    arc_close(&arc);
    qry_free(&q);
    g_free(query);
    g_free(cat);
    return ret;
}
