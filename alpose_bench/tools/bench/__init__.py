"""Speed figures of the benchmark on the current machine (`alpose-bench bench`): one module per section.

Every figure is a median over repeats (at least one; repeats stop early once a measurement has used
`max_seconds`). `run_bench` returns a `BenchReport` whose `to_dict()` is what `--json` writes: the machine, the
settings, and one dict of figures per section; the sections and their figures are documented in
docs/performance.md. `SECTION_TABLE` maps each section to the function that measures it and to what it needs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alpose_bench.tools.bench import coreset, egl, footprint, inference, peaks, samplers, training
from alpose_bench.tools.bench.common import (
    SECTIONS,
    BenchError,
    BenchReport,
    BenchRun,
    BenchSettings,
    Progress,
    machine_info,
    parse_sections,
    parse_sizes,
)

__all__ = [
    "SECTIONS",
    "SECTION_TABLE",
    "BenchError",
    "BenchReport",
    "BenchSettings",
    "parse_sections",
    "parse_sizes",
    "run_bench",
]


@dataclass(frozen=True)
class Section:
    """One bench section: the function measuring it, and whether it needs the model + pool setting (and a pool)."""

    run: Callable[[BenchRun], dict[str, Any]]
    needs_model: bool
    needs_pool: bool


SECTION_TABLE: dict[str, Section] = {
    "training": Section(training.run, needs_model=True, needs_pool=False),
    "inference": Section(inference.run, needs_model=True, needs_pool=True),
    "samplers": Section(samplers.run, needs_model=True, needs_pool=True),
    "footprint": Section(footprint.run, needs_model=True, needs_pool=True),
    "coreset": Section(coreset.run, needs_model=False, needs_pool=False),
    "peaks": Section(peaks.run, needs_model=False, needs_pool=False),
    "egl": Section(egl.run, needs_model=True, needs_pool=True),
}
assert tuple(SECTION_TABLE) == SECTIONS


def run_bench(
    settings: BenchSettings,
    progress: Progress | None = None,
    on_section: Callable[[str, dict[str, Any]], None] | None = None,
) -> BenchReport:
    """Measure the selected sections, in order; `on_section(name, figures)` is called as each one finishes."""
    from alpose_bench.engine.build import resolve_device
    from alpose_bench.tools.bench.common import _setting

    settings.validate()
    say = progress or (lambda _msg: None)
    chosen = [SECTION_TABLE[name] for name in settings.sections]
    if "samplers" in settings.sections:
        # unknown names and bad --sampler-param values fail before anything is measured
        for name, cls in samplers.resolve_samplers(settings):
            samplers.make_sampler(settings.spec, name, cls)
    device = resolve_device(settings.spec.device)
    setting = None
    if any(s.needs_model for s in chosen):
        say("loading the dataset")
        setting = _setting(settings, needs_pool=any(s.needs_pool for s in chosen))
        device = setting.device
    report = BenchReport(
        machine=machine_info(device),
        settings={
            **{k: v for k, v in dataclasses.asdict(settings).items() if k not in ("spec", "samplers")},
            "samplers": None
            if settings.samplers is None
            else [n for n, _ in samplers.resolve_samplers(settings)],
            "spec": settings.spec.to_dict(),
            "dataset": settings.spec.datasets[0],
            "model": {
                "stacks": settings.spec.stacks,
                "channels": settings.spec.channels,
                "depth": settings.spec.depth,
            },
        },
    )
    bench = BenchRun(settings=settings, device=device, say=say, setting=setting)
    for name in settings.sections:
        figures = SECTION_TABLE[name].run(bench)
        bench.figures[name] = figures
        report.sections[name] = figures
        if on_section is not None:
            on_section(name, figures)
    report.problems.extend(bench.problems)
    report.machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return report
