/*
 * custos-milter.c - the daemon: socket, privileges, signals, libmilter
 *
 * custos-milter [-c FILE] [-f] [-n]
 *   -c FILE  configuration (else $CUSTOS_CONF, else /etc/custos/custos.conf)
 *   -f       stay in the foreground and log to standard error
 *   -n       check the configuration, print it, and exit
 *
 * As root it opens the socket ([milter] socket; a unix socket is given mode
 * 0660 and the [milter] user and group), writes the pid file when it
 * becomes a daemon, then gives up root: setgid, initgroups, setuid, each
 * fatal on failure. Signals are taken by the main thread alone (sigwait);
 * smfi_main() runs in a thread of its own, so libmilter's signal thread
 * (which would stop on SIGHUP) never sees a signal sent to the process:
 * Linux hands a process-directed signal to the main thread when that
 * thread is waiting for it. SIGHUP reloads the configuration; SIGTERM and
 * SIGINT stop: no new connections, a new MAIL FROM gets 421, messages under
 * way finish (for at most [milter] timeout seconds), then exit 0.
 *
 * An inet socket gets TCP_NODELAY: a milter's answers are small writes
 * that follow each other (a header added, then the verdict), and with
 * Nagle's algorithm the second waits for the MTA's delayed ACK of the
 * first, ~40 ms per message on Linux. libmilter keeps its sockets to
 * itself, but an accepted TCP socket inherits TCP_NODELAY from the
 * listening one, so it is set there, once, right after smfi_opensocket().
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <glib.h>
#include <gmime/gmime.h>
#include "custos/cfg.h"
#include "custos/det-name.h"
#include "custos/index.h"
#include "custos/log.h"
#include "custos/milter.h"
#include "custos/spool.h"
#include "custos/util.h"

#define EX_USAGE 64
#define EX_OSERR 71
#define EX_CONFIG 78

static void usage(void)
{
    fprintf(stderr, "usage: custos-milter [-c FILE] [-f] [-n]\n");
    exit(EX_USAGE);
}

/* TCP_NODELAY on libmilter's listening socket (the only listening socket
 * in this process), inherited by every connection it accepts. */
static int nodelay_listener(void)
{
    struct rlimit rl;
    int n = 0, max = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        max = (int)MIN(rl.rlim_cur, 65536);
    for (int fd = 0; fd < max; fd++) {
        int v = 0, one = 1;
        socklen_t len = sizeof(v);

        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
            continue;
        len = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 ||
            (v != AF_INET && v != AF_INET6))
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
            log_fatal("setsockopt(TCP_NODELAY) on the milter socket failed: %m");
        n++;
    }
    return n;
}

/* The user and group to run as: 0, 1 (none: not root, or no user), -1. */
static int run_as(const struct cfg *cfg, uid_t *uid_r, gid_t *gid_r, char **error_r)
{
    struct passwd *pw;
    struct group *gr;

    if (geteuid() != 0 || cfg->mlt_user == NULL)
        return 1;
    if ((pw = getpwnam(cfg->mlt_user)) == NULL)
        return cus_error(error_r, "[milter] user: no user \"%s\"", cfg->mlt_user);
    *uid_r = pw->pw_uid;
    *gid_r = pw->pw_gid;
    if (cfg->mlt_group != NULL) {
        if ((gr = getgrnam(cfg->mlt_group)) == NULL)
            return cus_error(error_r, "[milter] group: no group \"%s\"", cfg->mlt_group);
        *gid_r = gr->gr_gid;
    }
    return 0;
}

static void drop_privileges(const struct cfg *cfg, uid_t uid, gid_t gid)
{
    if (setgid(gid) < 0)
        log_fatal("setgid(%ld) failed: %m", (long)gid);
    if (initgroups(cfg->mlt_user, gid) < 0)
        log_fatal("initgroups(%s) failed: %m", cfg->mlt_user);
    if (setuid(uid) < 0)
        log_fatal("setuid(%ld) failed: %m", (long)uid);
    if (setuid(0) == 0)
        log_fatal("setuid(%ld) did not give up root", (long)uid);
}

static void daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        log_fatal("fork failed: %m");
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        log_fatal("setsid failed: %m");
    if (chdir("/") < 0)
        log_fatal("chdir(/) failed: %m");
    if ((fd = open("/dev/null", O_RDWR)) >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
}

static void *milter_thread(void *arg)
{
    int *ret = arg;

    *ret = smfi_main();
    return NULL;
}

/* SIGHUP: a new configuration, or the old one kept with the error logged. */
static void reload(const char *path, const struct cfg *running)
{
    struct cfg *cfg = NULL;
    char *err = NULL;

    if (cfg_load(path, &cfg, &err) < 0) {
        log_error("NOQUEUE: reload: %s (keeping the configuration in use)", err);
        g_free(err);
        return;
    }
    if (g_strcmp0(cfg->mlt_socket, running->mlt_socket) != 0 ||
        g_strcmp0(cfg->mlt_user, running->mlt_user) != 0 ||
        g_strcmp0(cfg->mlt_group, running->mlt_group) != 0)
        log_warn("NOQUEUE: reload: [milter] socket, user and group change only on a restart");
    log_set_level(cfg->log_level);
    log_info("NOQUEUE: reloaded %s", path);
    mlt_reload(cfg);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int foreground = 0, check = 0, c, ret = 1, uid_ok;
    struct cfg *cfg = NULL, *start;
    char *err = NULL, *sock_path = NULL;
    uid_t uid = 0;
    gid_t gid = 0;
    sigset_t set;
    pthread_t tid;
    double t0;

    while ((c = getopt(argc, argv, "c:fn")) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'f': foreground = 1; break;
        case 'n': check = 1; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    path = cfg_path(path);
    log_init("custos-milter", 0);
    if (cfg_load(path, &cfg, &err) < 0) {
        fprintf(stderr, "custos-milter: %s\n", err);
        return EX_CONFIG;
    }
    if ((uid_ok = run_as(cfg, &uid, &gid, &err)) < 0) {
        fprintf(stderr, "custos-milter: config %s: %s\n", path, err);
        return EX_CONFIG;
    }
    if (check) {
        cfg_dump(cfg, stdout);
        cfg_free(&cfg);
        return 0;
    }
    log_init("custos-milter", !foreground);
    log_set_level(cfg->log_level);

    /* What main() keeps: the settings a reload cannot change. */
    start = cfg_defaults();
    g_free(start->mlt_socket);
    g_free(start->mlt_user);
    g_free(start->mlt_group);
    start->mlt_socket = g_strdup(cfg->mlt_socket);
    start->mlt_user = g_strdup(cfg->mlt_user);
    start->mlt_group = g_strdup(cfg->mlt_group);
    start->mlt_timeout = cfg->mlt_timeout;
    start->mlt_nodelay = cfg->mlt_nodelay;
    g_free(start->mlt_pid_file);
    start->mlt_pid_file = foreground ? NULL : g_strdup(cfg->mlt_pid_file);

    if (smfi_setconn(cfg->mlt_socket) != MI_SUCCESS ||
        smfi_settimeout(cfg->mlt_timeout) != MI_SUCCESS ||
        smfi_setbacklog(cfg->mlt_backlog) != MI_SUCCESS ||
        smfi_register(*mlt_desc()) != MI_SUCCESS) {
        fprintf(stderr, "custos-milter: libmilter refused [milter] socket = %s\n",
                cfg->mlt_socket);
        return EX_CONFIG;
    }
    if (g_str_has_prefix(cfg->mlt_socket, "unix:") || g_str_has_prefix(cfg->mlt_socket, "local:"))
        sock_path = g_strdup(strchr(cfg->mlt_socket, ':') + 1);
    else if (cfg->mlt_socket[0] == '/')
        sock_path = g_strdup(cfg->mlt_socket);
    umask(0117);        /* the unix socket: 0660 */
    if (smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "custos-milter: cannot listen on %s (in use? no permission?)\n",
                cfg->mlt_socket);
        return EX_OSERR;
    }
    umask(0027);
    if (sock_path == NULL && cfg->mlt_nodelay && nodelay_listener() == 0)
        log_warn("NOQUEUE: no listening TCP socket found for TCP_NODELAY: answers may stall");
    if (uid_ok == 0 && sock_path != NULL && chown(sock_path, uid, gid) < 0) {
        fprintf(stderr, "custos-milter: chown(%s) failed: %s\n", sock_path, g_strerror(errno));
        return EX_OSERR;
    }
    if (!foreground) {
        char *pid;

        daemonize();
        pid = g_strdup_printf("%ld\n", (long)getpid());
        if (cfg->mlt_pid_file != NULL &&
            cus_write_file_atomic(cfg->mlt_pid_file, pid, strlen(pid), 0644, &err) < 0)
            log_fatal("NOQUEUE: pid file: %s", err);
        g_free(pid);
    }
    if (uid_ok == 0)
        drop_privileges(cfg, uid, gid);
    else if (geteuid() == 0)
        log_warn("NOQUEUE: running as root ([milter] user is empty)");

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A message's text and its copies are up to [detect] text_size each,
     * hundreds of KB: kept in malloc's arenas between messages (not
     * mapped and unmapped, page by page faulted in again, every time);
     * what is freed above 8 MB goes back to the system. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    /* Each connection is a thread of its own, and malloc gives threads up
     * to eight arenas a CPU, each keeping what its threads freed: with
     * the above, the peak of every one stays resident. As many arenas as
     * CPUs share what is kept (measured: no more CPU per message, 10 MB
     * messages' peak 1.12-1.19x that of 10 KB messages down to 1.01-1.07x).
     * The environment's MALLOC_ARENA_MAX or GLIBC_TUNABLES still rule. */
    if (getenv("MALLOC_ARENA_MAX") == NULL && getenv("GLIBC_TUNABLES") == NULL)
        mallopt(M_ARENA_MAX, (int)MAX(2, sysconf(_SC_NPROCESSORS_ONLN)));
    g_mime_init();      /* once, before any thread parses */
    idx_body_hash_use(cus_sha256);  /* OpenSSL's: auto-forward hashes every body */
    if (det_name_init(&err) < 0) {   /* ICU's Han-Latin, not at the first message */
        log_warn("NOQUEUE: %s: self-forward cannot match names", err);
        g_clear_pointer(&err, g_free);
    }
    if (mlt_init(cfg, mlt_smfi_libmilter(), &err) < 0)
        log_fatal("NOQUEUE: %s", err);
    cfg = NULL;
    if ((errno = pthread_create(&tid, NULL, milter_thread, &ret)) != 0)
        log_fatal("pthread_create failed: %m");
    log_info("NOQUEUE: listening on %s%s", start->mlt_socket,
             sock_path == NULL && start->mlt_nodelay ? " (TCP_NODELAY)" : "");
    for (;;) {
        int sig = 0;

        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(path, start);
            continue;
        }
        log_info("NOQUEUE: %s: stopping; messages under way finish",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    mlt_stop();
    smfi_stop();
    pthread_join(tid, NULL);
    /* stopped by us: libmilter's complaint about its closed socket is no failure */
    ret = MI_SUCCESS;
    /* libmilter no longer accepts; the sessions it has go on until done */
    t0 = cus_now();
    while (mlt_in_flight() > 0 && cus_now() - t0 < start->mlt_timeout)
        g_usleep(10000);
    if (mlt_in_flight() > 0)
        log_warn("NOQUEUE: %d messages still under way after %d s: exiting (the MTA "
                 "answers them with its milter_default_action)", mlt_in_flight(),
                 start->mlt_timeout);
    {
        guint64 entries, syncs;
        char *err = NULL;

        if (spool_journal_close(&err) < 0) {
            log_warn("NOQUEUE: %s (the journal is handed to ingest at the next start)", err);
            g_free(err);
        }
        spool_commit_stats(&entries, &syncs);
        log_info("NOQUEUE: stopped (%" G_GUINT64_FORMAT " messages journalled, %"
                 G_GUINT64_FORMAT " syncs)", entries, syncs);
    }
    /* the pid file, if this user may (it may sit in a directory of root's) */
    if (start->mlt_pid_file != NULL)
        unlink(start->mlt_pid_file);
    mlt_deinit();
    cfg_free(&start);
    g_free(sock_path);
    return ret == MI_SUCCESS ? 0 : 1;
}
