"""The results contract (``jbatch.results``): one reader and one writer for every document.

A damaged, misnamed, older or newer document is accepted or refused the same way by every
command that reads it (report, claims, compare, advise --against, a resuming sweep), a
refusal is one line naming the file and the field, and a refused document is left as it
was; what a writer writes loads back as the same record."""

import copy
import json
from pathlib import Path

import pytest

from jbatch.errors import ConfigError
from jbatch.results import SCHEMA_VERSION, SweepDocument, decode, dump, encode, load, read_sweep
from tests.helpers import run_cli

SMALL = Path(__file__).parent / "data" / "sweep_small"
RAW = json.loads((SMALL / "sweep.json").read_text())  # schema 1, as a sweep wrote it then


def _all_nan_curves(doc):  # a batch size whose every evaluation came out non-finite (null in JSON)
    for rep in doc["batch_sizes"]["8"]["replicas"]:
        for curve in (rep["curve"], rep["coarse"]):
            for key in curve:
                if key not in ("step", "epoch"):
                    curve[key] = [None] * len(curve[key])


def _core_config(doc):  # a config with only the keys every jbatch ever wrote: the others take their defaults
    doc["config"] = {
        k: doc["config"][k]
        for k in (
            "name",
            "dataset",
            "model",
            "optimizer",
            "batch_sizes",
            "learning_rates",
            "seeds",
            "target_metric",
            "target_value",
        )
    }


def _renamed_batch_sizes(doc):
    doc["batch_sizez"] = doc.pop("batch_sizes")


def _drop_config(doc):
    del doc["config"]


def _string_batch(doc):
    doc["batch_sizes"]["8"]["batch_size"] = "8"


def _no_replicas(doc):
    doc["batch_sizes"]["8"]["replicas"] = []


def _zero_step(doc):
    doc["batch_sizes"]["8"]["timing"]["seconds_per_step"] = 0


def _null_target(doc):  # a non-finite target, as JSON writes it
    doc["config"]["target_value"] = None


def _unknown_metric(doc):
    doc["config"]["target_metric"] = "test_f1"


def _no_batch_size(doc):
    del doc["batch_sizes"]["8"]["batch_size"]


def _key_mismatch(doc):
    doc["batch_sizes"]["9"] = doc["batch_sizes"].pop("8")


def _newer(doc):
    doc["schema_version"] = SCHEMA_VERSION + 1


def _no_num_train(doc):
    doc["num_train"] = 0


ACCEPTED = [_all_nan_curves, _core_config]
REFUSED = {  # what the one line says, besides the file
    _renamed_batch_sizes: "unknown field `batch_sizez`",
    _drop_config: "missing required field `config`",
    _string_batch: "batch_sizes.8.batch_size: expected `int`, got `str`",
    _no_replicas: "batch_sizes.8.replicas: expected `array` of length >= 1",
    _zero_step: "batch_sizes.8.timing.seconds_per_step: expected `float` > 0.0",
    _null_target: "config.target.value: expected `float`, got `null`",
    _unknown_metric: "target_metric 'test_f1' is not one of",
    _no_batch_size: "batch_sizes.8: object missing required field `batch_size`",
    _key_mismatch: "batch size 9 records batch_size 8",
    _newer: f"follows results schema {SCHEMA_VERSION + 1}, newer than this jbatch's {SCHEMA_VERSION}",
    _no_num_train: "num_train: expected `int` >= 1",
}


def _write(tmp_path, change):
    doc = copy.deepcopy(RAW)
    change(doc)
    directory = tmp_path / RAW["name"]  # where a sweep of its config writes: a resume reads it
    directory.mkdir()
    (directory / "sweep.json").write_text(json.dumps(doc))
    return directory


def _outcomes(directory, tmp_path, capsys, tiny):
    """What each reader makes of ``directory``: None (accepted) or its one line."""
    from jbatch.sweeps.advise import check_against
    from jbatch.sweeps.driver import run_sweep
    from jbatch.workloads.workload import for_config

    out = {}
    for name, argv in (
        ("report", ["report", str(directory)]),
        ("claims", ["claims", str(directory), "--out", str(tmp_path / "claims.md")]),
        ("compare", ["compare", str(directory), str(directory)]),
    ):
        code, _, err = run_cli(argv, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in err and len(lines) <= 1, err
        assert code in (0, 2), err
        out[name] = None if code == 0 else lines[0].removeprefix("jbatch: error: ")
    try:  # the sweep's own config (the pristine one, where the damage is to the config)
        config = read_sweep(directory).config
    except ConfigError:
        config = read_sweep(SMALL).config
    for name, run in (
        ("advise --against", lambda: check_against(directory, config)),
        ("resume", lambda: run_sweep(config, directory.parent, workload=for_config(config, tiny), force=False)),
    ):
        try:
            run()
            out[name] = None
        except ConfigError as e:
            out[name] = str(e)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("change", ACCEPTED, ids=lambda f: f.__name__.strip("_"))
def test_an_unusual_but_whole_document_is_accepted_by_every_reader(tmp_path, capsys, tiny, change):
    directory = _write(tmp_path, change)
    outcomes = _outcomes(directory, tmp_path, capsys, tiny)
    assert outcomes == dict.fromkeys(outcomes), outcomes
    assert (directory / "table.md").exists()


@pytest.mark.parametrize("change", REFUSED, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_document_is_refused_in_one_line_by_every_reader_and_left_untouched(tmp_path, capsys, tiny, change):
    directory = _write(tmp_path, change)
    before = (directory / "sweep.json").read_bytes()
    outcomes = _outcomes(directory, tmp_path, capsys, tiny)
    path = str(directory / "sweep.json")
    assert len(set(outcomes.values())) == 1, outcomes  # every reader says the same
    line = next(iter(outcomes.values()))
    assert line.startswith(path) and REFUSED[change] in line, line
    assert (directory / "sweep.json").read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == ["sweep.json"]  # no table, no lock left behind


def test_not_json_another_kind_and_a_directory_are_one_line(tmp_path):
    (tmp_path / "a.json").write_text('{"kind": "jbatch.sweep", ')
    with pytest.raises(ConfigError, match=r"a\.json is not valid JSON"):
        load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"kind": "jbatch.advise"}))
    with pytest.raises(ConfigError, match=r"b\.json is not a jbatch sweep document \(its kind is 'jbatch.advise'"):
        load(tmp_path / "b.json", SweepDocument)
    (tmp_path / "c.json").write_text(json.dumps({"kind": "jbatch.recipe"}))
    with pytest.raises(ConfigError, match="is not a jbatch results document"):
        load(tmp_path / "c.json")
    (tmp_path / "d.json").mkdir()
    with pytest.raises(ConfigError, match="is a directory, not a jbatch JSON file"):
        load(tmp_path / "d.json")


def test_a_schema_1_document_migrates_to_the_config_in_groups_and_writes_back_as_schema_2(tmp_path):
    doc = load(SMALL / "sweep.json")
    assert RAW.get("schema_version") is None and doc.schema_version == SCHEMA_VERSION == 2
    assert doc.config.grid.learning_rates == tuple(RAW["config"]["learning_rates"])
    assert doc.config.target.value == RAW["config"]["target_value"] and doc.config.budget.steps == 60
    assert doc.config.measurement.noise_unroll == 8  # not in that document: the setting's default
    written = json.loads(dump(tmp_path / "sweep.json", doc).read_text())
    assert written["schema_version"] == 2 and written["kind"] == "jbatch.sweep"
    assert written["config"]["grid"]["learning_rates"] == RAW["config"]["learning_rates"]
    assert load(tmp_path / "sweep.json") == doc


def test_dump_refuses_a_record_that_would_not_load_back_and_writes_nothing(tmp_path):
    doc = load(SMALL / "sweep.json")
    doc.batch_sizes["8"].timing.seconds_per_step = float("nan")  # JSON has no NaN: it would be null
    with pytest.raises(ConfigError, match=r"timing\.seconds_per_step: expected `float`, got `null`"):
        dump(tmp_path / "sweep.json", doc)
    assert not (tmp_path / "sweep.json").exists()


def test_device_state_cannot_enter_a_document():
    import numpy as np

    doc = load(SMALL / "sweep.json")
    doc.batch_sizes["8"].replicas[0].curve.test_loss[0] = np.float32(1.5)  # a host scalar becomes a number
    assert decode(encode(doc), SweepDocument).batch_sizes["8"].replicas[0].curve.test_loss[0] == 1.5
    with pytest.raises(TypeError, match="plain values only, not a object"):
        encode({"state": object()})  # a device array or a training state has no place in a document
