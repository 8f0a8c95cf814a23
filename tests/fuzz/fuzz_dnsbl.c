/*
 * fuzz_dnsbl.c - libFuzzer harness of src/common/dnsbl.c.
 *
 * The input is a list spec (dnsbl/rhsbl keys, parsed as root in the
 * master).  A spec that parses must give a valid zone and weight; its
 * filter is then asked about a few answers, and the zone is used to
 * build query names for an IPv4 and an IPv6 address and a domain, all
 * of which must stay within DNSBL_QNAME_MAX.
 */
#include <sys/socket.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dnsbl.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 0, 0, 1 };
	struct dnsbl	 bl;
	const char	*why = NULL;
	char		 out[DNSBL_QNAME_MAX + 1];
	uint8_t		 a[4] = { 127, 0, 0, 2 };
	int		 n;

	if (dnsbl_parse((const char *)data, size, &bl, &why) == -1) {
		if (why == NULL)
			abort();
		return 0;
	}
	n = (int)strnlen(bl.zone, sizeof(bl.zone));
	if (n == 0 || n > DNSBL_ZONE_MAX || bl.weight < 1 ||
	    bl.weight > DNSBL_WEIGHT_MAX)
		abort();
	(void)dnsbl_match(&bl, a);
	a[3] = size > 0 ? data[0] : 0;
	(void)dnsbl_match(&bl, a);
	n = dnsbl_name_addr(AF_INET, a, bl.zone, out);
	if (n != -1 && (n > DNSBL_QNAME_MAX || (size_t)n != strlen(out)))
		abort();
	n = dnsbl_name_addr(AF_INET6, v6, bl.zone, out);
	if (n != -1 && (n > DNSBL_QNAME_MAX || (size_t)n != strlen(out)))
		abort();
	n = dnsbl_name_domain(bl.zone, strlen(bl.zone), bl.zone, out);
	if (n != -1 && (n > DNSBL_QNAME_MAX || (size_t)n != strlen(out)))
		abort();
	return 0;
}
