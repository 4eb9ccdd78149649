"""`alpose-bench bench`: speed figures on this machine (train/infer img/s, selection overhead, Core-Set, peaks, EGL++)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from alpose_bench.commands.console import output_console
from alpose_bench.errors import UserError, user_error_types
from alpose_bench.spec.config import MODEL_FAMILIES, build_spec, parse_sampler_params, preset_help
from alpose_bench.tools.bench import SECTIONS, BenchSettings, parse_sections, parse_sizes, run_bench


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _vs(value: float | None, target: float | None, fmt: str, higher_is_better: bool) -> str:
    """A figure coloured green when it meets its target, red when it misses it."""
    text = _f(value, fmt)
    if value is None or target is None:
        return text
    ok = value >= target if higher_is_better else value <= target
    return f"[green]{text}[/green]" if ok else f"[red]{text}[/red]"


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
    return table


def _rate(value: float | None) -> str:
    return "n/a" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.1f}")


def footprint_table(fig: dict[str, Any]) -> Table:
    """Each sampler's cost to a device beside the pose model's forward pass."""
    t = _table(
        f"footprint at {fig['resolution']} px: pose model {fig['model_params'] / 1e6:.2f} M parameters (the paper's "
        f"2-stack hourglass: {fig['paper_model_params'] / 1e6:.1f} M, its auxiliary network "
        f"{fig['paper_aux_params'] / 1e6:.1f} M); forward {fig['forward_ms_b1']:.2f} ms/frame at batch 1, "
        f"{fig['forward_ms_batch']:.2f} at batch {fig['batch_size']}; pool {fig['pool']}, labelled {fig['labelled']}",
        ["sampler", "kind", "extra ms/frame b1", "x forward b1", f"extra ms/frame b{fig['batch_size']}",
         "x forward", "extra params", "extra peak MiB", "x cost, pool x2", "x cost, labelled x2", "per frame"],
    )  # fmt: skip
    t.add_column("note", overflow="fold")
    for r in fig["rows"]:
        if r["status"] != "ok":
            t.add_row(r["sampler"], *[""] * 10, f"{r['status']}: {r['reason']}",
                      style="dim" if r["status"] == "skipped" else "red")  # fmt: skip
            continue
        t.add_row(r["sampler"], "buffered" if r["buffered"] else "per frame", _f(r["extra_ms_b1"]),
                  _f(r["ratio_b1"]), _f(r["extra_ms_batch"], ".3f"), _f(r["ratio_batch"]),
                  f"{r['extra_params']:,}", _f(r["extra_peak_mb"], ".1f"), _f(r["growth_pool"]),
                  _f(r["growth_labelled"]), r["per_frame"],
                  f"pool {r['pool']}" if r["pool"] != fig["pool"] else "")  # fmt: skip
    return t


def _peak(mb: float | None) -> str:
    """ "peak +N MiB resident" (memory above where it stood before); nothing where it was not measured."""
    return "" if mb is None else f"peak +{mb:,.0f} MiB resident"


def _note(*parts: str) -> str:
    """A note column's parts, those not empty, joined by "; "."""
    return "; ".join(p for p in parts if p)


def section_table(name: str, fig: dict[str, Any]) -> Table | str:
    """A rich table (or one line) for one section's figures; figures that meet their target are green."""
    if "skipped" in fig:
        return f"[dim]{name}: skipped ({fig['skipped']})[/dim]"
    if name == "training":
        t = _table(
            f"training, batch {fig['batch_size']} x {fig['steps']} steps, {fig['gflop_per_image']:.3f} GFLOP per image "
            f"(forward + backward); project: {_compute(fig['compute'])} (targets: project/plain >= "
            f"{fig['target_speedup']:g}, real/bare >= {fig['target_ratio']})",
            ["path", "images/s", "GFLOP/s", "vs plain", "real/bare"],
        )
        t.add_column("note", overflow="fold")
        t.add_row("plain step", _rate(fig["plain_images_per_s"]), _f(fig["plain_gflops"], ".1f"), "1", "",
                  "fp32, contiguous, default Adam, random tensors")  # fmt: skip
        t.add_row("project step", _rate(fig["bare_images_per_s"]), _f(fig["bare_gflops"], ".1f"),
                  _vs(fig["speedup"], fig["target_speedup"], ".2f", True), "", "same random tensors")  # fmt: skip
        t.add_row("project train()", _rate(fig["train_images_per_s"]),
                  _f(fig["train_gflops"], ".1f"), _f(fig["train_images_per_s"] / fig["plain_images_per_s"], ".2f"),
                  _vs(fig["ratio"], fig["target_ratio"], ".3f", True),
                  _note("real batches: augmentation, targets", _peak(fig.get("train_peak_mb"))))  # fmt: skip
        _lever_rows(t, fig, fig["plain_images_per_s"], 5)
        return t
    if name == "inference":
        t = _table(
            f"inference over the pool ({fig['pool']} images, batch {fig['batch_size']}), {fig['gflop_per_image']:.3f} "
            f"GFLOP per image; project: {_compute(fig['compute'])} (target project/plain >= {fig['target_speedup']:g})",
            ["path", "images/s", "GFLOP/s", "vs plain"],
        )
        t.add_column("note", overflow="fold")
        t.add_row(
            "plain: fp32, contiguous", _rate(fig["plain_images_per_s"]), _f(fig["plain_gflops"], ".1f"), "1", ""
        )
        cached = fig.get("feature_cache")
        t.add_row("project's pass" + (" (reads the feature cache)" if cached else ""), _rate(fig["images_per_s"]),
                  _f(fig["gflops"], ".1f"), _vs(fig["speedup"], fig["target_speedup"], ".2f", True),
                  _note(f"{1e3 / fig['images_per_s']:.2f} ms/image", _peak(fig.get("peak_mb"))))  # fmt: skip
        if cached:
            t.add_row(f"feature cache build ({cached['mb_per_image']:.2f} MB per image with its mirror)",
                      _rate(cached["images_per_s"]), "", "", _peak(cached.get("peak_mb")))  # fmt: skip
        _lever_rows(t, fig, fig["plain_images_per_s"], 4)
        return t
    if name == "samplers":
        t = _table(
            f"selection ({fig['labelled']} labelled, budget {fig['budget']} per {fig['pool']}); overhead = selection "
            "time / a plain inference pass over the same pool",
            ["sampler", "pool", "seconds", "images/s", "overhead", "target", "fwd/img"],
        )
        t.add_column("note", overflow="fold")
        for r in fig["rows"]:
            target = _f(r["target"], ".1f") if r["target"] is not None else ""
            if r["status"] != "ok":
                t.add_row(r["sampler"], "", "", "", "", target, "", f"{r['status']}: {r['reason']}",
                          style="dim" if r["status"] == "skipped" else "red")  # fmt: skip
                continue
            t.add_row(r["sampler"], str(r["pool"]), _f(r["seconds"], ".3f"), _rate(r["images_per_s"]),
                      _vs(r["overhead_ratio"], r["target"], ".2f", False), target,
                      _f(r["forward_passes_per_image"], ".2f"), "")  # fmt: skip
        return t
    if name == "footprint":
        return footprint_table(fig)
    if name == "coreset":
        t = _table(
            f"Core-Set k-center greedy, dim {fig['dim']}, budget {fig['budget']} (memory above the process after "
            "imports)",
            ["pool x labelled", "seconds", "peak MiB", "inputs", "extra", "P x L x 8 B"],
        )
        for r in fig["rows"]:
            size = f"{r['pool']} x {r['labelled']}"
            if r["status"] != "ok":
                t.add_row(size, f"failed: {r['reason']}", "", "", "", "", style="red")
                continue
            t.add_row(size, _f(r["seconds"], ".2f"), _f(r["peak_mb"], ".1f"), _f(r["inputs_mb"], ".1f"),
                      _f(r["extra_mb"], ".1f"), _f(r["pairwise_matrix_mb"], ".1f"))  # fmt: skip
        return t
    if name == "peaks":
        t = _table(
            f"peaks: {fig['maps']} x {fig['joints']} maps of {fig['size']}x{fig['size']}, find_peaks vs a "
            "skimage peak_local_max loop (a correctness check: the same peaks on every map)",
            ["setting", "find_peaks s", "skimage s", "speed-up", "same"],
        )
        for r in fig["rows"]:
            same = {None: "n/a", True: "[green]yes[/green]", False: "[red]NO[/red]"}[r["same_peaks"]]
            sk = _f(r["skimage_s"], ".3f") if r["skimage_s"] is not None else r["note"]
            t.add_row(f"{r['config']}: {r['num_peaks']} peaks, min_distance {r['min_distance']}",
                      _f(r["find_peaks_s"], ".3f"), sk, _f(r["speedup"], ".1f"), same)  # fmt: skip
        return t
    if name == "egl":
        t = _table(
            f"EGL++ gradient norms: {fig['pool']} images x k={fig['k']}, {fig['parameters']:,} parameters, model trained "
            f"{fig['train_steps']} steps; {_compute(fig['compute'])}; differences against the replica method in float64 "
            f"(targets: speed-up >= {fig['target_speedup']:g}, difference < {fig['target_rel_diff']:g} of the score "
            "scale, same ranking)",
            ["path", "seconds", "speed-up", "max rel. diff", "rel. to scale"],
        )
        t.add_row("fast (vjp + vmap)", _f(fig["fast_s"], ".3f"),
                  _vs(fig["speedup"], fig["target_speedup"], ".1f", True), _f(fig["rel_diff"], ".1e"),
                  _vs(fig["scale_rel_diff"], fig["target_rel_diff"], ".1e", False))  # fmt: skip
        t.add_row("replicas, fp32", _f(fig["slow_s"], ".3f"), "", _f(fig["replica_rel_diff"], ".1e"),
                  _f(fig["replica_scale_rel_diff"], ".1e"))  # fmt: skip
        same = "[green]yes[/green]" if fig["same_ranking"] else "[red]NO[/red]"
        t.add_row(f"same ranking: {same}", "", "", "", "")
        return t
    raise ValueError(f"no table for section {name!r}")


def _compute(c: dict[str, Any]) -> str:
    parts = [c["precision"], "channels_last" if c["channels_last"] else "contiguous"]
    if c["fused_optimizer"]:
        parts.append("fused Adam")
    return ", ".join(parts)


def _lever_rows(t: Table, fig: dict[str, Any], plain: float, columns: int) -> None:
    """One row per lever timed with --levers (the note column last)."""
    for r in fig.get("levers", []):
        note = (f"compile {r['compile_s']:.0f} s; " if "compile_s" in r else "") + (r.get("note") or "")
        cells = [f"lever: {r['lever']}", _rate(r["images_per_s"]), _f(r["gflops"], ".1f"),
                 _f(r["images_per_s"] / plain, ".2f")]  # fmt: skip
        t.add_row(*(cells + [""] * (columns - len(cells))), note)


def contention_warning() -> str | None:
    """A warning when other processes already load the CPUs and torch would use several threads: its threads then
    wait for each other (on a shared 2-core machine throughput fell 20-fold), so the figures say little."""
    import os

    import torch

    if not hasattr(os, "getloadavg") or torch.get_num_threads() < 2:
        return None
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load < cpus / 2:
        return None
    return (
        f"other processes are using the CPUs (load average {load:.1f} on {cpus} cores) and torch uses "
        f"{torch.get_num_threads()} threads: figures will be slow and noisy; consider --threads 1"
    )


@click.command()
@click.option("--preset", default=None, help="Model, resolution and budgets: " + preset_help())
@click.option("--dataset", default=None, help="The dataset (default: synth-human).")
@click.option(
    "--device", default=None, help="auto | cpu | cuda | cuda:N (CUDA: bf16 autocast, channels_last)."
)
@click.option("--resolution", type=int, default=None, help="Input size in pixels (default: the preset's).")
@click.option("--model", type=click.Choice(MODEL_FAMILIES), default=None,
              help="2D pose model (default: hourglass; mobilenet-v2, efficientnet-lite0: ImageNet-pretrained).")  # fmt: skip
@click.option("--dropout", type=float, default=None,
              help="Hourglass dropout (default: the preset's; mc-dropout and mcd-cke need > 0).")  # fmt: skip
@click.option("--data-root", default=None, help="Folder holding the real datasets (or set ALPOSE_DATA_ROOT).")
@click.option(
    "--pool", type=int, default=512, show_default=True, help="Unlabelled images for inference/samplers."
)
@click.option(
    "--footprint-frames",
    type=int,
    default=32,
    show_default=True,
    help="Frames each sampler scores one at a time (batch 1) in the footprint section.",
)
@click.option("--slow-pool", type=int, default=32, show_default=True,
              help="Pool of samplers that differentiate the model per image (EGL++; time linear in the pool).")  # fmt: skip
@click.option(
    "--labelled", type=int, default=None, help="Labelled images beside the pool (default: the preset's init)."
)
@click.option(
    "--budget", type=int, default=None, help="Images each sampler selects (default: the preset's budget)."
)
@click.option(
    "--samplers",
    default=None,
    help="Comma-separated sampler names or package.module:Class (default: every registered one).",
)
@click.option(
    "--sampler-param", "sampler_params", multiple=True, help="SAMPLER.PARAM=VALUE, e.g. vl4pose.num_peaks=3."
)
@click.option(
    "--only", default=None, help=f"Comma-separated sections to run: {', '.join(SECTIONS)} (default: all)."
)
@click.option(
    "--repeats", type=int, default=3, show_default=True, help="Repeats per figure (the median is shown)."
)
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Stop repeating a measurement once it has taken this long.")  # fmt: skip
@click.option(
    "--train-steps", type=int, default=10, show_default=True, help="Optimiser steps per training repeat."
)
@click.option("--coreset-pool", default="10000,50000", show_default=True, help="Core-Set pool sizes.")
@click.option(
    "--coreset-labelled", default="1000,5000", show_default=True, help="Core-Set labelled-set sizes."
)
@click.option("--coreset-dim", type=int, default=256, show_default=True, help="Core-Set embedding dimension.")
@click.option("--coreset-budget", type=int, default=1000, show_default=True, help="Core-Set images selected.")
@click.option(
    "--peak-maps", type=int, default=1000, show_default=True, help="Images of 16 heatmaps of 64x64."
)
@click.option(
    "--egl-pool", type=int, default=8, show_default=True, help="Pool images of the EGL++ comparison."
)
@click.option("--egl-train-steps", type=click.IntRange(min=0), default=100, show_default=True,
              help="Optimiser steps on the labelled images before the EGL++ comparison (a trained model).")  # fmt: skip
@click.option(
    "--levers", is_flag=True, help="Also time each speed lever alone, torch.compile included (minutes)."
)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="The project's precision (default: the spec's, auto).")  # fmt: skip
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice).")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the model, pool and synthetic data."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write every figure, with the machine description, to this JSON file.")  # fmt: skip
def bench(preset, dataset, device, resolution, model, dropout, data_root, pool, footprint_frames, slow_pool, labelled, budget, samplers, sampler_params, only,
          repeats, max_seconds, train_steps, coreset_pool, coreset_labelled, coreset_dim, coreset_budget, peak_maps,
          egl_pool, egl_train_steps, levers, precision, threads, seed, json_path) -> None:  # fmt: skip
    """Measure speed on this machine, each figure a median over repeats.

    Training img/s (real path vs a bare loop), inference img/s over a pool, each sampler's selection time relative
    to one plain inference pass, Core-Set time and peak memory at pool 10k/50k x labelled 1k/5k, the shared peak
    finder vs scikit-image, and EGL++'s fast gradient norms vs the reference method.
    """
    try:
        sections = parse_sections(only)
        if threads is not None:
            if threads < 1:
                raise UserError(f"--threads must be at least 1, got {threads}")
            import torch

            torch.set_num_threads(threads)
        spec = build_spec(preset or "quick", None, dict(
            datasets=dataset, device=device, resolution=resolution, data_root=data_root, preset=preset, precision=precision,
            dropout=dropout, model=model,
            sampler_params=parse_sampler_params(sampler_params) or None,
        ))  # fmt: skip
        settings = BenchSettings(
            spec=spec, sections=sections, pool=pool, slow_pool=slow_pool, footprint_frames=footprint_frames, labelled=labelled, budget=budget,
            samplers=tuple(n.strip() for n in samplers.split(",") if n.strip()) if samplers else None,
            repeats=repeats, max_seconds=max_seconds, train_steps=train_steps,
            coreset_pools=parse_sizes(coreset_pool, "--coreset-pool"),
            coreset_labelled=parse_sizes(coreset_labelled, "--coreset-labelled"),
            coreset_dim=coreset_dim, coreset_budget=coreset_budget, peak_maps=peak_maps, egl_pool=egl_pool, seed=seed, egl_train_steps=egl_train_steps, levers=levers,
        ).validate()  # fmt: skip
        console = output_console()
        busy = contention_warning()
        if busy:
            console.print(f"[yellow]{busy}[/yellow]")
        with console.status("benchmarking") as status:
            report = run_bench(
                settings,
                progress=lambda msg: status.update(msg),
                on_section=lambda name, fig: console.print(section_table(name, fig)),
            )
    except user_error_types() as exc:
        raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    m = report.machine
    console.print(
        f"[dim]{m['device_name']} ({m['device']}), {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
        f"torch {m['torch']}; load average {m['load_average_start'][0]:.2f} -> {m['load_average_end'][0]:.2f}[/dim]"
        if m.get("load_average_start") and m.get("load_average_end")
        else f"[dim]{m['device_name']} ({m['device']}), torch {m['torch']}[/dim]"
    )
    if json_path:
        console.print(f"figures written to {report.write_json(json_path)}")
    if report.problems:
        for problem in report.problems:
            console.print(f"[red]{problem}[/red]")
        raise click.ClickException("correctness check failed: " + report.problems[0])
