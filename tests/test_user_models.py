"""Models as users write them (issue 32): a ViT with attention dropout, a regression that
returns one value per row, a model that returns auxiliary outputs, a module or a class where
a factory belongs, labels that are not class ids. Each is accepted, or refused in one line
that says what to change."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jbatch.core.loss import mean_squared_error
from jbatch.errors import ConfigError
from jbatch.workloads.workload import resolve


class ViT(nnx.Module):
    """A vision transformer written the standard Flax way: 8 x 8 digits cut into four 4 x 4
    patches, attention with dropout and ``deterministic`` left to the module's mode."""

    def __init__(self, rngs: nnx.Rngs, width: int = 16):
        self.embed = nnx.Linear(16, width, rngs=rngs)
        self.pos = nnx.Param(jnp.zeros((4, width)))
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=2, in_features=width, dropout_rate=0.1, decode=False, rngs=rngs
        )
        self.head = nnx.Linear(width, 10, rngs=rngs)

    def __call__(self, x):
        patches = x.reshape(-1, 2, 4, 2, 4).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 16)
        h = self.embed(patches) + self.pos[...]
        h = h + self.attention(self.norm(h))
        return self.head(h.mean(axis=1))


class Regressor(nnx.Module):
    """One value per row, ``[B]``, as a regression on ``y`` of shape ``[N]`` is written."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden, self.out = nnx.Linear(4, 16, rngs=rngs), nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))[:, 0]


class WithAux(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        logits = self.out(x)
        return logits, {"norm": jnp.linalg.norm(logits)}


def _regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) + 0.1
    return x[:48], y[:48], x[48:], y[48:]


def test_a_vit_with_attention_dropout_is_accepted_and_passes_the_precheck(tiny):
    from jbatch.sweeps.precheck import precheck
    from jbatch.sweeps.session import Session
    from tests.helpers import tiny_config

    wl = resolve(tiny, lambda seed: ViT(nnx.Rngs(seed)), "adam")  # refused before: no `deterministic`
    assert wl.classification
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam, as users run it
        session = Session.open(tiny_config(batch_sizes=(32,), seeds=(0,)), wl)
        checks = precheck(session, [32])  # a training chunk (dropout on), an evaluation, a noise probe
    assert checks.batch_statistics is False and checks.inexact == []


def test_a_regression_returning_one_value_per_row_fits_targets_of_shape_n_and_trains(tmp_path):
    from jbatch.sweeps.driver import run_sweep
    from tests.helpers import tiny_config

    wl = resolve(_regression(), lambda seed: Regressor(nnx.Rngs(seed)), "sgd")  # refused before
    assert not wl.classification and wl.data.y_train.shape == (48, 1)
    cfg = tiny_config(
        batch_sizes=(16,),
        learning_rates=(0.05,),
        seeds=(0,),
        target_metric="test_loss",
        target_value=0.5,
        timing_rounds=2,
    )
    _, doc = run_sweep(cfg, tmp_path, workload=wl)
    loss = doc.result(16).replicas[0].curve.test_loss
    assert loss[-1] < 0.5 * loss[0]  # it learns the line (a B x B broadcast would not)


def test_the_built_in_mse_takes_b_outputs_for_b_by_1_targets_and_refuses_other_shapes():
    out, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([[1.0], [2.0], [4.0]])
    assert mean_squared_error(out, y).tolist() == [0.0, 0.0, 1.0]  # not a 3 x 3 broadcast
    with pytest.raises(ValueError, match="differ"):
        mean_squared_error(jnp.ones((3, 2)), y)


def test_a_regression_model_of_the_wrong_width_is_told_what_to_return():
    class Two(nnx.Module):
        def __init__(self, rngs):
            self.out = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x):
            return self.out(x)

    with pytest.raises(ConfigError) as e:
        resolve(_regression(), lambda seed: Two(nnx.Rngs(seed)), "sgd")
    message = str(e.value)
    assert "\n" not in message and "2 values per row" in message and "return [B] or [B, 1]" in message


@pytest.mark.parametrize("labels", ["float", "str"])
def test_labels_that_are_not_class_ids_are_named(tiny, labels):
    y = tiny.y_train.astype(np.float32 if labels == "float" else str)
    y_test = tiny.y_test.astype(y.dtype)
    data = (tiny.x_train, y, tiny.x_test, y_test)
    with pytest.raises(ConfigError) as e:
        resolve(data, lambda seed: nnx.Linear(64, 10, rngs=nnx.Rngs(seed)), "sgd")
    message = str(e.value)
    assert "\n" not in message and "integer" in message and "label" in message, message


def test_a_model_returning_outputs_and_auxiliaries_is_one_line(tiny):
    with pytest.raises(ConfigError) as e:
        resolve(tiny, lambda seed: WithAux(nnx.Rngs(seed)), "sgd")
    message = str(e.value)
    assert "\n" not in message and "tuple" in message and "return the outputs alone" in message


@pytest.mark.parametrize("given", ["instance", "class"])
def test_a_module_or_a_class_where_a_factory_belongs_shows_the_fix(tiny, given):
    model = ViT(nnx.Rngs(0)) if given == "instance" else ViT
    with pytest.raises(ConfigError) as e:
        resolve(tiny, model, optax.adam)
    message = str(e.value)
    assert "\n" not in message and len(message) < 300, message
    assert "factory seed -> module" in message and "lambda seed: ViT(nnx.Rngs(seed))" in message


class TextModel(nnx.Module):
    """Next-token scores from an embedding, as a character model is written."""

    def __init__(self, rngs: nnx.Rngs, vocab: int = 8):
        self.embed = nnx.Embed(vocab, 8, rngs=rngs)
        self.out = nnx.Linear(8, vocab, rngs=rngs)

    def __call__(self, tokens):
        return self.out(self.embed(tokens))


def test_token_ids_outside_the_embedding_are_refused_before_training():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, size=(40, 6))
    x[7, 3] = 9  # one id beyond the 8-entry table: nnx.Embed returns NaN for it
    data = (x[:32], x[:32] % 8, x[32:], x[32:] % 8)
    with pytest.raises(ConfigError) as e:
        resolve(data, lambda seed: TextModel(nnx.Rngs(seed)), "sgd")
    message = str(e.value)
    assert "\n" not in message and "0 to 9" in message and "8 entries" in message and "embed" in message
    assert "id 9" in message
    resolve((x[:32] % 8, x[:32] % 8, x[32:] % 8, x[32:] % 8), lambda seed: TextModel(nnx.Rngs(seed)), "sgd")


def _sgd_injected(learning_rate):
    """An optimizer as optax users write one whose hyperparameters they change in their loop."""
    return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=0.9)


def _sgd(learning_rate):
    return optax.sgd(learning_rate, momentum=0.9)


@pytest.mark.slow
def test_an_inject_hyperparams_optimizer_is_timed_and_trains_as_the_plain_one(tiny, tmp_path):
    from jbatch.sweeps.driver import run_sweep
    from tests.helpers import tiny_config

    cfg = tiny_config(batch_sizes=(32,), seeds=(0,), timing_rounds=2)
    model = lambda seed: nnx.Linear(64, 10, rngs=nnx.Rngs(seed))  # noqa: E731
    docs = [run_sweep(cfg, tmp_path / f.__name__, workload=resolve(tiny, model, f))[1] for f in (_sgd_injected, _sgd)]
    injected, plain = (d.result(32) for d in docs)
    assert injected.failures == {} and injected.timing is not None  # "donate the same buffer twice" before
    for a, b in zip(injected.replicas, plain.replicas, strict=True):  # each learning rate its own, as optax's
        assert a.learning_rate == b.learning_rate and a.curve.step == b.curve.step
        x, y = (np.array(r.curve.test_loss, dtype=float) for r in (a, b))  # None: not evaluated there
        both = ~np.isnan(x) & ~np.isnan(y)  # which fine points are evaluated follows the run's other replicas
        assert both.sum() >= 8 and both[-1]
        np.testing.assert_allclose(x[both], y[both], rtol=1e-5)


def test_a_failure_after_training_shows_in_the_table_the_last_lines_and_the_exit_status(tmp_path, capsys, monkeypatch):
    """The command's end, on a finished sweep whose timing failed (``clock.attempt`` records
    such failures: tests/test_stateful.py)."""
    import shutil

    from jbatch.analysis.summary import summarize, sweep_fit
    from jbatch.report.sweep import markdown_table
    from jbatch.results import SWEEP, dump, read_sweep
    from jbatch.sweeps import api
    from tests.helpers import run_cli

    directory = tmp_path / "sweep_small"
    shutil.copytree(Path(__file__).parent / "data" / "sweep_small", directory)
    doc = read_sweep(directory)
    doc.batch_sizes["8"].failures["timing"] = "RuntimeError: the machine's clock broke"
    dump(directory / SWEEP, doc)
    rows = summarize(doc)
    (directory / "table.md").write_text(markdown_table(doc, rows, sweep_fit(rows)))  # as write_report (no plots)

    monkeypatch.setattr(api, "run_sweep_config", lambda *a, **kw: (directory, doc))
    code, out, err = run_cli(["sweep", "--quick", "--results-dir", str(tmp_path)], capsys)
    assert code == 1  # was 0, the failure only in sweep.json
    last = err.strip().splitlines()[-2:]
    assert last[0] == "jbatch: B=8: the timing rounds failed: RuntimeError: the machine's clock broke"
    assert last[1].startswith("jbatch: 1 measurement(s) failed after training") and "the training is kept" in last[1]
    table = (directory / "table.md").read_text()
    assert "**Failed after training**" in table and "B=8: the timing rounds failed" in table


def _picky(learning_rate):  # fails for large rates only
    if float(learning_rate) > 0.05:
        raise RuntimeError("too big for me")
    return optax.sgd(learning_rate)


def _bad_init(learning_rate):
    def init(params):
        raise ValueError("bad init")

    return optax.GradientTransformation(init, optax.sgd(learning_rate).update)


def _with_kwargs(learning_rate, **kwargs):  # valid: optax.sgd(learning_rate, **kwargs)
    return optax.sgd(learning_rate, **kwargs)


@pytest.mark.parametrize(
    "factory, want",
    [(_picky, "RuntimeError: too big for me"), (_bad_init, "ValueError: bad init"), (_with_kwargs, None)],
)
def test_an_optimizer_factory_that_fails_for_some_rate_or_at_init_is_one_line_and_kwargs_are_accepted(
    tiny, factory, want
):
    from jbatch.sweeps.session import Session
    from tests.helpers import tiny_config

    wl = resolve(tiny, lambda seed: nnx.Linear(64, 10, rngs=nnx.Rngs(seed)), factory)
    config = tiny_config(learning_rates=(0.01, 0.3))
    if want is None:  # before: "sgd() got an unexpected keyword argument 'kwargs'", a traceback
        assert Session.open(config, wl).optimizer.learning_rate == "injected"
        return
    with pytest.raises(ConfigError) as e:  # before: a traceback from inside optax
        Session.open(config, wl)
    message = str(e.value)
    assert "\n" not in message and want in message and f"{factory.__name__} failed" in message
