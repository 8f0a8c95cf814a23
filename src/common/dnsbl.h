/*
 * dnsbl.h - DNS blocklist specifications (dnsbl, rhsbl keys) and the
 * names and answers of their lookups.  Pure functions over (ptr, len),
 * no DNS traffic: smtp-in's policy (smtp_policy.c) does the lookups.
 *
 * A list is written ZONE[=FILTER][*WEIGHT], the Postfix idiom:
 *
 *   zen.example              any answer 127.0.0.0/8 counts, weight 1
 *   zen.example=127.0.0.2    only that answer
 *   zen.example=127.0.0.[2..11]*3
 *   bl.example=127.0.[0;1].[2;4..7]*2
 *
 * FILTER is four dot-separated octet patterns: a number 0..255, or in
 * brackets a ';'-separated set of numbers and N..M ranges.  WEIGHT is
 * 1..100.  Without a filter, 127.255.255.0/24 answers do not count:
 * the large lists use them to say "query refused" (e.g. through a
 * public resolver), not "listed".
 */
#ifndef MOAT_DNSBL_H
#define MOAT_DNSBL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNSBL_ZONE_MAX		200	/* zone text, leaves room for a key */
#define DNSBL_WEIGHT_MAX	100
#define DNSBL_LISTS_MAX		32	/* entries of dnsbl, of rhsbl */
#define DNSBL_QNAME_MAX		253	/* DNS_NAME_MAX */

struct dnsbl {
	char		 zone[DNSBL_ZONE_MAX + 1];	/* lower case, no dot */
	unsigned	 weight;
	int		 filtered;	/* 0: any 127/8 but 127.255.255/24 */
	uint8_t		 octet[4][32];	/* filter: allowed values, bitmaps */
};

/*
 * dnsbl_parse - one list spec (len octets, NUL not required) into bl;
 * 0, or -1 with *why set.
 */
int	dnsbl_parse(const char *, size_t, struct dnsbl *, const char **why);

/* dnsbl_match - does an A answer (4 octets, network order) count? */
int	dnsbl_match(const struct dnsbl *, const uint8_t *);

/*
 * dnsbl_name_addr - the query name of a client address in zone:
 * "4.3.2.1.zone" for 1.2.3.4, 32 reversed nibbles for IPv6 (RFC 5782
 * 2.1, 2.4).  family AF_INET or AF_INET6, addr in network order.  out
 * holds DNSBL_QNAME_MAX + 1; returns the length, or -1 if too long.
 */
int	dnsbl_name_addr(int family, const uint8_t *addr, const char *zone,
	    char *out);

/*
 * dnsbl_name_domain - "domain.zone" for an RHSBL (RFC 5782 2.3); the
 * domain (len octets, trailing dot allowed) must be a plain host name
 * (LDH labels); returns the length, or -1.
 */
int	dnsbl_name_domain(const char *domain, size_t len, const char *zone,
	    char *out);

#endif
