/*
 * handover-contacts.h - a leaver's correspondents: who, how to reach them, threads
 *
 * Every message of the leaver (from the mailbox and from the archive) is
 * reduced to a struct hov_msginfo. Contacts are the external addresses in
 * them -- not an address of the company's domains, not a registered
 * personal address of an employee -- each with the name it was written
 * with most often (decoded, any charset), the phone numbers found in the
 * signatures of its own messages, its organisation (the customer the
 * directory says it belongs to, else its domain), first and last contact
 * and how many messages went each way.
 *
 * Output: vCard 4.0 (RFC 6350: UTF-8, CRLF, text values escaped -- '\\'
 * '\,' '\;' '\n' -- and lines folded at 75 octets, never inside a UTF-8
 * character) and CSV (RFC 4180). Both are deterministic: the same contacts
 * give the same bytes.
 */
#ifndef CUSTOS_HANDOVER_CONTACTS_H
#define CUSTOS_HANDOVER_CONTACTS_H

#include <glib.h>
#include "custos/directory.h"
#include "custos/msg.h"

/* One address of a message. */
struct hov_addr {
    char *name;                 /* decoded display name, "" if none */
    char *addr;                 /* lower case */
};

/* What one message says of its correspondents. */
struct hov_msginfo {
    char *message_id;           /* without <>, "" if none */
    gint64 date;                /* Date:, else the time received; 0 unknown */
    struct hov_addr from;       /* addr "" if none */
    GPtrArray *rcpts;           /* struct hov_addr *: To and Cc */
    char *subject;              /* decoded */
    char *thread;               /* thread key: the subject without Re:/Fwd:/回复：... */
};

/* The headers of raw (only those are read: at most 256 KiB of them). */
int hov_msginfo_from_raw(const char *raw, size_t len, const struct msg_limits *lim,
                         struct hov_msginfo **mi_r, char **error_r);
void hov_msginfo_free(gpointer mi);
/* A subject without its reply and forward prefixes, case folded. */
char *hov_thread_key(const char *subject);

/* Phone numbers in the signature of a message body (the last lines
 * before any quoted text, after "-- " if there is one), normalised as the
 * directory stores them (dir_norm_phone); fax lines are left out. */
GPtrArray *hov_sig_phones(const char *body);

struct hov_contact {
    char *addr;                 /* lower case */
    char *name;                 /* the name most used, "" if none */
    char *org;                  /* customer name, else the domain */
    char *customer;             /* the customer, or "" */
    GPtrArray *phones;          /* char *, sorted */
    gint64 first, last;         /* dates of first and last message, 0 unknown */
    gint64 n_from, n_to;        /* messages from them to the leaver / to them */
};

struct hov_contacts;

/* A collection for the leaver (and the employee addresses that count as
 * him: work address and registered personal ones, in e). d: for what is
 * internal, whose personal address something is, and customers. */
struct hov_contacts *hov_contacts_new(struct dir *d, const struct dir_employee *e);
/* Count one message (each message once). */
int hov_contacts_add(struct hov_contacts *cs, const struct hov_msginfo *mi, char **error_r);
/* Is addr one of the external correspondents? */
int hov_contacts_is_external(struct hov_contacts *cs, const char *addr);
/* Note phones found in a message from addr. */
void hov_contacts_add_phones(struct hov_contacts *cs, const char *addr, GPtrArray *phones);
/* Every contact, sorted by organisation, then address (borrowed: owned by
 * cs). */
GPtrArray *hov_contacts_list(struct hov_contacts *cs);
void hov_contacts_free(struct hov_contacts **cs);

/* ---- output ------------------------------------------------------------------ */

/* Append s escaped as an RFC 6350 text value ('\' ',' newline), or as a
 * component of a compound value such as ORG (';' too). */
void hov_vcard_escape(GString *out, const char *s, int component);
/* Append one content line, folded at 75 octets (CRLF + space), never
 * inside a UTF-8 character, ending in CRLF. */
void hov_vcard_line(GString *out, const char *line);
/* One vCard 4.0 for c. */
void hov_vcard_append(GString *out, const struct hov_contact *c);
/* Append an RFC 4180 field (quoted when it needs it). */
void hov_csv_field(GString *out, const char *s, int last);
/* All contacts as vCard 4.0 / as CSV with a header row. */
GString *hov_contacts_vcf(GPtrArray *contacts);
GString *hov_contacts_csv(GPtrArray *contacts);

#endif
