/*
 * perm.h - who may touch the archive's files
 *
 * Without [archive] group, the archive is its owner's alone: directories
 * 0700, files 0600 (segments 0640/0440 inside a 0700 directory). With
 * group G (the compliance readers; the archive's owner belongs to it too):
 * directories 2750 and group G (so files made in them are G's), index.db
 * and its -wal/-shm 0660 (readers record their audit entries there; the
 * WAL is kept between connections, so readers never need to create files),
 * the keyring may be 0640 in group G. Never anything for others.
 */
#ifndef CUSTOS_PERM_H
#define CUSTOS_PERM_H

#include <sys/types.h>
#include "custos/cfg.h"

#define PERM_DIR 1
#define PERM_SHARED 2   /* written by readers too (index.db) */

/* The gid of [archive] group: 1 (gid_r set), 0 none configured, -1 no
 * such group. */
int perm_group(const struct cfg *cfg, gid_t *gid_r, char **error_r);

/* Give path the mode (and group) the policy above says. */
int perm_apply(const struct cfg *cfg, const char *path, int flags, char **error_r);

/* Can the calling user do amode (R_OK, W_OK, X_OK, ...) on path? If not,
 * an error that says who owns it, its mode, and what to ask for. */
int perm_check(const struct cfg *cfg, const char *path, int amode, char **error_r);

#endif
