/*
 * config.h - moat configuration: one struct, parsed once in the master.
 *
 * Format (DESIGN.md): "key = value" lines, '#' comments, lists separated
 * by commas and/or spaces, durations "30s 5m 4h 5d" (bare number =
 * seconds), sizes "26214400" or "25M" (K, M, G; powers of 1024).
 * Relative paths are resolved against the directory moatd was started
 * in, at parse time, so every path in struct config is absolute.
 *
 * Every error is reported as "FILE:LINE: reason" and parsing goes on to
 * report all errors in one pass (STYLE.md 9).
 *
 * The roles are forked from the master and inherit the parsed struct;
 * nothing in it is re-read after privileges are dropped, except the
 * maps the master loaded for them.
 */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <sys/socket.h>

#include "dnsbl.h"

#define CONF_HOSTNAME_MAX	255
#define CONF_VERB_MAX		16
#define CONF_FILTER_MAX		32	/* entries in command_filter */

struct authdb;				/* common/authdb.h */
struct rcptmap;				/* common/rcptmap.h */
struct content_rules;			/* common/content.h */

/* one listening address */
struct listen_addr {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 text[80];	/* as written: "127.0.0.1:2525" */
};

/* a network in CIDR form; family AF_INET or AF_INET6 */
struct cidr {
	int		 family;
	uint8_t		 addr[16];	/* network byte order, masked */
	unsigned	 prefix;
};

/* one allowed verb of the command filter */
struct filter_rule {
	char		 verb[CONF_VERB_MAX];	/* upper case */
	size_t		 maxarg;		/* longest argument, octets */
};

enum transport_kind {
	TR_SMTP_MX,	/* "smtp": MX lookup of the recipient domain */
	TR_SMTP_HOST,	/* "smtp:host": MX lookup of host */
	TR_SMTP_FIXED,	/* "smtp:[host]:port": that host, no MX */
	TR_MAILDIR,	/* "maildir:/path/%d/%u" */
	TR_ERROR	/* "error:5.1.1 text" */
};

/* a next hop, the right-hand side of a transport_map line */
struct nexthop {
	enum transport_kind	 kind;
	char			*host;	/* TR_SMTP_HOST, TR_SMTP_FIXED */
	unsigned		 port;	/* TR_SMTP_FIXED; 0 = remote_smtp_port */
	char			*path;	/* TR_MAILDIR template, absolute */
	char			*text;	/* TR_ERROR: "5.1.1 text" */
	int			 code;	/* TR_ERROR: 4xx or 5xx from the status */
};

/* one transport_map line */
struct transport_entry {
	char		*pattern;	/* lower case, no trailing dot;
					   ".example.test" = subdomains,
					   "*" = default */
	struct nexthop	 hop;
	unsigned	 line;
};

struct transport_map {
	struct transport_entry	*v;
	size_t			 n;
};

/* spf: SPF of the sender (RFC 7208; smtp_policy.c, common/spf.h) */
enum spf_mode {
	SPF_MODE_OFF,
	SPF_MODE_TAG,		/* Authentication-Results header and log */
	SPF_MODE_REJECT_FAIL	/* and 550 5.7.23 on fail, 451 4.7.24 on
				   temperror (RFC 7372 3.2) */
};

/* recipient_verify: callout to the internal next hop (smtp_callout.c) */
enum rcpt_verify_mode {
	RV_OFF,
	RV_CALLOUT
};

/* recipient_verify_failure: the probe got no definite answer */
enum rv_failure {
	RV_FAIL_TEMPFAIL,	/* 450 4.1.1 */
	RV_FAIL_ACCEPT
};

/* fcrdns: forward-confirmed reverse DNS of the client (smtp_policy.c) */
enum fcrdns_mode {
	FCRDNS_OFF,
	FCRDNS_WARN,	/* log only */
	FCRDNS_REJECT	/* 550 5.7.25, 450 4.7.25 on DNS errors */
};

/* scanner endpoints: clamd_socket, milters (config_parse_endpoint) */
#define CONF_ENDPOINT_TEXT	128
#define CONF_MILTERS_MAX	8

/* clamd: what to do when the scanner fails (off = no scanning) */
enum conf_clamd {
	CONF_CLAMD_OFF,
	CONF_CLAMD_TEMPFAIL,
	CONF_CLAMD_ACCEPT
};

/* virus_action: what a virus found by clamd does to the message */
enum conf_virus_action {
	CONF_VIRUS_REJECT,	/* 554 5.7.1 Virus found: NAME */
	CONF_VIRUS_QUARANTINE,	/* 250, kept in spool/quarantine */
	CONF_VIRUS_DISCARD	/* 250, dropped */
};

/* milter_default_action: a milter that is down or misbehaves */
enum conf_milter_action {
	CONF_MILTER_ACCEPT,
	CONF_MILTER_TEMPFAIL,
	CONF_MILTER_REJECT
};

/* a unix or TCP socket of a content scanner (clamd, a milter) */
struct scan_endpoint {
	struct sockaddr_storage	 ss;	/* AF_UNIX, AF_INET or AF_INET6 */
	socklen_t		 sslen;
	char			 text[CONF_ENDPOINT_TEXT]; /* as written,
						   without "=action" */
	int			 action;  /* milters: enum
					     conf_milter_action; -1 =
					     milter_default_action */
};

enum outbound_tls {
	OTLS_MAY,
	OTLS_ENCRYPT,
	OTLS_VERIFY
};

struct config {
	char			*file;		/* absolute path of the file */
	char			 hostname[CONF_HOSTNAME_MAX + 1];

	struct listen_addr	*listen;
	size_t			 nlisten;
	struct listen_addr	*submission_listen;
	size_t			 nsubmission_listen;
	struct listen_addr	*smtps_listen;
	size_t			 nsmtps_listen;

	char			*user;		/* default "moat" */
	char			*spool_dir;	/* default "/var/spool/moat" */

	char			**local_domains; /* lower case, no dot */
	size_t			 nlocal_domains;
	struct cidr		*relay_networks;
	size_t			 nrelay_networks;

	char			*transport_map_file;
	struct transport_map	 transport;	/* loaded from the file */
	struct nexthop		 relay_host;	/* kind TR_SMTP_* */
	int			 has_relay_host;

	struct listen_addr	*dns_servers;	/* none = /etc/resolv.conf */
	size_t			 ndns_servers;
	unsigned		 remote_smtp_port;

	char			*tls_cert_file;
	char			*tls_key_file;
	enum outbound_tls	 outbound_tls;
	char			*tls_ca_file;	/* for outbound "verify" */
	char			*tls_policy_map_file;
	/* loaded from the file; each entry's hop.code holds the enum
	   outbound_tls of its domain (hop.kind is unused) */
	struct transport_map	 tls_policy;
	char			*auth_users_file;
	char			*auth_sender_map_file;
	struct authdb		*authdb;	/* both files loaded, or NULL */
	size_t			 auth_failure_limit;  /* per client, window */
	time_t			 auth_failure_window;
	time_t			 auth_failure_delay;  /* before a 535 */

	size_t			 message_size_limit;
	size_t			 max_recipients;
	size_t			 max_connections;
	size_t			 commit_threads;	/* smtp-in's fsyncs at once */
	size_t			 max_connections_per_ip;
	size_t			 max_errors;	/* errors before 421 + close */

	struct filter_rule	 filter[CONF_FILTER_MAX];
	size_t			 nfilter;

	time_t			 command_timeout;
	time_t			 data_timeout;
	time_t			 queue_lifetime;
	time_t			 quarantine_lifetime;	/* then deleted */
	time_t			 delay_warning;
	time_t			 retry_min;
	time_t			 retry_max;

	int			 log_syslog;	/* log = syslog */

	/* smtp-out (timeouts after RFC 5321 4.5.3.2) */
	char			 smtp_helo_name[CONF_HOSTNAME_MAX + 1];
					/* "" = hostname */
	time_t			 smtp_connect_timeout;
	time_t			 smtp_helo_timeout;	/* greeting, EHLO,
							   STARTTLS, QUIT */
	time_t			 smtp_mail_timeout;
	time_t			 smtp_rcpt_timeout;
	time_t			 smtp_data_init_timeout; /* the 354 */
	time_t			 smtp_data_xfer_timeout; /* each write */
	time_t			 smtp_data_done_timeout; /* after "." */
	size_t			 smtp_destination_concurrency_limit;
	size_t			 smtp_max_connections;	/* all destinations */
	time_t			 smtp_connection_cache_time; /* idle reuse */
	time_t			 smtp_connection_reuse_time; /* max age */
	/* mail from relay_networks or AUTH leaving by MX or relay_host
	   carries no Received header naming internal hosts */
	int			 hide_internal_hosts;

	/* smtp-in policy for untrusted clients (smtp_policy.c) */
	struct dnsbl		*dnsbl;		/* client address lists */
	size_t			 ndnsbl;
	struct dnsbl		*rhsbl;		/* sender domain, HELO name */
	size_t			 nrhsbl;
	size_t			 dnsbl_threshold; /* sum of weights to block */
	int			 fcrdns;	/* enum fcrdns_mode */
	int			 helo_checks;	/* syntax, not our name */
	int			 helo_resolvable; /* HELO name has A/AAAA */
	int			 sender_resolvable; /* MX or A/AAAA */
	time_t			 greet_delay;	/* pregreet test; 0 = off */
	time_t			 reject_delay;	/* tarpit step; 0 = off */
	size_t			 conn_rate_limit; /* per address and window */
	size_t			 msg_rate_limit;
	time_t			 rate_window;
	time_t			 policy_dns_timeout; /* bound of one lookup */
	int			 header_from_check; /* local From: refused */
	char			*relay_recipients_file; /* file or dir */
	struct rcptmap		*relay_rcpts;	/* loaded from it, or NULL */
	int			 spf;		/* enum spf_mode */
	int			 recipient_verify; /* enum rcpt_verify_mode */
	int			 recipient_verify_failure; /* enum rv_failure */
	time_t			 recipient_verify_positive_ttl;
	time_t			 recipient_verify_negative_ttl;
	time_t			 recipient_verify_timeout; /* whole probe */
	int			 greylist;
	time_t			 greylist_delay;	/* before a retry */
	time_t			 greylist_retry_window;	/* retry within */
	time_t			 greylist_max_age;	/* passed triplets */
	size_t			 greylist_auto_allow;	/* passes; 0 off */

	size_t			 min_free_space; /* spool; 0 = no check */
	size_t			 min_data_rate;	/* octets/s in DATA/BDAT
						   beyond data_timeout;
						   0 = no check */
	int			 sandbox;	/* seccomp on smtp-in/-out */

	/* content scanners: common/clamd.h, common/milter.h */
	struct scan_endpoint	 clamd_socket;
	int			 has_clamd_socket;
	int			 clamd;		/* enum conf_clamd */
	int			 virus_action;	/* enum conf_virus_action */
	time_t			 clamd_timeout;	/* connect, each read and
						   write */
	size_t			 clamd_max_size; /* octets sent, at most */
	struct scan_endpoint	*milters;	/* in order */
	size_t			 nmilters;
	int			 milter_default_action; /* enum
						   conf_milter_action */
	time_t			 milter_connect_timeout; /* + negotiation */
	time_t			 milter_command_timeout; /* per reply */
	time_t			 milter_content_timeout; /* body, EOM */

	/* content filter: common/content.h, common/mime.h */
	int			 content_filter;	/* scan at all */
	char			**content_notify;	/* admin addresses
							   told of content
							   actions */
	size_t			 ncontent_notify;
	char			**attachment_block;	/* words, lower case:
						   extensions, MIME types */
	size_t			 nattachment_block;
	int			 attachment_action;	/* enum content_action */
	int			 attachment_action_outbound;
	int			 attachment_mismatch;	/* enum content_action */
	int			 mime_malformed;	/* enum content_action */
	char			*content_rules_file;
	struct content_rules	*content_rules;	/* loaded from it, or NULL */
	size_t			 mime_max_depth;
	size_t			 mime_max_parts;
	size_t			 mime_max_header;	/* one header section */
};

/*
 * config_load - parse file into a fresh struct config.  Errors are
 * written to errf as "FILE:LINE: reason" lines (all of them), and NULL
 * is returned if there was any.  Loads the transport map, the AUTH
 * users and the sender map too (authdb.h).
 */
struct config	*config_load(const char *file, FILE *errf);
/*
 * config_load_mem - the same from len octets at p (at most 1 MiB);
 * name is used in messages and, made absolute, as c->file.  For the
 * fuzzer and the unit tests.
 */
struct config	*config_load_mem(const char *name, const char *p,
		    size_t len, FILE *errf);
void		 config_free(struct config *);

/* config_filter_find - the rule for verb (len octets, any case) or NULL */
const struct filter_rule *config_filter_find(const struct config *,
		    const char *verb, size_t len);

/* config_is_local_domain - domain (len octets, any case, trailing dot ok) */
int		 config_is_local_domain(const struct config *,
		    const char *domain, size_t len);

/* config_in_relay_networks - is the address in relay_networks? */
int		 config_in_relay_networks(const struct config *,
		    const struct sockaddr *);

/*
 * transport_lookup - next hop for domain (len octets, any case):
 * exact match, then ".parent" entries from the closest parent up, then
 * "*"; NULL if none.  Callers fall back to relay_host, then TR_SMTP_MX.
 */
const struct nexthop *transport_lookup(const struct transport_map *,
		    const char *domain, size_t len);

/*
 * tls_policy_lookup - the outbound TLS policy for a destination (the
 * recipient domain for MX delivery, the host of smtp:host and
 * smtp:[host]): tls_policy_map (exact, ".parent", "*"), else
 * outbound_tls.
 */
enum outbound_tls tls_policy_lookup(const struct config *,
		    const char *dest, size_t len);

/* parse helpers, exported for the unit tests and other map parsers */
int	config_parse_duration(const char *, time_t *);
int	config_parse_size(const char *, size_t *);
int	config_parse_cidr(const char *, struct cidr *);
int	config_parse_hostport(const char *, unsigned defport,
	    struct listen_addr *);
int	config_parse_nexthop(const char *, struct nexthop *,
	    const char **why);
int	cidr_match(const struct cidr *, const struct sockaddr *);
/*
 * config_parse_endpoint - a scanner socket: "unix:/path", "local:/path",
 * "/path", "inet:host:port", "inet:port@host" (sendmail), "inet6:..."
 * or "host:port", "[v6]:port"; numeric addresses only, port required.
 * 0, or -1 with *why set.  e->action is set to -1.
 */
int	config_parse_endpoint(const char *, struct scan_endpoint *,
	    const char **why);

#endif
