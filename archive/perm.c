/*
 * perm.c - modes and group of the archive's files; see perm.h
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "custos/perm.h"
#include "custos/util.h"

int perm_group(const struct cfg *cfg, gid_t *gid_r, char **error_r)
{
    struct group *gr;

    if (cfg->arc_group == NULL)
        return 0;
    errno = 0;
    gr = getgrnam(cfg->arc_group);
    if (gr == NULL)
        return cus_error(error_r, "%s: [archive] group \"%s\": no such group", cfg->path,
                         cfg->arc_group);
    *gid_r = gr->gr_gid;
    return 1;
}

int perm_apply(const struct cfg *cfg, const char *path, int flags, char **error_r)
{
    gid_t gid = (gid_t)-1;
    int grp = perm_group(cfg, &gid, error_r);
    mode_t mode;
    struct stat sb;

    if (grp < 0)
        return -1;
    if (flags & PERM_DIR)
        mode = grp ? 02750 : 0700;
    else if (flags & PERM_SHARED)
        mode = grp ? 0660 : 0600;
    else
        mode = grp ? 0640 : 0600;
    if (stat(path, &sb) < 0)
        return cus_error_errno(error_r, "stat(%s) failed", path);
    if (grp && sb.st_gid != gid && chown(path, (uid_t)-1, gid) < 0)
        return cus_error_errno(error_r, "chgrp %s %s failed", cfg->arc_group, path);
    /* A sealed segment keeps its read-only mode; only group bits change. */
    if (!(flags & PERM_DIR) && !(flags & PERM_SHARED) && !(sb.st_mode & S_IWUSR))
        mode &= ~(mode_t)0222;
    if ((sb.st_mode & 07777) != mode && chmod(path, mode) < 0)
        return cus_error_errno(error_r, "chmod %04o %s failed", (unsigned)mode, path);
    return 0;
}

static int in_group(gid_t gid)
{
    gid_t groups[256];
    int n;

    if (getegid() == gid)
        return 1;
    n = getgroups(G_N_ELEMENTS(groups), groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

int perm_check(const struct cfg *cfg, const char *path, int amode, char **error_r)
{
    struct stat sb;
    struct passwd *pw;
    struct group *gr;
    char owner[64], group[64], *me;
    const char *want;

    if (access(path, amode) == 0)
        return 0;
    if (errno != EACCES && errno != EPERM && errno != EROFS)
        return cus_error_errno(error_r, "%s", path);
    if (errno == EROFS)
        return cus_error(error_r, "%s is on a read-only file system", path);
    if (stat(path, &sb) < 0)
        return cus_error_errno(error_r, "%s", path);
    pw = getpwuid(sb.st_uid);
    gr = getgrgid(sb.st_gid);
    g_snprintf(owner, sizeof(owner), "%s", pw != NULL ? pw->pw_name : "?");
    g_snprintf(group, sizeof(group), "%s", gr != NULL ? gr->gr_name : "?");
    if (pw == NULL)
        g_snprintf(owner, sizeof(owner), "uid %u", (unsigned)sb.st_uid);
    if (gr == NULL)
        g_snprintf(group, sizeof(group), "gid %u", (unsigned)sb.st_gid);
    pw = getpwuid(geteuid());
    me = pw != NULL ? g_strdup(pw->pw_name) : g_strdup_printf("uid %u", (unsigned)geteuid());
    want = (amode & W_OK) ? "write" : (amode & X_OK) && S_ISDIR(sb.st_mode) ? "enter" : "read";
    if (!in_group(sb.st_gid))
        cus_error(error_r, "permission denied: %s cannot %s %s (owner %s, group %s, mode "
                  "%04o): only %s and members of group %s have access to the archive; "
                  "ask its administrator to add you to group %s%s", me, want, path, owner,
                  group, (unsigned)(sb.st_mode & 07777), owner, group, group,
                  cfg != NULL && cfg->arc_group == NULL ?
                  " (and to set [archive] group in custos.conf)" : "");
    else if ((amode & W_OK) && S_ISDIR(sb.st_mode))
        cus_error(error_r, "permission denied: %s cannot write %s (owner %s, group %s, mode "
                  "%04o): only %s changes the archive; members of group %s read it (search, "
                  "show, export, audit): run this command as %s", me, path, owner, group,
                  (unsigned)(sb.st_mode & 07777), owner, group, owner);
    else
        cus_error(error_r, "permission denied: %s cannot %s %s (owner %s, group %s, mode "
                  "%04o): the group lacks %s access; the archive's administrator should "
                  "run custos-archive init again to repair its modes", me, want, path,
                  owner, group, (unsigned)(sb.st_mode & 07777), want);
    g_free(me);
    return -1;
}
