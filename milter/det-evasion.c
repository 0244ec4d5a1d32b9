/*
 * det-evasion.c - evasion: what hides content from inspection on its way out
 *
 * From the company to personal webmail:
 *  - evasion/encrypted-archive: an attachment (at any depth) that is an
 *    archive with encrypted members or an encrypted listing (zip, 7z, rar:
 *    msg_att.encrypted, from libarchive);
 *  - evasion/cloud-link: a file-sharing link ([detect] cloud_domains, the
 *    host or a subdomain of it) with an access code word
 *    (access_code_words: 提取码, 密码, pwd ...) within access_code_window
 *    characters, in the body (quoted parts included) or attachments' text.
 * From the company to any external recipient:
 *  - evasion/disguised-attachment: an attachment whose content is an
 *    archive, a document or a program while its extension says another
 *    kind of file (msg_att.mismatch: a zip named .jpg); a PNG named .jpg
 *    is not.
 */
#include <string.h>
#include "detect-private.h"
#include "custos/det-text.h"

#define FINDINGS_MAX 8

/* Name in f the external recipients (webmail: only personal webmail). */
static void rcpts_add(const struct det_envelope *env, struct det_finding *f, int webmail)
{
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (!env->rcpts[i].internal && *env->rcpts[i].addr != '\0' &&
            (!webmail || env->rcpts[i].webmail))
            det_finding_add_rcpt(f, env->rcpts[i].addr);
}

/* Is the host name character c part of a host name? */
static int host_char(char c)
{
    return g_ascii_isalnum(c) || c == '-' || c == '.';
}

/* The first mention of domain (or a subdomain of it) in text at or after
 * from: its offset, or -1. */
static gssize domain_find(const char *text, size_t len, size_t from, const char *domain)
{
    size_t dl = strlen(domain);
    gssize at;

    while ((at = det_text_find(text, from, len, domain)) >= 0) {
        size_t e = at + dl;
        int left = at == 0 || !host_char(text[at - 1]) || text[at - 1] == '.';
        int right = e >= len || !(g_ascii_isalnum(text[e]) || text[e] == '-' ||
                                  (text[e] == '.' && e + 1 < len && g_ascii_isalnum(text[e + 1])));
        if (left && right)
            return at;
        from = at + 1;
    }
    return -1;
}

static int cloud_links(const struct det_envelope *env, const char *text, size_t len,
                       const char *where, GHashTable *seen, GPtrArray *out, char **error_r)
{
    char *const *domains, *const *codes;

    if (det_words(env->cfg->det_cloud_domains, &domains, error_r) < 0 ||
        det_words(env->cfg->det_access_code_words, &codes, error_r) < 0)
        return -1;
    for (int d = 0; domains[d] != NULL && out->len < FINDINGS_MAX; d++) {
        size_t from = 0, dl = strlen(domains[d]);
        gssize at;

        if (g_hash_table_contains(seen, domains[d]))
            continue;
        while ((at = domain_find(text, len, from, domains[d])) >= 0) {
            size_t end = at + dl;
            const char *code;
            struct det_finding *f;

            from = end;
            /* the rest of the link belongs to it: the code may follow it */
            while (end < len && !g_ascii_isspace(text[end]) && (unsigned char)text[end] < 0x80)
                end++;
            code = det_text_near(text, len, at, end, (size_t)env->cfg->det_access_code_window,
                                 codes);
            if (code == NULL && det_text_find(text, at, end, "pwd=") >= 0)
                code = "pwd=";
            if (code == NULL)
                continue;
            f = det_finding_new("evasion", "evasion/cloud-link",
                                "cloud-drive link to %s with an access code (\"%s\") in the %s, "
                                "to personal webmail", domains[d], code, where);
            rcpts_add(env, f, 1);
            g_ptr_array_add(out, f);
            g_hash_table_add(seen, domains[d]);
            break;
        }
    }
    return 0;
}

static int evasion(const struct det_envelope *env, const struct det_message *m, GPtrArray *out,
                   char **error_r)
{
    const struct msg *msg;
    int webmail = 0, external = 0, ret = -1;
    GHashTable *seen = NULL;
    const char *body, *atts;
    guint before = out->len;

    if (m == NULL || m->msg == NULL || !det_from_internal(env))
        return 0;
    msg = m->msg;
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (!env->rcpts[i].internal && *env->rcpts[i].addr != '\0') {
            external = 1;
            webmail |= env->rcpts[i].webmail;
        }
    if (!external)
        return 0;
    for (guint i = 0; i < msg->atts->len && out->len - before < FINDINGS_MAX; i++) {
        const struct msg_att *a = msg->atts->pdata[i];
        const char *where = *a->path ? a->path : (*a->name ? a->name : "(unnamed)");
        struct det_finding *f;

        if (webmail && a->encrypted) {
            f = det_finding_new("evasion", "evasion/encrypted-archive",
                                "encrypted archive %s (%s, %" G_GUINT64_FORMAT " bytes) to "
                                "personal webmail", where, a->type, a->size);
            rcpts_add(env, f, 1);
            g_ptr_array_add(out, f);
        }
        if (a->mismatch) {
            f = det_finding_new("evasion", "evasion/disguised-attachment",
                                "attachment %s is not what its extension says (its content "
                                "is another kind of file; declared %s)", where, a->type);
            rcpts_add(env, f, 0);
            g_ptr_array_add(out, f);
        }
    }
    if (webmail) {
        seen = g_hash_table_new(g_str_hash, g_str_equal);
        body = det_cache_text(m, DET_TEXT_BODY);
        atts = det_cache_text(m, DET_TEXT_ATTS);
        if (cloud_links(env, body, strlen(body), "message", seen, out, error_r) < 0 ||
            cloud_links(env, atts, strlen(atts), "attachments", seen, out, error_r) < 0)
            goto out;
    }
    ret = 0;
out:
    if (seen != NULL)
        g_hash_table_destroy(seen);
    return ret;
}

const struct detector det_evasion = { "evasion", 1, evasion };
