"""``jbatch report`` regenerates the same tables from the JSON alone; bad documents are
clear errors."""

from pathlib import Path

import pytest

from jbatch.config import SweepConfig
from jbatch.results import SWEEP as DOCUMENT
from tests.helpers import run_cli as run
from tests.helpers import sweep, tiny_config


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory):
    cfg = tiny_config(name="r", batch_sizes=(1, 32, "full"), target_value=0.6, evals=6, noise_checkpoints=2)
    directory, _ = sweep(cfg, tmp_path_factory.mktemp("res"), tiny)
    return directory


def _tables(directory: Path) -> dict[str, bytes]:
    """``table.md`` and ``table.csv`` of a sweep directory, computed here from its JSON."""
    from jbatch.analysis.summary import summarize, sweep_fit
    from jbatch.report.sweep import csv_table, markdown_table
    from jbatch.results import read_sweep

    doc = read_sweep(directory)
    rows = summarize(doc)
    return {"table.md": markdown_table(doc, rows, sweep_fit(rows)).encode(), "table.csv": csv_table(rows).encode()}


@pytest.mark.slow
def test_report_regenerates_identical_tables_from_the_json(swept, capsys):
    expected = _tables(swept)  # one computation here, one by the command
    code, out, _ = run(["report", str(swept)], capsys)
    assert code == 0 and "table.md" in out
    for name, data in expected.items():
        assert (swept / name).read_bytes() == data
    for png in ("steps_to_target", "seconds_to_target", "loss_curves", "best_lr", "tradeoff", "noise_scale"):
        assert (swept / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_has_one_row_per_batch_size_with_regimes(swept):
    tables = {name: text.decode() for name, text in _tables(swept).items()}
    lines = tables["table.md"].splitlines()
    rows = lines[2 : lines.index("")]  # the main table, up to its notes
    assert [r.split("|")[1].strip() for r in rows] == ["stochastic", "mini-batch", "full-batch"]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "32", "300"]
    csv_lines = tables["table.csv"].splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("regime,batch_size,steps_per_epoch,best_learning_rate")


def test_report_on_a_corrupt_or_missing_document(tmp_path, capsys):
    code, _, err = run(["report", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "does not exist" in err
    (tmp_path / DOCUMENT).write_text("{not json")
    code, _, err = run(["report", str(tmp_path)], capsys)
    assert code == 2 and "is not valid JSON" in err and "Traceback" not in err
    (tmp_path / DOCUMENT).write_text('{"kind": "something else"}')
    code, _, err = run(["report", str(tmp_path)], capsys)
    assert code == 2 and "is not a jbatch sweep document" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lrs", ","], "the learning-rate grid is empty"),
        (["--target", "f1=0.9"], "unknown target metric 'f1'"),
        (["--target", "accuracy"], "target must look like test_accuracy=0.95"),
        (["--batch-sizes", "1,5000"], "batch size 5000 is larger than the 1437 training examples"),
        (["--config", "missing.toml"], "cannot read config file 'missing.toml'"),
        (["--preset", "cifar"], "unknown preset 'cifar'; known: digits-mlp-sgd, mnist1d-mlp-sgd, mnist1d-cnn-sgd"),
    ],
)
def test_sweep_cli_bad_input(args, message, capsys, tmp_path):
    code, _, err = run(["sweep", "--results-dir", str(tmp_path), *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_sweep_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text('batch_sizes = [1, "full"]\nseeds = [0]\nlearning_rates = [0.1]\ntarget_metric = "nope"\n')
    code, _, err = run(["sweep", "--config", str(cfg), "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "unknown target metric 'nope'" in err
    cfg.write_text("batch_sizes = [1, \n")
    code, _, err = run(["sweep", "--config", str(cfg), "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "is not valid toml" in err


def test_a_plot_with_nothing_to_draw_says_so_instead_of_failing(tmp_path):
    from jbatch.report.plot import steps_to_target

    path = steps_to_target(tmp_path, [], "no batch size reached the target")  # log axes over no data used to raise
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_keeps_the_ends_of_the_configs_own_grid():
    from jbatch.config import quick

    adam = SweepConfig.of(optimizer="adam", learning_rates=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2))
    assert quick(adam).grid.learning_rates == (1e-4, 1e-3, 3e-3, 3e-2)
    assert quick(SweepConfig.of(learning_rates=(0.1, 1.0))).grid.learning_rates == (0.1, 1.0)


def test_the_measured_line_names_the_runs_of_the_results_not_the_documents_first():
    from jbatch.report.sweep import measured_on
    from jbatch.results import Metadata, convert, read_sweep

    base = {
        "device_kind": "cpu",
        "backend": "cpu",
        "device_count": 1,
        "cpu": "x",
        "versions": {"jax": "1", "flax": "2", "optax": "3"},
    }
    old = convert(base | {"date": "2026-01-01", "commit": {"id": "a" * 40, "dirty": False}}, Metadata)
    new = convert(base | {"date": "2026-02-01", "commit": {"id": "b" * 40, "dirty": True}}, Metadata)
    doc = read_sweep(Path(__file__).parent / "data" / "sweep_small")
    doc.metadata = old
    for result in doc.batch_sizes.values():  # all redone (--force)
        result.metadata = new
    assert measured_on(doc).endswith("2026-02-01, commit bbbbbbbbbb (with uncommitted changes).")
    doc.batch_sizes["8"].metadata = old  # one kept from the first run (a resume)
    assert "2026-01-01 to 2026-02-01, commit aaaaaaaaaa, bbbbbbbbbb (with uncommitted changes)." in measured_on(doc)


def test_what_is_not_exact_is_said_under_the_table():
    from jbatch.analysis.summary import summarize, sweep_fit
    from jbatch.report.sweep import markdown_table
    from jbatch.results import read_sweep

    doc = read_sweep(Path(__file__).parent / "data" / "sweep_small")
    rows = summarize(doc)
    assert "Not exact" not in markdown_table(doc, rows, sweep_fit(rows))
    doc.checks.inexact = ["micro-batches of 16 rows: each is normalised with its own batch statistics"]
    table = markdown_table(doc, rows, sweep_fit(rows))
    assert "**Not exact** (`checks.inexact`): micro-batches of 16 rows: each is normalised" in table
    assert table.index("Not exact") < table.index("Target:")  # right under the table, not at its end
