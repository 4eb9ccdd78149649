"""Reading an experiment's results as tidy pandas DataFrames (what plot, report and users read)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alpose_bench.results.store import Store, StoreError
from alpose_bench.spec.stream import stream_of

CYCLE_COLUMNS = [
    "dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "train_s", "eval_s", "select_s",
    "select_images", "select_ms_per_image", "n_selected", "train_cpu_s", "eval_cpu_s", "select_cpu_s", "infer_s",
    "infer_cpu_s", "n_requested",
]  # fmt: skip
# NULL in databases written before they existed
CPU_COLUMNS = ("train_cpu_s", "eval_cpu_s", "select_cpu_s", "infer_s", "infer_cpu_s")


def _store(path: str | Path | Store) -> AbstractContextManager[Store]:
    """A read-only handle on a results folder (closed on exit), or the open Store given (left open)."""
    if isinstance(path, Store):
        return nullcontext(path)
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise StoreError(
            f"results folder {path} does not exist; pass the folder `alpose-bench run` wrote (results/NAME)"
        )
    return Store(path, readonly=True)


def reading(path: str | Path) -> AbstractContextManager[Store]:
    """One read-only handle on a results folder for several loads (`load(store)`, `load_joints(store)`, ...)."""
    return _store(path)


def _label_budget(store: Store, df: pd.DataFrame) -> pd.DataFrame:
    """Under the stream protocol, `n_labelled` becomes the label budget of the cycle (init + cycle x the chunk's
    allowance: what every sampler of the experiment was allowed, so curves and paired statistics line up) and
    `n_requested` keeps the labels the device asked for; under the pool protocol both are the labelled count."""
    df = df.copy()
    df["n_requested"] = df["n_labelled"]
    spec = store.get_meta("spec") or {}
    if stream_of(spec) is None or df.empty:
        return df
    info = store.dataset_info()
    for dataset, rows in df.groupby("dataset").groups.items():
        stream = stream_of(spec, int(info[dataset]["pool"]))
        assert stream is not None
        df.loc[rows, "n_labelled"] = spec["init"] + df.loc[rows, "cycle"] * stream.per_chunk
    return df


def load(path: str | Path | Store) -> pd.DataFrame:
    """One row per (dataset, sampler, seed, cycle) with the metric (% or mm) and timings in seconds: wall seconds
    (`train_s`, `eval_s`, `select_s`) and CPU seconds of the task's process (`*_cpu_s`, NaN where not recorded).
    Stream experiments: `n_labelled` is the label budget, `n_requested` the labels asked for (`_label_budget`)."""
    with _store(path) as store:
        have = set(store.columns("cycles"))
        cpu = ", ".join(c if c in have else f"NULL AS {c}" for c in CPU_COLUMNS)
        df = pd.read_sql_query(
            "SELECT dataset, sampler, seed, cycle, n_labelled, metric, value, train_s, eval_s, select_s, "
            f"select_images, n_selected, {cpu} FROM cycles ORDER BY dataset, sampler, seed, cycle",
            store.conn,
        )
        df = _label_budget(store, df)
    for column in ("select_s", *CPU_COLUMNS):
        df[column] = df[column].astype(float)
    df["select_ms_per_image"] = 1000.0 * df["select_s"] / df["select_images"].where(df["select_images"] > 0)
    return df[CYCLE_COLUMNS]


def load_joints(path: str | Path | Store) -> pd.DataFrame:
    """Per-joint metric: one row per (dataset, sampler, seed, cycle, joint)."""
    with _store(path) as store:
        rows = store.conn.execute(
            "SELECT dataset, sampler, seed, cycle, n_labelled, metric, per_joint FROM cycles "
            "ORDER BY dataset, sampler, seed, cycle"
        ).fetchall()
        records = [
            (d, s, k, c, n, m, joint, np.nan if v is None else float(v))
            for d, s, k, c, n, m, pj in rows
            for joint, v in json.loads(pj).items()
        ]
        return _label_budget(store, pd.DataFrame(
            records, columns=["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "joint", "value"]
        )).drop(columns="n_requested")  # fmt: skip


EVAL_COLUMNS = [
    "dataset",
    "sampler",
    "seed",
    "cycle",
    "n_labelled",
    "metric",
    "split",
    "group",
    "value",
    "n_images",
]


def load_evals(path: str | Path | Store) -> pd.DataFrame:
    """The metric on every held-out split (`test`, `ood`), of the whole split (group "all") and of each pose mode:
    one row per (dataset, sampler, seed, cycle, split, group). Empty for databases written before it was recorded."""
    with _store(path) as store:
        if not store.has_table("evals"):
            return pd.DataFrame(columns=EVAL_COLUMNS)
        df = pd.read_sql_query(
            'SELECT e.dataset, e.sampler, e.seed, e.cycle, c.n_labelled, c.metric, e.split, e.grp AS "group", '
            "e.value, e.n_images FROM evals e JOIN cycles c USING (dataset, sampler, seed, cycle) "
            "ORDER BY e.dataset, e.sampler, e.seed, e.cycle, e.rowid",
            store.conn,
        )
        df = _label_budget(store, df)
    df["value"] = df["value"].astype(float)
    return df[EVAL_COLUMNS]


def load_selections(path: str | Path | Store) -> pd.DataFrame:
    """The images each task picked at each cycle: rank (0 = first), dataset train index, score, pose-mode group."""
    with _store(path) as store:
        df = pd.read_sql_query(
            'SELECT dataset, sampler, seed, cycle, rank, idx AS "index", score, grp AS "group" FROM selections '
            "ORDER BY dataset, sampler, seed, cycle, rank",
            store.conn,
        )
    df["score"] = df["score"].astype(float)
    return df


def load_selection_keypoints(
    path: str | Path, dataset: str, sampler: str, seed: int, cycle: int
) -> dict[str, Any]:
    """Predicted (and, for VL4Pose, refined) keypoints of the images picked at one cycle, in model-input pixels."""
    with _store(path) as store:
        index = store.selected(dataset, sampler, seed).get(cycle, np.zeros(0, dtype=np.int64))
        out: dict[str, Any] = {"index": index}
        for name in store.array_names(dataset, sampler, seed, cycle):
            out[name] = store.array(dataset, sampler, seed, cycle, name)
    return out


def load_experiment(path: str | Path | Store) -> dict[str, Any]:
    """Name, spec, provenance and per-dataset information of an experiment."""
    with _store(path) as store:
        spec = store.get_meta("spec") or {}
        return {
            "name": spec.get("name", store.directory.name),
            "spec": spec,
            "provenance": store.get_meta("provenance") or {},
            "datasets": store.dataset_info(),
            "runs": {
                f"{d}/{s}/{k}": {"status": st, "error": e} for (d, s, k), (st, e) in store.statuses().items()
            },
        }
