/*
 * chain.c - canonical chain events, the chain hash, Ed25519 checkpoints
 *
 * The formats are in chain.h. Parsing is strict: an event is accepted
 * only in exactly the form chain_event_format() writes, so one event has
 * one byte sequence and one hash. Ed25519 through OpenSSL's EVP
 * interface (one-shot EVP_DigestSign/Verify, no digest: PureEdDSA).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "custos/chain.h"

#define EVENT_MAGIC "custos-event 1\n"
#define CP_MAGIC "custos-checkpoint 1\n"
#define GENESIS "custos chain 1"
#define SIG_LEN CHAIN_SIG_LEN
#define KEYFILE_MAX (64 * 1024)

struct chain_key {
    EVP_PKEY *pkey;
    int is_private;
    char id[32];            /* "ed25519:" + 16 hex */
};

void chain_genesis(unsigned char h[CUS_SHA256_LEN])
{
    cus_sha256(GENESIS, strlen(GENESIS), h);
}

void chain_step(const unsigned char prev[CUS_SHA256_LEN], const void *event, size_t len,
                unsigned char out[CUS_SHA256_LEN])
{
    unsigned char small[1024], *buf = small;

    if (len + CUS_SHA256_LEN > sizeof(small))
        buf = g_malloc(len + CUS_SHA256_LEN);
    memcpy(buf, prev, CUS_SHA256_LEN);
    memcpy(buf + CUS_SHA256_LEN, event, len);
    cus_sha256(buf, len + CUS_SHA256_LEN, out);
    if (buf != small)
        g_free(buf);
}

/* ---- events ------------------------------------------------------------- */

void chain_value_put(GString *out, const char *v0)
{
    char *fixed = NULL;
    const char *v = v0;

    if (!g_utf8_validate(v0, -1, NULL))
        v = fixed = cus_utf8_repair(v0, strlen(v0));
    for (; *v != '\0'; v++) {
        switch (*v) {
        case '%': g_string_append(out, "%25"); break;
        case '\r': g_string_append(out, "%0D"); break;
        case '\n': g_string_append(out, "%0A"); break;
        default: g_string_append_c(out, *v);
        }
    }
    g_free(fixed);
}

static int valid_key(const char *k, size_t len)
{
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(g_ascii_islower(k[i]) || g_ascii_isdigit(k[i]) || k[i] == '_' || k[i] == '-'))
            return 0;
    return 1;
}

GString *chain_event_format(gint64 seq, gint64 time, const char *type,
                            const char *const *kv)
{
    GString *out = g_string_new(EVENT_MAGIC);

    g_string_append_printf(out, "seq %" G_GINT64_FORMAT "\ntime %" G_GINT64_FORMAT
                           "\ntype %s\n", seq, time, type);
    for (int i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
        g_string_append(out, kv[i]);
        g_string_append_c(out, ' ');
        chain_value_put(out, kv[i + 1]);
        g_string_append_c(out, '\n');
    }
    return out;
}

/* Undo chain_value_put(); NULL if the escaping is not canonical. */
char *chain_value_get(const char *s, size_t len)
{
    GString *v = g_string_sized_new(len);

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || s[i] == '\r')
            goto bad;
        if (s[i] != '%') {
            g_string_append_c(v, s[i]);
            continue;
        }
        if (i + 2 >= len)
            goto bad;
        if (strncmp(s + i, "%25", 3) == 0)
            g_string_append_c(v, '%');
        else if (strncmp(s + i, "%0D", 3) == 0)
            g_string_append_c(v, '\r');
        else if (strncmp(s + i, "%0A", 3) == 0)
            g_string_append_c(v, '\n');
        else
            goto bad;
        i += 2;
    }
    if (!g_utf8_validate(v->str, (gssize)v->len, NULL))
        goto bad;
    return g_string_free(v, FALSE);
bad:
    g_string_free(v, TRUE);
    return NULL;
}

static int parse_i64(const char *s, size_t len, gint64 *v)
{
    gint64 n = 0;

    if (len == 0 || len > 18 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isdigit(s[i]))
            return -1;
        n = n * 10 + (s[i] - '0');
    }
    *v = n;
    return 0;
}

void chain_event_free(struct chain_event **evp)
{
    struct chain_event *ev = *evp;

    if (ev == NULL)
        return;
    g_free(ev->type);
    if (ev->fields != NULL)
        g_ptr_array_unref(ev->fields);
    g_free(ev);
    *evp = NULL;
}

int chain_event_parse(const void *buf, size_t len, struct chain_event **ev_r,
                      char **error_r)
{
    const char *p = buf, *end = p + len;
    struct chain_event *ev;
    int line = 1;

    *ev_r = NULL;
    if (len < strlen(EVENT_MAGIC) || memcmp(p, EVENT_MAGIC, strlen(EVENT_MAGIC)) != 0)
        return cus_error(error_r, "not a chain event (no \"custos-event 1\" line)");
    if (end[-1] != '\n')
        return cus_error(error_r, "chain event does not end with a newline");
    ev = g_new0(struct chain_event, 1);
    ev->fields = g_ptr_array_new_with_free_func(g_free);
    p += strlen(EVENT_MAGIC);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp;
        size_t klen;

        line++;
        sp = memchr(p, ' ', (size_t)(nl - p));
        if (sp == NULL || !valid_key(p, (size_t)(sp - p))) {
            cus_error(error_r, "chain event line %d: expected \"key value\"", line);
            goto fail;
        }
        klen = (size_t)(sp - p);
        sp++;
        if (line == 2 || line == 3) {
            const char *want = line == 2 ? "seq" : "time";
            gint64 *v = line == 2 ? &ev->seq : &ev->time;

            if (klen != strlen(want) || memcmp(p, want, klen) != 0 ||
                parse_i64(sp, (size_t)(nl - sp), v) < 0) {
                cus_error(error_r, "chain event line %d: expected \"%s NUMBER\"", line, want);
                goto fail;
            }
        } else if (line == 4) {
            if (klen != 4 || memcmp(p, "type", 4) != 0 || !valid_key(sp, (size_t)(nl - sp))) {
                cus_error(error_r, "chain event line 4: expected \"type NAME\"");
                goto fail;
            }
            ev->type = g_strndup(sp, (size_t)(nl - sp));
        } else {
            char *v = chain_value_get(sp, (size_t)(nl - sp));

            if (v == NULL) {
                cus_error(error_r, "chain event line %d: bad value", line);
                goto fail;
            }
            g_ptr_array_add(ev->fields, g_strndup(p, klen));
            g_ptr_array_add(ev->fields, v);
        }
        p = nl + 1;
    }
    if (ev->type == NULL || ev->seq < 1) {
        cus_error(error_r, "chain event: %s", ev->type == NULL ? "incomplete" : "seq must be >= 1");
        goto fail;
    }
    *ev_r = ev;
    return 0;
fail:
    chain_event_free(&ev);
    return -1;
}

const char *chain_event_get(const struct chain_event *ev, const char *key)
{
    for (guint i = 0; i + 1 < ev->fields->len; i += 2)
        if (strcmp(g_ptr_array_index(ev->fields, i), key) == 0)
            return g_ptr_array_index(ev->fields, i + 1);
    return NULL;
}

/* ---- keys --------------------------------------------------------------- */

/* The key in len bytes of PEM at pem ("PRIVATE KEY" in it: a private key,
 * else a public one); what names it in messages. */
int chain_key_parse(const void *pem, size_t len, const char *what, struct chain_key **k_r,
                    char **error_r)
{
    struct chain_key *k;
    unsigned char raw[32], sha[CUS_SHA256_LEN];
    size_t n = sizeof(raw);
    char *text;
    BIO *bio;

    *k_r = NULL;
    if (len == 0 || len > KEYFILE_MAX)
        return cus_error(error_r, "%s: not a PEM key (%zu bytes)", what, len);
    text = g_strndup(pem, len);         /* stops at a NUL: strstr sees what PEM reads */
    if ((bio = BIO_new_mem_buf(text, (int)strlen(text))) == NULL) {
        g_free(text);
        return cus_error(error_r, "%s: out of memory", what);
    }
    k = g_new0(struct chain_key, 1);
    if (strstr(text, "PRIVATE KEY") != NULL) {
        k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        k->is_private = 1;
    } else {
        k->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    }
    BIO_free(bio);
    g_free(text);
    if (k->pkey == NULL) {
        chain_key_free(&k);
        return cus_error(error_r, "%s: not a PEM public or private key", what);
    }
    if (EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(k->pkey, raw, &n) != 1 || n != sizeof(raw)) {
        chain_key_free(&k);
        return cus_error(error_r, "%s: not an Ed25519 key (make one with: openssl "
                         "genpkey -algorithm ed25519 -out FILE)", what);
    }
    cus_sha256(raw, n, sha);
    memcpy(k->id, "ed25519:", 8);
    cus_hex(sha, 8, k->id + 8);
    *k_r = k;
    return 0;
}

static int key_load(const char *path, int want_private, struct chain_key **k_r,
                    char **error_r)
{
    GBytes *data = NULL;
    struct stat sb;
    const char *text;
    gsize len;
    int ret;

    *k_r = NULL;
    if (want_private) {
        if (stat(path, &sb) < 0)
            return cus_error_errno(error_r, "signing key %s", path);
        if ((sb.st_mode & 077) != 0)
            return cus_error(error_r, "signing key %s is readable by group or others "
                             "(mode %04o): chmod 600 it", path,
                             (unsigned)(sb.st_mode & 07777));
    }
    if (cus_read_file(path, KEYFILE_MAX, &data, error_r) < 0)
        return -1;
    text = g_bytes_get_data(data, &len);
    ret = chain_key_parse(text, len, path, k_r, error_r);
    g_bytes_unref(data);
    if (ret == 0 && want_private && !(*k_r)->is_private) {
        chain_key_free(k_r);
        return cus_error(error_r, "signing key %s is a public key: it cannot sign", path);
    }
    return ret;
}

int chain_key_load_private(const char *path, struct chain_key **k_r, char **error_r)
{
    return key_load(path, 1, k_r, error_r);
}

int chain_key_load_public(const char *path, struct chain_key **k_r, char **error_r)
{
    return key_load(path, 0, k_r, error_r);
}

const char *chain_key_id(const struct chain_key *k)
{
    return k->id;
}

void chain_key_free(struct chain_key **kp)
{
    struct chain_key *k = *kp;

    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    g_free(k);
    *kp = NULL;
}

int chain_key_is_private(const struct chain_key *k)
{
    return k->is_private;
}

int chain_key_sign(const struct chain_key *k, const void *buf, size_t len,
                   unsigned char sig[CHAIN_SIG_LEN], char **error_r)
{
    EVP_MD_CTX *md;
    size_t n = CHAIN_SIG_LEN;
    int ok;

    if (!k->is_private)
        return cus_error(error_r, "key %s is a public key: it cannot sign", k->id);
    md = EVP_MD_CTX_new();
    ok = md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
         EVP_DigestSign(md, sig, &n, buf, len) == 1 && n == CHAIN_SIG_LEN;
    EVP_MD_CTX_free(md);
    return ok ? 0 : cus_error(error_r, "signing with %s failed", k->id);
}

int chain_key_verify(const struct chain_key *k, const void *buf, size_t len,
                     const unsigned char sig[CHAIN_SIG_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    ok = md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
         EVP_DigestVerify(md, sig, CHAIN_SIG_LEN, buf, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

GString *chain_key_public_pem(const struct chain_key *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    GString *out = g_string_new(NULL);
    char *p;
    long n;

    if (bio != NULL && PEM_write_bio_PUBKEY(bio, k->pkey) == 1 &&
        (n = BIO_get_mem_data(bio, &p)) > 0)
        g_string_append_len(out, p, n);
    BIO_free(bio);
    return out;
}

/* ---- checkpoints -------------------------------------------------------- */

int chain_checkpoint_format(gint64 seq, const unsigned char hash[CUS_SHA256_LEN],
                            gint64 time, const struct chain_key *k, GString **out_r,
                            char **error_r)
{
    GString *out = g_string_new(CP_MAGIC);
    char hex[CUS_SHA256_HEX];
    unsigned char sig[SIG_LEN];
    char *b64;

    cus_hex(hash, CUS_SHA256_LEN, hex);
    g_string_append_printf(out, "seq %" G_GINT64_FORMAT "\nhash %s\ntime %" G_GINT64_FORMAT
                           "\nkey %s\n", seq, hex, time, k != NULL ? k->id : "none");
    if (k != NULL) {
        if (chain_key_sign(k, out->str, out->len, sig, error_r) < 0) {
            g_string_free(out, TRUE);
            return -1;
        }
        b64 = g_base64_encode(sig, sizeof(sig));
        g_string_append_printf(out, "signature %s\n", b64);
        g_free(b64);
    }
    *out_r = out;
    return 0;
}

/* The value of line "key VALUE\n" at *p, or NULL; *p moves past it. */
static char *cp_line(const char **p, const char *end, const char *key)
{
    size_t kl = strlen(key);
    const char *nl;

    if ((size_t)(end - *p) < kl + 1 || memcmp(*p, key, kl) != 0 || (*p)[kl] != ' ')
        return NULL;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return NULL;
    {
        char *v = g_strndup(*p + kl + 1, (size_t)(nl - *p - kl - 1));
        *p = nl + 1;
        return v;
    }
}

int chain_checkpoint_parse(const void *buf, size_t len, struct chain_checkpoint *cp,
                           char **error_r)
{
    const char *p = buf, *end = p + len, *what = NULL;
    char *v;

    memset(cp, 0, sizeof(*cp));
    if (len < strlen(CP_MAGIC) || memcmp(p, CP_MAGIC, strlen(CP_MAGIC)) != 0)
        return cus_error(error_r, "not a checkpoint (no \"custos-checkpoint 1\" line)");
    p += strlen(CP_MAGIC);
    v = cp_line(&p, end, "seq");
    if (v == NULL || parse_i64(v, strlen(v), &cp->seq) < 0)
        what = "seq";
    g_free(v);
    if (what == NULL) {
        v = cp_line(&p, end, "hash");
        if (v == NULL || strlen(v) != 64 || cus_unhex(v, cp->hash, CUS_SHA256_LEN) < 0)
            what = "hash";
        g_free(v);
    }
    if (what == NULL) {
        v = cp_line(&p, end, "time");
        if (v == NULL || parse_i64(v, strlen(v), &cp->time) < 0)
            what = "time";
        g_free(v);
    }
    if (what == NULL) {
        v = cp_line(&p, end, "key");
        if (v == NULL || strlen(v) >= sizeof(cp->key) ||
            (strcmp(v, "none") != 0 && strncmp(v, "ed25519:", 8) != 0))
            what = "key";
        else
            strcpy(cp->key, v);
        g_free(v);
    }
    if (what != NULL)
        return cus_error(error_r, "checkpoint: bad or missing \"%s\" line", what);
    cp->signed_len = (size_t)(p - (const char *)buf);
    if (strcmp(cp->key, "none") == 0) {
        if (p != end)
            return cus_error(error_r, "checkpoint: unsigned, but more follows the key line");
        return 0;
    }
    v = cp_line(&p, end, "signature");
    if (v != NULL) {
        gsize n = 0;
        guchar *sig = strlen(v) == 88 ? g_base64_decode(v, &n) : NULL;

        if (sig != NULL && n == SIG_LEN) {
            memcpy(cp->sig, sig, SIG_LEN);
            cp->is_signed = 1;
        }
        g_free(sig);
        g_free(v);
    }
    if (!cp->is_signed || p != end)
        return cus_error(error_r, "checkpoint: bad or missing \"signature\" line");
    return 0;
}

int chain_checkpoint_verify(const void *buf, const struct chain_checkpoint *cp,
                            const struct chain_key *pub, char **error_r)
{
    int ok;

    if (!cp->is_signed)
        return cus_error(error_r, "checkpoint at seq %" G_GINT64_FORMAT " is not signed",
                         cp->seq), 0;
    if (strcmp(cp->key, pub->id) != 0)
        return cus_error(error_r, "checkpoint at seq %" G_GINT64_FORMAT " is signed by "
                         "%s, not by the configured key %s", cp->seq, cp->key, pub->id), 0;
    ok = chain_key_verify(pub, buf, cp->signed_len, cp->sig);
    if (!ok)
        return cus_error(error_r, "checkpoint at seq %" G_GINT64_FORMAT ": bad signature "
                         "(key %s)", cp->seq, cp->key), 0;
    return 1;
}
