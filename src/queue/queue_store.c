/*
 * queue_store.c - the queue's files: message load, per-recipient state,
 * moves between queue/ and hold/, removal, quarantine, and the rebuild
 * of the in-memory queue at start.
 *
 * State file DIR/QID.state, beside the message (version 1, text):
 *
 *   MOAT-STATE 1
 *   arrival EPOCH              first arrival (the envelope's time)
 *   attempts N                 rounds that ended with a deferral
 *   next EPOCH                 next attempt, 0 = none
 *   reason TEXT                last deferral reason, may be empty
 *   warned 0|1                 delay notice sent (optional, absent = 0)
 *   rcpt IDX STATUS N TEXT     one per recipient whose state is known:
 *                              STATUS pending|delivered|failed, N its
 *                              attempts, TEXT its last reason
 *   END
 *
 * It is written to DIR/QID.state.tmp, fsync'ed, renamed over
 * DIR/QID.state and DIR fsync'ed, so a crash leaves the old state or
 * the new one.  A missing state means "all pending, never tried"; a bad
 * one is logged and treated the same (at worst a recipient is delivered
 * twice, never lost).  Moves rename the message first, then the state:
 * after a crash in between, the rebuild finds the state in the other
 * directory and brings it along.  Removal unlinks the message first:
 * a leftover state without its message is an orphan the rebuild drops.
 *
 * A removal is made durable by one fsync of its directory within
 * QSTORE_SYNC_DELAY for every removal in that time (and at exit), not
 * one per message: a crash in between can bring a finished message
 * back, to be delivered twice, never lost.  The message file opened at
 * pickup stays open for the first job (qstore_keep_fd), at most
 * QSTORE_KEEP_MAX of them, so that the dispatch does not open it again.
 *
 * A delivered message file of less than SPOOL_FREE_SIZE octets is
 * renamed into free/ instead of unlinked, for smtp-in to write the next
 * message into (spool.c).  Only messages of queue/ with no job in
 * flight go there: the delivery roles close the file before they
 * answer, so nobody reads it any more.  free/ holds at most
 * QSTORE_FREE_MAX files (a count kept here, checked by listing the
 * directory when it reaches the bound, at most every
 * QSTORE_FREE_RECOUNT_MS), and is
 * emptied at start and after QSTORE_FREE_IDLE seconds without a
 * recycled file, so that old octets do not linger there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/spool.h"
#include "queue.h"

#define STATE_MAGIC	"MOAT-STATE 1"
#define STATE_SUFFIX	".state"
#define STATE_TMP	".state.tmp"
#define STATE_LINE_MAX	(QUEUE_REASON_MAX + 64)	/* one rcpt line */
#define STATE_HEAD_MAX	(QUEUE_REASON_MAX + 256) /* lines but rcpt */
#define QPATH_MAX	64
#define QSTORE_KEEP_MAX	512	/* descriptors kept from pickup */
#define QSTORE_FREE_MAX	1024	/* files kept in free/ for smtp-in */
#define QSTORE_FREE_IDLE 60	/* s without recycling: free/ emptied */
#define QSTORE_FREE_RECOUNT_MS 100	/* free/ listed again at the bound */
#define QSTORE_SYNC_DELAY 100	/* ms: removals made durable together */

static const char *const rcpt_status_names[] = {
	[RS_PENDING] = "pending",
	[RS_DELIVERED] = "delivered",
	[RS_FAILED] = "failed",
};

static int	qstore_path(char *, const char *, const char *, const char *);
static int	qstore_parse_num(const char *, size_t, unsigned long long *);
static int	qstore_state_parse(struct qmsg *, char *, size_t);
static void	qstore_state_reset(struct qmsg *);
static void	qstore_scan_dir(struct queue *, enum qmsg_where);
static void	qstore_orphans(const char *);
static int	qstore_has_suffix(const char *, size_t, const char *);
static void	qstore_sync_later(enum qmsg_where);
static void	qstore_sync_now(void);
static void	qstore_sync_timer(int, short, void *);
static int	qstore_recycle(struct qmsg *, const char *);
static void	qstore_free_timer(int, short, void *);

static struct event	*qstore_sync_ev;
static int		 qstore_dirty[2];	/* queue/, hold/ */
static size_t		 qstore_nkept;
static size_t		 qstore_nfree;		/* files put in free/ */
static long long	 qstore_free_counted;	/* last listing, ms */
static int		 qstore_free_used;	/* since the idle tick */

/*
 * qstore_init - the timer of the deferred removal fsyncs; they are
 * also done at exit, whatever way the role ends
 */
void
qstore_init(struct event_base *base)
{
	struct timeval	 tv = { QSTORE_FREE_IDLE, 0 };
	struct event	*ev;

	if ((qstore_sync_ev = evtimer_new(base, qstore_sync_timer, NULL)) ==
	    NULL || (ev = event_new(base, -1, EV_PERSIST, qstore_free_timer,
	    NULL)) == NULL || event_add(ev, &tv) == -1)
		fatalx("event=start reason=\"cannot set up events\"");
	if (atexit(qstore_sync_now) != 0)
		fatalx("event=start reason=atexit");
	(void)spool_free_purge();
}

/*
 * qstore_recycle - rename a delivered message file into free/ (see the
 * top of the file); -1 when it is to be unlinked instead
 */
static int
qstore_recycle(struct qmsg *m, const char *path)
{
	char		 fpath[QPATH_MAX];
	long long	 now;

	if (m->where != QW_QUEUE || m->jobs != 0 ||
	    m->size >= SPOOL_FREE_SIZE)
		return -1;
	if (qstore_nfree >= QSTORE_FREE_MAX) {
		/* smtp-in takes files out unseen: look how many are left */
		now = mono_ms();
		if (now - qstore_free_counted < QSTORE_FREE_RECOUNT_MS)
			return -1;
		qstore_free_counted = now;
		if ((qstore_nfree = spool_free_count()) >= QSTORE_FREE_MAX)
			return -1;
	}
	if (qstore_path(fpath, SPOOL_FREE, m->qid, "") == -1 ||
	    rename(path, fpath) == -1)
		return -1;
	qstore_nfree++;
	qstore_free_used = 1;
	return 0;
}

/* qstore_free_timer - empty free/ when nothing was recycled for a while */
static void
qstore_free_timer(int fd, short ev, void *arg)
{
	if (!qstore_free_used && qstore_nfree > 0) {
		(void)spool_free_purge();
		qstore_nfree = 0;
	}
	qstore_free_used = 0;
}

/* qstore_sync_later - fsync w's directory soon, once for many removals */
static void
qstore_sync_later(enum qmsg_where w)
{
	struct timeval	 tv = { 0, QSTORE_SYNC_DELAY * 1000 };

	qstore_dirty[w == QW_HOLD] = 1;
	if (qstore_sync_ev == NULL) {
		qstore_sync_now();
		return;
	}
	if (!evtimer_pending(qstore_sync_ev, NULL))
		evtimer_add(qstore_sync_ev, &tv);
}

/* qstore_sync_now - the pending directory fsyncs */
static void
qstore_sync_now(void)
{
	if (qstore_dirty[0] && spool_dir_sync("queue") == -1)
		log_warn("event=remove_error dir=queue sync");
	if (qstore_dirty[1] && spool_dir_sync("hold") == -1)
		log_warn("event=remove_error dir=hold sync");
	qstore_dirty[0] = qstore_dirty[1] = 0;
}

static void
qstore_sync_timer(int fd, short ev, void *arg)
{
	qstore_sync_now();
}

/*
 * qstore_keep_fd - keep fd (the message file, read at pickup) for the
 * first job, or close it when enough are kept already
 */
void
qstore_keep_fd(struct qmsg *m, int fd)
{
	if (m->fd != -1 || qstore_nkept >= QSTORE_KEEP_MAX) {
		close(fd);
		return;
	}
	m->fd = fd;
	qstore_nkept++;
}

/*
 * qstore_open - a read-only descriptor of the message file for a job:
 * the one kept from pickup (handed over once), else a new one.  The
 * caller closes it.
 */
int
qstore_open(struct qmsg *m)
{
	char	 path[QPATH_MAX];
	int	 fd;

	if (m->fd != -1) {
		fd = m->fd;
		m->fd = -1;
		qstore_nkept--;
		return fd;
	}
	if (qstore_path(path, qstore_dir(m->where), m->qid, "") == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* qstore_dir - the spool subdirectory of a place */
const char *
qstore_dir(enum qmsg_where w)
{
	return w == QW_HOLD ? "hold" : "queue";
}

/*
 * qstore_load - read dir/qid into a new struct qmsg (all recipients
 * pending).  NULL with *why NULL if the file vanished, with a reason if
 * it is not a good message file.
 */
struct qmsg *
qstore_load(const char *dir, const char *qid, const char **why)
{
	return qstore_load_fd(dir, qid, why, NULL);
}

/* qstore_load_fd - qstore_load, the open file given back in *fdp */
struct qmsg *
qstore_load_fd(const char *dir, const char *qid, const char **why, int *fdp)
{
	struct envelope	 env;
	struct qmsg	*m;
	char		 path[QPATH_MAX];
	size_t		 i;
	int		 fd;

	*why = NULL;
	if (qstore_path(path, dir, qid, "") == -1) {
		*why = "path too long";
		return NULL;
	}
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			*why = "cannot open";
		return NULL;
	}
	if (spool_msg_read(fd, &env, why) == -1) {
		close(fd);
		return NULL;
	}
	if (strcmp(env.qid, qid) != 0) {
		*why = "queue id does not match the file name";
		envelope_free(&env);
		close(fd);
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->rcpt = calloc(env.nrcpt, sizeof(*m->rcpt))) == NULL) {
		free(m);
		envelope_free(&env);
		close(fd);
		*why = "out of memory";
		return NULL;
	}
	m->fd = -1;
	if (fdp != NULL)
		*fdp = fd;
	else
		close(fd);
	memcpy(m->qid, env.qid, QID_SIZE);
	m->arrival = env.arrival;
	m->size = env.size;
	/* take the strings over from the envelope */
	m->sender = env.sender;
	env.sender = NULL;
	for (i = 0; i < env.nrcpt; i++) {
		m->rcpt[i].addr = env.rcpt[i];
		env.rcpt[i] = NULL;
	}
	m->nrcpt = env.nrcpt;
	/* both NUL-terminated within the same sizes (spool.h) */
	memcpy(m->client, env.client_addr, sizeof(m->client));
	m->authed = env.auth[0] != '\0';
	envelope_free(&env);
	return m;
}

/* qstore_free - release a message taken out of the queue */
void
qstore_free(struct qmsg *m)
{
	size_t	 i;

	if (m->timer != NULL)
		event_free(m->timer);
	if (m->fd != -1) {
		close(m->fd);
		qstore_nkept--;
	}
	for (i = 0; i < m->nrcpt; i++)
		free(m->rcpt[i].addr);
	free(m->rcpt);
	free(m->sender);
	free(m);
}

/* qstore_state_write - write-new-then-rename DIR/QID.state, durable */
int
qstore_state_write(struct qmsg *m)
{
	struct buf	 b;
	const char	*dir = qstore_dir(m->where);
	char		 tmp[QPATH_MAX], path[QPATH_MAX];
	size_t		 i;
	int		 fd = -1, r = -1;

	buf_init(&b, 0);
	m->has_state = 1;
	if (qstore_path(tmp, dir, m->qid, STATE_TMP) == -1 ||
	    qstore_path(path, dir, m->qid, STATE_SUFFIX) == -1)
		goto done;
	if (buf_appendf(&b, "%s\narrival %lld\nattempts %u\nnext %lld\n"
	    "reason %s\nwarned %d\n", STATE_MAGIC, (long long)m->arrival,
	    m->attempts, (long long)m->next, m->reason, m->warned ? 1 : 0) ==
	    -1)
		goto done;
	for (i = 0; i < m->nrcpt; i++)
		if (buf_appendf(&b, "rcpt %zu %s %u %s\n", i,
		    rcpt_status_names[m->rcpt[i].status], m->rcpt[i].attempts,
		    m->rcpt[i].reason) == -1)
			goto done;
	if (buf_appends(&b, "END\n") == -1)
		goto done;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1 || write_all(fd, b.data, b.len) == -1 ||
	    fsync(fd) == -1)
		goto done;
	if (close(fd) == -1) {
		fd = -1;
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto done;
	r = spool_dir_sync(dir);
done:
	if (r == -1)
		log_warn("event=state_error qid=%s dir=%s", m->qid, dir);
	if (fd != -1) {
		close(fd);
		(void)unlink(tmp);
	}
	buf_free(&b);
	return r;
}

/*
 * qstore_state_load - apply DIR/QID.state to a freshly loaded message;
 * a state left in the other directory by a crash mid-move is brought
 * over first.  0 also when there is no state; -1 (state ignored) if it
 * is bad.
 */
int
qstore_state_load(struct qmsg *m)
{
	struct stat	 st;
	char		 path[QPATH_MAX], other[QPATH_MAX], *data = NULL;
	size_t		 cap;
	ssize_t		 n;
	int		 fd, r = -1;

	m->has_state = 1;	/* found or not: removal will try */
	if (qstore_path(path, qstore_dir(m->where), m->qid, STATE_SUFFIX) ==
	    -1 || qstore_path(other, qstore_dir(m->where == QW_HOLD ?
	    QW_QUEUE : QW_HOLD), m->qid, STATE_SUFFIX) == -1)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		if (rename(other, path) == -1)
			return errno == ENOENT ? 0 : -1;
		log_info("event=state_moved qid=%s to=%s", m->qid,
		    qstore_dir(m->where));
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	}
	if (fd == -1) {
		log_warn("event=state_error qid=%s path=%s", m->qid, path);
		return -1;
	}
	/* bounded by what we could have written for this message */
	cap = STATE_HEAD_MAX + m->nrcpt * STATE_LINE_MAX;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > cap || (data = malloc(cap + 1)) == NULL)
		goto done;
	n = pread(fd, data, cap + 1, 0);
	if (n < 0 || (size_t)n > cap)
		goto done;
	r = qstore_state_parse(m, data, (size_t)n);
done:
	close(fd);
	free(data);
	if (r == -1) {
		log_warnx("event=state_error qid=%s path=%s reason=\"bad state "
		    "file, all recipients pending\"", m->qid, path);
		qstore_state_reset(m);
	}
	return r;
}

/* qstore_move - rename message and state to another place */
int
qstore_move(struct qmsg *m, enum qmsg_where to)
{
	char	 from_m[QPATH_MAX], to_m[QPATH_MAX];
	char	 from_s[QPATH_MAX], to_s[QPATH_MAX];

	if (qstore_path(from_m, qstore_dir(m->where), m->qid, "") == -1 ||
	    qstore_path(to_m, qstore_dir(to), m->qid, "") == -1 ||
	    qstore_path(from_s, qstore_dir(m->where), m->qid, STATE_SUFFIX) ==
	    -1 || qstore_path(to_s, qstore_dir(to), m->qid, STATE_SUFFIX) == -1)
		return -1;
	if (renameat2(AT_FDCWD, from_m, AT_FDCWD, to_m, RENAME_NOREPLACE) ==
	    -1) {
		log_warn("event=move_error qid=%s to=%s", m->qid,
		    qstore_dir(to));
		return -1;
	}
	if (rename(from_s, to_s) == -1 && errno != ENOENT)
		log_warn("event=move_error qid=%s to=%s state", m->qid,
		    qstore_dir(to));
	(void)spool_dir_sync(qstore_dir(to));
	(void)spool_dir_sync(qstore_dir(m->where));
	m->where = to;
	return 0;
}

/* qstore_remove - unlink (or recycle) message, then state; sync dir */
int
qstore_remove(struct qmsg *m)
{
	char	 path[QPATH_MAX], spath[QPATH_MAX];
	int	 r = 0;

	if (qstore_path(path, qstore_dir(m->where), m->qid, "") == -1 ||
	    qstore_path(spath, qstore_dir(m->where), m->qid, STATE_SUFFIX) ==
	    -1)
		return -1;
	if (qstore_recycle(m, path) == -1 && unlink(path) == -1 &&
	    errno != ENOENT) {
		log_warn("event=remove_error qid=%s path=%s", m->qid, path);
		return -1;
	}
	if (m->has_state && unlink(spath) == -1 && errno != ENOENT) {
		log_warn("event=remove_error qid=%s path=%s", m->qid, spath);
		r = -1;
	}
	qstore_sync_later(m->where);
	return r;
}

/*
 * qstore_quarantine - move a bad message file aside (never delete
 * what might be somebody's mail); logged with the reason.
 */
void
qstore_quarantine(const char *dir, const char *name, const char *why)
{
	char	 from[QPATH_MAX], to[QPATH_MAX];

	if (qstore_path(from, dir, name, "") == -1 ||
	    qstore_path(to, "quarantine", name, "") == -1)
		return;
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == -1) {
		log_warn("event=quarantine_error qid=%s path=%s reason=\"%s\"",
		    name, from, why);
		return;
	}
	(void)spool_dir_sync("quarantine");
	log_warnx("event=quarantine qid=%s path=%s to=%s reason=\"%s\"",
	    name, from, to, why);
}

/*
 * qstore_rebuild - load queue/ and hold/ at start.  Messages that were
 * in flight when a previous queue died are simply pending again; stale
 * state temp files and orphan states are removed.
 */
void
qstore_rebuild(struct queue *q)
{
	qstore_scan_dir(q, QW_QUEUE);
	qstore_scan_dir(q, QW_HOLD);
	qstore_orphans("queue");
	qstore_orphans("hold");
}

/* ---- helpers ----------------------------------------------------- */

static int
qstore_path(char *out, const char *dir, const char *name, const char *sfx)
{
	int	 n;

	n = snprintf(out, QPATH_MAX, "%s/%s%s", dir, name, sfx);
	return n < 0 || n >= QPATH_MAX ? -1 : 0;
}

static int
qstore_has_suffix(const char *s, size_t len, const char *sfx)
{
	size_t	 n = strlen(sfx);

	return len >= n && memcmp(s + len - n, sfx, n) == 0;
}

/* qstore_scan_dir - load every message of one place */
static void
qstore_scan_dir(struct queue *q, enum qmsg_where w)
{
	const char	*dir = qstore_dir(w), *why;
	struct dirent	*de;
	struct qmsg	*m;
	char		 path[QPATH_MAX];
	size_t		 len;
	DIR		*d;

	if ((d = opendir(dir)) == NULL)
		fatal("event=start opendir=%s", dir);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (qstore_has_suffix(de->d_name, len, STATE_TMP)) {
			if (qstore_path(path, dir, de->d_name, "") == 0)
				(void)unlink(path);
			continue;
		}
		if (!qid_valid(de->d_name, len))
			continue;
		if ((m = qstore_load(dir, de->d_name, &why)) == NULL) {
			if (why != NULL)
				qstore_quarantine(dir, de->d_name, why);
			continue;
		}
		m->where = w;
		(void)qstore_state_load(m);
		queue_msg_add(q, m);
	}
	closedir(d);
}

/* qstore_orphans - remove states whose message is in neither place */
static void
qstore_orphans(const char *dir)
{
	struct dirent	*de;
	char		 qid[QID_SIZE], a[QPATH_MAX], b[QPATH_MAX];
	char		 path[QPATH_MAX];
	size_t		 len;
	DIR		*d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len != QID_LEN + sizeof(STATE_SUFFIX) - 1 ||
		    !qstore_has_suffix(de->d_name, len, STATE_SUFFIX) ||
		    !qid_valid(de->d_name, QID_LEN))
			continue;
		memcpy(qid, de->d_name, QID_LEN);
		qid[QID_LEN] = '\0';
		if (qstore_path(a, "queue", qid, "") == -1 ||
		    qstore_path(b, "hold", qid, "") == -1 ||
		    qstore_path(path, dir, de->d_name, "") == -1)
			continue;
		if (access(a, F_OK) == 0 || access(b, F_OK) == 0)
			continue;
		if (unlink(path) == 0)
			log_info("event=orphan_state qid=%s removed", qid);
	}
	closedir(d);
}

/* qstore_parse_num - 1..19 digits */
static int
qstore_parse_num(const char *p, size_t len, unsigned long long *v)
{
	size_t	 i;

	if (len == 0 || len > 19)
		return -1;
	*v = 0;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*v = *v * 10 + (unsigned long long)(p[i] - '0');
	}
	return 0;
}

/* qstore_state_reset - back to "never tried" */
static void
qstore_state_reset(struct qmsg *m)
{
	size_t	 i;

	m->attempts = 0;
	m->next = 0;
	m->reason[0] = '\0';
	m->warned = 0;
	for (i = 0; i < m->nrcpt; i++) {
		m->rcpt[i].status = RS_PENDING;
		m->rcpt[i].attempts = 0;
		m->rcpt[i].reason[0] = '\0';
	}
}

/*
 * qstore_state_parse - strict: the records in the order written, each
 * number in range, each recipient index known; text values copied
 * (truncated to QUEUE_REASON_MAX).
 */
static int
qstore_state_parse(struct qmsg *m, char *p, size_t len)
{
	static const char *const heads[] = {
		"arrival ", "attempts ", "next ", "reason "
	};
	unsigned long long	 v[3] = { 0, 0, 0 }, idx, att;
	char			*line, *nl, *f, *sp;
	size_t			 off = 0, llen, i, hl, st;

	for (i = 0; ; i++) {
		line = p + off;
		if ((nl = memchr(line, '\n', len - off)) == NULL)
			return -1;
		llen = (size_t)(nl - line);
		*nl = '\0';
		off += llen + 1;
		if (i == 0) {
			if (strcmp(line, STATE_MAGIC) != 0)
				return -1;
			continue;
		}
		if (i <= 4) {
			hl = strlen(heads[i - 1]);
			if (llen < hl || memcmp(line, heads[i - 1], hl) != 0)
				return -1;
			if (i == 4) {
				queue_reason_set(m->reason, line + hl,
				    llen - hl);
				continue;
			}
			if (qstore_parse_num(line + hl, llen - hl, &v[i - 1]) ==
			    -1)
				return -1;
			continue;
		}
		if (strcmp(line, "END") == 0)
			break;
		/* right after reason; older states have no such line */
		if (i == 5 && (strcmp(line, "warned 0") == 0 ||
		    strcmp(line, "warned 1") == 0)) {
			m->warned = line[7] == '1';
			continue;
		}
		/* rcpt IDX STATUS N TEXT */
		if (llen < 5 || memcmp(line, "rcpt ", 5) != 0)
			return -1;
		f = line + 5;
		if ((sp = strchr(f, ' ')) == NULL ||
		    qstore_parse_num(f, (size_t)(sp - f), &idx) == -1 ||
		    idx >= m->nrcpt)
			return -1;
		f = sp + 1;
		if ((sp = strchr(f, ' ')) == NULL)
			return -1;
		*sp = '\0';
		for (st = 0; st < 3; st++)
			if (strcmp(f, rcpt_status_names[st]) == 0)
				break;
		if (st == 3)
			return -1;
		f = sp + 1;
		if ((sp = strchr(f, ' ')) == NULL ||
		    qstore_parse_num(f, (size_t)(sp - f), &att) == -1 ||
		    att > 1000000)
			return -1;
		m->rcpt[idx].status = (enum rcpt_status)st;
		m->rcpt[idx].attempts = (unsigned)att;
		queue_reason_set(m->rcpt[idx].reason, sp + 1,
		    (size_t)(nl - (sp + 1)));
	}
	if (off != len || v[1] > 1000000)
		return -1;
	m->arrival = (time_t)v[0];
	m->attempts = (unsigned)v[1];
	m->next = (time_t)v[2];
	return 0;
}
