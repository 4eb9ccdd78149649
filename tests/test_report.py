"""`alpose-bench report`: hand-computed tables, the paired test's seed floor, and every output format."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from plot_report_factory import write_results

from alpose_bench.cli import cli
from alpose_bench.present.report import build_document, dataset_table, timing_table, to_markdown, write_report
from alpose_bench.results.analysis import ResultSet, load_result_set
from alpose_bench.results.comparisons import aubc_per_seed, sampler_summary

BUDGETS = (100, 200, 300)
RANDOM = (50.0, 60.0, 70.0)  # AUBC = (50 + 2 * 60 + 70) / 4 = 60


def cycles(seeds: int = 6, metric: str = "pckh", dataset: str = "d") -> pd.DataFrame:
    """random: RANDOM + 0.1 * seed; mpe: random + (seed + 1) at every budget, so its AUBC gain is seed + 1."""
    rows = []
    for seed in range(seeds):
        for cycle, (n, v) in enumerate(zip(BUDGETS, RANDOM)):
            last = cycle == len(BUDGETS) - 1
            for sampler, value in (("random", v + 0.1 * seed), ("mpe", v + 0.1 * seed + seed + 1)):
                rows.append({
                    "dataset": dataset, "sampler": sampler, "seed": seed, "cycle": cycle, "n_labelled": n,
                    "metric": metric, "value": value, "train_s": 10.0 + seed, "eval_s": 1.0,
                    "select_s": np.nan if last else (0.5 if sampler == "mpe" else 0.001),
                    "select_images": 0 if last or sampler == "random" else 1000, "n_selected": 0 if last else 100,
                })  # fmt: skip
    df = pd.DataFrame(rows)
    df["select_ms_per_image"] = 1000 * df["select_s"] / df["select_images"].where(df["select_images"] > 0)
    return df


def result_set(df: pd.DataFrame, runs: dict | None = None) -> ResultSet:
    experiment = {
        "name": "hand",
        "spec": {"preset": "quick", "datasets": sorted(set(df["dataset"]))},
        "provenance": {
            "git": "deadbeef",
            "device": "cpu",
            "created": "2025-01-01",
            "versions": {"torch": "2.13.0"},
        },
        "datasets": {},
        "runs": runs or {},
    }
    return ResultSet(Path("/nowhere"), df, df.iloc[:0], df.iloc[:0], experiment, ("random", "mpe"))


def test_aubc_per_seed_hand_computed_and_incomplete_seeds_left_out():
    df = cycles(seeds=2)
    df = df[
        ~((df["sampler"] == "mpe") & (df["seed"] == 0) & (df["n_labelled"] == 200))
    ]  # a hole in one curve
    a = aubc_per_seed(df).set_index(["sampler", "seed"])["aubc"]
    assert a[("random", 0)] == pytest.approx(60.0)
    assert a[("random", 1)] == pytest.approx(60.1)
    assert a[("mpe", 1)] == pytest.approx(62.1)
    assert ("mpe", 0) not in a.index


def test_sampler_summary_rank_and_paired_tests():
    """mpe's per-seed AUBC gain is seed + 1 (1..6): mean 3.5, sample std 1.871; t = 3.5 / (1.871 / sqrt 6) = 4.58 on
    5 degrees of freedom -> two-sided p = 0.0059; every difference positive -> exact Wilcoxon p = 2 / 2^6."""
    s = sampler_summary(cycles(seeds=6)).set_index("sampler")
    assert s.loc["random", "aubc_mean"] == pytest.approx(60.25)  # 60 + 0.1 * mean(0..5)
    assert s.loc["mpe", "aubc_mean"] == pytest.approx(60.25 + 3.5)
    assert (s.loc["mpe", "rank"], s.loc["random", "rank"]) == (1, 2)
    assert s.loc["mpe", "gain"] == pytest.approx(3.5)
    half = 2.5706 * np.std(np.arange(1, 7), ddof=1) / np.sqrt(6)
    assert (s.loc["mpe", "gain_ci_low"], s.loc["mpe", "gain_ci_high"]) == pytest.approx(
        (3.5 - half, 3.5 + half), abs=1e-3
    )
    assert s.loc["mpe", "p_t"] == pytest.approx(0.00594, abs=5e-5)
    assert s.loc["mpe", "p_holm"] == pytest.approx(s.loc["mpe", "p_t"])  # a family of one
    assert s.loc["mpe", "p_wilcoxon"] == pytest.approx(0.03125)
    assert bool(s.loc["mpe", "significant"]) and s.loc["mpe", "test"] == "p = 0.0059"
    assert s.loc["random", "test"] == "baseline"
    err = sampler_summary(cycles(seeds=6, metric="mpjpe")).set_index("sampler")
    assert (err.loc["mpe", "rank"], err.loc["random", "rank"]) == (2, 1)  # lower error wins


def test_summary_holm_corrects_over_samplers_and_never_ranks_references():
    df = cycles(seeds=4)
    other = df[df["sampler"] == "mpe"].assign(sampler="vl4pose")
    other["value"] = other["value"] + np.where(other["seed"] % 2 == 0, 0.5, -0.4)  # a noisy, small gain
    oracle = df[df["sampler"] == "mpe"].assign(sampler="oracle-hard")
    s = sampler_summary(pd.concat([df, other, oracle])).set_index("sampler")
    assert pd.isna(s.loc["oracle-hard", "rank"]) and bool(s.loc["oracle-hard", "reference"])
    assert sorted(s.loc[["random", "mpe", "vl4pose"], "rank"]) == [1, 2, 3]
    from statsmodels.stats.multitest import multipletests

    raw = s.loc[["mpe", "vl4pose"], "p_t"].to_numpy()
    np.testing.assert_allclose(s.loc[["mpe", "vl4pose"], "p_holm"], multipletests(raw, method="holm")[1])
    assert np.isnan(s.loc["oracle-hard", "p_holm"])  # references are not part of the family


def test_dataset_table_strings():
    """mpe's gains over 5 seeds are 1..5: mean 3, std 1.581, t = 4.24 on 4 df -> p = 0.013, interval 3 ± 1.96."""
    t = dataset_table(result_set(cycles(seeds=5)), "d").set_index("Sampler")
    assert list(t.columns) == [
        "n=100",
        "n=200",
        "n=300",
        "AUBC",
        "AUBC − random [95 % CI]",
        "Rank",
        "vs random",
    ]
    sd = np.std(0.1 * np.arange(5), ddof=1)  # 0.158
    assert t.loc["Random", "n=100"] == f"50.20 ± {sd:.2f}" == "50.20 ± 0.16"
    assert t.loc["Multi-Peak Entropy", "AUBC"] == f"{60.2 + 3:.2f} ± {np.std(np.arange(5) * 1.1, ddof=1):.2f}"
    assert t.loc["Multi-Peak Entropy", "AUBC − random [95 % CI]"] == "+3.00 [+1.04, +4.96]"
    assert t.loc["Multi-Peak Entropy", "vs random"] == "p = 0.013"
    assert t.loc["Random", "Rank"] == "2"


def test_timing_table_hand_computed():
    """Without CPU seconds (databases written before they were recorded) the table shows wall seconds."""
    t = timing_table(result_set(cycles(seeds=2)), "d").set_index("Sampler")
    mpe = t.loc["Multi-Peak Entropy"]
    assert mpe["train wall s/cycle"] == "10.5" and mpe["eval wall s/cycle"] == "1"
    assert mpe["select wall s/cycle"] == "0.5" and mpe["select ms/image"] == "0.5"
    assert mpe["total wall s/run"] == "35.5"  # seed 0: 30 + 3 + 1; seed 1: 33 + 3 + 1
    assert t.loc["Random", "select ms/image"] == "—"


def test_timing_table_compares_cpu_seconds_and_warns_when_load_stretched_wall_times():
    """With CPU seconds recorded the samplers are compared on them; wall / CPU says how much the machine's other
    work stretched a run, and above 1.25 the report warns."""
    from alpose_bench.results.analysis import load_warning, timing_data

    df = cycles(seeds=2)
    df["train_cpu_s"] = df["train_s"] / 2  # half the wall time: another process shared the core
    df["eval_cpu_s"] = df["eval_s"] / 2
    df["select_cpu_s"] = df["select_s"] / 2
    df["infer_cpu_s"] = df["select_cpu_s"] * 0.9
    t = timing_table(result_set(df), "d").set_index("Sampler")
    mpe = t.loc["Multi-Peak Entropy"]
    assert mpe["train CPU s/cycle"] == "5.25" and mpe["select CPU ms/image"] == "0.25"
    assert mpe["of which inference"] == "0.225"
    assert (
        mpe["total CPU s/run"] == "17.8" and mpe["total wall s/run"] == "35.5" and mpe["wall/CPU"] == "2.00"
    )
    warning = load_warning(timing_data(df))
    assert warning is not None and "up to 2.00" in warning and "compare samplers on CPU seconds" in warning
    df[["train_cpu_s", "eval_cpu_s", "select_cpu_s"]] *= 2
    assert load_warning(timing_data(df)) is None


def test_markdown_report_hand_case_with_failed_run():
    runs = {
        "d/mpe/0": {"status": "done", "error": None},
        "d/vl4pose/0": {"status": "failed", "error": "CUDA OOM"},
    }
    md = to_markdown(build_document(result_set(cycles(seeds=6), runs)))
    assert "| Multi-Peak Entropy | 53.75 ± 2.06 |" in md  # n=100: 51 + 1.1 * seed over seeds 0..5
    assert "| +3.50 [+1.54, +5.46] | 1 | p = 0.0059 |" in md
    assert "| Git revision | deadbeef |" in md and "| torch | 2.13.0 |" in md
    assert "| d/vl4pose/0 | CUDA OOM |" in md and "1 done, 1 failed" in md
    assert "paired t-test on per-seed AUBC" in md and "Holm" in md


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_results(
        tmp_path_factory.mktemp("results") / "exp", samplers=("random", "mpe", "vl4pose"), seeds=3
    )


@pytest.mark.slow
def test_every_format_is_written(store, tmp_path):
    rs = load_result_set(store)
    (md,) = write_report(rs, "md", tmp_path)
    assert md.name == "report.md" and "## synth-human: PCKh@0.5 (%)" in md.read_text()
    csvs = write_report(rs, "csv", tmp_path)
    assert sorted(p.name for p in csvs) == [
        "report-budgets-ood.csv", "report-budgets.csv", "report-gains-ood.csv", "report-gains.csv",
        "report-modes.csv", "report-samplers-ood.csv", "report-samplers.csv", "report-timing.csv",
    ]  # fmt: skip
    budgets = pd.read_csv(tmp_path / "report-budgets.csv")
    assert len(budgets) == 3 * 10 and set(budgets["n_seeds"]) == {3}
    (page,) = write_report(rs, "html", tmp_path)
    text = page.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert (
        len(images) == 8
    )  # curves, gain, critical difference, per-mode accuracy, joints, timing, trade-off, pose modes
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert not re.search(r'(src|href)="(?!data:)', text)  # self-contained: nothing fetched from elsewhere


def test_cli_report(store, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(store), "--format", "md", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.md").stat().st_size > 1000


def test_cli_report_bad_input(store, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and "does not exist" in missing.output
    bad = runner.invoke(cli, ["report", str(store), "--format", "xlsx"])
    assert bad.exit_code == 2 and "'md', 'html', 'csv'" in bad.output


def test_differences_to_random_say_which_sign_is_better_for_each_metric():
    """MPJPE differences are sampler − random in mm, where below 0 is better; PCKh's in points, above 0."""
    from alpose_bench.present.report import _difference_note

    assert "mm; below 0 is better" in _difference_note("mpjpe")
    assert "above 0 is better" in _difference_note("pckh")
