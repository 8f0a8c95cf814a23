/*
 * out_resolve.c - a destination -> the ordered list of places to try.
 *
 * RFC 5321 5.1: the MX records of the domain, best preference first
 * (dns.c sorts them and shuffles equal preferences), then the addresses
 * of each MX host (AAAA then A, as dns.c gives them).  Without MX
 * records the domain itself is the only host (implicit MX, preference
 * 0).  A null MX (RFC 7505) means the domain takes no mail at all.
 *
 * Loop protection (RFC 5321 5.1): an MX host named like us, and every
 * MX of its preference or worse, is dropped: those hosts would hand the
 * mail back to us.  If nothing is left the mail loops back to myself
 * and fails for good (5.4.6), as in Postfix.
 *
 * The address lookups of the MX hosts run in parallel, at most
 * OR_PARALLEL at a time, started in MX order; the targets keep MX order
 * whatever order the answers come in.  Once the hosts answered so far,
 * in order, give OUT_TARGETS_MAX addresses, the rest is not waited for.
 * A host whose lookup fails is skipped; only when no host gave an
 * address is the destination failed: 4.4.3 if any lookup failed
 * temporarily (the answer may come next time), else 5.4.4.
 *
 * Invariants: the callback is called exactly once unless the lookup is
 * cancelled first, always from the event loop (a zero timer for answers
 * known at once), and the handle is freed right after it returns, so
 * it is invalid once the callback has been entered; oresolve_cancel()
 * from inside the callback is harmless (it does nothing).  Every
 * pending DNS query is cancelled before the callback, so none can come
 * back to freed memory.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/dns.h"
#include "smtp_out.h"

#define OR_PARALLEL	4	/* address lookups in flight per resolve */
#define OR_LOG_NAME	(OUT_NAME_MAX * 4)	/* a name, log-sanitized */

enum ohost_state {
	OH_WAIT,	/* lookup not started */
	OH_RUN,		/* lookup in flight */
	OH_DONE		/* answered (or failed) */
};

/* one host whose addresses we need: an MX host or the name itself */
struct ohost {
	struct oresolve		*r;
	char			 name[DNS_NAME_MAX + 1];
	unsigned		 pref;
	enum ohost_state	 state;
	enum dns_status		 status;
	struct dns_query	*q;
	struct dns_addr		 addr[OUT_TARGETS_MAX];
	size_t			 naddr;
};

struct oresolve {
	struct smtp_out		*so;
	oresolve_cb		 cb;
	void			*arg;
	uint32_t		 kind;		/* TR_SMTP_* */
	char			 name[OUT_NAME_MAX];
	unsigned		 port;
	struct dns_query	*mxq;		/* MX lookup in flight */
	struct event		*ev_now;	/* zero timer */
	struct ohost		*hosts;		/* MX order */
	size_t			 nhosts;
	size_t			 next;		/* not started */
	size_t			 running;	/* lookups in flight */
	/* the answer handed to the callback */
	struct otarget		 t[OUT_TARGETS_MAX];
	size_t			 nt;
	unsigned		 code;
	char			 text[OUT_TEXT_MAX];
	int			 incb;		/* in the callback */
};

static void	oresolve_mx_cb(const struct dns_result *, void *);
static int	oresolve_mx_hosts(struct oresolve *,
		    const struct dns_result *);
static int	oresolve_hosts_one(struct oresolve *, const char *);
static void	oresolve_addr_start(struct oresolve *);
static void	oresolve_addr_cb(const struct dns_result *, void *);
static size_t	oresolve_prefix_addrs(const struct oresolve *, int *);
static void	oresolve_addr_done(struct oresolve *);
static void	oresolve_target_add(struct oresolve *, const char *,
		    unsigned, const struct dns_addr *);
static int	oresolve_literal(struct oresolve *);
static int	oresolve_is_me(const struct oresolve *, const char *);
static void	oresolve_fail(struct oresolve *, unsigned, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	oresolve_now(int, short, void *);
static void	oresolve_finish(struct oresolve *);
static void	oresolve_free(struct oresolve *);

/* oresolve_start - look up the targets of d; NULL if out of memory */
struct oresolve *
oresolve_start(struct smtp_out *so, const struct odest *d, oresolve_cb cb,
    void *arg)
{
	struct timeval	 tv = { 0, 0 };
	struct oresolve	*r;
	size_t		 len;

	len = strnlen(d->name, sizeof(d->name));
	if (len == sizeof(d->name))
		panic("oresolve_start: destination name not terminated");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->so = so;
	r->cb = cb;
	r->arg = arg;
	r->kind = d->kind;
	r->port = d->port;
	memcpy(r->name, d->name, len + 1);
	if ((r->ev_now = evtimer_new(so->base, oresolve_now, r)) == NULL)
		goto fail;

	switch (d->kind) {
	case TR_SMTP_MX:
	case TR_SMTP_HOST:
		/* smtp:host is the MX of host, like Postfix's smtp:host */
		r->mxq = dns_query_mx(r->name, len, oresolve_mx_cb, r);
		if (r->mxq == NULL)
			goto fail;
		return r;
	case TR_SMTP_FIXED:
		if (oresolve_literal(r) == 0) {
			evtimer_add(r->ev_now, &tv);
			return r;
		}
		if (oresolve_hosts_one(r, r->name) == -1)
			goto fail;
		oresolve_addr_start(r);
		if (r->running == 0)	/* could not start: out of memory */
			goto fail;
		return r;
	default:
		panic("oresolve_start: kind %u", (unsigned)d->kind);
	}
fail:
	oresolve_free(r);
	return NULL;
}

/* oresolve_cancel - forget r: no callback; pending queries cancelled */
void
oresolve_cancel(struct oresolve *r)
{
	/* inside the callback the handle is freed once it returns */
	if (r == NULL || r->incb)
		return;
	oresolve_free(r);
}

/* ---- MX ------------------------------------------------------------ */

static void
oresolve_mx_cb(const struct dns_result *res, void *arg)
{
	struct oresolve	*r = arg;
	int		 host = r->kind == TR_SMTP_HOST;

	r->mxq = NULL;		/* invalid once we are called */
	switch (res->status) {
	case DNS_OK:
		if (res->nmx > 0) {
			if (oresolve_mx_hosts(r, res) == -1)
				goto done;
			break;
		}
		/* no usable MX is no MX */
		/* FALLTHROUGH */
	case DNS_NODATA:
		/* implicit MX: the name itself (RFC 5321 5.1) */
		if (oresolve_is_me(r, r->name)) {
			oresolve_fail(r, 550, "5.4.6 mail for %s loops back "
			    "to myself", r->name);
			goto done;
		}
		if (oresolve_hosts_one(r, r->name) == -1) {
			oresolve_fail(r, 451, "4.3.0 out of memory");
			goto done;
		}
		break;
	case DNS_NULL_MX:
		oresolve_fail(r, 556, "5.1.10 domain %s does not accept mail "
		    "(null MX)", r->name);
		goto done;
	case DNS_NXDOMAIN:
		if (host)
			oresolve_fail(r, 550, "5.4.4 host %s not found",
			    r->name);
		else
			oresolve_fail(r, 550, "5.1.2 domain %s does not exist",
			    r->name);
		goto done;
	case DNS_BADNAME:
		oresolve_fail(r, 550, "5.1.2 bad domain name");
		goto done;
	case DNS_TEMPFAIL:
	default:
		oresolve_fail(r, 451, "4.4.3 DNS lookup of %s failed: %s",
		    r->name, res->why);
		goto done;
	}
	oresolve_addr_start(r);
	if (r->running > 0)
		return;
	/* nothing could be started (out of memory): answer what we have */
	oresolve_addr_done(r);
	return;
done:
	oresolve_finish(r);
}

/*
 * oresolve_mx_hosts - the MX hosts to try, in order, without those
 * that would loop back to us.  -1 with the failure set when none is
 * left.
 */
static int
oresolve_mx_hosts(struct oresolve *r, const struct dns_result *res)
{
	unsigned	 cut = 0;
	int		 loops = 0;
	size_t		 i, n;

	for (i = 0; i < res->nmx; i++)
		if (oresolve_is_me(r, res->mx[i].host) &&
		    (!loops || res->mx[i].pref < cut)) {
			cut = res->mx[i].pref;
			loops = 1;
		}
	if ((r->hosts = calloc(res->nmx ? res->nmx : 1,
	    sizeof(*r->hosts))) == NULL) {
		oresolve_fail(r, 451, "4.3.0 out of memory");
		return -1;
	}
	for (i = n = 0; i < res->nmx; i++) {
		if (loops && res->mx[i].pref >= cut)
			continue;
		r->hosts[n].r = r;
		r->hosts[n].pref = res->mx[i].pref;
		memcpy(r->hosts[n].name, res->mx[i].host,
		    sizeof(r->hosts[n].name));
		r->hosts[n].name[sizeof(r->hosts[n].name) - 1] = '\0';
		n++;
	}
	r->nhosts = n;
	if (n == 0) {
		oresolve_fail(r, 550, "5.4.6 mail for %s loops back to myself",
		    r->name);
		return -1;
	}
	return 0;
}

/* oresolve_hosts_one - a single host of preference 0: name itself */
static int
oresolve_hosts_one(struct oresolve *r, const char *name)
{
	size_t	 n;

	if ((r->hosts = calloc(1, sizeof(*r->hosts))) == NULL)
		return -1;
	r->hosts[0].r = r;
	r->hosts[0].pref = 0;
	/* a name longer than DNS_NAME_MAX is left empty: BADNAME */
	n = strlen(name);
	if (n < sizeof(r->hosts[0].name))
		memcpy(r->hosts[0].name, name, n + 1);
	r->nhosts = 1;
	return 0;
}

/* ---- addresses ----------------------------------------------------- */

/* oresolve_addr_start - start lookups in MX order, OR_PARALLEL at most */
static void
oresolve_addr_start(struct oresolve *r)
{
	struct ohost	*h;

	while (r->running < OR_PARALLEL && r->next < r->nhosts) {
		h = &r->hosts[r->next++];
		h->q = dns_query_addr(h->name, strlen(h->name),
		    DNS_INET | DNS_INET6, oresolve_addr_cb, h);
		if (h->q == NULL) {
			/* out of memory: as a temporary failure */
			h->state = OH_DONE;
			h->status = DNS_TEMPFAIL;
			oresolve_fail(r, 451, "4.3.0 out of memory");
			continue;
		}
		h->state = OH_RUN;
		r->running++;
	}
}

static void
oresolve_addr_cb(const struct dns_result *res, void *arg)
{
	struct ohost	*h = arg;
	struct oresolve	*r = h->r;
	char		 dest[OR_LOG_NAME], host[OR_LOG_NAME];
	size_t		 i;
	int		 complete;

	h->q = NULL;		/* invalid once we are called */
	h->state = OH_DONE;
	h->status = res->status;
	r->running--;
	if (res->status == DNS_OK) {
		for (i = 0; i < res->naddr && h->naddr < OUT_TARGETS_MAX; i++)
			h->addr[h->naddr++] = res->addr[i];
	} else {
		log_sanitize(r->name, strlen(r->name), dest, sizeof(dest));
		log_sanitize(h->name, strlen(h->name), host, sizeof(host));
		log_info("event=resolve dest=%s host=%s status=%s "
		    "reason=\"%s\"", dest, host,
		    dns_status_str(res->status), res->why);
		if (res->status == DNS_TEMPFAIL)
			oresolve_fail(r, 451, "4.4.3 DNS lookup of %s "
			    "failed: %s", h->name, res->why);
	}
	/* enough targets already from the hosts that come first? */
	if (oresolve_prefix_addrs(r, &complete) >= OUT_TARGETS_MAX ||
	    complete) {
		oresolve_addr_done(r);
		return;
	}
	oresolve_addr_start(r);
	if (r->running == 0)
		oresolve_addr_done(r);
}

/*
 * oresolve_prefix_addrs - addresses of the answered hosts that come
 * before the first unanswered one; *complete when all are answered
 */
static size_t
oresolve_prefix_addrs(const struct oresolve *r, int *complete)
{
	size_t	 i, n = 0;

	for (i = 0; i < r->nhosts; i++) {
		if (r->hosts[i].state != OH_DONE)
			break;
		n += r->hosts[i].naddr;
	}
	*complete = i == r->nhosts;
	return n;
}

/*
 * oresolve_addr_done - the targets in host order; without any, the
 * failure: a temporary one kept from a host wins (its answer may come
 * next time), else the permanent one of the case.
 */
static void
oresolve_addr_done(struct oresolve *r)
{
	struct ohost	*h;
	size_t		 i, k;

	for (i = 0; i < r->nhosts; i++) {
		h = &r->hosts[i];
		if (h->state != OH_DONE)
			break;
		for (k = 0; k < h->naddr && r->nt < OUT_TARGETS_MAX; k++)
			oresolve_target_add(r, h->name, h->pref, &h->addr[k]);
	}
	if (r->nt > 0) {
		r->code = 0;
		r->text[0] = '\0';
	} else if (r->code == 0) {
		h = &r->hosts[0];
		if (r->kind == TR_SMTP_FIXED && h->status == DNS_NXDOMAIN)
			oresolve_fail(r, 550, "5.4.4 host %s not found",
			    r->name);
		else if (r->kind == TR_SMTP_FIXED &&
		    h->status == DNS_BADNAME)
			oresolve_fail(r, 550, "5.1.2 bad domain name");
		else
			oresolve_fail(r, 550, "5.4.4 no address for %s",
			    r->name);
	}
	oresolve_finish(r);
}

/* oresolve_target_add - one address, unless an earlier host had it */
static void
oresolve_target_add(struct oresolve *r, const char *host, unsigned pref,
    const struct dns_addr *a)
{
	struct otarget		 *t;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	size_t			 i, n;

	len = dns_addr_sockaddr(a, r->port, &ss);
	if (len == 0)
		return;
	for (i = 0; i < r->nt; i++)
		if (r->t[i].sslen == len && memcmp(&r->t[i].ss, &ss, len) == 0)
			return;
	t = &r->t[r->nt++];
	memset(t, 0, sizeof(*t));
	n = strlen(host);
	if (n >= sizeof(t->host))	/* only a literal could be longer */
		n = sizeof(t->host) - 1;
	memcpy(t->host, host, n);
	t->pref = pref;
	memcpy(&t->ss, &ss, len);
	t->sslen = len;
}

/*
 * oresolve_literal - smtp:[192.0.2.1] or smtp:[2001:db8::1] (with or
 * without the "IPv6:" tag of RFC 5321 4.1.3): the one target, no DNS.
 * 0 when r->name was a literal, -1 when it is a name.
 */
static int
oresolve_literal(struct oresolve *r)
{
	struct dns_addr	 a;
	const char	*p = r->name;

	memset(&a, 0, sizeof(a));
	if (strncasecmp(p, "IPv6:", 5) == 0)
		p += 5;
	else if (inet_pton(AF_INET, p, a.addr) == 1)
		a.family = AF_INET;
	if (a.family == 0 && inet_pton(AF_INET6, p, a.addr) == 1)
		a.family = AF_INET6;
	if (a.family == 0)
		return -1;
	oresolve_target_add(r, r->name, 0, &a);
	if (r->nt == 0)
		oresolve_fail(r, 550, "5.4.4 bad address %s", r->name);
	return 0;
}

/*
 * oresolve_is_me - is host (a DNS result: lower case, no trailing dot)
 * our own hostname?
 */
static int
oresolve_is_me(const struct oresolve *r, const char *host)
{
	const char	*me = r->so->conf->hostname;
	size_t		 len = strlen(me), hlen = strlen(host);

	if (len > 0 && me[len - 1] == '.')
		len--;
	return len > 0 && len == hlen && mem_casecmp(me, host, len) == 0;
}

/* oresolve_fail - the failure to answer with, unless targets are found */
static void
oresolve_fail(struct oresolve *r, unsigned code, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	r->code = code;
	va_start(ap, fmt);
	n = vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	/* a name is at most 255 octets: a cut text still names the case */
	if (n < 0)
		r->text[0] = '\0';
}

/* ---- the answer ---------------------------------------------------- */

static void
oresolve_now(int fd, short ev, void *arg)
{
	oresolve_finish(arg);
}

/* oresolve_finish - cancel what is pending, call back once, free */
static void
oresolve_finish(struct oresolve *r)
{
	size_t	 i;

	if (r->mxq != NULL) {
		dns_cancel(r->mxq);
		r->mxq = NULL;
	}
	for (i = 0; i < r->nhosts; i++)
		if (r->hosts[i].q != NULL) {
			dns_cancel(r->hosts[i].q);
			r->hosts[i].q = NULL;
		}
	if (r->nt == 0 && (r->code < 400 || r->code > 599))
		panic("oresolve_finish: dest=%s no target and code %u",
		    r->name, r->code);
	r->incb = 1;
	r->cb(r->arg, r->nt > 0 ? r->t : NULL, r->nt, r->code, r->text);
	oresolve_free(r);
}

static void
oresolve_free(struct oresolve *r)
{
	size_t	 i;

	if (r->mxq != NULL)
		dns_cancel(r->mxq);
	for (i = 0; i < r->nhosts; i++)
		if (r->hosts[i].q != NULL)
			dns_cancel(r->hosts[i].q);
	if (r->ev_now != NULL)
		event_free(r->ev_now);
	free(r->hosts);
	free(r);
}
