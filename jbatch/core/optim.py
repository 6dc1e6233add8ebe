"""Optimizers whose swept hyperparameters are array leaves of their state.

``optax.inject_hyperparams`` stores a hyperparameter in the optimizer state, so a new
value is new data, not a new program: no recompilation, and ``jax.vmap`` can give each
replica its own (optax issue 577 is what happens otherwise). An optimizer here is a
*factory of hyperparameters*: ``factory(learning_rate=..., momentum=..., ...) ->
optax.GradientTransformation``; the sweep injects the ones it varies (learning rate,
momentum, beta2, weight decay, and a schedule's budget), the others stay Python constants.

Schedules are relative to each batch size's step budget (``with_schedule``): linear
warm-up over a fraction of it, then constant, linear or cosine decay to a final fraction
at its end. The budget is itself an injected hyperparameter, so batch sizes with other
budgets share one transformation. ``beta2_for_batch`` is the rule of Marek et al. (2025):
keep beta2's half-life in examples, ``beta2' = beta2 ** (B / B_ref)``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jbatch.config import SCHEDULES
from jbatch.core.engine import compile_program
from jbatch.errors import ConfigError, one_line, user_line

OptimizerFactory = Callable[..., optax.GradientTransformation]


def sgd(learning_rate: float) -> optax.GradientTransformation:
    """Plain stochastic gradient descent."""
    return optax.sgd(learning_rate)


def momentum(learning_rate: float, momentum: float = 0.9) -> optax.GradientTransformation:
    """Heavy-ball momentum (``momentum`` is the decay of the velocity)."""
    return optax.sgd(learning_rate, momentum=momentum)


def nesterov(learning_rate: float, momentum: float = 0.9) -> optax.GradientTransformation:
    """Nesterov momentum."""
    return optax.sgd(learning_rate, momentum=momentum, nesterov=True)


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
    """Adam (Kingma and Ba 2015)."""
    return optax.adam(learning_rate, b1=b1, b2=b2)


def adamw(learning_rate: float, b1: float = 0.9, b2: float = 0.999, weight_decay: float = 1e-4):
    """AdamW: Adam with decoupled weight decay (scaled by the learning rate, as optax does)."""
    return optax.adamw(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay)


# One explicit table of what ``jbatch.config.OPTIMIZERS`` names (or an import path).
OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adam": adam,
    "adamw": adamw,
}


def hyperparameters(factory: OptimizerFactory) -> dict[str, Any]:
    """The hyperparameters a factory takes, with their defaults (``learning_rate`` first,
    required); the values a sweep may vary."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {"learning_rate": None}
    if "learning_rate" not in params:
        raise ConfigError(f"optimizer factory {_name(factory)} takes no learning_rate argument")
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def check_hyperparameter(name: str, value: Any) -> float:
    """Refuses non-finite and non-positive hyperparameter values with a clear message
    (momentum and the decay rates must also be below 1)."""
    label = "learning rate" if name == "learning_rate" else name
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0 and name != "weight_decay" or v < 0:
        raise ConfigError(f"{label} must be a positive finite number, got {value!r}")
    if name in ("momentum", "b1", "b2") and v >= 1:
        raise ConfigError(f"{name} must be below 1, got {value!r}")
    return v


def check_learning_rate(learning_rate: float) -> float:
    """Refuses non-positive and non-finite learning rates with a clear message."""
    return check_hyperparameter("learning_rate", learning_rate)


def schedule_factor(count: jax.Array, budget: jax.Array, kind: str, warmup: float, final: float) -> jax.Array:
    """The learning-rate multiplier after ``count`` updates of a ``budget``-step run:
    linear warm-up over ``warmup * budget`` steps, then constant (``"constant"``) or
    linear / cosine decay to ``final`` at the end of the budget.

    Examples:
      >>> [round(float(schedule_factor(jnp.asarray(c), jnp.asarray(100.0), "linear", 0.1, 0.0)), 3)
      ...  for c in (0, 5, 10, 55, 100)]
      [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    t = count.astype(jnp.float32)
    budget = budget.astype(jnp.float32)
    w = jnp.maximum(warmup * budget, 1.0)
    ramp = jnp.minimum(t / w, 1.0) if warmup > 0 else 1.0
    if kind == "constant":
        return ramp * jnp.ones_like(t)
    progress = jnp.clip((t - warmup * budget) / jnp.maximum(budget - warmup * budget, 1.0), 0.0, 1.0)
    if kind == "linear":
        decay = 1.0 - (1.0 - final) * progress
    else:
        decay = final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return ramp * decay


def with_schedule(factory: OptimizerFactory, kind: str, warmup: float = 0.0, final: float = 0.0) -> OptimizerFactory:
    """``factory`` with its updates scaled by ``schedule_factor``; the step budget becomes a
    hyperparameter (``budget``) so that it can be set per batch size without a new
    transformation. ``"constant"`` with no warm-up is ``factory`` itself."""
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown schedule {kind!r}; known: {', '.join(SCHEDULES)}")
    if not 0 <= warmup < 1 or not 0 <= final <= 1:
        raise ConfigError(f"warm-up and final fractions must be in [0, 1), [0, 1], got {warmup}, {final}")
    if kind == "constant" and warmup == 0:
        return factory

    def scheduled(learning_rate, budget=1.0, **hyper):
        steps = jnp.asarray(budget, jnp.float32)  # an int budget too (strict dtype promotion)
        return optax.chain(
            factory(learning_rate=learning_rate, **hyper),
            optax.scale_by_schedule(lambda count: schedule_factor(count, steps, kind, warmup, final)),
        )

    scheduled.__signature__ = inspect.Signature(  # the factory's own hyperparameters, and the budget
        [
            *inspect.signature(factory).parameters.values(),
            inspect.Parameter("budget", inspect.Parameter.KEYWORD_ONLY, default=1.0),
        ]
    )
    scheduled.__qualname__ = f"{getattr(factory, '__qualname__', 'optimizer')}+{kind}"
    return scheduled


def beta2_for_batch(b2: float, batch_size: int, reference: int) -> float:
    """Adam's beta2 at ``batch_size`` that keeps the half-life, in examples, it has at the
    ``reference`` batch size (Marek et al. 2025): ``b2 ** (batch_size / reference)``.

    Examples:
      >>> round(beta2_for_batch(0.95, 1, 512), 5)
      0.9999
    """
    return float(b2 ** (batch_size / reference))


def inject(factory: OptimizerFactory, values: Mapping[str, float]) -> optax.GradientTransformation:
    """``factory`` with the hyperparameters ``values`` injected as state (their values are
    the initial ones; replicas then get their own with ``set_hyperparameters``). Every other
    argument stays a Python constant (optax's ``static_args``): a factory may compare its
    own numeric defaults (``warmup_steps=20``) in Python."""
    names = [k for k in _parameters(factory) if k not in values]
    try:
        return optax.inject_hyperparams(factory, static_args=names)(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer factory {_name(factory)} does not take {sorted(values)}: {e}") from None


def _parameters(factory: OptimizerFactory) -> list[str]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return []
    return [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def proportional(factory: OptimizerFactory) -> OptimizerFactory:
    """``factory``'s update at ``learning_rate=1`` (a Python constant), scaled by the
    learning rate: the same update wherever the factory's update is proportional to its
    learning rate (SGD, momentum, Adam, AdamW, and optax schedules that start and end at
    zero or at a fraction of it), for factories that use the learning rate in Python, as
    ``optax.warmup_cosine_decay_schedule(0.0, learning_rate, ...)`` does."""

    def scaled(learning_rate, **hyper):
        return optax.chain(factory(learning_rate=1.0, **hyper), optax.scale(learning_rate))

    scaled.__signature__ = inspect.signature(factory)
    scaled.__qualname__ = f"{getattr(factory, '__qualname__', 'optimizer')}*learning_rate"
    return scaled


# a traced hyperparameter used where Python needs a value (an `if`, a comparison, an int)
TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)


def _traces(
    factory: OptimizerFactory, values: Mapping[str, float], params: Any, traced: Any = None
) -> Exception | None:
    """None when ``factory`` initialises and updates with ``values`` injected (those named
    in ``traced``, default all; the others as Python constants) and traced (abstractly:
    nothing runs), else the error a traced value met."""
    traced = set(values if traced is None else traced)
    constants = {k: v for k, v in values.items() if k not in traced}
    names = [k for k in _parameters(factory) if k not in traced]
    tx = optax.inject_hyperparams(factory, static_args=names)(**{k: values[k] for k in traced}, **constants)
    try:
        jax.eval_shape(lambda p: tx.update(p, tx.init(p), p), params)
    except TRACER_ERRORS as e:
        return e
    return None


def named_arguments(factory: OptimizerFactory) -> OptimizerFactory:
    """``factory`` with a signature of named parameters only: ``optax.inject_hyperparams``
    would pass a ``**kwargs`` parameter on as an argument named ``kwargs``. What ``**kwargs``
    would take is then not injected (it cannot be swept), as optax's own factories have none.

    Examples:
      >>> def f(learning_rate, momentum=0.9, **kw): ...
      >>> list(inspect.signature(named_arguments(f)).parameters)
      ['learning_rate', 'momentum']
    """
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return factory
    named = [p for p in sig.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if len(named) == len(sig.parameters):
        return factory

    @functools.wraps(factory)
    def explicit(*args, **kw):
        return factory(*args, **kw)

    explicit.__signature__ = sig.replace(parameters=named)
    return explicit


def sweepable(
    factory: OptimizerFactory, values: Mapping[str, float], params: Any, learning_rates: Any, steps: int
) -> tuple[OptimizerFactory, str]:
    """``_sweepable``, with anything the user's factory raises (for a learning rate of the
    grid, at 1.0 where its update is scaled, or in its ``init``) as one ``ConfigError``."""
    try:
        return _sweepable(factory, values, params, learning_rates, steps)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"optimizer factory {_name(factory)} failed while jbatch checked how its hyperparameters enter it "
            f"({one_line(e)}): it must build an optax transformation, and initialise it, for every value of "
            f"the grid (learning rates {list(learning_rates)}) and for learning rate 1.0"
        ) from None


def _sweepable(
    factory: OptimizerFactory, values: Mapping[str, float], params: Any, learning_rates: Any, steps: int
) -> tuple[OptimizerFactory, str]:
    """The factory a sweep injects ``values`` into, so that every replica has its own, and
    how the learning rate enters it: ``factory`` itself ("injected") when its update traces
    with the values as arrays; ``proportional(factory)`` ("scaled") when only the learning
    rate is used in Python and the update is proportional to it (checked over ``steps``
    updates at the lowest and highest of ``learning_rates``, on ``params``' tree). Any
    other case is a ``ConfigError`` that names the hyperparameter and the line.

    Examples:
      >>> import optax
      >>> def warm_cosine(learning_rate, steps=100):  # the schedule compares its peak with 0 in Python
      ...     return optax.adam(optax.warmup_cosine_decay_schedule(0.0, learning_rate, 10, steps))
      >>> def linear(learning_rate, steps=100):
      ...     return optax.sgd(optax.linear_schedule(learning_rate, 0.0, steps))
      >>> with jax.numpy_dtype_promotion("standard"):  # optax's schedules mix Python floats and int32 counts
      ...     [sweepable(f, {"learning_rate": 0.1}, {"w": jnp.zeros(3)}, [0.01, 0.1], 20)[1] for f in (warm_cosine,
      ...                                                                                              linear)]
      ['scaled', 'injected']
    """
    error = _traces(factory, values, params)
    if error is None:
        return factory, "injected"
    scaled = proportional(factory)
    if _traces(scaled, values, params) is not None:  # another swept value is used in Python too
        for name in values:
            culprit = _traces(scaled, values, params, [name]) if name != "learning_rate" else None
            if culprit is not None:
                break
        else:  # only together: name them all
            culprit, name = error, ", ".join(k for k in values if k != "learning_rate")
        raise ConfigError(
            f"optimizer factory {_name(factory)} uses its swept hyperparameter {name!r} in "
            f"Python{user_line(culprit)} ({type(culprit).__name__}), so replicas cannot each have their "
            "own value: make it an array operation, or do not sweep it"
        )
    gap = _proportionality_gap(factory, values, params, learning_rates, steps)
    if gap > 1e-4:
        raise ConfigError(
            f"optimizer factory {_name(factory)} uses its learning rate in Python{user_line(error)} "
            f"and its update is not proportional to it (relative difference {gap:.2g} within {steps} "
            "steps), so replicas cannot each have their own learning rate: build schedules from it by "
            "multiplication (e.g. init and end values as fractions of it)"
        )
    return proportional(factory), "scaled"


def _proportionality_gap(factory, values, params, learning_rates, steps: int) -> float:
    """The largest difference, relative to the largest move, between the parameters' moves
    under ``factory(learning_rate=lr)`` built as given and under ``proportional(factory)``
    at ``lr`` (on ``params``' tree, every dimension cut to 2 or less), over ``steps``
    updates from bounded, varied gradients that do not depend on the parameters (so
    rounding is not amplified), at the lowest and the highest of ``learning_rates``."""
    others = {k: v for k, v in values.items() if k != "learning_rate"}
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(0), len(leaves))
    small = [tuple(min(d, 2) for d in v.shape) for v in leaves]  # the tree and its ranks, not its size: fast
    p0 = jax.tree.unflatten(
        tree, [jax.random.normal(k, s, v.dtype) for k, s, v in zip(keys, small, leaves, strict=True)]
    )

    def moves(tx: optax.GradientTransformation) -> jax.Array:
        def body(carry, t):
            p, s = carry
            u, s = tx.update(jax.tree.map(lambda v: jnp.sin(v * (t + 1.0)), p0), s, p)  # not from p: no feedback
            return (optax.apply_updates(p, u), s), None

        p = jax.lax.scan(body, (p0, tx.init(p0)), jnp.arange(steps, dtype=jnp.float32))[0][0]
        return jnp.concatenate([jnp.ravel(a - b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p0), strict=True)])

    def gaps() -> jax.Array:  # every learning rate in one program: one compilation, not four
        out = []
        for lr in (min(learning_rates), max(learning_rates)):
            given = moves(factory(learning_rate=lr, **others))
            scaled = moves(inject(proportional(factory), {"learning_rate": lr} | others))
            out.append(jnp.max(jnp.abs(given - scaled)) / jnp.maximum(jnp.max(jnp.abs(given)), 1e-30))
        return jnp.stack(out)

    return float(jnp.max(compile_program(gaps)()))


def make_optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """A built-in optimizer with its learning rate injected as state.

    Examples:
      >>> tx = make_optimizer("momentum", 0.1)
      >>> round(float(get_learning_rate(tx.init({"w": jnp.zeros(3)}))), 6)
      0.1
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}, or an import path pkg.mod:fn")
    return inject(OPTIMIZERS[name], {"learning_rate": check_learning_rate(learning_rate)})


def _hyperparams(opt_state: Any) -> dict[str, jax.Array]:
    # inject_hyperparams may sit inside a chain; find the first state that carries them.
    for s in jax.tree.leaves(opt_state, is_leaf=lambda s: hasattr(s, "hyperparams")):
        if hasattr(s, "hyperparams") and "learning_rate" in s.hyperparams:
            return s.hyperparams
    raise ConfigError(
        "the optimizer state has no injected learning rate: wrap the optimizer with"
        " optax.inject_hyperparams(...) to change or vmap its learning rate"
    )


def _injected_levels(opt_state: Any) -> list[dict[str, Any]]:
    """The ``hyperparams`` of every ``inject_hyperparams`` state in ``opt_state``, outermost
    first, the ones nested in another's ``inner_state`` included."""
    levels = []
    for s in jax.tree.leaves(opt_state, is_leaf=lambda s: hasattr(s, "hyperparams")):
        if hasattr(s, "hyperparams"):
            levels += [s.hyperparams, *_injected_levels(getattr(s, "inner_state", ()))]
    return levels


def get_learning_rate(opt_state: Any) -> jax.Array:
    """The learning rate stored in an ``inject_hyperparams`` optimizer state."""
    return _hyperparams(opt_state)["learning_rate"]


def set_hyperparameters(opt_state: Any, values: Mapping[str, float | jax.Array]) -> Any:
    """A copy of ``opt_state`` with new values of injected hyperparameters; same shapes, so
    nothing recompiles. Each one must have been injected. A value is set at every level that
    injects it: a user's factory that wraps its own optimizer in ``optax.inject_hyperparams``
    keeps the value jbatch passed it in its own state, and its update reads that one."""
    current = _hyperparams(opt_state)
    levels = _injected_levels(opt_state)
    replace = {}
    for name, value in values.items():
        if name not in current:
            raise ConfigError(f"hyperparameter {name!r} was not injected; injected: {', '.join(current)}")
        for old in (level[name] for level in levels if name in level):
            if isinstance(value, jax.Array):  # possibly traced: stay in jnp
                replace[id(old)] = jnp.asarray(value, dtype=old.dtype).reshape(old.shape)
            else:  # host values: a plain transfer, so not even an eager op gets compiled
                replace[id(old)] = jax.device_put(np.asarray(value, dtype=old.dtype).reshape(old.shape))
    return jax.tree.map(lambda leaf: replace.get(id(leaf), leaf), opt_state)


def set_learning_rate(opt_state: Any, learning_rate: float | jax.Array) -> Any:
    """A copy of ``opt_state`` with a new learning rate; same shapes, so nothing recompiles."""
    return set_hyperparameters(opt_state, {"learning_rate": learning_rate})
