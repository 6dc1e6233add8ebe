"""The pytest-benchmark suite: pytest bench --benchmark-only."""
