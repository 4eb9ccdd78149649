"""Install a sampler plugin for a test: a module plus the dist-info folder whose entry point names it, as pip would."""

from __future__ import annotations

from pathlib import Path


def write_sampler_plugin(site: Path, distribution: str, entry_point: str, module: str, source: str) -> Path:
    """Write `module`.py (`source`) and `distribution`-0.1.dist-info registering `entry_point` under
    alpose_bench.samplers into `site`, a folder to put on sys.path (or PYTHONPATH for subprocesses); returns it."""
    dist = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[alpose_bench.samplers]\n{entry_point}\n")
    (site / f"{module}.py").write_text(source)
    return site


#: source of a small auxiliary head for test plugin modules (needs `from torch import nn` in the module)
PROBE_HEAD = """
class Probe(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Linear(channels, 1)

    def forward(self, features):
        return self.fc(features[-1].mean(dim=(2, 3)))
"""
