#!/usr/bin/python3
"""bench.py - moat side by side with Postfix (issue 7).

  bench/bench.py full  [--reps 3] [--scale 1.0] [--profile] [--skip-idle]
  bench/bench.py quick [--reps 3] [--messages 2000] [--profile]
  bench/bench.py idle

Both relays run on this machine with their queues on the real disk under
bench/out/ (never tmpfs) and their default durability, and forward every
message through a fixed next hop to Postfix's smtp-sink:

  smtp-source -> moat     (127.0.0.1:P1, transport "* smtp:[127.0.0.1]:S1")
  smtp-source -> Postfix  (127.0.0.1:P2, relayhost [127.0.0.1]:S2)
  smtp-source -> smtp-sink directly (the ceiling)

Each relay has a sink of its own, started once with -c; a reader thread
follows its running "mesg=N" counter, so a run is complete when the
sink has counted exactly the messages of that run (and no more).

Figures, for C sessions and S-octet messages:
  (a) accept: messages / time until smtp-source got every 250 and quit
  (b) relay:  messages / time from the start until the sink counted all
  (c) ceiling: smtp-source straight into a sink
  (d) idle: RSS growth of moatd per idle session after EHLO, at 1,000
      and 10,000 sessions (Postfix: PSS per session at its default
      process limit of 100 smtpd processes)
  (e) latency: p50/p99 from the end of DATA (".") to the 250, C=50,
      1 KiB, measured by bench/smtp-latency.c (build/tools/smtp-latency)

"full" measures C in {1,10,50,200} x S in {1 KiB, 20 KiB, 1 MiB}, three
repetitions alternating moat and Postfix, medians, and writes
bench/RESULTS.md; "quick" measures 1 KiB x C=50 only and writes
bench/out/quick.md; "idle" measures (d) alone.  --profile records moat
with perf during an extra 1 KiB x 50 relay run and writes
bench/PROFILE.md.  Each run also records what limited it: the
machine's busy and iowait time, the relay's CPU, the generator's.

Every server listens on 127.0.0.1; every loop is bounded in count and
time; every process started here is stopped by its PID (pid files in
bench/out/pids/), never by name.
"""
import argparse
import os
import pwd
import grp
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BUILD = os.environ.get("MOAT_BUILD", os.path.join(TOP, "build"))
OUT = os.path.join(HERE, "out")
PIDS = os.path.join(OUT, "pids")
TOOLS = os.path.join(HERE, "tools", "root")
PF_LIB = os.path.join(TOOLS, "usr", "lib", "postfix")
PF_SBIN = os.path.join(TOOLS, "usr", "sbin")
# the moatd under test, copied from build/ at the start so that a
# rebuild during the run changes nothing
MOATD = os.path.join(OUT, "moatd")

SIZES = [1024, 20 * 1024, 1024 * 1024]
SESSIONS = [1, 10, 50, 200]
# messages per run, sized so that the slower relay needs a few seconds
COUNTS = {
    1024: {1: 400, 10: 2000, 50: 4000, 200: 4000},
    20 * 1024: {1: 300, 10: 1500, 50: 3000, 200: 3000},
    1024 * 1024: {1: 40, 10: 150, 50: 300, 200: 400},
}
# the ceiling is an order of magnitude faster: at least this many, so
# that smtp-source's start and ramp-up do not dominate
CEILING_MIN = {1024: 4000, 20 * 1024: 3000, 1024 * 1024: 300}
QUICK_COUNT = 2000
LAT_MESSAGES = 2000  # latency client, full run
LAT_MESSAGES_QUICK = 1000
PROFILE_COUNT = 5000  # the profiled run, 1 KiB x C=50
# the 50% target: moat and the ceiling run in turn this many more times
# at 1 KiB x C=50, each with the ceiling's message count, because the
# ceiling alone moves up to threefold between runs on a shared VM
CEILING_PAIRS = 6
SENDER = "sender@client.bench.test"
RCPT = "rcpt@dest.bench.test"
HELO = "client.bench.test"

# every wait has an end
START_TIMEOUT = 20.0  # a server answering 220
SOURCE_TIMEOUT = 600.0  # one smtp-source run
STALL_TIMEOUT = 20.0  # no progress at the sink: give up
RELAY_TIMEOUT = 600.0  # one relay run, end to end
GRACE = 0.3  # after the last message: no duplicates


def die(msg):
    sys.exit("bench: " + msg)


def sizename(s):
    if s >= 1024 * 1024:
        return "%d MiB" % (s // (1024 * 1024))
    return "%d KiB" % (s // 1024)


_PORTS_GIVEN = set()


def free_port():
    """A free loopback port not handed out before by this process (the
    kernel may return the same one twice in a row)."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def wait_banner(port, timeout=START_TIMEOUT):
    """True once 127.0.0.1:port answers with a 220 greeting."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as s:
                if s.recv(100).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


# ---- processes we start: pid files, stop by PID ------------------------

def pid_write(name, pid):
    os.makedirs(PIDS, exist_ok=True)
    with open(os.path.join(PIDS, name + ".pid"), "w") as f:
        f.write("%d\n" % pid)


def pid_remove(name):
    try:
        os.unlink(os.path.join(PIDS, name + ".pid"))
    except FileNotFoundError:
        pass


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def ours(pid):
    """A process whose program is one of ours: moatd or a Postfix tool
    from bench/tools.  Guards against a recycled PID."""
    exe = exe_of(pid)
    return exe is not None and (exe.startswith(TOOLS + "/") or
                                exe.startswith(MOATD))


def stop_pid(pid, timeout=15.0):
    """SIGTERM, wait, then SIGKILL; only a process of ours."""
    if not ours(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        if exe_of(pid) is None:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    if ours(pid):
        os.kill(pid, signal.SIGKILL)


def stop_stale():
    """Processes left by an interrupted earlier run, by their pid files."""
    if not os.path.isdir(PIDS):
        return
    for name in os.listdir(PIDS):
        path = os.path.join(PIDS, name)
        try:
            with open(path) as f:
                pid = int(f.read().strip() or "0")
        except (OSError, ValueError):
            pid = 0
        if pid > 0 and ours(pid):
            print("bench: stopping stale %s (pid %d)" % (name, pid),
                  file=sys.stderr)
            stop_pid(pid)
        os.unlink(path)


def tree_pids(root):
    """root and all its descendants, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_kib(pid, field, fname="status"):
    try:
        with open("/proc/%d/%s" % (pid, fname)) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(root):
    return sum(proc_kib(p, "VmRSS") for p in tree_pids(root))


def tree_pss(root):
    return sum(proc_kib(p, "Pss", "smaps_rollup") for p in tree_pids(root))


def ensure_user(name, group=None):
    """A system account for the relays' unprivileged processes."""
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(["groupadd", "--system", group], check=True)
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group",
                        "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True)
    return pwd.getpwnam(name)


# ---- smtp-sink with a running counter ----------------------------------

class Sink:
    """smtp-sink -c on 127.0.0.1:port; .count follows its mesg= counter."""

    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.count = 0
        self.cond = threading.Condition()
        cmd = [os.path.join(PF_SBIN, "smtp-sink"), "-c", "-m", "2000"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += ["127.0.0.1:%d" % self.port, "1024"]
        self.err = open(os.path.join(OUT, name + ".err"), "w")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.err,
            env=dict(os.environ, LD_LIBRARY_PATH=PF_LIB))
        pid_write(name, self.proc.pid)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not wait_banner(self.port):
            self.stop()
            die("smtp-sink did not start; see %s" % self.err.name)

    def _read(self):
        pat = re.compile(rb"mesg=(\d+)")
        rest = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                break
            rest += chunk
            parts = re.split(rb"[\r\n]", rest)
            rest = parts.pop()
            last = None
            for p in parts:
                m = pat.search(p)
                if m:
                    last = int(m.group(1))
            if last is not None:
                with self.cond:
                    self.count = last
                    self.cond.notify_all()

    def get(self):
        with self.cond:
            return self.count

    def wait_for(self, target, deadline, stall=STALL_TIMEOUT):
        """Time at which the counter reached target, or None when the
        deadline passed or the counter stalled for `stall` seconds."""
        with self.cond:
            last, since = self.count, time.time()
            while self.count < target:
                now = time.time()
                if now >= deadline or now - since >= stall:
                    return None
                self.cond.wait(min(0.5, deadline - now))
                if self.count != last:
                    last, since = self.count, time.time()
            return time.time()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pid_remove(self.name)


# ---- moat --------------------------------------------------------------

class Moat:
    """moatd with a benchmark config: spool on disk, default durability,
    every domain to the sink through a fixed next hop."""

    label = "moat"

    def __init__(self, sink):
        self.sink = sink
        self.dir = os.path.join(OUT, "moat")
        self.proc = None
        self.broken = None

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            ensure_user("moat")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "moat.conf")
        tmap = os.path.join(self.dir, "transport")
        with open(tmap, "w") as f:
            f.write("*\tsmtp:[127.0.0.1]:%d\n" % self.sink.port)
        with open(self.conf, "w") as f:
            f.write("# bench/bench.py: moat as a relay to smtp-sink\n"
                    "hostname = moat.bench.test\n"
                    "listen = 127.0.0.1:%d\n"
                    "spool_dir = %s/spool\n"
                    "user = moat\n"
                    "relay_networks = 127.0.0.0/8\n"
                    "transport_map = %s\n"
                    "max_connections = 20000\n"
                    "max_connections_per_ip = 20000\n"
                    "log = stderr\n" % (self.port, self.dir, tmap))
        self.log = open(os.path.join(self.dir, "moatd.log"), "w")
        self.proc = subprocess.Popen(
            [MOATD, "-c", self.conf],
            stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT)
        pid_write("moatd", self.proc.pid)
        if not wait_banner(self.port):
            self.stop()
            die("moatd did not start; see %s" % self.log.name)

    def pids(self):
        return tree_pids(self.proc.pid)

    def root(self):
        return self.proc.pid

    def rss(self):
        return tree_rss(self.proc.pid)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        pid_remove("moatd")

    def restart(self):
        self.stop()
        self.start()

    def version(self):
        r = subprocess.run(["git", "-C", TOP, "describe", "--always",
                            "--dirty", "--tags"], capture_output=True,
                           text=True)
        built = time.strftime("%Y-%m-%d %H:%M:%S",
                              time.localtime(os.stat(MOATD).st_mtime))
        return "moat %s (tree at the run; moatd built %s from %s)" % (
            r.stdout.strip() or "unknown", built, BUILD)

    def roles(self):
        """pid -> role, from the master's spawn lines."""
        out = {self.proc.pid: "master"}
        with open(self.log.name) as f:
            for m in re.finditer(r"event=spawn role=(\S+) pid=(\d+)",
                                 f.read()):
                out[int(m.group(2))] = m.group(1)
        # perf reports threads by their own id
        for pid in self.pids():
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            for t in tids:
                if int(t) != pid:
                    out[int(t)] = "%s thread" % out.get(pid, "moatd")
        return out

    def logtail(self, n=5):
        try:
            with open(self.log.name) as f:
                lines = f.readlines()
        except OSError:
            return ""
        return "".join(lines[-n:])


# ---- Postfix, from the extracted Debian package -------------------------

MASTER_CF = """\
# bench/bench.py: Postfix as a relay to smtp-sink (chroot off, else the
# services of Postfix's own master.cf)
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
# bench/bench.py: Postfix as a relay to smtp-sink; defaults otherwise
# (fsync of every queue file before the 250, process limit 100)
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
daemon_directory = {lib}/sbin
command_directory = {sbin}
shlib_directory = {lib}
meta_directory = {tools}/etc/postfix
mail_owner = postfix
setgid_group = postdrop
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
  LD_LIBRARY_PATH={lib}
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
"""


class Postfix:
    """Postfix 3.7 run from bench/tools with a private config, queue
    and data directory under bench/out/postfix."""

    label = "Postfix"

    def __init__(self, sink):
        self.sink = sink
        self.dir = os.path.join(OUT, "postfix")
        self.master = None
        self.broken = None

    def env(self):
        return dict(os.environ, LD_LIBRARY_PATH=PF_LIB)

    def postfix(self, *args, check=True):
        r = subprocess.run([os.path.join(PF_SBIN, "postfix"), "-c",
                            self.conf] + list(args), env=self.env(),
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            die("postfix %s failed: %s%s%s" % (
                " ".join(args), r.stdout, r.stderr, self.logtail()))
        return r

    def start(self):
        if os.geteuid() != 0:
            die("Postfix needs root to start (its master)")
        ensure_user("postfix", "postdrop")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.conf = os.path.join(self.dir, "etc")
        os.makedirs(self.conf)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=self.dir, lib=PF_LIB,
                                   sbin=PF_SBIN, tools=TOOLS,
                                   sink=self.sink.port))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        # the top directories; postfix start creates the rest
        pw = pwd.getpwnam("postfix")
        os.makedirs(os.path.join(self.dir, "queue"), mode=0o755)
        os.makedirs(os.path.join(self.dir, "data"), mode=0o700)
        os.chown(os.path.join(self.dir, "data"), pw.pw_uid, pw.pw_gid)
        self.postfix("check", check=False)
        self.postfix("start")
        pidfile = os.path.join(self.dir, "queue", "pid", "master.pid")
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline and self.master is None:
            try:
                with open(pidfile) as f:
                    self.master = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        if self.master is None:
            die("Postfix master did not write %s" % pidfile)
        pid_write("postfix-master", self.master)
        if not wait_banner(self.port):
            self.stop()
            die("Postfix did not answer; see %s/maillog" % self.dir)

    def pids(self):
        return tree_pids(self.master)

    def root(self):
        return self.master

    def pss(self):
        return tree_pss(self.master)

    def stop(self):
        if self.master is None:
            return
        self.postfix("stop", check=False)
        deadline = time.time() + 30
        while time.time() < deadline and exe_of(self.master):
            time.sleep(0.1)
        if exe_of(self.master):
            stop_pid(self.master)
        self.master = None
        pid_remove("postfix-master")

    def restart(self):
        self.stop()
        self.start()

    def version(self):
        r = subprocess.run([os.path.join(PF_SBIN, "postconf"), "-c",
                            self.conf, "-h", "mail_version"],
                           env=self.env(), capture_output=True,
                           text=True)
        return "Postfix " + (r.stdout.strip() or "unknown")

    def logtail(self, n=5):
        try:
            with open(os.path.join(self.dir, "maillog")) as f:
                lines = f.readlines()
        except OSError:
            return ""
        return "".join(lines[-n:])


# ---- one measurement ---------------------------------------------------

def smtp_source(port, sessions, count, size):
    cmd = [os.path.join(PF_SBIN, "smtp-source"), "-s", str(sessions),
           "-m", str(count), "-l", str(size), "-f", SENDER, "-t", RCPT,
           "-M", HELO, "127.0.0.1:%d" % port]
    return subprocess.run(cmd, env=dict(os.environ, LD_LIBRARY_PATH=PF_LIB),
                          capture_output=True, text=True,
                          timeout=SOURCE_TIMEOUT)


def settle():
    """Start every run from a quiet disk."""
    os.sync()
    time.sleep(0.5)


class Result:
    def __init__(self, accept=None, relay=None, error=None, cpu=None):
        self.accept = accept
        self.relay = relay
        self.error = error
        self.cpu = cpu


# ---- where the time went: CPU of the machine, the relay, the tools -----

CLK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root):
    """CPU seconds of root's tree, including its reaped children (so a
    Postfix smtpd that exited during the run still counts)."""
    total = 0
    for p in tree_pids(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])  # u, s, cu, cs
    return total / CLK


def machine_cpu():
    """(busy, iowait, all) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy, v[4], sum(v[:8])


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Meter:
    """CPU use over one run: the machine (busy and iowait, in % of all
    its cores), the relay's tree, smtp-source and the sink (in % of one
    core), and the relay's CPU per message."""

    def __init__(self, relay_root, sink_pid):
        self.roots = (relay_root, sink_pid)
        self.t = time.time()
        self.m = machine_cpu()
        self.relay = tree_cpu(relay_root) if relay_root else 0.0
        self.sink = tree_cpu(sink_pid)
        self.gen = children_cpu()

    def stop(self, count):
        wall = max(time.time() - self.t, 1e-6)
        m = machine_cpu()
        dall = max(m[2] - self.m[2], 1)
        relay = (tree_cpu(self.roots[0]) - self.relay
                 if self.roots[0] else 0.0)
        return {"busy": 100.0 * (m[0] - self.m[0]) / dall,
                "iowait": 100.0 * (m[1] - self.m[1]) / dall,
                "relay": 100.0 * relay / wall,
                "ms_per_msg": 1000.0 * relay / count,
                "gen": 100.0 * (children_cpu() - self.gen) / wall,
                "sink": 100.0 * (tree_cpu(self.roots[1]) - self.sink)
                / wall}


def run_relay(system, sessions, size, count, profile=None):
    """(a) and (b) for one run.  A failed run leaves mail behind, so the
    system is restarted with an empty queue before the next one.  Once
    a relay has delivered nothing at all in a run, later runs measure
    its acceptance only (and restart it), instead of waiting for a
    stall each time."""
    settle()
    sink = system.sink
    base = sink.get()
    perf = None
    if profile:
        perf = subprocess.Popen(
            ["perf", "record", "-F", "999", "-g", "-o", profile, "-p",
             ",".join(str(p) for p in system.pids())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid_write("perf", perf.pid)
        time.sleep(0.5)
    meter = Meter(system.root(), sink.proc.pid)
    t0 = time.time()
    try:
        try:
            r = smtp_source(system.port, sessions, count, size)
        except subprocess.TimeoutExpired:
            return fail(system, "smtp-source timed out after %ds"
                        % SOURCE_TIMEOUT)
        t1 = time.time()
        if r.returncode != 0:
            return fail(system, "smtp-source exit %d: %s" % (
                r.returncode, (r.stderr or r.stdout).strip()[-300:]))
        if system.broken:
            system.restart()
            return Result(accept=count / (t1 - t0),
                          error="relay not measured: %s" % system.broken)
        t2 = sink.wait_for(base + count, t0 + RELAY_TIMEOUT)
        cpu = meter.stop(count)
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            try:
                perf.wait(60)
            except subprocess.TimeoutExpired:
                perf.kill()
                perf.wait()
            pid_remove("perf")
    if t2 is None:
        got = sink.get() - base
        if got == 0:
            system.broken = "delivered nothing in an earlier run"
        return fail(system, "relay incomplete: the sink counted %d of "
                    "%d messages (no progress for %ds or over %ds)"
                    % (got, count, STALL_TIMEOUT, RELAY_TIMEOUT),
                    accept=count / (t1 - t0))
    time.sleep(GRACE)
    got = sink.get() - base
    if got != count:
        return fail(system, "the sink counted %d messages for %d sent"
                    % (got, count), accept=count / (t1 - t0))
    return Result(count / (t1 - t0), count / (t2 - t0), cpu=cpu)


def fail(system, why, accept=None):
    print("bench: %s: %s" % (system.label, why), file=sys.stderr)
    tail = system.logtail()
    if tail:
        print("bench: %s log tail:\n%s" % (system.label, tail),
              file=sys.stderr)
    system.restart()
    return Result(accept=accept, error=why)


def run_ceiling(sink, sessions, size, count):
    settle()
    base = sink.get()
    meter = Meter(None, sink.proc.pid)
    t0 = time.time()
    r = smtp_source(sink.port, sessions, count, size)
    t1 = sink.wait_for(base + count, t0 + RELAY_TIMEOUT)
    cpu = meter.stop(count)
    if r.returncode != 0 or t1 is None:
        return Result(error="ceiling run failed: rc=%d, sink %d of %d"
                      % (r.returncode, sink.get() - base, count))
    time.sleep(GRACE)
    if sink.get() - base != count:
        return Result(error="sink counted %d for %d"
                      % (sink.get() - base, count))
    return Result(accept=count / (t1 - t0), relay=count / (t1 - t0),
                  cpu=cpu)


# ---- (e) latency: end of DATA -> 250 -----------------------------------

LATENCY = os.path.join(BUILD, "tools", "smtp-latency")
LAT_TIMEOUT = 300  # seconds for one latency run


def run_latency(system, sessions, count, size=1024):
    """(e): p50/p99 in ms, and the client's rate; the sink must count
    every message before the next measurement starts."""
    settle()
    base = system.sink.get()
    per = count // sessions
    try:
        r = subprocess.run(
            [LATENCY, "-t", str(LAT_TIMEOUT), "127.0.0.1",
             str(system.port), str(sessions), str(per * sessions),
             str(size), HELO, SENDER, RCPT],
            capture_output=True, text=True, timeout=LAT_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        fail(system, "latency client did not end")
        return None
    if r.returncode != 0:
        fail(system, "latency client: %s" % r.stderr.strip()[-300:])
        return None
    lats, elapsed = [], None
    for line in r.stdout.splitlines():
        word, _, val = line.partition(" ")
        if word == "lat":
            lats.append(int(val) / 1e6)
        elif word == "elapsed":
            elapsed = float(val)
    if elapsed is None or len(lats) != per * sessions:
        fail(system, "latency client: %d of %d replies timed" % (
            len(lats), per * sessions))
        return None
    lats.sort()
    out = {"n": len(lats),
           "p50": 1000 * lats[len(lats) // 2],
           "p99": 1000 * lats[min(len(lats) - 1, int(len(lats) * 0.99))],
           "rate": len(lats) / elapsed, "relay": ""}
    # the next measurement starts from an empty queue
    want = per * sessions
    if system.broken:
        system.restart()
        out["relay"] = "relay not awaited (failed before)"
    elif system.sink.wait_for(base + want,
                              time.time() + RELAY_TIMEOUT) is None:
        out["relay"] = "relay incomplete: sink %d of %d" % (
            system.sink.get() - base, want)
        fail(system, "latency run: " + out["relay"])
    return out


# ---- (d) idle sessions -------------------------------------------------

def hold_sessions(port, n, measure, timeout=180.0):
    """Open n sessions and EHLO each, call measure() while they are
    idle, then NOOP each.  Returns (sessions idle after EHLO, NOOPs
    answered 250, list of errors, measure's value)."""
    deadline = time.time() + timeout
    sel = selectors.DefaultSelector()
    phase, buf, errors = {}, {}, []

    def dead(s, why):
        errors.append(why)
        phase[s] = "dead"
        sel.unregister(s)

    def on_line(s, line):
        if line[3:4] == b"-":
            return
        code, ph = line[:3], phase[s]
        if ph == "banner" and code == b"220":
            s.sendall(b"EHLO %s\r\n" % HELO.encode())
            phase[s] = "ehlo"
        elif ph == "ehlo" and code == b"250":
            phase[s] = "idle"
        elif ph == "noop" and code == b"250":
            phase[s] = "ok"
        else:
            dead(s, "%s: %r" % (ph, line[:80]))

    def pump(busy, wait):
        """Serve events until no session is in a phase of busy (or,
        with wait False, until nothing is ready)."""
        while time.time() < deadline:
            if wait and not any(p in busy for p in phase.values()):
                return
            for key, _ in sel.select(0.2 if wait else 0) or ():
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError as e:
                    data = b""
                if not data:
                    dead(s, "closed in phase %s" % phase[s])
                    continue
                buf[s] += data
                while phase[s] != "dead" and b"\r\n" in buf[s]:
                    line, buf[s] = buf[s].split(b"\r\n", 1)
                    on_line(s, line)
            if not wait:
                return

    try:
        for i in range(n):
            if time.time() > deadline:
                errors.append("connect phase over time")
                break
            try:
                s = socket.create_connection(("127.0.0.1", port),
                                             10)
            except OSError as e:
                errors.append("connect: %s" % e)
                continue
            s.setblocking(False)
            phase[s], buf[s] = "banner", b""
            sel.register(s, selectors.EVENT_READ)
            if i % 100 == 99:
                pump(("banner", "ehlo"), False)
        pump(("banner", "ehlo"), True)
        idle = sum(1 for p in phase.values() if p == "idle")
        time.sleep(1.0)
        value = measure()
        for s in list(phase):
            if phase[s] == "idle":
                phase[s] = "noop"
                try:
                    s.sendall(b"NOOP\r\n")
                except OSError as e:
                    dead(s, "NOOP: %s" % e)
        deadline = time.time() + 60
        pump(("noop",), True)
        ok = sum(1 for p in phase.values() if p == "ok")
        return idle, ok, errors, value
    finally:
        for s in phase:
            s.close()
        sel.close()


def run_idle_moat(moat, n):
    moat.restart()
    time.sleep(0.5)
    before = moat.rss()
    idle, ok, errors, after = hold_sessions(moat.port, n, moat.rss)
    res = {"n": n, "idle": idle, "noop": ok, "errors": len(errors),
           "first_error": errors[0] if errors else "",
           "before": before, "after": after,
           "per": (after - before) / max(1, idle)}
    moat.restart()
    return res


def run_idle_postfix(pf, n=100):
    # a fresh master: smtpd processes left idle by earlier runs would
    # take the new sessions without any new memory
    pf.restart()
    time.sleep(0.5)
    before = pf.pss()
    idle, ok, errors, after = hold_sessions(pf.port, n, pf.pss)
    res = {"n": n, "idle": idle, "noop": ok, "errors": len(errors),
           "first_error": errors[0] if errors else "",
           "before": before, "after": after,
           "per": (after - before) / max(1, idle)}
    pf.restart()
    return res
# ---- the report --------------------------------------------------------

def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    return r.stdout.strip()


def machine(spool):
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-")
    mem = sh("free -g | awk '/^Mem:/ {print $2}'")
    fs = " ".join(sh("findmnt -n -o SOURCE,FSTYPE,OPTIONS -T %s"
                     % spool).split())
    dev = fs.split()[0] if fs else ""
    if len(fs.split()) > 1 and fs.split()[1] == "ext4":
        jt = sh("cat /sys/fs/ext4/%s/journal_task 2>/dev/null"
                % os.path.basename(dev))
        fs += " (%s)" % ("no journal" if jt == "<none>" else
                         "journal" if jt else "journal: ?")
    rot = sh("cat /sys/block/%s/queue/rotational 2>/dev/null"
             % os.path.basename(dev))
    return [
        "- CPU: %s, %s cores (nproc), %s GiB memory"
        % (cpu.strip(), os.cpu_count(), mem),
        "- kernel: %s" % sh("uname -srm"),
        "- spool and queue disk (both relays): %s, %s, sysfs "
        "rotational=%s" % (fs, sh("lsblk -dno SIZE,MODEL %s 2>/dev/null"
                                  % dev) or "?", rot or "?"),
        "- load average at start: %s" % sh("cut -d' ' -f1-3 "
                                            "/proc/loadavg"),
    ]


def fmt(x, digits=0):
    if x is None:
        return "FAIL"
    return "%.*f" % (digits, x)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2f" % (a / b)


def best(results, attr):
    """The fastest repetition: the ceiling is the generator's capacity,
    and on a shared VM its slower runs measure the neighbours, not it
    (a median of them would flatter the relay)."""
    vals = [getattr(r, attr) for r in results
            if r.error is None and getattr(r, attr) is not None]
    return max(vals) if vals else None


def med(results, attr):
    """Median over the repetitions; None (FAIL) if any repetition has
    no figure.  A relay run that did not complete still has its
    acceptance figure."""
    vals = [getattr(r, attr) for r in results]
    if not vals or any(v is None for v in vals):
        return None
    if attr == "relay" and any(r.error for r in results):
        return None
    return statistics.median(vals)


def table(points):
    lines = [
        "| size | C | msgs (ceiling) | moat accept/s | Postfix accept/s | "
        "moat relay/s | Postfix relay/s | ceiling/s (best) | "
        "relay moat/Postfix | relay moat/ceiling |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for (size, c, n, cn), res in points:
        ma, pa = med(res["moat"], "accept"), med(res["Postfix"],
                                                   "accept")
        mr, pr = med(res["moat"], "relay"), med(res["Postfix"],
                                                  "relay")
        ce = best(res["ceiling"], "relay")
        lines.append("| %s | %d | %d (%d) | %s | %s | %s | %s | %s | %s "
                     "| %s |" % (sizename(size), c, n, cn, fmt(ma), fmt(pa),
                        fmt(mr), fmt(pr), fmt(ce), ratio(mr, pr),
                        ratio(mr, ce)))
    return lines


def cpu_med(results, key):
    vals = [r.cpu[key] for r in results if r.error is None and r.cpu]
    return statistics.median(vals) if vals else None


def limits_table(points):
    """What limited each point: a machine near 100% busy is CPU-bound;
    well below it, the relay waits (fsync, its own pacing) or the
    generator is the limit."""
    lines = [
        "| size | C | moat run: machine busy / iowait | moat CPU "
        "(1 core = 100%) | moat CPU ms/msg | smtp-source + sink | "
        "Postfix run: machine busy / iowait | Postfix CPU | Postfix CPU "
        "ms/msg | ceiling run: machine busy |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]

    def pct(x):
        return "-" if x is None else "%.0f%%" % x

    def ms(x):
        return "-" if x is None else "%.2f" % x
    for (size, c, n, cn), res in points:
        m, p, ce = res["moat"], res["Postfix"], res["ceiling"]
        gen = (None if cpu_med(m, "gen") is None else
               cpu_med(m, "gen") + cpu_med(m, "sink"))
        lines.append("| %s | %d | %s / %s | %s | %s | %s | %s / %s | %s "
                     "| %s | %s |" % (
                         sizename(size), c, pct(cpu_med(m, "busy")),
                         pct(cpu_med(m, "iowait")), pct(cpu_med(m, "relay")),
                         ms(cpu_med(m, "ms_per_msg")), pct(gen),
                         pct(cpu_med(p, "busy")), pct(cpu_med(p, "iowait")),
                         pct(cpu_med(p, "relay")),
                         ms(cpu_med(p, "ms_per_msg")),
                         pct(cpu_med(ce, "busy"))))
    return lines


def ceiling_runs(points, size, c):
    """The ceiling's rate in each repetition of a point: on a VM it
    varies a lot from run to run, so the report shows them all."""
    for (sz, cc, n, cn), res in points:
        if sz == size and cc == c:
            return [r.relay for r in res["ceiling"] if r.error is None]
    return []


def moat_runs(points, size, c):
    """moat's relay rate in each repetition of a point"""
    for (sz, cc, n, cn), res in points:
        if sz == size and cc == c:
            return [r.relay for r in res["moat"] if r.error is None]
    return []


def targets(points, idle, pairs=()):
    """Issue 7's targets, from this run's figures."""
    out = []

    def point(size, c):
        for (sz, cc, n, cn), res in points:
            if sz == size and cc == c:
                return (med(res["moat"], "relay"),
                        med(res["Postfix"], "relay"),
                        best(res["ceiling"], "relay"))
        return None

    def verdict(ok):
        return "**met**" if ok else "**not met**"
    for size, want in ((1024, 5.0), (20 * 1024, 3.0)):
        p = point(size, 50)
        if p is None:
            continue
        m, pf, ce = p
        if m is None or pf is None:
            out.append("- relay %s x 50 >= %gx Postfix: no figure"
                       % (sizename(size), want))
        else:
            out.append("- relay %s x 50 >= %gx Postfix: %.2fx, %s"
                       % (sizename(size), want, m / pf,
                          verdict(m >= want * pf)))
        if size == 1024:
            if m is None or ce is None:
                out.append("- relay 1 KiB x 50 >= 50% of the ceiling: "
                           "no figure")
            else:
                runs = ceiling_runs(points, size, 50)
                mruns = moat_runs(points, size, 50)
                paired = [(a.relay, b.relay) for a, b in pairs
                          if a.error is None and b.error is None and
                          b.relay]
                runs += [b for a, b in paired]
                mruns += [a for a, b in paired]
                m, ce = statistics.median(mruns), max(runs)
                out.append("- relay 1 KiB x 50 >= 50%% of the ceiling "
                           "(moat's median over its %d runs against the "
                           "fastest of the ceiling's %d): %.0f%%, %s (the "
                           "ceiling's runs: %s msg/s; against their "
                           "median, %.0f%%%s)"
                           % (len(mruns), len(runs), 100 * m / ce,
                              verdict(m >= 0.5 * ce),
                              ", ".join(fmt(x) for x in runs),
                              100 * m / statistics.median(runs),
                              "; the median of the %d turns' own ratios, "
                              "%.0f%%" % (len(paired), 100 *
                                          statistics.median(a / b for a, b
                                                            in paired))
                              if paired else ""))
    for name, r in idle:
        if name != "moat":
            continue
        out.append("- <= 16 KiB per idle session at %d: %.1f KiB, %s"
                   % (r["n"], r["per"], verdict(r["per"] <= 16)))
        if r["n"] >= 10000:
            ok = r["idle"] == r["n"] and r["noop"] == r["n"] and \
                not r["errors"]
            out.append("- %d concurrent sessions without errors: %d "
                       "idle after EHLO, %d NOOPs answered, %d errors, %s"
                       % (r["n"], r["idle"], r["noop"], r["errors"],
                          verdict(ok)))
    return out


def failures(points):
    out = []
    for (size, c, n, cn), res in points:
        for name, rs in res.items():
            for i, r in enumerate(rs):
                if r.error:
                    out.append("- %s, %s x C=%d, repetition %d: "
                               "%s" % (name, sizename(size), c,
                                       i + 1, r.error))
    return out


def report(title, mode, info, versions, points, lat, idle, elapsed,
           profile_note, pairs=()):
    md = ["# %s" % title, "",
          "Made by `%s` (bench/bench.py %s) in %.0f s.  Rates are "
          "messages per second, medians of the repetitions; a relay "
          "run ends when smtp-sink has counted exactly its messages."
          % ({"full": "make bench", "quick": "make bench-quick"}.get(
              mode, "bench/bench.py " + mode),
             mode, elapsed), "",
          "## Machine and versions", ""] + info + \
         ["- load average at end: %s" % sh("cut -d' ' -f1-3 "
                                           "/proc/loadavg")] + \
         ["- %s" % v for v in versions]
    if points:
        md += ["", "## Acceptance (a), end-to-end relay (b), ceiling (c)",
               ""] + table(points)
        md += ["",
               "*accept*: messages / time until smtp-source had every 250 "
               "and quit (one message per connection, smtp-source's "
               "default).  *relay*: messages / time from the start until "
               "the sink counted them all.  *ceiling*: smtp-source "
               "straight into smtp-sink, with more messages (in "
               "brackets) so that its start does not dominate; the "
               "fastest of its repetitions, since on a shared VM it "
               "varies up to threefold from run to run (moat and "
               "Postfix: medians)."]
        md += ["", "## What limited each point", ""] + \
            limits_table(points) + [
            "", "Medians over the repetitions, from the start of a run "
            "to the sink's last count.  *machine busy*: user + system + "
            "interrupt time of all %d cores (100%% = every core busy); "
            "*iowait*: idle while waiting for the disk.  Relay CPU "
            "(all its processes and threads, in %% of one core) and "
            "smtp-source + smtp-sink (the generator) show who used the "
            "machine.  Near 100%% busy the point is CPU-bound; well "
            "below, the relay waits (fsync, its own scheduling) or the "
            "sessions are too few to fill the machine." % os.cpu_count()]
    tg = targets(points, idle, pairs)
    if tg:
        md += ["", "## Targets of issue 7", ""] + tg
    if pairs:
        md += ["", "## The ceiling target, in turns (1 KiB, C=50)", "",
               "| turn | moat relay/s | ceiling/s | moat/ceiling |",
               "|--:|--:|--:|--:|"]
        for i, (m, c) in enumerate(pairs):
            ok = m.error is None and c.error is None and c.relay
            md.append("| %d | %s | %s | %s |" % (
                i + 1, fmt(m.relay), fmt(c.relay),
                "%.2f" % (m.relay / c.relay) if ok else "-"))
        md += ["", "After the table's repetitions, moat and the ceiling "
               "ran in turn %d more times with the ceiling's message "
               "count.  The target compares moat's median over all its "
               "runs at this point with the fastest of all the "
               "ceiling's runs there." % len(pairs)]
    fl = failures(points)
    if fl:
        md += ["", "Failed runs:", ""] + fl
    if lat:
        md += ["", "## Latency (e): end of DATA to 250, 1 KiB, C=50", "",
               "| system | messages | p50 ms | p99 ms | client rate/s | "
               "relay to the sink |",
               "|---|--:|--:|--:|--:|---|"]
        for name, r in lat.items():
            if r is None:
                md.append("| %s | FAIL | | | | |" % name)
            else:
                md.append("| %s | %d | %.2f | %.2f | %.0f | %s |" % (
                    name, r["n"], r["p50"], r["p99"], r["rate"],
                    r["relay"] or "complete"))
        md += ["", "One persistent session per client session, MAIL, "
               "RCPT and DATA in turn (no pipelining); the time from the "
               "write of the \".\" to the read of the 250, measured by "
               "bench/smtp-latency.c (a C client using a few "
               "microseconds per message, so the figure is the "
               "server's)."]
    if idle:
        md += ["", "## Idle sessions (d)", "",
               "| system | sessions | idle after EHLO | NOOP 250 | "
               "errors | memory before | after | per session |",
               "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for name, r in idle:
            md.append("| %s | %d | %d | %d | %d | %d KiB | %d KiB | "
                      "%.1f KiB |" % (name, r["n"], r["idle"],
                                      r["noop"], r["errors"],
                                      r["before"], r["after"],
                                      r["per"]))
        md += ["", "moat: RSS of moatd and all its roles.  Postfix: PSS "
               "of its master and all its processes (one smtpd per "
               "session; RSS would count the shared libraries once per "
               "process), at its default process limit of 100."]
        errs = [(n, r["first_error"]) for n, r in idle
                if r["first_error"]]
        for n, e in errs:
            md.append("- %s first error: %s" % (n, e))
    if profile_note:
        md += ["", profile_note]
    return md


# ---- perf --------------------------------------------------------------

def ensure_perf():
    if shutil.which("perf"):
        return True
    subprocess.run(["apt-get", "install", "-y", "-q", "linux-perf"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return shutil.which("perf") is not None


def perf_report(data, *args):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio",
                        "--no-children"] + list(args),
                       capture_output=True, text=True, timeout=300)
    return [ln.rstrip() for ln in r.stdout.splitlines()
            if ln.strip() and not ln.startswith("#")]


def perf_summary(data, roles):
    """Where moat's CPU time went: by role, by object, by symbol, the
    largest user-space symbols (issue 7: none above 15% that is not a
    system call, crypto or the kernel), and by system call."""
    out = ["", "## By object", "", "```"]
    out += perf_report(data, "-g", "none", "--sort", "dso",
                       "--percent-limit", "0.1")
    out += ["```", "", "## By role and object", "", "```"]
    for ln in perf_report(data, "-g", "none", "--sort", "pid,dso",
                          "--percent-limit", "1"):
        m = re.search(r"(\d+):\S+", ln)
        if m and int(m.group(1)) in roles:
            ln = ln.replace(m.group(0), "%s(%s)" % (
                roles[int(m.group(1))], m.group(1)))
        out.append(ln)
    out += ["```", "", "## By symbol (at least 0.5%)", "", "```"]
    syms = perf_report(data, "-g", "none", "--sort", "dso,sym",
                       "--percent-limit", "0.5")
    out += syms + ["```", "", "## Largest user-space symbols", ""]
    user = []
    for ln in syms:
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[\.\]\s+(.*)", ln)
        if m:
            user.append((float(m.group(1)), m.group(2), m.group(3)))
    if not user:
        out.append("None at 0.5% or more.")
    for pct, dso, sym in user[:10]:
        out.append("- %.2f%% %s in %s" % (pct, sym, dso))
    out += ["", "## System calls (inclusive: the call and all the kernel "
            "work under it)", "", "```"]
    for ln in perf_report(data, "--children", "-g", "none", "--sort",
                          "sym", "--percent-limit", "0.5"):
        if re.search(r"\[k\] (__x64_sys_\w+|__do_sys_\w+|ksys_\w+|"
                     r"__sys_\w+|do_writev|do_readv|do_syscall_64)$", ln):
            out.append(ln)
    out += ["```"]
    return out


# ---- main --------------------------------------------------------------

def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["full", "quick", "idle"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the message counts (full mode)")
    p.add_argument("--profile", action="store_true",
                   help="perf profile of moat's 1 KiB x 50 relay runs")
    p.add_argument("--messages", type=int, default=0,
                   help="messages per run in quick mode (default %d)"
                   % QUICK_COUNT)
    p.add_argument("--skip-idle", action="store_true")
    args = p.parse_args()
    if not 1 <= args.reps <= 9 or not 0.01 <= args.scale <= 10:
        die("--reps 1..9, --scale 0.01..10")
    if os.geteuid() != 0:
        die("run as root: Postfix's master needs it")
    for prog in ("moatd", "tools/smtp-latency"):
        if not os.access(os.path.join(BUILD, prog), os.X_OK):
            die("no %s/%s: run make first" % (BUILD, prog))
    r = subprocess.run(["sh", os.path.join(HERE, "get-tools.sh")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        die("cannot fetch Postfix's tools: " + r.stderr)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 10000 + 200:
        print("bench: RLIMIT_NOFILE hard limit %d: fewer idle sessions"
              % hard, file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    os.chmod(OUT, 0o755)
    stop_stale()
    if os.path.exists(MOATD):
        os.unlink(MOATD)
    shutil.copy2(os.path.join(BUILD, "moatd"), MOATD)
    begin = time.time()

    if args.mode == "full":
        grid = [(s, c, max(c, int(COUNTS[s][c] * args.scale)))
                for s in SIZES for c in SESSIONS]
        scale = args.scale
        lat_n = LAT_MESSAGES
    elif args.mode == "idle":
        grid = []
        lat_n = 0
        scale = 1
    else:
        n = min(max(args.messages, 50), 100000) if args.messages \
            else QUICK_COUNT
        grid = [(1024, 50, n)]
        lat_n = min(LAT_MESSAGES_QUICK, n)
        scale = n / QUICK_COUNT
    profile_note = None
    perf_data = prof_run = roles = None
    if args.profile:
        if ensure_perf():
            perf_data = os.path.join(OUT, "perf.data")
        else:
            print("bench: perf not available: no profile",
                  file=sys.stderr)

    sinks = [Sink("sink-moat"), Sink("sink-postfix"), Sink("sink-ceiling")]
    moat = Moat(sinks[0])
    pf = Postfix(sinks[1])
    systems = []
    points, lat, idle, pairs = [], {}, [], []
    try:
        moat.start()
        systems.append(moat)
        pf.start()
        systems.append(pf)
        info = machine(moat.dir)
        versions = [moat.version(), pf.version()]
        for size, c, n in grid:
            cn = max(n, int(CEILING_MIN[size] * scale))
            res = {"moat": [], "Postfix": [], "ceiling": []}
            for rep in range(args.reps):
                order = (moat, pf) if rep % 2 == 0 else (pf, moat)
                for sysm in order:
                    res[sysm.label].append(run_relay(sysm, c, size, n))
                res["ceiling"].append(
                    run_ceiling(sinks[2], c, size, cn))
                print("bench: %s C=%d n=%d rep %d: moat %s/%s "
                      "Postfix %s/%s ceiling %s" % (
                          sizename(size), c, n, rep + 1,
                          fmt(res["moat"][-1].accept),
                          fmt(res["moat"][-1].relay),
                          fmt(res["Postfix"][-1].accept),
                          fmt(res["Postfix"][-1].relay),
                          fmt(res["ceiling"][-1].relay)),
                      file=sys.stderr)
            points.append(((size, c, n, cn), res))
        for size, c, n in grid:
            if size != 1024 or c != 50:
                continue
            cn = max(n, int(CEILING_MIN[size] * scale))
            for i in range(CEILING_PAIRS):
                pair = (run_relay(moat, c, size, cn),
                        run_ceiling(sinks[2], c, size, cn))
                pairs.append(pair)
                print("bench: 1 KiB C=50 pair %d of %d: moat %s "
                      "ceiling %s" % (i + 1, CEILING_PAIRS,
                                      fmt(pair[0].relay),
                                      fmt(pair[1].relay)),
                      file=sys.stderr)
        if perf_data:
            # a run of its own, so that perf does not disturb the table
            roles = moat.roles()
            prof_run = run_relay(moat, 50, 1024, PROFILE_COUNT, perf_data)
        if lat_n:
            lat["moat"] = run_latency(moat, 50, lat_n)
            lat["Postfix"] = run_latency(pf, 50, lat_n)
        if args.mode != "quick" and not args.skip_idle:
            for n in (1000, 10000):
                idle.append(("moat", run_idle_moat(moat, n)))
            idle.append(("Postfix", run_idle_postfix(pf, 100)))
    finally:
        for s in systems:
            s.stop()
        for s in sinks:
            s.stop()

    if perf_data and os.path.exists(perf_data):
        prof = ["# Profile of moat, 1 KiB x C=50 relay run", "",
                "`perf record -F 999 -g` on moatd and all its roles "
                "during a run of %d messages of its own (not one of the "
                "table's) by bench/bench.py %s --profile: accept %s, "
                "relay %s msg/s%s.  %s.  `perf report --no-children`; "
                "percentages are of moat's samples." % (
                    PROFILE_COUNT, args.mode, fmt(prof_run.accept),
                    fmt(prof_run.relay),
                    " (%s)" % prof_run.error if prof_run.error else "",
                    versions[0])] + perf_summary(perf_data, roles)
        with open(os.path.join(HERE, "PROFILE.md"), "w") as f:
            f.write("\n".join(prof) + "\n")
        print("\n".join(prof))
        profile_note = "Profile of the 1 KiB x 50 run: bench/PROFILE.md."

    md = report({"full": "moat vs Postfix: relay benchmark",
                 "quick": "moat vs Postfix: quick benchmark (1 KiB, C=50)",
                 "idle": "moat vs Postfix: idle sessions"}[args.mode],
                args.mode, info, versions, points, lat, idle,
                time.time() - begin, profile_note, pairs)
    dest = (os.path.join(HERE, "RESULTS.md") if args.mode == "full"
            else os.path.join(OUT, args.mode + ".md"))
    with open(dest, "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print("\nbench: written to %s" % os.path.relpath(dest, TOP))


if __name__ == "__main__":
    main()
