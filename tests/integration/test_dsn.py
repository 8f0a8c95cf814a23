"""test_dsn - bounces and delay notices (RFC 3464) from the queue role.

The sender is a local user (sender@example.test, Maildir delivery), so
every DSN lands in mail/example.test/sender/.  Ages are seconds:
queue_lifetime 3s, delay_warning 1s, retries every 1-2 s.
"""

import email
import email.policy
import re

import moatlib

FAST = dict(queue_lifetime="3s", delay_warning="1s", retry_min="1s",
            retry_max="2s")
SENDER = "sender@example.test"


def original(rcpt, subject="hello", extra=b""):
    return (b"From: " + SENDER.encode() + b"\r\nTo: " + rcpt.encode() +
            b"\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: <orig-" + subject.encode() +
            b"@example.test>\r\n" + extra + b"\r\nthe body\r\n")


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def report(msg):
    """(text part, [status groups], headers part) of a DSN, checked."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    groups = parts[1].get_payload()
    return parts[0], groups, parts[2]


def common_checks(msg, subject, to=None):
    assert msg["Return-Path"] == "<>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"] == ("Mail Delivery System <MAILER-DAEMON@%s>"
                           % moatlib.HOSTNAME)
    assert msg["To"].addresses[0].addr_spec == (to or SENDER)
    assert msg["Subject"] == subject
    assert msg["Date"] and msg["Message-ID"]
    assert msg["MIME-Version"] == "1.0"


def test_bounce_lists_failed_recipients(moat):
    m = moat(transport=["bad.test error:5.1.1 no such user"], **FAST)
    m.send(["nobody@bad.test", "user@example.test", "other@bad.test"],
           original("nobody@bad.test"), sender=SENDER)
    got = m.wait_maildir("sender")
    assert len(m.wait_maildir("user")) == 1
    mo = m.wait_log(r"queue: event=bounce qid=(\w+) dsn_qid=(\w+) "
                    r"to=<sender@example\.test> nrcpt=2$")
    m.wait_log(r"event=removed qid=%s delivered=1 bounced=2$" % mo.group(1))
    msg = parse(got[0])
    common_checks(msg, "Undelivered Mail Returned to Sender")
    text, groups, hdrs = report(msg)
    assert "nobody@bad.test" in text.get_content()
    head = groups[0]
    assert head["Reporting-MTA"] == "dns; %s" % moatlib.HOSTNAME
    assert head["Arrival-Date"]
    rcpts = groups[1:]
    assert [g["Final-Recipient"] for g in rcpts] == [
        "rfc822; nobody@bad.test", "rfc822; other@bad.test"]
    for g in rcpts:
        assert g["Action"] == "failed"
        assert g["Status"] == "5.1.1"
        assert g["Diagnostic-Code"] == "X-Local; 5.1.1 no such user"
        assert g["Last-Attempt-Date"]
        assert g["Will-Retry-Until"] is None
    h = hdrs.get_content()
    assert "Subject: hello" in h
    assert "Message-ID: <orig-hello@example.test>" in h
    assert "the body" not in h
    # our own client was internal: its Received line may stay
    assert "Received:" in h
    # the DSN itself is delivered and gone
    m.wait_log(r"event=removed qid=%s delivered=1 bounced=0$" % mo.group(2))
    assert m.spool_files("queue") == []


def test_delay_notice_then_expiry_bounce(moat):
    m = moat(transport=["later.test error:4.2.0 try later"], **FAST)
    m.send(["u@later.test"], original("u@later.test", "slow"),
           sender=SENDER)
    first = m.wait_maildir("sender", timeout=10)
    msg = parse(first[0])
    common_checks(msg, "Delayed Mail (still being retried)")
    text, groups, hdrs = report(msg)
    assert "WARNING ONLY" in text.get_content()
    g = groups[1]
    assert g["Final-Recipient"] == "rfc822; u@later.test"
    assert g["Action"] == "delayed"
    assert g["Status"] == "4.2.0"
    assert g["Will-Retry-Until"]
    assert "Subject: slow" in hdrs.get_content()
    both = m.wait_maildir("sender", count=2, timeout=15)
    bounce = parse([b for b in both if b != first[0]][0])
    common_checks(bounce, "Undelivered Mail Returned to Sender")
    _, groups, _ = report(bounce)
    g = groups[1]
    assert g["Action"] == "failed"
    assert g["Status"] == "4.4.7"
    assert g["Diagnostic-Code"].startswith(
        "X-Local; 4.4.7 Message expired, last error: 4.2.0 try later")
    assert len(m.log_lines(r"queue: event=delay_notice ")) == 1
    assert m.log_lines(r"status=expired dsn=4\.4\.7 ")
    m.wait_log(r"queue: event=expired qid=\w+ delivered=0 bounced=1$")


def test_no_dsn_for_null_sender(moat):
    m = moat(transport=["bad.test error:5.1.1 no such user"], **FAST)
    m.send(["nobody@bad.test"], original("nobody@bad.test"), sender="")
    mo = m.wait_log(r"queue: event=dsn_discarded qid=(\w+) type=bounce "
                    r'nrcpt=1 reason="null sender"$')
    m.wait_log(r"event=removed qid=%s delivered=0 bounced=1$" % mo.group(1))
    assert m.all_delivered() == []
    assert m.log_lines(r"event=(double_)?bounce ") == []
    assert m.spool_files("queue") == []


def test_failed_bounce_goes_to_postmaster_once(moat):
    # our own bounce fails: the postmaster hears of it, once
    m = moat(transport=["bad.test error:5.1.1 no such user"], **FAST)
    m.send(["nobody@bad.test"], original("nobody@bad.test"),
           sender="gone@bad.test")
    mo = m.wait_log(r"queue: event=bounce qid=\w+ dsn_qid=(\w+) "
                    r"to=<gone@bad\.test> nrcpt=1$")
    mo2 = m.wait_log(r"queue: event=double_bounce qid=%s dsn_qid=(\w+) "
                     r"to=<postmaster> nrcpt=1$" % mo.group(1))
    got = m.wait_maildir("postmaster")
    assert len(got) == 1
    msg = parse(got[0])
    common_checks(msg, "Undelivered Mail Returned to Sender", "postmaster")
    _, groups, _ = report(msg)
    assert groups[1]["Final-Recipient"] == "rfc822; gone@bad.test"
    assert groups[1]["Status"] == "5.1.1"
    m.wait_log(r"event=removed qid=%s delivered=1 bounced=0$"
               % mo2.group(1))
    assert m.spool_files("queue") == []


def test_failed_dsn_goes_to_postmaster_then_stops(moat):
    # the bounce to the sender fails: the postmaster gets it; when the
    # postmaster cannot be reached either, it is dropped - no loop
    # the bare "postmaster" goes to the first local domain
    m = moat(transport=["bad.test error:5.1.1 no such user",
                        "pm.test error:5.1.1 no postmaster here"],
             local_domains=["pm.test", "example.test", "localhost"], **FAST)
    m.send(["nobody@bad.test"], original("nobody@bad.test"),
           sender="gone@bad.test")
    mo = m.wait_log(r"queue: event=bounce qid=\w+ dsn_qid=(\w+) "
                    r"to=<gone@bad\.test> nrcpt=1$")
    mo2 = m.wait_log(r"queue: event=double_bounce qid=%s dsn_qid=(\w+) "
                     r"to=<postmaster> nrcpt=1$" % mo.group(1))
    m.wait_log(r"queue: event=dsn_discarded qid=%s type=bounce nrcpt=1 "
               r'reason="null sender"$' % mo2.group(1))
    m.wait_log(r"event=removed qid=%s delivered=0 bounced=1$" % mo2.group(1))
    assert len(m.log_lines(r"event=bounce ")) == 1
    assert len(m.log_lines(r"event=double_bounce ")) == 1
    assert m.all_delivered() == []
    assert m.spool_files("queue") == []


def test_private_dsn_for_outside_client(moat):
    m = moat(start=False, relay_networks="127.0.0.1/32",
             local_domains=["example.test", "localhost", "gone.test"],
             transport=["gone.test error:5.1.1 no such user"], **FAST)
    # a sender domain that is not ours (no spoofing alarm) but whose
    # mail still lands in a Maildir here
    m.transport_extra.append("outside.test maildir:%s/%%d/%%u" % m.mailroot)
    m.write_config()
    m.start()
    inner = (b"Received: from build7.corp.internal (build7.corp.internal "
             b"[10.20.30.40])\r\n\tby relay.corp.internal; "
             b"Mon, 02 Jun 2025 10:00:00 +0000\r\n")
    # header From: as the envelope (a local domain there is spoofing)
    msg = original("nobody@gone.test", "private", inner).replace(
        b"From: " + SENDER.encode(), b"From: sender@outside.test", 1)
    m.send(["nobody@gone.test"], msg, sender="sender@outside.test",
           source="127.0.0.2")
    got = m.wait_maildir("sender", "outside.test")
    m.wait_log(r"queue: event=bounce qid=\w+ dsn_qid=\w+ "
               r"to=<sender@outside\.test> nrcpt=1 private=1$")
    raw = got[0].decode("utf-8", "replace")
    assert not re.search(r"127\.0\.0\.\d", raw), raw
    assert "corp.internal" not in raw and "10.20.30.40" not in raw, raw
    assert "no such user" not in raw, raw
    msg = parse(got[0])
    _, groups, hdrs = report(msg)
    assert groups[0]["Reporting-MTA"] == "dns; %s" % moatlib.HOSTNAME
    assert groups[1]["Status"] == "5.1.1"
    assert groups[1]["Diagnostic-Code"] == "X-Local; 5.1.1 delivery failed"
    h = hdrs.get_content()
    assert "Received:" not in h
    assert "Subject: private" in h


def test_restart_sends_no_second_delay_notice(moat):
    m = moat(transport=["later.test error:4.2.0 try later"],
             queue_lifetime="4s", delay_warning="1s", retry_min="1s",
             retry_max="2s")
    m.send(["u@later.test"], original("u@later.test", "restart"),
           sender=SENDER)
    mo = m.wait_log(r"queue: event=delay_notice qid=(\w+) ", timeout=10)
    qid = mo.group(1)
    state = m.spool / "queue" / (qid + ".state")
    moatlib.wait_until(lambda: state.exists() and
                       "\nwarned 1\n" in state.read_text(), 5,
                       "warned in the state file")
    m.restart()
    m.wait_log(r"queue: event=expired qid=%s delivered=0 bounced=1$" % qid,
               timeout=15)
    m.wait_maildir("sender", count=2)
    assert len(m.log_lines(r"queue: event=delay_notice ")) == 1
    assert len(m.log_lines(r"queue: event=bounce qid=%s " % qid)) == 1
    assert len(m.maildir("sender")) == 2
