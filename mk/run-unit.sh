#!/bin/sh
# run-unit.sh - run unit test programs and sum their results.
#
#   sh mk/run-unit.sh BIN...
#
# Each program prints its own lines and ends with "N passed, M failed".
# A program that crashes, exits non-zero, or prints no such line counts
# as one failure.  Prints the total as "N passed, M failed"; exits 1 if
# anything failed.

passed=0
failed=0
out=$(mktemp "${TMPDIR:-/tmp}/run-unit.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT INT TERM

for bin in "$@"; do
	echo "== $bin"
	"$bin" >"$out" 2>&1
	rc=$?
	cat "$out"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "$bin: no result line (exit status $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed}
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$bin: exit status $rc"
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
