"""Experiment specs: presets, TOML files, overrides and validation."""

from __future__ import annotations

import pytest

from alpose_bench.config import ConfigError, build_spec, parse_sampler_params, read_toml


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
        ({"stem_stride": 3}, "stem_stride must be 4"),
        ({"resolution": 50}, "resolution must be a multiple of 16"),
        ({"bogus": 1}, "unknown setting 'bogus'"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_spec("quick", None, overrides)
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="Known presets: smoke, quick, paper"):
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


def test_sampler_params_parse_toml_scalars():
    assert parse_sampler_params(["vl4pose.num_peaks=3", "egl.perplexity=20.5", "learning_loss.objective=kl"]) == {
        "vl4pose": {"num_peaks": 3}, "egl": {"perplexity": 20.5}, "learning_loss": {"objective": "kl"},
    }  # fmt: skip
    with pytest.raises(ConfigError, match="SAMPLER.PARAM=VALUE"):
        parse_sampler_params(["num_peaks=3"])


def test_fingerprint_ignores_name_and_device_only():
    a = build_spec("smoke")
    assert a.fingerprint() == a.replace(name="other", device="cpu").fingerprint()
    assert a.fingerprint() != a.replace(budget=a.budget + 1).fingerprint()
