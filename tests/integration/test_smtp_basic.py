"""test_smtp_basic - the SMTP dialogue of smtp-in, end to end.

Every test starts its own moatd (fixture `moat`, conftest.py), talks to
it with smtplib, swaks or a raw socket, and checks the replies, the
delivered Maildir files and the spool.  References: RFC 5321 (SMTP),
RFC 2920 (PIPELINING), RFC 3030 (CHUNKING/BDAT), RFC 1870 (SIZE),
RFC 3463 (enhanced status codes); DESIGN.md principles 2-4.
"""

import re
import signal
import subprocess
import time

import pytest

import moatlib
from moatlib import HOSTNAME, received_split, wait_until

MSG = (b"From: Sender <sender@remote.test>\r\n"
       b"To: User <user@example.test>\r\n"
       b"Subject: hello\r\n"
       b"Message-ID: <1@remote.test>\r\n"
       b"\r\n"
       b"first line\r\n"
       b"\r\n"
       b"last line\r\n")

SOFTWARE_NAMES = ("moat", "postfix", "sendmail", "exim", "opensmtpd",
                  "qmail", "libevent", "openssl")


def no_software_name(text):
    low = text.lower()
    return not any(n in low for n in SOFTWARE_NAMES)


def assert_delivered_exact(delivered, sender, content,
                           rcpt="user@example.test"):
    """delivered == Return-Path [+ Delivered-To] + Received + content.

    The local delivery may store lines with CRLF (as received) or LF
    (the Maildir convention); either way the whole file uses one line
    end and the content is otherwise byte for byte what was sent.  A
    Delivered-To line, if any, names exactly the recipient.
    """
    eol, added, rest = received_split(delivered)
    assert added, delivered[:400]
    assert added[0] == b"Return-Path: <%s>" % sender.encode(), added
    more = added[1:]
    if more and more[0].lower().startswith(b"delivered-to:"):
        assert more[0] == b"Delivered-To: " + rcpt.encode(), added
        more = more[1:]
    assert len(more) == 1, added
    assert more[0].startswith(b"Received: "), added
    assert b"by " + HOSTNAME.encode() in more[0], more[0]
    expect = content if eol == b"\r\n" else content.replace(b"\r\n", b"\n")
    assert rest == expect, (rest, expect)
    if eol == b"\n":
        assert b"\r" not in delivered, delivered


def transaction(c, rcpts=("user@example.test",), sender="sender@remote.test",
                ehlo=True):
    """EHLO, MAIL, RCPT... on a RawSMTP, each expected to succeed."""
    if ehlo:
        c.ehlo()
    r = c.cmd("MAIL FROM:<%s>" % sender)
    assert r.code == 250, r
    for rc in rcpts:
        r = c.cmd("RCPT TO:<%s>" % rc)
        assert r.code == 250, (rc, r)


def data_raw(c, content):
    """DATA with content sent as given (must end with CRLF.CRLF)."""
    r = c.cmd("DATA")
    assert r.code == 354, r
    c.send(content)
    return c.reply()


def canary(m, user="canary"):
    """Deliver one more message and wait for it.

    Used after a refused message: the queue handles messages in order of
    arrival, so once a later message is delivered a refused one that had
    been wrongly committed would have been delivered too (and a bounded
    extra pause covers any reordering).
    """
    m.send("%s@example.test" % user, MSG)
    m.wait_maildir(user)
    time.sleep(0.5 * moatlib.SLOW)


def assert_nothing_delivered(m, except_users=("canary",)):
    got = [(p, b) for p, b in m.all_delivered()
           if p.parent.parent.name not in except_users]
    assert got == [], got
    for sub in ("tmp", "incoming"):
        assert m.spool_files(sub) == [], (sub, m.spool_files(sub))


# ---- greeting and EHLO ---------------------------------------------

def test_banner_has_hostname_and_no_software_name(moat):
    m = moat()
    c = m.raw(banner=False)
    r = c.banner()
    assert r.code == 220, r
    assert len(r.lines) == 1, r
    assert r.lines[0].split()[0] == HOSTNAME, r
    assert no_software_name(r.text), r
    assert not re.search(r"\d+\.\d+", r.text.replace(HOSTNAME, "")), r
    assert c.cmd("QUIT").code == 221


def test_ehlo_keywords_exact(moat):
    m = moat(message_size_limit="10M")
    c = m.raw()
    r = c.cmd("EHLO client.test")
    assert r.code == 250, r
    assert r.lines[0].split()[0] == HOSTNAME, r
    assert no_software_name(r.text), r
    kws = set(l.upper() for l in r.lines[1:])
    # no STARTTLS without a certificate, no AUTH on the MX listener, no
    # DSN, VRFY, ETRN or HELP keywords
    assert kws == {"PIPELINING", "SIZE 10485760", "8BITMIME", "CHUNKING",
                   "SMTPUTF8", "ENHANCEDSTATUSCODES"}, r.lines
    # HELO gets a one-line reply
    r = c.cmd("HELO client.test")
    assert r.code == 250 and len(r.lines) == 1, r


# ---- delivery ------------------------------------------------------

def test_smtplib_mail_arrives_byte_exact(moat):
    m = moat()
    mark = m.log_mark()
    refused = m.send("user@example.test", MSG)
    assert refused == {}
    got = m.wait_maildir("user")
    assert len(got) == 1
    assert_delivered_exact(got[0], "sender@remote.test", MSG)
    m.wait_log(r"smtp-in: .*event=accepted .*qid=\S+", since=mark)
    # delivered messages leave the queue
    wait_until(lambda: not any(m.spool_files(d) for d in
                               ("tmp", "incoming", "queue")),
               10 * moatlib.SLOW, "an empty spool after delivery")


def test_swaks_second_client(moat):
    m = moat()
    r = subprocess.run(
        ["swaks", "--server", "%s:%d" % (m.host, m.port), "--helo",
         "swaks.test", "--from", "swaks@remote.test", "--to",
         "other@example.test", "--header", "Subject: via swaks",
         "--body", "swaks body line", "--timeout", "20"],
        capture_output=True, text=True, timeout=60 * moatlib.SLOW,
        stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    got = m.wait_maildir("other")
    assert b"Subject: via swaks" in got[0]
    assert b"swaks body line" in got[0]
    eol, added, _ = received_split(got[0])
    assert added[0] == b"Return-Path: <swaks@remote.test>", added


def test_several_recipients_each_get_a_copy(moat):
    m = moat()
    rcpts = ["a@example.test", "b@example.test", "c@localhost"]
    assert m.send(rcpts, MSG) == {}
    for r in rcpts:
        user, dom = r.split("@")
        got = m.wait_maildir(user, dom)
        assert len(got) == 1
        assert_delivered_exact(got[0], "sender@remote.test", MSG, rcpt=r)


def test_null_sender(moat):
    m = moat()
    c = m.raw()
    transaction(c, sender="")
    assert data_raw(c, MSG + b".\r\n").code == 250
    got = m.wait_maildir("user")
    assert_delivered_exact(got[0], "", MSG)


# ---- pipelining, DATA, BDAT ----------------------------------------

def test_pipelining_replies_in_order(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    c.send(b"MAIL FROM:<p@remote.test>\r\n"
           b"RCPT TO:<user@example.test>\r\n"
           b"RCPT TO:<second@example.test>\r\n"
           b"RCPT TO:<third@localhost>\r\n"
           b"DATA\r\n")
    codes = [c.reply().code for _ in range(5)]
    assert codes == [250, 250, 250, 250, 354], codes
    c.send(MSG + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    codes = [c.reply().code for _ in range(4)]
    assert codes == [250, 250, 250, 221], codes
    assert c.wait_closed() == b""
    for u, d in (("user", "example.test"), ("second", "example.test"),
                 ("third", "localhost")):
        assert_delivered_exact(m.wait_maildir(u, d)[0], "p@remote.test", MSG,
                               rcpt="%s@%s" % (u, d))


def test_pipelining_with_errors_in_group(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    c.send(b"MAIL FROM:<p@remote.test>\r\n"
           b"RCPT TO:<bad address>\r\n"
           b"RCPT TO:<user@example.test>\r\n"
           b"NOOP\r\n")
    codes = [c.reply().code for _ in range(4)]
    assert codes == [250, 501, 250, 250], codes


def test_data_dot_unstuffing(moat):
    m = moat()
    body = (b"Subject: dots\r\n\r\n"
            b"..one dot\r\n"
            b"...two dots\r\n"
            b". \r\n"
            b"..\r\n"
            b"x.\r\n")
    expect = (b"Subject: dots\r\n\r\n"
              b".one dot\r\n"
              b"..two dots\r\n"
              b" \r\n"
              b".\r\n"
              b"x.\r\n")
    # (". " unstuffs to " ": RFC 5321 4.5.2 removes the first dot)
    c = m.raw()
    transaction(c)
    r = data_raw(c, body + b".\r\n")
    assert r.code == 250, r
    got = m.wait_maildir("user")
    assert_delivered_exact(got[0], "sender@remote.test", expect)


def test_empty_message(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    r = data_raw(c, b".\r\n")
    assert r.code == 250, r
    got = m.wait_maildir("user")
    assert_delivered_exact(got[0], "sender@remote.test", b"")


def test_bdat_chunks(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    part1 = b"Subject: bdat\r\n\r\n.leading dot stays\r\n"
    part2 = b"second chunk\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    r = c.reply()
    assert r.code == 250, r
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    r = c.reply()
    assert r.code == 250, r
    got = m.wait_maildir("user")
    assert_delivered_exact(got[0], "sender@remote.test", part1 + part2)


def test_bdat_zero_last_and_pipelined(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    part = b"Subject: bdat0\r\n\r\nbody\r\n"
    c.send(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<user@example.test>\r\n"
           + b"BDAT %d\r\n" % len(part) + part + b"BDAT 0 LAST\r\nQUIT\r\n")
    codes = [c.reply().code for _ in range(5)]
    assert codes == [250, 250, 250, 250, 221], codes
    got = m.wait_maildir("user")
    assert_delivered_exact(got[0], "s@remote.test", part)


def test_data_after_bdat_is_refused(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    c.send(b"BDAT 5\r\nhello")
    assert c.reply().code == 250
    r = c.cmd("DATA")
    assert r.code == 503, r


# ---- simple verbs --------------------------------------------------

def test_rset_noop_help_quit(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("RSET").code == 250
    # the transaction is gone
    assert c.cmd("RCPT TO:<user@example.test>").code == 503
    assert c.cmd("NOOP").code == 250
    r = c.cmd("HELP")
    assert r.code in (211, 214), r
    assert no_software_name(r.text), r
    r = c.cmd("QUIT")
    assert r.code == 221, r
    assert c.wait_closed() == b""


def test_rset_then_new_transaction(moat):
    m = moat()
    c = m.raw()
    transaction(c, rcpts=["first@example.test"])
    assert c.cmd("RSET").code == 250
    transaction(c, rcpts=["user@example.test"], ehlo=False)
    assert data_raw(c, MSG + b".\r\n").code == 250
    m.wait_maildir("user")
    assert m.maildir("first") == []


def test_two_messages_one_session(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    assert data_raw(c, MSG + b".\r\n").code == 250
    transaction(c, ehlo=False)
    assert data_raw(c, MSG + b".\r\n").code == 250
    assert len(m.wait_maildir("user", count=2)) == 2


# ---- sequence and syntax errors ------------------------------------

def test_sequence_errors_503(moat):
    m = moat()
    c = m.raw()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 503   # before EHLO
    c.ehlo()
    assert c.cmd("RCPT TO:<user@example.test>").code == 503  # before MAIL
    assert c.cmd("DATA").code == 503                         # before MAIL
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 503    # nested
    r = c.cmd("DATA")                                        # no RCPT
    assert r.code in (503, 554), r
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("QUIT").code == 221


MAIL_SYNTAX = ["MAIL", "MAIL FROM:", "MAIL FROM:a@remote.test",
               "MAIL FROM:<a@remote.test", "MAIL TO:<a@remote.test>",
               "MAIL FROM:<a@@remote.test>"]
RCPT_SYNTAX = ["RCPT", "RCPT TO:", "RCPT TO:<>", "RCPT TO:user@example.test",
               "RCPT FROM:<user@example.test>", "RCPT TO:<user@>"]


def test_syntax_errors_501(moat):
    m = moat()
    # a fresh session for each error, so that max_errors never ends one
    for bad in ("EHLO", "HELO"):
        with m.raw() as c:
            assert c.cmd(bad).code == 501, bad
            assert c.cmd("EHLO client.test").code == 250
    for bad in MAIL_SYNTAX:
        with m.raw() as c:
            c.ehlo()
            r = c.cmd(bad)
            assert r.code == 501, (bad, r)
            assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for bad in RCPT_SYNTAX:
        with m.raw() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
            r = c.cmd(bad)
            assert r.code == 501, (bad, r)
            assert c.cmd("RCPT TO:<user@example.test>").code == 250


def test_unknown_rcpt_parameter_555(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    r = c.cmd("RCPT TO:<user@example.test> FOO=BAR")
    assert r.code == 555, r


def test_unknown_mail_parameter_555(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@remote.test> FOO=BAR")
    assert r.code == 555, r


# ---- limits --------------------------------------------------------

def test_too_many_recipients_452(moat):
    m = moat(max_recipients=3)
    c = m.raw()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for u in ("r1", "r2", "r3"):
        assert c.cmd("RCPT TO:<%s@example.test>" % u).code == 250
    r = c.cmd("RCPT TO:<r4@example.test>")
    assert r.code == 452, r
    assert r.lines[0].startswith("4.5.3"), r
    assert data_raw(c, MSG + b".\r\n").code == 250
    for u in ("r1", "r2", "r3"):
        assert len(m.wait_maildir(u)) == 1
    assert m.maildir("r4") == []


def test_size_parameter_too_big_552(moat):
    m = moat(message_size_limit="10K")
    c = m.raw()
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@remote.test> SIZE=20000")
    assert r.code == 552, r
    assert r.lines[0].startswith("5.3.4"), r
    assert c.cmd("MAIL FROM:<a@remote.test> SIZE=2000").code == 250


def test_data_over_size_552_nothing_delivered(moat):
    m = moat(message_size_limit="10K")
    c = m.raw()
    transaction(c)
    big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 300
    r = data_raw(c, big + b".\r\n")
    assert r.code == 552, r
    # the session goes on
    assert c.cmd("NOOP").code == 250
    canary(m)
    assert_nothing_delivered(m)


def test_bdat_over_size_552(moat):
    m = moat(message_size_limit="10K")
    c = m.raw()
    transaction(c)
    chunk = (b"y" * 70 + b"\r\n") * 300
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    r = c.reply()
    assert r.code == 552, r
    canary(m)
    assert_nothing_delivered(m)


# ---- hostile input: bare CR/LF, smuggling, long lines, NUL -----------

SMUGGLED = (b"MAIL FROM:<evil@remote.test>\r\n"
            b"RCPT TO:<victim@example.test>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled\r\n")

HOSTILE = [
    ("bare LF", b"Subject: x\r\n\r\nline1\nline2\r\n.\r\n"),
    ("bare CR", b"Subject: x\r\n\r\nline1\rline2\r\n.\r\n"),
    ("LF.LF smuggling", b"Subject: x\r\n\r\nbody\n.\n" + SMUGGLED
     + b".\r\n"),
    ("LF.CRLF smuggling", b"Subject: x\r\n\r\nbody\n.\r\n" + SMUGGLED
     + b".\r\n"),
    ("CRLF.CR smuggling", b"Subject: x\r\n\r\nbody\r\n.\r" + SMUGGLED
     + b".\r\n"),
    ("CR.CRLF smuggling", b"Subject: x\r\n\r\nbody\r.\r\n" + SMUGGLED
     + b".\r\n"),
]


@pytest.mark.parametrize("what,content", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_bare_cr_lf_and_smuggling_refused(moat, what, content):
    m = moat()
    c = m.raw()
    transaction(c)
    r = data_raw(c, content)
    assert r.code == 550, (what, r)
    assert r.lines[0].startswith("5.6.0"), (what, r)
    # the smuggled commands were content: no reply of theirs follows
    c.send(b"QUIT\r\n")
    try:
        r = c.reply()
        assert r.code == 221, (what, r)
    except EOFError:
        pass
    canary(m)
    assert_nothing_delivered(m)
    assert m.maildir("victim") == []


def test_bdat_bare_lf_refused(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    chunk = b"Subject: x\r\n\r\nline1\nline2\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    r = c.reply()
    assert r.code == 550, r
    assert r.lines[0].startswith("5.6.0"), r
    canary(m)
    assert_nothing_delivered(m)


def test_data_line_over_1000_refused(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    content = b"Subject: long\r\n\r\n" + b"z" * 1500 + b"\r\n.\r\n"
    r = data_raw(c, content)
    assert 500 <= r.code < 600, r
    canary(m)
    assert_nothing_delivered(m)


def test_data_line_of_998_accepted(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    content = b"Subject: long\r\n\r\n" + b"z" * 998 + b"\r\n"
    assert data_raw(c, content + b".\r\n").code == 250
    got = m.wait_maildir("user")
    assert_delivered_exact(got[0], "sender@remote.test", content)


def test_command_line_over_1000_refused(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    c.send(b"MAIL FROM:<" + b"a" * 1500 + b"@remote.test>\r\n")
    r = c.reply()
    assert r.code in (421, 500), r
    # whatever followed, it never became a transaction
    try:
        r = c.cmd("RCPT TO:<user@example.test>")
        assert r.code != 250, r
    except (EOFError, OSError):
        pass


def test_nul_in_command(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    r = c.cmd(b"NOOP\x00")
    assert r.code >= 400, r
    try:
        r = c.cmd(b"MAIL FROM:<a\x00b@remote.test>")
        assert r.code >= 400, r
        r = c.cmd(b"RCPT TO:<user@example.test>")
        assert r.code >= 400, r
    except (EOFError, OSError):
        pass


# ---- aborted sessions and timeouts ---------------------------------

def test_connection_dropped_during_data(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: partial\r\n\r\nthis message never ends\r\n")
    time.sleep(0.3)
    c.close()
    wait_until(lambda: not m.spool_files("tmp"), 10 * moatlib.SLOW,
               "spool tmp/ to be emptied")
    canary(m)
    assert_nothing_delivered(m)
    wait_until(lambda: not m.spool_files("queue"), 10 * moatlib.SLOW,
               "spool queue/ to be emptied")


def test_connection_dropped_during_bdat(moat):
    m = moat()
    c = m.raw()
    transaction(c)
    c.send(b"BDAT 1000\r\n" + b"q" * 300)
    time.sleep(0.3)
    c.close()
    wait_until(lambda: not m.spool_files("tmp"), 10 * moatlib.SLOW,
               "spool tmp/ to be emptied")
    canary(m)
    assert_nothing_delivered(m)


def test_command_timeout_421(moat):
    m = moat(command_timeout="2s")
    c = m.raw()
    c.ehlo()
    t0 = time.monotonic()
    r = c.reply()       # nothing sent: the server speaks first
    took = time.monotonic() - t0
    assert r.code == 421, r
    assert 1.5 <= took <= 8 * moatlib.SLOW, took
    assert c.wait_closed() == b""


def test_server_survives_many_short_sessions(moat):
    m = moat()
    for i in range(30):
        with m.raw() as c:
            if i % 2:
                c.send(b"EHLO x.test\r\nQUIT\r\n")
                assert c.reply().code == 250
            else:
                c.send(b"QUIT\r\n")
            assert c.reply().code == 221
            assert c.wait_closed() == b""
    with m.smtp() as s:
        assert s.noop()[0] == 250


# ---- process life cycle --------------------------------------------

def rcpts_accepted(m, n):
    """How many of n RCPTs one new session gets accepted."""
    with m.raw() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
        ok = sum(c.cmd("RCPT TO:<r%d@example.test>" % i).code == 250
                 for i in range(n))
        c.cmd("QUIT")
        return ok


def test_sighup_reload_applies_new_config(moat):
    m = moat(max_recipients=2)
    assert rcpts_accepted(m, 3) == 2
    mark = m.log_mark()
    m.write_config(max_recipients=3)
    m.reload()
    m.wait_log(r"event=reload", since=mark)
    # the old smtp-in drains while the new one takes the listeners over
    wait_until(lambda: rcpts_accepted(m, 3) == 3, 10 * moatlib.SLOW,
               "the new max_recipients after SIGHUP")
    assert m.running()


def test_stop_and_restart(moat):
    m = moat()
    m.send("user@example.test", MSG)
    m.wait_maildir("user")
    m.restart()
    m.send("user@example.test", MSG)
    assert len(m.wait_maildir("user", count=2)) == 2


def test_restart_after_kill9(moat):
    m = moat()
    m.send("user@example.test", MSG)
    m.wait_maildir("user")
    m.kill(signal.SIGKILL)
    assert not m.running()
    # a stale pid file and spool must not keep moatd from starting
    m.start()
    m.send("user@example.test", MSG)
    assert len(m.wait_maildir("user", count=2)) == 2
