"""The plugin registry: entry-point discovery, unknown names, and a plugin that fails to import."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner
from plugin_factory import write_sampler_plugin

from alpose_bench import registry
from alpose_bench.cli import cli


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
        "learning_loss",
        "learning_loss_pp",
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
