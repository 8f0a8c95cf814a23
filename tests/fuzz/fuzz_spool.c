/*
 * fuzz_spool.c - libFuzzer harness for spool_msg_parse(): any octets
 * must be either refused with a reason or give an envelope whose
 * content slice lies inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/spool.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct envelope	 env;
	const char	*why = NULL;
	size_t		 i, j, n = 0;

	if (spool_msg_parse((const char *)data, len, &env, &why) == -1) {
		if (why == NULL || env.rcpt != NULL || env.sender != NULL)
			abort();
		return 0;
	}
	if (env.nrcpt == 0 || env.sender == NULL ||
	    (size_t)env.data_off > len || env.size > len - (size_t)env.data_off)
		abort();
	/* touch every string so ASan sees any overrun */
	for (i = 0; i < env.nrcpt; i++)
		for (j = 0; env.rcpt[i][j] != '\0'; j++)
			n++;
	envelope_free(&env);
	return (int)(n & 0);
}
