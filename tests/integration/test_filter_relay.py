"""test_filter_relay - the command filter, relaying and spoofing rules.

DESIGN.md principle 4: disabled, unknown and over-long commands get
`421 5.5.1 Invalid command` and the session is closed, with an
`event=alarm` log line naming the client, the verb and the length.
Relaying: only relay_networks may relay; local_domains are accepted from
anyone; source routes and routing characters in local parts are refused;
postmaster is always accepted (RFC 5321 4.5.1); a local domain in MAIL
FROM from outside is spoofing (550 5.7.1, alarm).

Outside clients are simulated by binding the client socket to 127.0.0.2
with relay_networks = 127.0.0.1/32.
"""

import re

import pytest

import moatlib
from moatlib import wait_until

OUTSIDE = "127.0.0.2"
INSIDE = "127.0.0.1"
RELAY_ONLY_LOCALHOST = {"relay_networks": "127.0.0.1/32"}

DEFAULT_FILTER = ("HELO:255 EHLO:255 MAIL:266 RCPT:266 DATA:0 BDAT:64 "
                  "RSET:0 NOOP:0 QUIT:0 STARTTLS:0 AUTH:1024 HELP:0")

MSG = b"Subject: t\r\n\r\nbody\r\n"


def alarm_lines(m, since=0):
    return m.log_lines(r"event=alarm", since=since)


def assert_alarm(m, since, client, verb=None, lengths=None):
    """Wait for an event=alarm line naming client (and verb, length)."""
    m.wait_log(r"event=alarm.*\b%s\b" % re.escape(client), since=since)
    lines = [l for l in alarm_lines(m, since) if client in l]
    assert lines, m.log_tail()
    line = lines[-1]
    if verb is not None:
        assert re.search(r"=%s\b" % verb, line, re.I), line
    if lengths is not None:
        found = [int(v) for v in
                 re.findall(r"\b\w*len\w*=(\d+)", line, re.I)]
        assert any(v in lengths for v in found), (lengths, line)
    return line


def assert_invalid_command(c, reply):
    assert reply.code == 421, reply
    assert reply.lines[0].startswith("5.5.1 Invalid command"), reply
    assert c.wait_closed() == b""


# ---- the command filter ---------------------------------------------

REFUSED_VERBS = [("VRFY", "VRFY root"), ("EXPN", "EXPN staff"),
                 ("ETRN", "ETRN example.test"), ("TURN", "TURN"),
                 ("XYZZY", "XYZZY plugh"), ("XCLIENT", "XCLIENT ADDR=1.2.3.4")]


@pytest.mark.parametrize("verb,line", REFUSED_VERBS,
                         ids=[v[0] for v in REFUSED_VERBS])
def test_disabled_and_unknown_verbs_421(moat, verb, line):
    m = moat()
    mark = m.log_mark()
    c = m.raw()
    c.ehlo()
    r = c.cmd(line)
    assert_invalid_command(c, r)
    arglen = len(line) - len(verb) - 1 if " " in line else 0
    assert_alarm(m, mark, "127.0.0.1", verb=verb,
                 lengths={arglen, len(line), len(line) + 2})


def test_refused_verb_before_ehlo(moat):
    m = moat()
    mark = m.log_mark()
    c = m.raw(source=OUTSIDE)
    assert_invalid_command(c, c.cmd("EXPN root"))
    assert_alarm(m, mark, OUTSIDE, verb="EXPN")


def test_overlong_helo_argument_421(moat):
    m = moat()
    mark = m.log_mark()
    c = m.raw(source=OUTSIDE)
    arg = "h" * 300 + ".test"
    r = c.cmd("HELO " + arg)
    assert_invalid_command(c, r)
    line = "HELO " + arg
    assert_alarm(m, mark, OUTSIDE, verb="HELO",
                 lengths={len(arg), len(line), len(line) + 2})


def test_helo_argument_at_limit_accepted(moat):
    m = moat()
    c = m.raw()
    arg = ("a" * 63 + ".") * 3 + "a" * 63       # 255 octets
    assert len(arg) == 255
    r = c.cmd("EHLO " + arg)
    assert r.code == 250, r


def test_overlong_rcpt_argument_421(moat):
    m = moat()
    mark = m.log_mark()
    c = m.raw()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    arg = "TO:<" + "r" * 280 + "@example.test>"
    assert_invalid_command(c, c.cmd("RCPT " + arg))
    assert_alarm(m, mark, "127.0.0.1", verb="RCPT")


def test_argument_to_noop_refused(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    # NOOP:0 allows no argument (RFC 5321 4.1.1.9 allows one; the
    # filter is stricter on purpose)
    assert_invalid_command(c, c.cmd("NOOP hello"))


def test_admin_listed_vrfy_answers_252(moat):
    m = moat(command_filter=DEFAULT_FILTER + " VRFY:255")
    c = m.raw()
    c.ehlo()
    for who in ("user", "user@example.test", "nobody-at-all",
                "postmaster"):
        r = c.cmd("VRFY " + who)
        # RFC 5321 3.5.3: 252, never a confirmation
        assert r.code == 252, (who, r)
    assert c.cmd("NOOP").code == 250
    # EXPN is still not listed
    assert_invalid_command(c, c.cmd("EXPN staff"))


def test_filter_alarm_counted_in_stats(moat):
    m = moat()
    c = m.raw()
    assert_invalid_command(c, c.cmd("VRFY root"))
    r = m.ctl("stats")
    assert r.returncode == 0, r.stderr
    assert re.search(rb"^alarm_filter=1$", r.stdout, re.M), r.stdout


# ---- relaying -------------------------------------------------------

def test_relay_denied_from_outside(moat):
    m = moat(**RELAY_ONLY_LOCALHOST)
    mark = m.log_mark()
    c = m.raw(source=OUTSIDE)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    r = c.cmd("RCPT TO:<victim@elsewhere.test>")
    assert r.code == 550, r
    assert r.lines[0].startswith("5.7.1"), r
    assert_alarm(m, mark, OUTSIDE)
    # the session goes on; local domains are accepted from anyone
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    c.send(b"DATA\r\n")
    assert c.reply().code == 354
    c.send(MSG + b".\r\n")
    assert c.reply().code == 250
    got = m.wait_maildir("user")
    assert len(got) == 1


def test_relay_allowed_from_relay_networks(moat):
    m = moat(**RELAY_ONLY_LOCALHOST)
    c = m.raw(source=INSIDE)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    r = c.cmd("RCPT TO:<someone@elsewhere.test>")
    assert r.code == 250, r
    assert c.cmd("RSET").code == 250


def test_relay_denied_for_subdomain_of_local_domain(moat):
    m = moat(**RELAY_ONLY_LOCALHOST)
    c = m.raw(source=OUTSIDE)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for rcpt in ("u@sub.example.test", "u@example.test.evil.test",
                 "u@xexample.test"):
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 550, (rcpt, r)


ROUTING_TRICKS = ["a%b@example.test", "b!a@example.test", '"a@b"@example.test',
                  "@x.test:a@example.test", "a%elsewhere.test@example.test",
                  "@example.test,@x.test:a@elsewhere.test"]


@pytest.mark.parametrize("rcpt", ROUTING_TRICKS)
def test_routing_tricks_refused(moat, rcpt):
    m = moat(**RELAY_ONLY_LOCALHOST)
    c = m.raw(source=OUTSIDE)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert 500 <= r.code < 600, (rcpt, r)
    # still usable, and nothing can be sent to the trick address
    r = c.cmd("DATA")
    assert r.code in (503, 554), r


@pytest.mark.parametrize("rcpt", ["postmaster", "Postmaster",
                                  "POSTMASTER@example.test",
                                  "postmaster@localhost"])
def test_postmaster_always_accepted(moat, rcpt):
    m = moat(**RELAY_ONLY_LOCALHOST)
    c = m.raw(source=OUTSIDE)
    c.ehlo()
    # even with a sender that would otherwise be suspicious
    assert c.cmd("MAIL FROM:<>").code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert r.code == 250, (rcpt, r)


def test_local_sender_from_outside_is_spoofing(moat):
    m = moat(**RELAY_ONLY_LOCALHOST)
    mark = m.log_mark()
    c = m.raw(source=OUTSIDE)
    c.ehlo()
    for sender in ("boss@example.test", "boss@EXAMPLE.TEST."):
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.code == 550, (sender, r)
        assert r.lines[0].startswith("5.7.1"), r
    assert_alarm(m, mark, OUTSIDE)
    # a remote sender is fine
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250


def test_local_sender_from_inside_accepted(moat):
    m = moat(**RELAY_ONLY_LOCALHOST)
    c = m.raw(source=INSIDE)
    c.ehlo()
    assert c.cmd("MAIL FROM:<boss@example.test>").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 250


def test_domain_case_and_trailing_dot(moat):
    m = moat(**RELAY_ONLY_LOCALHOST)
    c = m.raw(source=OUTSIDE)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<user@EXAMPLE.TEST.>").code == 250
    assert c.cmd("RCPT TO:<other@Example.Test>").code == 250
    c.send(b"DATA\r\n")
    assert c.reply().code == 354
    c.send(MSG + b".\r\n")
    assert c.reply().code == 250
    # one mailbox per domain, whatever the case or dot in RCPT
    assert len(m.wait_maildir("user", "example.test")) == 1
    assert len(m.wait_maildir("other", "example.test")) == 1
    doms = sorted(p.name for p in m.mailroot.iterdir())
    assert doms == ["example.test"], doms


@pytest.mark.parametrize("line", [b"XYZZY\xff a=b \"q\"",
                                  b"event=forged client=1.2.3.4",
                                  b"V\xc3\xa9RFY x"])
def test_alarm_line_sanitized(moat, line):
    m = moat()
    mark = m.log_mark()
    c = m.raw()
    c.ehlo()
    assert_invalid_command(c, c.cmd(line))
    wait_until(lambda: alarm_lines(m, mark), 5 * moatlib.SLOW, "alarm")
    raw = m.logfile.read_bytes()
    assert not any(b >= 0x7f for b in raw), raw[-500:]
    for l in alarm_lines(m, mark):
        # the client's octets cannot add fields: one event=, one client=
        toks = l.split(" ")
        assert sum(t.startswith("event=") for t in toks) == 1, l
        assert sum(t.startswith("client=") for t in toks) == 1, l
        assert "client=127.0.0.1" in toks, l


def test_control_character_in_command_500(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    r = c.cmd(b"NOOP \x1b[31m")
    assert r.code == 500, r
    assert "\x1b" not in m.log()
