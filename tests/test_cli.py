"""The command line as a user meets it: one-line errors with exit status 2, listing, a smoke run, Ctrl-C resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from alpose_bench.cli import cli
from alpose_bench.results import read as results


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), obj={})


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert lines[-1].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output


def test_list_shows_samplers_datasets_and_presets():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for name in ("random", "synth-human", "synth-hand", "smoke", "quick", "paper"):
        assert name in result.output


def test_unknown_names_list_the_known_ones(tmp_path):
    one_line_error(
        invoke("run", "--samplers", "vl4poze", "--out", str(tmp_path)),
        "unknown sampler 'vl4poze'",
        "Known samplers:",
        "random",
    )
    one_line_error(
        invoke("run", "--dataset", "mpi", "--out", str(tmp_path)), "unknown dataset 'mpi'", "synth-human"
    )
    one_line_error(invoke("run", "--preset", "fast", "--out", str(tmp_path)), "Known presets")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--budget", "0"], "budget must be positive"),
        (["--seeds", "-2"], "seeds must be positive"),
        (["--init", "100000"], "lower --budget or --cycles"),
        (["--sampler-param", "random.k=3"], "has no parameter 'k'"),
        (["--jobs", "0"], "--jobs must be between 1 and 1024"),
        (["--config", "missing.toml"], "does not exist"),
        # found by tests/test_fuzz_validation.py: tracebacks (sampler checks), a hang (huge pool), a write outside --out
        (
            ["--samplers", "mpe", "--sampler-param", "mpe.num_peaks=0"],
            "sampler 'mpe': num_peaks must be at least 1",
        ),
        (
            ["--samplers", "mpe", "--sampler-param", "mpe.num_peaks=abc"],
            "sampler 'mpe': num_peaks must be a whole number, got 'abc'",
        ),
        # a typo once passed planning, trained cycle 0, then died in the peak finder with a traceback
        (
            ["--samplers", "vl4pose,random", "--sampler-param", "vl4pose.exclude_border=ture"],
            "sampler 'vl4pose': exclude_border must be true or false, got 'ture'",
        ),
        (
            ["--samplers", "egl", "--sampler-param", "egl.k=2.5"],
            "sampler 'egl': k must be a whole number, got 2.5",
        ),
        (["--pool-size", "1000000000000"], "pool_size must be at most 1,000,000"),
        (["--name", "../elsewhere"], "name must be a plain folder name"),
        (
            ["--dataset-option", "bogus=1"],
            "dataset 'synth-human' has no option 'bogus'; its options: ood_appearance, ood_size",
        ),
        (["--dataset-option", "synth-hand.cube_mm=150"], "dataset 'synth-hand', which is not in this run"),
        (["--dataset-option", "ood_size"], "--dataset-option expects KEY=VALUE"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, args, fragment):
    one_line_error(
        invoke("run", "--preset", "smoke", "--samplers", "random", "--out", str(tmp_path), *args), fragment
    )


def test_dataset_options_are_part_of_the_experiment(tmp_path):
    args = ["run", "--preset", "smoke", "--samplers", "random", "--cycles", "0", "--out", str(tmp_path)]
    result = invoke(*args, "--name", "o", "--dataset-option", "ood_size=3")
    assert result.exit_code == 0, result.output
    spec = results.load_experiment(tmp_path / "o")["spec"]
    assert spec["dataset_options"] == {"synth-human": {"ood_size": 3}}
    config = tmp_path / "exp.toml"
    config.write_text("[dataset_options.synth-human]\nood_size = 5\n")
    again = invoke(*args, "--name", "o", "--config", str(config), "--dataset-option", "ood_size=3")
    assert "nothing to do" in again.output  # the command line beats the file: the same experiment
    one_line_error(invoke(*args, "--name", "o", "--config", str(config)), "settings differ: dataset_options")


def test_diagnose_takes_the_shared_dataset_options():
    one_line_error(
        invoke("diagnose", "--preset", "smoke", "--samplers", "random", "--dataset-option", "bogus=1"),
        "dataset 'synth-human' has no option 'bogus'",
        "its options: ood_appearance, ood_size",
    )


def test_debug_shows_the_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["--debug", "run", "--budget", "0", "--out", str(tmp_path)], obj={})
    assert result.exit_code != 0 and result.exception is not None


def test_smoke_run_records_every_cycle_and_prints_a_summary(tmp_path):
    result = invoke("run", "--preset", "smoke", "--samplers", "random", "--out", str(tmp_path), "--name", "s")
    assert result.exit_code == 0, result.output
    assert "Results" in result.output and "random" in result.output
    df = results.load(tmp_path / "s")
    assert len(df) == 3 and df["n_labelled"].is_monotonic_increasing
    again = invoke("run", "--preset", "smoke", "--samplers", "random", "--out", str(tmp_path), "--name", "s")
    assert "nothing to do" in again.output
    other = invoke(
        "run",
        "--preset",
        "smoke",
        "--samplers",
        "random",
        "--budget",
        "8",
        "--out",
        str(tmp_path),
        "--name",
        "s",
    )
    one_line_error(other, "holds a different experiment", "budget")


def _cycles(db) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM cycles").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_killed_run_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path, sig):
    exe = [sys.executable, "-m", "alpose_bench.cli"]
    # enough cycles that a loaded machine cannot finish the run between the first commit and the signal
    cycles = 6
    common = [
        "run",
        "--preset",
        "smoke",
        "--samplers",
        "random",
        "--cycles",
        str(cycles),
        "--out",
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(exe + common + ["--name", "full"], check=True, capture_output=True, env=env, timeout=300)
    # a suite started in the background of a non-interactive shell inherits SIGINT ignored, and Python then keeps
    # it ignored: give the run the default disposition, as a terminal's Ctrl-C finds it
    proc = subprocess.Popen(
        exe + common + ["--name", "cut"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    db = tmp_path / "cut" / "results.sqlite"
    deadline = time.time() + 240
    while _cycles(db) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    output = " ".join(proc.communicate(timeout=60)[0].decode().split())
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert "Rerun the same command to resume" in output and "Traceback" not in output
    assert 1 <= _cycles(db) < cycles + 1
    subprocess.run(exe + common + ["--name", "cut"], check=True, capture_output=True, env=env, timeout=300)
    cols = ["dataset", "sampler", "seed", "cycle", "n_labelled", "value"]
    full, cut = results.load(tmp_path / "full"), results.load(tmp_path / "cut")
    assert full[cols].equals(cut[cols])
    sel = ["cycle", "rank", "index"]
    assert results.load_selections(tmp_path / "full")[sel].equals(
        results.load_selections(tmp_path / "cut")[sel]
    )


def test_progress_counts_every_committed_cycle_whichever_executor_reports_them():
    """In-process and Dask runs report each cycle; joblib workers only report a task's end: the bar ends full."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from alpose_bench.commands.run import RichProgress
    from alpose_bench.spec.config import build_spec

    a, b, c = "synth-human/random/seed0", "synth-human/mpe/seed0", "synth-human/vl4pose/seed0"
    the_plan = SimpleNamespace(
        spec=build_spec("smoke", None, {"cycles": 2}), pending=[a, b, c], done={b: {0: []}}
    )
    progress = RichProgress(Console(file=io.StringIO()))
    progress.start(the_plan, [])
    progress.task_started(a)
    progress.cycle_done(a, 0)
    progress.cycle_done(a, 1)
    progress.task_done(a, None)  # reported two of its three cycles one by one
    progress.task_done(b, None)  # resumed after cycle 0: two cycles, reported only at its end
    progress.task_done(c, "TrainingDivergedError: pose loss became nan")  # failed: its cycles never committed
    bar = progress.progress.tasks[progress.all_cycles]
    progress.finish(0.0)
    assert (bar.completed, bar.total) == (5, 8)
