/*
 * log.c - the one logging layer: stderr or syslog, printf-checked
 */
#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include "custos/log.h"

static const char *log_ident = "custos";
static int log_syslog;
static enum log_level log_min = LOG_LVL_INFO;

void log_init(const char *ident, int use_syslog)
{
    log_ident = ident;
    log_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level lvl)
{
    log_min = lvl;
}

int log_level_parse(const char *s)
{
    static const char *names[] = { "debug", "info", "warning", "error" };

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void log_v(enum log_level lvl, const char *fmt, va_list ap)
{
    static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
    static const char *tag[] = { "debug: ", "", "warning: ", "error: " };
    int saved = errno;

    if (lvl < log_min)
        return;
    if (log_syslog) {
        errno = saved;
        vsyslog(prio[lvl], fmt, ap);
        return;
    }
    {
        /* One write per line: lines of different threads never mix. */
        char *msg, *line;

        errno = saved;
        msg = g_strdup_vprintf(fmt, ap);
        line = g_strdup_printf("%s: %s%s\n", log_ident, tag[lvl], msg);
        fputs(line, stderr);
        fflush(stderr);
        g_free(line);
        g_free(msg);
    }
}

#define LOG_FN(fn, lvl) \
    void fn(const char *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        log_v(lvl, fmt, ap); \
        va_end(ap); \
    }

LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_error, LOG_LVL_ERROR)

void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(LOG_LVL_ERROR, fmt, ap);
    va_end(ap);
    exit(70);
}
