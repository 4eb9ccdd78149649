"""An experiment's results: the store the engine writes (`store`), reading it as DataFrames (`read`; `load` and
friends are importable from here, the public path), and the analysis of paired differences (`analysis`,
`comparisons`)."""

from alpose_bench.results.read import (
    load,
    load_evals,
    load_experiment,
    load_joints,
    load_selection_keypoints,
    load_selections,
)

__all__ = ["load", "load_evals", "load_experiment", "load_joints", "load_selection_keypoints", "load_selections"]
