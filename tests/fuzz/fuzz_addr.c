/*
 * fuzz_addr.c - libFuzzer harness of src/common/addr.c.
 *
 * The first octet selects SMTPUTF8; the rest is a mailbox.  Besides the
 * sanitizers' memory checks, a parse that succeeds must return slices
 * inside the input, within the RFC 5321 4.5.3.1 limits, and a domain
 * that addr_domain_valid() accepts; addr_domain_eq() must be reflexive
 * and symmetric.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static int	 inside(const char *, size_t, const char *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr	 a;
	const char	*in, *why = NULL;
	size_t		 len, half;
	int		 utf8;

	if (size == 0)
		return 0;
	utf8 = data[0] & 1;
	in = (const char *)data + 1;
	len = size - 1;

	if (addr_parse_mailbox(in, len, utf8, &a, &why) == 0) {
		if (!inside(in, len, a.local, a.locallen) ||
		    a.locallen == 0 || a.locallen > ADDR_LOCAL_MAX)
			abort();
		if (a.flags & ADDR_POSTMASTER) {
			if (a.domain != NULL || !addr_is_postmaster(&a))
				abort();
		} else if (!inside(in, len, a.domain, a.domainlen) ||
		    a.domainlen == 0 || a.domainlen > ADDR_DOMAIN_MAX ||
		    !addr_domain_valid(a.domain, a.domainlen, utf8) ||
		    a.local + a.locallen + 1 != a.domain)
			abort();
		if (!utf8 && (a.flags & ADDR_UTF8))
			abort();
		if (((a.flags & ADDR_QUOTED) != 0) != (a.local[0] == '"'))
			abort();
		if (((a.flags & ADDR_LITERAL) != 0) !=
		    (a.domain != NULL && a.domain[0] == '['))
			abort();
	} else if (why == NULL)
		abort();

	(void)addr_domain_valid(in, len, utf8);
	if (!addr_domain_eq(in, len, in, len))
		abort();
	half = len / 2;
	if (addr_domain_eq(in, half, in + half, len - half) !=
	    addr_domain_eq(in + half, len - half, in, half))
		abort();
	return 0;
}

/* inside - the slice (p, n) lies within (base, len) */
static int
inside(const char *base, size_t len, const char *p, size_t n)
{
	return p != NULL && p >= base && n <= len &&
	    (size_t)(p - base) <= len - n;
}
