/*
 * test_authdb.c - table-driven tests of src/common/authdb.c: the users
 * file (accepted and refused hashes with their "FILE:LINE: reason"),
 * lookups, password checks for each accepted method, the sender map,
 * and the load through config_load_mem() with its file errors.
 *
 * Hashes are made here with libxcrypt at its lowest costs, so that the
 * test stays fast; files go to a private mkdtemp() directory.
 */
#include <crypt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/authdb.h"
#include "common/config.h"
#include "unit.h"

static char	 tmpdir[64];

static char	*mkhash(const char *, unsigned long, const char *);
static char	*parse(const char *, int, struct authdb **, size_t *);
static void	 write_file(const char *, const char *);
static void	 test_users(void);
static void	 test_bad_users(void);
static void	 test_verify(void);
static void	 test_senders(void);
static void	 test_bad_senders(void);
static void	 test_config(void);

static char	*h_y, *h_b, *h_6;	/* hashes of "secret" */

/* mkhash - crypt(pw) with a fresh salt of method prefix at cost count */
static char *
mkhash(const char *prefix, unsigned long count, const char *pw)
{
	struct crypt_data	 cd;
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char		*h;

	memset(&cd, 0, sizeof(cd));
	if (crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof(salt)) ==
	    NULL || (h = crypt_rn(pw, salt, &cd, sizeof(cd))) == NULL) {
		printf("cannot make a %s hash\n", prefix);
		exit(1);
	}
	return strdup(h);
}

/*
 * parse - the users (senders = 0) or sender map text through a memory
 * stream; returns the error output (malloc'd), *nerr the count.
 */
static char *
parse(const char *text, int senders, struct authdb **dbp, size_t *nerr)
{
	char	*out = NULL;
	size_t	 outlen = 0;
	FILE	*f;

	if (*dbp == NULL)
		*dbp = authdb_new();
	if ((f = open_memstream(&out, &outlen)) == NULL)
		exit(1);
	*nerr = senders ?
	    authdb_parse_senders(*dbp, "m", text, strlen(text), f) :
	    authdb_parse_users(*dbp, "u", text, strlen(text), f);
	fclose(f);
	return out;
}

static void
write_file(const char *name, const char *text)
{
	char	 path[128];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) == EOF) {
		printf("cannot write %s\n", path);
		exit(1);
	}
}

/* test_users - a good file: comments, blanks, CRLF, three methods */
static void
test_users(void)
{
	struct authdb	*db = NULL;
	char		 text[2048], *err;
	size_t		 n;

	snprintf(text, sizeof(text), "# users\n\nalice@example.test:%s\r\n"
	    "  bob:%s   # bcrypt\ncarol:%s\n", h_y, h_b, h_6);
	err = parse(text, 0, &db, &n);
	check(n == 0 && strcmp(err, "") == 0, "good file: %zu errors: %s",
	    n, err);
	free(err);
	check(authdb_count(db) == 3, "three users, got %zu",
	    authdb_count(db));
	check(authdb_hash(db, "bob", 3) != NULL &&
	    strcmp(authdb_hash(db, "bob", 3), h_b) == 0, "bob's hash");
	check(authdb_hash(db, "alice@example.test", 18) != NULL,
	    "alice found");
	check(authdb_hash(db, "Bob", 3) == NULL, "logins are exact case");
	check(authdb_hash(db, "bo", 2) == NULL, "prefix is not a login");
	check(authdb_hash(db, "bobby", 5) == NULL, "longer is not a login");
	check(authdb_hash(db, "carol\0", 6) == NULL, "NUL in lookup");
	check(authdb_dummy_hash(db) != NULL, "dummy hash");
	authdb_free(db);
}

/* test_bad_users - every refusal with its exact message */
static void
test_bad_users(void)
{
	static const struct {
		const char	*text;
		const char	*err;
	} cases[] = {
		{ "a:ab01FAX.bQRSU\n", "u:1: DES crypt hash refused: use "
		    "yescrypt ($y$), bcrypt ($2b$) or sha512-crypt ($6$)\n" },
		{ "\nb:$1$salt$qJH7.N4xYta3aEG/dfqo/0\n", "u:2: MD5-crypt "
		    "hash refused: use yescrypt ($y$), bcrypt ($2b$) or "
		    "sha512-crypt ($6$)\n" },
		{ "c:$5$salt$Gcm6FsVtF/Qa77ZKD.iwsJlCVPY0XSMgLJL0Hnww/c1\n",
		    "u:1: unsupported hash method: use yescrypt ($y$), bcrypt "
		    "($2b$) or sha512-crypt ($6$)\n" },
		{ "d\n", "u:1: expected login:hash\n" },
		{ "e:\n", "u:1: empty hash\n" },
		{ "f:!locked\n", "u:1: invalid character in hash\n" },
		{ ":$6$x$y\n", "u:1: bad login (1 to 255 printable "
		    "characters, no ':' or blanks)\n" },
		{ "g h:$6$x$y\n", "u:1: bad login (1 to 255 printable "
		    "characters, no ':' or blanks)\n" },
		{ "i:$6$\n", "u:1: malformed hash\n" },
		{ "i:$2b$99$abc\n", "u:1: malformed hash\n" },
		{ "i:$y$\n", "u:1: malformed hash\n" },
		{ "j:$6$a b\n", "u:1: invalid character in hash\n" },
	};
	struct authdb	*db;
	char		*err;
	size_t		 i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		db = NULL;
		err = parse(cases[i].text, 0, &db, &n);
		check(n == 1 && strcmp(err, cases[i].err) == 0,
		    "bad users %zu: %zu errors:\n%s(want %s)", i, n, err,
		    cases[i].err);
		check(authdb_count(db) == 0, "bad users %zu: no user", i);
		free(err);
		authdb_free(db);
	}
}

/* test_verify - right and wrong passwords for every method; duplicates */
static void
test_verify(void)
{
	struct authdb	*db = NULL;
	char		 text[1024], want[64], *err;
	const char	*hs[3];
	size_t		 i, n;

	hs[0] = h_y;
	hs[1] = h_b;
	hs[2] = h_6;
	for (i = 0; i < 3; i++) {
		check(authdb_verify(hs[i], "secret") == 1, "verify %.4s ok",
		    hs[i]);
		check(authdb_verify(hs[i], "Secret") == 0,
		    "verify %.4s wrong", hs[i]);
		check(authdb_verify(hs[i], "") == 0, "verify %.4s empty",
		    hs[i]);
	}
	check(authdb_verify("$6$", "secret") == 0, "broken setting fails");
	snprintf(text, sizeof(text), "x:%s\ny:%s\nx:%s\n", h_6, h_6, h_y);
	err = parse(text, 0, &db, &n);
	snprintf(want, sizeof(want), "u:3: duplicate user \"x\"\n");
	check(n == 1 && strcmp(err, want) == 0, "duplicate: %s", err);
	free(err);
	authdb_free(db);
}

/* test_senders - map entries, "@domain", the login default */
static void
test_senders(void)
{
	static const struct {
		const char	*login;
		const char	*addr;
		int		 ok;
	} cases[] = {
		{ "bob", "bob@example.test", 1 },
		{ "bob", "Bob@Example.TEST", 1 },
		{ "bob", "robert@example.test", 1 },
		{ "bob", "anyone@bob.test", 1 },
		{ "bob", "anyone@BOB.test.", 1 },
		{ "bob", "anyone@sub.bob.test", 0 },
		{ "bob", "bob@other.test", 0 },
		{ "bob", "bob", 0 },
		{ "bob", "", 0 },
		{ "alice@example.test", "alice@example.test", 1 },
		{ "alice@example.test", "ALICE@example.test", 1 },
		{ "alice@example.test", "alice@example.tes", 0 },
		{ "alice@example.test", "x-alice@example.test", 0 },
		{ "carol", "carol", 0 },
		{ "carol", "carol@example.test", 0 },
		{ "dave@example.test", "dave@example.test", 0 },
		{ "dave@example.test", "d@example.test", 1 },
	};
	struct authdb	*db = NULL;
	char		*err;
	size_t		 i, n;

	err = parse("# map\nbob bob@example.test, Robert@example.test "
	    "@bob.test\n\ndave@example.test\td@example.test\n", 1, &db, &n);
	check(n == 0 && strcmp(err, "") == 0, "good map: %s", err);
	free(err);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(authdb_sender_ok(db, cases[i].login, cases[i].addr,
		    strlen(cases[i].addr)) == cases[i].ok,
		    "sender %s as <%s>: want %d", cases[i].login,
		    cases[i].addr, cases[i].ok);
	authdb_free(db);
}

/* test_bad_senders - the map's errors */
static void
test_bad_senders(void)
{
	static const struct {
		const char	*text;
		const char	*err;
	} cases[] = {
		{ "bob\n", "m:1: no addresses for login\n" },
		{ "bob bob\n", "m:1: bad address \"bob\": missing @domain\n" },
		{ "bob @-x.test\n", "m:1: bad domain \"@-x.test\"\n" },
		{ "bob a@b.test\nbob c@d.test\n",
		    "m:2: duplicate login \"bob\"\n" },
		{ "bo:b a@b.test\n", "m:1: bad login (1 to 255 printable "
		    "characters, no ':' or blanks)\n" },
		{ "bob a%c@b.test\n", "m:1: bad address \"a%c@b.test\"\n" },
	};
	struct authdb	*db;
	char		*err;
	size_t		 i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		db = NULL;
		err = parse(cases[i].text, 1, &db, &n);
		check(n == 1 && strcmp(err, cases[i].err) == 0,
		    "bad map %zu: %zu errors:\n%s(want %s)", i, n, err,
		    cases[i].err);
		free(err);
		authdb_free(db);
	}
}

/* test_config - the files through config_load_mem() */
static void
test_config(void)
{
	struct config	*c;
	char		 text[512], users[512], *out = NULL;
	size_t		 outlen = 0;
	FILE		*f;

	snprintf(users, sizeof(users), "bob:%s\n", h_6);
	write_file("users", users);
	write_file("map", "bob bob@example.test\n");
	write_file("badusers", "x:ab01FAX.bQRSU\n");
	snprintf(text, sizeof(text), "listen = 127.0.0.1:2525\n"
	    "auth_users_file = %s/users\nauth_sender_map = %s/map\n"
	    "auth_failure_limit = 3\nauth_failure_delay = 2s\n", tmpdir,
	    tmpdir);
	c = config_load_mem("t.conf", text, strlen(text), stderr);
	check(c != NULL && c->authdb != NULL &&
	    authdb_count(c->authdb) == 1, "config with users");
	if (c != NULL) {
		check(c->auth_failure_limit == 3 &&
		    c->auth_failure_delay == 2 &&
		    c->auth_failure_window == 600, "auth limits");
		check(authdb_sender_ok(c->authdb, "bob", "bob@example.test",
		    16), "map loaded");
		config_free(c);
	}
	snprintf(text, sizeof(text), "listen = 127.0.0.1:2525\n");
	c = config_load_mem("t.conf", text, strlen(text), stderr);
	check(c != NULL && c->authdb == NULL && c->auth_failure_limit == 5 &&
	    c->auth_failure_delay == 1, "no users: no authdb, defaults");
	config_free(c);

	if ((f = open_memstream(&out, &outlen)) == NULL)
		exit(1);
	snprintf(text, sizeof(text), "listen = 127.0.0.1:2525\n"
	    "auth_users_file = %s/badusers\n", tmpdir);
	c = config_load_mem("t.conf", text, strlen(text), f);
	fclose(f);
	check(c == NULL && strstr(out, "/badusers:1: DES crypt hash "
	    "refused") != NULL, "DES refused at load: %s", out);
	free(out);
	config_free(c);

	out = NULL;
	if ((f = open_memstream(&out, &outlen)) == NULL)
		exit(1);
	snprintf(text, sizeof(text), "listen = 127.0.0.1:2525\n"
	    "auth_sender_map = /nonexistent\n"
	    "auth_users_file = /nonexistent/users\n");
	c = config_load_mem("t.conf", text, strlen(text), f);
	fclose(f);
	check(c == NULL && strstr(out, "t.conf:3: "
	    "auth_users_file /nonexistent/users: cannot read: No such file "
	    "or directory\n") != NULL, "missing users file: %s", out);
	free(out);
	config_free(c);

	out = NULL;
	if ((f = open_memstream(&out, &outlen)) == NULL)
		exit(1);
	snprintf(text, sizeof(text), "listen = 127.0.0.1:2525\n"
	    "auth_sender_map = /nonexistent\n");
	c = config_load_mem("t.conf", text, strlen(text), f);
	fclose(f);
	check(c == NULL && strcmp(out, "t.conf:2: auth_sender_map needs "
	    "auth_users_file\n") == 0, "map without users: %s", out);
	free(out);
	config_free(c);
}

int
main(void)
{
	char	 path[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_authdb.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	h_y = mkhash("$y$", 1, "secret");
	h_b = mkhash("$2b$", 4, "secret");
	h_6 = mkhash("$6$", 1000, "secret");

	test_users();
	test_bad_users();
	test_verify();
	test_senders();
	test_bad_senders();
	test_config();

	snprintf(path, sizeof(path), "%s/users", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/map", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/badusers", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	free(h_y);
	free(h_b);
	free(h_6);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
