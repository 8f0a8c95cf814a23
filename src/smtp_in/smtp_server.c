/*
 * smtp_server.c - the smtp-in role: one libevent loop for the sessions
 * of every listener, connection limits and signals.
 *
 * Entered from the master after fork and privilege drop (role.h); cwd
 * is the spool.  The listening fds are bound and non-blocking.
 *
 * Limits (DESIGN.md 4): max_connections in total and
 * max_connections_per_ip per client address are checked at accept;
 * over either, the client gets "421 4.7.0 Too many connections" (one
 * non-blocking send, no session) and is closed.  Per-address counts
 * live in a small hash table, one entry per address with sessions.
 *
 * Out of descriptors (EMFILE, ENFILE), a pending client would stay in
 * the backlog and wake the loop again at once.  One descriptor is kept
 * in reserve for that case (the "idle fd" of libev and nginx): it is
 * closed, the client accepted, told "421 4.3.2 System not accepting
 * network messages" (RFC 3463 3.3) and closed, and the reserve opened
 * again.  Existing sessions go on.  If even that fails, or memory runs
 * out, accepting pauses for ACCEPT_PAUSE seconds rather than spin.
 *
 * Command deadline: the bufferevent read timeout is an idle limit, and
 * every octet restarts it, so a client trickling a byte a second
 * ("slowloris") would hold its session for ever.  A sweep once a
 * second gives each session awaiting a command line command_timeout
 * from the previous command (or from the banner) to complete it (to
 * the second above), then answers "421 4.4.2 Timeout" and closes.  Sessions the server itself
 * holds (lookups, tarpit, greet delay, output backlog) are not timed.
 * The clocks live in a table here, one small entry per session.
 *
 * Signals, through the loop:
 *   SIGTERM (and SIGINT): close the listeners, 421 4.3.2 to every
 *     session, abort unfinished transactions; a message with the
 *     commit threads gets its reply first.  Exit 0 when every session
 *     is gone or after SMTP_SHUTDOWN_GRACE seconds.
 *   SIGUSR2: drain: close the listeners (a new smtp-in takes over the
 *     same sockets), let the sessions finish, exit 0 when none is left.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/authdb.h"
#include "../common/config.h"
#include "../common/role.h"
#include "../common/stats.h"
#include "smtp_disk.h"
#include "smtp_in.h"

#define ACCEPT_BATCH	64	/* accepts per listener wakeup */
#define IPC_BUCKETS	1024	/* per-address count table */
#define ACCEPT_PAUSE	1	/* seconds without accept after EMFILE */
#define DEF_CMD_TIMEOUT	300
#define DEF_DATA_TIMEOUT 600
#define CLOCK_BUCKETS	4096	/* command deadline table */
#define SWEEP_INTERVAL	1	/* seconds between deadline sweeps */
#define REFUSE_BUSY	"421 4.7.0 Too many connections\r\n"
#define REFUSE_NOFILE	"421 4.3.2 System not accepting network messages\r\n"

static void	server_accept(evutil_socket_t, short, void *);
static void	server_new_conn(struct listener *, int,
		    struct sockaddr_storage *);
static void	server_refuse(int, const struct sockaddr_storage *,
		    const char *, const char *);
static int	server_refuse_nofile(int);
static void	server_close_listeners(void);
static void	server_pause_accept(void);
static void	server_resume_accept(evutil_socket_t, short, void *);
static void	server_sigterm(evutil_socket_t, short, void *);
static void	server_sigusr2(evutil_socket_t, short, void *);
static void	server_grace_over(evutil_socket_t, short, void *);
static void	server_maybe_exit(void);
static void	addr_unmap(struct sockaddr_storage *);
static struct smtp_ipcount *ipcount_get(const struct sockaddr_storage *);
static void	ipcount_put(struct smtp_ipcount *);
static void	ipcount_gc(struct smtp_ipcount *);
static size_t	compute_linecap(const struct config *);
static void	server_sweep(evutil_socket_t, short, void *);
static struct cmd_clock **clock_slot(const struct smtp_session *);
static void	clock_forget(const struct smtp_session *);

/* when the command a session is sending began to be awaited */
struct cmd_clock {
	struct cmd_clock		*next;
	const struct smtp_session	*s;
	unsigned			 ncmds;	/* s->ncmds at since */
	time_t				 since;
};

struct smtp_server	*smtp_srv;
static struct smtp_server srv_storage;
static struct smtp_ipcount *ipc_table[IPC_BUCKETS];
static struct event	**lev;		/* one per listener, NULL once closed */
static size_t		 nlev;
static struct event	*resume_ev;
static struct event	*grace_ev;
static int		 reserve_fd = -1;	/* spare for EMFILE */
static struct event	*sweep_ev;
static struct cmd_clock	*clock_table[CLOCK_BUCKETS];

/*
 * smtp_in_run - the smtp-in role's main; never returns.
 */
void
smtp_in_run(struct role_ctx *ctx)
{
	struct smtp_server	*srv = &srv_storage;
	struct event		*ev;
	sigset_t		 set;
	size_t			 i;

	log_setproc("smtp-in");
	/* a client closing early must cost an EPIPE, not the process */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &set, NULL);

	smtp_srv = srv;
	srv->conf = ctx->conf;
	srv->ctx = ctx;
	srv->tls_ctx = ctx->tls_ctx;
	TAILQ_INIT(&srv->sessions);
	srv->linecap = compute_linecap(srv->conf);
	srv->cmd_tv.tv_sec = srv->conf->command_timeout > 0 ?
	    srv->conf->command_timeout : DEF_CMD_TIMEOUT;
	srv->data_tv.tv_sec = srv->conf->data_timeout > 0 ?
	    srv->conf->data_timeout : DEF_DATA_TIMEOUT;
	if (smtp_ehlo_build(srv) == -1)
		fatalx("smtp-in: cannot build the EHLO reply");
	/* made before chroot by smtp_in_preinit (resolver), or now */
	srv->base = smtp_in_base(srv->conf);
	if (smtp_commit_init(srv->base, srv->conf->commit_threads) == -1)
		fatal("smtp-in: commit threads");
	if (srv->conf->authdb != NULL && smtp_auth_init(srv->base) == -1)
		fatal("smtp-in: auth threads");
	if (smtp_disk_init(srv->base, srv->conf) == -1)
		fatalx("smtp-in: cannot watch the spool's free space");

	nlev = ctx->nlisteners;
	if ((lev = calloc(nlev ? nlev : 1, sizeof(*lev))) == NULL)
		fatal("smtp-in: calloc");
	for (i = 0; i < nlev; i++) {
		if (fd_nonblock(ctx->listeners[i].fd) == -1)
			fatal("smtp-in: listener %zu", i);
		lev[i] = event_new(srv->base, ctx->listeners[i].fd,
		    EV_READ | EV_PERSIST, server_accept, &ctx->listeners[i]);
		if (lev[i] == NULL || event_add(lev[i], NULL) == -1)
			fatalx("smtp-in: cannot watch listener %zu", i);
	}
	if ((ev = evsignal_new(srv->base, SIGTERM, server_sigterm, NULL)) ==
	    NULL || evsignal_add(ev, NULL) == -1 ||
	    (ev = evsignal_new(srv->base, SIGINT, server_sigterm, NULL)) ==
	    NULL || evsignal_add(ev, NULL) == -1 ||
	    (ev = evsignal_new(srv->base, SIGUSR2, server_sigusr2, NULL)) ==
	    NULL || evsignal_add(ev, NULL) == -1)
		fatalx("smtp-in: cannot install signal events");
	if ((resume_ev = evtimer_new(srv->base, server_resume_accept,
	    NULL)) == NULL)
		fatalx("smtp-in: evtimer_new");
	if ((sweep_ev = event_new(srv->base, -1, EV_PERSIST, server_sweep,
	    NULL)) == NULL || event_add(sweep_ev,
	    &(struct timeval){ SWEEP_INTERVAL, 0 }) == -1)
		fatalx("smtp-in: cannot start the deadline sweep");
	/* cwd is the spool, chrooted or not */
	if ((reserve_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		fatal("smtp-in: reserve descriptor");

	log_info("event=start listeners=%zu tls=%s max_connections=%zu "
	    "max_connections_per_ip=%zu auth_users=%zu commit_threads=%zu",
	    nlev, srv->tls_ctx ? "yes" : "no", srv->conf->max_connections,
	    srv->conf->max_connections_per_ip, srv->conf->authdb != NULL ?
	    authdb_count(srv->conf->authdb) : 0, srv->conf->commit_threads);
	if (event_base_dispatch(srv->base) == -1)
		fatalx("smtp-in: event loop failed");
	log_info("event=stop sessions=%zu", srv->nsessions);
	exit(0);
}

/* server_accept - take the pending connections of one listener */
static void
server_accept(evutil_socket_t fd, short what, void *arg)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 cfd, i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		sslen = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd != -1) {
			server_new_conn(arg, cfd, &ss);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EAGAIN:
			return;
		case EMFILE:
		case ENFILE:
			if (server_refuse_nofile(fd) == 0)
				continue;
			log_warn("event=error error=accept");
			server_pause_accept();
			return;
		case ENOBUFS:
		case ENOMEM:
			log_warn("event=error error=accept");
			server_pause_accept();
			return;
		default:
			log_warn("event=error error=accept");
			return;
		}
	}
}

/* server_new_conn - limits, then a session with its greeting */
static void
server_new_conn(struct listener *l, int fd, struct sockaddr_storage *ss)
{
	struct smtp_server	*srv = smtp_srv;
	struct smtp_session	*s;
	struct smtp_ipcount	*ipc;
	struct bufferevent	*bev;

	STATS_ADD(conn_total, 1);
	addr_unmap(ss);
	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
		close(fd);
		return;
	}
	if (srv->conf->max_connections != 0 &&
	    srv->nsessions >= srv->conf->max_connections) {
		server_refuse(fd, ss, "max_connections", REFUSE_BUSY);
		return;
	}
	if ((ipc = ipcount_get(ss)) == NULL) {
		log_warn("event=error error=alloc");
		close(fd);
		return;
	}
	if (srv->conf->max_connections_per_ip != 0 &&
	    ipc->n >= srv->conf->max_connections_per_ip) {
		server_refuse(fd, ss, "max_connections_per_ip", REFUSE_BUSY);
		return;
	}
	/* TCP_NODELAY comes from the listener (master.c listen_bind) */
	if ((s = smtp_session_new(fd, (struct sockaddr *)ss, l->kind)) ==
	    NULL) {
		log_warn("event=error error=alloc");
		ipcount_gc(ipc);
		close(fd);
		return;
	}
	ipc->n++;
	s->ipc = ipc;
	if (l->kind == LK_SMTPS) {
		if (srv->tls_ctx == NULL) {
			log_warnx("event=error error=smtps_without_tls "
			    "listener=%s", l->addr ? l->addr->text : "?");
			bev = NULL;
		} else if ((bev = smtp_tls_bev(s, fd)) != NULL) {
			s->fd = -1;
			s->flags |= SF_HANDSHAKE;
		}
	} else
		bev = bufferevent_socket_new(srv->base, fd, 0);
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->nsessions++;
	STATS_ADD(conn_current, 1);
	if (bev == NULL) {
		s->reason = "setup";
		smtp_session_free(s);
		return;
	}
	smtp_session_start(s, bev);
}

/*
 * server_refuse_nofile - out of descriptors: give the reserve to one
 * pending client for its 421.  0 if a client was refused (try the
 * next), -1 if not (none pending, or the reserve is gone: pause).
 */
static int
server_refuse_nofile(int lfd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	int			 cfd;

	if (reserve_fd == -1)
		return -1;
	close(reserve_fd);
	cfd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd != -1) {
		addr_unmap(&ss);
		server_refuse(cfd, &ss, "out_of_files", REFUSE_NOFILE);
	}
	reserve_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return cfd != -1 && reserve_fd != -1 ? 0 : -1;
}

/* server_refuse - over a limit: one 421 (msg), no session */
static void
server_refuse(int fd, const struct sockaddr_storage *ss, const char *why,
    const char *msg)
{
	char			 text[INET6_ADDRSTRLEN];
	const void		*a;

	a = ss->ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)(const void *)ss)->
	    sin6_addr :
	    (const void *)&((const struct sockaddr_in *)(const void *)ss)->
	    sin_addr;
	if (inet_ntop(ss->ss_family, a, text, sizeof(text)) == NULL)
		memcpy(text, "unknown", sizeof("unknown"));
	(void)send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
	STATS_ADD(conn_refused, 1);
	log_info("event=refused client=%s reason=%s", text, why);
}

/*
 * smtp_server_session_gone - a session was freed: counts, and the exit
 * of a draining or stopping process once the last one is gone.
 */
void
smtp_server_session_gone(struct smtp_session *s)
{
	TAILQ_REMOVE(&smtp_srv->sessions, s, entry);
	smtp_srv->nsessions--;
	STATS_SUB(conn_current, 1);
	if (s->ipc != NULL)
		ipcount_put(s->ipc);
	s->ipc = NULL;
	clock_forget(s);
	server_maybe_exit();
}

static void
server_maybe_exit(void)
{
	if ((smtp_srv->draining || smtp_srv->stopping) &&
	    smtp_srv->nsessions == 0)
		event_base_loopexit(smtp_srv->base, NULL);
}

/* server_close_listeners - stop accepting for good */
static void
server_close_listeners(void)
{
	size_t	 i;

	evtimer_del(resume_ev);
	for (i = 0; i < nlev; i++) {
		if (lev[i] == NULL)
			continue;
		event_free(lev[i]);
		lev[i] = NULL;
		close(smtp_srv->ctx->listeners[i].fd);
	}
}

/* server_pause_accept - out of descriptors: retry in a second */
static void
server_pause_accept(void)
{
	struct timeval	 tv = { ACCEPT_PAUSE, 0 };
	size_t		 i;

	for (i = 0; i < nlev; i++)
		if (lev[i] != NULL)
			event_del(lev[i]);
	evtimer_add(resume_ev, &tv);
}

static void
server_resume_accept(evutil_socket_t fd, short what, void *arg)
{
	size_t	 i;

	for (i = 0; i < nlev; i++)
		if (lev[i] != NULL)
			event_add(lev[i], NULL);
}

/* server_sigterm - stop now (role.h) */
static void
server_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct smtp_session	*s, *next;
	struct timeval		 tv = { SMTP_SHUTDOWN_GRACE, 0 };

	if (smtp_srv->stopping)
		return;
	smtp_srv->stopping = 1;
	log_info("event=shutdown signal=%d sessions=%zu", (int)sig,
	    smtp_srv->nsessions);
	server_close_listeners();
	for (s = TAILQ_FIRST(&smtp_srv->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		smtp_session_shutdown(s);
	}
	if (smtp_srv->nsessions == 0) {
		event_base_loopexit(smtp_srv->base, NULL);
		return;
	}
	if ((grace_ev = evtimer_new(smtp_srv->base, server_grace_over,
	    NULL)) == NULL || evtimer_add(grace_ev, &tv) == -1)
		event_base_loopexit(smtp_srv->base, NULL);
}

/* server_grace_over - clients that do not read their 421 */
static void
server_grace_over(evutil_socket_t fd, short what, void *arg)
{
	log_info("event=stop sessions=%zu reason=grace_over",
	    smtp_srv->nsessions);
	exit(0);
}

/* server_sigusr2 - drain (role.h) */
static void
server_sigusr2(evutil_socket_t sig, short what, void *arg)
{
	if (smtp_srv->draining || smtp_srv->stopping)
		return;
	smtp_srv->draining = 1;
	log_info("event=drain sessions=%zu", smtp_srv->nsessions);
	server_close_listeners();
	server_maybe_exit();
}

/*
 * addr_unmap - ::ffff:a.b.c.d from a dual-stack listener becomes the
 * IPv4 address it is, for relay_networks, limits and logs.
 */
static void
addr_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)ss;
	struct sockaddr_in	 sin;

	if (ss->ss_family != AF_INET6 ||
	    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = sin6->sin6_port;
	memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
}

/* ipcount_get - the count entry of an address, created at zero */
static struct smtp_ipcount *
ipcount_get(const struct sockaddr_storage *ss)
{
	struct smtp_ipcount	*e;
	uint8_t			 key[16];
	uint32_t		 h = 2166136261u;
	size_t			 i;

	memset(key, 0, sizeof(key));
	if (ss->ss_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)ss)->
		    sin6_addr, 16);
	else
		memcpy(key, &((const struct sockaddr_in *)(const void *)ss)->
		    sin_addr, 4);
	for (i = 0; i < sizeof(key); i++)
		h = (h ^ key[i]) * 16777619u;
	h %= IPC_BUCKETS;
	for (e = ipc_table[h]; e != NULL; e = e->next)
		if (e->family == ss->ss_family &&
		    memcmp(e->addr, key, sizeof(key)) == 0)
			return e;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->family = ss->ss_family;
	memcpy(e->addr, key, sizeof(key));
	e->next = ipc_table[h];
	ipc_table[h] = e;
	return e;
}

/* ipcount_put - one session less */
static void
ipcount_put(struct smtp_ipcount *ipc)
{
	if (ipc->n == 0)
		panic("ipcount_put: count already zero");
	ipc->n--;
	ipcount_gc(ipc);
}

/* ipcount_gc - free an entry without sessions */
static void
ipcount_gc(struct smtp_ipcount *ipc)
{
	struct smtp_ipcount	**pp;
	uint32_t		 h = 2166136261u;
	size_t			 i;

	if (ipc->n > 0)
		return;
	for (i = 0; i < sizeof(ipc->addr); i++)
		h = (h ^ ipc->addr[i]) * 16777619u;
	h %= IPC_BUCKETS;
	for (pp = &ipc_table[h]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ipc) {
			*pp = ipc->next;
			free(ipc);
			return;
		}
	}
	panic("ipcount_gc: entry not in its bucket");
}

/*
 * server_sweep - the command deadline (see the top): a session whose
 * command count has not moved for command_timeout while it was the
 * client's turn gets 421 and is closed.
 */
static void
server_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s;
	struct cmd_clock	**pp, *c;
	time_t			 now = time(NULL);

	TAILQ_FOREACH(s, &smtp_srv->sessions, entry) {
		if (s->bev == NULL || s->state == SMTP_ST_CLOSING)
			continue;
		if ((c = *(pp = clock_slot(s))) == NULL) {
			if ((c = calloc(1, sizeof(*c))) == NULL)
				continue;	/* timed from the next sweep */
			c->s = s;
			c->ncmds = s->ncmds;
			c->since = now;
			*pp = c;
			continue;
		}
		if (c->ncmds != s->ncmds ||
		    !(ST(s->state) & (ST_COMMANDS | ST(SMTP_ST_AUTH_INPUT) |
		    ST(SMTP_ST_DATA) | ST(SMTP_ST_BDAT))) ||
		    (s->flags & (SF_POLWAIT | SF_TARPIT | SF_GREETWAIT |
		    SF_OUTFULL))) {
			c->ncmds = s->ncmds;
			c->since = now;
			continue;
		}
		if (ST(s->state) & (ST(SMTP_ST_DATA) | ST(SMTP_ST_BDAT))) {
			/*
			 * The content: data_timeout, plus one second per
			 * min_data_rate octets received (as Postfix's
			 * smtpd_min_data_rate), so a trickle is cut while
			 * a slow but honest link is not.
			 */
			if (smtp_srv->conf->min_data_rate == 0 ||
			    now - c->since <= smtp_srv->data_tv.tv_sec +
			    (time_t)((s->txn != NULL ? s->txn->size : 0) /
			    smtp_srv->conf->min_data_rate))
				continue;
		} else if (now - c->since <= smtp_srv->cmd_tv.tv_sec)
			/* "<=": since is rounded down, and an idle client is
			   the read timeout's, which logs it as such */
			continue;
		log_info("event=timeout client=%s sid=%lu state=%s "
		    "detail=%s", s->addrtext, s->id,
		    smtp_state_name(s->state), ST(s->state) &
		    (ST(SMTP_ST_DATA) | ST(SMTP_ST_BDAT)) ? "data_deadline" :
		    "command_deadline");
		s->reason = "timeout";
		smtp_close(s, "421 4.4.2 Timeout");
		/* whatever still trickles in is not read any more */
		bufferevent_disable(s->bev, EV_READ);
	}
}

/* clock_slot - where the clock of s is, or would be appended */
static struct cmd_clock **
clock_slot(const struct smtp_session *s)
{
	struct cmd_clock	**pp;
	uintptr_t		 h = (uintptr_t)s;

	h = (h >> 4) ^ (h >> 16);
	for (pp = &clock_table[h % CLOCK_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->next)
		if ((*pp)->s == s)
			break;
	return pp;
}

/* clock_forget - the session is gone */
static void
clock_forget(const struct smtp_session *s)
{
	struct cmd_clock	**pp, *c;

	if ((c = *(pp = clock_slot(s))) == NULL)
		return;
	*pp = c->next;
	free(c);
}

/*
 * compute_linecap - the longest command line the read buffer may hold
 * before its CRLF: 512 octets (RFC 5321 4.5.3.1.4), or a listed verb
 * with its longest argument if that is more (AUTH), never more than
 * half the input watermark (so that the cap is always reachable).
 */
static size_t
compute_linecap(const struct config *conf)
{
	size_t	 cap = SMTP_LINE_MAX, n, i;

	for (i = 0; i < conf->nfilter; i++) {
		n = strlen(conf->filter[i].verb) + 1 + conf->filter[i].maxarg +
		    2;
		if (conf->filter[i].maxarg < SMTP_READ_HIGH && n > cap)
			cap = n;
	}
	if (cap > SMTP_READ_HIGH / 2)
		cap = SMTP_READ_HIGH / 2;
	return cap;
}
