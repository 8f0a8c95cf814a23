/*
 * quarantine.c - the quarantine record (quarantine.h): writer for
 * smtp-in, strict reader for the queue role.
 *
 * Durability is that of accepted mail: the record is fsync'ed before
 * the message is renamed beside it, and the directory is fsync'ed after
 * the rename, so once smtp-in answers, the message and its reason are
 * on disk.  The reader refuses anything it did not write (STYLE.md 10).
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

static void	clean_copy(char *, size_t, const char *);
static int	take(const char **, const char *, const char *, char *,
		    size_t);

/* quarantine_commit - see quarantine.h */
int
quarantine_commit(struct spool_msg *m, const struct quar_why *w)
{
	char	 rule[QUAR_RULE_MAX], reason[QUAR_REASON_MAX];
	char	 rec[WHY_MAX], tmp[64], path[64];
	int	 fd, n, saved;

	clean_copy(rule, sizeof(rule), w->rule);
	clean_copy(reason, sizeof(reason), w->reason);
	n = snprintf(rec, sizeof(rec), "MOAT-QUARANTINE 1\ntime %lld\n"
	    "direction %s\nrule %s\nreason %s\nEND\n", (long long)w->time,
	    w->outbound ? "outbound" : "inbound", rule, reason);
	if (n < 0 || (size_t)n >= sizeof(rec) ||
	    snprintf(tmp, sizeof(tmp), "%s/%s.why.tmp", QUAR_DIR, m->qid) >=
	    (int)sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/%s.why", QUAR_DIR, m->qid) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1)
		return -1;
	if (write(fd, rec, (size_t)n) != n || fsync(fd) == -1) {
		saved = errno ? errno : EIO;
		close(fd);
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		saved = errno;
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	if (spool_msg_commit(m, QUAR_DIR) == -1) {
		saved = errno;
		(void)unlink(path);
		errno = saved;
		return -1;
	}
	return spool_dir_sync(QUAR_DIR);
}

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

/* clean_copy - printable ASCII only, one line, truncated */
static void
clean_copy(char *out, size_t outsz, const char *in)
{
	size_t	 i;

	for (i = 0; i + 1 < outsz && in[i] != '\0'; i++)
		out[i] = in[i] >= ' ' && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
	if (i == 0 && outsz > 1) {
		out[0] = '-';
		out[1] = '\0';
	}
}
