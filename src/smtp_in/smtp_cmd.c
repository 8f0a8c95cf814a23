/*
 * smtp_cmd.c - the verb table, the ISA-style command filter and the
 * envelope commands of smtp-in.
 *
 * Every command line goes through the same steps (STYLE.md 7):
 *   1. split into verb and argument (smtp_cmd_split); NUL or control
 *      octets are a 500 5.5.2 client error;
 *   2. the command filter (conf->filter): a verb not listed, an
 *      argument longer than its limit, or a line longer than 512 octets
 *      and than the verb's own limit is answered "421 5.5.1 Invalid
 *      command", logged as event=alarm and the session is closed;
 *   3. the verb table: unknown to smtp-in -> 502; a state not in the
 *      verb's mask -> 503 5.5.1 with a text fitting the state;
 *   4. the handler, which checks its argument, replies and acts.
 *
 * Relay policy (RCPT): a recipient in local_domains is accepted from
 * anyone, other domains only from relay_networks; routing tricks
 * (source routes, '%', '!', '@' in the local part) toward a local
 * domain are refused; postmaster always gets through (RFC 5321 4.5.1).
 * A client outside relay_networks may not claim a local domain as
 * sender (spoofing).  Every refusal of this kind is an event=alarm.
 * The anti-spam checks of untrusted clients (smtp_policy.c) are fed
 * at HELO and MAIL and give their verdict at RCPT, after the relay
 * policy, postmaster exempt.  With relay_recipients, an unknown user
 * of a listed local domain gets 550 5.1.1 (rcpt_known).  Then
 * greylisting (smtp_greylist.c) and, last because it costs the
 * internal host a probe, recipient_verify = callout (smtp_callout.c).
 *
 * Submission (RFC 6409): on submission_listen and smtps_listen, MAIL
 * needs AUTH first (530 5.7.0).  An authenticated client may relay
 * anywhere, but only with an envelope sender its login owns
 * (auth_sender_map, or the login itself): else 553 5.7.1 and an alarm.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/authdb.h"
#include "../common/config.h"
#include "../common/rcptmap.h"
#include "../common/stats.h"
#include "smtp_disk.h"
#include "smtp_in.h"

/* verb flags */
#define VF_NOARG	0x01	/* takes no argument */
#define VF_NEEDARG	0x02	/* requires an argument */

#define LOG_ADDR_MAX	600	/* sanitized address in a log line */
#define ADDR_BUF_MAX	(ADDR_LOCAL_MAX * 2 + ADDR_DOMAIN_MAX + 8)

struct smtp_verb {
	const char	*name;
	unsigned	 states;	/* ST() mask where it is accepted */
	unsigned	 flags;		/* VF_* */
	void		(*proceed)(struct smtp_session *,
			    const struct smtp_cmd *);
};

static void	cmd_helo(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_ehlo(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_hello(struct smtp_session *, const struct smtp_cmd *,
		    int);
static void	cmd_mail(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_rcpt(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_rset(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_noop(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_help(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_quit(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_vrfy(struct smtp_session *, const struct smtp_cmd *);
static void	cmd_bad_sequence(struct smtp_session *,
		    const struct smtp_verb *);
static void	cmd_arg_error(struct smtp_session *, enum smtp_arg_error,
		    const char *, int);
static int	rcpt_seen(const struct envelope *, const char *, size_t);
static int	rcpt_policy(struct smtp_session *, const struct addr *,
		    const char *);
static int	rcpt_known(struct smtp_session *, const struct addr *,
		    const char *);
static int	mail_submission(struct smtp_session *);
static int	mail_sender_owned(struct smtp_session *, const char *,
		    size_t, const char *);
static size_t	addr_join(const struct addr *, char *, size_t);
static int	has_ctl(const char *, size_t);
static size_t	verb_span(const char *, size_t);

#define ST_ALL		ST_COMMANDS
#define ST_TXN		(ST(SMTP_ST_MAIL) | ST(SMTP_ST_RCPT))

/*
 * The verb table.  BDAT is accepted in every command state because a
 * refused chunk must still be read and discarded (RFC 3030 2); its
 * handler refuses by state.  STARTTLS and AUTH only outside a
 * transaction (RFC 4954 4: AUTH during a transaction is 503).
 */
static const struct smtp_verb verbs[] = {
	{ "EHLO",	ST_ALL,			VF_NEEDARG, cmd_ehlo },
	{ "HELO",	ST_ALL,			VF_NEEDARG, cmd_helo },
	{ "MAIL",	ST(SMTP_ST_HELO),	VF_NEEDARG, cmd_mail },
	{ "RCPT",	ST_TXN,			VF_NEEDARG, cmd_rcpt },
	{ "DATA",	ST(SMTP_ST_RCPT),	VF_NOARG, smtp_cmd_data },
	{ "BDAT",	ST_ALL,			VF_NEEDARG, smtp_cmd_bdat },
	{ "RSET",	ST_ALL,			VF_NOARG, cmd_rset },
	{ "NOOP",	ST_ALL,			0, cmd_noop },
	{ "HELP",	ST_ALL,			0, cmd_help },
	{ "QUIT",	ST_ALL,			VF_NOARG, cmd_quit },
	{ "VRFY",	ST_ALL,			0, cmd_vrfy },
	{ "EXPN",	ST_ALL,			0, cmd_vrfy },
	{ "STARTTLS",	ST(SMTP_ST_CONNECTED) | ST(SMTP_ST_HELO),
						VF_NOARG, smtp_cmd_starttls },
	{ "AUTH",	ST(SMTP_ST_HELO),	VF_NEEDARG, smtp_cmd_auth },
	{ NULL,		0,			0, NULL }
};

/*
 * smtp_ehlo_build - prepare the EHLO replies once (the hostname and
 * the size limit do not change in a process): before TLS with
 * STARTTLS, in TLS with AUTH (RFC 4954 3: PLAIN and LOGIN send the
 * password as is, so never in the clear), and plain.  No software name.
 */
int
smtp_ehlo_build(struct smtp_server *srv)
{
	static const char exts[] =
	    "250-PIPELINING\r\n"
	    "250-SIZE %zu\r\n"
	    "250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-SMTPUTF8\r\n";

	buf_init(&srv->ehlo, 4096);
	buf_init(&srv->ehlo_tls, 4096);
	buf_init(&srv->ehlo_auth, 4096);
	if (buf_appendf(&srv->ehlo, "250-%s\r\n", srv->conf->hostname) ||
	    buf_appendf(&srv->ehlo, exts, srv->conf->message_size_limit) ||
	    buf_appends(&srv->ehlo_tls, srv->ehlo.data) ||
	    buf_appends(&srv->ehlo_auth, srv->ehlo.data) ||
	    buf_appends(&srv->ehlo_auth,
	    "250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n") ||
	    buf_appends(&srv->ehlo, "250 CHUNKING\r\n") ||
	    buf_appends(&srv->ehlo_tls, "250-CHUNKING\r\n250 STARTTLS\r\n"))
		return -1;
	return 0;
}

/*
 * smtp_cmd_line - run one command line (len octets, CRLF excluded;
 * consumed = len with CRLF).  line points into the input buffer and
 * stays valid for the call only.
 */
void
smtp_cmd_line(struct smtp_session *s, const char *line, size_t len,
    size_t consumed)
{
	struct smtp_cmd		 c;
	const struct filter_rule *rule;
	const struct smtp_verb	*v;

	if (len == 0) {
		smtp_reply_error(s, "500 5.5.2 Syntax error");
		return;
	}
	if (smtp_cmd_split(line, len, &c) == -1) {
		/*
		 * The filter judges the verb first: an unknown or disabled
		 * verb closes the session whatever follows it; a listed one
		 * with a control octet is a client error.
		 */
		if (has_ctl(line, len) && config_filter_find(smtp_srv->conf,
		    line, verb_span(line, len)) != NULL) {
			log_info("event=error client=%s sid=%lu "
			    "error=control_char_command", s->addrtext, s->id);
			smtp_reply_error(s,
			    "500 5.5.2 Invalid character in command");
			return;
		}
		/* not a verb at all: an unknown command for the filter */
		smtp_filter_alarm(s, line, verb_span(line, len), len);
		return;
	}
	rule = config_filter_find(smtp_srv->conf, c.verb, c.verblen);
	if (rule == NULL) {
		smtp_filter_alarm(s, c.verb, c.verblen, c.arglen);
		return;
	}
	if (c.arglen > rule->maxarg || (consumed > SMTP_LINE_MAX &&
	    consumed > c.verblen + 1 + rule->maxarg + 2)) {
		smtp_filter_alarm(s, c.verb, c.verblen,
		    c.arglen > rule->maxarg ? c.arglen : len);
		return;
	}
	for (v = verbs; v->name != NULL; v++)
		if (smtp_verb_eq(&c, v->name))
			break;
	if (v->name == NULL) {
		/* listed by the admin but not a command of smtp-in */
		smtp_reply_error(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (((v->flags & VF_NOARG) && c.arglen != 0) ||
	    ((v->flags & VF_NEEDARG) && c.arglen == 0)) {
		smtp_reply_error(s, "501 5.5.4 Syntax error");
		return;
	}
	if (!(v->states & ST(s->state))) {
		cmd_bad_sequence(s, v);
		return;
	}
	v->proceed(s, &c);
}

/*
 * smtp_filter_alarm - the command filter refused a command: log an
 * alarm and close with 421 (ISA Server behaviour, DESIGN.md 4).
 */
void
smtp_filter_alarm(struct smtp_session *s, const char *verb, size_t verblen,
    size_t len)
{
	char	 v[64];

	log_info("event=alarm type=command_filter client=%s verb=%s len=%zu "
	    "sid=%lu", s->addrtext,
	    log_sanitize(verb, verblen > 16 ? 16 : verblen, v, sizeof(v)),
	    len, s->id);
	STATS_ADD(alarm_filter, 1);
	s->reason = "command_filter";
	smtp_close(s, "421 5.5.1 Invalid command");
}

/* cmd_bad_sequence - 503 with a text that tells what is missing */
static void
cmd_bad_sequence(struct smtp_session *s, const struct smtp_verb *v)
{
	const char	*why = "Bad sequence of commands";

	if (s->state == SMTP_ST_CONNECTED && v->proceed != smtp_cmd_data)
		why = "Send HELO/EHLO first";
	else if (v->proceed == cmd_mail)
		why = s->state == SMTP_ST_CHUNKING ?
		    "BDAT transfer in progress" : "Nested MAIL command";
	else if (v->proceed == cmd_rcpt)
		why = s->state == SMTP_ST_CHUNKING ?
		    "BDAT transfer in progress" : "Need MAIL command";
	else if (v->proceed == smtp_cmd_data)
		why = s->state == SMTP_ST_MAIL ? "No valid recipients" :
		    s->state == SMTP_ST_CHUNKING ?
		    "DATA and BDAT cannot be mixed" : "Need MAIL command";
	else if (v->proceed == smtp_cmd_starttls)
		why = s->state == SMTP_ST_CHUNKING || (ST(s->state) & ST_TXN) ?
		    "STARTTLS not allowed in a transaction" : why;
	else if (v->proceed == smtp_cmd_auth)
		why = s->state == SMTP_ST_CHUNKING || (ST(s->state) & ST_TXN) ?
		    "AUTH not allowed in a transaction" : why;
	smtp_reply_error(s, "503 5.5.1 %s", why);
}

static void
cmd_helo(struct smtp_session *s, const struct smtp_cmd *c)
{
	cmd_hello(s, c, 0);
}

static void
cmd_ehlo(struct smtp_session *s, const struct smtp_cmd *c)
{
	cmd_hello(s, c, 1);
}

/*
 * cmd_hello - HELO/EHLO: one word (domain or address literal; not
 * verified, many clients send junk), resets any transaction (RFC 5321
 * 4.1.4).  The reply carries no software name (DESIGN.md 3).
 */
static void
cmd_hello(struct smtp_session *s, const struct smtp_cmd *c, int esmtp)
{
	char		 tmp[256];
	char		*copy;
	size_t		 n;
	const struct buf *b;

	if (memchr(c->arg, ' ', c->arglen) != NULL ||
	    memchr(c->arg, '\t', c->arglen) != NULL) {
		smtp_reply_error(s, "501 5.5.4 Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return;
	}
	log_sanitize(c->arg, c->arglen, tmp, sizeof(tmp));
	n = strlen(tmp);
	if ((copy = str_dup_len(tmp, n)) == NULL) {
		smtp_reply(s, "451 4.3.0 Local error in processing");
		return;
	}
	free(s->helo);
	s->helo = copy;
	smtp_policy_helo(s, c->arg, c->arglen);
	smtp_txn_free(s);
	if (esmtp)
		s->flags |= SF_ESMTP;
	else
		s->flags &= ~SF_ESMTP;
	smtp_enter_state(s, SMTP_ST_HELO);
	if (!esmtp) {
		smtp_reply(s, "250 %s", smtp_srv->conf->hostname);
		return;
	}
	if (smtp_srv->tls_ctx != NULL && !(s->flags & SF_TLS))
		b = &smtp_srv->ehlo_tls;
	else if (smtp_auth_offered(s))
		b = &smtp_srv->ehlo_auth;
	else
		b = &smtp_srv->ehlo;
	smtp_reply_raw(s, b->data, b->len);
}

/* cmd_arg_error - the reply for a MAIL/RCPT parser error */
static void
cmd_arg_error(struct smtp_session *s, enum smtp_arg_error e, const char *why,
    int mail)
{
	if (why == NULL)
		why = "Syntax error";
	switch (e) {
	case ARG_SYNTAX:
		smtp_reply_error(s, "501 5.5.4 %s", why);
		break;
	case ARG_BAD_ADDR:
		smtp_reply_error(s, "501 %s %s", mail ? "5.1.7" : "5.1.3", why);
		break;
	case ARG_UNKNOWN_PARAM:
		smtp_reply_error(s, "555 5.5.4 %s", why);
		break;
	case ARG_UTF8:
		smtp_reply_error(s, "553 5.6.7 %s", why);
		break;
	default:
		panic("cmd_arg_error: %d", (int)e);
	}
}

/*
 * cmd_mail - MAIL FROM:<path> [SIZE= BODY= SMTPUTF8] (RFC 5321 4.1.1.2,
 * RFC 1870, RFC 6152, RFC 6531).  Starts the transaction.
 */
static void
cmd_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
	struct smtp_mail_args	 ma;
	struct smtp_txn		*t;
	const struct config	*conf = smtp_srv->conf;
	const char		*why = NULL;
	enum smtp_arg_error	 e;
	char			 a[ADDR_BUF_MAX], la[LOG_ADDR_MAX];
	size_t			 n = 0;

	if (mail_submission(s) == -1)
		return;
	memset(&ma, 0, sizeof(ma));
	if ((e = smtp_parse_mail(c->arg, c->arglen, &ma, &why)) != ARG_OK) {
		cmd_arg_error(s, e, why, 1);
		return;
	}
	if (!(s->flags & SF_ESMTP) && (ma.has_size || ma.body != BODY_NONE ||
	    ma.smtputf8 || ma.auth != NULL)) {
		smtp_reply_error(s, "555 5.5.4 Parameters require EHLO");
		return;
	}
	/*
	 * BINARYMIME is not advertised.  AUTH= is accepted where AUTH is
	 * (RFC 4954 5) and its value ignored: we trust no client's word
	 * on who submitted the message, only our own AUTH.
	 */
	if (ma.body == BODY_BINARYMIME ||
	    (ma.auth != NULL && !smtp_auth_offered(s))) {
		smtp_reply_error(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	if (ma.has_size && ma.size > conf->message_size_limit) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	/* spool below min_free_space (smtp_disk.c; RFC 3463 3.4) */
	if (smtp_disk_refuse(ma.has_size ? ma.size : 0)) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	if (!ma.null_sender) {
		if ((n = addr_join(&ma.addr, a, sizeof(a))) == 0) {
			smtp_reply_error(s, "501 5.1.7 Bad sender address");
			return;
		}
		log_sanitize(a, n, la, sizeof(la));
		if (mail_sender_owned(s, a, n, la) == -1)
			return;
		if (!(s->flags & (SF_RELAY | SF_AUTH)) &&
		    ma.addr.domain != NULL &&
		    !(ma.addr.flags & ADDR_LITERAL) &&
		    config_is_local_domain(conf, ma.addr.domain,
		    ma.addr.domainlen)) {
			log_info("event=alarm type=spoof client=%s from=<%s> "
			    "sid=%lu", s->addrtext, la, s->id);
			STATS_ADD(alarm_spoof, 1);
			smtp_reply_error(s,
			    "550 5.7.1 Sender address rejected");
			return;
		}
	}
	if (smtp_policy_mail(s, ma.null_sender ? NULL : &ma.addr) == -1)
		return;
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    envelope_set_sender(&t->env, a, n) == -1) {
		if (t != NULL)
			envelope_free(&t->env);
		free(t);
		log_warn("event=error client=%s sid=%lu error=alloc",
		    s->addrtext, s->id);
		smtp_reply(s, "451 4.3.0 Local error in processing");
		return;
	}
	t->s = s;
	t->env.body = ma.body == BODY_NONE ? BODY_7BIT : ma.body;
	t->env.smtputf8 = ma.smtputf8;
	s->txn = t;
	smtp_enter_state(s, SMTP_ST_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}

/*
 * cmd_rcpt - RCPT TO:<path> (RFC 5321 4.1.1.3) with the relay policy
 * and max_recipients (452 4.5.3, RFC 5321 4.5.3.1.10).
 */
static void
cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
	struct smtp_rcpt_args	 ra;
	struct smtp_txn		*t = s->txn;
	const char		*why = NULL;
	enum smtp_arg_error	 e;
	char			 a[ADDR_BUF_MAX], la[LOG_ADDR_MAX];
	size_t			 n;
	int			 pm;

	if (t == NULL)
		panic("cmd_rcpt: no transaction in state %s",
		    smtp_state_name(s->state));
	if (t->env.nrcpt >= smtp_srv->conf->max_recipients) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	memset(&ra, 0, sizeof(ra));
	e = smtp_parse_rcpt(c->arg, c->arglen, t->env.smtputf8, &ra, &why);
	if (e != ARG_OK) {
		cmd_arg_error(s, e, why, 0);
		return;
	}
	if ((n = addr_join(&ra.addr, a, sizeof(a))) == 0) {
		smtp_reply_error(s, "501 5.1.3 Bad recipient address");
		return;
	}
	log_sanitize(a, n, la, sizeof(la));
	pm = (ra.addr.flags & ADDR_POSTMASTER) || addr_is_postmaster(&ra.addr);
	if (rcpt_policy(s, &ra.addr, la) == -1 ||
	    smtp_policy_rcpt(s, pm) == -1 ||
	    (!pm && rcpt_known(s, &ra.addr, la) == -1)) {
		STATS_ADD(rcpt_rejected, 1);
		return;
	}
	if (!pm && smtp_greylist_rcpt(s, a, n) == -1) {
		STATS_ADD(rcpt_rejected, 1);
		return;
	}
	/* recipient_verify = callout: may answer later (smtp_callout.c) */
	if (!pm && smtp_callout_rcpt(s, &ra.addr, a, n) != 0)
		return;
	smtp_rcpt_accept(s, a, n);
}

/*
 * smtp_rcpt_accept - add a[0..n), a recipient that passed every check,
 * to the transaction and answer 250
 */
void
smtp_rcpt_accept(struct smtp_session *s, const char *a, size_t n)
{
	struct smtp_txn		*t = s->txn;

	if (t == NULL)
		panic("smtp_rcpt_accept: no transaction in state %s",
		    smtp_state_name(s->state));
	if (rcpt_seen(&t->env, a, n)) {
		/* RFC 5321 3.3: one copy per recipient, answered as usual */
		smtp_reply(s, "250 2.1.5 Ok");
		return;
	}
	if (envelope_add_rcpt(&t->env, a, n) == -1) {
		log_warn("event=error client=%s sid=%lu error=alloc",
		    s->addrtext, s->id);
		smtp_reply(s, "451 4.3.0 Local error in processing");
		return;
	}
	if (s->state != SMTP_ST_RCPT)
		smtp_enter_state(s, SMTP_ST_RCPT);
	smtp_reply(s, "250 2.1.5 Ok");
}

/*
 * rcpt_seen - is a[0..n) already a recipient of this transaction?  The
 * local part compares exactly, the domain ignoring ASCII case.
 */
static int
rcpt_seen(const struct envelope *env, const char *a, size_t n)
{
	const char	*at, *r, *rat;
	size_t		 i, rn, llen;

	at = memrchr(a, '@', n);
	llen = at ? (size_t)(at - a) : n;
	for (i = 0; i < env->nrcpt; i++) {
		r = env->rcpt[i];
		rn = strlen(r);		/* our own copy, NUL-terminated */
		rat = memrchr(r, '@', rn);
		if (rn != n || (rat ? (size_t)(rat - r) : rn) != llen ||
		    memcmp(r, a, llen) != 0)
			continue;
		if (mem_casecmp(r + llen, a + llen, n - llen) == 0)
			return 1;
	}
	return 0;
}

/*
 * rcpt_policy - 0 if the recipient may be accepted from this client,
 * else -1 with the reply and the alarm done.
 */
static int
rcpt_policy(struct smtp_session *s, const struct addr *a, const char *la)
{
	int	 local;

	if (a->flags & ADDR_POSTMASTER)
		return 0;
	/* an address literal is never one of ours */
	local = a->domain != NULL && !(a->flags & ADDR_LITERAL) &&
	    config_is_local_domain(smtp_srv->conf, a->domain, a->domainlen);
	if (local) {
		if (addr_is_postmaster(a))
			return 0;
		/*
		 * "user%other@ours", "@ours:user@other", "\"u@x\"@ours":
		 * routing through us that a later hop might honour.
		 */
		if ((a->flags & (ADDR_ROUTING | ADDR_ROUTE)) ||
		    ((a->flags & ADDR_QUOTED) &&
		    memchr(a->local, '@', a->locallen) != NULL)) {
			log_info("event=alarm type=routing client=%s to=<%s> "
			    "sid=%lu", s->addrtext, la, s->id);
			STATS_ADD(alarm_relay, 1);
			smtp_reply_error(s, "550 5.7.1 Relaying denied");
			return -1;
		}
		return 0;
	}
	if (s->flags & (SF_RELAY | SF_AUTH))
		return 0;
	log_info("event=alarm type=relay client=%s to=<%s> sid=%lu",
	    s->addrtext, la, s->id);
	STATS_ADD(alarm_relay, 1);
	smtp_reply_error(s, "550 5.7.1 Relaying denied");
	return -1;
}

/*
 * rcpt_known - relay_recipients: a recipient of a local domain listed
 * there must be one of its valid addresses, so that we never accept
 * mail the internal host would bounce (backscatter).  0 to go on, -1
 * answered 550 5.1.1 (an error: max_errors and the tarpit bound
 * address harvesting through this reply).
 */
static int
rcpt_known(struct smtp_session *s, const struct addr *a, const char *la)
{
	const struct rcptmap	*m = smtp_srv->conf->relay_rcpts;

	if (m == NULL || a->domain == NULL || (a->flags & ADDR_LITERAL) ||
	    !config_is_local_domain(smtp_srv->conf, a->domain,
	    a->domainlen) || rcptmap_lookup(m, a->local, a->locallen,
	    a->domain, a->domainlen) != 0)
		return 0;
	log_info("event=reject type=unknown_user client=%s to=<%s> sid=%lu",
	    s->addrtext, la, s->id);
	smtp_reply_error(s, "550 5.1.1 Recipient address rejected: User "
	    "unknown");
	return -1;
}

/*
 * mail_submission - the submission ports take mail only after AUTH
 * (RFC 6409 4.3), which needs TLS first.  0 to go on, -1 if answered.
 */
static int
mail_submission(struct smtp_session *s)
{
	if (s->kind == LK_MX || (s->flags & SF_AUTH))
		return 0;
	if (!(s->flags & SF_TLS))
		smtp_reply_error(s,
		    "530 5.7.0 Must issue a STARTTLS command first");
	else
		smtp_reply_error(s, "530 5.7.0 Authentication required");
	return -1;
}

/*
 * mail_sender_owned - an authenticated user sends only as one of the
 * addresses of its login (authdb_sender_ok); the null sender is
 * allowed (it impersonates nobody; MDNs and vacation replies use it).
 * 0 to go on, -1 if refused (answered, alarm logged).
 */
static int
mail_sender_owned(struct smtp_session *s, const char *a, size_t n,
    const char *la)
{
	char	 u[LOG_ADDR_MAX];

	if (!(s->flags & SF_AUTH) ||
	    authdb_sender_ok(smtp_srv->conf->authdb, s->authuser, a, n))
		return 0;
	log_sanitize(s->authuser, strlen(s->authuser), u, sizeof(u));
	log_info("event=alarm type=sender_login_mismatch client=%s user=%s "
	    "from=<%s> sid=%lu", s->addrtext, u, la, s->id);
	STATS_ADD(alarm_spoof, 1);
	smtp_reply_error(s,
	    "553 5.7.1 Sender address rejected: not owned by user");
	return -1;
}

/*
 * addr_join - "local@domain" (or the bare local part of postmaster)
 * into out; returns the length, 0 if it does not fit.
 */
static size_t
addr_join(const struct addr *a, char *out, size_t outsz)
{
	size_t	 n = a->locallen;

	if (a->domain != NULL)
		n += 1 + a->domainlen;
	if (n == 0 || n >= outsz)
		return 0;
	memcpy(out, a->local, a->locallen);
	if (a->domain != NULL) {
		out[a->locallen] = '@';
		memcpy(out + a->locallen + 1, a->domain, a->domainlen);
	}
	out[n] = '\0';
	return n;
}

static void
cmd_rset(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_txn_free(s);
	if (s->state != SMTP_ST_CONNECTED)
		smtp_enter_state(s, SMTP_ST_HELO);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

/* cmd_help - RFC 5321 4.1.1.8; says nothing about the software */
static void
cmd_help(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_reply(s, "214 2.0.0 See RFC 5321");
}

static void
cmd_quit(struct smtp_session *s, const struct smtp_cmd *c)
{
	s->reason = "quit";
	smtp_close(s, "221 2.0.0 Bye");
}

/*
 * cmd_vrfy - VRFY/EXPN when the admin lists them: confirm nothing
 * (RFC 5321 3.5.3, 252), so that they cannot harvest addresses.
 */
static void
cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_reply(s, "252 2.1.5 Cannot VRFY user, but will accept message");
}

/* has_ctl - NUL, a control octet other than HT, or DEL */
static int
has_ctl(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (((unsigned char)p[i] < 0x20 && p[i] != '\t') ||
		    (unsigned char)p[i] == 0x7f)
			return 1;
	return 0;
}

/* verb_span - length of the first word of a line, for the alarm log */
static size_t
verb_span(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && p[i] != ' '; i++)
		;
	return i;
}
