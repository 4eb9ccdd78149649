"""A suggest model saved for the next round (`--save-model`, `--model PATH`): weights, heads and what they fit.

The file is a plain dict of tensors, numbers and strings, read back with `torch.load(weights_only=True)` (no code
runs on loading), and checked against the project: its keypoint names and links must be the project's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alpose_bench.core.atomic import write_atomic
from alpose_bench.suggest.project import Project, ProjectError

FORMAT = "alpose-bench suggest model"
VERSION = 1
#: the spec fields that define the architecture and input of a saved model
ARCHITECTURE = ("model", "resolution", "channels", "stacks", "depth", "stem_stride", "dropout", "dropout_kind",
                "backbone_weights", "trainable_blocks", "sigma", "amplitude", "lr", "head_lr", "batch_size")  # fmt: skip


@dataclass(frozen=True)
class SavedModel:
    """A loaded model file: the spec fields of its architecture, the pose model's and heads' weights."""

    spec: dict[str, Any]
    joints: tuple[str, ...]
    model: dict[str, torch.Tensor]
    heads: dict[str, dict[str, torch.Tensor]]


def save_model_file(
    path: Path, spec: Any, project: Project, model: torch.nn.Module, heads: dict[str, Any]
) -> Path:
    """Write the trained model and heads of a suggest run to `path` atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": {k: getattr(spec, k) for k in ARCHITECTURE},
        "joints": list(project.skeleton.joints),
        "links": [list(link) for link in project.skeleton.links],
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "heads": {n: {k: v.detach().cpu() for k, v in h.state_dict().items()} for n, h in heads.items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_atomic(path, buffer.getvalue())


def load_model_file(path: Path, project: Project) -> SavedModel:
    """The model saved at `path`, checked against `project` (ProjectError: unreadable, foreign or another
    skeleton)."""
    path = Path(path)
    if not path.is_file():
        raise ProjectError(
            f"--model {path}: no such file; give a file written by --save-model, or a model family"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything torch cannot load safely is not our file
        raise ProjectError(
            f"--model {path} cannot be loaded as weights ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ProjectError(f"--model {path} is not a model written by `alpose-bench suggest --save-model`")
    if payload.get("version") != VERSION:
        raise ProjectError(
            f"--model {path} is format version {payload.get('version')}; this version reads {VERSION}"
        )
    joints = tuple(payload["joints"])
    if joints != project.skeleton.joints:
        raise ProjectError(
            f"--model {path} was trained on {len(joints)} keypoints ({', '.join(joints)}); this project has "
            f"{project.skeleton.num_joints} ({', '.join(project.skeleton.joints)}); train a new model (drop --model)"
        )
    if [tuple(x) for x in payload["links"]] != list(project.skeleton.links):
        raise ProjectError(
            f"--model {path} was trained with other skeleton edges than this project declares; drop --model"
        )
    return SavedModel(
        spec=dict(payload["spec"]), joints=joints, model=payload["model"], heads=payload["heads"]
    )
