/*
 * dnsq.c - drive src/common/dns.c from the command line, for
 * tests/integration/test_dns.py (and by hand).
 *
 *   dnsq [-s HOST:PORT]... [-t TIMEOUT_MS] [-r TRIES] [-c ENTRIES]
 *        [-n MAX_NEG_TTL] STEP...
 *
 * Steps run in order on one event loop:
 *   mx:NAME txt:NAME a:NAME aaaa:NAME addr:NAME ptr:ADDRESS
 *                   start a lookup (addr = A and AAAA together)
 *   cancel:KIND:ARG start a lookup and cancel it at once: it must never
 *                   print
 *   wait            run the loop until every started lookup answered
 *   sleep:MS        run the loop for MS milliseconds
 *   shutdown        dns_shutdown() with lookups pending (they must never
 *                   print), then dns_init() again
 * At the end, the lookups still pending are waited for.
 *
 * One line per answer, in the order the answers arrive:
 *   KIND ARG status=S ttl=N cached=0|1 [truncated=1] [why="..."]
 *       [mx=PREF:HOST,...] [addr=IP,...] [ptr=NAME,...]
 *       [txt="...","..."] ms=N
 * ms is the time since the lookup started (for people, not asserts).
 * Exit 0, or 2 on a usage error; a guard alarm ends a hung run.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "common/config.h"	/* struct listen_addr */
#include "common/dns.h"

#define DNSQ_SERVERS_MAX	DNS_SERVERS_MAX
#define DNSQ_GUARD_SECONDS	120

struct lookup {
	char		 kind[8];
	const char	*arg;
	struct timespec	 start;
	TAILQ_ENTRY(lookup) link;	/* pending */
};

static void	 usage(void) __attribute__((noreturn));
static void	 start(const char *, int);
static void	 forget_pending(void);
static int	 parse_server(const char *, struct listen_addr *);
static void	 answer(const struct dns_result *, void *);
static void	 print_txt(const unsigned char *, size_t);
static void	 run_until_idle(void);
static void	 run_for(long);
static void	 sleep_cb(evutil_socket_t, short, void *);
static long	 ms_since(const struct timespec *);

static struct event_base	*base;
static struct dns_conf		 conf;
static TAILQ_HEAD(, lookup)	 pending = TAILQ_HEAD_INITIALIZER(pending);
static int			 outstanding;
static int			 slept;

int
main(int argc, char *argv[])
{
	static struct listen_addr	 servers[DNSQ_SERVERS_MAX];
	int				 ch, i;

	log_init(0);
	log_setproc("dnsq");
	while ((ch = getopt(argc, argv, "c:n:r:s:t:")) != -1) {
		switch (ch) {
		case 'c':
			conf.cache_entries = strtoul(optarg, NULL, 10);
			break;
		case 'n':
			conf.max_neg_ttl = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			conf.tries = strtoul(optarg, NULL, 10);
			break;
		case 's':
			if (conf.nservers == DNSQ_SERVERS_MAX ||
			    parse_server(optarg, &servers[conf.nservers]) == -1)
				usage();
			conf.nservers++;
			break;
		case 't':
			conf.timeout_ms = strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (optind == argc)
		usage();
	conf.servers = conf.nservers > 0 ? servers : NULL;
	alarm(DNSQ_GUARD_SECONDS);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if (dns_init(base, &conf) == -1)
		fatalx("dns_init failed");
	for (i = optind; i < argc; i++) {
		if (strcmp(argv[i], "wait") == 0)
			run_until_idle();
		else if (strncmp(argv[i], "sleep:", 6) == 0)
			run_for(strtol(argv[i] + 6, NULL, 10));
		else if (strcmp(argv[i], "shutdown") == 0) {
			dns_shutdown();
			forget_pending();
			if (dns_init(base, &conf) == -1)
				fatalx("dns_init failed");
		} else if (strncmp(argv[i], "cancel:", 7) == 0)
			start(argv[i] + 7, 1);
		else
			start(argv[i], 0);
	}
	run_until_idle();
	dns_shutdown();
	event_base_free(base);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: dnsq [-s host:port]... [-t timeout_ms] "
	    "[-r tries] [-c entries] [-n max_neg_ttl] step...\n");
	exit(2);
}

/*
 * parse_server - "127.0.0.1:5353" or "[::1]:5353" into la, as config.c
 * would for dns_servers (the driver links dns.c and src/lib only)
 */
static int
parse_server(const char *arg, struct listen_addr *la)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&la->ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&la->ss;
	char			 host[INET6_ADDRSTRLEN];
	const char		*s = arg, *colon = strrchr(arg, ':');
	size_t			 hlen;
	long			 port;
	char			*end;

	memset(la, 0, sizeof(*la));
	if (colon == NULL || strlen(s) >= sizeof(la->text))
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535)
		return -1;
	hlen = (size_t)(colon - s);
	if (hlen > 2 && s[0] == '[' && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		la->sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		la->sslen = sizeof(*sin6);
	} else
		return -1;
	memcpy(la->text, arg, strlen(arg) + 1);	/* length checked above */
	return 0;
}

/* start - one lookup "KIND:ARG"; cancelled at once if cancel */
static void
start(const char *step, int cancel)
{
	struct lookup		*l;
	struct dns_query	*q;
	struct sockaddr_storage	 ss;
	const char		*colon = strchr(step, ':');
	size_t			 klen;

	if (colon == NULL || (klen = (size_t)(colon - step)) >= 8)
		usage();
	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("calloc");
	memcpy(l->kind, step, klen);
	l->arg = colon + 1;
	clock_gettime(CLOCK_MONOTONIC, &l->start);
	if (strcmp(l->kind, "mx") == 0)
		q = dns_query_mx(l->arg, strlen(l->arg), answer, l);
	else if (strcmp(l->kind, "txt") == 0)
		q = dns_query_txt(l->arg, strlen(l->arg), answer, l);
	else if (strcmp(l->kind, "a") == 0)
		q = dns_query_addr(l->arg, strlen(l->arg), DNS_INET, answer, l);
	else if (strcmp(l->kind, "aaaa") == 0)
		q = dns_query_addr(l->arg, strlen(l->arg), DNS_INET6, answer,
		    l);
	else if (strcmp(l->kind, "addr") == 0)
		q = dns_query_addr(l->arg, strlen(l->arg),
		    DNS_INET | DNS_INET6, answer, l);
	else if (strcmp(l->kind, "ptr") == 0) {
		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, l->arg,
		    &((struct sockaddr_in *)&ss)->sin_addr) == 1)
			ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, l->arg,
		    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
			ss.ss_family = AF_INET6;
		else
			usage();
		q = dns_query_ptr((struct sockaddr *)&ss, answer, l);
	} else
		usage();
	if (q == NULL)
		fatalx("dns_query failed");
	if (cancel) {
		dns_cancel(q);
		free(l);
		return;
	}
	TAILQ_INSERT_TAIL(&pending, l, link);
	outstanding++;
}

/* forget_pending - after dns_shutdown(): no callback will come */
static void
forget_pending(void)
{
	struct lookup	*l;

	while ((l = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, l, link);
		free(l);
	}
	outstanding = 0;
}

/* answer - the callback: print one line */
static void
answer(const struct dns_result *r, void *arg)
{
	struct lookup	*l = arg;
	char		 ip[INET6_ADDRSTRLEN];
	size_t		 i;

	printf("%s %s status=%s ttl=%u cached=%d", l->kind, l->arg,
	    dns_status_str(r->status), r->ttl, r->cached);
	if (r->truncated)
		printf(" truncated=1");
	if (r->why[0] != '\0')
		printf(" why=\"%s\"", r->why);
	for (i = 0; i < r->nmx; i++)
		printf("%s%u:%s", i == 0 ? " mx=" : ",", r->mx[i].pref,
		    r->mx[i].host);
	for (i = 0; i < r->naddr; i++)
		printf("%s%s", i == 0 ? " addr=" : ",",
		    inet_ntop(r->addr[i].family, r->addr[i].addr, ip,
		    sizeof(ip)));
	for (i = 0; i < r->nptr; i++)
		printf("%s%s", i == 0 ? " ptr=" : ",", r->ptr[i].name);
	for (i = 0; i < r->ntxt; i++) {
		printf("%s", i == 0 ? " txt=" : ",");
		print_txt(r->txt[i].data, r->txt[i].len);
	}
	printf(" ms=%ld\n", ms_since(&l->start));
	TAILQ_REMOVE(&pending, l, link);
	free(l);
	outstanding--;
}

/* print_txt - "..." with '"', '\\' and non-printable octets as \xNN */
static void
print_txt(const unsigned char *p, size_t len)
{
	size_t	 i;

	putchar('"');
	for (i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' ||
		    p[i] == '\\')
			printf("\\x%02x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

static void
run_until_idle(void)
{
	while (outstanding > 0)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			fatalx("event_base_loop");
}

static void
run_for(long ms)
{
	struct event	*ev;
	struct timeval	 tv;

	if (ms < 0)
		usage();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if ((ev = evtimer_new(base, sleep_cb, NULL)) == NULL)
		fatalx("evtimer_new");
	slept = 0;
	evtimer_add(ev, &tv);
	while (!slept)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			fatalx("event_base_loop");
	event_free(ev);
}

static void
sleep_cb(evutil_socket_t fd, short what, void *arg)
{
	slept = 1;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec	 t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	    (t.tv_nsec - t0->tv_nsec) / 1000000;
}
