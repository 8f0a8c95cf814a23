"""tls.py - what TLS costs moat (issue 4's figures).

  bench/tls.py [--seconds 10] [--messages 3000]

(1) Handshakes per second on moat's TLS listener: `openssl s_time -new`
    (a full handshake per connection, no session reuse) against moat's
    implicit-TLS listener (smtps_listen), which runs the same code and
    SSL_CTX as STARTTLS on the MX listener.  TLS 1.3 with ECDHE (X25519),
    for an ECDSA P-256 and an RSA-2048 certificate.  Two s_time clients
    run at once (the machine's two cores; smtp-in is one process).

(2) The cost of TLS on the relay path: smtp-source -> moat A -> moat B ->
    smtp-sink, 1 KiB messages, 50 sessions; A delivers to B by
    smtp:[127.0.0.1]:PB.  Once with B offering STARTTLS (A's default
    outbound_tls = may uses it: every connection A opens is encrypted),
    once with B without a certificate (plain).  Relay rate = messages /
    time until the sink counted all of them.

Uses bench.py's helpers (smtp-source and smtp-sink from bench/tools,
fetched by get-tools.sh).  Everything on 127.0.0.1, bounded in time;
every process is stopped by its PID.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

OUT = os.path.join(bench.OUT, "tls")
MOATD = os.path.join(OUT, "moatd")     # a copy: rebuilds change nothing


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def make_cert(kind):
    key = os.path.join(OUT, "%s.key" % kind)
    crt = os.path.join(OUT, "%s.crt" % kind)
    alg = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
           if kind == "ecdsa" else ["-newkey", "rsa:2048"])
    sh("openssl", "req", "-x509", *alg, "-nodes", "-days", "2",
       "-subj", "/CN=moat.bench.test", "-keyout", key, "-out", crt)
    os.chmod(key, 0o644)    # read by the root master only; bench dir
    return crt, key


class Moatd:
    """One moatd with extra config lines; stopped by PID."""

    def __init__(self, name, extra, transport=None):
        self.name = name
        self.dir = os.path.join(OUT, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = bench.free_port()
        conf = os.path.join(self.dir, "moat.conf")
        lines = ["hostname = %s.bench.test" % name,
                 "listen = 127.0.0.1:%d" % self.port,
                 "spool_dir = %s/spool" % self.dir,
                 "user = moat", "relay_networks = 127.0.0.0/8",
                 "max_connections = 20000",
                 "max_connections_per_ip = 20000", "log = stderr"]
        if transport:
            tmap = os.path.join(self.dir, "transport")
            with open(tmap, "w") as f:
                f.write("*\t%s\n" % transport)
            lines.append("transport_map = %s" % tmap)
        lines += extra
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(self.dir, "moatd.log"), "w")
        self.proc = subprocess.Popen([MOATD, "-c", conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT)
        bench.pid_write("tls-" + name, self.proc.pid)
        if not bench.wait_banner(self.port):
            self.stop()
            bench.die("moatd %s did not start; see %s"
                      % (name, self.log.name))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        bench.pid_remove("tls-" + self.name)


def handshakes(kind, seconds):
    crt, key = make_cert(kind)
    port = bench.free_port()
    m = Moatd("hs-" + kind, ["smtps_listen = 127.0.0.1:%d" % port,
                             "tls_cert_file = %s" % crt,
                             "tls_key_file = %s" % key])
    try:
        time.sleep(0.5)
        cmd = ["openssl", "s_time", "-connect", "127.0.0.1:%d" % port,
               "-new", "-tls1_3", "-time", str(seconds)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        total = 0.0
        for p in procs:
            out, _ = p.communicate(timeout=seconds + 60)
            mt = re.search(r"(\d+) connections in (\d+) real seconds", out)
            if not mt:
                bench.die("s_time said:\n%s" % out[-800:])
            total += int(mt.group(1)) / max(int(mt.group(2)), 1)
        cipher = ""
        r = subprocess.run(["openssl", "s_client", "-connect",
                            "127.0.0.1:%d" % port, "-tls1_3", "-brief"],
                           input="", capture_output=True, text=True,
                           timeout=10)
        for line in (r.stdout + r.stderr).splitlines():
            if line.startswith(("Protocol version", "Ciphersuite",
                                "Peer Temp Key", "Server Temp Key",
                                "Negotiated TLS1.3 group")):
                cipher += line.strip() + "; "
        return total, cipher
    finally:
        m.stop()


def relay(tls, count):
    crt, key = make_cert("ecdsa")
    sink = bench.Sink("tls-sink")
    b = a = None
    try:
        extra = ["tls_cert_file = %s" % crt, "tls_key_file = %s" % key] \
            if tls else []
        b = Moatd("relay-b", extra, "smtp:[127.0.0.1]:%d" % sink.port)
        a = Moatd("relay-a", [], "smtp:[127.0.0.1]:%d" % b.port)
        bench.settle()
        base = sink.get()
        t0 = time.time()
        r = bench.smtp_source(a.port, 50, count, 1024)
        if r.returncode != 0:
            bench.die("smtp-source: %s" % (r.stderr or r.stdout)[-300:])
        t2 = sink.wait_for(base + count, t0 + 600)
        if t2 is None:
            bench.die("relay incomplete: %d of %d"
                      % (sink.get() - base, count))
        with open(a.log.name) as f:
            log = f.read()
        used = len(re.findall(r"event=smtp_connect .*tls=TLSv1\.3", log))
        return count / (t2 - t0), used
    finally:
        for m in (a, b):
            if m is not None:
                m.stop()
        sink.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--messages", type=int, default=3000)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    shutil.copy(os.path.join(bench.BUILD, "moatd"), MOATD)
    os.makedirs(bench.PIDS, exist_ok=True)
    if os.geteuid() == 0:
        bench.ensure_user("moat")
    rows = []
    for kind in ("ecdsa", "rsa"):
        rate, info = handshakes(kind, args.seconds)
        rows.append("| full TLS 1.3 handshakes/s, %s certificate | %.0f |"
                    " %s |" % (kind.upper(), rate, info.strip("; ")))
    plain, _ = relay(False, args.messages)
    enc, used = relay(True, args.messages)
    rows.append("| relay A->B->sink, 1 KiB x 50, plain | %.0f msg/s | |"
                % plain)
    rows.append("| relay A->B->sink, 1 KiB x 50, STARTTLS A->B | %.0f "
                "msg/s | %d TLS connections; %.0f%% of plain |"
                % (enc, used, 100.0 * enc / plain))
    print("| measure | figure | notes |\n| --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
