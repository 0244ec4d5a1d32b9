/*
 * route.h - mail for a departed employee goes to the successor ([route])
 *
 * Never bounced: each envelope recipient that is the work address of an
 * employee the directory marks departed, with someone to go to
 * (dir_route: the successor, or the successor's successor...), is
 * replaced by that person. The milter keeps the original recipient in an
 * X-Custos-Original-To header, may tag the subject ([route] subject_tag,
 * "%n" the leaver's name, "%a" the address), and may tell the external
 * sender once per [route] notice_days who the new contact is (templates,
 * in Chinese or English). No notice goes to the null sender, to an
 * internal sender, or in answer to mail that is automatic (Auto-Submitted
 * other than "no"), from a list (any List-* header) or bulk (Precedence
 * bulk, list or junk).
 */
#ifndef CUSTOS_ROUTE_H
#define CUSTOS_ROUTE_H

#include <glib.h>
#include <gmime/gmime.h>
#include "custos/cfg.h"
#include "custos/detect.h"

#define RT_HEADER "X-Custos-Original-To"

struct rt_route {
    size_t rcpt;                /* index of the recipient in the envelope */
    char *leaver;               /* its address, lower case */
    char *leaver_name;          /* or the address when the directory has none */
    char *departed;             /* YYYY-MM-DD or "" */
    char *to;                   /* where it goes */
    char *to_name, *to_mobile;  /* from the directory; "" when unknown */
};

/* The routes of env's recipients (struct rt_route *, freed with the
 * array; empty when [route] enabled is off). */
int rt_plan(struct dir *d, const struct cfg *cfg, const struct det_envelope *env,
            GPtrArray **routes_r, char **error_r);

/* The Subject header value (RFC 2047 encoded, UTF-8) with the tag before
 * subject (decoded; NULL: none), or NULL when no tag is configured or the
 * subject has it already. */
char *rt_subject(const struct cfg *cfg, const char *subject, const GPtrArray *routes);

/* May a notice go to env's sender about this message? 1, or 0 with why. */
int rt_notice_wanted(const struct cfg *cfg, const struct det_envelope *env, GMimeMessage *msg,
                     const char **why_r);
/* The notice about r for env's sender: the message text, its envelope
 * sender (from_r: g_free) and the once-per-period key (key_r: g_free). */
int rt_notice(const struct cfg *cfg, const struct det_envelope *env, GMimeMessage *msg,
              const struct rt_route *r, char **text_r, char **from_r, char **key_r,
              char **error_r);

/* The route as a finding's evidence. */
char *rt_evidence(const struct rt_route *r);

#endif
