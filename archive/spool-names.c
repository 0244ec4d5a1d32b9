/*
 * spool-names.c - the spool's names: entry ids and finding tokens
 *
 * Apart from spool.c so that what only checks a name (the query language
 * in the lean custos-archive) links without the writer's SHA-256.
 */
#include <string.h>
#include "custos/spool.h"

/* 1..max decimal digits: an unsigned number. */
static int digits(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int spool_id_valid(const char *id)
{
    const char *p = id, *dot;
    size_t n;

    if (id == NULL || strlen(id) > SPOOL_ID_MAX)
        return 0;
    /* TIME. USEC. PID. */
    for (int part = 0; part < 3; part++) {
        static const size_t maxlen[] = { 19, 6, 10 };
        dot = strchr(p, '.');
        if (dot == NULL)
            return 0;
        n = (size_t)(dot - p);
        if (!digits(p, n, maxlen[part]) || (part == 1 && n != 6))
            return 0;
        p = dot + 1;
    }
    if (strlen(p) != 16)
        return 0;
    for (; *p != '\0'; p++)
        if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
            return 0;
    return 1;
}

int spool_token_valid_n(const char *s, size_t len)
{
    if (s == NULL || len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '/' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int spool_token_valid(const char *s)
{
    return s != NULL && spool_token_valid_n(s, strlen(s));
}
