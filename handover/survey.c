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
#include "custos/incident.h"
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
    if (s->keys != NULL)
        g_string_chunk_free(s->keys);
    s->keys = NULL;
    s->folders = NULL;
    s->mids = s->shas = s->cust_of = s->threads = s->cust_last = s->phone_src = NULL;
    s->incident_ids = NULL;
    s->recovered = NULL;
    s->incidents = NULL;
}

static void survey_init(struct hov_survey *s)
{
    s->folders = g_ptr_array_new_with_free_func(fstat_free);
    /* keys live in one string chunk: 100,000 of them are not 100,000 mallocs */
    s->keys = g_string_chunk_new(1 << 20);
    s->mids = g_hash_table_new(g_str_hash, g_str_equal);
    s->shas = g_hash_table_new(g_str_hash, g_str_equal);
    s->recovered = g_array_new(FALSE, FALSE, sizeof(gint64));
    s->contacts = hov_contacts_new(s->dir, s->leaver);
    s->cust_of = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    s->threads = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, thread_free);
    s->cust_last = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, thread_free);
    s->phone_src = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, psrc_list_free);
    s->incident_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    /* values: the incident's JSON object, borrowed from s->incidents */
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

/* src: "m:" or "a:" and the rest (joined only when it is kept). */
static void phone_note(struct hov_survey *s, const struct hov_msginfo *mi, const char *kind,
                       const char *rest)
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
    p->src = g_strconcat(kind, rest, NULL);
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
        JsonObject *seen = g_hash_table_lookup(s->incident_ids, mi->message_id);
        if (seen != NULL) {
            /* the archive's copy says more: its Bcc, its attachments */
            if (strcmp(where, "archive") == 0 &&
                strcmp(json_object_get_string_member(seen, "where"), "mailbox") == 0) {
                json_object_set_string_member(seen, "to", to->str);
                json_object_set_int_member(seen, "attachments", n_att);
                json_object_set_string_member(seen, "where", "mailbox and archive");
            }
            goto out;
        }
    }
    o = json_object_new();
    if (*mi->message_id != '\0')
        g_hash_table_insert(s->incident_ids, g_strdup(mi->message_id), o);
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

/* ---- the mailbox: read ahead in a thread, written in order ------------------------------ */

/*
 * A producer thread reads the folders in order -- each message opened,
 * read (small ones whole, large ones streamed: their hash and head), hashed
 * and its headers parsed -- while the calling thread takes the results in
 * the same order and does the rest: duplicates, the copy, contacts,
 * threads. At most PIPE_SLOTS messages (PIPE_BYTES bytes) are between the
 * two. The order, and so every result, is the same as one thread's.
 */
#define PIPE_SLOTS 512
#define PIPE_BYTES (64 << 20)
#define POOL_BUF (64 * 1024)                /* most messages fit: kept for reuse */

enum slot_kind { SLOT_BEGIN, SLOT_MSG, SLOT_END, SLOT_DONE, SLOT_ERR };

struct slot {
    enum slot_kind kind;
    const struct hov_folder *folder;    /* BEGIN, END */
    GPtrArray *files;                   /* BEGIN: the folder's messages (taken) */
    gint64 skipped;                     /* BEGIN */
    const struct hov_mfile *m;          /* MSG */
    char *path;
    char *buf;                          /* whole (small), else the head */
    size_t len, hlen;
    int fd;                             /* large ones: open for the copy */
    int gone;                           /* expunged meanwhile */
    int pooled;                         /* buf is a POOL_BUF buffer to reuse */
    unsigned char sha[CUS_SHA256_LEN];
    gint64 mtime;
    struct hov_msginfo *mi;
    char *error;                        /* ERR */
};

struct pipe {
    GAsyncQueue *q;
    GMutex lock;
    GCond cond;
    guint in_flight;
    gsize bytes;
    int stop;
    GPtrArray *spare;                   /* buffers of POOL_BUF bytes, to use again */
    GPtrArray *folders;                 /* struct hov_folder * */
    const struct msg_limits *lim;
};

static void slot_free(struct slot *sl)
{
    if (sl->fd >= 0)
        close(sl->fd);
    g_free(sl->path);
    g_free(sl->buf);
    hov_msginfo_free(sl->mi);
    g_free(sl->error);
    if (sl->files != NULL)
        g_ptr_array_free(sl->files, TRUE);
    g_free(sl);
}

static struct slot *slot_new(enum slot_kind kind)
{
    struct slot *sl = g_new0(struct slot, 1);

    sl->kind = kind;
    sl->fd = -1;
    return sl;
}

static void read_message(struct pipe *pp, const struct hov_folder *hf, struct slot *sl)
{
    struct stat st;
    int small;

    sl->path = g_build_filename(hf->path, sl->m->in_new ? "new" : "cur", sl->m->name, NULL);
    sl->fd = open(sl->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (sl->fd < 0 || fstat(sl->fd, &st) < 0) {
        if (sl->fd < 0 && errno == ENOENT) {
            sl->gone = 1;
            return;
        }
        sl->error = g_strdup_printf("mail file %s: %s", sl->path, g_strerror(errno));
        return;
    }
    sl->len = (size_t)st.st_size;
    sl->mtime = (gint64)st.st_mtime;
    small = sl->len <= SMALL_MSG;
    sl->hlen = small ? sl->len : HDR_READ;
    if (sl->hlen + 1 <= POOL_BUF) {
        g_mutex_lock(&pp->lock);
        sl->buf = pp->spare->len > 0 ? g_ptr_array_steal_index_fast(pp->spare, pp->spare->len - 1)
                                     : NULL;
        g_mutex_unlock(&pp->lock);
        if (sl->buf == NULL)
            sl->buf = g_malloc(POOL_BUF);
        sl->pooled = 1;
    } else {
        sl->buf = g_malloc(sl->hlen + 1);
    }
    if (small) {
        if (read_all(sl->fd, sl->buf, sl->len) < 0) {
            sl->error = g_strdup_printf("read(%s): %s", sl->path, g_strerror(errno));
            return;
        }
        cus_sha256(sl->buf, sl->len, sl->sha);
        close(sl->fd);
        sl->fd = -1;
    } else if (hash_stream(sl->fd, sl->len, sl->sha, sl->buf, sl->hlen) < 0) {
        sl->error = g_strdup_printf("read(%s): %s", sl->path, g_strerror(errno));
        return;
    }
    hov_msginfo_from_raw(sl->buf, sl->hlen, pp->lim, &sl->mi, NULL);
    if (sl->mi->date <= 0)
        sl->mi->date = sl->mtime;
}

static void pipe_push(struct pipe *pp, struct slot *sl)
{
    g_mutex_lock(&pp->lock);
    while (!pp->stop && (pp->in_flight >= PIPE_SLOTS || pp->bytes >= PIPE_BYTES))
        g_cond_wait(&pp->cond, &pp->lock);
    pp->in_flight++;
    pp->bytes += sl->hlen;
    g_mutex_unlock(&pp->lock);
    g_async_queue_push(pp->q, sl);
}

static int pipe_stopped(struct pipe *pp)
{
    int s;

    g_mutex_lock(&pp->lock);
    s = pp->stop;
    g_mutex_unlock(&pp->lock);
    return s;
}

static gpointer producer(gpointer data)
{
    struct pipe *pp = data;

    for (guint i = 0; i < pp->folders->len && !pipe_stopped(pp); i++) {
        const struct hov_folder *hf = pp->folders->pdata[i];
        struct slot *b = slot_new(SLOT_BEGIN);
        GPtrArray *files = NULL;
        char *err = NULL;

        b->folder = hf;
        if (hov_maildir_messages(hf->path, &files, &b->skipped, &err) < 0) {
            b->kind = SLOT_ERR;
            b->error = err;
            pipe_push(pp, b);
            break;
        }
        b->files = files;
        pipe_push(pp, b);
        for (guint k = 0; k < files->len && !pipe_stopped(pp); k++) {
            struct slot *sl = slot_new(SLOT_MSG);
            sl->m = files->pdata[k];
            read_message(pp, hf, sl);
            pipe_push(pp, sl);
        }
        {
            struct slot *e = slot_new(SLOT_END);
            e->folder = hf;
            pipe_push(pp, e);
        }
    }
    g_async_queue_push(pp->q, slot_new(SLOT_DONE));
    return NULL;
}

static void pipe_release(struct pipe *pp, struct slot *sl)
{
    g_mutex_lock(&pp->lock);
    if (sl->kind != SLOT_DONE) {
        pp->in_flight--;
        pp->bytes -= sl->hlen;
    }
    if (sl->pooled && pp->spare->len < PIPE_SLOTS) {
        g_ptr_array_add(pp->spare, sl->buf);
        sl->buf = NULL;
    }
    g_cond_signal(&pp->cond);
    g_mutex_unlock(&pp->lock);
    slot_free(sl);
}

/* One message, in order: duplicates, the copy, its part in contacts. */
static int take_message(struct hov_survey *s, struct hov_fstat *f, GHashTable *folder_shas,
                        struct slot *sl, int copy, char **error_r)
{
    char hex[CUS_SHA256_HEX];

    if (sl->gone) {
        f->skipped++;
        return 0;
    }
    cus_hex(sl->sha, CUS_SHA256_LEN, hex);
    f->messages++;
    f->bytes += (gint64)sl->len;
    if (g_hash_table_contains(folder_shas, hex)) {
        f->dups++;                          /* the same message twice in a folder */
        return 0;
    }
    g_hash_table_add(folder_shas, g_string_chunk_insert(s->keys, hex));
    f->unique++;
    if (copy && hov_copy_message(s->copy, f, sl->fd < 0 ? sl->buf : NULL, sl->fd, sl->len,
                                 sl->sha, sl->mtime, sl->m->flags, sl->m->in_new,
                                 error_r) < 0)
        return -1;
    if (g_hash_table_contains(s->shas, hex))   /* counted already (another folder) */
        return 0;
    g_hash_table_add(s->shas, g_string_chunk_insert(s->keys, hex));
    if (*sl->mi->message_id != '\0')
        g_hash_table_add(s->mids, g_string_chunk_insert(s->keys, sl->mi->message_id));
    hov_contacts_add(s->contacts, sl->mi, NULL);
    thread_note(s, sl->mi);
    phone_note(s, sl->mi, "m:", sl->path);
    incident_note(s, sl->mi, NULL, -1, "mailbox");
    return 0;
}

static int survey_mailbox(struct hov_survey *s, char **error_r)
{
    struct pipe pp = { 0 };
    GPtrArray *folders = NULL;
    GHashTable *folder_shas = NULL;
    GPtrArray *cur_files = NULL;
    struct hov_fstat *f = NULL;
    GThread *th;
    int ret = 0, copy = 0, done = 0;

    if (hov_maildir_folders(s->src_root, &folders, error_r) < 0)
        return -1;
    pp.q = g_async_queue_new();
    pp.spare = g_ptr_array_new_with_free_func(g_free);
    g_mutex_init(&pp.lock);
    g_cond_init(&pp.cond);
    pp.folders = folders;
    pp.lim = s->lim;
    th = g_thread_new("mailbox-reader", producer, &pp);
    while (!done) {
        struct slot *sl = g_async_queue_pop(pp.q);

        /* the file list a folder's messages point into: kept until its END */
        if (sl->kind == SLOT_BEGIN) {
            if (cur_files != NULL)
                g_ptr_array_free(cur_files, TRUE);
            cur_files = sl->files;
            sl->files = NULL;
        }
        if (ret < 0) {                      /* failed: drain what the reader sends */
            done = sl->kind == SLOT_DONE;
            if (sl->kind == SLOT_END && cur_files != NULL) {
                g_ptr_array_free(cur_files, TRUE);
                cur_files = NULL;
            }
            pipe_release(&pp, sl);
            continue;
        }
        switch (sl->kind) {
        case SLOT_BEGIN: {
            const struct hov_folder *hf = sl->folder;
            int skip = 0;

            f = g_new0(struct hov_fstat, 1);
            f->storage = g_strdup(hf->storage);
            f->display = g_strdup(hf->display);
            f->path = g_strdup(hf->path);
            f->dest = g_strconcat(s->prefix, ".", *hf->storage != '\0' ? hf->storage : "INBOX",
                                  NULL);
            f->skipped = sl->skipped;
            g_ptr_array_add(s->folders, f);
            folder_shas = g_hash_table_new(g_str_hash, g_str_equal);
            if (s->copy != NULL && hov_copy_folder_begin(s->copy, f, &skip, error_r) < 0)
                ret = -1;
            copy = s->copy != NULL && !skip;
            break;
        }
        case SLOT_MSG:
            if (sl->error != NULL) {
                ret = cus_error(error_r, "%s", sl->error);
            } else if (take_message(s, f, folder_shas, sl, copy, error_r) < 0) {
                ret = -1;
            }
            break;
        case SLOT_END:
            g_hash_table_destroy(folder_shas);
            folder_shas = NULL;
            g_ptr_array_free(cur_files, TRUE);
            cur_files = NULL;
            if (copy && hov_copy_folder_end(s->copy, f, error_r) < 0)
                ret = -1;
            break;
        case SLOT_ERR:
            ret = cus_error(error_r, "%s", sl->error);
            break;
        case SLOT_DONE:
            done = 1;
            break;
        }
        if (ret < 0) {
            g_mutex_lock(&pp.lock);
            pp.stop = 1;
            g_cond_signal(&pp.cond);
            g_mutex_unlock(&pp.lock);
        }
        pipe_release(&pp, sl);
    }
    g_thread_join(th);
    if (cur_files != NULL)
        g_ptr_array_free(cur_files, TRUE);
    if (folder_shas != NULL)
        g_hash_table_destroy(folder_shas);
    g_async_queue_unref(pp.q);
    g_ptr_array_free(pp.spare, TRUE);
    g_mutex_clear(&pp.lock);
    g_cond_clear(&pp.cond);
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

/* The archive: one brief search (ids, hashes, Message-IDs) of everything
 * the leaver took part in runs in a thread of its own, on a reader of its
 * own, while the mailbox is read and copied; then only what the mailbox
 * lacks is looked up whole, and the leaver's recent mail for incidents. */
struct bhit {
    gint64 id;
    char sha[CUS_SHA256_HEX];
    char *message_id;
};

static void bhit_free(gpointer p)
{
    struct bhit *h = p;

    g_free(h->message_id);
    g_free(h);
}

struct asearch {
    const struct cfg *cfg;
    char *query;
    GPtrArray *hits;                /* struct bhit *, newest first */
    char *error;
    int ok;
};

static int collect_brief(void *ctx, const struct idx_brief *b)
{
    struct asearch *a = ctx;
    struct bhit *x = g_new0(struct bhit, 1);

    x->id = b->id;
    if (b->sha256 != NULL)
        cus_hex(b->sha256, CUS_SHA256_LEN, x->sha);
    x->message_id = g_strdup(b->message_id != NULL ? b->message_id : "");
    g_ptr_array_add(a->hits, x);
    return 0;
}

static gpointer search_thread(gpointer data)
{
    struct asearch *a = data;
    struct arc *arc = NULL;

    if (arc_open(a->cfg, 0, &arc, &a->error) == 0) {
        a->ok = idx_search_brief(arc_index(arc), a->query, collect_brief, a, &a->error) == 0;
        arc_close(&arc);
    }
    return NULL;
}

/* A whole hit as a struct hov_msginfo (strings borrowed from h). */
static void hit_info(const struct idx_hit *h, struct hov_msginfo *mi)
{
    memset(mi, 0, sizeof(*mi));
    mi->message_id = h->message_id != NULL ? h->message_id : "";
    mi->date = h->date;
    mi->subject = h->subject != NULL ? h->subject : "";
    mi->thread = hov_thread_key(mi->subject);
    mi->rcpts = g_ptr_array_new_with_free_func(addr_free);
    if (h->from->len > 0) {
        hit_addr(h->from->pdata[0], &mi->from);
    } else {
        mi->from.name = g_strdup("");
        mi->from.addr = g_strdup("");
    }
    for (guint i = 0; i < h->to->len + h->cc->len; i++) {
        struct hov_addr *a = g_new0(struct hov_addr, 1);
        hit_addr(i < h->to->len ? h->to->pdata[i] : h->cc->pdata[i - h->to->len], a);
        g_ptr_array_add(mi->rcpts, a);
    }
}

static void hit_info_clear(struct hov_msginfo *mi)
{
    g_free(mi->thread);
    g_free(mi->from.name);
    g_free(mi->from.addr);
    g_ptr_array_free(mi->rcpts, TRUE);
}

/* A recovered message's part in contacts, threads and phones. */
static int on_recovered(void *ctx, const struct idx_hit *h)
{
    struct hov_survey *s = ctx;
    struct hov_msginfo mi;
    char src[40];

    hit_info(h, &mi);
    hov_contacts_add(s->contacts, &mi, NULL);
    thread_note(s, &mi);
    g_snprintf(src, sizeof(src), "%" G_GINT64_FORMAT, h->id);
    phone_note(s, &mi, "a:", src);
    incident_note(s, &mi, h->bcc, h->n_att, "archive");
    hit_info_clear(&mi);
    return 0;
}

static int on_incident(void *ctx, const struct idx_hit *h)
{
    struct hov_survey *s = ctx;
    struct hov_msginfo mi;

    hit_info(h, &mi);
    incident_note(s, &mi, h->bcc, h->n_att, "archive");
    hit_info_clear(&mi);
    return 0;
}

/* ---- what custos-milter flagged (incident.h) ----------------------------------------- */

struct flagged {
    char *message_id, *subject;
    gint64 n_att;
};

static int on_flagged(void *ctx, const struct idx_hit *h)
{
    struct flagged *fl = ctx;

    fl->message_id = g_strdup(h->message_id);
    fl->subject = g_strdup(h->subject);
    fl->n_att = h->n_att;
    return 0;
}

/* The leaver's incidents since the window opened (as envelope sender or
 * SASL login, work or private address), each with its rule, action and
 * evidence. A message the archive and mailbox search above noted already
 * (by Message-ID) gets the milter's words; the others are added. */
static int survey_flagged(struct hov_survey *s, char **error_r)
{
    GPtrArray *addrs = g_ptr_array_new(), *list = NULL;
    int ret = -1;

    g_ptr_array_add(addrs, s->leaver->address);
    for (guint i = 0; i < s->leaver->personal->len; i++)
        g_ptr_array_add(addrs, s->leaver->personal->pdata[i]);
    g_ptr_array_add(addrs, NULL);
    if (incident_of_employee(arc_index(s->arc), (const char *const *)addrs->pdata,
                             MAX(s->incident_since, 0), &list, error_r) < 0)
        goto out;
    for (guint i = 0; i < list->len; i++) {
        const struct incident *inc = list->pdata[i];
        struct flagged fl = { NULL, NULL, -1 };
        char *q = g_strdup_printf("id:%" G_GINT64_FORMAT, inc->msg), *to, *rule, day[16];
        JsonObject *o = NULL;

        /* a purged message matches no query: the incident alone speaks */
        if (!inc->purged && idx_search(arc_index(s->arc), q, 1, 0, NULL, on_flagged, &fl,
                                       error_r) < 0) {
            g_free(q);
            goto out;
        }
        g_free(q);
        rule = g_strdup_printf("%s/%s (%s)", inc->category, inc->rule, inc->action);
        if (fl.message_id != NULL && *fl.message_id != '\0')
            o = g_hash_table_lookup(s->incident_ids, fl.message_id);
        if (o != NULL && json_object_has_member(o, "evidence")) {
            /* a second finding of the same message */
            char *both = g_strdup_printf("%s; %s", json_object_get_string_member(o, "rule"), rule);
            json_object_set_string_member(o, "rule", both);
            g_free(both);
            if (*inc->evidence != '\0') {
                both = g_strdup_printf("%s; %s", json_object_get_string_member(o, "evidence"),
                                       inc->evidence);
                json_object_set_string_member(o, "evidence", both);
                g_free(both);
            }
        } else {
            char *where;

            if (o == NULL) {
                o = json_object_new();
                json_array_add_object_element(s->incidents, o);
                if (fl.message_id != NULL && *fl.message_id != '\0')
                    g_hash_table_insert(s->incident_ids, g_strdup(fl.message_id), o);
                where = g_strdup("custos-milter");
            } else {
                where = g_strdup_printf("custos-milter, %s",
                                        json_object_get_string_member(o, "where"));
            }
            hov_day(inc->time, day, sizeof(day));
            to = g_strjoinv(", ", inc->rcpts);
            json_object_set_string_member(o, "date", day);
            json_object_set_string_member(o, "subject", fl.subject != NULL ? fl.subject
                                                                            : "(purged)");
            json_object_set_string_member(o, "to", to);
            json_object_set_int_member(o, "attachments", fl.n_att);
            json_object_set_string_member(o, "where", where);
            g_free(where);
            json_object_set_string_member(o, "rule", rule);
            json_object_set_string_member(o, "evidence", inc->evidence);
            json_object_set_int_member(o, "archive_id", inc->msg);
            g_free(to);
        }
        g_free(rule);
        g_free(fl.message_id);
        g_free(fl.subject);
    }
    ret = 0;
out:
    if (list != NULL)
        g_ptr_array_free(list, TRUE);
    g_ptr_array_free(addrs, TRUE);
    return ret;
}

#define IDS_PER_QUERY 200

static int survey_archive(struct hov_survey *s, GPtrArray *hits, char **error_r)
{
    GHashTable *rec_mids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GString *q = g_string_new(NULL);
    char day[16];
    int ret = -1;

    for (guint i = 0; i < hits->len; i++) {
        const struct bhit *h = hits->pdata[i];

        s->archive_hits++;
        if ((*h->message_id != '\0' && g_hash_table_contains(s->mids, h->message_id)) ||
            g_hash_table_contains(s->shas, h->sha))
            continue;                       /* the mailbox has it */
        if (*h->message_id != '\0') {
            if (g_hash_table_contains(rec_mids, h->message_id))
                continue;                   /* another copy of one recovered */
            g_hash_table_add(rec_mids, g_strdup(h->message_id));
        }
        g_array_append_val(s->recovered, h->id);
    }
    /* what the mailbox lacks, whole, a few hundred at a time */
    for (guint i = 0; i < s->recovered->len; i += IDS_PER_QUERY) {
        g_string_truncate(q, 0);
        for (guint k = i; k < s->recovered->len && k < i + IDS_PER_QUERY; k++)
            g_string_append_printf(q, "%sid:%" G_GINT64_FORMAT, k > i ? " OR " : "",
                                   g_array_index(s->recovered, gint64, k));
        if (idx_search(arc_index(s->arc), q->str, -1, 0, NULL, on_recovered, s, error_r) < 0)
            goto out;
    }
    /* the leaver's own mail of the incident window */
    g_string_assign(q, "(");
    g_string_append_printf(q, "from:\"%s\"", s->leaver->address);
    for (guint i = 0; i < s->leaver->personal->len; i++)
        g_string_append_printf(q, " OR from:\"%s\"", (char *)s->leaver->personal->pdata[i]);
    hov_day(MAX(s->incident_since, 0), day, sizeof(day));
    g_string_append_printf(q, ") after:%s", day);
    if (idx_search(arc_index(s->arc), q->str, -1, 0, NULL, on_incident, s, error_r) < 0)
        goto out;
    if (survey_flagged(s, error_r) < 0)
        goto out;
    ret = 0;
out:
    g_string_free(q, TRUE);
    g_hash_table_destroy(rec_mids);
    return ret;
}

int hov_survey_run(struct hov_survey *s, char **error_r)
{
    struct asearch a = { s->cfg, NULL, g_ptr_array_new_with_free_func(bhit_free), NULL, 0 };
    GThread *th;
    double t0 = cus_now();
    int ret = -1, mret;

    survey_init(s);
    a.query = g_strdup_printf("participant:\"%s\"", s->leaver->address);
    th = g_thread_new("archive-search", search_thread, &a);
    mret = survey_mailbox(s, error_r);
    g_thread_join(th);
    log_debug("survey: mailbox read%s, %u archive messages found, in %.3f s",
              s->copy != NULL ? " and copied" : "", a.hits->len, cus_now() - t0);
    if (mret < 0)
        goto out;
    if (!a.ok) {
        cus_error(error_r, "%s", a.error != NULL ? a.error : "the archive search failed");
        goto out;
    }
    ret = survey_archive(s, a.hits, error_r);
out:
    g_ptr_array_free(a.hits, TRUE);
    g_free(a.query);
    g_free(a.error);
    return ret;
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
