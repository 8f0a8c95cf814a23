"""test_queue_ctl - the queue role, local Maildir delivery and moatctl.

Every test starts its own moatd (fixture `moat`, conftest.py), submits
mail over SMTP from 127.0.0.1 and checks what came out: the octets in
the Maildirs, the files in the spool, the log lines and the output of
moatctl.  References: doc/QUEUE.md (states, routing, state file),
src/common/control.h (protocol, `queue` and `stats` formats),
docs/commands.md (moatctl verbs and exit codes), the Maildir
specification (tmp/new/cur, unique names).

The helpers at the top are shared with test_sendmail.py and
test_logs.py.
"""

import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import time
from datetime import datetime

import pytest

import moatlib
from moatlib import wait_until

# Crockford base32, 16 characters (doc/QUEUE.md)
QID = r"[0-9A-HJKMNP-TV-Z]{16}"
QID_RE = re.compile(r"^%s$" % QID)

MSG = (b"From: Sender <sender@remote.test>\r\n"
       b"To: User <user@example.test>\r\n"
       b"Subject: queue test\r\n"
       b"Message-ID: <q1@remote.test>\r\n"
       b"\r\n"
       b"body line one\r\n"
       b"\r\n"
       b"  indented, trailing blanks  \r\n"
       b"last line\r\n")

# moatlib points dns_servers at a port where nothing answers
NO_SMTP = ("4.4.3 DNS lookup of %s failed: SERVFAIL, REFUSED or "
           "unreachable")

DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
RFC5322_DATE = (r"(?:%s), \d\d (?:%s) \d{4} \d\d:\d\d:\d\d [+-]\d{4}"
                % (DAYS, MONTHS))


# ---- shared helpers --------------------------------------------------

class Sent:
    """What send_raw() did: the queue id and the octets sent."""

    def __init__(self, qid, nbytes):
        self.qid = qid
        self.nbytes = nbytes


def send_raw(m, rcpts, content=MSG, sender="sender@remote.test",
             helo="client.test", source=None):
    """One message over a raw SMTP session (EHLO ... QUIT).

    content must be dot-stuffed already and end with CRLF.  Returns a
    Sent with the id from "250 2.0.0 Ok: queued as QID" and the exact
    number of octets the client sent (for the bytes_received counter).
    """
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    c = m.raw(source=source)
    n = 0

    def cmd(line):
        nonlocal n
        if isinstance(line, str):
            line = line.encode("latin-1")
        n += len(line) + 2
        return c.cmd(line)
    try:
        r = cmd(b"EHLO " + (helo.encode("latin-1")
                            if isinstance(helo, str) else helo))
        assert r.code == 250, r
        r = cmd("MAIL FROM:<%s>" % sender)
        assert r.code == 250, r
        for rc in rcpts:
            r = cmd("RCPT TO:<%s>" % rc)
            assert r.code == 250, (rc, r)
        r = cmd("DATA")
        assert r.code == 354, r
        c.send(content + b".\r\n")
        n += len(content) + 3
        r = c.reply()
        assert r.code == 250, r
        mq = re.match(r"2\.0\.0 Ok: queued as (%s)$" % QID, r.lines[0])
        assert mq, r
        assert cmd("QUIT").code == 221
    finally:
        c.close()
    return Sent(mq.group(1), n)


def ctl_ok(m, *args):
    """moatctl ARGS that must succeed; returns stdout as text."""
    r = m.ctl(*args)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr == b"", (args, r.stderr)
    return r.stdout.decode("latin-1")


def wait_deferred(m, qid, since=0, rcpt=None):
    """Wait for a status=deferred delivery line of qid; returns it."""
    rx = r"queue: event=delivery qid=%s to=<%s> .*status=deferred.*$" % (
        qid, re.escape(rcpt) if rcpt else r"[^>]*")
    return m.wait_log(rx, since=since).group(0)


def wait_state_file(m, qid, subdir="queue"):
    """The deferral is durable: QID.state is written before the timer."""
    wait_until(lambda: qid + ".state" in m.spool_files(subdir),
               5 * moatlib.SLOW, "%s/%s.state" % (subdir, qid))


def parse_mailq(text):
    """Parse the `queue` body (control.h) strictly.

    Returns (blocks, summary): blocks are dicts qid, flag, size, date,
    sender, reason (or None), rcpts; summary is (kbytes, requests), or
    (blocks=[], summary=None) for "Mail queue is empty".  Every line
    must have one of the documented forms.
    """
    if text == "Mail queue is empty\n":
        return [], None
    assert text.endswith("\n"), repr(text)
    lines = text[:-1].split("\n")
    msum = re.match(r"^-- (\d+) Kbytes in (\d+) Requests?\.$", lines[-1])
    assert msum, text
    assert lines[-2] == "", text
    head = re.compile(r"^(%s)([ *!]) +(\d+) ((?:%s) (?:%s) [ \d]\d "
                      r"\d\d:\d\d:\d\d)  (\S+)$" % (QID, DAYS, MONTHS))
    blocks = []
    cur = None
    for line in lines[:-2]:
        if line == "":
            assert cur is not None and cur["rcpts"], text
            cur = None
            continue
        if cur is None:
            mh = head.match(line)
            assert mh, (line, text)
            # "%-16s%c %8zu": the size is right-aligned in 8 columns
            assert line[17:26] == " %8d" % int(mh.group(3)), line
            cur = {"qid": mh.group(1), "flag": mh.group(2),
                   "size": int(mh.group(3)), "date": mh.group(4),
                   "sender": mh.group(5), "reason": None, "rcpts": []}
            blocks.append(cur)
            continue
        mr = re.match(r"^    \((.*)\)$", line)
        if mr and not cur["rcpts"] and cur["reason"] is None:
            cur["reason"] = mr.group(1)
            continue
        assert line.startswith(" " * 41) and line[41:42] not in ("", " "), \
            (line, text)
        cur["rcpts"].append(line[41:])
    kb, nreq = int(msum.group(1)), int(msum.group(2))
    assert nreq == len(blocks), text
    assert kb == (sum(b["size"] for b in blocks) + 1023) // 1024, text
    return blocks, (kb, nreq)


def parse_show(text):
    """Parse the `show` body: (fields dict, [rcpt dicts])."""
    fields = {}
    rcpts = []
    rx = re.compile(r'^rcpt: <([^>]*)> status=(\w+) attempts=(\d+)'
                    r'(?: reason="([^"]*)")?$')
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("rcpt: "):
            mr = rx.match(line)
            assert mr, (line, text)
            rcpts.append({"addr": mr.group(1), "status": mr.group(2),
                          "attempts": int(mr.group(3)),
                          "reason": mr.group(4)})
            continue
        k, sep, v = line.partition(": ")
        assert sep and re.match(r"^[a-z_]+$", k), (line, text)
        assert k not in fields, (k, text)
        fields[k] = v
    return fields, rcpts


def stats(m):
    """`moatctl stats` as a dict of ints (every line key=number)."""
    out = ctl_ok(m, "stats")
    d = {}
    for line in out.rstrip("\n").split("\n"):
        mk = re.match(r"^([a-z_]+)=(\d+)$", line)
        assert mk, (line, out)
        d[mk.group(1)] = int(mk.group(2))
    return d


def delivered_parts(msg):
    """Split a delivered file at the end of its header section."""
    head, sep, body = msg.partition(b"\n\n")
    assert sep, msg
    return head.split(b"\n"), body


def header_values(head_lines, name):
    """Unfolded values of every header field called name."""
    out = []
    cur = None
    for line in head_lines:
        if line[:1] in (b" ", b"\t"):
            if cur:
                out[-1] += b" " + line.strip()
            continue
        k, sep, v = line.partition(b":")
        cur = k.lower() == name.lower().encode() and sep
        if cur:
            out.append(v.strip())
    return out


def nobody_ids():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def as_nobody():
    """preexec_fn: drop to nobody (root tests only)."""
    uid, gid = nobody_ids()
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


needs_root = pytest.mark.skipif(not moatlib.IS_ROOT,
                                reason="needs root to change uid")


# ---- Maildir delivery --------------------------------------------------

def test_maildir_file_byte_exact(moat):
    m = moat()
    s = send_raw(m, ["user@example.test"])
    got = m.wait_maildir("user")
    assert len(got) == 1
    msg = got[0]
    # Return-Path and Delivered-To from local delivery, the Received
    # line that smtp-in wrote, then the content; CRLF became LF
    rx = re.compile(
        rb"^Return-Path: <sender@remote\.test>\n"
        rb"Delivered-To: user@example\.test\n"
        rb"Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n"
        rb"\tby mx\.example\.test with ESMTP id " + s.qid.encode() +
        rb"\n\tfor <user@example\.test>; (" + RFC5322_DATE.encode() +
        rb")\n")
    mh = rx.match(msg)
    assert mh, msg[:400]
    assert msg[mh.end():] == MSG.replace(b"\r\n", b"\n"), msg
    assert b"\r" not in msg
    arrival = datetime.strptime(mh.group(1).decode(),
                                "%a, %d %b %Y %H:%M:%S %z").timestamp()
    assert abs(arrival - time.time()) < 30, mh.group(1)


def test_maildir_layout_and_modes(moat):
    m = moat()
    send_raw(m, ["user@example.test"])
    m.wait_maildir("user")
    md = m.maildir_path("user")
    assert sorted(os.listdir(md)) == ["cur", "new", "tmp"]
    for sub in ("cur", "new", "tmp"):
        st = os.stat(md / sub)
        assert stat.S_ISDIR(st.st_mode) and not os.path.islink(md / sub)
        assert stat.S_IMODE(st.st_mode) == 0o700, (sub, oct(st.st_mode))
        assert st.st_uid == moatlib.run_ids()[0], sub
    # the file was linked into new/ and its tmp/ name removed
    assert os.listdir(md / "tmp") == []
    assert os.listdir(md / "cur") == []
    names = os.listdir(md / "new")
    assert len(names) == 1
    # time.pid_counter.host (local.c)
    mn = re.match(r"^(\d+)\.(\d+)_(\d+)\.mx\.example\.test$", names[0])
    assert mn, names
    assert abs(int(mn.group(1)) - time.time()) < 30, names
    st = os.stat(md / "new" / names[0])
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == moatlib.run_ids()[0]


def test_maildir_unique_names(moat):
    m = moat()
    bodies = [MSG + b"message %d\r\n" % i for i in range(5)]
    for b in bodies:
        send_raw(m, ["user@example.test"], b)
    got = m.wait_maildir("user", count=5)
    assert len(got) == 5
    names = os.listdir(m.maildir_path("user") / "new")
    assert len(set(names)) == 5, names
    # every message is there exactly once, none overwritten
    rest = sorted(g.split(b"\n\n", 1)[1] for g in got)
    assert rest == sorted(b.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
                          for b in bodies)


def test_two_recipients_one_copy_each(moat):
    m = moat()
    s = send_raw(m, ["user@example.test", "other@example.test"])
    a = m.wait_maildir("user")
    b = m.wait_maildir("other")
    time.sleep(0.3 * moatlib.SLOW)
    assert len(m.maildir("user")) == 1 and len(m.maildir("other")) == 1
    assert len(m.all_delivered()) == 2
    ha, ba = delivered_parts(a[0])
    hb, bb = delivered_parts(b[0])
    assert header_values(ha, "Delivered-To") == [b"user@example.test"]
    assert header_values(hb, "Delivered-To") == [b"other@example.test"]
    # the same message: one Received (no "for" with two recipients)
    assert ha[2:] == hb[2:]
    assert ba == bb == MSG.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    rec = header_values(ha, "Received")
    assert len(rec) == 1 and b" for <" not in rec[0], rec
    assert (b"id " + s.qid.encode() + b";") in rec[0], rec
    m.wait_log(r"queue: event=removed qid=%s delivered=2 bounced=0$"
               % s.qid)


@pytest.mark.parametrize("domains,first", [
    (["example.test", "localhost"], "example.test"),
    (["localhost", "example.test"], "localhost")])
def test_postmaster_goes_to_first_local_domain(moat, domains, first):
    m = moat(local_domains=domains)
    s = send_raw(m, ["postmaster"])
    got = m.wait_maildir("postmaster", first)
    assert len(got) == 1
    head, _ = delivered_parts(got[0])
    assert head[1] == b"Delivered-To: postmaster@" + first.encode(), head
    other = [d for d in domains if d != first][0]
    assert m.maildir("postmaster", other) == []
    m.wait_log(r"queue: event=delivery qid=%s to=<postmaster> "
               r"relay=maildir delay=\d+\.\d\d status=sent dsn=2\.0\.0$"
               % s.qid)


def test_error_transport_5xx_fails_recipient(moat):
    m = moat(transport=["bad.test error:5.1.1 no such user"])
    before = stats(m)
    s = send_raw(m, ["nobody@bad.test", "user@example.test"],
                 sender="sender@example.test")
    m.wait_maildir("user")
    m.wait_log(r"queue: event=delivery qid=%s to=<nobody@bad\.test> "
               r"relay=error delay=\d+\.\d\d status=bounced dsn=5\.1\.1 "
               r'reason="5\.1\.1 no such user"$' % s.qid)
    m.wait_log(r"queue: event=removed qid=%s delivered=1 bounced=1$"
               % s.qid)
    # the failed recipient is reported to the sender: one bounce, a
    # new message from <>, delivered here since the sender is local
    dsn = m.wait_log(r"queue: event=bounce qid=%s dsn_qid=(%s) "
                     r"to=<sender@example\.test> nrcpt=1$"
                     % (s.qid, QID)).group(1)
    got = m.wait_maildir("sender")
    assert len(got) == 1
    assert got[0].startswith(b"Return-Path: <>\nDelivered-To: "
                             b"sender@example.test\n"), got[0][:200]
    assert b"nobody@bad.test" in got[0] and b"5.1.1" in got[0]
    m.wait_log(r"queue: event=removed qid=%s delivered=1 bounced=0$" % dsn)
    # nothing for the failed recipient, no file left in the spool
    assert not (m.mailroot / "bad.test").exists()
    assert sorted(p.parent.parent.name for p, _ in m.all_delivered()) == \
        ["sender", "user"]
    wait_until(lambda: not m.spool_files("queue"), 5 * moatlib.SLOW,
               "an empty queue/")
    for sub in ("incoming", "queue", "hold", "tmp"):
        assert m.spool_files(sub) == [], sub
    after = stats(m)
    assert after["bounced"] - before["bounced"] == 1
    assert after["delivered"] - before["delivered"] == 2
    assert ctl_ok(m, "queue") == "Mail queue is empty\n"


def test_error_transport_5xx_null_sender_no_bounce(moat):
    m = moat(transport=["bad.test error:5.7.1 refused here"])
    mark = m.log_mark()
    s = send_raw(m, ["x@bad.test"], sender="")
    m.wait_log(r"queue: event=delivery qid=%s to=<x@bad\.test> relay=error "
               r'.*status=bounced dsn=5\.7\.1 reason="5\.7\.1 refused '
               r'here"$' % s.qid, since=mark)
    m.wait_log(r"queue: event=removed qid=%s delivered=0 bounced=1$"
               % s.qid, since=mark)
    assert m.spool_files("queue") == []
    assert m.log_lines(r"event=bounce ", since=mark) == []
    assert m.all_delivered() == []


def test_error_transport_4xx_stays_queued(moat):
    m = moat(transport=["later.test error:4.2.2 mailbox full"])
    s = send_raw(m, ["u@later.test"])
    line = wait_deferred(m, s.qid)
    assert line.endswith('relay=error delay=%s status=deferred dsn=4.2.2 '
                         'reason="4.2.2 mailbox full"'
                         % re.search(r"delay=(\S+)", line).group(1)), line
    wait_state_file(m, s.qid)
    assert m.spool_files("queue") == [s.qid, s.qid + ".state"]
    state = (m.spool / "queue" / (s.qid + ".state")).read_text()
    assert state.startswith("MOAT-STATE 1\n") and state.endswith("END\n")
    assert "\nattempts 1\n" in state, state
    assert "\nrcpt 0 pending 1 4.2.2 mailbox full\n" in state, state
    blocks, summary = parse_mailq(ctl_ok(m, "queue"))
    assert len(blocks) == 1
    b = blocks[0]
    assert b["qid"] == s.qid and b["flag"] == " "
    assert b["sender"] == "sender@remote.test"
    assert re.match(r"^4\.2\.2 mailbox full; next attempt in [45]m$",
                    b["reason"]), b
    assert b["rcpts"] == ["u@later.test"]
    assert summary == (1, 1)
    assert m.all_delivered() == []


# ---- deferred mail: no transport ----------------------------------------

def test_no_transport_deferred_reason_in_queue_and_show(moat):
    m = moat()
    t0 = time.time()
    s = send_raw(m, ["someone@elsewhere.test"])
    wait_deferred(m, s.qid, rcpt="someone@elsewhere.test")
    wait_state_file(m, s.qid)
    blocks, _ = parse_mailq(ctl_ok(m, "queue"))
    assert [b["qid"] for b in blocks] == [s.qid]
    b = blocks[0]
    assert re.match(r"^%s; next attempt in [45]m$" % re.escape(NO_SMTP % "elsewhere.test"),
                    b["reason"]), b
    assert b["rcpts"] == ["someone@elsewhere.test"]

    f, rc = parse_show(ctl_ok(m, "show", s.qid))
    assert list(f) == ["qid", "state", "arrival", "size", "from", "client",
                       "helo", "proto", "attempts", "next_attempt",
                       "reason"], f
    assert f["qid"] == s.qid
    assert f["state"] == "deferred"
    assert f["from"] == "<sender@remote.test>"
    assert f["client"] == "127.0.0.1 (unknown)"
    assert f["helo"] == "client.test"
    assert f["proto"] == "ESMTP"
    assert f["attempts"] == "1"
    assert f["reason"] == NO_SMTP % "elsewhere.test"
    assert int(f["size"]) == b["size"]
    # the size is that of the queue file's content: Received + message
    qf = (m.spool / "queue" / s.qid).read_bytes()
    assert int(f["size"]) == int(re.search(rb"\nsize (\d{16})\n",
                                           qf).group(1))
    arrival = datetime.strptime(f["arrival"], "%a, %d %b %Y %H:%M:%S %z")
    assert t0 - 2 <= arrival.timestamp() <= time.time() + 1, f["arrival"]
    # the listing shows the same arrival, mailq style
    assert b["date"] == arrival.strftime("%a %b %e %H:%M:%S"), (b, f)
    mn = re.match(r"^(%s) \(in ([45])m\)$" % RFC5322_DATE,
                  f["next_attempt"])
    assert mn, f["next_attempt"]
    nxt = datetime.strptime(mn.group(1), "%a, %d %b %Y %H:%M:%S %z")
    # retry_min defaults to 5m
    assert nxt.timestamp() - arrival.timestamp() in range(299, 303), f
    assert rc == [{"addr": "someone@elsewhere.test", "status": "pending",
                   "attempts": 1,
                   "reason": NO_SMTP % "elsewhere.test"}]


def test_flush_reattempts_deferred(moat):
    m = moat()
    s = send_raw(m, ["someone@elsewhere.test"])
    wait_deferred(m, s.qid)
    wait_state_file(m, s.qid)
    mark = m.log_mark()
    assert ctl_ok(m, "flush") == "1 message scheduled for delivery\n"
    m.wait_log(r"queue: event=flush messages=1$", since=mark)
    wait_deferred(m, s.qid, since=mark, rcpt="someone@elsewhere.test")
    wait_until(lambda: parse_show(ctl_ok(m, "show", s.qid))[0]["attempts"]
               == "2", 5 * moatlib.SLOW, "attempts: 2")
    f, rc = parse_show(ctl_ok(m, "show", s.qid))
    assert rc[0]["attempts"] == 2 and rc[0]["status"] == "pending", rc
    # the second deferral doubles the backoff: 10 minutes
    assert re.search(r"\(in (9|10)m\)$", f["next_attempt"]), f
    state = (m.spool / "queue" / (s.qid + ".state")).read_text()
    assert "\nattempts 2\n" in state, state
    # nothing is due any more: a second flush schedules it again
    assert ctl_ok(m, "flush") == "1 message scheduled for delivery\n"


def test_restart_keeps_deferred_schedule(moat):
    m = moat()
    s = send_raw(m, ["user@example.test", "x@elsewhere.test"])
    m.wait_maildir("user")
    wait_deferred(m, s.qid)
    wait_state_file(m, s.qid)
    before, rc_before = parse_show(ctl_ok(m, "show", s.qid))
    mark = m.log_mark()
    m.restart()
    m.wait_log(r"queue: event=start role=queue messages=1$", since=mark)
    time.sleep(0.5 * moatlib.SLOW)
    # not retried at start: the next attempt stays where it was, and
    # the delivered recipient is not delivered again
    assert m.log_lines(r"event=delivery", since=mark) == []
    after, rc_after = parse_show(ctl_ok(m, "show", s.qid))
    for f in (before, after):
        f["next_attempt"] = re.sub(r" \(in \d+[smhd]\)$", "",
                                   f["next_attempt"])
    assert after == before and rc_after == rc_before, (before, after)
    assert [r["status"] for r in rc_after] == ["delivered", "pending"]
    assert len(m.maildir("user")) == 1


def test_stop_waits_for_the_local_delivery_in_flight(moat):
    """SIGTERM while local delivery writes a message: the queue waits for
    its answer (even when smtp-out has already gone) and records it, so
    the next start does not deliver it a second time."""
    m = moat(message_size_limit="40M")
    line = b"x" * 998 + b"\r\n"
    big = MSG + line * (24 * 1024 * 1024 // len(line))
    s = send_raw(m, ["user@example.test"], content=big)
    tmp = m.maildir_path("user") / "tmp"
    wait_until(lambda: tmp.is_dir() and any(tmp.iterdir()),
               10 * moatlib.SLOW, "local delivery writing into tmp/")
    mark = m.log_mark()
    m.stop()
    # the answer came back before the queue stopped
    m.wait_log(r"queue: event=delivery qid=%s to=<user@example\.test> "
               r"relay=maildir .* status=sent" % s.qid, since=mark)
    m.wait_log(r"queue: event=removed qid=%s " % s.qid, since=mark)
    assert m.spool_files("queue") == []
    m.start()
    m.wait_log(r"queue: event=start role=queue messages=0$", since=mark)
    got = m.maildir("user")
    assert len(got) == 1 and got[0].endswith(b"x" * 998 + b"\n")


def test_delivered_file_is_recycled_for_the_next_message(moat):
    """A delivered message's file goes to free/ and holds the next one:
    same inode, cut to the new length, the old octets gone."""
    m = moat()
    free = m.spool / "free"
    assert m.spool_files("free") == []
    line = b"L" * 78 + b"\r\n"
    long_msg = MSG + line * 400              # about 32 KiB
    s1 = send_raw(m, ["user@example.test"], content=long_msg)
    m.wait_maildir("user")
    m.wait_log(r"queue: event=removed qid=%s " % s1.qid)
    assert m.spool_files("free") == [s1.qid]
    st1 = os.stat(free / s1.qid)
    assert st1.st_size > 32000 and stat.S_IMODE(st1.st_mode) == 0o600
    # an empty free/ is listed again after 50 ms at the earliest
    time.sleep(0.2)
    s2 = send_raw(m, ["user@example.test"])
    got = m.wait_maildir("user", count=2)
    m.wait_log(r"queue: event=removed qid=%s " % s2.qid)
    assert m.spool_files("free") == [s2.qid]
    st2 = os.stat(free / s2.qid)
    assert st2.st_ino == st1.st_ino and st2.st_size < 2000, (st1, st2)
    short = [g for g in got if b"L" * 78 not in g]
    assert len(short) == 1 and short[0].endswith(b"\nlast line\n")
    # the spool file itself: exactly the new message, then END
    raw = (free / s2.qid).read_bytes()
    assert raw.endswith(b"last line\r\nEND\n") and b"L" * 78 not in raw
    # emptied at start
    mark = m.log_mark()
    m.restart()
    m.wait_log(r"queue: event=start role=queue ", since=mark)
    assert m.spool_files("free") == []


def test_flush_empty_queue(moat):
    m = moat()
    assert ctl_ok(m, "flush") == "0 messages scheduled for delivery\n"
    assert ctl_ok(m, "queue") == "Mail queue is empty\n"


# ---- moatctl: queue listing ----------------------------------------------

def test_queue_listing_several_messages(moat):
    m = moat(transport=["later.test error:4.3.2 try again later"])
    s1 = send_raw(m, ["a@elsewhere.test", "b@later.test"],
                  sender="first@remote.test")
    s2 = send_raw(m, ["c@later.test", "user@example.test"],
                  sender="")
    wait_deferred(m, s1.qid, rcpt="b@later.test")
    wait_deferred(m, s2.qid, rcpt="c@later.test")
    m.wait_maildir("user")
    wait_state_file(m, s2.qid)
    out = ctl_ok(m, "queue")
    blocks, summary = parse_mailq(out)
    # oldest first (queue ids sort by arrival)
    assert [b["qid"] for b in blocks] == [s1.qid, s2.qid], out
    assert s1.qid < s2.qid
    assert blocks[0]["sender"] == "first@remote.test"
    # the null sender is shown as MAILER-DAEMON
    assert blocks[1]["sender"] == "MAILER-DAEMON"
    # only the pending recipients are listed
    assert blocks[0]["rcpts"] == ["a@elsewhere.test", "b@later.test"]
    assert blocks[1]["rcpts"] == ["c@later.test"]
    assert blocks[1]["reason"].startswith("4.3.2 try again later; "), out
    sizes = [int(re.search(rb"\nsize (\d{16})\n",
                           (m.spool / "queue" / q).read_bytes()).group(1))
             for q in (s1.qid, s2.qid)]
    assert [b["size"] for b in blocks] == sizes
    assert summary == ((sum(sizes) + 1023) // 1024, 2)
    assert out.endswith("\n\n-- 1 Kbytes in 2 Requests.\n"), out


# ---- moatctl: hold / release / delete ------------------------------------

def test_hold_release_delivers(moat):
    m = moat(transport=["later.test error:4.3.2 try again later"])
    s = send_raw(m, ["u@later.test"])
    wait_deferred(m, s.qid)
    wait_state_file(m, s.qid)
    mark = m.log_mark()
    assert ctl_ok(m, "hold", s.qid) == "%s held\n" % s.qid
    m.wait_log(r"queue: event=hold qid=%s$" % s.qid, since=mark)
    # both files moved to hold/
    assert m.spool_files("hold") == [s.qid, s.qid + ".state"]
    assert m.spool_files("queue") == []
    blocks, _ = parse_mailq(ctl_ok(m, "queue"))
    assert blocks[0]["flag"] == "!" and blocks[0]["qid"] == s.qid
    assert blocks[0]["reason"] == "held by the administrator"
    f, _ = parse_show(ctl_ok(m, "show", s.qid))
    assert f["state"] == "held" and f["next_attempt"] == "none", f
    st = stats(m)
    assert (st["queue_hold"], st["queue_deferred"], st["queue_active"]) \
        == (1, 0, 0), st
    # holding again is harmless
    assert ctl_ok(m, "hold", s.qid) == "%s held\n" % s.qid

    # make later.test deliverable; the message stays held across a
    # restart and a flush
    m.transport_extra = ["later.test maildir:%s/%%d/%%u" % m.mailroot]
    m.write_config()
    m.restart()
    assert m.spool_files("hold") == [s.qid, s.qid + ".state"]
    assert ctl_ok(m, "flush") == "0 messages scheduled for delivery\n"
    time.sleep(0.5 * moatlib.SLOW)
    assert m.all_delivered() == []
    assert parse_mailq(ctl_ok(m, "queue"))[0][0]["flag"] == "!"

    mark = m.log_mark()
    assert ctl_ok(m, "release", s.qid) == "%s released\n" % s.qid
    m.wait_log(r"queue: event=release qid=%s$" % s.qid, since=mark)
    got = m.wait_maildir("u", "later.test")
    assert len(got) == 1
    assert got[0].startswith(b"Return-Path: <sender@remote.test>\n"
                             b"Delivered-To: u@later.test\n")
    m.wait_log(r"queue: event=delivery qid=%s to=<u@later\.test> "
               r"relay=maildir .*status=sent" % s.qid, since=mark)
    m.wait_log(r"queue: event=removed qid=%s delivered=1 bounced=0$"
               % s.qid, since=mark)
    wait_until(lambda: not m.spool_files("queue") and
               not m.spool_files("hold"), 5 * moatlib.SLOW, "empty spool")


def test_delete_removes_files_and_logs(moat):
    m = moat()
    s = send_raw(m, ["x@elsewhere.test", "y@elsewhere.test"])
    keep = send_raw(m, ["z@elsewhere.test"])
    wait_deferred(m, s.qid, rcpt="y@elsewhere.test")
    wait_deferred(m, keep.qid)
    wait_state_file(m, s.qid)
    wait_state_file(m, keep.qid)
    mark = m.log_mark()
    assert ctl_ok(m, "delete", s.qid) == "%s deleted\n" % s.qid
    m.wait_log(r"queue: event=deleted qid=%s nrcpt=2$" % s.qid, since=mark)
    assert m.spool_files("queue") == [keep.qid, keep.qid + ".state"]
    blocks, _ = parse_mailq(ctl_ok(m, "queue"))
    assert [b["qid"] for b in blocks] == [keep.qid]
    r = m.ctl("show", s.qid)
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr == b"moatctl: show: no such message\n", r.stderr
    # a held message can be deleted too
    assert ctl_ok(m, "hold", keep.qid) == "%s held\n" % keep.qid
    assert ctl_ok(m, "delete", keep.qid) == "%s deleted\n" % keep.qid
    assert m.spool_files("hold") == [] and m.spool_files("queue") == []
    assert ctl_ok(m, "queue") == "Mail queue is empty\n"
    # and it stays deleted after a restart (nothing rebuilt)
    m.restart()
    assert ctl_ok(m, "queue") == "Mail queue is empty\n"


# ---- moatctl: stats --------------------------------------------------------

def test_stats_counters_increase_by_what_was_sent(moat):
    m = moat(transport=["bad.test error:5.1.1 no such user"])
    time.sleep(0.2 * moatlib.SLOW)
    b = stats(m)
    expected_keys = ["conn_total", "conn_current", "conn_refused",
                     "msg_accepted", "msg_rejected", "rcpt_rejected",
                     "bytes_received", "alarm_filter", "alarm_relay",
                     "alarm_spoof", "alarm_dnsbl", "alarm_pregreet",
                     "policy_rejected", "delivered", "deferred", "bounced",
                     "restarts", "queue_active", "queue_deferred",
                     "queue_hold"]
    assert list(b) == expected_keys, b
    s1 = send_raw(m, ["user@example.test", "other@example.test"])
    s2 = send_raw(m, ["x@bad.test", "y@elsewhere.test", "user@example.test"])
    m.wait_maildir("user", count=2)
    m.wait_maildir("other")
    wait_state_file(m, s2.qid)
    wait_until(lambda: stats(m)["conn_current"] == 0, 5 * moatlib.SLOW,
               "conn_current=0")
    a = stats(m)
    d = {k: a[k] - b[k] for k in a}
    assert d["conn_total"] == 2, d
    assert d["msg_accepted"] == 2, d
    assert d["delivered"] == 3, d
    assert d["bounced"] == 1, d
    assert d["deferred"] == 1, d
    assert d["msg_rejected"] == 0 and d["rcpt_rejected"] == 0, d
    # every octet the two clients sent, commands and content
    assert d["bytes_received"] == s1.nbytes + s2.nbytes, (d, s1.nbytes,
                                                          s2.nbytes)
    assert (a["queue_active"], a["queue_deferred"], a["queue_hold"]) == \
        (0, 1, 0), a
    assert a["restarts"] == 0


def test_stats_count_rejected_recipients_and_alarms(moat):
    m = moat(relay_networks="127.0.0.1/32")
    b = stats(m)
    c = m.raw(source="127.0.0.2")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@elsewhere.test>").code == 550
    assert c.cmd("RCPT TO:<w@elsewhere.test>").code == 550
    assert c.cmd("QUIT").code == 221
    c.close()
    wait_until(lambda: stats(m)["conn_current"] == 0, 5 * moatlib.SLOW,
               "conn_current=0")
    a = stats(m)
    d = {k: a[k] - b[k] for k in a}
    assert d["alarm_relay"] == 2 and d["rcpt_rejected"] == 2, d
    assert d["msg_accepted"] == 0 and d["conn_total"] == 1, d


# ---- moatctl: usage and errors ----------

@pytest.mark.parametrize("args,msg", [
    ((), None),
    (("frobnicate",), "unknown verb: frobnicate"),
    (("show",), "show takes a queue id"),
    (("hold",), "hold takes a queue id"),
    (("queue", "extra"), "queue takes no argument"),
    (("show", "A", "B"), "show takes a queue id"),
    (("show", ""), "invalid queue id: "),
    (("delete", "two words"), "invalid queue id: two words"),
    (("release", "caf\u00e9"), "invalid queue id: caf\u00e9"),
    (("hold", "a\x1bb"), None)])
def test_moatctl_bad_usage_exit_2(moat, args, msg):
    m = moat()
    r = m.ctl(*args)
    assert r.returncode == 2, (args, r)
    assert r.stdout == b""
    err = r.stderr.decode("utf-8", "replace")
    assert "usage: moatctl [-c FILE] VERB [ID]" in err, err
    if msg:
        assert err.startswith("moatctl: %s\n" % msg), err


@pytest.mark.parametrize("verb", ["show", "hold", "release", "delete"])
def test_moatctl_unknown_id_exit_1(moat, verb):
    m = moat()
    s = send_raw(m, ["someone@elsewhere.test"])
    wait_deferred(m, s.qid)
    r = m.ctl(verb, "0000000000000000")
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr == b"moatctl: %s: no such message\n" % verb.encode()
    # well-formed token, but not a queue id: the daemon says so
    r = m.ctl(verb, "not-a-qid")
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr == b"moatctl: %s: a queue id is needed\n" \
        % verb.encode()
    # the real message was not touched
    assert m.spool_files("queue")[0] == s.qid
    assert parse_show(ctl_ok(m, "show", s.qid))[0]["state"] == "deferred"


def test_moatctl_against_stopped_daemon(moat):
    m = moat()
    m.stop()
    for verb in (["queue"], ["stats"], ["flush"], ["show", "0" * 16]):
        r = m.ctl(*verb)
        assert r.returncode == 1 and r.stdout == b"", (verb, r)
        assert r.stderr == ("moatctl: moatd is not running (nothing "
                            "listening on %s/control)\n" % m.spool
                            ).encode(), r.stderr


def test_moatctl_never_started(moat):
    m = moat(start=False)
    r = m.ctl("queue")
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr == ("moatctl: moatd is not running (no control socket "
                        "at %s/control)\n" % m.spool).encode(), r.stderr


def test_moatctl_config_error_exit_1(moat):
    m = moat()
    bad = m.dir / "bad.conf"
    bad.write_text("spool_dir = %s\nno_such_key = 1\n" % m.spool)
    r = m.tool("moatctl", "-c", bad, "queue")
    assert r.returncode == 1 and r.stdout == b"", r
    assert re.search(rb"^%s:2: " % re.escape(str(bad).encode()), r.stderr,
                     re.M), r.stderr


# ---- the control socket --------------------------------------------------

def test_control_socket_mode_and_owner(moat):
    m = moat()
    st = os.lstat(m.spool / "control")
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == moatlib.run_ids()


# Connect to the control socket with euid nobody.  fs=0 keeps the file
# system uid 0 (setfsuid is allowed back to the real uid, and restores
# the file capabilities), so only the daemon's SO_PEERCRED check, which
# sees the effective uid, can refuse the connection.
PEER_SCRIPT = r"""
import ctypes, os, socket, sys
path, uid, gid, keep_fs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    sys.argv[4] == "fs0"
os.setgroups([])
os.setresgid(gid, gid, 0 if keep_fs else gid)
if keep_fs:
    os.setresuid(0, uid, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setfsuid(0)
    assert libc.setfsuid(-1) == 0
else:
    os.setresuid(uid, uid, uid)
assert os.geteuid() == uid
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    print("CONNECT-ERROR %d" % e.errno)
    sys.exit(0)
try:
    s.sendall(b"queue\n")
except (BrokenPipeError, ConnectionResetError):
    pass    # refused (and closed) before the request was sent
out = b""
while True:
    try:
        d = s.recv(4096)
    except ConnectionResetError:
        # the refusal does not read the request: the close resets
        break
    if not d:
        break
    out += d
sys.stdout.write("REPLY " + out.decode("latin-1"))
"""


def peer_connect(m, keep_fs):
    uid, gid = nobody_ids()
    r = subprocess.run([sys.executable, "-c", PEER_SCRIPT,
                        str(m.spool / "control"), str(uid), str(gid),
                        "fs0" if keep_fs else "plain"],
                       capture_output=True, timeout=30 * moatlib.SLOW)
    assert r.returncode == 0, r
    return r.stdout.decode("latin-1")


@needs_root
def test_control_socket_refuses_other_uid_by_mode(moat):
    m = moat()
    out = peer_connect(m, keep_fs=False)
    assert out == "CONNECT-ERROR %d\n" % __import__("errno").EACCES, out


@needs_root
def test_control_socket_refuses_other_uid_by_peercred(moat):
    m = moat()
    s = send_raw(m, ["someone@elsewhere.test"])
    wait_deferred(m, s.qid)
    mark = m.log_mark()
    out = peer_connect(m, keep_fs=True)
    assert out == "REPLY -ERR permission denied\n", out
    m.wait_log(r"queue: event=control_refused uid=%d pid=\d+$"
               % nobody_ids()[0], since=mark)
    # root is still served
    assert parse_mailq(ctl_ok(m, "queue"))[0][0]["qid"] == s.qid


@needs_root
def test_moatctl_as_other_user_denied(moat):
    m = moat()
    r = subprocess.run([str(moatlib.bin_path("moatctl")), "-c", str(m.conf),
                        "queue"], capture_output=True, preexec_fn=as_nobody,
                       timeout=30 * moatlib.SLOW, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr == ("moatctl: permission denied on %s/control: run as "
                        "root or as the moat user\n" % m.spool
                        ).encode(), r.stderr


def test_control_protocol_raw(moat):
    """The wire protocol of control.h, spoken directly."""
    m = moat()

    def ask(line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10 * moatlib.SLOW)
            s.connect(str(m.spool / "control"))
            s.sendall(line)
            out = b""
            while True:
                try:
                    d = s.recv(4096)
                except ConnectionResetError:
                    # closed with our excess input unread
                    assert out, line
                    return out
                if not d:
                    return out
                out += d

    assert ask(b"queue\n") == b"+OK\nMail queue is empty\n"
    assert ask(b"queue\r\n") == b"+OK\nMail queue is empty\n"
    assert ask(b"bogus\n") == b"-ERR unknown command\n"
    assert ask(b"QUEUE\n") == b"-ERR unknown command\n"
    assert ask(b"stats x\n") == b"-ERR this command takes no argument\n"
    assert ask(b"show\n") == b"-ERR a queue id is needed\n"
    assert ask(b"show 0000000000000000\n") == b"-ERR no such message\n"
    # CONTROL_LINE_MAX counts the LF
    assert ask(b"show " + b"x" * 506 + b"\n") == \
        b"-ERR a queue id is needed\n"
    assert ask(b"show " + b"x" * 507 + b"\n") == \
        b"-ERR request line too long\n"
    assert ask(b"x" * 600) == b"-ERR request line too long\n"
    st = ask(b"stats\n")
    assert st.startswith(b"+OK\nconn_total=") and st.endswith(
        b"\nqueue_hold=0\n"), st
