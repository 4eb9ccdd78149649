"""`alpose-bench plot`: the data behind each figure, the figures drawn from it, the files written, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from plot_report_factory import SAMPLERS, write_results

from alpose_bench.cli import cli
from alpose_bench.pose.skeleton import MPII
from alpose_bench.present import style
from alpose_bench.present.plot import (
    plot_curves,
    plot_gain,
    plot_results,
    plot_selection,
    plot_timing,
    plot_tradeoff,
    save_figure,
)
from alpose_bench.results.analysis import (
    ResultsError,
    ResultSet,
    curve_data,
    gain_data,
    joint_data,
    load_result_set,
    mode_data,
    timing_data,
)
from alpose_bench.spec import roles

T_975_DF1 = 12.706204736174707  # Student t, 97.5 % quantile, 1 degree of freedom
T_975_DF2 = 4.302652729749464


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """7 samplers x 5 seeds x 10 cycles on two datasets (PCKh and MPJPE), in a real results store."""
    return write_results(tmp_path_factory.mktemp("results") / "exp", datasets=("synth-human", "synth-hand"))


@pytest.fixture(scope="module")
def rs(store) -> ResultSet:
    return load_result_set(store)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """(sampler, seed, n_labelled, value) rows of one PCKh dataset."""
    df = pd.DataFrame(rows, columns=["sampler", "seed", "n_labelled", "value"])
    df.insert(0, "dataset", "d")
    df["metric"] = "pckh"
    return df


def test_curve_data_is_mean_and_t_interval_over_seeds():
    df = frame([
        ("mpe", 0, 100, 70.0), ("mpe", 1, 100, 74.0),
        ("mpe", 0, 200, 1.0), ("mpe", 1, 200, 2.0), ("mpe", 2, 200, 3.0),
        ("random", 0, 100, 50.0),
    ])  # fmt: skip
    c = curve_data(df).set_index(["sampler", "n_labelled"])
    a = c.loc[("mpe", 100)]
    assert (a["mean"], a["n_seeds"]) == (72.0, 2)
    assert a["std"] == pytest.approx(np.sqrt(8.0))  # sample std of 70, 74
    assert a["ci_low"] == pytest.approx(72 - T_975_DF1 * 2.0)  # std / sqrt(2) = 2
    assert a["ci_high"] == pytest.approx(72 + T_975_DF1 * 2.0)
    b = c.loc[("mpe", 200)]
    assert (b["mean"], b["std"]) == (2.0, 1.0)
    assert b["ci_high"] - b["mean"] == pytest.approx(T_975_DF2 / np.sqrt(3))
    one = c.loc[("random", 100)]  # one seed: a mean but no band
    assert one["mean"] == 50.0 and np.isnan(one["ci_low"]) and np.isnan(one["ci_high"])


def test_gain_is_paired_by_seed_and_budget():
    df = frame([
        ("random", 0, 100, 70.0), ("random", 1, 100, 72.0),
        ("mpe", 0, 100, 73.0), ("mpe", 1, 100, 74.0),
        ("mpe", 2, 100, 99.0),  # no random run with seed 2: left out
    ])  # fmt: skip
    g = gain_data(df).set_index("sampler")
    assert g.loc["mpe", "mean"] == pytest.approx(2.5)  # diffs 3 and 2
    assert g.loc["mpe", "std"] == pytest.approx(np.sqrt(0.5))
    assert g.loc["mpe", "n_seeds"] == 2
    assert g.loc["random", "mean"] == 0.0
    assert gain_data(df[df["sampler"] != "random"]).empty


def test_joint_data_uses_the_budget_every_sampler_reached():
    rows = [
        ("d", "pckh", s, seed, n, j, v)
        for s, last in (("mpe", 300), ("random", 200))
        for seed in (0, 1)
        for n in range(100, last + 1, 100)
        for j, v in (("knee", n / 10 + seed), ("head", n / 5))
    ]
    joints = pd.DataFrame(
        rows, columns=["dataset", "metric", "sampler", "seed", "n_labelled", "joint", "value"]
    )
    out = joint_data(joints, {"d": ["head", "knee"]})
    assert set(out["n_labelled"]) == {200}
    mpe = out[out["sampler"] == "mpe"]
    assert list(mpe["joint"]) == ["head", "knee"]  # the dataset's joint order, not order of appearance
    assert list(mpe["value"]) == [40.0, 20.5]  # knee: mean of 20 and 21


def test_timing_data_hand_computed():
    df = pd.DataFrame({
        "dataset": "d", "sampler": "mpe", "seed": [0, 0, 1, 1], "cycle": [0, 1, 0, 1],
        "train_s": [10.0, 20.0, 12.0, 18.0], "eval_s": [1.0, 1.0, 3.0, 3.0],
        "select_s": [2.0, np.nan, 6.0, np.nan], "select_images": [1000, 0, 1000, 0],
    })  # fmt: skip
    df["select_ms_per_image"] = 1000 * df["select_s"] / df["select_images"].where(df["select_images"] > 0)
    t = timing_data(df).iloc[0]
    assert (t["train_s"], t["eval_s"], t["select_s"]) == (15.0, 2.0, 4.0)  # select: only cycles that selected
    assert t["select_ms_per_image"] == pytest.approx(4.0)  # 2 and 6 ms per image
    assert (t["select_ms_min"], t["select_ms_max"]) == pytest.approx((2.0, 6.0))
    assert t["select_images_per_s"] == pytest.approx(2000 / 8.0)
    assert t["total_s"] == pytest.approx(
        ((10 + 20) + (1 + 1) + 2 + (12 + 18) + (3 + 3) + 6) / 2
    )  # per-seed run, mean


def test_mode_data_fractions_per_cycle():
    sel = pd.DataFrame({
        "dataset": "d", "sampler": "mpe", "seed": [0, 0, 1, 1, 0], "cycle": [0, 0, 0, 0, 1], "group": [0, 1, 1, 1, 2],
    })  # fmt: skip
    m = mode_data(sel).set_index(["cycle", "group"])
    assert m.loc[(0, 1), "count"] == 3 and m.loc[(0, 1), "fraction"] == 0.75
    assert m.loc[(0, 0), "fraction"] == 0.25 and m.loc[(1, 2), "fraction"] == 1.0


def _lines(ax) -> dict[str, np.ndarray]:
    return {
        ln.get_gid().split(":")[1]: ln.get_xydata()
        for ln in ax.get_lines()
        if (ln.get_gid() or "").startswith("line:")
    }


def _bands(ax) -> dict[str, np.ndarray]:
    return {
        c.get_gid().split(":")[1]: c.get_paths()[0].vertices
        for c in ax.collections
        if (c.get_gid() or "").startswith("band:")
    }


def _check_band(vertices: np.ndarray, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    for xi, low, high in zip(x, lo, hi):
        ys = vertices[np.isclose(vertices[:, 0], xi), 1]
        assert np.isclose(ys, low).any() and np.isclose(ys, high).any(), f"band at {xi}: not {low}..{high}"


def test_curves_figure_draws_curve_data_of_every_split(rs):
    fig = plot_curves(rs)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    ood = "\nood split (deployment distribution)"
    assert [ax.get_title() for ax in axes] == [
        "synth-human, quick preset", "synth-human, quick preset" + ood,
        "synth-hand, quick preset", "synth-hand, quick preset" + ood,
    ]  # fmt: skip
    assert axes[0].get_ylabel() == "PCKh@0.5 (%)" and axes[2].get_ylabel() == "MPJPE (mm, lower is better)"
    panels = [("synth-human", "test"), ("synth-human", "ood"), ("synth-hand", "test"), ("synth-hand", "ood")]
    for ax, (dataset, split) in zip(axes, panels):
        expected = curve_data(rs.split_cycles(split))
        lines, bands = _lines(ax), _bands(ax)
        assert set(lines) == set(SAMPLERS)
        for sampler in SAMPLERS:
            e = expected[(expected["dataset"] == dataset) & (expected["sampler"] == sampler)].sort_values(
                "n_labelled"
            )
            np.testing.assert_allclose(lines[sampler][:, 0], e["n_labelled"])
            np.testing.assert_allclose(lines[sampler][:, 1], e["mean"])
            _check_band(
                bands[sampler], e["n_labelled"].to_numpy(), e["ci_low"].to_numpy(), e["ci_high"].to_numpy()
            )
    random_line = next(ln for ln in axes[0].get_lines() if ln.get_gid() == "line:random")
    assert random_line.get_linestyle() == "--" and random_line.get_color() == style.RANDOM_GREY
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # constrained layout places the legend at draw time
    legend_box = fig.legends[0].get_window_extent(renderer)
    for ax in axes:  # the legend sits outside every panel
        assert not legend_box.overlaps(ax.get_window_extent(renderer))


def test_gain_figure_draws_gain_data_in_the_same_colours(rs):
    fig = plot_gain(rs)
    expected = gain_data(rs.cycles)
    ax = fig.axes[0]
    lines = _lines(ax)
    assert "random" not in lines  # random is the zero line
    vl = expected[(expected["dataset"] == "synth-human") & (expected["sampler"] == "vl4pose")]
    np.testing.assert_allclose(lines["vl4pose"][:, 1], vl.sort_values("n_labelled")["mean"])
    colour = next(ln.get_color() for ln in ax.get_lines() if ln.get_gid() == "line:vl4pose")
    assert colour == style.sampler_color("vl4pose")


def test_gain_keeps_random_as_baseline_when_not_shown(rs):
    fig = plot_gain(rs.filtered(samplers=["mpe"]))
    assert set(_lines(fig.axes[0])) == {"mpe"}


def test_timing_figure_has_realtime_line_on_log_axis(rs):
    fig = plot_timing(rs)
    latency = fig.axes[1]
    assert latency.get_xscale() == "log"
    assert any(np.allclose(ln.get_xdata(), 1000 / 30) for ln in latency.get_lines())


def test_tradeoff_puts_each_sampler_at_its_cost_and_gain(rs):
    from alpose_bench.results.comparisons import tradeoff_data

    fig = plot_tradeoff(rs)
    split = "ood" if "ood" in rs.splits else "test"
    expected = tradeoff_data(rs.cycles, rs.split_cycles(split))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    dataset = rs.datasets[0]
    d = expected[expected["dataset"] == dataset].dropna(subset=["ms_per_frame"])
    points = {tuple(np.round(ln.get_xydata()[0], 6)) for ln in ax.get_lines() if len(ln.get_xdata()) == 1}
    for row in d.itertuples():
        gain = 0.0 if row.sampler == "random" else row.gain
        assert (round(row.ms_per_frame, 6), round(gain, 6)) in points, row.sampler
    assert any(np.allclose(ln.get_xdata(), 1000 / 30) for ln in ax.get_lines())  # the real-time line


def test_plot_selection_draws_each_predicted_and_refined_skeleton():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 32, 32, 1), dtype=np.uint8)
    kp = rng.uniform(0, 31, (3, 16, 2))
    fig = plot_selection(images, kp, MPII.links, refined=kp + 1)
    skeletons = {c.get_gid(): c for ax in fig.axes for c in ax.collections if isinstance(c, LineCollection)}
    assert len(skeletons) == 6
    parent, child = MPII.links[0]
    np.testing.assert_allclose(skeletons["skeleton:2:predicted"].get_segments()[0], kp[2, [parent, child]])
    np.testing.assert_allclose(skeletons["skeleton:2:refined"].get_segments()[0], kp[2, [parent, child]] + 1)
    with pytest.raises(ValueError, match="keypoints"):
        plot_selection(images, kp[:2], MPII.links)
    with pytest.raises(ValueError, match="no images"):
        plot_selection(images[:0], kp[:0], MPII.links)


@pytest.mark.slow
def test_plot_results_writes_every_figure(rs, tmp_path):
    out = plot_results(rs, tmp_path, "png")
    names = sorted(p.name for p in out.written)
    assert names == [
        "cd.png",
        "curves.png",
        "gain.png",
        "joints.png",
        "mode-accuracy.png",
        "modes-synth-hand.png",
        "modes-synth-human.png",
        "timing.png",
        "tradeoff.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in out.written) and not out.skipped


def test_svg_and_pdf_are_reproducible(rs, tmp_path):
    small = rs.filtered(metric="mpjpe", samplers=["random", "mpe"])
    for fmt in ("svg", "pdf"):
        a = save_figure(plot_timing(small), tmp_path / f"a.{fmt}", fmt)
        b = save_figure(plot_timing(small), tmp_path / f"b.{fmt}", fmt)
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_figures_that_cannot_be_drawn_are_skipped_with_the_reason(rs, tmp_path):
    no_random = replace(
        rs, cycles=rs.cycles[rs.cycles["sampler"] != "random"], evals=rs.evals[rs.evals["sampler"] != "random"],
        samplers=("mpe", "vl4pose"),
    )  # fmt: skip
    out = plot_results(no_random, tmp_path, "png")
    assert out.skipped == [
        "gain: no random runs to compare with; add random to the experiment's samplers",
        "cd: a critical-difference diagram needs 3 or more samplers and 2 or more budgets after the first",
        "mode-accuracy: no per-mode results (only datasets with pose modes, evaluated with random, have them)",
        "tradeoff: no random runs to compare with; add random to the experiment's samplers",
    ]
    assert "gain.png" not in {p.name for p in out.written} and (tmp_path / "curves.png").exists()


def test_filters_list_the_known_names(rs):
    with pytest.raises(
        ResultsError, match="did you mean vl4pose.*samplers in these results: random, coreset"
    ):
        rs.filtered(samplers=["vl4"])
    with pytest.raises(ResultsError, match="metrics in these results: mpjpe, pckh"):
        rs.filtered(metric="pck")
    assert rs.filtered(metric="mpjpe").datasets == ["synth-hand"]


def test_style_is_stable():
    assert style.sampler_color("random") == style.RANDOM_GREY and style.sampler_linestyle("random") == "--"
    from alpose_bench.spec.registry import working_samplers

    builtin = {style.sampler_color(s) for s in working_samplers()}
    assert len(builtin) == len(working_samplers())  # every built-in has its own colour
    plugin = style.sampler_color("flip-consistency")
    assert plugin == style.sampler_color("flip-consistency") and plugin not in builtin | {style.RANDOM_GREY}
    assert roles.sampler_order(["zeta", "vl4pose", "random", "alpha"]) == [
        "random",
        "vl4pose",
        "alpha",
        "zeta",
    ]


@pytest.mark.slow
def test_cli_plot(store, tmp_path):
    runner = CliRunner()
    args = ["plot", str(store), "--out", str(tmp_path), "--metric", "mpjpe", "--samplers", "random,vl4pose"]
    result = runner.invoke(cli, [*args, "--format", "svg"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        "curves.svg", "gain.svg", "joints.svg", "mode-accuracy.svg", "modes-synth-hand.svg", "timing.svg",
        "tradeoff.svg",
    ]  # fmt: skip
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plot", "{missing}"], "does not exist"),
        (["plot", "{empty}"], "no results in"),
        (["plot", "{store}", "--metric", "auc"], "known metrics: pckh, pck, mpjpe"),
        (
            ["plot", "{store}", "--samplers", "mpe,nope"],
            "samplers in these results: random, coreset, learning-loss",
        ),
    ],
)
def test_cli_plot_bad_input_is_one_line_exit_2(store, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "store": store}
    result = CliRunner().invoke(cli, [a.format(**paths) for a in args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """Two synthetic datasets with a 300-image pool, so --show-selection regenerates their images quickly."""
    return write_results(
        tmp_path_factory.mktemp("small") / "exp",
        datasets=("synth-human", "synth-hand"), samplers=("random", "vl4pose"), seeds=1, cycles=2, pool=300,
    )  # fmt: skip


def test_selection_figures_draw_the_stored_predictions_on_the_dataset_images(small_store):
    from alpose_bench.engine.build import dataset_of
    from alpose_bench.present.plot import selection_figures
    from alpose_bench.results.read import load_selection_keypoints
    from alpose_bench.spec.config import ExperimentSpec

    rs = load_result_set(small_store).filtered(samplers=["vl4pose"])
    figures = dict(selection_figures(rs, cycle=0, max_images=4))
    assert set(figures) == {
        "selection-synth-human-vl4pose-seed0-cycle0",
        "selection-synth-hand-vl4pose-seed0-cycle0",
    }
    stored = load_selection_keypoints(small_store, "synth-hand", "vl4pose", 0, 0)
    hand = dataset_of(ExperimentSpec.from_stored(rs.experiment["spec"]), "synth-hand")
    first = np.asarray(stored["keypoints"])[0]  # rank 0, mm around the hand centre
    fig = figures["selection-synth-hand-vl4pose-seed0-cycle0"]
    ax = fig.axes[0]
    np.testing.assert_array_equal(
        ax.get_images()[0].get_array(), hand.train.images[stored["index"][0], ..., 0]
    )
    segments = next(c for c in ax.collections if c.get_gid() == "skeleton:0:predicted").get_segments()
    parent, child = hand.skeleton.links[0]
    expected = (first[[parent, child], :2] / hand.cube_mm + 1) * hand.resolution / 2 - 0.5
    np.testing.assert_allclose(segments[0], expected)
    human = figures["selection-synth-human-vl4pose-seed0-cycle0"]
    gids = {c.get_gid() for ax in human.axes for c in ax.collections}
    assert (
        "skeleton:3:refined" in gids and "skeleton:4:predicted" not in gids
    )  # 4 images, each with its refined pose


@pytest.mark.slow
def test_cli_show_selection_writes_a_grid_per_sampler(small_store, tmp_path):
    args = ["plot", str(small_store), "--out", str(tmp_path), "--metric", "mpjpe", "--show-selection"]
    result = CliRunner().invoke(cli, [*args, "--max-images", "6"])
    assert result.exit_code == 0, result.output
    for sampler in ("random", "vl4pose"):
        assert (tmp_path / f"selection-synth-hand-{sampler}-seed0-cycle0.png").stat().st_size > 10_000
    bad = CliRunner().invoke(cli, [*args, "--seed", "7"])
    assert bad.exit_code == 2 and "seeds there: 0" in bad.output


def test_a_long_title_is_wrapped_inside_the_figure(rs):
    """A long experiment name: the title stays within the figure instead of being cut off at its edges, and wraps
    to the whole figure's width (the legend widens it; a title wrapped before that broke lines at two thirds)."""
    import dataclasses

    long = dataclasses.replace(rs.filtered(metric="mpjpe"), experiment={**rs.experiment, "name": "lspet-" * 20})
    fig = plot_gain(long)
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.get_figwidth() * fig.dpi, box
    assert box.width > 0.75 * fig.get_figwidth() * fig.dpi, box
