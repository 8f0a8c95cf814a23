"""Authenticated submission (RFC 4954, RFC 6409, RFC 8314) against a
real moatd: AUTH PLAIN and LOGIN only inside TLS, the users file and
the sender map, failure delays and the per-address limit, relay after
AUTH, implicit TLS, and password checks that do not stall the loop.

Certificates are made with openssl into the test directory; password
hashes are made here too: sha512-crypt with `openssl passwd -6`,
yescrypt and bcrypt through libxcrypt (ctypes), so that no fixed hash
is checked in.
"""

import base64
import ctypes
import re
import select
import smtplib
import ssl
import subprocess
import time

import pytest

import moatlib
from moatlib import CRLF, SLOW, RawSMTP

# moatlib points dns_servers at a port where nothing answers
NO_SMTP = ("4.4.3 DNS lookup of %s failed: SERVFAIL, REFUSED or "
           "unreachable")
MSG = (b"From: someone\r\nTo: someone\r\nSubject: auth test\r\n\r\n"
       b"hello\r\n")

_LIBCRYPT = ctypes.CDLL("libcrypt.so.1")
_LIBCRYPT.crypt_gensalt.restype = ctypes.c_char_p
_LIBCRYPT.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                    ctypes.c_char_p, ctypes.c_int]
_LIBCRYPT.crypt.restype = ctypes.c_char_p
_LIBCRYPT.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]


def xcrypt(prefix, cost, pw):
    """A libxcrypt hash of pw with a fresh salt of method prefix."""
    salt = _LIBCRYPT.crypt_gensalt(prefix.encode(), cost, None, 0)
    assert salt, prefix
    h = _LIBCRYPT.crypt(pw.encode(), salt)
    assert h and not h.startswith(b"*"), prefix
    return h.decode()


def sha512_crypt(pw):
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=pw.encode(), capture_output=True, check=True,
                       timeout=30)
    return r.stdout.decode().strip()


# hashes are made once per test run (the slow one takes about a second)
_HASHES = {}


def users_text():
    if not _HASHES:
        _HASHES["alice@example.test"] = xcrypt("$y$", 5, "alice-pw")
        _HASHES["bob"] = sha512_crypt("bob-pw")
        _HASHES["carol"] = xcrypt("$2b$", 5, "carol-pw")
        # yescrypt at a high cost: about a second of CPU per check
        _HASHES["slow@example.test"] = xcrypt("$y$", 8, "slow-pw")
    return "# test users\n" + "".join(
        "%s:%s\n" % kv for kv in _HASHES.items())


def make_cert(d):
    cert, key = d / "cert.pem", d / "key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj",
                        "/CN=mx.example.test", "-keyout", str(key),
                        "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    return cert, key


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def plain(user, pw, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, pw))


@pytest.fixture
def authd(moat, moat_base):
    """Factory: a moatd with submission and smtps listeners and users."""
    def factory(start=True, **overrides):
        cert, key = make_cert(moat_base)
        users = moat_base / "users"
        users.write_text(users_text())
        smap = moat_base / "senders"
        smap.write_text("bob bob@example.test, Bob.Alias@example.test "
                        "@bob.test\n")
        sub, smtps = moatlib.free_port(), moatlib.free_port()
        settings = dict(
            submission_listen="127.0.0.1:%d" % sub,
            smtps_listen="127.0.0.1:%d" % smtps,
            tls_cert_file=cert, tls_key_file=key, auth_users_file=users,
            auth_sender_map=smap)
        settings.update(overrides)
        m = moat(start=start, **settings)
        m.sub_port, m.smtps_port = sub, smtps
        m.users_file = users
        return m
    return factory


def raw_sub(m, source=None, tls=True, ehlo=True):
    """A RawSMTP on the submission port, after STARTTLS and EHLO."""
    c = RawSMTP(m.host, m.sub_port, source=source)
    assert c.banner().code == 220
    if tls:
        c.ehlo()
        starttls(c)
    if ehlo:
        c.ehlo()
    return c


def starttls(c):
    r = c.cmd("STARTTLS")
    assert r.first == "220 2.0.0 Ready to start TLS", r
    assert c.buf == b""
    c.sock = tls_ctx().wrap_socket(c.sock, server_hostname="mx.example.test")


def smtp_sub(m):
    s = smtplib.SMTP(m.host, m.sub_port, local_hostname="client.test",
                     timeout=20 * SLOW)
    s.starttls(context=tls_ctx())
    s.ehlo()
    return s


def accepted_qid(m, user, since=0):
    mt = m.wait_log(r"event=accepted qid=(\w+) .*proto=ESMTPSA .*auth=%s$"
                    % re.escape(user), since=since)
    return mt.group(1)


def ready(sock):
    """Is a reply (or EOF) waiting on a plain or TLS socket?"""
    if getattr(sock, "pending", None) and sock.pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])


# ---- offering and refusing -------------------------------------------

def test_auth_only_inside_tls(authd):
    m = authd()
    with raw_sub(m, tls=False) as c:
        r = c.ehlo()
        assert "STARTTLS" in r.lines
        assert not any(l.startswith("AUTH") for l in r.lines), r
        r = c.cmd("AUTH PLAIN " + plain("bob", "bob-pw"))
        assert r.first == ("538 5.7.11 Encryption required for requested "
                           "authentication mechanism"), r
        r = c.cmd("MAIL FROM:<bob@example.test>")
        assert r.first == "530 5.7.0 Must issue a STARTTLS command first"
        starttls(c)
        r = c.ehlo()
        assert "AUTH PLAIN LOGIN" in r.lines, r
        assert "STARTTLS" not in r.lines
        # 127.0.0.1 is in relay_networks: the submission port wants AUTH
        r = c.cmd("MAIL FROM:<bob@example.test>")
        assert r.first == "530 5.7.0 Authentication required", r
    # the MX port: not before STARTTLS, offered after it
    with m.raw() as c:
        r = c.ehlo()
        assert not any(l.startswith("AUTH") for l in r.lines), r
        assert c.cmd("AUTH LOGIN").code == 538
        starttls(c)
        assert "AUTH PLAIN LOGIN" in c.ehlo().lines
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).first == \
            "235 2.7.0 Authentication successful"
        assert m.wait_log(r"event=auth client=127\.0\.0\.1 sid=\d+ "
                          r"mech=PLAIN user=bob result=ok")


def test_relay_without_auth_refused_on_submission(authd):
    m = authd()
    with raw_sub(m) as c:
        r = c.cmd("MAIL FROM:<bob@example.test>")
        assert r.first == "530 5.7.0 Authentication required", r
        r = c.cmd("RCPT TO:<far@remote.test>")
        assert r.code == 503, r
    with smtp_sub(m) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("bob@example.test", ["far@remote.test"], MSG)
        assert e.value.smtp_code == 530


# ---- the mechanisms ----------------------------------------------------

def test_login_and_plain_exchanges(authd):
    m = authd()
    with raw_sub(m) as c:
        assert c.cmd("AUTH LOGIN").first == "334 VXNlcm5hbWU6"
        assert c.cmd(b64("carol")).first == "334 UGFzc3dvcmQ6"
        r = c.cmd(b64("carol-pw"))
        assert r.first == "235 2.7.0 Authentication successful", r
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).first == \
            "503 5.5.1 Already authenticated"
        assert c.cmd("NOOP").code == 250
    with raw_sub(m) as c:
        # the empty challenge, then "*" cancels (RFC 4954 4)
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334 and r.lines == [""], r
        assert c.cmd("*").first == "501 5.0.0 Authentication cancelled"
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334
        assert c.cmd("not base64!").first == \
            "501 5.5.2 Cannot decode response"
        assert c.cmd("AUTH PLAIN AGJv=mI=").first == \
            "501 5.5.2 Cannot decode response"
        assert c.cmd("AUTH CRAM-MD5").first == \
            "504 5.5.4 Unrecognized authentication type"
        # LOGIN with the user name as initial response (smtplib's way)
        assert c.cmd("AUTH LOGIN " + b64("bob")).first == \
            "334 UGFzc3dvcmQ6"
        assert c.cmd(b64("bob-pw")).code == 235
        assert c.cmd("MAIL FROM:<bob@example.test>").code == 250
        r = c.cmd("AUTH PLAIN " + plain("bob", "bob-pw"))
        assert r.first == "503 5.5.1 AUTH not allowed in a transaction", r
        assert c.cmd("RSET").code == 250
    with raw_sub(m) as c:
        r = c.cmd("AUTH PLAIN")
        assert c.cmd(plain("alice@example.test", "alice-pw")).code == 235
    # AUTH in a transaction on the MX port (TLS, not authenticated)
    with m.raw() as c:
        c.ehlo()
        starttls(c)
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@remote.test>").code == 250
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).code == 503


def test_auth_pipelined_after_initial_response(authd):
    """RFC 4954 4: with an initial response, commands may follow AUTH
    in the same packet; they are answered after it, in order."""
    m = authd()
    with raw_sub(m) as c:
        c.send("AUTH PLAIN %s\r\nMAIL FROM:<bob@example.test>\r\n"
               "RCPT TO:<user@example.test>\r\nNOOP\r\n"
               % plain("bob", "bob-pw"))
        assert [c.reply().code for _ in range(4)] == [235, 250, 250, 250]


# ---- real clients --------------------------------------------------------

def test_smtplib_login_relays_local_and_remote(authd):
    m = authd()
    with smtp_sub(m) as s:
        assert "auth" in s.esmtp_features
        code, _ = s.login("bob", "bob-pw")
        assert code == 235
        assert s.sendmail("bob@example.test",
                          ["user@example.test", "far@remote.test"],
                          MSG) == {}
    qid = accepted_qid(m, "bob")
    msg = m.wait_maildir("user")[0]
    _eol, added, body = moatlib.received_split(msg)
    rec = [h for h in added if h.startswith(b"Received:")]
    assert rec and b"with ESMTPSA id %s" % qid.encode() in rec[0], added
    assert body.endswith(b"hello\r\n") or body.endswith(b"hello\n")
    # the non-local recipient stays queued (no outbound SMTP yet)
    m.wait_log(r"event=delivery qid=%s to=<far@remote\.test> .*"
               r"status=deferred" % qid)
    qf = (m.spool / "queue" / qid).read_bytes()
    assert b"\nproto ESMTPSA\n" in qf and b"\nauth bob\n" in qf, qf[:400]
    r = m.ctl("queue")
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert qid in out and NO_SMTP % "remote.test" in out, out
    assert "far@remote.test" in out, out


def test_swaks_plain_over_starttls(authd):
    m = authd()
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % m.sub_port, "--tls",
         "--auth", "PLAIN", "--auth-user", "alice@example.test",
         "--auth-password", "alice-pw", "--from", "alice@example.test",
         "--to", "user@example.test", "--helo", "client.test",
         "--timeout", str(int(30 * SLOW))],
        capture_output=True, text=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 Authentication successful" in r.stdout
    msg = m.wait_maildir("user")[0]
    assert b"with ESMTPSA" in msg
    accepted_qid(m, "alice@example.test")


def test_implicit_tls_smtps(authd):
    m = authd()
    with smtplib.SMTP_SSL(m.host, m.smtps_port, local_hostname="client.test",
                          context=tls_ctx(), timeout=20 * SLOW) as s:
        s.ehlo()
        assert "auth" in s.esmtp_features
        assert "starttls" not in s.esmtp_features
        assert s.login("carol", "carol-pw")[0] == 235
        # carol is not an address and has no map line: no sender is hers
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("carol@example.test", ["user@example.test"], MSG)
        assert e.value.smtp_code == 553
    with smtplib.SMTP_SSL(m.host, m.smtps_port, local_hostname="client.test",
                          context=tls_ctx(), timeout=20 * SLOW) as s:
        s.login("alice@example.test", "alice-pw")
        assert s.sendmail("alice@example.test", ["user@example.test"],
                          MSG) == {}
    assert b"with ESMTPSA" in m.wait_maildir("user")[0]
    # without AUTH the smtps port takes no mail either
    with smtplib.SMTP_SSL(m.host, m.smtps_port, local_hostname="client.test",
                          context=tls_ctx(), timeout=20 * SLOW) as s:
        s.ehlo()
        code, text = s.mail("alice@example.test")
        assert (code, text) == (530, b"5.7.0 Authentication required")


# ---- the sender -----------------------------------------------------------

def test_sender_must_belong_to_login(authd):
    m = authd()
    with raw_sub(m) as c:
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).code == 235
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.first == ("553 5.7.1 Sender address rejected: not owned "
                           "by user"), r
        for ok in ("bob@example.test", "BOB@Example.Test",
                   "bob.alias@example.test", "anyone@bob.test", ""):
            assert c.cmd("MAIL FROM:<%s>" % ok).code == 250, ok
            assert c.cmd("RSET").code == 250
        # bob has a map line: his login alone is not an address of his
        assert c.cmd("MAIL FROM:<bob@other.test>").code == 553
    m.wait_log(r"event=alarm type=sender_login_mismatch client=127\.0\.0\.1"
               r" user=bob from=<alice@example\.test>")
    with raw_sub(m) as c:
        # no map line: the login itself, as an address
        assert c.cmd("AUTH PLAIN " + plain("alice@example.test",
                                           "alice-pw")).code == 235
        assert c.cmd("MAIL FROM:<Alice@example.test>").code == 250
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<bob@example.test>").code == 553


# ---- failures ---------------------------------------------------------------

def test_wrong_password_535_after_delay(authd):
    m = authd()
    with raw_sub(m) as c:
        t0 = time.monotonic()
        r = c.cmd("AUTH PLAIN " + plain("bob", "wrong"))
        dt = time.monotonic() - t0
        assert r.first == "535 5.7.8 Authentication credentials invalid", r
        assert dt >= 0.9, dt
        # unknown users fail the same way, and a LOGIN exchange too
        assert c.cmd("AUTH LOGIN " + b64("nobody")).code == 334
        t0 = time.monotonic()
        r = c.cmd(b64("bob-pw"))
        dt = time.monotonic() - t0
        assert r.first == "535 5.7.8 Authentication credentials invalid"
        assert dt >= 1.9, dt  # the second failure: twice the delay
        # the session goes on and may still succeed
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).code == 235
    assert m.wait_log(r"event=auth client=127\.0\.0\.1 sid=\d+ mech=PLAIN "
                      r"user=bob result=fail")
    assert m.wait_log(r"event=auth client=127\.0\.0\.1 sid=\d+ mech=LOGIN "
                      r"user=nobody result=fail")
    # the log line comes before the 535 is sent: the reply waited
    # (authzid for somebody else fails, too)
    with raw_sub(m, source="127.0.0.4") as c:
        r = c.cmd("AUTH PLAIN " + plain("bob", "bob-pw", authzid="alice"))
        assert r.code == 535


def test_failure_limit_421_per_address(authd):
    m = authd(auth_failure_limit=3)
    with raw_sub(m, source="127.0.0.2") as c:
        t0 = time.monotonic()
        assert c.cmd("AUTH PLAIN " + plain("bob", "x1")).code == 535
        assert c.cmd("AUTH PLAIN " + plain("bob", "x2")).code == 535
        assert time.monotonic() - t0 >= 2.8  # 1 s, then 2 s
        r = c.cmd("AUTH PLAIN " + plain("bob", "x3"))
        assert r.first == "421 4.7.0 Too many authentication failures", r
        assert c.is_closed()
    m.wait_log(r"event=alarm type=auth_limit client=127\.0\.0\.2 "
               r"failures=3")
    # the address stays blocked, even with the right password
    with raw_sub(m, source="127.0.0.2") as c:
        r = c.cmd("AUTH PLAIN " + plain("bob", "bob-pw"))
        assert r.first == "421 4.7.0 Too many authentication failures", r
        assert c.is_closed()
    # another address is not
    with raw_sub(m, source="127.0.0.3") as c:
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).code == 235


# ---- the event loop ---------------------------------------------------------

def test_slow_crypt_does_not_stall_other_sessions(authd):
    m = authd()
    with raw_sub(m) as a, m.raw(source="127.0.0.5") as b:
        b.ehlo()
        a.send("AUTH PLAIN %s\r\n" % plain("slow@example.test", "slow-pw"))
        t0 = time.monotonic()
        assert b.cmd("NOOP").code == 250
        assert b.cmd("NOOP").code == 250
        t_noop = time.monotonic() - t0
        # a's check (about a second of yescrypt) is still running
        assert not ready(a.sock), "AUTH answered before the NOOPs"
        r = a.reply()
        t_auth = time.monotonic() - t0
        assert r.first == "235 2.7.0 Authentication successful", r
        assert t_noop < t_auth, (t_noop, t_auth)


def test_session_gone_during_check(authd):
    """A client that leaves while its password is being checked: the
    answer finds no session (it was detached) and nothing breaks."""
    m = authd()
    a = raw_sub(m)
    a.send("AUTH PLAIN %s\r\n" % plain("slow@example.test", "slow-pw"))
    a.close()
    m.wait_log(r"event=auth .*user=slow@example\.test result=ok",
               timeout=20)
    m.wait_log(r"event=disconnect client=127\.0\.0\.1 .*reason=")
    with raw_sub(m) as c:
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).code == 235
    assert not m.log_lines(r"panic|fatal")


def test_shutdown_during_check(authd):
    """SIGTERM while a check runs: 421 to its session, clean exit."""
    m = authd()
    b = raw_sub(m)
    b.send("AUTH PLAIN %s\r\n" % plain("slow@example.test", "slow-pw"))
    time.sleep(0.1)
    m.stop()
    assert b.reply().first == "421 4.3.2 Service shutting down"
    b.close()
    assert not m.log_lines(r"panic|fatal")


# ---- config -----------------------------------------------------------------

def test_weak_hash_refused_at_load(authd):
    m = authd(start=False)
    m.users_file.write_text("bob:%s\nold:$1$salt$qJH7.N4xYta3aEG/dfqo/0\n"
                            "des:ab01FAX.bQRSU\n" % sha512_crypt("pw"))
    r = subprocess.run([str(moatlib.bin_path("moatd")), "-n", "-c",
                        str(m.conf)], capture_output=True, text=True,
                       cwd=m.dir, timeout=30 * SLOW, env=m.env())
    assert r.returncode == 1, r
    err = r.stdout + r.stderr
    assert "%s:2: MD5-crypt hash refused" % m.users_file in err, err
    assert "%s:3: DES crypt hash refused" % m.users_file in err, err


def test_users_reloaded_on_sighup(authd):
    m = authd()
    with raw_sub(m) as c:
        assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw")).code == 235
    m.users_file.write_text("bob:%s\n" % sha512_crypt("new-pw"))
    mark = m.log_mark()
    m.reload()
    m.wait_log(r"event=reloaded", since=mark)
    m.wait_log(r"smtp-in.*event=start .*auth_users=1", since=mark)

    def new_pw_works():
        with raw_sub(m, source="127.0.0.6") as c:
            return c.cmd("AUTH PLAIN " + plain("bob", "new-pw")).code == 235
    moatlib.wait_until(new_pw_works, 10 * SLOW, "the reloaded users")
