"""test_limits - resource exhaustion at smtp-in (issue 8).

- max_connections and max_connections_per_ip reached: a new client gets
  `421 4.7.0 Too many connections` and is closed, the sessions already
  open go on and deliver their mail, and a freed slot is taken again;
- out of file descriptors (RLIMIT_NOFILE of the running smtp-in lowered
  with prlimit): a new client gets `421 4.3.2 System not accepting
  network messages` through the reserve descriptor and is closed, the
  loop does not spin, the open session still answers and ends cleanly,
  and once descriptors are back smtp-in takes mail again by itself.

References: src/smtp_in/smtp_server.c (limits, the reserve
descriptor), RFC 3463 3.3 (4.3.2), docs/configuration.md (Limits).
"""

import os
import re
import subprocess
import sys
import time

import moatlib

MSG = (b"From: <a@remote.test>\r\nTo: <user@example.test>\r\n"
       b"Subject: limits\r\n\r\nbody\r\n")
BUSY = "421 4.7.0 Too many connections"
NOFILE = "421 4.3.2 System not accepting network messages"


def role_pid(m, role):
    """pid of the newest spawn of role, once it has started."""
    rx = r"event=spawn role=%s pid=\d+" % re.escape(role)
    m.wait_log(rx)
    pid = int(re.search(r"pid=(\d+)", m.log_lines(rx)[-1]).group(1))
    m.wait_log(r"moatd\[%d\] %s: event=start" % (pid, re.escape(role)))
    return pid


def nofile(pid, soft=None, hard=None):
    """Get, or set, the RLIMIT_NOFILE of pid; returns (soft, hard).

    prlimit(2) on another user's process needs CAP_SYS_RESOURCE, which
    a container's root may not have; the same user may always do it,
    so the call runs in a child with the role's ids.
    """
    code = ("import resource, sys\n"
            "pid = int(sys.argv[1])\n"
            "if len(sys.argv) > 2:\n"
            "    resource.prlimit(pid, resource.RLIMIT_NOFILE,\n"
            "                     (int(sys.argv[2]), int(sys.argv[3])))\n"
            "print(*resource.prlimit(pid, resource.RLIMIT_NOFILE))\n")
    args = [sys.executable, "-c", code, str(pid)]
    if soft is not None:
        args += [str(soft), str(hard)]
    ids = {}
    if moatlib.IS_ROOT:
        uid, gid = moatlib.run_ids()
        ids = {"user": uid, "group": gid, "extra_groups": []}
    r = subprocess.run(args, capture_output=True, timeout=30, check=True,
                       **ids)
    return tuple(int(x) for x in r.stdout.split())


def cpu_seconds(pid):
    """utime + stime of pid, all threads, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def refused(m, source=None):
    """Connect; the first line must be a 421, then the server closes."""
    c = m.raw(source=source, banner=False)
    try:
        r = c.reply()
        assert r.code == 421, r
        assert c.is_closed(), "not closed after %r" % r
        return r.first
    finally:
        c.close()


def mail_through(c, rcpt="user@example.test"):
    """A whole transaction on an open RawSMTP session."""
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
    assert c.cmd("DATA").code == 354
    c.send(MSG + b".\r\n")
    r = c.reply()
    assert r.code == 250, r


def test_max_connections(moat):
    m = moat(max_connections=3, max_connections_per_ip=100)
    held = [m.raw() for _ in range(3)]
    for c in held:
        c.ehlo()
    mark = m.log_mark()
    for _ in range(3):
        assert refused(m) == BUSY
    m.wait_log(r"smtp-in: event=refused client=127\.0\.0\.1 "
               r"reason=max_connections$", since=mark)
    # the sessions already open are not disturbed
    for c in held:
        mail_through(c)
    m.wait_maildir("user", count=3)
    assert held[0].cmd("QUIT").code == 221
    held[0].close()
    # the freed slot is taken again (the count drops when the session
    # is gone: bounded wait)
    moatlib.wait_until(lambda: _banner_ok(m), 5 * moatlib.SLOW,
                       "a free slot after QUIT")
    for c in held[1:]:
        assert c.cmd("QUIT").code == 221
        c.close()


def _banner_ok(m):
    c = m.raw(banner=False)
    try:
        r = c.reply()
        if r.code == 220:
            c.cmd("QUIT")
            return True
        return False
    except EOFError:
        return False
    finally:
        c.close()


def test_max_connections_per_ip(moat):
    m = moat(max_connections=100, max_connections_per_ip=2)
    held = [m.raw(source="127.0.0.2") for _ in range(2)]
    assert refused(m, source="127.0.0.2") == BUSY
    # another address is not affected
    with m.raw(source="127.0.0.3") as other:
        other.ehlo()
        mail_through(other)
    for c in held:
        c.ehlo()
        mail_through(c)
        assert c.cmd("QUIT").code == 221
        c.close()
    m.wait_maildir("user", count=3)


def test_out_of_descriptors(moat):
    m = moat(max_connections_per_ip=100)
    pid = role_pid(m, "smtp-in")
    old = nofile(pid)
    existing = m.raw()
    existing.ehlo()
    nfds = len(os.listdir("/proc/%d/fd" % pid))
    mark = m.log_mark()
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    # no descriptor left to take: every accept fails with EMFILE
    nofile(pid, nfds, old[1])
    try:
        for _ in range(5):
            assert refused(m) == NOFILE
        m.wait_log(r"smtp-in: event=refused client=127\.0\.0\.1 "
                   r"reason=out_of_files$", since=mark)
        # a client that connects and waits is refused too, with no
        # busy loop meanwhile
        c = m.raw(banner=False)
        time.sleep(1)
        r = c.reply()
        assert r.first == NOFILE, r
        c.close()
        # the open session still answers; a message needs a spool
        # file, so it may get a temporary error, never a 5xx
        assert existing.cmd("NOOP").code == 250
        assert existing.cmd("MAIL FROM:<a@remote.test>").code == 250
        assert existing.cmd("RCPT TO:<user@example.test>").code == 250
        r = existing.cmd("DATA")
        if r.code == 354:
            existing.send(MSG + b".\r\n")
            r = existing.reply()
        assert r.code in (250, 451), r
        assert existing.cmd("QUIT").code == 221
        assert existing.is_closed()
    finally:
        existing.close()
        nofile(pid, *old)
    cpu = cpu_seconds(pid) - cpu0
    elapsed = time.monotonic() - t0
    print("\nEMFILE: smtp-in used %.2fs CPU in %.1fs" % (cpu, elapsed))
    assert cpu < 0.5 * elapsed, "smtp-in spun: %.2fs CPU in %.1fs" % (
        cpu, elapsed)
    # descriptors are back: mail flows, same process
    assert m.send("user@example.test", MSG) == {}
    m.wait_maildir("user", count=1)
    assert role_pid(m, "smtp-in") == pid


def tasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def test_commit_threads(moat):
    """commit_threads sets how many threads of smtp-in fsync and rename
    finished messages: the loop has that many beside it, every message
    of a burst larger than that still gets its 250 and is delivered,
    and a reload starts smtp-in with the new number."""
    m = moat(commit_threads=3)
    pid = role_pid(m, "smtp-in")
    m.wait_log(r"moatd\[%d\] smtp-in: event=start .* commit_threads=3$"
               % pid)
    assert tasks(pid) == 1 + 3
    sessions = []
    for i in range(12):
        c = m.raw()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
        assert c.cmd("RCPT TO:<user@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        sessions.append(c)
    # all twelve ends of DATA reach smtp-in together
    for i, c in enumerate(sessions):
        c.send(MSG.replace(b"limits", b"burst %d" % i) + b".\r\n")
    qids = set()
    for c in sessions:
        r = c.reply()
        assert r.code == 250, r
        qids.add(r.lines[-1].split()[-1])
        c.cmd("QUIT")
        c.close()
    assert len(qids) == 12
    got = m.wait_maildir("user", count=12)
    subjects = sorted(re.search(rb"^Subject: (burst \d+)\r?$", g,
                                re.M).group(1) for g in got)
    assert subjects == sorted(b"burst %d" % i for i in range(12))
    mark = m.log_mark()
    m.write_config(commit_threads=5)
    m.reload()
    m.wait_log(r"smtp-in: event=start .* commit_threads=5$", since=mark)
    pid2 = role_pid(m, "smtp-in")
    assert pid2 != pid and tasks(pid2) == 1 + 5
