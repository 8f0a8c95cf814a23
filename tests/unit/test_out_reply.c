/*
 * test_out_reply.c - table-driven tests of src/smtp_out/out_reply.c:
 * oreply_parse() on complete, partial, multiline, hostile and
 * over-long replies, and oehlo_parse() on EHLO keyword lists.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_out/smtp_out.h"
#include "unit.h"

static void	 test_replies(void);
static void	 test_limits(void);
static void	 test_split(void);
static void	 test_ehlo(void);

struct reply_case {
	const char	*in;
	int		 rc;		/* oreply_parse() result */
	unsigned	 code;
	const char	*text;
	size_t		 used;		/* 0 = all of in */
	size_t		 nlines;
};

static const struct reply_case replies[] = {
	{ "220 mx.example.com ESMTP\r\n", 1, 220, "mx.example.com ESMTP",
	    0, 1 },
	{ "250 OK\n", 1, 250, "OK", 0, 1 },
	{ "250\r\n", 1, 250, "", 0, 1 },
	{ "250 \r\n", 1, 250, "", 0, 1 },
	{ "250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 1,
	    250, "mx.example.com PIPELINING SIZE 1000", 0, 3 },
	{ "550-5.1.1 no such\r\n550-5.1.1 user here\r\n550 5.1.1 sorry\r\n",
	    1, 550, "5.1.1 no such user here sorry", 0, 3 },
	{ "250 OK\r\n250 again\r\n", 1, 250, "OK", 8, 1 },
	{ "421 4.4.2 bye \"now\"\\\r\n", 1, 421,
	    "4.4.2 bye \\x22now\\x22\\x5c", 0, 1 },
	{ "554 bad\x01\x7f\xff\r\n", 1, 554, "bad\\x01\\x7f\\xff", 0, 1 },
	{ "250 a\tb  \r\n", 1, 250, "a\\x09b", 0, 1 },
	{ "250 x\0y\r\n", 1, 250, "x\\x00y", 9, 1 },
	/* incomplete */
	{ "", 0, 0, NULL, 0, 0 },
	{ "250", 0, 0, NULL, 0, 0 },
	{ "250-first\r\n", 0, 0, NULL, 0, 0 },
	{ "250-first\r\n250 la", 0, 0, NULL, 0, 0 },
	/* malformed */
	{ "25\r\n", -1, 0, NULL, 0, 0 },
	{ "abc ok\r\n", -1, 0, NULL, 0, 0 },
	{ "199 low\r\n", -1, 0, NULL, 0, 0 },
	{ "600 high\r\n", -1, 0, NULL, 0, 0 },
	{ "250xok\r\n", -1, 0, NULL, 0, 0 },
	{ "250-a\r\n251 b\r\n", -1, 0, NULL, 0, 0 },
	{ "250-a\r\n\r\n", -1, 0, NULL, 0, 0 },
	{ "2a0 x\r\n", -1, 0, NULL, 0, 0 },
};

static void
test_replies(void)
{
	const struct reply_case	*c;
	struct oreply		 r;
	size_t			 i, len, used, want;
	int			 rc;

	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		c = &replies[i];
		len = c->used != 0 && c->used > strlen(c->in) ? c->used :
		    strlen(c->in);
		used = 0;
		rc = oreply_parse(c->in, len, &r, &used);
		check(rc == c->rc, "reply %zu: rc %d, want %d", i, rc, c->rc);
		if (rc != 1 || c->rc != 1)
			continue;
		want = c->used != 0 ? c->used : strlen(c->in);
		check(r.code == c->code, "reply %zu: code %u", i, r.code);
		check(strcmp(r.text, c->text) == 0, "reply %zu: text \"%s\"",
		    i, r.text);
		check(used == want, "reply %zu: used %zu, want %zu", i, used,
		    want);
		check(r.nlines == c->nlines, "reply %zu: %zu lines", i,
		    r.nlines);
	}
}

/* test_limits - line length, line count and text truncation */
static void
test_limits(void)
{
	struct oreply	 r;
	char		*p;
	size_t		 i, len, used;
	int		 rc;

	p = malloc(200000);
	if (p == NULL)
		exit(2);
	/* a line of exactly OUT_REPLY_LINE_MAX octets is fine */
	memcpy(p, "250 ", 4);
	memset(p + 4, 'a', OUT_REPLY_LINE_MAX - 4);
	memcpy(p + OUT_REPLY_LINE_MAX, "\r\n", 2);
	rc = oreply_parse(p, OUT_REPLY_LINE_MAX + 2, &r, &used);
	check(rc == 1 && used == OUT_REPLY_LINE_MAX + 2,
	    "max line: rc %d", rc);
	check(strlen(r.text) < OUT_TEXT_MAX &&
	    strcmp(r.text + strlen(r.text) - 3, "...") == 0,
	    "max line: text truncated with ...");
	/* one more octet is too long, with or without the line end */
	p[OUT_REPLY_LINE_MAX] = 'a';
	memcpy(p + OUT_REPLY_LINE_MAX + 1, "\r\n", 2);
	rc = oreply_parse(p, OUT_REPLY_LINE_MAX + 3, &r, &used);
	check(rc == -1, "long line: rc %d", rc);
	rc = oreply_parse(p, OUT_REPLY_LINE_MAX + 2, &r, &used);
	check(rc == -1, "long line without end: rc %d", rc);
	rc = oreply_parse(p, OUT_REPLY_LINE_MAX + 1, &r, &used);
	check(rc == 0, "long line, not yet known: rc %d", rc);

	/* OUT_REPLY_LINES_MAX lines are fine, one more is not */
	for (i = len = 0; i < OUT_REPLY_LINES_MAX + 1; i++) {
		memcpy(p + len, "250-x\r\n", 7);
		len += 7;
	}
	p[(OUT_REPLY_LINES_MAX - 1) * 7 + 3] = ' ';
	rc = oreply_parse(p, OUT_REPLY_LINES_MAX * 7, &r, &used);
	check(rc == 1 && r.nlines == OUT_REPLY_LINES_MAX,
	    "max lines: rc %d", rc);
	p[(OUT_REPLY_LINES_MAX - 1) * 7 + 3] = '-';
	rc = oreply_parse(p, len, &r, &used);
	check(rc == -1, "too many lines: rc %d", rc);
	rc = oreply_parse(p, OUT_REPLY_LINES_MAX * 7, &r, &used);
	check(rc == -1, "too many lines, last unfinished: rc %d", rc);
	free(p);
}

/* test_split - every prefix of a reply is "need more", never an error */
static void
test_split(void)
{
	static const char	 in[] = "250-mx.example.com Hello\r\n"
	    "250-SIZE 52428800\r\n250 PIPELINING\r\n";
	struct oreply		 r;
	size_t			 n, used;
	int			 rc, bad = 0;

	for (n = 0; n < sizeof(in) - 1; n++)
		if (oreply_parse(in, n, &r, &used) != 0)
			bad++;
	check(bad == 0, "split: %d prefixes not incomplete", bad);
	rc = oreply_parse(in, sizeof(in) - 1, &r, &used);
	check(rc == 1 && used == sizeof(in) - 1 && r.nlines == 3,
	    "split: whole reply");
}

struct ehlo_case {
	const char	*in;
	const char	*name;
	int		 pipelining, starttls, eightbit, smtputf8, chunking,
			 binarymime, dsn, has_size;
	size_t		 size;
};

static const struct ehlo_case ehlos[] = {
	{ "250-MX.Example.COM Hello [192.0.2.1]\r\n250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n250-STARTTLS\r\n250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n"
	    "250 DSN\r\n", "mx.example.com", 1, 1, 1, 1, 1, 1, 1, 1,
	    10240000 },
	{ "250-mx\r\n250-pipelining\r\n250-starttls\r\n250 size\r\n", "mx",
	    1, 1, 0, 0, 0, 0, 0, 1, 0 },
	{ "250 mx.example.com\r\n", "mx.example.com", 0, 0, 0, 0, 0, 0, 0,
	    0, 0 },
	/* keywords count only after line 1; prefixes are not keywords */
	{ "250-PIPELINING STARTTLS\r\n250-STARTTLSX\r\n250-PIPE\r\n"
	    "250 8BITMIMES\r\n", "pipelining", 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "250-mx\n250-SIZE 0\n250-AUTH=LOGIN\n250 Chunking\n", "mx", 0, 0,
	    0, 0, 1, 0, 0, 1, 0 },
	{ "250-mx\r\n250 SIZE 99999999999999999999999\r\n", "mx", 0, 0, 0,
	    0, 0, 0, 0, 1, 0 },
	{ "250-m\x01x\r\n250 DSN", "m", 0, 0, 0, 0, 0, 0, 1, 0, 0 },
	{ "250", "", 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "", "", 0, 0, 0, 0, 0, 0, 0, 0, 0 },
};

static void
test_ehlo(void)
{
	const struct ehlo_case	*c;
	struct oehlo		 o;
	size_t			 i;

	for (i = 0; i < sizeof(ehlos) / sizeof(ehlos[0]); i++) {
		c = &ehlos[i];
		oehlo_parse(c->in, strlen(c->in), &o);
		check(strcmp(o.name, c->name) == 0, "ehlo %zu: name \"%s\"",
		    i, o.name);
		check(o.pipelining == c->pipelining && o.starttls ==
		    c->starttls && o.eightbit == c->eightbit && o.smtputf8 ==
		    c->smtputf8 && o.chunking == c->chunking && o.binarymime ==
		    c->binarymime && o.dsn == c->dsn, "ehlo %zu: keywords", i);
		check(o.has_size == c->has_size && o.size == c->size,
		    "ehlo %zu: size %d %zu", i, o.has_size, o.size);
	}
}

int
main(void)
{
	test_replies();
	test_limits();
	test_split();
	test_ehlo();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
