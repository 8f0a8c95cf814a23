/*
 * test_sendmail.c - the pure parts of moat-sendmail and moatctl:
 * argument parsing, line-end normalisation and the "." line, header
 * section scanning, RFC 5322 address lists, qualification, display
 * names, and the control protocol helpers.
 *
 * The unit tests are linked with the daemon's core objects only, so the
 * module under test is compiled into this file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl_client.c"
#include "unit.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define MAXARGS		16

static void	test_args(void);
static void	test_input(void);
static void	test_input_limit(void);
static void	test_header_scan(void);
static void	test_header_fields(void);
static void	test_addrlist(void);
static void	test_qualify(void);
static void	test_phrase(void);
static void	test_ctl(void);
static int	split_args(char *, char **);
static int	streq_null(const char *, const char *);
static void	join_rcpts(const struct sm_rcpts *, char *, size_t);

struct args_case {
	const char	*argv;		/* split at spaces */
	int		 ok;
	enum sm_mode	 mode;
	int		 extract, ignore_dots;
	const char	*sender, *fullname, *config;
	int		 nrcpt;
	const char	*first_rcpt;
};

static const struct args_case args_cases[] = {
	{ "sendmail a@b", 1, SM_DELIVER, 0, 0, NULL, NULL, NULL, 1, "a@b" },
	{ "sendmail -t -i", 1, SM_DELIVER, 1, 1, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -ti", 1, SM_DELIVER, 1, 1, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -oi x", 1, SM_DELIVER, 0, 1, NULL, NULL, NULL, 1, "x" },
	{ "sendmail -toi", 1, SM_DELIVER, 1, 1, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -oem -odb x", 1, SM_DELIVER, 0, 0, NULL, NULL, NULL, 1,
	    "x" },
	{ "sendmail -f s@x a", 1, SM_DELIVER, 0, 0, "s@x", NULL, NULL, 1,
	    "a" },
	{ "sendmail -fs@x a", 1, SM_DELIVER, 0, 0, "s@x", NULL, NULL, 1,
	    "a" },
	{ "sendmail -r s@x a", 1, SM_DELIVER, 0, 0, "s@x", NULL, NULL, 1,
	    "a" },
	{ "sendmail -tfs@x", 1, SM_DELIVER, 1, 0, "s@x", NULL, NULL, 0,
	    NULL },
	{ "sendmail -F Joe a", 1, SM_DELIVER, 0, 0, NULL, "Joe", NULL, 1,
	    "a" },
	{ "sendmail -C /c -t", 1, SM_DELIVER, 1, 0, NULL, NULL, "/c", 0,
	    NULL },
	{ "sendmail -bp", 1, SM_LISTQ, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -bm a", 1, SM_DELIVER, 0, 0, NULL, NULL, NULL, 1, "a" },
	{ "sendmail -q", 1, SM_FLUSH, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -v -U -B 8BITMIME -N never a", 1, SM_DELIVER, 0, 0,
	    NULL, NULL, NULL, 1, "a" },
	{ "sendmail -- -t", 1, SM_DELIVER, 0, 0, NULL, NULL, NULL, 1, "-t" },
	{ "sendmail a -t", 1, SM_DELIVER, 0, 0, NULL, NULL, NULL, 2, "a" },
	{ "sendmail -x a", 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -bs", 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -q1h", 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -f", 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -B 9BIT a", 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL },
	{ "sendmail -bp a", 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL },
};

struct input_case {
	const char	*in;
	int		 ignore_dots;
	const char	*out;
	int		 done;
};

static const struct input_case input_cases[] = {
	{ "a\nb\n", 0, "a\r\nb\r\n", 0 },
	{ "a\r\nb\r\n", 0, "a\r\nb\r\n", 0 },
	{ "a\rb\r", 0, "a\r\nb\r\n", 0 },
	{ "a\r\r\nb", 0, "a\r\n\r\nb\r\n", 0 },
	{ "a\n\nb", 0, "a\r\n\r\nb\r\n", 0 },
	{ "no newline", 0, "no newline\r\n", 0 },
	{ "", 0, "", 0 },
	{ "a\n.\nb\n", 0, "a\r\n", 1 },
	{ "a\r\n.\r\nb\r\n", 0, "a\r\n", 1 },
	{ "a\n.", 0, "a\r\n", 1 },
	{ ".\n", 0, "", 1 },
	{ "a\n.\nb\n", 1, "a\r\n.\r\nb\r\n", 0 },
	{ "a\n..\n.x\n", 0, "a\r\n..\r\n.x\r\n", 0 },
	{ "x.\n", 0, "x.\r\n", 0 },
	{ "caf\xc3\xa9\n", 0, "caf\xc3\xa9\r\n", 0 },
};

struct scan_case {
	const char	*msg;
	size_t		 start, hdr_end, body_off;
	int		 separator;
};

static const struct scan_case scan_cases[] = {
	{ "A: 1\r\nB: 2\r\n\r\nbody\r\n", 0, 12, 14, 1 },
	{ "A: 1\r\n folded\r\n\r\nbody\r\n", 0, 15, 17, 1 },
	{ "A: 1\r\nnot a header\r\n", 0, 6, 6, 0 },
	{ "just text\r\n", 0, 0, 0, 0 },
	{ " leading space\r\n", 0, 0, 0, 0 },
	{ "A: 1\r\nB: 2\r\n", 0, 12, 12, 0 },
	{ "\r\nbody\r\n", 0, 0, 2, 1 },
	{ "From joe Mon Jan 1\r\nA: 1\r\n\r\nb\r\n", 20, 26, 28, 1 },
	{ "From : x\r\n\r\n", 0, 10, 12, 1 },
	{ "Subj ect: x\r\n\r\n", 0, 0, 0, 0 },
	{ "Subject : x\r\n\r\n", 0, 13, 15, 1 },
	{ "", 0, 0, 0, 0 },
};

struct addr_case {
	const char	*in;
	int		 ok;
	const char	*out;		/* addresses joined by '|' */
};

static const struct addr_case addr_cases[] = {
	{ "a@b.test", 1, "a@b.test" },
	{ "a@b.test, c@d.test", 1, "a@b.test|c@d.test" },
	{ "Joe <j@x.test>", 1, "j@x.test" },
	{ "\"A, B\" <a@b.test>, c@d.test", 1, "a@b.test|c@d.test" },
	{ "a@b.test (Joe, Smith)", 1, "a@b.test" },
	{ "(c) a@b.test", 1, "a@b.test" },
	{ "a@b.test (nested (comment))", 1, "a@b.test" },
	{ "team: a@b.test, Bee <c@d.test>;", 1, "a@b.test|c@d.test" },
	{ "undisclosed-recipients:;", 1, "" },
	{ "team: a@b.test;, z@z.test", 1, "a@b.test|z@z.test" },
	{ "a@b.test,\r\n\tc@d.test", 1, "a@b.test|c@d.test" },
	{ "Joe\r\n <j@x.test>", 1, "j@x.test" },
	{ ",, a@b.test ,", 1, "a@b.test" },
	{ "a@b.test, A@B.TEST", 1, "a@b.test" },
	{ "root", 1, "root" },
	{ "\"john doe\"@x.test", 1, "\"john doe\"@x.test" },
	{ "\"q\\\"x\" <a@b.test>", 1, "a@b.test" },
	{ "<@r1.test,@r2.test:a@b.test>", 1, "a@b.test" },
	{ "a@[192.0.2.1]", 1, "a@[192.0.2.1]" },
	{ "j\xc3\xb6rg@x.test", 1, "j\xc3\xb6rg@x.test" },
	{ "a . b @ x.test", 1, "a.b@x.test" },
	{ "", 1, "" },
	{ "Joe Smith", 0, NULL },
	{ "Joe <j@x.test", 0, NULL },
	{ "j@x.test>", 0, NULL },
	{ "<a@b.test> junk", 0, NULL },
	{ "<>", 0, NULL },
	{ "\"unterminated", 0, NULL },
	{ "a@b.test (open", 0, NULL },
	{ "a:b:c", 0, NULL },
	{ "a@b.test; c@d.test", 0, NULL },
	{ "a\\b@x.test", 0, NULL },
	{ "<<a@b.test>>", 0, NULL },
	{ "a@b\x01.test", 0, NULL },
};

struct qualify_case {
	const char	*in;
	const char	*out;
};

static const struct qualify_case qualify_cases[] = {
	{ "root", "root@h.test" },
	{ "a@b.test", "a@b.test" },
	{ "\"a@b\"", "\"a@b\"@h.test" },
	{ "\"a@b\"@c.test", "\"a@b\"@c.test" },
	{ "\"a\\\"@\"", "\"a\\\"@\"@h.test" },
};

struct phrase_case {
	const char	*in;
	const char	*out;
};

static const struct phrase_case phrase_cases[] = {
	{ "Joe Smith", "Joe Smith" },
	{ "  Joe   Smith  ", "Joe Smith" },
	{ "Smith, Joe", "\"Smith, Joe\"" },
	{ "Joe \"JJ\" Q.", "\"Joe \\\"JJ\\\" Q.\"" },
	{ "a\\b", "\"a\\\\b\"" },
	{ "Evil\r\nBcc: x@y", "\"EvilBcc: x@y\"" },
	{ "", "" },
	{ "\r\n", "" },
	{ "J\xc3\xb6rg", "=?UTF-8?B?SsO2cmc=?=" },
	/* 23 x U+00E9: a 45-octet word would split one; 22 fit the first */
	{ "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	  "=?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOp"
	  "w6nDqcOpw6k=?=\r\n =?UTF-8?B?w6k=?=" },
};

int
main(void)
{
	test_args();
	test_input();
	test_input_limit();
	test_header_scan();
	test_header_fields();
	test_addrlist();
	test_qualify();
	test_phrase();
	test_ctl();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}

static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
test_args(void)
{
	const struct args_case	*c;
	struct sm_opts		 o;
	char			 copy[256], why[128], *argv[MAXARGS];
	size_t			 i;
	int			 argc, r;

	for (i = 0; i < NELEM(args_cases); i++) {
		c = &args_cases[i];
		snprintf(copy, sizeof(copy), "%s", c->argv);
		argc = split_args(copy, argv);
		why[0] = '\0';
		r = sm_parse_args(argc, argv, &o, why, sizeof(why));
		CHECK((r == 0) == c->ok, "args \"%s\": r=%d why=%s", c->argv,
		    r, why);
		if (r != 0 || !c->ok) {
			CHECK(r != 0 || why[0] != '\0', "args \"%s\": no "
			    "reason", c->argv);
			continue;
		}
		CHECK(o.mode == c->mode && o.extract == c->extract &&
		    o.ignore_dots == c->ignore_dots, "args \"%s\": mode %d "
		    "t %d i %d", c->argv, o.mode, o.extract, o.ignore_dots);
		CHECK(streq_null(o.sender, c->sender) &&
		    streq_null(o.fullname, c->fullname) &&
		    streq_null(o.config, c->config), "args \"%s\": values",
		    c->argv);
		CHECK(o.nrcpt == c->nrcpt && (c->nrcpt == 0 ||
		    strcmp(o.rcpt[0], c->first_rcpt) == 0),
		    "args \"%s\": nrcpt %d", c->argv, o.nrcpt);
	}
	snprintf(copy, sizeof(copy), "sendmail -B 8bitmime a");
	argc = split_args(copy, argv);
	CHECK(sm_parse_args(argc, argv, &o, why, sizeof(why)) == 0 &&
	    o.btype == SM_BODY_8BIT, "-B 8bitmime");
}

static void
test_input(void)
{
	const struct input_case	*c;
	struct sm_input		 in;
	struct buf		 out;
	size_t			 i, j, len;
	int			 r, chunked;

	/* each case whole, then one octet at a time: same result */
	for (i = 0; i < NELEM(input_cases); i++) {
		c = &input_cases[i];
		len = strlen(c->in);
		for (chunked = 0; chunked < 2; chunked++) {
			buf_init(&out, 0);
			sm_input_init(&in, &out, 1 << 20, c->ignore_dots);
			r = 0;
			if (!chunked)
				r = sm_input_feed(&in, c->in, len);
			for (j = 0; chunked && j < len && r == 0; j++)
				r = sm_input_feed(&in, c->in + j, 1);
			if (r == 0)
				r = sm_input_end(&in);
			else if (r == 1)
				r = sm_input_end(&in) == 0 ? 0 : -1;
			CHECK(r == 0 && in.done == c->done &&
			    out.len == strlen(c->out) &&
			    memcmp(out.data ? out.data : "", c->out,
			    out.len) == 0, "input %zu chunked %d: r=%d "
			    "done=%d len=%zu", i, chunked, r, in.done,
			    out.len);
			buf_free(&out);
		}
	}
	buf_init(&out, 0);
	sm_input_init(&in, &out, 1 << 20, 0);
	sm_input_feed(&in, "a\xff\n", 3);
	CHECK(in.eightbit, "eight-bit octet noticed");
	buf_free(&out);
}

static void
test_input_limit(void)
{
	struct sm_input	 in;
	struct buf	 out;
	int		 r;

	buf_init(&out, 0);
	sm_input_init(&in, &out, 10, 0);
	r = sm_input_feed(&in, "0123456789", 10);
	CHECK(r == 0, "limit: exactly 10 octets, r=%d", r);
	r = sm_input_end(&in);
	CHECK(r == -1 && errno == EFBIG, "limit: CRLF makes 12, r=%d", r);
	buf_free(&out);

	buf_init(&out, 0);
	sm_input_init(&in, &out, 10, 0);
	r = sm_input_feed(&in, "\n\n\n\n\n\n", 6);
	CHECK(r == -1 && errno == EFBIG, "limit: LF doubling counted");
	buf_free(&out);
}

static void
test_header_scan(void)
{
	const struct scan_case	*c;
	struct sm_hdrscan	 hs;
	size_t			 i;

	for (i = 0; i < NELEM(scan_cases); i++) {
		c = &scan_cases[i];
		sm_header_scan(c->msg, strlen(c->msg), &hs);
		CHECK(hs.start == c->start && hs.hdr_end == c->hdr_end &&
		    hs.body_off == c->body_off &&
		    hs.separator == c->separator, "scan %zu: start %zu "
		    "hdr_end %zu body_off %zu sep %d", i, hs.start,
		    hs.hdr_end, hs.body_off, hs.separator);
	}
}

static void
test_header_fields(void)
{
	static const char	 msg[] = "To: a@b.test,\r\n c@d.test\r\n"
	    "Subject : hi\r\nBCC:x@y.test\r\nEmpty:\r\n\r\nbody\r\n";
	static const struct {
		const char	*name;
		const char	*value;
	} want[] = {
		{ "To", " a@b.test,\r\n c@d.test" },
		{ "Subject", " hi" },
		{ "BCC", "x@y.test" },
		{ "Empty", "" },
	};
	struct sm_hdrscan	 hs;
	struct sm_field		 f;
	size_t			 off, n = 0, total = 0;

	sm_header_scan(msg, sizeof(msg) - 1, &hs);
	off = hs.start;
	while (sm_header_next(msg, hs.hdr_end, &off, &f)) {
		total += f.rawlen;
		if (n >= NELEM(want)) {
			n++;
			break;
		}
		CHECK(f.namelen == strlen(want[n].name) &&
		    memcmp(f.name, want[n].name, f.namelen) == 0,
		    "field %zu name %.*s", n, (int)f.namelen, f.name);
		CHECK(f.valuelen == strlen(want[n].value) &&
		    memcmp(f.value, want[n].value, f.valuelen) == 0,
		    "field %zu value [%.*s]", n, (int)f.valuelen, f.value);
		n++;
	}
	CHECK(n == NELEM(want), "field count %zu", n);
	CHECK(total == hs.hdr_end, "raw fields cover the header section");
	off = 0;
	sm_header_next(msg, hs.hdr_end, &off, &f);
	CHECK(sm_field_is(&f, "to") && !sm_field_is(&f, "t"), "field_is");
}

static void
test_addrlist(void)
{
	const struct addr_case	*c;
	struct sm_rcpts		 r;
	const char		*why;
	char			 got[1024];
	size_t			 i;
	int			 rc;

	for (i = 0; i < NELEM(addr_cases); i++) {
		c = &addr_cases[i];
		memset(&r, 0, sizeof(r));
		rc = sm_addrlist_parse(c->in, strlen(c->in), &r, &why);
		join_rcpts(&r, got, sizeof(got));
		if (c->ok)
			CHECK(rc == 0 && strcmp(got, c->out) == 0,
			    "addr \"%s\": rc=%d got \"%s\" why %s", c->in, rc,
			    got, rc ? why : "-");
		else
			CHECK(rc == -1 && why != NULL, "addr \"%s\": "
			    "accepted as \"%s\"", c->in, got);
		sm_rcpts_free(&r);
	}
}

static void
test_qualify(void)
{
	const struct qualify_case	*c;
	char				*q;
	size_t				 i;

	for (i = 0; i < NELEM(qualify_cases); i++) {
		c = &qualify_cases[i];
		q = sm_qualify(c->in, strlen(c->in), "h.test");
		CHECK(q != NULL && strcmp(q, c->out) == 0, "qualify %s: %s",
		    c->in, q ? q : "NULL");
		free(q);
	}
}

static void
test_phrase(void)
{
	const struct phrase_case	*c;
	struct buf			 b;
	size_t				 i;

	for (i = 0; i < NELEM(phrase_cases); i++) {
		c = &phrase_cases[i];
		buf_init(&b, 0);
		CHECK(sm_phrase(&b, c->in, strlen(c->in)) == 0 &&
		    b.len == strlen(c->out) && memcmp(b.data ? b.data : "",
		    c->out, b.len) == 0, "phrase %zu: [%.*s]", i,
		    (int)b.len, b.data ? b.data : "");
		buf_free(&b);
	}
}

static void
test_ctl(void)
{
	static const struct {
		const char	*line;
		int		 st;
		const char	*reason;
	} status[] = {
		{ "+OK", 1, NULL },
		{ "+OK queued", 1, NULL },
		{ "-ERR no such message", 0, "no such message" },
		{ "-ERR", 0, "" },
		{ "+OKAY", -1, NULL },
		{ "-ERROR x", -1, NULL },
		{ "", -1, NULL },
		{ "OK", -1, NULL },
	};
	static const struct {
		const char	*verb, *arg, *line;
	} reqs[] = {
		{ "queue", NULL, "queue\n" },
		{ "show", "1K13HSNSHM908PZ0", "show 1K13HSNSHM908PZ0\n" },
		{ "hold", "a b", NULL },
		{ "hold", "", NULL },
		{ "hold", "a\nstats", NULL },
		{ "hold", "\xc3\xa9", NULL },
	};
	static const struct {
		const char	*name;
		int		 is;
	} names[] = {
		{ "/usr/sbin/moatd", 1 },
		{ "moatd", 1 },
		{ "/w/build/asan/moatd (deleted)", 1 },
		{ "/usr/sbin/moatctl", 0 },
		{ "/usr/sbin/xmoatd", 0 },
		{ "/bin/sh", 0 },
		{ "", 0 },
	};
	const char	*reason;
	char		 line[CONTROL_LINE_MAX + 1], longarg[600];
	size_t		 i, rlen, len;
	int		 r;

	for (i = 0; i < NELEM(status); i++) {
		r = ctl_reply_status(status[i].line, strlen(status[i].line),
		    &reason, &rlen);
		CHECK(r == status[i].st && (status[i].reason == NULL ||
		    (rlen == strlen(status[i].reason) &&
		    memcmp(reason, status[i].reason, rlen) == 0)),
		    "status \"%s\": %d", status[i].line, r);
	}
	for (i = 0; i < NELEM(reqs); i++) {
		r = ctl_format_request(line, sizeof(line), reqs[i].verb,
		    reqs[i].arg, &len);
		if (reqs[i].line == NULL)
			CHECK(r == -1, "request %zu accepted", i);
		else
			CHECK(r == 0 && len == strlen(reqs[i].line) &&
			    memcmp(line, reqs[i].line, len) == 0,
			    "request %zu: r=%d", i, r);
	}
	memset(longarg, 'A', sizeof(longarg) - 1);
	longarg[sizeof(longarg) - 1] = '\0';
	CHECK(ctl_format_request(line, sizeof(line), "show", longarg,
	    &len) == -1, "over-long request refused");
	for (i = 0; i < NELEM(names); i++)
		CHECK(ctl_name_is_moatd(names[i].name,
		    strlen(names[i].name)) == names[i].is, "is_moatd %s",
		    names[i].name);
	CHECK(ctl_verb_nargs("queue") == 0 && ctl_verb_nargs("show") == 1 &&
	    ctl_verb_nargs("delete") == 1 && ctl_verb_nargs("reload") == 0 &&
	    ctl_verb_nargs("quit") == -1, "verb table");
}

/* split_args - in-place split at spaces; returns argc */
static int
split_args(char *s, char **argv)
{
	int	 argc = 0;
	char	*p;

	for (p = s; *p != '\0' && argc < MAXARGS - 1; ) {
		while (*p == ' ')
			*p++ = '\0';
		if (*p == '\0')
			break;
		argv[argc++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
	}
	argv[argc] = NULL;
	return argc;
}

/* join_rcpts - "a|b|c" */
static void
join_rcpts(const struct sm_rcpts *r, char *out, size_t outsz)
{
	size_t	 i, n = 0;
	int	 k;

	out[0] = '\0';
	for (i = 0; i < r->n; i++) {
		k = snprintf(out + n, outsz - n, "%s%s", i ? "|" : "",
		    r->v[i]);
		if (k < 0 || (size_t)k >= outsz - n)
			break;
		n += (size_t)k;
	}
}
