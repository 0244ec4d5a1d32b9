/*
 * policy.h - custos-milter's decision: the detectors' findings become one
 * verdict ([policy] of custos.conf)
 *
 * Each finding gets an action: action.RULE, else action.CATEGORY, else the
 * built-in one (departed-sender: reject), else [policy] default (notify).
 * A sender in the notice period (directory status leaving: envelope
 * sender, header From or SASL login) gets leaving.RULE, leaving.CATEGORY
 * or [policy] leaving where one is set, but never a milder action than
 * anyone else. A finding an allow-list (allow.RULE, allow.CATEGORY) covers
 * is dropped: all of its offending recipients are allowed addresses or in
 * allowed domains (a finding about the whole message: its envelope
 * sender is). Strip names the finding's recipients; a strip with none
 * (the whole message) or one that would leave no recipient is a reject.
 * The verdict is the most severe action: reject > hold > strip > notify >
 * tag > monitor. Pure: no I/O, no libmilter.
 */
#ifndef CUSTOS_POLICY_H
#define CUSTOS_POLICY_H

#include <glib.h>
#include "custos/cfg.h"
#include "custos/detect.h"

#define POL_FLAG_HEADER "X-Custos-Flag"

/* One finding kept, with what is done about it (copies: outlive the
 * findings and the envelope). */
struct pol_item {
    char *category, *rule, *evidence;
    GPtrArray *rcpts;           /* char *: the finding's recipients */
    enum cfg_action action;
};

struct pol_verdict {
    enum cfg_action action;     /* the most severe (monitor when no item) */
    GPtrArray *items;           /* struct pol_item * */
    GPtrArray *strip;           /* char *: envelope recipients to remove */
    int leaving;                /* the sender is in the notice period */
    guint dropped;              /* findings an allow-list dropped */
};

/* The action for a finding of category and rule; leaving: the sender's
 * stricter policy applies. */
enum cfg_action pol_action(const struct cfg *cfg, const char *category, const char *rule,
                           int leaving);
/* Does an allow-list drop f (sender: the envelope sender)? */
int pol_allowed(const struct cfg *cfg, const struct det_finding *f, const char *sender);
/* Is any of sender, From and login an employee in the notice period? */
int pol_leaving(const struct det_envelope *env);

/* The verdict over findings (struct det_finding *) of env. */
void pol_decide(const struct cfg *cfg, const struct det_envelope *env,
                const GPtrArray *findings, struct pol_verdict *v);
void pol_verdict_clear(struct pol_verdict *v);

/* The X-Custos-Flag value of it: "CATEGORY; rule=RULE; action=ACTION". */
char *pol_flag_value(const struct pol_item *it);
/* The reply lines of a reject, English and Chinese ([policy] reject_text,
 * reject_text_zh with {category} and {rule}); zh NULL when not configured.
 * Control characters and '%' (libmilter's) are taken out. */
void pol_reject_text(const struct cfg *cfg, const struct pol_verdict *v, char **en_r,
                     char **zh_r);

#endif
