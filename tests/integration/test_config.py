"""test_config - moatd -n checks the config; bad configs stop moatd.

DESIGN.md: `moatd -c FILE -n` exits 0, or 1 with `FILE:LINE: reason`
lines; every error is reported in one pass (STYLE.md 9) and moatd
refuses to start with the same messages.
"""

import re
import subprocess

import pytest

import moatlib

GOOD_EXTRA = """\
# every kind of value the parser knows
submission_listen = 127.0.0.1:0
relay_networks = 127.0.0.0/8, ::1/128 10.1.0.0/16
message_size_limit = 25M
max_recipients = 50
max_connections = 500
max_connections_per_ip = 10
command_timeout = 5m
data_timeout = 600
queue_lifetime = 5d
delay_warning = 4h
retry_min = 30s
retry_max = 1h
remote_smtp_port = 25
outbound_tls = may
command_filter = HELO:255 EHLO:255 MAIL:266 RCPT:266 DATA:0 BDAT:64 \
RSET:0 NOOP:0 QUIT:0 STARTTLS:0 AUTH:1024 HELP:0 VRFY:255
"""

GOOD_TRANSPORT = [
    "# comment",
    "",
    "relay.test smtp:[127.0.0.1]:2626",
    ".sub.test smtp:mx.sub.test",
    "mx.test smtp",
    "gone.test error:5.1.1 no such domain here",
]


def moatd(conf, *args, timeout=20):
    return subprocess.run(
        [str(moatlib.bin_path("moatd")), "-c", str(conf)] + list(args),
        capture_output=True, text=True, timeout=timeout * moatlib.SLOW,
        stdin=subprocess.DEVNULL, cwd=str(conf.parent))


def errors_for(stderr, path):
    """The 'PATH:LINE: reason' lines, as (line, reason)."""
    rx = re.compile(r"^%s:(\d+): (\S.*)$" % re.escape(str(path)))
    out = []
    for l in stderr.splitlines():
        m = rx.search(l)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


@pytest.fixture
def cfg(moat):
    """A stopped Moat whose files tests may extend."""
    m = moat(start=False, transport=GOOD_TRANSPORT, extra=GOOD_EXTRA)
    m.write_config()
    return m


def append_line(path, line):
    """Append line to path; returns its line number."""
    text = path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    n = text.count("\n") + 1
    path.write_text(text + line + "\n")
    return n


def test_good_config_checks(cfg):
    r = moatd(cfg.conf, "-n")
    assert r.returncode == 0, r.stderr
    assert errors_for(r.stderr, cfg.conf) == [], r.stderr
    assert errors_for(r.stderr, cfg.transport_file) == [], r.stderr


def test_default_fixture_config_starts(moat):
    m = moat()
    r = moatd(m.conf, "-n")
    assert r.returncode == 0, r.stderr


BAD_LINES = [
    ("unknown key", "no_such_key = 1"),
    ("bad duration", "command_timeout = 5x"),
    ("bad duration word", "retry_min = soon"),
    ("negative duration", "queue_lifetime = -1d"),
    ("bad CIDR prefix", "relay_networks = 10.0.0.0/33"),
    ("bad CIDR address", "relay_networks = 300.1.2.3/8"),
    ("bad IPv6 CIDR", "relay_networks = ::1/129"),
    ("bad size", "message_size_limit = 25Q"),
    ("bad size number", "message_size_limit = lots"),
    ("bad listen", "listen = 127.0.0.1:99999"),
    ("bad outbound_tls", "outbound_tls = sometimes"),
    ("bad filter rule", "command_filter = HELO:abc"),
    ("missing value", "hostname"),
]


@pytest.mark.parametrize("what,line", BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_line_reported(cfg, what, line):
    n = append_line(cfg.conf, line)
    r = moatd(cfg.conf, "-n")
    assert r.returncode == 1, (what, r.returncode, r.stderr)
    errs = errors_for(r.stderr, cfg.conf)
    assert [e[0] for e in errs] == [n], (what, r.stderr)


BAD_TRANSPORT = [
    ("unknown nexthop kind", "bad.test frobnicate:/x"),
    ("missing nexthop", "bad.test"),
    ("bad fixed host", "bad.test smtp:[127.0.0.1]:notaport"),
    ("bad error status", "bad.test error:2.0.0 that is no error"),
]


@pytest.mark.parametrize("what,line", BAD_TRANSPORT,
                         ids=[b[0] for b in BAD_TRANSPORT])
def test_bad_transport_line_reported(cfg, what, line):
    n = append_line(cfg.transport_file, line)
    r = moatd(cfg.conf, "-n")
    assert r.returncode == 1, (what, r.returncode, r.stderr)
    errs = errors_for(r.stderr, cfg.transport_file)
    assert [e[0] for e in errs] == [n], (what, r.stderr)


def test_all_errors_in_one_pass(cfg):
    n1 = append_line(cfg.conf, "no_such_key = 1")
    n2 = append_line(cfg.conf, "data_timeout = 1y")
    n3 = append_line(cfg.conf, "max_recipients = many")
    t1 = append_line(cfg.transport_file, "bad.test frobnicate:/x")
    r = moatd(cfg.conf, "-n")
    assert r.returncode == 1, r.stderr
    assert [e[0] for e in errors_for(r.stderr, cfg.conf)] == [n1, n2, n3], \
        r.stderr
    assert [e[0] for e in errors_for(r.stderr, cfg.transport_file)] == [t1], \
        r.stderr


def test_missing_config_file(tmp_path):
    conf = tmp_path / "nonexistent.conf"
    r = moatd(conf, "-n")
    assert r.returncode == 1, r.stderr
    assert str(conf) in r.stderr, r.stderr


@pytest.mark.parametrize("line", ["no_such_key = 1", "command_timeout = 5x",
                                  "relay_networks = 10.0.0.0/33",
                                  "message_size_limit = 25Q"])
def test_bad_config_refuses_to_start(cfg, line):
    n = append_line(cfg.conf, line)
    check = moatd(cfg.conf, "-n")
    r = moatd(cfg.conf)   # would run in the foreground if it started
    assert r.returncode != 0, r.stderr
    assert errors_for(r.stderr, cfg.conf) == errors_for(check.stderr,
                                                        cfg.conf)
    assert [e[0] for e in errors_for(r.stderr, cfg.conf)] == [n], r.stderr
    # nothing listens on its port
    with pytest.raises(OSError):
        moatlib.RawSMTP(cfg.host, cfg.port, timeout=2).close()


def test_bad_transport_refuses_to_start(cfg):
    n = append_line(cfg.transport_file, "bad.test frobnicate:/x")
    r = moatd(cfg.conf)
    assert r.returncode != 0, r.stderr
    assert [e[0] for e in errors_for(r.stderr, cfg.transport_file)] == [n], \
        r.stderr
