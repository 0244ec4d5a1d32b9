/*
 * test-policy.c - [policy] parsed, and findings turned into a verdict:
 * actions by rule, category, built-in and default; the stricter policy of
 * a sender in the notice period; allow-lists by address and domain;
 * strip of the named recipients, and strip become reject; the reply text.
 * (End to end with Postfix: the milter-policy suite of test-milter.c.)
 */
#include <stdio.h>
#include <string.h>
#include "cutest.h"
#include "custos/cfg.h"
#include "custos/policy.h"
#include "custos/route.h"

static struct cfg *load(const char *text, char **error_r)
{
    char *dir = cut_tmpdir(), *path = g_build_filename(dir, "custos.conf", NULL);
    struct cfg *cfg = NULL;

    g_file_set_contents(path, text, -1, NULL);
    if (cfg_load(path, &cfg, error_r) < 0)
        cfg = NULL;
    cut_rmtree(dir);
    g_free(dir);
    g_free(path);
    return cfg;
}

static const char conf_text[] =
    "[policy]\n"
    "default = tag\n"
    "leaving = hold\n"
    "action.customer-data = strip\n"
    "action.customer-data/xlsx = monitor\n"
    "action.payment-details = notify\n"
    "leaving.payment-details = reject\n"
    "allow.customer-data = partner.example, Audit@Corp.Example\n"
    "allow.departed-sender/sasl = robot@corp.example\n"
    "reject_text = Refused: {category} by {rule}\n";

static void test_policy_cfg(void)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        { "[policy]\naction.x = block\n", "expected one of monitor, tag, notify" },
        { "[policy]\naction. = tag\n", "must follow the \"action.\"" },
        { "[policy]\naction.Big = tag\n", "lower-case letters" },
        { "[policy]\naction.a = tag\naction.a = hold\n", "given twice" },
        { "[policy]\nallow.a = not an address\n", "not an address" },
        { "[policy]\nallow.a = ,\n", "expected addresses or domains" },
        { "[policy]\ndefault = none\n", "expected one of" },
        { "[route]\nnotice_language = fr\n", "expected one of auto, zh, en" },
        { "[route]\nnotice_days = 0\n", "out of range" },
    };
    char *err = NULL;
    struct cfg *cfg = load(conf_text, &err);
    FILE *out;
    char *dump = NULL;
    size_t len = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->pol_default, CFG_ACT_TAG);
    CU_ASSERT_EQUAL(cfg->pol_leaving, CFG_ACT_HOLD + 1);
    CU_ASSERT_EQUAL(cfg->n_pol_rules, 6);
    CU_ASSERT_STRING_EQUAL(cfg->pol_rules[4].allow[0], "@partner.example");
    CU_ASSERT_STRING_EQUAL(cfg->pol_rules[4].allow[1], "audit@corp.example");
    CU_ASSERT_PTR_NULL(cfg->pol_rules[4].allow[2]);
    /* the dump writes them back */
    out = open_memstream(&dump, &len);
    cfg_dump(cfg, out);
    fclose(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "action.customer-data/xlsx = monitor\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "allow.customer-data = @partner.example, "
                                        "audit@corp.example\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "leaving = hold\n"));
    free(dump);
    cfg_free(&cfg);
    /* defaults: notify; departed-sender rejects; the reply in both languages */
    cfg = load("[log]\nlevel = info\n", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(pol_action(cfg, "customer-data", "customer-data/csv", 0), CFG_ACT_NOTIFY);
    CU_ASSERT_EQUAL(pol_action(cfg, "departed-sender", "departed-sender/sasl", 1),
                    CFG_ACT_REJECT);
    CU_ASSERT_EQUAL(pol_action(cfg, "customer-data", "customer-data/csv", 1), CFG_ACT_NOTIFY);
    CU_ASSERT(cfg->pol_reject_text_zh != NULL && strstr(cfg->pol_reject_text_zh, "拒收") != NULL);
    CU_ASSERT(cfg->rt_enabled && !cfg->rt_notices && cfg->rt_notice_days == 30);
    cfg_free(&cfg);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        cfg = load(bad[i].text, &err);
        CU_ASSERT_PTR_NULL(cfg);
        if (err == NULL || strstr(err, bad[i].want) == NULL) {
            fprintf(stderr, "\n  case %zu: \"%s\" not in \"%s\"", i, bad[i].want, err);
            CU_FAIL("error text");
        }
        g_free(err);
        err = NULL;
        cfg_free(&cfg);
    }
}

/* An envelope: sender (with an employee status when emp_status >= 0) and rcpts. */
static void env_make(struct det_envelope *env, const char *sender, int emp_status,
                     const char *const *rcpts)
{
    size_t n = 0;

    memset(env, 0, sizeof(*env));
    env->sender.addr = g_strdup(sender);
    env->from.addr = g_strdup("");
    env->login.addr = g_strdup("");
    if (emp_status >= 0) {
        env->sender.emp = dir_employee_new();
        g_free(env->sender.emp->address);
        env->sender.emp->address = g_strdup(sender);
        env->sender.emp->status = (enum dir_status)emp_status;
    }
    while (rcpts[n] != NULL)
        n++;
    env->rcpts = g_new0(struct det_party, n + 1);
    env->n_rcpts = n;
    for (size_t i = 0; i < n; i++)
        env->rcpts[i].addr = g_strdup(rcpts[i]);
}

static void env_free(struct det_envelope *env)
{
    g_free(env->sender.addr);
    g_free(env->from.addr);
    g_free(env->login.addr);
    dir_employee_free(&env->sender.emp);
    for (size_t i = 0; i < env->n_rcpts; i++)
        g_free(env->rcpts[i].addr);
    g_free(env->rcpts);
}

/* A finding "CATEGORY RULE rcpt1 rcpt2 ..." */
static struct det_finding *finding(const char *spec)
{
    char **w = g_strsplit(spec, " ", -1);
    struct det_finding *f = det_finding_new(w[0], w[1], "evidence of %s", w[1]);

    for (int i = 2; w[i] != NULL; i++)
        det_finding_add_rcpt(f, w[i]);
    g_strfreev(w);
    return f;
}

static const struct {
    const char *sender;
    int status;                 /* -1 not an employee, else enum dir_status */
    const char *rcpts[4];
    const char *findings[3];
    enum cfg_action verdict;
    const char *actions;        /* each kept finding's action, space-separated */
    const char *strip;          /* recipients stripped, space-separated */
    guint dropped;
} cases[] = {
    /* default tag, a rule's own action before its category's */
    { "a@corp.example", DIR_ACTIVE, { "x@ext.example", NULL },
      { "evasion evasion/zip x@ext.example", "customer-data customer-data/xlsx x@ext.example" },
      CFG_ACT_TAG, "tag monitor", "", 0 },
    /* strip only the offending recipient; the rest delivered */
    { "a@corp.example", DIR_ACTIVE, { "x@163.com", "b@corp.example", NULL },
      { "customer-data customer-data/csv x@163.com" }, CFG_ACT_STRIP, "strip", "x@163.com", 0 },
    /* every recipient offending: reject */
    { "a@corp.example", DIR_ACTIVE, { "x@163.com", "y@qq.com", NULL },
      { "customer-data customer-data/csv x@163.com", "customer-data customer-data/vcf y@qq.com" },
      CFG_ACT_REJECT, "reject reject", "", 0 },
    /* a strip of the whole message: reject */
    { "a@corp.example", DIR_ACTIVE, { "x@163.com", "b@corp.example", NULL },
      { "customer-data customer-data/csv" }, CFG_ACT_REJECT, "reject", "", 0 },
    /* allowed: every offending recipient in an allowed domain or address */
    { "a@corp.example", DIR_ACTIVE, { "x@partner.example", "audit@corp.example", NULL },
      { "customer-data customer-data/csv x@partner.example audit@corp.example" },
      CFG_ACT_MONITOR, "", "", 1 },
    /* a subdomain is in its domain; one recipient outside: kept */
    { "a@corp.example", DIR_ACTIVE, { "x@eu.partner.example", "y@163.com", "b@corp.example" },
      { "customer-data customer-data/csv x@eu.partner.example",
        "customer-data customer-data/csv x@eu.partner.example y@163.com" },
      CFG_ACT_STRIP, "strip", "x@eu.partner.example y@163.com", 1 },
    /* a finding about the message: matched by the sender */
    { "robot@corp.example", DIR_DEPARTED, { "x@ext.example", NULL },
      { "departed-sender departed-sender/sasl", "departed-sender departed-sender/envelope" },
      CFG_ACT_REJECT, "reject", "", 1 },
    /* leaving: a category's own leaving action, else [policy] leaving, never milder */
    { "w@corp.example", DIR_LEAVING, { "x@ext.example", NULL },
      { "payment-details payment-details/iban x@ext.example", "evasion evasion/zip" },
      CFG_ACT_REJECT, "reject hold", "", 0 },
    { "w@corp.example", DIR_LEAVING, { "x@ext.example", "y@ext.example", NULL },
      { "customer-data customer-data/xlsx x@ext.example" }, CFG_ACT_HOLD, "hold", "", 0 },
    /* nothing found */
    { "a@corp.example", -1, { "x@ext.example", NULL }, { NULL }, CFG_ACT_MONITOR, "", "", 0 },
};

static void test_policy_decide(void)
{
    char *err = NULL;
    struct cfg *cfg = load(conf_text, &err);

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GPtrArray *fs = g_ptr_array_new_with_free_func(det_finding_free);
        GString *acts = g_string_new(NULL), *strip = g_string_new(NULL);
        struct det_envelope env;
        struct pol_verdict v;

        env_make(&env, cases[i].sender, cases[i].status, cases[i].rcpts);
        for (int j = 0; j < 3 && cases[i].findings[j] != NULL; j++)
            g_ptr_array_add(fs, finding(cases[i].findings[j]));
        pol_decide(cfg, &env, fs, &v);
        for (guint j = 0; j < v.items->len; j++)
            g_string_append_printf(acts, "%s%s", j ? " " : "",
                cfg_action_name(((struct pol_item *)g_ptr_array_index(v.items, j))->action));
        for (guint j = 0; j < v.strip->len; j++)
            g_string_append_printf(strip, "%s%s", j ? " " : "",
                                   (char *)g_ptr_array_index(v.strip, j));
        if (v.action != cases[i].verdict || strcmp(acts->str, cases[i].actions) != 0 ||
            strcmp(strip->str, cases[i].strip) != 0 || v.dropped != cases[i].dropped) {
            fprintf(stderr, "\n  case %zu: verdict %s, actions \"%s\", strip \"%s\", dropped %u",
                    i, cfg_action_name(v.action), acts->str, strip->str, v.dropped);
            CU_FAIL("verdict");
        }
        if (i == 2) {
            char *en = NULL, *zh = NULL;
            pol_reject_text(cfg, &v, &en, &zh);
            CU_ASSERT_STRING_EQUAL(en, "Refused: customer-data by customer-data/csv, "
                                       "customer-data/vcf");
            CU_ASSERT(zh != NULL && strstr(zh, "customer-data") != NULL);
            g_free(en);
            g_free(zh);
        }
        if (i == 1) {
            char *fv = pol_flag_value(g_ptr_array_index(v.items, 0));
            CU_ASSERT_STRING_EQUAL(fv, "customer-data; rule=customer-data/csv; action=strip");
            g_free(fv);
        }
        pol_verdict_clear(&v);
        env_free(&env);
        g_ptr_array_free(fs, TRUE);
        g_string_free(acts, TRUE);
        g_string_free(strip, TRUE);
    }
    cfg_free(&cfg);
}

static void test_route_subject(void)
{
    char *err = NULL;
    struct cfg *cfg = load("[route]\nsubject_tag = [原: %n]\n", &err);
    GPtrArray *routes = g_ptr_array_new();
    struct rt_route r = { .leaver = "chen.jie@corp.example", .leaver_name = "陈杰" };
    char *s, *dec;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    g_ptr_array_add(routes, &r);
    s = rt_subject(cfg, "报价单", routes);
    CU_ASSERT(s != NULL && g_str_has_prefix(s, "=?") && strchr(s, 0xe5) == NULL);
    dec = s != NULL ? g_mime_utils_header_decode_text(NULL, s) : NULL;
    CU_ASSERT(dec != NULL && strcmp(dec, "[原: 陈杰] 报价单") == 0);
    /* tagged once: a reply to it keeps one tag */
    CU_ASSERT_PTR_NULL(rt_subject(cfg, "Re: [原: 陈杰] 报价单", routes));
    g_free(s);
    g_free(dec);
    s = rt_evidence(&(struct rt_route){ .leaver = "chen.jie@corp.example", .leaver_name = "陈杰",
                                        .departed = "2025-01-15", .to = "li.na@corp.example",
                                        .to_name = "李娜" });
    CU_ASSERT_STRING_EQUAL(s, "mail for chen.jie@corp.example (陈杰, departed 2025-01-15) "
                              "delivered to 李娜 <li.na@corp.example>");
    g_free(s);
    g_ptr_array_free(routes, TRUE);
    cfg_free(&cfg);
}

CUS_SUITE(policy)
{
    CU_pSuite s = CU_add_suite("policy", NULL, NULL);
    CU_add_test(s, "[policy] and [route]: values, dump, defaults, errors", test_policy_cfg);
    CU_add_test(s, "verdicts: rule, category, default; leaving; allow-lists; strip, reject",
                test_policy_decide);
    CU_add_test(s, "route: subject tag (RFC 2047, once), evidence", test_route_subject);
}
