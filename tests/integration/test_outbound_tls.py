"""test_outbound_tls - STARTTLS on outbound SMTP and its policies
(issue 4, point 3: outbound_tls, tls_policy_map, tls_ca_file).

The world of test_outbound.py (fixture `net`: a DNS server, sinks on
127.0.0.N playing hN.hosts.test) with certificates from a throwaway CA
(testca.py): a sink gets a leaf certificate whose subjectAltName is its
MX host name, another name, or a self-signed one.  Each test checks
what the sink saw (TLS or not, and every command line with whether it
came inside TLS: under `encrypt`/`verify` no MAIL may ever arrive in
clear) and moat's delivery lines: tls=TLSv1.x cipher=... verified=...,
or tls=no.

References: docs/configuration.md (outbound_tls, tls_policy_map,
tls_ca_file), RFC 3207 (STARTTLS), RFC 6125 (names in certificates).
"""

import re
import ssl
import warnings

import pytest

from moatlib import wait_until
import test_outbound
from test_outbound import (RETRY_NEVER, WAIT, host, msg, results, submit,
                           wait_removed, wait_result)
from test_queue_ctl import ctl_ok
from testca import TestCA

TLS_VERSION = re.compile(r"^TLSv1\.[23]$")

# the fixture of test_outbound.py: DNS server, sinks, moat
net = test_outbound.net


@pytest.fixture
def ca(moat_base):
    return TestCA(moat_base / "ca")


def tls_sink(ca, *names):
    """Sink options: STARTTLS with a leaf for names from ca."""
    return dict(tls_context=ca.server_context(*ca.leaf(*names)))


def start(n, policy=(), **settings):
    """Write the tls_policy_map (if any), the config, start moat."""
    if policy:
        p = n.m.dir / "tls_policy"
        p.write_text("".join("%s\n" % line for line in policy))
        settings["tls_policy_map"] = str(p)
    n.m.write_config(**settings)
    n.m.start()
    return n


def nothing_in_clear(sink):
    """No transaction command ever reached the sink outside TLS."""
    clear = sink.verbs(tls=False)
    for v in ("MAIL", "RCPT", "DATA", "BDAT"):
        assert v not in clear, sink.commands


def assert_tls_fields(f, verified=None):
    assert TLS_VERSION.match(f.get("tls", "")), f
    assert f.get("cipher"), f
    if verified is not None:
        assert f.get("verified") == verified, f


def test_may_uses_starttls_when_offered(net, ca):
    n = net(domains={"tls.test": [("MX", 10, host(2))],
                     "plain.test": [("MX", 10, host(3))]},
            sinks={2: tls_sink(ca, host(2)), 3: {}})
    q1 = submit(n.m, ["u@tls.test"], msg("may-tls"))
    t = n.sink(2).wait(1, timeout=WAIT)[0]
    assert t.tls and t.rcpts == ["u@tls.test"], t
    assert n.sink(2).verbs(tls=False) == ["EHLO", "STARTTLS"]
    assert n.sink(2).verbs(tls=True)[:2] == ["EHLO", "MAIL"]
    f1 = wait_result(n.m, q1, "u@tls.test", "sent")
    # a server without STARTTLS gets the mail in clear under "may"
    q2 = submit(n.m, ["u@plain.test"], msg("may-plain"))
    t = n.sink(3).wait(1, timeout=WAIT)[0]
    assert not t.tls
    f = wait_result(n.m, q2, "u@plain.test", "sent")
    assert f.get("tls") == "no", f
    assert_tls_fields(f1)


def test_may_failed_handshake_retried_in_clear(net, ca):
    # the sink speaks TLS 1.1 at most, moat 1.2 and 1.3 only: the
    # handshake fails at the ClientHello, and under "may" the same
    # server gets the mail without TLS
    opts = tls_sink(ca, host(2))
    ctx = opts["tls_context"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    n = net(domains={"hs.test": [("MX", 10, host(2))]}, sinks={2: opts})
    qid = submit(n.m, ["u@hs.test"], msg("handshake"))
    t = n.sink(2).wait(1, timeout=WAIT)[0]
    assert not t.tls and t.rcpts == ["u@hs.test"], t
    assert n.sink(2).connections >= 2
    f = wait_result(n.m, qid, "u@hs.test", "sent")
    assert f.get("tls") == "no", f


def test_encrypt_without_starttls_defers_then_delivers_over_tls(net, ca):
    n = net(start=False, domains={"enc.test": [("MX", 10, host(2))]},
            sinks={2: {}}, **RETRY_NEVER)
    start(n, ["enc.test encrypt"])
    s = n.sink(2)
    qid = submit(n.m, ["u@enc.test"], msg("encrypt"))
    f = wait_result(n.m, qid, "u@enc.test", "deferred")
    assert f["dsn"] == "4.7.5", f
    assert "TLS" in f["reason"], f
    assert s.connections >= 1
    nothing_in_clear(s)
    assert s.received() == [] and s.failed == [], (s.received(), s.failed,
                                                    s.commands)
    # the server learns STARTTLS; a flush delivers, inside TLS only
    s.tls_context = ca.server_context(*ca.leaf(host(2)))
    mark = n.m.log_mark()
    assert ctl_ok(n.m, "flush") == "1 message scheduled for delivery\n"
    t = s.wait(1, timeout=WAIT)[0]
    assert t.tls and t.rcpts == ["u@enc.test"], t
    nothing_in_clear(s)
    f = wait_result(n.m, qid, "u@enc.test", "sent", since=mark)
    wait_removed(n.m, qid, 1, 0)
    assert_tls_fields(f)


def test_encrypt_starttls_refused_defers(net, ca):
    opts = tls_sink(ca, host(2))
    opts["starttls_code"] = (454, "4.7.0 TLS not available now")
    n = net(start=False, domains={"enc.test": [("MX", 10, host(2))]},
            sinks={2: opts}, **RETRY_NEVER)
    start(n, ["enc.test encrypt"])
    qid = submit(n.m, ["u@enc.test"], msg("starttls454"))
    f = wait_result(n.m, qid, "u@enc.test", "deferred")
    assert f["dsn"].startswith("4.7."), f
    assert "STARTTLS" in n.sink(2).verbs()
    nothing_in_clear(n.sink(2))
    assert n.sink(2).received() == []


def test_verify_with_test_ca_and_matching_mx_name(net, ca):
    # the certificate names the MX host, not the recipient domain
    n = net(start=False, domains={"ver.test": [("MX", 10, host(2))]},
            sinks={2: tls_sink(ca, host(2))}, **RETRY_NEVER)
    start(n, ["ver.test verify"], tls_ca_file=str(ca.cert))
    qid = submit(n.m, ["u@ver.test"], msg("verify"))
    t = n.sink(2).wait(1, timeout=WAIT)[0]
    assert t.tls, t
    nothing_in_clear(n.sink(2))
    f = wait_result(n.m, qid, "u@ver.test", "sent")
    wait_removed(n.m, qid, 1, 0)
    assert_tls_fields(f, verified="yes")


@pytest.mark.parametrize("cert", ["other-name", "self-signed"])
def test_verify_bad_certificate_defers_nothing_sent(net, ca, cert):
    if cert == "other-name":
        pair = ca.leaf("other.hosts.test")
    else:
        pair = ca.self_signed(host(2))
    n = net(start=False, domains={"ver.test": [("MX", 10, host(2))]},
            sinks={2: dict(tls_context=TestCA.server_context(*pair))},
            **RETRY_NEVER)
    start(n, ["ver.test verify"], tls_ca_file=str(ca.cert))
    s = n.sink(2)
    qid = submit(n.m, ["u@ver.test"], msg("verify-" + cert))
    f = wait_result(n.m, qid, "u@ver.test", "deferred")
    assert f["dsn"].startswith("4.7."), f
    assert s.connections >= 1
    # nothing after the handshake, in clear or not
    for v in ("MAIL", "RCPT", "DATA", "BDAT"):
        assert v not in s.verbs(), s.commands
    assert s.received() == [] and s.failed == [], (s.received(), s.failed,
                                                    s.commands)
    # still queued, with its state (written right after the log line)
    wait_until(lambda: n.m.spool_files("queue") == [qid, qid + ".state"],
               5, "the deferred message and its state in the queue")


def test_verify_skips_mx_with_bad_certificate(net, ca):
    # MX 10 shows a self-signed certificate, MX 20 a good one
    n = net(start=False, domains={"ver.test": [("MX", 10, host(2)),
                                               ("MX", 20, host(3))]},
            sinks={2: dict(tls_context=TestCA.server_context(
                *ca.self_signed(host(2)))),
                   3: tls_sink(ca, host(3))},
            **RETRY_NEVER)
    start(n, ["ver.test verify"], tls_ca_file=str(ca.cert))
    qid = submit(n.m, ["u@ver.test"], msg("verify-fallback"))
    t = n.sink(3).wait(1, timeout=WAIT)[0]
    assert t.tls, t
    f = wait_result(n.m, qid, "u@ver.test", "sent")
    assert f["relay"].startswith(host(3) + "["), f
    assert n.sink(2).connections >= 1
    for v in ("MAIL", "RCPT", "DATA", "BDAT"):
        assert v not in n.sink(2).verbs(), n.sink(2).commands
    assert_tls_fields(f, verified="yes")


def test_starttls_response_injection_ignored(net, ca):
    # plaintext behind the 220 must not be read as an answer inside TLS
    opts = tls_sink(ca, host(2))
    opts["starttls_inject"] = b"554 5.7.0 injected refusal\r\n"
    n = net(domains={"inj.test": [("MX", 10, host(2))]}, sinks={2: opts})
    qid = submit(n.m, ["u@inj.test"], msg("inject"))
    # delivered (inside TLS, or in clear after an aborted handshake
    # under "may"), never bounced with the injected words
    n.sink(2).wait(1, timeout=WAIT)
    wait_removed(n.m, qid, 1, 0)
    assert not [f for f in results(n.m, qid)
                if f["status"] != "sent" or "injected" in f.get("reason",
                                                               "")]


def test_global_encrypt_with_may_exception(net, ca):
    n = net(start=False, domains={"enc2.test": [("MX", 10, host(3))],
                                  "legacy.test": [("MX", 10, host(3))]},
            sinks={3: {}}, **RETRY_NEVER)
    start(n, ["legacy.test may"], outbound_tls="encrypt")
    q1 = submit(n.m, ["u@enc2.test"], msg("global-encrypt"))
    f = wait_result(n.m, q1, "u@enc2.test", "deferred")
    assert f["dsn"] == "4.7.5", f
    q2 = submit(n.m, ["u@legacy.test"], msg("legacy"))
    t = n.sink(3).wait(1, timeout=WAIT)[0]
    assert t.rcpts == ["u@legacy.test"] and not t.tls, t
    wait_removed(n.m, q2, 1, 0)
    assert [t.rcpts for t in n.sink(3).received()] == [["u@legacy.test"]]


def test_policy_keyed_by_host_of_fixed_next_hop(net, ca):
    n = net(start=False, sinks={2: tls_sink(ca, host(2)), 3: {}},
            transport=["fx.test smtp:[%s]:{port}" % host(3),
                       "fv.test smtp:[%s]:{port}" % host(2)],
            **RETRY_NEVER)
    start(n, ["fx.test may", "fv.test encrypt",
              host(3) + " encrypt", host(2) + " verify"],
          tls_ca_file=str(ca.cert))
    q1 = submit(n.m, ["u@fx.test"], msg("fixed-encrypt"))
    f = wait_result(n.m, q1, "u@fx.test", "deferred")
    assert f["dsn"] == "4.7.5", f
    nothing_in_clear(n.sink(3))
    assert n.sink(3).received() == []
    q2 = submit(n.m, ["u@fv.test"], msg("fixed-verify"))
    t = n.sink(2).wait(1, timeout=WAIT)[0]
    assert t.tls, t
    f = wait_result(n.m, q2, "u@fv.test", "sent")
    assert_tls_fields(f, verified="yes")
