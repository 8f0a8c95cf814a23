/*
 * test_addr.c - table-driven tests of src/common/addr.c: RFC 5321
 * mailboxes (dot-string, quoted-string, source routes, literals),
 * SMTPUTF8 octets, the length limits, and the domain helpers.
 */
#include <stdio.h>
#include <string.h>

#include "common/addr.h"

/* B(s): a string literal as (ptr, len), so that tests may hold NULs */
#define B(s)	s, sizeof(s) - 1

struct mbox_case {
	const char	*in;
	size_t		 inlen;
	int		 utf8;
	int		 rc;
	const char	*local;		/* expected slices when rc == 0 */
	const char	*domain;	/* NULL: no domain */
	unsigned	 flags;
};

static const struct mbox_case mbox_cases[] = {
	/* plain, case kept */
	{ B("user@example.com"), 0, 0, "user", "example.com", 0 },
	{ B("User.Name+tag@Example.COM"), 0, 0, "User.Name+tag",
	    "Example.COM", 0 },
	{ B("a@b"), 0, 0, "a", "b", 0 },
	{ B("1@2"), 0, 0, "1", "2", 0 },
	{ B("a-b@c-d.e"), 0, 0, "a-b", "c-d.e", 0 },
	{ B("!#$&'*+-/=?^_`{|}~@x.org"), 0, 0, "!#$&'*+-/=?^_`{|}~",
	    "x.org", ADDR_ROUTING },
	/* one final dot of the domain is dropped */
	{ B("user@example.com."), 0, 0, "user", "example.com", 0 },
	/* quoted local parts, which may hold '@', SP, '>' */
	{ B("\"john doe\"@example.com"), 0, 0, "\"john doe\"",
	    "example.com", ADDR_QUOTED },
	{ B("\"a@b\"@example.com"), 0, 0, "\"a@b\"", "example.com",
	    ADDR_QUOTED | ADDR_ROUTING },
	{ B("\"a\\\"b\"@x.org"), 0, 0, "\"a\\\"b\"", "x.org", ADDR_QUOTED },
	{ B("\"a>b\"@x.org"), 0, 0, "\"a>b\"", "x.org", ADDR_QUOTED },
	{ B("\"a%b\"@x.org"), 0, 0, "\"a%b\"", "x.org",
	    ADDR_QUOTED | ADDR_ROUTING },
	/* percent hack and bang paths */
	{ B("user%other@example.com"), 0, 0, "user%other", "example.com",
	    ADDR_ROUTING },
	{ B("host!user@example.com"), 0, 0, "host!user", "example.com",
	    ADDR_ROUTING },
	/* source routes: accepted, flagged, dropped from the slices */
	{ B("@a.example,@b.example:user@c.example"), 0, 0, "user",
	    "c.example", ADDR_ROUTE },
	{ B("@a.example:user@c.example"), 0, 0, "user", "c.example",
	    ADDR_ROUTE },
	{ B("@a:\"x@y\"@c"), 0, 0, "\"x@y\"", "c",
	    ADDR_ROUTE | ADDR_QUOTED | ADDR_ROUTING },
	/* RFC 5321 4.5.1 postmaster */
	{ B("postmaster"), 0, 0, "postmaster", NULL, ADDR_POSTMASTER },
	{ B("PostMaster"), 0, 0, "PostMaster", NULL, ADDR_POSTMASTER },
	/* address literals */
	{ B("user@[192.0.2.1]"), 0, 0, "user", "[192.0.2.1]", ADDR_LITERAL },
	{ B("user@[IPv6:2001:db8::1]"), 0, 0, "user", "[IPv6:2001:db8::1]",
	    ADDR_LITERAL },
	{ B("user@[ipv6:::ffff:192.0.2.1]"), 0, 0, "user",
	    "[ipv6:::ffff:192.0.2.1]", ADDR_LITERAL },
	{ B("u@[IPv6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]"), 0, 0,
	    "u", "[IPv6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]",
	    ADDR_LITERAL },
	/* SMTPUTF8 (RFC 6531) */
	{ B("\xc3\xbcser@ex\xc3\xa4mple.de"), 1, 0, "\xc3\xbcser",
	    "ex\xc3\xa4mple.de", ADDR_UTF8 },
	{ B("\"\xe2\x82\xac\"@x.de"), 1, 0, "\"\xe2\x82\xac\"", "x.de",
	    ADDR_UTF8 | ADDR_QUOTED },
	{ B("\xf0\x9f\x93\xa7@x.de"), 1, 0, "\xf0\x9f\x93\xa7", "x.de",
	    ADDR_UTF8 },
	{ B("user@xn--exmple-cua.de"), 0, 0, "user", "xn--exmple-cua.de",
	    0 },
	{ B("user@example.com"), 1, 0, "user", "example.com", 0 },

	/* refused */
	{ B(""), 0, -1, NULL, NULL, 0 },
	{ B("user"), 0, -1, NULL, NULL, 0 },
	{ B("user@"), 0, -1, NULL, NULL, 0 },
	{ B("@example.com"), 0, -1, NULL, NULL, 0 },
	{ B("user@@x"), 0, -1, NULL, NULL, 0 },
	{ B("user@x@y"), 0, -1, NULL, NULL, 0 },
	{ B(".user@x"), 0, -1, NULL, NULL, 0 },
	{ B("user.@x"), 0, -1, NULL, NULL, 0 },
	{ B("us..er@x"), 0, -1, NULL, NULL, 0 },
	{ B("us er@x"), 0, -1, NULL, NULL, 0 },
	{ B("us(er@x"), 0, -1, NULL, NULL, 0 },
	{ B("a\x01" "b@x"), 0, -1, NULL, NULL, 0 },
	{ B("a\0b@x"), 0, -1, NULL, NULL, 0 },
	{ B("user@-x.com"), 0, -1, NULL, NULL, 0 },
	{ B("user@x-.com"), 0, -1, NULL, NULL, 0 },
	{ B("user@x..com"), 0, -1, NULL, NULL, 0 },
	{ B("user@.x"), 0, -1, NULL, NULL, 0 },
	{ B("user@."), 0, -1, NULL, NULL, 0 },
	{ B("user@x.com.."), 0, -1, NULL, NULL, 0 },
	{ B("user@x_y.com"), 0, -1, NULL, NULL, 0 },
	{ B("user@x.com>"), 0, -1, NULL, NULL, 0 },
	{ B("user@x\0.com"), 0, -1, NULL, NULL, 0 },
	{ B("\"unterminated@x"), 0, -1, NULL, NULL, 0 },
	{ B("\"\"@x"), 0, -1, NULL, NULL, 0 },
	{ B("\"a\"b@x"), 0, -1, NULL, NULL, 0 },
	{ B("\"a\""), 0, -1, NULL, NULL, 0 },
	{ B("\"a\\\x01\"@x"), 0, -1, NULL, NULL, 0 },
	{ B("\"a\x01\"@x"), 0, -1, NULL, NULL, 0 },
	{ B("\"a\\"), 0, -1, NULL, NULL, 0 },
	/* non-ASCII without SMTPUTF8, and malformed UTF-8 with it */
	{ B("\xc3\xbcser@x.de"), 0, -1, NULL, NULL, 0 },
	{ B("user@ex\xc3\xa4mple.de"), 0, -1, NULL, NULL, 0 },
	{ B("\"\xc3\xbc\"@x.de"), 0, -1, NULL, NULL, 0 },
	{ B("\xc3@x.de"), 1, -1, NULL, NULL, 0 },
	{ B("u@x.\xc3"), 1, -1, NULL, NULL, 0 },
	{ B("\xc0\xaf@x.de"), 1, -1, NULL, NULL, 0 },
	{ B("\xe0\x80\xaf@x.de"), 1, -1, NULL, NULL, 0 },
	{ B("\xed\xa0\x80@x.de"), 1, -1, NULL, NULL, 0 },
	{ B("\xf4\x90\x80\x80@x.de"), 1, -1, NULL, NULL, 0 },
	{ B("\xff@x.de"), 1, -1, NULL, NULL, 0 },
	{ B("\x80@x.de"), 1, -1, NULL, NULL, 0 },
	/* literals */
	{ B("user@[1.2.3]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[1.2.3.256]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[IPv6:1::2::3]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[IPv6:fe80::1%eth0]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[2001:db8::1]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[IPv6:1.2.3.4]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[tag:foo]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[1.2.3.4\0]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[1.2.3.4\0junk]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[1.2.3.4"), 0, -1, NULL, NULL, 0 },
	{ B("user@[1.2.3.4]."), 0, -1, NULL, NULL, 0 },
	{ B("user@[]"), 0, -1, NULL, NULL, 0 },
	{ B("user@["), 0, -1, NULL, NULL, 0 },
	{ B("user@[IPv6:]"), 0, -1, NULL, NULL, 0 },
	{ B("user@[ 1.2.3.4]"), 0, -1, NULL, NULL, 0 },
	/* bad source routes */
	{ B("@a.example:"), 0, -1, NULL, NULL, 0 },
	{ B("@a.example,user@x"), 0, -1, NULL, NULL, 0 },
	{ B("@a.example,:u@x"), 0, -1, NULL, NULL, 0 },
	{ B("@:u@x"), 0, -1, NULL, NULL, 0 },
	{ B("@a,b:u@x"), 0, -1, NULL, NULL, 0 },
	{ B("@[1.2.3.4]:u@x"), 0, -1, NULL, NULL, 0 },
	{ B("@a.:u@x"), 0, -1, NULL, NULL, 0 },
	{ B("@a:postmaster"), 0, -1, NULL, NULL, 0 },
	{ B("@a:@b:u@x"), 0, -1, NULL, NULL, 0 },
	/* postmaster needs no domain, nothing else does */
	{ B("postmaster@"), 0, -1, NULL, NULL, 0 },
	{ B("postmasterx"), 0, -1, NULL, NULL, 0 },
	{ B("\"postmaster\""), 0, -1, NULL, NULL, 0 },
};

static int	 npass, nfail;

static void	 check(int, const char *, size_t, const char *);
static void	 test_mailbox(void);
static void	 test_limits(void);
static void	 test_domain(void);
static void	 test_postmaster(void);

int
main(void)
{
	test_mailbox();
	test_limits();
	test_domain();
	test_postmaster();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}

/* check - count one assertion, printing the input on failure */
static void
check(int ok, const char *in, size_t len, const char *what)
{
	size_t	 i;

	if (ok) {
		npass++;
		return;
	}
	nfail++;
	printf("FAIL %s: \"", what);
	for (i = 0; i < len && i < 80; i++)
		if (in[i] >= 0x20 && in[i] < 0x7f)
			putchar(in[i]);
		else
			printf("\\x%02x", (unsigned char)in[i]);
	printf("\"\n");
}

/* slice_is - (p, len) equals the C string s, or both are NULL */
static int
slice_is(const char *p, size_t len, const char *s)
{
	if (s == NULL || p == NULL)
		return s == p;
	return len == strlen(s) && memcmp(p, s, len) == 0;
}

static void
test_mailbox(void)
{
	const struct mbox_case	*c;
	struct addr		 a;
	const char		*why;
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(mbox_cases) / sizeof(mbox_cases[0]); i++) {
		c = &mbox_cases[i];
		why = NULL;
		rc = addr_parse_mailbox(c->in, c->inlen, c->utf8, &a, &why);
		check(rc == c->rc, c->in, c->inlen, "mailbox rc");
		if (rc != 0) {
			check(rc != -1 || why != NULL, c->in, c->inlen,
			    "mailbox why");
			continue;
		}
		check(slice_is(a.local, a.locallen, c->local), c->in,
		    c->inlen, "mailbox local");
		check(slice_is(a.domain, a.domainlen, c->domain), c->in,
		    c->inlen, "mailbox domain");
		check(a.flags == c->flags, c->in, c->inlen, "mailbox flags");
	}
}

/* RFC 5321 4.5.3.1: local 64, label 63, domain 255, path 256 octets */
static void
test_limits(void)
{
	char		 b[600];
	struct addr	 a;
	const char	*why;
	size_t		 n, i;

	/* 64-octet local part passes, 65 does not */
	memset(b, 'l', 65);
	memcpy(b + 64, "@x.org", 6);
	check(addr_parse_mailbox(b, 70, 0, &a, &why) == 0, b, 70, "local 64");
	memset(b, 'l', 65);
	memcpy(b + 65, "@x.org", 6);
	check(addr_parse_mailbox(b, 71, 0, &a, &why) == -1, b, 71,
	    "local 65");
	/* quoted: the quotes count */
	b[0] = '"';
	memset(b + 1, 'q', 62);
	memcpy(b + 63, "\"@x.org", 7);
	check(addr_parse_mailbox(b, 70, 0, &a, &why) == 0, b, 70,
	    "quoted 64");
	memset(b + 1, 'q', 63);
	memcpy(b + 64, "\"@x.org", 7);
	check(addr_parse_mailbox(b, 71, 0, &a, &why) == -1, b, 71,
	    "quoted 65");

	/* 63-octet label passes, 64 does not */
	memcpy(b, "u@", 2);
	memset(b + 2, 'd', 63);
	memcpy(b + 65, ".org", 4);
	check(addr_parse_mailbox(b, 69, 0, &a, &why) == 0, b, 69,
	    "label 63");
	memset(b + 2, 'd', 64);
	memcpy(b + 66, ".org", 4);
	check(addr_parse_mailbox(b, 70, 0, &a, &why) == -1, b, 70,
	    "label 64");

	/* "a@" + 254-octet domain = 256: the longest path */
	memcpy(b, "a@", 2);
	for (n = 2, i = 0; n < 256; i++)
		b[n++] = (i % 50 == 49) ? '.' : 'd';
	check(addr_parse_mailbox(b, 256, 0, &a, &why) == 0, b, 256,
	    "path 256");
	check(a.domainlen == 254, b, 256, "path 256 domainlen");
	b[256] = 'd';
	check(addr_parse_mailbox(b, 257, 0, &a, &why) == -1, b, 257,
	    "path 257");
	/* domain of 255 is valid by itself, 256 is not */
	check(addr_domain_valid(b + 2, 255, 0), b + 2, 255, "domain 255");
	b[257] = 'd';
	check(!addr_domain_valid(b + 2, 256, 0), b + 2, 256, "domain 256");

	/* a long U-label: 40 x U+00E9 = 80 octets, xn-- form is short */
	memcpy(b, "u@", 2);
	for (i = 0; i < 40; i++)
		memcpy(b + 2 + 2 * i, "\xc3\xa9", 2);
	memcpy(b + 82, ".de", 3);
	check(addr_parse_mailbox(b, 85, 1, &a, &why) == 0, b, 85,
	    "long U-label");
}

struct dom_case {
	const char	*in;
	size_t		 inlen;
	int		 utf8;
	int		 valid;
};

static const struct dom_case dom_cases[] = {
	{ B("example.com"), 0, 1 },
	{ B("example.com."), 0, 1 },
	{ B("EXAMPLE"), 0, 1 },
	{ B("xn--bcher-kva.example"), 0, 1 },
	{ B("b\xc3\xbc" "cher.example"), 0, 0 },
	{ B("b\xc3\xbc" "cher.example"), 1, 1 },
	{ B("[127.0.0.1]"), 0, 1 },
	{ B("[IPv6:::1]"), 0, 1 },
	{ B("[IPv6:::1]x"), 0, 0 },
	{ B("[127.0.0.1"), 0, 0 },
	{ B("."), 0, 0 },
	{ B(""), 0, 0 },
	{ B("ex ample"), 0, 0 },
	{ B("-a.b"), 0, 0 },
	{ B("a-.b"), 0, 0 },
	{ B("a.b-"), 0, 0 },
	{ B("a..b"), 0, 0 },
	{ B("a.b.."), 0, 0 },
	{ B("a\0b"), 0, 0 },
	{ B("a/b"), 0, 0 },
};

struct eq_case {
	const char	*a;
	size_t		 alen;
	const char	*b;
	size_t		 blen;
	int		 eq;
};

static const struct eq_case eq_cases[] = {
	{ B("Example.COM"), B("example.com."), 1 },
	{ B("example.com."), B("EXAMPLE.com"), 1 },
	{ B("a.b"), B("a.c"), 0 },
	{ B("a."), B("a"), 1 },
	{ B("a.."), B("a"), 0 },
	{ B("a"), B("ab"), 0 },
	{ B(""), B(""), 1 },
	{ B(""), B("."), 1 },
	{ B("\xc3\x84"), B("\xc3\xa4"), 0 },
};

static void
test_domain(void)
{
	const struct dom_case	*d;
	const struct eq_case	*e;
	size_t			 i;

	for (i = 0; i < sizeof(dom_cases) / sizeof(dom_cases[0]); i++) {
		d = &dom_cases[i];
		check(addr_domain_valid(d->in, d->inlen, d->utf8) == d->valid,
		    d->in, d->inlen, "domain_valid");
	}
	for (i = 0; i < sizeof(eq_cases) / sizeof(eq_cases[0]); i++) {
		e = &eq_cases[i];
		check(addr_domain_eq(e->a, e->alen, e->b, e->blen) == e->eq,
		    e->a, e->alen, "domain_eq");
		check(addr_domain_eq(e->b, e->blen, e->a, e->alen) == e->eq,
		    e->b, e->blen, "domain_eq reversed");
	}
}

static void
test_postmaster(void)
{
	static const struct {
		const char	*in;
		int		 pm;
	} cases[] = {
		{ "Postmaster@example.com", 1 },
		{ "postmaster", 1 },
		{ "POSTMASTER", 1 },
		{ "\"postmaster\"@example.com", 1 },
		{ "\"postmaster\\\"\"@example.com", 0 },
		{ "postmaster2@example.com", 0 },
		{ "post.master@example.com", 0 },
	};
	struct addr	 a;
	const char	*why;
	size_t		 i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = strlen(cases[i].in);
		if (addr_parse_mailbox(cases[i].in, n, 0, &a, &why) == -1) {
			check(0, cases[i].in, n, "postmaster parse");
			continue;
		}
		check(addr_is_postmaster(&a) == cases[i].pm, cases[i].in, n,
		    "is_postmaster");
	}
	memset(&a, 0, sizeof(a));
	check(addr_is_postmaster(&a) == 0, "", 0, "is_postmaster empty");
}
