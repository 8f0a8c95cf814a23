/*
 * authdb.c - AUTH users (auth_users_file) and the senders each login
 * owns (auth_sender_map), parsed by the master, looked up by smtp-in.
 *
 * Invariants:
 *  - the files are parsed whole before any use; every error is
 *    reported as "FILE:LINE: reason" and counted, and the caller
 *    (config_load) refuses the config if there was any, so a running
 *    smtp-in never holds a half-read database;
 *  - only hashes of slow, salted methods are accepted (yescrypt,
 *    bcrypt, sha512-crypt): a DES or MD5 hash is an error, not a
 *    warning, because it would be cracked from a stolen file;
 *  - logins are printable ASCII without ':' or blanks, at most
 *    AUTHDB_USER_MAX octets: they go into logs, spool records and the
 *    envelope without further escaping;
 *  - lookups are binary searches over arrays sorted once per parse.
 *
 * authdb_verify() is the only slow function (crypt_rn by design); it
 * touches no shared state, so smtp-in runs it on worker threads.
 */
#include <sys/types.h>
#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "addr.h"
#include "authdb.h"

#define AUTHDB_ERRORS_MAX	100	/* then stop reporting */

struct auth_user {
	char		*login;
	char		*hash;
	unsigned	 line;
};

struct auth_senders {
	char		*login;
	char		**addr;		/* lower case; "@domain" or address */
	size_t		 n;
	unsigned	 line;
};

struct authdb {
	struct auth_user	*u;
	size_t			 nu;
	struct auth_senders	*s;
	size_t			 ns;
};

/* one parse: where we are and what went wrong */
struct adb_parse {
	const char	*name;
	FILE		*errf;
	unsigned	 line;
	size_t		 nerr;
};

typedef void	adb_line_fn(struct authdb *, struct adb_parse *,
		    const char *, size_t);

static void	adb_err(struct adb_parse *, unsigned, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	adb_lines(struct authdb *, struct adb_parse *, const char *,
		    size_t, adb_line_fn *);
static int	adb_clean(const char **, size_t *);
static void	adb_user_line(struct authdb *, struct adb_parse *,
		    const char *, size_t);
static void	adb_sender_line(struct authdb *, struct adb_parse *,
		    const char *, size_t);
static int	adb_sender_item(struct adb_parse *, const char *, size_t,
		    char **);
static int	login_valid(const char *, size_t);
static int	login_cmp(const char *, size_t, const char *);
static int	user_cmp(const void *, const void *);
static int	senders_cmp(const void *, const void *);
static const struct auth_senders *senders_find(const struct authdb *,
		    const char *, size_t);
static int	addr_eq(const char *, size_t, const char *);
static int	hash_shape_ok(const char *, size_t);
static void	*xreallocarray(void *, size_t, size_t);

/* authdb_new - an empty database */
struct authdb *
authdb_new(void)
{
	return calloc(1, sizeof(struct authdb));
}

/* authdb_free - release the database and every string in it */
void
authdb_free(struct authdb *db)
{
	size_t	 i, j;

	if (db == NULL)
		return;
	for (i = 0; i < db->nu; i++) {
		free(db->u[i].login);
		/* a hash is not a password, but no need to leave it around */
		explicit_bzero(db->u[i].hash, strlen(db->u[i].hash));
		free(db->u[i].hash);
	}
	free(db->u);
	for (i = 0; i < db->ns; i++) {
		for (j = 0; j < db->s[i].n; j++)
			free(db->s[i].addr[j]);
		free(db->s[i].addr);
		free(db->s[i].login);
	}
	free(db->s);
	free(db);
}

/*
 * authdb_parse_users - "login:hash" lines.  Duplicates are reported at
 * the second occurrence, after sorting.
 */
size_t
authdb_parse_users(struct authdb *db, const char *name, const char *p,
    size_t len, FILE *errf)
{
	struct adb_parse	 ps = { name, errf, 0, 0 };
	size_t			 i;

	adb_lines(db, &ps, p, len, adb_user_line);
	if (db->nu > 1)
		qsort(db->u, db->nu, sizeof(*db->u), user_cmp);
	for (i = 1; i < db->nu; i++)
		if (strcmp(db->u[i - 1].login, db->u[i].login) == 0)
			adb_err(&ps, db->u[i].line > db->u[i - 1].line ?
			    db->u[i].line : db->u[i - 1].line,
			    "duplicate user \"%s\"", db->u[i].login);
	return ps.nerr;
}

/* authdb_parse_senders - "login addr, addr, @domain" lines */
size_t
authdb_parse_senders(struct authdb *db, const char *name, const char *p,
    size_t len, FILE *errf)
{
	struct adb_parse	 ps = { name, errf, 0, 0 };
	size_t			 i;

	adb_lines(db, &ps, p, len, adb_sender_line);
	if (db->ns > 1)
		qsort(db->s, db->ns, sizeof(*db->s), senders_cmp);
	for (i = 1; i < db->ns; i++)
		if (strcmp(db->s[i - 1].login, db->s[i].login) == 0)
			adb_err(&ps, db->s[i].line > db->s[i - 1].line ?
			    db->s[i].line : db->s[i - 1].line,
			    "duplicate login \"%s\"", db->s[i].login);
	return ps.nerr;
}

/* authdb_count - number of users */
size_t
authdb_count(const struct authdb *db)
{
	return db->nu;
}

/* authdb_hash - binary search by login */
const char *
authdb_hash(const struct authdb *db, const char *login, size_t len)
{
	size_t	 lo = 0, hi = db->nu, mid;
	int	 r;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((r = login_cmp(login, len, db->u[mid].login)) == 0)
			return db->u[mid].hash;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* authdb_dummy_hash - the first user's hash, for unknown logins */
const char *
authdb_dummy_hash(const struct authdb *db)
{
	return db->nu > 0 ? db->u[0].hash : NULL;
}

/*
 * authdb_sender_ok - the map's addresses of login, or by default the
 * login itself when it looks like an address.
 */
int
authdb_sender_ok(const struct authdb *db, const char *login,
    const char *addr, size_t len)
{
	const struct auth_senders	*e;
	const char			*at;
	size_t				 i;

	if (len == 0)
		return 0;
	if ((e = senders_find(db, login, strlen(login))) == NULL)
		return strchr(login, '@') != NULL && addr_eq(addr, len, login);
	for (i = 0; i < e->n; i++) {
		if (e->addr[i][0] != '@') {
			if (addr_eq(addr, len, e->addr[i]))
				return 1;
			continue;
		}
		/* "@domain": any mailbox there (domain after the last @) */
		if ((at = memrchr(addr, '@', len)) == NULL)
			continue;
		if (addr_domain_eq(at + 1, len - (size_t)(at + 1 - addr),
		    e->addr[i] + 1, strlen(e->addr[i] + 1)))
			return 1;
	}
	return 0;
}

/*
 * authdb_verify - crypt_rn() with the stored hash as setting; the
 * output equals the hash exactly when the password is right.  The
 * compare does not stop at the first difference (CRYPTO_memcmp), so
 * its time tells nothing about how much of the hash matched.
 */
int
authdb_verify(const char *hash, const char *pw)
{
	struct crypt_data	*cd;
	const char		*out;
	size_t			 hl;
	int			 ok;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	hl = strlen(hash);
	out = crypt_rn(pw, hash, cd, (int)sizeof(*cd));
	ok = out != NULL && out[0] != '*' && strlen(out) == hl &&
	    CRYPTO_memcmp(out, hash, hl) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/*
 * authdb_hash_ok - an accepted method with a setting libxcrypt
 * understands.  Checking with crypt_checksalt() costs nothing; running
 * crypt here would cost a second per user with a strong yescrypt.
 */
int
authdb_hash_ok(const char *hash, size_t len, const char **why)
{
	static const char *const ok[] = { "$y$", "$2b$", "$2y$", "$6$" };
	size_t			 i;

	*why = NULL;
	if (len == 0) {
		*why = "empty hash";
		return -1;
	}
	if (len > AUTHDB_HASH_MAX) {
		*why = "hash too long";
		return -1;
	}
	for (i = 0; i < len; i++)
		if (strchr("./$=0123456789abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", hash[i]) == NULL ||
		    hash[i] == '\0') {
			*why = "invalid character in hash";
			return -1;
		}
	if (len >= 3 && memcmp(hash, "$1$", 3) == 0) {
		*why = "MD5-crypt hash refused: use yescrypt ($y$), bcrypt "
		    "($2b$) or sha512-crypt ($6$)";
		return -1;
	}
	if (hash[0] != '$') {
		*why = "DES crypt hash refused: use yescrypt ($y$), bcrypt "
		    "($2b$) or sha512-crypt ($6$)";
		return -1;
	}
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (len >= strlen(ok[i]) &&
		    memcmp(hash, ok[i], strlen(ok[i])) == 0)
			break;
	if (i == sizeof(ok) / sizeof(ok[0])) {
		*why = "unsupported hash method: use yescrypt ($y$), bcrypt "
		    "($2b$) or sha512-crypt ($6$)";
		return -1;
	}
	/* hash is NUL-terminated by the caller (a copy of the line) */
	if (strlen(hash) != len || !hash_shape_ok(hash, len) ||
	    crypt_checksalt(hash) != CRYPT_SALT_OK) {
		*why = "malformed hash";
		return -1;
	}
	return 0;
}

/*
 * hash_shape_ok - the fields of a complete hash, not only a setting:
 * crypt_checksalt() accepts "$6$" alone, which no password matches,
 * and a truncated line must be an error at load, not a locked user.
 *   $6$[rounds=N$]salt$ + 86 characters
 *   $2b$NN$ + 22 salt + 31 hash characters (60 in all), cost 04..31
 *   $y$params$salt$ + 43 characters
 */
static int
hash_shape_ok(const char *h, size_t len)
{
	const char	*last = memrchr(h, '$', len);
	size_t		 tail = len - (size_t)(last - h) - 1, ndollar = 0, i;
	unsigned	 cost;

	for (i = 0; i < len; i++)
		ndollar += h[i] == '$';
	if (h[1] == '6')
		return (ndollar == 3 || (ndollar == 4 &&
		    strncmp(h + 3, "rounds=", 7) == 0)) && tail == 86 &&
		    last - h > 3;
	if (h[1] == '2') {
		if (len != 60 || ndollar != 3 || h[6] != '$' ||
		    h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
			return 0;
		cost = (unsigned)(h[4] - '0') * 10 + (unsigned)(h[5] - '0');
		return cost >= 4 && cost <= 31;
	}
	return ndollar == 4 && tail == 43 && h[3] != '$' && last[-1] != '$';
}

/* ---- parsing ---------------------------------------------------- */

static void
adb_err(struct adb_parse *ps, unsigned line, const char *fmt, ...)
{
	va_list	 ap;

	ps->nerr++;
	if (ps->errf == NULL || ps->nerr > AUTHDB_ERRORS_MAX)
		return;
	fprintf(ps->errf, "%s:%u: ", ps->name, line);
	va_start(ap, fmt);
	vfprintf(ps->errf, fmt, ap);
	va_end(ap);
	fputc('\n', ps->errf);
}

/* adb_lines - call fn with each non-blank, non-comment line */
static void
adb_lines(struct authdb *db, struct adb_parse *ps, const char *p, size_t len,
    adb_line_fn *fn)
{
	const char	*end = p + len, *nl, *l;
	size_t		 llen;

	ps->line = 0;
	while (p < end) {
		ps->line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		l = p;
		p = nl != NULL ? nl + 1 : end;
		if (memchr(l, '\0', llen) != NULL) {
			adb_err(ps, ps->line, "NUL byte in line");
			continue;
		}
		if (adb_clean(&l, &llen))
			fn(db, ps, l, llen);
	}
}

/*
 * adb_clean - drop a comment ('#' first or after a blank) and the
 * blanks (and a CR) around the line; 1 if something is left.
 */
static int
adb_clean(const char **pp, size_t *lenp)
{
	const char	*p = *pp;
	size_t		 len = *lenp, i;

	for (i = 0; i < len; i++)
		if (p[i] == '#' && (i == 0 || p[i - 1] == ' ' ||
		    p[i - 1] == '\t')) {
			len = i;
			break;
		}
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' ||
	    p[len - 1] == '\r'))
		len--;
	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	*pp = p;
	*lenp = len;
	return len > 0;
}

/* adb_user_line - "login:hash" */
static void
adb_user_line(struct authdb *db, struct adb_parse *ps, const char *p,
    size_t len)
{
	const char	*colon, *why;
	char		*login, *hash;
	size_t		 llen;

	if ((colon = memchr(p, ':', len)) == NULL) {
		adb_err(ps, ps->line, "expected login:hash");
		return;
	}
	llen = (size_t)(colon - p);
	if (!login_valid(p, llen)) {
		adb_err(ps, ps->line, "bad login (1 to %d printable "
		    "characters, no ':' or blanks)", AUTHDB_USER_MAX);
		return;
	}
	if ((hash = str_dup_len(colon + 1, len - llen - 1)) == NULL)
		fatal("authdb: line");
	if (authdb_hash_ok(hash, len - llen - 1, &why) == -1) {
		adb_err(ps, ps->line, "%s", why);
		free(hash);
		return;
	}
	if ((login = str_dup_len(p, llen)) == NULL)
		fatal("authdb: line");
	db->u = xreallocarray(db->u, db->nu + 1, sizeof(*db->u));
	db->u[db->nu].login = login;
	db->u[db->nu].hash = hash;
	db->u[db->nu].line = ps->line;
	db->nu++;
}

/* adb_sender_line - "login item, item ..." */
static void
adb_sender_line(struct authdb *db, struct adb_parse *ps, const char *p,
    size_t len)
{
	struct auth_senders	 e;
	size_t			 llen, i, k, nerr = ps->nerr;

	for (llen = 0; llen < len && p[llen] != ' ' && p[llen] != '\t';
	    llen++)
		;
	if (!login_valid(p, llen)) {
		adb_err(ps, ps->line, "bad login (1 to %d printable "
		    "characters, no ':' or blanks)", AUTHDB_USER_MAX);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.line = ps->line;
	for (i = llen; i < len; i = k) {
		while (i < len && strchr(" \t,", p[i]) != NULL)
			i++;
		for (k = i; k < len && strchr(" \t,", p[k]) == NULL; k++)
			;
		if (k == i)
			break;
		if (e.n >= AUTHDB_SENDERS_MAX) {
			adb_err(ps, ps->line, "more than %d addresses",
			    AUTHDB_SENDERS_MAX);
			break;
		}
		e.addr = xreallocarray(e.addr, e.n + 1, sizeof(*e.addr));
		if (adb_sender_item(ps, p + i, k - i, &e.addr[e.n]) == 0)
			e.n++;
	}
	if (e.n == 0 && nerr == ps->nerr)
		adb_err(ps, ps->line, "no addresses for login");
	if (nerr != ps->nerr) {
		for (i = 0; i < e.n; i++)
			free(e.addr[i]);
		free(e.addr);
		return;
	}
	if ((e.login = str_dup_len(p, llen)) == NULL)
		fatal("authdb: line");
	db->s = xreallocarray(db->s, db->ns + 1, sizeof(*db->s));
	db->s[db->ns++] = e;
}

/* adb_sender_item - "@domain" or "local@domain", stored lower case */
static int
adb_sender_item(struct adb_parse *ps, const char *p, size_t len, char **out)
{
	struct addr	 a;
	const char	*why = NULL;
	char		*s;

	if (p[0] == '@') {
		if (!addr_domain_valid(p + 1, len - 1, 1)) {
			adb_err(ps, ps->line, "bad domain \"%.*s\"",
			    (int)(len > 96 ? 96 : len), p);
			return -1;
		}
	} else if (addr_parse_mailbox(p, len, 1, &a, &why) == -1 ||
	    a.domain == NULL || (a.flags & (ADDR_ROUTE | ADDR_ROUTING))) {
		adb_err(ps, ps->line, "bad address \"%.*s\"%s%s",
		    (int)(len > 96 ? 96 : len), p, why ? ": " : "",
		    why ? why : "");
		return -1;
	}
	if ((s = str_dup_len(p, len)) == NULL)
		fatal("authdb: address");
	mem_ascii_lower(s, len);
	*out = s;
	return 0;
}

/* login_valid - 1..AUTHDB_USER_MAX octets 0x21..0x7e, no ':' */
static int
login_valid(const char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || len > AUTHDB_USER_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] <= 0x20 ||
		    (unsigned char)p[i] >= 0x7f || p[i] == ':')
			return 0;
	return 1;
}

/* login_cmp - order of (p, len) against the C string s */
static int
login_cmp(const char *p, size_t len, const char *s)
{
	size_t	 sl = strlen(s);
	int	 r;

	if ((r = memcmp(p, s, len < sl ? len : sl)) != 0)
		return r;
	return len < sl ? -1 : len > sl;
}

static int
user_cmp(const void *a, const void *b)
{
	const struct auth_user	*x = a, *y = b;
	int			 r;

	if ((r = strcmp(x->login, y->login)) != 0)
		return r;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int
senders_cmp(const void *a, const void *b)
{
	const struct auth_senders	*x = a, *y = b;
	int				 r;

	if ((r = strcmp(x->login, y->login)) != 0)
		return r;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* senders_find - the map entry of a login or NULL */
static const struct auth_senders *
senders_find(const struct authdb *db, const char *login, size_t len)
{
	size_t	 lo = 0, hi = db->ns, mid;
	int	 r;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((r = login_cmp(login, len, db->s[mid].login)) == 0)
			return &db->s[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* addr_eq - (p, len) equals the C string s, ASCII case ignored */
static int
addr_eq(const char *p, size_t len, const char *s)
{
	return strlen(s) == len && mem_casecmp(p, s, len) == 0;
}

static void *
xreallocarray(void *p, size_t n, size_t size)
{
	void	*np;

	if ((np = reallocarray(p, n, size)) == NULL)
		fatal("authdb: reallocarray");
	return np;
}
