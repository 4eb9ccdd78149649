"""Fuzzing the validation of `alpose-bench run`: random command lines and config files either pass validation or
stop with the one-line error (exit status 2, last line `Error: ...`), never with a traceback.

Only validation runs: `run_plan` (training) is replaced by a stub, synthetic datasets are built from one blank sample
(so a valid pool of any size is instant) and never written to the cache, and the real datasets find no data (no
data root, no shared/data fallback). Everything else — option parsing, `build_spec`, the planner's registry
look-ups, dataset option checks, sampler parameter checks, budget vs pool, the results folder — is the real code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alpose_bench.cli import cli
from alpose_bench.engine import build
from alpose_bench.spec import registry
from alpose_bench.spec.config import PRESETS, SPEC_FIELDS, ConfigError, build_spec

# ALPOSE_FUZZ_EXAMPLES=2000 searches longer (the default keeps the file under 30 s on a 2-core CPU)
FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("ALPOSE_FUZZ_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DATASETS = ["synth-human", "synth-hand", "mpii", "lsp", "lsp-rendered", "icvl", "coco"]
DATASET_OPTIONS = ["ood_size", "cube_mm", "crop_scale", "workers", "bogus"]


def _sampler_names() -> list[str]:
    return sorted(registry.working_samplers())


def _sampler_param_names(name: str) -> list[str]:
    """The sampler's real parameters (its dataclass fields) and one it does not have."""
    cls = registry.get_sampler(name)
    return (
        [*(f.name for f in dataclasses.fields(cls) if f.init), "bogus"]
        if dataclasses.is_dataclass(cls)
        else ["bogus"]
    )


@st.composite
def sampler_param(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> tuple[str, str, Any]:
    """(sampler, parameter, value): mostly a real parameter of a real sampler, so that its own checks run."""
    sampler = draw(st.sampled_from([*_sampler_names(), "nope"]))
    names = _sampler_param_names(sampler) if sampler != "nope" else ["k"]
    return sampler, draw(st.sampled_from(names)), draw(value)


# -- the stand-ins -----------------------------------------------------------------------------------------------


def _one_blank_sample(make_chunk, n: int, seed: int, split: int) -> dict[str, np.ndarray]:
    """`generate_split` stand-in: one generated sample repeated n times without copying (any n is instant)."""
    from alpose_bench.datasets import synthetic

    one = make_chunk(np.random.default_rng(0), 1)
    return {k: np.broadcast_to(one[k], (n, *one[k].shape[1:])) for k in synthetic._FIELDS}


@pytest.fixture(scope="module")
def validation_only() -> Iterator[dict[str, int]]:
    """Patch out training and data generation for the module; count how often training would have started."""
    from alpose_bench.commands import run as run_command
    from alpose_bench.datasets import files, synthetic

    calls = {"run_plan": 0}

    def no_training(the_plan, **kwargs: Any) -> dict:
        calls["run_plan"] += 1
        return {}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_command, "run_plan", no_training)
        mp.setattr(synthetic, "generate_split", _one_blank_sample)
        mp.setattr(synthetic, "_write_cache", lambda path, arrays: None)
        mp.setattr(files, "shared_data_dir", lambda: None)
        mp.setattr(build, "_LOADED", {})  # stand-in datasets never reach the tests that follow
        mp.delenv("ALPOSE_DATA_ROOT", raising=False)
        yield calls


def run_cli(args: list[str]):
    """`alpose-bench run ARGS` with results in a fresh folder; returns the click result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "deep", "er", "out")  # a `--name ../x` that slipped through would still stay in tmp
        return CliRunner().invoke(cli, ["run", "--out", str(out), *args], obj={})


def assert_runs_or_one_line_error(result) -> None:
    """The property: exit 0, or exit 2 with `Error: ...` last and a SystemExit, and never a traceback."""
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 0:
        return
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), result.output


# -- (a) command lines --------------------------------------------------------------------------------------------

# argv can hold any text but NUL
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10)
NUMBER = st.one_of(
    st.integers(1, 64),  # plausible values, so that many command lines get past the first check
    st.integers(-3, 0),
    st.sampled_from([2**31, 2**63, 10**30]),
    st.integers(),
)
INT_VALUE = st.one_of(NUMBER.map(str), TEXT, st.just("1.5"))
SCALAR = st.one_of(
    NUMBER.map(str), st.sampled_from(["true", "null", "0.5", "-1e9", "nan", '"x"', "[1, 2]"]), TEXT
)


def _names(known: list[str]) -> st.SearchStrategy[str]:
    """One or several comma-separated names, known or not."""
    name = st.one_of(st.sampled_from(known), TEXT)
    return st.lists(name, min_size=1, max_size=3).map(",".join)


@st.composite
def run_arguments(draw: st.DrawFn) -> list[str]:
    samplers = _sampler_names()
    options: dict[str, st.SearchStrategy[str]] = {
        "--samplers": _names([*samplers, "all"]),
        "--dataset": _names(DATASETS),
        "--preset": st.one_of(st.sampled_from(list(PRESETS)), TEXT),
        "--device": st.one_of(
            st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:9", "cuda:x", "tpu"]), TEXT
        ),
        "--data-root": st.one_of(st.just("/nonexistent/alpose-data"), st.just("/dev/null"), TEXT),
        "--name": st.one_of(st.sampled_from(["exp", "a/b", "..", "../escaped", "x\\y", "."]), TEXT),
        "--executor": st.one_of(st.sampled_from(["local", "dask"]), TEXT),
        "--scheduler": TEXT,
        "--sampler-param": st.one_of(
            sampler_param(SCALAR).map(lambda p: "{}.{}={}".format(*p)),
            TEXT,
        ),
        "--dataset-option": st.one_of(
            st.builds("{}={}".format, st.sampled_from(DATASET_OPTIONS), SCALAR),
            st.builds("{}.{}={}".format, st.sampled_from(DATASETS), st.sampled_from(DATASET_OPTIONS), SCALAR),
            TEXT,
        ),
    }
    for flag in ("--seeds", "--init", "--budget", "--cycles", "--epochs", "--epochs-first", "--resolution"):
        options[flag] = INT_VALUE
    options["--pool-size"] = INT_VALUE
    options["--jobs"] = INT_VALUE
    args = ["--preset", "smoke"] if draw(st.booleans()) else []  # else: the preset is fuzzed or quick
    for flag in draw(st.lists(st.sampled_from(sorted(options)), max_size=6)):
        args += [flag, draw(options[flag])]
    if draw(st.booleans()):
        args.append("--from-scratch")
    if draw(st.integers(0, 9)) == 7:  # now and then (hypothesis favours the ends of a range)
        args.append(draw(st.sampled_from(["--bogus", "-z", "positional", "--seeds"])))  # unknown, no value
    return args


@pytest.mark.slow
@FUZZ
@given(args=run_arguments())
def test_any_command_line_runs_or_is_a_one_line_error(validation_only, args):
    assert_runs_or_one_line_error(run_cli(args))


def test_the_command_line_fuzz_reaches_both_outcomes(validation_only):
    """Not vacuous: a valid command line gets to the (stubbed) training, an invalid one to the one-line error."""
    before = validation_only["run_plan"]
    ok = run_cli(["--preset", "smoke", "--samplers", "random", "--pool-size", "100000"])
    assert ok.exit_code == 0, ok.output
    assert validation_only["run_plan"] == before + 1
    bad = run_cli(["--preset", "smoke", "--samplers", "random", "--pool-size", str(10**12)])
    assert_runs_or_one_line_error(bad)
    assert bad.exit_code == 2 and "pool_size must be at most" in bad.output


# -- (b) config files and config dicts ----------------------------------------------------------------------------

TOML_STRING = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
TOML_SCALAR = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    TOML_STRING,
    st.dates(),
)
TOML_VALUE = st.recursive(
    TOML_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(["k", "num_peaks"]), TOML_STRING), inner, max_size=3),
    ),
    max_leaves=6,
)


def _plausible(field: str) -> st.SearchStrategy[Any]:
    """Values of the right kind for a spec field, often valid, so that configs get past the type checks."""
    default = SPEC_FIELDS[field].default
    if field == "datasets":
        return st.lists(st.sampled_from(DATASETS), min_size=1, max_size=2)
    if field == "samplers":
        return st.lists(st.sampled_from([*_sampler_names(), "all"]), min_size=1, max_size=3)
    if field == "preset":
        return st.sampled_from(list(PRESETS))
    if field == "sampler_params":
        params = st.lists(sampler_param(TOML_SCALAR), max_size=3)
        return params.map(lambda ps: {s: {p: v for s2, p, v in ps if s2 == s} for s, _, _ in ps})
    if field == "dataset_options":
        options = st.dictionaries(st.sampled_from(DATASET_OPTIONS), TOML_SCALAR, max_size=2)
        return st.dictionaries(st.sampled_from([*DATASETS, "*"]), options, max_size=2)
    if field == "device":
        return st.sampled_from(["auto", "cpu", "cuda:0"])
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, float):
        return st.floats(-1.0, 10.0)
    if isinstance(default, int) or field in ("pool_size", "test_size"):
        return st.integers(-2, 200)
    return TOML_STRING


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A config: spec fields with plausible or arbitrary values, plus unknown keys now and then."""
    fields = draw(st.lists(st.sampled_from(sorted(SPEC_FIELDS)), max_size=6, unique=True))
    config = {f: draw(_plausible(f) if draw(st.integers(0, 3)) else TOML_VALUE) for f in fields}
    if draw(st.integers(0, 4)) == 3:
        config[draw(TOML_STRING)] = draw(TOML_VALUE)
    return config


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON escapes are TOML escapes; DEL must be escaped in TOML)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(value: Any) -> str:
    """A TOML value (inline tables and arrays) for the generated data."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(to_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {to_toml(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # a date


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """The text of a config file: flat, under [experiment] with side tables, garbage text, or garbage bytes."""
    kind = draw(st.sampled_from(["flat", "experiment", "flat", "experiment", "text", "bytes"]))
    if kind == "text":
        return draw(st.text(max_size=80)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    config = draw(config_dicts())
    if kind == "flat":
        return "\n".join(f"{_toml_string(k)} = {to_toml(v)}" for k, v in config.items()).encode()
    # [experiment] with the sampler/dataset tables beside it (top-level keys come before the first header)
    side = {
        k: config.pop(k) for k in ("sampler_params", "dataset_options") if isinstance(config.get(k), dict)
    }
    lines = [f"{_toml_string(k)} = {to_toml(v)}" for k, v in side.items()]
    lines += ["[experiment]", *(f"{_toml_string(k)} = {to_toml(v)}" for k, v in config.items())]
    return "\n".join(lines).encode()


@pytest.mark.slow
@FUZZ
@given(text=config_files(), preset=st.sampled_from([[], ["--preset", "smoke"]]))
def test_any_config_file_runs_or_is_a_one_line_error(validation_only, text, preset):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "experiment.toml")
        path.write_bytes(text)
        assert_runs_or_one_line_error(run_cli([*preset, "--config", str(path)]))


@pytest.mark.slow
@FUZZ
@given(overrides=config_dicts())
def test_any_config_dict_builds_a_spec_or_is_a_one_line_config_error(overrides):
    try:
        spec = build_spec("smoke", None, overrides)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        json.dumps(spec.to_dict())  # the store keeps the spec as JSON: what validation lets through must fit
        assert len(spec.fingerprint()) == 16


def test_the_config_fuzz_reaches_both_outcomes(validation_only, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[experiment]\nsamplers = ["random"]\nbudget = 10\n[dataset_options.synth-human]\nood_size = 5\n'
    )
    assert run_cli(["--preset", "smoke", "--config", str(good)]).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe budget = 3")
    result = run_cli(["--config", str(bad)])
    assert_runs_or_one_line_error(result)
    assert result.exit_code == 2 and "not valid TOML" in result.output
