#!/usr/bin/env bash
# Run the seed-001 Table 1 script and the defence benchmark on a GPU with a CUDA build of advlab.
#   bash benches/reference/gpu_scripts.sh BIN DATA_ROOT OUTDIR
# Writes OUTDIR/results.tgz (every table, chart and record) and one log per script.
set -u
BIN=$1 DATA=$2 OUT=$3
libs=$(python3 -c 'import glob,os,site; print(":".join(sorted({os.path.dirname(p) for r in site.getsitepackages() for p in glob.glob(os.path.join(r,"nvidia/*/lib/lib*.so*"))})))')
export LD_LIBRARY_PATH="${libs}:${LD_LIBRARY_PATH:-}" ADVLAB_DATA=$DATA ADVLAB_OFFLINE=1
mkdir -p "$OUT" /tmp/gpu_out
timeout 300 "$BIN" run scripts/reproduce/mixed_adversarial_training.rhai --device cuda --out /tmp/gpu_out > "$OUT/mixed.log" 2>&1
echo "mixed exit $?"; grep -v '^fit\|^ *$' "$OUT/mixed.log" | tail -14
timeout 200 "$BIN" run scripts/defence_benchmark.rhai --device cuda --out /tmp/gpu_out > "$OUT/bench.log" 2>&1
echo "benchmark exit $?"; grep -v '^fit\|^ *$' "$OUT/bench.log" | tail -28
tar czf "$OUT/results.tgz" -C /tmp gpu_out
