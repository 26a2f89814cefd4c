"""Benchmark harness for squall (see bench/README.md)."""
