"""test_policy - smtp-in's anti-spam policy (src/smtp_in/smtp_policy.c).

A real DNS server on loopback (dnsserver.py) serves blocklist zones, PTR
records (matching, mismatching, missing, never answered) and sender
domains with and without MX; clients on distinct loopback source
addresses play good and bad hosts.  relay_networks is 127.0.0.1 alone,
so every other 127/8 address is an untrusted Internet client.

Orderings are asserted rather than timings, except for loose lower
bounds that show a delay happened.
"""

import re
import time

import moatlib
from dnsserver import dnsserver  # noqa: F401 (fixture)

ZONES = {
    "test": {
        # dnsbl bl.test lists 127.0.0.2 (weight 2); weak.test lists
        # 127.0.0.7 with weight 1, below the threshold of 2
        "2.0.0.127.bl.test": [("A", "127.0.0.2")],
        "10.0.0.127.bl.test": [("A", "127.0.0.10")],   # filtered out
        "7.0.0.127.weak.test": [("A", "127.0.0.2")],
        "spam.test.rhs.test": [("A", "127.0.0.2")],
        "badhelo.test.rhs.test": [("A", "127.0.0.2")],
        # forward records of the PTR names
        "good.test": [("A", "127.0.0.3"), ("MX", 10, "good.test")],
        "liar.test": [("A", "127.0.0.99")],
        # sender domains
        "remote.test": [("MX", 10, "mx.remote.test")],
        "mx.remote.test": [("A", "192.0.2.1")],
        "nomx.test": [("A", "192.0.2.2")],
        "nullmx.test": [("MX", 0, ".")],
        "slow.test": [("MX", 10, "mx.remote.test")],
        "spam.test": [("MX", 10, "mx.remote.test")],
        "badhelo.test": [("A", "192.0.2.3")],
    },
    "0.0.127.in-addr.arpa": {
        "2.0.0.127.in-addr.arpa": [("PTR", "good.test")],
        "3.0.0.127.in-addr.arpa": [("PTR", "good.test")],
        "4.0.0.127.in-addr.arpa": [("PTR", "liar.test")],
        "8.0.0.127.in-addr.arpa": [("PTR", "good.test")],
    },
}

BEHAVIOUR = {"slow.test": "timeout", "8.0.0.127.in-addr.arpa": "timeout",
             "6.0.0.127.dead.test": "timeout"}


def policy_moat(moat, dnsserver, **overrides):
    d = dnsserver(ZONES, behaviour=dict(BEHAVIOUR))
    conf = {"relay_networks": "127.0.0.1/32",
            "dns_servers": "%s:%d" % (d.host, d.port),
            "policy_dns_timeout": "1s"}
    conf.update(overrides)
    return moat(**conf), d


def session(m, source, helo="client.test", sender="a@remote.test"):
    c = m.raw(source=source)
    assert c.cmd("EHLO " + helo).code == 250
    r = c.cmd("MAIL FROM:<%s>" % sender)
    assert r.code == 250, r
    return c


def test_dnsbl_listed_client_554_postmaster_still_reached(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, dnsbl="bl.test=127.0.0.2*2",
                       dnsbl_threshold=2)
    mark = m.log_mark()
    c = session(m, "127.0.0.2")
    r = c.cmd("RCPT TO:<user@example.test>")
    assert r.first == ("554 5.7.1 Service unavailable; client [127.0.0.2] "
                       "blocked using bl.test"), r
    assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
    assert c.cmd("RCPT TO:<other@example.test>").code == 554
    c.cmd("QUIT")
    lines = m.wait_log(r"event=alarm type=dnsbl client=127\.0\.0\.2 "
                       r"list=bl\.test target=client answer=127\.0\.0\.2 "
                       r"score=2", since=mark)
    assert len(m.log_lines(r"type=dnsbl", since=mark)) == 1, lines


def test_dnsbl_filter_weight_and_clean_client(moat, dnsserver):
    m, d = policy_moat(moat, dnsserver,
                       dnsbl="bl.test=127.0.0.[2..4]*2 weak.test*1",
                       dnsbl_threshold=2)
    # 127.0.0.10 is answered 127.0.0.10: outside the filter
    for src in ("127.0.0.10", "127.0.0.7", "127.0.0.3"):
        c = session(m, src)
        assert c.cmd("RCPT TO:<user@example.test>").code == 250, src
        c.cmd("QUIT")
    assert d.count("7.0.0.127.weak.test", "A") == 1


def test_dnsbl_timeout_does_not_block_and_is_logged(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, dnsbl="dead.test")
    mark = m.log_mark()
    c = session(m, "127.0.0.6")
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    c.cmd("QUIT")
    m.wait_log(r"event=dnsbl_error client=127\.0\.0\.6 list=dead\.test "
               r"why=timeout", since=mark)


def test_slow_list_does_not_stall_other_sessions(moat, dnsserver):
    """A RCPT waiting for a dead list; a trusted session meanwhile."""
    m, _ = policy_moat(moat, dnsserver, dnsbl="dead.test",
                       policy_dns_timeout="3s")
    slow = session(m, "127.0.0.6")
    slow.send("RCPT TO:<user@example.test>\r\n")
    t0 = time.monotonic()
    fast = m.raw()
    fast.ehlo()
    assert fast.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert fast.cmd("RCPT TO:<user@example.test>").code == 250
    fast.cmd("QUIT")
    fast_done = time.monotonic() - t0
    assert slow.reply().code == 250
    slow_done = time.monotonic() - t0
    assert fast_done < slow_done, (fast_done, slow_done)
    assert slow_done >= 1.5, slow_done


def test_rhsbl_sender_and_helo(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, rhsbl="rhs.test")
    c = session(m, "127.0.0.3", sender="x@spam.test")
    r = c.cmd("RCPT TO:<user@example.test>")
    assert r.first == ("554 5.7.1 Service unavailable; sender domain "
                       "spam.test blocked using rhs.test"), r
    c.cmd("QUIT")
    c = session(m, "127.0.0.3", helo="BadHelo.test")
    r = c.cmd("RCPT TO:<user@example.test>")
    assert r.first == ("554 5.7.1 Service unavailable; helo name "
                       "badhelo.test blocked using rhs.test"), r
    # a new HELO forgets the old one's listing
    assert c.cmd("EHLO good.test").code == 250
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    c.cmd("QUIT")


def test_fcrdns_reject(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, fcrdns="reject")
    mark = m.log_mark()
    expect = {"127.0.0.3": "250",
              "127.0.0.4": "550 5.7.25",     # PTR name leads elsewhere
              "127.0.0.5": "550 5.7.25",     # no PTR at all
              "127.0.0.8": "450 4.7.25"}     # PTR never answered
    for src, want in expect.items():
        c = session(m, src)
        r = c.cmd("RCPT TO:<user@example.test>")
        assert r.first.startswith(want), (src, r)
        if r.code != 250:
            assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
        c.cmd("QUIT")
    m.wait_log(r"event=reject type=fcrdns client=127\.0\.0\.8 "
               r"result=temperror", since=mark)


def test_fcrdns_warn_only_logs(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, fcrdns="warn")
    mark = m.log_mark()
    c = session(m, "127.0.0.4")
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert c.cmd("RCPT TO:<u2@example.test>").code == 250
    c.cmd("QUIT")
    m.wait_log(r"event=warn type=fcrdns client=127\.0\.0\.4 result=fail",
               since=mark)
    assert len(m.log_lines(r"type=fcrdns", since=mark)) == 1


def test_sender_domain_must_resolve(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, sender_resolvable=True)
    expect = {"a@remote.test": "250", "a@nomx.test": "250",
              "a@missing.test": "550 5.1.8",
              "a@nullmx.test": "550 5.7.27",
              "a@slow.test": "450 4.1.8", "": "250"}
    for sender, want in expect.items():
        c = session(m, "127.0.0.3", sender=sender)
        r = c.cmd("RCPT TO:<user@example.test>")
        assert r.first.startswith(want), (sender, r)
        c.cmd("QUIT")
    # trusted clients are not asked
    c = session(m, "127.0.0.1", sender="a@missing.test")
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    c.cmd("QUIT")


def test_helo_checks(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, helo_resolvable=True)
    expect = {"mx.example.test": "550 5.7.1 Helo command rejected: that "
              "is my name",
              "[127.0.0.1]": "550 5.7.1 Helo command rejected: that is "
              "my address",
              "bad..name": "550 5.7.1 Helo command rejected: invalid",
              "missing.test": "550 5.7.1 Helo command rejected: host "
              "missing.test not found",
              "good.test": "250", "[192.0.2.1]": "250"}
    for helo, want in expect.items():
        c = session(m, "127.0.0.3", helo=helo)
        r = c.cmd("RCPT TO:<user@example.test>")
        assert r.first.startswith(want), (helo, r)
        c.cmd("QUIT")


def test_pregreet_refused_and_patient_client_served(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, greet_delay="1s")
    mark = m.log_mark()
    c = m.raw(source="127.0.0.3", banner=False)
    c.send("EHLO eager.test\r\n")
    r = c.reply()
    assert r.first.startswith("554 5.5.1"), r
    assert c.is_closed()
    m.wait_log(r"event=alarm type=pregreet client=127\.0\.0\.3", since=mark)
    t0 = time.monotonic()
    c = m.raw(source="127.0.0.4")
    assert time.monotonic() - t0 >= 0.8
    assert c.cmd("EHLO patient.test").code == 250
    c.cmd("QUIT")
    # trusted clients get the banner at once
    t0 = time.monotonic()
    m.raw().cmd("QUIT")
    assert time.monotonic() - t0 < 0.8 * moatlib.SLOW + 0.5


def test_connection_and_message_rates(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, conn_rate_limit=2,
                       msg_rate_limit=2, rate_window="1m")
    for _ in range(2):
        m.raw(source="127.0.0.3").cmd("QUIT")
    c = moatlib.RawSMTP(m.host, m.port, source="127.0.0.3")
    r = c.reply()
    assert r.first.startswith("421 4.7.0"), r
    assert c.is_closed()
    c = session(m, "127.0.0.4")
    assert c.cmd("RSET").code == 250
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RSET").code == 250
    r = c.cmd("MAIL FROM:<a@remote.test>")
    assert r.first.startswith("450 4.7.1"), r
    c.cmd("QUIT")
    # other addresses and trusted clients have their own count
    session(m, "127.0.0.5").cmd("QUIT")
    for _ in range(4):
        session(m, "127.0.0.1").cmd("QUIT")


def test_reject_delay_tarpit(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, reject_delay="1s")
    c = session(m, "127.0.0.3")
    times = []
    for i in range(5):
        t0 = time.monotonic()
        r = c.cmd("RCPT TO:<u%d@elsewhere.test>" % i)
        assert r.code == 550, r
        times.append(time.monotonic() - t0)
    c.cmd("QUIT")
    # three free, then 1s, then 2s
    assert max(times[:3]) < 0.5, times
    assert times[3] >= 0.9 and times[4] >= 1.9, times


def test_postmaster_exempt_and_logs_clean(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver, dnsbl="bl.test*2",
                       fcrdns="reject", sender_resolvable=True)
    c = session(m, "127.0.0.2", sender="a@missing.test")
    assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
    assert c.cmd("RCPT TO:<postmaster>").code == 250
    assert c.cmd("DATA").code == 354
    c.send("Subject: hi\r\n\r\nhello\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    assert not re.search(r"panic|fatal", m.log())


def send_data(c, msg):
    assert c.cmd("DATA").code == 354
    c.send(msg.replace("\n", "\r\n") + ".\r\n")
    return c.reply()


def test_header_from_local_domain_refused_from_outside(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver)
    mark = m.log_mark()
    spoofs = ["From: susan@example.test\n",
              "from : \"Susan\" <SUSAN@Example.Test.>\n",
              "From: Someone\n <x@remote.test>,\n (c) boss@example.test\n",
              "From: susan@example.test <evil@remote.test>\n"]
    for hdr in spoofs:
        c = session(m, "127.0.0.3", sender="alice@remote.test")
        assert c.cmd("RCPT TO:<user@example.test>").code == 250
        r = send_data(c, "Subject: x\n" + hdr + "\nbody\n")
        assert r.first.startswith("550 5.7.1"), (hdr, r)
        c.cmd("QUIT")
    assert len(m.log_lines(r"event=alarm type=spoof client=127\.0\.0\.3 "
                           r"header_from=example\.test", since=mark)) == 4
    assert len(m.log_lines(r"reason=header_from", since=mark)) == 4
    ok = ["From: \"susan@example.test\" <alice@remote.test>\n",
          "From: alice@remote.test (not susan@example.test)\n",
          "From: alice@remote.test\nX-Note: susan@example.test\n",
          "From: alice@remote.test\n\nFrom: susan@example.test\n",
          "From: alice@sub.example.test\n"]
    for hdr in ok:
        c = session(m, "127.0.0.3", sender="alice@remote.test")
        assert c.cmd("RCPT TO:<user@example.test>").code == 250
        r = send_data(c, "Subject: x\n" + hdr + "\nbody\n")
        assert r.code == 250, (hdr, r)
        c.cmd("QUIT")
    m.wait_maildir("user", count=len(ok))


def test_header_from_trusted_and_switch(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver)
    c = session(m, "127.0.0.1", sender="boss@example.test")
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert send_data(c, "From: boss@example.test\n\nhi\n").code == 250
    c.cmd("QUIT")
    m2, _ = policy_moat(moat, dnsserver, header_from_check=False)
    c = session(m2, "127.0.0.3")
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    assert send_data(c, "From: boss@example.test\n\nhi\n").code == 250
    c.cmd("QUIT")


def test_header_from_split_over_bdat_chunks(moat, dnsserver):
    m, _ = policy_moat(moat, dnsserver)
    c = session(m, "127.0.0.3")
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    part1 = b"Subject: x\r\nFrom: su"
    part2 = b"san@exam"
    part3 = b"ple.test\r\n\r\nbody\r\n"
    for i, p in enumerate((part1, part2)):
        c.send(b"BDAT %d\r\n" % len(p) + p)
        assert c.reply().code == 250, i
    c.send(b"BDAT %d LAST\r\n" % len(part3) + part3)
    r = c.reply()
    assert r.first.startswith("550 5.7.1"), r
    c.cmd("QUIT")


def test_relay_recipients_file_and_directory(moat, dnsserver, tmp_path):
    rdir = tmp_path / "rcpts"
    rdir.mkdir()
    (rdir / "example.test").write_text(
        "# users of example.test\nuser@example.test\nAlice@Example.Test.\n")
    (rdir / "localhost").write_text("@localhost\n")
    (rdir / ".hidden").write_text("bob@example.test\n")
    m, _ = policy_moat(moat, dnsserver, relay_recipients=str(rdir))
    mark = m.log_mark()
    c = session(m, "127.0.0.3")
    for rcpt, code in (("user@example.test", 250),
                       ("ALICE@example.test", 250),
                       ("bob@example.test", 550),
                       ("nobody@example.test", 550),
                       ("anyone@localhost", 250),
                       ("postmaster@example.test", 250)):
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == code, (rcpt, r)
        if code == 550:
            assert r.first == ("550 5.1.1 Recipient address rejected: "
                               "User unknown"), r
    c.cmd("QUIT")
    m.wait_log(r"event=reject type=unknown_user client=127\.0\.0\.3 "
               r"to=<nobody@example\.test>", since=mark)
    # a single file, and its errors reported with FILE:LINE at -n
    f = tmp_path / "rcpts.txt"
    f.write_text("user@example.test\n")
    m2, _ = policy_moat(moat, dnsserver, relay_recipients=str(f))
    c = session(m2, "127.0.0.1")
    assert c.cmd("RCPT TO:<other@example.test>").code == 550
    assert c.cmd("RCPT TO:<user@example.test>").code == 250
    c.cmd("QUIT")
    f.write_text("user@example.test\nnot an address\nx@bad..domain\n")
    r = m2.tool("moatd", "-n", "-c", str(m2.conf))
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert r.returncode == 1, out
    assert "%s:2: not an address or @domain" % f in out
    assert "%s:3: bad domain" % f in out
