"""test_disk - a full spool file system (issue 8, "Full disk").

The spool lives on a 32 MiB tmpfs that the test mounts and removes (it
needs root; skipped otherwise).  A filler file takes the space away:

- below min_free_space, MAIL FROM gets `452 4.3.1 Insufficient system
  storage` (RFC 3463 3.4), and so does a MAIL whose SIZE= would take the
  free space below it (RFC 1870 6.1); a smaller SIZE= is still taken;
- with the disk completely full, a transaction that got past MAIL
  before gets a 4xx after its content, never 250, and nothing of it is
  queued; the queue goes on retrying its deferred mail with every state
  write failing (ENOSPC) and loses none of it;
- once the filler is gone, smtp-in takes mail again by itself (no
  restart, no reload) and every message queued before reaches the next
  hop.

References: docs/configuration.md (min_free_space), src/smtp_in/
smtp_disk.c, doc/QUEUE.md.
"""

import os
import subprocess
import time

import pytest

import moatlib
from moatlib import wait_until

FS_SIZE = 32 * 1024 * 1024
MIN_FREE = 8 * 1024 * 1024
NQUEUED = 5
BODY = b"".join(b"line %05d of a message that waits in the queue\r\n" % i
                for i in range(2000))      # about 100 KiB


def statvfs_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(path, filler, free):
    """Grow filler until path's file system has about free octets left
    (0: until ENOSPC)."""
    chunk = b"\0" * (1024 * 1024)
    with open(filler, "ab") as f:
        while True:
            left = statvfs_free(path)
            if left <= free:
                return
            n = min(len(chunk), left - free) if free else len(chunk)
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                return


@pytest.fixture
def small_fs(moat_base):
    """A size-capped tmpfs under the test directory, removed after."""
    if not moatlib.IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    d = moat_base / "fs"
    d.mkdir(mode=0o755)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%d,mode=0755" % FS_SIZE, "tmpfs", str(d)],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.decode().strip())
    yield d
    # moatd is stopped by the moat fixture first (set up after this one)
    subprocess.run(["umount", "-l", str(d)], capture_output=True, timeout=30)


def msg(i):
    return (b"From: <sender@remote.test>\r\nTo: <rcpt@remote.test>\r\n"
            b"Subject: queued %d\r\n\r\n" % i) + BODY


def test_full_disk(small_fs, moat, smtpsink):
    # small_fs first: it is torn down after moatd has stopped
    # the next hop defers everything at first: the mail stays queued
    sink = smtpsink(rcpt_default=(451, "4.3.0 not now"))
    spool = small_fs / "spool"
    m = moat(start=False, transport=["remote.test %s" % sink.nexthop],
             spool_dir=str(spool), min_free_space=MIN_FREE,
             retry_min="1s", retry_max="2s")
    m.spool = spool
    m.start()
    for i in range(NQUEUED):
        assert m.send("rcpt@remote.test", msg(i)) == {}
    wait_until(lambda: len(m.log_lines(r"queue: event=delivery .*"
                                       r"status=deferred")) >= NQUEUED
               and len([n for n in m.spool_files("queue")
                        if n.endswith(".state")]) == NQUEUED,
               20 * moatlib.SLOW, "%d messages deferred" % NQUEUED)
    queued = [n for n in m.spool_files("queue") if "." not in n]

    # a transaction that gets past MAIL while there is room
    early = m.raw()
    early.ehlo()
    assert early.cmd("MAIL FROM:<early@remote.test>").code == 250
    assert early.cmd("RCPT TO:<rcpt@remote.test>").code == 250

    filler = small_fs / "filler"
    # 12 MiB free: over the minimum, but not for a 6 MiB message
    mark = m.log_mark()
    fill_to(small_fs, filler, MIN_FREE + 4 * 1024 * 1024)
    time.sleep(1.5 * moatlib.SLOW)          # one look of the 1 s timer
    with m.raw() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@remote.test> SIZE=%d" % (6 * 1024 * 1024))
        assert r.first == "452 4.3.1 Insufficient system storage", r
        r = c.cmd("MAIL FROM:<a@remote.test> SIZE=%d" % (1024 * 1024))
        assert r.code == 250, r
        assert c.cmd("RSET").code == 250

    # below the minimum: every MAIL is refused, the session goes on
    fill_to(small_fs, filler, MIN_FREE // 2)
    m.wait_log(r"smtp-in: event=disk state=low free=\d+ "
               r"min_free_space=%d$" % MIN_FREE, timeout=5, since=mark)
    with m.raw() as c:
        c.ehlo()
        for _ in range(3):
            r = c.cmd("MAIL FROM:<a@remote.test>")
            assert r.first == "452 4.3.1 Insufficient system storage", r
        assert c.cmd("NOOP").code == 250
        assert c.cmd("QUIT").code == 221

    # completely full: the early transaction's content cannot be kept
    fill_to(small_fs, filler, 0)
    assert statvfs_free(small_fs) < 64 * 1024
    r = early.cmd("DATA")
    assert r.code == 354, r
    early.send(b"Subject: early\r\n\r\n" + BODY * 3 + b".\r\n")
    late = early.reply()
    assert late.first == "452 4.3.1 Insufficient system storage", late
    early.close()

    # the queue retries (retry_min 1s) with the disk full: state writes
    # fail, nothing queued goes away
    mark_q = m.log_mark()
    m.wait_log(r"queue: event=state_error", timeout=15, since=mark_q)
    assert [n for n in m.spool_files("queue") if "." not in n] == queued

    # space comes back: no restart, mail flows by itself
    os.unlink(filler)
    sink.rcpt_default = (250, "2.1.5 ok")
    m.wait_log(r"smtp-in: event=disk state=ok", timeout=5, since=mark)

    def accepted():
        try:
            return m.send("rcpt@remote.test", msg(99)) == {}
        except Exception:
            return False
    wait_until(accepted, 5 * moatlib.SLOW, "MAIL taken again")
    wait_until(lambda: not [n for n in m.spool_files("queue")
                            if "." not in n]
               and len(sink.received()) >= NQUEUED + 1,
               30 * moatlib.SLOW, "the queue delivered")
    subjects = [t.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
                for t in sink.received()]
    for i in list(range(NQUEUED)) + [99]:
        assert b"queued %d" % i in subjects, subjects
    # the refused transaction was never queued nor delivered
    assert b"early" not in subjects
    print("\ndisk: queued=%d delivered=%d (duplicates included); end of "
          "DATA on a full disk: %r; queue state write errors: %d"
          % (NQUEUED + 1, len(subjects), late.first,
             len(m.log_lines(r"queue: event=state_error"))))


def test_low_disk_removes_recycled_files(small_fs, moat):
    # delivered files kept in free/ for reuse (doc/QUEUE.md) are the
    # first space given back when the spool runs low
    spool = small_fs / "spool"
    m = moat(start=False, spool_dir=str(spool), min_free_space=MIN_FREE)
    m.spool = spool
    m.start()
    for i in range(3):
        assert m.send("user@example.test", msg(i)[:2000] + b"\r\n") == {}
    m.wait_maildir("user", count=3)
    wait_until(lambda: len(m.spool_files("free")) == 3, 5 * moatlib.SLOW,
               "three delivered files in free/")
    mark = m.log_mark()
    fill_to(small_fs, small_fs / "filler", MIN_FREE // 2)
    m.wait_log(r"smtp-in: event=disk state=low free=\d+ "
               r"recycled_removed=3$", timeout=5, since=mark)
    assert m.spool_files("free") == []
    with m.raw() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@remote.test>")
        assert r.first == "452 4.3.1 Insufficient system storage", r
    # the mail itself is untouched
    got = m.maildir("user")
    assert sorted(g.split(b"Subject: ", 1)[1][:8] for g in got) == \
        [b"queued %d" % i for i in range(3)]
