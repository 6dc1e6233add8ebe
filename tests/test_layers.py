"""The package's layers point one way: ``jbatch.config``, ``jbatch.results``, ``jbatch.analysis``,
``jbatch.report`` and ``jbatch.site`` read JSON only and never import jax, flax or optax (so reports, claims,
comparisons and every published Markdown file, a sweep's, an advice's, the device-count
table's, regenerate on a machine without an accelerator stack, and ``jbatch report`` starts
quickly); the command line's parser loads no jax either. Checked in a fresh interpreter
whose import system refuses those packages."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("jax", "jaxlib", "flax", "optax"):
            raise ImportError(f"{name} may not be imported here")
sys.meta_path.insert(0, Refuse())
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_analysis_and_report_never_import_jax_flax_or_optax(tmp_path):
    sweep = tmp_path / "sweep_small"
    shutil.copytree(ROOT / "tests" / "data" / "sweep_small", sweep)
    advice, scaling = tmp_path / "advise-digits-mlp-sgd", tmp_path / "scaling"
    shutil.copytree(ROOT / "results" / "advise-digits-mlp-sgd", advice)
    shutil.copytree(ROOT / "results" / "scaling", scaling)
    for md in (advice / "advise.md", scaling / "table.md"):
        md.unlink()  # regenerated below, from the JSON alone
    code = f"""
import importlib, pkgutil
import jbatch.analysis, jbatch.config, jbatch.report, jbatch.results, jbatch.site
for package in (jbatch.analysis, jbatch.report, jbatch.results, jbatch.site):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from jbatch.cli import main
assert main(["report", {str(sweep)!r}]) == 0
assert main(["report", {str(advice)!r}]) == 0
assert main(["report", {str(scaling)!r}]) == 0
assert main(["claims", {str(sweep)!r}, "--out", {str(tmp_path / "claims.md")!r}, "--advice", {str(advice)!r}]) == 0
assert main(["compare", {str(sweep)!r}, {str(sweep)!r}]) == 0
for command in ("sweep", "advise", "train"):
    try:
        main([command, "--help"])
    except SystemExit as e:
        assert e.code == 0
"""
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (sweep / "table.md").exists() and (tmp_path / "claims.md").exists()
    for published in ("advise-digits-mlp-sgd/advise.md", "scaling/table.md"):  # byte for byte, without jax
        assert (tmp_path / published).read_bytes() == (ROOT / "results" / published).read_bytes()


def test_the_blocker_really_blocks(tmp_path):
    proc = _run("import jbatch.core.step", tmp_path)  # the training library needs jax: refused here
    assert proc.returncode != 0 and "may not be imported here" in proc.stderr
