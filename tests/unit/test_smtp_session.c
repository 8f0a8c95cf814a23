/*
 * test_smtp_session.c - smtp-in sessions driven in-process: a session
 * on one end of a socketpair, the test as the client on the other, the
 * real event loop, parser, spool and commit threads in between.
 *
 * Each case sends its input in one write (pipelined) and checks the
 * reply codes in order, whether the server closed, and what reached
 * incoming/.  At the end tmp/ must be empty and every session freed
 * (ASan's leak check covers the rest).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/bufferevent.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "common/config.h"
#include "common/spool.h"
#include "smtp_in/smtp_in.h"
#include "unit.h"

#define OUTSIDE		"192.0.2.1"	/* not in relay_networks */
#define INSIDE		"10.1.2.3"	/* in relay_networks */
#define CASE_SECONDS	5

struct session_case {
	const char	*name;
	const char	*client;	/* source address */
	const char	*input;		/* sent in one write */
	size_t		 inlen;		/* 0 = strlen(input) */
	const char	*codes;		/* expected replies: "220 250 ..." */
	int		 eof;		/* server must close after them */
	int		 queued;	/* messages expected in incoming/ */
	int		 halfclose;	/* shut down our write side */
};

#define EHLO	"EHLO client.test\r\n"
#define TXN	"MAIL FROM:<a@remote.test>\r\nRCPT TO:<u@example.test>\r\n"
#define NUL_INPUT EHLO "NOOP\nMAIL FROM:<a\0b@c.test>\r\nNOOP\r\n"

static const struct session_case cases[] = {
	{ "pipelined message", OUTSIDE,
	    EHLO TXN "DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n", 0,
	    "220 250 250 250 354 250 221", 1, 1, 0 },
	{ "relay denied outside", OUTSIDE,
	    EHLO "MAIL FROM:<>\r\nRCPT TO:<x@other.test>\r\n"
	    "RCPT TO:<u@[10.0.0.1]>\r\nRCPT TO:<Postmaster>\r\nQUIT\r\n", 0,
	    "220 250 250 550 550 250 221", 1, 0, 0 },
	{ "relay allowed inside", INSIDE,
	    EHLO "MAIL FROM:<me@example.test>\r\nRCPT TO:<x@other.test>\r\n"
	    "QUIT\r\n", 0, "220 250 250 250 221", 1, 0, 0 },
	{ "spoof and routing", OUTSIDE,
	    EHLO "MAIL FROM:<me@Example.Test.>\r\nMAIL FROM:<>\r\n"
	    "RCPT TO:<a%b@example.test>\r\n"
	    "RCPT TO:<postmaster@example.test>\r\nQUIT\r\n", 0,
	    "220 250 550 250 550 250 221", 1, 0, 0 },
	{ "unknown verb", OUTSIDE, EHLO "XYZZY\r\nNOOP\r\n", 0,
	    "220 250 421", 1, 0, 0 },
	{ "vrfy not listed", OUTSIDE, "VRFY root\r\n", 0, "220 421", 1, 0,
	    0 },
	{ "over-long argument", OUTSIDE,
	    "HELO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaa\r\n", 0, "220 421", 1, 0, 0 },
	{ "sequence", OUTSIDE,
	    "MAIL FROM:<>\r\nHELO x\r\nMAIL FROM:<>\r\nDATA\r\n"
	    "RSET\r\nNOOP\r\nHELP\r\nQUIT\r\n", 0,
	    "220 503 250 250 503 250 250 214 221", 1, 0, 0 },
	{ "params", OUTSIDE,
	    EHLO "MAIL FROM:a@b\r\nMAIL FROM:<a@b.test> FOO=1\r\n"
	    "MAIL FROM:<a@b.test> SIZE=99999999\r\nQUIT\r\n", 0,
	    "220 250 501 555 552 221", 1, 0, 0 },
	{ "bare LF and NUL in commands", OUTSIDE, NUL_INPUT,
	    sizeof(NUL_INPUT) - 1,
	    "220 250 500 500 250", 0, 0, 0 },
	{ "too many errors", OUTSIDE,
	    EHLO "MAIL FROM:x\r\nMAIL FROM:x\r\nMAIL FROM:x\r\nNOOP\r\n", 0,
	    "220 250 501 501 421", 1, 0, 0 },
	{ "bare LF in DATA", OUTSIDE,
	    EHLO TXN "DATA\r\nSubject: x\r\n\r\nbody\n.\nMAIL FROM:<e@x>\r\n"
	    "\r\n.\r\nNOOP\r\n", 0, "220 250 250 250 354 550 250", 0, 0, 0 },
	{ "BDAT chunks", OUTSIDE,
	    EHLO TXN "BDAT 5\r\nab\r\ncBDAT 3 LAST\r\nd\r\nQUIT\r\n", 0,
	    "220 250 250 250 250 250 221", 1, 1, 0 },
	{ "refused BDAT discarded", OUTSIDE,
	    EHLO "BDAT 6\r\nNOOP\r\nNOOP\r\n", 0, "220 250 503 250", 0, 0,
	    0 },
	{ "DATA after BDAT", OUTSIDE,
	    EHLO TXN "BDAT 1\r\nxDATA\r\nRSET\r\n", 0,
	    "220 250 250 250 250 503 250", 0, 0, 0 },
	{ "max recipients", OUTSIDE,
	    EHLO "MAIL FROM:<>\r\nRCPT TO:<a@example.test>\r\n"
	    "RCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n"
	    "RCPT TO:<d@example.test>\r\n", 0,
	    "220 250 250 250 250 250 452", 0, 0, 0 },
	{ "half close", OUTSIDE,
	    EHLO TXN "DATA\r\nSubject: h\r\n\r\nx\r\n.\r\nNOOP\r\n", 0,
	    "220 250 250 250 354 250 250", 1, 1, 1 },
	{ "STARTTLS without certificate", OUTSIDE,
	    EHLO "STARTTLS\r\nNOOP\r\n", 0, "220 250 502 250", 0, 0, 0 },
};

static struct smtp_server	 srv;
static char			 topdir[] = "/tmp/test_smtp_session.XXXXXX";

static void	setup(void);
static void	run_case(const struct session_case *);
static size_t	count_replies(const struct buf *, char *, size_t);
static int	count_dir(const char *);
static void	pump(int);
static int	rm_one(const char *, const struct stat *, int, struct FTW *);

static const char conf_text[] =
    "hostname = mx.example.test\n"
    "listen = 127.0.0.1:0\n"
    "spool_dir = %s/spool\n"
    "local_domains = example.test\n"
    "relay_networks = 10.0.0.0/8\n"
    "message_size_limit = 10K\n"
    "max_recipients = 3\n"
    "max_errors = 3\n";

int
main(void)
{
	size_t	 i;
	int	 before;

	log_init(0);
	setup();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		before = count_dir("incoming");
		run_case(&cases[i]);
		CHECK(count_dir("incoming") - before == cases[i].queued,
		    "%s: %d queued, want %d", cases[i].name,
		    count_dir("incoming") - before, cases[i].queued);
	}
	CHECK(count_dir("tmp") == 0, "tmp/ holds %d files", count_dir("tmp"));
	CHECK(srv.nsessions == 0, "%zu sessions left", srv.nsessions);
	if (chdir("/") == 0)
		nftw(topdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}

/* setup - a config, a spool, and the smtp-in globals without listeners */
static void
setup(void)
{
	char		 path[256];
	FILE		*f;
	struct config	*conf;

	if (mkdtemp(topdir) == NULL)
		fatal("mkdtemp");
	snprintf(path, sizeof(path), "%s/moat.conf", topdir);
	if ((f = fopen(path, "w")) == NULL)
		fatal("fopen");
	fprintf(f, conf_text, topdir);
	fclose(f);
	if ((conf = config_load(path, stderr)) == NULL)
		fatalx("config_load failed");
	if (spool_create(conf->spool_dir, getuid(), getgid()) == -1 ||
	    chdir(conf->spool_dir) == -1)
		fatal("spool");
	smtp_srv = &srv;
	srv.conf = conf;
	TAILQ_INIT(&srv.sessions);
	/* as compute_linecap(): AUTH:1024 is the longest default rule */
	srv.linecap = 4 + 1 + 1024 + 2;
	srv.cmd_tv.tv_sec = CASE_SECONDS;
	srv.data_tv.tv_sec = CASE_SECONDS;
	if ((srv.base = event_base_new()) == NULL ||
	    smtp_ehlo_build(&srv) == -1 || smtp_commit_init(srv.base, 4) == -1)
		fatalx("setup");
}

/* run_case - one session over a socketpair */
static void
run_case(const struct session_case *c)
{
	struct sockaddr_in	 sin;
	struct smtp_session	*s;
	struct bufferevent	*bev;
	struct buf		 in;
	char			 codes[256], rbuf[4096];
	size_t			 len = c->inlen ? c->inlen : strlen(c->input);
	size_t			 want, off = 0;
	int			 sv[2], eof = 0;
	time_t			 end;
	ssize_t			 n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		fatal("socketpair");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, c->client, &sin.sin_addr);
	if ((s = smtp_session_new(sv[0], (struct sockaddr *)&sin,
	    LK_MX)) == NULL ||
	    (bev = bufferevent_socket_new(srv.base, sv[0], 0)) == NULL)
		fatalx("session");
	TAILQ_INSERT_TAIL(&srv.sessions, s, entry);
	srv.nsessions++;
	smtp_session_start(s, bev);

	buf_init(&in, 0);
	want = (strlen(c->codes) + 1) / 4;
	end = time(NULL) + CASE_SECONDS;
	while (time(NULL) < end) {
		if (off < len && (n = write(sv[1], c->input + off,
		    len - off)) > 0)
			off += (size_t)n;
		if (off == len && c->halfclose)
			shutdown(sv[1], SHUT_WR);
		pump(10);
		while ((n = read(sv[1], rbuf, sizeof(rbuf))) > 0)
			buf_append(&in, rbuf, (size_t)n);
		if (n == 0) {
			eof = 1;
			break;
		}
		if (count_replies(&in, codes, sizeof(codes)) >= want &&
		    !c->eof)
			break;
	}
	count_replies(&in, codes, sizeof(codes));
	CHECK(strcmp(codes, c->codes) == 0, "%s: replies \"%s\", want \"%s\"",
	    c->name, codes, c->codes);
	CHECK(eof == c->eof, "%s: eof %d, want %d", c->name, eof, c->eof);
	close(sv[1]);
	/* let the session see the close and free itself */
	for (end = time(NULL) + CASE_SECONDS; srv.nsessions > 0 &&
	    time(NULL) < end; )
		pump(10);
	CHECK(srv.nsessions == 0, "%s: session not freed", c->name);
	buf_free(&in);
}

/* pump - run the loop for about ms milliseconds */
static void
pump(int ms)
{
	struct timeval	 tv = { 0, ms * 1000 };

	event_base_loopexit(srv.base, &tv);
	event_base_dispatch(srv.base);
}

/* count_replies - the codes of the complete replies, space separated */
static size_t
count_replies(const struct buf *b, char *codes, size_t sz)
{
	size_t	 i = 0, n = 0, o = 0;
	char	*eol;

	codes[0] = '\0';
	while (b->data != NULL && i < b->len &&
	    (eol = memmem(b->data + i, b->len - i, "\r\n", 2)) != NULL) {
		if ((size_t)(eol - (b->data + i)) >= 4 &&
		    b->data[i + 3] == ' ' && o + 5 < sz) {
			if (o > 0)
				codes[o++] = ' ';
			memcpy(codes + o, b->data + i, 3);
			o += 3;
			codes[o] = '\0';
			n++;
		}
		i = (size_t)(eol - b->data) + 2;
	}
	return n;
}

/* count_dir - entries in a spool subdirectory */
static int
count_dir(const char *dir)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}
