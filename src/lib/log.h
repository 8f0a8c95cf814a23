/*
 * log.h - one line per event, key=value, to stderr or syslog.
 *
 * Every line starts with the process role ("master", "smtp-in", ...).
 * Callers format the key=value body; values that come from the network
 * must go through log_sanitize() (or the "%s" of a buffer built by it)
 * so that a client cannot forge log lines or fields.
 *
 * Grades (STYLE.md 4): fatal()/fatalx() for startup and IPC corruption
 * (exit 1), panic() for broken invariants (abort, core), log_warn() for
 * recoverable errors with errno, log_warnx() without, log_info().
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stddef.h>

void	log_init(int use_syslog);
void	log_setproc(const char *);
void	log_setdebug(int);
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	panic(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * log_sanitize - copy len bytes of untrusted p into out (size outsz,
 * always NUL-terminated) for use as a log value: control characters,
 * spaces, '"' and '\\' and bytes >= 0x7f become \xNN; truncated with
 * "..." when it does not fit.  Returns out.
 */
char	*log_sanitize(const char *p, size_t len, char *out, size_t outsz);
/* log_sanitize_text - the same, but spaces are kept: for "quoted" values */
char	*log_sanitize_text(const char *p, size_t len, char *out,
	    size_t outsz);

#endif
