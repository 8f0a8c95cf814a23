/*
 * sendmail.c - moat-sendmail: sendmail-compatible local submission, and
 * mailq.
 *
 *   moat-sendmail [-t] [-i] [-oi] [-f sender] [-F name] [-C file] [--]
 *                 [recipient ...] < message
 *   moat-sendmail -bp | mailq        list the queue
 *   moat-sendmail -q                 flush the queue
 *
 * A submission is written straight into spool_dir/maildrop/ in the
 * spool format (spool.h) as QID.part, fsync'ed, then renamed to QID;
 * the queue role imports maildrop/ whenever it runs, so submitting
 * works while moatd is stopped.  The maildrop is 1733: any local user
 * may drop a file, nobody but the queue can list or take one.
 *
 * The whole message is read into memory first (bounded by
 * message_size_limit): the recipients of -t and the body type come from
 * the content but are written ahead of it, and no partial file is left
 * behind when the input is interrupted.  The termination signals are
 * blocked from the creation of the file to the exit, so the file is
 * either committed or removed.
 *
 * Exit codes follow sendmail and Postfix (sysexits.h): EX_USAGE bad
 * options or no recipients, EX_DATAERR bad address or message too
 * large, EX_NOUSER unknown login, EX_CANTCREAT maildrop not writable,
 * EX_IOERR read or write error, EX_CONFIG config errors, EX_OSERR out
 * of memory.  Queue listing and flushing exit 1 when moatd is down.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/spool.h"
#include "../common/addr.h"
#include "../smtp_in/smtp_parse.h"	/* enum smtp_body values only */
#include "ctl_client.h"

#define SM_CHUNK	65536		/* stdin read size */
#define SM_DATE_MAX	64

/* what one submission needs besides the options */
struct sm_ctx {
	const struct config	*conf;
	const struct sm_opts	*opts;
	char			 login[256];	/* "" when unknown */
	char			 fullname[256];	/* from the gecos */
	char			*sender;	/* qualified; "" = <> */
	int			 smtputf8;
	struct sm_rcpts		 rcpt;		/* qualified */
	struct buf		 msg;		/* normalised input */
	int			 eightbit;
	struct sm_hdrscan	 hs;
	int			 has_from, has_date, has_msgid;
};

static int	sm_listq(const struct config *, const struct sm_opts *,
		    const char *);
static int	sm_submit(struct sm_ctx *);
static int	sm_who(struct sm_ctx *);
static int	sm_set_sender(struct sm_ctx *);
static int	sm_add_list(struct sm_ctx *, const char *, size_t,
		    const char *);
static int	sm_check_addr(const char *, int *, const char **);
static int	sm_read_input(struct sm_ctx *);
static int	sm_scan_headers(struct sm_ctx *);
static int	sm_build_headers(struct sm_ctx *, const char *, struct buf *);
static int	sm_write_spool(struct sm_ctx *);
static int	sm_sync_maildrop(const struct spool_msg *);
static void	sm_block_signals(void);
static void	sm_date(char *, size_t, time_t);
static void	mem_ascii_upper_first(char *);
static void	usage(void) __attribute__((noreturn));

int
main(int argc, char *argv[])
{
	struct sm_opts	 opts;
	struct sm_ctx	 ctx;
	struct config	*conf;
	const char	*prog = program_invocation_short_name, *file;
	char		 why[256];
	int		 rc;

	if (sm_parse_args(argc, argv, &opts, why, sizeof(why)) == -1) {
		warnx("%s", why);
		usage();
	}
	/* sendmail and Postfix: the name mailq means -bp */
	if (strcmp(prog, "mailq") == 0) {
		if (opts.nrcpt > 0) {
			warnx("mailq takes no arguments");
			usage();
		}
		opts.mode = SM_LISTQ;
	}
	if ((file = opts.config) == NULL &&
	    ((file = getenv(CTL_CONFIG_ENV)) == NULL || *file == '\0'))
		file = CTL_DEFAULT_CONFIG;

	log_init(0);
	log_setproc(prog);
	if ((conf = config_load(file, stderr)) == NULL)
		return EX_CONFIG;
	if (opts.mode != SM_DELIVER) {
		rc = sm_listq(conf, &opts, prog);
		config_free(conf);
		return rc;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.conf = conf;
	ctx.opts = &opts;
	buf_init(&ctx.msg, 0);
	rc = sm_submit(&ctx);
	buf_free(&ctx.msg);
	sm_rcpts_free(&ctx.rcpt);
	free(ctx.sender);
	config_free(conf);
	return rc;
}

/* sm_listq - -bp / mailq / -q through the control socket */
static int
sm_listq(const struct config *conf, const struct sm_opts *o,
    const char *prog)
{
	char		 why[512];
	enum ctl_result	 r;

	r = ctl_request(conf->spool_dir, o->mode == SM_FLUSH ? "flush" :
	    "queue", NULL, STDOUT_FILENO, why, sizeof(why));
	switch (r) {
	case CTL_OK:
		return 0;
	case CTL_DOWN:
		warnx("mail system is down (%s)", why);
		return 1;
	case CTL_ERR:
	case CTL_FAIL:
		warnx("%s", why);
		return 1;
	}
	return 1;
}

/* sm_submit - one local submission into maildrop/; returns the exit code */
static int
sm_submit(struct sm_ctx *c)
{
	const struct sm_opts	*o = c->opts;
	int			 i, rc;

	if ((rc = sm_who(c)) != 0 || (rc = sm_set_sender(c)) != 0)
		return rc;
	for (i = 0; i < o->nrcpt; i++)
		if ((rc = sm_add_list(c, o->rcpt[i], strlen(o->rcpt[i]),
		    "recipient")) != 0)
			return rc;
	if (!o->extract && c->rcpt.n == 0) {
		warnx("no recipients given (on the command line or with -t)");
		return EX_USAGE;
	}
	/* fail before the user types a message, not after */
	if (chdir(c->conf->spool_dir) == -1) {
		warn("cannot enter the spool %s", c->conf->spool_dir);
		return EX_CANTCREAT;
	}
	if (access("maildrop", W_OK | X_OK) == -1) {
		warn("cannot write to %s/maildrop", c->conf->spool_dir);
		return EX_CANTCREAT;
	}
	if ((rc = sm_read_input(c)) != 0 || (rc = sm_scan_headers(c)) != 0)
		return rc;
	if (c->rcpt.n == 0) {
		warnx("no recipient addresses found in the message header");
		return EX_USAGE;
	}
	return sm_write_spool(c);
}

/* sm_who - login name and full name of the invoking user */
static int
sm_who(struct sm_ctx *c)
{
	struct passwd	*pw;
	const char	*g;
	struct buf	 b;
	size_t		 n, start;

	if ((pw = getpwuid(getuid())) == NULL) {
		if (c->opts->sender != NULL)
			return 0;	/* -f: the login is not needed */
		warnx("no login name for uid %lu: use -f sender",
		    (unsigned long)getuid());
		return EX_NOUSER;
	}
	n = strlen(pw->pw_name);
	if (n == 0 || n >= sizeof(c->login)) {
		warnx("unusable login name for uid %lu",
		    (unsigned long)getuid());
		return EX_NOUSER;
	}
	memcpy(c->login, pw->pw_name, n + 1);
	/* gecos: full name before the first ','; '&' is the login (BSD) */
	buf_init(&b, sizeof(c->fullname) - 1);
	for (g = pw->pw_gecos; g != NULL && *g != '\0' && *g != ','; g++) {
		if (*g != '&') {
			if (buf_append(&b, g, 1) == -1)
				break;
			continue;
		}
		start = b.len;
		if (buf_append(&b, c->login, n) == -1)
			break;
		mem_ascii_upper_first(b.data + start);
	}
	if (b.len > 0)
		memcpy(c->fullname, b.data, b.len + 1);
	buf_free(&b);
	return 0;
}

/* sm_set_sender - envelope sender from -f/-r or login@hostname */
static int
sm_set_sender(struct sm_ctx *c)
{
	struct sm_rcpts	 one = { 0 };
	const char	*s = c->opts->sender, *why;
	size_t		 len;
	int		 utf8 = 0;

	if (s == NULL) {
		c->sender = sm_qualify(c->login, strlen(c->login),
		    c->conf->hostname);
		if (c->sender == NULL)
			goto nomem;
		if (sm_check_addr(c->sender, &utf8, &why) == -1) {
			warnx("login name %s is not a valid sender: %s; use "
			    "-f", c->login, why);
			return EX_NOUSER;
		}
		c->smtputf8 |= utf8;
		return 0;
	}
	/* "-f <>" and "-f ''" ask for the null sender (bounces) */
	len = strlen(s);
	while (len > 0 && (s[0] == ' ' || s[0] == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || (len == 2 && memcmp(s, "<>", 2) == 0)) {
		if ((c->sender = strdup("")) == NULL)
			goto nomem;
		return 0;
	}
	if (sm_addrlist_parse(s, len, &one, &why) == -1 || one.n != 1) {
		warnx("bad sender address \"%s\": %s", c->opts->sender,
		    one.n > 1 ? "more than one address" : why != NULL ? why :
		    "no address");
		sm_rcpts_free(&one);
		return EX_DATAERR;
	}
	c->sender = sm_qualify(one.v[0], strlen(one.v[0]),
	    c->conf->hostname);
	sm_rcpts_free(&one);
	if (c->sender == NULL)
		goto nomem;
	if (sm_check_addr(c->sender, &utf8, &why) == -1) {
		warnx("bad sender address \"%s\": %s", c->opts->sender, why);
		return EX_DATAERR;
	}
	c->smtputf8 |= utf8;
	return 0;
nomem:
	warnx("out of memory");
	return EX_OSERR;
}

/*
 * sm_add_list - add the addresses of a list (an argument or a header
 * value) to the recipients, qualified and checked.  what names the
 * source in messages.
 */
static int
sm_add_list(struct sm_ctx *c, const char *p, size_t len, const char *what)
{
	struct sm_rcpts	 raw = { 0 };
	const char	*why;
	char		*q;
	size_t		 i;
	int		 utf8, rc = 0;

	if (sm_addrlist_parse(p, len, &raw, &why) == -1) {
		warnx("bad %s address list: %s", what, why);
		return EX_DATAERR;
	}
	for (i = 0; i < raw.n && rc == 0; i++) {
		if ((q = sm_qualify(raw.v[i], strlen(raw.v[i]),
		    c->conf->hostname)) == NULL) {
			warnx("out of memory");
			rc = EX_OSERR;
			break;
		}
		utf8 = 0;
		if (sm_check_addr(q, &utf8, &why) == -1) {
			warnx("bad %s address \"%s\": %s", what, raw.v[i],
			    why);
			rc = EX_DATAERR;
		} else if (sm_rcpts_add(&c->rcpt, q, strlen(q)) == -1) {
			if (errno == E2BIG) {
				warnx("too many recipients (at most %d)",
				    SM_RCPT_MAX);
				rc = EX_DATAERR;
			} else {
				warnx("out of memory");
				rc = EX_OSERR;
			}
		}
		c->smtputf8 |= utf8;
		free(q);
	}
	sm_rcpts_free(&raw);
	return rc;
}

/* sm_check_addr - RFC 5321 mailbox with a domain; *utf8 if non-ASCII */
static int
sm_check_addr(const char *s, int *utf8, const char **why)
{
	struct addr	 a;

	if (addr_parse_mailbox(s, strlen(s), 1, &a, why) == -1)
		return -1;
	if (a.flags & ADDR_ROUTE) {
		*why = "source routes are not accepted";
		return -1;
	}
	if (a.domain == NULL) {
		*why = "missing @domain";
		return -1;
	}
	*utf8 = (a.flags & ADDR_UTF8) != 0;
	return 0;
}

/* sm_read_input - the message from stdin, normalised, into c->msg */
static int
sm_read_input(struct sm_ctx *c)
{
	struct sm_input	 in;
	static char	 chunk[SM_CHUNK];
	size_t		 limit = c->conf->message_size_limit;
	ssize_t		 n;
	int		 r = 0;

	if (limit == 0 || limit > BUF_HARD_MAX / 2)
		limit = BUF_HARD_MAX / 2;
	sm_input_init(&in, &c->msg, limit, c->opts->ignore_dots);
	while (r == 0) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			warn("read error on standard input");
			return EX_IOERR;
		}
		if (n == 0)
			break;
		r = sm_input_feed(&in, chunk, (size_t)n);
	}
	if (r == 0)
		r = sm_input_end(&in);
	if (r == -1) {
		if (errno == EFBIG) {
			warnx("message too large (message_size_limit is %zu "
			    "octets)", limit);
			return EX_DATAERR;
		}
		warnx("out of memory reading the message");
		return EX_OSERR;
	}
	c->eightbit = in.eightbit;
	return 0;
}

/* sm_scan_headers - note present headers, take -t recipients */
static int
sm_scan_headers(struct sm_ctx *c)
{
	struct sm_field	 f;
	size_t		 off;
	int		 rc;

	sm_header_scan(c->msg.data, c->msg.len, &c->hs);
	off = c->hs.start;
	while (sm_header_next(c->msg.data, c->hs.hdr_end, &off, &f)) {
		if (sm_field_is(&f, "From"))
			c->has_from = 1;
		else if (sm_field_is(&f, "Date"))
			c->has_date = 1;
		else if (sm_field_is(&f, "Message-ID"))
			c->has_msgid = 1;
		else if (c->opts->extract && (sm_field_is(&f, "To") ||
		    sm_field_is(&f, "Cc") || sm_field_is(&f, "Bcc"))) {
			if ((rc = sm_add_list(c, f.value, f.valuelen,
			    sm_field_is(&f, "To") ? "To:" :
			    sm_field_is(&f, "Cc") ? "Cc:" : "Bcc:")) != 0)
				return rc;
		}
	}
	return 0;
}

/*
 * sm_build_headers - the header section as it goes to the spool: the
 * user's fields without Bcc (it must not reach any recipient), then
 * the From, Date and Message-ID the message lacks (RFC 5322 3.6: From
 * and Date are required), then the empty separator line.  The trace
 * field is the queue's: it writes "Received: from local (uid N)" with
 * the uid that owns the maildrop file, which the sender cannot forge.
 */
static int
sm_build_headers(struct sm_ctx *c, const char *qid, struct buf *h)
{
	struct sm_field	 f;
	const char	*host = c->conf->hostname, *name, *addr, *login;
	char		 date[SM_DATE_MAX];
	size_t		 off, before;
	int		 r;

	sm_date(date, sizeof(date), time(NULL));
	off = c->hs.start;
	while (sm_header_next(c->msg.data, c->hs.hdr_end, &off, &f))
		if (!sm_field_is(&f, "Bcc") &&
		    buf_append(h, f.raw, f.rawlen) == -1)
			return -1;
	if (!c->has_from) {
		/* null sender: the login, or (no passwd entry) the daemon */
		addr = c->sender;
		login = c->login[0] != '\0' ? c->login : "MAILER-DAEMON";
		if (*addr == '\0' && (addr = sm_qualify(login, strlen(login),
		    host)) == NULL)
			return -1;
		name = c->opts->fullname ? c->opts->fullname : c->fullname;
		r = buf_appends(h, "From: ");
		before = h->len;
		if (r == 0)
			r = sm_phrase(h, name, strlen(name));
		/* "From: Name <addr>", or the bare addr-spec without a name */
		if (r == 0)
			r = h->len > before ?
			    buf_appendf(h, " <%s>\r\n", addr) :
			    buf_appendf(h, "%s\r\n", addr);
		if (addr != c->sender)
			free((char *)addr);
		if (r == -1)
			return -1;
	}
	if (!c->has_date && buf_appendf(h, "Date: %s\r\n", date) == -1)
		return -1;
	if (!c->has_msgid && buf_appendf(h, "Message-ID: <%s@%s>\r\n", qid,
	    host) == -1)
		return -1;
	return buf_append(h, "\r\n", 2);
}

/* sm_write_spool - envelope, headers and body into maildrop/ */
static int
sm_write_spool(struct sm_ctx *c)
{
	struct envelope		 env;
	struct spool_msg	 m;
	struct buf		 h;
	size_t			 i, blen;
	int			 rc = EX_IOERR;

	memset(&env, 0, sizeof(env));
	buf_init(&h, 0);
	memcpy(env.client_addr, "local", sizeof("local"));
	memcpy(env.client_name, "localhost", sizeof("localhost"));
	memcpy(env.helo, "localhost", sizeof("localhost"));
	memcpy(env.proto, "LOCAL", sizeof("LOCAL"));
	env.arrival = time(NULL);
	/* content decides; -B 8BITMIME may only widen */
	env.body = c->eightbit || c->opts->btype == SM_BODY_8BIT ?
	    BODY_8BITMIME : BODY_7BIT;
	env.smtputf8 = c->smtputf8;
	if (envelope_set_sender(&env, c->sender, strlen(c->sender)) == -1)
		goto nomem;
	for (i = 0; i < c->rcpt.n; i++)
		if (envelope_add_rcpt(&env, c->rcpt.v[i],
		    strlen(c->rcpt.v[i])) == -1)
			goto nomem;

	sm_block_signals();
	if (spool_msg_open(&m, &env, "maildrop", ".part") == -1) {
		if (errno == E2BIG) {
			warnx("too many recipients for one message");
			rc = EX_DATAERR;
		} else {
			warn("cannot create a file in %s/maildrop",
			    c->conf->spool_dir);
			rc = EX_CANTCREAT;
		}
		goto out;
	}
	blen = c->msg.len - c->hs.body_off;
	if (sm_build_headers(c, m.qid, &h) == -1) {
		spool_msg_abort(&m);
		goto nomem;
	}
	/* the queue refuses a maildrop file over the limit: so do we */
	if (h.len + blen > c->conf->message_size_limit) {
		spool_msg_abort(&m);
		warnx("message too large with the added headers "
		    "(message_size_limit is %zu octets)",
		    c->conf->message_size_limit);
		rc = EX_DATAERR;
		goto out;
	}
	if (spool_msg_write(&m, h.data, h.len) == -1 ||
	    spool_msg_write(&m, c->msg.data + c->hs.body_off, blen) == -1 ||
	    spool_msg_finish(&m) == -1 ||
	    spool_msg_commit(&m, "maildrop") == -1) {
		warn("cannot write %s/%s", c->conf->spool_dir, m.path);
		spool_msg_abort(&m);
		goto out;
	}
	if (sm_sync_maildrop(&m) == -1) {
		/* renamed but maybe not durable: say so, do not retry */
		warn("message %s queued, but syncing the maildrop failed",
		    m.qid);
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	warnx("out of memory");
	rc = EX_OSERR;
out:
	buf_free(&h);
	envelope_free(&env);
	return rc;
}

/*
 * sm_sync_maildrop - make the rename durable.  fsync of a directory
 * needs a descriptor opened for reading, which a user other than the
 * owner of the 1733 maildrop cannot get; then syncfs() through the
 * committed file flushes the file system, directory included.
 */
static int
sm_sync_maildrop(const struct spool_msg *m)
{
	int	 fd, r, saved;

	if (access("maildrop", R_OK) == 0)
		return spool_dir_sync("maildrop");
	if ((fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	r = syncfs(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* sm_block_signals - no termination between create and commit */
static void
sm_block_signals(void)
{
	sigset_t	 set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGTSTP);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

/* sm_date - RFC 5322 3.3 date-time in local time with numeric zone */
static void
sm_date(char *out, size_t outsz, time_t t)
{
	struct tm	 tm;

	/* the C locale (no setlocale call) gives English names */
	if (localtime_r(&t, &tm) == NULL)
		gmtime_r(&t, &tm);
	if (strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		out[0] = '\0';	/* not with SM_DATE_MAX octets */
}

/* mem_ascii_upper_first - "joe" -> "Joe" for the gecos '&' */
static void
mem_ascii_upper_first(char *p)
{
	if (*p >= 'a' && *p <= 'z')
		*p = (char)(*p - 32);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-t] [-i] [-oi] [-f sender] [-F name] [-C file] "
	    "[--] [recipient ...]\n"
	    "       %s -bp | -q [-C file]\n"
	    "       mailq [-C file]\n",
	    program_invocation_short_name, program_invocation_short_name);
	exit(EX_USAGE);
}
