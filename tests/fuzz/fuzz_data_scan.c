/*
 * fuzz_data_scan.c - libFuzzer harness of the DATA / BDAT scanner.
 *
 * A differential check: the first octet picks the mode and a split
 * position; the rest is fed whole, in two pieces split there, and (when
 * short) one octet at a time, and each result is compared with a plain
 * octet-at-a-time reference of RFC 5321 4.5.2 written here.  Output,
 * flags, end of DATA and consumed count must agree exactly; any
 * difference abort()s.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_in/smtp_parse.h"

#define ONE_BY_ONE_MAX	4096	/* octet-at-a-time feed up to this size */

struct run {
	char		*out;
	size_t		 outlen;
	size_t		 outcap;
	unsigned	 errors;
	int		 done;
	size_t		 consumed;
	uint64_t	 total;
};

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static int	 collect(void *, const char *, size_t);
static void	 feed(const char *, size_t, enum data_scan_mode, size_t,
		    struct run *);
static void	 reference(const char *, size_t, enum data_scan_mode,
		    struct run *);
static void	 put(struct run *, const char *, size_t);
static void	 same(const struct run *, const struct run *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run		 ref, whole, two, one;
	enum data_scan_mode	 mode;
	const char		*in;
	size_t			 len, cut;

	if (size == 0)
		return 0;
	mode = data[0] & 1 ? DSM_BDAT : DSM_DATA;
	in = (const char *)data + 1;
	len = size - 1;
	cut = (size_t)(data[0] >> 1) * len / 127;

	reference(in, len, mode, &ref);
	feed(in, len, mode, len, &whole);
	same(&ref, &whole);
	feed(in, len, mode, cut, &two);
	same(&ref, &two);
	if (len <= ONE_BY_ONE_MAX) {
		feed(in, len, mode, 1, &one);
		same(&ref, &one);
		free(one.out);
	}
	/* DATA ends only on CR LF . CR LF (or . CR LF at the start) */
	if (whole.done && (whole.consumed < 3 ||
	    memcmp(in + whole.consumed - 3, ".\r\n", 3) != 0 ||
	    (whole.consumed > 3 &&
	    memcmp(in + whole.consumed - 5, "\r\n", 2) != 0)))
		abort();
	free(ref.out);
	free(whole.out);
	free(two.out);
	return 0;
}

/* collect - scanner output: append; an empty call is a bug */
static int
collect(void *arg, const char *p, size_t len)
{
	struct run	*r = arg;

	if (len == 0)
		abort();
	put(r, p, len);
	return 0;
}

/*
 * feed - run the scanner over in[0..len) in pieces of step octets (the
 * first piece: step; then the rest in pieces of step again), then
 * resolve pending state with data_scan_end() unless DATA ended.
 */
static void
feed(const char *in, size_t len, enum data_scan_mode mode, size_t step,
    struct run *r)
{
	struct data_scanner	 s;
	size_t			 off = 0, n, used;

	memset(r, 0, sizeof(*r));
	r->outcap = len + 1;
	if ((r->out = malloc(r->outcap)) == NULL)
		abort();
	data_scan_init(&s, mode);
	if (step == 0)
		step = 1;
	while (off < len && !s.done) {
		n = len - off < step ? len - off : step;
		if (data_scan(&s, in + off, n, &used, collect, r) != 0)
			abort();
		if (used > n || (used < n && !s.done))
			abort();
		r->consumed += used;
		off += n;
	}
	if (!s.done && data_scan_end(&s, collect, r) != 0)
		abort();
	r->errors = s.errors;
	r->done = s.done;
	r->total = s.total;
}

/* reference - the same rules, one octet at a time, whole input known */
static void
reference(const char *in, size_t n, enum data_scan_mode mode,
    struct run *r)
{
	size_t	 i = 0, ll = 0;
	int	 bol = 1;

	memset(r, 0, sizeof(*r));
	r->outcap = n + 1;
	if ((r->out = malloc(r->outcap)) == NULL)
		abort();
	while (i < n) {
		if (mode == DSM_DATA && bol && in[i] == '.') {
			if (n - i >= 3 && in[i + 1] == '\r' &&
			    in[i + 2] == '\n') {
				r->done = 1;
				i += 3;
				break;
			}
			i++;
			/* the stuffing dot does not count, 4.5.3.1.6 */
			ll = 0;
			bol = 0;
			continue;
		}
		bol = 0;
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
			put(r, "\r\n", 2);
			i += 2;
			bol = 1;
			ll = 0;
			continue;
		}
		if (in[i] == '\r')
			r->errors |= DS_BARE_CR;
		else if (in[i] == '\n')
			r->errors |= DS_BARE_LF;
		else if (in[i] == '\0')
			r->errors |= DS_NUL;
		put(r, in + i, 1);
		i++;
		if (++ll > SMTP_TEXT_MAX - 2)
			r->errors |= DS_LONG_LINE;
	}
	r->consumed = i;
	r->total = r->outlen;
}

/* put - append to a run's output, which can never outgrow the input */
static void
put(struct run *r, const char *p, size_t len)
{
	if (len > r->outcap - r->outlen)
		abort();
	memcpy(r->out + r->outlen, p, len);
	r->outlen += len;
}

/* same - two runs agree in every observable */
static void
same(const struct run *a, const struct run *b)
{
	if (a->outlen != b->outlen || memcmp(a->out, b->out, a->outlen) ||
	    a->errors != b->errors || a->done != b->done ||
	    a->consumed != b->consumed || a->total != b->total ||
	    b->total != b->outlen)
		abort();
}
