#!/usr/bin/env bash
# GPU labelling throughput: the real-time factor of `fetal-analytics label`'s code path with the
# paper preset (Sono-2DtCNN, width 64, 224x224, 12 frames) and all three streams (fr2, fr4, fr8),
# under Keras's JAX (default) or PyTorch backend. Under 8 minutes on one H100/H200-class GPU.
#
#   benchmarks/gpu_label.sh                       # JAX, paper preset, a 10-minute scan
#   KERAS_BACKEND=torch benchmarks/gpu_label.sh   # PyTorch
#   PRESET=cpu MINUTES=0.5 benchmarks/gpu_label.sh   # smoke test of the same path on a CPU
#
# 1. builds an untrained multi-stream model of the preset (benchmarks/make_paper_model.py: the
#    weights decide nothing about throughput), once, into $WORK;
# 2. runs benchmarks/label_throughput.py on it: renders a simulated 640x480, 30 fps scan of
#    $MINUTES minutes once (cached in out/bench/), then times decoding alone, the network alone
#    and `label` end to end;
# 3. prints the GPU (nvidia-smi), the backend's devices and the real-time factor.
#
# Unless KERAS_BACKEND=tensorflow, TensorFlow is made unimportable in the benchmark's process (as
# on a machine without it), so the run also proves that the labelling path needs no TensorFlow.
# Freeze detection confirms freezes by OCR; without the `tesseract` program it is skipped
# (--no-freezes) and the summary says so.
#
# Environment: KERAS_BACKEND (jax), PRESET (paper), STREAMS (fr2,fr4,fr8), MINUTES (10),
# BATCH (32), PYTHON (.venv/bin/python if present, else python3), WORK (out/gpu-bench),
# FREEZES (auto | yes | no).
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
PRESET=${PRESET:-paper}
STREAMS=${STREAMS:-fr2,fr4,fr8}
MINUTES=${MINUTES:-10}
BATCH=${BATCH:-32}
WORK=${WORK:-out/gpu-bench}
FREEZES=${FREEZES:-auto}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
mkdir -p "$WORK"
started=$SECONDS

# Runs a Python script with TensorFlow blocked (unless the backend is TensorFlow), the script's
# folder first on sys.path as `python script.py` has it.
run_py() {
  "$PYTHON" - "$@" <<'EOF'
import os, runpy, sys
if os.environ["KERAS_BACKEND"] != "tensorflow":
    sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
EOF
}

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
      | head -n 1 || true)
echo "GPU: ${gpu:-none (nvidia-smi found no NVIDIA GPU)}"
"$PYTHON" - <<'EOF'
import os, sys
if os.environ["KERAS_BACKEND"] != "tensorflow":
    sys.modules["tensorflow"] = None
import keras
backend = keras.backend.backend()
if backend == "jax":
    import jax
    devices = [str(d) for d in jax.devices()]
elif backend == "torch":
    import torch
    devices = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
               or ["cpu"])
else:
    import tensorflow as tf
    devices = [d.name for d in tf.config.list_logical_devices()]
print(f"Keras {keras.__version__}, backend {backend}, devices: {', '.join(devices)}")
EOF

model="$WORK/$PRESET-${STREAMS//,/-}.keras"
if [ ! -f "$model" ] || [ ! -f "${model%.keras}.json" ]; then
  run_py benchmarks/make_paper_model.py --out "$model" --preset "$PRESET" --streams "$STREAMS"
fi

freeze_args=()
case "$FREEZES" in
  no) freeze_args=(--no-freezes) ;;
  yes) ;;
  auto) command -v tesseract >/dev/null || {
          echo "note: no tesseract program: freeze detection skipped (--no-freezes)"
          freeze_args=(--no-freezes); } ;;
  *) echo "FREEZES must be auto, yes or no, got '$FREEZES'" >&2; exit 2 ;;
esac

result="$WORK/label_throughput-$PRESET-$KERAS_BACKEND.json"
run_py benchmarks/label_throughput.py --model "$model" --minutes "$MINUTES" \
  --batch-size "$BATCH" "${freeze_args[@]}" --json | tee "$WORK/label_throughput.log"
tail -n 1 "$WORK/label_throughput.log" > "$result"

GPU="${gpu:-none}" ELAPSED=$((SECONDS - started)) "$PYTHON" - "$result" <<'EOF'
import json, os, sys
f = json.load(open(sys.argv[1]))
speed = lambda s: f"{f['video_s'] / s:.1f}x" if s else "inf"
print()
print(f"GPU:              {os.environ['GPU']}")
print(f"backend:          {os.environ['KERAS_BACKEND']}")
print(f"model:            {os.environ['PRESET']} preset, streams {', '.join(f['streams'])}, "
      f"{f['size']}x{f['size']}, batch {f['batch_size']}")
print(f"scan:             {f['video_s'] / 60:.1f} min, 640x480, {f['n_windows']} windows, "
      f"freezes {'skipped' if f['freezes'] is None else 'detected'}")
print(f"decoding alone:   {f['decode_s']} s ({speed(f['decode_s'])} real time)")
print(f"network alone:    {f['infer_s']} s ({speed(f['infer_s'])} real time, "
      f"{f['clips_per_s']} clips/s)")
print(f"label end to end: {f['total_s']} s")
print(f"REALTIME FACTOR:  {f['realtime_factor']}  (overlap_ratio {f['overlap_ratio']}, "
      f"peak_rss_mb {f['peak_rss_mb']}, {f['cpu_count']} CPUs)")
print(f"whole benchmark:  {os.environ['ELAPSED']} s; figures in {sys.argv[1]}")
EOF
