/*
 * quarantine.c - the strict reader of the quarantine record
 * (quarantine.h) for the queue role.  It refuses anything that is not
 * exactly the record smtp-in writes (STYLE.md 10).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "quarantine.h"
#include "spool.h"

#define WHY_MAX		1024	/* the record is small: anything larger is
				   not ours */

static int	take(const char **, const char *, const char *, char *,
		    size_t);

/* quarantine_why_read - see quarantine.h */
int
quarantine_why_read(const char *qid, struct quar_why *w)
{
	char	 path[64], b[WHY_MAX + 1];
	ssize_t	 n;
	int	 fd;

	if (!qid_valid(qid, strlen(qid)) ||
	    snprintf(path, sizeof(path), "%s/%s.why", QUAR_DIR, qid) >=
	    (int)sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, b, sizeof(b));
	close(fd);
	if (n <= 0 || n > WHY_MAX)
		return -1;
	return quarantine_why_parse(b, (size_t)n, w);
}

/* quarantine_why_parse - see quarantine.h */
int
quarantine_why_parse(const char *p, size_t len, struct quar_why *w)
{
	char		 t[32], dir[16], rec[WHY_MAX + 1];
	const char	*s = rec;
	char		*end;
	long long	 v;

	if (len > WHY_MAX || memchr(p, '\0', len) != NULL)
		return -1;
	memcpy(rec, p, len);
	rec[len] = '\0';
	memset(w, 0, sizeof(*w));
	if (strncmp(s, "MOAT-QUARANTINE 1\n", 18) != 0)
		return -1;
	s += 18;
	if (take(&s, "time ", rec + len, t, sizeof(t)) == -1 ||
	    take(&s, "direction ", rec + len, dir, sizeof(dir)) == -1 ||
	    take(&s, "rule ", rec + len, w->rule, sizeof(w->rule)) == -1 ||
	    take(&s, "reason ", rec + len, w->reason, sizeof(w->reason)) ==
	    -1 || strcmp(s, "END\n") != 0)
		return -1;
	errno = 0;
	v = strtoll(t, &end, 10);
	if (errno != 0 || *end != '\0' || end == t || v < 0)
		return -1;
	w->time = (time_t)v;
	if (strcmp(dir, "inbound") == 0)
		w->outbound = 0;
	else if (strcmp(dir, "outbound") == 0)
		w->outbound = 1;
	else
		return -1;
	return 0;
}

/* take - the record "KEY value\n" at *sp into out; advance */
static int
take(const char **sp, const char *key, const char *end, char *out,
    size_t outsz)
{
	const char	*s = *sp, *nl;
	size_t		 klen = strlen(key), n;

	if (strncmp(s, key, klen) != 0)
		return -1;
	s += klen;
	if ((nl = memchr(s, '\n', (size_t)(end - s))) == NULL)
		return -1;
	n = (size_t)(nl - s);
	if (n >= outsz)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	*sp = nl + 1;
	return 0;
}
