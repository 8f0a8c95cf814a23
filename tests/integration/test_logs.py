"""test_logs - moatd's log lines: form, queue ids, sanitizing, alarms.

DESIGN.md "Logs": one line per event, key=value, the queue id as qid=,
from= to= relay= delay= status=, and event=alarm lines for filter
violations and relay attempts.  src/lib/log.h: values that come from
the network go through log_sanitize(), so a client cannot forge a
field or a line.  The tests run real sessions and read moatd's stderr.
"""

import re
import time

import moatlib
from moatlib import wait_until
from test_queue_ctl import (MSG, QID_RE, ctl_ok, parse_mailq,
                            parse_show, send_raw, stats, wait_deferred,
                            wait_state_file)
from test_sendmail import queued_line, submit

PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                    r"moatd\[(\d+)\] (master|smtp-in|queue|local|smtp-out): "
                    r"(.*)$")
# key=value, value unquoted (no space, no '"') or "quoted" (no '"')
TOKEN = re.compile(r'([a-z_]+)=("[^"]*"|[^\s"]+)')

# events about one message: each must name it with qid=
MESSAGE_EVENTS = {"accepted", "queued", "delivery", "removed", "hold",
                  "release", "deleted", "reject", "note", "local_error",
                  "local_timeout", "pickup_error", "maildrop_error",
                  "maildrop_refused"}


def parse_line(line):
    """(pid, role, [(key, value)...]) of one log line, strictly."""
    mp = PREFIX.match(line)
    assert mp, line
    body = mp.group(3)
    toks = []
    pos = 0
    while pos < len(body):
        mt = TOKEN.match(body, pos)
        assert mt, (line, body[pos:])
        toks.append((mt.group(1), mt.group(2)))
        pos = mt.end()
        if pos < len(body):
            assert body[pos] == " ", (line, body[pos:])
            pos += 1
    assert toks and toks[0][0] == "event", line
    return int(mp.group(1)), mp.group(2), toks


def parsed_log(m, since=0):
    """Every line of the log since an offset, parsed (asserts the form)."""
    return [(l, *parse_line(l)) for l in m.log()[since:].splitlines()]


def check_raw_log(m):
    """No octet a terminal or a log parser could trip on."""
    raw = m.logfile.read_bytes()
    bad = [b for b in raw if b >= 0x7f or (b < 0x20 and b != 0x0a)]
    assert bad == [], raw[-600:]


def events(m, name, since=0):
    return [dict(t) for _l, _p, _r, t in parsed_log(m, since)
            if dict(t)["event"] == name]


# ---- form and queue ids ------------------------------------------------

def test_message_events_carry_one_qid(moat):
    m = moat(transport=["bad.test error:5.1.1 no such user",
                        "later.test error:4.2.0 try later"])
    s = send_raw(m, ["user@example.test", "other@example.test",
                     "x@bad.test", "y@elsewhere.test"])
    h = send_raw(m, ["z@later.test"])
    submit(m, "user@example.test", input=b"Subject: local\n\nb\n")
    wait_deferred(m, s.qid)
    wait_deferred(m, h.qid)
    wait_state_file(m, s.qid)
    wait_state_file(m, h.qid)
    m.wait_maildir("user", count=2)
    assert ctl_ok(m, "flush") == "2 messages scheduled for delivery\n"
    wait_until(lambda: len(events(m, "delivery")) >= 8, 5 * moatlib.SLOW,
               "the deliveries after the flush")
    ctl_ok(m, "hold", h.qid)
    ctl_ok(m, "release", h.qid)
    wait_until(lambda: len(events(m, "delivery")) >= 9, 5 * moatlib.SLOW,
               "the delivery after the release")
    ctl_ok(m, "delete", s.qid)
    m.wait_log(r"event=deleted qid=%s " % s.qid)
    check_raw_log(m)

    seen = {}
    for line, _pid, _role, toks in parsed_log(m):
        d = dict(toks)
        keys = [k for k, _v in toks]
        # no key twice on a line
        assert len(keys) == len(set(keys)), line
        if d["event"] not in MESSAGE_EVENTS:
            continue
        assert "qid" in d and QID_RE.match(d["qid"]), line
        seen.setdefault(d["qid"], []).append(d["event"])
    # smtp-in and the queue write concurrently: compare as multisets
    assert sorted(seen[s.qid]) == sorted(["accepted", "queued"] +
                                         ["delivery"] * 5 + ["deleted"]), \
        seen[s.qid]
    assert seen[s.qid][-1] == "deleted", seen[s.qid]
    assert sorted(seen[h.qid]) == sorted(["accepted", "queued", "delivery",
                                          "delivery", "hold", "release",
                                          "delivery"]), seen[h.qid]
    local = [q for q in seen if q not in (s.qid, h.qid)]
    assert len(local) == 1, seen
    assert seen[local[0]] == ["queued", "delivery", "removed"]


def test_accepted_queued_delivery_agree(moat):
    m = moat()
    mark = m.log_mark()
    s = send_raw(m, ["user@example.test", "other@example.test"],
                 sender="who@remote.test")
    m.wait_maildir("user")
    m.wait_maildir("other")
    m.wait_log(r"event=removed qid=%s delivered=2 bounced=0$" % s.qid,
               since=mark)
    acc = events(m, "accepted", mark)
    que = events(m, "queued", mark)
    dlv = events(m, "delivery", mark)
    rem = events(m, "removed", mark)
    assert [e["qid"] for e in acc] == [s.qid]
    assert [e["qid"] for e in que] == [s.qid]
    assert [e["qid"] for e in dlv] == [s.qid, s.qid]
    assert [e["qid"] for e in rem] == [s.qid]
    a, q = acc[0], que[0]
    assert a["client"] == "127.0.0.1" and a["proto"] == "ESMTP", a
    assert a["from"] == q["from"] == "<who@remote.test>", (a, q)
    assert a["nrcpt"] == q["nrcpt"] == "2"
    # accepted: the octets received; queued: with the Received field
    assert int(a["size"]) == len(MSG), a
    delivered = m.maildir("user")[0]
    rest = delivered.split(b"\n", 2)[2]     # after RP and Delivered-To
    assert int(q["size"]) == len(rest) + rest.count(b"\n"), (q, rest)
    assert sorted(e["to"] for e in dlv) == ["<other@example.test>",
                                            "<user@example.test>"]
    for e in dlv:
        assert (e["relay"], e["status"], e["dsn"]) == ("maildir", "sent",
                                                       "2.0.0"), e
        assert re.match(r"^\d+\.\d\d$", e["delay"]) and \
            float(e["delay"]) < 30, e
    # the session that carried it: same sid on connect and disconnect
    sid = a["sid"]
    con = [e for e in events(m, "connect", mark) if e["sid"] == sid]
    dis = [e for e in events(m, "disconnect", mark) if e["sid"] == sid]
    assert len(con) == 1 and len(dis) == 1, (con, dis)
    assert dis[0]["messages"] == "1" and dis[0]["reason"] == "quit", dis


def test_maildrop_import_logs_both_ids(moat):
    m = moat()
    mark = m.log_mark()
    submit(m, "user@example.test", input=b"Subject: x\n\nb\n")
    q = queued_line(m, mark)
    m.wait_maildir("user")
    m.wait_log(r"event=removed qid=%s " % q.group("qid"), since=mark)
    # the new id is the one used from then on; the old one only as
    # orig_qid= and in the Message-ID
    dl = events(m, "delivery", mark)
    assert [e["qid"] for e in dl] == [q.group("qid")]
    assert q.group("orig") not in "\n".join(
        l for l in m.log()[mark:].splitlines() if "orig_qid=" not in l)


def test_role_pids_match_spawn_lines(moat):
    m = moat()
    send_raw(m, ["user@example.test"])
    m.wait_maildir("user")
    spawned = {d["role"]: int(d["pid"]) for d in events(m, "spawn")}
    assert set(spawned) == {"smtp-in", "queue", "local", "smtp-out"}, spawned
    for line, pid, role, _t in parsed_log(m):
        if role == "master":
            assert pid == m.pid, line
        else:
            assert pid == spawned[role], (line, spawned)


# ---- sanitizing ------------------------------------------------------------

ODD_SENDER = '"x qid=FAKE event=forged\\" status=sent"@remote.test'
ODD_BOUNCE = '"y status=sent dsn=2.0.0"@bad.test'
ODD_DEFER = '"q r"@elsewhere.test'


def test_client_values_cannot_forge_fields(moat):
    m = moat(transport=["bad.test error:5.1.1 no such user"])
    helo = b'evil"\\=\xc3\xa9<>'
    s = send_raw(m, [ODD_BOUNCE, ODD_DEFER, "user@example.test"],
                 sender=ODD_SENDER, helo=helo)
    m.wait_maildir("user")
    wait_deferred(m, s.qid)
    wait_state_file(m, s.qid)
    check_raw_log(m)
    for line, _pid, _role, toks in parsed_log(m):
        keys = [k for k, _v in toks]
        assert len(keys) == len(set(keys)), line
        assert keys.count("event") == 1, line
        assert "FAKE" not in dict(toks).get("qid", ""), line
    acc = events(m, "accepted")
    assert len(acc) == 1 and acc[0]["qid"] == s.qid
    esc = (r"<\x22x\x20qid=FAKE\x20event=forged\x5c\x22\x20status=sent"
           r"\x22@remote.test>")
    assert acc[0]["from"] == esc, acc
    assert events(m, "queued")[0]["from"] == esc
    dl = {e["to"]: e for e in events(m, "delivery")}
    bad = dl[r"<\x22y\x20status=sent\x20dsn=2.0.0\x22@bad.test>"]
    assert (bad["status"], bad["dsn"]) == ("bounced", "5.1.1"), bad
    assert dl[r"<\x22q\x20r\x22@elsewhere.test>"]["status"] == "deferred"

    # the same escaping in moatctl's output: one token per value
    blocks, _ = parse_mailq(ctl_ok(m, "queue"))
    assert blocks[0]["sender"] == esc[1:-1], blocks
    assert blocks[0]["rcpts"] == [r"\x22q\x20r\x22@elsewhere.test"]
    f, rc = parse_show(ctl_ok(m, "show", s.qid))
    assert f["helo"] == r"evil\x22\x5c=\xc3\xa9<>", f
    assert f["from"] == esc, f
    assert [r["addr"] for r in rc] == [
        r"\x22y\x20status=sent\x20dsn=2.0.0\x22@bad.test",
        r"\x22q\x20r\x22@elsewhere.test", "user@example.test"], rc
    # the Received field holds the sanitized HELO on one line, while the
    # envelope address in Return-Path is the real one
    msg = m.maildir("user")[0]
    lines = msg.split(b"\n")
    assert lines[0] == b"Return-Path: <%s>" % ODD_SENDER.encode()
    assert lines[2] == (b"Received: from evil\\x22\\x5c=\\xc3\\xa9<> "
                        b"(unknown [127.0.0.1])"), lines[:4]
    assert lines[3].startswith(b"\tby mx.example.test with ESMTP id %s"
                               % s.qid.encode()), lines[:4]


def test_control_octets_never_reach_the_log(moat):
    m = moat()
    mark = m.log_mark()
    c = m.raw()
    c.ehlo()
    # a NUL, an escape sequence, DEL: refused, and not logged raw
    for line in (b"MAIL FROM:<a\x1b[2J@remote.test>",
                 b"RCPT TO:<b\x00@example.test>",
                 b"HELO x\x7fy"):
        r = c.cmd(line)
        assert r.code in (500, 501, 503), (line, r)
    c.close()
    time.sleep(0.3 * moatlib.SLOW)
    check_raw_log(m)
    parsed_log(m, mark)


# ---- alarms ----------

def test_alarm_for_relay_attempts(moat):
    m = moat(relay_networks="127.0.0.1/32")
    before = stats(m)
    mark = m.log_mark()
    c = m.raw(source="127.0.0.2")
    c.ehlo()
    # spoofing a local sender from outside
    assert c.cmd("MAIL FROM:<boss@example.test>").code == 550
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<victim@elsewhere.test>").code == 550
    assert c.cmd("RCPT TO:<user%elsewhere.test@example.test>").code == 550
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("QUIT").code == 221
    c.close()
    # from a relay network: no alarm
    ok = send_raw(m, ["ok@elsewhere.test"])
    wait_deferred(m, ok.qid, since=mark)
    wait_until(lambda: len(events(m, "alarm", mark)) >= 3,
               5 * moatlib.SLOW, "three alarms")
    time.sleep(0.2 * moatlib.SLOW)
    al = events(m, "alarm", mark)
    sid = [e for e in events(m, "connect", mark)
           if e["client"] == "127.0.0.2"][0]["sid"]
    assert [(e["type"], e["client"], e.get("from"), e.get("to"), e["sid"])
            for e in al] == [
        ("spoof", "127.0.0.2", "<boss@example.test>", None, sid),
        ("relay", "127.0.0.2", None, "<victim@elsewhere.test>", sid),
        ("routing", "127.0.0.2", None,
         "<user%elsewhere.test@example.test>", sid)], al
    # alarm lines carry no qid: no message exists yet
    assert all("qid" not in e for e in al)
    after = stats(m)
    assert after["alarm_relay"] - before["alarm_relay"] == 2
    assert after["alarm_spoof"] - before["alarm_spoof"] == 1


def test_alarm_for_filter_violations(moat):
    m = moat()
    before = stats(m)
    mark = m.log_mark()
    # len= is the length of the argument
    cases = [(b"VRFY root", "VRFY", 4),
             (b"EHLO " + b"h" * 300, "EHLO", 300),
             (b"XYZZY\xff \"q\" event=x", r"XYZZY\xff", None)]
    for line, verb, n in cases:
        c = m.raw()
        r = c.cmd(line)
        assert r.first == "421 5.5.1 Invalid command", r
        assert c.is_closed(), line
        c.close()
    wait_until(lambda: len(events(m, "alarm", mark)) >= len(cases),
               5 * moatlib.SLOW, "filter alarms")
    al = events(m, "alarm", mark)
    assert len(al) == len(cases), al
    for e, (line, verb, n) in zip(al, cases):
        assert e["type"] == "command_filter" and e["client"] == "127.0.0.1"
        assert e["verb"] == verb, (e, line)
        if n is not None:
            assert e["len"] == str(n), (e, line)
    check_raw_log(m)
    after = stats(m)
    assert after["alarm_filter"] - before["alarm_filter"] == len(cases)
    # each alarm ended its session with that reason
    dis = events(m, "disconnect", mark)
    assert sorted(e["sid"] for e in dis if e["reason"] == "command_filter") \
        == sorted(e["sid"] for e in al)
