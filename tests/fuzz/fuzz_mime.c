/*
 * fuzz_mime.c - libFuzzer target for the streaming MIME parser
 * (src/common/mime.c).  The first octet picks a chunk size, the rest
 * is a message; it is parsed once whole and once in chunks, and the
 * two traces (a hash of every callback and its data) must agree: the
 * parser must not depend on how the input is cut.  Small limits make
 * the depth, part and header limits reachable.  Every part range must
 * lie inside the input and nest within its parent's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mime.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fz {
	uint64_t	 h;
	uint64_t	 total;
};

static void
mix(struct fz *f, const void *p, size_t len)
{
	const unsigned char	*s = p;
	size_t			 i;

	for (i = 0; i < len; i++)
		f->h = (f->h ^ s[i]) * 1099511628211ULL;
}

static void
fz_header(void *arg, const struct mime_part *mp, const char *p, size_t len)
{
	mix(arg, "H", 1);
	mix(arg, p, len);
}

static void
fz_start(void *arg, const struct mime_part *mp)
{
	struct fz	*f = arg;

	if (mp->start > f->total || mp->body > f->total ||
	    mp->namelen > MIME_NAME_MAX ||
	    memchr(mp->type, '\0', sizeof(mp->type)) == NULL)
		abort();
	mix(f, "S", 1);
	mix(f, mp->type, strlen(mp->type));
	mix(f, mp->name, mp->namelen);
	mix(f, &mp->flags, sizeof(mp->flags));
	mix(f, &mp->start, sizeof(mp->start));
}

static void
fz_body(void *arg, const struct mime_part *mp, const char *p, size_t len)
{
	mix(arg, p, len);
}

static void
fz_end(void *arg, const struct mime_part *mp)
{
	struct fz	*f = arg;

	if (mp->start > mp->body || mp->body > mp->end || mp->end > f->total)
		abort();
	if (mp->parent != NULL && mp->start < mp->parent->start)
		abort();
	mix(f, "E", 1);
	mix(f, &mp->end, sizeof(mp->end));
}

static uint64_t
run(const char *p, size_t len, size_t chunk)
{
	static const struct mime_cb	 cb = { fz_header, fz_start, fz_body,
					    fz_end };
	struct mime_limits		 lim = { 4, 30, 2048 };
	struct mime_parser		*mp;
	struct fz			 f = { 14695981039346656037ULL, len };
	size_t				 i, n;

	if ((mp = mime_new(&lim, &cb, &f)) == NULL)
		abort();
	for (i = 0; i < len; i += n) {
		n = len - i < chunk ? len - i : chunk;
		mime_feed(mp, p + i, n);
	}
	mime_end(mp);
	if (mime_malformed(mp) != NULL)
		mix(&f, mime_malformed(mp), strlen(mime_malformed(mp)));
	mime_free(mp);
	return f.h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 chunk;

	if (size < 1 || size > 65536)
		return 0;
	chunk = (size_t)data[0] % 64 + 1;
	if (run((const char *)data + 1, size - 1, size) !=
	    run((const char *)data + 1, size - 1, chunk))
		abort();
	return 0;
}
