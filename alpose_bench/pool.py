"""Batched inference over a set of training-pool images, and the context a sampler selects from.

`SelectionContext` gives a sampler the trained model (and its auxiliary head), the unlabelled pool and the labelled
set, and streams one forward pass over either of them (`batches`) or collects small outputs as arrays (`collect`).
Nothing holds all pool heatmaps in memory unless a sampler asks for them.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.compute import Compute, as_compute
from alpose_bench.data import PoseDataset, PoseSplit, Task
from alpose_bench.models.outputs import PoseOutput
from alpose_bench.seeds import selection_rng
from alpose_bench.skeleton import Skeleton
from alpose_bench.timing import Timing, timed

Which = Literal["pool", "labelled"]


@dataclass
class ForwardBatch:
    """One batch of a forward pass: which images, the model input, the pose output and the auxiliary output."""

    positions: np.ndarray  # positions into ctx.pool / ctx.labelled
    images: Tensor  # (B, C, H, W) model input on the context's device
    out: PoseOutput
    aux: Tensor | None


class SelectionContext:
    """Everything a sampler may read to choose the next images to annotate."""

    def __init__(
        self,
        *,
        model: nn.Module,
        aux: nn.Module | None,
        dataset: PoseDataset,
        labelled: np.ndarray,
        pool: np.ndarray,
        device: torch.device | str = "cpu",
        batch_size: int = 64,
        seed: int = 0,
        cycle: int = 0,
        compute: Compute | None = None,
        labels_allowed: bool = False,
    ) -> None:
        self.model = model
        self.aux = aux
        self.dataset = dataset
        self.labelled = np.asarray(labelled, dtype=np.int64)  # indices into dataset.train
        self.pool = np.asarray(pool, dtype=np.int64)  # indices into dataset.train (unlabelled)
        # how the model computes (precision, memory format); the reference path on `device` when not given
        self.compute = compute if compute is not None else as_compute(device)
        self.device = self.compute.device
        self.batch_size = batch_size
        self.seed = seed
        self.cycle = cycle
        self.rng = selection_rng(seed, cycle)
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self.forward_passes = 0  # how many images went through the model (for the overhead figures)
        self.inference = Timing()  # wall and CPU seconds of those forward passes
        # per-pool-position arrays a sampler may leave for the record (e.g. VL4Pose's "refined_keypoints" (N, J, 2)
        # in model-input pixels); the loop stores the rows of the images it selected
        self.annotations: dict[str, np.ndarray] = {}
        # only reference samplers (`Sampler.reference`, "labels" in `needs`) may read the pool's ground truth
        self.labels_allowed = labels_allowed

    @property
    def skeleton(self) -> Skeleton:
        """The dataset's joints and links."""
        return self.dataset.skeleton

    @property
    def task(self) -> Task:
        """ "heatmap2d" or "regression3d"."""
        return self.dataset.task

    def indices(self, which: Which) -> np.ndarray:
        """Dataset train indices of the pool or of the labelled set."""
        return self.pool if which == "pool" else self.labelled

    def images(self, which: Which, positions: np.ndarray) -> Tensor:
        """Model input (B, C, H, W) for the given positions of the pool or labelled set."""
        rows = self.indices(which)[np.asarray(positions)]
        return self.compute.model_input(torch.from_numpy(self.dataset.train.images[rows]))

    def labels(self, which: Which, positions: np.ndarray | None = None) -> PoseSplit:
        """The ground truth of the pool or labelled set (all of it, or `positions` into it) in the dataset's units:
        keypoints in image pixels (2D) or millimetres (3D), visibility, normaliser, pose mode.

        Only for reference samplers (oracles) that declare "labels" in `needs`: an active-learning sampler that read
        the pool's labels would be measuring something no annotator could do, so any other caller gets an error."""
        if not self.labels_allowed:
            raise PermissionError(
                "this selection context does not give the pool's labels: only reference samplers (reference = True"
                " with 'labels' in needs) may read them"
            )
        rows = self.indices(which)
        return self.dataset.train.subset(rows if positions is None else rows[np.asarray(positions)])

    @torch.no_grad()
    def batches(
        self, which: Which = "pool", positions: np.ndarray | None = None
    ) -> Generator[ForwardBatch, None, None]:
        """One eval-mode forward pass over the pool or the labelled set, batch by batch, in order."""
        if positions is None:
            positions = np.arange(len(self.indices(which)))
        was_training = self.model.training
        self.model.eval()
        if self.aux is not None:
            self.aux.eval()
        try:
            for start in range(0, len(positions), self.batch_size):
                pos = positions[start : start + self.batch_size]
                with timed() as t:
                    x = self.images(which, pos)
                    with self.compute.autocast():
                        out = self.model(x)
                        aux = self.aux(out.features) if self.aux is not None else None
                    out = _to_float(out)
                self.inference.wall_s += t.wall_s
                self.inference.cpu_s += t.cpu_s
                self.forward_passes += len(pos)
                yield ForwardBatch(positions=pos, images=x, out=out, aux=None if aux is None else aux.float())
        finally:
            self.model.train(was_training)

    def collect(self, which: Which, name: str) -> np.ndarray:
        """A per-image output over the whole pool/labelled set as one array, computed once and cached.

        name: "embedding" (N, E), "keypoints" (N, J, D) decoded in model-input pixels (2D) or normalised (3D),
        "heatmaps" (N, J, h, w) last stack, "aux" (N, ...) auxiliary head output.
        """
        key = (which, name)
        if key not in self._cache:
            from alpose_bench.heatmaps import decode_keypoints

            parts = []
            for b in self.batches(which):
                if name == "embedding":
                    parts.append(b.out.embedding)
                elif name == "keypoints":
                    parts.append(decode_keypoints(b.out, input_size=b.images.shape[-1]))
                elif name == "heatmaps":
                    parts.append(b.out.final_heatmaps)
                elif name == "aux":
                    if b.aux is None:
                        raise ValueError("this sampler has no auxiliary head")
                    parts.append(b.aux)
                else:
                    raise ValueError(f"unknown output {name!r}")
            self._cache[key] = torch.cat(parts).cpu().numpy() if parts else np.zeros((0,), dtype=np.float32)
        return self._cache[key]


def _to_float(out: PoseOutput) -> PoseOutput:
    """The outputs in float32; heatmaps map-major (contiguous): a channels_last model returns them pixel-major,
    and every reader (peak finders, decoding) works map by map, so they are converted once here."""

    def f(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.float()

    return PoseOutput(
        heatmaps=None if out.heatmaps is None else [h.float().contiguous() for h in out.heatmaps],
        keypoints=f(out.keypoints),
        features=[t.float() for t in out.features],
        embedding=out.embedding.float(),
    )
