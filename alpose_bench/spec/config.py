"""The experiment specification, its presets, and TOML config files.

An `ExperimentSpec` fully determines an experiment: the same spec and seed give the same selections and metrics on
the same machine. It is built from a preset (`smoke`, `quick`, `paper`), then a TOML file, then command-line options,
each overriding the last; every value is validated here so that a bad one fails before any training starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from alpose_bench.core.failures import UserFacingError
from alpose_bench.core.validation import ParameterError, check_fields, param, parse_value
from alpose_bench.pose.data import DatasetConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(UserFacingError, ValueError):
    """An invalid experiment specification; the message says which value and how to fix it (one line)."""


MAX_SEEDS = 1000  # a guard against a mistyped --seeds (each seed is a full run of every sampler)
DEFAULT_EVAL_BATCH_SIZE = 64
#: the 2D pose model families: the from-scratch hourglass, then one per pretrained backbone
#: (`alpose_bench.pose.models.BACKBONES`)
ModelFamily = Literal["hourglass", "mobilenet-v2", "efficientnet-lite0"]
MODEL_FAMILIES: tuple[str, ...] = get_args(ModelFamily)
#: what dropout drops (`alpose_bench.pose.models.dropout.LAYERS`): single units or whole feature maps
DropoutKind = Literal["element", "channel"]
DROPOUT_KINDS: tuple[str, ...] = get_args(DropoutKind)

#: names that stand for a group of samplers in `samplers`; those a dataset's task or model cannot run are left out
SAMPLER_GROUPS = ("default", "all")


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines an experiment. `cycles` counts acquisition rounds: the model is trained cycles + 1
    times, on init, init + budget, ..., init + cycles x budget labelled images.

    The defaults are the `quick` preset (the CPU default); the other presets override some of them (`PRESETS`).
    Each field's type and range is checked by `alpose_bench.core.validation` when a spec is built."""

    name: str = ""
    preset: str = "quick"
    datasets: tuple[str, ...] = ("synth-human",)
    samplers: tuple[str, ...] = ("default",)  # a group (`registry.group_members`) or a list of names
    seeds: int = param(3, low=0, low_open=True)
    # data
    resolution: int = param(64, low=0, low_open=True)
    pool_size: int | None = param(1200, low=0, low_open=True)  # None: the dataset's own pool
    test_size: int | None = param(400, low=0, low_open=True)  # None: the dataset's own test split
    dataset_seed: int = param(0, low=0)
    data_root: str | None = None
    # protocol
    init: int = param(100, low=0, low_open=True)
    budget: int = param(100, low=0, low_open=True)
    cycles: int = param(4, low=0)
    warm_start: bool = True
    # "pool": rank the whole unlabelled pool each cycle (the published protocol); "stream": frames arrive in chunks
    # and the device decides on each as it arrives (on-device active learning, `alpose_bench.engine.stream`)
    protocol: Literal["pool", "stream"] = "pool"
    stream_order: Literal["deployment", "shuffled", "drift"] = "deployment"
    stream_chunk: int | None = param(None, low=0, low_open=True)  # frames per chunk (None: the pool / cycles)
    label_rate: float | None = param(None, low=0, high=1, low_open=True)  # labels per frame (None: budget / chunk)
    budget_manager: str = "balanced"  # a registered stream budget manager (fixed, quantile, balanced)
    stream_window: int = param(100, low=0, low_open=True)  # recent scores a running threshold reads
    stream_buffer: int = param(100, low=0, low_open=True)  # frames a buffered sampler holds and selects among
    # training
    epochs_first: int = param(40, low=0, low_open=True)
    epochs: int = param(3, low=0)
    lr: float = param(1e-3, low=0, low_open=True)
    # "constant": Adam at lr throughout (the reference's start; it halves lr on a validation plateau that is the
    # test set, which this benchmark does not do); "one-cycle": lr warms up to `lr` and anneals to ~0 over each
    # cycle's training (Smith's 1cycle), the usual schedule for a head on a pretrained backbone
    lr_schedule: Literal["constant", "one-cycle"] = "constant"
    # the auxiliary heads' learning rate (None: lr). A head on a pretrained backbone's unnormalised features
    # diverges at the lr its pose head trains well with (its log-variance overflows within a few steps)
    head_lr: float | None = param(None, low=0, low_open=True)
    batch_size: int = param(16, low=0, low_open=True)
    weight_decay: float = param(0.0, low=0)
    augment: bool = True
    # model: the from-scratch stacked hourglass of the published protocol, or a heatmap head on an ImageNet-pretrained
    # backbone (the practitioners' regime, `MODEL_FAMILIES`); `channels` is the hourglass's width or the head's
    model: ModelFamily = "hourglass"
    backbone_weights: Literal["imagenet", "random"] = "imagenet"  # pretrained models: the backbone's start
    # pretrained models: the last backbone blocks trained (0: frozen); a frozen backbone's outputs are computed once
    # per dataset and read back (feature_cache), and training then flips only
    trainable_blocks: int = param(0, low=0, high=19)
    feature_cache: bool = True
    stacks: int = param(1, low=0, low_open=True)
    channels: int = param(32, low=0, low_open=True)
    depth: int = param(3, low=0, low_open=True)
    stem_stride: Literal[2, 4] = 2  # hourglass heatmaps are input / stem_stride pixels (4: the reference)
    regressor_width: int = param(16, low=0, low_open=True)  # 3D regressor: channels of the first conv stage
    regressor_fc: int = param(256, low=0, low_open=True)  # 3D regressor: width of its fully connected layers
    # 2D models: dropout before each heatmap head (0 = none, the reference; MC dropout samplers need it > 0)
    dropout: float = param(0.0, low=0, high=1, high_open=True)
    # what dropout drops: single units ("element", the reference's nn.Dropout) or whole feature maps ("channel",
    # spatial dropout; the pretrained preset's: within 0.4 PCK there and 19 % cheaper to train, docs/protocol-search.md)
    dropout_kind: DropoutKind = "element"
    sigma: float = param(1.0, low=0, low_open=True)  # target Gaussian width in heatmap pixels
    amplitude: float = param(30.0, low=0, low_open=True)  # target peak height (reference hm_peak)
    # execution
    device: str = "auto"
    eval_batch_size: int = param(DEFAULT_EVAL_BATCH_SIZE, low=0, low_open=True)
    # speed settings that change the numbers in the last digits (alpose_bench.core.compute); `run` stores "auto" resolved
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the device computes it natively
    fast_kernels: bool = True  # channels_last weights and inputs, fused Adam
    sampler_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # dataset -> its options (DatasetConfig.options), e.g. {"synth-hand": {"cube_mm": 150}}
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (what the results database stores)."""
        d = dataclasses.asdict(self)
        d["datasets"] = list(self.datasets)
        d["samplers"] = list(self.samplers)
        return d

    def fingerprint(self) -> str:
        """A hash of everything that changes results (not the name or the device).

        Settings added after the first experiments were stored count only when they differ from the value those
        experiments ran with (`LEGACY`), so folders written before them keep their fingerprint: `dataset_options`
        when set, `eval_batch_size` (every scoring sampler's scores change in the last digits with the inference
        batch) when not 64, `precision` when not fp32, `fast_kernels` when on."""
        d = self.to_dict()
        for k in ("name", "device"):
            d.pop(k)
        for k, legacy in LEGACY.items():
            if d[k] == legacy:
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def protocol_fingerprint(self) -> str:
        """A hash of the protocol alone — data, model, budgets, training, evaluation — without the lists that an
        experiment may grow by (`GROWS`: samplers, seeds, sampler parameters): two specs with the same protocol
        fingerprint can share one results folder."""
        d = self.to_dict()
        for k in ("name", "device", *GROWS):
            d.pop(k)
        for k, legacy in LEGACY.items():
            if d[k] == legacy:
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> ExperimentSpec:
        """The spec an experiment stored (its keys may be a subset of today's: the missing ones take the value
        those experiments ran with, `LEGACY`, or today's default)."""
        known = {k: v for k, v in stored.items() if k in SPEC_FIELDS}
        known = {**{k: v for k, v in LEGACY.items() if k not in stored}, **known}
        known["datasets"] = tuple(known.get("datasets", cls().datasets))
        known["samplers"] = tuple(known.get("samplers", cls().samplers))
        return cls(**known)

    @property
    def trained_cycles(self) -> int:
        """Cycles a task trains and commits: cycle 0 on the initial set, then one per acquisition (`trained_cycles`)."""
        return trained_cycles(self.cycles)

    def seed_values(self) -> list[int]:
        """The seeds of the experiment: 0 .. seeds - 1."""
        return list(range(self.seeds))

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def trained_cycles(acquisitions: int) -> int:
    """The one fact about the schedule every count reads: a task commits cycle 0 and one cycle per acquisition; the
    last of them (cycle == acquisitions) trains and evaluates but selects nothing."""
    return acquisitions + 1


SPEC_FIELDS = {f.name: f for f in dataclasses.fields(ExperimentSpec)}
#: what an experiment may grow by without becoming another experiment: more samplers, more seeds (and the
#: parameters of the samplers added)
GROWS = ("samplers", "seeds", "sampler_params")
#: fields added after experiments were first stored, and the value those experiments ran with: left out of the
#: fingerprint at that value, and taken when an experiment stored without the field is resumed
LEGACY: dict[str, Any] = {
    "dataset_options": {},
    "eval_batch_size": DEFAULT_EVAL_BATCH_SIZE,
    "precision": "fp32",
    "fast_kernels": False,
    "dropout": 0.0,
    "dropout_kind": "element",
    "model": "hourglass",
    "backbone_weights": "imagenet",
    "trainable_blocks": 0,
    "feature_cache": True,
    "head_lr": None,
    "lr_schedule": "constant",
    "protocol": "pool",
    "stream_order": "deployment",
    "stream_chunk": None,
    "label_rate": None,
    "budget_manager": "balanced",
    "stream_window": 100,
    "stream_buffer": 100,
}
#: the settings that only the stream protocol reads
STREAM_SETTINGS = ("stream_order", "stream_chunk", "label_rate", "budget_manager", "stream_window", "stream_buffer")
# the dataset_options key of options for every dataset of the run (`--dataset-option KEY=VALUE`)
ALL_DATASETS = "*"


@dataclass(frozen=True)
class Preset:
    """A named starting point of an experiment: overrides on the ExperimentSpec defaults (which are `quick`'s), the
    dataset options it sets unless the experiment does, and one line that says what it is (`list`, `--help`).
    Settings that depend on the dataset as well live with the dataset (`DatasetPlugin.preset_overrides`)."""

    name: str
    description: str
    values: Mapping[str, Any] = field(default_factory=dict)
    dataset_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# synth-human's `ood` split becomes the deployment distribution in quick and cpu: the pool's look with the pose-mode
# prior reversed (the rare modes common), so a sampler that seeks the rare modes is measured where they matter, beside
# the in-distribution test split (docs/protocol-search.md)
_DEPLOYMENT_SPLIT = {"synth-human": {"ood_appearance": "pool"}}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "smoke", "Seconds: tiny model and pool, 2 cycles, 1 seed (tests and plumbing checks).",
        dict(pool_size=120, test_size=40, init=16, budget=16, cycles=2, epochs_first=2, epochs=1, channels=16, depth=2,
             stem_stride=4, lr=3e-4, seeds=1, regressor_width=8, regressor_fc=64),
    ),
    Preset(
        "quick", "The CPU default: 64 px, 1-stack 32-channel hourglass (32x32 heatmaps), 100 + 4 x 100, 3 seeds.",
        dataset_options=_DEPLOYMENT_SPLIT,
    ),
    # the published regime on a 2-core CPU, found by measurement (docs/protocol-search.md): competent models, budgets
    # of hundreds, dropout for the MC samplers
    Preset(
        "cpu", "The published regime on a CPU: 300 + 3 x 300 (lspet 500 + 2 x 500), 30/6 epochs, dropout 0.2, 3 seeds.",
        dict(pool_size=2000, test_size=400, init=300, budget=300, cycles=3, epochs_first=30, epochs=6, dropout=0.2),
        dataset_options=_DEPLOYMENT_SPLIT,
    ),
    # the practitioners' regime on a 2-core CPU (issue 20, docs/protocol-search.md): a heatmap head on the frozen
    # ImageNet MobileNetV2 whose features are cached once per dataset; 2D datasets
    Preset(
        "pretrained", "The practitioners' regime on a CPU: a head on the frozen ImageNet MobileNetV2, 192 px, 300 + 3 x "
        "300 (lspet 500 + 2 x 500), one-cycle 30/8 epochs, channel dropout 0.2, 3 seeds; 2D datasets.",
        dict(model="mobilenet-v2", resolution=192, channels=64, lr=1e-2, head_lr=1e-3, lr_schedule="one-cycle",
             sigma=2.0, dropout=0.2, dropout_kind="channel", pool_size=2000, test_size=400, init=300, budget=300,
             cycles=3, epochs_first=30, epochs=8),
        dataset_options=_DEPLOYMENT_SPLIT,
    ),
    Preset(
        "paper", "The published protocol: 256 px, 2-stack 256-ch hourglass, 1,000 + 5 x 1,000, Adam 3e-4, 150/100 "
        "epochs.",
        dict(resolution=256, pool_size=None, test_size=None, init=1000, budget=1000, cycles=5, epochs_first=150,
             epochs=100, stacks=2, channels=256, depth=4, stem_stride=4, lr=3e-4, sigma=1.75, amplitude=30.0, seeds=5,
             regressor_width=32, regressor_fc=1024),
    ),
)}  # fmt: skip


def preset_help(default: str | None = "quick") -> str:
    """The --preset help text, from the presets themselves."""
    return " | ".join(PRESETS) + (
        f" (default: {default}; `alpose-bench list` says what each is)." if default else "."
    )


def preset_values(preset: str) -> dict[str, Any]:
    """The spec values a preset sets (ConfigError for an unknown name)."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}. Known presets: {', '.join(PRESETS)}.")
    return dict(PRESETS[preset].values)


def dataset_preset_values(preset: str, dataset: str) -> dict[str, Any]:
    """What `dataset` itself sets under `preset` (`DatasetPlugin.preset_overrides`); {} for a dataset not
    installed here (planning names it then)."""
    from alpose_bench.spec.registry import get_dataset

    try:
        plugin = get_dataset(dataset)
    except (LookupError, ImportError):
        return {}
    return dict(getattr(plugin, "preset_overrides", {}).get(preset, {}))


#: the longest experiment name: a folder name, with room for the files and suffixes inside it (255 on most systems)
MAX_NAME_BYTES = 200


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read an experiment TOML file (keys of ExperimentSpec, optionally under [experiment], sampler parameters under
    [sampler_params.NAME], dataset options under [dataset_options.NAME])."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; pass the path of an existing .toml file"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"config file {path} nests tables or arrays too deeply to read; an experiment file needs two levels"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if "experiment" in data:
        if not isinstance(data["experiment"], dict):
            raise ConfigError(f"config file {path}: 'experiment' must be a table ([experiment])")
        tables = ("sampler_params", "dataset_options")
        extra = {k: v for k, v in data.items() if k not in ("experiment", *tables)}
        if extra:
            raise ConfigError(
                f"config file {path}: unexpected top-level keys {sorted(extra)} beside [experiment]"
            )
        merged = dict(data["experiment"])
        for table in tables:
            if table in data:
                if table in merged:
                    raise ConfigError(
                        f"config file {path}: {table} is set both in [experiment] and as [{table}]"
                    )
                merged[table] = data[table]
        data = merged
    return data


def _coerce(name: str, value: Any) -> Any:
    """Check one value against the ExperimentSpec field it sets (`alpose_bench.core.validation`), normalised."""
    if name not in SPEC_FIELDS:
        close = difflib.get_close_matches(name, list(SPEC_FIELDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting {name!r}{hint}; known settings: {', '.join(SPEC_FIELDS)}")
    if name in ("datasets", "samplers"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a non-empty list of names, got {value!r}")
        return tuple(dict.fromkeys(value))  # a name given twice runs once
    if name in ("sampler_params", "dataset_options"):
        what = (
            "sampler names to tables of parameters"
            if name == "sampler_params"
            else "dataset names to tables of options"
        )
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ConfigError(f"{name} must map {what}, e.g. [{name}.NAME]")
        for owner, table in value.items():
            for key, v in table.items():
                _check_plain(f"{name}.{owner}.{key}", v)
        return {k: dict(v) for k, v in value.items()}
    try:
        return check_fields(ExperimentSpec, {name: value}, "")[name]
    except ParameterError as exc:
        raise ConfigError(str(exc)) from None


def _check_plain(where: str, value: Any) -> None:
    """Sampler parameters and dataset options are stored as JSON: TOML dates and times cannot be one."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(f"{where}.{k}", v)
    elif isinstance(value, list):
        for v in value:
            _check_plain(where, v)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"{where} must be a number, string, true/false or a list of them, got {value!r}")


def validate(spec: ExperimentSpec) -> ExperimentSpec:
    """Reject values no experiment can run with: every field against its type and range, then the checks across
    fields (the checks that need the registry or a dataset are the planner's)."""
    for name, value in spec.to_dict().items():
        _coerce(name, value)
    if spec.seeds > MAX_SEEDS:
        raise ConfigError(f"seeds must be at most {MAX_SEEDS}, got {spec.seeds}")
    if spec.resolution % 16 != 0 or spec.resolution < 32:
        raise ConfigError(f"resolution must be a multiple of 16 and at least 32, got {spec.resolution}")
    if spec.channels < 8 or spec.channels % 4:
        raise ConfigError(f"channels must be a multiple of 4 and at least 8, got {spec.channels}")
    if spec.model != "hourglass" and spec.resolution % 32:
        raise ConfigError(
            f"the {spec.model} model needs a resolution that is a multiple of 32, got {spec.resolution}"
        )
    r = spec.stem_stride
    if spec.model == "hourglass" and spec.resolution % (r * 2**spec.depth) != 0:
        fits = [d for d in range(1, 8) if spec.resolution % (r * 2**d) == 0]
        raise ConfigError(
            f"depth {spec.depth} does not fit {spec.resolution}-px input (it must be a multiple of {r} x 2^depth); "
            f"use depth <= {max(fits) if fits else 1}"
        )
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec.device):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {spec.device!r}")
    for group in SAMPLER_GROUPS:
        if group in spec.samplers and len(spec.samplers) > 1:
            raise ConfigError(f"use either {group!r} or a list of sampler names, not both")
    if spec.name in (".", "..") or any(c in spec.name for c in "/\\\0"):
        raise ConfigError(f"name must be a plain folder name (no '/', '\\' or '..'), got {spec.name!r}")
    if len(spec.name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(
            f"name is {len(spec.name.encode())} bytes long; an experiment name has at most {MAX_NAME_BYTES} "
            "(it is a folder name)"
        )
    if spec.protocol == "pool":
        changed = [k for k in STREAM_SETTINGS if getattr(spec, k) != LEGACY[k]]
        if changed:
            named = ", ".join(f"{k} (--{k.replace('_', '-')})" for k in changed)
            raise ConfigError(
                f"{named} {'applies' if len(changed) == 1 else 'apply'} only to the stream protocol; add --protocol "
                "stream or drop them"
            )
    for dataset in spec.dataset_options:
        if dataset not in spec.datasets:
            raise ConfigError(
                f"dataset options name dataset {dataset!r}, which is not in this run ({', '.join(spec.datasets)})"
            )
    return spec


def build_spec(
    preset: str = "quick",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """Preset, then config file, then overrides (None values in overrides are ignored)."""
    values: dict[str, Any] = {}
    file_values = read_toml(config_file) if config_file else {}
    preset = (
        file_values.pop("preset", preset) if overrides is None or overrides.get("preset") is None else preset
    )
    values.update(preset_values(preset))
    values.update(file_values)
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    values["preset"] = preset
    # some preset settings depend on the dataset (`DatasetPlugin.preset_overrides`) unless set explicitly
    explicit = set(file_values) | {k for k, v in (overrides or {}).items() if v is not None}
    datasets = _coerce("datasets", values.get("datasets", ExperimentSpec.datasets))
    if len(datasets) == 1:
        for k, v in dataset_preset_values(preset, datasets[0]).items():
            if k not in explicit:
                values[k] = v
    coerced = {k: _coerce(k, v) for k, v in values.items()}
    # dataset options merge per dataset and per key (preset < file < command line); "*" means every dataset
    preset_layer = {d: o for d, o in PRESETS[preset].dataset_options.items() if d in datasets}
    layers = [preset_layer, file_values.get("dataset_options"), (overrides or {}).get("dataset_options")]
    coerced["dataset_options"] = {}
    for layer in layers:
        for target, options in (_coerce("dataset_options", layer) if layer is not None else {}).items():
            for dataset in datasets if target == ALL_DATASETS else [target]:
                coerced["dataset_options"].setdefault(dataset, {}).update(options)
    spec = ExperimentSpec(**coerced)
    if not spec.name:
        spec = spec.replace(name=f"{'+'.join(spec.datasets)}-{spec.preset}")
    return validate(spec)


def parse_sampler_params(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """`vl4pose.num_peaks=3` -> {"vl4pose": {"num_peaks": 3}}; values read by `validation.parse_value`."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        sampler, dot, param = key.partition(".")
        if not sep or not dot or not sampler or not param:
            raise ConfigError(
                f"--sampler-param {item!r} must look like SAMPLER.PARAM=VALUE, e.g. vl4pose.num_peaks=3"
            )
        out.setdefault(sampler.strip(), {})[param.strip()] = parse_value(raw)
    return out


def parse_dataset_options(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """`--dataset-option` values: `KEY=VALUE` sets an option of every dataset of the run, `DATASET.KEY=VALUE` of
    one; values are read as `data --option` reads them (`alpose_bench.pose.data.parse_option_pairs`)."""
    from alpose_bench.pose.data import parse_option_pairs

    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_option_pairs(items, "--dataset-option").items():
        dataset, dot, option = key.rpartition(".")
        if dot and not (dataset.strip() and option.strip()):
            raise ConfigError(f"--dataset-option expects KEY=VALUE or DATASET.KEY=VALUE, got {key!r}")
        out.setdefault(dataset.strip() if dot else ALL_DATASETS, {})[option.strip()] = value
    return out


def dataset_config(spec: ExperimentSpec, dataset: str | None = None) -> DatasetConfig:
    """What `spec` asks of a dataset; with its name, the options the spec sets for it (`dataset_options`).

    The data root is the spec's, else $ALPOSE_DATA_ROOT."""
    root = spec.data_root or os.environ.get("ALPOSE_DATA_ROOT")
    return DatasetConfig(
        resolution=spec.resolution,
        pool_size=spec.pool_size,
        test_size=spec.test_size,
        seed=spec.dataset_seed,
        data_root=Path(root).expanduser() if root else None,
        options=dict(spec.dataset_options.get(dataset, {})) if dataset else {},
    )
