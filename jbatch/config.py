"""What a sweep or a single run trains, as frozen values, and the one home of every choice list.

A ``SweepConfig`` is a name and six groups: the ``workload`` (data set, model, optimizer,
loss), the ``training`` options every run shares (schedule, warm-up, micro-batches, the
last partial batch), the ``grid`` (batch sizes, learning rates and other swept values,
seeds), the ``target``, the ``budget`` of each run and the ``measurement`` (evaluations,
noise probes, timing rounds). A ``TrainConfig`` (``jbatch train``) is built from the same
``workload`` and ``training`` groups with one value where a sweep has a grid.

Every field carries its command-line help (``setting``) and a key that is unique across the
groups (``budget.steps`` is ``budget_steps``): the command line's flags, flat config files
and ``SweepConfig.of`` / ``replace`` use those keys, so a setting is named the same way
everywhere. This module imports no jax: the command line's parser and the results contract
load it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from pathlib import Path
from typing import Any

from jbatch.errors import ConfigError

# The choice lists, once. ``core.optim.OPTIMIZERS`` and ``workloads`` build what these name.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
MODELS = ("linear", "mlp", "cnn", "transformer", "transformer-wide", "nanogpt-cpu", "nanogpt-gpu")
LOSSES = ("cross_entropy", "mse")
SCHEDULES = ("constant", "linear", "cosine")
REMAINDERS = ("keep", "drop")
RULES = ("constant", "sqrt", "linear")  # a learning rate against the batch size
HIGHER_IS_BETTER = {"test_accuracy": True, "train_accuracy": True, "test_loss": False, "train_loss": False}
SWEPT = ("learning_rate", "momentum", "b2", "weight_decay")  # hyperparameters a grid may vary

BatchSize = int | str  # an int, or "full" for full-batch descent


def setting(default: Any, help: str, **kw: Any) -> Any:
    """A config field that carries its own command-line help: ``key`` (default: the field's
    name) names it on the command line and in flat config files, ``item`` parses list
    elements, ``choices`` limits it, ``aliases`` adds other flags."""
    factory = {"default_factory": (lambda: default)} if isinstance(default, tuple) and default else {"default": default}
    return dataclasses.field(**factory, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    """What is trained, by name: ``workloads.workload.resolve`` turns it into values."""

    dataset: str = setting(
        "digits",
        "digits, mnist1d, mnist1d:N, linreg, markov, shakespeare-char[:context[:windows]], or an .npz file "
        "(arrays keep their shapes)",
    )
    model: str = setting("mlp", f"{', '.join(MODELS)}, or an import path pkg.mod:factory (seed -> nnx.Module)")
    widths: tuple[int, ...] = setting((256, 256), "MLP hidden widths, e.g. 256,256", item="positive")
    optimizer: str = setting(
        "sgd", f"{', '.join(OPTIMIZERS)}, or an import path pkg.mod:factory (hyperparameters -> optax transformation)"
    )
    loss: str = setting(
        "", "cross_entropy, mse, or an import path pkg.mod:fn (outputs, targets) -> [B] (default: the data's task)"
    )


@dataclasses.dataclass(frozen=True)
class Training:
    """How every run trains, a sweep's and ``jbatch train``'s alike."""

    beta2_reference: int = setting(
        0, "keep beta2's half-life in examples: beta2 ** (B / this batch size) at each B (Marek et al. 2025); 0: off"
    )
    schedule: str = setting(
        "constant", "constant, linear or cosine decay, over each batch size's step budget", choices=SCHEDULES
    )
    warmup: float = setting(0.0, "linear warm-up, as a fraction of each batch size's step budget")
    final_fraction: float = setting(0.0, "the learning rate at the end of a decay, as a fraction of its peak")
    microbatch: int = setting(
        0,
        "accumulate each batch's gradient over micro-batches of this many rows (the same update in the memory of M "
        "rows, except with batch statistics); 0: whole batches",
    )
    remainder: str = setting("keep", "keep (Keras: a partial last batch) or drop it", choices=REMAINDERS)


def _half_decades() -> tuple[float, ...]:
    return tuple(float(f"{10 ** (e / 2):.4g}") for e in range(-6, 2))  # 0.001 ... 3.162


@dataclasses.dataclass(frozen=True)
class Grid:
    """What a sweep varies: batch sizes, the swept hyperparameters (each combination), seeds."""

    batch_sizes: tuple[BatchSize, ...] = setting((1, 4, 16, 64, 256, "full"), "e.g. 1,4,16,64,256,full", item="batch")
    learning_rates: tuple[float, ...] = setting(
        _half_decades(), "learning-rate grid, e.g. 0.001,0.01,0.1,1", item=float, aliases=("--lrs",)
    )
    momentum: tuple[float, ...] = setting(
        (), "momentum (momentum, nesterov): values to sweep, one for train; empty: the default", item=float
    )
    b2: tuple[float, ...] = setting((), "Adam's beta2: values to sweep, one for train; empty: the default", item=float)
    weight_decay: tuple[float, ...] = setting(
        (), "AdamW's weight decay: values to sweep, one for train; empty: the default", item=float
    )
    seeds: tuple[int, ...] = setting((0, 1, 2), "e.g. 0,1,2", item=int)
    extend_grid: int = setting(
        4,
        "when a batch size's best learning rate is the grid's lowest or highest, add up to this many half-decades "
        "beyond it (0: never)",
    )

    def axes(self) -> dict[str, tuple[float, ...]]:
        """The hyperparameters swept (injected, vmapped), each with its grid: the learning
        rate always, the others when given."""
        grids = {name: getattr(self, name + "s" if name == "learning_rate" else name) for name in SWEPT}
        return {k: tuple(v) for k, v in grids.items() if v}


@dataclasses.dataclass(frozen=True)
class Target:
    """What counts as trained: a metric reaching a value."""

    metric: str = setting(
        "test_accuracy", "test_accuracy, train_accuracy, test_loss or train_loss", key="target_metric"
    )
    value: float = setting(0.95, "the target's value (accuracy at least, or loss at most)", key="target_value")
    over_floor: float = setting(
        0.0,
        "languages: the target loss is the data's exact floor plus this many nats (sets target_value); 0: off",
        key="target_over_floor",
    )

    @property
    def split(self) -> str:
        """The split the target is measured on: ``"test"`` or ``"train"``."""
        return self.metric.split("_")[0]

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long each run trains: at least ``steps`` updates and ``epochs`` epochs."""

    steps: int = setting(300, "at least this many steps per run", key="budget_steps")
    epochs: int = setting(4, "and at least this many epochs", key="budget_epochs")

    def steps_at(self, steps_per_epoch: int) -> int:
        """The budget in steps at a batch size with ``steps_per_epoch`` updates an epoch."""
        return max(self.steps, self.epochs * steps_per_epoch)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a sweep measures besides the training, and how often."""

    evals: int = setting(100, "evaluation points per run, about; always at epoch ends")
    coarse_evals: int = setting(
        12,
        "evaluations of every metric per run, log-spaced (the target's split is also evaluated at the `evals` "
        "points until the target is reached)",
    )
    eval_examples: int = setting(
        512, "the non-target split is evaluated on a fixed subsample of at most this many examples; 0: all"
    )
    sample_examples: int = setting(
        128,
        "the training loss is also evaluated at every fine point on a fixed subsample of this many training examples "
        "(oscillation, on a fixed set); 0: none",
    )
    noise_checkpoints: int = setting(8, "gradient-noise-scale measurements per run, log-spaced; 0: none")
    noise_examples: int = setting(
        4096,
        "the noise scale is estimated on at most this many training examples (a fixed subsample, unbiased "
        "estimators); 0: all",
    )
    noise_unroll: int = setting(
        8, "group gradients per loop iteration of a noise probe: faster probes, longer compilation (1 compiles fastest)"
    )
    noise_groups: int = setting(
        64,
        "... from the spread of this many group gradients (per-example gradients when there are no more examples "
        "than this): more is more precise, slower",
    )
    timing_rounds: int = setting(7, "interleaved timing rounds per batch size (at least 7 for a 95% interval)")


GROUPS = {
    "workload": WorkloadSpec,
    "training": Training,
    "grid": Grid,
    "target": Target,
    "budget": Budget,
    "measurement": Measurement,
}


def key_of(field: dataclasses.Field) -> str:
    """A field's flat key: its command-line flag without the dashes, its name in a flat config."""
    return field.metadata.get("key", field.name)


# flat key -> (group, field); None for the top level (the name)
KEYS: dict[str, tuple[str | None, str]] = {"name": (None, "name")} | {
    key_of(f): (group, f.name) for group, cls in GROUPS.items() for f in dataclasses.fields(cls)
}


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains (see the module's docstring). The defaults are ``jbatch sweep``'s main job.

    Examples:
      >>> c = SweepConfig.of(optimizer="momentum", momentum=(0.9,), budget_steps=100)
      >>> c.workload.optimizer, c.grid.axes()["momentum"], c.budget.steps, c.results_name
      ('momentum', (0.9,), 100, 'digits-mlp-momentum')
    """

    name: str = setting("", "results/<name>/ (default: <dataset>-<model>-<optimizer>)")
    workload: WorkloadSpec = dataclasses.field(default_factory=WorkloadSpec)
    training: Training = dataclasses.field(default_factory=Training)
    grid: Grid = dataclasses.field(default_factory=Grid)
    target: Target = dataclasses.field(default_factory=Target)
    budget: Budget = dataclasses.field(default_factory=Budget)
    measurement: Measurement = dataclasses.field(default_factory=Measurement)

    @classmethod
    def of(cls, **settings: Any) -> SweepConfig:
        """A config from flat keys (``learning_rates=...``, ``target_value=...``) or whole groups."""
        return cls().replace(**settings)

    def replace(self, **settings: Any) -> SweepConfig:
        """A copy with settings replaced, by flat key or whole group; an unknown key is a
        ``ConfigError`` naming the known ones."""
        groups = {name: settings.pop(name) for name in list(settings) if name in GROUPS}
        unknown = sorted(set(settings) - set(KEYS))
        if unknown:
            raise ConfigError(f"unknown sweep setting(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
        changes: dict[str, dict[str, Any]] = {}
        for key, value in settings.items():
            group, name = KEYS[key]
            changes.setdefault(group, {})[name] = tuple(value) if isinstance(value, list) else value
        top = changes.pop(None, {})
        for group, values in changes.items():
            groups[group] = dataclasses.replace(groups.get(group, getattr(self, group)), **values)
        return dataclasses.replace(self, **top, **groups)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat key."""
        return {
            key: getattr(self if group is None else getattr(self, group), name) for key, (group, name) in KEYS.items()
        }

    @property
    def results_name(self) -> str:
        w = self.workload
        return self.name or "-".join(slug(p) for p in (w.dataset, w.model, w.optimizer))


def slug(text: str) -> str:
    """A name for a results directory: an import path's last part (a function's name,
    ``lambda`` for a lambda), a file's stem.

    Examples:
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
    lrs = config.grid.learning_rates
    picks = sorted({round(j * (len(lrs) - 1) / 3) for j in range(4)}) if len(lrs) > 1 else [0]
    return config.replace(
        seeds=config.grid.seeds[:1],
        learning_rates=tuple(lrs[i] for i in picks),
        budget_steps=60,
        budget_epochs=1,
        evals=12,
        noise_checkpoints=3,
        coarse_evals=4,
    )


def fitting(config: SweepConfig, num_train: int) -> SweepConfig:
    """``config`` with the batch sizes that fit ``num_train`` examples (smaller than it, and
    ``"full"``), for a quick run on a small data set: where fewer than 3 fit, powers of 4
    below ``num_train`` take their place.

    Examples:
      >>> fitting(SweepConfig(), 96).grid.batch_sizes
      (1, 4, 16, 64, 'full')
    """
    sizes = [b for b in config.grid.batch_sizes if b == "full" or isinstance(b, int) and 0 < b < num_train]
    if len(sizes) < 3:
        sizes = [4**k for k in range(8) if 4**k < num_train] + ["full"]
    return config.replace(batch_sizes=tuple(dict.fromkeys(sizes)))


def from_mapping(values: dict[str, Any], base: SweepConfig | None = None, where: str = "") -> SweepConfig:
    """A ``SweepConfig`` from a mapping of flat keys and/or group tables (a config file, a
    stored document), over ``base``; unknown keys and wrong types are a ``ConfigError`` that
    names the key (and ``where`` it came from)."""
    import msgspec

    base = base or SweepConfig()
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in GROUPS and isinstance(value, dict):
            names = {f.name: key_of(f) for f in dataclasses.fields(GROUPS[key])}
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ConfigError(f"{where}unknown {key} setting(s) {', '.join(unknown)}; known: {', '.join(names)}")
            flat |= {names[k]: v for k, v in value.items()}
        elif key in KEYS:
            flat[key] = value
        else:
            raise ConfigError(
                f"{where}unknown sweep setting {key!r}; known: {', '.join(KEYS)} (or the groups {', '.join(GROUPS)})"
            )
    nested = _nest(base.flat() | flat)
    try:
        return msgspec.convert(nested, SweepConfig)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{where}{_setting_error(e)}") from None


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        group, name = KEYS[key]
        (out if group is None else out.setdefault(group, {}))[name] = list(value) if isinstance(value, tuple) else value
    return out


def _setting_error(e: Exception) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.grid.seeds[0]``` as the setting's key."""
    text = str(e)
    message, _, path = text.partition(" - at `$.")
    if not path:
        return f"sweep settings: {text}"
    parts = path.rstrip("`").split(".")
    group, leaf = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
    name = leaf.split("[")[0]
    key = next((k for k, (g, n) in KEYS.items() if g == group and n == name), ".".join(parts))
    return f"sweep setting {key!r}: {message}"


def load_config_file(path: str, base: SweepConfig | None = None) -> SweepConfig:
    """Reads a sweep config from ``.toml`` or ``.json`` (flat keys or group tables, or a results
    document such as a ``sweep.json``, whose ``config`` is taken); its keys override ``base``."""
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
    if str(values.get("kind", "")).startswith("jbatch.") and isinstance(values.get("config"), dict):
        values = values["config"]  # a results document: the settings it was run with
    return from_mapping(values, base, where=f"config file {path!r}: ")


HYPERPARAMETERS = ("momentum", "b2", "weight_decay")  # what a sweep varies besides the learning rate


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A single training run (``jbatch train``): a sweep's ``workload`` and ``training``
    groups at one batch size, learning rate and seed. ``batch_size`` "full" is full-batch
    descent; ``momentum``, ``b2`` and ``weight_decay`` (None: the optimizer's default) are
    single values of what a sweep can vary."""

    workload: WorkloadSpec = dataclasses.field(default_factory=WorkloadSpec)
    training: Training = dataclasses.field(default_factory=Training)
    batch_size: BatchSize = 32
    epochs: int = 20
    learning_rate: float = 0.1
    seed: int = 0
    momentum: float | None = None
    b2: float | None = None
    weight_decay: float | None = None
    unroll: int | None = None  # None: the engine's choice for the batch size
    devices: int = 1  # > 1: data parallel over this many local devices (jbatch.core.parallel)

    @classmethod
    def of(cls, **settings: Any) -> TrainConfig:
        """A run from flat settings: the ``workload`` and ``training`` groups' fields by name,
        and this run's own (``batch_size``, ``epochs``, ...).

        Examples:
          >>> TrainConfig.of(dataset="linreg", model="linear", batch_size="full").workload.dataset
          'linreg'
        """
        groups: dict[str, dict[str, Any]] = {"workload": {}, "training": {}}
        for name in list(settings):
            for group in groups:
                if name in {f.name for f in dataclasses.fields(GROUPS[group])}:
                    value = settings.pop(name)
                    groups[group][name] = tuple(value) if isinstance(value, list) else value
        return cls(workload=WorkloadSpec(**groups["workload"]), training=Training(**groups["training"]), **settings)

    @classmethod
    def from_sweep(cls, sweep: SweepConfig, **run: Any) -> TrainConfig:
        """The run of ``sweep``'s workload and training options given by ``run``
        (``batch_size``, ``epochs``, ``learning_rate``, ``seed``, ``devices``, ...). A grid
        of more than one value (``momentum=(0.9, 0.99)``) is a ``ConfigError``: a run takes one."""
        values = {}
        for name in HYPERPARAMETERS:
            grid = getattr(sweep.grid, name)
            if len(grid) > 1:
                raise ConfigError(f"a training run takes one {name} value, got {list(grid)}")
            values[name] = grid[0] if grid else None
        return cls(workload=sweep.workload, training=sweep.training, **(values | run))

    def hyperparameters(self) -> dict[str, float]:
        """The learning rate and every other hyperparameter given a value."""
        given = {k: getattr(self, k) for k in HYPERPARAMETERS if getattr(self, k) is not None}
        return {"learning_rate": self.learning_rate} | given

    def as_sweep(self, batch_size: int, budget: int) -> SweepConfig:
        """The one-point sweep this run is (its optimizer is built as a sweep's is)."""
        grids = {k: (v,) for k, v in self.hyperparameters().items() if k != "learning_rate"}
        return SweepConfig(
            workload=self.workload,
            training=self.training,
            grid=Grid(batch_sizes=(batch_size,), learning_rates=(self.learning_rate,), seeds=(self.seed,), **grids),
            budget=Budget(steps=budget, epochs=self.epochs),
        )


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
