"""Faults users actually hit (issue 21): a misbehaving plugin, a killed parallel run, interrupted writes, a report
whose figures are skipped. docs/reliability.md lists each case with its test."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fault_factory import run_until_first_commit
from plugin_factory import PROBE_HEAD, write_sampler_plugin
from test_cli import invoke

from alpose_bench.core import atomic
from alpose_bench.core.atomic import DiskFullError, write_all_atomic, write_atomic
from alpose_bench.engine.checkpoints import task_checkpoint
from alpose_bench.experiment.ownership import EXIT_OWNER_GONE, WORKERS_LOCK, Owner, wait_for_workers
from alpose_bench.results import read as results
from alpose_bench.results.store import Store
from alpose_bench.spec import registry

ROWS = ["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "n_selected"]

BAD_SAMPLERS = (
    '''
"""Samplers that break the contract in every way a plugin can."""
import sys
from dataclasses import dataclass

import numpy as np
from torch import nn

from alpose_bench.samplers import Sampler, ScoringSampler


@dataclass
class Raises(Sampler):
    name = "raises"
    description = "raises in select"

    def select(self, ctx, budget):
        raise KeyError("boom")


@dataclass
class Exits(Sampler):
    name = "exits"
    description = "calls sys.exit(0) in select"

    def select(self, ctx, budget):
        sys.exit(0)


@dataclass
class ShortScores(ScoringSampler):
    name = "short-scores"
    description = "one score too few per batch"

    def score_batch(self, batch, ctx):
        return np.zeros(len(batch.positions) - 1)


@dataclass
class NanScores(ScoringSampler):
    name = "nan-scores"
    description = "NaN for every image"

    def score_batch(self, batch, ctx):
        return np.full(len(batch.positions), np.nan)

'''
    + PROBE_HEAD
    + """

@dataclass
class BadHead(Sampler):
    name = "bad-head"
    description = "its auxiliary loss raises in training"

    def auxiliary(self, info):
        return Probe(info.feature_channels[-1])

    def auxiliary_loss(self, aux_out, batch, pose_out):
        raise RuntimeError("head exploded")

    def select(self, ctx, budget):
        return np.arange(min(budget, len(ctx.pool)))
"""
)


@pytest.fixture(scope="module")
def bad_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = tmp_path_factory.mktemp("bad-plugins")
    points = "\n".join(
        f"{name} = bad_samplers:{cls}"
        for name, cls in [("raises", "Raises"), ("exits", "Exits"), ("short-scores", "ShortScores"),
                          ("nan-scores", "NanScores"), ("bad-head", "BadHead")]
    )  # fmt: skip
    write_sampler_plugin(site, "bad-samplers", points, "bad_samplers", BAD_SAMPLERS)
    with pytest.MonkeyPatch.context() as m:
        m.syspath_prepend(str(site))
        registry.refresh()
        yield site
    sys.modules.pop("bad_samplers", None)
    registry.refresh()


def smoke_run(out: Path, name: str, *args: str):
    return invoke("run", "--preset", "smoke", "--jobs", "1", "--out", str(out), "--name", name, *args)


@pytest.mark.slow
@pytest.mark.parametrize(
    "bad, said",
    [
        ("raises", "sampler 'raises' raised KeyError in select at bad_samplers.py:"),
        ("exits", "sampler 'exits' raised SystemExit in select at bad_samplers.py:"),
        ("short-scores", "sampler 'short-scores': score_batch returned scores of shape"),
        ("nan-scores", "sampler 'nan-scores': every score is NaN"),
        ("bad-head", "sampler 'bad-head' raised RuntimeError in its auxiliary head or loss"),
    ],
)
def test_a_misbehaving_plugin_fails_only_its_own_task(tmp_path: Path, bad_plugins: Path, bad: str, said: str):
    """The bad sampler's task fails with one line naming it and where; random, in the same run (sharing cycle 0
    with it), finishes; the run exits 1 and says which task failed."""
    result = smoke_run(tmp_path, "bad", "--samplers", f"random,{bad}")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    flat = " ".join(result.output.split())
    assert "1 task(s) failed" in flat and said in flat
    with Store(tmp_path / "bad", readonly=True) as store:
        assert store.completed_cycles("synth-human", "random", 0) == [0, 1, 2]
        status, error = store.statuses()[("synth-human", bad, 0)]
    assert status == "failed" and said in error


@pytest.mark.slow
def test_report_html_is_written_when_figures_are_skipped(tmp_path: Path) -> None:
    """Two samplers and one seed: the critical-difference figure cannot be drawn; the HTML page names it and is
    written anyway."""
    assert smoke_run(tmp_path, "h", "--samplers", "random,mpe", "--seeds", "1").exit_code == 0
    result = invoke("report", str(tmp_path / "h"), "--format", "html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "h" / "report.html").read_text()
    assert (
        "Figure cd left out: a critical-difference diagram needs 3 or more samplers" in page
        and "<img" in page
    )


# -- interrupted writes ------------------------------------------------------------------------------------------


def dead_pid() -> int:
    """A pid that no process has now (a child that has exited and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_writer_removes_temporary_files_that_killed_writers_left(tmp_path: Path) -> None:
    stale = tmp_path / f".figure.png.{dead_pid()}.x1y2.tmp"
    live = tmp_path / f".figure.png.{os.getpid()}.a1b2.tmp"  # a write in progress in a live process: kept
    foreign = tmp_path / ".notes.tmp"  # not one of ours
    for f in (stale, live, foreign):
        f.write_bytes(b"partial")
    write_atomic(tmp_path / "other.txt", b"x")
    assert not stale.exists() and live.exists() and foreign.exists()


def test_a_set_of_files_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """The second of three files hits a full disk: none is replaced, no temporary file stays."""
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"old")

    def full(fh) -> None:
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="/b"):
        write_all_atomic({tmp_path / "a": b"new", tmp_path / "b": full, tmp_path / "c": b"new"})
    assert [(tmp_path / n).read_bytes() for n in "abc"] == [b"old"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


# -- a run owns its workers ---------------------------------------------------------------------------------------


def test_a_worker_exits_soon_after_the_run_that_owns_it_is_gone(tmp_path: Path) -> None:
    owner_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    owner = Owner(owner_proc.pid, Owner.this_process().host, atomic_start(owner_proc.pid))
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from alpose_bench.experiment.ownership import Owner, watch
            watch(Owner({owner.pid}, {owner.host!r}, {owner.started!r}))
            time.sleep(60)
        """)]
    )  # fmt: skip
    owner_proc.wait()
    assert worker.wait(timeout=20) == EXIT_OWNER_GONE


def atomic_start(pid: int) -> str | None:
    from alpose_bench.core.processes import process_start

    return process_start(pid)


@pytest.mark.slow
def test_a_new_run_waits_until_the_workers_of_the_last_one_are_gone(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, sys, time
            fh = open({str(tmp_path / WORKERS_LOCK)!r}, "a+")
            fcntl.flock(fh, fcntl.LOCK_SH)
            print("locked", flush=True)
            time.sleep(2)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    assert wait_for_workers(tmp_path, timeout=0.3) is False
    assert wait_for_workers(tmp_path, timeout=30) is True
    holder.wait()


def alpose_processes(out: Path) -> list[int]:
    """Pids of processes (a run, its joblib workers) whose command line or open files touch `out`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if str(out).encode() in env or str(out) in cmd:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_parallel_run_killed_with_sigkill_leaves_no_worker_and_resumes_to_the_uninterrupted_rows(
    tmp_path: Path,
) -> None:
    """`run --jobs 2` killed with SIGKILL at two random moments: within seconds no process of it is left, and the
    rerun ends with the rows of an uninterrupted run, no checkpoint and no temporary file left."""
    args = ["run", "--preset", "smoke", "--samplers", "random,mpe,vl4pose", "--jobs", "2", "--epochs", "8"]
    ref = subprocess.run(
        [sys.executable, "-m", "alpose_bench.cli", *args, "--out", str(tmp_path / "ref"), "--name", "x"],
        capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert ref.returncode == 0, ref.stdout.decode()[-2000:]
    expected = results.load(tmp_path / "ref" / "x")[ROWS]
    rng = random.Random(21)
    out = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ALPOSE_TEST_RUN_TAG": str(out)}
    for attempt in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "alpose_bench.cli", *args, "--out", str(out), "--name", "x"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        time.sleep(rng.uniform(4, 10))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while alpose_processes(out) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alpose_processes(out) == [], f"workers outlived their killed run (attempt {attempt})"
    again = subprocess.run(
        [sys.executable, "-m", "alpose_bench.cli", *args, "--out", str(out), "--name", "x"], capture_output=True,
        env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout.decode()[-2000:]
    pd.testing.assert_frame_equal(
        results.load(out / "x")[ROWS].reset_index(drop=True), expected.reset_index(drop=True)
    )
    left = sorted(p.relative_to(out / "x").as_posix() for p in (out / "x").rglob("*"))
    assert not [p for p in left if p.endswith(".tmp") or p.startswith("checkpoints")], left
    with Store(out / "x", readonly=True) as store:
        assert {s for s, _ in store.statuses().values()} == {"done"}


@pytest.mark.slow
def test_a_task_killed_after_its_final_commit_is_closed_by_the_next_run(tmp_path: Path) -> None:
    """What a kill between the final commit and the status update leaves — status `running`, the task's last
    checkpoint, a temporary file of the killed writer — is closed by the next run: done, nothing left over."""
    assert smoke_run(tmp_path, "k", "--samplers", "random").exit_code == 0
    folder = tmp_path / "k"
    with Store(folder) as store:
        store.set_status("synth-human", "random", 0, "running")
    ckpt = task_checkpoint(folder, "synth-human", "random", 0, 2)
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    (ckpt.parent / f".cycle2.pt.{dead_pid()}.abcd.tmp").write_bytes(b"half")
    again = smoke_run(tmp_path, "k", "--samplers", "random")
    assert again.exit_code == 0, again.output
    assert "closed synth-human/random/seed0" in " ".join(again.output.split())
    with Store(folder, readonly=True) as store:
        assert store.statuses()[("synth-human", "random", 0)][0] == "done"
    assert not (folder / "checkpoints").exists()


def test_atomic_module_names_its_temporaries_after_the_writing_process() -> None:
    fd, name = atomic.temporary_beside(Path("/tmp/x.bin"))
    os.close(fd)
    os.unlink(name)
    assert Path(name).name.startswith(f".x.bin.{os.getpid()}.") and name.endswith(".tmp")


# -- a user's own COCO data -----------------------------------------------------------------------------------------


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims `width` x `height` (what a decompression bomb or a broken header looks like)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def coco_project(tmp_path: Path, mutate) -> Path:
    import json

    from datasets_real_factory import write_coco_folder

    root = tmp_path / "coco"
    data = write_coco_folder(root, n_images=8)
    mutate(data, root)
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _set(path: str, value):
    def mutate(data, root):
        *where, last = path.split(".")
        target = data
        for key in where:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return mutate


STRUCTURE = [
    (_set("annotations", None), "'annotations' must be a list of objects, got NoneType"),
    (_set("annotations.3", 5), "annotations[3] must be an object, got int"),
    (_set("categories", 7), "'categories' must be a list of objects, got int"),
    (_set("images.2.id", 101), "image id 101 is listed twice ('img1.png' and 'img2.png')"),
    (_set("annotations.2.bbox", "wide"), "annotation 2 (id 3): bbox must be 4 numbers"),
]


@pytest.mark.parametrize(
    "mutate, said", STRUCTURE, ids=["null", "not-object", "categories", "dup-id", "bbox"]
)
def test_a_malformed_coco_file_is_one_line_naming_file_object_and_field(tmp_path: Path, mutate, said) -> None:
    root = coco_project(tmp_path, mutate)
    for command in (["data", "check", "coco"], ["run", "--preset", "smoke", "--dataset", "coco"]):
        result = invoke(
            *command, "--data-root", str(root), *(["--out", str(tmp_path)] if command[0] == "run" else [])
        )
        assert result.exit_code == 2, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("Error: dataset 'coco':") and "annotations.json" in last and said in last, last
        assert "Traceback" not in result.output


def _far(data, root):
    data["annotations"][1]["keypoints"][0] = -1e6  # x far left of any image


def _huge(data, root):
    data["annotations"][2]["keypoints"][3] = 1e30


def _box(data, root):
    data["annotations"][3]["bbox"] = [0, 0, 1e12, 1e12]


def _outside(data, root):
    data["annotations"][4]["keypoints"][1] = 5000.0  # y below a 256 px image


def _twice(data, root):
    data["annotations"].append(dict(data["annotations"][5], id=777))


@pytest.mark.parametrize(
    "mutate, reason",
    [(_far, "implausible"), (_huge, "implausible"), (_box, "implausible"), (_outside, "implausible"),
     (_twice, "duplicate annotations")],
    ids=["x-1e6", "1e30", "box-1e12", "outside-image", "duplicate"],
)  # fmt: skip
def test_implausible_coco_people_are_counted_and_never_trained_on(
    tmp_path: Path, mutate, reason: str
) -> None:
    """Keypoints far outside the image or box, absurd coordinates, duplicate annotations: the person is left out,
    counted in `data check` and named by `run` (a note), and the rest is usable."""
    from alpose_bench.datasets.coco import COCODataset
    from alpose_bench.pose.data import DatasetConfig

    root = coco_project(tmp_path, mutate)
    check = invoke("data", "check", "coco", "--data-root", str(root))
    assert check.exit_code == 0, check.output
    config = DatasetConfig(data_root=str(root), cache_dir=str(tmp_path / "cache"), resolution=32)
    counts = {item: detail for item, _, detail in COCODataset().check(config).rows if "skipped" in item}
    assert [n for item, n in counts.items() if reason in item] == ["1"], counts
    ds = COCODataset().load(config)
    for split in (ds.train, ds.test):
        assert np_all_finite_and_small(split.keypoints)
    run = invoke("run", "--preset", "smoke", "--dataset", "coco", "--data-root", str(root), "--samplers", "random",
                 "--init", "2", "--budget", "1", "--cycles", "1", "--jobs", "1", "--out", str(tmp_path / "r"))  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "coco: 1 people skipped" in " ".join(run.output.split())


def np_all_finite_and_small(keypoints) -> bool:
    import numpy as np

    return bool(np.isfinite(keypoints).all() and (np.abs(keypoints) < 1e4).all())


def test_an_image_over_the_pixel_bound_is_refused_before_decoding_with_the_option_to_raise_it(tmp_path: Path):
    def bomb(data, root):
        png_header(root / "images" / "img3.png", 20000, 20000)

    root = coco_project(tmp_path, bomb)
    check = invoke("data", "check", "coco", "--data-root", str(root))
    assert check.exit_code == 2 and "Traceback" not in check.output
    last = check.output.strip().splitlines()[-1]
    assert "20,000 x 20,000 px" in last and "--option max_image_pixels=400000000" in last, last
    run = invoke(
        "run", "--preset", "smoke", "--dataset", "coco", "--data-root", str(root), "--out", str(tmp_path)
    )
    assert run.exit_code == 2 and "Traceback" not in run.output
    assert "over the bound of 200 M pixels" in run.output.strip().splitlines()[-1]


# -- bounds on options and files -------------------------------------------------------------------------------------


def test_options_beyond_their_bounds_are_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    cases = [
        (["--config", str(deep)], "nests tables or arrays too deeply"),
        (["--name", "x" * 300], "name is 300 bytes long; an experiment name has at most 200"),
        (["--jobs", "1000000000"], "--jobs must be between 1 and 1024"),
    ]
    for args, said in cases:
        result = invoke("run", "--preset", "smoke", "--out", str(tmp_path), *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert said in result.output.strip().splitlines()[-1]


# -- a full disk -----------------------------------------------------------------------------------------------------


def test_a_database_is_created_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while the schema is written: no database is left (not one without tables that every later
    command refuses); with space again, the run goes ahead."""
    import sqlite3

    real_connect = sqlite3.connect

    class FullConnection:
        def __init__(self, conn):
            self.conn = conn

        def executescript(self, script):
            raise sqlite3.OperationalError("database or disk is full")

        def __getattr__(self, name):
            return getattr(self.conn, name)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: FullConnection(real_connect(*a, **k)))
    result = smoke_run(tmp_path, "full", "--samplers", "random")
    assert result.exit_code == 2, result.output
    assert "disk full while writing" in result.output and "free space and rerun" in result.output
    assert not list((tmp_path / "full").glob("results.sqlite*"))
    assert not list((tmp_path / "full").glob(".*.tmp"))
    monkeypatch.undo()
    assert smoke_run(tmp_path, "full", "--samplers", "random").exit_code == 0


def test_a_database_left_without_tables_by_an_older_version_is_created_anew(tmp_path: Path) -> None:
    import sqlite3

    folder = tmp_path / "empty"
    folder.mkdir()
    conn = sqlite3.connect(folder / Store.FILENAME)
    conn.execute("PRAGMA journal_mode=WAL")  # a header, no table: what a full disk left behind
    conn.close()
    assert smoke_run(tmp_path, "empty", "--samplers", "random").exit_code == 0


def test_plot_on_a_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert smoke_run(tmp_path, "p", "--samplers", "random").exit_code == 0

    def full(*args, **kwargs):
        raise DiskFullError(tmp_path / "p" / "figures" / "curves.png")

    monkeypatch.setattr("alpose_bench.present.plot.write_all_atomic", full)
    result = invoke("plot", str(tmp_path / "p"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: disk full while writing {tmp_path / 'p' / 'figures' / 'curves.png'}; free space and run the "
        "command again"
    )


# -- damaged state -------------------------------------------------------------------------------------------------


def interrupted_after_first_commit(tmp_path: Path, name: str, samplers: str) -> Path:
    """A smoke run (warm start) stopped right after its first committed cycle, as a kill there leaves it."""
    from alpose_bench.experiment.runner import plan
    from alpose_bench.spec.config import build_spec

    the_plan = plan(build_spec("smoke", None, {"samplers": samplers, "name": name}), tmp_path)
    run_until_first_commit(the_plan)
    return the_plan.out_dir


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign_list(path: Path) -> None:
    import torch

    torch.save([1, 2, 3], path)


def _other_shapes(path: Path) -> None:
    import torch

    saved = torch.load(path, weights_only=True)
    saved["model"] = {k: torch.zeros(1) for k in saved["model"]}
    torch.save(saved, path)


def _missing_key(path: Path) -> None:
    import torch

    saved = torch.load(path, weights_only=True)
    del saved["model"]
    torch.save(saved, path)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("uninterrupted")
    assert smoke_run(out, "ref", "--samplers", "random,mpe").exit_code == 0
    return results.load(out / "ref")[ROWS].reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage", [_truncate, _foreign_list, _other_shapes, _missing_key, Path.unlink],
    ids=["truncated", "foreign", "other-shapes", "missing-key", "missing"],
)  # fmt: skip
def test_a_damaged_checkpoint_is_retrained_and_the_rows_equal_an_uninterrupted_run(
    tmp_path: Path, uninterrupted: pd.DataFrame, damage
) -> None:
    """The task checkpoint that a resume needs (warm start) is cut short, foreign, of other shapes, lacks a key or
    is gone; and the shared cycle-0 checkpoint the other task still needs is cut short. The rerun retrains what
    they held and ends with the rows of an uninterrupted run."""
    folder = interrupted_after_first_commit(tmp_path, "ref", "random,mpe")
    (ckpt,) = sorted((folder / "checkpoints").glob("*/random-seed0/cycle0.pt"))
    damage(ckpt)
    (shared,) = sorted((folder / "checkpoints").glob("*/shared-seed0/cycle0.pt"))
    _truncate(shared)
    again = smoke_run(tmp_path, "ref", "--samplers", "random,mpe")
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(results.load(folder)[ROWS].reset_index(drop=True), uninterrupted)


@pytest.mark.parametrize(
    "key, value, said",
    [("schema", '"abc"', "experiment record 'schema' (a str, expected int)"),
     ("schema", "null", "experiment record 'schema' (a NoneType, expected int)"),
     ("spec", "not json", "experiment record 'spec' (not JSON)"),
     ("spec", "[1, 2]", "experiment record 'spec' (a list, expected dict)")],
    ids=["schema-text", "schema-null", "spec-not-json", "spec-list"],
)  # fmt: skip
def test_a_tampered_database_is_refused_in_one_line_and_left_untouched(
    tmp_path: Path, key, value, said
) -> None:
    import sqlite3

    assert smoke_run(tmp_path, "t", "--samplers", "random").exit_code == 0
    db = tmp_path / "t" / Store.FILENAME
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE experiment SET value = ? WHERE key = ?", (value, key))
    conn.close()
    before = db.read_bytes()
    for command in (
        ["report", str(tmp_path / "t")],
        ["plot", str(tmp_path / "t")],
        ["status", str(tmp_path / "t")],
    ):
        result = invoke(*command)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert said in result.output.strip().splitlines()[-1]
    result = smoke_run(tmp_path, "t", "--samplers", "random")
    assert result.exit_code == 2 and said in result.output.strip().splitlines()[-1]
    assert db.read_bytes() == before


def test_a_metric_stored_as_text_is_refused(tmp_path: Path) -> None:
    import sqlite3

    assert smoke_run(tmp_path, "m", "--samplers", "random").exit_code == 0
    with sqlite3.connect(tmp_path / "m" / Store.FILENAME) as conn:
        conn.execute("UPDATE cycles SET value = 'high' WHERE cycle = 1")
    conn.close()
    result = invoke("report", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert (
        "holds a malformed cycles.value (1 row(s) that are not numbers)"
        in result.output.strip().splitlines()[-1]
    )


def test_a_full_disk_at_the_experiment_lock_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ~180 KB free, writing the lock file once gave an OSError traceback."""
    import builtins

    real_open = builtins.open

    def full_lock(file, mode="r", *args, **kwargs):
        if str(file).endswith(".lock") and "+" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_lock)
    result = smoke_run(tmp_path, "l", "--samplers", "random")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: disk full while writing {tmp_path / 'l' / '.lock'}; free space and rerun to resume"
    )


def test_reading_results_on_a_full_disk_is_told_from_a_damaged_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 0 bytes free SQLite cannot create its shared-memory file; that is not a damaged database."""
    import shutil
    import sqlite3
    from collections import namedtuple

    assert smoke_run(tmp_path, "z", "--samplers", "random").exit_code == 0
    real_connect = sqlite3.connect

    def no_room(*args, **kwargs):
        conn = real_connect(*args, **kwargs)

        class Full:
            def execute(self, *a, **k):
                raise sqlite3.OperationalError("disk I/O error")

            def __getattr__(self, name):
                return getattr(conn, name)

        return Full()

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sqlite3, "connect", no_room)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 0))
    for command in ("report", "plot", "status"):
        result = invoke(command, str(tmp_path / "z"))
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        last = result.output.strip().splitlines()[-1]
        assert (
            "the disk is full" in last
            and "the database is not damaged" in last
            and "move it away" not in last
        )
