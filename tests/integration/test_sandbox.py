"""The roles' least privilege beyond chroot (issue 8): smtp-in and
smtp-out run under their seccomp filter with no-new-privs and are not
dumpable; a role killed by the filter's signal is restarted by the
master and the service goes on.

That the filter itself kills a forbidden call (execve, fork, ptrace,
setuid, chroot) is shown by tests/unit/test_sandbox.c with the same
allow-lists; here the running daemon is checked.
"""

import os
import re
import signal
import smtplib

from moatlib import SLOW, wait_until

MSG = (b"From: a@remote.test\r\nTo: user@example.test\r\n"
       b"Subject: sandbox\r\n\r\nbody\r\n")


def role_pid(m, role, since=0):
    rx = r"event=spawn role=%s pid=\d+" % re.escape(role)
    m.wait_log(rx, since=since)
    pid = int(re.search(r"pid=(\d+)", m.log_lines(rx, since)[-1]).group(1))
    m.wait_log(r"moatd\[%d\] %s: event=start" % (pid, re.escape(role)),
               since=since)
    return pid


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def test_filtered_roles(moat):
    m = moat()
    for role, filtered in (("smtp-in", True), ("smtp-out", True),
                           ("queue", False), ("local", False)):
        st = status(role_pid(m, role))
        assert st["NoNewPrivs"] == ("1" if filtered else "0"), (role, st)
        assert st["Seccomp"] == ("2" if filtered else "0"), (role, st)
    # and the master itself is not filtered (it forks the roles)
    assert status(m.pid)["Seccomp"] == "0"


def test_role_killed_by_sigsys_is_restarted(moat):
    m = moat()
    for role in ("smtp-in", "smtp-out"):
        mark = m.log_mark()
        pid = role_pid(m, role)
        # what the filter does to a forbidden call: SIGSYS, default action
        os.kill(pid, signal.SIGSYS)
        m.wait_log(r"event=role_exit role=%s pid=%d signal=31 restart_in="
                   % (re.escape(role), pid), since=mark)
        role_pid(m, role, since=mark)

        def works():
            try:
                m.send("user@example.test", MSG)
                return True
            except (OSError, smtplib.SMTPException):
                return False
        wait_until(works, 10 * SLOW, "mail after the restart")
    m.wait_maildir("user", count=2)


def test_sandbox_off_for_leak_checks(moat):
    m = moat(sandbox="no")
    st = status(role_pid(m, "smtp-in"))
    assert st["Seccomp"] == "0", st
    m.send("user@example.test", MSG)
    m.wait_maildir("user")
