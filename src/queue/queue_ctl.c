/*
 * queue_ctl.c - the moatctl control socket (src/common/control.h).
 *
 * The master made spool_dir/control (mode 0600, owner `user`) and
 * passed it listening; we serve it here.  Every connection is checked
 * with SO_PEERCRED: only uid 0 and our own uid are served, others get
 * "-ERR" and a log line.  One request line (at most CONTROL_LINE_MAX
 * octets with its LF), one reply, close.  Bounded: QCTL_TIMEOUT seconds
 * per client for reading and for writing, at most QCTL_CLIENTS at once.
 *
 * Replies are built whole in memory (the queue listing is as big as the
 * queue) and written by libevent as the peer reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../common/control.h"
#include "../common/spool.h"
#include "../common/stats.h"
#include "queue.h"

#define QCTL_TIMEOUT		5	/* s */
#define QCTL_CLIENTS		16
#define QCTL_ACCEPT_BURST	32
#define QCTL_RCPT_INDENT	41	/* mailq's recipient column */
#define QCTL_ADDR		300

struct qctl_client {
	struct queue		*q;
	struct bufferevent	*bev;
};

/* one verb of the protocol */
struct qctl_verb {
	const char	*name;
	int		 needs_id;	/* QCTL_ID_* */
	int		 (*fn)(struct queue *, struct qmsg *, struct buf *);
	/* quarantine verbs: the id names a file in quarantine/ */
	int		 (*qfn)(struct queue *, const char *, struct buf *);
};

#define QCTL_ID_NONE	0
#define QCTL_ID_QUEUED	1	/* a message in the queue */
#define QCTL_ID_QUAR	2	/* a quarantined message */

static void	qctl_accept(int, short, void *);
static void	qctl_refuse(int, const char *);
static void	qctl_read(struct bufferevent *, void *);
static void	qctl_written(struct bufferevent *, void *);
static void	qctl_event(struct bufferevent *, short, void *);
static void	qctl_close(struct qctl_client *);
static void	qctl_request(struct queue *, const char *, size_t,
		    struct buf *);
static int	qctl_queue(struct queue *, struct qmsg *, struct buf *);
static int	qctl_flush(struct queue *, struct qmsg *, struct buf *);
static int	qctl_show(struct queue *, struct qmsg *, struct buf *);
static int	qctl_hold(struct queue *, struct qmsg *, struct buf *);
static int	qctl_release(struct queue *, struct qmsg *, struct buf *);
static int	qctl_delete(struct queue *, struct qmsg *, struct buf *);
static int	qctl_stats(struct queue *, struct qmsg *, struct buf *);
static int	qctl_qid_cmp(const void *, const void *);
static void	qctl_in(time_t, char *, size_t);
static void	qctl_date(time_t, const char *, char *, size_t);
static const char *qctl_state(const struct qmsg *);

static const struct qctl_verb qctl_verbs[] = {
	{ "queue",	QCTL_ID_NONE, qctl_queue, NULL },
	{ "flush",	QCTL_ID_NONE, qctl_flush, NULL },
	{ "show",	QCTL_ID_QUEUED, qctl_show, NULL },
	{ "hold",	QCTL_ID_QUEUED, qctl_hold, NULL },
	{ "release",	QCTL_ID_QUEUED, qctl_release, NULL },
	{ "delete",	QCTL_ID_QUEUED, qctl_delete, NULL },
	{ "stats",	QCTL_ID_NONE, qctl_stats, NULL },
	{ "quarantine-list", QCTL_ID_NONE, NULL, qquar_list },
	{ "quarantine-show", QCTL_ID_QUAR, NULL, qquar_show },
	{ "quarantine-release", QCTL_ID_QUAR, NULL, qquar_release },
	{ "quarantine-delete", QCTL_ID_QUAR, NULL, qquar_delete },
};

static const char *const qctl_rcpt_status[] = {
	[RS_PENDING] = "pending",
	[RS_DELIVERED] = "delivered",
	[RS_FAILED] = "failed",
};

/* qctl_init - start serving the control socket */
void
qctl_init(struct queue *q)
{
	if (q->ctx->control_fd == -1) {
		log_warnx("event=start control=none");
		return;
	}
	q->ev_ctl = event_new(q->base, q->ctx->control_fd,
	    EV_READ | EV_PERSIST, qctl_accept, q);
	if (q->ev_ctl == NULL || event_add(q->ev_ctl, NULL) == -1)
		fatalx("event=start reason=\"control event\"");
}

/* qctl_stop - accept no more clients (SIGTERM) */
void
qctl_stop(struct queue *q)
{
	if (q->ev_ctl != NULL)
		event_del(q->ev_ctl);
}

/* qctl_accept - new clients: check who they are, then read a line */
static void
qctl_accept(int lfd, short ev, void *arg)
{
	struct queue		*q = arg;
	struct qctl_client	*c;
	struct ucred		 cr;
	struct timeval		 tv = { QCTL_TIMEOUT, 0 };
	socklen_t		 crlen;
	int			 fd, i;

	for (i = 0; i < QCTL_ACCEPT_BURST; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("event=control accept");
			return;
		}
		crlen = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) ==
		    -1 || crlen != sizeof(cr)) {
			log_warn("event=control SO_PEERCRED");
			close(fd);
			continue;
		}
		if (cr.uid != 0 && cr.uid != getuid()) {
			log_warnx("event=control_refused uid=%lu pid=%ld",
			    (unsigned long)cr.uid, (long)cr.pid);
			qctl_refuse(fd, "-ERR permission denied\n");
			continue;
		}
		if (q->nclients >= QCTL_CLIENTS) {
			qctl_refuse(fd, "-ERR too many control clients, "
			    "try again\n");
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->bev = bufferevent_socket_new(q->base, fd,
		    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			log_warnx("event=control reason=\"out of memory\"");
			free(c);
			close(fd);
			continue;
		}
		c->q = q;
		q->nclients++;
		bufferevent_setcb(c->bev, qctl_read, NULL, qctl_event, c);
		bufferevent_set_timeouts(c->bev, &tv, &tv);
		bufferevent_setwatermark(c->bev, EV_READ, 0,
		    CONTROL_LINE_MAX + 1);
		bufferevent_enable(c->bev, EV_READ);
	}
}

/* qctl_refuse - best-effort one-line answer, then close */
static void
qctl_refuse(int fd, const char *msg)
{
	(void)!write(fd, msg, strlen(msg));
	close(fd);
}

/* qctl_read - wait for the one request line, answer it */
static void
qctl_read(struct bufferevent *bev, void *arg)
{
	struct qctl_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 eol;
	struct buf		 out;
	char			 line[CONTROL_LINE_MAX];
	size_t			 len;

	eol = evbuffer_search(in, "\n", 1, NULL);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) < CONTROL_LINE_MAX)
			return;
		len = 0;
	} else
		len = (size_t)eol.pos + 1;	/* with the LF */
	buf_init(&out, 0);
	if (len == 0 || len > CONTROL_LINE_MAX)
		(void)buf_appends(&out, "-ERR request line too long\n");
	else {
		evbuffer_remove(in, line, len);
		len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		qctl_request(c->q, line, len, &out);
	}
	bufferevent_disable(bev, EV_READ);
	if (out.len == 0 || bufferevent_write(bev, out.data, out.len) == -1) {
		buf_free(&out);
		qctl_close(c);
		return;
	}
	buf_free(&out);
	bufferevent_setcb(bev, NULL, qctl_written, qctl_event, c);
}

static void
qctl_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		qctl_close(arg);
}

static void
qctl_event(struct bufferevent *bev, short what, void *arg)
{
	qctl_close(arg);
}

static void
qctl_close(struct qctl_client *c)
{
	bufferevent_free(c->bev);
	c->q->nclients--;
	free(c);
}

/*
 * qctl_request - "VERB[ ARG]": look the verb up, check the argument,
 * run it.  Each verb appends its whole reply, status line included.
 */
static void
qctl_request(struct queue *q, const char *line, size_t len, struct buf *out)
{
	const struct qctl_verb	*v = NULL;
	struct qmsg		*m = NULL;
	const char		*sp, *arg = NULL;
	char			 qid[QID_SIZE];
	size_t			 vlen, alen = 0, i;

	sp = memchr(line, ' ', len);
	vlen = sp ? (size_t)(sp - line) : len;
	if (sp != NULL) {
		arg = sp + 1;
		alen = len - vlen - 1;
	}
	for (i = 0; i < sizeof(qctl_verbs) / sizeof(qctl_verbs[0]); i++)
		if (strlen(qctl_verbs[i].name) == vlen &&
		    memcmp(qctl_verbs[i].name, line, vlen) == 0)
			v = &qctl_verbs[i];
	if (v == NULL) {
		(void)buf_appends(out, "-ERR unknown command\n");
		return;
	}
	if (!v->needs_id && arg != NULL) {
		(void)buf_appends(out, "-ERR this command takes no argument\n");
		return;
	}
	if (v->needs_id != QCTL_ID_NONE) {
		if (arg == NULL || !qid_valid(arg, alen)) {
			(void)buf_appends(out, "-ERR a queue id is needed\n");
			return;
		}
		memcpy(qid, arg, QID_LEN);
		qid[QID_LEN] = '\0';
	}
	if (v->needs_id == QCTL_ID_QUEUED &&
	    (m = queue_msg_find(q, arg, alen)) == NULL) {
		(void)buf_appends(out, "-ERR no such message\n");
		return;
	}
	if ((v->qfn != NULL ? v->qfn(q, v->needs_id ? qid : NULL, out) :
	    v->fn(q, m, out)) == -1) {
		buf_reset(out);
		(void)buf_appends(out, "-ERR out of memory\n");
	}
}

/* qctl_queue - the mailq-style listing, oldest first */
static int
qctl_queue(struct queue *q, struct qmsg *unused, struct buf *out)
{
	struct qmsg	**v, *m;
	char		 date[32], from[QCTL_ADDR], to[QCTL_ADDR], in[32];
	size_t		 n = 0, i, k;
	unsigned long long kb = 0;
	time_t		 now = time(NULL);

	if (buf_appends(out, "+OK\n") == -1)
		return -1;
	if (q->nmsgs == 0)
		return buf_appends(out, "Mail queue is empty\n");
	if ((v = calloc(q->nmsgs, sizeof(*v))) == NULL)
		return -1;
	TAILQ_FOREACH(m, &q->msgs, entry)
		v[n++] = m;
	qsort(v, n, sizeof(*v), qctl_qid_cmp);
	for (i = 0; i < n; i++) {
		m = v[i];
		kb += m->size;
		qctl_date(m->arrival, "%a %b %e %H:%M:%S", date, sizeof(date));
		log_sanitize(m->sender, strlen(m->sender), from, sizeof(from));
		buf_appendf(out, "%s%-16s%c %8zu %s  %s\n", i ? "\n" : "",
		    m->qid, m->where == QW_HOLD ? '!' : m->jobs ? '*' :
		    ' ', m->size, date, from[0] ? from : "MAILER-DAEMON");
		if (m->where == QW_HOLD)
			buf_appendf(out, "    (held by the administrator)\n");
		else if (m->reason[0] != '\0' && m->next > now) {
			qctl_in(m->next - now, in, sizeof(in));
			buf_appendf(out, "    (%s; next attempt in %s)\n",
			    m->reason, in);
		} else if (m->reason[0] != '\0')
			buf_appendf(out, "    (%s)\n", m->reason);
		for (k = 0; k < m->nrcpt; k++) {
			if (m->rcpt[k].status != RS_PENDING)
				continue;
			log_sanitize(m->rcpt[k].addr, strlen(m->rcpt[k].addr),
			    to, sizeof(to));
			buf_appendf(out, "%*s%s\n", QCTL_RCPT_INDENT, "", to);
		}
	}
	free(v);
	return buf_appendf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
	    (kb + 1023) / 1024, n, n == 1 ? "" : "s");
}

static int
qctl_flush(struct queue *q, struct qmsg *unused, struct buf *out)
{
	size_t	 n = queue_flush(q);

	log_info("event=flush messages=%zu", n);
	return buf_appendf(out, "+OK\n%zu message%s scheduled for delivery\n",
	    n, n == 1 ? "" : "s");
}

/* qctl_show - one message: envelope, client, per-recipient status */
static int
qctl_show(struct queue *q, struct qmsg *m, struct buf *out)
{
	struct envelope	 env;
	const char	*why = NULL;
	char		 path[64], date[64], s[QCTL_ADDR], in[32];
	time_t		 now = time(NULL);
	size_t		 k;
	int		 fd, n, have = 0;

	n = snprintf(path, sizeof(path), "%s/%s", qstore_dir(m->where),
	    m->qid);
	if (n > 0 && (size_t)n < sizeof(path) &&
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) != -1) {
		have = spool_msg_read(fd, &env, &why) == 0;
		close(fd);
	}
	qctl_date(m->arrival, "%a, %d %b %Y %H:%M:%S %z", date, sizeof(date));
	log_sanitize(m->sender, strlen(m->sender), s, sizeof(s));
	buf_appendf(out, "+OK\nqid: %s\nstate: %s\narrival: %s\nsize: %zu\n"
	    "from: <%s>\n", m->qid, qctl_state(m), date, m->size, s);
	if (have) {
		buf_appendf(out, "client: %s (%s)\nhelo: %s\nproto: %s\n",
		    env.client_addr, env.client_name, env.helo, env.proto);
		if (env.auth[0] != '\0')
			buf_appendf(out, "auth: %s\n", env.auth);
		envelope_free(&env);
	} else
		buf_appendf(out, "client: unknown (message file unreadable)\n");
	buf_appendf(out, "attempts: %u\n", m->attempts);
	if (m->where == QW_QUEUE && m->next != 0 && m->jobs == 0) {
		qctl_date(m->next, "%a, %d %b %Y %H:%M:%S %z", date,
		    sizeof(date));
		qctl_in(m->next > now ? m->next - now : 0, in, sizeof(in));
		buf_appendf(out, "next_attempt: %s (in %s)\n", date, in);
	} else
		buf_appendf(out, "next_attempt: none\n");
	if (m->reason[0] != '\0')
		buf_appendf(out, "reason: %s\n", m->reason);
	for (k = 0; k < m->nrcpt; k++) {
		log_sanitize(m->rcpt[k].addr, strlen(m->rcpt[k].addr), s,
		    sizeof(s));
		buf_appendf(out, "rcpt: <%s> status=%s attempts=%u", s,
		    m->rcpt[k].inflight ? "delivering" :
		    qctl_rcpt_status[m->rcpt[k].status], m->rcpt[k].attempts);
		if (m->rcpt[k].reason[0] != '\0')
			buf_appendf(out, " reason=\"%s\"", m->rcpt[k].reason);
		buf_appends(out, "\n");
	}
	/* a failed append above leaves a short reply; say so honestly */
	return out->len > 0 ? 0 : -1;
}

static int
qctl_hold(struct queue *q, struct qmsg *m, struct buf *out)
{
	char	 qid[QID_SIZE];

	memcpy(qid, m->qid, sizeof(qid));
	switch (queue_hold(q, m)) {
	case 0:
		return buf_appendf(out, "+OK\n%s held\n", qid);
	case 1:
		return buf_appendf(out, "+OK\n%s will be held when the "
		    "delivery in progress ends\n", qid);
	default:
		return buf_appendf(out, "-ERR cannot move %s to hold/\n", qid);
	}
}

static int
qctl_release(struct queue *q, struct qmsg *m, struct buf *out)
{
	char	 qid[QID_SIZE];

	memcpy(qid, m->qid, sizeof(qid));
	if (queue_release(q, m) == -1)
		return buf_appendf(out, "-ERR cannot move %s to queue/\n",
		    qid);
	return buf_appendf(out, "+OK\n%s released\n", qid);
}

static int
qctl_delete(struct queue *q, struct qmsg *m, struct buf *out)
{
	char	 qid[QID_SIZE];

	/* m may be freed by queue_delete() */
	memcpy(qid, m->qid, sizeof(qid));
	switch (queue_delete(q, m)) {
	case 0:
		return buf_appendf(out, "+OK\n%s deleted\n", qid);
	case 1:
		return buf_appendf(out, "+OK\n%s will be deleted when the "
		    "delivery in progress ends\n", qid);
	default:
		return buf_appendf(out, "-ERR cannot delete %s\n", qid);
	}
}

/* qctl_stats - the shared counters and the queue sizes, key=value */
static int
qctl_stats(struct queue *q, struct qmsg *unused, struct buf *out)
{
	struct qmsg	*m;
	size_t		 active = 0, deferred = 0, hold = 0;

	TAILQ_FOREACH(m, &q->msgs, entry) {
		if (m->where == QW_HOLD)
			hold++;
		else if (m->jobs > 0 || m->attempts == 0)
			active++;
		else
			deferred++;
	}
#define S(f)	(unsigned long long)STATS_GET(f)
	return buf_appendf(out, "+OK\n"
	    "conn_total=%llu\nconn_current=%llu\nconn_refused=%llu\n"
	    "msg_accepted=%llu\nmsg_rejected=%llu\nrcpt_rejected=%llu\n"
	    "bytes_received=%llu\nalarm_filter=%llu\nalarm_relay=%llu\n"
	    "alarm_spoof=%llu\nalarm_dnsbl=%llu\nalarm_pregreet=%llu\n"
	    "policy_rejected=%llu\ndelivered=%llu\ndeferred=%llu\n"
	    "bounced=%llu\nrestarts=%llu\n"
	    "queue_active=%zu\nqueue_deferred=%zu\nqueue_hold=%zu\n",
	    S(conn_total), S(conn_current), S(conn_refused),
	    S(msg_accepted), S(msg_rejected), S(rcpt_rejected),
	    S(bytes_received), S(alarm_filter), S(alarm_relay),
	    S(alarm_spoof), S(alarm_dnsbl), S(alarm_pregreet),
	    S(policy_rejected), S(delivered), S(deferred), S(bounced),
	    S(restarts), active, deferred, hold);
#undef S
}

static int
qctl_qid_cmp(const void *a, const void *b)
{
	const struct qmsg	*x = *(const struct qmsg *const *)a;
	const struct qmsg	*y = *(const struct qmsg *const *)b;

	return memcmp(x->qid, y->qid, QID_LEN);
}

/* qctl_in - a duration as "45s", "4m", "3h", "2d" */
static void
qctl_in(time_t d, char *out, size_t sz)
{
	int	 n;

	if (d < 60)
		n = snprintf(out, sz, "%llds", (long long)d);
	else if (d < 3600)
		n = snprintf(out, sz, "%lldm", (long long)(d / 60));
	else if (d < 86400)
		n = snprintf(out, sz, "%lldh", (long long)(d / 3600));
	else
		n = snprintf(out, sz, "%lldd", (long long)(d / 86400));
	if (n < 0 || (size_t)n >= sz)
		out[0] = '\0';
}

static void
qctl_date(time_t t, const char *fmt, char *out, size_t sz)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL || strftime(out, sz, fmt, &tm) == 0)
		out[0] = '\0';
}

static const char *
qctl_state(const struct qmsg *m)
{
	if (m->where == QW_HOLD)
		return "held";
	if (m->jobs > 0)
		return "delivering";
	return m->attempts > 0 ? "deferred" : "queued";
}
