/*
 * dovecot.c - a private Dovecot on 127.0.0.1 for integration tests
 *
 * dovecot.conf written from scratch (nothing of /etc/dovecot is read), its
 * listener on a free loopback port, no SSL (loopback only), chroots off
 * (the test directory is not a chroot), logins from a passwd-file of its
 * own; the mail settings are conf/dovecot-handover.conf, as an admin
 * includes them. `dovecot -F` runs under setsid; stopping sends TERM to the master
 * by pid and waits for every process of its group. See
 * shared/POSTFIX-TESTING.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "cutest.h"
#include "dovecot.h"
#include "postfix.h"
#include "custos/util.h"

int dvc_usable(char **why_r)
{
    static const char *const need[] = { "/usr/sbin/dovecot", "/usr/lib/dovecot/imap",
                                        "/usr/lib/dovecot/imap-login", "/usr/bin/curl" };

    if (geteuid() != 0) {
        *why_r = g_strdup("not root (Dovecot's master must start as root)");
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(need); i++)
        if (access(need[i], X_OK) < 0) {
            *why_r = g_strdup_printf("%s is missing (make deps)", need[i]);
            return 0;
        }
    return 1;
}

static int answers(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
    char buf[64];

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
         read(fd, buf, sizeof(buf)) > 4 && strncmp(buf, "* OK", 4) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void child_setup(gpointer data)
{
    setsid();
}

int dvc_start(struct dvc *d, const char *dir, const char *mail, const struct dvc_user *users,
              size_t n, char **error_r)
{
    GString *conf = g_string_new(NULL), *pw = g_string_new(NULL);
    char *conf_path = NULL, *pw_path = NULL, *run = NULL, *state = NULL;
    char *snippet = cut_src("conf/dovecot-handover.conf");  /* what an admin includes */
    char *argv[] = { "/usr/sbin/dovecot", "-F", "-c", NULL, NULL };
    char *envp[] = { "TZ=UTC", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    GError *gerr = NULL;
    int ret = -1;

    memset(d, 0, sizeof(*d));
    d->dir = g_strdup(dir);
    d->log = g_build_filename(dir, "dovecot.log", NULL);
    d->port = pfx_free_port();
    run = g_build_filename(dir, "run", NULL);
    d->auth = g_build_filename(run, "auth-smtp", NULL);     /* base_dir's */
    state = g_build_filename(dir, "state", NULL);
    conf_path = g_build_filename(dir, "dovecot.conf", NULL);
    pw_path = g_build_filename(dir, "passwd", NULL);
    if (g_mkdir_with_parents(run, 0755) < 0 || g_mkdir_with_parents(state, 0755) < 0) {
        cus_error_errno(error_r, "mkdir(%s)", run);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        g_string_append_printf(pw, "%s:{PLAIN}%s:%u:%u::::\n", users[i].user, users[i].pass,
                               users[i].uid, users[i].gid);
    g_string_append_printf(conf,
        "base_dir = %s\nstate_dir = %s\nlog_path = %s\ninfo_log_path = %s\n"
        "protocols = imap\nlisten = 127.0.0.1\nssl = no\n"
        "disable_plaintext_auth = no\nauth_mechanisms = plain\n"
        "first_valid_uid = 100\nmail_location = maildir:%s\n"
        "!include %s\n"
        "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u %s\n}\n"
        "userdb {\n  driver = passwd-file\n  args = username_format=%%u %s\n}\n"
        "service imap-login {\n  chroot =\n  inet_listener imap {\n    address = 127.0.0.1\n"
        "    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n"
        "service pop3-login {\n  chroot =\n}\n"
        "service anvil {\n  chroot =\n}\n"
        "service auth {\n  unix_listener auth-smtp {\n    mode = 0666\n  }\n}\n",
        run, state, d->log, d->log, mail, snippet, pw_path, pw_path, d->port);
    if (!g_file_set_contents(conf_path, conf->str, -1, NULL) ||
        !g_file_set_contents(pw_path, pw->str, -1, NULL)) {
        cus_error_errno(error_r, "writing %s", conf_path);
        goto out;
    }
    argv[3] = conf_path;
    if (!g_spawn_async(dir, argv, envp, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                       child_setup, NULL, &d->pid, &gerr)) {
        cus_error(error_r, "dovecot: %s", gerr->message);
        g_error_free(gerr);
        d->pid = 0;
        goto out;
    }
    for (double end = cus_now() + 15; cus_now() < end; g_usleep(50000)) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            char *log = NULL;
            g_file_get_contents(d->log, &log, NULL, NULL);
            cus_error(error_r, "dovecot exited at start: %s", log != NULL ? log : "(no log)");
            g_free(log);
            g_spawn_close_pid(d->pid);
            d->pid = 0;
            goto out;
        }
        if (answers(d->port)) {
            ret = 0;
            goto out;
        }
    }
    cus_error(error_r, "dovecot does not answer on 127.0.0.1:%d", d->port);
out:
    g_string_free(conf, TRUE);
    g_string_free(pw, TRUE);
    g_free(conf_path);
    g_free(pw_path);
    g_free(run);
    g_free(state);
    g_free(snippet);
    return ret;
}

/* Is any process of group pgid left? */
static int group_alive(pid_t pgid)
{
    return kill(-pgid, 0) == 0 || errno != ESRCH;
}

void dvc_stop(struct dvc *d)
{
    if (d->pid > 0) {
        double end = cus_now() + 20;
        int st;

        kill(d->pid, SIGTERM);
        while (waitpid(d->pid, &st, WNOHANG) == 0 && cus_now() < end)
            g_usleep(10000);
        /* the master's children leave with it; any that did not is ours */
        end = cus_now() + 10;
        while (group_alive(d->pid) && cus_now() < end)
            g_usleep(10000);
        if (group_alive(d->pid)) {
            fprintf(stderr, "\n  Dovecot process group %d outlived its master: killed", d->pid);
            kill(-d->pid, SIGKILL);
        }
        waitpid(d->pid, &st, WNOHANG);
        g_spawn_close_pid(d->pid);
        d->pid = 0;
    }
    g_free(d->dir);
    g_free(d->log);
    g_free(d->auth);
    d->dir = d->log = d->auth = NULL;
}

int dvc_imap(struct dvc *d, const struct dvc_user *u, const char *mailbox,
             const char *command, char **out_r, char **error_r)
{
    char *esc = mailbox != NULL ? g_uri_escape_string(mailbox, NULL, FALSE) : g_strdup("");
    char *url = g_strdup_printf("imap://127.0.0.1:%d/%s", d->port, esc);
    char *cred = g_strdup_printf("%s:%s", u->user, u->pass);
    char *argv[] = { "curl", "--silent", "--show-error", "--max-time", "20", "--user", cred,
                     url, "--request", (char *)command, NULL };
    char *out = NULL, *err = NULL;
    GError *gerr = NULL;
    int status = 0, ret = -1;

    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
                      &gerr)) {
        cus_error(error_r, "curl: %s", gerr->message);
        g_error_free(gerr);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        cus_error(error_r, "curl %s %s: exit %d: %s", url, command,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, err != NULL ? err : "");
    } else {
        *out_r = out;
        out = NULL;
        ret = 0;
    }
    g_free(out);
    g_free(err);
    g_free(esc);
    g_free(url);
    g_free(cred);
    return ret;
}

gint64 dvc_internaldate(const char *s)
{
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    int day, year, h, m, sec, off, mon = -1;
    char mname[4], sign;
    GDateTime *dt;
    GTimeZone *utc;
    gint64 t;

    if (sscanf(s, " %d-%3s-%d %d:%d:%d %c%4d", &day, mname, &year, &h, &m, &sec, &sign,
               &off) != 8)
        return -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(mname, months[i]) == 0)
            mon = i + 1;
    if (mon < 0 || (sign != '+' && sign != '-'))
        return -1;
    utc = g_time_zone_new_utc();
    dt = g_date_time_new(utc, year, mon, day, h, m, sec);
    g_time_zone_unref(utc);
    if (dt == NULL)
        return -1;
    t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    off = (off / 100) * 3600 + (off % 100) * 60;
    return sign == '+' ? t - off : t + off;
}
