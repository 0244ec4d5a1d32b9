/*
 * handover-maildir.h - Dovecot's Maildir++ as custos-handover reads and writes it
 *
 * Layout (Dovecot, LAYOUT=Maildir++): the mailbox root is INBOX (cur/ new/
 * tmp/); every other folder is a directory ".NAME" in the root, NAME its
 * storage name: levels joined by '.', each level in IMAP modified UTF-7
 * (RFC 3501 5.1.3), and characters a level cannot hold -- '.', '/', a
 * leading '~' and the escape character '\' itself -- written "\XX" (two
 * lower-case hex digits) as Dovecot's listescape plugin writes them. A
 * message is one file in cur/ or new/ named BASE or BASE:2,FLAGS (FLAGS:
 * D F P R S T, keywords a-z numbered in the folder's dovecot-keywords
 * file); its received date (IMAP INTERNALDATE) is the file's mtime.
 * Dovecot's indexes are never written: files put in cur/ and new/ are found
 * by Dovecot's next sync.
 *
 * What custos-handover writes it writes as the owner of the successor's
 * Maildir with that Maildir's modes (struct hov_owner), so Dovecot, running
 * as that user, can read every file. A message it writes is named
 *   MTIME.H<24 hex digits of its SHA-256>.custos,S=SIZE[:2,FLAGS]
 * so that a second run finds what the first one wrote (whatever flags
 * Dovecot has since given it) and never writes it twice, and a file cut
 * short by a crash (its size is not SIZE) is written again.
 */
#ifndef CUSTOS_HANDOVER_MAILDIR_H
#define CUSTOS_HANDOVER_MAILDIR_H

#include <sys/types.h>
#include <glib.h>
#include "custos/util.h"

/* ---- folder names ---------------------------------------------------------- */

/* UTF-8 to IMAP modified UTF-7 (RFC 3501 5.1.3): printable ASCII stands for
 * itself, '&' is "&-", anything else (controls too) a base64 run of UTF-16
 * in '&' ... '-'. -1 if utf8 is not valid UTF-8 or holds a NUL. */
int hov_mutf7_encode(const char *utf8, char **out_r, char **error_r);
/* The reverse, strict as Dovecot is: bytes outside printable ASCII, a run
 * that is not closed, bad base64 or padding bits, unpaired surrogates, an
 * encoded NUL or printable ASCII character, and two runs next to each
 * other ("&AGE-&AGE-") are errors naming the input. */
int hov_mutf7_decode(const char *mutf7, char **out_r, char **error_r);

enum hov_escape { HOV_ESC_LISTESCAPE = 0, HOV_ESC_UNDERSCORE = 1 };

/* One level of a storage name from a UTF-8 name: '.', '/', a leading '~'
 * and '\' escaped ("\2e") with HOV_ESC_LISTESCAPE, or made '_' with
 * HOV_ESC_UNDERSCORE; then modified UTF-7. A name that is empty, not
 * UTF-8, or has a control character is an error. */
int hov_level_encode(const char *utf8, enum hov_escape esc, char **out_r, char **error_r);
/* One level back to UTF-8: "\XX" escapes undone, modified UTF-7 decoded. */
int hov_level_decode(const char *level, char **out_r, char **error_r);
/* A storage name ("" = INBOX) as people read it: levels decoded and joined
 * by '/'. A level that does not decode is shown as it is on disk. */
char *hov_storage_display(const char *storage);

/* ---- reading a Maildir -------------------------------------------------------- */

struct hov_folder {
    char *storage;              /* storage name; "" for INBOX */
    char *display;              /* "INBOX", "客户/明远" */
    char *path;                 /* its directory */
};

/* Every folder of the Maildir at root (INBOX first, then by storage
 * name): the root and each ".NAME" directory with a cur/ or new/ in it.
 * A root that is missing, not a Maildir or not readable is an error
 * naming it. */
int hov_maildir_folders(const char *root, GPtrArray **folders_r, char **error_r);
void hov_folder_free(gpointer f);

struct hov_mfile {
    char *name;                 /* file name in cur/ or new/ */
    int in_new;                 /* in new/ (not yet seen by a client) */
    char *base;                 /* the name before ":2," */
    char *flags;                /* after ":2,": letters only, sorted, each once */
};

/* The messages of a folder: regular files of cur/ and new/, sorted by
 * name; names starting with '.' and anything not a regular file are left
 * out and counted in *skipped_r. */
int hov_maildir_messages(const char *folder, GPtrArray **files_r, gint64 *skipped_r,
                         char **error_r);
void hov_mfile_free(gpointer f);
/* Split a message file name into base and flags (each g_free'd). */
void hov_mfile_split(const char *name, char **base_r, char **flags_r);

/* ---- writing ------------------------------------------------------------------ */

struct hov_owner {
    uid_t uid;
    gid_t gid;
    mode_t dir_mode;            /* of the Maildir root */
    mode_t file_mode;           /* dir_mode without the x bits */
};

/* Owner and modes of the Maildir at root; a root that is missing or not a
 * directory is an error naming it. */
int hov_owner_of(const char *root, struct hov_owner *o, char **error_r);

/* Make path (mkdir, or as it is if there) and give it to o. */
int hov_mkdir_owned(const char *path, const struct hov_owner *o, char **error_r);
/* Write a file atomically (temp file beside it, fsync, rename) owned by o:
 * a new file with o's file mode, an existing one keeps its owner and mode. */
int hov_write_owned(const char *path, const void *data, size_t len,
                    const struct hov_owner *o, char **error_r);

/* A folder being filled. */
struct hov_dest;

/* Open (create: the .NAME directory, cur/ new/ tmp/, maildirfolder) the
 * folder storage of the Maildir at root; what it already holds from an
 * earlier run is looked up by hash. Leftover temp files of ours in tmp/
 * are removed. keywords: a dovecot-keywords file to copy in if the folder
 * has none (or NULL). */
int hov_dest_open(const char *root, const char *storage, const struct hov_owner *o,
                  const char *keywords, struct hov_dest **d_r, char **error_r);
/* Is a message with this SHA-256 there (whole)? */
int hov_dest_has(struct hov_dest *d, const unsigned char sha[CUS_SHA256_LEN]);
/* Put one message: len bytes of data, or (data NULL) len bytes read from
 * fd; received time mtime; flags (letters, or "") in cur/, or in new/.
 * 1 written, 0 already there. */
int hov_dest_put(struct hov_dest *d, const void *data, int fd, size_t len,
                 const unsigned char sha[CUS_SHA256_LEN], gint64 mtime, const char *flags,
                 int to_new, char **error_r);
/* Make what was put durable (syncfs, then the directories). */
int hov_dest_sync(struct hov_dest *d, char **error_r);
/* Start writing each message out to disk as soon as it is put (for a
 * caller that syncs at the end). */
void hov_dest_writeback(struct hov_dest *d, int on);
const char *hov_dest_path(struct hov_dest *d);
void hov_dest_close(struct hov_dest **d);

/* ---- subscriptions -------------------------------------------------------------- */

/* Subscribe storage names in ROOT/subscriptions, keeping the format the
 * file has: Dovecot's version 1 (a name a line) or version 2 ("V\t2\n\n",
 * then each name's levels joined by TAB, \001-escaped); a new file is
 * version 2, as Dovecot 2.3 writes it. Names already there are not added
 * again. *added_r: how many were added. */
int hov_subs_add(const char *root, GPtrArray *names, const struct hov_owner *o,
                 int *added_r, char **error_r);
/* The storage names subscribed in ROOT/subscriptions (none if missing). */
int hov_subs_read(const char *root, GPtrArray **names_r, char **error_r);
/* The same on a file's text (up to a NUL): GPtrArray of char *. */
GPtrArray *hov_subs_parse(const char *text);
/* The text with names appended that it does not subscribe yet (compared
 * as storage names, whichever way a line is written), each in the text's
 * format (new_file: an empty text that is no file yet, version 2);
 * *added_r how many (g_free). */
char *hov_subs_merge(const char *text, int new_file, GPtrArray *names, int *added_r);

#endif
