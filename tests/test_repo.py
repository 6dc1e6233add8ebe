"""The repository's promises: the README example runs, CI runs the README's test command, lint is clean."""

import re
from pathlib import Path

import jax
import pytest

from jbatch.results import read_sweep
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _block_after(marker: str, lang: str) -> str:
    m = re.search(re.escape(marker) + r".*?\n```" + lang + r"\n(.*?)\n```", README, re.S)
    assert m, f"README has no {lang} block after {marker!r}"
    return m.group(1)


def test_library_example_runs_with_a_user_model_and_optimizer(capsys):
    code = _block_after("<!-- example: library", "python")
    namespace: dict = {}
    with jax.numpy_dtype_promotion("standard"):  # what users run with (optax's adamw needs it)
        exec(compile(code, "README.md", "exec"), namespace)
    state, metrics = namespace["state"], namespace["metrics"]
    assert metrics["loss"].shape == (45,)
    assert int(state.step) == 1 + 3 * 45
    assert float(metrics["loss"].mean()) < 0.5  # it learned (initial loss is about log 10 = 2.3)
    assert "(45,)" in capsys.readouterr().out


@pytest.mark.slow
def test_sweep_example_runs_a_users_stateful_model_with_an_optax_schedule(tmp_path, monkeypatch, capsys):
    code = _block_after("<!-- example: sweep", "python")
    monkeypatch.chdir(tmp_path)  # it writes runs/<name>/
    namespace: dict = {}
    with jax.numpy_dtype_promotion("standard"):  # what users run with (optax's schedules need it)
        exec(compile(code, "README.md", "exec"), namespace)
    doc = namespace["doc"]
    assert sorted(doc.batch_sizes, key=int) == ["16", "256"]
    assert (doc.checks.learning_rate, doc.checks.batch_statistics, doc.checks.inexact) == ("scaled", True, [])
    for result in doc.batch_sizes.values():  # BatchNorm and Dropout through every part, noise probes included
        assert not result.failures and any(r.noise for r in result.replicas)
    assert doc.config.workload.loss == "optax.losses._classification:softmax_cross_entropy_with_integer_labels"
    assert doc.name.endswith("-make-net-adamw-cosine") and doc.name in capsys.readouterr().out
    accuracy = [v for res in doc.batch_sizes.values() for r in res.replicas for v in r.curve.test_accuracy]
    assert max(v for v in accuracy if v is not None) > 0.8  # it learned
    directory = tmp_path / "runs" / doc.name
    assert read_sweep(directory) == doc and (directory / "table.md").read_text().count("| mini-batch |") == 1
    assert run_cli(["claims", str(directory), "--out", str(tmp_path / "claims.md")], capsys)[0] == 0


def test_the_guide_s_layout_lists_every_module_of_each_package_and_no_other():
    layout = (ROOT / "docs" / "layout.md").read_text()
    packages = sorted(p.parent.name for p in (ROOT / "jbatch").glob("*/__init__.py"))
    assert packages == ["analysis", "core", "report", "results", "site", "sweeps", "workloads"]
    for package in packages:
        row = next(line for line in layout.splitlines() if line.startswith(f"| `jbatch/{package}/`"))
        listed = set(re.findall(r"`(\w+)\.py`", row))
        assert listed == {p.stem for p in (ROOT / "jbatch" / package).glob("*.py")} - {"__init__"}, package


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n# the tests.*?\n(.*?)\n```", README, re.S)
    assert len(commands) == 1
    assert commands[0] in ci.splitlines()


def test_the_readme_is_short_and_holds_no_result_typed_in_by_hand():
    assert README.count("\n") <= 155  # a newcomer's five minutes; the rest is the guide (docs/) and the site
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    assert not re.findall(r"^\|", prose, re.M)  # no pasted tables: results live in results/ and the site
    assert not re.findall(r"\d+\.\d+", prose.replace("Python >= 3.11", ""))  # no measured figure in the prose
    for link in re.findall(r"\]\((docs/[\w.-]+)\)", README):
        assert (ROOT / link).exists(), link  # every guide page it points at is there


def test_readme_opens_with_the_main_job_command():
    first_block = re.search(r"```bash\n(.*?)\n```", README, re.S).group(1)
    assert "the main job" in first_block and first_block.rstrip().endswith("jbatch sweep")


def test_lint_is_clean():
    import shutil
    import subprocess

    import pytest

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    proc = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    proc = subprocess.run([ruff, "format", "--check", str(ROOT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout  # the formatter has run over every file
