#!/usr/bin/env bash
# The prepared GPU check (about 6 minutes on one H200): CUDA-marked tests (AMP bf16/fp16, channels_last, EMA and
# resume on CUDA), the main job at the published schedule shape for 3 epochs, v1/v2 training throughput of CFSR
# and DRLN, and the zoo's inference time per 640x512 frame; one table at the end (also in $OUT or --out).
#   bash benchmarks/device_check.sh            # on a GPU machine
#   bash benchmarks/device_check.sh --dry-run  # the same steps, tiny, on the CPU (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$(mktemp -d)}"
python benchmarks/device_check.py "$@" --out "$out"
