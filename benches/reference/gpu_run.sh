#!/usr/bin/env bash
# advlab against PyTorch on one NVIDIA GPU, in one call (see README "GPU").
#   bash benches/reference/gpu_run.sh BIN DATA OUTDIR [smoke|full]
# BIN: advlab built with `--features cuda`; DATA: the MNIST IDX folder; OUTDIR: where JSON and logs go.
# The CUDA libraries advlab links (cublas, curand, nvrtc, cudart 13) are looked up beside PyTorch's.
set -u
BIN=$1 DATA=$2 OUT=$3 MODE=${4:-full}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
libs=$(python3 - <<'PY'
import glob, os, site
dirs = set()
for root in site.getsitepackages():
    for pat in ("nvidia/*/lib/lib*.so*", "nvidia/*/*/lib/lib*.so*"):
        dirs.update(os.path.dirname(p) for p in glob.glob(os.path.join(root, pat)))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${libs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
ldd "$BIN" | grep -E 'cuda|cublas|curand|nvrtc|not found'
MLP=mlp_epoch,mlp_fgsm,mlp_pgd20,mlp_bim20,mlp_pgdl2,mlp_cw,mlp_deepfool
CNN=cnn_epoch,cnn_fgsm,cnn_pgd20,cnn_bim20,cnn_pgdl2,cnn_cw,cnn_deepfool
if [ "$MODE" = smoke ]; then
  limit="--limit 1000" t_torch=60 t_ours=60
else
  limit="" t_torch=200 t_ours=150
fi
export PYTHONUNBUFFERED=1
( cd benches/reference && timeout $t_torch python3 torch_bench.py --data "$DATA" --device cuda --threads 16 $limit \
    --out "$OUT/torch_$MODE.json" ) > "$OUT/torch_$MODE.log" 2>&1
echo "torch $MODE exit $?"; grep -A16 '^workload' "$OUT/torch_$MODE.log" || tail -5 "$OUT/torch_$MODE.log"
for part in MLP CNN; do
  timeout $t_ours "$BIN" bench --device cuda --data "$DATA" --only "${!part}" $limit --reference "$OUT/torch_$MODE.json" \
    --json "$OUT/advlab_${MODE}_$part.json" > "$OUT/advlab_${MODE}_$part.log" 2>&1
  echo "advlab $MODE $part exit $?"; grep -A9 '^workload' "$OUT/advlab_${MODE}_$part.log" || tail -5 "$OUT/advlab_${MODE}_$part.log"
done
