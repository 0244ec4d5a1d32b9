/*
 * sha256.c - SHA-256 through OpenSSL
 *
 * Apart from util.c so that programs which never hash (the lean read path
 * of custos-archive) do not load libcrypto. The digest is fetched once: in
 * OpenSSL 3 the one-shot SHA256() fetches it (under a lock) on every call,
 * which showed in verify's profile with several threads hashing.
 */
#include <stdlib.h>
#include <openssl/evp.h>
#include "custos/util.h"

const EVP_MD *cus_sha256_md(void)
{
    static gsize once;
    static EVP_MD *md;

    if (g_once_init_enter(&once)) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        g_once_init_leave(&once, 1);
    }
    return md;
}

/* One context per thread, reused: no allocation per hash. */
static GPrivate ctx_key = G_PRIVATE_INIT((GDestroyNotify)EVP_MD_CTX_free);

void cus_sha256(const void *buf, size_t len, unsigned char out[CUS_SHA256_LEN])
{
    EVP_MD_CTX *ctx = g_private_get(&ctx_key);
    const EVP_MD *md = cus_sha256_md();

    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        g_private_set(&ctx_key, ctx);
    }
    if (md == NULL || ctx == NULL || EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, buf, len) != 1 || EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        abort();    /* SHA-256 cannot fail but for lack of memory */
}
