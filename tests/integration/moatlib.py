"""moatlib - helpers for moat's integration tests.

A Moat object is one real moatd process with its own directory:

    DIR/moat.conf      the config, written from keyword overrides
    DIR/transport      the transport map (maildir for the local domains)
    DIR/spool/         spool_dir (created by moatd itself)
    DIR/mail/          mail root: maildir:DIR/mail/%d/%u
    DIR/moatd.log      moatd's stderr and stdout

moatd is started from MOAT_BUILD (the Makefile sets it; ASan runs set
MOAT_BUILD=build/asan and MOAT_ASAN=1).  Every wait here is bounded; the
bounds grow under ASan, which is several times slower.

When the tests run as root, moatd runs its roles as `moat` chrooted into
the spool, and the maildir role writes as `moat`: the directories on the
way to the mail root must be traversable (0755) and the mail root must
belong to `moat`.  As a normal user moatd runs as that user.
"""

import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MOAT_BUILD") or REPO / "build")
ASAN = os.environ.get("MOAT_ASAN") == "1"
# LeakSanitizer run (make integration-lsan, mk/run-lsan.sh): as root,
# moatd is started as RUN_USER (no chroot, /proc readable) with
# sandbox = no (LSan stops the process with ptrace at exit)
LSAN = os.environ.get("MOAT_LSAN") == "1"
# time scale of every bound: ASan+UBSan binaries are slower
SLOW = 3.0 if ASAN else 1.0

IS_ROOT = os.geteuid() == 0
RUN_USER = "moat" if IS_ROOT else pwd.getpwuid(os.getuid()).pw_name

HOSTNAME = "mx.example.test"
LOCAL_DOMAINS = ("example.test", "localhost")
CRLF = b"\r\n"

# what a sanitizer prints when it finds something (ASan, UBSan, LSan)
SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer")


class MoatError(Exception):
    """moatd did not start or stop as expected."""


def bin_path(name):
    """Path of a built program (moatd, moatctl, moat-sendmail, mailq)."""
    return BUILD / name


def ensure_moat_user():
    """As root, create the `moat` system account if it is missing."""
    if not IS_ROOT:
        return
    try:
        pwd.getpwnam("moat")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", "moat"],
                       check=True, stdin=subprocess.DEVNULL, timeout=30)


def run_ids():
    """(uid, gid) the roles run as."""
    pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


def make_base_dir(prefix="moat-it-"):
    """A fresh temporary directory every role can traverse (0755)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    # the parent (normally /tmp) must be traversable too
    return d


_PORTS_GIVEN = set()
# below Linux's ephemeral range (ip_local_port_range, 32768-60999 by
# default): the kernel never hands these to a connecting socket of
# moatd or of a test server, so a port checked free here stays free
# until the server that gets it binds it
_PORT_LO, _PORT_HI = 20000, 32767


def free_port(host="127.0.0.1"):
    """A TCP port that is free on host right now and that this process
    has not handed out before (two listeners of one moatd must never
    get the same one)."""
    for _ in range(1000):
        port = random.randint(_PORT_LO, _PORT_HI)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % (_PORT_LO, _PORT_HI))


def wait_until(pred, timeout, what="condition", interval=0.05):
    """Poll pred() until it returns a true value (returned) or time out."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def fmt_value(v):
    """A config value: lists are written space-separated."""
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


class Reply:
    """One SMTP reply: code, the text of each line, the raw octets."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def first(self):
        """The first line as sent, e.g. '250 2.0.0 Ok'."""
        return "%d %s" % (self.code, self.lines[0]) if self.lines else ""

    def __repr__(self):
        return "Reply(%r)" % self.raw


class RawSMTP:
    """A raw SMTP client socket: send exact octets, read replies.

    source: local address to bind (127.0.0.2 ...) so that tests can act
    as different clients; every loopback address works on Linux.
    """

    def __init__(self, host, port, source=None, timeout=10.0):
        self.timeout = timeout * SLOW
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(self.timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        """Send str (encoded as latin-1) or bytes exactly as given."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        """Read more octets; False on EOF or reset."""
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_line(self):
        """One reply line with its CRLF; raises EOFError when closed."""
        while b"\n" not in self.buf:
            if self.eof or not self._fill():
                raise EOFError("connection closed; pending %r" % self.buf)
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def reply(self):
        """Read one (possibly multi-line) reply, RFC 5321 4.2.1."""
        raw = b""
        lines = []
        while True:
            line = self.read_line()
            raw += line
            s = line.decode("latin-1").rstrip("\r\n")
            if len(s) < 3 or not s[:3].isdigit():
                raise AssertionError("malformed reply line %r" % line)
            lines.append(s[4:])
            if len(s) == 3 or s[3] == " ":
                return Reply(int(s[:3]), lines, raw)
            if s[3] != "-":
                raise AssertionError("malformed reply line %r" % line)

    def banner(self):
        return self.reply()

    def cmd(self, line):
        """Send one command line (CRLF appended) and read the reply."""
        if isinstance(line, str):
            line = line.encode("latin-1")
        self.send(line + CRLF)
        return self.reply()

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    def wait_closed(self, timeout=5.0):
        """Wait until the server closes; returns what came before EOF."""
        deadline = time.monotonic() + timeout * SLOW
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close the connection;"
                                     " got %r" % self.buf)
            self.sock.settimeout(left)
            try:
                self._fill()
            except socket.timeout:
                pass
        self.sock.settimeout(self.timeout)
        rest, self.buf = self.buf, b""
        return rest

    def is_closed(self, timeout=5.0):
        """True if the server closes (without sending more) in time."""
        try:
            return self.wait_closed(timeout) == b""
        except AssertionError:
            return False


class Moat:
    """One moatd process with its own directory, config and mail root."""

    def __init__(self, base, name="moat", transport=(), debug=False,
                 extra="", **overrides):
        self.dir = Path(base) / name
        self.dir.mkdir(mode=0o755)
        os.chmod(self.dir, 0o755)
        self.spool = self.dir / "spool"
        self.mailroot = self.dir / "mail"
        self.mailroot.mkdir(mode=0o755)
        if IS_ROOT:
            os.chown(self.mailroot, *run_ids())
        self.conf = self.dir / "moat.conf"
        self.transport_file = self.dir / "transport"
        self.logfile = self.dir / "moatd.log"
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.debug = debug
        self.proc = None
        self.transport_extra = list(transport)
        self.extra = extra
        self.settings = {
            "hostname": HOSTNAME,
            "listen": "%s:%d" % (self.host, self.port),
            "user": RUN_USER,
            "spool_dir": str(self.spool),
            "local_domains": list(LOCAL_DOMAINS),
            "transport_map": str(self.transport_file),
            # no resolver answers here (nothing listens on port 9): mail
            # for other domains is deferred at once with 4.4.3, unless a
            # test passes its own dns_servers (tests/integration/dnsserver)
            "dns_servers": "127.0.0.1:9",
            "log": "stderr",
        }
        if LSAN:
            self.settings["sandbox"] = "no"
            if IS_ROOT:
                os.chown(self.dir, *run_ids())
        self.write_config(**overrides)

    # ---- config ----------------------------------------------------

    def write_config(self, **overrides):
        """Update settings (None removes a key) and rewrite the files."""
        for k, v in overrides.items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = v
        lines = ["# written by tests/integration/moatlib.py"]
        lines += ["%s = %s" % (k, fmt_value(v))
                  for k, v in self.settings.items()]
        if self.extra:
            lines.append(self.extra.rstrip("\n"))
        self.conf.write_text("\n".join(lines) + "\n")
        tlines = list(self.transport_extra)
        tlines += ["%s maildir:%s/%%d/%%u" % (d, self.mailroot)
                   for d in LOCAL_DOMAINS]
        self.transport_file.write_text("\n".join(tlines) + "\n")

    # ---- process ---------------------------------------------------

    def env(self):
        env = dict(os.environ)
        if ASAN:
            # LeakSanitizer cannot run in the chrooted roles (it needs
            # /proc), so leaks are off unless MOAT_ASAN_OPTIONS says so.
            env["ASAN_OPTIONS"] = os.environ.get(
                "MOAT_ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
            env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        return env

    def start(self, wait=True, timeout=15.0):
        """Start moatd in the foreground; wait until it serves a banner."""
        if self.proc is not None and self.proc.poll() is None:
            raise MoatError("moatd is already running")
        args = [str(bin_path("moatd")), "-c", str(self.conf)]
        if self.debug:
            args.append("-d")
        ids = {}
        if LSAN and IS_ROOT:
            uid, gid = run_ids()
            ids = {"user": uid, "group": gid, "extra_groups": []}
            # the files a test made beside us (keys, maps) must be
            # readable by a master that is not root
            for p in self.dir.parent.iterdir():
                if p.is_file():
                    os.chown(p, uid, gid)
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, env=self.env(), start_new_session=True, **ids)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=15.0):
        """Bounded wait for the 220 banner on our port."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise MoatError("moatd exited with %d before serving a "
                                "banner; log:\n%s" % (rc, self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port),
                                              timeout=2 * SLOW) as s:
                    f = s.makefile("rb")
                    line = f.readline(1024)
                    if line.startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise MoatError("no banner from moatd within %.0fs; log:\n%s"
                                % (timeout * SLOW, self.log_tail()))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig to the master.

        After SIGKILL the roles must go too (they have
        PR_SET_PDEATHSIG, role.h): asserted within timeout.
        """
        os.kill(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=timeout * SLOW)
            left = self._wait_group_gone(timeout)
            assert left, "roles %r outlived the killed master by %.0fs; " \
                "log:\n%s" % (self.group_members(), timeout * SLOW,
                              self.log_tail())

    def reload(self):
        """SIGHUP: reload the config."""
        self.kill(signal.SIGHUP)

    def group_members(self):
        """Live (non-zombie) pids of moatd's process group.

        moatd is started in its own session, so its pgid is its pid and
        the roles stay in that group.  Zombies do not count: an orphaned
        role is reaped by init, which in a container may never happen.
        """
        pgid = self.proc.pid
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            # "pid (comm) S ppid pgrp ...": comm may hold spaces
            fields = st[st.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                out.append(int(d))
        return out

    def _wait_group_gone(self, timeout):
        """Wait until no live process of moatd's group is left."""
        deadline = time.monotonic() + timeout * SLOW
        while self.group_members():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout=10.0):
        """SIGTERM; moatd must exit 0 within timeout (and its roles)."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            raise AssertionError("moatd is not running (exit %r); log:\n%s"
                                 % (rc, self.log_tail()))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.abort()
            raise AssertionError("moatd did not stop within %.0fs of "
                                 "SIGTERM; log:\n%s"
                                 % (timeout * SLOW, self.log_tail()))
        left = self._wait_group_gone(timeout)
        assert rc == 0, "moatd exited %d on SIGTERM; log:\n%s" % (
            rc, self.log_tail())
        assert left, "moatd's roles outlived it by %.0fs" % (timeout * SLOW)
        return rc

    def abort(self):
        """SIGKILL moatd's whole process group (emergency cleanup)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._wait_group_gone(5)

    def restart(self, **overrides):
        """Stop (if running), rewrite the config if asked, start again."""
        if self.running():
            self.stop()
        if overrides:
            self.write_config(**overrides)
        return self.start()

    # ---- logs ------------------------------------------------------

    def log(self):
        try:
            return self.logfile.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Current log length, for wait_log(since=...)."""
        return len(self.log())

    def log_tail(self, n=4000):
        return self.log()[-n:]

    def wait_log(self, regex, timeout=5.0, since=0):
        """Wait for regex (re.M) in the log after offset since."""
        rx = re.compile(regex, re.M)

        def found():
            return rx.search(self.log()[since:])
        try:
            return wait_until(found, timeout * SLOW, "log /%s/" % regex)
        except AssertionError as e:
            raise AssertionError("%s; log:\n%s" % (e, self.log_tail()))

    def log_lines(self, regex, since=0):
        """Log lines matching regex."""
        rx = re.compile(regex)
        return [l for l in self.log()[since:].splitlines() if rx.search(l)]

    def sanitizer_report(self):
        """The sanitizer findings in the log, or None."""
        text = self.log()
        m = SANITIZER_RE.search(text)
        if not m:
            return None
        return text[max(0, m.start() - 200):m.start() + 6000]

    # ---- clients ---------------------------------------------------

    def smtp(self, source=None, timeout=10.0, ehlo=False):
        """An smtplib.SMTP connected to moatd (banner read)."""
        s = smtplib.SMTP(self.host, self.port, local_hostname="client.test",
                         timeout=timeout * SLOW,
                         source_address=(source, 0) if source else None)
        if ehlo:
            s.ehlo()
        return s

    def raw(self, source=None, timeout=10.0, banner=True):
        """A RawSMTP connected to moatd, banner read unless told not to."""
        c = RawSMTP(self.host, self.port, source=source, timeout=timeout)
        if banner:
            r = c.banner()
            assert r.code == 220, r
        return c

    def send(self, rcpts, msg, sender="sender@remote.test", source=None):
        """Send msg (bytes) with smtplib; returns sendmail()'s refusals."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with self.smtp(source=source) as s:
            return s.sendmail(sender, rcpts, msg)

    # ---- tools -----------------------------------------------------

    def ctl(self, *args, timeout=30.0, input=None):
        """Run moatctl -c CONF ARGS; returns the CompletedProcess."""
        return self.tool("moatctl", "-c", str(self.conf), *args,
                         timeout=timeout, input=input)

    def tool(self, name, *args, timeout=30.0, input=None, env=None):
        """Run a built program with args in our directory."""
        e = self.env()
        if env:
            e.update(env)
        return subprocess.run([str(bin_path(name))] + [str(a) for a in args],
                              cwd=self.dir, input=input, capture_output=True,
                              timeout=timeout * SLOW, env=e,
                              stdin=None if input is not None
                              else subprocess.DEVNULL)

    # ---- mailboxes and spool ---------------------------------------

    def maildir_path(self, user, domain="example.test"):
        return self.mailroot / domain / user

    def maildir(self, user, domain="example.test"):
        """Delivered messages (bytes) of a Maildir, new/ then cur/."""
        out = []
        root = self.maildir_path(user, domain)
        for sub in ("new", "cur"):
            d = root / sub
            if not d.is_dir():
                continue
            for name in sorted(os.listdir(d)):
                p = d / name
                if p.is_file():
                    out.append(p.read_bytes())
        return out

    def wait_maildir(self, user, domain="example.test", count=1,
                     timeout=15.0):
        """Wait until the Maildir holds count messages; returns them."""
        def enough():
            m = self.maildir(user, domain)
            return m if len(m) >= count else None
        try:
            return wait_until(enough, timeout * SLOW, "%d message(s) in %s@%s"
                              % (count, user, domain))
        except AssertionError as e:
            raise AssertionError("%s; log:\n%s" % (e, self.log_tail()))

    def all_delivered(self):
        """Every message file under the mail root (path, bytes)."""
        out = []
        for dirpath, _dirs, files in os.walk(self.mailroot):
            if os.path.basename(dirpath) in ("new", "cur"):
                for f in sorted(files):
                    p = Path(dirpath) / f
                    out.append((p, p.read_bytes()))
        return out

    def spool_files(self, subdir):
        """Names of the files in spool_dir/subdir (empty if none)."""
        d = self.spool / subdir
        try:
            return sorted(n for n in os.listdir(d) if (d / n).is_file())
        except FileNotFoundError:
            return []

    # ---- teardown --------------------------------------------------

    def cleanup(self):
        """Stop moatd (asserting a clean exit) if it still runs."""
        if self.running():
            self.stop()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def received_split(msg):
    """Split a delivered message into (eol, [header lines], rest).

    The header lines are the leading Return-Path, Delivered-To and
    Received headers (with their continuation lines) that moat added;
    eol is the line end the file uses (b"\\r\\n" or b"\\n").
    """
    first = msg.split(b"\n", 1)[0] + b"\n"
    eol = b"\r\n" if first.endswith(b"\r\n") else b"\n"
    lines = msg.split(eol)
    added = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if added and line[:1] in (b" ", b"\t"):
            added[-1] += eol + line
        elif re.match(rb"(?i)(Return-Path|Delivered-To|Received):", line):
            added.append(line)
        else:
            break
        i += 1
    return eol, added, eol.join(lines[i:])
