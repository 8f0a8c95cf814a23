/*
 * smtp_out.h - the smtp-out role's internals, shared by its files:
 *
 *   smtp_out.c     role main: preinit, event loop, signals, the queue
 *                  channel (OUT_JOB, OUT_REPLY, OUT_FLUSH), the
 *                  destination table, per-destination concurrency,
 *                  the connection cache and the dead-destination
 *                  backoff
 *   out_resolve.c  a destination -> ordered list of targets (MX by
 *                  preference, then each host's addresses; implicit
 *                  MX; null MX; loops back to myself)
 *   out_session.c  one SMTP client connection: connect target by
 *                  target, greeting, EHLO/HELO, STARTTLS per policy,
 *                  transactions (pipelined MAIL/RCPT/DATA or BDAT),
 *                  the message body, QUIT
 *   out_reply.c    SMTP reply and EHLO keyword parsers (no I/O; fuzzed
 *                  by tests/fuzz/fuzz_smtp_reply.c)
 *   out_tls.c      client SSL_CTX, certificate checks, the tls= text
 *
 * Life of a job: the queue sends OUT_JOB with the message fd; smtp_out.c
 * reads the envelope, finds or makes the destination (key: kind, name,
 * port) and appends the job to the destination's FIFO.  If the
 * destination is dead (backoff) the job is answered at once with the
 * remembered 4xx.  Else a cached idle session of the destination gets
 * it, or a new session is opened when the destination has fewer than
 * smtp_destination_concurrency_limit sessions and the role fewer than
 * smtp_max_connections; otherwise it waits for a session to finish.
 *
 * A session is opened for a destination, not for a job: it resolves
 * and connects first and asks for work (out_sess_ready) only once it
 * can send MAIL.  When it cannot get that far with any target, it
 * reports out_sess_failed once, and smtp_out.c answers every job
 * waiting for the destination with that result (4xx: defer and mark
 * the destination dead for a backoff; 5xx: bounce).
 *
 * Every callback below is called from the event loop, never from
 * inside the call that caused it, so callers may free freely after a
 * call returns.
 */
#ifndef MOAT_SMTP_OUT_H
#define MOAT_SMTP_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "../lib/compat.h"
#include "../common/config.h"
#include "../common/dns.h"
#include "../common/outbound.h"
#include "../common/role.h"
#include "../common/spool.h"

#define OUT_TARGETS_MAX	20	/* addresses tried per session */

struct event_base;
struct event;
struct osess;
struct odest;

/* one job from the queue */
struct ojob {
	TAILQ_ENTRY(ojob) entry;	/* in its destination's FIFO */
	uint32_t	 id;
	int		 fd;		/* the message file, read-only */
	struct envelope	 env;		/* read from fd (spool_msg_load) */
	char		*mem;		/* the whole file when kept, or NULL */
	size_t		 memlen;
	struct odest	*dest;
	uint32_t	 flags;		/* OUTF_* */
	size_t		 n;
	uint32_t	 idx[OUT_RCPT_MAX];	/* into env.rcpt[] */
	/*
	 * Filled by the session: one result per recipient, res[k].idx ==
	 * idx[k] already set by smtp_out.c, code 0 = not known yet.
	 * relay and tls as in struct out_reply.
	 */
	struct out_result res[OUT_RCPT_MAX];
	char		 relay[OUT_RELAY_MAX];
	char		 tls[160];
};
TAILQ_HEAD(ojob_list, ojob);

/* one next hop: where a group of jobs goes */
struct odest {
	TAILQ_ENTRY(odest) entry;
	uint32_t	 kind;		/* TR_SMTP_MX, _HOST, _FIXED */
	char		 name[OUT_NAME_MAX];	/* domain or host */
	unsigned	 port;		/* resolved: never 0 */
	enum outbound_tls tls;		/* tls_policy_lookup(name) */
	struct ojob_list jobs;		/* waiting for a session, FIFO */
	size_t		 njobs;
	size_t		 nsess;		/* sessions of any state */
	/* dead-destination backoff (4xx before any MAIL on all targets) */
	time_t		 dead_until;	/* 0 = alive */
	unsigned	 fails;		/* consecutive failed sessions */
	unsigned	 dead_code;
	char		 dead_text[OUT_TEXT_MAX];
	time_t		 idle_since;	/* no job and no session: freed
					   after a while */
};
TAILQ_HEAD(odest_list, odest);

/* one place to try, in order */
struct otarget {
	char		 host[DNS_NAME_MAX + 1];	/* MX host or literal */
	unsigned	 pref;		/* MX preference; 0 if none */
	struct sockaddr_storage ss;	/* with the port */
	socklen_t	 sslen;
};

/* the role */
struct smtp_out {
	struct role_ctx		*ctx;
	struct config		*conf;
	struct event_base	*base;
	void			*ssl_ctx;	/* SSL_CTX *, client side */
	struct odest_list	 dests;
	size_t			 ndests;
	size_t			 nsess;		/* all sessions */
	size_t			 njobs;		/* jobs held */
	int			 stopping;
	struct event		*ev_queue;	/* out_sock readable */
	struct event		*ev_gc;		/* destination cleanup */
};

/* ---- smtp_out.c: called by the session -------------------------- */

/*
 * out_sess_ready - s is connected and greeted (EHLO done, TLS as the
 * policy wants): it gets the next waiting job of its destination
 * (osess_run), or waits idle for smtp_connection_cache_time, or is
 * closed (osess_close) when the role is stopping or the connection is
 * older than smtp_connection_reuse_time.  Called again after each job.
 */
void	out_sess_ready(struct smtp_out *, struct osess *);
/*
 * out_sess_failed - s could not reach the point of MAIL with any
 * target.  code 4xx or 5xx, text "4.4.1 connect to mx.example.com
 * [192.0.2.1]:25: Connection refused" (the last error; 5xx only when
 * the last target refused us with 5xx or the name does not exist).
 * s is closed and freed right after this returns (out_sess_gone
 * follows).
 */
void	out_sess_failed(struct smtp_out *, struct osess *, unsigned code,
	    const char *text);
/* out_job_done - s finished j: every j->res[k].code set; send reply */
void	out_job_done(struct smtp_out *, struct ojob *);
/*
 * out_sess_gone - s is about to be freed (closed, failed, lost); the
 * destination may start another session for waiting jobs.
 */
void	out_sess_gone(struct smtp_out *, struct osess *);

/* ---- out_session.c ---------------------------------------------- */

/* osess_new - open a session to d (resolve, connect); NULL if no memory */
struct osess	*osess_new(struct smtp_out *, struct odest *);
/* osess_dest - the destination of s */
struct odest	*osess_dest(const struct osess *);
/* osess_age - seconds since s connected */
time_t		 osess_age(const struct osess *);
/*
 * osess_run - deliver j on the ready session s; out_job_done(j) when
 * finished, then out_sess_ready(s) again or out_sess_gone(s).  A
 * failure before the final reply (timeout, lost connection, 421)
 * gives every recipient without a result 4xx and closes s.
 */
void		 osess_run(struct osess *, struct ojob *);
/*
 * osess_idle - s waits for a job for at most secs; when the time is
 * up it sends QUIT and closes (out_sess_gone).  osess_run cancels it.
 */
void		 osess_idle(struct osess *, time_t secs);
/* osess_close - QUIT if connected and idle, free (out_sess_gone) */
void		 osess_close(struct osess *);
/*
 * out_fmt - snprintf into out[outsz] that marks a cut with "..."
 * (also used by out_tls.c)
 */
void		 out_fmt(char *out, size_t outsz, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* ---- out_resolve.c ---------------------------------------------- */

/*
 * oresolve_cb - the targets of a destination in order, or n == 0 and
 * code/text: 4xx (DNS temporary failure) or 5xx ("5.1.2 domain
 * example.com does not exist", "5.1.10 null MX", "5.4.6 mail for
 * example.com loops back to myself").
 */
typedef void	(*oresolve_cb)(void *arg, const struct otarget *, size_t n,
		    unsigned code, const char *text);
struct oresolve;
/*
 * oresolve_start - look up d: TR_SMTP_MX the MX of d->name, TR_SMTP_HOST
 * the MX of the host, TR_SMTP_FIXED the host's A/AAAA (or its literal).
 * No MX records: the name's own addresses (RFC 5321 5.1).  MX hosts
 * named like our hostname, and all of worse or equal preference, are
 * dropped (loop).  NULL if out of memory.
 */
struct oresolve	*oresolve_start(struct smtp_out *, const struct odest *,
		    oresolve_cb, void *arg);
void		 oresolve_cancel(struct oresolve *);

/* ---- out_reply.c ------------------------------------------------ */

#define OUT_REPLY_LINE_MAX	1000	/* RFC 5321 4.5.3.1.5 is 512 */
#define OUT_REPLY_LINES_MAX	100

/* one complete reply, possibly multiline */
struct oreply {
	unsigned	 code;		/* 200..599 */
	char		 text[OUT_TEXT_MAX];	/* lines joined by ' ',
					   without the code, sanitized */
	size_t		 nlines;
};

/*
 * oreply_parse - take one complete reply from the front of p[0..len):
 * 1 and *used = octets consumed when a full reply is there, 0 when more
 * input is needed, -1 on a malformed reply (bad code, codes that differ
 * between lines, a line over OUT_REPLY_LINE_MAX without CRLF, more
 * than OUT_REPLY_LINES_MAX lines).  Accepts bare LF line ends.
 */
int	oreply_parse(const char *p, size_t len, struct oreply *, size_t *used);

/* what the server said in its EHLO reply */
struct oehlo {
	int		 pipelining;
	int		 starttls;
	int		 eightbit;	/* 8BITMIME */
	int		 smtputf8;
	int		 chunking;
	int		 binarymime;
	int		 dsn;
	int		 has_size;
	size_t		 size;		/* SIZE limit; 0 = none given */
	char		 name[DNS_NAME_MAX + 1];	/* first word of line 1 */
};

/* oehlo_parse - the keywords of a raw 250 EHLO reply (all lines) */
void	oehlo_parse(const char *p, size_t len, struct oehlo *);

/* ---- out_tls.c -------------------------------------------------- */

/* otls_ctx_new - client SSL_CTX (TLS 1.2+, tls_ca_file or the system
   store); NULL with the reason logged */
void	*otls_ctx_new(const struct config *);

struct ssl_st;
/*
 * otls_ssl_new - an SSL object for one connection to host (name or
 * address literal, for SNI and the certificate check).  verify != 0:
 * the handshake fails unless the chain and the name verify; else it
 * never fails for the certificate, and otls_text() tells whether it
 * would have verified.  NULL with the reason logged.
 */
struct ssl_st	*otls_ssl_new(void *ctx, const char *host, int verify);
/* otls_text - "tls=TLSv1.3 cipher=... verified=yes|no"; "tls=no" if NULL */
void	 otls_text(struct ssl_st *, char *out, size_t outsz);
/*
 * otls_why - why the handshake on ssl failed, from its certificate
 * check or the OpenSSL error e (0 = none known): 1 when the
 * certificate did not verify, else 0.
 */
int	 otls_why(struct ssl_st *, unsigned long e, char *out, size_t outsz);

#endif
