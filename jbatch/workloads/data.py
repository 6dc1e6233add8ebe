"""Offline data sets: scikit-learn digits, MNIST-1D (generated), a synthetic linear
regression with a closed-form optimum, and user ``.npz`` files.

Data sets are host (NumPy) arrays that keep their shapes: ``[N, D]`` features, ``[N, H, W,
C]`` images, ``[N, T]`` sequences or token ids; ``to_device`` moves a split to the
accelerator once, and training only indexes rows of it from then on.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path

import jax
import numpy as np

from jbatch.errors import ConfigError


def cache_dir() -> Path:
    """Where generated and downloaded data sets are kept: ``$XDG_CACHE_HOME/jbatch`` (default
    ``~/.cache/jbatch``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jbatch"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split. ``y`` holds integer class labels (``[N]``, or ``[N, T]`` for one
    label per token), or float targets ``[N, ...]``; ``x`` any ``[N, ...]`` array.

    Attributes:
      task: ``"classification"`` or ``"regression"``; picks the loss.
      outputs: number of classes, or of regression targets.
      spatial_shape: shape jbatch's CNN reshapes one example to, e.g. ``(8, 8)``; None if none.
      optimum: for synthetic regression, the closed-form least-squares ``(w, b)``.
      info: what describes the data beyond the arrays (e.g. a language's entropy rate).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    outputs: int
    spatial_shape: tuple[int, ...] | None = None
    optimum: dict[str, np.ndarray] | None = None
    info: dict | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the four arrays (dtypes, shapes, values): the same data, whatever its
        name or the way it came (arrays in Python, an ``.npz`` on the command line)."""
        return fingerprint(self.x_train, self.y_train, self.x_test, self.y_test)

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def in_features(self) -> int:
        """Features of one example, flattened (what jbatch's MLP takes)."""
        return int(np.prod(self.x_train.shape[1:]))


def fingerprint(*arrays: np.ndarray) -> str:
    """SHA-256 over the arrays' dtypes, shapes and bytes.

    Examples:
      >>> a = np.arange(6, dtype=np.float32).reshape(3, 2)
      >>> fingerprint(a) == fingerprint(a.copy()), fingerprint(a) == fingerprint(a.reshape(2, 3))
      (True, False)
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _validate(ds: Dataset) -> None:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x.ndim < 2 and not np.issubdtype(x.dtype, np.integer):
            raise ConfigError(f"data set {ds.name!r}: x_{split} must be [N, ...] with features per row, got {x.shape}")
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"data set {ds.name!r}: x_{split} has {x.shape[0]} rows but y_{split} {y.shape[0]}")
        if x.shape[0] == 0:
            raise ConfigError(f"data set {ds.name!r}: the {split} split is empty")
        for name, a in ((f"x_{split}", x), (f"y_{split}", y)):
            if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
                bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
                raise ConfigError(f"data set {ds.name!r}: {name} holds {bad} NaN or infinite values")
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise ConfigError(
            f"data set {ds.name!r}: train rows {ds.x_train.shape[1:]} but test rows {ds.x_test.shape[1:]}"
        )
    if ds.task == "classification":
        for y in (ds.y_train, ds.y_test):
            if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= ds.outputs:
                raise ConfigError(f"data set {ds.name!r}: labels must be integers in [0, {ds.outputs})")


def to_device(x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """Puts one split on the default device: the only host-to-device copy of the data."""
    return jax.device_put(x), jax.device_put(y)


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images): fixed stratified split, standardised with
    training statistics only (constant pixels are left at zero)."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    x, y = sk_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)
    return Dataset(
        "digits",
        ((x_tr - mean) / std).astype(np.float32),
        y_tr.astype(np.int32),
        ((x_te - mean) / std).astype(np.float32),
        y_te.astype(np.int32),
        task="classification",
        outputs=10,
        spatial_shape=(8, 8),
    )


@functools.cache
def _mnist1d_arrays(num_samples: int, seed: int) -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    saved = np.random.get_state()  # noqa: NPY002  make_dataset seeds the global RNG: restore it
    try:
        d = make_dataset(args)  # generated here; the package's download path is never used
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    return d["x"], d["y"], d["x_test"], d["y_test"]


def load_mnist1d(seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020): 4,000 train / 1,000 test sequences of length 40, generated
    offline by ``mnist1d.data.make_dataset`` with its default arguments."""
    x_tr, y_tr, x_te, y_te = _mnist1d_arrays(5000, seed)
    return Dataset(
        "mnist1d",
        x_tr.astype(np.float32),
        y_tr.astype(np.int32),
        x_te.astype(np.float32),
        y_te.astype(np.int32),
        task="classification",
        outputs=10,
        spatial_shape=(x_tr.shape[1],),
    )


def make_linear_regression(
    num_train: int = 512, num_test: int = 128, features: int = 8, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """``y = x w + b + noise`` with Gaussian inputs. ``optimum`` is the least-squares
    ``(w, b)`` on the training set, solved in float64: what full-batch descent must reach."""
    rng = np.random.default_rng(seed)
    n = num_train + num_test
    x = rng.standard_normal((n, features))
    w, b = rng.standard_normal((features, 1)), rng.standard_normal(1)
    y = x @ w + b + noise * rng.standard_normal((n, 1))
    design = np.hstack([x[:num_train], np.ones((num_train, 1))])
    sol, *_ = np.linalg.lstsq(design, y[:num_train], rcond=None)
    return Dataset(
        "linreg",
        x[:num_train].astype(np.float32),
        y[:num_train].astype(np.float32),
        x[num_train:].astype(np.float32),
        y[num_train:].astype(np.float32),
        task="regression",
        outputs=1,
        optimum={"w": sol[:-1], "b": sol[-1]},
    )


def load_npz(path: str | Path) -> Dataset:
    """A user's data set: an ``.npz`` with ``x_train, y_train, x_test, y_test``. Integer
    ``y`` means classification (classes 0..max), float ``y`` regression."""
    path = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ConfigError(f"data file {str(path)!r} lacks array(s) {', '.join(missing)}")
            arrays = {k: np.asarray(f[k]) for k in keys}
    except FileNotFoundError:
        raise ConfigError(f"data file {str(path)!r} does not exist") from None
    except (OSError, ValueError, EOFError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"data file {str(path)!r} is not a readable .npz: {e}") from None
    # shapes are kept: images stay [N, H, W, C], sequences [N, T]; integer inputs (token ids) stay integers
    x_tr, x_te = (
        arrays[k] if np.issubdtype(arrays[k].dtype, np.integer) else arrays[k].astype(np.float32)
        for k in ("x_train", "x_test")
    )
    x_tr, x_te = (x.astype(np.int32) if np.issubdtype(x.dtype, np.integer) else x for x in (x_tr, x_te))
    y_tr, y_te = arrays["y_train"], arrays["y_test"]
    # what jbatch's CNN convolves over (channels last): H x W of images, T of sequences
    spatial = tuple(x_tr.shape[1:3]) if x_tr.ndim > 2 else ((x_tr.shape[1],) if x_tr.ndim == 2 else None)
    if np.issubdtype(y_tr.dtype, np.integer):
        outputs = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
        return Dataset(
            path.stem,
            x_tr,
            y_tr.astype(np.int32),
            x_te,
            y_te.astype(np.int32),
            task="classification",
            outputs=outputs,
            spatial_shape=spatial,
        )
    y_tr, y_te = (y.reshape(len(y), -1).astype(np.float32) for y in (y_tr, y_te))
    return Dataset(path.stem, x_tr, y_tr, x_te, y_te, task="regression", outputs=y_tr.shape[1])
