"""Duplicate recipients in one transaction get one copy (RFC 5321 3.3)."""

import re

MSG = b"Subject: dup\r\n\r\nonce only\r\n"


def test_duplicate_rcpt_delivered_once(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for rcpt in ("user@example.test", "user@example.test",
                 "user@EXAMPLE.TEST", "other@example.test"):
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 250, r
    assert c.cmd("DATA").code == 354
    c.send(MSG + b".\r\n")
    r = c.reply()
    assert r.code == 250, r
    qid = re.search(r"queued as (\S+)", r.text).group(1)
    c.cmd("QUIT")
    m.wait_maildir("other")
    m.wait_log(r"event=removed qid=%s" % qid)
    assert len(m.maildir("user")) == 1
    assert m.log_lines(r"event=accepted qid=%s .*nrcpt=2 " % qid)
