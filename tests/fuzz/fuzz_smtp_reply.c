/*
 * fuzz_smtp_reply.c - libFuzzer harness of the smtp-out reply parsers:
 * oreply_parse() takes replies off the front of the input as a session
 * would (with the bounds it promises checked), and every complete reply
 * also goes through oehlo_parse(), as does the whole input.  Violations
 * abort().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_out/smtp_out.h"

/* the most octets one reply can take: every line at its limit */
#define REPLY_BYTES_MAX	(OUT_REPLY_LINES_MAX * (OUT_REPLY_LINE_MAX + 2))

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static void	 check_reply(const struct oreply *, size_t);
static void	 check_ehlo(const struct oehlo *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data;
	size_t		 len = size, used;
	struct oreply	 r;
	struct oehlo	 o;
	int		 rc;

	oehlo_parse(p, len, &o);
	check_ehlo(&o);
	while (len > 0) {
		used = SIZE_MAX;
		rc = oreply_parse(p, len, &r, &used);
		if (rc == 0) {
			/* incomplete: only possible below the bound */
			if (len >= REPLY_BYTES_MAX)
				abort();
			break;
		}
		if (rc == -1)
			break;
		if (rc != 1 || used == 0 || used > len ||
		    used > REPLY_BYTES_MAX || p[used - 1] != '\n')
			abort();
		check_reply(&r, used);
		oehlo_parse(p, used, &o);
		check_ehlo(&o);
		p += used;
		len -= used;
	}
	return 0;
}

/* check_reply - code range, line count, text printable and bounded */
static void
check_reply(const struct oreply *r, size_t used)
{
	size_t	 i, n;

	if (r->code < 200 || r->code > 599 || r->nlines == 0 ||
	    r->nlines > OUT_REPLY_LINES_MAX || r->nlines > used)
		abort();
	n = strnlen(r->text, sizeof(r->text));
	if (n == sizeof(r->text))
		abort();
	for (i = 0; i < n; i++)
		if (r->text[i] < 0x20 || r->text[i] > 0x7e ||
		    r->text[i] == '"')
			abort();
}

/* check_ehlo - the name is a bounded printable lower-case word */
static void
check_ehlo(const struct oehlo *o)
{
	size_t	 i, n;

	n = strnlen(o->name, sizeof(o->name));
	if (n == sizeof(o->name))
		abort();
	for (i = 0; i < n; i++)
		if (o->name[i] <= ' ' || o->name[i] > 0x7e ||
		    (o->name[i] >= 'A' && o->name[i] <= 'Z'))
			abort();
	if (!o->has_size && o->size != 0)
		abort();
}
