#!/bin/sh
# run-dev.sh - "make run": start moatd in the foreground with the
# development config etc/moat.dev.conf (listens on 127.0.0.1:2525,
# spool run/spool, local domains delivered to run/mail/%d/%u).
#
# Prepares what that config needs and moatd does not make itself: a
# self-signed TLS certificate in run/tls/ (CN = the config's hostname),
# run/mail and run/spool, and, when run as root, the `moat` account that
# the roles run as, owning run/mail (the maildir role writes there as
# `moat`, without chroot).  Stop it with Ctrl-C (SIGINT) or SIGTERM.
set -eu

cd "$(dirname "$0")/.."

CONF=etc/moat.dev.conf
MOATD=${BUILD:-build}/moatd

if [ ! -f "$CONF" ]; then
	echo "run-dev.sh: $CONF is missing" >&2
	exit 1
fi
if [ ! -x "$MOATD" ]; then
	echo "run-dev.sh: $MOATD is not built (run make)" >&2
	exit 1
fi

# hostname = NAME in the config, else the system's name
host=$(sed -n 's/^[[:space:]]*hostname[[:space:]]*=[[:space:]]*\([^[:space:]#]*\).*/\1/p' \
    "$CONF" | tail -n 1)
[ -n "$host" ] || host=$(uname -n)

mkdir -p run/tls run/mail run/spool
if [ ! -f run/tls/cert.pem ] || [ ! -f run/tls/key.pem ]; then
	echo "run-dev.sh: creating a self-signed certificate for $host" >&2
	(umask 077 &&
	    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
	    -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
	    -keyout run/tls/key.pem -out run/tls/cert.pem 2>/dev/null)
	chmod 644 run/tls/cert.pem
fi

if [ "$(id -u)" -eq 0 ]; then
	if ! getent passwd moat >/dev/null; then
		echo "run-dev.sh: creating the system account moat" >&2
		useradd --system --no-create-home --shell /usr/sbin/nologin moat
	fi
	chown -R moat: run/mail
	# the maildir role runs as moat: every directory above run/mail
	# must be searchable by it
	if command -v runuser >/dev/null 2>&1 &&
	    ! runuser -u moat -- test -w run/mail 2>/dev/null; then
		echo "run-dev.sh: warning: user moat cannot reach $(pwd)/run/mail;" \
		    "local delivery will fail (make the parent directories" \
		    "searchable, e.g. chmod o+x)" >&2
	fi
fi

echo "run-dev.sh: starting $MOATD -c $CONF (Ctrl-C stops it)" >&2
exec "$MOATD" -c "$CONF"
