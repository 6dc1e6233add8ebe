"""The nanoGPT peer on Shakespeare: jbatch's transformer in PyTorch, trained the way nanoGPT's
``train.py`` writes its loop (eager, AdamW, warm-up and cosine decay set into the optimizer's
param groups every iteration), next to jbatch and Flax's NNX tutorial loop.

``GPT`` mirrors ``jbatch.workloads.transformer.Transformer`` layer for layer (pre-LayerNorm
blocks of causal self-attention and a ReLU MLP, learned positions, biases, LayerNorm epsilon
1e-6) and is built from a jbatch model's weights, so that all three start from the same
numbers; ``tests/test_nanogpt.py`` checks the parameter count, the initial loss and a few
steps against jbatch's. Differences from nanoGPT's own model, kept so that the models are one
model: ReLU for GELU, biases, no weight tying, no dropout (its CPU setting has none), no
gradient clipping (jbatch's AdamW has none), weight decay on every parameter (as optax's
``adamw``; nanoGPT decays only matrices).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import numpy as np

from bench.runners import LanguageWorkload
from bench.workloads import Runner
from jbatch.core.batching import epoch_order

# nanoGPT's shakespeare_char optimizer (its config and train.py defaults), as the preset has it
LEARNING_RATE, BETAS, WEIGHT_DECAY, WARMUP, FINAL = 1e-3, (0.9, 0.99), 0.1, 0.05, 0.1


@dataclasses.dataclass(frozen=True)
class TextWorkload(LanguageWorkload):
    """Windows of a character data set and the transformer's size (``LanguageWorkload``), with
    the validation windows: what each method trains and evaluates."""

    x_val: np.ndarray
    y_val: np.ndarray


def text_workload(
    dataset: str = "shakespeare-char:64:24000", model: str = "nanogpt-cpu", rows: int | None = None
) -> TextWorkload:
    """``dataset`` (fetched once, ``jbatch.workloads.shakespeare``) with ``model``'s size; the
    first ``rows`` training windows when given."""
    from jbatch.workloads.catalog import load_dataset
    from jbatch.workloads.workload import TRANSFORMERS

    ds = load_dataset(dataset)
    n = rows or ds.num_train
    return TextWorkload(dataset, ds.x_train[:n], ds.y_train[:n], ds.outputs, TRANSFORMERS[model], ds.x_test, ds.y_test)


def lr_factor(t: int, budget: int) -> float:
    """``jbatch.core.optim.schedule_factor`` for cosine decay, in Python: the learning-rate
    multiplier of update ``t`` (0-based) of a ``budget``-step run."""
    w = max(WARMUP * budget, 1.0)
    ramp = min(t / w, 1.0)
    progress = min(max((t - WARMUP * budget) / max(budget - WARMUP * budget, 1.0), 0.0), 1.0)
    return ramp * (FINAL + (1 - FINAL) * 0.5 * (1 + math.cos(math.pi * progress)))


def gpt(model: Any) -> Any:
    """A PyTorch ``GPT`` with the weights of jbatch's ``Transformer`` ``model``."""
    import torch
    from flax import nnx
    from torch import nn
    from torch.nn import functional as F

    class CausalSelfAttention(nn.Module):
        def __init__(self, width: int, heads: int):
            super().__init__()
            self.heads = heads
            self.c_attn = nn.Linear(width, 3 * width)
            self.c_proj = nn.Linear(width, width)

        def forward(self, x):
            b, t, c = x.size()
            q, k, v = self.c_attn(x).split(c, dim=2)
            q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(nn.Module):
        def __init__(self, width: int, heads: int):
            super().__init__()
            self.ln_1 = nn.LayerNorm(width, eps=1e-6)
            self.attn = CausalSelfAttention(width, heads)
            self.ln_2 = nn.LayerNorm(width, eps=1e-6)
            self.c_fc = nn.Linear(width, 4 * width)
            self.c_proj = nn.Linear(4 * width, width)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(F.relu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self, vocab: int, context: int, width: int, depth: int, heads: int):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(context, width)
            self.h = nn.ModuleList([Block(width, heads) for _ in range(depth)])
            self.ln_f = nn.LayerNorm(width, eps=1e-6)
            self.lm_head = nn.Linear(width, vocab)

        def forward(self, idx, targets=None):
            pos = torch.arange(idx.size(1), device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
            return logits, loss

    p = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    vocab, width = p["tokens"]["embedding"].shape
    heads = int(p["blocks"][0]["attn"]["query"]["kernel"].shape[1])
    net = GPT(vocab, p["positions"]["embedding"].shape[0], width, len(p["blocks"]), heads)

    def linear(layer, kernel, bias):
        layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T)))
        layer.bias.copy_(torch.from_numpy(bias.reshape(-1)))

    def norm(layer, q):
        layer.weight.copy_(torch.from_numpy(q["scale"]))
        layer.bias.copy_(torch.from_numpy(q["bias"]))

    with torch.no_grad():
        net.wte.weight.copy_(torch.from_numpy(p["tokens"]["embedding"]))
        net.wpe.weight.copy_(torch.from_numpy(p["positions"]["embedding"]))
        for block, q in zip(net.h, (p["blocks"][i] for i in range(len(p["blocks"]))), strict=True):
            a = q["attn"]
            qkv = [a[n]["kernel"].reshape(width, width) for n in ("query", "key", "value")]
            linear(
                block.attn.c_attn,
                np.concatenate(qkv, axis=1),
                np.concatenate([a[n]["bias"].reshape(-1) for n in ("query", "key", "value")]),
            )
            linear(block.attn.c_proj, a["out"]["kernel"].reshape(width, width), a["out"]["bias"])
            norm(block.ln_1, q["ln1"])
            norm(block.ln_2, q["ln2"])
            linear(block.c_fc, q["up"]["kernel"], q["up"]["bias"])
            linear(block.c_proj, q["down"]["kernel"], q["down"]["bias"])
        norm(net.ln_f, p["ln"])
        linear(net.lm_head, p["head"]["kernel"], p["head"]["bias"])
    return net


def _batches(wl: TextWorkload, b: int, steps: int, seed: int = 0) -> np.ndarray:
    """Row indices of ``steps`` batches of ``b``: jbatch's epoch order of ``seed``, epoch after epoch."""
    per_epoch = wl.num_examples // b
    rows = [
        epoch_order(seed, e, wl.num_examples)[: per_epoch * b].reshape(per_epoch, b)
        for e in range(-(-steps // per_epoch))
    ]
    return np.concatenate(rows)[:steps]


class NanoGPTLoop:
    """nanoGPT's training loop over ``GPT``: each iteration sets the learning rate of the
    schedule into the param groups, runs the model with its targets, ``zero_grad``,
    ``backward``, ``step``; the batches (jbatch's order of the windows) are cut beforehand,
    untimed, as its ``get_batch`` is cheap next to a step."""

    def __init__(self, wl: TextWorkload, batch_size: int, steps: int, seed: int = 0, budget: int | None = None):
        import torch

        torch.manual_seed(seed)
        self.torch, self.wl, self.b, self.budget = torch, wl, batch_size, budget or steps
        self.model = gpt(wl.model(seed))
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=LEARNING_RATE, betas=BETAS, weight_decay=WEIGHT_DECAY
        )
        rows = _batches(wl, batch_size, steps, seed)
        x, y = torch.from_numpy(wl.x.astype(np.int64)), torch.from_numpy(wl.y.astype(np.int64))
        self.batches = [(x[r], y[r]) for r in rows]
        self.val = torch.from_numpy(wl.x_val.astype(np.int64)), torch.from_numpy(wl.y_val.astype(np.int64))
        self.it = 0

    def step(self, xb, yb) -> Any:
        lr = LEARNING_RATE * lr_factor(self.it, self.budget)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        _, loss = self.model(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.it += 1
        return loss

    def val_loss(self) -> float:
        with self.torch.no_grad():
            return float(self.model(*self.val)[1])

    def runner(self, start: int = 0, stop: int | None = None) -> Runner:
        """The batches ``start:stop`` as one timed round (CPU: done when ``step`` returns)."""
        chunk = self.batches[start:stop]

        def run() -> Any:
            for xb, yb in chunk:
                loss = self.step(xb, yb)
            return loss.item()

        return Runner(run, len(chunk) * self.b, len(chunk), 0.0)


def jbatch_text_epoch(wl: TextWorkload, batch_size: int) -> Runner:
    """jbatch's scan-fused epoch of the transformer with the preset's AdamW and schedule."""
    from bench.workloads import epoch_runner
    from jbatch.core.engine import fast_unroll
    from jbatch.core.epoch import make_epoch
    from jbatch.core.loss import softmax_cross_entropy
    from jbatch.core.step import init_train_state, make_train_step

    n = wl.num_examples
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, batch_size, unroll=fast_unroll(batch_size))
    state = init_train_state(wl.model(0), _tx(n // batch_size))
    data = jax.device_put(wl.x), jax.device_put(wl.y)
    return epoch_runner(epoch, state, data, jax.device_put(epoch_order(0, 0, n)), n, batch_size)


def _tx(budget: int) -> Any:
    from jbatch.core.optim import adamw, with_schedule

    return with_schedule(adamw, "cosine", WARMUP, FINAL)(
        LEARNING_RATE, b2=BETAS[1], weight_decay=WEIGHT_DECAY, budget=float(budget)
    )


# --- time to a validation loss (bench/test_shakespeare.py): nanoGPT's CPU run, stopped at the target ---


@dataclasses.dataclass(frozen=True)
class TextCase:
    """nanoGPT's CPU run (B = 12, a 2,000-step cosine schedule) evaluated every ``every``
    steps on the validation windows, stopped at the first evaluation at or under ``target``."""

    batch_size: int = 12
    budget: int = 2000
    every: int = 100
    target: float = 2.0

    @property
    def marks(self) -> tuple[int, ...]:
        return tuple(range(self.every, self.budget + 1, self.every))


class JbatchTextToTarget:
    """jbatch's form: the sweep's compiled chunk of ``every`` checked steps, then the compiled
    evaluation of the validation split, a host sync per mark."""

    def __init__(self, wl: TextWorkload, c: TextCase):
        from jbatch.core.engine import compile_program
        from jbatch.core.epoch import make_chunk, make_evaluate
        from jbatch.core.guard import init_guard
        from jbatch.core.loss import softmax_cross_entropy
        from jbatch.core.step import init_train_state, make_eval_step, make_train_step

        self.wl, self.c, self.init_guard, self.init = wl, c, init_guard, init_train_state
        self.data = jax.device_put(wl.x), jax.device_put(wl.y)
        self.val = jax.device_put(wl.x_val), jax.device_put(wl.y_val)
        rows = _batches(wl, c.batch_size, c.budget).reshape(len(c.marks), c.every, c.batch_size)
        self.idx, self.mask = jax.device_put(rows.astype(np.int32)), jax.device_put(np.ones(rows.shape, bool))
        self.active = jax.device_put(np.ones((c.every,), bool))
        self.tx = _tx(c.budget)  # one object: the compiled programs take its state's structure
        state = init_train_state(wl.model(0), self.tx)
        chunk = make_chunk(make_train_step(softmax_cross_entropy), whole=False)
        self.chunk = compile_program(chunk, (state, init_guard()), self.data, self.idx[0], self.mask[0], self.active)
        self.evaluate = compile_program(make_evaluate(make_eval_step(softmax_cross_entropy, True)), state, self.val)
        self.compile_seconds = self.chunk.compile_seconds + self.evaluate.compile_seconds

    def setup(self) -> Any:
        return self.init(self.wl.model(0), self.tx), self.init_guard()

    def run(self, carry: Any) -> dict[str, Any]:
        curve = []
        for m, mark in enumerate(self.c.marks):
            carry, _ = self.chunk(carry, self.data, self.idx[m], self.mask[m], self.active)
            curve.append(float(self.evaluate(carry[0], self.val)["loss"]))  # the host sync
            if curve[-1] <= self.c.target:
                return {"steps": mark, "curve": curve}
        return {"steps": None, "curve": curve}


class NNXTextToTarget:
    """Flax's NNX tutorial loop: an ``nnx.jit`` step per batch, an ``nnx.jit`` evaluation per mark."""

    def __init__(self, wl: TextWorkload, c: TextCase):
        import optax
        from flax import nnx

        from bench.peers import nnx_tutorial_step

        self.wl, self.c, self.nnx = wl, c, nnx
        x, y = jax.device_put(wl.x), jax.device_put(wl.y)
        self.batches = [(x[r], y[r]) for r in _batches(wl, c.batch_size, c.budget)]
        self.val = jax.device_put(wl.x_val), jax.device_put(wl.y_val)

        train_step = nnx_tutorial_step()

        @nnx.jit
        def val_loss(model, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        self.train_step, self.val_loss = train_step, val_loss
        start = time.perf_counter()
        model, optimizer = self.setup()
        jax.block_until_ready((train_step(model, optimizer, *self.batches[0]), val_loss(model, *self.val)))
        self.compile_seconds = time.perf_counter() - start

    def setup(self) -> Any:
        model = self.wl.model(0)
        return model, self.nnx.Optimizer(model, _tx(self.c.budget), wrt=self.nnx.Param)

    def run(self, state: Any) -> dict[str, Any]:
        model, optimizer = state
        curve, marks = [], set(self.c.marks)
        for t, (xb, yb) in enumerate(self.batches, start=1):
            self.train_step(model, optimizer, xb, yb)
            if t in marks:
                curve.append(float(self.val_loss(model, *self.val)))
                if curve[-1] <= self.c.target:
                    return {"steps": t, "curve": curve}
        return {"steps": None, "curve": curve}


class TorchTextToTarget:
    """nanoGPT's loop (``NanoGPTLoop``), evaluated at the same marks under ``torch.no_grad``."""

    def __init__(self, wl: TextWorkload, c: TextCase):
        self.wl, self.c, self.compile_seconds = wl, c, 0.0

    def setup(self) -> NanoGPTLoop:
        return NanoGPTLoop(self.wl, self.c.batch_size, self.c.budget)

    def run(self, loop: NanoGPTLoop) -> dict[str, Any]:
        curve, marks = [], set(self.c.marks)
        for t, (xb, yb) in enumerate(loop.batches, start=1):
            loop.step(xb, yb)
            if t in marks:
                curve.append(loop.val_loss())
                if curve[-1] <= self.c.target:
                    return {"steps": t, "curve": curve}
        return {"steps": None, "curve": curve}


TO_TARGET = {"jbatch": JbatchTextToTarget, "flax-nnx-loop": NNXTextToTarget, "torch-nanogpt": TorchTextToTarget}
