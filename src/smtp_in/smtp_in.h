/*
 * smtp_in.h - internals shared by the files of the smtp-in role.
 *
 * One process, one libevent loop, every session of every listener.
 * The files split by concern (STYLE.md 1):
 *
 *   smtp_server.c   smtp_in_run(): listeners, accept, connection limits,
 *                   signals (SIGTERM stop, SIGUSR2 drain)
 *   smtp_session.c  session life cycle, I/O callbacks, the input loop,
 *                   enter_state(), replies, timeouts
 *   smtp_cmd.c      the verb table, the command filter, HELO/EHLO, MAIL,
 *                   RCPT (relay and spoofing policy), RSET, NOOP, ...
 *   smtp_data.c     DATA and BDAT streaming into the spool, the
 *                   Received header, the group-commit threads
 *   smtp_tls.c      STARTTLS and implicit TLS (bufferevent_openssl)
 *   smtp_auth.c     AUTH PLAIN and LOGIN (RFC 4954), the password
 *                   check threads, failure limits and delays
 *   smtp_policy.c   anti-spam policy for untrusted clients: DNS
 *                   blocklists, FCrDNS, HELO and sender checks,
 *                   pregreet, rates, the reject tarpit
 *   smtp_callout.c  recipient_verify = callout: RCPT probes of the
 *                   internal next hop, their answer cache
 *   smtp_greylist.c greylisting, its state file greylist.db
 *
 * Ownership: a session owns its bufferevent, its fd, its HELO copy and
 * at most one transaction.  A transaction handed to the commit threads
 * is owned by them until its completion is back on the loop; a session
 * whose client vanished meanwhile lingers (SF_DEAD) until then.  A
 * password check with the AUTH threads holds only a job that the
 * session detaches from when it is freed (smtp_auth.c).
 */
#ifndef MOAT_SMTP_IN_H
#define MOAT_SMTP_IN_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../common/config.h"
#include "../common/role.h"
#include "../common/spool.h"
#include "smtp_parse.h"

#define SMTP_OUT_HIGH	(64 * 1024)	/* stop reading above this backlog */
#define SMTP_READ_HIGH	(64 * 1024)	/* bufferevent input watermark */
#define SMTP_ADDR_TEXT	64		/* "IPv6:..." text form */
#define SMTP_SHUTDOWN_GRACE 10		/* seconds to flush 421s at SIGTERM */

/* session states; transitions only through smtp_enter_state() */
enum smtp_state {
	SMTP_ST_CONNECTED,	/* greeting queued, no HELO/EHLO yet */
	SMTP_ST_HELO,		/* HELO/EHLO done, no transaction */
	SMTP_ST_MAIL,		/* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT,		/* one or more RCPT accepted */
	SMTP_ST_DATA,		/* streaming DATA content */
	SMTP_ST_BDAT,		/* streaming the octets of a BDAT chunk */
	SMTP_ST_CHUNKING,	/* between BDAT chunks of one message */
	SMTP_ST_COMMIT,		/* message with the commit threads */
	SMTP_ST_TLS,		/* STARTTLS: 220 flushing, then handshake */
	SMTP_ST_CLOSING,	/* last reply queued, close once flushed */
	SMTP_ST_AUTH_INPUT,	/* AUTH: 334 sent, reading the response */
	SMTP_ST_AUTH_WAIT,	/* AUTH: password check or failure delay */
	SMTP_ST_COUNT
};

#define ST(x)		(1u << (x))
/* the states in which the input is read as command lines */
#define ST_COMMANDS	(ST(SMTP_ST_CONNECTED) | ST(SMTP_ST_HELO) | \
			 ST(SMTP_ST_MAIL) | ST(SMTP_ST_RCPT) | \
			 ST(SMTP_ST_CHUNKING))

/* session flags */
#define SF_ESMTP	0x0001	/* EHLO (not HELO) was used */
#define SF_TLS		0x0002	/* TLS is up */
#define SF_RELAY	0x0004	/* client is in relay_networks */
#define SF_SKIPLINE	0x0008	/* drop input up to the next LF */
#define SF_OUTFULL	0x0010	/* output backlog: input paused */
#define SF_DEAD		0x0020	/* client gone, waiting for a commit */
#define SF_SHUTDOWN	0x0040	/* SIGTERM: 421 after the pending reply */
#define SF_INPROC	0x0080	/* inside smtp_session_process() */
#define SF_HANDSHAKE	0x0100	/* TLS bufferevent installed, handshaking */
#define SF_AUTH		0x0200	/* AUTH succeeded (s->authuser) */
#define SF_POLWAIT	0x0400	/* RCPT waits for policy lookups */
#define SF_GREETWAIT	0x0800	/* greet_delay: banner not sent yet */
#define SF_TARPIT	0x1000	/* reject_delay: output held back */
#define SF_DIRECTW	0x2000	/* plain TCP: replies written directly */
#define SF_FLUSHQ	0x4000	/* on the flush list (smtp_session.c) */

/* transaction flags */
#define TF_OPEN		0x01	/* spool file open in tmp/ */
#define TF_DATA		0x02	/* DATA used */
#define TF_BDAT		0x04	/* BDAT used */
#define TF_OVERSIZE	0x08	/* content over message_size_limit */
#define TF_IOERR	0x10	/* spool write failed */
#define TF_LAST		0x20	/* current BDAT chunk is the LAST one */
#define TF_LF		0x40	/* the last content octet was LF */
#define TF_NOSPACE	0x80	/* a write or the commit found the disk
				   full (ENOSPC, EDQUOT): 452 4.3.1 */

struct smtp_session;
struct smtp_auth;
struct smtp_policy;
struct smtp_callout;
struct smtp_scan;
struct milter_session;
struct addr;

/* one mail transaction, from MAIL to the final reply */
struct smtp_txn {
	struct smtp_session	*s;
	struct envelope		 env;
	struct spool_msg	 msg;
	struct data_scanner	 scan;
	unsigned		 flags;		/* TF_* */
	uint64_t		 size;		/* content octets accepted */
	uint64_t		 bdat_left;	/* octets of the current chunk */
	int			 result;	/* commit: 0 or -1 */
	struct smtp_txn		*next;		/* commit queues */
	struct content_scan	*content;	/* smtp_content.c or NULL */
	size_t			 content_base;	/* octets before the scan */
	struct smtp_scan	*scanners;	/* smtp_scan.c or NULL */
};

/* per client address connection count (max_connections_per_ip) */
struct smtp_ipcount {
	struct smtp_ipcount	*next;
	int			 family;
	uint8_t			 addr[16];
	size_t			 n;
};

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	TAILQ_ENTRY(smtp_session) flushq;	/* SF_FLUSHQ */
	struct bufferevent	*bev;
	int			 fd;		/* -1 once a TLS bev owns it */
	enum smtp_state		 state;
	unsigned		 flags;		/* SF_* */
	enum listener_kind	 kind;
	unsigned long		 id;
	time_t			 start;
	struct smtp_ipcount	*ipc;
	char			*helo;		/* sanitized copy, malloc'd */
	struct smtp_txn		*txn;
	uint64_t		 discard;	/* refused BDAT octets to skip */
	unsigned		 nerrors;
	unsigned		 ncmds;
	unsigned		 nmsgs;
	const char		*reason;	/* why it ended, for the log */
	char			*authuser;	/* login after AUTH, malloc'd */
	struct smtp_auth	*auth;		/* AUTH exchange or NULL */
	struct smtp_policy	*pol;		/* smtp_policy.c or NULL */
	struct smtp_callout	*callout;	/* smtp_callout.c or NULL */
	struct milter_session	*milter;	/* smtp_scan.c or NULL */
	int			 family;
	uint8_t			 addr[16];
	char			 addrtext[SMTP_ADDR_TEXT];
};

TAILQ_HEAD(smtp_sessions, smtp_session);

/* process-wide state of the role */
struct smtp_server {
	struct event_base	*base;
	struct config		*conf;
	struct role_ctx		*ctx;
	void			*tls_ctx;	/* SSL_CTX * or NULL */
	struct smtp_sessions	 sessions;
	size_t			 nsessions;
	unsigned long		 nextid;
	size_t			 linecap;	/* read cap of one command line */
	int			 draining;	/* SIGUSR2 */
	int			 stopping;	/* SIGTERM */
	struct buf		 ehlo;		/* EHLO reply without STARTTLS */
	struct buf		 ehlo_tls;	/* EHLO reply with STARTTLS */
	struct buf		 ehlo_auth;	/* EHLO reply in TLS, AUTH */
	struct timeval		 cmd_tv;
	struct timeval		 data_tv;
};

extern struct smtp_server *smtp_srv;

/* smtp_server.c */
void	smtp_server_session_gone(struct smtp_session *);

/* smtp_session.c */
struct smtp_session *smtp_session_new(int fd, const struct sockaddr *,
	    enum listener_kind);
void	smtp_session_start(struct smtp_session *, struct bufferevent *);
void	smtp_session_free(struct smtp_session *);
void	smtp_session_process(struct smtp_session *);
void	smtp_session_shutdown(struct smtp_session *);
void	smtp_session_setcb(struct smtp_session *);
void	smtp_session_greet(struct smtp_session *);
void	smtp_enter_state(struct smtp_session *, enum smtp_state);
const char *smtp_state_name(enum smtp_state);
void	smtp_reply(struct smtp_session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	smtp_reply_raw(struct smtp_session *, const char *, size_t);
void	smtp_reply_error(struct smtp_session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	smtp_close(struct smtp_session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	smtp_txn_free(struct smtp_session *);

/* smtp_cmd.c */
void	smtp_cmd_line(struct smtp_session *, const char *, size_t, size_t);
void	smtp_filter_alarm(struct smtp_session *, const char *, size_t,
	    size_t);
int	smtp_ehlo_build(struct smtp_server *);
void	smtp_rcpt_accept(struct smtp_session *, const char *, size_t);

/*
 * smtp_callout.c - recipient_verify = callout: 0 go on, -1 answered,
 * 1 the RCPT is answered when the probe ends (smtp_rcpt_accept)
 */
int	smtp_callout_rcpt(struct smtp_session *, const struct addr *,
	    const char *, size_t);
void	smtp_callout_session_free(struct smtp_session *);
/* smtp_greylist.c - greylist = yes: 0 go on, -1 answered 450 4.7.1 */
int	smtp_greylist_rcpt(struct smtp_session *, const char *, size_t);

/* smtp_data.c */
void	smtp_cmd_data(struct smtp_session *, const struct smtp_cmd *);
void	smtp_cmd_bdat(struct smtp_session *, const struct smtp_cmd *);
int	smtp_data_input(struct smtp_session *, struct evbuffer *);
int	smtp_bdat_input(struct smtp_session *, struct evbuffer *);
int	smtp_commit_init(struct event_base *, size_t);
void	smtp_data_refuse(struct smtp_session *, const char *, const char *);
void	smtp_data_commit(struct smtp_session *);

/*
 * smtp_scan.c: clamd and the milters in the data path.  smtp_scan_end()
 * returns 1 when the session waits for them (in SMTP_ST_COMMIT) and is
 * resumed through smtp_data_refuse() or smtp_data_commit().
 */
void	smtp_scan_begin(struct smtp_session *, struct smtp_txn *);
void	smtp_scan_data(struct smtp_txn *, const char *, size_t);
int	smtp_scan_end(struct smtp_session *);
int	smtp_scan_quarantine(const struct smtp_txn *, const char **,
	    const char **);
int	smtp_scan_finish(struct smtp_txn *);
void	smtp_scan_free(struct smtp_txn *);
void	smtp_scan_session_free(struct smtp_session *);

/* smtp_content.c: the content filter in the data path */
void	smtp_content_begin(struct smtp_session *, struct smtp_txn *);
void	smtp_content_data(struct smtp_txn *, const char *, size_t);
const char *smtp_content_verdict(struct smtp_txn *, const char **);
int	smtp_content_finish(struct smtp_txn *);
const char *smtp_content_dir(const struct smtp_txn *);
void	smtp_content_free(struct smtp_txn *);

/* smtp_tls.c */
void	smtp_cmd_starttls(struct smtp_session *, const struct smtp_cmd *);
struct bufferevent *smtp_tls_bev(struct smtp_session *, int);
void	smtp_tls_switch(struct smtp_session *);
void	smtp_tls_done(struct smtp_session *);
int	smtp_tls_info(struct smtp_session *, const char **, const char **,
	    int *);
void	smtp_tls_log_error(struct smtp_session *);

/* smtp_auth.c */
void	smtp_cmd_auth(struct smtp_session *, const struct smtp_cmd *);
void	smtp_auth_line(struct smtp_session *, const char *, size_t);
void	smtp_auth_abort(struct smtp_session *);
void	smtp_auth_session_free(struct smtp_session *);
int	smtp_auth_offered(const struct smtp_session *);
int	smtp_auth_init(struct event_base *);

/*
 * SASL decoding, pure functions over (ptr, len) for tests/fuzz:
 * smtp_auth_b64_decode - strict base64 (RFC 4648 4: groups of four,
 * '=' padding only at the end, no blanks) into out[0..outsz); 0 with
 * *outlen, or -1.  smtp_auth_plain - split an RFC 4616 message
 * "authzid NUL authcid NUL passwd" into slices of msg; 0, or -1 unless
 * there are exactly two NULs and authcid and passwd are not empty.
 */
struct smtp_sasl_plain {
	const char	*authzid;
	size_t		 authzidlen;
	const char	*authcid;
	size_t		 authcidlen;
	const char	*passwd;
	size_t		 passwdlen;
};
/*
 * A streaming scan of a message's header section for the From: field
 * (RFC 5322 3.6.2): every domain after an '@' outside quoted strings
 * and comments, also in an unquoted display name, is looked up in
 * local_domains.  State only; no octet of the content is kept.
 */
#define HFROM_DOMAIN_MAX 255
struct smtp_hfrom {
	int		 state;		/* private */
	int		 vstate;	/* private */
	unsigned	 depth;		/* comment nesting */
	char		 name[8];	/* field name, first octets */
	size_t		 namelen;
	int		 infrom;	/* inside a From: field */
	char		 dom[HFROM_DOMAIN_MAX + 1];
	size_t		 domlen;
	int		 domover;	/* longer than any domain */
	int		 done;		/* the header section is over */
	int		 local;		/* a local domain was found */
	char		 found[HFROM_DOMAIN_MAX + 1];	/* the first one */
};
void	smtp_hfrom_init(struct smtp_hfrom *);
void	smtp_hfrom_scan(struct smtp_hfrom *, const struct config *,
	    const char *, size_t);

/*
 * smtp_policy.c - the checks of untrusted clients (not relay_networks,
 * not authenticated) on the MX listeners.  Lookups start at connect,
 * HELO and MAIL and run on the loop; their verdict is given at RCPT
 * (so postmaster stays reachable), which waits for them (hold).
 */
struct event_base *smtp_in_base(struct config *);
int	smtp_policy_connect(struct smtp_session *);
int	smtp_policy_pregreet(struct smtp_session *, struct evbuffer *);
void	smtp_policy_helo(struct smtp_session *, const char *, size_t);
int	smtp_policy_mail(struct smtp_session *, const struct addr *);
int	smtp_policy_rcpt(struct smtp_session *, int);
int	smtp_policy_hold(struct smtp_session *, const char *, size_t);
void	smtp_policy_error(struct smtp_session *);
void	smtp_policy_free(struct smtp_session *);
void	smtp_policy_content(struct smtp_session *, const char *, size_t);
const char *smtp_policy_data_verdict(struct smtp_session *);
size_t	smtp_policy_auth_results(struct smtp_session *, char *, size_t);
/*
 * smtp_policy_helo_syntax - is a HELO argument a host name (LDH
 * labels) or an address literal (RFC 5321 4.1.3)?  Pure, for tests.
 */
int	smtp_policy_helo_syntax(const char *, size_t);

int	smtp_auth_b64_decode(const char *, size_t, char *, size_t,
	    size_t *);
int	smtp_auth_plain(const char *, size_t, struct smtp_sasl_plain *);

/* smtp_notify.c: notices of content actions (commit thread) */
struct content_verdict;
void	smtp_notify_content(const struct smtp_txn *,
	    const struct content_verdict *, int outbound, const char *host);

#endif
