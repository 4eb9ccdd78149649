"""The same experiment gives the same rows whichever executor runs it: in-process, joblib workers, Dask cluster."""

from __future__ import annotations

import pandas as pd
import pytest

from alpose_bench import results
from alpose_bench.config import build_spec
from alpose_bench.runner import plan, run_plan

COLUMNS = ["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "n_selected"]
SELECTION = ["dataset", "sampler", "seed", "cycle", "rank", "index"]


def run(tmp, **kwargs):
    spec = build_spec("smoke", None, {"samplers": "random,mpe", "seeds": 2})
    the_plan = plan(spec, tmp)
    errors = run_plan(the_plan, **kwargs)
    assert errors and not any(errors.values()), errors
    return results.load(the_plan.out_dir)[COLUMNS], results.load_selections(the_plan.out_dir)[SELECTION]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    return run(tmp_path_factory.mktemp("sequential"))


def test_joblib_workers_give_the_sequential_rows(tmp_path, sequential):
    rows, picks = run(tmp_path, jobs=2)
    pd.testing.assert_frame_equal(rows, sequential[0])
    pd.testing.assert_frame_equal(picks, sequential[1])


def test_a_dask_local_cluster_gives_the_sequential_rows(tmp_path, sequential):
    pytest.importorskip("distributed")
    rows, picks = run(tmp_path, jobs=2, executor="dask")
    pd.testing.assert_frame_equal(rows, sequential[0])
    pd.testing.assert_frame_equal(picks, sequential[1])
