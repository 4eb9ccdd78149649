"""Batched inference over a set of training-pool images, and the context a sampler selects from.

`SelectionContext` gives a sampler the trained model (and its auxiliary head), the unlabelled pool and the labelled
set, and streams one forward pass over either of them (`batches`) or collects small outputs as arrays (`collect`).
Nothing holds all pool heatmaps in memory unless a sampler asks for them.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.core import activity
from alpose_bench.core.compute import Compute, as_compute
from alpose_bench.core.seeds import selection_rng
from alpose_bench.core.timing import Timing, timed
from alpose_bench.pose.data import PoseDataset, PoseSplit, Task
from alpose_bench.pose.heatmaps import HeatmapCodec
from alpose_bench.pose.models.outputs import PoseOutput
from alpose_bench.pose.skeleton import Skeleton

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
        sampler: object | None = None,
        codec: HeatmapCodec | None = None,
    ) -> None:
        """`sampler` is who reads this context: it decides, by what it declares, whether the pool's labels may be
        read (only a reference sampler with "labels" in `needs`)."""
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
        # set by `suggest`: scorers also record the parts of each score (per limb, per joint) in `explanations`,
        # which `Sampler.reasons` reads; off in experiments, where nothing reads them
        self.explain = False
        self.explanations: dict[str, np.ndarray] = {}
        # how the model's heatmaps were trained (targets' peak height, ...); None: the reference codec
        self.codec = codec
        # only reference samplers (`Sampler.reference`, "labels" in `needs`) may read the pool's ground truth
        self.labels_allowed = bool(
            getattr(sampler, "reference", False) and "labels" in getattr(sampler, "needs", ())
        )

    def record_explanation(self, name: str, positions: np.ndarray, values: np.ndarray) -> None:
        """Keep `values` (B, ...) of the pool images at `positions` under `name` (call it when `explain` is set)."""
        store = self.explanations.get(name)
        if store is None or store.shape[1:] != values.shape[1:] or len(store) != len(self.pool):
            store = self.explanations[name] = np.full(
                (len(self.pool), *values.shape[1:]), np.nan, dtype=np.float64
            )
        store[np.asarray(positions)] = values

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
        """The ground truth of the labelled set or the pool (all of it, or `positions` into it) in the dataset's
        units: keypoints in image pixels (2D) or millimetres (3D), visibility, normaliser, pose mode.

        The labelled set's labels are what the annotator gave: any sampler may read them (pose-PCA fits its
        subspace on them). The pool's are only for reference samplers (oracles, `reference = True` with "labels"
        in `needs`): a sampler that read them would measure something no annotator could do."""
        if which == "pool" and not self.labels_allowed:
            raise PermissionError(
                "this selection context does not give the pool's labels: only reference samplers (reference = True"
                " with 'labels' in needs) may read them; the labelled set's labels are ctx.labels('labelled')"
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
                if which == "pool":
                    activity.advance(len(pos))
                yield ForwardBatch(positions=pos, images=x, out=out, aux=None if aux is None else aux.float())
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def mc_keypoints(self, which: Which, passes: int) -> np.ndarray:
        """(passes, N, J, D) keypoints of `passes` stochastic forward passes with the model's dropout on (MC dropout,
        Gal & Ghahramani 2016), decoded as `collect("keypoints")`; computed once per pass count and cached.

        The passes are batched: each chunk of images is repeated `passes` times and goes through the model in one
        forward (about `batch_size` rows), so the cost is `passes` inference passes, not a Python loop of them.
        Every row's dropout masks come from its own generator, seeded by the context's seed and cycle, the image
        and the pass (`mc_dropout_masks`), so an image's passes do not depend on the batch it is in, and the global
        RNG is untouched. ValueError when the model has no dropout (every pass would be the same)."""
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 2:
            raise ValueError(f"MC dropout needs at least 2 passes, got {passes!r}")
        key = (which, f"mc_keypoints:{passes}")
        if key in self._cache:
            return self._cache[key]
        from alpose_bench.core.seeds import derive_seed
        from alpose_bench.pose.heatmaps import decode_keypoints

        rows = self.indices(which)
        chunk = max(1, self.batch_size // passes)
        parts: list[Tensor] = []
        was_training = self.model.training
        self.model.eval()
        try:
            with mc_dropout_masks(self.model) as generators:
                for start in range(0, len(rows), chunk):
                    pos = np.arange(start, min(len(rows), start + chunk))
                    with timed() as t:
                        generators[:] = [
                            torch.Generator(device=self.device).manual_seed(
                                derive_seed("mc-dropout", self.seed, self.cycle, int(rows[p]), k)
                            )
                            for k in range(passes) for p in pos
                        ]  # fmt: skip
                        x = self.images(which, pos)
                        with self.compute.autocast():
                            out = self.model(x.repeat(passes, *([1] * (x.ndim - 1))))  # pass-major rows
                        kp = decode_keypoints(_to_float(out), input_size=x.shape[-1]).float()
                    self.inference.wall_s += t.wall_s
                    self.inference.cpu_s += t.cpu_s
                    self.forward_passes += passes * len(pos)
                    parts.append(kp.reshape(passes, len(pos), *kp.shape[1:]).cpu())
        finally:
            self.model.train(was_training)
        self._cache[key] = (
            torch.cat(parts, dim=1).numpy() if parts else np.zeros((passes, 0), dtype=np.float32)
        )
        return self._cache[key]

    def collect(self, which: Which, name: str) -> np.ndarray:
        """A per-image output over the whole pool/labelled set as one array, computed once and cached.

        name: "embedding" (N, E), "keypoints" (N, J, D) decoded in model-input pixels (2D) or normalised (3D),
        "heatmaps" (N, J, h, w) last stack, "aux" (N, ...) auxiliary head output.
        """
        key = (which, name)
        if key not in self._cache:
            from alpose_bench.pose.heatmaps import decode_keypoints

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


@contextmanager
def mc_dropout_masks(model: nn.Module) -> Generator[list[torch.Generator], None, None]:
    """Within the block, every dropout layer of the (eval-mode) `model` drops units again, drawing the mask of batch
    row i from the i-th generator of the yielded list (fill it before each forward); element-wise for nn.Dropout,
    channel-wise for Dropout1d/2d/3d. ValueError when the model has no dropout layer with p > 0."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
    if not layers:
        raise ValueError(
            "MC dropout needs dropout in the pose model, and it has none; set --dropout (e.g. 0.25) for the "
            "hourglass (the 3D regressor has dropout 0.3 by default)"
        )
    generators: list[torch.Generator] = []

    def drop(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        x = inputs[0]
        keep = 1.0 - float(module.p)  # type: ignore[arg-type]
        shape = x.shape[1:] if type(module) is nn.Dropout else (x.shape[1],) + (1,) * (x.ndim - 2)
        if len(generators) != len(x):
            raise RuntimeError(f"mc_dropout_masks got {len(generators)} generators for a batch of {len(x)}")
        probs = torch.full(shape, keep, device=x.device)
        masks = torch.stack([torch.bernoulli(probs, generator=g) for g in generators])
        return x * masks.to(x.dtype) / keep

    handles = [m.register_forward_hook(drop) for m in layers]
    try:
        yield generators
    finally:
        for h in handles:
            h.remove()


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
