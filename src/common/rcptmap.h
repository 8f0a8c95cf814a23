/*
 * rcptmap.h - the valid recipients of local domains (relay_recipients),
 * so that smtp-in refuses unknown users at RCPT (550 5.1.1) instead of
 * accepting mail the internal host would bounce (backscatter).
 *
 * Read by the master before the roles drop privileges (config_load):
 * a file, or a directory whose regular files (names not starting with
 * '.') are all read.  One entry per line, '#' comments and blank lines
 * ignored:
 *
 *   alice@example.com      one address
 *   @lists.example.com     every local part of that domain
 *
 * Only domains that appear in the map are checked; local parts compare
 * without regard to ASCII case (as the internal hosts commonly do).
 */
#ifndef MOAT_RCPTMAP_H
#define MOAT_RCPTMAP_H

#include <stddef.h>
#include <stdio.h>

#define RCPTMAP_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define RCPTMAP_DOMAIN_MAX	255

struct rcptmap;

struct rcptmap	*rcptmap_new(void);
void		 rcptmap_free(struct rcptmap *);

/*
 * rcptmap_parse - add the lines at p[0..len) (file "name" in messages;
 * errors to errf as "NAME:LINE: reason"); returns the number of errors
 */
size_t		 rcptmap_parse(struct rcptmap *, const char *name,
		    const char *p, size_t len, FILE *errf);
/* rcptmap_finish - sort after the last parse; call before lookups */
void		 rcptmap_finish(struct rcptmap *);
size_t		 rcptmap_count(const struct rcptmap *);

/*
 * rcptmap_lookup - 1 if local@domain is valid (the address or its
 * "@domain"), 0 if the domain is in the map but not this address, -1
 * if the domain is not in the map (not checked).  Trailing dot of the
 * domain allowed; any case.
 */
int		 rcptmap_lookup(const struct rcptmap *, const char *local,
		    size_t llen, const char *domain, size_t dlen);

#endif
