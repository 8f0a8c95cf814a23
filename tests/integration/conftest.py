"""conftest - fixtures that start real moatd processes.

    def test_x(moat):
        m = moat(max_recipients=3)      # config keys as keyword overrides
        with m.smtp() as s: ...

`moat(**overrides)` writes a config into a fresh directory, starts moatd
from MOAT_BUILD on a free port of 127.0.0.1 and waits for its banner
(start=False leaves it stopped).  At teardown every instance is stopped
with SIGTERM and must exit 0; under MOAT_ASAN=1 a sanitizer report in
its log fails the test.  The directories of passing tests are removed;
those of failing tests are kept and named in the report.

`smtpsink(**options)` starts a real SMTP sink (smtpsink.py) on a free
port of 127.0.0.1 for delivery tests.

A test runs at most MOAT_TEST_TIMEOUT seconds (default 180): through
pytest-timeout when it is installed (mk/run-pytest.sh), else through the
SIGALRM fallback below.
"""

import os
import re
import shutil
import signal

import pytest

import moatlib
from smtpsink import SmtpSink

TEST_TIMEOUT = int(os.environ.get("MOAT_TEST_TIMEOUT", "180"))


def pytest_configure(config):
    moatlib.ensure_moat_user()
    missing = [p for p in ("moatd", "moatctl")
               if not os.access(moatlib.bin_path(p), os.X_OK)]
    if missing:
        raise pytest.UsageError(
            "%s not built in %s (run make, or set MOAT_BUILD)"
            % (", ".join(missing), moatlib.BUILD))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Fallback per-test timeout when pytest-timeout is not loaded."""
    use_alarm = not item.config.pluginmanager.hasplugin("timeout")
    if use_alarm:
        def expired(signum, frame):
            raise TimeoutError("test exceeded %ds" % TEST_TIMEOUT)
        old = signal.signal(signal.SIGALRM, expired)
        signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome for the fixtures' cleanup."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    return any(getattr(request.node, "rep_" + w, None) is not None
               and getattr(request.node, "rep_" + w).failed
               for w in ("setup", "call"))


@pytest.fixture
def moat_base(request):
    """A fresh 0755 directory for this test's moatd instances."""
    # the name ends up in maildir: templates and paths: keep it plain
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:40]
    base = moatlib.make_base_dir("moat-it-%s-" % name)
    yield base
    if _failed(request) or getattr(request.node, "moat_keep", False):
        print("\nkept test directory: %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def moat(request, moat_base):
    """Factory: moat(**overrides) -> a started moatlib.Moat."""
    made = []

    def factory(name=None, start=True, transport=(), debug=False, extra="",
                **overrides):
        name = name or "moat%d" % len(made)
        m = moatlib.Moat(moat_base, name=name, transport=transport,
                         debug=debug, extra=extra, **overrides)
        made.append(m)
        if start:
            m.start()
        return m

    yield factory

    errors = []
    for m in made:
        try:
            m.cleanup()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            if m.running():
                m.abort()
        if moatlib.ASAN:
            rep = m.sanitizer_report()
            if rep:
                errors.append("sanitizer report in %s:\n%s"
                              % (m.logfile, rep))
    if errors:
        request.node.moat_keep = True
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def smtpsink():
    """Factory: smtpsink(**options) -> a started SmtpSink."""
    sinks = []

    def factory(**options):
        s = SmtpSink(**options)
        s.start()
        sinks.append(s)
        return s

    yield factory
    for s in sinks:
        s.stop()
