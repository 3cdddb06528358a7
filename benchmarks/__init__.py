"""Benchmarks of tglc_zoo (not installed): run them from the repository root with ``python -m benchmarks.<name>``.
They print numbers and write CSV/JSON (and PNG plots); the speed and memory goals live here, not in tests."""
