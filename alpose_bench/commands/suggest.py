"""`alpose-bench suggest PROJECT`: which of my frames should I label next?"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from alpose_bench.commands.console import output_console
from alpose_bench.errors import UserError
from alpose_bench.spec.advice import COMPETENT_ACCURACY
from alpose_bench.suggest.project import read_project
from alpose_bench.suggest.suggester import FAMILY_SETTINGS, Suggestions, SuggestOptions, check_request
from alpose_bench.suggest.suggester import suggest as run_suggest


def _model_choice(value: str) -> tuple[str, Path | None]:
    """`--model`: a family name, or a file written by --save-model."""
    if value in FAMILY_SETTINGS:
        return value, None
    path = Path(value)
    if not path.is_file():
        raise UserError(
            f"--model {value!r} is neither a model family ({', '.join(FAMILY_SETTINGS)}) nor a file written by "
            "--save-model"
        )
    return "mobilenet-v2", path


def _summary(found: Suggestions, min_accuracy: float) -> list[str]:
    lines = []
    if found.n_holdout:
        px = f", mean keypoint error {found.pixel_error:.1f} px" if found.pixel_error is not None else ""
        lines.append(
            f"held-out accuracy: PCK@0.2 {found.accuracy:.1f} % (of the keypoints' box diagonal){px} on "
            f"{found.n_holdout} of {found.n_train + found.n_holdout} labelled frames (a seeded split); the model "
            f"that ranks was trained on the other {found.n_train}"
        )
    else:
        lines.append(
            f"no held-out accuracy: all {found.n_train} labelled frames trained the model (--holdout 0, or fewer "
            "than 5 labelled frames)"
        )
    weak = found.accuracy is None or found.accuracy < min_accuracy
    if weak:
        lines.append(
            "[yellow]warning:[/yellow] "
            + (
                "no held-out accuracy, so the regime is unknown; in "
                if found.accuracy is None
                else f"held-out PCK@0.2 is below {min_accuracy:.0f} %: "
            )
            + "the low-budget regime, where "
            "the benchmark measured that labelling the frames a model gets most wrong does not beat labelling random "
            "ones (oracle-hard at or below random; docs/example-results.md, docs/protocol-search.md), however well its "
            "scores find its errors; typicality (--sampler typiclust) or coverage (--sampler coreset) is the better "
            "choice there"
        )
    if found.chosen_by_advice:
        lines.append(f"sampler: {found.advice.sampler} ({found.advice.regime} regime): {found.advice.reason}")
    return lines


def _picks_table(found: Suggestions, shown: int) -> list[Table]:
    tables = []
    for ranking in found.rankings:
        table = Table(
            title=f"{ranking.label}: first {min(shown, len(ranking.picks))} of {len(ranking.picks)} picks "
            f"(picked by {ranking.picker}; scoring {ranking.timing.wall_s:.1f} s)",
            title_justify="left",
        )
        for col in ("pick", "frame", "score", "why"):
            table.add_column(col, justify="right" if col in ("pick", "score") else "left")
        for n, k in enumerate(ranking.picks[:shown], start=1):
            score = ranking.scores[k]
            table.add_row(str(n), found.candidates[k].key, f"{score:.4g}" if np.isfinite(score) else "—",
                          ranking.reasons[k])  # fmt: skip
        tables.append(table)
    return tables


def _truth_table(found: Suggestions, truth: Path) -> Table:
    from alpose_bench.suggest.truth import agreement

    report = agreement(found, truth)
    table = Table(
        title=f"against the hidden labels of {report.n} candidates (mean error {report.mean_error:.3f} box "
        f"diagonals); chance: ρ of random orders within [{report.chance[0]:+.3f}, {report.chance[1]:+.3f}] (95 %)",
        title_justify="left",
    )
    for col in ("sampler", "Spearman ρ (score vs true error)", "p", "picks' error / mean error"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for row in report.rows:
        table.add_row(
            row.sampler,
            "no scores" if row.spearman is None else f"{row.spearman:+.3f}",
            "" if row.p_value is None else f"{row.p_value:.2g}",
            f"{row.picks_error_ratio:.2f}",
        )
    return table


@click.command("suggest")
@click.argument("project", type=click.Path(path_type=Path))
@click.option(
    "--sampler",
    "samplers",
    default="",
    metavar="NAMES",
    help="Sampler(s) to rank with, comma-separated (default: the one the benchmark measured best in the "
    "model's regime, with the reason printed).",
)
@click.option("--budget", type=int, default=50, show_default=True, help="How many frames to pick.")
@click.option(
    "--spread/--no-spread",
    default=True,
    show_default=True,
    help="Spread a scorer's picks with SCORER+kmeans (no N near-duplicate frames of one video).",
)
@click.option(
    "--model",
    "model",
    default="mobilenet-v2",
    show_default=True,
    metavar="FAMILY|PATH",
    help=f"Pose model: {' or '.join(FAMILY_SETTINGS)} (ImageNet-pretrained backbone / from-scratch), or a "
    "file written by --save-model to warm-start from.",
)
@click.option(
    "--save-model",
    type=click.Path(path_type=Path),
    default=None,
    help="Save the trained model here, to warm-start the next round with --model PATH.",
)
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO: the folder the JSON's file_names are relative to (default: beside the JSON, or images/).",
)
@click.option(
    "--unlabelled", type=click.Path(path_type=Path), default=None, help="A folder of more candidate images."
)
@click.option(
    "--holdout",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of the labelled frames held out to measure the model (0: train on all).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("suggestions"),
    show_default=True,
    help="Folder for the ranked CSVs, contact sheets and picks.",
)
@click.option(
    "--sheet",
    type=click.IntRange(1, 120),
    default=24,
    show_default=True,
    help="Picks shown on each contact sheet.",
)
@click.option(
    "--epochs", type=click.IntRange(1), default=None, help="Training epochs (default: the model's)."
)
@click.option("--resolution", type=int, default=None, help="Model input in px (default: the model's).")
@click.option(
    "--min-accuracy",
    type=float,
    default=COMPETENT_ACCURACY,
    show_default=True,
    help="Held-out PCK@0.2 (%) below which the model's uncertainty is not trusted to rank frames.",
)
@click.option(
    "--truth",
    type=click.Path(path_type=Path),
    default=None,
    help="The candidates' hidden labels (truth.json of `data example-project`): print how well each "
    "sampler's scores follow their true error.",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def suggest(
    project: Path, samplers: str, budget: int, spread: bool, model: str, save_model: Path | None,
    images: Path | None, unlabelled: Path | None, holdout: float, out: Path, sheet: int, epochs: int | None,
    resolution: int | None, min_accuracy: float, truth: Path | None, seed: int, device: str,
) -> None:  # fmt: skip
    """Rank PROJECT's unlabelled frames by how much labelling them should help.

    PROJECT: a COCO keypoint JSON, a SLEAP .slp file or a DeepLabCut project folder (with config.yaml).

    Trains the pose model on the labelled frames, measures it on a held-out part, scores every candidate and
    writes, per sampler, a ranked CSV, a contact sheet of the picks and the picks in the project's own format."""
    started = time.perf_counter()
    console = output_console()
    family, model_file = _model_choice(model)
    names = tuple(n.strip() for n in samplers.split(",") if n.strip())
    options = SuggestOptions(
        samplers=names, family=family, model_file=model_file, budget=budget, spread=spread, holdout=holdout,
        seed=seed, epochs=epochs, resolution=resolution, device=device, min_accuracy=min_accuracy,
    )  # fmt: skip
    read = read_project(project, images=images, unlabelled=unlabelled)
    request = check_request(read, options)  # every one-line error before anything is printed or trained
    found = run_suggest(read, options, say=console.print, request=request)
    if found.skipped:
        key, why = next(iter(found.skipped.items()))
        console.print(
            f"skipped {len(found.skipped)} candidate frame(s) that cannot be read (first: {key}: {why})"
        )
    for line in _summary(found, min_accuracy):
        console.print(line)
    from alpose_bench.suggest.model_file import save_model_file
    from alpose_bench.suggest.outputs import write_outputs

    written = write_outputs(found, out, sheet)
    if save_model is not None:
        save_model_file(save_model, found.spec, read, found.model, found.heads)
        console.print(f"model saved to {save_model} (warm-start the next round with --model {save_model})")
    for table in _picks_table(found, 10):
        console.print(table)
    for sampler, paths in written.items():
        console.print(f"{sampler}: " + ", ".join(str(p) for p in paths))
    if truth is not None:
        console.print(_truth_table(found, truth))
    console.print(f"done in {time.perf_counter() - started:.1f} s (training {found.train_time.wall_s:.1f} s)")
