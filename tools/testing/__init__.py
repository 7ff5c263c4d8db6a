"""Harness shared by the tests and the benchmarks (importable; not a benchmark, not a product)."""
