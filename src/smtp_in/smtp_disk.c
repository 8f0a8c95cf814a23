/*
 * smtp_disk.c - keep min_free_space free in the spool: new mail is
 * refused with a temporary error before the disk is full, so that a
 * full disk never costs a message that was already accepted.
 *
 * RFC 3463 3.4 names the case (4.3.1 "Mail system full"), RFC 5321
 * 4.2.2 gives 452 "Requested action not taken: insufficient system
 * storage", and RFC 1870 6.1 lets MAIL's SIZE= be refused the same way
 * when the message would not fit now.  A sender retries later; mail
 * flows again by itself as soon as the space is back (no restart).
 *
 * The space counted is f_bavail, what an unprivileged process may use,
 * since the roles never run as root.  A timer looks once a second;
 * statfs is allowed by the sandbox (common/sandbox.c).  Transactions
 * already past MAIL go on: their spool writes fail cleanly with a 451
 * if the disk really fills (smtp_data.c), which is why the default
 * threshold keeps room for the messages under way.
 *
 * If the look itself fails, the last verdict stands (logged once):
 * refusing all mail over a failed statfs would be worse than the risk.
 *
 * Below the threshold, the recycled files of free/ (spool.c) are
 * unlinked first: space held for speed never refuses a message.
 */
#include <sys/statvfs.h>
#include <errno.h>
#include <stdint.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "../common/config.h"
#include "../common/spool.h"
#include "smtp_disk.h"

#define DISK_INTERVAL	1	/* seconds between looks */

static void	disk_tick(evutil_socket_t, short, void *);
static void	disk_look(void);
static int	disk_stat(uint64_t *);

static struct event	*disk_ev;
static uint64_t		 disk_min;	/* min_free_space; 0 = off */
static uint64_t		 disk_free;	/* octets free at the last look */
static int		 disk_low;	/* disk_free < disk_min */
static int		 disk_failed;	/* the last look failed */

/* smtp_disk_init - see smtp_disk.h */
int
smtp_disk_init(struct event_base *base, const struct config *conf)
{
	struct timeval	 tv = { DISK_INTERVAL, 0 };

	disk_min = conf->min_free_space;
	if (disk_min == 0)
		return 0;
	disk_look();
	if ((disk_ev = event_new(base, -1, EV_PERSIST, disk_tick, NULL)) ==
	    NULL || event_add(disk_ev, &tv) == -1)
		return -1;
	return 0;
}

/* smtp_disk_refuse - see smtp_disk.h */
int
smtp_disk_refuse(uint64_t declared)
{
	if (disk_min == 0)
		return 0;
	if (disk_low)
		return 1;
	/* disk_free >= disk_min here, so the subtraction cannot wrap */
	return declared > disk_free - disk_min;
}

static void
disk_tick(evutil_socket_t fd, short what, void *arg)
{
	disk_look();
}

/* disk_look - statvfs of the spool; log when the verdict changes */
static void
disk_look(void)
{
	size_t	 n;
	int	 low;

	if (disk_stat(&disk_free) == -1)
		return;
	if (disk_free < disk_min && (n = spool_free_purge()) > 0) {
		log_info("event=disk state=low free=%llu recycled_removed=%zu",
		    (unsigned long long)disk_free, n);
		if (disk_stat(&disk_free) == -1)
			return;
	}
	low = disk_free < disk_min;
	if (low && !disk_low)
		log_warnx("event=disk state=low free=%llu min_free_space=%llu",
		    (unsigned long long)disk_free,
		    (unsigned long long)disk_min);
	else if (!low && disk_low)
		log_info("event=disk state=ok free=%llu min_free_space=%llu",
		    (unsigned long long)disk_free,
		    (unsigned long long)disk_min);
	disk_low = low;
}

/* disk_stat - octets free in the spool for us; -1 (logged once) */
static int
disk_stat(uint64_t *out)
{
	struct statvfs	 sv;

	if (statvfs(".", &sv) == -1) {
		if (!disk_failed)
			log_warn("event=error error=statvfs");
		disk_failed = 1;
		return -1;
	}
	disk_failed = 0;
	if (sv.f_frsize != 0 && sv.f_bavail > UINT64_MAX / sv.f_frsize)
		*out = UINT64_MAX;
	else
		*out = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
