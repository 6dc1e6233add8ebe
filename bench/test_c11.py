"""Claim C11's demonstration (``bench/c11.py``, a plain test): a plain ``jax.jit`` step compiles
once per batch shape of an epoch, jbatch's padded epoch once in all, and ``jbatch claims``
reads the document it writes."""

from __future__ import annotations

from pathlib import Path

from bench.c11 import main, measure
from jbatch.report.claims import Sweep, c11
from jbatch.results import load, read_sweep
from jbatch.results.records import ShapeDemoDocument

SMALL = Path(__file__).resolve().parent.parent / "tests" / "data" / "sweep_small"


def test_the_plain_step_compiles_per_shape_and_the_padded_epoch_once(tmp_path):
    doc = measure("digits", [16, "full"], 2, tmp_path)  # 1437 = 89 x 16 + 13: a partial last batch at 16
    rows = {r.batch_size: r for r in doc.rows}
    assert rows[16].batch_shapes == [13, 16] and rows[16].plain_step_compilations == 2
    assert rows[1437].batch_shapes == [1437] and rows[1437].plain_step_compilations == 1
    assert all(r.padded_epoch_compilations == 1 and r.padded_epoch_calls == 2 for r in doc.rows)
    assert load(tmp_path / "c11.json", ShapeDemoDocument) == doc
    verdict, numbers, _ = c11(Sweep(SMALL, read_sweep(SMALL)), doc)
    assert (
        verdict.startswith("holds: one compilation per batch shape") and "2x at B=16 (batch sizes [13, 16])" in numbers
    )


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["--epochs", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "bench.c11: error: --epochs must be at least 1, got 0"
