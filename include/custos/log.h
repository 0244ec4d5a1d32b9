/*
 * log.h - one small logging layer for every custos program
 *
 * Lines go to stderr (default) or syslog; each carries the program name and
 * the level. Wording follows Dovecot: "open(%s) failed: %m".
 */
#ifndef CUSTOS_LOG_H
#define CUSTOS_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* ident: program name; use_syslog: 1 for syslog(3), 0 for stderr. */
void log_init(const char *ident, int use_syslog);
void log_set_level(enum log_level lvl);
/* "debug", "info", "warning", "error" -> level; -1 if unknown. */
int log_level_parse(const char *s);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log at error level and exit(EX_SOFTWARE-like status 70). */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
