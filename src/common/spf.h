/*
 * spf.h - Sender Policy Framework (RFC 7208): check_host() evaluated
 * asynchronously over dns.c, inside the caller's libevent loop.
 *
 * The evaluator walks the record's terms in order; each DNS lookup
 * (TXT of a domain, A/AAAA, MX, PTR) is one dns.c query whose callback
 * resumes the walk, so one session's SPF check never blocks another.
 * include and redirect push a frame (a nested check_host()); the
 * lookup limit of RFC 7208 4.6.4 (10 terms that cause DNS queries, 2
 * void lookups, 10 MX or PTR names) bounds the depth and the work, and
 * a whole check is bounded in time besides.
 *
 * Mechanisms all, include, a, mx, ptr, ip4, ip6, exists; modifiers
 * redirect and exp (exp is checked for syntax and otherwise ignored:
 * moat's reply text names the result, not the domain's explanation,
 * which RFC 7208 6.2 leaves to the verifier); unknown modifiers are
 * ignored (RFC 7208 6).  Macros (RFC 7208 7) with every letter; %{p}
 * is the client's validated name when the caller knows it (smtp-in's
 * FCrDNS check), else "unknown", without a PTR lookup of its own (the
 * RFC discourages %{p}; 7.3 allows "unknown").
 *
 * The record parser and the macro expansion are pure functions over
 * (ptr, len), for tests/unit/test_spf.c and tests/fuzz/fuzz_spf.c.
 */
#ifndef MOAT_SPF_H
#define MOAT_SPF_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

#define SPF_TERMS_MAX	128	/* terms in one record (longer: permerror) */
#define SPF_LOOKUPS_MAX	10	/* RFC 7208 4.6.4 */
#define SPF_VOID_MAX	2	/* RFC 7208 4.6.4 */
#define SPF_NAMES_MAX	10	/* MX or PTR names looked at, 4.6.4 */
#define SPF_EXPAND_MAX	1024	/* an expanded macro-string */
#define SPF_WHY_MAX	128

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR
};

enum spf_kind {
	SPF_ALL,
	SPF_INCLUDE,
	SPF_A,
	SPF_MX,
	SPF_PTR,
	SPF_IP4,
	SPF_IP6,
	SPF_EXISTS,
	SPF_REDIRECT,	/* modifiers from here on */
	SPF_EXP,
	SPF_UNKNOWN_MOD
};

/* one term of a record; spec points into the parsed text */
struct spf_term {
	enum spf_kind	 kind;
	enum spf_result	 qual;		/* pass, fail, softfail, neutral */
	const char	*text;		/* the whole term, for the log */
	size_t		 textlen;
	const char	*spec;		/* domain-spec or macro-string */
	size_t		 speclen;	/* 0: none (a, mx, ptr: current) */
	unsigned	 cidr4;		/* 0..32, default 32 */
	unsigned	 cidr6;		/* 0..128, default 128 */
	uint8_t		 net[16];	/* ip4 (4 used), ip6 */
};

struct spf_record {
	struct spf_term	 term[SPF_TERMS_MAX];
	size_t		 nterms;
	int		 redirect;	/* index of redirect=, or -1 */
	int		 has_all;	/* an "all": redirect is ignored */
};

/*
 * spf_record_parse - a record (the text of one TXT record, starting
 * with "v=spf1") into rec; the terms point into p, which must outlive
 * rec.  0, or -1 with *why (a syntax error is a permerror, 4.6).
 */
int	spf_record_parse(const char *p, size_t len, struct spf_record *rec,
	    const char **why);

/* spf_is_record - does a TXT record's text select as SPF (4.5)? */
int	spf_is_record(const char *p, size_t len);

/* the values of the macro letters (RFC 7208 7.3) */
struct spf_macro {
	const char	*sender;	/* s: local@domain */
	const char	*domain;	/* d: the current domain */
	const char	*helo;		/* h */
	const char	*ptrname;	/* p: validated name or NULL */
	const char	*rcvhost;	/* r: our host name */
	int		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 addr[16];	/* i, c, v */
};

/*
 * spf_macro_expand - expand a macro-string (RFC 7208 7.1) into out
 * (outsz octets, NUL-terminated).  explain: the letters c, r, t of an
 * exp text are allowed.  Returns the length, or -1 on a syntax error
 * (permerror) or an expansion longer than outsz - 1.
 */
int	spf_macro_expand(const char *p, size_t len, const struct spf_macro *,
	    int explain, char *out, size_t outsz);

/*
 * spf_domain_trim - an expanded domain-spec longer than 253 octets
 * loses labels on the left until it fits (RFC 7208 7.3); in place,
 * trailing dot dropped.  Returns the new length.
 */
size_t	spf_domain_trim(char *, size_t);

/* what the caller knows of the SMTP session */
struct spf_request {
	int		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 addr[16];	/* network order */
	const char	*sender;	/* MAIL FROM, or "postmaster@HELO" */
	const char	*domain;	/* its domain (the HELO name) */
	const char	*helo;		/* HELO/EHLO argument */
	const char	*ptrname;	/* validated client name or NULL */
	const char	*rcvhost;	/* our hostname */
	unsigned	 timeout_ms;	/* bound of the whole check */
};

/*
 * The result callback: why says what decided (the matching mechanism,
 * the reason of an error), for the log and a header comment; it lives
 * during the callback.  The check is freed after the callback returns;
 * the callback must not spf_cancel() it.
 */
typedef void	(*spf_cb)(enum spf_result, const char *why, void *arg);

struct spf_check;

/*
 * spf_check_start - check_host(ip, domain, sender) on base; the
 * callback is called once from the loop (never from inside this call),
 * unless spf_cancel() comes first.  dns_init() must have been done.
 * NULL when out of memory.  The strings of req are copied.
 */
struct spf_check *spf_check_start(struct event_base *,
	    const struct spf_request *, spf_cb, void *arg);
/* spf_cancel - drop a check in flight; the callback is not called */
void	spf_cancel(struct spf_check *);

/* spf_result_str - "pass", "fail", ... (RFC 8601 2.7.2 names) */
const char *spf_result_str(enum spf_result);

#endif
