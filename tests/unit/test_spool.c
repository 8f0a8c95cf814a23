/*
 * test_spool.c - queue ids, the spool writer/reader round trip, refusal
 * of corrupt files, and spool_create() in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "common/spool.h"
#include "smtp_in/smtp_parse.h"
#include "unit.h"

static void	test_qid(void);
static const char *qid_pid_chars(pid_t, char [5]);
static void	fill_env(struct envelope *);
static int	write_msg(struct envelope *, const char *, size_t, char *,
		    size_t);
static void	test_roundtrip(void);
static int	slurp(const char *, struct buf *);
static void	test_corrupt(void);
static void	test_create(void);
static void	test_load_recycle(void);
static int	rm_one(const char *, const struct stat *, int, struct FTW *);

static char	 topdir[] = "/tmp/test_spool.XXXXXX";

/* mutations of a valid file; each must be refused */
struct corrupt_case {
	const char	*name;
	const char	*from;		/* replace first occurrence ... */
	const char	*to;		/* ... with this */
	int		 cut;		/* or drop this many trailing octets */
	int		 add;		/* or append this many octets */
};

static const struct corrupt_case corrupt_cases[] = {
	{ "short by one", NULL, NULL, 1, 0 },
	{ "no END", NULL, NULL, 4, 0 },
	{ "longer by one", NULL, NULL, 0, 1 },
	{ "bad END", "END\n", "ENX\n", 0, 0 },
	{ "bad magic", "MOAT-SPOOL 1", "MOAT-SPOOL 2", 0, 0 },
	{ "unknown record", "helo ", "hola ", 0, 0 },
	{ "missing rcpt", "rcpt a@b.test\nrcpt c@d.test\n", "", 0, 0 },
	{ "out of order", "body 8BITMIME\nsmtputf8 0\n",
	    "smtputf8 0\nbody 8BITMIME\n", 0, 0 },
	{ "repeated from", "from <", "from x\nfrom <", 0, 0 },
	{ "bad qid", "qid ", "qid a", 0, 0 },
	{ "bad proto", "proto ESMTP", "proto HTTP1", 0, 0 },
	{ "bad body", "body 8BITMIME", "body 9BITMIME", 0, 0 },
	{ "bad smtputf8", "smtputf8 0", "smtputf8 2", 0, 0 },
	{ "size too big", "size 0000", "size 0001", 0, 0 },
	{ "size not digits", "size 0000000000000", "size 000000000000-", 0, 0 },
	{ "size too small", "18\ndata", "17\ndata", 0, 0 },
	{ "size short", "size 0", "size ", 0, 0 },
	{ "control char", "helo mx.example", "helo m\tx.example", 0, 0 },
	{ "NUL in value", "client_name mx", "client_name m\0", 0, 0 },
	{ "CR in value", "client_name mx", "client_name m\r", 0, 0 },
	{ "empty rcpt", "rcpt a@b.test", "rcpt ", 0, 0 },
	{ "data with value", "data\n", "data x", 0, 0 },
	{ "no space", "smtputf8 0", "smtputf8_0", 0, 0 },
	{ "negative time", "time 1", "time -", 0, 0 },
};

int
main(void)
{
	if (mkdtemp(topdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_qid();
	test_roundtrip();
	test_corrupt();
	test_create();
	test_load_recycle();
	if (chdir("/") == 0)
		(void)nftw(topdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}

static void
test_qid(void)
{
	static const struct {
		const char	*s;
		size_t		 len;
		int		 valid;
	} cases[] = {
		{ "0123456789ABCDEF", 16, 1 },
		{ "GHJKMNPQRSTVWXYZ", 16, 1 },
		{ "0123456789ABCDE", 15, 0 },
		{ "0123456789ABCDEFG", 17, 0 },
		{ "0123456789ABCDEI", 16, 0 },
		{ "0123456789ABCDEU", 16, 0 },
		{ "0123456789abcdef", 16, 0 },
		{ "0123456789ABCD/F", 16, 0 },
		{ "0123456789ABCD\0F", 16, 0 },
		{ "0123456789ABCD.F", 16, 0 },
	};
	char	 prev[QID_SIZE], q[QID_SIZE], cq[QID_SIZE], pidc[5];
	size_t	 i;
	pid_t	 child = -1;
	int	 ordered = 1, valid = 1, pfd[2], st;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(qid_valid(cases[i].s, cases[i].len) == cases[i].valid,
		    "qid_valid case %zu", i);
	qid_make(prev);
	for (i = 0; i < 10000; i++) {
		qid_make(q);
		if (!qid_valid(q, strlen(q)))
			valid = 0;
		/* strictly increasing implies unique */
		if (strcmp(prev, q) >= 0)
			ordered = 0;
		memcpy(prev, q, sizeof(q));
	}
	CHECK(valid, "qid_make gives valid ids");
	CHECK(ordered, "qid_make ids strictly increase");

	/* chars 11..14: the pid, looked up again after a fork */
	CHECK(strncmp(q + 11, qid_pid_chars(getpid(), pidc), 4) == 0,
	    "pid part %.4s", q + 11);
	if (pipe(pfd) == 0) {
		if ((child = fork()) == 0) {
			qid_make(q);
			_exit(write(pfd[1], q, QID_SIZE) == QID_SIZE ? 0 : 1);
		}
		close(pfd[1]);
		CHECK(child > 0 && read(pfd[0], cq, QID_SIZE) == QID_SIZE &&
		    waitpid(child, &st, 0) == child &&
		    strncmp(cq + 11, qid_pid_chars(child, pidc), 4) == 0,
		    "child's pid part %.4s", cq + 11);
		close(pfd[0]);
	}
}

/* qid_pid_chars - the 4 id characters of pid (low 20 bits) */
static const char *
qid_pid_chars(pid_t pid, char out[5])
{
	static const char	 a[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned long		 v = (unsigned long)pid;
	int			 i;

	for (i = 3; i >= 0; i--, v >>= 5)
		out[i] = a[v & 31];
	out[4] = '\0';
	return out;
}

static void
fill_env(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
	env->arrival = 1700000000;
	snprintf(env->client_addr, sizeof(env->client_addr), "192.0.2.1");
	snprintf(env->client_name, sizeof(env->client_name), "mx.example");
	snprintf(env->helo, sizeof(env->helo), "mx.example");
	snprintf(env->proto, sizeof(env->proto), "ESMTP");
	env->body = BODY_8BITMIME;
	envelope_set_sender(env, "<s@example.test>", 16);
	envelope_add_rcpt(env, "a@b.test", 8);
	envelope_add_rcpt(env, "c@d.test", 8);
}

/* write_msg - write one message to tmp/, commit it to incoming/ */
static int
write_msg(struct envelope *env, const char *content, size_t len, char *path,
    size_t pathsz)
{
	struct spool_msg	 m;
	size_t			 off, n;

	if (spool_msg_open(&m, env, "tmp", "") == -1)
		return -1;
	/* uneven pieces exercise the write-behind buffer */
	for (off = 0; off < len; off += n) {
		n = len - off < 7777 ? len - off : 7777;
		if (off > 100000 && len - off > 70000)
			n = 70000;
		if (spool_msg_write(&m, content + off, n) == -1)
			goto fail;
	}
	if (spool_msg_finish(&m) == -1 || spool_msg_commit(&m, "incoming") ==
	    -1)
		goto fail;
	snprintf(path, pathsz, "%s", m.path);
	return 0;
fail:
	spool_msg_abort(&m);
	return -1;
}

static void
test_roundtrip(void)
{
	struct envelope	 env, rd;
	struct spool_msg m;
	struct stat	 st;
	char		 path[64], *content, *back;
	const char	*why = NULL;
	size_t		 len = 300000, i;
	int		 fd, r;

	CHECK(chdir(topdir) == 0, "chdir");
	mkdir("tmp", 0700);
	mkdir("incoming", 0700);
	mkdir("maildrop", 01733);
	content = malloc(len);
	back = malloc(len);
	for (i = 0; i < len; i++)
		content[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' :
		    (char)('a' + i % 26);
	fill_env(&env);
	CHECK(write_msg(&env, content, len, path, sizeof(path)) == 0,
	    "write_msg");
	CHECK(strncmp(path, "incoming/", 9) == 0 && strcmp(path + 9,
	    env.qid) == 0, "committed path %s", path);
	fd = open(path, O_RDONLY);
	r = spool_msg_read(fd, &rd, &why);
	CHECK(r == 0, "read back: %s", r ? why : "");
	if (r == 0) {
		CHECK(strcmp(rd.qid, env.qid) == 0, "qid");
		CHECK(rd.arrival == 1700000000, "arrival");
		CHECK(strcmp(rd.client_addr, "192.0.2.1") == 0, "client");
		CHECK(strcmp(rd.helo, "mx.example") == 0, "helo");
		CHECK(strcmp(rd.proto, "ESMTP") == 0, "proto");
		CHECK(rd.auth[0] == '\0', "auth");
		CHECK(rd.body == BODY_8BITMIME, "body");
		CHECK(strcmp(rd.sender, "<s@example.test>") == 0, "sender");
		CHECK(rd.nrcpt == 2 && strcmp(rd.rcpt[1], "c@d.test") == 0,
		    "rcpts");
		CHECK(rd.size == len, "size %zu", rd.size);
		CHECK(pread(fd, back, len, rd.data_off) == (ssize_t)len &&
		    memcmp(back, content, len) == 0, "content");
	}
	envelope_free(&rd);
	close(fd);

	/* null sender, auth, many recipients, empty content */
	envelope_free(&env);
	fill_env(&env);
	envelope_set_sender(&env, "", 0);
	snprintf(env.auth, sizeof(env.auth), "alice");
	for (i = 0; i < 500; i++)
		envelope_add_rcpt(&env, "x@y.test", 8);
	CHECK(write_msg(&env, "", 0, path, sizeof(path)) == 0, "empty");
	fd = open(path, O_RDONLY);
	r = spool_msg_read(fd, &rd, &why);
	CHECK(r == 0 && rd.sender[0] == '\0' && rd.nrcpt == 502 &&
	    strcmp(rd.auth, "alice") == 0 && rd.size == 0, "empty read back");
	envelope_free(&rd);
	close(fd);

	/* a recipient with LF cannot be added; one with CR neither */
	CHECK(envelope_add_rcpt(&env, "a\nb", 3) == -1, "LF rcpt refused");
	CHECK(envelope_set_sender(&env, "a\rb", 3) == -1, "CR sender refused");

	/* abort removes the file; maildrop files are readable by moat */
	CHECK(spool_msg_open(&m, &env, "maildrop", ".part") == 0, "open md");
	CHECK(fstat(m.fd, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "maildrop mode");
	snprintf(path, sizeof(path), "%s", m.path);
	spool_msg_abort(&m);
	CHECK(access(path, F_OK) == -1 && errno == ENOENT, "abort unlinks");

	/* a header section over 64 KiB is refused by the writer */
	for (i = 0; i < 9000; i++)
		envelope_add_rcpt(&env, "x@y.test", 8);
	CHECK(spool_msg_open(&m, &env, "tmp", "") == -1, "huge header");
	envelope_free(&env);
	free(content);
	free(back);
}

static int
slurp(const char *path, struct buf *b)
{
	char	 tmp[8192];
	ssize_t	 n;
	int	 fd;

	buf_reset(b);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(b, tmp, (size_t)n);
	close(fd);
	return 0;
}

static void
test_corrupt(void)
{
	const struct corrupt_case *c;
	struct envelope	 env, rd;
	struct buf	 good, bad;
	char		 path[64], *hit;
	const char	*why;
	size_t		 i, fromlen, tolen, off;
	int		 fd, r1, r2;

	buf_init(&good, 0);
	buf_init(&bad, 0);
	fill_env(&env);
	CHECK(write_msg(&env, "Subject: x\r\n\r\nhi\r\n", 18, path,
	    sizeof(path)) == 0, "write good");
	CHECK(slurp(path, &good) == 0, "slurp");
	CHECK(spool_msg_parse(good.data, good.len, &rd, &why) == 0,
	    "good parses");
	envelope_free(&rd);
	for (i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]);
	    i++) {
		c = &corrupt_cases[i];
		buf_reset(&bad);
		if (c->from != NULL) {
			fromlen = strlen(c->from);
			/* "\0" in to: explicit length via the from length */
			tolen = strcmp(c->name, "NUL in value") == 0 ?
			    fromlen : strlen(c->to);
			hit = memmem(good.data, good.len, c->from, fromlen);
			if (hit == NULL) {
				CHECK(0, "%s: pattern not found", c->name);
				continue;
			}
			off = (size_t)(hit - good.data);
			buf_append(&bad, good.data, off);
			buf_append(&bad, c->to, tolen);
			buf_append(&bad, hit + fromlen, good.len - off -
			    fromlen);
		} else {
			buf_append(&bad, good.data, good.len - (size_t)c->cut);
			if (c->add)
				buf_append(&bad, "x", 1);
		}
		why = NULL;
		r1 = spool_msg_parse(bad.data, bad.len, &rd, &why);
		CHECK(r1 == -1 && why != NULL && rd.sender == NULL,
		    "%s: parse accepted", c->name);
		envelope_free(&rd);
		fd = open("tmp/corrupt", O_RDWR | O_CREAT | O_TRUNC, 0600);
		(void)!write(fd, bad.data, bad.len);
		why = NULL;
		r2 = spool_msg_read(fd, &rd, &why);
		CHECK(r2 == -1 && why != NULL, "%s: read accepted", c->name);
		envelope_free(&rd);
		close(fd);
	}
	envelope_free(&env);
	buf_free(&good);
	buf_free(&bad);
}

static void
test_create(void)
{
	static const struct {
		const char	*name;
		mode_t		 mode;
	} dirs[] = {
		{ "sp/tmp", 0700 }, { "sp/incoming", 0700 },
		{ "sp/queue", 0700 }, { "sp/hold", 0700 },
		{ "sp/quarantine", 0700 }, { "sp/maildrop", 01733 },
		{ "sp/free", 0700 },
	};
	struct stat	 st;
	size_t		 i;

	CHECK(chdir(topdir) == 0, "chdir");
	mkdir("sp", 0755);
	mkdir("sp/queue", 0755);	/* wrong mode: must be fixed */
	CHECK(spool_create("sp", getuid(), getgid()) == 0, "create");
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		CHECK(lstat(dirs[i].name, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (st.st_mode & 07777) == dirs[i].mode, "%s mode",
		    dirs[i].name);
	CHECK(spool_create("deep/a/b", getuid(), getgid()) == 0, "mkdir -p");
	CHECK(symlink("sp", "link") == 0, "symlink");
	CHECK(spool_create("link", getuid(), getgid()) == -1,
	    "symlinked spool refused");
	mkdir("sp2", 0755);
	CHECK(symlink("/tmp", "sp2/hold") == 0, "symlink hold");
	CHECK(spool_create("sp2", getuid(), getgid()) == -1,
	    "symlinked subdir refused");
	if (getuid() == 0) {
		mkdir("sp3", 0755);
		CHECK(chown("sp3", 4242, 4242) == 0, "chown");
		CHECK(spool_create("sp3", 1000, 1000) == -1,
		    "foreign owner refused");
		CHECK(spool_create("sp", 4243, 4243) == 0 &&
		    stat("sp/queue", &st) == 0 && st.st_uid == 4243,
		    "owner fixed");
	}
}

/*
 * test_load_recycle - spool_msg_load hands over a small file whole (and
 * refuses a bad END from memory), not a large one; spool_msg_begin
 * takes a file of free/, overwrites it and cuts it to its new length
 */
static void
test_load_recycle(void)
{
	struct envelope	 env, rd;
	struct spool_msg m;
	struct stat	 st, st2;
	char		 path[64], *content, *data;
	const char	*why = NULL;
	size_t		 len = 100000, dlen, i;
	int		 fd, r;

	CHECK(chdir(topdir) == 0, "chdir");
	content = malloc(len);
	for (i = 0; i < len; i++)
		content[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : 'q';
	fill_env(&env);

	/* small: whole, the END checked in memory */
	CHECK(write_msg(&env, content, 1000, path, sizeof(path)) == 0, "w");
	fd = open(path, O_RDONLY);
	r = spool_msg_load(fd, &rd, &why, &data, &dlen);
	CHECK(r == 0 && data != NULL && fstat(fd, &st) == 0 &&
	    dlen == (size_t)st.st_size && rd.size == 1000 &&
	    memcmp(data + rd.data_off, content, 1000) == 0 &&
	    memcmp(data + dlen - 4, "END\n", 4) == 0, "small load");
	free(data);
	envelope_free(&rd);
	CHECK(pwrite(fd, "XND\n", 4, st.st_size - 4) == -1, "fd is O_RDONLY");
	close(fd);
	fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "XND\n", 4, st.st_size - 4) == 4, "spoil END");
	r = spool_msg_load(fd, &rd, &why, &data, &dlen);
	CHECK(r == -1 && data == NULL && strcmp(why, "missing END record") ==
	    0, "bad END in memory: %s", r ? why : "accepted");
	close(fd);
	unlink(path);

	/* large: no copy, still read and checked */
	CHECK(write_msg(&env, content, len, path, sizeof(path)) == 0, "w");
	fd = open(path, O_RDONLY);
	r = spool_msg_load(fd, &rd, &why, &data, &dlen);
	CHECK(r == 0 && data == NULL && dlen == 0 && rd.size == len,
	    "large load");
	envelope_free(&rd);
	close(fd);

	/* recycle: the large file becomes the next, short message */
	mkdir("free", 0700);
	CHECK(stat(path, &st) == 0 && rename(path, "free/0000000000000000") ==
	    0, "into free/");
	CHECK(spool_msg_begin(&m, &env, "tmp", "") == 0 &&
	    spool_msg_write(&m, content, 500) == 0 &&
	    spool_msg_finish(&m) == 0 && m.reused, "recycled write");
	CHECK(fstat(m.fd, &st2) == 0 && st2.st_ino == st.st_ino &&
	    st2.st_size == m.written && st2.st_size < 1000, "same inode, cut");
	CHECK(spool_msg_commit(&m, "incoming") == 0, "commit");
	CHECK(access("free/0000000000000000", F_OK) == -1, "taken from free/");
	fd = open(m.path, O_RDONLY);
	r = spool_msg_read(fd, &rd, &why);
	CHECK(r == 0 && rd.size == 500, "recycled reads back: %s",
	    r ? why : "");
	envelope_free(&rd);
	close(fd);
	unlink(m.path);

	/* free/ empty: a new file (listed again after 50 ms at the earliest) */
	CHECK(spool_msg_begin(&m, &env, "tmp", "") == 0 &&
	    spool_msg_write(&m, content, 10) == 0 &&
	    spool_msg_finish(&m) == 0 && !m.reused, "new file");
	spool_msg_abort(&m);
	envelope_free(&env);
	free(content);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)remove(path);
	return 0;
}
