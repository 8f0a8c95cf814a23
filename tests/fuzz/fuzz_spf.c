/*
 * fuzz_spf.c - libFuzzer harness of the SPF record parser and macro
 * expansion (src/common/spf.c).
 *
 * The input is the text of a TXT record, as any domain owner can
 * publish it.  A record that parses must have terms within the input
 * and sane CIDR widths; every domain-spec and macro-string it holds is
 * then expanded for an IPv4 and an IPv6 client, and the result must
 * stay within the output and be trimmed to a DNS name's length.
 */
#include <sys/socket.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/spf.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
expand(const struct spf_term *t, int family)
{
	struct spf_macro	 m;
	char			 out[SPF_EXPAND_MAX];
	int			 n;

	memset(&m, 0, sizeof(m));
	m.sender = "first.last+tag@sub.example.com";
	m.domain = "sub.example.com";
	m.helo = "helo.example.org";
	m.family = family;
	m.addr[0] = 192;
	m.addr[15] = 1;
	n = spf_macro_expand(t->spec, t->speclen, &m, t->kind == SPF_EXP,
	    out, sizeof(out));
	if (n == -1)
		return;
	if ((size_t)n >= sizeof(out) || strlen(out) != (size_t)n)
		abort();
	if (spf_domain_trim(out, (size_t)n) > 253)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spf_record rec;
	const char		*p = (const char *)data, *why = NULL;
	size_t			 i;

	if (spf_record_parse(p, size, &rec, &why) == -1) {
		if (why == NULL)
			abort();
		return 0;
	}
	if (rec.nterms > SPF_TERMS_MAX || rec.redirect >= (int)rec.nterms)
		abort();
	for (i = 0; i < rec.nterms; i++) {
		const struct spf_term	*t = &rec.term[i];

		if (t->text < p || t->text + t->textlen > p + size ||
		    (t->speclen > 0 && (t->spec < p ||
		    t->spec + t->speclen > p + size)) ||
		    t->cidr4 > 32 || t->cidr6 > 128)
			abort();
		if (t->speclen == 0)
			continue;
		expand(t, AF_INET);
		expand(t, AF_INET6);
	}
	return 0;
}
