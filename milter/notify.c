/*
 * notify.c - the outbox: summaries and notices handed to sendmail by a
 * thread of their own; see notify.h
 */
#include <string.h>
#include "custos/log.h"
#include "custos/mailout.h"
#include "custos/notify.h"
#include "custos/util.h"

struct ntf_job {
    char *sendmail, *qid, *from, *to, *text;
    ntf_done_fn *done;
    void *data;
};

static GThreadPool *ntf_pool;
static GMutex ntf_lock;

static void job_run(gpointer p, gpointer unused)
{
    struct ntf_job *j = p;
    char *err = NULL;
    int ok = mout_sendmail(j->sendmail, j->from, j->to, j->text, &err) == 0;

    if (ok)
        log_info("%s: mail to <%s> handed to %s", j->qid, j->to, j->sendmail);
    else
        log_error("%s: %s", j->qid, err);
    g_free(err);
    if (j->done != NULL)
        j->done(ok, j->data);
    g_free(j->sendmail);
    g_free(j->qid);
    g_free(j->from);
    g_free(j->to);
    g_free(j->text);
    g_free(j);
}

void ntf_init(void)
{
    g_mutex_lock(&ntf_lock);
    if (ntf_pool == NULL)
        ntf_pool = g_thread_pool_new(job_run, NULL, 1, FALSE, NULL);
    g_mutex_unlock(&ntf_lock);
}

void ntf_deinit(void)
{
    GThreadPool *p;

    g_mutex_lock(&ntf_lock);
    p = ntf_pool;
    ntf_pool = NULL;
    g_mutex_unlock(&ntf_lock);
    if (p != NULL)
        g_thread_pool_free(p, FALSE, TRUE);
}

void ntf_queue(const char *sendmail, const char *qid, const char *from, const char *to,
               char *text, ntf_done_fn *done, void *data)
{
    struct ntf_job *j = g_new0(struct ntf_job, 1);

    j->sendmail = g_strdup(sendmail);
    j->qid = g_strdup(qid);
    j->from = g_strdup(from);
    j->to = g_strdup(to);
    j->text = text;
    j->done = done;
    j->data = data;
    ntf_init();
    g_mutex_lock(&ntf_lock);
    g_thread_pool_push(ntf_pool, j, NULL);
    g_mutex_unlock(&ntf_lock);
}

static const char *action_words(enum cfg_action a)
{
    switch (a) {
    case CFG_ACT_REJECT: return "refused (550 5.7.1) / 已拒收";
    case CFG_ACT_HOLD: return "held in the Postfix hold queue (release: postsuper -H QUEUE-ID) "
                              "/ 已暂扣";
    case CFG_ACT_STRIP: return "delivered without the offending recipients / 已移除违规收件人后投递";
    case CFG_ACT_NOTIFY: return "delivered, tagged / 已投递并标记";
    case CFG_ACT_TAG: return "delivered, tagged / 已投递并标记";
    case CFG_ACT_MONITOR: return "delivered, recorded only / 已投递，仅记录";
    }
    return "?";
}

char *ntf_summary(const struct cfg *cfg, const char *qid, const char *archive_id,
                  gint64 time, const char *client, const char *sender, char *const *rcpts,
                  const struct pol_verdict *v)
{
    GString *b = g_string_new(NULL), *cats = g_string_new(NULL);
    char when[32], *subject, *msgid, *text;

    if (cfg->pol_compliance == NULL)
        return NULL;
    cus_iso8601(time, when, sizeof(when));
    g_string_append(b, "custos-milter flagged a message. / custos-milter 标记了一封邮件。\n\n");
    g_string_append_printf(b, "Action / 处理:      %s\n", action_words(v->action));
    g_string_append_printf(b, "Queue id / 队列号:  %s\n", qid);
    g_string_append_printf(b, "Archive id / 归档:  %s\n", archive_id);
    g_string_append_printf(b, "Time / 时间:        %s\n", when);
    g_string_append_printf(b, "Client / 客户端:    %s\n", client != NULL ? client : "");
    g_string_append_printf(b, "Sender / 发件人:    %s\n", *sender ? sender : "<>");
    g_string_append(b, "Recipients / 收件人:");
    for (int i = 0; rcpts != NULL && rcpts[i] != NULL; i++)
        g_string_append_printf(b, "%s%s", i ? ", " : " ", rcpts[i]);
    g_string_append_printf(b, "\n%s\nFindings / 发现:\n",
                           v->leaving ? "The sender is in the notice period (stricter policy). "
                                        "/ 发件人处于离职交接期（从严处理）。\n" : "");
    for (guint i = 0; i < v->items->len; i++) {
        const struct pol_item *it = g_ptr_array_index(v->items, i);
        g_string_append_printf(b, "  - %s (rule %s, action %s)\n    %s\n", it->category,
                               it->rule, cfg_action_name(it->action), it->evidence);
        if (it->rcpts->len > 0) {
            g_string_append(b, "    recipients:");
            for (guint j = 0; j < it->rcpts->len; j++)
                g_string_append_printf(b, "%s%s", j ? ", " : " ",
                                       (char *)g_ptr_array_index(it->rcpts, j));
            g_string_append_c(b, '\n');
        }
        if (strstr(cats->str, it->category) == NULL)
            g_string_append_printf(cats, "%s%s", cats->len ? ", " : "", it->category);
    }
    g_string_append_printf(b, "\nThe message itself is in the archive: custos-archive show %s\n"
                           "custos-archive incidents lists every incident.\n", archive_id);
    subject = g_strdup_printf("[custos] %s: %s (%s) / 合规事件", cfg_action_name(v->action),
                              cats->str, qid);
    msgid = g_strdup_printf("custos-summary-%s", archive_id);
    text = mout_message("custos", cfg->pol_notify_from, "", cfg->pol_compliance, subject, msgid,
                        "X-Custos-Notice: summary\n", b->str);
    g_free(subject);
    g_free(msgid);
    g_string_free(b, TRUE);
    g_string_free(cats, TRUE);
    return text;
}
