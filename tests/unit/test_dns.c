/*
 * test_dns.c - table-driven tests of the answer handling of
 * src/common/dns.c, without a network: name checks, reverse names, the
 * RR header walk, dns_result_parse() on packets built here (MX order,
 * null MX, duplicates, bounds, negative TTLs from the SOA, CNAMEs,
 * TXT joining, PTR), the shuffle of equal MX preferences, and the
 * A+AAAA merge.  The resolver on a real server is tested by
 * tests/integration/test_dns.py.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "lib/buf.h"
#include "common/dns.h"

#define PKT_MAX		16384
#define LABEL63		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"	/* 63 */

/* a response under construction */
struct pkt {
	unsigned char	 b[PKT_MAX];
	size_t		 len;
};

struct name_case {
	const char	*in;
	size_t		 len;	/* 0: strlen(in) */
	const char	*out;	/* NULL: refused */
};

/*
 * A response case.  RRs are "OWNER TYPE TTL DATA" separated by ';':
 * MX DATA "PREF HOST" (HOST "." for null MX), A and AAAA an address,
 * CNAME and PTR a name, TXT strings separated by '|', SOA "MINIMUM".
 * expect is fmt_result()'s rendering.
 */
struct parse_case {
	const char	*what;
	int		 type;
	int		 rcode;
	const char	*answers;
	const char	*authority;
	const char	*expect;
};

static int	 passed, failed;

static void	 check_str(const char *, const char *, const char *);
static void	 test_names(void);
static void	 test_ptr_names(void);
static void	 test_parse(void);
static void	 test_cut(void);
static void	 test_big(void);
static void	 test_shuffle(void);
static void	 test_merge(void);
static void	 test_sockaddr(void);
static void	 build(struct pkt *, int, int, const char *, const char *);
static int	 add_rrs(struct pkt *, const char *);
static void	 add_rr(struct pkt *, char *);
static void	 put8(struct pkt *, unsigned);
static void	 put16(struct pkt *, unsigned);
static void	 put32(struct pkt *, uint32_t);
static void	 put_name(struct pkt *, const char *);
static int	 status_of(const struct pkt *);
static struct dns_result *parse(int, const struct pkt *);
static void	 fmt_result(const struct dns_result *, struct buf *);

static const struct name_case names[] = {
	{ "Example.COM.", 0, "example.com" },
	{ "mx1.example.test", 0, "mx1.example.test" },
	{ "_spf.example.test", 0, "_spf.example.test" },
	{ "xn--bcher-kva.test", 0, "xn--bcher-kva.test" },
	{ "a", 0, "a" },
	{ "", 0, NULL },
	{ ".", 0, NULL },
	{ "a..b", 0, NULL },
	{ ".a", 0, NULL },
	{ "a.b..", 0, NULL },
	{ "a b.test", 0, NULL },
	{ "a\\.b.test", 0, NULL },
	{ "b\xc3\xbc" "cher.test", 0, NULL },
	{ "a\0b.test", 8, NULL },
	{ "[192.0.2.1]", 0, NULL },
	{ LABEL63 ".t", 0, LABEL63 ".t" },	/* RFC 1035 2.3.4 */
	{ LABEL63 "a.t", 0, NULL },
};

static const struct parse_case cases[] = {
	{ "MX sorted by preference", DNS_T_MX, 0,
	  "q.test MX 300 20 b.test; q.test MX 300 10 a.test;"
	  "q.test MX 300 30 c.test", NULL,
	  "OK ttl=300 mx=10:a.test,20:b.test,30:c.test" },
	{ "MX least TTL, names lower case without dot", DNS_T_MX, 0,
	  "q.test MX 300 10 A.Test.; q.test MX 60 20 b.test", NULL,
	  "OK ttl=60 mx=10:a.test,20:b.test" },
	{ "MX duplicate host keeps the best preference", DNS_T_MX, 0,
	  "q.test MX 300 20 a.test; q.test MX 300 10 A.TEST;"
	  "q.test MX 300 15 b.test", NULL,
	  "OK ttl=300 mx=10:a.test,15:b.test" },
	{ "null MX (RFC 7505)", DNS_T_MX, 0, "q.test MX 300 0 .", NULL,
	  "NULL_MX ttl=300" },
	{ "null MX mixed with a host: host used", DNS_T_MX, 0,
	  "q.test MX 300 0 .; q.test MX 300 10 a.test", NULL,
	  "OK ttl=300 mx=10:a.test" },
	{ "MX NODATA: SOA MINIMUM below its TTL", DNS_T_MX, 0, NULL,
	  "q.test SOA 600 120", "NODATA ttl=120" },
	{ "MX NXDOMAIN: SOA TTL below MINIMUM", DNS_T_MX, 3, NULL,
	  "q.test SOA 60 300", "NXDOMAIN ttl=60" },
	{ "NXDOMAIN without SOA: not cacheable", DNS_T_MX, 3, NULL, NULL,
	  "NXDOMAIN ttl=0" },
	{ "SERVFAIL", DNS_T_MX, 2, NULL, NULL, "TEMPFAIL why=SERVFAIL" },
	{ "REFUSED", DNS_T_A, 5, NULL, NULL, "TEMPFAIL why=REFUSED" },
	{ "MX answer holding a CNAME only: SOA TTL", DNS_T_MX, 0,
	  "q.test CNAME 300 r.test", "r.test SOA 600 120", "NODATA ttl=120" },
	{ "MX TTL with the top bit set is 0", DNS_T_MX, 0,
	  "q.test MX 2147483648 10 a.test", NULL, "OK ttl=0 mx=10:a.test" },
	{ "A records", DNS_T_A, 0,
	  "q.test A 300 192.0.2.1; q.test A 200 192.0.2.2", NULL,
	  "OK ttl=200 addr=192.0.2.1,192.0.2.2" },
	{ "A through a CNAME", DNS_T_A, 0,
	  "q.test CNAME 30 r.test; r.test A 300 192.0.2.7", NULL,
	  "OK ttl=30 addr=192.0.2.7" },
	{ "AAAA records", DNS_T_AAAA, 0, "q.test AAAA 300 2001:db8::1",
	  NULL, "OK ttl=300 addr=2001:db8::1" },
	{ "A asked, only AAAA in the answer", DNS_T_A, 0,
	  "q.test AAAA 300 2001:db8::1", NULL, "NODATA ttl=0" },
	{ "TXT strings joined, records apart", DNS_T_TXT, 0,
	  "q.test TXT 300 v=spf1 |-all; q.test TXT 300 other", NULL,
	  "OK ttl=300 txt=v=spf1 -all|other" },
	{ "TXT empty string", DNS_T_TXT, 0, "q.test TXT 300 ", NULL,
	  "OK ttl=300 txt=" },
	{ "PTR names", DNS_T_PTR, 0,
	  "q.test PTR 300 Mail.Example.Test.; q.test PTR 300 mx.example.test",
	  NULL, "OK ttl=300 ptr=mail.example.test,mx.example.test" },
	{ "PTR duplicate names", DNS_T_PTR, 0,
	  "q.test PTR 300 a.test; q.test PTR 300 A.test", NULL,
	  "OK ttl=300 ptr=a.test" },
};

int
main(void)
{
	test_names();
	test_ptr_names();
	test_parse();
	test_cut();
	test_big();
	test_shuffle();
	test_merge();
	test_sockaddr();
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0;
}

static void
check_str(const char *what, const char *got, const char *want)
{
	if (strcmp(got, want) == 0) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s:\n  got  \"%s\"\n  want \"%s\"\n", what, got, want);
}

static void
test_names(void)
{
	char	 out[DNS_NAME_MAX + 1], big[300];
	size_t	 i;
	int	 n;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = dns_name_normalize(names[i].in, names[i].len != 0 ?
		    names[i].len : strlen(names[i].in), out);
		check_str(names[i].in, n < 0 ? "(refused)" : out,
		    names[i].out != NULL ? names[i].out : "(refused)");
	}
	/* 253 octets is the most, 254 too many (RFC 1035 2.3.4) */
	memset(big, 'a', sizeof(big));
	for (i = 63; i < sizeof(big); i += 64)
		big[i] = '.';
	n = dns_name_normalize(big, 253, out);
	check_str("253 octets", n == 253 ? "ok" : "refused", "ok");
	n = dns_name_normalize(big, 254, out);
	check_str("254 octets", n < 0 ? "refused" : "ok", "refused");
	big[253] = '.';
	n = dns_name_normalize(big, 254, out);
	check_str("253 octets and a dot", n == 253 ? "ok" : "refused", "ok");
}

static void
test_ptr_names(void)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	char			 out[DNS_NAME_MAX + 1];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	dns_ptr_name((struct sockaddr *)&sin, out);
	check_str("ptr v4", out, "1.2.0.192.in-addr.arpa");
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	dns_ptr_name((struct sockaddr *)&sin6, out);
	check_str("ptr v6", out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6.sin6_addr);
	dns_ptr_name((struct sockaddr *)&sin6, out);
	check_str("ptr v4-mapped", out, "7.100.51.198.in-addr.arpa");
}

static void
test_parse(void)
{
	struct pkt		 p;
	struct dns_result	*r;
	struct buf		 b;
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		build(&p, cases[i].type, cases[i].rcode, cases[i].answers,
		    cases[i].authority);
		r = parse(cases[i].type, &p);
		buf_init(&b, 0);
		fmt_result(r, &b);
		check_str(cases[i].what, b.data, cases[i].expect);
		buf_free(&b);
		dns_result_free(r);
	}
}

/* test_cut - every prefix of a good answer parses without harm */
static void
test_cut(void)
{
	struct pkt		 p;
	struct dns_result	*r;
	struct dns_scan		 sc;
	size_t			 full;
	int			 bad = 0;

	build(&p, DNS_T_MX, 0, "q.test MX 300 10 a.test; q.test MX 300 20 "
	    "b.test", "q.test SOA 60 60");
	for (full = p.len; p.len > 0; p.len--) {
		r = parse(DNS_T_MX, &p);
		if (p.len < full && r->status == DNS_OK && r->nmx == 2 &&
		    dns_packet_scan(p.b, p.len, DNS_T_MX, &sc) == 0)
			bad++;	/* an answer cut short cannot be whole */
		dns_result_free(r);
	}
	check_str("cut answers", bad == 0 ? "ok" : "accepted", "ok");
	build(&p, DNS_T_MX, 0, "q.test MX 300 10 a.test", NULL);
	p.len--;
	r = parse(DNS_T_MX, &p);
	check_str("answer one octet short", r->why, "malformed answer");
	dns_result_free(r);
}

/* test_big - the bounds: MX, A and TXT records left out are marked */
static void
test_big(void)
{
	struct pkt		 p;
	struct dns_result	*r;
	char			 rrs[8192], *s;
	size_t			 i;
	int			 n;

	s = rrs;
	for (i = 0; i < 40; i++) {
		n = snprintf(s, sizeof(rrs) - (size_t)(s - rrs),
		    "q.test MX 300 %zu h%zu.test;", 100 - i, i);
		if (n < 0 || (size_t)n >= sizeof(rrs) - (size_t)(s - rrs))
			abort();
		s += n;
	}
	build(&p, DNS_T_MX, 0, rrs, NULL);
	r = parse(DNS_T_MX, &p);
	check_str("40 MX: 32 kept, best first",
	    r->nmx == DNS_MX_MAX && r->truncated && r->mx[0].pref == 61 &&
	    strcmp(r->mx[0].host, "h39.test") == 0 &&
	    r->mx[31].pref == 92 ? "ok" : "wrong", "ok");
	dns_result_free(r);

	s = rrs;
	for (i = 0; i < 40; i++) {
		n = snprintf(s, sizeof(rrs) - (size_t)(s - rrs),
		    "q.test A 300 192.0.2.%zu;", i);
		if (n < 0 || (size_t)n >= sizeof(rrs) - (size_t)(s - rrs))
			abort();
		s += n;
	}
	build(&p, DNS_T_A, 0, rrs, NULL);
	r = parse(DNS_T_A, &p);
	check_str("40 A: 32 kept", r->naddr == DNS_ADDR_MAX &&
	    r->truncated ? "ok" : "wrong", "ok");
	dns_result_free(r);

	/* a TXT record of 20 strings of 250 octets is over 4096 */
	memcpy(rrs, "q.test TXT 300 ", 15);
	s = rrs + 15;
	for (i = 0; i < 20; i++) {
		memset(s, 'x', 250);
		s += 250;
		*s++ = '|';
	}
	s[-1] = ';';
	memcpy(s, "q.test TXT 300 short", sizeof("q.test TXT 300 short"));
	build(&p, DNS_T_TXT, 0, rrs, NULL);
	r = parse(DNS_T_TXT, &p);
	check_str("TXT over the bound left out", r->status == DNS_OK &&
	    r->ntxt == 1 && r->truncated && r->txt[0].len == 5 ?
	    "ok" : "wrong", "ok");
	dns_result_free(r);
	*strchr(rrs, ';') = '\0';	/* the long record alone */
	build(&p, DNS_T_TXT, 0, rrs, NULL);
	r = parse(DNS_T_TXT, &p);
	check_str("only TXT over the bound", r->status == DNS_TEMPFAIL ?
	    "ok" : "wrong", "ok");
	dns_result_free(r);
}

/* test_shuffle - equal preferences come in both orders */
static void
test_shuffle(void)
{
	struct pkt		 p;
	struct dns_result	*r;
	int			 i, first_a = 0, first_b = 0, order = 1;

	build(&p, DNS_T_MX, 0, "q.test MX 300 10 a.test; q.test MX 300 10 "
	    "b.test; q.test MX 300 5 c.test", NULL);
	for (i = 0; i < 64; i++) {
		r = parse(DNS_T_MX, &p);
		if (r->nmx != 3 || strcmp(r->mx[0].host, "c.test") != 0)
			order = 0;
		else if (strcmp(r->mx[1].host, "a.test") == 0)
			first_a++;
		else
			first_b++;
		dns_result_free(r);
	}
	check_str("shuffle keeps preference order", order ? "ok" : "wrong",
	    "ok");
	check_str("shuffle gives both orders",
	    first_a > 0 && first_b > 0 ? "ok" : "one order", "ok");
}

static void
test_merge(void)
{
	static const struct {
		const char	*what;
		int		 rcode4, rcode6;
		const char	*ans4, *ans6;
		const char	*expect;
	} m[] = {
		{ "both", 0, 0, "q.test A 300 192.0.2.1",
		  "q.test AAAA 100 2001:db8::1",
		  "OK ttl=100 addr=2001:db8::1,192.0.2.1" },
		{ "A only, AAAA failed", 0, 2, "q.test A 300 192.0.2.1", NULL,
		  "OK ttl=300 addr=192.0.2.1" },
		{ "A NODATA, AAAA failed", 0, 2, NULL, NULL,
		  "TEMPFAIL why=SERVFAIL" },
		{ "both NODATA", 0, 0, NULL, NULL, "NODATA ttl=60" },
		{ "NXDOMAIN", 3, 3, NULL, NULL, "NXDOMAIN ttl=60" },
	};
	struct pkt		 p4, p6;
	struct dns_result	*r;
	struct buf		 b;
	size_t			 i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		build(&p4, DNS_T_A, m[i].rcode4, m[i].ans4,
		    m[i].ans4 == NULL ? "q.test SOA 60 60" : NULL);
		build(&p6, DNS_T_AAAA, m[i].rcode6, m[i].ans6,
		    m[i].ans6 == NULL ? "q.test SOA 60 60" : NULL);
		r = dns_result_merge(parse(DNS_T_A, &p4),
		    parse(DNS_T_AAAA, &p6));
		buf_init(&b, 0);
		fmt_result(r, &b);
		check_str(m[i].what, b.data, m[i].expect);
		buf_free(&b);
		dns_result_free(r);
	}
}

static void
test_sockaddr(void)
{
	struct dns_addr		 a;
	struct sockaddr_storage	 ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	char			 ip[INET6_ADDRSTRLEN];
	socklen_t		 len;

	a.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::25", a.addr);
	len = dns_addr_sockaddr(&a, 25, &ss);
	inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
	check_str("sockaddr v6", len == sizeof(*sin6) &&
	    ntohs(sin6->sin6_port) == 25 ? ip : "wrong", "2001:db8::25");
	check_str("status names", dns_status_str(DNS_NULL_MX), "NULL_MX");
}

/* ---- packets ---------------------------------------------------------- */

/* build - a response to "q.test"/type with rcode and the RRs given */
static void
build(struct pkt *p, int type, int rcode, const char *answers,
    const char *authority)
{
	size_t	 an_at;
	int	 n;

	p->len = 0;
	put16(p, 0x1234);
	put16(p, 0x8400 | (unsigned)rcode);	/* QR, AA */
	put16(p, 1);
	an_at = p->len;
	put16(p, 0);
	put16(p, 0);
	put16(p, 0);
	put_name(p, "q.test");
	put16(p, (unsigned)type);
	put16(p, 1);
	n = add_rrs(p, answers);
	p->b[an_at] = (unsigned char)(n >> 8);
	p->b[an_at + 1] = (unsigned char)n;
	n = add_rrs(p, authority);
	p->b[an_at + 2] = (unsigned char)(n >> 8);
	p->b[an_at + 3] = (unsigned char)n;
}

static int
add_rrs(struct pkt *p, const char *list)
{
	char	*copy, *rr, *next;
	int	 n = 0;

	if (list == NULL)
		return 0;
	if ((copy = strdup(list)) == NULL)
		abort();
	for (rr = copy; rr != NULL; rr = next) {
		if ((next = strchr(rr, ';')) != NULL)
			*next++ = '\0';
		while (*rr == ' ')
			rr++;
		if (*rr == '\0')
			continue;
		add_rr(p, rr);
		n++;
	}
	free(copy);
	return n;
}

/* add_rr - "OWNER TYPE TTL DATA" */
static void
add_rr(struct pkt *p, char *rr)
{
	char		*owner = rr, *type, *ttl, *data, *s, *bar;
	size_t		 at;
	unsigned char	 a[16];

	if ((type = strchr(owner, ' ')) == NULL)
		abort();
	*type++ = '\0';
	if ((ttl = strchr(type, ' ')) == NULL)
		abort();
	*ttl++ = '\0';
	if ((data = strchr(ttl, ' ')) == NULL)
		abort();
	*data++ = '\0';
	put_name(p, owner);
	put16(p, strcmp(type, "MX") == 0 ? 15 : strcmp(type, "A") == 0 ? 1 :
	    strcmp(type, "AAAA") == 0 ? 28 : strcmp(type, "CNAME") == 0 ? 5 :
	    strcmp(type, "PTR") == 0 ? 12 : strcmp(type, "TXT") == 0 ? 16 :
	    strcmp(type, "SOA") == 0 ? 6 : 0);
	put16(p, 1);
	put32(p, (uint32_t)strtoul(ttl, NULL, 10));
	at = p->len;
	put16(p, 0);
	if (strcmp(type, "MX") == 0) {
		put16(p, (unsigned)strtoul(data, &s, 10));
		put_name(p, s + 1);
	} else if (strcmp(type, "A") == 0) {
		inet_pton(AF_INET, data, a);
		memcpy(p->b + p->len, a, 4);
		p->len += 4;
	} else if (strcmp(type, "AAAA") == 0) {
		inet_pton(AF_INET6, data, a);
		memcpy(p->b + p->len, a, 16);
		p->len += 16;
	} else if (strcmp(type, "TXT") == 0) {
		for (s = data; s != NULL; s = bar) {
			if ((bar = strchr(s, '|')) != NULL)
				*bar++ = '\0';
			put8(p, (unsigned)strlen(s));
			memcpy(p->b + p->len, s, strlen(s));
			p->len += strlen(s);
		}
	} else if (strcmp(type, "SOA") == 0) {
		put_name(p, "ns.q.test");
		put_name(p, "hostmaster.q.test");
		put32(p, 1);
		put32(p, 3600);
		put32(p, 600);
		put32(p, 86400);
		put32(p, (uint32_t)strtoul(data, NULL, 10));
	} else
		put_name(p, data);
	p->b[at] = (unsigned char)((p->len - at - 2) >> 8);
	p->b[at + 1] = (unsigned char)(p->len - at - 2);
}

static void
put8(struct pkt *p, unsigned v)
{
	if (p->len + 1 > PKT_MAX)
		abort();
	p->b[p->len++] = (unsigned char)v;
}

static void
put16(struct pkt *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

static void
put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

/* put_name - uncompressed; "." or "" is the root */
static void
put_name(struct pkt *p, const char *name)
{
	const char	*dot;
	size_t		 n;

	while (*name != '\0' && strcmp(name, ".") != 0) {
		dot = strchr(name, '.');
		n = dot != NULL ? (size_t)(dot - name) : strlen(name);
		put8(p, (unsigned)n);
		if (p->len + n > PKT_MAX)
			abort();
		memcpy(p->b + p->len, name, n);
		p->len += n;
		name += n + (dot != NULL);
	}
	put8(p, 0);
}

/* status_of - the c-ares status ares_query() gives for the header */
static int
status_of(const struct pkt *p)
{
	static const int	 st[] = { ARES_SUCCESS, ARES_EFORMERR,
				    ARES_ESERVFAIL, ARES_ENOTFOUND,
				    ARES_ENOTIMP, ARES_EREFUSED };
	int			 rcode = p->b[3] & 0x0f;

	if (rcode > 5)
		return ARES_EBADRESP;
	if (rcode == 0 && p->b[6] == 0 && p->b[7] == 0)
		return ARES_ENODATA;
	return st[rcode];
}

static struct dns_result *
parse(int type, const struct pkt *p)
{
	struct dns_result	*r;

	r = dns_result_parse(type, "q.test", status_of(p), p->b, p->len);
	if (r == NULL)
		abort();
	return r;
}

static void
fmt_result(const struct dns_result *r, struct buf *b)
{
	char	 ip[INET6_ADDRSTRLEN];
	size_t	 i;

	buf_appends(b, dns_status_str(r->status));
	if (r->status == DNS_TEMPFAIL)
		buf_appendf(b, " why=%s", r->why);
	else
		buf_appendf(b, " ttl=%u", r->ttl);
	for (i = 0; i < r->nmx; i++)
		buf_appendf(b, "%s%u:%s", i == 0 ? " mx=" : ",", r->mx[i].pref,
		    r->mx[i].host);
	for (i = 0; i < r->naddr; i++)
		buf_appendf(b, "%s%s", i == 0 ? " addr=" : ",",
		    inet_ntop(r->addr[i].family, r->addr[i].addr, ip,
		    sizeof(ip)));
	for (i = 0; i < r->nptr; i++)
		buf_appendf(b, "%s%s", i == 0 ? " ptr=" : ",", r->ptr[i].name);
	for (i = 0; i < r->ntxt; i++) {
		buf_appends(b, i == 0 ? " txt=" : "|");
		buf_append(b, r->txt[i].data, r->txt[i].len);
	}
}
