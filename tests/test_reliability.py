"""Faults and bad input a long benchmark run meets (issue 7), as the user meets them on the command line.

Each test checks what the user sees (a one-line `Error:` with exit status 2, or the failed-task summary) and that
nothing already committed is lost: a rerun of the same command finishes with the rows of an uninterrupted run.
docs/reliability.md lists every case with the test that checks it, here or in the other test modules.

Faults are injected, never waited for: a full disk and a read-only folder are simulated at the call that would fail
(tests may run as root, whom chmod does not stop), a NaN loss by patching the loss of one task, and the kills in
mid-cycle by a test sampler that touches a marker file and then sleeps at the chosen point.
"""

from __future__ import annotations

import ast
import errno
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from datasets_real_factory import real_lsp_subset, write_lsp_folder
from fault_factory import nan_loss_in
from plugin_factory import PROBE_HEAD, write_sampler_plugin
from test_cli import invoke, one_line_error

from alpose_bench.engine import loop
from alpose_bench.engine.build import Task
from alpose_bench.engine.checkpoints import cycle0_path, task_checkpoint
from alpose_bench.experiment.runner import experiment_lock, plan
from alpose_bench.results import read as results
from alpose_bench.results.store import Store
from alpose_bench.spec import registry
from alpose_bench.spec.config import build_spec

REPO = Path(__file__).resolve().parents[1]
ROWS = ["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "n_selected"]
PICKS = ["dataset", "sampler", "seed", "cycle", "rank", "index"]


def run_cli(out: Path, name: str, *args: str):
    """`alpose-bench run --preset smoke` in this process (one job, so patches made by a test apply)."""
    return invoke("run", "--preset", "smoke", "--jobs", "1", "--out", str(out), "--name", name, *args)


def rows(folder: Path) -> pd.DataFrame:
    return results.load(folder)[ROWS].reset_index(drop=True)


def picks(folder: Path) -> pd.DataFrame:
    return results.load_selections(folder)[PICKS].reset_index(drop=True)


def flat(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture(scope="module")
def random_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Folder, rows and selections of an uninterrupted `run --preset smoke --samplers random`."""
    out = tmp_path_factory.mktemp("reference")
    result = run_cli(out, "ref", "--samplers", "random")
    assert result.exit_code == 0, result.output
    return out / "ref", rows(out / "ref"), picks(out / "ref")


def dump(folder: Path) -> list[str]:
    """Every row of every table of an experiment's database, as SQL."""
    with sqlite3.connect(f"file:{folder / Store.FILENAME}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--samplers", "randm"], "unknown sampler 'randm'"),
        (["--samplers", "random", "--budget", "0"], "budget must be positive"),
        (["--samplers", "random", "--init", "100000"], "lower --budget or --cycles"),
        (["--samplers", "random,mpe", "--dataset", "synth-hand"], "drop 'mpe' from --samplers"),
        (["--samplers", "random", "--budget", "8"], "holds a different experiment"),
    ],
    ids=["unknown-sampler", "zero-budget", "init-over-pool", "incompatible", "different-experiment"],
)
def test_bad_input_leaves_a_stored_experiment_untouched(
    random_reference, args: list[str], fragment: str
) -> None:
    """Bad input aimed at a finished experiment's --out/--name is refused in one line, and every stored row stays
    as it was."""
    folder = random_reference[0]
    before = dump(folder)
    one_line_error(run_cli(folder.parent, folder.name, *args), fragment)
    assert dump(folder) == before


# -- read-only output folder ------------------------------------------------------------------------------------


def _inside(path: object, folder: Path) -> bool:
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
    if not text or text.startswith("file:"):
        return False
    return os.path.commonpath([os.path.abspath(text), str(folder)]) == str(folder)


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a folder read-only. A normal user gets chmod; root, whom chmod does not stop, gets what the OS and
    SQLite do on a read-only mount: creating a folder there fails with EACCES, and SQLite opens an existing
    database read-only (its first write then fails with "attempt to write a readonly database")."""
    changed: list[Path] = []

    def apply(folder: Path) -> None:
        folder = Path(os.path.abspath(folder))
        if os.geteuid() != 0:
            for p in [folder, *folder.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
                changed.append(p)
            return
        real_mkdir, real_connect = os.mkdir, sqlite3.connect

        def mkdir(path, mode=0o777, *, dir_fd=None):
            if _inside(path, folder):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_mkdir(path, mode, dir_fd=dir_fd)

        def connect(database, *args, **kwargs):
            if _inside(database, folder):
                kwargs.pop("uri", None)
                return real_connect(f"file:{database}?mode=ro", *args, uri=True, **kwargs)
            return real_connect(database, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(sqlite3, "connect", connect)

    yield apply
    for p in reversed(changed):
        p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("existing", [False, True], ids=["new-experiment", "existing-experiment"])
def test_a_read_only_output_folder_is_a_one_line_error(tmp_path: Path, read_only, existing: bool) -> None:
    """`run --out <read-only folder>`: one line naming the folder and the fix, exit 2, for a new experiment (its
    folder cannot be created) and for resuming one already bound there (its database cannot be written)."""
    out = tmp_path / "out"
    out.mkdir()
    if existing:
        plan(build_spec("smoke", None, {"samplers": "random", "name": "e"}), out)
        assert (out / "e" / Store.FILENAME).exists()
    read_only(out)
    result = run_cli(out, "e", "--samplers", "random")
    one_line_error(result, f"cannot write results to {out / 'e'}", "choose a writable folder with --out")
    assert not (out / "e" / "checkpoints").exists()


# -- disk full ----------------------------------------------------------------------------------------------------


class FullDisk:
    """A connection on a full disk: the first statement of a transaction goes through, the next fails as SQLite
    fails (so the transaction must be rolled back for the cycle not to be half-written)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self):
        return self._conn.__enter__()

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)

    def execute(self, *args):
        return self._conn.execute(*args)

    def executemany(self, *args):
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


@pytest.mark.parametrize("where", ["database", "checkpoint"])
def test_disk_full_keeps_committed_cycles_and_a_rerun_finishes_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_reference, where: str
) -> None:
    """The disk fills up after cycle 0 is committed, while cycle 1 is written (its results-database transaction,
    or its checkpoint): one line naming the file and the fix, exit 2; cycle 0 intact, no half cycle and no partial
    file left; after space is freed the same command resumes and ends with the rows of an uninterrupted run."""
    folder = tmp_path / "full"
    if where == "database":
        commit = Store.commit_cycle

        def commit_on_full_disk(self, record):
            if record.cycle != 1:
                return commit(self, record)
            conn, self.conn = self.conn, FullDisk(self.conn)
            try:
                return commit(self, record)
            finally:
                self.conn = conn

        monkeypatch.setattr(Store, "commit_cycle", commit_on_full_disk)
        target = folder / Store.FILENAME
    else:
        fdopen = os.fdopen

        class HalfThenFull:
            """A file that takes half of what is written, then reports a full disk."""

            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, data):
                self.fh.write(bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name):
                return getattr(self.fh, name)

        def fdopen_until_full(fd, *args, **kwargs):
            fh = fdopen(
                fd, *args, **kwargs
            )  # the atomic writer's temporary file of cycle 1's checkpoint fills up
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            return HalfThenFull(fh) if name.startswith(".cycle1.pt.") else fh

        monkeypatch.setattr(os, "fdopen", fdopen_until_full)
        target = task_checkpoint(folder, "synth-human", "random", 0, 1)

    result = run_cli(tmp_path, "full", "--samplers", "random")
    one_line_error(result, f"disk full while writing {target}", "free space and rerun to resume")
    _, ref_rows, ref_picks = random_reference
    pd.testing.assert_frame_equal(rows(folder), ref_rows[ref_rows["cycle"] == 0])
    pd.testing.assert_frame_equal(picks(folder), ref_picks[ref_picks["cycle"] == 0])
    assert not list(folder.rglob("*.tmp*"))

    monkeypatch.undo()  # space is freed
    again = run_cli(tmp_path, "full", "--samplers", "random")
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(rows(folder), ref_rows)
    pd.testing.assert_frame_equal(picks(folder), ref_picks)


# -- two runs on one experiment -----------------------------------------------------------------------------------


def test_a_second_run_on_a_running_experiment_is_refused(tmp_path: Path) -> None:
    """While a run holds the experiment's lock (held here through `experiment_lock`, an flock that a second open
    of the lock file cannot take, in this process as in another), a second `run` on the same --out/--name stops
    with one line naming the holder and what to do, and runs nothing."""
    folder = tmp_path / "e"
    with experiment_lock(folder):
        result = run_cli(tmp_path, "e", "--samplers", "random")
    holder = f"pid {os.getpid()} on {platform.node()}"
    one_line_error(
        result, f"{folder} is being run by {holder}", "wait for it to finish or use another --name"
    )
    with Store(folder, readonly=True) as store:
        assert store.statuses() == {}
        assert store.completed_cycles("synth-human", "random", 0) == []
    assert not (folder / "checkpoints").exists()


# -- a diverging task ---------------------------------------------------------------------------------------------


def test_a_nan_loss_fails_only_its_task_and_a_rerun_retries_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pose loss of the mpe task turns NaN in cycle 1 (the random task's training is untouched): that task
    stops with the reason and records no cycle 1, the random task finishes, the summary names the failed task
    and why, and the exit status is 1. Rerun without the fault, only the mpe task runs, and it completes."""
    nan_loss_in(monkeypatch, "mpe")
    folder = tmp_path / "nan"
    result = run_cli(tmp_path, "nan", "--samplers", "random,mpe")
    assert result.exit_code == 1, result.output
    said = flat(result.output)
    assert "1 task(s) failed" in said and "rerun the command to retry only them" in said
    assert "synth-human/mpe/seed0: TrainingDivergedError: pose loss became nan" in said
    assert "Traceback" not in result.output
    with Store(folder, readonly=True) as store:
        assert store.completed_cycles("synth-human", "mpe", 0) == [0]
        assert store.completed_cycles("synth-human", "random", 0) == [0, 1, 2]
        status = store.statuses()
    assert status[("synth-human", "random", 0)] == ("done", None)
    assert status[("synth-human", "mpe", 0)][0] == "failed"
    assert "pose loss became nan" in status[("synth-human", "mpe", 0)][1]
    random_before = results.load(folder).query("sampler == 'random'").reset_index(drop=True)

    monkeypatch.undo()
    ran: list[Task] = []
    real_run_task = loop.run_task

    def spy(setup, *args, **kwargs):
        ran.append(setup.task)
        return real_run_task(setup, *args, **kwargs)

    monkeypatch.setattr("alpose_bench.experiment.executors.run_task", spy)
    again = run_cli(tmp_path, "nan", "--samplers", "random,mpe")
    assert again.exit_code == 0, again.output
    assert ran == [Task("synth-human", "mpe", 0)]
    after = results.load(folder)
    random_after = after.query("sampler == 'random'").reset_index(drop=True)
    pd.testing.assert_frame_equal(random_after, random_before)  # timings included: not retrained
    assert after.query("sampler == 'mpe'")["cycle"].tolist() == [0, 1, 2]


# -- bad input without a CLI test elsewhere -----------------------------------------------------------------------


def test_a_sampler_that_cannot_run_on_the_dataset_is_refused(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "e", "--dataset", "synth-hand", "--samplers", "random,mpe")
    one_line_error(result, "sampler 'mpe' needs a heatmap (2D) model", "drop 'mpe' from --samplers")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    "make_root, fragment",
    [
        (lambda tmp: tmp / "nowhere", "is not a folder; it should hold lsp/joints.mat and lsp/images/"),
        (lambda tmp: tmp, "missing {root}/lsp/joints.mat; obtain it from"),
    ],
    ids=["missing", "incomplete"],
)
def test_a_missing_or_incomplete_data_root_is_refused(tmp_path: Path, make_root, fragment: str) -> None:
    root = make_root(tmp_path)
    out = tmp_path / "out"
    result = run_cli(out, "e", "--dataset", "lsp", "--data-root", str(root), "--samplers", "random")
    one_line_error(result, fragment.format(root=root))
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_broken_jpeg_is_named_by_run_and_by_data_check(
    tmp_path: Path, shared_data: Path, damage: str
) -> None:
    """An LSP layout (real joints.mat, placeholder images) with one JPEG cut in half or replaced by garbage:
    both `run` and `data check` stop with one line naming that file, exit 2, and nothing is stored."""
    root = tmp_path / "root"
    write_lsp_folder(root, "lsp", real_lsp_subset(shared_data, "lsp", 24))
    image = root / "lsp" / "images" / "im0005.jpg"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a jpeg at all")
    out = tmp_path / "out"
    result = run_cli(out, "e", "--dataset", "lsp", "--data-root", str(root), "--samplers", "random")
    one_line_error(result, f"cannot decode image {image}", "replace it with the original")
    assert not out.exists()
    check = invoke("data", "check", "lsp", "--data-root", str(root))
    one_line_error(check, "lsp/images/im0005.jpg", "replace them with the originals")


# -- kills in mid-cycle -------------------------------------------------------------------------------------------

STALLING_SAMPLER = (
    '''
"""Test sampler: random picks plus a small auxiliary head. With ALPOSE_TEST_STALL=select it touches the marker
file ALPOSE_TEST_MARKER and sleeps in its first select of cycle 1; with =train, in the first auxiliary-loss call
after its first select (the training of cycle 1 in the task's process: the shared cycle-0 training uses another
instance, which never selects)."""
import os
import time
from dataclasses import dataclass

import numpy as np
from torch import nn

from alpose_bench.samplers.base import Sampler


def stall(phase):
    if os.environ.get("ALPOSE_TEST_STALL") == phase:
        with open(os.environ["ALPOSE_TEST_MARKER"], "w"):
            pass
        time.sleep(600)

'''
    + PROBE_HEAD
    + """

@dataclass
class Stalling(Sampler):
    name = "stalling"
    description = "test sampler that stalls where ALPOSE_TEST_STALL says"

    def __post_init__(self):
        self.selections = 0

    def auxiliary(self, info):
        return Probe(info.feature_channels[-1])

    def auxiliary_loss(self, aux_out, batch, pose_out):
        if self.selections:
            stall("train")
        return aux_out.float().pow(2).mean()

    def select(self, ctx, budget):
        if ctx.cycle == 1:
            stall("select")
        self.selections += 1
        n = len(ctx.pool)
        return np.sort(ctx.rng.choice(n, size=min(budget, n), replace=False)).astype(np.int64)
"""
)


@pytest.fixture(scope="module")
def stalling_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `stalling` sampler as an installed distribution (dist-info + module) on sys.path; also for PYTHONPATH."""
    root = write_sampler_plugin(
        tmp_path_factory.mktemp("stalling-plugin"),
        "stalling-sampler",
        "stalling = stalling_sampler:Stalling",
        "stalling_sampler",
        STALLING_SAMPLER,
    )
    with pytest.MonkeyPatch.context() as m:
        m.syspath_prepend(str(root))
        registry.refresh()
        yield root
    sys.modules.pop("stalling_sampler", None)
    registry.refresh()


@pytest.fixture(scope="module")
def stalling_reference(stalling_plugin: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("stalling-reference")
    result = run_cli(out, "ref", "--samplers", "stalling")
    assert result.exit_code == 0, result.output
    return rows(out / "ref"), picks(out / "ref")


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def committed_cycles(db: Path) -> list[int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [c for (c,) in conn.execute("SELECT cycle FROM cycles ORDER BY cycle")]


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["select", "train"])
def test_sigkill_in_mid_cycle_then_rerun_gives_the_uninterrupted_rows(
    tmp_path: Path, stalling_plugin: Path, stalling_reference, phase: str
) -> None:
    """A real `alpose-bench run` process is SIGKILLed in cycle 1, after cycle 0 is committed: in the sampler's
    select (phase "select") or in the training of cycle 1 (phase "train"). The test sampler touches a marker file
    and then sleeps at exactly that point, so the kill cannot land anywhere else. The database is intact
    (PRAGMA integrity_check) and holds cycle 0 only; the same command rerun (here in-process, without the stall)
    ends with the rows and selections of an uninterrupted run."""
    marker = tmp_path / "stalled"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(stalling_plugin), os.environ.get("PYTHONPATH")) if p),
        "ALPOSE_TEST_STALL": phase,
        "ALPOSE_TEST_MARKER": str(marker),
    }
    args = [
        "--preset",
        "smoke",
        "--jobs",
        "1",
        "--samplers",
        "stalling",
        "--out",
        str(tmp_path),
        "--name",
        "cut",
    ]
    log = tmp_path / "run.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alpose_bench.cli", "run", *args], stdout=fh, stderr=fh, env=env
        )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the run never reached the {phase} stall:\n{log.read_text()}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    db = tmp_path / "cut" / Store.FILENAME
    assert integrity(db) == "ok"
    assert committed_cycles(db) == [0]

    again = run_cli(tmp_path, "cut", "--samplers", "stalling")
    assert again.exit_code == 0, again.output
    ref_rows, ref_picks = stalling_reference
    pd.testing.assert_frame_equal(rows(tmp_path / "cut"), ref_rows)
    pd.testing.assert_frame_equal(picks(tmp_path / "cut"), ref_picks)
    assert integrity(db) == "ok"


# -- safe loading -------------------------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs os.mkdir(path): a stand-in for the arbitrary code a tampered checkpoint could run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


@pytest.mark.parametrize("kind", ["tampered", "damaged"])
def test_a_checkpoint_that_is_not_plain_weights_is_refused(tmp_path: Path, kind: str) -> None:
    """A shared cycle-0 checkpoint replaced by a pickle that runs code: the run stops with one line naming the file
    and the fix; the tampered file's code never runs (torch.load(weights_only=True)), though a plain unpickling of
    the same file does run it. Cut short instead (what a crash leaves): cycle 0 is trained again, with a warning."""
    marker = tmp_path / "code-ran"
    ckpt = cycle0_path(tmp_path / "out" / "e", "synth-human", 0)
    ckpt.parent.mkdir(parents=True)
    torch.save({"model": Payload(marker)}, ckpt)
    if kind == "damaged":
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    result = run_cli(tmp_path / "out", "e", "--samplers", "random")
    assert not marker.exists()
    if kind == "damaged":  # what a crash can leave: trained again, and the run goes on
        assert result.exit_code == 0, result.output
        assert f"checkpoint {ckpt} cannot be loaded (damaged:" in result.output
        return
    one_line_error(result, f"checkpoint {ckpt} cannot be loaded", "never unpickled", "delete it and rerun")
    if kind == "tampered":
        torch.load(ckpt, weights_only=False)  # the payload is live: plain unpickling runs it
        assert marker.is_dir()


@pytest.mark.parametrize(
    "config, args, fragment",
    [
        ('budget = __import__("os").mkdir("{marker}")\n', [], "is not valid TOML"),
        (
            "[experiment]\nbudget = \"__import__('os').mkdir('{marker}')\"\n",
            [],
            "budget must be a whole number",
        ),
        (None, ["--sampler-param", "random.k=__import__('os').mkdir('{marker}')"], "has no parameter 'k'"),
    ],
    ids=["toml-expression", "toml-string", "sampler-param"],
)
def test_configs_are_parsed_as_data_never_run_as_code(tmp_path: Path, config, args, fragment: str) -> None:
    """Config files are read with tomllib and validated; sampler parameters with TOML scalars: code in either is
    a one-line error, never evaluated."""
    marker = tmp_path / "code-ran"
    extra = [a.format(marker=marker) for a in args]
    if config is not None:
        path = tmp_path / "exp.toml"
        path.write_text(config.format(marker=marker))
        extra += ["--config", str(path)]
    one_line_error(run_cli(tmp_path / "out", "e", "--samplers", "random", *extra), fragment)
    assert not marker.exists()


def _call_name(node: ast.Call) -> str:
    parts: list[str] = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _keyword(node: ast.Call, name: str) -> object:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expression>"
    return None


def test_no_code_path_unpickles_or_evaluates_files() -> None:
    """Static guard over the package: every torch.load passes weights_only=True, every np.load leaves
    allow_pickle off, and nothing calls eval/exec, pickle/marshal/yaml loaders."""
    banned = {"eval", "exec", "pickle.load", "pickle.loads", "marshal.load", "marshal.loads", "yaml.load"}
    offences, torch_loads = [], 0
    for folder in ("alpose_bench", "samplers", "datasets"):
        for file in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if not isinstance(node, ast.Call):
                    continue
                name, where = _call_name(node), f"{file.relative_to(REPO)}:{node.lineno}"
                if name == "torch.load":
                    torch_loads += 1
                    if _keyword(node, "weights_only") is not True:
                        offences.append(f"{where}: torch.load without weights_only=True")
                elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") not in (
                    None,
                    False,
                ):
                    offences.append(f"{where}: np.load with allow_pickle")
                elif name in banned:
                    offences.append(f"{where}: {name}")
    assert torch_loads >= 1  # the checkpoint loader was found
    assert not offences, offences


# -- a damaged results database --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_every_command_on_a_damaged_database_is_one_line_and_leaves_it_untouched(
    tmp_path: Path, random_reference, damage: str
) -> None:
    """`run` (resuming), `report`, `plot` and `results.load` check the database before anything else: one line
    saying what is wrong and what to do, exit 2, and the file is byte-for-byte what it was."""
    import shutil

    reference, _, _ = random_reference
    folder = tmp_path / "broken"
    shutil.copytree(reference, folder)
    path = folder / Store.FILENAME
    for extra in folder.glob("results.sqlite-*"):
        extra.unlink()
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 4096 if damage == "garbage" else data[: len(data) // 3])
    before = path.read_bytes()
    expected = "results database" if damage == "garbage" else "results database"
    one_line_error(run_cli(tmp_path, "broken", "--samplers", "random"), expected, "left as it is")
    one_line_error(invoke("report", str(folder)), expected)
    one_line_error(invoke("plot", str(folder)), expected)
    with pytest.raises(Exception, match="results database"):
        results.load(folder)
    assert path.read_bytes() == before
