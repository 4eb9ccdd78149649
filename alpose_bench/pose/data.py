"""The in-memory form every dataset plugin produces, and the plugin base class.

A dataset is preprocessed once into arrays (uint8 images, float keypoints, visibility, a per-sample normaliser) so that
training and pool inference never decode image files. Plugins are registered under the entry-point group
``alpose_bench.datasets``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from alpose_bench.core.failures import UserFacingError
from alpose_bench.core.validation import ParameterError, check_fields, parse_value
from alpose_bench.pose.skeleton import Skeleton

Task = Literal["heatmap2d", "regression3d"]
MetricName = Literal["pckh", "pck", "mpjpe"]


class DatasetError(UserFacingError):
    """A dataset is missing, incomplete or malformed. The message says what and how to fix it (one line)."""


@dataclass(frozen=True)
class PoseSplit:
    """One split of a dataset, as arrays.

    images      (N, H, W, C) uint8; C = 3 for RGB, 1 for depth.
    keypoints   (N, J, 2) float32 pixel (x, y) in the image for 2D tasks;
                (N, J, 3) float32 millimetres relative to the hand centre for 3D tasks.
    visible     (N, J) bool: the joint is annotated (counts in metrics and losses).
    normalizer  (N,) float32: head-box diagonal (PCKh), torso size (PCK) or 1 (MPJPE).
    groups      (N,) int64 pose-mode id of each sample (synthetic data; -1 where unknown).
    """

    images: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    normalizer: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        for name in ("keypoints", "visible", "normalizer"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"PoseSplit.{name} has {len(getattr(self, name))} rows, images has {n}")
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"PoseSplit.images must be (N, H, W, C) uint8, got {self.images.dtype} {self.images.shape}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def group_ids(self) -> np.ndarray:
        """(N,) pose-mode ids, -1 for every sample of a dataset without modes."""
        return self.groups if self.groups is not None else np.full(len(self), -1, dtype=np.int64)

    def subset(self, index: np.ndarray) -> PoseSplit:
        """The samples at `index` (any numpy index), as a new split."""
        return PoseSplit(
            images=self.images[index],
            keypoints=self.keypoints[index],
            visible=self.visible[index],
            normalizer=self.normalizer[index],
            groups=None if self.groups is None else self.groups[index],
        )


@dataclass(frozen=True)
class PoseDataset:
    """A loaded dataset: its splits and what the engine needs to know to train and evaluate on it."""

    name: str
    task: Task
    skeleton: Skeleton
    metric: MetricName
    train: PoseSplit  # the active-learning pool (initial labelled set + unlabelled)
    test: PoseSplit
    ood: PoseSplit | None = None
    group_names: tuple[str, ...] = ()  # names of the ids in PoseSplit.groups
    group_prior: tuple[float, ...] = ()  # prior frequency of each group (synthetic data)
    cube_mm: float = 1.0  # 3D: half-size of the crop cube; regression targets are keypoints / cube_mm
    initial_index: np.ndarray | None = None  # fixed initial labelled set (e.g. LSP's 1,000 train images)
    info: dict = field(default_factory=dict)

    @property
    def resolution(self) -> int:
        """Side of the (square) images in pixels."""
        return int(self.train.images.shape[1])

    @property
    def channels(self) -> int:
        """Image channels: 3 (RGB) or 1 (depth)."""
        return int(self.train.images.shape[3])


@dataclass(frozen=True)
class DatasetConfig:
    """What the experiment asks of a dataset plugin."""

    resolution: int = 64
    pool_size: int | None = None  # None: the dataset's own size (synthetic default 5,000)
    test_size: int | None = None
    seed: int = 0  # the dataset's own generation seed (synthetic data); not the experiment's seed
    data_root: Path | None = None
    cache_dir: Path | None = None
    options: dict = field(default_factory=dict)


def parse_option_pairs(pairs: Iterable[str], flag: str = "--option") -> dict[str, Any]:
    """`KEY=VALUE` strings -> {KEY: VALUE}; values read by `validation.parse_value` (the grammar of
    `--sampler-param` too: TOML values, else the text as a string). The one parser of dataset options on the command line (`data --option`,
    `run --dataset-option`); the plugin then checks the keys and types (`DatasetPlugin.load`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = parse_value(value)
    return out


#: the held-out splits a model is evaluated on, in reading order: the test split, then the deployment split
#: (`PoseDataset.ood`) where a dataset has one
HELD_OUT_SPLITS = ("test", "ood")

ProgressFn = Callable[[int, int], None]  # (done, total)

#: the preset settings every 3-D hand dataset shares. `paper`: the ICVL schedule of the VL4Pose figure (100 + 9 x
#: 100 at 128 px). `quick` and `cpu`: the small 3D regressor is cheap per image but needs more epochs than the
#: hourglass to move off the mean pose, and a lower learning rate (1e-3 stalls it), so the hand track trains longer.
HAND_PRESETS: Mapping[str, Mapping[str, Any]] = {
    "paper": dict(resolution=128, init=100, budget=100, cycles=9),
    "quick": dict(epochs_first=100, epochs=20, lr=3e-4),
    "cpu": dict(epochs_first=100, epochs=20, lr=3e-4, init=100, budget=100, cycles=4),
}


@dataclass
class CheckReport:
    """What `alpose-bench data check` prints: rows (item, status, detail); usable when nothing is wrong."""

    dataset: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def reason(self) -> str:
        """The first problem (one line), or "" when usable."""
        return self.problems[0] if self.problems else ""

    def ok(self, item: str, detail: str = "") -> None:
        """Something present and well-formed."""
        self.rows.append((item, "ok", detail))

    def info(self, item: str, detail: str) -> None:
        """A figure about the data (counts, sizes)."""
        self.rows.append((item, "info", detail))

    def bad(self, item: str, status: str, detail: str) -> None:
        """Something missing or malformed: the dataset is not usable."""
        self.rows.append((item, status, detail))
        self.problems.append(detail if detail else f"{item}: {status}")


@dataclass(frozen=True)
class NoOptions:
    """The options of a dataset that has none."""


class DatasetPlugin(ABC):
    """Base class of a dataset plugin. Subclasses set the class variables and implement `load`.

    `options_class` is a dataclass whose fields are the dataset's options (defaults, types and ranges checked by
    `alpose_bench.core.validation`, as sampler parameters are); `check` and `prepare` back `alpose-bench data check` and
    `data prepare` (the defaults load the dataset)."""

    name: ClassVar[str]
    description: ClassVar[str]
    task: ClassVar[Task]
    skeleton: ClassVar[Skeleton]
    metric: ClassVar[MetricName]
    needs_data_root: ClassVar[bool] = False
    options_class: ClassVar[type] = NoOptions
    #: preset name -> experiment settings this dataset needs under that preset unless the experiment sets them
    preset_overrides: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @abstractmethod
    def load(self, config: DatasetConfig) -> PoseDataset:
        """Return the dataset, preprocessing into `config.cache_dir` on first use. Raise DatasetError on bad input."""

    def make_dataset(self, train: PoseSplit, test: PoseSplit, **fields: Any) -> PoseDataset:
        """A PoseDataset of this plugin (its name, task, skeleton and metric) with these splits and `fields`."""
        fields = {
            "name": self.name,
            "task": self.task,
            "skeleton": self.skeleton,
            "metric": self.metric,
            **fields,
        }
        return PoseDataset(train=train, test=test, **fields)

    def options(self, config: DatasetConfig) -> dict[str, Any]:
        """`config.options` checked against `options_class` and completed with its defaults (DatasetError)."""
        try:
            given = check_fields(
                self.options_class, config.options or {}, f"dataset {self.name!r}", what="option"
            )
        except ParameterError as exc:
            raise DatasetError(str(exc)) from None
        return dataclasses.asdict(self.options_class(**given))

    def conventions(self, dataset: PoseDataset) -> list[str]:
        """The evaluation conventions of a loaded dataset, in words (the report's header names them)."""
        return []

    def prepare(
        self, config: DatasetConfig, progress: ProgressFn | None = None, force: bool = False
    ) -> PoseDataset:
        """Build whatever `load` will read (a cache) and return the dataset; `force` rebuilds it."""
        return self.load(config)

    def check(self, config: DatasetConfig) -> CheckReport:
        """Is the dataset usable? The default loads it and reports the split sizes."""
        report = CheckReport(self.name)
        try:
            dataset = self.load(config)
        except DatasetError as exc:
            report.bad("dataset", "unusable", str(exc).splitlines()[0])
            return report
        report.ok("loaded", f"{dataset.name} ({dataset.task}, metric {dataset.metric})")
        for split_name in ("train", "test"):
            split = getattr(dataset, split_name)
            report.info(
                f"{split_name} people", f"{len(split):,} ({int(split.visible.sum()):,} annotated joints)"
            )
        return report


def default_cache_dir() -> Path:
    """Where preprocessed datasets are cached: $ALPOSE_CACHE or ~/.cache/alpose-bench."""
    import os

    return Path(os.environ.get("ALPOSE_CACHE", Path.home() / ".cache" / "alpose-bench"))
