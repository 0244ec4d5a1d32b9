/*
 * postfix.c - a private Postfix on 127.0.0.1 for integration tests
 *
 * main.cf and master.cf written from scratch (nothing of /etc/postfix is
 * read but the daemons' locations), `postfix -c DIR check` makes the queue
 * directories with the right owners, master -d runs under setsid (else it
 * dies on SIGTERM: "kill process group"). Postfix logs to DIR/maillog
 * (there is no /dev/log here). See shared/POSTFIX-TESTING.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include "postfix.h"
#include "custos/util.h"

#define PFX_DAEMONS "/usr/lib/postfix/sbin"

/* Masters (1) and smtp-sinks (0) started and not stopped yet, by pid. */
static GHashTable *pfx_live;

static void live_add(GPid pid, int master)
{
    if (pfx_live == NULL)
        pfx_live = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_insert(pfx_live, GINT_TO_POINTER(pid), GINT_TO_POINTER(master));
}

static void live_del(GPid pid)
{
    if (pfx_live != NULL)
        g_hash_table_remove(pfx_live, GINT_TO_POINTER(pid));
}

int pfx_usable(char **why_r)
{
    static const char *const need[] = { PFX_DAEMONS "/master", "/usr/sbin/postfix",
                                        "/usr/sbin/smtp-sink", "/usr/sbin/postqueue",
                                        "/usr/bin/swaks" };

    if (geteuid() != 0) {
        *why_r = g_strdup("not root (Postfix's master must start as root)");
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(need); i++)
        if (access(need[i], X_OK) < 0) {
            *why_r = g_strdup_printf("%s is missing (make deps)", need[i]);
            return 0;
        }
    if (getpwnam("postfix") == NULL) {
        *why_r = g_strdup("no user postfix (make deps)");
        return 0;
    }
    return 1;
}

int pfx_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int pfx_wait_pid(GPid pid, double timeout, int *status_r)
{
    double end = cus_now() + timeout;
    int st = 0;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            if (status_r != NULL)
                *status_r = st;
            return 0;
        }
        if (cus_now() > end)
            return -1;
        g_usleep(5000);
    }
}

static int run_quiet(char **argv, char **out_r, char **error_r)
{
    char *out = NULL, *err = NULL;
    GError *gerr = NULL;
    int status = 0;

    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
                      &gerr)) {
        cus_error(error_r, "%s: %s", argv[0], gerr->message);
        g_error_free(gerr);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        cus_error(error_r, "%s %s failed (%d): %s%s", argv[0], argv[1] ? argv[1] : "", status,
                  out, err);
        g_free(out);
        g_free(err);
        return -1;
    }
    if (out_r != NULL)
        *out_r = out;
    else
        g_free(out);
    g_free(err);
    return 0;
}

/* Start argv under setsid with stdout and stderr to log (appended). */
static GPid spawn_setsid(char **argv, const char *log, char **error_r)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    GPtrArray *a = g_ptr_array_new();
    GError *gerr = NULL;
    GPid pid = 0;

    /* setsid -w: the child is a session leader, and its pid is setsid's */
    g_ptr_array_add(a, "/usr/bin/setsid");
    for (int i = 0; argv[i] != NULL; i++)
        g_ptr_array_add(a, argv[i]);
    g_ptr_array_add(a, NULL);
    if (!g_spawn_async_with_fds(NULL, (char **)a->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                NULL, &pid, -1, fd, fd, &gerr)) {
        cus_error(error_r, "spawn %s: %s", argv[0], gerr->message);
        g_error_free(gerr);
        pid = 0;
    }
    g_ptr_array_free(a, TRUE);
    if (fd >= 0)
        close(fd);
    return pid;
}

/* Pids whose parent is ppid. */
static GArray *children_of(GPid ppid)
{
    GArray *pids = g_array_new(FALSE, FALSE, sizeof(GPid));
    DIR *d = opendir("/proc");
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[64], *text = NULL, *close;
        GPid pid = (GPid)atoi(de->d_name);

        if (pid <= 0)
            continue;
        g_snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        if (!g_file_get_contents(path, &text, NULL, NULL))
            continue;
        /* pid (comm) state ppid: comm may hold anything but ends at the last ')' */
        close = strrchr(text, ')');
        if (close != NULL && atoi(close + 4) == ppid)
            g_array_append_val(pids, pid);
        g_free(text);
    }
    if (d != NULL)
        closedir(d);
    return pids;
}

static int pid_alive(GPid pid)
{
    char path[64], *text = NULL, *close;
    int alive;

    g_snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return 0;
    close = strrchr(text, ')');
    alive = close != NULL && close[2] != 'Z';
    g_free(text);
    return alive;
}

static const char master_cf[] =
    "127.0.0.1:%d inet n - n - - smtpd\n"
    "pickup    unix  n - n 60 1 pickup\n"
    "cleanup   unix  n - n - 0 cleanup\n"
    "qmgr      unix  n - n 300 1 qmgr\n"
    "rewrite   unix  - - n - - trivial-rewrite\n"
    "bounce    unix  - - n - 0 bounce\n"
    "defer     unix  - - n - 0 bounce\n"
    "trace     unix  - - n - 0 bounce\n"
    "verify    unix  - - n - 1 verify\n"
    "flush     unix  n - n 1000? 0 flush\n"
    "proxymap  unix  - - n - - proxymap\n"
    "smtp      unix  - - n - - smtp\n"
    "relay     unix  - - n - - smtp\n"
    "virtual   unix  - n n - - virtual\n"      /* Maildir delivery, as the users */
    "showq     unix  n - n - - showq\n"
    "error     unix  - - n - - error\n"
    "retry     unix  - - n - - error\n"
    "discard   unix  - - n - - discard\n"
    "anvil     unix  - - n - 1 anvil\n"
    "scache    unix  - - n - 1 scache\n"
    "postlog   unix-dgram n - n - 1 postlogd\n";

int pfx_start(struct pfx *p, const char *dir, int relay_port, const char *milters,
              const char *extra, char **error_r)
{
    struct passwd *pw = getpwnam("postfix");
    char *main_cf = NULL, *text = NULL, *data = NULL, *log = NULL, *queue = NULL;
    char *check[] = { "postfix", "-c", NULL, "check", NULL };
    char *master[] = { PFX_DAEMONS "/master", "-d", "-c", NULL, NULL };
    int ret = -1;

    memset(p, 0, sizeof(*p));
    p->dir = g_strdup(dir);
    p->conf = g_build_filename(dir, "conf", NULL);
    p->maillog = g_build_filename(dir, "maillog", NULL);
    data = g_build_filename(dir, "data", NULL);
    queue = g_build_filename(dir, "queue", NULL);
    if (pw == NULL || cus_mkdirs(p->conf, 0755, error_r) < 0 ||
        cus_mkdirs(data, 0700, error_r) < 0 || cus_mkdirs(queue, 0755, error_r) < 0)
        goto out;
    if (chown(data, pw->pw_uid, pw->pw_gid) < 0) {
        cus_error_errno(error_r, "chown(%s) failed", data);
        goto out;
    }
    if ((p->port = pfx_free_port()) < 0) {
        cus_error(error_r, "no free port on 127.0.0.1");
        goto out;
    }
    text = g_strdup_printf(
        "compatibility_level = 3.6\n"
        "queue_directory = %s/queue\n"
        "data_directory = %s\n"
        "command_directory = /usr/sbin\n"
        "daemon_directory = " PFX_DAEMONS "\n"
        "meta_directory = /etc/postfix\n"
        "shlib_directory = /usr/lib/postfix\n"
        "mail_owner = postfix\n"
        "setgid_group = postdrop\n"
        "inet_interfaces = 127.0.0.1\n"
        "inet_protocols = ipv4\n"
        "myhostname = custos-test.localdomain\n"
        "mydestination =\n"
        "mynetworks = 127.0.0.0/8\n"
        "relayhost = [127.0.0.1]:%d\n"
        "smtp_host_lookup = native\n"
        "maillog_file = %s\n"
        "maillog_file_prefixes = /var, /dev/stdout, /tmp\n"
        "alias_maps =\n"
        "alias_database =\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject\n"
        "message_size_limit = 104857600\n"
        "biff = no\n"
        /* retry soon: the tests flush by hand, but not always */
        "minimal_backoff_time = 5s\n"
        "maximal_backoff_time = 10s\n"
        "queue_run_delay = 5s\n"
        "milter_default_action = tempfail\n"
        "milter_protocol = 6\n"
        "%s%s%s%s%s\n",
        dir, data, relay_port, p->maillog,
        milters ? "smtpd_milters = " : "", milters ? milters : "", milters ? "\n" : "",
        milters ? "non_smtpd_milters = " : "", milters ? milters : "");
    main_cf = g_build_filename(p->conf, "main.cf", NULL);
    if (!g_file_set_contents(main_cf, text, -1, NULL)) {
        cus_error(error_r, "cannot write %s", main_cf);
        goto out;
    }
    if (extra != NULL) {
        char *all = g_strconcat(text, extra, "\n", NULL);
        g_file_set_contents(main_cf, all, -1, NULL);
        g_free(all);
    }
    g_free(main_cf);
    main_cf = g_build_filename(p->conf, "master.cf", NULL);
    g_free(text);
    text = g_strdup_printf(master_cf, p->port);
    if (!g_file_set_contents(main_cf, text, -1, NULL)) {
        cus_error(error_r, "cannot write %s", main_cf);
        goto out;
    }
    check[2] = p->conf;
    if (run_quiet(check, NULL, error_r) < 0)
        goto out;
    master[3] = p->conf;
    log = g_build_filename(dir, "master.out", NULL);
    if ((p->master = spawn_setsid(master, log, error_r)) <= 0)
        goto out;
    live_add(p->master, 1);
    /* up when its smtpd port answers */
    for (double end = cus_now() + 20;;) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            break;
        if (cus_now() > end || !pid_alive(p->master)) {
            char *mo = NULL;
            g_file_get_contents(log, &mo, NULL, NULL);
            cus_error(error_r, "Postfix master in %s did not come up: %s", dir, mo ? mo : "");
            g_free(mo);
            goto out;
        }
        g_usleep(20000);
    }
    ret = 0;
out:
    g_free(main_cf);
    g_free(text);
    g_free(data);
    g_free(queue);
    g_free(log);
    return ret;
}

void pfx_stop(struct pfx *p)
{
    if (p->master > 0) {
        /* setsid exec'd master: the pid is master's */
        GArray *kids = children_of(p->master);

        kill(p->master, SIGTERM);
        if (pfx_wait_pid(p->master, 30, NULL) < 0) {
            fprintf(stderr, "\n  Postfix master %d did not stop: killed", p->master);
            kill(p->master, SIGKILL);
            pfx_wait_pid(p->master, 10, NULL);
        }
        /* every child gone (they exit once master is) */
        for (guint i = 0; i < kids->len; i++) {
            GPid k = g_array_index(kids, GPid, i);
            double end = cus_now() + 10;
            while (pid_alive(k) && cus_now() < end)
                g_usleep(10000);
            if (pid_alive(k)) {
                fprintf(stderr, "\n  Postfix child %d outlived master: killed", k);
                kill(k, SIGKILL);
            }
        }
        g_array_free(kids, TRUE);
        g_spawn_close_pid(p->master);
        live_del(p->master);
        p->master = 0;
    }
    g_free(p->dir);
    g_free(p->conf);
    g_free(p->maillog);
    memset(p, 0, sizeof(*p));
}

void pfx_flush(struct pfx *p)
{
    char *argv[] = { "postqueue", "-c", p->conf, "-f", NULL };

    run_quiet(argv, NULL, NULL);
}

int pfx_queue_count(struct pfx *p)
{
    char *argv[] = { "postqueue", "-c", p->conf, "-j", NULL };
    char *out = NULL;
    int n = 0;

    if (run_quiet(argv, &out, NULL) < 0)
        return -1;
    for (const char *s = out; *s != '\0'; s++)
        n += *s == '\n';
    g_free(out);
    return n;
}

int pfx_wait_empty(struct pfx *p, double timeout)
{
    double end = cus_now() + timeout, flushed = 0;

    for (;;) {
        int n = pfx_queue_count(p);
        if (n == 0)
            return 0;
        if (cus_now() > end)
            return -1;
        if (cus_now() - flushed > 2) {
            pfx_flush(p);
            flushed = cus_now();
        }
        g_usleep(50000);
    }
}

char *pfx_log(struct pfx *p)
{
    char *text = NULL;

    if (!g_file_get_contents(p->maillog, &text, NULL, NULL))
        text = g_strdup("");
    return text;
}

GPtrArray *pfx_log_queued(struct pfx *p)
{
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    char *text = pfx_log(p);
    char **lines = g_strsplit(text, "\n", -1);
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (int i = 0; lines[i] != NULL; i++) {
        /* "... postfix/qmgr[N]: QID: from=<...>, size=..., nrcpt=N (queue active)" */
        char *q = strstr(lines[i], "postfix/qmgr[");
        char *colon, *id;

        if (q == NULL || (q = strstr(q, "]: ")) == NULL)
            continue;
        q += 3;
        colon = strstr(q, ": from=<");
        if (colon == NULL || strstr(colon, "(queue active)") == NULL)
            continue;
        id = g_strndup(q, (gsize)(colon - q));
        if (g_hash_table_contains(seen, id)) {
            g_free(id);
            continue;
        }
        g_hash_table_add(seen, id);
        g_ptr_array_add(ids, id);
    }
    g_hash_table_destroy(seen);
    g_strfreev(lines);
    g_free(text);
    return ids;
}

int pfx_sink_start(struct pfx_sink *s, const char *dir, char **error_r)
{
    struct passwd *pw = getpwnam("postfix");
    char *tmpl = NULL, *addr = NULL, *log = NULL;
    char *argv[] = { "/usr/sbin/smtp-sink", "-u", "postfix", "-d", NULL, "-c", NULL, "1000",
                     NULL };
    int ret = -1;

    memset(s, 0, sizeof(*s));
    s->dir = g_strdup(dir);
    if (pw == NULL || cus_mkdirs(dir, 0755, error_r) < 0)
        goto out;
    if (chown(dir, pw->pw_uid, pw->pw_gid) < 0) {
        cus_error_errno(error_r, "chown(%s) failed", dir);
        goto out;
    }
    s->port = pfx_free_port();
    /* %Y%m%d%H%M%S: one file per message, named by time, then a unique tail */
    tmpl = g_build_filename(dir, "%Y%m%d%H%M%S.", NULL);
    addr = g_strdup_printf("127.0.0.1:%d", s->port);
    argv[4] = tmpl;
    argv[6] = addr;
    log = g_strconcat(dir, ".log", NULL);
    if ((s->pid = spawn_setsid(argv, log, error_r)) <= 0)
        goto out;
    live_add(s->pid, 0);
    for (double end = cus_now() + 10;;) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            break;
        if (cus_now() > end) {
            cus_error(error_r, "smtp-sink on port %d did not come up", s->port);
            goto out;
        }
        g_usleep(10000);
    }
    ret = 0;
out:
    g_free(tmpl);
    g_free(addr);
    g_free(log);
    return ret;
}

void pfx_sink_stop(struct pfx_sink *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        if (pfx_wait_pid(s->pid, 10, NULL) < 0) {
            kill(s->pid, SIGKILL);
            pfx_wait_pid(s->pid, 10, NULL);
        }
        g_spawn_close_pid(s->pid);
        live_del(s->pid);
    }
    g_free(s->dir);
    memset(s, 0, sizeof(*s));
}

void pfx_cleanup(void)
{
    GHashTableIter it;
    gpointer k, v;
    GList *masters = NULL, *sinks = NULL;

    if (pfx_live == NULL)
        return;
    g_hash_table_iter_init(&it, pfx_live);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (GPOINTER_TO_INT(v))
            masters = g_list_prepend(masters, k);
        else
            sinks = g_list_prepend(sinks, k);
    }
    for (GList *l = masters; l != NULL; l = l->next) {
        struct pfx p = { .master = GPOINTER_TO_INT(l->data) };
        fprintf(stderr, "\n  cleanup: a Postfix master left running (%d)", p.master);
        pfx_stop(&p);
    }
    for (GList *l = sinks; l != NULL; l = l->next) {
        struct pfx_sink s = { .pid = GPOINTER_TO_INT(l->data) };
        pfx_sink_stop(&s);
    }
    g_list_free(masters);
    g_list_free(sinks);
    g_hash_table_destroy(pfx_live);
    pfx_live = NULL;
}

static gint name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The files in s->dir, sorted, with their contents (NULL when unreadable). */
static GPtrArray *sink_read(struct pfx_sink *s)
{
    GPtrArray *msgs = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    GDir *d = g_dir_open(s->dir, 0, NULL);
    const char *name;

    while (d != NULL && (name = g_dir_read_name(d)) != NULL)
        g_ptr_array_add(names, g_strdup(name));
    if (d != NULL)
        g_dir_close(d);
    g_ptr_array_sort(names, name_cmp);
    for (guint i = 0; i < names->len; i++) {
        char *p = g_build_filename(s->dir, g_ptr_array_index(names, i), NULL), *text;
        gsize len;
        if (g_file_get_contents(p, &text, &len, NULL))
            g_ptr_array_add(msgs, g_bytes_new_take(text, len));
        g_free(p);
    }
    g_ptr_array_free(names, TRUE);
    return msgs;
}

static int sink_same(GPtrArray *a, GPtrArray *b)
{
    if (a->len != b->len)
        return 0;
    for (guint i = 0; i < a->len; i++)
        if (!g_bytes_equal(g_ptr_array_index(a, i), g_ptr_array_index(b, i)))
            return 0;
    return 1;
}

/*
 * smtp-sink writes each file as the message comes in: a file read as soon
 * as it appears may hold only its first lines. So the files are taken once
 * n of them are there and a second look 200 ms later finds them unchanged.
 */
GPtrArray *pfx_sink_messages(struct pfx_sink *s, guint n, double timeout)
{
    double end = cus_now() + timeout;
    GPtrArray *msgs = sink_read(s), *again;

    for (;;) {
        g_usleep(msgs->len >= n ? 200000 : 50000);
        again = sink_read(s);
        if ((again->len >= n && sink_same(msgs, again)) || cus_now() > end) {
            g_ptr_array_free(msgs, TRUE);
            return again;
        }
        g_ptr_array_free(msgs, TRUE);
        msgs = again;
    }
}

int pfx_swaks(int port, char **out_r, ...)
{
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    char *out = NULL, *err = NULL;
    const char *a;
    GError *gerr = NULL;
    va_list ap;
    int status = -1;

    g_ptr_array_add(argv, g_strdup("/usr/bin/swaks"));
    g_ptr_array_add(argv, g_strdup("--server"));
    g_ptr_array_add(argv, g_strdup_printf("127.0.0.1:%d", port));
    g_ptr_array_add(argv, g_strdup("--helo"));
    g_ptr_array_add(argv, g_strdup("client.example"));
    g_ptr_array_add(argv, g_strdup("--timeout"));
    g_ptr_array_add(argv, g_strdup("60"));
    va_start(ap, out_r);
    while ((a = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(argv, g_strdup(a));
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, 0, NULL, NULL, &out, &err, &status,
                      &gerr)) {
        fprintf(stderr, "\n  swaks: %s", gerr->message);
        g_error_free(gerr);
        status = -1;
    } else {
        status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (out_r != NULL)
        *out_r = g_strconcat(out ? out : "", err ? err : "", NULL);
    g_free(out);
    g_free(err);
    g_ptr_array_free(argv, TRUE);
    return status;
}
