/*
 * milterc.c - drive src/common/milter.c and src/common/clamd.c from the
 * command line, for tests/integration/test_clamd_milter.py (and by
 * hand).  The message is read from stdin (LF or CRLF line ends; CRLF is
 * what the modules get).
 *
 *   milterc milter [-d ACTION] [-t MS] [-T MS] [-C MS] [-j HOST]
 *           [-D DAEMON] [-a ADDR] [-n NAME] [-h HELO] [-f FROM]
 *           [-r RCPT]... [-M NAME=VALUE]... [-k COUNT] [-A] [-o FILE]
 *           ENDPOINT[=ACTION]...
 *
 *       One session with the milters, in order: connect, helo, then
 *       COUNT times (default 1) mail, rcpt..., data, the headers, eoh,
 *       the body in chunks, eom; -A sends milter_abort() after the
 *       recipients of the first message instead of its content.  One
 *       line per stage callback:
 *         stage=S verdict=V [milter=E] [default=1] [close=1]
 *             [reply="..."]
 *       then at eom one line per modification
 *         mod=TYPE milter=N index=I name="..." value="..."
 *       and "body=replaced len=N", "quarantine=\"...\"".  -o writes
 *       the first message with the modifications applied (header ones
 *       and the body) to FILE.
 *
 *   milterc clamd [-t MS] [-m MAXSIZE] [-c CHUNK] ENDPOINT
 *       Scans the message; prints
 *         status=clean|virus|error name="..." scanned=N truncated=0|1
 *
 * Exit 0 (verdicts are output, not errors), 2 on a usage error; a guard
 * alarm ends a hung run.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "common/config.h"
#include "common/clamd.h"
#include "common/milter.h"

#define GUARD_SECONDS	120
#define MAX_RCPTS	16
#define MAX_MACROS	16
#define MAX_MILTERS	8
#define MAX_HEADERS	1000
#define BODY_CHUNK	100000	/* over MILTER_CHUNK_SIZE on purpose */

struct header {
	const char	*name;
	size_t		 nlen;
	const char	*value;		/* after the colon, CRLF folding */
	size_t		 vlen;
	int		 deleted;
};

static void	 usage(void) __attribute__((noreturn));
static void	 read_message(void);
static void	 split_message(void);
static int	 run_milter(int, char **);
static int	 run_clamd(int, char **);
static void	 start_message(void);
static void	 feed_body(void);
static void	 stage_cb(const struct milter_status *, void *);
static void	 abort_cb(const struct milter_status *, void *);
static void	 body_cb(const struct milter_status *, void *);
static void	 eom_cb(const struct milter_status *, void *);
static void	 clamd_done(const struct clamd_result *, void *);
static void	 print_status(const char *, const struct milter_status *);
static void	 print_q(const char *, const char *, size_t);
static void	 write_modified(const struct milter_status *);
static const char *verdict_str(enum milter_verdict);
static unsigned	 num(const char *);

static struct event_base	*base;
static struct buf		 msg;		/* CRLF */
static struct header		 hdrs[MAX_HEADERS];
static size_t			 nhdrs;
static const char		*body;
static size_t			 bodylen, bodyoff;
static struct milter_session	*ms;
static const char		*rcpts[MAX_RCPTS];
static size_t			 nrcpts;
static const char		*from = "sender@example.test";
static const char		*outfile;
static unsigned			 count = 1, done;
static int			 abort_first;

int
main(int argc, char *argv[])
{
	log_init(0);
	log_setproc("milterc");
	alarm(GUARD_SECONDS);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		usage();
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if (strcmp(argv[1], "milter") == 0)
		return run_milter(argc - 1, argv + 1);
	if (strcmp(argv[1], "clamd") == 0)
		return run_clamd(argc - 1, argv + 1);
	usage();
}

static void
usage(void)
{
	fprintf(stderr, "usage: milterc milter [options] ENDPOINT...\n"
	    "       milterc clamd [-t MS] [-m MAX] [-c CHUNK] ENDPOINT\n");
	exit(2);
}

static int
run_milter(int argc, char **argv)
{
	static struct scan_endpoint	 eps[MAX_MILTERS];
	struct milter_conf		 conf;
	struct sockaddr_in		 sin;
	const char			*addr = "192.0.2.1", *name = NULL;
	const char			*helo = "client.example.test", *why;
	const char			*macros[MAX_MACROS], *eq;
	size_t				 nmacros = 0, i;
	int				 ch;
	char				 nm[64];

	memset(&conf, 0, sizeof(conf));
	conf.default_action = CONF_MILTER_TEMPFAIL;
	conf.body_max = 25UL << 20;
	conf.hostname = "mx.example.test";
	while ((ch = getopt(argc, argv, "Aa:C:D:d:f:h:j:k:M:n:o:r:T:t:")) !=
	    -1) {
		switch (ch) {
		case 'A':
			abort_first = 1;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'C':
			conf.content_timeout_ms = num(optarg);
			break;
		case 'D':
			conf.daemon_name = optarg;
			break;
		case 'd':
			conf.default_action = strcmp(optarg, "accept") == 0 ?
			    CONF_MILTER_ACCEPT : strcmp(optarg, "reject") == 0 ?
			    CONF_MILTER_REJECT : CONF_MILTER_TEMPFAIL;
			break;
		case 'f':
			from = optarg;
			break;
		case 'h':
			helo = optarg;
			break;
		case 'j':
			conf.hostname = optarg;
			break;
		case 'k':
			count = num(optarg);
			break;
		case 'M':
			if (nmacros == MAX_MACROS)
				usage();
			macros[nmacros++] = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'o':
			outfile = optarg;
			break;
		case 'r':
			if (nrcpts == MAX_RCPTS)
				usage();
			rcpts[nrcpts++] = optarg;
			break;
		case 'T':
			conf.command_timeout_ms = num(optarg);
			break;
		case 't':
			conf.connect_timeout_ms = num(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > MAX_MILTERS)
		usage();
	for (i = 0; i < (size_t)argc; i++) {
		char	 spec[CONF_ENDPOINT_TEXT];
		int	 act = -1;

		eq = strrchr(argv[i], '=');
		if (eq != NULL && strchr(eq, '/') == NULL) {
			act = strcmp(eq + 1, "accept") == 0 ?
			    CONF_MILTER_ACCEPT : strcmp(eq + 1, "reject") == 0 ?
			    CONF_MILTER_REJECT : CONF_MILTER_TEMPFAIL;
			snprintf(spec, sizeof(spec), "%.*s",
			    (int)(eq - argv[i]), argv[i]);
		} else
			snprintf(spec, sizeof(spec), "%s", argv[i]);
		if (config_parse_endpoint(spec, &eps[i], &why) == -1)
			fatalx("%s: %s", argv[i], why);
		eps[i].action = act;
	}
	if (nrcpts == 0)
		rcpts[nrcpts++] = "rcpt@example.test";
	conf.milters = eps;
	conf.nmilters = (size_t)argc;
	read_message();
	split_message();
	if ((ms = milter_session_start(base, &conf)) == NULL)
		fatalx("milter_session_start");
	for (i = 0; i < nmacros; i++) {
		if ((eq = strchr(macros[i], '=')) == NULL ||
		    (size_t)(eq - macros[i]) >= sizeof(nm))
			usage();
		memcpy(nm, macros[i], (size_t)(eq - macros[i]));
		nm[eq - macros[i]] = '\0';
		if (milter_macro_set(ms, nm, eq + 1, strlen(eq + 1)) == -1)
			fatalx("macro %s", nm);
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		usage();
	if (name == NULL)
		name = "[client]";
	if (milter_connect(ms, name, (struct sockaddr *)&sin, stage_cb,
	    "connect") == -1 ||
	    milter_helo(ms, helo, strlen(helo), stage_cb, "helo") == -1)
		fatalx("queue");
	start_message();
	event_base_dispatch(base);
	milter_session_free(ms);
	event_base_free(base);
	return 0;
}

/* start_message - envelope, headers and eoh; the body is fed on */
static void
start_message(void)
{
	size_t	 i;
	int	 ab = abort_first && done == 0;

	if (milter_mail(ms, from, strlen(from), "BODY=8BITMIME", 13,
	    stage_cb, "mail") == -1)
		fatalx("queue");
	for (i = 0; i < nrcpts; i++)
		if (milter_rcpt(ms, rcpts[i], strlen(rcpts[i]), "", 0,
		    ab && i + 1 == nrcpts ? abort_cb : stage_cb, "rcpt") == -1)
			fatalx("queue");
	if (ab)
		return;		/* abort_cb goes on */
	if (milter_data(ms, stage_cb, "data") == -1)
		fatalx("queue");
	for (i = 0; i < nhdrs; i++)
		if (milter_header(ms, hdrs[i].name, hdrs[i].nlen,
		    hdrs[i].value, hdrs[i].vlen, NULL, NULL) == -1)
			fatalx("queue header");
	if (milter_eoh(ms, stage_cb, "eoh") == -1)
		fatalx("queue");
	bodyoff = 0;
	feed_body();
}

/* feed_body - one chunk at a time, the next one from its callback */
static void
feed_body(void)
{
	size_t	 k = bodylen - bodyoff;

	if (k == 0) {
		if (milter_eom(ms, eom_cb, NULL) == -1)
			fatalx("queue eom");
		return;
	}
	if (k > BODY_CHUNK)
		k = BODY_CHUNK;
	if (milter_body(ms, body + bodyoff, k, body_cb, NULL) == -1)
		fatalx("queue body");
	bodyoff += k;
}

static void
stage_cb(const struct milter_status *st, void *arg)
{
	print_status(arg, st);
}

/* abort_cb - the last recipient of the first message: abort it */
static void
abort_cb(const struct milter_status *st, void *arg)
{
	print_status(arg, st);
	milter_abort(ms);
	printf("stage=abort\n");
	if (++done < count)
		start_message();
	else
		event_base_loopexit(base, NULL);
}

static void
body_cb(const struct milter_status *st, void *arg)
{
	if (bodyoff == bodylen)
		print_status("body", st);
	feed_body();
}

static void
eom_cb(const struct milter_status *st, void *arg)
{
	size_t	 i;
	char	 t[16];

	print_status("eom", st);
	for (i = 0; i < st->nmods; i++) {
		switch (st->mods[i].type) {
		case MILTER_MOD_ADDHEADER:
			snprintf(t, sizeof(t), "addheader");
			break;
		case MILTER_MOD_INSHEADER:
			snprintf(t, sizeof(t), "insheader");
			break;
		case MILTER_MOD_CHGHEADER:
			snprintf(t, sizeof(t), "chgheader");
			break;
		case MILTER_MOD_CHGFROM:
			snprintf(t, sizeof(t), "chgfrom");
			break;
		case MILTER_MOD_ADDRCPT:
			snprintf(t, sizeof(t), "addrcpt");
			break;
		case MILTER_MOD_ADDRCPT_PAR:
			snprintf(t, sizeof(t), "addrcpt_par");
			break;
		case MILTER_MOD_DELRCPT:
			snprintf(t, sizeof(t), "delrcpt");
			break;
		}
		printf("mod=%s milter=%u index=%u", t, st->mods[i].milter,
		    st->mods[i].index);
		print_q("name", st->mods[i].name, st->mods[i].name_len);
		print_q("value", st->mods[i].value, st->mods[i].value_len);
		printf("\n");
	}
	if (st->body_replaced)
		printf("body=replaced len=%zu\n", st->body_len);
	if (st->quarantine != NULL) {
		print_q("quarantine", st->quarantine,
		    strlen(st->quarantine));
		printf("\n");
	}
	if (outfile != NULL && done == 0)
		write_modified(st);
	fflush(stdout);
	if (++done < count) {
		start_message();
		return;
	}
	event_base_loopexit(base, NULL);
}

/*
 * write_modified - the message with the modifications of st, applied
 * as an MTA does: CHGHEADER on the Nth header of the name, INSHEADER
 * before the index-th header, ADDHEADER at the end of the header
 */
static void
write_modified(const struct milter_status *st)
{
	FILE		*f;
	size_t		 i, j, n;
	const struct milter_mod *md;

	if ((f = fopen(outfile, "w")) == NULL)
		fatal("%s", outfile);
	for (i = 0; i < st->nmods; i++) {
		md = &st->mods[i];
		if (md->type != MILTER_MOD_CHGHEADER)
			continue;
		for (j = 0, n = 0; j < nhdrs; j++)
			if (hdrs[j].nlen == md->name_len &&
			    strncasecmp(hdrs[j].name, md->name,
			    md->name_len) == 0 && ++n == md->index) {
				if (md->value_len == 0)
					hdrs[j].deleted = 1;
				else {
					hdrs[j].value = md->value;
					hdrs[j].vlen = md->value_len;
				}
			}
	}
	for (j = 0; j <= nhdrs; j++) {
		for (i = 0; i < st->nmods; i++) {
			md = &st->mods[i];
			if (md->type == MILTER_MOD_INSHEADER &&
			    (md->index == j || (j == nhdrs &&
			    md->index > nhdrs)))
				fprintf(f, "%s:%s\r\n", md->name, md->value);
		}
		if (j < nhdrs && !hdrs[j].deleted)
			fprintf(f, "%.*s:%.*s\r\n", (int)hdrs[j].nlen,
			    hdrs[j].name, (int)hdrs[j].vlen, hdrs[j].value);
	}
	for (i = 0; i < st->nmods; i++)
		if (st->mods[i].type == MILTER_MOD_ADDHEADER)
			fprintf(f, "%s:%s\r\n", st->mods[i].name,
			    st->mods[i].value);
	fprintf(f, "\r\n");
	if (st->body_replaced)
		fwrite(st->body, 1, st->body_len, f);
	else
		fwrite(body, 1, bodylen, f);
	fclose(f);
}

static int
run_clamd(int argc, char **argv)
{
	struct scan_endpoint	 ep;
	struct clamd_conf	 conf;
	struct clamd_scan	*cs;
	const char		*why;
	size_t			 chunk = 8192, off, k;
	int			 ch;

	memset(&conf, 0, sizeof(conf));
	while ((ch = getopt(argc, argv, "c:m:t:")) != -1) {
		switch (ch) {
		case 'c':
			chunk = num(optarg);
			break;
		case 'm':
			conf.max_size = num(optarg);
			break;
		case 't':
			conf.timeout_ms = num(optarg);
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1 || chunk == 0)
		usage();
	if (config_parse_endpoint(argv[optind], &ep, &why) == -1)
		fatalx("%s: %s", argv[optind], why);
	conf.endpoint = &ep;
	read_message();
	if ((cs = clamd_start(base, &conf, clamd_done, NULL)) == NULL)
		fatalx("clamd_start");
	for (off = 0; off < msg.len; off += k) {
		k = msg.len - off < chunk ? msg.len - off : chunk;
		if (clamd_feed(cs, msg.data + off, k) == -1)
			break;
	}
	clamd_finish(cs);
	event_base_dispatch(base);
	event_base_free(base);
	return 0;
}

static void
clamd_done(const struct clamd_result *r, void *arg)
{
	printf("status=%s", r->status == CLAMD_CLEAN ? "clean" :
	    r->status == CLAMD_VIRUS ? "virus" : "error");
	print_q("name", r->name, strlen(r->name));
	printf(" scanned=%zu truncated=%d\n", r->scanned, r->truncated);
	fflush(stdout);
}

/* read_message - stdin, lines ended by CRLF */
static void
read_message(void)
{
	int	 c, prev = 0;
	char	 ch;

	buf_init(&msg, 0);
	while ((c = getchar()) != EOF) {
		if (c == '\n' && prev != '\r' && buf_append(&msg, "\r", 1))
			fatalx("message too long");
		ch = (char)c;
		if (buf_append(&msg, &ch, 1) == -1)
			fatalx("message too long");
		prev = c;
	}
}

/* split_message - header fields (with their folding) and the body */
static void
split_message(void)
{
	const char	*p = msg.data, *end = msg.data + msg.len, *eol;
	const char	*colon;

	while (p < end) {
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
			p += 2;
			break;
		}
		eol = p;
		/* a field ends at a CRLF not followed by a blank */
		for (;;) {
			eol = memmem(eol, (size_t)(end - eol), "\r\n", 2);
			if (eol == NULL)
				eol = end;
			if (eol + 2 < end && (eol[2] == ' ' ||
			    eol[2] == '\t')) {
				eol += 2;
				continue;
			}
			break;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || nhdrs == MAX_HEADERS)
			fatalx("bad header line");
		hdrs[nhdrs].name = p;
		hdrs[nhdrs].nlen = (size_t)(colon - p);
		hdrs[nhdrs].value = colon + 1;
		hdrs[nhdrs].vlen = (size_t)(eol - colon - 1);
		nhdrs++;
		p = eol < end ? eol + 2 : end;
	}
	body = p;
	bodylen = (size_t)(end - p);
}

static void
print_status(const char *stage, const struct milter_status *st)
{
	printf("stage=%s verdict=%s", stage, verdict_str(st->verdict));
	if (st->milter != NULL)
		printf(" milter=%s", st->milter);
	if (st->from_default)
		printf(" default=1");
	if (st->close)
		printf(" close=1");
	if (st->reply != NULL)
		print_q("reply", st->reply, st->reply_len);
	printf("\n");
	fflush(stdout);
}

/* print_q - key="value" with \r, \n, '"', '\\' and controls escaped */
static void
print_q(const char *key, const char *p, size_t len)
{
	size_t	 i;

	printf(" %s=\"", key);
	for (i = 0; i < len; i++) {
		if (p[i] == '\r')
			printf("\\r");
		else if (p[i] == '\n')
			printf("\\n");
		else if (p[i] == '\t')
			printf("\\t");
		else if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			printf("\\x%02x", (unsigned char)p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

static const char *
verdict_str(enum milter_verdict v)
{
	switch (v) {
	case MILTER_CONTINUE:
		return "continue";
	case MILTER_ACCEPT:
		return "accept";
	case MILTER_REJECT:
		return "reject";
	case MILTER_TEMPFAIL:
		return "tempfail";
	case MILTER_DISCARD:
		return "discard";
	}
	return "?";
}

static unsigned
num(const char *s)
{
	char		*end;
	unsigned long	 v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v > 1000000000UL)
		usage();
	return (unsigned)v;
}
