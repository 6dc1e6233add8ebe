"""``jbatch advise`` (``jbatch.sweeps.advise``): on the tiny digits, against the recorded small
sweep of the same workload (``tests/data/sweep_small``): the recommendation is the candidate
of fewest predicted seconds from the measured seconds per step and the branches' B_crit, the
warm-up follows B* along the run, the check against the sweep reads its measured seconds, and
what cannot be advised is one clear line."""

import statistics
from pathlib import Path

import pytest

from jbatch.analysis.stats import tie_set
from jbatch.analysis.summary import summarize
from jbatch.errors import ConfigError
from jbatch.report.advice import markdown, write_advice
from jbatch.results import read_advice, read_sweep
from jbatch.sweeps.advise import advise, check_against, predicted_ratio
from jbatch.workloads.workload import for_config
from tests.helpers import tiny_config

SMALL = Path(__file__).parent / "data" / "sweep_small"


@pytest.mark.slow
def test_advice_on_the_tiny_digits_checked_against_their_sweep(tiny, tmp_path):
    cfg = tiny_config(widths=(32,), batch_sizes=(8, 32, 100), learning_rates=(0.3,), seeds=(0, 1))
    doc = advise(
        cfg,
        for_config(cfg, tiny),
        trunk_batch=8,
        trunk_steps=40,
        checkpoints=3,
        examples=400,
        multipliers=(1, 2, 4, 8),
        timing_rounds=3,
        against=SMALL,
    )
    sizes = doc.candidates
    assert sizes == [8, 32, 100] and doc.recommended in sizes
    per_step = {b: doc.timing[str(b)].seconds_per_step for b in sizes}
    steps = {b: predicted_ratio(b, 8, doc.b_crit) for b in sizes}
    predicted = {b: steps[b] * per_step[b] for b in sizes}
    seeds_b = doc.branching.checkpoints[-1].b_star.values()  # the seeds' own B*: the predicted steps' range
    rng = {b: [predicted_ratio(b, 8, x) for x in [doc.b_crit, *seeds_b]] for b in sizes}
    intervals = {
        b: (
            min(rng[b]) * doc.timing[str(b)].seconds_per_step_interval[0],
            max(rng[b]) * doc.timing[str(b)].seconds_per_step_interval[1],
        )
        for b in sizes
    }
    assert doc.recommended_set == sorted(tie_set(intervals, predicted))  # what the timing cannot tell apart
    assert doc.recommended == max(doc.recommended_set)  # of them, the fewest predicted steps
    assert doc.relative_seconds[str(doc.recommended)] == 1.0
    stars = [e.b_star_median for e in doc.branching.checkpoints]
    assert [e.step for e in doc.branching.checkpoints] == [0, 1, 40]  # log-spaced from 1% of the run
    assert all(s in (8, 16, 32, 64, 100) for e in doc.branching.checkpoints for s in e.b_star.values())
    assert doc.b_crit == stars[-1]  # the last checkpoint's: nearest to where a run spends its steps
    warm = [p.batch_size for p in doc.warmup]
    assert warm == sorted(warm) and warm[-1] >= doc.recommended and doc.warmup[-1].steps == 0
    truth = doc.against
    rows = {s["row"]["batch_size"]: s["row"] for s in summarize(read_sweep(SMALL))}
    measured = {b: r["seconds_to_target"]["mean"] for b, r in rows.items() if r["seconds_to_target"]["n"]}
    assert truth.seconds_to_target == {str(b): v for b, v in measured.items()}
    assert truth.fastest == min(measured, key=measured.get)
    want = measured[doc.recommended] / measured[truth.fastest] if doc.recommended in measured else None
    assert truth.recommended_over_fastest == (pytest.approx(want) if want else None)
    assert truth.cost_fraction == pytest.approx(doc.cost.total / truth.seconds)
    est = doc.sweep_estimate  # the sweep it replaces, from the grid and the measured seconds per step
    want_seconds = 2 * sum(max(cfg.budget.steps, cfg.budget.epochs * -(-300 // b)) * per_step[b] for b in sizes)
    assert est.seconds == pytest.approx(want_seconds) and est.fraction == pytest.approx(
        doc.cost.total / want_seconds
    )  # 1 learning rate x 2 seeds
    check = doc.warmup_check  # the warm-up trained to the sweep's target (tests/test_warmup_check.py)
    assert [p.batch_size for p in check.phases] == [p.batch_size for p in doc.warmup]
    assert len(check.seeds) == 2 and check.reference["batch_size"] == truth.fastest
    paths = write_advice(doc, tmp_path / "advice")
    assert read_advice(tmp_path / "advice") == doc  # through the contract, the same record
    text = paths[1].read_text()
    assert f"Recommended fixed batch size: {doc.recommended}" in text and "Against the sweep" in text
    assert "The warm-up trained to the target" in text and "Verdict on the steps" in text
    assert "the full sweep it replaces would train for at least" in text
    assert all(f"\n| {b} | {doc.timing[str(b)].seconds_per_step:.4g} [" in text for b in sizes)  # a row each
    assert text == markdown(read_advice(tmp_path / "advice"))  # the report regenerates from the JSON


def test_a_sweep_of_another_workload_is_refused_and_a_bad_plan_is_one_line(tiny):
    cfg = tiny_config(widths=(16,), batch_sizes=(8, 32), learning_rates=(0.3,), seeds=(0,))
    with pytest.raises(ConfigError, match="another workload \\(widths differ\\)"):
        check_against(SMALL, cfg)
    with pytest.raises(ConfigError, match="multipliers must start at 1"):
        advise(cfg, for_config(cfg, tiny), trunk_batch=8, trunk_steps=10, multipliers=(2, 4))


def test_jbatch_advise_from_python_on_arrays_and_a_model_function(tiny, tmp_path):
    from flax import nnx

    import jbatch

    class Net(nnx.Module):
        def __init__(self, seed):
            self.hidden = nnx.Linear(64, 16, rngs=nnx.Rngs(seed))
            self.out = nnx.Linear(16, 10, rngs=nnx.Rngs(seed + 1))

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    data = (tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test)
    doc = jbatch.advise(
        Net,
        data,
        "sgd",
        batch_sizes=(8, 32),
        learning_rates=(0.1,),
        seeds=(0,),
        trunk_steps=10,
        checkpoints=2,
        multipliers=(1, 4),
        examples=64,
        timing_rounds=3,
        results_dir=tmp_path,
    )
    assert doc.trunk_batch == 8 and doc.learning_rate == 0.1 and doc.recommended in (8, 32)
    assert doc.branching.batch_sizes == [8, 32] and doc.config.workload.model.endswith("Net")
    assert read_advice(next(tmp_path.glob("advise-*"))).recommended == doc.recommended
    with pytest.raises(ConfigError, match="unknown sweep setting"):
        jbatch.advise(Net, data, batch_sizes=(8,), learning_rates=(0.1,), trunk_stepz=3, results_dir=tmp_path)


def test_an_advice_loads_the_sweep_it_is_checked_against_once(tiny, tmp_path, monkeypatch):
    from jbatch.sweeps import advise as advice
    from jbatch.sweeps.api import run_advice_config  # what `jbatch advise` and `jbatch.advise` call

    loads, real = [], advice.check_against

    def counted(directory, config):
        loads.append(directory)
        return real(directory, config)

    def stop(*args, swept=None, **kwargs):  # what the advice gets: the document, already checked
        assert swept is not None and swept.name == read_sweep(SMALL).name
        raise ConfigError("stopped before training")

    monkeypatch.setattr(advice, "check_against", counted)
    monkeypatch.setattr(advice, "advise", stop)
    cfg = tiny_config(widths=(32,), batch_sizes=(8, 32), learning_rates=(0.3,))
    with pytest.raises(ConfigError, match="stopped before training"):
        run_advice_config(cfg, tmp_path, workload=for_config(cfg, tiny), against=SMALL)
    assert loads == [SMALL]


@pytest.mark.parametrize(
    "option, message",
    [
        ({"multipliers": (0,)}, "multipliers must start at 1"),
        ({"tolerance": float("nan")}, "the tolerance >= 0"),
        ({"lr_factors": (0.0,)}, "learning-rate factors must be positive"),
        ({"memory_cap": float("nan")}, "the memory cap must be a positive number of bytes"),
        ({"memory_cap": 1e3}, "the trunk's batch size 8 does not fit in memory"),  # the data alone are more
    ],
)
def test_a_bad_plan_is_refused_before_the_trunks_search_trains(tiny, monkeypatch, option, message):
    from jbatch.sweeps import advise as advice

    def trains(*args, **kw):
        raise AssertionError("the trunk's learning-rate search ran before the plan was checked")

    monkeypatch.setattr(advice, "trunk_learning_rate", trains)
    cfg = tiny_config(batch_sizes=(8, 32), learning_rates=(0.3,), seeds=(0,))
    with pytest.raises(ConfigError, match=message):
        advise(cfg, for_config(cfg, tiny), trunk_batch=8, trunk_steps=10, **option)


def test_a_second_advice_on_one_directory_is_refused_and_a_failed_write_keeps_a_rescue_copy(
    tiny, tmp_path, monkeypatch
):
    import json
    import socket
    import subprocess
    import sys
    import time

    from jbatch.errors import FaultError
    from jbatch.report import advice as report
    from jbatch.sweeps import advise as advice
    from jbatch.sweeps.api import run_advice_config
    from jbatch.sweeps.resultsdir import LOCK

    cfg = tiny_config(batch_sizes=(8, 32), learning_rates=(0.3,), seeds=(0,))
    directory = tmp_path / f"advise-{cfg.results_name}"
    directory.mkdir()
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": first.pid, "host": socket.gethostname(), "started": time.time(), "command": "jbatch advise"}
        (directory / LOCK).write_text(json.dumps(lock))
        with pytest.raises(ConfigError, match=f"is writing {directory}: pid {first.pid}"):  # before: both exit 0
            run_advice_config(cfg, tmp_path, workload=for_config(cfg, tiny))
    finally:
        first.kill()
        first.wait()
    real = advice.advise
    monkeypatch.setattr(advice, "advise", lambda *a, **kw: real(*a, **{**kw, "check": False}))

    def full(doc, directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_advice", full)
    options = {"checkpoints": 2, "multipliers": (1, 4), "examples": 64, "timing_rounds": 2}
    said = []
    with pytest.raises(FaultError) as e:  # before: the advice was lost, nothing said
        run_advice_config(cfg, tmp_path, workload=for_config(cfg, tiny), trunk_steps=10, say=said.append, **options)
    assert said[0].startswith("advise: the trunk's learning rate") and "# Batch-size advice" in said[-1]  # printed
    rescued = str(e.value).split("this run's document is in ")[1].split(" (")[0]
    assert (
        "No space left on device" in str(e.value) and json.loads(Path(rescued).read_text())["kind"] == "jbatch.advise"
    )
    Path(rescued).unlink()


def _branching(stars):
    """A branching record with B* per seed at each (step, {seed: B*}) checkpoint; trunk B0 = 8."""
    import msgspec

    from jbatch.results.records import Branching

    cps = [
        {
            "step": step,
            "examples": 8 * step,
            "loss": dict.fromkeys(st, 1.0),
            "branches": {},
            "b_star": st,
            "censored": dict.fromkeys(st, False),
            "b_simple": dict.fromkeys(st, 1.0),
            "b_star_median": float(statistics.median(st.values())),
            "censored_median": False,
            "b_simple_median": 1.0,
        }
        for step, st in stars
    ]
    plan = {"batch_size": 8, "learning_rate": 0.1, "checkpoints": [s for s, _ in stars], "examples": 64}
    plan |= {"multipliers": [1, 8], "tolerance": 0.05, "rule": "linear", "seeds": [int(s) for s in stars[0][1]]}
    return msgspec.convert({"plan": plan, "batch_sizes": [8, 64], "checkpoints": cps}, Branching)


def test_a_warm_up_is_advised_only_when_the_seeds_predict_it_faster_beyond_their_spread():
    from jbatch.sweeps.advise import warmup_schedule, warmup_verdict

    per_step = {8: 0.1, 64: 2.0}  # B = 8's steps are cheap: worth it while B* is 8

    def decide(stars):
        b = _branching(stars)
        cps = [{"step": e.step, "b_star_median": e.b_star_median} for e in b.checkpoints]
        return warmup_verdict(b, [8, 64], 64, per_step, warmup_schedule(cps, [8, 64], 8, 64))

    agree = decide(
        [(0, {"0": 8, "1": 8, "2": 8}), (100, {"0": 64, "1": 64, "2": 64}), (1000, {"0": 64, "1": 64, "2": 64})]
    )
    assert agree[0] and agree[2] == pytest.approx([0.8] * 3)  # 100 x 0.1 + 900 x r(64) x 2 against all at 64
    split = decide([(0, {"0": 8, "1": 64}), (100, {"0": 64, "1": 64}), (1000, {"0": 64, "1": 64})])
    assert not split[0] and "no gain beyond the seeds' spread" in split[1] and max(split[2]) >= 1  # seed 1: B* 64
    alone = decide([(0, {"0": 8}), (100, {"0": 64}), (1000, {"0": 64})])
    assert not alone[0] and alone[2] == pytest.approx([0.8])  # one seed: no interval, no gain shown
    flat = decide([(0, {"0": 64, "1": 64}), (1000, {"0": 64, "1": 64})])
    assert not flat[0] and "fixed B = 64 throughout" in flat[1]


def test_a_warm_up_its_check_finds_worse_is_not_advised_and_the_advice_says_so_first():
    import msgspec

    from jbatch.report.advice import verdict
    from jbatch.results.records import Spread
    from jbatch.sweeps.advise import apply_check

    published = read_advice(Path(__file__).parents[1] / "results" / "advise-digits-mlp-sgd")
    published = msgspec.structs.replace(published, warmup_advised=True, warmup_reason="predicted faster")
    assert published.warmup_check and verdict(published.warmup_check) == "tie"
    apply_check(published)  # a tie: left as advised
    assert published.warmup_advised
    check = published.warmup_check
    fixed = check.steps_to_target.fixed
    slower = Spread(values=[v * 3 for v in fixed.values], n=fixed.n, of=fixed.of, mean=fixed.mean * 3,
                    interval=[fixed.interval[1] * 1.5, fixed.interval[1] * 6])  # fmt: skip
    doc = msgspec.structs.replace(
        published,
        warmup_check=msgspec.structs.replace(
            check, steps_to_target=msgspec.structs.replace(check.steps_to_target, warmup=slower)
        ),
    )
    apply_check(doc)
    assert not doc.warmup_advised and doc.warmup_reason.startswith("its check against the sweep found it worse")
    text = markdown(doc)
    first = next(line for line in text.splitlines() if line.startswith("**"))
    assert first.startswith("**The warm-up this advice proposed is not advised: its check") and "fixed B = 64" in first
    assert f"Recommended fixed batch size: {doc.recommended}" in text.split(first)[1]  # the fixed size, after it


@pytest.mark.slow
def test_a_trunk_that_never_learns_is_run_longer_once_then_the_advice_says_it_cannot_tell(tiny):
    cfg = tiny_config(batch_sizes=(8, 32), learning_rates=(1e-7, 2e-7), seeds=(0, 1))  # searched: neither learns
    said = []
    doc = advise(
        cfg,
        for_config(cfg, tiny),
        trunk_batch=8,
        trunk_steps=10,
        checkpoints=2,
        multipliers=(1, 4),
        examples=64,
        timing_rounds=2,
        say=said.append,
    )
    assert not doc.trunk_learned and [e.step for e in doc.branching.checkpoints] == [0, 40]  # 4x the trunk, once
    assert any("did not fall beyond 0.05 of" in line and "searching again over a trunk of 40" in line for line in said)
    assert not doc.warmup_advised and "never learned" in doc.warmup_reason
    assert markdown(doc).startswith("# Batch-size advice\n\n**Cannot tell B_crit")


def test_seesaw_is_weighed_only_where_the_schedule_halves_and_advised_only_beyond_the_seeds_spread():
    from jbatch.sweeps.advise import seesaw_candidate

    cosine = tiny_config(batch_sizes=(8, 32, 100), schedule="cosine", warmup=0.05, final_fraction=0.1)
    per_step = {8: 1.0, 32: 1.0, 100: 1.0}  # a step costs the same at every size: fewer steps are faster
    far = seesaw_candidate(cosine, 300, 8, [8, 32, 100], per_step, [4000.0, 5000.0, 6000.0])
    assert [p.batch_size for p in far.phases] == [8, 16, 32, 64] and far.phases[-1].steps == 0  # 128 > 100
    assert far.advised and far.reason.startswith("predicted faster") and len(far.predicted) == 3
    assert all(r < 0.8 for r in far.predicted)  # well below B*: half the steps after each halving
    near = seesaw_candidate(cosine, 300, 8, [8, 32, 100], per_step, [0.5, 1.0, 2.0])
    assert not near.advised and near.reason.startswith("no gain")  # far above B*: doubling saves no steps
    slow = seesaw_candidate(cosine, 300, 8, [8, 32, 100], {8: 1.0, 32: 8.0, 100: 30.0}, [4000.0, 5000.0, 6000.0])
    assert not slow.advised  # fewer steps, each one dearer
    flat = seesaw_candidate(tiny_config(batch_sizes=(8, 32)), 300, 8, [8, 32], per_step, [4000.0])
    assert [p.batch_size for p in flat.phases] == [8] and "never halves" in flat.reason and not flat.advised


def test_a_seesaw_its_check_finds_worse_is_not_advised_and_the_advice_says_so_first():
    import msgspec

    from jbatch.results.records import ScheduleCandidate, Spread
    from jbatch.sweeps.advise import apply_check

    published = read_advice(Path(__file__).parents[1] / "results" / "advise-digits-mlp-sgd")
    check = published.warmup_check
    fixed = check.steps_to_target.fixed
    slower = Spread(values=[v * 3 for v in fixed.values], n=fixed.n, of=fixed.of, mean=fixed.mean * 3,
                    interval=[fixed.interval[1] * 1.5, fixed.interval[1] * 6])  # fmt: skip
    worse = msgspec.structs.replace(
        check, steps_to_target=msgspec.structs.replace(check.steps_to_target, warmup=slower)
    )
    seesaw = ScheduleCandidate(name="seesaw", phases=check.phases, advised=True, reason="predicted faster", check=check)
    doc = msgspec.structs.replace(published, seesaw=seesaw)
    apply_check(doc)  # its check a tie: left as advised
    assert doc.seesaw.advised
    doc = msgspec.structs.replace(published, seesaw=msgspec.structs.replace(seesaw, check=worse))
    apply_check(doc)
    assert not doc.seesaw.advised and doc.seesaw.reason.startswith("its check against the sweep found it worse")
    text = markdown(doc)
    first = next(line for line in text.splitlines() if line.startswith("**"))
    assert first.startswith("**The Seesaw schedule this advice proposed is not advised: its check")
    assert "The Seesaw trained to the target" in text and "| Seesaw / fixed |" in text
