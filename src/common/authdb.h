/*
 * authdb.h - the users of AUTH and the addresses each may send as.
 *
 * Two files, both read by the master before the roles drop privileges
 * (config_load), so that the chrooted smtp-in never opens them:
 *
 *   auth_users_file   "login:crypt-hash" lines.  Hashes are libxcrypt
 *                     yescrypt ($y$), bcrypt ($2b$, $2y$) or
 *                     sha512-crypt ($6$); DES, MD5 and the others are
 *                     refused at load time with FILE:LINE.
 *   auth_sender_map   "login addr1, addr2, @domain" lines: the envelope
 *                     senders a login may use.  A login without a line
 *                     may use itself, if it is an address.
 *
 * Both: '#' comments, blank lines ignored, one entry per login.
 * Logins are 1..AUTHDB_USER_MAX printable ASCII octets without ':',
 * so that they are safe in logs, spool records and Received headers.
 */
#ifndef MOAT_AUTHDB_H
#define MOAT_AUTHDB_H

#include <stddef.h>
#include <stdio.h>

#define AUTHDB_USER_MAX		255	/* login octets (envelope auth) */
#define AUTHDB_PASS_MAX		1024	/* password octets we hash */
#define AUTHDB_HASH_MAX		512	/* stored crypt string */
#define AUTHDB_SENDERS_MAX	1000	/* addresses of one login */

struct authdb;

/* authdb_new - an empty database; NULL on allocation failure */
struct authdb	*authdb_new(void);
void		 authdb_free(struct authdb *);

/*
 * authdb_parse_users - add the "login:hash" lines at p[0..len) (the
 * file "name", used in messages).  Every error is written to errf (may
 * be NULL) as "NAME:LINE: reason"; returns the number of errors.
 */
size_t	authdb_parse_users(struct authdb *, const char *name, const char *p,
	    size_t len, FILE *errf);

/* authdb_parse_senders - the same for "login addr, addr, @domain" lines */
size_t	authdb_parse_senders(struct authdb *, const char *name,
	    const char *p, size_t len, FILE *errf);

/* authdb_count - number of users */
size_t	authdb_count(const struct authdb *);

/*
 * authdb_hash - the stored hash of login (len octets, exact case), or
 * NULL if there is no such user.
 */
const char *authdb_hash(const struct authdb *, const char *login,
	    size_t len);

/*
 * authdb_dummy_hash - a hash of the database's first user (NULL if
 * empty): checked against for unknown logins, so that their answer
 * takes as long as a known one's.
 */
const char *authdb_dummy_hash(const struct authdb *);

/*
 * authdb_sender_ok - may login (NUL-terminated, a known user) use the
 * envelope sender addr (len octets, "local@domain")?  1 or 0.
 * Domains compare without regard to case; local parts too (mailbox
 * names differing only in case are the same person in practice).
 */
int	authdb_sender_ok(const struct authdb *, const char *login,
	    const char *addr, size_t len);

/*
 * authdb_verify - does pw (NUL-terminated) match hash?  Runs crypt_rn()
 * (slow by design: call it off the event loop) and compares its output
 * with the stored hash in constant time.  1, 0, or -1 on error.
 */
int	authdb_verify(const char *hash, const char *pw);

/* authdb_hash_ok - 0 if hash is of an accepted method, else -1 + *why */
int	authdb_hash_ok(const char *hash, size_t len, const char **why);

#endif
