/*
 * ctl_client.c - control-socket client, reload, and the pure parts of
 * moat-sendmail (arguments, line ends, headers, address lists).
 *
 * The control client speaks control.h: one request line, a status line
 * "+OK" or "-ERR reason", then the body until the server closes.  Every
 * read and write has a CTL_TIMEOUT so that a wedged queue role cannot
 * hang an administrator's shell or a cron job.
 *
 * The sendmail parts work on the message after line-end normalisation,
 * so every line they see ends in CRLF.  They never read past the given
 * length; addresses taken from headers are copied (malloc'd) because
 * the message buffer is written out and freed independently.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "../lib/buf.h"
#include "../lib/util.h"
#include "../common/addr.h"
#include "../common/control.h"
#include "ctl_client.h"

#define CTL_STATUS_MAX	1024	/* longest status line we accept */
#define CTL_PROC_MAX	4096	/* /proc/PID/exe or cmdline read */
#define SM_NAME_MAX	200	/* display name octets kept (-F, gecos) */
#define SM_EW_CHUNK	45	/* octets per RFC 2047 word: 60 base64 */
#define AL_PLAIN_MAX	65536	/* one list element, with its display name */

struct ctl_verb {
	const char	*name;
	int		 nargs;
};

/* address-list tokenizer state of one list element */
struct al_elem {
	struct buf	 plain;		/* addr-spec outside <> */
	struct buf	 angle;		/* inside <> */
	int		 in_angle;
	int		 have_angle;
	int		 prev_word;	/* last token outside <>: a word */
	int		 phrase;	/* two words in a row: display name */
};

static int	ctl_connect(const char *, char *, size_t, enum ctl_result *);
static enum ctl_result ctl_read_reply(int, int, char *, size_t);
static void	ctl_copy_reason(const char *, size_t, char *, size_t);
static int	ctl_read_small(const char *, char *, size_t);
static int	ctl_proc_is_moatd(pid_t);
static int	sm_opt_value(int, char *const [], int *, const char *,
		    const char **);
static int	sm_is_wsp(int);
static void	sm_line_len(const char *, size_t, size_t, size_t *);
static int	sm_is_field(const char *, size_t);
static int	al_special(int);
static size_t	al_skip_comment(const char *, size_t, size_t, int *);
static size_t	al_skip_quoted(const char *, size_t, size_t, int *);
static size_t	al_skip_literal(const char *, size_t, size_t, int *);
static int	al_token(struct al_elem *, const char *, size_t, int);
static int	al_finish(struct al_elem *, struct sm_rcpts *,
		    const char **);
static void	al_reset(struct al_elem *);
static int	phrase_is_atoms(const char *, size_t);
static int	phrase_encoded(struct buf *, const char *, size_t);

/* sorted by name; ID verbs take one argument */
static const struct ctl_verb ctl_verbs[] = {
	{ "delete",	1 },
	{ "flush",	0 },
	{ "hold",	1 },
	{ "quarantine-delete", 1 },
	{ "quarantine-list", 0 },
	{ "quarantine-release", 1 },
	{ "quarantine-show", 1 },
	{ "queue",	0 },
	{ "release",	1 },
	{ "reload",	0 },
	{ "show",	1 },
	{ "stats",	0 },
};

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- control client ------------------------------------------------ */

/* ctl_request - one request on the control socket, body to outfd */
enum ctl_result
ctl_request(const char *spool_dir, const char *verb, const char *arg,
    int outfd, char *why, size_t whysz)
{
	char		 line[CONTROL_LINE_MAX + 1];
	size_t		 len;
	enum ctl_result	 r;
	int		 fd;

	if (ctl_format_request(line, sizeof(line), verb, arg, &len) == -1) {
		snprintf(why, whysz, "invalid request argument");
		return CTL_FAIL;
	}
	if ((fd = ctl_connect(spool_dir, why, whysz, &r)) == -1)
		return r;
	/* MSG_NOSIGNAL: a server that closed early is an error, not death */
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			snprintf(why, whysz, "timed out sending to moatd "
			    "(%d s)", CTL_TIMEOUT);
		else
			snprintf(why, whysz, "send to control socket: %s",
			    strerror(errno));
		close(fd);
		return CTL_FAIL;
	}
	r = ctl_read_reply(fd, outfd, why, whysz);
	close(fd);
	return r;
}

/* ctl_reload - SIGHUP the master named by spool_dir/moatd.pid */
enum ctl_result
ctl_reload(const char *spool_dir, pid_t *pid, char *why, size_t whysz)
{
	char	 path[4096], text[32], *end;
	long	 v;
	int	 n;

	*pid = 0;
	n = snprintf(path, sizeof(path), "%s/%s", spool_dir,
	    CONTROL_PIDFILE);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(why, whysz, "spool_dir path too long");
		return CTL_FAIL;
	}
	if (ctl_read_small(path, text, sizeof(text)) == -1) {
		if (errno == ENOENT) {
			snprintf(why, whysz, "no pid file at %s", path);
			return CTL_DOWN;
		}
		snprintf(why, whysz, "%s: %s", path, strerror(errno));
		return CTL_FAIL;
	}
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || v <= 1 || (v > (long)0x7fffffff) ||
	    (*end != '\0' && *end != '\n')) {
		snprintf(why, whysz, "%s: not a pid", path);
		return CTL_FAIL;
	}
	*pid = (pid_t)v;
	/* a stale pid file may name a process that is not ours: check */
	if (kill(*pid, 0) == -1 && errno == ESRCH) {
		snprintf(why, whysz, "stale pid file %s: no process %ld",
		    path, v);
		return CTL_DOWN;
	}
	if (!ctl_proc_is_moatd(*pid)) {
		snprintf(why, whysz, "stale pid file %s: process %ld is "
		    "not moatd", path, v);
		return CTL_DOWN;
	}
	if (kill(*pid, SIGHUP) == -1) {
		if (errno == EPERM)
			snprintf(why, whysz, "not allowed to signal moatd "
			    "(pid %ld): run as root", v);
		else
			snprintf(why, whysz, "kill %ld: %s", v,
			    strerror(errno));
		return CTL_FAIL;
	}
	return CTL_OK;
}

/* ctl_verb_nargs - argument count of a moatctl verb or -1 */
int
ctl_verb_nargs(const char *verb)
{
	size_t	 i;

	for (i = 0; i < sizeof(ctl_verbs) / sizeof(ctl_verbs[0]); i++)
		if (strcmp(ctl_verbs[i].name, verb) == 0)
			return ctl_verbs[i].nargs;
	return -1;
}

/* ctl_format_request - build the request line, checking the argument */
int
ctl_format_request(char *out, size_t outsz, const char *verb,
    const char *arg, size_t *len)
{
	const unsigned char	*a;
	int			 n;

	if (arg != NULL) {
		if (*arg == '\0')
			return -1;
		/* one token of printable ASCII: it ends up in a log line */
		for (a = (const unsigned char *)arg; *a != '\0'; a++)
			if (*a <= ' ' || *a >= 0x7f)
				return -1;
		n = snprintf(out, outsz, "%s %s\n", verb, arg);
	} else
		n = snprintf(out, outsz, "%s\n", verb);
	if (n < 0 || (size_t)n >= outsz || n > CONTROL_LINE_MAX)
		return -1;
	*len = (size_t)n;
	return 0;
}

/* ctl_reply_status - classify the status line */
int
ctl_reply_status(const char *p, size_t len, const char **reason,
    size_t *reasonlen)
{
	*reason = NULL;
	*reasonlen = 0;
	if (len == 3 && memcmp(p, "+OK", 3) == 0)
		return 1;
	/* tolerate "+OK text": the text is not part of the body */
	if (len > 3 && memcmp(p, "+OK ", 4) == 0)
		return 1;
	if (len == 4 && memcmp(p, "-ERR", 4) == 0) {
		*reason = p + 4;
		return 0;
	}
	if (len > 4 && memcmp(p, "-ERR ", 5) == 0) {
		*reason = p + 5;
		*reasonlen = len - 5;
		return 0;
	}
	return -1;
}

/* ctl_name_is_moatd - basename of p[0..len) is "moatd" */
int
ctl_name_is_moatd(const char *p, size_t len)
{
	static const char	 del[] = " (deleted)";
	size_t			 i, start = 0;

	/* the kernel appends " (deleted)" to the exe of a replaced file */
	if (len >= sizeof(del) - 1 &&
	    memcmp(p + len - (sizeof(del) - 1), del, sizeof(del) - 1) == 0)
		len -= sizeof(del) - 1;
	for (i = 0; i < len; i++)
		if (p[i] == '/')
			start = i + 1;
	return len - start == 5 && memcmp(p + start, "moatd", 5) == 0;
}

/* ---- moat-sendmail: arguments -------------------------------------- */

/* sm_parse_args - sendmail-compatible options */
int
sm_parse_args(int argc, char *const argv[], struct sm_opts *o, char *why,
    size_t whysz)
{
	const char	*a, *val;
	int		 i, j, c;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		for (j = 1; (c = (unsigned char)a[j]) != '\0'; j++) {
			switch (c) {
			case 't':
				o->extract = 1;
				continue;
			case 'i':
				o->ignore_dots = 1;
				continue;
			case 'U':	/* initial submission: always so */
			case 'v':	/* verbose: nothing to add */
				continue;
			case 'o':
				/* -oX: only -oi means something here */
				if (strcmp(a + j + 1, "i") == 0)
					o->ignore_dots = 1;
				break;
			case 'b':
				if (strcmp(a + j + 1, "p") == 0)
					o->mode = SM_LISTQ;
				else if (strcmp(a + j + 1, "m") == 0)
					o->mode = SM_DELIVER;
				else {
					snprintf(why, whysz, "unsupported "
					    "mode: %.20s", a + j);
					return -1;
				}
				break;
			case 'q':
				if (a[j + 1] != '\0') {
					snprintf(why, whysz, "unsupported "
					    "option: -%.20s", a + j);
					return -1;
				}
				o->mode = SM_FLUSH;
				break;
			case 'f': case 'r': case 'F': case 'C': case 'B':
			case 'N': case 'R': case 'V':
				if (sm_opt_value(argc, argv, &i, a + j + 1,
				    &val) == -1) {
					snprintf(why, whysz, "option -%c "
					    "requires an argument", c);
					return -1;
				}
				if (c == 'f' || c == 'r')
					o->sender = val;
				else if (c == 'F')
					o->fullname = val;
				else if (c == 'C')
					o->config = val;
				else if (c == 'B') {
					if (strcasecmp(val, "7BIT") == 0)
						o->btype = SM_BODY_7BIT;
					else if (strcasecmp(val,
					    "8BITMIME") == 0)
						o->btype = SM_BODY_8BIT;
					else {
						snprintf(why, whysz, "-B: "
						    "7BIT or 8BITMIME");
						return -1;
					}
				}
				/* -N -R -V: DSN options, not kept */
				break;
			default:
				if (c >= 0x21 && c < 0x7f)
					snprintf(why, whysz, "unknown "
					    "option -%c", c);
				else
					snprintf(why, whysz, "unknown "
					    "option");
				return -1;
			}
			break;	/* the option took the rest of a */
		}
	}
	o->rcpt = argv + i;
	o->nrcpt = argc - i;
	if (o->mode != SM_DELIVER && o->nrcpt > 0) {
		snprintf(why, whysz, "%s takes no recipients",
		    o->mode == SM_LISTQ ? "listing the queue" : "-q");
		return -1;
	}
	return 0;
}

/* sm_opt_value - option value attached ("-ffoo") or next ("-f foo") */
static int
sm_opt_value(int argc, char *const argv[], int *i, const char *rest,
    const char **val)
{
	if (*rest != '\0') {
		*val = rest;
		return 0;
	}
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 0;
}

/* ---- moat-sendmail: input ------------------------------------------ */

/* sm_input_init - start normalising into out */
void
sm_input_init(struct sm_input *in, struct buf *out, size_t limit,
    int ignore_dots)
{
	memset(in, 0, sizeof(*in));
	in->out = out;
	in->limit = limit;
	in->ignore_dots = ignore_dots;
	in->bol = 1;
}

/* sm_input_feed - normalise one chunk */
int
sm_input_feed(struct sm_input *in, const char *p, size_t len)
{
	struct buf	*b = in->out;
	unsigned char	 c;
	char		*d;
	size_t		 i;

	if (in->done)
		return 1;
	if (b->len > in->limit) {
		errno = EFBIG;
		return -1;
	}
	/* worst case every octet becomes CRLF, plus a held-back dot */
	if (len > (BUF_HARD_MAX - 1) / 2 || buf_reserve(b, 2 * len + 1) == -1) {
		errno = b->len + len > in->limit ? EFBIG : ENOMEM;
		return -1;
	}
	d = b->data;
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (in->cr) {
			in->cr = 0;
			if (c == '\n')
				continue;	/* CRLF: already written */
		}
		if (c == '\r' || c == '\n') {
			if (in->dot) {
				in->done = 1;
				break;
			}
			d[b->len++] = '\r';
			d[b->len++] = '\n';
			in->bol = 1;
			in->cr = c == '\r';
			continue;
		}
		if (in->dot) {
			d[b->len++] = '.';
			in->dot = 0;
		}
		if (in->bol && c == '.' && !in->ignore_dots) {
			in->dot = 1;
			in->bol = 0;
			continue;
		}
		in->bol = 0;
		in->eightbit |= c >= 0x80;
		d[b->len++] = (char)c;
	}
	b->data[b->len] = '\0';
	if (b->len > in->limit) {
		errno = EFBIG;
		return -1;
	}
	return in->done;
}

/* sm_input_end - end of input: a "." alone ends too; close the line */
int
sm_input_end(struct sm_input *in)
{
	if (in->done)
		return 0;
	if (in->dot) {
		in->done = 1;
		return 0;
	}
	if (!in->bol && buf_append(in->out, "\r\n", 2) == -1)
		return -1;
	if (in->out->len > in->limit) {
		errno = EFBIG;
		return -1;
	}
	return 0;
}

/* ---- moat-sendmail: headers ---------------------------------------- */

/* sm_header_scan - find the header section and the body */
void
sm_header_scan(const char *p, size_t len, struct sm_hdrscan *hs)
{
	size_t	 off = 0, ll, next;

	memset(hs, 0, sizeof(*hs));
	/* an mbox "From " envelope line is not a header: drop it */
	if (len >= 5 && memcmp(p, "From ", 5) == 0) {
		sm_line_len(p, len, 0, &next);
		if (!sm_is_field(p, next))
			off = hs->start = next;
	}
	while (off < len) {
		sm_line_len(p, len, off, &next);
		ll = next - off;
		if (ll == 2 && p[off] == '\r') {
			hs->hdr_end = off;
			hs->body_off = next;
			hs->separator = 1;
			return;
		}
		if (sm_is_wsp((unsigned char)p[off])) {
			if (off == hs->start)
				break;		/* nothing to continue */
		} else if (!sm_is_field(p + off, ll))
			break;
		off = next;
	}
	hs->hdr_end = hs->body_off = off;
}

/* sm_header_next - next field with its continuation lines */
int
sm_header_next(const char *p, size_t end, size_t *off, struct sm_field *f)
{
	size_t	 start = *off, next, i, vend;

	if (start >= end)
		return 0;
	sm_line_len(p, end, start, &next);
	while (next < end && sm_is_wsp((unsigned char)p[next]))
		sm_line_len(p, end, next, &next);
	f->raw = p + start;
	f->rawlen = next - start;
	/* sm_header_scan checked the name and the colon */
	for (i = start; i < next && p[i] != ':'; i++)
		;
	f->name = p + start;
	f->namelen = i - start;
	while (f->namelen > 0 && sm_is_wsp((unsigned char)f->name[
	    f->namelen - 1]))
		f->namelen--;
	vend = next;
	if (vend - start >= 2 && p[vend - 2] == '\r' && p[vend - 1] == '\n')
		vend -= 2;
	f->value = i < vend ? p + i + 1 : p + vend;
	f->valuelen = i < vend ? vend - i - 1 : 0;
	*off = next;
	return 1;
}

/* sm_field_is - case-insensitive field name compare */
int
sm_field_is(const struct sm_field *f, const char *name)
{
	size_t	 n = strlen(name);

	return f->namelen == n && mem_casecmp(f->name, name, n) == 0;
}

static int
sm_is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* sm_line_len - *next = offset after the CRLF of the line at off */
static void
sm_line_len(const char *p, size_t len, size_t off, size_t *next)
{
	const char	*lf;

	lf = memchr(p + off, '\n', len - off);
	*next = lf == NULL ? len : (size_t)(lf - p) + 1;
}

/* sm_is_field - RFC 5322 2.2 field name (obsolete WSP before ':' ok) */
static int
sm_is_field(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (p[i] == ':')
			break;
		if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
			break;
	}
	if (i == 0)
		return 0;
	while (i < len && sm_is_wsp((unsigned char)p[i]))
		i++;
	return i < len && p[i] == ':';
}

/* ---- moat-sendmail: addresses -------------------------------------- */

/* sm_addrlist_parse - addr-specs of an RFC 5322 3.4 address-list */
int
sm_addrlist_parse(const char *p, size_t len, struct sm_rcpts *out,
    const char **why)
{
	struct al_elem	 e;
	size_t		 i = 0, end;
	int		 in_group = 0, bad = 0, r = -1;
	unsigned char	 c;

	memset(&e, 0, sizeof(e));
	buf_init(&e.plain, AL_PLAIN_MAX);
	buf_init(&e.angle, ADDR_PATH_MAX * 4);
	*why = NULL;
	while (i < len) {
		c = (unsigned char)p[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
			continue;
		}
		if (c == '(') {
			i = al_skip_comment(p, len, i, &bad);
			if (bad) {
				*why = "unbalanced comment";
				goto out;
			}
			continue;
		}
		if (c == '"' || c == '[') {
			end = c == '"' ? al_skip_quoted(p, len, i, &bad) :
			    al_skip_literal(p, len, i, &bad);
			if (bad) {
				*why = c == '"' ? "unterminated quoted "
				    "string" : "unterminated domain literal";
				goto out;
			}
			if (al_token(&e, p + i, end - i, 1) == -1)
				goto toolong;
			i = end;
			continue;
		}
		if (c < 0x20 || c == 0x7f || c == '\\' || c == ']' ||
		    c == ')') {
			*why = "invalid character in address list";
			goto out;
		}
		if (c == '<') {
			if (e.in_angle || e.have_angle) {
				*why = "unexpected '<'";
				goto out;
			}
			e.in_angle = 1;
			i++;
			continue;
		}
		if (c == '>') {
			if (!e.in_angle) {
				*why = "unexpected '>'";
				goto out;
			}
			e.in_angle = 0;
			e.have_angle = 1;
			i++;
			continue;
		}
		/* inside <>, ',' and ':' belong to a route "@a,@b:" */
		if (!e.in_angle && (c == ',' || (c == ';' && in_group))) {
			if (al_finish(&e, out, why) == -1)
				goto out;
			if (c == ';')
				in_group = 0;
			i++;
			continue;
		}
		if (!e.in_angle && c == ':') {
			/* group: the text so far was its display name */
			if (in_group || e.have_angle) {
				*why = "unexpected ':'";
				goto out;
			}
			in_group = 1;
			al_reset(&e);
			i++;
			continue;
		}
		if (al_special(c) && c != '.' && c != '@' &&
		    !(e.in_angle && (c == ',' || c == ':'))) {
			*why = "unexpected special character";
			goto out;
		}
		if (al_special(c)) {
			end = i + 1;
		} else {
			for (end = i; end < len; end++) {
				c = (unsigned char)p[end];
				if (c <= ' ' || c == 0x7f || al_special(c) ||
				    c == '(' || c == '"' || c == '\\')
					break;
			}
		}
		if (al_token(&e, p + i, end - i,
		    !al_special((unsigned char)p[i])) == -1)
			goto toolong;
		i = end;
	}
	if (e.in_angle) {
		*why = "unterminated '<'";
		goto out;
	}
	/* a group missing its ';' is accepted: nothing is lost */
	if (al_finish(&e, out, why) == -1)
		goto out;
	r = 0;
	goto out;
toolong:
	*why = e.have_angle && !e.in_angle ? "text after '>'" :
	    "address too long";
out:
	buf_free(&e.plain);
	buf_free(&e.angle);
	return r;
}

/* sm_rcpts_add - append a copy unless already there */
int
sm_rcpts_add(struct sm_rcpts *r, const char *p, size_t len)
{
	char	**nv;
	size_t	 i, ncap;

	for (i = 0; i < r->n; i++)
		if (strlen(r->v[i]) == len && mem_casecmp(r->v[i], p,
		    len) == 0)
			return 0;
	if (r->n >= SM_RCPT_MAX) {
		errno = E2BIG;
		return -1;
	}
	if (r->n == r->cap) {
		ncap = r->cap == 0 ? 8 : r->cap * 2;
		if ((nv = reallocarray(r->v, ncap, sizeof(*nv))) == NULL)
			return -1;
		r->v = nv;
		r->cap = ncap;
	}
	if ((r->v[r->n] = str_dup_len(p, len)) == NULL)
		return -1;
	r->n++;
	return 0;
}

/* sm_rcpts_free - free the list and its strings */
void
sm_rcpts_free(struct sm_rcpts *r)
{
	size_t	 i;

	for (i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* sm_qualify - append @domain to a bare local part */
char *
sm_qualify(const char *addr, size_t len, const char *domain)
{
	struct buf	 b;
	size_t		 i;
	int		 quoted = 0, at = 0;

	for (i = 0; i < len; i++) {
		if (quoted && addr[i] == '\\' && i + 1 < len)
			i++;
		else if (addr[i] == '"')
			quoted = !quoted;
		else if (!quoted && addr[i] == '@')
			at = 1;
	}
	buf_init(&b, 0);
	if (buf_append(&b, addr, len) == -1 ||
	    (!at && buf_appendf(&b, "@%s", domain) == -1)) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* sm_phrase - display name as atoms, quoted-string or RFC 2047 words */
int
sm_phrase(struct buf *out, const char *name, size_t len)
{
	char		 clean[SM_NAME_MAX];
	size_t		 i, n = 0;
	int		 eight = 0;
	unsigned char	 c;

	for (i = 0; i < len && n < sizeof(clean); i++) {
		c = (unsigned char)name[i];
		/* CR, LF and friends would let -F inject header lines */
		if (c < 0x20 || c == 0x7f)
			continue;
		if (c == ' ' && (n == 0 || clean[n - 1] == ' '))
			continue;
		eight |= c >= 0x80;
		clean[n++] = (char)c;
	}
	/* cut at a UTF-8 character boundary */
	if (i < len)
		while (n > 0 && ((unsigned char)clean[n - 1] & 0xc0) == 0x80)
			n--;
	if (i < len && n > 0 && (unsigned char)clean[n - 1] >= 0xc0)
		n--;
	while (n > 0 && clean[n - 1] == ' ')
		n--;
	if (n == 0)
		return 0;
	if (eight)
		return phrase_encoded(out, clean, n);
	if (phrase_is_atoms(clean, n))
		return buf_append(out, clean, n);
	/* RFC 5322 3.2.4 quoted-string: escape '"' and '\\' */
	if (buf_append(out, "\"", 1) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((clean[i] == '"' || clean[i] == '\\') &&
		    buf_append(out, "\\", 1) == -1)
			return -1;
		if (buf_append(out, clean + i, 1) == -1)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

/* RFC 5322 3.2.3 specials */
static int
al_special(int c)
{
	return c != '\0' && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

/* al_skip_comment - index after the (nested) comment at i */
static size_t
al_skip_comment(const char *p, size_t len, size_t i, int *bad)
{
	int	 depth = 0;

	for (; i < len; i++) {
		if (p[i] == '\\')
			i++;
		else if (p[i] == '(')
			depth++;
		else if (p[i] == ')' && --depth == 0)
			return i + 1;
	}
	*bad = 1;
	return len;
}

/* al_skip_quoted - index after the quoted-string at i */
static size_t
al_skip_quoted(const char *p, size_t len, size_t i, int *bad)
{
	for (i++; i < len; i++) {
		if (p[i] == '\\')
			i++;
		else if (p[i] == '"')
			return i + 1;
	}
	*bad = 1;
	return len;
}

/* al_skip_literal - index after the domain literal at i */
static size_t
al_skip_literal(const char *p, size_t len, size_t i, int *bad)
{
	for (i++; i < len; i++) {
		if (p[i] == '[' || p[i] == '\\')
			break;
		if (p[i] == ']')
			return i + 1;
	}
	*bad = 1;
	return len;
}

/*
 * al_token - add a token of the current element.  White space and
 * comments are dropped between tokens (obsolete CFWS around '.' and
 * '@'); two words in a row outside <> are a display name.
 */
static int
al_token(struct al_elem *e, const char *p, size_t len, int word)
{
	if (e->in_angle)
		return buf_append(&e->angle, p, len) == -1 ||
		    e->angle.len > ADDR_PATH_MAX ? -1 : 0;
	if (e->have_angle)
		return -1;		/* "<a@b> junk" */
	if (word && e->prev_word)
		e->phrase = 1;
	e->prev_word = word;
	/* a display name may be long: the addr-spec is checked at the end */
	if (!e->phrase && buf_append(&e->plain, p, len) == -1)
		return -1;
	return 0;
}

/* al_finish - end of one list element: store its addr-spec */
static int
al_finish(struct al_elem *e, struct sm_rcpts *out, const char **why)
{
	const char	*a;
	size_t		 len, i;

	if (e->have_angle) {
		a = e->angle.data;
		len = e->angle.len;
		/* RFC 5322 4.4 obs-route "@a,@b:" is dropped */
		if (len > 0 && a[0] == '@') {
			for (i = 0; i < len && a[i] != ':'; i++)
				;
			if (i == len) {
				*why = "bad route in address";
				return -1;
			}
			a += i + 1;
			len -= i + 1;
		}
		if (len == 0) {
			*why = "empty address <>";
			return -1;
		}
	} else if (e->phrase) {
		*why = "display name without <address>";
		return -1;
	} else {
		a = e->plain.data;
		len = e->plain.len;
		if (len > ADDR_PATH_MAX) {
			*why = "address too long";
			return -1;
		}
	}
	if (len > 0 && sm_rcpts_add(out, a, len) == -1) {
		*why = errno == E2BIG ? "too many recipients" :
		    "out of memory";
		return -1;
	}
	al_reset(e);
	return 0;
}

static void
al_reset(struct al_elem *e)
{
	buf_reset(&e->plain);
	buf_reset(&e->angle);
	e->in_angle = e->have_angle = e->prev_word = e->phrase = 0;
}

/* phrase_is_atoms - only atext and single spaces (RFC 5322 3.2.3) */
static int
phrase_is_atoms(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (p[i] != ' ' && al_special((unsigned char)p[i]))
			return 0;
	return 1;
}

/*
 * phrase_encoded - RFC 2047 "B" encoded words of at most SM_EW_CHUNK
 * octets (so each word stays under 75 characters, 2047 section 2),
 * never splitting a UTF-8 character (section 5), folded onto their
 * own lines.
 */
static int
phrase_encoded(struct buf *out, const char *p, size_t n)
{
	const unsigned char	*u = (const unsigned char *)p;
	size_t			 off = 0, k, i;
	unsigned		 v;
	char			 q[4];

	while (off < n) {
		k = n - off < SM_EW_CHUNK ? n - off : SM_EW_CHUNK;
		while (off + k < n && k > 1 && (u[off + k] & 0xc0) == 0x80)
			k--;
		if ((off > 0 && buf_append(out, "\r\n ", 3) == -1) ||
		    buf_append(out, "=?UTF-8?B?", 10) == -1)
			return -1;
		for (i = 0; i < k; i += 3) {
			v = (unsigned)u[off + i] << 16;
			if (i + 1 < k)
				v |= (unsigned)u[off + i + 1] << 8;
			if (i + 2 < k)
				v |= u[off + i + 2];
			q[0] = b64[v >> 18 & 63];
			q[1] = b64[v >> 12 & 63];
			q[2] = i + 1 < k ? b64[v >> 6 & 63] : '=';
			q[3] = i + 2 < k ? b64[v & 63] : '=';
			if (buf_append(out, q, 4) == -1)
				return -1;
		}
		if (buf_append(out, "?=", 2) == -1)
			return -1;
		off += k;
	}
	return 0;
}

/* ---- control client helpers ---------------------------------------- */

/* ctl_connect - connected socket with timeouts, or -1 with *r and why */
static int
ctl_connect(const char *spool_dir, char *why, size_t whysz,
    enum ctl_result *r)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { CTL_TIMEOUT, 0 };
	int			 fd, n;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
	    spool_dir, CONTROL_SOCKET);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		snprintf(why, whysz, "control socket path too long: %s/%s",
		    spool_dir, CONTROL_SOCKET);
		*r = CTL_FAIL;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(why, whysz, "socket: %s", strerror(errno));
		*r = CTL_FAIL;
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
		snprintf(why, whysz, "setsockopt: %s", strerror(errno));
		close(fd);
		*r = CTL_FAIL;
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	*r = CTL_FAIL;
	switch (errno) {
	case ENOENT:
		snprintf(why, whysz, "no control socket at %s", sun.sun_path);
		*r = CTL_DOWN;
		break;
	case ECONNREFUSED:
		snprintf(why, whysz, "nothing listening on %s", sun.sun_path);
		*r = CTL_DOWN;
		break;
	case EACCES:
	case EPERM:
		snprintf(why, whysz, "permission denied on %s: run as root "
		    "or as the moat user", sun.sun_path);
		break;
	case EAGAIN:
	case EINPROGRESS:
		snprintf(why, whysz, "timed out connecting to %s",
		    sun.sun_path);
		break;
	default:
		snprintf(why, whysz, "connect %s: %s", sun.sun_path,
		    strerror(errno));
	}
	close(fd);
	return -1;
}

/*
 * ctl_read_reply - read the status line, then copy the body to outfd
 * until the server closes.
 */
static enum ctl_result
ctl_read_reply(int fd, int outfd, char *why, size_t whysz)
{
	char		 buf[8192], status[CTL_STATUS_MAX];
	const char	*reason, *lf;
	size_t		 slen = 0, take, rlen;
	ssize_t		 n;
	int		 have_status = 0, st;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				snprintf(why, whysz, "timed out waiting for "
				    "moatd (%d s)", CTL_TIMEOUT);
			else
				snprintf(why, whysz, "read from control "
				    "socket: %s", strerror(errno));
			return CTL_FAIL;
		}
		if (n == 0)
			break;
		if (have_status) {
			if (write_all(outfd, buf, (size_t)n) == -1)
				goto wfail;
			continue;
		}
		lf = memchr(buf, '\n', (size_t)n);
		take = lf == NULL ? (size_t)n : (size_t)(lf - buf);
		if (slen + take >= sizeof(status)) {
			snprintf(why, whysz, "malformed reply from moatd");
			return CTL_FAIL;
		}
		memcpy(status + slen, buf, take);
		slen += take;
		if (lf == NULL)
			continue;
		have_status = 1;
		st = ctl_reply_status(status, slen, &reason, &rlen);
		if (st == -1) {
			snprintf(why, whysz, "malformed reply from moatd");
			return CTL_FAIL;
		}
		if (st == 0) {
			ctl_copy_reason(reason, rlen, why, whysz);
			return CTL_ERR;
		}
		take++;
		if ((size_t)n > take &&
		    write_all(outfd, buf + take, (size_t)n - take) == -1)
			goto wfail;
	}
	if (!have_status) {
		snprintf(why, whysz, "moatd closed the connection without "
		    "a reply");
		return CTL_FAIL;
	}
	return CTL_OK;
wfail:
	snprintf(why, whysz, "write: %s", strerror(errno));
	return CTL_FAIL;
}

/* ctl_copy_reason - printable copy of the server's -ERR reason */
static void
ctl_copy_reason(const char *p, size_t len, char *why, size_t whysz)
{
	size_t	 i, n = 0;

	if (whysz == 0)
		return;
	for (i = 0; i < len && n + 1 < whysz; i++)
		why[n++] = (unsigned char)p[i] < 0x20 ||
		    (unsigned char)p[i] == 0x7f ? '?' : p[i];
	why[n] = '\0';
	if (n == 0)
		snprintf(why, whysz, "request refused");
}

/* ctl_read_small - NUL-terminated contents of a small file */
static int
ctl_read_small(const char *path, char *out, size_t outsz)
{
	ssize_t	 n;
	int	 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	n = read(fd, out, outsz - 1);
	saved = errno;
	close(fd);
	if (n == -1) {
		errno = saved;
		return -1;
	}
	out[n] = '\0';
	return (int)n;
}

/*
 * ctl_proc_is_moatd - /proc/PID/exe names a moatd; the link is
 * unreadable for other users' processes (ptrace rule), then argv[0]
 * from /proc/PID/cmdline, which anyone may read.
 */
static int
ctl_proc_is_moatd(pid_t pid)
{
	char	 path[64], text[CTL_PROC_MAX];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	if ((n = readlink(path, text, sizeof(text))) > 0 &&
	    (size_t)n < sizeof(text))
		return ctl_name_is_moatd(text, (size_t)n);
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n <= 0)
		return 0;
	/* argv[0] ends at the first NUL */
	return ctl_name_is_moatd(text, strnlen(text, (size_t)n));
}
