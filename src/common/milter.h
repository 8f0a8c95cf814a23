/*
 * milter.h - Sendmail milter protocol client (MTA side, version 6 as
 * libmilter speaks it), inside the caller's libevent loop.
 *
 * One milter session per SMTP session: milter_session_start() connects
 * to every configured milter at once and negotiates (SMFIC_OPTNEG);
 * then the caller makes one call per SMTP stage, in protocol order:
 *
 *   milter_connect  milter_helo  (milter_mail  milter_rcpt+
 *   milter_data  milter_header*  milter_eoh  milter_body*  milter_eom
 *   | milter_abort)*  milter_session_free
 *
 * Each call queues its stage and returns at once (0, or -1 when the
 * queue is full or an argument is over a protocol bound); its callback
 * gives the verdict so far once every milter, in configured order, has
 * seen the stage.  Callbacks come from the event loop only, in the
 * order of the calls, exactly once per call that returned 0, unless
 * milter_abort() (for the calls of the message) or
 * milter_session_free() drops them first.  milter_header() and
 * milter_body() take a NULL callback; a caller that streams should
 * still wait for a callback now and then: the queue holds at most
 * MILTER_QUEUE_MAX octets.  The status and everything it points to live
 * only during the callback.
 *
 * Semantics (libmilter's, Postfix's where libmilter leaves a choice):
 * - Milters are asked in order; the first REJECT, TEMPFAIL or DISCARD
 *   ends the stage and the later milters are not asked.  At milter_rcpt
 *   a REJECT or TEMPFAIL refuses that recipient only; at the message
 *   stages (mail, data, header, eoh, body, eom) it ends the message:
 *   the remaining calls of the message get the same verdict, and every
 *   milter is sent SMFIC_ABORT.  At milter_connect it holds for the
 *   whole session.
 * - A milter that answers ACCEPT is not asked again for the message
 *   (for the session, at connect or helo).  MILTER_ACCEPT is reported
 *   when no milter is left to ask: the caller may then skip the stages
 *   left in the message.
 * - A milter that cannot be reached, times out or breaks the protocol is
 *   dropped for the session, and its default action (per milter, else
 *   milter_default_action) decides every later stage it would have
 *   seen: accept = as if it were not configured; tempfail or reject =
 *   that verdict, with from_default set.
 * - The modification actions are accepted at end of message only, and
 *   only those the milter asked for in the negotiation; they are
 *   collected, in milter order, into the status of milter_eom().  Every
 *   milter sees the message as received: the indexes of INSHEADER and
 *   CHGHEADER count the headers given to milter_header() (CHGHEADER:
 *   the Nth header of that name, from 1).  A milter's replacement body
 *   replaces the one of an earlier milter.  A milter that fails during
 *   end of message leaves no modifications.
 * - Header values are sent with folding as "\n" (sendmail's and
 *   Postfix's convention) and, unless the milter asked for
 *   SMFIP_HDR_LEADSPC, without the leading blanks.  Header values in
 *   the modifications are exactly what follows the colon (a milter
 *   without HDR_LEADSPC gets the customary space added), with CRLF
 *   folding, each continuation line starting with a blank (anything
 *   else is a protocol error): write "Name:" value CRLF.
 * - Macros: the module sends, before each stage, the values it has for
 *   Postfix's default macro lists (or those the milter asked for):
 *   connect "j {daemon_name} {client_addr} {client_port} {client_name}
 *   {client_ptr} _"; helo "{tls_version} {cipher} {cipher_bits}
 *   {cert_subject} {cert_issuer}"; mail "i {auth_type} {auth_authen}
 *   {auth_author} {mail_addr} {mail_host} {mail_mailer}"; rcpt "i
 *   {rcpt_addr} {rcpt_host} {rcpt_mailer}"; data, eoh and eom "i".  It
 *   fills j, {daemon_name} (conf), {client_*} and _ (milter_connect),
 *   {mail_*} and {rcpt_*} (the addresses); the caller sets the others
 *   (i, {auth_*}, {tls_*}) with milter_macro_set() when it knows them.
 *   No macro reveals the software or its version (DESIGN.md).
 */
#ifndef MOAT_MILTER_H
#define MOAT_MILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct scan_endpoint;
struct buf;

/* protocol constants: libmilter's mfdef.h (8.36) and mfapi.h */
#define MILTER_PROT_VERSION	6	/* SMFI_PROT_VERSION */
#define MILTER_PROT_VERSION_MIN	2	/* oldest libmilter accepts */
#define MILTER_CHUNK_SIZE	65535	/* largest SMFIC_BODY */
#define MILTER_OPTLEN		12	/* version, actions, protocol */

#define SMFIC_ABORT		'A'
#define SMFIC_BODY		'B'
#define SMFIC_CONNECT		'C'
#define SMFIC_MACRO		'D'
#define SMFIC_BODYEOB		'E'
#define SMFIC_HELO		'H'
#define SMFIC_HEADER		'L'
#define SMFIC_MAIL		'M'
#define SMFIC_EOH		'N'
#define SMFIC_OPTNEG		'O'
#define SMFIC_QUIT		'Q'
#define SMFIC_RCPT		'R'
#define SMFIC_DATA		'T'

#define SMFIR_ADDRCPT		'+'
#define SMFIR_DELRCPT		'-'
#define SMFIR_ADDRCPT_PAR	'2'
#define SMFIR_SHUTDOWN		'4'
#define SMFIR_ACCEPT		'a'
#define SMFIR_REPLBODY		'b'
#define SMFIR_CONTINUE		'c'
#define SMFIR_DISCARD		'd'
#define SMFIR_CHGFROM		'e'
#define SMFIR_CONN_FAIL		'f'
#define SMFIR_ADDHEADER		'h'
#define SMFIR_INSHEADER		'i'
#define SMFIR_SETSYMLIST	'l'
#define SMFIR_CHGHEADER		'm'
#define SMFIR_PROGRESS		'p'
#define SMFIR_QUARANTINE	'q'
#define SMFIR_REJECT		'r'
#define SMFIR_SKIP		's'
#define SMFIR_TEMPFAIL		't'
#define SMFIR_REPLYCODE		'y'

#define SMFIF_ADDHDRS		0x001
#define SMFIF_CHGBODY		0x002
#define SMFIF_ADDRCPT		0x004
#define SMFIF_DELRCPT		0x008
#define SMFIF_CHGHDRS		0x010
#define SMFIF_QUARANTINE	0x020
#define SMFIF_CHGFROM		0x040
#define SMFIF_ADDRCPT_PAR	0x080
#define SMFIF_SETSYMLIST	0x100

#define SMFIP_NOCONNECT		0x000001
#define SMFIP_NOHELO		0x000002
#define SMFIP_NOMAIL		0x000004
#define SMFIP_NORCPT		0x000008
#define SMFIP_NOBODY		0x000010
#define SMFIP_NOHDRS		0x000020
#define SMFIP_NOEOH		0x000040
#define SMFIP_NR_HDR		0x000080
#define SMFIP_NOUNKNOWN		0x000100
#define SMFIP_NODATA		0x000200
#define SMFIP_SKIP		0x000400
#define SMFIP_RCPT_REJ		0x000800
#define SMFIP_NR_CONN		0x001000
#define SMFIP_NR_HELO		0x002000
#define SMFIP_NR_MAIL		0x004000
#define SMFIP_NR_RCPT		0x008000
#define SMFIP_NR_DATA		0x010000
#define SMFIP_NR_UNKN		0x020000
#define SMFIP_NR_EOH		0x040000
#define SMFIP_NR_BODY		0x080000
#define SMFIP_HDR_LEADSPC	0x100000

/* what moat offers: every action; every step flag but RCPT_REJ (it
   never sends refused recipients) */
#define MILTER_ACTIONS		0x1ff
#define MILTER_PROTOCOL		(0x1fffff & ~SMFIP_RCPT_REJ)

/* bounds */
#define MILTER_PACKET_MAX	(1UL << 20)	/* from a milter, octets */
#define MILTER_QUEUE_MAX	(1UL << 20)	/* queued by the caller */
#define MILTER_MODS_MAX		1000	/* modifications per message */
#define MILTER_MODS_BYTES	(1UL << 20) /* their names and values */
#define MILTER_REPLY_MAX	2048	/* SMFIR_REPLYCODE text */
#define MILTER_LINE_MAX		512	/* one line of it (RFC 5321) */
#define MILTER_NAME_MAX		256	/* header name, address, reason */
#define MILTER_MACROS_MAX	32	/* values set per session */
#define MILTER_MACRO_LEN	512	/* one value */
#define MILTER_STAGES		7	/* macro stages SMFIM_CONNECT..EOH */

enum milter_verdict {
	MILTER_CONTINUE,	/* go on with the next stage */
	MILTER_ACCEPT,		/* no milter left to ask for the message
				   (or the session): deliver as is */
	MILTER_REJECT,		/* 5xx */
	MILTER_TEMPFAIL,	/* 4xx */
	MILTER_DISCARD		/* accept, then drop the message */
};

enum milter_mod_type {
	MILTER_MOD_ADDHEADER = SMFIR_ADDHEADER,	/* at the end of the header */
	MILTER_MOD_INSHEADER = SMFIR_INSHEADER,	/* before header #index
						   (0 = at the top) */
	MILTER_MOD_CHGHEADER = SMFIR_CHGHEADER,	/* the index-th header of
						   the name (from 1); an
						   empty value deletes it */
	MILTER_MOD_CHGFROM = SMFIR_CHGFROM,	/* name = new sender,
						   value = ESMTP args */
	MILTER_MOD_ADDRCPT = SMFIR_ADDRCPT,	/* name = recipient */
	MILTER_MOD_ADDRCPT_PAR = SMFIR_ADDRCPT_PAR, /* + value = args */
	MILTER_MOD_DELRCPT = SMFIR_DELRCPT	/* name = recipient as
						   given to milter_rcpt(),
						   in angle brackets */
};

struct milter_mod {
	enum milter_mod_type type;
	unsigned	 milter;	/* index in the configured list */
	uint32_t	 index;		/* INSHEADER, CHGHEADER */
	const char	*name;		/* NUL-terminated too */
	size_t		 name_len;
	const char	*value;		/* "" when none; NUL-terminated;
					   headers: all after the colon */
	size_t		 value_len;
};

struct milter_status {
	enum milter_verdict verdict;
	const char	*reply;		/* SMFIR_REPLYCODE text ("550 5.7.1
					   text", lines joined by CRLF,
					   checked: same 4xx/5xx code on
					   every line, printable), NULL for
					   the caller's own text */
	size_t		 reply_len;
	int		 close;		/* the milter asked to close the
					   session (SHUTDOWN, CONN_FAIL):
					   421 */
	const char	*milter;	/* endpoint of the milter that
					   decided; NULL when none did */
	int		 from_default;	/* the verdict is that milter's
					   default action: it is down */
	/* milter_eom() only */
	const struct milter_mod *mods;
	size_t		 nmods;
	int		 body_replaced;	/* body/body_len replace the body */
	const char	*body;
	size_t		 body_len;
	const char	*quarantine;	/* reason, or NULL */
};

typedef void	(*milter_cb)(const struct milter_status *, void *arg);

struct milter_conf {
	const struct scan_endpoint *milters;	/* config milters */
	size_t		 nmilters;
	int		 default_action;	/* enum conf_milter_action,
						   for endpoints with -1 */
	unsigned	 connect_timeout_ms;	/* connect + negotiation */
	unsigned	 command_timeout_ms;	/* each reply */
	unsigned	 content_timeout_ms;	/* body chunks, eom */
	size_t		 body_max;		/* replacement body bound
						   (message_size_limit) */
	const char	*hostname;		/* macro j */
	const char	*daemon_name;		/* NULL = hostname */
};

struct milter_session;

/* milter_session_start - connect and negotiate; NULL only without memory */
struct milter_session *milter_session_start(struct event_base *,
	    const struct milter_conf *);
/*
 * milter_macro_set - a macro value for the stages from now on ("i",
 * "{auth_authen}", ...; len 0 removes it); 0, or -1 over the bounds
 */
int	milter_macro_set(struct milter_session *, const char *name,
	    const char *value, size_t len);
/* milter_connect - the client: its name ("[addr]" when unverified) */
int	milter_connect(struct milter_session *, const char *hostname,
	    const struct sockaddr *, milter_cb, void *);
int	milter_helo(struct milter_session *, const char *, size_t,
	    milter_cb, void *);
/* milter_mail, milter_rcpt - address without <>, ESMTP params as sent */
int	milter_mail(struct milter_session *, const char *addr, size_t,
	    const char *params, size_t, milter_cb, void *);
int	milter_rcpt(struct milter_session *, const char *addr, size_t,
	    const char *params, size_t, milter_cb, void *);
int	milter_data(struct milter_session *, milter_cb, void *);
/* milter_header - name, and the value after the colon (CRLF folding) */
int	milter_header(struct milter_session *, const char *name, size_t,
	    const char *value, size_t, milter_cb, void *);
int	milter_eoh(struct milter_session *, milter_cb, void *);
/* milter_body - body octets as received (CRLF), any length */
int	milter_body(struct milter_session *, const void *, size_t,
	    milter_cb, void *);
int	milter_eom(struct milter_session *, milter_cb, void *);
/* milter_abort - the message ends without eom (RSET, refused): no cb */
void	milter_abort(struct milter_session *);
/* milter_session_free - QUIT; pending callbacks are never called */
void	milter_session_free(struct milter_session *);

/*
 * The packet codec, exported for tests/unit/test_milter.c and
 * tests/fuzz/fuzz_milter.c.
 */

/* one reply from a milter, decoded and checked */
struct milter_reply {
	int		 code;		/* SMFIR_* */
	uint32_t	 index;		/* INSHEADER, CHGHEADER */
	const char	*s1;		/* name, address, reason, reply text,
					   body: slices of the packet */
	size_t		 l1;
	const char	*s2;		/* value, ESMTP args */
	size_t		 l2;
	int		 reply_class;	/* REPLYCODE: 4 or 5 */
};

/* the milter's SMFIC_OPTNEG reply */
struct milter_optneg {
	uint32_t	 version;
	uint32_t	 actions;
	uint32_t	 protocol;
	const char	*list[MILTER_STAGES];	/* macro names wanted per
						   stage, space-separated;
						   NULL = the defaults */
	size_t		 list_len[MILTER_STAGES];
};

/* milter_pkt_append - uint32 length, command, data */
int	milter_pkt_append(struct buf *, int cmd, const void *, size_t);
/*
 * milter_pkt_length - the length field of a packet from a milter (4
 * octets at p): the octets that follow it, or 0 when it is 0 or over
 * MILTER_PACKET_MAX (a protocol error)
 */
size_t	milter_pkt_length(const unsigned char *);
/* milter_reply_decode - code and data of one reply packet; 0 or -1 */
int	milter_reply_decode(int code, const char *, size_t,
	    struct milter_reply *);
/*
 * milter_optneg_decode - the data of an OPTNEG reply, checked against
 * what moat offered (version 2..6, actions and flags a subset); 0/-1
 */
int	milter_optneg_decode(const char *, size_t, struct milter_optneg *);
/*
 * milter_header_value - a header value from a milter, "\n" or CRLF
 * folded, as CRLF-folded text into b; -1 if a line does not continue
 * with a blank, or holds a bare CR or a NUL
 */
int	milter_header_value(struct buf *, const char *, size_t);
/*
 * milter_replycode_check - an SMFIR_REPLYCODE text (without its NUL):
 * 4 or 5, or -1 when it is not a well-formed SMTP reply
 */
int	milter_replycode_check(const char *, size_t);

#endif
