"""The nanoGPT peer (``bench/nanogpt.py``) trains the same model as jbatch: same parameter
count, same initial loss, and the same losses after a few AdamW steps of the cosine schedule
over the same batches (synthetic text: no network)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is a peer: pip install -e '.[peers]'")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from bench.nanogpt import BETAS, FINAL, LEARNING_RATE, WARMUP, WEIGHT_DECAY, NanoGPTLoop, TextWorkload, lr_factor  # noqa: E402
from jbatch.core.epoch import make_evaluate  # noqa: E402
from jbatch.core.loss import softmax_cross_entropy  # noqa: E402
from jbatch.core.optim import adamw, schedule_factor, with_schedule  # noqa: E402
from jbatch.core.step import Batch, init_train_state, make_eval_step, make_train_step  # noqa: E402


@pytest.fixture(scope="module")
def text():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, size=4000).astype(np.int32)  # 11 symbols; some structure: repeat runs
    ids[1::3] = ids[::3][: ids[1::3].size]
    starts = np.arange(0, 3000, 16)
    x = np.stack([ids[s : s + 16] for s in starts])
    y = np.stack([ids[s + 1 : s + 17] for s in starts])
    return TextWorkload("synthetic", x[:160], y[:160], 11, (32, 2, 2), x[160:], y[160:])


@pytest.fixture
def standard_promotion():
    """As users run: optax's Adam raises a Python-float beta to an int32 count, which the
    suite's strict promotion refuses (the sweep injects its hyperparameters as arrays)."""
    with jax.numpy_dtype_promotion("standard"):
        yield


def jbatch_loss(state, wl):
    evaluate = jax.jit(make_evaluate(make_eval_step(softmax_cross_entropy, True)))
    return float(evaluate(state, (jnp.asarray(wl.x_val), jnp.asarray(wl.y_val)))["loss"])


def test_same_model_same_parameters_and_initial_loss(text):
    loop = NanoGPTLoop(text, batch_size=8, steps=1)
    jb = text.model(0)
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(jb, nnx.Param)))
    assert sum(p.numel() for p in loop.model.parameters()) == count
    state = init_train_state(jb, adamw(LEARNING_RATE))
    assert loop.val_loss() == pytest.approx(jbatch_loss(state, text), rel=1e-5)
    assert loop.val_loss() > 2.0  # near ln(11) = 2.40 at initialisation: a real loss, not a zero


def test_schedule_is_jbatchs():
    for t in (0, 3, 5, 50, 99, 100, 150):
        assert lr_factor(t, 100) == pytest.approx(
            float(schedule_factor(jnp.asarray(t), jnp.asarray(100.0), "cosine", WARMUP, FINAL)), abs=1e-6
        )


@pytest.mark.usefixtures("standard_promotion")
def test_same_losses_after_adamw_steps(text):
    steps, b = 12, 8
    loop = NanoGPTLoop(text, batch_size=b, steps=steps)
    tx = with_schedule(adamw, "cosine", WARMUP, FINAL)(
        LEARNING_RATE, b2=BETAS[1], weight_decay=WEIGHT_DECAY, budget=steps
    )
    state = init_train_state(text.model(0), tx)
    step = jax.jit(make_train_step(softmax_cross_entropy))
    ours, theirs = [], []
    for xb, yb in loop.batches:
        state, m = step(state, Batch(jnp.asarray(xb.numpy(), jnp.int32), jnp.asarray(yb.numpy(), jnp.int32)))
        ours.append(float(m["loss"]))
        theirs.append(loop.step(xb, yb).item())
    np.testing.assert_allclose(theirs, ours, rtol=2e-4)
    start, end = loop.val_loss(), jbatch_loss(state, text)
    assert end == pytest.approx(start, rel=2e-4)
    assert ours[-1] < ours[0] - 0.05  # the steps trained: the comparison is of a moving model


@pytest.mark.usefixtures("standard_promotion")
def test_time_to_target_loops_train_one_model(text):
    """The bench's three time-to-target loops (jbatch's chunks, Flax NNX's per-batch jit,
    nanoGPT's PyTorch loop) record the same validation curve and stop at the same step."""
    from bench.nanogpt import TO_TARGET, TextCase

    free = TextCase(batch_size=8, budget=20, every=5, target=0.0)  # never reached: the whole curve
    curves = {}
    for name, cls in TO_TARGET.items():
        runner = cls(text, free)
        curves[name] = runner.run(runner.setup())
        assert curves[name]["steps"] is None and len(curves[name]["curve"]) == 4
    for name in ("flax-nnx-loop", "torch-nanogpt"):
        np.testing.assert_allclose(curves[name]["curve"], curves["jbatch"]["curve"], rtol=2e-4)
    target = TextCase(batch_size=8, budget=20, every=5, target=curves["jbatch"]["curve"][1] + 1e-3)
    for name, cls in TO_TARGET.items():
        runner = cls(text, target)
        assert runner.run(runner.setup())["steps"] == 10, name
