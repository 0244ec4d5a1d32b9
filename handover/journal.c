/*
 * journal.c - what apply has done, one fsync'd JSON line per finished step
 *
 * A line is written only once its step is complete and durable, so the
 * journal never claims more than was done; a step that was done but not
 * yet journalled when the process died is recognised by the step itself
 * (see handover.h). A last line cut short by a crash is dropped on load
 * and cut off before the next append. Also the small helpers every part
 * of custos-handover uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "custos/archive.h"
#include "custos/log.h"
#include "handover-private.h"

static int journal_add(struct hov_journal *j, const char *step, const char *key, JsonNode *data,
                       char **error_r);

static void jentry_free(gpointer p)
{
    struct hov_jentry *e = p;

    g_free(e->step);
    g_free(e->key);
    if (e->data != NULL)
        json_node_unref(e->data);
    g_free(e);
}

int hov_journal_load(const char *dir, struct hov_journal **j_r, char **error_r)
{
    struct hov_journal *j = g_new0(struct hov_journal, 1);
    GBytes *data = NULL;
    char **lines = NULL;
    gsize len, good = 0;
    const char *text;

    j->path = g_build_filename(dir, "journal", NULL);
    j->entries = g_ptr_array_new_with_free_func(jentry_free);
    if (access(j->path, F_OK) < 0) {
        *j_r = j;
        return 0;
    }
    if (cus_read_file(j->path, 256 << 20, &data, error_r) < 0) {
        hov_journal_free(&j);
        return -1;
    }
    text = g_bytes_get_data(data, &len);
    lines = g_strsplit(text != NULL ? text : "", "\n", -1);
    for (int i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++) {
        JsonParser *jp = json_parser_new();
        JsonObject *o;
        struct hov_jentry *e;

        if (!json_parser_load_from_data(jp, lines[i], -1, NULL) ||
            !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(jp))) {
            g_object_unref(jp);
            if (lines[i + 2] == NULL)
                break;              /* the last, cut short */
            cus_error(error_r, "%s:%d: not a journal line", j->path, i + 1);
            g_strfreev(lines);
            g_bytes_unref(data);
            hov_journal_free(&j);
            return -1;
        }
        o = json_node_get_object(json_parser_get_root(jp));
        e = g_new0(struct hov_jentry, 1);
        e->time = json_object_get_int_member_with_default(o, "time", 0);
        e->step = g_strdup(json_object_get_string_member_with_default(o, "step", ""));
        e->key = g_strdup(json_object_get_string_member_with_default(o, "key", ""));
        e->data = json_object_has_member(o, "data")
                      ? json_node_copy(json_object_get_member(o, "data"))
                      : json_node_new(JSON_NODE_NULL);
        g_ptr_array_add(j->entries, e);
        g_object_unref(jp);
        good += strlen(lines[i]) + 1;
    }
    g_strfreev(lines);
    g_bytes_unref(data);
    if (good < len && truncate(j->path, (off_t)good) < 0) {
        cus_error_errno(error_r, "truncate(%s)", j->path);
        hov_journal_free(&j);
        return -1;
    }
    *j_r = j;
    return 0;
}

/* Steps of apply may finish in two threads at once. */
static GMutex journal_lock;

int hov_journal_add(struct hov_journal *j, const char *step, const char *key, JsonNode *data,
                    char **error_r)
{
    int r;

    g_mutex_lock(&journal_lock);
    r = journal_add(j, step, key, data, error_r);
    g_mutex_unlock(&journal_lock);
    return r;
}

const struct hov_jentry *hov_journal_find(const struct hov_journal *j, const char *step,
                                          const char *key)
{
    const struct hov_jentry *found = NULL;

    g_mutex_lock(&journal_lock);
    for (guint i = 0; i < j->entries->len && found == NULL; i++) {
        const struct hov_jentry *e = j->entries->pdata[i];
        if (strcmp(e->step, step) == 0 && (key == NULL || strcmp(e->key, key) == 0))
            found = e;
    }
    g_mutex_unlock(&journal_lock);
    return found;
}

static int journal_add(struct hov_journal *j, const char *step, const char *key, JsonNode *data,
                       char **error_r)
{
    JsonBuilder *b = json_builder_new();
    JsonGenerator *g = json_generator_new();
    JsonNode *root;
    struct hov_jentry *e;
    char *line, *dir;
    int fd, ret = -1;

    if (data == NULL)
        data = json_node_init_object(json_node_alloc(), json_object_new());
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "time");
    json_builder_add_int_value(b, (gint64)time(NULL));
    json_builder_set_member_name(b, "step");
    json_builder_add_string_value(b, step);
    json_builder_set_member_name(b, "key");
    json_builder_add_string_value(b, key != NULL ? key : "");
    json_builder_set_member_name(b, "data");
    json_builder_add_value(b, json_node_copy(data));
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(g, root);
    line = json_generator_to_data(g, NULL);
    fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || cus_write_all(fd, line, strlen(line)) < 0 || cus_write_all(fd, "\n", 1) < 0 ||
        fsync(fd) < 0) {
        cus_error_errno(error_r, "journal %s", j->path);
        goto out;
    }
    dir = g_path_get_dirname(j->path);
    ret = cus_fsync_dir(dir, error_r);
    g_free(dir);
    if (ret < 0)
        goto out;
    e = g_new0(struct hov_jentry, 1);
    e->time = (gint64)time(NULL);
    e->step = g_strdup(step);
    e->key = g_strdup(key != NULL ? key : "");
    e->data = data;
    data = NULL;
    g_ptr_array_add(j->entries, e);
out:
    if (fd >= 0)
        close(fd);
    if (data != NULL)
        json_node_unref(data);
    g_free(line);
    json_node_unref(root);
    g_object_unref(g);
    g_object_unref(b);
    return ret;
}


void hov_journal_free(struct hov_journal **jp)
{
    struct hov_journal *j = *jp;

    if (j == NULL)
        return;
    g_ptr_array_free(j->entries, TRUE);
    g_free(j->path);
    g_free(j);
    *jp = NULL;
}

/* The archive batch of apply under way in its thread (hov_batch_busy). */
static gint batch_busy;

void hov_batch_busy(int busy)
{
    g_atomic_int_set(&batch_busy, busy);
}

void hov_crash_point(const char *name)
{
    static GMutex lock;
    static GHashTable *counts;
    const char *want = getenv("CUSTOS_HANDOVER_CRASH");
    size_t n = strlen(name);
    long at = 1, seen;

    if (want == NULL || strncmp(want, name, n) != 0 || (want[n] != '\0' && want[n] != ':'))
        return;
    /* A point of the copy kills once the archive batch running beside it
     * is committed: a test then knows what it stopped (a real crash may
     * come in the middle of the batch: depart_hold_fn copes with that,
     * and "depart-rows" tests it). */
    if (!g_str_has_prefix(name, "depart") && strcmp(name, "hold") != 0)
        while (g_atomic_int_get(&batch_busy))
            g_usleep(1000);
    if (want[n] == ':')
        at = strtol(want + n + 1, NULL, 10);
    g_mutex_lock(&lock);
    if (counts == NULL)
        counts = g_hash_table_new(g_str_hash, g_str_equal);
    seen = GPOINTER_TO_INT(g_hash_table_lookup(counts, name)) + 1;
    g_hash_table_insert(counts, (gpointer)name, GINT_TO_POINTER((int)seen));
    g_mutex_unlock(&lock);
    if (seen == at) {
        log_warn("CUSTOS_HANDOVER_CRASH: killed at %s:%ld", name, at);
        raise(SIGKILL);
    }
}

/* ---- helpers ------------------------------------------------------------------------ */

gint hov_strptr_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *hov_local_part(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at != NULL ? g_strndup(addr, (gsize)(at - addr)) : g_strdup(addr);
}

void hov_day(gint64 t, char *buf, size_t size)
{
    char iso[32];

    cus_iso8601(t, iso, sizeof(iso));
    iso[10] = '\0';
    g_strlcpy(buf, iso, size);
}

gint64 hov_day_parse(const char *day)
{
    GTimeZone *utc = g_time_zone_new_utc();
    GDateTime *dt = NULL;
    int y, m, d;
    char c;
    gint64 t = -1;

    if (strlen(day) == 10 && sscanf(day, "%4d-%2d-%2d%c", &y, &m, &d, &c) == 3)
        dt = g_date_time_new(utc, y, m, d, 0, 0, 0);
    if (dt != NULL) {
        t = g_date_time_to_unix(dt);
        g_date_time_unref(dt);
    }
    g_time_zone_unref(utc);
    return t;
}

int hov_json_save(const char *path, JsonNode *node, char **error_r)
{
    JsonGenerator *g = json_generator_new();
    gsize len;
    char *text;
    int ret;

    json_generator_set_pretty(g, TRUE);
    json_generator_set_root(g, node);
    text = json_generator_to_data(g, &len);
    ret = cus_write_file_atomic(path, text, len, 0600, error_r);
    g_free(text);
    g_object_unref(g);
    return ret;
}

int hov_json_load(const char *path, JsonNode **node_r, char **error_r)
{
    JsonParser *jp = json_parser_new();
    GError *gerr = NULL;

    if (!json_parser_load_from_file(jp, path, &gerr)) {
        cus_error(error_r, "%s: %s", path, gerr->message);
        g_error_free(gerr);
        g_object_unref(jp);
        return -1;
    }
    *node_r = json_node_copy(json_parser_get_root(jp));
    g_object_unref(jp);
    return 0;
}

int hov_with_writer(const struct cfg *cfg, hov_writer_fn *fn, void *ctx, char **error_r)
{
    struct arc *arc = NULL;
    int ret;

    if (arc_open(cfg, ARC_WRITE | ARC_WAIT, &arc, error_r) < 0)
        return -1;
    ret = fn(arc, ctx, error_r);
    if (ret < 0)
        arc_abort(arc);
    arc_close(&arc);
    return ret;
}

const char *hov_webmail_path(const struct cfg *cfg)
{
    return cfg->dir_webmail != NULL && access(cfg->dir_webmail, R_OK) == 0 ? cfg->dir_webmail
                                                                           : NULL;
}
