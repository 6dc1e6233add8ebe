"""Builds the site: the pages (``pages``) and the documentation pages of ``docs/`` into a
MkDocs project in a temporary directory, then MkDocs with the Material theme into ``out``.

Offline by construction: no web fonts, no search (Material's search, opened from disk, loads a
worker shim from unpkg.com: the browser test saw it), Plotly's own plotly.min.js from the
installed plotly package copied beside the pages, and no directory URLs, so every page opens
from disk as well as from ``python -m http.server``. The
API reference is mkdocstrings' (from the docstrings, read statically: jax is not imported).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from jbatch.errors import ConfigError

ASSETS = Path(__file__).parent / "assets"
MARK = ".jbatch-site"  # left in a site's directory: the only non-empty --out that is replaced
GUIDE = (  # the guide's reading order; a page of docs/ not named here comes after, by name
    *("sweep.md", "your-model.md", "own-loop.md", "advise.md", "bench.md", "theory.md", "language-models.md"),
    *("batching.md", "devices.md", "layout.md"),
)
REFERENCE = """# API reference

Generated from the docstrings by mkdocstrings.

::: jbatch
    options:
      show_submodules: false
      members_order: source

::: jbatch.sweeps.advise

::: jbatch.sweeps.fits

::: jbatch.sweeps.seesaw

::: jbatch.core.step

::: jbatch.results.records
"""


def _require() -> None:
    try:
        import mkdocs  # noqa: F401
        import plotly  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"jbatch site needs its extra: pip install -e '.[site]' ({e.name} is missing)") from None


def build_site(results: str | Path = "results", out: str | Path = "site", docs: str | Path | None = "docs") -> dict:
    """Writes the site of ``results`` (and the documentation of ``docs``, when it exists) into
    ``out``; returns its pages and the seconds it took."""
    _require()
    import plotly
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from jbatch.site.pages import pages

    start = time.perf_counter()
    results, out = Path(results), Path(out).resolve()
    if not results.is_dir():
        raise ConfigError(f"{results} is not a results directory")
    if out.resolve() == results.resolve() or results.resolve() in out.parents or out in results.resolve().parents:
        raise ConfigError(f"--out {out} overlaps the results {results}: name a directory outside them")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARK).exists())):
        raise ConfigError(  # MkDocs empties its output directory first: never one that is not a site of ours
            f"--out {out} exists and is not a site jbatch built (no {MARK}); MkDocs would empty it: name a new "
            "directory"
        )
    written, nav = pages(results)
    if len(written) <= 1:
        raise ConfigError(f"{results} holds no sweep.json or advise.json: nothing to publish")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "docs"
        for path, text in written:
            (src / path).parent.mkdir(parents=True, exist_ok=True)
            (src / path).write_text(text)
        guide = []
        if docs is not None and Path(docs).is_dir():
            order = {name: i for i, name in enumerate(GUIDE)}
            for page in sorted(Path(docs).glob("*.md"), key=lambda p: (order.get(p.name, len(order)), p.name)):
                if (src / page.name).exists() or page.name == "reference.md":
                    raise ConfigError(f"{page} has the name of a page the site generates: rename it")
                shutil.copy(page, src / page.name)
                guide.append(page.name)
        (src / "reference.md").write_text(REFERENCE)
        js = src / "assets" / "js"
        js.mkdir(parents=True)
        shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", js / "plotly.min.js")
        shutil.copy(ASSETS / "figures.js", js / "figures.js")
        source = Path(__file__).resolve().parents[2]  # the checkout jbatch is read from, for mkdocstrings
        config = {
            "site_name": "jbatch results",
            "docs_dir": str(src),
            "site_dir": str(out),
            "use_directory_urls": False,
            "theme": {"name": "material", "font": False, "features": ["navigation.sections"]},
            "plugins": [
                {"mkdocstrings": {"handlers": {"python": {"paths": [str(source)], "options": {"show_source": False}}}}},
            ],
            "markdown_extensions": ["tables", "toc", "admonition"],
            "extra_javascript": ["assets/js/plotly.min.js", "assets/js/figures.js"],
            "nav": [
                {"Home": "index.md"},
                *({k: v} for k, v in nav.items() if v),
                *([{"Guide": guide}] if guide else []),
                {"API reference": "reference.md"},
            ],
        }
        yml = Path(tmp) / "mkdocs.yml"
        yml.write_text(json.dumps(config))  # YAML is a superset of JSON
        build(load_config(str(yml)))
    (out / MARK).write_text("built by jbatch site: a later jbatch site --out here replaces it\n")
    return {"pages": [p for p, _ in written] + guide + ["reference.md"], "seconds": time.perf_counter() - start}
