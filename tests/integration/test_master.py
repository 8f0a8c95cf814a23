"""The master: privilege separation, supervision, stop, reload, and the
durability promise (a message that got 250 survives SIGKILL of
everything; one that did not is never delivered, not even in part).
"""

import os
import pwd
import re
import signal
import smtplib
import subprocess
import threading
import time

import pytest

import moatlib
from moatlib import SLOW, wait_until

MSG = (b"From: a@remote.test\r\nTo: user@example.test\r\n"
       b"Subject: hello\r\n\r\nbody line\r\n")


def role_pid(m, role, since=0):
    """pid of the newest spawn of role in the log."""
    rx = r"event=spawn role=%s pid=\d+" % re.escape(role)
    m.wait_log(rx, since=since)
    lines = m.log_lines(rx, since)
    pid = int(re.search(r"pid=(\d+)", lines[-1]).group(1))
    # the role has dropped its privileges once it logs its own start
    m.wait_log(r"moatd\[%d\] %s: event=start" % (pid, re.escape(role)),
               since=since)
    return pid


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


@pytest.mark.skipif(not moatlib.IS_ROOT, reason="needs root")
def test_roles_run_unprivileged_and_chrooted(moat):
    m = moat()
    pw = pwd.getpwnam("moat")
    spool = os.path.realpath(m.spool)
    for role, chrooted in (("smtp-in", True), ("queue", True),
                           ("local", False), ("smtp-out", True)):
        pid = role_pid(m, role)
        st = proc_status(pid)
        assert st["Uid"] == [str(pw.pw_uid)] * 4, (role, st["Uid"])
        assert st["Gid"] == [str(pw.pw_gid)] * 4, (role, st["Gid"])
        # supplementary groups: only the role's own group, none of root's
        assert st.get("Groups", []) in ([], [str(pw.pw_gid)]), st["Groups"]
        # no capabilities left, in any set: setuid(0) cannot succeed
        assert int(st["CapEff"][0], 16) == 0
        assert int(st["CapPrm"][0], 16) == 0
        root = os.readlink("/proc/%d/root" % pid)
        if chrooted:
            assert root == spool, (role, root)
        else:
            assert root == "/", (role, root)
    # the master keeps root, and only it
    assert proc_status(m.pid)["Uid"][0] == "0"


@pytest.mark.skipif(not moatlib.IS_ROOT, reason="needs root to switch user")
def test_started_as_normal_user_runs_as_that_user(moat_base):
    pw = pwd.getpwnam("moat")
    m = moatlib.Moat(moat_base, name="user")
    m.write_config(user="moat")
    for p in (m.dir, m.mailroot):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chown(m.conf, pw.pw_uid, pw.pw_gid)

    def demote():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    with open(m.logfile, "ab") as log:
        m.proc = subprocess.Popen(
            [str(moatlib.bin_path("moatd")), "-c", str(m.conf)],
            cwd=m.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=m.env(), preexec_fn=demote, start_new_session=True)
    try:
        m.wait_ready()
        m.wait_log(r"not started as root: roles run as uid %d without "
                   r"chroot" % pw.pw_uid)
        pid = role_pid(m, "smtp-in")
        assert proc_status(pid)["Uid"][0] == str(pw.pw_uid)
        assert os.readlink("/proc/%d/root" % pid) == "/"
        m.send("user@example.test", MSG)
        got = m.wait_maildir("user")
        assert got[0].endswith(b"body line\n") or got[0].endswith(
            b"body line\r\n")
        m.stop()
    finally:
        if m.running():
            m.abort()


def test_crashed_roles_are_restarted(moat):
    m = moat()
    for role in ("smtp-in", "queue", "local", "smtp-out"):
        mark = m.log_mark()
        pid = role_pid(m, role)
        os.kill(pid, signal.SIGKILL)
        m.wait_log(r"event=role_exit role=%s pid=%d signal=9 restart_in="
                   % (re.escape(role), pid), since=mark)
        # queue, local and smtp-out restart together: wait for all
        group = (("queue", "local", "smtp-out") if role != "smtp-in"
                 else (role,))
        for r in group:
            role_pid(m, r, since=mark)
        # and the service works again end to end
        wait_until(lambda: _try_send(m), 10 * SLOW, "smtp after restart")
    m.wait_maildir("user", count=4)


def _try_send(m):
    try:
        m.send("user@example.test", MSG)
        return True
    except (OSError, smtplib.SMTPException):
        return False


def test_sigterm_says_421_to_open_sessions(moat):
    m = moat()
    c = m.raw()
    c.ehlo()
    c.cmd("MAIL FROM:<a@remote.test>")
    m.proc.send_signal(signal.SIGTERM)
    r = c.reply()
    assert r.code == 421, r
    assert c.is_closed()
    assert m.proc.wait(timeout=15 * SLOW) == 0
    # the unfinished transaction left nothing behind
    assert m.spool_files("tmp") == []
    assert m.spool_files("incoming") == []


def test_sighup_reloads_config(moat):
    m = moat(max_recipients=5)
    old = m.raw()
    old.ehlo()
    m.write_config(max_recipients=1)
    mark = m.log_mark()
    m.reload()
    m.wait_log(r"event=reloaded", since=mark)
    # a new session gets the new limit
    c = wait_until(lambda: _new_session_limit(m), 10 * SLOW, "new config")
    c.close()
    # the session opened before the reload goes on with the old config
    assert old.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert old.cmd("RCPT TO:<a@example.test>").code == 250
    assert old.cmd("RCPT TO:<b@example.test>").code == 250
    assert old.cmd("QUIT").code == 221
    old.close()


def _new_session_limit(m):
    c = m.raw()
    c.ehlo()
    c.cmd("MAIL FROM:<a@remote.test>")
    c.cmd("RCPT TO:<a@example.test>")
    if c.cmd("RCPT TO:<b@example.test>").code == 452:
        return c
    c.close()
    return None


def test_bad_config_at_reload_keeps_running_config(moat):
    m = moat()
    good = m.conf.read_text()
    m.conf.write_text(good + "no_such_key = 1\n")
    mark = m.log_mark()
    m.reload()
    m.wait_log(r"event=config_error error=\".*moat\.conf:\d+: ", since=mark)
    m.wait_log(r"event=reload_failed", since=mark)
    m.send("user@example.test", MSG)
    m.wait_maildir("user")
    m.conf.write_text(good)


def test_second_instance_on_same_spool_refused(moat):
    m = moat()
    r = subprocess.run([str(moatlib.bin_path("moatd")), "-c", str(m.conf)],
                       capture_output=True, text=True, timeout=20 * SLOW,
                       env=m.env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "already running" in r.stderr


# ---- durability under SIGKILL -------------------------------------------

def _sender(m, tid, count, acked, stop):
    """Send numbered messages; record those that got 250."""
    for i in range(count):
        if stop.is_set():
            return
        tag = "t%d-m%d" % (tid, i)
        body = ("Subject: %s\r\n\r\n" % tag).encode() + \
            b"".join(b"%s line %d\r\n" % (tag.encode(), j)
                     for j in range(200))
        try:
            with m.smtp(timeout=5) as s:
                s.sendmail("a@remote.test", ["user@example.test"], body)
            acked.add(tag)
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)


def test_sigkill_loses_no_acknowledged_message(moat):
    m = moat()
    acked = set()
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(m, t, 400, acked,
                                                      stop))
               for t in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 40, 30 * SLOW, "40 acknowledged")
    # kill everything at once: master and roles, no chance to clean up
    os.killpg(m.pid, signal.SIGKILL)
    m.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30 * SLOW)
    acked_now = set(acked)
    m.start()
    delivered = {}

    def all_there():
        delivered.clear()
        for _p, data in m.all_delivered():
            mt = re.search(rb"Subject: (t\d+-m\d+)", data)
            assert mt, data[:300]
            delivered.setdefault(mt.group(1).decode(), []).append(data)
        return acked_now <= set(delivered)
    wait_until(all_there, 60 * SLOW, "every acknowledged message delivered")
    # nothing partial: every delivered message is whole
    for tag, copies in delivered.items():
        for data in copies:
            assert data.rstrip(b"\r\n").endswith(
                ("%s line 199" % tag).encode()), data[-200:]
    # the spool holds no leftover from the crash once all is delivered
    wait_until(lambda: m.spool_files("incoming") == [], 10 * SLOW,
               "incoming empty")


def test_bad_certificate_at_reload_keeps_old_key(moat, moat_base):
    from test_proto import make_cert
    import ssl
    cert, key = make_cert(moat_base)
    m = moat(tls_cert_file=cert, tls_key_file=key)
    good = cert.read_bytes()
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nbroken\n"
                     b"-----END CERTIFICATE-----\n")
    mark = m.log_mark()
    m.reload()
    m.wait_log(r"event=tls reason=\"certificate ", since=mark)
    m.wait_log(r"event=reload_failed reason=\"TLS key pair not usable",
               since=mark)
    # the running key still serves STARTTLS
    with m.smtp() as s:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.sendmail("a@remote.test", ["user@example.test"], MSG)
    m.wait_maildir("user")
    cert.write_bytes(good)
