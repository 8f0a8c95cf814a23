#!/bin/sh
# deps.sh - install the Debian packages moat needs to build, run and test.
#
# Checks each package with dpkg-query and installs only the missing ones,
# running "apt-get update" first only when something is missing.  Quiet
# when there is nothing to do, so "make run" and "make check" can call it
# every time.  Uses sudo only when not root and sudo exists.
#
# To add a dependency, add it to PACKAGES below (one list, one place).
set -eu

PACKAGES="
	build-essential
	pkg-config
	clang
	libevent-dev
	libssl-dev
	libc-ares-dev
	libpcre2-dev
	libmagic-dev
	libcrypt-dev
	libseccomp-dev
	python3
	python3-pytest
	python3-pytest-timeout
	swaks
	openssl
	dnsutils
	opendkim
	opendkim-tools
	clamav-daemon
	clamav-milter
"

missing=""
for p in $PACKAGES; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: not root and no sudo; install them and retry" >&2
	exit 1
fi

echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
# shellcheck disable=SC2086	# word splitting of the list is intended
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends $missing </dev/null
