"""`alpose-bench run`: run an active-learning experiment (several samplers x seeds) and record every cycle."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBars
from rich.table import Table
from rich.text import Text

from alpose_bench.commands.console import output_console
from alpose_bench.commands.options import spec_from_options, spec_options
from alpose_bench.commands.runlog import LogProgress
from alpose_bench.core import activity
from alpose_bench.core.progress import Progress
from alpose_bench.errors import UserError
from alpose_bench.experiment.monitor import RunRecord
from alpose_bench.experiment.runner import Plan, experiment_lock, finish_complete_tasks, plan, run_plan
from alpose_bench.pose.metrics import metric_info
from alpose_bench.results.store import Store, StoreError


class RichProgress(Progress):
    """Overall, per-task and per-cycle progress in the terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = RichBars(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )  # fmt: skip
        self.cycles = None

    def start(self, the_plan, need_cycle0) -> None:
        self.plan = the_plan
        self.progress.start()
        total = len(the_plan.pending)
        self.overall = self.progress.add_task("tasks", total=total)
        self.shared = self.progress.add_task("shared cycle 0 (dataset x seed)", total=len(need_cycle0))
        # cycles each task has left; executors whose workers commit themselves (joblib) report a task only at its end
        self.left = {
            t: the_plan.spec.trained_cycles - len(the_plan.done.get(t, {})) for t in the_plan.pending
        }
        self.all_cycles = self.progress.add_task("cycles committed", total=sum(self.left.values()))

    def cycle0_done(self, dataset, seed) -> None:
        self.progress.advance(self.shared)

    def task_started(self, task) -> None:
        if self.cycles is not None:
            self.progress.remove_task(self.cycles)
        done = len(self.plan.done.get(task, {}))
        self.cycles = self.progress.add_task(
            f"  {task} cycles", total=self.plan.spec.trained_cycles, completed=done
        )

    def cycle_done(self, task, cycle) -> None:
        self.left[task] = self.left.get(task, 1) - 1
        self.progress.advance(self.all_cycles)
        if self.cycles is not None:
            self.progress.update(self.cycles, completed=cycle + 1)

    def task_done(self, task, error) -> None:
        self.progress.advance(self.overall)
        if error:
            self.console.print(f"[red]failed[/red] {task}: {error}")
        else:  # the cycles of a finished task that were not reported one by one
            self.progress.advance(self.all_cycles, max(0, self.left.pop(task, 0)))

    def finish(self, seconds: float) -> None:
        self.progress.stop()
        self.console.print(f"finished in {seconds:.1f} s")


def default_jobs(device: str, tasks: int) -> int:
    """One worker process per core on the CPU (small models scale better across processes than threads); one on
    a GPU, which a single process keeps busy."""
    from alpose_bench.engine.build import resolve_device

    if resolve_device(device).type == "cuda":
        return 1
    return max(1, min(os.cpu_count() or 1, tasks))


def result_set(out_dir: Path) -> Any:
    """The experiment's results, read once for the summary and the regime lines (None before any cycle)."""
    from alpose_bench.results.analysis import ResultsError, load_result_set

    try:
        return load_result_set(out_dir)
    except ResultsError:
        return None


def summary_rows(rs: Any) -> list[dict[str, Any]]:
    """One row per dataset x sampler of a result set: seeds, labelled images and the metric at the last committed
    cycle, mean training seconds per cycle and selection milliseconds per image."""
    if rs is None or rs.cycles.empty:
        return []
    df = rs.cycles
    rows = []
    last = df[df["cycle"] == df.groupby(["dataset", "sampler"])["cycle"].transform("max")]
    for (dataset, sampler), g in last.groupby(["dataset", "sampler"]):
        allc = df[(df["dataset"] == dataset) & (df["sampler"] == sampler)]
        rows.append({
            "dataset": dataset, "sampler": sampler, "seeds": int(g["seed"].nunique()),
            "labelled": int(g["n_labelled"].iloc[0]), "metric": g["metric"].iloc[0],
            "unit": metric_info(g["metric"].iloc[0]).unit, "mean": float(g["value"].mean()),
            "std": float(g["value"].std(ddof=1)) if len(g) > 1 else 0.0,
            "train_s_per_cycle": float(allc["train_s"].mean()),
            "select_ms_per_image": float(allc["select_ms_per_image"].mean()),
        })  # fmt: skip
    return rows


def summary_table(out_dir: Path, rs: Any) -> Table:
    """`summary_rows` as a table."""
    table = Table(title=f"Results: {out_dir}", title_justify="left")
    for col in (
        "dataset", "sampler", "seeds", "labelled", "metric (mean ± std)", "train s/cycle", "select ms/img",
    ):  # fmt: skip
        table.add_column(col)
    for r in summary_rows(rs):
        table.add_row(
            r["dataset"], r["sampler"], str(r["seeds"]), str(r["labelled"]),
            f"{metric_info(r['metric']).label} {r['mean']:.2f} ± {r['std']:.2f} {r['unit']}",
            f"{r['train_s_per_cycle']:.1f}", f"{r['select_ms_per_image']:.2f}",
        )  # fmt: skip
    return table


def regime_lines(rs: Any) -> list[str]:
    """The regime each dataset and held-out split is in (`comparisons.regime`), or how to find out."""
    from alpose_bench.results.comparisons import regime

    if rs is None:
        return []
    lines = []
    for split in rs.splits:
        for r in regime(rs.split_cycles(split), split=split):
            colour = {"error-seeking pays": "green", "easy and typical pays": "yellow"}.get(r.verdict, "red")
            lines.append(f"[bold {colour}]regime[/bold {colour}] {r.line()}\n  {r.meaning}.")
    if not lines:
        lines.append(
            "regime: unknown; add random,oracle-hard,oracle-easy to --samplers to see whether this experiment can "
            "rank samplers at all"
        )
    return lines


@click.command()
@spec_options(several_datasets=True)
@click.option("--seeds", type=int, default=None, help="Number of seeded repeats (seeds 0..N-1).")
@click.option("--init", type=int, default=None, help="Initial labelled images.")
@click.option("--budget", type=int, default=None, help="Images selected per cycle.")
@click.option(
    "--cycles", type=int, default=None, help="Acquisition cycles (the model is trained cycles + 1 times)."
)
@click.option("--epochs", type=int, default=None, help="Epochs per cycle after the first.")
@click.option("--epochs-first", type=int, default=None, help="Epochs of the first cycle (from scratch).")
@click.option(
    "--from-scratch",
    is_flag=True,
    default=False,
    help="Retrain from scratch each cycle (default: warm start).",
)
@click.option(
    "--protocol",
    type=click.Choice(["pool", "stream"]),
    default=None,
    help="pool (default): rank the whole unlabelled pool each cycle; stream: frames arrive in chunks and the "
    "device decides on each as it arrives, at a label rate (docs/stream.md).",
)
@click.option(
    "--stream-order",
    type=click.Choice(["deployment", "shuffled", "drift"]),
    default=None,
    help="Stream: the order frames arrive in (default deployment: the deployment prior where the dataset has one).",
)
@click.option("--stream-chunk", type=int, default=None,
              help="Stream: frames per chunk, one chunk per cycle (default: the pool beyond --init / --cycles).")  # fmt: skip
@click.option("--label-rate", type=float, default=None,
              help="Stream: labels per frame the device may ask for (default: --budget / --stream-chunk).")  # fmt: skip
@click.option("--budget-manager", default=None,
              help="Stream: fixed | quantile | balanced (default), or a plugin's name.")  # fmt: skip
@click.option("--stream-window", type=int, default=None,
              help="Stream: recent scores a running threshold reads (default 100).")  # fmt: skip
@click.option("--stream-buffer", type=int, default=None,
              help="Stream: frames a buffered sampler (Core-Set, TypiClust, ...) holds and selects among (default 100).")  # fmt: skip
@click.option("--name", default=None, help="Experiment name (folder under --out). Default: DATASET-PRESET.")
@click.option(
    "--out", default="results", show_default=True, type=click.Path(file_okay=False), help="Results folder."
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Tasks run in parallel: worker processes (local) or LocalCluster workers (dask). "
    "Default: one per CPU core on the CPU, 1 on a GPU.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this machine (joblib when --jobs > 1); dask: a dask.distributed cluster.",
)
@click.option(
    "--scheduler", default=None, help="Dask scheduler address (tcp://HOST:PORT); default: a LocalCluster."
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "rich", "plain", "json"]),
    default="auto",
    show_default=True,
    help="How progress is shown: rich bars (a terminal), plain event lines (a log file), or JSON lines (a "
    "pipeline). auto: rich in a terminal, plain otherwise.",
)
@click.option(
    "--quiet", is_flag=True, default=False, help="No progress: only failures and the final summary."
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=1.0, max=3600.0),
    default=30.0,
    show_default=True,
    help="Plain/JSON logs: seconds of silence after which a line says what every worker is doing.",
)
def run(
    samplers,
    datasets,
    preset,
    resolution,
    model,
    backbone_weights,
    dropout,
    dropout_kind,
    pool_size,
    device,
    data_root,
    sampler_params,
    dataset_options,
    config_file,
    seeds,
    init,
    budget,
    cycles,
    epochs,
    epochs_first,
    from_scratch,
    protocol,
    stream_order,
    stream_chunk,
    label_rate,
    budget_manager,
    stream_window,
    stream_buffer,
    name,
    out,
    jobs,
    executor,
    scheduler,
    log_format,
    quiet,
    heartbeat,
) -> None:
    """Run the active-learning protocol for every (dataset, sampler, seed) and record each cycle.

    Rerunning the same command resumes after the last committed cycle of each task.
    """
    if jobs is not None and not 1 <= jobs <= MAX_JOBS:
        raise UserError(f"--jobs must be between 1 and {MAX_JOBS} (worker processes), got {jobs}")
    if scheduler and executor != "dask":
        raise UserError("--scheduler needs --executor dask")
    spec = spec_from_options(
        preset, config_file, sampler_params, dataset_options,
        samplers=samplers, datasets=datasets, seeds=seeds, init=init, budget=budget, cycles=cycles, epochs=epochs,
        epochs_first=epochs_first, resolution=resolution, pool_size=pool_size, device=device, data_root=data_root,
        name=name, warm_start=False if from_scratch else None, dropout=dropout, dropout_kind=dropout_kind,
        model=model, backbone_weights=backbone_weights, protocol=protocol, stream_order=stream_order,
        stream_chunk=stream_chunk, label_rate=label_rate, budget_manager=budget_manager, stream_window=stream_window,
        stream_buffer=stream_buffer,
    )  # fmt: skip
    console = output_console()
    if log_format == "auto":
        log_format = "rich" if console.is_terminal else "plain"
    if quiet:
        log_format = "quiet"
    with contextlib.ExitStack() as stack:
        log = None
        if log_format in ("plain", "json"):
            log = stack.enter_context(LogProgress(sys.stdout, log_format, heartbeat))
        _run(spec, out, jobs, executor, scheduler, console, log, log_format)


MAX_JOBS = 1024  # worker processes; each holds a dataset and a model in memory


def _run(
    spec, out, jobs, executor, scheduler, console: Console, log: LogProgress | None, log_format: str
) -> None:
    say = console.print if log_format in ("rich", "plain") else (lambda *_a, **_k: None)
    say(
        f"[bold]{spec.name}[/bold]: preset {spec.preset}, datasets {', '.join(spec.datasets)}, "
        f"{spec.seeds} seed(s), {spec.init} + {spec.cycles} x {spec.budget} labelled images"
    )
    with activity.phase("planning (checking settings, preparing datasets)"):
        the_plan = plan(spec, Path(out))
    for note in the_plan.notes:
        say(f"[yellow]{note}[/yellow]")
    if jobs is None:
        jobs = default_jobs(spec.device, len(the_plan.pending))
    progress: Progress = Progress()
    if log is not None:
        log.jobs, progress = jobs, log
    elif log_format == "rich":
        progress = RichProgress(console)
    results: dict = {}
    with experiment_lock(the_plan.out_dir):
        for task in finish_complete_tasks(the_plan):
            say(f"closed {task}: every cycle was committed before its run ended")
        if not the_plan.pending:
            say("nothing to do: every task is complete (delete the folder to rerun from scratch)")
        else:
            try:
                with recorded_run(the_plan, jobs, executor):
                    results = run_plan(
                        the_plan, jobs=jobs, progress=progress, executor=executor, scheduler=scheduler
                    )
            except KeyboardInterrupt:
                console.print(
                    f"\n[yellow]interrupted[/yellow]; committed cycles are kept in {the_plan.out_dir}. "
                    "Rerun the same command to resume."
                )
                raise SystemExit(130) from None
            failed = {t: e for t, e in results.items() if e}
            if failed and log_format != "json":
                console.print(
                    f"[red]{len(failed)} task(s) failed[/red] (rerun the command to retry only them):"
                )
                for t, e in failed.items():
                    console.print(f"  {t}: {e}")
    if log_format == "json":
        assert log is not None
        rs = result_set(the_plan.out_dir)
        for row in summary_rows(rs):
            log.emit("result", f"{row['dataset']}/{row['sampler']}: {row['metric']} {row['mean']:.2f}", **row)
        for line in regime_lines(rs):
            log.emit("regime", Text.from_markup(line).plain)
    else:
        rs = result_set(the_plan.out_dir)
        console.print(summary_table(the_plan.out_dir, rs))
        for line in regime_lines(rs):
            console.print(line)
        console.print(f"results: {the_plan.out_dir / 'results.sqlite'}")
    if the_plan.pending and any(results.values()):
        raise SystemExit(1)


@contextlib.contextmanager
def recorded_run(the_plan: Plan, jobs: int, executor: str) -> Iterator[None]:
    """Record who runs the experiment, with how many workers and which tasks, and when the run ends
    (`alpose-bench status` reads it; a run killed with SIGKILL records no end, and its dead pid tells)."""
    spec = the_plan.spec
    record = RunRecord.of_this_process(
        jobs,
        executor,
        spec.cycles,
        spec.init,
        spec.budget,
        [(t.dataset, t.sampler, t.seed) for t in the_plan.tasks],
    )
    with Store(the_plan.out_dir) as store:
        store.set_meta("run", record.to_dict())
    try:
        yield
    finally:
        with contextlib.suppress(StoreError, OSError), Store(the_plan.out_dir) as store:
            store.set_meta("run", {**record.to_dict(), "ended": time.time()})
