#!/usr/bin/env python3
"""run.py - golden SMTP session scripts for smtp-in (STYLE.md 11).

Each NAME.in is one session.  Lines:

    # comment
    N BYTES     send BYTES (Python escapes: \\r \\n \\x00 ...), then read
                N complete replies (0: do not wait)
    tls         wrap the connection in TLS (after a 220 to STARTTLS)
    eof         the server must close the connection now

The transcript (greeting and every reply, a multi-line reply as its
lines) is compared with NAME.ref after masking queue ids ("queued as
QID").  On a difference NAME.out is written.  --update rewrites the
.ref files.

The scripts expect a server configured as in README (hostname
mx.example.test, local_domains example.test, relay_networks
127.0.0.2/32, message_size_limit 100K, max_recipients 5, max_errors 5).

Usage: run.py --port PORT [--host 127.0.0.1] [--update] [NAME ...]
Prints "N passed, M failed"; exits 1 if M > 0.
"""

import argparse
import codecs
import pathlib
import re
import socket
import ssl
import sys

HERE = pathlib.Path(__file__).resolve().parent
QID = re.compile(rb"queued as [0-9A-Z]+")


def read_replies(sock, buf, n, timeout):
    """Read n complete replies; returns (lines, rest, eof)."""
    out = []
    sock.settimeout(timeout)
    while n > 0:
        while b"\r\n" not in buf:
            try:
                d = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                d = b""
            if not d:
                return out, buf, True
            buf += d
        line, buf = buf.split(b"\r\n", 1)
        out.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            n -= 1
    return out, buf, False


def run_script(path, host, port, timeout):
    sock = socket.create_connection((host, port), timeout=timeout)
    out, buf, eof = read_replies(sock, b"", 1, timeout)
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw == "tls":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
            buf = b""
            out.append(b"[tls]")
            continue
        if raw == "eof":
            sock.settimeout(timeout)
            try:
                d = buf or sock.recv(1)
            except (socket.timeout, ConnectionResetError, ssl.SSLError):
                d = b""
            out.append(b"[eof]" if not d else b"[no eof: %r]" % d)
            continue
        n, _, data = raw.partition(" ")
        data = codecs.escape_decode(data.encode())[0]
        try:
            sock.sendall(data)
        except OSError as e:
            out.append(b"[send failed: %s]" % str(e).encode())
            break
        got, buf, eof = read_replies(sock, buf, int(n), timeout)
        out.extend(got)
        if eof and len(got) < int(n):
            out.append(b"[eof]")
            break
    sock.close()
    return b"\n".join(QID.sub(b"queued as QID", l) for l in out) + b"\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--update", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    scripts = sorted(HERE.glob("*.in"))
    if a.names:
        scripts = [s for s in scripts if s.stem in a.names]
    passed = failed = 0
    for s in scripts:
        got = run_script(s, a.host, a.port, a.timeout)
        ref = s.with_suffix(".ref")
        if a.update:
            ref.write_bytes(got)
        if ref.exists() and ref.read_bytes() == got:
            passed += 1
            s.with_suffix(".out").unlink(missing_ok=True)
        else:
            failed += 1
            s.with_suffix(".out").write_bytes(got)
            print("FAIL %s (see %s)" % (s.name, s.with_suffix(".out").name))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
