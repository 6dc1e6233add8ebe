"""Test helpers: PyTree comparison at float32 tolerances, and running the CLI in-process."""

import jax

from jbatch.config import SweepConfig

# Float32 tolerances, as optax's transform tests use.
RTOL, ATOL = 1e-5, 1e-6


def assert_trees_close(a, b, rtol=RTOL, atol=ATOL):
    import numpy as np

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert len(la) == len(lb) and la
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# The shared tiny sweep (on conftest's ``tiny`` data set): one width, two seeds, a probe
# unrolled once, no grid extension. Test files override only what they test, so the programs
# of their sweeps repeat across files and the session's compilation cache serves them.
TINY = SweepConfig.of(
    name="t",
    dataset="tiny",
    widths=(16,),
    batch_sizes=(32, "full"),
    learning_rates=(0.03, 0.3),
    seeds=(0, 1),
    target_value=0.7,
    budget_steps=30,
    budget_epochs=1,
    evals=10,
    noise_checkpoints=0,
    noise_unroll=1,
    extend_grid=0,
)


def tiny_config(**kw) -> SweepConfig:
    """``TINY`` with the settings ``kw`` (by key) replaced."""
    return TINY.replace(**kw)


def run_cli(argv, capsys):
    """``jbatch ARGV`` in this process: (exit code, stdout, stderr); argparse exits count."""
    from jbatch.cli import main

    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def sweep(config, results_dir, dataset, **kw):
    """``driver.run_sweep`` of ``config`` on ``dataset`` (its workload resolved as the CLI does)."""
    from jbatch.sweeps.driver import run_sweep
    from jbatch.workloads.workload import for_config

    return run_sweep(config, results_dir, workload=for_config(config, dataset), **kw)


def session(config, dataset, programs=None):
    """A ``Session`` of ``config`` on ``dataset``."""
    from jbatch.sweeps.session import Session
    from jbatch.workloads.workload import for_config

    return Session.open(config, for_config(config, dataset), programs)


def run_size(config, dataset, batch_size, **kw):
    """``batch.run_batch_size`` of ``config`` on ``dataset``."""
    from jbatch.sweeps.batch import run_batch_size

    return run_batch_size(session(config, dataset), batch_size, **kw)
