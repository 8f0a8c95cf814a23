#!/bin/sh
# run-pytest.sh - run the integration tests (tests/integration) with the
# system's pytest.  Extra arguments are passed to pytest.
#
# MOAT_BUILD (set by the Makefile) names the directory with moatd,
# moatctl and moat-sendmail; MOAT_ASAN=1 marks the ASan+UBSan run, in
# which a sanitizer report in moatd's log fails the test.
#
# Exit status is pytest's, except that "no tests collected" (5) is a
# failure too: an empty run must never look green.
set -u

cd "$(dirname "$0")/.." || exit 1

: "${MOAT_BUILD:=$(pwd)/build}"
export MOAT_BUILD
# no .pyc files in the tree, no cache dir; CI has no terminal
export PYTHONDONTWRITEBYTECODE=1

# Debian's python3 has python3-pytest; a python3 first in PATH (pyenv,
# venv) may not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# python3-pytest-timeout (installed by mk/deps.sh) kills a hung test;
# conftest.py has its own alarm-based fallback when it is missing.
TIMEOUT_ARGS=""
if "$PY" -c 'import pytest_timeout' >/dev/null 2>&1; then
	TIMEOUT_ARGS="--timeout=${MOAT_TEST_TIMEOUT:-180}"
fi

# shellcheck disable=SC2086	# TIMEOUT_ARGS is one word or none
"$PY" -m pytest -q -p no:cacheprovider $TIMEOUT_ARGS tests/integration "$@" \
    </dev/null
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "run-pytest.sh: no tests were collected" >&2
	exit 1
fi
exit "$rc"
