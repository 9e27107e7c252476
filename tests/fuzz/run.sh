#!/usr/bin/env bash
# run.sh - runs libFuzzer targets one after another and prints one line each.
#
#   tests/fuzz/run.sh SECONDS TARGET...   run build-fuzz/fuzz-TARGET for SECONDS each
#   tests/fuzz/run.sh --can-build [CC]    exit 0 when CC (clang) links -fsanitize=fuzzer
#
# Inputs: tests/fuzz/corpus/TARGET/ (committed seeds and reproducers, replayed
# first), build-fuzz/seeds/TARGET/ (generated seeds) and build-fuzz/corpus/TARGET/,
# where new inputs are kept between runs. A crash, leak, timeout or memory blow-up
# leaves its reproducer in build-fuzz/findings/TARGET/ and makes this script fail.
# The log of each run is build-fuzz/logs/TARGET.log.
set -u
cd "$(dirname "$0")/../.."

if [ "${1:-}" = --can-build ]; then
	cc=${2:-clang}
	command -v "$cc" >/dev/null || exit 1
	tmp=$(mktemp -d) || exit 1
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return (int)(n - n) + (d == 0); }\n' >"$tmp/t.c"
	"$cc" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1
	rc=$?
	rm -rf "$tmp"
	exit $rc
fi

seconds=$1
shift
B=build-fuzz
failed=0
for t in "$@"; do
	mkdir -p "$B/corpus/$t" "$B/findings/$t" "$B/logs" "$B/seeds/$t" "tests/fuzz/corpus/$t"
	dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
	before=$(ls "$B/findings/$t" | wc -l)
	start=$(date +%s)
	"$B/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$B/findings/$t/" "${dict[@]}" \
		"$B/corpus/$t" "tests/fuzz/corpus/$t" "$B/seeds/$t" >"$B/logs/$t.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	log="$B/logs/$t.log"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	found=$(($(ls "$B/findings/$t" | wc -l) - before))
	[ $rc -ne 0 ] && [ $found -eq 0 ] && found=1 # died without leaving an input (e.g. in start-up)
	printf 'fuzz-%-10s %10s runs in %4d s, coverage %s (features %s), corpus %s, findings %d\n' \
		"$t" "${runs:-?}" "$secs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$found"
	if [ $rc -ne 0 ]; then
		failed=1
		grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: |.*runtime error)' "$log" | head -5 | sed 's/^/    /'
		for f in $(ls -t "$B/findings/$t" | head -"$found"); do
			echo "    reproducer: $B/findings/$t/$f   (replay: $B/fuzz-$t $B/findings/$t/$f)"
		done
		echo "    log: $log"
	fi
done
exit $failed
