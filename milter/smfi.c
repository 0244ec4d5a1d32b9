/*
 * smfi.c - the real libmilter calls behind struct mlt_smfi
 *
 * The only file of the core that calls smfi_*: tests link the callbacks
 * without it and drive them with a fake context.
 */
#include "custos/milter.h"

static int setmlreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *line1,
                      const char *line2)
{
    if (line2 == NULL)
        return smfi_setreply(ctx, (char *)rcode, (char *)xcode, (char *)line1);
    return smfi_setmlreply(ctx, rcode, xcode, line1, line2, (char *)NULL);
}

static const struct mlt_smfi mlt_smfi_real = {
    .getsymval = smfi_getsymval,
    .setpriv = smfi_setpriv,
    .getpriv = smfi_getpriv,
    .setreply = smfi_setreply,
    .insheader = smfi_insheader,
    .chgheader = smfi_chgheader,
    .addrcpt = smfi_addrcpt,
    .delrcpt = smfi_delrcpt,
    .quarantine = smfi_quarantine,
    .setmlreply = setmlreply,
};

const struct mlt_smfi *mlt_smfi_libmilter(void)
{
    return &mlt_smfi_real;
}
