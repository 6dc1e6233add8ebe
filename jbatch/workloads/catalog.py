"""Every built-in data set by name (``load_dataset``): digits, MNIST-1D (4,000 or ``mnist1d:N``), the
synthetic regression, the Markov languages, Shakespeare's text (``shakespeare-char[:context[:windows]]``),
or a user's ``.npz`` file by path."""

from __future__ import annotations

from collections.abc import Callable

from jbatch.errors import ConfigError
from jbatch.workloads import mnist1d, shakespeare
from jbatch.workloads.data import Dataset, load_digits, load_mnist1d, load_npz, make_linear_regression
from jbatch.workloads.language import make_language

# Synthetic languages (jbatch.workloads.language): a CPU-sized one and one for an accelerator.
LANGUAGES: dict[str, dict] = {
    # Sized so that every batch size learns it within a 300-step budget on this CPU: a pilot of order 2 (16
    # symbols, 3 next each) was learned at B = 256 but stayed near 1.9-2.4 nats at B = 1 and 16 in that budget.
    "markov": {"vocab": 16, "order": 1, "branching": 4, "length": 16},  # 4,096 + 512 sequences of 16 tokens
    "markov-large": {
        "train_sequences": 65536,
        "test_sequences": 2048,
        "length": 128,
        "vocab": 256,
        "order": 2,
        "branching": 16,
    },
}


# One explicit table of built-in data sets; anything ending in .npz is read as a file.
DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "linreg": make_linear_regression,
}


def load_dataset(name: str) -> Dataset:
    """A built-in data set by name, or a ``.npz`` file by path.

    Examples:
      >>> load_dataset("digits").x_train.shape
      (1437, 64)
    """
    if name.endswith(".npz"):
        return load_npz(name)
    if name in LANGUAGES:
        return make_language(**LANGUAGES[name])
    if name.startswith("mnist1d:"):
        size = name.split(":", 1)[1]
        if not (size.isascii() and size.isdigit()):  # "²".isdigit() is True; int() refuses it
            raise ConfigError(f"mnist1d:N needs a number of training examples, got {name!r}")
        return mnist1d.load(int(size))
    if name.split(":", 1)[0] == "shakespeare-char":
        return shakespeare.load(name)
    if name not in DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r}; known: {', '.join([*DATASETS, *LANGUAGES])}, mnist1d:N (N training "
            "sequences, nested), shakespeare-char[:context[:windows]] (real text), or a path to an .npz file"
        )
    return DATASETS[name]()
