"""test_fsync_fail - a disk that fails fsync() (the promise of a 250).

moatd runs with tests/tools/failsync.c preloaded: while a trigger file
exists in the spool, the fsync of the message file, or of incoming/,
fails the way a failing disk makes it fail (EIO, or ENOSPC at
writeback).  Then:

- the message file's fsync fails: the client gets 451 4.3.0 (452 4.3.1
  for ENOSPC) after its dot, never 250; the file is removed and nothing
  of the message is queued or delivered;
- the fsync of incoming/ fails after the file was renamed there: the
  client gets 451 4.3.0, and the log names the failed directory sync.
  The message is not lost either: the file is in incoming/, and the
  queue delivers it (the client will also retry after its 451: a
  duplicate, which RFC 5321 6.1 prefers to a loss);
- the session goes on, and once the trigger is gone the next message
  gets its 250 and is delivered, without a restart.

The library cannot be preloaded under ASan (its runtime must come
first), so these tests run in the plain integration pass only.

References: src/smtp_in/smtp_data.c (commit_one, commit_dir_add),
src/common/spool.c (spool_dir_sync), doc/QUEUE.md.
"""

import os
import re

import pytest

import moatlib
from moatlib import SLOW, wait_until

pytestmark = pytest.mark.skipif(
    moatlib.ASAN or moatlib.LSAN,
    reason="an LD_PRELOAD library cannot come before the ASan runtime")

SHIM = moatlib.BUILD / "tools" / "failsync.so"
QID = r"[0-9A-HJKMNP-TV-Z]{16}"


def message(token):
    return ("From: <sender@remote.test>\r\nTo: <user@example.test>\r\n"
            "Subject: fsync %s\r\nX-Token: %s\r\n\r\nbody of %s\r\n"
            % (token, token, token)).encode()


def tokens_delivered(m):
    out = []
    for _path, data in m.all_delivered():
        found = re.search(rb"^X-Token: (\S+?)\r?$", data, re.M)
        if found:
            out.append(found.group(1).decode())
    return sorted(out)


def start_with_shim(moat):
    """moatd with the library preloaded, one message through it."""
    assert SHIM.exists(), "%s is missing: run make integration" % SHIM
    m = moat(start=False)
    env = m.env()
    env["LD_PRELOAD"] = str(SHIM)
    m.env = lambda: env
    m.start()
    assert dot_reply(m, "before")[0] == 250
    wait_until(lambda: tokens_delivered(m) == ["before"], 20 * SLOW,
               "the first message delivered")
    return m


def send_with_trigger(m, name, token):
    """Send one message while spool/name exists: (code, first line,
    log offset before it)."""
    trigger = m.spool / name
    mark = m.log_mark()
    trigger.write_text("")
    try:
        code, text = dot_reply(m, token)
    finally:
        trigger.unlink()
    return code, text, mark


def dot_reply(m, token):
    """Send one message; the reply to its dot as (code, text)."""
    with m.raw() as c:
        assert c.ehlo().code == 250
        assert c.cmd("MAIL FROM:<sender@remote.test>").code == 250
        assert c.cmd("RCPT TO:<user@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message(token) + b".\r\n")
        r = c.reply()
        # the session goes on after a failed commit
        assert c.cmd("NOOP").code == 250
        c.cmd("QUIT")
        return r.code, r.first


@pytest.mark.parametrize("kind,code,enh", [
    ("EIO", 451, "4.3.0"),
    ("ENOSPC", 452, "4.3.1"),
])
def test_file_fsync_fails(moat, kind, code, enh):
    m = start_with_shim(moat)
    got, text, mark = send_with_trigger(m, "FAILSYNC.file." + kind,
                                        "failed")
    assert got == code, text
    assert text.startswith("%d %s" % (code, enh)), text
    m.wait_log(r"event=error qid=%s error=spool_finish" % QID, since=mark)
    m.wait_log(r"event=reject qid=%s .*reason=commit_failed" % QID,
               since=mark)
    # nothing of it was kept: not in tmp/, incoming/ or queue/
    for d in ("tmp", "incoming", "queue"):
        assert m.spool_files(d) == [], d

    assert dot_reply(m, "after")[0] == 250
    wait_until(lambda: tokens_delivered(m) == ["after", "before"],
               20 * SLOW, "the message after the failure delivered")
    assert m.log_lines(r"event=accepted", since=mark), "no accepted line"


def test_incoming_dir_fsync_fails(moat):
    m = start_with_shim(moat)
    got, text, mark = send_with_trigger(m, "FAILSYNC.incoming", "unsynced")
    assert got == 451, text
    assert text.startswith("451 4.3.0"), text
    m.wait_log(r"event=spool_error path=incoming reason=fsync", since=mark)
    m.wait_log(r"event=error error=spool_dir_sync batch=1", since=mark)
    m.wait_log(r"event=reject qid=%s .*reason=commit_failed" % QID,
               since=mark)
    # the file was in incoming/ already: the queue delivers it
    wait_until(lambda: tokens_delivered(m) == ["before", "unsynced"],
               20 * SLOW, "the unsynced message delivered")

    assert dot_reply(m, "after")[0] == 250
    wait_until(lambda: tokens_delivered(m) == ["after", "before",
                                               "unsynced"],
               20 * SLOW, "the message after the failure delivered")
    assert not os.path.exists(m.spool / "FAILSYNC.incoming")
