/*
 * test_content.c - table-driven tests of the content policy engine
 * (src/common/content.c): file-name and type lists, zip directories,
 * the content_rules parser and its errors, and whole messages run
 * through a scan (fed in 1000-octet chunks) with their verdicts and,
 * for strip and tag, the rewritten message.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "common/config.h"
#include "common/content.h"

static int	 npass, nfail;
static char	 rules_path[] = "/tmp/test_content_rules.XXXXXX";

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

/* ---- names and types ---- */

struct ncase {
	const char	*name;
	int		 blocked;
};

static const struct ncase ncases[] = {
	{ "invoice.pdf.exe", 1 },
	{ "invoice.exe.pdf", 1 },
	{ "SETUP.EXE", 1 },
	{ "a.exe.", 1 },
	{ "a.exe . .", 1 },
	{ "C:\\temp\\x.scr", 1 },
	{ "dir/y.js", 1 },
	{ "exe", 0 },
	{ ".exe", 0 },
	{ "report.pdf", 0 },
	{ "my.execution.txt", 0 },
	{ "", 0 },
};

static void
test_names(void)
{
	char	*list[] = { "exe", ".scr", "js", "vbs", "application/zip" };
	size_t	 i;

	for (i = 0; i < sizeof(ncases) / sizeof(ncases[0]); i++)
		check(content_name_blocked(list, 5, ncases[i].name,
		    strlen(ncases[i].name)) == ncases[i].blocked, "name",
		    ncases[i].name);
	check(content_name_blocked(list, 5, "x.vbs\0", 6), "name", "NUL");
	check(content_type_blocked(list, 5, "application/zip"), "type",
	    "exact");
	check(!content_type_blocked(list, 5, "application/zipx"), "type",
	    "prefix");
	list[4] = "image/*";
	check(content_type_blocked(list, 5, "image/png"), "type", "star");
	check(!content_type_blocked(list, 5, "text/plain"), "type", "other");
}

/* ---- zip central directory ---- */

static void
zip_cb(void *arg, const char *name, size_t len)
{
	struct buf	*b = arg;

	buf_append(b, name, len);
	buf_append(b, ";", 1);
}

/* a stored zip with the given names, each holding "x" */
static size_t
zip_make(unsigned char *out, const char *const *names, size_t n)
{
	unsigned char	*p = out, *cd;
	size_t		 i, nl, cdstart, off[8];

	for (i = 0; i < n; i++) {
		nl = strlen(names[i]);
		off[i] = (size_t)(p - out);
		memcpy(p, "PK\3\4", 4);
		memset(p + 4, 0, 26);
		p[18] = p[22] = 1;		/* sizes */
		p[26] = (unsigned char)nl;
		memcpy(p + 30, names[i], nl);
		p[30 + nl] = 'x';
		p += 31 + nl;
	}
	cdstart = (size_t)(p - out);
	for (i = 0; i < n; i++) {
		nl = strlen(names[i]);
		memcpy(p, "PK\1\2", 4);
		memset(p + 4, 0, 42);
		p[28] = (unsigned char)nl;
		p[42] = (unsigned char)off[i];
		memcpy(p + 46, names[i], nl);
		p += 46 + nl;
	}
	cd = p;
	memcpy(p, "PK\5\6", 4);
	memset(p + 4, 0, 18);
	p[8] = p[10] = (unsigned char)n;
	p[12] = (unsigned char)((size_t)(cd - out - cdstart) & 0xff);
	p[13] = (unsigned char)((size_t)(cd - out - cdstart) >> 8);
	p[16] = (unsigned char)cdstart;
	p[17] = (unsigned char)(cdstart >> 8);
	return (size_t)(cd - out) + 22;
}

static void
test_zip(void)
{
	static const char *const names[] = { "docs/readme.txt", "run.exe" };
	unsigned char		 z[1024];
	struct buf		 b;
	size_t			 n;

	buf_init(&b, 0);
	n = zip_make(z, names, 2);
	check(content_zip_names(z, n, zip_cb, &b) == 2 && b.len == 24 &&
	    memcmp(b.data, "docs/readme.txt;run.exe;", 24) == 0, "zip",
	    "two names");
	buf_reset(&b);
	/* the tail only: the directory search falls back to signatures */
	check(content_zip_names(z + 40, n - 40, zip_cb, &b) == 2, "zip",
	    "tail");
	check(content_zip_names(z, 10, zip_cb, &b) == -1, "zip", "short");
	buf_free(&b);
}

/* ---- rules files ---- */

struct rcase {
	const char	*text;
	size_t		 nerr;
	const char	*err;	/* substring of the error output */
};

static const struct rcase rcases[] = {
	{ "# c\n\nspam headers inbound tag /^Subject:.*viagra/i\n", 0, "" },
	{ "a body any reject /x/\nb attachment outbound strip /a/b/s\n", 0,
	  "" },
	{ "a body any reject\n", 1, "t:1: pattern must be written" },
	{ "a/b body any reject /x/\n", 1, "t:1: rule name" },
	{ "a nowhere any reject /x/\n", 1, "t:1: scope must be" },
	{ "a body sideways reject /x/\n", 1, "t:1: direction must be" },
	{ "a body any explode /x/\n", 1, "t:1: action must be" },
	{ "a headers any strip /x/\n", 1, "t:1: strip needs" },
	{ "a body any reject /x/q\n", 1, "t:1: pattern flags" },
	{ "ok body any log /x/\na body any reject /(/\n", 1,
	  "t:2: bad pattern at offset 1" },
	{ "a body any log /x/\na body inbound reject /y/\n", 1,
	  "t:2: duplicate rule name" },
	{ "a body any\n\nb x\n", 2, "t:3:" },
};

static void
test_rules(void)
{
	struct content_rules	*r;
	char			 out[1024], what[64];
	FILE			*f;
	size_t			 i, nerr;

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		memset(out, 0, sizeof(out));
		f = fmemopen(out, sizeof(out) - 1, "w");
		r = content_rules_mem("t", rcases[i].text,
		    strlen(rcases[i].text), f, &nerr);
		fclose(f);
		snprintf(what, sizeof(what), "rules %zu", i);
		check(nerr == rcases[i].nerr && (nerr > 0) == (r == NULL) &&
		    strstr(out, rcases[i].err) != NULL, what, out);
		content_rules_free(r);
	}
}

/* ---- whole messages ---- */

static void
b64(struct buf *b, const unsigned char *p, size_t len)
{
	static const char	 a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t			 i, col = 0;
	uint32_t		 v;

	for (i = 0; i < len; i += 3) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		buf_append(b, &a[v >> 18 & 63], 1);
		buf_append(b, &a[v >> 12 & 63], 1);
		buf_append(b, i + 1 < len ? &a[v >> 6 & 63] : "=", 1);
		buf_append(b, i + 2 < len ? &a[v & 63] : "=", 1);
		if ((col += 4) >= 76) {
			buf_appends(b, "\r\n");
			col = 0;
		}
	}
	if (col > 0)
		buf_appends(b, "\r\n");
}

/* a minimal PE image: "MZ", e_lfanew = 0x80, "PE\0\0", i386 */
static void
pe_make(unsigned char *pe, size_t len)
{
	memset(pe, 0, len);
	pe[0] = 'M';
	pe[1] = 'Z';
	pe[0x3c] = 0x80;
	memcpy(pe + 0x80, "PE\0\0\x4c\x01", 6);
}

/* a multipart/mixed message: a text part, then one base64 attachment */
static void
msg_make(struct buf *m, const char *subject, const char *text,
    const char *atype, const char *aname, const unsigned char *data,
    size_t dlen)
{
	buf_appendf(m, "Received: from x by y; now\r\nSubject: %s\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	    "boundary=\"=_b\"\r\n\r\npreamble\r\n--=_b\r\nContent-Type: "
	    "text/plain\r\n\r\n%s\r\n", subject, text);
	if (atype != NULL) {
		buf_appendf(m, "--=_b\r\nContent-Type: %s\r\n"
		    "Content-Disposition: attachment; filename=\"%s\"\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n", atype, aname);
		b64(m, data, dlen);
	}
	buf_appends(m, "--=_b--\r\n");
}

static int
out_buf(void *arg, const char *p, size_t len)
{
	return buf_append(arg, p, len);
}

/*
 * scan - run msg through a scan under conf text (content_filter on),
 * and rewrite it through a temporary file when asked to
 */
static const struct content_verdict *
scan(const char *conftext, int outbound, const struct buf *msg,
    struct buf *rewritten, struct content_verdict *vcopy)
{
	struct config		*c;
	struct content_scan	*s;
	const struct content_verdict *v;
	char			 path[] = "/tmp/test_content_msg.XXXXXX";
	size_t			 i, n;
	int			 fd;

	c = config_load_mem("test.conf", conftext, strlen(conftext), stderr);
	if (c == NULL) {
		check(0, "config", conftext);
		return NULL;
	}
	s = content_scan_new(c, outbound, "TESTQID");
	for (i = 0; i < msg->len; i += n) {
		n = msg->len - i < 1000 ? msg->len - i : 1000;
		content_scan_data(s, msg->data + i, n);
	}
	v = content_scan_end(s);
	*vcopy = *v;
	if (rewritten != NULL && v->rewrite) {
		fd = mkstemp(path);
		/* a prefix, so that the offset argument is exercised */
		if (write(fd, "HEAD", 4) != 4 ||
		    write(fd, msg->data, msg->len) != (ssize_t)msg->len)
			check(0, "write", path);
		if (content_rewrite(s, fd, 4, msg->len, out_buf,
		    rewritten) == -1)
			check(0, "rewrite", "failed");
		close(fd);
		unlink(path);
	}
	content_scan_free(s);
	config_free(c);
	return vcopy;
}

static void
test_messages(void)
{
	static const char *const zn[] = { "a.txt", "payload.EXE" };
	unsigned char		 pe[1024], zip[512];
	char			 conf[512], what[64];
	struct buf		 m, r;
	struct content_verdict	 vc;
	const struct content_verdict *v;
	size_t			 zl, i;

	pe_make(pe, sizeof(pe));
	content_preinit();
	buf_init(&m, 0);
	buf_init(&r, 0);

	/* an executable with a double extension: rejected */
	msg_make(&m, "hi", "see attached", "application/pdf",
	    "invoice.pdf.exe", pe, sizeof(pe));
	v = scan("content_filter = yes\n", 0, &m, NULL, &vc);
	check(v != NULL && v->action == CA_REJECT &&
	    strcmp(v->rule, "attachment_block") == 0 &&
	    strcmp(v->reply, "554 5.7.1 Message refused by content filter "
	    "(rule attachment_block)") == 0, "double extension",
	    v != NULL ? v->reply : "");

	/* outbound with its own action */
	v = scan("content_filter = yes\nattachment_action_outbound = log\n"
	    "attachment_mismatch = log\n", 1, &m, NULL, &vc);
	check(v != NULL && v->action == CA_LOG, "outbound", v->summary);

	/* an executable named .txt: a mismatch (types not blocked) */
	buf_reset(&m);
	msg_make(&m, "hi", "x", "text/plain", "notes.txt", pe, sizeof(pe));
	v = scan("content_filter = yes\nattachment_block = exe\n"
	    "attachment_mismatch = quarantine\n", 0, &m, NULL, &vc);
	check(v != NULL && v->action == CA_QUARANTINE &&
	    strcmp(v->rule, "attachment_mismatch") == 0, "mismatch",
	    v != NULL ? v->summary : "");

	/* a zip with an executable inside, stripped */
	zl = zip_make(zip, zn, 2);
	buf_reset(&m);
	msg_make(&m, "hi", "the archive", "application/zip", "files.zip",
	    zip, zl);
	buf_reset(&r);
	v = scan("content_filter = yes\nattachment_action = strip\n", 0, &m,
	    &r, &vc);
	check(v != NULL && v->action == CA_STRIP && v->rewrite, "zip strip",
	    v != NULL ? v->summary : "");
	check(r.len > 0 && strstr(r.data, "X-Moat-Content: "
	    "attachment_block (removed)\r\nReceived:") == r.data &&
	    strstr(r.data, "--=_b\r\nContent-Type: text/plain; "
	    "charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
	    "An attachment (files.zip) was removed by the mail relay's "
	    "content filter (rule attachment_block).\r\n--=_b--\r\n") !=
	    NULL && strstr(r.data, "the archive\r\n--=_b\r\n") != NULL &&
	    strstr(r.data, "UEsDB") == NULL, "zip rewrite", r.data);

	/* PCRE2 rules: headers, body, attachment across windows */
	snprintf(conf, sizeof(conf), "content_filter = yes\n"
	    "content_rules = %s\n", rules_path);
	buf_reset(&m);
	msg_make(&m, "cheap viagra", "hello", NULL, NULL, NULL, 0);
	v = scan(conf, 0, &m, NULL, &vc);
	check(v != NULL && v->action == CA_TAG && v->rewrite &&
	    strcmp(v->rule, "spam-subject") == 0, "header rule",
	    v != NULL ? v->summary : "");
	buf_reset(&m);
	msg_make(&m, "x", "please wire the MONEY now", NULL, NULL, NULL, 0);
	v = scan(conf, 0, &m, NULL, &vc);
	check(v != NULL && v->action == CA_REJECT &&
	    strstr(v->reply, "(rule wire-fraud)") != NULL, "body rule",
	    v != NULL ? v->reply : "");
	v = scan(conf, 1, &m, NULL, &vc);
	check(v != NULL && v->action == CA_ACCEPT, "body rule outbound",
	    v != NULL ? v->summary : "");
	{
		unsigned char	*big = malloc(200000);

		for (i = 0; i < 200000; i++)
			big[i] = (unsigned char)('a' + i % 23);
		/* across the first window boundary */
		memcpy(big + 65536 - 5, "SECRET-PAYLOAD", 14);
		buf_reset(&m);
		msg_make(&m, "x", "y", "application/octet-stream", "d.bin",
		    big, 200000);
		free(big);
	}
	v = scan(conf, 0, &m, NULL, &vc);
	check(v != NULL && v->action == CA_TEMPFAIL &&
	    strcmp(v->reply, "451 4.7.1 Message deferred by content filter "
	    "(rule secret)") == 0, "attachment rule",
	    v != NULL ? v->summary : "");
	/* an accept rule wins over the rest */
	buf_reset(&m);
	msg_make(&m, "trusted wire the money", "wire the money", NULL,
	    NULL, NULL, 0);
	v = scan(conf, 0, &m, NULL, &vc);
	check(v != NULL && v->action == CA_ACCEPT && !v->rewrite,
	    "accept rule", v != NULL ? v->summary : "");

	/* the message itself is the executable: its body is replaced */
	buf_reset(&m);
	buf_appends(&m, "Subject: x\r\nContent-Type: application/"
	    "octet-stream;\r\n name=\"run.exe\"\r\nContent-Transfer-Encoding:"
	    " base64\r\nX-After: 1\r\n\r\n");
	b64(&m, pe, sizeof(pe));
	buf_reset(&r);
	v = scan("content_filter = yes\nattachment_action = strip\n", 0, &m,
	    &r, &vc);
	check(v != NULL && v->action == CA_STRIP && r.len > 0 &&
	    strcmp(r.data, "X-Moat-Content: attachment_block (removed)\r\n"
	    "Subject: x\r\nX-After: 1\r\nContent-Type: text/plain; "
	    "charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
	    "This message's content (run.exe) was removed by the mail "
	    "relay's content filter (rule attachment_block).\r\n") == 0,
	    "root strip", r.data != NULL ? r.data : "");

	/* malformed MIME */
	buf_reset(&m);
	buf_appends(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n\r\ntext\r\n");
	for (i = 0; i < 2; i++) {
		v = scan(i == 0 ? "content_filter = yes\n" : "content_filter "
		    "= yes\nmime_malformed = reject\n", 0, &m, NULL, &vc);
		snprintf(what, sizeof(what), "malformed %zu", i);
		check(v != NULL && v->action == (i == 0 ? CA_ACCEPT :
		    CA_REJECT) && (i == 0 || strncmp(v->reply,
		    "554 5.6.0 ", 10) == 0), what, v != NULL ? v->reply : "");
	}
	buf_free(&m);
	buf_free(&r);
}

static void
write_rules(void)
{
	static const char	 text[] =
	    "# test rules\n"
	    "trusted     headers    any      accept  /^Subject: trusted/\n"
	    "spam-subject headers   inbound  tag     /^Subject:.*viagra/i\n"
	    "wire-fraud  body       inbound  reject  /wire the money/i\n"
	    "secret      attachment any      tempfail /SECRET-PAYLOAD/\n";
	int			 fd;

	if ((fd = mkstemp(rules_path)) == -1 ||
	    write(fd, text, sizeof(text) - 1) != sizeof(text) - 1)
		check(0, "rules file", rules_path);
	close(fd);
}

int
main(void)
{
	write_rules();
	test_names();
	test_zip();
	test_rules();
	test_messages();
	unlink(rules_path);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
