/*
 * fuzz_config.c - libFuzzer harness for config_load_mem() and the
 * transport map parser.
 *
 * Input: either a config file, or "MAP\n===\nCONFIG": the MAP part is
 * written to a private temporary file and the config is prefixed with
 * "transport_map = THAT FILE", so the map grammar is fuzzed too.  Any
 * octets must either be refused (NULL, errors to /dev/null) or give a
 * config whose lookups work; everything is freed (LeakSanitizer).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "common/config.h"

#define SEP	"\n===\n"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static FILE	*devnull;
static char	 mapfile[] = "/tmp/fuzz_config.map.XXXXXX";
static int	 mapfd = -1;

static void	 cleanup(void);
static void	 exercise(const struct config *, const char *, size_t);
static char	*with_map(const char *, size_t, size_t *);

static void
cleanup(void)
{
	if (mapfd != -1)
		unlink(mapfile);
}

/* exercise - every lookup, with slices of the input as keys */
static void
exercise(const struct config *c, const char *p, size_t len)
{
	struct sockaddr_in6	 sin6;
	struct sockaddr_in	 sin;
	size_t			 n = len < 64 ? len : 64;

	(void)config_filter_find(c, p, n < 16 ? n : 16);
	(void)config_is_local_domain(c, p, n);
	(void)transport_lookup(&c->transport, p, n);
	(void)transport_lookup(&c->transport, p, len);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	memcpy(&sin.sin_addr, p, len < 4 ? len : 4);
	(void)config_in_relay_networks(c, (struct sockaddr *)&sin);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(&sin6.sin6_addr, p, len < 16 ? len : 16);
	(void)config_in_relay_networks(c, (struct sockaddr *)&sin6);
}

/* with_map - split "MAP===CONFIG", write MAP, return the new config */
static char *
with_map(const char *p, size_t len, size_t *outlen)
{
	const char	*sep = memmem(p, len, SEP, sizeof(SEP) - 1);
	size_t		 mlen, rest, hlen;
	char		*out;

	if (sep == NULL)
		return NULL;
	if (mapfd == -1) {
		if ((mapfd = mkstemp(mapfile)) == -1)
			abort();
		atexit(cleanup);
	}
	mlen = (size_t)(sep - p);
	if (ftruncate(mapfd, 0) == -1 ||
	    pwrite(mapfd, p, mlen, 0) != (ssize_t)mlen)
		abort();
	rest = len - mlen - (sizeof(SEP) - 1);
	hlen = strlen("transport_map = \n") + strlen(mapfile);
	if ((out = malloc(hlen + rest + 1)) == NULL)
		abort();
	snprintf(out, hlen + 1, "transport_map = %s\n", mapfile);
	memcpy(out + hlen, sep + sizeof(SEP) - 1, rest);
	*outlen = hlen + rest;
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char	*p = (const char *)data;
	struct config	*c;
	char		*text, *s;
	size_t		 tlen = len;
	struct cidr	 cidr;
	struct listen_addr la;
	struct nexthop	 hop;
	const char	*why;
	time_t		 t;
	size_t		 sz;

	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	text = with_map(p, len, &tlen);
	c = config_load_mem("fuzz.conf", text != NULL ? text : p, tlen,
	    devnull);
	if (c != NULL) {
		exercise(c, p, len);
		config_free(c);
	}
	free(text);

	/* the exported helpers take C strings: a NUL-terminated copy */
	if (len > 4096)
		return 0;
	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	(void)config_parse_duration(s, &t);
	(void)config_parse_size(s, &sz);
	(void)config_parse_cidr(s, &cidr);
	(void)config_parse_hostport(s, 25, &la);
	if (config_parse_nexthop(s, &hop, &why) == 0) {
		free(hop.host);
		free(hop.path);
		free(hop.text);
	}
	free(s);
	return 0;
}
