/*
 * smtp_scan.c - the external content scanners in smtp-in's data path:
 * clamd (common/clamd.h) and the milters (common/milter.h).
 *
 *   smtp_scan_begin()   txn_open(): connect to clamd
 *   smtp_scan_data()    every content octet as it goes to the spool:
 *                       streamed to clamd at once (INSTREAM)
 *   smtp_scan_end()     data_end(), after the local verdicts: finish
 *                       the clamd scan, replay the transaction to the
 *                       milters; the session waits in SMTP_ST_COMMIT
 *                       (reading off, as for the commit threads) until
 *                       every scanner answered, then the message is
 *                       refused (smtp_data_refuse) or committed
 *                       (smtp_data_commit)
 *   smtp_scan_finish()  commit thread: the milters' modifications
 *                       (headers, body, envelope) written as a new
 *                       spool file, as content strip/tag does
 *   smtp_scan_free()    with the transaction
 *
 * clamd is fed while the content arrives, so a large message costs no
 * second pass and the verdict follows the final dot by one round trip.
 * A client that pauses longer than clamd's ReadTimeout (120 s by
 * default) makes the scan fail, which clamd = tempfail turns into 451:
 * the client retries, nothing is lost.
 *
 * Milters see the whole transaction at the final dot, replayed from the
 * spool file (connect and HELO once per SMTP session, then MAIL, RCPT,
 * DATA, the header fields, the body in bounded pieces, end of message).
 * Replaying keeps every SMTP reply independent of a milter's speed and
 * lets the milter see exactly the stored message, our Received header
 * included (as Postfix shows its own).  The price: a milter's verdict
 * at MAIL or RCPT is given at the final dot - a refused recipient is
 * dropped from the envelope, a refused sender refuses the message.
 *
 * Invariant: a session waiting here is in SMTP_ST_COMMIT with its
 * transaction; smtp_session_free() then only marks it SF_DEAD, and the
 * last scanner callback frees it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/clamd.h"
#include "../common/milter.h"
#include "../common/spool.h"
#include "../common/stats.h"
#include "smtp_in.h"

#define SCAN_BODY_PIECE	(256 * 1024)	/* body octets queued per wait */
#define SCAN_HDR_MAX	(256 * 1024)	/* header section shown to milters */
#define SCAN_FIELDS_MAX	2000		/* header fields rewritten */

/* a modification kept for the commit thread */
struct scan_mod {
	enum milter_mod_type	 type;
	uint32_t		 index;
	char			*name;
	size_t			 name_len;
	char			*value;
	size_t			 value_len;
	int			 done;		/* applied */
};

struct smtp_scan {
	struct smtp_session	*s;
	struct smtp_txn		*t;
	struct clamd_scan	*clamd;
	int			 waiting;	/* scanners still to answer */
	/* clamd's answer */
	int			 clamd_done;
	enum clamd_status	 clamd_status;
	char			 clamd_name[CLAMD_NAME_MAX + 1];
	/* the milter replay */
	int			 milter_on;
	int			 rfd;		/* the spool file, read */
	off_t			 body_off;	/* next body octet in rfd */
	off_t			 body_end;
	size_t			 rcpt_cb;	/* RCPT callbacks seen */
	char			*refused;	/* per recipient */
	enum milter_verdict	 verdict;	/* of the message */
	char			*reply;		/* milter's own text */
	int			 close;
	/* end of message results, for smtp_scan_finish() */
	struct scan_mod		*mods;
	size_t			 nmods;
	char			*body;
	size_t			 body_len;
	int			 body_replaced;
	/* a virus (virus_action = quarantine) or a milter asked for it */
	int			 quarantine;
	char			 quar_rule[64];
	char			 quar_reason[200];
};

static struct smtp_scan *scan_get(struct smtp_txn *);
static void	clamd_done(const struct clamd_result *, void *);
static int	milter_replay(struct smtp_scan *);
static int	milter_headers(struct smtp_scan *);
static int	milter_body_next(struct smtp_scan *);
static void	milter_stage_cb(const struct milter_status *, void *);
static void	milter_rcpt_cb(const struct milter_status *, void *);
static void	milter_body_cb(const struct milter_status *, void *);
static void	milter_eom_cb(const struct milter_status *, void *);
static void	milter_verdict_keep(struct smtp_scan *,
		    const struct milter_status *);
static int	milter_mods_keep(struct smtp_scan *,
		    const struct milter_status *);
static void	scan_done(struct smtp_scan *);
static void	scan_decide(struct smtp_scan *);
static const char *addr_strip(const char *, size_t, size_t *);
static int	env_apply(struct smtp_scan *, struct envelope *);
static int	hdr_write(struct spool_msg *, const char *, size_t,
		    const char *, size_t);
static int	hdr_read(int, const struct spool_msg *, char **, size_t *);
static int	field_end(const char *, size_t, size_t, size_t *, size_t *);

/* smtp_scan_begin - connect to clamd for this message, if configured */
void
smtp_scan_begin(struct smtp_session *s, struct smtp_txn *t)
{
	const struct config	*c = smtp_srv->conf;
	struct clamd_conf	 cc;
	struct smtp_scan	*sc;

	if (!c->has_clamd_socket || c->clamd == CONF_CLAMD_OFF)
		return;
	if ((sc = scan_get(t)) == NULL)
		fatal("smtp_scan_begin");
	memset(&cc, 0, sizeof(cc));
	cc.endpoint = &c->clamd_socket;
	cc.timeout_ms = (unsigned)c->clamd_timeout * 1000;
	cc.max_size = c->clamd_max_size;
	if ((sc->clamd = clamd_start(smtp_srv->base, &cc, clamd_done,
	    sc)) == NULL)
		fatal("smtp_scan_begin: clamd_start");
}

/* smtp_scan_data - content octets on their way to the spool */
void
smtp_scan_data(struct smtp_txn *t, const char *p, size_t len)
{
	/* a failure is kept by clamd.c and reported at the end */
	if (t->scanners != NULL && t->scanners->clamd != NULL && len > 0)
		(void)clamd_feed(t->scanners->clamd, p, len);
}

/*
 * smtp_scan_end - the content is complete and passed the local checks:
 * 0 to commit at once, 1 when the scanners answer first (the session
 * is then in SMTP_ST_COMMIT and is resumed from their callbacks).
 */
int
smtp_scan_end(struct smtp_session *s)
{
	struct smtp_txn		*t = s->txn;
	struct smtp_scan	*sc;

	if (smtp_srv->conf->nmilters > 0) {
		if ((sc = scan_get(t)) == NULL)
			fatal("smtp_scan_end");
		sc->milter_on = 1;
	}
	if ((sc = t->scanners) == NULL)
		return 0;
	sc->s = s;
	smtp_enter_state(s, SMTP_ST_COMMIT);
	sc->waiting = 1;	/* this function's own hold, released below */
	if (sc->clamd != NULL) {
		sc->waiting++;
		clamd_finish(sc->clamd);
	}
	if (sc->milter_on) {
		sc->waiting++;
		if (milter_replay(sc) == -1) {
			/* out of memory or a bound: as a milter failure */
			log_warnx("event=milter_failure qid=%s reason=replay",
			    t->env.qid);
			/* drops every callback queued so far */
			smtp_scan_session_free(s);
			sc->verdict = MILTER_TEMPFAIL;
			sc->waiting--;
		}
	}
	/* every callback comes from the loop, never from the calls above */
	scan_done(sc);
	return 1;
}

/* smtp_scan_free - with the transaction: no callback comes after it */
void
smtp_scan_free(struct smtp_txn *t)
{
	struct smtp_scan	*sc = t->scanners;
	size_t			 i;

	if (sc == NULL)
		return;
	if (sc->clamd != NULL)
		clamd_cancel(sc->clamd);
	if (sc->waiting > 0 && t->s->milter != NULL)
		milter_abort(t->s->milter);
	if (sc->rfd != -1)
		close(sc->rfd);
	for (i = 0; i < sc->nmods; i++) {
		free(sc->mods[i].name);
		free(sc->mods[i].value);
	}
	free(sc->mods);
	free(sc->body);
	free(sc->reply);
	free(sc->refused);
	free(sc);
	t->scanners = NULL;
}

/* smtp_scan_session_free - the milter session, with the SMTP session */
void
smtp_scan_session_free(struct smtp_session *s)
{
	if (s->milter != NULL)
		milter_session_free(s->milter);
	s->milter = NULL;
}

static struct smtp_scan *
scan_get(struct smtp_txn *t)
{
	struct smtp_scan	*sc;

	if (t->scanners != NULL)
		return t->scanners;
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	sc->t = t;
	sc->rfd = -1;
	sc->verdict = MILTER_CONTINUE;
	t->scanners = sc;
	return sc;
}

/* clamd_done - the scan result (clamd.c: once, from the loop) */
static void
clamd_done(const struct clamd_result *r, void *arg)
{
	struct smtp_scan	*sc = arg;
	char			 name[CLAMD_NAME_MAX * 4 + 1];

	sc->clamd = NULL;	/* invalid from here on */
	sc->clamd_done = 1;
	sc->clamd_status = r->status;
	log_sanitize(r->name, strlen(r->name), name, sizeof(name));
	/* the name goes into a reply: clamd.c keeps it printable ASCII */
	if (snprintf(sc->clamd_name, sizeof(sc->clamd_name), "%s",
	    r->name) >= (int)sizeof(sc->clamd_name))
		sc->clamd_name[sizeof(sc->clamd_name) - 1] = '\0';
	if (r->status == CLAMD_VIRUS) {
		log_info("event=alarm type=virus qid=%s client=%s name=\"%s\"",
		    sc->t->env.qid, sc->t->s->addrtext, name);
	} else if (r->status == CLAMD_ERROR)
		log_warnx("event=scanner_failure scanner=clamd qid=%s "
		    "reason=\"%s\" action=%s", sc->t->env.qid, name,
		    smtp_srv->conf->clamd == CONF_CLAMD_ACCEPT ? "accept" :
		    "tempfail");
	else if (r->truncated)
		log_info("event=note qid=%s note=clamd_truncated scanned=%zu",
		    sc->t->env.qid, r->scanned);
	scan_done(sc);
}

/*
 * milter_replay - queue the transaction to the milters: connect and
 * HELO for a new milter session, then MAIL, RCPT, DATA and the header
 * fields from the spool file; the body follows in pieces.
 */
static int
milter_replay(struct smtp_scan *sc)
{
	const struct config	*c = smtp_srv->conf;
	struct smtp_session	*s = sc->s;
	struct smtp_txn		*t = sc->t;
	struct milter_conf	 mc;
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 host[SMTP_ADDR_TEXT + 8];
	const char		*tproto, *cipher;
	int			 bits;
	size_t			 i;

	if (s->milter == NULL) {
		memset(&mc, 0, sizeof(mc));
		mc.milters = c->milters;
		mc.nmilters = c->nmilters;
		mc.default_action = c->milter_default_action;
		mc.connect_timeout_ms = (unsigned)c->milter_connect_timeout *
		    1000;
		mc.command_timeout_ms = (unsigned)c->milter_command_timeout *
		    1000;
		mc.content_timeout_ms = (unsigned)c->milter_content_timeout *
		    1000;
		mc.body_max = c->message_size_limit;
		mc.hostname = c->hostname;
		if ((s->milter = milter_session_start(smtp_srv->base,
		    &mc)) == NULL)
			return -1;
		memset(&ss, 0, sizeof(ss));
		if (s->family == AF_INET6) {
			sin6 = (struct sockaddr_in6 *)(void *)&ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, s->addr, 16);
		} else {
			sin = (struct sockaddr_in *)(void *)&ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, s->addr, 4);
		}
		/* no reverse lookup here: the name is the literal */
		snprintf(host, sizeof(host), "[%s]", s->addrtext);
		if ((s->flags & SF_TLS) &&
		    smtp_tls_info(s, &tproto, &cipher, &bits) == 0)
			(void)milter_macro_set(s->milter, "{tls_version}",
			    tproto, strlen(tproto));
		if (milter_connect(s->milter, host,
		    (struct sockaddr *)&ss, milter_stage_cb, sc) == -1 ||
		    milter_helo(s->milter, s->helo ? s->helo : "",
		    s->helo ? strlen(s->helo) : 0, milter_stage_cb, sc) == -1)
			return -1;
	}
	if (milter_macro_set(s->milter, "i", t->env.qid,
	    strlen(t->env.qid)) == -1 ||
	    milter_macro_set(s->milter, "{auth_authen}",
	    s->authuser ? s->authuser : "",
	    s->authuser ? strlen(s->authuser) : 0) == -1)
		return -1;
	if ((sc->refused = calloc(t->env.nrcpt + 1, 1)) == NULL)
		return -1;
	if (milter_mail(s->milter, t->env.sender, strlen(t->env.sender),
	    "", 0, milter_stage_cb, sc) == -1)
		return -1;
	for (i = 0; i < t->env.nrcpt; i++)
		if (milter_rcpt(s->milter, t->env.rcpt[i],
		    strlen(t->env.rcpt[i]), "", 0, milter_rcpt_cb, sc) == -1)
			return -1;
	if (milter_data(s->milter, milter_stage_cb, sc) == -1)
		return -1;
	return milter_headers(sc);
}

/*
 * milter_headers - the header fields of the stored content (at most
 * SCAN_HDR_MAX octets of them; the rest counts as body), then EOH and
 * the first body piece
 */
static int
milter_headers(struct smtp_scan *sc)
{
	struct smtp_txn	*t = sc->t;
	struct milter_session *m = sc->s->milter;
	char		*h;
	size_t		 hlen, i, start, colon, end;

	/*
	 * The body reader needs the whole content in the file: write out
	 * the tail still in the write-behind buffer (creating the file if
	 * it was deferred); the commit thread's fsync covers it.
	 */
	if (spool_msg_flush(&t->msg) == -1)
		return -1;
	if ((sc->rfd = open(t->msg.path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (hdr_read(sc->rfd, &t->msg, &h, &hlen) == -1)
		return -1;
	sc->body_end = t->msg.data_off + (off_t)t->msg.content_len;
	for (i = 0; i < hlen;) {
		if (hlen - i >= 2 && h[i] == '\r' && h[i + 1] == '\n') {
			i += 2;		/* the empty line ends the header */
			break;
		}
		start = i;
		if (field_end(h, hlen, start, &colon, &end) == -1)
			break;	/* not a field, or cut at SCAN_HDR_MAX: body */
		if (milter_header(m, h + start, colon - start, h + colon + 1,
		    end - colon - 1, NULL, NULL) == -1) {
			/* a name milter.c refuses: the body starts here */
			i = start;
			break;
		}
		i = end + 2;
	}
	free(h);
	sc->body_off = t->msg.data_off + (off_t)i;
	if (milter_eoh(m, milter_stage_cb, sc) == -1)
		return -1;
	return milter_body_next(sc);
}

/* milter_body_next - the next body piece, or end of message */
static int
milter_body_next(struct smtp_scan *sc)
{
	char	*p;
	size_t	 n;
	ssize_t	 r;

	if (sc->body_off >= sc->body_end)
		return milter_eom(sc->s->milter, milter_eom_cb, sc);
	n = sc->body_end - sc->body_off < SCAN_BODY_PIECE ?
	    (size_t)(sc->body_end - sc->body_off) : SCAN_BODY_PIECE;
	if ((p = malloc(n)) == NULL)
		return -1;
	r = pread(sc->rfd, p, n, sc->body_off);
	if (r <= 0 || milter_body(sc->s->milter, p, (size_t)r,
	    milter_body_cb, sc) == -1) {
		free(p);
		return -1;
	}
	free(p);
	sc->body_off += r;
	return 0;
}

static void
milter_stage_cb(const struct milter_status *st, void *arg)
{
	milter_verdict_keep(arg, st);
}

/* milter_rcpt_cb - a refusal at RCPT drops that recipient only */
static void
milter_rcpt_cb(const struct milter_status *st, void *arg)
{
	struct smtp_scan	*sc = arg;

	if (sc->rcpt_cb < sc->t->env.nrcpt &&
	    (st->verdict == MILTER_REJECT || st->verdict == MILTER_TEMPFAIL))
		sc->refused[sc->rcpt_cb] = 1;
	else
		milter_verdict_keep(sc, st);
	sc->rcpt_cb++;
}

static void
milter_body_cb(const struct milter_status *st, void *arg)
{
	struct smtp_scan	*sc = arg;

	milter_verdict_keep(sc, st);
	/* decided, or no milter left to ask: straight to end of message */
	if (sc->verdict != MILTER_CONTINUE || st->verdict == MILTER_ACCEPT)
		sc->body_off = sc->body_end;
	if (milter_body_next(sc) == -1) {
		log_warnx("event=milter_failure qid=%s reason=body_read",
		    sc->t->env.qid);
		sc->verdict = MILTER_TEMPFAIL;
		milter_abort(sc->s->milter);
		scan_done(sc);
	}
}

static void
milter_eom_cb(const struct milter_status *st, void *arg)
{
	struct smtp_scan	*sc = arg;

	milter_verdict_keep(sc, st);
	if (sc->verdict == MILTER_CONTINUE || sc->verdict == MILTER_ACCEPT) {
		if (milter_mods_keep(sc, st) == -1) {
			log_warnx("event=milter_failure qid=%s reason=nomem",
			    sc->t->env.qid);
			sc->verdict = MILTER_TEMPFAIL;
		}
	}
	scan_done(sc);
}

/* milter_verdict_keep - the first refusal decides the message */
static void
milter_verdict_keep(struct smtp_scan *sc, const struct milter_status *st)
{
	char	 who[CONF_ENDPOINT_TEXT * 4 + 1];

	if (st->close)
		sc->close = 1;
	if (sc->verdict == MILTER_REJECT || sc->verdict == MILTER_TEMPFAIL ||
	    sc->verdict == MILTER_DISCARD)
		return;
	if (st->verdict != MILTER_REJECT && st->verdict != MILTER_TEMPFAIL &&
	    st->verdict != MILTER_DISCARD)
		return;
	sc->verdict = st->verdict;
	if (st->reply != NULL && (sc->reply = malloc(st->reply_len + 1)) !=
	    NULL) {
		memcpy(sc->reply, st->reply, st->reply_len);
		sc->reply[st->reply_len] = '\0';
	}
	if (st->milter != NULL)
		log_sanitize(st->milter, strlen(st->milter), who, sizeof(who));
	else
		memcpy(who, "-", 2);
	log_info("event=milter qid=%s milter=%s verdict=%s%s",
	    sc->t->env.qid, who, st->verdict == MILTER_REJECT ? "reject" :
	    st->verdict == MILTER_TEMPFAIL ? "tempfail" : "discard",
	    st->from_default ? " default=yes" : "");
}

/* milter_mods_keep - copy the end-of-message results for the commit */
static int
milter_mods_keep(struct smtp_scan *sc, const struct milter_status *st)
{
	size_t	 i;

	if (st->quarantine != NULL) {
		/* SMFIR_QUARANTINE: keep it in quarantine/ with the
		   milter's reason (quarantine.h) instead of delivering */
		sc->quarantine = 1;
		(void)snprintf(sc->quar_rule, sizeof(sc->quar_rule),
		    "milter");
		log_sanitize_text(st->quarantine, strlen(st->quarantine),
		    sc->quar_reason, sizeof(sc->quar_reason));
		log_info("event=milter qid=%s quarantine=\"%s\"",
		    sc->t->env.qid, sc->quar_reason);
	}
	if (st->nmods > 0 &&
	    (sc->mods = calloc(st->nmods, sizeof(*sc->mods))) == NULL)
		return -1;
	for (i = 0; i < st->nmods; i++) {
		sc->mods[i].type = st->mods[i].type;
		sc->mods[i].index = st->mods[i].index;
		sc->mods[i].name_len = st->mods[i].name_len;
		sc->mods[i].value_len = st->mods[i].value_len;
		if ((sc->mods[i].name = malloc(st->mods[i].name_len + 1)) ==
		    NULL || (sc->mods[i].value =
		    malloc(st->mods[i].value_len + 1)) == NULL) {
			sc->nmods = i + 1;
			return -1;
		}
		memcpy(sc->mods[i].name, st->mods[i].name,
		    st->mods[i].name_len + 1);
		memcpy(sc->mods[i].value, st->mods[i].value,
		    st->mods[i].value_len + 1);
		sc->nmods = i + 1;
	}
	if (st->body_replaced) {
		if ((sc->body = malloc(st->body_len + 1)) == NULL)
			return -1;
		memcpy(sc->body, st->body, st->body_len);
		sc->body_len = st->body_len;
		sc->body_replaced = 1;
	}
	if (sc->nmods > 0 || sc->body_replaced)
		log_info("event=milter qid=%s modifications=%zu body=%s",
		    sc->t->env.qid, sc->nmods, sc->body_replaced ?
		    "replaced" : "kept");
	return 0;
}

/* scan_done - one scanner answered; the last one resumes the session */
static void
scan_done(struct smtp_scan *sc)
{
	struct smtp_session	*s = sc->s;

	if (--sc->waiting > 0)
		return;
	if (s->flags & SF_DEAD) {
		/* the client is gone: no reply, no message */
		smtp_enter_state(s, SMTP_ST_HELO);
		smtp_session_free(s);
		return;
	}
	scan_decide(sc);
}

/* scan_decide - refuse the message or hand it to the commit threads */
static void
scan_decide(struct smtp_scan *sc)
{
	static char		 reply[CLAMD_NAME_MAX + MILTER_REPLY_MAX + 64];
	struct smtp_session	*s = sc->s;
	struct smtp_txn		*t = sc->t;
	size_t			 i, left;

	if (sc->clamd_done && sc->clamd_status == CLAMD_VIRUS) {
		switch (smtp_srv->conf->virus_action) {
		case CONF_VIRUS_QUARANTINE:
			/* 250, and the message goes to quarantine/ */
			sc->quarantine = 1;
			(void)snprintf(sc->quar_rule, sizeof(sc->quar_rule),
			    "virus");
			(void)snprintf(sc->quar_reason, sizeof(sc->quar_reason),
			    "clamd: %.*s FOUND", (int)sizeof(sc->quar_reason) -
			    20, sc->clamd_name);
			smtp_data_commit(s);
			return;
		case CONF_VIRUS_DISCARD:
			snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued "
			    "as %s", t->env.qid);
			smtp_data_refuse(s, reply, "virus_discard");
			return;
		default:
			snprintf(reply, sizeof(reply), "554 5.7.1 Virus found: "
			    "%s", sc->clamd_name);
			smtp_data_refuse(s, reply, "virus");
			return;
		}
	}
	if (sc->clamd_done && sc->clamd_status == CLAMD_ERROR &&
	    smtp_srv->conf->clamd == CONF_CLAMD_TEMPFAIL) {
		smtp_data_refuse(s, "451 4.7.1 Virus scanner unavailable, "
		    "try again later", "clamd_failure");
		return;
	}
	if (sc->milter_on) {
		for (i = left = 0; i < t->env.nrcpt; i++)
			if (!sc->refused[i])
				left++;
		if (left == 0 && sc->verdict == MILTER_CONTINUE)
			sc->verdict = MILTER_REJECT;
		switch (sc->verdict) {
		case MILTER_REJECT:
		case MILTER_TEMPFAIL:
			if (sc->reply != NULL)
				snprintf(reply, sizeof(reply), "%s",
				    sc->reply);
			else
				snprintf(reply, sizeof(reply), "%s",
				    sc->verdict == MILTER_REJECT ?
				    "550 5.7.1 Message refused" :
				    "451 4.7.1 Try again later");
			if (sc->close) {
				s->reason = "milter";
				smtp_enter_state(s, SMTP_ST_HELO);
				smtp_close(s, "421 4.7.0 Closing connection");
				smtp_session_process(s);
				return;
			}
			smtp_data_refuse(s, reply, "milter");
			return;
		case MILTER_DISCARD:
			snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued "
			    "as %s", t->env.qid);
			smtp_data_refuse(s, reply, "milter_discard");
			return;
		default:
			break;
		}
	}
	smtp_data_commit(s);
}

/*
 * smtp_scan_quarantine - did clamd (virus_action = quarantine) or a
 * milter ask for the quarantine?  1 with its rule and reason, else 0.
 */
int
smtp_scan_quarantine(const struct smtp_txn *t, const char **rule,
    const char **reason)
{
	const struct smtp_scan	*sc = t->scanners;

	if (sc == NULL || !sc->quarantine)
		return 0;
	*rule = sc->quar_rule;
	*reason = sc->quar_reason;
	return 1;
}

/*
 * smtp_scan_finish - commit thread, after the file is complete: apply
 * the milters' modifications by writing a new spool file (a new queue
 * id, like content_rewrite) and dropping the original.  0 or -1.
 */
int
smtp_scan_finish(struct smtp_txn *t)
{
	struct smtp_scan	*sc = t->scanners;
	struct spool_msg	 nm;
	struct envelope		*e = &t->env;
	char			 oldqid[QID_SIZE];
	char			*h = NULL;
	size_t			 hlen, i, k, start, colon, end, nf, occ, blen;
	size_t			 fields[SCAN_FIELDS_MAX][3];
	struct scan_mod		*m;
	int			 fd = -1, rc = -1;
	off_t			 boff;

	if (sc == NULL || (sc->nmods == 0 && !sc->body_replaced))
		return 0;
	memcpy(oldqid, e->qid, sizeof(oldqid));
	memset(&nm, 0, sizeof(nm));
	nm.fd = -1;
	if (env_apply(sc, e) == -1)
		goto out;
	if ((fd = open(t->msg.path, O_RDONLY | O_CLOEXEC)) == -1)
		goto out;
	if (hdr_read(fd, &t->msg, &h, &hlen) == -1)
		goto out;
	/* the fields as milter_headers() showed them: name, start, end */
	for (i = nf = 0; i < hlen && nf < SCAN_FIELDS_MAX;) {
		if (hlen - i >= 2 && h[i] == '\r' && h[i + 1] == '\n')
			break;
		start = i;
		if (field_end(h, hlen, start, &colon, &end) == -1)
			break;
		fields[nf][0] = colon - start;
		fields[nf][1] = start;
		fields[nf][2] = end + 2;
		nf++;
		i = end + 2;
	}
	boff = t->msg.data_off + (off_t)i;
	blen = t->msg.content_len - i;
	if (spool_msg_open(&nm, e, "tmp", "") == -1)
		goto out;
	for (k = 0; k <= nf; k++) {
		/* INSHEADER before field k; the later insert comes first */
		for (i = sc->nmods; i-- > 0;) {
			m = &sc->mods[i];
			if (m->type != MILTER_MOD_INSHEADER ||
			    (m->index != k && !(k == nf && m->index > nf)))
				continue;
			if (hdr_write(&nm, m->name, m->name_len, m->value,
			    m->value_len) == -1)
				goto out;
		}
		if (k == nf)
			break;
		/* CHGHEADER: the occ-th field of its name (from 1) */
		for (i = occ = 0; i <= k; i++)
			if (fields[i][0] == fields[k][0] &&
			    strncasecmp(h + fields[i][1], h + fields[k][1],
			    fields[k][0]) == 0)
				occ++;
		m = NULL;
		for (i = 0; i < sc->nmods; i++)
			if (sc->mods[i].type == MILTER_MOD_CHGHEADER &&
			    sc->mods[i].index == occ &&
			    sc->mods[i].name_len == fields[k][0] &&
			    strncasecmp(sc->mods[i].name, h + fields[k][1],
			    fields[k][0]) == 0)
				m = &sc->mods[i];	/* the last one wins */
		if (m != NULL) {
			for (i = 0; i < sc->nmods; i++)
				if (sc->mods[i].type ==
				    MILTER_MOD_CHGHEADER &&
				    sc->mods[i].index == occ &&
				    sc->mods[i].name_len == fields[k][0] &&
				    strncasecmp(sc->mods[i].name,
				    h + fields[k][1], fields[k][0]) == 0)
					sc->mods[i].done = 1;
			if (m->value_len > 0 && hdr_write(&nm, m->name,
			    m->name_len, m->value, m->value_len) == -1)
				goto out;
			continue;
		}
		if (spool_msg_write(&nm, h + fields[k][1],
		    fields[k][2] - fields[k][1]) == -1)
			goto out;
	}
	/* ADDHEADER at the end; a CHGHEADER with no such field adds it */
	for (i = 0; i < sc->nmods; i++) {
		m = &sc->mods[i];
		if ((m->type == MILTER_MOD_ADDHEADER ||
		    (m->type == MILTER_MOD_CHGHEADER && !m->done &&
		    m->value_len > 0)) && hdr_write(&nm, m->name,
		    m->name_len, m->value, m->value_len) == -1)
			goto out;
	}
	if (sc->body_replaced) {
		if (spool_msg_write(&nm, "\r\n", 2) == -1 ||
		    spool_msg_write(&nm, sc->body, sc->body_len) == -1 ||
		    (sc->body_len > 0 && sc->body[sc->body_len - 1] != '\n' &&
		    spool_msg_write(&nm, "\r\n", 2) == -1))
			goto out;
	} else if (fd_copy_range(fd, boff, blen,
	    spool_msg_sink, &nm) == -1)
		goto out;
	if (spool_msg_finish(&nm) == -1)
		goto out;
	spool_msg_abort(&t->msg);
	t->msg = nm;
	nm.fd = -1;
	log_info("event=milter qid=%s rewritten=%s", oldqid, e->qid);
	rc = 0;
out:
	if (rc == -1) {
		log_warn("event=error qid=%s error=milter_rewrite", oldqid);
		if (nm.fd != -1)
			spool_msg_abort(&nm);
		memcpy(e->qid, oldqid, sizeof(oldqid));
	}
	if (fd != -1)
		close(fd);
	free(h);
	return rc;
}

/* addr_strip - an address without its angle brackets */
static const char *
addr_strip(const char *p, size_t len, size_t *outlen)
{
	if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
		p++;
		len -= 2;
	}
	*outlen = len;
	return p;
}

/*
 * env_apply - the envelope changes: refused recipients out, then
 * CHGFROM, DELRCPT and ADDRCPT in milter order.  The last recipient is
 * never deleted (the message would be lost without a trace).
 */
static int
env_apply(struct smtp_scan *sc, struct envelope *e)
{
	const struct scan_mod	*m;
	const char		*a;
	size_t			 i, j, n, nref = 0;

	for (i = 0; i < e->nrcpt; i++)
		nref += sc->refused[i] != 0;
	for (i = j = 0; i < e->nrcpt; i++) {
		if (sc->refused[i] && nref < e->nrcpt) {
			free(e->rcpt[i]);
			continue;
		}
		e->rcpt[j++] = e->rcpt[i];
	}
	e->nrcpt = j;
	for (i = 0; i < sc->nmods; i++) {
		m = &sc->mods[i];
		a = addr_strip(m->name, m->name_len, &n);
		switch (m->type) {
		case MILTER_MOD_CHGFROM:
			if (envelope_set_sender(e, a, n) == -1)
				return -1;
			break;
		case MILTER_MOD_ADDRCPT:
		case MILTER_MOD_ADDRCPT_PAR:
			if (envelope_add_rcpt(e, a, n) == -1)
				return -1;
			break;
		case MILTER_MOD_DELRCPT:
			for (j = 0; j < e->nrcpt && e->nrcpt > 1; j++) {
				if (strlen(e->rcpt[j]) != n ||
				    strncasecmp(e->rcpt[j], a, n) != 0)
					continue;
				free(e->rcpt[j]);
				memmove(&e->rcpt[j], &e->rcpt[j + 1],
				    (e->nrcpt - j - 1) * sizeof(*e->rcpt));
				e->nrcpt--;
				break;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}

/* hdr_write - "Name:" value CRLF (the value as the milter gave it) */
static int
hdr_write(struct spool_msg *nm, const char *name, size_t nl,
    const char *value, size_t vl)
{
	if (spool_msg_write(nm, name, nl) == -1 ||
	    spool_msg_write(nm, ":", 1) == -1 ||
	    spool_msg_write(nm, value, vl) == -1)
		return -1;
	return spool_msg_write(nm, "\r\n", 2);
}

/*
 * hdr_read - the first SCAN_HDR_MAX octets of msg's content (the header
 * section as milters see it) from fd into *hp, malloc'd with one spare
 * octet and owned by the caller, their number in *hlen.  0 or -1.
 */
static int
hdr_read(int fd, const struct spool_msg *msg, char **hp, size_t *hlen)
{
	char	*h;
	size_t	 n;
	ssize_t	 r;

	n = msg->content_len < SCAN_HDR_MAX ? msg->content_len : SCAN_HDR_MAX;
	if ((h = malloc(n + 1)) == NULL)
		return -1;
	r = pread(fd, h, n, msg->data_off);
	if (r < 0 || (size_t)r != n) {
		free(h);
		return -1;
	}
	*hp = h;
	*hlen = n;
	return 0;
}

/*
 * field_end - the header field that starts at h[start]: name ':' value
 * CRLF with its continuation lines (RFC 5322 2.2).  Its first colon in
 * *colon, the CR of its last CRLF in *end; -1 if it has no colon or is
 * cut at hlen.  milter_headers() and smtp_scan_finish() must see the
 * same fields, so both use this.
 */
static int
field_end(const char *h, size_t hlen, size_t start, size_t *colon,
    size_t *end)
{
	size_t	 c = 0, e;

	for (e = start; e + 1 < hlen; e++) {
		if (c == 0 && h[e] == ':')
			c = e;
		if (h[e] == '\r' && h[e + 1] == '\n' &&
		    (e + 2 >= hlen || (h[e + 2] != ' ' && h[e + 2] != '\t')))
			break;
	}
	if (e + 1 >= hlen || c == 0)
		return -1;
	*colon = c;
	*end = e;
	return 0;
}

