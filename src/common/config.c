/*
 * config.c - parse moat.conf and the transport map into struct config.
 *
 * One grammar, one sorted keyword table (STYLE.md 9): every key appears
 * exactly once in keywords[] with its type, its default written in the
 * same syntax as the file, and its bounds.  Defaults are applied by
 * running the very parser the file goes through, so a default can never
 * disagree with what a user could write; a default that does not parse
 * is a broken invariant (panic).
 *
 * Invariants:
 *  - Every error is reported as "FILE:LINE: reason" (or "FILE: reason"
 *    when it concerns the file as a whole) and parsing goes on, so one
 *    run shows all mistakes; the caller gets NULL if there was any.
 *    After CONF_ERRORS_MAX errors we stop, so a binary file cannot make
 *    us print a million lines.
 *  - Input is bounded: a file over CONF_FILE_MAX octets is refused, a
 *    line holding a NUL is refused (values become C strings after
 *    that check), every list has a maximum length.
 *  - Every path stored in struct config is absolute: relative ones are
 *    resolved against the working directory at parse time, because the
 *    roles chdir/chroot into the spool later.
 *  - No DNS at config time: listen addresses are numeric.
 *
 * Failure grades: configuration mistakes are reported and the load
 * fails; out of memory is fatal() (we are the master at startup or
 * reload, there is nothing sensible to degrade to).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "authdb.h"
#include "addr.h"
#include "config.h"
#include "content.h"
#include "rcptmap.h"

#define CONF_FILE_MAX	(1024 * 1024)	/* config and map files */
#define CONF_ERRORS_MAX	100		/* then stop reporting */
#define CONF_TOKEN_MAX	256		/* one list item */
#define CONF_QUOTE_MAX	96		/* value echoed in a message */
#define CONF_FILTER_ARG_MAX 16384	/* command_filter MAXLEN bound */
#define CONF_USER_MAX	32		/* login name length (useradd) */
#define CONF_ERRTEXT_MAX 400		/* error: text; reply line <= 512 */

#define MINUTE		60LL
#define HOUR		(60 * MINUTE)
#define DAY		(24 * HOUR)
#define WEEK		(7 * DAY)
#define DURATION_MAX	(36500 * DAY)	/* parseable at all: 100 years */
#define KIB		1024ULL
#define MIB		(1024 * KIB)
#define GIB		(1024 * MIB)

#define LIST_SEP	" ,\t"

/* content filter: programs and scripts by extension and by type */
#define DEFAULT_ATTACHMENT_BLOCK "ade adp app bat chm cmd com cpl exe " \
			"hta inf ins isp jar js jse lnk mde msc msi msp mst " \
			"pif ps1 reg scr sct shb shs vb vbe vbs wsc wsf wsh " \
			"application/x-dosexec application/x-msdownload " \
			"application/vnd.microsoft.portable-executable"

#define DEFAULT_FILTER	"HELO:255 EHLO:255 MAIL:266 RCPT:266 DATA:0 " \
			"BDAT:64 RSET:0 NOOP:0 QUIT:0 STARTTLS:0 " \
			"AUTH:1024 HELP:0"

enum kw_type {
	KW_ADDRS,	/* list of host:port, struct listen_addr[] */
	KW_CIDRS,	/* list of networks, struct cidr[] */
	KW_COUNT,	/* plain number, size_t */
	KW_DOMAINS,	/* list of domains, char *[] lower case */
	KW_DURATION,	/* time_t seconds */
	KW_ENDPOINT,	/* scanner socket; count field = is set */
	KW_MILTERS,	/* list of endpoints[=action], struct
			   scan_endpoint[] */
	KW_BOOL,	/* yes | no -> int */
	KW_CHOICE,	/* one word of kw_choices() -> int, its index */
	KW_DNSBL,	/* list of ZONE[=FILTER][*WEIGHT], struct dnsbl[] */
	KW_FILTER,	/* VERB:MAXLEN list, struct filter_rule[] */
	KW_HOSTNAME,	/* char[CONF_HOSTNAME_MAX + 1] */
	KW_LOG,		/* stderr | syslog -> int log_syslog */
	KW_NEXTHOP,	/* SMTP next hop; count field = has_relay_host */
	KW_OTLS,	/* may | encrypt | verify */
	KW_PATH,	/* char *, made absolute */
	KW_PORT,	/* unsigned 1..65535 */
	KW_SIZE,	/* size_t octets, K/M/G suffix */
	KW_USER,	/* char *, login name syntax */
	KW_WORDS	/* list of words, char *[] lower case */
};

/*
 * One configuration key.  off is the field in struct config, noff the
 * count field of list types (or the "is set" flag of KW_NEXTHOP).  min
 * and max bound numbers, durations and sizes, or the number of items of
 * a list.  defport is the port of KW_ADDRS items written without one.
 */
struct keyword {
	const char		*name;
	enum kw_type		 type;
	size_t			 off;
	size_t			 noff;
	const char		*def;	/* default in file syntax or NULL */
	unsigned long long	 min;
	unsigned long long	 max;
	unsigned		 defport;
};

/* parser state for one load: where we are and what went wrong */
struct parse {
	const char	*name;		/* file name used in messages */
	FILE		*errf;
	unsigned	 line;		/* 0 = not in a line */
	size_t		 nerr;
	int		 stop;		/* CONF_ERRORS_MAX reached */
	int		 in_default;	/* parsing keywords[].def */
	unsigned	*seen;		/* per keyword: line it was set on */
	unsigned char	*bad;		/* per keyword: value did not parse */
};

typedef void	line_fn(struct parse *, void *, const char *, size_t);

static void	 conf_err(struct parse *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 conf_errl(struct parse *, unsigned, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 conf_verr(struct parse *, unsigned, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));
static const char *quote(const char *, char *, size_t);
static void	*xcalloc(size_t, size_t);
static char	*xstrdup(const char *);
static int	 read_capped(const char *, struct buf *, const char **);
static void	 for_each_line(struct parse *, const char *, size_t,
		    line_fn *, void *);
static int	 line_clean(struct parse *, const char **, size_t *);
static void	 conf_line(struct parse *, void *, const char *, size_t);
static const struct keyword *kw_find(const char *, size_t);
static void	 kw_check_sorted(void);
static int	 kw_set(struct parse *, struct config *,
		    const struct keyword *, const char *);
static int	 kw_list(struct parse *, struct config *,
		    const struct keyword *, const char *);
static int	 kw_item(struct parse *, const struct keyword *, void *,
		    size_t, const char *);
static int	 kw_number(struct parse *, const struct keyword *,
		    const char *, unsigned long long *);
static int	 kw_scalar(struct parse *, struct config *,
		    const struct keyword *, const char *);
static int	 kw_string(struct parse *, struct config *,
		    const struct keyword *, const char *);
static int	 kw_nexthop(struct parse *, struct config *,
		    const struct keyword *, const char *);
static int	 kw_endpoint(struct parse *, struct config *,
		    const struct keyword *, const char *);
static int	 milter_item(const char *, struct scan_endpoint *,
		    const char **);
static void	 kw_bounds(const struct keyword *, unsigned long long,
		    char *, size_t);
static void	 apply_defaults(struct parse *, struct config *);
static void	 default_hostname(struct parse *, struct config *);
static void	 check_semantics(struct parse *, struct config *);
static unsigned	 kw_line(struct parse *, const char *);
static int	 kw_bad(struct parse *, const char *);
static size_t	 list_count(const char *);
static const char *list_next(const char **, size_t *);
static int	 parse_ull(const char *, const char **,
		    unsigned long long *);
static int	 parse_filter_rule(const char *, struct filter_rule *);
static int	 valid_domain(const char *, size_t);
static int	 valid_user(const char *);
static int	 valid_path(const char *);
static char	*path_abs(const char *);
static int	 parse_smtp_hop(const char *, struct nexthop *,
		    const char **);
static int	 parse_maildir_hop(const char *, struct nexthop *,
		    const char **);
static int	 parse_error_hop(const char *, struct nexthop *,
		    const char **);
static void	 nexthop_clear(struct nexthop *);
static const char *const *kw_choices(const struct keyword *);
static void	 fmt_duration(unsigned long long, char *, size_t);
static void	 fmt_size(unsigned long long, char *, size_t);
typedef int	 map_value_fn(const char *, struct nexthop *, const char **);
struct map_load_arg {
	struct transport_map	*map;
	map_value_fn		*value;
	const char		*what;		/* "next hop", "policy" */
};
static void	 map_load(struct parse *, const char *, const char *,
		    struct transport_map *, map_value_fn *, const char *);
static void	 map_line(struct parse *, void *, const char *, size_t);
static int	 parse_tls_policy(const char *, struct nexthop *,
		    const char **);
static int	 map_entry_cmp(const void *, const void *);
static const struct nexthop *map_find(const struct transport_map *,
		    const char *, size_t);
static void	 transport_free(struct transport_map *);
static void	 auth_load(struct parse *, struct config *);
static void	 rcpt_load(struct parse *, struct config *);
static void	 rules_load(struct parse *, struct config *);
static void	 rcpt_load_file(struct parse *, struct config *,
		    const char *);
static int	 auth_read(struct parse *, const char *, const char *,
		    struct buf *);
static int	 prefix_match(const uint8_t *, const uint8_t *, unsigned);
static unsigned	 la_port(const struct listen_addr *);

#define OFF(f)	offsetof(struct config, f)
#define FIELD(c, kw, type)	((type *)(void *)((char *)(c) + (kw)->off))
#define COUNT(c, kw)		((size_t *)(void *)((char *)(c) + (kw)->noff))

/*
 * The keyword table, sorted by name (checked once at run time, looked
 * up by binary search).  Bounds: timeouts may be short for tests but
 * not zero; lists are capped so that a typo cannot ask for millions.
 */
static const struct keyword keywords[] = {
	{ "attachment_action",	KW_CHOICE,	OFF(attachment_action), 0,
	    "reject", 0, 0, 0 },
	{ "attachment_action_outbound", KW_CHOICE,
	    OFF(attachment_action_outbound), 0, "reject", 0, 0, 0 },
	{ "attachment_block",	KW_WORDS,	OFF(attachment_block),
	    OFF(nattachment_block), DEFAULT_ATTACHMENT_BLOCK, 0, 1000, 0 },
	{ "attachment_mismatch", KW_CHOICE,	OFF(attachment_mismatch), 0,
	    "reject", 0, 0, 0 },
	{ "auth_failure_delay",	KW_DURATION,	OFF(auth_failure_delay), 0,
	    "1s", 1, MINUTE, 0 },
	{ "auth_failure_limit",	KW_COUNT,	OFF(auth_failure_limit), 0,
	    "5", 1, 1000, 0 },
	{ "auth_failure_window", KW_DURATION,	OFF(auth_failure_window), 0,
	    "10m", 1, DAY, 0 },
	{ "auth_sender_map",	KW_PATH,	OFF(auth_sender_map_file), 0,
	    NULL, 0, 0, 0 },
	{ "auth_users_file",	KW_PATH,	OFF(auth_users_file), 0,
	    NULL, 0, 0, 0 },
	/* content scanners (docs/configuration.md "Virus scanning and
	   milters"); clamd's own StreamMaxLength defaults to 25M */
	{ "clamd",		KW_CHOICE,	OFF(clamd), 0,
	    "tempfail", 0, 0, 0 },
	{ "clamd_max_size",	KW_SIZE,	OFF(clamd_max_size), 0,
	    "25M", 1, 2 * GIB, 0 },
	{ "clamd_socket",	KW_ENDPOINT,	OFF(clamd_socket),
	    OFF(has_clamd_socket), NULL, 0, 0, 0 },
	{ "clamd_timeout",	KW_DURATION,	OFF(clamd_timeout), 0,
	    "1m", 1, HOUR, 0 },
	{ "command_filter",	KW_FILTER,	OFF(filter), OFF(nfilter),
	    DEFAULT_FILTER, 1, CONF_FILTER_MAX, 0 },
	{ "command_timeout",	KW_DURATION,	OFF(command_timeout), 0,
	    "5m", 1, DAY, 0 },
	/* smtp-in's threads that fsync and rename finished messages
	   (docs/configuration.md "Privileges and spool") */
	{ "commit_threads",	KW_COUNT,	OFF(commit_threads), 0,
	    "8", 1, 64, 0 },
	{ "conn_rate_limit",	KW_COUNT,	OFF(conn_rate_limit), 0,
	    "0", 0, 1000000, 0 },
	{ "content_filter",	KW_BOOL,	OFF(content_filter), 0,
	    "no", 0, 0, 0 },
	{ "content_notify",	KW_WORDS,	OFF(content_notify),
	    OFF(ncontent_notify), NULL, 0, 16, 0 },
	{ "content_rules",	KW_PATH,	OFF(content_rules_file), 0,
	    NULL, 0, 0, 0 },
	{ "data_timeout",	KW_DURATION,	OFF(data_timeout), 0,
	    "10m", 1, DAY, 0 },
	{ "delay_warning",	KW_DURATION,	OFF(delay_warning), 0,
	    "4h", 1, 100 * DAY, 0 },
	{ "dns_servers",	KW_ADDRS,	OFF(dns_servers),
	    OFF(ndns_servers), NULL, 0, 8, 53 },
	{ "dnsbl",		KW_DNSBL,	OFF(dnsbl), OFF(ndnsbl),
	    NULL, 0, DNSBL_LISTS_MAX, 0 },
	{ "dnsbl_threshold",	KW_COUNT,	OFF(dnsbl_threshold), 0,
	    "1", 1, 1000, 0 },
	{ "fcrdns",		KW_CHOICE,	OFF(fcrdns), 0,
	    "off", 0, 0, 0 },
	{ "greet_delay",	KW_DURATION,	OFF(greet_delay), 0,
	    "0s", 0, MINUTE, 0 },
	{ "greylist",		KW_BOOL,	OFF(greylist), 0,
	    "no", 0, 0, 0 },
	{ "greylist_auto_allow", KW_COUNT,	OFF(greylist_auto_allow), 0,
	    "5", 0, 1000, 0 },
	{ "greylist_delay",	KW_DURATION,	OFF(greylist_delay), 0,
	    "5m", 1, DAY, 0 },
	{ "greylist_max_age",	KW_DURATION,	OFF(greylist_max_age), 0,
	    "35d", 1, 365 * DAY, 0 },
	{ "greylist_retry_window", KW_DURATION, OFF(greylist_retry_window), 0,
	    "2d", 1, 30 * DAY, 0 },
	{ "header_from_check",	KW_BOOL,	OFF(header_from_check), 0,
	    "yes", 0, 0, 0 },
	{ "helo_checks",	KW_BOOL,	OFF(helo_checks), 0,
	    "yes", 0, 0, 0 },
	{ "helo_resolvable",	KW_BOOL,	OFF(helo_resolvable), 0,
	    "no", 0, 0, 0 },
	{ "hide_internal_hosts", KW_BOOL,	OFF(hide_internal_hosts), 0,
	    "yes", 0, 0, 0 },
	{ "hostname",		KW_HOSTNAME,	OFF(hostname), 0,
	    NULL, 0, 0, 0 },
	{ "listen",		KW_ADDRS,	OFF(listen), OFF(nlisten),
	    "0.0.0.0:25", 0, 16, 25 },
	{ "local_domains",	KW_DOMAINS,	OFF(local_domains),
	    OFF(nlocal_domains), NULL, 0, 10000, 0 },
	{ "log",		KW_LOG,		OFF(log_syslog), 0,
	    "stderr", 0, 0, 0 },
	{ "max_connections",	KW_COUNT,	OFF(max_connections), 0,
	    "1000", 1, 100000, 0 },
	{ "max_connections_per_ip", KW_COUNT, OFF(max_connections_per_ip), 0,
	    "20", 1, 100000, 0 },
	{ "max_errors",		KW_COUNT,	OFF(max_errors), 0,
	    "10", 1, 1000, 0 },
	{ "max_recipients",	KW_COUNT,	OFF(max_recipients), 0,
	    "100", 1, 100000, 0 },
	{ "message_size_limit",	KW_SIZE,	OFF(message_size_limit), 0,
	    "25M", 1, 2 * GIB, 0 },
	/* free space smtp-in keeps in the spool: MAIL gets 452 4.3.1
	   below it (RFC 3463 3.4); 0 = off.  100M leaves room for the
	   messages already under way (4 of 25M) and for the queue's
	   state rewrites and bounces, which need space after accepting */
	/* milter timeouts and default action as Postfix's (postconf.5) */
	{ "milter_command_timeout", KW_DURATION,
	    OFF(milter_command_timeout), 0, "30s", 1, HOUR, 0 },
	{ "milter_connect_timeout", KW_DURATION,
	    OFF(milter_connect_timeout), 0, "30s", 1, HOUR, 0 },
	{ "milter_content_timeout", KW_DURATION,
	    OFF(milter_content_timeout), 0, "5m", 1, HOUR, 0 },
	{ "milter_default_action", KW_CHOICE,
	    OFF(milter_default_action), 0, "tempfail", 0, 0, 0 },
	{ "milters",		KW_MILTERS,	OFF(milters), OFF(nmilters),
	    NULL, 0, CONF_MILTERS_MAX, 0 },
	{ "mime_malformed",	KW_CHOICE,	OFF(mime_malformed), 0,
	    "accept", 0, 0, 0 },
	{ "mime_max_depth",	KW_COUNT,	OFF(mime_max_depth), 0,
	    "20", 1, 64, 0 },
	{ "mime_max_header",	KW_SIZE,	OFF(mime_max_header), 0,
	    "256K", 1024, 16 * MIB, 0 },
	{ "mime_max_parts",	KW_COUNT,	OFF(mime_max_parts), 0,
	    "500", 1, 100000, 0 },
	{ "min_data_rate",	KW_COUNT,	OFF(min_data_rate), 0,
	    "500", 0, 1000000000, 0 },
	{ "min_free_space",	KW_SIZE,	OFF(min_free_space), 0,
	    "100M", 0, 1024 * GIB, 0 },
	{ "msg_rate_limit",	KW_COUNT,	OFF(msg_rate_limit), 0,
	    "0", 0, 1000000, 0 },
	{ "outbound_tls",	KW_OTLS,	OFF(outbound_tls), 0,
	    "may", 0, 0, 0 },
	{ "policy_dns_timeout",	KW_DURATION,	OFF(policy_dns_timeout), 0,
	    "5s", 1, MINUTE, 0 },
	{ "quarantine_lifetime", KW_DURATION,	OFF(quarantine_lifetime), 0,
	    "30d", 1, 3650 * DAY, 0 },
	{ "queue_lifetime",	KW_DURATION,	OFF(queue_lifetime), 0,
	    "5d", 1, 100 * DAY, 0 },
	{ "rate_window",	KW_DURATION,	OFF(rate_window), 0,
	    "1m", 1, DAY, 0 },
	{ "recipient_verify",	KW_CHOICE,	OFF(recipient_verify), 0,
	    "off", 0, 0, 0 },
	{ "recipient_verify_failure", KW_CHOICE,
	    OFF(recipient_verify_failure), 0, "tempfail", 0, 0, 0 },
	{ "recipient_verify_negative_ttl", KW_DURATION,
	    OFF(recipient_verify_negative_ttl), 0, "10m", 0, 7 * DAY, 0 },
	{ "recipient_verify_positive_ttl", KW_DURATION,
	    OFF(recipient_verify_positive_ttl), 0, "1h", 0, 30 * DAY, 0 },
	{ "recipient_verify_timeout", KW_DURATION,
	    OFF(recipient_verify_timeout), 0, "30s", 1, 10 * MINUTE, 0 },
	{ "reject_delay",	KW_DURATION,	OFF(reject_delay), 0,
	    "0s", 0, MINUTE, 0 },
	{ "relay_host",		KW_NEXTHOP,	OFF(relay_host),
	    OFF(has_relay_host), NULL, 0, 0, 0 },
	{ "relay_networks",	KW_CIDRS,	OFF(relay_networks),
	    OFF(nrelay_networks), "127.0.0.0/8 ::1", 0, 1000, 0 },
	{ "relay_recipients",	KW_PATH,	OFF(relay_recipients_file), 0,
	    NULL, 0, 0, 0 },
	{ "remote_smtp_port",	KW_PORT,	OFF(remote_smtp_port), 0,
	    "25", 1, 65535, 0 },
	{ "retry_max",		KW_DURATION,	OFF(retry_max), 0,
	    "1h", 1, 7 * DAY, 0 },
	{ "retry_min",		KW_DURATION,	OFF(retry_min), 0,
	    "5m", 1, DAY, 0 },
	{ "rhsbl",		KW_DNSBL,	OFF(rhsbl), OFF(nrhsbl),
	    NULL, 0, DNSBL_LISTS_MAX, 0 },
	/* seccomp on smtp-in and smtp-out; "no" only for leak checks */
	{ "sandbox",		KW_BOOL,	OFF(sandbox), 0,
	    "yes", 0, 0, 0 },
	{ "sender_resolvable",	KW_BOOL,	OFF(sender_resolvable), 0,
	    "no", 0, 0, 0 },
	{ "smtp_connect_timeout", KW_DURATION,	OFF(smtp_connect_timeout), 0,
	    "30s", 1, HOUR, 0 },
	{ "smtp_connection_cache_time", KW_DURATION,
	    OFF(smtp_connection_cache_time), 0, "2s", 1, HOUR, 0 },
	{ "smtp_connection_reuse_time", KW_DURATION,
	    OFF(smtp_connection_reuse_time), 0, "300s", 1, DAY, 0 },
	{ "smtp_data_done_timeout", KW_DURATION, OFF(smtp_data_done_timeout),
	    0, "10m", 1, DAY, 0 },
	{ "smtp_data_init_timeout", KW_DURATION, OFF(smtp_data_init_timeout),
	    0, "2m", 1, DAY, 0 },
	{ "smtp_data_xfer_timeout", KW_DURATION, OFF(smtp_data_xfer_timeout),
	    0, "3m", 1, DAY, 0 },
	{ "smtp_destination_concurrency_limit", KW_COUNT,
	    OFF(smtp_destination_concurrency_limit), 0, "20", 1, 10000, 0 },
	{ "smtp_helo_name",	KW_HOSTNAME,	OFF(smtp_helo_name), 0,
	    NULL, 0, 0, 0 },
	{ "smtp_helo_timeout",	KW_DURATION,	OFF(smtp_helo_timeout), 0,
	    "5m", 1, DAY, 0 },
	{ "smtp_mail_timeout",	KW_DURATION,	OFF(smtp_mail_timeout), 0,
	    "5m", 1, DAY, 0 },
	{ "smtp_max_connections", KW_COUNT,	OFF(smtp_max_connections), 0,
	    "100", 1, 100000, 0 },
	{ "smtp_rcpt_timeout",	KW_DURATION,	OFF(smtp_rcpt_timeout), 0,
	    "5m", 1, DAY, 0 },
	{ "smtps_listen",	KW_ADDRS,	OFF(smtps_listen),
	    OFF(nsmtps_listen), NULL, 0, 16, 465 },
	/* tag: Authentication-Results only; rejecting on fail breaks
	   forwarded mail (RFC 7208 9.2), so that is the admin's choice */
	{ "spf",		KW_CHOICE,	OFF(spf), 0,
	    "tag", 0, 0, 0 },
	{ "spool_dir",		KW_PATH,	OFF(spool_dir), 0,
	    "/var/spool/moat", 0, 0, 0 },
	{ "submission_listen",	KW_ADDRS,	OFF(submission_listen),
	    OFF(nsubmission_listen), NULL, 0, 16, 587 },
	{ "tls_ca_file",	KW_PATH,	OFF(tls_ca_file), 0,
	    NULL, 0, 0, 0 },
	{ "tls_cert_file",	KW_PATH,	OFF(tls_cert_file), 0,
	    NULL, 0, 0, 0 },
	{ "tls_key_file",	KW_PATH,	OFF(tls_key_file), 0,
	    NULL, 0, 0, 0 },
	{ "tls_policy_map",	KW_PATH,	OFF(tls_policy_map_file), 0,
	    NULL, 0, 0, 0 },
	{ "transport_map",	KW_PATH,	OFF(transport_map_file), 0,
	    NULL, 0, 0, 0 },
	{ "user",		KW_USER,	OFF(user), 0,
	    "moat", 0, 0, 0 },
	{ "virus_action",	KW_CHOICE,	OFF(virus_action), 0,
	    "reject", 0, 0, 0 },
};
#define NKEYWORDS	(sizeof(keywords) / sizeof(keywords[0]))

/* config_load - read file (at most CONF_FILE_MAX octets) and parse it */
struct config *
config_load(const char *file, FILE *errf)
{
	struct buf	 b;
	struct config	*c;
	const char	*why;

	buf_init(&b, CONF_FILE_MAX + 1);
	if (read_capped(file, &b, &why) == -1) {
		if (errf != NULL)
			fprintf(errf, "%s: %s\n", file, why);
		buf_free(&b);
		return NULL;
	}
	c = config_load_mem(file, b.data != NULL ? b.data : "", b.len, errf);
	buf_free(&b);
	return c;
}

/*
 * config_load_mem - parse len octets at p as the config file "name"
 * (used in messages and, made absolute, as c->file).  All errors go to
 * errf (may be NULL); NULL is returned if there was any.
 */
struct config *
config_load_mem(const char *name, const char *p, size_t len, FILE *errf)
{
	struct parse	 ps;
	struct config	*c;

	kw_check_sorted();
	memset(&ps, 0, sizeof(ps));
	ps.name = name;
	ps.errf = errf;
	ps.seen = xcalloc(NKEYWORDS, sizeof(*ps.seen));
	ps.bad = xcalloc(NKEYWORDS, sizeof(*ps.bad));
	c = xcalloc(1, sizeof(*c));
	if ((c->file = path_abs(name)) == NULL)
		conf_errl(&ps, 0, "cannot resolve path: %s", strerror(errno));
	if (len > CONF_FILE_MAX)
		conf_errl(&ps, 0, "larger than 1 MiB");
	else
		for_each_line(&ps, p, len, conf_line, c);
	if (!ps.stop) {
		apply_defaults(&ps, c);
		check_semantics(&ps, c);
	}
	if (!ps.stop && c->transport_map_file != NULL)
		map_load(&ps, "transport_map", c->transport_map_file,
		    &c->transport, config_parse_nexthop, "next hop");
	if (!ps.stop && c->tls_policy_map_file != NULL)
		map_load(&ps, "tls_policy_map", c->tls_policy_map_file,
		    &c->tls_policy, parse_tls_policy, "policy");
	if (!ps.stop && c->auth_users_file != NULL)
		auth_load(&ps, c);
	if (!ps.stop && c->relay_recipients_file != NULL)
		rcpt_load(&ps, c);
	if (!ps.stop && c->content_rules_file != NULL)
		rules_load(&ps, c);
	free(ps.seen);
	free(ps.bad);
	if (ps.nerr > 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* config_free - release everything config_load() allocated */
void
config_free(struct config *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	free(c->file);
	free(c->listen);
	free(c->submission_listen);
	free(c->smtps_listen);
	free(c->user);
	free(c->spool_dir);
	for (i = 0; i < c->nlocal_domains; i++)
		free(c->local_domains[i]);
	free(c->local_domains);
	free(c->relay_networks);
	free(c->transport_map_file);
	transport_free(&c->transport);
	nexthop_clear(&c->relay_host);
	free(c->dns_servers);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->tls_ca_file);
	free(c->tls_policy_map_file);
	transport_free(&c->tls_policy);
	free(c->auth_users_file);
	free(c->auth_sender_map_file);
	authdb_free(c->authdb);
	free(c->dnsbl);
	free(c->rhsbl);
	free(c->relay_recipients_file);
	rcptmap_free(c->relay_rcpts);
	for (i = 0; i < c->ncontent_notify; i++)
		free(c->content_notify[i]);
	free(c->content_notify);
	for (i = 0; i < c->nattachment_block; i++)
		free(c->attachment_block[i]);
	free(c->attachment_block);
	free(c->content_rules_file);
	content_rules_free(c->content_rules);
	free(c->milters);
	free(c);
}

/* config_filter_find - the command_filter rule for verb, any case */
const struct filter_rule *
config_filter_find(const struct config *c, const char *verb, size_t len)
{
	size_t	 i;

	if (len == 0 || len >= CONF_VERB_MAX)
		return NULL;
	for (i = 0; i < c->nfilter; i++)
		if (strlen(c->filter[i].verb) == len &&
		    mem_casecmp(c->filter[i].verb, verb, len) == 0)
			return &c->filter[i];
	return NULL;
}

/* config_is_local_domain - is domain one of local_domains? */
int
config_is_local_domain(const struct config *c, const char *domain,
    size_t len)
{
	size_t	 i;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0)
		return 0;
	for (i = 0; i < c->nlocal_domains; i++)
		if (strlen(c->local_domains[i]) == len &&
		    mem_casecmp(c->local_domains[i], domain, len) == 0)
			return 1;
	return 0;
}

/* config_in_relay_networks - may this client relay anywhere? */
int
config_in_relay_networks(const struct config *c, const struct sockaddr *sa)
{
	size_t	 i;

	for (i = 0; i < c->nrelay_networks; i++)
		if (cidr_match(&c->relay_networks[i], sa))
			return 1;
	return 0;
}

/*
 * transport_lookup - next hop for domain: the exact entry, then
 * ".parent" entries from the closest parent up, then "*".  The domain
 * is received data: it is copied (lower-cased, trailing dot dropped)
 * into a bounded buffer and never strlen'ed.
 */
const struct nexthop *
transport_lookup(const struct transport_map *m, const char *domain,
    size_t len)
{
	char			 key[CONF_HOSTNAME_MAX + 1];
	const struct nexthop	*hop;
	size_t			 i;

	if (m->n == 0)
		return NULL;
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len > 0 && len <= CONF_HOSTNAME_MAX) {
		memcpy(key, domain, len);
		mem_ascii_lower(key, len);
		if ((hop = map_find(m, key, len)) != NULL)
			return hop;
		/* ".example.test" entries cover subdomains only */
		for (i = 0; i < len; i++)
			if (key[i] == '.' &&
			    (hop = map_find(m, key + i, len - i)) != NULL)
				return hop;
	}
	return map_find(m, "*", 1);
}

/*
 * config_parse_duration - "30s", "5m", "4h", "5d", "1w" or a bare
 * number of seconds.  0 or -1.
 */
int
config_parse_duration(const char *s, time_t *out)
{
	unsigned long long	 v, mult = 1;
	const char		*end;

	if (parse_ull(s, &end, &v) == -1)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mult = MINUTE;
		break;
	case 'h':
		mult = HOUR;
		break;
	case 'd':
		mult = DAY;
		break;
	case 'w':
		mult = WEEK;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > DURATION_MAX / mult)
		return -1;
	*out = (time_t)(v * mult);
	return 0;
}

/*
 * config_parse_size - octets, or a number with K, M or G (powers of
 * 1024, either case).  0 or -1.
 */
int
config_parse_size(const char *s, size_t *out)
{
	unsigned long long	 v, mult = 1;
	const char		*end;

	if (parse_ull(s, &end, &v) == -1)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = KIB;
		break;
	case 'm':
	case 'M':
		mult = MIB;
		break;
	case 'g':
	case 'G':
		mult = GIB;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > SIZE_MAX / mult)
		return -1;
	*out = (size_t)(v * mult);
	return 0;
}

/*
 * config_parse_cidr - "10.0.0.0/8", "2001:db8::/32", or a single
 * address (/32, /128).  Host bits are cleared.  0 or -1.
 */
int
config_parse_cidr(const char *s, struct cidr *c)
{
	char			 a[INET6_ADDRSTRLEN];
	const char		*slash, *end;
	unsigned long long	 p;
	size_t			 alen;
	unsigned		 maxp, i;

	memset(c, 0, sizeof(*c));
	slash = strchr(s, '/');
	alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(a))
		return -1;
	memcpy(a, s, alen);
	a[alen] = '\0';
	if (inet_pton(AF_INET, a, c->addr) == 1) {
		c->family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, a, c->addr) == 1) {
		c->family = AF_INET6;
		maxp = 128;
	} else
		return -1;
	c->prefix = maxp;
	if (slash != NULL) {
		if (parse_ull(slash + 1, &end, &p) == -1 || *end != '\0' ||
		    p > maxp || end - (slash + 1) > 3)
			return -1;
		c->prefix = (unsigned)p;
	}
	/* clear host bits so that matching is a plain prefix compare */
	for (i = c->prefix; i < maxp; i++)
		c->addr[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
	return 0;
}

/*
 * config_parse_hostport - "host:port", "[v6]:port", "*:port" (= 0.0.0.0)
 * or a bare address with defport (0 = a port is required).  An
 * explicit port 0 is accepted: binding it lets the kernel choose.
 * Numeric addresses only: no DNS at config time.  la->text gets the normalised
 * form ("0.0.0.0:25", "[::1]:2525").  0 or -1.
 */
int
config_parse_hostport(const char *s, unsigned defport, struct listen_addr *la)
{
	char			 h[INET6_ADDRSTRLEN], nt[INET6_ADDRSTRLEN];
	const char		*colon, *ps = NULL, *end, *close;
	size_t			 hlen;
	unsigned long long	 port = defport;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&la->ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&la->ss;
	int			 r;

	memset(la, 0, sizeof(*la));
	if (s[0] == '[') {
		if ((close = strchr(s, ']')) == NULL)
			return -1;
		hlen = (size_t)(close - s - 1);
		s++;
		if (close[1] == ':')
			ps = close + 2;
		else if (close[1] != '\0')
			return -1;
	} else if ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		hlen = (size_t)(colon - s);
		ps = colon + 1;
	} else
		hlen = strlen(s);	/* IPv4, or IPv6 without a port */
	if (hlen == 0 || hlen >= sizeof(h))
		return -1;
	memcpy(h, s, hlen);
	h[hlen] = '\0';
	if (ps != NULL && (parse_ull(ps, &end, &port) == -1 ||
	    *end != '\0' || end - ps > 5))
		return -1;
	/* an explicit port 0 lets the kernel pick one (tests) */
	if ((ps == NULL && port == 0) || port > 65535)
		return -1;
	if (strcmp(h, "*") == 0)
		memcpy(h, "0.0.0.0", sizeof("0.0.0.0"));
	if (inet_pton(AF_INET, h, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		la->sslen = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, nt, sizeof(nt));
		r = snprintf(la->text, sizeof(la->text), "%s:%llu", nt, port);
	} else if (inet_pton(AF_INET6, h, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		la->sslen = sizeof(*sin6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, nt, sizeof(nt));
		r = snprintf(la->text, sizeof(la->text), "[%s]:%llu", nt,
		    port);
	} else
		return -1;
	if (r < 0 || (size_t)r >= sizeof(la->text))
		panic("config: listen text overflow");
	return 0;
}

/*
 * config_parse_nexthop - the right-hand side of a transport_map line:
 * "smtp", "smtp:host", "smtp:[host]", "smtp:[host]:port",
 * "maildir:TEMPLATE", "error:X.Y.Z text".  On -1, *why says what is
 * wrong and hop holds nothing to free.
 */
int
config_parse_nexthop(const char *s, struct nexthop *hop, const char **why)
{
	memset(hop, 0, sizeof(*hop));
	*why = NULL;
	if (strcmp(s, "smtp") == 0) {
		hop->kind = TR_SMTP_MX;
		return 0;
	}
	if (strncmp(s, "smtp:", 5) == 0)
		return parse_smtp_hop(s + 5, hop, why);
	if (strncmp(s, "maildir:", 8) == 0)
		return parse_maildir_hop(s + 8, hop, why);
	if (strncmp(s, "error:", 6) == 0)
		return parse_error_hop(s + 6, hop, why);
	*why = "unknown transport (smtp, maildir or error)";
	return -1;
}

/*
 * cidr_match - is the address inside the network?  An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d, what a dual-stack socket reports) counts as
 * the IPv4 address, and an IPv4 address matches an IPv6 network that
 * covers its mapped form.
 */
int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	uint8_t		 a[16];
	const uint8_t	*v6;
	int		 fam;

	memset(a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		fam = AF_INET;
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		v6 = ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)v6)) {
			fam = AF_INET;
			memcpy(a, v6 + 12, 4);
		} else {
			fam = AF_INET6;
			memcpy(a, v6, 16);
		}
	} else
		return 0;
	if (fam == c->family)
		return prefix_match(a, c->addr, c->prefix);
	if (fam == AF_INET && c->family == AF_INET6) {
		/* compare the mapped form ::ffff:a.b.c.d */
		memmove(a + 12, a, 4);
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		return prefix_match(a, c->addr, c->prefix);
	}
	return 0;
}

/* config_parse_endpoint - a scanner socket (see config.h) */
int
config_parse_endpoint(const char *s, struct scan_endpoint *e,
    const char **why)
{
	struct sockaddr_un	*sun = (struct sockaddr_un *)&e->ss;
	struct listen_addr	 la;
	char			 hp[CONF_ENDPOINT_TEXT];
	const char		*spec = s, *at;
	size_t			 len = strlen(s);
	int			 r;

	memset(e, 0, sizeof(*e));
	e->action = -1;
	*why = NULL;
	if (len >= sizeof(e->text)) {
		*why = "too long";
		return -1;
	}
	memcpy(e->text, s, len + 1);
	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0)
		spec = strchr(s, ':') + 1;
	if (spec[0] == '/') {
		if (strlen(spec) >= sizeof(sun->sun_path)) {
			*why = "socket path too long";
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, spec, strlen(spec) + 1);
		e->sslen = (socklen_t)sizeof(*sun);
		return 0;
	}
	if (spec != s) {
		*why = "unix: needs an absolute path";
		return -1;
	}
	if (strncmp(s, "inet:", 5) == 0)
		spec = s + 5;
	else if (strncmp(s, "inet6:", 6) == 0)
		spec = s + 6;
	/* sendmail's "inet:PORT@HOST" is "HOST:PORT" (brackets for v6) */
	if ((at = strchr(spec, '@')) != NULL) {
		r = snprintf(hp, sizeof(hp), strchr(at + 1, ':') != NULL ?
		    "[%s]:%.*s" : "%s:%.*s", at + 1, (int)(at - spec), spec);
		if (r < 0 || (size_t)r >= sizeof(hp)) {
			*why = "too long";
			return -1;
		}
		spec = hp;
	}
	if (config_parse_hostport(spec, 0, &la) == -1) {
		*why = "not unix:/path or inet:address:port";
		return -1;
	}
	memcpy(&e->ss, &la.ss, sizeof(e->ss));
	e->sslen = la.sslen;
	return 0;
}

/* ---- error reporting -------------------------------------------- */

static void
conf_verr(struct parse *ps, unsigned line, const char *fmt, va_list ap)
{
	if (ps->in_default)
		panic("config: built-in default does not parse");
	if (ps->stop)
		return;
	if (ps->errf != NULL) {
		if (line > 0)
			fprintf(ps->errf, "%s:%u: ", ps->name, line);
		else
			fprintf(ps->errf, "%s: ", ps->name);
		vfprintf(ps->errf, fmt, ap);
		fputc('\n', ps->errf);
	}
	if (++ps->nerr >= CONF_ERRORS_MAX) {
		if (ps->errf != NULL)
			fprintf(ps->errf, "%s: too many errors, stopping\n",
			    ps->name);
		ps->stop = 1;
	}
}

/* conf_err - report at the current line */
static void
conf_err(struct parse *ps, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	conf_verr(ps, ps->line, fmt, ap);
	va_end(ap);
}

/* conf_errl - report at a given line (0: the file as a whole) */
static void
conf_errl(struct parse *ps, unsigned line, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	conf_verr(ps, line, fmt, ap);
	va_end(ap);
}

/* quote - a value made safe to echo: controls, '"', '\\' escaped */
static const char *
quote(const char *s, char *out, size_t outsz)
{
	return log_sanitize(s, strlen(s), out, outsz);
}

/* ---- memory and files ------------------------------------------- */

static void *
xcalloc(size_t n, size_t size)
{
	void	*p;

	if ((p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size)) == NULL)
		fatal("config: calloc");
	return p;
}

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("config: strdup");
	return p;
}

/*
 * read_capped - whole file into b (whose max is CONF_FILE_MAX + 1, so
 * that reaching it means the file is too large).  0, or -1 with *why.
 */
static int
read_capped(const char *path, struct buf *b, const char **why)
{
	static char	 msg[128];
	struct stat	 st;
	ssize_t		 n;
	size_t		 room;
	int		 fd;

	/* O_NONBLOCK: a FIFO or device must not hang the master */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		goto fail;
	if (fstat(fd, &st) == -1) {
		close(fd);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*why = "not a regular file";
		return -1;
	}
	for (;;) {
		room = b->max - b->len < 8192 ? b->max - b->len : 8192;
		if (room == 0) {
			close(fd);
			*why = "larger than 1 MiB";
			return -1;
		}
		if (buf_reserve(b, room) == -1)
			fatal("config: read buffer");
		if ((n = read(fd, b->data + b->len, room)) == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			goto fail;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	close(fd);
	return 0;
fail:
	snprintf(msg, sizeof(msg), "cannot read: %s", strerror(errno));
	*why = msg;
	return -1;
}

/*
 * path_abs - malloc'd absolute form of path: relative paths are taken
 * against the working directory now, because roles chdir later.  A
 * leading "./" is dropped for readability.  NULL with errno on failure.
 */
static char *
path_abs(const char *path)
{
	struct buf	 b;
	char		*cwd;

	if (path[0] == '/')
		return xstrdup(path);
	if ((cwd = getcwd(NULL, 0)) == NULL)
		return NULL;
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	buf_init(&b, 0);
	if (buf_appends(&b, cwd) == -1 ||
	    (strcmp(cwd, "/") != 0 && buf_append(&b, "/", 1) == -1) ||
	    buf_appends(&b, path) == -1)
		fatal("config: path");
	free(cwd);
	return b.data;
}

/* ---- lines and keywords ----------------------------------------- */

/* for_each_line - call fn with each meaningful line, counting lines */
static void
for_each_line(struct parse *ps, const char *p, size_t len, line_fn *fn,
    void *arg)
{
	const char	*end = p + len, *nl;
	size_t		 llen;

	ps->line = 0;
	while (p < end && !ps->stop) {
		ps->line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (line_clean(ps, &p, &llen) == 1)
			fn(ps, arg, p, llen);
		p = nl != NULL ? nl + 1 : end;
	}
	ps->line = 0;
}

/*
 * line_clean - drop the comment ('#' at the start or after blank) and
 * surrounding blanks (space, tab, a CR from CRLF files).  Returns 1 if
 * something is left, 0 for a blank line, -1 (reported) for a NUL.
 */
static int
line_clean(struct parse *ps, const char **pp, size_t *lenp)
{
	const char	*p = *pp;
	size_t		 len = *lenp, i;

	if (memchr(p, '\0', len) != NULL) {
		conf_err(ps, "NUL byte in line");
		return -1;
	}
	for (i = 0; i < len; i++)
		if (p[i] == '#' && (i == 0 || p[i - 1] == ' ' ||
		    p[i - 1] == '\t')) {
			len = i;
			break;
		}
	while (len > 0 && strchr(" \t\r", p[len - 1]) != NULL)
		len--;
	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	*pp = p;
	*lenp = len;
	return len > 0;
}

/* conf_line - one "key = value" line */
static void
conf_line(struct parse *ps, void *arg, const char *p, size_t len)
{
	struct config		*c = arg;
	const struct keyword	*kw;
	char			 q[CONF_QUOTE_MAX], *key, *val;
	size_t			 klen, i;

	for (klen = 0; klen < len && p[klen] != '=' && p[klen] != ' ' &&
	    p[klen] != '\t'; klen++)
		;
	key = str_dup_len(p, klen);
	if (key == NULL)
		fatal("config: key");
	for (i = klen; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if (klen == 0)
		conf_err(ps, "missing key before '='");
	else if (i == len || p[i] != '=')
		conf_err(ps, "missing '=' after \"%s\"",
		    quote(key, q, sizeof(q)));
	else if ((kw = kw_find(key, klen)) == NULL)
		conf_err(ps, "unknown key \"%s\"", quote(key, q, sizeof(q)));
	else if (ps->seen[kw - keywords] != 0)
		conf_err(ps, "duplicate key \"%s\" (first set on line %u)",
		    kw->name, ps->seen[kw - keywords]);
	else {
		ps->seen[kw - keywords] = ps->line;
		for (i++; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		if ((val = str_dup_len(p + i, len - i)) == NULL)
			fatal("config: value");
		if (kw_set(ps, c, kw, val) == -1)
			ps->bad[kw - keywords] = 1;
		free(val);
	}
	free(key);
}

static const struct keyword *
kw_find(const char *key, size_t len)
{
	size_t	 lo = 0, hi = NKEYWORDS, mid;
	int	 r;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if ((r = strcmp(key, keywords[mid].name)) == 0)
			return strlen(keywords[mid].name) == len ?
			    &keywords[mid] : NULL;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* kw_check_sorted - kw_find's binary search needs the table sorted */
static void
kw_check_sorted(void)
{
	size_t	 i;

	for (i = 1; i < NKEYWORDS; i++)
		if (strcmp(keywords[i - 1].name, keywords[i].name) >= 0)
			panic("config: keyword table not sorted at %s",
			    keywords[i].name);
}

/* kw_set - parse val for kw into c, reporting errors.  0 or -1 */
static int
kw_set(struct parse *ps, struct config *c, const struct keyword *kw,
    const char *val)
{
	switch (kw->type) {
	case KW_ADDRS:
	case KW_CIDRS:
	case KW_DNSBL:
	case KW_DOMAINS:
	case KW_FILTER:
	case KW_MILTERS:
	case KW_WORDS:
		return kw_list(ps, c, kw, val);
	case KW_BOOL:
	case KW_CHOICE:
	case KW_COUNT:
	case KW_DURATION:
	case KW_LOG:
	case KW_OTLS:
	case KW_PORT:
	case KW_SIZE:
		if (*val == '\0')
			break;
		return kw_scalar(ps, c, kw, val);
	case KW_HOSTNAME:
	case KW_PATH:
	case KW_USER:
		if (*val == '\0')
			break;
		return kw_string(ps, c, kw, val);
	case KW_NEXTHOP:
		if (*val == '\0')
			break;
		return kw_nexthop(ps, c, kw, val);
	case KW_ENDPOINT:
		if (*val == '\0')
			break;
		return kw_endpoint(ps, c, kw, val);
	}
	conf_err(ps, "missing value for %s", kw->name);
	return -1;
}

/*
 * kw_list - a list separated by commas and/or blanks.  The items are
 * counted first so the array is allocated once, at its final size.
 * Every bad item is reported.  An empty list is allowed (e.g. an empty
 * relay_networks: nobody relays) except where min says otherwise.
 */
static int
kw_list(struct parse *ps, struct config *c, const struct keyword *kw,
    const char *val)
{
	char		 tok[CONF_TOKEN_MAX], q[CONF_QUOTE_MAX];
	const char	*p = val, *t;
	size_t		 n, i = 0, tlen, elsize;
	void		*arr;
	int		 rc = 0;

	n = list_count(val);
	if (n < kw->min || n > kw->max) {
		conf_err(ps, "%s needs %llu to %llu entries, not %zu",
		    kw->name, kw->min, kw->max, n);
		return -1;
	}
	switch (kw->type) {
	case KW_ADDRS:
		elsize = sizeof(struct listen_addr);
		break;
	case KW_CIDRS:
		elsize = sizeof(struct cidr);
		break;
	case KW_DOMAINS:
	case KW_WORDS:
		elsize = sizeof(char *);
		break;
	case KW_DNSBL:
		elsize = sizeof(struct dnsbl);
		break;
	case KW_MILTERS:
		elsize = sizeof(struct scan_endpoint);
		break;
	default:
		elsize = 0;	/* KW_FILTER: fixed array in the struct */
		break;
	}
	arr = elsize != 0 ? xcalloc(n, elsize) : FIELD(c, kw, void);
	/* store through the field's own type (strict aliasing) */
	if (kw->type == KW_ADDRS)
		*FIELD(c, kw, struct listen_addr *) = arr;
	else if (kw->type == KW_CIDRS)
		*FIELD(c, kw, struct cidr *) = arr;
	else if (kw->type == KW_DOMAINS || kw->type == KW_WORDS)
		*FIELD(c, kw, char **) = arr;
	else if (kw->type == KW_DNSBL)
		*FIELD(c, kw, struct dnsbl *) = arr;
	else if (kw->type == KW_MILTERS)
		*FIELD(c, kw, struct scan_endpoint *) = arr;
	while ((t = list_next(&p, &tlen)) != NULL) {
		if (tlen >= sizeof(tok)) {
			memcpy(tok, t, sizeof(tok) - 1);
			tok[sizeof(tok) - 1] = '\0';
			conf_err(ps, "entry \"%s\" in %s is too long",
			    quote(tok, q, sizeof(q)), kw->name);
			rc = -1;
			continue;
		}
		memcpy(tok, t, tlen);
		tok[tlen] = '\0';
		if (kw_item(ps, kw, arr, i, tok) == -1)
			rc = -1;
		else
			*COUNT(c, kw) = ++i;
	}
	return rc;
}

/* kw_item - one list item into arr[i]; 0 or -1 (reported) */
static int
kw_item(struct parse *ps, const struct keyword *kw, void *arr, size_t i,
    const char *tok)
{
	char			 q[CONF_QUOTE_MAX];
	struct filter_rule	*fr = arr;
	struct listen_addr	*la;
	char			**dv = arr;
	const char		*why;
	size_t			 j, len = strlen(tok);

	switch (kw->type) {
	case KW_ADDRS:
		/* a resolver on "port 0" is a typo, not a wish */
		la = (struct listen_addr *)arr + i;
		if (config_parse_hostport(tok, kw->defport, la) == 0 &&
		    (strcmp(kw->name, "dns_servers") != 0 ||
		    la_port(la) != 0))
			return 0;
		conf_err(ps, "bad address \"%s\" in %s",
		    quote(tok, q, sizeof(q)), kw->name);
		return -1;
	case KW_CIDRS:
		if (config_parse_cidr(tok, (struct cidr *)arr + i) == 0)
			return 0;
		conf_err(ps, "bad CIDR \"%s\" in %s",
		    quote(tok, q, sizeof(q)), kw->name);
		return -1;
	case KW_DOMAINS:
		if (len > 1 && tok[len - 1] == '.')
			len--;
		if (!valid_domain(tok, len)) {
			conf_err(ps, "bad domain \"%s\" in %s",
			    quote(tok, q, sizeof(q)), kw->name);
			return -1;
		}
		if ((dv[i] = str_dup_len(tok, len)) == NULL)
			fatal("config: domain");
		mem_ascii_lower(dv[i], len);
		return 0;
	case KW_WORDS:
		for (j = 0; j < len; j++)
			if ((unsigned char)tok[j] <= ' ' ||
			    (unsigned char)tok[j] >= 0x7f) {
				conf_err(ps, "bad word \"%s\" in %s",
				    quote(tok, q, sizeof(q)), kw->name);
				return -1;
			}
		if ((dv[i] = str_dup_len(tok, len)) == NULL)
			fatal("config: word");
		mem_ascii_lower(dv[i], len);
		return 0;
	case KW_DNSBL:
		if (dnsbl_parse(tok, len, (struct dnsbl *)arr + i, &why) == 0)
			return 0;
		conf_err(ps, "bad list \"%s\" in %s: %s",
		    quote(tok, q, sizeof(q)), kw->name, why);
		return -1;
	case KW_MILTERS:
		if (milter_item(tok, (struct scan_endpoint *)arr + i,
		    &why) == 0)
			return 0;
		conf_err(ps, "bad milter \"%s\" in %s: %s",
		    quote(tok, q, sizeof(q)), kw->name, why);
		return -1;
	case KW_FILTER:
		if (parse_filter_rule(tok, &fr[i]) == -1) {
			conf_err(ps, "bad command_filter entry \"%s\" "
			    "(VERB:MAXLEN, VERB letters only, MAXLEN 0..%d)",
			    quote(tok, q, sizeof(q)), CONF_FILTER_ARG_MAX);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(fr[j].verb, fr[i].verb) == 0) {
				conf_err(ps, "duplicate verb %s in "
				    "command_filter", fr[i].verb);
				return -1;
			}
		return 0;
	default:
		panic("config: kw_item type %d", (int)kw->type);
	}
}

/*
 * kw_number - parse val as kw's kind of number and check its bounds;
 * 0 or -1 (reported).
 */
static int
kw_number(struct parse *ps, const struct keyword *kw, const char *val,
    unsigned long long *v)
{
	char		 q[CONF_QUOTE_MAX], lo[32], hi[32];
	const char	*what, *end;
	time_t		 t = 0;
	size_t		 sz = 0;
	int		 r;

	switch (kw->type) {
	case KW_DURATION:
		what = "duration";
		r = config_parse_duration(val, &t);
		*v = (unsigned long long)t;
		break;
	case KW_SIZE:
		what = "size";
		r = config_parse_size(val, &sz);
		*v = sz;
		break;
	default:
		what = kw->type == KW_PORT ? "port" : "number";
		r = parse_ull(val, &end, v) == 0 && *end == '\0' ? 0 : -1;
		break;
	}
	if (r == -1) {
		conf_err(ps, "bad %s \"%s\" for %s", what,
		    quote(val, q, sizeof(q)), kw->name);
		return -1;
	}
	if (*v < kw->min || *v > kw->max) {
		kw_bounds(kw, kw->min, lo, sizeof(lo));
		kw_bounds(kw, kw->max, hi, sizeof(hi));
		conf_err(ps, "%s \"%s\" out of range (%s..%s)", kw->name,
		    quote(val, q, sizeof(q)), lo, hi);
		return -1;
	}
	return 0;
}

/* kw_scalar - numbers, durations, sizes, ports and the enumerations */
static int
kw_scalar(struct parse *ps, struct config *c, const struct keyword *kw,
    const char *val)
{
	char			 q[CONF_QUOTE_MAX];
	const char *const	*ch;
	unsigned long long	 v;

	switch (kw->type) {
	case KW_CHOICE:
		for (ch = kw_choices(kw); *ch != NULL; ch++)
			if (strcmp(val, *ch) == 0) {
				*FIELD(c, kw, int) = (int)(ch - kw_choices(kw));
				return 0;
			}
		conf_err(ps, "bad value \"%s\" for %s", quote(val, q,
		    sizeof(q)), kw->name);
		return -1;
	case KW_BOOL:
		if (strcmp(val, "yes") == 0 || strcmp(val, "no") == 0) {
			*FIELD(c, kw, int) = val[0] == 'y';
			return 0;
		}
		conf_err(ps, "bad value \"%s\" for %s (yes or no)",
		    quote(val, q, sizeof(q)), kw->name);
		return -1;
	case KW_LOG:
		if (strcmp(val, "stderr") == 0 || strcmp(val, "syslog") == 0) {
			*FIELD(c, kw, int) = val[1] == 'y';
			return 0;
		}
		conf_err(ps, "bad value \"%s\" for log (stderr or syslog)",
		    quote(val, q, sizeof(q)));
		return -1;
	case KW_OTLS:
		if (strcmp(val, "may") == 0)
			*FIELD(c, kw, enum outbound_tls) = OTLS_MAY;
		else if (strcmp(val, "encrypt") == 0)
			*FIELD(c, kw, enum outbound_tls) = OTLS_ENCRYPT;
		else if (strcmp(val, "verify") == 0)
			*FIELD(c, kw, enum outbound_tls) = OTLS_VERIFY;
		else {
			conf_err(ps, "bad value \"%s\" for outbound_tls "
			    "(may, encrypt or verify)", quote(val, q,
			    sizeof(q)));
			return -1;
		}
		return 0;
	default:
		break;
	}
	if (kw_number(ps, kw, val, &v) == -1)
		return -1;
	if (kw->type == KW_DURATION)
		*FIELD(c, kw, time_t) = (time_t)v;
	else if (kw->type == KW_PORT)
		*FIELD(c, kw, unsigned) = (unsigned)v;
	else
		*FIELD(c, kw, size_t) = (size_t)v;
	return 0;
}

/* kw_string - hostname, user name and paths */
static int
kw_string(struct parse *ps, struct config *c, const struct keyword *kw,
    const char *val)
{
	char	 q[CONF_QUOTE_MAX];
	size_t	 len = strlen(val);
	char	*abs;

	switch (kw->type) {
	case KW_HOSTNAME:
		if (len > 1 && val[len - 1] == '.')
			len--;
		if (!valid_domain(val, len)) {
			conf_err(ps, "bad hostname \"%s\" for hostname",
			    quote(val, q, sizeof(q)));
			return -1;
		}
		memcpy(FIELD(c, kw, char), val, len);
		FIELD(c, kw, char)[len] = '\0';
		return 0;
	case KW_USER:
		if (!valid_user(val)) {
			conf_err(ps, "bad user name \"%s\" for user",
			    quote(val, q, sizeof(q)));
			return -1;
		}
		*FIELD(c, kw, char *) = xstrdup(val);
		return 0;
	default:
		if (!valid_path(val)) {
			conf_err(ps, "bad path \"%s\" for %s",
			    quote(val, q, sizeof(q)), kw->name);
			return -1;
		}
		if ((abs = path_abs(val)) == NULL) {
			conf_err(ps, "cannot resolve path for %s: %s",
			    kw->name, strerror(errno));
			return -1;
		}
		*FIELD(c, kw, char *) = abs;
		return 0;
	}
}

/*
 * kw_nexthop - relay_host: an SMTP next hop, with or without "smtp:"
 * ("[host]:port", "[host]", "host").  MX lookup of the recipient
 * domain makes no sense for a smarthost, so plain "smtp" is refused.
 */
static int
kw_nexthop(struct parse *ps, struct config *c, const struct keyword *kw,
    const char *val)
{
	char		 q[CONF_QUOTE_MAX];
	struct nexthop	*hop = FIELD(c, kw, struct nexthop);
	const char	*why;
	int		 r;

	if (strncmp(val, "smtp:", 5) == 0)
		r = parse_smtp_hop(val + 5, hop, &why);
	else if (strcmp(val, "smtp") == 0 || strncmp(val, "maildir:", 8) == 0 ||
	    strncmp(val, "error:", 6) == 0) {
		why = "relay_host must be an SMTP host ([host]:port or host)";
		r = -1;
	} else
		r = parse_smtp_hop(val, hop, &why);
	if (r == -1) {
		conf_err(ps, "bad next hop \"%s\" for %s: %s",
		    quote(val, q, sizeof(q)), kw->name, why);
		return -1;
	}
	*(int *)(void *)((char *)c + kw->noff) = 1;
	return 0;
}

/*
 * kw_choices - the words of a KW_CHOICE key, in the order of its enum
 * (config.h), NULL-terminated
 */
static const char *const *
kw_choices(const struct keyword *kw)
{
	static const char *const fcrdns[] = { "off", "warn", "reject", NULL };
	/* the orders of enum spf_mode, rcpt_verify_mode, rv_failure */
	static const char *const spf[] = { "off", "tag", "reject_fail", NULL };
	static const char *const rverify[] = { "off", "callout", NULL };
	static const char *const rvfail[] = { "tempfail", "accept", NULL };
	/* the orders of enum conf_clamd and enum conf_milter_action */
	static const char *const clamd[] = { "off", "tempfail", "accept",
	    NULL };
	static const char *const milter[] = { "accept", "tempfail",
	    "reject", NULL };
	/* the order of enum conf_virus_action */
	static const char *const virus[] = { "reject", "quarantine",
	    "discard", NULL };

	if (strcmp(kw->name, "clamd") == 0)
		return clamd;
	if (strcmp(kw->name, "milter_default_action") == 0)
		return milter;
	if (strcmp(kw->name, "virus_action") == 0)
		return virus;

	if (strncmp(kw->name, "attachment_", 11) == 0 ||
	    strcmp(kw->name, "mime_malformed") == 0)
		return content_action_names;
	if (strcmp(kw->name, "fcrdns") == 0)
		return fcrdns;
	if (strcmp(kw->name, "spf") == 0)
		return spf;
	if (strcmp(kw->name, "recipient_verify") == 0)
		return rverify;
	if (strcmp(kw->name, "recipient_verify_failure") == 0)
		return rvfail;
	panic("config: no choices for %s", kw->name);
}

/* kw_bounds - a bound written the way the user would write it */
static void
kw_bounds(const struct keyword *kw, unsigned long long v, char *out,
    size_t outsz)
{
	if (kw->type == KW_DURATION)
		fmt_duration(v, out, outsz);
	else if (kw->type == KW_SIZE)
		fmt_size(v, out, outsz);
	else
		snprintf(out, outsz, "%llu", v);
}

/*
 * apply_defaults - every key the file did not set gets its default,
 * through the same parser (a failure there panics: see conf_verr).
 */
static void
apply_defaults(struct parse *ps, struct config *c)
{
	size_t	 i;

	ps->in_default = 1;
	for (i = 0; i < NKEYWORDS; i++)
		if (ps->seen[i] == 0 && keywords[i].def != NULL)
			kw_set(ps, c, &keywords[i], keywords[i].def);
	ps->in_default = 0;
	if (ps->seen[kw_find("hostname", 8) - keywords] == 0)
		default_hostname(ps, c);
}

/*
 * default_hostname - the system's name, even without a dot (a
 * development box); it must still be a valid host name because it goes
 * into the banner, EHLO and Received.
 */
static void
default_hostname(struct parse *ps, struct config *c)
{
	char	 h[CONF_HOSTNAME_MAX + 2], q[CONF_QUOTE_MAX];
	size_t	 len;

	memset(h, 0, sizeof(h));
	if (gethostname(h, sizeof(h) - 1) == -1) {
		conf_errl(ps, 0, "cannot get the system host name (%s); "
		    "set hostname", strerror(errno));
		return;
	}
	len = strlen(h);
	if (len > 1 && h[len - 1] == '.')
		len--;
	if (!valid_domain(h, len)) {
		conf_errl(ps, 0, "system host name \"%s\" is not a valid "
		    "host name; set hostname", quote(h, q, sizeof(q)));
		return;
	}
	memcpy(c->hostname, h, len);
	c->hostname[len] = '\0';
}

/* kw_line - the line a key was set on, 0 if it has its default */
static unsigned
kw_line(struct parse *ps, const char *name)
{
	return ps->seen[kw_find(name, strlen(name)) - keywords];
}

/* kw_bad - did the key's value fail to parse (no further checks)? */
static int
kw_bad(struct parse *ps, const char *name)
{
	return ps->bad[kw_find(name, strlen(name)) - keywords];
}

/*
 * check_semantics - rules between keys, reported at the line of the
 * key set last (the one the user most likely has to change).
 */
static void
check_semantics(struct parse *ps, struct config *c)
{
	struct addr	 ad;
	const char	*why = NULL;
	char		 a[32], b[32];
	unsigned	 l1, l2;
	size_t		 i;

	for (i = 0; i < c->ncontent_notify; i++)
		if (addr_parse_mailbox(c->content_notify[i],
		    strlen(c->content_notify[i]), 0, &ad, &why) == -1 ||
		    ad.domain == NULL)
			conf_errl(ps, kw_line(ps, "content_notify"),
			    "bad address \"%s\" in content_notify: %s",
			    c->content_notify[i], ad.domain == NULL &&
			    why == NULL ? "no domain" : why);
	l1 = kw_line(ps, "retry_min");
	l2 = kw_line(ps, "retry_max");
	if (!kw_bad(ps, "retry_min") && !kw_bad(ps, "retry_max") &&
	    c->retry_min > c->retry_max) {
		fmt_duration((unsigned long long)c->retry_min, a, sizeof(a));
		fmt_duration((unsigned long long)c->retry_max, b, sizeof(b));
		conf_errl(ps, l1 > l2 ? l1 : l2, "retry_min %s is greater "
		    "than retry_max %s", a, b);
	}
	l1 = kw_line(ps, "tls_cert_file");
	l2 = kw_line(ps, "tls_key_file");
	if ((l1 != 0) != (l2 != 0))
		conf_errl(ps, l1 > l2 ? l1 : l2, "tls_cert_file and "
		    "tls_key_file go together");
	/*
	 * RFC 8314 3.3: implicit TLS cannot work without a certificate.
	 * (A submission port without one is useless but safe: MAIL needs
	 * STARTTLS and AUTH first, so it is not refused here.)
	 */
	if (c->nsmtps_listen > 0 && c->tls_cert_file == NULL)
		conf_errl(ps, kw_line(ps, "smtps_listen"), "smtps_listen "
		    "needs tls_cert_file and tls_key_file");
	if (c->auth_sender_map_file != NULL && c->auth_users_file == NULL)
		conf_errl(ps, kw_line(ps, "auth_sender_map"), "auth_sender_map "
		    "needs auth_users_file");
	if (!kw_bad(ps, "listen") && !kw_bad(ps, "submission_listen") &&
	    !kw_bad(ps, "smtps_listen") && c->nlisten == 0 &&
	    c->nsubmission_listen == 0 && c->nsmtps_listen == 0)
		conf_errl(ps, kw_line(ps, "listen"), "no listener: set "
		    "listen, submission_listen or smtps_listen");
}

/* ---- lexical helpers -------------------------------------------- */

/* list_count - number of items separated by commas and/or blanks */
static size_t
list_count(const char *s)
{
	size_t	 n = 0, len;

	while (list_next(&s, &len) != NULL)
		n++;
	return n;
}

/* list_next - next item of a list (not NUL-terminated) or NULL */
static const char *
list_next(const char **pp, size_t *lenp)
{
	const char	*p = *pp + strspn(*pp, LIST_SEP);

	if (*p == '\0') {
		*pp = p;
		return NULL;
	}
	*lenp = strcspn(p, LIST_SEP);
	*pp = p + *lenp;
	return p;
}

/* parse_ull - leading decimal digits (at least one, no sign); 0 or -1 */
static int
parse_ull(const char *s, const char **end, unsigned long long *v)
{
	unsigned long long	 n = 0;
	unsigned		 d;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		d = (unsigned)(*s - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*end = s;
	*v = n;
	return 0;
}

/* parse_filter_rule - "VERB:MAXLEN" into r (verb upper-cased) */
static int
parse_filter_rule(const char *s, struct filter_rule *r)
{
	const char		*colon, *end;
	unsigned long long	 max;
	size_t			 i, vlen;

	if ((colon = strchr(s, ':')) == NULL)
		return -1;
	vlen = (size_t)(colon - s);
	if (vlen == 0 || vlen >= CONF_VERB_MAX)
		return -1;
	for (i = 0; i < vlen; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return -1;
		r->verb[i] = (char)(s[i] >= 'a' ? s[i] - 32 : s[i]);
	}
	r->verb[vlen] = '\0';
	if (parse_ull(colon + 1, &end, &max) == -1 || *end != '\0' ||
	    max > CONF_FILTER_ARG_MAX)
		return -1;
	r->maxarg = (size_t)max;
	return 0;
}

/*
 * valid_domain - RFC 1035 2.3.1 / RFC 1123 2.1 host name syntax:
 * labels of letters, digits and inner hyphens, 1..63 octets each,
 * at most 253 in all, no empty label (so no leading or double dot).
 */
static int
valid_domain(const char *p, size_t len)
{
	size_t	 i, lab = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (p[i] == '.') {
			if (lab == 0 || p[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= 'A' && p[i] <= 'Z') ||
		    (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
			return 0;
		if (p[i] == '-' && lab == 0)
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && p[len - 1] != '-';
}

/* valid_user - a login name as useradd(8) would take it */
static int
valid_user(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
		    (i > 0 && ((s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || (s[i] >= 'A' && s[i] <= 'Z'))))
			continue;
		return 0;
	}
	return i > 0 && i <= CONF_USER_MAX;
}

/* valid_path - no control characters (they would corrupt logs) */
static int
valid_path(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* ---- next hops -------------------------------------------------- */

/*
 * parse_smtp_hop - "host" (MX lookup of host), "[host]" or
 * "[host]:port" (that host, no MX; RFC 5321 5.1 lets brackets suppress
 * the MX lookup, as in Postfix).  host inside brackets may be an IPv4
 * or IPv6 address.
 */
static int
parse_smtp_hop(const char *s, struct nexthop *hop, const char **why)
{
	char			 h[CONF_HOSTNAME_MAX + 1];
	const char		*close, *end;
	unsigned char		 a[16];
	unsigned long long	 port = 0;
	size_t			 len;

	memset(hop, 0, sizeof(*hop));
	if (s[0] == '[') {
		if ((close = strchr(s, ']')) == NULL) {
			*why = "missing ']'";
			return -1;
		}
		len = (size_t)(close - s - 1);
		s++;
		if (close[1] == ':') {
			if (parse_ull(close + 2, &end, &port) == -1 ||
			    *end != '\0' || port == 0 || port > 65535) {
				*why = "bad port";
				return -1;
			}
		} else if (close[1] != '\0') {
			*why = "junk after ']'";
			return -1;
		}
		hop->kind = TR_SMTP_FIXED;
	} else {
		if (strchr(s, ':') != NULL) {
			*why = "a port needs brackets: [host]:port";
			return -1;
		}
		len = strlen(s);
		hop->kind = TR_SMTP_HOST;
	}
	if (len == 0 || len > CONF_HOSTNAME_MAX) {
		*why = "bad host";
		return -1;
	}
	memcpy(h, s, len);
	h[len] = '\0';
	if (inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1) {
		if (hop->kind == TR_SMTP_HOST) {
			*why = "an address needs brackets: [address]";
			return -1;
		}
	} else if (!valid_domain(h, len)) {
		*why = "bad host name";
		return -1;
	}
	mem_ascii_lower(h, len);
	hop->host = xstrdup(h);
	hop->port = (unsigned)port;
	return 0;
}

/*
 * parse_maildir_hop - a path template: %d = domain, %u = local part,
 * %% = '%'.  Without %u every recipient lands in the same maildir,
 * which must then be said with a trailing '/' ("one directory meant
 * for all"), so that a forgotten %u is caught.
 */
static int
parse_maildir_hop(const char *s, struct nexthop *hop, const char **why)
{
	const char	*p;
	int		 has_u = 0;

	if (*s == '\0') {
		*why = "missing path";
		return -1;
	}
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			*why = "blank or control character in path";
			return -1;
		}
		if (*p != '%')
			continue;
		p++;
		if (*p == 'u')
			has_u = 1;
		else if (*p != 'd' && *p != '%') {
			*why = "bad % escape (only %d, %u and %%)";
			return -1;
		}
	}
	if (!has_u && p[-1] != '/') {
		*why = "template needs %u, or a trailing '/' for one "
		    "maildir for all";
		return -1;
	}
	if ((hop->path = path_abs(s)) == NULL) {
		*why = "cannot resolve relative path";
		return -1;
	}
	hop->kind = TR_MAILDIR;
	return 0;
}

/*
 * parse_error_hop - "X.Y.Z text": an RFC 3463 status, class 4 (reply
 * 450) or 5 (reply 550), then an optional text of printable ASCII kept
 * short enough for one reply line (RFC 5321 4.5.3.1.5: 512 octets).
 */
static int
parse_error_hop(const char *s, struct nexthop *hop, const char **why)
{
	const char		*p = s, *t;
	unsigned long long	 n;
	struct buf		 b;
	int			 i;

	*why = "bad status: 4.X.Y or 5.X.Y";
	if ((*p != '4' && *p != '5') || p[1] != '.')
		return -1;
	p += 2;
	for (i = 0; i < 2; i++) {
		t = p;
		if (parse_ull(t, &p, &n) == -1 || p - t > 3)
			return -1;
		if (i == 0 && *p++ != '.')
			return -1;
	}
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return -1;
	t = p + strspn(p, " \t");
	for (*why = NULL; *t != '\0' && *why == NULL; t++)
		if ((unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			*why = "control or non-ASCII character in text";
	if (*why == NULL && strlen(p) > CONF_ERRTEXT_MAX)
		*why = "text too long";
	if (*why != NULL)
		return -1;
	buf_init(&b, 0);
	t = p + strspn(p, " \t");
	if (buf_append(&b, s, (size_t)(p - s)) == -1 ||
	    (*t != '\0' && buf_appendf(&b, " %s", t) == -1))
		fatal("config: error text");
	hop->kind = TR_ERROR;
	hop->text = b.data;
	hop->code = s[0] == '4' ? 450 : 550;
	return 0;
}

static void
nexthop_clear(struct nexthop *hop)
{
	free(hop->host);
	free(hop->path);
	free(hop->text);
	memset(hop, 0, sizeof(*hop));
}

/* fmt_duration - seconds in the largest unit that divides them */
static void
fmt_duration(unsigned long long v, char *out, size_t outsz)
{
	if (v != 0 && v % DAY == 0)
		snprintf(out, outsz, "%llud", v / DAY);
	else if (v != 0 && v % HOUR == 0)
		snprintf(out, outsz, "%lluh", v / HOUR);
	else if (v != 0 && v % MINUTE == 0)
		snprintf(out, outsz, "%llum", v / MINUTE);
	else
		snprintf(out, outsz, "%llus", v);
}

/* fmt_size - octets in the largest suffix that divides them */
static void
fmt_size(unsigned long long v, char *out, size_t outsz)
{
	if (v != 0 && v % GIB == 0)
		snprintf(out, outsz, "%lluG", v / GIB);
	else if (v != 0 && v % MIB == 0)
		snprintf(out, outsz, "%lluM", v / MIB);
	else if (v != 0 && v % KIB == 0)
		snprintf(out, outsz, "%lluK", v / KIB);
	else
		snprintf(out, outsz, "%llu", v);
}

/* ---- transport map ---------------------------------------------- */

/*
 * map_load - read a domain map (transport_map, tls_policy_map) from
 * file into m, each right-hand side parsed by value.  Errors are
 * reported at the key's line of the config when the file cannot be
 * read, else at the file's own lines.  The entries are sorted for
 * binary search; duplicate domains are errors.
 */
static void
map_load(struct parse *ps, const char *key, const char *file,
    struct transport_map *m, map_value_fn *value, const char *what)
{
	struct map_load_arg	 a = { m, value, what };
	struct buf		 b;
	const char		*why, *saved = ps->name;
	size_t			 i;

	buf_init(&b, CONF_FILE_MAX + 1);
	if (read_capped(file, &b, &why) == -1) {
		conf_errl(ps, kw_line(ps, key), "%s %s: %s", key, file, why);
		buf_free(&b);
		return;
	}
	ps->name = file;
	for_each_line(ps, b.data != NULL ? b.data : "", b.len, map_line, &a);
	buf_free(&b);
	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), map_entry_cmp);
	for (i = 1; i < m->n; i++)
		if (strcmp(m->v[i - 1].pattern, m->v[i].pattern) == 0)
			conf_errl(ps, m->v[i].line, "duplicate domain \"%s\" "
			    "(first on line %u)", m->v[i].pattern,
			    m->v[i - 1].line);
	ps->name = saved;
}

/*
 * parse_tls_policy - the right-hand side of a tls_policy_map line:
 * may, encrypt or verify, kept in hop->code
 */
static int
parse_tls_policy(const char *s, struct nexthop *hop, const char **why)
{
	memset(hop, 0, sizeof(*hop));
	hop->kind = TR_ERROR;	/* unused; nexthop_clear() frees nothing */
	if (strcmp(s, "may") == 0)
		hop->code = OTLS_MAY;
	else if (strcmp(s, "encrypt") == 0)
		hop->code = OTLS_ENCRYPT;
	else if (strcmp(s, "verify") == 0)
		hop->code = OTLS_VERIFY;
	else {
		*why = "not may, encrypt or verify";
		return -1;
	}
	return 0;
}

/* tls_policy_lookup - see config.h */
enum outbound_tls
tls_policy_lookup(const struct config *c, const char *dest, size_t len)
{
	const struct nexthop	*hop;

	if ((hop = transport_lookup(&c->tls_policy, dest, len)) != NULL)
		return (enum outbound_tls)hop->code;
	return c->outbound_tls;
}

/* map_line - "DOMAIN NEXTHOP" (the next hop may contain blanks) */
static void
map_line(struct parse *ps, void *arg, const char *p, size_t len)
{
	struct map_load_arg	*a = arg;
	struct transport_map	*m = a->map;
	struct transport_entry	*e, *nv;
	char			 q[CONF_QUOTE_MAX], *pat, *hop;
	const char		*why;
	size_t			 plen, i, dlen;

	for (plen = 0; plen < len && p[plen] != ' ' && p[plen] != '\t';
	    plen++)
		;
	for (i = plen; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if ((pat = str_dup_len(p, plen)) == NULL ||
	    (hop = str_dup_len(p + i, len - i)) == NULL)
		fatal("config: map line");
	if (plen > 1 && pat[plen - 1] == '.')
		pat[--plen] = '\0';
	dlen = pat[0] == '.' ? plen - 1 : plen;
	if (strcmp(pat, "*") != 0 && !valid_domain(pat + plen - dlen, dlen)) {
		conf_err(ps, "bad domain \"%s\"", quote(pat, q, sizeof(q)));
		goto done;
	}
	if (*hop == '\0') {
		conf_err(ps, "missing next hop for \"%s\"", pat);
		goto done;
	}
	if ((m->n & (m->n - 1)) == 0) {	/* 0, 1, 2, 4, ...: grow */
		if ((nv = reallocarray(m->v, m->n == 0 ? 1 : m->n * 2,
		    sizeof(*m->v))) == NULL)
			fatal("config: map");
		m->v = nv;
	}
	e = &m->v[m->n];
	if (a->value(hop, &e->hop, &why) == -1) {
		conf_err(ps, "bad %s \"%s\": %s", a->what,
		    quote(hop, q, sizeof(q)), why);
		goto done;
	}
	mem_ascii_lower(pat, plen);
	e->pattern = pat;
	e->line = ps->line;
	m->n++;
	pat = NULL;
done:
	free(pat);
	free(hop);
}

static int
map_entry_cmp(const void *a, const void *b)
{
	const struct transport_entry	*x = a, *y = b;
	int				 r;

	if ((r = strcmp(x->pattern, y->pattern)) != 0)
		return r;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* map_find - binary search for the pattern (key, len) */
static const struct nexthop *
map_find(const struct transport_map *m, const char *key, size_t len)
{
	size_t	 lo = 0, hi = m->n, mid, plen;
	int	 r;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		plen = strlen(m->v[mid].pattern);
		r = memcmp(key, m->v[mid].pattern, len < plen ? len : plen);
		if (r == 0)
			r = len < plen ? -1 : len > plen;
		if (r == 0)
			return &m->v[mid].hop;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void
transport_free(struct transport_map *m)
{
	size_t	 i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].pattern);
		nexthop_clear(&m->v[i].hop);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

/* prefix_match - do the first prefix bits of a and net agree? */
static int
prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned	 full = prefix / 8, rest = prefix % 8;
	uint8_t		 mask;

	if (memcmp(a, net, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff00u >> rest);
	return (a[full] & mask) == net[full];
}

/* la_port - the port of a parsed address, host order */
static unsigned
la_port(const struct listen_addr *la)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	if (la->ss.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)&la->ss;
		return ntohs(sin->sin_port);
	}
	sin6 = (const struct sockaddr_in6 *)(const void *)&la->ss;
	return ntohs(sin6->sin6_port);
}

/* ---- AUTH users and sender map ---------------------------------- */

/*
 * auth_load - read auth_users_file and auth_sender_map into c->authdb
 * (authdb.c), here in the master before any role is chrooted.  Their
 * errors are "FILE:LINE: reason" of those files; a file that cannot be
 * read is reported at its key's line of the config.
 */
static void
auth_load(struct parse *ps, struct config *c)
{
	struct buf	 b;

	if ((c->authdb = authdb_new()) == NULL)
		fatal("config: authdb");
	buf_init(&b, CONF_FILE_MAX + 1);
	if (auth_read(ps, "auth_users_file", c->auth_users_file, &b) == 0)
		ps->nerr += authdb_parse_users(c->authdb, c->auth_users_file,
		    b.data != NULL ? b.data : "", b.len, ps->errf);
	buf_free(&b);
	if (c->auth_sender_map_file == NULL)
		return;
	buf_init(&b, CONF_FILE_MAX + 1);
	if (auth_read(ps, "auth_sender_map", c->auth_sender_map_file,
	    &b) == 0)
		ps->nerr += authdb_parse_senders(c->authdb,
		    c->auth_sender_map_file, b.data != NULL ? b.data : "",
		    b.len, ps->errf);
	buf_free(&b);
}

/* auth_read - one file of auth_load(); 0, or -1 (reported) */
static int
auth_read(struct parse *ps, const char *key, const char *path, struct buf *b)
{
	const char	*why;

	if (read_capped(path, b, &why) == 0)
		return 0;
	conf_errl(ps, kw_line(ps, key), "%s %s: %s", key, path, why);
	return -1;
}

/* ---- relay_recipients ------------------------------------------- */

#define RCPT_FILES_MAX	10000	/* files of a relay_recipients dir */

/*
 * rcpt_load - relay_recipients (rcptmap.h): a file, or every regular
 * file of a directory whose name does not start with '.', read here in
 * the master.  Errors are those files' FILE:LINE; a path that cannot
 * be read is reported at the key's line.
 */
static void
rcpt_load(struct parse *ps, struct config *c)
{
	const char	*path = c->relay_recipients_file;
	struct dirent	**ents;
	struct stat	 st;
	struct buf	 b;
	int		 n, i;

	if ((c->relay_rcpts = rcptmap_new()) == NULL)
		fatal("config: relay_recipients");
	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		rcpt_load_file(ps, c, path);
		rcptmap_finish(c->relay_rcpts);
		return;
	}
	if ((n = scandir(path, &ents, NULL, alphasort)) == -1) {
		conf_errl(ps, kw_line(ps, "relay_recipients"),
		    "relay_recipients %s: %s", path, strerror(errno));
		return;
	}
	if (n > RCPT_FILES_MAX)
		conf_errl(ps, kw_line(ps, "relay_recipients"),
		    "relay_recipients %s: more than %d files", path,
		    RCPT_FILES_MAX);
	for (i = 0; i < n; i++) {
		buf_init(&b, 0);
		if (buf_appendf(&b, "%s/%s", path, ents[i]->d_name) == -1)
			fatal("config: relay_recipients path");
		/* hidden files, "." and "..": names starting with '.' */
		if (n <= RCPT_FILES_MAX && ents[i]->d_name[0] != '.' &&
		    stat(b.data, &st) == 0 && S_ISREG(st.st_mode))
			rcpt_load_file(ps, c, b.data);
		buf_free(&b);
		free(ents[i]);
	}
	free(ents);
	rcptmap_finish(c->relay_rcpts);
}

/* rcpt_load_file - one file of rcpt_load() */
static void
rcpt_load_file(struct parse *ps, struct config *c, const char *file)
{
	struct buf	 b;
	const char	*why;

	buf_init(&b, CONF_FILE_MAX + 1);
	if (read_capped(file, &b, &why) == -1)
		conf_errl(ps, kw_line(ps, "relay_recipients"),
		    "relay_recipients %s: %s", file, why);
	else
		ps->nerr += rcptmap_parse(c->relay_rcpts, file,
		    b.data != NULL ? b.data : "", b.len, ps->errf);
	buf_free(&b);
}

/* kw_endpoint - clamd_socket */
static int
kw_endpoint(struct parse *ps, struct config *c, const struct keyword *kw,
    const char *val)
{
	char		 q[CONF_QUOTE_MAX];
	const char	*why;

	if (config_parse_endpoint(val, FIELD(c, kw, struct scan_endpoint),
	    &why) == -1) {
		conf_err(ps, "bad socket \"%s\" for %s: %s",
		    quote(val, q, sizeof(q)), kw->name, why);
		return -1;
	}
	*(int *)(void *)((char *)c + kw->noff) = 1;
	return 0;
}

/*
 * milter_item - one entry of milters: an endpoint with an optional
 * "=accept", "=tempfail" or "=reject" overriding milter_default_action
 * for that milter (the order of enum conf_milter_action).
 */
static int
milter_item(const char *tok, struct scan_endpoint *e, const char **why)
{
	static const char *const act[] = { "accept", "tempfail", "reject" };
	char		 spec[CONF_TOKEN_MAX];
	const char	*eq = strrchr(tok, '=');
	size_t		 i, n = strlen(tok);
	int		 a = -1;

	if (eq != NULL) {
		for (i = 0; i < sizeof(act) / sizeof(act[0]); i++)
			if (strcmp(eq + 1, act[i]) == 0)
				a = (int)i;
		if (a == -1) {
			*why = "the action after '=' is accept, tempfail or "
			    "reject";
			return -1;
		}
		n = (size_t)(eq - tok);
	}
	if (n >= sizeof(spec)) {
		*why = "too long";
		return -1;
	}
	memcpy(spec, tok, n);
	spec[n] = '\0';
	if (config_parse_endpoint(spec, e, why) == -1)
		return -1;
	e->action = a;
	return 0;
}

/*
 * rules_load - content_rules (content.h): its errors are written as
 * FILE:LINE: lines by the rules parser and counted here
 */
static void
rules_load(struct parse *ps, struct config *c)
{
	size_t	 nerr;

	c->content_rules = content_rules_load(c->content_rules_file,
	    ps->errf, &nerr);
	ps->nerr += nerr;
}
