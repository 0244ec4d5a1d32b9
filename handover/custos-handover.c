/*
 * custos-handover.c - hand a leaver's mailbox, contacts and customers to a successor
 *
 *   custos-handover [-c FILE] [-n] COMMAND [ARGS]
 *   plan --from LEAVER --to SUCCESSOR [--effective DATE] [--notice DATE]
 *        [--split CUSTOMER=ADDRESS]... [--postfix-map [TYPE:]FILE] [--force]
 *   apply PLAN [--dry-run] | apply --from LEAVER --to SUCCESSOR [...] [--dry-run]
 *   status [PLAN]
 *   report PLAN [--format text|html|json]
 *   package PLAN -o FILE.zip [--force]
 *   forwards [ADDRESS]
 *
 * Exit status: 0 done; 64 usage; 65 bad input (a leaver, successor, date,
 * plan); 66 a mailbox missing or unreadable; 73 an output that cannot be
 * written (or is someone else's); 74 I/O, the archive, a tool; 78
 * configuration. See custos-handover(1) and handover.h.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include "custos/cfg.h"
#include "custos/cli.h"
#include "custos/handover.h"
#include "custos/log.h"
#include "custos/msg.h"
#include "custos/util.h"

static const char usage_text[] =
    "usage: custos-handover [-c FILE] [-n] COMMAND [ARGS]\n"
    "  -c FILE   configuration (default $CUSTOS_CONF or " CFG_DEFAULT_PATH ")\n"
    "  -n        check the configuration, print it, and exit\n"
    "commands:\n"
    "  plan --from LEAVER --to SUCCESSOR [--effective DATE] [--notice DATE]\n"
    "       [--split CUSTOMER=ADDRESS]... [--postfix-map [TYPE:]FILE] [--force]\n"
    "                             save a plan and show what apply would do\n"
    "  apply PLAN [--dry-run]     do it (or: apply with plan's arguments)\n"
    "  status [PLAN]              where each plan (or one) stands\n"
    "  report PLAN [--format text|html|json]\n"
    "  package PLAN -o FILE.zip [--force]\n"
    "  forwards [ADDRESS]         every forwarding of ADDRESS (or of everyone)\n";

static G_GNUC_NORETURN void usage(void)
{
    fputs(usage_text, stderr);
    exit(EX_USAGE_);
}

/* The one place a result becomes an exit status. */
static int exit_status(int r)
{
    switch (r) {
    case HOV_OK: return 0;
    case HOV_BAD_INPUT: return EX_DATAERR_;
    case HOV_NO_INPUT: return EX_NOINPUT_;
    case HOV_CANT_CREATE: return EX_CANTCREAT_;
    case HOV_CONFIG: return EX_CONFIG_;
    default: return EX_IOERR_;
    }
}

static int fail(int r, char **err)
{
    log_error("%s", *err != NULL ? *err : "failed");
    g_free(*err);
    *err = NULL;
    return exit_status(r);
}

enum { O_FROM = 1, O_TO, O_EFFECTIVE, O_NOTICE, O_SPLIT, O_MAP, O_FORCE, O_DRY, O_FORMAT };

static const struct option plan_opts[] = {
    { "from", required_argument, NULL, O_FROM },
    { "to", required_argument, NULL, O_TO },
    { "effective", required_argument, NULL, O_EFFECTIVE },
    { "notice", required_argument, NULL, O_NOTICE },
    { "split", required_argument, NULL, O_SPLIT },
    { "postfix-map", required_argument, NULL, O_MAP },
    { "force", no_argument, NULL, O_FORCE },
    { "dry-run", no_argument, NULL, O_DRY },
    { "format", required_argument, NULL, O_FORMAT },
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
};

struct args {
    struct hov_opts o;
    GPtrArray *splits;
    const char *format, *output;
    char **pos;
    int npos;
};

/* Options of every command; which are allowed is checked by the caller. */
static void parse(int argc, char **argv, struct args *a, const char *allowed)
{
    int c;

    memset(a, 0, sizeof(*a));
    a->splits = g_ptr_array_new();
    optind = 0;                 /* a fresh scan; options may follow the plan id */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:", plan_opts, NULL)) != -1) {
        if (c == '?' || c == ':' || strchr(allowed, c == 'o' ? 'o' : 'A' + c) == NULL) {
            fprintf(stderr, "custos-handover %s: unknown or misplaced option %s\n", argv[0],
                    argv[optind - 1]);
            usage();
        }
        switch (c) {
        case O_FROM: a->o.from = optarg; break;
        case O_TO: a->o.to = optarg; break;
        case O_EFFECTIVE: a->o.effective = optarg; break;
        case O_NOTICE: a->o.notice = optarg; break;
        case O_SPLIT: g_ptr_array_add(a->splits, optarg); break;
        case O_MAP: a->o.postfix_map = optarg; break;
        case O_FORCE: a->o.force = 1; break;
        case O_DRY: a->o.dry_run = 1; break;
        case O_FORMAT: a->format = optarg; break;
        case 'o': a->output = optarg; break;
        }
    }
    g_ptr_array_add(a->splits, NULL);
    a->o.splits = (const char *const *)a->splits->pdata;
    a->pos = argv + optind;
    a->npos = argc - optind;
}

/* Allowed-option strings: 'A' + the option's code, 'o' for -o. */
#define A(x) ('A' + (x))
static const char plan_allowed[] = { A(O_FROM), A(O_TO), A(O_EFFECTIVE), A(O_NOTICE),
                                     A(O_SPLIT), A(O_MAP), A(O_FORCE), '\0' };
static const char apply_allowed[] = { A(O_FROM), A(O_TO), A(O_EFFECTIVE), A(O_NOTICE),
                                      A(O_SPLIT), A(O_MAP), A(O_FORCE), A(O_DRY), '\0' };
static const char report_allowed[] = { A(O_FORMAT), '\0' };
static const char package_allowed[] = { 'o', A(O_FORCE), '\0' };
static const char none_allowed[] = { '\0' };

static int emit(GString *out)
{
    fputs(out->str, stdout);
    g_string_free(out, TRUE);
    return fflush(stdout) == 0 ? 0 : EX_IOERR_;
}

static int cmd_plan(const struct cfg *cfg, int argc, char **argv)
{
    struct args a;
    struct hov_plan *p = NULL;
    GString *out = g_string_new(NULL);
    char *err = NULL;
    int r;

    parse(argc, argv, &a, plan_allowed);
    if (a.npos != 0 || a.o.from == NULL || a.o.to == NULL)
        usage();
    r = hov_plan_make(cfg, &a.o, &p, out, &err);
    g_ptr_array_free(a.splits, TRUE);
    if (r != HOV_OK) {
        g_string_free(out, TRUE);
        return fail(r, &err);
    }
    hov_plan_free(&p);
    return emit(out);
}

static int cmd_apply(const struct cfg *cfg, int argc, char **argv)
{
    struct args a;
    struct hov_plan *p = NULL;
    GString *out = g_string_new(NULL);
    char *err = NULL;
    int r;

    parse(argc, argv, &a, apply_allowed);
    if (a.npos == 1 && a.o.from == NULL && a.o.to == NULL && a.o.effective == NULL &&
        a.o.notice == NULL && a.o.postfix_map == NULL && a.splits->len == 1 && !a.o.force) {
        r = hov_plan_load(cfg, a.pos[0], &p, &err);
    } else if (a.npos == 0 && a.o.from != NULL && a.o.to != NULL) {
        struct hov_opts po = a.o;
        po.dry_run = 0;
        r = hov_plan_make(cfg, &po, &p, out, &err);
    } else {
        usage();
    }
    if (r == HOV_OK)
        r = hov_apply(cfg, p, &a.o, out, &err);
    g_ptr_array_free(a.splits, TRUE);
    hov_plan_free(&p);
    if (r != HOV_OK) {
        fputs(out->str, stdout);
        g_string_free(out, TRUE);
        return fail(r, &err);
    }
    return emit(out);
}

static int cmd_status(const struct cfg *cfg, int argc, char **argv)
{
    struct args a;
    GString *out = g_string_new(NULL);
    char *err = NULL;
    int r;

    parse(argc, argv, &a, none_allowed);
    g_ptr_array_free(a.splits, TRUE);
    if (a.npos > 1)
        usage();
    r = hov_status(cfg, a.npos == 1 ? a.pos[0] : NULL, out, &err);
    if (r != HOV_OK) {
        g_string_free(out, TRUE);
        return fail(r, &err);
    }
    return emit(out);
}

static int cmd_report(const struct cfg *cfg, int argc, char **argv)
{
    struct args a;
    struct hov_plan *p = NULL;
    GString *out = g_string_new(NULL);
    char *err = NULL;
    int r;

    parse(argc, argv, &a, report_allowed);
    g_ptr_array_free(a.splits, TRUE);
    if (a.npos != 1)
        usage();
    r = hov_plan_load(cfg, a.pos[0], &p, &err);
    if (r == HOV_OK)
        r = hov_report(cfg, p, a.format != NULL ? a.format : "text", out, &err);
    hov_plan_free(&p);
    if (r != HOV_OK) {
        g_string_free(out, TRUE);
        return fail(r, &err);
    }
    return emit(out);
}

static int cmd_package(const struct cfg *cfg, int argc, char **argv)
{
    struct args a;
    struct hov_plan *p = NULL;
    char *err = NULL;
    int r;

    parse(argc, argv, &a, package_allowed);
    g_ptr_array_free(a.splits, TRUE);
    if (a.npos != 1 || a.output == NULL)
        usage();
    r = hov_plan_load(cfg, a.pos[0], &p, &err);
    if (r == HOV_OK)
        r = hov_package(cfg, p, a.output, a.o.force, &err);
    hov_plan_free(&p);
    if (r != HOV_OK)
        return fail(r, &err);
    printf("package of plan %s written to %s\n", a.pos[0], a.output);
    return 0;
}

static int cmd_forwards(const struct cfg *cfg, int argc, char **argv)
{
    struct args a;
    GString *out = g_string_new(NULL);
    gint64 outside = 0;
    char *err = NULL;
    int r;

    parse(argc, argv, &a, none_allowed);
    g_ptr_array_free(a.splits, TRUE);
    if (a.npos > 1)
        usage();
    r = hov_forwards_report(cfg, a.npos == 1 ? a.pos[0] : NULL, out, &outside, &err);
    if (r != HOV_OK) {
        g_string_free(out, TRUE);
        return fail(r, &err);
    }
    return emit(out);
}

static const struct {
    const char *name;
    int (*fn)(const struct cfg *, int, char **);
} commands[] = {
    { "plan", cmd_plan }, { "apply", cmd_apply }, { "status", cmd_status },
    { "report", cmd_report }, { "package", cmd_package }, { "forwards", cmd_forwards },
};

int main(int argc, char **argv)
{
    const char *conf = NULL;
    struct cfg *cfg = NULL;
    char *err = NULL;
    int c, check = 0, ret;

    log_init("custos-handover", 0);
    while ((c = getopt(argc, argv, "+c:nh")) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'n': check = 1; break;
        default: usage();
        }
    }
    if (!check && optind >= argc)
        usage();
    if (cfg_load(cfg_path(conf), &cfg, &err) < 0) {
        log_error("%s", err);
        g_free(err);
        return EX_CONFIG_;
    }
    log_init("custos-handover", cfg->log_syslog);
    log_set_level(cfg->log_level);
    if (check) {
        cfg_dump(cfg, stdout);
        cfg_free(&cfg);
        return 0;
    }
    msg_init();
    ret = -1;
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            ret = commands[i].fn(cfg, argc - optind, argv + optind);
    cfg_free(&cfg);
    if (ret < 0)
        usage();
    return ret;
}
