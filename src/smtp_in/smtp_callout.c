/*
 * smtp_callout.c - recipient verification by callout (recipient_verify
 * = callout): before accepting a recipient of a local domain, ask the
 * internal host it will be relayed to whether it would take it, so that
 * moat never accepts mail that host would bounce (backscatter).
 *
 * The probe: the next hop of the domain in transport_map, when it is
 * smtp:[host]:port (that host; a name is resolved to A/AAAA) or
 * smtp:host (the best MX of host, else host itself); other next hops
 * (MX lookup, maildir, error) are not probed.  It says EHLO (HELO if
 * EHLO is refused), "MAIL FROM:<>", "RCPT TO:<addr>", then QUIT: 2xx
 * accepts the recipient, 5xx refuses it with 550 5.1.1, anything else
 * (4xx, timeout, unreachable, a protocol error) is a failure, answered
 * by recipient_verify_failure: 450 4.1.1 (tempfail) or accept.  The
 * whole probe is bounded by recipient_verify_timeout.
 *
 * Answers are cached in memory, positive for
 * recipient_verify_positive_ttl and negative for
 * recipient_verify_negative_ttl, in a bounded LRU (CACHE_MAX entries):
 * a dictionary attack costs the internal host one probe per address,
 * and the error limit and the tarpit bound it at our edge.  Failures are
 * not cached.
 *
 * Asynchronous like the policy lookups: the RCPT's reply waits
 * (SF_POLWAIT stops the input loop) while the probe runs on the event
 * loop; its completion finishes the RCPT (smtp_rcpt_accept or a
 * refusal) and resumes the session.  At most CALLOUT_MAX probes run at
 * once; beyond that a recipient is treated as a failure.
 *
 * Ownership: a probe belongs to its session (s->callout) and is
 * cancelled by smtp_callout_session_free when the session goes.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/dns.h"
#include "../common/stats.h"
#include "../smtp_out/smtp_out.h"
#include "smtp_in.h"

#define CALLOUT_MAX	64		/* probes in flight, process-wide */
#define CACHE_MAX	10000		/* cached answers */
#define CACHE_BUCKETS	4096
#define CO_ADDR_MAX	(ADDR_LOCAL_MAX * 2 + ADDR_DOMAIN_MAX + 8)
#define CO_READ_MAX	(64 * 1024)	/* one reply, at most */

enum co_step {
	CO_RESOLVE_MX,		/* smtp:host: the MX of host */
	CO_RESOLVE,		/* the address of the host */
	CO_CONNECT,
	CO_GREETING,
	CO_EHLO,
	CO_HELO,
	CO_MAIL,
	CO_RCPT
};

enum co_answer {
	CA_ACCEPT,		/* 2xx */
	CA_REJECT,		/* 5xx */
	CA_FAIL			/* no definite answer */
};

struct smtp_callout {
	struct smtp_session	*s;
	enum co_step		 step;
	struct dns_query	*q;
	struct bufferevent	*bev;
	struct event		*timer;
	unsigned		 port;
	char			 host[DNS_NAME_MAX + 1];
	char			 relay[DNS_NAME_MAX + 16]; /* for the log */
	char			 addr[CO_ADDR_MAX];	/* as received */
	size_t			 addrlen;
	unsigned		 code;	/* of the RCPT, or the failure */
	int			 counted;	/* in ninflight */
};

struct cache_entry {
	struct cache_entry	*next;		/* hash chain */
	TAILQ_ENTRY(cache_entry) lru;		/* oldest use first */
	time_t			 expires;
	int			 accept;
	size_t			 keylen;
	char			 key[];		/* address, domain lower */
};

static int	callout_needed(const struct addr *, const char *, size_t,
		    const struct nexthop **);
static int	callout_start(struct smtp_session *, const struct nexthop *,
		    const char *, size_t);
static void	resolve_done(const struct dns_result *, void *);
static void	callout_connect(struct smtp_callout *,
		    const struct dns_addr *);
static void	co_readcb(struct bufferevent *, void *);
static void	co_eventcb(struct bufferevent *, short, void *);
static void	co_timer(evutil_socket_t, short, void *);
static void	co_reply(struct smtp_callout *, const struct oreply *);
static void	co_send(struct smtp_callout *, const char *, const char *);
static void	co_end(struct smtp_callout *, enum co_answer, const char *);
static void	co_free(struct smtp_callout *);
static void	answer(struct smtp_session *, const char *, size_t,
		    enum co_answer, int);
static size_t	cache_key(const char *, size_t, char *);
static uint32_t	cache_hash(const char *, size_t);
static struct cache_entry *cache_find(const char *, size_t, time_t);
static void	cache_store(const char *, size_t, int);

static struct cache_entry	*cache_table[CACHE_BUCKETS];
static TAILQ_HEAD(, cache_entry) cache_lru =
    TAILQ_HEAD_INITIALIZER(cache_lru);
static size_t			 cache_count;
static size_t			 ninflight;

/*
 * smtp_callout_rcpt - verify the recipient a[0..n) (parsed as ad) of a
 * RCPT that passed every other check.  0: go on and accept it; -1:
 * refused (answered); 1: a probe runs, the RCPT is answered from its
 * completion (the session waits, SF_POLWAIT).
 */
int
smtp_callout_rcpt(struct smtp_session *s, const struct addr *ad,
    const char *a, size_t n)
{
	const struct config	*conf = smtp_srv->conf;
	const struct nexthop	*hop;
	struct cache_entry	*e;
	char			 key[CO_ADDR_MAX];
	size_t			 kl;

	if (conf->recipient_verify != RV_CALLOUT ||
	    !callout_needed(ad, a, n, &hop))
		return 0;
	kl = cache_key(a, n, key);
	if ((e = cache_find(key, kl, time(NULL))) != NULL) {
		log_debug("sid=%lu callout cached %s", s->id,
		    e->accept ? "accept" : "reject");
		if (e->accept)
			return 0;
		answer(s, a, n, CA_REJECT, 1);
		return -1;
	}
	if (ninflight >= CALLOUT_MAX ||
	    callout_start(s, hop, a, n) == -1) {
		log_warnx("event=callout client=%s result=fail why=%s sid=%lu",
		    s->addrtext, ninflight >= CALLOUT_MAX ? "too_many" :
		    "no_resources", s->id);
		if (conf->recipient_verify_failure == RV_FAIL_ACCEPT)
			return 0;
		answer(s, a, n, CA_FAIL, 0);
		return -1;
	}
	/* a connection refused at once has answered already (co_end) */
	if (s->callout != NULL)
		s->flags |= SF_POLWAIT;
	return 1;
}

/* smtp_callout_session_free - the session goes: drop its probe */
void
smtp_callout_session_free(struct smtp_session *s)
{
	if (s->callout == NULL)
		return;
	co_free(s->callout);
	s->callout = NULL;
}

/*
 * callout_needed - a recipient of a local domain whose next hop is an
 * SMTP host we can ask; an address that is not plain ASCII is not
 * probed (the internal host might not speak SMTPUTF8)
 */
static int
callout_needed(const struct addr *ad, const char *a, size_t n,
    const struct nexthop **hop)
{
	const struct config	*conf = smtp_srv->conf;
	size_t			 i;

	if (ad->domain == NULL || (ad->flags & ADDR_LITERAL) ||
	    n >= CO_ADDR_MAX || !config_is_local_domain(conf, ad->domain,
	    ad->domainlen))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)a[i] < 0x21 || (unsigned char)a[i] > 0x7e)
			return 0;
	*hop = transport_lookup(&conf->transport, ad->domain, ad->domainlen);
	return *hop != NULL && ((*hop)->kind == TR_SMTP_FIXED ||
	    (*hop)->kind == TR_SMTP_HOST);
}

/* callout_start - a probe for the session; 0, or -1 (nothing started) */
static int
callout_start(struct smtp_session *s, const struct nexthop *hop,
    const char *a, size_t n)
{
	const struct config	*conf = smtp_srv->conf;
	struct smtp_callout	*co;
	struct dns_addr		 da;
	struct timeval		 tv = { conf->recipient_verify_timeout, 0 };
	int			 r;

	if ((co = calloc(1, sizeof(*co))) == NULL)
		return -1;
	co->s = s;
	memcpy(co->addr, a, n);
	co->addr[n] = '\0';
	co->addrlen = n;
	co->port = hop->port != 0 ? hop->port : conf->remote_smtp_port;
	r = snprintf(co->host, sizeof(co->host), "%s", hop->host);
	if (r < 0 || (size_t)r >= sizeof(co->host) ||
	    (co->timer = evtimer_new(smtp_srv->base, co_timer, co)) == NULL ||
	    evtimer_add(co->timer, &tv) == -1) {
		co_free(co);
		return -1;
	}
	(void)snprintf(co->relay, sizeof(co->relay), "%s:%u", co->host,
	    co->port);
	memset(&da, 0, sizeof(da));
	if (inet_pton(AF_INET, co->host, da.addr) == 1)
		da.family = AF_INET;
	else if (inet_pton(AF_INET6, co->host, da.addr) == 1)
		da.family = AF_INET6;
	s->callout = co;
	co->counted = 1;
	ninflight++;
	if (da.family != 0) {
		callout_connect(co, &da);
		return 0;
	}
	co->step = hop->kind == TR_SMTP_HOST ? CO_RESOLVE_MX : CO_RESOLVE;
	co->q = co->step == CO_RESOLVE_MX ?
	    dns_query_mx(co->host, strlen(co->host), resolve_done, co) :
	    dns_query_addr(co->host, strlen(co->host), DNS_INET | DNS_INET6,
	    resolve_done, co);
	if (co->q == NULL) {
		s->callout = NULL;
		co_free(co);
		return -1;
	}
	return 0;
}

/*
 * resolve_done - smtp:host: its best MX (or, without MX, the host
 * itself, RFC 5321 5.1); then the first address of the name
 */
static void
resolve_done(const struct dns_result *res, void *arg)
{
	struct smtp_callout	*co = arg;

	co->q = NULL;
	if (co->step == CO_RESOLVE_MX && (res->status == DNS_OK ||
	    res->status == DNS_NODATA)) {
		if (res->status == DNS_OK && res->nmx > 0)
			(void)snprintf(co->host, sizeof(co->host), "%s",
			    res->mx[0].host);
		co->step = CO_RESOLVE;
		if ((co->q = dns_query_addr(co->host, strlen(co->host),
		    DNS_INET | DNS_INET6, resolve_done, co)) == NULL)
			co_end(co, CA_FAIL, "no_resources");
		return;
	}
	if (co->step != CO_RESOLVE || res->status != DNS_OK ||
	    res->naddr == 0) {
		co_end(co, CA_FAIL, res->status == DNS_TEMPFAIL ?
		    "dns_tempfail" : "dns_not_found");
		return;
	}
	callout_connect(co, &res->addr[0]);
}

/* callout_connect - a non-blocking TCP connection to the host */
static void
callout_connect(struct smtp_callout *co, const struct dns_addr *da)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;

	co->step = CO_CONNECT;
	sl = dns_addr_sockaddr(da, co->port, &ss);
	co->bev = bufferevent_socket_new(smtp_srv->base, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	if (co->bev == NULL) {
		co_end(co, CA_FAIL, "no_resources");
		return;
	}
	bufferevent_setcb(co->bev, co_readcb, NULL, co_eventcb, co);
	bufferevent_setwatermark(co->bev, EV_READ, 0, CO_READ_MAX);
	/* an immediate failure is reported through co_eventcb too */
	if (bufferevent_socket_connect(co->bev, (struct sockaddr *)&ss,
	    (int)sl) == -1) {
		co_end(co, CA_FAIL, "connect");
		return;
	}
	bufferevent_enable(co->bev, EV_READ);
}

/* co_readcb - replies, one at a time (we never pipeline) */
static void
co_readcb(struct bufferevent *bev, void *arg)
{
	struct smtp_callout	*co = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct oreply		 r;
	const char		*p;
	size_t			 len, used;
	int			 rc;

	len = evbuffer_get_length(in);
	if ((p = (const char *)evbuffer_pullup(in, (ssize_t)len)) == NULL) {
		co_end(co, CA_FAIL, "no_resources");
		return;
	}
	if (co->step == CO_CONNECT)
		co->step = CO_GREETING;		/* data: connected */
	if ((rc = oreply_parse(p, len, &r, &used)) == 0) {
		if (len >= CO_READ_MAX)
			co_end(co, CA_FAIL, "reply_too_long");
		return;
	}
	if (rc == -1) {
		co_end(co, CA_FAIL, "bad_reply");
		return;
	}
	evbuffer_drain(in, used);
	if (evbuffer_get_length(in) > 0) {
		/* a reply to nothing we asked: not an SMTP server */
		co_end(co, CA_FAIL, "unexpected_reply");
		return;
	}
	co_reply(co, &r);
}

/* co_reply - the dialogue: greeting, EHLO (HELO), MAIL, RCPT */
static void
co_reply(struct smtp_callout *co, const struct oreply *r)
{
	const char	*name = smtp_srv->conf->hostname;
	unsigned	 cls = r->code / 100;

	switch (co->step) {
	case CO_GREETING:
		if (cls != 2)
			break;
		co->step = CO_EHLO;
		co_send(co, "EHLO ", name);
		return;
	case CO_EHLO:
		if (cls == 5) {
			/* an old server: HELO (RFC 5321 4.1.1.1) */
			co->step = CO_HELO;
			co_send(co, "HELO ", name);
			return;
		}
		/* FALLTHROUGH */
	case CO_HELO:
		if (cls != 2)
			break;
		co->step = CO_MAIL;
		co_send(co, "MAIL FROM:<>", "");
		return;
	case CO_MAIL:
		if (cls != 2)
			break;
		co->step = CO_RCPT;
		co_send(co, "RCPT TO:<", co->addr);
		return;
	case CO_RCPT:
		co->code = r->code;
		co_end(co, cls == 2 ? CA_ACCEPT : cls == 5 ? CA_REJECT :
		    CA_FAIL, cls == 4 ? "tempfail" : cls == 2 || cls == 5 ?
		    NULL : "bad_reply");
		return;
	default:
		co_end(co, CA_FAIL, "unexpected_reply");
		return;
	}
	co->code = r->code;
	co_end(co, CA_FAIL, co->step == CO_GREETING ? "greeting" :
	    co->step == CO_MAIL ? "mail_refused" : "helo_refused");
}

/* co_send - one command line: verb (with its "<" if any) and argument */
static void
co_send(struct smtp_callout *co, const char *verb, const char *arg)
{
	struct evbuffer	*out = bufferevent_get_output(co->bev);

	if (evbuffer_add_printf(out, "%s%s%s\r\n", verb, arg,
	    co->step == CO_RCPT ? ">" : "") == -1)
		co_end(co, CA_FAIL, "no_resources");
}

/* co_eventcb - connected, or the connection failed or closed */
static void
co_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_callout	*co = arg;

	/* the greeting may have been read before this event */
	if (what & BEV_EVENT_CONNECTED) {
		if (co->step == CO_CONNECT)
			co->step = CO_GREETING;
		return;
	}
	co_end(co, CA_FAIL, co->step == CO_CONNECT ? "connect" :
	    "connection_lost");
}

static void
co_timer(evutil_socket_t fd, short what, void *arg)
{
	co_end(arg, CA_FAIL, "timeout");
}

/*
 * co_end - the probe is over: QUIT to a server that is still in a
 * dialogue (sent on the socket directly, the output being empty after
 * a reply), cache a definite answer, finish the RCPT, resume
 */
static void
co_end(struct smtp_callout *co, enum co_answer ans, const char *why)
{
	struct smtp_session	*s = co->s;
	const struct config	*conf = smtp_srv->conf;
	char			 la[CO_ADDR_MAX + 16];
	int			 fd;

	if (co->bev != NULL && co->step >= CO_EHLO && why == NULL &&
	    (fd = bufferevent_getfd(co->bev)) != -1)
		(void)send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	log_sanitize(co->addr, co->addrlen, la, sizeof(la));
	log_info("event=callout client=%s to=<%s> relay=%s result=%s "
	    "code=%u%s%s sid=%lu", s->addrtext, la, co->relay,
	    ans == CA_ACCEPT ? "accept" : ans == CA_REJECT ? "reject" : "fail",
	    co->code, why != NULL ? " why=" : "", why != NULL ? why : "",
	    s->id);
	if (ans != CA_FAIL)
		cache_store(co->addr, co->addrlen, ans == CA_ACCEPT);
	s->callout = NULL;
	s->flags &= ~SF_POLWAIT;
	if (ans == CA_FAIL && conf->recipient_verify_failure ==
	    RV_FAIL_ACCEPT)
		ans = CA_ACCEPT;
	answer(s, co->addr, co->addrlen, ans, 0);
	co_free(co);
	smtp_session_process(s);
}

/* answer - finish the RCPT of a[0..n) after a probe or from the cache */
static void
answer(struct smtp_session *s, const char *a, size_t n, enum co_answer ans,
    int cached)
{
	char	 la[CO_ADDR_MAX + 16];

	if (ans == CA_ACCEPT) {
		smtp_rcpt_accept(s, a, n);
		return;
	}
	STATS_ADD(rcpt_rejected, 1);
	if (ans == CA_FAIL) {
		smtp_reply(s, "450 4.1.1 Recipient address verification "
		    "failed, try again later");
		return;
	}
	log_sanitize(a, n, la, sizeof(la));
	log_info("event=reject type=unknown_user client=%s to=<%s> "
	    "verify=callout%s sid=%lu", s->addrtext, la,
	    cached ? " cached=yes" : "", s->id);
	smtp_reply_error(s, "550 5.1.1 Recipient address rejected: User "
	    "unknown");
}

static void
co_free(struct smtp_callout *co)
{
	if (co->q != NULL)
		dns_cancel(co->q);
	if (co->bev != NULL)
		bufferevent_free(co->bev);
	if (co->timer != NULL)
		event_free(co->timer);
	if (co->s->callout == co)
		co->s->callout = NULL;
	if (co->counted)
		ninflight--;
	free(co);
}

/* ---- the cache --------------------------------------------------- */

/* cache_key - the address with its domain lower case; its length */
static size_t
cache_key(const char *a, size_t n, char *key)
{
	const char	*at = memrchr(a, '@', n);

	memcpy(key, a, n);
	key[n] = '\0';
	if (at != NULL)
		mem_ascii_lower(key + (at - a), n - (size_t)(at - a));
	return n;
}

static uint32_t
cache_hash(const char *k, size_t n)
{
	uint32_t	 h = 2166136261u;
	size_t		 i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h % CACHE_BUCKETS;
}

/* cache_find - a live answer (moved to the young end), or NULL */
static struct cache_entry *
cache_find(const char *k, size_t n, time_t now)
{
	struct cache_entry	**pp, *e;

	for (pp = &cache_table[cache_hash(k, n)]; (e = *pp) != NULL;
	    pp = &e->next) {
		if (e->keylen != n || memcmp(e->key, k, n) != 0)
			continue;
		if (now >= e->expires) {
			*pp = e->next;
			TAILQ_REMOVE(&cache_lru, e, lru);
			free(e);
			cache_count--;
			return NULL;
		}
		TAILQ_REMOVE(&cache_lru, e, lru);
		TAILQ_INSERT_TAIL(&cache_lru, e, lru);
		return e;
	}
	return NULL;
}

/* cache_store - remember an answer; the least recently used goes */
static void
cache_store(const char *a, size_t n, int accept)
{
	const struct config	*conf = smtp_srv->conf;
	struct cache_entry	*e, **pp;
	time_t			 ttl, now = time(NULL);
	char			 key[CO_ADDR_MAX];
	uint32_t		 h;

	ttl = accept ? conf->recipient_verify_positive_ttl :
	    conf->recipient_verify_negative_ttl;
	n = cache_key(a, n, key);
	if ((e = cache_find(key, n, now)) != NULL) {
		e->accept = accept;
		e->expires = now + ttl;
		return;
	}
	if (ttl == 0)
		return;
	if (cache_count >= CACHE_MAX && (e = TAILQ_FIRST(&cache_lru)) !=
	    NULL) {
		for (pp = &cache_table[cache_hash(e->key, e->keylen)];
		    *pp != e; pp = &(*pp)->next)
			;
		*pp = e->next;
		TAILQ_REMOVE(&cache_lru, e, lru);
		free(e);
		cache_count--;
	}
	if ((e = malloc(sizeof(*e) + n + 1)) == NULL)
		return;
	memcpy(e->key, key, n + 1);
	e->keylen = n;
	e->accept = accept;
	e->expires = now + ttl;
	h = cache_hash(key, n);
	e->next = cache_table[h];
	cache_table[h] = e;
	TAILQ_INSERT_TAIL(&cache_lru, e, lru);
	cache_count++;
}
