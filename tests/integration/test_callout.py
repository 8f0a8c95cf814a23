"""test_callout - recipient_verify = callout (src/smtp_in/smtp_callout.c).

The internal host is an smtpsink (smtpsink.py) with per-recipient codes,
reached through transport_map (smtp:[127.0.0.1]:PORT).  Checked: the
probe the sink sees (EHLO, MAIL FROM:<>, RCPT TO, QUIT), the replies
(2xx accept, 5xx 550 5.1.1, 4xx / unreachable / timeout 450 4.1.1 or
accept with recipient_verify_failure = accept), that the positive and
negative answers are cached (no second probe) and failures are not,
that postmaster and other domains are never probed, and that a slow
probe does not stall other sessions.
"""

import time

import moatlib

DOMAINS = ["example.test", "localhost", "internal.test"]


def callout_moat(moat, sink_port, **overrides):
    conf = {"local_domains": DOMAINS, "recipient_verify": "callout",
            "recipient_verify_timeout": "3s"}
    conf.update(overrides)
    return moat(transport=["internal.test smtp:[127.0.0.1]:%d" % sink_port],
                **conf)


def probes(sink, addr):
    return [line for _, _, line in sink.commands
            if line.upper() == "RCPT TO:<%s>" % addr.upper()]


def rcpts(m, *addrs, source=None):
    c = m.raw(source=source)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    out = [c.cmd("RCPT TO:<%s>" % a) for a in addrs]
    c.cmd("QUIT")
    return out


def test_callout_answers_and_cache(moat, smtpsink):
    sink = smtpsink(rcpt_codes={
        "nobody@internal.test": (550, "5.1.1 no such user"),
        "busy@internal.test": (451, "4.3.0 busy")})
    m = callout_moat(moat, sink.port)
    mark = m.log_mark()
    r = rcpts(m, "alice@internal.test", "nobody@internal.test",
              "busy@internal.test", "user@example.test",
              "postmaster@internal.test")
    assert r[0].code == 250, r
    assert r[1].first.startswith("550 5.1.1 "), r
    assert r[2].first.startswith("450 4.1.1 "), r
    assert r[3].code == 250 and r[4].code == 250, r
    verbs = [line.split(":")[0].split(" ")[0].upper()
             for _, _, line in sink.commands]
    assert verbs[:4] == ["EHLO", "MAIL", "RCPT", "QUIT"], sink.commands
    assert "MAIL FROM:<>" in [line for _, _, line in sink.commands]
    # the cache (domain in any case, local part exact): a second session
    # probes only the failed one again
    r = rcpts(m, "alice@INTERNAL.test", "nobody@internal.test",
              "busy@internal.test")
    assert [x.code for x in r] == [250, 550, 450], r
    assert len(probes(sink, "alice@internal.test")) == 1
    assert len(probes(sink, "nobody@internal.test")) == 1
    assert len(probes(sink, "busy@internal.test")) == 2
    assert probes(sink, "postmaster@internal.test") == []
    assert probes(sink, "user@example.test") == []
    m.wait_log(r"event=callout client=127\.0\.0\.1 "
               r"to=<nobody@internal\.test> relay=127\.0\.0\.1:%d "
               r"result=reject code=550" % sink.port, since=mark)
    m.wait_log(r"event=reject type=unknown_user client=127\.0\.0\.1 "
               r"to=<nobody@internal\.test> verify=callout cached=yes",
               since=mark)


def test_callout_short_ttl_probes_again(moat, smtpsink):
    sink = smtpsink()
    m = callout_moat(moat, sink.port, recipient_verify_positive_ttl="1s")
    assert rcpts(m, "bob@internal.test")[0].code == 250
    time.sleep(1.5)
    assert rcpts(m, "bob@internal.test")[0].code == 250
    assert len(probes(sink, "bob@internal.test")) == 2


def test_callout_unreachable(moat):
    port = moatlib.free_port()          # nothing listens there
    m = callout_moat(moat, port)
    mark = m.log_mark()
    r = rcpts(m, "carol@internal.test")
    assert r[0].first.startswith("450 4.1.1 "), r
    m.wait_log(r"event=callout .*to=<carol@internal\.test> .*result=fail "
               r"code=0 why=connect", since=mark)
    m2 = callout_moat(moat, port, recipient_verify_failure="accept")
    assert rcpts(m2, "carol@internal.test")[0].code == 250


def test_callout_timeout_does_not_stall_others(moat, smtpsink):
    sink = smtpsink(delay=3)
    m = callout_moat(moat, sink.port, recipient_verify_timeout="1s")
    slow = m.raw()
    slow.ehlo()
    assert slow.cmd("MAIL FROM:<a@remote.test>").code == 250
    t0 = time.monotonic()
    slow.send("RCPT TO:<dave@internal.test>\r\n")
    # another session is served while the probe waits
    other = rcpts(m, "user@example.test")
    other_done = time.monotonic() - t0
    r = slow.reply()
    slow_done = time.monotonic() - t0
    slow.cmd("QUIT")
    assert other[0].code == 250
    assert r.first.startswith("450 4.1.1 "), r
    assert other_done < slow_done
    assert 0.8 < slow_done < 2.5 * moatlib.SLOW, slow_done


def test_callout_message_relayed_after_accept(moat, smtpsink):
    sink = smtpsink()
    m = callout_moat(moat, sink.port)
    c = m.raw(source="127.0.0.3")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<erin@internal.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send("Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    t = sink.wait(1)[0]
    assert t.rcpts == ["erin@internal.test"]
