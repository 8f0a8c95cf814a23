/*
 * util.h - small system helpers without mail knowledge.
 */
#ifndef MOAT_UTIL_H
#define MOAT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* fd_nonblock - set O_NONBLOCK; 0 or -1 */
int	fd_nonblock(int fd);
/* fd_cloexec - set FD_CLOEXEC; 0 or -1 */
int	fd_cloexec(int fd);
/* write_all - write everything, retrying EINTR; 0 or -1 */
int	write_all(int fd, const void *, size_t);
/*
 * fd_copy_range - len octets at off of fd (pread, EINTR retried) to
 * out(arg, p, n) in pieces of up to 64 KiB; 0, or -1 if a read fails,
 * the file ends early or out returns -1
 */
int	fd_copy_range(int fd, off_t off, uint64_t len,
	    int (*out)(void *, const char *, size_t), void *arg);
/* fsync_dir - open a directory read-only and fsync it; 0 or -1 */
int	fsync_dir(const char *path);
/* mono_ms - CLOCK_MONOTONIC in milliseconds */
long long mono_ms(void);
/* mem_casecmp - ASCII case-insensitive compare of equal-length slices */
int	mem_casecmp(const void *, const void *, size_t);
/* mem_ascii_lower - lower-case ASCII in place */
void	mem_ascii_lower(char *, size_t);
/* str_dup_len - malloc'd NUL-terminated copy of len octets or NULL */
char	*str_dup_len(const char *, size_t);
/* b64_digit - the value 0-63 of a base64 digit (RFC 4648 4), else -1 */
int	b64_digit(int);
/*
 * rfc5322_date - "Mon, 02 Jun 2025 10:00:00 +0000" (RFC 5322 3.3, in
 * UTC; no locale), NUL-terminated; its length, or 0 if outsz is too
 * small (out is then "")
 */
size_t	rfc5322_date(time_t, char *, size_t);
/*
 * event_base_make - a libevent base whose epoll changes are applied
 * once per loop iteration (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST): a
 * write event added and deleted again in one iteration costs no
 * epoll_ctl(2).  Safe here: no role dup()s a descriptor it watches.
 * NULL on failure.
 */
struct event_base;
struct event_base *event_base_make(void);

#endif
