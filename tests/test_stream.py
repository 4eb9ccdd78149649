"""The stream protocol as a user meets it: budget managers keep to the label rate (the balanced one decides as
scikit-activeml's filter does), the stream order is seeded and follows the deployment prior, a stream run records
chunks, requests and adherence, is deterministic, and wrong stream settings are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from alpose_bench.cli import cli
from alpose_bench.engine.budget import BalancedQuantile, FixedThreshold, RunningQuantile
from alpose_bench.engine.build import dataset_of, initial_labelled
from alpose_bench.engine.stream import stream_order
from alpose_bench.results import read as results
from alpose_bench.spec.config import build_spec
from alpose_bench.spec.registry import get_budget_manager
from alpose_bench.spec.stream import allowance


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), obj={})


@pytest.mark.parametrize("manager", [FixedThreshold, RunningQuantile, BalancedQuantile])
def test_every_manager_keeps_to_the_rate_and_never_passes_the_cap(manager):
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, size=2000)
    m = manager(0.1, 100)
    m.calibrate(rng.gamma(2.0, size=500))  # the labelled frames' scores, same distribution
    asked = m.decide(scores)
    assert len(asked) <= allowance(0.1, len(scores)) == 200
    assert len(asked) >= 0.8 * 200  # a manager that starves the device is no manager
    assert np.all(np.diff(asked) > 0)  # stream order, each frame once
    # what it asks for is the high end of the stream: the picks' mean score beats the stream's
    assert scores[asked].mean() > 1.5 * scores.mean()


def test_the_cap_binds_when_the_scores_drift_upward():
    scores = np.linspace(0.0, 1.0, 1000)  # every new frame beats all before it
    asked = RunningQuantile(0.05, 50).decide(scores)
    assert len(asked) == allowance(0.05, 1000) == 50  # wants every frame; the allowance stops it
    assert asked.tolist() == list(range(50))  # the first frames it wanted, in order


def test_nan_scores_are_never_requested():
    scores = np.array([np.nan, 5.0, np.nan, 1.0, 9.0, np.nan])
    asked = RunningQuantile(0.5, 10).decide(scores)
    assert not np.isnan(scores[asked]).any() and len(asked) >= 1


def test_balanced_decides_as_scikit_activeml_does_where_the_cap_does_not_bind():
    from skactiveml.stream.budgetmanager import BalancedIncrementalQuantileFilter

    scores = np.random.default_rng(3).random(600)
    ours = BalancedQuantile(0.2, 40).decide(scores)
    theirs = BalancedIncrementalQuantileFilter(w=40, w_tol=20, budget=0.2)
    expected = theirs.query_by_utility(scores)  # sequential decisions over the whole stream
    assert len(expected) < allowance(0.2, 600)  # the cap did not bind: the two must agree frame by frame
    assert ours.tolist() == list(expected)


def test_budget_managers_are_plugins():
    assert get_budget_manager("balanced") is BalancedQuantile
    assert get_budget_manager("Quantile") is RunningQuantile  # names in any spelling, as samplers


@pytest.fixture(scope="module")
def synth():
    spec = build_spec(
        "smoke", None, {"pool_size": 600, "dataset_options": {"synth-human": {"ood_appearance": "pool"}}}
    )
    return dataset_of(spec, "synth-human")


def test_stream_order_is_seeded_the_same_for_every_sampler_and_covers_the_rest(synth):
    initial = initial_labelled(synth, 16, 0)
    for order in ("deployment", "shuffled", "drift"):
        a = stream_order(synth, initial, 0, order)
        assert np.array_equal(a, stream_order(synth, initial, 0, order))  # seeded
        assert sorted(a.tolist()) == sorted(set(range(len(synth.train))) - set(initial.tolist()))
        assert not np.array_equal(a, stream_order(synth, initial, 1, order))


def test_deployment_order_starts_with_the_deployment_mix(synth):
    initial = initial_labelled(synth, 16, 0)
    head = stream_order(synth, initial, 0, "deployment")[:150]
    groups = synth.train.group_ids
    n = len(synth.group_names)
    early = np.bincount(groups[head], minlength=n) / len(head)
    pool = np.bincount(groups, minlength=n) / len(groups)
    target = np.asarray(synth.info["ood_group_prior"])
    # the stream's first frames sit closer to the deployment prior than the pool does
    assert np.abs(early - target).sum() < 0.6 * np.abs(pool - target).sum()


def test_drift_moves_the_mix_across_the_stream(synth):
    order = stream_order(synth, initial_labelled(synth, 16, 0), 0, "drift")
    groups = synth.train.group_ids[order]
    n = len(synth.group_names)
    first = np.bincount(groups[: len(order) // 3], minlength=n) / (len(order) // 3)
    last = np.bincount(groups[-(len(order) // 3) :], minlength=n) / (len(order) // 3)
    assert np.abs(first - last).sum() > 0.5  # a third of the stream apart, the mode mix has moved


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream")
    args = ["run", "--preset", "smoke", "--samplers", "random,vl4pose,coreset", "--protocol", "stream",
            "--stream-buffer", "20", "--out", str(out), "--quiet"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return out / "synth-human-smoke", args


def test_a_stream_run_records_chunks_requests_and_adherence(stream_run):
    folder, _ = stream_run
    df = results.load(folder)
    chunk = (120 - 16) // 2  # smoke: pool 120, init 16, 2 cycles: the pool streams once
    per_chunk = allowance(16 / chunk, chunk)
    selecting = df[df["select_images"] > 0]
    assert (selecting["select_images"] == chunk).all()
    assert (selecting["n_selected"] <= per_chunk).all() and (selecting["n_selected"] > 0).all()
    # the buffered sampler takes its allowance exactly, buffer by buffer
    assert (selecting.loc[selecting["sampler"] == "coreset", "n_selected"] == per_chunk).all()
    # curves are drawn at the label budget; the labels asked for are kept beside it
    assert sorted(set(df["n_labelled"])) == [16, 16 + per_chunk, 16 + 2 * per_chunk]
    assert (df["n_requested"] <= df["n_labelled"]).all()
    # each chunk's picks come from that chunk of the stream, and no frame is picked twice
    sel = results.load_selections(folder)
    assert not sel.duplicated(["sampler", "seed", "index"]).any()
    report = invoke("report", str(folder))
    assert report.exit_code == 0, report.output
    text = (folder / "report.md").read_text()
    assert "budget adherence (stream)" in text and "buffered (20 frames)" in text


def test_a_stream_run_is_deterministic(stream_run, tmp_path):
    folder, args = stream_run
    again = invoke(*[a if a != str(folder.parent) else str(tmp_path) for a in args])
    assert again.exit_code == 0, again.output
    first, second = results.load_selections(folder), results.load_selections(tmp_path / folder.name)
    assert first[["sampler", "seed", "cycle", "index"]].equals(second[["sampler", "seed", "cycle", "index"]])
    assert np.allclose(results.load(folder)["value"], results.load(tmp_path / folder.name)["value"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--label-rate", "0.1"], "label_rate (--label-rate) applies only to the stream protocol"),
        (["--protocol", "stream", "--stream-chunk", "100"], "lower --stream-chunk or --cycles"),
        (["--protocol", "stream", "--label-rate", "0.001"], "allows no label per chunk"),
        (["--protocol", "stream", "--budget", "60"], "more than one label per frame"),
        (["--protocol", "stream", "--budget-manager", "balancd"], "Did you mean 'balanced'"),
        (["--protocol", "stream", "--label-rate", "1.5"], "label_rate"),
        (["--protocol", "streem"], "streem"),
    ],
)
def test_wrong_stream_settings_are_one_line_errors(args, fragment, tmp_path):
    result = invoke("run", "--preset", "smoke", "--samplers", "random", "--out", str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert fragment in lines[-1], result.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_compare_pairs_pool_and_stream_runs_by_seed(stream_run, tmp_path):
    folder, _ = stream_run
    pool = invoke("run", "--preset", "smoke", "--samplers", "random,vl4pose,coreset", "--out", str(tmp_path),
                  "--quiet")  # fmt: skip
    assert pool.exit_code == 0, pool.output
    from alpose_bench.results.analysis import load_result_set
    from alpose_bench.results.comparisons import aubc_per_seed, experiment_difference

    a, b = load_result_set(tmp_path / folder.name), load_result_set(folder)
    table = experiment_difference(a.cycles, b.cycles).set_index("sampler")
    per_a, per_b = aubc_per_seed(a.cycles).set_index("sampler"), aubc_per_seed(b.cycles).set_index("sampler")
    for sampler in ("random", "vl4pose", "coreset"):
        assert table.loc[sampler, "b_minus_a"] == pytest.approx(per_b.loc[sampler, "aubc"] - per_a.loc[sampler, "aubc"])
    assert np.isnan(table.loc["random", "gain_a"])  # the baseline has no gain over itself
    csv = tmp_path / "diff.csv"
    shown = invoke("compare", str(tmp_path / folder.name), str(folder), "--csv", str(csv))
    assert shown.exit_code == 0, shown.output
    assert "vl4pose" in shown.output and csv.exists()
    wrong = invoke("compare", str(folder), str(folder), "--split", "nowhere")
    assert wrong.exit_code == 2 and "no results on the 'nowhere' split" in wrong.output.strip().splitlines()[-1]


def test_a_stream_run_cut_short_resumes_to_the_same_results(tmp_path):
    from alpose_bench.results.store import Store

    def run(name: str):
        return invoke("run", "--preset", "smoke", "--samplers", "random,vl4pose", "--protocol", "stream",
                      "--stream-order", "drift", "--out", str(tmp_path), "--name", name, "--quiet")  # fmt: skip

    assert run("whole").exit_code == 0 and run("cut").exit_code == 0
    with Store(tmp_path / "cut") as store:  # as a run killed after its first chunk left it
        with store.conn:
            for table in ("cycles", "selections", "evals", "arrays"):
                store.conn.execute(f"DELETE FROM {table} WHERE sampler = 'vl4pose' AND cycle >= 1")
        store.set_status("synth-human", "vl4pose", 0, "running")
    resumed = run("cut")
    assert resumed.exit_code == 0, resumed.output
    picks = ["sampler", "seed", "cycle", "index"]
    assert results.load_selections(tmp_path / "cut")[picks].equals(results.load_selections(tmp_path / "whole")[picks])
    np.testing.assert_allclose(results.load(tmp_path / "cut")["value"], results.load(tmp_path / "whole")["value"])
