"""test_greylist - greylisting at RCPT (src/smtp_in/smtp_greylist.c).

relay_networks is 127.0.0.1 alone, so 127.0.0.2.. are untrusted
Internet clients (all in the greylisting network 127.0.0.0/24).
Delays are seconds long.  Checked: the first attempt of a triplet gets
450 4.7.1, a retry before greylist_delay too, one after it passes; the
state in spool/state/greylist.db survives a restart of moatd; the
retry window expires; auto-allow of a client network after a pass;
trusted clients and postmaster are exempt.
"""

import time

import moatlib

GREY = "450 4.7.1 Greylisted, try again later"


def grey_moat(moat, **overrides):
    conf = {"relay_networks": "127.0.0.1/32", "greylist": True,
            "greylist_delay": "2s", "spf": "off"}
    conf.update(overrides)
    return moat(**conf)


def attempt(m, source, rcpt="user@example.test", sender="a@remote.test"):
    c = m.raw(source=source)
    c.ehlo()
    assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r.code == 250:
        assert c.cmd("DATA").code == 354
        c.send("Subject: grey\r\n\r\nhi\r\n.\r\n")
        assert c.reply().code == 250
    c.cmd("QUIT")
    return r


def test_greylist_retry_passes_and_survives_restart(moat):
    m = grey_moat(moat)
    mark = m.log_mark()
    t0 = time.monotonic()
    assert attempt(m, "127.0.0.2").first == GREY
    assert attempt(m, "127.0.0.3").first == GREY     # same /24, too early
    m.wait_log(r"event=greylist action=defer client=127\.0\.0\.2 "
               r"triplet=\"T 127\.0\.0\.0/24 a@remote\.test "
               r"user@example\.test\"", since=mark)
    db = m.spool / "state" / "greylist.db"
    moatlib.wait_until(
        lambda: db.exists() and b"user@example.test" in db.read_bytes(),
        10, "greylist.db written")
    m.restart()
    time.sleep(max(0, 2.2 - (time.monotonic() - t0)))
    assert attempt(m, "127.0.0.4").code == 250      # the retry, same net
    m.wait_maildir("user")
    m.wait_log(r"event=greylist action=pass client=127\.0\.0\.4 "
               r"net=127\.0\.0\.0/24", since=mark)
    # passed: at once from now on; a new triplet is greylisted
    assert attempt(m, "127.0.0.2").code == 250
    assert attempt(m, "127.0.0.2", rcpt="other@example.test").first == GREY
    assert attempt(m, "127.0.0.2", sender="b@remote.test").first == GREY


def test_greylist_exempt(moat):
    m = grey_moat(moat)
    assert attempt(m, "127.0.0.1").code == 250
    assert attempt(m, "127.0.0.2", rcpt="postmaster@example.test").code \
        == 250
    assert not (m.spool / "state" / "greylist.db").exists() or \
        b"postmaster" not in (m.spool / "state" / "greylist.db").read_bytes()


def test_greylist_retry_window_expires(moat):
    m = grey_moat(moat, greylist_delay="1s", greylist_retry_window="1s")
    assert attempt(m, "127.0.0.2").first == GREY
    time.sleep(3.2)                 # past delay + retry window (1 s steps)
    assert attempt(m, "127.0.0.2").first == GREY
    time.sleep(1.2)
    assert attempt(m, "127.0.0.2").code == 250


def test_greylist_auto_allow(moat):
    m = grey_moat(moat, greylist_delay="1s", greylist_auto_allow=1)
    assert attempt(m, "127.0.0.2").first == GREY
    time.sleep(1.2)
    assert attempt(m, "127.0.0.2").code == 250
    # the network has passed once: new triplets are not greylisted
    assert attempt(m, "127.0.0.9", rcpt="new@example.test",
                   sender="c@other.test").code == 250
    m2 = grey_moat(moat, greylist_delay="1s", greylist_auto_allow=0)
    assert attempt(m2, "127.0.0.2").first == GREY
    time.sleep(1.2)
    assert attempt(m2, "127.0.0.2").code == 250
    assert attempt(m2, "127.0.0.9", rcpt="new@example.test").first == GREY
