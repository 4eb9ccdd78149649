"""Experiment specs: presets, TOML files, overrides and validation."""

from __future__ import annotations

import datetime

import pytest
import torch

from alpose_bench.engine import build
from alpose_bench.spec.config import (
    ConfigError,
    build_spec,
    dataset_config,
    parse_dataset_options,
    parse_sampler_params,
    read_toml,
)


def test_presets_and_overrides_layer_in_order(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        '[experiment]\nbudget = 50\nsamplers = ["random"]\n[sampler_params.vl4pose]\nnum_peaks = 3\n'
    )
    spec = build_spec("quick", cfg, {"budget": 25, "seeds": None})
    assert spec.budget == 25  # command line beats the file
    assert spec.samplers == ("random",)  # the file beats the preset
    assert spec.seeds == 3  # None override leaves the preset value
    assert spec.sampler_params == {"vl4pose": {"num_peaks": 3}}
    assert spec.name == "synth-human-quick"


def test_paper_preset_uses_the_published_protocol():
    spec = build_spec("paper")
    assert (spec.resolution, spec.stacks, spec.channels, spec.init, spec.budget, spec.cycles) == (
        256,
        2,
        256,
        1000,
        1000,
        5,
    )
    assert (spec.epochs_first, spec.epochs, spec.lr, spec.batch_size, spec.warm_start) == (
        150,
        100,
        3e-4,
        16,
        True,
    )
    hand = build_spec("paper", overrides={"datasets": "icvl"})
    assert (hand.init, hand.budget, hand.cycles, hand.resolution) == (100, 100, 9, 128)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"budget": 0}, "budget must be positive"),
        ({"seeds": -1}, "seeds must be positive"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"budget": "ten"}, "budget must be a whole number"),
        ({"device": "tpu"}, "device must be"),
        ({"resolution": 48, "stem_stride": 4}, r"multiple of 4 x 2\^depth"),
        ({"stem_stride": 3}, "stem_stride must be one of 2, 4, got 3"),
        ({"resolution": 50}, "resolution must be a multiple of 16"),
        ({"bogus": 1}, "unknown setting 'bogus'"),
        # found by tests/test_fuzz_validation.py: each of these used to pass validation
        ({"sigma": float("nan")}, "sigma must be a finite number"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"seeds": 10**9}, "seeds must be at most 1000"),  # planning a billion tasks hung
        ({"device": "cuda:x"}, "device must be auto, cpu, cuda or cuda:N"),  # a traceback from torch on a GPU
        ({"name": "../elsewhere"}, "plain folder name"),  # results were written outside --out
        ({"name": "/"}, "plain folder name"),  # ... or at the root of the file system
        ({"name": ".."}, "plain folder name"),
        ({"data_root": "a\0b"}, "data_root must be a string without NUL characters"),
        (
            {"sampler_params": {"egl": {"k": datetime.date(2020, 1, 1)}}},
            "sampler_params.egl.k must be a number",
        ),
        ({"dataset_options": {"synth-human": {"x": datetime.time(1, 2)}}}, "dataset_options.synth-human.x"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_spec("quick", None, overrides)
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="Known presets: smoke, quick, cpu, pretrained, paper"):
        build_spec("fast")


def test_malformed_and_unknown_keys_in_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("budget = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("budgett = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'budgett'"):
        build_spec("quick", unknown)
    with pytest.raises(ConfigError, match="does not exist"):
        read_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe budget = 3", "is not valid TOML"),  # not UTF-8: was a UnicodeDecodeError traceback
        (b"experiment = 3", "'experiment' must be a table"),  # was a TypeError traceback
        (
            b"[experiment]\nsampler_params = {}\n[sampler_params.egl]\nk = 1",
            "sampler_params is set both in",  # the [experiment] one was silently dropped
        ),
    ],
)
def test_config_files_that_are_no_valid_experiment(tmp_path, content, message):
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        build_spec("quick", path)
    assert "\n" not in str(info.value)


def test_a_preset_that_is_not_a_string_is_an_unknown_preset(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("preset = [1]\n")  # was a TypeError (unhashable list) traceback
    with pytest.raises(ConfigError, match="unknown preset"):
        build_spec("quick", path)


def test_a_config_path_that_is_a_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_spec("quick", tmp_path)


def test_a_name_given_twice_runs_once():
    spec = build_spec("smoke", None, {"datasets": "synth-human,synth-human", "samplers": "random,mpe,random"})
    assert spec.datasets == ("synth-human",) and spec.samplers == ("random", "mpe")


def test_a_device_number_beyond_the_gpus_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert build.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="has 1 CUDA GPU"):  # was an AssertionError from torch later on
        build.resolve_device("cuda:3")


def test_sampler_params_parse_toml_scalars():
    assert parse_sampler_params(["vl4pose.num_peaks=3", "egl.perplexity=20.5", "learning_loss.objective=kl"]) == {
        "vl4pose": {"num_peaks": 3}, "egl": {"perplexity": 20.5}, "learning_loss": {"objective": "kl"},
    }  # fmt: skip
    with pytest.raises(ConfigError, match="SAMPLER.PARAM=VALUE"):
        parse_sampler_params(["num_peaks=3"])


def test_dataset_options_parse_like_data_option():
    parsed = parse_dataset_options(
        ["ood_size=5", "synth-hand.cube_mm=150.5", "coco.images=frames", "mpii.x=true"]
    )
    assert parsed == {
        "*": {"ood_size": 5}, "synth-hand": {"cube_mm": 150.5}, "coco": {"images": "frames"}, "mpii": {"x": True},
    }  # fmt: skip
    with pytest.raises(Exception, match="--dataset-option expects KEY=VALUE"):
        parse_dataset_options(["ood_size"])
    with pytest.raises(ConfigError, match="DATASET.KEY=VALUE"):
        parse_dataset_options([".ood_size=3"])


def test_dataset_options_from_toml_and_command_line_merge_per_key(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        '[experiment]\ndatasets = ["synth-human", "synth-hand"]\n'
        "[dataset_options.synth-hand]\ncube_mm = 100\nood_size = 10\n"
    )
    assert build_spec("smoke", cfg).dataset_options == {"synth-hand": {"cube_mm": 100, "ood_size": 10}}
    cli = {
        "*": {"ood_size": 7},
        "synth-hand": {"cube_mm": 150},
    }  # --dataset-option ood_size=7 synth-hand.cube_mm=150
    spec = build_spec("smoke", cfg, {"dataset_options": cli})
    assert spec.dataset_options == {
        "synth-human": {"ood_size": 7},
        "synth-hand": {"cube_mm": 150, "ood_size": 7},
    }
    assert dataset_config(spec, "synth-hand").options == {"cube_mm": 150, "ood_size": 7}
    assert dataset_config(spec, "synth-human").options == {"ood_size": 7}


def test_dataset_options_without_a_dataset_setting_go_to_the_default_dataset():
    # found by the fuzz test: a KeyError traceback when neither the preset, file nor options named datasets
    spec = build_spec("smoke", None, {"dataset_options": {"*": {"ood_size": 4}}})
    assert spec.dataset_options == {"synth-human": {"ood_size": 4}}
    from alpose_bench.engine.build import dataset_of
    from alpose_bench.spec.config import ExperimentSpec

    stored = ExperimentSpec.from_stored(spec.to_dict())  # plots load the run's dataset from its stored spec
    assert len(dataset_of(stored, "synth-human").ood) == 4


def test_dataset_options_for_a_dataset_not_in_the_run_are_refused():
    with pytest.raises(ConfigError, match="dataset 'synth-hand', which is not in this run"):
        build_spec("smoke", None, {"dataset_options": {"synth-hand": {"cube_mm": 150}}})
    with pytest.raises(ConfigError, match="dataset_options must map dataset names to tables"):
        build_spec("smoke", None, {"dataset_options": {"ood_size": 4}})


def test_dataset_options_change_the_fingerprint():
    a = build_spec("smoke")
    b = build_spec("smoke", None, {"dataset_options": {"*": {"ood_size": 4}}})
    assert a.fingerprint() != b.fingerprint()
    assert (
        b.fingerprint()
        == build_spec("smoke", None, {"dataset_options": {"synth-human": {"ood_size": 4}}}).fingerprint()
    )
    assert b.fingerprint() != b.replace(dataset_options={"synth-human": {"ood_size": 5}}).fingerprint()


def test_fingerprint_ignores_name_and_device_only():
    a = build_spec("smoke")
    assert a.fingerprint() == a.replace(name="other", device="cpu").fingerprint()
    assert a.fingerprint() != a.replace(budget=a.budget + 1).fingerprint()


def test_the_presets_keep_the_fingerprints_their_experiments_were_stored_with():
    """Pinned from the code before the spec's defaults became the quick preset's and before the speed settings
    existed: with the settings those experiments ran with (`LEGACY`), existing folders still resume."""
    from alpose_bench.spec.config import LEGACY

    def legacy(spec):
        return spec.replace(precision=LEGACY["precision"], fast_kernels=LEGACY["fast_kernels"])

    # experiments of every sampler ("all", the default before the default set) keep theirs
    every = {"samplers": "all"}
    assert legacy(build_spec("smoke", None, every)).fingerprint() == "ae95881bfd94febf"
    assert legacy(build_spec("paper", None, every)).fingerprint() == "4811fe5f2827e41a"
    old_quick = legacy(build_spec("quick", None, every)).replace(dataset_options={})
    assert old_quick.fingerprint() == "4c4875a17b8b807e"
    assert (
        legacy(build_spec("quick", None, {"datasets": "synth-hand", **every})).fingerprint()
        == "9119b60be02cc7cb"
    )
    # the default sampler set and quick's deployment split (issue 12) made new experiments: pinned from here on
    assert legacy(build_spec("smoke")).fingerprint() == "817d3a6f4a8abdee"
    assert legacy(build_spec("quick")).fingerprint() == "5d5ef4bc1cbe7385"
    assert legacy(build_spec("paper")).fingerprint() == "86f01cfe9c11e884"
    # the speed settings change numbers, so they are part of a new experiment's fingerprint
    assert build_spec("smoke").fingerprint() != "817d3a6f4a8abdee"


def test_dropout_kind_is_an_experiment_setting_and_element_keeps_older_fingerprints():
    """Dropping whole feature maps changes every number, so it is another experiment; experiments stored before the
    setting existed dropped units, and keep their fingerprints (pinned above)."""
    element = build_spec("cpu")
    assert element.dropout_kind == "element"
    assert element.replace(dropout_kind="channel").fingerprint() != element.fingerprint()
    assert build_spec("cpu", None, {"dropout_kind": "channel"}).dropout_kind == "channel"
    assert build_spec("pretrained").dropout_kind == "channel"
    with pytest.raises(ConfigError, match="dropout_kind must be one of 'element', 'channel', got 'spatial'"):
        build_spec("cpu", None, {"dropout_kind": "spatial"})


def test_the_inference_batch_size_is_part_of_the_fingerprint_when_not_the_default():
    """Every scoring sampler's scores change in the last digits with it, so a rerun with another value is another
    experiment; the default stays out of the hash, so folders written before keep theirs."""
    a = build_spec("smoke")
    assert a.eval_batch_size == 64 and "eval_batch_size" in a.to_dict()
    assert a.fingerprint() != a.replace(eval_batch_size=7).fingerprint()
    assert a.replace(eval_batch_size=7).fingerprint() == a.replace(eval_batch_size=7, name="x").fingerprint()


def test_the_quick_preset_is_the_spec_defaults():
    from alpose_bench.spec.config import PRESETS, ExperimentSpec

    assert PRESETS["quick"].values == {}
    quick = build_spec("quick")
    assert quick.replace(name="", dataset_options={}) == ExperimentSpec()
    assert quick.dataset_options == PRESETS["quick"].dataset_options  # synth-human's deployment split


def test_preset_help_is_written_from_the_presets():
    from click.testing import CliRunner

    from alpose_bench.cli import cli
    from alpose_bench.spec.config import PRESETS, preset_help

    assert all(name in preset_help() for name in PRESETS)
    for command in ("run", "diagnose", "bench"):
        shown = " ".join(CliRunner().invoke(cli, [command, "--help"], obj={}).output.split())
        assert "smoke | quick | cpu | pretrained | paper" in shown, command


def test_a_dataset_declares_its_own_preset_settings():
    """The hand datasets share one 3-D protocol; lspet keeps its fixed test split; nothing else changes."""
    assert build_spec("paper", None, {"datasets": "synth-hand"}).cycles == 9
    assert build_spec("cpu", None, {"datasets": "lspet"}).init == 500
    assert build_spec("cpu", None, {"datasets": "lspet", "init": 200}).init == 200  # the user's value wins
    assert build_spec("cpu", None, {"datasets": "synth-human"}).init == 300
    pretrained = build_spec("pretrained", None, {"datasets": "lspet"})
    assert (pretrained.model, pretrained.lr_schedule, pretrained.init, pretrained.pool_size) == (
        "mobilenet-v2", "one-cycle", 500, 4000
    )


def test_a_preset_sets_dataset_options_that_the_experiment_can_override():
    assert build_spec("cpu").dataset_options == {"synth-human": {"ood_appearance": "pool"}}
    own = build_spec("cpu", None, {"dataset_options": {"synth-human": {"ood_appearance": "shifted"}}})
    assert own.dataset_options == {"synth-human": {"ood_appearance": "shifted"}}
    assert build_spec("cpu", None, {"datasets": "synth-hand"}).dataset_options == {}
    lspet = build_spec("cpu", None, {"datasets": "lspet"})
    assert (lspet.init, lspet.budget, lspet.cycles, lspet.test_size) == (500, 500, 2, None)


def test_the_default_sampler_set_leaves_out_what_a_dataset_cannot_run(tmp_path):
    """`run --dataset synth-hand` (default samplers) plans without the heatmap-only ones and says so; naming one of
    them explicitly is a one-line error."""
    from alpose_bench.experiment.runner import plan
    from alpose_bench.spec.registry import group_members

    the_plan = plan(build_spec("smoke", None, {"datasets": "synth-hand"}), tmp_path)
    planned = {t.sampler for t in the_plan.tasks}
    assert planned == set(group_members("default")) - {"mpe"}
    assert any("'default' leaves out mpe" in n for n in the_plan.notes)
    with pytest.raises(ConfigError, match="drop 'mpe' from --samplers"):
        plan(build_spec("smoke", None, {"datasets": "synth-hand", "samplers": "random,mpe"}), tmp_path / "b")
    every = plan(build_spec("smoke", None, {"datasets": "synth-hand", "samplers": "all"}), tmp_path / "c")
    assert "mc-dropout" in {t.sampler for t in every.tasks}  # the 3D regressor has dropout
    assert "mpe" not in {t.sampler for t in every.tasks}
