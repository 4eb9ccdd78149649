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


@pytest.mark.slow
def test_registry_finds_the_installed_plugin_and_it_passes_check_sampler(installed: Path) -> None:
    proc = _run(
        installed,
        """
        import torch
        torch.set_num_threads(1)
        from alpose_bench.spec import registry
        from alpose_bench.testing import check_sampler
        cls = registry.get_sampler("flip-consistency")
        assert cls.__module__ == "alpose_flip_consistency", cls.__module__
        assert registry.samplers()["flip-consistency"].distribution == "alpose-flip-consistency"
        assert "flip-consistency" in registry.working_samplers()
        check_sampler(cls)
        print("OK", cls.unsupported_reason("regression3d"))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK sampler 'flip-consistency' needs a heatmap (2D) model")


@pytest.mark.slow
def test_flip_consistency_scores_a_mirror_consistent_model_zero_and_an_inconsistent_one_above(
    installed: Path,
) -> None:
    proc = _run(
        installed,
        """
        import numpy as np, torch
        from torch import nn
        from alpose_bench.pose.models.outputs import PoseOutput
        from alpose_bench.pose.pool import ForwardBatch
        from alpose_bench.spec.registry import get_sampler
        from alpose_bench.testing import make_context

        class Mirrored(nn.Module):  # every joint's heatmap is the image's brightness: flips with the image
            def forward(self, x):
                hm = nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True), 2).repeat(1, 16, 1, 1)
                return PoseOutput(heatmaps=[hm], keypoints=None, features=[], embedding=hm.flatten(1))

        class Fixed(nn.Module):  # every joint peaks off-centre whatever the image: not mirror-consistent
            def forward(self, x):
                hm = torch.zeros(len(x), 16, 8, 8)
                hm[:, :, 4, 1] = 30.0
                return PoseOutput(heatmaps=[hm], keypoints=None, features=[], embedding=hm.flatten(1))

        sampler = get_sampler("flip-consistency")()
        ctx = make_context("heatmap2d", n_pool=2, resolution=16)
        images = torch.zeros(2, 3, 16, 16)
        images[0, :, 5, 3] = 1.0  # one bright pixel, off-centre
        images[1, :, 10, 12] = 1.0
        scores = []
        for model in (Mirrored(), Fixed()):
            ctx.model = model
            batch = ForwardBatch(positions=np.arange(2), images=images, out=model(images), aux=None)
            scores.append(sampler.score_batch(batch, ctx))
        print(np.round(scores[0], 6).tolist(), bool((scores[1] > 0.2).all()))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0.0, 0.0] True"
