/*
 * smtp_parse.c - the pure parsers of smtp-in: command lines, MAIL and
 * RCPT arguments, and the DATA / BDAT content scanner.
 *
 * Everything here works on (ptr, len) slices of untrusted input, reads
 * nothing outside them, keeps no globals and allocates nothing, so each
 * parser has a libFuzzer harness under tests/fuzz/.
 *
 * The DATA scanner is the SMTP smuggling defence: only CR LF . CR LF
 * ends DATA (RFC 5321 4.1.1.4); "\n.\n", "\r.\r" and friends are content,
 * flagged as bare CR / bare LF so that the session can refuse them.
 * Its result must not depend on how the input is split into reads: all
 * decisions are made from the scanner state plus the next octet, and an
 * undecided sequence (".", ".\r" at line start) is kept in the state,
 * never re-fed.  Content is emitted in runs: the only octets that break a
 * run are a line-leading dot (removed) and the end of DATA.  It runs for
 * every octet of every message, so CR, LF and NUL are found by memchr.
 */
#include <string.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "smtp_parse.h"

/* octet classes of the 7-bit table below */
#define CA	0x01	/* ALPHA */
#define CK	0x02	/* esmtp-keyword: ALPHA / DIGIT / "-" */
#define CV	0x04	/* esmtp-value: %d33-60 / %d62-126 (RFC 5321 4.1.2) */
#define CX	0x08	/* xchar of xtext (RFC 3461 4) */
#define CC	0x10	/* refused in a command line: CTL except HT */

#define VERB_MAX	15	/* longest verb smtp_cmd_split accepts */
#define SIZE_DIGITS	20	/* size-value ::= 1*20DIGIT, RFC 1870 */

/* DATA / BDAT scanner states (struct data_scanner.state) */
enum {
	DS_ST_BOL = 0,	/* at a line start: after CRLF, or first octet */
	DS_ST_TEXT,	/* inside a line */
	DS_ST_CR,	/* after a CR inside a line (already emitted) */
	DS_ST_DOT,	/* after "." at line start (removed) */
	DS_ST_DOTCR	/* after ".\r" at line start (CR not yet emitted) */
};

/* a parsed esmtp-param, RFC 5321 4.1.2 */
struct param {
	const char	*key;
	size_t		 keylen;
	const char	*val;		/* NULL if no "=value" */
	size_t		 vallen;
};

static enum smtp_arg_error	 path_split(const char *, size_t, const char *,
				    size_t, const char **, size_t *,
				    const char **, size_t *, const char **);
static const char		*path_end(const char *, size_t);
static enum smtp_arg_error	 param_next(const char **, const char *,
				    struct param *, const char **);
static enum smtp_arg_error	 mail_param(const struct param *,
				    struct smtp_mail_args *, unsigned *,
				    const char **);
static int			 param_is(const struct param *, const char *);
static int			 size_value(const char *, size_t, uint64_t *);
static int			 xtext_valid(const char *, size_t);
static int			 ds_emit(struct data_scanner *, const char *,
				    size_t, data_scan_output, void *);
static void			 ds_count(struct data_scanner *, size_t);
static const char		*ds_text(struct data_scanner *, const char *,
				    const char *, const char **,
				    const char **);
static const char		*ds_next(const char *, const char *, int);

/* combined classes, only to keep the table readable */
#define C	(CC)
#define V	(CV)
#define VX	(CV | CX)
#define KVX	(CK | CV | CX)
#define AKVX	(CA | CK | CV | CX)

/* classes of 7-bit octets; octets >= 0x80 are 0 */
static const unsigned char smtp_class[256] = {
	C, C, C, C, C, C, C, C,	/* 00 */
	C, 0, C, C, C, C, C, C,	/* 08 */
	C, C, C, C, C, C, C, C,	/* 10 */
	C, C, C, C, C, C, C, C,	/* 18 */
	0, VX, VX, VX, VX, VX, VX, VX,	/* 20 */
	VX, VX, VX, V, VX, KVX, VX, VX,	/* 28 */
	KVX, KVX, KVX, KVX, KVX, KVX, KVX, KVX,	/* 30 */
	KVX, KVX, VX, VX, VX, 0, VX, VX,	/* 38 */
	VX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX,	/* 40 */
	AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX,	/* 48 */
	AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX,	/* 50 */
	AKVX, AKVX, AKVX, VX, VX, VX, VX, VX,	/* 58 */
	VX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX,	/* 60 */
	AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX,	/* 68 */
	AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX, AKVX,	/* 70 */
	AKVX, AKVX, AKVX, VX, VX, VX, VX, C,	/* 78 */
};

#undef C
#undef V
#undef VX
#undef KVX
#undef AKVX

/* ---- command lines ------------------------------------------------ */

/* smtp_line_next - find the next CRLF-terminated command line */
enum smtp_line_result
smtp_line_next(const char *buf, size_t len, size_t max, size_t *linelen,
    size_t *consumed)
{
	const char	*cr, *lf;
	size_t		 n, i;

	/* nothing at or beyond max can end an acceptable line */
	n = len < max ? len : max;
	lf = memchr(buf, '\n', n);
	cr = memchr(buf, '\r', lf != NULL ? (size_t)(lf - buf) : n);
	if (cr == NULL) {
		if (lf != NULL)
			return LINE_BARE_LF;
		return len >= max ? LINE_TOO_LONG : LINE_NEED_MORE;
	}
	i = cr - buf;
	if (i + 2 > max)
		return LINE_TOO_LONG;
	if (i + 1 == len)
		return LINE_NEED_MORE;
	if (buf[i + 1] != '\n')
		return LINE_BARE_CR;
	*linelen = i;
	*consumed = i + 2;
	return LINE_OK;
}

/* smtp_cmd_split - split a command line into verb and argument */
int
smtp_cmd_split(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const unsigned char	*s = (const unsigned char *)line;
	size_t			 i, v;

	for (i = 0; i < len; i++)
		if (smtp_class[s[i]] & CC)
			return -1;
	for (v = 0; v < len && (smtp_class[s[v]] & CA); v++)
		;
	if (v == 0 || v > VERB_MAX || (v < len && line[v] != ' '))
		return -1;
	cmd->verb = line;
	cmd->verblen = v;
	for (i = v; i < len && line[i] == ' '; i++)
		;
	while (len > i && line[len - 1] == ' ')
		len--;
	cmd->arg = line + i;
	cmd->arglen = len - i;
	return 0;
}

/* smtp_verb_eq - ASCII case-insensitive compare of verb with upper s */
int
smtp_verb_eq(const struct smtp_cmd *cmd, const char *s)
{
	size_t	 n = strlen(s);		/* s is our constant, not input */

	return cmd->verblen == n && mem_casecmp(cmd->verb, s, n) == 0;
}

/* ---- MAIL and RCPT ------------------------------------------------ */

/* smtp_parse_mail - parse "FROM:<path> [SP params]" */
enum smtp_arg_error
smtp_parse_mail(const char *arg, size_t len, struct smtp_mail_args *m,
    const char **why)
{
	enum smtp_arg_error	 e;
	struct param		 prm;
	const char		*path, *rest, *end;
	size_t			 pathlen, restlen;
	unsigned		 seen = 0;

	memset(m, 0, sizeof(*m));
	e = path_split(arg, len, "FROM:", 5, &path, &pathlen, &rest,
	    &restlen, why);
	if (e != ARG_OK)
		return e;
	/* parse UTF-8 always: whether SMTPUTF8 was given is known later */
	if (pathlen == 0)
		m->null_sender = 1;
	else if (addr_parse_mailbox(path, pathlen, 1, &m->addr, why) == -1)
		return ARG_BAD_ADDR;
	else if (m->addr.flags & ADDR_POSTMASTER) {
		*why = "sender address needs a domain";
		return ARG_BAD_ADDR;
	}
	for (end = rest + restlen; rest < end;) {
		if ((e = param_next(&rest, end, &prm, why)) != ARG_OK)
			return e;
		if ((e = mail_param(&prm, m, &seen, why)) != ARG_OK)
			return e;
	}
	/* RFC 6531 3.4: a non-ASCII path needs the SMTPUTF8 parameter */
	if (!m->null_sender && (m->addr.flags & ADDR_UTF8) && !m->smtputf8) {
		*why = "non-ASCII address without SMTPUTF8";
		return ARG_UTF8;
	}
	return ARG_OK;
}

/* smtp_parse_rcpt - parse "TO:<path> [SP params]" */
enum smtp_arg_error
smtp_parse_rcpt(const char *arg, size_t len, int utf8,
    struct smtp_rcpt_args *r, const char **why)
{
	enum smtp_arg_error	 e;
	struct param		 prm;
	const char		*rest;
	size_t			 restlen;

	memset(r, 0, sizeof(*r));
	e = path_split(arg, len, "TO:", 3, &r->path, &r->pathlen, &rest,
	    &restlen, why);
	if (e != ARG_OK)
		return e;
	if (r->pathlen == 0) {
		*why = "empty recipient address";
		return ARG_BAD_ADDR;
	}
	if (addr_parse_mailbox(r->path, r->pathlen, 1, &r->addr, why) == -1)
		return ARG_BAD_ADDR;
	/* no RCPT parameter is advertised (no DSN): any is unknown */
	if (restlen > 0) {
		if ((e = param_next(&rest, rest + restlen, &prm, why)) !=
		    ARG_OK)
			return e;
		*why = "unrecognized parameter";
		return ARG_UNKNOWN_PARAM;
	}
	if ((r->addr.flags & ADDR_UTF8) && !utf8) {
		*why = "non-ASCII address without SMTPUTF8";
		return ARG_UTF8;
	}
	return ARG_OK;
}

/* ---- DATA and BDAT content ---------------------------------------- */

/* data_scan_init - a scanner at the start of a message */
void
data_scan_init(struct data_scanner *s, enum data_scan_mode mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->state = DS_ST_BOL;
}

/*
 * data_scan - feed len octets; see smtp_parse.h.  rs..p is the run of
 * content not yet emitted; the run is flushed only before a removed
 * line-leading dot, at the end of DATA and at the end of the input.
 */
int
data_scan(struct data_scanner *s, const char *in, size_t len,
    size_t *consumed, data_scan_output out, void *arg)
{
	const char	*p = in, *end = in + len, *rs = in;
	const char	*crp = NULL, *lfp = NULL;
	int		 rc = 0;

	if (s->done)
		goto out;
	while (p < end) {
		switch (s->state) {
		case DS_ST_BOL:
			if (s->mode == DSM_DATA && *p == '.') {
				/* RFC 5321 4.5.2: a leading dot is removed */
				if ((rc = ds_emit(s, rs, p - rs, out, arg)) ==
				    -1)
					goto out;
				/* not counted in the line length, 4.5.3.1.6 */
				s->linelen = 0;
				rs = ++p;
				s->state = DS_ST_DOT;
				break;
			}
			s->state = DS_ST_TEXT;
			/* FALLTHROUGH */
		case DS_ST_TEXT:
			p = ds_text(s, p, end, &crp, &lfp);
			break;
		case DS_ST_CR:
			if (*p == '\n') {
				p++;
				s->linelen = 0;
				s->state = DS_ST_BOL;
			} else {
				/* bare CR: content, and no line end */
				s->errors |= DS_BARE_CR;
				ds_count(s, 1);
				s->state = DS_ST_TEXT;
			}
			break;
		case DS_ST_DOT:
			if (*p == '\r') {
				/* maybe the end: keep the CR out of the run */
				rs = ++p;
				s->state = DS_ST_DOTCR;
			} else
				s->state = DS_ST_TEXT;
			break;
		case DS_ST_DOTCR:
			if (*p == '\n') {
				/* CR LF . CR LF: the end of DATA */
				p++;
				s->done = 1;
				s->state = DS_ST_BOL;
				goto out;
			}
			/* ".\r" + other: the dot goes, the CR is bare */
			if ((rc = ds_emit(s, "\r", 1, out, arg)) == -1)
				goto out;
			s->errors |= DS_BARE_CR;
			ds_count(s, 1);
			s->state = DS_ST_TEXT;
			break;
		default:
			/* state is private: only this file writes it */
			panic("data_scan: state %d", s->state);
		}
	}
	rc = ds_emit(s, rs, p - rs, out, arg);
out:
	/* NUL only in what was consumed: not in commands pipelined after */
	if (!(s->errors & DS_NUL) && p > in && memchr(in, '\0', p - in) != NULL)
		s->errors |= DS_NUL;
	if (consumed != NULL)
		*consumed = p - in;
	return rc;
}

/* data_scan_end - end of the content (BDAT LAST): resolve pending state */
int
data_scan_end(struct data_scanner *s, data_scan_output out, void *arg)
{
	int	 rc = 0;

	if (s->done)
		return 0;
	switch (s->state) {
	case DS_ST_DOTCR:
		/* not reached in BDAT; in DATA the pending CR is content */
		rc = ds_emit(s, "\r", 1, out, arg);
		/* FALLTHROUGH */
	case DS_ST_CR:
		s->errors |= DS_BARE_CR;
		ds_count(s, 1);
		break;
	default:
		break;
	}
	s->state = DS_ST_TEXT;
	return rc;
}

/* ---- helpers ------------------------------------------------------ */

/*
 * path_split - check the keyword ("FROM:" / "TO:"), one tolerated SP,
 * and "<path>"; return the path inside <> and the params after it.
 */
static enum smtp_arg_error
path_split(const char *arg, size_t len, const char *kw, size_t kwlen,
    const char **path, size_t *pathlen, const char **rest, size_t *restlen,
    const char **why)
{
	const char	*gt, *end = arg + len, *p;

	*why = "syntax error in parameters";
	if (len < kwlen || mem_casecmp(arg, kw, kwlen) != 0)
		return ARG_SYNTAX;
	p = arg + kwlen;
	if (p < end && *p == ' ')
		p++;
	if (p == end || *p != '<')
		return ARG_SYNTAX;
	p++;
	if ((gt = path_end(p, end - p)) == NULL)
		return ARG_SYNTAX;
	*path = p;
	*pathlen = gt - p;
	p = gt + 1;
	/* params are separated from the path by SP */
	if (p < end && *p != ' ')
		return ARG_SYNTAX;
	while (p < end && *p == ' ')
		p++;
	*rest = p;
	*restlen = end - p;
	return ARG_OK;
}

/*
 * path_end - the '>' closing a path, skipping a quoted local part (which
 * may hold '>'), or NULL.
 */
static const char *
path_end(const char *p, size_t n)
{
	const char	*end = p + n, *gt, *q;

	for (;;) {
		gt = memchr(p, '>', end - p);
		q = memchr(p, '"', (gt != NULL ? gt : end) - p);
		if (q == NULL)
			return gt;
		for (p = q + 1; p < end && *p != '"'; p++)
			if (*p == '\\' && p + 1 < end)
				p++;
		if (p >= end)
			return NULL;
		p++;
	}
}

/*
 * param_next - parse one esmtp-param at *pp (RFC 5321 4.1.2):
 *	esmtp-keyword ["=" esmtp-value]
 * and skip the SP after it.  RFC 6531 3.3 allows UTF-8 in values.
 */
static enum smtp_arg_error
param_next(const char **pp, const char *end, struct param *prm,
    const char **why)
{
	const unsigned char	*s;
	const char		*p = *pp, *sp, *eq;
	size_t			 n, i;

	*why = "syntax error in parameters";
	sp = memchr(p, ' ', end - p);
	n = (sp != NULL ? sp : end) - p;
	eq = memchr(p, '=', n);
	prm->key = p;
	prm->keylen = eq != NULL ? (size_t)(eq - p) : n;
	prm->val = NULL;
	prm->vallen = 0;
	s = (const unsigned char *)p;
	if (prm->keylen == 0 || s[0] == '-')
		return ARG_SYNTAX;
	for (i = 0; i < prm->keylen; i++)
		if (!(smtp_class[s[i]] & CK))
			return ARG_SYNTAX;
	if (eq != NULL) {
		prm->val = eq + 1;
		prm->vallen = n - prm->keylen - 1;
		if (prm->vallen == 0)
			return ARG_SYNTAX;
		for (i = prm->keylen + 1; i < n; i++)
			if (s[i] < 0x80 && !(smtp_class[s[i]] & CV))
				return ARG_SYNTAX;
	}
	for (p += n; p < end && *p == ' '; p++)
		;
	*pp = p;
	return ARG_OK;
}

/* mail_param - apply one MAIL parameter; seen has a bit per keyword */
static enum smtp_arg_error
mail_param(const struct param *prm, struct smtp_mail_args *m,
    unsigned *seen, const char **why)
{
	unsigned	 bit;

	*why = "syntax error in parameters";
	if (param_is(prm, "SIZE"))
		bit = 0x01;
	else if (param_is(prm, "BODY"))
		bit = 0x02;
	else if (param_is(prm, "SMTPUTF8"))
		bit = 0x04;
	else if (param_is(prm, "AUTH"))
		bit = 0x08;
	else {
		*why = "unrecognized parameter";
		return ARG_UNKNOWN_PARAM;
	}
	if (*seen & bit) {
		*why = "duplicate parameter";
		return ARG_SYNTAX;
	}
	*seen |= bit;

	switch (bit) {
	case 0x01:	/* RFC 1870 6: SIZE=size-value */
		if (prm->val == NULL ||
		    size_value(prm->val, prm->vallen, &m->size) == -1) {
			*why = "bad SIZE value";
			return ARG_SYNTAX;
		}
		m->has_size = 1;
		break;
	case 0x02:	/* RFC 6152 2, RFC 3030 3: BODY= */
		if (prm->val == NULL)
			return ARG_SYNTAX;
		if (prm->vallen == 4 && mem_casecmp(prm->val, "7BIT", 4) == 0)
			m->body = BODY_7BIT;
		else if (prm->vallen == 8 &&
		    mem_casecmp(prm->val, "8BITMIME", 8) == 0)
			m->body = BODY_8BITMIME;
		else if (prm->vallen == 10 &&
		    mem_casecmp(prm->val, "BINARYMIME", 10) == 0)
			m->body = BODY_BINARYMIME;
		else {
			*why = "bad BODY value";
			return ARG_SYNTAX;
		}
		break;
	case 0x04:	/* RFC 6531 3.4: SMTPUTF8 takes no value */
		if (prm->val != NULL)
			return ARG_SYNTAX;
		m->smtputf8 = 1;
		break;
	default:	/* RFC 4954 5: AUTH=xtext */
		if (prm->val == NULL ||
		    !xtext_valid(prm->val, prm->vallen)) {
			*why = "bad AUTH value";
			return ARG_SYNTAX;
		}
		m->auth = prm->val;
		m->authlen = prm->vallen;
		break;
	}
	return ARG_OK;
}

/* param_is - the parameter's keyword is the upper-case s */
static int
param_is(const struct param *prm, const char *s)
{
	size_t	 n = strlen(s);		/* s is our constant */

	return prm->keylen == n && mem_casecmp(prm->key, s, n) == 0;
}

/* size_value - 1*20DIGIT into *v, refusing what does not fit 64 bits */
static int
size_value(const char *p, size_t len, uint64_t *v)
{
	uint64_t	 n = 0;
	unsigned	 d;
	size_t		 i;

	if (len == 0 || len > SIZE_DIGITS)
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		d = p[i] - '0';
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*v = n;
	return 0;
}

/*
 * xtext_valid - RFC 3461 4: xtext = *( xchar / hexchar ),
 * hexchar = "+" 2(%x30-39 / %x41-46).
 */
static int
xtext_valid(const char *p, size_t len)
{
	const unsigned char	*s = (const unsigned char *)p;
	size_t			 i;

	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			if (len - i < 3)
				return 0;
			if (!((s[i + 1] >= '0' && s[i + 1] <= '9') ||
			    (s[i + 1] >= 'A' && s[i + 1] <= 'F')) ||
			    !((s[i + 2] >= '0' && s[i + 2] <= '9') ||
			    (s[i + 2] >= 'A' && s[i + 2] <= 'F')))
				return 0;
			i += 2;
		} else if (s[i] >= 0x80 || !(smtp_class[s[i]] & CX))
			return 0;
	}
	return 1;
}

/*
 * ds_text - skip line text up to and including the next CR or LF.  *crp
 * and *lfp cache the next CR and LF (end: none), so that every octet is
 * searched at most once per data_scan() call, even for input made only
 * of bare LFs.  Returns the new position.
 */
static const char *
ds_text(struct data_scanner *s, const char *p, const char *end,
    const char **crp, const char **lfp)
{
	const char	*q;

	if (*crp == NULL || *crp < p)
		*crp = ds_next(p, end, '\r');
	if (*lfp == NULL || *lfp < p)
		*lfp = ds_next(p, end, '\n');
	q = *crp < *lfp ? *crp : *lfp;
	ds_count(s, q - p);
	if (q == end)
		return end;
	if (*q == '\n') {
		/* bare LF: content, and no line end */
		s->errors |= DS_BARE_LF;
		ds_count(s, 1);
	} else
		s->state = DS_ST_CR;
	return q + 1;
}

/* ds_emit - hand n content octets to the output, counting them */
static int
ds_emit(struct data_scanner *s, const char *p, size_t n,
    data_scan_output out, void *arg)
{
	if (n == 0)
		return 0;
	s->total += n;
	return out(arg, p, n) == -1 ? -1 : 0;
}

/*
 * ds_count - n more octets on the current line; RFC 5321 4.5.3.1.6:
 * at most SMTP_TEXT_MAX with the CRLF, so SMTP_TEXT_MAX - 2 before it.
 */
static void
ds_count(struct data_scanner *s, size_t n)
{
	s->linelen += n;
	if (s->linelen > SMTP_TEXT_MAX - 2)
		s->errors |= DS_LONG_LINE;
}

/* ds_next - the first c in [p, end), or end */
static const char *
ds_next(const char *p, const char *end, int c)
{
	const char	*q;

	q = memchr(p, c, end - p);
	return q != NULL ? q : end;
}
