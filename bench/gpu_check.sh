#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one unattended run on one A100/H100/H200-class GPU
# (a few minutes; the steps' time limits cap it at about 10, most of it torch.compile's first compilations):
#   1. time to accuracy of the `fast` recipe, 3 seeds of its full 12 epochs (45,000/5,000 split),
#   2. airbench94's own recipe on seed 0's split, against step 1's seed 0,
#   3. training images/s of resnet18 and resnet50 (the resnet18 recipe, bf16 + channels_last +
#      torch.compile) against the plain eager loop,
#   4. the `seed` recipe (the tutorial: ResNet-50 at 224x224, Adam, batch 64) against the tutorial's own loop,
#   5. the loader and each augmentation policy on the GPU against torchvision's DataLoader.
# Each step has its own time limit, so one slow step cannot stop the others; every
# step's output and the machine's description go to $OUT.
#
#     DATA=<folder holding cifar-10-batches-py/> bash bench/gpu_check.sh
#
# DATA may instead be converted first from the JPEG copy of the CIFAR-10 training split:
# set ARCHIVE to the archive and CONVERTER to the script that turns it into the python layout
# (run as: $PY $CONVERTER $ARCHIVE $DATA). On a GPU machine whose own python has PyTorch and no .venv:
#
#     PY=python3 PYTHONPATH=src DATA=... [ARCHIVE=... CONVERTER=...] bash bench/gpu_check.sh
#
# DEVICE (default cuda) names the GPU, e.g. cuda:1; OUT (default runs/gpu-check) the output folder.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
DATA=${DATA:-data}
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
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
  if [ -z "${ARCHIVE:-}" ] || [ -z "${CONVERTER:-}" ]; then
    echo "No $DATA/cifar-10-batches-py: set DATA to a folder holding it, or ARCHIVE and CONVERTER to make it." >&2
    exit 2
  fi
  step convert 80 "$PY" "$CONVERTER" "$ARCHIVE" "$DATA"
fi
step time_to_accuracy 150 "$PY" bench/time_to_accuracy.py --preset fast --seeds 0 1 2 --epochs 12 \
  --device "$DEVICE" --data-dir "$DATA" --output "$OUT/time-to-accuracy"
step airbench94 60 "$PY" bench/airbench94_reference.py --epochs 9.9 --seed 0 \
  --against "$OUT/time-to-accuracy/seed0" --device "$DEVICE" --data-dir "$DATA"
step throughput 150 "$PY" bench/throughput.py --preset resnet18 --models resnet18 resnet50 --device "$DEVICE" \
  --compile --batch-size 512 --steps 20 --rounds 3
step throughput_seed 60 "$PY" bench/throughput.py --preset seed --device "$DEVICE" --steps 50 --rounds 2
step loader 60 "$PY" bench/loader.py --device "$DEVICE" --data-dir "$DATA"
grep -h '^RESULT' "$OUT"/*.log > "$OUT/results.txt"
echo "RESULT files=$(wc -l < "$OUT/results.txt") out=$OUT"
