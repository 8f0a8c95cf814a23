/*
 * fuzz_dns.c - libFuzzer harness of the answer handling of
 * src/common/dns.c: the c-ares parsers it calls (ares_parse_mx_reply,
 * ares_parse_a_reply, ares_parse_aaaa_reply, ares_parse_ptr_reply,
 * ares_parse_txt_reply_ext) and its own post-processing (RR header
 * walk for TTLs, MX sorting, null MX, deduplication, name checks,
 * bounds, A+AAAA merge).
 *
 * Input: one octet naming the RR type asked for (1 A, 28 AAAA, 15 MX,
 * 16 TXT, 12 PTR; any other value picks one by its remainder), then a
 * response packet.  The c-ares status is derived from the header the
 * way ares_query() derives it (RCODE, ANCOUNT).  Seeds are written by
 * "python3 tests/integration/dnsserver.py --write-seeds DIR".
 *
 * Besides the sanitizers' checks, a result must respect every bound
 * and invariant dns.h promises; otherwise abort().
 */
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "common/dns.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static int	 pick_type(uint8_t);
static int	 ares_status_of(const uint8_t *, size_t);
static void	 check(const struct dns_result *, int);
static void	 check_name(const char *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_result	*r, *a4, *a6;
	struct dns_scan		 sc;
	char			 name[DNS_NAME_MAX + 1];
	const uint8_t		*pkt;
	size_t			 len;
	int			 type, status;

	if (size == 0)
		return 0;
	type = pick_type(data[0]);
	pkt = data + 1;
	len = size - 1;
	status = ares_status_of(pkt, len);

	if ((r = dns_result_parse(type, "fuzz.test", status, pkt, len)) ==
	    NULL)
		return 0;
	check(r, type);
	if (dns_packet_scan(pkt, len, type, &sc) == 0 &&
	    sc.ttl > INT32_MAX)
		abort();
	dns_result_free(r);

	/* A and AAAA of the same answer, merged as dns_query_addr() does */
	a4 = dns_result_parse(DNS_T_A, "fuzz.test", status, pkt, len);
	a6 = dns_result_parse(DNS_T_AAAA, "fuzz.test", status, pkt, len);
	if (a4 != NULL && a6 != NULL) {
		size_t	 n = a4->naddr + a6->naddr;

		if ((r = dns_result_merge(a4, a6)) != NULL) {
			if (r->naddr != n || (n > 0) != (r->status == DNS_OK))
				abort();
			dns_result_free(r);
		}
	} else {
		dns_result_free(a4);
		dns_result_free(a6);
	}

	/* the input as a name: accepted names are canonical */
	if (dns_name_normalize((const char *)pkt, len, name) >= 0)
		check_name(name);
	return 0;
}

static int
pick_type(uint8_t b)
{
	static const int	 types[] = { DNS_T_A, DNS_T_AAAA, DNS_T_MX,
				    DNS_T_TXT, DNS_T_PTR };
	size_t			 i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (b == types[i])
			return b;
	return types[b % (sizeof(types) / sizeof(types[0]))];
}

/* ares_status_of - what ares_query() hands its callback for pkt */
static int
ares_status_of(const uint8_t *pkt, size_t len)
{
	if (len < 12)
		return ARES_EBADRESP;
	switch (pkt[3] & 0x0f) {
	case 0:
		return (pkt[6] | pkt[7]) != 0 ? ARES_SUCCESS : ARES_ENODATA;
	case 1:
		return ARES_EFORMERR;
	case 2:
		return ARES_ESERVFAIL;
	case 3:
		return ARES_ENOTFOUND;
	case 4:
		return ARES_ENOTIMP;
	case 5:
		return ARES_EREFUSED;
	default:
		return ARES_EBADRESP;
	}
}

static void
check(const struct dns_result *r, int type)
{
	size_t	 i, j, sum;

	if (r->name == NULL || strcmp(r->name, "fuzz.test") != 0 ||
	    r->why == NULL || r->ttl > INT32_MAX)
		abort();
	sum = r->nmx + r->naddr + r->nptr + r->ntxt;
	switch (r->status) {
	case DNS_OK:
		if (sum == 0)
			abort();
		break;
	case DNS_NULL_MX:
		if (type != DNS_T_MX || sum != 0)
			abort();
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
	case DNS_TEMPFAIL:
		if (sum != 0)
			abort();
		break;
	default:
		abort();
	}
	if (r->nmx > DNS_MX_MAX || r->naddr > DNS_ADDR_MAX ||
	    r->nptr > DNS_PTR_MAX || r->ntxt > DNS_TXT_MAX)
		abort();
	if (sum != 0 && (type == DNS_T_MX) != (r->nmx > 0))
		abort();
	for (i = 0; i < r->nmx; i++) {
		check_name(r->mx[i].host);
		if (r->mx[i].pref > 65535 ||
		    (i > 0 && r->mx[i].pref < r->mx[i - 1].pref))
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(r->mx[i].host, r->mx[j].host) == 0)
				abort();
	}
	for (i = 0; i < r->naddr; i++)
		if (r->addr[i].family != (type == DNS_T_A ? AF_INET : AF_INET6))
			abort();
	for (i = 0; i < r->nptr; i++)
		check_name(r->ptr[i].name);
	for (i = 0; i < r->ntxt; i++)
		if (r->txt[i].len > DNS_TXT_LEN_MAX ||
		    r->txt[i].data[r->txt[i].len] != '\0')
			abort();
}

/* check_name - a result name is valid and already canonical */
static void
check_name(const char *name)
{
	char	 again[DNS_NAME_MAX + 1];
	size_t	 n = strlen(name);

	if (n == 0 || n > DNS_NAME_MAX ||
	    dns_name_normalize(name, n, again) != (int)n ||
	    strcmp(again, name) != 0)
		abort();
}
