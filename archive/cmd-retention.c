/*
 * cmd-retention.c - custos-archive retention and hold: purge what is past
 * its period, place and release legal holds (retention.h)
 *
 * Each records an audit entry (cli.h) before it reads anything: retention
 * with the number purged and the periods in effect, hold add and release
 * with the hold's name, hold list with the number of holds.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "custos/archive.h"
#include "custos/cli.h"
#include "custos/log.h"
#include "custos/retention.h"
#include "custos/util.h"

CUS_COMMAND(retention, "retention", "retention [--dry-run] [--json]")
CUS_COMMAND(hold, "hold", "hold add NAME QUERY [--note TEXT] | hold list [--json] | hold release NAME")

#define RETENTION_USAGE "retention [--dry-run] [--json]"
#define HOLD_USAGE "hold add NAME QUERY [--note TEXT] | hold list [--json] | hold release NAME"

struct ret_out {
    int json, dry_run;
    GString *j;             /* --json: the messages */
    gint64 n;
};

static void print_item(void *ctx, const struct ret_item *it)
{
    struct ret_out *o = ctx;
    char when[32], hex[CUS_SHA256_HEX], period[16];

    cus_iso8601(it->added, when, sizeof(when));
    cus_hex(it->sha, CUS_SHA256_LEN, hex);
    cfg_period_format(&it->period, period, sizeof(period));
    if (o->json) {
        g_string_append_printf(o->j, "%s\n  {\"id\":%" G_GINT64_FORMAT ",\"sha256\":\"%s\","
                               "\"archived\":\"%s\",\"rule\":", o->n ? "," : "", it->id, hex,
                               when);
        cus_json_str(o->j, it->rule);
        g_string_append_printf(o->j, ",\"period\":\"%s\",\"size\":%" G_GINT64_FORMAT "}",
                               period, it->size);
    } else {
        printf("%s %-8" G_GINT64_FORMAT " archived %s  %s (%s)  %" G_GINT64_FORMAT " bytes\n",
               o->dry_run ? "would purge" : "purged", it->id, when, it->rule, period, it->size);
    }
    o->n++;
}

int cmd_retention(const struct cfg *cfg, int argc, char **argv)
{
    struct ret_out o = { 0 };
    struct ret_stats st;
    struct arc *arc = NULL;
    char *err = NULL, *rules = NULL, when[32];
    gint64 audit_id = 0, now = (gint64)time(NULL);
    int ret;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            o.dry_run = 1;
        else if (strcmp(argv[i], "--json") == 0)
            o.json = 1;
        else
            cli_usage(RETENTION_USAGE);
    }
    /* A dry run only reads: it runs beside the writer (ingest --follow). */
    if (arc_open(cfg, o.dry_run ? ARC_AUDIT : ARC_WRITE | ARC_WAIT, &arc, &err) < 0)
        return cli_fail(&err, EX_IOERR_);
    if ((ret = cli_audit_begin(arc_index(arc), argc, argv, &audit_id)) != 0) {
        arc_close(&arc);
        return ret;
    }
    rules = retention_rules(cfg);
    o.j = g_string_new(NULL);
    if (retention_run(arc, cfg, now, o.dry_run, print_item, &o, &st, &err) < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        if (o.json)
            fputs("{\"ok\":false}\n", stdout);
        cli_audit_end(arc_index(arc), audit_id, st.purged, ret, rules);
        goto out;
    }
    ret = st.fts_unmatched > 0 ? EX_OK_SKIPPED : 0;
    cli_audit_end(arc_index(arc), audit_id, st.purged, ret, rules);
    cus_iso8601(now, when, sizeof(when));
    if (o.json) {
        printf("{\"ok\":true,\"dry_run\":%s,\"time\":\"%s\",\"rules\":",
               o.dry_run ? "true" : "false", when);
        {
            GString *r = g_string_new(NULL);
            cus_json_str(r, rules);
            fputs(r->str, stdout);
            g_string_free(r, TRUE);
        }
        printf(",\"messages\":[%s%s],\"count\":%" G_GINT64_FORMAT ",\"bytes\":%" G_GINT64_FORMAT
               ",\"held\":%" G_GINT64_FORMAT ",\"segments_rewritten\":%" G_GINT64_FORMAT
               ",\"bytes_freed\":%" G_GUINT64_FORMAT ",\"fts_unmatched\":%" G_GINT64_FORMAT "}\n",
               o.j->str, o.n ? "\n" : "", st.purged, st.bytes, st.held, st.segments, st.freed,
               st.fts_unmatched);
    } else if (o.dry_run) {
        printf("retention --dry-run (%s): %" G_GINT64_FORMAT " messages (%" G_GINT64_FORMAT
               " bytes) would be purged, %" G_GINT64_FORMAT " past their period kept by "
               "holds; nothing changed\n", rules, st.purged, st.bytes, st.held);
    } else {
        printf("retention (%s): %" G_GINT64_FORMAT " messages (%" G_GINT64_FORMAT " bytes) "
               "purged, %" G_GINT64_FORMAT " past their period kept by holds; %" G_GINT64_FORMAT
               " segments rewritten, %" G_GUINT64_FORMAT " bytes freed\n", rules, st.purged,
               st.bytes, st.held, st.segments, st.freed);
    }
out:
    g_string_free(o.j, TRUE);
    g_free(rules);
    arc_close(&arc);
    return ret;
}

/* ---- hold ------------------------------------------------------------------- */

struct hold_out {
    int json;
    gint64 n;
    struct idx *idx;
};

static int print_hold(void *ctx, const struct hold *h)
{
    struct hold_out *o = ctx;
    char created[32], released[32];
    gint64 matches = -1;
    char *err = NULL;

    cus_iso8601(h->created, created, sizeof(created));
    if (h->released > 0)
        cus_iso8601(h->released, released, sizeof(released));
    if (h->released == 0 && hold_matches(o->idx, h->query, &matches, &err) < 0) {
        log_warn("hold \"%s\": %s", h->name, err);
        g_free(err);
        matches = -1;
    }
    if (o->json) {
        GString *j = g_string_new(o->n ? ",\n {" : "\n {");

        g_string_append(j, "\"name\":");
        cus_json_str(j, h->name);
        g_string_append(j, ",\"query\":");
        cus_json_str(j, h->query);
        g_string_append(j, ",\"note\":");
        cus_json_str(j, h->note);
        g_string_append_printf(j, ",\"active\":%s,\"created\":\"%s\",\"created_by\":",
                               h->released == 0 ? "true" : "false", created);
        cus_json_str(j, h->created_by);
        g_string_append_printf(j, ",\"seq\":%" G_GINT64_FORMAT, h->seq);
        if (h->released > 0) {
            g_string_append_printf(j, ",\"released\":\"%s\",\"released_by\":", released);
            cus_json_str(j, h->released_by != NULL ? h->released_by : "");
            g_string_append_printf(j, ",\"release_seq\":%" G_GINT64_FORMAT, h->release_seq);
        } else {
            g_string_append(j, ",\"released\":null,\"released_by\":null,\"release_seq\":null");
        }
        if (matches >= 0)
            g_string_append_printf(j, ",\"matches\":%" G_GINT64_FORMAT "}", matches);
        else
            g_string_append(j, ",\"matches\":null}");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else if (h->released == 0) {
        printf("%-20s active    since %s by %s, chain %" G_GINT64_FORMAT "; %" G_GINT64_FORMAT
               " messages match now\n    query: %s\n", h->name, created, h->created_by,
               h->seq, matches, h->query);
        if (*h->note != '\0')
            printf("    note: %s\n", h->note);
    } else {
        printf("%-20s released  %s by %s, chain %" G_GINT64_FORMAT " (placed %s by %s)\n"
               "    query: %s\n", h->name, released, h->released_by ? h->released_by : "",
               h->release_seq, created, h->created_by, h->query);
        if (*h->note != '\0')
            printf("    note: %s\n", h->note);
    }
    o->n++;
    return 0;
}

static int hold_list_cmd(const struct cfg *cfg, int argc, char **argv)
{
    struct hold_out o = { 0 };
    struct arc *arc = NULL;
    gint64 audit_id = 0;
    char *err = NULL;
    int ret;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            o.json = 1;
        else
            cli_usage(HOLD_USAGE);
    }
    if (arc_open(cfg, ARC_AUDIT, &arc, &err) < 0)
        return cli_fail(&err, EX_IOERR_);
    o.idx = arc_index(arc);
    if ((ret = cli_audit_begin(o.idx, argc, argv, &audit_id)) != 0) {
        arc_close(&arc);
        return ret;
    }
    if (o.json)
        fputs("[", stdout);
    if (hold_list(o.idx, print_hold, &o, &err) < 0) {
        if (o.json)
            fputs("]\n", stdout);
        ret = cli_fail(&err, EX_IOERR_);
    } else {
        if (o.json)
            printf("%s]\n", o.n ? "\n" : "");
        else if (o.n == 0)
            printf("no legal holds\n");
    }
    cli_audit_end(o.idx, audit_id, o.n, ret, "");
    arc_close(&arc);
    return ret;
}

/* hold add NAME QUERY [--note TEXT], hold release NAME: options anywhere;
 * "--" ends them (a query may begin with '-'). */
static int hold_change_cmd(const struct cfg *cfg, int argc, char **argv, int add)
{
    const char *pos[2] = { NULL, NULL }, *note = NULL;
    struct arc *arc = NULL;
    gint64 audit_id = 0, seq = 0, matches = -1;
    int npos = 0, opts = 1, ret, r;
    char *err = NULL;

    for (int i = 2; i < argc; i++) {
        if (opts && strcmp(argv[i], "--") == 0)
            opts = 0;
        else if (opts && add && strcmp(argv[i], "--note") == 0 && i + 1 < argc)
            note = argv[++i];
        else if (opts && add && g_str_has_prefix(argv[i], "--note="))
            note = argv[i] + 7;
        else if (npos < (add ? 2 : 1))
            pos[npos++] = argv[i];
        else
            cli_usage(HOLD_USAGE);
    }
    if (npos != (add ? 2 : 1))
        cli_usage(HOLD_USAGE);
    if (arc_open(cfg, ARC_WRITE | ARC_WAIT, &arc, &err) < 0)
        return cli_fail(&err, EX_IOERR_);
    if ((ret = cli_audit_begin(arc_index(arc), argc, argv, &audit_id)) != 0) {
        arc_close(&arc);
        return ret;
    }
    r = add ? hold_add(arc, pos[0], pos[1], note, &seq, &err)
            : hold_release(arc, pos[0], &seq, &err);
    if (r != HOLD_OK) {
        ret = cli_fail(&err, r == HOLD_BAD_INPUT ? EX_DATAERR_ : EX_IOERR_);
        cli_audit_end(arc_index(arc), audit_id, 0, ret, pos[0]);
        arc_close(&arc);
        return ret;
    }
    if (add && hold_matches(arc_index(arc), pos[1], &matches, &err) < 0) {
        log_warn("%s", err);
        g_free(err);
        matches = -1;
    }
    cli_audit_end(arc_index(arc), audit_id, add ? matches : 1, 0, pos[0]);
    if (add)
        printf("hold \"%s\" placed (chain entry %" G_GINT64_FORMAT "): %" G_GINT64_FORMAT
               " messages match now, and whatever matches at each retention run is kept\n",
               pos[0], seq, matches);
    else
        printf("hold \"%s\" released (chain entry %" G_GINT64_FORMAT ")\n", pos[0], seq);
    arc_close(&arc);
    return 0;
}

int cmd_hold(const struct cfg *cfg, int argc, char **argv)
{
    if (argc < 2)
        cli_usage(HOLD_USAGE);
    if (strcmp(argv[1], "add") == 0)
        return hold_change_cmd(cfg, argc, argv, 1);
    if (strcmp(argv[1], "release") == 0)
        return hold_change_cmd(cfg, argc, argv, 0);
    if (strcmp(argv[1], "list") == 0)
        return hold_list_cmd(cfg, argc, argv);
    cli_usage(HOLD_USAGE);
}
