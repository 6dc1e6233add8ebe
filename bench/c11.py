"""Claim C11, measured on its own (it once ran inside every sweep): ``python -m bench.c11
[--dataset digits] [--batch-sizes 1,4,16,64,256,full] [--epochs 3] [--out results/c11]``.

In JAX a compiled step is specialised to one batch shape. For each batch size, a plain
``jax.jit`` of jbatch's step is fed one epoch's batches as they come, the last one unpadded
(smaller when B does not divide N), and its compilations are counted; then jbatch's epoch,
which pads and masks that last batch, is ``jax.jit``-ed the same way and run for
``--epochs`` epochs (each in a new order), its compilations counted too. The claim holds
when the plain step compiles once per batch shape and the padded epoch once in all.
``c11.json`` (``jbatch.results.records.ShapeDemoDocument``) is what ``jbatch claims`` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import optax

from jbatch.core.batching import epoch_batches, epoch_order, resolve_batch_size
from jbatch.core.engine import CompileCounter
from jbatch.core.epoch import make_epoch
from jbatch.core.step import Batch, init_train_state, make_train_step
from jbatch.errors import ConfigError
from jbatch.results import dump
from jbatch.results.records import ShapeDemo, ShapeDemoDocument
from jbatch.sweeps.metadata import environment_metadata
from jbatch.workloads.catalog import load_dataset
from jbatch.workloads.model import make_model

LOSS = optax.softmax_cross_entropy_with_integer_labels


def demo(x, y, batch_size: int, epochs: int, widths: tuple[int, ...] = (256, 256)) -> ShapeDemo:
    """One batch size's counts (see the module's docstring)."""
    n = int(x.shape[0])

    def fresh():
        return init_train_state(
            make_model("mlp", x.shape[1], int(y.max()) + 1, widths=widths),
            optax.inject_hyperparams(optax.sgd)(learning_rate=0.01),
        )

    idx, mask = epoch_batches(epoch_order(0, 0, n), batch_size)
    batches = [Batch(x[i[m]], y[i[m]]) for i, m in zip(idx, mask, strict=True)]  # unpadded, as they come
    shapes = sorted({int(m.sum()) for m in mask})
    state = jax.block_until_ready(fresh())
    step = jax.jit(make_train_step(LOSS))  # the plain step: its own jit, on purpose
    with CompileCounter() as plain:
        for b in batches:
            state, _ = step(state, b)
        jax.block_until_ready(state)
    state = jax.block_until_ready(fresh())
    orders = [jax.device_put(epoch_order(0, e, n)) for e in range(epochs)]
    epoch = jax.jit(make_epoch(make_train_step(LOSS), n, batch_size))  # lazily compiled: its compilations count
    with CompileCounter() as padded:
        for order in orders:
            state, _ = epoch(state, (x, y), order)
        jax.block_until_ready(state)
    return ShapeDemo(
        batch_size=batch_size,
        batch_shapes=shapes,
        plain_step_compilations=plain.count,
        padded_epoch_compilations=padded.count,
        padded_epoch_calls=epochs,
    )


def measure(dataset: str, batch_sizes: list, epochs: int, out: Path) -> ShapeDemoDocument:
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    ds = load_dataset(dataset)
    x, y = jax.device_put(ds.x_train), jax.device_put(ds.y_train)
    rows = [demo(x, y, resolve_batch_size(b, ds.num_train), epochs) for b in batch_sizes]
    doc = ShapeDemoDocument(dataset=dataset, num_train=ds.num_train, rows=rows, metadata=environment_metadata())
    dump(Path(out) / "c11.json", doc, indent=1)
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.c11", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--batch-sizes", default="1,4,16,64,256,full")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("results/c11"))
    args = p.parse_args(argv)
    try:
        sizes = [int(b) if b.strip().isdigit() else b.strip() for b in args.batch_sizes.split(",")]
        doc = measure(args.dataset, sizes, args.epochs, args.out)
    except ConfigError as e:
        print(f"bench.c11: error: {e}", file=sys.stderr)
        return 2
    for r in doc.rows:
        print(
            f"B={r.batch_size}: batch shapes {r.batch_shapes}, plain step compiled {r.plain_step_compilations}x, "
            f"padded epoch {r.padded_epoch_compilations}x in {r.padded_epoch_calls} epochs"
        )
    print(f"wrote {args.out / 'c11.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
