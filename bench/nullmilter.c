/*
 * nullmilter.c - a do-nothing libmilter milter, the baseline of bench/milter.sh
 *
 * nullmilter -p SOCKET [-m MODE]
 *   MODE "full" (default): every callback is registered and answers
 *   CONTINUE, so Postfix sends it the whole message (headers, body chunks)
 *   as it would to any content milter, and it does nothing with it.
 *   MODE "none": no callback at all; Postfix then skips every event it can
 *   (the least a milter can cost).
 * libmilter's own sockets and threads, nothing else: no TCP_NODELAY, no
 * tuning. Stops on SIGTERM/SIGINT (smfi_stop from a watcher thread).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libmilter/mfapi.h>

static sfsistat nm_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
    return SMFIS_CONTINUE;
}

static sfsistat nm_helo(SMFICTX *ctx, char *helo)
{
    return SMFIS_CONTINUE;
}

static sfsistat nm_argv(SMFICTX *ctx, char **argv)
{
    return SMFIS_CONTINUE;
}

static sfsistat nm_header(SMFICTX *ctx, char *name, char *value)
{
    return SMFIS_CONTINUE;
}

static sfsistat nm_ctx(SMFICTX *ctx)
{
    return SMFIS_CONTINUE;
}

static sfsistat nm_body(SMFICTX *ctx, unsigned char *buf, size_t len)
{
    return SMFIS_CONTINUE;
}

static sfsistat nm_unknown(SMFICTX *ctx, const char *cmd)
{
    return SMFIS_CONTINUE;
}

static struct smfiDesc nm_full = {
    .xxfi_name = "nullmilter", .xxfi_version = SMFI_VERSION, .xxfi_flags = SMFIF_NONE,
    .xxfi_connect = nm_connect, .xxfi_helo = nm_helo, .xxfi_envfrom = nm_argv,
    .xxfi_envrcpt = nm_argv, .xxfi_header = nm_header, .xxfi_eoh = nm_ctx,
    .xxfi_body = nm_body, .xxfi_eom = nm_ctx, .xxfi_abort = nm_ctx, .xxfi_close = nm_ctx,
    .xxfi_unknown = nm_unknown, .xxfi_data = nm_ctx,
};

static struct smfiDesc nm_none = {
    .xxfi_name = "nullmilter", .xxfi_version = SMFI_VERSION, .xxfi_flags = SMFIF_NONE,
};

/* Signals are taken by this thread alone (blocked everywhere else). */
static void *nm_sigwait(void *arg)
{
    sigset_t *set = arg;
    int sig;

    while (sigwait(set, &sig) != 0)
        ;
    smfi_stop();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *mode = "full";
    static sigset_t set;
    pthread_t tid;
    int c;

    while ((c = getopt(argc, argv, "p:m:")) != -1) {
        switch (c) {
        case 'p': sock = optarg; break;
        case 'm': mode = optarg; break;
        default: goto usage;
        }
    }
    if (sock == NULL || optind != argc ||
        (strcmp(mode, "full") != 0 && strcmp(mode, "none") != 0))
        goto usage;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pthread_create(&tid, NULL, nm_sigwait, &set) != 0) {
        fprintf(stderr, "nullmilter: pthread_create failed\n");
        return 1;
    }
    if (strncmp(sock, "unix:", 5) == 0)
        unlink(sock + 5);
    if (smfi_setconn((char *)sock) != MI_SUCCESS ||
        smfi_register(strcmp(mode, "full") == 0 ? nm_full : nm_none) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "nullmilter: cannot listen on %s\n", sock);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
usage:
    fprintf(stderr, "usage: nullmilter -p SOCKET [-m full|none]\n");
    return 64;
}
