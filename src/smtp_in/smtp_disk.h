/*
 * smtp_disk.h - free space of the spool for smtp-in (min_free_space).
 *
 * smtp_disk_init() starts a one-second timer on the loop that looks at
 * the file system of the current directory (the spool: smtp-in runs
 * with cwd = spool, chrooted or not).  smtp_disk_refuse() answers from
 * the last look, without a system call, so MAIL costs nothing more.
 */
#ifndef MOAT_SMTP_DISK_H
#define MOAT_SMTP_DISK_H

#include <stdint.h>

#include <event2/event.h>

#include "../common/config.h"

/*
 * smtp_disk_init - look once now, then every second; nothing to do if
 * conf->min_free_space is 0.  0, or -1 if the timer cannot be made.
 */
int	smtp_disk_init(struct event_base *, const struct config *);

/*
 * smtp_disk_refuse - 1 if a new transaction must get "452 4.3.1
 * Insufficient system storage": the free space is below min_free_space,
 * or would be after a message of declared octets (MAIL's SIZE=, RFC
 * 1870 6.1; 0 if none was given).  0 otherwise, and always when the
 * check is off.
 */
int	smtp_disk_refuse(uint64_t declared);

#endif
