/*
 * cmd-export.c - custos-archive export and verify-export: evidence for a
 * third party, and its check without the archive (formats in export.h)
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "custos/archive.h"
#include "custos/audit.h"
#include "custos/cli.h"
#include "custos/export.h"
#include "custos/log.h"
#include "custos/util.h"

CUS_COMMAND(export, "export", "export --format zip|tar|mbox -o FILE [--force] QUERY\n                             messages with the evidence that they are archived")
CUS_COMMAND(verify_export, "verify-export", "verify-export FILE [--key PUBKEY.pem] [--json]  check an export, without the archive")

#define EXPORT_USAGE "export --format zip|tar|mbox -o FILE [--force] QUERY"
#define VERIFY_USAGE "verify-export FILE [--key PUBKEY.pem] [--json]"
#define EX_TEMPFAIL_ 75     /* try again later: the writer's lock stayed taken */

int cmd_export(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "format", required_argument, NULL, 'f' }, { "output", required_argument, NULL, 'o' },
        { "force", no_argument, NULL, 'F' }, { NULL, 0, NULL, 0 },
    };
    struct exp_opts o = { 0 };
    struct exp_result r;
    struct arc *arc = NULL;
    gint64 audit_id = 0;
    char *err = NULL, *query = NULL, *user = NULL, *abs = NULL, *detail = NULL;
    int c, have_format = 0, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (exp_format_parse(optarg, &o.format) < 0) {
                log_error("export: --format: expected zip, tar or mbox, not \"%s\"", optarg);
                return EX_USAGE_;
            }
            have_format = 1;
            break;
        case 'o': o.path = optarg; break;
        case 'F': o.force = 1; break;
        default: cli_usage(EXPORT_USAGE);
        }
    }
    if (!have_format || o.path == NULL || optind >= argc)
        cli_usage(EXPORT_USAGE);
    query = g_strjoinv(" ", argv + optind);
    o.query = query;
    if (arc_open(cfg, ARC_AUDIT, &arc, &err) < 0) {
        g_free(query);
        return cli_fail(&err, cli_open_status(err));
    }
    if ((ret = cli_audit_begin(arc_index(arc), argc, argv, &audit_id)) != 0)
        goto out;
    user = audit_user(NULL);
    o.user = user;
    if (exp_export(arc, cfg, &o, &r, &err) < 0) {
        ret = r.fail == EXP_FAIL_QUERY ? EX_DATAERR_ :
              r.fail == EXP_FAIL_EXISTS || r.fail == EXP_FAIL_CREATE ? EX_CANTCREAT_ :
              r.fail == EXP_FAIL_BUSY ? EX_TEMPFAIL_ : EX_IOERR_;
        cli_audit_end(arc_index(arc), audit_id, -1, ret, "");
        cli_fail(&err, ret);
        if (ret == EX_IOERR_)
            log_error("export: nothing was written to %s", o.path);
        goto out;
    }
    if (r.messages == 0) {
        cli_audit_end(arc_index(arc), audit_id, 0, EX_OK_SKIPPED, "");
        log_error("export: no message matches \"%s\": nothing exported, %s not written",
                  query, o.path);
        ret = EX_OK_SKIPPED;
        goto out;
    }
    abs = g_canonicalize_filename(o.path, NULL);
    detail = g_strdup_printf("%s, manifest sha256 %s", abs, r.manifest_sha256);
    cli_audit_end(arc_index(arc), audit_id, r.messages, 0, detail);
    printf("exported %" G_GINT64_FORMAT " message%s to %s (%s): manifest sha256 %s, "
           "checkpoint seq %" G_GINT64_FORMAT "%s, statement %s%s\n", r.messages,
           r.messages == 1 ? "" : "s", abs, exp_format_name(o.format), r.manifest_sha256,
           r.checkpoint_seq, r.checkpoint_made ? " (made now)" : "",
           strcmp(r.key, "none") == 0 ? "not signed" : "signed by ",
           strcmp(r.key, "none") == 0 ? "" : r.key);
    if (strcmp(r.key, "none") == 0)
        log_warn("the export is not signed: set [chain] sign_key (custos.conf(5))");
    ret = 0;
out:
    arc_close(&arc);
    g_free(query);
    g_free(user);
    g_free(abs);
    g_free(detail);
    return ret;
}

struct vout {
    int json;
    GString *problems, *warnings;
    gint64 np, nw;
};

static void verify_export_print(void *ctx, const struct exp_problem *p)
{
    struct vout *o = ctx;
    GString *j = p->warning ? o->warnings : o->problems;
    gint64 *n = p->warning ? &o->nw : &o->np;

    if (o->json) {
        g_string_append(j, (*n)++ ? ",\n  {" : "\n  {");
        g_string_append(j, "\"object\":");
        cus_json_str(j, p->object);
        if (p->row > 0)
            g_string_append_printf(j, ",\"row\":%" G_GINT64_FORMAT, p->row);
        if (p->seq > 0)
            g_string_append_printf(j, ",\"seq\":%" G_GINT64_FORMAT, p->seq);
        g_string_append(j, ",\"what\":");
        cus_json_str(j, p->what);
        g_string_append_c(j, '}');
        return;
    }
    printf("%s %s", p->warning ? "warning" : "problem", p->object);
    if (p->row > 0)
        printf(" row %" G_GINT64_FORMAT, p->row);
    if (p->seq > 0)
        printf(" seq %" G_GINT64_FORMAT, p->seq);
    printf(": %s\n", p->what);
}

static const char *key_source_text(const char *src)
{
    if (src == NULL)
        return "";
    if (strcmp(src, "--key") == 0)
        return "the key given with --key";
    if (strcmp(src, "verify_key") == 0)
        return "[chain] verify_key";
    return "the key in the export: compare its id with the one published";
}

int cmd_verify_export(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "key", required_argument, NULL, 'k' }, { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    struct exp_verify_opts vo = { NULL, cfg->chain_verify_key };
    struct exp_verify_stats st;
    struct vout o = { 0 };
    const char *path = NULL;
    char *err = NULL;
    int c;

    optind = 0;             /* options after FILE too: a full restart of getopt */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': vo.key_path = optarg; break;
        case 'j': o.json = 1; break;
        default: cli_usage(VERIFY_USAGE);
        }
    }
    if (optind != argc - 1)
        cli_usage(VERIFY_USAGE);
    path = argv[optind];
    o.problems = g_string_new(NULL);
    o.warnings = g_string_new(NULL);
    if (exp_verify(path, &vo, verify_export_print, &o, &st, &err) < 0) {
        g_string_free(o.problems, TRUE);
        g_string_free(o.warnings, TRUE);
        return cli_fail(&err, st.unreadable > 0 ? st.unreadable : EX_IOERR_);
    }
    if (o.json) {
        GString *j = g_string_new(NULL);

        g_string_append_printf(j, "{\"ok\":%s,\"file\":", st.problems ? "false" : "true");
        cus_json_str(j, path);
        g_string_append_printf(j, ",\"format\":\"%s\",\"messages\":%" G_GINT64_FORMAT
                               ",\"files\":%" G_GINT64_FORMAT ",\"bytes\":%" G_GINT64_FORMAT
                               ",\"statement_signed\":%s,\"checkpoint_signed\":%s,"
                               "\"checkpoint_seq\":%" G_GINT64_FORMAT ",\"signatures_checked\":%s"
                               ",\"key\":", exp_format_name(st.format), st.messages, st.files,
                               st.bytes, st.statement_signed ? "true" : "false",
                               st.checkpoint_signed ? "true" : "false", st.checkpoint_seq,
                               st.signatures_checked ? "true" : "false");
        if (st.key[0] != '\0')
            cus_json_str(j, st.key);
        else
            g_string_append(j, "null");
        g_string_append(j, ",\"key_source\":");
        if (st.key_source != NULL)
            cus_json_str(j, st.key_source);
        else
            g_string_append(j, "null");
        g_string_append_printf(j, ",\n \"problems\":[%s%s],\n \"warnings\":[%s%s]}\n",
                               o.problems->str, o.np ? "\n " : "", o.warnings->str,
                               o.nw ? "\n " : "");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        printf("%s: %s export, %" G_GINT64_FORMAT " message%s, %" G_GINT64_FORMAT
               " files read (%.1f MB); statement %s, checkpoint seq %" G_GINT64_FORMAT " %s",
               st.problems ? "FAILED" : "OK", exp_format_name(st.format), st.messages,
               st.messages == 1 ? "" : "s", st.files, st.bytes / 1e6,
               st.statement_signed ? "signed" : "not signed", st.checkpoint_seq,
               st.checkpoint_signed ? "signed" : "not signed");
        if (st.signatures_checked)
            printf("; signatures checked with %s, %s", st.key, key_source_text(st.key_source));
        else if ((st.statement_signed || st.checkpoint_signed) && st.key[0] != '\0')
            printf("; signatures do not check with %s (%s)", st.key,
                   key_source_text(st.key_source));
        else if (st.statement_signed || st.checkpoint_signed)
            printf("; signatures not checked (no key)");
        if (st.warnings)
            printf("; %" G_GINT64_FORMAT " warning%s", st.warnings, st.warnings == 1 ? "" : "s");
        if (st.problems)
            printf("; %" G_GINT64_FORMAT " problem%s", st.problems, st.problems == 1 ? "" : "s");
        putchar('\n');
    }
    g_string_free(o.problems, TRUE);
    g_string_free(o.warnings, TRUE);
    if (fflush(stdout) != 0)
        return EX_IOERR_;
    return st.problems ? 1 : 0;
}
