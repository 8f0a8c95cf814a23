#!/bin/sh
# run-fuzz.sh - smoke-run libFuzzer targets over their seed corpora.
#
#   sh mk/run-fuzz.sh SECONDS BIN...
#
# For BIN .../fuzz_NAME: replays tests/fuzz/regress/fuzz_NAME/ (or
# regress/NAME/) if present, then fuzzes for SECONDS starting from
# tests/fuzz/corpus/NAME/, copied into a scratch corpus beside BIN
# (build/fuzz/corpus-fuzz_NAME) so that new inputs do not land in the
# tree.  Crash inputs go to build/fuzz/artifacts-fuzz_NAME/.  Prints the
# executions per target; exits 1 if any target crashed or failed.

if [ $# -lt 2 ]; then
	echo "usage: sh mk/run-fuzz.sh SECONDS BIN..." >&2
	exit 2
fi
secs=$1
shift
case $secs in
''|*[!0-9]*) echo "run-fuzz.sh: bad SECONDS: $secs" >&2; exit 2 ;;
esac

status=0
summary=""
for bin in "$@"; do
	name=$(basename "$bin")
	short=${name#fuzz_}
	dir=$(dirname "$bin")
	corpus=$dir/corpus-$name
	art=$dir/artifacts-$name
	log=$dir/log-$name.txt
	mkdir -p "$corpus" "$art" || exit 1
	if [ -d "tests/fuzz/corpus/$short" ]; then
		cp tests/fuzz/corpus/"$short"/* "$corpus"/ 2>/dev/null
	fi

	# regression inputs: each file run once, any failure is fatal
	for reg in "tests/fuzz/regress/$name" "tests/fuzz/regress/$short"; do
		[ -d "$reg" ] || continue
		files=$(find "$reg" -type f | sort)
		[ -n "$files" ] || continue
		echo "== $name: replay $reg"
		# shellcheck disable=SC2086
		if ! "$bin" -artifact_prefix="$art/" $files \
		    >"$log.replay" 2>&1; then
			tail -n 40 "$log.replay"
			echo "$name: regression input failed"
			status=1
		fi
	done

	echo "== $name: ${secs}s over $corpus"
	"$bin" -max_total_time="$secs" -print_final_stats=1 \
	    -artifact_prefix="$art/" "$corpus" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -n 1)
	if [ "$rc" -ne 0 ]; then
		tail -n 40 "$log"
		echo "$name: FAILED (exit status $rc), see $log and $art/"
		summary="$summary$name: CRASH
"
		status=1
	else
		summary="$summary$name: ${execs:-0} executions
"
	fi
done

printf '%s' "$summary"
exit $status
