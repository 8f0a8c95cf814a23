/*
 * fuzz_content.c - libFuzzer target for the content policy engine
 * (src/common/content.c) on top of the MIME parser: the input is a
 * message, scanned under a fixed config (strip for attachments, a few
 * PCRE2 rules of every scope), and when the verdict asks for a rewrite
 * the rewritten copy is produced from a memfd holding the input.  The
 * rewrite must succeed and the strip ranges stay inside the input.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/content.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char rules[] =
    "h headers any tag /^Subject:.*x/i\n"
    "b body any strip /fuzz[0-9]+/\n"
    "a attachment any log /MZ.{2}/s\n";

static struct config *
conf(void)
{
	static struct config	*c;
	char			 text[256];
	FILE			*f;

	if (c != NULL)
		return c;
	if ((f = fopen("/tmp/fuzz_content.rules", "w")) == NULL ||
	    fwrite(rules, 1, sizeof(rules) - 1, f) != sizeof(rules) - 1 ||
	    fclose(f) != 0)
		abort();
	snprintf(text, sizeof(text), "content_filter = yes\n"
	    "attachment_action = strip\nmime_max_depth = 6\n"
	    "mime_max_parts = 40\ncontent_rules = "
	    "/tmp/fuzz_content.rules\n");
	if ((c = config_load_mem("fuzz.conf", text, strlen(text), stderr)) ==
	    NULL)
		abort();
	return c;
}

static int
sink(void *arg, const char *p, size_t len)
{
	size_t	*n = arg;

	*n += len;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct content_scan		*s;
	const struct content_verdict	*v;
	size_t				 out = 0;
	int				 fd;

	if (size > 65536)
		return 0;
	if ((s = content_scan_new(conf(), size > 0 && data[0] & 1,
	    "FUZZ")) == NULL)
		abort();
	content_scan_data(s, (const char *)data, size);
	v = content_scan_end(s);
	if (v->rewrite) {
		if ((fd = memfd_create("fuzz", 0)) == -1 ||
		    write(fd, data, size) != (ssize_t)size)
			abort();
		if (content_rewrite(s, fd, 0, size, sink, &out) == -1)
			abort();
		close(fd);
	}
	content_scan_free(s);
	return 0;
}
