"""jbatch's public surface: a few documented names at ``jbatch``, the rest in named submodules;
the names and module paths of 0.1 still resolve, for one release, with a DeprecationWarning
naming their new home."""

import subprocess
import sys
from pathlib import Path

import pytest

import jbatch

ROOT = Path(__file__).resolve().parent.parent


def test_the_public_names_are_few_documented_and_load():
    assert 12 <= len(jbatch.__all__) <= 18, jbatch.__all__
    for name in jbatch.__all__:
        value = getattr(jbatch, name)
        assert value.__doc__, name  # every public name says what it is
    assert {
        "Batch",
        "TrainState",
        "init_train_state",
        "make_train_step",
        "make_eval_step",
        "make_epoch",
        "sweep",
        "advise",
        "Workload",
        "ConfigError",
    } <= set(jbatch.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        jbatch.nothing  # noqa: B018


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("softmax_cross_entropy", "jbatch.core.loss"),
        ("stack", "jbatch.core.replica"),
        ("TrainConfig", "jbatch.config"),
        ("MODELS", "jbatch.workloads.model"),
        ("timed_call", "jbatch.core.engine"),
    ],
)
def test_a_name_of_the_old_flat_surface_warns_and_resolves(name, home):
    import importlib

    with pytest.warns(DeprecationWarning, match=rf"jbatch\.{name} is deprecated .*; use {home}\."):
        value = getattr(jbatch, name)
    module = importlib.import_module(home)
    assert value is getattr(module, "BUILDERS" if name == "MODELS" else name)


def test_an_old_module_path_warns_and_is_the_new_module():
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import jbatch.data\nexcept DeprecationWarning as e:\n    print('warned:', e)\n"
        "warnings.simplefilter('ignore')\n"
        "import jbatch.data, jbatch.workloads.data, jbatch.sweeps.config, jbatch.config\n"
        "assert jbatch.data is jbatch.workloads.data and jbatch.sweeps.config is jbatch.config\n"
        "from jbatch.study import run_sweep\nfrom jbatch.sweeps.driver import run_sweep as new\n"
        "assert run_sweep is new\nprint('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warned: jbatch.data is deprecated and will be removed in 0.3; import jbatch.workloads.data" in proc.stdout
    assert proc.stdout.strip().endswith("ok")
