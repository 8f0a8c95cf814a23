/*
 * main.c - moatd command line.
 *
 *   moatd [-c FILE] [-n] [-d]
 *
 * -c  configuration file (default /etc/moat/moat.conf)
 * -n  check the configuration and exit: 0, or 1 with FILE:LINE lines
 * -d  debug logging
 *
 * moatd always runs in the foreground (systemd, tests); it logs to
 * stderr unless the config says `log = syslog`.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/log.h"
#include "common/config.h"
#include "master/master.h"

#define DEFAULT_CONFIG	"/etc/moat/moat.conf"

/*
 * glibc's malloc gives the top of the heap back to the kernel once 128
 * KiB of it are free, and moves that bound with each large free.  The
 * roles free and allocate per message (smtp-out a job of 22 KiB and the
 * message's buffer of up to 64 KiB), so the heap shrank and grew again
 * all the time and each regrowth paid a page fault per page: at 20 KiB
 * x 50, 18% of smtp-out's time.  Freed memory now stays in the heap up
 * to TRIM_THRESHOLD, and only blocks of MMAP_THRESHOLD or more get
 * their own mapping.  bench/README.md, session 6.
 */
#define TRIM_THRESHOLD	(16 * 1024 * 1024)
#define MMAP_THRESHOLD	(1024 * 1024)

static void	usage(void) __attribute__((noreturn));

int
main(int argc, char *argv[])
{
	const char	*file = DEFAULT_CONFIG;
	struct config	*conf;
	int		 ch, check = 0, debug = 0;

	/* mallopt() returns 0 on failure: the defaults stay, which works */
	(void)mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
	(void)mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);

	while ((ch = getopt(argc, argv, "c:dnh")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'n':
			check = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init(0);
	log_setproc("master");
	log_setdebug(debug);
	if ((conf = config_load(file, stderr)) == NULL)
		return 1;
	if (check) {
		config_free(conf);
		return 0;
	}
	if (conf->log_syslog)
		log_init(1);
	return master_run(file, conf);
}

static void
usage(void)
{
	fprintf(stderr, "usage: moatd [-c file] [-n] [-d]\n");
	exit(2);
}
