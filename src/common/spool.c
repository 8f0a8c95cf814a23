/*
 * spool.c - message files: queue ids, the envelope writer, the strict
 * reader, and the layout of the spool directory.
 *
 * Queue ids (QID_LEN = 16 characters) use Crockford's base32 alphabet
 * "0123456789ABCDEFGHJKMNPQRSTVWXYZ", whose characters are in ASCII
 * order, so that byte order of ids is time order:
 *
 *   chars  0..10  microseconds since the epoch, 55 bits (until ~3111)
 *   chars 11..14  low 20 bits of the pid
 *   char  15      per-process counter, 5 bits
 *
 * Within one process the time part strictly increases (a clock that
 * stands still or steps back is bumped by one microsecond), so a
 * process never draws the same id twice; two processes would need pids
 * equal modulo 2^20 in the same microsecond, and spool_msg_open()
 * creates files O_EXCL and draws again on EEXIST.
 *
 * Writer invariants: the file is written once, front to back, through
 * a 64 KiB write-behind buffer; the only in-place write is the 16-digit
 * size patched by spool_msg_finish() before END and the fsync.  A
 * failed write marks the message failed: it can then only be aborted.
 *
 * Reader invariants (STYLE.md 10): records come in the order of
 * spool.h, each known, each value free of control characters; the
 * header section (up to and including "data\n") is at most
 * SPOOL_HDR_MAX octets with at most SPOOL_RCPT_MAX recipients; the
 * file is exactly data_off + size + strlen("END\n") octets long and
 * ends with END.  Anything else is refused with a static reason.
 *
 * Recycled files (free/): the queue role renames a delivered message
 * file of up to SPOOL_FREE_SIZE octets into free/ instead of unlinking
 * it, and smtp-in's commit threads rename one back to tmp/QID to hold
 * the next message.  An ext4 without a journal pays for every new inode
 * with a scan of the inodes freed in the last seconds, and every create
 * and unlink writes the inode and block bitmaps; a recycled file is
 * overwritten in place and cut to its new length (ftruncate) before
 * the fsync, so its old octets never show.  The rename out of free/ is
 * what makes a file ours: two threads or processes can never write the
 * same one.  The queue never recycles a file that a delivery role may
 * still read (only after the last job's answer), keeps free/ bounded,
 * and empties it at start and when nothing was delivered for a while.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../smtp_in/smtp_parse.h"	/* enum smtp_body values only */
#include "spool.h"

#define SPOOL_WBUF	(64 * 1024)	/* write-behind buffer */
#define SPOOL_HDR_MAX	(64 * 1024)	/* header section, "data\n" incl. */
#define SPOOL_RCPT_MAX	10000
#define SPOOL_ADDR_MAX	1024		/* one address in a record */
#define SPOOL_SIZE_DIGITS 16
#define SPOOL_END	"END\n"
#define SPOOL_END_LEN	4
#define SPOOL_MAGIC	"MOAT-SPOOL 1"
#define QID_TIME_CHARS	11
#define QID_OPEN_TRIES	16
#define SPOOL_RCPT_MIN_CAP 8
#define SPOOL_FREE_BATCH 256		/* names taken per listing of free/ */
#define SPOOL_DIRS_KEPT	8		/* directories kept open for fsync */
#define SPOOL_FREE_RELIST_MS 50		/* an empty free/ listed again */

static const char qid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* header records, in file order */
enum spool_rec {
	R_QID, R_TIME, R_CLIENT, R_CLIENT_NAME, R_HELO, R_PROTO, R_AUTH,
	R_BODY, R_SMTPUTF8, R_FROM, R_RCPT, R_SIZE, R_DATA, R_NREC
};

struct spool_rec_def {
	const char	*name;
	int		 optional;
	int		 repeat;
};

static void	spool_msg_init(struct spool_msg *, struct envelope *,
		    const char *);
static int	spool_msg_name(struct spool_msg *, const char *,
		    const char *);
static int	spool_msg_create(struct spool_msg *);
static int	spool_msg_reuse(struct spool_msg *);
static int	spool_free_take(char [QID_SIZE]);
static size_t	spool_free_scan(int);
static void	qid_forked(void);

static pid_t	qid_pid;	/* getpid(), cached by qid_make */
static int	qid_atfork;

/* names listed in free/, shared by smtp-in's commit threads */
static struct {
	pthread_mutex_t	 mtx;
	char		 names[SPOOL_FREE_BATCH][QID_SIZE];
	size_t		 n, pos;
	long long	 empty_at;	/* ms when a listing found nothing */
	DIR		*d;
} spool_free = { .mtx = PTHREAD_MUTEX_INITIALIZER };
static int	spool_flush(struct spool_msg *, int);
static int	spool_value_ok(const char *, size_t, int empty_ok);
static int	spool_put_field(struct buf *, const char *, const char *,
		    size_t, int empty_ok);
static int	spool_write_header(struct spool_msg *, const struct envelope *);
static int	spool_parse_u64(const char *, size_t, uint64_t *);
static int	spool_copy_field(char *, size_t, const char *, size_t, int);
static int	spool_parse_rec(struct envelope *, enum spool_rec,
		    const char *, size_t, const char **);
static int	spool_parse_header(const char *, size_t, int, struct envelope *,
		    const char **);
static int	spool_pread_all(int, void *, size_t, off_t);
static int	spool_mkdir_p(const char *);
static int	spool_fix_subdir(int, const char *, mode_t, uid_t, gid_t);

static const struct spool_rec_def spool_recs[R_NREC] = {
	[R_QID] =		{ "qid", 0, 0 },
	[R_TIME] =		{ "time", 0, 0 },
	[R_CLIENT] =		{ "client", 0, 0 },
	[R_CLIENT_NAME] =	{ "client_name", 0, 0 },
	[R_HELO] =		{ "helo", 0, 0 },
	[R_PROTO] =		{ "proto", 0, 0 },
	[R_AUTH] =		{ "auth", 1, 0 },
	[R_BODY] =		{ "body", 0, 0 },
	[R_SMTPUTF8] =		{ "smtputf8", 0, 0 },
	[R_FROM] =		{ "from", 0, 0 },
	[R_RCPT] =		{ "rcpt", 0, 1 },
	[R_SIZE] =		{ "size", 0, 0 },
	[R_DATA] =		{ "data", 0, 0 },
};

static const char *const spool_protos[] = {
	"SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "LOCAL", NULL
};

/* body keyword by enum smtp_body; BODY_NONE is written as 7BIT */
static const char *const spool_bodies[] = {
	[BODY_NONE] = "7BIT",
	[BODY_7BIT] = "7BIT",
	[BODY_8BITMIME] = "8BITMIME",
	[BODY_BINARYMIME] = "BINARYMIME",
};

/* subdirectories made by spool_create(), with their modes */
static const struct {
	const char	*name;
	mode_t		 mode;
} spool_subdirs[] = {
	{ "tmp", 0700 },
	{ "incoming", 0700 },
	{ "queue", 0700 },
	{ "hold", 0700 },
	{ "quarantine", 0700 },
	{ SPOOL_FREE, 0700 },
	/* smtp-in's greylist.db (the spool itself may be root's) */
	{ "state", 0700 },
	/* any local user may drop files, nobody but moat may list them */
	{ "maildrop", 01733 },
};

/* ---- queue ids --------------------------------------------------- */

/* qid_make - new unique, sortable, filename-safe queue id (16 chars) */
void
qid_make(char out[QID_SIZE])
{
	static uint64_t	 last_us;
	static unsigned	 counter;
	struct timeval	 tv;
	uint64_t	 us, pid;
	int		 i;

	gettimeofday(&tv, NULL);
	us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	if (us <= last_us)
		us = last_us + 1;
	last_us = us;
	/* the pid is looked up once; a fork clears it (qid_forked) */
	if (qid_pid == 0) {
		if (!qid_atfork) {
			(void)pthread_atfork(NULL, NULL, qid_forked);
			qid_atfork = 1;
		}
		qid_pid = getpid();
	}
	pid = (uint64_t)qid_pid;
	for (i = QID_TIME_CHARS - 1; i >= 0; i--, us >>= 5)
		out[i] = qid_alphabet[us & 31];
	for (i = QID_LEN - 2; i >= QID_TIME_CHARS; i--, pid >>= 5)
		out[i] = qid_alphabet[pid & 31];
	out[QID_LEN - 1] = qid_alphabet[counter++ & 31];
	out[QID_LEN] = '\0';
}

/* qid_forked - a child draws ids with its own pid */
static void
qid_forked(void)
{
	qid_pid = 0;
}

/* qid_valid - is p[0..len) a well-formed queue id? */
int
qid_valid(const char *p, size_t len)
{
	size_t	 i;

	if (len != QID_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] == '\0' || memchr(qid_alphabet, p[i],
		    sizeof(qid_alphabet) - 1) == NULL)
			return 0;
	return 1;
}

/* ---- spool directory --------------------------------------------- */

/*
 * spool_create - make spool_dir and its subdirectories (master, root).
 * The spool itself may be owned by root or by uid; the subdirectories
 * are made to belong to uid:gid with the modes above, whatever they
 * were before.  A symlink anywhere we create or fix is refused.
 */
int
spool_create(const char *dir, uid_t uid, gid_t gid)
{
	struct stat	 st;
	size_t		 i;
	int		 dfd;

	if (spool_mkdir_p(dir) == -1) {
		log_warn("event=spool_error path=%s reason=mkdir", dir);
		return -1;
	}
	if (lstat(dir, &st) == -1) {
		log_warn("event=spool_error path=%s reason=lstat", dir);
		return -1;
	}
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
		log_warnx("event=spool_error path=%s reason=\"not a directory "
		    "(symlinks are refused)\"", dir);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != uid) {
		log_warnx("event=spool_error path=%s reason=\"owned by uid %lu,"
		    " not root or %lu\"", dir, (unsigned long)st.st_uid,
		    (unsigned long)uid);
		return -1;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		log_warn("event=spool_error path=%s reason=open", dir);
		return -1;
	}
	/* nobody else may add or rename entries in the spool itself */
	if ((st.st_mode & 022) && fchmod(dfd, st.st_mode & 07755) == -1) {
		log_warn("event=spool_error path=%s reason=chmod", dir);
		close(dfd);
		return -1;
	}
	for (i = 0; i < sizeof(spool_subdirs) / sizeof(spool_subdirs[0]);
	    i++)
		if (spool_fix_subdir(dfd, spool_subdirs[i].name,
		    spool_subdirs[i].mode, uid, gid) == -1) {
			log_warn("event=spool_error path=%s/%s", dir,
			    spool_subdirs[i].name);
			close(dfd);
			return -1;
		}
	close(dfd);
	return 0;
}

/*
 * spool_dir_sync - fsync a spool subdirectory.  The directory stays open
 * (a few names per process, relative to the spool, which a role never
 * leaves), so a commit costs one system call, not three.
 */
int
spool_dir_sync(const char *dir)
{
	static pthread_mutex_t	 mtx = PTHREAD_MUTEX_INITIALIZER;
	static struct {
		char	 name[16];
		int	 fd;
	}			 kept[SPOOL_DIRS_KEPT];
	static size_t		 nkept;
	size_t			 i;
	int			 fd = -1, r;

	pthread_mutex_lock(&mtx);
	for (i = 0; i < nkept && fd == -1; i++)
		if (strcmp(kept[i].name, dir) == 0)
			fd = kept[i].fd;
	if (fd == -1 && nkept < SPOOL_DIRS_KEPT &&
	    strlen(dir) < sizeof(kept[0].name) &&
	    (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		memcpy(kept[nkept].name, dir, strlen(dir) + 1);
		kept[nkept++].fd = fd;
	}
	pthread_mutex_unlock(&mtx);
	r = fd == -1 ? fsync_dir(dir) : fsync(fd);
	if (r == -1) {
		log_warn("event=spool_error path=%s reason=fsync", dir);
		return -1;
	}
	return 0;
}

/* ---- writer ------------------------------------------------------ */

/*
 * spool_msg_open - create dir/QIDsuffix and buffer the envelope.
 * env->arrival 0 means now (and is set).  Files dropped into maildrop/
 * are made 0644 instead of 0600: the submitting user owns them and the
 * queue role, another uid, must read them (the 1733 directory cannot
 * be listed by others; Postfix's postdrop does the same with 0444).
 */
int
spool_msg_open(struct spool_msg *m, struct envelope *env, const char *dir,
    const char *suffix)
{
	int	 tries;

	spool_msg_init(m, env, dir);
	for (tries = 0; tries < QID_OPEN_TRIES; tries++) {
		if (spool_msg_name(m, dir, suffix) == -1)
			return -1;
		if (spool_msg_create(m) == 0 || errno != EEXIST)
			break;
	}
	if (m->fd == -1)
		return -1;
	memcpy(env->qid, m->qid, QID_SIZE);
	if (spool_write_header(m, env) == -1)
		goto fail;
	return 0;
fail:
	spool_msg_abort(m);
	return -1;
}

/* spool_msg_begin - as spool_msg_open, the file made when needed */
int
spool_msg_begin(struct spool_msg *m, struct envelope *env, const char *dir,
    const char *suffix)
{
	spool_msg_init(m, env, dir);
	if (spool_msg_name(m, dir, suffix) == -1)
		return -1;
	m->deferred = 1;
	memcpy(env->qid, m->qid, QID_SIZE);
	if (spool_write_header(m, env) == -1) {
		spool_msg_abort(m);
		return -1;
	}
	return 0;
}

/* spool_msg_flush - write the buffer out (creating the file if need be) */
int
spool_msg_flush(struct spool_msg *m)
{
	if (m->failed || (m->fd == -1 && !m->deferred)) {
		errno = EINVAL;
		return -1;
	}
	return spool_flush(m, 0);
}

/* spool_msg_write - append content octets (buffered) */
int
spool_msg_write(struct spool_msg *m, const void *p, size_t len)
{
	if (m->failed || (m->fd == -1 && !m->deferred)) {
		errno = EINVAL;
		return -1;
	}
	if (len > SIZE_MAX - m->content_len) {
		m->failed = 1;
		errno = EFBIG;
		return -1;
	}
	if (m->wbuf.len + len > SPOOL_WBUF && spool_flush(m, 0) == -1)
		return -1;
	if (len >= SPOOL_WBUF) {
		/* big slices go straight to the file, no copy */
		if (spool_flush(m, 0) == -1)
			return -1;
		if (write_all(m->fd, p, len) == -1) {
			m->failed = 1;
			return -1;
		}
		m->written += (off_t)len;
	} else if (buf_append(&m->wbuf, p, len) == -1) {
		m->failed = 1;
		return -1;
	}
	m->content_len += len;
	return 0;
}

int
spool_msg_sink(void *arg, const char *p, size_t len)
{
	return spool_msg_write(arg, p, len);
}

/* spool_msg_finish - flush, patch size, write END and fsync the file */
int
spool_msg_finish(struct spool_msg *m)
{
	char	 digits[SPOOL_SIZE_DIGITS + 1];
	int	 n, inbuf;

	if (m->failed || (m->fd == -1 && !m->deferred)) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(digits, sizeof(digits), "%016zu", m->content_len);
	if (n != SPOOL_SIZE_DIGITS) {
		errno = EFBIG;
		goto fail;
	}
	/* size digits still in the buffer (nothing written) cost no pwrite */
	inbuf = m->written == 0;
	if (inbuf)
		memcpy(m->wbuf.data + m->size_off, digits, SPOOL_SIZE_DIGITS);
	if (buf_append(&m->wbuf, SPOOL_END, SPOOL_END_LEN) == -1 ||
	    spool_flush(m, 1) == -1)
		goto fail;
	if (!inbuf && pwrite(m->fd, digits, SPOOL_SIZE_DIGITS,
	    m->size_off) != SPOOL_SIZE_DIGITS) {
		if (errno == 0)
			errno = EIO;
		goto fail;
	}
	/* a recycled file may have been longer */
	if (m->reused && ftruncate(m->fd, m->written) == -1)
		goto fail;
	if (fsync(m->fd) == -1)
		goto fail;
	return 0;
fail:
	m->failed = 1;
	return -1;
}

/*
 * spool_msg_commit - rename the finished file to dir/QID.  On success
 * the descriptor is closed and m->path names the new place; on failure
 * nothing changed and the caller aborts.
 */
int
spool_msg_commit(struct spool_msg *m, const char *dir)
{
	char	 npath[sizeof(m->path)];
	int	 n;

	if (m->failed || m->fd == -1) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(npath, sizeof(npath), "%s/%s", dir, m->qid);
	if (n < 0 || (size_t)n >= sizeof(npath)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (rename(m->path, npath) == -1)
		return -1;
	memcpy(m->path, npath, sizeof(npath));
	close(m->fd);
	m->fd = -1;
	buf_free(&m->wbuf);
	return 0;
}

/*
 * spool_msg_abort - close and unlink the uncommitted file.  A no-op
 * after a successful commit: a committed message is never removed here.
 */
void
spool_msg_abort(struct spool_msg *m)
{
	int	 saved = errno;

	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
		if (unlink(m->path) == -1 && errno != ENOENT)
			log_warn("event=spool_error path=%s reason=unlink",
			    m->path);
	}
	m->deferred = 0;
	buf_free(&m->wbuf);
	errno = saved;
}

/* ---- reader ------------------------------------------------------ */

/*
 * spool_msg_read - parse the envelope of an open message file, checking
 * the length and the END record.  The file offset is not used.
 */
int
spool_msg_read(int fd, struct envelope *env, const char **why)
{
	return spool_msg_load(fd, env, why, NULL, NULL);
}

/*
 * spool_msg_load - spool_msg_read, and when the whole file fitted in the
 * one read of its header section (up to SPOOL_HDR_MAX octets), hand
 * that buffer over (*data, *len; NULL when not): the END record is
 * then checked in memory, and the caller need not read the file again.
 */
int
spool_msg_load(int fd, struct envelope *env, const char **why, char **data,
    size_t *len)
{
	struct stat	 st;
	char		*hdr = NULL;
	char		 end[SPOOL_END_LEN];
	const char	*e;
	size_t		 n;
	uint64_t	 total;

	if (data != NULL) {
		*data = NULL;
		*len = 0;
	}
	memset(env, 0, sizeof(*env));
	if (fstat(fd, &st) == -1) {
		*why = "cannot stat";
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return -1;
	}
	n = st.st_size < SPOOL_HDR_MAX ? (size_t)st.st_size : SPOOL_HDR_MAX;
	if ((hdr = malloc(n ? n : 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	if (spool_pread_all(fd, hdr, n, 0) == -1) {
		*why = "read error";
		goto fail;
	}
	if (spool_parse_header(hdr, n, n == SPOOL_HDR_MAX, env, why) == -1)
		goto fail;
	total = (uint64_t)env->data_off + env->size + SPOOL_END_LEN;
	if ((uint64_t)st.st_size < total) {
		*why = "file shorter than its size record";
		goto fail;
	}
	if ((uint64_t)st.st_size > total) {
		*why = "file longer than its size record";
		goto fail;
	}
	if (n == total)
		e = hdr + n - SPOOL_END_LEN;	/* all of it was read */
	else if (spool_pread_all(fd, end, SPOOL_END_LEN,
	    (off_t)(total - SPOOL_END_LEN)) == -1) {
		*why = "read error";
		goto fail;
	} else
		e = end;
	if (memcmp(e, SPOOL_END, SPOOL_END_LEN) != 0) {
		*why = "missing END record";
		goto fail;
	}
	if (data != NULL && n == total) {
		*data = hdr;
		*len = n;
	} else
		free(hdr);
	return 0;
fail:
	free(hdr);
	envelope_free(env);
	return -1;
}

/* spool_msg_parse - same as spool_msg_read, from memory */
int
spool_msg_parse(const char *p, size_t len, struct envelope *env,
    const char **why)
{
	size_t		 n;
	uint64_t	 total;

	memset(env, 0, sizeof(*env));
	n = len < SPOOL_HDR_MAX ? len : SPOOL_HDR_MAX;
	if (spool_parse_header(p, n, n == SPOOL_HDR_MAX, env, why) == -1)
		return -1;
	total = (uint64_t)env->data_off + env->size + SPOOL_END_LEN;
	if ((uint64_t)len != total) {
		*why = (uint64_t)len < total ?
		    "file shorter than its size record" :
		    "file longer than its size record";
		goto fail;
	}
	if (memcmp(p + len - SPOOL_END_LEN, SPOOL_END, SPOOL_END_LEN) != 0) {
		*why = "missing END record";
		goto fail;
	}
	return 0;
fail:
	envelope_free(env);
	return -1;
}

/* envelope_free - release sender and recipients, zero the struct */
void
envelope_free(struct envelope *env)
{
	size_t	 i;

	free(env->sender);
	for (i = 0; i < env->nrcpt; i++)
		free(env->rcpt[i]);
	free(env->rcpt);
	memset(env, 0, sizeof(*env));
}

/*
 * envelope_add_rcpt - append a copy of addr (len octets).  The array
 * grows in powers of two from SPOOL_RCPT_MIN_CAP, so it must only ever
 * be built by this function.  Addresses with CR, LF or NUL are refused
 * (EINVAL): they could not be written as one record.
 */
int
envelope_add_rcpt(struct envelope *env, const char *addr, size_t len)
{
	char	**v, *s;
	size_t	 ncap;

	if (memchr(addr, '\0', len) || memchr(addr, '\r', len) ||
	    memchr(addr, '\n', len)) {
		errno = EINVAL;
		return -1;
	}
	if (env->nrcpt == 0 || (env->nrcpt >= SPOOL_RCPT_MIN_CAP &&
	    (env->nrcpt & (env->nrcpt - 1)) == 0)) {
		ncap = env->nrcpt ? env->nrcpt * 2 : SPOOL_RCPT_MIN_CAP;
		if (ncap > SIZE_MAX / sizeof(*v)) {
			errno = ENOMEM;
			return -1;
		}
		if ((v = realloc(env->rcpt, ncap * sizeof(*v))) == NULL)
			return -1;
		env->rcpt = v;
	}
	if ((s = str_dup_len(addr, len)) == NULL)
		return -1;
	env->rcpt[env->nrcpt++] = s;
	return 0;
}

/* envelope_set_sender - set a copy of addr (len octets, 0 = <>) */
int
envelope_set_sender(struct envelope *env, const char *addr, size_t len)
{
	char	*s;

	if (memchr(addr, '\0', len) || memchr(addr, '\r', len) ||
	    memchr(addr, '\n', len)) {
		errno = EINVAL;
		return -1;
	}
	if ((s = str_dup_len(addr, len)) == NULL)
		return -1;
	free(env->sender);
	env->sender = s;
	return 0;
}

/* ---- helpers ----------------------------------------------------- */

/* spool_msg_init - empty writer state; arrival 0 means now */
static void
spool_msg_init(struct spool_msg *m, struct envelope *env, const char *dir)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	buf_init(&m->wbuf, 0);
	m->mode = strcmp(dir, "maildrop") == 0 ? 0644 : 0600;
	if (env->arrival == 0)
		env->arrival = time(NULL);
}

/* spool_msg_name - draw a new qid and make the path dir/QIDsuffix */
static int
spool_msg_name(struct spool_msg *m, const char *dir, const char *suffix)
{
	int	 n;

	qid_make(m->qid);
	n = snprintf(m->path, sizeof(m->path), "%s/%s%s", dir, m->qid,
	    suffix);
	if (n < 0 || (size_t)n >= sizeof(m->path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * spool_msg_create - create m->path O_EXCL.  The umask must not narrow
 * what the reader needs: a maildrop file (0644) is read by the queue
 * role, another uid, so its mode is set whatever the submitter's umask;
 * a 0600 file is read by its own uid, which no umask takes away.
 */
static int
spool_msg_create(struct spool_msg *m)
{
	m->fd = open(m->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, m->mode);
	if (m->fd == -1)
		return -1;
	if (m->mode != 0600 && fchmod(m->fd, m->mode) == -1) {
		close(m->fd);
		m->fd = -1;
		(void)unlink(m->path);
		return -1;
	}
	m->deferred = 0;
	return 0;
}

/*
 * spool_msg_reuse - make m->path from a recycled file of free/ (0600
 * files only), else create it.  Only the rename's winner opens the file.
 */
static int
spool_msg_reuse(struct spool_msg *m)
{
	char	 name[QID_SIZE], from[sizeof(SPOOL_FREE) + QID_SIZE];

	while (m->mode == 0600 && spool_free_take(name) == 0) {
		(void)snprintf(from, sizeof(from), "%s/%s", SPOOL_FREE, name);
		if (renameat2(AT_FDCWD, from, AT_FDCWD, m->path,
		    RENAME_NOREPLACE) == -1) {
			if (errno == ENOENT)
				continue;	/* purged by the queue */
			return -1;	/* EEXIST as with O_EXCL */
		}
		m->fd = open(m->path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (m->fd == -1) {
			(void)unlink(m->path);
			break;
		}
		m->deferred = 0;
		m->reused = 1;
		return 0;
	}
	return spool_msg_create(m);
}

/*
 * spool_free_take - the next name listed in free/; -1 if none.  The
 * commit threads share one listing (SPOOL_FREE_BATCH names); an empty
 * free/ is listed again after SPOOL_FREE_RELIST_MS at the earliest.
 */
static int
spool_free_take(char name[QID_SIZE])
{
	struct dirent	*de;
	long long	 now;
	int		 r = -1;

	pthread_mutex_lock(&spool_free.mtx);
	if (spool_free.pos == spool_free.n) {
		spool_free.pos = spool_free.n = 0;
		now = mono_ms();
		if (now - spool_free.empty_at >= SPOOL_FREE_RELIST_MS) {
			if (spool_free.d == NULL)
				spool_free.d = opendir(SPOOL_FREE);
			else
				rewinddir(spool_free.d);
			while (spool_free.d != NULL &&
			    spool_free.n < SPOOL_FREE_BATCH &&
			    (de = readdir(spool_free.d)) != NULL)
				if (qid_valid(de->d_name, strlen(de->d_name)))
					memcpy(spool_free.names[spool_free.n++],
					    de->d_name, QID_SIZE);
			if (spool_free.n == 0)
				spool_free.empty_at = now;
		}
	}
	if (spool_free.pos < spool_free.n) {
		memcpy(name, spool_free.names[spool_free.pos++], QID_SIZE);
		r = 0;
	}
	pthread_mutex_unlock(&spool_free.mtx);
	return r;
}

/* spool_free_count - see spool.h */
size_t
spool_free_count(void)
{
	return spool_free_scan(0);
}

/* spool_free_purge - see spool.h */
size_t
spool_free_purge(void)
{
	size_t	 n;

	pthread_mutex_lock(&spool_free.mtx);
	spool_free.pos = spool_free.n = 0;
	n = spool_free_scan(1);
	pthread_mutex_unlock(&spool_free.mtx);
	return n;
}

/* spool_free_scan - count the files of free/, unlinking them if purge */
static size_t
spool_free_scan(int purge)
{
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0;

	if ((d = opendir(SPOOL_FREE)) == NULL) {
		log_warn("event=spool_error path=%s reason=opendir",
		    SPOOL_FREE);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (!qid_valid(de->d_name, strlen(de->d_name)))
			continue;
		if (purge && unlinkat(dirfd(d), de->d_name, 0) == -1) {
			if (errno != ENOENT)
				log_warn("event=spool_error path=%s/%s "
				    "reason=unlink", SPOOL_FREE, de->d_name);
			continue;
		}
		n++;
	}
	closedir(d);
	return n;
}

/*
 * spool_flush - write the buffered octets out, creating a deferred file;
 * last: the buffer holds the whole file, which may then be a recycled one
 */
static int
spool_flush(struct spool_msg *m, int last)
{
	if (m->deferred && (last ? spool_msg_reuse(m) :
	    spool_msg_create(m)) == -1) {
		m->failed = 1;
		return -1;
	}
	if (m->wbuf.len == 0)
		return 0;
	if (write_all(m->fd, m->wbuf.data, m->wbuf.len) == -1) {
		m->failed = 1;
		return -1;
	}
	m->written += (off_t)m->wbuf.len;
	buf_reset(&m->wbuf);
	return 0;
}

/* spool_value_ok - may p[0..len) be a record value? */
static int
spool_value_ok(const char *p, size_t len, int empty_ok)
{
	size_t	 i;

	if (len == 0)
		return empty_ok;
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

/* spool_put_field - append "name value\n" after checking the value */
static int
spool_put_field(struct buf *b, const char *name, const char *v, size_t len,
    int empty_ok)
{
	if (!spool_value_ok(v, len, empty_ok)) {
		errno = EINVAL;
		return -1;
	}
	if (buf_appendf(b, "%s ", name) == -1 || buf_append(b, v, len) == -1 ||
	    buf_append(b, "\n", 1) == -1)
		return -1;
	return 0;
}

/* spool_write_header - buffer the envelope records up to "data\n" */
static int
spool_write_header(struct spool_msg *m, const struct envelope *env)
{
	struct buf	*b = &m->wbuf;
	const char	*body;
	size_t		 i;

	if (env->body < 0 || (size_t)env->body >=
	    sizeof(spool_bodies) / sizeof(spool_bodies[0]) || env->nrcpt == 0 ||
	    env->nrcpt > SPOOL_RCPT_MAX) {
		errno = EINVAL;
		return -1;
	}
	body = spool_bodies[env->body];
	if (buf_appendf(b, "%s\nqid %s\ntime %lld\n", SPOOL_MAGIC, m->qid,
	    (long long)env->arrival) == -1 ||
	    spool_put_field(b, "client", env->client_addr,
	    strnlen(env->client_addr, sizeof(env->client_addr)), 0) == -1 ||
	    spool_put_field(b, "client_name", env->client_name,
	    strnlen(env->client_name, sizeof(env->client_name)), 1) == -1 ||
	    spool_put_field(b, "helo", env->helo,
	    strnlen(env->helo, sizeof(env->helo)), 1) == -1 ||
	    spool_put_field(b, "proto", env->proto,
	    strnlen(env->proto, sizeof(env->proto)), 0) == -1)
		return -1;
	if (env->auth[0] != '\0' && spool_put_field(b, "auth", env->auth,
	    strnlen(env->auth, sizeof(env->auth)), 0) == -1)
		return -1;
	if (buf_appendf(b, "body %s\nsmtputf8 %d\n", body,
	    env->smtputf8 ? 1 : 0) == -1)
		return -1;
	/* sender and recipients were checked by envelope_*(): C strings */
	if (spool_put_field(b, "from", env->sender ? env->sender : "",
	    env->sender ? strlen(env->sender) : 0, 1) == -1)
		return -1;
	for (i = 0; i < env->nrcpt; i++)
		if (spool_put_field(b, "rcpt", env->rcpt[i],
		    strlen(env->rcpt[i]), 0) == -1)
			return -1;
	if (buf_appends(b, "size ") == -1)
		return -1;
	m->size_off = (off_t)b->len;
	if (buf_appendf(b, "%0*d\ndata\n", SPOOL_SIZE_DIGITS, 0) == -1)
		return -1;
	m->data_off = (off_t)b->len;
	if (b->len > SPOOL_HDR_MAX) {
		/* the reader would refuse it: fail now, before the 250 */
		errno = E2BIG;
		return -1;
	}
	return 0;
}

/* spool_parse_u64 - 1..19 decimal digits, nothing else */
static int
spool_parse_u64(const char *p, size_t len, uint64_t *v)
{
	size_t	 i;

	if (len == 0 || len > 19)
		return -1;
	*v = 0;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*v = *v * 10 + (uint64_t)(p[i] - '0');
	}
	return 0;
}

/* spool_copy_field - copy a checked value into a fixed array */
static int
spool_copy_field(char *dst, size_t dstsz, const char *p, size_t len,
    int empty_ok)
{
	if (len >= dstsz || !spool_value_ok(p, len, empty_ok))
		return -1;
	memcpy(dst, p, len);
	dst[len] = '\0';
	return 0;
}

/* spool_parse_rec - check and store the value of one record */
static int
spool_parse_rec(struct envelope *env, enum spool_rec r, const char *v,
    size_t len, const char **why)
{
	uint64_t	 u;
	size_t		 i;

	switch (r) {
	case R_QID:
		if (!qid_valid(v, len))
			goto bad;
		memcpy(env->qid, v, QID_LEN);
		env->qid[QID_LEN] = '\0';
		return 0;
	case R_TIME:
		if (spool_parse_u64(v, len, &u) == -1 || u > INT64_MAX)
			goto bad;
		env->arrival = (time_t)u;
		return 0;
	case R_CLIENT:
		if (spool_copy_field(env->client_addr,
		    sizeof(env->client_addr), v, len, 0) == -1)
			goto bad;
		return 0;
	case R_CLIENT_NAME:
		if (spool_copy_field(env->client_name,
		    sizeof(env->client_name), v, len, 1) == -1)
			goto bad;
		return 0;
	case R_HELO:
		if (spool_copy_field(env->helo, sizeof(env->helo), v, len,
		    1) == -1)
			goto bad;
		return 0;
	case R_PROTO:
		for (i = 0; spool_protos[i] != NULL; i++)
			if (strlen(spool_protos[i]) == len &&
			    memcmp(spool_protos[i], v, len) == 0)
				break;
		if (spool_protos[i] == NULL)
			goto bad;
		memcpy(env->proto, v, len);
		env->proto[len] = '\0';
		return 0;
	case R_AUTH:
		if (spool_copy_field(env->auth, sizeof(env->auth), v, len,
		    0) == -1)
			goto bad;
		return 0;
	case R_BODY:
		for (i = BODY_7BIT; i < sizeof(spool_bodies) /
		    sizeof(spool_bodies[0]); i++)
			if (strlen(spool_bodies[i]) == len &&
			    memcmp(spool_bodies[i], v, len) == 0)
				break;
		if (i == sizeof(spool_bodies) / sizeof(spool_bodies[0]))
			goto bad;
		env->body = (int)i;
		return 0;
	case R_SMTPUTF8:
		if (len != 1 || (v[0] != '0' && v[0] != '1'))
			goto bad;
		env->smtputf8 = v[0] == '1';
		return 0;
	case R_FROM:
		if (len > SPOOL_ADDR_MAX || !spool_value_ok(v, len, 1) ||
		    envelope_set_sender(env, v, len) == -1)
			goto bad;
		return 0;
	case R_RCPT:
		if (env->nrcpt >= SPOOL_RCPT_MAX) {
			*why = "too many recipients";
			return -1;
		}
		if (len > SPOOL_ADDR_MAX || !spool_value_ok(v, len, 0) ||
		    envelope_add_rcpt(env, v, len) == -1)
			goto bad;
		return 0;
	case R_SIZE:
		if (len != SPOOL_SIZE_DIGITS ||
		    spool_parse_u64(v, len, &u) == -1)
			goto bad;
		/* 16 digits: below 10^16, so data_off + size cannot wrap */
		if (u > SIZE_MAX)
			goto bad;
		env->size = (size_t)u;
		return 0;
	case R_DATA:
		if (len != 0)
			goto bad;
		return 0;
	case R_NREC:
		break;
	}
	panic("spool_parse_rec: record %d", (int)r);
bad:
	*why = "bad record value";
	return -1;
}

/*
 * spool_parse_header - parse records from p[0..len) up to "data\n";
 * capped says len was cut at SPOOL_HDR_MAX (for the reason only).
 */
static int
spool_parse_header(const char *p, size_t len, int capped,
    struct envelope *env, const char **why)
{
	const char	*line, *nl, *sp, *v;
	size_t		 off, linelen, keylen, vlen;
	int		 last = -1, i, j;

	if (len < sizeof(SPOOL_MAGIC) || memcmp(p, SPOOL_MAGIC "\n",
	    sizeof(SPOOL_MAGIC)) != 0) {
		*why = "not a version 1 spool file";
		goto fail;
	}
	off = sizeof(SPOOL_MAGIC);
	for (;;) {
		line = p + off;
		if ((nl = memchr(line, '\n', len - off)) == NULL) {
			*why = capped ? "header section too long" :
			    "truncated header section";
			goto fail;
		}
		linelen = (size_t)(nl - line);
		off += linelen + 1;
		sp = memchr(line, ' ', linelen);
		keylen = sp ? (size_t)(sp - line) : linelen;
		v = sp ? sp + 1 : nl;
		vlen = (size_t)(nl - v);
		for (i = 0; i < R_NREC; i++)
			if (strlen(spool_recs[i].name) == keylen &&
			    memcmp(spool_recs[i].name, line, keylen) == 0)
				break;
		if (i == R_NREC) {
			*why = "unknown record";
			goto fail;
		}
		if (i < last || (i == last && !spool_recs[i].repeat)) {
			*why = "record out of order or repeated";
			goto fail;
		}
		for (j = last + 1; j < i; j++)
			if (!spool_recs[j].optional) {
				*why = "missing record";
				goto fail;
			}
		/* "data" has no value and no space; every other has one */
		if ((i == R_DATA) != (sp == NULL)) {
			*why = "bad record syntax";
			goto fail;
		}
		if (spool_parse_rec(env, (enum spool_rec)i, v, vlen, why) == -1)
			goto fail;
		last = i;
		if (i == R_DATA)
			break;
	}
	env->data_off = (off_t)off;
	return 0;
fail:
	envelope_free(env);
	return -1;
}

/* spool_pread_all - read exactly len octets at off */
static int
spool_pread_all(int fd, void *p, size_t len, off_t off)
{
	char	*c = p;
	ssize_t	 n;

	while (len > 0) {
		n = pread(fd, c, len, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		c += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* spool_mkdir_p - mkdir every missing component of path, mode 0755 */
static int
spool_mkdir_p(const char *path)
{
	char	 tmp[4096];
	size_t	 len, i;

	len = strlen(path);
	if (len == 0 || len >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0755) == -1 && errno != EEXIST)
			return -1;
		if (i < len)
			tmp[i] = '/';
	}
	return 0;
}

/*
 * spool_fix_subdir - make dfd/name a directory owned by uid:gid with
 * mode; existing ones are fixed, symlinks and other files refused.
 */
static int
spool_fix_subdir(int dfd, const char *name, mode_t mode, uid_t uid,
    gid_t gid)
{
	struct stat	 st;
	int		 fd, r = -1;

	if (mkdirat(dfd, name, 0700) == -1 && errno != EEXIST)
		return -1;
	if ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto done;
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) == -1)
		goto done;
	if ((st.st_mode & 07777) != mode && fchmod(fd, mode) == -1)
		goto done;
	r = 0;
done:
	close(fd);
	return r;
}
