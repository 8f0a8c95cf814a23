/*
 * smtp_policy.c - anti-spam policy of smtp-in for untrusted clients.
 *
 * Untrusted: a client on an MX listener (listen) that is neither in
 * relay_networks nor authenticated.  Trusted clients and the submission
 * listeners skip all of it (they authenticate, or are ours).
 *
 * The checks, all asynchronous on the loop through dns.c (c-ares), so
 * that a slow DNS server never stalls another session:
 *   connect  dnsbl: A lookup of the reversed client address in each
 *            list (RFC 5782 2.1); fcrdns: PTR of the client, then
 *            A/AAAA of each name must lead back to the address;
 *   HELO     syntax (a host name or an address literal), not our
 *            hostname and not a literal of the address we were reached
 *            on (helo_checks); rhsbl on the name; helo_resolvable;
 *   MAIL     msg_rate_limit; rhsbl on the sender domain; the sender
 *            domain must have MX or A/AAAA (sender_resolvable), no null
 *            MX (RFC 7505); SPF (RFC 7208, common/spf.c) of the sender
 *            domain, of the HELO name for the null sender (spf).
 * The verdict is given at RCPT, after the relay policy, so that
 * postmaster (exempt, RFC 5321 4.5.1) is still reachable and the log
 * names sender and recipient.  A RCPT that arrives while lookups are
 * still out waits for them (smtp_policy_hold): the line stays in the
 * input buffer, reading stops (SF_POLWAIT) and the last answer resumes
 * the session; dns.c bounds every lookup by policy_dns_timeout.
 *
 * SPF: the result is logged (event=spf) once per MAIL and goes into an
 * Authentication-Results header (RFC 8601) that smtp_data.c writes
 * below its Received header; with spf = reject_fail, a "fail" gets
 * 550 5.7.23 and a "temperror" 451 4.7.24 at RCPT (RFC 7372 3.2).
 * The whole evaluation is bounded by policy_dns_timeout.
 *
 * Blocklists: each listed answer adds the list's weight; at
 * dnsbl_threshold the client gets 554 5.7.1 naming the first list that
 * hit, one event=alarm type=dnsbl line and one alarm_dnsbl count per
 * session.  A list that fails (timeout, SERVFAIL) counts as not listed
 * and is logged: a broken list never blocks mail.  Temporary DNS
 * errors of the other checks give 4xx, never 5xx.
 *
 * DATA/BDAT (header_from_check): a From: header field naming a local
 * domain is refused at the end of the content (550 5.7.1, nothing is
 * committed) like a local domain in MAIL FROM: the seed's example is
 * envelope alice@dobbs.com with header From: susan@dobbs.com.  The
 * header section is scanned as it streams (smtp_hfrom_scan).
 *
 * Also here, because they share the per-session state: the greet
 * delay (a client that talks before the banner is refused, 554), the
 * per-address connection and message rates over rate_window, and the
 * tarpit (reject_delay): every 5xx after the first REJECT_FREE of a
 * session is held back reject_delay times the excess (up to
 * REJECT_STEPS), with output and input stopped (SF_TARPIT).
 *
 * Ownership: the session owns its struct smtp_policy; each lookup in
 * flight is a struct pol_query on its list, cancelled (dns_cancel) when
 * the session goes or when a new HELO or MAIL replaces what it asked.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/content.h"
#include "../common/dns.h"
#include "../common/dnsbl.h"
#include "../common/spf.h"
#include "../common/stats.h"
#include "smtp_in.h"

#define REJECT_FREE	3	/* 5xx replies of a session not delayed */
#define REJECT_STEPS	8	/* the delay grows to 8 x reject_delay */
#define FC_NAMES_MAX	4	/* PTR names checked (Postfix: 5) */
#define RATE_BUCKETS	4096
#define RATE_MAX	65536	/* addresses tracked at once */
#define LOG_NAME_MAX	300
#define SPF_ID_MAX	(ADDR_LOCAL_MAX * 2 + ADDR_DOMAIN_MAX + 16)

enum pq_kind {
	PQ_DNSBL,	/* client address in a dnsbl */
	PQ_RHS_HELO,	/* HELO name in an rhsbl */
	PQ_RHS_FROM,	/* sender domain in an rhsbl */
	PQ_PTR,		/* fcrdns: names of the client */
	PQ_FWD,		/* fcrdns: addresses of one name */
	PQ_HELO_ADDR,	/* helo_resolvable */
	PQ_SENDER_MX,	/* sender_resolvable: MX first */
	PQ_SENDER_ADDR	/* then A/AAAA (implicit MX, RFC 5321 5.1) */
};

/* results of a lookup-based check */
enum pol_result {
	PR_NONE,	/* not asked (or exempt) */
	PR_PENDING,
	PR_PASS,
	PR_FAIL,	/* definite: 5xx */
	PR_TEMP,	/* DNS trouble: 4xx */
	PR_NULLMX	/* sender domain: null MX (RFC 7505) */
};

struct pol_query {
	LIST_ENTRY(pol_query)	 entry;
	struct smtp_policy	*p;
	struct dns_query	*q;
	enum pq_kind		 kind;
	const struct dnsbl	*bl;	/* PQ_DNSBL, PQ_RHS_* */
};

/* one blocklist target: the client, the HELO name, the sender domain */
struct pol_bl {
	unsigned		 score;
	const struct dnsbl	*hit;	/* first list that counted */
	uint8_t			 answer[4];
};

struct smtp_policy {
	struct smtp_session	*s;
	LIST_HEAD(, pol_query)	 queries;
	unsigned		 npending;
	struct event		*timer;		/* greet delay, tarpit */
	unsigned		 n5xx;
	struct pol_bl		 bl_client, bl_helo, bl_from;
	int			 alarmed;	/* dnsbl alarm logged */
	enum pol_result		 fc;
	int			 fc_temp;	/* one of them failed */
	char			 fc_name[DNS_NAME_MAX + 1]; /* confirmed */
	const char		*helo_bad;	/* reply text or NULL */
	enum pol_result		 helo_dns;
	char			 helo[DNS_NAME_MAX + 1];
	enum pol_result		 sender;
	char			 from[DNS_NAME_MAX + 1];
	int			 hfrom_on;	/* this transaction */
	struct smtp_hfrom	 hfrom;
	struct spf_check	*spf;		/* in flight, or NULL */
	enum pol_result		 spf_state;	/* PR_NONE, _PENDING, _PASS */
	enum spf_result		 spf_res;	/* once PR_PASS (= known) */
	int			 spf_helo;	/* identity: HELO, not MAIL */
	char			 spf_sender[SPF_ID_MAX];
	char			 spf_why[SPF_WHY_MAX];
};

/* smtp_hfrom states: where in the header section, where in a value */
enum { HS_LSTART, HS_NAME, HS_NAMEWS, HS_VALUE, HS_DONE };
enum { V_PLAIN, V_QUOTE, V_QESC, V_COMMENT, V_CESC, V_AT, V_DOMAIN,
	V_DLIT };

/* connections and messages of one client address (IPv6: its /64) */
struct rate_entry {
	struct rate_entry	*next;
	int			 family;
	uint8_t			 addr[16];
	time_t			 start;		/* of the current window */
	size_t			 conns;
	size_t			 msgs;
};

static int	policy_applies(const struct smtp_session *);
static struct smtp_policy *policy_get(struct smtp_session *);
static int	policy_needs_dns(const struct config *);
static void	query_start(struct smtp_policy *, enum pq_kind,
		    const struct dnsbl *, const char *, size_t);
static void	query_ptr(struct smtp_policy *);
static void	query_done(const struct dns_result *, void *);
static void	query_cancel(struct smtp_policy *, int);
static void	result_bl(struct smtp_policy *, const struct pol_query *,
		    const struct dns_result *);
static void	result_ptr(struct smtp_policy *, const struct dns_result *);
static void	result_fwd(struct smtp_policy *, const struct dns_result *);
static void	result_sender(struct smtp_policy *, const struct pol_query *,
		    const struct dns_result *);
static void	fc_settle(struct smtp_policy *);
static int	verdict_dnsbl(struct smtp_policy *);
static int	verdict_fcrdns(struct smtp_policy *);
static int	verdict_helo(struct smtp_policy *);
static int	verdict_sender(struct smtp_policy *);
static int	verdict_spf(struct smtp_policy *);
static void	spf_start(struct smtp_policy *, const struct addr *);
static void	spf_done(enum spf_result, const char *, void *);
static void	spf_clean(const char *, char *, size_t);
static int	local_is_atext(const char *, size_t);
static void	bl_start(struct smtp_policy *, enum pq_kind, const char *,
		    size_t);
static const char *helo_check(struct smtp_session *, const char *, size_t);
static int	helo_is_our_literal(struct smtp_session *, const char *,
		    size_t);
static void	greet_timer(evutil_socket_t, short, void *);
static void	tarpit_timer(evutil_socket_t, short, void *);
static int	timer_arm(struct smtp_policy *, event_callback_fn, time_t);
static struct rate_entry *rate_get(const struct smtp_session *);
static void	rate_gc(time_t);
static void	hfrom_octet(struct smtp_hfrom *, const struct config *,
		    unsigned char);
static void	hfrom_value(struct smtp_hfrom *, const struct config *,
		    unsigned char);
static void	hfrom_field_end(struct smtp_hfrom *, const struct config *);
static void	hfrom_domain_end(struct smtp_hfrom *, const struct config *);
static int	is_domain_char(unsigned char);

static struct event_base *policy_base;
static int		 policy_dns;		/* dns_init() done */
static struct rate_entry *rate_table[RATE_BUCKETS];
static size_t		 rate_count;

/*
 * smtp_in_preinit - before the privilege drop and chroot (role.h):
 * the event base and, when a check needs DNS, the resolver, which
 * reads /etc/resolv.conf unless dns_servers is set.
 */
void
smtp_in_preinit(struct role_ctx *ctx)
{
	(void)smtp_in_base(ctx->conf);
	/*
	 * libmagic reads its database now: inside the chroot it is not
	 * there, and under the syscall filter magic_load() would be
	 * killed (access(2)).  Without it, types come from names and
	 * declared types, and PE/ELF programs by their first octets.
	 */
	if (content_enabled(ctx->conf) && content_preinit() == -1)
		log_warnx("event=start reason=\"libmagic database not "
		    "loaded; detected types limited to programs\"");
}

/*
 * smtp_in_base - the role's event base, made once: by smtp_in_preinit
 * or, without it, by smtp_in_run.  Starts the resolver if needed; a
 * resolver that cannot start is fatal (checks would silently pass).
 */
struct event_base *
smtp_in_base(struct config *conf)
{
	struct dns_conf	 dc;

	if (policy_base != NULL)
		return policy_base;
	if ((policy_base = event_base_make()) == NULL)
		fatalx("smtp-in: event_base_new failed");
	if (!policy_needs_dns(conf))
		return policy_base;
	memset(&dc, 0, sizeof(dc));
	dc.servers = conf->ndns_servers > 0 ? conf->dns_servers : NULL;
	dc.nservers = conf->ndns_servers;
	dc.timeout_ms = (unsigned)conf->policy_dns_timeout * 1000;
	if (dns_init(policy_base, &dc) == -1)
		fatalx("smtp-in: cannot start the resolver");
	policy_dns = 1;
	return policy_base;
}

/*
 * smtp_policy_connect - a new session, before its banner: the
 * connection rate, then the lookups and the greet delay of an
 * untrusted client.  0: send the banner now; 1: the greet delay runs
 * (the banner follows from greet_timer); -1: refused and closing.
 */
int
smtp_policy_connect(struct smtp_session *s)
{
	const struct config	*conf = smtp_srv->conf;
	struct rate_entry	*r;
	struct smtp_policy	*p;

	if (conf->conn_rate_limit > 0 && !(s->flags & SF_RELAY) &&
	    (r = rate_get(s)) != NULL && ++r->conns > conf->conn_rate_limit) {
		log_info("event=refused client=%s reason=conn_rate "
		    "connections=%zu sid=%lu", s->addrtext, r->conns, s->id);
		STATS_ADD(conn_refused, 1);
		s->reason = "conn_rate";
		smtp_close(s, "421 4.7.0 Too many connections from your "
		    "address, try again later");
		return -1;
	}
	if (!policy_applies(s) || (p = policy_get(s)) == NULL)
		return 0;
	bl_start(p, PQ_DNSBL, NULL, 0);
	if (conf->fcrdns != FCRDNS_OFF && policy_dns)
		query_ptr(p);
	if (conf->greet_delay == 0)
		return 0;
	if (timer_arm(p, greet_timer, conf->greet_delay) == -1)
		return 0;
	s->flags |= SF_GREETWAIT;
	return 1;
}

/*
 * smtp_policy_pregreet - input while the greet delay runs: the client
 * did not wait for the banner (RFC 5321 4.3.1 says it must), which
 * spam engines do to save time.  Refuse and close; 1 if it did.
 */
int
smtp_policy_pregreet(struct smtp_session *s, struct evbuffer *in)
{
	if (!(s->flags & SF_GREETWAIT) || evbuffer_get_length(in) == 0)
		return 0;
	s->flags &= ~SF_GREETWAIT;
	if (s->pol != NULL && s->pol->timer != NULL)
		evtimer_del(s->pol->timer);
	log_info("event=alarm type=pregreet client=%s octets=%zu sid=%lu",
	    s->addrtext, evbuffer_get_length(in), s->id);
	STATS_ADD(alarm_pregreet, 1);
	evbuffer_drain(in, evbuffer_get_length(in));
	s->reason = "pregreet";
	smtp_close(s, "554 5.5.1 Protocol error: talked before the greeting");
	return 1;
}

/*
 * smtp_policy_helo - HELO/EHLO name (arg as received): the synchronous
 * checks, and lookups replacing those of an earlier HELO
 */
void
smtp_policy_helo(struct smtp_session *s, const char *name, size_t len)
{
	const struct config	*conf = smtp_srv->conf;
	struct smtp_policy	*p;

	if (!policy_applies(s) || (p = policy_get(s)) == NULL)
		return;
	query_cancel(p, 0);
	memset(&p->bl_helo, 0, sizeof(p->bl_helo));
	p->helo_dns = PR_NONE;
	p->helo[0] = '\0';
	p->helo_bad = conf->helo_checks ? helo_check(s, name, len) : NULL;
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || !dns_name_ldh(name, len) || len > DNS_NAME_MAX)
		return;
	memcpy(p->helo, name, len);
	p->helo[len] = '\0';
	mem_ascii_lower(p->helo, len);
	bl_start(p, PQ_RHS_HELO, p->helo, len);
	if (conf->helo_resolvable && policy_dns && p->helo_bad == NULL) {
		p->helo_dns = PR_PENDING;
		query_start(p, PQ_HELO_ADDR, NULL, p->helo, len);
	}
}

/*
 * smtp_policy_mail - MAIL accepted so far: the message rate (450
 * 4.7.1, -1), then the sender lookups.  0 to go on.
 */
int
smtp_policy_mail(struct smtp_session *s, const struct addr *a)
{
	const struct config	*conf = smtp_srv->conf;
	struct smtp_policy	*p;
	struct rate_entry	*r;
	size_t			 len;

	if (s->flags & (SF_RELAY | SF_AUTH))
		return 0;
	r = conf->msg_rate_limit > 0 ? rate_get(s) : NULL;
	if (r != NULL && r->msgs >= conf->msg_rate_limit) {
		log_info("event=reject type=msg_rate client=%s messages=%zu "
		    "sid=%lu", s->addrtext, r->msgs, s->id);
		STATS_ADD(policy_rejected, 1);
		smtp_reply_error(s, "450 4.7.1 Too many messages from your "
		    "address, try again later");
		return -1;
	}
	if (r != NULL)
		r->msgs++;
	if (!policy_applies(s) || (p = policy_get(s)) == NULL)
		return 0;
	query_cancel(p, 1);
	p->hfrom_on = conf->header_from_check;
	smtp_hfrom_init(&p->hfrom);
	memset(&p->bl_from, 0, sizeof(p->bl_from));
	p->sender = PR_NONE;
	p->from[0] = '\0';
	spf_start(p, a);
	if (a == NULL || a->domain == NULL || (a->flags & ADDR_LITERAL))
		return 0;
	len = a->domainlen;
	if (len == 0 || len > DNS_NAME_MAX || !dns_name_ldh(a->domain, len))
		return 0;
	memcpy(p->from, a->domain, len);
	p->from[len] = '\0';
	mem_ascii_lower(p->from, len);
	bl_start(p, PQ_RHS_FROM, p->from, len);
	if (conf->sender_resolvable && policy_dns) {
		p->sender = PR_PENDING;
		query_start(p, PQ_SENDER_MX, NULL, p->from, len);
	}
	return 0;
}

/*
 * smtp_policy_rcpt - the verdict for a recipient that passed the relay
 * policy; postmaster is exempt.  0 to accept, -1 answered.
 */
int
smtp_policy_rcpt(struct smtp_session *s, int postmaster)
{
	struct smtp_policy	*p = s->pol;

	if (p == NULL || postmaster || (s->flags & (SF_RELAY | SF_AUTH)))
		return 0;
	if (verdict_dnsbl(p) == -1 || verdict_fcrdns(p) == -1 ||
	    verdict_helo(p) == -1 || verdict_sender(p) == -1 ||
	    verdict_spf(p) == -1) {
		STATS_ADD(policy_rejected, 1);
		return -1;
	}
	return 0;
}

/*
 * smtp_policy_hold - should this command line wait for lookups?  Only
 * a RCPT of an untrusted client in a transaction does; 1 = wait (the
 * line stays unread, SF_POLWAIT set, query_done resumes).
 */
int
smtp_policy_hold(struct smtp_session *s, const char *line, size_t len)
{
	if (s->pol == NULL || s->pol->npending == 0 ||
	    (s->flags & (SF_RELAY | SF_AUTH)) ||
	    !(ST(s->state) & (ST(SMTP_ST_MAIL) | ST(SMTP_ST_RCPT))) ||
	    len < 4 || mem_casecmp(line, "RCPT", 4) != 0 ||
	    (len > 4 && line[4] != ' '))
		return 0;
	s->flags |= SF_POLWAIT;
	return 1;
}

/*
 * smtp_policy_error - a 5xx reply was queued for an untrusted client:
 * beyond the first REJECT_FREE, hold the output back (tarpit), so that
 * address harvesting and dictionary attacks cost time
 */
void
smtp_policy_error(struct smtp_session *s)
{
	struct smtp_policy	*p = s->pol;
	const struct config	*conf = smtp_srv->conf;
	unsigned		 steps;

	if (p == NULL || conf->reject_delay == 0 || s->bev == NULL ||
	    (s->flags & (SF_RELAY | SF_AUTH)) || ++p->n5xx <= REJECT_FREE)
		return;
	steps = p->n5xx - REJECT_FREE;
	if (steps > REJECT_STEPS)
		steps = REJECT_STEPS;
	if (timer_arm(p, tarpit_timer, conf->reject_delay * steps) == -1)
		return;
	s->flags |= SF_TARPIT;
	bufferevent_disable(s->bev, EV_WRITE);
	log_debug("sid=%lu tarpit %lds", s->id,
	    (long)(conf->reject_delay * steps));
}

/* smtp_policy_content - content octets of an untrusted transaction */
void
smtp_policy_content(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_policy	*pol = s->pol;

	if (pol != NULL && pol->hfrom_on && !pol->hfrom.done &&
	    policy_applies(s))
		smtp_hfrom_scan(&pol->hfrom, smtp_srv->conf, p, len);
}

/*
 * smtp_policy_data_verdict - at the end of content: the reply that
 * refuses a message whose From: claims a local domain, or NULL
 */
const char *
smtp_policy_data_verdict(struct smtp_session *s)
{
	struct smtp_policy	*pol = s->pol;

	/*
	 * Called after BDAT chunks too, so the scan is not ended here:
	 * the content always ends with CRLF (DATA by its terminator, BDAT
	 * LAST completed by smtp_data.c), which ends the last field.
	 */
	if (pol == NULL || !pol->hfrom_on || !policy_applies(s))
		return NULL;
	if (!pol->hfrom.local)
		return NULL;
	log_info("event=alarm type=spoof client=%s header_from=%s sid=%lu",
	    s->addrtext, pol->hfrom.found, s->id);
	STATS_ADD(alarm_spoof, 1);
	return "550 5.7.1 Message rejected: header From: claims a local "
	    "domain";
}

/* smtp_policy_free - the session goes: cancel lookups and timers */
void
smtp_policy_free(struct smtp_session *s)
{
	struct smtp_policy	*p = s->pol;

	smtp_callout_session_free(s);
	if (p == NULL)
		return;
	query_cancel(p, -1);
	if (p->timer != NULL)
		event_free(p->timer);
	free(p);
	s->pol = NULL;
}

/*
 * smtp_policy_helo_syntax - a host name or an address literal.  RFC
 * 5321 4.1.1.1 asks for a fully qualified name, but hosts that send a
 * bare one ("EHLO mailgw") are common enough that refusing them would
 * lose mail; junk ("EHLO !!", "EHLO a..b") is what is refused.
 */
int
smtp_policy_helo_syntax(const char *p, size_t len)
{
	if (len > 0 && p[0] == '[')
		return addr_domain_valid(p, len, 0);
	if (len > 0 && p[len - 1] == '.')
		len--;
	return len > 0 && len <= DNS_NAME_MAX && dns_name_ldh(p, len);
}

/* ---- lookups ---------------------------------------------------- */

/* policy_applies - an untrusted client on an MX listener */
static int
policy_applies(const struct smtp_session *s)
{
	return s->kind == LK_MX && !(s->flags & (SF_RELAY | SF_AUTH));
}

/* policy_get - the session's state, made on first use (NULL: no memory) */
static struct smtp_policy *
policy_get(struct smtp_session *s)
{
	struct smtp_policy	*p;

	if (s->pol != NULL)
		return s->pol;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		log_warn("event=error client=%s sid=%lu error=alloc",
		    s->addrtext, s->id);
		return NULL;
	}
	p->s = s;
	LIST_INIT(&p->queries);
	s->pol = p;
	return p;
}

static int
policy_needs_dns(const struct config *c)
{
	return c->ndnsbl > 0 || c->nrhsbl > 0 || c->fcrdns != FCRDNS_OFF ||
	    c->helo_resolvable || c->sender_resolvable ||
	    c->spf != SPF_MODE_OFF || c->recipient_verify == RV_CALLOUT;
}

/*
 * bl_start - one query per list: the client address in each dnsbl
 * (kind PQ_DNSBL, name unused), or name in each rhsbl
 */
static void
bl_start(struct smtp_policy *p, enum pq_kind kind, const char *name,
    size_t len)
{
	const struct config	*conf = smtp_srv->conf;
	const struct dnsbl	*v = kind == PQ_DNSBL ? conf->dnsbl : conf->rhsbl;
	size_t			 n = kind == PQ_DNSBL ? conf->ndnsbl : conf->nrhsbl;
	char			 q[DNSBL_QNAME_MAX + 1];
	size_t			 i;
	int			 ql;

	if (!policy_dns)
		return;
	for (i = 0; i < n; i++) {
		if (kind == PQ_DNSBL)
			ql = dnsbl_name_addr(p->s->family, p->s->addr,
			    v[i].zone, q);
		else
			ql = dnsbl_name_domain(name, len, v[i].zone, q);
		if (ql > 0)
			query_start(p, kind, &v[i], q, (size_t)ql);
	}
}

/* query_start - one lookup for the session; failures are logged */
static void
query_start(struct smtp_policy *p, enum pq_kind kind, const struct dnsbl *bl,
    const char *name, size_t len)
{
	struct pol_query	*pq;
	int			 fam = DNS_INET | DNS_INET6;

	if ((pq = calloc(1, sizeof(*pq))) == NULL)
		goto fail;
	pq->p = p;
	pq->kind = kind;
	pq->bl = bl;
	switch (kind) {
	case PQ_DNSBL:
	case PQ_RHS_HELO:
	case PQ_RHS_FROM:
		fam = DNS_INET;		/* RFC 5782 2.1: A records */
		/* FALLTHROUGH */
	case PQ_FWD:
	case PQ_HELO_ADDR:
	case PQ_SENDER_ADDR:
		pq->q = dns_query_addr(name, len, fam, query_done, pq);
		break;
	case PQ_SENDER_MX:
		pq->q = dns_query_mx(name, len, query_done, pq);
		break;
	default:
		panic("query_start: kind %d", (int)kind);
	}
	if (pq->q == NULL)
		goto fail;
	LIST_INSERT_HEAD(&p->queries, pq, entry);
	p->npending++;
	return;
fail:
	free(pq);
	log_warnx("event=error client=%s sid=%lu error=dns_query",
	    p->s->addrtext, p->s->id);
	/* as a DNS error: no block, a 4xx where the check needs it */
	if (kind == PQ_FWD)
		p->fc_temp = 1;
	else if (kind == PQ_HELO_ADDR)
		p->helo_dns = PR_TEMP;
	else if (kind == PQ_SENDER_MX || kind == PQ_SENDER_ADDR)
		p->sender = PR_TEMP;
}

/* query_ptr - fcrdns, first step: the names of the client address */
static void
query_ptr(struct smtp_policy *p)
{
	struct sockaddr_storage	 ss;
	struct dns_addr		 da;
	struct pol_query	*pq;

	memset(&da, 0, sizeof(da));
	da.family = p->s->family;
	memcpy(da.addr, p->s->addr, 16);
	(void)dns_addr_sockaddr(&da, 0, &ss);
	p->fc = PR_PENDING;
	if ((pq = calloc(1, sizeof(*pq))) == NULL ||
	    (pq->q = dns_query_ptr((struct sockaddr *)&ss, query_done,
	    pq)) == NULL) {
		free(pq);
		p->fc = PR_TEMP;
		return;
	}
	pq->p = p;
	pq->kind = PQ_PTR;
	LIST_INSERT_HEAD(&p->queries, pq, entry);
	p->npending++;
}

/*
 * query_done - an answer (dns.c calls from the loop).  The last answer
 * a waiting RCPT needed resumes the session.
 */
static void
query_done(const struct dns_result *res, void *arg)
{
	struct pol_query	*pq = arg;
	struct smtp_policy	*p = pq->p;
	struct smtp_session	*s = p->s;

	LIST_REMOVE(pq, entry);
	p->npending--;
	switch (pq->kind) {
	case PQ_DNSBL:
	case PQ_RHS_HELO:
	case PQ_RHS_FROM:
		result_bl(p, pq, res);
		break;
	case PQ_PTR:
		result_ptr(p, res);
		break;
	case PQ_FWD:
		result_fwd(p, res);
		break;
	case PQ_HELO_ADDR:
		p->helo_dns = res->status == DNS_OK ? PR_PASS :
		    res->status == DNS_TEMPFAIL ? PR_TEMP : PR_FAIL;
		break;
	case PQ_SENDER_MX:
	case PQ_SENDER_ADDR:
		result_sender(p, pq, res);
		break;
	default:
		panic("query_done: kind %d", (int)pq->kind);
	}
	free(pq);
	/* a RCPT waiting for a callout is resumed by smtp_callout.c */
	if (p->npending == 0 && (s->flags & SF_POLWAIT) &&
	    s->callout == NULL) {
		s->flags &= ~SF_POLWAIT;
		smtp_session_process(s);
	}
}

/*
 * query_cancel - drop lookups: group 0 those of HELO, 1 those of MAIL,
 * -1 all of them
 */
static void
query_cancel(struct smtp_policy *p, int group)
{
	struct pol_query	*pq, *next;
	int			 g;

	for (pq = LIST_FIRST(&p->queries); pq != NULL; pq = next) {
		next = LIST_NEXT(pq, entry);
		g = pq->kind == PQ_RHS_HELO || pq->kind == PQ_HELO_ADDR ? 0 :
		    pq->kind == PQ_RHS_FROM || pq->kind == PQ_SENDER_MX ||
		    pq->kind == PQ_SENDER_ADDR ? 1 : 2;
		if (group != -1 && g != group)
			continue;
		dns_cancel(pq->q);
		LIST_REMOVE(pq, entry);
		p->npending--;
		free(pq);
	}
	/* SPF belongs to MAIL */
	if (group != 0 && p->spf != NULL) {
		spf_cancel(p->spf);
		p->spf = NULL;
		p->npending--;
	}
}

/*
 * result_bl - a blocklist answer: any A record the list's filter
 * accepts adds its weight once.  Failures are logged, never counted.
 */
static void
result_bl(struct smtp_policy *p, const struct pol_query *pq,
    const struct dns_result *res)
{
	struct pol_bl	*b = pq->kind == PQ_DNSBL ? &p->bl_client :
			    pq->kind == PQ_RHS_HELO ? &p->bl_helo : &p->bl_from;
	size_t		 i;

	if (res->status == DNS_TEMPFAIL) {
		log_info("event=dnsbl_error client=%s list=%s why=%s sid=%lu",
		    p->s->addrtext, pq->bl->zone, res->why, p->s->id);
		return;
	}
	if (res->status != DNS_OK)
		return;
	for (i = 0; i < res->naddr; i++) {
		if (res->addr[i].family != AF_INET ||
		    !dnsbl_match(pq->bl, res->addr[i].addr))
			continue;
		if (b->hit == NULL) {
			b->hit = pq->bl;
			memcpy(b->answer, res->addr[i].addr, 4);
		}
		b->score += pq->bl->weight;
		return;
	}
}

/* result_ptr - fcrdns: look up the addresses of the first names */
static void
result_ptr(struct smtp_policy *p, const struct dns_result *res)
{
	size_t	 i;

	if (res->status == DNS_TEMPFAIL) {
		p->fc = PR_TEMP;
		return;
	}
	if (res->status != DNS_OK || res->nptr == 0) {
		p->fc = PR_FAIL;
		return;
	}
	for (i = 0; i < res->nptr && i < FC_NAMES_MAX; i++)
		query_start(p, PQ_FWD, NULL, res->ptr[i].name,
		    strlen(res->ptr[i].name));
	/* a lookup that could not start counted as a temporary error */
	fc_settle(p);
}

/* result_fwd - fcrdns: does this name lead back to the client? */
static void
result_fwd(struct smtp_policy *p, const struct dns_result *res)
{
	size_t	 i;

	if (p->fc != PR_PENDING)
		return;
	if (res->status == DNS_TEMPFAIL)
		p->fc_temp = 1;
	for (i = 0; res->status == DNS_OK && i < res->naddr; i++) {
		if (res->addr[i].family != p->s->family ||
		    memcmp(res->addr[i].addr, p->s->addr,
		    p->s->family == AF_INET ? 4 : 16) != 0)
			continue;
		p->fc = PR_PASS;
		memcpy(p->fc_name, res->name, strlen(res->name) + 1);
		return;
	}
	fc_settle(p);
}

/* fc_settle - no name matched once every forward lookup is back */
static void
fc_settle(struct smtp_policy *p)
{
	struct pol_query	*pq;

	if (p->fc != PR_PENDING)
		return;
	LIST_FOREACH(pq, &p->queries, entry)
		if (pq->kind == PQ_FWD)
			return;
	p->fc = p->fc_temp ? PR_TEMP : PR_FAIL;
}

/*
 * result_sender - MX of the sender domain; without MX records, its
 * A/AAAA (RFC 5321 5.1); a null MX refuses mail (RFC 7505 4.2)
 */
static void
result_sender(struct smtp_policy *p, const struct pol_query *pq,
    const struct dns_result *res)
{
	switch (res->status) {
	case DNS_OK:
		p->sender = PR_PASS;
		break;
	case DNS_NULL_MX:
		p->sender = PR_NULLMX;
		break;
	case DNS_NODATA:
		if (pq->kind == PQ_SENDER_MX) {
			query_start(p, PQ_SENDER_ADDR, NULL, p->from,
			    strlen(p->from));
			break;
		}
		p->sender = PR_FAIL;
		break;
	case DNS_TEMPFAIL:
		p->sender = PR_TEMP;
		break;
	default:
		p->sender = PR_FAIL;
		break;
	}
}

/* ---- verdicts at RCPT ------------------------------------------- */

/* verdict_dnsbl - 554 once the weights reach dnsbl_threshold */
static int
verdict_dnsbl(struct smtp_policy *p)
{
	struct smtp_session	*s = p->s;
	const struct pol_bl	*b;
	char			 ans[INET_ADDRSTRLEN];
	unsigned		 score;

	score = p->bl_client.score + p->bl_helo.score + p->bl_from.score;
	if (score == 0 || score < smtp_srv->conf->dnsbl_threshold)
		return 0;
	b = p->bl_client.hit != NULL ? &p->bl_client :
	    p->bl_helo.hit != NULL ? &p->bl_helo : &p->bl_from;
	if (!p->alarmed) {
		p->alarmed = 1;
		inet_ntop(AF_INET, b->answer, ans, sizeof(ans));
		log_info("event=alarm type=dnsbl client=%s list=%s "
		    "target=%s answer=%s score=%u sid=%lu", s->addrtext,
		    b->hit->zone, b == &p->bl_client ? "client" :
		    b == &p->bl_helo ? "helo" : "sender", ans, score, s->id);
		STATS_ADD(alarm_dnsbl, 1);
	}
	if (b == &p->bl_client)
		smtp_reply_error(s, "554 5.7.1 Service unavailable; client "
		    "[%s] blocked using %s", s->addrtext, b->hit->zone);
	else if (b == &p->bl_helo)
		smtp_reply_error(s, "554 5.7.1 Service unavailable; helo "
		    "name %s blocked using %s", p->helo, b->hit->zone);
	else
		smtp_reply_error(s, "554 5.7.1 Service unavailable; sender "
		    "domain %s blocked using %s", p->from, b->hit->zone);
	return -1;
}

/*
 * verdict_fcrdns - the client's reverse DNS must be confirmed (RFC
 * 8601 2.7.3 "iprev"); the enhanced codes are those of RFC 7372 3
 */
static int
verdict_fcrdns(struct smtp_policy *p)
{
	struct smtp_session	*s = p->s;
	int			 mode = smtp_srv->conf->fcrdns;

	if (p->fc != PR_FAIL && p->fc != PR_TEMP)
		return 0;
	log_info("event=%s type=fcrdns client=%s result=%s sid=%lu",
	    mode == FCRDNS_REJECT ? "reject" : "warn", s->addrtext,
	    p->fc == PR_FAIL ? "fail" : "temperror", s->id);
	if (mode != FCRDNS_REJECT) {
		p->fc = PR_NONE;	/* warned once */
		return 0;
	}
	if (p->fc == PR_TEMP)
		smtp_reply_error(s, "450 4.7.25 Client host rejected: cannot "
		    "find your hostname, [%s]", s->addrtext);
	else
		smtp_reply_error(s, "550 5.7.25 Client host rejected: cannot "
		    "find your hostname, [%s]", s->addrtext);
	return -1;
}

/* verdict_helo - syntax, our own name, helo_resolvable */
static int
verdict_helo(struct smtp_policy *p)
{
	struct smtp_session	*s = p->s;

	if (p->helo_bad != NULL) {
		log_info("event=reject type=helo client=%s helo=%s why=\"%s\" "
		    "sid=%lu", s->addrtext, s->helo ? s->helo : "",
		    p->helo_bad, s->id);
		smtp_reply_error(s, "550 5.7.1 Helo command rejected: %s",
		    p->helo_bad);
		return -1;
	}
	if (p->helo_dns != PR_FAIL && p->helo_dns != PR_TEMP)
		return 0;
	log_info("event=reject type=helo client=%s helo=%s why=%s sid=%lu",
	    s->addrtext, p->helo, p->helo_dns == PR_FAIL ? "not_found" :
	    "temperror", s->id);
	if (p->helo_dns == PR_TEMP)
		smtp_reply_error(s, "450 4.7.1 Helo command rejected: cannot "
		    "resolve %s", p->helo);
	else
		smtp_reply_error(s, "550 5.7.1 Helo command rejected: host "
		    "%s not found", p->helo);
	return -1;
}

/* verdict_sender - the sender domain must be able to take replies */
static int
verdict_sender(struct smtp_policy *p)
{
	struct smtp_session	*s = p->s;

	if (p->sender != PR_FAIL && p->sender != PR_TEMP &&
	    p->sender != PR_NULLMX)
		return 0;
	log_info("event=reject type=sender_domain client=%s domain=%s "
	    "result=%s sid=%lu", s->addrtext, p->from,
	    p->sender == PR_FAIL ? "not_found" : p->sender == PR_TEMP ?
	    "temperror" : "null_mx", s->id);
	if (p->sender == PR_TEMP)
		smtp_reply_error(s, "450 4.1.8 Sender address rejected: "
		    "cannot resolve domain %s", p->from);
	else if (p->sender == PR_NULLMX)
		smtp_reply_error(s, "550 5.7.27 Sender address rejected: "
		    "domain %s does not accept mail", p->from);
	else
		smtp_reply_error(s, "550 5.1.8 Sender address rejected: "
		    "domain %s not found", p->from);
	return -1;
}

/* ---- SPF -------------------------------------------------------- */

/*
 * spf_start - check_host() for this MAIL: the sender's domain, or for
 * the null sender "postmaster@" the HELO name (RFC 7208 2.4).  An
 * address literal or a HELO that is not a name has no SPF identity.
 */
static void
spf_start(struct smtp_policy *p, const struct addr *a)
{
	const struct config	*conf = smtp_srv->conf;
	struct spf_request	 req;
	int			 r;

	p->spf_state = PR_NONE;
	p->spf_helo = a == NULL;
	p->spf_why[0] = '\0';
	if (conf->spf == SPF_MODE_OFF || !policy_dns)
		return;
	if (a != NULL) {
		if (a->domain == NULL || (a->flags & ADDR_LITERAL))
			return;
		r = snprintf(p->spf_sender, sizeof(p->spf_sender), "%.*s@%.*s",
		    (int)a->locallen, a->local, (int)a->domainlen, a->domain);
	} else {
		if (p->helo[0] == '\0')
			return;
		r = snprintf(p->spf_sender, sizeof(p->spf_sender),
		    "postmaster@%s", p->helo);
	}
	if (r < 0 || (size_t)r >= sizeof(p->spf_sender))
		return;
	memset(&req, 0, sizeof(req));
	req.family = p->s->family;
	memcpy(req.addr, p->s->addr, 16);
	req.sender = p->spf_sender;
	req.domain = strrchr(p->spf_sender, '@') + 1;
	req.helo = p->s->helo != NULL ? p->s->helo : "";
	req.ptrname = p->fc == PR_PASS ? p->fc_name : NULL;
	req.rcvhost = conf->hostname;
	req.timeout_ms = (unsigned)conf->policy_dns_timeout * 1000;
	if ((p->spf = spf_check_start(smtp_srv->base, &req, spf_done, p)) ==
	    NULL) {
		log_warnx("event=error client=%s sid=%lu error=spf_start",
		    p->s->addrtext, p->s->id);
		p->spf_state = PR_PASS;
		p->spf_res = SPF_TEMPERROR;
		return;
	}
	p->spf_state = PR_PENDING;
	p->npending++;
}

/* spf_done - the result: logged once, kept for RCPT and the header */
static void
spf_done(enum spf_result r, const char *why, void *arg)
{
	struct smtp_policy	*p = arg;
	struct smtp_session	*s = p->s;
	char			 id[LOG_NAME_MAX];

	p->spf = NULL;
	p->npending--;
	p->spf_state = PR_PASS;
	p->spf_res = r;
	spf_clean(why, p->spf_why, sizeof(p->spf_why));
	log_sanitize(p->spf_sender, strlen(p->spf_sender), id, sizeof(id));
	log_info("event=spf client=%s identity=%s sender=<%s> result=%s "
	    "why=\"%s\" sid=%lu", s->addrtext, p->spf_helo ? "helo" :
	    "mailfrom", id, spf_result_str(r), p->spf_why, s->id);
	if (p->npending == 0 && (s->flags & SF_POLWAIT) &&
	    s->callout == NULL) {
		s->flags &= ~SF_POLWAIT;
		smtp_session_process(s);
	}
}

/* verdict_spf - spf = reject_fail: "fail" and "temperror" refused */
static int
verdict_spf(struct smtp_policy *p)
{
	struct smtp_session	*s = p->s;
	const char		*dom;

	if (smtp_srv->conf->spf != SPF_MODE_REJECT_FAIL ||
	    p->spf_state != PR_PASS || (p->spf_res != SPF_FAIL &&
	    p->spf_res != SPF_TEMPERROR))
		return 0;
	dom = strrchr(p->spf_sender, '@') + 1;
	log_info("event=reject type=spf client=%s domain=%s result=%s "
	    "sid=%lu", s->addrtext, dom, spf_result_str(p->spf_res), s->id);
	if (p->spf_res == SPF_TEMPERROR)
		smtp_reply_error(s, "451 4.7.24 SPF check of %s failed "
		    "temporarily, try again later", dom);
	else
		smtp_reply_error(s, "550 5.7.23 SPF check failed: %s does "
		    "not allow [%s] to send its mail", dom, s->addrtext);
	return -1;
}

/*
 * smtp_policy_auth_results - the Authentication-Results header field
 * (RFC 8601 2.2, 2.7.2) of the transaction's SPF result into out:
 *   Authentication-Results: HOST; spf=pass (why) smtp.mailfrom=a@b
 * Returns its length, 0 when there is none (SPF off, trusted client,
 * no identity) or it does not fit.  A local part that is not a plain
 * dot-atom in ASCII is left out (the property allows the domain alone).
 */
size_t
smtp_policy_auth_results(struct smtp_session *s, char *out, size_t outsz)
{
	struct smtp_policy	*p = s->pol;
	const char		*id, *at;
	int			 r;

	if (p == NULL || p->spf_state != PR_PASS || !policy_applies(s))
		return 0;
	id = p->spf_sender;
	at = strrchr(id, '@');
	if (p->spf_helo)
		id = at + 1;
	else if (!local_is_atext(id, (size_t)(at - id)))
		id = at + 1;
	r = snprintf(out, outsz, "Authentication-Results: %s;\r\n"
	    "\tspf=%s (%s) smtp.%s=%s\r\n", smtp_srv->conf->hostname,
	    spf_result_str(p->spf_res), p->spf_why,
	    p->spf_helo ? "helo" : "mailfrom", id);
	if (r < 0 || (size_t)r >= outsz)
		return 0;
	return (size_t)r;
}

/* spf_clean - a reason fit for a log value and a header comment */
static void
spf_clean(const char *in, char *out, size_t outsz)
{
	size_t	 o = 0;

	for (; *in != '\0' && o + 1 < outsz; in++)
		if (*in >= ' ' && *in <= '~' && strchr("\"\\()", *in) == NULL)
			out[o++] = *in;
	out[o] = '\0';
}

/* local_is_atext - a dot-atom of ASCII atext (RFC 5322 3.2.3) */
static int
local_is_atext(const char *p, size_t len)
{
	size_t	 i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= 'A' && p[i] <= 'Z') ||
		    (p[i] >= '0' && p[i] <= '9') ||
		    (p[i] != '\0' && strchr(".!#$%&'*+-/=?^_`{|}~", p[i]) !=
		    NULL)))
			return 0;
	return 1;
}

/* ---- HELO ------------------------------------------------------- */

/*
 * helo_check - the reply text for a HELO name we refuse, or NULL.  A
 * client naming itself as us, or as the address it connected to, is
 * lying (a classic of spam engines).
 */
static const char *
helo_check(struct smtp_session *s, const char *name, size_t len)
{
	const char	*h = smtp_srv->conf->hostname;
	size_t		 hl = strlen(h);

	if (!smtp_policy_helo_syntax(name, len))
		return "invalid host name";
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == hl && mem_casecmp(name, h, hl) == 0)
		return "that is my name";
	if (name[0] == '[' && helo_is_our_literal(s, name, len))
		return "that is my address";
	return NULL;
}

/* helo_is_our_literal - [a.b.c.d] or [IPv6:..] of our socket address */
static int
helo_is_our_literal(struct smtp_session *s, const char *name, size_t len)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	char			 lit[64];
	uint8_t			 a[16], *our;
	int			 fd, fam = AF_INET;

	if (len < 3 || len - 2 >= sizeof(lit) || s->bev == NULL ||
	    (fd = bufferevent_getfd(s->bev)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return 0;
	memcpy(lit, name + 1, len - 2);
	lit[len - 2] = '\0';
	if (strncasecmp(lit, "IPv6:", 5) == 0) {
		fam = AF_INET6;
		memmove(lit, lit + 5, strlen(lit + 5) + 1);
	}
	if (inet_pton(fam, lit, a) != 1 || ss.ss_family != fam)
		return 0;
	our = fam == AF_INET ?
	    (uint8_t *)&((struct sockaddr_in *)(void *)&ss)->sin_addr :
	    (uint8_t *)&((struct sockaddr_in6 *)(void *)&ss)->sin6_addr;
	return memcmp(a, our, fam == AF_INET ? 4 : 16) == 0;
}

/* ---- timers ----------------------------------------------------- */

static int
timer_arm(struct smtp_policy *p, event_callback_fn fn, time_t secs)
{
	struct timeval	 tv = { secs, 0 };

	if (p->timer != NULL)
		event_free(p->timer);
	if ((p->timer = evtimer_new(smtp_srv->base, fn, p->s)) == NULL ||
	    evtimer_add(p->timer, &tv) == -1) {
		log_warnx("event=error client=%s sid=%lu error=timer",
		    p->s->addrtext, p->s->id);
		return -1;
	}
	return 0;
}

/* greet_timer - the client waited: the banner, then normal service */
static void
greet_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	if (!(s->flags & SF_GREETWAIT) || s->state != SMTP_ST_CONNECTED)
		return;
	s->flags &= ~SF_GREETWAIT;
	smtp_session_greet(s);
	smtp_session_process(s);
}

/* tarpit_timer - let the held replies go, then read on */
static void
tarpit_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	s->flags &= ~SF_TARPIT;
	if (s->bev == NULL)
		return;
	bufferevent_enable(s->bev, EV_WRITE);
	smtp_session_process(s);
}

/* ---- rates ------------------------------------------------------ */

/*
 * rate_get - the counters of the session's address (IPv6: its /64, an
 * address a client can change at will), in a window that restarts
 * rate_window after its first event.  NULL if the table is full.
 */
static struct rate_entry *
rate_get(const struct smtp_session *s)
{
	struct rate_entry	*e;
	uint8_t			 key[16];
	uint32_t		 h = 2166136261u;
	time_t			 now = time(NULL);
	size_t			 i;

	memset(key, 0, sizeof(key));
	memcpy(key, s->addr, s->family == AF_INET ? 4 : 8);
	for (i = 0; i < sizeof(key); i++)
		h = (h ^ key[i]) * 16777619u;
	h = (h ^ (uint32_t)s->family) % RATE_BUCKETS;
	for (e = rate_table[h]; e != NULL; e = e->next)
		if (e->family == s->family && memcmp(e->addr, key, 16) == 0)
			break;
	if (e == NULL) {
		if (rate_count >= RATE_MAX)
			rate_gc(now);
		if (rate_count >= RATE_MAX || (e = calloc(1, sizeof(*e))) ==
		    NULL)
			return NULL;
		e->family = s->family;
		memcpy(e->addr, key, 16);
		e->start = now;
		e->next = rate_table[h];
		rate_table[h] = e;
		rate_count++;
	}
	if (now - e->start >= smtp_srv->conf->rate_window || now < e->start) {
		e->start = now;
		e->conns = e->msgs = 0;
	}
	return e;
}

/* rate_gc - forget the addresses whose window is over */
static void
rate_gc(time_t now)
{
	struct rate_entry	**pp, *e;
	size_t			 i;

	for (i = 0; i < RATE_BUCKETS; i++) {
		for (pp = &rate_table[i]; (e = *pp) != NULL;) {
			if (now - e->start < smtp_srv->conf->rate_window) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e);
			rate_count--;
		}
	}
}

/* ---- header From: --------------------------------------------- */

/* smtp_hfrom_init - before the first octet of a message */
void
smtp_hfrom_init(struct smtp_hfrom *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_LSTART;
}

/* smtp_hfrom_scan - more content octets (dot-unstuffed) */
void
smtp_hfrom_scan(struct smtp_hfrom *h, const struct config *conf,
    const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && h->state != HS_DONE; i++)
		hfrom_octet(h, conf, (unsigned char)p[i]);
	h->done = h->state == HS_DONE;
}

/*
 * hfrom_octet - one octet of the header section (RFC 5322 2.2): a
 * field name up to ':', its value, folded lines starting with WSP; an
 * empty line or a line that is not a field ends the section.
 */
static void
hfrom_octet(struct smtp_hfrom *h, const struct config *conf,
    unsigned char c)
{
	switch (h->state) {
	case HS_LSTART:
		if (c == ' ' || c == '\t') {
			h->state = HS_VALUE;	/* folded: the field goes on */
			hfrom_value(h, conf, c);
			return;
		}
		hfrom_field_end(h, conf);
		if (c == '\r' || c == '\n' || c <= ' ' || c >= 127 ||
		    c == ':') {
			h->state = HS_DONE;
			return;
		}
		h->state = HS_NAME;
		h->namelen = 0;
		/* FALLTHROUGH */
	case HS_NAME:
		if (c == ':')
			break;
		if (c == ' ' || c == '\t') {
			h->state = HS_NAMEWS;	/* obs-optional WSP */
			return;
		}
		if (c <= ' ' || c >= 127) {
			h->state = HS_DONE;
			return;
		}
		if (h->namelen < sizeof(h->name))
			h->name[h->namelen] = (char)c;
		h->namelen++;
		return;
	case HS_NAMEWS:
		if (c == ' ' || c == '\t')
			return;
		if (c != ':') {
			h->state = HS_DONE;
			return;
		}
		break;
	case HS_VALUE:
		if (c == '\n')
			h->state = HS_LSTART;
		else
			hfrom_value(h, conf, c);
		return;
	default:
		return;
	}
	/* ':' after a name: the value starts */
	h->infrom = h->namelen == 4 && mem_casecmp(h->name, "from", 4) == 0;
	h->vstate = V_PLAIN;
	h->depth = 0;
	h->state = HS_VALUE;
}

/*
 * hfrom_value - one octet of a field value; in From: the domains
 * after '@' outside quoted strings and comments (RFC 5322 3.2.4,
 * 3.2.2), a CR ending a line like any delimiter
 */
static void
hfrom_value(struct smtp_hfrom *h, const struct config *conf,
    unsigned char c)
{
	if (!h->infrom)
		return;
	switch (h->vstate) {
	case V_QUOTE:
		h->vstate = c == '\\' ? V_QESC : c == '"' ? V_PLAIN : V_QUOTE;
		return;
	case V_QESC:
		h->vstate = V_QUOTE;
		return;
	case V_COMMENT:
		if (c == '\\')
			h->vstate = V_CESC;
		else if (c == '(')
			h->depth++;
		else if (c == ')' && --h->depth == 0)
			h->vstate = V_PLAIN;
		return;
	case V_CESC:
		h->vstate = V_COMMENT;
		return;
	case V_DLIT:
		if (c == ']')
			h->vstate = V_PLAIN;
		return;
	case V_AT:
		if (c == ' ' || c == '\t' || c == '\r')
			return;		/* CFWS after '@' */
		if (c == '[') {
			h->vstate = V_DLIT;	/* never one of ours */
			return;
		}
		h->vstate = V_PLAIN;
		if (is_domain_char(c)) {
			h->vstate = V_DOMAIN;
			h->domlen = 0;
			h->domover = 0;
			break;
		}
		hfrom_value(h, conf, c);
		return;
	case V_DOMAIN:
		if (is_domain_char(c))
			break;
		hfrom_domain_end(h, conf);
		h->vstate = V_PLAIN;
		hfrom_value(h, conf, c);
		return;
	default:		/* V_PLAIN */
		if (c == '"')
			h->vstate = V_QUOTE;
		else if (c == '(') {
			h->vstate = V_COMMENT;
			h->depth = 1;
		} else if (c == '@')
			h->vstate = V_AT;
		return;
	}
	/* a domain octet */
	if (h->domlen < HFROM_DOMAIN_MAX)
		h->dom[h->domlen++] = (char)c;
	else
		h->domover = 1;
}

/* hfrom_field_end - a field is over: so is a domain at its end */
static void
hfrom_field_end(struct smtp_hfrom *h, const struct config *conf)
{
	if (h->infrom && h->vstate == V_DOMAIN)
		hfrom_domain_end(h, conf);
	h->infrom = 0;
	h->vstate = V_PLAIN;
}

/* hfrom_domain_end - is the domain just read one of ours? */
static void
hfrom_domain_end(struct smtp_hfrom *h, const struct config *conf)
{
	size_t	 n = h->domlen;

	while (n > 0 && h->dom[n - 1] == '.')
		n--;
	if (h->domover || n == 0 || !config_is_local_domain(conf, h->dom, n))
		return;
	if (!h->local) {
		memcpy(h->found, h->dom, n);
		h->found[n] = '\0';
		mem_ascii_lower(h->found, n);
	}
	h->local = 1;
}

static int
is_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}
