/*
 * smtp_notify.c - tell the people concerned what the content filter
 * did to a message it kept (quarantine) or changed (strip), issue 6:
 *
 *   outbound mail (relay_networks, AUTH): its internal sender;
 *   inbound mail: its recipients in local_domains;
 *   always: every content_notify address (the administrators).
 *
 * Never an external sender: a notice to a forged Internet sender would
 * be backscatter.  The notice is an ordinary new message from <> (so
 * nothing ever answers it), written through the spool writer into tmp/,
 * fsync'ed and renamed into incoming/, on the commit thread of the
 * message it is about, before that message's 250.  A notice that cannot
 * be written is logged; the message itself is not held back for it.
 *
 * Reject, tempfail and discard send no notice: the client hears the
 * reply itself (an internal sender's own MTA reports it), and a discard
 * is silent by definition; all are logged with event=content.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/config.h"
#include "../common/content.h"
#include "../common/spool.h"
#include "smtp_in.h"

#define NOTIFY_RCPTS_MAX	120	/* recipients + admins, bounded */
#define NOTIFY_ADDR_MAX		300

static int	notify_add(struct envelope *, const char *);
static void	notify_body(const struct smtp_txn *,
		    const struct content_verdict *, int, const char *,
		    struct buf *);

/*
 * smtp_notify_content - commit thread: write the notice for the
 * verdict v of transaction t (already decided: quarantine or strip).
 * outbound: the client was inside.  Never fails the caller.
 */
void
smtp_notify_content(const struct smtp_txn *t, const struct content_verdict *v,
    int outbound, const char *host)
{
	const struct config	*c = smtp_srv->conf;
	struct envelope		 ne;
	struct spool_msg	 w;
	struct buf		 body;
	const char		*at;
	size_t			 i;

	if (v->action != CA_QUARANTINE && v->action != CA_STRIP)
		return;
	memset(&ne, 0, sizeof(ne));
	memcpy(ne.client_addr, "local", sizeof("local"));
	memcpy(ne.client_name, "localhost", sizeof("localhost"));
	memcpy(ne.helo, "localhost", sizeof("localhost"));
	memcpy(ne.proto, "LOCAL", sizeof("LOCAL"));
	if (envelope_set_sender(&ne, "", 0) == -1)
		goto fail;
	if (outbound) {
		if (t->env.sender[0] != '\0' &&
		    notify_add(&ne, t->env.sender) == -1)
			goto fail;
	} else
		for (i = 0; i < t->env.nrcpt; i++) {
			at = strrchr(t->env.rcpt[i], '@');
			if (at != NULL && config_is_local_domain(c, at + 1,
			    strlen(at + 1)) && notify_add(&ne,
			    t->env.rcpt[i]) == -1)
				goto fail;
		}
	for (i = 0; i < c->ncontent_notify; i++)
		if (notify_add(&ne, c->content_notify[i]) == -1)
			goto fail;
	if (ne.nrcpt == 0) {
		envelope_free(&ne);
		return;
	}
	buf_init(&body, 0);
	if (spool_msg_open(&w, &ne, "tmp", "") == -1) {
		buf_free(&body);
		goto fail;
	}
	notify_body(t, v, outbound, host, &body);
	if (body.len == 0 || spool_msg_write(&w, body.data, body.len) == -1 ||
	    spool_msg_finish(&w) == -1 || spool_msg_commit(&w, "incoming") ==
	    -1 || spool_dir_sync("incoming") == -1) {
		spool_msg_abort(&w);
		buf_free(&body);
		goto fail;
	}
	log_info("event=content_notice qid=%s notice_qid=%s nrcpt=%zu",
	    t->env.qid, w.qid, ne.nrcpt);
	buf_free(&body);
	envelope_free(&ne);
	return;
fail:
	log_warn("event=error qid=%s error=content_notice", t->env.qid);
	envelope_free(&ne);
}

/* notify_add - one more recipient, unless known or too many */
static int
notify_add(struct envelope *ne, const char *addr)
{
	size_t	 i;

	for (i = 0; i < ne->nrcpt; i++)
		if (strcasecmp(ne->rcpt[i], addr) == 0)
			return 0;
	if (ne->nrcpt >= NOTIFY_RCPTS_MAX)
		return 0;
	return envelope_add_rcpt(ne, addr, strlen(addr));
}

/* notify_body - the notice: RFC 5322 header and a plain text */
static void
notify_body(const struct smtp_txn *t, const struct content_verdict *v,
    int outbound, const char *host, struct buf *b)
{
	char		 date[64], a[NOTIFY_ADDR_MAX];
	const char	*what;
	size_t		 i;
	int		 e = 0;

	/* no locale: strftime's %a would follow LC_TIME */
	if (rfc5322_date(time(NULL), date, sizeof(date)) == 0)
		return;
	what = v->action == CA_QUARANTINE ? "quarantined" :
	    "delivered with parts removed";
	e |= buf_appendf(b, "Date: %s\r\n"
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: undisclosed-recipients:;\r\n"
	    "Subject: Content filter: a message was %s\r\n"
	    "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "The content filter of %s %s a message.\r\n\r\n", date, host,
	    what, host, v->action == CA_QUARANTINE ? "kept back" :
	    "removed parts of");
	log_sanitize_text(t->env.sender, strlen(t->env.sender), a,
	    sizeof(a));
	e |= buf_appendf(b, "  Queue ID:  %s\r\n  Sender:    <%s>\r\n",
	    t->env.qid, a);
	for (i = 0; i < t->env.nrcpt; i++) {
		log_sanitize_text(t->env.rcpt[i], strlen(t->env.rcpt[i]), a,
		    sizeof(a));
		e |= buf_appendf(b, "  %s <%s>\r\n", i == 0 ? "Recipient:" :
		    "          ", a);
	}
	e |= buf_appendf(b, "  Direction: %s\r\n  Rule:      %s\r\n"
	    "  Findings:  %s\r\n\r\n", outbound ? "outbound" : "inbound",
	    v->rule[0] ? v->rule : "-", v->summary[0] ? v->summary : "-");
	if (v->action == CA_QUARANTINE)
		e |= buf_appendf(b, "It is kept in the quarantine.  An "
		    "administrator can release it to its recipients\r\n"
		    "with \"moatctl quarantine release %s\" or delete it.\r\n",
		    t->env.qid);
	else
		e |= buf_appendf(b, "The parts named above were replaced by a "
		    "short note; the rest of the message\r\nwas delivered.\r\n");
	if (e)
		buf_reset(b);
}
