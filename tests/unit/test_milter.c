/*
 * test_milter.c - table-driven tests of the packet codecs of
 * src/common/milter.c (framing, replies, OPTNEG, header values, reply
 * codes) and src/common/clamd.c (INSTREAM replies and chunk headers),
 * and of config_parse_endpoint(), which both use.  The protocol runs
 * against real milters and clamd in tests/integration/
 * test_clamd_milter.py.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "common/config.h"
#include "common/clamd.h"
#include "common/milter.h"

/* B(s): a string literal as (ptr, len), so that tests may hold NULs */
#define B(s)	s, sizeof(s) - 1

static int	 passed, failed;

static void
check(int ok, const char *what, size_t i)
{
	if (ok)
		passed++;
	else {
		failed++;
		printf("FAIL %s #%zu\n", what, i);
	}
}

struct reply_case {
	int		 code;
	const char	*in;
	size_t		 len;
	int		 rc;
	uint32_t	 index;
	const char	*s1;		/* expected, when rc == 0 */
	const char	*s2;
	int		 cls;
};

static const struct reply_case reply_cases[] = {
	{ SMFIR_CONTINUE, B(""), 0, 0, NULL, NULL, 0 },
	{ SMFIR_ACCEPT, B(""), 0, 0, NULL, NULL, 0 },
	{ SMFIR_REJECT, B(""), 0, 0, NULL, NULL, 0 },
	{ SMFIR_PROGRESS, B(""), 0, 0, NULL, NULL, 0 },
	{ SMFIR_REJECT, B("x"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("550 5.7.1 go away\0"), 0, 0, "550 5.7.1 go away",
	    NULL, 5 },
	{ SMFIR_REPLYCODE, B("451 4.7.1 later\0"), 0, 0, "451 4.7.1 later",
	    NULL, 4 },
	{ SMFIR_REPLYCODE, B("550-5.7.1 a\r\n550 5.7.1 b\0"), 0, 0,
	    "550-5.7.1 a\r\n550 5.7.1 b", NULL, 5 },
	{ SMFIR_REPLYCODE, B("550 5.7.1 no nul"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("250 ok\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("550-a\r\n451 b\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("550 a\r\n550 b\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("550 a\nb\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("550-a\r\n\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLYCODE, B("550 a\0x\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDHEADER, B("X-Test\0value\0"), 0, 0, "X-Test", "value", 0 },
	{ SMFIR_ADDHEADER, B("X-Test\0\0"), 0, 0, "X-Test", "", 0 },
	{ SMFIR_ADDHEADER, B("X Test\0value\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDHEADER, B("X:T\0value\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDHEADER, B("\0value\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDHEADER, B("X-Test\0value"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDHEADER, B("X-Test\0v\0extra"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_INSHEADER, B("\0\0\0\0DKIM-Signature\0 v=1\0"), 0, 0,
	    "DKIM-Signature", " v=1", 0 },
	{ SMFIR_CHGHEADER, B("\0\0\0\2Subject\0\0"), 0, 2, "Subject", "", 0 },
	{ SMFIR_CHGHEADER, B("\0\0\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_CHGFROM, B("<new@example.test>\0"), 0, 0,
	    "<new@example.test>", "", 0 },
	{ SMFIR_CHGFROM, B("<a@b>\0SIZE=10\0"), 0, 0, "<a@b>", "SIZE=10", 0 },
	{ SMFIR_CHGFROM, B("\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDRCPT, B("<r@example.test>\0"), 0, 0, "<r@example.test>",
	    "", 0 },
	{ SMFIR_ADDRCPT, B("<r@x>\0more\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDRCPT, B("<r\r\n@x>\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_ADDRCPT_PAR, B("<r@x>\0NOTIFY=NEVER\0"), 0, 0, "<r@x>",
	    "NOTIFY=NEVER", 0 },
	{ SMFIR_DELRCPT, B("<r@x>\0"), 0, 0, "<r@x>", "", 0 },
	{ SMFIR_QUARANTINE, B("virus\0"), 0, 0, "virus", "", 0 },
	{ SMFIR_QUARANTINE, B("\0"), -1, 0, NULL, NULL, 0 },
	{ SMFIR_REPLBODY, B("new\r\nbody\0with nul"), 0, 0,
	    "new\r\nbody\0with nul", NULL, 0 },
	{ SMFIR_SETSYMLIST, B(""), -1, 0, NULL, NULL, 0 },
	{ 'Z', B(""), -1, 0, NULL, NULL, 0 },
};

static void
test_replies(void)
{
	const struct reply_case	*c;
	struct milter_reply	 r;
	size_t			 i;
	int			 ok;

	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		c = &reply_cases[i];
		ok = milter_reply_decode(c->code, c->in, c->len, &r) == c->rc;
		if (ok && c->rc == 0) {
			ok = r.index == c->index;
			if (c->s1 != NULL)
				ok = ok && r.l1 == (c->code == SMFIR_REPLBODY ?
				    c->len : strlen(c->s1)) &&
				    memcmp(r.s1, c->s1, r.l1) == 0;
			if (c->s2 != NULL)
				ok = ok && r.l2 == strlen(c->s2) &&
				    memcmp(r.s2, c->s2, r.l2) == 0;
			ok = ok && r.reply_class == c->cls;
		}
		check(ok, "reply_decode", i);
	}
}

struct optneg_case {
	const char	*in;
	size_t		 len;
	int		 rc;
	uint32_t	 version, actions, protocol;
	int		 stage;		/* a list expected there, or -1 */
	const char	*list;
};

static const struct optneg_case optneg_cases[] = {
	{ B("\0\0\0\6\0\0\0\x01\0\x10\0\0"), 0, 6, SMFIF_ADDHDRS,
	    SMFIP_HDR_LEADSPC, -1, NULL },
	{ B("\0\0\0\2\0\0\0\0\0\0\0\0"), 0, 2, 0, 0, -1, NULL },
	{ B("\0\0\0\7\0\0\0\0\0\0\0\0"), -1, 0, 0, 0, -1, NULL },
	{ B("\0\0\0\1\0\0\0\0\0\0\0\0"), -1, 0, 0, 0, -1, NULL },
	{ B("\0\0\0\6\0\0\x02\0\0\0\0\0"), -1, 0, 0, 0, -1, NULL },
	/* RCPT_REJ is not offered, so it cannot be asked for */
	{ B("\0\0\0\6\0\0\0\0\0\0\x08\0"), -1, 0, 0, 0, -1, NULL },
	{ B("\0\0\0\6\0\0\0\0\0\0\0"), -1, 0, 0, 0, -1, NULL },
	{ B("\0\0\0\6\0\0\x01\0\0\0\0\0\0\0\0\2i {auth_authen}\0"), 0, 6,
	    SMFIF_SETSYMLIST, 0, 2, "i {auth_authen}" },
	{ B("\0\0\0\6\0\0\x01\0\0\0\0\0\0\0\0\7i\0"), -1, 0, 0, 0, -1, NULL },
	{ B("\0\0\0\6\0\0\x01\0\0\0\0\0\0\0\0\2i"), -1, 0, 0, 0, -1, NULL },
	{ B("\0\0\0\6\0\0\x01\0\0\0\0\0\0\0\0\2i\0\0\0\0\2j\0"), -1, 0, 0,
	    0, -1, NULL },
	{ B("\0\0\0\6\0\0\x01\0\0\0\0\0\0\0"), -1, 0, 0, 0, -1, NULL },
};

static void
test_optneg(void)
{
	const struct optneg_case *c;
	struct milter_optneg	 o;
	size_t			 i;
	int			 ok;

	for (i = 0; i < sizeof(optneg_cases) / sizeof(optneg_cases[0]);
	    i++) {
		c = &optneg_cases[i];
		ok = milter_optneg_decode(c->in, c->len, &o) == c->rc;
		if (ok && c->rc == 0) {
			ok = o.version == c->version &&
			    o.actions == c->actions &&
			    o.protocol == c->protocol;
			if (c->stage >= 0)
				ok = ok && o.list[c->stage] != NULL &&
				    o.list_len[c->stage] == strlen(c->list) &&
				    memcmp(o.list[c->stage], c->list,
				    strlen(c->list)) == 0;
		}
		check(ok, "optneg_decode", i);
	}
}

struct hv_case {
	const char	*in;
	size_t		 len;
	int		 rc;
	const char	*out;
};

static const struct hv_case hv_cases[] = {
	{ B("plain"), 0, "plain" },
	{ B(" v=1;\n\tb=abc"), 0, " v=1;\r\n\tb=abc" },
	{ B(" v=1;\r\n b=abc"), 0, " v=1;\r\n b=abc" },
	{ B(""), 0, "" },
	{ B("a\nInjected: yes"), -1, NULL },
	{ B("a\r\nInjected: yes"), -1, NULL },
	{ B("a\n"), -1, NULL },
	{ B("a\rb"), -1, NULL },
	{ B("a\x01" "b"), -1, NULL },
	{ B("tab\tok"), 0, "tab\tok" },
};

static void
test_header_value(void)
{
	struct buf	 b;
	size_t		 i;
	int		 ok;

	for (i = 0; i < sizeof(hv_cases) / sizeof(hv_cases[0]); i++) {
		buf_init(&b, 0);
		ok = milter_header_value(&b, hv_cases[i].in,
		    hv_cases[i].len) == hv_cases[i].rc;
		if (ok && hv_cases[i].rc == 0)
			ok = b.len == strlen(hv_cases[i].out) &&
			    (b.len == 0 ||
			    memcmp(b.data, hv_cases[i].out, b.len) == 0);
		check(ok, "header_value", i);
		buf_free(&b);
	}
}

static void
test_framing(void)
{
	struct buf	 b;
	unsigned char	 big[4] = { 0, 0x10, 0, 1 };	/* 1 MiB + 1 */
	unsigned char	 max[4] = { 0, 0x10, 0, 0 };
	unsigned char	 zero[4] = { 0, 0, 0, 0 };

	buf_init(&b, 0);
	check(milter_pkt_append(&b, SMFIC_HELO, "x\0", 2) == 0 &&
	    b.len == 7 && memcmp(b.data, "\0\0\0\3Hx\0", 7) == 0,
	    "pkt_append", 0);
	buf_reset(&b);
	check(milter_pkt_append(&b, SMFIC_EOH, NULL, 0) == 0 && b.len == 5 &&
	    memcmp(b.data, "\0\0\0\1N", 5) == 0, "pkt_append", 1);
	check(milter_pkt_length((const unsigned char *)b.data) == 1,
	    "pkt_length", 0);
	check(milter_pkt_length(zero) == 0, "pkt_length", 1);
	check(milter_pkt_length(big) == 0, "pkt_length", 2);
	check(milter_pkt_length(max) == MILTER_PACKET_MAX, "pkt_length", 3);
	buf_free(&b);
}

struct clamd_case {
	const char		*in;
	size_t			 len;
	enum clamd_status	 st;
	const char		*name;
};

static const struct clamd_case clamd_cases[] = {
	{ B("stream: OK\0"), CLAMD_CLEAN, "" },
	{ B("stream: OK"), CLAMD_CLEAN, "" },
	{ B("stream: OK\n"), CLAMD_CLEAN, "" },
	{ B("stream: Eicar-Signature FOUND\0"), CLAMD_VIRUS,
	    "Eicar-Signature" },
	{ B("stream: Moat.Test.EICAR.UNOFFICIAL FOUND"), CLAMD_VIRUS,
	    "Moat.Test.EICAR.UNOFFICIAL" },
	{ B("INSTREAM size limit exceeded. ERROR\0"), CLAMD_ERROR,
	    "INSTREAM size limit exceeded." },
	{ B("stream: OKAY\0"), CLAMD_ERROR, "unexpected reply" },
	/* a detection without a name is not one */
	{ B("stream:  FOUND\0"), CLAMD_ERROR, "unexpected reply" },
	{ B("\0"), CLAMD_ERROR, "unexpected reply" },
	{ B(""), CLAMD_ERROR, "unexpected reply" },
	{ B("stream: X\x01\xff FOUND"), CLAMD_VIRUS, "X??" },
	{ B("ERROR"), CLAMD_ERROR, "unexpected reply" },
};

static void
test_clamd(void)
{
	char		 name[CLAMD_NAME_MAX + 1], longer[2000];
	unsigned char	 h[4];
	size_t		 i;

	for (i = 0; i < sizeof(clamd_cases) / sizeof(clamd_cases[0]); i++)
		check(clamd_reply_parse(clamd_cases[i].in, clamd_cases[i].len,
		    name) == clamd_cases[i].st &&
		    strcmp(name, clamd_cases[i].name) == 0, "clamd_reply", i);
	memset(longer, 'A', sizeof(longer));
	memcpy(longer, "stream: ", 8);
	memcpy(longer + sizeof(longer) - 6, " FOUND", 6);
	check(clamd_reply_parse(longer, sizeof(longer), name) ==
	    CLAMD_VIRUS && strlen(name) == CLAMD_NAME_MAX, "clamd_reply",
	    i);
	clamd_chunk_header(65536, h);
	check(memcmp(h, "\0\1\0\0", 4) == 0, "chunk_header", 0);
	clamd_chunk_header(0, h);
	check(memcmp(h, "\0\0\0\0", 4) == 0, "chunk_header", 1);
}

struct ep_case {
	const char	*in;
	int		 rc;
	int		 family;
	unsigned	 port;
	const char	*path;
};

static const struct ep_case ep_cases[] = {
	{ "unix:/run/clamav/clamd.ctl", 0, AF_UNIX, 0,
	    "/run/clamav/clamd.ctl" },
	{ "local:/x.sock", 0, AF_UNIX, 0, "/x.sock" },
	{ "/var/run/milter.sock", 0, AF_UNIX, 0, "/var/run/milter.sock" },
	{ "inet:127.0.0.1:8891", 0, AF_INET, 8891, NULL },
	{ "inet:8891@127.0.0.1", 0, AF_INET, 8891, NULL },
	{ "inet6:8891@::1", 0, AF_INET6, 8891, NULL },
	{ "inet6:[::1]:8891", 0, AF_INET6, 8891, NULL },
	{ "127.0.0.1:3310", 0, AF_INET, 3310, NULL },
	{ "[::1]:3310", 0, AF_INET6, 3310, NULL },
	{ "127.0.0.1", -1, 0, 0, NULL },
	{ "inet:localhost:8891", -1, 0, 0, NULL },
	{ "unix:relative", -1, 0, 0, NULL },
	{ "unix:", -1, 0, 0, NULL },
	{ "inet:127.0.0.1:99999", -1, 0, 0, NULL },
	{ "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -1, 0, 0,
	    NULL },
};

static void
test_endpoint(void)
{
	const struct ep_case	*c;
	struct scan_endpoint	 e;
	const struct sockaddr_in *sin = (const void *)&e.ss;
	const struct sockaddr_in6 *sin6 = (const void *)&e.ss;
	const struct sockaddr_un *sun = (const void *)&e.ss;
	const char		*why;
	size_t			 i;
	int			 ok;

	for (i = 0; i < sizeof(ep_cases) / sizeof(ep_cases[0]); i++) {
		c = &ep_cases[i];
		why = NULL;
		ok = config_parse_endpoint(c->in, &e, &why) == c->rc;
		if (ok && c->rc == -1)
			ok = why != NULL;
		if (ok && c->rc == 0) {
			ok = e.ss.ss_family == c->family && e.action == -1 &&
			    strcmp(e.text, c->in) == 0;
			if (c->family == AF_INET)
				ok = ok && ntohs(sin->sin_port) == c->port;
			if (c->family == AF_INET6)
				ok = ok && ntohs(sin6->sin6_port) == c->port;
			if (c->family == AF_UNIX)
				ok = ok && strcmp(sun->sun_path, c->path) == 0;
		}
		check(ok, "endpoint", i);
	}
}

/* config: the keys of the scanners, with their defaults */
static void
test_config(void)
{
	static const char conf[] =
	    "listen = 127.0.0.1:2525\n"
	    "clamd_socket = unix:/run/clamd.sock\n"
	    "clamd = accept\n"
	    "milters = inet:127.0.0.1:8891, unix:/run/m.sock=reject\n"
	    "milter_default_action = accept\n"
	    "milter_content_timeout = 2m\n";
	static const char bad[] =
	    "listen = 127.0.0.1:2525\n"
	    "milters = inet:127.0.0.1:8891=maybe\n";
	struct config	*c;
	FILE		*devnull = fopen("/dev/null", "w");

	c = config_load_mem("test.conf", conf, sizeof(conf) - 1, devnull);
	check(c != NULL && c->has_clamd_socket && c->clamd ==
	    CONF_CLAMD_ACCEPT && c->nmilters == 2 &&
	    c->milters[0].action == -1 &&
	    c->milters[1].action == CONF_MILTER_REJECT &&
	    c->milter_default_action == CONF_MILTER_ACCEPT &&
	    c->milter_content_timeout == 120 &&
	    c->milter_command_timeout == 30 &&
	    c->clamd_max_size == 25UL << 20 && c->clamd_timeout == 60,
	    "config", 0);
	config_free(c);
	c = config_load_mem("test.conf", conf, 24, devnull);
	check(c != NULL && !c->has_clamd_socket && c->nmilters == 0 &&
	    c->clamd == CONF_CLAMD_TEMPFAIL &&
	    c->milter_default_action == CONF_MILTER_TEMPFAIL, "config", 1);
	config_free(c);
	c = config_load_mem("test.conf", bad, sizeof(bad) - 1, devnull);
	check(c == NULL, "config", 2);
	config_free(c);
	if (devnull != NULL)
		fclose(devnull);
}

int
main(void)
{
	test_replies();
	test_optneg();
	test_header_value();
	test_framing();
	test_clamd();
	test_endpoint();
	test_config();
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0;
}
