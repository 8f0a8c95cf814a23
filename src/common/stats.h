/*
 * stats.h - counters shared by all roles.
 *
 * The master maps one anonymous shared page before it forks any role;
 * roles update it with relaxed atomic adds and `moatctl stats` (queue
 * role) reads it.  It survives the restart of any role, not of the
 * master.  Counters only; never a pointer in here.
 */
#ifndef MOAT_STATS_H
#define MOAT_STATS_H

#include <stdint.h>

struct moat_stats {
	/* smtp-in */
	uint64_t	 conn_total;
	uint64_t	 conn_current;
	uint64_t	 conn_refused;		/* max_connections(_per_ip) */
	uint64_t	 msg_accepted;
	uint64_t	 msg_rejected;		/* 5xx/4xx after DATA */
	uint64_t	 rcpt_rejected;
	uint64_t	 bytes_received;
	uint64_t	 alarm_filter;		/* command filter violations */
	uint64_t	 alarm_relay;		/* relay attempts */
	uint64_t	 alarm_spoof;		/* local sender from outside */
	uint64_t	 alarm_dnsbl;		/* sessions of listed clients */
	uint64_t	 alarm_pregreet;	/* talked before the banner */
	uint64_t	 policy_rejected;	/* other smtp_policy.c refusals */
	/* queue */
	uint64_t	 delivered;
	uint64_t	 deferred;
	uint64_t	 bounced;
	/* master */
	uint64_t	 restarts;
};

extern struct moat_stats *moat_stats;

/* stats_init - map the shared page (master, before forking) */
int	stats_init(void);

#define STATS_ADD(field, n) \
	do { if (moat_stats) __atomic_add_fetch(&moat_stats->field, (n), \
	    __ATOMIC_RELAXED); } while (0)
#define STATS_SUB(field, n) \
	do { if (moat_stats) __atomic_sub_fetch(&moat_stats->field, (n), \
	    __ATOMIC_RELAXED); } while (0)
#define STATS_GET(field) \
	(moat_stats ? __atomic_load_n(&moat_stats->field, __ATOMIC_RELAXED) : 0)

#endif
