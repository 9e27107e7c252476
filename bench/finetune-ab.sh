#!/usr/bin/env bash
# bench/finetune-ab.sh - training throughput of two hearth binaries side by side: bench/finetune.sh
# with each, alternating, REPS times; prints every run's table row and the median tokens/s of each
# and their ratio (B / A). Alternating runs in one session so that a busy host slows both alike.
#
#   bench/finetune-ab.sh A_BIN B_BIN [SHAPE] [TYPE] [CTX] [STEPS]
#
# Environment: REPS [3], and bench/finetune.sh's (THREADS, TARGETS, RANK, MODELS).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2; shift 2
REPS=${REPS:-3}
ra=(); rb=()
for i in $(seq "$REPS"); do
	for side in A B; do
		bin=$A; [ "$side" = B ] && bin=$B
		r=$(BIN=$bin bench/finetune.sh "$@" | tail -1)
		echo "$side $r"
		t=$(echo "$r" | awk -F'|' '{gsub(/ /, "", $9); print $9}')
		if [ "$side" = A ]; then ra+=("$t"); else rb+=("$t"); fi
	done
done
python3 - "${ra[*]}" "${rb[*]}" <<'PY'
import statistics, sys
a = [float(v) for v in sys.argv[1].split()]
b = [float(v) for v in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print("median tokens/s: A %.2f  B %.2f  ratio B/A %.2f" % (ma, mb, mb / ma))
PY
