/*
 * fuzz_quarantine.c - the quarantine record reader (quarantine.h): any
 * input is refused or parsed into bounded, NUL-terminated fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/quarantine.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct quar_why	 w;

	if (quarantine_why_parse((const char *)data, size, &w) == 0) {
		/* both fields end inside their arrays */
		if (memchr(w.rule, '\0', sizeof(w.rule)) == NULL ||
		    memchr(w.reason, '\0', sizeof(w.reason)) == NULL)
			__builtin_trap();
	}
	return 0;
}
