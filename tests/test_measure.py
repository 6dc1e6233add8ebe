"""Measuring cheaply and truthfully: the time accounting adds up, skipping fine evaluations
changes no steps to target, ties are ties, blow-ups after the target are found, and
``jbatch compare`` refuses what it cannot compare."""

import json
import time

import msgspec
import numpy as np
import pytest

from jbatch.analysis.selection import best_setting, replica_summary
from jbatch.analysis.stats import median_interval, tie_set
from jbatch.analysis.summary import fastest, time_accounting
from jbatch.config import SweepConfig
from jbatch.errors import ConfigError
from jbatch.report.compare import compare
from jbatch.results import BatchSizeResult, Replica, SweepDocument, convert
from jbatch.sweeps.clock import TIME_PARTS
from tests.helpers import run_size, session, sweep, tiny_config


def _result(replicas, **kw):
    """A batch size's record around ``replicas`` (JSON values), the rest as small as it can be."""
    base = {
        "batch_size": 1,
        "steps_per_epoch": 1,
        "budget_steps": 60,
        "counted": {"examples_per_epoch": [1] * 60, "updates_per_epoch": []},
    }
    return convert(base | kw | {"replicas": replicas}, BatchSizeResult)


def best_lr(summaries):
    """The best setting's learning rate (``selection.best_setting``)."""
    return dict(best_setting(summaries))["learning_rate"]


def _config(**kw):
    """The shared tiny sweep at B=8 with three learning rates, noise probes and timing rounds."""
    return tiny_config(
        **{
            "name": "m",
            "batch_sizes": (8, "full"),
            "learning_rates": (0.03, 0.3, 3.0),
            "budget_steps": 60,
            "budget_epochs": 2,
            "evals": 30,
            "noise_checkpoints": 3,
            "coarse_evals": 5,
            "timing_rounds": 7,
        }
        | kw
    )


@pytest.mark.slow
def test_time_accounting_puts_each_part_where_it_happens(tiny, monkeypatch):
    """A delay planted in the noise probes lands in "noise" (not in "other" or elsewhere),
    no part is negative (none counted twice), and the wall is the wall a user waits."""
    from jbatch.core.engine import Program, Programs
    from jbatch.sweeps.batch import run_batch_size

    real, delay, probes = Programs.get, 0.6, []  # well above "other" loaded (0.5 s seen)

    def planted(self, key, *args, **kw):
        program = real(self, key, *args, **kw)
        if key[0] != "probe":
            return program

        def slow(*a):
            probes.append(1)
            time.sleep(delay)
            return program(*a)

        return Program(slow, program.compile_seconds, program.memory)

    monkeypatch.setattr(Programs, "get", planted)
    where = session(_config(), tiny)
    start = time.perf_counter()
    result = run_batch_size(where, 8)
    outside = time.perf_counter() - start
    t = result.time
    assert probes and t.c11_demo is None
    assert all(getattr(t, k) >= 0 for k in TIME_PARTS)  # "other" is the rest: negative would mean double counting
    assert t.noise >= delay * len(probes) and t.other < delay * len(probes)
    assert t.wall == pytest.approx(outside, rel=0.05)  # the recorded wall is the wall a user waits
    assert t.train > 0 and t.evaluate > 0 and t.compile > 0


@pytest.mark.slow
def test_skipping_fine_evaluations_changes_no_steps_to_target(tiny):
    cfg = _config(batch_sizes=(8,), learning_rates=(0.01, 0.03, 0.3, 1.0), seeds=(0, 1, 2))
    lean = run_size(cfg, tiny, 8)
    full = run_size(cfg, tiny, 8, prune=False)  # every replica at every fine point: the reference
    lean_s = [replica_summary(r, lean, "test_accuracy", 0.7) for r in lean.replicas]
    full_s = [replica_summary(r, full, "test_accuracy", 0.7) for r in full.replicas]
    assert any(r.pruned_at_step is not None for r in lean.replicas)  # something was skipped
    for a, b in zip(lean_s, full_s, strict=True):
        if not a["coarse_steps"]:
            assert a["steps_to_target"] == b["steps_to_target"], (a["learning_rate"], a["seed"])
    assert best_lr(lean_s) == best_lr(full_s)
    best = best_lr(full_s)
    assert [a["steps_to_target"] for a in lean_s if a["learning_rate"] == best] == [
        b["steps_to_target"] for b in full_s if b["learning_rate"] == best
    ]
    skipped = sum(v is None for r in lean.replicas for v in r.curve.test_accuracy)
    assert skipped > sum(v is None for r in full.replicas for v in r.curve.test_accuracy)


def test_median_interval_and_tie_set_on_synthetic_timings():
    rng = np.random.default_rng(0)
    rounds = {b: list(rng.normal(mu, 0.05 * mu, 9)) for b, mu in ((1, 1.0), (8, 1.02), (64, 1.5))}
    intervals = {b: median_interval(v) for b, v in rounds.items()}
    for b, (lo, hi) in intervals.items():
        assert lo <= np.median(rounds[b]) <= hi
    ties = tie_set(intervals, {b: float(np.median(v)) for b, v in rounds.items()})
    assert ties == [1, 8]  # 2% apart: a tie; 50% apart: not
    rows = [
        {
            "row": {
                "batch_size": b,
                "seconds_to_target": {"mean": float(np.median(v))},
                "seconds_to_target_interval": list(intervals[b]),
            }
        }
        for b, v in rounds.items()
    ]
    assert fastest(rows) == [1, 8]


def _spiked(after_target: bool):
    steps = [0, 10, 20, 30, 40, 50]
    acc = [0.1, 0.5, 0.8, 0.9, 0.9, 0.9]
    train = [2.3, 1.0, 0.5, 0.3, 0.3, 0.2]
    if after_target:
        train[4] = 1e32  # the MNIST-1D CNN at full batch and LR 1: a blow-up after the target, then back
    return {
        "learning_rate": 1.0,
        "seed": 0,
        "diverged": False,
        "diverged_at_step": None,
        "curve": {
            "step": steps,
            "epoch": steps,
            "test_accuracy": acc,
            "test_loss": [2.3, 1.5, 0.8, 0.5, 0.5, 0.5],
            "minibatch_loss": [None, 1.2, 0.6, 0.35, 0.3, 0.25],
        },
        "coarse": {"step": steps, "epoch": steps, "train_loss": train},
    }


def test_a_blow_up_after_the_target_is_instability_and_loses_the_best_learning_rate():
    result = _result([_spiked(True)])
    spiked = replica_summary(convert(_spiked(True), Replica), result, "test_accuracy", 0.8)
    calm = replica_summary(convert(_spiked(False), Replica), result, "test_accuracy", 0.8)
    assert spiked["reached"] and spiked["steps_to_target"] == 20 and spiked["unstable_at_step"] == 40
    assert not spiked["stable"] and calm["stable"] and calm["unstable_at_step"] is None
    slower = dict(calm, learning_rate=0.3, setting=(("learning_rate", 0.3),), steps_to_target=30)
    assert best_lr([spiked, slower]) == 0.3  # stable and slower beats fast and unstable


def test_loss_plot_keeps_a_spike_from_flattening_the_others(tmp_path):
    from jbatch.report.plot import loss_curves

    calm = dict(_spiked(False), learning_rate=0.5)
    doc = convert(
        {
            "kind": "jbatch.sweep",
            "name": "spike",
            "config": {},
            "num_train": 2,
            "metadata": {},
            "device": {"backend": "cpu", "device_kind": "cpu"},
            "batch_sizes": {
                str(b): msgspec.to_builtins(_result([rep], batch_size=b)) for b, rep in ((1, _spiked(True)), (2, calm))
            },
        },
        SweepDocument,
    )
    rows = [{"row": {"batch_size": b, "best_learning_rate": lr, "regime": "x"}} for b, lr in ((1, 1.0), (2, 0.5))]
    path = loss_curves(tmp_path, doc, rows, "spike")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def two_runs(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    cfg = _config(batch_sizes=(8, "full"), learning_rates=(0.3,), seeds=(0, 1), noise_checkpoints=0)
    a, _ = sweep(cfg, root / "a", tiny)
    b, _ = sweep(cfg, root / "b", tiny)
    return a, b


@pytest.mark.slow
def test_compare_two_runs_of_one_workload(two_runs, tmp_path):
    a, b = two_runs
    text = compare([a, b], tmp_path, with_csv=True)
    rows = [line for line in text.splitlines() if line.startswith(("| 8 |", "| 300 |"))]
    assert len(rows) == 2 and not any(" apart" in line for line in rows)  # the same training: steps cannot tell
    assert all(line.rstrip(" |").endswith(("tie", "undecided (timing, one run each)")) for line in rows)
    assert (tmp_path / "compare.csv").read_text().startswith("batch_size,steps_0")
    assert (tmp_path / "compare.png").exists()
    doc_a, doc_b = (json.loads((d / "sweep.json").read_text()) for d in (a, b))
    for key in ("8", "300"):  # steps to target are the same training twice: bit-identical
        assert [r["curve"]["test_accuracy"] for r in doc_a["batch_sizes"][key]["replicas"]] == [
            r["curve"]["test_accuracy"] for r in doc_b["batch_sizes"][key]["replicas"]
        ]


def test_compare_calls_runs_apart_only_when_the_seeds_steps_say_so(two_runs, tmp_path):
    """The rule on the seeds' steps, with each run's seconds per step pinned to one tight
    interval (the timing rounds of a loaded machine could otherwise decide it)."""

    def pinned(doc):
        for result in doc["batch_sizes"].values():
            result["timing"]["seconds_per_step_interval"] = [1e-3, 1.01e-3]
        return doc

    a = tmp_path / "a"
    a.mkdir()
    (a / "sweep.json").write_text(json.dumps(pinned(json.loads((two_runs[0] / "sweep.json").read_text()))))
    slow = tmp_path / "slow"
    slow.mkdir()
    doc = pinned(json.loads((two_runs[1] / "sweep.json").read_text()))
    for rep in doc["batch_sizes"]["8"]["replicas"]:  # every seed 20x later: apart even with t(1) = 12.7
        rep["curve"]["step"] = [20 * st for st in rep["curve"]["step"]]
        rep["coarse"]["step"] = [20 * st for st in rep["coarse"]["step"]]
    (slow / "sweep.json").write_text(json.dumps(doc))
    rows = {line.split("|")[1].strip(): line for line in compare([a, slow]).splitlines() if line.startswith("| ")}
    assert rows["8"].rstrip(" |").endswith("apart") and not rows["300"].rstrip(" |").endswith("apart")
    one = tmp_path / "one"
    one.mkdir()
    doc["batch_sizes"]["8"]["replicas"] = [r for r in doc["batch_sizes"]["8"]["replicas"] if r["seed"] == 0]
    doc["config"]["grid"]["seeds"] = [0]
    (one / "sweep.json").write_text(json.dumps(doc))
    rows = {line.split("|")[1].strip(): line for line in compare([a, one]).splitlines() if line.startswith("| ")}
    assert not rows["8"].rstrip(" |").endswith("apart")  # one seed: no interval of steps, nothing is apart


def test_compare_refuses_other_workloads_kinds_and_single_runs(two_runs, tmp_path):
    a, b = two_runs
    other = tmp_path / "other"
    other.mkdir()
    doc = json.loads((b / "sweep.json").read_text())
    doc["config"]["target"]["value"] = 0.9
    doc["config"]["workload"]["model"] = "cnn"
    (other / "sweep.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"not the same workload \(model: 'mlp' vs 'cnn'; target_value: 0.7 vs 0.9\)"):
        compare([a, other])
    bench = tmp_path / "b.json"
    bench.write_text("{}")
    with pytest.raises(ConfigError, match="runs of one kind"):
        compare([a, bench])
    with pytest.raises(ConfigError, match="two or more"):
        compare([a])
    with pytest.raises(ConfigError, match="neither a sweep directory"):
        compare([a, tmp_path / "missing"])


def test_a_sweeps_accounted_time_is_the_time_it_took(tiny, tmp_path):
    """Every batch size's accounted wall (its run and its share of the timing rounds) and
    the pre-check add up to the sweep's own wall, within 10%."""
    from jbatch.workloads.workload import for_config

    cfg = _config(batch_sizes=(8, "full"), learning_rates=(0.3,), seeds=(0, 1), noise_checkpoints=0)
    workload = for_config(cfg, tiny)
    from jbatch.sweeps.driver import run_sweep

    start = time.perf_counter()
    _, doc = run_sweep(cfg, tmp_path, workload=workload)
    outside = time.perf_counter() - start
    accounted = sum(time_accounting(r)["wall"] for r in doc.batch_sizes.values()) + doc.checks.seconds
    assert accounted == pytest.approx(outside, rel=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("kept", [True, False])  # its state kept when pruned, or too large to keep (KEEP_BYTES)
def test_a_pruned_best_is_replayed_to_the_same_steps(digits, monkeypatch, kept):
    """On digits at B=16, lr 0.3162 reaches 95% first and then turns unstable, so the best is
    a setting whose fine evaluations were skipped: it is trained again (a replay, which once
    crashed on its empty coarse record), from where it was pruned or else from the start, and
    must land on the reference's steps."""
    import jbatch.sweeps.batch

    if not kept:
        monkeypatch.setattr(jbatch.sweeps.batch, "KEEP_BYTES", 0)

    replays, starts = [], []
    merge = jbatch.sweeps.batch.merge_replay

    def watched(original, replay):
        replays.append(original.learning_rate)
        starts.append((original.pruned_at_step, replay.curve.step[0]))
        merge(original, replay)

    monkeypatch.setattr(jbatch.sweeps.batch, "merge_replay", watched)
    cfg = SweepConfig.of(seeds=(0,), learning_rates=(0.1, 0.3162, 1.0, 3.162), noise_checkpoints=0, extend_grid=0)
    lean, full = run_size(cfg, digits, 16), run_size(cfg, digits, 16, prune=False)
    assert replays  # the case this test is for happened
    assert all(pruned > 0 and first == (pruned if kept else 0) for pruned, first in starts)
    lean_s, full_s = ([replica_summary(r, x, "test_accuracy", 0.95) for r in x.replicas] for x in (lean, full))
    best = best_lr(full_s)
    assert best_lr(lean_s) == best and replays == [best]
    assert [s["steps_to_target"] for s in lean_s if s["learning_rate"] == best] == [
        s["steps_to_target"] for s in full_s if s["learning_rate"] == best
    ]
    assert not any(s["coarse_steps"] for s in lean_s if s["learning_rate"] == best)


def test_an_extension_round_is_pruned_by_the_earlier_rounds_best():
    from jbatch.sweeps.recorder import Watch

    grid = [({"learning_rate": 3.0}, 0), ({"learning_rate": 10.0}, 0)]  # neither at the target yet
    metrics, evaluated, diverged = {"accuracy": np.array([0.5, 0.4])}, np.ones(2, bool), np.zeros(2, bool)
    alone, after = Watch(grid, "accuracy", 0.9, True), Watch(grid, "accuracy", 0.9, True, bound=20.0)
    for watch in (alone, after):
        watch.update(10, metrics, evaluated, diverged)
    assert alone.pruned_at == after.pruned_at == [None, None]  # step 10 could still beat 20 steps
    for watch in (alone, after):
        watch.update(30, metrics, evaluated, diverged)
    assert alone.pruned_at == [None, None] and after.pruned_at == [30, 30]  # 30 > 20: neither can be the best
    assert after.need(diverged).tolist() == [False, False] and after.best == 20.0


def test_pruned_settings_are_replayed_until_the_best_stays_the_best():
    """Three settings: A reaches the target first and later blows up; B and C were pruned at
    step 10 (A had finished), so their steps come from the coarse point at 30, a tie that C
    wins on its final loss. Replaying only the chosen best (C: truly 25) keeps C; B, truly at
    15, is the best, and a ranking made again after each replay finds it."""
    from jbatch.sweeps.grid import settle_best

    steps = list(range(0, 65, 5))
    coarse = {0: 0, 30: 6, 60: 12}  # index of the coarse points in `steps`

    def rep(lr, acc, pruned, final):
        return {
            "learning_rate": lr,
            "seed": 0,
            "diverged": False,
            "diverged_at_step": None,
            "pruned_at_step": pruned,
            "curve": {"step": steps, "epoch": steps, "test_accuracy": acc, "test_loss": [2.0] * 12 + [final]},
            "coarse": {"step": list(coarse), "epoch": list(coarse), "train_loss": [2.0, 0.5, 0.4]},
        }

    def reach_at(step):
        return [0.9 if s >= step else 0.2 for s in steps]

    def seen(truth):  # pruned at 10: fine points up to 10, then only the coarse ones
        return [v if s <= 10 or s in coarse else None for s, v in zip(steps, truth, strict=True)]

    truth = {1: reach_at(15), 2: reach_at(25)}
    a = rep(1.0, reach_at(10), None, 0.3)
    a["coarse"]["train_loss"] = [2.0, 3.0, 0.4]  # above its starting loss after the target: unstable
    result = _result(
        [a, rep(0.1, seen(truth[1]), 10, 0.5), rep(0.3, seen(truth[2]), 10, 0.4)],
        steps_per_epoch=100,
        counted={"examples_per_epoch": [1] * 10, "updates_per_epoch": []},
    )
    replayed = []

    def replay(todo):
        for r in todo:
            replayed.append(r)
            result.replicas[r].curve.test_accuracy = truth[r]
            result.replicas[r].pruned_at_step = None

    best, chosen = settle_best(result, SweepConfig.of(target_value=0.8), replay)
    assert best == (("learning_rate", 0.1),) and chosen == [1] and sorted(replayed) == [1, 2]
