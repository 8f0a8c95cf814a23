"""test_spf - SPF (RFC 7208) at smtp-in (src/common/spf.c, smtp_policy.c).

A real DNS server on loopback (dnsserver.py) publishes SPF records that
give pass, fail, softfail, neutral, none, permerror, and a temperror
through a name it never answers.  relay_networks is 127.0.0.1 alone,
so the clients on 127.0.0.2.. are untrusted Internet hosts.  Checked:
the RCPT replies (spf = reject_fail), the Authentication-Results header
of delivered mail (RFC 8601), the event=spf log line, and that the
HELO name is the identity of the null sender.  A second zone set covers
ptr (with a reverse zone), several MX hosts, a DNS timeout under mx and
a, and the limits of RFC 7208 4.6.4 (two void lookups, ten lookups
through include and redirect).
"""

import re

import moatlib
from dnsserver import dnsserver  # noqa: F401 (fixture)

ZONES = {
    "test": {
        "pass.test": [("TXT", "v=spf1 ip4:127.0.0.0/29 -all"),
                      ("TXT", "an unrelated record")],
        "fail.test": [("TXT", "v=spf1 ip4:192.0.2.1 -all")],
        "soft.test": [("TXT", "v=spf1 ~all")],
        "neutral.test": [("TXT", "v=spf1 ?all")],
        "nospf.test": [("A", "192.0.2.9")],
        "perm.test": [("TXT", "v=spf1 bogus:x -all")],
        "two.test": [("TXT", "v=spf1 -all"), ("TXT", "v=spf1 +all")],
        # include, a, mx, exists with macros, redirect
        "inc.test": [("TXT", ["v=spf1 include:_spf.pass.test ",
                              "-all"])],
        "_spf.pass.test": [("TXT", "v=spf1 a:hosts.pass.test/30 -all")],
        "hosts.pass.test": [("A", "127.0.0.4")],
        "mx.test": [("TXT", "v=spf1 mx -all"),
                    ("MX", 10, "mail.mx.test")],
        "mail.mx.test": [("A", "127.0.0.5")],
        "macro.test": [("TXT", "v=spf1 exists:%{ir}.%{l}._spf.%{d} -all")],
        "5.0.0.127.alice._spf.macro.test": [("A", "127.0.0.2")],
        "redir.test": [("TXT", "v=spf1 redirect=mx.test")],
        "loop.test": [("TXT", "v=spf1 include:loop.test -all")],
        "helo.test": [("TXT", "v=spf1 ip4:127.0.0.6 -all")],
        "slow.test": [("TXT", "v=spf1 -all")],
    },
}

BEHAVIOUR = {"slow.test": "timeout"}


def spf_moat(moat, dnsserver, zones=None, behaviour=None, **overrides):
    d = dnsserver(zones or ZONES, behaviour=dict(behaviour or BEHAVIOUR))
    conf = {"relay_networks": "127.0.0.1/32",
            "dns_servers": "%s:%d" % (d.host, d.port),
            "policy_dns_timeout": "2s"}
    conf.update(overrides)
    return moat(**conf), d


def rcpt(m, source, sender, helo="client.test"):
    c = m.raw(source=source)
    assert c.cmd("EHLO " + helo).code == 250
    assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
    return c, c.cmd("RCPT TO:<user@example.test>")


def deliver(m, source, sender, helo="client.test"):
    c, r = rcpt(m, source, sender, helo)
    assert r.code == 250, (sender, r)
    assert c.cmd("DATA").code == 354
    c.send("Subject: spf\r\n\r\nhi\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")


def auth_results(msg):
    """The unfolded Authentication-Results fields of a message."""
    msg = msg.replace(b"\r\n", b"\n")     # Maildir: LF line ends
    head = msg.split(b"\n\n", 1)[0].decode()
    head = re.sub(r"\n[ \t]+", " ", head)
    return [line for line in head.split("\n")
            if line.lower().startswith("authentication-results:")]


CASES = [
    # sender, source, result
    ("alice@pass.test", "127.0.0.2", "pass"),
    ("alice@fail.test", "127.0.0.2", "fail"),
    ("alice@soft.test", "127.0.0.2", "softfail"),
    ("alice@neutral.test", "127.0.0.2", "neutral"),
    ("alice@nospf.test", "127.0.0.2", "none"),
    ("alice@perm.test", "127.0.0.2", "permerror"),
    ("alice@two.test", "127.0.0.2", "permerror"),
    ("alice@inc.test", "127.0.0.4", "pass"),
    ("alice@inc.test", "127.0.0.2", "fail"),
    ("alice@mx.test", "127.0.0.5", "pass"),
    ("alice@macro.test", "127.0.0.5", "pass"),
    ("bob@macro.test", "127.0.0.5", "fail"),
    ("alice@redir.test", "127.0.0.5", "pass"),
    ("alice@redir.test", "127.0.0.3", "fail"),
    ("alice@loop.test", "127.0.0.2", "permerror"),
    ("alice@slow.test", "127.0.0.2", "temperror"),
]


def test_spf_tag_results_in_header_and_log(moat, dnsserver):
    """spf = tag (the default): every result tagged, nothing refused."""
    m, _ = spf_moat(moat, dnsserver)
    mark = m.log_mark()
    for sender, src, _ in CASES:
        deliver(m, src, sender)
    msgs = m.wait_maildir("user", count=len(CASES))
    got = {}
    for msg in msgs:
        ar = auth_results(msg)
        assert len(ar) == 1, msg
        mo = re.match(r"Authentication-Results: %s; spf=(\w+) \([^)]*\) "
                      r"smtp\.mailfrom=(\S+)$" % re.escape(moatlib.HOSTNAME),
                      ar[0])
        assert mo, ar
        # the Received header of smtp-in comes first
        assert msg.index(b"Authentication-Results:") > \
            msg.index(b"Received: from client.test")
        got.setdefault(mo.group(2), []).append(mo.group(1))
    for sender, src, result in CASES:
        assert result in got[sender], (sender, src, got[sender])
    for sender, src, result in CASES:
        m.wait_log(r"event=spf client=%s identity=mailfrom sender=<%s> "
                   r"result=%s " % (re.escape(src), re.escape(sender),
                                    result), since=mark)


def test_spf_reject_fail(moat, dnsserver):
    m, _ = spf_moat(moat, dnsserver, spf="reject_fail")
    mark = m.log_mark()
    c, r = rcpt(m, "127.0.0.2", "alice@fail.test")
    assert r.first.startswith("550 5.7.23 "), r
    # postmaster stays reachable (RFC 5321 4.5.1)
    assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
    c.cmd("QUIT")
    c, r = rcpt(m, "127.0.0.2", "alice@slow.test")
    assert r.first.startswith("451 4.7.24 "), r
    c.cmd("QUIT")
    for sender in ("alice@soft.test", "alice@perm.test", "alice@pass.test",
                   "alice@nospf.test"):
        c, r = rcpt(m, "127.0.0.2", sender)
        assert r.code == 250, (sender, r)
        c.cmd("QUIT")
    m.wait_log(r"event=reject type=spf client=127\.0\.0\.2 domain=fail\.test "
               r"result=fail", since=mark)


def test_spf_null_sender_uses_helo(moat, dnsserver):
    m, _ = spf_moat(moat, dnsserver, spf="reject_fail")
    mark = m.log_mark()
    c, r = rcpt(m, "127.0.0.2", "", helo="helo.test")
    assert r.first.startswith("550 5.7.23 "), r
    c.cmd("QUIT")
    deliver(m, "127.0.0.6", "", helo="helo.test")
    msg = m.wait_maildir("user")[0]
    assert re.search(r"spf=pass \([^)]*\) smtp\.helo=helo\.test$",
                     auth_results(msg)[0]), msg
    m.wait_log(r"event=spf client=127\.0\.0\.6 identity=helo "
               r"sender=<postmaster@helo\.test> result=pass", since=mark)


def test_spf_trusted_and_off(moat, dnsserver):
    """relay_networks and spf = off: no lookup, no header."""
    m, d = spf_moat(moat, dnsserver)
    deliver(m, "127.0.0.1", "alice@fail.test")
    msg = m.wait_maildir("user")[0]
    assert auth_results(msg) == []
    m2, d2 = spf_moat(moat, dnsserver, spf="off")
    deliver(m2, "127.0.0.2", "alice@fail.test")
    msg = m2.wait_maildir("user")[0]
    assert auth_results(msg) == []
    assert d.count("fail.test", "TXT") == 0
    assert d2.count("fail.test", "TXT") == 0


# ---- ptr, several MX hosts, DNS errors and the lookup limits -------------

def more_zones():
    """ZONES plus the names of test_spf_mechanisms_and_limits."""
    t = dict(ZONES["test"])
    t["ptr.test"] = [("TXT", "v=spf1 ptr -all")]
    # 127.0.0.2 names x (wrong address), h (its own) and a foreign name
    t["x.ptr.test"] = [("A", "127.0.0.9")]
    t["h.ptr.test"] = [("A", "127.0.0.2")]
    t["mx2.test"] = [("TXT", "v=spf1 mx -all"), ("MX", 10, "a.mx2.test"),
                     ("MX", 20, "b.mx2.test")]
    t["a.mx2.test"] = [("A", "127.0.0.9")]
    t["b.mx2.test"] = [("A", "127.0.0.3")]
    t["mxtemp.test"] = [("TXT", "v=spf1 mx -all"),
                        ("MX", 10, "t.mxtemp.test")]
    t["t.mxtemp.test"] = [("A", "127.0.0.3")]
    t["atemp.test"] = [("TXT", "v=spf1 a:t.mxtemp.test -all")]
    # RFC 7208 4.6.4: a third lookup with no answer is a permerror
    t["void.test"] = [("TXT", "v=spf1 a:n1.void.test a:n2.void.test "
                       "a:n3.void.test -all")]
    t["void2.test"] = [("TXT", "v=spf1 a:n1.void.test a:n2.void.test "
                        "ip4:127.0.0.2 -all")]
    # ten lookups at most: l0 and r0 need eleven, l1 and r1 ten
    for i in range(12):
        t["l%d.test" % i] = [("TXT", "v=spf1 include:l%d.test -all"
                              % (i + 1) if i < 11 else "v=spf1 +all")]
        t["r%d.test" % i] = [("TXT", "v=spf1 redirect=r%d.test" % (i + 1)
                              if i < 11 else "v=spf1 +all")]
    return {"test": t,
            "0.0.127.in-addr.arpa": {
                "2.0.0.127.in-addr.arpa": [("PTR", "x.ptr.test"),
                                           ("PTR", "h.ptr.test"),
                                           ("PTR", "other.example")],
                "3.0.0.127.in-addr.arpa": [("PTR", "x.ptr.test")]}}


MECHANISM_CASES = [
    ("alice@ptr.test", "127.0.0.2", "pass"),
    ("alice@ptr.test", "127.0.0.3", "fail"),   # its name is not its own
    ("alice@ptr.test", "127.0.0.4", "fail"),   # no PTR at all
    ("alice@mx2.test", "127.0.0.3", "pass"),   # the second MX host
    ("alice@mx2.test", "127.0.0.2", "fail"),
    ("alice@mxtemp.test", "127.0.0.2", "temperror"),
    ("alice@atemp.test", "127.0.0.2", "temperror"),
    ("alice@void.test", "127.0.0.2", "permerror"),
    ("alice@void2.test", "127.0.0.2", "pass"),
    ("alice@l0.test", "127.0.0.2", "permerror"),
    ("alice@l1.test", "127.0.0.2", "pass"),
    ("alice@r0.test", "127.0.0.2", "permerror"),
    ("alice@r1.test", "127.0.0.2", "pass"),
]


def test_spf_mechanisms_and_limits(moat, dnsserver):
    behaviour = dict(BEHAVIOUR)
    behaviour["t.mxtemp.test"] = "timeout"
    m, _ = spf_moat(moat, dnsserver, zones=more_zones(),
                    behaviour=behaviour)
    mark = m.log_mark()
    for sender, src, _ in MECHANISM_CASES:
        deliver(m, src, sender)
    for sender, src, result in MECHANISM_CASES:
        m.wait_log(r"event=spf client=%s identity=mailfrom sender=<%s> "
                   r"result=%s " % (re.escape(src), re.escape(sender),
                                    result), since=mark)
    # the verdicts reach the delivered mail as well (RFC 8601)
    got = m.wait_maildir("user", count=len(MECHANISM_CASES))
    found = sorted(re.search(r"spf=(\w+)(?: \([^)]*\))? "
                             r"smtp\.mailfrom=(\S+)",
                             auth_results(g)[0]).groups() for g in got)
    assert found == sorted((r, s) for s, _, r in MECHANISM_CASES), found
