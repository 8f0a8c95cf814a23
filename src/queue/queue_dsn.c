/*
 * queue_dsn.c - delivery status notifications: bounces and delay
 * notices (RFC 3464 multipart/report, RFC 3462 report type, RFC 3834
 * Auto-Submitted).
 *
 * A DSN is an ordinary new queue message: written through the spool
 * writer into tmp/, fsync'ed, renamed into queue/ and queue/ fsync'ed
 * (the same durability as received mail), then loaded and scheduled at
 * once.  Its envelope sender is <> and its one recipient the original
 * envelope sender.
 *
 * Loops: no DSN ever goes to <>.  A DSN of our own (from <>, client
 * "local") that fails is reported once to the bare "postmaster" (a
 * "double bounce", routed to the first local domain); a double bounce
 * that fails, <> mail received from a client, and any delay of mail
 * from <> are logged (event=dsn_discarded) and dropped.
 *
 * Privacy (DESIGN.md principle 3): when the original client is not in
 * relay_networks (an Internet client), the DSN carries no Received
 * header of the original, no diagnostic text beyond the status code,
 * and no client address or name; Reporting-MTA is our hostname only.
 *
 * Failure grades: a DSN that cannot be written returns -1 and the
 * caller tries again later; nothing here is fatal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/spool.h"
#include "queue.h"

#define DSN_HDRS_MAX	(64 * 1024)	/* original headers returned */
#define DSN_PATH_MAX	64
#define DSN_DATE_MAX	64
#define DSN_STATUS_MAX	16
#define DSN_LOG_ADDR	300

static int	qdsn_private(const struct queue *, const char *);
static int	qdsn_orig_headers(const struct queue *, const struct qmsg *,
		    struct envelope *, struct buf *, int *);
static void	qdsn_filter_headers(const char *, size_t, int, struct buf *);
static int	qdsn_compose(struct queue *, const struct qmsg *,
		    const char *, enum qdsn_kind, int, const struct buf *,
		    const char *, struct buf *);
static int	qdsn_rcpts(const struct qmsg *, enum qdsn_kind, int,
		    const char *, struct buf *);
static void	qdsn_status(const struct qrcpt *, enum qdsn_kind, char *,
		    const char **);
static int	qdsn_wants(const struct qrcpt *, enum qdsn_kind);
static int	qdsn_write(struct queue *, const struct qmsg *,
		    const char *, const struct envelope *, enum qdsn_kind,
		    int, const struct buf *, char *);
static int	qdsn_is_double(const struct qmsg *);
static void	qdsn_date(time_t, char *);
static int	qdsn_diag(struct buf *, const char *, const char *, int);

/*
 * qdsn_send - send the DSN of kind for m: a bounce lists the failed
 * recipients, a delay notice the pending ones.  0 when sent, when
 * there is nothing to report, or when the sender is <> (logged and
 * dropped); -1 when it could not be written (try again later).
 */
int
qdsn_send(struct queue *q, struct qmsg *m, enum qdsn_kind kind)
{
	struct envelope	 orig;
	struct buf	 hdrs;
	char		 to[DSN_LOG_ADDR], nqid[QID_SIZE];
	const char	*what = kind == QDSN_BOUNCE ? "bounce" : "delay";
	const char	*rcpt = m->sender;
	size_t		 i, n = 0;
	int		 priv, r;

	for (i = 0; i < m->nrcpt; i++)
		if (qdsn_wants(&m->rcpt[i], kind))
			n++;
	if (n == 0)
		return 0;
	if (m->sender[0] == '\0') {
		/*
		 * RFC 3461 6.2 / RFC 5321 6.1: never answer mail from <>.
		 * Only a DSN of our own (a local message from <>) that
		 * cannot be delivered goes to the postmaster, once (a
		 * "double bounce"); when that fails too, or for a delay,
		 * or for <> mail that came from elsewhere, it is dropped.
		 */
		if (kind == QDSN_DELAY || qdsn_is_double(m) ||
		    strcmp(m->client, "local") != 0) {
			log_info("event=dsn_discarded qid=%s type=%s "
			    "nrcpt=%zu reason=\"null sender\"", m->qid, what,
			    n);
			return 0;
		}
		rcpt = "postmaster";
	}
	memset(&orig, 0, sizeof(orig));
	buf_init(&hdrs, DSN_HDRS_MAX + 1);
	if (qdsn_orig_headers(q, m, &orig, &hdrs, &priv) == -1)
		priv = 1;	/* nothing known about the client */
	if (rcpt != m->sender)
		priv = 0;	/* our own postmaster sees everything */
	r = qdsn_write(q, m, rcpt, &orig, kind, priv, &hdrs, nqid);
	envelope_free(&orig);
	buf_free(&hdrs);
	if (r == -1)
		return -1;
	log_sanitize(rcpt, strlen(rcpt), to, sizeof(to));
	log_info("event=%s qid=%s dsn_qid=%s to=<%s> nrcpt=%zu%s",
	    rcpt != m->sender ? "double_bounce" : kind == QDSN_BOUNCE ?
	    "bounce" : "delay_notice", m->qid, nqid, to, n,
	    priv ? " private=1" : "");
	return 0;
}

/*
 * qdsn_is_double - is m a double bounce already: from <> to the bare
 * "postmaster" alone, as qdsn_send() writes it?
 */
static int
qdsn_is_double(const struct qmsg *m)
{
	return m->nrcpt == 1 && strcasecmp(m->rcpt[0].addr, "postmaster") ==
	    0;
}

/* ---- helpers ----------------------------------------------------- */

/* qdsn_wants - is recipient r listed in a DSN of kind? */
static int
qdsn_wants(const struct qrcpt *r, enum qdsn_kind kind)
{
	if (kind == QDSN_BOUNCE)
		return r->status == RS_FAILED;
	return r->status == RS_PENDING;
}

/*
 * qdsn_private - must the DSN hide our internals?  Yes unless the
 * client was in relay_networks or a local submission; an address we
 * cannot parse counts as outside.
 */
static int
qdsn_private(const struct queue *q, const char *client)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	if (strcmp(client, "local") == 0)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, client, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, client, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return 1;
	return !config_in_relay_networks(q->conf, (struct sockaddr *)&ss);
}

/*
 * qdsn_orig_headers - read the original's envelope and its header
 * section (at most DSN_HDRS_MAX octets, whole lines) into out,
 * Received lines removed when the DSN is private.
 */
static int
qdsn_orig_headers(const struct queue *q, const struct qmsg *m,
    struct envelope *env, struct buf *out, int *priv)
{
	const char	*why;
	char		 path[DSN_PATH_MAX], *p = NULL;
	size_t		 want;
	ssize_t		 n;
	int		 fd, r = -1;

	n = snprintf(path, sizeof(path), "%s/%s", qstore_dir(m->where),
	    m->qid);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		log_warn("event=dsn_error qid=%s path=%s", m->qid, path);
		return -1;
	}
	if (spool_msg_read(fd, env, &why) == -1) {
		log_warnx("event=dsn_error qid=%s reason=\"%s\"", m->qid, why);
		goto done;
	}
	*priv = qdsn_private(q, env->client_addr);
	want = env->size < DSN_HDRS_MAX ? env->size : DSN_HDRS_MAX;
	if ((p = malloc(want + 1)) == NULL)
		goto done;
	do
		n = pread(fd, p, want, env->data_off);
	while (n == -1 && errno == EINTR);
	if (n < 0)
		goto done;
	qdsn_filter_headers(p, (size_t)n, *priv, out);
	r = 0;
done:
	free(p);
	close(fd);
	return r;
}

/*
 * qdsn_filter_headers - copy the header lines of p[0..len) (CRLF
 * lines, up to the empty line or the last whole line) to out; when
 * strip, a Received field and its continuation lines are left out.
 */
static void
qdsn_filter_headers(const char *p, size_t len, int strip, struct buf *out)
{
	const char	*nl;
	size_t		 off = 0, ll;
	int		 keep = 1;

	while (off < len) {
		nl = memchr(p + off, '\n', len - off);
		if (nl == NULL)
			break;		/* truncated: whole lines only */
		ll = (size_t)(nl - (p + off)) + 1;
		if (ll <= 2)
			break;		/* the empty line ends the header */
		if (p[off] != ' ' && p[off] != '\t')
			keep = !(strip && ll >= 9 &&
			    mem_casecmp(p + off, "Received:", 9) == 0);
		if (keep && buf_append(out, p + off, ll) == -1)
			break;
		off += ll;
	}
}

/* qdsn_write - compose and commit the DSN into queue/, schedule it */
static int
qdsn_write(struct queue *q, const struct qmsg *m, const char *rcpt,
    const struct envelope *orig, enum qdsn_kind kind, int priv,
    const struct buf *hdrs, char *nqid)
{
	struct envelope	 ne;
	struct spool_msg w;
	struct buf	 body;
	struct qmsg	*d;
	const char	*why;
	int		 r = -1;

	memset(&ne, 0, sizeof(ne));
	buf_init(&body, 0);
	memcpy(ne.client_addr, "local", sizeof("local"));
	memcpy(ne.client_name, "localhost", sizeof("localhost"));
	memcpy(ne.helo, "localhost", sizeof("localhost"));
	memcpy(ne.proto, "LOCAL", sizeof("LOCAL"));
	ne.body = orig->body;
	ne.smtputf8 = orig->smtputf8;
	if (envelope_set_sender(&ne, "", 0) == -1 ||
	    envelope_add_rcpt(&ne, rcpt, strlen(rcpt)) == -1)
		goto fail;
	if (spool_msg_open(&w, &ne, "tmp", "") == -1) {
		log_warn("event=dsn_error qid=%s open", m->qid);
		goto fail;
	}
	if (qdsn_compose(q, m, rcpt, kind, priv, hdrs, w.qid, &body) == -1 ||
	    spool_msg_write(&w, body.data, body.len) == -1 ||
	    spool_msg_finish(&w) == -1 || spool_msg_commit(&w, "queue") == -1) {
		log_warn("event=dsn_error qid=%s dsn_qid=%s write", m->qid,
		    w.qid);
		spool_msg_abort(&w);
		goto fail;
	}
	if (spool_dir_sync("queue") == -1)
		log_warn("event=dsn_error qid=%s dsn_qid=%s sync", m->qid,
		    w.qid);
	memcpy(nqid, w.qid, QID_SIZE);
	r = 0;
	if ((d = qstore_load("queue", w.qid, &why)) == NULL) {
		/* durable on disk: the next start finds it */
		log_warnx("event=dsn_error dsn_qid=%s reason=\"%s\"", w.qid,
		    why ? why : "vanished");
		goto fail;
	}
	d->where = QW_QUEUE;
	queue_msg_add(q, d);
	queue_msg_schedule(q, d, time(NULL));
fail:
	envelope_free(&ne);
	buf_free(&body);
	return r;
}

/*
 * qdsn_compose - the DSN's content: RFC 5322 header, then the three
 * parts of RFC 3462: text/plain, message/delivery-status (RFC 3464
 * 2.2, 2.3) and text/rfc822-headers.  CRLF lines throughout.
 */
static int
qdsn_compose(struct queue *q, const struct qmsg *m, const char *rcpt,
    enum qdsn_kind kind, int priv, const struct buf *hdrs, const char *nqid,
    struct buf *b)
{
	const char	*host = q->conf->hostname;
	char		 now[DSN_DATE_MAX], arr[DSN_DATE_MAX];
	char		 until[DSN_DATE_MAX];
	int		 e = 0;

	qdsn_date(time(NULL), now);
	qdsn_date(m->arrival, arr);
	qdsn_date(m->arrival + q->conf->queue_lifetime, until);
	e |= buf_appendf(b, "Date: %s\r\n"
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s/%s\"\r\n\r\n"
	    "This is a MIME-encapsulated message.\r\n\r\n", now, host,
	    rcpt, kind == QDSN_BOUNCE ? "Undelivered Mail Returned to "
	    "Sender" : "Delayed Mail (still being retried)", nqid, host, nqid,
	    host);
	/* part 1: for people */
	e |= buf_appendf(b, "--%s/%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "This is the mail system at host %s.\r\n\r\n", nqid, host, host);
	if (kind == QDSN_BOUNCE)
		e |= buf_appends(b, "Your message could not be delivered to "
		    "one or more recipients.\r\nIt is returned below "
		    "(headers only).\r\n\r\n");
	else
		e |= buf_appendf(b, "THIS IS A WARNING ONLY.  YOU DO NOT NEED "
		    "TO RESEND YOUR MESSAGE.\r\n\r\nYour message could not be "
		    "delivered yet to the recipients below.\r\nThe mail "
		    "system will keep trying until %s.\r\n\r\n", until);
	e |= qdsn_rcpts(m, kind, priv, NULL, b);
	/* part 2: for machines (RFC 3464 2.2: per-message fields) */
	e |= buf_appendf(b, "\r\n--%s/%s\r\nContent-Description: Delivery "
	    "report\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\nX-Queue-ID: %s\r\nArrival-Date: %s\r\n",
	    nqid, host, host, m->qid, arr);
	e |= qdsn_rcpts(m, kind, priv, until, b);
	/* part 3: the original's header (RFC 3462 text/rfc822-headers) */
	e |= buf_appendf(b, "\r\n--%s/%s\r\nContent-Description: %s\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n", nqid, host,
	    kind == QDSN_BOUNCE ? "Undelivered Message Headers" :
	    "Delayed Message Headers");
	if (hdrs->len > 0)
		e |= buf_append(b, hdrs->data, hdrs->len);
	e |= buf_appendf(b, "\r\n--%s/%s--\r\n", nqid, host);
	return e ? -1 : 0;
}

/*
 * qdsn_rcpts - the recipients: as text lines for people (until NULL),
 * or as RFC 3464 2.3 per-recipient groups, each after an empty line.
 */
static int
qdsn_rcpts(const struct qmsg *m, enum qdsn_kind kind, int priv,
    const char *until, struct buf *b)
{
	const struct qrcpt	*r;
	char			 st[DSN_STATUS_MAX], last[DSN_DATE_MAX];
	const char		*text;
	size_t			 i;
	int			 e = 0;

	qdsn_date(time(NULL), last);
	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpt[i];
		if (!qdsn_wants(r, kind))
			continue;
		qdsn_status(r, kind, st, &text);
		if (priv || *text == '\0')
			text = kind == QDSN_BOUNCE ? "delivery failed" :
			    "delivery delayed";
		if (until == NULL) {
			e |= buf_appendf(b, "<%s>: %s %s\r\n", r->addr, st,
			    text);
			continue;
		}
		e |= buf_appendf(b, "\r\nFinal-Recipient: rfc822; %s\r\n"
		    "Action: %s\r\nStatus: %s\r\n", r->addr,
		    kind == QDSN_BOUNCE ? "failed" : "delayed", st);
		if (r->reason[0] != '\0')
			e |= qdsn_diag(b, st, text, priv);
		if (r->attempts > 0)
			e |= buf_appendf(b, "Last-Attempt-Date: %s\r\n", last);
		if (kind == QDSN_DELAY)
			e |= buf_appendf(b, "Will-Retry-Until: %s\r\n", until);
	}
	return e;
}

/*
 * qdsn_diag - Remote-MTA and Diagnostic-Code (RFC 3464 2.3.5, 2.3.6).
 * smtp-out words a server's answer "host NAME[ADDR] said: 550 5.1.1
 * text (in reply to RCPT TO command)": that gives "Remote-MTA: dns;
 * NAME" and "Diagnostic-Code: smtp; 550 5.1.1 text".  Anything else is
 * our own diagnosis (X-Local).  priv: the reader is outside, so only
 * the status code is given (the caller passed the generic text).
 */
static int
qdsn_diag(struct buf *b, const char *st, const char *text, int priv)
{
	const char	*said, *host, *br, *end;
	int		 e = 0;

	said = priv ? NULL : strstr(text, " said: ");
	if (said == NULL || strncmp(text, "host ", 5) != 0)
		return buf_appendf(b, "Diagnostic-Code: X-Local; %s %s\r\n",
		    st, text);
	host = text + 5;
	if ((br = memchr(host, '[', (size_t)(said - host))) == NULL)
		br = said;
	said += 7;
	if ((end = strstr(said, " (in reply to ")) == NULL)
		end = said + strlen(said);
	e |= buf_appendf(b, "Remote-MTA: dns; %.*s\r\n", (int)(br - host),
	    host);
	e |= buf_appendf(b, "Diagnostic-Code: smtp; %.*s\r\n",
	    (int)(end - said), said);
	return e;
}

/*
 * qdsn_status - the enhanced status code of r (RFC 3463) from the
 * first word of its reason, else the class of its state; *text is
 * the rest of the reason.
 */
static void
qdsn_status(const struct qrcpt *r, enum qdsn_kind kind, char *st,
    const char **text)
{
	const char	*p = r->reason, *sp;
	size_t		 n, i;
	int		 ok;

	sp = strchr(p, ' ');
	n = sp ? (size_t)(sp - p) : strlen(p);
	ok = n >= 5 && n < DSN_STATUS_MAX && (p[0] == '2' || p[0] == '4' ||
	    p[0] == '5') && p[1] == '.';
	for (i = 2; ok && i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || p[i] == '.'))
			ok = 0;
	if (ok) {
		memcpy(st, p, n);
		st[n] = '\0';
		*text = sp ? sp + 1 : "";
		return;
	}
	memcpy(st, kind == QDSN_BOUNCE ? "5.0.0" : "4.0.0", 6);
	*text = p;
}

/* qdsn_date - RFC 5322 3.3 date-time */
static void
qdsn_date(time_t t, char *out)
{
	struct tm	 tm;

	localtime_r(&t, &tm);
	if (strftime(out, DSN_DATE_MAX, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		memcpy(out, "Thu, 01 Jan 1970 00:00:00 +0000", 32);
}
