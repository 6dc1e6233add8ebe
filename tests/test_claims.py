"""The claims report from a small recorded sweep (``python -m tests.data.make_sweep_small``
regenerates it), and, for every claim, the verdict flipping when the measurement behind it
is changed so that the claim no longer holds (or starts to)."""

import copy
import json
from pathlib import Path

import pytest

from jbatch.claims import Sweep, verdicts, write_claims

DATA = Path(__file__).parent / "data" / "sweep_small"


@pytest.fixture
def doc():
    return json.loads((DATA / "sweep.json").read_text())


def _sweep(doc, tmp_path, name="s"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "sweep.json").write_text(json.dumps(doc))
    return Sweep(d, doc)


def _verdicts(doc, tmp_path, name="s"):
    return verdicts([_sweep(doc, tmp_path, name)])


def _result(doc, b):
    return doc["batch_sizes"][str(b)]


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
    full = _result(doc, doc["num_train"])["timing"]
    b1 = _result(doc, 1)["timing"]["seconds_per_step"]
    full["seconds_per_step"] = 1.5 * b1  # cheaper than COST_RATIO x a B=1 update
    assert _verdicts(doc, tmp_path)["C3"][0].startswith("does not hold")
    full["seconds_per_step"] = 1e-9 + 3 * b1  # expensive per update, but as fast to the target as the best
    s = _sweep(doc, tmp_path)
    best = min(v for v in (s.mean(b, "seconds_to_target") for b in s.sizes) if v is not None)
    full["seconds_per_step"] = max(3 * b1, best / s.mean(doc["num_train"], "steps_to_target"))
    assert _verdicts(doc, tmp_path)["C3"][0].startswith("holds only in cost per update")


def test_c4_gains_its_oscillation_part_when_b1_oscillates_more(doc, tmp_path):
    before = _verdicts(doc, tmp_path)["C4"][0]
    assert "oscillates more" not in before
    for rep in _result(doc, 1)["replicas"]:
        rep["oscillation"] = 0.9
    after = _verdicts(doc, tmp_path)["C4"][0]
    assert after == "holds"  # the other two parts already held


def test_c5_flips_when_full_batch_is_fastest(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C5"][0] == "holds"
    _result(doc, doc["num_train"])["timing"]["seconds_per_step"] = 1e-9  # full batch made free
    assert _verdicts(doc, tmp_path)["C5"][0].startswith("does not hold")


def test_c6_flips_when_an_epoch_had_another_number_of_updates(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C6"][0].startswith("holds")
    _result(doc, 8)["counted"]["updates_per_epoch"][0] = [37]  # as if the partial batch had been dropped
    verdict, nums, _ = _verdicts(doc, tmp_path)["C6"]
    assert verdict == "does not hold at B=[8]" and "B=8: [37]" in nums


def test_c7_flips_when_epochs_get_faster_and_calmer_with_b(doc, tmp_path):
    s = _sweep(doc, tmp_path)
    small = [b for b in s.sizes if b <= max(s.fit["b_crit"], s.sizes[1])]
    assert _verdicts(doc, tmp_path)["C7"][0] == "does not hold"
    _result(doc, small[-1])["timing"]["seconds_per_epoch"] = _result(doc, 1)["timing"]["seconds_per_epoch"] / 10
    assert _verdicts(doc, tmp_path)["C7"][0].startswith("holds only for speed per epoch")
    for rep in _result(doc, small[-1])["replicas"]:
        rep["oscillation"] = 0.1
    assert _verdicts(doc, tmp_path)["C7"][0] == "holds"


def test_c8_flips_under_perfect_scaling(doc, tmp_path):
    s = _sweep(doc, tmp_path)
    from jbatch.claims import c8

    assert c8(s)[0] == "holds"
    big = [b for b in s.sizes if b >= s.fit["b_crit"]]
    for b in big:  # steps that fall as 1/B and epochs that stay the same: no diminishing returns
        row = s.row(b)
        row["steps_to_target"]["mean"] = 1000 / b
        row["epochs_to_target"]["mean"] = 1000 / b / row["steps_per_epoch"]
    assert c8(s)[0] == "does not hold"


def test_c9_flips_when_test_loss_never_rises(doc, tmp_path):
    before = _verdicts(doc, tmp_path)["C9"][0]
    for result in doc["batch_sizes"].values():
        for rep in result["replicas"]:
            running = []
            for v in rep["curve"]["test_loss"]:  # test loss that only ever falls: no overfitting anywhere
                running.append(v if not running or v is None or running[-1] is None else min(v, running[-1]))
            rep["curve"]["test_loss"] = running
    assert _verdicts(doc, tmp_path)["C9"][0] == "does not hold"
    assert before != "does not hold"


def test_c10_needs_two_workloads_that_differ(doc, tmp_path):
    one = _sweep(doc, tmp_path, "a")
    assert verdicts([one])["C10"][0].startswith("not shown")
    assert verdicts([one, _sweep(copy.deepcopy(doc), tmp_path, "b")])["C10"][0] == "does not hold: they agree"
    other = copy.deepcopy(doc)
    _result(other, other["num_train"])["timing"]["seconds_per_step"] = 1e-9  # another fastest batch size
    assert verdicts([one, _sweep(other, tmp_path, "c")])["C10"][0].startswith("holds")


def test_c11_flips_when_a_new_shape_does_not_compile_or_padding_does(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C11"][0].startswith("holds")
    bad = copy.deepcopy(doc)
    demo = _result(bad, 8)["compilations"]
    assert len(demo["batch_shapes"]) == 2  # 300 = 37 * 8 + 4
    demo["plain_step_compilations"] = 1  # as if jax reused one program for two shapes
    assert _verdicts(bad, tmp_path)["C11"][0].startswith("does not hold: the plain step")
    _result(doc, 8)["compilations"]["padded_epoch_compilations"] = 2
    assert _verdicts(doc, tmp_path)["C11"][0].startswith("does not hold for jbatch's padded epoch")
