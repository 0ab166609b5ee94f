#!/usr/bin/env bash
# Build advlab with `--features cuda` on a machine without a CUDA toolkit or GPU, from NVIDIA's
# PyPI wheels (CUDA 13.0: nvcc, headers, cublas, curand, nvrtc, cudart). The binary then runs on
# any machine with an NVIDIA driver >= 580 and those libraries (e.g. beside PyTorch cu130).
#   bash benches/reference/build_cuda.sh [WORKDIR] [COMPUTE_CAP]    (default /tmp/advlab-cuda, 90 = H100)
# candle's kernels (including its GGUF matmul kernels) compile with nvcc: ~35 min on 2 cores.
set -eu
W=${1:-/tmp/advlab-cuda} CAP=${2:-90}
mkdir -p "$W"
if [ ! -x "$W/wheels/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip install -q --target "$W/wheels" "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" \
    "nvidia-cuda-nvrtc==13.0.*" "nvidia-cublas==13.*" nvidia-curand "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
    "nvidia-cuda-cccl==13.0.*"
fi
C=$W/wheels/nvidia/cu13 R=$W/root
mkdir -p "$R/lib/stubs"
ln -sfn "$C/bin" "$R/bin"; ln -sfn "$C/include" "$R/include"; ln -sfn "$C/nvvm" "$R/nvvm"
for f in "$C"/lib/*.so.*; do ln -sf "$f" "$R/lib/$(basename "$f")"; done
for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "$R/lib/lib$l.so"; done
ln -sf libcurand.so.10 "$R/lib/libcurand.so"
# The driver library is not on PyPI: link against a stub with the same soname and every driver
# symbol cudarc declares; the real libcuda.so.1 is loaded at run time.
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | head -1)
grep -rhoE 'fn cu[A-Za-z0-9_]+' "$cudarc/src/driver/sys/" | sort -u | sed 's/fn //' |
  awk '{print "void "$1"(void){}"}' > "$W/custub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$R/lib/stubs/libcuda.so" "$W/custub.c"
CUDA_HOME=$R CUDA_ROOT=$R PATH=$R/bin:$PATH CUDA_COMPUTE_CAP=$CAP LIBRARY_PATH=$R/lib:$R/lib/stubs \
  CARGO_TARGET_DIR=$W/target cargo build --release --features cuda --bin advlab
echo "built $W/target/release/advlab"
