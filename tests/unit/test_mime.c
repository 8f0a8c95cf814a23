/*
 * test_mime.c - table-driven tests of the streaming MIME parser
 * (src/common/mime.c): each message is fed whole, in 1-octet and in
 * 7-octet chunks, and the trace of callbacks must be the expected one
 * every time (the parser must not depend on how the input is cut).
 * Also the parameter decoder (RFC 2231, RFC 2047) on its own, and the
 * byte ranges of the parts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "common/mime.h"

#define B(s)	s, sizeof(s) - 1

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

/* the trace: "<id:depth:type:name:enc:flags>" body "</id>" */
struct trace {
	struct buf	 t;
	const char	*msg;
	int		 ranges;	/* append "[start,end)" at part end */
};

static void
cb_start(void *arg, const struct mime_part *mp)
{
	struct trace	*tr = arg;

	buf_appendf(&tr->t, "<%u:%u:%s:%.*s:%d:%x>", mp->id, mp->depth,
	    mp->type, (int)mp->namelen, mp->name, (int)mp->enc, mp->flags);
}

static void
cb_body(void *arg, const struct mime_part *mp, const char *p, size_t len)
{
	struct trace	*tr = arg;

	buf_append(&tr->t, p, len);
}

static void
cb_end(void *arg, const struct mime_part *mp)
{
	struct trace	*tr = arg;

	if (tr->ranges)
		buf_appendf(&tr->t, "</%u %llu-%llu-%llu>", mp->id,
		    (unsigned long long)mp->start,
		    (unsigned long long)mp->body,
		    (unsigned long long)mp->end);
	else
		buf_appendf(&tr->t, "</%u>", mp->id);
}

static void
cb_header(void *arg, const struct mime_part *mp, const char *p, size_t len)
{
	struct trace	*tr = arg;

	if (len >= 8 && memcmp(p, "X-Trace:", 8) == 0) {
		buf_appends(&tr->t, "{");
		buf_append(&tr->t, p, len);
		buf_appends(&tr->t, "}");
	}
}

static const struct mime_cb cbs = { cb_header, cb_start, cb_body, cb_end };

struct mcase {
	const char	*name;
	const char	*msg;
	const char	*trace;
	const char	*malformed;	/* NULL = well formed */
	unsigned	 depth, parts;
	size_t		 hdrmax;
	int		 ranges;
};

static const struct mcase cases[] = {
	{ "plain",
	  "Subject: x\r\n\r\nhello\r\nworld\r\n",
	  "<0:0:text/plain::0:10>hello\r\nworld</0>", NULL, 0, 0, 0, 0 },
	{ "no body",
	  "Subject: x\r\nX-Trace: a\r\n b\r\n",
	  "{X-Trace: a b}<0:0:text/plain::0:10></0>", NULL, 0, 0, 0, 0 },
	{ "folded header kept",
	  "X-Trace: one\r\n\ttwo\r\nContent-Type: text/html;\r\n"
	  " charset=\"UTF-8\"\r\n\r\n<p>\r\n",
	  "{X-Trace: one\ttwo}<0:0:text/html::0:0><p></0>", NULL, 0, 0, 0, 0 },
	{ "multipart base64 attachment",
	  "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
	  "preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
	  "--XX\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
	  "Content-Disposition: attachment; filename=\"b.exe\"\r\n"
	  "Content-Transfer-Encoding: base64\r\n\r\nTVqQ\r\nQUJD\r\n"
	  "--XX--\r\nepilogue\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:text/plain::0:8>hi</1>"
	  "<2:1:application/octet-stream:b.exe:1:2c>MZ\x90" "ABC</2></0>",
	  NULL, 0, 0, 0, 0 },
	{ "base64 across lines",
	  "Content-Transfer-Encoding: BASE64\r\n\r\naGVs\r\nbG8g\r\nd29y"
	  "\r\nbGQ=\r\n",
	  "<0:0:text/plain::1:10>hello world</0>", NULL, 0, 0, 0, 0 },
	{ "quoted-printable",
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "caf=C3=A9 soft=\r\nbreak  \r\nx=3D=\r\n",
	  "<0:0:text/plain::2:10>caf\xc3\xa9 softbreak\r\nx=</0>",
	  NULL, 0, 0, 0, 0 },
	{ "RFC 2231 continuations",
	  "Content-Type: application/pdf\r\nContent-Disposition: attachment;"
	  "\r\n filename*0*=UTF-8''%E2%82%AC%20in;\r\n filename*2=\".exe\";"
	  "\r\n filename*1*=voice.pdf\r\n\r\nx\r\n",
	  "<0:0:application/pdf:\xe2\x82\xac invoice.pdf.exe:0:24>x</0>",
	  NULL, 0, 0, 0, 0 },
	{ "RFC 2231 single",
	  "Content-Type: application/x-foo; name*=iso-8859-1'de'a%E4b.scr"
	  "\r\n\r\n",
	  "<0:0:application/x-foo:a\xe4" "b.scr:0:20></0>", NULL, 0, 0, 0, 0 },
	{ "RFC 2047 filename",
	  "Content-Disposition: attachment; filename=\"=?UTF-8?B?aW52b2lj"
	  "ZS5w?= =?utf-8?q?df=2Eexe?=\"\r\n\r\n",
	  "<0:0:text/plain:invoice.pdf.exe:0:34></0>", NULL, 0, 0, 0, 0 },
	{ "unquoted name with blanks",
	  "Content-Type: text/plain; name=my file.exe ; charset=us-ascii"
	  "\r\n\r\n",
	  "<0:0:text/plain:my file.exe:0:20></0>", NULL, 0, 0, 0, 0 },
	{ "name: disposition wins",
	  "Content-Type: image/png; name=\"a.png\"\r\nContent-Disposition:"
	  " inline; filename=\"b.exe\"\r\n\r\n",
	  "<0:0:image/png:b.exe:0:20></0>", NULL, 0, 0, 0, 0 },
	{ "message/rfc822 nested",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	  "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
	  "Content-Type: multipart/alternative; boundary=\"i\"\r\n\r\n"
	  "--i\r\n\r\ntext\r\n--i\r\nContent-Type: text/html\r\n\r\n<b>"
	  "\r\n--i--\r\n--o\r\nContent-Type: text/plain; name=z.txt\r\n\r\n"
	  "last\r\n--o--\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:message/rfc822::0:a>"
	  "<2:2:multipart/alternative::0:1><3:3:text/plain::0:18>text</3>"
	  "<4:3:text/html::0:8><b></4></2></1>"
	  "<5:1:text/plain:z.txt:0:28>last</5></0>", NULL, 0, 0, 0, 0 },
	{ "digest defaults",
	  "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
	  "Subject: m\r\n\r\nbody\r\n--d--\r\n",
	  "<0:0:multipart/digest::0:1><1:1:message/rfc822::0:1a>"
	  "<2:2:text/plain::0:10>body</2></1></0>", NULL, 0, 0, 0, 0 },
	{ "boundary prefix of a longer line",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
	  "a\r\n--bb\r\nc\r\n--b--\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:text/plain::0:18>a</1>"
	  "<2:1:text/plain::0:18></2></0>",
	  "junk after a boundary delimiter", 0, 0, 0, 0 },
	{ "transport padding",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b  \r\n\r\n"
	  "a\r\n--b-- \t\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:text/plain::0:18>a</1></0>",
	  NULL, 0, 0, 0, 0 },
	{ "missing close delimiter",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc",
	  "<0:0:multipart/mixed::0:1><1:1:text/plain::0:18>abc</1></0>",
	  "multipart without its close delimiter", 0, 0, 0, 0 },
	{ "multipart without boundary",
	  "Content-Type: multipart/mixed\r\n\r\n--x\r\n",
	  "<0:0:multipart/mixed::0:0>--x</0>",
	  "multipart without a boundary", 0, 0, 0, 0 },
	{ "duplicate content-type",
	  "Content-Type: text/plain\r\nContent-Type: image/gif\r\n\r\n",
	  "<0:0:text/plain::0:0></0>", "duplicate Content-Type", 0, 0, 0, 0 },
	{ "bad header line",
	  "Subject: a\r\nnot a header\r\n\r\nb\r\n",
	  "<0:0:text/plain::0:10>b</0>",
	  "header line without a field name", 0, 0, 0, 0 },
	{ "base64 junk",
	  "Content-Transfer-Encoding: base64\r\n\r\nQU*JD\r\n",
	  "<0:0:text/plain::1:10>ABC</0>",
	  "invalid base64 character", 0, 0, 0, 0 },
	{ "base64 after padding",
	  "Content-Transfer-Encoding: base64\r\n\r\nQQ==QkM=\r\n",
	  "<0:0:text/plain::1:10>ABC</0>",
	  "base64 data after padding", 0, 0, 0, 0 },
	{ "depth limit",
	  "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n"
	  "--b--\r\n--a--\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:multipart/mixed::0:8>--b\r\n\r\n"
	  "x\r\n--b--</1></0>", "MIME nesting too deep", 1, 100, 65536, 0 },
	{ "part limit",
	  "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n"
	  "--a\r\n\r\ny\r\n--a--\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:text/plain::0:18>x</1></0>",
	  "too many MIME parts", 10, 2, 65536, 0 },
	{ "header limit",
	  "Subject: 0123456789012345678901234567890123456789\r\n\r\nbody\r\n",
	  "<0:0:text/plain::0:10></0>", "header section too large",
	  10, 100, 32, 0 },
	{ "ranges",
	  "C: 1\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
	  "A: b\r\n\r\nx\r\n--q\r\n\r\n--q--\r\n",
	  "<0:0:multipart/mixed::0:1><1:1:text/plain::0:18>x</1 56-64-65>"
	  "<2:1:text/plain::0:18></2 72-72-72></0 0-51-81>", NULL,
	  0, 0, 0, 1 },
};

static void
run(const struct mcase *c, size_t chunk, struct buf *out, const char **mal)
{
	struct mime_limits	 lim = { 20, 1000, 65536 };
	struct trace		 tr;
	struct mime_parser	*p;
	size_t			 len = strlen(c->msg), i, n;

	if (c->depth)
		lim.max_depth = c->depth;
	if (c->parts)
		lim.max_parts = c->parts;
	if (c->hdrmax)
		lim.max_header = c->hdrmax;
	buf_init(&tr.t, 0);
	tr.msg = c->msg;
	tr.ranges = c->ranges;
	p = mime_new(&lim, &cbs, &tr);
	for (i = 0; i < len; i += n) {
		n = chunk == 0 || len - i < chunk ? len - i : chunk;
		mime_feed(p, c->msg + i, n);
	}
	mime_end(p);
	*mal = mime_malformed(p);
	mime_free(p);
	*out = tr.t;
}

static void
test_cases(void)
{
	static const size_t	 chunks[] = { 0, 1, 7 };
	char			 what[160], detail[4096];
	struct buf		 t;
	const char		*mal;
	size_t			 i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (j = 0; j < 3; j++) {
			run(&cases[i], chunks[j], &t, &mal);
			snprintf(what, sizeof(what), "%s (chunk %zu)",
			    cases[i].name, chunks[j]);
			snprintf(detail, sizeof(detail), "got %.*s",
			    (int)t.len, t.data != NULL ? t.data : "");
			check(t.len == strlen(cases[i].trace) &&
			    memcmp(t.data, cases[i].trace, t.len) == 0,
			    what, detail);
			snprintf(detail, sizeof(detail), "malformed %s",
			    mal != NULL ? mal : "(none)");
			check((mal == NULL && cases[i].malformed == NULL) ||
			    (mal != NULL && cases[i].malformed != NULL &&
			    strcmp(mal, cases[i].malformed) == 0), what,
			    detail);
			buf_free(&t);
		}
}

struct pcase {
	const char	*v;
	const char	*want;
	int		 rc;
	const char	*out;
};

static const struct pcase pcases[] = {
	{ "text/plain; charset=us-ascii", "charset", 8, "us-ascii" },
	{ "text/plain; CHARSET=\"a\\\"b\"", "charset", 3, "a\"b" },
	{ "x/y; a=1 (comment); b = 2", "b", 1, "2" },
	{ "x/y; name=\"a;b.exe\"; c=d", "name", 7, "a;b.exe" },
	{ "x/y; name=\"a;b.exe\"; c=d", "c", 1, "d" },
	{ "x/y", "name", -1, "" },
	{ "x/y; name=", "name", 0, "" },
	{ "x/y; name*=''ab%2", "name", 4, "ab%2" },
	{ "x/y; name*0=a; name*1=b; name=c", "name", 2, "ab" },
	{ "x/y; name*1=b; name=c", "name", 1, "c" },
	{ "x/y; name=\"=?x?Q?a_b?= c\"", "name", 5, "a b c" },
	{ "x/y; name=\"=?bad\"", "name", 5, "=?bad" },
};

static void
test_params(void)
{
	char		 out[64], what[128];
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		memset(out, 0, sizeof(out));
		rc = mime_param(pcases[i].v, strlen(pcases[i].v),
		    pcases[i].want, out, sizeof(out) - 1);
		snprintf(what, sizeof(what), "param %zu %s", i, pcases[i].v);
		check(rc == pcases[i].rc && (rc < 0 ||
		    memcmp(out, pcases[i].out, (size_t)rc) == 0), what, out);
	}
}

int
main(void)
{
	test_cases();
	test_params();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
