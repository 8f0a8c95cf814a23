/*
 * addr.c - RFC 5321 mailbox syntax: local part, domain, address literal.
 *
 * Grammar (RFC 5321 4.1.2, 4.1.3, extended by RFC 6531 3.3 when utf8):
 *	Path       = [ A-d-l ":" ] Mailbox	(source route, flagged only)
 *	Mailbox    = Local-part "@" ( Domain / address-literal )
 *	Local-part = Dot-string / Quoted-string
 *	Domain     = sub-domain *("." sub-domain)	(LDH labels or U-labels)
 *
 * Invariants: every function reads only p[0..len); the slices it returns
 * point into the caller's input; nothing allocates; the only copy is the
 * bounded stack copy handed to inet_pton(), which needs a C string.
 * Limits are those of RFC 5321 4.5.3.1 (local 64, domain 255, path 256).
 * Octets >= 0x80 are accepted only with utf8 and only as well-formed
 * UTF-8 (RFC 3629 3), so an overlong or surrogate encoding never passes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "../lib/util.h"

#include "addr.h"

/* octet classes of the 7-bit table below */
#define CA	0x01	/* ALPHA */
#define CD	0x02	/* DIGIT */
#define CT	0x04	/* atext, RFC 5322 3.2.3 */
#define CQ	0x08	/* qtextSMTP, RFC 5321 4.1.2 */
#define CL	0x10	/* Let-dig or '-' (LDH) */

#define LABEL_MAX	63	/* RFC 1035 2.3.4 */

static const char	*local_dot_string(const unsigned char *, size_t, int,
			    unsigned *);
static const char	*local_quoted(const unsigned char *, size_t, int,
			    unsigned *, size_t *);
static const char	*route_check(const char *, size_t);
static const char	*domain_check(const char *, size_t, int, unsigned *);
static const char	*domain_name(const unsigned char *, size_t, int,
			    unsigned *);
static const char	*domain_literal(const char *, size_t);
static size_t		 utf8_seq(const unsigned char *, size_t);

/* combined classes, only to keep the table readable */
#define Q	(CQ)
#define TQ	(CT | CQ)
#define TQL	(CT | CQ | CL)
#define DTQL	(CD | CT | CQ | CL)
#define ATQL	(CA | CT | CQ | CL)

/* classes of 7-bit octets; octets >= 0x80 are 0 and handled as UTF-8 */
static const unsigned char addr_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0,	/* 00 */
	0, 0, 0, 0, 0, 0, 0, 0,	/* 08 */
	0, 0, 0, 0, 0, 0, 0, 0,	/* 10 */
	0, 0, 0, 0, 0, 0, 0, 0,	/* 18 */
	Q, TQ, 0, TQ, TQ, TQ, TQ, TQ,	/* 20 */
	Q, Q, TQ, TQ, Q, TQL, Q, TQ,	/* 28 */
	DTQL, DTQL, DTQL, DTQL, DTQL, DTQL, DTQL, DTQL,	/* 30 */
	DTQL, DTQL, Q, Q, Q, TQ, Q, TQ,	/* 38 */
	Q, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL,	/* 40 */
	ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL,	/* 48 */
	ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL,	/* 50 */
	ATQL, ATQL, ATQL, Q, 0, Q, TQ, TQ,	/* 58 */
	TQ, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL,	/* 60 */
	ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL,	/* 68 */
	ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL, ATQL,	/* 70 */
	ATQL, ATQL, ATQL, TQ, TQ, TQ, TQ, 0,	/* 78 */
};

#undef Q
#undef TQ
#undef TQL
#undef DTQL
#undef ATQL

/* addr_parse_mailbox - parse "[@a,@b:]local@domain" into *a */
int
addr_parse_mailbox(const char *p, size_t len, int utf8, struct addr *a,
    const char **why)
{
	const unsigned char	*s;
	const char		*colon, *err, *at;
	size_t			 qlen;

	memset(a, 0, sizeof(*a));
	if (len == 0) {
		*why = "empty address";
		return -1;
	}
	if (len > ADDR_PATH_MAX) {
		*why = "address too long";
		return -1;
	}
	/* RFC 5321 C: accept the obsolete source route, then ignore it */
	if (p[0] == '@') {
		if ((colon = memchr(p, ':', len)) == NULL) {
			*why = "bad source route";
			return -1;
		}
		if ((err = route_check(p, colon - p)) != NULL) {
			*why = err;
			return -1;
		}
		a->flags |= ADDR_ROUTE;
		len -= colon + 1 - p;
		p = colon + 1;
		if (len == 0) {
			*why = "empty address";
			return -1;
		}
	}
	s = (const unsigned char *)p;

	if (p[0] == '"') {
		err = local_quoted(s, len, utf8, &a->flags, &qlen);
		if (err != NULL) {
			*why = err;
			return -1;
		}
		at = p + qlen;
		if (qlen == len || *at != '@') {
			*why = "missing @domain";
			return -1;
		}
	} else if ((at = memchr(p, '@', len)) == NULL) {
		/* RFC 5321 4.5.1: "Postmaster" without domain, RCPT only */
		if (len == 10 && !(a->flags & ADDR_ROUTE) &&
		    mem_casecmp(p, "postmaster", 10) == 0) {
			a->local = p;
			a->locallen = len;
			a->flags |= ADDR_POSTMASTER;
			return 0;
		}
		*why = "missing @domain";
		return -1;
	} else {
		err = local_dot_string(s, at - p, utf8, &a->flags);
		if (err != NULL) {
			*why = err;
			return -1;
		}
	}

	a->local = p;
	a->locallen = at - p;
	if (a->locallen > ADDR_LOCAL_MAX) {
		*why = "local part too long";
		return -1;
	}
	/* RFC 1123 5.2.16 percent hack, UUCP bang paths, quoted '@' */
	if (memchr(a->local, '%', a->locallen) != NULL ||
	    memchr(a->local, '!', a->locallen) != NULL ||
	    ((a->flags & ADDR_QUOTED) &&
	    memchr(a->local, '@', a->locallen) != NULL))
		a->flags |= ADDR_ROUTING;

	a->domain = at + 1;
	a->domainlen = len - a->locallen - 1;
	if ((err = domain_check(a->domain, a->domainlen, utf8,
	    &a->flags)) != NULL) {
		*why = err;
		return -1;
	}
	if (a->domain[a->domainlen - 1] == '.')
		a->domainlen--;
	return 0;
}

/* addr_domain_valid - hostname syntax (LDH labels) or address literal */
int
addr_domain_valid(const char *p, size_t len, int utf8)
{
	unsigned	 flags = 0;

	return domain_check(p, len, utf8, &flags) == NULL;
}

/* addr_domain_eq - compare domains ignoring ASCII case and one final dot */
int
addr_domain_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	return alen == blen && mem_casecmp(a, b, alen) == 0;
}

/* addr_is_postmaster - local part is "postmaster" in any case */
int
addr_is_postmaster(const struct addr *a)
{
	if (a->local == NULL)
		return 0;
	/* "Postmaster" quoted is the same mailbox (RFC 5321 4.1.2) */
	if (a->flags & ADDR_QUOTED)
		return a->locallen == 12 &&
		    mem_casecmp(a->local + 1, "postmaster", 10) == 0;
	return a->locallen == 10 &&
	    mem_casecmp(a->local, "postmaster", 10) == 0;
}

/*
 * local_dot_string - Dot-string = Atom *("." Atom), Atom = 1*atext.
 * Returns NULL or the reason.
 */
static const char *
local_dot_string(const unsigned char *s, size_t len, int utf8,
    unsigned *flags)
{
	size_t	 i, atom, k;

	if (len == 0)
		return "empty local part";
	for (i = atom = 0; i < len;) {
		if (s[i] == '.') {
			if (atom == 0)
				return "empty atom in local part";
			atom = 0;
			i++;
		} else if (s[i] < 0x80) {
			if (!(addr_class[s[i]] & CT))
				return "bad character in local part";
			atom++;
			i++;
		} else {
			if (!utf8)
				return "non-ASCII address without SMTPUTF8";
			if ((k = utf8_seq(s + i, len - i)) == 0)
				return "malformed UTF-8 in local part";
			*flags |= ADDR_UTF8;
			atom++;
			i += k;
		}
	}
	return atom == 0 ? "empty atom in local part" : NULL;
}

/*
 * local_quoted - Quoted-string = DQUOTE *QcontentSMTP DQUOTE, starting
 * at s[0] == '"'.  *qlen is set to its length with both quotes.
 */
static const char *
local_quoted(const unsigned char *s, size_t len, int utf8, unsigned *flags,
    size_t *qlen)
{
	size_t	 i, k;

	*flags |= ADDR_QUOTED;
	for (i = 1; i < len;) {
		if (s[i] == '"') {
			/* legal per grammar, but no mailbox is named "" */
			if (i == 1)
				return "empty local part";
			*qlen = i + 1;
			return NULL;
		}
		if (s[i] == '\\') {
			/* quoted-pairSMTP = "\" %d32-126 */
			if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] > 126)
				return "bad quoted pair in local part";
			i += 2;
		} else if (s[i] < 0x80) {
			if (!(addr_class[s[i]] & CQ))
				return "bad character in local part";
			i++;
		} else {
			if (!utf8)
				return "non-ASCII address without SMTPUTF8";
			if ((k = utf8_seq(s + i, len - i)) == 0)
				return "malformed UTF-8 in local part";
			*flags |= ADDR_UTF8;
			i += k;
		}
	}
	return "unterminated quoted local part";
}

/* route_check - A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain */
static const char *
route_check(const char *p, size_t len)
{
	const char	*comma;
	size_t		 n;
	unsigned	 flags = 0;

	while (len > 0) {
		if (p[0] != '@')
			return "bad source route";
		comma = memchr(p, ',', len);
		n = comma != NULL ? (size_t)(comma - p) : len;
		/* only a plain ASCII Domain, no literal, no final dot */
		if (n < 2 || p[1] == '[' || p[n - 1] == '.' ||
		    domain_name((const unsigned char *)p + 1, n - 1, 0,
		    &flags) != NULL)
			return "bad source route";
		if (comma == NULL)
			return NULL;
		len -= n + 1;
		p += n + 1;
	}
	return "bad source route";	/* empty, or a trailing ',' */
}

/*
 * domain_check - Domain or address-literal, with at most one final dot
 * after a Domain (the absolute form, stripped by the callers).
 */
static const char *
domain_check(const char *p, size_t len, int utf8, unsigned *flags)
{
	if (len == 0)
		return "empty domain";
	if (p[0] == '[') {
		*flags |= ADDR_LITERAL;
		return domain_literal(p, len);
	}
	if (p[len - 1] == '.')
		len--;
	return domain_name((const unsigned char *)p, len, utf8, flags);
}

/*
 * domain_name - sub-domain *("." sub-domain); sub-domain = Let-dig
 * [Ldh-str] (RFC 5321 4.1.2), or a U-label with utf8 (RFC 6531 3.3).
 * The 63-octet label limit binds LDH labels; a U-label is bounded by its
 * A-label, which this syntax check cannot compute, so only the total
 * counts for it.
 */
static const char *
domain_name(const unsigned char *s, size_t len, int utf8, unsigned *flags)
{
	size_t	 i, k, label;
	int	 u;

	if (len == 0)
		return "empty domain";
	if (len > ADDR_DOMAIN_MAX)
		return "domain too long";
	for (i = label = u = 0; i < len;) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return "bad domain label";
			label = u = 0;
			i++;
			continue;
		}
		if (s[i] < 0x80) {
			if (!(addr_class[s[i]] & CL) ||
			    (label == 0 && s[i] == '-'))
				return "bad character in domain";
			k = 1;
		} else {
			if (!utf8)
				return "non-ASCII address without SMTPUTF8";
			if ((k = utf8_seq(s + i, len - i)) == 0)
				return "malformed UTF-8 in domain";
			*flags |= ADDR_UTF8;
			u = 1;
		}
		label += k;
		i += k;
		if (label > LABEL_MAX && !u)
			return "domain label too long";
	}
	if (label == 0 || s[len - 1] == '-')
		return "bad domain label";
	return NULL;
}

/*
 * domain_literal - "[" IPv4 "]" or "[IPv6:" IPv6 "]" (RFC 5321 4.1.3).
 * General-address-literal tags are refused: none is registered.
 */
static const char *
domain_literal(const char *p, size_t len)
{
	char			 tmp[INET6_ADDRSTRLEN];
	struct in6_addr		 a6;
	const char		*c;
	size_t			 n, max;
	int			 af;

	if (len < 3 || p[len - 1] != ']')
		return "bad address literal";
	c = p + 1;
	n = len - 2;
	if (n >= 5 && mem_casecmp(c, "IPv6:", 5) == 0) {
		af = AF_INET6;
		c += 5;
		n -= 5;
		max = INET6_ADDRSTRLEN - 1;
	} else {
		af = AF_INET;
		max = INET_ADDRSTRLEN - 1;
	}
	/* a NUL would end inet_pton's string early and hide the rest */
	if (n == 0 || n > max || memchr(c, '\0', n) != NULL)
		return "bad address literal";
	memcpy(tmp, c, n);
	tmp[n] = '\0';
	if (inet_pton(af, tmp, &a6) != 1)
		return "bad address literal";
	return NULL;
}

/*
 * utf8_seq - length (2..4) of the well-formed UTF-8 sequence at s[0]
 * (>= 0x80), or 0: RFC 3629 4, no overlongs, surrogates or > U+10FFFF.
 */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}
