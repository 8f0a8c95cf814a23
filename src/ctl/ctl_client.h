/*
 * ctl_client.h - shared parts of moatctl and moat-sendmail.
 *
 * Two groups:
 *  - the control-socket client (control.h protocol) and the SIGHUP
 *    reload, used by moatctl and by moat-sendmail's -bp / -q / mailq;
 *  - the pure parts of moat-sendmail: argument parsing, input line-end
 *    normalisation, header scanning, RFC 5322 address lists (-t) and
 *    display-name encoding.  These do no I/O and are unit-tested in
 *    tests/unit/test_sendmail.c.
 *
 * All scanners take (ptr, len) and never read past len.
 */
#ifndef MOAT_CTL_CLIENT_H
#define MOAT_CTL_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "../lib/buf.h"

#define CTL_TIMEOUT	10	/* seconds, each socket read and write */
#define CTL_DEFAULT_CONFIG "/etc/moat/moat.conf"
#define CTL_CONFIG_ENV	"MOAT_CONFIG"

/* ---- control client ------------------------------------------------ */

enum ctl_result {
	CTL_OK,		/* +OK, body copied */
	CTL_ERR,	/* -ERR: why = the server's reason */
	CTL_DOWN,	/* moatd is not running: why says what is missing */
	CTL_FAIL	/* anything else: why says what failed */
};

/*
 * ctl_request - send "verb[ arg]" to spool_dir/control and copy the
 * reply body to outfd.  why (whysz octets) gets a message for the user
 * on anything but CTL_OK.
 */
enum ctl_result	ctl_request(const char *spool_dir, const char *verb,
		    const char *arg, int outfd, char *why, size_t whysz);

/*
 * ctl_reload - send SIGHUP to the moatd whose pid is in
 * spool_dir/moatd.pid, after checking that the process is a moatd.
 * *pid gets the pid (CTL_OK and CTL_FAIL).
 */
enum ctl_result	ctl_reload(const char *spool_dir, pid_t *pid, char *why,
		    size_t whysz);

/* ctl_verb_nargs - number of arguments of a moatctl verb, -1 unknown */
int		ctl_verb_nargs(const char *verb);

/*
 * ctl_format_request - "VERB[ ARG]\n" into out (outsz octets), *len
 * its length.  -1 if it does not fit CONTROL_LINE_MAX or arg is empty
 * or holds a space, control octet or non-ASCII octet.
 */
int		ctl_format_request(char *out, size_t outsz, const char *verb,
		    const char *arg, size_t *len);

/*
 * ctl_reply_status - parse a status line p[0..len) (no LF): 1 for
 * "+OK", 0 for "-ERR reason" (*reason, *reasonlen: the reason slice,
 * possibly empty), -1 for anything else.
 */
int		ctl_reply_status(const char *p, size_t len,
		    const char **reason, size_t *reasonlen);

/*
 * ctl_name_is_moatd - is the executable path or argv[0] p[0..len) a
 * moatd ("/usr/sbin/moatd", "moatd", "/x/moatd (deleted)")?
 */
int		ctl_name_is_moatd(const char *p, size_t len);

/* ---- moat-sendmail: arguments -------------------------------------- */

enum sm_mode {
	SM_DELIVER,	/* -bm, the default: submit a message */
	SM_LISTQ,	/* -bp or invoked as mailq */
	SM_FLUSH	/* -q */
};

enum sm_btype {
	SM_BODY_AUTO,	/* no -B: detect from the content */
	SM_BODY_7BIT,	/* -B 7BIT */
	SM_BODY_8BIT	/* -B 8BITMIME */
};

struct sm_opts {
	enum sm_mode	 mode;
	int		 extract;	/* -t */
	int		 ignore_dots;	/* -i, -oi */
	enum sm_btype	 btype;		/* -B */
	const char	*sender;	/* -f, -r; NULL = login name */
	const char	*fullname;	/* -F; NULL = from the gecos */
	const char	*config;	/* -C; NULL = env or default */
	char *const	*rcpt;		/* the remaining arguments */
	int		 nrcpt;
};

/*
 * sm_parse_args - parse sendmail-style options (getopt-like: flags may
 * be grouped, option values attached or in the next argument, "--"
 * ends the options).  Returns 0, or -1 with a message in why.
 */
int	sm_parse_args(int argc, char *const argv[], struct sm_opts *,
	    char *why, size_t whysz);

/* ---- moat-sendmail: input ------------------------------------------ */

/*
 * struct sm_input - normalise the message read from stdin into out:
 * CRLF, LF and a stray CR all become CRLF (DESIGN.md 4: the spool holds
 * CRLF lines only); without ignore_dots a line holding a single "."
 * ends the message (sendmail -bm); the last line gets a CRLF if it has
 * none.  Input is fed in chunks of any size.
 */
struct sm_input {
	struct buf	*out;
	size_t		 limit;		/* most octets kept */
	int		 ignore_dots;
	int		 cr;		/* last octet CR: skip an LF */
	int		 bol;		/* at the start of a line */
	int		 dot;		/* line so far is ".": held */
	int		 done;		/* the "." line was seen */
	int		 eightbit;	/* an octet >= 0x80 was kept */
};

void	sm_input_init(struct sm_input *, struct buf *out, size_t limit,
	    int ignore_dots);
/*
 * sm_input_feed - add p[0..len).  Returns 0 (feed more), 1 (the "."
 * line was seen: stop reading), -1 with errno EFBIG (over limit) or
 * ENOMEM.
 */
int	sm_input_feed(struct sm_input *, const char *p, size_t len);
/* sm_input_end - at end of input: terminate the last line.  0 or -1 */
int	sm_input_end(struct sm_input *);

/* ---- moat-sendmail: headers ---------------------------------------- */

/* where the header section of a normalised (CRLF) message is */
struct sm_hdrscan {
	size_t	 start;		/* after a Unix "From " line */
	size_t	 hdr_end;	/* end of the last header field */
	size_t	 body_off;	/* start of the body */
	int	 separator;	/* an empty line separates them */
};

/*
 * sm_header_scan - the header section is the longest run of header
 * fields (RFC 5322 2.2: name, optional WSP, ':'; continuation lines
 * start with WSP) from the start; it ends at an empty line or at the
 * first line that is not a field, which then begins the body.
 */
void	sm_header_scan(const char *p, size_t len, struct sm_hdrscan *);

/* one header field, slices of the message */
struct sm_field {
	const char	*raw;		/* whole field, CRLFs too */
	size_t		 rawlen;
	const char	*name;
	size_t		 namelen;
	const char	*value;		/* after ':', folded, no CRLF */
	size_t		 valuelen;
};

/*
 * sm_header_next - the field at *off (p[0..end) being the header
 * section found by sm_header_scan); advances *off.  1, or 0 at end.
 */
int	sm_header_next(const char *p, size_t end, size_t *off,
	    struct sm_field *);
/* sm_field_is - field name equals name (ASCII, any case) */
int	sm_field_is(const struct sm_field *, const char *name);

/* ---- moat-sendmail: addresses -------------------------------------- */

#define SM_RCPT_MAX	10000	/* recipients of one submission */

struct sm_rcpts {
	char	**v;
	size_t	 n;
	size_t	 cap;
};

/*
 * sm_addrlist_parse - append the addr-specs of an RFC 5322 3.4
 * address-list (a header value or a command-line argument) to out:
 * "a@b", "Name <a@b>", "\"A, B\" <a@b>", "a@b (comment)", groups
 * "team: a@b, c@d;", empty groups and list elements.  Folding (CRLF
 * WSP) is white space.  A route in "<@x,@y:a@b>" is dropped.  Returns
 * 0, or -1 with *why set (static text) on a syntax error, a duplicate
 * is not added twice.
 */
int	sm_addrlist_parse(const char *p, size_t len, struct sm_rcpts *out,
	    const char **why);
/* sm_rcpts_add - append a copy of p[0..len) unless already present */
int	sm_rcpts_add(struct sm_rcpts *, const char *p, size_t len);
void	sm_rcpts_free(struct sm_rcpts *);

/*
 * sm_qualify - a malloc'd copy of addr (len octets) with "@domain"
 * appended when it has no '@' outside a quoted local part (sendmail
 * and Postfix qualify "root" with the local domain).  NULL on ENOMEM.
 */
char	*sm_qualify(const char *addr, size_t len, const char *domain);

/*
 * sm_phrase - append name (len octets) to out as an RFC 5322 display
 * name: control octets dropped, atoms as they are, specials in a
 * quoted-string, non-ASCII (assumed UTF-8) as RFC 2047 "B" encoded
 * words folded onto continuation lines.  Appends nothing for a name
 * that is empty once cleaned.  0 or -1 (ENOMEM).
 */
int	sm_phrase(struct buf *out, const char *name, size_t len);

#endif
