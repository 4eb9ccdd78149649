"""The example third-party sampler in examples/plugin-sampler installs as its own package, is found by the
registry through its entry point, and passes the conformance kit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin-sampler"


def _pip_available() -> bool:
    try:
        return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _pip_available():
        pytest.skip("pip is not available in this environment")
    target = tmp_path_factory.mktemp("plugin-site")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    source = tmp_path_factory.mktemp("plugin-src") / "plugin-sampler"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    proc = subprocess.run([*pip, "--target", str(target), str(source)], capture_output=True, text=True)
    if proc.returncode != 0 and "setuptools" in proc.stderr and "No module named" in proc.stderr:
        pytest.skip("setuptools is needed to build the example plugin without build isolation")
    assert proc.returncode == 0, proc.stderr
    return target


def _run(site: Path, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env
    )


def test_registry_finds_the_installed_plugin_and_it_passes_check_sampler(installed: Path) -> None:
    proc = _run(
        installed,
        """
        import torch
        torch.set_num_threads(1)
        from alpose_bench import registry
        from alpose_bench.testing import check_sampler
        cls = registry.get_sampler("least-confidence")
        assert cls.__module__ == "alpose_least_confidence", cls.__module__
        assert registry.samplers()["least-confidence"].distribution == "alpose-least-confidence"
        assert "least-confidence" in registry.working_samplers()
        check_sampler(cls)
        print("OK", cls.unsupported_reason("regression3d"))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK sampler 'least-confidence' needs a heatmap (2D) model")


def test_least_confidence_picks_the_flattest_heatmaps(installed: Path) -> None:
    proc = _run(
        installed,
        """
        import numpy as np, torch
        from alpose_bench.models.outputs import PoseOutput
        from alpose_bench.pool import ForwardBatch
        from alpose_bench.registry import get_sampler
        sampler = get_sampler("least-confidence")(amplitude=10.0)
        hm = torch.zeros(3, 2, 4, 4)
        hm[0, :, 1, 1] = 10.0           # confident: both peaks at the amplitude -> score 0
        hm[1, 0, 2, 2] = 5.0            # one joint at half height, one empty -> 1 - 2.5 / 10 = 0.75
        hm[2, :, 0, 0] = 5.0            # both at half height -> 0.5
        out = PoseOutput(heatmaps=[hm], keypoints=None, features=[], embedding=torch.zeros(3, 1))
        batch = ForwardBatch(positions=np.arange(3), images=torch.zeros(3, 3, 16, 16), out=out, aux=None)
        print(np.round(sampler.score_batch(batch, None), 6).tolist())
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0.0, 0.75, 0.5]"
