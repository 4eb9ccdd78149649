"""The experiment specification, its presets, and TOML config files.

An `ExperimentSpec` fully determines an experiment: the same spec and seed give the same selections and metrics on
the same machine. It is built from a preset (`smoke`, `quick`, `paper`), then a TOML file, then command-line options,
each overriding the last; every value is validated here so that a bad one fails before any training starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpose_bench.data import DatasetConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """An invalid experiment specification; the message says which value and how to fix it (one line)."""


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines an experiment. `cycles` counts acquisition rounds: the model is trained cycles + 1
    times, on init, init + budget, ..., init + cycles x budget labelled images."""

    name: str = ""
    preset: str = "quick"
    datasets: tuple[str, ...] = ("synth-human",)
    samplers: tuple[str, ...] = ("all",)
    seeds: int = 3
    # data
    resolution: int = 64
    pool_size: int | None = None
    test_size: int | None = None
    dataset_seed: int = 0
    data_root: str | None = None
    # protocol
    init: int = 100
    budget: int = 100
    cycles: int = 4
    warm_start: bool = True
    # training
    epochs_first: int = 30
    epochs: int = 15
    lr: float = 3e-4
    batch_size: int = 16
    weight_decay: float = 0.0
    augment: bool = True
    # model
    stacks: int = 1
    channels: int = 64
    depth: int = 3
    stem_stride: int = 4  # hourglass heatmaps are input / stem_stride pixels (4: the reference)
    regressor_width: int = 16  # 3D regressor: channels of the first conv stage
    regressor_fc: int = 256  # 3D regressor: width of its fully connected layers
    sigma: float = 1.0  # target Gaussian width in heatmap pixels
    amplitude: float = 30.0  # target peak height (reference hm_peak)
    # execution
    device: str = "auto"
    eval_batch_size: int = 64
    sampler_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # dataset -> its options (DatasetConfig.options), e.g. {"synth-hand": {"cube_mm": 150}}
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["datasets"] = list(self.datasets)
        d["samplers"] = list(self.samplers)
        return d

    def fingerprint(self) -> str:
        """A hash of everything that changes results (not the name, device or batch size of inference)."""
        d = self.to_dict()
        for k in ("name", "device", "eval_batch_size"):
            d.pop(k)
        if not d["dataset_options"]:  # experiments from before dataset options keep their fingerprint
            d.pop("dataset_options")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def seed_values(self) -> list[int]:
        return list(range(self.seeds))

    def replace(self, **changes: Any) -> ExperimentSpec:
        return dataclasses.replace(self, **changes)


SPEC_FIELDS = {f.name: f for f in dataclasses.fields(ExperimentSpec)}
MAX_SEEDS = 1000  # a guard against a mistyped --seeds (each seed is a full run of every sampler)
# the dataset_options key of options for every dataset of the run (`--dataset-option KEY=VALUE`)
ALL_DATASETS = "*"

# Each preset is a set of overrides on the ExperimentSpec defaults. `paper` is refined per dataset below.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        resolution=64, pool_size=120, test_size=40, init=16, budget=16, cycles=2, epochs_first=2, epochs=1,
        stacks=1, channels=16, depth=2, batch_size=16, seeds=1, regressor_width=8, regressor_fc=64,
    ),
    "quick": dict(
        resolution=64, pool_size=1200, test_size=400, init=100, budget=100, cycles=4, epochs_first=40,
        epochs=3, stacks=1, channels=32, depth=3, stem_stride=2, lr=1e-3, batch_size=16, sigma=1.0, seeds=3,
    ),
    "paper": dict(
        resolution=256, pool_size=None, test_size=None, init=1000, budget=1000, cycles=5, epochs_first=150,
        epochs=100, stacks=2, channels=256, depth=4, batch_size=16, lr=3e-4, sigma=1.75, amplitude=30.0, seeds=5,
        regressor_width=32, regressor_fc=1024,
    ),
}  # fmt: skip

PRESET_DESCRIPTIONS = {
    "smoke": "Seconds: tiny model and pool, 2 cycles, 1 seed (tests and plumbing checks).",
    "quick": "The CPU default: 64 px, 1-stack 32-channel hourglass (32x32 heatmaps), 100 + 4 x 100, 3 seeds.",
    "paper": "The published protocol: 256 px, 2-stack 256-ch hourglass, 1,000 + 5 x 1,000, Adam 3e-4, 150/100 epochs.",
}

# Sampler parameters a preset sets unless the user sets them. The quick CPU preset caps the pool EGL++ scores (its
# per-image cost is a forward pass plus k = 30 gradient computations); the paper preset scores the whole pool.
PRESET_SAMPLER_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"egl": {"candidates": 16}},
    "quick": {"egl": {"candidates": 50}},
    "paper": {},
}

# Dataset-specific settings of a preset, applied unless set explicitly. `paper`: the ICVL schedule of the VL4Pose
# figure (100 + 9 x 100 at 128 px). `quick`: the small 3D regressor is cheap per image but needs more epochs than the
# hourglass to move off the mean pose, and a lower learning rate (1e-3 stalls it), so the hand track trains longer.
DATASET_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "icvl": dict(resolution=128, init=100, budget=100, cycles=9),
        "synth-hand": dict(resolution=128, init=100, budget=100, cycles=9),
    },
    "quick": {
        "icvl": dict(epochs_first=100, epochs=20, lr=3e-4),
        "synth-hand": dict(epochs_first=100, epochs=20, lr=3e-4),
    },
}


def preset_values(preset: str) -> dict[str, Any]:
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}. Known presets: {', '.join(PRESETS)}.")
    return dict(PRESETS[preset])


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
    """Check the type of one value against the ExperimentSpec field it sets."""
    if name not in SPEC_FIELDS:
        close = [k for k in SPEC_FIELDS if k.startswith(name[:3])]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting {name!r}{hint}; known settings: {', '.join(SPEC_FIELDS)}")
    default = SPEC_FIELDS[name].default
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
    if name in ("pool_size", "test_size", "data_root", "name") and value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) or name in ("pool_size", "test_size"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str) or name == "data_root":
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        if "\0" in value:
            raise ConfigError(f"{name} must not contain a NUL character, got {value!r}")
        return value
    return value


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
    """Reject values no experiment can run with (checks that need the registry/dataset are done by the planner)."""
    positive = ("seeds", "resolution", "init", "budget", "batch_size", "channels", "stacks", "depth",
                "eval_batch_size", "epochs_first", "regressor_width", "regressor_fc")  # fmt: skip
    for name in positive:
        if getattr(spec, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(spec, name)}")
    for name in ("cycles", "epochs", "weight_decay"):
        if getattr(spec, name) < 0:
            raise ConfigError(f"{name} must be zero or positive, got {getattr(spec, name)}")
    for name in ("lr", "sigma", "amplitude", "weight_decay"):
        if not math.isfinite(getattr(spec, name)):
            raise ConfigError(f"{name} must be a finite number, got {getattr(spec, name)}")
    if spec.seeds > MAX_SEEDS:
        raise ConfigError(f"seeds must be at most {MAX_SEEDS}, got {spec.seeds}")
    for name in ("pool_size", "test_size"):
        v = getattr(spec, name)
        if v is not None and v <= 0:
            raise ConfigError(f"{name} must be positive, got {v}")
    if not spec.lr > 0:
        raise ConfigError(f"lr must be positive, got {spec.lr}")
    if spec.sigma <= 0 or spec.amplitude <= 0:
        raise ConfigError("sigma and amplitude must be positive")
    if spec.resolution % 16 != 0 or spec.resolution < 32:
        raise ConfigError(f"resolution must be a multiple of 16 and at least 32, got {spec.resolution}")
    if spec.stem_stride not in (2, 4):
        raise ConfigError(f"stem_stride must be 4 (the reference) or 2, got {spec.stem_stride}")
    r = spec.stem_stride
    if spec.resolution % (r * 2**spec.depth) != 0:
        fits = [d for d in range(1, 8) if spec.resolution % (r * 2**d) == 0]
        raise ConfigError(
            f"depth {spec.depth} does not fit {spec.resolution}-px input (it must be a multiple of {r} x 2^depth); "
            f"use depth <= {max(fits) if fits else 1}"
        )
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec.device):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {spec.device!r}")
    if "all" in spec.samplers and len(spec.samplers) > 1:
        raise ConfigError("use either 'all' or a list of sampler names, not both")
    if spec.name in (".", "..") or any(c in spec.name for c in "/\\\0"):
        raise ConfigError(f"name must be a plain folder name (no '/', '\\' or '..'), got {spec.name!r}")
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
    # some preset settings depend on the dataset (DATASET_OVERRIDES) unless set explicitly
    explicit = set(file_values) | {k for k, v in (overrides or {}).items() if v is not None}
    datasets = _coerce("datasets", values.get("datasets", ExperimentSpec.datasets))
    overrides_for = DATASET_OVERRIDES.get(preset, {})
    if len(datasets) == 1 and datasets[0] in overrides_for:
        for k, v in overrides_for[datasets[0]].items():
            if k not in explicit:
                values[k] = v
    coerced = {k: _coerce(k, v) for k, v in values.items()}
    # dataset options merge per dataset and per key (preset < file < command line); "*" means every dataset
    layers = [file_values.get("dataset_options"), (overrides or {}).get("dataset_options")]
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
    """`vl4pose.num_peaks=3` -> {"vl4pose": {"num_peaks": 3}}; values parsed as TOML scalars."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        sampler, dot, param = key.partition(".")
        if not sep or not dot or not sampler or not param:
            raise ConfigError(
                f"--sampler-param {item!r} must look like SAMPLER.PARAM=VALUE, e.g. vl4pose.num_peaks=3"
            )
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out.setdefault(sampler.strip(), {})[param.strip()] = value
    return out


def parse_dataset_options(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """`--dataset-option` values: `KEY=VALUE` sets an option of every dataset of the run, `DATASET.KEY=VALUE` of
    one; values are read as `data --option` reads them (`alpose_bench.data.parse_option_pairs`)."""
    from alpose_bench.data import parse_option_pairs

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


def load_dataset_from_spec(spec: dict[str, Any] | ExperimentSpec, dataset_name: str):
    """Load one dataset of an experiment exactly as the run did (for plots and diagnostics); `spec` may be the
    dictionary an experiment stored (keys of older versions' specs are a subset of today's)."""
    from alpose_bench.registry import get_dataset

    if not isinstance(spec, ExperimentSpec):
        spec = ExperimentSpec(**{k: v for k, v in spec.items() if k in SPEC_FIELDS})
    return get_dataset(dataset_name)().load(dataset_config(spec, dataset_name))
