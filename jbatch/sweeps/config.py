"""What a sweep trains: ``SweepConfig`` (every field a command-line flag and a config-file
key), its validation against a data set, the ``--quick`` variant, and config files.

Config is a frozen dataclass, varied with ``dataclasses.replace``; the library below the
command line receives it as a value.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jbatch.errors import ConfigError

if TYPE_CHECKING:  # an annotation only: the config (and the command line built from it) loads no jax
    from jbatch.core.batching import BatchSize

# The settings ``jbatch train`` shares with a sweep (``sweeps.train.TrainConfig`` has each, with
# one value where a sweep has a grid): its workload and its training options.
TRAINING_OPTIONS = ("dataset", "model", "widths", "optimizer", "loss", "momentum", "b2", "weight_decay",
                    "beta2_reference", "schedule", "warmup", "final_fraction", "microbatch", "remainder")  # fmt: skip


def setting(default: Any, help: str, **kw: Any) -> Any:
    """A config field that carries its own command-line help (``cli`` derives every flag
    from the fields: name, type, help; ``item`` parses list elements, ``flag`` overrides
    the flag's name, ``aliases`` adds others)."""
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains. The defaults are ``jbatch sweep``'s main job."""

    name: str = setting("", "results/<name>/ (default: <dataset>-<model>-<optimizer>)")
    dataset: str = setting("digits", "digits, mnist1d, mnist1d:N, linreg, markov, "
                                  "shakespeare-char[:context[:windows]], or an .npz file (arrays keep their shapes)")
    model: str = setting("mlp", "linear, mlp, cnn, transformer, transformer-wide, nanogpt-cpu, nanogpt-gpu, "
                                "or an import path pkg.mod:factory (seed -> nnx.Module)")
    widths: tuple[int, ...] = setting((256, 256), "MLP hidden widths, e.g. 256,256", item="positive")
    optimizer: str = setting("sgd", "sgd, momentum, nesterov, adam, adamw, or an import path pkg.mod:factory "
                                    "(hyperparameters -> optax transformation)")
    loss: str = setting("", "cross_entropy or mse (default: the data's task)")
    batch_sizes: tuple[BatchSize, ...] = setting((1, 4, 16, 64, 256, "full"), "e.g. 1,4,16,64,256,full", item="batch")
    learning_rates: tuple[float, ...] = setting(
        tuple(float(f"{10**e:.4g}") for e in np.arange(-3, 0.51, 0.5)), "learning-rate grid, e.g. 0.001,0.01,0.1,1",
        item=float, aliases=("--lrs",))  # fmt: skip
    momentum: tuple[float, ...] = setting((), "momentum (momentum, nesterov): values to sweep, one for train; "
                                               "empty: the default", item=float)
    b2: tuple[float, ...] = setting((), "Adam's beta2: values to sweep, one for train; empty: the default",
                                    item=float)
    weight_decay: tuple[float, ...] = setting((), "AdamW's weight decay: values to sweep, one for train; empty: "
                                                  "the default", item=float)
    beta2_reference: int = setting(0, "keep beta2's half-life in examples: beta2 ** (B / this batch size) at "
                                      "each B (Marek et al. 2025); 0: off")
    schedule: str = setting("constant", "constant, linear or cosine decay, over each batch size's step budget",
                            choices=("constant", "linear", "cosine"))
    warmup: float = setting(0.0, "linear warm-up, as a fraction of each batch size's step budget")
    final_fraction: float = setting(0.0, "the learning rate at the end of a decay, as a fraction of its peak")
    seeds: tuple[int, ...] = setting((0, 1, 2), "e.g. 0,1,2", item=int)
    extend_grid: int = setting(4, "when a batch size's best learning rate is the grid's lowest or highest, add up "
                                   "to this many half-decades beyond it (0: never)")
    target_metric: str = setting("test_accuracy", "test_accuracy, train_accuracy, test_loss or train_loss")
    target_value: float = setting(0.95, "the target's value (accuracy at least, or loss at most)")
    target_over_floor: float = setting(0.0, "languages: the target loss is the data's exact floor plus this many "
                                            "nats (sets target_value); 0: off")
    budget_steps: int = setting(300, "at least this many steps per run")
    budget_epochs: int = setting(4, "and at least this many epochs")
    evals: int = setting(100, "evaluation points per run, about; always at epoch ends")
    microbatch: int = setting(0, "accumulate each batch's gradient over micro-batches of this many rows (the same "
                                 "update in the memory of M rows, except with batch statistics); 0: whole batches")
    remainder: str = setting("keep", "keep (Keras: a partial last batch) or drop it", choices=("keep", "drop"))
    sample_examples: int = setting(128, "the training loss is also evaluated at every fine point on a fixed "
                                         "subsample of this many training examples (oscillation, on a fixed set); "
                                         "0: none")
    noise_checkpoints: int = setting(8, "gradient-noise-scale measurements per run, log-spaced; 0: none")
    coarse_evals: int = setting(12, "evaluations of every metric per run, log-spaced (the target's split is also "
                                    "evaluated at the `evals` points until the target is reached)")
    eval_examples: int = setting(512, "the non-target split is evaluated on a fixed subsample of at most this "
                                       "many examples; 0: all")
    noise_examples: int = setting(4096, "the noise scale is estimated on at most this many training examples (a "
                                        "fixed subsample, unbiased estimators); 0: all")
    noise_unroll: int = setting(8, "group gradients per loop iteration of a noise probe: faster probes, longer "
                                   "compilation (1 compiles fastest)")
    noise_groups: int = setting(64, "... from the spread of this many group gradients (per-example gradients "
                                     "when there are no more examples than this): more is more precise, slower")
    timing_rounds: int = setting(7, "interleaved timing rounds per batch size (at least 7 for a 95% interval)")

    @property
    def results_name(self) -> str:
        parts = [slug(p) for p in (self.dataset, self.model, self.optimizer)]
        return self.name or "-".join(parts)

    def axes(self) -> dict[str, tuple[float, ...]]:
        """The hyperparameters swept (injected, vmapped), each with its grid: the learning
        rate always, the others when given."""
        grids = {"learning_rate": self.learning_rates, "momentum": self.momentum, "b2": self.b2,
                 "weight_decay": self.weight_decay}  # fmt: skip
        return {k: tuple(v) for k, v in grids.items() if v}


def slug(text: str) -> str:
    """A name for a results directory: an import path's last part (a function's name,
    ``lambda`` for a lambda), a file's stem.

    Example:
      >>> slug("mypkg.models:make_resnet"), slug("tests.t:f.<locals>.<lambda>"), slug("data/x.npz"), slug("mnist1d:400")
      ('make-resnet', 'lambda', 'x', 'mnist1d400')
      >>> slug("shakespeare-char:64:24000")
      'shakespeare-char-64-24000'
    """
    if text.startswith("shakespeare-char"):
        return text.replace(":", "-")
    if ":" in text and not text.startswith("mnist1d:"):
        return text.rsplit(":", 1)[1].rsplit(".", 1)[-1].strip("<>").replace("_", "-")
    return Path(text).stem.replace(":", "") if text.endswith(".npz") else text.replace(":", "")


def quick(config: SweepConfig) -> SweepConfig:
    """The ``--quick`` preset: one seed, 4 learning rates spread over the config's own grid
    (its ends included: an Adam grid stays an Adam grid), short budgets (tests, smoke runs);
    the command line puts it in its own results directory (``<name>-quick``)."""
    lrs = config.learning_rates
    spread = tuple(lrs[i] for i in sorted({round(j) for j in np.linspace(0, len(lrs) - 1, min(4, len(lrs)))}))
    return dataclasses.replace(
        config, seeds=config.seeds[:1],
        learning_rates=spread, budget_steps=60, budget_epochs=1, evals=12, noise_checkpoints=3,
        coarse_evals=4,
    )  # fmt: skip


def fitting(config: SweepConfig, num_train: int) -> SweepConfig:
    """``config`` with the batch sizes that fit ``num_train`` examples (smaller than it, and
    ``"full"``), for a quick run on a small data set: where fewer than 3 fit, powers of 4
    below ``num_train`` take their place.

    Example:
      >>> fitting(SweepConfig(), 96).batch_sizes
      (1, 4, 16, 64, 'full')
    """
    sizes = [b for b in config.batch_sizes if b in ("full", None) or isinstance(b, int) and 0 < b < num_train]
    if len(sizes) < 3:
        sizes = [4**k for k in range(8) if 4**k < num_train] + ["full"]
    return dataclasses.replace(config, batch_sizes=tuple(dict.fromkeys(sizes)))


def config_from_mapping(values: dict[str, Any], base: SweepConfig | None = None) -> SweepConfig:
    """A ``SweepConfig`` from a config file's mapping (TOML or JSON); unknown keys and
    wrong types are ``ConfigError``s that name the key."""
    base = base or SweepConfig()
    fields = {f.name: f for f in dataclasses.fields(SweepConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown sweep setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(base, key)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"sweep setting {key!r} must be a list, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool) or not isinstance(value, type(default)):
            if not (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
                raise ConfigError(f"sweep setting {key!r} must be a {type(default).__name__}, got {value!r}")
            value = float(value)
        clean[key] = value
    return dataclasses.replace(base, **clean)


def load_config_file(path: str, base: SweepConfig | None = None) -> SweepConfig:
    """Reads a sweep config from ``.toml`` or ``.json``; its keys override ``base``."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path!r}: {e.strerror}") from None
    try:
        values = tomllib.loads(text.decode()) if p.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path!r} is not valid {p.suffix[1:] or 'JSON'}: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path!r} must hold a table of settings")
    return config_from_mapping(values, base)
