/*
 * log.c - event logging to stderr or syslog.
 *
 * Lines are written with a single write(2) each so that the processes
 * sharing stderr do not interleave within a line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"

#define LOG_LINE_MAX	2048

static int		 log_syslog;
static int		 log_debugging;
static const char	*log_proc = "moatd";
static long		 log_pid;	/* of the role, set by log_setproc */

static void	log_vemit(int, const char *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

/* log_init - choose the destination */
void
log_init(int use_syslog)
{
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("moatd", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* log_setproc - name of this process role, first field of every line */
void
log_setproc(const char *name)
{
	log_proc = name;
	log_pid = (long)getpid();
}

/* log_setdebug - enable log_debug() output */
void
log_setdebug(int on)
{
	log_debugging = on;
}

static void
log_vemit(int pri, const char *suffix, const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX];
	size_t		 n = 0;
	int		 r;
	struct timeval	 tv;
	struct tm	 tm;

	if (!log_syslog) {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof(line) - n, ".%03ldZ moatd[%ld] ",
		    (long)tv.tv_usec / 1000, log_pid ? log_pid : (long)getpid());
		if (r > 0)
			n += (size_t)r;
	}
	r = snprintf(line + n, sizeof(line) - n, "%s: ", log_proc);
	if (r > 0 && (size_t)r < sizeof(line) - n)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r < 0)
		r = 0;
	n = (size_t)r < sizeof(line) - n ? n + (size_t)r : sizeof(line) - 1;
	if (suffix != NULL) {
		r = snprintf(line + n, sizeof(line) - n, "%s", suffix);
		if (r > 0)
			n = (size_t)r < sizeof(line) - n ? n + (size_t)r :
			    sizeof(line) - 1;
	}
	if (log_syslog) {
		syslog(pri, "%s", line);
		return;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

/* log_emit_errno - helper: suffix " error=\"strerror\"" */
static void
log_verrno(int pri, int saved, const char *fmt, va_list ap)
{
	char	 suffix[160];

	snprintf(suffix, sizeof(suffix), " error=\"%s\"", strerror(saved));
	log_vemit(pri, suffix, fmt, ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_debugging)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_verrno(LOG_WARNING, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_verrno(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
panic(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, " event=panic", fmt, ap);
	va_end(ap);
	abort();
}

static char	*log_escape(const char *, size_t, char *, size_t, int);

char *
log_sanitize(const char *p, size_t len, char *out, size_t outsz)
{
	return log_escape(p, len, out, outsz, 0);
}

char *
log_sanitize_text(const char *p, size_t len, char *out, size_t outsz)
{
	return log_escape(p, len, out, outsz, 1);
}

static char *
log_escape(const char *p, size_t len, char *out, size_t outsz, int spaces)
{
	static const char hex[] = "0123456789abcdef";
	size_t		 i, o = 0;
	unsigned char	 c;

	if (outsz == 0)
		return out;
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (((c > 0x20 && c < 0x7f) || (c == ' ' && spaces)) &&
		    c != '"' && c != '\\') {
			if (o + 1 >= outsz)
				goto trunc;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outsz)
				goto trunc;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
trunc:
	if (outsz > 4) {
		o = o < outsz - 4 ? o : outsz - 4;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < outsz ? o : outsz - 1] = '\0';
	return out;
}
