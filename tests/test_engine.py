"""One scan of training steps and one compile path (``jbatch.core.epoch.make_steps``,
``jbatch.core.engine``): a whole epoch, a part of one and a sweep's checked chunk are the same
steps; ``jax.jit`` has one home; and a sweep, its timing, ``jbatch advise``, its branches and
the warm-up check build every program through one cache with one set of compiler options."""

import ast
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jbatch.core import engine
from jbatch.core.batching import epoch_batches, epoch_order
from jbatch.core.epoch import make_chunk, make_epoch, make_partial_epoch
from jbatch.core.guard import init_guard
from jbatch.core.step import init_train_state, make_train_step
from jbatch.workloads.model import make_model
from tests.helpers import assert_trees_close, session, tiny_config

PACKAGE = Path(__file__).resolve().parent.parent / "jbatch"


def test_jax_jit_is_called_in_one_module_of_the_package():
    homes = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "jit" and getattr(node.value, "id", None) == "jax":
                homes.add(path.relative_to(PACKAGE).as_posix())
    assert homes == {"core/engine.py"}


def _program_lines(compiled) -> list[str]:
    """A compiled program's instructions, without source locations, numbering or order."""
    text = compiled.as_text()
    text = re.sub(r", metadata=\{[^}]*\}", "", text[text.index("\n%") :])  # the source tables apart
    return sorted(line.strip() for line in re.sub(r"\.\d+\b", "", text).splitlines() if line.strip())


def test_tracing_the_step_once_compiles_the_same_program(tiny, monkeypatch):
    import jbatch.core.epoch
    import jbatch.core.guard

    data = (jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train))
    state = init_train_state(make_model("mlp", 64, 10, widths=(16,)), optax.sgd(0.1))
    step = make_train_step(optax.softmax_cross_entropy_with_integer_labels)
    order = jnp.asarray(epoch_order(0, 0, 300))

    def programs():  # an epoch with a padded last batch, and a sweep's checked chunk
        carry = (state, init_guard())
        idx, mask = epoch_batches(order, 32, "keep")
        return [
            engine.compile_program(make_epoch(step, 300, 32), state, data, order).fn,
            engine.compile_program(make_chunk(step, whole=False), carry, data, idx, mask, jnp.ones(10, bool)).fn,
        ]

    once = programs()
    for module in (jbatch.core.epoch, jbatch.core.guard):
        monkeypatch.setattr(module, "traced_once", lambda fn: fn)
    again = programs()
    assert _program_lines(once[0]) == _program_lines(again[0])  # the epoch: instruction for instruction
    # the chunk: the same operations (XLA orders the operands of the guard's branch differently)
    operations = lambda p: sorted(re.findall(r"= (\S+) ([\w-]+)\(", "\n".join(_program_lines(p))))  # noqa: E731
    assert len(operations(once[1])) > 100 and operations(once[1]) == operations(again[1])


def test_an_epoch_its_parts_and_a_checked_chunk_are_the_same_steps(tiny):
    n, b = 300, 32  # 10 batches an epoch, the last of 12 rows: padded and masked
    data = (jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train))
    state = init_train_state(
        make_model("mlp", 64, 10, widths=(16,)), optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
    )
    step = make_train_step(optax.softmax_cross_entropy_with_integer_labels)
    order = jnp.asarray(epoch_order(0, 0, n))
    whole, m_whole = make_epoch(step, n, b)(state, data, order)
    part = make_partial_epoch(step, n, b)
    first, m_first = part(state, data, order, jnp.int32(4), jnp.int32(0))  # batches 0-3
    rest, m_rest = part(first, data, order, jnp.int32(10), jnp.int32(4))  # then 4-9
    assert_trees_close(rest.params, whole.params)
    np.testing.assert_allclose(
        np.concatenate([np.asarray(m_first["loss"])[:4], np.asarray(m_rest["loss"])[4:]]),
        np.asarray(m_whole["loss"]),
        rtol=1e-6,
    )
    assert np.isnan(np.asarray(m_first["loss"])[4:]).all() and int(first.step) == 4  # skipped: not run at all
    idx, mask = epoch_batches(epoch_order(0, 0, n), b)
    (chunked, guard), out = make_chunk(step, whole=False)((state, init_guard()), data, idx, mask, np.ones(10, bool))
    assert_trees_close(chunked.params, whole.params)
    assert not bool(guard.diverged) and float(out["examples"]) == n and int(out["updates"]) == 10


@pytest.mark.slow
def test_advise_and_the_sweep_share_one_compile_path_and_cache(tiny, tmp_path, monkeypatch):
    from jbatch.sweeps.advise import advise
    from jbatch.sweeps.driver import run_sweep

    compiled = []
    real = engine.compile_program

    def recording(fn, *args, compiler_options=None, **kw):
        compiled.append(engine.default_compiler_options() if compiler_options is None else compiler_options)
        return real(fn, *args, compiler_options=compiler_options, **kw)

    monkeypatch.setattr(engine, "compile_program", recording)
    cfg = tiny_config(batch_sizes=(32, "full"), learning_rates=(0.3,), seeds=(0,))
    shared = session(cfg, tiny)
    run_sweep(cfg, tmp_path, workload=shared.workload, session=shared)
    swept = len(shared.programs.log)
    hits = shared.programs.hits
    doc = advise(
        cfg,
        shared.workload,
        trunk_batch=32,
        trunk_steps=10,
        checkpoints=2,
        multipliers=(1, 4),
        examples=128,
        timing_rounds=2,
        against=tmp_path / "t",
        session=shared,
    )
    from jbatch.results import read_sweep, records
    from jbatch.sweeps.warmup_check import check_warmup

    n = shared.workload.data.num_train  # a two-size warm-up checked through the same session
    check = check_warmup(
        shared,
        read_sweep(tmp_path / "t"),
        [records.Phase(batch_size=32, steps=3), records.Phase(batch_size=n, steps=0)],
    )
    advised = {key[0] for key, _ in shared.programs.log[swept:]}
    assert {"partial-epoch", "moments"} <= advised  # the trunk, branches and warm-up check through the one cache
    assert shared.programs.hits > hits  # programs the sweep had built (its timing epochs, its evaluation) reused
    assert compiled and all(options == engine.default_compiler_options() for options in compiled)
    assert len(compiled) == len(shared.programs.log) + 3  # the pre-check's own three, with the same options
    assert doc.recommended in (32, n) and len(check.seeds) == 1 and jax.default_backend() == "cpu"
