/*
 * moatctl.c - administrator's command: talk to the queue role over the
 * control socket, or signal the master for a reload.
 *
 *   moatctl [-c FILE] VERB [ARG]
 *
 * Verbs (control.h): queue, flush, show ID, hold ID, release ID,
 * delete ID, stats, reload.
 *
 * Exit codes: 0 success (+OK), 1 refused (-ERR), daemon not running,
 * config or I/O error, 2 bad usage.  The config is read only to find
 * spool_dir; its errors are printed as moatd -n prints them.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../common/config.h"
#include "../common/control.h"
#include "ctl_client.h"

#define EXIT_USAGE	2

static void	usage(FILE *, int) __attribute__((noreturn));

int
main(int argc, char *argv[])
{
	const char	*file, *verb, *arg;
	char		 why[512], line[CONTROL_LINE_MAX + 1], qverb[32];
	size_t		 len;
	struct config	*conf;
	enum ctl_result	 r;
	pid_t		 pid;
	int		 ch, nargs;

	if ((file = getenv(CTL_CONFIG_ENV)) == NULL || *file == '\0')
		file = CTL_DEFAULT_CONFIG;
	while ((ch = getopt(argc, argv, "c:h")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'h':
			usage(stdout, 0);
		default:
			usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage(stderr, EXIT_USAGE);
	verb = argv[0];
	/* "quarantine list|show|release|delete [ID]" is one wire verb */
	if (strcmp(verb, "quarantine") == 0) {
		if (argc < 2 || strlen(argv[1]) > 16) {
			warnx("quarantine takes list, show, release or delete");
			usage(stderr, EXIT_USAGE);
		}
		(void)snprintf(qverb, sizeof(qverb), "quarantine-%s", argv[1]);
		verb = qverb;
		argc--;
		argv++;
	}
	if ((nargs = ctl_verb_nargs(verb)) == -1) {
		warnx("unknown verb: %s", verb);
		usage(stderr, EXIT_USAGE);
	}
	if (argc - 1 != nargs) {
		warnx("%s takes %s", verb, nargs ? "a queue id" :
		    "no argument");
		usage(stderr, EXIT_USAGE);
	}
	arg = nargs ? argv[1] : NULL;
	if (ctl_format_request(line, sizeof(line), verb, arg, &len) == -1) {
		warnx("invalid queue id: %s", arg);
		usage(stderr, EXIT_USAGE);
	}

	/* messages of the config parser and the spool code go to stderr */
	log_init(0);
	log_setproc("moatctl");
	if ((conf = config_load(file, stderr)) == NULL)
		return 1;

	if (strcmp(verb, "reload") == 0) {
		r = ctl_reload(conf->spool_dir, &pid, why, sizeof(why));
		if (r == CTL_OK)
			printf("moatd (pid %ld): reload requested\n",
			    (long)pid);
	} else
		r = ctl_request(conf->spool_dir, verb, arg, STDOUT_FILENO,
		    why, sizeof(why));
	config_free(conf);
	switch (r) {
	case CTL_OK:
		return 0;
	case CTL_DOWN:
		warnx("moatd is not running (%s)", why);
		return 1;
	case CTL_ERR:
		warnx("%s: %s", verb, why);
		return 1;
	case CTL_FAIL:
		warnx("%s", why);
		return 1;
	}
	return 1;
}

static void
usage(FILE *f, int code)
{
	fprintf(f,
	    "usage: moatctl [-c FILE] VERB [ID]\n"
	    "verbs:\n"
	    "  queue        list the queue (mailq style)\n"
	    "  flush        retry every deferred message now\n"
	    "  show ID      envelope and state of one message\n"
	    "  hold ID      keep a message from delivery\n"
	    "  release ID   release a held message\n"
	    "  delete ID    remove a message from the queue\n"
	    "  stats        counters as key=value lines\n"
	    "  quarantine list         messages the content filter kept\n"
	    "  quarantine show ID      why, envelope and header of one\n"
	    "  quarantine release ID   deliver it to its recipients\n"
	    "  quarantine delete ID    remove it for good\n"
	    "  reload       make moatd re-read its configuration\n"
	    "FILE defaults to $%s or %s\n", CTL_CONFIG_ENV,
	    CTL_DEFAULT_CONFIG);
	exit(code);
}
