"""Foundation: what every layer uses and that knows nothing of pose or of experiments (atomic files, processes,
seeds, timing, parameter validation, compute settings, statistics, activity records, user-facing errors)."""
