/*
 * custos-archive.c - the archive's command-line tool
 *
 *   custos-archive [-c FILE] [-n] COMMAND [ARGS]
 *   init | import PATH... | search [--json|--count] [--limit N] [--offset N] QUERY
 *   show [--raw] ID | stats [--json]
 *   enqueue [--sender A] [--rcpt A]... [--client T] [--queue-id Q] [--source S] [FILE]
 *   ingest [--follow] [--batch N]
 *
 * Exit status: 0 ok; 1 some input skipped (import) or nothing found (show)
 * or entries moved to the spool's failed/ (ingest);
 * 64 usage; 65 bad input (query); 74 archive I/O failure; 78 configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <glib.h>
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/cli.h"
#include "custos/import.h"
#include "custos/incident.h"
#include "custos/ingest.h"
#include "custos/log.h"
#include "custos/perm.h"
#include "custos/spool.h"
#include "custos/util.h"
#include "custos/verify.h"


static const char usage_text[] =
    "usage: custos-archive [-c FILE] [-n] COMMAND [ARGS]\n"
    "  -c FILE   configuration (default $CUSTOS_CONF or " CFG_DEFAULT_PATH ")\n"
    "  -n        check the configuration, print it, and exit\n"
    "commands:\n"
    "  init                       create the archive\n"
    "  import PATH...             .eml, mbox, Maildir, directories, zip/tar of those\n"
    "  search [--json|--count] [--limit N] [--offset N] QUERY\n"
    "  show [--raw] ID            a message, decoded; --raw: its exact bytes\n"
    "  stats [--json]             sizes and ratios\n"
    "  enqueue [--sender ADDR] [--rcpt ADDR]... [--client TEXT] [--queue-id ID]\n"
    "          [--source NAME] [FILE]  put a message (FILE or stdin) in the spool\n"
    "  ingest [--follow] [--batch N]   archive the spool's entries\n"
    "  verify [--json] [--threads N]   check every object, the chain, index.db\n"
    "  checkpoint                 sign the chain's head now\n"
    "  reindex [--force]          rebuild index.db from the segments\n"
#define X(fn, name, use) "  " use "\n"
#include "commands.gen.h"
#undef X
    ;

/* The commands of archive/cmd-*.c (cli.h). */
#ifndef CUSTOS_LEAN
#define X(fn, name, use) CUS_COMMAND(fn, name, use)
#include "commands.gen.h"
#undef X
#endif

static void usage(void)
{
    fputs(usage_text, stderr);
    exit(EX_USAGE_);
}

/* The index alone: all that search and stats need. flags IDX_RDONLY, or 0
 * for a command that records an audit entry. */
static int index_open(const struct cfg *cfg, int flags, struct idx **idx_r, char **error_r)
{
    char *path = g_build_filename(cfg->arc_dir, "index.db", NULL);
    int ret;

    if (access(path, F_OK) < 0 && errno != EACCES) {
        g_free(path);
        return cus_error(error_r, "no archive at %s (index.db missing): run custos-archive init",
                         cfg->arc_dir);
    }
    if (perm_check(cfg, cfg->arc_dir, X_OK, error_r) < 0 ||
        perm_check(cfg, path, R_OK | (flags & IDX_RDONLY ? 0 : W_OK), error_r) < 0) {
        g_free(path);
        return -1;
    }
    ret = idx_open(path, flags, idx_r, error_r);
    g_free(path);
    return ret;
}

/* Bytes of the segment store on disk: every file under DIR/store. */
static guint64 store_bytes(const char *arcdir)
{
    char *dir = g_build_filename(arcdir, "store", NULL);
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *n;
    guint64 sum = 0;
    struct stat st;

    while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
        char *p = g_build_filename(dir, n, NULL);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            sum += (guint64)st.st_size;
        g_free(p);
    }
    if (d != NULL)
        g_dir_close(d);
    g_free(dir);
    return sum;
}

#ifndef CUSTOS_LEAN
static int cmd_init(const struct cfg *cfg, int argc, char **argv)
{
    char *err = NULL;

    if (argc != 1)
        usage();
    if (arc_init(cfg, &err) < 0)
        return cli_fail(&err, EX_IOERR_);
    printf("archive ready at %s\n", cfg->arc_dir);
    return 0;
}

struct progress {
    double start;
    int tty;
};

static void import_progress(void *ctx, const struct imp_stats *st)
{
    struct progress *p = ctx;
    double el = cus_now() - p->start, rate = el > 0 ? st->messages / el : 0;
    double eta = -1;

    if (!p->tty)
        return;
    if (st->total_bytes > 0 && st->done_bytes > 0 && el > 0)
        eta = el * (double)(st->total_bytes - MIN(st->done_bytes, st->total_bytes)) /
              (double)st->done_bytes;
    fprintf(stderr, "\r%" G_GUINT64_FORMAT " messages, %.0f/s", st->messages, rate);
    if (eta >= 0)
        fprintf(stderr, ", ETA %d:%02d   ", (int)eta / 60, (int)eta % 60);
    else
        fputs("   ", stderr);
}

static int cmd_import(const struct cfg *cfg, int argc, char **argv)
{
    struct imp_stats st = { 0 };
    struct progress pr = { cus_now(), isatty(2) };
    struct arc *arc = NULL;
    char *err = NULL;
    double el;
    int ret = 0;

    if (argc < 2)
        usage();
    if (arc_open(cfg, ARC_WRITE | ARC_WAIT, &arc, &err) < 0)
        return cli_fail(&err, cli_open_status(err));
    st.total_bytes = imp_measure(argv + 1, argc - 1);
    for (int i = 1; i < argc && ret == 0; i++)
        if (imp_path(arc, argv[i], &st, import_progress, &pr, &err) < 0)
            ret = -1;
    if (ret == 0 && arc_flush(arc, &err) < 0)
        ret = -1;
    if (ret < 0) {
        /* The batch in flight is not committed: those messages are not
         * archived, and we say so. */
        arc_abort(arc);
        log_error("%s", err);
        log_error("import stopped; messages of the last uncommitted batch were not archived;"
                  " run the import again once the cause is fixed (archived messages are"
                  " recognised and not stored twice)");
        g_free(err);
    }
    arc_close(&arc);
    el = cus_now() - pr.start;
    if (pr.tty)
        fputc('\n', stderr);
    fprintf(stderr, "imported %" G_GUINT64_FORMAT " messages (%" G_GUINT64_FORMAT " new, %"
            G_GUINT64_FORMAT " already archived, %" G_GUINT64_FORMAT " skipped),"
            " %.1f MB in %.1f s, %.0f messages/s\n", st.messages, st.added, st.dups,
            st.skipped, st.bytes / 1e6, el, el > 0 ? st.messages / el : 0.0);
    if (ret < 0)
        return EX_IOERR_;
    return st.skipped ? EX_OK_SKIPPED : 0;
}

#endif /* !CUSTOS_LEAN */

#ifndef CUSTOS_LEAN
/* The whole of standard input (at most SPOOL_SIZE_MAX bytes). */
static int read_stdin(GBytes **data_r, char **error_r)
{
    GByteArray *a = g_byte_array_new();
    guint8 buf[65536];
    size_t n;

    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        if (a->len + n > SPOOL_SIZE_MAX) {
            g_byte_array_free(a, TRUE);
            return cus_error(error_r, "standard input: more than the limit of %llu bytes",
                             (unsigned long long)SPOOL_SIZE_MAX);
        }
        g_byte_array_append(a, buf, (guint)n);
    }
    if (ferror(stdin)) {
        g_byte_array_free(a, TRUE);
        return cus_error_errno(error_r, "read(standard input) failed");
    }
    *data_r = g_byte_array_free_to_bytes(a);
    return 0;
}

static int cmd_enqueue(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "sender", required_argument, NULL, 's' }, { "rcpt", required_argument, NULL, 'r' },
        { "client", required_argument, NULL, 'C' }, { "queue-id", required_argument, NULL, 'q' },
        { "source", required_argument, NULL, 'S' }, { NULL, 0, NULL, 0 },
    };
    struct spool_entry e = { .source = "enqueue" };
    GPtrArray *rcpts = g_ptr_array_new();
    char id[SPOOL_ID_MAX + 1], *err = NULL, *spool = NULL;
    const char *from;
    int opt, ret = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case 's': e.sender = optarg; break;
        case 'r': g_ptr_array_add(rcpts, optarg); break;
        case 'C': e.client = optarg; break;
        case 'q': e.queue_id = optarg; break;
        case 'S': e.source = optarg; break;
        default: usage();
        }
    }
    if (argc - optind > 1)
        usage();
    g_ptr_array_add(rcpts, NULL);
    e.rcpts = (char **)rcpts->pdata;
    e.time = g_get_real_time() / G_USEC_PER_SEC;
    from = optind < argc ? argv[optind] : "standard input";
    if ((optind < argc ? cus_read_file(argv[optind], SPOOL_SIZE_MAX, &e.raw, &err)
                       : read_stdin(&e.raw, &err)) < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        goto out;
    }
    if (g_bytes_get_size(e.raw) == 0) {
        log_error("enqueue: %s is empty: no message to enqueue", from);
        ret = EX_DATAERR_;
        goto out;
    }
    spool = cfg_spool_dir(cfg);
    if (spool_init(spool, &err) < 0 || spool_write(spool, &e, id, &err) < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        goto out;
    }
    printf("%s\n", id);
    if (fflush(stdout) != 0) {
        log_error("enqueue: write to standard output failed: %s", g_strerror(errno));
        ret = EX_IOERR_;
    }
out:
    if (e.raw != NULL)
        g_bytes_unref(e.raw);
    g_ptr_array_free(rcpts, TRUE);
    g_free(spool);
    return ret;
}

/* ingest's periodic work: a checkpoint of the chain, if it grew. */
static int cmd_ingest(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "follow", no_argument, NULL, 'f' }, { "batch", required_argument, NULL, 'b' },
        { NULL, 0, NULL, 0 },
    };
    struct ingest_opts io = { .batch = cfg->arc_batch, .signals = 1 };
    struct ingest_stats st;
    struct cfg acfg = *cfg;     /* the archive commits with our batches */
    struct statvfs vfs;
    char *err = NULL, *spool;
    double start = cus_now();
    int opt, ret;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case 'f': io.follow = 1; break;
        case 'b':
            io.batch = (int)MIN(cli_count("--batch", optarg), 100000);
            if (io.batch < 1) {
                log_error("--batch: expected a number >= 1, not \"%s\"", optarg);
                return EX_USAGE_;
            }
            break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    acfg.arc_batch = io.batch;
    /* The archive is opened when entries come, and let go when idle or
     * wanted by another writer (ingest.h); checkpoints as configured. */
    io.cfg = &acfg;
    /* Once now, so that a missing or forbidden archive is said at once
     * (and a crash before is recovered from). */
    {
        struct arc *arc = NULL;

        if (arc_open(&acfg, ARC_WRITE | ARC_WAIT | ARC_NO_CLOSE_CHECKPOINT, &arc, &err) < 0)
            return cli_fail(&err, cli_open_status(err));
        arc_close(&arc);
    }
    spool = cfg_spool_dir(cfg);
    io.gather_max_ms = cfg->spool_ingest_delay * 1000;
    if (io.follow && cfg->chain_interval > 0)
        io.tick_interval = cfg->chain_interval;
    ret = ingest_run(NULL, spool, &io, &st, &err);
    g_free(spool);
    if (ret < 0) {
        cli_fail(&err, EX_IOERR_);
        if (statvfs(cfg->arc_dir, &vfs) == 0 && vfs.f_blocks > 0 &&
            (vfs.f_bavail < vfs.f_blocks / 100 || vfs.f_bavail * vfs.f_frsize < (1 << 20)))
            log_error("the file system of %s is full (%llu KB free): make room, then run"
                      " ingest again", cfg->arc_dir,
                      (unsigned long long)(vfs.f_bavail * vfs.f_frsize / 1024));
    }
    fprintf(stderr, "ingested %" G_GUINT64_FORMAT " entries (%" G_GUINT64_FORMAT
            " of them messages archived before), %.1f MB in %" G_GUINT64_FORMAT " commits; %"
            G_GUINT64_FORMAT " moved to failed/; %.1f s\n", st.archived, st.dups,
            st.bytes / 1e6, st.batches, st.failed, cus_now() - start);
    if (ret < 0)
        return EX_IOERR_;
    return st.failed > 0 && !io.follow ? EX_OK_SKIPPED : 0;
}
#endif /* !CUSTOS_LEAN */

#ifndef CUSTOS_LEAN
struct vout {
    int json;
    GString *j;             /* problems, JSON */
    gint64 n;
    GString *pj;            /* purged messages, JSON */
    gint64 np;
};

/* A message retention purged: --json lists them all. */
static void verify_purged(void *ctx, const struct verify_purged *p)
{
    struct vout *o = ctx;
    char when[32], archived[32];

    if (!o->json)
        return;
    cus_iso8601(p->time, when, sizeof(when));
    cus_iso8601(p->archived, archived, sizeof(archived));
    g_string_append_printf(o->pj, "%s{\"id\":%" G_GINT64_FORMAT ",\"sha256\":\"%s\","
                           "\"when\":\"%s\",\"archived\":\"%s\",\"seq\":%" G_GINT64_FORMAT
                           ",\"rule\":", o->np++ ? ",\n  " : "\n  ", p->id, p->sha256, when,
                           archived, p->seq);
    cus_json_str(o->pj, p->rule != NULL ? p->rule : "");
    g_string_append_printf(o->pj, ",\"pending\":%s}", p->pending ? "true" : "false");
}

static void verify_print(void *ctx, const struct verify_problem *p)
{
    struct vout *o = ctx;
    GString *where = g_string_new(NULL);

    if (o->json) {
        g_string_append(o->j, o->n++ ? ",\n  {" : "\n  {");
        g_string_append(o->j, "\"kind\":");
        cus_json_str(o->j, p->kind);
        g_string_append(o->j, ",\"object\":");
        cus_json_str(o->j, p->object);
        if (p->id > 0)
            g_string_append_printf(o->j, ",\"id\":%" G_GINT64_FORMAT, p->id);
        if (p->seq > 0)
            g_string_append_printf(o->j, ",\"seq\":%" G_GINT64_FORMAT, p->seq);
        if (p->sha256[0] != '\0') {
            g_string_append(o->j, ",\"sha256\":");
            cus_json_str(o->j, p->sha256);
        }
        if (p->segment > 0)
            g_string_append_printf(o->j, ",\"segment\":\"seg-%06u.cseg\",\"offset\":%"
                                   G_GUINT64_FORMAT, p->segment, p->offset);
        g_string_append(o->j, ",\"detail\":");
        cus_json_str(o->j, p->detail);
        g_string_append_c(o->j, '}');
        g_string_free(where, TRUE);
        return;
    }
    if (p->id > 0)
        g_string_append_printf(where, " id %" G_GINT64_FORMAT, p->id);
    if (p->seq > 0)
        g_string_append_printf(where, " seq %" G_GINT64_FORMAT, p->seq);
    if (p->sha256[0] != '\0')
        g_string_append_printf(where, " sha256 %.16s", p->sha256);
    if (p->segment > 0)
        g_string_append_printf(where, " at seg-%06u.cseg offset %" G_GUINT64_FORMAT,
                               p->segment, p->offset);
    printf("%s %s%s: %s\n", p->kind, p->object, where->str, p->detail);
    g_string_free(where, TRUE);
}

static int cmd_verify(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' }, { "threads", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 }
    };
    struct vout o = { 0 };
    struct verify_stats st;
    int threads = 0, c;
    double mb;
    char *err = NULL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j': o.json = 1; break;
        case 't': threads = (int)cli_count("--threads", optarg); break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    o.j = g_string_new(NULL);
    o.pj = g_string_new(NULL);
    if (verify_run_ex(cfg, threads, verify_print, verify_purged, &o, &st, &err) < 0) {
        g_string_free(o.j, TRUE);
        g_string_free(o.pj, TRUE);
        return cli_fail(&err, EX_IOERR_);
    }
    mb = (double)st.segment_bytes / 1e6;
    if (o.json) {
        printf("{\"ok\":%s,\"problems\":[%s%s],\n \"stats\":{\"segments\":%d,\"bytes\":%"
               G_GUINT64_FORMAT ",\"seconds\":%.3f,\"mb_per_s\":%.1f,\"records\":%"
               G_GINT64_FORMAT ",\"messages\":%" G_GINT64_FORMAT ",\"deliveries\":%"
               G_GINT64_FORMAT ",\"chain_entries\":%" G_GINT64_FORMAT ",\"head_seq\":%"
               G_GINT64_FORMAT ",\"head\":\"%s\",\"checkpoints\":%" G_GINT64_FORMAT
               ",\"signed_checkpoints\":%" G_GINT64_FORMAT ",\"signatures_checked\":%s,"
               "\"key\":\"%s\",\"uncommitted\":%" G_GINT64_FORMAT ",\"purged\":%"
               G_GINT64_FORMAT ",\"purge_pending\":%" G_GINT64_FORMAT ",\"audit_entries\":%"
               G_GINT64_FORMAT ",\"holds\":%" G_GINT64_FORMAT ",\"incidents\":%" G_GINT64_FORMAT
               "},\n \"purged\":[%s%s]}\n",
               st.problems ? "false" : "true", o.j->str, o.n ? "\n" : "", st.segments,
               st.segment_bytes, st.seconds, st.seconds > 0 ? mb / st.seconds : 0,
               st.records, st.messages, st.deliveries, st.events, st.head_seq, st.head,
               st.checkpoints, st.signed_checkpoints,
               st.signatures_checked ? "true" : "false", st.key, st.uncommitted, st.purged,
               st.purge_pending, st.audit_entries, st.holds, st.incidents, o.pj->str, o.np ? "\n" : "");
    } else {
        printf("%s: %" G_GINT64_FORMAT " messages, %" G_GINT64_FORMAT " deliveries, %"
               G_GINT64_FORMAT " chain entries (head %" G_GINT64_FORMAT "%s%.16s), %"
               G_GINT64_FORMAT " checkpoints (%" G_GINT64_FORMAT " signed%s%s); %.1f MB in %d "
               "segments in %.2f s (%.0f MB/s)",
               st.problems ? "FAILED" : "OK", st.messages, st.deliveries, st.events,
               st.head_seq, st.head[0] ? " " : "", st.head, st.checkpoints,
               st.signed_checkpoints,
               st.signatures_checked ? ", checked with " : ", signatures not checked",
               st.signatures_checked ? st.key : "", mb, st.segments, st.seconds,
               st.seconds > 0 ? mb / st.seconds : 0);
        if (st.purged > 0)
            printf("; %" G_GINT64_FORMAT " purged by retention (verify --json lists them)",
                   st.purged);
        if (st.purge_pending > 0)
            printf(", %" G_GINT64_FORMAT " of them still in the store until their segment is "
                   "rewritten (the next writer does it)", st.purge_pending);
        if (st.incidents > 0)
            printf("; %" G_GINT64_FORMAT " incident%s checked against index.db", st.incidents,
                   st.incidents == 1 ? "" : "s");
        if (st.uncommitted > 0)
            printf("; %" G_GINT64_FORMAT " records written since, not checked",
                   st.uncommitted);
        if (st.problems)
            printf("; %" G_GINT64_FORMAT " problem%s\n", st.problems,
                   st.problems == 1 ? "" : "s");
        else
            putchar('\n');
    }
    g_string_free(o.j, TRUE);
    g_string_free(o.pj, TRUE);
    return st.problems ? 1 : 0;
}

static int cmd_checkpoint(const struct cfg *cfg, int argc, char **argv)
{
    struct arc_checkpoint_info ci;
    struct arc *arc = NULL;
    char *err = NULL, hex[CUS_SHA256_HEX], when[32];

    if (argc != 1)
        usage();
    if (arc_open(cfg, ARC_WRITE | ARC_WAIT, &arc, &err) < 0 || arc_checkpoint(arc, 1, &ci, &err) < 0) {
        arc_close(&arc);
        return cli_fail(&err, cli_open_status(err));
    }
    arc_close(&arc);
    if (!ci.made) {
        printf("the chain is empty: nothing to vouch for yet\n");
        return 0;
    }
    cus_hex(ci.hash, CUS_SHA256_LEN, hex);
    cus_iso8601(ci.time, when, sizeof(when));
    printf("checkpoint seq %" G_GINT64_FORMAT " hash %s time %s key %s\n", ci.seq, hex,
           when, ci.key);
    if (strcmp(ci.key, "none") == 0)
        log_warn("the checkpoint is not signed: set [chain] sign_key (custos.conf(5))");
    return 0;
}

static int cmd_reindex(const struct cfg *cfg, int argc, char **argv)
{
    struct replay_stats rs;
    char *err = NULL;
    double t0 = cus_now();
    int force = 0;

    if (argc == 2 && strcmp(argv[1], "--force") == 0)
        force = 1;
    else if (argc != 1)
        usage();
    if (arc_reindex(cfg, force, &rs, &err) < 0)
        return cli_fail(&err, rs.problems + rs.pending > 0 ? EX_OK_SKIPPED : EX_IOERR_);
    printf("reindexed %" G_GINT64_FORMAT " messages, %" G_GINT64_FORMAT " deliveries, %"
           G_GINT64_FORMAT " chain entries, %" G_GINT64_FORMAT " checkpoints in %.1f s\n",
           rs.messages, rs.deliveries, rs.events, rs.checkpoints, cus_now() - t0);
    if (rs.problems > 0 || rs.pending > 0) {
        log_error("%" G_GINT64_FORMAT " records could not be indexed (see above); run "
                  "custos-archive verify", rs.problems + rs.pending);
        return EX_OK_SKIPPED;
    }
    return 0;
}
#endif /* !CUSTOS_LEAN */

static void json_list(GString *j, const char *key, GPtrArray *a)
{
    g_string_append_printf(j, ",\"%s\":[", key);
    for (guint i = 0; i < a->len; i++) {
        if (i)
            g_string_append_c(j, ',');
        cus_json_str(j, g_ptr_array_index(a, i));
    }
    g_string_append_c(j, ']');
}

static int print_hit_json(void *ctx, const struct idx_hit *h)
{
    GString *j = g_string_sized_new(512);
    char date[32] = "";

    if (h->date != 0)
        cus_iso8601(h->date, date, sizeof(date));
    g_string_append_printf(j, "{\"id\":%" G_GINT64_FORMAT ",\"date\":", h->id);
    if (h->date != 0)
        cus_json_str(j, date);
    else
        g_string_append(j, "null");
    json_list(j, "from", h->from);
    json_list(j, "to", h->to);
    json_list(j, "cc", h->cc);
    json_list(j, "bcc", h->bcc);
    g_string_append(j, ",\"subject\":");
    cus_json_str(j, h->subject);
    g_string_append_printf(j, ",\"size\":%" G_GINT64_FORMAT, h->size);
    json_list(j, "attachments", h->att_names);
    g_string_append(j, ",\"sha256\":");
    cus_json_str(j, h->sha256);
    g_string_append(j, ",\"message_id\":");
    cus_json_str(j, h->message_id);
    g_string_append(j, ",\"limits\":");
    cus_json_str(j, h->limits);
    g_string_append(j, "}\n");
    fwrite(j->str, 1, j->len, stdout);
    g_string_free(j, TRUE);
    return 0;
}

static int print_hit_text(void *ctx, const struct idx_hit *h)
{
    char date[32] = "-";

    if (h->date != 0)
        cus_iso8601(h->date, date, sizeof(date));
    printf("%" G_GINT64_FORMAT "\t%s\t%s\t%s", h->id, date,
           h->from->len ? (const char *)g_ptr_array_index(h->from, 0) : "-",
           *h->subject ? h->subject : "(no subject)");
    if (h->n_att > 0)
        printf("\t[%d attachment%s]", h->n_att, h->n_att == 1 ? "" : "s");
    if (*h->limits)
        printf("\t[limit hit: %s]", h->limits);
    putchar('\n');
    return 0;
}

static int cmd_search(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' }, { "count", no_argument, NULL, 'C' },
        { "limit", required_argument, NULL, 'l' }, { "offset", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    gint64 limit = -1, offset = 0, total = 0, audit_id = 0;
    int json = 0, count = 0, opt, ret;
    struct idx *idx = NULL;
    char *err = NULL, *query;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case 'j': json = 1; break;
        case 'C': count = 1; break;
        case 'l': limit = cli_count("--limit", optarg); break;
        case 'o': offset = cli_count("--offset", optarg); break;
        default: usage();
        }
    }
    query = g_strjoinv(" ", argv + optind);
    if (index_open(cfg, IDX_NO_CKPT_ON_CLOSE, &idx, &err) < 0) {
        g_free(query);
        return cli_fail(&err, cli_open_status(err));
    }
    if ((ret = cli_audit_begin(idx, argc, argv, &audit_id)) != 0) {
        idx_close(&idx);
        g_free(query);
        return ret;
    }
    ret = idx_search(idx, query, limit, offset, &total, count ? NULL :
                     json ? print_hit_json : print_hit_text, NULL, &err);
    g_free(query);
    if (ret < 0) {
        int status = strncmp(err, "query:", 6) == 0 ? EX_DATAERR_ : EX_IOERR_;
        cli_audit_end(idx, audit_id, -1, status, "");
        idx_close(&idx);
        return cli_fail(&err, status);
    }
    cli_audit_end(idx, audit_id, total, 0, "");
    idx_close(&idx);
    if (count)
        printf("%" G_GINT64_FORMAT "\n", total);
    else if (!json)
        fprintf(stderr, "%" G_GINT64_FORMAT " match%s%s\n", total, total == 1 ? "" : "es",
                (limit >= 0 && offset + limit < total) || offset > 0 ?
                " (use --offset/--limit for the rest)" : "");
    return 0;
}

static void print_size(guint64 n)
{
    if (n >= 10ULL << 20)
        printf("%.1f MB", n / 1048576.0);
    else if (n >= 10ULL << 10)
        printf("%.1f KB", n / 1024.0);
    else
        printf("%" G_GUINT64_FORMAT " bytes", n);
}

#ifndef CUSTOS_LEAN
/* show's list of a message's incidents (incident.h), under a heading. */
static int show_incident(void *ctx, const struct incident *inc)
{
    int *n = ctx;
    char when[32];

    if ((*n)++ == 0)
        printf("\n-- incidents --\n");
    cus_iso8601(inc->time, when, sizeof(when));
    printf("%s %s %s %s: %s\n", when, inc->category, inc->rule, inc->action, inc->evidence);
    return 0;
}

static int cmd_show(const struct cfg *cfg, int argc, char **argv)
{
    int raw = 0, ret = 0, argc0 = argc;
    char **argv0 = argv;
    gint64 audit_id = 0;
    struct arc *arc = NULL;
    struct msg *m = NULL;
    GBytes *data = NULL;
    char *err = NULL, *end;
    const char *buf;
    gint64 id;
    gsize len;

    if (argc == 3 && strcmp(argv[1], "--raw") == 0) {
        raw = 1;
        argv++;
        argc--;
    }
    if (argc != 2)
        usage();
    errno = 0;
    id = strtoll(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || id <= 0) {
        log_error("show: \"%s\" is not an archive id (a number, from search)", argv[1]);
        return EX_USAGE_;
    }
    if (arc_open(cfg, ARC_AUDIT, &arc, &err) < 0)
        return cli_fail(&err, cli_open_status(err));
    if ((ret = cli_audit_begin(arc_index(arc), argc0, argv0, &audit_id)) != 0) {
        arc_close(&arc);
        return ret;
    }
    if (arc_get_raw(arc, id, &data, &err) < 0) {
        int notfound = strstr(err, "no message with archive id") != NULL;
        cli_audit_end(arc_index(arc), audit_id, 0, notfound ? 1 : EX_IOERR_, "");
        arc_close(&arc);
        return cli_fail(&err, notfound ? 1 : EX_IOERR_);
    }
    buf = g_bytes_get_data(data, &len);
    if (raw) {
        if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
            log_error("show: write to standard output failed: %s", g_strerror(errno));
            ret = EX_IOERR_;
        }
        goto out;
    }
    if (msg_parse(buf, len, arc_limits(arc), &m, &err) < 0) {
        ret = cli_fail(&err, EX_IOERR_);
        goto out;
    }
    printf("Archive-Id: %" G_GINT64_FORMAT "\n", id);
    for (guint i = 0; i < m->headers->len; i++) {
        const struct msg_header *h = g_ptr_array_index(m->headers, i);
        printf("%s: %s\n", h->name, h->value);
    }
    putchar('\n');
    fwrite(m->body->str, 1, m->body->len, stdout);
    if (m->body->len > 0 && m->body->str[m->body->len - 1] != '\n')
        putchar('\n');
    if (m->atts->len > 0) {
        printf("\n-- attachments --\n");
        for (guint i = 0; i < m->atts->len; i++) {
            const struct msg_att *a = g_ptr_array_index(m->atts, i);
            printf("%*s%s%s%s (%s, ", (a->depth - 1) * 2, "", a->path,
                   *a->path ? "/" : "", *a->name ? a->name : "(no name)", a->type);
            print_size(a->size);
            printf(", sha256 %s)\n", a->sha256);
        }
    }
    if (m->limits->len > 0) {
        printf("\n-- limits hit while parsing --\n");
        for (guint i = 0; i < m->limits->len; i++)
            printf("%s\n", (const char *)g_ptr_array_index(m->limits, i));
    }
    {
        struct incident_filter f = { .msg = id };
        int n = 0;

        if (incident_list(arc_index(arc), &f, show_incident, &n, &err) < 0)
            ret = cli_fail(&err, EX_IOERR_);
    }
out:
    cli_audit_end(arc_index(arc), audit_id, 1, ret, "");
    msg_free(&m);
    if (data != NULL)
        g_bytes_unref(data);
    arc_close(&arc);
    return ret;
}

#else
/* init, import and show need GMime, libarchive, zstd and OpenSSL: they run
 * in custos-archive-full, found beside this program or in LIBEXECDIR. The
 * lean program loads only GLib and SQLite, so a search starts fast. */
static char **full_argv;

static int cmd_full(const struct cfg *cfg, int argc, char **argv)
{
    char *self = g_file_read_link("/proc/self/exe", NULL), *dir, *path;
    const char *env = getenv("CUSTOS_LIBEXECDIR");

    dir = env != NULL ? g_strdup(env) : self != NULL ? g_path_get_dirname(self) : NULL;
    path = dir != NULL ? g_build_filename(dir, "custos-archive-full", NULL) : NULL;
    if (path == NULL || access(path, X_OK) < 0) {
        g_free(path);
        path = g_build_filename(CUSTOS_LIBEXECDIR, "custos-archive-full", NULL);
    }
    full_argv[0] = path;
    execv(path, full_argv);
    log_error("execv(%s) failed: %s", path, g_strerror(errno));
    g_free(self);
    g_free(dir);
    g_free(path);
    return EX_IOERR_;
}
#endif /* CUSTOS_LEAN */

static guint64 file_size(const char *dir, const char *name)
{
    char *p = g_build_filename(dir, name, NULL);
    struct stat st;
    guint64 n = stat(p, &st) == 0 ? (guint64)st.st_size : 0;

    g_free(p);
    return n;
}

static int cmd_stats(const struct cfg *cfg, int argc, char **argv)
{
    struct idx_stats s;
    struct idx *idx = NULL;
    char *err = NULL;
    guint64 stored, index;
    int json = argc == 2 && strcmp(argv[1], "--json") == 0;
    double dedup, comp, total;

    if (argc > 2 || (argc == 2 && !json))
        usage();
    if (index_open(cfg, IDX_RDONLY, &idx, &err) < 0)
        return cli_fail(&err, cli_open_status(err));
    if (idx_stats(idx, &s, &err) < 0) {
        idx_close(&idx);
        return cli_fail(&err, EX_IOERR_);
    }
    idx_close(&idx);
    stored = store_bytes(cfg->arc_dir);
    index = file_size(cfg->arc_dir, "index.db") + file_size(cfg->arc_dir, "index.db-wal");
    dedup = s.raw_bytes > 0 ? (double)s.delivered_bytes / s.raw_bytes : 1.0;
    comp = stored > 0 ? (double)s.raw_bytes / stored : 0.0;
    total = s.raw_bytes > 0 ? (double)(stored + index) / s.raw_bytes : 0.0;
    if (json) {
        printf("{\"messages\":%" G_GINT64_FORMAT ",\"deliveries\":%" G_GINT64_FORMAT
               ",\"recipients\":%" G_GINT64_FORMAT ",\"raw_bytes\":%" G_GINT64_FORMAT
               ",\"delivered_bytes\":%" G_GINT64_FORMAT ",\"stored_bytes\":%" G_GUINT64_FORMAT
               ",\"index_bytes\":%" G_GUINT64_FORMAT ",\"dedup_ratio\":%.3f"
               ",\"compression_ratio\":%.3f,\"disk_to_raw\":%.3f,\"limited\":%"
               G_GINT64_FORMAT "}\n", s.messages, s.deliveries, s.rcpts, s.raw_bytes,
               s.delivered_bytes, stored, index, dedup, comp, total, s.limited);
        return 0;
    }
    printf("messages:          %" G_GINT64_FORMAT " (distinct raw messages)\n", s.messages);
    printf("deliveries:        %" G_GINT64_FORMAT " (%" G_GINT64_FORMAT
           " envelope recipients)\n", s.deliveries, s.rcpts);
    printf("raw bytes:         "); print_size((guint64)s.raw_bytes); putchar('\n');
    printf("stored bytes:      "); print_size(stored); putchar('\n');
    printf("index bytes:       "); print_size(index); putchar('\n');
    printf("dedup ratio:       %.2fx (bytes delivered / bytes kept)\n", dedup);
    printf("compression ratio: %.2fx (raw / stored)\n", comp);
    printf("disk / raw:        %.2f (store + index)\n", total);
    printf("limits hit:        %" G_GINT64_FORMAT " messages\n", s.limited);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const struct cfg *, int, char **);
    } cmds[] = {
#ifdef CUSTOS_LEAN
        { "init", cmd_full }, { "import", cmd_full }, { "show", cmd_full },
#else
        { "init", cmd_init }, { "import", cmd_import }, { "show", cmd_show },
#endif
#ifdef CUSTOS_LEAN
        { "enqueue", cmd_full }, { "ingest", cmd_full },
#else
        { "enqueue", cmd_enqueue }, { "ingest", cmd_ingest },
#endif
#ifdef CUSTOS_LEAN
        { "verify", cmd_full }, { "checkpoint", cmd_full }, { "reindex", cmd_full },
#else
        { "verify", cmd_verify }, { "checkpoint", cmd_checkpoint }, { "reindex", cmd_reindex },
#endif
        { "search", cmd_search }, { "stats", cmd_stats },
#ifdef CUSTOS_LEAN
#define X(fn, name, use) { name, cmd_full },
#else
#define X(fn, name, use) { name, cmd_##fn },
#endif
#include "commands.gen.h"
#undef X
    };
    const char *conf = NULL;
    struct cfg *cfg = NULL;
    char *err = NULL;
    int opt, check_only = 0, ret = -1;

    log_init("custos-archive", 0);
#ifdef CUSTOS_LEAN
    full_argv = argv;
#else
    idx_body_hash_use(cus_sha256);  /* OpenSSL's: every message archived is hashed */
#endif
    while ((opt = getopt(argc, argv, "+c:nh")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'n': check_only = 1; break;
        default: usage();
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1 && !check_only)
        usage();
    /* verify-export checks an export without the archive: with no
     * configuration file at all it runs on the defaults. */
    if (conf == NULL && argc >= 1 && strcmp(argv[0], "verify-export") == 0 &&
        access(cfg_path(NULL), F_OK) < 0)
        cfg = cfg_defaults();
    else if (cfg_load(cfg_path(conf), &cfg, &err) < 0)
        return cli_fail(&err, EX_CONFIG_);
    log_set_level(cfg->log_level);
    if (cfg->log_syslog)
        log_init("custos-archive", 1);
    if (check_only) {
        cfg_dump(cfg, stdout);
        cfg_free(&cfg);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[0], cmds[i].name) == 0)
            ret = cmds[i].fn(cfg, argc, argv);
    if (ret == -1) {
        log_error("unknown command \"%s\"", argv[0]);
        fputs(usage_text, stderr);
        ret = EX_USAGE_;
    }
    cfg_free(&cfg);
    return ret;
}
