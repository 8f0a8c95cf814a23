/*
 * milter.c - Sendmail milter protocol client (see milter.h).
 *
 * Wire format (libmilter mfdef.h; Vierling, "The Sendmail Milter
 * Protocol, Version 2"): every packet is a uint32 length in network
 * order, counting the command octet and the data that follow.  Strings
 * are NUL-terminated.
 *
 * Structure: the caller's calls become "ops" in a FIFO.  One engine
 * walks the head op over the milters in order: it sends the macros and
 * the command, and waits for the reply unless the milter negotiated
 * "no reply" for that stage.  At most one command is in flight per
 * session, which is what keeps libmilter's per-connection state machine
 * and ours in step (libmilter drops a command that is out of sequence
 * without replying, so pipelining would desynchronise it).  An op is
 * done when every milter has seen it or one gave a final verdict; its
 * callback is then called and the next op starts.
 *
 * Invariants: s->waiting is the milter whose connect or reply the head
 * op waits for, or NULL.  Every callback to the caller is made by the
 * engine, which runs only from libevent callbacks (the API functions
 * just activate s->kick).  s->depth counts those frames: a
 * milter_session_free() inside a callback only marks the session dying
 * and the outermost frame frees it.
 *
 * Failure grades: a milter that fails is dropped for the session and
 * its default action applies (milter.h); out of memory on a queue is -1
 * to the caller; a broken invariant panics.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "config.h"
#include "milter.h"

#define MILTER_TIMEOUT_DEF	30000	/* ms, when the conf says 0 */
#define MILTER_CONTENT_DEF	300000
#define MILTER_MACRO_NAME	40	/* "{cert_subject}" and the like */
#define MILTER_OP_OVERHEAD	64	/* queue accounting per op */

enum stage {
	ST_CONNECT,
	ST_HELO,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_HEADER,
	ST_EOH,
	ST_BODY,
	ST_EOM,
	ST_ABORT	/* internal: milter_abort() */
};

/* per stage: command, macro stage (SMFIM_*), flags, default macros */
struct stage_info {
	int		 cmd;
	int		 mstage;	/* -1: no macros */
	uint32_t	 no;		/* SMFIP_NO*: do not send */
	uint32_t	 nr;		/* SMFIP_NR_*: no reply */
	int		 msg;		/* part of a message */
	int		 content;	/* content timeout */
	const char	*macros;	/* Postfix's defaults (mail_params.h) */
};

enum mstate {
	M_CONNECTING,	/* connect and OPTNEG under way */
	M_READY,
	M_DEAD		/* dropped: its default action applies */
};

struct milter_session;

struct mconn {
	struct milter_session	*s;
	const struct scan_endpoint *ep;
	unsigned		 idx;
	int			 action;	/* enum conf_milter_action */
	enum mstate		 state;
	struct bufferevent	*bev;
	struct event		*timer;
	uint32_t		 version;
	uint32_t		 actions;
	uint32_t		 pflags;
	char			*lists;		/* OPTNEG data: macro lists */
	struct milter_optneg	 neg;
	int			 in_msg;	/* was sent a message stage */
	int			 done_msg;	/* accepted the message */
	int			 done_conn;	/* accepted the session */
	int			 skip_body;	/* answered SKIP */
	size_t			 mods_mark;	/* EOM: its first mod */
	size_t			 bytes_mark;
	int			 new_body;	/* EOM: sent a REPLBODY */
	char			*new_quar;	/* EOM: its QUARANTINE */
};

/* a verdict with its origin; reply is malloc'd */
struct verdict {
	enum milter_verdict	 v;
	const char		*who;
	int			 from_default;
	int			 close;
	char			*reply;
	size_t			 reply_len;
};

struct mop {
	TAILQ_ENTRY(mop)	 link;
	enum stage		 st;
	milter_cb		 cb;
	void			*arg;
	size_t			 size;		/* queue accounting */
	unsigned		 mi;		/* next milter to ask */
	int			 started;
	int			 stop;		/* a final verdict came */
	struct verdict		 vd;
	size_t			 nlen;		/* HEADER: name length */
	size_t			 lead;		/* HEADER: leading blanks */
	size_t			 alen;		/* MAIL, RCPT: address */
	size_t			 len;
	char			 data[];	/* the command's data */
};

struct macro {
	char			 name[MILTER_MACRO_NAME];
	char			*value;
	size_t			 len;
};

struct modrec {
	enum milter_mod_type	 type;
	unsigned		 milter;
	uint32_t		 index;
	size_t			 noff, nlen, voff, vlen;
};

struct milter_session {
	struct event_base	*base;
	struct milter_conf	 conf;
	struct mconn		*m;
	size_t			 n;
	struct event		*kick;
	TAILQ_HEAD(, mop)	 ops;
	size_t			 queued;
	struct mconn		*waiting;
	int			 depth;
	int			 dying;
	int			 conn_final;	/* a milter refused the session */
	struct verdict		 conn_vd;
	int			 msg_final;	/* the message is decided */
	struct verdict		 msg_vd;
	struct macro		 macros[MILTER_MACROS_MAX];
	size_t			 nmacros;
	/* end-of-message modifications, committed per milter */
	struct modrec		*mods;
	size_t			 nmods;
	size_t			 capmods;
	struct buf		 modbytes;
	struct buf		 body;		/* committed replacement */
	int			 body_replaced;
	struct buf		 newbody;	/* of the milter being asked */
	char			*quarantine;
};

static const struct stage_info stages[] = {
	[ST_CONNECT] = { SMFIC_CONNECT, 0, SMFIP_NOCONNECT, SMFIP_NR_CONN,
	    0, 0, "j {daemon_name} {client_addr} {client_port} "
	    "{client_name} {client_ptr} _" },
	[ST_HELO] = { SMFIC_HELO, 1, SMFIP_NOHELO, SMFIP_NR_HELO, 0, 0,
	    "{tls_version} {cipher} {cipher_bits} {cert_subject} "
	    "{cert_issuer}" },
	[ST_MAIL] = { SMFIC_MAIL, 2, SMFIP_NOMAIL, SMFIP_NR_MAIL, 1, 0,
	    "i {auth_type} {auth_authen} {auth_author} {mail_addr} "
	    "{mail_host} {mail_mailer}" },
	[ST_RCPT] = { SMFIC_RCPT, 3, SMFIP_NORCPT, SMFIP_NR_RCPT, 1, 0,
	    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}" },
	[ST_DATA] = { SMFIC_DATA, 4, SMFIP_NODATA, SMFIP_NR_DATA, 1, 0,
	    "i" },
	[ST_HEADER] = { SMFIC_HEADER, -1, SMFIP_NOHDRS, SMFIP_NR_HDR, 1, 1,
	    NULL },
	[ST_EOH] = { SMFIC_EOH, 6, SMFIP_NOEOH, SMFIP_NR_EOH, 1, 1, "i" },
	[ST_BODY] = { SMFIC_BODY, -1, SMFIP_NOBODY, SMFIP_NR_BODY, 1, 1,
	    NULL },
	[ST_EOM] = { SMFIC_BODYEOB, 5, 0, 0, 1, 1, "i" },
	[ST_ABORT] = { SMFIC_ABORT, -1, 0, 0, 1, 0, NULL },
};

/* the action each modification needs (libmilter smfi_* checks) */
static const struct {
	int		 code;
	uint32_t	 need;
} mod_actions[] = {
	{ SMFIR_ADDHEADER,	SMFIF_ADDHDRS },
	{ SMFIR_INSHEADER,	SMFIF_ADDHDRS | SMFIF_CHGHDRS },
	{ SMFIR_CHGHEADER,	SMFIF_CHGHDRS },
	{ SMFIR_CHGFROM,	SMFIF_CHGFROM },
	{ SMFIR_ADDRCPT,	SMFIF_ADDRCPT },
	{ SMFIR_ADDRCPT_PAR,	SMFIF_ADDRCPT_PAR },
	{ SMFIR_DELRCPT,	SMFIF_DELRCPT },
	{ SMFIR_REPLBODY,	SMFIF_CHGBODY },
	{ SMFIR_QUARANTINE,	SMFIF_QUARANTINE },
};

static struct mop *op_new(struct milter_session *, enum stage, size_t,
		    milter_cb, void *);
static int	 op_queue(struct milter_session *, struct mop *);
static void	 op_free(struct mop *);
static int	 envelope(struct milter_session *, enum stage, const char *,
		    size_t, const char *, size_t, milter_cb, void *);
static void	 kick(struct milter_session *);
static void	 kick_cb(evutil_socket_t, short, void *);
static void	 engine(struct milter_session *);
static int	 op_step(struct milter_session *, struct mop *);
static void	 op_begin(struct milter_session *, struct mop *);
static void	 op_done(struct milter_session *, struct mop *);
static int	 op_mods(struct milter_session *, struct milter_status *,
		    struct milter_mod **);
static int	 m_wants(const struct mconn *, const struct mop *);
static int	 m_finished(const struct mconn *, enum stage);
static int	 m_default(struct milter_session *, struct mop *,
		    struct mconn *);
static void	 m_send_op(struct mconn *, struct mop *);
static void	 m_send_macros(struct mconn *, enum stage);
static void	 m_send(struct mconn *, int, const void *, size_t);
static void	 m_connect(struct mconn *);
static void	 m_fail(struct mconn *, const char *);
static void	 m_close(struct mconn *, int);
static void	 m_arm(struct mconn *, enum stage);
static void	 m_read_cb(struct bufferevent *, void *);
static void	 m_event_cb(struct bufferevent *, short, void *);
static void	 m_timer_cb(evutil_socket_t, short, void *);
static int	 m_packet(struct mconn *, int, const char *, size_t);
static int	 m_optneg(struct mconn *, const char *, size_t);
static int	 m_reply(struct mconn *, const struct milter_reply *);
static int	 m_mod(struct mconn *, const struct milter_reply *);
static void	 m_next(struct mconn *, struct mop *);
static void	 m_verdict(struct mconn *, struct mop *, enum milter_verdict,
		    const struct milter_reply *, int);
static void	 msg_end(struct milter_session *, int);
static void	 msg_reset(struct milter_session *);
static void	 vd_set(struct verdict *, const struct verdict *);
static void	 vd_clear(struct verdict *);
static int	 macro_put(struct milter_session *, const char *,
		    const char *, size_t);
static const struct macro *macro_get(const struct milter_session *,
		    const char *, size_t);
static int	 session_enter(struct milter_session *);
static void	 session_leave(struct milter_session *);
static void	 session_destroy(struct milter_session *);
static int	 take_str(const char **, size_t *, const char **, size_t *);
static int	 text_ok(const char *, size_t, size_t);
static int	 hname_ok(const char *, size_t);
static uint32_t	 get32(const char *);
static void	 put32(unsigned char *, uint32_t);
static unsigned	 ms_or(unsigned, unsigned);

/* milter_session_start - one connection per configured milter */
struct milter_session *
milter_session_start(struct event_base *base, const struct milter_conf *conf)
{
	struct milter_session	*s;
	const char		*h;
	size_t			 i;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->conf = *conf;
	TAILQ_INIT(&s->ops);
	buf_init(&s->modbytes, MILTER_MODS_BYTES);
	buf_init(&s->body, conf->body_max);
	buf_init(&s->newbody, conf->body_max);
	if ((s->kick = event_new(base, -1, 0, kick_cb, s)) == NULL ||
	    (conf->nmilters > 0 && (s->m = calloc(conf->nmilters,
	    sizeof(*s->m))) == NULL))
		goto fail;
	h = conf->hostname != NULL ? conf->hostname : "localhost";
	if (macro_put(s, "j", h, strlen(h)) == -1 ||
	    macro_put(s, "{daemon_name}", conf->daemon_name != NULL ?
	    conf->daemon_name : h, strlen(conf->daemon_name != NULL ?
	    conf->daemon_name : h)) == -1)
		goto fail;
	for (i = 0; i < conf->nmilters; i++) {
		s->m[i].s = s;
		s->m[i].ep = &conf->milters[i];
		s->m[i].idx = (unsigned)i;
		s->m[i].action = conf->milters[i].action >= 0 ?
		    conf->milters[i].action : conf->default_action;
		if ((s->m[i].timer = evtimer_new(base, m_timer_cb,
		    &s->m[i])) == NULL)
			goto fail;
		s->n = i + 1;
	}
	for (i = 0; i < s->n; i++)
		m_connect(&s->m[i]);
	return s;
fail:
	session_destroy(s);
	return NULL;
}

/* milter_macro_set - name as the milter sees it: "i", "{auth_authen}" */
int
milter_macro_set(struct milter_session *s, const char *name,
    const char *value, size_t len)
{
	return macro_put(s, name, value, len);
}

/* milter_connect - SMFIC_CONNECT: hostname, family, port, address */
int
milter_connect(struct milter_session *s, const char *hostname,
    const struct sockaddr *sa, milter_cb cb, void *arg)
{
	char		 addr[INET6_ADDRSTRLEN + 1], port[8];
	char		 us[MILTER_NAME_MAX + INET6_ADDRSTRLEN + 8];
	const struct sockaddr_un *sun;
	struct mop	*op;
	size_t		 hl = strlen(hostname), al = 0, n;
	unsigned	 p = 0;
	char		 fam = 'U';
	int		 r;

	addr[0] = '\0';
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		p = ntohs(sin->sin_port);
		fam = '4';
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		p = ntohs(sin6->sin6_port);
		fam = '6';
	} else if (sa != NULL && sa->sa_family == AF_UNIX) {
		sun = (const void *)sa;
		n = strnlen(sun->sun_path, sizeof(sun->sun_path));
		if (n >= sizeof(addr))
			n = sizeof(addr) - 1;
		memcpy(addr, sun->sun_path, n);
		addr[n] = '\0';
		fam = 'L';
	}
	al = strlen(addr);
	if (hl > MILTER_NAME_MAX)
		return -1;
	if ((op = op_new(s, ST_CONNECT, hl + al + 5, cb, arg)) == NULL)
		return -1;
	memcpy(op->data, hostname, hl + 1);
	n = hl + 1;
	op->data[n++] = fam;
	if (fam != 'U') {
		/* the port in network order, then the address (libmilter
		   st_connectinfo) */
		op->data[n++] = (char)(p >> 8);
		op->data[n++] = (char)(p & 0xff);
		memcpy(op->data + n, addr, al + 1);
		n += al + 1;
	}
	op->len = n;
	r = snprintf(port, sizeof(port), "%u", p);
	if (r < 0 || (size_t)r >= sizeof(port))
		panic("milter: port text");
	r = snprintf(us, sizeof(us), "%s [%s]", hostname, addr);
	if (r < 0 || (size_t)r >= sizeof(us))
		panic("milter: client text");
	if (macro_put(s, "{client_addr}", addr, al) == -1 ||
	    macro_put(s, "{client_port}", port, strlen(port)) == -1 ||
	    macro_put(s, "{client_name}", hostname, hl) == -1 ||
	    macro_put(s, "{client_ptr}", hostname, hl) == -1 ||
	    macro_put(s, "_", us, strlen(us)) == -1) {
		op_free(op);
		return -1;
	}
	return op_queue(s, op);
}

/* milter_helo - SMFIC_HELO: the HELO/EHLO argument */
int
milter_helo(struct milter_session *s, const char *p, size_t len,
    milter_cb cb, void *arg)
{
	struct mop	*op;

	if (len > MILTER_LINE_MAX || memchr(p, '\0', len) != NULL)
		return -1;
	if ((op = op_new(s, ST_HELO, len + 1, cb, arg)) == NULL)
		return -1;
	memcpy(op->data, p, len);
	op->data[len] = '\0';
	return op_queue(s, op);
}

/*
 * envelope - SMFIC_MAIL and SMFIC_RCPT: "<addr>\0" then each ESMTP
 * parameter NUL-terminated (an array, libmilter dec_argv)
 */
static int
envelope(struct milter_session *s, enum stage st, const char *a, size_t al,
    const char *pp, size_t pl, milter_cb cb, void *arg)
{
	struct mop	*op;
	size_t		 i, n;

	if (al > MILTER_NAME_MAX || pl > MILTER_LINE_MAX ||
	    memchr(a, '\0', al) != NULL || memchr(pp, '\0', pl) != NULL)
		return -1;
	if ((op = op_new(s, st, al + pl + 4, cb, arg)) == NULL)
		return -1;
	op->data[0] = '<';
	memcpy(op->data + 1, a, al);
	op->data[al + 1] = '>';
	op->data[al + 2] = '\0';
	op->alen = al;
	n = al + 3;
	for (i = 0; i < pl; i++) {
		if (pp[i] == ' ') {
			if (n > 0 && op->data[n - 1] != '\0')
				op->data[n++] = '\0';
		} else
			op->data[n++] = pp[i];
	}
	if (op->data[n - 1] != '\0')
		op->data[n++] = '\0';
	op->len = n;
	return op_queue(s, op);
}

int
milter_mail(struct milter_session *s, const char *a, size_t al,
    const char *pp, size_t pl, milter_cb cb, void *arg)
{
	return envelope(s, ST_MAIL, a, al, pp, pl, cb, arg);
}

int
milter_rcpt(struct milter_session *s, const char *a, size_t al,
    const char *pp, size_t pl, milter_cb cb, void *arg)
{
	return envelope(s, ST_RCPT, a, al, pp, pl, cb, arg);
}

/* milter_data - SMFIC_DATA (protocol version 4 and later) */
int
milter_data(struct milter_session *s, milter_cb cb, void *arg)
{
	struct mop	*op;

	if ((op = op_new(s, ST_DATA, 0, cb, arg)) == NULL)
		return -1;
	return op_queue(s, op);
}

/*
 * milter_header - SMFIC_HEADER "name\0value\0"; the value keeps its
 * leading blanks here (op->lead says how many) for the milters that
 * asked for SMFIP_HDR_LEADSPC, and its CRLF folding becomes "\n"
 */
int
milter_header(struct milter_session *s, const char *name, size_t nl,
    const char *v, size_t vl, milter_cb cb, void *arg)
{
	struct mop	*op;
	size_t		 i, n;

	if (!hname_ok(name, nl) || memchr(v, '\0', vl) != NULL)
		return -1;
	if ((op = op_new(s, ST_HEADER, nl + vl + 2, cb, arg)) == NULL)
		return -1;
	memcpy(op->data, name, nl);
	op->data[nl] = '\0';
	op->nlen = nl;
	n = nl + 1;
	for (i = 0; i < vl; i++) {
		if (v[i] == '\r' && i + 1 < vl && v[i + 1] == '\n')
			continue;
		op->data[n++] = v[i];
	}
	op->data[n++] = '\0';
	op->len = n;
	while (op->lead < n - nl - 2 && (op->data[nl + 1 + op->lead] == ' ' ||
	    op->data[nl + 1 + op->lead] == '\t'))
		op->lead++;
	return op_queue(s, op);
}

int
milter_eoh(struct milter_session *s, milter_cb cb, void *arg)
{
	struct mop	*op;

	if ((op = op_new(s, ST_EOH, 0, cb, arg)) == NULL)
		return -1;
	return op_queue(s, op);
}

/* milter_body - SMFIC_BODY chunks of at most MILTER_CHUNK_SIZE */
int
milter_body(struct milter_session *s, const void *p, size_t len,
    milter_cb cb, void *arg)
{
	const char	*d = p;
	struct mop	*op;
	size_t		 k;

	if (len > MILTER_QUEUE_MAX ||
	    s->queued + len + MILTER_OP_OVERHEAD * (len / MILTER_CHUNK_SIZE +
	    1) > MILTER_QUEUE_MAX)
		return -1;
	if (len == 0) {
		/* nothing to send, but the callback still comes in order */
		if ((op = op_new(s, ST_BODY, 0, cb, arg)) == NULL)
			return -1;
		return op_queue(s, op);
	}
	while (len > 0) {
		k = len < MILTER_CHUNK_SIZE ? len : MILTER_CHUNK_SIZE;
		/* the callback goes with the last chunk */
		if ((op = op_new(s, ST_BODY, k, k == len ? cb : NULL,
		    k == len ? arg : NULL)) == NULL)
			return -1;
		memcpy(op->data, d, k);
		op->len = k;
		if (op_queue(s, op) == -1)
			return -1;
		d += k;
		len -= k;
	}
	return 0;
}

/* milter_eom - SMFIC_BODYEOB; the status carries the modifications */
int
milter_eom(struct milter_session *s, milter_cb cb, void *arg)
{
	struct mop	*op;

	if ((op = op_new(s, ST_EOM, 0, cb, arg)) == NULL)
		return -1;
	return op_queue(s, op);
}

/*
 * milter_abort - drop the queued calls of the message (an op in flight
 * finishes, silently) and queue SMFIC_ABORT
 */
void
milter_abort(struct milter_session *s)
{
	struct mop	*op, *next;

	for (op = TAILQ_FIRST(&s->ops); op != NULL; op = next) {
		next = TAILQ_NEXT(op, link);
		if (!stages[op->st].msg)
			continue;
		if (op->started) {
			op->cb = NULL;
			continue;
		}
		TAILQ_REMOVE(&s->ops, op, link);
		s->queued -= op->size;
		op_free(op);
	}
	/*
	 * Past the queue bound if need be; without memory it is left out,
	 * since the next milter_mail() aborts the milters still in a
	 * message anyway (op_begin)
	 */
	if ((op = op_new(s, ST_ABORT, 0, NULL, NULL)) == NULL)
		return;
	TAILQ_INSERT_TAIL(&s->ops, op, link);
	s->queued += op->size;
	kick(s);
}

/* milter_session_free - now, or when the callback in progress returns */
void
milter_session_free(struct milter_session *s)
{
	if (s == NULL)
		return;
	if (s->depth > 0)
		s->dying = 1;
	else
		session_destroy(s);
}

/* milter_pkt_append - one packet into b */
int
milter_pkt_append(struct buf *b, int cmd, const void *data, size_t len)
{
	unsigned char	 h[5];

	if (len >= MILTER_PACKET_MAX)
		return -1;
	put32(h, (uint32_t)len + 1);
	h[4] = (unsigned char)cmd;
	if (buf_append(b, h, sizeof(h)) == -1 ||
	    (len > 0 && buf_append(b, data, len) == -1))
		return -1;
	return 0;
}

/* milter_pkt_length - the length field, 0 when out of bounds */
size_t
milter_pkt_length(const unsigned char *p)
{
	uint32_t	 n = get32((const char *)p);

	return n == 0 || n > MILTER_PACKET_MAX ? 0 : n;
}

/* milter_reply_decode - check one reply's data against its code */
int
milter_reply_decode(int code, const char *p, size_t len,
    struct milter_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	switch (code) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_PROGRESS:
	case SMFIR_SKIP:
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL:
		/* libmilter sends no data with these */
		return len == 0 ? 0 : -1;
	case SMFIR_REPLYCODE:
		if (take_str(&p, &len, &r->s1, &r->l1) == -1 || len != 0 ||
		    (r->reply_class = milter_replycode_check(r->s1,
		    r->l1)) == -1)
			return -1;
		return 0;
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (len < 4)
			return -1;
		r->index = get32(p);
		p += 4;
		len -= 4;
		/* FALLTHROUGH */
	case SMFIR_ADDHEADER:
		if (take_str(&p, &len, &r->s1, &r->l1) == -1 ||
		    take_str(&p, &len, &r->s2, &r->l2) == -1 || len != 0 ||
		    !hname_ok(r->s1, r->l1))
			return -1;
		return 0;
	case SMFIR_CHGFROM:
	case SMFIR_ADDRCPT_PAR:
		if (take_str(&p, &len, &r->s1, &r->l1) == -1 ||
		    (len > 0 && take_str(&p, &len, &r->s2, &r->l2) == -1) ||
		    len != 0)
			return -1;
		if (r->s2 == NULL)
			r->s2 = "";
		return text_ok(r->s1, r->l1, MILTER_NAME_MAX) && r->l1 > 0 &&
		    text_ok(r->s2, r->l2, MILTER_LINE_MAX) ? 0 : -1;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
	case SMFIR_QUARANTINE:
		if (take_str(&p, &len, &r->s1, &r->l1) == -1 || len != 0)
			return -1;
		r->s2 = "";
		return text_ok(r->s1, r->l1, MILTER_NAME_MAX) && r->l1 > 0 ?
		    0 : -1;
	case SMFIR_REPLBODY:
		r->s1 = p;
		r->l1 = len;
		return 0;
	default:
		return -1;
	}
}

/* milter_optneg_decode - version, actions, protocol, macro lists */
int
milter_optneg_decode(const char *p, size_t len, struct milter_optneg *o)
{
	const char	*s;
	size_t		 l;
	uint32_t	 st;

	memset(o, 0, sizeof(*o));
	if (len < MILTER_OPTLEN)
		return -1;
	o->version = get32(p);
	o->actions = get32(p + 4);
	o->protocol = get32(p + 8);
	if (o->version < MILTER_PROT_VERSION_MIN ||
	    o->version > MILTER_PROT_VERSION ||
	    (o->actions & ~(uint32_t)MILTER_ACTIONS) != 0 ||
	    (o->protocol & ~(uint32_t)MILTER_PROTOCOL) != 0)
		return -1;
	p += MILTER_OPTLEN;
	len -= MILTER_OPTLEN;
	/* macro lists: uint32 stage, names NUL-terminated (libmilter
	   milter_addsymlist) */
	while (len > 0) {
		if (len < 5)
			return -1;
		st = get32(p);
		p += 4;
		len -= 4;
		if (st >= MILTER_STAGES || o->list[st] != NULL ||
		    take_str(&p, &len, &s, &l) == -1 ||
		    !text_ok(s, l, MILTER_LINE_MAX))
			return -1;
		o->list[st] = s;
		o->list_len[st] = l;
	}
	return 0;
}

/* milter_header_value - CRLF folding, continuation lines start blank */
int
milter_header_value(struct buf *b, const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\r') {
			if (i + 1 >= len || p[i + 1] != '\n')
				return -1;
			continue;
		}
		if (p[i] == '\n') {
			if (i + 1 >= len || (p[i + 1] != ' ' &&
			    p[i + 1] != '\t'))
				return -1;
			if (buf_append(b, "\r\n", 2) == -1)
				return -1;
			continue;
		}
		if ((unsigned char)p[i] < 0x20 && p[i] != '\t')
			return -1;
		if (p[i] == 0x7f || buf_append(b, p + i, 1) == -1)
			return -1;
	}
	return 0;
}

/* milter_replycode_check - "ddd x.y.z text" lines joined by CRLF */
int
milter_replycode_check(const char *p, size_t len)
{
	const char	*line = p, *end = p + len, *eol;
	size_t		 ll, i;

	if (len < 3 || len > MILTER_REPLY_MAX || (p[0] != '4' && p[0] != '5') ||
	    p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
		return -1;
	for (;;) {
		eol = memchr(line, '\r', (size_t)(end - line));
		ll = eol != NULL ? (size_t)(eol - line) : (size_t)(end - line);
		if (ll < 3 || ll > MILTER_LINE_MAX || memcmp(line, p, 3) != 0)
			return -1;
		/* more lines follow "ddd-", the last is "ddd" or "ddd " */
		if (eol != NULL ? ll < 4 || line[3] != '-' :
		    ll > 3 && line[3] != ' ')
			return -1;
		for (i = 0; i < ll; i++)
			if (line[i] < 0x20 || line[i] > 0x7e)
				return -1;
		if (eol == NULL)
			return p[0] - '0';
		if (eol + 1 >= end || eol[1] != '\n' || eol + 2 >= end)
			return -1;
		line = eol + 2;
	}
}

/* ---- the op queue and the engine ------------------------------------ */

static struct mop *
op_new(struct milter_session *s, enum stage st, size_t len, milter_cb cb,
    void *arg)
{
	struct mop	*op;

	if (s->dying)
		return NULL;
	if ((op = calloc(1, sizeof(*op) + len + 1)) == NULL)
		return NULL;
	op->st = st;
	op->cb = cb;
	op->arg = arg;
	op->size = len + MILTER_OP_OVERHEAD;
	return op;
}

static int
op_queue(struct milter_session *s, struct mop *op)
{
	if (s->queued + op->size > MILTER_QUEUE_MAX) {
		op_free(op);
		return -1;
	}
	TAILQ_INSERT_TAIL(&s->ops, op, link);
	s->queued += op->size;
	kick(s);
	return 0;
}

static void
op_free(struct mop *op)
{
	vd_clear(&op->vd);
	free(op);
}

static void
kick(struct milter_session *s)
{
	if (!s->dying)
		event_active(s->kick, EV_TIMEOUT, 0);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_session	*s = arg;

	if (session_enter(s) == 0)
		engine(s);
	session_leave(s);
}

/* engine - advance the head op as far as it goes without waiting */
static void
engine(struct milter_session *s)
{
	struct mop	*op;

	while (!s->dying && s->waiting == NULL &&
	    (op = TAILQ_FIRST(&s->ops)) != NULL) {
		if (op_step(s, op) == -1)
			return;		/* waiting for a milter */
		op_done(s, op);
	}
}

/* op_step - 0 when the op is done, -1 when it waits */
static int
op_step(struct milter_session *s, struct mop *op)
{
	struct mconn	*m;

	if (!op->started) {
		op->started = 1;
		op_begin(s, op);
	}
	if (op->stop || op->st == ST_ABORT)
		return 0;
	for (; op->mi < s->n; op->mi++) {
		m = &s->m[op->mi];
		if (m->state == M_CONNECTING) {
			s->waiting = m;
			return -1;
		}
		if (m->state == M_DEAD) {
			if (m_default(s, op, m) == -1)
				return 0;
			continue;
		}
		if (!m_wants(m, op))
			continue;
		m_send_op(m, op);
		if (m->state == M_DEAD) {	/* out of memory */
			if (m_default(s, op, m) == -1)
				return 0;
			continue;
		}
		if (m->pflags & stages[op->st].nr)
			continue;
		s->waiting = m;
		m_arm(m, op->st);
		return -1;
	}
	return 0;
}

/*
 * op_begin - what an op does before the milters see it: session and
 * message verdicts already reached answer at once; MAIL starts a new
 * message; ABORT ends one
 */
static void
op_begin(struct milter_session *s, struct mop *op)
{
	if (s->conn_final && op->st != ST_ABORT) {
		vd_set(&op->vd, &s->conn_vd);
		op->stop = 1;
		return;
	}
	switch (op->st) {
	case ST_MAIL:
		msg_end(s, 1);
		if (macro_put(s, "{mail_addr}", op->data + 1, op->alen) == -1 ||
		    macro_put(s, "{mail_mailer}", "smtp", 4) == -1)
			fatal("milter: macro");
		return;
	case ST_ABORT:
		msg_end(s, 1);
		return;
	case ST_RCPT:
		if (macro_put(s, "{rcpt_addr}", op->data + 1, op->alen) == -1 ||
		    macro_put(s, "{rcpt_mailer}", "smtp", 4) == -1)
			fatal("milter: macro");
		break;
	default:
		break;
	}
	if (stages[op->st].msg && s->msg_final) {
		vd_set(&op->vd, &s->msg_vd);
		op->stop = 1;
	}
}

/* op_done - the callback, then the op is gone */
static void
op_done(struct milter_session *s, struct mop *op)
{
	struct milter_status	 st;
	struct milter_mod	*mods = NULL;
	size_t			 i;
	int			 all = s->n > 0;

	TAILQ_REMOVE(&s->ops, op, link);
	s->queued -= op->size;
	memset(&st, 0, sizeof(st));
	st.verdict = op->vd.v;
	st.reply = op->vd.reply;
	st.reply_len = op->vd.reply_len;
	st.close = op->vd.close;
	st.milter = op->vd.who;
	st.from_default = op->vd.from_default;
	if (!op->stop) {
		for (i = 0; i < s->n; i++)
			if (!m_finished(&s->m[i], op->st))
				all = 0;
		st.verdict = all ? MILTER_ACCEPT : MILTER_CONTINUE;
		if (op->st == ST_EOM && op_mods(s, &st, &mods) == -1) {
			st.verdict = MILTER_TEMPFAIL;
			st.nmods = 0;
		}
	}
	if (op->cb != NULL) {
		s->depth++;
		op->cb(&st, op->arg);
		s->depth--;
	}
	free(mods);
	if (op->st == ST_EOM)
		msg_end(s, 0);
	op_free(op);
}

/* op_mods - the committed modifications as the status shows them */
static int
op_mods(struct milter_session *s, struct milter_status *st,
    struct milter_mod **out)
{
	struct milter_mod	*v;
	size_t			 i;

	*out = NULL;
	if (s->nmods > 0) {
		if ((v = calloc(s->nmods, sizeof(*v))) == NULL)
			return -1;
		for (i = 0; i < s->nmods; i++) {
			v[i].type = s->mods[i].type;
			v[i].milter = s->mods[i].milter;
			v[i].index = s->mods[i].index;
			v[i].name = s->modbytes.data + s->mods[i].noff;
			v[i].name_len = s->mods[i].nlen;
			v[i].value = s->modbytes.data + s->mods[i].voff;
			v[i].value_len = s->mods[i].vlen;
		}
		*out = v;
	}
	st->mods = *out;
	st->nmods = s->nmods;
	st->body_replaced = s->body_replaced;
	st->body = s->body_replaced ? s->body.data : NULL;
	st->body_len = s->body_replaced ? s->body.len : 0;
	st->quarantine = s->quarantine;
	return 0;
}

/* m_wants - does this milter get this stage? */
static int
m_wants(const struct mconn *m, const struct mop *op)
{
	const struct stage_info	*si = &stages[op->st];

	if (m->done_conn || (si->msg && m->done_msg))
		return 0;
	if (m->pflags & si->no)
		return 0;
	if (op->st == ST_BODY && (m->skip_body || op->len == 0))
		return 0;
	/* SMFIC_DATA came with protocol version 4 */
	if (op->st == ST_DATA && m->version < 4)
		return 0;
	return 1;
}

/* m_finished - nothing more to ask this milter for the stage's scope */
static int
m_finished(const struct mconn *m, enum stage st)
{
	if (m->state == M_DEAD)
		return m->action == CONF_MILTER_ACCEPT;
	return m->done_conn || (stages[st].msg && m->done_msg);
}

/*
 * m_default - a dropped milter's default action for op: 0 to go on
 * without it, -1 when the op is decided
 */
static int
m_default(struct milter_session *s, struct mop *op, struct mconn *m)
{
	struct verdict	 vd;

	if (m->action == CONF_MILTER_ACCEPT || op->st == ST_ABORT)
		return 0;
	memset(&vd, 0, sizeof(vd));
	vd.v = m->action == CONF_MILTER_REJECT ? MILTER_REJECT :
	    MILTER_TEMPFAIL;
	vd.who = m->ep->text;
	vd.from_default = 1;
	vd_set(&op->vd, &vd);
	op->stop = 1;
	if (stages[op->st].msg && op->st != ST_RCPT) {
		msg_end(s, 1);
		vd_set(&s->msg_vd, &vd);
		s->msg_final = 1;
	}
	return -1;
}

/* m_send_op - macros, then the command (header: per LEADSPC) */
static void
m_send_op(struct mconn *m, struct mop *op)
{
	struct buf	 b;

	m_send_macros(m, op->st);
	if (stages[op->st].msg)
		m->in_msg = 1;
	if (op->st == ST_EOM) {
		m->mods_mark = m->s->nmods;
		m->bytes_mark = m->s->modbytes.len;
		m->new_body = 0;
		free(m->new_quar);
		m->new_quar = NULL;
	}
	if (op->st != ST_HEADER || (m->pflags & SMFIP_HDR_LEADSPC) ||
	    op->lead == 0) {
		m_send(m, stages[op->st].cmd, op->data, op->len);
		return;
	}
	buf_init(&b, 0);
	if (buf_append(&b, op->data, op->nlen + 1) == -1 ||
	    buf_append(&b, op->data + op->nlen + 1 + op->lead,
	    op->len - op->nlen - 1 - op->lead) == -1)
		m_fail(m, "out of memory");
	else
		m_send(m, SMFIC_HEADER, b.data, b.len);
	buf_free(&b);
}

/*
 * m_send_macros - SMFIC_MACRO: the stage's command, then name and value
 * of each macro of the milter's list (or the default) that has a value
 */
static void
m_send_macros(struct mconn *m, enum stage st)
{
	const struct stage_info	*si = &stages[st];
	const struct macro	*mc;
	const char		*l, *end, *w;
	struct buf		 b;
	char			 c = (char)si->cmd;

	if (si->mstage < 0)
		return;
	if (m->neg.list[si->mstage] != NULL) {
		l = m->neg.list[si->mstage];
		end = l + m->neg.list_len[si->mstage];
	} else {
		l = si->macros;
		end = l + strlen(l);
	}
	buf_init(&b, 0);
	if (buf_append(&b, &c, 1) == -1)
		goto fail;
	while (l < end) {
		while (l < end && (*l == ' ' || *l == ','))
			l++;
		for (w = l; l < end && *l != ' ' && *l != ','; l++)
			;
		if (l == w || (mc = macro_get(m->s, w, (size_t)(l - w))) ==
		    NULL)
			continue;
		if (buf_append(&b, mc->name, strlen(mc->name) + 1) == -1 ||
		    buf_append(&b, mc->value, mc->len + 1) == -1)
			goto fail;
	}
	if (b.len > 1)
		m_send(m, SMFIC_MACRO, b.data, b.len);
	buf_free(&b);
	return;
fail:
	buf_free(&b);
	m_fail(m, "out of memory");
}

/* m_send - one packet on the milter's connection */
static void
m_send(struct mconn *m, int cmd, const void *data, size_t len)
{
	unsigned char	 h[5];
	struct evbuffer	*out;

	if (m->bev == NULL)
		return;
	out = bufferevent_get_output(m->bev);
	put32(h, (uint32_t)len + 1);
	h[4] = (unsigned char)cmd;
	if (evbuffer_add(out, h, sizeof(h)) == -1 ||
	    (len > 0 && evbuffer_add(out, data, len) == -1))
		m_fail(m, "out of memory");
}

/* m_connect - start the connection; OPTNEG waits in the output */
static void
m_connect(struct mconn *m)
{
	unsigned char	 o[MILTER_OPTLEN];
	struct timeval	 tv;
	unsigned	 ms = ms_or(m->s->conf.connect_timeout_ms,
			    MILTER_TIMEOUT_DEF);

	m->state = M_CONNECTING;
	if ((m->bev = bufferevent_socket_new(m->s->base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		m_fail(m, "out of memory");
		return;
	}
	bufferevent_setcb(m->bev, m_read_cb, NULL, m_event_cb, m);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(m->timer, &tv);
	put32(o, MILTER_PROT_VERSION);
	put32(o + 4, MILTER_ACTIONS);
	put32(o + 8, MILTER_PROTOCOL);
	m_send(m, SMFIC_OPTNEG, o, sizeof(o));
	if (m->bev == NULL)
		return;
	if (bufferevent_enable(m->bev, EV_READ | EV_WRITE) == -1 ||
	    bufferevent_socket_connect(m->bev,
	    (const struct sockaddr *)&m->ep->ss, (int)m->ep->sslen) == -1)
		m_fail(m, strerror(errno));
}

/* m_fail - drop the milter for the session; the engine applies its
   default action where it would have been asked */
static void
m_fail(struct mconn *m, const char *why)
{
	struct milter_session	*s = m->s;

	if (m->state == M_DEAD)
		return;
	log_warnx("event=milter_failure milter=%s reason=\"%s\" action=%s",
	    m->ep->text, why, m->action == CONF_MILTER_ACCEPT ? "accept" :
	    m->action == CONF_MILTER_REJECT ? "reject" : "tempfail");
	/* a milter that fails during end of message leaves nothing */
	if (s->waiting == m && TAILQ_FIRST(&s->ops) != NULL &&
	    TAILQ_FIRST(&s->ops)->st == ST_EOM) {
		s->nmods = m->mods_mark;
		s->modbytes.len = m->bytes_mark;
	}
	m_close(m, 0);
	m->state = M_DEAD;
	if (s->waiting == m) {
		s->waiting = NULL;
		kick(s);
	}
}

/* m_close - free the connection; quit: say SMFIC_QUIT first if we can */
static void
m_close(struct mconn *m, int quit)
{
	static const unsigned char	 q[5] = { 0, 0, 0, 1, SMFIC_QUIT };
	struct evbuffer			*out;
	unsigned char			*p;
	evutil_socket_t			 fd;

	if (m->bev != NULL) {
		fd = bufferevent_getfd(m->bev);
		out = bufferevent_get_output(m->bev);
		/*
		 * Best effort, without waiting: what is queued (an ABORT)
		 * and QUIT go out now if the socket takes them; otherwise
		 * the milter sees EOF, which libmilter also takes as the end
		 */
		if (quit && m->state == M_READY && fd != -1 &&
		    evbuffer_add(out, q, sizeof(q)) == 0 &&
		    (p = evbuffer_pullup(out, -1)) != NULL &&
		    write(fd, p, evbuffer_get_length(out)) == -1) {
			/* the output's front is the bufferevent's: write
			   a copy; a short or failed write is just EOF */
		}
		bufferevent_free(m->bev);
		m->bev = NULL;
	}
	if (m->timer != NULL)
		evtimer_del(m->timer);
	free(m->lists);
	m->lists = NULL;
	memset(&m->neg, 0, sizeof(m->neg));
	free(m->new_quar);
	m->new_quar = NULL;
}

/* m_arm - the reply timeout of a stage */
static void
m_arm(struct mconn *m, enum stage st)
{
	struct timeval	 tv;
	unsigned	 ms;

	ms = stages[st].content ? ms_or(m->s->conf.content_timeout_ms,
	    MILTER_CONTENT_DEF) : ms_or(m->s->conf.command_timeout_ms,
	    MILTER_TIMEOUT_DEF);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(m->timer, &tv);
}

/* m_read_cb - whole packets only, each bounded by MILTER_PACKET_MAX */
static void
m_read_cb(struct bufferevent *bev, void *arg)
{
	struct mconn		*m = arg;
	struct milter_session	*s = m->s;
	struct evbuffer		*in = bufferevent_get_input(bev);
	unsigned char		 h[4];
	unsigned char		*p;
	size_t			 n;

	if (session_enter(s) == -1)
		goto out;
	while (m->state != M_DEAD && !s->dying &&
	    evbuffer_get_length(in) >= 4) {
		evbuffer_copyout(in, h, 4);
		if ((n = milter_pkt_length(h)) == 0) {
			m_fail(m, "bad packet length");
			break;
		}
		if (evbuffer_get_length(in) < 4 + n)
			break;
		if ((p = evbuffer_pullup(in, (ssize_t)(4 + n))) == NULL) {
			m_fail(m, "out of memory");
			break;
		}
		if (m_packet(m, p[4], (const char *)p + 5, n - 1) == -1)
			break;
		if (m->bev != NULL)
			evbuffer_drain(in, 4 + n);
	}
	engine(s);
out:
	session_leave(s);
}

static void
m_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mconn		*m = arg;
	struct milter_session	*s = m->s;
	int			 err = errno;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (session_enter(s) == 0) {
		m_fail(m, what & BEV_EVENT_EOF ? "connection closed" :
		    err != 0 ? strerror(err) : "connection failed");
		engine(s);
	}
	session_leave(s);
}

static void
m_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mconn		*m = arg;
	struct milter_session	*s = m->s;

	if (session_enter(s) == 0) {
		m_fail(m, m->state == M_CONNECTING ? "connect timeout" :
		    "timeout");
		engine(s);
	}
	session_leave(s);
}

/* m_packet - one packet from the milter; -1 when it was dropped */
static int
m_packet(struct mconn *m, int code, const char *p, size_t len)
{
	struct milter_reply	 r;

	if (m->state == M_CONNECTING)
		return code == SMFIC_OPTNEG ? m_optneg(m, p, len) :
		    (m_fail(m, "negotiation expected"), -1);
	if (m->s->waiting != m) {
		m_fail(m, "unexpected packet");
		return -1;
	}
	if (milter_reply_decode(code, p, len, &r) == -1) {
		m_fail(m, "malformed reply");
		return -1;
	}
	return m_reply(m, &r);
}

/* m_optneg - the milter's choice of actions, steps and macros */
static int
m_optneg(struct mconn *m, const char *p, size_t len)
{
	struct milter_session	*s = m->s;
	size_t			 i;

	if ((m->lists = malloc(len + 1)) == NULL) {
		m_fail(m, "out of memory");
		return -1;
	}
	memcpy(m->lists, p, len);
	if (milter_optneg_decode(m->lists, len, &m->neg) == -1) {
		m_fail(m, "negotiation refused (version, actions or "
		    "protocol flags)");
		return -1;
	}
	for (i = 0; i < MILTER_STAGES; i++)
		if (m->neg.list[i] != NULL &&
		    !(m->neg.actions & SMFIF_SETSYMLIST))
			m->neg.list[i] = NULL;
	m->version = m->neg.version;
	m->actions = m->neg.actions;
	m->pflags = m->neg.protocol;
	m->state = M_READY;
	evtimer_del(m->timer);
	if (s->waiting == m)
		s->waiting = NULL;
	return 0;
}

/* m_reply - a reply to the command in flight */
static int
m_reply(struct mconn *m, const struct milter_reply *r)
{
	struct mop	*op = TAILQ_FIRST(&m->s->ops);

	if (op == NULL)
		panic("milter: reply without an op");
	switch (r->code) {
	case SMFIR_PROGRESS:
		m_arm(m, op->st);	/* the milter is alive */
		return 0;
	case SMFIR_CONTINUE:
		m_next(m, op);
		return 0;
	case SMFIR_ACCEPT:
		if (stages[op->st].msg)
			m->done_msg = 1;
		else
			m->done_conn = 1;
		m->in_msg = 0;
		m_next(m, op);
		return 0;
	case SMFIR_SKIP:
		if (op->st != ST_BODY) {
			m_fail(m, "SKIP outside the body");
			return -1;
		}
		m->skip_body = 1;
		m_next(m, op);
		return 0;
	case SMFIR_REJECT:
		m_verdict(m, op, MILTER_REJECT, NULL, 0);
		return 0;
	case SMFIR_TEMPFAIL:
		m_verdict(m, op, MILTER_TEMPFAIL, NULL, 0);
		return 0;
	case SMFIR_DISCARD:
		m_verdict(m, op, MILTER_DISCARD, NULL, 0);
		return 0;
	case SMFIR_REPLYCODE:
		m_verdict(m, op, r->reply_class == 5 ? MILTER_REJECT :
		    MILTER_TEMPFAIL, r, 0);
		return 0;
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL:
		m_verdict(m, op, MILTER_TEMPFAIL, NULL, 1);
		return 0;
	default:
		return m_mod(m, r);
	}
}

/* m_mod - a modification action: end of message, negotiated, bounded */
static int
m_mod(struct mconn *m, const struct milter_reply *r)
{
	struct milter_session	*s = m->s;
	struct mop		*op = TAILQ_FIRST(&s->ops);
	struct modrec		*mr, *nv;
	size_t			 i, cap;

	for (i = 0; i < sizeof(mod_actions) / sizeof(mod_actions[0]); i++)
		if (mod_actions[i].code == r->code)
			break;
	if (op->st != ST_EOM || i == sizeof(mod_actions) /
	    sizeof(mod_actions[0]) || !(m->actions & mod_actions[i].need)) {
		m_fail(m, "modification not allowed here");
		return -1;
	}
	if (r->code == SMFIR_REPLBODY) {
		/* the first chunk of a milter starts a new body */
		if (!m->new_body)
			buf_reset(&s->newbody);
		m->new_body = 1;
		if (buf_append(&s->newbody, r->s1, r->l1) == -1) {
			m_fail(m, "replacement body too long");
			return -1;
		}
		return 0;
	}
	if (r->code == SMFIR_QUARANTINE) {
		free(m->new_quar);
		if ((m->new_quar = malloc(r->l1 + 1)) == NULL) {
			m_fail(m, "out of memory");
			return -1;
		}
		memcpy(m->new_quar, r->s1, r->l1 + 1);
		return 0;
	}
	if (s->nmods == s->capmods) {
		cap = s->capmods == 0 ? 8 : s->capmods * 2;
		if (s->nmods >= MILTER_MODS_MAX || (nv = reallocarray(s->mods,
		    cap, sizeof(*nv))) == NULL) {
			m_fail(m, "too many modifications");
			return -1;
		}
		s->mods = nv;
		s->capmods = cap;
	}
	mr = &s->mods[s->nmods];
	mr->type = (enum milter_mod_type)r->code;
	mr->milter = m->idx;
	mr->index = r->index;
	mr->noff = s->modbytes.len;
	mr->nlen = r->l1;
	if (buf_append(&s->modbytes, r->s1, r->l1 + 1) == -1)
		goto toolong;
	mr->voff = s->modbytes.len;
	if (r->code == SMFIR_ADDHEADER || r->code == SMFIR_INSHEADER ||
	    r->code == SMFIR_CHGHEADER) {
		/* the value is what follows the colon: a milter without
		   HDR_LEADSPC leaves the customary space to the MTA */
		if (r->l2 > 0 && !(m->pflags & SMFIP_HDR_LEADSPC) &&
		    buf_append(&s->modbytes, " ", 1) == -1)
			goto toolong;
		if (milter_header_value(&s->modbytes, r->s2, r->l2) == -1) {
			m_fail(m, "bad header value");
			return -1;
		}
	} else if (buf_append(&s->modbytes, r->s2, r->l2) == -1)
		goto toolong;
	mr->vlen = s->modbytes.len - mr->voff;
	if (buf_append(&s->modbytes, "", 1) == -1)
		goto toolong;
	s->nmods++;
	return 0;
toolong:
	m_fail(m, "modifications too long");
	return -1;
}

/* m_next - this milter is through with the op: ask the next one */
static void
m_next(struct mconn *m, struct mop *op)
{
	struct milter_session	*s = m->s;
	struct buf		 t;

	evtimer_del(m->timer);
	if (op->st == ST_EOM) {
		/* commit what this milter changed (milter.h) */
		if (m->new_body) {
			t = s->body;
			s->body = s->newbody;
			s->newbody = t;
			buf_reset(&s->newbody);
			s->body_replaced = 1;
			m->new_body = 0;
		}
		if (m->new_quar != NULL) {
			free(s->quarantine);
			s->quarantine = m->new_quar;
			m->new_quar = NULL;
		}
		m->in_msg = 0;
	}
	s->waiting = NULL;
	op->mi++;
}

/* m_verdict - a final answer for the op (and the message, or session) */
static void
m_verdict(struct mconn *m, struct mop *op, enum milter_verdict v,
    const struct milter_reply *r, int close)
{
	struct milter_session	*s = m->s;
	struct verdict		 vd;

	evtimer_del(m->timer);
	s->waiting = NULL;
	memset(&vd, 0, sizeof(vd));
	vd.v = v;
	vd.who = m->ep->text;
	vd.close = close;
	if (r != NULL) {
		vd.reply = (char *)r->s1;
		vd.reply_len = r->l1;
	}
	vd_set(&op->vd, &vd);
	op->stop = 1;
	if (op->st == ST_CONNECT || close) {
		vd_set(&s->conn_vd, &vd);
		s->conn_final = 1;
	}
	/* at RCPT only a discard ends the message */
	if (stages[op->st].msg && (op->st != ST_RCPT ||
	    v == MILTER_DISCARD)) {
		msg_end(s, 1);
		vd_set(&s->msg_vd, &vd);
		s->msg_final = 1;
	}
}

/*
 * msg_end - the message is over: the milters still in it get
 * SMFIC_ABORT when abort is set (libmilter ignores it from those that
 * already left the message); modifications are dropped
 */
static void
msg_end(struct milter_session *s, int abort)
{
	size_t	 i;

	for (i = 0; i < s->n; i++) {
		if (abort && s->m[i].in_msg && s->m[i].state == M_READY)
			m_send(&s->m[i], SMFIC_ABORT, NULL, 0);
		s->m[i].in_msg = 0;
		s->m[i].done_msg = 0;
		s->m[i].skip_body = 0;
	}
	msg_reset(s);
}

static void
msg_reset(struct milter_session *s)
{
	s->msg_final = 0;
	vd_clear(&s->msg_vd);
	s->nmods = 0;
	buf_reset(&s->modbytes);
	buf_reset(&s->body);
	buf_reset(&s->newbody);
	s->body_replaced = 0;
	free(s->quarantine);
	s->quarantine = NULL;
}

/* vd_set - copy a verdict, with its own copy of the reply text */
static void
vd_set(struct verdict *to, const struct verdict *from)
{
	char	*r = NULL;

	if (to == from)
		return;
	if (from->reply != NULL) {
		if ((r = malloc(from->reply_len + 1)) == NULL)
			fatal("milter: reply");
		memcpy(r, from->reply, from->reply_len);
		r[from->reply_len] = '\0';
	}
	vd_clear(to);
	*to = *from;
	to->reply = r;
}

static void
vd_clear(struct verdict *vd)
{
	free(vd->reply);
	memset(vd, 0, sizeof(*vd));
}

/* macro_put - set, replace or (len 0) remove a macro */
static int
macro_put(struct milter_session *s, const char *name, const char *v,
    size_t len)
{
	struct macro	*mc = NULL;
	size_t		 i, nl = strlen(name);
	char		*nv = NULL;

	if (nl == 0 || nl >= MILTER_MACRO_NAME || len > MILTER_MACRO_LEN ||
	    memchr(v, '\0', len) != NULL)
		return -1;
	for (i = 0; i < s->nmacros; i++)
		if (strcmp(s->macros[i].name, name) == 0)
			mc = &s->macros[i];
	if (len > 0 && (nv = malloc(len + 1)) == NULL)
		return -1;
	if (mc == NULL) {
		if (len == 0)
			return 0;
		if (s->nmacros == MILTER_MACROS_MAX) {
			free(nv);
			return -1;
		}
		mc = &s->macros[s->nmacros++];
		memcpy(mc->name, name, nl + 1);
	}
	free(mc->value);
	if (len == 0) {
		*mc = s->macros[--s->nmacros];
		memset(&s->macros[s->nmacros], 0, sizeof(*mc));
		return 0;
	}
	memcpy(nv, v, len);
	nv[len] = '\0';
	mc->value = nv;
	mc->len = len;
	return 0;
}

/* macro_get - by name with or without braces ("{i}" is "i") */
static const struct macro *
macro_get(const struct milter_session *s, const char *w, size_t len)
{
	const char	*n;
	size_t		 i, nl;

	if (len >= 2 && w[0] == '{' && w[len - 1] == '}') {
		w++;
		len -= 2;
	}
	for (i = 0; i < s->nmacros; i++) {
		n = s->macros[i].name;
		nl = strlen(n);
		if (nl >= 2 && n[0] == '{') {
			n++;
			nl -= 2;
		}
		if (nl == len && memcmp(n, w, len) == 0)
			return &s->macros[i];
	}
	return NULL;
}

/* session_enter - a libevent callback frame; -1 when the session dies */
static int
session_enter(struct milter_session *s)
{
	s->depth++;
	return s->dying ? -1 : 0;
}

static void
session_leave(struct milter_session *s)
{
	if (--s->depth == 0 && s->dying)
		session_destroy(s);
}

static void
session_destroy(struct milter_session *s)
{
	struct mop	*op;
	size_t		 i;

	for (i = 0; i < s->n; i++) {
		m_close(&s->m[i], 1);
		event_free(s->m[i].timer);
	}
	free(s->m);
	while ((op = TAILQ_FIRST(&s->ops)) != NULL) {
		TAILQ_REMOVE(&s->ops, op, link);
		op_free(op);
	}
	for (i = 0; i < s->nmacros; i++)
		free(s->macros[i].value);
	vd_clear(&s->conn_vd);
	vd_clear(&s->msg_vd);
	free(s->mods);
	buf_free(&s->modbytes);
	buf_free(&s->body);
	buf_free(&s->newbody);
	free(s->quarantine);
	if (s->kick != NULL)
		event_free(s->kick);
	free(s);
}

/* take_str - a NUL-terminated string at *p; advances past the NUL */
static int
take_str(const char **p, size_t *len, const char **s, size_t *l)
{
	const char	*nul = memchr(*p, '\0', *len);

	if (nul == NULL)
		return -1;
	*s = *p;
	*l = (size_t)(nul - *p);
	*len -= *l + 1;
	*p = nul + 1;
	return 0;
}

/* text_ok - at most max octets, no control characters */
static int
text_ok(const char *p, size_t len, size_t max)
{
	size_t	 i;

	if (len > max)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

/* hname_ok - a header field name (RFC 5322 2.2: printable, no colon) */
static int
hname_ok(const char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || len > MILTER_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] < 33 || p[i] > 126 || p[i] == ':')
			return 0;
	return 1;
}

static uint32_t
get32(const char *p)
{
	const unsigned char	*u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	    (uint32_t)u[2] << 8 | u[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static unsigned
ms_or(unsigned ms, unsigned def)
{
	return ms != 0 ? ms : def;
}
