"""``jbatch train``: one line per epoch, a JSON record with metadata, and one-line errors
with exit code 2 for every kind of bad input."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from jbatch.results import load, read_advice
from tests.helpers import run_cli as run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "batch size must be at least 1, got 0"),
        (["--batch-size", "-4"], "batch size must be at least 1, got -4"),
        (["--batch-size", "2000"], "batch size 2000 is larger than the 1437 training examples"),
        (["--batch-size", "3.5"], "batch size must be a positive integer or 'full', got '3.5'"),
        (["--batch-size", "many"], "batch size must be a positive integer or 'full', got 'many'"),
        (["--dataset", "cifar"], "unknown dataset 'cifar'"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--optimizer", "lion"], "unknown optimizer 'lion'"),
        (["--lr", "0"], "learning rate must be a positive finite number"),
        (["--lr", "-0.1"], "learning rate must be a positive finite number"),
        (["--lr", "nan"], "learning rate must be a positive finite number"),
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--epochs", "two"], "argument --epochs: must be a whole number, got 'two'"),
        (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["--seed", "1.5"], "argument --seed: must be a whole number, got '1.5'"),
        (["--devices", "0"], "argument --devices: must be at least 1, got 0"),
        (["--dataset", "missing.npz"], "data file 'missing.npz' does not exist"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message, capsys, tmp_path):
    code, out, err = run(["train", "--out", str(tmp_path / "r.json"), *args], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_nan_in_data_is_refused(capsys, tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 4))
    x[3, 2] = np.nan
    y = np.arange(50) % 3
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    code, _, err = run(["train", "--dataset", str(path), "--model", "linear"], capsys)
    assert code == 2
    assert "x_train holds 1 NaN or infinite values" in err


def test_user_npz_trains(capsys, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:48], y_train=y[:48], x_test=x[48:], y_test=y[48:])
    out = tmp_path / "r.json"
    code, stdout, _ = run(
        [
            "train",
            "--dataset",
            str(path),
            "--model",
            "linear",
            "--batch-size",
            "full",
            "--epochs",
            "3",
            "--lr",
            "0.5",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    record = json.loads(out.read_text())
    assert record["steps_per_epoch"] == 1 and record["num_train"] == 48
    losses = [e["train_loss"] for e in record["epochs"]]
    assert [e["iterations"] for e in record["epochs"]] == [1, 1, 1]
    assert losses[2] < losses[1] < losses[0]  # full-batch descent on a separable problem: every update helps
    printed = [ln for ln in stdout.splitlines() if ln.startswith("epoch")]
    assert len(printed) == 3 and f"train loss {losses[2]:.4f}" in printed[2]  # the printed line is the recorded one


@pytest.mark.slow
def test_train_prints_epochs_and_writes_a_record(tmp_path):
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jbatch",
            "train",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--widths",
            "32",
            "--batch-size",
            "500",
            "--epochs",
            "2",
            "--lr",
            "0.1",
            "--optimizer",
            "momentum",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 2 and "iterations     3" in lines[0]  # ceil(1437 / 500)
    record = json.loads(out.read_text())
    assert record["config"]["batch_size"] == 500 and record["config"]["seed"] == 3
    assert record["steps_per_epoch"] == 3 and len(record["epochs"]) == 2
    meta = record["metadata"]
    for key in ("versions", "backend", "device_kind", "device_count", "date", "commit", "cpu"):
        assert key in meta
    assert {"jax", "jaxlib", "flax", "optax"} <= set(meta["versions"])
    assert "hostname" not in json.dumps(meta)


@pytest.mark.slow
def test_traceback_never_reaches_the_user():
    proc = subprocess.run(
        [sys.executable, "-m", "jbatch", "train", "--batch-size", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == "jbatch: error: batch size must be at least 1, got 0\n"


def _subcommands():
    from jbatch.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [[]] + [[name] for name in sub.choices]


@pytest.mark.parametrize("command", _subcommands(), ids=lambda c: " ".join(c) or "jbatch")
def test_every_help_works(command, capsys):
    code, out, err = run([*command, "--help"], capsys)
    assert code == 0 and out.startswith("usage: jbatch") and not err


USERMODELS = (  # a user's module: a BatchNorm + Dropout model and an optimizer whose rate goes into an optax schedule
    "import optax\nfrom flax import nnx\n\n"
    "class Net(nnx.Module):\n"
    "    def __init__(self, seed):\n"
    "        rngs = nnx.Rngs(seed)\n"
    "        self.hidden, self.norm = nnx.Linear(64, 16, rngs=rngs), nnx.BatchNorm(16, rngs=rngs)\n"
    "        self.drop, self.out = nnx.Dropout(0.2, rngs=rngs), nnx.Linear(16, 10, rngs=rngs)\n"
    "    def __call__(self, x):\n"
    "        return self.out(self.drop(nnx.relu(self.norm(self.hidden(x)))))\n\n"
    "def make(seed):\n"
    "    return Net(seed)\n\n"
    "def sgd_warmup(learning_rate, momentum=0.9, warmup_steps=4):\n"
    "    return optax.sgd(optax.linear_schedule(0.0, learning_rate, warmup_steps), momentum=momentum)\n"
)


def test_train_takes_the_sweeps_workload_and_training_options(tmp_path, capsys, monkeypatch):
    """A user's model and optimizer factory by import path from the current directory (as
    ``python -m``, pytest and uvicorn find modules), with a schedule and micro-batches."""
    (tmp_path / "usermodels.py").write_text(USERMODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    out = tmp_path / "run.json"
    code, stdout, err = run(
        [
            "train",
            "--model",
            "usermodels:make",
            "--optimizer",
            "usermodels:sgd_warmup",
            "--momentum",
            "0.5",
            "--schedule",
            "cosine",
            "--warmup",
            "0.1",
            "--microbatch",
            "16",
            "--batch-size",
            "50",
            "--epochs",
            "2",
            "--lr",
            "0.3",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    record = load(out)
    config = record.config
    assert (config.workload.model, config.momentum, config.training.schedule, config.training.microbatch) == (
        "usermodels:make",
        0.5,
        "cosine",
        16,
    )
    assert record.epochs[-1].test_accuracy > 0.5 and stdout.count("\nepoch") + stdout.startswith("epoch") == 2
    # micro-batches of a BatchNorm model are not the one-shot batch's update: said and recorded
    assert len(record.inexact) == 1 and "micro-batches of 16 rows" in record.inexact[0]
    assert f"not exact: {record.inexact[0]}" in stdout
    code, _, err = run(["train", "--model", "elsewhere:make", "--out", str(out)], capsys)
    assert code == 2 and "no module 'elsewhere' in the current directory" in err
    code, _, err = run(["train", "--optimizer", "momentum", "--momentum", "0.9,0.99", "--out", str(out)], capsys)
    assert code == 2 and "a training run takes one momentum value, got [0.9, 0.99]" in err


@pytest.mark.slow
def test_advise_takes_a_users_model_and_scheduled_optimizer_by_import_path(tmp_path, capsys, monkeypatch):
    """``jbatch advise`` on a model with BatchNorm and Dropout and an optimizer whose learning
    rate goes into an optax schedule, both from a module of the current directory."""
    (tmp_path / "usermodels.py").write_text(USERMODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    code, stdout, err = run(
        [
            "advise",
            "--model",
            "usermodels:make",
            "--optimizer",
            "usermodels:sgd_warmup",
            "--batch-sizes",
            "8,32",
            "--lrs",
            "0.01,0.1",
            "--seeds",
            "0",
            "--trunk-steps",
            "20",
            "--checkpoints",
            "2",
            "--multipliers",
            "1,4",
            "--examples",
            "64",
            "--results-dir",
            str(tmp_path / "runs"),
        ],
        capsys,
    )
    assert code == 0, err
    doc = read_advice(next((tmp_path / "runs").glob("advise-*")))
    assert doc.config.workload.model == "usermodels:make" and doc.recommended in (8, 32)
    assert set(doc.trunk_learning_rates) == {"0.01", "0.1"} and doc.learning_rate in (0.01, 0.1)
    assert [e.step for e in doc.branching.checkpoints] == [0, 20] and "Recommended fixed batch size" in stdout
