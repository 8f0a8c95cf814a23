/*
 * smtp_data.c - message content: DATA and BDAT streaming into the
 * spool, the Received header, and the group-commit threads.
 *
 * Content is never held whole in memory: every read is run through
 * data_scan() and its output goes straight to spool_msg_write() (which
 * buffers at most 64 KiB).  Bare CR or LF anywhere, a text line over
 * 1000 octets or a size over message_size_limit do not stop the reading
 * (the client is still sending); the file is dropped at once and the
 * verdict given after the end of the content (RFC 5321 4.1.1.4, 4.5.3.1.6;
 * SMTP smuggling: only CRLF.CRLF ends DATA, enforced by data_scan()).
 * The header section of an untrusted client's message is also shown
 * to smtp_policy.c (header From: anti-spoofing), whose verdict comes
 * last, after the content's own.
 *
 * Durability (DESIGN.md principle 2): "250 queued" is sent only after
 * spool_msg_finish() (fsync of the file), spool_msg_commit() (rename to
 * incoming/) and spool_dir_sync("incoming") succeeded.  These block on
 * the disk, so they run on commit_threads threads.  The loop hands
 * over the messages that ended in one of its iterations together, at
 * its end (commit_kick).  Each thread takes one transaction, fsyncs its
 * file and renames it, so that several files are written at once; one
 * fsync of incoming/ then serves every file renamed before it started
 * (commit_dir_add), and the batch goes back to the loop through an
 * eventfd.  While a transaction
 * is with the threads the loop does not touch it (SMTP_ST_COMMIT).
 */
#include <sys/eventfd.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/spool.h"
#include "../common/stats.h"
#include "smtp_in.h"

#define DATA_IOV	16	/* evbuffer chains scanned per pass */
#define DS_REJECT	(DS_BARE_CR | DS_BARE_LF | DS_LONG_LINE)
#define HDR_MAX		2048	/* the Received header */

static int	txn_open(struct smtp_session *);
static int	received_header(struct smtp_session *, struct smtp_txn *);
static int	auth_results(struct smtp_session *, struct smtp_txn *);
static void	field_copy(char *, size_t, const char *);
static int	data_out(void *, const char *, size_t);
static void	data_drop_file(struct smtp_txn *);
static const char *data_verdict(struct smtp_txn *, const char **);
static void	data_end(struct smtp_session *);
static void	bdat_chunk_end(struct smtp_session *);
static int	bdat_parse(const struct smtp_cmd *, uint64_t *, int *);
static void	commit_submit(struct smtp_txn *);
static void	commit_kick(evutil_socket_t, short, void *);
static void	*commit_main(void *);
static int	commit_one(struct smtp_txn *);
static void	commit_dir_add(struct smtp_txn *);
static void	commit_done_add(struct smtp_txn *);
static void	commit_ready(evutil_socket_t, short, void *);
static void	commit_complete(struct smtp_session *);

static pthread_mutex_t	 commit_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 commit_cv = PTHREAD_COND_INITIALIZER;
static struct smtp_txn	*commit_pending;	/* loop -> threads */
static struct smtp_txn	**commit_pending_tail = &commit_pending;
static struct smtp_txn	*commit_done;		/* threads -> loop */
static struct smtp_txn	**commit_done_tail = &commit_done;
static int		 commit_efd = -1;
static struct event	*commit_ev;
static size_t		 commit_nthreads;
static struct smtp_txn	*commit_held;		/* loop, this iteration */
static struct smtp_txn	**commit_held_tail = &commit_held;
static struct event	*commit_kick_ev;

/*
 * smtp_cmd_data - DATA (RFC 5321 4.1.1.4): open the spool file, write
 * the Received header, answer 354 and stream.
 */
void
smtp_cmd_data(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (txn_open(s) == -1) {
		smtp_txn_free(s);
		smtp_enter_state(s, SMTP_ST_HELO);
		smtp_reply(s, "451 4.3.0 Local error in processing");
		return;
	}
	s->txn->flags |= TF_DATA;
	data_scan_init(&s->txn->scan, DSM_DATA);
	smtp_enter_state(s, SMTP_ST_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/*
 * smtp_cmd_bdat - BDAT size [LAST] (RFC 3030 2).  A chunk that is
 * refused is still read and discarded (s->discard), so that its octets
 * are never taken for commands.
 */
void
smtp_cmd_bdat(struct smtp_session *s, const struct smtp_cmd *c)
{
	const char	*why = NULL;
	uint64_t	 n;
	int		 last;

	if (bdat_parse(c, &n, &last) == -1) {
		smtp_reply_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	switch (s->state) {
	case SMTP_ST_CONNECTED:
		why = "Send HELO/EHLO first";
		break;
	case SMTP_ST_HELO:
		why = "Need MAIL command";
		break;
	case SMTP_ST_MAIL:
		why = "No valid recipients";
		break;
	case SMTP_ST_RCPT:
	case SMTP_ST_CHUNKING:
		break;
	default:
		panic("smtp_cmd_bdat: state %s", smtp_state_name(s->state));
	}
	if (why != NULL) {
		s->discard = n;
		smtp_reply_error(s, "503 5.5.1 %s", why);
		return;
	}
	if (s->state == SMTP_ST_RCPT) {
		if (txn_open(s) == -1) {
			s->discard = n;
			smtp_txn_free(s);
			smtp_enter_state(s, SMTP_ST_HELO);
			smtp_reply(s, "451 4.3.0 Local error in processing");
			return;
		}
		s->txn->flags |= TF_BDAT;
		data_scan_init(&s->txn->scan, DSM_BDAT);
	}
	s->txn->bdat_left = n;
	if (last)
		s->txn->flags |= TF_LAST;
	smtp_enter_state(s, SMTP_ST_BDAT);
	if (n == 0)
		bdat_chunk_end(s);
}

/* bdat_parse - "size" or "size LAST"; size is 1..20 digits, no overflow */
static int
bdat_parse(const struct smtp_cmd *c, uint64_t *n, int *last)
{
	size_t	 i;
	unsigned d;

	*n = 0;
	*last = 0;
	for (i = 0; i < c->arglen && c->arg[i] >= '0' && c->arg[i] <= '9';
	    i++) {
		d = (unsigned)(c->arg[i] - '0');
		if (*n > (UINT64_MAX - d) / 10)
			return -1;
		*n = *n * 10 + d;
	}
	if (i == 0)
		return -1;
	if (i == c->arglen)
		return 0;
	if (c->arglen - i == 5 && c->arg[i] == ' ' &&
	    (c->arg[i + 1] | 0x20) == 'l' && (c->arg[i + 2] | 0x20) == 'a' &&
	    (c->arg[i + 3] | 0x20) == 's' && (c->arg[i + 4] | 0x20) == 't') {
		*last = 1;
		return 0;
	}
	return -1;
}

/*
 * smtp_data_input - stream DATA content from the input buffer.  Stops
 * after CRLF.CRLF, leaving pipelined commands in the buffer.  Returns 1
 * if input was consumed, 0 if more is needed.
 */
int
smtp_data_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v[DATA_IOV];
	struct smtp_txn		*t = s->txn;
	size_t			 total = 0, used;
	int			 i, n;

	if (evbuffer_get_length(in) == 0)
		return 0;
	n = evbuffer_peek(in, -1, NULL, v, DATA_IOV);
	if (n > DATA_IOV)
		n = DATA_IOV;
	for (i = 0; i < n && !t->scan.done; i++) {
		used = 0;
		(void)data_scan(&t->scan, v[i].iov_base, v[i].iov_len, &used,
		    data_out, t);
		total += used;
	}
	evbuffer_drain(in, total);
	STATS_ADD(bytes_received, total);
	if ((t->scan.errors & DS_REJECT) && (t->flags & TF_OPEN))
		data_drop_file(t);
	if (t->scan.done) {
		data_end(s);
		return 1;
	}
	return total > 0;
}

/*
 * smtp_bdat_input - read the octets of the current BDAT chunk, exactly
 * bdat_left of them, over as many reads as it takes.
 */
int
smtp_bdat_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v[DATA_IOV];
	struct smtp_txn		*t = s->txn;
	size_t			 len, want, total = 0, k, used;
	int			 i, n;

	if ((len = evbuffer_get_length(in)) == 0)
		return 0;
	want = t->bdat_left < len ? (size_t)t->bdat_left : len;
	n = evbuffer_peek(in, (ssize_t)want, NULL, v, DATA_IOV);
	if (n > DATA_IOV)
		n = DATA_IOV;
	for (i = 0; i < n && total < want; i++) {
		k = v[i].iov_len < want - total ? v[i].iov_len : want - total;
		(void)data_scan(&t->scan, v[i].iov_base, k, &used, data_out,
		    t);
		total += k;
	}
	evbuffer_drain(in, total);
	STATS_ADD(bytes_received, total);
	t->bdat_left -= total;
	if ((t->scan.errors & DS_REJECT) && (t->flags & TF_OPEN))
		data_drop_file(t);
	if (t->bdat_left == 0)
		bdat_chunk_end(s);
	return total > 0;
}

/*
 * data_out - scanner output: content octets, dot-unstuffed.  Counts
 * them against the size limit and writes them unless the message is
 * already lost (then they are only counted away).
 */
static int
data_out(void *arg, const char *p, size_t len)
{
	struct smtp_txn	*t = arg;
	size_t		 limit = smtp_srv->conf->message_size_limit;

	if (t->flags & TF_OVERSIZE)
		return 0;
	if (len > limit || t->size > limit - len) {
		t->flags |= TF_OVERSIZE;
		if (t->flags & TF_OPEN)
			data_drop_file(t);
		return 0;
	}
	t->size += len;
	/* the header From: check of untrusted clients (smtp_policy.c) */
	smtp_policy_content(t->s, p, len);
	smtp_content_data(t, p, len);
	smtp_scan_data(t, p, len);
	if (len > 0 && p[len - 1] == '\n')
		t->flags |= TF_LF;
	else if (len > 0)
		t->flags &= ~TF_LF;
	if (!(t->flags & TF_OPEN))
		return 0;
	if (spool_msg_write(&t->msg, p, len) == -1) {
		log_warn("event=error qid=%s error=spool_write", t->env.qid);
		t->flags |= TF_IOERR;
		if (errno == ENOSPC || errno == EDQUOT)
			t->flags |= TF_NOSPACE;
		data_drop_file(t);
	}
	return 0;
}

/* data_drop_file - the message is refused: free the disk at once */
static void
data_drop_file(struct smtp_txn *t)
{
	spool_msg_abort(&t->msg);
	t->flags &= ~TF_OPEN;
}

/* data_verdict - refusal reply and log reason, or NULL if acceptable */
static const char *
data_verdict(struct smtp_txn *t, const char **reason)
{
	const char	*r;

	/* the size first: the one limit the client was told (EHLO SIZE) */
	if (t->flags & TF_OVERSIZE) {
		*reason = "size";
		return "552 5.3.4 Message size exceeds fixed limit";
	}
	if (t->scan.errors & (DS_BARE_CR | DS_BARE_LF)) {
		*reason = "bare_lf";
		return "550 5.6.0 Message contains bare CR or LF";
	}
	if (t->scan.errors & DS_LONG_LINE) {
		*reason = "long_line";
		return "550 5.6.0 Line too long";
	}
	if (t->flags & TF_NOSPACE) {
		*reason = "disk_full";
		return "452 4.3.1 Insufficient system storage";
	}
	if (t->flags & TF_IOERR) {
		*reason = "spool_write";
		return "451 4.3.0 Local error in processing";
	}
	if ((r = smtp_policy_data_verdict(t->s)) != NULL) {
		*reason = "header_from";
		return r;
	}
	*reason = NULL;
	return NULL;
}

/*
 * data_end - the content is complete (DATA's CRLF.CRLF or BDAT LAST):
 * refuse it, or hand it to the commit threads.
 */
static void
data_end(struct smtp_session *s)
{
	struct smtp_txn	*t = s->txn;
	const char	*reply, *reason;

	if ((reply = data_verdict(t, &reason)) != NULL ||
	    (reply = smtp_content_verdict(t, &reason)) != NULL) {
		smtp_data_refuse(s, reply, reason);
		return;
	}
	/* clamd and the milters (smtp_scan.c) answer from the loop */
	if (smtp_scan_end(s))
		return;
	smtp_data_commit(s);
}

/*
 * smtp_data_refuse - the final reply that refuses the message (or, for
 * a discard, fakes its acceptance); reason goes to the log
 */
void
smtp_data_refuse(struct smtp_session *s, const char *reply,
    const char *reason)
{
	struct smtp_txn	*t = s->txn;

	log_info("event=reject qid=%s client=%s reason=%s%s size=%llu "
	    "sid=%lu", t->env.qid, s->addrtext, reason,
	    (t->scan.errors & DS_BARE_CR) ? " detail=bare_cr" :
	    (t->scan.errors & DS_BARE_LF) ? " detail=bare_lf" : "",
	    (unsigned long long)t->size, s->id);
	STATS_ADD(msg_rejected, 1);
	if (s->state == SMTP_ST_COMMIT)
		smtp_enter_state(s, SMTP_ST_HELO);	/* from smtp_scan.c */
	smtp_txn_free(s);
	smtp_enter_state(s, SMTP_ST_HELO);
	smtp_reply(s, "%s", reply);
	if (s->flags & SF_SHUTDOWN) {
		s->reason = "shutdown";
		smtp_close(s, "421 4.3.2 Service shutting down");
	}
	/* resumed from a scanner callback: the pipelined input waits */
	smtp_session_process(s);
}

/* smtp_data_commit - the message goes to the commit threads */
void
smtp_data_commit(struct smtp_session *s)
{
	struct smtp_txn	*t = s->txn;

	if (t->scan.errors & DS_NUL)
		log_info("event=note qid=%s client=%s note=nul_in_content "
		    "sid=%lu", t->env.qid, s->addrtext, s->id);
	if (s->state != SMTP_ST_COMMIT)
		smtp_enter_state(s, SMTP_ST_COMMIT);
	commit_submit(t);
}

/* bdat_chunk_end - all octets of one chunk are in */
static void
bdat_chunk_end(struct smtp_session *s)
{
	struct smtp_txn	*t = s->txn;
	const char	*reason;

	if (t->flags & TF_LAST) {
		(void)data_scan_end(&t->scan, data_out, t);
		/*
		 * BDAT content need not end with CRLF (RFC 3030 2); the
		 * spool holds CRLF lines, so complete the last one.
		 */
		if (t->size > 0 && !(t->flags & TF_LF))
			(void)data_out(t, "\r\n", 2);
		if ((t->scan.errors & DS_REJECT) && (t->flags & TF_OPEN))
			data_drop_file(t);
		data_end(s);
		return;
	}
	if (data_verdict(t, &reason) != NULL) {
		/* no point reading more chunks into a lost message */
		data_end(s);
		return;
	}
	smtp_enter_state(s, SMTP_ST_CHUNKING);
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)t->size);
}

/*
 * txn_open - complete the envelope, begin tmp/QID and write the
 * Received header (RFC 5321 4.4).  The file itself is created by the
 * commit thread (spool_msg_begin), or here once the content outgrows
 * the 64 KiB write-behind buffer.
 */
static int
txn_open(struct smtp_session *s)
{
	struct smtp_txn	*t = s->txn;
	struct envelope	*e = &t->env;

	e->arrival = time(NULL);
	field_copy(e->client_addr, sizeof(e->client_addr), s->addrtext);
	field_copy(e->client_name, sizeof(e->client_name), "unknown");
	field_copy(e->helo, sizeof(e->helo), s->helo ? s->helo : "");
	/* RFC 3848: A for AUTH, S for TLS; AUTH implies EHLO */
	if (s->flags & SF_AUTH) {
		field_copy(e->proto, sizeof(e->proto), (s->flags & SF_TLS) ?
		    "ESMTPSA" : "ESMTPA");
		field_copy(e->auth, sizeof(e->auth), s->authuser);
	} else
		field_copy(e->proto, sizeof(e->proto), (s->flags & SF_TLS) ?
		    "ESMTPS" : (s->flags & SF_ESMTP) ? "ESMTP" : "SMTP");
	if (spool_msg_begin(&t->msg, e, "tmp", "") == -1) {
		log_warn("event=error client=%s sid=%lu error=spool_open",
		    s->addrtext, s->id);
		return -1;
	}
	t->flags |= TF_OPEN;
	if (received_header(s, t) == -1 || auth_results(s, t) == -1) {
		log_warn("event=error qid=%s client=%s error=spool_write",
		    e->qid, s->addrtext);
		data_drop_file(t);
		return -1;
	}
	smtp_content_begin(s, t);
	smtp_scan_begin(s, t);
	return 0;
}

/*
 * received_header - "Received: from HELO (unknown [IP])", the TLS
 * protocol and cipher when any, "by HOSTNAME with PROTO id QID", and
 * "for <rcpt>" only with a single recipient (RFC 5321 4.4, 7.2).
 */
static int
received_header(struct smtp_session *s, struct smtp_txn *t)
{
	const struct envelope	*e = &t->env;
	char			 h[HDR_MAX], tls[160], date[64], fr[600];
	const char		*tproto, *cipher;
	int			 bits, r;

	tls[0] = fr[0] = '\0';
	if ((s->flags & SF_TLS) &&
	    smtp_tls_info(s, &tproto, &cipher, &bits) == 0) {
		r = snprintf(tls, sizeof(tls), "\t(using %s with cipher %s "
		    "(%d bits))\r\n", tproto, cipher, bits);
		if (r < 0 || (size_t)r >= sizeof(tls))
			tls[0] = '\0';
	}
	if (e->nrcpt == 1) {
		/* the address as received: no CR, LF or NUL (parser) */
		r = snprintf(fr, sizeof(fr), "\r\n\tfor <%s>", e->rcpt[0]);
		if (r < 0 || (size_t)r >= sizeof(fr))
			fr[0] = '\0';
	}
	rfc5322_date(e->arrival, date, sizeof(date));
	r = snprintf(h, sizeof(h), "Received: from %s (unknown [%s%s])\r\n"
	    "%s\tby %s with %s id %s%s; %s\r\n",
	    e->helo, s->family == AF_INET6 ? "IPv6:" : "", e->client_addr,
	    tls, smtp_srv->conf->hostname, e->proto, e->qid, fr, date);
	if (r < 0 || (size_t)r >= sizeof(h))
		return -1;
	return spool_msg_write(&t->msg, h, (size_t)r);
}

/*
 * auth_results - the Authentication-Results header of the policy
 * checks (SPF, smtp_policy.c), right below our Received header (RFC
 * 8601 5: added at the top, by the host that ran the checks)
 */
static int
auth_results(struct smtp_session *s, struct smtp_txn *t)
{
	char	 h[HDR_MAX];
	size_t	 n;

	if ((n = smtp_policy_auth_results(s, h, sizeof(h))) == 0)
		return 0;
	return spool_msg_write(&t->msg, h, n);
}

/* field_copy - bounded copy of a trusted string into an envelope field */
static void
field_copy(char *dst, size_t dstsz, const char *src)
{
	size_t	 n = strlen(src);

	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/*
 * smtp_commit_init - eventfd back to the loop and the commit threads
 * (commit_threads of the config: how many files are fsync'ed at once).
 * The threads block every signal: signals belong to the loop.
 */
int
smtp_commit_init(struct event_base *base, size_t nthreads)
{
	pthread_t	 tid;
	sigset_t	 all, old;
	size_t		 i;
	int		 err;

	if ((commit_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	commit_ev = event_new(base, commit_efd, EV_READ | EV_PERSIST,
	    commit_ready, NULL);
	if (commit_ev == NULL || event_add(commit_ev, NULL) == -1)
		return -1;
	if ((commit_kick_ev = event_new(base, -1, 0, commit_kick,
	    NULL)) == NULL)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	commit_nthreads = nthreads;
	for (i = 0; i < nthreads; i++) {
		if ((err = pthread_create(&tid, NULL, commit_main, NULL))) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			errno = err;
			return -1;
		}
		pthread_detach(tid);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

/*
 * commit_submit - queue a finished transaction for the threads.  It is
 * held on the loop's own list until the end of this loop iteration
 * (commit_kick): every message that ended in one iteration goes to the
 * threads in one hand-over, under one lock.
 */
static void
commit_submit(struct smtp_txn *t)
{
	t->next = NULL;
	*commit_held_tail = t;
	commit_held_tail = &t->next;
	event_active(commit_kick_ev, EV_WRITE, 0);
}

/* commit_kick - hand the messages held in this iteration to the threads */
static void
commit_kick(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_txn	*t;
	size_t		 n;

	if (commit_held == NULL)
		return;
	pthread_mutex_lock(&commit_mtx);
	*commit_pending_tail = commit_held;
	commit_pending_tail = commit_held_tail;
	/*
	 * a thread takes one at a time: wake one per transaction, not all
	 * of them (a busy thread takes the next one without sleeping)
	 */
	for (n = 0, t = commit_held; t != NULL && n < commit_nthreads;
	    t = t->next, n++)
		pthread_cond_signal(&commit_cv);
	pthread_mutex_unlock(&commit_mtx);
	commit_held = NULL;
	commit_held_tail = &commit_held;
}

/*
 * commit_main - one transaction at a time: its file is written and
 * fsync'ed and renamed (commit_one), while the other threads do the
 * same with theirs, so that the disk has several files to write at
 * once; then it joins the directory fsync (commit_dir_add).
 */
static void *
commit_main(void *arg)
{
	struct smtp_txn	*t;

	for (;;) {
		pthread_mutex_lock(&commit_mtx);
		while (commit_pending == NULL)
			pthread_cond_wait(&commit_cv, &commit_mtx);
		t = commit_pending;
		if ((commit_pending = t->next) == NULL)
			commit_pending_tail = &commit_pending;
		pthread_mutex_unlock(&commit_mtx);
		t->next = NULL;
		if (commit_one(t) == 0)
			commit_dir_add(t);
		else
			commit_done_add(t);
	}
	return NULL;
}

/*
 * commit_one - finish and fsync the file, rename it into its
 * directory; 0, or -1 with t->result -1 (the file unlinked)
 */
static int
commit_one(struct smtp_txn *t)
{
	if ((t->result = smtp_content_finish(t)) == 0 &&
	    strcmp(smtp_content_dir(t), "incoming") == 0)
		t->result = smtp_scan_finish(t);
	if (t->result == -1) {
		if (errno == ENOSPC || errno == EDQUOT)
			t->flags |= TF_NOSPACE;
		log_warn("event=error qid=%s error=spool_finish",
		    t->env.qid);
		data_drop_file(t);
		return -1;
	}
	if ((t->result = spool_msg_commit(&t->msg,
	    smtp_content_dir(t))) == -1) {
		log_warn("event=error qid=%s error=spool_commit",
		    t->env.qid);
		data_drop_file(t);
		return -1;
	}
	t->flags &= ~TF_OPEN;
	return 0;
}

/*
 * commit_dir_add - t is renamed: it waits for an fsync of incoming/
 * that starts after now (group commit).  One thread at a time is the
 * syncer: it takes every transaction waiting, fsyncs incoming/ once,
 * hands them all back, and goes on while more have come in meanwhile.
 * Any other thread only adds its transaction and goes back to work, so
 * files keep being written while the directory is synced.
 */
static void
commit_dir_add(struct smtp_txn *t)
{
	static pthread_mutex_t	 mtx = PTHREAD_MUTEX_INITIALIZER;
	static struct smtp_txn	*waiting, **waiting_tail = &waiting;
	static int		 syncing;
	struct smtp_txn		*list, *x;
	int			 n;

	pthread_mutex_lock(&mtx);
	*waiting_tail = t;
	waiting_tail = &t->next;
	if (syncing) {
		pthread_mutex_unlock(&mtx);
		return;
	}
	syncing = 1;
	while ((list = waiting) != NULL) {
		waiting = NULL;
		waiting_tail = &waiting;
		pthread_mutex_unlock(&mtx);
		if (spool_dir_sync("incoming") == -1) {
			for (n = 0, x = list; x != NULL; x = x->next, n++)
				x->result = -1;
			log_warn("event=error error=spool_dir_sync batch=%d",
			    n);
		}
		commit_done_add(list);
		pthread_mutex_lock(&mtx);
	}
	syncing = 0;
	pthread_mutex_unlock(&mtx);
}

/*
 * commit_done_add - hand a list of finished transactions back to the
 * loop; the eventfd is written only when the loop's list was empty (it
 * always drains the whole list)
 */
static void
commit_done_add(struct smtp_txn *list)
{
	struct smtp_txn	*t;
	uint64_t	 one = 1;
	int		 wake;

	pthread_mutex_lock(&commit_mtx);
	wake = commit_done == NULL;
	for (t = list; t != NULL; t = t->next) {
		*commit_done_tail = t;
		commit_done_tail = &t->next;
	}
	pthread_mutex_unlock(&commit_mtx);
	while (wake && write(commit_efd, &one, sizeof(one)) == -1 &&
	    errno == EINTR)
		;
}

/* commit_ready - completions from the threads, on the loop */
static void
commit_ready(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_txn	*list, *t, *next;
	uint64_t	 v;

	while (read(commit_efd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&commit_mtx);
	list = commit_done;
	commit_done = NULL;
	commit_done_tail = &commit_done;
	pthread_mutex_unlock(&commit_mtx);
	for (t = list; t != NULL; t = next) {
		next = t->next;
		commit_complete(t->s);
	}
}

/*
 * commit_complete - the final reply, strictly after every earlier one;
 * then the pipelined input waiting behind the message is processed.
 */
static void
commit_complete(struct smtp_session *s)
{
	struct smtp_txn	*t = s->txn;
	char		 from[600];

	if (s->state != SMTP_ST_COMMIT || t == NULL)
		panic("commit_complete: session in state %s",
		    smtp_state_name(s->state));
	if (t->result == 0) {
		log_sanitize(t->env.sender, strlen(t->env.sender), from,
		    sizeof(from));
		log_info("event=accepted qid=%s client=%s from=<%s> nrcpt=%zu "
		    "size=%llu proto=%s sid=%lu%s%s", t->env.qid, s->addrtext,
		    from, t->env.nrcpt, (unsigned long long)t->size,
		    t->env.proto, s->id, t->env.auth[0] ? " auth=" : "",
		    t->env.auth);
		STATS_ADD(msg_accepted, 1);
		s->nmsgs++;
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", t->env.qid);
	} else {
		log_info("event=reject qid=%s client=%s reason=commit_failed "
		    "sid=%lu", t->env.qid, s->addrtext, s->id);
		STATS_ADD(msg_rejected, 1);
		if (t->flags & TF_NOSPACE)
			smtp_reply(s, "452 4.3.1 Insufficient system storage");
		else
			smtp_reply(s, "451 4.3.0 Local error in processing");
	}
	smtp_enter_state(s, SMTP_ST_HELO);
	smtp_txn_free(s);
	if (s->flags & SF_DEAD) {
		smtp_session_free(s);
		return;
	}
	if (s->flags & SF_SHUTDOWN) {
		s->reason = "shutdown";
		smtp_close(s, "421 4.3.2 Service shutting down");
	}
	smtp_session_process(s);
}
