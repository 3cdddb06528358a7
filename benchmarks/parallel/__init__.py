"""Group parallelism: measured per-rank numbers and the cost-model projection (``python -m benchmarks.parallel``)."""
