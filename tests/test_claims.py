"""The claims report from a small recorded sweep (``python -m tests.data.make_sweep_small``
regenerates it), and, for every claim, the verdict flipping when the measurement behind it
is changed so that the claim no longer holds (or starts to)."""

import copy
import json
from pathlib import Path

import pytest

from jbatch.report.claims import Sweep, verdicts, write_claims
from jbatch.results import AdviceDocument, Replica, SweepDocument, convert

DATA = Path(__file__).parent / "data" / "sweep_small"
ADVICE = Path(__file__).parent.parent / "results" / "advise-digits-mlp-sgd" / "advise.json"


@pytest.fixture
def doc():
    """The recorded sweep as its JSON (schema 1, as written then): each test changes a
    measurement in it, and the claims read it through the results contract."""
    return json.loads((DATA / "sweep.json").read_text())


def _sweep(doc, tmp_path, name="s"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "sweep.json").write_text(json.dumps(doc))
    return Sweep(d, convert(doc, SweepDocument))


def _verdicts(doc, tmp_path, name="s"):
    return verdicts([_sweep(doc, tmp_path, name)])


def _result(doc, b):
    return doc["batch_sizes"][str(b)]


def _time_step(doc, b, seconds):
    """Sets B's measured seconds per step, with a 10% interval (as if the rounds said so)."""
    t = _result(doc, b)["timing"]
    t["seconds_per_step"], t["seconds_per_step_interval"] = seconds, [0.9 * seconds, 1.1 * seconds]
    t["seconds_per_epoch"] = seconds * _result(doc, b)["steps_per_epoch"]


def test_report_covers_every_claim(tmp_path):
    out = write_claims([DATA], tmp_path / "claims.md")
    text = out.read_text()
    for cid in [f"C{i}" for i in range(1, 12)]:
        assert f"| {cid} | " in text
    assert "sweep_small/sweep.json" in text


def test_c1_flips_when_an_epoch_used_fewer_examples(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C1"][0].startswith("holds")
    _result(doc, 32)["counted"]["examples_per_epoch"][1] = 288  # as if the partial batch had been dropped
    verdict, nums, _ = _verdicts(doc, tmp_path)["C1"]
    assert verdict.startswith("does not hold") and "B=[32]" in verdict and "[288]" in nums


def test_c2_flips_when_one_epoch_is_never_enough(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C2"][0].startswith("holds only when")
    for result in doc["batch_sizes"].values():
        for rep in result["replicas"]:
            c = rep["curve"]
            c["test_accuracy"] = [0.0 if e <= 1 else v for e, v in zip(c["epoch"], c["test_accuracy"], strict=True)]
    assert _verdicts(doc, tmp_path)["C2"][0] == "holds"


def test_c3_flips_with_the_cost_of_a_full_batch_update(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C3"][0] == "holds"
    full = doc["num_train"]
    b1 = _result(doc, 1)["timing"]["seconds_per_step"]
    _time_step(doc, full, b1)  # as cheap as a B=1 update: intervals overlap
    assert _verdicts(doc, tmp_path)["C3"][0].startswith("does not hold")
    s = _sweep(doc, tmp_path)
    best = min(v for v in (s.mean(b, "seconds_to_target") for b in s.sizes if b != full) if v is not None)
    _time_step(doc, full, max(3 * b1, best / s.mean(full, "steps_to_target")))  # dearer, but as fast to the target
    assert _verdicts(doc, tmp_path)["C3"][0].startswith("holds only in cost per update")


def _wander(doc, b, swing):
    """Makes B's fixed-sample training loss go up and down by ``swing`` (log) at every fine
    point: a share of about 0.5 of its movement uphill; 0 makes it fall steadily."""
    for rep in _result(doc, b)["replicas"]:
        c = rep["curve"]
        c["sample_loss"] = [2.0 * 0.9**i * (1.0 + swing * (i % 2)) for i in range(len(c["step"]))]


def test_c4_gains_and_loses_its_oscillation_part(doc, tmp_path):
    assert "it oscillates more than every mini-batch" not in _verdicts(doc, tmp_path)["C4"][0]  # B=1 is calm here
    _wander(doc, 1, 0.5)
    assert "it oscillates more than every mini-batch" in _verdicts(doc, tmp_path)["C4"][0]
    _wander(doc, 8, 0.5)  # a mini-batch that wanders as much
    assert "oscillates more" not in _verdicts(doc, tmp_path)["C4"][0]


def test_oscillation_is_zero_for_a_model_that_does_not_train(doc, tmp_path):
    """The old per-step statistic gave 0.5 to a model with learning rate 0 (mini-batch losses
    go up half the time by sampling alone); on a fixed sample it is None: no movement."""
    from jbatch.analysis.selection import oscillation

    rep = _result(doc, 1)["replicas"][0]
    assert 0 <= oscillation(convert(rep, Replica)) < 0.5
    rep["curve"]["sample_loss"] = [2.3] * len(rep["curve"]["step"])
    assert oscillation(convert(rep, Replica)) is None


def test_c4_gains_its_speed_part_when_b1_is_slower_to_the_target(doc, tmp_path):
    assert "slower to the target" not in _verdicts(doc, tmp_path)["C4"][0]  # B=1 is in the fastest set here
    _time_step(doc, 1, 1e-4)  # 30x dearer updates: B=1 now falls out of the fastest set (updates no longer cheapest)
    verdict = _verdicts(doc, tmp_path)["C4"][0]
    assert "slower to the target" in verdict and "updates are the cheapest" not in verdict


def test_c5_flips_when_full_batch_is_fastest(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C5"][0].startswith("holds")
    _time_step(doc, doc["num_train"], 1e-12)  # full batch made free
    assert _verdicts(doc, tmp_path)["C5"][0].startswith("does not hold")


def test_c5_is_a_tie_when_intervals_overlap(doc, tmp_path):
    s = _sweep(doc, tmp_path)
    best = s.fastest[0]
    target = s.mean(best, "seconds_to_target")
    _time_step(doc, doc["num_train"], 1.02 * target / s.mean(doc["num_train"], "steps_to_target"))  # 2% slower
    verdict = _verdicts(doc, tmp_path)["C5"][0]
    assert verdict.startswith("holds, tied") and str(doc["num_train"]) in verdict


def test_c6_flips_when_an_epoch_had_another_number_of_updates(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C6"][0].startswith("holds")
    _result(doc, 8)["counted"]["updates_per_epoch"][0] = [37]  # as if the partial batch had been dropped
    verdict, nums, _ = _verdicts(doc, tmp_path)["C6"]
    assert verdict == "does not hold at B=[8]" and "B=8: [37]" in nums


def test_c7_flips_when_epochs_get_faster_and_calmer_with_b(doc, tmp_path):
    s = _sweep(doc, tmp_path)
    small = [b for b in s.sizes if b <= max(s.fit["b_crit"], s.sizes[1])]
    _time_step(doc, small[-1], _result(doc, 1)["timing"]["seconds_per_step"])  # epochs: fewer steps, same cost
    _time_step(doc, 1, _result(doc, 1)["timing"]["seconds_per_step"])
    for b in small:
        _wander(doc, b, 0.5)
    assert _verdicts(doc, tmp_path)["C7"][0].startswith("holds only for speed per epoch")
    _time_step(doc, small[-1], 1.0)  # an epoch now slower at the larger B
    assert _verdicts(doc, tmp_path)["C7"][0] == "does not hold"
    _time_step(doc, small[-1], _result(doc, 1)["timing"]["seconds_per_step"])
    _wander(doc, small[-1], 0.0)  # calm at the larger B
    assert _verdicts(doc, tmp_path)["C7"][0] == "holds"


def test_c8_flips_under_perfect_scaling_and_does_not_follow_from_the_fit(doc, tmp_path):
    s = _sweep(doc, tmp_path)
    from jbatch.report.claims import c8

    assert c8(s)[0] == "holds"
    for b in s.sizes:  # steps that fall as 1/B and epochs that stay the same: no diminishing returns
        row = s.row(b)
        row["steps_to_target"]["mean"] = 1000 / b
        row["epochs_to_target"]["mean"] = 1000 / b / row["steps_per_epoch"]
        row["examples_to_target"]["mean"] = 1000 - b  # the largest B is the thriftiest: nothing lies past it
    assert c8(s)[0].startswith("not measured")
    for b in s.sizes:
        s.row(b)["examples_to_target"]["mean"] = 1000 + b
    assert c8(s)[0] == "does not hold"  # with the fit untouched: the verdict comes from the measured steps


def test_c9_flips_when_test_loss_rises_after_its_minimum(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C9"][0] == "does not hold"  # these runs are too short to overfit
    for result in doc["batch_sizes"].values():
        for rep in result["replicas"]:
            loss = rep["curve"]["test_loss"]
            rep["curve"]["test_loss"] = [*loss[:-1], 2 * min(v for v in loss if v is not None)]  # up at the end
    assert _verdicts(doc, tmp_path)["C9"][0] == "holds"


def test_c10_compares_distinct_workloads_with_one_optimizer(doc, tmp_path):
    one = _sweep(doc, tmp_path, "a")
    assert verdicts([one])["C10"][0].startswith("not measured")  # never a sweep against itself
    assert verdicts([one, _variant(doc, tmp_path, "b")])["C10"][0].startswith("not measured")  # the same workload
    assert verdicts([one, _variant(doc, tmp_path, "c", dataset="other", optimizer="adam")])["C10"][0].startswith(
        "not measured"
    )  # another optimizer: a difference could be the optimizer's
    same = _variant(doc, tmp_path, "d", dataset="other")
    assert verdicts([one, same])["C10"][0] == "does not hold: the workloads agree"
    other = _variant_doc(doc, "e", dataset="other")
    _time_step(other, other["num_train"], 1e-12)  # another fastest batch size
    assert verdicts([one, _sweep(other, tmp_path, "e")])["C10"][0].startswith("holds")
    empty = copy.deepcopy(other)
    for result in empty["batch_sizes"].values():
        for rep in result["replicas"]:
            rep["curve"]["test_accuracy"] = [0.0] * len(rep["curve"]["test_accuracy"])
    assert verdicts([one, _sweep(empty, tmp_path, "f")])["C10"][0].startswith("not measured")  # no fastest set


def test_c11_flips_when_a_new_shape_does_not_compile_or_padding_does(doc, tmp_path):
    """From a schema-1 sweep's own record of the demonstration (it ran inside the sweep then)."""
    assert _verdicts(doc, tmp_path)["C11"][0].startswith("holds")
    bad = copy.deepcopy(doc)
    demo = _result(bad, 8)["compilations"]
    assert len(demo["batch_shapes"]) == 2  # 300 = 37 * 8 + 4
    demo["plain_step_compilations"] = 1  # as if jax reused one program for two shapes
    assert _verdicts(bad, tmp_path)["C11"][0].startswith("does not hold: the plain step")
    _result(doc, 8)["compilations"]["padded_epoch_compilations"] = 2
    assert _verdicts(doc, tmp_path)["C11"][0].startswith("does not hold for jbatch's padded epoch")


def test_c11_comes_from_bench_c11s_document_when_given(doc, tmp_path):
    from jbatch.results.records import ShapeDemoDocument

    s = _sweep(doc, tmp_path)
    meta = convert(doc, SweepDocument).metadata
    rows = [
        {
            "batch_size": 8,
            "batch_shapes": [4, 8],
            "plain_step_compilations": 2,
            "padded_epoch_compilations": 1,
            "padded_epoch_calls": 3,
        }
    ]
    shapes = convert(
        {"kind": "jbatch.c11", "dataset": "tiny", "num_train": 300, "rows": rows, "metadata": {}}, ShapeDemoDocument
    )
    assert meta is not None and verdicts([s], shapes)["C11"][1].startswith(
        "a plain jax.jit step fed an epoch's unpadded batches compiled 2x at B=8"
    )
    assert verdicts([s], shapes)["C11"][0].startswith("holds")
    rows[0]["padded_epoch_compilations"] = 3  # the padded epoch recompiled in its later calls
    shapes = convert(
        {"kind": "jbatch.c11", "dataset": "tiny", "num_train": 300, "rows": rows, "metadata": {}}, ShapeDemoDocument
    )
    assert verdicts([s], shapes)["C11"][0].startswith("does not hold for jbatch's padded epoch")
    legacy = copy.deepcopy(doc)
    for result in legacy["batch_sizes"].values():
        del result["compilations"]  # a sweep of schema 2 no longer runs the demonstration
    assert _verdicts(legacy, tmp_path)["C11"][0].startswith("not measured")


def _variant_doc(doc, name, **config):
    other = copy.deepcopy(doc)
    other["name"] = name
    other["config"] |= config
    if "dataset" in config:  # another data set: other arrays
        other["data_sha256"] = f"{config['dataset']}-arrays"
    return other


def _variant(doc, tmp_path, name, **config):
    return _sweep(_variant_doc(doc, name, **config), tmp_path, name)


def test_o1_momentum_extends_perfect_scaling_when_b_crit_is_larger(doc, tmp_path):
    from jbatch.report.claims import o1

    sgd, mom = _sweep(doc, tmp_path, "sgd"), _variant(doc, tmp_path, "mom", optimizer="momentum")
    assert o1([sgd, mom])[0].startswith("not shown")  # the same steps: the same B_crit
    mom.fit = mom.fit | {
        "b_crit": 10 * sgd.fit["b_crit"],
        "interval": {"low": 2 * sgd.fit["interval"]["high"], "high": 20 * sgd.fit["interval"]["high"]},
    }
    assert o1([sgd, mom])[0] == "holds"
    low = sgd.fit["interval"]["low"]
    mom.fit = mom.fit | {"interval": {"low": 0.1 * low, "high": 0.5 * low}}
    assert o1([sgd, mom])[0] == "does not hold"
    assert o1([sgd])[0].startswith("not measured")


def test_o4_adam_against_sgd_ignores_the_beta2_rule_sweep(doc, tmp_path):
    from jbatch.report.claims import o4

    sgd, adam = _sweep(doc, tmp_path, "sgd"), _variant(doc, tmp_path, "adam", optimizer="adam")
    rule = _variant(doc, tmp_path, "rule", optimizer="adam", beta2_reference=64)
    assert o4([sgd, adam])[0].startswith("not shown")
    adam.fit = adam.fit | {
        "b_crit": 10 * sgd.fit["b_crit"],
        "interval": {"low": 2 * sgd.fit["interval"]["high"], "high": 20 * sgd.fit["interval"]["high"]},
    }
    assert o4([sgd, adam, rule])[0] == "holds"  # the rule's sweep (a tie with SGD) is not a second pair
    assert o4([sgd, rule])[0].startswith("not measured")


def test_o2_adam_surge_or_monotone(doc, tmp_path):
    from jbatch.report.claims import o2

    raw = _variant_doc(doc, "adam", optimizer="adam")
    assert o2([_sweep(raw, tmp_path, "adam")])[0].startswith("not shown: no fall at this resolution")  # 0.03, then 0.3
    for rep in raw["batch_sizes"]["300"]["replicas"]:  # full batch: only the smallest rate reaches it now
        c = rep["curve"]
        c["test_accuracy"] = [0.1] + [0.9 if rep["learning_rate"] == 0.03 else 0.1] * (len(c["test_accuracy"]) - 1)
    adam = _sweep(raw, tmp_path, "adam")
    assert o2([adam])[0] == "holds: it rises, then falls"


def test_o3_beta2_rule_helps_when_b1_reaches_faster(doc, tmp_path):
    from jbatch.report.claims import o3

    def long(d):  # B=1 runs that outlast beta2's memory: the fine points 100x further apart
        for rep in d["batch_sizes"]["1"]["replicas"]:
            rep["curve"]["step"] = [100 * st for st in rep["curve"]["step"]]
            rep["coarse"]["step"] = [100 * st for st in rep["coarse"]["step"]]
        return d

    off = _variant_doc(doc, "off", optimizer="adam")
    same = _variant_doc(doc, "on", optimizer="adam", beta2_reference=64)
    assert o3([_sweep(off, tmp_path, "off"), _sweep(same, tmp_path, "on")])[0].startswith("not testable here")
    off, same = long(off), long(same)  # a few dozen steps above: beta2 cannot matter; now it can
    assert o3([_sweep(off, tmp_path, "off"), _sweep(same, tmp_path, "on")])[0].startswith("not shown")
    faster = copy.deepcopy(same)
    for rep in faster["batch_sizes"]["1"]["replicas"]:
        c = rep["curve"]
        c["test_accuracy"] = [0.1] + [0.9] * (len(c["test_accuracy"]) - 1)  # at the target from the first point on
    assert o3([_sweep(off, tmp_path, "off"), _sweep(faster, tmp_path, "on")])[0] == "holds"


def test_o5_b_crit_against_the_noise_scale_averaged_along_training(doc, tmp_path):
    from jbatch.analysis.summary import noise_averaged
    from jbatch.report.claims import o5

    s = _sweep(doc, tmp_path, "sgd")
    along = noise_averaged(s.rows)
    s.fit = s.fit | {"b_crit": along, "interval": {"low": 0.8 * along, "high": 1.2 * along}}
    assert o5([s])[0] == "holds"
    s.fit = s.fit | {"b_crit": 10 * along, "interval": {"low": 8 * along, "high": 12 * along}}
    assert o5([s])[0] == "does not hold"
    s.fit = s.fit | {"interval": {"low": None, "high": None}}  # one seed per batch size: no interval
    assert o5([s])[0].startswith("not measured") and "no interval, not judged" in o5([s])[1]
    adam = _variant(doc, tmp_path, "adam", optimizer="adam")
    assert o5([adam])[0].startswith("not measured") and "adam, not judged" in o5([adam])[1]


def _advice(verdict_steps, final_worse=False, cost=0.1, ratio=1.0, raw=False, machine=None):
    """An advice document checked against a sweep (a published one, changed), with a warm-up
    check whose steps interval lies below, across or above the fixed batch size's; its JSON
    when ``raw``, else its record."""
    lo, hi = {"fewer": (40, 60), "tie": (80, 120), "more": (150, 170)}[verdict_steps]
    spread = lambda v, a, b: {"values": [v, v], "n": 2, "of": 2, "mean": v, "interval": [a, b]}  # noqa: E731
    base = json.loads(ADVICE.read_text())
    check = base["warmup_check"] | {
        "phases": [
            {"batch_size": 8, "steps": 10, "learning_rate": 0.1},
            {"batch_size": 64, "steps": 90, "learning_rate": 1.0},
        ],
        "reference": {"batch_size": 64},
        "higher_is_better": True,
        "steps_to_target": {
            "warmup": spread((lo + hi) / 2, lo, hi),
            "fixed": spread(100, 90, 110),
            "ratio": (lo + hi) / 200,
            "ratio_interval": [lo / 110, hi / 90],
        },
        "seconds_to_target": {
            "warmup": spread(1.0, 0.9, 1.1),
            "fixed": spread(1.0, 0.9, 1.1),
            "ratio": 1.0,
            "ratio_interval": [0.8, 1.2],
        },
        "final": {
            "warmup": spread(0.5 if final_worse else 0.9, 0.45 if final_worse else 0.88, 0.55 if final_worse else 0.92),
            "fixed": spread(0.9, 0.88, 0.92),
        },
    }
    doc = base | {
        "recommended": 64,
        "b_crit": 48.0,
        "b_crit_censored": True,
        "b_simple_along_training": 55.0,
        "warmup": [{"batch_size": 8, "steps": 10}, {"batch_size": 64, "steps": 0}],
        "cost": base["cost"] | {"total": 10.0},
        "sweep_estimate": base["sweep_estimate"] | {"seconds": 10.0 / 0.34, "fraction": 0.34},  # the lower bound's
        "warmup_check": check,
        "against": base["against"]
        | {
            "seconds": 10.0 / cost,
            "cost_fraction": cost,
            "fastest": 64,
            "fastest_set": [8, 64],
            "recommended_over_fastest": ratio,
            "recommended_over_fastest_interval": [0.5, 2.0],
            "b_crit": 100.0,
            "b_crit_interval": [80.0, 120.0],
            "machine": machine or f"{base['metadata']['cpu']} x {base['metadata']['cpu_count']}",  # same: measured
        },
    }
    return doc if raw else convert(doc, AdviceDocument)


def test_o6_follows_the_warmups_steps_and_final_quality():
    from jbatch.report.advice import o6, row

    assert o6({"a": _advice("fewer"), "b": _advice("fewer")})[0] == "holds"
    assert o6({"a": _advice("fewer", final_worse=True)})[0] == "does not hold"  # fewer steps, lost quality
    assert o6({"a": _advice("more"), "b": _advice("more")})[0] == "does not hold"
    mixed = o6({"a": _advice("fewer"), "b": _advice("tie"), "c": _advice("more")})[0]
    assert mixed == "holds on 1 of 3 workloads, does not on 1, ties on 1"
    assert o6({})[0].startswith("not measured")
    assert o6({"a": _advice("tie"), "b": _advice("tie")})[0].startswith("not shown: a tie on all 2 workloads")
    assert row("a", _advice("tie"))[-1] == "cost yes, pick yes"
    assert row("a", _advice("tie", cost=0.5, ratio=1.3))[-1] == "cost no, pick no"
    elsewhere = row("a", _advice("tie", cost=0.01, machine="another CPU x 64"))  # a sweep on another machine:
    assert "lower bound" in elsewhere[1] and "another CPU x 64" in elsewhere[1]  # against the lower bound instead
    assert elsewhere[-1].startswith("cost no")  # the lower bound (0.34 of it), not the 0.01 given


def test_claims_with_advice_name_them_and_add_o6_and_the_table(tmp_path):
    from jbatch.errors import ConfigError
    from jbatch.report.advice import load_advice

    d = tmp_path / "advise-w"
    d.mkdir()
    (d / "advise.json").write_text(json.dumps(_advice("fewer", raw=True)))
    text = write_claims([DATA], tmp_path / "claims.md", [d]).read_text()
    assert "`advise-w/advise.json`" in text.splitlines()[2]
    assert "| O6 | " in text and "## `jbatch advise` against the sweeps" in text
    assert "| w | 0.1 (10 s / 100 s, same machine) |" in text
    unchecked = _advice("fewer", raw=True)
    del unchecked["against"]
    (d / "advise.json").write_text(json.dumps(unchecked))
    with pytest.raises(ConfigError, match="was not run --against a sweep"):
        load_advice(d)
