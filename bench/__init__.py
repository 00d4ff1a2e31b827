"""Benchmarks (not tests): run them by hand, e.g. `python -m bench.fleet`; see bench/README.md."""
