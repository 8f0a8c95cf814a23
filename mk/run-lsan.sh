#!/bin/sh
# run-lsan.sh - a representative part of the integration tests with
# LeakSanitizer on in every moatd process (make integration-lsan).
#
# LeakSanitizer checks a process when it exits: each role (smtp-in,
# queue, local, smtp-out) and the master at the clean stop after every
# test, so memory a long-running process lost along the way is found.
# It needs /proc and stops the process with ptrace, so (moatlib.py,
# MOAT_LSAN=1) moatd is started as the role user without chroot and
# with `sandbox = no`.  Any "ERROR: LeakSanitizer" in a moatd log fails
# its test (conftest.py); the ASan/UBSan checks stay on too.
#
# MOAT_BUILD (set by the Makefile) names the ASan build.  Extra
# arguments are passed to pytest.
set -u

cd "$(dirname "$0")/.." || exit 1

: "${MOAT_BUILD:=$(pwd)/build/asan}"
export MOAT_BUILD
export MOAT_ASAN=1 MOAT_LSAN=1
export MOAT_ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export PYTHONDONTWRITEBYTECODE=1

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

TIMEOUT_ARGS=""
if "$PY" -c 'import pytest_timeout' >/dev/null 2>&1; then
	TIMEOUT_ARGS="--timeout=${MOAT_TEST_TIMEOUT:-180}"
fi

# sessions, the protocol scripts, bounces, outbound SMTP, the queue
# and moatctl: every role does its everyday work
# shellcheck disable=SC2086	# TIMEOUT_ARGS is one word or none
"$PY" -m pytest -q -p no:cacheprovider $TIMEOUT_ARGS \
    tests/integration/test_smtp_basic.py \
    tests/integration/test_proto.py \
    tests/integration/test_dsn.py \
    tests/integration/test_outbound.py \
    tests/integration/test_queue_ctl.py \
    "$@" </dev/null
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "run-lsan.sh: no tests were collected" >&2
	exit 1
fi
exit "$rc"
