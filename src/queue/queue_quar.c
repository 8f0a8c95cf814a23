/*
 * queue_quar.c - the quarantine for moatctl: list, show, release,
 * delete, and expiry after quarantine_lifetime (quarantine.h).
 *
 * The queue role owns spool_dir/quarantine/ once smtp-in has put a
 * message there.  Release renames the message file into incoming/,
 * where the pickup (queue_pickup.c) takes it like any new message and
 * delivers it to its original recipients; the content filter does not
 * run again.  Every change is followed by an fsync of the directories
 * it touched.  Nothing here blocks for long: the directory is small
 * (a quarantine is for exceptions) and each file is read once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../common/quarantine.h"
#include "../common/spool.h"
#include "queue.h"

#define QQ_EXPIRE_EVERY	600	/* s between expiry scans */
#define QQ_MAX		10000	/* entries listed */
#define QQ_HDRS_MAX	8192	/* header octets shown */
#define QQ_ADDR		300

struct qq_entry {
	char		 qid[QID_SIZE];
	struct quar_why	 why;
};

static int	qq_scan(struct qq_entry **, size_t *);
static int	qq_cmp(const void *, const void *);
static int	qq_open(const char *, struct envelope *, int *);
static int	qq_remove(const char *);
static void	qq_expire(int, short, void *);
static void	qq_date(time_t, char *, size_t);
static void	qq_headers(int, const struct envelope *, struct buf *);

static struct event	*ev_expire;

/* qquar_init - expire at start, then every QQ_EXPIRE_EVERY seconds */
void
qquar_init(struct queue *q)
{
	struct timeval	 tv = { 0, 0 };

	ev_expire = evtimer_new(q->base, qq_expire, q);
	if (ev_expire == NULL || evtimer_add(ev_expire, &tv) == -1)
		fatalx("event=start reason=\"quarantine timer\"");
}

/* qquar_list - the quarantine, mailq style, oldest first */
int
qquar_list(struct queue *q, const char *unused, struct buf *out)
{
	struct qq_entry		*v = NULL;
	struct envelope		 env;
	char			 date[32], s[QQ_ADDR];
	size_t			 n, i, k, shown = 0;
	unsigned long long	 octets = 0;
	int			 fd;

	if (qq_scan(&v, &n) == -1)
		return buf_appends(out, "-ERR cannot read quarantine/\n");
	buf_appends(out, "+OK\n");
	for (i = 0; i < n; i++) {
		if (qq_open(v[i].qid, &env, &fd) == -1)
			continue;
		close(fd);
		octets += env.size;
		qq_date(env.arrival, date, sizeof(date));
		log_sanitize(env.sender, strlen(env.sender), s, sizeof(s));
		buf_appendf(out, "%s%-16s  %8zu %s  %s\n", shown ? "\n" : "",
		    v[i].qid, env.size, date, s[0] ? s : "MAILER-DAEMON");
		buf_appendf(out, "    (quarantined %s: %s: %s)\n",
		    v[i].why.outbound ? "outbound" : "inbound", v[i].why.rule,
		    v[i].why.reason);
		for (k = 0; k < env.nrcpt; k++) {
			log_sanitize(env.rcpt[k], strlen(env.rcpt[k]), s,
			    sizeof(s));
			buf_appendf(out, "%41s%s\n", "", s);
		}
		envelope_free(&env);
		shown++;
	}
	free(v);
	if (shown == 0)
		return buf_appends(out, "Quarantine is empty\n");
	return buf_appendf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
	    (octets + 1023) / 1024, shown, shown == 1 ? "" : "s");
}

/* qquar_show - one quarantined message: why, envelope, its header */
int
qquar_show(struct queue *q, const char *qid, struct buf *out)
{
	struct quar_why	 why;
	struct envelope	 env;
	char		 date[64], s[QQ_ADDR];
	size_t		 k;
	int		 fd;

	if (quarantine_why_read(qid, &why) == -1 ||
	    qq_open(qid, &env, &fd) == -1)
		return buf_appends(out, "-ERR no such message in quarantine\n");
	buf_appendf(out, "+OK\nqid: %s\nstate: quarantined\n", qid);
	qq_date(why.time, date, sizeof(date));
	buf_appendf(out, "quarantined: %s\ndirection: %s\nrule: %s\n"
	    "reason: %s\n", date, why.outbound ? "outbound" : "inbound",
	    why.rule, why.reason);
	qq_date(env.arrival, date, sizeof(date));
	log_sanitize(env.sender, strlen(env.sender), s, sizeof(s));
	buf_appendf(out, "arrival: %s\nsize: %zu\nfrom: <%s>\n"
	    "client: %s (%s)\nhelo: %s\nproto: %s\n", date, env.size, s,
	    env.client_addr, env.client_name, env.helo, env.proto);
	if (env.auth[0] != '\0')
		buf_appendf(out, "auth: %s\n", env.auth);
	for (k = 0; k < env.nrcpt; k++) {
		log_sanitize(env.rcpt[k], strlen(env.rcpt[k]), s, sizeof(s));
		buf_appendf(out, "rcpt: <%s>\n", s);
	}
	qq_headers(fd, &env, out);
	close(fd);
	envelope_free(&env);
	return out->len > 0 ? 0 : -1;
}

/* qquar_release - into incoming/: the queue delivers it as received */
int
qquar_release(struct queue *q, const char *qid, struct buf *out)
{
	struct quar_why	 why;
	char		 from[64], to[64], wpath[64];

	if (quarantine_why_read(qid, &why) == -1 ||
	    snprintf(from, sizeof(from), "%s/%s", QUAR_DIR, qid) >=
	    (int)sizeof(from) ||
	    snprintf(to, sizeof(to), "incoming/%s", qid) >= (int)sizeof(to) ||
	    snprintf(wpath, sizeof(wpath), "%s/%s.why", QUAR_DIR, qid) >=
	    (int)sizeof(wpath))
		return buf_appends(out, "-ERR no such message in quarantine\n");
	/* the queue must not know the id already (it never should) */
	if (queue_msg_find(q, qid, strlen(qid)) != NULL)
		return buf_appendf(out, "-ERR %s is already queued\n", qid);
	if (rename(from, to) == -1) {
		log_warn("event=quarantine_error qid=%s rename", qid);
		return buf_appendf(out, "-ERR cannot move %s to incoming/\n",
		    qid);
	}
	(void)spool_dir_sync("incoming");
	if (unlink(wpath) == -1)
		log_warn("event=quarantine_error qid=%s unlink why", qid);
	(void)spool_dir_sync(QUAR_DIR);
	log_info("event=quarantine_release qid=%s rule=%s", qid, why.rule);
	/* inotify sees the rename; a scan makes sure of it */
	qpickup_scan(q);
	return buf_appendf(out, "+OK\n%s released for delivery\n", qid);
}

/* qquar_delete - remove a quarantined message for good */
int
qquar_delete(struct queue *q, const char *qid, struct buf *out)
{
	struct quar_why	 why;

	if (quarantine_why_read(qid, &why) == -1)
		return buf_appends(out, "-ERR no such message in quarantine\n");
	if (qq_remove(qid) == -1)
		return buf_appendf(out, "-ERR cannot delete %s\n", qid);
	log_info("event=quarantine_delete qid=%s rule=%s", qid, why.rule);
	return buf_appendf(out, "+OK\n%s deleted\n", qid);
}

/* qq_expire - drop what has been there longer than quarantine_lifetime */
static void
qq_expire(int fd, short ev, void *arg)
{
	struct queue	*q = arg;
	struct timeval	 tv = { QQ_EXPIRE_EVERY, 0 };
	struct qq_entry	*v = NULL;
	time_t		 now = time(NULL);
	size_t		 n, i;

	if (qq_scan(&v, &n) == 0) {
		for (i = 0; i < n; i++) {
			if (now - v[i].why.time < q->conf->quarantine_lifetime)
				continue;
			if (qq_remove(v[i].qid) == 0)
				log_info("event=quarantine_expired qid=%s "
				    "rule=%s", v[i].qid, v[i].why.rule);
		}
		free(v);
	}
	evtimer_add(ev_expire, &tv);
}

/* qq_scan - every QID.why of quarantine/ that parses, oldest first */
static int
qq_scan(struct qq_entry **vp, size_t *np)
{
	struct qq_entry	*v = NULL, *nv;
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0, cap = 0, len;

	if ((d = opendir(QUAR_DIR)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && n < QQ_MAX) {
		len = strlen(de->d_name);
		if (len != QID_LEN + 4 ||
		    strcmp(de->d_name + QID_LEN, ".why") != 0 ||
		    !qid_valid(de->d_name, QID_LEN))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				break;
			v = nv;
		}
		memcpy(v[n].qid, de->d_name, QID_LEN);
		v[n].qid[QID_LEN] = '\0';
		if (quarantine_why_read(v[n].qid, &v[n].why) == 0)
			n++;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), qq_cmp);
	*vp = v;
	*np = n;
	return 0;
}

static int
qq_cmp(const void *a, const void *b)
{
	return memcmp(((const struct qq_entry *)a)->qid,
	    ((const struct qq_entry *)b)->qid, QID_LEN);
}

/* qq_open - open quarantine/QID and read its envelope; 0 or -1 */
static int
qq_open(const char *qid, struct envelope *env, int *fdp)
{
	const char	*why;
	char		 path[64];
	int		 fd;

	if (snprintf(path, sizeof(path), "%s/%s", QUAR_DIR, qid) >=
	    (int)sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	memset(env, 0, sizeof(*env));
	if (spool_msg_read(fd, env, &why) == -1) {
		log_warnx("event=quarantine_error qid=%s reason=\"%s\"", qid,
		    why);
		close(fd);
		return -1;
	}
	*fdp = fd;
	return 0;
}

/* qq_remove - unlink the message, then its record; fsync the dir */
static int
qq_remove(const char *qid)
{
	char	 path[64];

	if (snprintf(path, sizeof(path), "%s/%s", QUAR_DIR, qid) >=
	    (int)sizeof(path))
		return -1;
	if (unlink(path) == -1 && errno != ENOENT) {
		log_warn("event=quarantine_error qid=%s unlink", qid);
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/%s.why", QUAR_DIR, qid) >=
	    (int)sizeof(path) || (unlink(path) == -1 && errno != ENOENT)) {
		log_warn("event=quarantine_error qid=%s unlink why", qid);
		return -1;
	}
	(void)spool_dir_sync(QUAR_DIR);
	return 0;
}

/* qq_headers - "header: " lines of the message's header section */
static void
qq_headers(int fd, const struct envelope *env, struct buf *out)
{
	char	 b[QQ_HDRS_MAX], line[QQ_HDRS_MAX];
	size_t	 len, i, start = 0;
	ssize_t	 n;

	len = env->size < sizeof(b) ? env->size : sizeof(b);
	if ((n = pread(fd, b, len, env->data_off)) <= 0)
		return;
	len = (size_t)n;
	for (i = 0; i < len; i++) {
		if (b[i] != '\n')
			continue;
		if (i == start || (i == start + 1 && b[start] == '\r'))
			return;		/* the empty line: end of header */
		log_sanitize_text(b + start, i - start - (b[i - 1] == '\r'),
		    line, sizeof(line));
		buf_appendf(out, "header: %s\n", line);
		start = i + 1;
	}
}

static void
qq_date(time_t t, char *out, size_t outsz)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(out, outsz, "%lld", (long long)t);
}
