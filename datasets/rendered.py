"""Real poses, rendered (`lsp-rendered`, `lspet-rendered`): the annotated poses of LSP/LSPET drawn as synthetic
figures, so that anyone holding only the annotation files (CI included) benchmarks on the real pose distribution.

Only the `joints.mat` files are needed::

    <root>/lsp/joints.mat       (lsp-rendered, lspet-rendered)
    <root>/lspet/joints.mat     (lspet-rendered)

Data root: `--data-root`, else $ALPOSE_DATA_ROOT, else a `shared/data` folder next to the repository checkout.
Each pose is normalised into the frame exactly as the LSP loader crops it (square of 1.75 x the tight joint box,
mapped to the resolution), then drawn by `alpose_bench.datasets.render.render_people` (14-joint LSP skeleton) with
a seeded appearance (`DatasetConfig.seed`). Splits as LSP / LSP + LSPET: `lsp-rendered` has LSP's first half as
the pool and its second half as test; `lspet-rendered` has LSP's first half (the fixed initial set) + LSPET's
10,000 as the pool and LSP's second half as test. Metric: PCK@0.2 (torso).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from alpose_bench.core.validation import param
from alpose_bench.datasets.base import Sources, crop_split
from alpose_bench.datasets.geometry import to_crop
from alpose_bench.datasets.lsp import LSP_HINT, LSPET_HINT, LSPDataset
from alpose_bench.pose.data import DatasetConfig, PoseSplit, ProgressFn
from alpose_bench.pose.skeleton import LSP

CHUNK = 500  # poses rendered per call (each chunk has its own seeded generator, so progress can be reported)


def _renderer():
    from alpose_bench.datasets import render

    return render


def render_split(
    keypoints: np.ndarray,
    visible: np.ndarray,
    resolution: int,
    seed: tuple[int, ...],
    progress: ProgressFn | None,
) -> np.ndarray:
    """(N, res, res, 3) uint8 figures in the poses `keypoints` (crop pixels), chunk c drawn with rng([*seed, c])."""
    render = _renderer()
    out = np.empty((len(keypoints), resolution, resolution, 3), dtype=np.uint8)
    for c, start in enumerate(range(0, len(keypoints), CHUNK)):
        sl = slice(start, min(len(keypoints), start + CHUNK))
        rng = np.random.default_rng([*seed, c])
        out[sl] = render.render_people(keypoints[sl], visible[sl], LSP, resolution, rng)
        if progress is not None:
            progress(sl.stop, len(keypoints))
    return out


@dataclass(frozen=True)
class RenderedOptions:
    """Options of the rendered LSP datasets."""

    crop_scale: float = param(1.75, low=0, low_open=True)  # frame side / longer edge of the tight joint box
    include_occluded: bool = True  # occluded (but annotated) joints count in the metric and the loss
    # PCK torso: "standard" |lsho - rhip| (the LSP evaluation), "max" of both diagonals (the VL4Pose authors' code)
    torso: Literal["standard", "max"] = "standard"


class LSPRenderedDataset(LSPDataset):
    """LSP's real poses drawn as synthetic figures: needs only lsp/joints.mat."""

    name = "lsp-rendered"
    description = "LSP's real annotated poses drawn as synthetic figures (needs only joints.mat), PCK@0.2."
    hint = LSP_HINT
    expected = "lsp/joints.mat"
    options_class = RenderedOptions
    needs_data_root = False
    shared_fallback = True
    uses_images = False
    runtime_options = ()

    def extra_key(self) -> dict[str, Any]:
        return {"renderer": self.data_version()}

    def data_version(self) -> str:
        """The renderer's version (`render.RENDER_VERSION`): what the drawings look like, not which file holds
        the code that draws them."""
        return _renderer().RENDER_VERSION

    def materialise(
        self, sources: Sources, config: DatasetConfig, options: dict[str, Any], progress: ProgressFn | None
    ) -> dict[str, PoseSplit]:
        res = config.resolution
        total = sum(len(s) for s in sources.splits.values())
        out, done = {}, 0
        for index, (split_name, s) in enumerate(sources.splits.items()):
            keypoints = to_crop(s.keypoints, s.boxes, res)  # type: ignore[arg-type]
            offset = done

            def report(k: int, _n: int, offset: int = offset) -> None:
                if progress is not None:
                    progress(offset + k, total)

            images = render_split(keypoints, s.visible, res, (config.seed, index), report)
            out[split_name] = crop_split(s, images, res)
            done += len(s)
        return out


class LSPETRenderedDataset(LSPRenderedDataset):
    """LSP + LSPET real poses drawn as synthetic figures: needs lsp/joints.mat and lspet/joints.mat."""

    name = "lspet-rendered"
    description = (
        "LSP + LSPET real poses drawn as synthetic figures: initial = LSP first 1,000, pool + LSPET 10,000, "
        "test = LSP last 1,000, PCK@0.2."
    )
    hint = f"{LSP_HINT} and {LSPET_HINT}"
    expected = "lsp/joints.mat and lspet/joints.mat"
    with_lspet = True
