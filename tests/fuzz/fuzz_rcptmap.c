/*
 * fuzz_rcptmap.c - libFuzzer harness of src/common/rcptmap.c (the
 * relay_recipients file, parsed as root in the master).
 *
 * The input is parsed as a file; every line that parsed without error
 * and looks like "local@domain" must then be found by rcptmap_lookup,
 * and lookups of the raw lines must stay in bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/rcptmap.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rcptmap	*m;
	const char	*p = (const char *)data, *end = p + size, *nl, *at;
	size_t		 nerr, len;

	if ((m = rcptmap_new()) == NULL)
		return 0;
	nerr = rcptmap_parse(m, "fuzz", p, size, NULL);
	rcptmap_finish(m);
	for (; p < end; p = nl != NULL ? nl + 1 : end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if ((at = memrchr(p, '@', len)) == NULL)
			continue;
		if (rcptmap_lookup(m, p, (size_t)(at - p), at + 1,
		    len - (size_t)(at - p) - 1) == 1 || nerr > 0)
			continue;
		/* a clean one-address file must find its address */
		if (len == size && p[0] != '#' && p[0] != ' ' &&
		    p[0] != '\t' && at > p && len > 0 && p[len - 1] != ' ' &&
		    p[len - 1] != '\t' && p[len - 1] != '\r')
			abort();
	}
	rcptmap_free(m);
	return 0;
}
