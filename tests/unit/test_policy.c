/*
 * test_policy.c - table-driven tests of the pure parts of the smtp-in
 * policy: dnsbl/rhsbl list specs (src/common/dnsbl.c), their query
 * names and answer filters, the HELO syntax check, the header From:
 * scanner, the relay_recipients map, and the policy keys of the
 * config parser.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/dnsbl.h"
#include "common/rcptmap.h"
#include "smtp_in/smtp_in.h"

#define B(s)	s, sizeof(s) - 1

static int	 npass, nfail;

static void
check(int ok, const char *what, const char *detail)
{
	if (ok) {
		npass++;
		return;
	}
	nfail++;
	printf("FAIL %s: %s\n", what, detail);
}

/* a spec, whether it parses, and answers it must (not) count */
struct spec_case {
	const char	*spec;
	int		 rc;
	const char	*zone;
	unsigned	 weight;
	const char	*yes[3];
	const char	*no[3];
};

static const struct spec_case spec_cases[] = {
	{ "zen.example", 0, "zen.example", 1,
	    { "127.0.0.2", "127.1.2.3", NULL },
	    { "127.255.255.254", "10.0.0.2", "128.0.0.2" } },
	{ "Zen.Example.=127.0.0.2*3", 0, "zen.example", 3,
	    { "127.0.0.2", NULL, NULL }, { "127.0.0.3", "127.0.1.2", NULL } },
	{ "bl.example=127.0.0.[2..11]*2", 0, "bl.example", 2,
	    { "127.0.0.2", "127.0.0.11", "127.0.0.5" },
	    { "127.0.0.1", "127.0.0.12", NULL } },
	{ "bl.example=127.0.[0;1].[2;4..7]", 0, "bl.example", 1,
	    { "127.0.1.2", "127.0.0.7", NULL },
	    { "127.0.2.2", "127.0.0.3", "127.0.1.8" } },
	{ "bl.example*100", 0, "bl.example", 100,
	    { "127.0.0.2", NULL, NULL }, { NULL, NULL, NULL } },
	{ "bl.example=127.255.255.254", 0, "bl.example", 1,
	    { "127.255.255.254", NULL, NULL }, { NULL, NULL, NULL } },
	{ "under_score.example", 0, "under_score.example", 1,
	    { NULL, NULL, NULL }, { NULL, NULL, NULL } },
	/* refused */
	{ "", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl..example", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example*0", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example*101", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example*", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example*2=127.0.0.2", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=127.0.0", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=127.0.0.256", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=127.0.0.2.1", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=127.0.0.[5..2]", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=127.0.0.[2", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=127.0.0.[]", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=", -1, NULL, 0, { NULL }, { NULL } },
	{ "=127.0.0.2", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl example", -1, NULL, 0, { NULL }, { NULL } },
	{ "bl.example=0127.0.0.2", -1, NULL, 0, { NULL }, { NULL } },
};

static void
test_specs(void)
{
	const struct spec_case	*c;
	struct dnsbl		 bl;
	const char		*why;
	uint8_t			 a[4];
	size_t			 i, j;
	int			 rc;

	for (i = 0; i < sizeof(spec_cases) / sizeof(spec_cases[0]); i++) {
		c = &spec_cases[i];
		why = NULL;
		rc = dnsbl_parse(c->spec, strlen(c->spec), &bl, &why);
		check(rc == c->rc, "dnsbl_parse rc", c->spec);
		if (rc != 0 || c->rc != 0) {
			check(rc != -1 || why != NULL, "dnsbl_parse why",
			    c->spec);
			continue;
		}
		check(strcmp(bl.zone, c->zone) == 0, "dnsbl zone", c->spec);
		check(bl.weight == c->weight, "dnsbl weight", c->spec);
		for (j = 0; j < 3; j++) {
			if (c->yes[j] != NULL) {
				inet_pton(AF_INET, c->yes[j], a);
				check(dnsbl_match(&bl, a), c->spec, c->yes[j]);
			}
			if (c->no[j] != NULL) {
				inet_pton(AF_INET, c->no[j], a);
				check(!dnsbl_match(&bl, a), c->spec, c->no[j]);
			}
		}
	}
}

static void
test_names(void)
{
	char		 out[DNSBL_QNAME_MAX + 1], zone[DNSBL_ZONE_MAX + 1];
	uint8_t		 a[16];
	int		 n;

	inet_pton(AF_INET, "192.0.2.99", a);
	n = dnsbl_name_addr(AF_INET, a, "bl.example", out);
	check(n > 0 && strcmp(out, "99.2.0.192.bl.example") == 0,
	    "name v4", out);
	inet_pton(AF_INET6, "2001:db8:1:2:3:4:567:89ab", a);
	n = dnsbl_name_addr(AF_INET6, a, "bl.example", out);
	check(n > 0 && strcmp(out, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0."
	    "1.0.0.0.8.b.d.0.1.0.0.2.bl.example") == 0, "name v6 (RFC 5782 "
	    "2.4)", out);
	/* a zone that makes the IPv6 name too long */
	memset(zone, 'a', sizeof(zone) - 1);
	zone[sizeof(zone) - 1] = '\0';
	zone[63] = zone[127] = zone[191] = '.';
	check(dnsbl_name_addr(AF_INET6, a, zone, out) == -1, "name v6 long",
	    "");
	n = dnsbl_name_domain(B("Spam.Example."), "rhs.example", out);
	check(n > 0 && strcmp(out, "spam.example.rhs.example") == 0,
	    "name domain", out);
	check(dnsbl_name_domain(B("bad..example"), "rhs.example", out) == -1,
	    "name bad domain", "");
	check(dnsbl_name_domain(B("[192.0.2.1]"), "rhs.example", out) == -1,
	    "name literal", "");
	check(dnsbl_name_domain(B(""), "rhs.example", out) == -1,
	    "name empty", "");
}

struct helo_case {
	const char	*in;
	size_t		 len;
	int		 ok;
};

static const struct helo_case helo_cases[] = {
	{ B("mail.example.com"), 1 },
	{ B("mail.example.com."), 1 },
	{ B("mailgw"), 1 },
	{ B("[192.0.2.1]"), 1 },
	{ B("[IPv6:2001:db8::1]"), 1 },
	{ B("a..b"), 0 },
	{ B(".example"), 0 },
	{ B("!!"), 0 },
	{ B("[192.0.2.256]"), 0 },
	{ B("[junk]"), 0 },
	{ B("exa mple"), 0 },
	{ B("ex\0ample"), 0 },
	{ B(""), 0 },
};

static void
test_helo(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]); i++)
		check(smtp_policy_helo_syntax(helo_cases[i].in,
		    helo_cases[i].len) == helo_cases[i].ok, "helo syntax",
		    helo_cases[i].in);
}

/* header From: scan: the header text, split at split (0 = whole) */
struct hfrom_case {
	const char	*hdr;
	size_t		 split;
	int		 local;
	const char	*found;
};

static const struct hfrom_case hfrom_cases[] = {
	{ "From: a@ours.test\r\n\r\n", 0, 1, "ours.test" },
	{ "From: a@ours.test\r\n\r\n", 9, 1, "ours.test" },
	{ "FROM : <a@OURS.test.>\r\n\r\n", 0, 1, "ours.test" },
	{ "From: x <y@far.test>,\r\n z@ours.test\r\n\r\n", 0, 1,
	    "ours.test" },
	{ "From: a@ours.test <b@far.test>\r\n\r\n", 0, 1, "ours.test" },
	{ "From: a @ ours.test\r\n\r\n", 0, 1, "ours.test" },
	{ "From: \"a@ours.test\" <b@far.test>\r\n\r\n", 0, 0, NULL },
	{ "From: \"q\\\"@ours.test\" <b@far.test>\r\n\r\n", 0, 0, NULL },
	{ "From: b@far.test (a@ours.test (x))\r\n\r\n", 0, 0, NULL },
	{ "From: b@[192.0.2.1]\r\n\r\n", 0, 0, NULL },
	{ "From: b@sub.ours.test\r\n\r\n", 0, 0, NULL },
	{ "From: b@ours.testing\r\n\r\n", 0, 0, NULL },
	{ "Reply-To: a@ours.test\r\nFrom: b@far.test\r\n\r\n", 0, 0,
	    NULL },
	{ "From-X: a@ours.test\r\n\r\n", 0, 0, NULL },
	{ "Subject: x\r\n\r\nFrom: a@ours.test\r\n", 0, 0, NULL },
	{ "not a header\r\nFrom: a@ours.test\r\n\r\n", 0, 0, NULL },
	{ "From: b@far.test\r\nFrom: c@ours.test\r\n\r\n", 0, 1,
	    "ours.test" },
};

static void
test_hfrom(void)
{
	struct config		*c;
	struct smtp_hfrom	 h;
	const struct hfrom_case	*t;
	static const char	 conf[] = "local_domains = ours.test\n";
	size_t			 i, len, k;

	c = config_load_mem("test.conf", conf, sizeof(conf) - 1, NULL);
	if (c == NULL) {
		check(0, "hfrom config", "");
		return;
	}
	for (i = 0; i < sizeof(hfrom_cases) / sizeof(hfrom_cases[0]); i++) {
		t = &hfrom_cases[i];
		len = strlen(t->hdr);
		smtp_hfrom_init(&h);
		if (t->split == 0) {
			/* one octet at a time: state must carry over */
			for (k = 0; k < len; k++)
				smtp_hfrom_scan(&h, c, t->hdr + k, 1);
		} else {
			smtp_hfrom_scan(&h, c, t->hdr, t->split);
			smtp_hfrom_scan(&h, c, t->hdr + t->split,
			    len - t->split);
		}
		check(h.local == t->local, "hfrom local", t->hdr);
		if (t->found != NULL)
			check(strcmp(h.found, t->found) == 0, "hfrom found",
			    t->hdr);
		smtp_hfrom_init(&h);
		smtp_hfrom_scan(&h, c, t->hdr, len);
		check(h.local == t->local, "hfrom local whole", t->hdr);
	}
	config_free(c);
}

/* relay_recipients: lookups in one map, then files with errors */
struct rmap_case {
	const char	*local;
	const char	*domain;
	int		 want;
};

static const struct rmap_case rmap_cases[] = {
	{ "alice", "example.com", 1 },
	{ "ALICE", "Example.COM.", 1 },
	{ "bob", "example.com", 1 },
	{ "carol", "example.com", 0 },
	{ "", "example.com", 0 },
	{ "anyone", "lists.example.com", 1 },
	{ "x", "other.test", -1 },
	{ "alice", "sub.example.com", -1 },
};

static void
test_rcptmap(void)
{
	static const char	 good[] = "# users\r\nalice@example.com\r\n"
	    "  Bob@EXAMPLE.com.  \n\n@lists.example.com\nalice@example.com";
	static const char	*bad[] = { "alice\n", "a b@example.com\n",
	    "a@bad..domain\n", "a@[192.0.2.1]\n", "a@\n",
	    "a@exa\x01mple.com\n", "a@example.com\0\n" };
	struct rcptmap		*m;
	const struct rmap_case	*t;
	size_t			 i;

	if ((m = rcptmap_new()) == NULL)
		return;
	check(rcptmap_parse(m, "good", good, sizeof(good) - 1, NULL) == 0,
	    "rcptmap good", "");
	rcptmap_finish(m);
	check(rcptmap_count(m) == 3, "rcptmap count (duplicates)", "");
	for (i = 0; i < sizeof(rmap_cases) / sizeof(rmap_cases[0]); i++) {
		t = &rmap_cases[i];
		check(rcptmap_lookup(m, t->local, strlen(t->local), t->domain,
		    strlen(t->domain)) == t->want, "rcptmap lookup",
		    t->local);
	}
	rcptmap_free(m);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if ((m = rcptmap_new()) == NULL)
			return;
		check(rcptmap_parse(m, "bad", bad[i], strlen(bad[i]) +
		    (i == 6 ? 2 : 0), NULL) == 1, "rcptmap bad", bad[i]);
		rcptmap_free(m);
	}
}

struct conf_case {
	const char	*text;
	int		 ok;
};

static const struct conf_case conf_cases[] = {
	{ "dnsbl = zen.example=127.0.0.[2..11]*2, bl.example\n"
	  "rhsbl = dbl.example\ndnsbl_threshold = 3\nfcrdns = reject\n"
	  "greet_delay = 2s\nreject_delay = 1s\nconn_rate_limit = 10\n"
	  "msg_rate_limit = 5\nrate_window = 5m\n"
	  "policy_dns_timeout = 3s\nsender_resolvable = yes\n", 1 },
	{ "fcrdns = maybe\n", 0 },
	{ "dnsbl = bl.example*0\n", 0 },
	{ "dnsbl_threshold = 0\n", 0 },
	{ "greet_delay = 2m\n", 0 },
	{ "policy_dns_timeout = 0\n", 0 },
};

static void
test_config(void)
{
	struct config	*c;
	FILE		*devnull = fopen("/dev/null", "w");
	size_t		 i;

	for (i = 0; i < sizeof(conf_cases) / sizeof(conf_cases[0]); i++) {
		c = config_load_mem("test.conf", conf_cases[i].text,
		    strlen(conf_cases[i].text), devnull);
		check((c != NULL) == conf_cases[i].ok, "config",
		    conf_cases[i].text);
		if (i == 0 && c != NULL) {
			check(c->ndnsbl == 2 && c->nrhsbl == 1 &&
			    c->dnsbl[0].weight == 2 &&
			    strcmp(c->dnsbl[1].zone, "bl.example") == 0 &&
			    c->dnsbl_threshold == 3 &&
			    c->fcrdns == FCRDNS_REJECT &&
			    c->greet_delay == 2 && c->reject_delay == 1 &&
			    c->conn_rate_limit == 10 &&
			    c->msg_rate_limit == 5 && c->rate_window == 300 &&
			    c->policy_dns_timeout == 3 &&
			    c->sender_resolvable == 1 && c->helo_checks == 1,
			    "config values", "");
		}
		config_free(c);
	}
	/* the defaults */
	c = config_load_mem("test.conf", "", 0, devnull);
	check(c != NULL && c->ndnsbl == 0 && c->fcrdns == FCRDNS_OFF &&
	    c->greet_delay == 0 && c->reject_delay == 0 &&
	    c->dnsbl_threshold == 1 && c->policy_dns_timeout == 5 &&
	    c->helo_checks == 1 && c->sender_resolvable == 0,
	    "config defaults", "");
	config_free(c);
	if (devnull != NULL)
		fclose(devnull);
}

int
main(void)
{
	test_specs();
	test_names();
	test_helo();
	test_hfrom();
	test_rcptmap();
	test_config();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail > 0;
}
