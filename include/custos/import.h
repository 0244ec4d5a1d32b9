/*
 * import.h - bring existing mail into the archive
 *
 * PATH may be a single message (.eml or anything that is not an mbox), an
 * mbox (first line "From "), a Maildir (cur/ new/ tmp/) or any directory
 * (walked recursively, dot files skipped), or a zip/tar/7z/... archive of
 * those (libarchive; members are read in memory, their names never used as
 * paths). A message that cannot be read is reported with where it is and
 * skipped; the rest go on.
 */
#ifndef CUSTOS_IMPORT_H
#define CUSTOS_IMPORT_H

#include <glib.h>
#include "custos/archive.h"

struct imp_stats {
    guint64 messages;       /* messages read */
    guint64 added;          /* new to the archive */
    guint64 dups;           /* already archived */
    guint64 skipped;        /* could not be read or archived */
    guint64 bytes;          /* raw bytes read */
    guint64 total_bytes;    /* input size, for progress (0 if unknown) */
    guint64 done_bytes;     /* input consumed so far */
};

typedef void imp_progress_cb(void *ctx, const struct imp_stats *st);

/* Sum the sizes of the files under paths (for an ETA). */
guint64 imp_measure(char *const *paths, int n);

/* Import one path. -1 only when the archive itself fails (disk full...):
 * then stop. Per-message trouble is logged and counted in st->skipped. */
int imp_path(struct arc *arc, const char *path, struct imp_stats *st,
             imp_progress_cb *cb, void *ctx, char **error_r);

#endif
