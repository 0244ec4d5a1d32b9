/*
 * handover.h - custos-handover: a leaver's mailbox, contacts and customers to a successor
 *
 * A plan (hov_plan_make) checks its input, looks at the leaver's mailbox,
 * the archive and the directory, and is saved under an id in the plans
 * directory ([handover] plans, else ARCHIVE_DIR/handover): PLANS/ID/
 * plan.json. Nothing else changes. hov_apply() then does it, step by step,
 * each step written to PLANS/ID/journal (one line "TIME STEP JSON",
 * fsync'd) once it is done:
 *
 *   depart      the leaver departed (effective date) with the successor and
 *               the leaver's customers given to their new owners: "directory"
 *               chain events (custos-milter routes by them), and the
 *               "handover" chain event (plan, leaver, successor, dates,
 *               mailboxes, customers, hold, user)
 *   hold        a legal hold "handover-ID" on participant:LEAVER, committed
 *               in the same batch as depart
 *   forwards    the leaver's forwardings found and disabled (backups)
 *   folder      per folder: copied to FOLDER/<leaver>/... in the successor's
 *               Maildir (handover-maildir.h)
 *   recovered   mail the archive has for the leaver that the mailbox lacks,
 *               to FOLDER/<leaver>/Recovered
 *   subscribe   the new folders subscribed
 *   contacts    contacts.vcf and contacts.csv, in the plan and in the
 *               successor's Maildir root
 *   crm         crm.csv: customer, contact, old owner, new owner
 *   postfix-map the virtual alias map of --postfix-map
 *   notices     one message to each customer contact ([handover] notices)
 *   analysis    customers' last contact and open threads, the leaver's
 *               incidents of the last 90 days
 *   record      the copy made durable ([handover] sync), the handover done;
 *               the run's audit entry (sealed into the chain by the next
 *               writer) says what was moved
 *
 * Killed at any point and run again, apply skips what the journal says is
 * done and makes each unfinished step finish without doing anything twice:
 * the archive batch is recognised by what it left (the hold, the rows,
 * the handover event by its plan id),
 * every folder is filled again (messages are named by their hash: what is
 * there whole is not written twice), files are written whole or not at
 * all, notices are journalled before and after sendmail. Every run of
 * plan and apply is an audit entry.
 */
#ifndef CUSTOS_HANDOVER_H
#define CUSTOS_HANDOVER_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include "custos/cfg.h"

/* Results: 0, or what kind of failure (the command's exit status follows). */
enum hov_result {
    HOV_OK = 0,
    HOV_ERROR = -1,             /* I/O, the archive, a tool (74) */
    HOV_BAD_INPUT = -2,         /* a leaver, successor, date, plan... (65) */
    HOV_NO_INPUT = -3,          /* a mailbox missing or unreadable (66) */
    HOV_CANT_CREATE = -4,       /* an output that cannot be written (73) */
    HOV_CONFIG = -5,            /* [handover] settings (78) */
};

struct hov_opts {
    const char *from, *to;      /* leaver and successor (addresses) */
    const char *effective;      /* YYYY-MM-DD; NULL: today */
    const char *notice;         /* notice period start, YYYY-MM-DD; NULL: today */
    const char *const *splits;  /* "CUSTOMER=ADDRESS" or "DOMAIN=ADDRESS", NULL-ended */
    const char *postfix_map;    /* --postfix-map FILE, or NULL */
    int force;                  /* a second handover of the same leaver */
    int dry_run;                /* apply: say what, change nothing */
    gint64 now;                 /* the clock (0: time(NULL)); tests set it */
};

struct hov_plan;

/* The plans directory (g_free). */
char *hov_plans_dir(const struct cfg *cfg);

/* Check o, look at mailbox, archive and directory, and save the plan;
 * out (may be NULL) gets what apply would do, as text. */
int hov_plan_make(const struct cfg *cfg, const struct hov_opts *o, struct hov_plan **p_r,
                  GString *out, char **error_r);
int hov_plan_load(const struct cfg *cfg, const char *id, struct hov_plan **p_r,
                  char **error_r);
const char *hov_plan_id(const struct hov_plan *p);
const char *hov_plan_dir(const struct hov_plan *p);
void hov_plan_free(struct hov_plan **p);

/* Apply (or, with o->dry_run, say what it would do into out). */
int hov_apply(const struct cfg *cfg, struct hov_plan *p, const struct hov_opts *o,
              GString *out, char **error_r);

/* The state of one plan, or of every plan (id NULL), as text. */
int hov_status(const struct cfg *cfg, const char *id, GString *out, char **error_r);

/* The report of a plan: "text", "html" or "json". */
int hov_report(const struct cfg *cfg, struct hov_plan *p, const char *format, GString *out,
               char **error_r);
/* The report as JSON (the plan, and each step's result). */
JsonNode *hov_report_json(struct hov_plan *p, char **error_r);

/* A zip of the plan's documents (report in three formats, contacts, CRM
 * file, forwarding backups, journal) at path; an existing file only with
 * force. */
int hov_package(const struct cfg *cfg, struct hov_plan *p, const char *path, int force,
                char **error_r);

/* The forwarding audit as text (address NULL: everyone). *outside_r: how
 * many lead outside. */
int hov_forwards_report(const struct cfg *cfg, const char *address, GString *out,
                        gint64 *outside_r, char **error_r);

#endif
