/*
 * queue.h - the queue role's internals, shared by its files:
 *
 *   queue.c          main loop, signals, scheduling, routing, the
 *                    local delivery channel
 *   queue_store.c    message and state files: load, state write,
 *                    hold/release/delete/remove, startup rebuild
 *   queue_pickup.c   incoming/ and maildrop/ (inotify + scans)
 *   queue_ctl.c      the moatctl control socket
 *   queue_dsn.c      bounces and delay notices (RFC 3464)
 *   queue_out.c      the smtp-out channel: SMTP delivery jobs
 *
 * Every queued message has one struct qmsg in memory, in q->msgs, from
 * the moment its file is in queue/ or hold/ until the file is gone.
 * doc/QUEUE.md has the state table.
 */
#ifndef MOAT_QUEUE_H
#define MOAT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "../lib/compat.h"
#include "../common/config.h"
#include "../common/deliver.h"
#include "../common/outbound.h"
#include "../common/role.h"
#include "../common/spool.h"

#define QUEUE_REASON_MAX	256	/* last reason text, with the NUL */

struct event_base;
struct buf;
struct event;

enum rcpt_status {
	RS_PENDING,
	RS_DELIVERED,
	RS_FAILED
};

struct qrcpt {
	char		*addr;		/* malloc'd, from the envelope */
	enum rcpt_status status;
	unsigned	 attempts;
	int		 inflight;	/* part of a local job now */
	char		 reason[QUEUE_REASON_MAX];
};

enum qmsg_where {
	QW_QUEUE,	/* queue/: scheduled or deferred */
	QW_HOLD		/* hold/: never scheduled */
};

/* actions asked for while local jobs of the message were in flight */
#define QF_WANT_HOLD	0x01
#define QF_WANT_DELETE	0x02
#define QF_BOUNCED	0x04	/* bounce written, removal pending */

struct qmsg {
	TAILQ_ENTRY(qmsg) entry;
	char		 qid[QID_SIZE];
	enum qmsg_where	 where;
	time_t		 arrival;
	size_t		 size;
	char		 client[64];	/* envelope client: address, "local" */
	int		 authed;	/* envelope has an auth record */
	char		*sender;	/* malloc'd; "" = <> */
	struct qrcpt	*rcpt;
	size_t		 nrcpt;
	unsigned	 attempts;	/* rounds that ended with a deferral */
	time_t		 next;		/* next attempt; 0 = not scheduled */
	char		 reason[QUEUE_REASON_MAX];	/* last deferral */
	int		 warned;	/* delay notice sent (in the state) */
	int		 jobs;		/* local and SMTP jobs not yet
					   answered */
	int		 flags;		/* QF_* */
	int		 fd;		/* the message file kept open from
					   pickup for its first job, or -1 */
	int		 has_state;	/* a DIR/QID.state may exist */
	struct event	*timer;
};
TAILQ_HEAD(qmsg_list, qmsg);

/* a local delivery job waiting or in flight */
struct ljob {
	TAILQ_ENTRY(ljob) entry;
	struct qmsg	*m;
	uint32_t	 id;
	size_t		 n;
	uint32_t	 idx[DELIVER_RCPT_MAX];
	const struct nexthop *hop[DELIVER_RCPT_MAX];
};
TAILQ_HEAD(ljob_list, ljob);

/* an SMTP delivery job: waiting, or in flight at smtp-out */
struct sjob {
	TAILQ_ENTRY(sjob) entry;	/* q->sjobs while waiting */
	struct sjob	*hnext;		/* q->sfly[] chain in flight */
	struct qmsg	*m;
	struct out_job	 job;		/* id set when sent */
};
TAILQ_HEAD(sjob_list, sjob);

#define QUEUE_SFLY_HASH	1024		/* in-flight table buckets */

struct queue {
	struct role_ctx		*ctx;
	struct config		*conf;
	struct event_base	*base;
	struct qmsg_list	 msgs;
	size_t			 nmsgs;
	struct ljob_list	 ljobs;		/* waiting, FIFO */
	struct ljob		*linflight;	/* at most one */
	uint32_t		 ljob_id;
	struct event		*ev_local;
	struct event		*ev_ltimeout;
	struct event		*ev_stop;	/* SIGTERM grace timer */
	/* smtp-out */
	struct sjob_list	 sjobs;		/* waiting, FIFO */
	struct sjob		*sfly[QUEUE_SFLY_HASH];	/* by id */
	size_t			 nsfly;
	uint32_t		 sjob_id;
	struct event		*ev_out;	/* readable */
	struct event		*ev_outw;	/* writable again */
	/* pickup */
	int			 ino_fd;
	int			 wd_incoming;
	int			 wd_maildrop;
	struct event		*ev_ino;
	struct event		*ev_scan;
	/* control */
	struct event		*ev_ctl;
	size_t			 nclients;
	int			 stopping;
};

/* queue.c */
void		 queue_msg_add(struct queue *, struct qmsg *);
void		 queue_msg_schedule(struct queue *, struct qmsg *, time_t);
void		 queue_msg_unschedule(struct qmsg *);
struct qmsg	*queue_msg_find(struct queue *, const char *, size_t);
void		 queue_msg_drop(struct queue *, struct qmsg *);
int		 queue_hold(struct queue *, struct qmsg *);
int		 queue_release(struct queue *, struct qmsg *);
int		 queue_delete(struct queue *, struct qmsg *);
size_t		 queue_flush(struct queue *);
double		 queue_delay(time_t);
void		 queue_reason_set(char *, const char *, size_t);
void		 queue_rcpt_result(struct queue *, struct qmsg *, size_t,
		    const char *relay, unsigned, const char *, const char *);
void		 queue_msg_job_done(struct queue *, struct qmsg *);
void		 queue_stop_maybe(struct queue *);
int		 queue_rcpt_domain(struct queue *, const char *, char *,
		    size_t);

/* queue_store.c */
const char	*qstore_dir(enum qmsg_where);
void		 qstore_init(struct event_base *);
struct qmsg	*qstore_load(const char *dir, const char *qid, const char **);
struct qmsg	*qstore_load_fd(const char *, const char *, const char **,
		    int *);
void		 qstore_keep_fd(struct qmsg *, int);
int		 qstore_open(struct qmsg *);
void		 qstore_free(struct qmsg *);
int		 qstore_state_write(struct qmsg *);
int		 qstore_state_load(struct qmsg *);
int		 qstore_move(struct qmsg *, enum qmsg_where);
int		 qstore_remove(struct qmsg *);
void		 qstore_quarantine(const char *dir, const char *name,
		    const char *why);
void		 qstore_rebuild(struct queue *);

/* queue_dsn.c */
enum qdsn_kind {
	QDSN_BOUNCE,	/* the failed recipients, Action: failed */
	QDSN_DELAY	/* the pending recipients, Action: delayed */
};
int		 qdsn_send(struct queue *, struct qmsg *, enum qdsn_kind);

/* queue_pickup.c */
void		 qpickup_init(struct queue *);
void		 qpickup_scan(struct queue *);
void		 qpickup_stop(struct queue *);

/* queue_out.c */
void		 qout_init(struct queue *);
int		 qout_route(struct queue *, struct qmsg *, size_t,
		    const struct nexthop *, const char *);
void		 qout_kick(struct queue *);
size_t		 qout_cancel(struct queue *, struct qmsg *);
void		 qout_flush(struct queue *);
void		 qout_stop(struct queue *);

/* queue_quar.c: moatctl quarantine ... (a quarantine id, not queued) */
void		 qquar_init(struct queue *);
int		 qquar_list(struct queue *, const char *, struct buf *);
int		 qquar_show(struct queue *, const char *, struct buf *);
int		 qquar_release(struct queue *, const char *, struct buf *);
int		 qquar_delete(struct queue *, const char *, struct buf *);

/* queue_ctl.c */
void		 qctl_init(struct queue *);
void		 qctl_stop(struct queue *);

#endif
