/*
 * test-chain.c - the hash chain: canonical events, Ed25519 checkpoints,
 * and what a writer's open does with what a crash left in the store
 * (groups rolled forward into index.db, an unfinished one cut off).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "cutest.h"
#include "custos/archive.h"
#include "custos/chain.h"
#include "custos/verify.h"

/* ---- events ------------------------------------------------------------- */

static void test_event_roundtrip(void)
{
    const char *kv[] = { "id", "7", "sender", "a%b\r\nc", "rcpt", "x@y", "rcpt", "张三@例子.cn",
                         NULL };
    GString *ev = chain_event_format(3, 1764556800, "add", kv);
    struct chain_event *e = NULL;
    char *err = NULL;

    CU_ASSERT_STRING_EQUAL(ev->str, "custos-event 1\nseq 3\ntime 1764556800\ntype add\n"
                           "id 7\nsender a%25b%0D%0Ac\nrcpt x@y\nrcpt 张三@例子.cn\n");
    CU_ASSERT_EQUAL_FATAL(chain_event_parse(ev->str, ev->len, &e, &err), 0);
    CU_ASSERT_EQUAL(e->seq, 3);
    CU_ASSERT_EQUAL(e->time, 1764556800);
    CU_ASSERT_STRING_EQUAL(e->type, "add");
    CU_ASSERT_STRING_EQUAL(chain_event_get(e, "sender"), "a%b\r\nc");
    CU_ASSERT_STRING_EQUAL(chain_event_get(e, "rcpt"), "x@y");
    CU_ASSERT_EQUAL(e->fields->len, 8);
    chain_event_free(&e);
    g_string_free(ev, TRUE);
}

static void test_event_strict(void)
{
    static const char *const bad[] = {
        "custos-event 1\nseq 1\ntime 5\ntype add\nid 1",       /* no final newline */
        "custos-event 2\nseq 1\ntime 5\ntype add\n",           /* version */
        "custos-event 1\nseq 01\ntime 5\ntype add\n",          /* not canonical */
        "custos-event 1\nseq 0\ntime 5\ntype add\n",           /* seq from 1 */
        "custos-event 1\ntime 5\nseq 1\ntype add\n",           /* order */
        "custos-event 1\nseq 1\ntime 5\ntype Add\n",           /* type */
        "custos-event 1\nseq 1\ntime 5\ntype add\nid %41\n",   /* escape */
        "custos-event 1\nseq 1\ntime 5\ntype add\nID 1\n",     /* key */
        "custos-event 1\nseq 1\ntime 5\ntype add\nid\n",       /* no value */
        "custos-event 1\nseq 1\ntime 5\ntype add\nx \xff\n",   /* UTF-8 */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        struct chain_event *e = NULL;
        char *err = NULL;

        CU_ASSERT_EQUAL(chain_event_parse(bad[i], strlen(bad[i]), &e, &err), -1);
        CU_ASSERT_PTR_NULL(e);
        CU_ASSERT_PTR_NOT_NULL(err);
        g_free(err);
    }
}

static void test_chain_hash(void)
{
    unsigned char h0[CUS_SHA256_LEN], h1[CUS_SHA256_LEN], want[CUS_SHA256_LEN];
    unsigned char buf[CUS_SHA256_LEN + 3];

    chain_genesis(h0);
    cus_sha256("custos chain 1", 14, want);
    CU_ASSERT_EQUAL(memcmp(h0, want, CUS_SHA256_LEN), 0);
    chain_step(h0, "abc", 3, h1);
    memcpy(buf, h0, CUS_SHA256_LEN);
    memcpy(buf + CUS_SHA256_LEN, "abc", 3);
    cus_sha256(buf, sizeof(buf), want);
    CU_ASSERT_EQUAL(memcmp(h1, want, CUS_SHA256_LEN), 0);
}

/* ---- keys and checkpoints ----------------------------------------------- */

/* An Ed25519 key pair as PEM files in dir: key (0600) and pub. */
static void make_keys(const char *dir, char **key_r, char **pub_r)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
    *key_r = g_build_filename(dir, "chain.key", NULL);
    *pub_r = g_build_filename(dir, "chain.pub", NULL);
    f = fopen(*key_r, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fchmod(fileno(f), 0600);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    f = fopen(*pub_r, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    PEM_write_PUBKEY(f, pk);
    fclose(f);
    EVP_PKEY_free(pk);
}

static void test_checkpoint_sign(void)
{
    char *dir = cut_tmpdir(), *key = NULL, *pub = NULL, *other_key = NULL, *other_pub = NULL;
    char *sub = g_build_filename(dir, "other", NULL), *err = NULL;
    struct chain_key *k = NULL, *p = NULL, *q = NULL;
    struct chain_checkpoint cp;
    unsigned char h[CUS_SHA256_LEN];
    GString *text = NULL;

    mkdir(sub, 0700);
    make_keys(dir, &key, &pub);
    make_keys(sub, &other_key, &other_pub);
    CU_ASSERT_EQUAL_FATAL(chain_key_load_private(key, &k, &err), 0);
    CU_ASSERT_EQUAL_FATAL(chain_key_load_public(pub, &p, &err), 0);
    CU_ASSERT_EQUAL_FATAL(chain_key_load_public(other_pub, &q, &err), 0);
    CU_ASSERT_STRING_EQUAL(chain_key_id(k), chain_key_id(p));
    CU_ASSERT(g_str_has_prefix(chain_key_id(k), "ed25519:"));
    CU_ASSERT_STRING_NOT_EQUAL(chain_key_id(p), chain_key_id(q));

    chain_genesis(h);
    CU_ASSERT_EQUAL_FATAL(chain_checkpoint_format(42, h, 1764556800, k, &text, &err), 0);
    CU_ASSERT_EQUAL_FATAL(chain_checkpoint_parse(text->str, text->len, &cp, &err), 0);
    CU_ASSERT_EQUAL(cp.seq, 42);
    CU_ASSERT(cp.is_signed);
    CU_ASSERT_EQUAL(memcmp(cp.hash, h, CUS_SHA256_LEN), 0);
    CU_ASSERT_EQUAL(chain_checkpoint_verify(text->str, &cp, p, &err), 1);
    /* Another key: refused, and said why. */
    CU_ASSERT_EQUAL(chain_checkpoint_verify(text->str, &cp, q, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not by the configured key"));
    g_free(err);
    err = NULL;
    /* One byte of the vouched-for hash changed: the signature fails. */
    {
        char *t = g_strdup(text->str), *hl = strstr(t, "hash ") + 5;
        struct chain_checkpoint cp2;

        *hl = *hl == '0' ? '1' : '0';
        CU_ASSERT_EQUAL_FATAL(chain_checkpoint_parse(t, strlen(t), &cp2, &err), 0);
        CU_ASSERT_EQUAL(chain_checkpoint_verify(t, &cp2, p, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad signature"));
        g_free(err);
        err = NULL;
        g_free(t);
    }
    g_string_free(text, TRUE);
    /* A public key cannot sign; a private key readable by others is refused. */
    CU_ASSERT_EQUAL(chain_checkpoint_format(1, h, 1, p, &text, &err), -1);
    g_free(err);
    err = NULL;
    chmod(key, 0644);
    chain_key_free(&k);
    CU_ASSERT_EQUAL(chain_key_load_private(key, &k, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "chmod 600") : NULL);
    g_free(err);
    chain_key_free(&k);
    chain_key_free(&p);
    chain_key_free(&q);
    cut_rmtree(dir);
    g_free(dir);
    g_free(sub);
    g_free(key);
    g_free(pub);
    g_free(other_key);
    g_free(other_pub);
}

/* ---- an archive --------------------------------------------------------- */

static struct cfg *arc_cfg(const char *dir)
{
    struct cfg *cfg = cfg_defaults();

    g_free(cfg->arc_dir);
    cfg->arc_dir = g_build_filename(dir, "archive", NULL);
    cfg->arc_batch = 100000;        /* commit only when told */
    return cfg;
}

static GBytes *mail(int i)
{
    return g_bytes_new_take(g_strdup_printf(
        "From: Alice <alice@corp.example>\r\nTo: bob%d@customer.example\r\n"
        "Subject: quote %d\r\nMessage-ID: <q%d@corp.example>\r\n\r\nPrice %d.\r\n",
        i, i, i, i), 0);
}

static int add(struct arc *arc, int i, int with_env)
{
    GBytes *b = mail(i);
    gsize len;
    const char *raw = g_bytes_get_data(b, NULL);
    const char *rcpts[] = { "bob@customer.example", NULL };
    struct idx_envelope env = { .time = 1000 + i, .sender = "alice@corp.example",
                                .client = "127.0.0.1", .queue_id = "Q", .source = "test",
                                .rcpts = with_env ? rcpts : NULL };
    char *err = NULL;
    int ret;

    len = strlen(raw);
    ret = arc_add(arc, raw, len, &env, NULL, NULL, &err);
    if (ret < 0)
        fprintf(stderr, "arc_add: %s\n", err);
    g_free(err);
    g_bytes_unref(b);
    return ret;
}

struct vcount {
    int n;
    GString *lines;
};

static void vcb(void *ctx, const struct verify_problem *p)
{
    struct vcount *c = ctx;

    c->n++;
    g_string_append_printf(c->lines, "%s %s %s\n", p->kind, p->object, p->detail);
}

/* Problems verify finds (and prints them). */
static int verify_problems(const struct cfg *cfg, struct verify_stats *st)
{
    struct vcount c = { 0, g_string_new(NULL) };
    char *err = NULL;

    if (verify_run(cfg, 2, vcb, &c, st, &err) < 0) {
        fprintf(stderr, "verify: %s\n", err);
        g_free(err);
        c.n = -1;
    }
    if (c.n != 0)
        fprintf(stderr, "%s", c.lines->str);
    g_string_free(c.lines, TRUE);
    return c.n;
}

static gint64 rows(struct arc *arc, const char *sql)
{
    sqlite3_stmt *st = NULL;
    gint64 n = -1;

    if (sqlite3_prepare_v2(idx_db(arc_index(arc)), sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* A child adds n messages (the first `committed` committed), gets its
 * store to disk, optionally appends the first record of one more group,
 * and dies without committing the rest. */
static void crash_after(const struct cfg *cfg, int committed, int n, int torn)
{
    pid_t pid = fork();
    int status;

    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        struct arc *arc = NULL;
        char *err = NULL;

        if (arc_open(cfg, ARC_WRITE, &arc, &err) < 0)
            _exit(2);
        for (int i = 0; i < n; i++) {
            if (add(arc, 1000 + i, 1) < 0)
                _exit(3);
            if (i + 1 == committed && arc_flush(arc, &err) < 0)
                _exit(4);
        }
        if (torn) {
            unsigned char sha[CUS_SHA256_LEN];
            cus_sha256("torn", 4, sha);
            if (store_append(arc_store(arc), STORE_MESSAGE, sha, "torn", 4, NULL, &err) < 0)
                _exit(5);
        }
        if (store_sync(arc_store(arc), &err) < 0)
            _exit(6);
        _exit(0);   /* no commit, no close: a crash */
    }
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_roll_forward(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct cfg *cfg = arc_cfg(dir);
    struct arc *arc = NULL;
    struct verify_stats st;

    CU_ASSERT_EQUAL_FATAL(arc_init(cfg, &err), 0);
    /* 30 messages, 10 committed; the store has all 30 groups. */
    crash_after(cfg, 10, 30, 0);
    CU_ASSERT_EQUAL_FATAL(arc_open(cfg, ARC_WRITE, &arc, &err), 0);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM messages"), 30);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM deliveries"), 30);
    CU_ASSERT_EQUAL(rows(arc, "SELECT max(seq) FROM chain"), 30);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM rcpts"), 30);
    /* The same message again after recovery: one more delivery, no copy. */
    CU_ASSERT_EQUAL(add(arc, 1005, 1), 0);
    CU_ASSERT_EQUAL(arc_flush(arc, &err), 0);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM messages"), 30);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM deliveries"), 31);
    arc_close(&arc);
    CU_ASSERT_EQUAL(verify_problems(cfg, &st), 0);
    CU_ASSERT_EQUAL(st.events, 31);
    cfg_free(&cfg);
    cut_rmtree(dir);
    g_free(dir);
}

static void test_torn_group_cut(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct cfg *cfg = arc_cfg(dir);
    struct arc *arc = NULL;
    struct verify_stats st;

    CU_ASSERT_EQUAL_FATAL(arc_init(cfg, &err), 0);
    /* 5 committed, 3 more whole groups, then a message record alone. */
    crash_after(cfg, 5, 8, 1);
    CU_ASSERT_EQUAL_FATAL(arc_open(cfg, ARC_WRITE, &arc, &err), 0);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM messages"), 8);
    CU_ASSERT_EQUAL(rows(arc, "SELECT max(seq) FROM chain"), 8);
    CU_ASSERT_EQUAL(add(arc, 1, 1), 0);
    arc_close(&arc);
    /* The lone record is gone: nothing extra for verify to find. */
    CU_ASSERT_EQUAL(verify_problems(cfg, &st), 0);
    CU_ASSERT_EQUAL(st.messages, 9);
    /* 9 messages, 9 events, the checkpoint the close made. */
    CU_ASSERT_EQUAL(st.records, 19);
    CU_ASSERT_EQUAL(st.checkpoints, 1);
    cfg_free(&cfg);
    cut_rmtree(dir);
    g_free(dir);
}

static void test_checkpoints(void)
{
    char *dir = cut_tmpdir(), *err = NULL, *key = NULL, *pub = NULL;
    struct cfg *cfg = arc_cfg(dir);
    struct arc *arc = NULL;
    struct arc_checkpoint_info ci;
    struct verify_stats st;

    make_keys(dir, &key, &pub);
    cfg->chain_sign_key = g_strdup(key);
    CU_ASSERT_EQUAL_FATAL(arc_init(cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_open(cfg, ARC_WRITE, &arc, &err), 0);
    /* Nothing to vouch for yet. */
    CU_ASSERT_EQUAL(arc_checkpoint(arc, 0, &ci, &err), 0);
    CU_ASSERT_EQUAL(ci.made, 0);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(add(arc, i, i % 2), 0);
    CU_ASSERT_EQUAL(arc_checkpoint(arc, 0, &ci, &err), 0);
    CU_ASSERT_EQUAL(ci.made, 1);
    CU_ASSERT_EQUAL(ci.seq, 5);
    CU_ASSERT(g_str_has_prefix(ci.key, "ed25519:"));
    /* At the head already: not again, unless forced. */
    CU_ASSERT_EQUAL(arc_checkpoint(arc, 0, &ci, &err), 0);
    CU_ASSERT_EQUAL(ci.made, 0);
    CU_ASSERT_EQUAL(arc_checkpoint(arc, 1, &ci, &err), 0);
    CU_ASSERT_EQUAL(ci.made, 1);
    arc_close(&arc);
    CU_ASSERT_EQUAL(verify_problems(cfg, &st), 0);
    CU_ASSERT_EQUAL(st.checkpoints, 2);
    CU_ASSERT_EQUAL(st.signed_checkpoints, 2);
    CU_ASSERT(st.signatures_checked);
    /* A verifier that trusts another key says so for every checkpoint. */
    {
        char *sub = g_build_filename(dir, "x", NULL), *k2 = NULL, *p2 = NULL;

        mkdir(sub, 0700);
        make_keys(sub, &k2, &p2);
        cfg->chain_verify_key = g_strdup(p2);
        CU_ASSERT_EQUAL(verify_problems(cfg, &st), 2);
        g_free(sub);
        g_free(k2);
        g_free(p2);
    }
    cfg_free(&cfg);
    cut_rmtree(dir);
    g_free(dir);
    g_free(key);
    g_free(pub);
}

/* What no parser makes sense of is archived all the same, byte-exact. */
static void test_unparseable_raw(void)
{
    char *dir = cut_tmpdir(), *err = NULL;
    struct cfg *cfg = arc_cfg(dir);
    struct arc *arc = NULL;
    struct verify_stats st;
    const char *rcpts[] = { "bob@customer.example", NULL };
    struct idx_envelope env = { .time = 1, .sender = "a@corp.example", .client = "",
                                .queue_id = "", .source = "test", .rcpts = rcpts };
    unsigned char junk[4096];
    gint64 ids[3];
    GBytes *back = NULL;

    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 7919 % 251);
    junk[100] = 0;
    CU_ASSERT_EQUAL_FATAL(arc_init(cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_open(cfg, ARC_WRITE, &arc, &err), 0);
    CU_ASSERT_EQUAL(arc_add(arc, junk, sizeof(junk), &env, &ids[0], NULL, &err), 0);
    CU_ASSERT_EQUAL(arc_add(arc, "", 0, &env, &ids[1], NULL, &err), 0);
    CU_ASSERT_EQUAL(arc_add(arc, "\r\n\r\n\0\0", 6, &env, &ids[2], NULL, &err), 0);
    CU_ASSERT_EQUAL(arc_flush(arc, &err), 0);
    CU_ASSERT_EQUAL_FATAL(arc_get_raw(arc, ids[0], &back, &err), 0);
    CU_ASSERT_EQUAL(g_bytes_get_size(back), sizeof(junk));
    CU_ASSERT_EQUAL(memcmp(g_bytes_get_data(back, NULL), junk, sizeof(junk)), 0);
    g_bytes_unref(back);
    CU_ASSERT_EQUAL_FATAL(arc_get_raw(arc, ids[1], &back, &err), 0);
    CU_ASSERT_EQUAL(g_bytes_get_size(back), 0);
    g_bytes_unref(back);
    CU_ASSERT_EQUAL(rows(arc, "SELECT count(*) FROM deliveries"), 3);
    arc_close(&arc);
    CU_ASSERT_EQUAL(verify_problems(cfg, &st), 0);
    CU_ASSERT_EQUAL(st.messages, 3);
    cfg_free(&cfg);
    cut_rmtree(dir);
    g_free(dir);
}

CUS_SUITE(chain)
{
    CU_pSuite s = CU_add_suite("chain", NULL, NULL);
    CU_add_test(s, "event: canonical form round trip", test_event_roundtrip);
    CU_add_test(s, "event: only the canonical form parses", test_event_strict);
    CU_add_test(s, "chain hash: h_n = SHA-256(h_n-1 || event)", test_chain_hash);
    CU_add_test(s, "checkpoint: Ed25519 signed, checked, refused", test_checkpoint_sign);
    CU_add_test(s, "crash: whole groups rolled forward", test_roll_forward);
    CU_add_test(s, "crash: an unfinished group cut off", test_torn_group_cut);
    CU_add_test(s, "checkpoints: made when due, signed, verified", test_checkpoints);
    CU_add_test(s, "unparseable bytes archived raw, byte-exact", test_unparseable_raw);
}
