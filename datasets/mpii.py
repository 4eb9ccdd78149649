"""MPII Human Pose (`mpii`): the papers' main 2D benchmark, single-person samples, PCKh.

Data root layout::

    <root>/mpii/mpii_human_pose_v1_u12_1.mat      the official annotations (MATLAB struct RELEASE)
    <root>/mpii/images/*.jpg                       the release's images
    or, instead of the .mat, the JSON files of the HRNet / stacked-hourglass code bases:
    <root>/mpii/annot/train.json, annot/valid.json [, annot/gt_valid.mat for the exact validation head boxes]

Protocol (reference code): people listed in `single_person` of training images (`img_train == 1`); an image
whose name is in Newell's validation list (shipped in datasets/resources/) goes to the test split, every other
one to the pool; each person is one sample. With `all_joints` (default, as the reference) only people with all
16 joints annotated are kept. Crop: the person centre/scale window (centre moved down by 15 x scale, side 1.25
x 200 x scale, as in Newell's code) or, with `crop=joints`, the reference's square of 1.75 x the tight joint
box. Normaliser: the full head-box diagonal in crop pixels (the metric applies PCKh's 0.6 factor).
`head_lambda=0.8` moves the head top 20 % towards the upper neck as the reference code does (default 1.0: the
official annotation). Coordinates are shifted from MATLAB's 1-based to 0-based pixels. Joint order = official
ids 0..15 = `alpose_bench.pose.skeleton.MPII`."""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alpose_bench.core.validation import param
from alpose_bench.datasets.base import CachedDataset, Sources, SourceSplit
from alpose_bench.datasets.files import dataset_dir, load_mat
from alpose_bench.datasets.geometry import fill_estimates, joint_boxes, pair_distance
from alpose_bench.pose.data import CheckReport, DatasetConfig, DatasetError, PoseDataset
from alpose_bench.pose.metrics import HEAD_SIZE_FACTOR
from alpose_bench.pose.skeleton import MPII

MPII_HINT = (
    "http://human-pose.mpi-inf.mpg.de/ (mpii_human_pose_v1.tar.gz images, "
    "mpii_human_pose_v1_u12_2.zip annotations)"
)
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
NUM_JOINTS = 16
HEAD_TOP, UPPER_NECK = MPII.index("head_top"), MPII.index("upper_neck")
# head-box diagonal / head length (head top to upper neck) where no head box is known: measured on Newell's 2,958
# validation people of annot/valid.h5 (its `normalize` = 0.6 x diagonal): median 1.2506, 5th-95th percentile
# 1.23-1.27. (The sqrt(2) used before overestimated head sizes by 13 % and PCKh by about 1.7 points.)
HEAD_RATIO = 1.25


def newell_validation_images() -> frozenset[str]:
    """The 2,729 image names of Newell's validation split (the reference repo's list, shipped as data)."""
    text = (
        importlib.resources.files("alpose_bench.datasets") / "resources" / "mpii_newell_validation_images.txt"
    )
    return frozenset(line.strip() for line in text.read_text().splitlines() if line.strip())


# -- the people table: one row per person, whatever the annotation format ------------------------------------


class People:
    """Accumulates people: image name, joints (16, 2) 0-based, annotated mask, head-box diagonal, centre,
    scale."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.joints: list[np.ndarray] = []
        self.annotated: list[np.ndarray] = []
        self.head: list[float] = []
        self.centre: list[tuple[float, float]] = []
        self.scale: list[float] = []

    def add(
        self, name: str, joints: np.ndarray, annotated: np.ndarray, head: float, centre, scale: float
    ) -> None:
        self.names.append(name)
        self.joints.append(joints)
        self.annotated.append(annotated)
        self.head.append(head)
        self.centre.append(centre)
        self.scale.append(scale)

    def arrays(self) -> dict[str, np.ndarray]:
        n = len(self.names)
        return {
            "names": np.array(self.names, dtype=str),
            "joints": np.array(self.joints, dtype=np.float64).reshape(n, NUM_JOINTS, 2),
            "annotated": np.array(self.annotated, dtype=bool).reshape(n, NUM_JOINTS),
            "head": np.array(self.head, dtype=np.float64),
            "centre": np.array(self.centre, dtype=np.float64).reshape(n, 2),
            "scale": np.array(self.scale, dtype=np.float64),
        }


def _num(value: Any) -> float:
    """A MATLAB scalar (number, 0-d array, numeric string) as float; NaN when empty."""
    arr = np.asarray(value)
    if arr.size == 0:
        return float("nan")
    try:
        return float(arr.ravel()[0])
    except (TypeError, ValueError):
        return float("nan")


def _items(value: Any) -> list:
    """A MATLAB struct array (squeezed to one struct, an array, or empty) as a list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel()) if value.dtype == object else []
    return [value]


def _person_joints(rect: Any, path: Path, name: str, image: str) -> tuple[np.ndarray, np.ndarray]:
    joints = np.zeros((NUM_JOINTS, 2))
    annotated = np.zeros(NUM_JOINTS, dtype=bool)
    annopoints = getattr(rect, "annopoints", None)
    for point in _items(getattr(annopoints, "point", None)):
        jid = _num(getattr(point, "id", None))
        x, y = _num(getattr(point, "x", None)), _num(getattr(point, "y", None))
        if not (np.isfinite(jid) and jid == int(jid) and 0 <= jid < NUM_JOINTS):
            raise DatasetError(
                f"dataset {name!r}: {path}, image {image}: joint id {jid} outside 0..15 "
                "(MPII has 16 joints); "
                f"the annotation file is corrupt, use the original from {MPII_HINT}"
            )
        if not (np.isfinite(x) and np.isfinite(y)):
            raise DatasetError(
                f"dataset {name!r}: {path}, image {image}: joint {int(jid)} has NaN or missing coordinates; "
                f"the annotation file is corrupt, use the original from {MPII_HINT}"
            )
        joints[int(jid)] = (x - 1.0, y - 1.0)
        annotated[int(jid)] = True
    return joints, annotated


def read_mpii_mat(path: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The single-person people of the training images of the official `RELEASE` struct."""
    mat = load_mat(path, name, MPII_HINT, struct_as_record=False, squeeze_me=True)
    release = mat.get("RELEASE")
    fields = ("annolist", "img_train", "single_person")
    if release is None or any(not hasattr(release, f) for f in fields):
        raise DatasetError(
            f"dataset {name!r}: {path} has no RELEASE struct with {', '.join(fields)}; "
            f"it is not the official MPII annotation file ({MPII_HINT})"
        )
    annolist = _items(release.annolist)
    img_train = np.atleast_1d(np.asarray(release.img_train, dtype=np.float64)).ravel()
    single = release.single_person
    single = list(single.ravel()) if isinstance(single, np.ndarray) and single.dtype == object else [single]
    if not (len(annolist) == len(img_train) == len(single)):
        raise DatasetError(
            f"dataset {name!r}: {path} is inconsistent (annolist {len(annolist)}, "
            f"img_train {len(img_train)}, "
            f"single_person {len(single)} entries); the file is truncated, use the original from {MPII_HINT}"
        )
    people = People()
    counts = {"annotated images": 0, "single-person people": 0}
    for i in np.nonzero(img_train == 1)[0]:
        entry = annolist[i]
        image = str(getattr(getattr(entry, "image", None), "name", "")).strip()
        rects = _items(getattr(entry, "annorect", None))
        ids = [
            int(v) for v in np.atleast_1d(np.asarray(single[i], dtype=np.float64)).ravel() if np.isfinite(v)
        ]
        counts["annotated images"] += 1
        for rid in ids:
            if not 1 <= rid <= len(rects) or not image:
                raise DatasetError(
                    f"dataset {name!r}: {path}, image #{i + 1} {image!r}: single_person names "
                    f"person {rid} of "
                    f"{len(rects)}; the annotation file is corrupt, use the original from {MPII_HINT}"
                )
            rect = rects[rid - 1]
            joints, annotated = _person_joints(rect, path, name, image)
            if not annotated.any():
                continue
            head = np.hypot(_num(getattr(rect, "x2", None)) - _num(getattr(rect, "x1", None)),
                            _num(getattr(rect, "y2", None)) - _num(getattr(rect, "y1", None)))  # fmt: skip
            objpos = getattr(rect, "objpos", None)
            centre = (_num(getattr(objpos, "x", None)) - 1.0, _num(getattr(objpos, "y", None)) - 1.0)
            people.add(image, joints, annotated, head, centre, _num(getattr(rect, "scale", None)))
            counts["single-person people"] += 1
    return people.arrays(), counts


def read_mpii_json(files: list[Path], name: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """People of the HRNet-style JSON files (list of {image, center, scale, joints, joints_vis}); validation
    head boxes from `gt_valid.mat` (same order as valid.json) when given, else estimated."""
    people = People()
    counts = {}
    heads_exact: np.ndarray | None = None
    gt = [f for f in files if f.suffix == ".mat"]
    if gt:
        mat = load_mat(gt[0], name, MPII_HINT)
        if "headboxes_src" not in mat:
            raise DatasetError(
                f"dataset {name!r}: {gt[0]} has no 'headboxes_src'; it is not HRNet's gt_valid.mat"
            )
        boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)  # (2, 2, N): [[x1, y1], [x2, y2]]
        heads_exact = np.linalg.norm(boxes[1] - boxes[0], axis=0)
    for path in (f for f in files if f.suffix == ".json"):
        try:
            entries = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(
                f"dataset {name!r}: cannot parse {path} ({str(exc).splitlines()[0]}); the file is corrupt or "
                "truncated, obtain it again"
            ) from None
        if not isinstance(entries, list):
            raise DatasetError(f"dataset {name!r}: {path} is not a list of people (HRNet MPII JSON format)")
        use_gt = heads_exact is not None and path.stem == "valid"
        if use_gt and len(heads_exact) != len(entries):  # type: ignore[arg-type]
            raise DatasetError(
                f"dataset {name!r}: gt_valid.mat has {len(heads_exact)} head boxes but {path} {len(entries)} "  # type: ignore[arg-type]
                "people; use the files of one release"
            )
        for k, entry in enumerate(entries):
            try:
                joints = np.asarray(entry["joints"], dtype=np.float64)
                vis = np.asarray(entry["joints_vis"], dtype=np.float64)
                image = str(entry["image"])
                centre = np.asarray(entry.get("center", [-1, -1]), dtype=np.float64)
                scale = float(entry.get("scale", np.nan))
            except (KeyError, TypeError, ValueError):
                raise DatasetError(
                    f"dataset {name!r}: {path} entry {k} lacks image/joints/joints_vis "
                    "(HRNet MPII JSON format)"
                ) from None
            if joints.shape != (NUM_JOINTS, 2) or vis.shape != (NUM_JOINTS,):
                raise DatasetError(
                    f"dataset {name!r}: {path} entry {k} ({image}) has joints of shape "
                    f"{joints.shape}, expected "
                    "16 x 2 (MPII has 16 joints)"
                )
            annotated = vis > 0
            if not np.isfinite(joints[annotated]).all():
                raise DatasetError(f"dataset {name!r}: {path} entry {k} ({image}) has NaN joint coordinates")
            head = float(heads_exact[k]) if use_gt else np.nan  # type: ignore[index]
            people.add(image, joints - 1.0, annotated, head, tuple(centre - 1.0), scale)
        counts[f"{path.name} people"] = len(entries)
    return people.arrays(), counts


def read_mpii_h5(files: list[Path], name: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """People of the stacked-hourglass h5 files (Newell's annot/train.h5, annot/valid.h5): imgname, part (16 x 2,
    1-based like the official annotations; (0, 0) = not annotated), normalize (the official head size = 0.6 x
    head-box diagonal), center, scale."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - a dependency
        raise DatasetError(
            f"dataset {name!r}: reading {files[0].name} needs h5py (pip install h5py)"
        ) from None
    people = People()
    counts: dict[str, int] = {}
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                missing = [k for k in ("imgname", "part", "normalize", "center", "scale") if k not in f]
                if missing:
                    raise DatasetError(
                        f"dataset {name!r}: {path} has no {', '.join(missing)}; it is not a stacked-hourglass "
                        "MPII annotation file"
                    )
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["imgname"][:]]
                part = np.asarray(f["part"][:], dtype=np.float64)
                normalize = np.asarray(f["normalize"][:], dtype=np.float64)
                centre = np.asarray(f["center"][:], dtype=np.float64)
                scale = np.asarray(f["scale"][:], dtype=np.float64)
        except OSError as exc:
            raise DatasetError(
                f"dataset {name!r}: cannot read {path} ({str(exc).splitlines()[0]}); the file is corrupt or "
                "truncated, obtain it again"
            ) from None
        if (
            part.ndim != 3
            or part.shape[1:] != (NUM_JOINTS, 2)
            or not len(part) == len(normalize) == len(names)
        ):
            raise DatasetError(
                f"dataset {name!r}: {path} holds part of shape {part.shape} for {len(names)} names, expected "
                "N x 16 x 2 (MPII has 16 joints)"
            )
        annotated = ~((part[..., 0] == 0) & (part[..., 1] == 0))
        if not np.isfinite(part[annotated]).all():
            raise DatasetError(f"dataset {name!r}: {path} has NaN or infinite joint coordinates")
        for k in range(len(names)):
            head = normalize[k] / HEAD_SIZE_FACTOR if normalize[k] > 0 else float("nan")
            people.add(names[k], part[k] - 1.0, annotated[k], head, tuple(centre[k] - 1.0), float(scale[k]))
        counts[f"{path.name} people"] = len(names)
    return people.arrays(), counts


# -- the plugin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MPIIOptions:
    """Options of the `mpii` dataset."""

    # which annotation format to read; auto: the .mat, else the stacked-hourglass h5 files, else the HRNet JSON
    annotations: Literal["auto", "mat", "h5", "json"] = "auto"
    # keep only people with all 16 joints annotated: the reference code's filter (2,017 of Newell's 2,958
    # validation people); off by default, since PCKh on the filtered set is not the published validation figure
    all_joints: bool = False
    # person: the centre/scale window (Newell's crop); joints: the tight joint box x crop_scale (the reference's)
    crop: Literal["person", "joints"] = "person"
    crop_scale: float = param(1.75, low=0, low_open=True)
    # 1.0: the official head top; 0.8 moves it 20 % towards the upper neck, as the reference code does
    head_lambda: float = param(1.0, low=0, high=1, low_open=True)
    workers: int = param(0, low=0)  # decoding threads (0: up to 8); changes speed only


#: where each annotation format lives under the MPII folder, in the order "auto" looks for them
FORMATS = {
    "mat": [MAT_NAME],
    "h5": ["annot/train.h5", "annot/valid.h5"],
    "json": ["annot/train.json", "annot/valid.json"],
}


class MPIIDataset(CachedDataset):
    """MPII Human Pose, single-person crops: Newell's validation split as test, the rest as the pool."""

    name = "mpii"
    description = "MPII Human Pose (real images): Newell's validation split as test, PCKh."
    task = "heatmap2d"
    skeleton = MPII
    metric = "pckh"
    hint = MPII_HINT
    expected = (
        f"mpii/{MAT_NAME} (or the stacked-hourglass mpii/annot/{{train,valid}}.h5, or HRNet's "
        "mpii/annot/{train,valid}.json) and mpii/images/"
    )
    options_class = MPIIOptions
    cache_version = 2  # 2: head sizes estimated with the measured ratio 1.25 (was sqrt(2))

    def _dir(self, root: Path) -> Path:
        return dataset_dir(root, "mpii", MAT_NAME) if not (root / "annot").is_dir() else root

    def annotation_format(self, root: Path, options: dict[str, Any]) -> str:
        """The format to read: the one asked for, or the first of FORMATS with a file present ("mat" if none)."""
        if options["annotations"] != "auto":
            return options["annotations"]
        base = self._dir(root)
        for kind, names in FORMATS.items():
            if any((base / n).exists() for n in names):
                return kind
        return "mat"

    def annotation_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        kind = self.annotation_format(root, options)
        base = self._dir(root)
        files = [base / n for n in FORMATS[kind]]
        gt = base / "annot" / "gt_valid.mat"
        return files + ([gt] if kind == "json" and gt.exists() else [])

    def check_formats(self, root: Path, options: dict[str, Any]) -> str:
        """Which formats `data check` looked for and which it found, in one line."""
        base = self._dir(root)
        looked = "; ".join(" + ".join(names) for names in FORMATS.values())
        found = [n for names in FORMATS.values() for n in names if (base / n).exists()]
        chosen = self.annotation_format(root, options)
        return f"looked for {looked}; found {', '.join(found) or 'none'}; reading {chosen}"

    def check(self, config: DatasetConfig) -> CheckReport:
        """The generic check, with a row naming the annotation formats looked for and the one found."""
        report = super().check(config)
        try:
            root, options = self.root(config), self.options(config)
        except DatasetError:
            return report
        report.rows.insert(1, ("annotation formats", "info", self.check_formats(root, options)))
        return report

    def conventions(self, dataset: PoseDataset) -> list[str]:
        options, counts = dataset.info.get("options", {}), dataset.info.get("counts", {})
        out = [
            "PCKh@0.5 with 0.6 x head-box diagonal, pelvis and thorax left out of the mean (the official MPII code)",
            "test: every person of Newell's validation images"
            if not options.get("all_joints")
            else "test: only people with all 16 joints annotated (the reference code's filter): PCKh NOT comparable "
            "with published validation figures",
        ]
        estimated = int(counts.get("head boxes estimated", 0))
        if estimated:
            out.append(
                f"{estimated:,} head sizes estimated ({HEAD_RATIO} x head top to upper neck, measured on Newell's "
                "validation people): PCKh of those people not comparable with the official figures"
            )
        if options.get("head_lambda", 1.0) != 1.0:
            out.append(
                f"head top moved {100 * (1 - options['head_lambda']):.0f} % towards the neck (reference code)"
            )
        return out

    def parse(self, root: Path, options: dict[str, Any]) -> Sources:
        files = self.annotation_files(root, options)
        if files[0].suffix == ".mat":
            people, counts = read_mpii_mat(files[0], self.name)
        elif files[0].suffix == ".h5":
            people, counts = read_mpii_h5(files, self.name)
        else:
            people, counts = read_mpii_json(files, self.name)
        n_all = len(people["names"])
        if options["all_joints"]:
            keep = people["annotated"].all(axis=1)
            counts["dropped (not all 16 joints annotated)"] = int((~keep).sum())
            people = {k: v[keep] for k, v in people.items()}
        if len(people["names"]) == 0:
            raise DatasetError(
                f"dataset {self.name!r}: no usable people in {files[0]} ({n_all} before the all_joints "
                "filter); "
                "check the file or pass --option all_joints=false"
            )
        joints, annotated = people["joints"], people["annotated"]
        lam = options["head_lambda"]
        if lam != 1.0:
            both = annotated[:, HEAD_TOP] & annotated[:, UPPER_NECK]
            moved = lam * joints[:, HEAD_TOP] + (1 - lam) * joints[:, UPPER_NECK]
            joints[:, HEAD_TOP] = np.where(both[:, None], moved, joints[:, HEAD_TOP])
        head_length = pair_distance(joints, annotated, [(HEAD_TOP, UPPER_NECK)])
        head, estimated = fill_estimates(people["head"], head_length, HEAD_RATIO)
        if np.isnan(head).any():  # no head box and no head segment: fall back to the person's joint box
            head, more = fill_estimates(head, joint_boxes(joints, annotated, 1.0)[:, 2], 0.25)
            estimated += more
        counts["head boxes estimated"] = estimated
        boxes = joint_boxes(joints, annotated, options["crop_scale"])
        if options["crop"] == "person":
            centre, scale = people["centre"], people["scale"]
            ok = np.isfinite(centre).all(axis=1) & (centre[:, 0] >= 0) & np.isfinite(scale) & (scale > 0)
            person = np.column_stack([centre[:, 0], centre[:, 1] + 15 * scale, 250 * scale])
            boxes = np.where(ok[:, None], person, boxes)
            counts["people without centre/scale (joint-box crop)"] = int((~ok).sum())
        names = people["names"]
        paths = np.char.add(str(self._dir(root) / "images") + "/", names)
        whole = SourceSplit(
            image_paths=paths, keypoints=joints, visible=annotated, normalizer=head, boxes=boxes
        )
        validation = np.isin(names, list(newell_validation_images()))
        if not validation.any() or validation.all():
            raise DatasetError(
                f"dataset {self.name!r}: {'none' if not validation.any() else 'all'} of the {len(names)} "
                "people are in Newell's validation images, so there is no test or no pool; use the full MPII "
                "annotations"
            )
        counts["validation images"] = int(len(np.unique(names[validation])))
        return Sources(
            splits={"train": whole.subset(np.nonzero(~validation)[0]),
                    "test": whole.subset(np.nonzero(validation)[0])},
            info={"protocol": "single-person people of training images; Newell's validation images as test",
                  "counts": counts, "root": str(root), "annotations": [str(f) for f in files]},
        )  # fmt: skip
