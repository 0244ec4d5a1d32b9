/*
 * mailout.c - mail custos writes: templates, the message, sendmail
 *
 * The template's {NAME} fields are filled from a NULL-terminated list of
 * names and values; the message is built with GMime's address and
 * RFC 2047 encoders and handed to the local sendmail interface, whose exit
 * status says whether the MTA took it.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <gmime/gmime.h>
#include "custos/mailout.h"
#include "custos/util.h"

#define TEMPLATE_MAX (64 * 1024)

int mout_has_han(const char *s)
{
    for (const char *p = s; p != NULL && *p != '\0'; p = g_utf8_next_char(p))
        if (g_unichar_get_script(g_utf8_get_char(p)) == G_UNICODE_SCRIPT_HAN)
            return 1;
    return 0;
}

int mout_template_load(const char *path, char **subject_r, char **body_r, char **error_r)
{
    GBytes *data = NULL;
    const char *text, *nl;
    gsize len;
    char *t;

    if (path == NULL)
        return cus_error(error_r, "no notice template configured");
    if (cus_read_file(path, TEMPLATE_MAX, &data, error_r) < 0)
        return -1;
    text = g_bytes_get_data(data, &len);
    t = g_strndup(text != NULL ? text : "", len);
    g_bytes_unref(data);
    if (!g_utf8_validate(t, -1, NULL) || !g_str_has_prefix(t, "Subject:") ||
        (nl = strchr(t, '\n')) == NULL) {
        g_free(t);
        return cus_error(error_r, "notice template %s: expected UTF-8 starting with a "
                         "\"Subject: ...\" line, a blank line, then the body", path);
    }
    *subject_r = g_strstrip(g_strndup(t + 8, (gsize)(nl - t - 8)));
    nl++;
    if (*nl == '\n')
        nl++;
    else if (nl[0] == '\r' && nl[1] == '\n')
        nl += 2;
    *body_r = g_strdup(nl);
    g_free(t);
    return 0;
}

char *mout_fill(const char *tmpl, const char *const *kv)
{
    GString *s = g_string_new(NULL);

    for (const char *p = tmpl; *p != '\0';) {
        int done = 0;
        if (*p == '{') {
            for (int i = 0; kv[i] != NULL; i += 2) {
                size_t n = strlen(kv[i]);
                if (strncmp(p + 1, kv[i], n) == 0 && p[1 + n] == '}') {
                    g_string_append(s, kv[i + 1] != NULL ? kv[i + 1] : "");
                    p += n + 2;
                    done = 1;
                    break;
                }
            }
        }
        if (!done)
            g_string_append_c(s, *p++);
    }
    return g_string_free(s, FALSE);
}

char *mout_message(const char *from_name, const char *from, const char *to_name,
                   const char *to, const char *subject, const char *msgid,
                   const char *extra, const char *body)
{
    const char *at = strrchr(from, '@');
    InternetAddress *fa, *ta;
    char *fs, *ts, *subj, *date, *msg;
    GDateTime *now = g_date_time_new_now_local();

    fa = internet_address_mailbox_new(from_name != NULL ? from_name : "", from);
    ta = internet_address_mailbox_new(to_name != NULL ? to_name : "", to);
    fs = internet_address_to_string(fa, NULL, TRUE);
    ts = internet_address_to_string(ta, NULL, TRUE);
    subj = g_mime_utils_header_encode_text(NULL, subject, "utf-8");
    date = g_date_time_format(now, "%a, %d %b %Y %H:%M:%S %z");
    msg = g_strdup_printf("From: %s\nTo: %s\nSubject: %s\nDate: %s\n"
                          "Message-ID: <%s@%s>\nMIME-Version: 1.0\n"
                          "Content-Type: text/plain; charset=utf-8\n"
                          "Content-Transfer-Encoding: 8bit\nAuto-Submitted: auto-generated\n"
                          "%s\n%s", fs, ts, subj, date, msgid,
                          at != NULL ? at + 1 : "localhost", extra != NULL ? extra : "", body);
    g_object_unref(fa);
    g_object_unref(ta);
    g_date_time_unref(now);
    g_free(fs);
    g_free(ts);
    g_free(subj);
    g_free(date);
    return msg;
}

int mout_sendmail(const char *prog, const char *from, const char *to, const char *msg,
                  char **error_r)
{
    char *argv[] = { (char *)prog, "-i", "-f", (char *)from, "--", (char *)to, NULL };
    GError *gerr = NULL;
    GPid pid;
    gint in = -1, status = 0;
    int ret = 0;

    if (!g_spawn_async_with_pipes(NULL, argv, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                  NULL, NULL, &pid, &in, NULL, NULL, &gerr)) {
        cus_error(error_r, "mail to %s: %s: %s", to, prog, gerr->message);
        g_error_free(gerr);
        return -1;
    }
    if (cus_write_all(in, msg, strlen(msg)) < 0)
        ret = cus_error_errno(error_r, "mail to %s: writing to %s", to, prog);
    close(in);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_spawn_close_pid(pid);
    if (ret == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        ret = cus_error(error_r, "mail to %s: %s exited with status %d", to, prog,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return ret;
}
