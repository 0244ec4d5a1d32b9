/*
 * det-account.h - bank account numbers in text: card numbers and IBANs
 *
 * det_account_scan() finds, in normalised text (det_text_norm), the
 * numbers that can be bank accounts and pass their checksum:
 *  - bank card numbers: 16 to 19 digits, written in one run or in groups
 *    separated by one space or dash ("6222 0212 3456 1234 567"), not part
 *    of a longer run of letters or digits, with a card BIN prefix (62 and
 *    60 UnionPay and the Chinese banks' debit cards, 4 Visa, 5 Mastercard,
 *    35 JCB) and a valid Luhn check digit;
 *  - IBANs: a country code with its registered length, groups of four
 *    allowed, mod-97 check (ISO 13616).
 * An order number of 16 digits that fails Luhn, or starts like a date
 * (2024...), is not a card number.
 */
#ifndef CUSTOS_DET_ACCOUNT_H
#define CUSTOS_DET_ACCOUNT_H

#include <stddef.h>
#include <glib.h>

enum det_account_kind { DET_ACCOUNT_CARD, DET_ACCOUNT_IBAN };

struct det_account_hit {
    enum det_account_kind kind;
    size_t start, end;          /* byte offsets in the text, as written */
    char number[40];            /* digits and upper-case letters only */
};

/* Luhn check of a string of digits (at least 2); 1 valid, 0 not. */
int det_luhn_ok(const char *digits);
/* A card BIN the scanner accepts (see above)? */
int det_card_prefix_ok(const char *digits);
/* IBAN (letters and digits, upper or lower case, no separators): known
 * country, its length, and mod-97 == 1. */
int det_iban_ok(const char *iban);

/* Every account number in text (len bytes and a NUL after them), in order: struct
 * det_account_hit *, freed with the array. At most max hits. */
GPtrArray *det_account_scan(const char *text, size_t len, size_t max);

#endif
