/*
 * spool.h - the message file: envelope records ahead of the content.
 *
 * Layout of spool_dir (all paths relative: every role chdir()s into the
 * spool, and chroot(".")s there when started by root):
 *
 *   tmp/        being received (smtp-in writes here)
 *   incoming/   committed, not yet seen by the queue
 *   queue/      scheduled or deferred (queue role), with ID.state beside
 *   hold/       held by the administrator
 *   quarantine/ content-filter quarantine (later issue)
 *   maildrop/   local submissions by moat-sendmail (mode 1733)
 *   control     moatctl's unix socket (queue role)
 *
 * Message file, version 1 (text records, one per line, then raw content):
 *
 *   MOAT-SPOOL 1\n
 *   qid QID\n
 *   time EPOCH\n
 *   client ADDR\n            "127.0.0.1", "::1" or "local"
 *   client_name NAME\n       reverse name or "unknown"
 *   helo NAME\n              sanitized (log_sanitize form)
 *   proto ESMTP\n            SMTP ESMTP ESMTPS ESMTPA ESMTPSA LOCAL
 *   auth USER\n              optional
 *   body 7BIT|8BITMIME|BINARYMIME\n
 *   smtputf8 0|1\n
 *   from ADDR\n              "from \n" for the null sender
 *   rcpt ADDR\n              one per recipient, in order
 *   size NNNNNNNNNNNNNNNN\n  16 decimal digits: content length, patched
 *   data\n
 *   CONTENT                  exactly size octets, CRLF lines
 *   END\n
 *
 * Addresses never hold CR, LF or NUL (the SMTP parser refuses them).
 * A file whose last record is not END at offset data+size, or with any
 * unknown record, is refused by spool_msg_read() (STYLE.md 10).
 * The file is immutable once in incoming/; per-recipient delivery state
 * lives in queue/ID.state (queue role, write-new-then-rename).
 */
#ifndef MOAT_SPOOL_H
#define MOAT_SPOOL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "../lib/buf.h"

#define QID_LEN		16
#define QID_SIZE	(QID_LEN + 1)
#define SPOOL_VERSION	1
/* recycled message files (spool.c); SPOOL_FREE_SIZE: the largest kept */
#define SPOOL_FREE	"free"
#define SPOOL_FREE_SIZE	(64 * 1024)

struct envelope {
	char		 qid[QID_SIZE];
	time_t		 arrival;
	char		 client_addr[64];
	char		 client_name[256];
	char		 helo[256];
	char		 proto[16];
	char		 auth[256];		/* "" = none */
	int		 body;			/* enum smtp_body */
	int		 smtputf8;
	char		*sender;		/* malloc'd; "" = <> */
	char		**rcpt;			/* malloc'd array of malloc'd */
	size_t		 nrcpt;
	/* filled by spool_msg_read() */
	off_t		 data_off;
	size_t		 size;
};

/* writer state (smtp-in, queue for bounces and maildrop imports) */
struct spool_msg {
	int		 fd;
	char		 qid[QID_SIZE];
	off_t		 size_off;	/* where the size digits are */
	off_t		 data_off;
	size_t		 content_len;
	struct buf	 wbuf;		/* write-behind buffer, flushed at 64 KiB */
	int		 failed;	/* a write failed: abort only */
	int		 deferred;	/* path not created yet (spool_msg_begin) */
	mode_t		 mode;		/* of the file when created */
	off_t		 written;	/* octets already in the file */
	int		 reused;	/* a recycled file of free/ */
	char		 path[64];	/* current relative path */
};

/* qid_make - new unique, sortable, filename-safe queue id (16 chars) */
void	qid_make(char out[QID_SIZE]);
/* qid_valid - is p[0..len) a well-formed queue id? */
int	qid_valid(const char *p, size_t len);

/* spool_create - make spool_dir and its subdirectories (master, root) */
int	spool_create(const char *dir, uid_t, gid_t);

/*
 * spool_msg_open - create dir/QIDsuffix (new qid, stored in env->qid and
 * m->qid) and write the envelope records.  Cwd must be the spool.
 * smtp-in: ("tmp", ""); moat-sendmail: ("maildrop", ".part").  The
 * file is created O_EXCL mode 0600 (a new qid is drawn on EEXIST).
 */
int	spool_msg_open(struct spool_msg *, struct envelope *,
	    const char *dir, const char *suffix);
/*
 * spool_msg_begin - as spool_msg_open, but the file is created only when
 * the write-behind buffer must go to disk: at spool_msg_flush(), when
 * it outgrows 64 KiB, or at spool_msg_finish().  smtp-in uses it so
 * that a message of up to 64 KiB costs its event loop no file system
 * call at all: the commit thread creates, writes and fsyncs the file.
 * The qid is drawn once (it is already in the Received header); a file
 * of that name existing at creation is an error (EEXIST).
 */
int	spool_msg_begin(struct spool_msg *, struct envelope *,
	    const char *dir, const char *suffix);
/* spool_msg_flush - write the buffer out (creating the file if need be) */
int	spool_msg_flush(struct spool_msg *);
/* spool_msg_write - append content octets (buffered) */
int	spool_msg_write(struct spool_msg *, const void *, size_t);
/* spool_msg_sink - spool_msg_write as a writer callback (arg: the msg) */
int	spool_msg_sink(void *, const char *, size_t);
/*
 * spool_msg_finish - flush, patch size, write END and fsync the file.
 * Blocks on the disk: smtp-in calls it from its commit thread.
 */
int	spool_msg_finish(struct spool_msg *);
/*
 * spool_msg_commit - rename the file to dir/QID (dir = "incoming", or
 * "maildrop" for moat-sendmail).
 * The caller fsyncs dir afterwards (spool_dir_sync), once for a batch.
 */
int	spool_msg_commit(struct spool_msg *, const char *dir);
/* spool_msg_abort - close and unlink tmp/QID */
void	spool_msg_abort(struct spool_msg *);
/* spool_free_count - the files waiting in free/ to be recycled */
size_t	spool_free_count(void);
/* spool_free_purge - unlink the files of free/; returns how many */
size_t	spool_free_purge(void);
/* spool_dir_sync - fsync a spool subdirectory */
int	spool_dir_sync(const char *dir);

/*
 * spool_msg_read - parse the envelope of an open message file into env
 * (data_off, size filled), checking the END record.  why gets a static
 * reason on failure.  env must be zeroed or envelope_free()d first.
 */
int	spool_msg_read(int fd, struct envelope *, const char **why);
/*
 * spool_msg_load - the same; a file of up to 64 KiB is read whole and
 * given to the caller in *data (malloc'd, *len octets, free() it), so
 * that its content need not be read again.  *data is NULL otherwise.
 */
int	spool_msg_load(int fd, struct envelope *, const char **why,
	    char **data, size_t *len);
/* spool_msg_parse - same, from memory (unit tests, fuzzing) */
int	spool_msg_parse(const char *p, size_t len, struct envelope *,
	    const char **why);
void	envelope_free(struct envelope *);
/* envelope_add_rcpt - append a copy of addr (len octets) */
int	envelope_add_rcpt(struct envelope *, const char *, size_t);
/* envelope_set_sender - set a copy of addr (len octets, 0 = <>) */
int	envelope_set_sender(struct envelope *, const char *, size_t);

#endif
