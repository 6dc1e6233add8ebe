"""A batch-size sweep: for each batch size, every (learning rate x seed) replica trained
together as one vmapped, compiled program, evaluated on a fixed step cadence.

Batch sizes are compared at their own best learning rate (Shallue et al. 2018), so each
batch size gets the whole learning-rate grid. Budgets are in steps: ``max(budget_steps,
budget_epochs * steps_per_epoch)``, which gives full-batch descent hundreds of updates and
stochastic descent several epochs. ``run_batch_size`` returns plain data; ``jbatch.study``
writes it to disk and ``jbatch.summary`` turns it into verdicts.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jbatch.batching import BatchSize, epoch_batches, epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.data import Dataset, to_device
from jbatch.engine import CompileCounter, compile_program, replica_group, timed_call
from jbatch.epoch import make_chunk, make_epoch, make_evaluate
from jbatch.errors import ConfigError
from jbatch.guard import init_guard
from jbatch.loss import loss_for_task
from jbatch.model import make_model
from jbatch.noise import gradient_moments
from jbatch.optim import check_learning_rate, make_optimizer
from jbatch.replica import init_replicas, stack
from jbatch.step import Batch, init_train_state, make_eval_step, make_train_step

TARGET_METRICS = {  # metric -> True when higher is better
    "test_accuracy": True,
    "train_accuracy": True,
    "test_loss": False,
    "train_loss": False,
}


def setting(default: Any, help: str, **kw: Any) -> Any:
    """A config field that carries its own command-line help (``cli`` derives every flag
    from the fields: name, type, help; ``item`` parses list elements, ``flag`` overrides
    the flag's name, ``aliases`` adds others)."""
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains. The defaults are ``jbatch sweep``'s main job."""

    name: str = setting("", "results/<name>/ (default: <dataset>-<model>-<optimizer>)")
    dataset: str = setting("digits", "digits, mnist1d, linreg, or an .npz file")
    model: str = setting("mlp", "linear, mlp or cnn")
    widths: tuple[int, ...] = setting((256, 256), "MLP hidden widths, e.g. 256,256", item=int)
    optimizer: str = setting("sgd", "sgd, momentum, nesterov or adam")
    batch_sizes: tuple[BatchSize, ...] = setting((1, 4, 16, 64, 256, "full"), "e.g. 1,4,16,64,256,full", item="batch")
    learning_rates: tuple[float, ...] = setting(
        tuple(float(f"{10**e:.4g}") for e in np.arange(-3, 0.51, 0.5)), "learning-rate grid, e.g. 0.001,0.01,0.1,1",
        item=float, aliases=("--lrs",))  # fmt: skip
    seeds: tuple[int, ...] = setting((0, 1, 2), "e.g. 0,1,2", item=int)
    target_metric: str = setting("test_accuracy", "test_accuracy, train_accuracy, test_loss or train_loss")
    target_value: float = setting(0.95, "the target's value (accuracy at least, or loss at most)")
    budget_steps: int = setting(300, "at least this many steps per run")
    budget_epochs: int = setting(4, "and at least this many epochs")
    evals: int = setting(100, "evaluation points per run, about; always at epoch ends")
    remainder: str = setting("keep", "keep (Keras: a partial last batch) or drop it", choices=("keep", "drop"))
    noise_checkpoints: int = setting(8, "gradient-noise-scale measurements per run, log-spaced; 0: none")

    @property
    def results_name(self) -> str:
        return self.name or f"{self.dataset}-{self.model}-{self.optimizer}"


def quick(config: SweepConfig) -> SweepConfig:
    """The ``--quick`` preset: one seed, a 4-point grid, short budgets (tests, smoke runs),
    in its own results directory (``<name>-quick``)."""
    return dataclasses.replace(
        config, name=f"{config.results_name}-quick", seeds=config.seeds[:1],
        learning_rates=(0.01, 0.1, 1.0, 10.0), budget_steps=60, budget_epochs=1, evals=12, noise_checkpoints=3,
    )  # fmt: skip


def check_sweep(config: SweepConfig, ds: Dataset) -> list[int]:
    """Validates a sweep against its data set; returns the resolved batch sizes."""
    if not config.batch_sizes:
        raise ConfigError("the sweep has no batch sizes")
    if not config.learning_rates:
        raise ConfigError("the learning-rate grid is empty")
    if not config.seeds:
        raise ConfigError("the sweep has no seeds")
    for lr in config.learning_rates:
        check_learning_rate(lr)
    if config.target_metric not in TARGET_METRICS:
        raise ConfigError(f"unknown target metric {config.target_metric!r}; known: {', '.join(TARGET_METRICS)}")
    if not math.isfinite(config.target_value):
        raise ConfigError(f"target value must be finite, got {config.target_value}")
    if ds.task != "classification" and config.target_metric.endswith("accuracy"):
        raise ConfigError(f"data set {ds.name!r} is a regression: use a loss target, not accuracy")
    for field in ("budget_steps", "budget_epochs", "evals"):
        if getattr(config, field) < 1:
            raise ConfigError(f"{field} must be at least 1, got {getattr(config, field)}")
    if config.noise_checkpoints < 0:
        raise ConfigError(f"noise_checkpoints must be 0 or more, got {config.noise_checkpoints}")
    sizes = [resolve_batch_size(b, ds.num_train) for b in config.batch_sizes]
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"batch sizes repeat: {list(config.batch_sizes)} -> {sizes}")
    return sizes


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a batch size's budget is cut into compiled chunks, and after which chunks the
    replicas are evaluated.

    Small batches: an epoch is cut into ``chunks_per_epoch`` chunks of ``chunk_steps`` (the
    last padded with skipped steps), each followed by an evaluation. Large batches (few,
    costly steps): one step per chunk, evaluated on a schedule that is geometric early on
    (steps 1, 2, 3, ... growing by 10%: steps to target resolved to about 10% however
    early it comes) and uniform, at epoch ends, later.
    """

    steps_per_epoch: int
    chunk_steps: int
    chunks_per_epoch: int
    num_chunks: int
    evaluate: tuple[bool, ...]

    @property
    def total_steps(self) -> int:
        return self.num_chunks // self.chunks_per_epoch * self.steps_per_epoch

    def chunk_ends(self) -> list[int]:
        """Steps done at the end of each chunk (an epoch's last chunk may be shorter)."""
        k, s, m = self.chunk_steps, self.steps_per_epoch, self.chunks_per_epoch
        return list(itertools.accumulate(min(k, s - (c % m) * k) for c in range(self.num_chunks)))


STEP_CHUNKS_FROM_BATCH = 32  # from this batch size on, a step costs enough to be its own chunk


def layout(steps_per_epoch: int, budget: int, evals: int, batch_size: int) -> Layout:
    """Chooses chunks and evaluations: about ``evals`` uniform points over ``budget`` steps
    (rounded up to whole epochs), always at epoch ends, plus the early geometric points of
    large batches.

    Example:
      >>> lay = layout(1, 400, 100, 1437)  # full batch
      >>> lay.chunk_steps, [i + 1 for i, e in enumerate(lay.evaluate) if e][:14]  # then 16, 17, 19, ...
      (1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
      >>> layout(1437, 5748, 100, 1).chunk_steps  # B = 1: 25 chunks of 58 steps per epoch
      58
    """
    S = steps_per_epoch
    interval = max(1, math.ceil(budget / evals))
    epochs = math.ceil(budget / S)
    if batch_size < STEP_CHUNKS_FROM_BATCH and S > interval:
        m = math.ceil(S / interval)
        return Layout(S, math.ceil(S / m), m, m * epochs, (True,) * (m * epochs))
    total = epochs * S
    if interval >= S:  # every j-th epoch end
        j = max(1, round(interval / S))
        uniform = {t for t in range(j * S, total + 1, j * S)}
    else:
        uniform = set(range(interval, total + 1, interval)) | set(range(S, total + 1, S))
    geometric, t = set(), 1.0
    while t <= total:
        geometric.add(math.ceil(t))
        t = max(t * 1.1, math.ceil(t) + 1)
    marks = uniform | geometric | {total}
    return Layout(S, 1, S, total, tuple(step in marks for step in range(1, total + 1)))


def budget_steps(config: SweepConfig, steps_per_epoch: int) -> int:
    return max(config.budget_steps, config.budget_epochs * steps_per_epoch)


def chunk_batches(
    lay: Layout, chunk: int, batch_size: int, tables: Callable[[int], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host-side batches of chunk ``chunk``: ``idx [K, k, B]``, ``mask [k, B]``, ``active [k]``.

    ``tables(epoch)`` gives the epoch's batches of every replica, ``idx [K, steps, B]`` and
    the shared ``mask [steps, B]`` (``epoch_tables``; cut once per epoch, not per chunk).
    Masks are shared: padding sits at the same place in every replica's epoch.
    """
    k = lay.chunk_steps
    epoch, part = divmod(chunk, lay.chunks_per_epoch)
    idx, mask = tables(epoch)
    rows = slice(part * k, (part + 1) * k)
    idx, mask = idx[:, rows], mask[rows]
    real = mask.shape[0]
    active = np.arange(k) < real
    if real < k:  # the epoch's last chunk: pad with skipped steps
        idx = np.pad(idx, ((0, 0), (0, k - real), (0, 0)))
        mask = np.pad(mask, ((0, k - real), (0, 0)))
    return idx, mask, active


def epoch_tables(seeds: list[int], epoch: int, num_examples: int, batch_size: int, remainder: str):
    """Every replica's batches of ``epoch``, ``idx [K, steps, B]``, and the shared mask: one
    order and one table per distinct seed (replicas that differ only in learning rate share
    them)."""
    per_seed = {s: epoch_batches(epoch_order(s, epoch, num_examples), batch_size, remainder) for s in set(seeds)}
    return np.stack([per_seed[s][0] for s in seeds]), per_seed[seeds[0]][1]


def time_per_step(config: SweepConfig, ds: Dataset, batch_size: int, train, repeats: int = 5) -> dict[str, float]:
    """Single-model seconds per step at ``batch_size``: the median of ``repeats`` timed
    epochs (after one warm-up epoch), compile time apart. This, not the vmapped sweep, is
    what wall-clock time-to-target is scaled by."""
    loss_fn = loss_for_task(ds.task)
    state = init_train_state(_model(config, ds, 0), make_optimizer(config.optimizer, config.learning_rates[0]))
    epoch = make_epoch(make_train_step(loss_fn), ds.num_train, batch_size, remainder=config.remainder)
    n = ds.num_train
    program = compile_program(epoch, state, train, epoch_order(0, 0, n), donate_argnums=(0,))
    state, _ = program(state, train, jax.device_put(epoch_order(0, 0, n)))  # warm-up
    seconds = []
    for e in range(repeats):
        order = jax.device_put(epoch_order(0, e + 1, n))
        (state, _), dt = timed_call(program, state, train, order)
        seconds.append(dt)
    epoch_seconds = float(np.median(seconds))
    steps = steps_per_epoch(n, batch_size, config.remainder)
    return {
        "seconds_per_epoch": epoch_seconds,
        "seconds_per_epoch_spread": [float(min(seconds)), float(max(seconds))],
        "seconds_per_step": epoch_seconds / steps,
        "samples_per_second": n / epoch_seconds,
        "compile_seconds": program.compile_seconds,
    }


def _model(config: SweepConfig, ds: Dataset, seed: int):
    return make_model(config.model, ds.in_features, ds.outputs, seed=seed,
                      spatial_shape=ds.spatial_shape, widths=config.widths)  # fmt: skip


def run_batch_size(
    config: SweepConfig,
    ds: Dataset,
    batch_size: int,
    on_chunk: Callable[[int, int], None] | None = None,
    placed: tuple[Any, Any] | None = None,
    replica_batch: int | None | str = "auto",
) -> dict[str, Any]:
    """Trains every (learning rate x seed) replica at ``batch_size`` in one compiled program
    and returns the raw curves: per replica, evaluation points (step, epoch, train/test
    loss and accuracy), the mean mini-batch loss between evaluations, divergence (exact
    step) and the oscillation of its per-step losses; per batch size, the examples and
    updates per epoch as the compiled program counted them.
    ``placed``: the (train, test) data already on the device (``to_device``), shared by a
    sweep's batch sizes; placed here when omitted. ``replica_batch``: how many replicas
    run vmapped together ("auto": ``engine.replica_group``; None: all, as accelerators do)."""
    n = ds.num_train
    spe = steps_per_epoch(n, batch_size, config.remainder)
    lay = layout(spe, budget_steps(config, spe), config.evals, batch_size)
    grid = [(lr, seed) for lr in config.learning_rates for seed in config.seeds]
    lrs, seeds = [g[0] for g in grid], [g[1] for g in grid]

    loss_fn = loss_for_task(ds.task)
    evaluate = make_evaluate(make_eval_step(loss_fn, ds.task == "classification"))
    tx = make_optimizer(config.optimizer, config.learning_rates[0])
    states = init_replicas(lambda s: _model(config, ds, s), tx, seeds, lrs)
    carry = (states, jax.tree.map(np.copy, jax.device_get(states)), stack([init_guard()] * len(grid)))
    train, test = placed or (to_device(ds.x_train, ds.y_train), to_device(ds.x_test, ds.y_test))
    whole = batch_size == n and config.remainder == "keep"
    probe = functools.partial(gradient_moments, loss_fn=loss_fn) if config.noise_checkpoints else None
    chunk_fn = make_chunk(make_train_step(loss_fn), evaluate, whole=whole, probe=probe)
    probes = probe_chunks(lay, config.noise_checkpoints)
    tables = functools.lru_cache(maxsize=1)(  # every chunk of an epoch cuts from the same tables
        lambda epoch: epoch_tables(seeds, epoch, n, batch_size, config.remainder)
    )

    def batches(c: int):
        if whole:  # full batch ignores order and indices: send placeholders
            k = lay.chunk_steps
            return np.zeros((len(grid), k, 1), np.int32), np.ones((k, 1), bool), np.ones(k, bool)
        return chunk_batches(lay, c, batch_size, tables)

    group = replica_group(batch_size) if replica_batch == "auto" else replica_batch
    program = compile_program(
        chunk_fn, carry, train, test, *batches(0), np.bool_(True), np.bool_(False),
        in_axes=(0, None, None, 0, None, None, None, None), donate_argnums=(0,), replica_batch=group,
    )  # fmt: skip
    record = Recorder(len(grid), lay)
    start = time.perf_counter()
    for c in range(lay.num_chunks):
        idx, mask, active = batches(c)
        flags = np.bool_(lay.evaluate[c]), np.bool_(probes[c])
        carry, out = program(carry, train, test, idx, mask, active, *flags)
        record.chunk(c, out, active)  # device arrays, kept until the next evaluation
        if lay.evaluate[c]:
            record.evaluation(c, jax.device_get(out), probes[c])  # sync point: evaluations only
            if on_chunk is not None:
                on_chunk(c + 1, lay.num_chunks)
    wall = time.perf_counter() - start
    guard = jax.device_get(carry[2])
    result = _curves(grid, record, guard, n, batch_size, lay, program.compile_seconds, wall)
    result["counted"] = record.counted(guard)
    result["replica_batch"] = group
    return result


class Recorder:
    """Host-side bookkeeping of one batch size's run: evaluation points, noise probes, the
    per-epoch examples and updates the program counted, and each replica's oscillation."""

    def __init__(self, replicas: int, lay: Layout):
        self.lay = lay
        self.points: list[dict[str, Any]] = []
        self.noise: list[dict[str, Any]] = []
        self.pending: list[tuple[int, Any, np.ndarray]] = []
        self.steps_done = 0
        epochs = lay.num_chunks // lay.chunks_per_epoch
        self.examples = np.zeros(epochs, np.int64)  # replica 0's; masks are shared by all replicas
        self.updates = np.zeros((epochs, replicas), np.int64)  # update counter at each epoch's end
        self.uphill = np.zeros(replicas)
        self.moves = np.zeros(replicas)
        self.last = np.full(replicas, np.nan)  # the previous step's log loss

    def chunk(self, c: int, out: dict[str, Any], active: np.ndarray) -> None:
        self.steps_done += int(active.sum())
        self.pending.append((c, {k: out[k] for k in ("loss", "examples", "updates")}, active))

    def evaluation(self, c: int, out: dict[str, Any], probed: bool) -> None:
        losses = []
        for chunk, got, active in jax.device_get(self.pending):
            epoch = chunk // self.lay.chunks_per_epoch
            self.examples[epoch] += int(round(float(got["examples"][0])))
            self.updates[epoch] = got["updates"]
            losses.append(np.asarray(got["loss"], float)[:, active])
        self.pending.clear()
        losses = np.concatenate(losses, axis=1)
        self._oscillation(losses)
        with np.errstate(over="ignore", invalid="ignore"):  # a frozen replica's losses are NaN
            minibatch = losses.mean(axis=1)
        self.points.append({"step": self.steps_done, "train": out["train"], "test": out["test"],
                            "minibatch": minibatch})  # fmt: skip
        if probed:
            self.noise.append({"step": self.steps_done, **out["probe"]})

    def _oscillation(self, losses: np.ndarray) -> None:
        """Accumulates, per replica, how much of the per-step log loss's movement goes uphill
        (every step, so equally spaced at every batch size); NaN steps (frozen) add nothing."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.concatenate([self.last[:, None], np.log(losses)], axis=1)
            moves = np.diff(logs, axis=1)
        moves = np.where(np.isfinite(moves), moves, 0.0)
        self.uphill += np.clip(moves, 0, None).sum(1)
        self.moves += np.abs(moves).sum(1)
        self.last = logs[:, -1]

    def oscillation(self) -> list[float | None]:
        return [float(u / m) if m > 0 else None for u, m in zip(self.uphill, self.moves, strict=True)]

    def counted(self, guard: Any) -> dict[str, Any]:
        """What the compiled program counted per epoch: real examples used, and updates
        (the step counter's increase) of every replica that never diverged, as the distinct
        values they took (one value when they all agree)."""
        stable = ~np.asarray(guard.diverged)
        ends = self.updates[:, stable]
        per_epoch = np.diff(np.concatenate([np.zeros((1, ends.shape[1]), np.int64), ends]), axis=0)
        return {"examples_per_epoch": self.examples.tolist(),
                "updates_per_epoch": [sorted(set(row.tolist())) for row in per_epoch]}  # fmt: skip


def shape_demo(config: SweepConfig, ds: Dataset, batch_size: int, train: tuple[Any, Any]) -> dict[str, Any]:
    """Claim C11, demonstrated: compilations of a plain ``jax.jit`` step fed one epoch's
    batches as they come (the last one unpadded, hence smaller when B does not divide N)
    against jbatch's padded epoch called for two epochs (counted, never timed)."""
    n = ds.num_train
    loss_fn = loss_for_task(ds.task)
    state = init_train_state(_model(config, ds, 0), make_optimizer(config.optimizer, config.learning_rates[0]))
    idx, mask = epoch_batches(epoch_order(0, 0, n), batch_size, config.remainder)
    x, y = train
    batches = [Batch(x[i[m]], y[i[m]]) for i, m in zip(idx, mask, strict=True)]  # unpadded
    shapes = sorted({int(b.x.shape[0]) for b in batches})
    orders = [jax.device_put(epoch_order(0, e, n)) for e in range(2)]
    step = jax.jit(make_train_step(loss_fn))
    epoch = jax.jit(make_epoch(make_train_step(loss_fn), n, batch_size, remainder=config.remainder))
    jax.block_until_ready((batches, orders))
    with CompileCounter() as plain:
        s = state
        for b in batches:
            s, _ = step(s, b)
        jax.block_until_ready(s)
    with CompileCounter() as padded:
        s = state
        for order in orders:
            s, _ = epoch(s, train, order)
        jax.block_until_ready(s)
    return {"batch_shapes": shapes, "plain_step_compilations": plain.count, "padded_epoch_compilations": padded.count}


def probe_chunks(lay: Layout, count: int) -> tuple[bool, ...]:
    """Which evaluated chunks also measure the noise scale: ``count`` of them, nearest to
    log-spaced steps between the first evaluation and the end of the budget."""
    ends = lay.chunk_ends()
    evaluated = [c for c in range(lay.num_chunks) if lay.evaluate[c]]
    chosen = set()
    if count:
        for target in np.geomspace(ends[evaluated[0]], ends[-1], count):
            chosen.add(min(evaluated, key=lambda c: abs(math.log(ends[c] / target))))
    return tuple(c in chosen for c in range(lay.num_chunks))


def _round(v: float) -> float:
    """Six significant digits: float32 carries about seven, and the document stays small."""
    return float(f"{float(v):.6g}")


def _curves(grid, record: Recorder, guard, n, batch_size, lay, compile_seconds, wall) -> dict[str, Any]:
    spe = lay.steps_per_epoch
    points = record.points
    steps = [p["step"] for p in points]
    oscillation = record.oscillation()
    replicas = []
    for r, (lr, seed) in enumerate(grid):
        curve = {"step": steps, "epoch": [s / spe for s in steps]}
        for split in ("train", "test"):
            for metric in points[0][split]:
                curve[f"{split}_{metric}"] = [_round(p[split][metric][r]) for p in points]
        curve["minibatch_loss"] = [_round(p["minibatch"][r]) for p in points]
        diverged = bool(guard.diverged[r])
        replicas.append({
            "learning_rate": lr, "seed": seed, "curve": curve, "diverged": diverged,
            "diverged_at_step": int(guard.step[r]) if diverged else None, "oscillation": oscillation[r],
            "noise": {"step": [p["step"] for p in record.noise]} | {
                k: [_round(p[k][r]) for p in record.noise] for k in ("b_simple", "grad_sq", "trace_sigma")},
        })  # fmt: skip
    return {
        "batch_size": batch_size,
        "steps_per_epoch": spe,
        "budget_steps": lay.total_steps,
        "chunk_steps": lay.chunk_steps,
        "evaluations": len(points),
        "sweep_compile_seconds": compile_seconds,
        "sweep_seconds": wall,
        "replicas": replicas,
    }


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
    import json
    import tomllib
    from pathlib import Path

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
