/*
 * util.c - small system helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util.h"

int
fd_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ? -1 : 0;
}

int
fd_cloexec(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFD)) == -1)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1 ? -1 : 0;
}

int
write_all(int fd, const void *p, size_t len)
{
	const char	*c = p;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, c, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fd_copy_range(int fd, off_t off, uint64_t len,
    int (*out)(void *, const char *, size_t), void *arg)
{
	char	 tmp[65536];
	ssize_t	 n;
	size_t	 want;

	while (len > 0) {
		want = len < sizeof(tmp) ? (size_t)len : sizeof(tmp);
		if ((n = pread(fd, tmp, want, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return -1;
		if (out(arg, tmp, (size_t)n) == -1)
			return -1;
		off += n;
		len -= (uint64_t)n;
	}
	return 0;
}

int
fsync_dir(const char *path)
{
	int	 fd, r, saved;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

long long
mono_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
mem_casecmp(const void *a, const void *b, size_t len)
{
	const unsigned char	*x = a, *y = b;
	unsigned char		 c, d;
	size_t			 i;

	for (i = 0; i < len; i++) {
		c = x[i] >= 'A' && x[i] <= 'Z' ? x[i] + 32 : x[i];
		d = y[i] >= 'A' && y[i] <= 'Z' ? y[i] + 32 : y[i];
		if (c != d)
			return c < d ? -1 : 1;
	}
	return 0;
}

void
mem_ascii_lower(char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] + 32);
}

char *
str_dup_len(const char *p, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

int
b64_digit(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* rfc5322_date - "Mon, 02 Jun 2025 10:00:00 +0000" (RFC 5322 3.3) */
size_t
rfc5322_date(time_t when, char *out, size_t outsz)
{
	static const char	 days[] = "SunMonTueWedThuFriSat";
	static const char	 months[] =
	    "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm		 tm;
	int			 r;

	if (gmtime_r(&when, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	r = snprintf(out, outsz, "%.3s, %02d %.3s %04d %02d:%02d:%02d +0000",
	    days + 3 * (tm.tm_wday % 7), tm.tm_mday,
	    months + 3 * (tm.tm_mon % 12), tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
	if (r < 0 || (size_t)r >= outsz) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)r;
}

/* event_base_make - an event base with the epoll changelist on */
struct event_base *
event_base_make(void)
{
	struct event_config	*cfg;
	struct event_base	*base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}
