"""The batch size each finder people use would pick, against a sweep (``jbatch.analysis.finders``),
and claim O7 (``jbatch advise`` within 1.25x of the fastest, never slower than another rule beyond
the intervals, at a fifth of a sweep's cost): each rule follows its definition, and the claim
comes out either way."""

import json
from pathlib import Path

from msgspec import convert

from jbatch.analysis.finders import measured, picks, playbook, worse
from jbatch.report.advice import finder_lines, o7
from jbatch.results.records import AdviceDocument

ADVICE = Path(__file__).parents[1] / "results" / "advise-mnist1d-mlp-sgd" / "advise.json"


def _doc(seconds, steps, recommended, b_simple=60.0, reached=None, spread=0.1, cost=0.1):
    """The published advice with its sweep's numbers replaced: seconds and steps to target per
    batch size (intervals +-``spread``), every seed reaching it unless ``reached`` says."""
    base = json.loads(ADVICE.read_text())
    meta = base["metadata"]
    fastest = min(seconds, key=seconds.get)
    against = base["against"] | {
        "seconds": base["cost"]["total"] / cost,
        "cost_fraction": cost,
        "fastest": fastest,
        "seconds_to_target": {str(b): v for b, v in seconds.items()},
        "seconds_to_target_interval": {str(b): [v * (1 - spread), v * (1 + spread)] for b, v in seconds.items()},
        "steps_to_target": {str(b): v for b, v in steps.items()},
        "reached": {str(b): (reached or {}).get(b, [2, 2]) for b in [1, 8, 64, 512, 4000]},
        "machine": f"{meta['cpu']} x {meta['cpu_count']}",
        "samples_per_second": {"1": 1e4, "8": 5e4, "64": 2e5, "512": 3e5, "4000": 2.5e5},  # 512 the most
    }
    return convert(
        base | {"recommended": recommended, "b_simple_along_training": b_simple, "against": against}, AdviceDocument
    )


SECONDS = {1: 3.0, 8: 1.2, 64: 1.0, 512: 2.5, 4000: 20.0}
STEPS = {1: 3000.0, 8: 400.0, 64: 60.0, 512: 45.0, 4000: 44.0}


def test_each_rule_picks_by_its_definition():
    doc = _doc(SECONDS, STEPS, recommended=64, b_simple=150.0)
    want = {"fits": 4000, "throughput": 512, "playbook": 4000, "noise": 64, "default": 64, "advise": 64}
    assert picks(doc) == want
    fewer = _doc(SECONDS, {**STEPS, 4000: 46.0}, recommended=64)  # 4000 no longer cuts the steps
    assert picks(fewer)["playbook"] == 512
    missed = _doc(SECONDS, STEPS, recommended=64, reached={4000: [1, 2]})  # a seed of 4000 missed the target
    assert picks(missed)["playbook"] == 512 and measured(missed, 4000)["missed"]
    assert playbook({}, [1, 8]) is None
    assert measured(doc, 8)["ratio"] == 1.2 and measured(doc, 8)["interval"][0] < 1.2 < measured(doc, 8)["interval"][1]


def test_o7_holds_when_advise_is_near_the_fastest_and_not_when_another_rule_beats_it():
    good = _doc(SECONDS, STEPS, recommended=64)
    assert o7({"w": good})[0] == "holds"
    slow = _doc(SECONDS, STEPS, recommended=1)  # 3x the fastest, and B = 32's pick (64) faster beyond intervals
    verdict, numbers, _ = o7({"w": good, "v": slow})
    assert (
        verdict == "holds on 1 of 2 workloads"
        and "v: no (3x), no (worse than noise scale B_simple (McCandlish), B = 32)" in numbers
    )
    assert worse(slow, 1, 64) and not worse(good, 64, 8)
    costly = _doc(SECONDS, STEPS, recommended=64, cost=0.5)
    assert o7({"w": costly})[0] == "does not hold"
    assert "no (0.5; learning rate " in finder_lines({"w": costly})[-1]  # and where the advice's time went
    lines = finder_lines({"w": good, "v": slow})
    assert any(line.startswith("| v (2) | 4000: 20 [") and "| 512: 2.5 [" in line for line in lines)
