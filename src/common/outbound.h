/*
 * outbound.h - queue <-> smtp-out messages (src/lib/ipc.h framing).
 *
 * The queue routes each pending recipient (transport_map, relay_host,
 * else MX of its domain) and groups the recipients of one message that
 * share a next hop into OUT_JOBs of at most OUT_RCPT_MAX.  A job goes
 * with the message file open read-only as the passed descriptor;
 * smtp-out reads the envelope itself from it (spool_msg_read) and
 * answers each job with exactly one OUT_REPLY carrying one result per
 * recipient, in the job's order.  smtp-out keeps many jobs at once
 * (the queue bounds how many are in flight, OUT_INFLIGHT_MAX) and may
 * answer them in any order; replies are matched by id.  A reply whose
 * id the queue no longer waits for is dropped.
 *
 * OUT_FLUSH (no payload) asks smtp-out to forget its dead-destination
 * backoff, so that `moatctl flush` really tries every destination now.
 *
 * Payload lengths are exact: offsetof(struct, member) + n * entry with
 * 1 <= n <= OUT_RCPT_MAX; anything else is fatal (STYLE.md 8).  Strings
 * are NUL-terminated inside their arrays.
 */
#ifndef MOAT_OUTBOUND_H
#define MOAT_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/ipc.h"
#include "spool.h"

#define OUT_JOB			(IPC_VERSION_BASE + 0x201)	/* q -> o */
#define OUT_REPLY		(IPC_VERSION_BASE + 0x202)	/* o -> q */
#define OUT_FLUSH		(IPC_VERSION_BASE + 0x203)	/* q -> o */

#define OUT_RCPT_MAX		50	/* recipients per job/transaction */
#define OUT_INFLIGHT_MAX	2000	/* jobs the queue leaves with smtp-out */
#define OUT_NAME_MAX		256	/* domain or host, with the NUL */
#define OUT_TEXT_MAX		400	/* result text, with the NUL */
#define OUT_RELAY_MAX		320	/* "host[addr]:port", with the NUL */

/* job flags */
#define OUTF_INTERNET	0x01	/* by MX or relay_host, not an internal
				   transport_map hop: hide_internal_hosts
				   applies */
#define OUTF_PRIVATE	0x02	/* the client was in relay_networks, a
				   local submission or authenticated: its
				   Received lines name internal hosts */

struct out_job {
	uint32_t	 id;		/* echoed in the reply */
	uint32_t	 n;
	char		 qid[QID_SIZE];
	uint32_t	 kind;		/* TR_SMTP_MX, TR_SMTP_HOST,
					   TR_SMTP_FIXED (config.h) */
	uint32_t	 port;		/* 0 = remote_smtp_port */
	uint32_t	 flags;		/* OUTF_* */
	/* TR_SMTP_MX: the recipients' domain (lower case); HOST and
	   FIXED: the host, a name or an address literal without the
	   brackets (FIXED never looks up MX) */
	char		 name[OUT_NAME_MAX];
	uint32_t	 idx[OUT_RCPT_MAX];	/* into the envelope's rcpt[] */
};

/*
 * one result: code 2xx delivered, 4xx try again, 5xx failed for good.
 * text starts with the enhanced status code, then what happened:
 * "5.1.1 host mx.example.com[192.0.2.1] said: 550 5.1.1 <u@example.com>:
 * no such user (in reply to RCPT TO)"
 */
struct out_result {
	uint32_t	 idx;
	uint32_t	 code;
	char		 text[OUT_TEXT_MAX];
};

struct out_reply {
	uint32_t		 id;
	uint32_t		 n;
	/* the host that gave the results, "mx.example.com[192.0.2.1]:25",
	   or "none" when no connection was made */
	char			 relay[OUT_RELAY_MAX];
	/* "tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 verified=yes" or
	   "tls=no"; "" when no connection was made (for the log) */
	char			 tls[160];
	struct out_result	 r[OUT_RCPT_MAX];
};

#define OUT_JOB_LEN(n) \
	(offsetof(struct out_job, idx) + (size_t)(n) * sizeof(uint32_t))
#define OUT_REPLY_LEN(n) \
	(offsetof(struct out_reply, r) + (size_t)(n) * \
	 sizeof(struct out_result))

_Static_assert(sizeof(struct out_job) <= IPC_MAX, "job too big");
_Static_assert(sizeof(struct out_reply) <= IPC_MAX, "reply too big");

#endif
