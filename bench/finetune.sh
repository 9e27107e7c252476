#!/usr/bin/env bash
# bench/finetune.sh - training throughput of `hearth finetune` (forward + backward + AdamW) and the
# memory it needs, on a synthetic model of a real shape (random weights, byte-level vocabulary).
# Not run in CI. Every slot of a packed row counts as a token (what tokens/s means in the progress
# line); the first step is left out of the rate (page faults of the mapped weights).
#
#   bench/finetune.sh [SHAPE=tinyllama-1.1b] [TYPE=q4_k_m] [CTX=256] [STEPS=6]
#
# Environment: THREADS [2], TARGETS [attn], RANK [8], MODELS (folder for the files) [models/bench],
# BIN (the hearth to time, for before/after runs: bench/finetune-ab.sh) [build/hearth].
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPE=${1:-tinyllama-1.1b}; TYPE=${2:-q4_k_m}; CTX=${3:-256}; STEPS=${4:-6}
T=${THREADS:-2}; DIR=${MODELS:-models/bench}; TARGETS=${TARGETS:-attn}; RANK=${RANK:-8}
make -s build/hearth build/mkmodel
BIN=${BIN:-./build/hearth}
mkdir -p "$DIR"
M="$DIR/$SHAPE-$TYPE.gguf"
[ -f "$M" ] || ./build/mkmodel "$SHAPE" "$TYPE" "$M"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# prompt/completion lines of about CTX/2 bytes (the synthetic vocabulary is bytes; a space is three)
python3 - "$WORK/data.jsonl" "$CTX" <<'PY'
import json, sys
words = "the of and to in is was for on that with as by at from his her it an were are which this be or".split()
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for i in range(64):
        text = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(n // 3))
        cut = int(n * 0.47) - 4
        f.write(json.dumps({"prompt": text[: cut // 2], "completion": text[cut // 2 : cut]}) + "\n")
PY
/usr/bin/time -v "$BIN" finetune -m "$M" --data "$WORK/data.jsonl" -o "$WORK/a.gguf" --ctx "$CTX" \
	--epochs 0 --steps "$STEPS" -t "$T" --targets "$TARGETS" --lora-rank "$RANK" > "$WORK/out.txt" 2> "$WORK/err.txt"
rss=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+).*/\1/p' "$WORK/err.txt")
wall=$(sed -nE 's/.*Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (.*)/\1/p' "$WORK/err.txt")
grep -E "adapters|examples" "$WORK/err.txt" || true
cat "$WORK/out.txt"
# the rate over steps 2..STEPS, from the progress lines' token totals and the step times
python3 - "$WORK/out.txt" "$rss" "$SHAPE" "$TYPE" "$CTX" "$T" "$TARGETS" "$RANK" "$wall" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if re.match(r"step \d+/\d+ ", l)]
toks = [int(re.search(r"tokens (\d+)", l).group(1)) for l in lines]
secs = [float(re.search(r"\(([0-9.]+) s\)", l).group(1)) for l in lines]
rss, shape, typ, ctx, t, targets, rank, wall = sys.argv[2:]
n = len(lines)
tok = toks[-1] - toks[0]
sec = sum(secs[1:])
print("| shape | type | ctx | threads | targets | rank | tokens/step | tokens/s (fwd+bwd+AdamW) | s/step | peak RSS MiB |")
print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|")
print("| %s | %s | %s | %s | %s | %s | %.0f | %.1f | %.2f | %.0f |" % (shape, typ, ctx, t, targets, rank, tok / (n - 1), tok / sec, sec / (n - 1), int(rss) / 1024))
PY
