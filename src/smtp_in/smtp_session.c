/*
 * smtp_session.c - life cycle and I/O of one inbound SMTP session.
 *
 * A session advances only from its bufferevent callbacks (read, write,
 * event) or from a commit completion (STYLE.md 6).  The input loop,
 * smtp_session_process(), handles every complete command in the input
 * buffer (RFC 2920 pipelining); the replies are appended to the one
 * output evbuffer and leave in a single writev when the loop returns to
 * libevent, strictly in command order.  Processing stops at a state
 * that cannot consume input (commit in flight, STARTTLS, closing) and
 * resumes from the completion, so replies never overtake each other.
 *
 * Replies of a plain TCP session (SF_DIRECTW) do not go through the
 * bufferevent's write event: the session joins the flush list, and
 * at the end of the loop iteration session_flush_all() writes each
 * one's output with one writev.  Only a write that does not complete
 * hands the rest to the bufferevent (EV_WRITE on, until drained).  That
 * saves two epoll_ctl(2) and a loop iteration per reply.  TLS sessions
 * always write through their bufferevent.
 *
 * Invariants:
 * - the state changes only in smtp_enter_state(), which logs old -> new
 *   at debug level and sets the timeout class (command or data);
 * - nothing is ever freed below a callback except through
 *   smtp_session_free() at the callback's top level;
 * - the input buffer is bounded: a command line by srv->linecap (checked
 *   before CRLF arrives), DATA and BDAT by streaming into the spool;
 *   the output buffer by SMTP_OUT_HIGH (input pauses above it).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../common/config.h"
#include "../common/stats.h"
#include "smtp_in.h"

static void	session_readcb(struct bufferevent *, void *);
static void	session_writecb(struct bufferevent *, void *);
static void	session_eventcb(struct bufferevent *, short, void *);
static int	session_command(struct smtp_session *, struct evbuffer *);
static void	session_bare(struct smtp_session *, struct evbuffer *,
		    const char *, size_t);
static void	session_partial_cap(struct smtp_session *, const char *,
		    size_t);
static void	session_io_update(struct smtp_session *);
static void	session_set_timeouts(struct smtp_session *);
static void	session_out_queued(struct smtp_session *);
static void	session_flush_all(evutil_socket_t, short, void *);

static TAILQ_HEAD(, smtp_session) flush_list =
    TAILQ_HEAD_INITIALIZER(flush_list);
static struct event	*flush_ev;

static const char *const state_names[SMTP_ST_COUNT] = {
	[SMTP_ST_CONNECTED] = "connected",
	[SMTP_ST_HELO] = "helo",
	[SMTP_ST_MAIL] = "mail",
	[SMTP_ST_RCPT] = "rcpt",
	[SMTP_ST_DATA] = "data",
	[SMTP_ST_BDAT] = "bdat",
	[SMTP_ST_CHUNKING] = "chunking",
	[SMTP_ST_COMMIT] = "commit",
	[SMTP_ST_TLS] = "tls",
	[SMTP_ST_CLOSING] = "closing",
	[SMTP_ST_AUTH_INPUT] = "auth_input",
	[SMTP_ST_AUTH_WAIT] = "auth_wait",
};

/* smtp_state_name - printable name of a state */
const char *
smtp_state_name(enum smtp_state st)
{
	if ((unsigned)st >= SMTP_ST_COUNT)
		panic("smtp_state_name: bad state %d", (int)st);
	return state_names[st];
}

/*
 * smtp_session_new - allocate a session for an accepted fd.  The
 * caller (smtp_server.c) has checked the connection limits; the
 * bufferevent is attached by smtp_session_start().
 */
struct smtp_session *
smtp_session_new(int fd, const struct sockaddr *sa, enum listener_kind kind)
{
	struct smtp_session	*s;
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	char			 tmp[INET6_ADDRSTRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = fd;
	s->kind = kind;
	s->state = SMTP_ST_CONNECTED;
	s->start = time(NULL);
	s->id = ++smtp_srv->nextid;
	s->reason = "eof";
	s->family = sa->sa_family;
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(s->addr, &sin6->sin6_addr, 16);
	} else {
		sin = (const struct sockaddr_in *)(const void *)sa;
		memcpy(s->addr, &sin->sin_addr, 4);
	}
	if (inet_ntop(s->family, s->addr, tmp, sizeof(tmp)) == NULL)
		memcpy(tmp, "unknown", sizeof("unknown"));
	memcpy(s->addrtext, tmp, strlen(tmp) + 1);
	if (config_in_relay_networks(smtp_srv->conf, sa))
		s->flags |= SF_RELAY;
	return s;
}

/*
 * smtp_session_start - attach the bufferevent and send the greeting.
 * No software name or version (DESIGN.md principle 3).
 */
void
smtp_session_start(struct smtp_session *s, struct bufferevent *bev)
{
	s->bev = bev;
	smtp_session_setcb(s);
	session_set_timeouts(s);
	if (s->fd != -1) {
		/* a new bufferevent has EV_WRITE on: turn it off */
		s->flags |= SF_DIRECTW;
		bufferevent_disable(bev, EV_WRITE);
		bufferevent_enable(bev, EV_READ);
	} else
		bufferevent_enable(bev, EV_READ | EV_WRITE);
	log_info("event=connect client=%s sid=%lu relay=%s tls=%s",
	    s->addrtext, s->id, s->flags & SF_RELAY ? "yes" : "no",
	    s->kind == LK_SMTPS ? "implicit" : "no");
	/* rates, lookups and the greet delay (smtp_policy.c) */
	if (smtp_policy_connect(s) == 0)
		smtp_session_greet(s);
	session_io_update(s);
}

/* smtp_session_greet - the banner; says nothing about the software */
void
smtp_session_greet(struct smtp_session *s)
{
	smtp_reply(s, "220 %s ESMTP", smtp_srv->conf->hostname);
}

/* smtp_session_setcb - (re)install callbacks and watermarks on s->bev */
void
smtp_session_setcb(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, session_readcb, session_writecb,
	    session_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_READ_HIGH);
	/*
	 * libevent reads at most 16 KiB per call by default: a large
	 * message's data then cost a read, an ioctl(FIONREAD) and a loop
	 * iteration per 16 KiB.  Up to the watermark is as safe.
	 */
	(void)bufferevent_set_max_single_read(s->bev, SMTP_READ_HIGH);
}

/*
 * smtp_session_free - end a session.  A session whose message is with
 * the commit threads only loses its connection here (SF_DEAD); the
 * completion frees it.
 */
void
smtp_session_free(struct smtp_session *s)
{
	smtp_policy_free(s);
	if (s->bev != NULL || s->fd != -1) {
		log_info("event=disconnect client=%s sid=%lu duration=%lld "
		    "commands=%u messages=%u errors=%u reason=%s",
		    s->addrtext, s->id, (long long)(time(NULL) - s->start),
		    s->ncmds, s->nmsgs, s->nerrors, s->reason);
		if (s->flags & SF_FLUSHQ) {
			TAILQ_REMOVE(&flush_list, s, flushq);
			s->flags &= ~SF_FLUSHQ;
		}
		if (s->bev != NULL)
			bufferevent_free(s->bev);
		s->bev = NULL;
		if (s->fd != -1)
			close(s->fd);
		s->fd = -1;
	}
	if (s->state == SMTP_ST_COMMIT) {
		s->flags |= SF_DEAD;
		return;
	}
	smtp_txn_free(s);
	smtp_scan_session_free(s);
	smtp_auth_session_free(s);
	free(s->authuser);
	free(s->helo);
	smtp_server_session_gone(s);
	free(s);
}

/* smtp_txn_free - drop the transaction, unlinking an unfinished file */
void
smtp_txn_free(struct smtp_session *s)
{
	struct smtp_txn	*t = s->txn;

	if (t == NULL)
		return;
	if (s->state == SMTP_ST_COMMIT)
		panic("smtp_txn_free: transaction with the commit threads");
	if (t->flags & TF_OPEN)
		spool_msg_abort(&t->msg);
	smtp_content_free(t);
	smtp_scan_free(t);
	envelope_free(&t->env);
	free(t);
	s->txn = NULL;
}

/*
 * smtp_enter_state - the only place where a session changes state.
 */
void
smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	enum smtp_state	 old = s->state;

	if ((unsigned)st >= SMTP_ST_COUNT)
		panic("smtp_enter_state: bad state %d", (int)st);
	log_debug("sid=%lu state %s -> %s", s->id, smtp_state_name(old),
	    smtp_state_name(st));
	s->state = st;
	/* the timeout class changes on entering or leaving content */
	if ((old == SMTP_ST_DATA || old == SMTP_ST_BDAT) !=
	    (st == SMTP_ST_DATA || st == SMTP_ST_BDAT))
		session_set_timeouts(s);
}

/* smtp_reply - queue one reply line; CRLF is added */
void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out;
	va_list		 ap;

	if (s->bev == NULL)
		return;
	out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	(void)evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	(void)evbuffer_add(out, "\r\n", 2);
	session_out_queued(s);
}

/* smtp_reply_raw - queue prepared reply octets (with their CRLFs) */
void
smtp_reply_raw(struct smtp_session *s, const char *p, size_t len)
{
	if (s->bev != NULL) {
		(void)evbuffer_add(bufferevent_get_output(s->bev), p, len);
		session_out_queued(s);
	}
}

/*
 * smtp_reply_error - reply to a client error and count it; the error
 * that reaches max_errors is answered with 421 instead and the session
 * closes (a client that keeps failing is probing or broken).
 */
void
smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out;
	va_list		 ap;

	s->nerrors++;
	if (smtp_srv->conf->max_errors != 0 &&
	    s->nerrors >= smtp_srv->conf->max_errors) {
		log_info("event=error_limit client=%s sid=%lu errors=%u",
		    s->addrtext, s->id, s->nerrors);
		s->reason = "errors";
		smtp_close(s, "421 4.7.0 Too many errors");
		return;
	}
	if (s->bev == NULL)
		return;
	out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	(void)evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	(void)evbuffer_add(out, "\r\n", 2);
	session_out_queued(s);
	if (fmt[0] == '5')
		smtp_policy_error(s);	/* the tarpit */
}

/*
 * smtp_close - queue a last reply, abort any transaction and close
 * once the output is flushed (or the write timeout fires).
 */
void
smtp_close(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out;
	va_list		 ap;

	if (s->bev != NULL) {
		out = bufferevent_get_output(s->bev);
		va_start(ap, fmt);
		(void)evbuffer_add_vprintf(out, fmt, ap);
		va_end(ap);
		(void)evbuffer_add(out, "\r\n", 2);
		session_out_queued(s);
	}
	smtp_txn_free(s);
	smtp_enter_state(s, SMTP_ST_CLOSING);
}

/*
 * smtp_session_process - consume as much input as the state allows.
 * Called from the read callback, after the output drained below its
 * limit, and after a commit completion.
 */
void
smtp_session_process(struct smtp_session *s)
{
	struct evbuffer	*in;
	int		 more;

	if (s->bev == NULL || (s->flags & SF_INPROC))
		return;
	s->flags |= SF_INPROC;
	in = bufferevent_get_input(s->bev);
	if (s->flags & SF_GREETWAIT) {
		/* nothing may come before the banner (smtp_policy.c) */
		(void)smtp_policy_pregreet(s, in);
		s->flags &= ~SF_INPROC;
		session_io_update(s);
		return;
	}
	do {
		/* waiting for lookups or in the tarpit */
		if (s->flags & (SF_POLWAIT | SF_TARPIT))
			break;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    SMTP_OUT_HIGH) {
			/* a client that does not read its replies */
			s->flags |= SF_OUTFULL;
			break;
		}
		switch (s->state) {
		case SMTP_ST_CONNECTED:
		case SMTP_ST_HELO:
		case SMTP_ST_MAIL:
		case SMTP_ST_RCPT:
		case SMTP_ST_CHUNKING:
		case SMTP_ST_AUTH_INPUT:
			more = session_command(s, in);
			break;
		case SMTP_ST_DATA:
			more = smtp_data_input(s, in);
			break;
		case SMTP_ST_BDAT:
			more = smtp_bdat_input(s, in);
			break;
		case SMTP_ST_COMMIT:
		case SMTP_ST_TLS:
		case SMTP_ST_CLOSING:
		case SMTP_ST_AUTH_WAIT:
			more = 0;
			break;
		default:
			panic("smtp_session_process: state %d", (int)s->state);
		}
	} while (more);
	s->flags &= ~SF_INPROC;
	session_io_update(s);
}

/*
 * session_command - take one command line off the input.  Returns 1
 * when something was consumed (call again), 0 when more input is
 * needed or the state no longer reads commands.  In SMTP_ST_AUTH_INPUT
 * the line is an AUTH response (RFC 4954 4), not a command: it goes to
 * smtp_auth_line(), bounded by the AUTH verb's own cap (srv->linecap).
 */
static int
session_command(struct smtp_session *s, struct evbuffer *in)
{
	enum smtp_line_result	 r;
	const char		*p, *lf;
	size_t			 len, n, linelen = 0, consumed = 0;

	if ((len = evbuffer_get_length(in)) == 0)
		return 0;
	if (s->discard > 0) {
		/* the octets of a refused BDAT chunk (RFC 3030 2) */
		n = len < s->discard ? len : (size_t)s->discard;
		evbuffer_drain(in, n);
		s->discard -= n;
		STATS_ADD(bytes_received, n);
		return 1;
	}
	n = len < smtp_srv->linecap ? len : smtp_srv->linecap;
	if ((p = (const char *)evbuffer_pullup(in, (ssize_t)n)) == NULL) {
		log_warnx("event=error client=%s sid=%lu error=pullup",
		    s->addrtext, s->id);
		s->reason = "nomem";
		smtp_close(s, "421 4.3.0 Local error in processing");
		return 0;
	}
	if (s->flags & SF_SKIPLINE) {
		if ((lf = memchr(p, '\n', n)) == NULL) {
			evbuffer_drain(in, n);
			return 1;
		}
		evbuffer_drain(in, (size_t)(lf - p) + 1);
		s->flags &= ~SF_SKIPLINE;
		return 1;
	}
	r = smtp_line_next(p, n, smtp_srv->linecap, &linelen, &consumed);
	switch (r) {
	case LINE_NEED_MORE:
		if (n > SMTP_LINE_MAX && s->state != SMTP_ST_AUTH_INPUT)
			session_partial_cap(s, p, n);
		return 0;
	case LINE_TOO_LONG:
		if (s->state == SMTP_ST_AUTH_INPUT) {
			smtp_filter_alarm(s, "AUTH", 4, n);
			return 0;
		}
		/* the cap holds before any CRLF: the buffer stays bounded */
		for (linelen = 0; linelen < n && linelen < CONF_VERB_MAX &&
		    p[linelen] != ' '; linelen++)
			;
		smtp_filter_alarm(s, p, linelen, n);
		return 0;
	case LINE_BARE_LF:
	case LINE_BARE_CR:
		session_bare(s, in, p, n);
		smtp_auth_abort(s);
		return 1;
	case LINE_OK:
		break;
	default:
		panic("session_command: line result %d", (int)r);
	}
	if (s->state != SMTP_ST_AUTH_INPUT &&
	    smtp_policy_hold(s, p, linelen))
		return 0;	/* the line stays until the lookups are back */
	s->ncmds++;
	STATS_ADD(bytes_received, consumed);
	if (s->state == SMTP_ST_AUTH_INPUT)
		smtp_auth_line(s, p, linelen);
	else
		smtp_cmd_line(s, p, linelen, consumed);
	evbuffer_drain(in, consumed);
	if (s->state == SMTP_ST_TLS) {
		/*
		 * Whatever was pipelined after STARTTLS is plaintext the
		 * client must not have sent; keeping it would inject
		 * commands into the TLS session (CVE-2011-0411).
		 */
		evbuffer_drain(in, evbuffer_get_length(in));
		return 0;
	}
	return 1;
}

/*
 * session_partial_cap - a line without its CRLF yet is already over
 * 512 octets: hold it to its verb's own limit (only a verb listed with
 * a long argument, such as AUTH, may go on), so that the read buffer
 * never holds more than the filter would accept.
 */
static void
session_partial_cap(struct smtp_session *s, const char *p, size_t n)
{
	const struct filter_rule *rule;
	size_t			 v;

	for (v = 0; v < n && v < CONF_VERB_MAX && p[v] != ' '; v++)
		;
	rule = config_filter_find(smtp_srv->conf, p, v);
	if (rule == NULL || n >= v + 1 + rule->maxarg + 2)
		smtp_filter_alarm(s, p, v, n);
}

/*
 * session_bare - a bare CR or LF in a command line (RFC 5321 2.3.8):
 * drop the line up to the offender, and after a bare CR the rest of
 * the line too, so that nothing after it is read as a command.
 */
static void
session_bare(struct smtp_session *s, struct evbuffer *in, const char *p,
    size_t n)
{
	size_t	 i;
	int	 cr;

	for (i = 0; i < n; i++)
		if (p[i] == '\n' || p[i] == '\r')
			break;
	/* p points into the buffer: done with it before the drain */
	cr = i < n && p[i] == '\r';
	if (cr)
		s->flags |= SF_SKIPLINE;
	evbuffer_drain(in, i < n ? i + 1 : n);
	log_info("event=error client=%s sid=%lu error=bare_%s_command",
	    s->addrtext, s->id, cr ? "cr" : "lf");
	smtp_reply_error(s, "500 5.5.2 Bare CR or LF in command line");
}

/* session_io_update - read only in states that consume input */
static void
session_io_update(struct smtp_session *s)
{
	int	 want;

	if (s->bev == NULL)
		return;
	want = (ST(s->state) & (ST_COMMANDS | ST(SMTP_ST_DATA) |
	    ST(SMTP_ST_BDAT) | ST(SMTP_ST_AUTH_INPUT))) &&
	    !(s->flags & (SF_OUTFULL | SF_POLWAIT | SF_TARPIT));
	if (want && !(bufferevent_get_enabled(s->bev) & EV_READ))
		bufferevent_enable(s->bev, EV_READ);
	else if (!want && (bufferevent_get_enabled(s->bev) & EV_READ))
		bufferevent_disable(s->bev, EV_READ);
}

/*
 * session_set_timeouts - command_timeout between commands,
 * data_timeout while content streams; the write timeout bounds a
 * client that stops reading.
 */
static void
session_set_timeouts(struct smtp_session *s)
{
	const struct timeval	*tv;

	if (s->bev == NULL)
		return;
	tv = s->state == SMTP_ST_DATA || s->state == SMTP_ST_BDAT ?
	    &smtp_srv->data_tv : &smtp_srv->cmd_tv;
	bufferevent_set_timeouts(s->bev, tv, tv);
}

/* session_readcb - new input */
static void
session_readcb(struct bufferevent *bev, void *arg)
{
	smtp_session_process(arg);
}

/* session_writecb - the output drained completely */
static void
session_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	/* a direct writer's bufferevent wrote a remainder: done with it */
	if ((s->flags & SF_DIRECTW) && !(s->flags & SF_TARPIT))
		bufferevent_disable(bev, EV_WRITE);
	switch (s->state) {
	case SMTP_ST_CLOSING:
		smtp_session_free(s);
		return;
	case SMTP_ST_TLS:
		if (!(s->flags & SF_HANDSHAKE))
			smtp_tls_switch(s);
		return;
	default:
		break;
	}
	if (s->flags & SF_OUTFULL) {
		s->flags &= ~SF_OUTFULL;
		smtp_session_process(s);
	}
}

/* session_eventcb - TLS handshake done, timeout, EOF or error */
static void
session_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session	*s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		smtp_tls_done(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    s->state != SMTP_ST_CLOSING) {
		log_info("event=timeout client=%s sid=%lu state=%s",
		    s->addrtext, s->id, smtp_state_name(s->state));
		s->reason = "timeout";
		if (s->state == SMTP_ST_COMMIT)
			return;		/* reading is off; cannot happen */
		smtp_close(s, "421 4.4.2 Timeout");
		session_io_update(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    s->state != SMTP_ST_COMMIT && s->state != SMTP_ST_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		/* a half-closed client still gets its pending replies */
		s->reason = "eof";
		smtp_txn_free(s);
		smtp_enter_state(s, SMTP_ST_CLOSING);
		session_io_update(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		s->reason = "write_timeout";
	else if (what & BEV_EVENT_ERROR) {
		s->reason = "io_error";
		if (s->flags & (SF_TLS | SF_HANDSHAKE))
			smtp_tls_log_error(s);
	} else if (s->state != SMTP_ST_CLOSING && s->state != SMTP_ST_HELO &&
	    s->state != SMTP_ST_CONNECTED &&
	    s->state != SMTP_ST_AUTH_INPUT && s->state != SMTP_ST_AUTH_WAIT)
		s->reason = "eof_in_transaction";
	smtp_session_free(s);
}

/*
 * smtp_session_shutdown - SIGTERM: 421 to the session and abort its
 * unfinished transaction; a message with the commit threads gets its
 * reply first (SF_SHUTDOWN is honoured at the completion).
 */
void
smtp_session_shutdown(struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_ST_COMMIT:
		s->flags |= SF_SHUTDOWN;
		return;
	case SMTP_ST_CLOSING:
		return;
	case SMTP_ST_TLS:
		s->reason = "shutdown";
		smtp_session_free(s);
		return;
	default:
		s->reason = "shutdown";
		smtp_close(s, "421 4.3.2 Service shutting down");
		session_io_update(s);
		return;
	}
}

/*
 * session_out_queued - s has new output: a direct writer joins the
 * flush list (once), which is written at the end of this iteration
 */
static void
session_out_queued(struct smtp_session *s)
{
	if (!(s->flags & SF_DIRECTW) || (s->flags & SF_FLUSHQ))
		return;
	if (flush_ev == NULL && (flush_ev = event_new(smtp_srv->base, -1, 0,
	    session_flush_all, NULL)) == NULL) {
		/* cannot happen but under memory exhaustion: the slow way */
		bufferevent_enable(s->bev, EV_WRITE);
		return;
	}
	TAILQ_INSERT_TAIL(&flush_list, s, flushq);
	s->flags |= SF_FLUSHQ;
	event_active(flush_ev, EV_WRITE, 0);
}

/*
 * session_flush_all - write the output of every session on the flush
 * list.  A session being held (tarpit) or whose bufferevent is already
 * writing is left alone; a write that leaves octets behind (socket
 * full, or an error the bufferevent will report) turns EV_WRITE on.
 * A drained output runs the write callback, which may free s.
 */
static void
session_flush_all(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s;
	struct evbuffer		*out;

	while ((s = TAILQ_FIRST(&flush_list)) != NULL) {
		TAILQ_REMOVE(&flush_list, s, flushq);
		s->flags &= ~SF_FLUSHQ;
		if (s->bev == NULL || (s->flags & SF_TARPIT) ||
		    (bufferevent_get_enabled(s->bev) & EV_WRITE))
			continue;
		out = bufferevent_get_output(s->bev);
		if (evbuffer_get_length(out) == 0)
			continue;
		/* libevent keeps a bufferevent's output frozen at the front */
		(void)evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, s->fd);
		(void)evbuffer_freeze(out, 1);
		if (evbuffer_get_length(out) > 0) {
			bufferevent_enable(s->bev, EV_WRITE);
			continue;
		}
		session_writecb(s->bev, s);
	}
}
