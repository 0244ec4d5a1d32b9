/*
 * test-store.c - the segment store: round trips (plain, encrypted, with a
 * dictionary), reopen, sealing, corruption, keyrings and key rotation, torn
 * tails, the writer lock, walking, write failures, and rewriting a segment
 * without some message records (retention).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "cutest.h"
#include "custos/store.h"

#define KEY_A "alpha 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define KEY_B "beta  f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f\n"

struct obj {
    GBytes *data;
    unsigned char sha[CUS_SHA256_LEN];
    struct store_loc loc;
    enum store_kind kind;
};

static guint64 rng_state = 88172645463325252ull;

/* xorshift64: deterministic, and random enough that zstd finds nothing. */
static guint32 rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (guint32)(rng_state >> 32);
}

static GBytes *random_bytes(size_t len)
{
    unsigned char *p = g_malloc(len ? len : 1);

    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)rng();
    return g_bytes_new_take(p, len);
}

/* Something mail-like: shared header shapes, varying names and text. */
static GBytes *fake_mail(unsigned int i, size_t body)
{
    static const char *words[] = { "quarterly", "invoice", "meeting", "customer",
        "contract", "please", "review", "attached", "regards", "schedule",
        "project", "update", "shipment", "pricing", "thanks", "tomorrow" };
    GString *s = g_string_new(NULL);

    g_string_append_printf(s,
        "Received: from mx%u.example.com (mx%u.example.com [192.0.2.%u])\r\n"
        "\tby mail.example.org (Postfix) with ESMTPS id 4Q%08X\r\n"
        "\tfor <user%u@example.org>; Mon, %u Jan 2024 10:%02u:00 +0000\r\n"
        "From: \"Sender %u\" <sender%u@example.com>\r\n"
        "To: \"User %u\" <user%u@example.org>\r\n"
        "Subject: Re: %s %s #%u\r\n"
        "Date: Mon, %u Jan 2024 10:%02u:00 +0000\r\n"
        "Message-ID: <%08X.%u@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n",
        i % 7, i % 7, i % 250, rng(), i % 40, 1 + i % 28, i % 60, i, i, i % 40,
        i % 40, words[i % 16], words[(i / 16) % 16], i, 1 + i % 28, i % 60, rng(), i);
    while (s->len < body)
        g_string_append_printf(s, "%s %s %u ", words[rng() % 16], words[rng() % 16],
                                rng() % 1000);
    g_string_append(s, "\r\n-- \r\nExample Corp, 1 Main Street\r\n");
    return g_string_free_to_bytes(s);
}

static void obj_set(struct obj *o, GBytes *data, enum store_kind kind)
{
    o->data = data;
    o->kind = kind;
    cus_sha256(g_bytes_get_data(data, NULL), g_bytes_get_size(data), o->sha);
}

static char *write_keyring(const char *dir, const char *name, const char *text, int mode)
{
    char *path = g_build_filename(dir, name, NULL);

    CU_ASSERT_FATAL(g_file_set_contents(path, text, -1, NULL));
    CU_ASSERT_FATAL(chmod(path, (mode_t)mode) == 0);
    return path;
}

static struct store *open_store(const char *dir, const struct store_opts *o, int flags)
{
    struct store *st = NULL;
    char *err = NULL;

    if (store_open(dir, o, flags, &st, &err) < 0) {
        fprintf(stderr, "store_open: %s\n", err);
        g_free(err);
    }
    CU_ASSERT_FATAL(st != NULL);
    return st;
}

static int append_obj(struct store *st, struct obj *o)
{
    char *err = NULL;
    int r = store_append(st, o->kind, o->sha, g_bytes_get_data(o->data, NULL),
                         g_bytes_get_size(o->data), &o->loc, &err);

    if (r < 0) {
        fprintf(stderr, "store_append: %s\n", err);
        g_free(err);
    }
    return r;
}

/* Read o back and compare; 0 if equal. */
static int check_obj(struct store *st, const struct obj *o)
{
    GBytes *got = NULL;
    char *err = NULL;
    int ok;

    if (store_read(st, &o->loc, o->sha, &got, &err) < 0) {
        fprintf(stderr, "store_read: %s\n", err);
        g_free(err);
        return -1;
    }
    ok = g_bytes_equal(got, o->data);
    g_bytes_unref(got);
    return ok ? 0 : -1;
}

static void free_objs(struct obj *objs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (objs[i].data != NULL)
            g_bytes_unref(objs[i].data);
}

static char *read_err(struct store *st, const struct obj *o)
{
    GBytes *got = NULL;
    char *err = NULL;

    CU_ASSERT(store_read(st, &o->loc, o->sha, &got, &err) < 0);
    CU_ASSERT(got == NULL);
    CU_ASSERT_PTR_NOT_NULL(err);
    return err;
}

static void train(struct store *st, unsigned int n)
{
    GBytes **samples = g_new(GBytes *, n);
    char *err = NULL;

    for (unsigned int i = 0; i < n; i++)
        samples[i] = fake_mail(10000 + i, 3000 + rng() % 6000);
    CU_ASSERT(store_train_dict(st, samples, n, &err) == 0);
    if (err != NULL)
        fprintf(stderr, "train: %s\n", err);
    g_free(err);
    for (unsigned int i = 0; i < n; i++)
        g_bytes_unref(samples[i]);
    g_free(samples);
}

/* ---- round trips -------------------------------------------------------- */

static const struct {
    const char *name;
    int key;
    int dict;
} roundtrip_cases[] = {
    { "plain", 0, 0 },
    { "encrypted", 1, 0 },
    { "dictionary", 0, 1 },
    { "encrypted+dictionary", 1, 1 },
};

#define NOBJ 10

static void test_roundtrip(void)
{
    for (size_t c = 0; c < G_N_ELEMENTS(roundtrip_cases); c++) {
        char *dir = cut_tmpdir(), *err = NULL, *kf = NULL;
        struct store_opts o = { .segment_size = 0, .use_dict = roundtrip_cases[c].dict };
        struct obj objs[NOBJ];
        struct store *st;
        size_t sizes[] = { 0, 1, 100, 5000, 1024 * 1024 };
        static const char json[] = "{\"from\":\"a@b\",\"rcpt\":[\"c@d\"]}";
        GString *big;

        memset(objs, 0, sizeof(objs));
        CU_ASSERT_FATAL(store_init(dir, &err) == 0);
        if (roundtrip_cases[c].key) {
            kf = write_keyring(dir, "keys", "# test keys\n\n" KEY_A, 0600);
            o.key_file = kf;
        }
        st = open_store(dir, &o, STORE_WRITE);
        if (roundtrip_cases[c].dict) {
            train(st, 20);      /* too few: no dictionary */
            CU_ASSERT(!store_has_dict(st));
            train(st, 300);
            CU_ASSERT(store_has_dict(st));
        }
        obj_set(&objs[0], g_bytes_new("", 0), STORE_MESSAGE);
        obj_set(&objs[1], g_bytes_new("x", 1), STORE_MESSAGE);
        obj_set(&objs[2], random_bytes(sizes[2]), STORE_MESSAGE);
        obj_set(&objs[3], fake_mail(1, sizes[3]), STORE_MESSAGE);
        obj_set(&objs[4], random_bytes(sizes[4]), STORE_MESSAGE);
        obj_set(&objs[5], fake_mail(2, 200000), STORE_MESSAGE);
        obj_set(&objs[6], g_bytes_new_static(json, sizeof(json) - 1), STORE_DELIVERY);
        big = g_string_new(NULL);
        for (int i = 0; i < 300000; i++)
            g_string_append(big, "0123456789");
        obj_set(&objs[7], g_string_free_to_bytes(big), STORE_MESSAGE);
        obj_set(&objs[8], fake_mail(3, 800), STORE_MESSAGE);
        obj_set(&objs[9], fake_mail(3, 800), STORE_MESSAGE);   /* same again */
        for (int i = 0; i < NOBJ; i++)
            CU_ASSERT(append_obj(st, &objs[i]) == 0);
        for (int i = 0; i < NOBJ; i++)
            CU_ASSERT(check_obj(st, &objs[i]) == 0);
        CU_ASSERT(store_sync(st, &err) == 0);
        /* 1 MB random stays 1 MB; the rest shrinks. */
        CU_ASSERT(store_disk_bytes(st) > 1024 * 1024);
        CU_ASSERT(store_disk_bytes(st) < 1024 * 1024 + 200000 + 120000);
        store_close(&st);
        CU_ASSERT(st == NULL);

        /* Reopen read-only, then as a writer, and read everything again. */
        st = open_store(dir, &o, 0);
        for (int i = NOBJ - 1; i >= 0; i--)
            CU_ASSERT(check_obj(st, &objs[i]) == 0);
        store_close(&st);
        st = open_store(dir, &o, STORE_WRITE);
        CU_ASSERT(store_has_dict(st) == roundtrip_cases[c].dict);
        for (int i = 0; i < NOBJ; i++)
            CU_ASSERT(check_obj(st, &objs[i]) == 0);
        store_close(&st);
        if (CU_get_number_of_failures() > 0)
            fprintf(stderr, "case %s\n", roundtrip_cases[c].name);
        free_objs(objs, NOBJ);
        g_free(kf);
        cut_rmtree(dir);
        g_free(dir);
    }
}

/* A message with a dictionary compresses better than without. */
static void test_dict_helps(void)
{
    char *dir = cut_tmpdir(), *err = NULL, *path;
    struct store_opts o = { .use_dict = 1 };
    struct obj a, b;
    struct store *st;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    st = open_store(dir, &o, STORE_WRITE);
    obj_set(&a, fake_mail(5, 1500), STORE_MESSAGE);
    CU_ASSERT(append_obj(st, &a) == 0);
    train(st, 400);
    CU_ASSERT_FATAL(store_has_dict(st));
    obj_set(&b, g_bytes_ref(a.data), STORE_MESSAGE);
    CU_ASSERT(append_obj(st, &b) == 0);
    CU_ASSERT(b.loc.length < a.loc.length);
    CU_ASSERT(check_obj(st, &a) == 0 && check_obj(st, &b) == 0);
    store_close(&st);

    /* Without dict-1.zdict the dictionary is found in the segment. */
    path = g_build_filename(dir, "store", "dict-1.zdict", NULL);
    CU_ASSERT(unlink(path) == 0);
    st = open_store(dir, &o, 0);
    CU_ASSERT(check_obj(st, &b) == 0);
    store_close(&st);
    st = open_store(dir, &o, STORE_WRITE);  /* writes the file again */
    CU_ASSERT(store_has_dict(st));
    CU_ASSERT(access(path, F_OK) == 0);
    store_close(&st);
    g_free(path);
    free_objs(&a, 1);
    free_objs(&b, 1);
    cut_rmtree(dir);
    g_free(dir);
}

/* ---- sealing ----------------------------------------------------------- */

static void test_sealing(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct store_opts o = { .segment_size = 64 * 1024 };
    struct obj objs[60];
    struct store *st;
    uint32_t maxseg = 0;
    struct stat sb;
    char *p;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    st = open_store(dir, &o, STORE_WRITE);
    for (int i = 0; i < 60; i++) {
        obj_set(&objs[i], random_bytes(4000 + (size_t)i * 10), STORE_MESSAGE);
        CU_ASSERT(append_obj(st, &objs[i]) == 0);
        if (objs[i].loc.segment > maxseg)
            maxseg = objs[i].loc.segment;
    }
    CU_ASSERT(maxseg >= 3);
    for (int i = 0; i < 60; i++)
        CU_ASSERT(check_obj(st, &objs[i]) == 0);
    store_close(&st);
    p = g_build_filename(dir, "store", "seg-000001.cseg", NULL);
    CU_ASSERT(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0440);
    g_free(p);
    st = open_store(dir, &o, 0);
    for (int i = 0; i < 60; i++)
        CU_ASSERT(check_obj(st, &objs[i]) == 0);
    store_close(&st);
    /* A writer goes on after the last segment. */
    st = open_store(dir, &o, STORE_WRITE);
    CU_ASSERT(append_obj(st, &objs[0]) == 0);
    CU_ASSERT(objs[0].loc.segment >= maxseg);
    CU_ASSERT(check_obj(st, &objs[0]) == 0);
    store_close(&st);
    free_objs(objs, 60);
    cut_rmtree(dir);
    g_free(dir);
}

/* ---- corruption -------------------------------------------------------- */

static void flip_byte(const char *dir, uint32_t segno, uint64_t off)
{
    char name[32], *path;
    unsigned char c;
    int fd;

    snprintf(name, sizeof(name), "seg-%06u.cseg", segno);
    path = g_build_filename(dir, "store", name, NULL);
    chmod(path, 0640);
    fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(pread(fd, &c, 1, (off_t)off) == 1);
    c ^= 0x20;
    CU_ASSERT(pwrite(fd, &c, 1, (off_t)off) == 1);
    close(fd);
    g_free(path);
}

static const struct {
    int key;
    int compressible;
    int where;          /* bytes into the record to flip */
    const char *expect; /* in the error */
} corrupt_cases[] = {
    { 0, 0, 200, "hash mismatch" },
    { 0, 1, 200, NULL },    /* "corrupt compressed data" or "hash mismatch" */
    { 1, 0, 200, "authentication failed" },
    { 1, 1, 140, "authentication failed" },
    { 0, 0, 50, "bad record header" },
    { 1, 1, 10, "bad record header" },
};

static void test_corruption(void)
{
    for (size_t c = 0; c < G_N_ELEMENTS(corrupt_cases); c++) {
        char *dir = cut_tmpdir(), *err = NULL, *kf = NULL;
        char hex[CUS_SHA256_HEX];
        const char *expect;
        struct store_opts o = { 0 };
        struct obj objs[3];
        struct store *st;

        CU_ASSERT_FATAL(store_init(dir, &err) == 0);
        if (corrupt_cases[c].key) {
            kf = write_keyring(dir, "keys", KEY_A, 0600);
            o.key_file = kf;
        }
        st = open_store(dir, &o, STORE_WRITE);
        for (int i = 0; i < 3; i++) {
            obj_set(&objs[i], corrupt_cases[c].compressible ? fake_mail(i, 3000)
                                                             : random_bytes(3000),
                    STORE_MESSAGE);
            CU_ASSERT(append_obj(st, &objs[i]) == 0);
        }
        store_close(&st);
        flip_byte(dir, objs[1].loc.segment, objs[1].loc.offset + (uint64_t)corrupt_cases[c].where);
        st = open_store(dir, &o, 0);
        CU_ASSERT(check_obj(st, &objs[0]) == 0);
        CU_ASSERT(check_obj(st, &objs[2]) == 0);
        err = read_err(st, &objs[1]);
        cus_hex(objs[1].sha, CUS_SHA256_LEN, hex);
        CU_ASSERT(err != NULL && strstr(err, hex) != NULL);
        CU_ASSERT(err != NULL && strstr(err, "seg-000001.cseg") != NULL);
        expect = corrupt_cases[c].expect;
        if (expect == NULL && err != NULL && strstr(err, "hash mismatch") == NULL)
            expect = "corrupt compressed data";
        else if (expect == NULL)
            expect = "hash mismatch";
        CU_ASSERT(err != NULL && strstr(err, expect) != NULL);
        if (err != NULL && strstr(err, expect) == NULL)
            fprintf(stderr, "case %zu: %s\n", c, err);
        g_free(err);
        store_close(&st);
        /* A writer does not cut a damaged record that good ones follow. */
        st = open_store(dir, &o, STORE_WRITE);
        CU_ASSERT(check_obj(st, &objs[2]) == 0);
        store_close(&st);
        free_objs(objs, 3);
        g_free(kf);
        cut_rmtree(dir);
        g_free(dir);
    }
}

/* ---- keys -------------------------------------------------------------- */

static const struct {
    const char *text;
    int mode;
    const char *expect;
} keyfile_cases[] = {
    { KEY_A, 0644, "mode 0644" },
    { KEY_A, 0640, "mode 0640" },
    { "# c\n" KEY_A "alpha zz\n", 0600, "keys:3:" },
    { "# only\n\n", 0600, "holds no keys" },
    { "x 0011\n", 0600, "keys:1:" },
    { KEY_A KEY_A, 0600, "appears twice" },
    { "bad/id 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
      0600, "keys:1: bad key id" },
    { "lonely\n", 0600, "keys:1:" },
};

static void test_keyfile_refused(void)
{
    char *dir = cut_tmpdir(), *err = NULL;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    for (size_t c = 0; c < G_N_ELEMENTS(keyfile_cases); c++) {
        char *kf = write_keyring(dir, "keys", keyfile_cases[c].text, keyfile_cases[c].mode);
        struct store_opts o = { .key_file = kf };
        struct store *st = NULL;

        err = NULL;
        CU_ASSERT(store_open(dir, &o, STORE_WRITE, &st, &err) < 0);
        CU_ASSERT(st == NULL);
        CU_ASSERT(err != NULL && strstr(err, keyfile_cases[c].expect) != NULL);
        if (err == NULL || strstr(err, keyfile_cases[c].expect) == NULL)
            fprintf(stderr, "case %zu: %s\n", c, err);
        g_free(err);
        g_free(kf);
    }
    /* A key id that is not in the file. */
    {
        char *kf = write_keyring(dir, "keys", KEY_A, 0600);
        struct store_opts o = { .key_file = kf, .key_id = "gamma" };
        struct store *st = NULL;

        err = NULL;
        CU_ASSERT(store_open(dir, &o, STORE_WRITE, &st, &err) < 0);
        CU_ASSERT(err != NULL && strstr(err, "'gamma'") != NULL);
        g_free(err);
        g_free(kf);
    }
    cut_rmtree(dir);
    g_free(dir);
}

static int collect_keys(void *ctx, const struct store_rec *rec, GBytes *data)
{
    g_ptr_array_add(ctx, g_strdup(rec->key_id));
    return 0;
}

static void test_key_rotation(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    char *ka = write_keyring(dir, "keys-a", KEY_A, 0600);
    char *kab = write_keyring(dir, "keys-ab", KEY_A KEY_B, 0600);
    char *kb = write_keyring(dir, "keys-b", KEY_B, 0600);
    struct store_opts oa = { .key_file = ka }, oab = { .key_file = kab },
                      ob = { .key_file = kb }, oplain = { 0 },
                      oab_a = { .key_file = kab, .key_id = "alpha" };
    struct obj x, y, z;
    struct store *st;
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    obj_set(&x, fake_mail(1, 2000), STORE_MESSAGE);
    obj_set(&y, fake_mail(2, 2000), STORE_MESSAGE);
    obj_set(&z, fake_mail(3, 2000), STORE_MESSAGE);
    st = open_store(dir, &oa, STORE_WRITE);
    CU_ASSERT(append_obj(st, &x) == 0);
    store_close(&st);
    st = open_store(dir, &oab, STORE_WRITE);        /* last line: beta */
    CU_ASSERT(append_obj(st, &y) == 0);
    CU_ASSERT(check_obj(st, &x) == 0);
    CU_ASSERT(check_obj(st, &y) == 0);
    store_close(&st);
    st = open_store(dir, &oab_a, STORE_WRITE);      /* explicit key id */
    CU_ASSERT(append_obj(st, &z) == 0);
    store_close(&st);

    st = open_store(dir, &oab, 0);
    CU_ASSERT(check_obj(st, &x) == 0 && check_obj(st, &y) == 0 && check_obj(st, &z) == 0);
    CU_ASSERT(store_walk_ex(st, collect_keys, ids, &err) == 0);
    CU_ASSERT_FATAL(ids->len == 3);
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 0), "alpha");
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 1), "beta");
    CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 2), "alpha");
    store_close(&st);

    /* Keyring without alpha: a clear error naming the key id. */
    st = open_store(dir, &ob, 0);
    CU_ASSERT(check_obj(st, &y) == 0);
    err = read_err(st, &x);
    CU_ASSERT(err != NULL && strstr(err, "key id 'alpha'") != NULL &&
              strstr(err, "not in key file") != NULL);
    g_free(err);
    store_close(&st);
    st = open_store(dir, &oplain, 0);
    err = read_err(st, &y);
    CU_ASSERT(err != NULL && strstr(err, "key id 'beta'") != NULL &&
              strstr(err, "no key file") != NULL);
    g_free(err);
    store_close(&st);

    g_ptr_array_unref(ids);
    free_objs(&x, 1);
    free_objs(&y, 1);
    free_objs(&z, 1);
    g_free(ka);
    g_free(kab);
    g_free(kb);
    cut_rmtree(dir);
    g_free(dir);
}

/* ---- torn tail, lock --------------------------------------------------- */

static off_t seg_size(const char *dir, uint32_t segno)
{
    char name[32], *path;
    struct stat sb;

    snprintf(name, sizeof(name), "seg-%06u.cseg", segno);
    path = g_build_filename(dir, "store", name, NULL);
    if (stat(path, &sb) < 0)
        sb.st_size = -1;
    g_free(path);
    return sb.st_size;
}

static void append_junk(const char *dir, const void *junk, size_t len)
{
    char *path = g_build_filename(dir, "store", "seg-000001.cseg", NULL);
    int fd = open(path, O_WRONLY | O_APPEND);

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT((size_t)write(fd, junk, len) == len);
    close(fd);
    g_free(path);
}

static void test_torn_tail(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct store_opts o = { 0 };
    struct obj objs[4];
    struct store *st;
    off_t good;
    unsigned char rec[2000];
    int fd;
    char *path;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    st = open_store(dir, &o, STORE_WRITE);
    for (int i = 0; i < 4; i++) {
        obj_set(&objs[i], random_bytes(1500), STORE_MESSAGE);
        CU_ASSERT(append_obj(st, &objs[i]) == 0);
    }
    CU_ASSERT(store_sync(st, &err) == 0);
    store_close(&st);
    good = seg_size(dir, 1);

    /* 0: a partial header; 1: a whole header, part of the payload;
     * 2: zeros (delayed allocation after a crash); 3: 30 bytes of a header. */
    path = g_build_filename(dir, "store", "seg-000001.cseg", NULL);
    fd = open(path, O_RDONLY);
    CU_ASSERT(pread(fd, rec, sizeof(rec), (off_t)objs[3].loc.offset) > 0);
    close(fd);
    g_free(path);
    for (int round = 0; round < 4; round++) {
        unsigned char zeros[4096] = { 0 };

        if (round == 0)
            append_junk(dir, rec, 60);
        else if (round == 1)
            append_junk(dir, rec, 900);
        else if (round == 2)
            append_junk(dir, zeros, sizeof(zeros));
        else
            append_junk(dir, rec, 30);
        CU_ASSERT(seg_size(dir, 1) > good);
        /* A reader ignores it; a writer cuts it off. */
        st = open_store(dir, &o, 0);
        CU_ASSERT(check_obj(st, &objs[3]) == 0);
        store_close(&st);
        st = open_store(dir, &o, STORE_WRITE);
        CU_ASSERT(seg_size(dir, 1) == good);
        for (int i = 0; i < 4; i++)
            CU_ASSERT(check_obj(st, &objs[i]) == 0);
        store_close(&st);
    }
    /* Appending after the cut works. */
    st = open_store(dir, &o, STORE_WRITE);
    CU_ASSERT(append_obj(st, &objs[0]) == 0);
    CU_ASSERT(objs[0].loc.offset == (uint64_t)good);
    CU_ASSERT(check_obj(st, &objs[0]) == 0);
    store_close(&st);
    free_objs(objs, 4);
    cut_rmtree(dir);
    g_free(dir);
}

static void test_second_writer(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct store *st, *st2 = NULL, *rd;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    st = open_store(dir, NULL, STORE_WRITE);
    CU_ASSERT(store_open(dir, NULL, STORE_WRITE, &st2, &err) < 0);
    CU_ASSERT(st2 == NULL);
    CU_ASSERT(err != NULL && strstr(err, "is in use by another writer") != NULL &&
              strstr(err, dir) != NULL);
    g_free(err);
    rd = open_store(dir, NULL, 0);      /* readers need no lock */
    store_close(&rd);
    store_close(&st);
    st = open_store(dir, NULL, STORE_WRITE);
    store_close(&st);
    err = NULL;
    CU_ASSERT(store_open("/nonexistent/arc", NULL, 0, &st, &err) < 0);
    CU_ASSERT(err != NULL && strstr(err, "no store") != NULL);
    g_free(err);
    cut_rmtree(dir);
    g_free(dir);
}

/* ---- walk -------------------------------------------------------------- */

struct walked {
    GArray *locs;
    GPtrArray *shas;
    GPtrArray *errors;
    int kinds[4];
};

static int walk_collect(void *ctx, const struct store_rec *rec, GBytes *data)
{
    struct walked *w = ctx;

    if (rec->error != NULL) {
        CU_ASSERT(data == NULL);
        g_ptr_array_add(w->errors, g_strdup(rec->error));
        return 0;
    }
    CU_ASSERT_FATAL(data != NULL);
    CU_ASSERT(g_bytes_get_size(data) == rec->raw_len);
    g_array_append_val(w->locs, rec->loc);
    g_ptr_array_add(w->shas, g_memdup2(rec->sha, CUS_SHA256_LEN));
    w->kinds[rec->kind]++;
    if (rec->kind == STORE_DELIVERY)
        CU_ASSERT(rec->dict_id == 0);
    return 0;
}

struct counter {
    int n, stop_at;
};

static int walk_plain_count(void *ctx, enum store_kind kind,
                            const unsigned char sha[CUS_SHA256_LEN],
                            const struct store_loc *loc, GBytes *data)
{
    struct counter *c = ctx;

    return ++c->n == c->stop_at ? 42 : 0;
}

static void test_walk(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    char *kf = write_keyring(dir, "keys", KEY_A, 0600);
    struct store_opts o = { .segment_size = 256 * 1024, .use_dict = 1, .key_file = kf };
    struct obj objs[80];
    struct walked w = { 0 };
    struct store *st;
    struct counter n = { 0, 0 };
    int msgs = 0;
    char hex[CUS_SHA256_HEX];

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    st = open_store(dir, &o, STORE_WRITE);
    for (int i = 0; i < 80; i++) {
        if (i == 40)
            train(st, 250);
        if (i % 5 == 4) {
            char *json = g_strdup_printf("{\"n\":%d}", i);
            obj_set(&objs[i], g_bytes_new_take(json, strlen(json)), STORE_DELIVERY);
        } else
            obj_set(&objs[i], i % 3 ? fake_mail((unsigned)i, 20000) : random_bytes(9000),
                    STORE_MESSAGE);
        msgs += objs[i].kind == STORE_MESSAGE;
        CU_ASSERT(append_obj(st, &objs[i]) == 0);
    }
    CU_ASSERT(store_has_dict(st));
    w.locs = g_array_new(FALSE, FALSE, sizeof(struct store_loc));
    w.shas = g_ptr_array_new_with_free_func(g_free);
    w.errors = g_ptr_array_new_with_free_func(g_free);
    CU_ASSERT(store_walk_ex(st, walk_collect, &w, &err) == 0);   /* writer's own */
    CU_ASSERT(w.errors->len == 0);
    CU_ASSERT(w.kinds[STORE_DICT] == 1);
    CU_ASSERT(w.kinds[STORE_MESSAGE] == msgs);
    CU_ASSERT(w.kinds[STORE_DELIVERY] == 80 - msgs);
    store_close(&st);

    /* In order: the objects, with the dictionary record before #40. */
    CU_ASSERT_FATAL(w.locs->len == 81);
    for (guint i = 0, j = 0; i < w.locs->len; i++) {
        struct store_loc *l = &g_array_index(w.locs, struct store_loc, i);
        if (i == 40)
            continue;   /* the dictionary */
        CU_ASSERT(memcmp(g_ptr_array_index(w.shas, i), objs[j].sha, CUS_SHA256_LEN) == 0);
        CU_ASSERT(l->segment == objs[j].loc.segment && l->offset == objs[j].loc.offset &&
                  l->length == objs[j].loc.length);
        j++;
    }

    /* One damaged record: reported, the walk goes on. */
    flip_byte(dir, objs[10].loc.segment, objs[10].loc.offset + 300);
    g_array_set_size(w.locs, 0);
    g_ptr_array_set_size(w.shas, 0);
    memset(w.kinds, 0, sizeof(w.kinds));
    st = open_store(dir, &o, 0);
    CU_ASSERT(store_walk_ex(st, walk_collect, &w, &err) == 0);
    CU_ASSERT(w.locs->len == 80);
    CU_ASSERT_FATAL(w.errors->len == 1);
    cus_hex(objs[10].sha, CUS_SHA256_LEN, hex);
    CU_ASSERT(strstr(g_ptr_array_index(w.errors, 0), hex) != NULL);
    /* store_walk stops at it with that error... */
    CU_ASSERT(store_walk(st, walk_plain_count, &n, &err) == -1);
    CU_ASSERT(n.n == 10);   /* #0..#9 */
    CU_ASSERT(err != NULL && strstr(err, hex) != NULL);
    g_free(err);
    /* ...and a callback's non-zero return stops it first. */
    flip_byte(dir, objs[10].loc.segment, objs[10].loc.offset + 300);
    n.n = 0;
    n.stop_at = 5;
    CU_ASSERT(store_walk(st, walk_plain_count, &n, &err) == 42);
    CU_ASSERT(n.n == 5);
    store_close(&st);

    /* A damaged header: the walk skips to the next record. */
    flip_byte(dir, objs[20].loc.segment, objs[20].loc.offset + 1);
    g_ptr_array_set_size(w.errors, 0);
    g_array_set_size(w.locs, 0);
    st = open_store(dir, &o, 0);
    CU_ASSERT(store_walk_ex(st, walk_collect, &w, &err) == 0);
    CU_ASSERT(w.locs->len == 80);
    CU_ASSERT(w.errors->len == 1);
    store_close(&st);

    g_array_unref(w.locs);
    g_ptr_array_unref(w.shas);
    g_ptr_array_unref(w.errors);
    free_objs(objs, 80);
    g_free(kf);
    cut_rmtree(dir);
    g_free(dir);
}

/* ---- write failure ----------------------------------------------------- */

static void test_write_failure(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct store_opts o = { 0 };
    struct obj objs[3], big;
    struct store *st;
    struct rlimit old, lim;
    void (*oldsig)(int);
    off_t before;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    st = open_store(dir, &o, STORE_WRITE);
    for (int i = 0; i < 3; i++) {
        obj_set(&objs[i], random_bytes(5000), STORE_MESSAGE);
        CU_ASSERT(append_obj(st, &objs[i]) == 0);
    }
    CU_ASSERT(store_sync(st, &err) == 0);
    before = seg_size(dir, 1);
    obj_set(&big, random_bytes(1024 * 1024), STORE_MESSAGE);

    /* The file may grow only 100 KB more: the write fails part way. */
    CU_ASSERT_FATAL(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = (rlim_t)before + 100 * 1024;
    oldsig = signal(SIGXFSZ, SIG_IGN);
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CU_ASSERT(store_append(st, big.kind, big.sha, g_bytes_get_data(big.data, NULL),
                           g_bytes_get_size(big.data), &big.loc, &err) < 0);
    CU_ASSERT(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, oldsig);
    CU_ASSERT(err != NULL && strstr(err, "seg-000001.cseg") != NULL &&
              strstr(err, g_strerror(EFBIG)) != NULL);
    if (err != NULL)
        fprintf(stderr, "(expected) %s\n", err);
    g_free(err);
    err = NULL;

    /* Nothing of it stays; the store reads and appends on. */
    CU_ASSERT(seg_size(dir, 1) == before);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(check_obj(st, &objs[i]) == 0);
    CU_ASSERT(append_obj(st, &big) == 0);
    CU_ASSERT(big.loc.offset == (uint64_t)before);
    CU_ASSERT(check_obj(st, &big) == 0);
    CU_ASSERT(store_sync(st, &err) == 0);
    store_close(&st);
    st = open_store(dir, &o, STORE_WRITE);
    CU_ASSERT(seg_size(dir, 1) == before + (off_t)big.loc.length);
    CU_ASSERT(check_obj(st, &big) == 0);
    store_close(&st);
    free_objs(objs, 3);
    free_objs(&big, 1);
    cut_rmtree(dir);
    g_free(dir);
}

/* ---- rewriting a segment without some records --------------------------- */

static guchar *slurp(const char *path, gsize *len)
{
    gchar *data = NULL;

    if (!g_file_get_contents(path, &data, len, NULL))
        return NULL;
    return (guchar *)data;
}

static char *seg_file(const char *dir, uint32_t segno, const char *sfx)
{
    char name[48];

    g_snprintf(name, sizeof(name), "seg-%06u.cseg%s", segno, sfx);
    return g_build_filename(dir, "store", name, NULL);
}

/* The objects of segment 1 at new places: each offset less what was
 * dropped before it. */
static struct store_loc moved(const struct obj *o, const struct store_drop *d, size_t n)
{
    struct store_loc l = o->loc;

    for (size_t i = 0; i < n; i++)
        if (d[i].loc.segment == l.segment && d[i].loc.offset < o->loc.offset)
            l.offset -= d[i].loc.length;
    return l;
}

static void rewrite_case(int encrypted)
{
    char *dir = cut_tmpdir(), *err = NULL, *seg, *tmp, *kf = NULL;
    struct store_opts o = { .segment_size = 64 * 1024 };
    struct obj objs[40];
    struct store_drop drop[3], bad;
    struct store *st, *rd;
    guchar *before, *after;
    gsize blen = 0, alen = 0, pos = 0;
    uint64_t size = 0;
    int dropped[3] = { 2, 6, 11 }, k;
    struct stat sb;

    CU_ASSERT_FATAL(store_init(dir, &err) == 0);
    if (encrypted) {
        kf = write_keyring(dir, "keys", KEY_A, 0600);
        o.key_file = kf;
    }
    st = open_store(dir, &o, STORE_WRITE);
    /* Messages and small events in turn, in segment 1 and after. */
    for (int i = 0; i < 40; i++) {
        obj_set(&objs[i], i % 3 == 1 ? fake_mail(i, 200) : random_bytes(3000 + (size_t)i),
                i % 3 == 1 ? STORE_EVENT : STORE_MESSAGE);
        CU_ASSERT_FATAL(append_obj(st, &objs[i]) == 0);
    }
    CU_ASSERT_FATAL(objs[11].loc.segment == 1 && objs[39].loc.segment > 1);
    for (int i = 0; i < 3; i++) {
        drop[i].loc = objs[dropped[i]].loc;
        memcpy(drop[i].sha, objs[dropped[i]].sha, CUS_SHA256_LEN);
    }
    seg = seg_file(dir, 1, "");
    tmp = seg_file(dir, 1, ".rewrite");
    before = slurp(seg, &blen);
    CU_ASSERT_FATAL(before != NULL);

    /* What index.db says must be what is there, else nothing is written. */
    bad = drop[1];
    bad.sha[0] ^= 1;
    CU_ASSERT(store_rewrite_prepare(st, 1, &bad, 1, &size, &err) == -1);
    CU_ASSERT(err != NULL && strstr(err, "another object") != NULL);
    g_free(err);
    err = NULL;
    bad = drop[1];
    bad.loc.offset += 1;
    CU_ASSERT(store_rewrite_prepare(st, 1, &bad, 1, &size, &err) == -1);
    g_free(err);
    err = NULL;
    bad.loc = objs[1].loc;                  /* an event, not a message */
    memcpy(bad.sha, objs[1].sha, CUS_SHA256_LEN);
    CU_ASSERT(store_rewrite_prepare(st, 1, &bad, 1, &size, &err) == -1);
    CU_ASSERT(err != NULL && strstr(err, "not a message") != NULL);
    g_free(err);
    err = NULL;
    {
        struct store_drop rev[2] = { drop[1], drop[0] };
        CU_ASSERT(store_rewrite_prepare(st, 1, rev, 2, &size, &err) == -1);
        g_free(err);
        err = NULL;
    }
    CU_ASSERT(access(tmp, F_OK) < 0);
    /* The open segment is sealed first. */
    {
        struct store_drop last;
        last.loc = objs[39].loc;
        memcpy(last.sha, objs[39].sha, CUS_SHA256_LEN);
        CU_ASSERT(store_rewrite_prepare(st, last.loc.segment, &last, 1, &size, &err) == -1);
        CU_ASSERT(err != NULL && strstr(err, "seal") != NULL);
        g_free(err);
        err = NULL;
    }

    /* A reader that has segment 1 open from before. */
    rd = open_store(dir, &o, 0);
    CU_ASSERT(check_obj(rd, &objs[20]) == 0);

    CU_ASSERT_FATAL(store_rewrite_prepare(st, 1, drop, 3, &size, &err) == 0);
    CU_ASSERT(access(tmp, F_OK) == 0);
    CU_ASSERT(store_segment_bytes(st, 1) == blen);  /* not in place yet */
    CU_ASSERT(size == blen - drop[0].loc.length - drop[1].loc.length - drop[2].loc.length);
    /* Committed but not renamed: records at their new places are found in
     * the .rewrite file; at the old ones in the segment. */
    {
        struct obj m = objs[20];
        m.loc = moved(&objs[20], drop, 3);
        CU_ASSERT(m.loc.offset < objs[20].loc.offset);
        CU_ASSERT(check_obj(rd, &m) == 0);
        CU_ASSERT(check_obj(rd, &objs[20]) == 0);
    }
    CU_ASSERT(store_rewrite_commit(st, 1, &err) == 0);
    CU_ASSERT(access(tmp, F_OK) < 0);
    CU_ASSERT(stat(seg, &sb) == 0 && (sb.st_mode & 07777) == 0440);
    CU_ASSERT(store_rewrite_commit(st, 1, &err) == 0);     /* done already */

    /* Byte for byte the old file without the three records. */
    after = slurp(seg, &alen);
    CU_ASSERT_FATAL(after != NULL && alen == size);
    k = 0;
    for (gsize off = 0; off < blen;) {
        if (k < 3 && off == drop[k].loc.offset) {
            off += drop[k++].loc.length;
            continue;
        }
        if (pos >= alen || before[off] != after[pos])
            break;
        off++;
        pos++;
    }
    CU_ASSERT(k == 3 && pos == alen);
    /* Every kept record where it moved to, for the writer, the old reader
     * and a new one; the dropped ones are gone. */
    for (int pass = 0; pass < 3; pass++) {
        struct store *s2 = pass == 0 ? st : pass == 1 ? rd : open_store(dir, &o, 0);

        for (int i = 0; i < 40; i++) {
            struct obj m = objs[i];
            int gone = i == dropped[0] || i == dropped[1] || i == dropped[2];

            if (gone)
                continue;
            m.loc = moved(&objs[i], drop, 3);
            CU_ASSERT(check_obj(s2, &m) == 0);
        }
        if (pass == 2)
            store_close(&s2);
    }
    for (int i = 0; i < 3; i++) {
        GBytes *got = NULL;
        CU_ASSERT(store_read(st, &objs[dropped[i]].loc, objs[dropped[i]].sha, &got, &err) < 0);
        g_free(err);
        err = NULL;
        if (!encrypted)
            CU_ASSERT(memmem(after, alen, g_bytes_get_data(objs[dropped[i]].data, NULL),
                             64) == NULL);
    }
    /* Unfinished copies go; other files stay. */
    CU_ASSERT(g_file_set_contents(tmp, "partial", -1, NULL));
    {
        char *other = g_build_filename(dir, "store", "notes.rewrite", NULL);
        CU_ASSERT(g_file_set_contents(other, "x", -1, NULL));
        CU_ASSERT(store_rewrite_discard(st, &err) == 0);
        CU_ASSERT(access(tmp, F_OK) < 0);
        CU_ASSERT(access(other, F_OK) == 0);
        g_free(other);
    }
    /* Appends go on in a new segment after the sealed ones. */
    CU_ASSERT(store_seal(st, &err) == 0);
    CU_ASSERT(append_obj(st, &objs[0]) == 0);
    CU_ASSERT(check_obj(st, &objs[0]) == 0);
    store_close(&rd);
    store_close(&st);
    g_free(before);
    g_free(after);
    g_free(seg);
    g_free(tmp);
    g_free(kf);
    free_objs(objs, 40);
    cut_rmtree(dir);
    g_free(dir);
}

static void test_rewrite(void) { rewrite_case(0); }
static void test_rewrite_encrypted(void) { rewrite_case(1); }

CUS_SUITE(store)
{
    CU_pSuite s = CU_add_suite("store", NULL, NULL);

    CU_add_test(s, "round trip (plain, key, dictionary)", test_roundtrip);
    CU_add_test(s, "dictionary helps, found again", test_dict_helps);
    CU_add_test(s, "segments seal", test_sealing);
    CU_add_test(s, "corruption is named", test_corruption);
    CU_add_test(s, "bad key files refused", test_keyfile_refused);
    CU_add_test(s, "key rotation, unknown key id", test_key_rotation);
    CU_add_test(s, "torn tail truncated", test_torn_tail);
    CU_add_test(s, "second writer refused", test_second_writer);
    CU_add_test(s, "walk in order, damage reported", test_walk);
    CU_add_test(s, "write failure cut back", test_write_failure);
    CU_add_test(s, "a segment rewritten without some messages", test_rewrite);
    CU_add_test(s, "an encrypted segment rewritten", test_rewrite_encrypted);
}
