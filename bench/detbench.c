/*
 * detbench.c - time custos-milter's detectors on a directory of messages
 *
 * usage: detbench -c CONF [-v] [-s SENDER] [-r RCPT]... [-l LABEL] DIR...
 *
 * Every regular file under each DIR (recursively; dot files skipped) is a
 * message. Each is read into memory and parsed as custos-milter parses it
 * (GMime, then msg_from_gmime), then classified (det_classify) and run
 * through every detector (det_run) with the directory of CONF's archive.
 * The envelope: SENDER (default li.na@corp.example) and the -r recipients,
 * then the message's own To and Cc addresses (20 at most): with a sales
 * sender, a customer and a webmail recipient among the -r ones, every
 * detector does its whole work. One line is printed per run:
 *   LABEL: N messages, M MB; detect (classify + detectors) ms median P50
 *   p99 P99 max MAX mean MEAN; parse ms median p99; F findings (by category)
 * -v: every finding too, "FILE: RULE: EVIDENCE". Nothing is asserted;
 * bench/detect.sh runs it.
 */
#include <glib.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/det-name.h"
#include "custos/detect.h"
#include "custos/directory.h"
#include "custos/index.h"
#include "custos/msg.h"
#include "custos/util.h"

static void files_under(const char *path, GPtrArray *out)
{
    GDir *d = g_dir_open(path, 0, NULL);
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *n;

    if (d == NULL) {
        if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add(out, g_strdup(path));
        g_ptr_array_free(names, TRUE);
        return;
    }
    while ((n = g_dir_read_name(d)) != NULL)
        if (*n != '.')
            g_ptr_array_add(names, g_build_filename(path, n, NULL));
    g_dir_close(d);
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < names->len; i++)
        files_under(names->pdata[i], out);
    g_ptr_array_free(names, TRUE);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n sorted values (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
    size_t k;

    if (n == 0)
        return 0;
    k = (size_t)(q * (double)n + 0.999999);
    return v[(k == 0 ? 1 : k > n ? n : k) - 1];
}

/* The To and Cc addresses of the message (at most max). */
static void header_rcpts(GMimeMessage *m, GPtrArray *rcpts, guint max)
{
    static const GMimeAddressType types[] = { GMIME_ADDRESS_TYPE_TO, GMIME_ADDRESS_TYPE_CC };

    for (size_t t = 0; t < G_N_ELEMENTS(types); t++) {
        InternetAddressList *l = g_mime_message_get_addresses(m, types[t]);   /* borrowed */
        for (int i = 0; l != NULL && i < internet_address_list_length(l); i++) {
            InternetAddress *a = internet_address_list_get_address(l, i);     /* borrowed */
            if (rcpts->len < max && INTERNET_ADDRESS_IS_MAILBOX(a))
                g_ptr_array_add(rcpts, g_strdup(internet_address_mailbox_get_idn_addr(
                                           INTERNET_ADDRESS_MAILBOX(a))));
        }
    }
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *sender = "li.na@corp.example", *label = "messages";
    GPtrArray *extra = g_ptr_array_new(), *files = g_ptr_array_new_with_free_func(g_free);
    GHashTable *cats = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    struct cfg *cfg = NULL;
    struct dir *d = NULL;
    struct msg_limits lim;
    double *tdet, *tparse;
    size_t n = 0, bytes = 0, nfind = 0, errors = 0;
    char *err = NULL;
    int c, ret = 1, verbose = 0;

    while ((c = getopt(argc, argv, "c:s:r:l:v")) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 's': sender = optarg; break;
        case 'r': g_ptr_array_add(extra, optarg); break;
        case 'l': label = optarg; break;
        case 'v': verbose = 1; break;
        default:
            fprintf(stderr, "usage: detbench -c CONF [-v] [-s SENDER] [-r RCPT]... [-l LABEL] DIR...\n");
            return 2;
        }
    }
    if (conf == NULL || optind >= argc) {
        fprintf(stderr, "usage: detbench -c CONF [-v] [-s SENDER] [-r RCPT]... [-l LABEL] DIR...\n");
        return 2;
    }
    msg_init();
    idx_body_hash_use(cus_sha256);  /* as custos-milter does: OpenSSL's SHA-256 */
    if (det_name_init(&err) < 0)        /* as custos-milter does before it listens */
        g_clear_pointer(&err, g_free);
    if (cfg_load(conf, &cfg, &err) < 0 || dir_open(cfg, &d, &err) < 0) {
        fprintf(stderr, "detbench: %s\n", err);
        goto out;
    }
    arc_limits_from_cfg(cfg, &lim);
    for (int i = optind; i < argc; i++)
        files_under(argv[i], files);
    tdet = g_new0(double, files->len + 1);
    tparse = g_new0(double, files->len + 1);
    for (guint i = 0; i < files->len; i++) {
        GMappedFile *mf = g_mapped_file_new(files->pdata[i], FALSE, NULL);
        struct det_envelope env = { .queue_id = "bench", .client = "127.0.0.1", .cfg = cfg };
        struct det_message dm = { 0 };
        GPtrArray *rcpts, *findings = NULL;
        GMimeStream *st;
        GMimeParser *p;
        double t0, t1, t2;

        if (mf == NULL)
            continue;
        t0 = cus_now();
        st = g_mime_stream_mem_new_with_buffer(g_mapped_file_get_contents(mf),
                                               g_mapped_file_get_length(mf));
        p = g_mime_parser_new_with_stream(st);
        dm.mime = g_mime_parser_construct_message(p, msg_parser_options());
        g_object_unref(p);
        g_object_unref(st);
        if (dm.mime == NULL || msg_from_gmime(dm.mime, &lim, &dm.msg, &err) < 0) {
            g_clear_pointer(&err, g_free);
            if (dm.mime != NULL)
                g_object_unref(dm.mime);
            g_mapped_file_unref(mf);
            errors++;
            continue;
        }
        t1 = cus_now();
        rcpts = g_ptr_array_new_with_free_func(g_free);
        for (guint k = 0; k < extra->len; k++)
            g_ptr_array_add(rcpts, g_strdup(extra->pdata[k]));
        header_rcpts(dm.mime, rcpts, extra->len + 20);
        g_ptr_array_add(rcpts, NULL);
        if (det_classify(d, cfg->arc_departments, sender,
                         g_mime_object_get_header(GMIME_OBJECT(dm.mime), "From"), NULL,
                         (char *const *)rcpts->pdata, &env, &err) < 0 ||
            det_run(&env, &dm, &findings, &err) < 0) {
            g_clear_pointer(&err, g_free);
            errors++;
        }
        t2 = cus_now();
        tparse[n] = (t1 - t0) * 1e3;
        tdet[n] = (t2 - t1) * 1e3;
        n++;
        bytes += g_mapped_file_get_length(mf);
        for (guint k = 0; findings != NULL && k < findings->len; k++) {
            const struct det_finding *f = findings->pdata[k];
            gpointer v = g_hash_table_lookup(cats, f->category);
            g_hash_table_insert(cats, g_strdup(f->category),
                                GSIZE_TO_POINTER(GPOINTER_TO_SIZE(v) + 1));
            if (verbose)
                printf("%s: %s: %s\n", (char *)files->pdata[i], f->rule, f->evidence);
            nfind++;
        }
        if (findings != NULL)
            g_ptr_array_free(findings, TRUE);
        det_envelope_clear(&env);
        g_ptr_array_free(rcpts, TRUE);
        msg_free(&dm.msg);
        g_object_unref(dm.mime);
        g_mapped_file_unref(mf);
    }
    {
        double sum = 0;
        GString *by = g_string_new(NULL);
        GList *keys = g_list_sort(g_hash_table_get_keys(cats), (GCompareFunc)strcmp);

        for (size_t i = 0; i < n; i++)
            sum += tdet[i];
        qsort(tdet, n, sizeof(double), cmp_double);
        qsort(tparse, n, sizeof(double), cmp_double);
        for (GList *k = keys; k != NULL; k = k->next)
            g_string_append_printf(by, "%s%s %zu", by->len ? ", " : "", (char *)k->data,
                                   GPOINTER_TO_SIZE(g_hash_table_lookup(cats, k->data)));
        g_list_free(keys);
        printf("%s: %zu messages, %.1f MB; detect ms median %.3f p99 %.3f max %.3f mean %.3f;"
               " parse ms median %.3f p99 %.3f; %zu findings (%s)%s\n", label, n, bytes / 1e6,
               quantile(tdet, n, 0.5), quantile(tdet, n, 0.99), n ? tdet[n - 1] : 0,
               n ? sum / n : 0, quantile(tparse, n, 0.5), quantile(tparse, n, 0.99), nfind,
               by->str, errors ? "; some messages failed" : "");
        g_string_free(by, TRUE);
    }
    g_free(tdet);
    g_free(tparse);
    ret = errors > 0 && n == 0;
out:
    g_free(err);
    dir_close(&d);
    cfg_free(&cfg);
    g_ptr_array_free(extra, TRUE);
    g_ptr_array_free(files, TRUE);
    g_hash_table_destroy(cats);
    return ret;
}
