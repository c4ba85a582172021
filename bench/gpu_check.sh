#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one unattended run on one A100/H100/H200-class GPU
# (a few minutes; the steps' time limits cap it at 10, most of it torch.compile's first compilations):
#   1. time to 91% of the `fast` recipe (3 seeds, 45k/5k split of ../shared/data),
#   2. training images/s of resnet18 and resnet50 with bf16 + channels_last + torch.compile
#      against the plain eager loop,
#   3. one epoch of the `seed` recipe against the tutorial's own loop.
# Each step has its own time limit, so one slow step cannot stop the others; every
# step's output and the machine's description go to $OUT (default /tmp/gpu-check).
#
#     bash bench/gpu_check.sh
#
# On a GPU machine whose own python has PyTorch and no .venv, and no ../shared beside the checkout:
#
#     PY=python3 PYTHONPATH=src SHARED=<folder with cifar10-train-jpeg.tar.gz and its converter> bash bench/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
DATA=${DATA:-/tmp/cifar-jpeg}
SHARED=${SHARED:-../shared/data}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"

{
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"
  nproc
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, show its RESULT line
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local code=$?
  echo "   exit $code after $((SECONDS - start)) s: $(grep '^RESULT' "$OUT/$name.log" | tail -1)"
}

if [ ! -d "$DATA/cifar-10-batches-py" ]; then
  step convert 80 "$PY" "$SHARED/cifar10_jpeg_to_batches.py" "$SHARED/cifar10-train-jpeg.tar.gz" "$DATA"
fi
step time_to_accuracy 170 "$PY" bench/time_to_accuracy.py --seeds 0 1 2 --device cuda --data-dir "$DATA" \
  --archive "$SHARED/cifar10-train-jpeg.tar.gz" --output "$OUT/tta"
step throughput 240 "$PY" bench/throughput.py --models resnet18 resnet50 --device cuda --amp bf16 --compile \
  --batch-size 512 --steps 20 --rounds 3
step seed_epoch 80 "$PY" bench/seed_epoch.py --device cuda --data-dir "$DATA" --images 20000 --output "$OUT/seed"
grep -h '^RESULT' "$OUT"/*.log > "$OUT/results.txt"
echo "RESULT files=$(wc -l < "$OUT/results.txt") out=$OUT"
