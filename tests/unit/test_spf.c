/*
 * test_spf.c - table-driven tests of the pure parts of the SPF
 * evaluator (src/common/spf.c): record selection and parsing (RFC
 * 7208 4.5, 12), macro expansion with the examples of RFC 7208 7.4,
 * and the trimming of long expanded names (7.3).  The DNS-driven
 * evaluation is tested end to end by tests/integration/test_spf.py.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/spf.h"

static int	 npass, nfail;

static void
check(int ok, const char *what, const char *detail)
{
	if (ok) {
		npass++;
		return;
	}
	nfail++;
	printf("FAIL %s: %s\n", what, detail);
}

struct parse_case {
	const char	*rec;
	int		 rc;
	size_t		 nterms;
	int		 redirect;
};

static const struct parse_case parse_cases[] = {
	{ "v=spf1", 0, 0, -1 },
	{ "v=spf1 -all", 0, 1, -1 },
	{ "V=SPF1 +A MX -ALL", 0, 3, -1 },
	{ "v=spf1  ip4:192.0.2.0/24   ip6:2001:db8::/32 ~all ", 0, 3, -1 },
	{ "v=spf1 a:mail.example.com/24//64 mx/28 ptr ?all", 0, 4, -1 },
	{ "v=spf1 a//64 mx:example.net//48 -all", 0, 3, -1 },
	{ "v=spf1 include:_spf.example.com redirect=_spf.example.net", 0, 2,
	    1 },
	{ "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all", 0, 2, -1 },
	{ "v=spf1 exp=explain._spf.%{d} -all", 0, 2, -1 },
	{ "v=spf1 foo=bar moo.cow-far_out=%% -all", 0, 3, -1 },
	{ "v=spf1 ip4:192.0.2.1 ip4:10.0.0.0/0", 0, 2, -1 },
	{ "v=spf1 a:example.com.", 0, 1, -1 },
	/* refused (permerror) */
	{ "v=spf10", -1, 0, -1 },
	{ "spf1 -all", -1, 0, -1 },
	{ "v=spf1 -bogus", -1, 0, -1 },
	{ "v=spf1 include", -1, 0, -1 },
	{ "v=spf1 include:", -1, 0, -1 },
	{ "v=spf1 include:localhost", -1, 0, -1 },
	{ "v=spf1 include:example.123", -1, 0, -1 },
	{ "v=spf1 all:x", -1, 0, -1 },
	{ "v=spf1 ip4:192.0.2.300", -1, 0, -1 },
	{ "v=spf1 ip4:192.0.2.0/33", -1, 0, -1 },
	{ "v=spf1 ip4:192.0.2.0/024", -1, 0, -1 },
	{ "v=spf1 ip6:2001:db8::/129", -1, 0, -1 },
	{ "v=spf1 ip6:192.0.2.1", -1, 0, -1 },
	{ "v=spf1 a/", -1, 0, -1 },
	{ "v=spf1 a:/24", -1, 0, -1 },
	{ "v=spf1 mx//", -1, 0, -1 },
	{ "v=spf1 ptr/24", -1, 0, -1 },
	{ "v=spf1 redirect=a.example redirect=b.example", -1, 0, -1 },
	{ "v=spf1 exp=a.example exp=b.example", -1, 0, -1 },
	{ "v=spf1 exists:%{x}.example.com", -1, 0, -1 },
	{ "v=spf1 exists:%{d0}.example.com", -1, 0, -1 },
	{ "v=spf1 exists:%{c}.example.com", -1, 0, -1 },
	{ "v=spf1 exists:%{d.example.com", -1, 0, -1 },
	{ "v=spf1 exists:%example.com", -1, 0, -1 },
	{ "v=spf1 a:ex%ample.com", -1, 0, -1 },
	{ "v=spf1 foo=%", -1, 0, -1 },
	{ "v=spf1\t-all", -1, 0, -1 },
	{ NULL, 0, 0, 0 }
};

static void
test_parse(void)
{
	const struct parse_case	*c;
	struct spf_record	 rec;
	const char		*why;
	int			 rc;

	for (c = parse_cases; c->rec != NULL; c++) {
		why = NULL;
		rc = spf_record_parse(c->rec, strlen(c->rec), &rec, &why);
		check(rc == c->rc, "parse rc", c->rec);
		if (rc == -1) {
			check(why != NULL, "parse why", c->rec);
			continue;
		}
		check(rec.nterms == c->nterms, "parse nterms", c->rec);
		check(rec.redirect == c->redirect, "parse redirect", c->rec);
	}
}

/* the details of a parsed record */
static void
test_terms(void)
{
	static const char r[] =
	    "v=spf1 -a:mail.example.com/24//64 ~mx ip4:192.0.2.128/25 "
	    "?ip6:2001:db8::1 include:x.example -all";
	struct spf_record	 rec;
	const char		*why;
	uint8_t			 a4[4];

	if (spf_record_parse(r, strlen(r), &rec, &why) == -1) {
		check(0, "terms parse", why);
		return;
	}
	inet_pton(AF_INET, "192.0.2.128", a4);
	check(rec.nterms == 6, "terms count", r);
	check(rec.term[0].kind == SPF_A && rec.term[0].qual == SPF_FAIL &&
	    rec.term[0].speclen == 16 &&
	    memcmp(rec.term[0].spec, "mail.example.com", 16) == 0 &&
	    rec.term[0].cidr4 == 24 && rec.term[0].cidr6 == 64,
	    "terms a", "-a:mail.example.com/24//64");
	check(rec.term[1].kind == SPF_MX && rec.term[1].qual ==
	    SPF_SOFTFAIL && rec.term[1].speclen == 0 &&
	    rec.term[1].cidr4 == 32 && rec.term[1].cidr6 == 128,
	    "terms mx", "~mx");
	check(rec.term[2].kind == SPF_IP4 && rec.term[2].qual == SPF_PASS &&
	    rec.term[2].cidr4 == 25 && memcmp(rec.term[2].net, a4, 4) == 0,
	    "terms ip4", "ip4:192.0.2.128/25");
	check(rec.term[3].kind == SPF_IP6 && rec.term[3].qual ==
	    SPF_NEUTRAL && rec.term[3].cidr6 == 128 &&
	    rec.term[3].net[15] == 1, "terms ip6", "?ip6:2001:db8::1");
	check(rec.term[4].kind == SPF_INCLUDE && rec.term[4].speclen == 9,
	    "terms include", "include:x.example");
	check(rec.term[5].kind == SPF_ALL && rec.has_all, "terms all",
	    "-all");
	check(spf_is_record("v=spf1", 6) && spf_is_record("v=SPF1 a", 8) &&
	    !spf_is_record("v=spf1a", 7) && !spf_is_record("v=spf", 5),
	    "is_record", "selection (4.5)");
}

struct macro_case {
	const char	*in;
	int		 v6;
	int		 explain;
	const char	*out;		/* NULL: -1 */
};

/* RFC 7208 7.4, then escapes and errors */
static const struct macro_case macro_cases[] = {
	{ "%{s}", 0, 0, "strong-bad@email.example.com" },
	{ "%{o}", 0, 0, "email.example.com" },
	{ "%{d}", 0, 0, "email.example.com" },
	{ "%{d4}", 0, 0, "email.example.com" },
	{ "%{d3}", 0, 0, "email.example.com" },
	{ "%{d2}", 0, 0, "example.com" },
	{ "%{d1}", 0, 0, "com" },
	{ "%{dr}", 0, 0, "com.example.email" },
	{ "%{d2r}", 0, 0, "example.email" },
	{ "%{l}", 0, 0, "strong-bad" },
	{ "%{l-}", 0, 0, "strong.bad" },
	{ "%{lr}", 0, 0, "strong-bad" },
	{ "%{lr-}", 0, 0, "bad.strong" },
	{ "%{l1r-}", 0, 0, "strong" },
	{ "%{ir}.%{v}._spf.%{d2}", 0, 0,
	    "3.2.0.192.in-addr._spf.example.com" },
	{ "%{lr-}.lp._spf.%{d2}", 0, 0, "bad.strong.lp._spf.example.com" },
	{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", 0, 0,
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
	{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", 0, 0,
	    "3.2.0.192.in-addr.strong.lp._spf.example.com" },
	{ "%{d2}.trusted-domains.example.net", 0, 0,
	    "example.com.trusted-domains.example.net" },
	{ "%{ir}.%{v}._spf.%{d2}", 1, 0,
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".ip6._spf.example.com" },
	{ "%{i}", 0, 0, "192.0.2.3" },
	{ "%{h}", 0, 0, "mx.example.org" },
	{ "%{p}", 0, 0, "unknown" },
	{ "%{S}", 0, 0, "strong-bad%40email.example.com" },
	{ "%%%_%-", 0, 0, "% %20" },
	{ "%{l+-}", 0, 0, "strong.bad" },
	{ "%{c} is not allowed", 0, 1, "192.0.2.3 is not allowed" },
	{ "%{r}", 0, 1, "mx.moat.test" },
	{ "%{c}", 0, 0, NULL },
	{ "%{d0}", 0, 0, NULL },
	{ "%{q}", 0, 0, NULL },
	{ "%{d", 0, 0, NULL },
	{ "%", 0, 0, NULL },
	{ "%x", 0, 0, NULL },
	{ "a b", 0, 0, NULL },
	{ NULL, 0, 0, NULL }
};

static void
test_macros(void)
{
	const struct macro_case	*c;
	struct spf_macro	 m;
	char			 out[SPF_EXPAND_MAX];
	int			 n;

	for (c = macro_cases; c->in != NULL; c++) {
		memset(&m, 0, sizeof(m));
		m.sender = "strong-bad@email.example.com";
		m.domain = "email.example.com";
		m.helo = "mx.example.org";
		m.rcvhost = "mx.moat.test";
		m.family = c->v6 ? AF_INET6 : AF_INET;
		inet_pton(m.family, c->v6 ? "2001:db8::cb01" : "192.0.2.3",
		    m.addr);
		n = spf_macro_expand(c->in, strlen(c->in), &m, c->explain,
		    out, sizeof(out));
		if (c->out == NULL) {
			check(n == -1, "macro refused", c->in);
			continue;
		}
		check(n >= 0 && (size_t)n == strlen(c->out) &&
		    strcmp(out, c->out) == 0, "macro", c->in);
		if (n >= 0 && strcmp(out, c->out) != 0)
			printf("  got %s\n", out);
	}
	/* output bound: -1, never an overflow */
	memset(&m, 0, sizeof(m));
	m.sender = "strong-bad@email.example.com";
	m.family = AF_INET;
	check(spf_macro_expand("%{s}", 4, &m, 0, out, 10) == -1,
	    "macro bound", "%{s} into 10 octets");
	check(spf_macro_expand("%{s}", 4, &m, 0, out, 28) == -1 &&
	    spf_macro_expand("%{s}", 4, &m, 0, out, 29) == 28,
	    "macro bound", "exact fit");
	/* no local part: "postmaster" (HELO identity, 4.3) */
	m.sender = "@helo.example";
	check(spf_macro_expand("%{l}", 4, &m, 0, out, sizeof(out)) == 10 &&
	    strcmp(out, "postmaster") == 0, "macro l", "postmaster");
}

static void
test_trim(void)
{
	char	 d[600];
	size_t	 n, i;

	memcpy(d, "example.com.", 13);
	n = spf_domain_trim(d, 12);
	check(n == 11 && strcmp(d, "example.com") == 0, "trim", "dot");
	/* 30 labels of 9 octets + "x": over 253, cut on the left */
	for (i = 0, n = 0; i < 30; i++) {
		memcpy(d + n, "abcdefgh.", 9);
		n += 9;
	}
	memcpy(d + n, "example", 8);
	n = spf_domain_trim(d, n + 7);
	check(n <= 253 && n == strlen(d) && d[0] == 'a' &&
	    strcmp(d + n - 8, ".example") == 0, "trim", "long");
	memset(d, 'a', 300);
	d[300] = '\0';
	check(spf_domain_trim(d, 300) == 0, "trim", "one long label");
}

int
main(void)
{
	test_parse();
	test_terms();
	test_macros();
	test_trim();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
