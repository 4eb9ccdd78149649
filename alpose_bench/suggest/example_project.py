"""A labelling project made from the LSPET photographs, in the three formats `suggest` reads, with the candidates'
true keypoints kept aside: what `suggest` is tested and measured on (`alpose-bench data example-project`).

Layout under OUT::

    coco/project.json, coco/images -> <lspet>/images     COCO: annotated images are labelled, the rest candidates
    dlc/config.yaml, dlc/labeled-data/lspet/              DeepLabCut: CollectedData_bench.csv + every image (links)
    sleap/project.slp                                     SLEAP: written by sleap-io from the COCO project
    truth.json                                            the candidates' hidden keypoints (file name -> x, y, v)

The images are links to the LSPET files, never copies. Which images are labelled and which are candidates is a
seeded draw from LSPET's 9,000-image pool (its fixed test split is left out).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from alpose_bench.core.atomic import write_atomic
from alpose_bench.core.seeds import derive_seed
from alpose_bench.datasets.lsp import lspet_test_images, read_lsp_joints
from alpose_bench.pose.skeleton import LSP
from alpose_bench.suggest.project import ProjectError

SCORER = "bench"


def _lspet_dir(root: Path | None) -> Path:
    """LSPET's folder: `root` (or $ALPOSE_DATA_ROOT, or the shared data folder) or its lspet/ subfolder."""
    from alpose_bench.datasets.files import data_root
    from alpose_bench.datasets.lsp import LSPET_HINT
    from alpose_bench.pose.data import DatasetConfig

    base = data_root(DatasetConfig(data_root=root), "lspet", "lspet/{joints.mat, images/}", LSPET_HINT, True)
    folder = base if (base / "joints.mat").is_file() else base / "lspet"
    if not (folder / "joints.mat").is_file():
        raise ProjectError(
            f"{base} holds no LSPET release (lspet/joints.mat, lspet/images/); obtain it from {LSPET_HINT}"
        )
    return folder


def write_example_project(
    out: Path, labelled: int = 300, candidates: int = 2000, seed: int = 0, data_root: Path | None = None
) -> dict[str, Path]:
    """Write the example project under `out` (see the module docstring); format -> path to give `suggest`."""
    folder = _lspet_dir(data_root)
    kp, annotated, _ = read_lsp_joints(folder / "joints.mat", "lspet", "lspet")
    names = np.array([f"im{i + 1:05d}.jpg" for i in range(len(kp))])
    pool = np.flatnonzero(~np.isin(names, lspet_test_images()))
    if labelled < 1 or candidates < 1 or labelled + candidates > len(pool):
        raise ProjectError(
            f"--labelled {labelled} + --candidates {candidates} must be positive and at most the {len(pool)} images "
            "of LSPET's pool"
        )
    rng = np.random.default_rng(derive_seed("example-project", seed))
    drawn = rng.permutation(pool)[: labelled + candidates]
    lab, cand = np.sort(drawn[:labelled]), np.sort(drawn[labelled:])
    joints = list(LSP.joints)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "coco": _write_coco(out / "coco", folder / "images", names, kp, annotated, lab, cand, joints),
        "dlc": _write_dlc(out / "dlc", folder / "images", names, kp, annotated, lab, cand, joints),
    }
    paths["sleap"] = _write_sleap(out / "sleap", paths["coco"])
    truth = {
        str(names[i]): [[float(x), float(y), int(v)] for (x, y), v in zip(kp[i], annotated[i])] for i in cand
    }
    write_atomic(out / "truth.json", json.dumps({"joints": joints, "keypoints": truth}).encode())
    return paths


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)


def _write_coco(folder: Path, images: Path, names, kp, annotated, lab, cand, joints) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    _link(images.resolve(), folder / "images")
    entries, annotations = [], []
    for i in np.sort(np.concatenate([lab, cand])):
        with Image.open(images / names[i]) as im:
            width, height = im.size
        entries.append({"id": int(i) + 1, "file_name": str(names[i]), "width": width, "height": height})
    for i in lab:
        vis = annotated[i]
        points = np.where(vis[:, None], kp[i], 0.0)
        flat = np.column_stack([points, np.where(vis, 2, 0)]).ravel().tolist()
        xs, ys = kp[i][vis, 0], kp[i][vis, 1]
        box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]
        annotations.append({"id": int(i) + 1, "image_id": int(i) + 1, "category_id": 1, "keypoints": flat,
                            "num_keypoints": int(vis.sum()), "bbox": box, "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": joints,
                "skeleton": [[a + 1, b + 1] for a, b in LSP.links]}  # fmt: skip
    path = folder / "project.json"
    write_atomic(
        path, json.dumps({"images": entries, "annotations": annotations, "categories": [category]}).encode()
    )
    return path


def _write_dlc(folder: Path, images: Path, names, kp, annotated, lab, cand, joints) -> Path:
    """A DeepLabCut project written as DeepLabCut writes one (sleap-io writes no DLC projects from image sets)."""
    video = folder / "labeled-data" / "lspet"
    video.mkdir(parents=True, exist_ok=True)
    for i in np.concatenate([lab, cand]):
        _link((images / names[i]).resolve(), video / names[i])
    columns = pd.MultiIndex.from_product(
        [[SCORER], joints, ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    values = np.where(annotated[lab][..., None], kp[lab], np.nan).reshape(len(lab), -1).astype(np.float32)
    table = pd.DataFrame(values.astype(np.float64), index=[f"labeled-data/lspet/{names[i]}" for i in lab],
                         columns=columns)  # fmt: skip
    write_atomic(video / f"CollectedData_{SCORER}.csv", table.to_csv().encode())
    config = ["Task: lspet", f"scorer: {SCORER}", "date: example", "multianimalproject: false", "bodyparts:",
              *[f"- {j}" for j in joints], "skeleton:", *[f"- - {joints[a]}\n  - {joints[b]}" for a, b in LSP.links],
              "video_sets: {}", ""]  # fmt: skip
    write_atomic(folder / "config.yaml", "\n".join(config).encode())
    return folder


def _write_sleap(folder: Path, coco: Path) -> Path:
    import sleap_io as sio

    folder.mkdir(parents=True, exist_ok=True)
    labels = sio.load_coco(str(coco), dataset_root=str(coco.parent / "images"))
    path = folder / "project.slp"
    sio.save_slp(labels, str(path))
    return path
