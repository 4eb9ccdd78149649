"""Tools around experiments: `diagnose` (why a sampler picks what it picks) and `bench` (speed and memory)."""
