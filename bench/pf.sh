#!/bin/sh
# pf.sh PROGRAM ARGS... - run a program from the extracted postfix package
root=$(sh "$(dirname "$0")/get-tools.sh")
prog=$1; shift
LD_LIBRARY_PATH=$root/usr/lib/postfix exec "$root/usr/sbin/$prog" "$@"
