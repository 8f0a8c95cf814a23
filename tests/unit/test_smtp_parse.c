/*
 * test_smtp_parse.c - table-driven tests of src/smtp_in/smtp_parse.c:
 * command line framing, verb splitting, MAIL/RCPT arguments, and the
 * DATA/BDAT scanner.
 *
 * Every scanner case is fed whole, split in two at every position, in
 * three pieces at every pair of positions (short inputs), and one octet
 * at a time; all feeds must give the same content, flags and end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_in/smtp_parse.h"

/* B(s): a string literal as (ptr, len), so that tests may hold NULs */
#define B(s)	s, sizeof(s) - 1
#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

static int	 npass, nfail;

static void	 check(int, const char *, size_t, const char *);
static int	 slice_is(const char *, size_t, const char *);
static void	 test_line(void);
static void	 test_split(void);
static void	 test_mail(void);
static void	 test_rcpt(void);
static void	 test_data(void);
static void	 test_data_long(void);
static void	 test_data_runs(void);
static void	 test_data_abort(void);
static int	 ds_refuse(void *, const char *, size_t);

int
main(void)
{
	test_line();
	test_split();
	test_mail();
	test_rcpt();
	test_data();
	test_data_long();
	test_data_runs();
	test_data_abort();
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
	for (i = 0; i < len && i < 100; i++)
		if (in[i] >= 0x20 && in[i] < 0x7f)
			putchar(in[i]);
		else
			printf("\\x%02x", (unsigned char)in[i]);
	printf("%s\"\n", len > 100 ? "..." : "");
}

/* slice_is - (p, len) equals the C string s, or both are NULL */
static int
slice_is(const char *p, size_t len, const char *s)
{
	if (s == NULL || p == NULL)
		return s == p;
	return len == strlen(s) && memcmp(p, s, len) == 0;
}

/* ---- smtp_line_next ------------------------------------------------ */

static const struct {
	const char		*in;
	size_t			 inlen;
	size_t			 max;
	enum smtp_line_result	 res;
	size_t			 linelen;
	size_t			 consumed;
} line_cases[] = {
	{ B("HELO x\r\n"), 512, LINE_OK, 6, 8 },
	{ B("HELO x\r\nNOOP\r\n"), 512, LINE_OK, 6, 8 },
	{ B("\r\n"), 512, LINE_OK, 0, 2 },
	{ B("ab\0c\r\n"), 512, LINE_OK, 4, 6 },
	{ B(""), 512, LINE_NEED_MORE, 0, 0 },
	{ B("HELO x"), 512, LINE_NEED_MORE, 0, 0 },
	{ B("HELO x\r"), 512, LINE_NEED_MORE, 0, 0 },
	{ B("HELO x\n"), 512, LINE_BARE_LF, 0, 0 },
	{ B("\n"), 512, LINE_BARE_LF, 0, 0 },
	{ B("a\nb\r\n"), 512, LINE_BARE_LF, 0, 0 },
	{ B("HELO\rx\r\n"), 512, LINE_BARE_CR, 0, 0 },
	{ B("a\r\rb"), 512, LINE_BARE_CR, 0, 0 },
	{ B("a\r.\r\n"), 512, LINE_BARE_CR, 0, 0 },
	/* max counts the CRLF */
	{ B("12345678\r\n"), 10, LINE_OK, 8, 10 },
	{ B("123456789\r\n"), 10, LINE_TOO_LONG, 0, 0 },
	{ B("123456789\r"), 10, LINE_TOO_LONG, 0, 0 },
	{ B("1234567890"), 10, LINE_TOO_LONG, 0, 0 },
	{ B("1234567890\n"), 10, LINE_TOO_LONG, 0, 0 },
	{ B("123456789"), 10, LINE_NEED_MORE, 0, 0 },
	{ B("12345678\r"), 10, LINE_NEED_MORE, 0, 0 },
	{ B("1234\n67890"), 10, LINE_BARE_LF, 0, 0 },
};

static void
test_line(void)
{
	enum smtp_line_result	 r;
	size_t			 i, ll, cons;

	for (i = 0; i < NITEMS(line_cases); i++) {
		ll = cons = 9999;
		r = smtp_line_next(line_cases[i].in, line_cases[i].inlen,
		    line_cases[i].max, &ll, &cons);
		check(r == line_cases[i].res, line_cases[i].in,
		    line_cases[i].inlen, "line result");
		if (r == LINE_OK)
			check(ll == line_cases[i].linelen &&
			    cons == line_cases[i].consumed, line_cases[i].in,
			    line_cases[i].inlen, "line lengths");
	}
}

/* ---- smtp_cmd_split ------------------------------------------------ */

static const struct {
	const char	*in;
	size_t		 inlen;
	int		 rc;
	const char	*verb;
	const char	*arg;
} split_cases[] = {
	{ B("HELO example.com"), 0, "HELO", "example.com" },
	{ B("QUIT"), 0, "QUIT", "" },
	{ B("NOOP   "), 0, "NOOP", "" },
	{ B("MAIL FROM:<a@b> SIZE=10  "), 0, "MAIL", "FROM:<a@b> SIZE=10" },
	{ B("MAIL  FROM:<>"), 0, "MAIL", "FROM:<>" },
	{ B("rcpt TO:<x@y>"), 0, "rcpt", "TO:<x@y>" },
	{ B("HELO a\tb"), 0, "HELO", "a\tb" },
	{ B("HELO \xc3\xa9"), 0, "HELO", "\xc3\xa9" },
	{ B("ABCDEFGHIJKLMNO x"), 0, "ABCDEFGHIJKLMNO", "x" },
	{ B(""), -1, NULL, NULL },
	{ B(" HELO x"), -1, NULL, NULL },
	{ B("HELO\tx"), -1, NULL, NULL },
	{ B("HE1O x"), -1, NULL, NULL },
	{ B("MAIL:FROM"), -1, NULL, NULL },
	{ B("ABCDEFGHIJKLMNOP x"), -1, NULL, NULL },
	{ B("HELO a\0b"), -1, NULL, NULL },
	{ B("HELO a\x7f"), -1, NULL, NULL },
	{ B("HELO a\x01"), -1, NULL, NULL },
	{ B("HELO a\r"), -1, NULL, NULL },
	{ B("HELO a\nb"), -1, NULL, NULL },
	{ B("\x1b[2J"), -1, NULL, NULL },
};

static void
test_split(void)
{
	struct smtp_cmd	 cmd;
	size_t		 i;
	int		 rc;

	for (i = 0; i < NITEMS(split_cases); i++) {
		rc = smtp_cmd_split(split_cases[i].in, split_cases[i].inlen,
		    &cmd);
		check(rc == split_cases[i].rc, split_cases[i].in,
		    split_cases[i].inlen, "split rc");
		if (rc == 0)
			check(slice_is(cmd.verb, cmd.verblen,
			    split_cases[i].verb) &&
			    slice_is(cmd.arg, cmd.arglen, split_cases[i].arg),
			    split_cases[i].in, split_cases[i].inlen,
			    "split slices");
	}
	(void)smtp_cmd_split(B("mAiL FROM:<>"), &cmd);
	check(smtp_verb_eq(&cmd, "MAIL"), "mAiL", 4, "verb_eq");
	check(!smtp_verb_eq(&cmd, "MAI"), "mAiL", 4, "verb_eq short");
	check(!smtp_verb_eq(&cmd, "MAILX"), "mAiL", 4, "verb_eq long");
	check(!smtp_verb_eq(&cmd, "RCPT"), "mAiL", 4, "verb_eq other");
}

/* ---- smtp_parse_mail ----------------------------------------------- */

static const struct {
	const char		*in;
	size_t			 inlen;
	enum smtp_arg_error	 err;
	int			 null_sender;
	const char		*local;
	const char		*domain;
	unsigned		 flags;
	int			 has_size;
	uint64_t		 size;
	enum smtp_body		 body;
	int			 smtputf8;
	const char		*auth;
} mail_cases[] = {
	{ B("FROM:<user@example.com>"), ARG_OK, 0, "user", "example.com",
	    0, 0, 0, BODY_NONE, 0, NULL },
	{ B("from:<user@example.com>"), ARG_OK, 0, "user", "example.com",
	    0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM: <user@example.com>"), ARG_OK, 0, "user", "example.com",
	    0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<>"), ARG_OK, 1, NULL, NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<> SIZE=0"), ARG_OK, 1, NULL, NULL, 0, 1, 0, BODY_NONE, 0,
	    NULL },
	{ B("FROM:<a@b.c> SIZE=26214400 BODY=8BITMIME"), ARG_OK, 0, "a",
	    "b.c", 0, 1, 26214400, BODY_8BITMIME, 0, NULL },
	{ B("FROM:<a@b.c> body=7bit"), ARG_OK, 0, "a", "b.c", 0, 0, 0,
	    BODY_7BIT, 0, NULL },
	{ B("FROM:<a@b.c> BODY=BINARYMIME"), ARG_OK, 0, "a", "b.c", 0, 0, 0,
	    BODY_BINARYMIME, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=18446744073709551615"), ARG_OK, 0, "a", "b.c",
	    0, 1, UINT64_MAX, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=00000000000000000001"), ARG_OK, 0, "a", "b.c",
	    0, 1, 1, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH=<>"), ARG_OK, 0, "a", "b.c", 0, 0, 0,
	    BODY_NONE, 0, "<>" },
	{ B("FROM:<a@b.c> AUTH=joe+2Bx@b.c"), ARG_OK, 0, "a", "b.c", 0, 0, 0,
	    BODY_NONE, 0, "joe+2Bx@b.c" },
	{ B("FROM:<a@b.c> SMTPUTF8"), ARG_OK, 0, "a", "b.c", 0, 0, 0,
	    BODY_NONE, 1, NULL },
	{ B("FROM:<\xc3\xbc@b.c> SMTPUTF8 BODY=8BITMIME"), ARG_OK, 0,
	    "\xc3\xbc", "b.c", ADDR_UTF8, 0, 0, BODY_8BITMIME, 1, NULL },
	{ B("FROM:<a@b.c>  SIZE=1   BODY=7BIT"), ARG_OK, 0, "a", "b.c", 0, 1,
	    1, BODY_7BIT, 0, NULL },
	{ B("FROM:<\"x>y\"@b.c>"), ARG_OK, 0, "\"x>y\"", "b.c", ADDR_QUOTED, 0,
	    0, BODY_NONE, 0, NULL },
	{ B("FROM:<\"a\\\">\"@b.c> SIZE=5"), ARG_OK, 0, "\"a\\\">\"", "b.c",
	    ADDR_QUOTED, 1, 5, BODY_NONE, 0, NULL },
	{ B("FROM:<@r.example:a@b.c>"), ARG_OK, 0, "a", "b.c", ADDR_ROUTE, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a%b@c.d>"), ARG_OK, 0, "a%b", "c.d", ADDR_ROUTING, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@[IPv6:::1]>"), ARG_OK, 0, "a", "[IPv6:::1]", ADDR_LITERAL,
	    0, 0, BODY_NONE, 0, NULL },

	/* syntax */
	{ B(""), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:a@b.c"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0,
	    NULL },
	{ B("FROM:<a@b.c"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0,
	    NULL },
	{ B("FROM:  <a@b.c>"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE,
	    0, NULL },
	{ B("FROM :<a@b.c>"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE,
	    0, NULL },
	{ B("TO:<a@b.c>"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0,
	    NULL },
	{ B("FROM:<a@b.c>SIZE=1"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c>>"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE,
	    0, NULL },
	{ B("FROM:<\"a>@b.c>"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0, BODY_NONE,
	    0, NULL },
	/* SIZE: overflow, empty, non-digits, 21 digits */
	{ B("FROM:<a@b.c> SIZE=18446744073709551616"), ARG_SYNTAX, 0, NULL,
	    NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=99999999999999999999"), ARG_SYNTAX, 0, NULL,
	    NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=000000000000000000001"), ARG_SYNTAX, 0, NULL,
	    NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE="), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=-1"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=1k"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=1=2"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	/* BODY */
	{ B("FROM:<a@b.c> BODY=8BIT"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> BODY="), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> BODY"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> BODY=8BITMIMEX"), ARG_SYNTAX, 0, NULL, NULL, 0, 0,
	    0, BODY_NONE, 0, NULL },
	/* SMTPUTF8 takes no value; AUTH is xtext */
	{ B("FROM:<a@b.c> SMTPUTF8=yes"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH="), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH=a+2"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH=a+2b"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH=a+"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH=\xc3\xbc"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	/* duplicates */
	{ B("FROM:<a@b.c> SIZE=1 SIZE=1"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> BODY=7BIT body=8bitmime"), ARG_SYNTAX, 0, NULL,
	    NULL, 0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SMTPUTF8 smtputf8"), ARG_SYNTAX, 0, NULL, NULL, 0,
	    0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> AUTH=<> AUTH=<>"), ARG_SYNTAX, 0, NULL, NULL, 0, 0,
	    0, BODY_NONE, 0, NULL },
	/* keyword syntax */
	{ B("FROM:<a@b.c> =1"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> -X=1"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> X_Y=1"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=1\t"), ARG_SYNTAX, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	/* unknown parameters */
	{ B("FROM:<a@b.c> RET=HDRS"), ARG_UNKNOWN_PARAM, 0, NULL, NULL, 0, 0,
	    0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZE=1 X-FOO"), ARG_UNKNOWN_PARAM, 0, NULL, NULL,
	    0, 0, 0, BODY_NONE, 0, NULL },
	{ B("FROM:<a@b.c> SIZES=1"), ARG_UNKNOWN_PARAM, 0, NULL, NULL, 0, 0,
	    0, BODY_NONE, 0, NULL },
	/* bad addresses */
	{ B("FROM:<postmaster>"), ARG_BAD_ADDR, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@>"), ARG_BAD_ADDR, 0, NULL, NULL, 0, 0, 0, BODY_NONE, 0,
	    NULL },
	{ B("FROM:<a b@c.d>"), ARG_BAD_ADDR, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b..c>"), ARG_BAD_ADDR, 0, NULL, NULL, 0, 0, 0, BODY_NONE,
	    0, NULL },
	{ B("FROM:<a@\xc3>"), ARG_BAD_ADDR, 0, NULL, NULL, 0, 0, 0, BODY_NONE,
	    0, NULL },
	/* RFC 6531: UTF-8 needs SMTPUTF8 */
	{ B("FROM:<\xc3\xbc@b.c>"), ARG_UTF8, 0, NULL, NULL, 0, 0, 0,
	    BODY_NONE, 0, NULL },
	{ B("FROM:<a@b\xc3\xbc.c> BODY=8BITMIME"), ARG_UTF8, 0, NULL, NULL, 0,
	    0, 0, BODY_NONE, 0, NULL },
};

static void
test_mail(void)
{
	struct smtp_mail_args	 m;
	enum smtp_arg_error	 e;
	const char		*why, *in;
	size_t			 i, n;

	for (i = 0; i < NITEMS(mail_cases); i++) {
		in = mail_cases[i].in;
		n = mail_cases[i].inlen;
		why = NULL;
		e = smtp_parse_mail(in, n, &m, &why);
		check(e == mail_cases[i].err, in, n, "mail result");
		if (e != ARG_OK) {
			check(why != NULL, in, n, "mail why");
			continue;
		}
		check(m.null_sender == mail_cases[i].null_sender, in, n,
		    "mail null_sender");
		if (!m.null_sender)
			check(slice_is(m.addr.local, m.addr.locallen,
			    mail_cases[i].local) && slice_is(m.addr.domain,
			    m.addr.domainlen, mail_cases[i].domain) &&
			    m.addr.flags == mail_cases[i].flags, in, n,
			    "mail addr");
		check(m.has_size == mail_cases[i].has_size &&
		    m.size == mail_cases[i].size, in, n, "mail size");
		check(m.body == mail_cases[i].body, in, n, "mail body");
		check(m.smtputf8 == mail_cases[i].smtputf8, in, n,
		    "mail smtputf8");
		check(slice_is(m.auth, m.authlen, mail_cases[i].auth), in, n,
		    "mail auth");
	}
}

/* ---- smtp_parse_rcpt ----------------------------------------------- */

static const struct {
	const char		*in;
	size_t			 inlen;
	int			 utf8;
	enum smtp_arg_error	 err;
	const char		*path;
	const char		*local;
	const char		*domain;
	unsigned		 flags;
} rcpt_cases[] = {
	{ B("TO:<user@example.com>"), 0, ARG_OK, "user@example.com", "user",
	    "example.com", 0 },
	{ B("to: <User@Example.com.>"), 0, ARG_OK, "User@Example.com.",
	    "User", "Example.com", 0 },
	{ B("TO:<postmaster>"), 0, ARG_OK, "postmaster", "postmaster", NULL,
	    ADDR_POSTMASTER },
	{ B("TO:<Postmaster@example.com>"), 0, ARG_OK, "Postmaster@example.com",
	    "Postmaster", "example.com", 0 },
	{ B("TO:<@a.example,@b.example:u@c.example>"), 0, ARG_OK,
	    "@a.example,@b.example:u@c.example", "u", "c.example", ADDR_ROUTE },
	{ B("TO:<\"u@v\"@example.com>"), 0, ARG_OK, "\"u@v\"@example.com",
	    "\"u@v\"", "example.com", ADDR_QUOTED | ADDR_ROUTING },
	{ B("TO:<u%v@example.com>"), 0, ARG_OK, "u%v@example.com", "u%v",
	    "example.com", ADDR_ROUTING },
	{ B("TO:<v!u@example.com>"), 0, ARG_OK, "v!u@example.com", "v!u",
	    "example.com", ADDR_ROUTING },
	{ B("TO:<u@[IPv6:2001:db8::25]>"), 0, ARG_OK,
	    "u@[IPv6:2001:db8::25]", "u", "[IPv6:2001:db8::25]", ADDR_LITERAL },
	{ B("TO:<u@[192.0.2.25]>"), 0, ARG_OK, "u@[192.0.2.25]", "u",
	    "[192.0.2.25]", ADDR_LITERAL },
	{ B("TO:<\xc3\xbc@\xc3\xa4.de>"), 1, ARG_OK, "\xc3\xbc@\xc3\xa4.de",
	    "\xc3\xbc", "\xc3\xa4.de", ADDR_UTF8 },

	{ B("TO:<\xc3\xbc@\xc3\xa4.de>"), 0, ARG_UTF8, NULL, NULL, NULL, 0 },
	{ B("TO:<>"), 0, ARG_BAD_ADDR, NULL, NULL, NULL, 0 },
	{ B("TO:<user>"), 0, ARG_BAD_ADDR, NULL, NULL, NULL, 0 },
	{ B("TO:<u@[1.2.3.4.5]>"), 0, ARG_BAD_ADDR, NULL, NULL, NULL, 0 },
	{ B("TO:<u@[IPv6:::g]>"), 0, ARG_BAD_ADDR, NULL, NULL, NULL, 0 },
	{ B("TO:<@a.example:>"), 0, ARG_BAD_ADDR, NULL, NULL, NULL, 0 },
	{ B("TO:<u@x> NOTIFY=NEVER"), 0, ARG_UNKNOWN_PARAM, NULL, NULL, NULL,
	    0 },
	{ B("TO:<u@x> FOO"), 0, ARG_UNKNOWN_PARAM, NULL, NULL, NULL, 0 },
	{ B("TO:<u@x> =x"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("TO:<u@x>FOO"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("TO:u@x"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("TO:"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("FROM:<u@x>"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("TO:<u@x"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("TO:<\"u>@x"), 0, ARG_SYNTAX, NULL, NULL, NULL, 0 },
	{ B("TO:<u\0@x>"), 0, ARG_BAD_ADDR, NULL, NULL, NULL, 0 },
};

static void
test_rcpt(void)
{
	struct smtp_rcpt_args	 r;
	enum smtp_arg_error	 e;
	const char		*why, *in;
	size_t			 i, n;

	for (i = 0; i < NITEMS(rcpt_cases); i++) {
		in = rcpt_cases[i].in;
		n = rcpt_cases[i].inlen;
		why = NULL;
		e = smtp_parse_rcpt(in, n, rcpt_cases[i].utf8, &r, &why);
		check(e == rcpt_cases[i].err, in, n, "rcpt result");
		if (e != ARG_OK) {
			check(why != NULL, in, n, "rcpt why");
			continue;
		}
		check(slice_is(r.path, r.pathlen, rcpt_cases[i].path), in, n,
		    "rcpt path");
		check(slice_is(r.addr.local, r.addr.locallen,
		    rcpt_cases[i].local), in, n, "rcpt local");
		check(slice_is(r.addr.domain, r.addr.domainlen,
		    rcpt_cases[i].domain), in, n, "rcpt domain");
		check(r.addr.flags == rcpt_cases[i].flags, in, n,
		    "rcpt flags");
	}
}

/* ---- data_scan ----------------------------------------------------- */

struct ds_case {
	const char		*in;
	size_t			 inlen;
	enum data_scan_mode	 mode;
	const char		*out;
	size_t			 outlen;
	unsigned		 errors;
	int			 done;
	size_t			 consumed;	/* DATA: octets up to the end */
};

#define D	DSM_DATA
#define T	DSM_BDAT
#define BCR	DS_BARE_CR
#define BLF	DS_BARE_LF

static const struct ds_case ds_cases[] = {
	/* ordinary ends; pipelined commands stay unconsumed */
	{ B(".\r\n"), D, B(""), 0, 1, 3 },
	{ B("\r\n.\r\n"), D, B("\r\n"), 0, 1, 5 },
	{ B("Subject: x\r\n\r\nbody\r\n.\r\n"), D,
	    B("Subject: x\r\n\r\nbody\r\n"), 0, 1, 23 },
	{ B("a\r\n.\r\nQUIT\r\n"), D, B("a\r\n"), 0, 1, 6 },
	{ B("a\r\n.\r\n.\r\n"), D, B("a\r\n"), 0, 1, 6 },
	{ B("a\r\n.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\n"), D,
	    B("a\r\n"), 0, 1, 6 },
	/* dot-unstuffing (RFC 5321 4.5.2) */
	{ B("..x\r\n.\r\n"), D, B(".x\r\n"), 0, 1, 8 },
	{ B("..\r\n.\r\n"), D, B(".\r\n"), 0, 1, 7 },
	{ B("x\r\n..\r\n.\r\n"), D, B("x\r\n.\r\n"), 0, 1, 10 },
	{ B("...\r\n.\r\n"), D, B("..\r\n"), 0, 1, 8 },
	{ B(".x\r\n.\r\n"), D, B("x\r\n"), 0, 1, 7 },
	{ B(". \r\n.\r\n"), D, B(" \r\n"), 0, 1, 7 },
	{ B("a.\r\n.\r\n"), D, B("a.\r\n"), 0, 1, 7 },
	{ B("a\r\n.b.\r\n.\r\n"), D, B("a\r\nb.\r\n"), 0, 1, 11 },
	/* SMTP smuggling variants: none of these ends DATA */
	{ B("a\n.\nb\r\n.\r\n"), D, B("a\n.\nb\r\n"), BLF, 1, 10 },
	{ B("a\r\n.\nb\r\n.\r\n"), D, B("a\r\n\nb\r\n"), BLF, 1, 11 },
	{ B("a\n.\r\nb\r\n.\r\n"), D, B("a\n.\r\nb\r\n"), BLF, 1, 11 },
	{ B("a\r.\rb\r\n.\r\n"), D, B("a\r.\rb\r\n"), BCR, 1, 10 },
	{ B("a\r\n.\rb\r\n.\r\n"), D, B("a\r\n\rb\r\n"), BCR, 1, 11 },
	{ B("a\r.\r\nb\r\n.\r\n"), D, B("a\r.\r\nb\r\n"), BCR, 1, 11 },
	{ B("a\r\n.\r\r\n.\r\n"), D, B("a\r\n\r\r\n"), BCR, 1, 10 },
	{ B("a\n\r\n.\r\n"), D, B("a\n\r\n"), BLF, 1, 7 },
	{ B("\n.\r\n"), D, B("\n.\r\n"), BLF, 0, 4 },
	{ B("\n.\n"), D, B("\n.\n"), BLF, 0, 3 },
	{ B("a\r\n\n.\r\nMAIL FROM:<evil@x>\r\n"), D,
	    B("a\r\n\n.\r\nMAIL FROM:<evil@x>\r\n"), BLF, 0, 27 },
	{ B("a\r\n.\n\r\n.\r\n"), D, B("a\r\n\n\r\n"), BLF, 1, 10 },
	{ B("a\r\r\n.\r\n"), D, B("a\r\r\n"), BCR, 1, 7 },
	{ B("a\r\n\r.\r\n"), D, B("a\r\n\r.\r\n"), BCR, 0, 7 },
	{ B("a\n\n.\n\n"), D, B("a\n\n.\n\n"), BLF, 0, 6 },
	{ B("a\r\n.\r\r\r\n.\r\n"), D, B("a\r\n\r\r\r\n"), BCR, 1, 11 },
	/* unfinished DATA keeps the undecided tail in the state */
	{ B("abc"), D, B("abc"), 0, 0, 3 },
	{ B("abc\r"), D, B("abc\r"), 0, 0, 4 },
	{ B("abc\r\n"), D, B("abc\r\n"), 0, 0, 5 },
	{ B("abc\r\n."), D, B("abc\r\n"), 0, 0, 6 },
	{ B("abc\r\n.\r"), D, B("abc\r\n"), 0, 0, 7 },
	{ B(""), D, B(""), 0, 0, 0 },
	/* NUL: reported, passed through; not for octets after the end */
	{ B("a\0b\r\n.\r\n"), D, B("a\0b\r\n"), DS_NUL, 1, 8 },
	{ B("\0\r\n.\r\n"), D, B("\0\r\n"), DS_NUL, 1, 6 },
	{ B(".\0\r\n.\r\n"), D, B("\0\r\n"), DS_NUL, 1, 7 },
	{ B(".\r\nX\0\r\n"), D, B(""), 0, 1, 3 },
	{ B("a\r\n.\r\n\0"), D, B("a\r\n"), 0, 1, 6 },

	/* BDAT: no dot handling, no end, same flags */
	{ B("a\r\n.\r\nb"), T, B("a\r\n.\r\nb"), 0, 0, 7 },
	{ B("..x\r\n"), T, B("..x\r\n"), 0, 0, 5 },
	{ B("abc\r\n"), T, B("abc\r\n"), 0, 0, 5 },
	{ B(""), T, B(""), 0, 0, 0 },
	{ B("a\nb"), T, B("a\nb"), BLF, 0, 3 },
	{ B("a\rb"), T, B("a\rb"), BCR, 0, 3 },
	{ B("abc\r"), T, B("abc\r"), BCR, 0, 4 },
	{ B("\r"), T, B("\r"), BCR, 0, 1 },
	{ B("a\r\r\n"), T, B("a\r\r\n"), BCR, 0, 4 },
	{ B("a\n\r"), T, B("a\n\r"), BLF | BCR, 0, 3 },
	{ B("\0"), T, B("\0"), DS_NUL, 0, 1 },
	{ B("a\r\n.\r"), T, B("a\r\n.\r"), BCR, 0, 5 },
};

#undef D
#undef T
#undef BCR
#undef BLF

/* collected output of one feed */
struct ds_result {
	char		*out;
	size_t		 outlen;
	size_t		 outcap;
	unsigned	 errors;
	int		 done;
	size_t		 consumed;
	uint64_t	 total;
	int		 calls;
};

static int	 ds_collect(void *, const char *, size_t);
static void	 ds_show(const char *, size_t);
static void	 ds_feed(const char *, size_t, enum data_scan_mode,
		    const size_t *, size_t, struct ds_result *);
static void	 ds_check(const struct ds_case *, const struct ds_result *,
		    const char *);

/* ds_show - print a scanner output on a line of its own */
static void
ds_show(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && i < 100; i++)
		if (p[i] >= 0x20 && p[i] < 0x7f)
			putchar(p[i]);
		else
			printf("\\x%02x", (unsigned char)p[i]);
	printf("\n");
}

/* ds_collect - output callback: append to a struct ds_result */
static int
ds_collect(void *arg, const char *p, size_t len)
{
	struct ds_result	*r = arg;

	if (len == 0 || r->outlen + len > r->outcap) {
		/* an empty or overlong emission is a scanner bug */
		r->calls = -1000000;
		return -1;
	}
	memcpy(r->out + r->outlen, p, len);
	r->outlen += len;
	r->calls++;
	return 0;
}

/*
 * ds_feed - feed in[0..len) in pieces ending at cuts[0..ncuts) (then the
 * rest) to a new scanner.  DATA stops feeding once done; BDAT ends with
 * data_scan_end().
 */
static void
ds_feed(const char *in, size_t len, enum data_scan_mode mode,
    const size_t *cuts, size_t ncuts, struct ds_result *r)
{
	struct data_scanner	 s;
	size_t			 off = 0, stop, used, i;

	r->outlen = 0;
	r->calls = 0;
	r->consumed = 0;
	data_scan_init(&s, mode);
	for (i = 0; i <= ncuts && !s.done; i++) {
		stop = i < ncuts ? cuts[i] : len;
		if (data_scan(&s, in + off, stop - off, &used, ds_collect,
		    r) == -1)
			break;
		r->consumed += used;
		/* DATA consumes all of a piece, unless the end is in it */
		if (used != stop - off && !s.done)
			r->calls = -2000000;
		off = stop;
	}
	if (mode == DSM_BDAT && data_scan_end(&s, ds_collect, r) == -1)
		r->calls = -3000000;
	r->errors = s.errors;
	r->done = s.done;
	r->total = s.total;
}

static void
ds_check(const struct ds_case *c, const struct ds_result *r,
    const char *how)
{
	int	 ok;

	ok = r->calls >= 0 && r->outlen == c->outlen &&
	    memcmp(r->out, c->out, c->outlen) == 0 && r->errors == c->errors &&
	    r->done == c->done && r->consumed == c->consumed &&
	    r->total == c->outlen;
	check(ok, c->in, c->inlen, how);
	if (!ok) {
		printf("  got errors %#x done %d consumed %zu calls %d, "
		    "output: ", r->errors, r->done, r->consumed, r->calls);
		ds_show(r->out, r->outlen);
	}
}

static void
test_data(void)
{
	const struct ds_case	*c;
	struct ds_result	 r;
	size_t			 i, j, k, cuts[2], *one;
	char			 buf[256];

	r.out = buf;
	r.outcap = sizeof(buf);
	for (i = 0; i < NITEMS(ds_cases); i++) {
		c = &ds_cases[i];
		ds_feed(c->in, c->inlen, c->mode, NULL, 0, &r);
		ds_check(c, &r, "data_scan whole");
		/* whole input without a removed dot: a single emission */
		if (c->outlen > 0 && memchr(c->in, '.', c->inlen) == NULL)
			check(r.calls == 1, c->in, c->inlen, "one emission");
		for (j = 0; j <= c->inlen; j++) {
			cuts[0] = j;
			ds_feed(c->in, c->inlen, c->mode, cuts, 1, &r);
			ds_check(c, &r, "data_scan split in two");
			for (k = j; k <= c->inlen && c->inlen <= 64; k++) {
				cuts[1] = k;
				ds_feed(c->in, c->inlen, c->mode, cuts, 2, &r);
				ds_check(c, &r, "data_scan split in three");
			}
		}
		if ((one = calloc(c->inlen + 1, sizeof(*one))) == NULL)
			abort();
		for (j = 0; j < c->inlen; j++)
			one[j] = j + 1;
		ds_feed(c->in, c->inlen, c->mode, one, c->inlen, &r);
		ds_check(c, &r, "data_scan octet by octet");
		free(one);
	}
}

/* RFC 5321 4.5.3.1.6: 1000 octets with CRLF, counted on the wire */
static void
test_data_long(void)
{
	static const struct {
		size_t		 textlen;	/* octets before CRLF */
		int		 dot;		/* stuffed: starts with "." */
		enum data_scan_mode mode;
		unsigned	 errors;
	} cases[] = {
		{ 998, 0, DSM_DATA, 0 },
		{ 999, 0, DSM_DATA, DS_LONG_LINE },
		/* the stuffing dot does not count (RFC 5321 4.5.3.1.6) */
		{ 999, 1, DSM_DATA, 0 },
		{ 1000, 1, DSM_DATA, DS_LONG_LINE },
		{ 5000, 0, DSM_DATA, DS_LONG_LINE },
		{ 998, 0, DSM_BDAT, 0 },
		{ 999, 0, DSM_BDAT, DS_LONG_LINE },
	};
	struct ds_case		 c;
	struct ds_result	 r;
	char			*in, *exp;
	size_t			 i, j, n, cuts[1];

	for (i = 0; i < NITEMS(cases); i++) {
		n = cases[i].textlen;
		/* "x\r\n" + line + "\r\n" + "x\r\n" [+ ".\r\n"] */
		if ((in = malloc(n + 16)) == NULL ||
		    (exp = malloc(n + 16)) == NULL ||
		    (r.out = malloc(n + 16)) == NULL)
			abort();
		r.outcap = n + 16;
		memcpy(in, "x\r\n", 3);
		memset(in + 3, 'y', n);
		if (cases[i].dot)
			in[3] = '.';
		memcpy(in + 3 + n, "\r\nx\r\n.\r\n", 8);
		c.in = in;
		c.inlen = n + (cases[i].mode == DSM_DATA ? 11 : 8);
		c.mode = cases[i].mode;
		c.errors = cases[i].errors;
		c.done = cases[i].mode == DSM_DATA;
		c.consumed = c.inlen;
		/* expected: the input without the stuffing dot and ".\r\n" */
		memcpy(exp, in, 3);
		j = cases[i].dot ? 4 : 3;
		memcpy(exp + 3, in + j, n + 8 - j);
		c.out = exp;
		c.outlen = n + 8 - (j - 3);
		ds_feed(c.in, c.inlen, c.mode, NULL, 0, &r);
		ds_check(&c, &r, "data_scan long line whole");
		/* a few split points around the limit */
		for (j = n - 2; j < n + 8 && j <= c.inlen; j++) {
			cuts[0] = j;
			ds_feed(c.in, c.inlen, c.mode, cuts, 1, &r);
			ds_check(&c, &r, "data_scan long line split");
		}
		free(in);
		free(exp);
		free(r.out);
	}
}

/* content is emitted in runs, and nothing is scanned after the end */
static void
test_data_runs(void)
{
	static const char	 msg[] = "Subject: x\r\n\r\nline one\r\n"
	    "line\ttwo\r\n..stuffed\r\nend\r\n.\r\nQUIT\r\n";
	struct data_scanner	 s;
	struct ds_result	 r;
	char			 buf[256];
	size_t			 used;

	r.out = buf;
	r.outcap = sizeof(buf);
	r.outlen = 0;
	r.calls = 0;
	data_scan_init(&s, DSM_DATA);
	check(data_scan(&s, msg, sizeof(msg) - 1, &used, ds_collect, &r) ==
	    0, msg, sizeof(msg) - 1, "runs rc");
	/* one run before the removed dot, one after */
	check(r.calls == 2, msg, sizeof(msg) - 1, "runs calls");
	check(s.done && used == sizeof(msg) - 1 - 6, msg, sizeof(msg) - 1,
	    "runs used");
	/* once done, the scanner takes nothing more */
	check(data_scan(&s, "QUIT\r\n", 6, &used, ds_collect, &r) == 0 &&
	    used == 0 && r.calls == 2, "QUIT", 4, "runs after done");
	check(data_scan_end(&s, ds_collect, &r) == 0 && r.calls == 2,
	    "end", 3, "runs end after done");
}

/* an output error stops the scanner and is returned */
static int
ds_refuse(void *arg, const char *p, size_t len)
{
	(*(int *)arg)++;
	return -1;
}

static void
test_data_abort(void)
{
	struct data_scanner	 s;
	size_t			 used;
	int			 calls = 0;

	data_scan_init(&s, DSM_DATA);
	check(data_scan(&s, B("abc\r\n.\r\n"), &used, ds_refuse, &calls) ==
	    -1 && calls == 1 && !s.done, "abc", 3, "abort");
	data_scan_init(&s, DSM_BDAT);
	calls = 0;
	check(data_scan(&s, B(".\r"), &used, ds_refuse, &calls) == -1 &&
	    calls == 1, ".", 1, "abort bdat");
	/* the CR pending after ".\r" is emitted at the end */
	data_scan_init(&s, DSM_DATA);
	calls = 0;
	check(data_scan(&s, B(".\r"), &used, ds_refuse, &calls) == 0 &&
	    calls == 0 && used == 2, ".", 1, "abort pending");
	check(data_scan_end(&s, ds_refuse, &calls) == -1 && calls == 1,
	    ".", 1, "abort end");
}
