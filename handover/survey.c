/*
 * survey.c - what the leaver's mailbox, the archive and the directory say
 *
 * One pass over the mailbox reads every message once: its SHA-256 (for
 * duplicates and for what the archive still has), its headers (contacts,
 * threads), and -- when apply gives a copy context -- writes it to the
 * successor's Maildir from the same buffer. Then one search of the archive
 * (participant:LEAVER) finds what the mailbox lacks: a message counts as
 * in the mailbox when its Message-ID, or (without one) its SHA-256, is
 * there; of several archived copies of one Message-ID (sent and received
 * bytes differ) one is recovered.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/log.h"
#include "handover-private.h"

#define SMALL_MSG (1024 * 1024)     /* read whole; larger ones stream */
#define HDR_READ (256 * 1024)

static void fstat_free(gpointer p)
{
    struct hov_fstat *f = p;

    g_free(f->storage);
    g_free(f->display);
    g_free(f->dest);
    g_free(f->path);
    g_free(f);
}

static void thread_free(gpointer p)
{
    struct hov_thread *t = p;

    g_free(t->customer);
    g_free(t->subject);
    g_free(t->from);
    g_free(t);
}

struct psrc {
    gint64 date;
    char *src;                      /* "m:PATH" or "a:ID" */
};

static void psrc_list_free(gpointer p)
{
    GPtrArray *a = p;

    for (guint i = 0; i < a->len; i++) {
        struct psrc *s = a->pdata[i];
        g_free(s->src);
        g_free(s);
    }
    g_ptr_array_free(a, TRUE);
}

void hov_survey_clear(struct hov_survey *s)
{
    if (s->folders != NULL)
        g_ptr_array_free(s->folders, TRUE);
    if (s->mids != NULL)
        g_hash_table_destroy(s->mids);
    if (s->shas != NULL)
        g_hash_table_destroy(s->shas);
    if (s->recovered != NULL)
        g_array_free(s->recovered, TRUE);
    hov_contacts_free(&s->contacts);
    if (s->cust_of != NULL)
        g_hash_table_destroy(s->cust_of);
    if (s->threads != NULL)
        g_hash_table_destroy(s->threads);
    if (s->cust_last != NULL)
        g_hash_table_destroy(s->cust_last);
    if (s->phone_src != NULL)
        g_hash_table_destroy(s->phone_src);
    if (s->incident_ids != NULL)
        g_hash_table_destroy(s->incident_ids);
    if (s->incidents != NULL)
        json_array_unref(s->incidents);
    s->folders = NULL;
    s->mids = s->shas = s->cust_of = s->threads = s->cust_last = s->phone_src = NULL;
    s->incident_ids = NULL;
    s->recovered = NULL;
    s->incidents = NULL;
}

static void survey_init(struct hov_survey *s)
{
    s->folders = g_ptr_array_new_with_free_func(fstat_free);
    s->mids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    s->shas = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    s->recovered = g_array_new(FALSE, FALSE, sizeof(gint64));
    s->contacts = hov_contacts_new(s->dir, s->leaver);
    s->cust_of = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    s->threads = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, thread_free);
    s->cust_last = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, thread_free);
    s->phone_src = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, psrc_list_free);
    s->incident_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    s->incidents = json_array_new();
}

/* ---- one message's part in contacts, threads, incidents ------------------------------ */

static const char *customer_of(struct hov_survey *s, const char *addr)
{
    const char *c = g_hash_table_lookup(s->cust_of, addr);
    struct dir_customer *cu = NULL;

    if (c != NULL)
        return c;
    if (hov_contacts_is_external(s->contacts, addr) &&
        dir_customer_by_addr(s->dir, addr, &cu, NULL) == 1) {
        g_hash_table_insert(s->cust_of, g_strdup(addr), g_strdup(cu->name));
        dir_customer_free(&cu);
    } else {
        g_hash_table_insert(s->cust_of, g_strdup(addr), g_strdup(""));
    }
    return g_hash_table_lookup(s->cust_of, addr);
}

static int is_self(struct hov_survey *s, const char *addr)
{
    if (strcmp(addr, s->leaver->address) == 0)
        return 1;
    for (guint i = 0; i < s->leaver->personal->len; i++)
        if (strcmp(addr, s->leaver->personal->pdata[i]) == 0)
            return 1;
    return 0;
}

static void thread_note(struct hov_survey *s, const struct hov_msginfo *mi)
{
    GHashTable *done = g_hash_table_new(g_str_hash, g_str_equal);
    const char *from_cust = *mi->from.addr != '\0' ? customer_of(s, mi->from.addr) : "";

    for (guint i = 0; i <= mi->rcpts->len; i++) {
        const char *addr = i == 0 ? mi->from.addr
                                  : ((const struct hov_addr *)mi->rcpts->pdata[i - 1])->addr;
        const char *c = *addr != '\0' ? customer_of(s, addr) : "";
        struct hov_thread *t, *last;
        char *key;

        if (*c == '\0' || g_hash_table_contains(done, c))
            continue;
        g_hash_table_add(done, (gpointer)c);
        key = g_strconcat(c, "\t", mi->thread, NULL);
        t = g_hash_table_lookup(s->threads, key);
        if (t == NULL) {
            t = g_new0(struct hov_thread, 1);
            t->customer = g_strdup(c);
            t->date = -1;
            g_hash_table_insert(s->threads, key, t);
        } else {
            g_free(key);
        }
        t->messages++;
        if (mi->date >= t->date) {
            t->date = mi->date;
            g_free(t->subject);
            g_free(t->from);
            t->subject = g_strdup(mi->subject);
            t->from = g_strdup(mi->from.addr);
            t->from_customer = strcmp(from_cust, c) == 0 && !is_self(s, mi->from.addr);
        }
        last = g_hash_table_lookup(s->cust_last, c);
        if (last == NULL) {
            last = g_new0(struct hov_thread, 1);
            last->customer = g_strdup(c);
            last->date = -1;
            g_hash_table_insert(s->cust_last, g_strdup(c), last);
        }
        last->messages++;
        if (mi->date > last->date) {
            last->date = mi->date;
            g_free(last->subject);
            last->subject = g_strdup(mi->subject);
        }
    }
    g_hash_table_destroy(done);
}

static void phone_note(struct hov_survey *s, const struct hov_msginfo *mi, const char *src)
{
    GPtrArray *a;
    struct psrc *p;

    if (*mi->from.addr == '\0' || !hov_contacts_is_external(s->contacts, mi->from.addr))
        return;
    a = g_hash_table_lookup(s->phone_src, mi->from.addr);
    if (a == NULL) {
        a = g_ptr_array_new();
        g_hash_table_insert(s->phone_src, g_strdup(mi->from.addr), a);
    }
    if (a->len >= HOV_PHONE_SOURCES &&
        ((struct psrc *)a->pdata[a->len - 1])->date >= mi->date)
        return;
    p = g_new0(struct psrc, 1);
    p->date = mi->date;
    p->src = g_strdup(src);
    /* keep the newest, newest first */
    {
        guint i = 0;
        while (i < a->len && ((struct psrc *)a->pdata[i])->date >= mi->date)
            i++;
        g_ptr_array_insert(a, (gint)i, p);
    }
    if (a->len > HOV_PHONE_SOURCES) {
        struct psrc *old = g_ptr_array_remove_index(a, a->len - 1);
        g_free(old->src);
        g_free(old);
    }
}

/* An outgoing message to personal webmail or the leaver's own private
 * address within the incident window. */
static void incident_note(struct hov_survey *s, const struct hov_msginfo *mi, GPtrArray *bcc,
                          gint64 n_att, const char *where)
{
    GString *to = g_string_new(NULL);
    JsonObject *o;

    if (!is_self(s, mi->from.addr) || mi->date < s->incident_since)
        goto out;
    for (guint i = 0; i < mi->rcpts->len + (bcc != NULL ? bcc->len : 0); i++) {
        const char *a = i < mi->rcpts->len ? ((const struct hov_addr *)mi->rcpts->pdata[i])->addr
                                           : bcc->pdata[i - mi->rcpts->len];
        if ((dir_is_webmail(s->dir, a) || is_self(s, a)) && strcmp(a, s->leaver->address) != 0) {
            if (to->len > 0)
                g_string_append(to, ", ");
            g_string_append(to, a);
        }
    }
    if (to->len == 0)
        goto out;
    if (*mi->message_id != '\0') {
        if (g_hash_table_contains(s->incident_ids, mi->message_id))
            goto out;
        g_hash_table_add(s->incident_ids, g_strdup(mi->message_id));
    }
    o = json_object_new();
    {
        char day[16];
        hov_day(mi->date, day, sizeof(day));
        json_object_set_string_member(o, "date", day);
    }
    json_object_set_string_member(o, "subject", mi->subject);
    json_object_set_string_member(o, "to", to->str);
    json_object_set_int_member(o, "attachments", n_att);
    json_object_set_string_member(o, "where", where);
    json_object_set_string_member(o, "rule", "sent to personal webmail or own private address");
    json_array_add_object_element(s->incidents, o);
out:
    g_string_free(to, TRUE);
}

/* ---- the mailbox ------------------------------------------------------------------- */

static int read_all(int fd, char *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* SHA-256 of a large file, streamed; its first bytes into head. */
static int hash_stream(int fd, size_t len, unsigned char sha[CUS_SHA256_LEN], char *head,
                       size_t head_len)
{
    GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
    char buf[65536];
    size_t done = 0, hl = 0;
    gsize dl = CUS_SHA256_LEN;

    while (done < len) {
        ssize_t n = pread(fd, buf, MIN(sizeof(buf), len - done), (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            g_checksum_free(ck);
            return -1;
        }
        g_checksum_update(ck, (const guchar *)buf, (gssize)n);
        if (hl < head_len) {
            size_t c = MIN(head_len - hl, (size_t)n);
            memcpy(head + hl, buf, c);
            hl += c;
        }
        done += (size_t)n;
    }
    g_checksum_get_digest(ck, sha, &dl);
    g_checksum_free(ck);
    return 0;
}

static int one_message(struct hov_survey *s, struct hov_fstat *f, GHashTable *folder_shas,
                       const struct hov_mfile *m, char **buf, size_t *buf_size, int copy,
                       char **error_r)
{
    char *path = g_build_filename(f->path, m->in_new ? "new" : "cur", m->name, NULL);
    unsigned char sha[CUS_SHA256_LEN];
    char hex[CUS_SHA256_HEX];
    struct hov_msginfo *mi = NULL;
    struct stat st;
    size_t len, hlen;
    int fd, ret = -1, small;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd < 0 && errno == ENOENT) {     /* expunged meanwhile */
            f->skipped++;
            ret = 0;
            goto out;
        }
        cus_error_errno(error_r, "mail file %s", path);
        goto out;
    }
    len = (size_t)st.st_size;
    small = len <= SMALL_MSG;
    hlen = small ? len : HDR_READ;
    if (*buf_size < hlen + 1) {
        *buf_size = MAX(hlen + 1, 65536);
        *buf = g_realloc(*buf, *buf_size);
    }
    if (small) {
        if (read_all(fd, *buf, len) < 0) {
            cus_error_errno(error_r, "read(%s)", path);
            goto out;
        }
        cus_sha256(*buf, len, sha);
    } else if (hash_stream(fd, len, sha, *buf, hlen) < 0) {
        cus_error_errno(error_r, "read(%s)", path);
        goto out;
    }
    cus_hex(sha, CUS_SHA256_LEN, hex);
    f->messages++;
    f->bytes += (gint64)len;
    if (g_hash_table_contains(folder_shas, hex)) {
        f->dups++;                          /* the same message twice in a folder */
        ret = 0;
        goto out;
    }
    g_hash_table_add(folder_shas, g_strdup(hex));
    f->unique++;
    if (copy) {
        int r = hov_copy_message(s->copy, f, small ? *buf : NULL, fd, len, sha,
                                 (gint64)st.st_mtime, m->flags, m->in_new, error_r);
        if (r < 0)
            goto out;
    }
    if (g_hash_table_contains(s->shas, hex)) {   /* counted already (another folder) */
        ret = 0;
        goto out;
    }
    g_hash_table_add(s->shas, g_strdup(hex));
    if (hov_msginfo_from_raw(*buf, hlen, s->lim, &mi, error_r) < 0) {
        char *e = *error_r;
        *error_r = g_strdup_printf("%s: %s", path, e);
        g_free(e);
        goto out;
    }
    if (mi->date <= 0)
        mi->date = (gint64)st.st_mtime;
    if (*mi->message_id != '\0')
        g_hash_table_add(s->mids, g_strdup(mi->message_id));
    hov_contacts_add(s->contacts, mi, NULL);
    thread_note(s, mi);
    {
        char *src = g_strconcat("m:", path, NULL);
        phone_note(s, mi, src);
        g_free(src);
    }
    incident_note(s, mi, NULL, -1, "mailbox");
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    hov_msginfo_free(mi);
    g_free(path);
    return ret;
}

static int survey_mailbox(struct hov_survey *s, char **error_r)
{
    GPtrArray *folders = NULL;
    char *buf = NULL;
    size_t buf_size = 0;
    int ret = -1;

    if (hov_maildir_folders(s->src_root, &folders, error_r) < 0)
        return -1;
    for (guint i = 0; i < folders->len; i++) {
        const struct hov_folder *hf = folders->pdata[i];
        struct hov_fstat *f = g_new0(struct hov_fstat, 1);
        GHashTable *folder_shas = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        GPtrArray *files = NULL;
        int skip = 0, copy;

        f->storage = g_strdup(hf->storage);
        f->display = g_strdup(hf->display);
        f->path = g_strdup(hf->path);
        f->dest = g_strconcat(s->prefix, ".", *hf->storage != '\0' ? hf->storage : "INBOX",
                              NULL);
        g_ptr_array_add(s->folders, f);
        if (hov_maildir_messages(hf->path, &files, &f->skipped, error_r) < 0) {
            g_hash_table_destroy(folder_shas);
            goto out;
        }
        if (s->copy != NULL && hov_copy_folder_begin(s->copy, f, &skip, error_r) < 0) {
            g_ptr_array_free(files, TRUE);
            g_hash_table_destroy(folder_shas);
            goto out;
        }
        copy = s->copy != NULL && !skip;
        for (guint k = 0; k < files->len; k++)
            if (one_message(s, f, folder_shas, files->pdata[k], &buf, &buf_size, copy,
                            error_r) < 0) {
                g_ptr_array_free(files, TRUE);
                g_hash_table_destroy(folder_shas);
                goto out;
            }
        g_ptr_array_free(files, TRUE);
        g_hash_table_destroy(folder_shas);
        if (copy && hov_copy_folder_end(s->copy, f, error_r) < 0)
            goto out;
    }
    ret = 0;
out:
    g_free(buf);
    g_ptr_array_free(folders, TRUE);
    return ret;
}

/* ---- the archive -------------------------------------------------------------------- */

/* "Name <addr>" or "addr" (as a hit lists them) into a. */
static void hit_addr(const char *s, struct hov_addr *a)
{
    const char *lt = strrchr(s, '<');
    size_t n = strlen(s);

    if (lt != NULL && n > 0 && s[n - 1] == '>') {
        char *name = g_strndup(s, (gsize)(lt - s));
        a->name = g_strdup(g_strstrip(name));
        g_free(name);
        a->addr = g_utf8_strdown(lt + 1, (gssize)(n - 1 - (size_t)(lt + 1 - s)));
    } else {
        a->name = g_strdup("");
        a->addr = g_utf8_strdown(s, -1);
    }
}

static void addr_free(gpointer p)
{
    struct hov_addr *a = p;

    g_free(a->name);
    g_free(a->addr);
    g_free(a);
}

struct hits {
    struct hov_survey *s;
    GHashTable *rec_mids;
};

static int on_hit(void *ctx, const struct idx_hit *h)
{
    struct hits *x = ctx;
    struct hov_survey *s = x->s;
    struct hov_msginfo mi = { 0 };
    char src[40];

    s->archive_hits++;
    mi.message_id = h->message_id != NULL ? h->message_id : "";
    mi.date = h->date;
    mi.subject = h->subject != NULL ? h->subject : "";
    mi.thread = hov_thread_key(mi.subject);
    mi.rcpts = g_ptr_array_new_with_free_func(addr_free);
    if (h->from->len > 0)
        hit_addr(h->from->pdata[0], &mi.from);
    else {
        mi.from.name = g_strdup("");
        mi.from.addr = g_strdup("");
    }
    for (guint i = 0; i < h->to->len + h->cc->len; i++) {
        struct hov_addr *a = g_new0(struct hov_addr, 1);
        hit_addr(i < h->to->len ? h->to->pdata[i] : h->cc->pdata[i - h->to->len], a);
        g_ptr_array_add(mi.rcpts, a);
    }
    incident_note(s, &mi, h->bcc, h->n_att, "archive");
    if ((*mi.message_id != '\0' && g_hash_table_contains(s->mids, mi.message_id)) ||
        g_hash_table_contains(s->shas, h->sha256))
        goto out;                           /* the mailbox has it */
    if (*mi.message_id != '\0') {
        if (g_hash_table_contains(x->rec_mids, mi.message_id))
            goto out;                       /* another copy of one recovered */
        g_hash_table_add(x->rec_mids, g_strdup(mi.message_id));
    }
    g_array_append_val(s->recovered, h->id);
    hov_contacts_add(s->contacts, &mi, NULL);
    thread_note(s, &mi);
    g_snprintf(src, sizeof(src), "a:%" G_GINT64_FORMAT, h->id);
    phone_note(s, &mi, src);
out:
    g_free(mi.thread);
    g_free(mi.from.name);
    g_free(mi.from.addr);
    g_ptr_array_free(mi.rcpts, TRUE);
    return 0;
}

static int survey_archive(struct hov_survey *s, char **error_r)
{
    struct hits x = { s, g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL) };
    char *q = g_strdup_printf("participant:\"%s\"", s->leaver->address);
    int ret = idx_search(arc_index(s->arc), q, -1, 0, NULL, on_hit, &x, error_r);

    g_free(q);
    g_hash_table_destroy(x.rec_mids);
    return ret;
}

int hov_survey_run(struct hov_survey *s, char **error_r)
{
    survey_init(s);
    if (survey_mailbox(s, error_r) < 0)
        return -1;
    return survey_archive(s, error_r);
}

/* ---- phones ---------------------------------------------------------------------------- */

static int source_raw(struct hov_survey *s, const char *src, GBytes **raw_r, char **error_r)
{
    if (g_str_has_prefix(src, "a:"))
        return arc_get_raw(s->arc, g_ascii_strtoll(src + 2, NULL, 10), raw_r, error_r);
    return cus_read_file(src + 2, s->lim->message_size, raw_r, error_r);
}

int hov_survey_phones(struct hov_survey *s, char **error_r)
{
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, s->phone_src);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        GPtrArray *a = v;

        for (guint i = 0; i < a->len; i++) {
            const struct psrc *p = a->pdata[i];
            GBytes *raw = NULL;
            struct msg *m = NULL;
            char *err = NULL;
            gsize len;
            const char *data;

            if (source_raw(s, p->src, &raw, &err) < 0) {
                /* a message gone meanwhile has no phones to give */
                log_debug("phones: %s: %s", p->src, err);
                g_free(err);
                continue;
            }
            data = g_bytes_get_data(raw, &len);
            if (msg_parse(data, len, s->lim, &m, error_r) < 0) {
                g_bytes_unref(raw);
                return -1;
            }
            {
                GPtrArray *ph = hov_sig_phones(m->body->str);
                hov_contacts_add_phones(s->contacts, k, ph);
                g_ptr_array_free(ph, TRUE);
            }
            msg_free(&m);
            g_bytes_unref(raw);
        }
    }
    return 0;
}

/* ---- analysis --------------------------------------------------------------------------- */

static gint thread_cmp(gconstpointer a, gconstpointer b)
{
    const struct hov_thread *x = *(const struct hov_thread *const *)a;
    const struct hov_thread *y = *(const struct hov_thread *const *)b;

    return x->date > y->date ? -1 : x->date < y->date ? 1 : g_strcmp0(x->subject, y->subject);
}

static void add_customer(JsonArray *arr, struct hov_survey *s, const char *name,
                         const char *owner, GPtrArray *threads)
{
    JsonObject *o = json_object_new();
    JsonArray *open = json_array_new();
    const struct hov_thread *last = g_hash_table_lookup(s->cust_last, name);
    char day[16];

    json_object_set_string_member(o, "customer", name);
    json_object_set_string_member(o, "owner", owner);
    if (last != NULL && last->date > 0) {
        hov_day(last->date, day, sizeof(day));
        json_object_set_string_member(o, "last_contact", day);
        json_object_set_string_member(o, "last_subject", last->subject);
        json_object_set_int_member(o, "messages", last->messages);
    } else {
        json_object_set_string_member(o, "last_contact", "");
        json_object_set_string_member(o, "last_subject", "");
        json_object_set_int_member(o, "messages", 0);
    }
    for (guint i = 0; i < threads->len; i++) {
        const struct hov_thread *t = threads->pdata[i];
        JsonObject *to;

        if (strcmp(t->customer, name) != 0 || !t->from_customer)
            continue;
        to = json_object_new();
        hov_day(t->date, day, sizeof(day));
        json_object_set_string_member(to, "subject", t->subject);
        json_object_set_string_member(to, "date", t->date > 0 ? day : "");
        json_object_set_string_member(to, "from", t->from);
        json_object_set_int_member(to, "messages", t->messages);
        json_array_add_object_element(open, to);
    }
    json_object_set_array_member(o, "open_threads", open);
    json_array_add_object_element(arr, o);
}

JsonNode *hov_survey_analysis(struct hov_survey *s)
{
    JsonObject *root = json_object_new();
    JsonArray *owned = json_array_new(), *other = json_array_new();
    GPtrArray *threads = g_ptr_array_new();
    GHashTable *listed = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTableIter it;
    gpointer k, v;
    GPtrArray *names = g_ptr_array_new();
    JsonNode *node;

    g_hash_table_iter_init(&it, s->threads);
    while (g_hash_table_iter_next(&it, &k, &v))
        g_ptr_array_add(threads, v);
    g_ptr_array_sort(threads, thread_cmp);
    for (guint i = 0; s->customers != NULL && i < s->customers->len; i++) {
        const struct dir_customer *c = s->customers->pdata[i];
        add_customer(owned, s, c->name, c->owner, threads);
        g_hash_table_add(listed, c->name);
    }
    g_hash_table_iter_init(&it, s->cust_last);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (!g_hash_table_contains(listed, k))
            g_ptr_array_add(names, k);
    g_ptr_array_sort(names, hov_strptr_cmp);
    for (guint i = 0; i < names->len; i++) {
        struct dir_customer *cu = NULL;
        char *owner = NULL;
        if (dir_customer_by_name(s->dir, names->pdata[i], &cu, NULL) == 1) {
            owner = g_strdup(cu->owner);
            dir_customer_free(&cu);
        }
        add_customer(other, s, names->pdata[i], owner != NULL ? owner : "", threads);
        g_free(owner);
    }
    json_object_set_array_member(root, "customers", owned);
    json_object_set_array_member(root, "other_customers", other);
    json_object_set_array_member(root, "incidents", json_array_ref(s->incidents));
    {
        char day[16];
        hov_day(s->incident_since, day, sizeof(day));
        json_object_set_string_member(root, "incidents_since", day);
    }
    g_ptr_array_free(names, TRUE);
    g_ptr_array_free(threads, TRUE);
    g_hash_table_destroy(listed);
    node = json_node_alloc();
    json_node_init_object(node, root);
    json_object_unref(root);
    return node;
}
