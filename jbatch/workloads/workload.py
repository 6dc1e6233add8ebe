"""What a sweep trains, as one value: a model factory ``seed -> nnx.Module``, the data, the
loss, the metrics and an optimizer factory. The sweep receives a ``Workload`` and never
looks anything up by name; names in the CLI, config files and presets, and import paths
(``mypkg.models:make_resnet``), are resolved here, at the edge (``resolve``), once.

``check`` runs a new workload's factories once, before any training, so a bad model,
optimizer or data set is one clear error (naming what failed) instead of a traceback
halfway through a sweep.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jbatch.config import MODELS
from jbatch.core.loss import LOSSES, TASK_LOSS, LossFn, LossSum, summed
from jbatch.core.modes import set_mode
from jbatch.core.optim import OPTIMIZERS, OptimizerFactory, hyperparameters, named_arguments
from jbatch.errors import ConfigError, one_line
from jbatch.workloads.catalog import load_dataset
from jbatch.workloads.data import Dataset, fingerprint
from jbatch.workloads.model import make_model
from jbatch.workloads.transformer import make_transformer

ModelFactory = Callable[[int], nnx.Module]


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model factory, data, a loss and an optimizer factory: everything a sweep trains.

    Attributes:
      model: ``seed -> nnx.Module``; replicas with the same seed start from the same weights.
      data: the train/test arrays (``jbatch.workloads.data.Dataset``).
      loss: ``loss(outputs, targets) -> [B]``, one term per example (or token), as optax's losses.
      classification: whether accuracy is a metric (arg-max of the outputs against labels).
      optimizer: ``factory(learning_rate=..., **hyperparameters) -> optax transformation``.
      optimizer_name: how the optimizer is recorded (a built-in name or an import path).
    """

    model: ModelFactory
    data: Dataset
    loss: LossFn
    classification: bool
    optimizer: OptimizerFactory
    optimizer_name: str


def import_path(path: str, what: str) -> Callable[..., Any]:
    """The callable an import path ``package.module:attribute`` names (``what`` names it in
    errors): a path that does not import, or names nothing callable, is a ``ConfigError``."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{what} {path!r} is not a known name or an import path like package.module:function")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:  # as `python -m`, pytest and uvicorn do: modules beside you
        sys.path.insert(0, here)
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module.split(".")[0]:  # the module was found, and it imports something missing
            raise ConfigError(f"{what} {path!r}: importing {module!r} failed: {one_line(e)}") from None
        raise ConfigError(
            f"{what} {path!r}: no module {module!r} in the current directory ({here}) or on the "
            f"Python path: run jbatch where {module.split('.')[0]}.py (or its package) is, or "
            "install it (pip install -e .)"
        ) from None
    except SystemExit as e:  # a script's sys.exit() at import: it would end jbatch with no word
        raise ConfigError(
            f"{what} {path!r}: importing {module!r} called sys.exit({e.code!r}); guard the module's script "
            "part with `if __name__ == '__main__':`"
        ) from None
    except Exception as e:
        raise ConfigError(f"{what} {path!r}: cannot import {module!r} ({one_line(e)})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what} {path!r}: {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{what} {path!r} names a {type(obj).__name__}, not a callable")
    return obj


def _call(factory: Callable[..., Any], what: str, *args: Any, **kw: Any) -> Any:
    try:
        return factory(*args, **kw)
    except ConfigError:
        raise
    except Exception as e:
        name = getattr(factory, "__qualname__", repr(factory))
        given = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kw.items())])
        raise ConfigError(f"{what} factory {name} raised {one_line(e)} (called with {given})") from None


def build(wl: Workload, seed: int) -> nnx.Module:
    """The workload's model for ``seed``; a factory that raises or returns something else
    than an ``nnx.Module`` is a ``ConfigError`` that names it and the seed. A module class
    is a factory when it takes the seed; one that does not is told how to become one."""
    factory = wl.model
    if isinstance(factory, type) and issubclass(factory, nnx.Module):
        try:
            return factory(seed)
        except Exception as e:
            raise ConfigError(
                f"the model class {factory.__name__} cannot be built from a seed ({one_line(e)}): pass a factory "
                f"seed -> module, `lambda seed: {factory.__name__}(nnx.Rngs(seed))`"
            ) from None
    model = _call(wl.model, "model", seed)
    if not isinstance(model, nnx.Module):
        raise ConfigError(
            f"model factory {getattr(wl.model, '__qualname__', wl.model)} returned a "
            f"{type(model).__name__}, not an nnx.Module (seed {seed})"
        )
    return model


def check(wl: Workload) -> None:
    """Runs the factories once: the model must be an ``nnx.Module`` whose outputs fit the
    targets, the optimizer an optax transformation, the loss a ``LossSum``."""
    model = build(wl, 0)
    tx = _call(wl.optimizer, "optimizer", learning_rate=1e-3)
    if not isinstance(tx, optax.GradientTransformation):
        raise ConfigError(
            f"optimizer factory {wl.optimizer_name} returned a {type(tx).__name__}, not an optax GradientTransformation"
        )
    ds = wl.data
    x, y = jnp.asarray(ds.x_train[:2]), jnp.asarray(ds.y_train[:2])
    set_mode(model, "eval")  # as evaluations run it: a module's `deterministic` left to its mode is set
    _check_token_ids(model, ds)
    try:
        out = jax.eval_shape(lambda m, x: m(x), model, x)
    except Exception as e:
        raise ConfigError(
            f"the model cannot take the data's rows {tuple(ds.x_train.shape[1:])}: {one_line(e)}"
        ) from None
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ConfigError(
            f"the model returned a {type(out).__name__} ({_leaves(out)}), not one array: return the outputs alone "
            "(`return logits`, not `return logits, aux`); the loss takes one output array per row"
        )
    _check_outputs(wl, tuple(out.shape[1:]))
    try:
        total = jax.eval_shape(summed(wl.loss), out, y, None)
    except Exception as e:
        raise ConfigError(
            f"the loss cannot take the model's outputs {tuple(out.shape[1:])} and the targets "
            f"{tuple(y.shape[1:])} per row: {one_line(e)}"
        ) from None
    if not isinstance(total, LossSum):
        raise ConfigError(f"the loss returned a {type(total).__name__}, not one term per example")


def _check_token_ids(model: nnx.Module, ds: Dataset) -> None:
    """Integer inputs index the model's ``nnx.Embed`` tables: an id outside a table gives NaN
    (XLA's out-of-range gather fills), which would read as divergence. When the data's ids
    run past a table of the model (or below 0), the model, in eval mode, runs once on the row
    that holds the extreme id; non-finite outputs are refused before training. (A table
    indexed by something else, such as positions, is then not blamed.)"""
    if not np.issubdtype(ds.x_train.dtype, np.integer):
        return
    embeds = [(".".join(map(str, p)), m.num_embeddings) for p, m in nnx.iter_modules(model) if isinstance(m, nnx.Embed)]
    if not embeds:
        return
    low = int(min(ds.x_train.min(initial=0), ds.x_test.min(initial=0)))
    high = int(max(ds.x_train.max(initial=0), ds.x_test.max(initial=0)))
    short = [(name, size) for name, size in embeds if low < 0 or high >= size]
    if not short:
        return  # the common case: no copy of the data, no model call
    x = np.concatenate([ds.x_train, ds.x_test])
    rows = x.reshape(len(x), -1)
    data = x[[int(np.argmax(rows.max(axis=1))), int(np.argmin(rows.min(axis=1)))]]
    try:
        finite = bool(np.isfinite(np.asarray(model(jnp.asarray(data)), dtype=np.float64)).all())
    except Exception:
        return  # the shape check that follows says what is wrong with the model
    if not finite:
        name, size = short[0]
        raise ConfigError(
            f"the data's token ids run from {low} to {high}, but the model's nnx.Embed {name or '(the model)'} "
            f"has {size} entries (ids 0..{size - 1}), and the row holding id {high if high >= size else low} "
            f"gives non-finite outputs: give the embedding num_embeddings={high + 1} or more, or map the ids "
            "into its range"
        )


def _leaves(tree: Any) -> str:
    return ", ".join(f"{getattr(v, 'dtype', '?')}{list(getattr(v, 'shape', ()))}" for v in jax.tree.leaves(tree))


def _check_outputs(wl: Workload, row: tuple[int, ...]) -> None:
    """A model's outputs per row (``row``) must fit the data: a classifier gives one score
    per class (per token for sequences); a regression one value per target, where one value
    per row (``[B]``) fits targets ``[N]`` (kept as ``[N, 1]``) too."""
    ds = wl.data
    target = tuple(ds.y_train.shape[1:])
    if wl.classification:
        want = (*target, ds.outputs)
        if row != want:
            raise ConfigError(
                f"the model's output shape {row} per row does not fit {ds.outputs} classes: expected {want} "
                f"(one score per class{' per token' if target else ''})"
            )
        return
    if row == target or (row == () and target == (1,)):
        return
    if target == (1,) and len(row) == 1 and row[0] > 1:  # a classifier's scores against float labels
        raise ConfigError(
            f"the model gives {row[0]} values per row, but the targets are {ds.y_train.dtype} values, one per "
            f"row (a regression); for {row[0]} classes give the labels as integer class ids 0..{row[0] - 1} "
            "(y.astype(int)), or return [B] or [B, 1] for a regression"
        )
    shape = f"[B, {', '.join(map(str, target))}]"
    also = " or [B]" if target == (1,) else ""
    raise ConfigError(
        f"the model's output shape {row} per row does not fit the regression targets {target}: "
        f"return {shape}{also} (one value per target)"
    )


# width, depth, heads; nanogpt-cpu / -gpu: the sizes of nanoGPT's shakespeare_char CPU and GPU settings
TRANSFORMERS = {
    "transformer": (32, 2, 2),
    "transformer-wide": (256, 4, 8),
    "nanogpt-cpu": (128, 4, 4),
    "nanogpt-gpu": (384, 6, 6),
}


def builtin_model(name: str, ds: Dataset, widths: tuple[int, ...]) -> ModelFactory:
    """``seed -> model`` for one of jbatch's models (``jbatch.config.MODELS``) on ``ds``."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(MODELS)}, or an import path pkg.mod:factory")
    if name in TRANSFORMERS:
        if ds.x_train.ndim != 2 or not np.issubdtype(ds.x_train.dtype, np.integer):
            raise ConfigError(f"model {name!r} needs token sequences [N, T] of integer ids, got {ds.x_train.shape}")
        return make_transformer(ds.outputs, ds.x_train.shape[1], *TRANSFORMERS[name])
    make_model(name, ds.in_features, ds.outputs, spatial_shape=ds.spatial_shape, widths=widths)  # checks the name
    return lambda seed: make_model(
        name, ds.in_features, ds.outputs, seed=seed, spatial_shape=ds.spatial_shape, widths=widths
    )


def resolve(
    dataset: str | Dataset | tuple,
    model: str | ModelFactory,
    optimizer: str | OptimizerFactory,
    loss: str | LossFn | None = None,
    widths: tuple[int, ...] = (256, 256),
) -> Workload:
    """A checked workload from names, import paths, values or arrays:

    * ``dataset``: a built-in name, ``mnist1d:N``, an ``.npz`` path, a ``Dataset``, or the
      arrays ``(x_train, y_train, x_test, y_test)`` (integer ``y``: classification);
    * ``model``: ``linear``/``mlp``/``cnn``, an import path, or a factory ``seed -> module``;
    * ``optimizer``: a name of ``optim.OPTIMIZERS``, an import path, or a factory;
    * ``loss``: ``"cross_entropy"``/``"mse"``, an import path, or a per-example function
      ``(outputs, targets) -> [B]`` (an optax loss); by default the data's task's.
    """
    ds = _dataset(dataset)
    model_fn = (
        builtin_model(model, ds, tuple(widths))
        if isinstance(model, str) and ":" not in model
        else import_path(model, "model")
        if isinstance(model, str)
        else model
    )
    if isinstance(model_fn, nnx.Module):
        name = type(model_fn).__name__
        raise ConfigError(
            f"the model must be a factory seed -> module (each seed builds its own), got a built {name}: "
            f"pass `lambda seed: {name}(nnx.Rngs(seed))`"
        )
    if isinstance(optimizer, str):
        if ":" not in optimizer and optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}, or an import path pkg.mod:factory"
            )
        opt_fn = OPTIMIZERS.get(optimizer) or named_arguments(import_path(optimizer, "optimizer"))
        opt_name = optimizer
    else:
        opt_fn, opt_name = (
            named_arguments(optimizer),
            f"{optimizer.__module__}:{getattr(optimizer, '__qualname__', optimizer)}",
        )
    hyperparameters(opt_fn)  # takes a learning rate
    if loss is None or isinstance(loss, str) and ":" not in loss:
        name = TASK_LOSS[ds.task] if loss is None else loss
        if name not in LOSSES:
            raise ConfigError(
                f"unknown loss {loss!r}; known: {', '.join(LOSSES)}, an import path pkg.mod:fn, or a "
                "per-example function (outputs, targets) -> [B]"
            )
        loss_fn, classification = LOSSES[name], name == "cross_entropy"
    else:
        loss_fn = import_path(loss, "loss") if isinstance(loss, str) else loss
        classification = ds.task == "classification"
    wl = Workload(model_fn, ds, loss_fn, classification, opt_fn, opt_name)
    check(wl)
    return wl


def for_config(config: Any, dataset: Dataset | None = None) -> Workload:
    """The workload a config's ``workload`` group names (dataset, model, optimizer, loss,
    widths); ``dataset`` in place of the named one (tests, notebooks)."""
    w = config.workload
    return resolve(dataset if dataset is not None else w.dataset, w.model, w.optimizer, w.loss or None, w.widths)


def with_floor(config: Any, wl: Workload) -> Any:
    """``config`` with ``target_value`` set to the data's exact loss floor plus
    ``target_over_floor`` (languages, ``jbatch.workloads.language``), unchanged when that is 0."""
    target = config.target
    if not target.over_floor:
        return config
    floor = (wl.data.info or {}).get("floor")
    if floor is None or not target.metric.endswith("loss"):
        raise ConfigError("target_over_floor needs a loss target and a data set with a known floor (a language)")
    return config.replace(target_value=float(f"{floor + target.over_floor:.4f}"))


def _dataset(dataset: str | Dataset | tuple) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, str):
        return load_dataset(dataset)
    try:
        x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in dataset)
    except (TypeError, ValueError):
        raise ConfigError("data must be a name, a Dataset, or (x_train, y_train, x_test, y_test)") from None
    if y_tr.dtype.kind not in "biuf" or y_te.dtype.kind not in "biuf":
        example = f" such as {y_tr.flat[0]!r}" if y_tr.size else ""
        raise ConfigError(
            "labels must be numbers: integer class ids 0..C-1 for classification, floats for a regression; "
            f"got {y_tr.dtype} labels{example}"
        )
    if np.issubdtype(y_tr.dtype, np.integer):
        if y_tr.size and (y_tr.min() < 0 or y_te.min() < 0):
            raise ConfigError("labels must be integers in [0, classes): found a negative label")
        classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
        dtype = np.int32 if np.issubdtype(x_tr.dtype, np.integer) else np.float32  # token ids stay integers
        arrays = (x_tr.astype(dtype), y_tr.astype(np.int32), x_te.astype(dtype), y_te.astype(np.int32))
        return Dataset(_name(arrays), *arrays, task="classification", outputs=classes)
    y_tr, y_te = (y.reshape(len(y), -1).astype(np.float32) for y in (y_tr, y_te))
    arrays = (x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te)
    return Dataset(_name(arrays), *arrays, task="regression", outputs=y_tr.shape[1])


def _name(arrays: tuple[np.ndarray, ...]) -> str:
    """Arrays passed in are named by their content: the same arrays, the same name."""
    return f"data-{fingerprint(*arrays)[:8]}"
