/*
 * det-name.h - the ways a person's name appears in a mailbox name
 *
 * det_name_variants() spells a directory name (张三, 王小明, 欧阳娜娜,
 * "Zhang San", "Sean O'Brien") in lower-case ASCII the ways people make
 * private mailbox names from it: Chinese names through ICU's Han-Latin
 * transliterator (surname readings: 曾 zeng, 单 shan), surname first or
 * last, joined or with '.', '_' or '-', initials (zs, zxm), surname with
 * the given name's initials (zhangs, zhangxm) and the given name's
 * initials with the surname (szhang). Two-character surnames (欧阳, 司马
 * ...) are kept together; a Latin-script name is taken both ways round.
 *
 * det_name_local_matches() compares an address's local part with them:
 * lower case, a "+tag" and trailing digits (a birth year, a counter)
 * ignored.
 */
#ifndef CUSTOS_DET_NAME_H
#define CUSTOS_DET_NAME_H

#include <glib.h>

/* Open ICU's transliterator now (half a second) rather than at the first
 * name; custos-milter calls it before it listens. */
int det_name_init(char **error_r);

/* The variants of name (char *, distinct, at least 2 characters each);
 * an empty array when the name has no letters. -1 with error_r when ICU
 * cannot be used. */
int det_name_variants(const char *name, GPtrArray **variants_r, char **error_r);

/* Does the local part of addr (or addr itself without '@') match one of
 * variants? The variant matched (borrowed), or NULL. */
const char *det_name_local_matches(const char *addr, GPtrArray *variants);

#endif
