"""One task (one dataset, sampler and seed): objects built from the spec (`build`), training (`train`), the
active-learning loop (`loop`) and its warm-start checkpoints."""
