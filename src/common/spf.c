/*
 * spf.c - SPF check_host() (RFC 7208), asynchronous over dns.c.
 *
 * A check is a stack of frames, one per check_host() in progress: the
 * first for the sender's domain, one more per include (4.6.4 bounds
 * them through the lookup count).  The top frame walks its record's
 * terms; a term that needs DNS starts one query and returns, and the
 * query's callback goes on with the same term (only one query is ever
 * in flight per check, so the callback finds its term at the top).
 *
 * Results travel up by frame_done(): an include maps the nested
 * result to match / no match / error (RFC 7208 5.2), a redirect hands
 * its result to the frame that redirected (6.1, "none" becoming
 * permerror).  temperror and permerror end the whole check at once.
 *
 * Invariants: c->q is the one pending query or NULL; c->top is never
 * NULL while the check runs; the record text a frame's terms point
 * into is owned by that frame.  The whole check is bounded by a timer
 * (timeout_ms): at expiry the pending query is cancelled and the
 * result is temperror.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "dns.h"
#include "spf.h"

#define SPF_PARTS_MAX	256	/* parts of a macro value split apart */

enum frame_kind {
	FR_TOP,
	FR_INCLUDE,
	FR_REDIRECT
};

struct spf_frame {
	struct spf_frame	*up;
	enum frame_kind		 kind;
	char			 domain[DNS_NAME_MAX + 1];
	char			*text;		/* the record, owned */
	struct spf_record	 rec;
	size_t			 cur;		/* term being evaluated */
};

struct spf_check {
	struct event_base	*base;
	struct event		*timer;		/* bound, then delivery */
	struct dns_query	*q;
	struct spf_frame	*top;
	spf_cb			 cb;
	void			*arg;
	struct spf_macro	 m;		/* d is set per expansion */
	char			*strings;	/* sender, helo, ... owned */
	unsigned		 nlookups;
	unsigned		 nvoid;
	int			 starting;	/* inside spf_check_start */
	int			 done;
	enum spf_result		 result;
	char			 why[SPF_WHY_MAX];
	/* the mx or ptr mechanism in progress */
	char			 names[SPF_NAMES_MAX][DNS_NAME_MAX + 1];
	size_t			 nnames;
	size_t			 iname;
};

static int	term_parse(const char *, size_t, struct spf_record *,
		    const char **);
static int	mech_parse(const char *, size_t, struct spf_term *,
		    const char **);
static int	cidr_parse(const char *, size_t, struct spf_term *, int);
static int	num_parse(const char *, size_t, unsigned, unsigned *);
static int	domain_spec_ok(const char *, size_t);
static int	toplabel_ok(const char *, size_t);
static int	macro_letter(const struct spf_macro *, char, int, char *,
		    size_t);
static int	macro_transform(const char *, size_t, unsigned, int,
		    const char *, size_t, int, char *, size_t);
static int	put(char *, size_t, size_t *, const char *, size_t);
static int	prefix_match(const uint8_t *, const uint8_t *, unsigned);
static void	frame_push(struct spf_check *, const char *, size_t,
		    enum frame_kind);
static void	frame_done(struct spf_check *, enum spf_result);
static void	run(struct spf_check *);
static void	matched(struct spf_check *);
static void	next_term(struct spf_check *);
static int	void_lookup(struct spf_check *);
static int	target(struct spf_check *, const struct spf_term *, char *);
static int	lookup_target(struct spf_check *, const struct spf_term *,
		    char *);
static void	finish(struct spf_check *, enum spf_result, const char *,
		    ...) __attribute__((format(printf, 3, 4)));
static void	deliver(struct spf_check *);
static void	check_free(struct spf_check *);
static void	timer_cb(evutil_socket_t, short, void *);
static void	txt_done(const struct dns_result *, void *);
static void	a_done(const struct dns_result *, void *);
static int	addr_result(struct spf_check *, const struct dns_result *);
static void	mx_done(const struct dns_result *, void *);
static void	name_next(struct spf_check *, dns_cb);
static void	mxaddr_done(const struct dns_result *, void *);
static void	ptr_done(const struct dns_result *, void *);
static void	ptraddr_done(const struct dns_result *, void *);
static void	exists_done(const struct dns_result *, void *);
static int	addr_match(const struct spf_check *, const struct dns_result *,
		    unsigned, unsigned);

static const struct {
	const char	*name;
	enum spf_kind	 kind;
} mechs[] = {
	{ "all", SPF_ALL }, { "include", SPF_INCLUDE }, { "a", SPF_A },
	{ "mx", SPF_MX }, { "ptr", SPF_PTR }, { "ip4", SPF_IP4 },
	{ "ip6", SPF_IP6 }, { "exists", SPF_EXISTS }, { NULL, SPF_ALL }
};

/* ---- record parser (RFC 7208 4.5, 12) ---------------------------- */

/* spf_is_record - "v=spf1" alone or followed by a space (4.5) */
int
spf_is_record(const char *p, size_t len)
{
	return len >= 6 && mem_casecmp(p, "v=spf1", 6) == 0 &&
	    (len == 6 || p[6] == ' ');
}

/* spf_record_parse - version, then terms separated by spaces */
int
spf_record_parse(const char *p, size_t len, struct spf_record *rec,
    const char **why)
{
	size_t	 i, start;

	memset(rec, 0, sizeof(*rec));
	rec->redirect = -1;
	if (!spf_is_record(p, len)) {
		*why = "not an SPF record";
		return -1;
	}
	for (i = 6; i < len;) {
		if (p[i] != ' ') {
			*why = "terms must be separated by spaces";
			return -1;
		}
		while (i < len && p[i] == ' ')
			i++;
		if (i == len)
			break;
		for (start = i; i < len && p[i] != ' '; i++)
			;
		if (term_parse(p + start, i - start, rec, why) == -1)
			return -1;
	}
	return 0;
}

/*
 * term_parse - a modifier (name "=" value) or a directive; the name
 * grammar decides (RFC 7208 12: name = ALPHA *(ALPHA/DIGIT/-/_/.)).
 */
static int
term_parse(const char *t, size_t n, struct spf_record *rec, const char **why)
{
	struct spf_term	*term;
	size_t		 j = 0;

	if (rec->nterms >= SPF_TERMS_MAX) {
		*why = "too many terms";
		return -1;
	}
	term = &rec->term[rec->nterms];
	memset(term, 0, sizeof(*term));
	term->text = t;
	term->textlen = n;
	term->qual = SPF_PASS;
	term->cidr4 = 32;
	term->cidr6 = 128;
	if ((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')
		for (j = 1; j < n && (((t[j] | 0x20) >= 'a' &&
		    (t[j] | 0x20) <= 'z') || (t[j] >= '0' && t[j] <= '9') ||
		    t[j] == '-' || t[j] == '_' || t[j] == '.'); j++)
			;
	if (j == 0 || j == n || t[j] != '=') {
		if (mech_parse(t, n, term, why) == -1)
			return -1;
		if (term->kind == SPF_ALL)
			rec->has_all = 1;
		rec->nterms++;
		return 0;
	}
	term->spec = t + j + 1;
	term->speclen = n - j - 1;
	if (j == 8 && mem_casecmp(t, "redirect", 8) == 0)
		term->kind = SPF_REDIRECT;
	else if (j == 3 && mem_casecmp(t, "exp", 3) == 0)
		term->kind = SPF_EXP;
	else
		term->kind = SPF_UNKNOWN_MOD;
	if (term->kind == SPF_UNKNOWN_MOD) {
		/* any macro-string, even empty (RFC 7208 12) */
		if (spf_macro_expand(term->spec, term->speclen, NULL, 0, NULL,
		    0) == -1) {
			*why = "bad macro in a modifier";
			return -1;
		}
		rec->nterms++;
		return 0;
	}
	/* 6: redirect and exp at most once each */
	for (j = 0; j < rec->nterms; j++)
		if (rec->term[j].kind == term->kind) {
			*why = "modifier given twice";
			return -1;
		}
	if (!domain_spec_ok(term->spec, term->speclen)) {
		*why = "bad domain-spec in a modifier";
		return -1;
	}
	if (term->kind == SPF_REDIRECT)
		rec->redirect = (int)rec->nterms;
	rec->nterms++;
	return 0;
}

/* mech_parse - [qualifier] mechanism [":" arg] [cidr] */
static int
mech_parse(const char *t, size_t n, struct spf_term *term, const char **why)
{
	char		 ip[INET6_ADDRSTRLEN];
	const char	*arg, *slash;
	size_t		 i, nl, al;
	int		 k;

	switch (t[0]) {
	case '+': term->qual = SPF_PASS; t++; n--; break;
	case '-': term->qual = SPF_FAIL; t++; n--; break;
	case '~': term->qual = SPF_SOFTFAIL; t++; n--; break;
	case '?': term->qual = SPF_NEUTRAL; t++; n--; break;
	default: break;
	}
	for (nl = 0; nl < n && t[nl] != ':' && t[nl] != '/'; nl++)
		;
	for (k = 0; mechs[k].name != NULL; k++)
		if (strlen(mechs[k].name) == nl &&
		    mem_casecmp(mechs[k].name, t, nl) == 0)
			break;
	if (mechs[k].name == NULL) {
		*why = "unknown mechanism";
		return -1;
	}
	term->kind = mechs[k].kind;
	arg = t + nl;
	al = n - nl;
	switch (term->kind) {
	case SPF_ALL:
		if (al == 0)
			return 0;
		break;
	case SPF_INCLUDE:
	case SPF_EXISTS:
		if (al > 1 && arg[0] == ':' &&
		    domain_spec_ok(arg + 1, al - 1)) {
			term->spec = arg + 1;
			term->speclen = al - 1;
			return 0;
		}
		break;
	case SPF_A:
	case SPF_MX:
	case SPF_PTR:
		if (al > 0 && arg[0] == ':') {
			slash = memchr(arg, '/', al);
			i = slash != NULL ? (size_t)(slash - arg) : al;
			if (i < 2 || !domain_spec_ok(arg + 1, i - 1))
				break;
			term->spec = arg + 1;
			term->speclen = i - 1;
			arg += i;
			al -= i;
		}
		if (al == 0)
			return 0;
		if (term->kind != SPF_PTR && cidr_parse(arg, al, term, 1) == 0)
			return 0;
		break;
	case SPF_IP4:
	case SPF_IP6:
		if (al < 2 || arg[0] != ':')
			break;
		slash = memchr(arg, '/', al);
		i = slash != NULL ? (size_t)(slash - arg) : al;
		if (i - 1 >= sizeof(ip))
			break;
		memcpy(ip, arg + 1, i - 1);
		ip[i - 1] = '\0';
		if (inet_pton(term->kind == SPF_IP4 ? AF_INET : AF_INET6, ip,
		    term->net) != 1)
			break;
		if (i == al || cidr_parse(arg + i, al - i, term, 0) == 0)
			return 0;
		break;
	default:
		break;
	}
	*why = "bad mechanism argument";
	return -1;
}

/*
 * cidr_parse - "/N", "//M", "/N//M" for a and mx (dual), "/N" for ip4
 * and ip6 (single: the width of the term's own family)
 */
static int
cidr_parse(const char *p, size_t len, struct spf_term *t, int dual)
{
	const char	*dd;
	size_t		 n;

	if (!dual)
		return len >= 2 && p[0] == '/' && num_parse(p + 1, len - 1,
		    t->kind == SPF_IP4 ? 32 : 128,
		    t->kind == SPF_IP4 ? &t->cidr4 : &t->cidr6) == 0 ? 0 : -1;
	dd = NULL;
	for (n = 0; n + 1 < len; n++)
		if (p[n] == '/' && p[n + 1] == '/') {
			dd = p + n;
			break;
		}
	n = dd != NULL ? (size_t)(dd - p) : len;
	if (n > 0 && (n < 2 || p[0] != '/' ||
	    num_parse(p + 1, n - 1, 32, &t->cidr4) == -1))
		return -1;
	if (dd == NULL)
		return 0;
	return num_parse(dd + 2, len - n - 2, 128, &t->cidr6);
}

/* num_parse - "0" or a number without a leading zero, at most max */
static int
num_parse(const char *p, size_t len, unsigned max, unsigned *out)
{
	unsigned	 v = 0;
	size_t		 i;

	if (len == 0 || len > 3 || (p[0] == '0' && len > 1))
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * domain_spec_ok - a macro-string ending in a macro-expand or in
 * "." toplabel ["."] (RFC 7208 7.1 domain-end)
 */
static int
domain_spec_ok(const char *p, size_t len)
{
	const char	*dot;

	if (len == 0 || spf_macro_expand(p, len, NULL, 0, NULL, 0) == -1)
		return 0;
	if (p[len - 1] == '.')
		len--;
	if (len == 0)
		return 0;
	if (p[len - 1] == '}')
		return 1;
	if ((dot = memrchr(p, '.', len)) == NULL)
		return 0;
	return toplabel_ok(dot + 1, len - (size_t)(dot + 1 - p));
}

/* toplabel_ok - alphanumerics and inner hyphens, not all digits */
static int
toplabel_ok(const char *p, size_t len)
{
	size_t	 i;
	int	 alpha = 0;

	if (len == 0 || p[0] == '-' || p[len - 1] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'z')
			alpha = 1;
		else if (p[i] == '-')
			alpha = 1;	/* "1*alphanum - ..." form */
		else if (p[i] < '0' || p[i] > '9')
			return 0;
	}
	return alpha;
}

/* ---- macros (RFC 7208 7) ----------------------------------------- */

/*
 * spf_macro_expand - macro-literals copied, "%%" "%_" "%-" and
 * "%{" letter [digits] ["r"] *delimiter "}" expanded.  With m NULL
 * the string is only checked (out unused).
 */
int
spf_macro_expand(const char *p, size_t len, const struct spf_macro *m,
    int explain, char *out, size_t outsz)
{
	char		 val[SPF_EXPAND_MAX];
	const char	*delim;
	size_t		 i = 0, o = 0, j, ndelim;
	unsigned	 keep;
	int		 rev, upper, vl;
	char		 letter;

	while (i < len) {
		unsigned char	 c = (unsigned char)p[i];

		if (c != '%') {
			/* macro-literal: %x21-24 / %x26-7E; space in exp */
			if ((c < 0x21 && !(explain && c == ' ')) || c > 0x7e)
				return -1;
			if (m != NULL && put(out, outsz, &o, p + i, 1) == -1)
				return -1;
			i++;
			continue;
		}
		if (i + 1 >= len)
			return -1;
		switch (p[i + 1]) {
		case '%':
			vl = m != NULL ? put(out, outsz, &o, "%", 1) : 0;
			break;
		case '_':
			vl = m != NULL ? put(out, outsz, &o, " ", 1) : 0;
			break;
		case '-':
			vl = m != NULL ? put(out, outsz, &o, "%20", 3) : 0;
			break;
		case '{':
			vl = 1;
			break;
		default:
			return -1;
		}
		if (vl == -1)
			return -1;
		if (vl == 0) {
			i += 2;
			continue;
		}
		/* "%{" letter transformers *delimiter "}" */
		i += 2;
		if (i >= len)
			return -1;
		letter = p[i];
		upper = letter >= 'A' && letter <= 'Z';
		letter |= 0x20;
		if (strchr("slodiphv", letter) == NULL &&
		    !(explain && strchr("crt", letter) != NULL))
			return -1;
		i++;
		keep = 0;
		for (j = i; j < len && p[j] >= '0' && p[j] <= '9'; j++)
			if ((keep = keep * 10 + (unsigned)(p[j] - '0')) > 1000)
				return -1;
		if (j > i && keep == 0)
			return -1;	/* 7.1: zero parts is an error */
		i = j;
		rev = i < len && (p[i] | 0x20) == 'r';
		if (rev)
			i++;
		delim = p + i;
		for (ndelim = 0; i < len && strchr(".-+,/_=", p[i]) != NULL &&
		    p[i] != '\0'; i++)
			ndelim++;
		if (i >= len || p[i] != '}')
			return -1;
		i++;
		if (m == NULL)
			continue;
		if ((vl = macro_letter(m, letter, explain, val,
		    sizeof(val))) == -1)
			return -1;
		if (macro_transform(val, (size_t)vl, keep, rev, delim, ndelim,
		    upper, out + o, outsz - o) == -1)
			return -1;
		o += strlen(out + o);
	}
	if (m != NULL) {
		if (o >= outsz)
			return -1;
		out[o] = '\0';
	}
	return (int)o;
}

/* macro_letter - the value of one letter (RFC 7208 7.3) into val */
static int
macro_letter(const struct spf_macro *m, char letter, int explain, char *val,
    size_t valsz)
{
	const char	*s = m->sender != NULL ? m->sender : "";
	const char	*at = strrchr(s, '@'), *v = NULL;
	size_t		 i, o = 0;
	int		 r;

	switch (letter) {
	case 's':
		v = s;
		break;
	case 'l':
		if (at == NULL || at == s)
			v = "postmaster";
		else {
			if ((size_t)(at - s) >= valsz)
				return -1;
			memcpy(val, s, (size_t)(at - s));
			val[at - s] = '\0';
			return (int)(at - s);
		}
		break;
	case 'o':
		v = at != NULL ? at + 1 : s;
		break;
	case 'd':
		v = m->domain != NULL ? m->domain : "";
		break;
	case 'h':
		v = m->helo != NULL ? m->helo : "";
		break;
	case 'p':
		v = m->ptrname != NULL ? m->ptrname : "unknown";
		break;
	case 'v':
		v = m->family == AF_INET ? "in-addr" : "ip6";
		break;
	case 'r':
		v = m->rcvhost != NULL ? m->rcvhost : "unknown";
		break;
	case 't':
		r = snprintf(val, valsz, "%lld", (long long)time(NULL));
		return r < 0 || (size_t)r >= valsz ? -1 : r;
	case 'c':
		if (inet_ntop(m->family, m->addr, val, (socklen_t)valsz) ==
		    NULL)
			return -1;
		return (int)strlen(val);
	case 'i':
		if (m->family == AF_INET) {
			r = snprintf(val, valsz, "%u.%u.%u.%u", m->addr[0],
			    m->addr[1], m->addr[2], m->addr[3]);
			return r < 0 || (size_t)r >= valsz ? -1 : r;
		}
		/* IPv6: dot-separated nibbles (7.3) */
		if (valsz < 64)
			return -1;
		for (i = 0; i < 16; i++) {
			val[o++] = "0123456789abcdef"[m->addr[i] >> 4];
			val[o++] = '.';
			val[o++] = "0123456789abcdef"[m->addr[i] & 15];
			val[o++] = i < 15 ? '.' : '\0';
		}
		return 63;
	default:
		(void)explain;
		return -1;
	}
	o = strlen(v);
	if (o >= valsz)
		return -1;
	memcpy(val, v, o + 1);
	return (int)o;
}

/*
 * macro_transform - split val at the delimiters (default '.'), reverse
 * with rev, keep the keep rightmost parts (0 = all), join with '.',
 * URL-escape with upper (7.3); appended to out (NUL-terminated)
 */
static int
macro_transform(const char *val, size_t vl, unsigned keep, int rev,
    const char *delim, size_t ndelim, int upper, char *out, size_t outsz)
{
	const char	*part[SPF_PARTS_MAX];
	size_t		 plen[SPF_PARTS_MAX], np = 0, i, start = 0, first;
	size_t		 o = 0, k;
	char		 hex[4];

	for (i = 0; i <= vl; i++) {
		if (i < vl && (ndelim == 0 ? val[i] != '.' :
		    memchr(delim, val[i], ndelim) == NULL))
			continue;
		if (np >= SPF_PARTS_MAX)
			return -1;
		part[np] = val + start;
		plen[np++] = i - start;
		start = i + 1;
	}
	if (rev)
		for (i = 0; i < np / 2; i++) {
			const char	*tp = part[i];
			size_t		 tl = plen[i];

			part[i] = part[np - 1 - i];
			plen[i] = plen[np - 1 - i];
			part[np - 1 - i] = tp;
			plen[np - 1 - i] = tl;
		}
	first = keep > 0 && keep < np ? np - keep : 0;
	for (i = first; i < np; i++) {
		if (i > first && put(out, outsz, &o, ".", 1) == -1)
			return -1;
		for (k = 0; k < plen[i]; k++) {
			unsigned char	 c = (unsigned char)part[i][k];

			if (!upper || (c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '-' || c == '.' || c == '_' || c == '~') {
				if (put(out, outsz, &o, part[i] + k, 1) == -1)
					return -1;
				continue;
			}
			hex[0] = '%';
			hex[1] = "0123456789ABCDEF"[c >> 4];
			hex[2] = "0123456789ABCDEF"[c & 15];
			if (put(out, outsz, &o, hex, 3) == -1)
				return -1;
		}
	}
	if (o >= outsz)
		return -1;
	out[o] = '\0';
	return 0;
}

/* put - append n octets at *o, keeping room for a NUL */
static int
put(char *out, size_t outsz, size_t *o, const char *p, size_t n)
{
	if (outsz == 0 || n >= outsz - *o)
		return -1;
	memcpy(out + *o, p, n);
	*o += n;
	return 0;
}

/* spf_domain_trim - labels off the left until 253 octets (7.3) */
size_t
spf_domain_trim(char *d, size_t len)
{
	char	*dot;

	if (len > 0 && d[len - 1] == '.')
		d[--len] = '\0';
	while (len > DNS_NAME_MAX) {
		if ((dot = memchr(d, '.', len)) == NULL) {
			d[0] = '\0';
			return 0;
		}
		len -= (size_t)(dot + 1 - d);
		memmove(d, dot + 1, len);
		d[len] = '\0';
	}
	return len;
}

/* ---- evaluation -------------------------------------------------- */

/* spf_check_start - the first frame: the TXT record of the domain */
struct spf_check *
spf_check_start(struct event_base *base, const struct spf_request *req,
    spf_cb cb, void *arg)
{
	static const uint8_t	 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				    0xff, 0xff };
	struct spf_check	*c;
	struct timeval		 tv;
	size_t			 ls, lh, lp, lr;
	char			*w;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	ls = strlen(req->sender) + 1;
	lh = strlen(req->helo != NULL ? req->helo : "") + 1;
	lp = req->ptrname != NULL ? strlen(req->ptrname) + 1 : 0;
	lr = strlen(req->rcvhost != NULL ? req->rcvhost : "") + 1;
	if ((c->strings = w = malloc(ls + lh + lp + lr)) == NULL ||
	    (c->timer = evtimer_new(base, timer_cb, c)) == NULL) {
		free(c->strings);
		free(c);
		return NULL;
	}
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	memcpy(w, req->sender, ls);
	c->m.sender = w;
	w += ls;
	memcpy(w, req->helo != NULL ? req->helo : "", lh);
	c->m.helo = w;
	w += lh;
	if (lp > 0) {
		memcpy(w, req->ptrname, lp);
		c->m.ptrname = w;
		w += lp;
	}
	memcpy(w, req->rcvhost != NULL ? req->rcvhost : "", lr);
	c->m.rcvhost = w;
	c->m.family = req->family;
	memcpy(c->m.addr, req->addr, 16);
	if (req->family == AF_INET6 && memcmp(req->addr, mapped, 12) == 0) {
		/* an IPv4 client seen through a dual-stack socket */
		c->m.family = AF_INET;
		memmove(c->m.addr, req->addr + 12, 4);
		memset(c->m.addr + 4, 0, 12);
	}
	tv.tv_sec = req->timeout_ms / 1000;
	tv.tv_usec = (req->timeout_ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	c->starting = 1;
	frame_push(c, req->domain, strlen(req->domain), FR_TOP);
	c->starting = 0;
	return c;
}

/* spf_cancel - drop the check without calling back */
void
spf_cancel(struct spf_check *c)
{
	check_free(c);
}

const char *
spf_result_str(enum spf_result r)
{
	switch (r) {
	case SPF_NONE:		return "none";
	case SPF_NEUTRAL:	return "neutral";
	case SPF_PASS:		return "pass";
	case SPF_FAIL:		return "fail";
	case SPF_SOFTFAIL:	return "softfail";
	case SPF_TEMPERROR:	return "temperror";
	case SPF_PERMERROR:	return "permerror";
	}
	return "?";
}

/*
 * frame_push - a new check_host() for domain: its TXT records.  A
 * domain that is not a valid name has no record ("none", 4.3).
 */
static void
frame_push(struct spf_check *c, const char *domain, size_t len,
    enum frame_kind kind)
{
	struct spf_frame	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		finish(c, SPF_TEMPERROR, "out of memory");
		return;
	}
	f->up = c->top;
	f->kind = kind;
	c->top = f;
	if (dns_name_normalize(domain, len, f->domain) == -1) {
		frame_done(c, SPF_NONE);
		return;
	}
	if ((c->q = dns_query_txt(f->domain, strlen(f->domain), txt_done,
	    c)) == NULL)
		finish(c, SPF_TEMPERROR, "out of memory");
}

/* txt_done - select the one SPF record (4.5) and walk it */
static void
txt_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;
	struct spf_frame	*f = c->top;
	const struct dns_txt	*rec = NULL;
	const char		*why;
	size_t			 i, n = 0;

	c->q = NULL;
	if (res->status == DNS_TEMPFAIL) {
		finish(c, SPF_TEMPERROR, "TXT %s: %s", f->domain, res->why);
		return;
	}
	for (i = 0; res->status == DNS_OK && i < res->ntxt; i++)
		if (spf_is_record((const char *)res->txt[i].data,
		    res->txt[i].len)) {
			rec = &res->txt[i];
			n++;
		}
	if (n == 0) {
		if (f->kind != FR_TOP && void_lookup(c) == -1)
			return;
		frame_done(c, SPF_NONE);
		return;
	}
	if (n > 1) {
		finish(c, SPF_PERMERROR, "%s: more than one SPF record",
		    f->domain);
		return;
	}
	if ((f->text = malloc(rec->len + 1)) == NULL) {
		finish(c, SPF_TEMPERROR, "out of memory");
		return;
	}
	memcpy(f->text, rec->data, rec->len + 1);
	if (spf_record_parse(f->text, rec->len, &f->rec, &why) == -1) {
		finish(c, SPF_PERMERROR, "%s: %s", f->domain, why);
		return;
	}
	run(c);
}

/*
 * run - evaluate the top frame's terms from cur: synchronous ones in
 * place, one DNS lookup at a time for the others (4.6.4 counts them);
 * at the end, redirect or "neutral" (4.7)
 */
static void
run(struct spf_check *c)
{
	struct spf_frame	*f = c->top;
	const struct spf_term	*t;
	char			 name[SPF_EXPAND_MAX];
	int			 len;

	for (; f->cur < f->rec.nterms; f->cur++) {
		t = &f->rec.term[f->cur];
		switch (t->kind) {
		case SPF_ALL:
			matched(c);
			return;
		case SPF_IP4:
		case SPF_IP6:
			if (c->m.family == (t->kind == SPF_IP4 ? AF_INET :
			    AF_INET6) && prefix_match(c->m.addr, t->net,
			    t->kind == SPF_IP4 ? t->cidr4 : t->cidr6)) {
				matched(c);
				return;
			}
			continue;
		case SPF_INCLUDE:
		case SPF_A:
		case SPF_MX:
		case SPF_PTR:
		case SPF_EXISTS:
			break;
		default:
			continue;	/* modifiers */
		}
		if ((len = lookup_target(c, t, name)) == -1)
			return;
		switch (t->kind) {
		case SPF_INCLUDE:
			frame_push(c, name, (size_t)len, FR_INCLUDE);
			return;
		case SPF_A:
			c->q = dns_query_addr(name, (size_t)len,
			    c->m.family == AF_INET ? DNS_INET : DNS_INET6,
			    a_done, c);
			break;
		case SPF_MX:
			c->q = dns_query_mx(name, (size_t)len, mx_done, c);
			break;
		case SPF_PTR: {
			struct sockaddr_storage	 ss;
			struct dns_addr		 da;

			memset(&da, 0, sizeof(da));
			da.family = c->m.family;
			memcpy(da.addr, c->m.addr, 16);
			(void)dns_addr_sockaddr(&da, 0, &ss);
			c->q = dns_query_ptr((struct sockaddr *)&ss, ptr_done,
			    c);
			break;
		}
		default:	/* SPF_EXISTS: always A (5.7) */
			c->q = dns_query_addr(name, (size_t)len, DNS_INET,
			    exists_done, c);
			break;
		}
		if (c->q == NULL)
			finish(c, SPF_TEMPERROR, "out of memory");
		return;
	}
	if (f->rec.redirect >= 0) {
		t = &f->rec.term[f->rec.redirect];
		if ((len = lookup_target(c, t, name)) == -1)
			return;
		frame_push(c, name, (size_t)len, FR_REDIRECT);
		return;
	}
	frame_done(c, SPF_NEUTRAL);
}

/*
 * target - the domain a term names: its expanded domain-spec, or the
 * current domain; -1 (permerror given) if the expansion fails
 */
static int
target(struct spf_check *c, const struct spf_term *t, char *name)
{
	int	 len;

	if (t->speclen == 0) {
		len = (int)strlen(c->top->domain);
		memcpy(name, c->top->domain, (size_t)len + 1);
		return len;
	}
	c->m.domain = c->top->domain;
	if ((len = spf_macro_expand(t->spec, t->speclen, &c->m, 0, name,
	    SPF_EXPAND_MAX)) == -1) {
		finish(c, SPF_PERMERROR, "%s: macro expansion failed",
		    c->top->domain);
		return -1;
	}
	return (int)spf_domain_trim(name, (size_t)len);
}

/*
 * lookup_target - one more term that queries DNS (include, a, mx,
 * ptr, exists, redirect: at most SPF_LOOKUPS_MAX, 4.6.4) and its
 * target; -1 (permerror given) past the limit or if the expansion fails
 */
static int
lookup_target(struct spf_check *c, const struct spf_term *t, char *name)
{
	if (++c->nlookups > SPF_LOOKUPS_MAX) {
		finish(c, SPF_PERMERROR, "more than %d DNS lookups",
		    SPF_LOOKUPS_MAX);
		return -1;
	}
	return target(c, t, name);
}

/* matched - the current term matched: its qualifier is the result */
static void
matched(struct spf_check *c)
{
	const struct spf_term	*t = &c->top->rec.term[c->top->cur];
	int			 r;

	r = snprintf(c->why, sizeof(c->why), "%.40s: %.*s", c->top->domain,
	    (int)(t->textlen > 80 ? 80 : t->textlen), t->text);
	if (r < 0 || (size_t)r >= sizeof(c->why))
		c->why[0] = '\0';
	frame_done(c, t->qual);
}

/* next_term - the current term did not match */
static void
next_term(struct spf_check *c)
{
	c->top->cur++;
	run(c);
}

/*
 * frame_done - a check_host() ended with r: hand it to the frame
 * below (include: 5.2 table; redirect: 6.1) or to the caller
 */
static void
frame_done(struct spf_check *c, enum spf_result r)
{
	struct spf_frame	*f = c->top;
	enum frame_kind		 kind = f->kind;
	char			 dom[DNS_NAME_MAX + 1];

	memcpy(dom, f->domain, sizeof(dom));
	c->top = f->up;
	free(f->text);
	free(f);
	if (kind == FR_TOP) {
		if (r != SPF_PASS && r != SPF_FAIL && r != SPF_SOFTFAIL &&
		    c->why[0] == '\0')
			(void)snprintf(c->why, sizeof(c->why), "%.80s: %s", dom,
			    r == SPF_NONE ? "no SPF record" :
			    "no mechanism matched");
		finish(c, r, NULL);
		return;
	}
	if (kind == FR_REDIRECT) {
		frame_done(c, r == SPF_NONE ? SPF_PERMERROR : r);
		return;
	}
	switch (r) {
	case SPF_PASS:
		matched(c);
		break;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		c->why[0] = '\0';
		next_term(c);
		break;
	case SPF_TEMPERROR:
		finish(c, SPF_TEMPERROR, NULL);
		break;
	default:
		finish(c, SPF_PERMERROR, "include:%s has no SPF record", dom);
		break;
	}
}

/* void_lookup - one more lookup without an answer (4.6.4); -1: ended */
static int
void_lookup(struct spf_check *c)
{
	if (++c->nvoid <= SPF_VOID_MAX)
		return 0;
	finish(c, SPF_PERMERROR, "more than %d void lookups", SPF_VOID_MAX);
	return -1;
}

/*
 * addr_result - the addresses of an "a" target or an MX name: a DNS
 * temporary error ends the check, an address in the client's network
 * (the term's cidr lengths) ends the term; 1 if either happened
 */
static int
addr_result(struct spf_check *c, const struct dns_result *res)
{
	const struct spf_term	*t = &c->top->rec.term[c->top->cur];

	if (res->status == DNS_TEMPFAIL) {
		finish(c, SPF_TEMPERROR, "A %s: %s", res->name, res->why);
		return 1;
	}
	if (addr_match(c, res, t->cidr4, t->cidr6)) {
		matched(c);
		return 1;
	}
	return 0;
}

/* a_done - "a": any address of the target in the client's network */
static void
a_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;

	c->q = NULL;
	if (addr_result(c, res))
		return;
	if ((res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) &&
	    void_lookup(c) == -1)
		return;
	next_term(c);
}

/* mx_done - "mx": at most 10 MX names (4.6.4), no implicit MX (5.4) */
static void
mx_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;
	size_t			 i;

	c->q = NULL;
	switch (res->status) {
	case DNS_TEMPFAIL:
		finish(c, SPF_TEMPERROR, "MX %s: %s", res->name, res->why);
		return;
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (void_lookup(c) == -1)
			return;
		/* FALLTHROUGH */
	default:
		next_term(c);
		return;
	}
	if (res->nmx > SPF_NAMES_MAX || res->truncated) {
		finish(c, SPF_PERMERROR, "MX %s: more than %d names",
		    res->name, SPF_NAMES_MAX);
		return;
	}
	c->nnames = 0;
	for (i = 0; i < res->nmx; i++)
		if (res->mx[i].host[0] != '\0')
			memcpy(c->names[c->nnames++], res->mx[i].host,
			    DNS_NAME_MAX + 1);
	c->iname = 0;
	name_next(c, mxaddr_done);
}

/*
 * name_next - the addresses of the next name of the mx or ptr term in
 * progress (c->names), answered to cb; no match after the last
 */
static void
name_next(struct spf_check *c, dns_cb cb)
{
	const char	*n;

	if (c->iname >= c->nnames) {
		next_term(c);
		return;
	}
	n = c->names[c->iname++];
	if ((c->q = dns_query_addr(n, strlen(n), c->m.family == AF_INET ?
	    DNS_INET : DNS_INET6, cb, c)) == NULL)
		finish(c, SPF_TEMPERROR, "out of memory");
}

static void
mxaddr_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;

	c->q = NULL;
	if (addr_result(c, res))
		return;
	name_next(c, mxaddr_done);
}

/*
 * ptr_done - "ptr" (5.5): the client's names in the target domain,
 * then validated by their addresses; DNS errors only mean no match
 */
static void
ptr_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;
	const struct spf_term	*t = &c->top->rec.term[c->top->cur];
	char			 dom[SPF_EXPAND_MAX];
	size_t			 i, dl, nl;
	int			 len;

	c->q = NULL;
	if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) {
		if (void_lookup(c) == -1)
			return;
	}
	if (res->status != DNS_OK) {
		next_term(c);
		return;
	}
	if ((len = target(c, t, dom)) == -1)
		return;
	dl = (size_t)len;
	mem_ascii_lower(dom, dl);
	c->nnames = 0;
	for (i = 0; i < res->nptr && i < SPF_NAMES_MAX; i++) {
		nl = strlen(res->ptr[i].name);
		if (nl < dl || memcmp(res->ptr[i].name + nl - dl, dom, dl) ||
		    (nl > dl && res->ptr[i].name[nl - dl - 1] != '.'))
			continue;
		memcpy(c->names[c->nnames++], res->ptr[i].name, nl + 1);
	}
	c->iname = 0;
	name_next(c, ptraddr_done);
}

static void
ptraddr_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;

	c->q = NULL;
	if (addr_match(c, res, 32, 128)) {
		matched(c);
		return;
	}
	name_next(c, ptraddr_done);
}

/* exists_done - "exists": any A record (5.7) */
static void
exists_done(const struct dns_result *res, void *arg)
{
	struct spf_check	*c = arg;

	c->q = NULL;
	if (res->status == DNS_TEMPFAIL) {
		finish(c, SPF_TEMPERROR, "A %s: %s", res->name, res->why);
		return;
	}
	if (res->status == DNS_OK && res->naddr > 0) {
		matched(c);
		return;
	}
	if ((res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) &&
	    void_lookup(c) == -1)
		return;
	next_term(c);
}

/* addr_match - an address of res in the client's network */
static int
addr_match(const struct spf_check *c, const struct dns_result *res,
    unsigned cidr4, unsigned cidr6)
{
	size_t	 i;

	for (i = 0; res->status == DNS_OK && i < res->naddr; i++)
		if (res->addr[i].family == c->m.family &&
		    prefix_match(res->addr[i].addr, c->m.addr,
		    c->m.family == AF_INET ? cidr4 : cidr6))
			return 1;
	return 0;
}

static int
prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned	 n = bits / 8;
	uint8_t		 mask;

	if (memcmp(a, b, n) != 0)
		return 0;
	if (bits % 8 == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - bits % 8));
	return (a[n] & mask) == (b[n] & mask);
}

/*
 * finish - the result of the whole check; why (printf) replaces the
 * matching term's text when given.  Delivered now from a callback, or
 * from the timer when still inside spf_check_start (the API promises
 * no callback from there).
 */
static void
finish(struct spf_check *c, enum spf_result r, const char *fmt, ...)
{
	struct timeval	 zero = { 0, 0 };
	va_list		 ap;
	int		 n;

	if (c->done)
		return;
	c->done = 1;
	c->result = r;
	if (fmt != NULL) {
		va_start(ap, fmt);
		n = vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
		if (n < 0)
			c->why[0] = '\0';
		/* a longer reason is cut: it is for the log only */
	}
	if (c->starting) {
		evtimer_del(c->timer);
		evtimer_add(c->timer, &zero);
		return;
	}
	deliver(c);
}

static void
deliver(struct spf_check *c)
{
	c->cb(c->result, c->why, c->arg);
	check_free(c);
}

/* timer_cb - a result waiting to be delivered, or the time is over */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spf_check	*c = arg;

	if (!c->done) {
		c->done = 1;
		c->result = SPF_TEMPERROR;
		(void)snprintf(c->why, sizeof(c->why), "timeout");
	}
	deliver(c);
}

static void
check_free(struct spf_check *c)
{
	struct spf_frame	*f;

	if (c->q != NULL)
		dns_cancel(c->q);
	while ((f = c->top) != NULL) {
		c->top = f->up;
		free(f->text);
		free(f);
	}
	event_free(c->timer);
	free(c->strings);
	free(c);
}
