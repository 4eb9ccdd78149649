"""The Core-Set section: k-center greedy time and peak memory, each configuration in its own subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from functools import partial
from typing import Any

import torch

from alpose_bench.tools.bench.common import BenchRun, _median, timed
from alpose_bench.tools.bench.memory import reset_peak_rss, rss_now_and_peak


def coreset_child(
    pool: int,
    labelled: int,
    dim: int,
    budget: int,
    repeats: int,
    device: str,
    seed: int,
    threads: int,
    max_seconds: float = math.inf,
) -> dict[str, Any]:
    """Run in a fresh process: time k-center greedy on random embeddings and read this process's peak memory.

    baseline_mb: the process after its imports (torch and the sampler); inputs_mb: what the two embedding
    matrices added; extra_mb: what k-center greedy added beyond its inputs at its peak (peak RSS on CPU, peak
    CUDA allocation on CUDA); peak_mb: inputs + extra, i.e. the peak above the baseline.
    """
    from alpose_bench.samplers.coreset import kcenter_greedy

    torch.set_num_threads(threads)
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    mib = 2**20
    cuda = dev.type == "cuda"
    base = torch.cuda.memory_allocated(dev) / mib if cuda else rss_now_and_peak()[0]
    # float64, as the sampler computes its distances
    pool_emb = torch.randn(pool, dim, generator=g, dtype=torch.float64).to(dev)
    labelled_emb = torch.randn(labelled, dim, generator=g, dtype=torch.float64).to(dev)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        after_inputs, kind = torch.cuda.memory_allocated(dev) / mib, "cuda max_memory_allocated"
    else:
        after_inputs, _, kind = rss_now_and_peak()
        if not reset_peak_rss():
            kind += " (not reset after the inputs)"
    times, _ = timed(partial(kcenter_greedy, pool_emb, labelled_emb, budget), dev, repeats, max_seconds)
    peak = torch.cuda.max_memory_allocated(dev) / mib if cuda else rss_now_and_peak()[1]
    extra = max(0.0, peak - after_inputs)
    return {
        "pool": pool, "labelled": labelled, "seconds": _median(times), "repeat_s": times, "baseline_mb": base,
        "inputs_mb": after_inputs - base, "extra_mb": extra, "peak_mb": after_inputs - base + extra,
        "pairwise_matrix_mb": pool * labelled * 8 / mib, "memory": kind,
    }  # fmt: skip


_CHILD_CODE = (
    "import json, sys; from alpose_bench.tools.bench.coreset import coreset_child; "
    "print(json.dumps(coreset_child(**json.loads(sys.argv[1]))))"
)


def run(bench: BenchRun) -> dict[str, Any]:
    """k-center greedy time and peak memory for every (pool, labelled) configuration, one subprocess each."""
    settings, device, progress = bench.settings, bench.device, bench.say
    rows = []
    for pool in settings.coreset_pools:
        for labelled in settings.coreset_labelled:
            progress(f"coreset: pool {pool} x labelled {labelled}")
            args = dict(pool=pool, labelled=labelled, dim=settings.coreset_dim, budget=settings.coreset_budget,
                        repeats=settings.repeats, device=str(device), seed=settings.seed,
                        threads=torch.get_num_threads(), max_seconds=settings.max_seconds)  # fmt: skip
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD_CODE, json.dumps(args)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                lines = (proc.stderr or proc.stdout).strip().splitlines() or [
                    f"exit status {proc.returncode}"
                ]
                rows.append({"pool": pool, "labelled": labelled, "status": "failed", "reason": lines[-1]})
                continue
            rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "status": "ok"})
    return {"dim": settings.coreset_dim, "budget": settings.coreset_budget, "rows": rows}
