/*
 * sha256.c - SHA-256 through OpenSSL
 *
 * Apart from util.c so that programs which never hash (the lean read path
 * of custos-archive) do not load libcrypto.
 */
#include <openssl/sha.h>
#include "custos/util.h"

void cus_sha256(const void *buf, size_t len, unsigned char out[CUS_SHA256_LEN])
{
    SHA256(buf, len, out);
}
