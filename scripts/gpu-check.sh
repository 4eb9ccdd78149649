#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, after the README's set-up (make setup with the CUDA build of
# torch), prints in a few minutes:
#   - the paper preset's training throughput (images/s), bf16 autocast on and off;
#   - VL4Pose's batched scoring throughput at 256 px (target >= 1,000 images/s) and every sampler's overhead ratio;
#   - whether two identical runs give identical rows.
# It installs nothing. Figures and JSON go to $OUT (default: gpu-check/). DEVICE, PRESET and POOL override the
# defaults (DEVICE=cpu PRESET=smoke checks the script itself on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-gpu-check}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-paper}
POOL=${POOL:-1024}
mkdir -p "$OUT"
if [ ! -x "$BIN/alpose-bench" ]; then
  echo "no $BIN/alpose-bench: run the README's set-up first (make setup)" >&2
  exit 2
fi
if [ "$DEVICE" != "cpu" ]; then
  "$BIN/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "torch sees no CUDA GPU: install the CUDA build of torch (README set-up) on a machine with one" >&2
    exit 2
  }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$BIN/python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
start=$(date +%s)

echo "== 1. training, inference and selection at the $PRESET preset, precision auto (bf16 where native)"
"$BIN/alpose-bench" bench --preset "$PRESET" --device "$DEVICE" --only training,inference,samplers --pool "$POOL" \
  --slow-pool 64 --repeats 3 --max-seconds 20 --json "$OUT/bench-auto.json"

echo "== 2. the same training and inference in fp32 (bf16 off)"
"$BIN/alpose-bench" bench --preset "$PRESET" --device "$DEVICE" --precision fp32 --only training,inference \
  --pool "$POOL" --repeats 3 --max-seconds 20 --json "$OUT/bench-fp32.json"

echo "== 3. determinism: two identical runs"
for name in det-a det-b; do
  rm -rf "$OUT/runs/$name"
  "$BIN/alpose-bench" run --preset smoke --device "$DEVICE" --samplers random,vl4pose,mpe --seeds 1 \
    --out "$OUT/runs" --name "$name" > "$OUT/$name.log"
done

"$BIN/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
from alpose_bench.results import read as results
out = Path(sys.argv[1])
auto, fp32 = (json.loads((out / f"bench-{k}.json").read_text()) for k in ("auto", "fp32"))
tr, tr32 = auto["sections"]["training"], fp32["sections"]["training"]
inf, inf32 = auto["sections"]["inference"], fp32["sections"]["inference"]
print("\n== summary", auto["machine"]["device_name"])
print(f"training ({tr['compute']['precision']}): {tr['train_images_per_s']:.0f} images/s real, {tr['bare_images_per_s']:.0f} bare, "
      f"{tr['bare_gflops']:.0f} GFLOP/s; plain fp32 step {tr['plain_images_per_s']:.0f} images/s (x{tr['speedup']:.2f})")
print(f"training fp32 (bf16 off): {tr32['train_images_per_s']:.0f} images/s real, {tr32['bare_images_per_s']:.0f} bare")
print(f"inference ({inf['compute']['precision']}): {inf['images_per_s']:.0f} images/s; fp32: {inf32['images_per_s']:.0f} images/s")
for r in auto["sections"]["samplers"]["rows"]:
    if r["status"] != "ok":
        print(f"  {r['sampler']:18s} {r['status']}: {r.get('reason')}")
        continue
    extra = "  (target >= 1,000 images/s at 256 px)" if r["sampler"] == "vl4pose" else ""
    print(f"  {r['sampler']:18s} {r['images_per_s']:8.0f} images/s  overhead x{r['overhead_ratio']:.2f}"
          f" (target {r['target']}){extra}")
cols = ["dataset", "sampler", "seed", "cycle", "n_labelled", "value", "n_selected"]
a = results.load(out / "runs" / "det-a")[cols]
b = results.load(out / "runs" / "det-b")[cols]
sa = results.load_selections(out / "runs" / "det-a")[["sampler", "cycle", "rank", "index"]]
sb = results.load_selections(out / "runs" / "det-b")[["sampler", "cycle", "rank", "index"]]
same_rows, same_picks = a.equals(b), sa.equals(sb)
print(f"two identical runs: rows identical: {same_rows}, selections identical: {same_picks}")
if not same_rows:
    diff = (a["value"] - b["value"]).abs()
    print(f"  largest metric difference: {diff.max():.3g} points")
PY
echo "gpu check finished in $(( $(date +%s) - start )) s; figures in $OUT/"
