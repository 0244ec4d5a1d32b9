/*
 * cli.h - what the custos-archive commands share
 *
 * A command lives in archive/cmd-NAME.c and announces itself with one line
 * at the start of a line:
 *
 *   CUS_COMMAND(fn, "name", "usage line(s)")
 *
 * which declares int cmd_fn(const struct cfg *, int argc, char **argv)
 * (argv[0] is the command's name). The Makefile collects these lines into
 * commands.gen.h, so custos-archive.c lists every command without being
 * edited for each. Such commands run in custos-archive-full.
 */
#ifndef CUSTOS_CLI_H
#define CUSTOS_CLI_H

#include <glib.h>
#include "custos/cfg.h"
#include "custos/index.h"

/* Exit statuses (sysexits.h values). */
#define EX_OK_SKIPPED 1     /* done, but something was skipped / not found */
#define EX_USAGE_ 64
#define EX_DATAERR_ 65      /* bad input: a query, a CSV row, an export */
#define EX_NOINPUT_ 66      /* an input file that cannot be opened */
#define EX_CANTCREAT_ 73    /* an output file that cannot be created */
#define EX_IOERR_ 74
#define EX_NOPERM_ 77       /* no access to the archive */
#define EX_CONFIG_ 78

#define CUS_COMMAND(fn, name, usage) \
    int cmd_##fn(const struct cfg *cfg, int argc, char **argv);

/* Print "usage: custos-archive [-c FILE] " and the command's usage to
 * stderr; exit 64. */
void cli_usage(const char *usage) G_GNUC_NORETURN;

/* Log *err as an error, free it, return status. */
int cli_fail(char **err, int status);

/* A number >= 0 given to option opt, or a usage error (exit 64). */
gint64 cli_count(const char *opt, const char *s);

/* A date given to option opt: YYYY-MM-DD (midnight UTC) or a full ISO 8601
 * time; -1 and *error_r if it is neither. */
gint64 cli_date(const char *opt, const char *s, char **error_r);

/* The exit status for an archive that could not be opened: 77 when
 * permission was denied (perm.h), else 74. */
int cli_open_status(const char *err);

/* argv[1..] as one line, each argument shell-quoted when it needs it. */
char *cli_args(int argc, char **argv);

/* The audit entry of this command (audit.h): argv[0] the command, the
 * rest its arguments. 0, or the exit status to fail with (the message is
 * logged): nothing may be read without an entry. */
int cli_audit_begin(struct idx *idx, int argc, char **argv, gint64 *id_r);
/* Finish it; a failure is logged (the command's work is done). */
void cli_audit_end(struct idx *idx, gint64 id, gint64 results, int status, const char *detail);

#endif
