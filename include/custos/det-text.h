/*
 * det-text.h - text as the detectors match it, and values as evidence shows them
 *
 * det_text_norm() turns decoded mail text (struct msg body, headers,
 * attachment text) into the form every detector matches against:
 * zero-width and invisible formatting characters removed (U+200B..U+200F,
 * U+2060..U+2064, U+FEFF, U+00AD soft hyphen, U+034F, U+180E), then NFKC
 * (full-width digits and letters become ASCII, the ideographic space a
 * space, "：" a colon, circled and compatibility forms their plain
 * letters). Case is kept; det_text_find() and det_text_near() ignore ASCII
 * case.
 *
 * Evidence never carries a whole value that identifies a person or an
 * account: det_mask_*() keep just enough to recognise it (6222****1234,
 * 138****5678, z***@163.com), det_text_excerpt() cuts a short one-line
 * excerpt around a match with the match replaced by its masked form.
 */
#ifndef CUSTOS_DET_TEXT_H
#define CUSTOS_DET_TEXT_H

#include <stddef.h>
#include <glib.h>

/* The normalised form of len bytes of s (len < 0: up to the NUL). Invalid
 * UTF-8 is repaired first (U+FFFD). Never NULL; g_free. */
char *det_text_norm(const char *s, gssize len);

/* Is len bytes of s already in the normal form (ASCII, no NUL: what
 * det_text_norm() would only copy)? */
int det_text_is_normal(const char *s, size_t len);

/* Is c one of the invisible characters det_text_norm() removes? */
int det_text_is_invisible(gunichar c);

/* Account or card number: separators (anything not a letter or digit)
 * dropped, the first 4 and last 4 kept around "****" (6222****1234);
 * 8 or fewer characters: the last 2 kept ("******34"). g_free. */
char *det_mask_number(const char *s);
/* Phone: separators dropped (a leading '+' kept), the 4 digits before the
 * last 4 masked (138****5678, +86138****5678); 8 or fewer digits: all but
 * the last 2. g_free. */
char *det_mask_phone(const char *s);
/* Address: the first character of the local part, "***", '@' and the
 * domain (z***@163.com); no '@': the first character and "***". g_free. */
char *det_mask_addr(const char *addr);

/* A one-line excerpt of text (len bytes, valid UTF-8) around the match at
 * byte offsets [start, end): up to ctx characters each side (cut at
 * character boundaries, "…" where cut), the match replaced by repl (NULL:
 * kept), runs of white space one space. g_free. */
char *det_text_excerpt(const char *text, size_t len, size_t start, size_t end, size_t ctx,
                       const char *repl);

/* Offset of the first byte of s[0, len) that is in set (a string of at
 * most 16 bytes, no NUL), or len. s[len] must be a NUL byte, as in every
 * text the detectors scan: the search is strcspn's (16 bytes a step with
 * SSE 4.2), and a NUL inside the text is stepped over. */
size_t det_text_cspan(const char *s, size_t len, const char *set);

/* The first occurrence of word (ASCII case ignored) in text[from, to):
 * its byte offset, or -1. */
gssize det_text_find(const char *text, size_t from, size_t to, const char *word);

/* Does one of words (NULL-terminated; normalised) occur within window
 * characters before start or after end in text (len bytes, valid UTF-8),
 * ASCII case ignored? The word found (borrowed from words) or NULL. */
const char *det_text_near(const char *text, size_t len, size_t start, size_t end,
                          size_t window, char *const *words);

/* The words of a [detect] word list (custos.conf(5)): comma-separated
 * words, or a file path (starting with '/') with one word a line and '#'
 * comments. Each word normalised, empty ones dropped. *words_r is
 * NULL-terminated and kept for the life of the process (one copy per
 * distinct list, and per file size and mtime). -1 with error_r naming the
 * file when it cannot be read. */
int det_words(const char *spec, char *const **words_r, char **error_r);

/* The part of a message body its sender wrote: lines quoted with '>'
 * left out, and everything from the first reply or forward separator on
 * ("-----Original Message-----", "Begin forwarded message:", "---------
 * Forwarded message ---------", QQ Mail's "原始邮件" line, "On ... wrote:",
 * "在 ... 写道:", a "From:"/"发件人:" header line). text is normalised.
 * g_free. */
char *det_text_unquoted(const char *text, size_t len);

#endif
