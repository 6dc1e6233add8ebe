"""Your model, your data, your optimizer: ``jbatch.sweep`` on a model defined here (a small
residual CNN with LayerNorm on image-shaped arrays), the CLI by import path, swept
hyperparameters without recompiling, schedules, the beta2 rule, and every bad input as
one clear error with nothing written."""

import json
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jbatch
from jbatch.config import SweepConfig
from jbatch.core.engine import CompileCounter
from jbatch.core.optim import beta2_for_batch, get_learning_rate, inject, schedule_factor, with_schedule
from jbatch.errors import ConfigError
from jbatch.results import BatchSizeResult, convert, read_sweep
from jbatch.workloads.workload import resolve
from tests.helpers import run_cli, run_size


@pytest.fixture(scope="module")
def images(digits):
    """Digits as N x 8 x 8 x 1 images (the shape a convolutional model wants)."""
    shape = lambda x: x.reshape(-1, 8, 8, 1)  # noqa: E731
    return shape(digits.x_train[:256]), digits.y_train[:256], shape(digits.x_test[:100]), digits.y_test[:100]


@pytest.mark.slow
def test_cli_takes_a_model_and_an_optimizer_by_import_path(images, tmp_path, capsys, monkeypatch):
    module = tmp_path / "mymodels.py"
    module.write_text(
        textwrap.dedent("""
        import optax
        from flax import nnx

        class Tiny(nnx.Module):
            def __init__(self, seed):
                self.out = nnx.Linear(64, 10, rngs=nnx.Rngs(seed))
            def __call__(self, x):
                return self.out(x.reshape(x.shape[0], -1))

        def make(seed):
            return Tiny(seed)

        def lion(learning_rate, b1=0.9):
            return optax.lion(learning_rate, b1=b1)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "images.npz", x_train=images[0], y_train=images[1], x_test=images[2], y_test=images[3])
    code, out, err = run_cli(
        [
            "sweep",
            "--model",
            "mymodels:make",
            "--optimizer",
            "mymodels:lion",
            "--dataset",
            str(tmp_path / "images.npz"),
            "--batch-sizes",
            "16,full",
            "--lrs",
            "0.001,0.01",
            "--seeds",
            "0",
            "--target",
            "test_accuracy=0.5",
            "--budget-steps",
            "30",
            "--budget-epochs",
            "1",
            "--noise-checkpoints",
            "0",
            "--extend-grid",
            "0",
            "--results-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    doc = read_sweep(tmp_path / "images-make-lion")
    assert doc.config.workload.optimizer == "mymodels:lion" and set(doc.batch_sizes) == {"16", "256"}


@pytest.mark.slow
def test_swept_hyperparameters_are_vmapped_without_recompiling(tiny):
    small = SweepConfig.of(
        name="h",
        dataset="tiny",
        widths=(16,),
        optimizer="momentum",
        learning_rates=(0.1,),
        seeds=(0,),
        target_value=0.5,
        budget_steps=20,
        budget_epochs=1,
        evals=5,
        noise_checkpoints=0,
        extend_grid=0,
    )
    big = small.replace(learning_rates=(0.01, 0.1, 0.3), momentum=(0.5, 0.9, 0.99))
    counts = []
    for cfg in (small, big, small, big):  # the first two warm JAX's caches of eager operations
        with CompileCounter() as c:
            result = run_size(cfg, tiny, 32)
        counts.append(c.count)
    counts = counts[2:]
    assert counts[0] == counts[1]  # 9 settings x 1 seed: the same programs as 1 setting
    momenta = {r.hyperparameters["momentum"] for r in result.replicas}
    assert momenta == {0.5, 0.9, 0.99} and len(result.replicas) == 9
    loss = {(r.learning_rate, r.hyperparameters["momentum"]): r.curve.minibatch_loss[-1] for r in result.replicas}
    assert len(set(loss.values())) == 9  # every setting trained differently


def test_schedules_are_relative_to_each_budget():
    f = lambda c, b, kind, w=0.0, fin=0.0: float(schedule_factor(jnp.asarray(c), jnp.asarray(float(b)), kind, w, fin))  # noqa: E731
    assert f(50, 100, "cosine") == pytest.approx(0.5)
    assert f(50, 400, "cosine") == pytest.approx(0.5 * (1 + np.cos(np.pi / 8)))
    assert f(100, 100, "linear", 0.0, 0.1) == pytest.approx(0.1) and f(10, 100, "constant", 0.2) == pytest.approx(0.5)
    tx = inject(with_schedule(jbatch.core.optim.sgd, "linear", 0.0, 0.0), {"learning_rate": 1.0, "budget": 4.0})
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    steps = []
    for _ in range(4):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        steps.append(float(-updates["w"]))
    assert steps == pytest.approx([1.0, 0.75, 0.5, 0.25])  # linear decay to 0 over the 4-step budget
    assert float(get_learning_rate(state)) == 1.0  # the peak stays an injected leaf


@pytest.mark.slow
def test_beta2_rule_keeps_the_half_life_in_examples(tiny):
    assert beta2_for_batch(0.95, 512, 512) == pytest.approx(0.95)
    half = lambda b2, batch: np.log(0.5) / np.log(b2) * batch  # noqa: E731  half-life in examples
    assert half(beta2_for_batch(0.95, 1, 512), 1) == pytest.approx(half(0.95, 512))
    cfg = SweepConfig.of(
        name="b",
        dataset="tiny",
        widths=(16,),
        optimizer="adam",
        learning_rates=(1e-3,),
        seeds=(0,),
        target_value=0.5,
        budget_steps=10,
        budget_epochs=1,
        evals=5,
        noise_checkpoints=0,
        beta2_reference=300,
        extend_grid=0,
    )
    with jax.numpy_dtype_promotion("standard"):  # optax's adam: b2 ** count
        for b in (1, 300):
            rep = run_size(cfg, tiny, b).replicas[0]
            assert rep.hyperparameters["b2"] == pytest.approx(0.999 ** (b / 300))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "nowhere.models:make"}, "model 'nowhere.models:make': no module 'nowhere.models' in the current"),
        ({"model": "json:nothing_here"}, "model 'json:nothing_here': 'json' has no attribute 'nothing_here'"),
        ({"model": "json:__doc__"}, "names a str, not a callable"),
        ({"model": lambda seed: 1 / 0}, "model factory <lambda> raised ZeroDivisionError: division by zero"),
        ({"model": lambda seed: "a model"}, "returned a str, not an nnx.Module"),
        (
            {"model": lambda seed: nnx.Linear(64, 7, rngs=nnx.Rngs(seed))},
            r"output shape \(7,\) per row does not fit 10",
        ),
        ({"optimizer": lambda learning_rate: "adam"}, "returned a str, not an optax GradientTransformation"),
        ({"optimizer": "lion"}, "unknown optimizer 'lion'; known: sgd, momentum"),
        ({"optimizer": lambda lr: optax.sgd(lr)}, "takes no learning_rate argument"),
    ],
)
def test_bad_workloads_are_one_clear_error(digits, kwargs, message):
    arrays = (digits.x_train[:50], digits.y_train[:50], digits.x_test[:10], digits.y_test[:10])
    args = {"dataset": arrays, "model": "mlp", "optimizer": "sgd"} | kwargs
    with pytest.raises(ConfigError, match=message):
        resolve(args["dataset"], args["model"], args["optimizer"])


def test_labels_outside_the_classes_are_refused(digits):
    y = digits.y_train[:50].copy()
    y[3] = -1
    with pytest.raises(ConfigError, match="labels must be integers"):
        resolve((digits.x_train[:50], y, digits.x_test[:10], digits.y_test[:10]), "mlp", "sgd")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nowhere:make"], "no module 'nowhere' in the current directory"),
        (["--optimizer", "momentum", "--momentum", "0.9,1.5"], "momentum must be below 1, got 1.5"),
        (["--lrs", "0.1,inf"], "learning rate must be a positive finite number"),
        (["--optimizer", "sgd", "--momentum", "0.9"], "optimizer sgd has no hyperparameter 'momentum' to sweep"),
        (["--schedule", "exponential"], "invalid choice: 'exponential'"),
        (["--warmup", "1.5"], "warmup must be in [0, 1)"),
        (["--optimizer", "sgd", "--beta2-reference", "64"], "the beta2 rule needs an optimizer with a b2"),
    ],
)
def test_cli_bad_hyperparameters_are_one_line_exit_2_and_nothing_written(args, message, tmp_path, capsys):
    code, _, err = run_cli(["sweep", "--quick", "--results-dir", str(tmp_path), *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


# --- every best learning rate bracketed (grids that widen) -------------------------------


def _rep(lr, steps, diverged=False, seed=0):
    """A replica that reaches a 0.5 target at ``steps`` (never when None)."""
    pts = [0, 10, 20, 40, 80]
    acc = [0.1] + [0.9 if steps is not None and p >= steps else 0.2 for p in pts[1:]]
    return {
        "learning_rate": lr,
        "seed": seed,
        "diverged": diverged,
        "diverged_at_step": 5 if diverged else None,
        "curve": {"step": pts, "epoch": pts, "test_accuracy": acc, "test_loss": [2.0] * 5},
        "coarse": {"step": pts, "epoch": pts, "train_loss": [2.0, 1.0, 0.5, 0.3, 0.2]},
    }


def _result(reps):
    return convert(
        {
            "steps_per_epoch": 1,
            "batch_size": 1,
            "budget_steps": 80,
            "replicas": reps,
            "counted": {"examples_per_epoch": [1] * 100, "updates_per_epoch": []},
        },
        BatchSizeResult,
    )


@pytest.mark.parametrize(
    ("reps", "expected"),
    [
        ([_rep(0.01, 80), _rep(0.1, 20)], [0.3162, 1.0]),  # best at the top: go up
        ([_rep(0.01, 20), _rep(0.1, 40)], [0.003162, 0.001]),  # best at the bottom: go down
        ([_rep(0.01, 40), _rep(0.1, 20), _rep(1.0, 80)], []),  # interior: done
        ([_rep(0.01, 80), _rep(0.1, 20), _rep(0.3162, None, diverged=True)], []),  # the one beyond diverged: done
        ([_rep(0.01, 80), _rep(0.1, 20), _rep(0.3162, None)], []),  # the one beyond missed the target: done
    ],
)
def test_extension_widens_the_grid_only_past_an_edge(reps, expected):
    from jbatch.sweeps.grid import extension

    cfg = SweepConfig.of(target_value=0.5, learning_rates=tuple(sorted({r["learning_rate"] for r in reps})))
    more = extension(cfg, _result(reps), 2)
    assert [m["learning_rate"] for m in more] == expected


@pytest.mark.slow
def test_a_best_on_the_top_edge_is_extended_without_recompiling_and_resumes(tiny, tmp_path):
    from tests.helpers import sweep

    cfg = SweepConfig.of(
        name="x",
        dataset="tiny",
        widths=(16,),
        batch_sizes=(32,),
        learning_rates=(0.003, 0.01),
        seeds=(0, 1),
        target_value=0.5,
        budget_steps=40,
        budget_epochs=1,
        evals=10,
        noise_checkpoints=2,
        noise_unroll=1,
        extend_grid=3,
    )
    run_size(cfg, tiny, 32)  # warms JAX's caches of eager operations (model initialisation)
    with CompileCounter() as once:
        run_size(cfg.replace(extend_grid=0), tiny, 32)
    with CompileCounter() as extended:
        result = run_size(cfg, tiny, 32)
    assert extended.count == once.count  # the added learning rates ran in the same programs
    added = sorted({r.learning_rate for r in result.replicas if r.extension})
    assert added and min(added) > 0.01 and len(added) <= 3
    assert all(r.extension == 0 for r in result.replicas if r.learning_rate in (0.003, 0.01))
    from jbatch.analysis.summary import batch_size_summary

    row = batch_size_summary(result, "test_accuracy", 0.5, 300)["row"]
    assert row["extended"] == added and row["best_learning_rate"] > 0.01  # the optimum was past the old edge
    _, doc = sweep(cfg, tmp_path, tiny)
    again = json.loads((tmp_path / "x" / "sweep.json").read_text())
    assert [r["learning_rate"] for r in again["batch_sizes"]["32"]["replicas"]] == [
        r.learning_rate for r in result.replicas
    ]
    calls = []
    sweep(cfg, tmp_path, tiny, on_start=lambda b, s: calls.append(s))
    assert calls == [True]  # resumed: the extended batch size is finished, not redone


@pytest.mark.slow
def test_arrays_are_named_by_content_compare_with_the_cli_and_a_grown_grid_trains_only_what_is_new(
    digits, tmp_path, capsys, monkeypatch
):
    import jbatch.sweeps.driver
    from jbatch.workloads.data import fingerprint

    arrays = (digits.x_train[:120], digits.y_train[:120], digits.x_test[:60], digits.y_test[:60])
    kw = dict(
        batch_sizes=[8, "full"],
        seeds=[0],
        target=("test_accuracy", 0.6),
        results_dir=tmp_path,
        budget_steps=20,
        budget_epochs=1,
        evals=10,
        widths=(16,),
        noise_checkpoints=2,
        noise_unroll=1,
        extend_grid=0,
    )
    first = jbatch.sweep(model="mlp", data=arrays, learning_rates=[0.3], report=False, **kw)
    digest = fingerprint(*(a.astype(np.float32 if a.ndim > 1 else np.int32) for a in arrays))
    assert first.name == f"data-{digest[:8]}-mlp-sgd" and first.data_sha256 == digest
    assert "B=8: " in capsys.readouterr().err  # progress, as the CLI shows it
    seen = []
    real = jbatch.sweeps.driver.run_batch_size

    def spy(*args, previous=None, **kwargs):
        seen.append(len(previous.replicas) if previous else 0)
        return real(*args, previous=previous, **kwargs)

    monkeypatch.setattr(jbatch.sweeps.driver, "run_batch_size", spy)
    grown = jbatch.sweep(model="mlp", data=arrays, learning_rates=[0.3, 1.0], progress=False, report=False, **kw)
    assert seen == [1, 1] and not capsys.readouterr().out  # each batch size kept its finished run; silent
    for b, result in grown.batch_sizes.items():
        old, new = first.batch_sizes[b].replicas, result.replicas
        assert [r.learning_rate for r in new] == [0.3, 1.0] and new[0] == old[0]
    np.savez(tmp_path / "mine.npz", x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3])
    code, _, err = run_cli(
        [
            "sweep",
            "--dataset",
            str(tmp_path / "mine.npz"),
            "--widths",
            "16",
            "--batch-sizes",
            "8,full",
            "--lrs",
            "0.3,1.0",
            "--seeds",
            "0",
            "--target",
            "test_accuracy=0.6",
            "--budget-steps",
            "20",
            "--budget-epochs",
            "1",
            "--evals",
            "10",
            "--noise-checkpoints",
            "2",
            "--noise-unroll",
            "1",
            "--extend-grid",
            "0",
            "--results-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    code, out, err = run_cli(["compare", str(tmp_path / grown.name), str(tmp_path / "mine-mlp-sgd")], capsys)
    assert code == 0 and "| 8 |" in out, err  # one workload: the same arrays under two names


def test_quick_picks_batch_sizes_that_fit_a_small_data_set(tmp_path, capsys, monkeypatch):
    import jbatch.sweeps.driver

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((120, 4)).astype(np.float32), rng.integers(0, 3, 120)
    np.savez(tmp_path / "small.npz", x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    seen = []

    def stop(config, *args, **kw):
        seen.append(config.grid.batch_sizes)
        raise ConfigError("stopped before training")

    monkeypatch.setattr(jbatch.sweeps.driver, "run_sweep", stop)
    code, _, err = run_cli(["sweep", "--quick", "--dataset", str(tmp_path / "small.npz")], capsys)
    assert code == 2 and "stopped before training" in err and seen == [(1, 4, 16, 64, "full")]
