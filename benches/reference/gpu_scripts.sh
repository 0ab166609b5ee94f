#!/usr/bin/env bash
# Run reproduction scripts on a GPU with a CUDA build of advlab.
#   bash benches/reference/gpu_scripts.sh BIN DATA_ROOT OUTDIR [WHICH]
# WHICH is a comma-separated subset of mixed (seed 001's Table 1), bench (the defence
# benchmark), lwta (Table 1's LWTA row alone) and cluster (seed 000's full reproduction,
# 3 seeds); default mixed,bench. Writes OUTDIR/results.tgz (every table, chart and record)
# and one log per script.
set -u
BIN=$1 DATA=$2 OUT=$3 WHICH=${4:-mixed,bench}
want() { [[ ",$WHICH," == *",$1,"* ]]; }
libs=$(python3 -c 'import glob,os,site; print(":".join(sorted({os.path.dirname(p) for r in site.getsitepackages() for p in glob.glob(os.path.join(r,"nvidia/*/lib/lib*.so*"))})))')
export LD_LIBRARY_PATH="${libs}:${LD_LIBRARY_PATH:-}" ADVLAB_DATA=$DATA ADVLAB_OFFLINE=1
mkdir -p "$OUT" /tmp/gpu_out
if want mixed; then
  timeout 300 "$BIN" run scripts/reproduce/mixed_adversarial_training.rhai --device cuda --out /tmp/gpu_out > "$OUT/mixed.log" 2>&1
  echo "mixed exit $?"; grep -v '^fit\|^ *$' "$OUT/mixed.log" | tail -14
fi
if want lwta; then
  timeout 300 "$BIN" run scripts/reproduce/mixed_adversarial_training.rhai rows=lwta --device cuda --out /tmp/gpu_out > "$OUT/lwta.log" 2>&1
  echo "lwta exit $?"; grep -v '^fit\|^ *$' "$OUT/lwta.log" | tail -6
fi
if want bench; then
  timeout 200 "$BIN" run scripts/defence_benchmark.rhai --device cuda --out /tmp/gpu_out > "$OUT/bench.log" 2>&1
  echo "benchmark exit $?"; grep -v '^fit\|^ *$' "$OUT/bench.log" | tail -28
fi
if want cluster; then
  # resumable while the machine stays warm: /tmp/gpu_out keeps each finished configuration
  timeout 500 "$BIN" run scripts/reproduce/cluster_adversarial_training.rhai --device cuda --out /tmp/gpu_out > "$OUT/cluster.log" 2>&1
  echo "cluster exit $?"; grep -v '^fit\|^ *$\|runs/' "$OUT/cluster.log" | tail -40
fi
tar czf "$OUT/results.tgz" -C /tmp gpu_out
