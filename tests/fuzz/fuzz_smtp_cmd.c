/*
 * fuzz_smtp_cmd.c - libFuzzer harness of the command side of smtp-in:
 * smtp_line_next() frames the input into lines as a session would,
 * smtp_cmd_split() splits each, and MAIL / RCPT arguments go through
 * smtp_parse_mail() / smtp_parse_rcpt() (RCPT with SMTPUTF8 once a MAIL
 * asked for it).  Framing and slices are checked; violations abort().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_in/smtp_parse.h"

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static void	 command(const char *, size_t, int *);
static void	 check_addr(const struct addr *, const char *, size_t);
static int	 inside(const char *, size_t, const char *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum smtp_line_result	 r;
	const char		*p = (const char *)data, *q;
	size_t			 len = size, ll, used, n;
	int			 utf8 = 0;

	while (len > 0) {
		ll = used = SIZE_MAX;
		r = smtp_line_next(p, len, SMTP_LINE_MAX, &ll, &used);
		switch (r) {
		case LINE_OK:
			if (used != ll + 2 || used > len ||
			    used > SMTP_LINE_MAX || p[ll] != '\r' ||
			    p[ll + 1] != '\n' || memchr(p, '\r', ll) != NULL ||
			    memchr(p, '\n', ll) != NULL)
				abort();
			command(p, ll, &utf8);
			break;
		case LINE_NEED_MORE:
			if (len >= SMTP_LINE_MAX)
				abort();
			/* what a client left unterminated, as a line */
			command(p, len, &utf8);
			return 0;
		case LINE_TOO_LONG:
			if (len < SMTP_LINE_MAX)
				abort();
			/* FALLTHROUGH */
		case LINE_BARE_LF:
		case LINE_BARE_CR:
			/* a session closes here; go on to cover more */
			q = memchr(p, '\n', len);
			used = q != NULL ? (size_t)(q - p) + 1 : len;
			break;
		default:
			abort();
		}
		n = used;
		p += n;
		len -= n;
	}
	return 0;
}

/* command - split one line and parse MAIL / RCPT arguments */
static void
command(const char *line, size_t len, int *utf8)
{
	struct smtp_cmd		 cmd;
	struct smtp_mail_args	 m;
	struct smtp_rcpt_args	 rc;
	enum smtp_arg_error	 e;
	const char		*why;

	if (smtp_cmd_split(line, len, &cmd) == -1)
		return;
	if (cmd.verb != line || cmd.verblen == 0 || cmd.verblen > 15 ||
	    !inside(line, len, cmd.arg, cmd.arglen) ||
	    (cmd.arglen > 0 && (cmd.arg[0] == ' ' ||
	    cmd.arg[cmd.arglen - 1] == ' ')) || memchr(line, '\0', len))
		abort();
	why = NULL;
	if (smtp_verb_eq(&cmd, "MAIL")) {
		e = smtp_parse_mail(cmd.arg, cmd.arglen, &m, &why);
		if (e != ARG_OK) {
			if (why == NULL)
				abort();
			return;
		}
		if (!m.null_sender) {
			check_addr(&m.addr, cmd.arg, cmd.arglen);
			if ((m.addr.flags & ADDR_POSTMASTER) ||
			    ((m.addr.flags & ADDR_UTF8) && !m.smtputf8))
				abort();
		}
		if (m.auth != NULL &&
		    !inside(cmd.arg, cmd.arglen, m.auth, m.authlen))
			abort();
		*utf8 = m.smtputf8;
	} else if (smtp_verb_eq(&cmd, "RCPT")) {
		e = smtp_parse_rcpt(cmd.arg, cmd.arglen, *utf8, &rc, &why);
		if (e != ARG_OK) {
			if (why == NULL)
				abort();
			return;
		}
		if (!inside(cmd.arg, cmd.arglen, rc.path, rc.pathlen) ||
		    !inside(rc.path, rc.pathlen, rc.addr.local,
		    rc.addr.locallen) || ((rc.addr.flags & ADDR_UTF8) && !*utf8))
			abort();
		check_addr(&rc.addr, cmd.arg, cmd.arglen);
	}
}

/* check_addr - a parsed address lies in the argument, within limits */
static void
check_addr(const struct addr *a, const char *arg, size_t len)
{
	if (!inside(arg, len, a->local, a->locallen) || a->locallen == 0 ||
	    a->locallen > ADDR_LOCAL_MAX)
		abort();
	if (a->flags & ADDR_POSTMASTER) {
		if (a->domain != NULL)
			abort();
	} else if (!inside(arg, len, a->domain, a->domainlen) ||
	    a->domainlen == 0 || a->domainlen > ADDR_DOMAIN_MAX)
		abort();
}

/* inside - the slice (p, n) lies within (base, len) */
static int
inside(const char *base, size_t len, const char *p, size_t n)
{
	return p != NULL && p >= base && n <= len &&
	    (size_t)(p - base) <= len - n;
}
