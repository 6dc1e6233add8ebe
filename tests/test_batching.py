"""Claim C6 arithmetic and the shuffled, padded batches of an epoch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jbatch.core.batching import (
    epoch_batches,
    epoch_order,
    last_batch_size,
    resolve_batch_size,
    steps_per_epoch,
)
from jbatch.core.epoch import make_epoch
from jbatch.errors import ConfigError


@pytest.mark.parametrize(
    ("n", "b", "remainder", "steps"),
    [
        (2000, 500, "keep", 4),
        (1797, 500, "keep", 4),
        (2001, 500, "keep", 5),
        (1797, 1797, "keep", 1),
        (1797, 1, "keep", 1797),
        (1797, 500, "drop", 3),
        (2000, 500, "drop", 4),
        (1797, None, "keep", 1),
        (1797, "full", "drop", 1),
    ],
)
def test_steps_per_epoch(n, b, remainder, steps):
    assert steps_per_epoch(n, b, remainder) == steps


def test_last_batch_is_partial_as_keras():
    assert last_batch_size(1797, 500) == 297
    assert last_batch_size(2000, 500) == 500
    assert last_batch_size(1797, 500, "drop") == 500


@pytest.mark.parametrize(
    ("b", "message"),
    [
        (0, "at least 1"),
        (-3, "at least 1"),
        (3.5, "positive integer or 'full'"),
        ("abc", "positive integer or 'full'"),
        (True, "positive integer or 'full'"),
        (1798, "larger than the 1797"),
    ],
)
def test_bad_batch_sizes(b, message):
    with pytest.raises(ConfigError, match=message):
        resolve_batch_size(b, 1797)


def test_unknown_remainder():
    with pytest.raises(ConfigError, match="remainder"):
        steps_per_epoch(10, 3, "pad")


@pytest.mark.parametrize(("n", "b"), [(1797, 500), (2000, 500), (7, 1), (7, 7), (10, 3)])
def test_keep_visits_every_example_once(n, b):
    idx, mask = epoch_batches(jnp.asarray(epoch_order(1, 0, n)), b)
    assert idx.shape == mask.shape == (steps_per_epoch(n, b), b)
    seen = np.asarray(idx)[np.asarray(mask)]
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    assert int(mask.sum()) == n


def test_drop_visits_distinct_examples():
    idx, mask = epoch_batches(jnp.asarray(epoch_order(1, 0, 1797)), 500, "drop")
    assert idx.shape == (3, 500) and bool(mask.all())
    assert len(np.unique(np.asarray(idx))) == 1500


def test_shuffle_is_a_function_of_seed_and_epoch():
    a = epoch_order(3, 5, 100)
    np.testing.assert_array_equal(a, epoch_order(3, 5, 100))  # same key, same order
    assert not np.array_equal(a, epoch_order(3, 6, 100))  # next epoch, new order
    assert not np.array_equal(a, epoch_order(4, 5, 100))  # other seed, other order
    assert not np.array_equal(a, np.arange(100))
    np.testing.assert_array_equal(np.sort(a), np.arange(100))
    assert a.dtype == np.int32


@pytest.mark.parametrize(("n", "b", "remainder"), [(1797, 500, "keep"), (1797, 500, "drop"), (12, 1, "keep")])
def test_epoch_performs_the_counted_updates_and_sees_each_example_once(n, b, remainder):
    # A "step" that counts which examples it was shown: x holds each example's own index.
    def counting_step(counts, batch):
        seen = (
            jnp.zeros(n)
            .at[batch.x[:, 0].astype(jnp.int32)]
            .add(jnp.ones(b) if batch.mask is None else batch.mask.astype(jnp.float32))
        )
        return counts + seen, {"loss": jnp.sum(seen)}

    data = (jnp.arange(n, dtype=jnp.float32)[:, None], jnp.zeros(n, jnp.int32))
    epoch = jax.jit(make_epoch(counting_step, n, b, remainder=remainder))
    counts, metrics = epoch(jnp.zeros(n), data, jnp.asarray(epoch_order(0, 0, n)))
    steps = steps_per_epoch(n, b, remainder)
    assert metrics["loss"].shape == (steps,)
    if remainder == "keep":
        np.testing.assert_array_equal(counts, np.ones(n))
    else:
        assert set(np.unique(np.asarray(counts))) == {0.0, 1.0}
        assert int(counts.sum()) == steps * b
