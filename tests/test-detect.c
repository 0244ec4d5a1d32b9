/*
 * test-detect.c - the detectors on the labelled scenario set of tests/detect/
 *
 * The fixture: an archive with the directory of tests/detect/directory
 * imported and the customer mail of tests/detect/archive ingested (what
 * customers sent us, and one of our own), through custos-archive as an
 * admin would. Every scenario tests/detect/scenarios/NAME.eml with its
 * NAME.env (sender, rcpt, auth, expect) is parsed as custos-milter parses
 * it (GMime, then msg_from_gmime), classified (det_classify) and run
 * through every detector (det_run); the categories found must be the ones
 * expected, no more, no fewer. Precision and recall per category over the
 * whole set are printed (every finding too with CUSTOS_DETECT_SHOW set).
 * Unit cases of the pieces (phone keys, the quoted
 * header forms) come first.
 */
#include <stdio.h>
#include <string.h>
#include "cutest.h"
#include "custos/archive.h"
#include "custos/cfg.h"
#include "custos/det-know.h"
#include "custos/det-text.h"
#include "custos/detect.h"
#include "custos/directory.h"
#include "custos/index.h"
#include "custos/msg.h"
#include "custos/util.h"

struct scn {
    char *name, *desc, *sender, *auth;
    GPtrArray *rcpts;           /* char *, NULL-terminated */
    GPtrArray *expect;          /* char * */
};

static void scn_free(struct scn *s)
{
    g_free(s->name);
    g_free(s->desc);
    g_free(s->sender);
    g_free(s->auth);
    g_ptr_array_free(s->rcpts, TRUE);
    g_ptr_array_free(s->expect, TRUE);
    g_free(s);
}

/* NAME.env: "key: value" lines, '#' comments (the first one: what it is). */
static struct scn *scn_read(const char *dir, const char *name)
{
    char *path = g_strdup_printf("%s/%s.env", dir, name), *text = NULL;
    struct scn *s;
    char **lines;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        fprintf(stderr, "\n  cannot read %s", path);
        g_free(path);
        return NULL;
    }
    s = g_new0(struct scn, 1);
    s->name = g_strdup(name);
    s->rcpts = g_ptr_array_new_with_free_func(g_free);
    s->expect = g_ptr_array_new_with_free_func(g_free);
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] != NULL; i++) {
        char *l = g_strstrip(lines[i]), *v;
        if (*l == '#') {
            if (s->desc == NULL)
                s->desc = g_strdup(g_strstrip(l + 1));
            continue;
        }
        if (*l == '\0' || (v = strchr(l, ':')) == NULL)
            continue;
        *v++ = '\0';
        v = g_strstrip(v);
        if (strcmp(l, "sender") == 0) {
            g_free(s->sender);
            s->sender = g_strdup(v);
        } else if (strcmp(l, "auth") == 0) {
            g_free(s->auth);
            s->auth = g_strdup(v);
        } else if (strcmp(l, "rcpt") == 0) {
            g_ptr_array_add(s->rcpts, g_strdup(v));
        } else if (strcmp(l, "expect") == 0) {
            char **w = g_strsplit_set(v, " \t,", -1);
            for (int k = 0; w[k] != NULL; k++)
                if (*w[k])
                    g_ptr_array_add(s->expect, g_strdup(w[k]));
            g_strfreev(w);
        } else {
            fprintf(stderr, "\n  %s: unknown key %s", path, l);
        }
    }
    g_ptr_array_add(s->rcpts, NULL);
    g_strfreev(lines);
    g_free(text);
    g_free(path);
    if (s->sender == NULL)
        s->sender = g_strdup("");
    return s;
}

struct fx {
    char *tmp, *conf, *bin;
    struct cfg *cfg;
    struct dir *dir;
};

static int fx_cli(struct fx *fx, ...)
{
    char *out = NULL, *err = NULL;
    va_list ap;
    int rc;

    va_start(ap, fx);
    rc = cut_cli(fx->bin, fx->conf, &out, &err, ap);
    va_end(ap);
    if (rc != 0)
        fprintf(stderr, "\n  custos-archive: %d\n%s%s", rc, out, err);
    g_free(out);
    g_free(err);
    return rc;
}

static int fx_open(struct fx *fx)
{
    char *webmail = cut_src("conf/webmail-domains.txt"), *text, *err = NULL;
    char *data = cut_src("tests/detect"), *f[3];
    static const char *const lists[] = { "employees", "customers", "accounts" };
    int ret = -1;

    memset(fx, 0, sizeof(*fx));
    fx->tmp = cut_tmpdir();
    fx->conf = g_build_filename(fx->tmp, "custos.conf", NULL);
    fx->bin = cut_bin("custos-archive");
    text = g_strdup_printf("[archive]\ndir = %s/archive\ndepartments = sales\n"
                           "[directory]\nwebmail_domains = %s\n", fx->tmp, webmail);
    g_file_set_contents(fx->conf, text, -1, NULL);
    g_free(text);
    if (cfg_load(fx->conf, &fx->cfg, &err) < 0 || fx_cli(fx, "init", NULL) != 0)
        goto out;
    for (int i = 0; i < 3; i++) {
        f[i] = g_strdup_printf("%s/directory/%s.csv", data, lists[i]);
        if (fx_cli(fx, "directory", "import", lists[i], f[i], NULL) != 0) {
            for (int k = 0; k <= i; k++)
                g_free(f[k]);
            goto out;
        }
    }
    for (int i = 0; i < 3; i++)
        g_free(f[i]);
    text = g_strdup_printf("%s/archive", data);
    if (fx_cli(fx, "import", text, NULL) != 0) {
        g_free(text);
        goto out;
    }
    g_free(text);
    det_know_reset();
    if (dir_open(fx->cfg, &fx->dir, &err) < 0)
        goto out;
    ret = 0;
out:
    if (err != NULL)
        fprintf(stderr, "\n  %s", err);
    g_free(err);
    g_free(webmail);
    g_free(data);
    return ret;
}

static void fx_close(struct fx *fx)
{
    dir_close(&fx->dir);
    det_know_reset();
    cfg_free(&fx->cfg);
    cut_rmtree(fx->tmp);
    g_free(fx->tmp);
    g_free(fx->conf);
    g_free(fx->bin);
}

/* Parse raw as custos-milter does, classify (sender, rcpts, auth) and run
 * every detector: 0 and the findings, -2 if GMime makes no message of it
 * (the milter then runs only the detectors that need none), or -1 (said
 * on stderr as where). */
static int detect_raw(struct fx *fx, const char *where, const char *raw, size_t len,
                      const char *sender, char *const *rcpts, const char *auth,
                      GPtrArray **findings_r)
{
    struct det_envelope env = { .queue_id = where, .client = "127.0.0.1", .auth = auth,
                                .cfg = fx->cfg };
    struct det_message dm = { 0 };
    struct msg_limits lim;
    GMimeStream *st;
    GMimeParser *p;
    const char *from;
    char *err = NULL;
    int ret = -1;

    *findings_r = NULL;
    msg_init();
    st = g_mime_stream_mem_new_with_buffer(raw, len);
    p = g_mime_parser_new_with_stream(st);
    dm.mime = g_mime_parser_construct_message(p, msg_parser_options());
    g_object_unref(p);
    g_object_unref(st);
    arc_limits_from_cfg(fx->cfg, &lim);
    if (dm.mime == NULL) {
        ret = -2;
        goto out;
    }
    if (msg_from_gmime(dm.mime, &lim, &dm.msg, &err) < 0) {
        fprintf(stderr, "\n  %s: not parsed: %s", where, err ? err : "");
        goto out;
    }
    from = g_mime_object_get_header(GMIME_OBJECT(dm.mime), "From");
    if (det_classify(fx->dir, fx->cfg->arc_departments, sender, from, auth, rcpts, &env,
                     &err) < 0) {
        fprintf(stderr, "\n  %s: classify: %s", where, err);
        goto out;
    }
    if (det_run(&env, &dm, findings_r, &err) < 0) {
        fprintf(stderr, "\n  %s: %s", where, err);
        goto out;
    }
    ret = 0;
out:
    det_envelope_clear(&env);
    msg_free(&dm.msg);
    if (dm.mime != NULL)
        g_object_unref(dm.mime);
    g_free(err);
    return ret;
}

/* Run one scenario: the categories found (char *, each once), or NULL. */
static GPtrArray *scn_run(struct fx *fx, const char *dir, const struct scn *s,
                          GPtrArray **findings_r)
{
    char *path = g_strdup_printf("%s/%s.eml", dir, s->name);
    GPtrArray *found = NULL, *findings = NULL;
    GError *gerr = NULL;
    GMappedFile *mf = g_mapped_file_new(path, FALSE, &gerr);

    *findings_r = NULL;
    if (mf == NULL) {
        fprintf(stderr, "\n  %s: %s", path, gerr->message);
        g_error_free(gerr);
        g_free(path);
        return NULL;
    }
    if (detect_raw(fx, path, g_mapped_file_get_contents(mf), g_mapped_file_get_length(mf),
                   s->sender, (char *const *)s->rcpts->pdata, s->auth, &findings) == 0) {
        found = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < findings->len; i++) {
            const struct det_finding *f = findings->pdata[i];
            gboolean have = FALSE;
            for (guint k = 0; k < found->len && !have; k++)
                have = strcmp(found->pdata[k], f->category) == 0;
            if (!have)
                g_ptr_array_add(found, g_strdup(f->category));
        }
        *findings_r = findings;
    }
    g_mapped_file_unref(mf);
    g_free(path);
    return found;
}

static int has(GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (a->pdata[i] != NULL && strcmp(a->pdata[i], s) == 0)
            return 1;
    return 0;
}

struct score {
    int tp, fp, fn, pos, neg;       /* pos/neg: scenarios expecting it / not */
};

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_detect_scenarios(void)
{
    char *dir = cut_src("tests/detect/scenarios");
    GHashTable *scores = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free), *cats;
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *ent;
    struct fx fx;
    int n = 0, wrong = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((ent = g_dir_read_name(d)) != NULL)
        if (g_str_has_suffix(ent, ".env"))
            g_ptr_array_add(names, g_strndup(ent, strlen(ent) - 4));
    g_dir_close(d);
    g_ptr_array_sort(names, cmp_str);
    CU_ASSERT_FATAL(names->len >= 10);
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx), 0);
    for (guint i = 0; i < names->len; i++) {
        struct scn *s = scn_read(dir, names->pdata[i]);
        GPtrArray *found, *findings = NULL;
        int ok = 1;

        CU_ASSERT_PTR_NOT_NULL(s);
        if (s == NULL)
            continue;
        found = scn_run(&fx, dir, s, &findings);
        CU_ASSERT_PTR_NOT_NULL(found);
        if (found == NULL) {
            scn_free(s);
            continue;
        }
        n++;
        /* every category named anywhere gets a score */
        for (int pass = 0; pass < 2; pass++) {
            GPtrArray *a = pass ? found : s->expect;
            for (guint k = 0; k < a->len; k++)
                if (!g_hash_table_contains(scores, a->pdata[k]))
                    g_hash_table_insert(scores, g_strdup(a->pdata[k]), g_new0(struct score, 1));
        }
        for (guint k = 0; k < found->len; k++)
            if (!has(s->expect, found->pdata[k]))
                ok = 0;
        /* each finding names envelope recipients only, and shows none whole */
        for (guint k = 0; findings != NULL && k < findings->len; k++) {
            const struct det_finding *f = findings->pdata[k];
            for (guint r = 0; r < f->rcpts->len; r++) {
                int in_env = 0;
                for (guint e = 0; e + 1 < s->rcpts->len && !in_env; e++)
                    in_env = g_ascii_strcasecmp(s->rcpts->pdata[e], f->rcpts->pdata[r]) == 0;
                CU_ASSERT(in_env);
                CU_ASSERT_PTR_NULL(strstr(f->evidence, f->rcpts->pdata[r]));
            }
            /* these are about recipients, always */
            if (strstr(" forward-external auto-forward customer-data personal-webmail "
                       "bcc-external ", f->category) != NULL)
                CU_ASSERT(f->rcpts->len > 0);
        }
        for (guint k = 0; k < s->expect->len; k++)
            if (!has(found, s->expect->pdata[k]))
                ok = 0;
        if (ok && g_getenv("CUSTOS_DETECT_SHOW") != NULL)
            for (guint k = 0; findings != NULL && k < findings->len; k++) {
                const struct det_finding *f = findings->pdata[k];
                printf("\n  %s: %s: %s", s->name, f->rule, f->evidence);
            }
        if (!ok) {
            wrong++;
            fprintf(stderr, "\n  %s (%s): expected [", s->name, s->desc ? s->desc : "");
            for (guint k = 0; k < s->expect->len; k++)
                fprintf(stderr, "%s%s", k ? " " : "", (char *)s->expect->pdata[k]);
            fprintf(stderr, "], found [");
            for (guint k = 0; k < found->len; k++)
                fprintf(stderr, "%s%s", k ? " " : "", (char *)found->pdata[k]);
            fprintf(stderr, "]");
            for (guint k = 0; findings != NULL && k < findings->len; k++) {
                const struct det_finding *f = findings->pdata[k];
                fprintf(stderr, "\n    %s: %s", f->rule, f->evidence);
            }
        }
        /* the scores: tp/fp/fn per category over the set */
        {
            GHashTableIter it;
            gpointer key, val;
            g_hash_table_iter_init(&it, scores);
            while (g_hash_table_iter_next(&it, &key, &val)) {
                struct score *sc = val;
                int e = has(s->expect, key), f = has(found, key);
                sc->tp += e && f;
                sc->fp += !e && f;
                sc->fn += e && !f;
                sc->pos += e;
                sc->neg += !e;
            }
        }
        g_ptr_array_free(found, TRUE);
        if (findings != NULL)
            g_ptr_array_free(findings, TRUE);
        scn_free(s);
    }
    /* categories that appeared late still count the earlier scenarios as
     * negatives: neg = n - pos */
    cats = g_ptr_array_new();
    {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, scores);
        while (g_hash_table_iter_next(&it, &key, NULL))
            g_ptr_array_add(cats, key);
    }
    g_ptr_array_sort(cats, cmp_str);
    printf("\n  detectors on %d scenarios (%d not as expected):\n", n, wrong);
    printf("  %-26s %5s %5s %4s %4s %4s %10s %7s\n", "category", "pos", "neg", "tp", "fp", "fn",
           "precision", "recall");
    for (guint i = 0; i < cats->len; i++) {
        const struct score *sc = g_hash_table_lookup(scores, cats->pdata[i]);
        char prec[16], rec[16];
        if (sc->tp + sc->fp > 0)
            g_snprintf(prec, sizeof(prec), "%.2f", (double)sc->tp / (sc->tp + sc->fp));
        else
            g_strlcpy(prec, "-", sizeof(prec));
        if (sc->tp + sc->fn > 0)
            g_snprintf(rec, sizeof(rec), "%.2f", (double)sc->tp / (sc->tp + sc->fn));
        else
            g_strlcpy(rec, "-", sizeof(rec));
        printf("  %-26s %5d %5d %4d %4d %4d %10s %7s\n", (char *)cats->pdata[i], sc->pos,
               n - sc->pos, sc->tp, sc->fp, sc->fn, prec, rec);
        /* every category has a positive and a negative scenario */
        CU_ASSERT(sc->pos >= 1 && n - sc->pos >= 1);
    }
    fflush(stdout);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(n, (int)names->len);
    g_ptr_array_free(cats, TRUE);
    fx_close(&fx);
    g_hash_table_destroy(scores);
    g_ptr_array_free(names, TRUE);
    g_free(dir);
}

/* Phone keys: one number however it is written; too short or long: none. */
static void test_detect_phone_key(void)
{
    static const struct {
        const char *in, *key;
    } cases[] = {
        { "+86 138 0013 8000", "3800138000" }, { "138-0013-8000", "3800138000" },
        { "0086 13800138000", "3800138000" }, { "+86 10 8888 0000", "1088880000" },
        { "010-8888-0000", "1088880000" }, { "+1 (415) 555-0100", "4155550100" },
        { "(415) 555-0100", "4155550100" }, { "8888-0000", "88880000" },
        { "12345", NULL }, { "6222020200001234567", NULL },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *k = det_phone_key(cases[i].in);
        if (cases[i].key == NULL) {
            CU_ASSERT_PTR_NULL(k);
        } else if (k == NULL || strcmp(k, cases[i].key) != 0) {
            fprintf(stderr, "\n  %s: %s, not %s", cases[i].in, k ? k : "(none)", cases[i].key);
            CU_FAIL("phone key");
        }
        g_free(k);
    }
}

/* What the scan finds in text: customers' addresses, phones and names,
 * each once however often and in whatever form (full-width digits,
 * upper case), and nothing of employees or strangers. */
static void test_detect_scan(void)
{
    static const struct {
        const char *text;
        int addrs, phones, names;
    } cases[] = {
        { "联系人 PURCHASING@XINGCHEN.EXAMPLE，电话 ０１０－８８８８－０００１", 1, 1, 0 },
        { "北京星辰科技有限公司 北京星辰科技有限公司 purchasing@xingchen.example "
          "purchasing@xingchen.example", 1, 0, 1 },
        { "li.na@corp.example +86 138 0013 8000 stranger@else.example 021-1234-5678", 0, 0, 0 },
        { "13622223333 15844445555\n+1 212 555 0142", 0, 3, 0 },
        { "globex corporation, acme trading, ltd. and initechgmbh", 0, 0, 2 },
        { "order 6222020200001234567 ref 2024-06-12", 0, 0, 0 },
        { "someone@sub.xingchen.example", 0, 0, 0 },
    };
    struct fx fx;
    struct det_know *k = NULL;
    char *err = NULL;

    CU_ASSERT_EQUAL_FATAL(fx_open(&fx), 0);
    CU_ASSERT_EQUAL_FATAL(det_know_get(fx.dir, 4, &k, &err), 0);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GHashTable *items = det_items_new();
        GHashTableIter it;
        gpointer v;
        int n[3] = { 0, 0, 0 };
        char *norm = det_text_norm(cases[i].text, -1);
        det_know_scan(k, norm, strlen(norm), items);
        g_free(norm);
        g_hash_table_iter_init(&it, items);
        while (g_hash_table_iter_next(&it, NULL, &v))
            n[((struct det_item *)v)->kind]++;
        if (n[0] != cases[i].addrs || n[1] != cases[i].phones || n[2] != cases[i].names) {
            fprintf(stderr, "\n  \"%s\": %d addresses, %d phones, %d names", cases[i].text,
                    n[0], n[1], n[2]);
            CU_FAIL("scan");
        }
        g_hash_table_destroy(items);
    }
    det_know_unref(&k);
    fx_close(&fx);
}

/* The body hash: white space and wrapping do not matter, the text does;
 * a short body has none. */
static void test_detect_body_hash(void)
{
    static const char *const same[] = {
        "The terms we agreed for the 2024-2026 supply contract: USD 41.50 per unit, "
        "120,000 units a year.",
        "The terms we agreed for the 2024-2026 supply contract:\r\nUSD 41.50 per unit,\r\n"
        "  120,000 units a year.\r\n\r\n",
    };
    unsigned char h[2][CUS_SHA256_LEN], other[CUS_SHA256_LEN];
    struct msg *m = msg_new_unparsed("test");

    for (int i = 0; i < 2; i++) {
        g_string_assign(m->body, same[i]);
        CU_ASSERT_EQUAL(idx_body_hash(m, h[i]), 1);
    }
    CU_ASSERT_EQUAL(memcmp(h[0], h[1], CUS_SHA256_LEN), 0);
    g_string_assign(m->body, "The terms we agreed for the 2024-2026 supply contract: USD 41.60 "
                             "per unit, 120,000 units a year.");
    CU_ASSERT_EQUAL(idx_body_hash(m, other), 1);
    CU_ASSERT_NOT_EQUAL(memcmp(h[0], other, CUS_SHA256_LEN), 0);
    g_string_assign(m->body, "Thanks, received.\n");
    CU_ASSERT_EQUAL(idx_body_hash(m, other), 0);
    msg_free(&m);
}

/* The body hash as first written (every character through GLib), to check
 * the one with an ASCII fast path against. */
static int body_hash_ref(const char *body, unsigned char sha_r[CUS_SHA256_LEN])
{
    GString *t = g_string_new(NULL);
    const char *p = body;
    int ok;

    for (; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (!g_unichar_isspace(c) && c != 0xFEFF && c != 0x200B)
            g_string_append_len(t, p, g_utf8_next_char(p) - p);
    }
    ok = t->len >= IDX_BODY_HASH_MIN;
    if (ok)
        cus_sha256(t->str, t->len, sha_r);
    g_string_free(t, TRUE);
    return ok;
}

/* Random bodies of every ASCII byte and Unicode spaces among Chinese: the
 * same hash, and the same "too short", as the plain version. */
static void test_detect_body_hash_same(void)
{
    static const char *const pieces[] = {
        "\u3000", "\u00a0", "\u2028", "\u2029", "\ufeff", "\u200b", "\xc2\x85", "合同",
        "单价", "\u2003", "\xef\xbc\x90",
    };
    GRand *r = g_rand_new_with_seed(7);
    struct msg *m = msg_new_unparsed("test");
    int wrong = 0;

    for (int n = 0; n < 2000; n++) {
        unsigned char a[CUS_SHA256_LEN], b[CUS_SHA256_LEN];
        int len = g_rand_int_range(r, 0, 120);
        g_string_truncate(m->body, 0);
        for (int i = 0; i < len; i++) {
            if (g_rand_int_range(r, 0, 4) == 0)
                g_string_append(m->body, pieces[g_rand_int_range(r, 0, G_N_ELEMENTS(pieces))]);
            else
                g_string_append_c(m->body, (char)g_rand_int_range(r, 1, 128));
        }
        /* GLib's SHA-256, then OpenSSL's */
        for (int w = 0; w < 2; w++) {
            idx_body_hash_use(w == 0 ? NULL : cus_sha256);
            if (idx_body_hash(m, a) != body_hash_ref(m->body->str, b) ||
                (body_hash_ref(m->body->str, b) && memcmp(a, b, sizeof(a)) != 0))
                wrong++;
        }
        idx_body_hash_use(NULL);
    }
    CU_ASSERT_EQUAL(wrong, 0);
    msg_free(&m);
    g_rand_free(r);
}

/* Split an mbox at every "From " line (as tests/data/pydecode.py does). */
static void corpus_file(struct fx *fx, const char *path, GHashTable *counts, int *msgs,
                        int *unparsed, GArray *times)
{
    static char *rcpts[] = { "partner@unrelated-co.example", "lina.notes@163.com", NULL };
    GBytes *raw = NULL;
    const char *data;
    gsize len, start = 0;

    if (cus_read_file(path, 1 << 26, &raw, NULL) < 0)
        return;
    data = g_bytes_get_data(raw, &len);
    for (gsize i = 1; i <= len; i++) {
        GPtrArray *findings = NULL;
        const char *one;
        double t0;
        int r;
        if (i < len && !(len >= 5 && memcmp(data, "From ", 5) == 0 && data[i - 1] == '\n' &&
                         i + 5 <= len && memcmp(data + i, "From ", 5) == 0))
            continue;
        (*msgs)++;
        /* the milter never sees an mbox "From " line */
        one = data + start;
        if (i - start > 5 && memcmp(one, "From ", 5) == 0) {
            const char *nl = memchr(one, '\n', i - start);
            one = nl != NULL ? nl + 1 : data + i;
        }
        t0 = cus_now();
        r = detect_raw(fx, path, one, (size_t)(data + i - one), "li.na@corp.example", rcpts,
                       "li.na", &findings);
        g_array_append_val(times, (double){ cus_now() - t0 });
        CU_ASSERT(r == 0 || r == -2);
        *unparsed += r == -2;
        for (guint k = 0; findings != NULL && k < findings->len; k++) {
            const struct det_finding *f = findings->pdata[k];
            int n = GPOINTER_TO_INT(g_hash_table_lookup(counts, f->category));
            g_hash_table_replace(counts, g_strdup(f->category), GINT_TO_POINTER(n + 1));
            if (strstr(" forward-external auto-forward customer-data personal-webmail "
                       "bcc-external ", f->category) != NULL)
                fprintf(stderr, "\n  %s: %s: %s", path, f->rule, f->evidence);
        }
        if (findings != NULL)
            g_ptr_array_free(findings, TRUE);
        start = i;
    }
    g_bytes_unref(raw);
}

static void corpus_walk(struct fx *fx, const char *dir, GHashTable *counts, int *msgs,
                        int *unparsed, GArray *times)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *f;

    if (d == NULL)
        return;
    while ((f = g_dir_read_name(d)) != NULL) {
        char *path = g_build_filename(dir, f, NULL);
        if (strcmp(f, ".cache") == 0 || strcmp(f, ".done") == 0)
            ;
        else if (g_file_test(path, G_FILE_TEST_IS_DIR))
            corpus_walk(fx, path, counts, msgs, unparsed, times);
        else
            corpus_file(fx, path, counts, msgs, unparsed, times);
        g_free(path);
    }
    g_dir_close(d);
}

static gint cmp_double(gconstpointer a, gconstpointer b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Real mail nobody here wrote (bounces, clients' test mail, malformed
 * MIME, Chinese), every message as if a sales rep sent it to an outside
 * company and to a 163.com address: none of it carries our customers'
 * data or threads, so none of it may be flagged by these detectors. The
 * other categories are counted and shown. */
static void test_detect_corpus(void)
{
    char *top = cut_corpus("");
    GHashTable *counts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GArray *times = g_array_new(FALSE, FALSE, sizeof(double));
    GHashTableIter it;
    gpointer k, v;
    struct fx fx;
    int msgs = 0, mine = 0, unparsed = 0;

    CU_ASSERT_EQUAL_FATAL(fx_open(&fx), 0);
    corpus_walk(&fx, top, counts, &msgs, &unparsed, times);
    CU_ASSERT(msgs >= 200);
    g_array_sort(times, cmp_double);
    printf("\n  real mail: %d messages (%d not a message to GMime), parse and detectors "
           "median %.2f ms, p99 %.2f ms; findings:", msgs, unparsed, times->len ? g_array_index(times, double, times->len / 2) * 1e3 : 0.0,
           times->len ? g_array_index(times, double, times->len * 99 / 100) * 1e3 : 0.0);
    g_hash_table_iter_init(&it, counts);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        printf(" %s %d", (char *)k, GPOINTER_TO_INT(v));
        if (strstr(" forward-external auto-forward customer-data personal-webmail "
                   "bcc-external ", k) != NULL)
            mine += GPOINTER_TO_INT(v);
    }
    printf("%s\n", g_hash_table_size(counts) ? "" : " none");
    fflush(stdout);
    CU_ASSERT_EQUAL(mine, 0);
    fx_close(&fx);
    g_hash_table_destroy(counts);
    g_array_free(times, TRUE);
    g_free(top);
}

CUS_SUITE(detect)
{
    CU_pSuite s = CU_add_suite("detect", NULL, NULL);

    CU_add_test(s, "phone keys", test_detect_phone_key);
    CU_add_test(s, "customer data in text", test_detect_scan);
    CU_add_test(s, "body hash", test_detect_body_hash);
    CU_add_test(s, "body hash: the same as through GLib for every character, on random text, "
                   "with GLib's SHA-256 and OpenSSL's",
                test_detect_body_hash_same);
    CU_add_test(s, "labelled scenarios: precision and recall", test_detect_scenarios);
    CU_add_test(s, "real mail: none of it flagged as customer data or threads",
                test_detect_corpus);
}
