#!/usr/bin/env bash
# bench/side-by-side.sh - hearth bench and llama-bench on the same files, same threads,
# alternating one repetition of each, medians over REPS; ratios hearth / llama.cpp.
# Writes the synthetic models first (build/mkmodel) when missing.
#
#   LLAMA_BENCH=path/to/llama-bench bench/side-by-side.sh "SHAPE:TYPE ..." [p=512] [n=128] [depth=0]
#   e.g. bench/side-by-side.sh "qwen2.5-0.5b:q4_k_m qwen2.5-0.5b:q8_0 llama3.2-1b:q4_k_m"
#
# Environment: THREADS [2], REPS [5], MODELS (folder for the files) [models/bench],
# FA (llama-bench -fa) [1 with a depth, else its default], PP_ONLY / TG_ONLY.
# Without LLAMA_BENCH only hearth's columns are filled.
set -euo pipefail
cd "$(dirname "$0")/.."
LIST=${1:?usage: bench/side-by-side.sh "SHAPE:TYPE ..." [p] [n] [depth]}
P=${2:-512}; N=${3:-128}; D=${4:-0}
T=${THREADS:-2}; R=${REPS:-5}; DIR=${MODELS:-models/bench}
[ -n "${PP_ONLY:-}" ] && N=0
[ -n "${TG_ONLY:-}" ] && P=0
FA=${FA:-}; [ -z "$FA" ] && [ "$D" != 0 ] && FA=1
make -s build/hearth build/mkmodel
mkdir -p "$DIR"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

dl=""; [ "$D" != 0 ] && dl=" @ d$D"
echo "threads $T, $R alternating repetitions each, medians (tokens/s)"
printf '| shape | type | hearth pp%s%s | llama.cpp pp%s%s | ratio | hearth tg%s%s | llama.cpp tg%s%s | ratio |\n' \
	"$P" "$dl" "$P" "$dl" "$N" "$dl" "$N" "$dl"
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
for item in $LIST; do
	shape=${item%%:*}; type=${item#*:}
	f="$DIR/$shape-$type.gguf"
	[ -f "$f" ] || ./build/mkmodel "$shape" "$type" "$f"
	hp=(); ht=(); lp=(); lt=()
	for ((i = 0; i < R; i++)); do
		h=$(./build/hearth bench -m "$f" -t "$T" -p "$P" -n "$N" -d "$D" -r 1 --json)
		[ "$P" != 0 ] && hp+=("$(echo "$h" | sed -E 's/.*"pp":\{[^}]*"tokens_per_s":([0-9.]+).*/\1/')")
		[ "$N" != 0 ] && ht+=("$(echo "$h" | sed -E 's/.*"tg":\{[^}]*"tokens_per_s":([0-9.]+).*/\1/')")
		if [ -n "${LLAMA_BENCH:-}" ]; then
			args=(-m "$f" -t "$T" -r 1 -o csv -p "$P" -n "$N")
			[ "$D" != 0 ] && args+=(-d "$D")
			[ -n "$FA" ] && args+=(-fa "$FA")
			l=$("$LLAMA_BENCH" "${args[@]}" 2>/dev/null | tr -d '"')
			# csv columns: ... n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts
			[ "$P" != 0 ] && lp+=("$(echo "$l" | awk -F, -v p="$P" '$0 !~ /^build/ { n = NF; if ($(n-7) == p && $(n-6) == 0) print $(n-1) }' | head -1)")
			[ "$N" != 0 ] && lt+=("$(echo "$l" | awk -F, -v g="$N" '$0 !~ /^build/ { n = NF; if ($(n-7) == 0 && $(n-6) == g) print $(n-1) }' | head -1)")
		fi
	done
	mhp=$(printf '%s\n' "${hp[@]:-}" | { grep . || true; } | median); mht=$(printf '%s\n' "${ht[@]:-}" | { grep . || true; } | median)
	mlp=$(printf '%s\n' "${lp[@]:-}" | { grep . || true; } | median); mlt=$(printf '%s\n' "${lt[@]:-}" | { grep . || true; } | median)
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$shape" "$type" "$mhp" "$mlp" "$(ratio "$mhp" "$mlp")" \
		"$mht" "$mlt" "$(ratio "$mht" "$mlt")"
done
