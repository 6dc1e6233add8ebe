"""What people use today, set up exactly like jbatch's runs: same MLP, same initial
weights, same data and batch order, SGD with momentum 0.9, float32. Flax NNX both as its
tutorial writes the loop and in the fast form its performance guide recommends; PyTorch
eager and (in the --full grid) under ``torch.compile``.

Each ``make_*`` returns a ``bench.workloads.Runner`` whose ``run()`` trains on
``samples`` examples and returns only when the work is done. Optional packages (keras,
torch) are imported here, on demand: ``pytest.importorskip`` turns their absence into a
skip with a reason.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from bench.runners import mlp_weights
from bench.to_target import reached
from bench.workloads import LEARNING_RATE, MOMENTUM, MLPWorkload, Runner, Weights
from jbatch.core.batching import epoch_order, resolve_batch_size


def _order(wl: MLPWorkload, b: int, samples: int) -> tuple[np.ndarray, int]:
    steps = max(1, samples // b)
    n = wl.num_examples
    order = epoch_order(0, 0, n)
    return np.concatenate([order] * (-(-steps * b // n)))[: steps * b], steps


def torch_mlp(weights: Weights) -> Any:
    """A PyTorch ReLU MLP holding ``weights`` (``(kernel [in, out], bias)`` per layer)."""
    import torch

    mods: list[Any] = []
    for i, (w, c) in enumerate(weights):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(c.copy()))
        mods += [lin] if i == len(weights) - 1 else [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*mods)


def keras_mlp(weights: Weights, optimizer: Any) -> Any:
    """A compiled Keras ReLU MLP (XLA, from logits) holding ``weights``, trained by ``optimizer``."""
    import keras

    layers = [keras.Input((weights[0][0].shape[0],))]
    for w, _ in weights[:-1]:
        layers.append(keras.layers.Dense(w.shape[1], activation="relu"))
    layers.append(keras.layers.Dense(weights[-1][0].shape[1]))
    model = keras.Sequential(layers)
    model.set_weights([a for pair in weights for a in pair])
    model.compile(
        optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True
    )
    return model


def flax_nnx_loop(wl: MLPWorkload, batch_size: Any, samples: int) -> Runner:
    """Flax's NNX tutorial loop (as its MNIST example): an ``nnx.jit`` train step that
    updates the model and ``nnx.Optimizer`` in place, called once per batch."""
    import optax
    from flax import nnx

    runner, model = _nnx_tutorial_loop(wl, batch_size, samples, optax.sgd(LEARNING_RATE, momentum=MOMENTUM))
    return dataclasses.replace(runner, weights=lambda: mlp_weights(nnx.state(model, nnx.Param)))


def nnx_tutorial_step():
    """The training step of Flax's NNX tutorial: ``nnx.jit`` of a stateful update of ``model``
    and ``optimizer`` on a batch of integer labels, returning the mean loss."""
    import optax
    from flax import nnx

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    return train_step


def _nnx_tutorial_loop(wl: Any, batch_size: Any, samples: int, tx: Any) -> tuple[Runner, Any]:
    """The NNX tutorial's loop over ``wl``'s model and batches with ``tx``, and its model."""
    import jax
    from flax import nnx

    b = resolve_batch_size(batch_size, wl.num_examples)
    model = wl.model(0)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    train_step = nnx_tutorial_step()

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

    return Runner(run, steps * b, steps, compile_seconds), model


def flax_nnx_fast(wl: MLPWorkload, batch_size: Any, samples: int) -> Runner:
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


def keras_fit(wl: MLPWorkload, batch_size: Any, samples: int) -> Runner:
    """Keras 3 ``model.fit`` on the JAX backend, one epoch over ``samples`` examples."""
    if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
        import pytest

        pytest.skip(f"KERAS_BACKEND is {os.environ['KERAS_BACKEND']!r}; this peer is Keras on JAX")
    import pytest

    keras = pytest.importorskip("keras", reason="Keras is a peer: pip install -e '.[peers]'")
    b = resolve_batch_size(batch_size, wl.num_examples)
    model = keras_mlp(wl.weights(0), keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM))
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


def torch_eager(wl: MLPWorkload, batch_size: Any, samples: int, compiled: bool = False) -> Runner:
    """A PyTorch eager training loop (CPU), the way its tutorials write one; with
    ``compiled``, its step under ``torch.compile`` (compile time measured on the first call)."""
    import pytest

    torch = pytest.importorskip("torch", reason="PyTorch is a peer: pip install -e '.[peers]'")
    b = resolve_batch_size(batch_size, wl.num_examples)
    model = torch_mlp(wl.weights(0))
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


def torch_compile(wl: MLPWorkload, batch_size: Any, samples: int) -> Runner:
    """The PyTorch loop with its step under ``torch.compile``."""
    return torch_eager(wl, batch_size, samples, compiled=True)


PEERS = {
    "flax-nnx-loop": flax_nnx_loop,
    "flax-nnx-fast": flax_nnx_fast,
    "keras-fit": keras_fit,
    "torch-eager": torch_eager,
    "torch-compile": torch_compile,
}


def language_nnx_loop(wl: Any, batch_size: Any, samples: int) -> Runner:
    """Flax's NNX tutorial loop over the same transformer, batches and Adam."""
    import optax

    return _nnx_tutorial_loop(wl, batch_size, samples, optax.adam(1e-3))[0]


# --- time to target (bench/test_convergence.py): the same schedule, the peers' own loops ---


class _ToTarget:
    """A peer's time to target: ``setup(seed)`` builds the model from jbatch's initial
    weights for ``seed`` and cuts every batch of the case's schedule, in the peer's own
    array type (not timed, as a data loader would, and as the throughput peers do);
    ``run(state, seed)`` trains those batches in order, evaluating test accuracy after
    every mark, until the target (timed)."""

    def __init__(self, case, weights_of, x, y, x_test, y_test):
        from bench.to_target import batches_of

        self.case, self.weights_of = case, weights_of
        self.x, self.y, self.x_test, self.y_test = x, y, x_test, y_test
        self.batches_of = batches_of
        self.compile_seconds = 0.0
        self.cut: dict[int, list] = {}

    def schedule(self, seed):
        """``(real rows, whether an evaluation follows, step)`` for every step."""
        c, marks, tables = self.case, set(self.case.marks), {}
        for t in range(max(c.marks)):
            epoch, s = divmod(t, c.steps_per_epoch)
            if epoch not in tables:
                tables = {epoch: self.batches_of(c, seed, epoch)}
            idx, mask = tables[epoch]
            yield idx[s][mask[s]], (t + 1) in marks, t + 1

    def batches(self, seed, convert):
        """Every step's ``(x, y, evaluate, step)`` for ``seed``, cut once (per seed) with
        ``convert`` into the peer's arrays."""
        if seed not in self.cut:
            self.cut[seed] = [
                (*convert(self.x[rows], self.y[rows]), evaluate, step) for rows, evaluate, step in self.schedule(seed)
            ]
        return self.cut[seed]


class TorchToTarget(_ToTarget):
    def setup(self, seed):
        import torch

        batches = self.batches(seed, lambda x, y: (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))))
        return torch_mlp(self.weights_of(seed)), batches

    def run(self, state, seed):
        import torch

        model, batches = state
        opt = torch.optim.SGD(model.parameters(), lr=self.case.learning_rate)
        xt, yt = self._test
        for xb, yb, evaluate, step in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            if evaluate:
                with torch.no_grad():
                    if reached((model(xt).argmax(1) == yt).float().mean().item(), self.case):
                        return {"reached": True, "steps": step}
        return {"reached": False, "steps": None}

    @property
    def _test(self):
        import torch

        return torch.from_numpy(self.x_test), torch.from_numpy(self.y_test.astype(np.int64))


class NNXToTarget(_ToTarget):
    """Flax NNX's tutorial loop (``nnx.jit`` per step), or with ``fast`` the performance
    guide's split/merge ``jax.jit`` form; a new shape (the partial last batch) compiles."""

    fast = False

    def __init__(self, *args, model_of=None):
        super().__init__(*args)
        import jax
        import optax
        from flax import nnx

        self.model_of = model_of
        tx = optax.sgd(self.case.learning_rate)

        def loss_fn(model, xb, yb):
            return optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()

        @nnx.jit
        def step(model, optimizer, xb, yb):
            grads = nnx.grad(loss_fn)(model, xb, yb)
            optimizer.update(model, grads)

        @nnx.jit
        def accuracy(model, xb, yb):
            return (model(xb).argmax(1) == yb).mean()

        self.tx, self.nnx_step, self.accuracy = tx, step, accuracy
        self.jax, self.nnx = jax, nnx
        self.xt, self.yt = jax.device_put(self.x_test), jax.device_put(self.y_test)

    def setup(self, seed):
        model = self.model_of(seed)
        put = self.jax.device_put
        return (
            model,
            self.nnx.Optimizer(model, self.tx, wrt=self.nnx.Param),
            self.batches(seed, lambda x, y: (put(x), put(y))),
        )

    def run(self, state, seed):
        model, optimizer, batches = state
        if self.fast:
            return self._run_fast(model, optimizer, batches)
        for xb, yb, evaluate, step in batches:
            self.nnx_step(model, optimizer, xb, yb)
            if evaluate and reached(self.accuracy(model, self.xt, self.yt), self.case):
                return {"reached": True, "steps": step}
        return {"reached": False, "steps": None}

    def _run_fast(self, model, optimizer, batches):
        nnx, jax = self.nnx, self.jax
        graphdef, state = nnx.split((model, optimizer))
        if not hasattr(self, "_fast_step"):
            import optax

            def one(state, xb, yb):
                model, optimizer = nnx.merge(graphdef, state)
                grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(xb), yb).mean())(model)
                optimizer.update(model, grads)
                return nnx.state((model, optimizer))

            def acc(state, xb, yb):
                model, _ = nnx.merge(graphdef, state)
                return (model(xb).argmax(1) == yb).mean()

            self._fast_step, self._fast_acc = jax.jit(one, donate_argnums=(0,)), jax.jit(acc)
        for xb, yb, evaluate, step in batches:
            state = self._fast_step(state, xb, yb)
            if evaluate and reached(self._fast_acc(state, self.xt, self.yt), self.case):
                return {"reached": True, "steps": step}
        return {"reached": False, "steps": None}


class NNXFastToTarget(NNXToTarget):
    fast = True


class KerasToTarget(_ToTarget):
    """Keras 3 ``fit`` (JAX backend) one epoch at a time in the case's order, with a
    callback that evaluates at the marks and stops training at the target."""

    def setup(self, seed):
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras

        model = keras_mlp(self.weights_of(seed), keras.optimizers.SGD(self.case.learning_rate))
        c = self.case
        if seed not in self.cut:  # each epoch's examples in the case's order, cut once
            self.cut[seed] = [
                (self.x[o], self.y[o])
                for o in (epoch_order(seed, e, c.num_train) for e in range(-(-max(c.marks) // c.steps_per_epoch)))
            ]
        return model, self.cut[seed]

    def run(self, state, seed):
        import keras

        model, epochs = state
        c, marks, out = self.case, set(self.case.marks), {"reached": False, "steps": None}
        x_test, y_test = self.x_test, self.y_test

        class Stop(keras.callbacks.Callback):
            def __init__(self, start):
                super().__init__()
                self.step = start

            def on_train_batch_end(self, batch, logs=None):
                self.step += 1
                if self.step in marks:
                    pred = np.asarray(self.model(x_test, training=False)).argmax(1)
                    if reached((pred == y_test).mean(), c):
                        out.update(reached=True, steps=self.step)
                        self.model.stop_training = True

        done = 0
        for x, y in epochs:
            cb = Stop(done)
            model.fit(x, y, batch_size=c.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
            done = cb.step
            if out["reached"]:
                break
        return out


TO_TARGET = {
    "flax-nnx-loop": NNXToTarget,
    "flax-nnx-fast": NNXFastToTarget,
    "keras-fit": KerasToTarget,
    "torch-eager": TorchToTarget,
}
