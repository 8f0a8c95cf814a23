/*
 * smtp-latency.c - the latency client of bench/bench.py, point (e).
 *
 *   smtp-latency [-t SECONDS] HOST PORT SESSIONS COUNT SIZE HELO FROM TO
 *
 * Opens SESSIONS persistent SMTP sessions to HOST:PORT (a numeric IPv4
 * address) and sends COUNT / SESSIONS messages on each, one command at
 * a time: MAIL, RCPT, DATA, then the message (From, To and Subject
 * headers and a body of SIZE bytes in 80-byte lines) with its ".".  It
 * times each end of DATA: from the moment the write of the final "."
 * returned to the moment the read that completed the reply returned.
 *
 * Output on stdout: one line "lat MICROSECONDS" per message, in the
 * order the replies came, then "elapsed SECONDS" (first connect to the
 * last QUIT reply).  Exit 0; 1 at the first failure (a refused command,
 * a closed connection, the time limit, default 300 s), with the reason
 * on stderr; 2 on a usage error.
 *
 * Why C: the asyncio client this replaces used most of a core at 1,000
 * messages/s, and the time a reply waited in its event loop was counted
 * as moat's.  This client spends a few microseconds per message, so the
 * figure is the server's.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAT_MAX_SESSIONS	10000
#define LAT_MAX_COUNT		10000000
#define LAT_MAX_SIZE		(64 * 1024 * 1024)
#define LAT_LINE_MAX		1000	/* RFC 5321 4.5.3.1.5, with CRLF */
#define LAT_IN_CAP		(4 * LAT_LINE_MAX)

enum lat_state {
	LAT_ST_CONNECT,
	LAT_ST_BANNER,
	LAT_ST_EHLO,
	LAT_ST_MAIL,
	LAT_ST_RCPT,
	LAT_ST_DATA,
	LAT_ST_DOT,
	LAT_ST_QUIT,
	LAT_ST_DONE
};

struct lat_session {
	int		 fd;
	enum lat_state	 state;
	long		 left;		/* messages still to send */
	const char	*out;		/* output not yet written */
	size_t		 outlen;
	int		 want_out;	/* EPOLLOUT armed */
	struct timespec	 dot;		/* the "." written */
	char		 in[LAT_IN_CAP];
	size_t		 inlen;
};

static void	 lat_fatal(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static long	 lat_number(const char *, const char *, long, long);
static char	*lat_message(size_t, const char *, const char *, size_t *);
static void	 lat_connect(struct lat_session *, int,
		    const struct sockaddr_in *);
static void	 lat_send(struct lat_session *, int, const char *, size_t);
static void	 lat_flush(struct lat_session *, int);
static int	 lat_read(struct lat_session *, int *);
static void	 lat_reply(struct lat_session *, int, int);
static int64_t	 lat_usec(const struct timespec *, const struct timespec *);

static char	 cmd_ehlo[LAT_LINE_MAX], cmd_mail[LAT_LINE_MAX];
static char	 cmd_rcpt[LAT_LINE_MAX];
static size_t	 cmd_ehlo_len, cmd_mail_len, cmd_rcpt_len;
static char	*message;
static size_t	 message_len;
static int64_t	*lats;
static long	 nlats;
static long	 sessions_open;

int
main(int argc, char *argv[])
{
	struct sockaddr_in	 sin;
	struct epoll_event	 ev[64];
	struct timespec		 start, end, now;
	struct lat_session	*sess;
	long			 nsess, count, per, limit = 300, i;
	size_t			 size;
	int			 ep, n, ch, r;

	while ((ch = getopt(argc, argv, "t:")) != -1) {
		switch (ch) {
		case 't':
			limit = lat_number("-t", optarg, 1, 86400);
			break;
		default:
			goto usage;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 8)
		goto usage;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[0], &sin.sin_addr) != 1)
		lat_fatal("host %s: not an IPv4 address", argv[0]);
	sin.sin_port = htons((uint16_t)lat_number("port", argv[1], 1, 65535));
	nsess = lat_number("sessions", argv[2], 1, LAT_MAX_SESSIONS);
	count = lat_number("count", argv[3], 1, LAT_MAX_COUNT);
	size = (size_t)lat_number("size", argv[4], 0, LAT_MAX_SIZE);
	r = snprintf(cmd_ehlo, sizeof(cmd_ehlo), "EHLO %s\r\n", argv[5]);
	if (r < 0 || (size_t)r >= sizeof(cmd_ehlo))
		lat_fatal("HELO name too long");
	cmd_ehlo_len = (size_t)r;
	r = snprintf(cmd_mail, sizeof(cmd_mail), "MAIL FROM:<%s>\r\n",
	    argv[6]);
	if (r < 0 || (size_t)r >= sizeof(cmd_mail))
		lat_fatal("sender too long");
	cmd_mail_len = (size_t)r;
	r = snprintf(cmd_rcpt, sizeof(cmd_rcpt), "RCPT TO:<%s>\r\n",
	    argv[7]);
	if (r < 0 || (size_t)r >= sizeof(cmd_rcpt))
		lat_fatal("recipient too long");
	cmd_rcpt_len = (size_t)r;
	if ((per = count / nsess) < 1)
		lat_fatal("fewer messages (%ld) than sessions (%ld)", count,
		    nsess);
	message = lat_message(size, argv[6], argv[7], &message_len);
	if ((lats = calloc((size_t)(per * nsess), sizeof(*lats))) == NULL ||
	    (sess = calloc((size_t)nsess, sizeof(*sess))) == NULL)
		lat_fatal("out of memory");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		lat_fatal("epoll_create1: %s", strerror(errno));

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < nsess; i++) {
		sess[i].left = per;
		lat_connect(&sess[i], ep, &sin);
	}
	while (sessions_open > 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (lat_usec(&start, &now) > (int64_t)limit * 1000000)
			lat_fatal("over the time limit of %ld s, %ld replies "
			    "timed", limit, nlats);
		if ((n = epoll_wait(ep, ev, 64, 1000)) == -1) {
			if (errno == EINTR)
				continue;
			lat_fatal("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			struct lat_session *s = ev[i].data.ptr;
			int code;

			if (s->state == LAT_ST_CONNECT) {
				int err = 0;
				socklen_t len = sizeof(err);

				if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR,
				    &err, &len) == -1 || err != 0)
					lat_fatal("connect: %s",
					    strerror(err ? err : errno));
				s->state = LAT_ST_BANNER;
				lat_flush(s, ep);	/* disarms EPOLLOUT */
			}
			if ((ev[i].events & EPOLLOUT) && s->outlen > 0)
				lat_flush(s, ep);
			if (!(ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			r = 0;
			while (s->state != LAT_ST_DONE &&
			    (r = lat_read(s, &code)) == 1)
				lat_reply(s, ep, code);
			if (r == -1 && s->state != LAT_ST_DONE)
				lat_fatal("connection closed in state %d "
				    "(%ld replies timed)", (int)s->state,
				    nlats);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);

	for (i = 0; i < nlats; i++)
		printf("lat %" PRId64 "\n", lats[i]);
	printf("elapsed %.6f\n", (double)lat_usec(&start, &end) / 1e6);
	if (fflush(stdout) == EOF || ferror(stdout))
		lat_fatal("stdout: %s", strerror(errno));
	return 0;

usage:
	fprintf(stderr, "usage: smtp-latency [-t seconds] host port sessions "
	    "count size helo from to\n");
	return 2;
}

static void
lat_fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smtp-latency: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static long
lat_number(const char *what, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		lat_fatal("%s: %s is not a number from %ld to %ld", what, s,
		    min, max);
	return v;
}

/*
 * The same message as bench.py's make_body(): three header lines, an
 * empty line, SIZE bytes of 78 "x" and CRLF per line, then ".".
 */
static char *
lat_message(size_t size, const char *from, const char *to, size_t *lenp)
{
	char *m, *p;
	size_t head, cap, i;
	int r;

	cap = 3 * LAT_LINE_MAX + size + 8;
	if ((m = malloc(cap)) == NULL)
		lat_fatal("out of memory");
	r = snprintf(m, cap, "From: <%s>\r\nTo: <%s>\r\nSubject: bench\r\n"
	    "\r\n", from, to);
	if (r < 0 || (size_t)r >= cap)
		lat_fatal("header too long");
	head = (size_t)r;
	p = m + head;
	for (i = 0; i < size; i++)
		p[i] = (i % 80 >= 78) ? "\r\n"[i % 80 - 78] : 'x';
	/* bench.py cuts the last line and ends it with CRLF */
	if (size >= 2) {
		p[size - 2] = '\r';
		p[size - 1] = '\n';
	}
	memcpy(p + size, ".\r\n", 3);
	*lenp = head + size + 3;
	return m;
}

static void
lat_connect(struct lat_session *s, int ep, const struct sockaddr_in *sin)
{
	struct epoll_event ev;
	int one = 1;

	if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		lat_fatal("socket: %s", strerror(errno));
	if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1)
		lat_fatal("TCP_NODELAY: %s", strerror(errno));
	if (connect(s->fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1 &&
	    errno != EINPROGRESS)
		lat_fatal("connect: %s", strerror(errno));
	s->state = LAT_ST_CONNECT;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = s;
	s->want_out = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) == -1)
		lat_fatal("epoll_ctl: %s", strerror(errno));
	sessions_open++;
}

/* Queue one command or the message and write as much as goes. */
static void
lat_send(struct lat_session *s, int ep, const char *p, size_t len)
{
	if (s->outlen > 0)
		lat_fatal("a command sent before the last one was written");
	s->out = p;
	s->outlen = len;
	lat_flush(s, ep);
}

static void
lat_flush(struct lat_session *s, int ep)
{
	struct epoll_event ev;
	ssize_t n;
	int want;

	while (s->outlen > 0) {
		n = write(s->fd, s->out, s->outlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			lat_fatal("write: %s", strerror(errno));
		}
		s->out += n;
		s->outlen -= (size_t)n;
	}
	if (s->outlen == 0 && s->state == LAT_ST_DOT)
		clock_gettime(CLOCK_MONOTONIC, &s->dot);
	want = s->outlen > 0;
	if (want != s->want_out) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
		ev.data.ptr = s;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) == -1)
			lat_fatal("epoll_ctl: %s", strerror(errno));
		s->want_out = want;
	}
}

/*
 * Take one whole reply out of the input, reading more when it holds
 * none: 1 with its code, 0 when the socket has no more for now, -1 on
 * end of file.  A reply is complete at a line whose fourth byte is not
 * "-".
 */
static int
lat_read(struct lat_session *s, int *code)
{
	char *nl, *line;
	size_t used;
	ssize_t n;

	for (;;) {
		line = s->in;
		while ((nl = memchr(line, '\n', s->inlen -
		    (size_t)(line - s->in))) != NULL) {
			size_t ll = (size_t)(nl - line) + 1;

			if (ll < 5 || line[0] < '2' || line[0] > '5' ||
			    line[1] < '0' || line[1] > '9' ||
			    line[2] < '0' || line[2] > '9' ||
			    (line[3] != ' ' && line[3] != '-' &&
			    line[3] != '\r'))
				lat_fatal("not an SMTP reply: %.*s",
				    (int)(ll > 80 ? 80 : ll), line);
			if (line[3] != '-') {
				*code = (line[0] - '0') * 100 +
				    (line[1] - '0') * 10 + (line[2] - '0');
				used = (size_t)(nl + 1 - s->in);
				memmove(s->in, nl + 1, s->inlen - used);
				s->inlen -= used;
				return 1;
			}
			line = nl + 1;
		}
		if (s->inlen == sizeof(s->in))
			lat_fatal("reply too long");
		n = read(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			lat_fatal("read: %s", strerror(errno));
		}
		if (n == 0)
			return -1;
		s->inlen += (size_t)n;
	}
}

static void
lat_reply(struct lat_session *s, int ep, int code)
{
	struct timespec now;
	static const int want[] = {
		[LAT_ST_BANNER] = 220, [LAT_ST_EHLO] = 250,
		[LAT_ST_MAIL] = 250, [LAT_ST_RCPT] = 250,
		[LAT_ST_DATA] = 354, [LAT_ST_DOT] = 250,
		[LAT_ST_QUIT] = 221
	};

	if (s->state < LAT_ST_BANNER || s->state > LAT_ST_QUIT)
		lat_fatal("a reply in state %d", (int)s->state);
	if (code != want[s->state])
		lat_fatal("reply %d in state %d, expected %d", code,
		    (int)s->state, want[s->state]);
	switch (s->state) {
	case LAT_ST_DOT:
		if (s->outlen > 0)
			lat_fatal("a reply to a message not yet sent");
		clock_gettime(CLOCK_MONOTONIC, &now);
		lats[nlats++] = lat_usec(&s->dot, &now);
		s->left--;
		/* FALLTHROUGH */
	case LAT_ST_EHLO:
		if (s->left > 0) {
			s->state = LAT_ST_MAIL;
			lat_send(s, ep, cmd_mail, cmd_mail_len);
		} else {
			s->state = LAT_ST_QUIT;
			lat_send(s, ep, "QUIT\r\n", 6);
		}
		break;
	case LAT_ST_BANNER:
		s->state = LAT_ST_EHLO;
		lat_send(s, ep, cmd_ehlo, cmd_ehlo_len);
		break;
	case LAT_ST_MAIL:
		s->state = LAT_ST_RCPT;
		lat_send(s, ep, cmd_rcpt, cmd_rcpt_len);
		break;
	case LAT_ST_RCPT:
		s->state = LAT_ST_DATA;
		lat_send(s, ep, "DATA\r\n", 6);
		break;
	case LAT_ST_DATA:
		s->state = LAT_ST_DOT;
		lat_send(s, ep, message, message_len);
		break;
	case LAT_ST_QUIT:
		s->state = LAT_ST_DONE;
		if (epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL) == -1)
			lat_fatal("epoll_ctl: %s", strerror(errno));
		close(s->fd);
		s->fd = -1;
		sessions_open--;
		break;
	default:
		lat_fatal("a reply in state %d", (int)s->state);
	}
}

static int64_t
lat_usec(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000 +
	    (b->tv_nsec - a->tv_nsec) / 1000;
}
