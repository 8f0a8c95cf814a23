/*
 * local.c - the local delivery role: the maildir: transport.
 *
 * Runs as `user`, not chrooted (the Maildirs live outside the spool).
 * The queue sends one DELIVER_JOB at a time (src/common/deliver.h) with
 * the message file open read-only; for each recipient we expand the
 * transport template, make the Maildir if missing, write tmp/UNIQUE,
 * fsync, link it into new/, fsync new/, and answer 2xx, 4xx or 5xx.
 *
 * Invariants:
 * - A recipient is answered 2xx only after its file is in new/ and both
 *   the file and new/ were fsync'ed.
 * - Nothing from the envelope becomes a path component unchecked: local
 *   parts and domains holding '/', control characters, a leading '.'
 *   (so also "..") are refused with 5.1.3, and the Maildir itself (the
 *   last component of the expanded template) is never a followed
 *   symlink; parent directories are the administrator's.
 * - Blocking I/O is fine here (one job at a time), but a job may not
 *   take longer than LOCAL_JOB_TIMEOUT: SIGALRM then ends the process
 *   and the master restarts the delivery group; the queue has already
 *   deferred the job after its own, longer, timeout.
 *
 * Failure grades: bad IPC is fatal; a bad recipient is 5xx; every
 * system error (ENOSPC, EDQUOT, EIO, EACCES...) is 4xx: the message
 * stays queued and the administrator can fix the cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "../lib/buf.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/deliver.h"
#include "../common/role.h"
#include "../common/spool.h"

#define LOCAL_JOB_TIMEOUT	240	/* s; the queue waits 300 */
#define LOCAL_POLL_MS		1000	/* SIGTERM check between jobs */
#define LOCAL_IOBUF		(64 * 1024)
#define LOCAL_NAME_MAX		(CONF_HOSTNAME_MAX * 4 + 64)

/* one open Maildir */
struct maildir {
	int	 dir;		/* the Maildir itself */
	int	 tmp;
	int	 new;
};

/* output of the content copy: a buffer in front of the tmp file */
struct local_out {
	int	 fd;
	char	*buf;
	size_t	 len;
};

static volatile sig_atomic_t local_stop;
static unsigned	 local_counter;
static char	 local_host[LOCAL_NAME_MAX];

static void	local_sigterm(int);
static void	local_job(const struct deliver_job *, int,
		    struct deliver_reply *);
static void	local_rcpt(const struct envelope *, int, const char *,
		    const struct deliver_rcpt *, struct deliver_result *);
static void	local_result(struct deliver_result *, unsigned,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static int	local_part_ok(const char *, size_t);
static int	local_expand(const char *, const char *, size_t,
		    const char *, size_t, char *, size_t);
static int	local_mkdirs(char *);
static int	local_maildir_open(const char *, struct maildir *, int *);
static void	local_maildir_close(struct maildir *);
static int	local_write_file(int, const struct envelope *, int,
		    const char *, const char *, size_t, const char *);
static int	local_put(struct local_out *, const void *, size_t);
static int	local_flush(struct local_out *);
static void	local_errno_result(struct deliver_result *, const char *,
		    int);
static void	local_hostname(const char *);

/* local_run - the local delivery role's main loop; never returns */
void
local_run(struct role_ctx *ctx)
{
	static struct deliver_job	 job;
	static struct deliver_reply	 reply;
	struct sigaction		 sa;
	struct pollfd			 pfd;
	uint32_t			 type;
	ssize_t				 n;
	size_t				 nr;
	int				 fd, r;

	log_setproc("local");
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = local_sigterm;	/* no SA_RESTART: poll sees EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) == -1)
		fatal("event=start sigaction");
	signal(SIGPIPE, SIG_IGN);
	local_hostname(ctx->conf->hostname);
	log_info("event=start role=local");

	for (;;) {
		if (local_stop) {
			log_info("event=stop role=local");
			exit(0);
		}
		pfd.fd = ctx->local_sock;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, LOCAL_POLL_MS);
		if (r == -1 && errno != EINTR)
			fatal("event=ipc poll");
		if (r <= 0)
			continue;
		n = ipc_recv(ctx->local_sock, &type, &job, sizeof(job), &fd);
		if (n == -1)
			fatal("event=ipc recv");
		if (n == 0 && type == 0) {
			log_info("event=stop role=local reason=\"queue gone\"");
			exit(0);
		}
		/* exact length for the announced count, and the fd */
		if (type != DELIVER_JOB ||
		    (size_t)n < offsetof(struct deliver_job, r) ||
		    job.n == 0 || job.n > DELIVER_RCPT_MAX ||
		    (size_t)n != DELIVER_JOB_LEN(job.n) || fd == -1)
			fatalx("event=ipc reason=\"bad job type=%#x len=%zd\"",
			    type, n);
		nr = job.n;
		alarm(LOCAL_JOB_TIMEOUT);
		local_job(&job, fd, &reply);
		alarm(0);
		close(fd);
		if (ipc_send(ctx->local_sock, DELIVER_REPLY, &reply,
		    DELIVER_REPLY_LEN(nr), -1) == -1)
			fatal("event=ipc send");
	}
}

static void
local_sigterm(int sig)
{
	local_stop = 1;
}

/* local_job - deliver every recipient of one job, filling the reply */
static void
local_job(const struct deliver_job *job, int fd, struct deliver_reply *rep)
{
	struct envelope	 env;
	const char	*why = NULL;
	char		*mem = NULL;
	size_t		 i, memlen;
	int		 ok;

	if (memchr(job->qid, '\0', sizeof(job->qid)) == NULL ||
	    !qid_valid(job->qid, strlen(job->qid)))
		fatalx("event=ipc reason=\"bad qid in job\"");
	memset(rep, 0, sizeof(*rep));
	rep->id = job->id;
	rep->n = job->n;
	/* a small file is read once, for every recipient (mem) */
	ok = spool_msg_load(fd, &env, &why, &mem, &memlen) == 0;
	if (ok && strcmp(env.qid, job->qid) != 0) {
		why = "queue id mismatch";
		ok = 0;
		envelope_free(&env);
		free(mem);
		mem = NULL;
	}
	if (!ok)
		log_warnx("event=local_error qid=%s reason=\"%s\"", job->qid,
		    why);
	for (i = 0; i < job->n; i++) {
		rep->r[i].idx = job->r[i].idx;
		if (memchr(job->r[i].domain, '\0', DELIVER_DOMAIN_MAX) ==
		    NULL || memchr(job->r[i].tmpl, '\0', DELIVER_TMPL_MAX) ==
		    NULL)
			fatalx("event=ipc reason=\"unterminated string\"");
		if (!ok)
			local_result(&rep->r[i], 451, "4.3.0 cannot read "
			    "queued message: %s", why);
		else if (job->r[i].idx >= env.nrcpt)
			fatalx("event=ipc reason=\"recipient index %u of %zu\"",
			    job->r[i].idx, env.nrcpt);
		else
			local_rcpt(&env, fd, mem, &job->r[i], &rep->r[i]);
	}
	if (ok)
		envelope_free(&env);
	free(mem);
}

/* local_rcpt - deliver to one recipient's Maildir */
static void
local_rcpt(const struct envelope *env, int fd, const char *mem,
    const struct deliver_rcpt *r, struct deliver_result *res)
{
	struct maildir	 md;
	char		 path[PATH_MAX], name[LOCAL_NAME_MAX], safe[128];
	const char	*addr, *at;
	size_t		 alen, llen, dlen;
	int		 n, wfd, perm;

	addr = env->rcpt[r->idx];
	alen = strlen(addr);
	/* tolerate a spool that kept the angle brackets */
	if (alen >= 2 && addr[0] == '<' && addr[alen - 1] == '>') {
		addr++;
		alen -= 2;
	}
	at = memrchr(addr, '@', alen);
	llen = at ? (size_t)(at - addr) : alen;
	dlen = strlen(r->domain);
	log_sanitize(addr, alen, safe, sizeof(safe));
	if (!local_part_ok(addr, llen) || !local_part_ok(r->domain, dlen)) {
		local_result(res, 550, "5.1.3 bad destination mailbox "
		    "address for a maildir");
		return;
	}
	n = local_expand(r->tmpl, addr, llen, r->domain, dlen, path,
	    sizeof(path));
	if (n == -2) {
		local_result(res, 550, "5.1.3 destination mailbox path "
		    "too long");
		return;
	}
	if (n == -1) {
		log_warnx("event=local_error qid=%s to=<%s> reason=\"bad "
		    "maildir template\"", env->qid, safe);
		local_result(res, 451, "4.3.5 bad maildir template");
		return;
	}
	if (local_maildir_open(path, &md, &perm) == -1) {
		log_warn("event=local_error qid=%s to=<%s> path=%s",
		    env->qid, safe, path);
		if (perm)
			local_result(res, 451, "4.3.0 maildir is a symbolic "
			    "link or not a directory");
		else
			local_errno_result(res, "cannot open maildir", errno);
		return;
	}
	/* Maildir unique name: time.pid_counter.host */
	n = snprintf(name, sizeof(name), "%lld.%ld_%u.%s",
	    (long long)time(NULL), (long)getpid(), local_counter++,
	    local_host);
	if (n < 0 || (size_t)n >= sizeof(name)) {
		local_maildir_close(&md);
		local_result(res, 451, "4.3.0 maildir file name too long");
		return;
	}
	wfd = openat(md.tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (wfd == -1)
		goto fail;
	if (local_write_file(wfd, env, fd, mem, addr, alen, at ? NULL :
	    r->domain) == -1) {
		close(wfd);
		goto fail_unlink;
	}
	if (close(wfd) == -1)
		goto fail_unlink;
	/* link, not rename: never replaces a file already in new/ */
	if (linkat(md.tmp, name, md.new, name, 0) == -1)
		goto fail_unlink;
	(void)unlinkat(md.tmp, name, 0);
	if (fsync(md.new) == -1) {
		/* the file is there, but not durably: let it be redone */
		local_errno_result(res, "fsync new", errno);
		local_maildir_close(&md);
		return;
	}
	local_maildir_close(&md);
	local_result(res, 250, "2.0.0 delivered to maildir");
	return;
fail_unlink:
	n = errno;
	(void)unlinkat(md.tmp, name, 0);
	errno = n;
fail:
	log_warn("event=local_error qid=%s to=<%s> path=%s", env->qid, safe,
	    path);
	local_errno_result(res, "cannot write maildir", errno);
	local_maildir_close(&md);
}

static void
local_result(struct deliver_result *res, unsigned code, const char *fmt,
    ...)
{
	va_list	 ap;
	int	 n;

	res->code = code;
	va_start(ap, fmt);
	n = vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
	if (n < 0)
		res->text[0] = '\0';
	/* a truncated text is still a valid reason: keep it */
}

/* local_errno_result - classify a system error: always temporary */
static void
local_errno_result(struct deliver_result *res, const char *what, int err)
{
	switch (err) {
	case EDQUOT:
		local_result(res, 452, "4.2.2 mailbox full");
		break;
	case ENOSPC:
		local_result(res, 452, "4.3.1 mail system full");
		break;
	default:
		local_result(res, 451, "4.3.0 %s: %s", what, strerror(err));
		break;
	}
}

/*
 * local_part_ok - may p[0..len) become (part of) a path component?
 * Refuses empty, '/', a leading '.' (hence "." and ".."), control
 * characters and DEL.
 */
static int
local_part_ok(const char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || p[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] == '/' || (unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

/*
 * local_expand - template with %d (domain, lower-cased), %u (local
 * part) and %% into out.  -1 for a bad template (a '%' sequence we do
 * not know, or not absolute), -2 if the result does not fit.
 */
static int
local_expand(const char *tmpl, const char *local, size_t llen,
    const char *domain, size_t dlen, char *out, size_t outsz)
{
	const char	*s;
	size_t		 o = 0, n;
	char		 one;
	int		 lower;

	if (tmpl[0] != '/')
		return -1;
	for (; *tmpl != '\0'; tmpl++) {
		lower = 0;
		if (*tmpl != '%') {
			one = *tmpl;
			s = &one;
			n = 1;
		} else {
			switch (*++tmpl) {
			case 'd':
				s = domain;
				n = dlen;
				lower = 1;
				break;
			case 'u':
				s = local;
				n = llen;
				break;
			case '%':
				s = "%";
				n = 1;
				break;
			default:
				return -1;
			}
		}
		if (n >= outsz - o)
			return -2;
		memcpy(out + o, s, n);
		if (lower)
			mem_ascii_lower(out + o, n);
		o += n;
	}
	/* "/x/%u/" names the same Maildir as "/x/%u" */
	while (o > 1 && out[o - 1] == '/')
		o--;
	out[o] = '\0';
	return 0;
}

/* local_mkdirs - make the missing parents of path (mode 0700) */
static int
local_mkdirs(char *path)
{
	char	*p;

	for (p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/*
 * local_maildir_open - open (making it if missing) the Maildir at path
 * and its tmp/ and new/ (and make cur/).  *perm is set when the last
 * component exists but is a symlink or not a directory.
 */
static int
local_maildir_open(const char *path, struct maildir *md, int *perm)
{
	char		 parent[PATH_MAX];
	const char	*last;
	int		 pfd, saved;
	size_t		 plen;

	*perm = 0;
	md->dir = md->tmp = md->new = -1;
	last = strrchr(path, '/') + 1;
	plen = (size_t)(last - path);
	memcpy(parent, path, plen);
	parent[plen] = '\0';
	if (local_mkdirs(parent) == -1)
		return -1;
	if ((pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (mkdirat(pfd, last, 0700) == -1 && errno != EEXIST)
		goto fail;
	md->dir = openat(pfd, last, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (md->dir == -1) {
		*perm = errno == ELOOP || errno == ENOTDIR;
		goto fail;
	}
	close(pfd);
	pfd = -1;
	if ((mkdirat(md->dir, "tmp", 0700) == -1 && errno != EEXIST) ||
	    (mkdirat(md->dir, "new", 0700) == -1 && errno != EEXIST) ||
	    (mkdirat(md->dir, "cur", 0700) == -1 && errno != EEXIST))
		goto fail;
	md->tmp = openat(md->dir, "tmp", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	md->new = openat(md->dir, "new", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (md->tmp == -1 || md->new == -1)
		goto fail;
	return 0;
fail:
	saved = errno;
	if (pfd != -1)
		close(pfd);
	local_maildir_close(md);
	errno = saved;
	return -1;
}

static void
local_maildir_close(struct maildir *md)
{
	if (md->tmp != -1)
		close(md->tmp);
	if (md->new != -1)
		close(md->new);
	if (md->dir != -1)
		close(md->dir);
	md->dir = md->tmp = md->new = -1;
}

/*
 * local_write_file - Return-Path and Delivered-To, then the content
 * with CRLF turned into LF (the Maildir convention), then fsync.  The
 * content is read from fd, or taken from mem (the whole file, read by
 * spool_msg_load).  dom qualifies a recipient without a domain
 * ("postmaster"), or NULL.
 */
static int
local_write_file(int wfd, const struct envelope *env, int fd,
    const char *mem, const char *rcpt, size_t rlen, const char *dom)
{
	struct local_out out;
	char		*in;
	const char	*p;
	const char	*sender = env->sender ? env->sender : "";
	size_t		 slen, left, n, i;
	off_t		 off;
	ssize_t		 r;
	int		 cr = 0, ret = -1;

	slen = strlen(sender);
	if (slen >= 2 && sender[0] == '<' && sender[slen - 1] == '>') {
		sender++;
		slen -= 2;
	}
	out.fd = wfd;
	out.len = 0;
	out.buf = malloc(LOCAL_IOBUF);
	in = malloc(LOCAL_IOBUF);
	if (out.buf == NULL || in == NULL)
		goto done;
	if (local_put(&out, "Return-Path: <", 14) == -1 ||
	    local_put(&out, sender, slen) == -1 ||
	    local_put(&out, ">\nDelivered-To: ", 16) == -1 ||
	    local_put(&out, rcpt, rlen) == -1)
		goto done;
	if (dom != NULL && (local_put(&out, "@", 1) == -1 ||
	    local_put(&out, dom, strlen(dom)) == -1))
		goto done;
	if (local_put(&out, "\n", 1) == -1)
		goto done;
	off = env->data_off;
	for (left = env->size; left > 0; left -= (size_t)r, off += r) {
		n = left < LOCAL_IOBUF ? left : LOCAL_IOBUF;
		if (mem != NULL) {
			/* its length was checked against the size record */
			p = mem + off;
			r = (ssize_t)n;
		} else {
			r = pread(fd, in, n, off);
			if (r == -1 && errno == EINTR) {
				r = 0;
				continue;
			}
			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				goto done;
			}
			p = in;
		}
		for (i = 0; i < (size_t)r; i++) {
			/* a CR is written late: only CRLF loses it */
			if (cr && p[i] != '\n' && local_put(&out, "\r", 1) ==
			    -1)
				goto done;
			cr = p[i] == '\r';
			if (!cr && local_put(&out, &p[i], 1) == -1)
				goto done;
		}
	}
	if (cr && local_put(&out, "\r", 1) == -1)
		goto done;
	if (local_flush(&out) == -1 || fsync(wfd) == -1)
		goto done;
	ret = 0;
done:
	n = (size_t)errno;
	free(out.buf);
	free(in);
	errno = (int)n;
	return ret;
}

/* local_put - append to the output buffer, flushing when full */
static int
local_put(struct local_out *out, const void *p, size_t len)
{
	if (out->len + len > LOCAL_IOBUF && local_flush(out) == -1)
		return -1;
	if (len > LOCAL_IOBUF)
		return write_all(out->fd, p, len);
	memcpy(out->buf + out->len, p, len);
	out->len += len;
	return 0;
}

static int
local_flush(struct local_out *out)
{
	if (out->len == 0)
		return 0;
	if (write_all(out->fd, out->buf, out->len) == -1)
		return -1;
	out->len = 0;
	return 0;
}

/*
 * local_hostname - the host part of Maildir names, with '/' and ':'
 * encoded as the Maildir specification asks ("\057", "\072").
 */
static void
local_hostname(const char *h)
{
	size_t	 o = 0;

	for (; *h != '\0' && o + 5 < sizeof(local_host); h++) {
		if (*h == '/' || *h == ':') {
			memcpy(local_host + o, *h == '/' ? "\\057" :
			    "\\072", 4);
			o += 4;
		} else
			local_host[o++] = *h;
	}
	local_host[o] = '\0';
}
