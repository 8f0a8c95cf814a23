/*
 * dns.h - asynchronous DNS lookups inside the caller's libevent loop.
 *
 * c-ares does the protocol (UDP, TCP on truncation, retries, several
 * servers); this module adds what an MTA needs on top: MX lists sorted
 * by preference with equal preferences shuffled (RFC 5321 5.1), the
 * null MX of RFC 7505, A and AAAA together, PTR and TXT, a bounded cache
 * honouring TTLs with negative caching (RFC 2308), coalescing of equal
 * queries in flight, a hard time bound per lookup, and cancellation.
 *
 * One resolver per process: dns_init() once (before chroot, it reads
 * /etc/resolv.conf unless servers are given), then dns_query_*().  The
 * callback is always called from the event loop, never from within
 * dns_query_*() or dns_cancel(), exactly once unless the query is
 * cancelled first.  The handle is invalid once the callback has been
 * entered; a caller that goes away with a query pending must
 * dns_cancel() it (the callback is then never called).  The result and
 * everything it points to belong to the module and live only during
 * the callback.
 *
 * Names are (ptr, len) slices, with or without one trailing dot, any
 * case; results carry them lower case without the trailing dot.
 */
#ifndef MOAT_DNS_H
#define MOAT_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct listen_addr;

#define DNS_NAME_MAX	253	/* text, no trailing dot (RFC 1035 2.3.4) */
#define DNS_MX_MAX	32	/* MX hosts kept, best preferences first */
#define DNS_ADDR_MAX	32	/* addresses kept per family */
#define DNS_PTR_MAX	16	/* PTR names kept */
#define DNS_TXT_MAX	32	/* TXT records kept */
#define DNS_TXT_LEN_MAX	4096	/* longest TXT record kept (strings joined) */
#define DNS_SERVERS_MAX	8	/* resolvers used from the config */

enum dns_status {
	DNS_OK,		/* records found */
	DNS_NODATA,	/* the name exists without records of the type;
			   MX: deliver to the name itself (implicit MX,
			   RFC 5321 5.1) */
	DNS_NULL_MX,	/* "MX 0 ." alone: no mail accepted (RFC 7505) */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, timeout, malformed answer,
			   resource limit: try again later */
	DNS_BADNAME	/* the name asked for is not a valid domain name;
			   permanent */
};

/* address families of dns_query_addr() */
#define DNS_INET	0x01
#define DNS_INET6	0x02

struct dns_mx {
	unsigned	 pref;
	char		 host[DNS_NAME_MAX + 1];
};

struct dns_addr {
	int		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 addr[16];	/* network order; 4 used for AF_INET */
};

struct dns_host {
	char		 name[DNS_NAME_MAX + 1];
};

/* one TXT record, its character-strings joined (RFC 7208 3.3) */
struct dns_txt {
	const unsigned char *data;	/* NUL after len, may hold NULs */
	size_t		 len;
};

struct dns_result {
	enum dns_status	 status;
	const char	*name;		/* as looked up: lower case, no dot;
					   "" for DNS_BADNAME */
	const char	*why;		/* short reason for logs, e.g.
					   "timeout", "SERVFAIL"; "" if OK */
	uint32_t	 ttl;		/* seconds the answer stays valid */
	int		 cached;	/* answered from the cache alone */
	int		 truncated;	/* records left out by the bounds */

	struct dns_mx	*mx;		/* dns_query_mx: preference order */
	size_t		 nmx;
	struct dns_addr	*addr;		/* dns_query_addr: AAAA then A */
	size_t		 naddr;
	struct dns_host	*ptr;		/* dns_query_ptr */
	size_t		 nptr;
	struct dns_txt	*txt;		/* dns_query_txt */
	size_t		 ntxt;
};

typedef void	(*dns_cb)(const struct dns_result *, void *arg);

struct dns_conf {
	const struct listen_addr *servers;	/* NULL: /etc/resolv.conf */
	size_t		 nservers;		/* at most DNS_SERVERS_MAX */
	unsigned	 timeout_ms;	/* hard bound of one lookup, after
					   which it is DNS_TEMPFAIL "timeout";
					   0 = 10000 */
	unsigned	 tries;		/* rounds over the servers, each
					   waiting twice the one before;
					   0 = 2, at most 5 */
	size_t		 cache_entries;	/* 0 = 10000 */
	size_t		 cache_bytes;	/* 0 = 8 MiB */
	uint32_t	 max_ttl;	/* cap of positive TTLs; 0 = 86400 */
	uint32_t	 max_neg_ttl;	/* cap of negative TTLs; 0 = 900 */
};

struct dns_query;

/*
 * dns_init - start the resolver on base.  Reads /etc/resolv.conf now
 * when conf->servers is NULL, so call it before chroot.  0, or -1 with
 * the reason logged.
 */
int	dns_init(struct event_base *, const struct dns_conf *);
/* dns_shutdown - drop every query (no callbacks) and the cache */
void	dns_shutdown(void);

/* dns_query_mx - MX hosts of domain; NULL only when out of memory */
struct dns_query *dns_query_mx(const char *domain, size_t len, dns_cb,
	    void *arg);
/* dns_query_addr - A and/or AAAA (families: DNS_INET | DNS_INET6) */
struct dns_query *dns_query_addr(const char *host, size_t len,
	    int families, dns_cb, void *arg);
/*
 * dns_query_ptr - names of an AF_INET or AF_INET6 address (an
 * IPv4-mapped IPv6 address is looked up as the IPv4 address)
 */
struct dns_query *dns_query_ptr(const struct sockaddr *, dns_cb,
	    void *arg);
/* dns_query_txt - TXT records of name (SPF, DNSBL reasons) */
struct dns_query *dns_query_txt(const char *name, size_t len, dns_cb,
	    void *arg);
/* dns_cancel - forget a pending query; its callback is not called */
void	dns_cancel(struct dns_query *);

const char *dns_status_str(enum dns_status);
/* dns_addr_sockaddr - a dns_addr with port as a sockaddr; its length */
socklen_t dns_addr_sockaddr(const struct dns_addr *, unsigned port,
	    struct sockaddr_storage *);

/*
 * Building blocks, exported for tests/unit/test_dns.c and the fuzzer
 * (tests/fuzz/fuzz_dns.c); they need no dns_init().
 */
#define DNS_T_A		1
#define DNS_T_PTR	12
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28

/*
 * dns_name_ldh - is (p, len) a domain name of LDH and '_' labels of
 * 1-63 octets?  No trailing dot and no bound on len; 1 or 0.
 */
int	dns_name_ldh(const char *, size_t);
/*
 * dns_name_normalize - check a domain name (LDH and '_' labels of 1-63
 * octets, at most DNS_NAME_MAX) and write it lower case, without the
 * trailing dot, NUL-terminated, to out (DNS_NAME_MAX + 1 octets).
 * Returns its length or -1.
 */
int	dns_name_normalize(const char *, size_t, char *out);
/* dns_ptr_name - the in-addr.arpa / ip6.arpa name of an address; 0/-1 */
int	dns_ptr_name(const struct sockaddr *, char *out);
/* what dns_packet_scan() finds in a response */
struct dns_scan {
	uint32_t	 ttl;		/* least TTL of the answer RRs; 0 if
					   none */
	uint32_t	 negttl;	/* min(SOA TTL, SOA MINIMUM) of the
					   authority section (RFC 2308 5);
					   UINT32_MAX if there is no SOA */
	size_t		 nrr;		/* answer RRs of the type asked for */
};
/* dns_packet_scan - walk a response's RR headers; 0, or -1 if malformed */
int	dns_packet_scan(const unsigned char *, size_t, int type,
	    struct dns_scan *);
/*
 * dns_result_parse - the result of one query of type for name from a
 * c-ares status and response (as given to an ares_callback; pkt may be
 * NULL).  NULL when out of memory.  Free with dns_result_free().
 */
struct dns_result *dns_result_parse(int type, const char *name,
	    int ares_status, const unsigned char *pkt, size_t len);
/* dns_result_merge - A and AAAA results into one (both are freed) */
struct dns_result *dns_result_merge(struct dns_result *a4,
	    struct dns_result *a6);
void	dns_result_free(struct dns_result *);

#endif
