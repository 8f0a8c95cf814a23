"""moatctl quarantine list|show|release|delete and quarantine_lifetime.

The entries are made the way smtp-in leaves them (src/common/
quarantine.h): a real spool message file in spool/quarantine/ and its
QID.why record beside it.  The message files come from moat itself: a
message is held in the queue, moat is stopped, and the file is moved
into quarantine/ with a record, so the file format is exactly moat's.
"""

import os
import time

import moatlib

MSG = (b"From: someone@remote.test\r\nTo: user@q.test\r\n"
       b"Subject: quarantine me\r\n\r\nthe body\r\n")


def make_entry(m, qid, rule="exe-attachment", reason="invoice.pdf.exe",
               age=0, outbound=False):
    """Move held message qid into quarantine/ with its record."""
    hold = m.spool / "hold"
    quar = m.spool / "quarantine"
    os.rename(hold / qid, quar / qid)
    try:
        os.unlink(hold / (qid + ".state"))
    except FileNotFoundError:
        pass
    rec = ("MOAT-QUARANTINE 1\ntime %d\ndirection %s\nrule %s\n"
           "reason %s\nEND\n" % (int(time.time()) - age,
                                 "outbound" if outbound else "inbound",
                                 rule, reason))
    (quar / (qid + ".why")).write_text(rec)
    if moatlib.IS_ROOT:
        uid, gid = moatlib.run_ids()
        for p in (quar / qid, quar / (qid + ".why")):
            os.chown(p, uid, gid)


def held_message(m, rcpt="user@q.test"):
    """Send a message that stays queued (4xx transport), hold it."""
    mark = m.log_mark()
    m.send([rcpt], MSG)
    mo = m.wait_log(r"event=delivery qid=(\w+) to=<%s> .*status=deferred"
                    % rcpt.replace(".", r"\."), since=mark)
    qid = mo.group(1)
    r = m.ctl("hold", qid)
    assert r.returncode == 0, r
    return qid


def two_held(moat, **kw):
    m = moat(local_domains=["example.test", "localhost", "q.test"],
             transport=["q.test error:4.2.0 try later"], **kw)
    a = held_message(m)
    b = held_message(m)
    m.stop()
    return m, a, b


def test_list_show_release_delete(moat):
    m, a, b = two_held(moat)
    make_entry(m, a)
    make_entry(m, b, rule="eicar", reason="clamd: Eicar-Signature FOUND")
    # now q.test is delivered: a release reaches the Maildir
    m.transport_extra = ["q.test maildir:%s/%%d/%%u" % m.mailroot]
    m.write_config()
    m.start()
    r = m.ctl("quarantine", "list")
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert a in out and b in out, out
    assert "(quarantined inbound: exe-attachment: invoice.pdf.exe)" in out
    assert "(quarantined inbound: eicar: clamd: Eicar-Signature FOUND)" \
        in out
    assert "user@q.test" in out and "2 Requests." in out, out
    # the queue does not list them
    assert a not in m.ctl("queue").stdout.decode()

    r = m.ctl("quarantine", "show", a)
    assert r.returncode == 0, r
    show = r.stdout.decode()
    for want in ("qid: %s\n" % a, "state: quarantined\n",
                 "direction: inbound\n", "rule: exe-attachment\n",
                 "reason: invoice.pdf.exe\n", "rcpt: <user@q.test>\n",
                 "header: Subject: quarantine me\n"):
        assert want in show, (want, show)
    assert "the body" not in show

    r = m.ctl("quarantine", "release", a)
    assert r.returncode == 0 and b"released" in r.stdout, r
    got = m.wait_maildir("user", "q.test")
    assert b"Subject: quarantine me" in got[0]
    m.wait_log(r"queue: event=quarantine_release qid=%s rule=exe-attachment"
               % a)

    r = m.ctl("quarantine", "delete", b)
    assert r.returncode == 0 and b"deleted" in r.stdout, r
    assert not (m.spool / "quarantine" / b).exists()
    assert not (m.spool / "quarantine" / (b + ".why")).exists()
    r = m.ctl("quarantine", "list")
    assert b"Quarantine is empty" in r.stdout, r
    # only one copy ever arrived
    time.sleep(0.5 * moatlib.SLOW)
    assert len(m.maildir("user", "q.test")) == 1


def test_unknown_ids_and_usage(moat):
    m = moat()
    r = m.ctl("quarantine", "show", "0000000000000000")
    assert r.returncode != 0
    assert b"no such message in quarantine" in r.stderr, r
    r = m.ctl("quarantine", "release", "../../etc/passwd")
    assert r.returncode != 0
    r = m.ctl("quarantine", "bogus")
    assert r.returncode != 0
    r = m.ctl("quarantine", "list")
    assert r.returncode == 0 and b"Quarantine is empty" in r.stdout, r


def test_expiry_after_lifetime(moat):
    m, a, b = two_held(moat, quarantine_lifetime="1h")
    make_entry(m, a, age=7200)       # older than the lifetime
    make_entry(m, b, age=60)         # not yet
    m.start()
    m.wait_log(r"queue: event=quarantine_expired qid=%s rule=" % a)
    assert not (m.spool / "quarantine" / a).exists()
    out = m.ctl("quarantine", "list").stdout.decode()
    assert b in out and a not in out, out
