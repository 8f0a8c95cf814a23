"""test_dns - src/common/dns.c against a real DNS server on loopback.

tests/tools/dnsq (built from MOAT_BUILD, see the Makefile's "DNS test
driver" block) runs lookups through dns.c on one libevent loop and
prints one line per answer, in the order the answers arrive;
dnsserver.py serves ZONES below over UDP and TCP and counts the queries
it gets, so the tests can tell a cache hit from a packet.

Orderings are asserted, not timings, except for loose upper bounds that
show a timeout fired.
"""

import ipaddress
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

import moatlib
from dnsserver import DnsServer, make_query, parse_query

DNSQ = moatlib.BUILD / "tools" / "dnsq"

MANY_MX = 100               # over DNS_MX_MAX and over 1232 octets

V6 = ipaddress.ip_address("2001:db8::1")

ZONES = {
    "example.test": {
        "example.test": [("MX", 10, "mx1.example.test"),
                         ("MX", 20, "mx2.example.test"),
                         ("MX", 20, "mx3.example.test"),
                         ("MX", 30, "MX4.Example.Test.")],
        "mx1.example.test": [("A", "192.0.2.1"), ("AAAA", str(V6))],
        "mx2.example.test": [("A", "192.0.2.2")],
        "mx3.example.test": [("A", "192.0.2.3"), ("A", "192.0.2.33")],
        "mx4.example.test": [("A", "192.0.2.4")],
        "v6only.example.test": [("AAAA", "2001:db8::6")],
        "implicit.example.test": [("A", "192.0.2.10")],
        "nullmx.example.test": [("MX", 0, ".")],
        "mixednull.example.test": [("MX", 0, "."),
                                   ("MX", 10, "mx1.example.test")],
        "dup.example.test": [("MX", 10, "mx1.example.test"),
                             ("MX", 20, "MX1.example.test"),
                             ("MX", 5, "mx2.example.test")],
        "badhost.example.test": [("MX", 10, "bad_host!.example.test"),
                                 ("MX", 20, "mx2.example.test")],
        "many.example.test": [("MX", 100 - i, "h%03d.example.test" % i)
                              for i in range(MANY_MX)],
        "servfail.example.test": [("MX", 10, "mx1.example.test")],
        "refused.example.test": [("MX", 10, "mx1.example.test")],
        "slow.example.test": [("MX", 10, "mx1.example.test")],
        "tc.example.test": [("TXT", "over TCP")],
        "ttl0.example.test": [("MX", 10, "mx1.example.test", 0)],
        "ttl1.example.test": [("MX", 10, "mx1.example.test", 1)],
        "alias.example.test": [("CNAME", "mx1.example.test")],
        "txt.example.test": [("TXT", ["v=spf1 ip4:192.0.2.0/24", " -all"]),
                             ("TXT", b"tab\there \"q\"")],
        "_dmarc.example.test": [("TXT", "v=DMARC1; p=none")],
    },
    "shortneg.test": {
        "shortneg.test": [("SOA", 1, 60)],
    },
    "2.0.192.in-addr.arpa": {
        "1.2.0.192.in-addr.arpa": [("PTR", "mx1.example.test"),
                                   ("PTR", "mail.example.test.")],
    },
    "8.b.d.0.1.0.0.2.ip6.arpa": {
        V6.reverse_pointer: [("PTR", "mx1.example.test")],
    },
}

BEHAVIOUR = {
    "servfail.example.test": "servfail",
    "refused.example.test": "refused",
    "slow.example.test": "timeout",
    "tc.example.test": "truncate",
}

FIELD_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"(?:,"(?:[^"\\]|\\.)*")*'
                      r'|\S+)')


@pytest.fixture(scope="module")
def dnsq_bin():
    """The driver, built if this checkout's make knows how."""
    try:
        rel = DNSQ.relative_to(moatlib.REPO)
    except ValueError:
        rel = None
    if rel is not None:
        r = subprocess.run(["make", "-s", str(rel)], cwd=moatlib.REPO,
                           capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "make %s failed:\n%s%s" % (
            rel, r.stdout, r.stderr)
    assert os.access(DNSQ, os.X_OK), "%s not built" % DNSQ
    return DNSQ


@pytest.fixture
def dns():
    """A DnsServer with ZONES and BEHAVIOUR on a free port of 127.0.0.1."""
    with DnsServer(ZONES, behaviour=BEHAVIOUR) as d:
        yield d


class Answer:
    """One line of dnsq: kind, arg and the key=value fields."""

    def __init__(self, line):
        self.line = line
        head, _, rest = line.partition(" status=")
        self.kind, self.arg = head.split(" ", 1)
        self.f = dict(FIELD_RE.findall("status=" + rest))

    @property
    def status(self):
        return self.f["status"]

    @property
    def cached(self):
        return self.f["cached"] == "1"

    @property
    def ttl(self):
        return int(self.f["ttl"])

    @property
    def mx(self):
        """[(pref, host)] in the order given."""
        if "mx" not in self.f:
            return []
        return [(int(p), h) for p, h in
                (x.split(":", 1) for x in self.f["mx"].split(","))]

    @property
    def addrs(self):
        return self.f["addr"].split(",") if "addr" in self.f else []

    @property
    def ptr(self):
        return self.f["ptr"].split(",") if "ptr" in self.f else []

    @property
    def txt(self):
        if "txt" not in self.f:
            return []
        out = []
        for s in re.findall(r'"((?:[^"\\]|\\.)*)"', self.f["txt"]):
            out.append(re.sub(r"\\x([0-9a-f]{2})",
                              lambda m: chr(int(m.group(1), 16)), s))
        return out

    def __repr__(self):
        return "Answer(%r)" % self.line


def run_dnsq(binary, servers, *steps, timeout_ms=3000, tries=None,
             extra=(), bound=60):
    """Run dnsq; returns its answers.  Fails on a sanitizer report."""
    if isinstance(servers, DnsServer):
        servers = [servers]
    args = [str(binary), "-t", str(timeout_ms)]
    for s in servers:
        args += ["-s", s.address if isinstance(s, DnsServer) else s]
    if tries:
        args += ["-r", str(tries)]
    args += list(extra) + list(steps)
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    r = subprocess.run(args, capture_output=True, text=True, env=env,
                       timeout=bound * moatlib.SLOW,
                       stdin=subprocess.DEVNULL)
    assert not moatlib.SANITIZER_RE.search(r.stderr), r.stderr
    assert r.returncode == 0, "dnsq exit %d: %s" % (r.returncode, r.stderr)
    return [Answer(l) for l in r.stdout.splitlines()]


def one(answers, kind, arg):
    """The only answer for (kind, arg)."""
    got = [a for a in answers if a.kind == kind and a.arg == arg]
    assert len(got) == 1, answers
    return got[0]


# ---- MX ---------------------------------------------------------------

def test_mx_preference_order(dnsq_bin, dns):
    a = one(run_dnsq(dnsq_bin, dns, "mx:example.test"), "mx", "example.test")
    assert a.status == "OK" and not a.cached and a.ttl == 300
    prefs = [p for p, _ in a.mx]
    assert prefs == [10, 20, 20, 30]
    assert a.mx[0][1] == "mx1.example.test"
    assert {h for _, h in a.mx[1:3]} == {"mx2.example.test",
                                         "mx3.example.test"}
    # names come back lower case, without the trailing dot
    assert a.mx[3][1] == "mx4.example.test"
    assert dns.count("example.test", "MX") == 1


def test_mx_equal_preferences_shuffled(dnsq_bin, dns):
    """Both orders of the two preference-20 hosts show up, from the
    network (one process per lookup) and from the cache (re-shuffled on
    every hit)."""
    def pair(a):
        return tuple(h for p, h in a.mx if p == 20)

    seen = set()
    for _ in range(16):
        seen.add(pair(one(run_dnsq(dnsq_bin, dns, "mx:example.test"),
                          "mx", "example.test")))
    assert len(seen) == 2, seen

    steps = []
    for _ in range(30):
        steps += ["mx:example.test", "wait"]
    dns.reset_counts()
    answers = run_dnsq(dnsq_bin, dns, *steps)
    assert len(answers) == 30
    assert [a.cached for a in answers] == [False] + [True] * 29
    assert dns.count("example.test", "MX") == 1
    assert len({pair(a) for a in answers[1:]}) == 2
    for a in answers:
        assert [p for p, _ in a.mx] == [10, 20, 20, 30]


def test_mx_nodata_means_implicit_mx(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:implicit.example.test",
                       "addr:implicit.example.test")
    mx = one(answers, "mx", "implicit.example.test")
    assert mx.status == "NODATA" and mx.mx == []
    assert mx.ttl == 300        # SOA MINIMUM
    addr = one(answers, "addr", "implicit.example.test")
    assert addr.status == "OK" and addr.addrs == ["192.0.2.10"]


def test_null_mx(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:nullmx.example.test",
                       "mx:mixednull.example.test")
    assert one(answers, "mx", "nullmx.example.test").status == "NULL_MX"
    # RFC 7505 3 forbids mixing; the real host is used, "." ignored
    mixed = one(answers, "mx", "mixednull.example.test")
    assert mixed.status == "OK"
    assert mixed.mx == [(10, "mx1.example.test")]


def test_mx_duplicates_and_bad_hosts(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:dup.example.test",
                       "mx:badhost.example.test")
    assert one(answers, "mx", "dup.example.test").mx == [
        (5, "mx2.example.test"), (10, "mx1.example.test")]
    bad = one(answers, "mx", "badhost.example.test")
    # c-ares may refuse the whole answer or hand us the odd name, which
    # we drop; never is "bad_host!" delivered to
    assert bad.status in ("OK", "TEMPFAIL"), bad
    if bad.status == "OK":
        assert bad.mx == [(20, "mx2.example.test")]
        assert bad.f.get("truncated") == "1"


def test_nxdomain(dnsq_bin, dns):
    a = one(run_dnsq(dnsq_bin, dns, "mx:missing.example.test"),
            "mx", "missing.example.test")
    assert a.status == "NXDOMAIN" and a.ttl == 300


def test_servfail_refused_are_tempfail(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:servfail.example.test",
                       "mx:refused.example.test", "mx:elsewhere.invalid",
                       "mx:example.test")
    for name in ("servfail.example.test", "refused.example.test",
                 "elsewhere.invalid"):
        a = one(answers, "mx", name)
        assert a.status == "TEMPFAIL" and a.f["why"], a
    assert one(answers, "mx", "example.test").status == "OK"
    # failures are not cached
    answers = run_dnsq(dnsq_bin, dns, "mx:servfail.example.test", "wait",
                       "mx:servfail.example.test")
    assert [a.cached for a in answers] == [False, False]


def test_timeout_does_not_delay_other_lookups(dnsq_bin, dns):
    timeout_ms = 1500
    t0 = time.monotonic()
    answers = run_dnsq(dnsq_bin, dns, "mx:slow.example.test",
                       "mx:example.test", "addr:mx1.example.test",
                       "txt:txt.example.test", timeout_ms=timeout_ms)
    elapsed = time.monotonic() - t0
    assert [a.arg for a in answers][-1] == "slow.example.test", answers
    assert [a.status for a in answers[:-1]] == ["OK"] * 3
    slow = answers[-1]
    assert slow.status == "TEMPFAIL" and slow.f["why"] == '"timeout"'
    # the bound held: well before dnsq's own guard
    assert elapsed < (timeout_ms / 1000.0 + 5) * moatlib.SLOW
    assert int(slow.f["ms"]) < timeout_ms + 1000 * moatlib.SLOW
    assert dns.count("slow.example.test", "MX") >= 1


def test_dead_server_then_good_one(dnsq_bin, dns):
    """A resolver that refuses (ICMP unreachable) is skipped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = "127.0.0.1:%d" % s.getsockname()[1]
    answers = run_dnsq(dnsq_bin, [dead, dns], "mx:example.test",
                       timeout_ms=4000)
    assert one(answers, "mx", "example.test").status == "OK"


def test_ipv6_server(dnsq_bin):
    try:
        d = DnsServer(ZONES, host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        a = one(run_dnsq(dnsq_bin, d, "mx:example.test"),
                "mx", "example.test")
        assert a.status == "OK" and d.count("example.test", "MX") == 1
    finally:
        d.stop()


# ---- cache ------------------------------------------------------------

def test_cache_honours_ttl(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:example.test", "wait",
                       "mx:example.test", "mx:ttl0.example.test", "wait",
                       "mx:ttl0.example.test", "mx:ttl1.example.test",
                       "wait", "mx:ttl1.example.test", "sleep:1100",
                       "mx:ttl1.example.test")
    assert [(a.arg, a.cached) for a in answers] == [
        ("example.test", False), ("example.test", True),
        ("ttl0.example.test", False), ("ttl0.example.test", False),
        ("ttl1.example.test", False), ("ttl1.example.test", True),
        ("ttl1.example.test", False)]
    assert answers[1].ttl <= 300
    assert dns.count("example.test", "MX") == 1
    assert dns.count("ttl0.example.test", "MX") == 2
    assert dns.count("ttl1.example.test", "MX") == 2


def test_negative_cache(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:missing.example.test", "wait",
                       "mx:missing.example.test", "mx:implicit.example.test",
                       "wait", "mx:implicit.example.test",
                       "mx:gone.shortneg.test", "wait",
                       "mx:gone.shortneg.test", "sleep:1100",
                       "mx:gone.shortneg.test")
    assert [(a.status, a.cached) for a in answers] == [
        ("NXDOMAIN", False), ("NXDOMAIN", True),
        ("NODATA", False), ("NODATA", True),
        ("NXDOMAIN", False), ("NXDOMAIN", True), ("NXDOMAIN", False)]
    assert dns.count("missing.example.test") == 1
    assert dns.count("implicit.example.test") == 1
    # SOA MINIMUM 1 bounds the negative TTL (RFC 2308 5)
    assert dns.count("gone.shortneg.test") == 2


def test_negative_ttl_bound(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:missing.example.test", "wait",
                       "sleep:1100", "mx:missing.example.test",
                       extra=["-n", "1"])
    assert [a.cached for a in answers] == [False, False]
    assert dns.count("missing.example.test") == 2


def test_cache_size_bound(dnsq_bin, dns):
    """With room for one entry, the older answer is evicted (LRU)."""
    answers = run_dnsq(dnsq_bin, dns, "mx:example.test", "wait",
                       "mx:dup.example.test", "wait", "mx:dup.example.test",
                       "wait", "mx:example.test", extra=["-c", "1"])
    assert [a.cached for a in answers] == [False, False, True, False]
    assert dns.count("example.test", "MX") == 2


def test_equal_lookups_in_flight_share_one_query(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "mx:example.test", "mx:example.test",
                       "addr:mx1.example.test", "a:mx1.example.test")
    assert len(answers) == 4
    assert dns.count("example.test", "MX") == 1
    assert dns.count("mx1.example.test", "A") == 1
    assert dns.count("mx1.example.test", "AAAA") == 1


# ---- cancellation -----------------------------------------------------

def test_cancel(dnsq_bin, dns):
    # cancelled while in flight: no callback, but its answer is cached
    answers = run_dnsq(dnsq_bin, dns, "cancel:mx:example.test",
                       "mx:implicit.example.test", "wait", "sleep:200",
                       "mx:example.test")
    assert [(a.arg, a.cached) for a in answers] == [
        ("implicit.example.test", False), ("example.test", True)]
    assert dns.count("example.test", "MX") == 1
    # cancelled after a cache hit made it ready, before delivery
    answers = run_dnsq(dnsq_bin, dns, "mx:example.test", "wait",
                       "cancel:mx:example.test", "cancel:addr:mx1.example.test",
                       "sleep:200")
    assert [a.arg for a in answers] == ["example.test"]
    # cancelled with a lookup that never gets an answer
    answers = run_dnsq(dnsq_bin, dns, "cancel:mx:slow.example.test",
                       "mx:example.test", timeout_ms=1000)
    assert [a.arg for a in answers] == ["example.test"]


def test_shutdown_with_lookups_pending(dnsq_bin, dns):
    """dns_shutdown() drops pending lookups without callbacks (and,
    under ASan, without leaks); the resolver works again after init."""
    answers = run_dnsq(dnsq_bin, dns, "mx:slow.example.test",
                       "addr:slow.example.test", "shutdown",
                       "mx:example.test")
    assert [a.arg for a in answers] == ["example.test"]


# ---- TCP --------------------------------------------------------------

def test_truncated_answer_retried_over_tcp(dnsq_bin, dns):
    a = one(run_dnsq(dnsq_bin, dns, "txt:tc.example.test"),
            "txt", "tc.example.test")
    assert a.status == "OK" and a.txt == ["over TCP"]
    assert dns.count("tc.example.test", "TXT", "udp") == 1
    assert dns.count("tc.example.test", "TXT", "tcp") == 1


def test_large_mx_answer(dnsq_bin, dns):
    """100 MX records: over the EDNS size (TC, then TCP) and over
    DNS_MX_MAX (the 32 best kept, marked truncated)."""
    a = one(run_dnsq(dnsq_bin, dns, "mx:many.example.test"),
            "mx", "many.example.test")
    assert a.status == "OK" and a.f.get("truncated") == "1"
    assert a.mx == [(i + 1, "h%03d.example.test" % (MANY_MX - 1 - i))
                    for i in range(32)]
    assert dns.count("many.example.test", "MX", "tcp") == 1


# ---- addresses, PTR, TXT ---------------------------------------------

def test_addresses(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "addr:mx1.example.test",
                       "a:mx3.example.test", "aaaa:mx2.example.test",
                       "addr:v6only.example.test", "a:v6only.example.test",
                       "addr:alias.example.test", "addr:nothere.example.test")
    assert one(answers, "addr", "mx1.example.test").addrs == [
        "2001:db8::1", "192.0.2.1"]
    assert sorted(one(answers, "a", "mx3.example.test").addrs) == [
        "192.0.2.3", "192.0.2.33"]
    assert one(answers, "aaaa", "mx2.example.test").status == "NODATA"
    v6 = one(answers, "addr", "v6only.example.test")
    assert v6.status == "OK" and v6.addrs == ["2001:db8::6"]
    assert one(answers, "a", "v6only.example.test").status == "NODATA"
    assert one(answers, "addr", "alias.example.test").addrs == [
        "2001:db8::1", "192.0.2.1"]
    assert one(answers, "addr", "nothere.example.test").status == "NXDOMAIN"


def test_addr_one_family_fails(dnsq_bin, dns):
    """A answered, AAAA timed out: the addresses found are an answer."""
    dns.set_behaviour("mx2.example.test/AAAA", "timeout")
    a = one(run_dnsq(dnsq_bin, dns, "addr:mx2.example.test",
                     timeout_ms=1000), "addr", "mx2.example.test")
    assert a.status == "OK" and a.addrs == ["192.0.2.2"]
    dns.set_behaviour("mx2.example.test/A", "servfail")
    a = one(run_dnsq(dnsq_bin, dns, "addr:mx2.example.test",
                     timeout_ms=1000), "addr", "mx2.example.test")
    assert a.status == "TEMPFAIL"


def test_ptr(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "ptr:192.0.2.1", "ptr:2001:db8::1",
                       "ptr:192.0.2.99", "ptr:198.51.100.1")
    assert sorted(one(answers, "ptr", "192.0.2.1").ptr) == [
        "mail.example.test", "mx1.example.test"]
    assert one(answers, "ptr", "2001:db8::1").ptr == ["mx1.example.test"]
    assert one(answers, "ptr", "192.0.2.99").status == "NXDOMAIN"
    assert one(answers, "ptr", "198.51.100.1").status == "TEMPFAIL"
    assert dns.count(V6.reverse_pointer, "PTR") == 1


def test_txt(dnsq_bin, dns):
    answers = run_dnsq(dnsq_bin, dns, "txt:txt.example.test",
                       "txt:_dmarc.example.test", "txt:mx1.example.test")
    t = one(answers, "txt", "txt.example.test")
    assert sorted(t.txt) == ["tab\there \"q\"",
                             "v=spf1 ip4:192.0.2.0/24 -all"]
    assert one(answers, "txt", "_dmarc.example.test").txt == [
        "v=DMARC1; p=none"]
    assert one(answers, "txt", "mx1.example.test").status == "NODATA"


def test_bad_names_send_nothing(dnsq_bin, dns):
    long_name = ".".join(["a" * 63] * 4) + ".test"
    answers = run_dnsq(dnsq_bin, dns, "mx:bad..example.test",
                       "mx:-x y.example.test", "txt:" + "a" * 64 + ".test",
                       "mx:" + long_name, "mx:.", "mx:example.test.")
    assert [a.status for a in answers[:5]] == ["BADNAME"] * 5, answers
    last = one(answers, "mx", "example.test.")
    assert last.status == "OK"
    assert dns.count() == 1


# ---- the server itself ------------------------------------------------

def test_dnsserver_edns_and_truncation(dns):
    """Plain UDP answers stop at 512 octets, EDNS ones at 1232."""
    resp, _ = dns.answer(make_query("many.example.test", "MX"), "udp")
    assert len(resp) <= 512 and resp[2] & 0x02          # TC
    resp, _ = dns.answer(make_query("many.example.test", "MX", edns=4096),
                         "udp")
    assert len(resp) <= 1232 and resp[2] & 0x02
    resp, _ = dns.answer(make_query("many.example.test", "MX"), "tcp")
    assert not resp[2] & 0x02 and resp[6:8] == bytes([0, MANY_MX])
    resp, _ = dns.answer(make_query("example.test", "MX", edns=1232), "udp")
    assert not resp[2] & 0x02 and resp[3] & 0x0F == 0   # NOERROR
    assert parse_query(make_query("x.test", "A", edns=1232))["edns"] == 1232
    resp, _ = dns.answer(make_query("nothere.example.test", "A"), "udp")
    assert resp[3] & 0x0F == 3 and resp[8:10] == b"\0\1"  # NXDOMAIN, SOA
    resp, _ = dns.answer(make_query("x.elsewhere", "A"), "udp")
    assert resp[3] & 0x0F == 5                           # REFUSED


def test_dnsserver_cli_writes_seeds(tmp_path):
    d = tmp_path / "seeds"
    r = subprocess.run(["/usr/bin/python3",
                        str(Path(__file__).with_name("dnsserver.py")),
                        "--write-seeds", str(d)],
                       capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    seeds = sorted(os.listdir(d))
    assert "mx-example" in seeds and "ptr-1" in seeds
    assert all((d / s).stat().st_size > 12 for s in seeds)


def test_slow_answer_within_the_bound(dnsq_bin, dns):
    """An answer that takes a while still counts, and comes last."""
    dns.set_behaviour("mx2.example.test", "delay=0.5")
    answers = run_dnsq(dnsq_bin, dns, "a:mx2.example.test",
                       "a:mx3.example.test", timeout_ms=3000)
    assert [(a.arg, a.status) for a in answers] == [
        ("mx3.example.test", "OK"), ("mx2.example.test", "OK")]


def test_dnsserver_cli_serves_json_zones(dnsq_bin, tmp_path):
    zones = tmp_path / "zones.json"
    zones.write_text(json.dumps({"cli.test": {
        "cli.test": [["MX", 5, "mx.cli.test"]],
        "mx.cli.test": [["A", "192.0.2.55", 60]]}}))
    port = moatlib.free_port()
    p = subprocess.Popen(["/usr/bin/python3",
                          str(Path(__file__).with_name("dnsserver.py")),
                          "--listen", "127.0.0.1:%d" % port,
                          "--zones", str(zones),
                          "--behaviour", "sf.cli.test=servfail"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()      # bound: the test timeout
        assert "udp+tcp 127.0.0.1:%d" % port in line, line
        answers = run_dnsq(dnsq_bin, ["127.0.0.1:%d" % port], "mx:cli.test",
                           "addr:mx.cli.test", "mx:sf.cli.test")
        assert one(answers, "mx", "cli.test").mx == [(5, "mx.cli.test")]
        a = one(answers, "addr", "mx.cli.test")
        assert a.addrs == ["192.0.2.55"] and a.ttl == 60
        assert one(answers, "mx", "sf.cli.test").status == "TEMPFAIL"
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0
