/*
 * test-milter.c - custos-milter end to end
 *
 * miltertest scripts (tests/milter/NAME.lua) drive the protocol paths against
 * the built custos-milter, running as nobody: abort mid-message, several
 * messages per connection, a 40 MB body with resident memory flat, no
 * macros at all, a spool that cannot be written (451), SIGHUP reloading
 * (a bad file keeps the old configuration), SIGTERM exiting 0. With the
 * sample directory and scope = departments: a departed employee flagged
 * by envelope sender, header From and SASL login, a newsletter to
 * management left out, sales mail archived. Then a
 * private Postfix (tests/postfix.c) with custos-milter and ingest --follow:
 * English and Chinese mail (GB2312, GBK, UTF-8 bodies, RFC 2047 subjects,
 * a BCC) sent with swaks arrives tagged and is found with custos-archive
 * search. Faults, with a front Postfix relaying to the gateway Postfix
 * (the milter's): the spool made read-only, then full (a small tmpfs in a
 * private mount namespace), answers 451, the mail waits in the front
 * queue and is archived once the fault clears; the milter killed with
 * SIGKILL again and again under load, and every message the gateway
 * accepted is in the archive.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <gmime/gmime.h>
#include "cutest.h"
#include "postfix.h"
#include "dovecot.h"
#include "custos/cfg.h"
#include "custos/log.h"
#include "custos/milter.h"
#include "custos/once.h"
#include "custos/spool.h"
#include "custos/util.h"

static char *mt_bin, *mt_arc_bin, *mt_lua;
static char *mt_skip;       /* why the suite cannot run here, or NULL */
static GHashTable *mt_live; /* milters and ingests running (a fatal assertion
                             * skips a test's own cleanup) */

static void mt_live_set(GPid pid, int add)
{
    if (mt_live == NULL)
        mt_live = g_hash_table_new(g_direct_hash, g_direct_equal);
    if (add)
        g_hash_table_add(mt_live, GINT_TO_POINTER(pid));
    else
        g_hash_table_remove(mt_live, GINT_TO_POINTER(pid));
}

struct mfx {
    char *dir, *conf, *arc, *spool, *sock, *log;
    char *spec;             /* [milter] socket */
    GPid milter, ingest;
    uid_t uid;
    gid_t gid;
};

static int mt_init(void)
{
    char *why = NULL;

    mt_bin = cut_bin("custos-milter");
    mt_arc_bin = cut_bin("custos-archive");
    mt_lua = cut_src("tests/milter");
    if (!pfx_usable(&why) || access("/usr/bin/miltertest", X_OK) < 0 ||
        getpwnam("nobody") == NULL) {
        mt_skip = why != NULL ? why : g_strdup("miltertest or user nobody missing (make deps)");
        fprintf(stderr, "\n  milter: cannot run here: %s", mt_skip);
    }
    return 0;
}

static int mt_clean(void)
{
    pfx_cleanup();
    if (mt_live != NULL) {
        GHashTableIter it;
        gpointer k;
        g_hash_table_iter_init(&it, mt_live);
        while (g_hash_table_iter_next(&it, &k, NULL)) {
            kill(GPOINTER_TO_INT(k), SIGKILL);
            pfx_wait_pid(GPOINTER_TO_INT(k), 10, NULL);
        }
        g_hash_table_destroy(mt_live);
        mt_live = NULL;
    }
    g_free(mt_bin);
    g_free(mt_arc_bin);
    g_free(mt_lua);
    g_free(mt_skip);
    return 0;
}

/* A test that cannot run here fails, saying why (never a silent pass). */
#define MT_NEED() do { if (mt_skip != NULL) { CU_FAIL("milter suite needs root, postfix, " \
                       "swaks, miltertest (make deps)"); return; } } while (0)

/* The test's custos.conf; arc: more [archive] lines, extra: more groups. */
static void write_conf2(struct mfx *f, const char *arc, const char *extra)
{
    char *text = g_strdup_printf("[archive]\ndir = %s\n%s[spool]\ndir = %s\n"
                                 "[milter]\nsocket = %s\nuser = nobody\ngroup = postfix\n"
                                 "timeout = 60\n[log]\nlevel = debug\n%s",
                                 f->arc, arc ? arc : "", f->spool, f->spec, extra ? extra : "");
    CU_ASSERT(g_file_set_contents(f->conf, text, -1, NULL));
    g_free(text);
}

static void write_conf(struct mfx *f, const char *extra)
{
    write_conf2(f, NULL, extra);
}

/* custos-archive -c CONF ARGS (NULL-terminated); out/err may be NULL. */
static int arc_cli(struct mfx *f, char **out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = cut_cli(mt_arc_bin, f->conf, out, err, ap);
    va_end(ap);
    return rc;
}

/* Test dir (0755: Postfix's smtpd must reach the socket), archive, spool
 * owned by nobody:postfix. inet: a TCP socket instead of a unix one. */
static void mfx_open(struct mfx *f, int inet)
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("postfix");
    char *out = NULL, *err = NULL;

    memset(f, 0, sizeof(*f));
    f->dir = cut_tmpdir();
    chmod(f->dir, 0755);
    f->conf = g_build_filename(f->dir, "custos.conf", NULL);
    f->arc = g_build_filename(f->dir, "archive", NULL);
    f->spool = g_build_filename(f->dir, "spool", NULL);
    f->log = g_build_filename(f->dir, "milter.log", NULL);
    f->uid = pw->pw_uid;
    f->gid = gr != NULL ? gr->gr_gid : pw->pw_gid;
    if (inet)
        f->spec = g_strdup_printf("inet:%d@127.0.0.1", pfx_free_port());
    else {
        f->sock = g_build_filename(f->dir, "milter.sock", NULL);
        f->spec = g_strconcat("unix:", f->sock, NULL);
    }
    write_conf(f, NULL);
    CU_ASSERT_EQUAL(arc_cli(f, &out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(spool_init(f->spool, NULL), 0);
    {
        static const char *const subs[] = { "", "tmp", "new", "failed", "journal" };
        for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
            char *p = g_build_filename(f->spool, subs[i], NULL);
            CU_ASSERT_EQUAL(chown(p, f->uid, f->gid), 0);
            g_free(p);
        }
    }
}

/* Can we connect to the milter's socket? */
static int milter_up(struct mfx *f)
{
    int fd, ok;

    if (f->sock != NULL) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        g_strlcpy(a.sun_path, f->sock, sizeof(a.sun_path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_port = htons((uint16_t)atoi(f->spec + 5));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Start custos-milter -f (log appended to f->log); wrap: a shell command
 * that ends in exec "$@" (e.g. a mount in a namespace), or NULL. */
static int milter_start(struct mfx *f, const char *wrap)
{
    char *argv[] = { "/bin/sh", "-c", NULL, "sh", mt_bin, "-f", "-c", f->conf, NULL };
    int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    GError *gerr = NULL;
    double end = cus_now() + 20;

    char **env = g_get_environ();

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
    {
        /* ASan keeps freed memory in quarantine (256 MB): libmilter's
         * buffer per body chunk would look like growth */
        const char *o = g_environ_getenv(env, "ASAN_OPTIONS");
        char *v = g_strconcat(o ? o : "", o ? ":" : "", "quarantine_size_mb=1", NULL);
        env = g_environ_setenv(env, "ASAN_OPTIONS", v, TRUE);
        g_free(v);
    }
#endif
#endif
    argv[2] = (char *)(wrap != NULL ? wrap : "exec \"$@\"");
    if (!g_spawn_async_with_fds(NULL, argv, env, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &f->milter, -1, fd, fd, &gerr)) {
        fprintf(stderr, "\n  spawn custos-milter: %s", gerr->message);
        g_error_free(gerr);
        g_strfreev(env);
        close(fd);
        return -1;
    }
    g_strfreev(env);
    close(fd);
    mt_live_set(f->milter, 1);
    while (!milter_up(f)) {
        if (cus_now() > end || waitpid(f->milter, NULL, WNOHANG) == f->milter) {
            char *log = NULL;
            g_file_get_contents(f->log, &log, NULL, NULL);
            fprintf(stderr, "\n  custos-milter did not come up:\n%s", log);
            g_free(log);
            f->milter = 0;
            return -1;
        }
        g_usleep(10000);
    }
    return 0;
}

/* SIGTERM, then its exit status (-1 if it had to be killed). */
static int milter_stop(struct mfx *f)
{
    int st = 0;

    if (f->milter <= 0)
        return -1;
    kill(f->milter, SIGTERM);
    if (pfx_wait_pid(f->milter, 30, &st) < 0) {
        kill(f->milter, SIGKILL);
        pfx_wait_pid(f->milter, 10, NULL);
        st = -1;
    }
    g_spawn_close_pid(f->milter);
    mt_live_set(f->milter, 0);
    f->milter = 0;
    return st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void ingest_start(struct mfx *f)
{
    char *argv[] = { mt_arc_bin, "-c", f->conf, "ingest", "--follow", NULL };
    char *log = g_build_filename(f->dir, "ingest.log", NULL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    CU_ASSERT(g_spawn_async_with_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                     &f->ingest, -1, fd, fd, NULL));
    close(fd);
    if (f->ingest > 0)
        mt_live_set(f->ingest, 1);
    g_free(log);
}

static void ingest_stop(struct mfx *f)
{
    int st = 0;

    if (f->ingest <= 0)
        return;
    kill(f->ingest, SIGTERM);
    if (pfx_wait_pid(f->ingest, 30, &st) < 0) {
        kill(f->ingest, SIGKILL);
        pfx_wait_pid(f->ingest, 10, NULL);
        CU_FAIL("ingest --follow did not stop on SIGTERM");
    } else {
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    g_spawn_close_pid(f->ingest);
    mt_live_set(f->ingest, 0);
    f->ingest = 0;
}

static void mfx_close(struct mfx *f)
{
    ingest_stop(f);
    if (f->milter > 0)
        milter_stop(f);
    cut_rmtree(f->dir);
    g_free(f->dir); g_free(f->conf); g_free(f->arc); g_free(f->spool);
    g_free(f->sock); g_free(f->log); g_free(f->spec);
}

/* Names in SPOOL/SUB. */
static GPtrArray *spool_names(struct mfx *f, const char *sub)
{
    char *p = g_build_filename(f->spool, sub, NULL);
    GDir *d = g_dir_open(p, 0, NULL);
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    const char *n;

    while (d != NULL && (n = g_dir_read_name(d)) != NULL)
        g_ptr_array_add(a, g_strdup(n));
    if (d != NULL)
        g_dir_close(d);
    g_free(p);
    return a;
}

/* Wait (5 s at most) until the milter's journal is handed over: journal/
 * empty, its entries in new/. */
static int journal_wait(struct mfx *f)
{
    double end = cus_now() + 5;
    GPtrArray *a;
    guint n;

    for (;;) {
        a = spool_names(f, "journal");
        n = a->len;
        g_ptr_array_free(a, TRUE);
        if (n == 0 || cus_now() > end)
            break;
        g_usleep(20000);
    }
    if (n > 0) {
        a = spool_names(f, "journal");
        for (guint i = 0; i < a->len; i++)
            fprintf(stderr, "\n  still in journal/: %s", (char *)g_ptr_array_index(a, i));
        g_ptr_array_free(a, TRUE);
    }
    return n == 0;
}

/* Every entry in new/, of the files of their own and of journals (struct
 * spool_entry *, for the caller to free), once the journal is handed over. */
static GPtrArray *spool_entries(struct mfx *f)
{
    GPtrArray *a, *all = g_ptr_array_new();

    CU_ASSERT(journal_wait(f));
    a = spool_names(f, "new");
    for (guint i = 0; i < a->len; i++) {
        GPtrArray *es = NULL;
        guint failed = 0;
        char *err = NULL;

        if (spool_read_all(f->spool, g_ptr_array_index(a, i), &es, &failed, NULL, &err) < 0) {
            if (errno != ENOENT) {      /* else ingest took it meanwhile */
                fprintf(stderr, "\n  %s", err);
                CU_FAIL("a spool entry the milter wrote does not read back");
            }
            g_free(err);
            continue;
        }
        CU_ASSERT_EQUAL(failed, 0);
        for (guint k = 0; k < es->len; k++)
            g_ptr_array_add(all, g_ptr_array_index(es, k));
        g_ptr_array_set_free_func(es, NULL);
        g_ptr_array_free(es, TRUE);
    }
    g_ptr_array_free(a, TRUE);
    return all;
}

static void entries_free(GPtrArray *a)
{
    for (guint i = 0; i < a->len; i++) {
        struct spool_entry *e = g_ptr_array_index(a, i);
        spool_entry_free(&e);
    }
    g_ptr_array_free(a, TRUE);
}

/* Files in SPOOL/SUB; for new/, the entries there (journals read). */
static guint spool_count(struct mfx *f, const char *sub)
{
    GPtrArray *a;
    guint n;

    if (strcmp(sub, "new") == 0) {
        a = spool_entries(f);
        n = a->len;
        entries_free(a);
        return n;
    }
    a = spool_names(f, sub);
    n = a->len;
    g_ptr_array_free(a, TRUE);
    return n;
}

/* The entries in new/, by queue id (struct spool_entry *). */
static GHashTable *spool_by_qid(struct mfx *f)
{
    GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, NULL);
    GPtrArray *a = spool_entries(f);

    for (guint i = 0; i < a->len; i++) {
        struct spool_entry *e = g_ptr_array_index(a, i);
        g_hash_table_insert(h, e->queue_id, e);
    }
    g_ptr_array_free(a, TRUE);
    return h;
}

static void spool_table_free(GHashTable *h)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, h);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        struct spool_entry *e = v;
        spool_entry_free(&e);
    }
    g_hash_table_destroy(h);
}

/* Empty new/ (what the last script left), so each script is judged alone. */
static void spool_clear(struct mfx *f)
{
    GPtrArray *a;

    CU_ASSERT(journal_wait(f));
    a = spool_names(f, "new");

    for (guint i = 0; i < a->len; i++)
        spool_remove(f->spool, g_ptr_array_index(a, i), NULL);
    g_ptr_array_free(a, TRUE);
}

/* The spool's tmp/ and journal/ made read-only (once the open journal is
 * handed over: the milter then has no file to write in), or writable again. */
static void spool_writable(struct mfx *f, int on)
{
    static const char *const subs[] = { "tmp", "journal" };

    if (!on)
        CU_ASSERT(journal_wait(f));
    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *p = g_build_filename(f->spool, subs[i], NULL);
        CU_ASSERT_EQUAL(chmod(p, on ? 0770 : 0500), 0);
        g_free(p);
    }
}

/* Wait until tmp/ is empty (the milter drops a message when its
 * connection goes: asynchronously). */
static int tmp_empty(struct mfx *f, double timeout)
{
    double end = cus_now() + timeout;

    while (spool_count(f, "tmp") != 0) {
        if (cus_now() > end)
            return 0;
        g_usleep(10000);
    }
    return 1;
}

/* miltertest -s SCRIPT with sock, dir and NAME=VALUE definitions: exit status. */
static int miltertest(struct mfx *f, const char *script, const char *def)
{
    char *path = g_strdup_printf("%s/%s.lua", mt_lua, script);
    char *dsock = g_strconcat("sock=", f->spec, NULL), *ddir = g_strconcat("dir=", mt_lua, NULL);
    char *argv[] = { "/usr/bin/miltertest", "-D", dsock, "-D", ddir, "-s", path, NULL, NULL,
                     NULL };
    char *out = NULL, *err = NULL;
    int rc;

    if (def != NULL) {
        argv[7] = "-D";
        argv[8] = (char *)def;
        argv[6] = NULL;
        /* -s last: miltertest takes the options before it */
        argv[5] = "-D";
        argv[6] = (char *)def;
        argv[7] = "-s";
        argv[8] = path;
    }
    rc = cut_run(argv, &out, &err);
    if (rc != 0)
        fprintf(stderr, "\n  miltertest %s: %d\n%s%s", script, rc, out, err);
    g_free(out); g_free(err);
    g_free(path); g_free(dsock); g_free(ddir);
    return rc;
}

static long vm_kb(GPid pid, const char *field)
{
    char path[64], *text = NULL, *at;
    long v = -1;

    g_snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (g_file_get_contents(path, &text, NULL, NULL) && (at = strstr(text, field)) != NULL)
        v = atol(at + strlen(field) + 1);
    g_free(text);
    return v;
}

/*
 * The record of notices (once.c): a claim holds the key off while pending
 * and, confirmed, for the period; released, the key is free again; a
 * pending claim of a process that died (the record opened again) is gone,
 * a confirmed one stays.
 */
static void test_once(void)
{
    char *dir = cut_tmpdir(), *path = g_build_filename(dir, "once.db", NULL), *err = NULL;
    struct once *o = NULL;
    const gint64 now = 1764556800, day = 86400;

    CU_ASSERT_EQUAL_FATAL(once_open(path, &o, &err), 0);
    CU_ASSERT_EQUAL(once_claim(o, "a", now, 30 * day, &err), 1);
    CU_ASSERT_EQUAL(once_claim(o, "a", now + 1, 30 * day, &err), 0);       /* pending */
    CU_ASSERT_EQUAL(once_release(o, "a", now, &err), 0);
    CU_ASSERT_EQUAL(once_claim(o, "a", now + 2, 30 * day, &err), 1);       /* free again */
    CU_ASSERT_EQUAL(once_confirm(o, "a", now + 2, &err), 0);
    CU_ASSERT_EQUAL(once_release(o, "a", now + 2, &err), 0);               /* done: stays */
    CU_ASSERT_EQUAL(once_claim(o, "a", now + 10 * day, 30 * day, &err), 0);
    CU_ASSERT_EQUAL(once_claim(o, "a", now + 31 * day, 30 * day, &err), 1);    /* period over */
    CU_ASSERT_EQUAL(once_confirm(o, "a", now + 31 * day, &err), 0);
    /* pending too long (ONCE_PENDING): free again */
    CU_ASSERT_EQUAL(once_claim(o, "b", now, 30 * day, &err), 1);
    CU_ASSERT_EQUAL(once_claim(o, "b", now + ONCE_PENDING - 1, 30 * day, &err), 0);
    CU_ASSERT_EQUAL(once_claim(o, "b", now + ONCE_PENDING, 30 * day, &err), 1);
    /* the claimer killed between claim and deed: opened again, b is free, a
     * (confirmed) is not */
    once_close(&o);
    CU_ASSERT_EQUAL_FATAL(once_open(path, &o, &err), 0);
    CU_ASSERT_EQUAL(once_claim(o, "b", now + ONCE_PENDING + 1, 30 * day, &err), 1);
    {
        /* "a" was confirmed 31 days after now; the wall clock is what the
         * year-old pruning uses, so claim relative to the real time */
        gint64 t = g_get_real_time() / G_USEC_PER_SEC;
        CU_ASSERT_EQUAL(once_claim(o, "c", t, 30 * day, &err), 1);
        CU_ASSERT_EQUAL(once_confirm(o, "c", t, &err), 0);
        once_close(&o);
        CU_ASSERT_EQUAL_FATAL(once_open(path, &o, &err), 0);
        CU_ASSERT_EQUAL(once_claim(o, "c", t + 1, 30 * day, &err), 0);
    }
    once_close(&o);
    cut_rmtree(dir);
    g_free(dir);
    g_free(path);
}

static void test_protocol(void)
{
    struct mfx f;
    GHashTable *h;
    struct spool_entry *e;
    char *log = NULL;
    long hwm0, hwm1;

    MT_NEED();
    mfx_open(&f, 0);
    CU_ASSERT_EQUAL_FATAL(milter_start(&f, NULL), 0);
    /* it gave up root (just after opening the socket, which milter_start()
     * waits for: give it a moment) */
    {
        char path[64], *st = NULL;
        double end = cus_now() + 5;
        g_snprintf(path, sizeof(path), "/proc/%d/status", f.milter);
        do {
            g_free(st);
            st = NULL;
            CU_ASSERT_FATAL(g_file_get_contents(path, &st, NULL, NULL));
            if (strstr(st, "\nUid:\t0\t") == NULL)
                break;
            g_usleep(10000);
        } while (cus_now() < end);
        CU_ASSERT(strstr(st, "\nUid:\t0\t") == NULL);
        g_free(st);
    }

    /* abort mid-message: nothing; the next one on the connection: archived;
     * a connection dropped mid-body: nothing left in tmp/ */
    CU_ASSERT_EQUAL(miltertest(&f, "abort", NULL), 0);
    CU_ASSERT(tmp_empty(&f, 5));
    h = spool_by_qid(&f);
    CU_ASSERT_EQUAL(g_hash_table_size(h), 1);
    e = g_hash_table_lookup(h, "KEPT1");
    CU_ASSERT_PTR_NOT_NULL(e);
    if (e != NULL) {
        CU_ASSERT_STRING_EQUAL(e->sender, "a@example.com");
        CU_ASSERT_STRING_EQUAL(e->client, "192.0.2.7 [mx.example]");
        CU_ASSERT_STRING_EQUAL(e->source, "milter");
        CU_ASSERT(e->rcpts[0] != NULL && strcmp(e->rcpts[0], "b@example.org") == 0);
        CU_ASSERT(g_bytes_get_size(e->raw) > 0 &&
                  g_strstr_len(g_bytes_get_data(e->raw, NULL), -1,
                               "From: a@example.com\r\nSubject: kept after an abort\r\n\r\n"
                               "whole body\r\n") != NULL);
    }
    spool_table_free(h);
    spool_clear(&f);

    /* several messages on one connection, each with its envelope */
    CU_ASSERT_EQUAL(miltertest(&f, "several", NULL), 0);
    h = spool_by_qid(&f);
    CU_ASSERT_EQUAL(g_hash_table_size(h), 6);
    for (int i = 1; i <= 6; i++) {
        char q[16], s[32];
        int n = 0;
        g_snprintf(q, sizeof(q), "MULTI%d", i);
        g_snprintf(s, sizeof(s), "s%d@example.com", i);
        e = g_hash_table_lookup(h, q);
        CU_ASSERT_PTR_NOT_NULL(e);
        if (e == NULL)
            continue;
        CU_ASSERT_STRING_EQUAL(e->sender, s);
        while (e->rcpts[n] != NULL)
            n++;
        CU_ASSERT_EQUAL(n, i <= 5 ? i : 1);
    }
    CU_ASSERT_PTR_NULL(g_hash_table_lookup(h, "UNFINISHED"));
    spool_table_free(h);
    spool_clear(&f);

    /* no macros, no client address */
    CU_ASSERT_EQUAL(miltertest(&f, "macros", NULL), 0);
    h = spool_by_qid(&f);
    CU_ASSERT_EQUAL(g_hash_table_size(h), 1);
    e = g_hash_table_lookup(h, "");
    CU_ASSERT(e != NULL && strcmp(e->sender, "") == 0 && e->rcpts[0] != NULL &&
              strcmp(e->rcpts[0], "nomacro@example.org") == 0);
    spool_table_free(h);
    spool_clear(&f);

    /* 40 MB: archived whole, resident memory flat */
    hwm0 = vm_kb(f.milter, "VmHWM:");
    CU_ASSERT_EQUAL(miltertest(&f, "huge", "mb=40"), 0);
    hwm1 = vm_kb(f.milter, "VmHWM:");
    h = spool_by_qid(&f);
    e = g_hash_table_lookup(h, "HUGE1");
    CU_ASSERT(e != NULL && g_bytes_get_size(e->raw) > 40ULL * 1000 * 1000);
    fprintf(stderr, "(peak RSS %ld kB before a 40 MB message, %ld kB after) ", hwm0, hwm1);
    CU_ASSERT(hwm0 > 0 && hwm1 > 0 && hwm1 <= hwm0 + hwm0 / 5 + 2048);
    spool_table_free(h);
    spool_clear(&f);

    /* the spool cannot be written: 451 at DATA, nothing left anywhere */
    spool_writable(&f, 0);
    CU_ASSERT_EQUAL(miltertest(&f, "tempfail", NULL), 0);
    spool_writable(&f, 1);
    CU_ASSERT_EQUAL(spool_count(&f, "new"), 0);
    CU_ASSERT_EQUAL(spool_count(&f, "tmp"), 0);

    /* SIGHUP: reloaded, still serving; a broken file keeps the old one */
    CU_ASSERT_EQUAL(kill(f.milter, SIGHUP), 0);
    g_usleep(300000);
    g_file_set_contents(f.conf, "[milter]\nbogus = 1\n", -1, NULL);
    CU_ASSERT_EQUAL(kill(f.milter, SIGHUP), 0);
    g_usleep(300000);
    CU_ASSERT_EQUAL(waitpid(f.milter, NULL, WNOHANG), 0);
    CU_ASSERT_EQUAL(miltertest(&f, "macros", NULL), 0);
    CU_ASSERT_EQUAL(spool_count(&f, "new"), 1);
    write_conf(&f, NULL);

    /* SIGTERM: a clean exit */
    CU_ASSERT_EQUAL(milter_stop(&f), 0);
    g_file_get_contents(f.log, &log, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(log != NULL ? strstr(log, "NOQUEUE: reloaded") : NULL);
    CU_ASSERT_PTR_NOT_NULL(log != NULL ? strstr(log, "unknown key \"bogus\"") : NULL);
    CU_ASSERT_PTR_NOT_NULL(log != NULL ? strstr(log, "FAIL1: cannot journal the message") : NULL);
    CU_ASSERT_PTR_NOT_NULL(log != NULL ? strstr(log, "NOQUEUE: stopped") : NULL);
    g_free(log);
    mfx_close(&f);
}

/* ---- the callbacks driven directly, with a fake libmilter ---------------- */

static void *fk_priv;
static char fk_rcode[8];

static char *fk_getsymval(SMFICTX *ctx, char *name)
{
    return strcmp(name, "i") == 0 ? "FAKEQ1" : NULL;
}

static int fk_setpriv(SMFICTX *ctx, void *priv)
{
    fk_priv = priv;
    return MI_SUCCESS;
}

static void *fk_getpriv(SMFICTX *ctx)
{
    return fk_priv;
}

static int fk_setreply(SMFICTX *ctx, char *rcode, char *xcode, char *message)
{
    g_strlcpy(fk_rcode, rcode, sizeof(fk_rcode));
    return MI_SUCCESS;
}

static int fk_ins_fail;      /* 1: the MTA refuses every header added */

static int fk_insheader(SMFICTX *ctx, int idx, char *name, char *value)
{
    return fk_ins_fail ? MI_FAILURE : MI_SUCCESS;
}

static GString *fk_chg;      /* non-NULL: each header change, "NAME:INDEX:VALUE;" */

static int fk_chgheader(SMFICTX *ctx, char *name, int idx, char *value)
{
    if (fk_chg != NULL)
        g_string_append_printf(fk_chg, "%s:%d:%s;", name, idx, value != NULL ? value : "-");
    return MI_SUCCESS;
}

static int fk_rcpt(SMFICTX *ctx, char *rcpt)
{
    return MI_SUCCESS;
}

static int fk_setmlreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *l1,
                         const char *l2)
{
    g_strlcpy(fk_rcode, rcode, sizeof(fk_rcode));
    return MI_SUCCESS;
}

static const struct mlt_smfi fk_smfi = {
    .getsymval = fk_getsymval, .setpriv = fk_setpriv, .getpriv = fk_getpriv,
    .setreply = fk_setreply, .insheader = fk_insheader, .chgheader = fk_chgheader,
    .addrcpt = fk_rcpt, .delrcpt = fk_rcpt, .quarantine = fk_rcpt,
    .setmlreply = fk_setmlreply,
};

/* mlt_init() with a config for socket (spool under dir); 0 or -1. */
static int fk_init(const char *dir, const char *socket)
{
    char *path = g_build_filename(dir, "fake.conf", NULL);
    char *text = g_strdup_printf("[archive]\ndir = %s/none\n[spool]\ndir = %s/spool\n"
                                 "[milter]\nsocket = %s\n",
                                 dir, dir, socket);
    struct cfg *cfg = NULL;
    char *err = NULL;
    int ret = -1;

    if (g_file_set_contents(path, text, -1, NULL) && cfg_load(path, &cfg, &err) == 0)
        ret = mlt_init(cfg, &fk_smfi, &err);
    if (ret < 0)
        fprintf(stderr, "\n  fake milter: %s", err);
    g_free(err);
    g_free(text);
    g_free(path);
    return ret;
}

/* A message up to its end, over a socket with no replies but at DATA. */
static void fk_message_noreply(SMFICTX *ctx, char **from, char **to, char *subject)
{
    CU_ASSERT_EQUAL(mlfi_envfrom(ctx, from), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_envrcpt(ctx, to), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_data(ctx), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "Subject", subject), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_eoh(ctx), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_body(ctx, (unsigned char *)"body\r\n", 6), SMFIS_NOREPLY);
}

/* What custos-milter asks of the MTA: no HELO ever; over either socket no
 * reply but at DATA and end of message (connect, MAIL, RCPT, headers, end of
 * header and body get none, and say nothing), where the MTA offers that;
 * else every step answered. A failure in a step with no reply is answered
 * at the next that has one: MAIL FROM while stopping gets 421 at DATA. */
static void test_noreply(void)
{
    SMFICTX *ctx = (SMFICTX *)&fk_priv;     /* any pointer: the fake ignores it */
    const unsigned long all = SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC |
                              SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                              SMFIP_NR_DATA | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
    unsigned long pf0, pf1, pf2, pf3;
    char *dir = cut_tmpdir(), *from[] = { "<a@example.com>", NULL },
         *to[] = { "<b@example.org>", NULL };
    struct sockaddr_in sin = { .sin_family = AF_INET };
    GPtrArray *ids = NULL;
    char *spool = g_build_filename(dir, "spool", NULL);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* over TCP as over a unix socket: answers at DATA and end of message
     * only; an MTA that offers no such thing gets every step answered */
    CU_ASSERT_EQUAL_FATAL(fk_init(dir, "inet:10099@127.0.0.1"), 0);
    CU_ASSERT_EQUAL(mlfi_negotiate(ctx, SMFIF_ADDHDRS | SMFIF_CHGHDRS, all, 0, 0, &pf0, &pf1,
                                   &pf2, &pf3), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(pf1, SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC | SMFIP_NR_CONN |
                         SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_EOH |
                         SMFIP_NR_BODY);
    CU_ASSERT_EQUAL(mlfi_connect(ctx, "mx.example", (_SOCK_ADDR *)&sin), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_envfrom(ctx, from), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_envrcpt(ctx, to), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_close(ctx), SMFIS_CONTINUE);
    CU_ASSERT_PTR_NULL(fk_priv);
    CU_ASSERT_EQUAL(mlfi_negotiate(ctx, SMFIF_ADDHDRS | SMFIF_CHGHDRS,
                                   SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC, 0, 0,
                                   &pf0, &pf1, &pf2, &pf3), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(pf1, SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC);
    CU_ASSERT_EQUAL(mlfi_connect(ctx, "mx.example", (_SOCK_ADDR *)&sin), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_envfrom(ctx, from), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_envrcpt(ctx, to), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_data(ctx), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "Subject", " answered"), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_eoh(ctx), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_body(ctx, (unsigned char *)"body\r\n", 6), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_abort(ctx), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_close(ctx), SMFIS_CONTINUE);
    CU_ASSERT_PTR_NULL(fk_priv);
    mlt_deinit();

    /* a unix socket: a whole message, then one while stopping */
    CU_ASSERT_EQUAL_FATAL(fk_init(dir, "unix:/nonexistent/milter.sock"), 0);
    CU_ASSERT_EQUAL(mlfi_negotiate(ctx, SMFIF_ADDHDRS | SMFIF_CHGHDRS, all, 0, 0, &pf0, &pf1,
                                   &pf2, &pf3), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(pf1, SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC | SMFIP_NR_CONN |
                         SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_EOH |
                         SMFIP_NR_BODY);
    CU_ASSERT_EQUAL(mlfi_connect(ctx, "mx.example", (_SOCK_ADDR *)&sin), SMFIS_NOREPLY);
    fk_message_noreply(ctx, from, to, " no replies");
    CU_ASSERT_EQUAL(mlfi_eom(ctx), SMFIS_CONTINUE);
    /* headers of ours that came with a message are removed, each one, the
     * last first (the MTA counts them from 1) */
    fk_chg = g_string_new(NULL);
    CU_ASSERT_EQUAL(mlfi_envfrom(ctx, from), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_envrcpt(ctx, to), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_data(ctx), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "X-Custos-Archive", " forged-1"), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "Subject", " forged headers"), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "x-custos-flag", " forged"), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "X-Custos-Archive", " forged-2"), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_header(ctx, "X-Custos-Original-To", " forged"), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_eoh(ctx), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_body(ctx, (unsigned char *)"body\r\n", 6), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_eom(ctx), SMFIS_CONTINUE);
    CU_ASSERT_STRING_EQUAL(fk_chg->str, "X-Custos-Archive:2:-;X-Custos-Archive:1:-;"
                                        "X-Custos-Flag:1:-;X-Custos-Original-To:1:-;");
    g_string_free(fk_chg, TRUE);
    fk_chg = NULL;
    CU_ASSERT_EQUAL(spool_journal_close(NULL), 0);     /* the journal handed over */
    CU_ASSERT_EQUAL(spool_list(spool, &ids, NULL), 0);
    CU_ASSERT(ids != NULL && ids->len == 1);
    if (ids != NULL)
        g_ptr_array_free(ids, TRUE);
    ids = NULL;
    /* the MTA refuses X-Custos-Archive (as when it is gone): 451, and
     * nothing journalled, so the try that it takes is archived once */
    fk_ins_fail = 1;
    fk_message_noreply(ctx, from, to, " refused by the MTA");
    fk_rcode[0] = '\0';
    CU_ASSERT_EQUAL(mlfi_eom(ctx), SMFIS_TEMPFAIL);
    CU_ASSERT_STRING_EQUAL(fk_rcode, "451");
    fk_ins_fail = 0;
    CU_ASSERT_EQUAL(spool_journal_close(NULL), 0);
    CU_ASSERT_EQUAL(spool_list(spool, &ids, NULL), 0);
    CU_ASSERT(ids != NULL && ids->len == 1);
    if (ids != NULL)
        g_ptr_array_free(ids, TRUE);
    ids = NULL;
    /* the journal's sync fails (a disk that lost the write): 451, and
     * nothing of it handed over */
    setenv("CUSTOS_FAULT", "journal-sync", 1);
    fk_message_noreply(ctx, from, to, " not synced");
    fk_rcode[0] = '\0';
    CU_ASSERT_EQUAL(mlfi_eom(ctx), SMFIS_TEMPFAIL);
    CU_ASSERT_STRING_EQUAL(fk_rcode, "451");
    unsetenv("CUSTOS_FAULT");
    CU_ASSERT_EQUAL(spool_journal_close(NULL), 0);
    CU_ASSERT_EQUAL(spool_list(spool, &ids, NULL), 0);
    CU_ASSERT(ids != NULL && ids->len == 1);
    if (ids != NULL)
        g_ptr_array_free(ids, TRUE);
    /* the next message, with the milter stopping: no answer to MAIL and RCPT,
     * 421 at DATA, nothing journalled */
    mlt_stop();
    CU_ASSERT_EQUAL(mlfi_envfrom(ctx, from), SMFIS_NOREPLY);
    CU_ASSERT_EQUAL(mlfi_envrcpt(ctx, to), SMFIS_NOREPLY);
    fk_rcode[0] = '\0';
    CU_ASSERT_EQUAL(mlfi_data(ctx), SMFIS_TEMPFAIL);
    CU_ASSERT_STRING_EQUAL(fk_rcode, "421");
    CU_ASSERT_EQUAL(mlt_in_flight(), 0);
    CU_ASSERT_EQUAL(mlfi_close(ctx), SMFIS_CONTINUE);
    CU_ASSERT_EQUAL(mlt_active(), 0);
    CU_ASSERT_EQUAL(spool_journal_close(NULL), 0);
    CU_ASSERT_EQUAL(spool_list(spool, &ids, NULL), 0);
    CU_ASSERT(ids != NULL && ids->len == 1);
    if (ids != NULL)
        g_ptr_array_free(ids, TRUE);
    mlt_deinit();
    cut_rmtree(dir);
    g_free(spool);
    g_free(dir);
}

/* With the sample directory imported and scope = departments: departed
 * senders flagged three ways (journalled, then refused: the built-in
 * action), a newsletter to management not archived. */
static void test_directory(void)
{
    struct mfx f;
    GHashTable *h;
    char *extra, *webmail = cut_src("conf/webmail-domains.txt");
    char *csv = cut_src("conf/employees.sample.csv"), *out = NULL, *err = NULL, *log = NULL;
    static const char *const want[] = {
        "DEP1: finding departed-sender: rule=departed-sender/envelope: envelope sender "
        "chen.jie@corp.example: departed employee (left 2025-01-15; successor "
        "li.na@corp.example)",
        "DEP2: finding departed-sender: rule=departed-sender/header-from: header From "
        "chen.jie@corp.example: departed employee",
        "DEP3: finding departed-sender: rule=departed-sender/sasl: SASL login "
        "chen.jie@corp.example: departed employee",
        "NEWS1: not archived",
        "DEP1: rejected: 550 5.7.1 Message refused by company mail policy (departed-sender)",
        "ROUTE1: routed: <chen.jie@corp.example> (departed) to <li.na@corp.example>",
    };

    MT_NEED();
    mfx_open(&f, 0);
    /* the milter (nobody, group postfix) reads index.db as a reader of the archive */
    extra = g_strdup_printf("[directory]\nwebmail_domains = %s\n", webmail);
    write_conf2(&f, "scope = departments\ngroup = postfix\n", extra);
    CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "directory", "import", "employees", csv, NULL), 0);
    if (err != NULL && *err)
        fprintf(stderr, "\n  directory import: %s", err);
    g_free(out); g_free(err);
    CU_ASSERT_EQUAL_FATAL(milter_start(&f, NULL), 0);
    CU_ASSERT_EQUAL(miltertest(&f, "departed", NULL), 0);
    h = spool_by_qid(&f);
    CU_ASSERT_EQUAL(g_hash_table_size(h), 5);
    CU_ASSERT_PTR_NOT_NULL(g_hash_table_lookup(h, "ROUTE1"));
    CU_ASSERT_PTR_NOT_NULL(g_hash_table_lookup(h, "DEP1"));
    CU_ASSERT_PTR_NOT_NULL(g_hash_table_lookup(h, "DEP2"));
    CU_ASSERT_PTR_NOT_NULL(g_hash_table_lookup(h, "DEP3"));
    CU_ASSERT_PTR_NOT_NULL(g_hash_table_lookup(h, "SALES1"));
    CU_ASSERT_PTR_NULL(g_hash_table_lookup(h, "NEWS1"));
    spool_table_free(h);
    CU_ASSERT_EQUAL(milter_stop(&f), 0);
    g_file_get_contents(f.log, &log, NULL, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
        if (log == NULL || strstr(log, want[i]) == NULL) {
            fprintf(stderr, "\n  not in the log: %s", want[i]);
            CU_FAIL("an expected finding or decision is missing");
        }
    CU_ASSERT(log != NULL && strstr(log, "SALES1: finding") == NULL);
    CU_ASSERT(log != NULL && strstr(log, "directory unavailable") == NULL);
    if (log != NULL && strstr(log, "directory unavailable") != NULL)
        fprintf(stderr, "\n%s", log);
    g_free(log);
    g_free(extra);
    g_free(webmail);
    g_free(csv);
    mfx_close(&f);
}

/* ---- with Postfix ----------------------------------------------------- */

/* One integer from index.db; -1 on error. */
/* The first column of the first row of sql (one text argument or none) in
 * the SQLite file at path, read-only; -1 if there is none. */
static gint64 q_int_at(const char *path, const char *sql, const char *arg)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    gint64 v = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        (arg == NULL || sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT) == SQLITE_OK) &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The same in the archive's index. */
static gint64 q_int(struct mfx *f, const char *sql, const char *arg)
{
    char *path = g_build_filename(f->arc, "index.db", NULL);
    gint64 v = q_int_at(path, sql, arg);

    g_free(path);
    return v;
}

static int ingested(struct mfx *f, gint64 n, double timeout)
{
    double end = cus_now() + timeout;

    while (spool_count(f, "new") != 0 ||
           q_int(f, "SELECT count(*) FROM deliveries", NULL) < n) {
        if (cus_now() > end)
            return 0;
        g_usleep(50000);
    }
    return 1;
}

static int search_count(struct mfx *f, const char *query)
{
    char *out = NULL, *err = NULL;
    int n = -1;

    if (arc_cli(f, &out, &err, "search", "--count", query, NULL) == 0)
        n = atoi(out);
    else
        fprintf(stderr, "\n  search %s: %s", query, err);
    g_free(out); g_free(err);
    return n;
}

/* A message file for swaks --data @FILE: headers (UTF-8 text) and a body
 * converted to charset (raw bytes). */
static char *mail_file(struct mfx *f, const char *name, const char *headers,
                       const char *charset, const char *body_utf8)
{
    char *path = g_build_filename(f->dir, name, NULL);
    gsize len = 0;
    char *body = g_convert(body_utf8, -1, charset, "UTF-8", NULL, &len, NULL);
    GString *s = g_string_new(headers);

    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    g_string_append_printf(s, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=%s\r\n"
                              "Content-Transfer-Encoding: 8bit\r\n\r\n", charset);
    g_string_append_len(s, body, (gssize)len);
    g_string_append(s, "\r\n");
    CU_ASSERT(g_file_set_contents(path, s->str, (gssize)s->len, NULL));
    g_string_free(s, TRUE);
    g_free(body);
    return path;
}

/* "=?CHARSET?B?...?=" of UTF-8 text. */
static char *rfc2047(const char *charset, const char *utf8)
{
    gsize len = 0;
    char *raw = g_convert(utf8, -1, charset, "UTF-8", NULL, &len, NULL);
    char *b64 = g_base64_encode((const guchar *)raw, len);
    char *ret = g_strdup_printf("=?%s?B?%s?=", charset, b64);

    g_free(raw);
    g_free(b64);
    return ret;
}

/* The X-Custos-Archive value of a delivered message, or NULL (g_free). */
static char *archive_header(GBytes *msg)
{
    const char *s = g_bytes_get_data(msg, NULL), *h;
    const char *eoh = g_strstr_len(s, (gssize)g_bytes_get_size(msg), "\r\n\r\n");

    h = g_strstr_len(s, (gssize)g_bytes_get_size(msg), "\nX-Custos-Archive: ");
    if (h == NULL || (eoh != NULL && h > eoh))
        return NULL;
    h += strlen("\nX-Custos-Archive: ");
    return g_strndup(h, strcspn(h, "\r\n"));
}

static void test_postfix(void)
{
    struct mfx f;
    struct pfx gw;
    struct pfx_sink sink;
    char *err = NULL, *sinkdir, *gwdir, *out = NULL;
    char *subj_gb, *subj_gbk, *subj_utf8, *files[3];
    GPtrArray *msgs;
    int sent = 0;

    MT_NEED();
    mfx_open(&f, 0);
    sinkdir = g_build_filename(f.dir, "sink", NULL);
    gwdir = g_build_filename(f.dir, "postfix", NULL);
    CU_ASSERT_EQUAL_FATAL(milter_start(&f, NULL), 0);
    ingest_start(&f);
    CU_ASSERT_EQUAL_FATAL(pfx_sink_start(&sink, sinkdir, &err), 0);
    if (pfx_start(&gw, gwdir, sink.port, f.spec, NULL, &err) < 0) {
        fprintf(stderr, "\n  %s", err);
        CU_FAIL("private Postfix did not start");
        g_free(err);
        goto out;
    }

    /* English, with a BCC (an envelope recipient in no header) */
    CU_ASSERT_EQUAL(pfx_swaks(gw.port, &out, "--from", "alice@corp.example",
                              "--to", "bob@customer.example,hidden@audit.example",
                              "--header", "To: Bob <bob@customer.example>",
                              "--header", "Subject: Quarterly pricing for Acme",
                              "--body", "Dear Bob, the quarterly pricing sheet is attached.",
                              NULL), 0);
    sent++;
    g_free(out);
    /* Chinese: GB2312, GBK (a character GB2312 lacks), UTF-8 */
    subj_gb = rfc2047("GB2312", "报价单 第三季度");
    subj_gbk = rfc2047("GBK", "朱镕基 来函");
    subj_utf8 = rfc2047("UTF-8", "客户名单 更新");
    {
        char *h = g_strdup_printf("From: =?UTF-8?B?5byg5LiJ?= <zhang@corp.example>\r\n"
                                  "To: li@customer.example\r\nSubject: %s\r\n", subj_gb);
        files[0] = mail_file(&f, "gb2312.eml", h, "GB2312", "您好，附件是第三季度的报价单。");
        g_free(h);
        h = g_strdup_printf("From: wang@corp.example\r\nTo: li@customer.example\r\n"
                            "Subject: %s\r\n", subj_gbk);
        files[1] = mail_file(&f, "gbk.eml", h, "GBK", "朱镕基先生的来函已收到，谢谢。");
        g_free(h);
        h = g_strdup_printf("From: zhao@corp.example\r\nTo: li@customer.example\r\n"
                            "Subject: %s\r\n", subj_utf8);
        files[2] = mail_file(&f, "utf8.eml", h, "UTF-8", "客户名单已经更新，请查收。");
        g_free(h);
    }
    for (int i = 0; i < 3; i++) {
        char *data = g_strconcat("@", files[i], NULL);
        CU_ASSERT_EQUAL(pfx_swaks(gw.port, &out, "--from", "sales@corp.example", "--to",
                                  "li@customer.example", "--data", data, NULL), 0);
        sent++;
        g_free(out);
        g_free(data);
        g_free(files[i]);
    }

    /* what arrived: every message, each tagged with its own id */
    msgs = pfx_sink_messages(&sink, (guint)sent, 60);
    CU_ASSERT_EQUAL(msgs->len, (guint)sent);
    /* what was archived: after ingest, each id is a delivery */
    CU_ASSERT(ingested(&f, sent, 60));
    for (guint i = 0; i < msgs->len; i++) {
        char *id = archive_header(g_ptr_array_index(msgs, i));
        CU_ASSERT(id != NULL && spool_id_valid(id));
        if (id != NULL) {
            /* and the header's value finds the message in a query */
            char *q = g_strdup_printf("spool:%s", id);
            CU_ASSERT_EQUAL(q_int(&f, "SELECT count(*) FROM deliveries WHERE spool_id = ?1 "
                                      "AND queue_id <> '' AND source = 'milter'", id), 1);
            CU_ASSERT_EQUAL(search_count(&f, q), 1);
            g_free(q);
        }
        g_free(id);
    }
    g_ptr_array_free(msgs, TRUE);
    CU_ASSERT_EQUAL(search_count(&f, "subject:pricing"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "bcc:hidden@audit.example"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "subject:报价单"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "第三季度"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "subject:朱镕基"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "来函已收到"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "subject:客户名单"), 1);
    CU_ASSERT_EQUAL(search_count(&f, "from:zhang@corp.example"), 1);
    g_free(subj_gb); g_free(subj_gbk); g_free(subj_utf8);
    pfx_stop(&gw);
out:
    pfx_sink_stop(&sink);
    g_free(sinkdir);
    g_free(gwdir);
    mfx_close(&f);
}

/* Lines of the maillog containing s. */
static int log_count(struct pfx *p, const char *s)
{
    char *text = pfx_log(p);
    int n = 0;

    for (const char *at = text; (at = strstr(at, s)) != NULL; at += strlen(s))
        n++;
    g_free(text);
    return n;
}

/* Every queue id the gateway accepted is a delivery in the archive. */
static guint missing_from_archive(struct mfx *f, struct pfx *gw, guint *accepted_r)
{
    GPtrArray *ids = pfx_log_queued(gw);
    guint missing = 0;

    for (guint i = 0; i < ids->len; i++)
        if (q_int(f, "SELECT count(*) FROM deliveries WHERE queue_id = ?1",
                  g_ptr_array_index(ids, i)) < 1) {
            if (missing++ < 5)
                fprintf(stderr, "\n  accepted but not archived: %s",
                        (char *)g_ptr_array_index(ids, i));
        }
    *accepted_r = ids->len;
    g_ptr_array_free(ids, TRUE);
    return missing;
}

struct chain {
    struct mfx f;
    struct pfx gw, front;
    struct pfx_sink sink;
};

/* sink <- gateway (custos-milter) <- front; wrap as for milter_start. */
static int chain_start(struct chain *c, const char *wrap, int inet)
{
    char *err = NULL, *d = NULL, *pf_spec;
    int ret = -1;

    mfx_open(&c->f, inet);
    /* libmilter says inet:PORT@HOST, Postfix inet:HOST:PORT */
    pf_spec = inet ? g_strdup_printf("inet:127.0.0.1:%d", atoi(c->f.spec + 5))
                   : g_strdup(c->f.spec);
    if (milter_start(&c->f, wrap) < 0) {
        g_free(pf_spec);
        return -1;
    }
    d = g_build_filename(c->f.dir, "sink", NULL);
    if (pfx_sink_start(&c->sink, d, &err) < 0)
        goto out;
    g_free(d);
    d = g_build_filename(c->f.dir, "gateway", NULL);
    if (pfx_start(&c->gw, d, c->sink.port, pf_spec, NULL, &err) < 0)
        goto out;
    g_free(d);
    d = g_build_filename(c->f.dir, "front", NULL);
    if (pfx_start(&c->front, d, c->gw.port, NULL, NULL, &err) < 0)
        goto out;
    ret = 0;
out:
    if (ret < 0) {
        fprintf(stderr, "\n  %s", err);
        g_free(err);
    }
    g_free(d);
    g_free(pf_spec);
    return ret;
}

static void chain_stop(struct chain *c)
{
    if (c->front.master > 0)
        pfx_stop(&c->front);
    if (c->gw.master > 0)
        pfx_stop(&c->gw);
    pfx_sink_stop(&c->sink);
    mfx_close(&c->f);
}

static int send_front(struct chain *c, int i, const char *body)
{
    char subj[64], *out = NULL, *path = g_build_filename(c->f.dir, "body.txt", NULL);
    char *arg = g_strconcat("@", path, NULL);
    int rc;

    /* from a file: a long body is over the limit of one argument */
    g_file_set_contents(path, body, -1, NULL);
    g_snprintf(subj, sizeof(subj), "Subject: fault test %d", i);
    rc = pfx_swaks(c->front.port, &out, "--from", "alice@corp.example", "--to",
                   "bob@customer.example", "--header", subj, "--body", arg, NULL);
    g_free(path);
    g_free(arg);
    if (rc != 0)
        fprintf(stderr, "\n  swaks: %s", out);
    g_free(out);
    return rc;
}

/* Wait until the gateway has answered n messages with 451 4.3.0 (our text). */
static int wait_tempfails(struct chain *c, int n, double timeout)
{
    double end = cus_now() + timeout;

    /* at DATA Postfix logs "451 4.3.0 custos: ...", at END-OF-MESSAGE "4.3.0 custos: ..." */
    while (log_count(&c->gw, "4.3.0 custos:") < n) {
        if (cus_now() > end) {
            char *log = pfx_log(&c->gw), *mlog = NULL;
            size_t len = strlen(log);
            g_file_get_contents(c->f.log, &mlog, NULL, NULL);
            fprintf(stderr, "\n  gateway maillog ends:\n%s\n  milter log:\n%s",
                    log + (len > 3000 ? len - 3000 : 0), mlog);
            g_free(log);
            g_free(mlog);
            return 0;
        }
        g_usleep(50000);
    }
    return 1;
}

static void test_readonly(void)
{
    struct chain c;
    char *tmp;
    guint accepted = 0;
    GPtrArray *m;

    MT_NEED();
    memset(&c, 0, sizeof(c));
    CU_ASSERT_EQUAL_FATAL(chain_start(&c, NULL, 0), 0);
    tmp = g_build_filename(c.f.spool, "tmp", NULL);
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(send_front(&c, i, "before the fault"), 0);
    m = pfx_sink_messages(&c.sink, 2, 30);
    CU_ASSERT_EQUAL(m->len, 2);
    g_ptr_array_free(m, TRUE);
    /* read-only: 451 at the gateway, the mail waits in the front queue */
    spool_writable(&c.f, 0);
    for (int i = 2; i < 5; i++)
        CU_ASSERT_EQUAL(send_front(&c, i, "during the fault"), 0);
    CU_ASSERT(wait_tempfails(&c, 3, 60));
    CU_ASSERT_EQUAL(pfx_queue_count(&c.front), 3);
    m = pfx_sink_messages(&c.sink, 3, 1);
    CU_ASSERT_EQUAL(m->len, 2);
    g_ptr_array_free(m, TRUE);
    CU_ASSERT_EQUAL(spool_count(&c.f, "new"), 2);
    /* cleared: flushed, delivered, archived */
    spool_writable(&c.f, 1);
    CU_ASSERT_EQUAL(pfx_wait_empty(&c.front, 60), 0);
    CU_ASSERT_EQUAL(pfx_wait_empty(&c.gw, 60), 0);
    m = pfx_sink_messages(&c.sink, 5, 30);
    CU_ASSERT_EQUAL(m->len, 5);
    g_ptr_array_free(m, TRUE);
    ingest_start(&c.f);
    CU_ASSERT(ingested(&c.f, 5, 60));
    CU_ASSERT_EQUAL(missing_from_archive(&c.f, &c.gw, &accepted), 0);
    CU_ASSERT_EQUAL(accepted, 5);
    CU_ASSERT_EQUAL(search_count(&c.f, "\"during the fault\""), 3);
    g_free(tmp);
    chain_stop(&c);
}

/* The spool on a tmpfs of its own, in the milter's mount namespace. */
#define FULL_WRAP "mount -t tmpfs -o size=400k,mode=0770,uid=%d,gid=%d custos-test '%s' " \
                  "&& mkdir -m 0770 '%s/tmp' '%s/new' '%s/failed' '%s/journal' " \
                  "&& chown %d:%d '%s/tmp' '%s/new' '%s/failed' '%s/journal' " \
                  "&& exec \"$@\""

static void test_full(void)
{
    struct chain c;
    char *wrap, *body, *pid, *spool;
    char *ns_argv[] = { "/usr/bin/nsenter", "-t", NULL, "-m", "mount", "-o",
                        "remount,size=64m", NULL, NULL };
    guint accepted = 0;
    GPtrArray *m;
    int rc;

    MT_NEED();
    memset(&c, 0, sizeof(c));
    mfx_open(&c.f, 0);
    spool = c.f.spool;
    {
        /* a script, so no quoting of paths inside sh -c */
        char *script = g_build_filename(c.f.dir, "wrap.sh", NULL);
        char *text = g_strdup_printf("#!/bin/sh\n" FULL_WRAP "\n", c.f.uid, c.f.gid, spool,
                                     spool, spool, spool, spool, c.f.uid, c.f.gid, spool,
                                     spool, spool, spool);
        g_file_set_contents(script, text, -1, NULL);
        chmod(script, 0755);
        wrap = g_strdup_printf("exec unshare -m '%s' \"$@\"", script);
        g_free(text);
        g_free(script);
    }
    /* as chain_start, with the milter in its namespace */
    {
        char *err = NULL, *d;
        if (milter_start(&c.f, wrap) < 0) {
            CU_FAIL("custos-milter on a tmpfs spool did not start (unshare -m?)");
            g_free(wrap);
            mfx_close(&c.f);
            return;
        }
        d = g_build_filename(c.f.dir, "sink", NULL);
        CU_ASSERT_EQUAL_FATAL(pfx_sink_start(&c.sink, d, &err), 0);
        g_free(d);
        d = g_build_filename(c.f.dir, "gateway", NULL);
        CU_ASSERT_EQUAL_FATAL(pfx_start(&c.gw, d, c.sink.port, c.f.spec, NULL, &err), 0);
        g_free(d);
        d = g_build_filename(c.f.dir, "front", NULL);
        CU_ASSERT_EQUAL_FATAL(pfx_start(&c.front, d, c.gw.port, NULL, NULL, &err), 0);
        g_free(d);
    }
    g_free(wrap);
    /* 150 KB each: two fit in 400 KB, the third does not */
    body = g_strnfill(150 * 1024, 'x');
    for (gsize i = 76; i < 150 * 1024; i += 78)
        body[i] = '\n';
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(send_front(&c, i, body), 0);
    CU_ASSERT(wait_tempfails(&c, 2, 60));
    m = pfx_sink_messages(&c.sink, 3, 2);
    CU_ASSERT(m->len >= 1 && m->len <= 2);
    fprintf(stderr, "(%u of 4 fit, the rest wait in the front queue) ", m->len);
    CU_ASSERT_EQUAL(pfx_queue_count(&c.front), 4 - (int)m->len);
    g_ptr_array_free(m, TRUE);
    /* more room: flushed, delivered; ingest (in the milter's namespace) */
    pid = g_strdup_printf("%d", c.f.milter);
    ns_argv[2] = pid;
    ns_argv[7] = spool;
    CU_ASSERT_EQUAL(cut_run(ns_argv, NULL, NULL), 0);
    CU_ASSERT_EQUAL(pfx_wait_empty(&c.front, 60), 0);
    CU_ASSERT_EQUAL(pfx_wait_empty(&c.gw, 60), 0);
    m = pfx_sink_messages(&c.sink, 4, 30);
    CU_ASSERT_EQUAL(m->len, 4);
    g_ptr_array_free(m, TRUE);
    {
        /* once the milter's journal is handed over (by age, 0.2 s) */
        char *argv[] = { "/usr/bin/nsenter", "-t", pid, "-m", "/bin/sh", "-c",
                         "i=0; while [ -n \"$(ls \"$0/journal\")\" ] && [ $i -lt 100 ]; do "
                         "sleep 0.05; i=$((i+1)); done; exec \"$@\"", spool, mt_arc_bin, "-c",
                         c.f.conf, "ingest", NULL };
        char *out = NULL, *err = NULL;
        rc = cut_run(argv, &out, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n  ingest: %s%s", out, err);
        g_free(out); g_free(err);
    }
    CU_ASSERT_EQUAL(q_int(&c.f, "SELECT count(*) FROM deliveries", NULL), 4);
    CU_ASSERT_EQUAL(missing_from_archive(&c.f, &c.gw, &accepted), 0);
    CU_ASSERT_EQUAL(accepted, 4);
    g_free(pid);
    g_free(body);
    chain_stop(&c);
}

/*
 * SIGKILL under load: smtp-source pushes N messages into the front, which
 * relays them to the gateway while the milter is killed and restarted
 * again and again. In the end every message reached the sink, and every
 * queue id the gateway's log says it accepted is in the archive. Over
 * TCP (every step answered) and over a unix socket (answers only at DATA
 * and end of message); the writers commit together (group commit of
 * new/), which the last milter's exit line counts.
 */
#define KILL_MSGS 300
#define KILL_TIMES 5

static void kill_run(int inet)
{
    struct chain c;
    char *port, *out = NULL, *err = NULL;
    char *argv[] = { "/usr/sbin/smtp-source", "-s", "5", "-m", G_STRINGIFY(KILL_MSGS), "-l",
                     "4000", "-f", "alice@corp.example", "-t", "bob@customer.example", NULL,
                     NULL };
    GRand *rnd = g_rand_new_with_seed(20261201);
    guint accepted = 0, missing;
    GPtrArray *m;
    int kills = 0;
    GPid src = 0;

    MT_NEED();
    memset(&c, 0, sizeof(c));
    CU_ASSERT_EQUAL_FATAL(chain_start(&c, NULL, inet), 0);
    ingest_start(&c.f);
    port = g_strdup_printf("127.0.0.1:%d", c.front.port);
    argv[11] = port;
    CU_ASSERT_FATAL(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                                  G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, &src, NULL));
    for (int i = 0; i < KILL_TIMES; i++) {
        g_usleep((gulong)g_rand_int_range(rnd, 150, 600) * 1000);
        CU_ASSERT_EQUAL(kill(c.f.milter, SIGKILL), 0);
        pfx_wait_pid(c.f.milter, 10, NULL);
        g_spawn_close_pid(c.f.milter);
        mt_live_set(c.f.milter, 0);
        c.f.milter = 0;
        kills++;
        g_usleep(100000);
        CU_ASSERT_EQUAL_FATAL(milter_start(&c.f, NULL), 0);
    }
    CU_ASSERT_EQUAL(pfx_wait_pid(src, 120, NULL), 0);
    g_spawn_close_pid(src);
    CU_ASSERT_EQUAL(pfx_wait_empty(&c.front, 180), 0);
    CU_ASSERT_EQUAL(pfx_wait_empty(&c.gw, 60), 0);
    m = pfx_sink_messages(&c.sink, KILL_MSGS, 60);
    CU_ASSERT_EQUAL(m->len, KILL_MSGS);
    g_ptr_array_free(m, TRUE);
    CU_ASSERT(ingested(&c.f, KILL_MSGS, 120));
    missing = missing_from_archive(&c.f, &c.gw, &accepted);
    fprintf(stderr, "(%d kills; the gateway accepted %u, answered %d with 4xx while the milter "
            "was down; %u accepted but not archived) ", kills, accepted,
            log_count(&c.gw, "milter-reject") + log_count(&c.gw, "451 4.7.1"), missing);
    CU_ASSERT_EQUAL(accepted, KILL_MSGS);
    CU_ASSERT_EQUAL(missing, 0);
    /* the run did meet the milter down at least once */
    CU_ASSERT(log_count(&c.front, "status=deferred") > 0);
    /* the last milter journalled some of it, with fewer syncs than
     * messages (they share the journal's) */
    CU_ASSERT_EQUAL(milter_stop(&c.f), 0);
    {
        char *log = NULL, *at, *last = NULL;
        unsigned long n = 0, syncs = 0;
        g_file_get_contents(c.f.log, &log, NULL, NULL);
        for (at = log; at != NULL && (at = strstr(at, "NOQUEUE: stopped (")) != NULL; at++)
            last = at;
        CU_ASSERT(last != NULL && sscanf(last, "NOQUEUE: stopped (%lu messages journalled, "
                                         "%lu syncs)", &n, &syncs) == 2);
        fprintf(stderr, "(the last milter: %lu journalled, %lu syncs) ", n, syncs);
        CU_ASSERT(n > 0 && syncs < n);
        g_free(log);
    }
    g_free(out); g_free(err);
    g_free(port);
    g_rand_free(rnd);
    chain_stop(&c);
}

static void test_kill_inet(void)
{
    kill_run(1);
}

static void test_kill_unix(void)
{
    kill_run(0);
}

static int in_header(const char *msg, const char *s);

/* The detectors end to end: the directory and the customer mail of
 * tests/detect imported, a private Postfix with custos-milter; a customer
 * list (xlsx) sent to a 163.com address is flagged customer-data and
 * personal-webmail (logged, the recipient masked; tagged X-Custos-Flag by
 * [policy]), a reply to the customer quoting the customer is not flagged;
 * both go on. */
static void test_detect_e2e(void)
{
    struct mfx f;
    struct pfx gw;
    struct pfx_sink sink;
    char *webmail = cut_src("conf/webmail-domains.txt"), *data = cut_src("tests/detect");
    char *extra, *err = NULL, *out = NULL, *log = NULL, *sinkdir, *gwdir, *path;
    static const char *const lists[] = { "employees", "customers", "accounts" };
    static const char *const want[] = {
        "finding customer-data: rule=customer-data/count: 14 customer contact items of 4 "
        "customers (5 addresses, 5 phones, 4 names",
        "finding personal-webmail: rule=personal-webmail/sales: sales mail to personal webmail "
        "with 14 customer contact items",
        "to z***@163.com",
    };
    GPtrArray *msgs;

    MT_NEED();
    mfx_open(&f, 0);
    sinkdir = g_build_filename(f.dir, "sink", NULL);
    gwdir = g_build_filename(f.dir, "postfix", NULL);
    extra = g_strdup_printf("[directory]\nwebmail_domains = %s\n[policy]\n"
                            "action.customer-data = tag\naction.personal-webmail = tag\n",
                            webmail);
    /* the milter (nobody, group postfix) reads index.db as a reader of the archive */
    write_conf2(&f, "group = postfix\n", extra);
    CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    for (size_t i = 0; i < G_N_ELEMENTS(lists); i++) {
        path = g_strdup_printf("%s/directory/%s.csv", data, lists[i]);
        CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "directory", "import", lists[i], path, NULL), 0);
        g_free(out); g_free(err); g_free(path);
    }
    path = g_strdup_printf("%s/archive", data);
    CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "import", path, NULL), 0);
    g_free(out); g_free(err); g_free(path);
    CU_ASSERT_EQUAL_FATAL(milter_start(&f, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(pfx_sink_start(&sink, sinkdir, &err), 0);
    if (pfx_start(&gw, gwdir, sink.port, f.spec, NULL, &err) < 0) {
        fprintf(stderr, "\n  %s", err);
        CU_FAIL("private Postfix did not start");
        g_free(err);
        goto out;
    }
    path = g_strdup_printf("@%s/scenarios/data-xlsx-to-163.eml", data);
    CU_ASSERT_EQUAL(pfx_swaks(gw.port, &out, "--from", "li.na@corp.example", "--to",
                              "z12345@163.com", "--data", path, NULL), 0);
    g_free(out); g_free(path);
    path = g_strdup_printf("@%s/scenarios/neg-reply-to-customer.eml", data);
    CU_ASSERT_EQUAL(pfx_swaks(gw.port, &out, "--from", "li.na@corp.example", "--to",
                              "purchasing@xingchen.example", "--data", path, NULL), 0);
    g_free(out); g_free(path);
    msgs = pfx_sink_messages(&sink, 2, 60);
    CU_ASSERT_EQUAL(msgs->len, 2);
    for (guint i = 0; i < msgs->len; i++) {
        char *m = g_strndup(g_bytes_get_data(msgs->pdata[i], NULL),
                            g_bytes_get_size(msgs->pdata[i]));
        if (strstr(m, "z12345@163.com") != NULL) {
            CU_ASSERT(in_header(m, "X-Custos-Flag: customer-data; rule=customer-data/count; "
                                   "action=tag"));
            CU_ASSERT(in_header(m, "X-Custos-Flag: personal-webmail; "
                                   "rule=personal-webmail/sales; action=tag"));
        } else {
            CU_ASSERT(strstr(m, "purchasing@xingchen.example") != NULL);
            CU_ASSERT(!in_header(m, "X-Custos-Flag"));
        }
        g_free(m);
    }
    g_ptr_array_free(msgs, TRUE);
    CU_ASSERT_EQUAL(spool_count(&f, "new"), 2);
    pfx_stop(&gw);
    CU_ASSERT_EQUAL(milter_stop(&f), 0);
    g_file_get_contents(f.log, &log, NULL, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
        if (log == NULL || strstr(log, want[i]) == NULL) {
            fprintf(stderr, "\n  not in the log: %s", want[i]);
            CU_FAIL("an expected finding is missing");
        }
    /* the two of the leak, nothing for the reply, no unmasked address */
    {
        int n = 0;
        for (const char *p = log; p != NULL && (p = strstr(p, ": finding ")) != NULL; p++)
            n++;
        CU_ASSERT_EQUAL(n, 2);
        CU_ASSERT(log != NULL && strstr(log, "z12345@163.com: finding") == NULL);
        CU_ASSERT(log != NULL && strstr(log, "wang.fang@xingchen.example") == NULL);
        if (n != 2)
            fprintf(stderr, "\n%s", log);
    }
    g_free(log);
out:
    pfx_sink_stop(&sink);
    g_free(sinkdir);
    g_free(gwdir);
    g_free(extra);
    g_free(webmail);
    g_free(data);
    mfx_close(&f);
}

/* The detectors' fixture: the directory and the customer mail of
 * tests/detect imported, custos-milter started, a private Postfix in front
 * of a sink. 0, or -1 (reported) when Postfix did not start. */
static int detect_fixture(struct mfx *f, struct pfx *gw, struct pfx_sink *sink)
{
    char *webmail = cut_src("conf/webmail-domains.txt"), *data = cut_src("tests/detect");
    char *extra, *err = NULL, *out = NULL, *sinkdir, *gwdir, *path;
    static const char *const lists[] = { "employees", "customers", "accounts" };
    int ret = 0;

    mfx_open(f, 0);
    sinkdir = g_build_filename(f->dir, "sink", NULL);
    gwdir = g_build_filename(f->dir, "postfix", NULL);
    extra = g_strdup_printf("[directory]\nwebmail_domains = %s\n", webmail);
    /* the milter (nobody, group postfix) reads index.db as a reader of the archive */
    write_conf2(f, "group = postfix\n", extra);
    CU_ASSERT_EQUAL(arc_cli(f, &out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    for (size_t i = 0; i < G_N_ELEMENTS(lists); i++) {
        path = g_strdup_printf("%s/directory/%s.csv", data, lists[i]);
        CU_ASSERT_EQUAL(arc_cli(f, &out, &err, "directory", "import", lists[i], path, NULL), 0);
        g_free(out); g_free(err); g_free(path);
    }
    path = g_strdup_printf("%s/archive", data);
    CU_ASSERT_EQUAL(arc_cli(f, &out, &err, "import", path, NULL), 0);
    g_free(out); g_free(err); g_free(path);
    CU_ASSERT_EQUAL_FATAL(milter_start(f, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(pfx_sink_start(sink, sinkdir, &err), 0);
    if (pfx_start(gw, gwdir, sink->port, f->spec, NULL, &err) < 0) {
        fprintf(stderr, "\n  %s", err);
        CU_FAIL("private Postfix did not start");
        g_free(err);
        ret = -1;
    }
    g_free(sinkdir);
    g_free(gwdir);
    g_free(extra);
    g_free(webmail);
    g_free(data);
    return ret;
}

/* swaks the scenario tests/detect/scenarios/NAME.eml from sender to rcpt. */
static void detect_send(struct pfx *gw, const char *name, const char *sender, const char *rcpt)
{
    char *data = cut_src("tests/detect"), *out = NULL;
    char *path = g_strdup_printf("@%s/scenarios/%s.eml", data, name);

    CU_ASSERT_EQUAL(pfx_swaks(gw->port, &out, "--from", sender, "--to", rcpt, "--data", path,
                              NULL), 0);
    g_free(out);
    g_free(path);
    g_free(data);
}

/* The milter's log after n messages reached the sink and all stopped; each
 * of want in it, no finding line more than n_findings, none of unmasked. */
static void detect_check(struct mfx *f, struct pfx *gw, struct pfx_sink *sink, guint n,
                         const char *const *want, int n_findings, const char *const *unmasked)
{
    GPtrArray *msgs = pfx_sink_messages(sink, n, 60);
    char *log = NULL;
    int found = 0;

    CU_ASSERT_EQUAL(msgs->len, n);
    g_ptr_array_free(msgs, TRUE);
    CU_ASSERT_EQUAL(spool_count(f, "new"), n);
    pfx_stop(gw);
    CU_ASSERT_EQUAL(milter_stop(f), 0);
    g_file_get_contents(f->log, &log, NULL, NULL);
    for (size_t i = 0; want[i] != NULL; i++)
        if (log == NULL || strstr(log, want[i]) == NULL) {
            fprintf(stderr, "\n  not in the log: %s", want[i]);
            CU_FAIL("an expected finding is missing");
        }
    for (const char *p = log; p != NULL && (p = strstr(p, ": finding ")) != NULL; p++)
        found++;
    CU_ASSERT_EQUAL(found, n_findings);
    for (size_t i = 0; unmasked[i] != NULL; i++)
        CU_ASSERT(log != NULL && strstr(log, unmasked[i]) == NULL);
    if (found != n_findings)
        fprintf(stderr, "\n%s", log);
    g_free(log);
}

/* payment-details, evasion, self-forward and customer-contact-private end
 * to end: a rep's own card to a customer (GBK), an encrypted zip to
 * 163.com, an internal memo to her mobile-number mailbox, a customer
 * copying her private QQ address (inbound) are flagged; the company's own
 * accounts in an invoice are not; numbers and addresses masked in the log. */
static void test_detect_e2e_private(void)
{
    struct mfx f;
    struct pfx gw;
    struct pfx_sink sink;
    static const char *const want[] = {
        "finding payment-details: rule=payment-details/card: bank card number 6222****1236 "
        "near \"账号\"",
        "finding payment-details: rule=payment-details/payee-name: payee 李*",
        "finding evasion: rule=evasion/encrypted-archive: encrypted archive 资料.zip",
        "finding self-forward: rule=self-forward/mobile: li.na@corp.example sent to "
        "1***@139.com",
        "finding customer-contact-private: rule=customer-contact-private/cc: customer "
        "北京星辰科技有限公司 (p***@xingchen.example) wrote to li.na@corp.example's registered "
        "personal address l***@qq.com (Cc)", NULL,
    };
    static const char *const unmasked[] = {
        "6222021234561236", "6222 0212 3456 1236", "6228****0903", "lina1990@qq.com",
        "13800138000@139.com: finding", NULL,
    };

    MT_NEED();
    if (detect_fixture(&f, &gw, &sink) == 0) {
        detect_send(&gw, "pay-card-zh-gbk-b64", "li.na@corp.example",
                    "purchasing@xingchen.example");
        detect_send(&gw, "evasion-encrypted-zip", "li.na@corp.example", "dragon88@163.com");
        detect_send(&gw, "self-mobile-fwd-gbk", "li.na@corp.example", "13800138000@139.com");
        detect_send(&gw, "ccp-cc-personal-gb2312", "purchasing@xingchen.example",
                    "li.na@corp.example");
        detect_send(&gw, "neg-pay-company-invoice", "li.na@corp.example",
                    "purchasing@xingchen.example");
        detect_check(&f, &gw, &sink, 5, want, 5, unmasked);
    }
    pfx_sink_stop(&sink);
    mfx_close(&f);
}

/* ---- policy and routing, end to end ------------------------------------------ */

/*
 * A gateway Postfix with custos-milter (the sample directory: chen.jie
 * departed, successor li.na; wang.wei leaving) relaying to smtp-sink; the
 * milter's [milter] sendmail is Postfix's own sendmail(1) on the gateway's
 * configuration, so summaries and notices go through pickup, the milter
 * (non_smtpd_milters) and the gateway to the sink like any other mail.
 * The spool is not ingested: each entry's findings are read back from it.
 * The milter stays root here: postdrop, set-group-id, reads an alternate
 * configuration directory (the gateway's) for root alone, unless the
 * default main.cf lists it, and this machine has none.
 */
struct pfx_policy {
    struct mfx f;
    struct pfx gw;
    struct pfx_sink sink;
    char *extra;                /* the [directory] group and the rest */
    int reloads;
    const char *state;          /* [milter] state_dir below the test's dir (NULL: state) */
};

static const char pol_base[] =
    "[milter]\nsendmail = %s/sendmail.sh\nstate_dir = %s/%s\n"
    "[policy]\ncompliance = compliance@audit.example\nnotify_from = custos@corp.example\n%s"
    "[route]\nsubject_tag = [原: %%n]\nnotices = true\nnotice_days = 30\n"
    "notice_template_zh = %s\nnotice_template_en = %s\n"
    "[directory]\nwebmail_domains = %s\n";

/* (Re)write the configuration with policy: more [policy] lines. */
static void pol_conf(struct pfx_policy *p, const char *policy)
{
    char *zh = cut_src("conf/route-notice.zh.txt"), *en = cut_src("conf/route-notice.en.txt");
    char *wm = cut_src("conf/webmail-domains.txt"), *extra;
    char *text;

    extra = g_strdup_printf(pol_base, p->f.dir, p->f.dir, p->state ? p->state : "state", policy,
                            zh, en, wm);
    /* write_conf2 puts [milter] first: ours must not repeat the group */
    text = g_strdup_printf("[archive]\ndir = %s\nscope = departments\ngroup = postfix\n"
                           "[spool]\ndir = %s\n[milter]\nsocket = %s\nuser =\n"
                           "group = postfix\ntimeout = 60\n%s[log]\nlevel = debug\n",
                           p->f.arc, p->f.spool, p->f.spec,
                           strstr(extra, "[milter]\n") + strlen("[milter]\n"));
    CU_ASSERT(g_file_set_contents(p->f.conf, text, -1, NULL));
    g_free(text);
    g_free(extra);
    g_free(zh);
    g_free(en);
    g_free(wm);
}

static int log_has(const char *path, const char *s)
{
    char *text = NULL;
    int n = 0;

    g_file_get_contents(path, &text, NULL, NULL);
    for (const char *at = text; at != NULL && (at = strstr(at, s)) != NULL; at += strlen(s))
        n++;
    g_free(text);
    return n;
}

/* New [policy] lines, SIGHUP, wait until the milter says it reloaded. */
static void pol_reload(struct pfx_policy *p, const char *policy)
{
    double end = cus_now() + 10;

    pol_conf(p, policy);
    p->reloads++;
    CU_ASSERT_EQUAL(kill(p->f.milter, SIGHUP), 0);
    while (log_has(p->f.log, "NOQUEUE: reloaded") < p->reloads && cus_now() < end)
        g_usleep(20000);
    CU_ASSERT(log_has(p->f.log, "NOQUEUE: reloaded") >= p->reloads);
}

static int pol_start(struct pfx_policy *p, const char *policy)
{
    char *csv = cut_src("conf/employees.sample.csv"), *cust = cut_src("conf/customers.sample.csv");
    char *out = NULL, *err = NULL, *d, *sh, *text, *state;
    struct passwd *pw = getpwnam("nobody");
    int ret = -1;

    memset(p, 0, sizeof(*p));
    mfx_open(&p->f, 0);
    pol_conf(p, policy);
    state = g_build_filename(p->f.dir, "state", NULL);
    mkdir(state, 0750);
    CU_ASSERT_EQUAL(chown(state, pw->pw_uid, p->f.gid), 0);
    g_free(state);
    CU_ASSERT_EQUAL(arc_cli(&p->f, &out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    out = err = NULL;
    CU_ASSERT_EQUAL(arc_cli(&p->f, &out, &err, "directory", "import", "employees", csv, NULL), 0);
    g_free(out); g_free(err);
    out = err = NULL;
    CU_ASSERT_EQUAL(arc_cli(&p->f, &out, &err, "directory", "import", "customers", cust, NULL),
                    0);
    g_free(out); g_free(err);
    out = err = NULL;
    d = g_build_filename(p->f.dir, "sink", NULL);
    if (pfx_sink_start(&p->sink, d, &err) < 0)
        goto out;
    g_free(d);
    d = g_build_filename(p->f.dir, "gateway", NULL);
    if (pfx_start(&p->gw, d, p->sink.port, p->f.spec, NULL, &err) < 0)
        goto out;
    /* the local sendmail interface of the gateway */
    sh = g_build_filename(p->f.dir, "sendmail.sh", NULL);
    text = g_strdup_printf("#!/bin/sh\nMAIL_CONFIG='%s' exec /usr/sbin/sendmail \"$@\"\n",
                           p->gw.conf);
    CU_ASSERT(g_file_set_contents(sh, text, -1, NULL));
    chmod(sh, 0755);
    g_free(sh);
    g_free(text);
    if (milter_start(&p->f, NULL) < 0)
        goto out;
    /* as root it keeps its socket: Postfix's smtpd and cleanup reach it by group */
    CU_ASSERT_EQUAL(chown(p->f.sock, 0, p->f.gid), 0);
    ret = 0;
out:
    if (ret < 0 && err != NULL)
        fprintf(stderr, "\n  %s", err);
    g_free(err);
    g_free(d);
    g_free(csv);
    g_free(cust);
    return ret;
}

static void pol_stop(struct pfx_policy *p)
{
    char *gwlog = p->gw.master > 0 ? pfx_log(&p->gw) : g_strdup(""), *log = NULL;
    int rc;

    if (p->gw.master > 0)
        pfx_stop(&p->gw);
    /* a clean exit: the outbox drained, nothing leaked (under ASan) */
    rc = milter_stop(&p->f);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0 || getenv("CUSTOS_TEST_DEBUG") != NULL) {
        g_file_get_contents(p->f.log, &log, NULL, NULL);
        fprintf(stderr, "\n--- milter log (exit %d)\n%s\n--- gateway log\n%s\n", rc, log,
                gwlog);
        g_free(log);
    }
    g_free(gwlog);
    pfx_sink_stop(&p->sink);
    mfx_close(&p->f);
}

/* swaks to the gateway: from, to (comma-separated), subject, body; extra
 * header lines ("Name: value", NULL-terminated). Exit status; transcript. */
static int pol_send(struct pfx_policy *p, char **out_r, const char *from, const char *to,
                    const char *hfrom, const char *subject, const char *body, ...)
{
    GPtrArray *hdr = g_ptr_array_new_with_free_func(g_free);
    char *out = NULL, *path = g_build_filename(p->f.dir, "msg.eml", NULL), *data;
    GString *m = g_string_new(NULL);
    const char *h;
    va_list ap;
    int rc;

    g_string_append_printf(m, "From: %s\r\nTo: %s\r\nSubject: %s\r\n", hfrom ? hfrom : from, to,
                           subject);
    va_start(ap, body);
    while ((h = va_arg(ap, const char *)) != NULL)
        g_string_append_printf(m, "%s\r\n", h);
    va_end(ap);
    g_string_append_printf(m, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                              "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", body);
    CU_ASSERT(g_file_set_contents(path, m->str, (gssize)m->len, NULL));
    data = g_strconcat("@", path, NULL);
    rc = pfx_swaks(p->gw.port, &out, "--from", from, "--to", to, "--data", data, NULL);
    if (out_r != NULL)
        *out_r = out;
    else
        g_free(out);
    g_free(data);
    g_free(path);
    g_string_free(m, TRUE);
    g_ptr_array_free(hdr, TRUE);
    return rc;
}

/* The text of the first message at the sink containing marker (and
 * marker2 if not NULL), waiting up to timeout s; NULL if none (g_free). */
static char *sink_find(struct pfx_policy *p, const char *marker, const char *marker2,
                       double timeout)
{
    double end = cus_now() + timeout;

    for (;;) {
        GPtrArray *msgs = pfx_sink_messages(&p->sink, 0, 0);
        char *found = NULL;
        for (guint i = 0; i < msgs->len && found == NULL; i++) {
            GBytes *b = g_ptr_array_index(msgs, i);
            char *t = g_strndup(g_bytes_get_data(b, NULL), g_bytes_get_size(b));
            if (strstr(t, marker) != NULL && (marker2 == NULL || strstr(t, marker2) != NULL))
                found = t;
            else
                g_free(t);
        }
        g_ptr_array_free(msgs, TRUE);
        if (found != NULL || cus_now() > end) {
            if (found == NULL && timeout > 1)
                fprintf(stderr, "\n  nothing at the sink with \"%s\"", marker);
            return found;
        }
        g_usleep(100000);
        pfx_flush(&p->gw);
    }
}

/* How many messages at the sink contain marker. */
static int sink_count(struct pfx_policy *p, const char *marker)
{
    GPtrArray *msgs = pfx_sink_messages(&p->sink, 0, 0);
    int n = 0;

    for (guint i = 0; i < msgs->len; i++) {
        GBytes *b = g_ptr_array_index(msgs, i);
        n += g_strstr_len(g_bytes_get_data(b, NULL), (gssize)g_bytes_get_size(b), marker) != NULL;
    }
    g_ptr_array_free(msgs, TRUE);
    return n;
}

/* The spool entry whose message contains marker (spool_entry_free), or NULL. */
static struct spool_entry *spool_find(struct mfx *f, const char *marker)
{
    GPtrArray *a = spool_entries(f);
    struct spool_entry *found = NULL;

    for (guint i = 0; i < a->len && found == NULL; i++) {
        struct spool_entry *e = g_ptr_array_index(a, i);
        if (g_strstr_len(g_bytes_get_data(e->raw, NULL), (gssize)g_bytes_get_size(e->raw),
                         marker) != NULL) {
            found = e;
            g_ptr_array_remove_index(a, i);
        }
    }
    entries_free(a);
    return found;
}

/* Does e have a finding of rule with action? */
static int has_finding(const struct spool_entry *e, const char *rule, const char *action)
{
    for (size_t i = 0; e != NULL && i < e->n_findings; i++)
        if (strcmp(e->findings[i]->rule, rule) == 0 &&
            strcmp(e->findings[i]->action, action) == 0)
            return 1;
    return 0;
}

/* The header block of a message at the sink. */
static int in_header(const char *msg, const char *s)
{
    const char *eoh = msg != NULL ? strstr(msg, "\n\n") : NULL, *at;

    if (msg == NULL)
        return 0;
    at = strstr(msg, s);
    return at != NULL && (eoh == NULL || at < eoh);
}

/* Messages in the gateway's hold queue (postqueue -j). */
static int hold_count(struct pfx *gw)
{
    char *argv[] = { "/usr/sbin/postqueue", "-c", gw->conf, "-j", NULL };
    char *out = NULL;
    int n = 0;

    if (cut_run(argv, &out, NULL) == 0)
        for (const char *s = out; (s = strstr(s, "\"queue_name\": \"hold\"")) != NULL; s++)
            n++;
    g_free(out);
    return n;
}

/* The one message of marker in the gateway's hold queue (waited for, 30 s
 * at most), not delivered: its journal entry (spool_entry_free). */
static struct spool_entry *held_one(struct pfx_policy *p, const char *marker)
{
    double end = cus_now() + 30;
    char *m;

    while (hold_count(&p->gw) < 1 && cus_now() < end)
        g_usleep(100000);
    CU_ASSERT_EQUAL(hold_count(&p->gw), 1);
    m = sink_find(p, marker, NULL, 1);
    CU_ASSERT_PTR_NULL(m);
    g_free(m);
    return spool_find(&p->f, marker);
}

/* The hold queue released, as an admin does: postsuper -H ALL. */
static void release_held(struct pfx_policy *p)
{
    char *argv[] = { "/usr/sbin/postsuper", "-c", p->gw.conf, "-H", "ALL", NULL };

    CU_ASSERT_EQUAL(cut_run(argv, NULL, NULL), 0);
}

/*
 * SASL through Postfix: logins are checked by a private Dovecot's auth
 * socket (smtpd_sasl_type = dovecot), and Postfix hands the login to the
 * milter ({auth_authen}). The departed employee's password was never
 * reset: his login sends under another envelope sender and From, and is
 * refused with 550 (departed-sender/sasl, reject by default), journalled
 * with the login as evidence; a colleague's login is let through with the
 * login in the spool entry.
 */
static void test_sasl(void)
{
    struct mfx f;
    struct pfx gw;
    struct pfx_sink sink;
    struct dvc d;
    const struct dvc_user users[] = {
        { "chen.jie@corp.example", "never-reset", 65534, 65534 },
        { "li.na@corp.example", "s3cret", 65534, 65534 },
    };
    char *webmail = cut_src("conf/webmail-domains.txt"), *data = cut_src("tests/detect");
    char *extra, *err = NULL, *out = NULL, *path, *dvdir, *mail, *sasl, *sinkdir, *gwdir;
    struct spool_entry *e;
    GPtrArray *msgs;
    int rc;

    MT_NEED();
    if (!dvc_usable(&err)) {
        fprintf(stderr, "\n  %s", err);
        CU_FAIL("SASL needs Dovecot (make deps)");
        g_free(err);
        return;
    }
    mfx_open(&f, 0);
    sinkdir = g_build_filename(f.dir, "sink", NULL);
    gwdir = g_build_filename(f.dir, "postfix", NULL);
    dvdir = g_build_filename(f.dir, "dovecot", NULL);
    mail = g_strdup_printf("%s/vmail/%%d/%%n/Maildir", f.dir);
    extra = g_strdup_printf("[directory]\nwebmail_domains = %s\n", webmail);
    write_conf2(&f, "group = postfix\n", extra);
    CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "init", NULL), 0);
    g_free(out); g_free(err);
    path = g_strdup_printf("%s/directory/employees.csv", data);
    CU_ASSERT_EQUAL(arc_cli(&f, &out, &err, "directory", "import", "employees", path, NULL), 0);
    g_free(out); g_free(err); g_free(path);
    if (dvc_start(&d, dvdir, mail, users, G_N_ELEMENTS(users), &err) < 0) {
        fprintf(stderr, "\n  %s", err);
        CU_FAIL("dovecot did not start");
        g_free(err);
        goto out_dovecot;
    }
    if (milter_start(&f, NULL) < 0 || pfx_sink_start(&sink, sinkdir, &err) < 0) {
        CU_FAIL("custos-milter or smtp-sink did not start");
        g_free(err);
        goto out_dovecot;
    }
    sasl = g_strdup_printf("smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
                           "smtpd_sasl_path = %s\n", d.auth);
    rc = pfx_start(&gw, gwdir, sink.port, f.spec, sasl, &err);
    g_free(sasl);
    if (rc < 0) {
        fprintf(stderr, "\n  %s", err);
        CU_FAIL("private Postfix did not start");
        g_free(err);
        goto out_sink;
    }
    /* a wrong password: Postfix refuses the login, the milter never sees it */
    rc = pfx_swaks(gw.port, &out, "--auth", "PLAIN", "--auth-user", "chen.jie@corp.example",
                   "--auth-password", "wrong", "--from", "chen.jie@corp.example", "--to",
                   "buyer@acme.example", "--header", "Subject: SASL-0", NULL);
    CU_ASSERT(rc != 0 && out != NULL && strstr(out, "535") != NULL);
    g_free(out);
    /* the departed employee's login, another sender and From */
    rc = pfx_swaks(gw.port, &out, "--auth", "PLAIN", "--auth-user", "chen.jie@corp.example",
                   "--auth-password", "never-reset", "--from", "cj.backup@example.net",
                   "--to", "buyer@acme.example", "--header", "From: <cj.backup@example.net>",
                   "--header", "Subject: SASL-1 price list", NULL);
    CU_ASSERT(rc != 0 && out != NULL && strstr(out, "235 ") != NULL &&
              strstr(out, "550 5.7.1") != NULL);
    if (out == NULL || strstr(out, "550 5.7.1") == NULL)
        fprintf(stderr, "\n%s", out);
    g_free(out);
    /* a colleague's login: through, the login kept */
    rc = pfx_swaks(gw.port, &out, "--auth", "PLAIN", "--auth-user", "li.na@corp.example",
                   "--auth-password", "s3cret", "--from", "li.na@corp.example", "--to",
                   "buyer@acme.example", "--header", "Subject: SASL-2 quote", NULL);
    CU_ASSERT_EQUAL(rc, 0);
    g_free(out);
    msgs = pfx_sink_messages(&sink, 1, 60);
    CU_ASSERT_EQUAL(msgs->len, 1);
    if (msgs->len == 1)
        CU_ASSERT(g_strstr_len(g_bytes_get_data(msgs->pdata[0], NULL),
                               (gssize)g_bytes_get_size(msgs->pdata[0]), "SASL-2") != NULL);
    g_ptr_array_free(msgs, TRUE);
    msgs = pfx_sink_messages(&sink, 2, 2);
    CU_ASSERT_EQUAL(msgs->len, 1);                  /* the refused one never arrives */
    g_ptr_array_free(msgs, TRUE);
    /* the journal: the refused message as evidence, with the login */
    e = spool_find(&f, "SASL-1");
    CU_ASSERT_PTR_NOT_NULL(e);
    if (e != NULL) {
        CU_ASSERT(e->auth != NULL && strcmp(e->auth, "chen.jie@corp.example") == 0);
        CU_ASSERT(has_finding(e, "departed-sender/sasl", "reject"));
        CU_ASSERT_FALSE(has_finding(e, "departed-sender/envelope", "reject"));
        spool_entry_free(&e);
    }
    e = spool_find(&f, "SASL-2");
    CU_ASSERT(e != NULL && e->auth != NULL && strcmp(e->auth, "li.na@corp.example") == 0 &&
              e->n_findings == 0);
    spool_entry_free(&e);
    CU_ASSERT_PTR_NULL(e = spool_find(&f, "SASL-0"));
    spool_entry_free(&e);
    pfx_stop(&gw);
    CU_ASSERT_EQUAL(milter_stop(&f), 0);
out_sink:
    pfx_sink_stop(&sink);
out_dovecot:
    dvc_stop(&d);
    g_free(sinkdir);
    g_free(gwdir);
    g_free(dvdir);
    g_free(mail);
    g_free(extra);
    g_free(webmail);
    g_free(data);
    mfx_close(&f);
}

static void test_policy_actions(void)
{
    struct pfx_policy p;
    struct spool_entry *e;
    char *m, *out = NULL;

    MT_NEED();
    CU_ASSERT_EQUAL_FATAL(pol_start(&p,
        "action.departed-sender/envelope = tag\n"
        "action.departed-sender/header-from = notify\n"
        "leaving.departed-sender = hold\n"
        "action.self-forward = strip\n"), 0);

    /* strip: a sales rep's own qq.com mailbox (self-forward) removed, the
     * colleague gets the message */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "li.na@corp.example",
                             "lina1990@qq.com,zhao.gang@corp.example", NULL,
                             "Fwd: P-STRIP-7 北京星辰 notes", "see purchasing@xingchen.example",
                             NULL), 0);
    m = sink_find(&p, "P-STRIP-7", NULL, 30);
    CU_ASSERT(m != NULL && strstr(m, "<zhao.gang@corp.example>") != NULL);
    CU_ASSERT(m != NULL && strstr(m, "lina1990@qq.com>") == NULL);
    CU_ASSERT(in_header(m, "X-Custos-Flag: self-forward; rule=self-forward/"));
    g_free(m);
    e = spool_find(&p.f, "P-STRIP-7");
    CU_ASSERT(e != NULL && e->n_findings > 0 && strcmp(e->findings[0]->category,
                                                        "self-forward") == 0 &&
              strcmp(e->findings[0]->action, "strip") == 0 &&
              strstr(e->findings[0]->evidence, "[recipients: l***@qq.com]") != NULL);
    if (e != NULL && e->n_findings > 0)
        fprintf(stderr, "(strip: %s %s) ", e->findings[0]->rule, e->findings[0]->evidence);
    spool_entry_free(&e);

    /* tag: the flag header, no summary */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "chen.jie@corp.example", "buyer@acme.example", NULL,
                             "P-TAG-1 quarterly prices", "Prices attached.", NULL), 0);
    m = sink_find(&p, "P-TAG-1", NULL, 30);
    CU_ASSERT(in_header(m, "X-Custos-Flag: departed-sender; rule=departed-sender/envelope; "
                           "action=tag\n"));
    CU_ASSERT(in_header(m, "X-Custos-Archive: "));
    g_free(m);
    e = spool_find(&p.f, "P-TAG-1");
    CU_ASSERT(has_finding(e, "departed-sender/envelope", "tag"));
    spool_entry_free(&e);

    /* notify: tagged, and a summary at the compliance address that names
     * the finding and the archive id but carries nothing of the message */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "li.na@corp.example", "buyer@acme.example",
                             "=?UTF-8?B?6ZmI5p2w?= <chen.jie@corp.example>",
                             "P-NOTIFY-2 客户名单", "SECRET-CUSTOMER-LIST 北京星辰 +86 10 8888 0000",
                             NULL), 0);
    m = sink_find(&p, "P-NOTIFY-2", "X-Custos-Archive", 30);
    CU_ASSERT(in_header(m, "X-Custos-Flag: departed-sender; rule=departed-sender/header-from; "
                           "action=notify\n"));
    {
        char *id = m != NULL ? archive_header(g_bytes_new_static(m, strlen(m))) : NULL;
        char *sum = sink_find(&p, "X-Custos-Notice: summary", "departed-sender/header-from", 60);
        CU_ASSERT_PTR_NOT_NULL(sum);
        CU_ASSERT(sum != NULL && strstr(sum, "compliance@audit.example") != NULL);
        CU_ASSERT(sum != NULL && id != NULL && strstr(sum, id) != NULL);
        CU_ASSERT(sum != NULL && strstr(sum, "li.na@corp.example") != NULL);
        CU_ASSERT(sum != NULL && strstr(sum, "SECRET-CUSTOMER-LIST") == NULL);
        CU_ASSERT(sum != NULL && strstr(sum, "P-NOTIFY-2") == NULL);
        CU_ASSERT(sum != NULL && strstr(sum, "8888") == NULL);
        g_free(sum);
        g_free(id);
    }
    g_free(m);

    /* a sender in her notice period: the stricter action, hold; released
     * with postsuper -H, then delivered */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "wang.wei@corp.example", "buyer@acme.example",
                             "chen.jie@corp.example", "P-HOLD-3", "held until released", NULL),
                    0);
    e = held_one(&p, "P-HOLD-3");
    CU_ASSERT(has_finding(e, "departed-sender/header-from", "hold"));
    spool_entry_free(&e);
    release_held(&p);
    m = sink_find(&p, "P-HOLD-3", NULL, 60);
    CU_ASSERT(in_header(m, "action=hold"));
    CU_ASSERT_EQUAL(hold_count(&p.gw), 0);
    g_free(m);

    /* monitor and an allow-list (a reload) */
    pol_reload(&p, "action.departed-sender/envelope = monitor\n"
                   "allow.departed-sender/header-from = li.na@corp.example, @partner.example\n");
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "chen.jie@corp.example", "buyer@acme.example", NULL,
                             "P-MONITOR-4", "recorded only", NULL), 0);
    m = sink_find(&p, "P-MONITOR-4", NULL, 30);
    CU_ASSERT(m != NULL && !in_header(m, "X-Custos-Flag"));
    g_free(m);
    e = spool_find(&p.f, "P-MONITOR-4");
    CU_ASSERT(has_finding(e, "departed-sender/envelope", "monitor"));
    spool_entry_free(&e);
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "li.na@corp.example", "buyer@acme.example",
                             "chen.jie@corp.example", "P-ALLOW-5", "a known-good flow", NULL), 0);
    m = sink_find(&p, "P-ALLOW-5", NULL, 30);
    CU_ASSERT(m != NULL && !in_header(m, "X-Custos-Flag"));
    g_free(m);
    e = spool_find(&p.f, "P-ALLOW-5");
    CU_ASSERT(e != NULL && e->n_findings == 0);
    spool_entry_free(&e);

    /* reject, the built-in action of departed-sender: 550 5.7.1 in English
     * and Chinese; journalled with its finding all the same */
    pol_reload(&p, "");
    CU_ASSERT_NOT_EQUAL(pol_send(&p, &out, "chen.jie@corp.example", "buyer@acme.example", NULL,
                                 "P-REJECT-6", "refused", NULL), 0);
    CU_ASSERT(out != NULL && strstr(out, "550-5.7.1 Message refused by company mail policy "
                                         "(departed-sender)") != NULL);
    CU_ASSERT(out != NULL && strstr(out, "550 5.7.1 根据公司邮件政策，此邮件被拒收"
                                         "（departed-sender）") != NULL);
    if (out != NULL && strstr(out, "5.7.1") == NULL)
        fprintf(stderr, "\n  swaks: %s", out);
    g_free(out);
    e = spool_find(&p.f, "P-REJECT-6");
    CU_ASSERT(has_finding(e, "departed-sender/envelope", "reject"));
    spool_entry_free(&e);
    m = sink_find(&p, "X-Custos-Notice: summary", "action reject", 60);
    CU_ASSERT_PTR_NOT_NULL(m);
    g_free(m);
    CU_ASSERT_EQUAL(sink_count(&p, "P-REJECT-6"), 0);

    /* ingested: each finding an incident with the action taken, the refused
     * message's too; flagged: finds them */
    CU_ASSERT_EQUAL(arc_cli(&p.f, &out, NULL, "ingest", NULL), 0);
    g_free(out);
    out = NULL;
    CU_ASSERT_EQUAL(arc_cli(&p.f, &out, NULL, "incidents", "--json", NULL), 0);
    {
        static const char *const acts[] = { "strip", "tag", "notify", "hold", "monitor",
                                            "reject" };
        for (size_t i = 0; i < G_N_ELEMENTS(acts); i++) {
            char *q = g_strdup_printf("\"%s\"", acts[i]);
            if (out == NULL || strstr(out, q) == NULL) {
                fprintf(stderr, "\n  no incident with action %s", acts[i]);
                CU_FAIL("an action is not in custos-archive incidents");
            }
            g_free(q);
        }
    }
    g_free(out);
    out = NULL;
    CU_ASSERT_EQUAL(search_count(&p.f, "flagged:self-forward"), 1);
    CU_ASSERT_EQUAL(search_count(&p.f, "flagged:departed-sender"), 5);
    pol_stop(&p);
}

static void test_policy_route(void)
{
    struct pfx_policy p;
    struct spool_entry *e;
    char *m, *subj = rfc2047("GB2312", "报价单 第三季度");

    MT_NEED();
    CU_ASSERT_EQUAL_FATAL(pol_start(&p, "action.customer-contact-private = hold\n"), 0);
    /* to a departed employee and a colleague: the successor instead, the
     * original recipient in a header, the subject tagged; a notice to the
     * external sender, in Chinese, naming the successor */
    {
        char *s = g_strdup_printf("%s R-1", subj);
        CU_ASSERT_EQUAL(pol_send(&p, NULL, "purchasing@xingchen.example",
                                 "chen.jie@corp.example,zhao.gang@corp.example",
                                 "=?UTF-8?B?546L5Li75Lu7?= <purchasing@xingchen.example>", s,
                                 "请报价 R-1", NULL), 0);
        g_free(s);
    }
    m = sink_find(&p, "R-1", "X-Custos-Original-To", 30);
    CU_ASSERT(in_header(m, "X-Custos-Original-To: chen.jie@corp.example\n"));
    CU_ASSERT(m != NULL && strstr(m, "<li.na@corp.example>") != NULL);
    CU_ASSERT(m != NULL && strstr(m, "<zhao.gang@corp.example>") != NULL);
    CU_ASSERT(m != NULL && strstr(m, "<chen.jie@corp.example>") == NULL);
    if (m != NULL) {
        /* the subject, decoded: the tag with the leaver's name, then the original */
        const char *s = strstr(m, "\nSubject:");
        char *line = s != NULL ? g_strndup(s + 9, strcspn(s + 9, "\r\n")) : NULL;
        char *dec = line != NULL ? g_mime_utils_header_decode_text(NULL, g_strstrip(line)) : NULL;
        CU_ASSERT(dec != NULL && g_str_has_prefix(dec, "[原: 陈杰] 报价单 第三季度 R-1"));
        if (dec == NULL || !g_str_has_prefix(dec, "[原: 陈杰]"))
            fprintf(stderr, "\n  subject: %s", dec);
        g_free(line);
        g_free(dec);
    }
    g_free(m);
    e = spool_find(&p.f, "请报价 R-1");
    CU_ASSERT(has_finding(e, "route/successor", "route"));
    spool_entry_free(&e);
    m = sink_find(&p, "Auto-Submitted: auto-generated", "purchasing@xingchen.example", 60);
    CU_ASSERT(in_header(m, "X-Custos-Archive: "));
    CU_ASSERT(m != NULL && strstr(m, "li.na@corp.example") != NULL);
    CU_ASSERT(m != NULL && strstr(m, "今后请直接发送邮件至 li.na@corp.example") != NULL);
    g_free(m);

    /* the same sender again: routed, no second notice */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "purchasing@xingchen.example", "chen.jie@corp.example",
                             NULL, "R-2 again", "second", NULL), 0);
    m = sink_find(&p, "R-2 again", "X-Custos-Original-To", 30);
    CU_ASSERT(m != NULL && strstr(m, "<li.na@corp.example>") != NULL);
    g_free(m);
    /* automatic and list mail: routed, never a notice; an English sender: English */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "robot@acme.example", "chen.jie@corp.example", NULL,
                             "R-3 out of office", "away", "Auto-Submitted: auto-replied", NULL),
                    0);
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "list@lists.acme.example", "chen.jie@corp.example", NULL,
                             "R-4 newsletter", "news", "List-Id: <news.lists.acme.example>",
                             NULL), 0);
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "buyer@acme.example", "chen.jie@corp.example", NULL,
                             "R-5 order", "please confirm", NULL), 0);
    m = sink_find(&p, "Auto-Submitted: auto-generated", "buyer@acme.example", 60);
    CU_ASSERT(m != NULL && strstr(m, "Please write to li.na@corp.example") != NULL);
    g_free(m);
    m = sink_find(&p, "R-4 newsletter", "X-Custos-Original-To", 30);
    CU_ASSERT_PTR_NOT_NULL(m);
    g_free(m);
    m = sink_find(&p, "R-3 out of office", "X-Custos-Original-To", 30);
    CU_ASSERT_PTR_NOT_NULL(m);
    g_free(m);
    g_usleep(1000000);
    pfx_flush(&p.gw);
    g_usleep(1000000);
    /* one notice to xingchen, one to buyer, none to robot and list */
    CU_ASSERT_EQUAL(sink_count(&p, "Auto-Submitted: auto-generated"), 2);
    CU_ASSERT_EQUAL(log_has(p.f.log, "no notice to <purchasing@xingchen.example>: one went "
                                     "within 30 days"), 1);
    {
        /* both notices went: their claims confirmed, none left pending */
        char *db = g_build_filename(p.f.dir, "state", "route-notices.db", NULL);
        CU_ASSERT_EQUAL(q_int_at(db, "SELECT count(*) FROM once WHERE at > 0", NULL), 2);
        CU_ASSERT_EQUAL(q_int_at(db, "SELECT count(*) FROM once WHERE at < 0", NULL), 0);
        g_free(db);
    }

    /* held and routed at once: a customer's mail to the departed employee
     * that also copies a colleague's private mailbox (customer-contact-
     * private, action hold) waits in the hold queue with its recipient
     * already the successor; released, it reaches her, not the leaver */
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "purchasing@xingchen.example", "chen.jie@corp.example",
                             NULL, "R-6 held and routed", "please confirm the order",
                             "Cc: wangwei@163.com", NULL), 0);
    e = held_one(&p, "R-6 held and routed");
    CU_ASSERT(has_finding(e, "customer-contact-private/cc", "hold"));
    CU_ASSERT(has_finding(e, "route/successor", "route"));
    spool_entry_free(&e);
    release_held(&p);
    m = sink_find(&p, "R-6 held and routed", "X-Custos-Original-To", 60);
    CU_ASSERT(in_header(m, "X-Custos-Original-To: chen.jie@corp.example\n"));
    CU_ASSERT(in_header(m, "action=hold"));
    /* the envelope (smtp-sink's X-Rcpt-Args; Postfix's Received header
     * names the recipient it was given) */
    CU_ASSERT(m != NULL && strstr(m, "X-Rcpt-Args: <li.na@corp.example>") != NULL);
    CU_ASSERT(m != NULL && strstr(m, "X-Rcpt-Args: <chen.jie@corp.example>") == NULL);
    CU_ASSERT_EQUAL(hold_count(&p.gw), 0);
    g_free(m);

    /* [milter] state_dir moved by a reload (SIGHUP): the record of notices
     * opened in the new one, the old one closed; the new one has not seen
     * xingchen, so xingchen is told again */
    p.state = "state2";
    pol_reload(&p, "action.customer-contact-private = hold\n");
    CU_ASSERT_EQUAL(pol_send(&p, NULL, "purchasing@xingchen.example", "chen.jie@corp.example",
                             NULL, "R-7 after the move", "one more order", NULL), 0);
    m = sink_find(&p, "R-7 after the move", "X-Custos-Original-To", 30);
    CU_ASSERT(m != NULL && strstr(m, "X-Rcpt-Args: <li.na@corp.example>") != NULL);
    g_free(m);
    {
        double end = cus_now() + 60;
        char *db = g_build_filename(p.f.dir, "state2", "route-notices.db", NULL);
        /* xingchen's second notice (the first went after R-1) */
        while (sink_count(&p, "X-Rcpt-Args: <purchasing@xingchen.example>") < 2 &&
               cus_now() < end) {
            pfx_flush(&p.gw);
            g_usleep(500000);
        }
        CU_ASSERT_EQUAL(sink_count(&p, "X-Rcpt-Args: <purchasing@xingchen.example>"), 2);
        CU_ASSERT(g_file_test(db, G_FILE_TEST_IS_REGULAR));
        CU_ASSERT_EQUAL(log_has(p.f.log, "[milter] state_dir is now "), 1);
        g_free(db);
    }

    /* mail submitted on the host with sendmail(1): pickup, the milter
     * (non_smtpd_milters), archived and tagged like any other */
    {
        char *sh = g_build_filename(p.f.dir, "sendmail.sh", NULL);
        char *argv[] = { "/bin/sh", "-c", NULL, NULL };
        argv[2] = g_strdup_printf("printf 'From: li.na@corp.example\\nTo: buyer@acme.example\\n"
                                  "Subject: S-1 local submission\\n\\nfrom the host\\n' | "
                                  "'%s' -i -f li.na@corp.example -- buyer@acme.example", sh);
        CU_ASSERT_EQUAL(cut_run(argv, NULL, NULL), 0);
        m = sink_find(&p, "S-1 local submission", NULL, 60);
        CU_ASSERT(in_header(m, "X-Custos-Archive: "));
        g_free(m);
        e = spool_find(&p.f, "S-1 local submission");
        CU_ASSERT(e != NULL && strcmp(e->sender, "li.na@corp.example") == 0);
        spool_entry_free(&e);
        g_free(argv[2]);
        g_free(sh);
    }
    g_free(subj);
    pol_stop(&p);
}

CUS_SUITE(milter)
{
    CU_pSuite s = CU_add_suite("milter", mt_init, mt_clean);
    CU_add_test(s, "record of notices: pending, confirmed, released; a pending claim of a "
                   "killed process gone when reopened", test_once);
    CU_add_test(s, "callbacks, fake MTA: no HELO; over unix and TCP no reply but at DATA and "
                   "EOM, MAIL FROM while stopping answered 421 at DATA; every step answered "
                   "for an MTA with no such option; header refused or the journal's sync "
                   "failed: 451, nothing journalled", test_noreply);
    CU_add_test(s, "miltertest: abort, several per connection, 40 MB flat, no macros, 451, "
                   "SIGHUP, SIGTERM", test_protocol);
    CU_add_test(s, "directory: departed sender by envelope, From and SASL flagged; scope = "
                   "departments leaves a newsletter out", test_directory);
    CU_add_test(s, "Postfix + swaks: English and Chinese mail tagged, ingested, searched",
                test_postfix);
    CU_add_test(s, "detectors end to end: a customer list to 163.com flagged and tagged, a "
                   "reply to the customer not", test_detect_e2e);
    CU_add_test(s, "detectors end to end: payment details, an encrypted zip, self-forward, "
                   "a customer writing to a private address flagged; the company's invoice "
                   "not", test_detect_e2e_private);
    CU_add_test(s, "spool read-only: 451, waits in the front queue, archived once cleared",
                test_readonly);
    CU_add_test(s, "spool full (tmpfs): 451, waits, archived once there is room", test_full);
    CU_add_test(s, "SASL through Postfix and Dovecot: a departed employee's login refused with "
                   "550 whatever the sender, a colleague's kept in the journal", test_sasl);
    CU_add_test(s, "SIGKILL under load (inet socket): every accepted message archived",
                test_kill_inet);
    CU_add_test(s, "SIGKILL under load (unix socket, answers at DATA and EOM only): every "
                   "accepted message archived", test_kill_unix);
    /* a suite of its own, so it can be run alone (run-tests milter-policy) */
    s = CU_add_suite("milter-policy", mt_init, mt_clean);
    CU_add_test(s, "Postfix: strip, tag, notify (summary without the message), hold for a leaver "
                   "released with postsuper -H, monitor, allow-list, reject 550 in English and "
                   "Chinese", test_policy_actions);
    CU_add_test(s, "Postfix: a departed employee's mail to the successor, header and subject "
                   "tag, one notice per sender, none to automatic or list mail; held and "
                   "routed at once, released to the successor; sendmail(1) submission "
                   "archived", test_policy_route);
}
