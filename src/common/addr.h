/*
 * addr.h - RFC 5321 paths and mailbox analysis.
 *
 * All functions take (ptr, len) slices of untrusted input and never read
 * past len.  Nothing here allocates.
 */
#ifndef MOAT_ADDR_H
#define MOAT_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define ADDR_PATH_MAX	256	/* RFC 5321 4.5.3.1.3, without <> */

/* flags of struct addr */
#define ADDR_QUOTED	0x01	/* local part was a quoted-string */
#define ADDR_ROUTE	0x02	/* a source route "@a,@b:" was present
				   (dropped from the slices, RFC 5321 C) */
#define ADDR_ROUTING	0x04	/* '%', '!' or '@' inside the local part */
#define ADDR_UTF8		0x08	/* octets >= 0x80 (needs SMTPUTF8) */
#define ADDR_LITERAL	0x10	/* domain is an address literal [..] */
#define ADDR_POSTMASTER	0x20	/* bare "postmaster" (no domain), RFC 5321
				   4.5.1: RCPT TO:<Postmaster> */

/*
 * struct addr - a parsed mailbox.  local and domain point into the
 * caller's input (the local part still quoted if ADDR_QUOTED).
 */
struct addr {
	const char	*local;
	size_t		 locallen;
	const char	*domain;	/* NULL for ADDR_POSTMASTER */
	size_t		 domainlen;	/* trailing dot removed */
	unsigned	 flags;
};

/*
 * addr_parse_mailbox - parse "local@domain" (no angle brackets; a
 * leading source route "@a,@b:" is accepted and flagged ADDR_ROUTE).
 * utf8: accept octets >= 0x80 (SMTPUTF8 given).  Returns 0, or -1 with
 * *why set to a short static reason.
 */
int	addr_parse_mailbox(const char *p, size_t len, int utf8,
	    struct addr *, const char **why);

/* addr_domain_valid - hostname syntax (LDH labels) or address literal */
int	addr_domain_valid(const char *p, size_t len, int utf8);

/*
 * addr_domain_eq - compare domains ignoring ASCII case and one
 * trailing dot on either side.
 */
int	addr_domain_eq(const char *a, size_t alen, const char *b, size_t blen);

/* addr_is_postmaster - local part is "postmaster" in any case */
int	addr_is_postmaster(const struct addr *);

#endif
