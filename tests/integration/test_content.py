"""test_content - the content filter (issue 6): MIME parsing, attachment
types, zip archives, PCRE2 rules, and the actions reject, strip, tag,
quarantine and discard, seen from a real SMTP client and in the bytes
that reach the Maildir or the quarantine.

Messages are built with Python's email package.  The executable is a
minimal PE image ("MZ", e_lfanew, "PE\\0\\0"): libmagic (when smtp-in
could load its database) and moat's built-in sniffing both call it a
program.  Inbound mail comes from 127.0.0.2, outside relay_networks.
The Maildir holds LF lines (the maildir transport converts them).
"""

import email
import email.policy
import io
import os
import zipfile
from email.message import EmailMessage

import moatlib
from moatlib import wait_until

INBOUND = "127.0.0.2"
RCPT = "user@example.test"
SENDER = "sender@remote.test"


def pe_image():
    d = bytearray(1024)
    d[0:2] = b"MZ"
    d[0x3c] = 0x80
    d[0x80:0x86] = b"PE\0\0\x4c\x01"
    return bytes(d)


def message(subject="hello", text="Hello, see attached.\n",
            attachments=()):
    m = EmailMessage()
    m["From"] = SENDER
    m["To"] = RCPT
    m["Subject"] = subject
    m.set_content(text)
    for data, maintype, subtype, name in attachments:
        m.add_attachment(data, maintype=maintype, subtype=subtype,
                         filename=name)
    return m.as_bytes(policy=email.policy.SMTP)


def start(moat, rules=None, **over):
    settings = dict(content_filter="yes", relay_networks="127.0.0.1/32",
                    spf="off")
    settings.update(over)
    m = moat(start=False, **settings)
    if rules is not None:
        path = m.dir / "content.rules"
        path.write_text(rules)
        m.write_config(content_rules=str(path))
    m.start()
    return m


def send(m, msg, source=INBOUND):
    """(code, text) of the reply to the final dot."""
    with m.smtp(source=source) as s:
        s.ehlo()
        s.mail(SENDER)
        code, _ = s.rcpt(RCPT)
        assert code == 250
        code, text = s.data(msg)
        return code, text.decode()


def delivered(m, user="user"):
    """The message itself, once it and the content notice are there."""
    got = m.wait_maildir(user, count=2)
    mail = [g for g in got if b"\nSubject: Content filter: " not in g]
    notes = [g for g in got if b"\nSubject: Content filter: " in g]
    assert len(mail) == 1 and len(notes) == 1, got
    return mail[0]


def parts(raw):
    return list(email.message_from_bytes(
        raw, policy=email.policy.default).walk())


def test_exe_double_extension_rejected(moat):
    m = start(moat)
    code, text = send(m, message(attachments=[
        (pe_image(), "application", "pdf", "invoice.pdf.exe")]))
    assert code == 554
    assert text == ("5.7.1 Message refused by content filter "
                    "(rule attachment_block)")
    assert not m.spool_files("incoming") and not m.spool_files("queue")
    m.wait_log(r"event=alarm content qid=\S+ rule=attachment_block "
               r"action=reject dir=inbound")


def test_renamed_exe_mismatch(moat):
    # types are not blocked here: only the mismatch catches it
    m = start(moat, attachment_block="exe")
    code, text = send(m, message(attachments=[
        (pe_image(), "text", "plain", "notes.txt")]))
    assert code == 554 and "(rule attachment_mismatch)" in text


def test_rfc2231_name_rejected(moat):
    # a non-ASCII name: the email package writes it with RFC 2231
    m = start(moat)
    code, text = send(m, message(attachments=[
        (b"echo hi\r\n", "application", "octet-stream",
         "r\u00e9sum\u00e9.pdf.bat")]))
    assert code == 554 and "(rule attachment_block)" in text


def test_zip_with_exe_stripped(moat):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello\n")
        z.writestr("tools/setup.exe", pe_image())
    m = start(moat, attachment_action="strip")
    code, _ = send(m, message(text="The archive.\n", attachments=[
        (buf.getvalue(), "application", "zip", "files.zip"),
        (b"%PDF-1.4\n%ok\n", "application", "pdf", "fine.pdf")]))
    assert code == 250
    raw = delivered(m)
    # below our Received header, which the rewrite keeps
    assert b"\nX-Moat-Content: attachment_block (removed)\nFrom: " in raw
    ps = parts(raw)
    kinds = [p.get_content_type() for p in ps]
    assert kinds == ["multipart/mixed", "text/plain", "text/plain",
                     "application/pdf"]
    assert ps[1].get_content() == "The archive.\n"
    notice = ps[2].get_content()
    assert "An attachment (files.zip) was removed" in notice
    assert "(rule attachment_block)" in notice
    assert ps[3].get_filename() == "fine.pdf"
    assert ps[3].get_content() == b"%PDF-1.4\n%ok\n"
    assert b"PK\x03\x04" not in raw
    m.wait_log(r"event=content qid=\S+ rewritten=\S+")


RULES = r"""# name        scope       direction action     pattern
wire-fraud     body        inbound   reject     /wire\s+the\s+money/i
spammy         headers     any       tag        /^Subject:.*cheap pills/i
macro          attachment  any       quarantine /AutoOpen/
silent         body        any       discard    /drop-me-silently/
"""


def test_rule_reject_inbound_only(moat):
    m = start(moat, rules=RULES)
    msg = message(text="Please wire the  MONEY today.\n")
    code, text = send(m, msg)
    assert code == 554
    assert text == "5.7.1 Message refused by content filter (rule wire-fraud)"
    # outbound (relay_networks): the rule is for inbound mail only
    code, _ = send(m, msg, source="127.0.0.1")
    assert code == 250
    assert b"wire the  MONEY" in m.wait_maildir("user")[0]


def test_rule_tag(moat):
    m = start(moat, rules=RULES)
    code, _ = send(m, message(subject="cheap pills here"))
    assert code == 250
    raw = m.wait_maildir("user")[0]
    assert b"\nX-Moat-Content: spammy\nFrom: " in raw
    assert b"Subject: cheap pills here" in raw


def test_rule_quarantine(moat):
    m = start(moat, rules=RULES, content_notify="admin@example.test")
    code, text = send(m, message(attachments=[
        (b"Sub AutoOpen()\r\nEnd Sub\r\n" * 50, "application",
         "msword", "letter.doc")]))
    assert code == 250
    qid = text.split()[-1]
    names = m.spool_files("quarantine")
    assert qid in names and qid + ".why" in names
    reason = (m.spool / "quarantine" / (qid + ".why")).read_text()
    assert reason.startswith("MOAT-QUARANTINE 1\n")
    assert "rule macro\n" in reason and "direction inbound\n" in reason
    assert reason.endswith("END\n")
    stored = (m.spool / "quarantine" / qid).read_bytes()
    assert stored.startswith(b"MOAT-SPOOL 1\n")
    assert ("from %s\n" % SENDER).encode() in stored
    assert ("rcpt %s\n" % RCPT).encode() in stored
    # the internal recipient and the admin get a notice, not the mail;
    # the external sender hears nothing (no backscatter)
    notice = m.wait_maildir("user")
    assert len(notice) == 1
    n = email.message_from_bytes(notice[0], policy=email.policy.default)
    assert n["Subject"] == "Content filter: a message was quarantined"
    assert n["Auto-Submitted"] == "auto-generated"
    assert "Rule:      macro" in n.get_content()
    assert "moatctl quarantine release %s" % qid in n.get_content()
    assert b"AutoOpen" not in notice[0]
    assert len(m.wait_maildir("admin")) == 1
    assert SENDER.encode() not in m.ctl("queue").stdout
    assert m.log_lines(r"event=content_notice qid=%s notice_qid=\w+ "
                       r"nrcpt=2$" % qid)
    # the administrator sees it, and a release delivers it after all
    out = m.ctl("quarantine", "list").stdout.decode()
    assert qid in out and "(quarantined inbound: macro: " in out, out
    show = m.ctl("quarantine", "show", qid).stdout.decode()
    assert "rule: macro\n" in show and "rcpt: <%s>" % RCPT in show, show
    r = m.ctl("quarantine", "release", qid)
    assert r.returncode == 0, r
    got = m.wait_maildir("user", count=2)
    assert any(b"letter.doc" in g for g in got), got


def test_rule_discard(moat):
    m = start(moat, rules=RULES)
    code, text = send(m, message(text="drop-me-silently\n"))
    assert code == 250 and text.startswith("2.0.0 Ok: queued as ")
    m.wait_log(r"reason=content_discard")
    code, _ = send(m, message(text="keep me\n"))
    assert code == 250
    assert len(m.wait_maildir("user")) == 1
    assert b"keep me" in m.maildir("user")[0]


def test_pattern_in_base64_attachment(moat):
    # the pattern is only visible after base64 decoding
    m = start(moat, rules=RULES)
    code, _ = send(m, message(attachments=[
        (b"x" * 100000 + b"AutoOpen" + b"y" * 1000, "application",
         "octet-stream", "data.bin")]))
    assert code == 250
    wait_until(lambda: m.spool_files("quarantine"), 10 * moatlib.SLOW,
               "quarantined")


def test_malformed_mime(moat):
    broken = (b"From: sender@remote.test\r\nTo: user@example.test\r\n"
              b"Subject: broken\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
              b"--b\r\nContent-Type: text/plain\r\n\r\ntext, no close\r\n")
    m = start(moat, name="lenient")
    code, _ = send(m, broken)
    assert code == 250
    m2 = start(moat, name="strict", mime_malformed="reject")
    code, text = send(m2, broken)
    assert code == 554 and text.startswith("5.6.0 ")


def test_nested_multipart_and_rfc822(moat):
    # an executable inside a forwarded message inside an alternative
    inner = EmailMessage()
    inner["Subject"] = "fwd"
    inner.set_content("inner text")
    inner.add_attachment(pe_image(), maintype="application",
                         subtype="octet-stream", filename="tool.scr")
    outer = EmailMessage()
    outer["From"] = SENDER
    outer["To"] = RCPT
    outer["Subject"] = "nested"
    outer.set_content("see the forwarded message")
    outer.add_attachment(inner)
    m = start(moat, attachment_action="strip")
    code, _ = send(m, outer.as_bytes(policy=email.policy.SMTP))
    assert code == 250
    raw = delivered(m)
    ps = parts(raw)
    kinds = [p.get_content_type() for p in ps]
    assert "message/rfc822" in kinds
    assert kinds[-1] == "text/plain"
    assert "An attachment (tool.scr) was removed" in ps[-1].get_content()
    assert b"TVq" not in raw


def test_rules_file_errors(moat):
    m = moat(start=False, content_filter="yes")
    path = m.dir / "bad.rules"
    path.write_text("ok body any log /x/\nbad body any reject /(/\n"
                    "worse nowhere any reject /y/\n")
    m.write_config(content_rules=str(path))
    r = m.tool("moatd", "-n", "-c", str(m.conf))
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "%s:2: bad pattern at offset 1" % path in err
    assert "%s:3: scope must be" % path in err


def test_libmagic_type_in_the_daemon(moat):
    # only libmagic can call this a PDF: the name and the declared type
    # say text; smtp-in loaded the database before its chroot
    m = start(moat, attachment_block=["application/pdf"])
    pdf = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
           b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
    code, text = send(m, message(attachments=[
        (pdf, "text", "plain", "notes.txt")]))
    assert code == 554, (code, text)
    assert not m.maildir("user")
    assert not m.log_lines(r"libmagic database not loaded")
    code, _ = send(m, message(attachments=[
        (b"just words\n", "text", "plain", "words.txt")]))
    assert code == 250
