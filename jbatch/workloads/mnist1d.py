"""MNIST-1D at any training-set size, nested: ``mnist1d:N``.

``mnist1d.data.make_dataset`` makes a different data set for every ``num_samples``, so
sizes cannot be compared by generating each one. Here one pool is generated once, at
the largest size supported, and split per class: the first 100 examples of each class
(in a fixed random order) are the one test set of every size, and size N takes the next
N / 10 of each class. Every size is class-balanced and a subset of every larger one, and
the test set never changes. The pool is cached on disk with a SHA-256 of its file; a
cache that is missing, unreadable, not a file, garbage or does not match its hash is
regenerated, never used; a cache that cannot be written is said and skipped.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from jbatch.errors import ConfigError
from jbatch.workloads.data import Dataset, cache_dir

MAX_TRAIN = 128_000  # the largest N: a pool of 129,000 sequences, about a minute to generate here
TEST_PER_CLASS = 100  # 1,000 test sequences, as in the standard 4,000 / 1,000 split
CLASSES = 10
VERSION = 1  # bump when the construction changes: older caches are then ignored


def _generate(max_train: int, seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    per_class = max_train // CLASSES + TEST_PER_CLASS
    args = get_dataset_args()
    args.num_samples, args.seed = per_class * CLASSES, seed  # make_dataset: num_samples // 10 per class
    saved = np.random.get_state()  # noqa: NPY002  make_dataset seeds the global RNG: restore it
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int32)
    return {"x": x, "y": y}


def _cached(path: Path, digest: Path, max_train: int) -> dict[str, np.ndarray] | None:
    """The pool in ``path`` if it is whole: its SHA-256 matches and it loads as sequences with
    one label each; None otherwise (missing, a directory, unreadable, garbage)."""
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest.read_text().strip():
            print(f"jbatch: {path} does not match its SHA-256: regenerating it", file=sys.stderr)
            return None
        with np.load(path) as f:
            pool = {k: np.asarray(f[k]) for k in ("x", "y")}
    except FileNotFoundError:
        return None
    except Exception as e:
        print(
            f"jbatch: the cached pool {path} cannot be used ({type(e).__name__}: {e}): regenerating it", file=sys.stderr
        )
        return None
    if pool["x"].ndim != 2 or pool["y"].shape != (pool["x"].shape[0],) or len(pool["y"]) <= max_train:
        print(f"jbatch: the cached pool {path} has the wrong shapes: regenerating it", file=sys.stderr)
        return None
    return pool


def _pool(max_train: int, seed: int, directory: Path) -> dict[str, np.ndarray]:
    path = directory / f"mnist1d-pool-{max_train}-{seed}-v{VERSION}.npz"
    digest = path.with_suffix(".sha256")
    pool = _cached(path, digest, max_train)
    if pool is not None:
        return pool
    print(
        f"jbatch: generating the MNIST-1D pool once ({max_train:,} training sequences and the test set, about "
        f"two minutes on a 2-core CPU); every mnist1d:N is drawn from it (cached in {path})",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    pool = _generate(max_train, seed)
    print(
        f"jbatch: generated MNIST-1D pool of {len(pool['y'])} sequences in {time.perf_counter() - start:.1f}s",
        file=sys.stderr,
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **pool)
        digest.write_text(hashlib.sha256(tmp.read_bytes()).hexdigest() + "\n")
        os.replace(tmp, path)
    except OSError as e:  # the pool is used all the same; only the cache is lost
        print(
            f"jbatch: could not cache the pool ({e.strerror or e}: {e.filename or path}); it will be generated "
            f"again next time: remove or fix {e.filename or path}",
            file=sys.stderr,
        )
    return pool


def nested_split(y: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the size-``n`` training set and of the fixed test set of a pool with
    labels ``y``: per class a fixed random order, the first ``TEST_PER_CLASS`` for test, the
    next ``n / 10`` for training; training rows in a fixed random order (a subsequence of
    every larger size's order).

    Examples:
      >>> y = np.repeat(np.arange(10), 120)
      >>> small, test = nested_split(y, 100)
      >>> big, test2 = nested_split(y, 200)
      >>> set(small) <= set(big), bool((test == test2).all()), np.bincount(y[small]).tolist() == [10] * 10
      (True, True, True)
    """
    rng = np.random.default_rng(seed)
    key = rng.random(len(y))  # the fixed order of training rows
    train, test = [], []
    for c in range(CLASSES):
        rows = np.flatnonzero(y == c)
        rows = rows[rng.permutation(len(rows))]
        test.append(rows[:TEST_PER_CLASS])
        train.append(rows[TEST_PER_CLASS : TEST_PER_CLASS + n // CLASSES])
    train = np.concatenate(train)
    return train[np.argsort(key[train], kind="stable")], np.sort(np.concatenate(test))


def load(n: int, max_train: int = MAX_TRAIN, seed: int = 42, directory: Path | None = None):
    """MNIST-1D with ``n`` training sequences (a multiple of 10, at most ``max_train``) and
    the fixed 1,000-sequence test set, as a ``jbatch.workloads.data.Dataset``."""
    if not isinstance(n, int) or n < CLASSES or n % CLASSES or n > max_train:
        raise ConfigError(f"mnist1d:N needs N a multiple of {CLASSES} between {CLASSES} and {max_train}, got {n}")
    pool = _pool(max_train, seed, directory or cache_dir())
    train, test = nested_split(pool["y"], n)
    x, y = pool["x"], pool["y"]
    return Dataset(
        f"mnist1d:{n}",
        x[train],
        y[train],
        x[test],
        y[test],
        task="classification",
        outputs=CLASSES,
        spatial_shape=(x.shape[1],),
    )
