/*
 * deliver.h - queue <-> local delivery messages (src/lib/ipc.h framing).
 *
 * The queue sends DELIVER_JOB with the message file open read-only as
 * the passed descriptor; local reads the envelope itself from it
 * (spool_msg_read) and answers with exactly one DELIVER_REPLY carrying
 * one result per recipient of the job, in the job's order.  Local
 * handles one job at a time; the queue keeps at most one in flight and
 * drops replies whose id it no longer waits for (a job that timed out).
 *
 * Both structs travel as fixed headers followed by n array entries:
 * the payload length must be exactly offsetof(struct, r) + n * entry,
 * with 1 <= n <= DELIVER_RCPT_MAX; anything else is fatal (STYLE.md 8).
 * Strings are NUL-terminated inside their arrays.
 */
#ifndef MOAT_DELIVER_H
#define MOAT_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/ipc.h"
#include "spool.h"

#define DELIVER_JOB		(IPC_VERSION_BASE + 0x101)	/* q -> l */
#define DELIVER_REPLY		(IPC_VERSION_BASE + 0x102)	/* l -> q */

#define DELIVER_RCPT_MAX	40
#define DELIVER_DOMAIN_MAX	256	/* with the NUL */
#define DELIVER_TMPL_MAX	1024	/* with the NUL */
#define DELIVER_TEXT_MAX	200	/* with the NUL */

/* one recipient of a job */
struct deliver_rcpt {
	uint32_t	 idx;		/* index into the envelope's rcpt[] */
	/* the domain the queue routed on, lower case: the recipient's, or
	   the first local domain for a bare "postmaster" */
	char		 domain[DELIVER_DOMAIN_MAX];
	/* TR_MAILDIR template from the transport map, not yet expanded */
	char		 tmpl[DELIVER_TMPL_MAX];
};

struct deliver_job {
	uint32_t		 id;	/* echoed in the reply */
	uint32_t		 n;
	char			 qid[QID_SIZE];
	struct deliver_rcpt	 r[DELIVER_RCPT_MAX];
};

/* one result: code 2xx delivered, 4xx try again, 5xx failed for good */
struct deliver_result {
	uint32_t	 idx;
	uint32_t	 code;
	char		 text[DELIVER_TEXT_MAX];	/* "2.0.0 ..." */
};

struct deliver_reply {
	uint32_t		 id;
	uint32_t		 n;
	struct deliver_result	 r[DELIVER_RCPT_MAX];
};

#define DELIVER_JOB_LEN(n) \
	(offsetof(struct deliver_job, r) + (size_t)(n) * \
	 sizeof(struct deliver_rcpt))
#define DELIVER_REPLY_LEN(n) \
	(offsetof(struct deliver_reply, r) + (size_t)(n) * \
	 sizeof(struct deliver_result))

_Static_assert(sizeof(struct deliver_job) <= IPC_MAX, "job too big");
_Static_assert(sizeof(struct deliver_reply) <= IPC_MAX, "reply too big");

#endif
