#!/usr/bin/python3
"""content.py - relay throughput of moat with content checks off, with
MIME + patterns (content_filter, a content_rules file), and with clamd
as well (issue 6, "Figures for your note").

  bench/content.py [--messages 1000] [--sessions 10]

Same messages for every run: 20 KiB, a text part and one base64
attachment, built with Python's email package and sent with smtplib
from a bounded number of threads (smtp-source cannot attach files).
moat relays everything to Postfix's smtp-sink (bench.Sink); a run is
timed from the first connection until the sink counted every message.
The figures are printed, not asserted.  clamd (Debian's) runs on a
loopback TCP port with a one-signature database made here.  Every
process started here is stopped by its PID.
"""
import argparse
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import email.policy
from email.message import EmailMessage

import bench

EICAR_HEX = ("58354f2150254041505b345c505a58353428505e2937434329377d2445494341"
             "522d5354414e444152442d414e544956495255532d544553542d46494c452124"
             "482b482a")
RULES = ("invoice_scam body inbound reject /wire\\s+transfer\\s+urgent/i\n"
         "bad_subject headers any tag /^Subject:.*\\bviagra\\b/im\n"
         "macro attachment any reject /AutoOpen|Document_Open/\n")


def message(i):
    m = EmailMessage()
    m["From"] = bench.SENDER
    m["To"] = bench.RCPT
    m["Subject"] = "report %d" % i
    m.set_content("Hello,\n\nthe figures are attached.\n" * 20)
    # a harmless type that attachment_block does not list
    blob = b"%PDF-1.4\n" + (b"%d 0 obj << /Length 64 >> stream\n" % i +
                            bytes(range(32, 96)) + b"\nendstream\n") * 140
    m.add_attachment(blob, maintype="application", subtype="pdf",
                     filename="figures-%d.pdf" % i)
    return m.as_bytes(policy=email.policy.SMTP)


MOATD = os.path.join(bench.OUT, "moatd-content")


class ContentMoat:
    """moatd as bench.Moat configures it, plus extra config lines; its
    own directory, binary copy and pid file, so that a bench.py run
    going on at the same time is left alone"""

    def __init__(self, sink, extra):
        self.sink = sink
        self.extra = extra
        self.dir = os.path.join(bench.OUT, "content-moat")
        self.proc = None

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            bench.ensure_user("moat")
        self.port = bench.free_port()
        self.conf = os.path.join(self.dir, "moat.conf")
        tmap = os.path.join(self.dir, "transport")
        with open(tmap, "w") as f:
            f.write("*\tsmtp:[127.0.0.1]:%d\n" % self.sink.port)
        with open(self.conf, "w") as f:
            f.write("hostname = moat.bench.test\n"
                    "listen = 127.0.0.1:%d\n"
                    "spool_dir = %s/spool\n"
                    "user = moat\n"
                    "relay_networks = 127.0.0.0/8\n"
                    "transport_map = %s\n"
                    "log = stderr\n%s" % (self.port, self.dir, tmap,
                                          self.extra))
        self.log = open(os.path.join(self.dir, "moatd.log"), "w")
        self.proc = subprocess.Popen(
            [MOATD, "-c", self.conf], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT)
        bench.pid_write("moatd-content", self.proc.pid)
        if not bench.wait_banner(self.port):
            self.stop()
            bench.die("moatd did not start; see %s" % self.log.name)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        bench.pid_remove("moatd-content")


def clamd_start():
    d = os.path.join(bench.OUT, "content-clamd")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "db"))
    with open(os.path.join(d, "db", "moat.ndb"), "w") as f:
        f.write("Moat.Test.EICAR:0:*:%s\n" % EICAR_HEX)
    port = bench.free_port()
    conf = os.path.join(d, "clamd.conf")
    with open(conf, "w") as f:
        f.write("Foreground yes\nTCPSocket %d\nTCPAddr 127.0.0.1\n"
                "DatabaseDirectory %s/db\nLogFile %s/clamd.log\n"
                "MaxThreads 8\n" % (port, d, d))
    p = subprocess.Popen(["clamd", "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.STDOUT)
    bench.pid_write("clamd-content", p.pid)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1):
                return p, port
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.2)
    clamd_stop(p)
    bench.die("clamd did not start")


def clamd_stop(p):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    bench.pid_remove("clamd-content")


def run(label, extra, msgs, sessions):
    sink = bench.Sink("content-sink")
    moat = ContentMoat(sink, extra)
    moat.start()
    try:
        base = sink.get()
        per = [msgs[i::sessions] for i in range(sessions)]
        errors = []

        def client(batch):
            try:
                with smtplib.SMTP("127.0.0.1", moat.port, timeout=60) as s:
                    s.ehlo(bench.HELO)
                    for m in batch:
                        s.sendmail(bench.SENDER, [bench.RCPT], m)
            except (OSError, smtplib.SMTPException) as e:
                errors.append(str(e))

        t0 = time.time()
        threads = [threading.Thread(target=client, args=(b,))
                   for b in per]
        for t in threads:
            t.start()
        for t in threads:
            t.join(bench.RELAY_TIMEOUT)
        done = sink.wait_for(base + len(msgs), t0 + bench.RELAY_TIMEOUT)
        if errors or done is None:
            print("%-22s failed: %s" % (label, errors[:3] or "stalled"))
            return
        print("%-22s %6.1f msg/s  (%d messages, %d sessions, %.2f s)"
              % (label, len(msgs) / (done - t0), len(msgs), sessions,
                 done - t0))
    finally:
        moat.stop()
        sink.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=10)
    a = ap.parse_args()
    n = max(1, min(a.messages, 5000))
    c = max(1, min(a.sessions, 50))
    os.makedirs(bench.PIDS, exist_ok=True)
    shutil.copy(os.path.join(bench.BUILD, "moatd"), MOATD)
    msgs = [message(i) for i in range(n)]
    rules = os.path.join(bench.OUT, "content.rules")
    with open(rules, "w") as f:
        f.write(RULES)
    print("20 KiB messages with one attachment, relay to smtp-sink")
    run("content checks off", "", msgs, c)
    mime = "content_filter = yes\ncontent_rules = %s\n" % rules
    run("MIME + patterns", mime, msgs, c)
    p, port = clamd_start()
    try:
        run("MIME + patterns + clamd", mime + "clamd_socket = 127.0.0.1:%d\n"
            "clamd = tempfail\n" % port, msgs, c)
    finally:
        clamd_stop(p)


if __name__ == "__main__":
    sys.exit(main())
