"""What people use today, set up exactly like jbatch's runs: same MLP, same initial
weights, same data and batch order, SGD with momentum 0.9, float32. Flax NNX both as its
tutorial writes the loop and in the fast form its performance guide recommends; PyTorch
eager and (in the --full grid) under ``torch.compile``.

Each ``make_*`` returns a ``jbatch.benchmark.Runner`` whose ``run()`` trains on
``samples`` examples and returns only when the work is done. Optional packages (keras,
torch) are imported here, on demand: ``pytest.importorskip`` turns their absence into a
skip with a reason.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from jbatch.batching import epoch_order, resolve_batch_size
from jbatch.benchmark import LEARNING_RATE, MOMENTUM, Runner, Workload, mlp_weights


def _order(wl: Workload, b: int, samples: int) -> tuple[np.ndarray, int]:
    steps = max(1, samples // b)
    n = wl.num_examples
    order = epoch_order(0, 0, n)
    return np.concatenate([order] * (-(-steps * b // n)))[: steps * b], steps


def flax_nnx_loop(wl: Workload, batch_size: Any, samples: int) -> Runner:
    """Flax's NNX tutorial loop (as its MNIST example): an ``nnx.jit`` train step that
    updates the model and ``nnx.Optimizer`` in place, called once per batch."""
    import jax
    import optax
    from flax import nnx

    b = resolve_batch_size(batch_size, wl.num_examples)
    model = wl.model(0)
    optimizer = nnx.Optimizer(model, optax.sgd(LEARNING_RATE, momentum=MOMENTUM), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    order, steps = _order(wl, b, samples)
    x, y = jax.device_put(wl.x[order]), jax.device_put(wl.y[order])
    batches = [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(steps)]
    start = time.perf_counter()
    # compiles on a clone (same graph: the real model hits nnx.jit's cache), so the measured
    # model still starts from the shared initial weights
    jax.block_until_ready(train_step(*nnx.clone((model, optimizer)), *batches[0]))
    compile_seconds = time.perf_counter() - start

    def run() -> Any:
        for xb, yb in batches:
            loss = train_step(model, optimizer, xb, yb)
        return jax.block_until_ready(loss)

    return Runner(run, steps * b, steps, compile_seconds, lambda: mlp_weights(nnx.state(model, nnx.Param)))


def flax_nnx_fast(wl: Workload, batch_size: Any, samples: int) -> Runner:
    """Flax NNX as its performance guide recommends for small models: split the model and
    ``nnx.Optimizer`` once, ``jax.jit`` a pure step that merges them, updates and splits
    again (no graph traversal in Python per call), with the state donated."""
    import functools

    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    b = resolve_batch_size(batch_size, wl.num_examples)
    model = wl.model(0)
    optimizer = nnx.Optimizer(model, optax.sgd(LEARNING_RATE, momentum=MOMENTUM), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))

    @functools.partial(jax.jit, donate_argnums=(0,))
    def train_step(state, x, y):
        model, optimizer = nnx.merge(graphdef, state)

        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    order, steps = _order(wl, b, samples)
    x, y = jax.device_put(wl.x[order]), jax.device_put(wl.y[order])
    batches = [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(steps)]
    box = {"state": state}
    start = time.perf_counter()
    _, loss = train_step(jax.tree.map(jnp.copy, state), *batches[0])  # compiles, on a copy of the state
    jax.block_until_ready(loss)
    compile_seconds = time.perf_counter() - start

    def run() -> Any:
        s = box["state"]
        for xb, yb in batches:
            s, loss = train_step(s, xb, yb)
        box["state"] = s
        return jax.block_until_ready(loss)

    def weights():
        model, _ = nnx.merge(graphdef, box["state"])
        return mlp_weights(nnx.state(model, nnx.Param))

    return Runner(run, steps * b, steps, compile_seconds, weights)


def keras_fit(wl: Workload, batch_size: Any, samples: int) -> Runner:
    """Keras 3 ``model.fit`` on the JAX backend, one epoch over ``samples`` examples."""
    if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
        import pytest

        pytest.skip(f"KERAS_BACKEND is {os.environ['KERAS_BACKEND']!r}; this peer is Keras on JAX")
    import pytest

    keras = pytest.importorskip("keras", reason="Keras is a peer: pip install -e '.[peers]'")
    b = resolve_batch_size(batch_size, wl.num_examples)
    layers = [keras.Input((wl.sizes[0],))]
    for width in wl.sizes[1:-1]:
        layers.append(keras.layers.Dense(width, activation="relu"))
    layers.append(keras.layers.Dense(wl.sizes[-1]))
    model = keras.Sequential(layers)
    model.set_weights([a for pair in wl.weights(0) for a in pair])
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    order, steps = _order(wl, b, samples)
    x, y = wl.x[order], wl.y[order]
    start = time.perf_counter()
    model.fit(x[:b], y[:b], batch_size=b, epochs=1, shuffle=False, verbose=0)  # compiles (one step)
    compile_seconds = time.perf_counter() - start
    model.set_weights([a for pair in wl.weights(0) for a in pair])  # and that step is undone
    for v in model.optimizer.variables:
        if v.path.endswith("momentum") or v.path.endswith("iteration"):
            v.assign(np.zeros(v.shape, v.dtype))

    def run() -> Any:
        # fit returns after its last step has finished: Keras syncs to read the loss.
        return model.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0)

    def weights():
        w = model.get_weights()
        return [(np.asarray(w[i]), np.asarray(w[i + 1])) for i in range(0, len(w), 2)]

    return Runner(run, steps * b, steps, compile_seconds, weights)


def torch_eager(wl: Workload, batch_size: Any, samples: int, compiled: bool = False) -> Runner:
    """A PyTorch eager training loop (CPU), the way its tutorials write one; with
    ``compiled``, its step under ``torch.compile`` (compile time measured on the first call)."""
    import pytest

    torch = pytest.importorskip("torch", reason="PyTorch is a peer: pip install -e '.[peers]'")
    b = resolve_batch_size(batch_size, wl.num_examples)
    mods: list[Any] = []
    for i, (w, c) in enumerate(wl.weights(0)):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(c.copy()))
        mods += [lin] if i == len(wl.sizes) - 2 else [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    order, steps = _order(wl, b, samples)
    x, y = torch.from_numpy(wl.x[order]), torch.from_numpy(wl.y[order].astype(np.int64))
    batches = [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(steps)]

    def step(xb, yb):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    compile_seconds = 0.0
    if compiled:
        step = torch.compile(step)
        snapshot = [p.detach().clone() for p in model.parameters()]
        start = time.perf_counter()
        step(*batches[0]).item()  # compiles; then the weights and momentum are put back
        compile_seconds = time.perf_counter() - start
        with torch.no_grad():
            for p, v in zip(model.parameters(), snapshot, strict=True):
                p.copy_(v)
        opt.state.clear()

    def run() -> Any:
        for xb, yb in batches:
            loss = step(xb, yb)
        return loss.item()  # CPU: the work is done when step() returns

    def weights():
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        return [(lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for lin in lins]

    return Runner(run, steps * b, steps, compile_seconds, weights)


def torch_compile(wl: Workload, batch_size: Any, samples: int) -> Runner:
    """The PyTorch loop with its step under ``torch.compile``."""
    return torch_eager(wl, batch_size, samples, compiled=True)


PEERS = {"flax-nnx-loop": flax_nnx_loop, "flax-nnx-fast": flax_nnx_fast, "keras-fit": keras_fit,
         "torch-eager": torch_eager, "torch-compile": torch_compile}  # fmt: skip
