/*
 * handover-private.h - what the parts of custos-handover share
 */
#ifndef CUSTOS_HANDOVER_PRIVATE_H
#define CUSTOS_HANDOVER_PRIVATE_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include "custos/archive.h"
#include "custos/directory.h"
#include "custos/handover.h"
#include "custos/handover-contacts.h"
#include "custos/handover-maildir.h"

#define HOV_INCIDENT_DAYS 90
#define HOV_PHONE_SOURCES 3         /* newest messages of a contact read for phones */

struct hov_split {
    char *key;                      /* customer name or domain, as given */
    char *to;                       /* successor for it */
};

struct hov_plan {
    char *id, *dir;
    JsonNode *root;                 /* plan.json */
    gint64 created;
    char *leaver, *successor;       /* addresses */
    char *effective, *notice;       /* YYYY-MM-DD */
    char *postfix_map;              /* or NULL */
    char *postfix_map_type;         /* hash, lmdb, ..., texthash */
    int force;
    GPtrArray *splits;              /* struct hov_split * */
};

/* ---- the journal ---------------------------------------------------------------- */

struct hov_jentry {
    gint64 time;
    char *step, *key;               /* key: "" or e.g. the folder */
    JsonNode *data;
};

struct hov_journal {
    char *path;
    GPtrArray *entries;             /* struct hov_jentry * */
};

/* Load DIR/journal (a last line cut short by a crash is dropped). */
int hov_journal_load(const char *dir, struct hov_journal **j_r, char **error_r);
/* Append one entry (data taken; NULL: {}) and fsync. */
int hov_journal_add(struct hov_journal *j, const char *step, const char *key, JsonNode *data,
                    char **error_r);
const struct hov_jentry *hov_journal_find(const struct hov_journal *j, const char *step,
                                          const char *key);
void hov_journal_free(struct hov_journal **j);

/* Test hook: CUSTOS_HANDOVER_CRASH=NAME[:N] kills the process (SIGKILL)
 * the Nth time (default 1st) it passes point NAME. */
void hov_crash_point(const char *name);
/* Apply's archive batch starts (1) or is done (0), for hov_crash_point. */
void hov_batch_busy(int busy);

/* ---- the survey: what the mailbox, the archive and the directory say ---------------- */

struct hov_fstat {
    char *storage, *display;        /* in the leaver's mailbox */
    char *dest;                     /* storage name in the successor's */
    char *path;
    gint64 messages, unique, dups, skipped, bytes, copied, present;
};

struct hov_thread {
    char *customer, *subject, *from;
    gint64 date;
    int from_customer;              /* the newest message came from the customer */
    gint64 messages;
};

struct hov_copy;                    /* apply's state, when the survey copies */

struct hov_survey {
    struct hov_plan *plan;
    const struct cfg *cfg;
    struct arc *arc;                /* a reader */
    struct dir *dir;
    struct dir_employee *leaver;
    char *src_root, *dst_root;      /* the two Maildirs */
    char *prefix;                   /* storage name FOLDER.<leaver> */
    GPtrArray *folders;             /* struct hov_fstat * */
    GHashTable *mids, *shas;        /* of the mailbox: Message-IDs, SHA-256 hex */
    GStringChunk *keys;             /* their keys */
    GArray *recovered;              /* gint64 archive ids */
    gint64 archive_hits;
    struct hov_contacts *contacts;
    GHashTable *cust_of;            /* addr -> customer name ("" none) */
    GHashTable *threads;            /* "customer\tthread" -> struct hov_thread * */
    GHashTable *cust_last;          /* customer -> struct hov_thread * (newest) */
    GHashTable *phone_src;          /* addr -> GPtrArray of source (newest first) */
    GHashTable *incident_ids;       /* Message-IDs seen as incidents */
    JsonArray *incidents;
    gint64 incident_since;
    GPtrArray *customers;           /* struct dir_customer *: the leaver's */
    const struct msg_limits *lim;
    struct hov_copy *copy;          /* NULL: look only */
    const struct hov_journal *journal;
};

/* Read the mailbox (copying it if s->copy), then the archive. */
int hov_survey_run(struct hov_survey *s, char **error_r);
/* Phones from signatures: read the newest messages of each contact. */
int hov_survey_phones(struct hov_survey *s, char **error_r);
void hov_survey_clear(struct hov_survey *s);
/* Customers' last contact and open threads, incidents: JSON. */
JsonNode *hov_survey_analysis(struct hov_survey *s);

/* The copy callbacks apply gives the survey. */
int hov_copy_folder_begin(struct hov_copy *c, struct hov_fstat *f, int *skip_r,
                          char **error_r);
int hov_copy_message(struct hov_copy *c, struct hov_fstat *f, const void *data, int fd,
                     size_t len, const unsigned char sha[CUS_SHA256_LEN], gint64 mtime,
                     const char *flags, int in_new, char **error_r);
int hov_copy_folder_end(struct hov_copy *c, struct hov_fstat *f, char **error_r);

/* ---- checks (plan.c) ------------------------------------------------------------------- */

/* Leaver and successor: both employees, not the same, the successor not
 * departed, the leaver not handed to someone else (unless force). */
int hov_check_people(struct dir *d, const char *leaver, const char *successor, int force,
                     struct dir_employee **leaver_r, struct dir_employee **successor_r,
                     char **error_r);
/* Other plans of the leaver: one applied with someone else (unless
 * force), or one half applied, is an error. */
int hov_check_other_plans(const struct cfg *cfg, const char *leaver, const char *successor,
                          const char *self_id, int force, char **error_r);
/* A Maildir that is there and can be read: HOV_OK or HOV_NO_INPUT. */
int hov_check_mailbox(const char *who, const char *path, char **error_r);
/* The leaver's customers, copies with owner set to the new owner (splits:
 * struct hov_split *; one matching no customer is HOV_BAD_INPUT). */
int hov_customers(struct dir *d, const char *leaver, const char *successor, GPtrArray *splits,
                  GPtrArray **customers_r, char **error_r);
struct dir_customer *hov_customer_copy(const struct dir_customer *c);
void hov_customer_free(gpointer c);

/* An open session: the archive (a reader, with this command's audit
 * entry), the directory on it, both people and both Maildirs. */
struct hov_session {
    const struct cfg *cfg;
    struct arc *arc;
    struct dir *dir;
    gint64 audit_id;
    struct dir_employee *leaver, *successor;
    char *src_root, *dst_root;      /* the Maildirs */
    char *prefix;                   /* storage name FOLDER.<leaver> */
    struct hov_owner owner;         /* of the successor's Maildir */
};

int hov_session_open(const struct cfg *cfg, const char *leaver, const char *successor,
                     int force, const char *audit_args, struct hov_session *ss,
                     char **error_r);
/* Finish the audit entry (status as an exit status) and close. */
void hov_session_close(struct hov_session *ss, int status, gint64 results, const char *detail);
void hov_survey_setup(struct hov_session *ss, struct hov_plan *p, struct hov_survey *s);
/* The preview of what apply would do (plan.json "preview"). */
int hov_preview_build(struct hov_session *ss, struct hov_plan *p, JsonNode **pv_r,
                      char **error_r);
void hov_preview_text(JsonObject *plan, JsonObject *preview, GString *out);
JsonNode *hov_forwards_json(GPtrArray *forwards);
JsonNode *hov_crm_rows(GPtrArray *customers, struct hov_survey *s, const char *leaver);
char *hov_audit_args(const char *verb, const struct hov_opts *o, const char *id);

/* ---- Postfix maps (postmap.c) ------------------------------------------------------------ */

/* Postfix's default_database_type ([handover] postfix_config), else "hash". */
char *hov_map_default_type(const struct cfg *cfg);
/* --postfix-map [TYPE:]FILE: the type (hash, btree, lmdb, cdb, dbm, sdbm,
 * texthash; none given: the default) and the absolute path. */
int hov_map_spec(const struct cfg *cfg, const char *arg, char **type_r, char **path_r,
                 char **error_r);
/* Build the map at path as type with prog (postmap or postalias): 0 built,
 * or nothing to build (texthash); 1 not possible on this host; -1 the tool
 * failed (error_r). *note_r says which and the next step (g_free). */
int hov_map_build(const struct cfg *cfg, const char *prog, const char *type, const char *path,
                  char **note_r, char **error_r);
/* The type of the compiled map beside path (FILE.db, .lmdb, .cdb, .pag),
 * or NULL if there is none. */
char *hov_map_built_type(const struct cfg *cfg, const char *path);

/* ---- shared helpers -------------------------------------------------------------------- */

/* Compare two elements of a GPtrArray of strings (for g_ptr_array_sort). */
gint hov_strptr_cmp(gconstpointer a, gconstpointer b);
/* The local part of an address (g_free). */
char *hov_local_part(const char *addr);
/* YYYY-MM-DD of unix time t (UTC), into buf (>= 11 bytes). */
void hov_day(gint64 t, char *buf, size_t size);
/* Midnight UTC of YYYY-MM-DD, or -1. */
gint64 hov_day_parse(const char *day);
/* Save a JSON node to path atomically (0600). */
int hov_json_save(const char *path, JsonNode *node, char **error_r);
int hov_json_load(const char *path, JsonNode **node_r, char **error_r);
/* Run fn with a writer of the archive open (waiting for the lock), then
 * close it. */
typedef int hov_writer_fn(struct arc *arc, void *ctx, char **error_r);
int hov_with_writer(const struct cfg *cfg, hov_writer_fn *fn, void *ctx, char **error_r);

/* The webmail list if the file is there, else NULL (nothing is webmail). */
const char *hov_webmail_path(const struct cfg *cfg);

/* Notices: the messages ([handover] notices), as JSON, and sending them. */
JsonNode *hov_notices_plan(const struct cfg *cfg, struct hov_survey *s, char **error_r);
int hov_notices_send(const struct cfg *cfg, struct hov_plan *p, struct hov_journal *j,
                     JsonNode *plan, JsonNode **result_r, char **error_r);

#endif
