"""`alpose-bench compare A B`: two experiments run with the same samplers and seeds (the pool protocol against
the stream protocol, one model against another), paired by seed."""

from __future__ import annotations

from pathlib import Path

import click

from alpose_bench.commands.console import output_console
from alpose_bench.commands.options import open_results
from alpose_bench.errors import UserError


@click.command("compare")
@click.argument("a", type=click.Path(path_type=Path), metavar="RESULTS_A")
@click.argument("b", type=click.Path(path_type=Path), metavar="RESULTS_B")
@click.option("--split", default="test", show_default=True,
              help="Held-out split to compare on (test, or ood: the deployment distribution).")  # fmt: skip
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table to this CSV file.")  # fmt: skip
def compare(a: Path, b: Path, split: str, csv_path: Path | None) -> None:
    """AUBC of every sampler in A and in B, B − A paired by seed (95 % interval, p), and each one's gain over
    random with its Holm-corrected verdict in A and in B: does an advantage survive the change?"""
    from rich.table import Table

    from alpose_bench.core.atomic import write_atomic
    from alpose_bench.results.analysis import ResultsError
    from alpose_bench.results.comparisons import experiment_difference

    sets = [open_results(path, None, None) for path in (a, b)]
    try:
        frames = [rs.split_cycles(split) for rs in sets]
    except ResultsError as exc:
        raise UserError(str(exc)) from None
    table = experiment_difference(*frames)
    if table.empty:
        raise UserError(
            f"{a} and {b} share no (dataset, sampler, seed) with a complete curve; compare experiments run with "
            "the same datasets, samplers and seeds"
        )
    out = Table(title=f"B − A on the {split} split, paired by seed (A: {sets[0].name}, B: {sets[1].name})")
    for column in ("dataset", "sampler", "seeds", "AUBC A", "AUBC B", "B − A [95 % CI]", "p", "gain over random A",
                   "gain over random B"):  # fmt: skip
        out.add_column(column, justify="left" if column in ("dataset", "sampler") else "right")

    def gain(value: float, significant: bool) -> str:
        return "—" if value != value else f"{value:+.2f}{' *' if significant else ''}"

    for r in table.itertuples():
        out.add_row(
            r.dataset, r.sampler, str(r.n_seeds), f"{r.aubc_a:.2f}", f"{r.aubc_b:.2f}",
            f"{r.b_minus_a:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]", "—" if r.p != r.p else f"{r.p:.3f}",
            gain(r.gain_a, r.significant_a), gain(r.gain_b, r.significant_b),
        )  # fmt: skip
    console = output_console()
    console.print(out)
    console.print("Positive = B better (lower error for MPJPE). * : significant over random after Holm's correction.")
    if csv_path is not None:
        write_atomic(csv_path, table.to_csv(index=False).encode())
        console.print(f"wrote {csv_path}")
