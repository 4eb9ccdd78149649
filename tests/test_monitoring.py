"""Long runs nobody watches (issue 24): event lines a log file can read, heartbeats, and `alpose-bench status` on
a running, a finished, a killed and a failed experiment — each on a real `alpose-bench run`."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_factory import nan_loss_in
from plugin_factory import write_sampler_plugin
from test_cli import invoke
from test_reliability import STALLING_SAMPLER

from alpose_bench.commands.runlog import LogProgress
from alpose_bench.core import activity
from alpose_bench.experiment.monitor import CycleTime, estimate_left, experiment_status
from alpose_bench.spec import registry

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (.*)$")


def cli_process(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`alpose-bench ARGS` as its own process, stdout and stderr into `log` (not a terminal)."""
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "alpose_bench.cli", *args], stdout=fh, stderr=fh,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )  # fmt: skip


def status(folder: Path, *extra: str):
    return invoke("status", str(folder), *extra)


@pytest.mark.slow
def test_a_run_logged_to_a_file_writes_its_events_in_order_and_a_full_width_table(tmp_path: Path) -> None:
    """Output to a file: one timestamped line per event — dataset ready, run start, shared cycle 0, each cycle
    (metric, time left) in cycle order per task, each task done after its last cycle, the end — then the results
    table uncut (no ellipsis, one line per row)."""
    log = tmp_path / "run.log"
    args = ["run", "--preset", "smoke", "--samplers", "random,mpe", "--jobs", "2", "--out", str(tmp_path)]
    proc = cli_process([*args, "--name", "logged", "--heartbeat", "1"], log)
    assert proc.wait(timeout=300) == 0, log.read_text()
    text = log.read_text()
    lines = [m.group(1) for line in text.splitlines() if (m := LINE.match(line))]
    assert any(e.startswith("still running: ") for e in lines)  # heartbeats at 1 s, each naming what runs
    events = [e for e in lines if not e.startswith("still running")]
    assert events[0].startswith("dataset synth-human ready: pool 120, test 40")
    assert events[1].startswith("run logged: 2 of 2 tasks to run, 6 cycles to commit, 1 shared cycle-0")
    assert events[-1].startswith("run finished in")
    first_cycle = next(i for i, e in enumerate(events) if e.startswith("cycle "))
    assert any(e == "shared cycle 0 trained: synth-human seed 0" for e in events[:first_cycle])
    for sampler in ("random", "mpe"):
        task = f"synth-human/{sampler}/seed0"
        cycles = [i for i, e in enumerate(events) if e.startswith("cycle ") and f": {task}," in e]
        assert [events[i].split()[1] for i in cycles] == ["0/2", "1/2", "2/2"]
        assert "PCKh@0.5" in events[cycles[0]] and "time left ~" in events[cycles[0]]
        (done,) = [i for i, e in enumerate(events) if e.startswith(f"task done: {task} [")]
        assert done > cycles[-1]
    counts = [int(re.search(r"\[(\d+)/6 cycles", e).group(1)) for e in events if e.startswith("cycle ")]
    assert counts == list(range(1, 7))
    table = [line for line in text.splitlines() if "synth-human" in line and "│" in line]
    assert len(table) == 2 and all("…" not in line and "± " in line for line in table)


@pytest.mark.slow
def test_json_log_lines_carry_the_same_events_for_a_pipeline(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    args = ["run", "--preset", "smoke", "--samplers", "random", "--jobs", "1", "--out", str(tmp_path)]
    proc = cli_process([*args, "--name", "j", "--log-format", "json"], log)
    assert proc.wait(timeout=300) == 0, log.read_text()
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    kinds = [r["event"] for r in records]
    assert kinds[:3] == ["dataset", "start", "cycle0"]
    cycles = [r for r in records if r["event"] == "cycle"]
    assert [r["cycle"] for r in cycles] == [0, 1, 2]
    assert {"metric", "value", "n_labelled", "seconds", "left_s", "cycles_done"} <= set(cycles[0])
    assert kinds.index("task_done") > kinds.index("cycle") and "finish" in kinds
    result = next(r for r in records if r["event"] == "result")
    assert result["sampler"] == "random" and result["labelled"] == 48


def test_quiet_prints_no_progress_only_the_summary(tmp_path: Path) -> None:
    result = invoke(
        "run", "--preset", "smoke", "--samplers", "random", "--jobs", "1", "--out", str(tmp_path), "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert "cycle 0/2 committed" not in result.output and "preset smoke" not in result.output
    assert "Results:" in result.output


@pytest.mark.slow
def test_a_heartbeat_says_what_a_silent_phase_is_doing() -> None:
    """No event for longer than the heartbeat: a line names the phase and how far it is, so silence is a hang."""
    out = io.StringIO()
    with (
        LogProgress(out, "plain", heartbeat=1.0),
        activity.phase("preparing dataset demo", total=10, unit="images"),
    ):
        activity.advance(3)
        time.sleep(2.6)
    beats = [line for line in out.getvalue().splitlines() if "still running" in line]
    assert beats and "run: preparing dataset demo 3/10 images" in beats[0]


def test_a_log_whose_reader_went_away_does_not_stop_the_run() -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    log = LogProgress(Closed(), "plain")
    log.emit("x", "first")  # must not raise
    log.emit("x", "second")


def test_time_left_grows_with_the_labelled_set_and_divides_over_workers() -> None:
    """Cycle c costs in proportion to its labelled-set size; a shared cycle 0 not trained yet counts once."""
    times = [
        CycleTime("d", "a", 0, 0, 100, seconds=12.0, train_eval_s=10.0),
        CycleTime("d", "a", 0, 1, 200, seconds=20.0, train_eval_s=19.0),
    ]
    tasks = [("d", "a", 0), ("d", "b", 0), ("d", "b", 1)]
    one = estimate_left(times, tasks, cycles=2, init=100, budget=100, jobs=1)
    # a: cycle 2 (300 labelled at 0.1 s/label) = 30; b/0: select 2 + 20 + 30; b/1: shared training 10 + 2 + 20 + 30
    assert one == pytest.approx(30 + 52 + 62)
    assert estimate_left(times, tasks, 2, 100, 100, jobs=3) == pytest.approx(144 / 3)
    assert estimate_left(times[:1], tasks, 2, 100, 100, jobs=1) is None  # nothing after cycle 0 to fit yet


# -- status ----------------------------------------------------------------------------------------------------


@pytest.fixture()
def stalling_site(tmp_path: Path):
    site = write_sampler_plugin(
        tmp_path / "site", "stalling-sampler", "stalling = stalling_sampler:Stalling", "stalling_sampler",
        STALLING_SAMPLER,
    )  # fmt: skip
    yield site
    sys.modules.pop("stalling_sampler", None)
    registry.refresh()


@pytest.mark.slow
def test_status_of_a_running_then_killed_experiment(tmp_path: Path, stalling_site: Path) -> None:
    """While a real run stalls in its sampler's select of cycle 1: `status` says running, names the worker pid and
    its phase, exit 0. After SIGKILL: the task is killed, the run gone, exit 3. A rerun finishes it: exit 0."""
    marker = tmp_path / "stalled"
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(stalling_site), os.environ.get("PYTHONPATH")) if p),
        "ALPOSE_TEST_STALL": "select", "ALPOSE_TEST_MARKER": str(marker),
    }  # fmt: skip
    args = ["run", "--preset", "smoke", "--jobs", "1", "--samplers", "stalling", "--out", str(tmp_path)]
    proc = cli_process([*args, "--name", "live"], tmp_path / "run.log", env)
    folder = tmp_path / "live"
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), (tmp_path / "run.log").read_text()
        st = experiment_status(folder)
        assert st.run_alive is True and st.exit_code == 0
        (task,) = st.tasks
        assert (task.state, task.committed, task.total) == ("running", 1, 3)
        assert task.worker is not None and task.worker.pid == proc.pid and task.worker.phase == "selecting"
        shown = status(folder)
        assert shown.exit_code == 0, shown.output
        assert "running" in shown.output and f"pid {proc.pid}" in shown.output and "selecting" in shown.output
        assert "1/3 cycles committed" in " ".join(shown.output.split())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed = status(folder)
    assert killed.exit_code == 3, killed.output
    said = " ".join(killed.output.split())
    assert "no run is alive" in said and "killed" in said and "rerun" in said
    assert json.loads(status(folder, "--json").output)["tasks"][0]["state"] == "killed"


@pytest.mark.slow
def test_status_of_a_finished_and_of_a_failed_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mpe task's loss turns NaN in cycle 1: `status` says failed with the reason, exit 1. Rerun without the
    fault: finished, every task done, exit 0."""
    nan_loss_in(monkeypatch, "mpe")
    args = ("run", "--preset", "smoke", "--jobs", "1", "--samplers", "random,mpe", "--out", str(tmp_path))
    assert invoke(*args, "--name", "f").exit_code == 1
    failed = status(tmp_path / "f")
    assert failed.exit_code == 1, failed.output
    said = " ".join(failed.output.split())
    assert "failed" in said and "pose loss became nan" in said
    monkeypatch.undo()
    assert invoke(*args, "--name", "f").exit_code == 0
    done = status(tmp_path / "f")
    assert done.exit_code == 0, done.output
    assert "finished" in done.output and "2/2 tasks done, 6/6 cycles committed" in " ".join(
        done.output.split()
    )


def test_status_of_a_folder_without_results_is_one_line(tmp_path: Path) -> None:
    result = status(tmp_path / "nothing")
    assert result.exit_code == 2 and result.output.startswith("Error: no results in")
    assert len(result.output.strip().splitlines()) == 1


def test_status_watch_on_a_finished_experiment_prints_once_and_exits(tmp_path: Path) -> None:
    """--watch refreshes while a run is alive; on a finished experiment it prints the table once and exits 0."""
    args = ("run", "--preset", "smoke", "--jobs", "1", "--samplers", "random", "--out", str(tmp_path))
    assert invoke(*args, "--name", "w").exit_code == 0
    started = time.monotonic()
    watched = status(tmp_path / "w", "--watch", "--interval", "0.5")
    assert watched.exit_code == 0 and time.monotonic() - started < 30
    assert watched.output.count("1/1 tasks done") == 1 and "finished" in watched.output
