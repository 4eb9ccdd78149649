"""alpose-bench: a benchmark suite for active-learning samplers in pose estimation."""

__version__ = "0.1.0"
