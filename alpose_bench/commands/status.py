"""`alpose-bench status EXPERIMENT`: how far an experiment is, from another shell, without touching it.

Exit status (for schedulers): 0 finished, or running with nothing failed; 1 a task failed; 3 the run is gone while
tasks are unfinished (killed or stopped: rerun its command to resume); 2 bad input.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from alpose_bench.commands.console import output_console
from alpose_bench.commands.runlog import duration
from alpose_bench.experiment.monitor import (
    DONE,
    FAILED,
    INTERRUPTED,
    KILLED,
    NOT_STARTED,
    ORPHANED,
    QUEUED,
    RUNNING,
    ExperimentStatus,
    experiment_status,
)  # fmt: skip

COLOURS = {
    DONE: "green", RUNNING: "cyan", QUEUED: "white", FAILED: "red", KILLED: "red", ORPHANED: "red",
    INTERRUPTED: "yellow", NOT_STARTED: "yellow",
}  # fmt: skip


def headline(st: ExperimentStatus) -> str:
    """Who runs the experiment, how far it is, how long is left."""
    done = sum(t.committed for t in st.tasks)
    total = sum(t.total for t in st.tasks)
    tasks_done = sum(t.state == DONE for t in st.tasks)
    if st.run is None:
        who = "no run recorded (an experiment of an older version, or run from Python)"
    else:
        since = datetime.fromtimestamp(st.run.since).astimezone().strftime("%Y-%m-%d %H:%M")
        where = f"pid {st.run.pid} on {st.run.host}, {st.run.jobs} worker(s), started {since}"
        if st.run_alive:
            who = f"[cyan]running[/cyan] ({where}, {duration(time.time() - st.run.since)} ago)"
        elif st.run_alive is None:
            who = f"run on another host ({where}); its liveness cannot be checked from here"
        elif st.finished:
            who = f"[green]finished[/green] (last run: {where})"
        else:
            who = f"[red]no run is alive[/red] (last run: {where}); rerun its command to resume"
    left = "" if st.finished or not st.run_alive else f", time left ~{duration(st.left_s)}"
    return (
        f"{st.out_dir}: {who}\n{tasks_done}/{len(st.tasks)} tasks done, {done}/{total} cycles committed{left}"
    )


def status_table(st: ExperimentStatus) -> Table:
    """One row per dataset x sampler x seed."""
    table = Table(title_justify="left")
    for col in ("dataset", "sampler", "seed", "cycles", "state", "worker", "doing", "s/cycle", "left"):
        table.add_column(col)
    now = time.time()
    for t in st.tasks:
        worker = doing = ""
        if t.worker is not None and t.state in (RUNNING, ORPHANED):
            worker = f"pid {t.worker.pid}" + ("" if t.worker_alive else " (?)")
            doing = t.worker.doing(now)
            doing += f", last heard {now - t.worker.updated:.0f} s ago"
        elif t.state == FAILED and t.error:
            doing = t.error.splitlines()[0]
        elif t.state == KILLED:
            doing = "its process is gone; rerun the command to resume"
        elif t.state == ORPHANED:
            doing = "its run was killed but its worker goes on"
        colour = COLOURS.get(t.state, "white")
        table.add_row(
            t.dataset, t.sampler, str(t.seed), f"{t.committed}/{t.total}", f"[{colour}]{t.state}[/{colour}]", worker,
            doing, "" if t.seconds_per_cycle is None else f"{t.seconds_per_cycle:.1f}",
            "" if t.state == DONE else f"~{duration(t.left_s)}",
        )  # fmt: skip
    return table


def shared_lines(st: ExperimentStatus) -> list[str]:
    now = time.time()
    return [f"shared cycle 0: pid {s.pid}: {s.describe(now)}" for s in st.shared]


def as_json(st: ExperimentStatus) -> str:
    """The status as one JSON object."""
    return json.dumps({
        "experiment": str(st.out_dir), "run_alive": st.run_alive, "finished": st.finished,
        "left_s": None if st.left_s is None else round(st.left_s), "exit_code": st.exit_code,
        "run": None if st.run is None else {k: v for k, v in st.run.to_dict().items() if k != "tasks"},
        "tasks": [
            {"dataset": t.dataset, "sampler": t.sampler, "seed": t.seed, "committed": t.committed, "total": t.total,
             "state": t.state, "error": t.error, "seconds_per_cycle": t.seconds_per_cycle,
             "left_s": None if t.left_s is None else round(t.left_s),
             "worker": None if t.worker is None else {
                 "pid": t.worker.pid, "host": t.worker.host, "alive": t.worker_alive, "cycle": t.worker.cycle,
                 "phase": t.worker.phase, "done": t.worker.done, "total": t.worker.total,
                 "updated": t.worker.updated}}
            for t in st.tasks
        ],
    })  # fmt: skip


def render(st: ExperimentStatus) -> Group:
    return Group(headline(st), *shared_lines(st), status_table(st))


@click.command()
@click.argument("experiment", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--watch", is_flag=True, default=False, help="Refresh until the run ends (Ctrl-C to stop watching)."
)
@click.option(
    "--interval", type=click.FloatRange(min=0.5, max=3600), default=5.0, show_default=True,
    help="Seconds between refreshes with --watch.",
)  # fmt: skip
@click.option(
    "--json", "as_json_", is_flag=True, default=False, help="Print one JSON object instead of a table."
)
def status(experiment: Path, watch: bool, interval: float, as_json_: bool) -> None:
    """How far EXPERIMENT (a results folder) is: per dataset x sampler x seed the cycles committed, the task's
    state, whether its worker is alive, seconds per cycle and the time left. Read-only: safe while a run writes.

    Exit status: 0 finished or running fine, 1 a task failed, 3 the run is gone while tasks are unfinished."""
    st = experiment_status(experiment)
    if as_json_:
        click.echo(as_json(st))
        raise SystemExit(st.exit_code)
    console = output_console()
    if watch and console.is_terminal:
        try:
            with Live(render(st), console=console, auto_refresh=False) as live:
                while st.run_alive and not st.finished:
                    time.sleep(interval)
                    st = experiment_status(experiment)
                    live.update(render(st), refresh=True)
        except KeyboardInterrupt:
            pass
    elif watch:  # a log: one block per refresh
        console.print(render(st))
        while st.run_alive and not st.finished:
            time.sleep(interval)
            st = experiment_status(experiment)
            console.print(render(st))
    else:
        console.print(render(st))
    raise SystemExit(st.exit_code)
