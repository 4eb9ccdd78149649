"""Built-in datasets (installed as ``alpose_bench.datasets``); registered through entry points."""
