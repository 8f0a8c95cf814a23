/*
 * rcptmap.c - relay_recipients: valid addresses per local domain (see
 * rcptmap.h).
 *
 * Entries are kept as lower-cased "local@domain" and "@domain" strings
 * in one sorted array (binary search), plus a sorted array of the
 * domains that have entries.  Input is bounded per line; a bad line is
 * reported with its file and line and skipped, so one run shows every
 * mistake.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "addr.h"
#include "rcptmap.h"

#define RCPTMAP_ENTRY_MAX	(RCPTMAP_LOCAL_MAX + 1 + RCPTMAP_DOMAIN_MAX)

struct rcptmap {
	char		**v;		/* "local@domain" or "@domain" */
	size_t		 n, cap;
	char		**dom;		/* domains with entries */
	size_t		 ndom, domcap;
};

static int	add(char ***, size_t *, size_t *, const char *, size_t);
static int	str_cmp(const void *, const void *);
static size_t	uniq(char **, size_t);
static int	find(char *const *, size_t, const char *, size_t);
static void	rm_err(FILE *, const char *, unsigned, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static int	line_entry(struct rcptmap *, const char *, size_t,
		    const char **);

struct rcptmap *
rcptmap_new(void)
{
	return calloc(1, sizeof(struct rcptmap));
}

void
rcptmap_free(struct rcptmap *m)
{
	size_t	 i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		free(m->v[i]);
	for (i = 0; i < m->ndom; i++)
		free(m->dom[i]);
	free(m->v);
	free(m->dom);
	free(m);
}

/* rcptmap_parse - one address or @domain per line */
size_t
rcptmap_parse(struct rcptmap *m, const char *name, const char *p, size_t len,
    FILE *errf)
{
	const char	*end = p + len, *nl, *why;
	size_t		 llen, nerr = 0;
	unsigned	 line = 0;

	while (p < end) {
		line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		/* blanks around, a CR of CRLF files, '#' comments */
		while (llen > 0 && (p[llen - 1] == ' ' ||
		    p[llen - 1] == '\t' || p[llen - 1] == '\r'))
			llen--;
		while (llen > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			llen--;
		}
		if (llen > 0 && *p != '#' && line_entry(m, p, llen, &why) ==
		    -1) {
			rm_err(errf, name, line, "%s", why);
			nerr++;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return nerr;
}

/* rcptmap_finish - sort, drop duplicates (harmless in a user list) */
void
rcptmap_finish(struct rcptmap *m)
{
	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), str_cmp);
	m->n = uniq(m->v, m->n);
	if (m->ndom > 1)
		qsort(m->dom, m->ndom, sizeof(*m->dom), str_cmp);
	m->ndom = uniq(m->dom, m->ndom);
}

size_t
rcptmap_count(const struct rcptmap *m)
{
	return m->n;
}

/* rcptmap_lookup - see rcptmap.h; received data, never strlen'ed */
int
rcptmap_lookup(const struct rcptmap *m, const char *local, size_t llen,
    const char *domain, size_t dlen)
{
	char	 key[RCPTMAP_ENTRY_MAX + 1];

	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0 || dlen > RCPTMAP_DOMAIN_MAX)
		return -1;
	memcpy(key + 1, domain, dlen);
	mem_ascii_lower(key + 1, dlen);
	if (!find(m->dom, m->ndom, key + 1, dlen))
		return -1;
	key[0] = '@';
	if (find(m->v, m->n, key, dlen + 1))
		return 1;
	if (llen == 0 || llen > RCPTMAP_LOCAL_MAX)
		return 0;
	memcpy(key, local, llen);
	key[llen] = '@';
	memcpy(key + llen + 1, domain, dlen);
	mem_ascii_lower(key, llen + 1 + dlen);
	return find(m->v, m->n, key, llen + 1 + dlen);
}

/* line_entry - "local@domain" or "@domain"; 0, or -1 with *why */
static int
line_entry(struct rcptmap *m, const char *p, size_t len, const char **why)
{
	const char	*at;
	size_t		 llen, i;

	if ((at = memrchr(p, '@', len)) == NULL) {
		*why = "not an address or @domain";
		return -1;
	}
	llen = (size_t)(at - p);
	for (i = 0; i < llen; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 127) {
			*why = "blank, control or non-ASCII octet in the "
			    "local part";
			return -1;
		}
	if (llen > RCPTMAP_LOCAL_MAX) {
		*why = "local part longer than 64 octets";
		return -1;
	}
	if (len - llen - 1 == 0 || len - llen - 1 > RCPTMAP_DOMAIN_MAX ||
	    at[1] == '[' || !addr_domain_valid(at + 1, len - llen - 1, 0)) {
		*why = "bad domain";
		return -1;
	}
	if (add(&m->v, &m->n, &m->cap, p, len) == -1 ||
	    add(&m->dom, &m->ndom, &m->domcap, at + 1, len - llen - 1) == -1) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* add - a lower-cased copy (a trailing dot dropped) to an array */
static int
add(char ***v, size_t *n, size_t *cap, const char *p, size_t len)
{
	char	**nv, *s;

	if (len > 1 && p[len - 1] == '.')
		len--;
	if (*n == *cap) {
		if ((nv = reallocarray(*v, *cap ? *cap * 2 : 64,
		    sizeof(**v))) == NULL)
			return -1;
		*v = nv;
		*cap = *cap ? *cap * 2 : 64;
	}
	if ((s = str_dup_len(p, len)) == NULL)
		return -1;
	mem_ascii_lower(s, len);
	(*v)[(*n)++] = s;
	return 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* uniq - drop adjacent duplicates of a sorted array; the new count */
static size_t
uniq(char **v, size_t n)
{
	size_t	 i, k = 0;

	for (i = 0; i < n; i++) {
		if (k > 0 && strcmp(v[k - 1], v[i]) == 0) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	return k;
}

/* find - binary search for key[0..len) */
static int
find(char *const *v, size_t n, const char *key, size_t len)
{
	size_t	 lo = 0, hi = n, mid, el;
	int	 r;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		el = strlen(v[mid]);
		r = memcmp(key, v[mid], len < el ? len : el);
		if (r == 0)
			r = len < el ? -1 : len > el;
		if (r == 0)
			return 1;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

static void
rm_err(FILE *errf, const char *name, unsigned line, const char *fmt, ...)
{
	va_list	 ap;

	if (errf == NULL)
		return;
	fprintf(errf, "%s:%u: ", name, line);
	va_start(ap, fmt);
	vfprintf(errf, fmt, ap);
	va_end(ap);
	fputc('\n', errf);
}
