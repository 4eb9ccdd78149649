"""A user's labelling project, read into one data model: labelled frames, candidate frames, the skeleton.

Three inputs, one reader (sleap-io, which reads SLEAP, DeepLabCut and COCO into its `Labels`):

* a COCO keypoint JSON: annotated images are labelled, images listed without annotations are candidates (and any
  images of `--unlabelled DIR`);
* a DeepLabCut project folder (or its `config.yaml`): the frames of each `labeled-data/<video>/CollectedData_*.csv`
  are labelled, the other extracted frames in those folders are candidates;
* a SLEAP `.slp` file: frames with a user instance are labelled; every other frame of its videos (unlabelled, or
  holding only predictions) is a candidate.

Frames are ordered by their image's file name, then path and frame index, so the same images read from the three
formats come out in the same order (and give the same suggestions). `suggest` ranks whole frames with one animal or
person each: labelled frames holding several instances are left out, with a count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alpose_bench.core.failures import UserFacingError
from alpose_bench.datasets.coco import skeleton_from_coco
from alpose_bench.pose.skeleton import Skeleton

Format = Literal["coco", "dlc", "sleap"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
FORMATS_HELP = "a COCO keypoint JSON, a SLEAP .slp file or a DeepLabCut project folder (with config.yaml)"


class ProjectError(UserFacingError):
    """A project cannot be used as given; the message says what is wrong and how to fix it (one line)."""


@dataclass(frozen=True)
class Frame:
    """One frame of the project: `key` names it in the input's own terms (COCO file_name, DLC
    labeled-data/<video>/<file>, SLEAP <video>:<index>); `image` is its image file (None for a frame of a video
    file, read through `video`); `video`/`index` locate it in the sleap-io Labels."""

    key: str
    image: str | None
    video: int
    index: int

    @property
    def order(self) -> tuple[str, str, int]:
        """How frames sort: by file name first, so the same images read from any format line up."""
        path = self.image or self.key
        return (os.path.basename(path), path, self.index)


@dataclass
class Project:
    """What `suggest` reads: the skeleton, the labelled frames with their keypoints (source pixels), the
    candidates, and what was left out on the way (`notes`)."""

    format: Format
    source: Path
    skeleton: Skeleton
    labelled: list[Frame]
    keypoints: np.ndarray  # (N, J, 2) float32 source pixels, 0 where not labelled
    visible: np.ndarray  # (N, J) bool: the keypoint is labelled
    candidates: list[Frame]
    labels: Any  # the sleap-io Labels (exports of the picks write back into it)
    image_root: Path | None = None  # COCO: the folder the file_names are relative to
    notes: list[str] = field(default_factory=list)
    declared_edges: int = 0

    def describe(self) -> str:
        """One line: format, counts and skeleton."""
        return (
            f"{self.format} project {self.source}: {len(self.labelled)} labelled frames, {len(self.candidates)} "
            f"candidates, {self.skeleton.num_joints} keypoints"
        )


def detect_format(path: Path) -> Format:
    """The format of PROJECT from its name (ProjectError when it is none of the three)."""
    if not path.exists():
        raise ProjectError(f"project {path} does not exist; give {FORMATS_HELP}")
    if path.is_dir():
        if (path / "config.yaml").is_file():
            return "dlc"
        raise ProjectError(
            f"folder {path} holds no config.yaml, so it is not a DeepLabCut project; give {FORMATS_HELP}"
        )
    name = path.name.lower()
    if name.endswith(".json"):
        return "coco"
    if name.endswith(".slp"):
        return "sleap"
    if name == "config.yaml":
        return "dlc"
    raise ProjectError(f"cannot tell the format of {path}; give {FORMATS_HELP}")


def read_project(
    path: str | Path, images: str | Path | None = None, unlabelled: str | Path | None = None
) -> Project:
    """Read a COCO, DeepLabCut or SLEAP project (`images`: COCO's image folder; `unlabelled`: a folder of candidate
    images added to any format). ProjectError for anything unusable."""
    path = Path(path)
    fmt = detect_format(path)
    sio = _sleap_io()
    if fmt == "coco":
        project = _read_coco(sio, path, images)
    elif fmt == "dlc":
        project = _read_dlc(sio, path.parent if path.is_file() else path)
    else:
        project = _read_sleap(sio, path)
    if unlabelled is not None:
        _add_folder(project, Path(unlabelled))
    return _checked(project)


def _sleap_io() -> Any:
    try:
        import sleap_io
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ProjectError(
            "reading projects needs sleap-io; install it with `pip install sleap-io`"
        ) from None
    return sleap_io


def _user_instances(frame: Any) -> list[Any]:
    return [i for i in frame.instances if not type(i).__name__.startswith("Predicted")]


def _frame_image(video: Any, index: int) -> str | None:
    """The image file of frame `index` of a sleap-io video (None for a frame of a media file)."""
    names = video.filename
    if isinstance(names, (list, tuple)):
        return str(names[index]) if index < len(names) else None
    if Path(str(names)).suffix.lower() in IMAGE_SUFFIXES:
        return str(names)
    return None


def _video_length(video: Any) -> int:
    names = video.filename
    if isinstance(names, (list, tuple)):
        return len(names)
    try:
        return int(video.shape[0]) if video.shape is not None else 0
    except Exception:  # noqa: BLE001 - an unreadable media file has no frames to offer
        return 0


def _skeleton(sio_skeleton: Any, where: Path) -> tuple[Skeleton, list[str], int]:
    """The pose skeleton of a sleap-io skeleton (a spanning tree of its edges, `skeleton_from_coco`), the notes
    on how the tree was made, and the number of edges declared."""
    names = list(sio_skeleton.node_names)
    edges = [(int(a), int(b)) for a, b in sio_skeleton.edge_inds]
    if len(names) < 2:
        raise ProjectError(
            f"the skeleton of {where} names {len(names)} keypoint(s); pose estimation needs at least 2"
        )
    skeleton = skeleton_from_coco(
        {"name": "project", "keypoints": names, "skeleton": [[a + 1, b + 1] for a, b in edges]},
        name="project",
    )
    notes = []
    tree = {frozenset(link) for link in skeleton.links}
    dropped = [f"{names[a]}-{names[b]}" for a, b in edges if frozenset((a, b)) not in tree and a != b]
    added = [f"{names[a]}-{names[b]}" for a, b in skeleton.links if not {(a, b), (b, a)} & set(edges)]
    if dropped:
        notes.append(
            f"the skeleton's edges hold a cycle; the tree VL4Pose needs leaves out {', '.join(dropped)}"
        )
    if added and edges:
        notes.append(
            f"keypoints the edges do not connect were attached to the tree's root: {', '.join(added)}"
        )
    return skeleton, notes, len(edges)


def _labelled_arrays(instances: list[Any], joints: int) -> tuple[np.ndarray, np.ndarray]:
    kp = np.zeros((len(instances), joints, 2), dtype=np.float32)
    vis = np.zeros((len(instances), joints), dtype=bool)
    for n, instance in enumerate(instances):
        points = np.asarray(instance.numpy(), dtype=np.float64)[:, :2]
        ok = np.isfinite(points).all(axis=1)
        vis[n] = ok
        kp[n][ok] = points[ok]
    return kp, vis


def _from_labels(
    sio: Any, fmt: Format, source: Path, labels: Any, key_of: Any, extra_candidates: list[Frame] | None = None
) -> Project:
    """A Project from sleap-io Labels: frames with one user instance are labelled, frames without any are
    candidates; `key_of(video_index, frame_index, image)` names a frame."""
    if not labels.skeletons:
        raise ProjectError(
            f"{source} has no labelled frames (and so no skeleton); label some frames first (suggest trains its "
            "model on them)"
        )
    if len(labels.skeletons) > 1:
        names = ", ".join(s.name or "?" for s in labels.skeletons)
        raise ProjectError(
            f"{source} declares {len(labels.skeletons)} skeletons ({names}); suggest needs one"
        )
    skeleton, notes, declared = _skeleton(labels.skeletons[0], source)
    video_index = {id(v): k for k, v in enumerate(labels.videos)}
    labelled: list[tuple[Frame, Any]] = []
    seen: set[tuple[int, int]] = set()
    crowded = 0
    for lf in labels.labeled_frames:
        v = video_index[id(lf.video)]
        image = _frame_image(lf.video, lf.frame_idx)
        frame = Frame(key_of(v, lf.frame_idx, image), image, v, int(lf.frame_idx))
        users = _user_instances(lf)
        if not users:
            continue
        seen.add((v, frame.index))
        if len(users) > 1:
            crowded += 1
            continue
        labelled.append((frame, users[0]))
    if crowded:
        notes.append(
            f"{crowded} labelled frame(s) hold several instances and were left out (suggest ranks whole frames "
            "with one animal or person each)"
        )
    candidates = [
        Frame(key_of(v, i, _frame_image(video, i)), _frame_image(video, i), v, i)
        for v, video in enumerate(labels.videos)
        for i in range(_video_length(video))
        if (v, i) not in seen
    ] + list(extra_candidates or [])
    labelled.sort(key=lambda pair: pair[0].order)
    kp, vis = _labelled_arrays([inst for _, inst in labelled], skeleton.num_joints)
    return Project(
        format=fmt, source=source, skeleton=skeleton, labelled=[f for f, _ in labelled], keypoints=kp,
        visible=vis, candidates=sorted(candidates, key=lambda f: f.order), labels=labels, notes=notes,
        declared_edges=declared,
    )  # fmt: skip


def _read_coco(sio: Any, path: Path, images: str | Path | None) -> Project:
    import json
    import warnings

    try:
        listed = json.loads(path.read_text())
        names = {im["id"]: str(im["file_name"]) for im in listed.get("images", [])}
        annotated = {a["image_id"] for a in listed.get("annotations", []) if any(a.get("keypoints") or [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProjectError(f"{path} is not a COCO keypoint JSON ({str(exc).splitlines()[0]})") from None
    roots = [Path(images)] if images is not None else [path.parent, path.parent / "images"]
    root = next((r for r in roots if any((r / n).is_file() for n in list(names.values())[:20])), roots[0])
    # sleap-io skips listed images it cannot find, with their annotations: say so here, and refuse for labels
    missing = {i: n for i, n in names.items() if not (root / n).is_file()}
    lost = [n for i, n in missing.items() if i in annotated]
    if lost:
        raise ProjectError(
            f"{len(lost)} of {len(annotated)} labelled images are missing under {root} (first: {lost[0]}); point "
            "--images at the folder that holds them"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            labels = sio.load_coco(str(path), dataset_root=str(root))
    except Exception as exc:  # noqa: BLE001 - sleap-io's own errors for a malformed file
        raise ProjectError(
            f"cannot read {path} as a COCO keypoint JSON ({str(exc).splitlines()[0]})"
        ) from None

    def key(v: int, i: int, image: str | None) -> str:
        return os.path.relpath(image, root) if image else f"video{v}:{i}"

    project = _from_labels(sio, "coco", path, labels, key)
    project.image_root = root
    if missing:
        project.notes.append(
            f"{len(missing)} candidate image(s) listed in {path.name} are missing under {root} and were skipped "
            f"(first: {next(iter(missing.values()))})"
        )
    return project


def _read_dlc(sio: Any, folder: Path) -> Project:
    config = folder / "config.yaml"
    csvs = sorted((folder / "labeled-data").glob("*/CollectedData_*.csv"))
    if not csvs:
        raise ProjectError(
            f"DeepLabCut project {folder} has no labeled-data/<video>/CollectedData_*.csv; label frames in DeepLabCut "
            "first (or convert its .h5 files with deeplabcut.convertcsv2h5's reverse)"
        )
    declared = _config_bodyparts(config)
    for csv in csvs:  # sleap-io skips rows whose image it cannot find: refuse here instead of losing labels
        rows = [line.split(",", 1)[0] for line in csv.read_text().splitlines()]
        listed = [r for r in rows if Path(r).suffix.lower() in IMAGE_SUFFIXES]
        lost = [r for r in listed if not (folder / r).is_file() and not (csv.parent / Path(r).name).is_file()]
        if lost:
            raise ProjectError(
                f"{len(lost)} of {len(listed)} frames labelled in {csv.relative_to(folder)} are missing (first: "
                f"{lost[0]}); restore them or remove their rows"
            )
    parts, bodyparts = [], None
    for csv in csvs:
        try:
            labels = sio.load_dlc(str(csv), config=str(config))
        except Exception as exc:  # noqa: BLE001 - sleap-io's own errors for a malformed file
            raise ProjectError(
                f"cannot read {csv} as DeepLabCut labels ({str(exc).splitlines()[0]})"
            ) from None
        names = list(labels.skeletons[0].node_names) if labels.skeletons else []
        if declared and sorted(names) == sorted(declared) and names != declared:
            labels.reorder_nodes(declared)  # the config's order, as DeepLabCut and its CSV columns have it
            names = declared
        if bodyparts is None:
            bodyparts = (csv, names)
        elif names != bodyparts[1]:
            raise ProjectError(
                f"{csv} labels {len(names)} keypoints ({', '.join(names)}), {bodyparts[0]} labels "
                f"{len(bodyparts[1])} ({', '.join(bodyparts[1])}); every CSV of a project needs the same bodyparts"
            )
        parts.append(labels)
    merged = parts[0]
    for other in parts[
        1:
    ]:  # one Labels over every video folder (only the points are read from the instances)
        merged.labeled_frames.extend(other.labeled_frames)
        merged.videos.extend(other.videos)

    def key(v: int, i: int, image: str | None) -> str:
        return os.path.relpath(image, folder) if image else f"video{v}:{i}"

    labelled_images = {
        os.path.realpath(str(name)) for video in merged.videos for name in _names(video.filename)
    }
    extra = [
        Frame(os.path.relpath(p, folder), str(p), -1, 0)
        for csv in csvs
        for p in sorted(csv.parent.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and os.path.realpath(p) not in labelled_images
    ]
    project = _from_labels(sio, "dlc", folder, merged, key, extra)
    return project


def _config_bodyparts(config: Path) -> list[str]:
    """The bodyparts a DeepLabCut config.yaml lists, in its order ([] when it lists none or cannot be read)."""
    import yaml

    try:
        listed = (yaml.safe_load(config.read_text()) or {}).get("bodyparts") or []
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ProjectError(f"cannot read {config} ({str(exc).splitlines()[0]})") from None
    return [str(b) for b in listed] if isinstance(listed, list) else []


def _names(filename: Any) -> list[str]:
    return [str(n) for n in filename] if isinstance(filename, (list, tuple)) else [str(filename)]


def _read_sleap(sio: Any, path: Path) -> Project:
    try:
        labels = sio.load_slp(str(path))
    except Exception as exc:  # noqa: BLE001 - sleap-io's own errors for a malformed file
        raise ProjectError(f"cannot read {path} as a SLEAP file ({str(exc).splitlines()[0]})") from None

    def key(v: int, i: int, image: str | None) -> str:
        return image if image else f"{_names(labels.videos[v].filename)[0]}:{i}"

    return _from_labels(sio, "sleap", path, labels, key)


def _add_folder(project: Project, folder: Path) -> None:
    if not folder.is_dir():
        raise ProjectError(
            f"--unlabelled {folder} is not a folder; give the folder that holds the candidate images"
        )
    known = {os.path.realpath(f.image) for f in [*project.labelled, *project.candidates] if f.image}
    added = [
        Frame(str(p), str(p), -1, 0)
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in IMAGE_SUFFIXES and os.path.realpath(p) not in known
    ]
    project.candidates = sorted([*project.candidates, *added], key=lambda f: f.order)


def _checked(project: Project) -> Project:
    """The project, or a ProjectError when it has nothing to learn from or nothing to rank, or labelled images
    that are missing."""
    if not project.labelled:
        raise ProjectError(
            f"{project.source} has no labelled frames with one instance; label some frames first (suggest trains "
            "its model on them)"
        )
    if not project.candidates:
        raise ProjectError(
            f"{project.source} has no candidate frames (every frame is labelled); add unlabelled images "
            "(--unlabelled DIR, or frames without annotations)"
        )
    missing = [f.image for f in project.labelled if f.image is not None and not os.path.isfile(f.image)]
    if missing:
        raise ProjectError(
            f"{len(missing)} of {len(project.labelled)} labelled images are missing (first: {missing[0]}); "
            "point --images at the folder that holds them"
        )
    if not project.visible.any(axis=1).all():
        empty = int((~project.visible.any(axis=1)).sum())
        project.notes.append(
            f"{empty} labelled frame(s) have no labelled keypoint and teach the model nothing"
        )
    return project
