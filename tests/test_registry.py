"""The plugin registry: entry-point discovery, unknown names, and a plugin that fails to import."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner
from plugin_factory import write_sampler_plugin

from alpose_bench.cli import cli
from alpose_bench.spec import registry


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    """An installed distribution whose sampler entry point raises on import, beside one that works."""
    write_sampler_plugin(
        tmp_path,
        "broken-plugin",
        "broken = broken_sampler_module:Broken",
        "broken_sampler_module",
        "raise RuntimeError('this plugin is broken on purpose')\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield
    sys.modules.pop("broken_sampler_module", None)
    registry.refresh()


def test_built_ins_are_registered_through_entry_points():
    samplers = registry.samplers()
    expected = {
        "random",
        "vl4pose",
        "mpe",
        "learning-loss",
        "learning-loss-pp",
        "aleatoric",
        "coreset",
        "egl",
    }
    assert expected <= set(samplers)
    assert all(samplers[n].distribution == "alpose-bench" for n in expected)
    assert {"synth-human", "synth-hand", "mpii", "lsp", "lsp-lspet", "icvl", "coco"} <= set(
        registry.datasets()
    )


def test_unknown_name_lists_the_known_ones_and_suggests():
    with pytest.raises(registry.UnknownNameError, match=r"Did you mean 'vl4pose'\?.*random"):
        registry.get_sampler("vl4pos")


def test_a_broken_plugin_leaves_the_rest_working(broken_plugin):
    assert registry.samplers()["broken"].obj is None
    assert registry.get_sampler("random").name == "random"
    with pytest.raises(registry.PluginLoadError, match="broken on purpose"):
        registry.get_sampler("broken")
    assert "broken" not in registry.working_samplers()
    result = CliRunner().invoke(cli, ["list"], obj={}, terminal_width=200)
    assert result.exit_code == 0
    assert "broken" in result.output and "failed to load" in result.output and "random" in result.output


@pytest.fixture
def misnamed_plugin(tmp_path, monkeypatch):
    """VL4Pose registered under another key (`vl4 = ...:VL4Pose`), as a plugin package could by mistake."""
    write_sampler_plugin(
        tmp_path, "misnamed-plugin", "vl4 = misnamed_module:VL4Pose", "misnamed_module",
        "from alpose_bench.samplers.vl4pose import VL4Pose\n",
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield
    sys.modules.pop("misnamed_module", None)
    registry.refresh()


def test_a_plugin_whose_key_is_not_its_name_is_refused_before_training(misnamed_plugin, tmp_path):
    """It once passed planning, trained cycle 0 and died with a bare KeyError (heads saved under the class's name,
    looked up under the key). Now the key and the name are one fact: the plugin is listed as broken, and naming it
    is a one-line error with the fix, before any training."""
    with pytest.raises(
        registry.PluginLoadError, match=r"class says name = 'vl4pose'; register it as 'vl4pose = "
    ):
        registry.get_sampler("vl4")
    result = CliRunner().invoke(
        cli, ["run", "--preset", "smoke", "--samplers", "vl4", "--out", str(tmp_path / "o")], obj={}
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: sampler 'vl4' (misnamed_module:VL4Pose")
    assert not (tmp_path / "o").exists()


def test_sampler_params_and_dataset_options_read_values_with_one_grammar():
    """`1_000` is 1000 in both (it was a number in one and the string '1_000' in the other)."""
    from alpose_bench.pose.data import parse_option_pairs
    from alpose_bench.spec.config import parse_dataset_options, parse_sampler_params

    for raw, value in [("1_000", 1000), ("2.5", 2.5), ("true", True), ('"a b"', "a b"), ("bbox", "bbox")]:
        assert parse_sampler_params([f"egl.k={raw}"]) == {"egl": {"k": value}}
        assert parse_dataset_options([f"synth-human.pool_size={raw}"]) == {
            "synth-human": {"pool_size": value}
        }
        assert parse_option_pairs([f"k={raw}"]) == {"k": value}


def test_sampler_names_are_found_whatever_their_case_and_separator(tmp_path):
    """`VL4Pose` was not found and got no suggestion; `learning-loss` and `learning_loss` are one sampler. A run's
    tasks, parameters and results are keyed by the registered name however the user spelled it."""
    from alpose_bench.experiment.runner import plan
    from alpose_bench.spec.config import build_spec

    assert registry.get_sampler("VL4Pose").name == "vl4pose"
    assert registry.sampler_key("Learning-Loss") == "learning-loss"
    assert registry.sampler_key("MPE+KMeans") == "mpe+kmeans"
    with pytest.raises(registry.UnknownNameError, match=r"Did you mean 'vl4pose'\?"):
        registry.get_sampler("VL4Pos")
    spec = build_spec("smoke", None, {"samplers": "VL4Pose,learning-loss"})
    spec = spec.replace(sampler_params={"VL4POSE": {"num_peaks": 3}})
    the_plan = plan(spec, tmp_path)
    assert {t.sampler for t in the_plan.tasks} == {"vl4pose", "learning-loss"}
    assert the_plan.spec.sampler_params == {"vl4pose": {"num_peaks": 3}}


def test_the_readme_sampler_table_is_what_the_sampler_classes_say():
    """One fact, one place: the README's table is `alpose-bench list --markdown` (regenerate it after changing a
    sampler's description, needs or tasks)."""
    from pathlib import Path

    from alpose_bench.commands.listing import samplers_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert samplers_markdown() in readme
    result = CliRunner().invoke(cli, ["list", "--markdown"], obj={})
    assert result.exit_code == 0 and result.output.strip() == samplers_markdown()


def test_a_run_diagnose_and_bench_resolve_one_spec_to_the_same_samplers():
    """One road from names to samplers: groups, spellings and unsupported pairs alike."""
    from alpose_bench.engine import build
    from alpose_bench.spec.config import build_spec
    from alpose_bench.tools.bench.common import BenchSettings
    from alpose_bench.tools.bench.samplers import resolve_samplers as bench_resolve
    from alpose_bench.tools.diagnose import resolve_samplers as diagnose_resolve

    for samplers in ("default", "all", "VL4Pose,learning-loss,MPE+KMeans,random"):
        spec = build_spec("smoke", None, {"samplers": samplers})
        dataset = build.dataset_of(spec, "synth-human")
        run_names, _ = build.resolve_samplers(spec.samplers, dataset.task, build.protocol(spec).model)
        diagnosed, _ = diagnose_resolve(spec, None, dataset)
        assert [s.name for s in diagnosed] == run_names
        bench = bench_resolve(BenchSettings(spec=spec, samplers=tuple(spec.samplers)))
        assert [n for n, _ in bench] == run_names
    with pytest.raises(Exception, match="drop 'mpe' from --samplers"):
        build.resolve_samplers(["mpe"], "regression3d")


def test_every_built_in_sampler_name_follows_the_one_naming_rule():
    """Lower case, words joined by hyphens (`learning-loss`, `mc-dropout`); former spellings stay accepted."""
    import re

    built_in = [n for n, p in registry.samplers().items() if p.distribution == "alpose-bench"]
    assert built_in and all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in built_in), built_in
    assert registry.sampler_key("learning_loss_pp") == "learning-loss-pp"
