"""Training a batch-size warm-up to a sweep's target (``jbatch.sweeps.warmup_check``), on the tiny
digits against the recorded small sweep of the same workload: the numbers are those of the
phases run again by hand and evaluated where the check says the target was reached, the
seconds are the sweep's own seconds per step, and the verdict can come out each way."""

import jax
import numpy as np
import pytest

from jbatch.core.epoch import make_evaluate
from jbatch.core.optim import get_learning_rate
from jbatch.core.phases import Phase, examples_seen, train_phases
from jbatch.core.step import init_train_state, make_eval_step, make_train_step
from jbatch.errors import ConfigError
from jbatch.report.advice import verdict
from jbatch.results import convert, read_sweep, records
from jbatch.sweeps.warmup_check import check_warmup, reference
from jbatch.workloads.data import to_device
from tests.helpers import session, tiny_config
from tests.test_advise import SMALL

WARMUP = [records.Phase(batch_size=8, steps=30), records.Phase(batch_size=32, steps=0)]


def test_the_warmup_is_trained_to_the_target_as_by_hand(tiny):
    cfg = tiny_config(widths=(32,), batch_sizes=(8, 32, 100), learning_rates=(0.3,), seeds=(0, 1))
    where = session(cfg, tiny)
    wl = where.workload
    doc = read_sweep(SMALL)
    ref = reference(doc)
    check = check_warmup(where, doc, WARMUP, seeds=(0,), every_examples=40)
    lrs = [p.learning_rate for p in check.phases]
    assert [p.batch_size for p in check.phases] == [8, 32]
    assert lrs == [ref["settings"][8]["learning_rate"], ref["settings"][32]["learning_rate"]]  # re-tuned per phase
    phases = [Phase(p.batch_size, p.steps) for p in check.phases]
    assert (
        examples_seen(phases, 300)
        >= ref["budget_examples"]
        > examples_seen([phases[0], Phase(32, phases[1].steps - 1)], 300)
    )
    seed = check.seeds[0]
    assert seed.steps_to_target is not None, "the tiny digits reach 75% in the B = 100 run's budget"
    curve = np.asarray(seed.curve)
    target = doc.config.target.value
    hit = int(np.argmax(curve[:, 2] >= target))
    assert curve[hit, 0] == seed.steps_to_target and (curve[:hit, 2] < target).all()
    # by hand: the same phases, cut where the check found the target, evaluated once
    steps, left, cut = seed.steps_to_target, seed.steps_to_target, []
    for p in phases:
        if left:
            cut.append(Phase(p.batch_size, min(left, p.steps)))
            left -= cut[-1].steps
    with jax.numpy_dtype_promotion("standard"):
        state = init_train_state(wl.model(0), where.optimizer.tx)
        state, records = train_phases(
            state,
            make_train_step(wl.loss),
            to_device(tiny.x_train, tiny.y_train),
            cut,
            learning_rates=lrs[: len(cut)],
            seed=0,
        )
        accuracy = make_evaluate(make_eval_step(wl.loss, True))(state, to_device(tiny.x_test, tiny.y_test))["accuracy"]
    assert int(state.step) == steps and float(get_learning_rate(state.opt_state)) == pytest.approx(lrs[len(cut) - 1])
    assert float(accuracy) == pytest.approx(curve[hit, 2], abs=1e-6)
    assert seed.examples_to_target == examples_seen(cut, 300)
    per_step = {r.batch_size: r.timing.seconds_per_step for r in doc.results}
    assert seed.seconds_to_target == pytest.approx(sum(r.steps * per_step[r.batch_size] for r in records))
    fixed = check.steps_to_target.fixed
    assert check.reference["batch_size"] == ref["batch_size"] and fixed.values == ref["steps_to_target"]
    assert check.steps_to_target.ratio == pytest.approx(seed.steps_to_target / fixed.mean)


def test_a_warmup_over_batch_sizes_the_sweep_did_not_run_is_one_line(tiny):
    cfg = tiny_config(widths=(32,), batch_sizes=(8, 32), learning_rates=(0.3,), seeds=(0,))
    with pytest.raises(ConfigError, match=r"batch sizes the sweep did not run \(\[16\]\)"):
        check_warmup(session(cfg, tiny), read_sweep(SMALL), [records.Phase(batch_size=16, steps=0)])


def spread(values, lo, hi, of=None):
    return {
        "values": values,
        "n": len(values),
        "of": of or len(values),
        "mean": float(np.mean(values)),
        "interval": [lo, hi],
    }


@pytest.mark.parametrize(
    ("warm", "final", "want"),
    [
        (spread([50, 52], 45, 57), spread([0.9, 0.9], 0.88, 0.92), "fewer"),
        (spread([50, 52], 45, 57), spread([0.7, 0.7], 0.68, 0.72), "fewer, worse final"),
        (spread([90, 95], 85, 99), spread([0.9, 0.9], 0.88, 0.92), "tie"),
        (spread([150, 160], 140, 170), spread([0.9, 0.9], 0.88, 0.92), "more"),
        (spread([50], 0, float("inf"), of=2), spread([0.9, 0.9], 0.88, 0.92), "more"),  # a seed missed the target
    ],
)
def test_the_verdict_can_come_out_each_way(warm, final, want):
    check = {
        "phases": [],
        "metric": "test_accuracy",
        "target": 0.9,
        "every_examples": 1,
        "budget_examples": 1,
        "seeds": [],
        "reference": {},
        "seconds": 0.0,
        "higher_is_better": True,
        "steps_to_target": {"warmup": warm, "fixed": spread([100, 104], 80, 120)},
        "seconds_to_target": {"warmup": warm, "fixed": spread([100, 104], 80, 120)},
        "examples_to_target": {"warmup": warm, "fixed": spread([100, 104], 80, 120)},
        "final": {"warmup": final, "fixed": spread([0.9, 0.91], 0.85, 0.95)},
    }
    assert verdict(convert(check, records.WarmupCheck)) == want


def test_a_warmup_of_one_batch_size_retraces_the_sweeps_own_runs(tiny):
    """A "warm-up" that is the reference batch size from the start is the sweep's own run of it
    (same initial weights, data order and learning rate): the check must end each seed at the
    final value the sweep recorded, which ties it to what the sweep measured."""
    doc = read_sweep(SMALL)
    cfg = tiny_config(
        widths=(32,), batch_sizes=(1, 8, 32, 100, "full"), learning_rates=(0.03, 0.3, 3.0), seeds=(0, 1, 2, 3)
    )
    ref = reference(doc)
    check = check_warmup(session(cfg, tiny), doc, [records.Phase(batch_size=ref["batch_size"], steps=0)])
    assert [p.batch_size for p in check.phases] == [ref["batch_size"]]
    assert [s.final for s in check.seeds] == pytest.approx(ref["final"], abs=1e-6)
    assert verdict(check) == "tie"  # the same runs, evaluated at other points


def test_seesaw_trains_batch_sizes_the_sweep_did_not_run_at_its_own_learning_rates(tiny):
    from jbatch.sweeps.seesaw import interpolated, rates

    cfg = tiny_config(widths=(32,), batch_sizes=(8, 32, 100), learning_rates=(0.3,), seeds=(0,))
    where, doc = session(cfg, tiny), read_sweep(SMALL)
    ref = reference(doc)
    seesaw = [records.Phase(batch_size=8, steps=20), records.Phase(batch_size=16, steps=0)]  # 16: not swept
    with pytest.raises(ConfigError, match=r"did not run \(\[16\]\)"):  # a warm-up's phases need the sweep's own
        check_warmup(where, doc, seesaw, seeds=(0,))
    check = check_warmup(
        where, doc, seesaw, seeds=(0,), every_examples=40, rates=lambda ps, lr: rates(ps, lr, "constant", 0.0, 0.0)
    )
    lr8 = ref["settings"][8]["learning_rate"]
    assert [p.batch_size for p in check.phases] == [8, 16]
    assert [p.learning_rate for p in check.phases] == pytest.approx([lr8, lr8 * 2**0.5], rel=1e-6)  # x 1/sqrt2 of 2x
    seed = check.seeds[0]
    assert seed.steps_to_target is not None, "the tiny digits reach 75% in the B = 100 run's budget"
    per16 = interpolated(ref["seconds_per_step"], 16)  # between the sweep's 8 and 32, log-log
    assert ref["seconds_per_step"][8] <= per16 <= ref["seconds_per_step"][32] or (
        ref["seconds_per_step"][32] <= per16 <= ref["seconds_per_step"][8]
    )
    in_first = min(seed.steps_to_target, 20)
    want = in_first * ref["seconds_per_step"][8] + (seed.steps_to_target - in_first) * per16
    assert seed.seconds_to_target == pytest.approx(want)
