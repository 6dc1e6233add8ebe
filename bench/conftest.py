"""pytest-benchmark set-up: the --full grid, the session's matmul peak, machine metadata,
skipping every benchmark unless --benchmark-only is given (the test run stays fast), and
the Shakespeare cases only with --shakespeare (they fetch the text and take ~26 minutes)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import msgspec
import pytest

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="jbatch benchmarks: every batch size of both workloads, 7 rounds each",
    )
    parser.addoption(
        "--bars",
        action="store_true",
        default=False,
        help="run bench/test_bars.py: interleaved rounds, fail when a performance bar is missed",
    )
    parser.addoption("--bars-json", default=None, help="with --bars: also write the rounds and verdicts here")
    parser.addoption(
        "--shakespeare",
        action="store_true",
        default=False,
        help="run bench/test_shakespeare.py: nanoGPT's CPU setting (fetches the text; ~26 min here)",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--shakespeare"):
        text = pytest.mark.skip(reason="nanoGPT's setting on Shakespeare: run with --shakespeare")
        for item in items:
            if item.path == HERE / "test_shakespeare.py":  # this hook sees every item, tests/ too
                item.add_marker(text)
    if config.getoption("benchmark_only", default=False):
        return
    skip = pytest.mark.skip(reason="throughput benchmark: run with pytest bench --benchmark-only")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


def pytest_benchmark_update_machine_info(config, machine_info):
    from jbatch.sweeps.metadata import environment_metadata

    peers = {}
    for name in ("keras", "torch"):
        try:
            peers[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            peers[name] = None
    meta = msgspec.structs.replace(environment_metadata(), peer_versions=peers)
    machine_info["jbatch"] = msgspec.to_builtins(meta)  # pytest-benchmark writes plain JSON


@pytest.fixture(scope="session")
def full(request) -> bool:
    return request.config.getoption("--full")


@pytest.fixture(scope="session")
def matmul_peak() -> dict:
    """The float32 matmul peak jax reaches in this session (measured once, at the start;
    each benchmark re-measures briefly so the report can use the session's best)."""
    from bench.workloads import matmul_peak_gflops

    return {"gflops": matmul_peak_gflops(repeats=20)}


@pytest.fixture(scope="session")
def workloads() -> dict:
    from bench.workloads import make_workload

    return {name: make_workload(name) for name in ("digits", "wide")}
