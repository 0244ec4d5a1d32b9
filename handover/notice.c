/*
 * notice.c - telling each customer contact who their new contact is
 *
 * Off unless [handover] notices = true. Templates (conf/handover-notice.
 * zh.txt and .en.txt): a "Subject: ..." line, a blank line, the body;
 * {contact_name} {customer} {leaver_name} {leaver_address} {successor_name}
 * {successor_address} {successor_mobile} {effective} are filled in. A
 * contact gets the Chinese one when its customer or name is written in
 * Han characters or its domain is under .cn, else the English one.
 * Messages go through the local sendmail interface ([handover] sendmail,
 * "sendmail -i -f FROM -- TO"), at most [handover] notice_rate a minute.
 * Each is journalled before ("notice-sending") and after ("notice") it is
 * handed over: a run killed in between does not send it again and reports
 * it as uncertain -- a customer never gets two.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <gmime/gmime.h>
#include "custos/log.h"
#include "handover-private.h"

#define TEMPLATE_MAX (64 * 1024)

static int has_han(const char *s)
{
    for (const char *p = s; p != NULL && *p != '\0'; p = g_utf8_next_char(p))
        if (g_unichar_get_script(g_utf8_get_char(p)) == G_UNICODE_SCRIPT_HAN)
            return 1;
    return 0;
}

/* Subject and body of a template file; -1 naming the file. */
static int template_load(const char *path, char **subject_r, char **body_r, char **error_r)
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

static char *fill(const char *tmpl, const char *const *kv)
{
    GString *s = g_string_new(NULL);

    for (const char *p = tmpl; *p != '\0';) {
        int done = 0;
        if (*p == '{') {
            for (int i = 0; kv[i] != NULL; i += 2) {
                size_t n = strlen(kv[i]);
                if (strncmp(p + 1, kv[i], n) == 0 && p[1 + n] == '}') {
                    g_string_append(s, kv[i + 1]);
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

JsonNode *hov_notices_plan(const struct cfg *cfg, struct hov_survey *s, char **error_r)
{
    JsonObject *root = json_object_new();
    JsonArray *msgs = json_array_new();
    JsonNode *rows = hov_crm_rows(s->customers, s, s->leaver->address), *out;
    JsonArray *ra = json_node_get_array(rows);
    GHashTable *done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    char *subj[2] = { NULL, NULL }, *body[2] = { NULL, NULL };
    const char *paths[2] = { cfg->hov_notice_zh, cfg->hov_notice_en };
    int ok[2] = { 0, 0 };
    char day[16];

    g_strlcpy(day, s->plan->effective, sizeof(day));
    for (int i = 0; i < 2; i++) {
        char *err = NULL;
        ok[i] = template_load(paths[i], &subj[i], &body[i], &err) == 0;
        if (!ok[i] && cfg->hov_notices) {
            cus_error(error_r, "[handover] notices: %s", err);
            g_free(err);
            goto fail;
        }
        g_free(err);
    }
    for (guint i = 0; i < json_array_get_length(ra); i++) {
        JsonObject *r = json_array_get_object_element(ra, i);
        const char *to = json_object_get_string_member(r, "contact");
        const char *name = json_object_get_string_member(r, "contact_name");
        const char *cust = json_object_get_string_member(r, "customer");
        const char *owner = json_object_get_string_member(r, "new_owner");
        const char *dom = strrchr(to, '@');
        struct dir_employee *e = NULL;
        int zh = has_han(cust) || has_han(name) || (dom != NULL && g_str_has_suffix(dom, ".cn"));
        JsonObject *m;

        if (*to == '\0' || g_hash_table_contains(done, to))
            continue;
        g_hash_table_add(done, g_strdup(to));
        if (dir_employee_get(s->dir, owner, &e, error_r) < 0)
            goto fail;
        {
            const char *kv[] = {
                "contact_name", *name != '\0' ? name : to, "customer", cust,
                "leaver_name", *s->leaver->name ? s->leaver->name : s->leaver->address,
                "leaver_address", s->leaver->address,
                "successor_name", e != NULL && *e->name ? e->name : owner,
                "successor_address", owner,
                "successor_mobile", e != NULL ? e->mobile : "",
                "effective", day, NULL,
            };
            int t = zh ? 0 : 1;
            m = json_object_new();
            json_object_set_string_member(m, "to", to);
            json_object_set_string_member(m, "name", name);
            json_object_set_string_member(m, "customer", cust);
            json_object_set_string_member(m, "from", owner);
            json_object_set_string_member(m, "from_name", e != NULL ? e->name : "");
            json_object_set_string_member(m, "language", zh ? "zh" : "en");
            if (ok[t]) {
                char *sj = fill(subj[t], kv), *bd = fill(body[t], kv);
                json_object_set_string_member(m, "subject", sj);
                json_object_set_string_member(m, "body", bd);
                g_free(sj);
                g_free(bd);
            } else {
                json_object_set_string_member(m, "subject", "");
                json_object_set_string_member(m, "body", "");
            }
            json_array_add_object_element(msgs, m);
        }
        dir_employee_free(&e);
    }
    json_object_set_boolean_member(root, "enabled", cfg->hov_notices);
    json_object_set_int_member(root, "rate", cfg->hov_notice_rate);
    json_object_set_array_member(root, "messages", msgs);
    out = json_node_alloc();
    json_node_init_object(out, root);
    json_object_unref(root);
    json_node_unref(rows);
    g_hash_table_destroy(done);
    for (int i = 0; i < 2; i++) {
        g_free(subj[i]);
        g_free(body[i]);
    }
    return out;
fail:
    json_array_unref(msgs);
    json_object_unref(root);
    json_node_unref(rows);
    g_hash_table_destroy(done);
    for (int i = 0; i < 2; i++) {
        g_free(subj[i]);
        g_free(body[i]);
    }
    return NULL;
}

/* The RFC 5322 text of one notice. */
static char *notice_message(const struct cfg *cfg, struct hov_plan *p, JsonObject *m,
                            guint n, const char **from_r)
{
    const char *to = json_object_get_string_member(m, "to");
    const char *name = json_object_get_string_member(m, "name");
    const char *from = cfg->hov_notice_from != NULL ? cfg->hov_notice_from
                                                    : json_object_get_string_member(m, "from");
    const char *from_name = cfg->hov_notice_from != NULL
                                ? "" : json_object_get_string_member(m, "from_name");
    const char *at = strrchr(from, '@');
    InternetAddressMailbox *fa, *ta;
    char *fs, *ts, *subj, *date, *msg;
    GDateTime *now = g_date_time_new_now_local();

    fa = INTERNET_ADDRESS_MAILBOX(internet_address_mailbox_new(from_name, from));
    ta = INTERNET_ADDRESS_MAILBOX(internet_address_mailbox_new(name, to));
    fs = internet_address_to_string(INTERNET_ADDRESS(fa), NULL, TRUE);
    ts = internet_address_to_string(INTERNET_ADDRESS(ta), NULL, TRUE);
    subj = g_mime_utils_header_encode_text(NULL, json_object_get_string_member(m, "subject"),
                                           "utf-8");
    date = g_date_time_format(now, "%a, %d %b %Y %H:%M:%S %z");
    msg = g_strdup_printf("From: %s\nTo: %s\nSubject: %s\nDate: %s\n"
                          "Message-ID: <handover-%s-%u@%s>\nMIME-Version: 1.0\n"
                          "Content-Type: text/plain; charset=utf-8\n"
                          "Content-Transfer-Encoding: 8bit\nAuto-Submitted: auto-generated\n"
                          "\n%s", fs, ts, subj, date, p->id, n,
                          at != NULL ? at + 1 : "localhost",
                          json_object_get_string_member(m, "body"));
    *from_r = from;
    g_object_unref(fa);
    g_object_unref(ta);
    g_date_time_unref(now);
    g_free(fs);
    g_free(ts);
    g_free(subj);
    g_free(date);
    return msg;
}

static int sendmail(const char *prog, const char *from, const char *to, const char *msg,
                    char **error_r)
{
    char *argv[] = { (char *)prog, "-i", "-f", (char *)from, "--", (char *)to, NULL };
    GError *gerr = NULL;
    GPid pid;
    gint in = -1, status = 0;
    int ret = 0;

    if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                  &pid, &in, NULL, NULL, &gerr)) {
        cus_error(error_r, "notice to %s: %s: %s", to, prog, gerr->message);
        g_error_free(gerr);
        return -1;
    }
    if (cus_write_all(in, msg, strlen(msg)) < 0)
        ret = cus_error_errno(error_r, "notice to %s: writing to %s", to, prog);
    close(in);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_spawn_close_pid(pid);
    if (ret == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        ret = cus_error(error_r, "notice to %s: %s exited with status %d", to, prog,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return ret;
}

static int journal_count(const struct hov_journal *j, const char *step, const char *key)
{
    int n = 0;

    for (guint i = 0; i < j->entries->len; i++) {
        const struct hov_jentry *e = j->entries->pdata[i];
        n += strcmp(e->step, step) == 0 && strcmp(e->key, key) == 0;
    }
    return n;
}

int hov_notices_send(const struct cfg *cfg, struct hov_plan *p, struct hov_journal *j,
                     JsonNode *plan, JsonNode **result_r, char **error_r)
{
    JsonObject *po = json_node_get_object(plan), *res = json_object_new();
    JsonArray *msgs = json_object_get_array_member(po, "messages");
    JsonArray *sent = json_array_new(), *uncertain = json_array_new();
    gint64 gap_us = (gint64)(60.0 * 1e6 / MAX(cfg->hov_notice_rate, 1));
    int ret = 0, any = 0;

    for (guint i = 0; cfg->hov_notices && i < json_array_get_length(msgs) && ret == 0; i++) {
        JsonObject *m = json_array_get_object_element(msgs, i);
        const char *to = json_object_get_string_member(m, "to"), *from;
        char *msg;

        if (hov_journal_find(j, "notice", to) != NULL) {
            json_array_add_string_element(sent, to);
            continue;
        }
        if (journal_count(j, "notice-sending", to) > journal_count(j, "notice-failed", to)) {
            json_array_add_string_element(uncertain, to);
            continue;
        }
        if (any)
            g_usleep((gulong)gap_us);
        any = 1;
        msg = notice_message(cfg, p, m, i + 1, &from);
        if (hov_journal_add(j, "notice-sending", to, NULL, error_r) < 0) {
            ret = -1;
        } else if (sendmail(cfg->hov_sendmail, from, to, msg, error_r) < 0) {
            /* refused: known not sent, so a later run tries again */
            char *e2 = NULL;
            if (hov_journal_add(j, "notice-failed", to, NULL, &e2) < 0) {
                log_error("%s", e2);
                g_free(e2);
            }
            ret = -1;
        } else {
            hov_crash_point("notice");
            if (hov_journal_add(j, "notice", to, NULL, error_r) < 0)
                ret = -1;
            else
                json_array_add_string_element(sent, to);
        }
        g_free(msg);
    }
    json_object_set_boolean_member(res, "enabled", cfg->hov_notices);
    json_object_set_array_member(res, "sent", sent);
    json_object_set_array_member(res, "uncertain", uncertain);
    json_object_set_int_member(res, "planned", json_array_get_length(msgs));
    *result_r = json_node_alloc();
    json_node_init_object(*result_r, res);
    json_object_unref(res);
    if (ret < 0) {
        json_node_unref(*result_r);
        *result_r = NULL;
    }
    return ret;
}
