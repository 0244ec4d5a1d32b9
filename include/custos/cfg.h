/*
 * cfg.h - custos.conf: one GLib key-file for every program
 *
 * Options are declared in one table (group, key, type, default, bounds) and
 * parsed into an immutable struct cfg. An unknown group or key, a bad value
 * or a missing file is an error naming the file, the line and the key.
 * The file is found from -c FILE, else $CUSTOS_CONF, else
 * /etc/custos/custos.conf.
 */
#ifndef CUSTOS_CFG_H
#define CUSTOS_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_DEFAULT_PATH "/etc/custos/custos.conf"

/* A retention period: n units, or forever (unit 0). */
struct cfg_period {
    int n;
    char unit;                  /* 'd', 'w', 'm', 'y'; 0 = forever */
};

enum cfg_ret_kind { CFG_RET_DEPARTMENT, CFG_RET_QUERY };

/* [archive] scope: every message, or only mail of [archive] departments. */
enum cfg_scope { CFG_SCOPE_ALL, CFG_SCOPE_DEPARTMENTS };

/* Policy actions, mildest first: the most severe over a message's
 * findings wins ([policy]). */
enum cfg_action {
    CFG_ACT_MONITOR, CFG_ACT_TAG, CFG_ACT_NOTIFY, CFG_ACT_STRIP, CFG_ACT_HOLD, CFG_ACT_REJECT
};
/* "monitor" .. "reject"; parse: 0, or -1 with the words expected. */
const char *cfg_action_name(enum cfg_action a);
int cfg_action_parse(const char *s, enum cfg_action *a_r, char **error_r);

/* [route] notice_language */
enum cfg_lang { CFG_LANG_AUTO, CFG_LANG_ZH, CFG_LANG_EN };

/* One action.NAME, leaving.NAME or allow.NAME of [policy], in file order.
 * NAME is a category or a rule (a token of [a-z0-9./_-]). */
enum cfg_pol_kind { CFG_POL_ACTION, CFG_POL_LEAVING, CFG_POL_ALLOW };
struct cfg_policy {
    enum cfg_pol_kind kind;
    char *name;
    enum cfg_action action;     /* CFG_POL_ACTION, CFG_POL_LEAVING */
    char **allow;               /* CFG_POL_ALLOW: lower-case addresses and
                                 * domains ("@" + domain), NULL-terminated */
};

/* One department.NAME or rule.NAME of [retention], in file order. */
struct cfg_retention {
    enum cfg_ret_kind kind;
    char *name;                 /* the department, or the rule's name */
    struct cfg_period period;
    char *query;                /* CFG_RET_QUERY: the query text */
};

struct cfg {
    char *path;                 /* the file this came from */

    /* [archive] */
    char *arc_dir;              /* dir */
    uint64_t arc_segment_size;  /* segment_size: seal a segment past this */
    int arc_zstd_level;         /* zstd_level */
    int arc_dict;               /* dictionary: train a zstd dictionary */
    char *arc_key_file;         /* key_file: keyring for AES-256-GCM, or NULL */
    char *arc_key_id;           /* key_id: key for new objects, or NULL = last */
    int arc_batch;              /* batch: messages per index transaction */
    char *arc_group;            /* group: compliance readers (files 0640/0660
                                 * and directories 2750 in it), or NULL */
    char *arc_departments;      /* departments: archived departments, comma-
                                 * separated ("sales"), or NULL */
    int arc_scope;              /* scope: what custos-milter archives */

    /* [directory] */
    char *dir_webmail;          /* webmail_domains: personal free-mail domains */

    /* [spool] */
    char *spool_dir;            /* dir: NULL = ARCHIVE_DIR/spool (cfg_spool_dir) */
    int spool_ingest_delay;     /* ingest_delay: seconds ingest --follow gathers a
                                 * burst at most */

    /* [chain] */
    char *chain_sign_key;       /* sign_key: Ed25519 private key (PEM), or NULL */
    char *chain_verify_key;     /* verify_key: its public key (PEM), or NULL */
    int chain_interval;         /* checkpoint_interval: seconds, ingest --follow */

    /* [limits] */
    uint64_t lim_message_size;  /* message_size */
    int lim_depth;              /* depth */
    int lim_parts;              /* parts */
    uint64_t lim_expanded_size; /* expanded_size: all decoded bytes of a message */
    int lim_expansion_ratio;    /* expansion_ratio: archive members */
    uint64_t lim_text_size;     /* text_size: extracted text kept per message */

    /* [retention] */
    struct cfg_period ret_default;      /* default */
    struct cfg_retention *ret_rules;    /* department.NAME, rule.NAME */
    size_t n_ret_rules;

    /* [milter] */
    char *mlt_socket;           /* socket: unix:/PATH or inet:PORT@HOST (libmilter) */
    char *mlt_user;             /* user: run as this user once the socket is
                                 * open (when started as root), or NULL */
    char *mlt_group;            /* group: its group, NULL = the user's primary
                                 * group; a unix socket is given to it (0660) */
    char *mlt_pid_file;         /* pid_file: written when running as a daemon */
    int mlt_timeout;            /* timeout: seconds libmilter waits for the MTA */
    int mlt_backlog;            /* backlog: listen(2) queue of the milter socket */
    int mlt_nodelay;            /* tcp_nodelay: TCP_NODELAY on an inet socket (off
                                 * only to measure the stall it removes) */
    char *mlt_sendmail;         /* sendmail: summaries and route notices go here */
    char *mlt_state_dir;        /* state_dir: NULL = ARCHIVE_DIR/milter */

    /* [policy]: what custos-milter does with findings */
    int pol_default;            /* default: enum cfg_action of a category no
                                 * action.NAME names (departed-sender: reject) */
    int pol_leaving;            /* leaving: the action for a sender in the notice
                                 * period, 0 = none, else enum cfg_action + 1 */
    char *pol_compliance;       /* compliance: where summaries go, or NULL */
    char *pol_notify_from;      /* notify_from: their sender */
    char *pol_reject_text;      /* reject_text: English, {category} {rule} */
    char *pol_reject_text_zh;   /* reject_text_zh: Chinese, or NULL */
    struct cfg_policy *pol_rules;       /* action.NAME, leaving.NAME, allow.NAME */
    size_t n_pol_rules;

    /* [route]: mail to a departed employee goes to the successor */
    int rt_enabled;             /* enabled */
    char *rt_subject_tag;       /* subject_tag: %n leaver's name, %a address; NULL: none */
    int rt_notices;             /* notices: tell the external sender */
    int rt_notice_days;         /* notice_days: once per sender and leaver per N days */
    char *rt_notice_zh;         /* notice_template_zh */
    char *rt_notice_en;         /* notice_template_en */
    int rt_notice_lang;         /* notice_language: enum cfg_lang */
    char *rt_notice_from;       /* notice_from: NULL = the successor */


    /* [handover]: custos-handover */
    char *hov_maildir;          /* maildir: mail store path template, %d domain,
                                 * %n local part, %u whole address */
    char *hov_plans;            /* plans: NULL = ARCHIVE_DIR/handover */
    char *hov_folder;           /* folder: top folder of handed-over mail */
    int hov_folder_escape;      /* folder_escape: a '.' in the leaver's name as
                                 * Dovecot's listescape (\2e) or as '_' */
    int hov_notices;            /* notices: mail each customer contact */
    char *hov_notice_zh;        /* notice_template_zh */
    char *hov_notice_en;        /* notice_template_en */
    int hov_notice_rate;        /* notice_rate: notices a minute at most */
    char *hov_notice_from;      /* notice_from: NULL = the successor */
    char *hov_sendmail;         /* sendmail: the local sendmail interface */
    char *hov_alias_maps;       /* alias_maps: Postfix alias files, comma-separated */
    char *hov_virtual_maps;     /* virtual_maps: Postfix virtual files, comma-separated */
    char *hov_forward;          /* forward_file: template, ~/ = the user's home */
    char *hov_sieve;            /* sieve: Sieve script files or directories
                                 * (templates), comma-separated */
    int hov_sync;               /* sync: the copy made durable (syncfs) before
                                 * the handover is recorded as done */
    char *hov_postfix_config;   /* postfix_config: Postfix's config_directory, for
                                 * postmap/postalias -c */

    /* [detect]: custos-milter's detectors */
    int det_customer_data;      /* customer_data_threshold: distinct customer
                                 * addresses, phones and names (of customers
                                 * other than the recipient) for customer-data */
    int det_webmail_data;       /* webmail_data_threshold: the same, for "with
                                 * customer data" (personal-webmail, bcc-external) */
    int det_name_min;           /* name_min_length: customer names shorter than
                                 * this (characters) are not looked for */
    /* A word list (below) is comma-separated words, or the path of a file
     * (starting with '/') with one word a line ('#' comments); matched
     * normalised (NFKC), ASCII case ignored. */
    int det_payment_window;     /* payment_window: characters either side of an
                                 * account number searched for payment words */
    char *det_payment_words;    /* payment_words */
    char *det_payee_labels;     /* payee_labels: the label before a payee's name */
    char *det_company_suffixes; /* company_suffixes: what ends a company's name */
    char *det_cloud_domains;    /* cloud_domains: file-sharing hosts (and subdomains) */
    char *det_access_code_words; /* access_code_words */
    int det_access_code_window; /* access_code_window: characters after (and
                                 * before) a cloud link searched for a code */
    int det_self_forward_notes; /* self_forward_notes: a note to one's own
                                 * webmail with nothing in it from work is
                                 * flagged too */
    uint64_t det_text_size;     /* text_size: text (body and attachments) the
                                 * detectors read per message; the rest unread */

    /* [log] */
    int log_level;              /* level */
    int log_syslog;             /* syslog */
};

/* Which file to read: explicit (-c) else $CUSTOS_CONF else the default. */
const char *cfg_path(const char *explicit_path);

/* Load and check path. */
int cfg_load(const char *path, struct cfg **cfg_r, char **error_r);

/* Defaults only (for tests and for a missing file when allowed). */
struct cfg *cfg_defaults(void);

void cfg_free(struct cfg **cfg);

/* The spool directory: [spool] dir, else ARCHIVE_DIR/spool (g_free it). */
char *cfg_spool_dir(const struct cfg *cfg);
/* custos-milter's own state: [milter] state_dir, else ARCHIVE_DIR/milter. */
char *cfg_state_dir(const struct cfg *cfg);

/* Parse a period ("30d", "6m", "7y", "forever"); -1 with why if not one. */
int cfg_period_parse(const char *s, struct cfg_period *p, char **error_r);
/* A period as written in the file ("7y", "forever"), into buf (>= 16 bytes). */
void cfg_period_format(const struct cfg_period *p, char *buf, size_t size);
/* Which of two periods is longer: > 0 a, < 0 b, 0 the same. */
int cfg_period_cmp(const struct cfg_period *a, const struct cfg_period *b);

/* Print every option with its current value, key-file syntax. */
void cfg_dump(const struct cfg *cfg, FILE *out);

#endif
