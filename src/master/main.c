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
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/log.h"
#include "common/config.h"
#include "master/master.h"

#define DEFAULT_CONFIG	"/etc/moat/moat.conf"

static void	usage(void) __attribute__((noreturn));

int
main(int argc, char *argv[])
{
	const char	*file = DEFAULT_CONFIG;
	struct config	*conf;
	int		 ch, check = 0, debug = 0;

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
