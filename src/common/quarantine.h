/*
 * quarantine.h - messages kept back by the content filter.
 *
 * spool_dir/quarantine/ holds, per quarantined message:
 *
 *   QID        the message file, unchanged spool format (spool.h): the
 *              original envelope and content, exactly as received
 *   QID.why    the record below, written first (tmp name, fsync,
 *              rename), so a QID without its .why is never listed
 *
 *   MOAT-QUARANTINE 1\n
 *   time EPOCH\n
 *   direction inbound|outbound\n
 *   rule NAME\n            the rule or scanner that matched
 *   reason TEXT\n          one line of printable ASCII
 *   END\n
 *
 * smtp-in writes both (src/smtp_in/smtp_content.c) instead of
 * committing into incoming/; the queue role lists, shows, releases (rename into
 * incoming/, so the queue delivers it to the original recipients) and
 * deletes them for moatctl, and removes them after
 * quarantine_lifetime.
 */
#ifndef MOAT_QUARANTINE_H
#define MOAT_QUARANTINE_H

#include <stddef.h>
#include <time.h>

#include "spool.h"

#define QUAR_DIR	"quarantine"
#define QUAR_RULE_MAX	128	/* with the NUL */
#define QUAR_REASON_MAX	256	/* with the NUL */

struct quar_why {
	time_t		 time;
	int		 outbound;	/* 0 = inbound */
	char		 rule[QUAR_RULE_MAX];
	char		 reason[QUAR_REASON_MAX];
};

/* quarantine_why_read - parse quarantine/QID.why; 0 or -1 */
int	quarantine_why_read(const char *qid, struct quar_why *);
/* quarantine_why_parse - the same from memory (tests, fuzzing) */
int	quarantine_why_parse(const char *, size_t, struct quar_why *);

#endif
