"""Golden SMTP session scripts (tests/proto/*.in against *.ref), run
against a real moatd configured as tests/proto/README says.
"""

import subprocess
import sys

import moatlib
from moatlib import SLOW

PROTO = moatlib.REPO / "tests" / "proto"


def make_cert(d):
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=mx.example.test",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_golden_sessions(moat, moat_base):
    cert, key = make_cert(moat_base)
    m = moat(relay_networks="127.0.0.2/32", message_size_limit="100K",
             max_recipients=5, max_errors=5, tls_cert_file=cert,
             tls_key_file=key)
    scripts = sorted(p.stem for p in PROTO.glob("*.in"))
    assert len(scripts) >= 20
    r = subprocess.run([sys.executable, str(PROTO / "run.py"), "--port",
                        str(m.port)], capture_output=True, text=True,
                       timeout=120 * SLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "%d passed, 0 failed" % len(scripts) in r.stdout, r.stdout
