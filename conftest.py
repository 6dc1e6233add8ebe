"""Test-wide JAX settings for ``tests/``, ``bench/`` and the doctests of ``jbatch/``: strict dtype
promotion (as equinox's tests), float32 throughout, XLA's backend optimisation off unless the
run measures speed, one persistent compilation cache per session, empty at its start (a program
that several tests build compiles once), and the shared data sets."""

import os

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")

# What the tests assert (equivalences, optima, error messages, documents) does not depend on
# how far LLVM optimises the compiled code, and compilation was most of the suite's time: the
# tests compile with XLA's backend optimisation off, as mypyc's and Theano's test suites do
# (the same programs, HLO passes included; LLVM at -O0). A run that measures speed
# (--benchmark-only, --bars, --shakespeare) and a run whose XLA_FLAGS already set the level
# (``XLA_FLAGS=--xla_backend_optimization_level=3``: the tests as users' programs compile)
# keep XLA's default. Set before the first program initialises the backend; the tests'
# subprocesses inherit it.
FAST_COMPILE = "--xla_backend_optimization_level=0"
MEASURES = ("benchmark_only", "bars", "shakespeare")


def pytest_configure(config):
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags or any(config.getoption(o, default=False) for o in MEASURES):
        return
    os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


@pytest.fixture(scope="session")
def digits():
    from jbatch.workloads.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def tiny(digits):
    """The shared tiny data set of the test sweeps: 300 training digits (300 = 9 * 32 + 12: B=32
    ends each epoch with a padded batch) and 100 test digits."""
    from jbatch.workloads.data import Dataset

    return Dataset(
        "tiny",
        digits.x_train[:300],
        digits.y_train[:300],
        digits.x_test[:100],
        digits.y_test[:100],
        task="classification",
        outputs=10,
    )


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Programs identical across tests compile once per session (JAX's persistent cache), and
        once for both processes of a parallel run (pytest-xdist): their cache is one folder of the
        session's temporary directory, which starts empty. The tests' subprocesses (``jbatch`` run
    as a command) use it too, through JAX's environment variables."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "xla-cache"
    cache.mkdir(exist_ok=True)
    settings = {
        "jax_compilation_cache_dir": str(cache),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)  # and the subprocesses the tests start
    # JAX writes an entry in place: a process can read one being written, or one a test killed mid-write;
    # JAX warns and compiles again. Subprocesses say nothing of it (their output is what tests read).
    quiet = "ignore:Error reading persistent compilation cache entry:UserWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    yield
