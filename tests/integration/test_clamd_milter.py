"""test_clamd_milter - src/common/clamd.c and milter.c against real
scanners from Debian: clamd (INSTREAM), opendkim and clamav-milter, plus
a scripted milter in Python for the actions and failure modes the real
ones do not show on demand.

tests/tools/milterc (built from MOAT_BUILD, see the Makefile's "content
scanner test driver" block) runs one milter session or one clamd scan
on a libevent loop and prints one line per callback.

clamd gets a signature database made here (no network, no official
database): an .ndb signature for the EICAR test string.  opendkim signs
with a key made by opendkim-genkey and verifies with the public key
given through TestDNSData, so no DNS server is needed.  Every daemon is
started by the test on loopback or in its own directory and stopped by
its PID.
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

import moatlib

MILTERC = moatlib.BUILD / "tools" / "milterc"

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-"
         b"TEST-FILE!$H+H*")
SIG = "Moat.Test.EICAR.UNOFFICIAL"

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: bob@remote.test\r\n"
       b"Subject: milter test\r\n"
       b"Date: Tue, 25 Nov 2025 18:00:00 +0000\r\n"
       b"Message-ID: <1@example.test>\r\n"
       b"\r\n"
       b"Hello,\r\n"
       b"this is the body.\r\n")

pytestmark = pytest.mark.skipif(
    not all(shutil.which(p) for p in
            ("clamd", "opendkim", "opendkim-genkey", "clamav-milter")),
    reason="clamd, opendkim or clamav-milter missing (mk/deps.sh)")


# ---- helpers --------------------------------------------------------------

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def unq(v):
    if v.startswith('"'):
        v = v[1:-1]
        v = re.sub(r'\\x([0-9a-f]{2})', lambda m: chr(int(m.group(1), 16)),
                   v)
        v = (v.replace("\\r", "\r").replace("\\n", "\n")
             .replace("\\t", "\t").replace('\\"', '"')
             .replace("\\\\", "\\"))
    return v


def parse(out):
    return [{k: unq(v) for k, v in FIELD.findall(line)}
            for line in out.splitlines() if line.strip()]


def run(args, msg=MSG, timeout=60):
    """milterc ARGS < msg: its lines as dicts; stderr clean of ASan."""
    p = subprocess.run([str(MILTERC)] + args, input=msg,
                       capture_output=True, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    assert p.returncode == 0, err
    return parse(p.stdout.decode()), err


def stages(lines):
    return [(l["stage"], l["verdict"]) for l in lines if "verdict" in l]


def mods(lines):
    return [l for l in lines if "mod" in l]


def wait_socket(path=None, port=None, proc=None, timeout=60):
    def up():
        if proc is not None and proc.poll() is not None:
            raise AssertionError("daemon exited: %s" % proc.returncode)
        if path is not None:
            return os.path.exists(path)
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    moatlib.wait_until(up, timeout, "daemon socket")


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def eicar_mail():
    m = EmailMessage()
    m["From"] = "x@remote.test"
    m["To"] = "y@example.test"
    m["Subject"] = "invoice"
    m.set_content("see attachment\n")
    m.add_attachment(EICAR, maintype="application",
                     subtype="octet-stream", filename="invoice.pdf.exe")
    return m.as_bytes()


# ---- daemons ----------------------------------------------------------------

@pytest.fixture(scope="module")
def workdir():
    d = moatlib.make_base_dir("moat-scan-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def clamd(workdir):
    db = workdir / "db"
    db.mkdir()
    (db / "moat.ndb").write_text("Moat.Test.EICAR:0:*:%s\n" % EICAR.hex())
    sock = workdir / "clamd.sock"
    conf = workdir / "clamd.conf"
    conf.write_text("Foreground yes\nLocalSocket %s\nDatabaseDirectory %s\n"
                    "LogFile %s\nStreamMaxLength 1M\nMaxThreads 4\n"
                    % (sock, db, workdir / "clamd.log"))
    p = subprocess.Popen(["clamd", "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_socket(path=str(sock), proc=p, timeout=90)
        yield str(sock)
    finally:
        stop(p)


@pytest.fixture(scope="module")
def opendkim(workdir):
    d = workdir / "dkim"
    (d / "keys").mkdir(parents=True)
    subprocess.run(["opendkim-genkey", "-D", str(d / "keys"), "-d",
                    "example.test", "-s", "sel"], check=True)
    txt = (d / "keys" / "sel.txt").read_text()
    rec = "".join(re.findall(r'"([^"]*)"', txt))
    (d / "testdns").write_text("sel._domainkey.example.test %s\n" % rec)
    (d / "keytable").write_text(
        "sel._domainkey.example.test example.test:sel:%s\n"
        % (d / "keys" / "sel.private"))
    (d / "signingtable").write_text(
        "*@example.test sel._domainkey.example.test\n")
    port = moatlib.free_port()
    conf = d / "opendkim.conf"
    conf.write_text(
        "Syslog no\nBackground no\nMode sv\n"
        "Socket inet:%d@127.0.0.1\n"
        "KeyTable file:%s\nSigningTable refile:%s\n"
        "TestDNSData file:%s\nRequireSafeKeys no\n"
        "Canonicalization simple/simple\nAlwaysAddARHeader yes\n"
        "PidFile %s\n"
        % (port, d / "keytable", d / "signingtable", d / "testdns",
           d / "opendkim.pid"))
    p = subprocess.Popen(["opendkim", "-f", "-x", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_socket(port=port, proc=p)
        yield "inet:127.0.0.1:%d" % port
    finally:
        stop(p)


@pytest.fixture(scope="module")
def clamav_milter(workdir, clamd):
    port = moatlib.free_port()
    conf = workdir / "clamav-milter.conf"
    conf.write_text(
        "MilterSocket inet:%d@127.0.0.1\nClamdSocket unix:%s\n"
        "Foreground yes\nOnInfected Reject\nAddHeader Replace\n"
        "RejectMsg Virus found: %%v\nLogFile %s\nPidFile %s\n"
        % (port, clamd, workdir / "clamav-milter.log",
           workdir / "clamav-milter.pid"))
    p = subprocess.Popen(["clamav-milter", "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_socket(port=port, proc=p)
        yield "inet:127.0.0.1:%d" % port
    finally:
        stop(p)


# ---- a scripted milter ------------------------------------------------------

NR = {"C": 0x1000, "H": 0x2000, "M": 0x4000, "R": 0x8000, "T": 0x10000,
      "L": 0x80, "N": 0x40000, "B": 0x80000}
NO = {"C": 0x1, "H": 0x2, "M": 0x4, "R": 0x8, "B": 0x10, "L": 0x20,
      "N": 0x40, "T": 0x200}


def pkt(code, data=b""):
    return struct.pack(">I", len(data) + 1) + code.encode() + data


class FakeMilter:
    """A milter on 127.0.0.1:port replying as script says.

    script maps a command letter to a list of steps, or to a function
    of (data, record) giving one: (code, data) sends a packet, ("sleep",
    s) waits, ("hang",) waits for the close, ("raw", bytes) sends bytes.
    Commands without a step get "c" unless no reply is due."""

    def __init__(self, script=None, actions=0x1ff, protocol=0, version=6,
                 lists=b""):
        self.script = script or {}
        self.actions, self.protocol = actions, protocol
        self.version, self.lists = version, lists
        self.conns = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.endpoint = "inet:127.0.0.1:%d" % self.port
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,),
                             daemon=True).start()

    @staticmethod
    def recvn(c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                return None
            b += d
        return b

    def handle(self, c):
        rec = []
        self.conns.append(rec)
        with c:
            while True:
                h = self.recvn(c, 4)
                if h is None:
                    return
                body = self.recvn(c, struct.unpack(">I", h)[0])
                if body is None:
                    return
                cmd, data = chr(body[0]), body[1:]
                rec.append((cmd, data))
                if cmd == "O":
                    c.sendall(pkt("O", struct.pack(
                        ">III", self.version, self.actions, self.protocol)
                        + self.lists))
                    continue
                if cmd == "Q":
                    return
                if cmd in "DAK" or self.protocol & NR.get(cmd, 0):
                    continue
                steps = self.script.get(cmd, [("c", b"")])
                if callable(steps):
                    steps = steps(data, rec)
                for s in steps:
                    if s[0] == "sleep":
                        time.sleep(s[1])
                    elif s[0] == "hang":
                        while c.recv(4096):
                            pass
                        return
                    elif s[0] == "raw":
                        c.sendall(s[1])
                    else:
                        c.sendall(pkt(s[0], s[1]))

    def close(self):
        self.sock.close()

    def cmds(self, i=0):
        return "".join(cmd for cmd, _ in self.conns[i])

    def macros(self, i=0):
        """{stage letter: {name: value}} from the D packets."""
        out = {}
        for cmd, data in self.conns[i]:
            if cmd == "D":
                parts = data[1:].split(b"\0")[:-1]
                out.setdefault(chr(data[0]), {}).update(
                    (parts[k].decode(), parts[k + 1].decode())
                    for k in range(0, len(parts) - 1, 2))
        return out


@pytest.fixture
def fake():
    made = []

    def make(**kw):
        f = FakeMilter(**kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


FULL = [("connect", "continue"), ("helo", "continue"), ("mail", "continue"),
        ("rcpt", "continue"), ("data", "continue"), ("eoh", "continue"),
        ("body", "continue")]


# ---- clamd ------------------------------------------------------------------

def test_clamd_clean_and_virus(clamd):
    lines, _ = run(["clamd", "unix:" + clamd])
    assert lines == [{"status": "clean", "name": "",
                      "scanned": str(len(MSG)), "truncated": "0"}]
    mail = eicar_mail()
    # base64 in a MIME part: clamd decodes it; 1-octet chunks as well
    for chunk in ("65536", "1"):
        lines, _ = run(["clamd", "-c", chunk, clamd], mail)
        assert lines[0]["status"] == "virus"
        assert lines[0]["name"] == SIG
    assert EICAR not in mail         # only its base64 form is


def test_clamd_limits(clamd):
    big = b"A" * (2 << 20)
    # past clamd's StreamMaxLength (1M here): its own error, not EPIPE
    lines, _ = run(["clamd", "-c", "65536", clamd], big)
    assert lines[0]["status"] == "error"
    assert lines[0]["name"] == "INSTREAM size limit exceeded."
    # our own bound: only the head is sent, and the result says so
    lines, _ = run(["clamd", "-m", "100000", clamd], big)
    assert lines[0] == {"status": "clean", "name": "", "scanned": "100000",
                        "truncated": "1"}
    # a virus beyond the bound is not seen: the caller must know
    lines, _ = run(["clamd", "-m", "1000", clamd], b"x" * 2000 + EICAR)
    assert lines[0]["status"] == "clean" and lines[0]["truncated"] == "1"


def test_clamd_tcp_framing(workdir):
    """A clamd stand-in on TCP checks the INSTREAM framing octet by octet."""
    got = {}
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        with c:
            f = c.makefile("rb")
            got["cmd"] = f.read(10)
            data, sizes = b"", []
            while True:
                n = struct.unpack(">I", f.read(4))[0]
                if n == 0:
                    break
                sizes.append(n)
                data += f.read(n)
            got["data"], got["sizes"] = data, sizes
            c.sendall(b"stream: Some.Name FOUND\0")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    body = b"0123456789abcdef" * 12500
    lines, _ = run(["clamd", "-c", "150000",
                    "127.0.0.1:%d" % srv.getsockname()[1]], body)
    t.join(10)
    srv.close()
    assert got["cmd"] == b"zINSTREAM\0"
    assert got["data"] == body
    assert max(got["sizes"]) <= 65536
    assert lines[0]["status"] == "virus" and lines[0]["name"] == "Some.Name"


def test_clamd_failures(workdir):
    lines, _ = run(["clamd", "unix:" + str(workdir / "nonexistent.sock")])
    assert lines[0]["status"] == "error"
    assert lines[0]["name"] == "No such file or directory"
    lines, _ = run(["clamd", "127.0.0.1:%d" % moatlib.free_port()])
    assert lines[0] == {"status": "error", "name": "Connection refused",
                        "scanned": str(len(MSG)), "truncated": "0"}
    # a scanner that reads everything and never answers: our timeout
    mute = socket.socket(socket.AF_UNIX)
    path = str(workdir / "mute.sock")
    mute.bind(path)
    mute.listen(1)
    t0 = time.monotonic()
    lines, _ = run(["clamd", "-t", "700", "unix:" + path])
    assert lines[0]["status"] == "error" and lines[0]["name"] == "timeout"
    assert time.monotonic() - t0 < 10
    mute.close()


# ---- real milters -----------------------------------------------------------

def test_opendkim_signs_and_verifies(opendkim, workdir):
    signed = workdir / "signed.eml"
    # from 127.0.0.1 (opendkim's InternalHosts): sign
    lines, _ = run(["milter", "-a", "127.0.0.1", "-n", "localhost",
                    "-f", "alice@example.test", "-M", "i=4A1B2C",
                    "-o", str(signed), opendkim])
    assert stages(lines)[:7] == FULL
    assert stages(lines)[7][0] == "eom"
    assert stages(lines)[7][1] in ("continue", "accept")
    sig = [m for m in mods(lines) if m["name"] == "DKIM-Signature"]
    assert len(sig) == 1 and sig[0]["mod"] == "insheader"
    assert sig[0]["index"] == "0"
    assert "d=example.test" in sig[0]["value"]
    assert "s=sel" in sig[0]["value"]
    data = signed.read_bytes()
    assert data.startswith(b"DKIM-Signature: v=1;")
    # from outside: opendkim verifies the message as moat would relay it
    lines, _ = run(["milter", "-a", "192.0.2.9", "-n", "mx.remote.test",
                    opendkim], data)
    ar = [m for m in mods(lines) if m["name"] == "Authentication-Results"]
    assert len(ar) == 1 and "dkim=pass" in ar[0]["value"], ar
    # one octet changed in the body: the signature fails
    lines, _ = run(["milter", "-a", "192.0.2.9", opendkim],
                   data.replace(b"Hello,", b"Hallo,"))
    ar = [m for m in mods(lines) if m["name"] == "Authentication-Results"]
    assert "dkim=fail" in ar[0]["value"], ar


def test_clamav_milter(clamav_milter, opendkim):
    lines, _ = run(["milter", clamav_milter])
    assert stages(lines)[:7] == FULL
    hv = {m["name"]: m["value"] for m in mods(lines)}
    assert hv["X-Virus-Status"] == " Clean"
    # infected: 550 with the milter's text at end of message
    lines, _ = run(["milter", clamav_milter], eicar_mail())
    eom = stages(lines)[-1]
    assert eom == ("eom", "reject")
    last = [l for l in lines if l.get("stage") == "eom"][0]
    assert last["reply"] == "550 5.7.1 Virus found: " + SIG
    assert last["milter"] == clamav_milter
    assert not mods(lines)
    # two milters in order on a signing session: both modify, in order
    lines, _ = run(["milter", "-a", "127.0.0.1", "-f", "alice@example.test",
                    clamav_milter, opendkim])
    names = [(m["milter"], m["name"]) for m in mods(lines)]
    assert ("0", "X-Virus-Status") in names
    assert ("1", "DKIM-Signature") in names
    assert names.index(("0", "X-Virus-Status")) < \
        names.index(("1", "DKIM-Signature"))
    # the first milter's reject ends it: no signature, two messages
    lines, _ = run(["milter", "-k", "2", "-a", "127.0.0.1", "-f",
                    "alice@example.test", clamav_milter, opendkim],
                   eicar_mail())
    assert [s for s in stages(lines) if s[0] == "eom"] == \
        [("eom", "reject")] * 2
    assert not mods(lines)


# ---- the scripted milter ----------------------------------------------------

def test_all_actions(fake):
    body = [("b", b"new body\r\n"), ("b", b"second chunk\r\n")]
    f = fake(script={"E": [
        ("p", b""),
        ("h", b"X-Added\0one\0"),
        ("i", struct.pack(">I", 1) + b"X-Ins\0two\n\tfolded\0"),
        ("m", struct.pack(">I", 1) + b"Subject\0\0"),
        ("e", b"<new@example.test>\0SIZE=10\0"),
        ("+", b"<add@example.test>\0"),
        ("2", b"<par@example.test>\0NOTIFY=NEVER\0"),
        ("-", b"<rcpt@example.test>\0"),
        ("q", b"held for review\0")] + body + [("c", b"")]})
    lines, _ = run(["milter", f.endpoint])
    got = [(m["mod"], m["index"], m["name"], m["value"]) for m in mods(lines)]
    assert got == [
        ("addheader", "0", "X-Added", " one"),
        ("insheader", "1", "X-Ins", " two\r\n\tfolded"),
        ("chgheader", "1", "Subject", ""),
        ("chgfrom", "0", "<new@example.test>", "SIZE=10"),
        ("addrcpt", "0", "<add@example.test>", ""),
        ("addrcpt_par", "0", "<par@example.test>", "NOTIFY=NEVER"),
        ("delrcpt", "0", "<rcpt@example.test>", "")]
    assert {"body": "replaced", "len": "24"} in lines
    assert {"quarantine": "held for review"} in lines
    assert stages(lines)[-1] == ("eom", "continue")


def test_commands_and_macros(fake):
    f = fake()
    msg = (b"Subject:   spaced\r\nX-Fold: a\r\n\tb\r\n\r\n" +
           b"x" * 200000 + b"\r\n")
    lines, _ = run(["milter", "-a", "192.0.2.7", "-n", "c.remote.test",
                    "-j", "mx.example.test", "-D", "inbound",
                    "-M", "i=QID1", "-M", "{auth_authen}=alice",
                    "-f", "s@remote.test", "-r", "a@example.test",
                    "-r", "b@example.test", f.endpoint], msg)
    assert stages(lines) == FULL[:4] + [("rcpt", "continue")] + FULL[4:] + \
        [("eom", "continue")]
    moatlib.wait_until(lambda: f.conns and "Q" in f.cmds(), 10, "quit")
    rec = f.conns[0]
    cmds = f.cmds()
    assert re.fullmatch(r"ODCHDMDRDRDTLLDNB+DEQ", cmds), cmds
    conn = [d for c, d in rec if c == "C"][0]
    assert conn == b"c.remote.test\x004" + struct.pack(">H", 40000) + \
        b"192.0.2.7\0"
    assert [d for c, d in rec if c == "M"][0] == \
        b"<s@remote.test>\0BODY=8BITMIME\0"
    assert [d for c, d in rec if c == "R"] == \
        [b"<a@example.test>\0", b"<b@example.test>\0"]
    # leading blanks stripped (no HDR_LEADSPC), folding as "\n"
    assert [d for c, d in rec if c == "L"] == \
        [b"Subject\0spaced\0", b"X-Fold\0a\n\tb\0"]
    chunks = [d for c, d in rec if c == "B"]
    assert max(len(d) for d in chunks) <= 65535
    assert b"".join(chunks) == b"x" * 200000 + b"\r\n"
    m = f.macros()
    assert m["C"]["j"] == "mx.example.test"
    assert m["C"]["{daemon_name}"] == "inbound"
    assert m["C"]["{client_addr}"] == "192.0.2.7"
    assert m["C"]["{client_name}"] == "c.remote.test"
    assert m["C"]["_"] == "c.remote.test [192.0.2.7]"
    assert m["M"]["i"] == "QID1" and m["M"]["{auth_authen}"] == "alice"
    assert m["M"]["{mail_addr}"] == "s@remote.test"
    assert m["R"]["{rcpt_addr}"] == "b@example.test"
    assert m["E"]["i"] == "QID1"
    assert not any("v" == k for st in m.values() for k in st)


def test_leadspc_and_symlist(fake):
    # HDR_LEADSPC: the value as it is; SETSYMLIST: only the macros asked
    lists = struct.pack(">I", 2) + b"{mail_addr}\0"
    f = fake(actions=0x100 | 0x1, protocol=0x100000, lists=lists)
    lines, _ = run(["milter", "-M", "i=Q", f.endpoint],
                   b"Subject:  two\r\n\r\nb\r\n")
    assert stages(lines)[-1] == ("eom", "continue")
    assert [d for c, d in f.conns[0] if c == "L"] == [b"Subject\0  two\0"]
    assert f.macros()["M"] == {"{mail_addr}": "sender@example.test"}


def test_no_reply_and_skipped_steps(fake):
    # NR_* for every step but EOM, and NOHELO and NODATA: moat must not
    # wait for replies that never come, nor send what was declined
    prot = sum(NR.values()) | NO["H"] | NO["T"]
    f = fake(protocol=prot)
    t0 = time.monotonic()
    lines, _ = run(["milter", "-T", "5000", "-C", "5000", f.endpoint])
    assert time.monotonic() - t0 < 4
    assert stages(lines) == FULL + [("eom", "continue")]
    moatlib.wait_until(lambda: f.conns and "Q" in f.cmds(), 10, "quit")
    assert "H" not in f.cmds() and "T" not in f.cmds()
    assert "E" in f.cmds()


def test_reject_stages(fake):
    def rcpt(data, rec):
        return [("r", b"")] if data.startswith(b"<bad@") else [("c", b"")]
    f = fake(script={"R": rcpt})
    lines, _ = run(["milter", "-r", "bad@example.test", "-r",
                    "good@example.test", f.endpoint])
    rc = [l["verdict"] for l in lines if l.get("stage") == "rcpt"]
    assert rc == ["reject", "continue"]
    assert stages(lines)[-1] == ("eom", "continue")
    # a multi-line 4xx at MAIL ends the message for every milter
    reply = b"451-4.7.1 first line\r\n451 4.7.1 second line\0"
    f1 = fake(script={"M": [("y", reply)]})
    f2 = fake()
    lines, _ = run(["milter", f1.endpoint, f2.endpoint])
    st = stages(lines)
    assert st[:2] == FULL[:2]
    assert all(v == "tempfail" for s, v in st[2:]), st
    mail = [l for l in lines if l.get("stage") == "mail"][0]
    assert mail["reply"] == reply[:-1].decode()
    moatlib.wait_until(lambda: len(f2.conns) == 1 and "Q" in f2.cmds(), 10,
                       "quit")
    assert "M" not in f2.cmds() and "E" not in f2.cmds()
    # the first reject ends the stage: a later milter is not asked
    f3 = fake(script={"N": [("d", b"")]})
    f4 = fake()
    lines, _ = run(["milter", f3.endpoint, f4.endpoint])
    assert stages(lines)[-3:] == [("eoh", "discard"), ("body", "discard"),
                                  ("eom", "discard")]
    moatlib.wait_until(lambda: "Q" in f4.cmds(), 10, "quit")
    assert "N" not in f4.cmds() and "B" not in f4.cmds()
    assert "A" in f4.cmds()


def test_accept_and_skip(fake):
    # ACCEPT at connect: that milter is done for the session
    f1 = fake(script={"C": [("a", b"")]})
    lines, _ = run(["milter", f1.endpoint])
    assert stages(lines)[0] == ("connect", "accept")
    assert all(v == "accept" for s, v in stages(lines))
    moatlib.wait_until(lambda: "Q" in f1.cmds(), 10, "quit")
    assert f1.cmds().replace("D", "") == "OCQ"
    # SKIP during the body: no more chunks to that milter
    f2 = fake(script={"B": [("s", b"")]})
    lines, _ = run(["milter", f2.endpoint],
                   b"Subject: s\r\n\r\n" + b"y" * 300000)
    assert stages(lines)[-1] == ("eom", "continue")
    moatlib.wait_until(lambda: "Q" in f2.cmds(), 10, "quit")
    assert f2.cmds().count("B") == 1


def test_default_actions(fake, workdir):
    down = "inet:127.0.0.1:%d" % moatlib.free_port()
    lines, err = run(["milter", down + "=accept"])
    assert all(v == "accept" for s, v in stages(lines))
    assert "event=milter_failure" in err
    lines, _ = run(["milter", down + "=tempfail"])
    first = lines[0]
    assert first["verdict"] == "tempfail" and first["default"] == "1"
    assert first["milter"] == down
    lines, _ = run(["milter", "-d", "reject", down])
    assert all(v == "reject" for s, v in stages(lines))
    # a down milter with accept does not hide a working one
    f = fake(script={"E": [("h", b"X-Seen\0yes\0"), ("c", b"")]})
    lines, _ = run(["milter", down + "=accept", f.endpoint])
    assert [m["name"] for m in mods(lines)] == ["X-Seen"]
    assert mods(lines)[0]["milter"] == "1"


def test_timeouts_and_progress(fake):
    f = fake(script={"E": [("h", b"X-Lost\0v\0"), ("hang",)]})
    t0 = time.monotonic()
    lines, err = run(["milter", "-C", "600", f.endpoint + "=tempfail"])
    assert time.monotonic() - t0 < 8
    eom = [l for l in lines if l.get("stage") == "eom"][0]
    assert eom["verdict"] == "tempfail" and eom.get("default") == "1"
    assert not mods(lines)          # what it said before failing is gone
    assert 'reason="timeout"' in err
    # progress keeps it alive past the content timeout
    steps = [("p", b""), ("sleep", 0.4)] * 5 + [("c", b"")]
    f2 = fake(script={"E": steps})
    lines, _ = run(["milter", "-C", "700", f2.endpoint])
    assert stages(lines)[-1] == ("eom", "continue")
    # a connect that hangs: the connect timeout, accept goes on
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)           # accepts, never negotiates
    ep = "inet:127.0.0.1:%d=accept" % silent.getsockname()[1]
    t0 = time.monotonic()
    lines, err = run(["milter", "-t", "500", ep])
    assert time.monotonic() - t0 < 8
    assert all(v == "accept" for s, v in stages(lines))
    assert 'reason="connect timeout"' in err
    silent.close()


@pytest.mark.parametrize("bad", [
    [("h", b"X-Early\0v\0")],                    # a modification at RCPT
    [("raw", struct.pack(">I", (1 << 20) + 2) + b"c")],   # too long
    [("raw", struct.pack(">I", 0))],             # zero length
    [("Z", b"")],                                # unknown reply
    [("y", b"250 2.0.0 fine\0")],                # not a 4xx/5xx
])
def test_protocol_errors(fake, bad):
    f = fake(script={"R": bad})
    lines, err = run(["milter", f.endpoint + "=reject"])
    rc = [l for l in lines if l.get("stage") == "rcpt"][0]
    assert rc["verdict"] == "reject" and rc["default"] == "1"
    assert "event=milter_failure" in err


def test_header_injection_refused(fake):
    f = fake(script={"E": [("h", b"X-A\0v\nInjected: yes\0"), ("c", b"")]})
    lines, err = run(["milter", f.endpoint + "=accept"])
    assert not mods(lines)
    assert 'reason="bad header value"' in err
    # an action the milter did not ask for in the negotiation
    f2 = fake(actions=0x1, script={"E": [("e", b"<x@y>\0"), ("c", b"")]})
    lines, err = run(["milter", f2.endpoint + "=tempfail"])
    assert stages(lines)[-1] == ("eom", "tempfail")


def test_abort_then_next_message(fake):
    f = fake(script={"E": [("h", b"X-N\0v\0"), ("c", b"")]})
    lines, _ = run(["milter", "-A", "-k", "2", f.endpoint])
    assert {"stage": "abort"} in lines
    assert stages(lines)[-1] == ("eom", "continue")
    assert len(mods(lines)) == 1
    moatlib.wait_until(lambda: "Q" in f.cmds(), 10, "quit")
    c = f.cmds().replace("D", "")
    assert c.startswith("OCHMRAMRT"), c
