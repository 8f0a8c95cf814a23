/*
 * queue.c - the queue role: owns the queue state, schedules delivery
 * attempts, routes recipients and drives the local delivery and
 * smtp-out roles.
 *
 * Runs as `user`, chrooted into the spool when started by root (paths
 * are relative: cwd is the spool either way), in one libevent loop.
 *
 * A delivery "round" of a message routes every pending recipient by the
 * domain of its address (transport_lookup):
 *   maildir:  batched into local jobs (deliver.h), one in flight at a
 *             time, answered per recipient
 *   error:    the configured reply: 4xx defers, 5xx fails
 *   smtp:     batched per next hop into SMTP jobs for smtp-out
 *             (queue_out.c, outbound.h), many in flight
 *   no entry: a local domain without a transport_map entry is deferred
 *             (a configuration error: delivering by MX would loop);
 *             any other domain goes to relay_host if set, else by MX
 * When every recipient of the round has its result, the message is
 * removed if all are final, otherwise its state is written (durably)
 * and only then the next attempt is scheduled: retry_min * 2^(n-1),
 * capped at retry_max.  So a delivered recipient is on disk before any
 * retry could try it again.
 *
 * Failed recipients are logged status=bounced and counted.  When no
 * recipient is pending any more and some failed, one bounce lists them
 * all (queue_dsn.c) before the message is removed; if it cannot be
 * written the message stays and the bounce is tried again.  A round
 * that ends with recipients still pending past queue_lifetime fails
 * them (4.4.7, status=expired) and bounces; past delay_warning it sends
 * one delay notice, remembered as "warned" in the state file.  Retries
 * are brought forward to those two ages so that they are kept on time.
 *
 * Invariants: a message with jobs > 0 is not run again, held, released
 * or deleted until its jobs are answered (hold and delete are then
 * done on completion, QF_WANT_*); jobs not yet sent are cancelled at
 * once.  Corrupt IPC from local delivery is fatal (STYLE.md 8).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/deliver.h"
#include "../common/role.h"
#include "../common/spool.h"
#include "../common/stats.h"
#include "queue.h"

#define QUEUE_LOCAL_TIMEOUT	300	/* s per local job */
#define QUEUE_STOP_GRACE	10	/* s for the job in flight at SIGTERM */
#define QUEUE_NO_ROUTE	"4.3.5 no transport_map entry for a local domain"
#define QUEUE_EXPIRED	"4.4.7 Message expired"
#define QUEUE_LOG_ADDR	300

static struct queue	 queue;

static void	queue_sigterm(int, short, void *);
static void	queue_stop_timeout(int, short, void *);
static void	queue_msg_timer(int, short, void *);
static void	queue_msg_run(struct queue *, struct qmsg *);
static void	queue_round_done(struct queue *, struct qmsg *);
static void	queue_expire(struct queue *, struct qmsg *);
static time_t	queue_next_attempt(struct queue *, struct qmsg *, time_t);
static time_t	queue_backoff(struct queue *, unsigned);
static int	queue_all_final(const struct qmsg *);
static void	queue_finish(struct queue *, struct qmsg *, const char *);
static void	queue_jobs_cancel(struct queue *, struct qmsg *);
static void	queue_job_done(struct queue *, struct ljob *);
static void	queue_local_kick(struct queue *);
static int	queue_local_send(struct queue *, struct ljob *);
static void	queue_local_read(int, short, void *);
static void	queue_local_timeout(int, short, void *);

/* queue_run - the queue role's main; never returns */
void
queue_run(struct role_ctx *ctx)
{
	struct queue	*q = &queue;
	struct event	*ev_term;
	struct qmsg	*m, *next;
	time_t		 now;

	log_setproc("queue");
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	memset(q, 0, sizeof(*q));
	q->ctx = ctx;
	q->conf = ctx->conf;
	q->ino_fd = -1;
	TAILQ_INIT(&q->msgs);
	TAILQ_INIT(&q->ljobs);
	if ((q->base = event_base_make()) == NULL)
		fatalx("event=start reason=\"event_base_new failed\"");
	qstore_init(q->base);
	if (fd_nonblock(ctx->local_sock) == -1)
		fatal("event=start local_sock");
	q->ev_local = event_new(q->base, ctx->local_sock, EV_READ | EV_PERSIST,
	    queue_local_read, q);
	q->ev_ltimeout = evtimer_new(q->base, queue_local_timeout, q);
	q->ev_stop = evtimer_new(q->base, queue_stop_timeout, q);
	ev_term = evsignal_new(q->base, SIGTERM, queue_sigterm, q);
	if (q->ev_local == NULL || q->ev_ltimeout == NULL ||
	    q->ev_stop == NULL || ev_term == NULL ||
	    event_add(q->ev_local, NULL) == -1 || event_add(ev_term, NULL) ==
	    -1)
		fatalx("event=start reason=\"cannot set up events\"");
	qout_init(q);

	/* watch before the first scan, so that nothing slips between */
	qpickup_init(q);
	qstore_rebuild(q);
	now = time(NULL);
	TAILQ_FOREACH_SAFE(m, &q->msgs, entry, next) {
		if (queue_all_final(m))
			queue_finish(q, m, "removed");
		else if (m->where == QW_QUEUE)
			queue_msg_schedule(q, m, m->next > now ? m->next : now);
	}
	log_info("event=start role=queue messages=%zu", q->nmsgs);
	qpickup_scan(q);
	qctl_init(q);
	qquar_init(q);
	event_base_dispatch(q->base);
	fatalx("event=stop reason=\"event loop ended\"");
}

/* queue_msg_add - take a loaded message into the queue (not scheduled) */
void
queue_msg_add(struct queue *q, struct qmsg *m)
{
	if ((m->timer = evtimer_new(q->base, queue_msg_timer, m)) == NULL)
		fatalx("event=queue reason=\"evtimer_new failed\"");
	TAILQ_INSERT_TAIL(&q->msgs, m, entry);
	q->nmsgs++;
}

/* queue_msg_schedule - next attempt at when (now or earlier: at once) */
void
queue_msg_schedule(struct queue *q, struct qmsg *m, time_t when)
{
	struct timeval	 tv;
	time_t		 now = time(NULL);

	m->next = when;
	tv.tv_sec = when > now ? when - now : 0;
	tv.tv_usec = 0;
	evtimer_add(m->timer, &tv);
}

/* queue_msg_unschedule - no attempt until scheduled again */
void
queue_msg_unschedule(struct qmsg *m)
{
	evtimer_del(m->timer);
	m->next = 0;
}

/* queue_msg_find - the message with queue id p[0..len), or NULL */
struct qmsg *
queue_msg_find(struct queue *q, const char *p, size_t len)
{
	struct qmsg	*m;

	if (!qid_valid(p, len))
		return NULL;
	TAILQ_FOREACH(m, &q->msgs, entry)
		if (memcmp(m->qid, p, QID_LEN) == 0)
			return m;
	return NULL;
}

/* queue_msg_drop - forget a message whose files are gone */
void
queue_msg_drop(struct queue *q, struct qmsg *m)
{
	if (m->jobs != 0)
		panic("queue_msg_drop: qid=%s has %d jobs", m->qid, m->jobs);
	TAILQ_REMOVE(&q->msgs, m, entry);
	q->nmsgs--;
	qstore_free(m);
}

/*
 * queue_hold - move a queued message to hold/.  Returns 0 when done, 1
 * when it will be done once its delivery in progress ends, -1 on error.
 */
int
queue_hold(struct queue *q, struct qmsg *m)
{
	time_t	 next;

	if (m->where == QW_HOLD)
		return 0;
	queue_jobs_cancel(q, m);
	if (m->jobs != 0) {
		m->flags |= QF_WANT_HOLD;
		return 1;
	}
	next = m->next;
	queue_msg_unschedule(m);
	if (qstore_move(m, QW_HOLD) == -1) {
		queue_msg_schedule(q, m, next ? next : time(NULL));
		return -1;
	}
	log_info("event=hold qid=%s", m->qid);
	return 0;
}

/* queue_release - move a held message back and try it now */
int
queue_release(struct queue *q, struct qmsg *m)
{
	m->flags &= ~QF_WANT_HOLD;
	if (m->where != QW_HOLD)
		return 0;
	if (qstore_move(m, QW_QUEUE) == -1)
		return -1;
	log_info("event=release qid=%s", m->qid);
	queue_msg_schedule(q, m, time(NULL));
	return 0;
}

/* queue_delete - remove a message (administrator); 0, 1 (later), -1 */
int
queue_delete(struct queue *q, struct qmsg *m)
{
	time_t	 next;

	queue_jobs_cancel(q, m);
	if (m->jobs != 0) {
		m->flags |= QF_WANT_DELETE;
		return 1;
	}
	next = m->next;
	queue_msg_unschedule(m);
	if (qstore_remove(m) == -1) {
		if (m->where == QW_QUEUE)
			queue_msg_schedule(q, m, next ? next : time(NULL));
		return -1;
	}
	log_info("event=deleted qid=%s nrcpt=%zu", m->qid, m->nrcpt);
	queue_msg_drop(q, m);
	return 0;
}

/* queue_flush - every deferred message is due now; returns how many */
size_t
queue_flush(struct queue *q)
{
	struct qmsg	*m;
	time_t		 now = time(NULL);
	size_t		 n = 0;

	TAILQ_FOREACH(m, &q->msgs, entry)
		if (m->where == QW_QUEUE && m->jobs == 0 && m->next != 0) {
			queue_msg_schedule(q, m, now);
			n++;
		}
	/* a flush also retries destinations smtp-out thinks are dead */
	qout_flush(q);
	return n;
}

/* queue_delay - seconds since arrival, for delay= */
double
queue_delay(time_t arrival)
{
	struct timeval	 tv;
	double		 d;

	gettimeofday(&tv, NULL);
	d = (double)(tv.tv_sec - arrival) + tv.tv_usec / 1e6;
	return d < 0 ? 0 : d;
}

/*
 * queue_reason_set - copy a reason text into dst (QUEUE_REASON_MAX),
 * truncated to fit and with control octets replaced by '?', so that it
 * is one line in the state file and safe in a log value.
 */
void
queue_reason_set(char *dst, const char *src, size_t len)
{
	size_t	 i;

	if (len > QUEUE_REASON_MAX - 1)
		len = QUEUE_REASON_MAX - 1;
	for (i = 0; i < len; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ||
		    src[i] == '"' ? '?' : src[i];
	dst[len] = '\0';
}

/* ---- signals ----------------------------------------------------- */

/* queue_sigterm - stop taking work; wait (bounded) for the job in flight */
static void
queue_sigterm(int sig, short ev, void *arg)
{
	struct queue	*q = arg;
	struct timeval	 tv = { QUEUE_STOP_GRACE, 0 };
	struct ljob	*j;

	if (q->stopping)
		return;
	q->stopping = 1;
	qctl_stop(q);
	qpickup_stop(q);
	/* waiting jobs are dropped: their recipients are pending on disk */
	while ((j = TAILQ_FIRST(&q->ljobs)) != NULL) {
		TAILQ_REMOVE(&q->ljobs, j, entry);
		free(j);
	}
	qout_stop(q);
	queue_stop_maybe(q);
	log_info("event=stopping role=queue waiting_local=%d waiting_smtp=%zu",
	    q->linflight != NULL, q->nsfly);
	evtimer_add(q->ev_stop, &tv);
}

/*
 * queue_stop_maybe - after SIGTERM, exit once no delivery is in flight
 * on either side.  A job whose answer is lost would be delivered again
 * at the next start, so the queue waits for every answer it can still
 * get (bounded by QUEUE_STOP_GRACE).
 */
void
queue_stop_maybe(struct queue *q)
{
	if (!q->stopping || q->linflight != NULL || q->nsfly != 0)
		return;
	log_info("event=stop role=queue");
	exit(0);
}

static void
queue_stop_timeout(int fd, short ev, void *arg)
{
	log_warnx("event=stop role=queue reason=\"deliveries still "
	    "running after %ds\"", QUEUE_STOP_GRACE);
	exit(0);
}

/* ---- rounds ------------------------------------------------------ */

static void
queue_msg_timer(int fd, short ev, void *arg)
{
	queue_msg_run(&queue, arg);
}

/* queue_msg_run - route every pending recipient: one delivery round */
static void
queue_msg_run(struct queue *q, struct qmsg *m)
{
	const struct nexthop	*hop;
	struct ljob		*j = NULL;
	struct qrcpt		*r;
	char			 dom[DELIVER_DOMAIN_MAX];
	size_t			 i;
	int			 pending = 0;

	if (q->stopping || m->where != QW_QUEUE || m->jobs != 0)
		return;
	m->next = 0;
	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpt[i];
		if (r->status != RS_PENDING)
			continue;
		pending = 1;
		if (queue_rcpt_domain(q, r->addr, dom, sizeof(dom)) == -1) {
			queue_rcpt_result(q, m, i, "none", 451, "4.3.5 no "
			    "local domain for a recipient without domain", "");
			continue;
		}
		hop = transport_lookup(&q->conf->transport, dom, strlen(dom));
		if (hop == NULL && config_is_local_domain(q->conf, dom,
		    strlen(dom))) {
			queue_rcpt_result(q, m, i, "none", 451, QUEUE_NO_ROUTE,
			    "");
			continue;
		}
		if (hop == NULL && q->conf->has_relay_host)
			hop = &q->conf->relay_host;
		if (hop == NULL || hop->kind == TR_SMTP_MX ||
		    hop->kind == TR_SMTP_HOST || hop->kind == TR_SMTP_FIXED) {
			if (qout_route(q, m, i, hop, dom) == -1)
				queue_rcpt_result(q, m, i, "none", 451,
				    "4.3.0 cannot make an SMTP job", "");
			continue;
		}
		if (hop->kind == TR_ERROR) {
			queue_rcpt_result(q, m, i, "error", (unsigned)hop->code,
			    hop->text, "");
			continue;
		}
		if (hop->path == NULL || strlen(hop->path) >=
		    DELIVER_TMPL_MAX) {
			queue_rcpt_result(q, m, i, "maildir", 451,
			    "4.3.5 maildir template too long", "");
			continue;
		}
		if (j == NULL || j->n == DELIVER_RCPT_MAX) {
			if ((j = calloc(1, sizeof(*j))) == NULL) {
				queue_rcpt_result(q, m, i, "maildir", 451,
				    "4.3.0 out of memory", "");
				continue;
			}
			j->m = m;
			m->jobs++;
			TAILQ_INSERT_TAIL(&q->ljobs, j, entry);
		}
		j->idx[j->n] = (uint32_t)i;
		j->hop[j->n] = hop;
		j->n++;
		r->inflight = 1;
	}
	if (m->jobs == 0) {
		if (!pending)
			queue_finish(q, m, "removed");
		else
			queue_round_done(q, m);
		return;
	}
	queue_local_kick(q);
	qout_kick(q);
}

/*
 * queue_rcpt_domain - the routing domain of addr, lower case: after
 * the last '@', or the first local domain for a bare "postmaster".
 */
int
queue_rcpt_domain(struct queue *q, const char *addr, char *out, size_t sz)
{
	const char	*at, *d;
	size_t		 n;

	if ((at = strrchr(addr, '@')) != NULL)
		d = at + 1;
	else if (q->conf->nlocal_domains > 0)
		d = q->conf->local_domains[0];
	else
		return -1;
	n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n >= sz)
		return -1;
	memcpy(out, d, n);
	out[n] = '\0';
	mem_ascii_lower(out, n);
	return 0;
}

/*
 * queue_rcpt_result - record and log the result of one attempt; extra
 * is "" or more key=value fields for the log line (tls=...)
 */
void
queue_rcpt_result(struct queue *q, struct qmsg *m, size_t i,
    const char *relay, unsigned code, const char *text, const char *extra)
{
	struct qrcpt	*r = &m->rcpt[i];
	char		 to[QUEUE_LOG_ADDR], dsn[16];
	const char	*status, *sp;
	size_t		 n;

	r->inflight = 0;
	r->attempts++;
	queue_reason_set(r->reason, text, strlen(text));
	/* the enhanced status code is the first word of the text */
	sp = strchr(text, ' ');
	n = sp ? (size_t)(sp - text) : strlen(text);
	if (n >= sizeof(dsn) || n < 5 || text[1] != '.')
		n = 0;
	memcpy(dsn, text, n);
	dsn[n] = '\0';
	if (code >= 200 && code < 300) {
		r->status = RS_DELIVERED;
		status = "sent";
		STATS_ADD(delivered, 1);
	} else if (code >= 500 && code < 600) {
		r->status = RS_FAILED;
		status = "bounced";
		STATS_ADD(bounced, 1);
	} else {
		status = "deferred";
		queue_reason_set(m->reason, text, strlen(text));
		STATS_ADD(deferred, 1);
	}
	if (dsn[0] == '\0') {
		dsn[0] = (char)('0' + code / 100 % 10);
		memcpy(dsn + 1, ".0.0", 5);
	}
	log_sanitize(r->addr, strlen(r->addr), to, sizeof(to));
	if (r->status == RS_DELIVERED)
		log_info("event=delivery qid=%s to=<%s> relay=%s delay=%.2f "
		    "status=%s dsn=%s%s%s", m->qid, to, relay,
		    queue_delay(m->arrival), status, dsn, *extra ? " " : "",
		    extra);
	else
		log_info("event=delivery qid=%s to=<%s> relay=%s delay=%.2f "
		    "status=%s dsn=%s%s%s reason=\"%s\"", m->qid, to, relay,
		    queue_delay(m->arrival), status, dsn, *extra ? " " : "",
		    extra, r->reason);
}

/* queue_round_done - every recipient of the round has its result */
static void
queue_round_done(struct queue *q, struct qmsg *m)
{
	time_t	 now;

	if (queue_all_final(m)) {
		queue_finish(q, m, "removed");
		return;
	}
	if (m->flags & QF_WANT_DELETE) {
		m->flags &= ~QF_WANT_DELETE;
		m->next = time(NULL);
		if (queue_delete(q, m) == 0)
			return;
	}
	now = time(NULL);
	if (now - m->arrival >= q->conf->queue_lifetime) {
		queue_expire(q, m);
		queue_finish(q, m, "expired");
		return;
	}
	/* once per message, also across restarts (the state has it) */
	if (!m->warned && now - m->arrival >= q->conf->delay_warning &&
	    q->conf->delay_warning < q->conf->queue_lifetime &&
	    qdsn_send(q, m, QDSN_DELAY) == 0)
		m->warned = 1;
	m->attempts++;
	m->next = queue_next_attempt(q, m, now);
	/* durable before the retry exists (delivered stays delivered) */
	(void)qstore_state_write(m);
	if (m->flags & QF_WANT_HOLD) {
		m->flags &= ~QF_WANT_HOLD;
		if (queue_hold(q, m) == 0)
			return;
	}
	queue_msg_schedule(q, m, m->next);
}

/*
 * queue_expire - queue_lifetime is over: every pending recipient
 * fails.  The status stays 4.4.7 with Action: failed in the bounce, as
 * Postfix does (RFC 3463 3.5: the temporary condition never cleared).
 */
static void
queue_expire(struct queue *q, struct qmsg *m)
{
	struct qrcpt	*r;
	char		 to[QUEUE_LOG_ADDR], text[QUEUE_REASON_MAX];
	size_t		 i;
	int		 n;

	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpt[i];
		if (r->status != RS_PENDING)
			continue;
		/* keep the last error: the sender learns why it expired */
		n = r->reason[0] == '\0' ? -1 : snprintf(text, sizeof(text),
		    "%s, last error: %s", QUEUE_EXPIRED, r->reason);
		if (n < 0 || (size_t)n >= sizeof(text))
			n = snprintf(text, sizeof(text), "%s", QUEUE_EXPIRED);
		queue_reason_set(r->reason, text, strlen(text));
		r->status = RS_FAILED;
		STATS_ADD(bounced, 1);
		log_sanitize(r->addr, strlen(r->addr), to, sizeof(to));
		log_info("event=delivery qid=%s to=<%s> relay=none delay=%.2f "
		    "status=expired dsn=4.4.7 reason=\"%s\"", m->qid, to,
		    queue_delay(m->arrival), r->reason);
	}
}

/*
 * queue_next_attempt - the backoff, but not later than the delay
 * notice (if not sent yet) or the expiry is due.
 */
static time_t
queue_next_attempt(struct queue *q, struct qmsg *m, time_t now)
{
	time_t	 next, due;

	next = now + queue_backoff(q, m->attempts);
	due = m->arrival + q->conf->queue_lifetime;
	if (!m->warned && q->conf->delay_warning < q->conf->queue_lifetime)
		due = m->arrival + q->conf->delay_warning;
	/* a due time already past (a notice that failed) changes nothing */
	if (due > now && next > due)
		next = due;
	return next;
}

/* queue_backoff - retry_min * 2^(attempts-1), capped at retry_max */
static time_t
queue_backoff(struct queue *q, unsigned attempts)
{
	time_t		 d = q->conf->retry_min > 0 ? q->conf->retry_min : 1;
	time_t		 max = q->conf->retry_max > d ? q->conf->retry_max : d;
	unsigned	 i;

	for (i = 1; i < attempts && d < max; i++)
		d *= 2;
	return d < max ? d : max;
}

static int
queue_all_final(const struct qmsg *m)
{
	size_t	 i;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].status == RS_PENDING)
			return 0;
	return 1;
}

/* queue_finish - every recipient is final: remove the message */
static void
queue_finish(struct queue *q, struct qmsg *m, const char *what)
{
	size_t	 i, sent = 0, failed = 0;

	for (i = 0; i < m->nrcpt; i++) {
		if (m->rcpt[i].status == RS_DELIVERED)
			sent++;
		else if (m->rcpt[i].status == RS_FAILED)
			failed++;
	}
	queue_msg_unschedule(m);
	/* the bounce is durable before the message goes (at least once) */
	if (failed > 0 && !(m->flags & QF_BOUNCED)) {
		if (qdsn_send(q, m, QDSN_BOUNCE) == -1) {
			if (m->where == QW_QUEUE)
				queue_msg_schedule(q, m, time(NULL) +
				    queue_backoff(q, 1));
			return;
		}
		m->flags |= QF_BOUNCED;
	}
	if (qstore_remove(m) == -1) {
		/* kept in memory; the rebuild at next start retries */
		return;
	}
	log_info("event=%s qid=%s delivered=%zu bounced=%zu", what, m->qid,
	    sent, failed);
	queue_msg_drop(q, m);
}

/* ---- local delivery channel -------------------------------------- */

/* queue_jobs_cancel - drop the message's jobs that were not sent yet */
static void
queue_jobs_cancel(struct queue *q, struct qmsg *m)
{
	struct ljob	*j, *next;
	size_t		 k, cancelled = 0;

	TAILQ_FOREACH_SAFE(j, &q->ljobs, entry, next) {
		if (j->m != m)
			continue;
		TAILQ_REMOVE(&q->ljobs, j, entry);
		for (k = 0; k < j->n; k++)
			m->rcpt[j->idx[k]].inflight = 0;
		m->jobs--;
		cancelled++;
		free(j);
	}
	cancelled += qout_cancel(q, m);
	/* that ends the round: keep what the other recipients got */
	if (cancelled > 0 && m->jobs == 0 && !queue_all_final(m)) {
		m->attempts++;
		m->next = time(NULL) + queue_backoff(q, m->attempts);
		(void)qstore_state_write(m);
		queue_msg_schedule(q, m, m->next);
	}
}

/* queue_job_done - one local job answered (or given up on) */
static void
queue_job_done(struct queue *q, struct ljob *j)
{
	struct qmsg	*m = j->m;

	free(j);
	queue_msg_job_done(q, m);
}

/*
 * queue_msg_job_done - one job of m (local or SMTP) has every result:
 * the state is written, and the round ends with the last job
 */
void
queue_msg_job_done(struct queue *q, struct qmsg *m)
{
	if (--m->jobs > 0) {
		(void)qstore_state_write(m);
		return;
	}
	queue_round_done(q, m);
}

/* queue_local_kick - send the next waiting job if none is in flight */
static void
queue_local_kick(struct queue *q)
{
	struct timeval	 tv = { QUEUE_LOCAL_TIMEOUT, 0 };
	struct ljob	*j;
	size_t		 k;

	while (q->linflight == NULL && !q->stopping &&
	    (j = TAILQ_FIRST(&q->ljobs)) != NULL) {
		TAILQ_REMOVE(&q->ljobs, j, entry);
		if (queue_local_send(q, j) == 0) {
			q->linflight = j;
			evtimer_add(q->ev_ltimeout, &tv);
			return;
		}
		for (k = 0; k < j->n; k++)
			queue_rcpt_result(q, j->m, j->idx[k], "maildir", 451,
			    "4.3.0 cannot open queued message", "");
		queue_job_done(q, j);
	}
}

/* queue_local_send - one DELIVER_JOB with the message file; 0 or -1 */
static int
queue_local_send(struct queue *q, struct ljob *j)
{
	static struct deliver_job	 job;
	size_t				 k;
	int				 fd;

	memset(&job, 0, sizeof(job));
	job.id = j->id = ++q->ljob_id;
	job.n = (uint32_t)j->n;
	memcpy(job.qid, j->m->qid, QID_SIZE);
	for (k = 0; k < j->n; k++) {
		job.r[k].idx = j->idx[k];
		if (queue_rcpt_domain(q, j->m->rcpt[j->idx[k]].addr,
		    job.r[k].domain, sizeof(job.r[k].domain)) == -1)
			panic("queue_local_send: routed recipient lost its "
			    "domain qid=%s", j->m->qid);
		/* length checked when routed */
		memcpy(job.r[k].tmpl, j->hop[k]->path,
		    strlen(j->hop[k]->path) + 1);
	}
	if ((fd = qstore_open(j->m)) == -1) {
		log_warn("event=local_error qid=%s dir=%s", j->m->qid,
		    qstore_dir(j->m->where));
		return -1;
	}
	if (ipc_send(q->ctx->local_sock, DELIVER_JOB, &job,
	    DELIVER_JOB_LEN(j->n), fd) == -1)
		fatal("event=ipc send job qid=%s", j->m->qid);
	close(fd);
	return 0;
}

/* queue_local_read - a DELIVER_REPLY (or EOF) from local delivery */
static void
queue_local_read(int fd, short ev, void *arg)
{
	static struct deliver_reply	 rep;
	struct queue			*q = arg;
	struct ljob			*j;
	uint32_t			 type;
	ssize_t				 n;
	size_t				 k;
	int				 pfd;

	n = ipc_recv(fd, &type, &rep, sizeof(rep), &pfd);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		fatal("event=ipc recv");
	}
	if (pfd != -1)
		fatalx("event=ipc reason=\"unexpected descriptor\"");
	if (n == 0 && type == 0) {
		if (!q->stopping)
			fatalx("event=ipc reason=\"local delivery role went "
			    "away\"");
		/* no answer can come now: the job stays pending on disk */
		event_del(q->ev_local);
		evtimer_del(q->ev_ltimeout);
		q->linflight = NULL;
		queue_stop_maybe(q);
		return;
	}
	if (type != DELIVER_REPLY ||
	    (size_t)n < offsetof(struct deliver_reply, r) || rep.n == 0 ||
	    rep.n > DELIVER_RCPT_MAX || (size_t)n != DELIVER_REPLY_LEN(rep.n))
		fatalx("event=ipc reason=\"bad reply type=%#x len=%zd\"", type,
		    n);
	j = q->linflight;
	if (j == NULL || rep.id != j->id) {
		log_warnx("event=ipc reason=\"stale local reply id=%u\"",
		    rep.id);
		return;
	}
	if (rep.n != j->n)
		fatalx("event=ipc reason=\"reply count %u for %zu\"", rep.n,
		    j->n);
	for (k = 0; k < j->n; k++)
		if (rep.r[k].idx != j->idx[k] || rep.r[k].code < 200 ||
		    rep.r[k].code > 599 || memchr(rep.r[k].text, '\0',
		    sizeof(rep.r[k].text)) == NULL)
			fatalx("event=ipc reason=\"bad result %zu\"", k);
	evtimer_del(q->ev_ltimeout);
	q->linflight = NULL;
	for (k = 0; k < j->n; k++)
		queue_rcpt_result(q, j->m, j->idx[k], "maildir",
		    rep.r[k].code, rep.r[k].text, "");
	queue_job_done(q, j);
	queue_stop_maybe(q);
	queue_local_kick(q);
}

/* queue_local_timeout - local delivery did not answer in time */
static void
queue_local_timeout(int fd, short ev, void *arg)
{
	struct queue	*q = arg;
	struct ljob	*j = q->linflight;
	size_t		 k;

	if (j == NULL)
		return;
	q->linflight = NULL;
	log_warnx("event=local_timeout qid=%s seconds=%d", j->m->qid,
	    QUEUE_LOCAL_TIMEOUT);
	for (k = 0; k < j->n; k++)
		queue_rcpt_result(q, j->m, j->idx[k], "maildir", 451,
		    "4.4.1 local delivery timed out", "");
	queue_job_done(q, j);
	queue_local_kick(q);
}
