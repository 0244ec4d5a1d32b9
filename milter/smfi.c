/*
 * smfi.c - the real libmilter calls behind struct mlt_smfi
 *
 * The only file of the core that calls smfi_*: tests link the callbacks
 * without it and drive them with a fake context.
 */
#include "custos/milter.h"

static const struct mlt_smfi mlt_smfi_real = {
    .getsymval = smfi_getsymval,
    .setpriv = smfi_setpriv,
    .getpriv = smfi_getpriv,
    .setreply = smfi_setreply,
    .insheader = smfi_insheader,
    .chgheader = smfi_chgheader,
};

const struct mlt_smfi *mlt_smfi_libmilter(void)
{
    return &mlt_smfi_real;
}
