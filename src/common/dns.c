/*
 * dns.c - asynchronous DNS lookups on c-ares, driven by libevent.
 *
 * Layers, bottom up:
 *  - c-ares channel: one per process.  Its sockets are watched through
 *    the socket-state callback (one persistent event per socket), its
 *    retransmissions through one timer set from ares_timeout() after
 *    every call into c-ares.  No threads, nothing blocks.
 *  - entries: one per (name, type), in a tsearch() tree (balanced in
 *    glibc, so crafted names cannot degrade it as they could a hash).
 *    A pending entry has one ares_query() in flight and a list of
 *    waiting slots: equal queries are coalesced.  When the answer
 *    comes, the entry becomes a cache entry holding the raw response
 *    until its TTL runs out, or is freed if the answer is not cacheable
 *    (errors, TTL 0, negative answer without SOA: RFC 2308 5).
 *    Cache entries are bounded in number and bytes, evicted LRU.
 *  - queries: the caller's handle.  One slot per RR type (two for A and
 *    AAAA together), a deadline timer (the hard bound of one lookup),
 *    and the callback.  A query whose slots are all done moves to the
 *    ready list; one event delivers ready queries from the loop, so a
 *    callback never runs inside dns_query_*(), dns_cancel() or c-ares.
 *
 * Answers are parsed with c-ares' own parsers (ares_parse_*_reply) only
 * when a query is delivered, from the slot's copy of the response; a
 * cache hit is parsed again, which reshuffles equal MX preferences per
 * lookup.  The only hand-written wire code is dns_packet_scan(), which
 * reads RR headers (TTLs, SOA MINIMUM) with every offset checked.
 *
 * Invariants: a slot is on at most one entry's waiter list, and only
 * while its query is on dns.waiting; a pending entry is never freed
 * while the channel lives (c-ares holds it as callback argument); every
 * name passed to c-ares went through dns_name_normalize().
 *
 * Failure grades: resolver errors become DNS_TEMPFAIL results; out of
 * memory makes dns_query_*() return NULL (the caller defers) or turns a
 * slot into a TEMPFAIL; a broken invariant panics.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <limits.h>
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "config.h"
#include "dns.h"

#define DNS_CLASS_IN		1
#define DNS_T_SOA		6
#define DNS_HDR_LEN		12
#define DNS_EDNS_SIZE		1232	/* DNS flag day 2020 */
#define DNS_PENDING_MAX		4096	/* distinct queries in flight */
#define DNS_CACHE_PKT_MAX	8192	/* larger answers are not cached */
#define DNS_TRY_MS_MIN		200	/* shortest c-ares retransmit wait */
#define DNS_TRIES_MAX		5

#define DEF_TIMEOUT_MS		10000
#define DEF_TRIES		2
#define DEF_CACHE_ENTRIES	10000
#define DEF_CACHE_BYTES		(8 * 1024 * 1024)
#define DEF_MAX_TTL		86400
#define DEF_MAX_NEG_TTL		900	/* RFC 2308 5 allows hours; a domain
					   being set up is retried sooner */

/* our own c-ares-like status for "too many queries in flight" */
#define DNS_ARES_BUSY		(-1)

struct dns_slot;
struct dns_query;

/* one (name, type): pending query or cached answer */
struct dns_entry {
	int			 type;
	char			*name;		/* in the same allocation */
	int			 pending;
	int			 status;	/* c-ares status of answer */
	int64_t			 expires;	/* monotonic ms, when cached */
	unsigned char		*pkt;
	size_t			 pktlen;
	size_t			 bytes;		/* in dns.cache_bytes */
	TAILQ_HEAD(, dns_slot)	 waiters;
	TAILQ_ENTRY(dns_entry)	 link;		/* dns.pending or dns.lru */
};

/* one RR type of a query */
struct dns_slot {
	struct dns_query	*q;
	int			 type;
	struct dns_entry	*entry;		/* waited on; NULL if none */
	TAILQ_ENTRY(dns_slot)	 link;		/* entry->waiters */
	int			 done;
	int			 status;
	int			 cached;
	uint32_t		 ttl_left;	/* cached: seconds left */
	unsigned char		*pkt;		/* own copy of the answer */
	size_t			 pktlen;
};

struct dns_query {
	dns_cb			 cb;
	void			*arg;
	int			 badname;
	int			 ready;
	size_t			 nslots;
	size_t			 nleft;		/* slots not done */
	struct dns_slot		 slot[2];
	struct event		*deadline;
	TAILQ_ENTRY(dns_query)	 link;		/* dns.waiting or dns.ready */
	char			 name[DNS_NAME_MAX + 1];
};

/* a socket c-ares asked us to watch */
struct dns_sock {
	ares_socket_t		 fd;
	short			 what;
	struct event		*ev;
	TAILQ_ENTRY(dns_sock)	 link;
};

/* a result and the storage of its name */
struct dns_res {
	struct dns_result	 r;
	char			 name[DNS_NAME_MAX + 1];
};

/* an MX record while sorting */
struct dns_mxsort {
	unsigned		 pref;
	uint32_t		 key;		/* random: shuffles ties */
	const char		*host;
};

TAILQ_HEAD(dns_queries, dns_query);
TAILQ_HEAD(dns_entries, dns_entry);

static struct {
	int			 up;
	struct event_base	*base;
	ares_channel		 channel;
	struct dns_conf		 conf;		/* defaults applied */
	struct timeval		 lifetime;
	struct event		*timer;
	struct event		*ready_ev;
	struct dns_queries	 waiting;
	struct dns_queries	 ready;
	size_t			 nready;
	struct dns_entries	 pending;
	size_t			 npending;
	int			 busy_logged;
	struct dns_entries	 lru;		/* cached, oldest use first */
	size_t			 ncached;
	size_t			 cache_bytes;
	void			*tree;
	TAILQ_HEAD(, dns_sock)	 socks;
} dns;

/* what a query gets when its result cannot be allocated */
static struct dns_result dns_nomem = {
	.status = DNS_TEMPFAIL, .name = "", .why = "out of memory"
};

static void	 dns_conf_apply(const struct dns_conf *);
static int	 dns_set_servers(const struct dns_conf *);
static int	 dns_sock_configure(ares_socket_t, int, void *);
static void	 dns_sock_state(void *, ares_socket_t, int, int);
static void	 dns_sock_cb(evutil_socket_t, short, void *);
static void	 dns_timer_update(void);
static void	 dns_timer_cb(evutil_socket_t, short, void *);
static void	 dns_ready_cb(evutil_socket_t, short, void *);
static void	 dns_deadline_cb(evutil_socket_t, short, void *);
static void	 dns_ares_cb(void *, int, int, unsigned char *, int);
static struct dns_query *dns_query_new(const char *, size_t, int, int,
		    dns_cb, void *);
static void	 dns_query_ready(struct dns_query *);
static void	 dns_query_free(struct dns_query *);
static struct dns_result *dns_query_result(struct dns_query *);
static void	 dns_slot_start(struct dns_slot *);
static void	 dns_slot_finish(struct dns_slot *, int,
		    const unsigned char *, size_t, int, uint32_t);
static int	 dns_entry_cmp(const void *, const void *);
static struct dns_entry *dns_entry_find(int, const char *);
static void	 dns_entry_cache(struct dns_entry *, int,
		    const unsigned char *, size_t);
static void	 dns_entry_drop(struct dns_entry *);
static void	 dns_entry_free(struct dns_entry *);
static int64_t	 dns_now_ms(void);
static const char *dns_ares_why(int);
static int	 dns_skip_name(const unsigned char *, size_t, size_t *);
static uint32_t	 dns_get32(const unsigned char *);
static struct dns_res *dns_res_new(const char *, enum dns_status,
		    const char *);
static void	 dns_parse_mx(struct dns_result *, const unsigned char *,
		    size_t);
static void	 dns_parse_addr(struct dns_result *, int,
		    const unsigned char *, size_t);
static void	 dns_parse_ptr(struct dns_result *, const unsigned char *,
		    size_t);
static void	 dns_ptr_add(struct dns_result *, const char *);
static void	 dns_parse_txt(struct dns_result *, const unsigned char *,
		    size_t);
static int	 dns_parse_status(struct dns_result *, int);
static int	 dns_reply_status(struct dns_result *, int, int);
static int	 dns_mx_cmp(const void *, const void *);
static void	 dns_fail(struct dns_result *, const char *);

/* dns_init - start the resolver on base (see dns.h) */
int
dns_init(struct event_base *base, const struct dns_conf *conf)
{
	struct ares_options	 opts;
	unsigned		 try_ms;
	size_t			 nservers;
	int			 rc, mask;

	if (dns.up)
		panic("dns_init: already initialised");
	memset(&dns, 0, sizeof(dns));
	TAILQ_INIT(&dns.waiting);
	TAILQ_INIT(&dns.ready);
	TAILQ_INIT(&dns.pending);
	TAILQ_INIT(&dns.lru);
	TAILQ_INIT(&dns.socks);
	dns.base = base;
	dns_conf_apply(conf);

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		log_warnx("dns: ares_library_init: %s", ares_strerror(rc));
		return -1;
	}
	/*
	 * c-ares waits one period per server in the first round over the
	 * servers and doubles it each round, so tries rounds over n
	 * servers take n * (2^tries - 1) periods: fit them in the bound.
	 * n is unknown before resolv.conf is read; counting one server
	 * then only lets the later rounds be cut short by the deadline
	 * timer of each query, which enforces the bound in every case.
	 */
	nservers = conf != NULL && conf->nservers > 0 ? conf->nservers : 1;
	if (nservers > DNS_SERVERS_MAX)
		nservers = DNS_SERVERS_MAX;
	try_ms = dns.conf.timeout_ms / (unsigned)nservers /
	    ((1u << dns.conf.tries) - 1);
	if (try_ms < DNS_TRY_MS_MIN)
		try_ms = DNS_TRY_MS_MIN;
	memset(&opts, 0, sizeof(opts));
	/* EDNS (RFC 6891): big MX and TXT answers fit in one datagram */
	opts.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.ednspsz = DNS_EDNS_SIZE;
	opts.timeout = (int)try_ms;
	opts.tries = (int)dns.conf.tries;
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = NULL;
	mask = ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
	/* reads /etc/resolv.conf here, before any chroot */
	if ((rc = ares_init_options(&dns.channel, &opts, mask)) !=
	    ARES_SUCCESS) {
		log_warnx("dns: ares_init_options: %s", ares_strerror(rc));
		ares_library_cleanup();
		return -1;
	}
	ares_set_socket_configure_callback(dns.channel, dns_sock_configure,
	    NULL);
	if (conf != NULL && conf->nservers > 0 && dns_set_servers(conf) == -1)
		goto fail;
	dns.timer = evtimer_new(base, dns_timer_cb, NULL);
	dns.ready_ev = event_new(base, -1, 0, dns_ready_cb, NULL);
	if (dns.timer == NULL || dns.ready_ev == NULL) {
		log_warnx("dns: event_new failed");
		goto fail;
	}
	dns.up = 1;
	return 0;

fail:
	if (dns.timer != NULL)
		event_free(dns.timer);
	if (dns.ready_ev != NULL)
		event_free(dns.ready_ev);
	ares_destroy(dns.channel);
	ares_library_cleanup();
	memset(&dns, 0, sizeof(dns));
	return -1;
}

/* dns_shutdown - drop every query (no callbacks) and the cache */
void
dns_shutdown(void)
{
	struct dns_query	*q;
	struct dns_entry	*e;
	struct dns_sock		*s;
	size_t			 i;

	if (!dns.up)
		return;
	dns.up = 0;
	while ((q = TAILQ_FIRST(&dns.waiting)) != NULL) {
		TAILQ_REMOVE(&dns.waiting, q, link);
		for (i = 0; i < q->nslots; i++)
			if (q->slot[i].entry != NULL)
				TAILQ_REMOVE(&q->slot[i].entry->waiters,
				    &q->slot[i], link);
		dns_query_free(q);
	}
	while ((q = TAILQ_FIRST(&dns.ready)) != NULL) {
		TAILQ_REMOVE(&dns.ready, q, link);
		dns_query_free(q);
	}
	/* calls dns_ares_cb(ARES_EDESTRUCTION) for each pending entry */
	ares_destroy(dns.channel);
	while ((e = TAILQ_FIRST(&dns.lru)) != NULL)
		dns_entry_drop(e);
	if (dns.tree != NULL || !TAILQ_EMPTY(&dns.pending))
		panic("dns_shutdown: entries left");
	while ((s = TAILQ_FIRST(&dns.socks)) != NULL) {
		TAILQ_REMOVE(&dns.socks, s, link);
		event_free(s->ev);
		free(s);
	}
	event_free(dns.timer);
	event_free(dns.ready_ev);
	ares_library_cleanup();
	memset(&dns, 0, sizeof(dns));
}

/* dns_query_mx - MX hosts of domain */
struct dns_query *
dns_query_mx(const char *domain, size_t len, dns_cb cb, void *arg)
{
	return dns_query_new(domain, len, DNS_T_MX, 0, cb, arg);
}

/* dns_query_addr - A and/or AAAA records of host */
struct dns_query *
dns_query_addr(const char *host, size_t len, int families, dns_cb cb,
    void *arg)
{
	switch (families) {
	case DNS_INET:
		return dns_query_new(host, len, DNS_T_A, 0, cb, arg);
	case DNS_INET6:
		return dns_query_new(host, len, DNS_T_AAAA, 0, cb, arg);
	case DNS_INET | DNS_INET6:
		return dns_query_new(host, len, DNS_T_AAAA, DNS_T_A, cb, arg);
	default:
		panic("dns_query_addr: families %d", families);
	}
}

/* dns_query_ptr - names of an address (RFC 1035 3.5, RFC 3596 2.5) */
struct dns_query *
dns_query_ptr(const struct sockaddr *sa, dns_cb cb, void *arg)
{
	char	 name[DNS_NAME_MAX + 1];

	if (dns_ptr_name(sa, name) == -1)
		panic("dns_query_ptr: address family %d", sa->sa_family);
	return dns_query_new(name, strlen(name), DNS_T_PTR, 0, cb, arg);
}

/* dns_query_txt - TXT records of name */
struct dns_query *
dns_query_txt(const char *name, size_t len, dns_cb cb, void *arg)
{
	return dns_query_new(name, len, DNS_T_TXT, 0, cb, arg);
}

/* dns_cancel - forget a pending query; its callback is not called */
void
dns_cancel(struct dns_query *q)
{
	size_t	 i;

	if (q->ready) {
		TAILQ_REMOVE(&dns.ready, q, link);
		dns.nready--;
	} else {
		/* the entries stay pending: their answer still gets cached */
		for (i = 0; i < q->nslots; i++)
			if (q->slot[i].entry != NULL)
				TAILQ_REMOVE(&q->slot[i].entry->waiters,
				    &q->slot[i], link);
		TAILQ_REMOVE(&dns.waiting, q, link);
	}
	dns_query_free(q);
}

/* dns_status_str - name of a status for logs */
const char *
dns_status_str(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "OK";
	case DNS_NODATA:
		return "NODATA";
	case DNS_NULL_MX:
		return "NULL_MX";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_TEMPFAIL:
		return "TEMPFAIL";
	case DNS_BADNAME:
		return "BADNAME";
	}
	return "?";
}

/* dns_addr_sockaddr - a dns_addr with port as a sockaddr; its length */
socklen_t
dns_addr_sockaddr(const struct dns_addr *a, unsigned port,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, a->addr, 4);
		return sizeof(*sin);
	}
	if (a->family != AF_INET6)
		panic("dns_addr_sockaddr: family %d", a->family);
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	memcpy(&sin6->sin6_addr, a->addr, 16);
	return sizeof(*sin6);
}

/* dns_name_ldh - LDH and '_' labels of 1-63 octets (see dns.h) */
int
dns_name_ldh(const char *p, size_t len)
{
	size_t	 i, label = 0;

	for (i = 0; i < len; i++) {
		if (p[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= 'A' && p[i] <= 'Z') ||
		    (p[i] >= '0' && p[i] <= '9') || p[i] == '-' ||
		    p[i] == '_') || ++label > 63)
			return 0;
	}
	return label > 0;
}

/* dns_name_normalize - check and lower-case a domain name (see dns.h) */
int
dns_name_normalize(const char *p, size_t len, char *out)
{
	size_t	 i, label = 0;
	char	 c;

	if (len > 0 && p[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		c = p[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
			label++;
		} else
			return -1;
		/* RFC 1035 2.3.4: labels of 63 octets or less */
		if (label > 63)
			return -1;
		out[i] = c;
	}
	if (label == 0)
		return -1;
	out[len] = '\0';
	return (int)len;
}

/* dns_ptr_name - the reverse name of an address */
int
dns_ptr_name(const struct sockaddr *sa, char *out)
{
	static const char	 hex[] = "0123456789abcdef";
	const uint8_t		*b;
	char			*p = out;
	int			 i, n;

	if (sa->sa_family == AF_INET) {
		b = (const uint8_t *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		n = snprintf(out, DNS_NAME_MAX + 1, "%u.%u.%u.%u.in-addr.arpa",
		    b[3], b[2], b[1], b[0]);
		return (n < 0 || n > DNS_NAME_MAX) ? -1 : 0;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	/* an IPv4 client on a dual-stack socket: its in-addr.arpa name */
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)b)) {
		n = snprintf(out, DNS_NAME_MAX + 1, "%u.%u.%u.%u.in-addr.arpa",
		    b[15], b[14], b[13], b[12]);
		return (n < 0 || n > DNS_NAME_MAX) ? -1 : 0;
	}
	/* RFC 3596 2.5: nibbles, least significant first: 72 octets */
	for (i = 15; i >= 0; i--) {
		*p++ = hex[b[i] & 0xf];
		*p++ = '.';
		*p++ = hex[b[i] >> 4];
		*p++ = '.';
	}
	memcpy(p, "ip6.arpa", sizeof("ip6.arpa"));
	return 0;
}

/* dns_packet_scan - walk a response's RR headers (see dns.h) */
int
dns_packet_scan(const unsigned char *pkt, size_t len, int type,
    struct dns_scan *sc)
{
	size_t		 off = DNS_HDR_LEN, rdlen, rdoff, i, n[3];
	uint32_t	 ttl, minimum;
	int		 rtype, rclass, sect;

	sc->ttl = UINT32_MAX;
	sc->negttl = UINT32_MAX;
	sc->nrr = 0;
	if (pkt == NULL || len < DNS_HDR_LEN)
		return -1;
	for (i = 0; i < 3; i++)		/* QDCOUNT, ANCOUNT, NSCOUNT */
		n[i] = (size_t)pkt[4 + 2 * i] << 8 | pkt[5 + 2 * i];
	for (i = 0; i < n[0]; i++) {
		if (dns_skip_name(pkt, len, &off) == -1 || len - off < 4)
			return -1;
		off += 4;
	}
	for (sect = 1; sect <= 2; sect++) {
		for (i = 0; i < n[sect]; i++) {
			if (dns_skip_name(pkt, len, &off) == -1 ||
			    len - off < 10)
				return -1;
			rtype = pkt[off] << 8 | pkt[off + 1];
			rclass = pkt[off + 2] << 8 | pkt[off + 3];
			ttl = dns_get32(pkt + off + 4);
			/* RFC 2181 8: a TTL with the top bit set is 0 */
			if (ttl > INT32_MAX)
				ttl = 0;
			rdlen = (size_t)pkt[off + 8] << 8 | pkt[off + 9];
			off += 10;
			if (len - off < rdlen)
				return -1;
			rdoff = off;
			off += rdlen;
			if (rclass != DNS_CLASS_IN)
				continue;
			if (sect == 1) {
				if (ttl < sc->ttl)
					sc->ttl = ttl;
				if (rtype == type)
					sc->nrr++;
				continue;
			}
			if (rtype != DNS_T_SOA || sc->negttl != UINT32_MAX)
				continue;
			/* MNAME, RNAME, then five 32-bit fields */
			if (dns_skip_name(pkt, off, &rdoff) == -1 ||
			    dns_skip_name(pkt, off, &rdoff) == -1 ||
			    off - rdoff != 20)
				return -1;
			minimum = dns_get32(pkt + rdoff + 16);
			if (minimum > INT32_MAX)
				minimum = 0;
			sc->negttl = ttl < minimum ? ttl : minimum;
		}
	}
	if (sc->ttl == UINT32_MAX)
		sc->ttl = 0;
	return 0;
}

/* dns_result_parse - the result of one query from a c-ares answer */
struct dns_result *
dns_result_parse(int type, const char *name, int status,
    const unsigned char *pkt, size_t len)
{
	struct dns_res		*res;
	struct dns_result	*r;
	struct dns_scan		 sc;

	if ((res = dns_res_new(name, DNS_OK, "")) == NULL)
		return NULL;
	r = &res->r;
	if (pkt == NULL || len > INT_MAX)
		len = 0;
	if (dns_parse_status(r, status) == -1)
		return r;
	if (dns_packet_scan(pkt, len, type, &sc) == -1) {
		dns_fail(r, "malformed answer");
		return r;
	}
	if (r->status != DNS_OK) {
		/* NODATA or NXDOMAIN: valid as long as the SOA says */
		r->ttl = sc.negttl == UINT32_MAX ? 0 : sc.negttl;
		return r;
	}
	r->ttl = sc.ttl;
	switch (type) {
	case DNS_T_MX:
		dns_parse_mx(r, pkt, len);
		break;
	case DNS_T_A:
	case DNS_T_AAAA:
		dns_parse_addr(r, type, pkt, len);
		break;
	case DNS_T_PTR:
		dns_parse_ptr(r, pkt, len);
		break;
	case DNS_T_TXT:
		dns_parse_txt(r, pkt, len);
		break;
	default:
		panic("dns_result_parse: type %d", type);
	}
	/* no RR of the type after all (a CNAME only): negative TTL */
	if (r->status == DNS_NODATA)
		r->ttl = sc.negttl == UINT32_MAX ? 0 : sc.negttl;
	/* the others count what they leave out themselves */
	if ((type == DNS_T_A || type == DNS_T_AAAA) && r->status == DNS_OK &&
	    sc.nrr > r->naddr)
		r->truncated = 1;
	return r;
}

/* dns_result_merge - AAAA and A results into one (both are freed) */
struct dns_result *
dns_result_merge(struct dns_result *a4, struct dns_result *a6)
{
	struct dns_res		*res;
	struct dns_result	*r = NULL, *p[2] = { a6, a4 };
	size_t			 i;

	if ((res = dns_res_new(a4->name, DNS_NODATA, "")) == NULL)
		goto done;
	r = &res->r;
	r->naddr = a4->naddr + a6->naddr;
	if (r->naddr > 0 &&
	    (r->addr = calloc(r->naddr, sizeof(*r->addr))) == NULL) {
		dns_result_free(r);
		r = NULL;
		goto done;
	}
	r->ttl = UINT32_MAX;
	r->cached = a4->cached && a6->cached;
	r->naddr = 0;
	for (i = 0; i < 2; i++) {
		if (p[i]->status == DNS_TEMPFAIL) {
			if (r->status != DNS_TEMPFAIL) {
				r->status = DNS_TEMPFAIL;
				r->why = p[i]->why;
			}
			continue;
		}
		if (p[i]->status == DNS_NXDOMAIN && r->status == DNS_NODATA)
			r->status = DNS_NXDOMAIN;
		if (p[i]->ttl < r->ttl)
			r->ttl = p[i]->ttl;
		if (p[i]->naddr > 0)
			memcpy(r->addr + r->naddr, p[i]->addr,
			    p[i]->naddr * sizeof(*r->addr));
		r->naddr += p[i]->naddr;
		r->truncated |= p[i]->truncated;
	}
	/* addresses of one family are an answer even if the other failed */
	if (r->naddr > 0) {
		r->status = DNS_OK;
		r->why = "";
	}
	if (r->ttl == UINT32_MAX)
		r->ttl = 0;
done:
	dns_result_free(a4);
	dns_result_free(a6);
	return r;
}

/* dns_result_free - free a result of dns_result_parse/merge */
void
dns_result_free(struct dns_result *r)
{
	size_t	 i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ntxt; i++)
		free((void *)r->txt[i].data);
	free(r->txt);
	free(r->mx);
	free(r->addr);
	free(r->ptr);
	free(r);	/* the struct dns_res it is the first member of */
}

/* ---- configuration and c-ares glue ---------------------------------- */

/* dns_conf_apply - copy conf into dns.conf with defaults and bounds */
static void
dns_conf_apply(const struct dns_conf *conf)
{
	struct dns_conf	*c = &dns.conf;

	if (conf != NULL)
		*c = *conf;
	c->servers = NULL;
	c->nservers = 0;
	if (c->timeout_ms == 0)
		c->timeout_ms = DEF_TIMEOUT_MS;
	if (c->tries == 0)
		c->tries = DEF_TRIES;
	if (c->tries > DNS_TRIES_MAX)
		c->tries = DNS_TRIES_MAX;
	if (c->cache_entries == 0)
		c->cache_entries = DEF_CACHE_ENTRIES;
	if (c->cache_bytes == 0)
		c->cache_bytes = DEF_CACHE_BYTES;
	if (c->max_ttl == 0)
		c->max_ttl = DEF_MAX_TTL;
	if (c->max_neg_ttl == 0)
		c->max_neg_ttl = DEF_MAX_NEG_TTL;
	dns.lifetime.tv_sec = c->timeout_ms / 1000;
	dns.lifetime.tv_usec = (c->timeout_ms % 1000) * 1000;
}

/* dns_set_servers - use the configured resolvers, not resolv.conf's */
static int
dns_set_servers(const struct dns_conf *conf)
{
	struct ares_addr_port_node	 node[DNS_SERVERS_MAX];
	const struct sockaddr_storage	*ss;
	size_t				 i, n;
	int				 port, rc;

	n = conf->nservers;
	if (n > DNS_SERVERS_MAX) {
		log_warnx("dns: %zu servers, using the first %d", n,
		    DNS_SERVERS_MAX);
		n = DNS_SERVERS_MAX;
	}
	memset(node, 0, sizeof(node));
	for (i = 0; i < n; i++) {
		ss = &conf->servers[i].ss;
		node[i].family = ss->ss_family;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ss;

			memcpy(&node[i].addr.addr4, &sin->sin_addr, 4);
			port = ntohs(sin->sin_port);
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ss;

			memcpy(&node[i].addr.addr6, &sin6->sin6_addr, 16);
			port = ntohs(sin6->sin6_port);
		} else {
			log_warnx("dns: server %s: not an IP address",
			    conf->servers[i].text);
			return -1;
		}
		node[i].udp_port = node[i].tcp_port = port != 0 ? port : 53;
		node[i].next = i + 1 < n ? &node[i + 1] : NULL;
	}
	if ((rc = ares_set_servers_ports(dns.channel, node)) != ARES_SUCCESS) {
		log_warnx("dns: ares_set_servers_ports: %s", ares_strerror(rc));
		return -1;
	}
	return 0;
}

/* dns_sock_configure - c-ares' sockets must not leak into children */
static int
dns_sock_configure(ares_socket_t fd, int type, void *arg)
{
	return fd_cloexec(fd) == -1 ? -1 : 0;
}

/*
 * dns_sock_state - c-ares wants fd watched for reading and/or writing,
 * or (neither) no longer: keep one persistent event per socket.
 */
static void
dns_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns_sock	*s;
	short		 what;

	TAILQ_FOREACH(s, &dns.socks, link)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s != NULL) {
			TAILQ_REMOVE(&dns.socks, s, link);
			event_free(s->ev);
			free(s);
		}
		return;
	}
	what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) |
	    EV_PERSIST;
	if (s != NULL && s->what == what)
		return;
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			goto fail;
		s->fd = fd;
		TAILQ_INSERT_TAIL(&dns.socks, s, link);
	} else
		event_free(s->ev);
	s->what = what;
	if ((s->ev = event_new(dns.base, fd, what, dns_sock_cb, s)) == NULL ||
	    event_add(s->ev, NULL) == -1) {
		TAILQ_REMOVE(&dns.socks, s, link);
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
		goto fail;
	}
	return;
fail:
	/* the queries on this socket end by c-ares' timeout */
	log_warnx("dns: cannot watch socket %d", fd);
}

/* dns_sock_cb - a watched socket is ready: let c-ares work on it */
static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	/* may free arg's struct dns_sock and its event: touch neither */
	ares_process_fd(dns.channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update();
}

/* dns_timer_update - wake up when c-ares next has to retransmit */
static void
dns_timer_update(void)
{
	struct timeval	 tv, *tvp;

	if (!dns.up)
		return;
	if ((tvp = ares_timeout(dns.channel, NULL, &tv)) == NULL)
		evtimer_del(dns.timer);
	else
		evtimer_add(dns.timer, tvp);
}

/* dns_timer_cb - c-ares' retransmission or timeout is due */
static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(dns.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update();
}

/* ---- queries -------------------------------------------------------- */

/* dns_query_new - a query of one or two RR types */
static struct dns_query *
dns_query_new(const char *name, size_t len, int type1, int type2,
    dns_cb cb, void *arg)
{
	struct dns_query	*q;
	size_t			 i;

	if (!dns.up)
		panic("dns_query: dns_init() not called");
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		log_warn("dns: query");
		return NULL;
	}
	q->cb = cb;
	q->arg = arg;
	q->nslots = q->nleft = type2 != 0 ? 2 : 1;
	q->slot[0].type = type1;
	q->slot[1].type = type2;
	if ((q->deadline = evtimer_new(dns.base, dns_deadline_cb, q)) ==
	    NULL) {
		log_warnx("dns: evtimer_new failed");
		free(q);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&dns.waiting, q, link);
	if (dns_name_normalize(name, len, q->name) == -1) {
		q->badname = 1;
		q->name[0] = '\0';
		q->nleft = 0;
		dns_query_ready(q);
		return q;
	}
	evtimer_add(q->deadline, &dns.lifetime);
	for (i = 0; i < q->nslots; i++) {
		q->slot[i].q = q;
		dns_slot_start(&q->slot[i]);
	}
	return q;
}

/*
 * dns_slot_start - answer a slot from the cache, or wait on the
 * pending entry of its (name, type), or send a new query.
 */
static void
dns_slot_start(struct dns_slot *s)
{
	struct dns_entry	*e;
	int64_t			 now;
	size_t			 nlen;

	now = dns_now_ms();
	e = dns_entry_find(s->type, s->q->name);
	if (e != NULL && !e->pending && e->expires <= now) {
		dns_entry_drop(e);
		e = NULL;
	}
	if (e != NULL && !e->pending) {
		TAILQ_REMOVE(&dns.lru, e, link);
		TAILQ_INSERT_TAIL(&dns.lru, e, link);
		dns_slot_finish(s, e->status, e->pkt, e->pktlen, 1,
		    (uint32_t)((e->expires - now) / 1000));
		return;
	}
	if (e != NULL) {
		TAILQ_INSERT_TAIL(&e->waiters, s, link);
		s->entry = e;
		return;
	}
	if (dns.npending >= DNS_PENDING_MAX) {
		if (!dns.busy_logged)	/* once per overload, not per query */
			log_warnx("dns: %d queries in flight, refusing more",
			    DNS_PENDING_MAX);
		dns.busy_logged = 1;
		dns_slot_finish(s, DNS_ARES_BUSY, NULL, 0, 0, 0);
		return;
	}
	if (dns.npending < DNS_PENDING_MAX / 2)
		dns.busy_logged = 0;
	nlen = strlen(s->q->name);
	if ((e = calloc(1, sizeof(*e) + nlen + 1)) == NULL) {
		log_warn("dns: entry");
		dns_slot_finish(s, ARES_ENOMEM, NULL, 0, 0, 0);
		return;
	}
	e->type = s->type;
	e->name = (char *)(e + 1);
	memcpy(e->name, s->q->name, nlen + 1);
	e->pending = 1;
	TAILQ_INIT(&e->waiters);
	if (tsearch(e, &dns.tree, dns_entry_cmp) == NULL) {
		log_warn("dns: tsearch");
		free(e);
		dns_slot_finish(s, ARES_ENOMEM, NULL, 0, 0, 0);
		return;
	}
	TAILQ_INSERT_TAIL(&dns.pending, e, link);
	dns.npending++;
	TAILQ_INSERT_TAIL(&e->waiters, s, link);
	s->entry = e;
	/* may call dns_ares_cb() at once (e.g. ENOMEM): e is gone then */
	ares_query(dns.channel, e->name, DNS_CLASS_IN, e->type, dns_ares_cb,
	    e);
	dns_timer_update();
}

/*
 * dns_slot_finish - a slot has its answer (status, a copy of pkt);
 * the query is ready when it was the last slot.
 */
static void
dns_slot_finish(struct dns_slot *s, int status, const unsigned char *pkt,
    size_t len, int cached, uint32_t ttl_left)
{
	if (s->done)
		panic("dns_slot_finish: slot done twice");
	s->done = 1;
	s->status = status;
	s->cached = cached;
	s->ttl_left = ttl_left;
	if (pkt != NULL && len > 0) {
		if ((s->pkt = malloc(len)) == NULL) {
			log_warn("dns: answer copy");
			s->status = ARES_ENOMEM;
		} else {
			memcpy(s->pkt, pkt, len);
			s->pktlen = len;
		}
	}
	if (--s->q->nleft == 0)
		dns_query_ready(s->q);
}

/* dns_query_ready - queue q for delivery from the loop */
static void
dns_query_ready(struct dns_query *q)
{
	evtimer_del(q->deadline);
	TAILQ_REMOVE(&dns.waiting, q, link);
	TAILQ_INSERT_TAIL(&dns.ready, q, link);
	q->ready = 1;
	dns.nready++;
	event_active(dns.ready_ev, EV_TIMEOUT, 0);
}

/*
 * dns_ready_cb - deliver ready queries.  Only those ready on entry, so
 * that callbacks which ask again (cache hits) cannot keep us here.
 */
static void
dns_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query	*q;
	struct dns_result	*r;
	size_t			 n = dns.nready;

	while (n-- > 0 && (q = TAILQ_FIRST(&dns.ready)) != NULL) {
		TAILQ_REMOVE(&dns.ready, q, link);
		dns.nready--;
		r = dns_query_result(q);
		q->cb(r, q->arg);
		if (r != &dns_nomem)
			dns_result_free(r);
		dns_query_free(q);
		if (!dns.up)	/* the callback called dns_shutdown() */
			return;
	}
	if (!TAILQ_EMPTY(&dns.ready))
		event_active(dns.ready_ev, EV_TIMEOUT, 0);
}

/* dns_deadline_cb - the lookup took too long: fail what is missing */
static void
dns_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query	*q = arg;
	struct dns_slot		*s;
	size_t			 i, n = q->nslots;

	for (i = 0; i < n; i++) {
		s = &q->slot[i];
		if (s->done)
			continue;
		if (s->entry != NULL) {
			TAILQ_REMOVE(&s->entry->waiters, s, link);
			s->entry = NULL;
		}
		dns_slot_finish(s, ARES_ETIMEOUT, NULL, 0, 0, 0);
	}
}

/* dns_query_result - parse the slots' answers into the result */
static struct dns_result *
dns_query_result(struct dns_query *q)
{
	struct dns_res		*res;
	struct dns_result	*r[2] = { NULL, NULL };
	struct dns_slot		*s;
	size_t			 i;

	if (q->badname) {
		res = dns_res_new("", DNS_BADNAME, "invalid domain name");
		return res == NULL ? &dns_nomem : &res->r;
	}
	for (i = 0; i < q->nslots; i++) {
		s = &q->slot[i];
		r[i] = dns_result_parse(s->type, q->name, s->status, s->pkt,
		    s->pktlen);
		if (r[i] == NULL) {
			dns_result_free(r[0]);
			return &dns_nomem;
		}
		if (s->cached) {
			r[i]->cached = 1;
			if (r[i]->ttl > s->ttl_left)
				r[i]->ttl = s->ttl_left;
		}
	}
	if (q->nslots == 1)
		return r[0];
	/* slot 0 is AAAA, slot 1 is A */
	if ((r[0] = dns_result_merge(r[1], r[0])) == NULL)
		return &dns_nomem;
	return r[0];
}

/* dns_query_free - free a query on no list */
static void
dns_query_free(struct dns_query *q)
{
	size_t	 i;

	event_free(q->deadline);
	for (i = 0; i < q->nslots; i++)
		free(q->slot[i].pkt);
	free(q);
}

/*
 * dns_ares_cb - c-ares is done with an entry's query: hand the answer
 * to every waiting slot, then cache it or free the entry.
 */
static void
dns_ares_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_entry	*e = arg;
	struct dns_slot		*s;
	size_t			 len;

	len = abuf != NULL && alen > 0 ? (size_t)alen : 0;
	TAILQ_REMOVE(&dns.pending, e, link);
	dns.npending--;
	e->pending = 0;
	if (!dns.up) {		/* ares_destroy() from dns_shutdown() */
		dns_entry_free(e);
		return;
	}
	while ((s = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, s, link);
		s->entry = NULL;
		dns_slot_finish(s, status, abuf, len, 0, 0);
	}
	dns_entry_cache(e, status, abuf, len);
}

/* ---- cache ---------------------------------------------------------- */

static int
dns_entry_cmp(const void *a, const void *b)
{
	const struct dns_entry	*x = a, *y = b;

	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return strcmp(x->name, y->name);
}

static struct dns_entry *
dns_entry_find(int type, const char *name)
{
	struct dns_entry	 key;
	void			*node;

	key.type = type;
	key.name = (char *)name;
	node = tfind(&key, &dns.tree, dns_entry_cmp);
	return node == NULL ? NULL : *(struct dns_entry **)node;
}

/*
 * dns_entry_cache - keep a finished entry's answer for its TTL, or
 * free the entry.  Cached: answers that parse (a malformed one would
 * only fail again), NODATA and NXDOMAIN with an SOA (RFC 2308 5).
 * Not cached: errors and timeouts, TTL 0, oversized answers.
 */
static void
dns_entry_cache(struct dns_entry *e, int status, const unsigned char *pkt,
    size_t len)
{
	struct dns_result	*r;
	uint32_t		 ttl = 0, max;

	if (len > 0 && len <= DNS_CACHE_PKT_MAX && (status == ARES_SUCCESS ||
	    status == ARES_ENODATA || status == ARES_ENOTFOUND)) {
		r = dns_result_parse(e->type, e->name, status, pkt, len);
		if (r != NULL && r->status != DNS_TEMPFAIL) {
			max = r->status == DNS_NODATA ||
			    r->status == DNS_NXDOMAIN ? dns.conf.max_neg_ttl :
			    dns.conf.max_ttl;
			ttl = r->ttl < max ? r->ttl : max;
		}
		dns_result_free(r);
	}
	if (ttl == 0 || (e->pkt = malloc(len)) == NULL) {
		dns_entry_free(e);
		return;
	}
	memcpy(e->pkt, pkt, len);
	e->pktlen = len;
	e->status = status;
	e->expires = dns_now_ms() + (int64_t)ttl * 1000;
	e->bytes = sizeof(*e) + strlen(e->name) + 1 + len;
	TAILQ_INSERT_TAIL(&dns.lru, e, link);
	dns.ncached++;
	dns.cache_bytes += e->bytes;
	while (dns.ncached > dns.conf.cache_entries ||
	    dns.cache_bytes > dns.conf.cache_bytes)
		dns_entry_drop(TAILQ_FIRST(&dns.lru));
}

/* dns_entry_drop - remove a cached entry */
static void
dns_entry_drop(struct dns_entry *e)
{
	if (e->pending)
		panic("dns_entry_drop: entry pending");
	TAILQ_REMOVE(&dns.lru, e, link);
	dns.ncached--;
	dns.cache_bytes -= e->bytes;
	dns_entry_free(e);
}

/* dns_entry_free - take an entry on no list out of the tree, free it */
static void
dns_entry_free(struct dns_entry *e)
{
	if (tdelete(e, &dns.tree, dns_entry_cmp) == NULL)
		panic("dns_entry_free: entry not in the tree");
	free(e->pkt);
	free(e);
}

static int64_t
dns_now_ms(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- answers -------------------------------------------------------- */

/* dns_res_new - an empty result; NULL when out of memory */
static struct dns_res *
dns_res_new(const char *name, enum dns_status st, const char *why)
{
	struct dns_res	*res;
	size_t		 n = strlen(name);

	if (n > DNS_NAME_MAX)
		panic("dns_res_new: name too long");
	if ((res = calloc(1, sizeof(*res))) == NULL) {
		log_warn("dns: result");
		return NULL;
	}
	memcpy(res->name, name, n + 1);
	res->r.name = res->name;
	res->r.status = st;
	res->r.why = why;
	return res;
}

/*
 * dns_parse_status - map a c-ares status: 0 if there is an answer to
 * parse or a negative one (r->status set), -1 if r is a TEMPFAIL.
 */
static int
dns_parse_status(struct dns_result *r, int status)
{
	switch (status) {
	case ARES_SUCCESS:
		r->status = DNS_OK;
		return 0;
	case ARES_ENODATA:
		r->status = DNS_NODATA;
		return 0;
	case ARES_ENOTFOUND:
		r->status = DNS_NXDOMAIN;
		return 0;
	default:
		dns_fail(r, dns_ares_why(status));
		return -1;
	}
}

static const char *
dns_ares_why(int status)
{
	switch (status) {
	case DNS_ARES_BUSY:
		return "too many queries";
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_EFORMERR:
		return "FORMERR";
	case ARES_ENOTIMP:
		return "NOTIMP";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ECONNREFUSED:
		/*
		 * c-ares 1.18 moves on to the next server after SERVFAIL or
		 * REFUSED (and after ICMP unreachable); when none is left it
		 * reports this code, whatever the servers said.
		 */
		return "SERVFAIL, REFUSED or unreachable";
	case ARES_EBADRESP:
		return "malformed answer";
	case ARES_ENOMEM:
		return "out of memory";
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return "cancelled";
	default:
		return ares_strerror(status);
	}
}

/* dns_fail - turn r into a TEMPFAIL, dropping what it holds */
static void
dns_fail(struct dns_result *r, const char *why)
{
	size_t	 i;

	for (i = 0; i < r->ntxt; i++)
		free((void *)r->txt[i].data);
	free(r->txt);
	free(r->mx);
	free(r->addr);
	free(r->ptr);
	r->txt = NULL;
	r->mx = NULL;
	r->addr = NULL;
	r->ptr = NULL;
	r->ntxt = r->nmx = r->naddr = r->nptr = 0;
	r->status = DNS_TEMPFAIL;
	r->why = why;
	r->ttl = 0;
	r->truncated = 0;
}

/*
 * dns_reply_status - the status of an ares_parse_*_reply() call: 0 if
 * there is an answer to read, -1 if r is done (NODATA when there is
 * none or it is empty, TEMPFAIL when it cannot be parsed).
 */
static int
dns_reply_status(struct dns_result *r, int rc, int empty)
{
	if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && empty)) {
		r->status = DNS_NODATA;
		return -1;
	}
	if (rc != ARES_SUCCESS) {
		dns_fail(r, rc == ARES_ENOMEM ? "out of memory" :
		    "malformed answer");
		return -1;
	}
	return 0;
}

/*
 * dns_parse_mx - MX answer: hosts by preference, equal preferences in
 * random order (RFC 5321 5.1), duplicates and invalid names dropped,
 * at most DNS_MX_MAX.  "MX 0 ." alone is a null MX (RFC 7505 3); mixed
 * with real hosts (which RFC 7505 3 forbids) it is ignored.  No MX RR
 * in the answer (a CNAME only) is NODATA.
 */
static void
dns_parse_mx(struct dns_result *r, const unsigned char *pkt, size_t len)
{
	struct ares_mx_reply	*head = NULL, *mx;
	struct dns_mxsort	*v = NULL;
	size_t			 n = 0, nnull = 0, nbad = 0, i, j;
	char			 host[DNS_NAME_MAX + 1];
	int			 rc;

	rc = ares_parse_mx_reply(pkt, (int)len, &head);
	if (dns_reply_status(r, rc, head == NULL) == -1)
		goto done;
	for (mx = head; mx != NULL; mx = mx->next)
		n++;
	if ((v = calloc(n, sizeof(*v))) == NULL ||
	    (r->mx = calloc(n < DNS_MX_MAX ? n : DNS_MX_MAX,
	    sizeof(*r->mx))) == NULL) {
		dns_fail(r, "out of memory");
		goto done;
	}
	for (n = 0, mx = head; mx != NULL; mx = mx->next) {
		if (mx->host[0] == '\0') {
			nnull++;
			continue;
		}
		v[n].pref = mx->priority;
		v[n].key = arc4random();
		v[n].host = mx->host;
		n++;
	}
	if (n == 0 && nnull > 0) {
		r->status = DNS_NULL_MX;
		goto done;
	}
	qsort(v, n, sizeof(*v), dns_mx_cmp);
	for (i = 0; i < n; i++) {
		if (dns_name_normalize(v[i].host, strlen(v[i].host),
		    host) == -1) {
			nbad++;
			continue;
		}
		for (j = 0; j < r->nmx; j++)
			if (strcmp(r->mx[j].host, host) == 0)
				break;
		if (j < r->nmx)
			continue;	/* listed with a better preference */
		if (r->nmx == DNS_MX_MAX) {
			r->truncated = 1;
			break;
		}
		r->mx[r->nmx].pref = v[i].pref;
		memcpy(r->mx[r->nmx].host, host, sizeof(host));
		r->nmx++;
	}
	if (r->nmx == 0)
		dns_fail(r, "no valid MX host name");
	else if (nbad > 0)
		r->truncated = 1;
done:
	free(v);
	if (head != NULL)
		ares_free_data(head);
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mxsort	*x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return 0;
}

/* dns_parse_addr - A or AAAA answer, CNAMEs followed by c-ares */
static void
dns_parse_addr(struct dns_result *r, int type, const unsigned char *pkt,
    size_t len)
{
	struct ares_addrttl	 a4[DNS_ADDR_MAX];
	struct ares_addr6ttl	 a6[DNS_ADDR_MAX];
	int			 i, n = DNS_ADDR_MAX, rc;

	if (type == DNS_T_A)
		rc = ares_parse_a_reply(pkt, (int)len, NULL, a4, &n);
	else
		rc = ares_parse_aaaa_reply(pkt, (int)len, NULL, a6, &n);
	if (dns_reply_status(r, rc, 0) == -1)
		return;
	if (n <= 0 || n > DNS_ADDR_MAX) {
		r->status = DNS_NODATA;
		return;
	}
	if ((r->addr = calloc((size_t)n, sizeof(*r->addr))) == NULL) {
		dns_fail(r, "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		if (type == DNS_T_A) {
			r->addr[i].family = AF_INET;
			memcpy(r->addr[i].addr, &a4[i].ipaddr, 4);
		} else {
			r->addr[i].family = AF_INET6;
			memcpy(r->addr[i].addr, &a6[i].ip6addr, 16);
		}
	}
	r->naddr = (size_t)n;
}

/* dns_parse_ptr - PTR answer: valid, distinct names, DNS_PTR_MAX */
static void
dns_parse_ptr(struct dns_result *r, const unsigned char *pkt, size_t len)
{
	struct hostent	*he = NULL;
	struct in_addr	 any;
	size_t		 i;
	int		 rc;

	/* the address only ends up in he->h_addr_list: any will do */
	memset(&any, 0, sizeof(any));
	rc = ares_parse_ptr_reply(pkt, (int)len, &any, sizeof(any), AF_INET,
	    &he);
	if (dns_reply_status(r, rc, 0) == -1)
		goto done;
	if ((r->ptr = calloc(DNS_PTR_MAX, sizeof(*r->ptr))) == NULL) {
		dns_fail(r, "out of memory");
		goto done;
	}
	/*
	 * h_aliases holds the PTR names in answer order and h_name one of
	 * them (the last): the aliases, then h_name should it be missing.
	 */
	for (i = 0; he->h_aliases != NULL && he->h_aliases[i] != NULL; i++)
		dns_ptr_add(r, he->h_aliases[i]);
	if (he->h_name != NULL)
		dns_ptr_add(r, he->h_name);
	if (r->nptr == 0)
		dns_fail(r, "no valid PTR name");
done:
	if (he != NULL)
		ares_free_hostent(he);
}

/* dns_ptr_add - add a PTR name unless invalid, known or over the bound */
static void
dns_ptr_add(struct dns_result *r, const char *name)
{
	char	 host[DNS_NAME_MAX + 1];
	size_t	 j;

	if (dns_name_normalize(name, strlen(name), host) == -1) {
		r->truncated = 1;
		return;
	}
	for (j = 0; j < r->nptr; j++)
		if (strcmp(r->ptr[j].name, host) == 0)
			return;
	if (r->nptr == DNS_PTR_MAX) {
		r->truncated = 1;
		return;
	}
	memcpy(r->ptr[r->nptr++].name, host, sizeof(host));
}

/*
 * dns_parse_txt - TXT answer: each record's character-strings joined
 * (RFC 7208 3.3); records over DNS_TXT_LEN_MAX or beyond DNS_TXT_MAX
 * are left out and the result marked truncated.
 */
static void
dns_parse_txt(struct dns_result *r, const unsigned char *pkt, size_t len)
{
	struct ares_txt_ext	*head = NULL, *t, *u;
	unsigned char		*d;
	size_t			 rlen;
	int			 rc;

	rc = ares_parse_txt_reply_ext(pkt, (int)len, &head);
	/* c-ares 1.18 says SUCCESS when no RR was of class IN, type TXT */
	if (dns_reply_status(r, rc, head == NULL) == -1)
		goto done;
	if ((r->txt = calloc(DNS_TXT_MAX, sizeof(*r->txt))) == NULL) {
		dns_fail(r, "out of memory");
		goto done;
	}
	for (t = head; t != NULL; t = u) {
		/* one record: t and the chunks after it up to the next start */
		rlen = t->length;
		for (u = t->next; u != NULL && !u->record_start; u = u->next)
			rlen += u->length;
		if (rlen > DNS_TXT_LEN_MAX || r->ntxt == DNS_TXT_MAX) {
			r->truncated = 1;
			continue;
		}
		if ((d = malloc(rlen + 1)) == NULL) {
			dns_fail(r, "out of memory");
			goto done;
		}
		r->txt[r->ntxt].data = d;
		r->txt[r->ntxt].len = rlen;
		r->ntxt++;
		for (; t != u; t = t->next) {
			memcpy(d, t->txt, t->length);
			d += t->length;
		}
		*d = '\0';
	}
	if (r->ntxt == 0 && r->truncated)
		dns_fail(r, "TXT records too long");
done:
	if (head != NULL)
		ares_free_data(head);
}

/* ---- wire helpers --------------------------------------------------- */

/*
 * dns_skip_name - step *off over a (possibly compressed) name, RFC 1035
 * 4.1.4: labels up to a zero octet or a pointer.  -1 if it runs past
 * len or uses the reserved label types.
 */
static int
dns_skip_name(const unsigned char *p, size_t len, size_t *off)
{
	size_t	 o = *off;
	unsigned c;

	for (;;) {
		if (o >= len)
			return -1;
		c = p[o];
		if ((c & 0xc0) == 0xc0) {
			if (len - o < 2)
				return -1;
			*off = o + 2;
			return 0;
		}
		if (c & 0xc0)
			return -1;
		o += 1 + c;
		if (c == 0) {
			*off = o;
			return 0;
		}
	}
}

static uint32_t
dns_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}
