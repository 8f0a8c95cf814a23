/*
 * test_out_resolve.c - table-driven tests of src/smtp_out/out_resolve.c
 * against a small DNS responder run in this process on 127.0.0.1 (UDP,
 * inside the same libevent loop): MX order and AAAA-before-A within a
 * host, implicit MX, null MX (RFC 7505), NXDOMAIN and SERVFAIL, loops
 * back to myself (our hostname in any case, and the MX of worse
 * preference dropped with it), hosts whose lookup fails skipped,
 * duplicate addresses, the OUT_TARGETS_MAX bound, address literals,
 * the port, that the callback never comes from inside oresolve_start(),
 * and cancellation.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "common/config.h"
#include "common/dns.h"
#include "smtp_out/smtp_out.h"

#define ME		"Me.Test"	/* our hostname, not lower case */
#define TTL		60
#define WAIT_MS		3000

/*
 * The zone: "NAME TYPE DATA" with DATA as in test_dns.c (MX "PREF
 * HOST", "." for the null MX; A and AAAA an address); "NAME SERVFAIL"
 * answers SERVFAIL to every type.  A name without a record of the type
 * asked is NODATA if it has others, else NXDOMAIN.
 */
static const char *const zone[] = {
	"mx.t MX 10 a.t", "mx.t MX 20 b.t",
	"a.t A 192.0.2.1", "a.t AAAA 2001:db8::1", "b.t A 192.0.2.2",
	"imp.t A 192.0.2.3",
	"null.t MX 0 .",
	"sf.t SERVFAIL",
	"loop.t MX 10 me.test", "me.test A 192.0.2.50",
	"bk.t MX 10 c.t", "bk.t MX 20 ME.TEST", "bk.t MX 30 d.t",
	"c.t A 192.0.2.4", "d.t A 192.0.2.5",
	"sk.t MX 10 gone.t", "sk.t MX 20 c.t",
	"alltf.t MX 10 tf1.t", "alltf.t MX 20 tf2.t",
	"tf1.t SERVFAIL", "tf2.t SERVFAIL",
	"allnx.t MX 10 nx1.t",
	"nod.t MX 10 noaddr.t", "noaddr.t MX 10 c.t",
	"dup.t MX 10 e.t", "dup.t MX 20 f.t",
	"e.t A 192.0.2.20", "f.t A 192.0.2.20", "f.t A 192.0.2.21",
	"cap.t MX 1 g1.t", "cap.t MX 2 g2.t", "cap.t MX 3 g3.t",
	"cap.t MX 4 g4.t", "cap.t MX 5 g5.t", "cap.t MX 6 g6.t",
	"g1.t A 198.51.100.11", "g1.t A 198.51.100.12",
	"g1.t A 198.51.100.13", "g1.t A 198.51.100.14",
	"g2.t A 198.51.100.21", "g2.t A 198.51.100.22",
	"g2.t A 198.51.100.23", "g2.t A 198.51.100.24",
	"g3.t A 198.51.100.31", "g3.t A 198.51.100.32",
	"g3.t A 198.51.100.33", "g3.t A 198.51.100.34",
	"g4.t A 198.51.100.41", "g4.t A 198.51.100.42",
	"g4.t A 198.51.100.43", "g4.t A 198.51.100.44",
	"g5.t A 198.51.100.51", "g5.t A 198.51.100.52",
	"g5.t A 198.51.100.53", "g5.t A 198.51.100.54",
	"g6.t A 198.51.100.61", "g6.t A 198.51.100.62",
	"g6.t A 198.51.100.63", "g6.t A 198.51.100.64",
	"fx.t A 192.0.2.10",
	"gw.t MX 10 c.t", "gw.t A 192.0.2.99",
	NULL
};

struct rcase {
	const char	*what;
	uint32_t	 kind;
	const char	*name;
	unsigned	 port;
	/* "host/pref/[addr]:port,..." or "CODE text"; a final '*'
	   compares a prefix */
	const char	*expect;
};

static const struct rcase cases[] = {
	{ "MX order, AAAA then A", TR_SMTP_MX, "mx.t", 25,
	  "a.t/10/[2001:db8::1]:25,a.t/10/[192.0.2.1]:25,"
	  "b.t/20/[192.0.2.2]:25" },
	{ "port kept", TR_SMTP_MX, "mx.t", 2525,
	  "a.t/10/[2001:db8::1]:2525,a.t/10/[192.0.2.1]:2525,"
	  "b.t/20/[192.0.2.2]:2525" },
	{ "implicit MX", TR_SMTP_MX, "imp.t", 25, "imp.t/0/[192.0.2.3]:25" },
	{ "null MX", TR_SMTP_MX, "null.t", 25,
	  "556 5.1.10 domain null.t does not accept mail (null MX)" },
	{ "NXDOMAIN", TR_SMTP_MX, "nx.t", 25,
	  "550 5.1.2 domain nx.t does not exist" },
	{ "NXDOMAIN of smtp:host", TR_SMTP_HOST, "nxh.t", 25,
	  "550 5.4.4 host nxh.t not found" },
	{ "SERVFAIL", TR_SMTP_MX, "sf.t", 25,
	  "451 4.4.3 DNS lookup of sf.t failed: *" },
	{ "bad name", TR_SMTP_MX, "bad..name", 25,
	  "550 5.1.2 bad domain name" },
	{ "only MX is me", TR_SMTP_MX, "loop.t", 25,
	  "550 5.4.6 mail for loop.t loops back to myself" },
	{ "backup MX: me and worse dropped", TR_SMTP_MX, "bk.t", 25,
	  "c.t/10/[192.0.2.4]:25" },
	{ "implicit MX is me", TR_SMTP_MX, "me.test", 25,
	  "550 5.4.6 mail for me.test loops back to myself" },
	{ "host not found skipped", TR_SMTP_MX, "sk.t", 25,
	  "c.t/20/[192.0.2.4]:25" },
	{ "all hosts SERVFAIL", TR_SMTP_MX, "alltf.t", 25,
	  "451 4.4.3 DNS lookup of tf*" },
	{ "all hosts NXDOMAIN", TR_SMTP_MX, "allnx.t", 25,
	  "550 5.4.4 no address for allnx.t" },
	{ "host without address", TR_SMTP_MX, "nod.t", 25,
	  "550 5.4.4 no address for nod.t" },
	{ "duplicate address once", TR_SMTP_MX, "dup.t", 25,
	  "e.t/10/[192.0.2.20]:25,f.t/20/[192.0.2.21]:25" },
	{ "OUT_TARGETS_MAX", TR_SMTP_MX, "cap.t", 25, "count=20 last=g5.t" },
	{ "smtp:host is MX of host", TR_SMTP_HOST, "gw.t", 25,
	  "c.t/10/[192.0.2.4]:25" },
	{ "fixed: address, no MX", TR_SMTP_FIXED, "fx.t", 26,
	  "fx.t/0/[192.0.2.10]:26" },
	{ "fixed: NXDOMAIN", TR_SMTP_FIXED, "fxnx.t", 25,
	  "550 5.4.4 host fxnx.t not found" },
	{ "fixed: IPv4 literal", TR_SMTP_FIXED, "192.0.2.9", 2525,
	  "192.0.2.9/0/[192.0.2.9]:2525" },
	{ "fixed: IPv6 literal", TR_SMTP_FIXED, "2001:db8::9", 25,
	  "2001:db8::9/0/[2001:db8::9]:25" },
	{ "fixed: IPv6 tag", TR_SMTP_FIXED, "IPv6:2001:db8::a", 25,
	  "IPv6:2001:db8::a/0/[2001:db8::a]:25" },
};

/* one answer, as the callback saw it */
struct got {
	int	 called;
	char	 text[4096];
};

static int		 passed, failed;
static struct event_base *base;
static int		 dns_fd = -1;
static unsigned		 mx_queries_fx;	/* MX queries for fx.t */

static void	 responder(int, short, void *);
static size_t	 answer(const unsigned char *, size_t, unsigned char *,
		    size_t);
static int	 put_name(unsigned char *, size_t, size_t *, const char *);
static void	 got_cb(void *, const struct otarget *, size_t, unsigned,
		    const char *);
static void	 run_until(const int *, int);
static void	 check(const char *, const char *, const char *);
static void	 test_cases(struct smtp_out *);
static void	 test_cancel(struct smtp_out *);

int
main(void)
{
	static struct config	 conf;
	struct smtp_out		 so;
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct listen_addr	 srv;
	struct dns_conf		 dc;
	struct event		*ev;

	log_init(0);
	log_setproc("test");
	memset(&so, 0, sizeof(so));
	snprintf(conf.hostname, sizeof(conf.hostname), "%s", ME);
	so.conf = &conf;
	if ((base = so.base = event_base_new()) == NULL)
		return 2;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((dns_fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(dns_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(dns_fd, (struct sockaddr *)&sin, &len) == -1) {
		perror("responder socket");
		return 2;
	}
	ev = event_new(base, dns_fd, EV_READ | EV_PERSIST, responder, NULL);
	if (ev == NULL || event_add(ev, NULL) == -1)
		return 2;
	memset(&srv, 0, sizeof(srv));
	memcpy(&srv.ss, &sin, sizeof(sin));
	srv.sslen = sizeof(sin);
	memset(&dc, 0, sizeof(dc));
	dc.servers = &srv;
	dc.nservers = 1;
	dc.timeout_ms = 2000;
	if (dns_init(base, &dc) == -1)
		return 2;

	test_cases(&so);
	test_cancel(&so);
	check("fixed: no MX lookup", "0", mx_queries_fx ? "1" : "0");

	dns_shutdown();
	event_free(ev);
	event_base_free(base);
	close(dns_fd);
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0;
}

static void
test_cases(struct smtp_out *so)
{
	struct odest	 d;
	struct got	 g;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&d, 0, sizeof(d));
		d.kind = cases[i].kind;
		snprintf(d.name, sizeof(d.name), "%s", cases[i].name);
		d.port = cases[i].port;
		memset(&g, 0, sizeof(g));
		if (oresolve_start(so, &d, got_cb, &g) == NULL) {
			check(cases[i].what, cases[i].expect, "(NULL)");
			continue;
		}
		/* never from inside the call */
		if (g.called) {
			check(cases[i].what, "not called yet", "called");
			continue;
		}
		run_until(&g.called, WAIT_MS);
		if (g.called != 1)
			snprintf(g.text, sizeof(g.text), "called %d times",
			    g.called);
		check(cases[i].what, cases[i].expect, g.text);
	}
}

/* a cancelled lookup never calls back, pending or known at once */
static void
test_cancel(struct smtp_out *so)
{
	static const char *const names[] = { "mx.t", "192.0.2.7", "sk.t" };
	static const uint32_t kinds[] = { TR_SMTP_MX, TR_SMTP_FIXED,
	    TR_SMTP_MX };
	struct oresolve	*r;
	struct odest	 d;
	struct got	 g;
	int		 never = 0;
	size_t		 i;

	for (i = 0; i < 3; i++) {
		memset(&d, 0, sizeof(d));
		d.kind = kinds[i];
		snprintf(d.name, sizeof(d.name), "%s", names[i]);
		d.port = 25;
		memset(&g, 0, sizeof(g));
		if ((r = oresolve_start(so, &d, got_cb, &g)) == NULL) {
			check("cancel", "started", "NULL");
			continue;
		}
		oresolve_cancel(r);
		run_until(&never, 300);
		check("cancel", "0", g.called ? "1" : "0");
	}
}

static void
got_cb(void *arg, const struct otarget *t, size_t n, unsigned code,
    const char *text)
{
	struct got	*g = arg;
	char		 a[INET6_ADDRSTRLEN];
	const void	*p;
	unsigned	 port;
	size_t		 i, o = 0;
	int		 w;

	g->called++;
	if (n == 0) {
		snprintf(g->text, sizeof(g->text), "%u %s", code, text);
		return;
	}
	if (n == OUT_TARGETS_MAX) {
		snprintf(g->text, sizeof(g->text), "count=%zu last=%s", n,
		    t[n - 1].host);
		return;
	}
	for (i = 0; i < n; i++) {
		if (t[i].ss.ss_family == AF_INET) {
			const struct sockaddr_in *s4 = (const void *)&t[i].ss;

			p = &s4->sin_addr;
			port = ntohs(s4->sin_port);
		} else {
			const struct sockaddr_in6 *s6 = (const void *)&t[i].ss;

			p = &s6->sin6_addr;
			port = ntohs(s6->sin6_port);
		}
		inet_ntop(t[i].ss.ss_family, p, a, sizeof(a));
		w = snprintf(g->text + o, sizeof(g->text) - o,
		    "%s%s/%u/[%s]:%u", i ? "," : "", t[i].host, t[i].pref, a,
		    port);
		if (w < 0 || (size_t)w >= sizeof(g->text) - o)
			break;
		o += (size_t)w;
	}
}

/* run_until - the loop until *flag or ms passed */
static void
run_until(const int *flag, int ms)
{
	struct timespec	 t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!*flag) {
		struct timeval	 tv = { 0, 20000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			break;
	}
}

static void
check(const char *what, const char *want, const char *got)
{
	size_t	 n = strlen(want);
	int	 ok;

	if (n > 0 && want[n - 1] == '*')
		ok = strncmp(want, got, n - 1) == 0;
	else
		ok = strcmp(want, got) == 0;
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s:\n  want %s\n  got  %s\n", what, want, got);
}

/* ---- the responder ----------------------------------------------- */

static void
responder(int fd, short ev, void *arg)
{
	unsigned char		 q[512], r[4096];
	struct sockaddr_storage	 from;
	socklen_t		 flen = sizeof(from);
	ssize_t			 n;
	size_t			 len;

	n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
	if (n <= 0)
		return;
	if ((len = answer(q, (size_t)n, r, sizeof(r))) > 0)
		(void)sendto(fd, r, len, 0, (struct sockaddr *)&from, flen);
}

/* answer - the response to query q; its length, 0 to ignore it */
static size_t
answer(const unsigned char *q, size_t qlen, unsigned char *r, size_t cap)
{
	char		 name[300], zname[300], ztype[16], data[300];
	const char	*want;
	size_t		 o = 12, nl = 0, qend, rlen, i, an = 0, mark;
	unsigned	 qtype, rcode = 3, pref;
	int		 k;

	if (qlen < 12 || q[5] != 1)
		return 0;
	/* the name, lower case, with dots */
	while (o < qlen && q[o] != 0) {
		if ((q[o] & 0xc0) != 0 || o + 1 + q[o] > qlen ||
		    nl + q[o] + 1 >= sizeof(name))
			return 0;
		if (nl > 0)
			name[nl++] = '.';
		for (i = 0; i < q[o]; i++)
			name[nl++] = (char)tolower(q[o + 1 + i]);
		o += 1 + q[o];
	}
	name[nl] = '\0';
	if (o + 5 > qlen)
		return 0;
	qtype = (unsigned)q[o + 1] << 8 | q[o + 2];
	qend = o + 5;
	want = qtype == DNS_T_MX ? "MX" : qtype == DNS_T_A ? "A" :
	    qtype == DNS_T_AAAA ? "AAAA" : "?";
	if (qtype == DNS_T_MX && strcmp(name, "fx.t") == 0)
		mx_queries_fx++;
	if (qend > cap)
		return 0;
	memcpy(r, q, qend);
	r[2] = 0x81;			/* QR, RD */
	r[3] = 0x80;			/* RA */
	r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
	rlen = qend;
	for (i = 0; zone[i] != NULL; i++) {
		data[0] = '\0';
		k = sscanf(zone[i], "%299s %15s %299[^\n]", zname, ztype,
		    data);
		if (k < 2 || strcmp(zname, name) != 0)
			continue;
		if (strcmp(ztype, "SERVFAIL") == 0) {
			rcode = 2;
			break;
		}
		rcode = 0;		/* the name exists */
		if (strcmp(ztype, want) != 0)
			continue;
		if (rlen + 12 + 300 > cap)
			return 0;
		r[rlen++] = 0xc0;	/* the owner: the question's name */
		r[rlen++] = 0x0c;
		r[rlen++] = (unsigned char)(qtype >> 8);
		r[rlen++] = (unsigned char)qtype;
		r[rlen++] = 0;
		r[rlen++] = 1;		/* IN */
		r[rlen++] = 0;
		r[rlen++] = 0;
		r[rlen++] = 0;
		r[rlen++] = TTL;
		mark = rlen;
		rlen += 2;
		if (qtype == DNS_T_A) {
			if (inet_pton(AF_INET, data, r + rlen) != 1)
				return 0;
			rlen += 4;
		} else if (qtype == DNS_T_AAAA) {
			if (inet_pton(AF_INET6, data, r + rlen) != 1)
				return 0;
			rlen += 16;
		} else {
			char	 host[300];

			if (sscanf(data, "%u %299s", &pref, host) != 2)
				return 0;
			r[rlen++] = (unsigned char)(pref >> 8);
			r[rlen++] = (unsigned char)pref;
			if (put_name(r, cap, &rlen, host) == -1)
				return 0;
		}
		r[mark] = (unsigned char)((rlen - mark - 2) >> 8);
		r[mark + 1] = (unsigned char)(rlen - mark - 2);
		an++;
	}
	if (rcode != 0)
		rlen = qend;
	r[3] |= (unsigned char)rcode;
	r[6] = (unsigned char)(an >> 8);
	r[7] = (unsigned char)an;
	return rlen;
}

/* put_name - "a.b" (or "." for the root) in wire form */
static int
put_name(unsigned char *r, size_t cap, size_t *o, const char *name)
{
	const char	*p = name, *dot;
	size_t		 l;

	if (strcmp(name, ".") != 0)
		for (; *p != '\0'; p = *dot ? dot + 1 : dot) {
			dot = strchr(p, '.');
			if (dot == NULL)
				dot = p + strlen(p);
			l = (size_t)(dot - p);
			if (l == 0 || l > 63 || *o + l + 2 > cap)
				return -1;
			r[(*o)++] = (unsigned char)l;
			memcpy(r + *o, p, l);
			*o += l;
		}
	if (*o + 1 > cap)
		return -1;
	r[(*o)++] = 0;
	return 0;
}
