"""Leeds Sports Pose (`lsp`), LSP + LSP Extended (`lsp-lspet`) and LSP Extended alone (`lspet`): real photographs.

Data root layout::

    <root>/lsp/joints.mat         3 x 14 x 2000 (x, y, flag; 0 = visible, 1 = occluded: inverted w.r.t. LSPET)
    <root>/lsp/images/im0001.jpg ... im2000.jpg
    <root>/lspet/joints.mat       14 x 3 x 10000 (x, y, flag; 1 = annotated, 0 = missing joint)
    <root>/lspet/images/im00001.jpg ... im10000.jpg

Protocol (reference code): LSP's first half (1,000) is the training set, its second half (1,000) the test set;
`lsp-lspet` adds LSPET's 10,000 as the unlabelled pool and fixes the LSP training images as the initial
labelled set (`PoseDataset.initial_index`). `lspet` is LSPET's 10,000 photographs alone: a fixed test split of
1,000 people shipped with the package (datasets/resources/lspet_test_images.txt, rule in its header) and the other
9,000 as the pool, for machines that have LSPET but not LSP's images. Each person is cropped with a square window
of 1.75 x the longer edge of the tight box around its annotated joints (the reference's evaluation crop). Metric:
PCK@0.2 with the standard LSP torso |l_shoulder - r_hip| in crop pixels (option torso=max: the VL4Pose authors'
max(|lsho - rhip|, |rsho - lhip|), about 4 points more lenient, not comparable with published LSP figures).

LSPET's missing joints have flag 0 and coordinates <= 0 (all 16,787 of them in the release); they are
unannotated. Nine flagged joints lie just outside the image border (one coordinate in -1.2 .. 0 px) and are
kept. LSPET people whose torso diagonal is not annotated get a torso size estimated from their tight box (median
torso/box ratio); the `lspet` test split holds none of them."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alpose_bench.core.validation import param
from alpose_bench.datasets.base import CachedDataset, Sources, SourceSplit
from alpose_bench.datasets.files import dataset_dir, load_mat, reject_nonfinite
from alpose_bench.datasets.geometry import fill_estimates, joint_boxes, pair_distance, tight_box_size
from alpose_bench.pose.data import DatasetError, PoseDataset
from alpose_bench.pose.metrics import torso_pairs
from alpose_bench.pose.skeleton import LSP

LSP_HINT = "http://sam.johnson.io/research/lsp.html (lsp_dataset.zip)"
LSPET_HINT = "http://sam.johnson.io/research/lspet.html (lspet_dataset.zip)"
Kind = Literal["lsp", "lspet"]
DEFAULT_TORSO_RATIO = 1 / 3  # torso / tight-box size when no person of a split has a measurable torso


def read_lsp_joints(path: Path, kind: Kind, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an LSP or LSPET `joints.mat` -> (keypoints (N, 14, 2) 0-based px, annotated (N, 14), occluded (N,
    14)).

    Both layouts (3 x 14 x N and 14 x 3 x N) are accepted; the flag is read as LSP's (0 = visible) or LSPET's
    (1 = annotated) by `kind`, not by layout. MATLAB's 1-based coordinates are shifted to 0-based."""
    hint = LSP_HINT if kind == "lsp" else LSPET_HINT
    mat = load_mat(path, name, hint)
    if "joints" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DatasetError(
            f"dataset {name!r}: {path} has no variable 'joints' (found: {found}); not an LSP joints.mat"
        )
    raw = np.asarray(mat["joints"], dtype=np.float64)
    if raw.ndim == 2:  # a single person squeezed by MATLAB
        raw = raw[..., None]
    if raw.ndim == 3 and raw.shape[:2] == (3, 14):
        arr = raw.transpose(2, 1, 0)
    elif raw.ndim == 3 and raw.shape[:2] == (14, 3):
        arr = raw.transpose(2, 0, 1)
    else:
        raise DatasetError(
            f"dataset {name!r}: {path} holds 'joints' of shape {raw.shape}, expected 3 x 14 x N or "
            "14 x 3 x N "
            f"(14 LSP joints x (x, y, flag)); use the original file from {hint}"
        )
    if len(arr) == 0:
        raise DatasetError(f"dataset {name!r}: {path} has no people; use the original file from {hint}")
    reject_nonfinite(arr, "joint coordinates", name, path, axis=(2,))
    xy, flag = arr[..., :2], arr[..., 2]
    if kind == "lsp":
        annotated = np.ones(flag.shape, dtype=bool)
        occluded = flag > 0.5
    else:
        annotated = (flag > 0.5) & ~((xy[..., 0] <= 0) & (xy[..., 1] <= 0))
        occluded = np.zeros(flag.shape, dtype=bool)
    few = annotated.sum(axis=1) < 2
    if few.any():
        first = ", ".join(str(int(i) + 1) for i in np.nonzero(few)[0][:5])
        raise DatasetError(
            f"dataset {name!r}: {path} has {int(few.sum())} people with fewer than 2 annotated joints "
            f"(first, 1-based: {first}); the file is corrupt, use the original from {hint}"
        )
    return (xy - 1.0).astype(np.float64), annotated, occluded


def image_names(kind: Kind, n: int) -> np.ndarray:
    """The release's image names: im0001.jpg ... (LSP, 4 digits), im00001.jpg ... (LSPET, 5 digits)."""
    width = 4 if kind == "lsp" else 5
    return np.array([f"im{i:0{width}d}.jpg" for i in range(1, n + 1)])


def person_split(
    directory: Path, kind: Kind, keypoints: np.ndarray, annotated: np.ndarray, occluded: np.ndarray,
    options: dict[str, Any], with_paths: bool,
) -> SourceSplit:  # fmt: skip
    """A SourceSplit of LSP-style people: crop boxes, torso normaliser (estimated where no torso diagonal)."""
    visible = annotated & (options["include_occluded"] | ~occluded)
    torso = pair_distance(keypoints, annotated, torso_pairs(LSP, options["torso"]))
    normalizer, _ = fill_estimates(torso, tight_box_size(keypoints, annotated), DEFAULT_TORSO_RATIO)
    names = image_names(kind, len(keypoints))
    paths = np.char.add(str(directory / "images") + "/", names) if with_paths else np.full(len(names), "")
    return SourceSplit(
        image_paths=paths,
        keypoints=keypoints,
        visible=visible,
        normalizer=normalizer,
        boxes=joint_boxes(keypoints, annotated, options["crop_scale"]),
    )


def concat(a: SourceSplit, b: SourceSplit) -> SourceSplit:
    """Two SourceSplits one after the other."""
    return SourceSplit(
        *(
            np.concatenate([getattr(a, f), getattr(b, f)])
            for f in ("image_paths", "keypoints", "visible", "normalizer")
        ),
        boxes=np.concatenate([a.boxes, b.boxes]),  # type: ignore[list-item]
    )


def lsp_sources(
    root: Path, options: dict[str, Any], name: str, with_lspet: bool, with_paths: bool
) -> Sources:
    """LSP (first half train, second half test) and optionally LSPET appended to the pool (LSP train =
    initial)."""
    lsp_dir = dataset_dir(root, "lsp", "joints.mat")
    kp, ann, occ = read_lsp_joints(lsp_dir / "joints.mat", "lsp", name)
    whole = person_split(lsp_dir, "lsp", kp, ann, occ, options, with_paths)
    n_train = len(kp) // 2
    if n_train == 0:
        raise DatasetError(f"dataset {name!r}: {lsp_dir / 'joints.mat'} has 1 person; LSP needs at least 2")
    train, test = whole.subset(np.arange(n_train)), whole.subset(np.arange(n_train, len(kp)))
    counts: dict[str, Any] = {"lsp people": len(kp), "lsp occluded joints": int(occ.sum())}
    initial = None
    if with_lspet:
        lspet_dir = root / "lspet"
        kp2, ann2, occ2 = read_lsp_joints(lspet_dir / "joints.mat", "lspet", name)
        extra = person_split(lspet_dir, "lspet", kp2, ann2, occ2, options, with_paths)
        torso_missing = int(np.isnan(pair_distance(kp2, ann2, torso_pairs(LSP, options["torso"]))).sum())
        counts.update({"lspet people": len(kp2), "lspet missing joints": int((~ann2).sum()),
                       "lspet torso sizes estimated": torso_missing})  # fmt: skip
        train = concat(train, extra)
        initial = np.arange(n_train, dtype=np.int64)
    protocol = "LSP first half train (initial set), LSPET pool, LSP second half test" if with_lspet else (
        "LSP first half train, second half test")  # fmt: skip
    return Sources(splits={"train": train, "test": test}, initial_index=initial,
                   info={"protocol": protocol, "counts": counts, "root": str(root)})  # fmt: skip


@dataclass(frozen=True)
class LSPOptions:
    """Options of the LSP datasets."""

    crop_scale: float = param(1.75, low=0, low_open=True)  # crop side / longer edge of the tight joint box
    include_occluded: bool = True  # occluded (but annotated) joints count in the metric and the loss
    # PCK torso: "standard" |lsho - rhip| (the LSP evaluation), "max" of both diagonals (the VL4Pose authors' code)
    torso: Literal["standard", "max"] = "standard"
    workers: int = param(0, low=0)  # decoding threads (0: up to 8); changes speed only


def torso_convention(options: dict[str, Any]) -> str:
    """The PCK torso convention in words, for the report's header."""
    if options["torso"] == "standard":
        return "PCK torso |l_shoulder - r_hip| (the standard LSP evaluation)"
    return (
        "PCK torso max(|l_shoulder - r_hip|, |r_shoulder - l_hip|) (the VL4Pose authors' code; more lenient, "
        "not comparable with the standard LSP figures)"
    )


class LSPDataset(CachedDataset):
    """Leeds Sports Pose: 1,000 training and 1,000 test people, PCK@0.2 (torso)."""

    name = "lsp"
    description = "Leeds Sports Pose (real images): LSP first 1,000 train / last 1,000 test, PCK@0.2."
    task = "heatmap2d"
    skeleton = LSP
    metric = "pck"
    hint = LSP_HINT
    expected = "lsp/joints.mat and lsp/images/"
    options_class = LSPOptions
    with_lspet = False

    def annotation_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        files = [dataset_dir(root, "lsp", "joints.mat") / "joints.mat"]
        return files + ([root / "lspet" / "joints.mat"] if self.with_lspet else [])

    def parse(self, root: Path, options: dict[str, Any]) -> Sources:
        return lsp_sources(root, options, self.name, self.with_lspet, with_paths=self.uses_images)

    def conventions(self, dataset: PoseDataset) -> list[str]:
        return [torso_convention(dataset.info["options"])]


class LSPLSPETDataset(LSPDataset):
    """LSP + LSPET: LSP's 1,000 training images as the initial set, LSPET's 10,000 as the unlabelled pool."""

    name = "lsp-lspet"
    description = (
        "LSP + LSPET (real images): initial = LSP first 1,000, pool + LSPET 10,000, test = LSP last 1,000."
    )
    hint = f"{LSP_HINT} and {LSPET_HINT}"
    expected = "lsp/{joints.mat, images/} and lspet/{joints.mat, images/}"
    with_lspet = True


def lspet_test_images() -> list[str]:
    """The image names of `lspet`'s fixed test split (shipped as package data; the rule is in the file's header)."""
    text = importlib.resources.files("alpose_bench.datasets") / "resources" / "lspet_test_images.txt"
    return [
        line.strip() for line in text.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


class LSPETDataset(CachedDataset):
    """LSP Extended's 10,000 photographs alone: a fixed 1,000-person test split, the other 9,000 as the pool."""

    name = "lspet"
    # the whole fixed test split of 1,000 people; on the cpu preset a larger pool and budgets of 500
    preset_overrides = {
        "quick": dict(test_size=None),
        "cpu": dict(pool_size=4000, test_size=None, init=500, budget=500, cycles=2, epochs=8),
        "pretrained": dict(pool_size=4000, test_size=None, init=500, budget=500, cycles=2),
    }
    description = (
        "LSP Extended (real photographs): pool 9,000 / fixed test 1,000 people, PCK@0.2 (standard torso)."
    )
    task = "heatmap2d"
    skeleton = LSP
    metric = "pck"
    hint = LSPET_HINT
    expected = "lspet/joints.mat and lspet/images/"
    options_class = LSPOptions
    shared_fallback = True  # like lsp-rendered: CI and tests find the photographs beside the checkout

    def _dir(self, root: Path) -> Path:
        return dataset_dir(root, "lspet", "joints.mat")

    def annotation_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        return [self._dir(root) / "joints.mat"]

    def parse(self, root: Path, options: dict[str, Any]) -> Sources:
        directory = self._dir(root)
        kp, ann, occ = read_lsp_joints(directory / "joints.mat", "lspet", self.name)
        whole = person_split(directory, "lspet", kp, ann, occ, options, with_paths=True)
        names = image_names("lspet", len(kp))
        listed = np.array(lspet_test_images())
        test = np.isin(names, listed)
        if int(test.sum()) != len(listed):
            raise DatasetError(
                f"dataset {self.name!r}: {directory / 'joints.mat'} has {len(kp)} people, but the fixed test split "
                f"names {len(listed)} LSPET images of the 10,000-image release; use the original file from {self.hint}"
            )
        torso_missing = int(np.isnan(pair_distance(kp, ann, torso_pairs(LSP, options["torso"]))).sum())
        counts = {"lspet people": len(kp), "lspet missing joints": int((~ann).sum()),
                  "torso sizes estimated (pool only)": torso_missing}  # fmt: skip
        return Sources(
            splits={"train": whole.subset(np.flatnonzero(~test)), "test": whole.subset(np.flatnonzero(test))},
            info={"protocol": "LSPET: fixed test split of 1,000 people (package data), the other 9,000 the pool",
                  "counts": counts, "root": str(root)},
        )  # fmt: skip

    def conventions(self, dataset: PoseDataset) -> list[str]:
        return [
            torso_convention(dataset.info["options"]),
            "test: the fixed 1,000 people of lspet_test_images.txt",
        ]
