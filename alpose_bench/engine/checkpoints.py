"""Checkpoints of an experiment: where they live, writing and loading them safely, and removing them when done.

Layout under the experiment folder::

    checkpoints/<dataset>/shared-seed<k>/cycle0.pt      cycle 0 of seed k, shared by every sampler
    checkpoints/<dataset>/<sampler>-seed<k>/cycle<c>.pt the latest cycle of one unfinished task

A task's checkpoint is written before its cycle's record is committed, and its predecessor is removed only after,
so a run killed anywhere resumes from its last committed cycle. Once a task is complete its folder goes; once every
task of a (dataset, seed) has committed cycle 0 the shared checkpoint goes; empty folders go with them.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from alpose_bench.core.atomic import DiskFullError, remove_stale_temporaries, write_atomic
from alpose_bench.results.store import StoreError

RETRAIN_CYCLE0 = "delete it and rerun: cycle 0 is trained again"
RESTART_TASK = "rerun under another --name (the cycles committed here stay in results.sqlite)"
FOLDER = "checkpoints"


def cycle0_path(out_dir: Path, dataset: str, seed: int) -> Path:
    """The shared cycle-0 checkpoint of (dataset, seed)."""
    return out_dir / FOLDER / dataset / f"shared-seed{seed}" / "cycle0.pt"


def task_checkpoint(out_dir: Path, dataset: str, sampler: str, seed: int, cycle: int) -> Path:
    """The checkpoint of one task after `cycle`."""
    return out_dir / FOLDER / dataset / f"{sampler}-seed{seed}" / f"cycle{cycle}.pt"


def save(obj: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically; a full or read-only disk is a one-line StoreError and leaves no partial file.

    It is serialised in memory first: torch.save reports a full disk as an obscure RuntimeError, a plain write as
    OSError(ENOSPC)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        write_atomic(path, buffer.getbuffer())
    except DiskFullError:
        raise StoreError.disk_full(path) from None
    except OSError as exc:
        raise StoreError(
            f"cannot write checkpoint {path}: {exc.strerror or exc}; choose a writable folder with --out"
        ) from None


class CheckpointError(StoreError):
    """A checkpoint that is missing, damaged or not this experiment's (retrain what it held), or `tampered` with:
    it holds Python objects besides weights, which is never the work of a crash; that is refused, never replaced."""

    def __init__(self, message: str, tampered: bool = False) -> None:
        super().__init__(message)
        self.tampered = tampered


def load(path: Path, fix: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint as plain tensors and containers only (weights_only=True: no code in it is ever run).

    A file that is missing, is not such a checkpoint (tampered with, damaged, cut short) or lacks one of `keys` is a
    one-line CheckpointError ending with `fix`."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is missing; {fix}") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded (it holds Python objects other than weights, which are never "
            f"unpickled: it was tampered with or is not this project's); {fix}",
            tampered=True,
        ) from None
    except Exception as exc:  # a truncated or foreign file fails in many ways inside torch
        detail = str(exc).strip().split(". ")[0].splitlines()
        reason = f"damaged: {detail[0] if detail else type(exc).__name__}"
    else:
        if isinstance(saved, dict) and all(k in saved for k in keys):
            return saved
        reason = f"not a checkpoint of this experiment (a {type(saved).__name__} without {', '.join(keys)})"
    raise CheckpointError(f"checkpoint {path} cannot be loaded ({reason}); {fix}")


def restore(module: torch.nn.Module, state: Any, path: Path, fix: str) -> None:
    """Load `state` into `module`; weights of another shape or with other keys are a CheckpointError."""
    try:
        module.load_state_dict(state)
    except Exception as exc:
        detail = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} does not fit this experiment's model ({detail[0] if detail else type(exc).__name__}); "
            f"{fix}"
        ) from None


def _prune(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents up to (not including) `stop` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone)
            if folder.exists():
                return
        folder = folder.parent


def discard_after_commit(
    out_dir: Path, dataset: str, sampler: str, seed: int, cycle: int, final: bool
) -> None:
    """After `cycle` of a task is committed: its predecessor's checkpoint is no longer needed to resume, nor, once
    the task is complete, its own (then its folder goes too). Called by whoever commits the record."""
    task_checkpoint(out_dir, dataset, sampler, seed, cycle - 1).unlink(missing_ok=True)
    if final:
        path = task_checkpoint(out_dir, dataset, sampler, seed, cycle)
        path.unlink(missing_ok=True)
        remove_stale_temporaries(path.parent)
        _prune(path.parent, out_dir)


def discard_shared(out_dir: Path, dataset: str, seed: int) -> None:
    """Remove the shared cycle-0 checkpoint of (dataset, seed) and the folders it leaves empty."""
    path = cycle0_path(out_dir, dataset, seed)
    path.unlink(missing_ok=True)
    remove_stale_temporaries(path.parent)
    _prune(path.parent, out_dir)


def discard_unneeded_shared(out_dir: Path, needed: Iterable[tuple[str, int]]) -> None:
    """Remove every shared cycle-0 checkpoint except those of the (dataset, seed) pairs in `needed` (pairs with a task
    that has not committed cycle 0 yet)."""
    keep = set(needed)
    root = out_dir / FOLDER
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/shared-seed*/cycle0.pt")):
        dataset, seed = path.parent.parent.name, path.parent.name.removeprefix("shared-seed")
        if seed.isdigit() and (dataset, int(seed)) not in keep:
            discard_shared(out_dir, dataset, int(seed))
    _prune(root, out_dir)


def rename_sampler(out_dir: Path, old: str, new: str) -> None:
    """Keep the checkpoints of sampler `old` under its new name `new`: its task folders move, and the shared
    cycle-0 checkpoints key its head (and its place in `has_head`, `samplers`, `failed`) by the new name. Safe to
    repeat: what already carries the new name is left alone (a rename interrupted halfway completes next time)."""
    root = out_dir / FOLDER
    if not root.is_dir():
        return
    for folder in sorted(root.glob(f"*/{old}-seed*")):
        seed = folder.name.removeprefix(f"{old}-seed")
        target = folder.with_name(f"{new}-seed{seed}")
        if seed.isdigit() and not target.exists():
            folder.rename(target)
    for path in sorted(root.glob("*/shared-seed*/cycle0.pt")):
        try:
            saved = load(path, RETRAIN_CYCLE0)
        except CheckpointError as exc:
            if exc.tampered:
                raise
            continue  # damaged: cycle 0 is trained again when it is needed
        lists = [k for k in ("has_head", "samplers") if old in saved.get(k, [])]
        tables = [k for k in ("heads", "failed") if old in (saved.get(k) or {})]
        if not lists and not tables:
            continue
        for key in lists:
            saved[key] = [new if s == old else s for s in saved[key]]
        for key in tables:
            saved[key] = {new if s == old else s: v for s, v in saved[key].items()}
        save(saved, path)
