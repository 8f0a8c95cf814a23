/*
 * fuzz_hfrom.c - libFuzzer harness of the header From: scanner of
 * smtp-in (smtp_hfrom_scan in src/smtp_in/smtp_policy.c), which reads
 * untrusted message content.
 *
 * The first octet chooses where the input is split in two calls; the
 * verdict must not depend on the split (the scanner is incremental),
 * a found domain must be a local one, and nothing may be read or
 * written out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "smtp_in/smtp_in.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config	*conf;
	static const char	 text[] =
	    "local_domains = ours.test, example.com\n";
	struct smtp_hfrom	 a, b;
	const char		*p;
	size_t			 len, split;

	if (conf == NULL &&
	    (conf = config_load_mem("fuzz.conf", text, sizeof(text) - 1,
	    NULL)) == NULL)
		abort();
	if (size == 0)
		return 0;
	p = (const char *)data + 1;
	len = size - 1;
	split = len > 0 ? data[0] % (len + 1) : 0;
	smtp_hfrom_init(&a);
	smtp_hfrom_scan(&a, conf, p, len);
	smtp_hfrom_init(&b);
	smtp_hfrom_scan(&b, conf, p, split);
	smtp_hfrom_scan(&b, conf, p + split, len - split);
	if (a.local != b.local || a.done != b.done)
		abort();
	if (a.local && (strnlen(a.found, sizeof(a.found)) == sizeof(a.found) ||
	    !config_is_local_domain(conf, a.found, strlen(a.found))))
		abort();
	return 0;
}
