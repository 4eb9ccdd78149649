"""The results database: one SQLite file per experiment (WAL), committed cycle by cycle.

Tables: `experiment` (spec, fingerprint, provenance), `datasets` (what plots need to know about each dataset),
`runs` (one row per task: dataset x sampler x seed, with its status and error), `cycles` (one row per trained cycle:
metric, per-joint metric, timings), `selections` (the images picked at each cycle, in order) and `arrays` (small
per-cycle arrays such as the predicted keypoints of the selected images). A cycle's row and its selections are written
in one transaction, so the database never holds half a cycle; rerunning an experiment resumes after the last committed
cycle of each task.

Every command that opens a database checks it first (`check_database`): a file that is unreadable, not SQLite,
damaged, not this project's, or written by a newer version is a one-line StoreError, and the file is left untouched.
Schema version 2 added the CPU seconds of each phase; version-1 databases gain those columns (NULL for old rows)
the first time a run writes to them. Version 3 added `evals` (the metric on every held-out split, overall and per
pose mode, `alpose_bench.pose.evaluation`); older databases gain the empty table the same way, and readers of a database
without it see no rows.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alpose_bench.core.atomic import FILE_MODE, is_disk_full, remove_stale_temporaries, temporary_beside
from alpose_bench.pose.evaluation import SplitScore
from alpose_bench.core.failures import UserFacingError

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    dataset TEXT NOT NULL, sampler TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, error TEXT, updated TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (dataset, sampler, seed)
);
CREATE TABLE IF NOT EXISTS cycles (
    dataset TEXT NOT NULL, sampler TEXT NOT NULL, seed INTEGER NOT NULL, cycle INTEGER NOT NULL,
    n_labelled INTEGER NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, per_joint TEXT NOT NULL,
    train_s REAL NOT NULL, eval_s REAL NOT NULL, select_s REAL, select_images INTEGER NOT NULL,
    n_selected INTEGER NOT NULL, created TEXT NOT NULL DEFAULT (datetime('now')),
    train_cpu_s REAL, eval_cpu_s REAL, select_cpu_s REAL, infer_s REAL, infer_cpu_s REAL,
    PRIMARY KEY (dataset, sampler, seed, cycle)
);
CREATE TABLE IF NOT EXISTS selections (
    dataset TEXT NOT NULL, sampler TEXT NOT NULL, seed INTEGER NOT NULL, cycle INTEGER NOT NULL,
    rank INTEGER NOT NULL, idx INTEGER NOT NULL, score REAL, grp INTEGER NOT NULL,
    PRIMARY KEY (dataset, sampler, seed, cycle, rank)
);
CREATE TABLE IF NOT EXISTS evals (
    dataset TEXT NOT NULL, sampler TEXT NOT NULL, seed INTEGER NOT NULL, cycle INTEGER NOT NULL,
    split TEXT NOT NULL, grp TEXT NOT NULL, value REAL, n_images INTEGER NOT NULL,
    PRIMARY KEY (dataset, sampler, seed, cycle, split, grp)
);
CREATE TABLE IF NOT EXISTS arrays (
    dataset TEXT NOT NULL, sampler TEXT NOT NULL, seed INTEGER NOT NULL, cycle INTEGER NOT NULL,
    name TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (dataset, sampler, seed, cycle, name)
);
"""


SCHEMA_VERSION = 3
#: columns added after version 1: (table, column, type)
ADDED_COLUMNS = tuple(
    ("cycles", column, "REAL")
    for column in ("train_cpu_s", "eval_cpu_s", "select_cpu_s", "infer_s", "infer_cpu_s")
)
REQUIRED_TABLES = ("experiment", "runs", "cycles", "selections")


class StoreError(UserFacingError, RuntimeError):
    """The results folder cannot be used (another experiment, not writable, disk full); one-line message."""

    @classmethod
    def disk_full(cls, path: Path) -> StoreError:
        """The error for a write to `path` that ran out of space (database or checkpoint alike)."""
        return cls(f"disk full while writing {path}; free space and rerun to resume")


@dataclass
class CycleRecord:
    """Everything recorded for one trained cycle of one task."""

    dataset: str
    sampler: str
    seed: int
    cycle: int
    n_labelled: int
    metric: str
    value: float
    per_joint: dict[str, float]
    train_s: float
    eval_s: float
    select_s: float | None  # None on the final cycle (nothing selected)
    select_images: int
    selected: np.ndarray  # dataset train indices, in the order picked
    scores: np.ndarray | None = None
    groups: np.ndarray | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    # CPU seconds of this process in each phase (`alpose_bench.core.timing`); None where not measured
    train_cpu_s: float | None = None
    eval_cpu_s: float | None = None
    select_cpu_s: float | None = None
    # the model's forward passes during selection (part of select_s), wall and CPU seconds
    infer_s: float | None = None
    infer_cpu_s: float | None = None
    # the metric on every held-out split, overall and per pose mode (the test/all row repeats `value`)
    evals: list[SplitScore] = field(default_factory=list)


def _real(x: float | None) -> float | None:
    """A value for a REAL column: NULL for None, NaN and infinities (a score a sampler did not compute)."""
    return None if x is None or not np.isfinite(x) else float(x)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _from_npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def _bring_to_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing of the current schema in one transaction: the tables (WAL mode), the columns added
    after version 1 (nullable), and the version record; a database already current is not touched. The one
    schema routine of a new database (`Store._create`) and of one opened for writing."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    for table, column, kind in ADDED_COLUMNS:
        if column not in [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    row = conn.execute("SELECT value FROM experiment WHERE key = 'schema'").fetchone()
    if row is None or row[0] != json.dumps(SCHEMA_VERSION):
        conn.execute(
            "INSERT OR REPLACE INTO experiment (key, value) VALUES ('schema', ?)",
            (json.dumps(SCHEMA_VERSION),),
        )
    conn.commit()


def _full(exc: BaseException, folder: Path) -> bool:
    """True when `exc` is (or, for SQLite's vague I/O errors, most likely is) a full disk."""
    import shutil

    if is_disk_full(exc):
        return True
    message = str(exc).lower()
    if "full" in message:
        return True
    if "disk i/o error" in message or "unable to open" in message:
        try:
            return shutil.disk_usage(folder).free < 1 << 20  # SQLite needs room for its log and shared memory
        except OSError:
            return False
    return False


def _damaged(path: Path, problem: str) -> StoreError:
    return StoreError(
        f"results database {path} {problem}; it was left as it is: move it away (or restore a backup) and rerun, "
        "or use another --name"
    )


def check_database(path: Path) -> int:
    """Check an existing results database without changing it; returns its schema version (0: a database with
    no table at all, which an interrupted creation of an older version could leave).

    Raises a one-line StoreError when the file cannot be read, is not SQLite, is damaged, lacks this project's
    tables, or comes from a newer version of alpose-bench."""
    # The file is read only through SQLite: opening and closing another descriptor on it would drop the POSIX locks
    # of this process's own connections to it (a known way to corrupt an SQLite database), so no header is read here.
    if not os.access(path, os.R_OK):
        raise StoreError(f"cannot read results database {path}: permission denied; check its permissions")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return 0  # an empty database (an interrupted creation of an older version): nothing to lose
            missing = [t for t in REQUIRED_TABLES if t not in tables]
            if missing:
                raise _damaged(
                    path, f"is not an alpose-bench results database (no table {', '.join(missing)})"
                )
            row = conn.execute("SELECT value FROM experiment WHERE key = 'schema'").fetchone()
            conn.execute("SELECT count(*) FROM cycles").fetchone()
            meta = dict(conn.execute("SELECT key, value FROM experiment"))
            problem = None if _newer(row) else _malformed(conn, meta)  # a newer layout is not ours to judge
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if _full(exc, path.parent):
            raise StoreError(
                f"cannot open results database {path}: the disk is full (SQLite needs room for its write-ahead "
                "log); the database is not damaged: free space and rerun"
            ) from None
        problem = "is not an SQLite database" if "not a database" in str(exc) else f"is damaged ({exc})"
        raise _damaged(path, problem) from None
    if problem:
        raise _damaged(path, f"holds a malformed {problem}")
    version = 1 if row is None else int(json.loads(row[0]))
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"results database {path} has schema version {version}, newer than this alpose-bench reads "
            f"({SCHEMA_VERSION}); upgrade alpose-bench"
        )
    return version


#: what each experiment record must decode to
META_TYPES: dict[str, tuple[type, ...]] = {
    "schema": (int,), "spec": (dict,), "fingerprint": (str,), "provenance": (dict,), "run": (dict,),
}  # fmt: skip
#: columns that must hold numbers (NULL allowed where the schema allows it)
NUMERIC_COLUMNS = {
    "cycles": ("cycle", "seed", "n_labelled", "value", "train_s", "eval_s", "select_s", "select_images"),
    "selections": ("cycle", "seed", "rank", "idx", "score"),
}


def _newer(schema_row: tuple | None) -> bool:
    """True when the stored schema version is a number above this version's."""
    try:
        return schema_row is not None and int(json.loads(schema_row[0])) > SCHEMA_VERSION
    except (TypeError, ValueError):
        return False


def _malformed(conn: sqlite3.Connection, meta: dict[str, str]) -> str | None:
    """What in a database does not have the type this version writes (a tampered or foreign file), or None."""
    for key, kinds in META_TYPES.items():
        if key not in meta:
            continue
        try:
            value = json.loads(meta[key])
        except (TypeError, ValueError):
            return f"experiment record {key!r} (not JSON)"
        if not isinstance(value, kinds) or isinstance(value, bool):
            return f"experiment record {key!r} (a {type(value).__name__}, expected {kinds[0].__name__})"
    for table, columns in NUMERIC_COLUMNS.items():  # one pass over each table, counting every column at once
        counts = conn.execute(
            "SELECT "
            + ", ".join(f"sum(typeof({c}) NOT IN ('integer', 'real', 'null'))" for c in columns)
            + f" FROM {table}"
        ).fetchone()
        for column, bad in zip(columns, counts):
            if bad:
                return f"{table}.{column} ({bad} row(s) that are not numbers)"
    return None


def _reading_connection(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the results: read-write with `query_only` where the folder allows it (so
    that, as the last connection to close, it folds the write-ahead log back into the file and removes it), else
    a read-only one (a folder the user cannot write)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=60)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)


class Store:
    """A handle on `<experiment dir>/results.sqlite`."""

    FILENAME = "results.sqlite"

    def __init__(self, directory: str | Path, *, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME
        exists = (
            self.path.exists() and os.path.getsize(self.path) > 0
        )  # SQLite treats an empty file as a new database
        if exists and check_database(self.path) == 0:
            exists = False  # a database without a single table holds nothing: it is created anew
        if readonly:
            if not exists:
                raise StoreError(
                    f"no results in {self.directory} (expected {self.path}); run `alpose-bench run` first"
                )
            self.conn = _reading_connection(self.path)
        else:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                if not exists:
                    self._create()
                self.conn = sqlite3.connect(self.path, timeout=60)
                self.conn.execute("PRAGMA synchronous=NORMAL")
                _bring_to_schema(self.conn)
            except (OSError, sqlite3.OperationalError) as exc:
                if _full(exc, self.directory):
                    raise StoreError.disk_full(self.path) from None
                raise StoreError(
                    f"cannot write results to {self.directory}: {exc}; choose a writable folder with --out"
                ) from None

    def _create(self) -> None:
        """Create the database whole or not at all: its schema is written into a temporary file that is renamed
        into place, so a full disk never leaves a database without its tables."""
        remove_stale_temporaries(self.directory)
        fd, tmp = temporary_beside(self.path)
        os.close(fd)
        try:
            conn = sqlite3.connect(tmp)
            try:
                _bring_to_schema(conn)
            finally:
                conn.close()
            os.chmod(tmp, FILE_MODE)
            for stale in (f"{self.path}-wal", f"{self.path}-shm"):  # left by an empty database it replaces
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
            os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)

    def has_table(self, table: str) -> bool:
        """True when the database has `table` (a database of an older schema opened read-only may lack one)."""
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return row.fetchone() is not None

    def columns(self, table: str) -> list[str]:
        """Column names of one table."""
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self):
        try:
            with self.conn:  # commits on success, rolls back on any exception
                yield self.conn
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if "full" in message:
                raise StoreError.disk_full(self.path) from None
            if "readonly" in message or "unable to open" in message:  # a read-only folder, file or mount
                raise StoreError(
                    f"cannot write results to {self.directory}: {exc}; choose a writable folder with --out"
                ) from None
            raise

    # -- experiment ----------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM experiment WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any, **more: Any) -> None:
        """Record experiment values (`key` and any `more`), in one transaction."""
        with self._tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO experiment (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in {key: value, **more}.items()],
            )

    def claim(self, spec: dict[str, Any], fingerprint: str, provenance: dict[str, Any]) -> None:
        """Bind this folder to one experiment; refuse a different spec under the same name."""
        existing = self.get_meta("fingerprint")
        if existing is not None and existing != fingerprint:
            old = self.get_meta("spec") or {}
            diff = sorted(
                k for k in set(old) | set(spec) if old.get(k) != spec.get(k) and k not in ("name", "device")
            )
            raise StoreError(
                f"{self.directory} holds a different experiment (settings differ: {', '.join(diff) or 'unknown'}); "
                "use another --name, or delete that folder to start over"
            )
        if existing is None:
            self.set_meta("spec", spec, fingerprint=fingerprint, provenance=provenance)

    def rebind(self, spec: dict[str, Any], fingerprint: str) -> None:
        """Record the spec of an experiment that grew (more samplers or seeds on the same protocol), in one
        transaction; a spec already stored as it is leaves the database untouched."""
        if self.get_meta("spec") == spec and self.get_meta("fingerprint") == fingerprint:
            return
        self.set_meta("spec", spec, fingerprint=fingerprint)

    def samplers(self) -> list[str]:
        """The samplers with a task in this database, in the order they first appear."""
        rows = self.conn.execute("SELECT sampler FROM runs UNION ALL SELECT sampler FROM cycles")
        return list(dict.fromkeys(r[0] for r in rows))

    def rename_sampler(self, old: str, new: str) -> None:
        """Record every result of sampler `old` under its new name `new`, in one transaction: its rows in every
        table, the stored spec's sampler list and parameters, and the run record's tasks (a sampler renamed since
        this experiment was stored; `experiment.runner` adopts the names before planning)."""
        spec, run = self.get_meta("spec"), self.get_meta("run")
        with self._tx() as c:
            for table in ("runs", "cycles", "selections", "evals", "arrays"):
                c.execute(f"UPDATE {table} SET sampler = ? WHERE sampler = ?", (new, old))
            if isinstance(spec, dict):
                spec["samplers"] = [new if s == old else s for s in spec.get("samplers", [])]
                params = spec.get("sampler_params") or {}
                spec["sampler_params"] = {new if k == old else k: v for k, v in params.items()}
                c.execute("UPDATE experiment SET value = ? WHERE key = 'spec'", (json.dumps(spec),))
            if isinstance(run, dict) and isinstance(run.get("tasks"), list):
                run["tasks"] = [[d, new if s == old else s, k] for d, s, k in run["tasks"]]
                c.execute("UPDATE experiment SET value = ? WHERE key = 'run'", (json.dumps(run),))

    def set_dataset_info(self, name: str, info: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO datasets (name, info) VALUES (?, ?)", (name, json.dumps(info)))

    def dataset_info(self) -> dict[str, dict[str, Any]]:
        return {n: json.loads(i) for n, i in self.conn.execute("SELECT name, info FROM datasets")}

    # -- runs and cycles -----------------------------------------------------------------------------------------

    def set_status(
        self, dataset: str, sampler: str, seed: int, status: str, error: str | None = None
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO runs (dataset, sampler, seed, status, error, updated) "
                "VALUES (?, ?, ?, ?, ?, datetime('now'))",
                (dataset, sampler, seed, status, error),
            )

    def statuses(self) -> dict[tuple[str, str, int], tuple[str, str | None]]:
        rows = self.conn.execute("SELECT dataset, sampler, seed, status, error FROM runs")
        return {(d, s, int(k)): (st, e) for d, s, k, st, e in rows}

    def commit_cycle(self, r: CycleRecord) -> None:
        """Write one cycle and its selections atomically; writing the same cycle twice is an error."""
        key = (r.dataset, r.sampler, r.seed, r.cycle)
        with self._tx() as c:
            c.execute(
                "INSERT INTO cycles (dataset, sampler, seed, cycle, n_labelled, metric, value, per_joint, train_s, "
                "eval_s, select_s, select_images, n_selected, train_cpu_s, eval_cpu_s, select_cpu_s, infer_s, "
                "infer_cpu_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, r.n_labelled, r.metric, float(r.value), json.dumps(r.per_joint), r.train_s, r.eval_s,
                 r.select_s, r.select_images, len(r.selected), _real(r.train_cpu_s), _real(r.eval_cpu_s),
                 _real(r.select_cpu_s), _real(r.infer_s), _real(r.infer_cpu_s)),
            )  # fmt: skip
            groups = r.groups if r.groups is not None else np.full(len(r.selected), -1)
            scores = r.scores if r.scores is not None else np.full(len(r.selected), np.nan)
            c.executemany(
                "INSERT INTO selections (dataset, sampler, seed, cycle, rank, idx, score, grp) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (*key, rank, int(i), _real(s), int(g))
                    for rank, (i, s, g) in enumerate(zip(r.selected, scores, groups))
                ],
            )
            c.executemany(
                "INSERT INTO evals (dataset, sampler, seed, cycle, split, grp, value, n_images) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*key, e.split, e.group, _real(e.value), int(e.n_images)) for e in r.evals],
            )
            c.executemany(
                "INSERT INTO arrays (dataset, sampler, seed, cycle, name, data) VALUES (?, ?, ?, ?, ?, ?)",
                [(*key, name, _npy(a)) for name, a in r.arrays.items()],
            )

    def completed_any(self, dataset: str) -> bool:
        """True when some task on `dataset` has committed a cycle."""
        return (
            self.conn.execute("SELECT 1 FROM cycles WHERE dataset = ? LIMIT 1", (dataset,)).fetchone()
            is not None
        )

    def completed_cycles(self, dataset: str, sampler: str, seed: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT cycle FROM cycles WHERE dataset = ? AND sampler = ? AND seed = ? ORDER BY cycle",
            (dataset, sampler, seed),
        )
        return [int(r[0]) for r in rows]

    def selected(self, dataset: str, sampler: str, seed: int) -> dict[int, np.ndarray]:
        """Selected dataset indices per committed cycle, in pick order."""
        out: dict[int, list[int]] = {}
        rows = self.conn.execute(
            "SELECT cycle, idx FROM selections WHERE dataset = ? AND sampler = ? AND seed = ? ORDER BY cycle, rank",
            (dataset, sampler, seed),
        )
        for cycle, idx in rows:
            out.setdefault(int(cycle), []).append(int(idx))
        return {c: np.asarray(v, dtype=np.int64) for c, v in out.items()}

    def committed(self, dataset: str, sampler: str, seed: int) -> dict[int, np.ndarray]:
        """Every committed cycle of a task -> the indices it selected (empty for the final cycle, which selects
        nothing): the resume point of a task."""
        selected = self.selected(dataset, sampler, seed)
        empty = np.zeros(0, dtype=np.int64)
        return {c: selected.get(c, empty) for c in self.completed_cycles(dataset, sampler, seed)}

    def array(self, dataset: str, sampler: str, seed: int, cycle: int, name: str) -> np.ndarray | None:
        row = self.conn.execute(
            "SELECT data FROM arrays WHERE dataset = ? AND sampler = ? AND seed = ? AND cycle = ? AND name = ?",
            (dataset, sampler, seed, cycle, name),
        ).fetchone()
        return None if row is None else _from_npy(row[0])

    def array_names(self, dataset: str, sampler: str, seed: int, cycle: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT name FROM arrays WHERE dataset = ? AND sampler = ? AND seed = ? AND cycle = ?",
            (dataset, sampler, seed, cycle),
        )
        return [r[0] for r in rows]
