/*
 * queue_pickup.c - new mail: incoming/ (smtp-in) and maildrop/
 * (moat-sendmail).
 *
 * inotify reports names renamed into either directory (IN_MOVED_TO:
 * every writer commits by rename); a full scan at start and every
 * QUEUE_SCAN_INTERVAL seconds catches whatever an overflowed or missing
 * inotify lost.  A name seen twice is harmless: the second open finds
 * nothing.
 *
 * incoming/QID is trusted (our own smtp-in wrote it) but still read
 * strictly; it is renamed to queue/QID (never over an existing file),
 * queue/ is fsync'ed once per batch, then the messages are scheduled.
 *
 * maildrop/QID comes from any local user: it is opened without
 * following symlinks or blocking on FIFOs, must be a plain file with
 * one link, is read strictly and bounded by message_size_limit, its
 * addresses are parsed, its content must have CRLF line ends only.
 * Only the sender, recipients and body type are taken from it: the
 * queue writes a new message (new qid, client "local", proto LOCAL, a
 * Received: line naming the file owner's uid) through tmp/ into queue/,
 * fsyncs, and only then unlinks the maildrop file.  A bad file is
 * removed with a log line; a file we could not copy (disk full) stays
 * for the next scan.
 *
 * Stale files: maildrop/ *.part (an interrupted moat-sendmail) and
 * tmp/QID (an interrupted writer) older than QUEUE_STALE_AGE go.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/addr.h"
#include "../common/config.h"
#include "../common/spool.h"
#include "queue.h"

#define QUEUE_SCAN_INTERVAL	60		/* s */
#define QUEUE_STALE_AGE		(24 * 3600)	/* s */
#define PICKUP_BATCH		256
#define PICKUP_INO_BUF		16384
#define PICKUP_COPY_BUF		(64 * 1024)
#define PICKUP_PATH_MAX		64
#define PART_SUFFIX		".part"

struct pickup_batch {
	struct qmsg	*v[PICKUP_BATCH];
	size_t		 n;
};

static void	qpickup_ino(int, short, void *);
static void	qpickup_tick(int, short, void *);
static void	qpickup_incoming(struct queue *, struct pickup_batch *,
		    const char *);
static void	qpickup_commit(struct queue *, struct pickup_batch *);
static void	qpickup_log_queued(const struct qmsg *, const char *);
static void	qpickup_maildrop(struct queue *, const char *);
static void	qpickup_refuse(const char *, const char *, long,
		    const char *);
static int	qpickup_addrs_ok(const struct envelope *);
static int	qpickup_copy(struct queue *, int, const struct envelope *,
		    long, struct spool_msg *, const char **);
static void	qpickup_stale(const char *, const char *);

/* qpickup_init - inotify watches and the periodic scan timer */
void
qpickup_init(struct queue *q)
{
	struct timeval	 tv = { QUEUE_SCAN_INTERVAL, 0 };

	q->wd_incoming = q->wd_maildrop = -1;
	q->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (q->ino_fd == -1)
		log_warn("event=start inotify=off scan_interval=%d",
		    QUEUE_SCAN_INTERVAL);
	else {
		q->wd_incoming = inotify_add_watch(q->ino_fd, "incoming",
		    IN_MOVED_TO);
		q->wd_maildrop = inotify_add_watch(q->ino_fd, "maildrop",
		    IN_MOVED_TO);
		if (q->wd_incoming == -1 || q->wd_maildrop == -1)
			log_warn("event=start inotify_add_watch");
		q->ev_ino = event_new(q->base, q->ino_fd, EV_READ | EV_PERSIST,
		    qpickup_ino, q);
		if (q->ev_ino == NULL || event_add(q->ev_ino, NULL) == -1)
			fatalx("event=start reason=\"inotify event\"");
	}
	q->ev_scan = event_new(q->base, -1, EV_PERSIST, qpickup_tick, q);
	if (q->ev_scan == NULL || event_add(q->ev_scan, &tv) == -1)
		fatalx("event=start reason=\"scan timer\"");
}

/* qpickup_stop - no new mail is taken from now on (SIGTERM) */
void
qpickup_stop(struct queue *q)
{
	if (q->ev_ino != NULL)
		event_del(q->ev_ino);
	if (q->ev_scan != NULL)
		event_del(q->ev_scan);
}

/* qpickup_scan - look at every file of incoming/, maildrop/ and tmp/ */
void
qpickup_scan(struct queue *q)
{
	struct pickup_batch	 b;
	struct dirent		*de;
	DIR			*d;
	size_t			 len;

	b.n = 0;
	if ((d = opendir("incoming")) == NULL)
		log_warn("event=scan dir=incoming");
	else {
		while ((de = readdir(d)) != NULL)
			qpickup_incoming(q, &b, de->d_name);
		closedir(d);
		qpickup_commit(q, &b);
	}
	if ((d = opendir("maildrop")) == NULL)
		log_warn("event=scan dir=maildrop");
	else {
		while ((de = readdir(d)) != NULL) {
			len = strlen(de->d_name);
			if (len > sizeof(PART_SUFFIX) - 1 &&
			    strcmp(de->d_name + len - sizeof(PART_SUFFIX) + 1,
			    PART_SUFFIX) == 0)
				qpickup_stale("maildrop", de->d_name);
			else if (qid_valid(de->d_name, len))
				qpickup_maildrop(q, de->d_name);
		}
		closedir(d);
	}
	if ((d = opendir("tmp")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (qid_valid(de->d_name, strlen(de->d_name)))
				qpickup_stale("tmp", de->d_name);
		closedir(d);
	}
}

static void
qpickup_tick(int fd, short ev, void *arg)
{
	qpickup_scan(arg);
}

/* qpickup_ino - names renamed into incoming/ or maildrop/ */
static void
qpickup_ino(int fd, short ev, void *arg)
{
	struct queue			*q = arg;
	char				 buf[PICKUP_INO_BUF]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event	*ie;
	struct pickup_batch		 b;
	char				 name[NAME_MAX + 1];
	ssize_t				 n;
	size_t				 off, nlen;
	int				 rescan = 0;

	b.n = 0;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (off = 0; off + sizeof(*ie) <= (size_t)n;
		    off += sizeof(*ie) + ie->len) {
			ie = (const struct inotify_event *)(buf + off);
			if (ie->mask & IN_Q_OVERFLOW)
				rescan = 1;
			if (ie->len == 0 || off + sizeof(*ie) + ie->len >
			    (size_t)n)
				continue;
			nlen = strnlen(ie->name, ie->len);
			if (nlen > NAME_MAX)
				continue;
			memcpy(name, ie->name, nlen);
			name[nlen] = '\0';
			if (ie->wd == q->wd_incoming)
				qpickup_incoming(q, &b, name);
			else if (ie->wd == q->wd_maildrop &&
			    qid_valid(name, nlen))
				qpickup_maildrop(q, name);
		}
	}
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
		log_warn("event=inotify read");
	qpickup_commit(q, &b);
	if (rescan) {
		log_warnx("event=inotify reason=overflow action=scan");
		qpickup_scan(q);
	}
}

/* qpickup_incoming - move incoming/name into queue/ (batched) */
static void
qpickup_incoming(struct queue *q, struct pickup_batch *b, const char *name)
{
	struct qmsg	*m;
	const char	*why;
	char		 from[PICKUP_PATH_MAX], to[PICKUP_PATH_MAX];
	int		 n1, n2, fd;

	if (!qid_valid(name, strlen(name)))
		return;
	if ((m = qstore_load_fd("incoming", name, &why, &fd)) == NULL) {
		if (why != NULL)
			qstore_quarantine("incoming", name, why);
		return;
	}
	n1 = snprintf(from, sizeof(from), "incoming/%s", name);
	n2 = snprintf(to, sizeof(to), "queue/%s", name);
	if (n1 < 0 || (size_t)n1 >= sizeof(from) || n2 < 0 ||
	    (size_t)n2 >= sizeof(to))
		panic("qpickup_incoming: path of a valid qid too long");
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == -1) {
		if (errno == EEXIST)
			qstore_quarantine("incoming", name,
			    "queue id already queued");
		else if (errno != ENOENT)
			log_warn("event=pickup_error qid=%s", name);
		close(fd);
		qstore_free(m);
		return;
	}
	/* the same file, now queue/QID: its first job needs no open() */
	qstore_keep_fd(m, fd);
	m->where = QW_QUEUE;
	queue_msg_add(q, m);
	b->v[b->n++] = m;
	if (b->n == PICKUP_BATCH)
		qpickup_commit(q, b);
}

/* qpickup_commit - fsync queue/ once for the batch, then schedule it */
static void
qpickup_commit(struct queue *q, struct pickup_batch *b)
{
	time_t	 now = time(NULL);
	size_t	 i;

	if (b->n == 0)
		return;
	/* on failure the renames may not be durable yet: still ours */
	(void)spool_dir_sync("queue");
	for (i = 0; i < b->n; i++) {
		qpickup_log_queued(b->v[i], "");
		queue_msg_schedule(q, b->v[i], now);
	}
	b->n = 0;
}

static void
qpickup_log_queued(const struct qmsg *m, const char *extra)
{
	char	 from[300];

	log_sanitize(m->sender, strlen(m->sender), from, sizeof(from));
	log_info("event=queued qid=%s from=<%s> nrcpt=%zu size=%zu%s", m->qid,
	    from, m->nrcpt, m->size, extra);
}

/* qpickup_maildrop - import one local submission */
static void
qpickup_maildrop(struct queue *q, const char *name)
{
	struct envelope	 env;
	struct spool_msg w;
	struct stat	 st;
	struct qmsg	*m;
	const char	*why = NULL;
	char		 path[PICKUP_PATH_MAX], extra[64];
	long		 uid = -1;
	int		 fd, n;

	n = snprintf(path, sizeof(path), "maildrop/%s", name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP)
			qpickup_refuse(path, name, -1, "symbolic link");
		else if (errno != ENOENT)
			log_warn("event=maildrop_error qid=%s path=%s", name,
			    path);
		return;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("event=maildrop_error qid=%s path=%s", name, path);
		close(fd);
		return;
	}
	uid = (long)st.st_uid;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		qpickup_refuse(path, name, uid,
		    "not a plain file with one link");
		return;
	}
	if (spool_msg_read(fd, &env, &why) == -1) {
		close(fd);
		qpickup_refuse(path, name, uid, why);
		return;
	}
	if (env.size > q->conf->message_size_limit)
		why = "message too large";
	else if (!qpickup_addrs_ok(&env))
		why = "bad address";
	if (why != NULL) {
		envelope_free(&env);
		close(fd);
		qpickup_refuse(path, name, uid, why);
		return;
	}
	n = qpickup_copy(q, fd, &env, uid, &w, &why);
	envelope_free(&env);
	close(fd);
	if (n == -2)
		qpickup_refuse(path, name, uid, why);
	if (n != 0)
		return;
	/* the copy is durable in queue/: only now the original goes */
	if (unlink(path) == -1)
		log_warn("event=maildrop_error qid=%s unlink", name);
	(void)spool_dir_sync("maildrop");
	if ((m = qstore_load("queue", w.qid, &why)) == NULL) {
		/* our own file: it will be found at the next start */
		log_warnx("event=pickup_error qid=%s reason=\"%s\"", w.qid,
		    why ? why : "vanished");
		return;
	}
	m->where = QW_QUEUE;
	queue_msg_add(q, m);
	n = snprintf(extra, sizeof(extra), " uid=%ld orig_qid=%s", uid, name);
	qpickup_log_queued(m, n > 0 && (size_t)n < sizeof(extra) ? extra :
	    "");
	queue_msg_schedule(q, m, time(NULL));
}

/* qpickup_refuse - remove a bad maildrop file, with the reason */
static void
qpickup_refuse(const char *path, const char *name, long uid, const char *why)
{
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("event=maildrop_error qid=%s path=%s unlink", name,
		    path);
	log_warnx("event=maildrop_refused qid=%s path=%s uid=%ld "
	    "reason=\"%s\"", name, path, uid, why);
}

/* qpickup_addrs_ok - sender and recipients are RFC 5321 mailboxes */
static int
qpickup_addrs_ok(const struct envelope *env)
{
	struct addr	 a;
	const char	*why;
	size_t		 i, len;

	len = strlen(env->sender);
	if (len > 0 && addr_parse_mailbox(env->sender, len, env->smtputf8, &a,
	    &why) == -1)
		return 0;
	for (i = 0; i < env->nrcpt; i++) {
		len = strlen(env->rcpt[i]);
		if (len == 10 && mem_casecmp(env->rcpt[i], "postmaster",
		    10) == 0)
			continue;
		if (addr_parse_mailbox(env->rcpt[i], len, env->smtputf8, &a,
		    &why) == -1 || (a.flags & ADDR_ROUTE))
			return 0;
	}
	return 1;
}

/*
 * qpickup_copy - write the new queue file: our envelope, a Received:
 * line (RFC 5321 4.4), the checked content; commit to queue/ and fsync.
 * 0 done, -1 failed here (try again later), -2 bad content (*bad why).
 */
static int
qpickup_copy(struct queue *q, int fd, const struct envelope *src, long uid,
    struct spool_msg *w, const char **badp)
{
	struct envelope	 ne;
	struct tm	 tm;
	time_t		 now = time(NULL);
	char		 date[64], hdr[512], *in = NULL;
	size_t		 left, i, k;
	ssize_t		 r;
	off_t		 off;
	int		 n, cr = 0;
	const char	*bad = NULL;

	memset(&ne, 0, sizeof(ne));
	memcpy(ne.client_addr, "local", sizeof("local"));
	memcpy(ne.client_name, "localhost", sizeof("localhost"));
	memcpy(ne.helo, "localhost", sizeof("localhost"));
	memcpy(ne.proto, "LOCAL", sizeof("LOCAL"));
	ne.arrival = now;
	ne.body = src->body;
	ne.smtputf8 = src->smtputf8;
	if (envelope_set_sender(&ne, src->sender, strlen(src->sender)) == -1)
		goto fail_env;
	for (i = 0; i < src->nrcpt; i++)
		if (envelope_add_rcpt(&ne, src->rcpt[i],
		    strlen(src->rcpt[i])) == -1)
			goto fail_env;
	if (spool_msg_open(w, &ne, "tmp", "") == -1)
		goto fail_env;
	localtime_r(&now, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) ==
	    0)
		goto fail;
	n = snprintf(hdr, sizeof(hdr), "Received: from local (uid %ld)\r\n"
	    "\tby %s with LOCAL id %s;\r\n\t%s\r\n", uid, q->conf->hostname,
	    w->qid, date);
	if (n < 0 || (size_t)n >= sizeof(hdr) ||
	    spool_msg_write(w, hdr, (size_t)n) == -1)
		goto fail;
	if ((in = malloc(PICKUP_COPY_BUF)) == NULL)
		goto fail;
	off = src->data_off;
	for (left = src->size; left > 0; left -= (size_t)r, off += r) {
		k = left < PICKUP_COPY_BUF ? left : PICKUP_COPY_BUF;
		if ((r = pread(fd, in, k, off)) <= 0) {
			if (r == -1 && errno == EINTR) {
				r = 0;
				continue;
			}
			goto fail;
		}
		/* CRLF only (spool.h): a bare CR or LF refuses the file */
		for (i = 0; i < (size_t)r && bad == NULL; i++) {
			if (cr && in[i] != '\n')
				bad = "bare CR in content";
			else if (!cr && in[i] == '\n')
				bad = "bare LF in content";
			cr = in[i] == '\r';
		}
		if (bad != NULL)
			break;
		if (spool_msg_write(w, in, (size_t)r) == -1)
			goto fail;
	}
	if (bad == NULL && cr)
		bad = "bare CR in content";
	if (bad != NULL) {
		spool_msg_abort(w);
		free(in);
		envelope_free(&ne);
		*badp = bad;
		return -2;
	}
	if (spool_msg_finish(w) == -1 || spool_msg_commit(w, "queue") == -1)
		goto fail;
	free(in);
	envelope_free(&ne);
	if (spool_dir_sync("queue") == -1)
		log_warnx("event=pickup_error qid=%s reason=\"queue/ not "
		    "synced\"", w->qid);
	return 0;
fail:
	log_warn("event=pickup_error qid=%s path=%s", w->qid, w->path);
	spool_msg_abort(w);
	free(in);
	envelope_free(&ne);
	return -1;
fail_env:
	log_warn("event=pickup_error reason=envelope");
	envelope_free(&ne);
	return -1;
}

/*
 * qpickup_stale - remove dir/name if untouched for QUEUE_STALE_AGE.  The
 * change time counts too: a recycled file renamed into tmp/ keeps its
 * old modification time until smtp-in writes it (spool.c, free/).
 */
static void
qpickup_stale(const char *dir, const char *name)
{
	struct stat	 st;
	char		 path[PICKUP_PATH_MAX + NAME_MAX];
	int		 n;

	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	if (lstat(path, &st) == -1 || st.st_mtime > time(NULL) -
	    QUEUE_STALE_AGE || st.st_ctime > time(NULL) - QUEUE_STALE_AGE)
		return;
	if (unlink(path) == 0)
		log_info("event=stale_removed path=%s", path);
}
