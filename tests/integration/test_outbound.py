"""test_outbound - delivery by SMTP: smtp-out, the queue's scheduling,
DSNs for remote failures and outbound privacy (issue 3).

A real DNS server (dnsserver.py) on loopback serves the test zones;
real SMTP sinks (smtpsink.py) on distinct loopback addresses and one
common port play the MX hosts; moatd uses both through dns_servers and
remote_smtp_port.  The host names are fixed:

    hN.hosts.test      A 127.0.0.N   (N = 2..8; a sink there or nothing,
                                      which refuses connections)
    h6v6.hosts.test    AAAA ::1
    mx.example.test    A 127.0.0.1   (moat's own hostname: loops)
    nosuch.hosts.test  NXDOMAIN

and each test adds the zones of its recipient domains.  The sender is
a local user (sender@example.test, Maildir), so that every DSN can be
read from mail/example.test/sender/ and parsed with the email package.
Each test asserts on what came out the other side: the octets at the
sinks, their command logs and connection counts, the DSNs, the spool,
the log lines (event=delivery ... relay= status= dsn=) and moatctl.

References: docs/configuration.md ("Outbound SMTP", hide_internal_hosts),
src/common/outbound.h and src/smtp_out/smtp_out.h (result texts),
RFC 5321 5.1 (MX order, implicit MX), RFC 7505 (null MX), RFC 1870
(SIZE), RFC 6152 (8BITMIME), RFC 3030 (CHUNKING), RFC 3464 (DSN).
"""

import re
import time

import pytest

import moatlib
from dnsserver import DnsServer
from moatlib import wait_until
from smtpsink import SmtpSink, common_port
from test_dsn import parse, report
from test_queue_ctl import QID, ctl_ok, parse_mailq, parse_show

SENDER = "sender@example.test"
HOST_NUMBERS = range(2, 9)
SINK_HOSTS = ["127.0.0.%d" % i for i in HOST_NUMBERS] + ["::1"]
# fast retries unless a test wants "at once" proven (RETRY_NEVER)
FAST = dict(retry_min="1s", retry_max="2s")
RETRY_NEVER = dict(retry_min="1h", retry_max="2h")
WAIT = 15.0


def host(n):
    """The name of the MX host on 127.0.0.n ("v6": ::1)."""
    return "h6v6.hosts.test" if n == "v6" else "h%d.hosts.test" % n


def addr(n):
    return "::1" if n == "v6" else "127.0.0.%d" % n


def base_zones():
    hosts = {host(i): [("A", addr(i))] for i in HOST_NUMBERS}
    hosts[host("v6")] = [("AAAA", "::1")]
    return {
        "hosts.test": hosts,
        "example.test": {"mx.example.test": [("A", "127.0.0.1")]},
    }


class Net:
    """One test's world: moat m, DNS server dns, sinks by host number."""

    def __init__(self, m, dns, port, sinks):
        self.m = m
        self.dns = dns
        self.port = port
        self.sinks = sinks

    def sink(self, n):
        return self.sinks[n]

    def relay(self, n, name=None):
        """The relay= text of a delivery to sink n by name (or host)."""
        a = addr(n)
        return "%s[%s]:%d" % (name or host(n), a, self.port)


@pytest.fixture
def net(moat):
    """net(domains={DOMAIN: [records]}, sinks={N: {options}}, ...)

    Starts the DNS server with the base zones plus one zone per domain
    (its records at the apex, or a dict {name: [records]} for more),
    one SmtpSink per entry of sinks on 127.0.0.N (or ::1 for "v6") and
    the common port, and moatd with dns_servers and remote_smtp_port
    set.  Strings in transport and in the overrides may name {port}
    (the common port) and {mail} (moat's mail root).
    """
    sinks_made = []
    servers = []

    def factory(domains=None, sinks=None, behaviour=None, transport=(),
                start=True, **overrides):
        zones = base_zones()
        for d, recs in (domains or {}).items():
            zones[d] = recs if isinstance(recs, dict) else {d: recs}
        dns = DnsServer(zones, behaviour=behaviour).start()
        servers.append(dns)
        port = common_port(SINK_HOSTS)
        made = {}
        for n, opts in (sinks or {}).items():
            s = SmtpSink(host=addr(n), port=port, **opts).start()
            sinks_made.append(s)
            made[n] = s
        settings = dict(FAST)
        settings.update(overrides)
        m = moat(start=False, dns_servers=dns.address,
                 remote_smtp_port=port, **settings)
        fmt = dict(port=port, mail=m.mailroot)
        for k, v in list(m.settings.items()):
            if isinstance(v, str) and "{port}" in v:
                m.settings[k] = v.format(**fmt)
        m.transport_extra = [t.format(**fmt) for t in transport]
        m.write_config()
        if start:
            m.start()
        return Net(m, dns, port, made)

    yield factory
    for s in sinks_made:
        s.stop()
    for d in servers:
        d.stop()


# ---- helpers ---------------------------------------------------------

def msg(subject, body=b"the body\r\n", extra=b"", to=b"rcpt@remote.test",
        frm=SENDER.encode()):
    """A small RFC 5322 message with CRLF line ends (not dot-stuffed)."""
    return (b"From: " + frm + b"\r\nTo: " + to +
            b"\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: <" + subject.encode() +
            b"@example.test>\r\n" + extra + b"\r\n" + body)


def dot_stuff(content):
    """RFC 5321 4.5.2: a line that starts with '.' gets one more."""
    lines = content.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l
                        for l in lines)


def submit(m, rcpts, content, sender=SENDER, params="", helo="client.test",
           source=None):
    """Submit one message over SMTP; returns its queue id."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    c = m.raw(source=source)
    try:
        c.ehlo(helo)
        r = c.cmd("MAIL FROM:<%s>%s" % (sender, " " + params if params
                                         else ""))
        assert r.code == 250, r
        for rc in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rc)
            assert r.code == 250, (rc, r)
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(content) + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        mq = re.match(r"2\.0\.0 Ok: queued as (%s)$" % QID, r.lines[0])
        assert mq, r
        c.cmd("QUIT")
    finally:
        c.close()
    return mq.group(1)


FIELD_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def fields(line):
    """key=value fields of a log line; quotes taken off."""
    return {k: v[1:-1] if v.startswith('"') else v
            for k, v in FIELD_RE.findall(line)}


def wait_result(m, qid, rcpt, status, since=0, timeout=WAIT):
    """Wait for the event=delivery line of rcpt with status (sent,
    deferred, bounced, expired); returns its fields."""
    mo = m.wait_log(r"queue: event=delivery qid=%s to=<%s> .*status=%s .*$"
                    % (qid, re.escape(rcpt), status),
                    timeout=timeout, since=since)
    return fields(mo.group(0))


def wait_removed(m, qid, delivered, bounced, timeout=WAIT):
    m.wait_log(r"queue: event=removed qid=%s delivered=%d bounced=%d$"
               % (qid, delivered, bounced), timeout=timeout)


def results(m, qid, rcpt=None):
    """Every event=delivery line of qid (and rcpt) as fields."""
    rx = r"queue: event=delivery qid=%s to=<%s> " % (
        qid, re.escape(rcpt) if rcpt else r"[^>]*")
    return [fields(l) for l in m.log_lines(rx)]


def wait_dsn(m, count=1, timeout=WAIT):
    """The DSNs in the sender's Maildir, parsed (at least count)."""
    return [parse(raw) for raw in m.wait_maildir("sender", count=count,
                                                 timeout=timeout)]


def dsn_groups(dsn):
    """(per-message group, [per-recipient groups]) of a DSN."""
    _, groups, _ = report(dsn)
    return groups[0], groups[1:]


def check_bounce(dsn, rcpts, status):
    """dsn is a bounce from <> for exactly rcpts, each with status."""
    assert dsn["Return-Path"] == "<>"
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["To"].addresses[0].addr_spec == SENDER
    head, groups = dsn_groups(dsn)
    assert head["Reporting-MTA"] == "dns; %s" % moatlib.HOSTNAME
    assert [g["Final-Recipient"] for g in groups] == [
        "rfc822; " + r for r in rcpts], groups
    for g in groups:
        assert g["Action"] == "failed", g
        assert g["Status"] == status, g
    return groups


def header_block(data):
    """The header section of a message as received (CRLF kept)."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    assert sep, data[:300]
    return head + b"\r\n"


def body_of(data):
    return data.partition(b"\r\n\r\n")[2]


def received_headers(data):
    """Unfolded Received: fields of the header section."""
    out = []
    cur = False
    for line in header_block(data).split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and cur:
            out[-1] += b" " + line.strip()
            continue
        cur = line.lower().startswith(b"received:")
        if cur:
            out.append(line)
    return out


def assert_no_more(sink, count, settle=1.5):
    """After settle seconds the sink still has count transactions."""
    time.sleep(settle * moatlib.SLOW)
    got = sink.received()
    assert len(got) == count, got


# ---- next hop: MX order, implicit MX, AAAA ---------------------------

def test_mx_preference_and_fallback(net):
    # MX 10 refuses the connection (nothing on 127.0.0.2), MX 15 closes
    # without a greeting, MX 20 greets with 421 and closes, MX 30 takes
    # the mail: once.
    n = net(domains={"pref.test": [("MX", 30, host(4)),
                                   ("MX", 10, host(2)),
                                   ("MX", 20, host(3)),
                                   ("MX", 15, host(5))]},
            sinks={3: dict(greeting=(421, "4.3.2 too busy"),
                           drop_at="greeting"),
                   4: {}, 5: dict(drop_at="connect")})
    qid = submit(n.m, ["u@pref.test"], msg("pref"))
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    f = wait_result(n.m, qid, "u@pref.test", "sent")
    assert f["relay"] == n.relay(4), f
    assert f["dsn"].startswith("2."), f
    wait_removed(n.m, qid, 1, 0)
    assert t.rcpts == ["u@pref.test"] and t.mail_from == SENDER, t
    assert t.helo == moatlib.HOSTNAME, t
    assert t.peer[0] == "127.0.0.1"
    # MX 15 and 20 were tried, in order, before MX 30, and got nothing
    # after the greeting
    s3, s5 = n.sink(3), n.sink(5)
    assert s3.connections >= 1 and s5.connections >= 1
    assert s5.connect_times[0] <= s3.connect_times[0] <= \
        n.sink(4).connect_times[0]
    assert s5.verbs() == []
    assert s3.verbs() == [] and s3.received() == []
    assert_no_more(n.sink(4), 1)
    assert n.dns.count("pref.test", "MX") >= 1
    assert n.m.spool_files("queue") == []


def test_best_preference_wins(net):
    n = net(domains={"best.test": [("MX", 20, host(5)),
                                   ("MX", 5, host(6))]},
            sinks={5: {}, 6: {}})
    qid = submit(n.m, ["u@best.test"], msg("best"))
    n.sink(6).wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "u@best.test", "sent")
    assert f["relay"] == n.relay(6), f
    wait_removed(n.m, qid, 1, 0)
    assert n.sink(5).connections == 0


def test_each_address_of_an_mx_host_tried(net):
    # one MX host, two addresses: one refuses, the other takes the mail
    n = net(domains={"multi.test": {
        "multi.test": [("MX", 10, "mh.multi.test")],
        "mh.multi.test": [("A", addr(2)), ("A", addr(4))]}},
        sinks={4: {}})
    qid = submit(n.m, ["u@multi.test"], msg("multi"))
    n.sink(4).wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "u@multi.test", "sent")
    assert f["relay"] == n.relay(4, "mh.multi.test"), f
    wait_removed(n.m, qid, 1, 0)


def test_implicit_mx_a_record_only(net):
    n = net(domains={"implicit.test": [("A", addr(4))]}, sinks={4: {}})
    qid = submit(n.m, ["u@implicit.test"], msg("implicit"))
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    f = wait_result(n.m, qid, "u@implicit.test", "sent")
    assert f["relay"] == n.relay(4, "implicit.test"), f
    assert t.rcpts == ["u@implicit.test"]
    assert n.dns.count("implicit.test", "MX") >= 1


def test_mx_with_aaaa_only(net):
    n = net(domains={"six.test": [("MX", 10, host("v6"))]},
            sinks={"v6": {}})
    qid = submit(n.m, ["u@six.test"], msg("six"))
    t = n.sink("v6").wait(1, timeout=WAIT)[0]
    f = wait_result(n.m, qid, "u@six.test", "sent")
    assert f["relay"].startswith(host("v6") + "["), f
    assert "::1" in f["relay"] and f["relay"].endswith(":%d" % n.port), f
    assert t.rcpts == ["u@six.test"]
    assert n.dns.count(host("v6"), "AAAA") >= 1


def test_dual_stack_mx_host_ipv6_first(net):
    # docs/configuration.md: each host's addresses in turn, IPv6 first
    n = net(domains={"dual.test": {
        "dual.test": [("MX", 10, "mx.dual.test")],
        "mx.dual.test": [("A", addr(4)), ("AAAA", "::1")]}},
        sinks={"v6": {}, 4: {}})
    qid = submit(n.m, ["u@dual.test"], msg("dual"))
    n.sink("v6").wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "u@dual.test", "sent")
    assert f["relay"].startswith("mx.dual.test[") and "::1" in f["relay"], f
    assert n.sink(4).connections == 0


# ---- DNS failures ----------------------------------------------------

def test_null_mx_bounces_at_once(net):
    n = net(domains={"nullmx.test": [("MX", 0, ".")]}, **RETRY_NEVER)
    qid = submit(n.m, ["u@nullmx.test"], msg("nullmx"))
    f = wait_result(n.m, qid, "u@nullmx.test", "bounced")
    assert f["dsn"] == "5.1.10" and f["relay"] == "none", f
    wait_removed(n.m, qid, 0, 1)
    dsn = wait_dsn(n.m)[0]
    (g,) = check_bounce(dsn, ["u@nullmx.test"], "5.1.10")
    assert "5.1.10" in g["Diagnostic-Code"], g
    assert len(results(n.m, qid)) == 1


def test_nxdomain_bounces_at_once(net):
    n = net(**RETRY_NEVER)
    qid = submit(n.m, ["u@nosuch.hosts.test"], msg("nxdomain"))
    f = wait_result(n.m, qid, "u@nosuch.hosts.test", "bounced")
    assert f["dsn"] == "5.1.2", f
    wait_removed(n.m, qid, 0, 1)
    dsn = wait_dsn(n.m)[0]
    (g,) = check_bounce(dsn, ["u@nosuch.hosts.test"], "5.1.2")
    assert "nosuch.hosts.test" in g["Diagnostic-Code"], g


def test_servfail_defers_then_flush_delivers(net):
    n = net(domains={"sf.test": [("MX", 10, host(4))]}, sinks={4: {}},
            behaviour={"sf.test": "servfail"}, **RETRY_NEVER)
    qid = submit(n.m, ["u@sf.test"], msg("servfail"))
    f = wait_result(n.m, qid, "u@sf.test", "deferred")
    assert f["dsn"] == "4.4.3", f
    assert f["reason"].startswith("4.4.3 "), f
    blocks, _ = parse_mailq(ctl_ok(n.m, "queue"))
    assert [b["qid"] for b in blocks] == [qid]
    assert re.match(r"^4\.4\.3 .*; next attempt in (59m|60m|1h)$",
                    blocks[0]["reason"]), blocks[0]
    assert n.sink(4).connections == 0
    # the DNS is fixed; a flush (not the hour-long backoff) delivers
    n.dns.set_behaviour("sf.test", None)
    mark = n.m.log_mark()
    assert ctl_ok(n.m, "flush") == "1 message scheduled for delivery\n"
    n.sink(4).wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "u@sf.test", "sent", since=mark)
    assert f["relay"] == n.relay(4), f
    wait_removed(n.m, qid, 1, 0)
    assert n.m.maildir("sender") == []
    assert_no_more(n.sink(4), 1, settle=0.5)


# ---- per-recipient results -------------------------------------------

def test_one_recipient_550_bounced_others_delivered_once(net):
    n = net(domains={"rc.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_codes={
                "bad@rc.test": (550, "5.1.1 <bad@rc.test>: no such user")})})
    rc = ["a@rc.test", "bad@rc.test", "c@rc.test"]
    qid = submit(n.m, rc, msg("rcpt550"))
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert t.rcpts == ["a@rc.test", "c@rc.test"], t
    assert t.refused == [("bad@rc.test", 550)], t
    f = wait_result(n.m, qid, "bad@rc.test", "bounced")
    assert f["dsn"] == "5.1.1" and f["relay"] == n.relay(4), f
    assert "no such user" in f["reason"], f
    wait_removed(n.m, qid, 2, 1)
    dsn = wait_dsn(n.m)[0]
    (g,) = check_bounce(dsn, ["bad@rc.test"], "5.1.1")
    # RFC 3464 2.3.5, 2.3.6: the remote host and its own words
    assert g["Remote-MTA"] == "dns; " + host(4), g
    assert g["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <bad@rc.test>: no such user"), g
    assert_no_more(n.sink(4), 1)
    assert n.sink(4).accepted_rcpts() == ["a@rc.test", "c@rc.test"]
    assert len(wait_dsn(n.m)) == 1


def test_one_recipient_450_retried_alone(net):
    n = net(domains={"rc.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_codes={
                "slow@rc.test": (450, "4.2.1 mailbox busy")})})
    qid = submit(n.m, ["a@rc.test", "slow@rc.test", "c@rc.test"],
                 msg("rcpt450"))
    n.sink(4).wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "slow@rc.test", "deferred")
    assert f["dsn"] == "4.2.1", f
    n.sink(4).set_rcpt_code("slow@rc.test", 250, "2.1.5 ok now")
    t2 = n.sink(4).wait(2, timeout=WAIT)[1]
    assert t2.rcpts == ["slow@rc.test"], t2
    wait_result(n.m, qid, "slow@rc.test", "sent")
    wait_removed(n.m, qid, 3, 0)
    assert_no_more(n.sink(4), 2)
    assert sorted(n.sink(4).accepted_rcpts()) == [
        "a@rc.test", "c@rc.test", "slow@rc.test"]
    assert len(results(n.m, qid, "a@rc.test")) == 1
    assert n.m.maildir("sender") == []


def test_421_during_rcpt_defers_whole_transaction(net):
    # RFC 5321 3.8: 421 closes the session; b@ had no final answer yet
    # and a@ only a RCPT 250: both are tried again, together, once
    n = net(domains={"r421.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_codes={
                "b@r421.test": (421, "4.3.2 shutting down")})})
    qid = submit(n.m, ["a@r421.test", "b@r421.test"], msg("r421"))
    for r in ("a@r421.test", "b@r421.test"):
        f = wait_result(n.m, qid, r, "deferred")
        assert f["dsn"].startswith("4."), f
    assert "DATA" not in n.sink(4).verbs()
    n.sink(4).set_rcpt_code("b@r421.test", 250, "2.1.5 ok")
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert t.rcpts == ["a@r421.test", "b@r421.test"], t
    wait_removed(n.m, qid, 2, 0)
    assert_no_more(n.sink(4), 1, settle=0.5)


def test_mail_from_5xx_bounces_every_recipient(net):
    n = net(domains={"m5.test": [("MX", 10, host(4))]},
            sinks={4: dict(mail_code=(553, "5.7.1 sender refused"))},
            **RETRY_NEVER)
    qid = submit(n.m, ["a@m5.test", "b@m5.test"], msg("mail553"))
    wait_removed(n.m, qid, 0, 2)
    groups = check_bounce(wait_dsn(n.m)[0], ["a@m5.test", "b@m5.test"],
                          "5.7.1")
    for g in groups:
        assert g["Diagnostic-Code"] == "smtp; 553 5.7.1 sender refused", g
    assert n.sink(4).received() == []


def test_data_5xx_bounces_every_recipient(net):
    n = net(domains={"d5.test": [("MX", 10, host(4))]},
            sinks={4: dict(data_code=(554, "5.6.0 content rejected"))})
    qid = submit(n.m, ["a@d5.test", "b@d5.test"], msg("data554"))
    wait_removed(n.m, qid, 0, 2)
    for r in ("a@d5.test", "b@d5.test"):
        f = results(n.m, qid, r)[0]
        assert f["status"] == "bounced" and f["dsn"] == "5.6.0", f
    dsn = wait_dsn(n.m)[0]
    groups = check_bounce(dsn, ["a@d5.test", "b@d5.test"], "5.6.0")
    for g in groups:
        assert g["Diagnostic-Code"] == "smtp; 554 5.6.0 content rejected", g
    assert n.sink(4).received() == []
    assert len(n.sink(4).failed) == 1


def test_data_4xx_deferred_then_delivered_once(net):
    calls = []

    def data_code(txn):
        calls.append(txn)
        return (451, "4.3.0 try again") if len(calls) == 1 else None
    n = net(domains={"d4.test": [("MX", 10, host(4))]},
            sinks={4: dict(data_code=data_code)})
    qid = submit(n.m, ["a@d4.test", "b@d4.test"], msg("data451"))
    f = wait_result(n.m, qid, "a@d4.test", "deferred")
    assert f["dsn"] == "4.3.0", f
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert t.rcpts == ["a@d4.test", "b@d4.test"], t
    wait_removed(n.m, qid, 2, 0)
    assert_no_more(n.sink(4), 1)
    assert len(calls) == 2


# ---- what the server can take ----------------------------------------

def test_size_over_server_limit_bounced_nothing_sent(net):
    n = net(domains={"small.test": [("MX", 10, host(4))]},
            sinks={4: dict(size=2000)}, **RETRY_NEVER)
    qid = submit(n.m, ["u@small.test"],
                 msg("big", body=(b"y" * 78 + b"\r\n") * 60))
    f = wait_result(n.m, qid, "u@small.test", "bounced")
    assert f["dsn"] == "5.3.4", f
    wait_removed(n.m, qid, 0, 1)
    check_bounce(wait_dsn(n.m)[0], ["u@small.test"], "5.3.4")
    s = n.sink(4)
    assert s.connections >= 1
    assert "MAIL" not in s.verbs() and "DATA" not in s.verbs(), s.commands
    assert s.received() == [] and s.failed == [], (s.received(), s.failed,
                                                    s.commands)


def test_8bit_mail_to_server_without_8bitmime_bounced(net):
    n = net(domains={"seven.test": [("MX", 10, host(4))],
                     "eight.test": [("MX", 10, host(5))]},
            sinks={4: dict(eightbitmime=False), 5: {}}, **RETRY_NEVER)
    body = "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\r\n".encode("utf-8")
    qid = submit(n.m, ["u@seven.test"], msg("eightbit", body=body),
                 params="BODY=8BITMIME")
    f = wait_result(n.m, qid, "u@seven.test", "bounced")
    assert f["dsn"] == "5.6.3", f
    check_bounce(wait_dsn(n.m)[0], ["u@seven.test"], "5.6.3")
    assert "MAIL" not in n.sink(4).verbs(), n.sink(4).commands
    # the same mail to a server with 8BITMIME: BODY= and octets intact
    qid2 = submit(n.m, ["u@eight.test"], msg("eightbit2", body=body),
                  params="BODY=8BITMIME")
    t = n.sink(5).wait(1, timeout=WAIT)[0]
    assert "BODY=8BITMIME" in [p.upper() for p in t.mail_params], t
    assert body_of(t.data) == body
    wait_removed(n.m, qid2, 1, 0)
    # 7-bit mail to the server without 8BITMIME goes, without BODY=
    qid3 = submit(n.m, ["u@seven.test"], msg("sevenbit"))
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert not [p for p in t.mail_params if p.upper().startswith("BODY=")]
    wait_removed(n.m, qid3, 1, 0)


@pytest.mark.parametrize("chunking", [False, True])
def test_dot_stuffing_and_large_body_intact(net, chunking):
    n = net(domains={"dots.test": [("MX", 10, host(4))]},
            sinks={4: dict(chunking=chunking)})
    body = (b".\r\n..\r\n.leading dot\r\n...three\r\n .space\r\n"
            b"line with . inside\r\n\r\n.\r\n" +
            b"".join(b"%05d " % i + b"z" * 72 + b"\r\n"
                     for i in range(2500)) +
            # 998 octets on the wire with the stuffed dot (RFC 5321
            # 4.5.3.1.6)
            b"." + b"w" * 996 + b"\r\n" + b".\r\n")
    qid = submit(n.m, ["u@dots.test"], msg("dots", body=body))
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert t.bdat == chunking, t
    assert body_of(t.data) == body
    assert header_block(t.data).endswith(
        b"Subject: dots\r\nMessage-ID: <dots@example.test>\r\n")
    if not chunking:
        # on the wire each of those lines had one more dot
        assert b"\r\n...\r\n" in t.raw and b"\r\n..leading dot" in t.raw
    wait_removed(n.m, qid, 1, 0)


def test_smtputf8_mail_needs_smtputf8_server(net):
    n = net(domains={"ascii.test": [("MX", 10, host(4))],
                     "utf8.test": [("MX", 10, host(5))]},
            sinks={4: {}, 5: dict(smtputf8=True)}, **RETRY_NEVER)
    subject = "gr\u00fc\u00dfe".encode("utf-8")
    content = (b"From: " + SENDER.encode() + b"\r\nSubject: " + subject +
               b"\r\n\r\nbody\r\n")
    qid = submit(n.m, ["u@ascii.test"], content,
                 params="BODY=8BITMIME SMTPUTF8")
    f = wait_result(n.m, qid, "u@ascii.test", "bounced")
    assert f["dsn"] == "5.6.7", f
    check_bounce(wait_dsn(n.m)[0], ["u@ascii.test"], "5.6.7")
    assert "MAIL" not in n.sink(4).verbs(), n.sink(4).commands
    q2 = submit(n.m, ["u@utf8.test"], content,
                params="BODY=8BITMIME SMTPUTF8")
    t = n.sink(5).wait(1, timeout=WAIT)[0]
    assert "SMTPUTF8" in [p.upper() for p in t.mail_params], t
    assert b"Subject: " + subject + b"\r\n" in t.data
    wait_removed(n.m, q2, 1, 0)


def test_helo_fallback_and_no_unasked_pipelining(net):
    n = net(domains={"old.test": [("MX", 10, host(4))],
                     "nopipe.test": [("MX", 10, host(5))]},
            sinks={4: dict(ehlo=False), 5: dict(pipelining=False)})
    q1 = submit(n.m, ["u@old.test"], msg("helo"))
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    # RFC 5321 3.2: EHLO refused, HELO then; no extension parameters
    assert not t.esmtp and t.helo == moatlib.HOSTNAME, t
    assert t.mail_params == [], t
    assert n.sink(4).verbs()[:3] == ["EHLO", "HELO", "MAIL"]
    wait_removed(n.m, q1, 1, 0)
    rc = ["a@nopipe.test", "b@nopipe.test", "c@nopipe.test"]
    q2 = submit(n.m, rc, msg("nopipe"))
    t = n.sink(5).wait(1, timeout=WAIT)[0]
    assert t.rcpts == rc, t
    assert n.sink(5).pipelined == [], n.sink(5).pipelined
    wait_removed(n.m, q2, 3, 0)


def test_connection_lost_after_dot_retried(net):
    n = net(domains={"lost.test": [("MX", 10, host(4))]},
            sinks={4: dict(drop_at="dot")})
    qid = submit(n.m, ["u@lost.test"], msg("lost"))
    f = wait_result(n.m, qid, "u@lost.test", "deferred")
    assert f["dsn"].startswith("4."), f
    assert len(n.sink(4).failed) >= 1 and n.sink(4).received() == []
    n.sink(4).drop_at = None
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert t.rcpts == ["u@lost.test"]
    wait_removed(n.m, qid, 1, 0)
    assert_no_more(n.sink(4), 1, settle=0.5)


def test_silent_server_times_out_and_defers(net):
    # every reply of the sink comes 3 s late; the greeting may take 1 s
    n = net(domains={"slow.test": [("MX", 10, host(4))]},
            sinks={4: dict(delay=3)}, smtp_helo_timeout="1s",
            **RETRY_NEVER)
    t0 = time.monotonic()
    qid = submit(n.m, ["u@slow.test"], msg("slow"))
    f = wait_result(n.m, qid, "u@slow.test", "deferred")
    assert time.monotonic() - t0 < 2.9 * moatlib.SLOW
    assert f["dsn"].startswith("4.4."), f
    assert n.sink(4).verbs() == []
    n.sink(4).delay = 0
    mark = n.m.log_mark()
    assert ctl_ok(n.m, "flush") == "1 message scheduled for delivery\n"
    n.sink(4).wait(1, timeout=WAIT)
    wait_result(n.m, qid, "u@slow.test", "sent", since=mark)
    wait_removed(n.m, qid, 1, 0)


# ---- connections -----------------------------------------------------

def test_connection_reuse(net):
    n = net(domains={"reuse.test": [("MX", 10, host(4))]}, sinks={4: {}},
            smtp_connection_cache_time="10s")
    for i in range(10):
        submit(n.m, ["u%d@reuse.test" % i], msg("reuse%d" % i))
        n.sink(4).wait(i + 1, timeout=WAIT)
    assert n.sink(4).accepted_rcpts() == [
        "u%d@reuse.test" % i for i in range(10)]
    # one connection, maybe two; never one per message
    assert n.sink(4).connections <= 2, n.sink(4).connections
    assert len({t.conn for t in n.sink(4).received()}) <= 2


def test_idle_cached_connection_closed_with_quit(net):
    n = net(domains={"idle.test": [("MX", 10, host(4))]}, sinks={4: {}},
            smtp_connection_cache_time="1s")
    qid = submit(n.m, ["u@idle.test"], msg("idle"))
    s = n.sink(4)
    s.wait(1, timeout=WAIT)
    wait_removed(n.m, qid, 1, 0)
    # after the cache time the session ends politely (RFC 5321 4.1.1.10)
    wait_until(lambda: s.active == 0, 5 * moatlib.SLOW, "the idle session "
               "to end")
    assert s.verbs()[-1] == "QUIT", s.commands


def test_more_recipients_than_one_transaction_takes(net):
    # OUT_RCPT_MAX (50) per transaction: 60 recipients are two
    n = net(domains={"many.test": [("MX", 10, host(4))]}, sinks={4: {}})
    rc = ["u%02d@many.test" % i for i in range(60)]
    qid = submit(n.m, rc, msg("many"))
    s = n.sink(4)
    s.wait(2, timeout=WAIT)
    wait_removed(n.m, qid, 60, 0)
    assert sorted(len(t.rcpts) for t in s.received()) == [10, 50]
    assert sorted(s.accepted_rcpts()) == rc


def test_destination_concurrency_limit(net):
    n = net(domains={"conc.test": [("MX", 10, host(4))]},
            sinks={4: dict(delay=0.1)},
            smtp_destination_concurrency_limit=2)
    with n.m.smtp() as c:
        for i in range(8):
            c.sendmail(SENDER, ["u%d@conc.test" % i],
                       msg("conc%d" % i))
    s = n.sink(4)
    s.wait(8, timeout=30)
    assert s.max_active <= 2, s.max_active
    assert sorted(s.accepted_rcpts()) == sorted(
        "u%d@conc.test" % i for i in range(8))


def test_dead_destination_not_hammered(net):
    n = net(domains={"dead.test": [("MX", 10, host(4))]},
            sinks={4: dict(greeting=(421, "4.3.2 service busy"),
                           drop_at="greeting")},
            **RETRY_NEVER)
    s = n.sink(4)
    first = submit(n.m, ["u0@dead.test"], msg("dead0"))
    f = wait_result(n.m, first, "u0@dead.test", "deferred")
    assert f["dsn"].startswith("4."), f
    assert s.connections == 1
    qids = [first]
    for i in range(1, 20):
        qids.append(submit(n.m, ["u%d@dead.test" % i], msg("dead%d" % i)))
    for i, q in enumerate(qids):
        f = wait_result(n.m, q, "u%d@dead.test" % i, "deferred")
        assert f["dsn"].startswith("4."), f
    # the other 19 were deferred without a new connection
    assert s.connections == 1, s.connections
    s.greeting, s.drop_at = (220, "ESMTP back"), None
    assert ctl_ok(n.m, "flush") == "20 messages scheduled for delivery\n"
    s.wait(20, timeout=30)
    for q in qids:
        wait_removed(n.m, q, 1, 0)
    assert sorted(s.accepted_rcpts()) == sorted(
        "u%d@dead.test" % i for i in range(20))


# ---- next hops other than MX -----------------------------------------

def test_fixed_next_hop_no_mx_lookup(net):
    other = SmtpSink(host="127.0.0.6", port=0).start()
    try:
        n = net(sinks={5: {}},
                transport=["fixed.test smtp:[127.0.0.6]:%d" % other.port,
                           "dflt.test smtp:[127.0.0.5]"])
        q1 = submit(n.m, ["u@fixed.test"], msg("fixed"))
        q2 = submit(n.m, ["u@dflt.test"], msg("dflt"))
        t = other.wait(1, timeout=WAIT)[0]
        assert t.rcpts == ["u@fixed.test"]
        f = wait_result(n.m, q1, "u@fixed.test", "sent")
        assert f["relay"].endswith("[127.0.0.6]:%d" % other.port), f
        n.sink(5).wait(1, timeout=WAIT)
        f = wait_result(n.m, q2, "u@dflt.test", "sent")
        assert f["relay"].endswith("[127.0.0.5]:%d" % n.port), f
        assert n.dns.count("fixed.test") == 0
        assert n.dns.count("dflt.test") == 0
    finally:
        other.stop()


def test_relay_host_takes_all_remote_mail(net):
    n = net(sinks={7: {}}, relay_host="[127.0.0.7]:{port}")
    qid = submit(n.m, ["u@far.test", "v@elsewhere.test", "user@example.test"],
                 msg("smarthost"))
    s = n.sink(7)
    s.wait(1, timeout=WAIT)
    wait_removed(n.m, qid, 3, 0)
    assert sorted(s.accepted_rcpts()) == ["u@far.test", "v@elsewhere.test"]
    assert len(n.m.maildir("user")) == 1
    f = results(n.m, qid, "u@far.test")[0]
    assert f["relay"].endswith("[127.0.0.7]:%d" % n.port), f
    assert n.dns.count("far.test") == 0 and n.dns.count("elsewhere.test") == 0


def test_relay_host_by_name_uses_its_mx(net):
    n = net(domains={"smarthost.test": [("MX", 10, host(7))]},
            sinks={7: {}}, relay_host="smarthost.test")
    qid = submit(n.m, ["u@far.test"], msg("smarthost-mx"))
    n.sink(7).wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "u@far.test", "sent")
    assert f["relay"] == n.relay(7), f
    assert n.dns.count("smarthost.test", "MX") >= 1
    assert n.dns.count("far.test") == 0


def test_smtp_host_next_hop_uses_mx_of_host(net):
    n = net(domains={"gw.test": [("MX", 10, host(7))]}, sinks={7: {}},
            transport=["viahost.test smtp:gw.test"])
    qid = submit(n.m, ["u@viahost.test"], msg("viahost"))
    n.sink(7).wait(1, timeout=WAIT)
    f = wait_result(n.m, qid, "u@viahost.test", "sent")
    assert f["relay"] == n.relay(7), f
    assert n.dns.count("gw.test", "MX") >= 1
    assert n.dns.count("viahost.test") == 0


def test_mx_pointing_at_myself_bounces_loop(net):
    n = net(domains={"loop.test": [("MX", 10, "mx.example.test")],
                     "loop2.test": [("MX", 10, host(4)),
                                    ("MX", 10, "mx.example.test.")],
                     "backup.test": [("MX", 10, host(4)),
                                     ("MX", 20, "MX.Example.Test")]},
            sinks={4: {}}, **RETRY_NEVER)
    qid = submit(n.m, ["u@loop.test"], msg("loop"))
    f = wait_result(n.m, qid, "u@loop.test", "bounced")
    assert f["dsn"] == "5.4.6", f
    (g,) = check_bounce(wait_dsn(n.m)[0], ["u@loop.test"], "5.4.6")
    assert "loops back to myself" in g["Diagnostic-Code"], g
    # a host of the same preference as ours is dropped too
    q1 = submit(n.m, ["u@loop2.test"], msg("loop2"))
    f = wait_result(n.m, q1, "u@loop2.test", "bounced")
    assert f["dsn"] == "5.4.6", f
    assert n.sink(4).connections == 0
    # as a backup MX we still deliver to the better one
    q2 = submit(n.m, ["u@backup.test"], msg("backup"))
    n.sink(4).wait(1, timeout=WAIT)
    wait_removed(n.m, q2, 1, 0)


# ---- scheduling: delay notice, expiry, restart, null sender -----------

def test_delay_notice_and_expiry_against_4xx_server(net):
    n = net(domains={"busy.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_default=(450, "4.2.1 mailbox busy"))},
            queue_lifetime="4s", delay_warning="1s", retry_min="1s",
            retry_max="1s")
    qid = submit(n.m, ["u@busy.test"], msg("busy"))
    first = wait_dsn(n.m)[0]
    assert first["Subject"] == "Delayed Mail (still being retried)"
    assert first["Return-Path"] == "<>"
    _, (g,) = dsn_groups(first)
    assert g["Final-Recipient"] == "rfc822; u@busy.test"
    assert g["Action"] == "delayed" and g["Status"] == "4.2.1", g
    assert "mailbox busy" in g["Diagnostic-Code"], g
    f = wait_result(n.m, qid, "u@busy.test", "expired", timeout=20)
    assert f["dsn"] == "4.4.7", f
    wait_log_expired = r"queue: event=expired qid=%s delivered=0 bounced=1$"
    n.m.wait_log(wait_log_expired % qid)
    both = wait_dsn(n.m, count=2)
    bounce = [d for d in both if d["Subject"] != first["Subject"]][0]
    (g,) = check_bounce(bounce, ["u@busy.test"], "4.4.7")
    assert "mailbox busy" in g["Diagnostic-Code"], g
    # it was retried in between, and each attempt was refused
    refused = [r for t in n.sink(4).failed for r in t.refused]
    assert len(refused) >= 2, refused
    assert len(results(n.m, qid)) == len(refused) + 1   # + expired
    assert n.sink(4).received() == []
    assert len(n.m.log_lines(r"queue: event=delay_notice qid=%s" % qid)) == 1
    assert n.m.spool_files("queue") == []


def test_restart_during_retries_delivers_once(net):
    n = net(domains={"rs.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_codes={
                "slow@rs.test": (451, "4.3.0 not now")})})
    qid = submit(n.m, ["a@rs.test", "slow@rs.test"], msg("restart"))
    wait_result(n.m, qid, "slow@rs.test", "deferred")
    n.sink(4).wait(1, timeout=WAIT)
    n.m.stop()
    n.sink(4).set_rcpt_code("slow@rs.test", 250, "2.1.5 ok")
    mark = n.m.log_mark()
    n.m.start()
    wait_result(n.m, qid, "slow@rs.test", "sent", since=mark)
    wait_removed(n.m, qid, 2, 0)
    assert_no_more(n.sink(4), 2)
    assert sorted(n.sink(4).accepted_rcpts()) == ["a@rs.test", "slow@rs.test"]
    assert results(n.m, qid, "a@rs.test")[0]["status"] == "sent"
    assert len(results(n.m, qid, "a@rs.test")) == 1


def test_no_bounce_for_null_sender(net):
    n = net(domains={"ns.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_codes={"bad@ns.test": 550})},
            **RETRY_NEVER)
    qid = submit(n.m, ["ok@ns.test", "bad@ns.test"], msg("nullsender"),
                 sender="")
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    assert t.mail_from == "" and t.rcpts == ["ok@ns.test"], t
    n.m.wait_log(r"queue: event=dsn_discarded qid=%s type=bounce nrcpt=1 "
                 r'reason="null sender"$' % qid)
    wait_removed(n.m, qid, 1, 1)
    assert n.m.log_lines(r"event=(double_)?bounce ") == []
    assert_no_more(n.sink(4), 1, settle=0.5)
    assert n.m.all_delivered() == []


# ---- privacy -----------------------------------------------------------

INNER = (b"Received: from pc12.corp.internal (pc12.corp.internal "
         b"[10.20.30.40])\r\n\tby build7.corp.internal; "
         b"Mon, 02 Jun 2025 10:00:00 +0000\r\n")


LATE = (b"X-Mailer: build script\r\n"
        b"Received: from vpn3.corp.internal ([10.9.9.9]) by\r\n"
        b" build7.corp.internal; Mon, 02 Jun 2025 09:59:00 +0000\r\n")
BODY_RECEIVED = (b"Quoted trace, part of the text:\r\n"
                 b"Received: from ops.corp.internal ([10.1.1.1])\r\n")


# a small message is sent from the copy read with its envelope, one over
# 64 KiB from the file in pieces (out_session.c): both are filtered
@pytest.mark.parametrize("filler", [0, 1200])
def test_received_hidden_for_internal_mail_to_internet(net, filler):
    n = net(domains={"out.test": [("MX", 10, host(4))]}, sinks={4: {}})
    body = BODY_RECEIVED + b"".join(b"%05d " % i + b"f" * 72 + b"\r\n"
                                    for i in range(filler))
    qid = submit(n.m, ["u@out.test"],
                 INNER + msg("private", extra=LATE, body=body),
                 helo="build7.corp.internal")
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    head = header_block(t.data)
    # the header section names nothing inside; the body is not touched
    assert body_of(t.data) == body
    for leak in (b"127.0.0.1", b"corp.internal", b"10.20.30.40",
                 b"10.9.9.9", b"client.test"):
        assert leak not in head, (leak, head)
    assert b"X-Mailer: build script\r\n" in head
    rec = received_headers(t.data)
    assert len(rec) == 1, rec
    assert re.match(rb"^Received: by mx\.example\.test with E?SMTP id %s; "
                    rb"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$"
                    % qid.encode(), rec[0]), rec
    assert b"Subject: private\r\n" in head
    wait_removed(n.m, qid, 1, 0)


def test_received_hidden_for_local_submission(net):
    n = net(domains={"out.test": [("MX", 10, host(4))]}, sinks={4: {}})
    r = n.m.tool("moat-sendmail", "-C", n.m.conf, "-f", SENDER,
                 "u@out.test", input=msg("local").replace(b"\r\n", b"\n"))
    assert r.returncode == 0, r
    t = n.sink(4).wait(1, timeout=WAIT)[0]
    rec = received_headers(t.data)
    assert len(rec) == 1, rec
    assert re.match(rb"^Received: by mx\.example\.test with \S+ id %s; "
                    % QID.encode(), rec[0]), rec
    assert b"uid" not in header_block(t.data)
    assert b"from local" not in t.data


def test_received_hidden_through_relay_host(net):
    n = net(sinks={7: {}}, relay_host="[127.0.0.7]:{port}")
    submit(n.m, ["u@far.test"], INNER + msg("smarthost-private"),
           helo="build7.corp.internal")
    t = n.sink(7).wait(1, timeout=WAIT)[0]
    assert b"127.0.0.1" not in t.data and b"corp.internal" not in t.data
    assert len(received_headers(t.data)) == 1


def test_received_kept_for_internal_next_hop(net):
    n = net(sinks={5: {}},
            local_domains=["example.test", "localhost", "corp.test"],
            transport=["corp.test smtp:[127.0.0.5]:{port}"])
    qid = submit(n.m, ["user@corp.test"], INNER + msg("inward"),
                 helo="build7.corp.internal")
    t = n.sink(5).wait(1, timeout=WAIT)[0]
    rec = received_headers(t.data)
    assert len(rec) == 2, rec
    assert rec[0].startswith(b"Received: from build7.corp.internal "
                             b"(unknown [127.0.0.1]) by mx.example.test "
                             b"with ESMTP id " + qid.encode()), rec
    assert b"[10.20.30.40]" in rec[1]
    wait_removed(n.m, qid, 1, 0)


def test_bounce_to_outside_sender_hides_internal_host(net):
    # inbound mail from the Internet (127.0.0.9 is outside
    # relay_networks) to a local domain; the internal mail host refuses
    # the recipient and names itself and its address in the reply
    n = net(start=False,
            sinks={5: dict(hostname="exchange01.corp.internal",
                           rcpt_codes={"gone@corp.test": (
                               550, "5.1.1 <gone@corp.test>: unknown user "
                               "at exchange01.corp.internal [127.0.0.5]")})},
            relay_networks="127.0.0.1/32",
            local_domains=["example.test", "localhost", "corp.test"],
            transport=["corp.test smtp:[127.0.0.5]:{port}",
                       "outside.test maildir:{mail}/%d/%u"])
    n.m.start()
    qid = submit(n.m, ["gone@corp.test"],
                 msg("outside", to=b"gone@corp.test",
                     frm=b"sender@outside.test"),
                 sender="sender@outside.test", source="127.0.0.9",
                 helo="client.outside.test")
    f = wait_result(n.m, qid, "gone@corp.test", "bounced")
    assert f["dsn"] == "5.1.1", f
    got = n.m.wait_maildir("sender", "outside.test")
    n.m.wait_log(r"queue: event=bounce qid=%s dsn_qid=\w+ "
                 r"to=<sender@outside\.test> nrcpt=1 private=1$" % qid)
    raw = got[0].decode("utf-8", "replace")
    assert not re.search(r"127\.0\.0\.\d", raw), raw
    for leak in ("exchange01", "corp.internal", "unknown user"):
        assert leak not in raw, (leak, raw)
    dsn = parse(got[0])
    head, (g,) = dsn_groups(dsn)
    assert head["Reporting-MTA"] == "dns; %s" % moatlib.HOSTNAME
    assert g["Final-Recipient"] == "rfc822; gone@corp.test"
    assert g["Action"] == "failed" and g["Status"] == "5.1.1", g


# ---- moatctl -------------------------------------------------------------

def test_queue_and_show_report_smtp_deferral(net):
    n = net(domains={"qs.test": [("MX", 10, host(4))]},
            sinks={4: dict(rcpt_codes={
                "later@qs.test": (452, "4.2.2 mailbox full")})},
            **RETRY_NEVER)
    qid = submit(n.m, ["ok@qs.test", "later@qs.test"], msg("qshow"))
    wait_result(n.m, qid, "later@qs.test", "deferred")
    wait_result(n.m, qid, "ok@qs.test", "sent")
    wait_until(lambda: qid + ".state" in n.m.spool_files("queue"),
               5 * moatlib.SLOW, "state file")
    blocks, _ = parse_mailq(ctl_ok(n.m, "queue"))
    assert [b["qid"] for b in blocks] == [qid]
    b = blocks[0]
    assert b["rcpts"] == ["later@qs.test"], b
    mr = re.match(r"^(4\.2\.2 .*); next attempt in (59m|60m|1h)$",
                  b["reason"])
    assert mr, b
    assert "452" in mr.group(1) and "mailbox full" in mr.group(1), b
    assert host(4) in mr.group(1), b
    fl, rcpts = parse_show(ctl_ok(n.m, "show", qid))
    assert fl["state"] == "deferred" and fl["attempts"] == "1", fl
    assert re.search(r"\(in (59m|60m|1h)\)$", fl["next_attempt"]), fl
    by = {r["addr"]: r for r in rcpts}
    assert by["ok@qs.test"]["status"] == "delivered", rcpts
    assert by["later@qs.test"]["status"] == "pending", rcpts
    assert by["later@qs.test"]["attempts"] == 1
    assert "mailbox full" in by["later@qs.test"]["reason"], rcpts
