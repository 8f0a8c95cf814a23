/*
 * out_session.c - one SMTP client connection of smtp-out.
 *
 * A session belongs to a destination.  It resolves it (out_resolve.c),
 * then tries the targets in order until one greets it, takes EHLO (or
 * HELO after a 5xx to EHLO) and, as the destination's TLS policy wants,
 * STARTTLS and EHLO again (RFC 3207 4.2).  Then it asks for work
 * (out_sess_ready) and runs one transaction per job:
 *
 *   MAIL FROM  [SIZE= BODY= SMTPUTF8]  (RFC 1870, 6152, 3030, 6531)
 *   RCPT TO    one per recipient
 *   DATA       dot-stuffed body, ".", or BDAT n LAST with CHUNKING
 *
 * With PIPELINING, MAIL, every RCPT and DATA leave in one write and
 * their replies are matched in order (RFC 2920 3.1); else one command
 * per reply.  The reply waits are the timeouts of RFC 5321 4.5.3.2 from
 * the config; a write that makes no progress for smtp_data_xfer_timeout
 * is the bufferevent write timeout.
 *
 * The body is read from the message file with pread() in OS_CHUNK
 * pieces and queued only while the output holds less than OS_OUT_HIGH,
 * so a large message is never in memory whole.  A file of up to 64 KiB
 * was read whole with its envelope (spool_msg_load) and is taken from
 * that copy, within OUT_MEM_KEEP octets for all jobs (smtp_out.c).  For Internet delivery
 * of mail from inside (OUTF_INTERNET | OUTF_PRIVATE with
 * hide_internal_hosts) every Received field of the header section is
 * left out and one naming only this host is put first (DESIGN.md
 * principle 3).
 *
 * Failure grades:
 * - before the session is ready, a target that cannot be reached,
 *   refuses us, times out or cannot give the TLS the policy asks for is
 *   logged (event=smtp_fail) and the next target is tried; the last
 *   error goes to out_sess_failed() when none is left.  Under
 *   encrypt/verify, MAIL is never sent in clear;
 * - in a transaction, every reply becomes the result of the recipients
 *   it concerns; a 421, a lost connection, a timeout or a malformed
 *   reply gives every recipient without a result 4xx and ends the
 *   session.
 *
 * Invariants:
 * - every call into smtp_out.c (out_sess_*, out_job_done) is made from
 *   an event callback, never from inside an osess_*() call: decisions
 *   taken there are carried out through s->defer;
 * - after a call into smtp_out.c the callback returns without touching
 *   s again, except where smtp_out.h says s stays (out_job_done);
 * - input is bounded by OS_REPLY_MAX (a whole reply at its limits), the
 *   output by OS_OUT_HIGH plus one chunk;
 * - s->bev owns the socket once TLS is up (s->fd is then -1); the plain
 *   bufferevent does not, so that STARTTLS can take the socket over.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/outbound.h"
#include "../common/spool.h"
#include "../smtp_in/smtp_parse.h"	/* enum smtp_body values only */
#include "smtp_out.h"

#define OS_CHUNK	(64 * 1024)	/* one pread() of the body */
#define OS_CARRY	64		/* a header line start held back */
#define OS_OUT_HIGH	(4 * OS_CHUNK)	/* body queued ahead of the socket */
#define OS_OUT_LOW	OS_CHUNK	/* refill below this */
#define OS_REPLY_MAX	(OUT_REPLY_LINES_MAX * (OUT_REPLY_LINE_MAX + 2))
#define OS_QUIT_WAIT	2		/* s for QUIT to leave */
#define OS_PEER_MAX	(DNS_NAME_MAX + INET6_ADDRSTRLEN + 3)

/* deferred work (s->defer) */
#define D_RESOLVED	0x01	/* targets known: connect */
#define D_JOB		0x02	/* job decided without sending: done */
#define D_GONE		0x04	/* closed: out_sess_gone and free */

enum os_state {
	OS_RESOLVE,	/* waiting for the targets */
	OS_CONNECT,	/* TCP connect in progress */
	OS_GREETING,
	OS_EHLO,
	OS_HELO,
	OS_STARTTLS,
	OS_HANDSHAKE,
	OS_READY,	/* can take a job (or idle in the cache) */
	OS_TXN,		/* MAIL, RCPT, DATA replies */
	OS_BODY,	/* the content is being queued */
	OS_DOTSEND,	/* all queued, not yet written */
	OS_DOT,		/* waiting for the final reply */
	OS_DISCARD,	/* "." after a 354 nobody needs (RFC 2920 3.1) */
	OS_RSET,
	OS_QUIT,
	OS_CLOSED,	/* out_sess_gone() comes through s->defer */
	OS_COUNT
};

/* how a connection broke (conn_lost) */
enum os_lost {
	LOST_EOF,
	LOST_TIMEOUT,
	LOST_MALFORMED
};

/* the content as it goes out */
struct obody {
	off_t		 off;		/* next file offset to read */
	off_t		 end;		/* end of the content in the file */
	size_t		 count;		/* octets produced, unstuffed */
	int		 stuff;		/* DATA: dot-stuffing */
	int		 inhdr;		/* in a header section we filter */
	int		 bol;		/* input at a line start */
	int		 drop;		/* the current line is left out */
	int		 inrcv;		/* the current field is Received */
	int		 obol;		/* output at a line start */
	int		 err;		/* no memory for the output */
	size_t		 ncarry;	/* octets held at the front of buf */
	char		*buf;		/* OS_CHUNK + OS_CARRY, malloc'd */
	const char	*mem;		/* the file in memory (ojob.mem) */
};

struct osess {
	struct smtp_out	*so;
	struct odest	*dest;
	enum os_state	 state;
	struct oresolve	*res;
	int		 resolved;
	struct otarget	 t[OUT_TARGETS_MAX];
	size_t		 nt, cur;
	unsigned	 failcode;	/* last error, for out_sess_failed */
	char		 failtext[OUT_TEXT_MAX];

	int		 fd;		/* plain socket, -1 when bev owns it */
	struct bufferevent *bev;
	struct ssl_st	*ssl;		/* owned by bev once TLS is up */
	int		 notls;		/* "may": this target again in clear */
	int		 tls;		/* TLS is up */
	struct event	*timer;		/* reply wait, connect, idle, QUIT */
	struct event	*defer;
	int		 dwhat;		/* D_* */
	const char	*phase;		/* "while ..." of a timeout or loss */
	time_t		 since;		/* connected */
	int		 announced;	/* event=smtp_connect logged */
	int		 broken;	/* lost while D_JOB was pending */
	struct oehlo	 ehlo;
	char		 addr[INET6_ADDRSTRLEN];
	char		 peer[OS_PEER_MAX];	/* NAME[ADDR] */
	char		 relay[OUT_RELAY_MAX];	/* NAME[ADDR]:PORT */
	char		 tlstext[160];

	/* the transaction */
	struct ojob	*job;
	size_t		 ncmd, nsent, nrecv, naccepted;
	uint8_t		 accepted[OUT_RCPT_MAX];
	int		 chunking;	/* BDAT instead of DATA */
	int		 mailfail;	/* MAIL refused: mcode, mtext */
	unsigned	 mcode;
	char		 mtext[OUT_TEXT_MAX];
	size_t		 outsize;	/* content octets we send */
	struct obody	 body;
};

static void	 enter(struct osess *, enum os_state);
static void	 sess_resolved(void *, const struct otarget *, size_t,
		    unsigned, const char *);
static void	 sess_defer(evutil_socket_t, short, void *);
static void	 sess_later(struct osess *, int);
static void	 sess_timer(evutil_socket_t, short, void *);
static void	 sess_readcb(struct bufferevent *, void *);
static void	 sess_writecb(struct bufferevent *, void *);
static void	 sess_eventcb(struct bufferevent *, short, void *);
static void	 sess_gone(struct osess *);
static void	 sess_free(struct osess *);
static void	 sess_fail(struct osess *);
static void	 sess_ready(struct osess *);
static void	 sess_quit(struct osess *);
static void	 arm(struct osess *, time_t, const char *);
static void	 setcbs(struct osess *);
static void	 conn_close(struct osess *);
static void	 target_next(struct osess *);
static int	 target_connect(struct osess *);
static void	 target_fail(struct osess *, unsigned, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 conn_lost(struct osess *, enum os_lost);
static int	 on_reply(struct osess *, const struct oreply *,
		    const struct oehlo *);
static int	 on_greeting(struct osess *, const struct oreply *);
static int	 on_ehlo(struct osess *, const struct oreply *,
		    const struct oehlo *);
static int	 tls_decide(struct osess *);
static int	 on_starttls(struct osess *, const struct oreply *);
static void	 tls_start(struct osess *);
static void	 tls_done(struct osess *);
static void	 tls_failed(struct osess *, unsigned long);
static int	 loops(struct osess *, const char *, size_t);
static const char *helo_name(const struct osess *);
static void	 send_line(struct osess *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 txn_check(struct osess *, struct ojob *);
static int	 txn_size(struct osess *, struct ojob *);
static void	 txn_send(struct osess *, size_t);
static void	 txn_arm(struct osess *);
static int	 on_txn(struct osess *, const struct oreply *);
static int	 on_data(struct osess *, const struct oreply *);
static int	 on_final(struct osess *, const struct oreply *);
static void	 txn_rset(struct osess *);
static void	 txn_lost(struct osess *, const char *);
static void	 job_finish(struct osess *);
static void	 res_all(struct osess *, int, unsigned, const char *);
static void	 res_set(struct osess *, size_t, unsigned, const char *);
static unsigned	 res_reply(struct osess *, const struct oreply *, int,
		    const char *, char *);
static void	 enh_of(const char *, unsigned, char *, size_t);
static int	 body_start(struct osess *);
static int	 body_feed(struct osess *);
static void	 body_init(struct obody *, const struct ojob *, int, int);
static int	 body_read(struct obody *, int, struct evbuffer *);
static size_t	 body_filter(struct obody *, const char *, size_t, int,
		    struct evbuffer *);
static void	 body_emit(struct obody *, const char *, size_t,
		    struct evbuffer *);
static int	 is_received(const char *, size_t);
static size_t	 received_line(const struct osess *, char *, size_t);

static const char *const state_names[OS_COUNT] = {
	[OS_RESOLVE] = "resolve",
	[OS_CONNECT] = "connect",
	[OS_GREETING] = "greeting",
	[OS_EHLO] = "ehlo",
	[OS_HELO] = "helo",
	[OS_STARTTLS] = "starttls",
	[OS_HANDSHAKE] = "handshake",
	[OS_READY] = "ready",
	[OS_TXN] = "txn",
	[OS_BODY] = "body",
	[OS_DOTSEND] = "dotsend",
	[OS_DOT] = "dot",
	[OS_DISCARD] = "discard",
	[OS_RSET] = "rset",
	[OS_QUIT] = "quit",
	[OS_CLOSED] = "closed",
};

/* ---- public --------------------------------------------------------- */

/* osess_new - see smtp_out.h */
struct osess *
osess_new(struct smtp_out *so, struct odest *d)
{
	struct osess	*s;
	struct oresolve	*r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->so = so;
	s->dest = d;
	s->fd = -1;
	enter(s, OS_RESOLVE);
	s->failcode = 451;
	out_fmt(s->failtext, sizeof(s->failtext), "4.4.1 no host of %s could "
	    "be tried", d->name);
	s->timer = evtimer_new(so->base, sess_timer, s);
	s->defer = event_new(so->base, -1, 0, sess_defer, s);
	if (s->timer == NULL || s->defer == NULL)
		goto fail;
	if ((r = oresolve_start(so, d, sess_resolved, s)) == NULL)
		goto fail;
	/* an answer from the resolver's cache may have come already */
	if (!s->resolved)
		s->res = r;
	return s;
fail:
	sess_free(s);
	return NULL;
}

/* osess_dest - see smtp_out.h */
struct odest *
osess_dest(const struct osess *s)
{
	return s->dest;
}

/* osess_age - see smtp_out.h */
time_t
osess_age(const struct osess *s)
{
	return s->since == 0 ? 0 : time(NULL) - s->since;
}

/* osess_run - see smtp_out.h */
void
osess_run(struct osess *s, struct ojob *j)
{
	size_t	 k;

	if (s->state != OS_READY || s->job != NULL)
		panic("osess_run: dest=%s session in state %d", s->dest->name,
		    (int)s->state);
	evtimer_del(s->timer);
	s->job = j;
	s->ncmd = s->nsent = s->nrecv = s->naccepted = 0;
	s->mailfail = 0;
	memset(s->accepted, 0, sizeof(s->accepted));
	out_fmt(j->relay, sizeof(j->relay), "%s", s->relay);
	out_fmt(j->tls, sizeof(j->tls), "%s", s->tlstext);
	for (k = 0; k < j->n; k++)
		j->res[k].code = 0;
	if (txn_check(s, j) == -1) {
		/* decided without a word to the server */
		sess_later(s, D_JOB);
		return;
	}
	s->chunking = s->ehlo.chunking;
	s->ncmd = 1 + j->n + (s->chunking ? 0 : 1);
	enter(s, OS_TXN);
	if (s->ehlo.pipelining) {
		/* RFC 2920 3.1: MAIL, RCPT... and DATA in one group */
		for (k = 0; k < s->ncmd; k++)
			txn_send(s, k);
	} else
		txn_send(s, 0);
	txn_arm(s);
}

/* osess_idle - see smtp_out.h */
void
osess_idle(struct osess *s, time_t secs)
{
	if (s->state != OS_READY)
		panic("osess_idle: dest=%s session in state %d", s->dest->name,
		    (int)s->state);
	arm(s, secs, "idle");
}

/* osess_close - see smtp_out.h */
void
osess_close(struct osess *s)
{
	switch (s->state) {
	case OS_QUIT:
	case OS_CLOSED:
		return;
	case OS_READY:
		if (s->job == NULL) {
			sess_quit(s);
			return;
		}
		/* an early decision is pending: D_JOB answers it */
		break;
	case OS_RESOLVE:
		if (s->res != NULL)
			oresolve_cancel(s->res);
		s->res = NULL;
		break;
	default:
		if (s->job != NULL)
			res_all(s, 0, 451, "4.3.2 delivery stopped before "
			    "the end of the transaction");
		break;
	}
	evtimer_del(s->timer);
	conn_close(s);
	enter(s, OS_CLOSED);
	sess_later(s, (s->job != NULL ? D_JOB : 0) | D_GONE);
}

/* out_fmt - see smtp_out.h */
void
out_fmt(char *out, size_t outsz, const char *f, ...)
{
	va_list	 ap;
	int	 r;

	if (outsz == 0)
		return;
	va_start(ap, f);
	r = vsnprintf(out, outsz, f, ap);
	va_end(ap);
	if (r < 0)
		out[0] = '\0';
	else if ((size_t)r >= outsz && outsz > 4)
		memcpy(out + outsz - 4, "...", 4);
}

/* enter - the one place where the state changes (STYLE.md 7) */
static void
enter(struct osess *s, enum os_state st)
{
	if ((unsigned)st >= OS_COUNT)
		panic("out_session: bad state %d", (int)st);
	if (s->state != st)
		log_debug("event=smtp_state dest=%s relay=%s %s -> %s",
		    s->dest->name, s->relay[0] != '\0' ? s->relay : "none",
		    state_names[s->state], state_names[st]);
	s->state = st;
}

/* ---- resolving, deferred work, timers ---------------------------- */

/* sess_resolved - the targets, or why there are none */
static void
sess_resolved(void *arg, const struct otarget *t, size_t n, unsigned code,
    const char *text)
{
	struct osess	*s = arg;

	s->resolved = 1;
	s->res = NULL;
	if (n > OUT_TARGETS_MAX)
		n = OUT_TARGETS_MAX;
	if (n > 0)
		memcpy(s->t, t, n * sizeof(*t));
	s->nt = n;
	if (n == 0) {
		s->failcode = code >= 400 && code <= 599 ? code : 451;
		out_fmt(s->failtext, sizeof(s->failtext), "%s", text != NULL ?
		    text : "4.4.3 no address for the destination");
	}
	sess_later(s, D_RESOLVED);
}

/* sess_later - do what from the event loop */
static void
sess_later(struct osess *s, int what)
{
	s->dwhat |= what;
	event_active(s->defer, EV_TIMEOUT, 1);
}

/* sess_defer - deferred work; see the D_* flags */
static void
sess_defer(evutil_socket_t fd, short ev, void *arg)
{
	struct osess	*s = arg;
	int		 what = s->dwhat;

	s->dwhat = 0;
	if ((what & D_RESOLVED) && s->state == OS_RESOLVE) {
		target_next(s);
		return;
	}
	if (what & D_JOB) {
		job_finish(s);
		if (!(what & D_GONE) && !s->broken) {
			out_sess_ready(s->so, s);
			return;
		}
		what |= D_GONE;
	}
	if (what & D_GONE)
		sess_gone(s);
}

/* arm - the timer for secs, with the phase named in messages */
static void
arm(struct osess *s, time_t secs, const char *phase)
{
	struct timeval	 tv;

	tv.tv_sec = secs;
	tv.tv_usec = 0;
	s->phase = phase;
	evtimer_add(s->timer, &tv);
}

/* sess_timer - a wait ran out */
static void
sess_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct osess	*s = arg;
	char		 text[OUT_TEXT_MAX];

	switch (s->state) {
	case OS_CONNECT:
		target_fail(s, 451, "4.4.1 connect to %s: Connection timed "
		    "out", s->relay);
		return;
	case OS_HANDSHAKE:
		tls_failed(s, 0);
		return;
	case OS_READY:
		/* the cache time is up */
		sess_quit(s);
		return;
	case OS_QUIT:
		sess_gone(s);
		return;
	case OS_CLOSED:
		return;
	default:
		break;
	}
	out_fmt(text, sizeof(text), "4.4.2 conversation with %s timed out %s",
	    s->peer, s->phase);
	if (s->state < OS_READY)
		target_fail(s, 451, "%s", text);
	else
		txn_lost(s, text);
}

/* ---- targets ------------------------------------------------------- */

/* target_next - connect to the next target, or fail the session */
static void
target_next(struct osess *s)
{
	for (; s->cur < s->nt; s->cur++)
		if (target_connect(s) == 0)
			return;
	sess_fail(s);
}

/*
 * target_connect - start a non-blocking connect to s->t[s->cur]; -1
 * when it failed at once (logged, recorded as the last error).
 */
static int
target_connect(struct osess *s)
{
	const struct otarget	*t = &s->t[s->cur];
	const struct config	*c = s->so->conf;
	const void		*a;
	unsigned		 port;
	int			 fd, one = 1;

	memset(&s->ehlo, 0, sizeof(s->ehlo));
	s->tls = 0;
	s->announced = 0;
	if (t->ss.ss_family == AF_INET6) {
		a = &((const struct sockaddr_in6 *)(const void *)&t->ss)->
		    sin6_addr;
		port = ntohs(((const struct sockaddr_in6 *)(const void *)
		    &t->ss)->sin6_port);
	} else {
		a = &((const struct sockaddr_in *)(const void *)&t->ss)->
		    sin_addr;
		port = ntohs(((const struct sockaddr_in *)(const void *)
		    &t->ss)->sin_port);
	}
	if (inet_ntop(t->ss.ss_family, a, s->addr, sizeof(s->addr)) == NULL)
		out_fmt(s->addr, sizeof(s->addr), "unknown");
	out_fmt(s->peer, sizeof(s->peer), "%s[%s]", t->host, s->addr);
	out_fmt(s->relay, sizeof(s->relay), "%s:%u", s->peer, port);
	out_fmt(s->tlstext, sizeof(s->tlstext), "tls=no");

	fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		s->failcode = 451;
		out_fmt(s->failtext, sizeof(s->failtext),
		    "4.4.1 connect to %s: %s", s->relay, strerror(errno));
		log_warnx("event=smtp_fail dest=%s relay=%s reason=\"%s\"",
		    s->dest->name, s->relay, s->failtext);
		return -1;
	}
	s->fd = fd;
	/*
	 * Commands and replies are small and pipelined: without this,
	 * Nagle holds a write back until the peer's delayed ACK (up to
	 * 40 ms per round) - worst with TLS, where one batch can become
	 * several records.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->bev = bufferevent_socket_new(s->so->base, fd,
	    BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL)
		goto fail;
	setcbs(s);
	if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)
	    (const void *)&t->ss, (int)t->sslen) == -1)
		goto fail;
	enter(s, OS_CONNECT);
	arm(s, c->smtp_connect_timeout, "while connecting");
	return 0;
fail:
	s->failcode = 451;
	out_fmt(s->failtext, sizeof(s->failtext), "4.4.1 connect to %s: %s",
	    s->relay, errno != 0 ? strerror(errno) : "failed");
	log_info("event=smtp_fail dest=%s relay=%s reason=\"%s\"",
	    s->dest->name, s->relay, s->failtext);
	conn_close(s);
	return -1;
}

/* setcbs - callbacks, watermarks and the write timeout of s->bev */
static void
setcbs(struct osess *s)
{
	struct timeval	 tv;

	tv.tv_sec = s->so->conf->smtp_data_xfer_timeout;
	tv.tv_usec = 0;
	bufferevent_setcb(s->bev, sess_readcb, sess_writecb, sess_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, OS_REPLY_MAX);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(s->bev, NULL, &tv);
	/* one write per pread() of the body, not four (libevent: 16 KiB) */
	(void)bufferevent_set_max_single_write(s->bev, OS_CHUNK);
}

/*
 * target_fail - this target failed before the session was ready: log,
 * remember it as the last error and go on with the next one.
 */
static void
target_fail(struct osess *s, unsigned code, const char *f, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, f);
	r = vsnprintf(s->failtext, sizeof(s->failtext), f, ap);
	va_end(ap);
	if (r < 0)
		s->failtext[0] = '\0';
	else if ((size_t)r >= sizeof(s->failtext))
		memcpy(s->failtext + sizeof(s->failtext) - 4, "...", 4);
	s->failcode = code;
	log_info("event=smtp_fail dest=%s relay=%s reason=\"%s\"",
	    s->dest->name, s->relay, s->failtext);
	evtimer_del(s->timer);
	conn_close(s);
	s->notls = 0;
	s->cur++;
	target_next(s);
}

/* conn_close - drop the connection (if any) without a word */
static void
conn_close(struct osess *s)
{
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	s->ssl = NULL;
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	free(s->body.buf);
	s->body.buf = NULL;
}

/* sess_fail - no target got us to MAIL: report the last error */
static void
sess_fail(struct osess *s)
{
	evtimer_del(s->timer);
	conn_close(s);
	enter(s, OS_CLOSED);
	if (s->failcode < 400 || s->failcode > 599)
		s->failcode = 451;
	out_sess_failed(s->so, s, s->failcode, s->failtext);
	sess_gone(s);
}

/* sess_gone - tell smtp_out.c and free */
static void
sess_gone(struct osess *s)
{
	enter(s, OS_CLOSED);
	out_sess_gone(s->so, s);
	sess_free(s);
}

static void
sess_free(struct osess *s)
{
	if (s->res != NULL)
		oresolve_cancel(s->res);
	conn_close(s);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->defer != NULL)
		event_free(s->defer);
	free(s);
}

/* sess_quit - QUIT without waiting for its reply, then close */
static void
sess_quit(struct osess *s)
{
	if (s->bev == NULL) {
		enter(s, OS_CLOSED);
		sess_later(s, D_GONE);
		return;
	}
	enter(s, OS_QUIT);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	send_line(s, "QUIT");
	arm(s, OS_QUIT_WAIT, "after QUIT");
}

/* ---- I/O callbacks ------------------------------------------------- */

/* sess_readcb - take every complete reply off the input */
static void
sess_readcb(struct bufferevent *bev, void *arg)
{
	struct osess	*s = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct oreply	 r;
	struct oehlo	 o;
	const char	*p;
	size_t		 len, used;
	int		 rc;

	for (;;) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		if (s->state == OS_QUIT || s->state == OS_CLOSED) {
			evbuffer_drain(in, len);
			return;
		}
		if (len > OS_REPLY_MAX)
			len = OS_REPLY_MAX;
		if ((p = (const char *)evbuffer_pullup(in, (ssize_t)len)) ==
		    NULL)
			return;
		rc = oreply_parse(p, len, &r, &used);
		if (rc == 0 && len < OS_REPLY_MAX)
			return;
		if (rc != 1) {
			conn_lost(s, LOST_MALFORMED);
			return;
		}
		/* the keywords while p is valid; the reply leaves the
		   input before anyone can send the next command */
		if (s->state == OS_EHLO || s->state == OS_HELO)
			oehlo_parse(p, used, &o);
		evbuffer_drain(in, used);
		if (on_reply(s, &r, &o) == 0)
			return;		/* s may be gone */
	}
}

/* sess_writecb - the output drained to its low watermark */
static void
sess_writecb(struct bufferevent *bev, void *arg)
{
	struct osess	*s = arg;

	switch (s->state) {
	case OS_BODY:
		(void)body_feed(s);
		break;
	case OS_DOTSEND:
		if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
			break;
		enter(s, OS_DOT);
		arm(s, s->so->conf->smtp_data_done_timeout, s->chunking ?
		    "while sending BDAT LAST -- message may be sent more than "
		    "once" : "while sending end of data -- message may be "
		    "sent more than once");
		break;
	case OS_QUIT:
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			sess_gone(s);
		break;
	default:
		break;
	}
}

/* sess_eventcb - connected, handshake done, EOF, error or timeout */
static void
sess_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct osess	*s = arg;
	int		 e = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == OS_CONNECT) {
			s->since = time(NULL);
			enter(s, OS_GREETING);
			bufferevent_enable(bev, EV_READ | EV_WRITE);
			arm(s, s->so->conf->smtp_helo_timeout,
			    "while receiving the initial server greeting");
		} else if (s->state == OS_HANDSHAKE)
			tls_done(s);
		return;
	}
	switch (s->state) {
	case OS_CONNECT:
		target_fail(s, 451, "4.4.1 connect to %s: %s", s->relay,
		    e != 0 ? strerror(e) : "Connection refused");
		return;
	case OS_HANDSHAKE:
		tls_failed(s, bufferevent_get_openssl_error(bev));
		return;
	case OS_READY:
	case OS_QUIT:
		/* the server closed an idle connection: not an error */
		evtimer_del(s->timer);
		conn_close(s);
		if (s->job != NULL) {
			s->broken = 1;	/* D_JOB is pending */
			return;
		}
		sess_gone(s);
		return;
	case OS_CLOSED:
		return;
	default:
		break;
	}
	conn_lost(s, (what & BEV_EVENT_TIMEOUT) ? LOST_TIMEOUT : LOST_EOF);
}

/*
 * conn_lost - the connection broke (EOF or error, a write that timed
 * out, a reply over the bounds): next target, or the transaction's end.
 */
static void
conn_lost(struct osess *s, enum os_lost how)
{
	char	 text[OUT_TEXT_MAX];

	switch (how) {
	case LOST_TIMEOUT:
		out_fmt(text, sizeof(text),
		    "4.4.2 conversation with %s timed out %s", s->peer,
		    s->phase);
		break;
	case LOST_MALFORMED:
		out_fmt(text, sizeof(text), "4.5.0 malformed reply from %s %s",
		    s->peer, s->phase);
		break;
	case LOST_EOF:
	default:
		out_fmt(text, sizeof(text), "4.4.2 lost connection with %s %s",
		    s->peer, s->phase);
		break;
	}
	switch (s->state) {
	case OS_CONNECT:
	case OS_GREETING:
	case OS_EHLO:
	case OS_HELO:
	case OS_STARTTLS:
		target_fail(s, 451, "%s", text);
		return;
	case OS_HANDSHAKE:
		tls_failed(s, 0);
		return;
	case OS_READY:
		evtimer_del(s->timer);
		conn_close(s);
		if (s->job != NULL) {
			s->broken = 1;
			return;
		}
		sess_gone(s);
		return;
	case OS_QUIT:
		sess_gone(s);
		return;
	case OS_CLOSED:
		return;
	default:
		txn_lost(s, text);
		return;
	}
}

/*
 * on_reply - one complete reply in the current state (o: its EHLO
 * keywords in OS_EHLO and OS_HELO).  1: go on reading; 0: stop (s may
 * be gone or handed over).
 */
static int
on_reply(struct osess *s, const struct oreply *r, const struct oehlo *o)
{
	switch (s->state) {
	case OS_GREETING:
		return on_greeting(s, r);
	case OS_EHLO:
	case OS_HELO:
		return on_ehlo(s, r, o);
	case OS_STARTTLS:
		return on_starttls(s, r);
	case OS_TXN:
		return on_txn(s, r);
	case OS_DOTSEND:
	case OS_DOT:
		return on_final(s, r);
	case OS_DISCARD:
		/* whatever it says, nothing was meant to be delivered */
		s->nrecv++;
		txn_rset(s);
		return 1;
	case OS_RSET:
		evtimer_del(s->timer);
		if (r->code / 100 != 2) {
			sess_quit(s);
			return 1;
		}
		sess_ready(s);
		return 0;
	case OS_READY:
		/* unasked: a 421 before an idle close, or garbage */
		evtimer_del(s->timer);
		conn_close(s);
		if (s->job != NULL)
			s->broken = 1;
		else
			sess_gone(s);
		return 0;
	case OS_BODY:
		/* a reply before the end of the content */
		s->phase = "while sending message body";
		txn_lost(s, "4.5.0 protocol error: reply before the end of "
		    "the message");
		return 0;
	default:
		return 1;
	}
}

/* ---- greeting, EHLO, STARTTLS ------------------------------------- */

static int
on_greeting(struct osess *s, const struct oreply *r)
{
	char	 text[OUT_TEXT_MAX], enh[16];
	size_t	 n;

	if (r->code / 100 != 2) {
		enh_of(r->text, r->code, enh, sizeof(enh));
		out_fmt(text, sizeof(text), "%s host %s refused to talk to me: "
		    "%u %s", enh, s->peer, r->code, r->text);
		target_fail(s, r->code, "%s", text);
		return 0;
	}
	for (n = 0; r->text[n] != '\0' && r->text[n] != ' '; n++)
		;
	if (loops(s, r->text, n))
		return 0;
	enter(s, OS_EHLO);
	s->phase = "while performing the EHLO handshake";
	send_line(s, "EHLO %s", helo_name(s));
	arm(s, s->so->conf->smtp_helo_timeout, s->phase);
	return 1;
}

/* on_ehlo - the reply to EHLO or HELO */
static int
on_ehlo(struct osess *s, const struct oreply *r, const struct oehlo *o)
{
	char	 text[OUT_TEXT_MAX];
	unsigned code;

	if (r->code / 100 != 2) {
		if (s->state == OS_EHLO && r->code / 100 == 5) {
			/* RFC 5321 3.2: an old server; HELO instead */
			enter(s, OS_HELO);
			s->phase = "while performing the HELO handshake";
			send_line(s, "HELO %s", helo_name(s));
			arm(s, s->so->conf->smtp_helo_timeout, s->phase);
			return 1;
		}
		code = res_reply(s, r, 0, s->state == OS_EHLO ?
		    "EHLO command" : "HELO command", text);
		target_fail(s, code, "%s", text);
		return 0;
	}
	s->ehlo = *o;
	if (s->state == OS_HELO) {
		/* HELO: no service extensions at all */
		memset(&s->ehlo, 0, offsetof(struct oehlo, name));
	}
	if (loops(s, s->ehlo.name, strnlen(s->ehlo.name,
	    sizeof(s->ehlo.name))))
		return 0;
	evtimer_del(s->timer);
	return tls_decide(s);
}

/*
 * tls_decide - after EHLO: STARTTLS as the policy wants, or ready.
 * may: when offered (and not after a failed handshake with this
 * target); encrypt, verify: required, else the target fails.
 */
static int
tls_decide(struct osess *s)
{
	enum outbound_tls	 pol = s->dest->tls;

	if (s->tls) {
		sess_ready(s);
		return 0;
	}
	if (pol == OTLS_MAY && (!s->ehlo.starttls || s->notls ||
	    s->so->ssl_ctx == NULL)) {
		sess_ready(s);
		return 0;
	}
	if (!s->ehlo.starttls) {
		target_fail(s, 454, "4.7.5 TLS is required but was not "
		    "offered by host %s", s->peer);
		return 0;
	}
	if (s->so->ssl_ctx == NULL) {
		target_fail(s, 454, "4.7.5 TLS is required but this host "
		    "has no TLS client context");
		return 0;
	}
	enter(s, OS_STARTTLS);
	send_line(s, "STARTTLS");
	arm(s, s->so->conf->smtp_helo_timeout, "while sending STARTTLS");
	return 1;
}

static int
on_starttls(struct osess *s, const struct oreply *r)
{
	evtimer_del(s->timer);
	if (r->code / 100 == 2) {
		tls_start(s);
		return 0;
	}
	if (s->dest->tls == OTLS_MAY) {
		/* offered, then refused: go on in clear */
		sess_ready(s);
		return 0;
	}
	target_fail(s, 454, "4.7.5 TLS is required but host %s refused "
	    "STARTTLS: %u %s", s->peer, r->code, r->text);
	return 0;
}

/*
 * tls_start - the 220 to STARTTLS is in: the socket goes to a TLS
 * bufferevent.  Anything the server sent after the 220 is dropped
 * (CVE-2011-0411: plaintext injected into the TLS session).
 */
static void
tls_start(struct osess *s)
{
	struct bufferevent	*bev;
	struct ssl_st		*ssl;
	const char		*host = s->t[s->cur].host;

	bufferevent_free(s->bev);
	s->bev = NULL;
	ssl = otls_ssl_new(s->so->ssl_ctx, host, s->dest->tls == OTLS_VERIFY);
	if (ssl == NULL) {
		tls_failed(s, 0);
		return;
	}
	bev = bufferevent_openssl_socket_new(s->so->base, s->fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		tls_failed(s, 0);
		return;
	}
	s->fd = -1;
	s->bev = bev;
	s->ssl = ssl;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	setcbs(s);
	enter(s, OS_HANDSHAKE);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	arm(s, s->so->conf->smtp_helo_timeout,
	    "while performing the TLS handshake");
}

/* tls_done - handshake complete: forget what we knew, EHLO again */
static void
tls_done(struct osess *s)
{
	s->tls = 1;
	otls_text(s->ssl, s->tlstext, sizeof(s->tlstext));
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	enter(s, OS_EHLO);
	s->phase = "while performing the EHLO handshake";
	send_line(s, "EHLO %s", helo_name(s));
	arm(s, s->so->conf->smtp_helo_timeout, s->phase);
}

/*
 * tls_failed - the handshake failed (e: its OpenSSL error, 0 if none).
 * may: the same target once more in clear, as Postfix does; encrypt,
 * verify: this target fails.
 */
static void
tls_failed(struct osess *s, unsigned long e)
{
	char	 why[200];
	int	 cert;

	cert = otls_why(s->ssl, e, why, sizeof(why));
	if (s->dest->tls == OTLS_MAY) {
		log_info("event=smtp_fail dest=%s relay=%s reason=\"TLS "
		    "handshake failed: %s; trying again without TLS\"",
		    s->dest->name, s->relay, why);
		evtimer_del(s->timer);
		conn_close(s);
		s->notls = 1;
		if (target_connect(s) == -1) {
			s->notls = 0;
			s->cur++;
			target_next(s);
		}
		return;
	}
	if (cert)
		target_fail(s, 454, "4.7.5 TLS is required but the certificate "
		    "of host %s did not verify: %s", s->peer, why);
	else
		target_fail(s, 454, "4.7.5 TLS is required but the TLS "
		    "handshake with host %s failed: %s", s->peer, why);
}

/*
 * loops - the server greets or answers EHLO with our own name: the mail
 * would come back here (Postfix: "mail for X loops back to myself").
 * Permanent; the session fails at once.
 */
static int
loops(struct osess *s, const char *name, size_t n)
{
	const char	*me = s->so->conf->hostname;

	if (n == 0 || n != strlen(me) || mem_casecmp(name, me, n) != 0)
		return 0;
	log_info("event=smtp_fail dest=%s relay=%s reason=\"host greeted "
	    "me with my own hostname %s\"", s->dest->name, s->relay, me);
	s->failcode = 554;
	out_fmt(s->failtext, sizeof(s->failtext),
	    "5.4.6 mail for %s loops back to myself", s->dest->name);
	sess_fail(s);
	return 1;
}

/* helo_name - what we call ourselves in EHLO and HELO */
static const char *
helo_name(const struct osess *s)
{
	const struct config	*c = s->so->conf;

	return c->smtp_helo_name[0] != '\0' ? c->smtp_helo_name :
	    c->hostname;
}

/* sess_ready - EHLO done, TLS as wanted: ask for work */
static void
sess_ready(struct osess *s)
{
	evtimer_del(s->timer);
	if (!s->announced) {
		s->announced = 1;
		log_info("event=smtp_connect dest=%s relay=%s %s",
		    s->dest->name, s->relay, s->tlstext);
	}
	enter(s, OS_READY);
	s->phase = "while idle";
	free(s->body.buf);
	s->body.buf = NULL;
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	out_sess_ready(s->so, s);
}

/* send_line - queue one command line with CRLF */
static void
send_line(struct osess *s, const char *f, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	va_start(ap, f);
	(void)evbuffer_add_vprintf(out, f, ap);
	va_end(ap);
	(void)evbuffer_add(out, "\r\n", 2);
}

/* ---- the transaction ----------------------------------------------- */

/*
 * txn_check - what can be decided before a word is sent (RFC 1870,
 * 6152, 3030, 6531): -1 with every result set, 0 to go on.
 */
static int
txn_check(struct osess *s, struct ojob *j)
{
	const struct envelope	*e = &j->env;
	char			 text[OUT_TEXT_MAX];
	size_t			 k;

	for (k = 0; k < j->n; k++)
		if (j->idx[k] >= e->nrcpt) {
			res_all(s, 0, 451, "4.3.0 bad recipient index in the "
			    "job");
			return -1;
		}
	if (txn_size(s, j) == -1) {
		res_all(s, 0, 451, "4.3.0 cannot read the message file");
		return -1;
	}
	if (e->smtputf8 && !s->ehlo.smtputf8) {
		out_fmt(text, sizeof(text), "5.6.7 host %s does not support "
		    "SMTPUTF8 and the message needs it (RFC 6531)", s->peer);
		res_all(s, 0, 553, text);
		return -1;
	}
	if (e->body == BODY_BINARYMIME &&
	    (!s->ehlo.chunking || !s->ehlo.binarymime)) {
		out_fmt(text, sizeof(text), "5.6.3 host %s does not support "
		    "BINARYMIME and CHUNKING, which the message needs "
		    "(RFC 3030)", s->peer);
		res_all(s, 0, 554, text);
		return -1;
	}
	if (e->body == BODY_8BITMIME && !s->ehlo.eightbit) {
		out_fmt(text, sizeof(text), "5.6.3 host %s does not support "
		    "8BITMIME and the message has 8-bit content (RFC 6152)",
		    s->peer);
		res_all(s, 0, 554, text);
		return -1;
	}
	if (s->ehlo.has_size && s->ehlo.size > 0 &&
	    s->outsize > s->ehlo.size) {
		out_fmt(text, sizeof(text), "5.3.4 message size %zu exceeds "
		    "the limit of host %s (%zu)", s->outsize, s->peer,
		    s->ehlo.size);
		res_all(s, 0, 552, text);
		return -1;
	}
	return 0;
}

/*
 * txn_size - the octets we will send: the content, or with the
 * Received fields hidden, what the filter makes of the header section
 * (read once ahead, so that SIZE= and BDAT are exact).
 */
static int
txn_size(struct osess *s, struct ojob *j)
{
	struct obody	 b;
	char		 rcv[512];
	int		 rc, hide;

	hide = (j->flags & OUTF_INTERNET) && (j->flags & OUTF_PRIVATE) &&
	    s->so->conf->hide_internal_hosts;
	s->outsize = j->env.size;
	if (!hide)
		return 0;
	body_init(&b, j, 1, 0);
	if ((b.buf = malloc(OS_CHUNK + OS_CARRY)) == NULL)
		return -1;
	do {
		rc = body_read(&b, j->fd, NULL);
	} while (rc == 1 && b.inhdr);
	free(b.buf);
	if (rc == -1)
		return -1;
	s->outsize = received_line(s, rcv, sizeof(rcv)) + b.count +
	    b.ncarry + (size_t)(b.end - b.off);
	return 0;
}

/* txn_send - command i of the transaction: MAIL, RCPT k, DATA */
static void
txn_send(struct osess *s, size_t i)
{
	const struct ojob	*j = s->job;
	const struct envelope	*e = &j->env;
	char			 size[40];

	if (i >= s->ncmd)
		panic("txn_send: command %zu of %zu", i, s->ncmd);
	s->nsent = i + 1;
	if (i == 0) {
		size[0] = '\0';
		if (s->ehlo.has_size)
			out_fmt(size, sizeof(size), " SIZE=%zu", s->outsize);
		send_line(s, "MAIL FROM:<%s>%s%s%s", e->sender, size,
		    e->body == BODY_BINARYMIME ? " BODY=BINARYMIME" :
		    e->body == BODY_8BITMIME ? " BODY=8BITMIME" : "",
		    e->smtputf8 ? " SMTPUTF8" : "");
	} else if (i <= j->n)
		send_line(s, "RCPT TO:<%s>", e->rcpt[j->idx[i - 1]]);
	else
		send_line(s, "DATA");
}

/* txn_arm - the timeout of the next reply we wait for */
static void
txn_arm(struct osess *s)
{
	const struct config	*c = s->so->conf;

	if (s->nrecv == 0)
		arm(s, c->smtp_mail_timeout, "while sending MAIL FROM");
	else if (s->nrecv <= s->job->n)
		arm(s, c->smtp_rcpt_timeout, "while sending RCPT TO");
	else
		arm(s, c->smtp_data_init_timeout, "while sending DATA "
		    "command");
}

/* on_txn - a reply to MAIL, RCPT or DATA, in order */
static int
on_txn(struct osess *s, const struct oreply *r)
{
	char		 text[OUT_TEXT_MAX];
	unsigned	 code;
	size_t		 i = s->nrecv++, k;

	if (i >= s->nsent) {
		/* more replies than commands */
		s->nrecv--;
		txn_lost(s, "4.5.0 protocol error: unexpected reply");
		return 0;
	}
	if (i == s->ncmd - 1 && !s->chunking)
		return on_data(s, r);
	if (r->code == 421) {
		(void)res_reply(s, r, 0, i == 0 ? "MAIL FROM command" :
		    "RCPT TO command", text);
		txn_lost(s, text);
		return 0;
	}
	if (i == 0) {
		if (r->code / 100 != 2) {
			s->mailfail = 1;
			s->mcode = res_reply(s, r, 0, "MAIL FROM command",
			    s->mtext);
		}
	} else {
		k = i - 1;
		if (s->mailfail)
			res_set(s, k, s->mcode, s->mtext);
		else if (r->code / 100 == 2) {
			s->accepted[k] = 1;
			s->naccepted++;
		} else {
			code = res_reply(s, r, 0, "RCPT TO command", text);
			res_set(s, k, code, text);
		}
	}
	if (s->nrecv < s->nsent) {
		txn_arm(s);
		return 1;
	}
	evtimer_del(s->timer);
	if (s->mailfail) {
		/* without PIPELINING the RCPTs were never sent */
		res_all(s, 0, s->mcode, s->mtext);
		txn_rset(s);
		return 1;
	}
	if (s->nsent < s->ncmd) {
		/* one command per reply */
		if (s->nsent == s->ncmd - 1 && s->naccepted == 0) {
			txn_rset(s);
			return 1;
		}
		txn_send(s, s->nsent);
		txn_arm(s);
		return 1;
	}
	/* CHUNKING: every RCPT answered */
	if (s->naccepted == 0) {
		txn_rset(s);
		return 1;
	}
	if (body_start(s) == -1)
		return 0;
	return 1;
}

/* on_data - the reply to DATA: 354 and the body, or the results */
static int
on_data(struct osess *s, const struct oreply *r)
{
	char		 text[OUT_TEXT_MAX];
	unsigned	 code;

	evtimer_del(s->timer);
	if (r->code == 354) {
		if (s->mailfail || s->naccepted == 0) {
			/* RFC 2920 3.1: an empty message, not ours */
			(void)evbuffer_add(bufferevent_get_output(s->bev),
			    ".\r\n", 3);
			enter(s, OS_DISCARD);
			arm(s, s->so->conf->smtp_data_done_timeout,
			    "while sending end of data");
			return 1;
		}
		return body_start(s) == -1 ? 0 : 1;
	}
	if (s->mailfail) {
		txn_rset(s);
		return 1;
	}
	code = res_reply(s, r, 1, "DATA command", text);
	if (r->code == 421) {
		txn_lost(s, text);
		return 0;
	}
	res_all(s, 1, code, text);
	txn_rset(s);
	return 1;
}

/* on_final - the reply after the content: every accepted recipient */
static int
on_final(struct osess *s, const struct oreply *r)
{
	char		 text[OUT_TEXT_MAX];
	unsigned	 code;

	evtimer_del(s->timer);
	code = res_reply(s, r, 0, s->chunking ? "BDAT command" :
	    "end of DATA command", text);
	if (r->code / 100 != 2 && r->code / 100 != 4 && r->code / 100 != 5)
		code = res_reply(s, r, 1, s->chunking ? "BDAT command" :
		    "end of DATA command", text);
	res_all(s, 1, code, text);
	if (r->code == 421) {
		txn_lost(s, text);
		return 0;
	}
	job_finish(s);
	sess_ready(s);
	return 0;
}

/*
 * txn_rset - the transaction ended without content: every result is
 * known; RSET so that the session can be used again.
 */
static void
txn_rset(struct osess *s)
{
	res_all(s, 0, 451, "4.3.0 no result for this recipient");
	enter(s, OS_RSET);
	send_line(s, "RSET");
	arm(s, s->so->conf->smtp_mail_timeout, "while sending RSET");
	job_finish(s);
}

/*
 * txn_lost - the transaction cannot go on (421, lost connection,
 * timeout, malformed reply, local error): text for every recipient
 * without a result, the job is done and the session ends.
 */
static void
txn_lost(struct osess *s, const char *text)
{
	char	 t[OUT_TEXT_MAX];

	log_info("event=smtp_fail dest=%s relay=%s reason=\"%s\"",
	    s->dest->name, s->relay, text);
	out_fmt(t, sizeof(t), "%s", text);
	if (t[0] != '4')
		t[0] = '4';	/* never a bounce from a broken session */
	res_all(s, 0, 451, t);
	job_finish(s);
	evtimer_del(s->timer);
	conn_close(s);
	sess_gone(s);
}

/* job_finish - hand the job back (every result set) */
static void
job_finish(struct osess *s)
{
	struct ojob	*j = s->job;

	if (j == NULL)
		return;
	res_all(s, 0, 451, "4.3.0 no result for this recipient");
	s->job = NULL;
	out_job_done(s->so, j);
}

/*
 * res_all - code/text for every recipient without a result (accepted:
 * only those whose RCPT was accepted, else all of them).
 */
static void
res_all(struct osess *s, int accepted, unsigned code, const char *text)
{
	size_t	 k;

	if (s->job == NULL)
		return;
	for (k = 0; k < s->job->n; k++)
		if (!accepted || s->accepted[k])
			res_set(s, k, code, text);
}

/* res_set - the result of recipient k, unless it has one */
static void
res_set(struct osess *s, size_t k, unsigned code, const char *text)
{
	struct out_result	*r = &s->job->res[k];

	if (r->code != 0)
		return;
	r->code = code;
	out_fmt(r->text, sizeof(r->text), "%s", text);
}

/*
 * res_reply - the result text of a server reply to cmd, "5.1.1 host
 * NAME[ADDR] said: 550 5.1.1 text (in reply to RCPT TO command)", and
 * its code.  fail: the reply should have been a refusal or 354; a 2xx
 * or 3xx there is a protocol error, answered 451 4.5.0.
 */
static unsigned
res_reply(struct osess *s, const struct oreply *r, int fail,
    const char *cmd, char *out)
{
	char		 enh[16];
	unsigned	 code = r->code;

	if (fail && code < 400) {
		code = 451;
		out_fmt(enh, sizeof(enh), "4.5.0");
	} else
		enh_of(r->text, code, enh, sizeof(enh));
	out_fmt(out, OUT_TEXT_MAX, "%s host %s said: %u%s%s (in reply to %s)",
	    enh, s->peer, r->code, r->text[0] != '\0' ? " " : "", r->text,
	    cmd);
	return code;
}

/*
 * enh_of - the enhanced status code at the front of a reply text if it
 * has one of the reply's class (RFC 3463, RFC 2034), else "X.0.0".
 */
static void
enh_of(const char *t, unsigned code, char *out, size_t outsz)
{
	size_t	 i = 1, part, d;

	if ((unsigned)(t[0] - '0') != code / 100)
		goto derive;
	for (part = 0; part < 2; part++) {
		if (t[i] != '.')
			goto derive;
		i++;
		for (d = 0; t[i] >= '0' && t[i] <= '9'; d++)
			i++;
		if (d == 0 || d > 3)
			goto derive;
	}
	if (t[i] != ' ' && t[i] != '\0')
		goto derive;
	out_fmt(out, outsz, "%.*s", (int)i, t);
	return;
derive:
	out_fmt(out, outsz, "%u.0.0", code / 100);
}

/* ---- the content ---------------------------------------------------- */

/* body_start - every accepted RCPT known and DATA 354 (or BDAT) */
static int
body_start(struct osess *s)
{
	struct ojob	*j = s->job;
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	char		 rcv[512];
	size_t		 n;
	int		 hide;

	hide = (j->flags & OUTF_INTERNET) && (j->flags & OUTF_PRIVATE) &&
	    s->so->conf->hide_internal_hosts;
	body_init(&s->body, j, hide, !s->chunking);
	if ((s->body.buf = malloc(OS_CHUNK + OS_CARRY)) == NULL) {
		s->phase = "while sending message body";
		txn_lost(s, "4.3.0 out of memory");
		return -1;
	}
	if (s->chunking)
		send_line(s, "BDAT %zu LAST", s->outsize);
	if (hide) {
		/* ours first, in place of the fields left out */
		n = received_line(s, rcv, sizeof(rcv));
		body_emit(&s->body, rcv, n, out);
	}
	enter(s, OS_BODY);
	s->phase = "while sending message body";
	bufferevent_setwatermark(s->bev, EV_WRITE, OS_OUT_LOW, 0);
	return body_feed(s);
}

/*
 * body_feed - queue content until the output holds OS_OUT_HIGH or the
 * end is queued ("." for DATA).  -1 when the session ended.
 */
static int
body_feed(struct osess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	struct obody	*b = &s->body;
	int		 rc = 1;

	while (evbuffer_get_length(out) < OS_OUT_HIGH &&
	    (rc = body_read(b, s->job->fd, out)) == 1)
		;
	if (rc == -1 || b->err) {
		log_warn("event=error dest=%s qid=%s error=read_message",
		    s->dest->name, s->job->env.qid);
		txn_lost(s, "4.3.0 cannot read the message file");
		return -1;
	}
	if (rc == 1)
		return 0;
	if (s->chunking && b->count != s->outsize)
		panic("body_feed: qid=%s BDAT %zu but %zu octets",
		    s->job->env.qid, s->outsize, b->count);
	if (b->stuff) {
		/* RFC 5321 4.1.1.4: the content ends in CRLF before "." */
		if (!b->obol)
			(void)evbuffer_add(out, "\r\n", 2);
		(void)evbuffer_add(out, ".\r\n", 3);
	}
	free(b->buf);
	b->buf = NULL;
	enter(s, OS_DOTSEND);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	return 0;
}

/* body_init - b reads j's content; rewrite: filter the header section */
static void
body_init(struct obody *b, const struct ojob *j, int rewrite, int stuff)
{
	memset(b, 0, sizeof(*b));
	b->off = j->env.data_off;
	b->end = j->env.data_off + (off_t)j->env.size;
	b->mem = j->mem;
	b->stuff = stuff;
	b->inhdr = rewrite;
	b->bol = 1;
	b->obol = 1;
}

/*
 * body_read - one chunk through the filter into out (NULL: only
 * count).  1 more to come, 0 the end was reached, -1 read error or a
 * file shorter than its envelope says.
 */
static int
body_read(struct obody *b, int fd, struct evbuffer *out)
{
	size_t	 want, len, used;
	ssize_t	 n = 0;
	int	 eof;

	want = (size_t)(b->end - b->off);
	if (want > OS_CHUNK)
		want = OS_CHUNK;
	if (want > 0 && b->mem != NULL) {
		/* read whole at pickup (spool_msg_load): checked length */
		memcpy(b->buf + b->ncarry, b->mem + b->off, want);
		n = (ssize_t)want;
		b->off += n;
	} else if (want > 0) {
		do {
			n = pread(fd, b->buf + b->ncarry, want, b->off);
		} while (n == -1 && errno == EINTR);
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		b->off += n;
	}
	len = b->ncarry + (size_t)n;
	eof = b->off == b->end;
	used = body_filter(b, b->buf, len, eof, out);
	b->ncarry = len - used;
	if (b->ncarry > 0)
		memmove(b->buf, b->buf + used, b->ncarry);
	return eof ? 0 : 1;
}

/*
 * body_filter - pass p[0..len) on, leaving out every Received field
 * (with its continuation lines) while in the header section (RFC 5322
 * 2.2, 3.6.7).  A line start too short to decide on stays unconsumed
 * (at most OS_CARRY octets) unless eof.  Returns the octets consumed.
 */
static size_t
body_filter(struct obody *b, const char *p, size_t len, int eof,
    struct evbuffer *out)
{
	const char	*nl;
	size_t		 i = 0, e, avail;

	while (i < len) {
		if (!b->inhdr) {
			body_emit(b, p + i, len - i, out);
			return len;
		}
		if (b->bol) {
			nl = memchr(p + i, '\n', len - i);
			avail = nl != NULL ? (size_t)(nl - (p + i)) + 1 :
			    len - i;
			if (nl == NULL && avail < OS_CARRY && !eof)
				return i;
			if (p[i] == '\r' || p[i] == '\n') {
				/* the empty line: the body follows */
				b->inhdr = 0;
				b->inrcv = 0;
			} else if (p[i] != ' ' && p[i] != '\t')
				b->inrcv = is_received(p + i, avail);
			b->drop = b->inhdr && b->inrcv;
			b->bol = 0;
		}
		nl = memchr(p + i, '\n', len - i);
		e = nl != NULL ? (size_t)(nl - p) + 1 : len;
		if (!b->drop)
			body_emit(b, p + i, e - i, out);
		if (nl != NULL)
			b->bol = 1;
		i = e;
	}
	return len;
}

/*
 * body_emit - n octets of content to out, with a '.' in front of each
 * line that starts with one when dot-stuffing (RFC 5321 4.5.2); out
 * NULL only counts.
 */
static void
body_emit(struct obody *b, const char *p, size_t n, struct evbuffer *out)
{
	const char	*nl;
	size_t		 cut, k;

	b->count += n;
	if (out == NULL || n == 0)
		return;
	if (!b->stuff) {
		if (evbuffer_add(out, p, n) == -1)
			b->err = 1;
		return;
	}
	while (n > 0) {
		if (b->obol && p[0] == '.' && evbuffer_add(out, ".", 1) == -1)
			b->err = 1;
		/* up to the next line that starts with '.' */
		cut = n;
		for (k = 0; (nl = memchr(p + k, '\n', n - k)) != NULL; ) {
			k = (size_t)(nl - p) + 1;
			if (k < n && p[k] == '.') {
				cut = k;
				break;
			}
		}
		if (evbuffer_add(out, p, cut) == -1)
			b->err = 1;
		b->obol = p[cut - 1] == '\n';
		p += cut;
		n -= cut;
	}
}

/* is_received - the field that starts at p is "Received:" (any case) */
static int
is_received(const char *p, size_t n)
{
	size_t	 i;

	if (n < 9 || mem_casecmp(p, "Received", 8) != 0)
		return 0;
	/* RFC 5322 4.5.3 (obsolete syntax): WSP before the colon */
	for (i = 8; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	return i < n && p[i] == ':';
}

/*
 * received_line - the one Received field of mail whose inside is
 * hidden: "Received: by HOSTNAME with PROTO id QID; DATE" (RFC 5321
 * 4.4), naming no client, HELO or address.  Its length.
 */
static size_t
received_line(const struct osess *s, char *out, size_t outsz)
{
	const struct envelope	*e = &s->job->env;
	char			 date[64];
	int			 r;

	rfc5322_date(e->arrival, date, sizeof(date));
	r = snprintf(out, outsz, "Received: by %s with %s id %s; %s\r\n",
	    s->so->conf->hostname, e->proto[0] != '\0' ? e->proto : "SMTP",
	    e->qid, date);
	if (r < 0 || (size_t)r >= outsz)
		panic("received_line: %d octets", r);
	return (size_t)r;
}
