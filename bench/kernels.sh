#!/usr/bin/env bash
# bench/kernels.sh - hearth bench next to llama-bench on the same files, same threads,
# in one run. Writes the synthetic TinyLlama-1.1B-shaped models first if missing.
#   LLAMA_BENCH=path/to/llama-bench bench/kernels.sh [threads=2] [types="q4_0 q8_0 q4_k f16"] [p=512] [n=128] [reps=3]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}; TYPES=${2:-"q4_0 q8_0 q4_k f16"}; P=${3:-512}; N=${4:-128}; R=${5:-3}
DIR=${MODELS:-models/bench}
make -s build/hearth build/mkmodel
mkdir -p "$DIR"
printf '| type | hearth pp%s | hearth tg%s | llama.cpp pp%s | llama.cpp tg%s | pp ratio | tg ratio | hearth peak RSS MiB |\n' "$P" "$N" "$P" "$N"
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for t in $TYPES; do
  f="$DIR/tinyllama-$t.gguf"
  [ -f "$f" ] || ./build/mkmodel tinyllama-1.1b "$t" "$f"
  h=$(./build/hearth bench -m "$f" -t "$T" -p "$P" -n "$N" -r "$R" --json)
  hp=$(echo "$h" | sed -E 's/.*"pp":\{[^}]*"tokens_per_s":([0-9.]+).*/\1/')
  ht=$(echo "$h" | sed -E 's/.*"tg":\{[^}]*"tokens_per_s":([0-9.]+).*/\1/')
  rss=$(echo "$h" | sed -E 's/.*"peak_rss_bytes":([0-9]+).*/\1/')
  lp=-; lt=-; rp=-; rt=-
  if [ -n "${LLAMA_BENCH:-}" ]; then
    l=$("$LLAMA_BENCH" -m "$f" -t "$T" -p "$P" -n "$N" -r "$R" -o csv 2>/dev/null)
    lp=$(echo "$l" | grep -E "\"$P\",\"0\"" | tr -d '"' | awk -F, '{print $(NF-1)}' | head -1)
    lt=$(echo "$l" | grep -E "\"0\",\"$N\"" | tr -d '"' | awk -F, '{print $(NF-1)}' | head -1)
    rp=$(awk -v a="$hp" -v b="$lp" 'BEGIN { printf "%.2f", a / b }')
    rt=$(awk -v a="$ht" -v b="$lt" 'BEGIN { printf "%.2f", a / b }')
  fi
  printf '| %s | %.1f | %.1f | %s | %s | %s | %s | %.0f |\n' "$t" "$hp" "$ht" "$lp" "$lt" "$rp" "$rt" "$(awk -v r="$rss" 'BEGIN{print r/1048576}')"
done
