/*
 * test_config.c - table-driven tests of src/common/config.c: the parse
 * helpers, a full good file, bad files with the exact "FILE:LINE:
 * reason" text (all errors of a file in one run), the matching
 * functions and transport map precedence.
 *
 * Files the tests need (transport maps, a too-large config) are
 * written to a private mkdtemp() directory and removed at the end.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "unit.h"

static char	 tmpdir[64];
static char	*cwd;

static char	*load(const char *, const char *, size_t, struct config **);
static void	 write_file(const char *, const char *);
static void	 sockaddr_of(const char *, struct sockaddr_storage *);
static void	 test_durations(void);
static void	 test_sizes(void);
static void	 test_cidrs(void);
static void	 test_cidr_match(void);
static void	 test_hostports(void);
static void	 test_nexthops(void);
static void	 test_defaults(void);
static void	 test_good(void);
static void	 test_bad(void);
static void	 test_bad_all(void);
static void	 test_map_errors(void);
static void	 test_files(void);
static void	 test_lookup(void);
static void	 test_outbound(void);

/* load - parse text, return what went to errf (malloc'd, maybe "") */
static char *
load(const char *name, const char *text, size_t len, struct config **cp)
{
	char	*out = NULL;
	size_t	 olen = 0;
	FILE	*f;

	if ((f = open_memstream(&out, &olen)) == NULL) {
		perror("open_memstream");
		exit(2);
	}
	*cp = config_load_mem(name, text, len, f);
	fclose(f);
	return out;
}

static void
write_file(const char *path, const char *text)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static void
sockaddr_of(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else {
		fprintf(stderr, "bad test address %s\n", s);
		exit(2);
	}
}

static void
test_durations(void)
{
	static const struct {
		const char	*in;
		int		 rc;
		time_t		 v;
	} t[] = {
		{ "30s", 0, 30 }, { "5m", 0, 300 }, { "4h", 0, 14400 },
		{ "5d", 0, 432000 }, { "1w", 0, 604800 }, { "45", 0, 45 },
		{ "0", 0, 0 }, { "0s", 0, 0 }, { "36500d", 0, 3153600000 },
		{ "5q", -1, 0 }, { "", -1, 0 }, { "-1", -1, 0 },
		{ "+5", -1, 0 }, { "5mm", -1, 0 }, { " 5m", -1, 0 },
		{ "5m ", -1, 0 }, { "1.5h", -1, 0 }, { "m", -1, 0 },
		{ "5M", -1, 0 }, { "36501d", -1, 0 },
		{ "99999999999999999999", -1, 0 },
		{ "18446744073709551615w", -1, 0 },
	};
	size_t	 i;
	time_t	 v;
	int	 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = -7;
		rc = config_parse_duration(t[i].in, &v);
		check(rc == t[i].rc && (rc == -1 || v == t[i].v),
		    "duration \"%s\": rc %d v %lld", t[i].in, rc,
		    (long long)v);
	}
}

static void
test_sizes(void)
{
	static const struct {
		const char	*in;
		int		 rc;
		size_t		 v;
	} t[] = {
		{ "26214400", 0, 26214400 }, { "25M", 0, 26214400 },
		{ "1K", 0, 1024 }, { "1k", 0, 1024 }, { "2G", 0, 2147483648 },
		{ "0", 0, 0 }, { "10m", 0, 10485760 },
		{ "12X", -1, 0 }, { "M", -1, 0 }, { "", -1, 0 },
		{ "1KB", -1, 0 }, { "1 K", -1, 0 }, { "-1", -1, 0 },
		{ "17179869184G", -1, 0 }, { "1.5M", -1, 0 },
	};
	size_t	 i, v;
	int	 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = 7;
		rc = config_parse_size(t[i].in, &v);
		check(rc == t[i].rc && (rc == -1 || v == t[i].v),
		    "size \"%s\": rc %d v %zu", t[i].in, rc, v);
	}
}

static void
test_cidrs(void)
{
	static const struct {
		const char	*in;
		int		 rc;
		int		 family;
		unsigned	 prefix;
		const char	*net;	/* masked network, inet_ntop form */
	} t[] = {
		{ "10.0.0.0/8", 0, AF_INET, 8, "10.0.0.0" },
		{ "10.1.2.3/8", 0, AF_INET, 8, "10.0.0.0" },
		{ "192.168.1.129/25", 0, AF_INET, 25, "192.168.1.128" },
		{ "192.168.1.1", 0, AF_INET, 32, "192.168.1.1" },
		{ "0.0.0.0/0", 0, AF_INET, 0, "0.0.0.0" },
		{ "::1", 0, AF_INET6, 128, "::1" },
		{ "2001:db8::/32", 0, AF_INET6, 32, "2001:db8::" },
		{ "fe80::1/10", 0, AF_INET6, 10, "fe80::" },
		{ "10.0.0.0/33", -1, 0, 0, NULL },
		{ "::/129", -1, 0, 0, NULL },
		{ "10.0.0/8", -1, 0, 0, NULL },
		{ "300.1.1.1", -1, 0, 0, NULL },
		{ "foo", -1, 0, 0, NULL },
		{ "/8", -1, 0, 0, NULL },
		{ "10.0.0.0/", -1, 0, 0, NULL },
		{ "10.0.0.0/8x", -1, 0, 0, NULL },
		{ "10.0.0.0/-8", -1, 0, 0, NULL },
		{ "[::1]/128", -1, 0, 0, NULL },
		{ "", -1, 0, 0, NULL },
	};
	struct cidr	 c;
	char		 net[INET6_ADDRSTRLEN];
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = config_parse_cidr(t[i].in, &c);
		if (rc != t[i].rc) {
			check(0, "cidr \"%s\": rc %d", t[i].in, rc);
			continue;
		}
		if (rc == -1) {
			check(1, "cidr");
			continue;
		}
		inet_ntop(c.family, c.addr, net, sizeof(net));
		check(c.family == t[i].family && c.prefix == t[i].prefix &&
		    strcmp(net, t[i].net) == 0, "cidr \"%s\": %d %s/%u",
		    t[i].in, c.family, net, c.prefix);
	}
}

static void
test_cidr_match(void)
{
	static const struct {
		const char	*net;
		const char	*addr;
		int		 match;
	} t[] = {
		{ "127.0.0.0/8", "127.0.0.1", 1 },
		{ "127.0.0.0/8", "128.0.0.1", 0 },
		{ "127.0.0.0/8", "::ffff:127.1.2.3", 1 },
		{ "127.0.0.0/8", "::1", 0 },
		{ "::1", "::1", 1 },
		{ "::1", "127.0.0.1", 0 },
		{ "192.168.1.128/25", "192.168.1.200", 1 },
		{ "192.168.1.128/25", "192.168.1.127", 0 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::1", 0 },
		{ "fe80::/10", "febf::1", 1 },
		{ "fe80::/10", "fec0::1", 0 },
		{ "::ffff:10.0.0.0/104", "10.9.9.9", 1 },
		{ "::ffff:10.0.0.0/104", "11.0.0.1", 0 },
		{ "10.0.0.5", "10.0.0.5", 1 },
		{ "10.0.0.5", "10.0.0.6", 0 },
	};
	struct cidr		 c;
	struct sockaddr_storage	 ss;
	size_t			 i;
	int			 m;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (config_parse_cidr(t[i].net, &c) == -1) {
			check(0, "cidr_match: bad net %s", t[i].net);
			continue;
		}
		sockaddr_of(t[i].addr, &ss);
		m = cidr_match(&c, (struct sockaddr *)&ss);
		check(m == t[i].match, "cidr_match %s %s: %d", t[i].net,
		    t[i].addr, m);
	}
}

static void
test_hostports(void)
{
	static const struct {
		const char	*in;
		unsigned	 defport;
		int		 rc;
		int		 family;
		unsigned	 port;
		const char	*text;
	} t[] = {
		{ "127.0.0.1:2525", 0, 0, AF_INET, 2525, "127.0.0.1:2525" },
		{ "0.0.0.0:25", 0, 0, AF_INET, 25, "0.0.0.0:25" },
		{ "*:25", 0, 0, AF_INET, 25, "0.0.0.0:25" },
		{ "[::1]:25", 0, 0, AF_INET6, 25, "[::1]:25" },
		{ "[::]:587", 0, 0, AF_INET6, 587, "[::]:587" },
		{ "[2001:DB8::1]:25", 0, 0, AF_INET6, 25, "[2001:db8::1]:25" },
		{ "127.0.0.1", 25, 0, AF_INET, 25, "127.0.0.1:25" },
		{ "::1", 53, 0, AF_INET6, 53, "[::1]:53" },
		{ "[::1]", 587, 0, AF_INET6, 587, "[::1]:587" },
		{ "[127.0.0.1]:26", 0, 0, AF_INET, 26, "127.0.0.1:26" },
		{ "127.0.0.1", 0, -1, 0, 0, NULL },
		{ "localhost:25", 0, -1, 0, 0, NULL },
		{ "127.0.0.1:0", 0, 0, AF_INET, 0, "127.0.0.1:0" },
		{ "1.2.3.4:000025", 0, -1, 0, 0, NULL },
		{ "1.2.3.4:65536", 0, -1, 0, 0, NULL },
		{ "1.2.3.4:", 25, -1, 0, 0, NULL },
		{ "1.2.3.4:2x", 0, -1, 0, 0, NULL },
		{ ":25", 0, -1, 0, 0, NULL },
		{ "[::1]x", 0, -1, 0, 0, NULL },
		{ "[::1", 0, -1, 0, 0, NULL },
		{ "[]:25", 0, -1, 0, 0, NULL },
		{ "", 25, -1, 0, 0, NULL },
	};
	struct listen_addr	 la;
	unsigned		 port;
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = config_parse_hostport(t[i].in, t[i].defport, &la);
		if (rc != t[i].rc || rc == -1) {
			check(rc == t[i].rc, "hostport \"%s\": rc %d",
			    t[i].in, rc);
			continue;
		}
		port = la.ss.ss_family == AF_INET ?
		    ntohs(((struct sockaddr_in *)&la.ss)->sin_port) :
		    ntohs(((struct sockaddr_in6 *)&la.ss)->sin6_port);
		check(la.ss.ss_family == t[i].family && port == t[i].port &&
		    strcmp(la.text, t[i].text) == 0 &&
		    la.sslen == (t[i].family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)),
		    "hostport \"%s\": %d %u %s", t[i].in, la.ss.ss_family,
		    port, la.text);
	}
}

static void
test_nexthops(void)
{
	static const struct {
		const char		*in;
		int			 rc;
		enum transport_kind	 kind;
		const char		*host;
		unsigned		 port;
		const char		*path;	/* "+x": cwd "/x" */
		const char		*text;
		int			 code;
		const char		*why;
	} t[] = {
		{ "smtp", 0, TR_SMTP_MX, NULL, 0, NULL, NULL, 0, NULL },
		{ "smtp:Mail.Example.TEST", 0, TR_SMTP_HOST,
		    "mail.example.test", 0, NULL, NULL, 0, NULL },
		{ "smtp:[10.0.0.5]:2525", 0, TR_SMTP_FIXED, "10.0.0.5", 2525,
		    NULL, NULL, 0, NULL },
		{ "smtp:[mx.internal.test]", 0, TR_SMTP_FIXED,
		    "mx.internal.test", 0, NULL, NULL, 0, NULL },
		{ "smtp:[::1]:25", 0, TR_SMTP_FIXED, "::1", 25, NULL, NULL, 0,
		    NULL },
		{ "maildir:/var/mail/%d/%u", 0, TR_MAILDIR, NULL, 0,
		    "/var/mail/%d/%u", NULL, 0, NULL },
		{ "maildir:run/mail/%d/%u", 0, TR_MAILDIR, NULL, 0,
		    "+run/mail/%d/%u", NULL, 0, NULL },
		{ "maildir:./m/%%/%u", 0, TR_MAILDIR, NULL, 0, "+m/%%/%u",
		    NULL, 0, NULL },
		{ "maildir:/srv/all/", 0, TR_MAILDIR, NULL, 0, "/srv/all/",
		    NULL, 0, NULL },
		{ "error:5.1.1 No such user", 0, TR_ERROR, NULL, 0, NULL,
		    "5.1.1 No such user", 550, NULL },
		{ "error:4.7.1\tTry later", 0, TR_ERROR, NULL, 0, NULL,
		    "4.7.1 Try later", 450, NULL },
		{ "error:5.7.1", 0, TR_ERROR, NULL, 0, NULL, "5.7.1", 550,
		    NULL },
		{ "error:5.123.456 x", 0, TR_ERROR, NULL, 0, NULL,
		    "5.123.456 x", 550, NULL },
		{ "maildir:/srv/all", -1, 0, NULL, 0, NULL, NULL, 0,
		    "template needs %u, or a trailing '/' for one maildir "
		    "for all" },
		{ "maildir:/x/%x/%u", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad % escape (only %d, %u and %%)" },
		{ "maildir:/x/%u%", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad % escape (only %d, %u and %%)" },
		{ "maildir:", -1, 0, NULL, 0, NULL, NULL, 0, "missing path" },
		{ "maildir:/a b/%u", -1, 0, NULL, 0, NULL, NULL, 0,
		    "blank or control character in path" },
		{ "error:6.1.1 x", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad status: 4.X.Y or 5.X.Y" },
		{ "error:5.1 x", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad status: 4.X.Y or 5.X.Y" },
		{ "error:5.1.1x", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad status: 4.X.Y or 5.X.Y" },
		{ "error:5.1234.1 x", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad status: 4.X.Y or 5.X.Y" },
		{ "error:5.1.1 caf\xc3\xa9", -1, 0, NULL, 0, NULL, NULL, 0,
		    "control or non-ASCII character in text" },
		{ "lmtp:x", -1, 0, NULL, 0, NULL, NULL, 0,
		    "unknown transport (smtp, maildir or error)" },
		{ "smtpx", -1, 0, NULL, 0, NULL, NULL, 0,
		    "unknown transport (smtp, maildir or error)" },
		{ "smtp:host.test:25", -1, 0, NULL, 0, NULL, NULL, 0,
		    "a port needs brackets: [host]:port" },
		{ "smtp:10.0.0.1", -1, 0, NULL, 0, NULL, NULL, 0,
		    "an address needs brackets: [address]" },
		{ "smtp:[10.0.0.1", -1, 0, NULL, 0, NULL, NULL, 0,
		    "missing ']'" },
		{ "smtp:[10.0.0.1]:0", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad port" },
		{ "smtp:[10.0.0.1]x", -1, 0, NULL, 0, NULL, NULL, 0,
		    "junk after ']'" },
		{ "smtp:bad_host", -1, 0, NULL, 0, NULL, NULL, 0,
		    "bad host name" },
		{ "smtp:", -1, 0, NULL, 0, NULL, NULL, 0, "bad host" },
	};
	struct nexthop	 h;
	const char	*why;
	char		 path[4096];
	size_t		 i;
	int		 rc, ok;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = config_parse_nexthop(t[i].in, &h, &why);
		if (rc == -1 || t[i].rc == -1) {
			check(rc == t[i].rc && (rc == 0 ||
			    strcmp(why, t[i].why) == 0),
			    "nexthop \"%s\": rc %d why %s", t[i].in, rc,
			    rc == -1 ? why : "-");
			if (rc == 0)
				goto clear;
			continue;
		}
		if (t[i].path != NULL && t[i].path[0] == '+')
			snprintf(path, sizeof(path), "%s/%s", cwd,
			    t[i].path + 1);
		else
			snprintf(path, sizeof(path), "%s",
			    t[i].path != NULL ? t[i].path : "");
		ok = h.kind == t[i].kind && h.port == t[i].port &&
		    h.code == t[i].code &&
		    (t[i].host == NULL ? h.host == NULL :
		    h.host != NULL && strcmp(h.host, t[i].host) == 0) &&
		    (t[i].path == NULL ? h.path == NULL :
		    h.path != NULL && strcmp(h.path, path) == 0) &&
		    (t[i].text == NULL ? h.text == NULL :
		    h.text != NULL && strcmp(h.text, t[i].text) == 0);
		check(ok, "nexthop \"%s\": kind %d host %s port %u path %s "
		    "text %s code %d", t[i].in, h.kind, h.host, h.port,
		    h.path, h.text, h.code);
clear:
		free(h.host);
		free(h.path);
		free(h.text);
	}
}

/* test_defaults - an empty file gives DESIGN.md's defaults */
static void
test_defaults(void)
{
	static const char *verbs[] = { "HELO", "EHLO", "MAIL", "RCPT",
	    "DATA", "BDAT", "RSET", "NOOP", "QUIT", "STARTTLS", "AUTH",
	    "HELP" };
	static const size_t lens[] = { 255, 255, 266, 266, 0, 64, 0, 0, 0,
	    0, 1024, 0 };
	struct config	*c;
	char		*err, host[256], file[4096];
	size_t		 i;

	err = load("empty.conf", "", 0, &c);
	check(c != NULL && *err == '\0', "defaults: %s", err);
	free(err);
	if (c == NULL)
		return;
	memset(host, 0, sizeof(host));
	gethostname(host, sizeof(host) - 1);
	snprintf(file, sizeof(file), "%s/empty.conf", cwd);
	check(strcmp(c->hostname, host) == 0, "default hostname %s",
	    c->hostname);
	check(strcmp(c->file, file) == 0, "file %s", c->file);
	check(c->nlisten == 1 && strcmp(c->listen[0].text, "0.0.0.0:25") == 0,
	    "default listen");
	check(c->nsubmission_listen == 0 && c->nsmtps_listen == 0 &&
	    c->ndns_servers == 0 && c->nlocal_domains == 0, "empty lists");
	check(strcmp(c->user, "moat") == 0, "default user");
	check(strcmp(c->spool_dir, "/var/spool/moat") == 0, "default spool");
	check(c->nrelay_networks == 2 &&
	    c->relay_networks[0].family == AF_INET &&
	    c->relay_networks[0].prefix == 8 &&
	    c->relay_networks[1].family == AF_INET6 &&
	    c->relay_networks[1].prefix == 128, "default relay_networks");
	check(c->transport_map_file == NULL && c->transport.n == 0 &&
	    !c->has_relay_host, "no transport");
	check(c->remote_smtp_port == 25 && c->outbound_tls == OTLS_MAY,
	    "port, tls");
	check(c->tls_cert_file == NULL && c->tls_key_file == NULL &&
	    c->auth_users_file == NULL, "no files");
	check(c->message_size_limit == 25 * 1024 * 1024 &&
	    c->max_recipients == 100 && c->max_connections == 1000 &&
	    c->max_connections_per_ip == 20 && c->max_errors == 10 &&
	    c->commit_threads == 8, "default limits");
	check(c->command_timeout == 300 && c->data_timeout == 600 &&
	    c->queue_lifetime == 5 * 86400 && c->delay_warning == 4 * 3600 &&
	    c->retry_min == 300 && c->retry_max == 3600, "default times");
	check(c->log_syslog == 0, "default log");
	check(c->smtp_helo_name[0] == '\0' && c->smtp_connect_timeout == 30 &&
	    c->smtp_helo_timeout == 300 && c->smtp_mail_timeout == 300 &&
	    c->smtp_rcpt_timeout == 300 && c->smtp_data_init_timeout == 120 &&
	    c->smtp_data_xfer_timeout == 180 &&
	    c->smtp_data_done_timeout == 600 &&
	    c->smtp_destination_concurrency_limit == 20 &&
	    c->smtp_max_connections == 100 &&
	    c->smtp_connection_cache_time == 2 &&
	    c->smtp_connection_reuse_time == 300 &&
	    c->hide_internal_hosts == 1 && c->tls_ca_file == NULL &&
	    c->tls_policy.n == 0, "default smtp-out keys");
	check(c->nfilter == 12, "default filter size %zu", c->nfilter);
	for (i = 0; i < 12 && i < c->nfilter; i++)
		check(strcmp(c->filter[i].verb, verbs[i]) == 0 &&
		    c->filter[i].maxarg == lens[i], "filter %zu: %s:%zu", i,
		    c->filter[i].verb, c->filter[i].maxarg);
	check(config_filter_find(c, "vrfy", 4) == NULL &&
	    config_filter_find(c, "EXPN", 4) == NULL, "VRFY, EXPN refused");
	config_free(c);
}

/* test_good - every key set, comments and odd spacing */
static void
test_good(void)
{
	char		 map[128], users[128], text[4096], exp[4096];
	struct config	*c;
	char		*err;

	snprintf(users, sizeof(users), "%s/users", tmpdir);
	/* sha512-crypt of "secret": the users file is loaded with the config */
	write_file(users, "alice@example.test:$6$saltsalt$"
	    "TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0"
	    "Y77vwPZN.Pq.H91p5hVO1\n");
	snprintf(map, sizeof(map), "%s/good.map", tmpdir);
	write_file(map,
	    "# internal delivery\n"
	    "example.test   smtp:[10.1.0.25]:25\n"
	    ".Example.Test. smtp:[10.1.0.25]\n"
	    "local.test     maildir:mail/%d/%u   # relative\n"
	    "gone.test      error:5.1.1 This domain is gone\n");
	snprintf(text, sizeof(text),
	    "# moat test config\n"
	    "\n"
	    "hostname = MX.Example.Test.\n"
	    "listen = 127.0.0.1:2525, [::1]:2525   # loopback\n"
	    "submission_listen=127.0.0.1\n"
	    "smtps_listen =\t127.0.0.1:4650\r\n"
	    "   user = mail_moat\n"
	    "spool_dir = ./run/spool\n"
	    "local_domains = Example.TEST, local.test.,gone.test\n"
	    "relay_networks = 10.1.0.0/16 2001:db8:1::/48\n"
	    "transport_map = %s\n"
	    "relay_host = [smart.example.net]:587\n"
	    "dns_servers = 127.0.0.1:5353 ::1\n"
	    "remote_smtp_port = 2526\n"
	    "tls_cert_file = /etc/moat/cert.pem\n"
	    "tls_key_file = key.pem\n"
	    "outbound_tls = verify\n"
	    "auth_users_file = %s\n"
	    "message_size_limit = 10M\n"
	    "max_recipients = 50\n"
	    "max_connections = 500\n"
	    "max_connections_per_ip = 5\n"
	    "max_errors = 3\n"
	    "commit_threads = 3\n"
	    "command_filter = helo:255 EHLO:255,MAIL:266 RCPT:266 DATA:0 "
	    "QUIT:0 VRFY:100\n"
	    "command_timeout = 30s\n"
	    "data_timeout = 2m\n"
	    "queue_lifetime = 1w\n"
	    "delay_warning = 1d\n"
	    "retry_min = 60\n"
	    "retry_max = 2h\n"
	    "log = syslog\n", map, users);
	err = load("good.conf", text, strlen(text), &c);
	check(c != NULL && *err == '\0', "good config: %s", err);
	free(err);
	if (c == NULL)
		return;
	check(strcmp(c->hostname, "MX.Example.Test") == 0, "hostname %s",
	    c->hostname);
	check(c->nlisten == 2 && strcmp(c->listen[0].text,
	    "127.0.0.1:2525") == 0 && strcmp(c->listen[1].text,
	    "[::1]:2525") == 0, "listen");
	check(c->nsubmission_listen == 1 && strcmp(
	    c->submission_listen[0].text, "127.0.0.1:587") == 0,
	    "submission default port");
	check(c->nsmtps_listen == 1 && strcmp(c->smtps_listen[0].text,
	    "127.0.0.1:4650") == 0, "smtps with CRLF line");
	check(strcmp(c->user, "mail_moat") == 0, "user");
	snprintf(exp, sizeof(exp), "%s/run/spool", cwd);
	check(strcmp(c->spool_dir, exp) == 0, "spool_dir %s", c->spool_dir);
	check(c->nlocal_domains == 3 &&
	    strcmp(c->local_domains[0], "example.test") == 0 &&
	    strcmp(c->local_domains[1], "local.test") == 0 &&
	    strcmp(c->local_domains[2], "gone.test") == 0, "local_domains");
	check(c->nrelay_networks == 2 && c->relay_networks[0].prefix == 16 &&
	    c->relay_networks[1].prefix == 48, "relay_networks");
	check(strcmp(c->transport_map_file, map) == 0 && c->transport.n == 4,
	    "transport map %s %zu", c->transport_map_file, c->transport.n);
	check(c->has_relay_host && c->relay_host.kind == TR_SMTP_FIXED &&
	    strcmp(c->relay_host.host, "smart.example.net") == 0 &&
	    c->relay_host.port == 587, "relay_host");
	check(c->ndns_servers == 2 && strcmp(c->dns_servers[0].text,
	    "127.0.0.1:5353") == 0 && strcmp(c->dns_servers[1].text,
	    "[::1]:53") == 0, "dns_servers");
	check(c->remote_smtp_port == 2526, "remote_smtp_port");
	snprintf(exp, sizeof(exp), "%s/key.pem", cwd);
	check(strcmp(c->tls_cert_file, "/etc/moat/cert.pem") == 0 &&
	    strcmp(c->tls_key_file, exp) == 0, "tls files");
	check(c->outbound_tls == OTLS_VERIFY, "outbound_tls");
	check(strcmp(c->auth_users_file, users) == 0, "auth");
	check(c->message_size_limit == 10485760 && c->max_recipients == 50 &&
	    c->max_connections == 500 && c->max_connections_per_ip == 5 &&
	    c->max_errors == 3 && c->commit_threads == 3, "limits");
	check(c->nfilter == 7 && strcmp(c->filter[0].verb, "HELO") == 0 &&
	    c->filter[6].maxarg == 100, "filter");
	check(config_filter_find(c, "vrfy", 4) != NULL &&
	    config_filter_find(c, "NOOP", 4) == NULL &&
	    config_filter_find(c, "HELOX", 4) != NULL &&
	    config_filter_find(c, "HEL", 3) == NULL &&
	    config_filter_find(c, "", 0) == NULL, "filter_find");
	check(c->command_timeout == 30 && c->data_timeout == 120 &&
	    c->queue_lifetime == 604800 && c->delay_warning == 86400 &&
	    c->retry_min == 60 && c->retry_max == 7200, "times");
	check(c->log_syslog == 1, "log syslog");
	check(config_is_local_domain(c, "EXAMPLE.test", 12) &&
	    config_is_local_domain(c, "example.test.", 13) &&
	    config_is_local_domain(c, "gone.test", 9) &&
	    !config_is_local_domain(c, "example.tes", 11) &&
	    !config_is_local_domain(c, "sub.example.test", 16) &&
	    !config_is_local_domain(c, "", 0) &&
	    !config_is_local_domain(c, ".", 1), "is_local_domain");
	config_free(c);
}

/*
 * test_bad - one mistake per file; the whole errf output must match,
 * so the text of every message is part of the contract.
 */
static void
test_bad(void)
{
	static const struct {
		const char	*in;
		const char	*out;
	} t[] = {
		{ "lissten = 0.0.0.0:25\n",
		    "t.conf:1: unknown key \"lissten\"\n" },
		{ "\nlisten 127.0.0.1:25\n",
		    "t.conf:2: missing '=' after \"listen\"\n" },
		{ "= x\n", "t.conf:1: missing key before '='\n" },
		{ "Listen = 127.0.0.1:25\n",
		    "t.conf:1: unknown key \"Listen\"\n" },
		{ "command_timeout = 5q\n",
		    "t.conf:1: bad duration \"5q\" for command_timeout\n" },
		{ "command_timeout = 0\n", "t.conf:1: command_timeout \"0\" "
		    "out of range (1s..1d)\n" },
		{ "message_size_limit = 12X\n",
		    "t.conf:1: bad size \"12X\" for message_size_limit\n" },
		{ "message_size_limit = 3G\n", "t.conf:1: message_size_limit "
		    "\"3G\" out of range (1..2G)\n" },
		{ "max_recipients = ten\n",
		    "t.conf:1: bad number \"ten\" for max_recipients\n" },
		{ "commit_threads = 0\n", "t.conf:1: commit_threads \"0\" "
		    "out of range (1..64)\n" },
		{ "commit_threads = 65\n", "t.conf:1: commit_threads \"65\" "
		    "out of range (1..64)\n" },
		{ "remote_smtp_port = 70000\n", "t.conf:1: remote_smtp_port "
		    "\"70000\" out of range (1..65535)\n" },
		{ "remote_smtp_port = 25x\n",
		    "t.conf:1: bad port \"25x\" for remote_smtp_port\n" },
		{ "relay_networks = 10.0.0.0/33\n", "t.conf:1: bad CIDR "
		    "\"10.0.0.0/33\" in relay_networks\n" },
		{ "listen = localhost:25\n",
		    "t.conf:1: bad address \"localhost:25\" in listen\n" },
		{ "listen = 1.2.3.4\nlisten = 1.2.3.5\n", "t.conf:2: "
		    "duplicate key \"listen\" (first set on line 1)\n" },
		{ "listen =\n", "t.conf:1: no listener: set listen, "
		    "submission_listen or smtps_listen\n" },
		{ "hostname =\n", "t.conf:1: missing value for hostname\n" },
		{ "hostname = bad_host\n",
		    "t.conf:1: bad hostname \"bad_host\" for hostname\n" },
		{ "hostname = mx.example.test#x\n", "t.conf:1: bad hostname "
		    "\"mx.example.test#x\" for hostname\n" },
		{ "local_domains = a.test -b.test c..test\n",
		    "t.conf:1: bad domain \"-b.test\" in local_domains\n"
		    "t.conf:1: bad domain \"c..test\" in local_domains\n" },
		{ "outbound_tls = maybe\n", "t.conf:1: bad value \"maybe\" "
		    "for outbound_tls (may, encrypt or verify)\n" },
		{ "log = file\n", "t.conf:1: bad value \"file\" for log "
		    "(stderr or syslog)\n" },
		{ "user = ro ot\n",
		    "t.conf:1: bad user name \"ro\\x20ot\" for user\n" },
		{ "spool_dir = /var/\x01spool\n", "t.conf:1: bad path "
		    "\"/var/\\x01spool\" for spool_dir\n" },
		{ "command_filter = VRFY\n", "t.conf:1: bad command_filter "
		    "entry \"VRFY\" (VERB:MAXLEN, VERB letters only, MAXLEN "
		    "0..16384)\n" },
		{ "command_filter = X-Y:1\n", "t.conf:1: bad command_filter "
		    "entry \"X-Y:1\" (VERB:MAXLEN, VERB letters only, MAXLEN "
		    "0..16384)\n" },
		{ "command_filter = ABCDEFGHIJKLMNOP:1\n", "t.conf:1: bad "
		    "command_filter entry \"ABCDEFGHIJKLMNOP:1\" (VERB:MAXLEN, "
		    "VERB letters only, MAXLEN 0..16384)\n" },
		{ "command_filter = MAIL:266 mail:10\n",
		    "t.conf:1: duplicate verb MAIL in command_filter\n" },
		{ "command_filter =\n", "t.conf:1: command_filter needs 1 to "
		    "32 entries, not 0\n" },
		{ "relay_host = smtp\n", "t.conf:1: bad next hop \"smtp\" for "
		    "relay_host: relay_host must be an SMTP host ([host]:port "
		    "or host)\n" },
		{ "relay_host = mx.example.test:587\n", "t.conf:1: bad next "
		    "hop \"mx.example.test:587\" for relay_host: a port needs "
		    "brackets: [host]:port\n" },
		{ "retry_max = 1m\n", "t.conf:1: retry_min 5m is greater "
		    "than retry_max 1m\n" },
		{ "retry_min = 2h\n\nretry_max = 90m\n", "t.conf:3: retry_min "
		    "2h is greater than retry_max 90m\n" },
		{ "tls_cert_file = a.pem\n", "t.conf:1: tls_cert_file and "
		    "tls_key_file go together\n" },
		{ "smtps_listen = 127.0.0.1\n", "t.conf:1: smtps_listen "
		    "needs tls_cert_file and tls_key_file\n" },
		{ "dns_servers = 127.0.0.1:0\n", "t.conf:1: bad address "
		    "\"127.0.0.1:0\" in dns_servers\n" },
		{ "transport_map = /nonexistent/map\n", "t.conf:1: "
		    "transport_map /nonexistent/map: cannot read: No such "
		    "file or directory\n" },
		{ "max_errors = 5\nx\n",
		    "t.conf:2: missing '=' after \"x\"\n" },
	};
	struct config	*c;
	char		*err;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err = load("t.conf", t[i].in, strlen(t[i].in), &c);
		check(c == NULL && strcmp(err, t[i].out) == 0,
		    "bad config %zu: got\n%sexpected\n%s", i, err, t[i].out);
		free(err);
		config_free(c);
	}
	/* a NUL inside a line, with the length given explicitly */
	err = load("t.conf", "user = mo\0at\n", 13, &c);
	check(c == NULL && strcmp(err, "t.conf:1: NUL byte in line\n") == 0,
	    "NUL: %s", err);
	free(err);
}

/* test_bad_all - all errors of one file, in one pass, in order */
static void
test_bad_all(void)
{
	static const char in[] =
	    "lissten = 0.0.0.0:25\n"
	    "listen 127.0.0.1:25\n"
	    "command_timeout = 5q\n"
	    "message_size_limit = 12X\n"
	    "relay_networks = 10.0.0.0/33 ::1 300.1.1.1\n"
	    "listen = 127.0.0.1:2525\n"
	    "listen = 127.0.0.1:2526\n"
	    "max_recipients = 0\n"
	    "outbound_tls = maybe\n"
	    "hostname = bad_host\n"
	    "local_domains = example.test, -bad.test\n"
	    "retry_min = 2h\n";
	static const char out[] =
	    "bad.conf:1: unknown key \"lissten\"\n"
	    "bad.conf:2: missing '=' after \"listen\"\n"
	    "bad.conf:3: bad duration \"5q\" for command_timeout\n"
	    "bad.conf:4: bad size \"12X\" for message_size_limit\n"
	    "bad.conf:5: bad CIDR \"10.0.0.0/33\" in relay_networks\n"
	    "bad.conf:5: bad CIDR \"300.1.1.1\" in relay_networks\n"
	    "bad.conf:7: duplicate key \"listen\" (first set on line 6)\n"
	    "bad.conf:8: max_recipients \"0\" out of range (1..100000)\n"
	    "bad.conf:9: bad value \"maybe\" for outbound_tls (may, "
	    "encrypt or verify)\n"
	    "bad.conf:10: bad hostname \"bad_host\" for hostname\n"
	    "bad.conf:11: bad domain \"-bad.test\" in local_domains\n"
	    "bad.conf:12: retry_min 2h is greater than retry_max 1h\n";
	struct config	*c;
	struct buf_s {
		char	*p;
		size_t	 len;
	} many;
	char		*err, *nl;
	size_t		 i, lines;

	err = load("bad.conf", in, sizeof(in) - 1, &c);
	check(c == NULL && strcmp(err, out) == 0,
	    "all errors: got\n%sexpected\n%s", err, out);
	free(err);

	/* a hopeless file: reporting stops after 100 errors */
	many.len = 300 * 10;
	many.p = malloc(many.len + 1);
	for (i = 0; i < 300; i++)
		memcpy(many.p + i * 10, "bogus = 1\n", 10);
	err = load("many.conf", many.p, many.len, &c);
	for (lines = 0, nl = err; (nl = strchr(nl, '\n')) != NULL; nl++)
		lines++;
	check(c == NULL && lines == 101 && strstr(err,
	    "many.conf: too many errors, stopping\n") != NULL,
	    "error cap: %zu lines", lines);
	free(err);
	free(many.p);
}

/* test_map_errors - "MAPFILE:LINE: reason", all of them */
static void
test_map_errors(void)
{
	char		 map[128], text[256], exp[2048];
	struct config	*c;
	char		*err;

	snprintf(map, sizeof(map), "%s/bad.map", tmpdir);
	write_file(map,
	    "# comment\n"
	    "example.test maildir:/srv/mail/%d/%u\n"
	    "bad_domain smtp\n"
	    ".example.test\n"
	    "other.test lmtp:x\n"
	    "EXAMPLE.test. smtp\n"
	    "*   error:5.1.1 no\n"
	    "x.test maildir:/srv/%d\n"
	    "..test smtp\n");
	snprintf(text, sizeof(text), "transport_map = %s\n", map);
	snprintf(exp, sizeof(exp),
	    "%s:3: bad domain \"bad_domain\"\n"
	    "%s:4: missing next hop for \".example.test\"\n"
	    "%s:5: bad next hop \"lmtp:x\": unknown transport (smtp, "
	    "maildir or error)\n"
	    "%s:8: bad next hop \"maildir:/srv/%%d\": template needs %%u, "
	    "or a trailing '/' for one maildir for all\n"
	    "%s:9: bad domain \"..test\"\n"
	    "%s:6: duplicate domain \"example.test\" (first on line 2)\n",
	    map, map, map, map, map, map);
	err = load("m.conf", text, strlen(text), &c);
	check(c == NULL && strcmp(err, exp) == 0,
	    "map errors: got\n%sexpected\n%s", err, exp);
	free(err);
}

/* test_files - config_load() itself: missing, too large, good */
static void
test_files(void)
{
	char		 path[128], exp[256], *big, *err;
	size_t		 olen = 0;
	struct config	*c;
	FILE		*f, *ef;

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	ef = open_memstream(&err, &olen);
	c = config_load(path, ef);
	fclose(ef);
	snprintf(exp, sizeof(exp), "%s: cannot read: No such file or "
	    "directory\n", path);
	check(c == NULL && strcmp(err, exp) == 0, "missing file: %s", err);
	free(err);

	ef = open_memstream(&err, &olen);
	c = config_load(tmpdir, ef);
	fclose(ef);
	snprintf(exp, sizeof(exp), "%s: not a regular file\n", tmpdir);
	check(c == NULL && strcmp(err, exp) == 0, "directory: %s", err);
	free(err);

	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	big = malloc(1024 * 1024 + 2);
	memset(big, '#', 1024 * 1024 + 1);
	big[1024 * 1024 + 1] = '\0';
	write_file(path, big);
	ef = open_memstream(&err, &olen);
	c = config_load(path, ef);
	fclose(ef);
	snprintf(exp, sizeof(exp), "%s: larger than 1 MiB\n", path);
	check(c == NULL && strcmp(err, exp) == 0, "big file: %s", err);
	free(err);

	/* exactly 1 MiB of comment is fine */
	big[1024 * 1024] = '\0';
	write_file(path, big);
	free(big);
	f = fopen("/dev/null", "w");
	c = config_load(path, f);
	fclose(f);
	check(c != NULL && c->nlisten == 1, "1 MiB file");
	config_free(c);
}

/* test_lookup - transport_lookup precedence */
static void
test_lookup(void)
{
	static const struct {
		const char	*domain;
		const char	*host;	/* host or text; NULL = no hop */
	} t[] = {
		{ "example.test", "10.0.0.1" },
		{ "EXAMPLE.TEST.", "10.0.0.1" },
		{ "x.example.test", "10.0.0.2" },
		{ "sub.example.test", "10.0.0.2" },
		{ "b.sub.example.test", "10.0.0.3" },
		{ "a.sub.example.test", "5.1.1 gone" },
		{ "c.a.sub.example.test", "10.0.0.3" },
		{ "other.test", "relay.example.net" },
		{ "test", "relay.example.net" },
		{ "", "relay.example.net" },
		{ "xexample.test", "relay.example.net" },
	};
	char			 map[128], text[256];
	struct config		*c;
	const struct nexthop	*h;
	const char		*got;
	char			*err;
	size_t			 i;

	snprintf(map, sizeof(map), "%s/lookup.map", tmpdir);
	write_file(map,
	    "* smtp:relay.example.net\n"
	    "example.test smtp:[10.0.0.1]:25\n"
	    "a.sub.example.test error:5.1.1 gone\n"
	    ".sub.example.test smtp:[10.0.0.3]:25\n"
	    ".example.test smtp:[10.0.0.2]:25\n");
	snprintf(text, sizeof(text), "transport_map = %s\n", map);
	err = load("l.conf", text, strlen(text), &c);
	check(c != NULL && *err == '\0', "lookup config: %s", err);
	free(err);
	if (c == NULL)
		return;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		h = transport_lookup(&c->transport, t[i].domain,
		    strlen(t[i].domain));
		got = h == NULL ? NULL : h->kind == TR_ERROR ? h->text :
		    h->host;
		check(got != NULL && strcmp(got, t[i].host) == 0,
		    "lookup %s: %s", t[i].domain, got ? got : "(none)");
	}
	/* received data is never strlen'ed: a slice of a longer buffer */
	h = transport_lookup(&c->transport, "example.testXYZ", 12);
	check(h != NULL && h->host != NULL &&
	    strcmp(h->host, "10.0.0.1") == 0, "lookup slice");
	config_free(c);

	/* without "*" an unknown domain has no entry */
	write_file(map, ".example.test smtp\n");
	err = load("l.conf", text, strlen(text), &c);
	check(c != NULL && *err == '\0', "lookup config 2: %s", err);
	free(err);
	if (c == NULL)
		return;
	check(transport_lookup(&c->transport, "other.test", 10) == NULL &&
	    transport_lookup(&c->transport, "example.test", 12) == NULL,
	    "lookup without *");
	h = transport_lookup(&c->transport, "a.example.test", 14);
	check(h != NULL && h->kind == TR_SMTP_MX, "lookup subdomain MX");
	config_free(c);
}

int
main(void)
{
	char	 path[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || (cwd = getcwd(NULL, 0)) == NULL) {
		perror("setup");
		return 2;
	}
	test_durations();
	test_sizes();
	test_cidrs();
	test_cidr_match();
	test_hostports();
	test_nexthops();
	test_defaults();
	test_good();
	test_bad();
	test_bad_all();
	test_map_errors();
	test_files();
	test_lookup();
	test_outbound();

	snprintf(path, sizeof(path), "rm -rf '%s'", tmpdir);
	if (system(path) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cwd);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}

/* test_outbound - tls_policy_map, booleans, the smtp-out keys */
static void
test_outbound(void)
{
	char		 map[128], text[512], exp[1024];
	struct config	*c;
	char		*err;

	snprintf(map, sizeof(map), "%s/tls.map", tmpdir);
	write_file(map,
	    "partner.test verify\n"
	    ".bank.test   encrypt\n"
	    "*            may\n");
	snprintf(text, sizeof(text), "tls_policy_map = %s\n"
	    "outbound_tls = encrypt\nhide_internal_hosts = no\n"
	    "smtp_helo_name = relay.example.test\n"
	    "smtp_destination_concurrency_limit = 3\n"
	    "smtp_data_done_timeout = 1m\n", map);
	err = load("o.conf", text, strlen(text), &c);
	check(c != NULL && *err == '\0', "outbound good: %s", err);
	free(err);
	if (c != NULL) {
		check(tls_policy_lookup(c, "partner.test", 12) == OTLS_VERIFY,
		    "policy exact");
		check(tls_policy_lookup(c, "PARTNER.test.", 13) ==
		    OTLS_VERIFY, "policy case, dot");
		check(tls_policy_lookup(c, "a.bank.test", 11) == OTLS_ENCRYPT,
		    "policy parent");
		check(tls_policy_lookup(c, "bank.test", 9) == OTLS_MAY,
		    "policy default entry");
		check(c->hide_internal_hosts == 0, "bool no");
		check(strcmp(c->smtp_helo_name, "relay.example.test") == 0,
		    "helo name");
		check(c->smtp_destination_concurrency_limit == 3 &&
		    c->smtp_data_done_timeout == 60, "smtp numbers");
		config_free(c);
	}
	/* without the map, outbound_tls is the answer */
	err = load("o2.conf", "outbound_tls = verify\n", 22, &c);
	check(c != NULL && tls_policy_lookup(c, "x.test", 6) == OTLS_VERIFY,
	    "policy from outbound_tls: %s", err);
	free(err);
	config_free(c);

	write_file(map, "a.test sometimes\nb.test\na.test may\n");
	snprintf(text, sizeof(text), "tls_policy_map = %s\n"
	    "hide_internal_hosts = maybe\n", map);
	snprintf(exp, sizeof(exp),
	    "o3.conf:2: bad value \"maybe\" for hide_internal_hosts "
	    "(yes or no)\n"
	    "%s:1: bad policy \"sometimes\": not may, encrypt or verify\n"
	    "%s:2: missing next hop for \"b.test\"\n", map, map);
	err = load("o3.conf", text, strlen(text), &c);
	check(c == NULL && strcmp(err, exp) == 0,
	    "outbound errors: got\n%sexpected\n%s", err, exp);
	free(err);
}
