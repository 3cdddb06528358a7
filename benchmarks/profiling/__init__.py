"""Benchmarks of the conv types: layer grid, whole models, FLOP ratios, reports (used by python -m benchmarks.bench)."""
