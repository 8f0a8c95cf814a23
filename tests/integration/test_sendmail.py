"""test_sendmail - moat-sendmail and mailq, end to end.

Messages are submitted with the real moat-sendmail into the maildrop of
a real moatd, picked up by the queue role and delivered to Maildirs;
the tests check the delivered octets, the maildrop files, the log and
the command output.  Reference: docs/commands.md ("moat-sendmail and
mailq"), doc/QUEUE.md (maildrop import), RFC 5322 3.6 (From, Date,
Message-ID, Bcc).
"""

import email.header
import os
import pwd
import re
import stat
import subprocess
import time
from datetime import datetime

import pytest

import moatlib
from moatlib import HOSTNAME, wait_until
from test_queue_ctl import (QID, QID_RE, RFC5322_DATE, as_nobody,
                            ctl_ok, delivered_parts, header_values,
                            needs_root, nobody_ids, parse_mailq,
                            wait_deferred)

EX_USAGE = 64
EX_DATAERR = 65

LOGIN = pwd.getpwuid(os.getuid()).pw_name
DEFAULT_SENDER = "%s@%s" % (LOGIN, HOSTNAME)

FULL = (b"From: Writer <writer@example.test>\n"
        b"To: user@example.test\n"
        b"Subject: submitted\n"
        b"Date: Mon, 02 Jun 2025 10:00:00 +0000\n"
        b"Message-ID: <fixed@example.test>\n"
        b"\n"
        b"line one\n"
        b"\n"
        b"  line three  \n")


def sendmail(m, *args, input=b"", user=None, name="moat-sendmail",
             config=True, env=None):
    """Run moat-sendmail (or the mailq link) as root or as nobody."""
    argv = [str(moatlib.bin_path(name))]
    if config:
        argv += ["-C", str(m.conf)]
    argv += [str(a) for a in args]
    e = m.env()
    if env:
        e.update(env)
    return subprocess.run(argv, input=input, capture_output=True,
                          cwd=m.dir, env=e, timeout=30 * moatlib.SLOW,
                          preexec_fn=as_nobody if user == "nobody"
                          else None)


def submit(m, *args, input=FULL, user=None):
    """A submission that must succeed silently."""
    r = sendmail(m, *args, input=input, user=user)
    assert r.returncode == 0, (args, r)
    assert r.stdout == b"" and r.stderr == b"", r
    return r


def queued_line(m, since=0, sender=None):
    """The queue's "event=queued ... orig_qid=" line of a maildrop import.

    Returns the match: qid (new id), size, uid, orig (maildrop id).
    """
    rx = (r"queue: event=queued qid=(?P<qid>%s) from=<%s> nrcpt=(?P<n>\d+) "
          r"size=(?P<size>\d+) uid=(?P<uid>\d+) orig_qid=(?P<orig>%s)$"
          % (QID, re.escape(sender) if sender is not None else r"[^>]*",
             QID))
    return m.wait_log(rx, since=since)


def local_received(qid, uid):
    """The Received field the queue writes on import (LF form)."""
    return (rb"Received: from local \(uid %d\)\n"
            rb"\tby mx\.example\.test with LOCAL id %s;\n"
            rb"\t(%s)\n" % (uid, qid.encode(), RFC5322_DATE.encode()))


def assert_one_received(msg):
    """Exactly one trace field: the queue's (no second one)."""
    head, _ = delivered_parts(msg)
    rec = header_values(head, "Received")
    assert len(rec) == 1, rec
    return rec[0]


def body_of(msg):
    return msg.split(b"\n\n", 1)[1]


def no_maildrop_left(m):
    names = os.listdir(m.spool / "maildrop")
    assert names == [], names


# ---- submission and delivery --------------------------------------------

def test_plain_recipients_byte_exact(moat):
    m = moat()
    mark = m.log_mark()
    submit(m, "user@example.test", "other@example.test")
    q = queued_line(m, mark, DEFAULT_SENDER)
    assert q.group("n") == "2" and int(q.group("uid")) == os.getuid()
    assert q.group("qid") != q.group("orig")
    for u in ("user", "other"):
        got = m.wait_maildir(u)
        assert len(got) == 1
        msg = got[0]
        rx = re.compile(
            b"^Return-Path: <" + re.escape(DEFAULT_SENDER).encode() +
            b">\nDelivered-To: " + u.encode() + rb"@example\.test\n" +
            local_received(q.group("qid"), os.getuid()))
        mh = rx.match(msg)
        assert mh, msg[:400]
        # From, Date and Message-ID were there: nothing else added
        assert msg[mh.end():] == FULL, msg
        assert_one_received(msg)
    m.wait_log(r"queue: event=removed qid=%s delivered=2 bounced=0$"
               % q.group("qid"), since=mark)
    no_maildrop_left(m)


def test_one_received_header_only(moat):
    m = moat()
    submit(m, "user@example.test",
           input=b"Subject: trace\n\nbody\n")
    got = m.wait_maildir("user")
    rec = assert_one_received(got[0])
    assert rec.startswith(b"from local (uid %d) by %s with LOCAL id "
                          % (os.getuid(), HOSTNAME.encode())), rec


def test_adds_from_date_message_id(moat):
    m = moat()
    mark = m.log_mark()
    t0 = time.time()
    submit(m, "user@example.test",
           input=b"Subject: bare\nX-Custom: kept\n\nhello\n")
    q = queued_line(m, mark)
    got = m.wait_maildir("user")[0]
    head, body = delivered_parts(got)
    assert body == b"hello\n"
    # the user's fields first, in order, then the added ones
    i = head.index(b"Subject: bare")
    assert head[i + 1] == b"X-Custom: kept", head
    added = head[i + 2:]
    assert len(added) == 3, head
    assert re.match(rb"^From: (.+ <%s>|%s)$"
                    % (re.escape(DEFAULT_SENDER.encode()),
                       re.escape(DEFAULT_SENDER.encode())), added[0]), added
    md = re.match(rb"^Date: (%s)$" % RFC5322_DATE.encode(), added[1])
    assert md, added
    when = datetime.strptime(md.group(1).decode(),
                             "%a, %d %b %Y %H:%M:%S %z").timestamp()
    assert t0 - 2 <= when <= time.time() + 1, md.group(1)
    # Message-ID names the maildrop id the submission got
    assert added[2] == b"Message-ID: <%s@%s>" % (
        q.group("orig").encode(), HOSTNAME.encode()), added


def test_crlf_and_lone_cr_input_normalised(moat):
    m = moat()
    submit(m, "user@example.test",
           input=b"Subject: eol\r\n\r\nline a\r\nline b\rline c\nend")
    got = m.wait_maildir("user")[0]
    assert body_of(got) == b"line a\nline b\nline c\nend\n", got
    assert b"\r" not in got


def test_unix_from_line_dropped(moat):
    m = moat()
    submit(m, "user@example.test",
           input=b"From someone  Mon Jun  2 10:00:00 2025\n"
                 b"Subject: mbox\n\nbody\n")
    got = m.wait_maildir("user")[0]
    head, body = delivered_parts(got)
    assert not any(h.startswith(b"From ") for h in head), head
    assert b"Subject: mbox" in head and body == b"body\n"


def test_t_takes_to_cc_bcc_and_removes_bcc(moat):
    m = moat()
    mark = m.log_mark()
    msg = (b"To: A <a@example.test>, b@example.test\n"
           b"Cc: team: c@example.test;,\n"
           b" \"Doe, J\" <d@example.test>\n"
           b"Bcc: secret@example.test\n"
           b"Subject: extracted\n"
           b"\n"
           b"To: not-a-header@example.test\n")
    submit(m, "-t", "extra@example.test", input=msg)
    q = queued_line(m, mark)
    assert q.group("n") == "6", q.group(0)
    users = ["a", "b", "c", "d", "secret", "extra"]
    copies = {}
    for u in users:
        got = m.wait_maildir(u)
        assert len(got) == 1, u
        copies[u] = got[0]
    time.sleep(0.3 * moatlib.SLOW)
    assert len(m.all_delivered()) == 6
    assert not m.maildir_path("not-a-header").exists()
    for u, c in copies.items():
        head, body = delivered_parts(c)
        assert not any(h.lower().startswith(b"bcc") for h in head), (u, head)
        # the Bcc address is nowhere but in its own Delivered-To
        assert b"secret" not in b"\n".join(head[2:]) + body, (u, c)
        assert head[1] == b"Delivered-To: %s@example.test" % u.encode()
        assert body == b"To: not-a-header@example.test\n"
        # the same message for everybody but the Delivered-To line
        assert head[2:] == delivered_parts(copies["a"])[0][2:]
    head = delivered_parts(copies["a"])[0]
    assert b"Cc: team: c@example.test;," in head, head


def test_bcc_removed_without_t(moat):
    m = moat()
    submit(m, "user@example.test",
           input=b"To: user@example.test\nBcc: hidden@example.test\n"
                 b"Subject: b\n\nbody\n")
    got = m.wait_maildir("user")[0]
    assert b"Bcc" not in got and b"hidden" not in got, got
    time.sleep(0.3 * moatlib.SLOW)
    # without -t the Bcc address is no recipient
    assert not m.maildir_path("hidden").exists()


@pytest.mark.parametrize("opts,body", [
    ((), b"before\n"),
    (("-i",), b"before\n.\n..\nafter\n"),
    (("-oi",), b"before\n.\n..\nafter\n"),
    (("-ti",), b"before\n.\n..\nafter\n")])
def test_lone_dot_line(moat, opts, body):
    m = moat()
    rcpt = () if "-ti" in opts else ("user@example.test",)
    submit(m, *opts, *rcpt,
           input=b"To: user@example.test\nSubject: dots\n\n"
                 b"before\n.\n..\nafter\n")
    got = m.wait_maildir("user")[0]
    assert body_of(got) == body, got


def test_dot_dot_line_does_not_end_message(moat):
    m = moat()
    submit(m, "user@example.test",
           input=b"Subject: dots\n\n..\n. \nlast\n")
    assert body_of(m.wait_maildir("user")[0]) == b"..\n. \nlast\n"


def test_f_and_F_sender_and_from(moat):
    m = moat()
    submit(m, "-f", "alice@example.test", "-F", "Alice Liddell",
           "user@example.test", input=b"Subject: f\n\nbody\n")
    got = m.wait_maildir("user")[0]
    head, _ = delivered_parts(got)
    assert head[0] == b"Return-Path: <alice@example.test>", head
    assert header_values(head, "From") == [
        b"Alice Liddell <alice@example.test>"], head
    assert_one_received(got)


def test_f_attached_and_bare_login_qualified(moat):
    m = moat()
    submit(m, "-fbob", "-F", "Bob", "user", input=b"Subject: f\n\nbody\n")
    # "user" is qualified with the hostname: no transport for it
    mark_rx = r"queue: event=delivery qid=%s to=<user@mx\.example\.test> " \
              r".*status=deferred" % QID
    m.wait_log(mark_rx)
    blocks, _ = parse_mailq(ctl_ok(m, "queue"))
    assert blocks[0]["sender"] == "bob@%s" % HOSTNAME, blocks
    assert blocks[0]["rcpts"] == ["user@%s" % HOSTNAME], blocks


def test_f_null_sender(moat):
    m = moat()
    submit(m, "-f", "<>", "user@example.test", input=b"Subject: n\n\nb\n")
    got = m.wait_maildir("user")[0]
    head, _ = delivered_parts(got)
    assert head[0] == b"Return-Path: <>", head
    # From: names the login, the envelope has no sender
    (frm,) = header_values(head, "From")
    assert frm.endswith(b"<%s>" % DEFAULT_SENDER.encode()) or \
        frm == DEFAULT_SENDER.encode(), frm


def test_F_non_ascii_name_encoded(moat):
    m = moat()
    submit(m, "-F", "J\u00f6rg M\u00fcller", "-f", "j@example.test",
           "user@example.test", input=b"Subject: u\n\nb\n")
    got = m.wait_maildir("user")[0]
    head, _ = delivered_parts(got)
    assert all(b < 0x80 for b in b"\n".join(head)), head
    (frm,) = header_values(head, "From")
    parts = email.header.decode_header(frm.decode("ascii"))
    text = "".join(p.decode(c or "ascii") if isinstance(p, bytes) else p
                   for p, c in parts)
    assert re.sub(r"\s+", " ", text).strip() == \
        "J\u00f6rg M\u00fcller <j@example.test>", (frm, text)


def test_existing_from_kept_with_F(moat):
    m = moat()
    submit(m, "-F", "Ignored Name", "user@example.test",
           input=b"From: Real <real@example.test>\nSubject: k\n\nb\n")
    head, _ = delivered_parts(m.wait_maildir("user")[0])
    assert header_values(head, "From") == [b"Real <real@example.test>"]


def test_config_from_environment(moat):
    m = moat()
    r = sendmail(m, "user@example.test", input=b"Subject: env\n\nb\n",
                 config=False, env={"MOAT_CONFIG": str(m.conf)})
    assert r.returncode == 0, r
    assert len(m.wait_maildir("user")) == 1


# ---- the maildrop while moatd is stopped ----------------------------------

def test_submit_while_stopped_then_delivered(moat):
    m = moat()
    m.stop()
    submit(m, "user@example.test", input=b"Subject: offline\n\nqueued\n")
    names = os.listdir(m.spool / "maildrop")
    assert len(names) == 1 and QID_RE.match(names[0]), names
    p = m.spool / "maildrop" / names[0]
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.getuid()
    data = p.read_bytes()
    assert data.startswith(b"MOAT-SPOOL 1\nqid %s\n" % names[0].encode())
    for rec in (b"\nclient local\n", b"\nproto LOCAL\n",
                b"\nfrom %s\n" % DEFAULT_SENDER.encode(),
                b"\nrcpt user@example.test\n"):
        assert rec in data, (rec, data)
    assert data.endswith(b"\r\nqueued\r\nEND\n"), data
    assert m.all_delivered() == []

    mark = m.log_mark()
    m.start()
    q = queued_line(m, mark)
    assert q.group("orig") == names[0]
    got = m.wait_maildir("user")
    assert len(got) == 1 and body_of(got[0]) == b"queued\n"
    assert_one_received(got[0])
    wait_until(lambda: os.listdir(m.spool / "maildrop") == [],
               5 * moatlib.SLOW, "empty maildrop")


def test_maildrop_mode(moat):
    m = moat()
    st = os.stat(m.spool / "maildrop")
    assert stat.S_IMODE(st.st_mode) == 0o1733, oct(st.st_mode)


# ---- mailq, -bp, -q ---------------------------------------------------------

def norm_next(text):
    return re.sub(r"next attempt in \d+[smhd]", "next attempt in N", text)


def test_mailq_and_bp_list_the_queue(moat):
    m = moat()
    assert sendmail(m, name="mailq").stdout == b"Mail queue is empty\n"
    submit(m, "x@elsewhere.test", input=b"Subject: q\n\nb\n")
    q = queued_line(m)
    wait_deferred(m, q.group("qid"))
    want = ctl_ok(m, "queue")
    blocks, _ = parse_mailq(want)
    assert blocks[0]["qid"] == q.group("qid")
    assert blocks[0]["sender"] == DEFAULT_SENDER
    assert blocks[0]["rcpts"] == ["x@elsewhere.test"]
    for args, name in (((), "mailq"), (("-bp",), "moat-sendmail")):
        r = sendmail(m, *args, name=name)
        assert r.returncode == 0 and r.stderr == b"", r
        assert norm_next(r.stdout.decode()) == norm_next(want), r.stdout


def test_q_flushes(moat):
    m = moat()
    submit(m, "x@elsewhere.test", input=b"Subject: q\n\nb\n")
    qid = queued_line(m).group("qid")
    wait_deferred(m, qid)
    wait_until(lambda: qid + ".state" in m.spool_files("queue"),
               5 * moatlib.SLOW, "state file")
    mark = m.log_mark()
    r = sendmail(m, "-q")
    assert r.returncode == 0 and r.stderr == b"", r
    assert r.stdout == b"1 message scheduled for delivery\n"
    m.wait_log(r"queue: event=flush messages=1$", since=mark)
    wait_deferred(m, qid, since=mark)


def test_mailq_when_down(moat):
    m = moat()
    m.stop()
    for args, name, prog in (((), "mailq", "mailq"),
                             (("-bp",), "moat-sendmail", "moat-sendmail"),
                             (("-q",), "moat-sendmail", "moat-sendmail")):
        r = sendmail(m, *args, name=name)
        assert r.returncode == 1 and r.stdout == b"", r
        assert r.stderr == ("%s: mail system is down (nothing listening "
                            "on %s/control)\n" % (prog, m.spool)).encode()


# ---- exit codes ----------

@pytest.mark.parametrize("args,input,code,msg", [
    ((), b"Subject: x\n\nb\n", EX_USAGE, "no recipients given"),
    (("-t",), b"Subject: x\n\nb\n", EX_USAGE,
     "no recipient addresses found in the message header"),
    (("-t",), b"To: team: ;\nSubject: x\n\nb\n", EX_USAGE,
     "no recipient addresses found in the message header"),
    (("-bs",), b"", EX_USAGE, None),
    (("-q1h",), b"", EX_USAGE, None),
    (("-X", "user@example.test"), b"", EX_USAGE, None),
    (("-f",), b"", EX_USAGE, None),
    (("a@b@example.test",), b"Subject: x\n\nb\n", EX_DATAERR,
     "bad recipient address"),
    (("-f", "a@@x", "user@example.test"), b"Subject: x\n\nb\n",
     EX_DATAERR, "bad sender address"),
    (("-t",), b"To: <broken\nSubject: x\n\nb\n", EX_DATAERR, "bad To:")])
def test_exit_codes(moat, args, input, code, msg):
    m = moat()
    r = sendmail(m, *args, input=input)
    assert r.returncode == code, r
    assert r.stdout == b""
    err = r.stderr.decode()
    assert err.startswith("moat-sendmail: "), err
    if msg:
        assert msg in err, err
    if code == EX_USAGE and msg is None:
        assert "usage: moat-sendmail" in err, err
    no_maildrop_left(m)
    time.sleep(0.2 * moatlib.SLOW)
    assert m.all_delivered() == []


def test_mailq_takes_no_arguments(moat):
    m = moat()
    r = sendmail(m, "user@example.test", name="mailq")
    assert r.returncode == EX_USAGE and r.stdout == b"", r
    assert b"mailq: mailq takes no arguments" in r.stderr, r.stderr


def test_message_too_large(moat):
    m = moat(message_size_limit=2048)
    r = sendmail(m, "user@example.test",
                 input=b"Subject: big\n\n" + b"x" * 70 + b"\n" * 1 +
                 (b"y" * 70 + b"\n") * 40)
    assert r.returncode == EX_DATAERR, r
    assert b"message too large" in r.stderr, r.stderr
    no_maildrop_left(m)
    # just under the limit with the added headers is still fine
    r = sendmail(m, "user@example.test", input=b"Subject: small\n\nok\n")
    assert r.returncode == 0, r
    assert len(m.wait_maildir("user")) == 1


def test_size_limit_boundary(moat):
    m = moat(message_size_limit=2048)
    head = (b"From: a@example.test\r\nDate: Mon, 02 Jun 2025 10:00:00 "
            b"+0000\r\nMessage-ID: <l@example.test>\r\n\r\n")
    line = b"z" * 62 + b"\r\n"
    fill = 2048 - len(head)
    body = line * (fill // len(line))
    body += b"y" * (fill - len(body) - 2) + b"\r\n"
    exact = head + body
    assert len(exact) == 2048
    # one octet over: refused, nothing left behind
    r = sendmail(m, "user@example.test", input=exact + b"x\r\n")
    assert r.returncode == EX_DATAERR, r
    assert b"message too large" in r.stderr, r.stderr
    no_maildrop_left(m)
    # exactly at the limit: taken, and the queue takes it too
    mark = m.log_mark()
    submit(m, "user@example.test", input=exact)
    got = m.wait_maildir("user")
    assert body_of(got[0]) == body.replace(b"\r\n", b"\n")
    assert m.log_lines(r"event=maildrop_refused", since=mark) == []


def test_t_duplicates_removed(moat):
    m = moat()
    mark = m.log_mark()
    submit(m, "-t", "user@example.test", "User <user@example.test>",
           input=b"To: user@example.test, other@example.test\n"
                 b"Cc: <other@example.test>\nSubject: d\n\nb\n")
    q = queued_line(m, mark)
    assert q.group("n") == "2", q.group(0)
    m.wait_maildir("user")
    m.wait_maildir("other")
    time.sleep(0.3 * moatlib.SLOW)
    assert len(m.maildir("user")) == 1 and len(m.maildir("other")) == 1


def test_message_without_header_section(moat):
    m = moat()
    mark = m.log_mark()
    submit(m, "-f", "s@example.test", "user@example.test",
           input=b"just a body line\nand another\n")
    orig = queued_line(m, mark).group("orig")
    head, body = delivered_parts(m.wait_maildir("user")[0])
    assert body == b"just a body line\nand another\n", body
    # Return-Path, Delivered-To, the 3 lines of Received, then the
    # added fields form the whole header section
    assert len(head) == 8, head
    # the -f address with the account's full name (gecos)
    assert re.match(rb"^From: (\S.* )?<s@example\.test>$", head[5]), head
    assert re.match(rb"^Date: %s$" % RFC5322_DATE.encode(), head[6]), head
    assert head[7] == b"Message-ID: <%s@%s>" % (orig.encode(),
                                                HOSTNAME.encode()), head


def test_8bit_content_declared_8bitmime(moat):
    m = moat()
    m.stop()
    submit(m, "user@example.test",
           input="Subject: caf\u00e9\n\nna\u00efve\n".encode())
    (name,) = os.listdir(m.spool / "maildrop")
    data = (m.spool / "maildrop" / name).read_bytes()
    assert b"\nbody 8BITMIME\n" in data, data
    m.start()
    got = m.wait_maildir("user")[0]
    assert body_of(got) == "na\u00efve\n".encode()


# ---- as a normal user -------------------------------------------------------

@needs_root
def test_submit_as_nobody(moat):
    m = moat()
    mark = m.log_mark()
    submit(m, "user@example.test", input=b"Subject: from nobody\n\nhi\n",
           user="nobody")
    uid = nobody_ids()[0]
    q = queued_line(m, mark, "nobody@%s" % HOSTNAME)
    assert int(q.group("uid")) == uid
    got = m.wait_maildir("user")[0]
    head, body = delivered_parts(got)
    assert head[0] == b"Return-Path: <nobody@%s>" % HOSTNAME.encode()
    assert re.match(local_received(q.group("qid"), uid),
                    b"\n".join(head[2:5]) + b"\n"), head
    assert_one_received(got)
    assert body == b"hi\n"


@needs_root
def test_submit_as_nobody_while_stopped(moat):
    m = moat()
    m.stop()
    submit(m, "-f", "nb@example.test", "user@example.test",
           input=b"Subject: later\n\nhi\n", user="nobody")
    names = os.listdir(m.spool / "maildrop")
    assert len(names) == 1
    st = os.stat(m.spool / "maildrop" / names[0])
    assert st.st_uid == nobody_ids()[0]
    assert stat.S_IMODE(st.st_mode) == 0o644
    m.start()
    got = m.wait_maildir("user")
    assert len(got) == 1
    rec = assert_one_received(got[0])
    assert rec.startswith(b"from local (uid %d) " % nobody_ids()[0]), rec
    wait_until(lambda: os.listdir(m.spool / "maildrop") == [],
               5 * moatlib.SLOW, "empty maildrop")


@needs_root
def test_mailq_as_nobody_denied(moat):
    m = moat()
    r = sendmail(m, name="mailq", user="nobody")
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr == ("mailq: permission denied on %s/control: run as "
                        "root or as the moat user\n" % m.spool).encode()
