"""Docstrings name things that exist: every ``dotted.name`` in a docstring of the package resolves
to a module, class, function or attribute (of jbatch, by its full or its short module name, or
of jax, flax, optax, numpy, msgspec); file names (``sweep.json``) and field paths of documents
and configs (``curve.sample_loss``, ``budget.steps``) are not references, and are named below."""

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import jbatch

PACKAGE = Path(jbatch.__file__).parent
FILES = {"md", "json", "csv", "png", "npz", "toml", "py", "lock", "tmp", "txt"}
EXTERNAL = {
    "jax": "jax",
    "jnp": "jax.numpy",
    "lax": "jax.lax",
    "np": "numpy",
    "numpy": "numpy",
    "optax": "optax",
    "flax": "flax",
    "nnx": "flax.nnx",
    "msgspec": "msgspec",
    "multihost_utils": "jax.experimental.multihost_utils",
    "mnist1d": "mnist1d",
}
# the first part of a field path in a results document or a config, not a module: ``curve.sample_loss``
FIELDS = {
    "budget",
    "checks",
    "coarse",
    "config",
    "counted",
    "curve",
    "grid",
    "machine_info",
    "measurement",
    "model",
    "target",
    "training",
    "workload",
}
REF = re.compile(r"``([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?``")


def _modules() -> dict[str, list[str]]:
    """jbatch's modules by their short name (``summary`` -> ``jbatch.analysis.summary``)."""
    out: dict[str, list[str]] = {}
    for m in pkgutil.walk_packages(jbatch.__path__, "jbatch."):
        if not m.name.split(".")[-1].startswith("_"):
            out.setdefault(m.name.rsplit(".", 1)[1], []).append(m.name)
    return out


def _resolves(parts: list[str]) -> bool:
    from jbatch._compat import MOVED_MODULES

    for k in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        if ".".join(parts[:k]) in MOVED_MODULES:
            return False  # a path of 0.1: docstrings name the new one
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for name in parts[k:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def _classes(modules: dict[str, list[str]]) -> dict[str, str]:
    """Every class jbatch defines, by name (``SweepConfig.of`` is a reference to its method)."""
    out = {}
    for names in modules.values():
        for name in names:
            for attr, value in vars(importlib.import_module(name)).items():
                if isinstance(value, type) and value.__module__ == name:
                    out[attr] = name
    return out


def _references():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_compat.py":  # it names the paths of 0.1 on purpose
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for match in REF.finditer(ast.get_docstring(node) or ""):
                    yield f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'name', '')}", match.group(1)


def test_every_dotted_name_in_a_docstring_resolves():
    modules = _modules()
    classes = _classes(modules)
    broken = []
    for where, ref in _references():
        parts = ref.split(".")
        head = parts[0]
        if parts[-1] in FILES or head in FIELDS:
            continue
        candidates = []  # what the first part can be: jbatch itself, an external package, a module, a class
        if head == "jbatch":
            candidates.append(parts)
        if head in EXTERNAL:
            candidates.append([*EXTERNAL[head].split("."), *parts[1:]])
        candidates += [[*full.split("."), *parts[1:]] for full in modules.get(head, ())]
        if head in classes:
            candidates.append([*classes[head].split("."), *parts])
        ok = any(_resolves(c) for c in candidates)  # none: a module, class or package that does not exist (any more)
        if not ok:
            broken.append(f"{where}: ``{ref}``")
    assert not broken, "\n".join(broken)


def test_each_package_docstring_names_exactly_its_modules():
    """A package's docstring lists its modules, each by its name (``driver``): none missing, none
    that is gone; any other ``name`` there is defined by the package."""
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        package = importlib.import_module(f"jbatch.{init.parent.name}")
        names = set(re.findall(r"``([A-Za-z_]\w*)``", ast.get_docstring(ast.parse(init.read_text())) or ""))
        modules = {p.stem for p in init.parent.glob("*.py") if not p.stem.startswith("_")}
        assert modules <= names, (init.parent.name, sorted(modules - names))
        assert all(n in modules or hasattr(package, n) for n in names), (init.parent.name, sorted(names - modules))
