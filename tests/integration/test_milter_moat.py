"""test_milter_moat - clamd and the milters wired into smtp-in
(src/smtp_in/smtp_scan.c, issue 6 points 4 and 5), with real scanners
from Debian started by the fixtures of test_clamd_milter.py:

- opendkim signs mail relayed outbound through moatd; the sink receives
  a DKIM-Signature that opendkim itself (in verify mode, as for a
  client outside its InternalHosts) accepts;
- clamd (over TCP: smtp-in may be chrooted into its spool) sees every
  message as it streams in: EICAR in an attachment gets 554 and reaches
  no Maildir, clean mail passes, clamd down with clamd = tempfail gets
  451;
- clamav-milter on inbound mail rejects EICAR with its own reply.
"""

import email.policy
import subprocess
from email.message import EmailMessage

import pytest

import moatlib
from test_clamd_milter import (EICAR, MILTERC, mods, run, stop,  # noqa
                               wait_socket, workdir, opendkim,
                               clamav_milter, clamd)

INBOUND = "127.0.0.2"


def mail(sender, rcpt, attach=None, text="Hello, see attached.\n"):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = rcpt
    m["Subject"] = "report"
    m.set_content(text)
    if attach is not None:
        m.add_attachment(attach, maintype="application",
                         subtype="octet-stream", filename="report.bin")
    return m.as_bytes(policy=email.policy.SMTP)


def send(m, sender, rcpt, msg, source=INBOUND):
    with m.smtp(source=source) as s:
        s.ehlo()
        s.mail(sender)
        code, _ = s.rcpt(rcpt)
        assert code == 250
        code, text = s.data(msg)
        return code, text.decode()


@pytest.fixture(scope="module")
def clamd_tcp(workdir):
    """clamd on a loopback TCP port, the EICAR test signature only"""
    db = workdir / "db-tcp"
    db.mkdir()
    (db / "moat.ndb").write_text("Moat.Test.EICAR:0:*:%s\n" % EICAR.hex())
    port = moatlib.free_port()
    conf = workdir / "clamd-tcp.conf"
    conf.write_text("Foreground yes\nTCPSocket %d\nTCPAddr 127.0.0.1\n"
                    "DatabaseDirectory %s\nLogFile %s\n"
                    "StreamMaxLength 10M\nMaxThreads 4\n"
                    % (port, db, workdir / "clamd-tcp.log"))
    p = subprocess.Popen(["clamd", "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_socket(port=port, proc=p, timeout=90)
        yield "127.0.0.1:%d" % port
    finally:
        stop(p)


def test_opendkim_signs_outbound(moat, smtpsink, opendkim, workdir):
    sink = smtpsink()
    m = moat(relay_networks="127.0.0.1/32", spf="off", milters=opendkim,
             transport=["remote.test smtp:[127.0.0.1]:%d" % sink.port])
    code, text = send(m, "alice@example.test", "bob@remote.test",
                      mail("alice@example.test", "bob@remote.test"),
                      source="127.0.0.1")
    assert code == 250, text
    sink.wait(1, timeout=30)
    data = sink.transactions[0].data
    # smtp-out rewrites our Received (hide_internal_hosts) above it
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nDKIM-Signature: v=1;" in head, head
    assert b"d=example.test" in data and b"s=sel" in data
    # opendkim verifies what the sink got, as a receiving MX would
    lines, _ = run(["milter", "-a", "192.0.2.9", "-n", "mx.remote.test",
                    opendkim], data)
    ar = [x for x in mods(lines) if x["name"] == "Authentication-Results"]
    assert len(ar) == 1 and "dkim=pass" in ar[0]["value"], ar
    assert m.log_lines(r"event=milter qid=\S+ rewritten=")


def test_clamd_inbound(moat, clamd_tcp):
    m = moat(spf="off", clamd_socket=clamd_tcp, clamd="tempfail")
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test",
                           attach=EICAR + b"\n"))
    assert code == 554, text
    assert "5.7.1 Virus found: Moat.Test.EICAR" in text
    assert m.log_lines(r"event=alarm type=virus .*name=\"Moat.Test.EICAR")
    clean = mail("x@remote.test", "user@example.test",
                 attach=b"\x00\x01harmless" * 1000)
    code, text = send(m, "x@remote.test", "user@example.test", clean)
    assert code == 250, text
    got = m.wait_maildir("user", count=1)
    assert len(got) == 1 and b"report.bin" in got[0]
    # outbound too
    code, text = send(m, "user@example.test", "user@example.test",
                      mail("user@example.test", "user@example.test",
                           attach=EICAR), source="127.0.0.1")
    assert code == 554, text


def test_clamd_virus_quarantined(moat, clamd_tcp):
    # virus_action = quarantine: 250, kept in quarantine/ with the
    # signature as reason; the local recipient gets a notice, the
    # external sender nothing; a release delivers it after all
    m = moat(spf="off", clamd_socket=clamd_tcp, virus_action="quarantine",
             relay_networks="127.0.0.1/32")
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test",
                           attach=EICAR + b"\n"))
    assert code == 250, text
    qid = text.split()[-1]
    out = m.ctl("quarantine", "list").stdout.decode()
    assert qid in out, out
    assert "(quarantined inbound: virus: clamd: Moat.Test.EICAR" in out, out
    notice = m.wait_maildir("user")
    assert len(notice) == 1 and b"Content filter: a message was " \
        b"quarantined" in notice[0], notice
    assert b"x@remote.test" not in m.ctl("queue").stdout
    assert m.ctl("quarantine", "release", qid).returncode == 0
    got = m.wait_maildir("user", count=2)
    assert any(b"report.bin" in g for g in got)


def test_clamd_down(moat):
    port = moatlib.free_port()
    m = moat(spf="off", clamd_socket="127.0.0.1:%d" % port,
             clamd="tempfail")
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test"))
    assert code == 451, text
    assert m.log_lines(r"event=scanner_failure scanner=clamd")
    m.stop()
    m.write_config(clamd="accept")
    m.start()
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test"))
    assert code == 250, text
    assert len(m.wait_maildir("user", count=1)) == 1


def test_clamav_milter_inbound(moat, clamav_milter):
    m = moat(spf="off", milters=clamav_milter)
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test",
                           attach=EICAR))
    assert code == 550 or code == 554, text
    assert "Virus found" in text, text
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test"))
    assert code == 250, text
    got = m.wait_maildir("user", count=1)
    assert len(got) == 1 and b"report" in got[0]


def test_milter_down_default(moat):
    port = moatlib.free_port()
    m = moat(spf="off", milters="inet:127.0.0.1:%d" % port,
             milter_default_action="tempfail")
    code, text = send(m, "x@remote.test", "user@example.test",
                      mail("x@remote.test", "user@example.test"))
    assert code == 451, text
