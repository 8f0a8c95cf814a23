/*
 * queue_out.c - the queue's side of the smtp-out channel (outbound.h).
 *
 * A delivery round (queue.c) hands every recipient routed to SMTP to
 * qout_route(), which puts it into a job of the same message and the
 * same next hop (kind, name, port, flags), at most OUT_RCPT_MAX per job.
 * The round's jobs sit at the tail of q->sjobs until qout_kick() sends
 * them, each with the message file as the passed descriptor.  At most
 * OUT_INFLIGHT_MAX jobs are with smtp-out at once; smtp-out does the
 * per-destination concurrency, connection reuse and backoff itself.
 *
 * Replies come back in any order and are matched by id through a small
 * hash table.  Every job is answered exactly once by a live smtp-out; if
 * smtp-out dies the whole delivery group is restarted (master.c), so no
 * job is left waiting forever, and the state on disk says which
 * recipients are still pending.
 *
 * Invariants: a job in q->sjobs or q->sfly counts in its message's
 * m->jobs and its recipients are marked inflight.  Corrupt IPC from
 * smtp-out is fatal (STYLE.md 8).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/outbound.h"
#include "queue.h"

static int	 qout_private(const struct queue *, const struct qmsg *);
static struct sjob *qout_job_for(struct queue *, struct qmsg *,
		    const struct out_job *);
static int	 qout_send(struct queue *, struct sjob *);
static void	 qout_read(int, short, void *);
static void	 qout_writable(int, short, void *);
static void	 qout_reply(struct queue *, const struct out_reply *, size_t);
static struct sjob *qout_unhash(struct queue *, uint32_t);
static void	 qout_fields(const char *, char *, size_t);
static void	 qout_fail(struct queue *, struct sjob *, unsigned,
		    const char *);

/* qout_init - watch the smtp-out socket */
void
qout_init(struct queue *q)
{
	TAILQ_INIT(&q->sjobs);
	if (fd_nonblock(q->ctx->out_sock) == -1)
		fatal("event=start out_sock");
	q->ev_out = event_new(q->base, q->ctx->out_sock, EV_READ | EV_PERSIST,
	    qout_read, q);
	q->ev_outw = event_new(q->base, q->ctx->out_sock, EV_WRITE,
	    qout_writable, q);
	if (q->ev_out == NULL || q->ev_outw == NULL ||
	    event_add(q->ev_out, NULL) == -1)
		fatalx("event=start reason=\"cannot set up the smtp-out "
		    "channel\"");
}

/*
 * qout_route - recipient i of m goes by SMTP: hop is its transport_map
 * entry or relay_host (TR_SMTP_*), or NULL for the MX of domain.  0, or
 * -1 when out of memory (the caller defers the recipient).
 */
int
qout_route(struct queue *q, struct qmsg *m, size_t i,
    const struct nexthop *hop, const char *domain)
{
	struct out_job	 key;
	struct sjob	*j;
	const char	*name = domain;
	size_t		 len;

	memset(&key, 0, sizeof(key));
	key.kind = hop != NULL ? (uint32_t)hop->kind : TR_SMTP_MX;
	if (hop != NULL && hop->kind != TR_SMTP_MX) {
		name = hop->host;
		key.port = hop->kind == TR_SMTP_FIXED ? hop->port : 0;
	}
	if (name == NULL || (len = strlen(name)) >= sizeof(key.name))
		return -1;
	memcpy(key.name, name, len + 1);
	/* leaving the organisation: anything not for a local domain */
	if (!config_is_local_domain(q->conf, domain, strlen(domain)))
		key.flags |= OUTF_INTERNET;
	if (qout_private(q, m))
		key.flags |= OUTF_PRIVATE;
	if ((j = qout_job_for(q, m, &key)) == NULL)
		return -1;
	j->job.idx[j->job.n++] = (uint32_t)i;
	m->rcpt[i].inflight = 1;
	return 0;
}

/*
 * qout_private - did the message come from inside: relay_networks, a
 * local submission or an authenticated client?  Its Received lines
 * then name internal hosts.
 */
static int
qout_private(const struct queue *q, const struct qmsg *m)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	if (m->authed || strcmp(m->client, "local") == 0)
		return 1;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, m->client, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, m->client, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return 0;
	return config_in_relay_networks(q->conf, (struct sockaddr *)&ss);
}

/*
 * qout_job_for - a job of this round of m for the next hop in key with
 * room for one more recipient.  The round's jobs are at the tail of
 * q->sjobs (nothing is sent before the round ends).
 */
static struct sjob *
qout_job_for(struct queue *q, struct qmsg *m, const struct out_job *key)
{
	struct sjob	*j;

	TAILQ_FOREACH_REVERSE(j, &q->sjobs, sjob_list, entry) {
		if (j->m != m)
			break;
		if (j->job.n < OUT_RCPT_MAX && j->job.kind == key->kind &&
		    j->job.port == key->port && j->job.flags == key->flags &&
		    strcmp(j->job.name, key->name) == 0)
			return j;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->m = m;
	j->job = *key;
	memcpy(j->job.qid, m->qid, QID_SIZE);
	m->jobs++;
	TAILQ_INSERT_TAIL(&q->sjobs, j, entry);
	return j;
}

/*
 * qout_kick - send waiting jobs while smtp-out has room.  When the
 * socket is full the queue never blocks: it waits for it to drain.
 */
void
qout_kick(struct queue *q)
{
	struct sjob	*j;
	int		 r;

	while (!q->stopping && q->nsfly < OUT_INFLIGHT_MAX &&
	    !event_pending(q->ev_outw, EV_WRITE, NULL) &&
	    (j = TAILQ_FIRST(&q->sjobs)) != NULL) {
		TAILQ_REMOVE(&q->sjobs, j, entry);
		if ((r = qout_send(q, j)) == 0)
			continue;
		if (r == 1) {
			TAILQ_INSERT_HEAD(&q->sjobs, j, entry);
			if (event_add(q->ev_outw, NULL) == -1)
				fatalx("event=ipc reason=\"cannot wait for "
				    "smtp-out\"");
			return;
		}
		qout_fail(q, j, 451, "4.3.0 cannot open queued message");
	}
}

/* qout_writable - the smtp-out socket has room again */
static void
qout_writable(int fd, short ev, void *arg)
{
	qout_kick(arg);
}

/* qout_send - one OUT_JOB with the message file; 0, 1 (socket full), -1 */
static int
qout_send(struct queue *q, struct sjob *j)
{
	uint32_t	 h;
	int		 fd;

	if ((fd = qstore_open(j->m)) == -1) {
		log_warn("event=smtp_job_error qid=%s dir=%s", j->m->qid,
		    qstore_dir(j->m->where));
		return -1;
	}
	/* 0 is never an id: a zeroed reply cannot match */
	if (++q->sjob_id == 0)
		q->sjob_id = 1;
	j->job.id = q->sjob_id;
	if (ipc_send(q->ctx->out_sock, OUT_JOB, &j->job,
	    OUT_JOB_LEN(j->job.n), fd) == -1) {
		close(fd);
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return 1;
		fatal("event=ipc send smtp job qid=%s", j->m->qid);
	}
	close(fd);
	h = j->job.id % QUEUE_SFLY_HASH;
	j->hnext = q->sfly[h];
	q->sfly[h] = j;
	q->nsfly++;
	return 0;
}

/* qout_read - OUT_REPLYs (or EOF) from smtp-out */
static void
qout_read(int fd, short ev, void *arg)
{
	static struct out_reply	 rep;
	struct queue		*q = arg;
	uint32_t		 type;
	ssize_t			 n;
	int			 pfd, i;

	/* a bounded batch per wakeup, so other events get their turn */
	for (i = 0; i < 64; i++) {
		n = ipc_recv(fd, &type, &rep, sizeof(rep), &pfd);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			fatal("event=ipc recv smtp-out");
		}
		if (pfd != -1)
			fatalx("event=ipc reason=\"unexpected descriptor from "
			    "smtp-out\"");
		if (n == 0 && type == 0) {
			if (!q->stopping)
				fatalx("event=ipc reason=\"smtp-out role went "
				    "away\"");
			/* its jobs stay pending on disk; wait for local */
			event_del(q->ev_out);
			event_del(q->ev_outw);
			q->nsfly = 0;
			queue_stop_maybe(q);
			return;
		}
		if (type != OUT_REPLY ||
		    (size_t)n < offsetof(struct out_reply, r) || rep.n == 0 ||
		    rep.n > OUT_RCPT_MAX || (size_t)n != OUT_REPLY_LEN(rep.n))
			fatalx("event=ipc reason=\"bad smtp-out reply type=%#x "
			    "len=%zd\"", type, n);
		qout_reply(q, &rep, (size_t)n);
	}
	queue_stop_maybe(q);
	qout_kick(q);
}

/* qout_reply - record the results of one answered job */
static void
qout_reply(struct queue *q, const struct out_reply *rep, size_t len)
{
	struct sjob	*j;
	char		 relay[OUT_RELAY_MAX], tls[160];
	uint32_t	 k;

	if (memchr(rep->relay, '\0', sizeof(rep->relay)) == NULL ||
	    memchr(rep->tls, '\0', sizeof(rep->tls)) == NULL)
		fatalx("event=ipc reason=\"unterminated smtp-out reply\"");
	if ((j = qout_unhash(q, rep->id)) == NULL) {
		log_warnx("event=ipc reason=\"stale smtp-out reply id=%u\"",
		    rep->id);
		return;
	}
	if (rep->n != j->job.n)
		fatalx("event=ipc reason=\"reply count %u for %u\"", rep->n,
		    j->job.n);
	for (k = 0; k < rep->n; k++)
		if (rep->r[k].idx != j->job.idx[k] || rep->r[k].code < 200 ||
		    rep->r[k].code > 599 || memchr(rep->r[k].text, '\0',
		    sizeof(rep->r[k].text)) == NULL)
			fatalx("event=ipc reason=\"bad smtp result %u\"", k);
	(void)len;
	/* the peer's words go to the log: keep them on one clean line */
	log_sanitize(rep->relay, strlen(rep->relay), relay, sizeof(relay));
	qout_fields(rep->tls, tls, sizeof(tls));
	for (k = 0; k < rep->n; k++)
		queue_rcpt_result(q, j->m, rep->r[k].idx, relay,
		    rep->r[k].code, rep->r[k].text, tls);
	queue_msg_job_done(q, j->m);
	free(j);
}

/*
 * qout_fields - smtp-out's "tls=TLSv1.3 cipher=X verified=yes" goes
 * into the log as the key=value fields it is: blanks between fields
 * stay, any octet that is not a letter, digit, '=', '.', '_', '-' or
 * '/' becomes '_' so nothing can forge or break a field.
 */
static void
qout_fields(const char *in, char *out, size_t outsz)
{
	size_t	 i;
	char	 c;

	for (i = 0; i + 1 < outsz && (c = in[i]) != '\0'; i++)
		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '=' || c == '.' ||
		    c == '_' || c == '-' || c == '/' || c == ' ' ? c : '_';
	out[i] = '\0';
}

/* qout_unhash - take the job with id out of the in-flight table */
static struct sjob *
qout_unhash(struct queue *q, uint32_t id)
{
	struct sjob	**pp, *j;

	for (pp = &q->sfly[id % QUEUE_SFLY_HASH]; (j = *pp) != NULL;
	    pp = &j->hnext)
		if (j->job.id == id) {
			*pp = j->hnext;
			q->nsfly--;
			return j;
		}
	return NULL;
}

/* qout_fail - a job that could not be sent: every recipient gets code */
static void
qout_fail(struct queue *q, struct sjob *j, unsigned code, const char *text)
{
	uint32_t	 k;

	for (k = 0; k < j->job.n; k++)
		queue_rcpt_result(q, j->m, j->job.idx[k], "none", code, text,
		    "");
	queue_msg_job_done(q, j->m);
	free(j);
}

/*
 * qout_cancel - drop m's jobs that were not sent yet (hold, delete);
 * their recipients stay pending.  Returns how many.
 */
size_t
qout_cancel(struct queue *q, struct qmsg *m)
{
	struct sjob	*j, *next;
	uint32_t	 k;
	size_t		 n = 0;

	TAILQ_FOREACH_SAFE(j, &q->sjobs, entry, next) {
		if (j->m != m)
			continue;
		TAILQ_REMOVE(&q->sjobs, j, entry);
		for (k = 0; k < j->job.n; k++)
			m->rcpt[j->job.idx[k]].inflight = 0;
		m->jobs--;
		n++;
		free(j);
	}
	return n;
}

/*
 * qout_flush - smtp-out forgets its dead-destination backoff.  With
 * the socket full the request is dropped (logged): smtp-out is busy
 * with jobs anyway, and the next flush asks again.
 */
void
qout_flush(struct queue *q)
{
	if (ipc_send(q->ctx->out_sock, OUT_FLUSH, NULL, 0, -1) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
			fatal("event=ipc send flush");
		log_warnx("event=flush reason=\"smtp-out busy; destination "
		    "backoff kept\"");
	}
}

/* qout_stop - SIGTERM: waiting jobs are dropped (pending on disk) */
void
qout_stop(struct queue *q)
{
	struct sjob	*j;

	while ((j = TAILQ_FIRST(&q->sjobs)) != NULL) {
		TAILQ_REMOVE(&q->sjobs, j, entry);
		free(j);
	}
}
