/*
 * smtp_content.c - the content filter in smtp-in's data path: the glue
 * between smtp_data.c and the policy engine (common/content.h).
 *
 *   smtp_content_begin()    txn_open(): start a scan when content_filter
 *                           is on; the octets already written (our
 *                           Received and Authentication-Results
 *                           headers) are not scanned and kept as they are
 *   smtp_content_data()     every content octet, as it goes to the spool
 *   smtp_content_verdict()  data_end(), on the loop: reject, tempfail and
 *                           discard answer the final dot from here
 *   smtp_content_finish()   commit thread, instead of spool_msg_finish():
 *                           strip/tag write a rewritten copy (a new queue
 *                           id) from the stored original; quarantine
 *                           moves the file into quarantine/ with a
 *                           reason record beside it
 *   smtp_content_dir()      where the commit renames the file to
 *
 * Direction: mail from relay_networks or an authenticated client is
 * outbound, everything else inbound (DESIGN.md).
 *
 * Quarantine (spool.h layout): quarantine/QID is the message file as
 * received (its envelope records are the original envelope) and
 * quarantine/QID.why the record of src/common/quarantine.h, written
 * first (reason = the findings, "RULE(ACTION) ...").
 *
 * Durability: both renames into quarantine/ are followed by an fsync of
 * the directory before the 250, as for incoming/.
 *
 * Threads: smtp_content_finish() and smtp_content_dir() run on a commit
 * thread while the loop leaves the transaction alone (SMTP_ST_COMMIT);
 * they touch only the transaction, the spool and the scan's recorded
 * ranges (content_rewrite() uses no global state).
 */
#include <sys/types.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "../common/content.h"
#include "../common/quarantine.h"
#include "../common/spool.h"
#include "smtp_in.h"

static int	 rewrite(struct smtp_txn *);
static int	 quarantine(struct smtp_txn *, const char *, const char *);

/* smtp_content_begin - a scan for this transaction, if configured */
void
smtp_content_begin(struct smtp_session *s, struct smtp_txn *t)
{
	const struct config *c = smtp_srv->conf;

	/*
	 * The magic database must have been loaded by content_preinit()
	 * from smtp_in_preinit(), before chroot and the syscall filter
	 * (magic_load() calls access(2), which the filter refuses); without
	 * it content.c falls back to its built-in sniffing.
	 */
	if (!content_enabled(c))
		return;
	t->content_base = t->msg.content_len;
	t->content = content_scan_new(c, (s->flags & (SF_RELAY | SF_AUTH)) != 0,
	    t->env.qid);
	if (t->content == NULL)
		fatal("smtp_content_begin");
}

/* smtp_content_data - content octets on their way to the spool */
void
smtp_content_data(struct smtp_txn *t, const char *p, size_t len)
{
	if (t->content != NULL)
		content_scan_data(t->content, p, len);
}

/*
 * smtp_content_verdict - end of the content: the reply that refuses
 * (or, for discard, fakes acceptance of) the message, or NULL when it
 * goes on to the commit.  The reply lives in a static buffer: the
 * caller frees the transaction before it replies.
 */
const char *
smtp_content_verdict(struct smtp_txn *t, const char **reason)
{
	static char			 reply[200];
	const struct content_verdict	*v;

	if (t->content == NULL)
		return NULL;
	v = content_scan_end(t->content);
	if (v->action != CA_ACCEPT)
		log_info("event=content qid=%s action=%s rule=%s "
		    "findings=\"%s\"", t->env.qid,
		    content_action_names[v->action], v->rule[0] ? v->rule :
		    "-", v->summary);
	switch (v->action) {
	case CA_REJECT:
	case CA_TEMPFAIL:
		*reason = "content";
		snprintf(reply, sizeof(reply), "%s", v->reply);
		return reply;
	case CA_DISCARD:
		*reason = "content_discard";
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s",
		    t->env.qid);
		return reply;
	default:
		return NULL;
	}
}

/*
 * smtp_content_finish - commit thread: spool_msg_finish(), with the
 * rewrite or the quarantine move the verdict asks for.  0 or -1.
 */
int
smtp_content_finish(struct smtp_txn *t)
{
	const struct content_verdict	*v;
	struct content_verdict		 sv;
	const char			*qrule, *qreason;
	int				 r = 0;

	if (spool_msg_finish(&t->msg) == -1)
		return -1;
	if (smtp_scan_quarantine(t, &qrule, &qreason) &&
	    (t->content == NULL ||
	    content_scan_end(t->content)->action != CA_QUARANTINE)) {
		/* clamd (virus_action) or a milter asked for it */
		memset(&sv, 0, sizeof(sv));
		sv.action = CA_QUARANTINE;
		(void)snprintf(sv.rule, sizeof(sv.rule), "%s", qrule);
		(void)snprintf(sv.summary, sizeof(sv.summary), "%s", qreason);
		if ((r = quarantine(t, sv.rule, sv.summary)) == 0)
			smtp_notify_content(t, &sv, (t->s->flags & (SF_RELAY |
			    SF_AUTH)) != 0, smtp_srv->conf->hostname);
		return r;
	}
	if (t->content == NULL)
		return 0;
	v = content_scan_end(t->content);
	if (v->action == CA_QUARANTINE)
		r = quarantine(t, v->rule, v->summary);
	else if (v->rewrite)
		r = rewrite(t);
	/* the people concerned hear of a quarantine or a strip */
	if (r == 0)
		smtp_notify_content(t, v, (t->s->flags & (SF_RELAY |
		    SF_AUTH)) != 0, smtp_srv->conf->hostname);
	return r;
}

/* smtp_content_dir - the directory the commit renames the file into */
const char *
smtp_content_dir(const struct smtp_txn *t)
{
	const char	*rule, *reason;

	if ((t->content != NULL &&
	    content_scan_end(t->content)->action == CA_QUARANTINE) ||
	    smtp_scan_quarantine(t, &rule, &reason))
		return "quarantine";
	return "incoming";
}

/* smtp_content_free - with the transaction */
void
smtp_content_free(struct smtp_txn *t)
{
	content_scan_free(t->content);
	t->content = NULL;
}

/*
 * rewrite - write tmp/NEWQID from the original (already fsync'ed; the
 * writer's descriptor is write-only, so it is opened again to read),
 * then drop the original; the transaction goes on with the new file
 * and queue id.
 */
static int
rewrite(struct smtp_txn *t)
{
	struct spool_msg	 nm;
	char			 oldqid[QID_SIZE];
	int			 fd;

	memcpy(oldqid, t->env.qid, sizeof(oldqid));
	memset(&nm, 0, sizeof(nm));
	if ((fd = open(t->msg.path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("event=error qid=%s error=content_rewrite_read",
		    oldqid);
		return -1;
	}
	if (spool_msg_open(&nm, &t->env, "tmp", "") == -1) {
		log_warn("event=error qid=%s error=content_rewrite_open",
		    oldqid);
		memcpy(t->env.qid, oldqid, sizeof(oldqid));
		close(fd);
		return -1;
	}
	/* our own header lines, written before the scan began, first */
	if (fd_copy_range(fd, t->msg.data_off, t->content_base,
	    spool_msg_sink, &nm) == -1 ||
	    content_rewrite(t->content, fd, t->msg.data_off +
	    (off_t)t->content_base, t->msg.content_len - t->content_base,
	    spool_msg_sink, &nm) == -1 || spool_msg_finish(&nm) == -1) {
		log_warn("event=error qid=%s error=content_rewrite", oldqid);
		spool_msg_abort(&nm);
		memcpy(t->env.qid, oldqid, sizeof(oldqid));
		close(fd);
		return -1;
	}
	close(fd);
	spool_msg_abort(&t->msg);
	t->msg = nm;
	log_info("event=content qid=%s rewritten=%s", oldqid, t->env.qid);
	return 0;
}

/*
 * quarantine - quarantine/QID.why (written in tmp/, fsync'ed,
 * renamed), then the message itself, then an fsync of quarantine/.
 * The commit's own rename of the file into quarantine/ then renames
 * it onto itself (a no-op, rename(2)).
 */
static int
quarantine(struct smtp_txn *t, const char *rule, const char *reason)
{
	char				 rec[CONTENT_SUMMARY_MAX + 256];
	char				 tpath[64], qpath[64], mpath[64];
	int				 fd, n;

	/* the record of src/common/quarantine.h, read by moatctl */
	n = snprintf(rec, sizeof(rec), "MOAT-QUARANTINE 1\ntime %lld\n"
	    "direction %s\nrule %s\nreason %.*s\nEND\n",
	    (long long)time(NULL), (t->s->flags & (SF_RELAY | SF_AUTH)) ?
	    "outbound" : "inbound", rule, QUAR_REASON_MAX - 1, reason);
	if (n < 0 || (size_t)n >= sizeof(rec) ||
	    snprintf(tpath, sizeof(tpath), "tmp/%s.why", t->env.qid) >=
	    (int)sizeof(tpath) ||
	    snprintf(qpath, sizeof(qpath), "quarantine/%s.why",
	    t->env.qid) >= (int)sizeof(qpath) ||
	    snprintf(mpath, sizeof(mpath), "quarantine/%s", t->env.qid) >=
	    (int)sizeof(mpath))
		return -1;
	if ((fd = open(tpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		goto fail;
	if (write_all(fd, rec, (size_t)n) == -1 || fsync(fd) == -1) {
		close(fd);
		unlink(tpath);
		goto fail;
	}
	close(fd);
	if (rename(tpath, qpath) == -1) {
		unlink(tpath);
		goto fail;
	}
	if (rename(t->msg.path, mpath) == -1) {
		unlink(qpath);
		goto fail;
	}
	memcpy(t->msg.path, mpath, sizeof(mpath));
	if (spool_dir_sync("quarantine") == -1)
		goto fail;
	log_info("event=quarantine qid=%s rule=%s", t->env.qid, rule);
	return 0;
fail:
	log_warn("event=error qid=%s error=quarantine", t->env.qid);
	return -1;
}
