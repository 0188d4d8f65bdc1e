"""Benchmarks (`make bench`, `python -m bench [--only NAME] [--quick]`).

Each figure runs against real Postgres, real Redis, fakezoom in its own process and real worker
processes, and reports ratios to a baseline measured in the same run. Nothing here asserts a
timing: a benchmark that fails on a slow machine would only teach people to ignore it.
"""
