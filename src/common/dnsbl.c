/*
 * dnsbl.c - DNS blocklist specs, query names and answer filters (see
 * dnsbl.h for the syntax).
 *
 * Everything here works on bounded (ptr, len) input and fixed-size
 * outputs; the parser is fuzzed (tests/fuzz/fuzz_dnsbl.c) because the
 * config is parsed as root.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <string.h>

#include "../lib/util.h"
#include "dns.h"
#include "dnsbl.h"

static int	parse_num(const char **, const char *, unsigned, unsigned *);
static int	parse_octet(const char **, const char *, uint8_t *);
static int	valid_zone(const char *, size_t);
static void	bit_set(uint8_t *, unsigned);

/* dnsbl_parse - ZONE[=FILTER][*WEIGHT] */
int
dnsbl_parse(const char *p, size_t len, struct dnsbl *bl, const char **why)
{
	const char	*end = p + len, *eq, *star, *zend;
	unsigned	 i;

	memset(bl, 0, sizeof(*bl));
	bl->weight = 1;
	eq = memchr(p, '=', len);
	star = memchr(p, '*', len);
	if (eq != NULL && star != NULL && star < eq) {
		*why = "weight (*N) must come after the filter (=...)";
		return -1;
	}
	zend = eq != NULL ? eq : star != NULL ? star : end;
	if (zend > p && zend[-1] == '.')
		zend--;
	if (!valid_zone(p, (size_t)(zend - p))) {
		*why = "bad zone name";
		return -1;
	}
	memcpy(bl->zone, p, (size_t)(zend - p));
	mem_ascii_lower(bl->zone, (size_t)(zend - p));
	if (eq != NULL) {
		const char	*f = eq + 1, *fend = star != NULL ? star : end;

		for (i = 0; i < 4; i++) {
			if (i > 0 && (f >= fend || *f++ != '.'))
				break;
			if (parse_octet(&f, fend, bl->octet[i]) == -1)
				break;
		}
		if (i < 4 || f != fend) {
			*why = "bad filter (four octets: N, [N..M] or "
			    "[N;N..M])";
			return -1;
		}
		bl->filtered = 1;
	}
	if (star != NULL) {
		const char	*w = star + 1;

		if (parse_num(&w, end, DNSBL_WEIGHT_MAX, &bl->weight) == -1 ||
		    w != end || bl->weight == 0) {
			*why = "bad weight (1..100)";
			return -1;
		}
	}
	return 0;
}

/* dnsbl_match - a listed answer for this list? */
int
dnsbl_match(const struct dnsbl *bl, const uint8_t *a)
{
	unsigned	 i;

	if (!bl->filtered)
		return a[0] == 127 && !(a[1] == 255 && a[2] == 255);
	for (i = 0; i < 4; i++)
		if (!(bl->octet[i][a[i] / 8] & (1u << (a[i] % 8))))
			return 0;
	return 1;
}

/* dnsbl_name_addr - reversed octets or nibbles, then the zone */
int
dnsbl_name_addr(int family, const uint8_t *addr, const char *zone,
    char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t		 n = 0, zl = strlen(zone);
	int		 i;

	if (family == AF_INET) {
		for (i = 3; i >= 0; i--) {
			unsigned	 v = addr[i];

			if (v >= 100)
				out[n++] = (char)('0' + v / 100);
			if (v >= 10)
				out[n++] = (char)('0' + v / 10 % 10);
			out[n++] = (char)('0' + v % 10);
			out[n++] = '.';
		}
	} else if (family == AF_INET6) {
		for (i = 15; i >= 0; i--) {
			out[n++] = hex[addr[i] & 0xf];
			out[n++] = '.';
			out[n++] = hex[addr[i] >> 4];
			out[n++] = '.';
		}
	} else
		return -1;
	if (n + zl > DNSBL_QNAME_MAX)
		return -1;
	memcpy(out + n, zone, zl + 1);
	return (int)(n + zl);
}

/* dnsbl_name_domain - domain.zone */
int
dnsbl_name_domain(const char *d, size_t len, const char *zone, char *out)
{
	size_t	 zl = strlen(zone);

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (!valid_zone(d, len) || len + 1 + zl > DNSBL_QNAME_MAX)
		return -1;
	memcpy(out, d, len);
	mem_ascii_lower(out, len);
	out[len] = '.';
	memcpy(out + len + 1, zone, zl + 1);
	return (int)(len + 1 + zl);
}

/*
 * parse_octet - a number, or "[" items "]" with items N or N..M
 * separated by ';', into the bitmap m
 */
static int
parse_octet(const char **pp, const char *end, uint8_t *m)
{
	const char	*p = *pp;
	unsigned	 lo, hi, v;

	if (p < end && *p != '[') {
		if (parse_num(&p, end, 255, &v) == -1)
			return -1;
		bit_set(m, v);
		*pp = p;
		return 0;
	}
	if (p >= end)
		return -1;
	for (p++;;) {
		if (parse_num(&p, end, 255, &lo) == -1)
			return -1;
		hi = lo;
		if (end - p >= 2 && p[0] == '.' && p[1] == '.') {
			p += 2;
			if (parse_num(&p, end, 255, &hi) == -1 || hi < lo)
				return -1;
		}
		for (v = lo; v <= hi; v++)
			bit_set(m, v);
		if (p < end && *p == ';') {
			p++;
			continue;
		}
		if (p < end && *p == ']') {
			*pp = p + 1;
			return 0;
		}
		return -1;
	}
}

/* parse_num - 1 to 3 decimal digits, at most max */
static int
parse_num(const char **pp, const char *end, unsigned max, unsigned *out)
{
	const char	*p = *pp;
	unsigned	 v = 0, n = 0;

	while (p < end && *p >= '0' && *p <= '9' && n < 4) {
		v = v * 10 + (unsigned)(*p++ - '0');
		n++;
	}
	if (n == 0 || n > 3 || v > max)
		return -1;
	*pp = p;
	*out = v;
	return 0;
}

/* valid_zone - LDH (and '_') labels of 1..63, at most DNSBL_ZONE_MAX */
static int
valid_zone(const char *p, size_t len)
{
	return len <= DNSBL_ZONE_MAX && dns_name_ldh(p, len);
}

static void
bit_set(uint8_t *m, unsigned v)
{
	m[v / 8] |= (uint8_t)(1u << (v % 8));
}
