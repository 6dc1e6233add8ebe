"""The claims report from a small recorded sweep, and verdicts that flip when the data
are changed so that a claim no longer holds."""

import copy
import json
from pathlib import Path

import pytest

from jbatch.claims import Sweep, verdicts, write_claims

DATA = Path(__file__).parent / "data" / "sweep_small"


@pytest.fixture
def doc():
    return json.loads((DATA / "sweep.json").read_text())


def _verdicts(doc, tmp_path, name="s"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "sweep.json").write_text(json.dumps(doc))
    return verdicts([Sweep(d, doc)])


def test_report_covers_every_claim(tmp_path):
    out = write_claims([DATA], tmp_path / "claims.md")
    text = out.read_text()
    for cid in [f"C{i}" for i in range(1, 12)]:
        assert f"| {cid} | " in text
    assert "sweep_small/sweep.json" in text


def test_c11_flips_when_training_recompiled(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C11"][0].startswith("holds")
    bad = copy.deepcopy(doc)
    next(iter(bad["batch_sizes"].values()))["compilations_during_training"] = 1
    assert _verdicts(bad, tmp_path)["C11"][0] == "does not hold"


def test_c6_flips_when_an_epoch_had_the_wrong_number_of_steps(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C6"][0].startswith("holds")
    bad = copy.deepcopy(doc)
    bad["batch_sizes"]["8"]["steps_per_epoch"] -= 1  # as if the partial batch had been dropped
    assert _verdicts(bad, tmp_path)["C6"][0] == "does not hold"


def test_c9_flips_when_test_loss_never_rises(doc, tmp_path):
    before = _verdicts(doc, tmp_path)["C9"][0]
    flat = copy.deepcopy(doc)
    for result in flat["batch_sizes"].values():
        for rep in result["replicas"]:
            tl = rep["curve"]["test_loss"]
            running = []
            for v in tl:  # test loss that only ever falls: no overfitting anywhere
                running.append(v if not running or v is None or running[-1] is None else min(v, running[-1]))
            rep["curve"]["test_loss"] = running
    assert _verdicts(flat, tmp_path)["C9"][0] == "does not hold"
    assert before != "does not hold"


def test_c5_flips_when_full_batch_is_fastest(doc, tmp_path):
    assert _verdicts(doc, tmp_path)["C5"][0] == "holds"
    bad = copy.deepcopy(doc)
    n = str(bad["num_train"])
    bad["batch_sizes"][n]["timing"]["seconds_per_step"] = 1e-9  # full batch made free
    assert _verdicts(bad, tmp_path)["C5"][0].startswith("does not hold")
