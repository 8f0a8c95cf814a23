"""testca - a throwaway certificate authority for the outbound TLS tests.

Made with the openssl command line (OpenSSL 3) in a directory of the
test, so that nothing depends on the system's trust store:

    ca = TestCA(tmpdir)                     # ca.pem, ca.key
    cert, key = ca.leaf("mx1.hosts.test")   # signed by the CA, SAN
    cert, key = ca.leaf("a.test", "b.test") # several DNS names
    cert, key = ca.self_signed("mx1.hosts.test")  # no CA at all
    ctx = ca.server_context(cert, key)      # for SmtpSink(tls_context=)

Leaf certificates carry the names as subjectAltName DNS entries (RFC
6125: a client matches those, not the CN), serverAuth in
extendedKeyUsage, and are valid from an hour ago for two days.  Keys
are P-256: fast to make.  Every openssl run is bounded in time.
"""

import ssl
import subprocess
from pathlib import Path

OPENSSL_TIMEOUT = 60
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True,
                       timeout=OPENSSL_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            " ".join(args), r.stderr.decode(errors="replace")))
    return r


def _slug(name):
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


class TestCA:
    """A CA in directory d: d/ca.pem (certificate), d/ca.key."""

    __test__ = False        # not a pytest test class

    def __init__(self, d, name="moat test CA"):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        self.serial = 1000
        if not self.cert.exists():
            _run(["req", "-x509"] + CURVE +
                 ["-nodes", "-days", "3", "-subj", "/CN=%s" % name,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                  "-keyout", str(self.key), "-out", str(self.cert)],
                 self.dir)
        self.cert.chmod(0o644)

    def _ext(self, names, stem):
        ext = self.dir / (stem + ".ext")
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=%s\n" % ",".join("DNS:%s" % n for n in names))
        return ext

    def leaf(self, *names):
        """(cert path, key path) for names, signed by this CA."""
        stem = "leaf-" + _slug(names[0])
        cert, key = self.dir / (stem + ".pem"), self.dir / (stem + ".key")
        csr = self.dir / (stem + ".csr")
        _run(["req", "-new"] + CURVE +
             ["-nodes", "-subj", "/CN=%s" % names[0], "-keyout", str(key),
              "-out", str(csr)], self.dir)
        self.serial += 1
        _run(["x509", "-req", "-in", str(csr), "-CA", str(self.cert),
              "-CAkey", str(self.key), "-set_serial", str(self.serial),
              "-days", "2", "-extfile", str(self._ext(names, stem)),
              "-out", str(cert)], self.dir)
        return cert, key

    def self_signed(self, *names):
        """(cert path, key path): a certificate for names signed by
        its own key, which no CA vouches for."""
        stem = "self-" + _slug(names[0])
        cert, key = self.dir / (stem + ".pem"), self.dir / (stem + ".key")
        _run(["req", "-x509"] + CURVE +
             ["-nodes", "-days", "2", "-subj", "/CN=%s" % names[0],
              "-addext", "subjectAltName=%s"
              % ",".join("DNS:%s" % n for n in names),
              "-keyout", str(key), "-out", str(cert)], self.dir)
        return cert, key

    @staticmethod
    def server_context(cert, key):
        """A server-side SSLContext (TLS 1.2+) with cert and key."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def client_context(self, hostname_check=True):
        """A client SSLContext trusting only this CA (for self-checks)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = hostname_check
        ctx.load_verify_locations(str(self.cert))
        return ctx


def _selftest():
    """python3 testca.py: a leaf verifies, a wrong name and a
    self-signed certificate do not."""
    import socket
    import tempfile
    import threading

    with tempfile.TemporaryDirectory() as d:
        ca = TestCA(d)
        good = ca.server_context(*ca.leaf("mx1.hosts.test", "alt.test"))
        selfsigned = ca.server_context(*ca.self_signed("mx1.hosts.test"))

        def handshake(server_ctx, name):
            ls = socket.create_server(("127.0.0.1", 0))
            port = ls.getsockname()[1]

            def serve():
                c, _ = ls.accept()
                try:
                    server_ctx.wrap_socket(c, server_side=True).close()
                except (ssl.SSLError, OSError):
                    c.close()
            t = threading.Thread(target=serve, daemon=True)
            t.start()
            try:
                with socket.create_connection(("127.0.0.1", port), 10) as s:
                    with ca.client_context().wrap_socket(
                            s, server_hostname=name):
                        return True
            except ssl.SSLCertVerificationError:
                return False
            finally:
                t.join(10)
                ls.close()
        assert handshake(good, "mx1.hosts.test")
        assert handshake(good, "alt.test")
        assert not handshake(good, "other.test")
        assert not handshake(selfsigned, "mx1.hosts.test")
    print("testca: ok")


if __name__ == "__main__":
    _selftest()
