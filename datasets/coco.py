"""COCO-format keypoints (`coco`): the benchmark on any keypoint JSON + image folder, e.g. the user's own
data.

Data root layout (names settable with options)::

    <root>/<annotations>        COCO keypoint JSON (option `annotations`; default: the only *.json in <root>
    or
                                <root>/annotations)
    <root>/<images>/<file_name> the images (option `images`, default "images")

Every non-crowd person annotation with at least `min_keypoints` labelled keypoints becomes one sample, cropped
with a square of `crop_scale` x the longer edge of its box (centred on the box). The skeleton comes from the
JSON's category: its `keypoints` names and `skeleton` links (1-based) become a spanning tree
(`skeleton_from_coco`), flip pairs are matched from left/right names. Test split: a second JSON (option
`test_annotations`) or a seeded `test_fraction` of the images (all people of an image stay in one split).
Normaliser for PCK: the box diagonal (`normalizer=bbox`, default) or the torso size from left/right shoulders
and hips (`normalizer=torso`). Keypoint coordinates are taken as 0-based pixel positions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, shortest_path

from alpose_bench.core.validation import param
from alpose_bench.datasets.base import CachedDataset, Sources, SourceSplit
from alpose_bench.datasets.geometry import fill_estimates, pair_distance
from alpose_bench.pose.data import DatasetError, PoseDataset, PoseSplit
from alpose_bench.pose.skeleton import Skeleton

COCO_HINT = (
    "https://cocodataset.org/#download (person_keypoints_*.json) or your own COCO-format keypoint JSON"
)
ROOT_NAMES = ("head_top", "head", "neck", "upper_neck", "nose", "thorax", "root", "palm", "wrist")
_SIDES = (("left_", "right_"), ("l_", "r_"), ("left", "right"), ("_left", "_right"), ("_l", "_r"))


def flip_pairs_from_names(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(left, right) index pairs of joints whose names differ only by a left/right prefix or suffix."""
    lower = [n.lower() for n in names]
    index = {n: i for i, n in enumerate(lower)}
    pairs = []
    for i, n in enumerate(lower):
        for left, right in _SIDES:
            other = None
            if n.startswith(left):
                other = right + n[len(left) :]
            elif n.endswith(left) and left.startswith("_"):
                other = n[: -len(left)] + right
            if other is not None and other in index and index[other] != i:
                pairs.append((i, index[other]))
                break
    return tuple(sorted(set(pairs)))


def _torso_pairs(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    lower = [re.sub(r"[^a-z]", "", n.lower()) for n in names]

    def find(side: str, part: str) -> int | None:
        for i, n in enumerate(lower):
            if n in (side + part, side[0] + part, part + side):
                return i
        return None

    ls, rs, lh, rh = (
        find("left", "shoulder"),
        find("right", "shoulder"),
        find("left", "hip"),
        find("right", "hip"),
    )
    if None in (ls, rs, lh, rh):
        return ()
    return ((ls, rh), (rs, lh))  # type: ignore[return-value]


def skeleton_from_coco(category: dict[str, Any], name: str = "coco") -> Skeleton:
    """A Skeleton from a COCO category: the links become a breadth-first spanning tree.

    Root: the first joint named like a head/neck/palm (ROOT_NAMES), else the graph centre (least
    eccentricity). Joints the links do not reach are attached to the root (each other component through its
    own centre)."""
    names = tuple(str(n) for n in category.get("keypoints", []))
    k = len(names)
    if k < 2:
        raise DatasetError(
            f"dataset {name!r}: category {category.get('name')!r} names {k} keypoints; need >= 2"
        )
    links = np.asarray(category.get("skeleton") or np.zeros((0, 2)), dtype=np.int64).reshape(-1, 2) - 1
    if ((links < 0) | (links >= k)).any():
        raise DatasetError(
            f"dataset {name!r}: category {category.get('name')!r} has skeleton links outside 1..{k} "
            "(COCO links are 1-based keypoint indices)"
        )
    links = links[links[:, 0] != links[:, 1]]
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(k, k)).tocsr()
    graph = ((graph + graph.T) > 0).astype(np.float64)
    n_comp, label = connected_components(graph, directed=False)
    hops = shortest_path(graph, directed=False, unweighted=True)

    def centre(members: np.ndarray) -> int:
        ecc = hops[np.ix_(members, members)].max(axis=1)
        return int(members[np.argmin(ecc)])

    lower = [n.lower() for n in names]
    named = [lower.index(r) for r in ROOT_NAMES if r in lower]
    root = named[0] if named else centre(np.nonzero(label == np.bincount(label).argmax())[0])
    pairs: list[tuple[int, int]] = []
    for comp in [label[root]] + [c for c in range(n_comp) if c != label[root]]:
        members = np.nonzero(label == comp)[0]
        start = root if comp == label[root] else centre(members)
        if comp != label[root]:
            pairs.append((root, start))
        order, pred = breadth_first_order(graph, start, directed=False)
        pairs.extend((int(pred[j]), int(j)) for j in order[1:])
    return Skeleton(
        name=name,
        joints=names,
        links=tuple(pairs),
        root=root,
        flip_pairs=flip_pairs_from_names(names),
        torso_pairs=_torso_pairs(names),
    )


COCO_PERSON = skeleton_from_coco(
    {
        "name": "person",
        "keypoints": [
            "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle",
        ],
        "skeleton": [
            [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
            [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
        ],
    }
)  # fmt: skip


def read_coco(path: Path, name: str, category: str) -> tuple[dict[str, Any], list[dict], dict[int, str]]:
    """(category, person annotations of that category, image id -> file name) of a COCO keypoint JSON."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"dataset {name!r}: cannot parse {path} ({str(exc).splitlines()[0]}); the file is corrupt or truncated"
        ) from None
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise DatasetError(
            f"dataset {name!r}: {path} is not a COCO keypoint file (needs images, annotations and categories)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DatasetError(
                f"dataset {name!r}: {path}: '{key}' must be a list of objects, got {type(data[key]).__name__}"
            )
        for n, item in enumerate(data[key]):
            if not isinstance(item, dict):
                raise DatasetError(
                    f"dataset {name!r}: {path}: {key}[{n}] must be an object, got {type(item).__name__} {item!r:.40}"
                )
    cats = [c for c in data["categories"] if isinstance(c.get("keypoints"), list) and c.get("keypoints")]
    if category:
        cats = [c for c in cats if c.get("name") == category]
    if not cats:
        wanted = f"named {category!r} " if category else ""
        raise DatasetError(f"dataset {name!r}: {path} has no category {wanted}with keypoints")
    cat = cats[0]
    images: dict[int, str] = {}
    sizes: dict[int, tuple[float, float]] = {}
    for n, im in enumerate(data["images"]):
        try:
            image_id, file_name = int(im["id"]), im["file_name"]
        except (KeyError, TypeError, ValueError):
            raise DatasetError(
                f"dataset {name!r}: {path}: images[{n}] needs an integer 'id' and a 'file_name'"
            ) from None
        if not isinstance(file_name, str) or not file_name:
            raise DatasetError(f"dataset {name!r}: {path}: images[{n}].file_name must be a non-empty string")
        if image_id in images:
            raise DatasetError(
                f"dataset {name!r}: {path}: image id {image_id} is listed twice ({images[image_id]!r} and "
                f"{file_name!r}); give every image its own id"
            )
        images[image_id] = file_name
        w, h = im.get("width"), im.get("height")
        if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
            sizes[image_id] = (float(w), float(h))
    anns = [a for a in data["annotations"] if a.get("category_id", cat.get("id")) == cat.get("id")]
    return cat, anns, images, sizes


#: no photograph is this many pixels across: coordinates beyond it are a broken annotation, not a person
MAX_COORDINATE = 100_000.0
#: how far outside its image (as a fraction of the image side) a labelled keypoint may lie (annotation slack)
IMAGE_SLACK = 0.1
#: how far outside its box (in box sides) a labelled keypoint may lie
BOX_SLACK = 1.0
SKIPPED_CROWD = "people skipped (crowd or too few keypoints)"
SKIPPED_GEOMETRY = "people skipped (keypoints or box implausible: far outside the image or box)"
SKIPPED_DUPLICATE = "people skipped (duplicate annotations)"


def implausible(
    raw: np.ndarray, lab: np.ndarray, box: np.ndarray | None, size: tuple[float, float] | None
) -> bool:
    """True when a person's labelled keypoints (or given box) cannot belong to its image: coordinates beyond any
    photograph, keypoints far outside the image (when its size is known) or far outside the box."""
    pts = raw[lab, :2]
    if (np.abs(pts) > MAX_COORDINATE).any():
        return True
    if box is not None and (np.abs(box) > MAX_COORDINATE).any():
        return True
    if size is not None:
        w, h = size
        lo, hi = -IMAGE_SLACK * np.array([w, h]), (1 + IMAGE_SLACK) * np.array([w, h])
        if ((pts < lo) | (pts > hi)).any():
            return True
        if box is not None and (
            box[0] > hi[0] or box[1] > hi[1] or box[0] + box[2] < lo[0] or box[1] + box[3] < lo[1]
        ):
            return True
    if box is not None:
        side = max(box[2], box[3]) * BOX_SLACK
        if ((pts < box[:2] - side) | (pts > box[:2] + box[2:] + side)).any():
            return True
    return False


def people(
    path: Path,
    anns: list[dict],
    images: dict[int, str],
    k: int,
    options: dict[str, Any],
    name: str,
    sizes: dict[int, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Arrays of the usable people: image file, keypoints (N, K, 2), labelled mask, box (x, y, w, h); and counts of
    the people left out, by reason."""
    files, kps, labelled, boxes = [], [], [], []
    skipped = {SKIPPED_CROWD: 0, SKIPPED_GEOMETRY: 0, SKIPPED_DUPLICATE: 0}
    seen: set[tuple[int, bytes]] = set()
    sizes = sizes or {}
    for n, ann in enumerate(anns):
        try:
            raw = np.asarray(ann["keypoints"], dtype=np.float64)
            image_id = int(ann["image_id"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(
                f"dataset {name!r}: {path} annotation {n} lacks keypoints or image_id"
            ) from None
        if raw.size != 3 * k:
            raise DatasetError(
                f"dataset {name!r}: {path} annotation {n} (id {ann.get('id')}) has {raw.size} keypoint values, "
                f"expected {3 * k} ({k} keypoints x (x, y, v)); wrong joint count"
            )
        raw = raw.reshape(k, 3)
        if not np.isfinite(raw).all():
            raise DatasetError(
                f"dataset {name!r}: {path} annotation {n} (id {ann.get('id')}) has NaN keypoints"
            )
        if image_id not in images:
            raise DatasetError(
                f"dataset {name!r}: {path} annotation {n} refers to unknown image id {image_id}"
            )
        lab = raw[:, 2] > 0
        if ann.get("iscrowd", 0) or lab.sum() < max(1, options["min_keypoints"]):
            skipped[SKIPPED_CROWD] += 1
            continue
        try:
            given = np.asarray(ann.get("bbox") or [np.nan] * 4, dtype=np.float64).reshape(-1)[:4]
        except (TypeError, ValueError):
            raise DatasetError(
                f"dataset {name!r}: {path} annotation {n} (id {ann.get('id')}): bbox must be 4 numbers [x, y, w, h]"
            ) from None
        box = (
            given if given.size == 4 and np.isfinite(given).all() and given[2] > 0 and given[3] > 0 else None
        )
        if implausible(raw, lab, box, sizes.get(image_id)):
            skipped[SKIPPED_GEOMETRY] += 1
            continue
        key = (image_id, raw.tobytes())
        if key in seen:
            skipped[SKIPPED_DUPLICATE] += 1
            continue
        seen.add(key)
        if box is None:
            pts = raw[lab, :2]
            box = np.array([*pts.min(axis=0), *(pts.max(axis=0) - pts.min(axis=0))])
        files.append(images[image_id])
        kps.append(raw[:, :2])
        labelled.append(lab)
        boxes.append(box)
    n = len(files)
    return {
        "files": np.array(files, dtype=str),
        "keypoints": np.array(kps, dtype=np.float64).reshape(n, k, 2),
        "labelled": np.array(labelled, dtype=bool).reshape(n, k),
        "boxes": np.array(boxes, dtype=np.float64).reshape(n, 4),
        "skipped": skipped,
    }


@dataclass(frozen=True)
class COCOOptions:
    """Options of the `coco` dataset."""

    annotations: str = ""  # the keypoint JSON, relative to the data root (default: the one JSON found)
    images: str = "images"  # the images folder, relative to the data root
    test_annotations: str = (
        ""  # a second JSON as the test split (default: a seeded test_fraction of the images)
    )
    test_fraction: float = param(0.2, low=0, high=1, low_open=True, high_open=True)
    category: str = ""  # the category to read (default: the only one with keypoints)
    crop_scale: float = param(1.25, low=0, low_open=True)  # crop side / longer side of the person's box
    min_keypoints: int = param(1, low=0)  # people with fewer labelled keypoints are left out
    normalizer: Literal["bbox", "torso"] = "bbox"  # PCK normaliser: longer box side, or the torso
    workers: int = param(0, low=0)  # decoding threads (0: up to 8); changes speed only
    max_image_pixels: int = param(
        0, low=0
    )  # images with more pixels are refused (0: 200 M, the default bound)


class COCODataset(CachedDataset):
    """Any COCO-format keypoint dataset: single-person crops from the boxes, skeleton from the JSON, PCK."""

    name = "coco"
    description = "COCO-format keypoint JSON + images (your own data): single-person crops, PCK."
    task = "heatmap2d"
    skeleton = COCO_PERSON  # the loaded dataset carries the skeleton of its JSON
    metric = "pck"
    hint = COCO_HINT
    expected = "a COCO keypoint JSON (option annotations) and its images folder (option images)"
    options_class = COCOOptions
    runtime_options = ("workers", "max_image_pixels")

    def _annotations(self, root: Path, options: dict[str, Any]) -> Path:
        if options["annotations"]:
            return root / options["annotations"]
        found = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
        if len(found) != 1:
            listed = ", ".join(p.name for p in found[:5]) or "none"
            raise DatasetError(
                f"dataset {self.name!r}: found {len(found)} JSON files in {root} and {root / 'annotations'} "
                f"({listed}); name the annotation file with --option annotations=FILE"
            )
        return found[0]

    def annotation_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        files = [self._annotations(root, options)]
        return files + ([root / options["test_annotations"]] if options["test_annotations"] else [])

    def parse(self, root: Path, options: dict[str, Any]) -> Sources:
        files = self.annotation_files(root, options)
        cat, anns, images, sizes = read_coco(files[0], self.name, options["category"])
        skeleton = skeleton_from_coco(cat, name=f"coco-{cat.get('name', 'keypoints')}")
        k = skeleton.num_joints
        parts = [people(files[0], anns, images, k, options, self.name, sizes)]
        if len(files) > 1:
            cat2, anns2, images2, sizes2 = read_coco(
                files[1], self.name, options["category"] or str(cat.get("name", ""))
            )
            if list(cat2["keypoints"]) != list(cat["keypoints"]):
                raise DatasetError(
                    f"dataset {self.name!r}: {files[1]} names other keypoints than {files[0]}; use one category"
                )
            parts.append(people(files[1], anns2, images2, k, options, self.name, sizes2))
        counts = {why: int(sum(p["skipped"][why] for p in parts)) for why in parts[0]["skipped"]}
        splits = [self._split(root, p, skeleton, options) for p in parts]
        if len(splits) == 2:
            train, test = splits
        else:
            train, test = self._random_split(splits[0], parts[0]["files"], options["test_fraction"])
        if len(train) == 0 or len(test) == 0:
            raise DatasetError(
                f"dataset {self.name!r}: the split has {len(train)} pool and {len(test)} test people; "
                "annotate more people or change test_fraction"
            )
        counts["images"] = int(len(np.unique(np.concatenate([p["files"] for p in parts]))))
        info = {
            "protocol": "test file"
            if len(files) > 1
            else f"seeded {options['test_fraction']} of images as test",
            "counts": counts,
            "root": str(root),
            "skeleton": {"joints": list(skeleton.joints), "links": [list(link) for link in skeleton.links]},
            "category": cat,
        }
        return Sources(splits={"train": train, "test": test}, info=info)

    def _split(self, root: Path, p: dict[str, np.ndarray], skeleton: Skeleton, options: dict) -> SourceSplit:
        box = p["boxes"]
        if options["normalizer"] == "torso" and not skeleton.torso_pairs:
            raise DatasetError(
                f"dataset {self.name!r}: normalizer=torso needs left/right shoulder and hip keypoints; "
                "use normalizer=bbox"
            )
        diag = np.hypot(box[:, 2], box[:, 3])
        if options["normalizer"] == "torso":
            norm, _ = fill_estimates(
                pair_distance(p["keypoints"], p["labelled"], skeleton.torso_pairs), diag, 0.3
            )
        else:
            norm = diag
        boxes = np.column_stack(
            [
                box[:, 0] + box[:, 2] / 2,
                box[:, 1] + box[:, 3] / 2,
                options["crop_scale"] * box[:, 2:].max(axis=1),
            ]
        )
        folder = str(root / options["images"]) + "/"
        return SourceSplit(
            image_paths=np.char.add(folder, p["files"]),
            keypoints=p["keypoints"],
            visible=p["labelled"],
            normalizer=norm,
            boxes=np.maximum(boxes, [[-np.inf, -np.inf, 8.0]]),
        )

    @staticmethod
    def _random_split(
        split: SourceSplit, files: np.ndarray, fraction: float
    ) -> tuple[SourceSplit, SourceSplit]:
        unique = np.unique(files)
        rng = np.random.default_rng([len(unique), 0xC0C0])
        n_test = max(1, int(round(fraction * len(unique)))) if len(unique) > 1 else 0
        test_files = rng.choice(unique, size=n_test, replace=False)
        is_test = np.isin(files, test_files)
        return split.subset(np.nonzero(~is_test)[0]), split.subset(np.nonzero(is_test)[0])

    def assemble(self, splits: dict[str, PoseSplit], initial: np.ndarray | None, info: dict) -> PoseDataset:
        cat = info["category"]
        skeleton = skeleton_from_coco(cat, name=f"coco-{cat.get('name', 'keypoints')}")
        return replace(super().assemble(splits, initial, info), skeleton=skeleton)
