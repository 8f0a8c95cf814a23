/*
 * smtp_parse.h - incremental, bounded parsers of smtp-in: command lines,
 * MAIL/RCPT arguments and the DATA / BDAT content scanner.
 *
 * Pure functions over (ptr, len): no I/O, no allocation, no globals, so
 * that each one has a libFuzzer harness (tests/fuzz/).
 */
#ifndef MOAT_SMTP_PARSE_H
#define MOAT_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/addr.h"

#define SMTP_LINE_MAX	512	/* command line incl. CRLF, RFC 5321 4.5.3.1.4 */
#define SMTP_TEXT_MAX	1000	/* text line incl. CRLF, RFC 5321 4.5.3.1.6 */

/* ---- command lines ------------------------------------------------ */

enum smtp_line_result {
	LINE_OK,	/* a complete line: *linelen octets before CRLF */
	LINE_NEED_MORE,	/* no CRLF yet and not too long */
	LINE_TOO_LONG,	/* no CRLF within max octets */
	LINE_BARE_LF,	/* LF not preceded by CR */
	LINE_BARE_CR	/* CR not followed by LF (CR + other octet) */
};

/*
 * smtp_line_next - find the next command line in buf[0..len).  On
 * LINE_OK, *linelen is the line length without CRLF and *consumed the
 * length with it.  max includes the CRLF.
 */
enum smtp_line_result smtp_line_next(const char *buf, size_t len,
	    size_t max, size_t *linelen, size_t *consumed);

struct smtp_cmd {
	const char	*verb;		/* slice of the line */
	size_t		 verblen;
	const char	*arg;		/* after one or more SP; may be empty */
	size_t		 arglen;	/* trailing SP trimmed */
};

/*
 * smtp_cmd_split - split a line (no CRLF) into verb and argument.
 * The verb is 1..15 ASCII letters (or "MAIL FROM"/"RCPT TO" are NOT
 * special here: the verb is "MAIL", the argument "FROM:<...>").
 * Returns -1 on NUL or any octet < 0x20 (except HT) or 0x7f in the
 * line, or a bad verb.
 */
int	smtp_cmd_split(const char *line, size_t len, struct smtp_cmd *);

/* smtp_verb_eq - ASCII case-insensitive compare of verb with upper s */
int	smtp_verb_eq(const struct smtp_cmd *, const char *s);

/* ---- MAIL and RCPT ------------------------------------------------ */

enum smtp_body { BODY_NONE = 0, BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };

struct smtp_mail_args {
	struct addr	 addr;		/* valid unless null_sender */
	int		 null_sender;	/* MAIL FROM:<> */
	int		 has_size;
	uint64_t	 size;		/* SIZE= */
	enum smtp_body	 body;		/* BODY= */
	int		 smtputf8;	/* SMTPUTF8 */
	const char	*auth;		/* AUTH= value slice (xtext), or NULL */
	size_t		 authlen;
};

struct smtp_rcpt_args {
	struct addr	 addr;
	const char	*path;		/* the whole path inside <> */
	size_t		 pathlen;
};

/* errors of the MAIL/RCPT parsers, each with its reply */
enum smtp_arg_error {
	ARG_OK = 0,
	ARG_SYNTAX,	/* 501 5.5.4 Syntax error in parameters */
	ARG_BAD_ADDR,	/* 501 5.1.3 (RCPT) / 501 5.1.7 (MAIL) bad address */
	ARG_UNKNOWN_PARAM, /* 555 5.5.4 unrecognized parameter */
	ARG_UTF8	/* 553 5.6.7 non-ASCII address without SMTPUTF8 */
};

/*
 * smtp_parse_mail - parse the argument of MAIL ("FROM:<path> params").
 * "FROM:" is case-insensitive; one optional space after the colon is
 * tolerated (common client bug), none elsewhere.  Params: SIZE=n,
 * BODY=7BIT|8BITMIME|BINARYMIME, SMTPUTF8, AUTH=xtext.  *why gets a
 * short static text for the reply.
 */
enum smtp_arg_error smtp_parse_mail(const char *arg, size_t len,
	    struct smtp_mail_args *, const char **why);

/* smtp_parse_rcpt - parse the argument of RCPT ("TO:<path> params") */
enum smtp_arg_error smtp_parse_rcpt(const char *arg, size_t len,
	    int utf8, struct smtp_rcpt_args *, const char **why);

/* ---- DATA and BDAT content ---------------------------------------- */

/* error flags collected over a whole message */
#define DS_BARE_CR	0x01
#define DS_BARE_LF	0x02
#define DS_LONG_LINE	0x04	/* a line over SMTP_TEXT_MAX with CRLF */
#define DS_NUL		0x08	/* NUL octet in content (reported only) */

enum data_scan_mode { DSM_DATA, DSM_BDAT };

struct data_scanner {
	enum data_scan_mode	 mode;
	int			 state;		/* private */
	size_t			 linelen;	/* private */
	unsigned		 errors;	/* DS_* seen so far */
	uint64_t		 total;		/* content octets emitted */
	int			 done;		/* DATA: CRLF.CRLF seen */
};

/*
 * data_scan_output - receives content octets (dot-unstuffed for DATA,
 * CRLF kept).  Return -1 to abort (the scanner stops and returns -1).
 */
typedef int (*data_scan_output)(void *arg, const char *p, size_t len);

void	data_scan_init(struct data_scanner *, enum data_scan_mode);

/*
 * data_scan - feed len octets.  Emits content through out in as few
 * calls as possible (runs of plain octets in one call).  DATA: stops
 * after the terminating CRLF.CRLF (sets done) and *consumed tells how
 * many input octets were used, so pipelined commands after it stay in
 * the caller's buffer.  A trailing partial sequence (e.g. "\r\n.") is
 * kept in the scanner state, never re-fed.  BDAT: consumes everything;
 * the caller calls data_scan_end() after the LAST chunk.
 * Returns 0, or -1 if out returned -1.
 *
 * The first line of DATA content counts as preceded by CRLF (so
 * ".\r\n" right after DATA's 354 ends an empty message).  A bare CR or
 * LF is flagged and passed through unchanged; only CR LF . CR LF ends
 * DATA (RFC 5321 4.1.1.4; closes SMTP smuggling).
 */
int	data_scan(struct data_scanner *, const char *in, size_t len,
	    size_t *consumed, data_scan_output out, void *arg);

/* data_scan_end - BDAT LAST: flush state (a pending CR is bare) */
int	data_scan_end(struct data_scanner *, data_scan_output, void *);

#endif
