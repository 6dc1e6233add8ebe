"""The sweep: cadence layout, target detection, best learning rate, divergence, equivalence
with plain training, and the resumable, refusing results directory."""

import dataclasses
import functools
import json

import msgspec
import numpy as np
import pytest

from jbatch.analysis.selection import best_setting, first_reach, replica_summary, series
from jbatch.config import TrainConfig, from_mapping
from jbatch.core.batching import steps_per_epoch
from jbatch.errors import ConfigError
from jbatch.results import SWEEP as DOCUMENT
from jbatch.results import BatchSizeResult, Replica, convert
from jbatch.sweeps.cadence import chunk_batches, epoch_tables, layout, probe_chunks
from jbatch.sweeps.train import train_and_evaluate
from tests.helpers import run_size, sweep, tiny_config


def best_lr(summaries):
    """The best setting's learning rate (``selection.best_setting``)."""
    return dict(best_setting(summaries))["learning_rate"]


def _config(**kw):
    """The shared tiny sweep with one seed, a learning rate that diverges, two epochs."""
    return tiny_config(**{"learning_rates": (0.1, 1e4), "seeds": (0,), "budget_steps": 20, "budget_epochs": 2} | kw)


# --- cadence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spe", "budget", "evals", "b"),
    [
        (1, 400, 100, 1437),
        (1437, 5748, 100, 1),
        (45, 400, 100, 32),
        (90, 400, 100, 16),
        (6, 400, 100, 256),
        (10, 20, 3, 4),
    ],
)
def test_layout_evaluates_at_every_epoch_end_or_cadence_and_covers_the_budget(spe, budget, evals, b):
    lay = layout(spe, budget, evals, b)
    assert lay.total_steps >= budget and lay.total_steps % spe == 0  # whole epochs
    assert len(lay.evaluate) == lay.num_chunks and lay.evaluate[-1]
    ends = np.asarray(lay.chunk_ends())
    assert ends[-1] == lay.total_steps and set(range(spe, lay.total_steps + 1, spe)) <= set(ends.tolist())
    assert all(0 < n <= lay.chunk_steps and first + n <= spe for _, first, n in lay.chunks)  # none spans two epochs
    evaluated = ends[np.asarray(lay.evaluate)]
    gaps = np.diff(np.concatenate([[0], evaluated]))
    assert gaps.max() <= max(spe, int(np.ceil(budget / evals)))  # the uniform cadence holds throughout
    assert all(e % spe == 0 for e in ends[~np.asarray(lay.evaluate)])  # a call ends unmeasured only at an epoch end
    if b >= 32:
        assert list(evaluated[:10]) == list(range(1, 11))  # large batches: fine resolution early
        assert lay.num_chunks < lay.total_steps or spe == 1  # but not one call per step
    else:
        assert all(lay.evaluate) and max(n for _, _, n in lay.chunks) == lay.chunk_steps


def test_chunks_of_an_epoch_visit_every_example_once():
    n, b = 50, 3  # 17 steps per epoch, the last of 2 examples
    lay = layout(steps_per_epoch(n, b), 34, 6, b)
    per_epoch = [[c for c, chunk in enumerate(lay.chunks) if chunk[0] == e] for e in range(2)]
    assert len(per_epoch[0]) > 1
    calls = []

    def tables(epoch):
        calls.append(epoch)
        return epoch_tables([0, 1, 0], epoch, n, b, "keep")

    cached = functools.lru_cache(maxsize=1)(tables)
    for epoch in range(2):
        seen = [[], [], []]
        for c in per_epoch[epoch]:
            idx, mask, active = chunk_batches(lay, c, b, cached)
            assert idx.shape == (3, lay.chunk_steps, b) and mask.shape == (lay.chunk_steps, b)
            for r in range(3):
                seen[r] += idx[r][active][mask[active]].tolist()
        assert all(sorted(s) == list(range(n)) for s in seen)
        assert seen[0] == seen[2] != seen[1]  # a replica's batches depend on its seed alone
    assert calls == [0, 1]  # each epoch's tables are cut once, not once per chunk


# --- targets and best learning rate -----------------------------------------------------


def _replica(values, lr=0.1, diverged_at=None, metric="test_accuracy"):
    steps = [10 * (i + 1) for i in range(len(values))]
    curve = {
        "step": steps,
        "epoch": [s / 10 for s in steps],
        metric: values,
        "train_loss": [1.0] * len(values),
        "test_loss": [1.0 - 0.01 * i for i in range(len(values))],
    }
    return convert(
        {
            "learning_rate": lr,
            "seed": 0,
            "curve": curve,
            "diverged": diverged_at is not None,
            "diverged_at_step": diverged_at,
        },
        Replica,
    )


RESULT = convert(
    {
        "steps_per_epoch": 10,
        "counted": {"examples_per_epoch": [95] * 5, "updates_per_epoch": []},
        "batch_size": 10,
        "budget_steps": 50,
        "replicas": [{"learning_rate": 0.1, "seed": 0, "curve": {}}],
    },
    BatchSizeResult,
)


def test_target_is_the_first_crossing():
    s = replica_summary(_replica([0.5, 0.8, 0.96, 0.93, 0.97]), RESULT, "test_accuracy", 0.95)
    assert s["reached"] and s["steps_to_target"] == 30 and s["epochs_to_target"] == 3.0
    assert s["examples_to_target"] == 3 * 95  # whole epochs count their real (partial) size
    assert first_reach([3.0, 0.2, 0.05], 0.1, higher=False) == 2


def test_target_never_reached_is_reported_as_such():
    s = replica_summary(_replica([0.5, 0.8, 0.9]), RESULT, "test_accuracy", 0.95)
    assert not s["reached"] and s["steps_to_target"] is None and s["examples_to_target"] is None


def test_a_crossing_after_divergence_does_not_count():
    s = replica_summary(_replica([0.5, 0.5, 0.99], diverged_at=20), RESULT, "test_accuracy", 0.95)
    assert s["diverged"] and not s["reached"]


def test_best_learning_rate_skips_a_diverged_replica():
    rows = [
        {"learning_rate": 0.1, "reached": True, "steps_to_target": 300, "final_test_loss": 0.2},
        {"learning_rate": 0.1, "reached": True, "steps_to_target": 340, "final_test_loss": 0.25},
        {"learning_rate": 1.0, "reached": True, "steps_to_target": 100, "final_test_loss": 0.3},
        {"learning_rate": 1.0, "reached": False, "steps_to_target": None, "final_test_loss": None},  # diverged
        {"learning_rate": 0.3, "reached": True, "steps_to_target": 200, "final_test_loss": 0.2},
        {"learning_rate": 0.3, "reached": True, "steps_to_target": 200, "final_test_loss": 0.2},
    ]
    rows = [r | {"stable": r["reached"]} for r in rows]
    assert best_lr(rows) == 0.3  # fewest steps among LRs where every seed reached
    tied = [dict(r, steps_to_target=200) for r in rows if r["learning_rate"] != 1.0]
    assert best_lr(tied) == 0.3  # a tie goes to the lower final test loss


# --- running ----------------------------------------------------------------------------


def _first_exploded_update(losses):
    """Independently of jbatch.core.guard: the update that produced the first state whose loss
    is non-finite or 1000x the first loss (``losses[i]`` is the loss of the state after i updates)."""
    for i, v in enumerate(losses):
        if not np.isfinite(v) or v > 1e3 * losses[0]:
            return i
    return None


@pytest.mark.parametrize(
    ("b", "replica_batch"),  # lax.map groups (CPU) and all-vmap (accelerators); one case in the fast tier
    [
        (32, "auto"),
        *(
            pytest.param(b, r, marks=pytest.mark.slow)
            for b, r in [(1, "auto"), (300, "auto"), (1, None), (32, None), (300, None)]
        ),
    ],
)
def test_exploding_replicas_freeze_finite_at_the_exact_step_and_the_others_go_on(tiny, b, replica_batch):
    cfg = _config(learning_rates=(0.01, 3.0, 1e4), budget_steps=30)
    result = run_size(cfg, tiny, b, replica_batch=replica_batch, prune=False)  # frozen replicas evaluated too
    by_lr = {r.learning_rate: r for r in result.replicas}
    good = by_lr[0.01]
    _, train_loss = series(good, "train_loss")
    assert not good.diverged and all(np.isfinite(train_loss))
    assert train_loss[-1] < train_loss[0]
    for lr in (3.0, 1e4):
        bad = by_lr[lr]
        assert bad.diverged
        # the exact update, from a plain run of the same batches (per-step losses of train_and_evaluate)
        epochs = result.budget_steps // result.steps_per_epoch
        plain = train_and_evaluate(
            TrainConfig.of(dataset="tiny", widths=(16,), batch_size=b, epochs=epochs, learning_rate=lr), dataset=tiny
        )
        losses = [v for e in plain.epochs for v in e.step_losses]
        assert bad.diverged_at_step == _first_exploded_update(losses)
        # frozen: every evaluation after its divergence sees the same finite weights
        for key in ("train_loss", "test_loss", "test_accuracy"):
            steps, values = series(bad, key)
            frozen = np.array(
                [v for st, v in zip(steps, values, strict=True) if st > bad.diverged_at_step and v is not None], float
            )
            assert len(frozen) >= 2, (lr, key)
            assert np.all(np.isfinite(frozen)), (lr, key, frozen)
            assert np.all(frozen == frozen[0])
        assert bad.curve.minibatch_loss[-1] is None  # a frozen replica trains nothing
    if replica_batch == "auto":  # a sweep evaluates a frozen replica no more: its later points would repeat
        lean = {r.learning_rate: r for r in run_size(cfg, tiny, b).replicas}
        for lr in (3.0, 1e4):
            after = [
                v
                for key in ("train_loss", "test_loss")
                for st, v in zip(*series(lean[lr], key), strict=True)
                if st > lean[lr].diverged_at_step
            ]
            assert after and all(v is None for v in after)


def test_a_non_finite_first_loss_freezes_at_the_initial_state(tiny):
    x = tiny.x_train.copy()
    x[:] = 3e38  # finite inputs whose very first forward pass overflows
    huge = dataclasses.replace(tiny, x_train=x)
    result = run_size(_config(learning_rates=(0.1,)), huge, 300)
    rep = result.replicas[0]
    assert rep.diverged and rep.diverged_at_step == 0


def test_the_program_counts_examples_and_updates_per_epoch(tiny):
    for b, drop in ((32, "keep"), (32, "drop"), (300, "keep")):
        result = run_size(_config(remainder=drop, budget_steps=1, budget_epochs=2), tiny, b)
        counted = result.counted
        if drop == "keep":
            assert counted.examples_per_epoch == [300, 300]
            assert counted.updates_per_epoch == [[-(-300 // b)]] * 2
        else:
            assert counted.examples_per_epoch == [288, 288]  # 9 full batches of 32
            assert counted.updates_per_epoch == [[9], [9]]


@pytest.fixture(scope="module")
def plain_run(tiny):
    """``plain_run(b, lr, seed)``: train_and_evaluate of one replica, 3 epochs (cached)."""

    @functools.cache
    def run(b, lr, seed):
        return train_and_evaluate(
            TrainConfig.of(
                dataset="tiny", widths=(16,), batch_size=b, epochs=3, learning_rate=lr, seed=seed, optimizer="momentum"
            ),
            dataset=tiny,
        )

    return run


@pytest.mark.parametrize(
    ("b", "replica_batch"),  # CPU's lax.map groups, and all-vmap as accelerators run; one case in the fast tier
    [(32, None), *(pytest.param(b, r, marks=pytest.mark.slow) for b, r in [(16, "auto"), (16, None), (32, "auto")])],
)
def test_sweep_training_equals_plain_training_for_every_replica(tiny, plain_run, b, replica_batch):
    # Chunks with skipped steps (B=16: 19 steps per epoch cut 7 + 7 + 5; B=32: 1 to 3 steps
    # up to the next evaluation), vmapped replicas and the divergence guard must not change what a replica
    # computes: compare every replica with its own train_and_evaluate, epoch by epoch.
    # momentum: a skipped step that ran anyway would still move the weights
    # an unreachable target keeps the test split evaluated at every fine point (epoch ends included)
    cfg = _config(
        learning_rates=(0.1, 0.3),
        seeds=(0, 1),
        budget_steps=1,
        budget_epochs=3,
        evals=7,
        optimizer="momentum",
        noise_checkpoints=3,
        noise_unroll=1,
        target_value=1.01,
    )
    result = run_size(cfg, tiny, b, replica_batch=replica_batch, prune=False)
    assert result.chunk_steps == (7 if b == 16 else 3)  # B=32: calls of 1 to 3 steps, up to the next evaluation
    assert result.replica_batch == (1 if replica_batch == "auto" else None)
    assert len(result.replicas) == 4
    probed = [rep for rep in result.replicas if rep.noise]  # the best learning rate's seeds
    assert len(probed) == 2 and all(len(r.noise.step) == 3 and all(v > 0 for v in r.noise.b_simple) for r in probed)
    start = {seed: _evaluate_fresh(cfg, tiny, seed) for seed in cfg.grid.seeds}  # step 0 is evaluated once per seed
    assert abs(start[0]["test"] - start[1]["test"]) > 1e-3 * start[0]["test"]  # so a mix-up of seeds shows
    for rep in result.replicas:  # six significant digits stored
        np.testing.assert_allclose(rep.curve.test_loss[0], start[rep.seed]["test"], rtol=1e-5)
        np.testing.assert_allclose(rep.coarse.train_loss[0], start[rep.seed]["train"], rtol=1e-5)
        plain = plain_run(b, rep.learning_rate, rep.seed)
        ends = [i for i, e in enumerate(rep.curve.epoch) if float(e).is_integer() and e > 0]
        assert [rep.curve.epoch[i] for i in ends] == [1.0, 2.0, 3.0]
        for i, e in zip(ends, plain.epochs, strict=True):
            # lax.map and vmap reassociate float32 sums differently: equal to rounding, not bit for bit
            np.testing.assert_allclose(rep.curve.test_loss[i], e.test_loss, rtol=2e-5)
            np.testing.assert_allclose(rep.curve.test_accuracy[i], e.test_accuracy, rtol=1e-6)


def _evaluate_fresh(cfg, ds, seed):
    """A freshly built model of ``seed``, evaluated on each split on its own."""
    import jax

    from jbatch.core.epoch import make_evaluate
    from jbatch.core.optim import make_optimizer
    from jbatch.core.step import init_train_state, make_eval_step
    from jbatch.workloads.workload import for_config

    wl = for_config(cfg, ds)
    state = init_train_state(wl.model(seed), make_optimizer("sgd", 0.1))
    evaluate = jax.jit(make_evaluate(make_eval_step(wl.loss, wl.classification)))
    return {
        "test": float(evaluate(state, (ds.x_test, ds.y_test))["loss"]),
        "train": float(evaluate(state, (ds.x_train, ds.y_train))["loss"]),
    }


# --- the results directory ------------------------------------------------------------


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_kill_between_batch_sizes_then_resume_redoes_nothing(tiny, tmp_path):
    cfg = _config()

    def die_at_full(b, skipped):
        if b == tiny.num_train:
            raise Interrupt
        return None

    with pytest.raises(Interrupt):
        sweep(cfg, tmp_path, tiny, on_start=die_at_full)
    path = tmp_path / "t" / DOCUMENT
    first = json.loads(path.read_text())
    assert list(first["batch_sizes"]) == ["32"]
    assert not list(path.parent.glob(".*.tmp"))  # no half-written file left behind

    calls = []
    _, doc = sweep(cfg, tmp_path, tiny, on_start=lambda b, s: calls.append((b, s)))
    assert calls == [(32, True), (300, False)]
    again = json.loads(path.read_text())
    kept = ("replicas", "counted", "time", "budget_steps")  # training untouched; the timing covers both sizes now
    assert {k: again["batch_sizes"]["32"][k] for k in kept} == {k: first["batch_sizes"]["32"][k] for k in kept}
    assert first["batch_sizes"]["32"]["timing"] is None  # killed before the interleaved timing of the sizes
    assert {len(r["timing"]["epoch_seconds"]) for r in again["batch_sizes"].values()} == {cfg.measurement.timing_rounds}
    assert set(again["batch_sizes"]) == {"32", "300"}

    calls.clear()
    sweep(cfg, tmp_path, tiny, on_start=lambda b, s: calls.append((b, s)))
    assert calls == [(32, True), (300, True)]
    sweep(cfg, tmp_path, tiny, force=True, on_start=lambda b, s: calls.append((b, s)))
    assert calls[-2:] == [(32, False), (300, False)]


def test_a_kill_during_the_write_keeps_the_previous_document(tiny, tmp_path, monkeypatch):
    import os

    cfg = _config(batch_sizes=(32,))
    sweep(cfg, tmp_path, tiny)
    path = tmp_path / "t" / DOCUMENT
    before = path.read_bytes()

    def killed(*a, **k):
        raise Interrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(Interrupt):
        sweep(cfg, tmp_path, tiny, force=True)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))


def test_other_config_or_device_is_refused_and_nothing_is_overwritten(tiny, tmp_path, monkeypatch):
    sweep(_config(batch_sizes=(32,)), tmp_path, tiny)
    path = tmp_path / "t" / DOCUMENT
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"another config \(learning_rates: \[0.1, 10000.0\] there, \[0.1\] now"):
        sweep(_config(batch_sizes=(32,), learning_rates=(0.1,)), tmp_path, tiny)
    import jbatch.sweeps.driver

    real = jbatch.sweeps.driver.environment_metadata
    monkeypatch.setattr(
        jbatch.sweeps.driver, "environment_metadata", lambda: msgspec.structs.replace(real(), device_kind="NVIDIA H100")
    )
    with pytest.raises(ConfigError, match="results from different devices are not mixed"):
        sweep(_config(batch_sizes=(32,)), tmp_path, tiny)
    assert path.read_bytes() == before


def test_corrupt_document_is_a_clear_error_and_left_alone(tiny, tmp_path):
    path = tmp_path / "t" / DOCUMENT
    path.parent.mkdir()
    path.write_text('{"kind": "jbatch.sweep", "batch_si')
    with pytest.raises(ConfigError, match="is not valid JSON"):
        sweep(_config(), tmp_path, tiny)
    assert path.read_text() == '{"kind": "jbatch.sweep", "batch_si'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rates": ()}, "learning-rate grid is empty"),
        ({"batch_sizes": ()}, "no batch sizes"),
        ({"seeds": ()}, "no seeds"),
        ({"target_metric": "f1"}, "unknown target metric 'f1'"),
        ({"batch_sizes": (32, 301)}, "batch size 301 is larger than the 300 training examples"),
        ({"batch_sizes": (300, "full")}, "batch sizes repeat"),
        ({"learning_rates": (0.1, -1.0)}, "learning rate must be a positive finite number"),
        ({"evals": 0}, "evals must be at least 1"),
    ],
)
def test_bad_sweeps_are_refused(tiny, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        sweep(_config(**change), tmp_path, tiny)
    assert not (tmp_path / "t").exists()


def test_config_file_mapping_takes_flat_keys_or_groups():
    cfg = from_mapping({"batch_sizes": [1, 8, "full"], "seeds": [0, 1], "target_value": 1})
    assert cfg.grid.batch_sizes == (1, 8, "full") and cfg.grid.seeds == (0, 1) and cfg.target.value == 1.0
    assert from_mapping({"grid": {"batch_sizes": [1, 8, "full"], "seeds": [0, 1]}, "target": {"value": 1}}) == cfg
    with pytest.raises(ConfigError, match="unknown sweep setting 'batchsize'"):
        from_mapping({"batchsize": [1]})
    with pytest.raises(ConfigError, match="unknown grid setting"):
        from_mapping({"grid": {"seed": [1]}})
    with pytest.raises(ConfigError, match="sweep setting 'seeds': Expected `array`, got `int`"):
        from_mapping({"seeds": 3})
    with pytest.raises(ConfigError, match="sweep setting 'budget_steps': Expected `int`, got `str`"):
        from_mapping({"budget_steps": "many"})


def test_noise_checkpoints_are_log_spaced_evaluations():
    lay = layout(1, 400, 100, 1437)
    probes = probe_chunks(lay, 8)
    ends = np.asarray(lay.chunk_ends())[np.asarray(probes)]
    assert len(ends) == 8 and all(np.asarray(lay.evaluate)[np.asarray(probes)])
    ratios = ends[1:] / ends[:-1]
    assert ends[0] == 1 and ends[-1] == 400 and np.all(ratios > 1.5) and np.all(ratios < 3.5)
    assert not any(probe_chunks(lay, 0))


def test_a_document_from_before_a_setting_existed_still_resumes(tiny, tmp_path):
    """A setting jbatch gained after a sweep was written counts as its default there (the
    published sweeps predate ``microbatch``): resuming works, a real difference is refused."""
    import json

    sweep(_config(batch_sizes=(32,)), tmp_path, tiny)
    path = tmp_path / "t" / DOCUMENT
    doc = json.loads(path.read_text())
    del doc["config"]["training"]["microbatch"]
    path.write_text(json.dumps(doc))
    _, again = sweep(_config(batch_sizes=(32,)), tmp_path, tiny)  # resumed: nothing to redo
    assert msgspec.to_builtins(again.batch_sizes) == doc["batch_sizes"] and again.config.training.microbatch == 0
    with pytest.raises(ConfigError, match=r"another config \(microbatch: 0 there, 8 now"):
        sweep(_config(batch_sizes=(32,), microbatch=8), tmp_path, tiny)
