#!/usr/bin/python3
"""dnsserver - a small authoritative DNS server for moat's tests.

Pure Python stdlib.  It answers over UDP and TCP on one loopback address
and port, from zones given as a Python dict, and plays the "real DNS
server on loopback" of the delivery and anti-spam tests: MX preference
order, implicit MX (NODATA), null MX (RFC 7505), NXDOMAIN, SERVFAIL,
timeouts, truncation, later DNSBL zones, PTR and SPF TXT.

    zones = {
        "example.test": {                       # zone apex
            "example.test": [("MX", 10, "mx1.example.test"),
                             ("MX", 20, "mx2.example.test", 60)],
            "mx1.example.test": [("A", "192.0.2.1"),
                                 ("AAAA", "2001:db8::1")],
            "txt.example.test": [("TXT", ["v=spf1 ", "-all"])],
            "alias.example.test": [("CNAME", "mx1.example.test")],
            "nullmx.example.test": [("MX", 0, ".")],
        },
        "2.0.192.in-addr.arpa": {
            "1.2.0.192.in-addr.arpa": [("PTR", "mx1.example.test")],
        },
    }
    with DnsServer(zones, behaviour={"sf.example.test": "servfail"}) as d:
        ... resolver at d.host:d.port (UDP and TCP) ...
        d.count("example.test", "MX")           # queries seen

Records are tuples: (TYPE, DATA[, TTL]) for A, AAAA, CNAME, PTR, NS and
TXT (DATA of a TXT record is a str, bytes, or a list of them: one
character-string each), (MX, PREFERENCE, HOST[, TTL]) and, at a zone
apex only, (SOA, MINIMUM[, TTL]) to set the negative-caching TTL
(RFC 2308 5); TTL defaults to 300.  Names are absolute, any case, with
or without the trailing dot; "." is the root (the null MX target).

Answers: authoritative (AA); a CNAME is followed inside the served
zones; a name without records of the type is NOERROR with the zone's
SOA in the authority section (NODATA), an unknown name in a served zone
is NXDOMAIN with the SOA, a name outside every zone is REFUSED.  EDNS
(RFC 6891): a query with OPT gets an OPT back and UDP answers up to
min(its size, 1232) octets, else 512; a larger answer is sent empty
with TC set, so the client retries over TCP (RFC 1035 4.2.1, RFC 7766).

Behaviours, per name ("name") or per name and type ("name/MX"):
    "servfail"   answer SERVFAIL (RFC 1035 4.1.1 rcode 2)
    "refused"    answer REFUSED
    "timeout"    never answer (UDP and TCP)
    "truncate"   over UDP, answer empty with TC set; TCP answers fully
    "delay=S"    answer normally after S seconds

Every query is recorded (.queries, .count()).  start() binds both
sockets before it returns and stop() joins the threads within a bound.

CLI, for manual use:
    python3 dnsserver.py [--listen 127.0.0.1:5353] [--zones FILE.json]
        [--behaviour NAME=WHAT]...
serves the zones of FILE.json (the dict above, lists for tuples) or the
built-in DEMO_ZONES until interrupted, logging each query to stderr.
    python3 dnsserver.py --write-seeds DIR
writes fuzzer seeds (tests/fuzz/fuzz_dns.c): one octet naming the RR
type, then a response packet of the demo zones.
"""

import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "AAAA": 28, "OPT": 41, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
CLASS_IN = 1

DEFAULT_TTL = 300
DEFAULT_NEG_TTL = 300
UDP_PLAIN_MAX = 512         # RFC 1035 4.2.1
EDNS_SIZE = 1232            # DNS flag day 2020
CNAME_CHAIN_MAX = 8
TCP_CONN_MAX = 32
IO_POLL = 0.1               # seconds: how often loops look at the stop flag
TCP_IDLE = 10.0             # a silent TCP client is closed after this
BEHAVIOURS = ("servfail", "refused", "timeout", "truncate")

# the zones of the CLI and of the fuzzer seeds
DEMO_ZONES = {
    "example.test": {
        "example.test": [("MX", 10, "mx1.example.test"),
                         ("MX", 20, "mx2.example.test"),
                         ("MX", 20, "mx3.example.test"),
                         ("TXT", ["v=spf1 ip4:192.0.2.0/24 ", "-all"])],
        "mx1.example.test": [("A", "192.0.2.1"), ("AAAA", "2001:db8::1")],
        "mx2.example.test": [("A", "192.0.2.2")],
        "mx3.example.test": [("A", "192.0.2.3"), ("A", "192.0.2.33")],
        "noMX.example.test": [("A", "192.0.2.4")],
        "nullmx.example.test": [("MX", 0, ".")],
        "alias.example.test": [("CNAME", "mx1.example.test")],
    },
    "2.0.192.in-addr.arpa": {
        "1.2.0.192.in-addr.arpa": [("PTR", "mx1.example.test")],
    },
}


class DnsError(Exception):
    """A malformed packet or zone."""


# ---- wire format -----------------------------------------------------

def split_name(name):
    """Absolute name (str or bytes) -> list of label bytes; [] = root."""
    if isinstance(name, str):
        name = name.encode("ascii")
    name = name.rstrip(b".")
    if not name:
        return []
    labels = name.split(b".")
    for lab in labels:
        if not 0 < len(lab) <= 63:
            raise DnsError("bad label in %r" % name)
    if len(name) > 253:
        raise DnsError("name too long: %r" % name)
    return labels


def norm(name):
    """Lookup key of a name: lower case, no trailing dot."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.rstrip(".").lower()


class Encoder:
    """Builds one DNS message, compressing names (RFC 1035 4.1.4)."""

    def __init__(self):
        self.buf = bytearray()
        self.offsets = {}

    def name(self, labels):
        for i in range(len(labels)):
            key = b".".join(labels[i:]).lower()
            off = self.offsets.get(key)
            if off is not None:
                self.buf += struct.pack("!H", 0xC000 | off)
                return
            if len(self.buf) < 0x3FFF:
                self.offsets[key] = len(self.buf)
            self.buf.append(len(labels[i]))
            self.buf += labels[i]
        self.buf.append(0)

    def rr(self, owner, rtype, ttl, rdata_fn, rclass=CLASS_IN):
        """Append one RR; rdata_fn(self) appends the RDATA."""
        self.name(owner)
        self.buf += struct.pack("!HHI", rtype, rclass, ttl)
        at = len(self.buf)
        self.buf += b"\0\0"
        rdata_fn(self)
        struct.pack_into("!H", self.buf, at, len(self.buf) - at - 2)


class Record:
    """One resource record of a zone."""

    def __init__(self, owner, rtype, data, ttl):
        self.owner = split_name(owner)
        self.rtype = rtype
        self.data = data
        self.ttl = ttl

    @classmethod
    def parse(cls, owner, t):
        """A zone tuple (see the module comment) -> Record."""
        t = list(t)
        if not t or str(t[0]).upper() not in TYPES:
            raise DnsError("%s: unknown record %r" % (owner, t))
        rtype = str(t[0]).upper()
        if rtype == "MX":
            if len(t) not in (3, 4):
                raise DnsError("%s: MX needs preference and host" % owner)
            data = (int(t[1]), split_name(t[2]))
            ttl = t[3] if len(t) == 4 else DEFAULT_TTL
        else:
            if len(t) not in (2, 3):
                raise DnsError("%s: %s needs one value" % (owner, rtype))
            data = t[1]
            ttl = t[2] if len(t) == 3 else DEFAULT_TTL
            if rtype == "A":
                data = ipaddress.IPv4Address(data).packed
            elif rtype == "AAAA":
                data = ipaddress.IPv6Address(data).packed
            elif rtype in ("CNAME", "PTR", "NS"):
                data = split_name(data)
            elif rtype == "TXT":
                if isinstance(data, (str, bytes)):
                    data = [data]
                data = [s.encode("utf-8") if isinstance(s, str) else s
                        for s in data]
                if any(len(s) > 255 for s in data):
                    raise DnsError("%s: TXT string over 255" % owner)
            elif rtype == "SOA":
                data = int(data)    # the minimum (negative TTL)
            else:
                raise DnsError("%s: %s records are not served"
                               % (owner, rtype))
        return cls(owner, TYPES[rtype], data, int(ttl))

    def encode(self, enc):
        def rdata(e):
            t = self.rtype
            if t in (TYPES["A"], TYPES["AAAA"]):
                e.buf += self.data
            elif t in (TYPES["CNAME"], TYPES["PTR"], TYPES["NS"]):
                e.name(self.data)
            elif t == TYPES["MX"]:
                e.buf += struct.pack("!H", self.data[0])
                e.name(self.data[1])
            elif t == TYPES["TXT"]:
                for s in self.data:
                    e.buf.append(len(s))
                    e.buf += s
            elif t == TYPES["SOA"]:
                e.name([b"ns"] + self.owner)
                e.name([b"hostmaster"] + self.owner)
                e.buf += struct.pack("!IIIII", 1, 3600, 600, 86400,
                                     self.data)
        enc.rr(self.owner, self.rtype, self.ttl, rdata)


def parse_query(pkt):
    """Query octets -> dict (id, flags, qname labels, qtype, edns size)."""
    if len(pkt) < 12:
        raise DnsError("short packet")
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", pkt[:12])
    q = {"id": qid, "flags": flags, "qdcount": qd, "edns": None}
    if flags & 0x8000:
        raise DnsError("not a query")
    if qd != 1:
        return q
    pos, labels = 12, []
    while True:
        if pos >= len(pkt):
            raise DnsError("truncated name")
        n = pkt[pos]
        pos += 1
        if n == 0:
            break
        if n > 63 or pos + n > len(pkt):
            raise DnsError("bad label")
        labels.append(pkt[pos:pos + n])
        pos += n
    if pos + 4 > len(pkt):
        raise DnsError("truncated question")
    q["qname"] = labels
    q["qtype"], q["qclass"] = struct.unpack("!HH", pkt[pos:pos + 4])
    pos += 4
    # EDNS: an OPT RR (root owner) in the additional section, RFC 6891 6.1
    if an == 0 and ns == 0 and ar >= 1 and pos + 11 <= len(pkt) \
            and pkt[pos] == 0:
        rtype, size = struct.unpack("!HH", pkt[pos + 1:pos + 5])
        if rtype == TYPES["OPT"]:
            q["edns"] = max(size, UDP_PLAIN_MAX)
    return q


def build_response(q, rcode, answers=(), authority=(), tc=False, aa=True):
    """Response octets for parsed query q with Record lists."""
    flags = 0x8000 | (q["flags"] & 0x7900) | rcode    # QR, opcode, RD
    if aa:
        flags |= 0x0400
    if tc:
        flags |= 0x0200
    enc = Encoder()
    arcount = 1 if q.get("edns") else 0
    qd = 1 if "qname" in q else 0
    enc.buf += struct.pack("!HHHHHH", q["id"], flags, qd, len(answers),
                           len(authority), arcount)
    if qd:
        enc.name(q["qname"])
        enc.buf += struct.pack("!HH", q["qtype"], q["qclass"])
    for r in answers:
        r.encode(enc)
    for r in authority:
        r.encode(enc)
    if arcount:
        enc.rr([], TYPES["OPT"], 0, lambda e: None, rclass=EDNS_SIZE)
    return bytes(enc.buf)


def make_query(name, qtype, qid=0x1234, edns=None):
    """Query octets (for tests and the seed writer)."""
    q = {"id": qid, "flags": 0x0100, "qname": split_name(name),
         "qtype": TYPES[qtype] if isinstance(qtype, str) else qtype,
         "qclass": CLASS_IN, "edns": edns}
    enc = Encoder()
    enc.buf += struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0,
                           1 if edns else 0)
    enc.name(q["qname"])
    enc.buf += struct.pack("!HH", q["qtype"], CLASS_IN)
    if edns:
        enc.rr([], TYPES["OPT"], 0, lambda e: None, rclass=edns)
    return bytes(enc.buf)


# ---- zones -----------------------------------------------------------

class Zone:
    """One served zone: apex, records by owner name, SOA."""

    def __init__(self, apex, names):
        self.apex = norm(apex)
        self.records = {}
        soa_min, soa_ttl = DEFAULT_NEG_TTL, DEFAULT_NEG_TTL
        for owner, recs in names.items():
            key = norm(owner)
            if key != self.apex and not key.endswith("." + self.apex):
                raise DnsError("%s is outside zone %s" % (owner, apex))
            for t in recs:
                r = Record.parse(owner, t)
                if r.rtype == TYPES["SOA"]:
                    if key != self.apex:
                        raise DnsError("SOA only at the apex of %s" % apex)
                    soa_min, soa_ttl = r.data, r.ttl
                    continue
                self.records.setdefault(key, []).append(r)
        for key, recs in self.records.items():
            if any(r.rtype == TYPES["CNAME"] for r in recs) and len(recs) > 1:
                raise DnsError("%s: CNAME and other data" % key)
        self.soa = Record(self.apex, TYPES["SOA"], soa_min, soa_ttl)

    def exists(self, key):
        """Does the name own records or sit above some (RFC 8020)?"""
        if key == self.apex or key in self.records:
            return True
        return any(k.endswith("." + key) for k in self.records)


class DnsServer:
    """The server: see the module comment."""

    def __init__(self, zones, host="127.0.0.1", port=0, behaviour=None,
                 log=None):
        self.host = host
        self.port = port
        self.log = log
        self.lock = threading.Lock()
        self.zones = {}
        self.behaviour = {}
        self.queries = []           # (proto, name, type name)
        self.set_zones(zones)
        for k, v in (behaviour or {}).items():
            self.set_behaviour(k, v)
        self._stop = threading.Event()
        self._threads = []
        self._udp = self._tcp = None
        self._conns = set()

    # ---- configuration (may change while running) --------------------

    def set_zones(self, zones):
        parsed = {norm(apex): Zone(apex, names)
                  for apex, names in zones.items()}
        with self.lock:
            self.zones = parsed

    def set_behaviour(self, key, what):
        """key "name" or "name/TYPE"; what None removes it."""
        name, _, rtype = key.partition("/")
        k = (norm(name), rtype.upper() or None)
        if what is not None and what not in BEHAVIOURS \
                and not str(what).startswith("delay="):
            raise DnsError("unknown behaviour %r" % what)
        with self.lock:
            if what is None:
                self.behaviour.pop(k, None)
            else:
                self.behaviour[k] = what

    def count(self, name=None, qtype=None, proto=None):
        """How many queries matched (None = any)."""
        with self.lock:
            return sum(1 for p, n, t in self.queries
                       if (name is None or n == norm(name))
                       and (qtype is None or t == qtype.upper())
                       and (proto is None or p == proto))

    def reset_counts(self):
        with self.lock:
            self.queries = []

    # ---- resolution --------------------------------------------------

    def _zone_of(self, key):
        best = None
        for apex, z in self.zones.items():
            if key == apex or key.endswith("." + apex):
                if best is None or len(apex) > len(best.apex):
                    best = z
        return best

    def resolve(self, qname, qtype):
        """(rcode, answers, authority) for a name (key) and type code."""
        answers = []
        key = qname
        with self.lock:
            for _ in range(CNAME_CHAIN_MAX):
                zone = self._zone_of(key)
                if zone is None:
                    # outside our zones: REFUSED, or the CNAME chain ends
                    return (NOERROR if answers else REFUSED), answers, []
                recs = list(zone.records.get(key, ()))
                if key == zone.apex and qtype == TYPES["SOA"]:
                    recs.append(zone.soa)
                if not recs:
                    rc = NOERROR if zone.exists(key) else NXDOMAIN
                    return rc, answers, [zone.soa]
                cname = [r for r in recs if r.rtype == TYPES["CNAME"]]
                if cname and qtype != TYPES["CNAME"]:
                    answers.append(cname[0])
                    key = norm(b".".join(cname[0].data))
                    continue
                match = [r for r in recs
                         if r.rtype == qtype or qtype == TYPES["ANY"]]
                if not match:
                    return NOERROR, answers, [zone.soa]
                return NOERROR, answers + match, []
        return SERVFAIL, [], []     # CNAME loop

    def behaviour_of(self, key, tname):
        with self.lock:
            return self.behaviour.get((key, tname)) or \
                self.behaviour.get((key, None))

    def answer(self, pkt, proto):
        """(response octets or None, delay seconds) for one query."""
        try:
            q = parse_query(pkt)
        except DnsError:
            return None, 0
        opcode = (q["flags"] >> 11) & 0xF
        if q["qdcount"] != 1:
            return build_response(q, FORMERR, aa=False), 0
        key = norm(b".".join(q["qname"]))
        tname = TYPE_NAMES.get(q["qtype"], str(q["qtype"]))
        with self.lock:
            self.queries.append((proto, key, tname))
        if self.log:
            self.log("%s %s %s" % (proto, key, tname))
        if opcode != 0:
            return build_response(q, NOTIMP, aa=False), 0
        what = self.behaviour_of(key, tname)
        delay = 0
        if what == "timeout":
            return None, 0
        if what == "servfail":
            return build_response(q, SERVFAIL, aa=False), 0
        if what == "refused":
            return build_response(q, REFUSED, aa=False), 0
        if what == "truncate" and proto == "udp":
            return build_response(q, NOERROR, tc=True), 0
        if what and what.startswith("delay="):
            delay = float(what[6:])
        if q["qclass"] != CLASS_IN:
            return build_response(q, REFUSED, aa=False), delay
        rcode, answers, authority = self.resolve(key, q["qtype"])
        resp = build_response(q, rcode, answers, authority,
                              aa=rcode != REFUSED)
        if proto == "udp":
            limit = min(q["edns"], EDNS_SIZE) if q["edns"] \
                else UDP_PLAIN_MAX
            if len(resp) > limit:
                resp = build_response(q, rcode, tc=True)
        return resp, delay

    # ---- sockets -----------------------------------------------------

    def start(self):
        """Bind UDP and TCP on host:port (port 0: a free one for both)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue
            break
        else:
            raise OSError("no port free for both UDP and TCP")
        tcp.listen(16)
        udp.settimeout(IO_POLL)
        tcp.settimeout(IO_POLL)
        self._udp, self._tcp, self.port = udp, tcp, port
        self._stop.clear()
        for fn in (self._udp_loop, self._tcp_loop):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout=5.0):
        """Stop serving; joins every thread within timeout seconds."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()
        self._udp = self._tcp = None
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        """"host:port" in the form of moat's dns_servers."""
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                pkt, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            resp, delay = self.answer(pkt, "udp")
            if resp is None:
                continue
            if delay:
                t = threading.Timer(delay, self._udp_send, (resp, peer))
                t.daemon = True
                t.start()
            else:
                self._udp_send(resp, peer)

    def _udp_send(self, resp, peer):
        try:
            if not self._stop.is_set():
                self._udp.sendto(resp, peer)
        except (OSError, AttributeError):
            pass

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                full = len(self._conns) >= TCP_CONN_MAX
                if not full:
                    self._conns.add(conn)
            if full:
                conn.close()
                continue
            t = threading.Thread(target=self._tcp_conn, args=(conn,),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _recv_exact(self, conn, n):
        """n octets from conn, or None on EOF, stop or idle timeout."""
        data = b""
        idle = time.monotonic() + TCP_IDLE
        while len(data) < n:
            if self._stop.is_set() or time.monotonic() > idle:
                return None
            try:
                chunk = conn.recv(n - len(data))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _tcp_conn(self, conn):
        """One TCP client: 2-octet length-prefixed messages, RFC 7766 8."""
        conn.settimeout(IO_POLL)
        try:
            while True:
                hdr = self._recv_exact(conn, 2)
                if hdr is None:
                    return
                pkt = self._recv_exact(conn, struct.unpack("!H", hdr)[0])
                if pkt is None:
                    return
                resp, delay = self.answer(pkt, "tcp")
                if resp is None:
                    continue
                if delay:
                    self._stop.wait(delay)
                conn.settimeout(5.0)
                conn.sendall(struct.pack("!H", len(resp)) + resp)
                conn.settimeout(IO_POLL)
        except OSError:
            pass
        finally:
            with self.lock:
                self._conns.discard(conn)
            conn.close()


# ---- pytest ----------------------------------------------------------

try:
    import pytest

    @pytest.fixture
    def dnsserver():
        """Factory fixture: dnsserver(zones, **options) -> started server.

        Import it into a test module (from dnsserver import dnsserver);
        every server is stopped at teardown.
        """
        made = []

        def factory(zones, **options):
            d = DnsServer(zones, **options).start()
            made.append(d)
            return d

        yield factory
        for d in made:
            d.stop()
except ImportError:
    pass


# ---- command line ----------------------------------------------------

SEED_QUERIES = (
    ("A", "mx1.example.test"), ("AAAA", "mx1.example.test"),
    ("A", "mx3.example.test"), ("MX", "example.test"),
    ("MX", "nullmx.example.test"), ("MX", "noMX.example.test"),
    ("MX", "missing.example.test"), ("TXT", "example.test"),
    ("PTR", "1.2.0.192.in-addr.arpa"), ("A", "alias.example.test"),
)


def write_seeds(directory):
    """Fuzzer seeds: type octet + a response of the demo zones."""
    srv = DnsServer(DEMO_ZONES)
    os.makedirs(directory, exist_ok=True)
    for qtype, name in SEED_QUERIES:
        resp, _ = srv.answer(make_query(name, qtype, edns=1232), "udp")
        fn = os.path.join(directory, "%s-%s" % (qtype.lower(),
                                                norm(name).split(".")[0]))
        with open(fn, "wb") as f:
            f.write(bytes([TYPES[qtype]]) + resp)


def main(argv=None):
    ap = argparse.ArgumentParser(description="authoritative test DNS server")
    ap.add_argument("--listen", default="127.0.0.1:5353",
                    help="HOST:PORT or [V6]:PORT (loopback only)")
    ap.add_argument("--zones", help="JSON file: {apex: {name: [records]}}")
    ap.add_argument("--behaviour", action="append", default=[],
                    metavar="NAME[/TYPE]=WHAT")
    ap.add_argument("--write-seeds", metavar="DIR")
    a = ap.parse_args(argv)
    if a.write_seeds:
        write_seeds(a.write_seeds)
        return 0
    host, _, port = a.listen.rpartition(":")
    host = host.strip("[]")
    if not ipaddress.ip_address(host).is_loopback:
        ap.error("listen on a loopback address only")
    zones = DEMO_ZONES
    if a.zones:
        with open(a.zones) as f:
            zones = json.load(f)
    beh = {}
    for b in a.behaviour:
        k, _, v = b.partition("=")
        beh[k] = v
    srv = DnsServer(zones, host, int(port), beh,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    srv.start()
    print("dnsserver: udp+tcp %s" % srv.address, file=sys.stderr, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
