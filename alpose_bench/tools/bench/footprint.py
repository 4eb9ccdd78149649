"""The footprint section: what each sampler costs a device that sees frames one at a time (VL4Pose's on-device frame).

Per sampler, beside the pose model's own forward pass:

* `extra_ms_b1`: extra milliseconds per frame with batch 1 (a device scoring each frame as it arrives), over the
  first `footprint_frames` pool images: (selection seconds - one forward pass per frame) / frames, where the
  forward pass is timed inside that very selection (`SelectionContext.inference` / `forward_passes`, so a shared
  machine's drift slows both sides alike); `ratio_b1` = selection / one forward per frame. A sampler that runs no
  forward pass (random) is compared with a plain batch-1 pass timed beside it. `extra_ms_batch`, `ratio_batch`:
  the same over the whole pool at the evaluation batch (the pool protocol's cost). Extra forward passes (MC
  dropout's T passes, embedding the labelled set) are extra cost: a device pays them per frame.
* `extra_params`: parameters of its auxiliary head (0 without one), beside the pose model's (`model_params`, printed
  with the paper's 8.4 M for its 2-stack hourglass and 2.1 M for the auxiliary network);
* `extra_peak_mb`: how far the peak resident memory of its selection over the pool rises above that of a plain
  forward pass over the same pool (each over the resident memory just before it; Linux VmHWM, reset before each;
  None where it cannot be reset): the memory its scoring needs beyond the model's own activations;
* `growth_pool`, `growth_labelled`: how its extra cost per frame changes when the pool, or the labelled set, doubles
  (pool/2 -> pool, labelled/2 -> labelled, same batch): about 1 for a per-frame scorer, about 2 for a sampler whose
  per-frame cost grows with the set (O(n) per frame, O(n^2) in all); `per_frame` is "O(1)" when both stay below
  `GROWS_ABOVE`.

Every selection picks `budget` images (a run's fraction); EGL++ (per-image gradients) is timed on `slow_pool`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from alpose_bench.tools.bench.common import BenchRun, _median, _once
from alpose_bench.tools.bench.memory import peak_above
from alpose_bench.tools.bench.samplers import make_sampler, resolve_samplers, skip_reason

#: the VL4Pose paper's pose model (2-stack hourglass) and auxiliary network, in parameters
PAPER_MODEL_PARAMS = 8.4e6
PAPER_AUX_PARAMS = 2.1e6
#: a per-frame cost that grows by more than this when a set doubles is not O(1) per frame
GROWS_ABOVE = 1.3


def _plain_pass(s: Any, pool: np.ndarray, batch: int) -> None:
    ctx = s.context(pool=pool)
    ctx.batch_size = batch
    for _ in ctx.batches("pool"):
        pass


@dataclass(frozen=True)
class Timed:
    """One selection: its seconds, the seconds of one forward pass per frame inside it (None: it ran none) and
    its peak extra resident MiB (None where the peak cannot be reset)."""

    seconds: float
    forward: float | None
    peak_mb: float | None

    def extra(self, frames: int, plain: float) -> float:
        """Extra seconds per frame beyond one forward pass each (`plain`: a separately timed pass, used only when
        the selection ran no forward pass of its own)."""
        return (self.seconds - (plain if self.forward is None else self.forward)) / frames

    def ratio(self, plain: float) -> float:
        return self.seconds / (plain if self.forward is None else self.forward)


def _plain_peak(s: Any, pool: np.ndarray, batch: int) -> float | None:
    """Peak resident MiB of a plain forward pass over `pool` above the resident memory before it (None where the
    peak cannot be reset)."""
    return peak_above(partial(_plain_pass, s, pool, batch))[1]


def _selection(
    s: Any, sampler: Any, head: Any, pool: np.ndarray, labelled: np.ndarray, batch: int, take: int, seed: int
) -> Timed:
    """One selection of `take` from `pool` with `labelled`, at `batch`."""
    from alpose_bench.engine.loop import run_selection

    ctx = s.context(head, pool=pool, seed=seed, sampler=sampler)
    ctx.batch_size = batch
    ctx.labelled = labelled
    seconds, peak = peak_above(partial(_once, partial(run_selection, sampler, ctx, take), s.device))
    inside = ctx.inference.cpu_s if s.device.type != "cuda" else ctx.inference.wall_s
    forward = inside * len(pool) / ctx.forward_passes if ctx.forward_passes and inside > 0 else None
    return Timed(seconds, forward, peak)


def _median_timed(runs: list[Timed]) -> Timed:
    """The run with the median seconds (its own forward time and peak with it)."""
    return sorted(runs, key=lambda t: t.seconds)[len(runs) // 2]


def run(bench: BenchRun) -> dict[str, Any]:
    """Each sampler's extra cost per frame (batch 1 and pool batch), extra parameters, peak extra memory and
    growth with the set sizes (see the module docstring)."""
    from alpose_bench.core import seeds
    from alpose_bench.engine import build

    s, settings, say = bench.model_setting, bench.settings, bench.say
    batch = s.spec.eval_batch_size
    frames = s.pool[: min(settings.footprint_frames, len(s.pool))]
    half_pool = s.pool[: max(1, len(s.pool) // 2)]
    half_labelled = s.labelled[: max(1, len(s.labelled) // 2)]
    budget = s.spec.budget if settings.budget is None else settings.budget
    fraction = min(budget, max(1, len(s.pool) // 5)) / len(s.pool)

    def take(n: int) -> int:
        return min(max(1, round(fraction * n)), max(1, n - 1))

    def plain(pool: np.ndarray, b: int) -> float:
        _plain_pass(s, pool, b)  # warm-up
        return _median([_once(partial(_plain_pass, s, pool, b), s.device) for _ in range(settings.repeats)])

    say(f"footprint: plain passes (batch 1 over {len(frames)} frames, batch {batch} over {len(s.pool)})")
    plain_b1 = plain(frames, 1)
    plain_batch: dict[int, float] = {}  # pool size -> seconds of a plain pass at the evaluation batch
    plain_peaks: dict[int, float | None] = {}  # pool size -> its peak resident MiB

    def plain_at(pool: np.ndarray) -> float:
        """A plain pass over the first len(pool) pool images, timed once per size."""
        if len(pool) not in plain_batch:
            plain_batch[len(pool)] = plain(pool, batch)
        return plain_batch[len(pool)]

    for p in (s.pool, half_pool):
        plain_at(p)
    model_spec = build.protocol(s.spec).model
    rows = []
    for name, cls in resolve_samplers(settings):
        reason = skip_reason(cls, s, model_spec)
        if reason is not None:
            rows.append({"sampler": name, "status": "skipped", "reason": reason})
            continue
        say(f"footprint: {name}")
        slow = "model" in getattr(cls, "needs", ())
        try:
            sampler = make_sampler(s.spec, name, cls)
            head = build.new_head(sampler, s.model, s.seed, s.compute)
            seed = seeds.derive_seed("bench-footprint", s.seed, name)
            pool = s.pool[: settings.slow_pool] if slow else s.pool
            half = pool[: max(1, len(pool) // 2)]
            b1_frames = frames[: len(pool)] if slow else frames
            sel = partial(_selection, s, sampler, head, seed=seed)
            b1 = _median_timed(
                [sel(b1_frames, s.labelled, 1, take(len(b1_frames))) for _ in range(settings.repeats)]
            )
            full = _median_timed(
                [sel(pool, s.labelled, batch, take(len(pool))) for _ in range(settings.repeats)]
            )
            half_pool_run = _median_timed(
                [sel(half, s.labelled, batch, take(len(half))) for _ in range(settings.repeats)]
            )
            half_lab_run = _median_timed(
                [sel(pool, half_labelled, batch, take(len(pool))) for _ in range(settings.repeats)]
            )
        except Exception as exc:  # one sampler's failure must not hide the others' figures
            rows.append(
                {
                    "sampler": name,
                    "status": "failed",
                    "reason": f"{type(exc).__name__}: {exc}".splitlines()[0],
                }
            )
            continue
        base_full, base_half = plain_at(pool), plain_at(half)
        if len(pool) not in plain_peaks:
            plain_peaks[len(pool)] = _plain_peak(s, pool, batch)
        plain_peak = plain_peaks[len(pool)]
        base_b1 = plain_b1 * len(b1_frames) / len(frames)
        extra_full = full.extra(len(pool), base_full)
        forward = (full.forward or base_full) / len(pool)
        growth_pool = _growth(extra_full, half_pool_run.extra(len(half), base_half), forward)
        growth_labelled = _growth(extra_full, half_lab_run.extra(len(pool), base_full), forward)
        rows.append({
            "sampler": name, "status": "ok", "buffered": not cls.decides_per_frame(),
            "extra_ms_b1": 1e3 * max(0.0, b1.extra(len(b1_frames), base_b1)), "ratio_b1": b1.ratio(base_b1),
            "extra_ms_batch": 1e3 * max(0.0, extra_full), "ratio_batch": full.ratio(base_full),
            "extra_params": 0 if head is None else sum(p.numel() for p in head.parameters()),
            "extra_peak_mb": None if full.peak_mb is None or plain_peak is None
            else max(0.0, full.peak_mb - plain_peak), "growth_pool": growth_pool, "growth_labelled": growth_labelled,
            "per_frame": "O(1)" if max(growth_pool, growth_labelled) <= GROWS_ABOVE else "grows",
            "pool": len(pool), "frames_b1": len(b1_frames),
        })  # fmt: skip
    return {
        "model_params": sum(p.numel() for p in s.model.parameters()),
        "paper_model_params": PAPER_MODEL_PARAMS,
        "paper_aux_params": PAPER_AUX_PARAMS,
        "forward_ms_b1": 1e3 * plain_b1 / len(frames),
        "forward_ms_batch": 1e3 * plain_batch[len(s.pool)] / len(s.pool),
        "batch_size": batch,
        "pool": len(s.pool),
        "labelled": len(s.labelled),
        "resolution": s.dataset.resolution,
        "rows": rows,
    }


def _growth(full: float, half: float, forward: float) -> float:
    """How the extra per-frame cost changed from the half-size set to the full one; costs below a twentieth of a
    forward pass count as that floor (timer noise would make their ratio meaningless)."""
    floor = 0.05 * forward
    return max(full, floor) / max(half, floor)
