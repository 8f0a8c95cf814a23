/*
 * clamd.c - clamd INSTREAM client (see clamd.h).
 *
 * One connection per scan, as clamdscan and the milters do; INSTREAM is
 * the one clamd command that needs no shared file system, which suits a
 * chrooted smtp-in.  The state is a handful of flags: the result is
 * "latched" once known (a reply, or the first failure), the connection
 * is closed at that moment, and the latched result is delivered through
 * a zero-delay event once the caller has called clamd_finish(); that
 * keeps every callback in the event loop and exactly one per scan.
 *
 * clamd drops a stream that stays idle longer than its ReadTimeout
 * (120 s by default), so a caller feeding from a slow SMTP client
 * should rather scan from the spool file after the message is in.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "clamd.h"
#include "config.h"

#define CLAMD_CMD		"zINSTREAM"	/* sent with its NUL */
#define CLAMD_TIMEOUT_DEF	60000		/* ms */
#define CLAMD_MAX_SIZE_DEF	(25UL << 20)	/* clamd's StreamMaxLength */

struct clamd_scan {
	struct bufferevent	*bev;		/* NULL once latched */
	struct event		*done_ev;	/* delivers the result */
	clamd_cb		 cb;
	void			*arg;
	struct timeval		 tv;
	size_t			 max_size;
	size_t			 sent;		/* message octets queued */
	int			 truncated;
	int			 finished;	/* clamd_finish() called */
	int			 latched;	/* status and name are final */
	enum clamd_status	 status;
	char			 name[CLAMD_NAME_MAX + 1];
};

static void	latch(struct clamd_scan *, enum clamd_status, const char *);
static void	latch_reply(struct clamd_scan *, struct evbuffer *, int);
static void	close_conn(struct clamd_scan *);
static void	deliver_cb(evutil_socket_t, short, void *);
static void	read_cb(struct bufferevent *, void *);
static void	event_cb(struct bufferevent *, short, void *);
static void	copy_printable(char *, const char *, size_t);
static int	has_suffix(const char *, size_t, const char *);

/* clamd_start - connect and send the command */
struct clamd_scan *
clamd_start(struct event_base *base, const struct clamd_conf *conf,
    clamd_cb cb, void *arg)
{
	struct clamd_scan	*s;
	unsigned		 ms;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->cb = cb;
	s->arg = arg;
	ms = conf->timeout_ms != 0 ? conf->timeout_ms : CLAMD_TIMEOUT_DEF;
	s->tv.tv_sec = ms / 1000;
	s->tv.tv_usec = (ms % 1000) * 1000;
	s->max_size = conf->max_size != 0 ? conf->max_size :
	    CLAMD_MAX_SIZE_DEF;
	if ((s->done_ev = event_new(base, -1, 0, deliver_cb, s)) == NULL ||
	    (s->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		if (s->done_ev != NULL)
			event_free(s->done_ev);
		free(s);
		return NULL;
	}
	bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
	/* the write timeout also bounds the connect; no read timeout
	   until the end: clamd says nothing before it */
	bufferevent_set_timeouts(s->bev, NULL, &s->tv);
	if (bufferevent_enable(s->bev, EV_READ | EV_WRITE) == -1 ||
	    bufferevent_write(s->bev, CLAMD_CMD, sizeof(CLAMD_CMD)) == -1) {
		latch(s, CLAMD_ERROR, "out of memory");
		return s;
	}
	if (bufferevent_socket_connect(s->bev,
	    (const struct sockaddr *)&conf->endpoint->ss,
	    (int)conf->endpoint->sslen) == -1)
		latch(s, CLAMD_ERROR, strerror(errno));
	return s;
}

/* clamd_feed - queue n octets as chunks, up to max_size in all */
int
clamd_feed(struct clamd_scan *s, const void *p, size_t n)
{
	const unsigned char	*d = p;
	unsigned char		 hdr[4];
	struct evbuffer		*out;
	size_t			 k;

	if (s->finished)
		panic("clamd_feed after clamd_finish");
	if (s->latched)
		return -1;
	if (n > s->max_size - s->sent) {
		n = s->max_size - s->sent;
		s->truncated = 1;
	}
	out = bufferevent_get_output(s->bev);
	while (n > 0) {
		k = n < CLAMD_CHUNK_MAX ? n : CLAMD_CHUNK_MAX;
		clamd_chunk_header(k, hdr);
		if (evbuffer_add(out, hdr, sizeof(hdr)) == -1 ||
		    evbuffer_add(out, d, k) == -1) {
			latch(s, CLAMD_ERROR, "out of memory");
			return -1;
		}
		s->sent += k;
		d += k;
		n -= k;
	}
	if (evbuffer_get_length(out) > CLAMD_PENDING_MAX) {
		latch(s, CLAMD_ERROR, "clamd too slow");
		return -1;
	}
	return 0;
}

/* clamd_finish - the zero-length chunk; the reply (or a failure) follows */
void
clamd_finish(struct clamd_scan *s)
{
	static const unsigned char	 end[4];

	if (s->finished)
		panic("clamd_finish twice");
	s->finished = 1;
	if (s->latched) {
		event_active(s->done_ev, EV_TIMEOUT, 0);
		return;
	}
	if (bufferevent_write(s->bev, end, sizeof(end)) == -1) {
		latch(s, CLAMD_ERROR, "out of memory");
		return;
	}
	/* clamd scans, then answers: the timeout covers the scan */
	bufferevent_set_timeouts(s->bev, &s->tv, &s->tv);
}

/* clamd_cancel - no callback, no trace */
void
clamd_cancel(struct clamd_scan *s)
{
	if (s == NULL)
		return;
	close_conn(s);
	event_free(s->done_ev);
	free(s);
}

/* clamd_pending - octets not yet written */
size_t
clamd_pending(const struct clamd_scan *s)
{
	if (s->bev == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

/* clamd_reply_parse - "stream: OK", "stream: NAME FOUND", "... ERROR" */
enum clamd_status
clamd_reply_parse(const char *p, size_t len, char *name)
{
	static const char	 pre[] = "stream: ";
	size_t			 plen = sizeof(pre) - 1;

	/* the reply ends with the terminator of the command: NUL */
	while (len > 0 && (p[len - 1] == '\0' || p[len - 1] == '\n' ||
	    p[len - 1] == '\r'))
		len--;
	name[0] = '\0';
	if (len == plen + 2 && memcmp(p, pre, plen) == 0 &&
	    memcmp(p + plen, "OK", 2) == 0)
		return CLAMD_CLEAN;
	if (len > plen + 6 && memcmp(p, pre, plen) == 0 &&
	    has_suffix(p, len, " FOUND")) {
		copy_printable(name, p + plen, len - plen - 6);
		return CLAMD_VIRUS;
	}
	if (has_suffix(p, len, " ERROR") && len > 6) {
		copy_printable(name, p, len - 6);
		return CLAMD_ERROR;
	}
	copy_printable(name, "unexpected reply", 16);
	return CLAMD_ERROR;
}

/* clamd_chunk_header - 4-octet big-endian length (clamd(8) INSTREAM) */
void
clamd_chunk_header(size_t n, unsigned char out[4])
{
	uint32_t	 v = (uint32_t)n;

	out[0] = (unsigned char)(v >> 24);
	out[1] = (unsigned char)(v >> 16);
	out[2] = (unsigned char)(v >> 8);
	out[3] = (unsigned char)v;
}

/* latch - the result is known: keep it, close, deliver if finished */
static void
latch(struct clamd_scan *s, enum clamd_status st, const char *why)
{
	if (s->latched)
		return;
	s->latched = 1;
	s->status = st;
	copy_printable(s->name, why, strlen(why));
	close_conn(s);
	if (s->finished)
		event_active(s->done_ev, EV_TIMEOUT, 0);
}

/*
 * latch_reply - the input holds a reply (terminated, or cut by the end
 * of the connection when eof is set); an empty input at eof is a
 * failure
 */
static void
latch_reply(struct clamd_scan *s, struct evbuffer *in, int eof)
{
	char			 name[CLAMD_NAME_MAX + 1];
	const char		*p;
	size_t			 len = evbuffer_get_length(in);
	enum clamd_status	 st;

	if (len > CLAMD_REPLY_MAX)
		len = CLAMD_REPLY_MAX;
	if (len == 0) {
		latch(s, CLAMD_ERROR, eof ? "connection closed" :
		    "empty reply");
		return;
	}
	p = (const char *)evbuffer_pullup(in, (ssize_t)len);
	st = clamd_reply_parse(p, len, name);
	/* a virus or a clean verdict means something only at the end */
	if (st != CLAMD_ERROR && !s->finished)
		latch(s, CLAMD_ERROR, "early reply");
	else
		latch(s, st, name);
}

static void
close_conn(struct clamd_scan *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
}

static void
deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clamd_scan	*s = arg;
	struct clamd_result	 r;

	r.status = s->status;
	r.name = s->status == CLAMD_CLEAN ? "" : s->name;
	r.scanned = s->sent;
	r.truncated = s->truncated;
	s->cb(&r, s->arg);
	event_free(s->done_ev);
	free(s);
}

/* read_cb - the reply ends at its NUL (or newline: "n" commands) */
static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct clamd_scan	*s = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 nul;
	size_t			 len = evbuffer_get_length(in);

	nul = evbuffer_search(in, "\0", 1, NULL);
	if (nul.pos == -1 && len <= CLAMD_REPLY_MAX)
		nul = evbuffer_search(in, "\n", 1, NULL);
	if (nul.pos != -1 || len > CLAMD_REPLY_MAX)
		latch_reply(s, in, 0);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct clamd_scan	*s = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	int			 err = errno;

	if (what & BEV_EVENT_CONNECTED)
		return;
	/*
	 * Past its StreamMaxLength clamd answers and closes while we are
	 * still writing: the write fails (EPIPE), but the reply waits in
	 * the socket.  Fetch it before calling this a connection failure.
	 */
	if ((what & BEV_EVENT_ERROR) && bufferevent_getfd(bev) != -1)
		(void)evbuffer_read(in, bufferevent_getfd(bev),
		    CLAMD_REPLY_MAX);
	if (what & BEV_EVENT_TIMEOUT)
		latch(s, CLAMD_ERROR, "timeout");
	else if (evbuffer_get_length(in) > 0)
		/* clamd answered and closed, maybe while we were writing
		   ("INSTREAM size limit exceeded. ERROR") */
		latch_reply(s, in, 1);
	else if (what & BEV_EVENT_EOF)
		latch(s, CLAMD_ERROR, "connection closed");
	else
		latch(s, CLAMD_ERROR, err != 0 ? strerror(err) :
		    "connection failed");
}

/* copy_printable - at most CLAMD_NAME_MAX octets, others become '?' */
static void
copy_printable(char *out, const char *p, size_t len)
{
	size_t	 i;

	if (len > CLAMD_NAME_MAX)
		len = CLAMD_NAME_MAX;
	for (i = 0; i < len; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	out[len] = '\0';
}

static int
has_suffix(const char *p, size_t len, const char *suf)
{
	size_t	 n = strlen(suf);

	return len >= n && memcmp(p + len - n, suf, n) == 0;
}
