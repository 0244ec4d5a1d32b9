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
#include <string.h>
#include "custos/log.h"
#include "custos/mailout.h"
#include "handover-private.h"

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
        ok[i] = mout_template_load(paths[i], &subj[i], &body[i], &err) == 0;
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
        int zh = mout_has_han(cust) || mout_has_han(name) || (dom != NULL && g_str_has_suffix(dom, ".cn"));
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
                char *sj = mout_fill(subj[t], kv), *bd = mout_fill(body[t], kv);
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
    const char *from = cfg->hov_notice_from != NULL ? cfg->hov_notice_from
                                                    : json_object_get_string_member(m, "from");
    const char *from_name = cfg->hov_notice_from != NULL
                                ? "" : json_object_get_string_member(m, "from_name");
    char *id = g_strdup_printf("handover-%s-%u", p->id, n), *msg;

    msg = mout_message(from_name, from, json_object_get_string_member(m, "name"),
                       json_object_get_string_member(m, "to"),
                       json_object_get_string_member(m, "subject"), id, NULL,
                       json_object_get_string_member(m, "body"));
    g_free(id);
    *from_r = from;
    return msg;
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
        } else if (mout_sendmail(cfg->hov_sendmail, from, to, msg, error_r) < 0) {
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
