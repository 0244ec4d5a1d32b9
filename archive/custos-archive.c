/*
 * custos-archive.c - the archive's command-line tool
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include "custos/cfg.h"
#include "custos/log.h"

static void usage(void)
{
    fprintf(stderr, "usage: custos-archive [-c FILE] [-n] COMMAND [ARGS]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    struct cfg *cfg = NULL;
    char *err = NULL;
    int opt, check_only = 0;

    log_init("custos-archive", 0);
    while ((opt = getopt(argc, argv, "+c:n")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'n': check_only = 1; break;
        default: usage();
        }
    }
    if (cfg_load(cfg_path(conf), &cfg, &err) < 0) {
        log_error("%s", err);
        g_free(err);
        return 78;
    }
    if (check_only) {
        cfg_dump(cfg, stdout);
        cfg_free(&cfg);
        return 0;
    }
    cfg_free(&cfg);
    usage();
    return 64;
}
