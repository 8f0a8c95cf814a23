#!/usr/bin/python3
"""moatbench.py - figures for moat's acceptance path.

  bench/moatbench.py accept [--sessions 50] [--messages 5000] [--size 1024]
      messages/s accepted durably (250 after fsync), driven by Postfix's
      smtp-source, into a moatd whose spool is on the real disk under
      bench/out/ (never tmpfs) and which delivers to Maildirs.

  bench/moatbench.py idle [--conns 1000]
      RSS growth of the smtp-in process per idle session after EHLO.

Every load is bounded in count and time; every server listens on
127.0.0.1 only.  Results are printed as Markdown lines.
"""
import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BUILD = os.environ.get("MOAT_BUILD", os.path.join(TOP, "build"))
OUT = os.path.join(HERE, "out")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Moat:
    """A moatd with a benchmark config in bench/out/NAME."""

    def __init__(self, name, extra=""):
        self.dir = os.path.join(OUT, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "mail"))
        self.port = free_port()
        user = "moat"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home",
                                "--shell", "/usr/sbin/nologin", user],
                               check=True)
            pw = pwd.getpwnam(user)
            os.chown(os.path.join(self.dir, "mail"), pw.pw_uid, pw.pw_gid)
            for d in (OUT, self.dir):
                os.chmod(d, 0o755)
        self.conf = os.path.join(self.dir, "moat.conf")
        tmap = os.path.join(self.dir, "transport")
        with open(tmap, "w") as f:
            f.write("bench.test maildir:%s/mail/%%d/%%u\n" % self.dir)
        with open(self.conf, "w") as f:
            f.write("hostname = mx.bench.test\n"
                    "listen = 127.0.0.1:%d\n"
                    "spool_dir = %s/spool\n"
                    "user = %s\n"
                    "local_domains = bench.test\n"
                    "transport_map = %s\n"
                    "max_connections = 20000\n"
                    "max_connections_per_ip = 20000\n"
                    "%s" % (self.port, self.dir, user, tmap, extra))
        self.log = open(os.path.join(self.dir, "moatd.log"), "w+")
        self.proc = subprocess.Popen([os.path.join(BUILD, "moatd"), "-c",
                                      self.conf], stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        sys.exit("moatd did not start; see %s" % self.log.name)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def role_pid(self, role):
        m = re.findall(r"event=spawn role=%s pid=(\d+)" % re.escape(role),
                       self.logtext())
        return int(m[-1]) if m else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def count_delivered(maildir):
    n = 0
    for root, dirs, files in os.walk(maildir):
        if os.path.basename(root) == "new":
            n += len(files)
    return n


def bench_accept(args):
    pf = os.path.join(HERE, "pf.sh")
    m = Moat("accept")
    try:
        t0 = time.time()
        r = subprocess.run(["sh", pf, "smtp-source", "-s", str(args.sessions),
                            "-m", str(args.messages), "-l", str(args.size),
                            "-f", "sender@client.test", "-t",
                            "user@bench.test", "-M", "client.test",
                            "127.0.0.1:%d" % m.port],
                           capture_output=True, text=True,
                           timeout=args.timeout)
        t1 = time.time()
        accepted = len(re.findall(r"event=accepted ", m.logtext()))
        rate = args.messages / (t1 - t0)
        print("| accept | %d B | C=%d | %d msgs | %.2f s | %.0f msg/s |"
              " accepted in log: %d | smtp-source rc=%d |"
              % (args.size, args.sessions, args.messages, t1 - t0, rate,
                 accepted, r.returncode))
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
        # the end-to-end figure for local delivery: until all are in Maildirs
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            n = count_delivered(os.path.join(m.dir, "mail"))
            if n >= args.messages:
                break
            time.sleep(0.05)
        t2 = time.time()
        print("| accept+maildir | %d B | C=%d | delivered %d | %.2f s |"
              " %.0f msg/s |" % (args.size, args.sessions, n, t2 - t0,
                                 n / (t2 - t0)))
    finally:
        m.stop()


def bench_idle(args):
    m = Moat("idle")
    socks = []
    try:
        pid = m.role_pid("smtp-in")
        time.sleep(0.3)
        before = rss_kib(pid)
        for i in range(args.conns):
            s = socket.create_connection(("127.0.0.1", m.port), 5)
            s.recv(512)
            s.sendall(b"EHLO client.test\r\n")
            socks.append(s)
        for s in socks:
            buf = b""
            while not re.search(rb"(^|\n)250 [^\n]*\n", buf):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        time.sleep(0.5)
        after = rss_kib(pid)
        print("| idle | %d sessions after EHLO | smtp-in RSS %d -> %d KiB |"
              " %.2f KiB/session |" % (args.conns, before, after,
                                       (after - before) / args.conns))
    finally:
        for s in socks:
            s.close()
        m.stop()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("accept")
    a.add_argument("--sessions", type=int, default=50)
    a.add_argument("--messages", type=int, default=5000)
    a.add_argument("--size", type=int, default=1024)
    a.add_argument("--timeout", type=int, default=300)
    i = sub.add_parser("idle")
    i.add_argument("--conns", type=int, default=1000)
    args = p.parse_args()
    if args.cmd == "idle":
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, args.conns * 2 + 100)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        bench_idle(args)
    else:
        bench_accept(args)


if __name__ == "__main__":
    main()
