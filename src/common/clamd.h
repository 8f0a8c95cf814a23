/*
 * clamd.h - asynchronous virus scan through clamd's INSTREAM command,
 * inside the caller's libevent loop.
 *
 * Protocol (clamd(8), "INSTREAM"): the client sends "zINSTREAM\0", then
 * chunks of a 4-octet length in network byte order followed by that
 * many octets, then a zero-length chunk; clamd answers one
 * NUL-terminated line: "stream: OK", "stream: NAME FOUND" or
 * "REASON ERROR" (for instance "INSTREAM size limit exceeded. ERROR"
 * past its StreamMaxLength, after which it closes the connection).
 *
 * Use: clamd_start() connects at once; clamd_feed() the message as it
 * arrives (or from the spool file), clamd_finish() at its end.  The
 * callback is called exactly once, from the event loop, after
 * clamd_finish() - never from within clamd_start(), clamd_feed() or
 * clamd_finish() - unless clamd_cancel() comes first (then never).
 * Failures before clamd_finish() (connect refused, timeout, early reply)
 * are kept and reported then, so a streaming caller needs no second
 * path.  The handle is invalid once the callback has been entered.  The
 * result lives only during the callback.
 *
 * Bounds: at most conf->max_size octets are sent (the result says
 * "truncated" when the message was longer: the caller decides); at most
 * CLAMD_PENDING_MAX octets wait for clamd to read them, beyond which the
 * scan fails ("clamd too slow"); the reply is read up to
 * CLAMD_REPLY_MAX octets.  Every connect, write and read is bounded by
 * conf->timeout_ms without progress.
 */
#ifndef MOAT_CLAMD_H
#define MOAT_CLAMD_H

#include <stddef.h>

struct event_base;
struct scan_endpoint;

#define CLAMD_CHUNK_MAX		65536	/* octets per INSTREAM chunk */
#define CLAMD_PENDING_MAX	(4UL << 20) /* written, not yet read */
#define CLAMD_REPLY_MAX		1024	/* one reply line */
#define CLAMD_NAME_MAX		255	/* signature name or reason kept */

enum clamd_status {
	CLAMD_CLEAN,	/* "stream: OK" */
	CLAMD_VIRUS,	/* "stream: NAME FOUND" */
	CLAMD_ERROR	/* scanner failure: clamd = tempfail|accept applies */
};

struct clamd_result {
	enum clamd_status status;
	const char	*name;		/* VIRUS: the signature name; ERROR:
					   the reason ("timeout", clamd's
					   text ...); CLEAN: "".  Printable
					   ASCII, still to be sanitized for
					   logs */
	size_t		 scanned;	/* octets of the message given to
					   clamd */
	int		 truncated;	/* the message was longer than
					   max_size: its tail was not sent */
};

typedef void	(*clamd_cb)(const struct clamd_result *, void *arg);

struct clamd_conf {
	const struct scan_endpoint *endpoint;	/* config clamd_socket */
	unsigned	 timeout_ms;	/* config clamd_timeout; 0 = 60000 */
	size_t		 max_size;	/* config clamd_max_size; 0 = 25M */
};

struct clamd_scan;

/*
 * clamd_start - connect to clamd and send "zINSTREAM\0".  NULL only when
 * out of memory; a connect failure comes through the callback.
 */
struct clamd_scan *clamd_start(struct event_base *, const struct clamd_conf *,
	    clamd_cb, void *arg);
/* clamd_feed - n more octets of the message; 0, or -1 if the scan failed */
int	clamd_feed(struct clamd_scan *, const void *, size_t);
/* clamd_finish - the end of the message: the result follows */
void	clamd_finish(struct clamd_scan *);
/* clamd_cancel - drop the scan; its callback is never called */
void	clamd_cancel(struct clamd_scan *);
/*
 * clamd_pending - octets fed but not yet written to clamd, for callers
 * that want to slow down (the scan fails above CLAMD_PENDING_MAX)
 */
size_t	clamd_pending(const struct clamd_scan *);

/*
 * Building blocks, exported for tests/unit/test_milter.c and
 * tests/fuzz/fuzz_clamd.c.
 *
 * clamd_reply_parse - one reply (len octets, with or without its NUL or
 * newline) into status and name (CLAMD_NAME_MAX + 1 octets, printable
 * ASCII, NUL-terminated).  An unexpected reply is CLAMD_ERROR.
 */
enum clamd_status clamd_reply_parse(const char *, size_t, char *name);
/* clamd_chunk_header - the 4-octet network-order length of a chunk */
void	clamd_chunk_header(size_t, unsigned char out[4]);

#endif
