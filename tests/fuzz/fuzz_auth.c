/*
 * fuzz_auth.c - libFuzzer harness of the SASL decoding of smtp-in
 * (smtp_auth.c): the strict base64 decoder of AUTH responses and the
 * RFC 4616 PLAIN splitter.
 *
 * Checks, abort() on violation:
 *  - the input as a response: a decode never writes past its buffer
 *    (ASan) and yields len / 4 * 3 octets less the padding; what it
 *    decodes re-encodes (OpenSSL EVP_EncodeBlock) and decodes again to
 *    the same octets;
 *  - the input as raw octets: OpenSSL's encoding of them always decodes
 *    back to them exactly (differential against a well-kept encoder);
 *  - PLAIN, on the raw octets and on the decoded ones: slices lie inside
 *    the message, hold no NUL, authcid and passwd are not empty, and
 *    the three fields with their two NULs cover the message exactly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "smtp_in/smtp_in.h"

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static void	 check_plain(const char *, size_t);
static int	 inside(const char *, size_t, const char *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data;
	char		*dec, *dec2;
	unsigned char	*enc;
	size_t		 n, n2, cap = size / 4 * 3 + 3;
	size_t		 cap2 = (size + 2) / 3 * 3 + cap;	/* both uses */
	int		 elen;

	if (size > 65536)
		return 0;
	dec = malloc(cap);
	dec2 = malloc(cap2);
	enc = malloc(4 * ((size + 2) / 3) + 1);
	if (dec == NULL || dec2 == NULL || enc == NULL)
		abort();

	if (smtp_auth_b64_decode(p, size, dec, cap, &n) == 0) {
		if (size % 4 != 0 || n > size / 4 * 3 ||
		    n + 2 < size / 4 * 3)
			abort();
		elen = EVP_EncodeBlock(enc, (const unsigned char *)dec,
		    (int)n);
		if (smtp_auth_b64_decode((const char *)enc, (size_t)elen,
		    dec2, cap2, &n2) != 0 || n2 != n ||
		    memcmp(dec, dec2, n) != 0)
			abort();
		check_plain(dec, n);
	}
	/* a too small buffer is refused, never overrun */
	if (size >= 4 && smtp_auth_b64_decode(p, size, dec, size / 4 * 3 - 1,
	    &n) == 0)
		abort();

	elen = EVP_EncodeBlock(enc, data, (int)size);
	if (smtp_auth_b64_decode((const char *)enc, (size_t)elen, dec2,
	    cap2, &n2) != 0 || n2 != size || memcmp(dec2, data, size) != 0)
		abort();
	check_plain(p, size);

	free(dec);
	free(dec2);
	free(enc);
	return 0;
}

/* check_plain - the splitter's slices against its contract */
static void
check_plain(const char *msg, size_t len)
{
	struct smtp_sasl_plain	 pl;
	size_t			 nuls = 0, i;

	for (i = 0; i < len; i++)
		nuls += msg[i] == '\0';
	if (smtp_auth_plain(msg, len, &pl) == -1) {
		/* refused: not two NULs, or an empty authcid or passwd */
		if (nuls == 2 && msg[len - 1] != '\0' &&
		    memchr(msg, '\0', len) != NULL &&
		    ((const char *)memchr(msg, '\0', len))[1] != '\0')
			abort();
		return;
	}
	if (nuls != 2 || pl.authcidlen == 0 || pl.passwdlen == 0 ||
	    !inside(msg, len, pl.authzid, pl.authzidlen) ||
	    !inside(msg, len, pl.authcid, pl.authcidlen) ||
	    !inside(msg, len, pl.passwd, pl.passwdlen) ||
	    pl.authzid != msg ||
	    pl.authzidlen + pl.authcidlen + pl.passwdlen + 2 != len ||
	    memchr(pl.authzid, '\0', pl.authzidlen) != NULL ||
	    memchr(pl.authcid, '\0', pl.authcidlen) != NULL ||
	    memchr(pl.passwd, '\0', pl.passwdlen) != NULL)
		abort();
}

/* inside - is the slice (q, n) within (p, len)? */
static int
inside(const char *p, size_t len, const char *q, size_t n)
{
	return q >= p && q <= p + len && n <= (size_t)(p + len - q);
}
