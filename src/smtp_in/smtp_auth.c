/*
 * smtp_auth.c - AUTH for submission (RFC 4954, RFC 6409): the PLAIN
 * (RFC 4616) and LOGIN mechanisms, the password check threads, and the
 * per-client failure limit.
 *
 * AUTH is offered only inside TLS, on every listener (and so on the MX
 * port only after STARTTLS): PLAIN and LOGIN send the password as it
 * is.  The users come from auth_users_file, loaded by the master
 * (authdb.c); smtp-in never opens it.
 *
 * The password check runs crypt(3) with a deliberately slow hash; it
 * must not stall the other sessions of the loop (DESIGN.md 5).  So it
 * runs on AUTH_THREADS worker threads, fed through a mutex-protected
 * list; results come back through an eventfd, as the commit threads
 * of smtp_data.c do.  Meanwhile the session is in SMTP_ST_AUTH_WAIT:
 * it reads no input, so pipelined commands wait in the buffer and are
 * answered in order afterwards.
 *
 * Ownership: a job (struct auth_job) is owned by the threads from
 * submit to completion.  Its session pointer is read and written on
 * the loop only; a session freed meanwhile sets it to NULL (detaches)
 * and the completion then just frees the job.  The threads touch only
 * the hash, the password copy and the result.
 *
 * Failures: each is answered "535 5.7.8" only after a delay (an
 * evtimer; other sessions go on) that doubles with the failures of the
 * client address: auth_failure_delay, 2x, 4x ... up to 32x.  Failures
 * are counted per address (IPv6 per /64) in a leaky bucket: at most
 * auth_failure_limit of them, one forgotten every auth_failure_window /
 * auth_failure_limit.  The failure that reaches the limit, and any AUTH
 * from an address at the limit, get "421 4.7.0" and the session closes;
 * an event=alarm line is logged.  Unknown users are checked against a
 * real hash too, so the timing does not tell which logins exist.
 */
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/authdb.h"
#include "../common/config.h"
#include "smtp_in.h"

#define AUTH_THREADS	2	/* crypt is CPU bound; the box is small */
#define AUTH_RESP_MAX	12288	/* response line, RFC 4954 4 */
#define AUTH_DEC_MAX	(AUTH_RESP_MAX / 4 * 3)
#define AUTH_LOG_USER	600	/* sanitized login in a log line */
#define FAIL_BUCKETS	1024	/* failure table hash buckets */
#define FAIL_MAX	16384	/* addresses tracked at once */
#define DELAY_SHIFT_MAX	5	/* delay grows to 32x at most */

enum auth_mech { MECH_PLAIN, MECH_LOGIN };

/* one password check, handed to the threads */
struct auth_job {
	struct smtp_session	*s;	/* loop only; NULL once detached */
	const char		*hash;	/* the config's, lives as long */
	char			 pw[AUTHDB_PASS_MAX + 1];
	int			 known;	/* the login exists */
	int			 result; /* threads: authdb_verify() */
	struct auth_job		*next;
};

/* the exchange of one session, from AUTH to its final reply */
struct smtp_auth {
	enum auth_mech		 mech;
	int			 step;	/* LOGIN: 0 user, 1 password */
	char			 user[AUTHDB_USER_MAX + 1];
	size_t			 userlen;
	int			 baduser; /* LOGIN user unusable */
	struct auth_job		*job;	/* with the threads, or NULL */
	struct event		*delay;	/* failure delay timer */
	int			 limit;	/* answer 421 and close */
};

/* failures of one client address */
struct auth_fail {
	struct auth_fail	*next;
	int			 family;
	uint8_t			 addr[16];
	unsigned		 fails;
	time_t			 stamp;	/* when the last leak was counted */
};

static void	auth_start(struct smtp_session *, enum auth_mech,
		    const char *, size_t, int);
static void	auth_plain(struct smtp_session *, const char *, size_t);
static void	auth_login(struct smtp_session *, const char *, size_t);
static void	auth_check(struct smtp_session *, const char *, size_t,
		    const char *, size_t, int);
static void	auth_ok(struct smtp_session *);
static void	auth_fail(struct smtp_session *);
static void	auth_delay_done(evutil_socket_t, short, void *);
static void	auth_end(struct smtp_session *);
static void	auth_log(struct smtp_session *, const char *);
static void	auth_limit_close(struct smtp_session *, unsigned);
static int	auth_decode(struct smtp_session *, const char *, size_t,
		    char *, size_t *);
static void	job_submit(struct auth_job *);
static void	job_free(struct auth_job *);
static void	*job_main(void *);
static void	job_ready(evutil_socket_t, short, void *);
static void	job_complete(struct auth_job *);
static struct auth_fail *fail_get(const struct smtp_session *, int);
static unsigned	fail_level(struct auth_fail *, time_t);
static void	fail_gc(time_t);
static uint32_t	fail_hash(int, const uint8_t *);
static void	fail_key(const struct smtp_session *, uint8_t *);

static pthread_mutex_t	 job_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 job_cv = PTHREAD_COND_INITIALIZER;
static struct auth_job	*job_pending;		/* loop -> threads */
static struct auth_job	**job_pending_tail = &job_pending;
static struct auth_job	*job_done;		/* threads -> loop */
static struct auth_job	**job_done_tail = &job_done;
static int		 job_efd = -1;
static struct event	*job_ev;
static int		 auth_up;		/* threads running */

static struct auth_fail	*fail_table[FAIL_BUCKETS];
static size_t		 fail_count;

/*
 * smtp_auth_init - eventfd, completion event and the threads (which
 * block every signal: signals belong to the loop).  Called only when
 * users are configured; until then AUTH is not offered.
 */
int
smtp_auth_init(struct event_base *base)
{
	pthread_t	 tid;
	sigset_t	 all, old;
	int		 i, err;

	if ((job_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	job_ev = event_new(base, job_efd, EV_READ | EV_PERSIST, job_ready,
	    NULL);
	if (job_ev == NULL || event_add(job_ev, NULL) == -1)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < AUTH_THREADS; i++) {
		if ((err = pthread_create(&tid, NULL, job_main, NULL))) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			errno = err;
			return -1;
		}
		pthread_detach(tid);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	auth_up = 1;
	return 0;
}

/* smtp_auth_offered - is AUTH advertised to (and usable by) s? */
int
smtp_auth_offered(const struct smtp_session *s)
{
	return auth_up && smtp_srv->conf->authdb != NULL &&
	    (s->flags & SF_TLS);
}

/*
 * smtp_cmd_auth - AUTH mechanism [initial-response] (RFC 4954 4).
 * Only in SMTP_ST_HELO (the verb table refuses it in a transaction).
 */
void
smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
	struct auth_fail	*f;
	const char		*sp;
	size_t			 mlen;
	unsigned		 n;

	if (!smtp_auth_offered(s)) {
		if (auth_up && smtp_srv->tls_ctx != NULL)
			/* RFC 4954 6: PLAIN and LOGIN need encryption */
			smtp_reply_error(s, "538 5.7.11 Encryption required "
			    "for requested authentication mechanism");
		else
			smtp_reply_error(s,
			    "503 5.5.1 Authentication not enabled");
		return;
	}
	if (s->flags & SF_AUTH) {
		smtp_reply_error(s, "503 5.5.1 Already authenticated");
		return;
	}
	if ((f = fail_get(s, 0)) != NULL && (n = fail_level(f, time(NULL))) >=
	    smtp_srv->conf->auth_failure_limit) {
		auth_limit_close(s, n);
		return;
	}
	sp = memchr(c->arg, ' ', c->arglen);
	mlen = sp != NULL ? (size_t)(sp - c->arg) : c->arglen;
	if (mlen == 5 && mem_casecmp(c->arg, "PLAIN", 5) == 0)
		auth_start(s, MECH_PLAIN, sp, c->arglen - mlen, sp != NULL);
	else if (mlen == 5 && mem_casecmp(c->arg, "LOGIN", 5) == 0)
		auth_start(s, MECH_LOGIN, sp, c->arglen - mlen, sp != NULL);
	else
		smtp_reply_error(s,
		    "504 5.5.4 Unrecognized authentication type");
}

/*
 * auth_start - a known mechanism: take the initial response (after
 * its space; "=" is an empty one) or send the first challenge.
 */
static void
auth_start(struct smtp_session *s, enum auth_mech mech, const char *sp,
    size_t splen, int initial)
{
	struct smtp_auth	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		log_warn("event=error client=%s sid=%lu error=alloc",
		    s->addrtext, s->id);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	a->mech = mech;
	s->auth = a;
	smtp_enter_state(s, SMTP_ST_AUTH_INPUT);
	if (!initial) {
		/* "Username:" for LOGIN; PLAIN's challenge is empty */
		smtp_reply(s, mech == MECH_LOGIN ? "334 VXNlcm5hbWU6" :
		    "334 ");
		return;
	}
	/* sp[0] is the space; "=" stands for an empty response */
	if (splen == 2 && sp[1] == '=')
		smtp_auth_line(s, sp + 1, 0);
	else
		smtp_auth_line(s, sp + 1, splen - 1);
}

/*
 * smtp_auth_line - one client response (a line without CRLF, or the
 * initial response), in SMTP_ST_AUTH_INPUT.  "*" cancels (RFC 4954 4).
 */
void
smtp_auth_line(struct smtp_session *s, const char *p, size_t len)
{
	char	 dec[AUTH_DEC_MAX];
	size_t	 n;

	if (s->auth == NULL || s->state != SMTP_ST_AUTH_INPUT)
		panic("smtp_auth_line: state %s", smtp_state_name(s->state));
	if (len == 1 && p[0] == '*') {
		auth_end(s);
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (auth_decode(s, p, len, dec, &n) == -1)
		return;
	if (s->auth->mech == MECH_PLAIN)
		auth_plain(s, dec, n);
	else
		auth_login(s, dec, n);
	explicit_bzero(dec, n);
}

/* auth_decode - base64 of a response, or 501 5.5.2 and the end */
static int
auth_decode(struct smtp_session *s, const char *p, size_t len, char *out,
    size_t *n)
{
	if (smtp_auth_b64_decode(p, len, out, AUTH_DEC_MAX, n) == 0)
		return 0;
	log_info("event=auth client=%s sid=%lu error=bad_base64", s->addrtext,
	    s->id);
	auth_end(s);
	smtp_reply_error(s, "501 5.5.2 Cannot decode response");
	return -1;
}

/*
 * auth_plain - RFC 4616: an authorization identity other than the
 * login is not supported (nobody may act for another user here), so
 * it fails like a wrong password.
 */
static void
auth_plain(struct smtp_session *s, const char *msg, size_t len)
{
	struct smtp_sasl_plain	 pl;
	int			 usable;

	if (smtp_auth_plain(msg, len, &pl) == -1) {
		auth_check(s, "", 0, "", 0, 0);
		return;
	}
	usable = pl.authzidlen == 0 || (pl.authzidlen == pl.authcidlen &&
	    memcmp(pl.authzid, pl.authcid, pl.authcidlen) == 0);
	auth_check(s, pl.authcid, pl.authcidlen, pl.passwd, pl.passwdlen,
	    usable);
}

/* auth_login - LOGIN: the user name, then "Password:", the password */
static void
auth_login(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_auth	*a = s->auth;

	if (a->step == 0) {
		a->step = 1;
		if (len == 0 || len > AUTHDB_USER_MAX ||
		    memchr(p, '\0', len) != NULL) {
			a->baduser = 1;
			len = len > AUTHDB_USER_MAX ? AUTHDB_USER_MAX : len;
		}
		memcpy(a->user, p, len);
		a->user[len] = '\0';
		a->userlen = len;
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		return;
	}
	auth_check(s, a->user, a->userlen, p, len, !a->baduser &&
	    len > 0 && memchr(p, '\0', len) == NULL);
}

/*
 * auth_check - hand login and password to the threads.  An unusable
 * request (malformed, unknown login, no users at all) is still checked
 * against a real hash when there is one, so that it takes as long.
 */
static void
auth_check(struct smtp_session *s, const char *user, size_t ulen,
    const char *pw, size_t pwlen, int usable)
{
	struct smtp_auth	*a = s->auth;
	struct auth_job		*j;
	const struct authdb	*db = smtp_srv->conf->authdb;
	const char		*hash = NULL;

	if (user != a->user) {
		ulen = ulen > AUTHDB_USER_MAX ? AUTHDB_USER_MAX : ulen;
		memcpy(a->user, user, ulen);
		a->user[ulen] = '\0';
		a->userlen = ulen;
	}
	if (pwlen > AUTHDB_PASS_MAX)
		usable = 0;
	if (usable)
		hash = authdb_hash(db, user, ulen);
	smtp_enter_state(s, SMTP_ST_AUTH_WAIT);
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warn("event=error client=%s sid=%lu error=alloc",
		    s->addrtext, s->id);
		auth_end(s);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	j->known = hash != NULL;
	j->hash = hash != NULL ? hash : authdb_dummy_hash(db);
	if (j->hash == NULL) {
		free(j);
		auth_fail(s);
		return;
	}
	if (pwlen > AUTHDB_PASS_MAX)
		pwlen = AUTHDB_PASS_MAX;
	memcpy(j->pw, pw, pwlen);
	j->pw[pwlen] = '\0';
	j->s = s;
	a->job = j;
	job_submit(j);
}

/* auth_ok - 235; the login is kept for MAIL, the envelope and logs */
static void
auth_ok(struct smtp_session *s)
{
	char	*u;

	if ((u = str_dup_len(s->auth->user, s->auth->userlen)) == NULL) {
		log_warn("event=error client=%s sid=%lu error=alloc",
		    s->addrtext, s->id);
		auth_end(s);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	auth_log(s, "ok");
	free(s->authuser);
	s->authuser = u;
	s->flags |= SF_AUTH;
	auth_end(s);
	smtp_reply(s, "235 2.7.0 Authentication successful");
}

/*
 * auth_fail - count the failure against the client address; at the
 * limit 421 and close, else 535 after the (growing) delay.
 */
static void
auth_fail(struct smtp_session *s)
{
	struct smtp_auth	*a = s->auth;
	struct auth_fail	*f;
	struct timeval		 tv;
	unsigned		 n = 1, shift;

	if ((f = fail_get(s, 1)) != NULL) {
		(void)fail_level(f, time(NULL));
		if (f->fails == 0)
			f->stamp = time(NULL);
		f->fails++;
		n = f->fails;
	}
	auth_log(s, "fail");
	if (n >= smtp_srv->conf->auth_failure_limit) {
		auth_limit_close(s, n);
		return;
	}
	shift = n - 1 < DELAY_SHIFT_MAX ? n - 1 : DELAY_SHIFT_MAX;
	tv.tv_sec = smtp_srv->conf->auth_failure_delay << shift;
	tv.tv_usec = 0;
	if (a->delay == NULL &&
	    (a->delay = evtimer_new(smtp_srv->base, auth_delay_done, s)) ==
	    NULL) {
		auth_delay_done(-1, 0, s);
		return;
	}
	evtimer_add(a->delay, &tv);
}

/* auth_delay_done - the failure delay is over: 535, input again */
static void
auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->state != SMTP_ST_AUTH_WAIT)
		return;		/* closed meanwhile (shutdown) */
	auth_end(s);
	smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	smtp_session_process(s);
}

/* auth_limit_close - too many failures from this address */
static void
auth_limit_close(struct smtp_session *s, unsigned n)
{
	log_info("event=alarm type=auth_limit client=%s failures=%u sid=%lu",
	    s->addrtext, n, s->id);
	if (s->auth != NULL)
		auth_end(s);
	s->reason = "auth_limit";
	smtp_close(s, "421 4.7.0 Too many authentication failures");
}

/* auth_log - event=auth with the sanitized login */
static void
auth_log(struct smtp_session *s, const char *result)
{
	char	 u[AUTH_LOG_USER];

	log_sanitize(s->auth->user, s->auth->userlen, u, sizeof(u));
	log_info("event=auth client=%s sid=%lu mech=%s user=%s result=%s",
	    s->addrtext, s->id, s->auth->mech == MECH_PLAIN ? "PLAIN" :
	    "LOGIN", s->auth->userlen > 0 ? u : "-", result);
}

/* auth_end - the exchange is over: free it, back to commands */
static void
auth_end(struct smtp_session *s)
{
	struct smtp_auth	*a = s->auth;

	if (a == NULL)
		return;
	if (a->job != NULL)
		panic("auth_end: job with the threads");
	if (a->delay != NULL)
		event_free(a->delay);
	explicit_bzero(a, sizeof(*a));
	free(a);
	s->auth = NULL;
	if (s->state == SMTP_ST_AUTH_INPUT || s->state == SMTP_ST_AUTH_WAIT)
		smtp_enter_state(s, SMTP_ST_HELO);
}

/*
 * smtp_auth_abort - the response line was refused by the input loop
 * (bare CR or LF, already answered): the exchange ends without more.
 */
void
smtp_auth_abort(struct smtp_session *s)
{
	if (s->state == SMTP_ST_AUTH_INPUT)
		auth_end(s);
}

/*
 * smtp_auth_session_free - the session goes: a job with the threads is
 * detached (its completion frees it), the timer and exchange freed.
 */
void
smtp_auth_session_free(struct smtp_session *s)
{
	struct smtp_auth	*a = s->auth;

	if (a == NULL)
		return;
	if (a->job != NULL) {
		a->job->s = NULL;
		a->job = NULL;
	}
	if (a->delay != NULL)
		event_free(a->delay);
	explicit_bzero(a, sizeof(*a));
	free(a);
	s->auth = NULL;
}

/* ---- the password check threads --------------------------------- */

/* job_submit - queue a check for the threads */
static void
job_submit(struct auth_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&job_mtx);
	*job_pending_tail = j;
	job_pending_tail = &j->next;
	pthread_cond_signal(&job_cv);
	pthread_mutex_unlock(&job_mtx);
}

/* job_main - one check at a time: crypt is all CPU, batching buys nothing */
static void *
job_main(void *arg)
{
	struct auth_job	*j;
	uint64_t	 one = 1;

	for (;;) {
		pthread_mutex_lock(&job_mtx);
		while (job_pending == NULL)
			pthread_cond_wait(&job_cv, &job_mtx);
		j = job_pending;
		if ((job_pending = j->next) == NULL)
			job_pending_tail = &job_pending;
		pthread_mutex_unlock(&job_mtx);

		j->result = authdb_verify(j->hash, j->pw);
		explicit_bzero(j->pw, sizeof(j->pw));

		pthread_mutex_lock(&job_mtx);
		j->next = NULL;
		*job_done_tail = j;
		job_done_tail = &j->next;
		pthread_mutex_unlock(&job_mtx);
		while (write(job_efd, &one, sizeof(one)) == -1 &&
		    errno == EINTR)
			;
	}
	return NULL;
}

/* job_ready - completions from the threads, on the loop */
static void
job_ready(evutil_socket_t fd, short ev, void *arg)
{
	struct auth_job	*list, *j, *next;
	uint64_t	 v;

	while (read(job_efd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&job_mtx);
	list = job_done;
	job_done = NULL;
	job_done_tail = &job_done;
	pthread_mutex_unlock(&job_mtx);
	for (j = list; j != NULL; j = next) {
		next = j->next;
		job_complete(j);
	}
}

/*
 * job_complete - the answer for a session that may be gone (detached)
 * or closing (shutdown); only a waiting one gets its reply.
 */
static void
job_complete(struct auth_job *j)
{
	struct smtp_session	*s = j->s;
	int			 ok = j->result == 1 && j->known;

	if (j->result == -1)
		log_warnx("event=error error=auth_verify");
	job_free(j);
	if (s == NULL)
		return;
	s->auth->job = NULL;
	if (s->state != SMTP_ST_AUTH_WAIT)
		return;
	if (ok)
		auth_ok(s);
	else
		auth_fail(s);
	smtp_session_process(s);
}

static void
job_free(struct auth_job *j)
{
	explicit_bzero(j, sizeof(*j));
	free(j);
}

/* ---- failures per client address -------------------------------- */

/*
 * fail_get - the failure entry of the session's address; create says
 * whether to add one.  NULL if absent (or the table is full even after
 * dropping the forgotten entries: then that address is not limited,
 * but every failure is still delayed).
 */
static struct auth_fail *
fail_get(const struct smtp_session *s, int create)
{
	struct auth_fail	*f;
	uint8_t			 key[16];
	uint32_t		 h;
	static int		 warned;

	fail_key(s, key);
	h = fail_hash(s->family, key);
	for (f = fail_table[h]; f != NULL; f = f->next)
		if (f->family == s->family && memcmp(f->addr, key, 16) == 0)
			return f;
	if (!create)
		return NULL;
	if (fail_count >= FAIL_MAX)
		fail_gc(time(NULL));
	if (fail_count >= FAIL_MAX || (f = calloc(1, sizeof(*f))) == NULL) {
		if (!warned++)
			log_warnx("event=error error=auth_fail_table_full");
		return NULL;
	}
	f->family = s->family;
	memcpy(f->addr, key, 16);
	f->next = fail_table[h];
	fail_table[h] = f;
	fail_count++;
	return f;
}

/*
 * fail_level - failures still counted: one leaks out every
 * window / limit seconds since the stamp (leaky bucket).
 */
static unsigned
fail_level(struct auth_fail *f, time_t now)
{
	const struct config	*conf = smtp_srv->conf;
	time_t			 step, k;

	step = conf->auth_failure_window / (time_t)conf->auth_failure_limit;
	if (step < 1)
		step = 1;
	if (f->fails == 0 || now <= f->stamp)
		return f->fails;
	k = (now - f->stamp) / step;
	if (k >= (time_t)f->fails) {
		f->fails = 0;
		f->stamp = now;
	} else {
		f->fails -= (unsigned)k;
		f->stamp += k * step;
	}
	return f->fails;
}

/* fail_gc - drop the entries whose failures have all leaked out */
static void
fail_gc(time_t now)
{
	struct auth_fail	**pp, *f;
	size_t			 i;

	for (i = 0; i < FAIL_BUCKETS; i++) {
		for (pp = &fail_table[i]; (f = *pp) != NULL; ) {
			if (fail_level(f, now) == 0) {
				*pp = f->next;
				free(f);
				fail_count--;
			} else
				pp = &f->next;
		}
	}
}

/* fail_key - the address, IPv6 cut to its /64 (one subscriber's) */
static void
fail_key(const struct smtp_session *s, uint8_t *key)
{
	memset(key, 0, 16);
	memcpy(key, s->addr, s->family == AF_INET6 ? 8 : 4);
}

static uint32_t
fail_hash(int family, const uint8_t *key)
{
	uint32_t	 h = 2166136261u;
	size_t		 i;

	h = (h ^ (uint32_t)family) * 16777619u;
	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % FAIL_BUCKETS;
}

/* ---- SASL decoding ---------------------------------------------- */

/*
 * smtp_auth_b64_decode - RFC 4648 4 without leniency: a response that
 * is not exactly base64 is a client error (RFC 4954 4, 501 5.5.2).
 */
int
smtp_auth_b64_decode(const char *in, size_t len, char *out, size_t outsz,
    size_t *outlen)
{
	size_t	 i, o = 0, pad = 0;
	int	 v[4], k;

	*outlen = 0;
	if (len % 4 != 0 || len / 4 * 3 > outsz)
		return -1;
	for (i = 0; i < len; i += 4) {
		for (k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* nothing may follow a '=' */
			if (pad > 0 || (v[k] = b64_digit(
			    (unsigned char)in[i + k])) < 0)
				return -1;
		}
		out[o++] = (char)((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (char)(((v[1] & 0xf) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (char)(((v[2] & 0x3) << 6) | v[3]);
	}
	*outlen = o;
	return 0;
}

/* smtp_auth_plain - "authzid NUL authcid NUL passwd" (RFC 4616 2) */
int
smtp_auth_plain(const char *msg, size_t len, struct smtp_sasl_plain *pl)
{
	const char	*n1, *n2;

	memset(pl, 0, sizeof(*pl));
	if ((n1 = memchr(msg, '\0', len)) == NULL ||
	    (n2 = memchr(n1 + 1, '\0', len - (size_t)(n1 + 1 - msg))) ==
	    NULL || memchr(n2 + 1, '\0', len - (size_t)(n2 + 1 - msg)) !=
	    NULL)
		return -1;
	pl->authzid = msg;
	pl->authzidlen = (size_t)(n1 - msg);
	pl->authcid = n1 + 1;
	pl->authcidlen = (size_t)(n2 - n1 - 1);
	pl->passwd = n2 + 1;
	pl->passwdlen = len - (size_t)(n2 + 1 - msg);
	if (pl->authcidlen == 0 || pl->passwdlen == 0)
		return -1;
	return 0;
}
