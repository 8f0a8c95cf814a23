/*
 * buf.h - growable byte buffer with explicit length.
 *
 * Bytes travel as (ptr, len).  Growth is overflow-checked and bounded by
 * an optional per-buffer cap (0 = BUF_HARD_MAX); every append checks it.
 * The data is always NUL-terminated one past len for the convenience of
 * printf-style consumers, but no code may rely on that for received data.
 */
#ifndef MOAT_BUF_H
#define MOAT_BUF_H

#include <stddef.h>
#include <stdarg.h>

#define BUF_HARD_MAX	(1UL << 30)	/* 1 GiB: no buffer grows beyond */

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;	/* 0 = BUF_HARD_MAX */
};

void	buf_init(struct buf *, size_t max);
int	buf_reserve(struct buf *, size_t extra);
int	buf_append(struct buf *, const void *, size_t);
int	buf_appends(struct buf *, const char *);	/* trusted C string */
int	buf_appendf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vappendf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
void	buf_consume(struct buf *, size_t);
void	buf_reset(struct buf *);
void	buf_free(struct buf *);

#endif
