/*
 * smtp_out.c - the smtp-out role: jobs from the queue, destinations,
 * sessions, the connection cache and the dead-destination backoff.
 *
 * Runs as `user`, chrooted into the spool when started by root, in one
 * libevent loop.  smtp_out_preinit() (root, before the drop) makes the
 * event base, starts the resolver (it reads /etc/resolv.conf) and the
 * client SSL_CTX (it reads the CA store); smtp_out_run() does the rest.
 *
 * The queue sends OUT_JOBs (outbound.h) with the message file; each job
 * joins the FIFO of its destination (kind, name, port).  A destination
 * gets sessions (out_session.c) as its jobs need them: an idle cached
 * session takes a job at once; a new one is opened while the jobs
 * waiting outnumber the sessions still opening, within
 * smtp_destination_concurrency_limit for the destination and
 * smtp_max_connections for the role.  A destination held back by the
 * role limit waits on the role's wait list and is served, in order, as
 * sessions go; an idle session of another destination is closed to make
 * room, since a cached connection is worth less than waiting mail.
 *
 * A session that cannot reach MAIL with any target fails the waiting
 * jobs of its destination with its reason (out_sess_failed); a 4xx also
 * marks the destination dead for a backoff (retry_min/2 doubling per
 * consecutive failure, at most retry_max/2), during which new jobs are
 * answered at once with the same reason, so that one unreachable site
 * does not take connection slots and time from the others.  OUT_FLUSH
 * forgets every backoff.
 *
 * Invariants:
 * - Every job taken is answered with exactly one OUT_REPLY, whatever
 *   happens (dead destination, unreadable file, shutdown); the reply
 *   carries one result per recipient, in the job's order.
 * - A job is in exactly one place: its destination's FIFO (waiting),
 *   the running list (given to a session), or being answered.
 * - A session is counted (dest nsess, role nsess) from osess_new() to
 *   out_sess_gone(); a session being closed still counts.
 * - Replies that the queue cannot take yet (EAGAIN) wait in order in a
 *   backlog written when the socket is writable; none is dropped.
 *
 * Failure grades: corrupt IPC from the queue is fatal (STYLE.md 8); an
 * unreadable message file or no memory answers the job 4xx.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/dns.h"
#include "../common/outbound.h"
#include "../common/role.h"
#include "../common/spool.h"
#include "smtp_out.h"

#define OUT_DEST_BUCKETS	1024	/* destination hash table */
#define OUT_DEST_IDLE		300	/* s unused before freed */
#define OUT_GC_INTERVAL		60	/* s between cleanups */
#define OUT_STOP_GRACE		10	/* s for the running */
#define OUT_MEM_KEEP	(16 * 1024 * 1024)	/* message files kept read */
#define OUT_READ_BATCH		64	/* messages per read event */
#define OUT_EXIT_SNDTIMEO	5	/* s per reply written at exit */
#define OUT_FD_SPARE		64	/* DNS, logs, the queue */
#define OUT_LOG_NAME		(OUT_NAME_MAX * 4)
#define OUT_LOG_TEXT		(OUT_TEXT_MAX * 4)

#define OUT_TEXT_SHUTDOWN	"4.3.2 shutting down"
#define OUT_TEXT_NOMEM		"4.3.0 out of memory"

/* what smtp_out.c knows of one session (struct osess is opaque) */
enum osref_state {
	OS_OPENING,	/* resolving, connecting, greeting */
	OS_BUSY,	/* has a job, or just reported ready */
	OS_IDLE,	/* cached, waiting for a job */
	OS_CLOSING	/* osess_close() called, out_sess_gone() to come */
};

struct osref {
	TAILQ_ENTRY(osref)	 dentry;	/* in its destination */
	TAILQ_ENTRY(osref)	 ientry;	/* role idle list (OS_IDLE) */
	struct osess		*s;
	enum osref_state	 state;
};
TAILQ_HEAD(osref_list, osref);

/* a destination with our private parts; d first: others see only it */
struct odest_x {
	struct odest		 d;
	LIST_ENTRY(odest_x)	 hentry;	/* hash bucket */
	TAILQ_ENTRY(odest_x)	 wentry;	/* role wait list */
	int			 waiting;	/* on the wait list */
	struct osref_list	 sess;
	size_t			 nopening;	/* in OS_OPENING */
	/*
	 * Sessions allowed while some fail and others get through (one
	 * bad MX host of several): no more than worked; 0 = the limit.
	 * Without it a target that refuses at once would make us open
	 * and fail sessions in a tight loop beside a working one.
	 */
	size_t			 window;
};
LIST_HEAD(odest_bucket, odest_x);

/* a reply the queue could not take yet */
struct obacklog {
	TAILQ_ENTRY(obacklog)	 entry;
	size_t			 len;
	struct out_reply	 rep;		/* len octets used */
};
TAILQ_HEAD(obacklog_list, obacklog);

/* the role with our private parts; so first: callbacks get &so */
struct out_role {
	struct smtp_out		 so;
	struct odest_bucket	 hash[OUT_DEST_BUCKETS];
	TAILQ_HEAD(, odest_x)	 wait;	/* need a role slot */
	struct osref_list	 idle;		/* oldest first */
	struct ojob_list	 running;	/* given to sessions */
	size_t			 nclosing;	/* in OS_CLOSING */
	struct obacklog_list	 backlog;
	struct event		*ev_write;	/* out_sock writable */
	struct event		*ev_term;
	struct event		*ev_stop;	/* end of the grace */
};

#define ROLE(so)	((struct out_role *)(void *)(so))
#define DX(d)		((struct odest_x *)(void *)(d))

static void	out_check_nofile(const struct config *);
static void	out_queue_read(int, short, void *);
static void	out_job_take(struct out_role *, const struct out_job *,
		    int);
static int	out_job_check(const struct out_job *);
static void	out_job_answer(struct out_role *, struct ojob *, unsigned,
		    const char *);
static void	out_text_set(struct out_result *, unsigned, const char *);
static void	out_reply_send(struct out_role *, struct ojob *);
static void	out_reply_nomem(struct out_role *, const struct out_job *);
static void	out_reply_write(struct out_role *, const struct out_reply *,
		    size_t);
static void	out_backlog_write(int, short, void *);
static void	out_flush(struct out_role *);
static struct odest_x *out_dest_get(struct out_role *, uint32_t,
		    const char *, unsigned);
static unsigned	out_dest_hash(uint32_t, const char *, unsigned);
static void	out_dest_free(struct out_role *, struct odest_x *);
static void	out_dest_kick(struct out_role *, struct odest_x *);
static void	out_dest_fail_jobs(struct out_role *, struct odest_x *,
		    unsigned, const char *);
static int	out_dest_dead(const struct odest *, time_t);
static void	out_dest_mark_dead(struct out_role *, struct odest_x *,
		    unsigned, const char *);
static time_t	out_dest_backoff(const struct config *, unsigned);
static void	out_wait_add(struct out_role *, struct odest_x *);
static void	out_wait_remove(struct out_role *, struct odest_x *);
static void	out_wait_serve(struct out_role *);
static void	out_make_room(struct out_role *, struct odest_x *, size_t);
static struct osref *out_ref_find(struct odest_x *, const struct osess *);
static void	out_sess_run(struct out_role *, struct osref *,
		    struct odest_x *);
static void	out_sess_close(struct out_role *, struct osref *);
static void	out_sess_idle(struct out_role *, struct osref *);
static void	out_gc(int, short, void *);
static void	out_sigterm(int, short, void *);
static void	out_stop_check(struct out_role *);
static void	out_stop_timeout(int, short, void *);
static void	out_exit(struct out_role *) __attribute__((noreturn));

static size_t	out_mem_kept;	/* octets of ojob.mem, at most OUT_MEM_KEEP */

/* smtp_out_preinit - resolver and TLS as root, before the drop */
void
smtp_out_preinit(struct role_ctx *ctx)
{
	struct out_role	*r;
	struct dns_conf	 dc;
	size_t		 i;

	log_setproc("smtp-out");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("event=start calloc");
	r->so.ctx = ctx;
	r->so.conf = ctx->conf;
	TAILQ_INIT(&r->so.dests);
	for (i = 0; i < OUT_DEST_BUCKETS; i++)
		LIST_INIT(&r->hash[i]);
	TAILQ_INIT(&r->wait);
	TAILQ_INIT(&r->idle);
	TAILQ_INIT(&r->running);
	TAILQ_INIT(&r->backlog);
	if ((r->so.base = event_base_make()) == NULL)
		fatalx("event=start reason=\"event_base_new failed\"");
	memset(&dc, 0, sizeof(dc));
	if (ctx->conf->ndns_servers > 0) {
		dc.servers = ctx->conf->dns_servers;
		dc.nservers = ctx->conf->ndns_servers;
	}
	if (dns_init(r->so.base, &dc) == -1)
		fatalx("event=start reason=\"cannot start the resolver\"");
	/* without a client context every session goes without STARTTLS */
	if ((r->so.ssl_ctx = otls_ctx_new(ctx->conf)) == NULL)
		log_warnx("event=start role=smtp-out reason=\"no TLS client "
		    "context: outbound STARTTLS is impossible\"");
	out_check_nofile(ctx->conf);
	ctx->out_state = r;
}

/*
 * out_check_nofile - every job held keeps its message file open, and
 * a descriptor the kernel cannot install with a job is fatal IPC
 * (MSG_CTRUNC): say so at start if the limit (raised by the master to
 * the hard one) is short of what the queue may send us
 */
static void
out_check_nofile(const struct config *c)
{
	struct rlimit	 rl;
	rlim_t		 need;

	need = (rlim_t)OUT_INFLIGHT_MAX + c->smtp_max_connections +
	    OUT_FD_SPARE;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
		log_warnx("event=start role=smtp-out reason=\"open file limit "
		    "%llu is below %llu: raise the hard limit (LimitNOFILE)\"",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* smtp_out_run - the smtp-out role's main; never returns */
void
smtp_out_run(struct role_ctx *ctx)
{
	struct out_role	*r = ctx->out_state;
	struct smtp_out	*so;
	struct timeval	 tv = { OUT_GC_INTERVAL, 0 };

	if (r == NULL)
		fatalx("event=start reason=\"smtp_out_preinit not called\"");
	so = &r->so;
	log_setproc("smtp-out");
	/* the master set PR_SET_PDEATHSIG; the sandbox forbids prctl now */
	signal(SIGPIPE, SIG_IGN);
	if (fd_nonblock(ctx->out_sock) == -1)
		fatal("event=start out_sock");
	so->ev_queue = event_new(so->base, ctx->out_sock, EV_READ | EV_PERSIST,
	    out_queue_read, r);
	r->ev_write = event_new(so->base, ctx->out_sock, EV_WRITE |
	    EV_PERSIST, out_backlog_write, r);
	so->ev_gc = event_new(so->base, -1, EV_PERSIST, out_gc, r);
	r->ev_term = evsignal_new(so->base, SIGTERM, out_sigterm, r);
	r->ev_stop = evtimer_new(so->base, out_stop_timeout, r);
	if (so->ev_queue == NULL || r->ev_write == NULL || so->ev_gc == NULL ||
	    r->ev_term == NULL || r->ev_stop == NULL ||
	    event_add(so->ev_queue, NULL) == -1 ||
	    event_add(so->ev_gc, &tv) == -1 ||
	    event_add(r->ev_term, NULL) == -1)
		fatalx("event=start reason=\"cannot set up events\"");
	log_info("event=start role=smtp-out tls=%s",
	    so->ssl_ctx != NULL ? "yes" : "no");
	event_base_dispatch(so->base);
	fatalx("event=stop reason=\"event loop ended\"");
}

/* ---- the queue channel ------------------------------------------- */

/* out_queue_read - OUT_JOB and OUT_FLUSH from the queue, or its EOF */
static void
out_queue_read(int fd, short ev, void *arg)
{
	static struct out_job	 job;
	struct out_role		*r = arg;
	uint32_t		 type;
	ssize_t			 n;
	int			 pfd, i;

	for (i = 0; i < OUT_READ_BATCH; i++) {
		n = ipc_recv(fd, &type, &job, sizeof(job), &pfd);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return;
			fatal("event=ipc recv");
		}
		if (n == 0 && type == 0) {
			if (r->so.stopping)
				out_exit(r);
			/*
			 * The queue stopped or died: nobody can take our
			 * answers any more, and the master starts the whole
			 * delivery group again if it should run.  Not an
			 * error of ours (at a stop it races with SIGTERM).
			 */
			log_info("event=stop role=smtp-out reason=\"queue "
			    "went away\"");
			exit(0);
		}
		if (type == OUT_FLUSH) {
			if (n != 0 || pfd != -1)
				fatalx("event=ipc reason=\"bad flush len=%zd\"",
				    n);
			out_flush(r);
			continue;
		}
		/* exact length for the announced count, and the fd */
		if (type != OUT_JOB || (size_t)n < OUT_JOB_LEN(0) ||
		    job.n == 0 || job.n > OUT_RCPT_MAX ||
		    (size_t)n != OUT_JOB_LEN(job.n) || pfd == -1 ||
		    out_job_check(&job) == -1)
			fatalx("event=ipc reason=\"bad job type=%#x len=%zd\"",
			    type, n);
		out_job_take(r, &job, pfd);
	}
}

/* out_job_check - the strings and numbers of a job; 0 or -1 */
static int
out_job_check(const struct out_job *job)
{
	if (memchr(job->qid, '\0', sizeof(job->qid)) == NULL ||
	    !qid_valid(job->qid, strlen(job->qid)))
		return -1;
	if (memchr(job->name, '\0', sizeof(job->name)) == NULL ||
	    job->name[0] == '\0')
		return -1;
	if (job->kind != TR_SMTP_MX && job->kind != TR_SMTP_HOST &&
	    job->kind != TR_SMTP_FIXED)
		return -1;
	if (job->port > 65535)
		return -1;
	return 0;
}

/*
 * out_job_take - read the envelope, then answer at once (stopping,
 * unreadable, dead destination) or queue the job on its destination
 */
static void
out_job_take(struct out_role *r, const struct out_job *job, int fd)
{
	struct smtp_out	*so = &r->so;
	struct odest_x	*dx;
	struct ojob	*j;
	const char	*why = NULL;
	unsigned	 port;
	size_t		 k;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warnx("event=job_error qid=%s reason=\"out of memory\"",
		    job->qid);
		out_reply_nomem(r, job);
		close(fd);
		return;
	}
	j->id = job->id;
	j->fd = fd;
	j->flags = job->flags;
	j->n = job->n;
	memcpy(j->idx, job->idx, job->n * sizeof(job->idx[0]));
	for (k = 0; k < j->n; k++)
		j->res[k].idx = j->idx[k];
	so->njobs++;

	if (spool_msg_load(fd, &j->env, &why, &j->mem, &j->memlen) == -1 ||
	    strcmp(j->env.qid, job->qid) != 0) {
		log_warnx("event=job_error qid=%s reason=\"%s\"", job->qid,
		    why != NULL ? why : "queue id mismatch");
		out_job_answer(r, j, 451, "4.3.0 cannot read queued message");
		return;
	}
	/* the file as read stays for the body, within a memory budget */
	if (j->mem != NULL && out_mem_kept + j->memlen > OUT_MEM_KEEP) {
		free(j->mem);
		j->mem = NULL;
	}
	out_mem_kept += j->mem != NULL ? j->memlen : 0;
	for (k = 0; k < j->n; k++)
		if (j->idx[k] >= j->env.nrcpt)
			fatalx("event=ipc reason=\"recipient index %u of %zu\"",
			    j->idx[k], j->env.nrcpt);
	if (so->stopping) {
		out_job_answer(r, j, 451, OUT_TEXT_SHUTDOWN);
		return;
	}
	port = job->port != 0 ? job->port : so->conf->remote_smtp_port;
	if ((dx = out_dest_get(r, job->kind, job->name, port)) == NULL) {
		out_job_answer(r, j, 451, OUT_TEXT_NOMEM);
		return;
	}
	j->dest = &dx->d;
	if (out_dest_dead(&dx->d, time(NULL))) {
		out_job_answer(r, j, dx->d.dead_code, dx->d.dead_text);
		return;
	}
	TAILQ_INSERT_TAIL(&dx->d.jobs, j, entry);
	dx->d.njobs++;
	dx->d.idle_since = 0;
	out_dest_kick(r, dx);
}

/*
 * out_job_answer - every recipient without a result gets code/text;
 * then the job is answered and freed.  j must be in no list.
 */
static void
out_job_answer(struct out_role *r, struct ojob *j, unsigned code,
    const char *text)
{
	size_t	 k;

	for (k = 0; k < j->n; k++)
		if (j->res[k].code == 0)
			out_text_set(&j->res[k], code, text);
	out_reply_send(r, j);
}

/* out_text_set - a result, its text cut to fit */
static void
out_text_set(struct out_result *res, unsigned code, const char *text)
{
	size_t	 len;

	len = strlen(text);
	if (len >= sizeof(res->text))
		len = sizeof(res->text) - 1;
	res->code = code;
	memcpy(res->text, text, len);
	res->text[len] = '\0';
}

/* out_reply_send - one OUT_REPLY for j; then j is closed and freed */
static void
out_reply_send(struct out_role *r, struct ojob *j)
{
	static struct out_reply	 rep;
	size_t			 k, len;

	memset(&rep, 0, sizeof(rep));
	rep.id = j->id;
	rep.n = (uint32_t)j->n;
	j->relay[sizeof(j->relay) - 1] = '\0';
	j->tls[sizeof(j->tls) - 1] = '\0';
	len = strlen(j->relay);
	if (len == 0)
		memcpy(rep.relay, "none", sizeof("none"));
	else
		memcpy(rep.relay, j->relay, len + 1);
	memcpy(rep.tls, j->tls, strlen(j->tls) + 1);
	for (k = 0; k < j->n; k++) {
		rep.r[k] = j->res[k];
		rep.r[k].idx = j->idx[k];
		rep.r[k].text[sizeof(rep.r[k].text) - 1] = '\0';
		if (rep.r[k].code < 200 || rep.r[k].code > 599) {
			/* a session bug must not become a corrupt reply */
			log_warnx("event=job_error id=%u reason=\"no result "
			    "for recipient %zu (code %u)\"", j->id, k,
			    (unsigned)rep.r[k].code);
			out_text_set(&rep.r[k], 451,
			    "4.3.0 no delivery result");
		}
	}
	out_reply_write(r, &rep, OUT_REPLY_LEN(j->n));
	close(j->fd);
	if (j->mem != NULL) {
		out_mem_kept -= j->memlen;
		free(j->mem);
	}
	envelope_free(&j->env);
	free(j);
	r->so.njobs--;
	out_stop_check(r);
}

/* out_reply_nomem - answer a job we could not even allocate */
static void
out_reply_nomem(struct out_role *r, const struct out_job *job)
{
	static struct out_reply	 rep;
	size_t			 k;

	memset(&rep, 0, sizeof(rep));
	rep.id = job->id;
	rep.n = job->n;
	memcpy(rep.relay, "none", sizeof("none"));
	for (k = 0; k < job->n; k++) {
		rep.r[k].idx = job->idx[k];
		out_text_set(&rep.r[k], 451, OUT_TEXT_NOMEM);
	}
	out_reply_write(r, &rep, OUT_REPLY_LEN(job->n));
}

/*
 * out_reply_write - send a reply now, or after those already waiting
 * when the queue is slow to read (non-blocking socket full)
 */
static void
out_reply_write(struct out_role *r, const struct out_reply *rep,
    size_t len)
{
	struct obacklog	*b;

	if (TAILQ_EMPTY(&r->backlog)) {
		if (ipc_send(r->so.ctx->out_sock, OUT_REPLY, rep, len, -1) ==
		    0)
			return;
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ENOBUFS) {
			if (r->so.stopping)
				out_exit(r);
			fatal("event=ipc send");
		}
		if (event_add(r->ev_write, NULL) == -1)
			fatalx("event=ipc reason=\"cannot wait to write\"");
	}
	/* a reply is never dropped: without memory we cannot go on */
	if ((b = malloc(offsetof(struct obacklog, rep) + len)) == NULL)
		fatal("event=ipc backlog");
	b->len = len;
	memcpy(&b->rep, rep, len);
	TAILQ_INSERT_TAIL(&r->backlog, b, entry);
}

/* out_backlog_write - the socket can take more: send what waits */
static void
out_backlog_write(int fd, short ev, void *arg)
{
	struct out_role	*r = arg;
	struct obacklog	*b;

	while ((b = TAILQ_FIRST(&r->backlog)) != NULL) {
		if (ipc_send(fd, OUT_REPLY, &b->rep, b->len, -1) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == ENOBUFS)
				return;
			if (r->so.stopping)
				out_exit(r);
			fatal("event=ipc send");
		}
		TAILQ_REMOVE(&r->backlog, b, entry);
		free(b);
	}
	event_del(r->ev_write);
	out_stop_check(r);
}

/* out_flush - OUT_FLUSH: forget every backoff, try every destination */
static void
out_flush(struct out_role *r)
{
	struct odest	*d, *next;
	size_t		 n = 0;

	TAILQ_FOREACH_SAFE(d, &r->so.dests, entry, next) {
		if (d->dead_until != 0)
			n++;
		d->dead_until = 0;
		out_dest_kick(r, DX(d));
	}
	log_info("event=flush dead_cleared=%zu", n);
}

/* ---- destinations ------------------------------------------------- */

/* out_dest_get - the destination of (kind, name, port), made if new */
static struct odest_x *
out_dest_get(struct out_role *r, uint32_t kind, const char *name,
    unsigned port)
{
	struct odest_x	*dx;
	char		 key[OUT_NAME_MAX];
	size_t		 len;
	unsigned	 h;

	/* names are case-insensitive (RFC 5321 2.4): one destination */
	len = strlen(name);
	memcpy(key, name, len + 1);
	mem_ascii_lower(key, len);
	h = out_dest_hash(kind, key, port);
	LIST_FOREACH(dx, &r->hash[h], hentry)
		if (dx->d.kind == kind && dx->d.port == port &&
		    strcmp(dx->d.name, key) == 0)
			return dx;
	if ((dx = calloc(1, sizeof(*dx))) == NULL)
		return NULL;
	dx->d.kind = kind;
	memcpy(dx->d.name, key, len + 1);
	dx->d.port = port;
	dx->d.tls = tls_policy_lookup(r->so.conf, key, len);
	TAILQ_INIT(&dx->d.jobs);
	TAILQ_INIT(&dx->sess);
	TAILQ_INSERT_TAIL(&r->so.dests, &dx->d, entry);
	LIST_INSERT_HEAD(&r->hash[h], dx, hentry);
	r->so.ndests++;
	return dx;
}

/* out_dest_hash - FNV-1a of the key, folded to a bucket */
static unsigned
out_dest_hash(uint32_t kind, const char *name, unsigned port)
{
	uint32_t	 h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	h = (h ^ kind) * 16777619u;
	h = (h ^ port) * 16777619u;
	return h % OUT_DEST_BUCKETS;
}

static void
out_dest_free(struct out_role *r, struct odest_x *dx)
{
	if (dx->d.njobs != 0 || dx->d.nsess != 0)
		panic("out_dest_free: dest=%s jobs=%zu sessions=%zu",
		    dx->d.name, dx->d.njobs, dx->d.nsess);
	out_wait_remove(r, dx);
	TAILQ_REMOVE(&r->so.dests, &dx->d, entry);
	LIST_REMOVE(dx, hentry);
	r->so.ndests--;
	free(dx);
}

/*
 * out_dest_kick - give waiting jobs to idle sessions, then open new
 * sessions while the waiting jobs outnumber those being opened, within
 * the destination's and the role's limits.
 */
static void
out_dest_kick(struct out_role *r, struct odest_x *dx)
{
	struct smtp_out		*so = &r->so;
	const struct config	*c = so->conf;
	struct odest		*d = &dx->d;
	struct osref		*ref, *next;
	struct osess		*s;
	size_t			 limit;

	if (so->stopping)
		return;
	limit = c->smtp_destination_concurrency_limit;
	if (dx->window != 0 && dx->window < limit)
		limit = dx->window;
	TAILQ_FOREACH_SAFE(ref, &dx->sess, dentry, next) {
		if (d->njobs == 0)
			break;
		if (ref->state == OS_IDLE)
			out_sess_run(r, ref, dx);
	}
	while (d->njobs > dx->nopening && d->nsess < limit) {
		if (so->nsess >= c->smtp_max_connections) {
			out_wait_add(r, dx);
			out_make_room(r, dx, d->njobs - dx->nopening);
			return;
		}
		if ((ref = calloc(1, sizeof(*ref))) == NULL ||
		    (s = osess_new(so, d)) == NULL) {
			free(ref);
			log_warnx("event=session_error dest=%s reason=\"out "
			    "of memory\"", d->name);
			/* nothing will come to serve them: answer now */
			if (d->nsess == 0)
				out_dest_fail_jobs(r, dx, 451, OUT_TEXT_NOMEM);
			return;
		}
		ref->s = s;
		ref->state = OS_OPENING;
		TAILQ_INSERT_TAIL(&dx->sess, ref, dentry);
		dx->nopening++;
		d->nsess++;
		so->nsess++;
		d->idle_since = 0;
	}
	/* served as far as its own limit goes: no role slot needed */
	out_wait_remove(r, dx);
}

/* out_dest_fail_jobs - answer every waiting job of dx with code/text */
static void
out_dest_fail_jobs(struct out_role *r, struct odest_x *dx, unsigned code,
    const char *text)
{
	struct ojob	*j;

	while ((j = TAILQ_FIRST(&dx->d.jobs)) != NULL) {
		TAILQ_REMOVE(&dx->d.jobs, j, entry);
		dx->d.njobs--;
		out_job_answer(r, j, code, text);
	}
	out_wait_remove(r, dx);
	if (dx->d.nsess == 0)
		dx->d.idle_since = time(NULL);
}

static int
out_dest_dead(const struct odest *d, time_t now)
{
	return d->dead_until != 0 && d->dead_until > now;
}

/*
 * out_dest_mark_dead - a 4xx before MAIL on every target: no new
 * attempt before the backoff is over.  Sessions that fail while the
 * destination is already dead (opened before) do not double it again.
 */
static void
out_dest_mark_dead(struct out_role *r, struct odest_x *dx, unsigned code,
    const char *text)
{
	struct odest	*d = &dx->d;
	time_t		 now = time(NULL), wait;
	char		 name[OUT_LOG_NAME], why[OUT_LOG_TEXT];
	struct tm	 tm;
	char		 until[32];
	size_t		 len;

	if (out_dest_dead(d, now))
		return;
	d->fails++;
	wait = out_dest_backoff(r->so.conf, d->fails);
	d->dead_until = now + wait;
	d->dead_code = code;
	len = strlen(text);
	if (len >= sizeof(d->dead_text))
		len = sizeof(d->dead_text) - 1;
	memcpy(d->dead_text, text, len);
	d->dead_text[len] = '\0';
	if (gmtime_r(&d->dead_until, &tm) == NULL ||
	    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		until[0] = '\0';
	log_sanitize(d->name, strlen(d->name), name, sizeof(name));
	log_sanitize_text(text, len, why, sizeof(why));
	log_info("event=dest_dead dest=%s until=%s seconds=%lld fails=%u "
	    "reason=\"%s\"", name, until, (long long)wait, d->fails, why);
}

/* out_dest_backoff - retry_min/2 doubling per failure, <= retry_max/2 */
static time_t
out_dest_backoff(const struct config *c, unsigned fails)
{
	time_t		 d = c->retry_min / 2 > 0 ? c->retry_min / 2 : 1;
	time_t		 max = c->retry_max / 2;
	unsigned	 i;

	if (max < d)
		max = d;
	for (i = 1; i < fails && d < max; i++)
		d *= 2;
	return d < max ? d : max;
}

/* ---- the role's connection limit ---------------------------------- */

static void
out_wait_add(struct out_role *r, struct odest_x *dx)
{
	if (dx->waiting)
		return;
	dx->waiting = 1;
	TAILQ_INSERT_TAIL(&r->wait, dx, wentry);
}

static void
out_wait_remove(struct out_role *r, struct odest_x *dx)
{
	if (!dx->waiting)
		return;
	dx->waiting = 0;
	TAILQ_REMOVE(&r->wait, dx, wentry);
}

/* out_wait_serve - a role slot is free: destinations waiting, in order */
static void
out_wait_serve(struct out_role *r)
{
	struct odest_x	*dx;

	while (r->so.nsess < r->so.conf->smtp_max_connections &&
	    (dx = TAILQ_FIRST(&r->wait)) != NULL) {
		out_wait_remove(r, dx);
		/* back on the list if still short */
		out_dest_kick(r, dx);
	}
}

/*
 * out_make_room - dx needs want more sessions and the role is full:
 * close idle sessions of other destinations, the longest idle first,
 * counting those already closing as room to come.
 */
static void
out_make_room(struct out_role *r, struct odest_x *dx, size_t want)
{
	struct osref	*ref, *next;

	TAILQ_FOREACH_SAFE(ref, &r->idle, ientry, next) {
		if (r->nclosing >= want)
			return;
		if (DX(osess_dest(ref->s)) != dx)
			out_sess_close(r, ref);
	}
}

/* ---- sessions ----------------------------------------------------- */

/* out_sess_ready - s can take a job: give one, cache s, or close it */
void
out_sess_ready(struct smtp_out *so, struct osess *s)
{
	struct out_role	*r = ROLE(so);
	struct odest_x	*dx = DX(osess_dest(s));
	struct osref	*ref = out_ref_find(dx, s);

	switch (ref->state) {
	case OS_OPENING:
		/* it got through: the destination is alive again */
		dx->nopening--;
		dx->d.fails = 0;
		dx->d.dead_until = 0;
		dx->window = 0;
		break;
	case OS_BUSY:
		break;
	case OS_CLOSING:
		return;		/* closed by us meanwhile: gone comes */
	case OS_IDLE:
	default:
		panic("out_sess_ready: dest=%s session in state %d",
		    dx->d.name, (int)ref->state);
	}
	ref->state = OS_BUSY;
	if (so->stopping ||
	    osess_age(s) > so->conf->smtp_connection_reuse_time) {
		out_sess_close(r, ref);
		return;
	}
	if (dx->d.njobs > 0) {
		out_sess_run(r, ref, dx);
		return;
	}
	/* a connection slot is worth more to waiting mail than a cache */
	if (!TAILQ_EMPTY(&r->wait) &&
	    so->nsess >= so->conf->smtp_max_connections) {
		out_sess_close(r, ref);
		return;
	}
	out_sess_idle(r, ref);
}

/*
 * out_sess_failed - s reached no target: its reason goes to the jobs
 * waiting, and a 4xx makes the destination dead for a while.  When
 * other sessions of the destination are connected, the destination is
 * evidently reachable: the jobs stay for those, and no more sessions
 * than they are are opened until one gets through again.
 */
void
out_sess_failed(struct smtp_out *so, struct osess *s, unsigned code,
    const char *text)
{
	struct out_role	*r = ROLE(so);
	struct odest_x	*dx = DX(osess_dest(s));
	struct osref	*ref;
	size_t		 up = 0;

	if (code < 400 || code > 599)
		panic("out_sess_failed: dest=%s code %u", dx->d.name, code);
	(void)out_ref_find(dx, s);
	TAILQ_FOREACH(ref, &dx->sess, dentry)
		if (ref->s != s && (ref->state == OS_BUSY ||
		    ref->state == OS_IDLE))
			up++;
	if (up > 0) {
		dx->window = up;
		return;
	}
	out_dest_fail_jobs(r, dx, code, text);
	if (code < 500)
		out_dest_mark_dead(r, dx, code, text);
}

/* out_job_done - a session finished j: answer the queue */
void
out_job_done(struct smtp_out *so, struct ojob *j)
{
	struct out_role	*r = ROLE(so);

	TAILQ_REMOVE(&r->running, j, entry);
	out_reply_send(r, j);
}

/* out_sess_gone - s is about to be freed: uncount it, serve the waiting */
void
out_sess_gone(struct smtp_out *so, struct osess *s)
{
	struct out_role	*r = ROLE(so);
	struct odest_x	*dx = DX(osess_dest(s));
	struct osref	*ref = out_ref_find(dx, s);

	switch (ref->state) {
	case OS_OPENING:
		dx->nopening--;
		break;
	case OS_IDLE:
		TAILQ_REMOVE(&r->idle, ref, ientry);
		break;
	case OS_CLOSING:
		r->nclosing--;
		break;
	case OS_BUSY:
		break;
	}
	TAILQ_REMOVE(&dx->sess, ref, dentry);
	free(ref);
	dx->d.nsess--;
	so->nsess--;
	if (dx->d.nsess == 0 && dx->d.njobs == 0)
		dx->d.idle_since = time(NULL);
	if (so->stopping) {
		out_stop_check(r);
		return;
	}
	out_wait_serve(r);
	out_dest_kick(r, dx);
}

/* out_ref_find - our record of s; a session we do not know is a bug */
static struct osref *
out_ref_find(struct odest_x *dx, const struct osess *s)
{
	struct osref	*ref;

	TAILQ_FOREACH(ref, &dx->sess, dentry)
		if (ref->s == s)
			return ref;
	panic("out_ref_find: dest=%s unknown session", dx->d.name);
}

/* out_sess_run - the next waiting job of dx on the session */
static void
out_sess_run(struct out_role *r, struct osref *ref, struct odest_x *dx)
{
	struct ojob	*j = TAILQ_FIRST(&dx->d.jobs);

	if (j == NULL)
		panic("out_sess_run: dest=%s has no job", dx->d.name);
	TAILQ_REMOVE(&dx->d.jobs, j, entry);
	dx->d.njobs--;
	TAILQ_INSERT_TAIL(&r->running, j, entry);
	if (ref->state == OS_IDLE)
		TAILQ_REMOVE(&r->idle, ref, ientry);
	ref->state = OS_BUSY;
	/* no longer short of sessions: no role slot needed */
	if (dx->d.njobs <= dx->nopening)
		out_wait_remove(r, dx);
	osess_run(ref->s, j);
}

/* out_sess_close - close a session; it counts until out_sess_gone */
static void
out_sess_close(struct out_role *r, struct osref *ref)
{
	if (ref->state == OS_CLOSING)
		return;
	if (ref->state == OS_IDLE)
		TAILQ_REMOVE(&r->idle, ref, ientry);
	if (ref->state == OS_OPENING)
		DX(osess_dest(ref->s))->nopening--;
	ref->state = OS_CLOSING;
	r->nclosing++;
	osess_close(ref->s);
}

/* out_sess_idle - cache the session for smtp_connection_cache_time */
static void
out_sess_idle(struct out_role *r, struct osref *ref)
{
	ref->state = OS_IDLE;
	TAILQ_INSERT_TAIL(&r->idle, ref, ientry);
	osess_idle(ref->s, r->so.conf->smtp_connection_cache_time);
}

/*
 * out_gc - free destinations without jobs and sessions for a while.  A
 * destination with consecutive failures is kept until retry_max after
 * its backoff ended, so that the next failure doubles the backoff.
 */
static void
out_gc(int fd, short ev, void *arg)
{
	struct out_role	*r = arg;
	struct odest	*d, *next;
	time_t		 now = time(NULL);

	TAILQ_FOREACH_SAFE(d, &r->so.dests, entry, next) {
		if (d->njobs != 0 || d->nsess != 0)
			continue;
		if (d->idle_since == 0) {
			d->idle_since = now;
			continue;
		}
		if (now - d->idle_since < OUT_DEST_IDLE)
			continue;
		if (d->fails > 0 && now < d->dead_until +
		    r->so.conf->retry_max)
			continue;
		out_dest_free(r, DX(d));
	}
}

/* ---- stopping ----------------------------------------------------- */

/*
 * out_sigterm - stop: no new sessions; waiting jobs are answered 4xx
 * (the queue tries them again), idle and opening sessions are closed,
 * transactions in progress get OUT_STOP_GRACE seconds.
 */
static void
out_sigterm(int sig, short ev, void *arg)
{
	struct out_role	*r = arg;
	struct timeval	 tv = { OUT_STOP_GRACE, 0 };
	struct odest	*d;
	struct osref	*ref, *next;

	if (r == NULL || r->so.stopping)
		return;
	r->so.stopping = 1;
	log_info("event=stopping role=smtp-out jobs=%zu sessions=%zu",
	    r->so.njobs, r->so.nsess);
	evtimer_add(r->ev_stop, &tv);
	TAILQ_FOREACH(d, &r->so.dests, entry) {
		out_dest_fail_jobs(r, DX(d), 451, OUT_TEXT_SHUTDOWN);
		TAILQ_FOREACH_SAFE(ref, &DX(d)->sess, dentry, next)
			if (ref->state == OS_OPENING ||
			    ref->state == OS_IDLE)
				out_sess_close(r, ref);
	}
	out_stop_check(r);
}

/* out_stop_check - stopping and nothing left: exit */
static void
out_stop_check(struct out_role *r)
{
	if (!r->so.stopping || r->so.njobs != 0 || r->so.nsess != 0 ||
	    !TAILQ_EMPTY(&r->backlog))
		return;
	log_info("event=stop role=smtp-out");
	exit(0);
}

/*
 * out_stop_timeout - the grace is over: the jobs still running are
 * answered (what is known, and 4xx for the rest) before we go
 */
static void
out_stop_timeout(int fd, short ev, void *arg)
{
	struct out_role	*r = arg;
	struct ojob	*j;

	log_warnx("event=stop role=smtp-out reason=\"%zu jobs still running "
	    "after %ds\"", r->so.njobs, OUT_STOP_GRACE);
	while ((j = TAILQ_FIRST(&r->running)) != NULL) {
		TAILQ_REMOVE(&r->running, j, entry);
		/* freed while a session points to it: we exit right now */
		out_job_answer(r, j, 451, OUT_TEXT_SHUTDOWN);
	}
	out_exit(r);
}

/*
 * out_exit - write the replies still waiting (blocking, bounded), then
 * exit 0
 */
static void
out_exit(struct out_role *r)
{
	struct timeval	 tv = { OUT_EXIT_SNDTIMEO, 0 };
	struct obacklog	*b;
	int		 fd = r->so.ctx->out_sock, fl;

	if (!TAILQ_EMPTY(&r->backlog) &&
	    (fl = fcntl(fd, F_GETFL)) != -1 &&
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != -1 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0)
		TAILQ_FOREACH(b, &r->backlog, entry)
			if (ipc_send(fd, OUT_REPLY, &b->rep, b->len, -1) ==
			    -1)
				break;
	log_info("event=stop role=smtp-out");
	exit(0);
}
