/*
 * fuzz_clamd.c - libFuzzer harness of clamd_reply_parse() in
 * src/common/clamd.c: the reply line clamd sends after INSTREAM.
 *
 * Invariants: the name is NUL-terminated, at most CLAMD_NAME_MAX
 * octets, printable ASCII (it goes to logs and SMTP replies); CLEAN
 * comes with an empty name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clamd.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			 name[CLAMD_NAME_MAX + 2];
	enum clamd_status	 st;
	size_t			 i, n;

	memset(name, 'Z', sizeof(name));
	st = clamd_reply_parse((const char *)data, size, name);
	n = strnlen(name, sizeof(name));
	if (n > CLAMD_NAME_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)
			abort();
	if (st == CLAMD_CLEAN && n != 0)
		abort();
	if (st != CLAMD_CLEAN && st != CLAMD_VIRUS && st != CLAMD_ERROR)
		abort();
	return 0;
}
