#!/bin/sh
# get-tools.sh - fetch Postfix's smtp-source and smtp-sink from Debian's
# postfix package into bench/tools/ (ignored by git) without installing
# the Postfix MTA.  Prints the directory holding the programs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tools=$here/tools
if [ ! -x "$tools/root/usr/sbin/smtp-source" ]; then
	mkdir -p "$tools"
	cd "$tools"
	rm -f postfix_*.deb
	apt-get download postfix >/dev/null 2>&1 || {
		apt-get update >/dev/null 2>&1 && apt-get download postfix >/dev/null
	}
	dpkg -x postfix_*.deb root
fi
echo "$tools/root"
