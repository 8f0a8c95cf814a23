/*
 * out_reply.c - SMTP reply and EHLO keyword parsers of the client side.
 *
 * No I/O here: the session hands in the bytes it has received, these
 * functions say how many form one complete reply (RFC 5321 4.2) and
 * what it means.  Both are fuzzed by tests/fuzz/fuzz_smtp_reply.c.
 *
 * Invariants:
 * - input is (ptr, len) and never read past len; it may hold NULs;
 * - a reply is bounded: OUT_REPLY_LINES_MAX lines of at most
 *   OUT_REPLY_LINE_MAX octets each (without the line end), so a server
 *   cannot make the session buffer without limit;
 * - struct oreply's text holds only printable ASCII: everything else,
 *   and '"' and '\\', is written as \xNN (log_sanitize_text), because
 *   the text ends up in log lines, result texts and DSNs.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "../lib/log.h"
#include "smtp_out.h"

static int	 reply_line(const char *, size_t, size_t *, size_t *);
static int	 reply_code(const char *, size_t, unsigned *, int *);
static size_t	 enh_len(const char *, size_t, unsigned);
static int	 word_eq(const char *, size_t, const char *);
static void	 ehlo_size(const char *, size_t, struct oehlo *);

/*
 * oreply_parse - see smtp_out.h.  Lines end in CRLF or a bare LF (some
 * servers send that; accepting it costs nothing on the client side).
 * A line is "ddd" alone, "ddd text" or "ddd-text"; the last one is the
 * one without the '-' (RFC 5321 4.2.1).
 */
int
oreply_parse(const char *p, size_t len, struct oreply *r, size_t *used)
{
	char		 raw[OUT_TEXT_MAX];	/* joined text, unescaped */
	size_t		 rawlen = 0, off = 0, ll, adv, tl, skip, enh = 0;
	unsigned	 code, first = 0;
	int		 more, rc;
	const char	*t;

	memset(r, 0, sizeof(*r));
	for (;;) {
		if (r->nlines == OUT_REPLY_LINES_MAX)
			return -1;
		if ((rc = reply_line(p + off, len - off, &ll, &adv)) != 1)
			return rc;
		if (reply_code(p + off, ll, &code, &more) == -1)
			return -1;
		if (r->nlines == 0) {
			first = code;
			/* the enhanced code repeated on every line is
			   kept once (RFC 2034 4) */
			if (ll > 4)
				enh = enh_len(p + off + 4, ll - 4, code);
		} else if (code != first)
			return -1;
		t = p + off + 4;
		tl = ll > 4 ? ll - 4 : 0;
		skip = 0;
		if (r->nlines > 0 && enh > 0 && tl >= enh &&
		    memcmp(t, p + 4, enh) == 0) {
			skip = enh;
			while (skip < tl && t[skip] == ' ')
				skip++;
		}
		t += skip;
		tl -= skip;
		while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
			tl--;
		if (tl > 0 && rawlen > 0 && rawlen < sizeof(raw))
			raw[rawlen++] = ' ';
		if (tl > sizeof(raw) - rawlen)
			tl = sizeof(raw) - rawlen;
		memcpy(raw + rawlen, t, tl);
		rawlen += tl;
		r->nlines++;
		off += adv;
		if (!more)
			break;
	}
	r->code = first;
	/* a full raw buffer does not fit escaped: "..." marks the cut */
	log_sanitize_text(raw, rawlen, r->text, sizeof(r->text));
	*used = off;
	return 1;
}

/*
 * oehlo_parse - see smtp_out.h.  Line 1 is "250-name greeting"; every
 * further line is one keyword with its parameters (RFC 5321 4.1.1.1).
 * Keywords are matched in any case; unknown ones are ignored.
 */
void
oehlo_parse(const char *p, size_t len, struct oehlo *o)
{
	size_t		 off = 0, ll, adv, n, i, kw;
	const char	*l;
	int		 line = 0;

	memset(o, 0, sizeof(*o));
	while (off < len) {
		if (reply_line(p + off, len - off, &ll, &adv) != 1) {
			/* the last line without its line end */
			ll = len - off;
			adv = ll;
		}
		l = p + off + (ll >= 4 ? 4 : ll);
		n = ll >= 4 ? ll - 4 : 0;
		off += adv;
		if (line++ == 0) {
			for (i = 0; i < n && i < DNS_NAME_MAX &&
			    l[i] > ' ' && l[i] < 0x7f; i++)
				o->name[i] = (char)tolower((unsigned char)l[i]);
			o->name[i] = '\0';
			continue;
		}
		for (kw = 0; kw < n && l[kw] != ' ' && l[kw] != '='; kw++)
			;
		if (word_eq(l, kw, "PIPELINING"))
			o->pipelining = 1;
		else if (word_eq(l, kw, "STARTTLS"))
			o->starttls = 1;
		else if (word_eq(l, kw, "8BITMIME"))
			o->eightbit = 1;
		else if (word_eq(l, kw, "SMTPUTF8"))
			o->smtputf8 = 1;
		else if (word_eq(l, kw, "CHUNKING"))
			o->chunking = 1;
		else if (word_eq(l, kw, "BINARYMIME"))
			o->binarymime = 1;
		else if (word_eq(l, kw, "DSN"))
			o->dsn = 1;
		else if (word_eq(l, kw, "SIZE"))
			ehlo_size(l + kw, n - kw, o);
	}
}

/*
 * reply_line - the line at the front of p: 1 with its length ll
 * (without CRLF / LF) and adv (with it); 0 if it is not complete yet;
 * -1 if it is already too long.
 */
static int
reply_line(const char *p, size_t len, size_t *ll, size_t *adv)
{
	const char	*nl;
	size_t		 look;

	look = len < OUT_REPLY_LINE_MAX + 2 ? len : OUT_REPLY_LINE_MAX + 2;
	if ((nl = memchr(p, '\n', look)) == NULL)
		return len >= OUT_REPLY_LINE_MAX + 2 ? -1 : 0;
	*adv = (size_t)(nl - p) + 1;
	*ll = (size_t)(nl - p);
	if (*ll > 0 && p[*ll - 1] == '\r')
		(*ll)--;
	if (*ll > OUT_REPLY_LINE_MAX)
		return -1;
	return 1;
}

/* reply_code - "ddd", "ddd " or "ddd-" with 200 <= ddd <= 599 */
static int
reply_code(const char *p, size_t ll, unsigned *code, int *more)
{
	if (ll < 3 || p[0] < '2' || p[0] > '5' || !isdigit((unsigned char)
	    p[1]) || !isdigit((unsigned char)p[2]))
		return -1;
	*code = (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 +
	    (unsigned)(p[2] - '0');
	*more = 0;
	if (ll == 3)
		return 0;
	if (p[3] == '-')
		*more = 1;
	else if (p[3] != ' ')
		return -1;
	return 0;
}

/*
 * enh_len - length of an enhanced status code "c.s.d" (RFC 3463) at
 * the front of t whose class matches code, followed by a space or the
 * end; 0 if there is none.
 */
static size_t
enh_len(const char *t, size_t n, unsigned code)
{
	size_t	 i = 0, part, d;

	if (n < 5 || (unsigned)(t[0] - '0') != code / 100)
		return 0;
	i = 1;
	for (part = 0; part < 2; part++) {
		if (i >= n || t[i] != '.')
			return 0;
		i++;
		for (d = 0; i < n && d < 4 && isdigit((unsigned char)t[i]);
		    d++)
			i++;
		if (d == 0 || d > 3)
			return 0;
	}
	return i == n || t[i] == ' ' ? i : 0;
}

/* word_eq - p[0..n) is the keyword w in any case */
static int
word_eq(const char *p, size_t n, const char *w)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (w[i] == '\0' || toupper((unsigned char)p[i]) != w[i])
			return 0;
	return w[n] == '\0';
}

/*
 * ehlo_size - "SIZE" [SP number] (RFC 1870 4): no number or 0 means no
 * fixed limit; a number too large for size_t is no limit we can reach.
 */
static void
ehlo_size(const char *p, size_t n, struct oehlo *o)
{
	size_t	 i = 0, v = 0;

	o->has_size = 1;
	o->size = 0;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && isdigit((unsigned char)p[i]); i++) {
		if (v > (SIZE_MAX - 9) / 10) {
			o->size = 0;
			return;
		}
		v = v * 10 + (size_t)(p[i] - '0');
	}
	o->size = v;
}
