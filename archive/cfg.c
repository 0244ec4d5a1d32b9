/*
 * cfg.c - custos.conf: a declarative option table over GLib's GKeyFile
 *
 * Every option is one row of cfg_opts (group, key, type, default, bounds,
 * where in struct cfg). Loading checks every line: an unknown group or key,
 * a bad value or a missing file is an error naming the file, the line and
 * the key. The struct is immutable once loaded.
 *
 * A few groups also take open-ended keys, PREFIX.NAME (cfg_prefixes):
 * [retention] department.NAME and rule.NAME. Each such key may be given
 * once; its value is checked like a fixed key's.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "custos/cfg.h"
#include "custos/directory.h"
#include "custos/log.h"
#include "custos/query.h"
#include "custos/util.h"

enum cfg_type { CT_STR, CT_PATH, CT_BOOL, CT_INT, CT_SIZE, CT_LEVEL, CT_PERIOD, CT_ENUM };

struct cfg_opt {
    const char *group, *key;
    enum cfg_type type;
    const char *dflt;           /* as it would be written in the file */
    long long min, max;         /* CT_INT, CT_SIZE */
    size_t off;                 /* offset in struct cfg */
};

#define O(f) offsetof(struct cfg, f)

/* CT_ENUM options: the words each takes (NULL-terminated); the int stored
 * is the index of the word given. */
static const char *const cfg_scope_names[] = { "all", "departments", NULL };
static const char *const cfg_hov_escape_names[] = { "listescape", "underscore", NULL };
static const char *const cfg_action_names[] = { "monitor", "tag", "notify", "strip", "hold",
                                                 "reject", NULL };
/* [policy] leaving: "none", then the actions (stored as action + 1) */
static const char *const cfg_leaving_names[] = { "none", "monitor", "tag", "notify", "strip",
                                                  "hold", "reject", NULL };
static const char *const cfg_lang_names[] = { "auto", "zh", "en", NULL };
static const struct {
    size_t off;
    const char *const *words;
} cfg_enums[] = {
    { O(arc_scope), cfg_scope_names },
    { O(hov_folder_escape), cfg_hov_escape_names },
    { O(pol_default), cfg_action_names },
    { O(pol_leaving), cfg_leaving_names },
    { O(rt_notice_lang), cfg_lang_names },
};

static const struct cfg_opt cfg_opts[] = {
    { "archive", "dir", CT_PATH, "/var/lib/custos", 0, 0, O(arc_dir) },
    { "archive", "segment_size", CT_SIZE, "256M", 1 << 16, 1LL << 40, O(arc_segment_size) },
    { "archive", "zstd_level", CT_INT, "3", 1, 19, O(arc_zstd_level) },
    { "archive", "dictionary", CT_BOOL, "true", 0, 0, O(arc_dict) },
    { "archive", "key_file", CT_PATH, "", 0, 0, O(arc_key_file) },
    { "archive", "key_id", CT_STR, "", 0, 0, O(arc_key_id) },
    { "archive", "batch", CT_INT, "500", 1, 100000, O(arc_batch) },
    { "archive", "group", CT_STR, "", 0, 0, O(arc_group) },
    { "archive", "departments", CT_STR, "sales", 0, 0, O(arc_departments) },
    { "archive", "scope", CT_ENUM, "all", 0, 0, O(arc_scope) },
    { "directory", "webmail_domains", CT_PATH, "/etc/custos/webmail-domains.txt", 0, 0,
      O(dir_webmail) },
    { "spool", "dir", CT_PATH, "", 0, 0, O(spool_dir) },
    { "spool", "ingest_delay", CT_INT, "5", 0, 3600, O(spool_ingest_delay) },
    { "chain", "sign_key", CT_PATH, "", 0, 0, O(chain_sign_key) },
    { "chain", "verify_key", CT_PATH, "", 0, 0, O(chain_verify_key) },
    { "chain", "checkpoint_interval", CT_INT, "300", 0, 86400 * 7, O(chain_interval) },
    { "limits", "message_size", CT_SIZE, "64M", 1024, 1LL << 32, O(lim_message_size) },
    { "limits", "depth", CT_INT, "8", 1, 64, O(lim_depth) },
    { "limits", "parts", CT_INT, "1000", 1, 100000, O(lim_parts) },
    { "limits", "expanded_size", CT_SIZE, "256M", 1024, 1LL << 34, O(lim_expanded_size) },
    { "limits", "expansion_ratio", CT_INT, "100", 2, 100000, O(lim_expansion_ratio) },
    { "limits", "text_size", CT_SIZE, "8M", 1024, 1LL << 31, O(lim_text_size) },
    { "retention", "default", CT_PERIOD, "7y", 0, 0, O(ret_default) },
    /* [milter]: custos-milter */
    { "milter", "socket", CT_STR, "unix:/run/custos/milter.sock", 0, 0, O(mlt_socket) },
    { "milter", "user", CT_STR, "custos", 0, 0, O(mlt_user) },
    { "milter", "group", CT_STR, "", 0, 0, O(mlt_group) },
    { "milter", "pid_file", CT_PATH, "/run/custos/custos-milter.pid", 0, 0, O(mlt_pid_file) },
    { "milter", "timeout", CT_INT, "300", 1, 86400, O(mlt_timeout) },
    { "milter", "backlog", CT_INT, "128", 1, 65535, O(mlt_backlog) },
    { "milter", "tcp_nodelay", CT_BOOL, "true", 0, 0, O(mlt_nodelay) },
    { "milter", "sendmail", CT_PATH, "/usr/sbin/sendmail", 0, 0, O(mlt_sendmail) },
    { "milter", "state_dir", CT_PATH, "", 0, 0, O(mlt_state_dir) },
    /* [policy]: custos-milter's decisions */
    { "policy", "default", CT_ENUM, "notify", 0, 0, O(pol_default) },
    { "policy", "leaving", CT_ENUM, "none", 0, 0, O(pol_leaving) },
    { "policy", "compliance", CT_STR, "", 0, 0, O(pol_compliance) },
    { "policy", "notify_from", CT_STR, "custos", 0, 0, O(pol_notify_from) },
    { "policy", "reject_text", CT_STR,
      "Message refused by company mail policy ({category}); contact the compliance team",
      0, 0, O(pol_reject_text) },
    { "policy", "reject_text_zh", CT_STR,
      "根据公司邮件政策，此邮件被拒收（{category}），请联系合规部门", 0, 0, O(pol_reject_text_zh) },
    /* [route]: mail to departed employees */
    { "route", "enabled", CT_BOOL, "true", 0, 0, O(rt_enabled) },
    { "route", "subject_tag", CT_STR, "", 0, 0, O(rt_subject_tag) },
    { "route", "notices", CT_BOOL, "false", 0, 0, O(rt_notices) },
    { "route", "notice_days", CT_INT, "30", 1, 3650, O(rt_notice_days) },
    { "route", "notice_template_zh", CT_PATH, "/etc/custos/route-notice.zh.txt", 0, 0,
      O(rt_notice_zh) },
    { "route", "notice_template_en", CT_PATH, "/etc/custos/route-notice.en.txt", 0, 0,
      O(rt_notice_en) },
    { "route", "notice_language", CT_ENUM, "auto", 0, 0, O(rt_notice_lang) },
    { "route", "notice_from", CT_STR, "", 0, 0, O(rt_notice_from) },
    /* [handover]: custos-handover */
    { "handover", "maildir", CT_PATH, "/var/vmail/%d/%n/Maildir", 0, 0, O(hov_maildir) },
    { "handover", "plans", CT_PATH, "", 0, 0, O(hov_plans) },
    { "handover", "folder", CT_STR, "Handover", 0, 0, O(hov_folder) },
    { "handover", "folder_escape", CT_ENUM, "listescape", 0, 0, O(hov_folder_escape) },
    { "handover", "notices", CT_BOOL, "false", 0, 0, O(hov_notices) },
    { "handover", "notice_template_zh", CT_PATH, "/etc/custos/handover-notice.zh.txt", 0, 0,
      O(hov_notice_zh) },
    { "handover", "notice_template_en", CT_PATH, "/etc/custos/handover-notice.en.txt", 0, 0,
      O(hov_notice_en) },
    { "handover", "notice_rate", CT_INT, "20", 1, 6000, O(hov_notice_rate) },
    { "handover", "notice_from", CT_STR, "", 0, 0, O(hov_notice_from) },
    { "handover", "sendmail", CT_PATH, "/usr/sbin/sendmail", 0, 0, O(hov_sendmail) },
    { "handover", "alias_maps", CT_STR, "/etc/aliases", 0, 0, O(hov_alias_maps) },
    { "handover", "virtual_maps", CT_STR, "/etc/postfix/virtual", 0, 0, O(hov_virtual_maps) },
    { "handover", "forward_file", CT_STR, "~/.forward", 0, 0, O(hov_forward) },
    { "handover", "sieve", CT_STR, "/var/vmail/%d/%n/.dovecot.sieve, /var/vmail/%d/%n/sieve",
      0, 0, O(hov_sieve) },
    { "handover", "sync", CT_BOOL, "true", 0, 0, O(hov_sync) },
    { "handover", "postfix_config", CT_PATH, "/etc/postfix", 0, 0, O(hov_postfix_config) },
    /* [detect]: custos-milter's detectors (word lists: see cfg.h) */
    { "detect", "customer_data_threshold", CT_INT, "5", 1, 1000000, O(det_customer_data) },
    { "detect", "webmail_data_threshold", CT_INT, "2", 1, 1000000, O(det_webmail_data) },
    { "detect", "name_min_length", CT_INT, "4", 2, 100, O(det_name_min) },
    { "detect", "payment_window", CT_INT, "40", 1, 2000, O(det_payment_window) },
    { "detect", "payment_words", CT_STR,
      "账号, 帐号, 账户, 帐户, 卡号, 开户行, 开户银行, 开户名, 户名, 收款人, 收款账户, "
      "收款账号, 收款方, 收款单位, 转账, 转帐, 汇款, 打款, 付款, 银行卡, 银行, account, "
      "a/c, beneficiary, payee, iban, swift, bic, bank, remit, wire, transfer, sort code, "
      "routing", 0, 0, O(det_payment_words) },
    { "detect", "payee_labels", CT_STR,
      "户名, 开户名, 账户名, 账户名称, 收款人, 收款方, 收款人姓名, account name, "
      "account holder, beneficiary name, beneficiary, payee", 0, 0, O(det_payee_labels) },
    { "detect", "company_suffixes", CT_STR,
      "公司, 集团, 厂, 商行, 银行, 中心, 事务所, 研究所, 合作社, 株式会社, ltd, ltd., "
      "limited, inc, inc., llc, gmbh, co., corp, corp., corporation, company, plc, ag, "
      "s.a., b.v., bv, pte, sarl, srl, s.r.l., k.k., oy, ab, as", 0, 0,
      O(det_company_suffixes) },
    { "detect", "cloud_domains", CT_STR,
      "pan.baidu.com, yun.baidu.com, 115.com, 115cdn.com, weiyun.com, aliyundrive.com, "
      "alipan.com, lanzou.com, lanzoui.com, lanzoux.com, lanzous.com, lanzouw.com, "
      "lanzout.com, lanzoul.com, lanzouo.com, ilanzou.com, 123pan.com, 123pan.cn, "
      "123684.com, pan.quark.cn, pan.xunlei.com, cloud.189.cn, caiyun.139.com, "
      "yun.139.com, ctfile.com, cowtransfer.com, jianguoyun.com, dropbox.com, "
      "wetransfer.com, we.tl, drive.google.com, onedrive.live.com, 1drv.ms, mega.nz, box.com",
      0, 0, O(det_cloud_domains) },
    { "detect", "access_code_words", CT_STR,
      "提取码, 提取密码, 访问码, 访问密码, 分享码, 密码, 口令, pwd, password, passcode, "
      "passwd, access code, extraction code", 0, 0, O(det_access_code_words) },
    { "detect", "access_code_window", CT_INT, "60", 1, 2000, O(det_access_code_window) },
    { "detect", "self_forward_notes", CT_BOOL, "false", 0, 0, O(det_self_forward_notes) },
    { "detect", "text_size", CT_SIZE, "256K", 4096, 1LL << 31, O(det_text_size) },
    { "log", "level", CT_LEVEL, "info", 0, 0, O(log_level) },
    { "log", "syslog", CT_BOOL, "false", 0, 0, O(log_syslog) },
};
#undef O
#define N_OPTS (sizeof(cfg_opts) / sizeof(cfg_opts[0]))

/* Open-ended keys: group, "PREFIX." and the one function that takes
 * NAME and the value. */
typedef int cfg_prefix_fn(struct cfg *cfg, const char *name, const char *value,
                          char **error_r);
static cfg_prefix_fn ret_department, ret_rule, pol_action, pol_leaving, pol_allow;

static const struct cfg_prefix {
    const char *group, *prefix;
    cfg_prefix_fn *fn;
} cfg_prefixes[] = {
    { "retention", "department.", ret_department },
    { "retention", "rule.", ret_rule },
    { "policy", "action.", pol_action },
    { "policy", "leaving.", pol_leaving },
    { "policy", "allow.", pol_allow },
};
#define N_PREFIXES (sizeof(cfg_prefixes) / sizeof(cfg_prefixes[0]))

/* Longest period of each unit: a thousand years. */
static const struct { char unit; int max; } period_max[] = {
    { 'd', 365250 }, { 'w', 52178 }, { 'm', 12000 }, { 'y', 1000 },
};

int cfg_period_parse(const char *s, struct cfg_period *p, char **error_r)
{
    char *end;
    long n;

    if (g_ascii_strcasecmp(s, "forever") == 0) {
        p->n = 0;
        p->unit = 0;
        return 0;
    }
    errno = 0;
    n = g_ascii_isdigit(*s) ? strtol(s, &end, 10) : -1;
    if (n < 0 || errno != 0 || end[0] == '\0' || end[1] != '\0')
        return cus_error(error_r, "expected a period like 30d, 12w, 6m, 7y or forever, "
                         "not \"%s\"", s);
    for (size_t i = 0; i < G_N_ELEMENTS(period_max); i++) {
        if (g_ascii_tolower(*end) != period_max[i].unit)
            continue;
        if (n < 1 || n > period_max[i].max)
            return cus_error(error_r, "period \"%s\" is out of range 1..%d%c", s,
                             period_max[i].max, period_max[i].unit);
        p->n = (int)n;
        p->unit = period_max[i].unit;
        return 0;
    }
    return cus_error(error_r, "period \"%s\": the unit must be d (days), w (weeks), "
                     "m (months) or y (years)", s);
}

void cfg_period_format(const struct cfg_period *p, char *buf, size_t size)
{
    if (p->unit == 0)
        g_strlcpy(buf, "forever", size);
    else
        g_snprintf(buf, size, "%d%c", p->n, p->unit);
}

/* Average days (a month is 1/12 of a Gregorian year); forever: infinite. */
static double period_days(const struct cfg_period *p)
{
    switch (p->unit) {
    case 'd': return p->n;
    case 'w': return 7.0 * p->n;
    case 'm': return 365.2425 / 12 * p->n;
    case 'y': return 365.2425 * p->n;
    }
    return HUGE_VAL;
}

int cfg_period_cmp(const struct cfg_period *a, const struct cfg_period *b)
{
    double x = period_days(a), y = period_days(b);

    if (a->unit == 0 || b->unit == 0)
        return (a->unit == 0) - (b->unit == 0);
    return x > y + 1e-9 ? 1 : x < y - 1e-9 ? -1 : 0;
}

/* A department.NAME or rule.NAME entry; NAME given once. */
static struct cfg_retention *ret_new(struct cfg *cfg, enum cfg_ret_kind kind,
                                     const char *name, char **error_r)
{
    struct cfg_retention *r;

    if (*name == '\0') {
        cus_error(error_r, "a name must follow the \"%s\"",
                  kind == CFG_RET_DEPARTMENT ? "department." : "rule.");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_ret_rules; i++)
        if (cfg->ret_rules[i].kind == kind && strcmp(cfg->ret_rules[i].name, name) == 0) {
            cus_error(error_r, "given twice");
            return NULL;
        }
    cfg->ret_rules = g_renew(struct cfg_retention, cfg->ret_rules, cfg->n_ret_rules + 1);
    r = &cfg->ret_rules[cfg->n_ret_rules];
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    return r;
}

static int ret_department(struct cfg *cfg, const char *name, const char *value,
                          char **error_r)
{
    struct cfg_period p;
    struct cfg_retention *r;

    if (cfg_period_parse(value, &p, error_r) < 0)
        return -1;
    if ((r = ret_new(cfg, CFG_RET_DEPARTMENT, name, error_r)) == NULL)
        return -1;
    r->name = g_strdup(name);
    r->period = p;
    cfg->n_ret_rules++;
    return 0;
}

/* "PERIOD QUERY": the query is compiled here, so a syntax error is found
 * when the file is loaded, not at the retention run. */
static int ret_rule(struct cfg *cfg, const char *name, const char *value, char **error_r)
{
    const char *sp = value;
    struct cfg_period p;
    struct cfg_retention *r;
    struct qry *q = NULL;
    char *period, *err = NULL;
    int ret;

    for (const char *c = name; *c != '\0'; c++)
        if (!g_ascii_isalnum(*c) && *c != '_' && *c != '-')
            return cus_error(error_r, "a rule name is letters, digits, '_' and '-', "
                             "not \"%s\"", name);
    while (*sp != '\0' && !g_ascii_isspace(*sp))
        sp++;
    period = g_strndup(value, (gsize)(sp - value));
    ret = cfg_period_parse(period, &p, error_r);
    g_free(period);
    if (ret < 0)
        return -1;
    while (g_ascii_isspace(*sp))
        sp++;
    if (*sp == '\0')
        return cus_error(error_r, "expected PERIOD QUERY (e.g. \"10y from:@legal.example\"), "
                         "but there is no query");
    if (qry_compile(sp, &q, &err) < 0) {
        cus_error(error_r, "%s", err);
        g_free(err);
        return -1;
    }
    qry_free(&q);
    if ((r = ret_new(cfg, CFG_RET_QUERY, name, error_r)) == NULL)
        return -1;
    r->name = g_strdup(name);
    r->period = p;
    r->query = g_strdup(sp);
    cfg->n_ret_rules++;
    return 0;
}

const char *cfg_action_name(enum cfg_action a)
{
    return (unsigned)a < G_N_ELEMENTS(cfg_action_names) - 1 ? cfg_action_names[a] : "?";
}

int cfg_action_parse(const char *s, enum cfg_action *a_r, char **error_r)
{
    for (int i = 0; cfg_action_names[i] != NULL; i++)
        if (strcmp(s, cfg_action_names[i]) == 0) {
            *a_r = (enum cfg_action)i;
            return 0;
        }
    return cus_error(error_r, "expected one of monitor, tag, notify, strip, hold, reject, "
                     "not \"%s\"", s);
}

/* A [policy] PREFIX.NAME entry: NAME a token, given once per kind. */
static struct cfg_policy *pol_new(struct cfg *cfg, enum cfg_pol_kind kind, const char *name,
                                  char **error_r)
{
    static const char *const prefix[] = { "action.", "leaving.", "allow." };
    struct cfg_policy *r;

    if (*name == '\0') {
        cus_error(error_r, "a category or rule name must follow the \"%s\"", prefix[kind]);
        return NULL;
    }
    for (const char *c = name; *c != '\0'; c++)
        if (!g_ascii_islower(*c) && !g_ascii_isdigit(*c) && strchr("./_-", *c) == NULL) {
            cus_error(error_r, "a category or rule name is lower-case letters, digits and "
                      ". / _ -, not \"%s\"", name);
            return NULL;
        }
    for (size_t i = 0; i < cfg->n_pol_rules; i++)
        if (cfg->pol_rules[i].kind == kind && strcmp(cfg->pol_rules[i].name, name) == 0) {
            cus_error(error_r, "given twice");
            return NULL;
        }
    cfg->pol_rules = g_renew(struct cfg_policy, cfg->pol_rules, cfg->n_pol_rules + 1);
    r = &cfg->pol_rules[cfg->n_pol_rules++];
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->name = g_strdup(name);
    return r;
}

static int pol_action_kind(struct cfg *cfg, enum cfg_pol_kind kind, const char *name,
                           const char *value, char **error_r)
{
    enum cfg_action a = CFG_ACT_MONITOR;
    struct cfg_policy *r;

    if (cfg_action_parse(value, &a, error_r) < 0 ||
        (r = pol_new(cfg, kind, name, error_r)) == NULL)
        return -1;
    r->action = a;
    return 0;
}

static int pol_action(struct cfg *cfg, const char *name, const char *value, char **error_r)
{
    return pol_action_kind(cfg, CFG_POL_ACTION, name, value, error_r);
}

static int pol_leaving(struct cfg *cfg, const char *name, const char *value, char **error_r)
{
    return pol_action_kind(cfg, CFG_POL_LEAVING, name, value, error_r);
}

/* "addr@example.com, @example.org, example.net": addresses as they are,
 * domains (with or without the '@') as "@domain". */
static int pol_allow(struct cfg *cfg, const char *name, const char *value, char **error_r)
{
    char **items = g_strsplit(value, ",", -1);
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    struct cfg_policy *r;
    int ret = -1;

    for (int i = 0; items[i] != NULL; i++) {
        char *it = g_strstrip(items[i]), *v = NULL, *err = NULL;
        const char *at = strchr(it, '@');
        int is_addr = at != NULL && at != it;

        if (*it == '\0')
            continue;
        if ((is_addr ? dir_norm_addr(it, &v, &err) : dir_norm_domain(it, &v, &err)) < 0) {
            cus_error(error_r, "\"%s\": %s", it, err);
            g_free(err);
            goto out;
        }
        if (is_addr) {
            g_ptr_array_add(out, v);
        } else {
            g_ptr_array_add(out, g_strconcat("@", v, NULL));
            g_free(v);
        }
    }
    if (out->len == 0) {
        cus_error(error_r, "expected addresses or domains, comma-separated");
        goto out;
    }
    if ((r = pol_new(cfg, CFG_POL_ALLOW, name, error_r)) == NULL)
        goto out;
    g_ptr_array_add(out, NULL);
    r->allow = (char **)g_ptr_array_free(out, FALSE);
    out = NULL;
    ret = 0;
out:
    if (out != NULL)
        g_ptr_array_free(out, TRUE);
    g_strfreev(items);
    return ret;
}

static const struct cfg_prefix *prefix_find(const char *group, const char *key)
{
    for (size_t i = 0; i < N_PREFIXES; i++)
        if (strcmp(cfg_prefixes[i].group, group) == 0 &&
            (key == NULL || g_str_has_prefix(key, cfg_prefixes[i].prefix)))
            return &cfg_prefixes[i];
    return NULL;
}

const char *cfg_path(const char *explicit_path)
{
    const char *env;

    if (explicit_path != NULL)
        return explicit_path;
    env = getenv("CUSTOS_CONF");
    if (env != NULL && *env != '\0')
        return env;
    return CFG_DEFAULT_PATH;
}

static int parse_size(const char *s, unsigned long long *v)
{
    char *end;
    unsigned long long n, mul = 1;

    errno = 0;
    if (!g_ascii_isdigit(*s))
        return -1;
    n = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    switch (g_ascii_toupper(*end)) {
    case '\0': break;
    case 'K': mul = 1ULL << 10; end++; break;
    case 'M': mul = 1ULL << 20; end++; break;
    case 'G': mul = 1ULL << 30; end++; break;
    case 'T': mul = 1ULL << 40; end++; break;
    default: return -1;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || (n != 0 && mul > ULLONG_MAX / n))
        return -1;
    *v = n * mul;
    return 0;
}

static const char *const *enum_words(const struct cfg_opt *opt)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cfg_enums); i++)
        if (cfg_enums[i].off == opt->off)
            return cfg_enums[i].words;
    log_fatal("internal: no words for [%s] %s", opt->group, opt->key);
}

/* Store text as the value of opt in cfg; an error says what was expected. */
static int opt_set(struct cfg *cfg, const struct cfg_opt *opt, const char *text,
                   char **error_r)
{
    char *p = (char *)cfg + opt->off;
    unsigned long long u;
    long long n;
    char *end;
    int lvl;

    switch (opt->type) {
    case CT_STR:
    case CT_PATH:
        if (opt->type == CT_PATH && *text != '\0' && *text != '/')
            return cus_error(error_r, "must be an absolute path, not \"%s\"", text);
        g_free(*(char **)p);
        *(char **)p = *text == '\0' ? NULL : g_strdup(text);
        return 0;
    case CT_BOOL:
        if (g_ascii_strcasecmp(text, "true") == 0 || g_ascii_strcasecmp(text, "yes") == 0 ||
            strcmp(text, "1") == 0)
            *(int *)p = 1;
        else if (g_ascii_strcasecmp(text, "false") == 0 || g_ascii_strcasecmp(text, "no") == 0 ||
                 strcmp(text, "0") == 0)
            *(int *)p = 0;
        else
            return cus_error(error_r, "expected true or false, not \"%s\"", text);
        return 0;
    case CT_INT:
        errno = 0;
        n = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0')
            return cus_error(error_r, "expected a whole number, not \"%s\"", text);
        if (n < opt->min || n > opt->max)
            return cus_error(error_r, "%lld is out of range %lld..%lld", n, opt->min, opt->max);
        *(int *)p = (int)n;
        return 0;
    case CT_SIZE:
        if (parse_size(text, &u) < 0)
            return cus_error(error_r, "expected a size like 64M, not \"%s\"", text);
        if (u < (unsigned long long)opt->min || u > (unsigned long long)opt->max)
            return cus_error(error_r, "%s is out of range %lld..%lld bytes", text,
                             opt->min, opt->max);
        *(uint64_t *)p = u;
        return 0;
    case CT_LEVEL:
        lvl = log_level_parse(text);
        if (lvl < 0)
            return cus_error(error_r, "expected debug, info, warning or error, not \"%s\"", text);
        *(int *)p = lvl;
        return 0;
    case CT_PERIOD:
        return cfg_period_parse(text, (struct cfg_period *)p, error_r);
    case CT_ENUM: {
        const char *const *choices = enum_words(opt);
        char *words;
        for (int i = 0; choices[i] != NULL; i++)
            if (strcmp(text, choices[i]) == 0) {
                *(int *)p = i;
                return 0;
            }
        words = g_strjoinv(", ", (char **)choices);
        cus_error(error_r, "expected one of %s, not \"%s\"", words, text);
        g_free(words);
        return -1;
    }
    }
    return cus_error(error_r, "internal: bad option type");
}

static const struct cfg_opt *opt_find(const char *group, const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(cfg_opts[i].group, group) == 0 &&
            (key == NULL || strcmp(cfg_opts[i].key, key) == 0))
            return &cfg_opts[i];
    return NULL;
}

struct cfg *cfg_defaults(void)
{
    struct cfg *cfg = g_new0(struct cfg, 1);

    for (size_t i = 0; i < N_OPTS; i++)
        if (opt_set(cfg, &cfg_opts[i], cfg_opts[i].dflt, NULL) < 0)
            log_fatal("internal: bad default for [%s] %s", cfg_opts[i].group,
                      cfg_opts[i].key);
    return cfg;
}

/*
 * GKeyFile keeps no line numbers, so we walk the lines ourselves: each
 * must be blank, a comment, [group] or key = value. Then GKeyFile reads
 * the same text (for its escapes and list syntax) and each value is
 * checked against the table, with the line we found it on.
 */
int cfg_load(const char *path, struct cfg **cfg_r, char **error_r)
{
    GBytes *data = NULL;
    GKeyFile *kf = NULL;
    GError *gerr = NULL;
    struct cfg *cfg = NULL;
    char **lines = NULL, *group = NULL, *err = NULL;
    const char *text;
    int ret = -1;

    if (cus_read_file(path, 1 << 20, &data, &err) < 0) {
        cus_error(error_r, "config %s: %s", path, err);
        goto out;
    }
    text = g_bytes_get_data(data, NULL);
    if (!g_utf8_validate(text, -1, NULL)) {
        cus_error(error_r, "config %s: not valid UTF-8", path);
        goto out;
    }
    kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &gerr)) {
        /* Our own pass below gives the line; GLib's message is the fallback. */
    }
    cfg = cfg_defaults();
    cfg->path = g_strdup(path);
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] != NULL; i++) {
        char *line = g_strstrip(lines[i]), *eq, *key, *val;
        const struct cfg_opt *opt;
        const struct cfg_prefix *pfx;

        if (*line == '\0' || *line == '#' || *line == ';')
            continue;
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (close == NULL || close[1] != '\0') {
                cus_error(error_r, "config %s:%d: bad group line \"%s\"", path, i + 1, line);
                goto out;
            }
            g_free(group);
            group = g_strndup(line + 1, (gsize)(close - line - 1));
            if (opt_find(group, NULL) == NULL && prefix_find(group, NULL) == NULL) {
                cus_error(error_r, "config %s:%d: unknown group [%s]", path, i + 1, group);
                goto out;
            }
            continue;
        }
        eq = strchr(line, '=');
        if (eq == NULL) {
            cus_error(error_r, "config %s:%d: expected key = value, got \"%s\"", path, i + 1, line);
            goto out;
        }
        if (group == NULL) {
            cus_error(error_r, "config %s:%d: key before any [group]", path, i + 1);
            goto out;
        }
        *eq = '\0';
        key = g_strstrip(line);
        opt = opt_find(group, key);
        pfx = opt == NULL ? prefix_find(group, key) : NULL;
        if (opt == NULL && pfx == NULL) {
            cus_error(error_r, "config %s:%d: unknown key \"%s\" in [%s]", path, i + 1, key, group);
            goto out;
        }
        /* Take the value as GKeyFile reads it (escapes), or raw if it failed. */
        val = gerr == NULL ? g_key_file_get_string(kf, group, key, NULL) : NULL;
        if (val == NULL)
            val = g_strdup(g_strstrip(eq + 1));
        if (opt != NULL ? opt_set(cfg, opt, val, &err) < 0
                        : pfx->fn(cfg, key + strlen(pfx->prefix), val, &err) < 0) {
            cus_error(error_r, "config %s:%d: [%s] %s: %s", path, i + 1, group, key, err);
            g_free(val);
            goto out;
        }
        g_free(val);
    }
    if (gerr != NULL) {
        cus_error(error_r, "config %s: %s", path, gerr->message);
        goto out;
    }
    *cfg_r = cfg;
    cfg = NULL;
    ret = 0;
out:
    g_free(err);
    g_free(group);
    g_strfreev(lines);
    if (gerr != NULL)
        g_error_free(gerr);
    if (kf != NULL)
        g_key_file_free(kf);
    if (data != NULL)
        g_bytes_unref(data);
    cfg_free(&cfg);
    return ret;
}

void cfg_free(struct cfg **cfgp)
{
    struct cfg *cfg = *cfgp;

    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_OPTS; i++)
        if (cfg_opts[i].type == CT_STR || cfg_opts[i].type == CT_PATH)
            g_free(*(char **)((char *)cfg + cfg_opts[i].off));
    for (size_t i = 0; i < cfg->n_ret_rules; i++) {
        g_free(cfg->ret_rules[i].name);
        g_free(cfg->ret_rules[i].query);
    }
    g_free(cfg->ret_rules);
    for (size_t i = 0; i < cfg->n_pol_rules; i++) {
        g_free(cfg->pol_rules[i].name);
        g_strfreev(cfg->pol_rules[i].allow);
    }
    g_free(cfg->pol_rules);
    g_free(cfg->path);
    g_free(cfg);
    *cfgp = NULL;
}

char *cfg_spool_dir(const struct cfg *cfg)
{
    if (cfg->spool_dir != NULL)
        return g_strdup(cfg->spool_dir);
    return g_build_filename(cfg->arc_dir, "spool", NULL);
}

char *cfg_state_dir(const struct cfg *cfg)
{
    if (cfg->mlt_state_dir != NULL)
        return g_strdup(cfg->mlt_state_dir);
    return g_build_filename(cfg->arc_dir, "milter", NULL);
}

/* The open-ended keys of group, as they would be written. */
static void dump_prefixed(const struct cfg *cfg, const char *group, FILE *out)
{
    char period[16];

    if (strcmp(group, "policy") == 0) {
        static const char *const prefix[] = { "action.", "leaving.", "allow." };
        for (size_t i = 0; i < cfg->n_pol_rules; i++) {
            const struct cfg_policy *r = &cfg->pol_rules[i];
            char *list = r->allow != NULL ? g_strjoinv(", ", r->allow) : NULL;
            fprintf(out, "%s%s = %s\n", prefix[r->kind], r->name,
                    list != NULL ? list : cfg_action_name(r->action));
            g_free(list);
        }
        return;
    }
    if (strcmp(group, "retention") != 0)
        return;
    for (size_t i = 0; i < cfg->n_ret_rules; i++) {
        const struct cfg_retention *r = &cfg->ret_rules[i];

        cfg_period_format(&r->period, period, sizeof(period));
        if (r->kind == CFG_RET_DEPARTMENT)
            fprintf(out, "department.%s = %s\n", r->name, period);
        else
            fprintf(out, "rule.%s = %s %s\n", r->name, period, r->query);
    }
}

void cfg_dump(const struct cfg *cfg, FILE *out)
{
    static const char *levels[] = { "debug", "info", "warning", "error" };
    const char *group = "";
    char period[16];

    for (size_t i = 0; i < N_OPTS; i++) {
        const struct cfg_opt *o = &cfg_opts[i];
        const char *p = (const char *)cfg + o->off;

        if (strcmp(group, o->group) != 0) {
            dump_prefixed(cfg, group, out);
            fprintf(out, "%s[%s]\n", i ? "\n" : "", o->group);
            group = o->group;
        }
        fprintf(out, "%s = ", o->key);
        switch (o->type) {
        case CT_STR:
        case CT_PATH:
            fprintf(out, "%s\n", *(char *const *)p ? *(char *const *)p : "");
            break;
        case CT_BOOL:
            fprintf(out, "%s\n", *(const int *)p ? "true" : "false");
            break;
        case CT_INT:
            fprintf(out, "%d\n", *(const int *)p);
            break;
        case CT_SIZE:
            fprintf(out, "%llu\n", (unsigned long long)*(const uint64_t *)p);
            break;
        case CT_LEVEL:
            fprintf(out, "%s\n", levels[*(const int *)p]);
            break;
        case CT_PERIOD:
            cfg_period_format((const struct cfg_period *)p, period, sizeof(period));
            fprintf(out, "%s\n", period);
            break;
        case CT_ENUM:
            fprintf(out, "%s\n", enum_words(o)[*(const int *)p]);
            break;
        }
    }
    dump_prefixed(cfg, group, out);
}
