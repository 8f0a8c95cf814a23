"""smtpsink - a small, real, threaded SMTP server for delivery tests.

It plays the next hop moat delivers to (an internal mail host, an MX):
it speaks ESMTP (EHLO/HELO, MAIL, RCPT, DATA, BDAT with CHUNKING,
RSET, NOOP, QUIT, optional STARTTLS), records every transaction and
answers configurable codes.

    sink = SmtpSink(rcpt_codes={"bad@remote.test": (550, "5.1.1 no")})
    sink.start()
    ... moat delivers to smtp:[127.0.0.1]:sink.port ...
    t = sink.wait(1)[0]
    t.mail_from, t.rcpts, t.data, t.raw

Options (all optional):
    hostname      name in the greeting and EHLO reply
    greeting      (code, text) of the banner; a 4xx/5xx one is sent and
                  every later command gets 503 until QUIT
    mail_code     (code, text) for MAIL (default 250)
    rcpt_codes    {address (any case): (code, text) or code}
    rcpt_default  (code, text) for other recipients (default 250)
    data_code     (code, text), or a callable(Transaction) returning one,
                  for the end of DATA / BDAT LAST (default 250)
    drop_at       "connect" (accept, then close without a greeting),
                  "greeting" (close right after the greeting, as a
                  421 server does), "mail", "rcpt", "data" (after 354,
                  before the end) or "dot" (after the whole message,
                  before the reply): close the connection there
                  without a reply
    delay         seconds to wait before each reply (timeouts)
    tls_context   ssl.SSLContext (server side): advertise STARTTLS
    starttls_code (code, text) answered to STARTTLS instead of 220
                  (a refusing server); default None
    starttls_inject  octets sent in clear right behind the 220 to
                  STARTTLS, in the same write (a response injection)
    chunking      advertise CHUNKING and accept BDAT (default True)
    pipelining    advertise PIPELINING (default True)
    eightbitmime  advertise 8BITMIME (default True)
    smtputf8      advertise SMTPUTF8 (default False)
    ehlo          answer EHLO (default True); False: 502, as an old
                  HELO-only server does
    size          the SIZE advertised (default 104857600); None or 0:
                  SIZE without a number is not sent at all.  MAIL with
                  a SIZE= over it is answered 552 5.3.4 (RFC 1870)
    max_line      longest line accepted (default 100000)

All options are attributes and may be changed while the sink runs
(sink.greeting = (220, "ESMTP"), sink.tls_context = ctx ...).

Transactions are recorded when the sink answers the end of the data with
a 2xx code; refused and aborted ones are in .failed.  Besides them the
sink records every connection: .connections (count), .peers (client
addresses in order), .active and .max_active (sessions open at once),
.connect_times (time.monotonic() of each accept) and .commands, every
command line as (connection number from 1, in TLS?, line as str); the
text of a BDAT chunk or of DATA is not a command.  Without PIPELINING
advertised, .pipelined lists the commands behind which more octets were
already waiting (the client did not wait for the reply, RFC 2920 3.1).
Every wait is bounded.

Several sinks that play MX hosts listen on distinct loopback addresses
and the same port (moat's remote_smtp_port):

    port = common_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    a = SmtpSink(host="127.0.0.3", port=port, greeting=(421, "busy"))
"""

import errno
import socket
import socketserver
import threading
import time

DEFAULT_SIZE = 104857600


def _reply_of(v, default):
    """Normalize a code or (code, text) pair."""
    if v is None:
        return default
    if isinstance(v, int):
        return (v, "%d.0.0 sink" % (v // 100))
    return (int(v[0]), str(v[1]))


class Transaction:
    """One mail transaction as the sink saw it."""

    def __init__(self, session):
        self.peer = session.peer
        self.helo = session.helo
        self.esmtp = session.esmtp
        self.tls = session.tls
        self.conn = session.conn
        self.mail_from = None
        self.mail_params = []
        self.rcpts = []             # accepted recipients, as given
        self.refused = []           # (recipient, code)
        self.data = b""             # content, dot-unstuffed, CRLF kept
        self.raw = b""              # the DATA octets as received
        self.bdat = False
        self.reply = None           # (code, text) sent for the data

    def __repr__(self):
        return "Transaction(from=%r rcpts=%r %d octets reply=%r)" % (
            self.mail_from, self.rcpts, len(self.data), self.reply)


class _Closed(Exception):
    pass


class _Session:
    """The per-connection state, run in one server thread."""

    def __init__(self, sink, sock, peer, conn=0):
        self.sink = sink
        self.sock = sock
        self.peer = peer
        self.conn = conn
        self.buf = b""
        self.helo = None
        self.esmtp = False
        self.tls = False
        self.txn = None
        self.refusing = False

    # ---- I/O -------------------------------------------------------

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed()
        self.buf += chunk

    def line(self):
        """One line without its CRLF (bare LF tolerated, as received)."""
        while b"\n" not in self.buf:
            if len(self.buf) > self.sink.max_line:
                raise _Closed()
            self._recv()
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, code, text, more=(), extra=b""):
        if self.sink.delay:
            time.sleep(self.sink.delay)
        lines = [text] + list(more)
        out = b""
        for i, t in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            out += ("%03d%s%s\r\n" % (code, sep, t)).encode()
        self.sock.sendall(out + extra)

    # ---- protocol --------------------------------------------------

    def run(self):
        if self.sink.drop_at == "connect":
            return
        code, text = self.sink.greeting
        self.send(code, "%s %s" % (self.sink.hostname, text))
        if self.sink.drop_at == "greeting":
            return
        self.refusing = code >= 400
        while True:
            line = self.line()
            cmd = line.rstrip(b"\r\n").decode("latin-1")
            self.sink.log_command(self.conn, self.tls, cmd)
            # a BDAT chunk follows its command; anything else must wait
            # for our reply unless PIPELINING was offered
            if self.buf and not self.sink.pipelining and \
                    cmd[:4].upper() != "BDAT":
                with self.sink.lock:
                    self.sink.pipelined.append(cmd)
            verb, _, arg = cmd.partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                self.send(221, "2.0.0 bye")
                return
            if self.refusing:
                self.send(503, "5.5.1 go away")
                continue
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                self.send(502, "5.5.2 unknown command")
            elif handler(arg) == "close":
                return

    def do_EHLO(self, arg):
        if not self.sink.ehlo:
            self.send(502, "5.5.2 EHLO not implemented")
            return
        self.helo, self.esmtp, self.txn = arg, True, None
        kw = []
        if self.sink.pipelining:
            kw.append("PIPELINING")
        kw.append("SIZE %d" % self.sink.size if self.sink.size else "SIZE")
        if self.sink.eightbitmime:
            kw.append("8BITMIME")
        if self.sink.smtputf8:
            kw.append("SMTPUTF8")
        kw.append("ENHANCEDSTATUSCODES")
        if self.sink.chunking:
            kw.append("CHUNKING")
        if self.sink.tls_context is not None and not self.tls:
            kw.append("STARTTLS")
        self.send(250, self.sink.hostname, kw)

    def do_HELO(self, arg):
        self.helo, self.esmtp, self.txn = arg, False, None
        self.send(250, self.sink.hostname)

    def do_STARTTLS(self, arg):
        if self.sink.tls_context is None or self.tls:
            self.send(502, "5.5.1 no TLS here")
            return None
        if self.sink.starttls_code is not None:
            self.send(*_reply_of(self.sink.starttls_code, None))
            return None
        # starttls_inject: plaintext sent in the same write as the 220,
        # which a client must throw away (RFC 3207 4.2, CVE-2011-1431)
        self.send(220, "2.0.0 go ahead", extra=self.sink.starttls_inject)
        self.sock = self.sink.tls_context.wrap_socket(self.sock,
                                                      server_side=True)
        self.tls, self.helo, self.txn, self.buf = True, None, None, b""
        return None

    def do_MAIL(self, arg):
        if self.sink.drop_at == "mail":
            return "close"
        if self.helo is None:
            self.send(503, "5.5.1 EHLO first")
            return None
        if self.txn is not None:
            self.send(503, "5.5.1 nested MAIL")
            return None
        code, text = self.sink.mail_code
        if code >= 300:
            self.send(code, text)
            return None
        path, params = _split_path(arg, "FROM:")
        size = [p[5:] for p in params if p[:5].upper() == "SIZE="]
        if self.sink.size and size and size[0].isdigit() \
                and int(size[0]) > self.sink.size:
            self.send(552, "5.3.4 message size exceeds fixed limit")
            return None
        self.txn = Transaction(self)
        self.txn.mail_from, self.txn.mail_params = path, params
        self.send(code, text)
        return None

    def do_RCPT(self, arg):
        if self.sink.drop_at == "rcpt":
            return "close"
        if self.txn is None:
            self.send(503, "5.5.1 MAIL first")
            return None
        path, _ = _split_path(arg, "TO:")
        code, text = self.sink.rcpt_reply(path)
        if code < 300:
            self.txn.rcpts.append(path)
        else:
            self.txn.refused.append((path, code))
        self.send(code, text)
        return None

    def do_DATA(self, arg):
        if self.txn is None or not self.txn.rcpts:
            self.send(503, "5.5.1 no valid recipients")
            return None
        self.send(354, "end with <CRLF>.<CRLF>")
        if self.sink.drop_at == "data":
            return "close"
        raw, data = b"", []
        while True:
            line = self.line()
            raw += line
            if line == b".\r\n":
                break
            if line.startswith(b"."):
                line = line[1:]
            data.append(line)
        self.txn.raw, self.txn.data = raw, b"".join(data)
        return self.finish()

    def do_BDAT(self, arg):
        if not self.sink.chunking:
            self.send(502, "5.5.2 unknown command")
            return None
        parts = arg.split()
        if not parts or not parts[0].isdigit():
            self.send(501, "5.5.4 syntax")
            return None
        chunk = self.exact(int(parts[0]))
        if self.txn is None or not self.txn.rcpts:
            self.send(503, "5.5.1 no valid recipients")
            return None
        self.txn.bdat = True
        self.txn.raw += chunk
        self.txn.data += chunk
        if len(parts) > 1 and parts[1].upper() == "LAST":
            return self.finish()
        self.send(250, "2.0.0 %d octets" % len(chunk))
        return None

    def finish(self):
        if self.sink.drop_at == "dot":
            return "close"
        code, text = self.sink.data_reply(self.txn)
        self.txn.reply = (code, text)
        self.sink.record(self.txn, code < 300)
        self.txn = None
        self.send(code, text)
        return None

    def do_RSET(self, arg):
        if self.txn is not None:
            # an aborted transaction (all recipients refused ...)
            self.sink.record(self.txn, False)
        self.txn = None
        self.send(250, "2.0.0 ok")

    def do_NOOP(self, arg):
        self.send(250, "2.0.0 ok")


def _split_path(arg, prefix):
    """'FROM:<a@b> SIZE=1' -> ('a@b', ['SIZE=1'])."""
    if arg[:len(prefix)].upper() == prefix:
        arg = arg[len(prefix):].lstrip(" ")
    path, _, rest = arg.partition(" ")
    if path.startswith("<") and path.endswith(">"):
        path = path[1:-1]
    return path, rest.split()


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sink = self.server.sink
        self.request.settimeout(sink.io_timeout)
        with sink.cond:
            sink.connections += 1
            conn = sink.connections
            sink.peers.append(self.client_address)
            sink.connect_times.append(time.monotonic())
            sink.active += 1
            sink.max_active = max(sink.max_active, sink.active)
            sink.cond.notify_all()
        s = _Session(sink, self.request, self.client_address, conn)
        try:
            s.run()
        except (_Closed, OSError, ValueError):
            # ValueError: a TLS handshake the client gave up on
            pass
        finally:
            if s.txn is not None and s.txn.reply is None:
                sink.record(s.txn, False)
            with sink.cond:
                sink.active -= 1
                sink.cond.notify_all()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class SmtpSink:
    """A threaded SMTP sink on host:port (port 0 = a free one)."""

    def __init__(self, host="127.0.0.1", port=0, hostname="sink.test",
                 greeting=None, mail_code=None, rcpt_codes=None,
                 rcpt_default=None, data_code=None, drop_at=None, delay=0,
                 tls_context=None, chunking=True, max_line=100000,
                 io_timeout=60, pipelining=True, eightbitmime=True,
                 smtputf8=False, size=DEFAULT_SIZE, starttls_code=None,
                 ehlo=True, starttls_inject=b""):
        self.host = host
        self.hostname = hostname
        self.greeting = _reply_of(greeting, (220, "ESMTP sink"))
        self.mail_code = _reply_of(mail_code, (250, "2.1.0 ok"))
        self.rcpt_codes = {k.lower(): _reply_of(v, None)
                           for k, v in (rcpt_codes or {}).items()}
        self.rcpt_default = _reply_of(rcpt_default, (250, "2.1.5 ok"))
        self.data_code = data_code
        self.drop_at = drop_at
        self.delay = delay
        self.tls_context = tls_context
        self.chunking = chunking
        self.pipelining = pipelining
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.ehlo = ehlo
        self.size = size
        self.starttls_code = starttls_code
        self.starttls_inject = starttls_inject
        self.max_line = max_line
        self.io_timeout = io_timeout
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.transactions = []
        self.failed = []
        self.connections = 0
        self.peers = []
        self.connect_times = []
        self.active = 0
        self.max_active = 0
        self.commands = []
        self.pipelined = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = _Server6 if family == socket.AF_INET6 else _Server
        self._server = server_cls((host, port), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = None

    # ---- configuration while running --------------------------------

    def set_rcpt_code(self, rcpt, code, text=None):
        with self.lock:
            self.rcpt_codes[rcpt.lower()] = _reply_of(
                (code, text) if text else code, None)

    def rcpt_reply(self, path):
        with self.lock:
            return self.rcpt_codes.get(path.lower(), self.rcpt_default)

    def data_reply(self, txn):
        v = self.data_code
        if callable(v):
            v = v(txn)
        return _reply_of(v, (250, "2.0.0 queued"))

    def log_command(self, conn, tls, line):
        with self.lock:
            self.commands.append((conn, tls, line))

    def verbs(self, tls=None):
        """The verbs received (upper case), in order; tls=False: only
        those sent in clear, tls=True: only those inside TLS."""
        with self.lock:
            return [line.partition(" ")[0].upper()
                    for _c, t, line in self.commands
                    if tls is None or t == tls]

    def wait_connections(self, count=1, timeout=15.0):
        """Wait until count connections were accepted; returns the count."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.connections < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("sink %s: %d of %d connections "
                                         "after %.0fs" % (
                                             self.host, self.connections,
                                             count, timeout))
                self.cond.wait(left)
            return self.connections

    def record(self, txn, ok):
        with self.cond:
            (self.transactions if ok else self.failed).append(txn)
            self.cond.notify_all()

    # ---- life cycle -------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def nexthop(self):
        """The transport_map next hop for this sink."""
        return "smtp:[%s]:%d" % (self.host, self.port)

    def accepted_rcpts(self):
        """Every recipient of every accepted transaction, in order."""
        with self.lock:
            return [r for t in self.transactions for r in t.rcpts]

    def wait(self, count=1, timeout=15.0):
        """Wait until count transactions were accepted; returns a copy."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.transactions) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "sink: %d of %d transactions after %.0fs "
                        "(failed: %r)" % (len(self.transactions), count,
                                          timeout, self.failed))
                self.cond.wait(left)
            return list(self.transactions)

    def received(self):
        with self.lock:
            return list(self.transactions)


def common_port(hosts, tries=50):
    """A TCP port free on every address of hosts right now.

    Tests bind their sinks to it at once; an address of hosts that gets
    no sink refuses connections on that port (a dead MX).
    """
    for _ in range(tries):
        socks = []
        try:
            for h in hosts:
                fam = socket.AF_INET6 if ":" in h else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((h, socks[0].getsockname()[1] if len(socks) > 1
                        else 0))
            return socks[0].getsockname()[1]
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
        finally:
            for s in socks:
                s.close()
    raise OSError("no port free on all of %r" % (hosts,))


def _selftest():
    """python3 smtpsink.py: a quick check against smtplib."""
    import smtplib
    with SmtpSink(rcpt_codes={"no@x.test": (550, "5.1.1 no")}) as sink:
        with smtplib.SMTP(sink.host, sink.port, local_hostname="c.test",
                          timeout=10) as c:
            refused = c.sendmail("a@x.test", ["b@x.test", "no@x.test"],
                                 b"Subject: t\r\n\r\n.dot\r\nbody\r\n")
        t = sink.wait(1, timeout=5)[0]
        assert refused == {"no@x.test": (550, b"5.1.1 no")}, refused
        assert t.rcpts == ["b@x.test"], t
        assert t.data == b"Subject: t\r\n\r\n.dot\r\nbody\r\n", t.data
        s = socket.create_connection((sink.host, sink.port), timeout=5)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                  b"BDAT 5\r\nhelloBDAT 3 LAST\r\n.x\n")
        f = s.makefile("rb")
        while not f.readline().startswith(b"250 2.0.0 queued"):
            pass
        s.sendall(b"QUIT\r\n")
        s.close()
        t = sink.wait(2, timeout=5)[1]
        assert t.data == b"hello.x\n" and t.bdat, t
        assert sink.connections == 2 and sink.verbs()[:2] == ["EHLO", "MAIL"]
        assert sink.wait_connections(2, timeout=1) == 2
    port = common_port(["127.0.0.2", "127.0.0.3"])
    with SmtpSink(host="127.0.0.2", port=port, size=100,
                  eightbitmime=False, pipelining=False) as a, \
            SmtpSink(host="127.0.0.3", port=port, greeting=(421, "busy"),
                     drop_at="greeting") as b:
        with smtplib.SMTP("127.0.0.2", port, timeout=10) as c:
            c.ehlo("c.test")
            assert c.has_extn("size") and c.esmtp_features["size"] == "100"
            assert not c.has_extn("8bitmime")
            assert not c.has_extn("pipelining")
            assert c.mail("a@x.test", ["SIZE=101"])[0] == 552
        try:
            smtplib.SMTP("127.0.0.3", port, timeout=10)
            raise AssertionError("421 greeting not refused")
        except smtplib.SMTPConnectError as e:
            assert e.smtp_code == 421, e
        assert a.connections == 1 and b.connections == 1
        assert a.peers[0][0] == "127.0.0.1"
    print("smtpsink: ok")


if __name__ == "__main__":
    _selftest()
