/*
 * tok.h - the "custos" FTS5 tokenizer: CJK bigrams, unicode61 for the rest
 *
 * Text is read as UTF-8 (invalid bytes skipped). Runs of CJK characters
 * (Han, Hiragana, Katakana, Hangul, CJK punctuation excluded) are indexed as
 * overlapping bigrams: "请把客户资料" -> 请把 把客 客户 户资 资料; in
 * document mode the last character of every run is also emitted as a
 * unigram COLOCATED with the last bigram (a one-character run yields just
 * that character), so a one-character query, sent as a prefix query "客"*,
 * finds every occurrence. In query mode (FTS5_TOKENIZE_QUERY) a run yields
 * its bigrams only, or its one character.
 *
 * Everything else is tokenized like unicode61: runs of letters, digits and
 * marks; NFKC-normalized (full-width Ａ１ -> a1), case-folded, diacritics
 * removed.
 *
 * Details: half-width Katakana (ｶﾞ) are indexed as full width (ガ), CJK
 * compatibility ideographs as their unified ideograph; the ideographic
 * space, CJK and full-width punctuation, symbols and emoji separate
 * tokens; a token is cut at 128 bytes (documents and queries alike). No
 * allocation per token; ASCII takes a table lookup.
 */
#ifndef CUSTOS_TOK_H
#define CUSTOS_TOK_H

#include <sqlite3.h>

#define TOK_NAME "custos"

/* Register the tokenizer with db's FTS5 under TOK_NAME. */
int tok_register(sqlite3 *db, char **error_r);

/* Tokenize text outside SQLite (tests, tools). flags are FTS5_TOKENIZE_*;
 * cb is called as FTS5 would call xToken; a non-zero return stops. */
typedef int tok_cb(void *ctx, int tflags, const char *token, int ntoken,
                   int start, int end);
int tok_run(const char *text, int len, int flags, tok_cb *cb, void *ctx);

/* Whether the code point is treated as CJK (bigram-indexed). */
int tok_is_cjk(unsigned int c);

#endif
