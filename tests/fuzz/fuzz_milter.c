/*
 * fuzz_milter.c - libFuzzer harness of the milter reply codec in
 * src/common/milter.c: what a milter sends back to moat.
 *
 * The input is a byte stream from a milter: packets framed by their
 * uint32 length.  The first packet is decoded as the OPTNEG reply, the
 * others as replies (milter_reply_decode); header values go through
 * milter_header_value and reply texts through milter_replycode_check.
 * Invariants: every slice lies inside its packet, a header value
 * accepted holds no bare CR or LF and no line that does not continue
 * with a blank (no header injection), a reply code is 4 or 5.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "common/milter.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	 inside(const char *, size_t, const char *, size_t);
static void	 check_value(const struct buf *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_optneg	 o;
	struct milter_reply	 r;
	struct buf		 b;
	const char		*p;
	size_t			 n, i;
	int			 first = 1;

	while (size >= 4) {
		if ((n = milter_pkt_length(data)) == 0 || n > size - 4)
			break;
		p = (const char *)data + 5;
		if (first) {
			if (data[4] == SMFIC_OPTNEG &&
			    milter_optneg_decode(p, n - 1, &o) == 0) {
				if (o.version < 2 || o.version > 6 ||
				    (o.actions & ~(uint32_t)MILTER_ACTIONS) ||
				    (o.protocol & ~(uint32_t)MILTER_PROTOCOL))
					abort();
				for (i = 0; i < MILTER_STAGES; i++)
					if (o.list[i] != NULL)
						inside(p, n - 1, o.list[i],
						    o.list_len[i]);
			}
			first = 0;
		} else if (milter_reply_decode(data[4], p, n - 1, &r) == 0) {
			if (r.s1 != NULL)
				inside(p, n - 1, r.s1, r.l1);
			if (r.s2 != NULL && r.l2 > 0)
				inside(p, n - 1, r.s2, r.l2);
			if (r.code == SMFIR_REPLYCODE &&
			    r.reply_class != 4 && r.reply_class != 5)
				abort();
			if (r.code == SMFIR_ADDHEADER ||
			    r.code == SMFIR_INSHEADER ||
			    r.code == SMFIR_CHGHEADER) {
				buf_init(&b, 1UL << 20);
				if (milter_header_value(&b, r.s2, r.l2) == 0)
					check_value(&b);
				buf_free(&b);
			}
		}
		data += 4 + n;
		size -= 4 + n;
	}
	return 0;
}

static void
inside(const char *pkt, size_t len, const char *s, size_t l)
{
	if (s < pkt || l > len || s + l > pkt + len)
		abort();
}

/* check_value - CRLF pairs only, each followed by a blank */
static void
check_value(const struct buf *b)
{
	size_t	 i;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			abort();
		if (b->data[i] == '\r' && (i + 2 >= b->len ||
		    b->data[i + 1] != '\n' || (b->data[i + 2] != ' ' &&
		    b->data[i + 2] != '\t')))
			abort();
	}
}
