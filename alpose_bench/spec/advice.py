"""Which sampler to use, by regime: what the benchmark measured, in one place (`alpose-bench suggest` reads it).

The regime is read from the model's held-out accuracy: below `COMPETENT_ACCURACY` the model is in the low-budget
regime, where its uncertainty does not find its errors and coverage of the data pays; above it, error-seeking pays.
The threshold is a working line drawn between the benchmark's measured regimes (quick preset: 24-31 % PCKh, no
headroom for error-seeking; cpu preset deployment split: error-seeking significantly above random), not a
boundary measured on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

#: held-out PCK (%) from which a model's uncertainty is trusted to rank frames
COMPETENT_ACCURACY = 50.0


@dataclass(frozen=True)
class Advice:
    """The sampler to use in a regime, and the measurement that says so."""

    sampler: str
    regime: str
    reason: str


LOW_BUDGET = Advice(
    "typiclust",
    "low-budget",
    "with a weak model (the low-budget regime) TypiClust's typicality ranked first and the uncertainty samplers last "
    "in the benchmark's default experiment (Nemenyi p = 0.031 over MPE; docs/example-results.md), and no sampler "
    "beat random on LSPET photographs with the pretrained model at 400-1,200 labels (docs/protocol-search.md)",
)
ERROR_SEEKING = Advice(
    "learning-loss",
    "error-seeking",
    "with a competent model error-seeking pays, and Learning Loss was the sampler significantly above random on the "
    "deployment split of the cpu preset (+1.42 AUBC points, Holm p = 0.019; docs/example-results.md)",
)


def advise(accuracy: float | None, competent: float = COMPETENT_ACCURACY) -> Advice:
    """The advice for a model of held-out `accuracy` (%; None when it was not measured: the low-budget advice,
    the safe side), trusting uncertainty from `competent` % on."""
    if accuracy is None or not accuracy >= competent:
        return LOW_BUDGET
    return ERROR_SEEKING
