/*
 * handover-forwards.h - the forwarding audit: where an address's mail is sent on
 *
 * Postfix runs no milter on mail that an alias or a .forward file sends
 * on, so a leaver's forward to webmail would go on leaking in silence.
 * This finds every forwarding of an address (or of everyone in the
 * directory) in:
 *   - Postfix alias maps ([handover] alias_maps; "name: dest, dest",
 *     continuation lines, :include: files followed);
 *   - Postfix virtual maps ([handover] virtual_maps; "address dest, dest");
 *   - ~/.forward files ([handover] forward_file; "~/" is the home of the
 *     user named like the address's local part);
 *   - Dovecot Sieve scripts ([handover] sieve: files, or directories whose
 *     *.sieve files are read), each "redirect" command;
 * and flags each destination that leads outside the company (a domain no
 * employee's address has), personal webmail, or a program or file.
 *
 * Disabling (apply, for the leaver): each file is first copied to the
 * plan's backup directory, then changed in place, atomically, with its
 * owner and mode: a map entry is commented out ("#custos-handover ID: "
 * before each of its lines) and the map rebuilt with postalias/postmap
 * when a compiled map (.db, .lmdb, .cdb) lies beside it; a .forward file
 * is renamed to .forward.custos-handover-ID; a Sieve "redirect" becomes
 * "keep;" with the old command kept in a comment. Doing it again changes
 * nothing more.
 */
#ifndef CUSTOS_HANDOVER_FORWARDS_H
#define CUSTOS_HANDOVER_FORWARDS_H

#include <glib.h>
#include "custos/cfg.h"
#include "custos/directory.h"

enum hov_fwd_source { HOV_FWD_ALIAS, HOV_FWD_VIRTUAL, HOV_FWD_FORWARD, HOV_FWD_SIEVE };
enum hov_fwd_kind { HOV_FWD_ADDRESS, HOV_FWD_LOCAL, HOV_FWD_PROGRAM, HOV_FWD_FILE };

struct hov_forward {
    enum hov_fwd_source source;
    char *file;                 /* where it is written */
    int line;                   /* its first line (1-based) */
    char *owner;                /* whose forwarding: the address, alias or key */
    char *dest;                 /* where it sends mail */
    enum hov_fwd_kind kind;
    int outside;                /* leaves the company (or a program/file) */
    int webmail;                /* to personal webmail */
};

const char *hov_fwd_source_name(enum hov_fwd_source s);
const char *hov_fwd_kind_name(enum hov_fwd_kind k);

/* Every forwarding of address (NULL: of everyone in the directory and
 * every map entry). Files that are not there are skipped; one that is
 * there but cannot be read is an error naming it. */
int hov_forwards_find(const struct cfg *cfg, struct dir *d, const char *address,
                      GPtrArray **forwards_r, char **error_r);
void hov_forward_free(gpointer f);

/* One change made (or already made) to disable forwardings. */
struct hov_fwd_change {
    char *file;                 /* the file changed (for .forward: its old name) */
    char *action;               /* "commented out", "renamed to PATH", ... */
    char *backup;               /* the copy kept, "" if none was needed */
    int already;                /* it had been done by an earlier run */
    char *note;                 /* e.g. "postmap failed: ..." or "" */
};

/* Disable forwardings (those of one leaver) tagged with id; backups go to
 * backup_dir; a map with a compiled one beside it is rebuilt (postmap or
 * postalias -c [handover] postfix_config; the change's note says how or
 * what to run). changes_r: struct hov_fwd_change *. */
int hov_forwards_disable(const struct cfg *cfg, GPtrArray *forwards, const char *id,
                         const char *backup_dir, GPtrArray **changes_r, char **error_r);
void hov_fwd_change_free(gpointer c);

/* The Sieve "redirect" commands of a script's text: their destinations
 * (char *), and where each command starts and ends (byte offsets, pairs
 * of gsize in spans_r if not NULL). */
int hov_sieve_redirects(const char *text, GPtrArray **dests_r, GArray **spans_r,
                        char **error_r);

/* The script's text with each redirect command (spans as
 * hov_sieve_redirects gives them) replaced by "keep;" and a comment
 * naming id and what was there (g_free). */
char *hov_sieve_keep(const char *text, const GArray *spans, const char *id);

/* A template with %d %n %u (and a leading "~/" for the user's home)
 * expanded for address; NULL if "~/" names a user with no home. */
char *hov_expand(const char *tmpl, const char *address);

#endif
