"""Memory per batch size (``jbatch.analysis.memory``): what a batch size's run records (XLA's plan
of its training program, the process's peak resident memory), the sweep table's memory section
drawn from the JSON alone, and the line through the plans that predicts the largest batch size
within a memory."""

import resource

from jbatch.analysis.memory import largest_within, line, planned, rows
from jbatch.report import table
from jbatch.report.sweep import memory_section
from jbatch.results import read_sweep
from tests.helpers import run_size, tiny_config
from tests.test_advise import SMALL


def test_a_batch_size_records_its_program_s_plan_and_the_process_s_peak(tiny):
    result = run_size(tiny_config(batch_sizes=(32,), learning_rates=(0.3,), seeds=(0,)), tiny, 32)
    m = result.memory
    assert planned(m) == m["argument_size"] + m["output_size"] + m["temp_size"] - m["alias_size"] > 0
    assert m["argument_size"] >= tiny.x_train.nbytes  # the training split is one of its arguments
    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 2**20 < result.peak_rss <= now  # a high-water mark, in bytes, taken once the batch size trained


def test_the_sweep_table_shows_memory_per_batch_size_from_the_json():
    doc = read_sweep(SMALL)
    text = "\n".join(memory_section(doc))
    found = rows(doc)
    assert [r["batch_size"] for r in found] == [1, 8, 32, 100, 300]
    mb = lambda v: table.num(v / 2**20, 3)  # noqa: E731
    for r in found:  # one row per batch size, its numbers the document's
        cells = [r["batch_size"], *(mb(r[k]) for k in ("argument", "output", "temp", "planned")), "-"]
        assert "| " + " | ".join(map(str, cells)) + " |" in text
    plans = {r["batch_size"]: r["planned"] for r in found}
    intercept, slope = line(plans)
    b = largest_within(plans, 2**30)
    assert intercept + slope * b <= 2**30 < intercept + slope * (b + 1)  # the largest, on the line
    assert f"1 GiB: B <= {b}" in text
