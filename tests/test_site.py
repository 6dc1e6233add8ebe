"""``jbatch site`` (``jbatch.site``): the site built from a small results fixture (the recorded
small sweep, the published digits sweep and its advice) and opened from disk in headless
Chromium (selenium, the system's browser and driver: Debian's ``chromium`` and
``chromium-driver``, installed by ``.ci/run``): every page loads with no console error and no
request leaving the machine, every figure draws its traces, every internal link resolves, and
a hover shows a point's values. Skipped, saying why, without a browser."""

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.test_advise import SMALL

ROOT = Path(__file__).parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="jbatch site needs its extra: pip install -e '.[site]'")
    from jbatch.site.build import build_site

    root = tmp_path_factory.mktemp("site")
    results = root / "results"
    shutil.copytree(SMALL, results / "small")
    for name in ("digits-mlp-sgd", "advise-digits-mlp-sgd"):
        shutil.copytree(ROOT / "results" / name, results / name)
    out = root / "site"
    info = build_site(results, out, ROOT / "docs")
    return out, info


def test_the_site_is_built_from_the_json_with_a_page_per_document(built):
    out, info = built
    pages = info["pages"]
    assert {"index.md", "sweeps/small.md", "sweeps/digits-mlp-sgd.md", "advice/digits-mlp-sgd.md"} <= set(pages)
    assert "claims.md" in pages and "reference.md" in pages
    index = (out / "index.html").read_text()
    assert 'href="sweeps/digits-mlp-sgd.html"' in index and 'href="advice/digits-mlp-sgd.html"' in index
    page = (out / "sweeps" / "digits-mlp-sgd.html").read_text()
    figures = re.findall(r'class="jbatch-figure" id="([^"]+)" data-traces="(\d+)"', page)
    assert len(figures) == 8 and all(int(n) > 0 for _, n in figures)  # accuracy's curves too: its target
    spec = json.loads(
        re.search(r'id="fig-digits-mlp-sgd-steps"[^>]*><script type="application/json">(.*?)</script>', page).group(1)
    )
    from jbatch.analysis.summary import summarize
    from jbatch.results import read_sweep

    rows = [
        s["row"] for s in summarize(read_sweep(ROOT / "results" / "digits-mlp-sgd")) if s["row"]["steps_to_target"]["n"]
    ]
    assert spec["data"][0]["x"] == [r["batch_size"] for r in rows]  # the figure's points are the table's
    assert spec["data"][0]["y"] == pytest.approx([r["steps_to_target"]["mean"] for r in rows])
    assert (out / "assets" / "js" / "plotly.min.js").stat().st_size > 1e6  # bundled: no CDN


def chromium():
    """Headless Chromium (the system's browser and driver) that keeps console and network logs."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))


DRAWN = "return Array.from(document.querySelectorAll('.jbatch-figure')).every(d => d.querySelector('svg.main-svg'))"


def browse(driver, out: Path, pages: list[str]) -> list[str]:
    """Opens every page of the site ``out`` from disk; returns what is wrong: a figure whose
    SVG lacks its traces or draws no path, a console error, a request that leaves the machine,
    an internal link to no file."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    wrong = []
    for page in pages:
        driver.get((out / page.replace(".md", ".html")).as_uri())
        try:  # a page of many curves may still be drawing when it has loaded
            WebDriverWait(driver, 20).until(lambda d: d.execute_script(DRAWN))
        except TimeoutException:
            pass  # reported below, figure by figure
        drawn = driver.execute_script(
            """return Array.from(document.querySelectorAll('.jbatch-figure')).map(d => ({
                id: d.id, want: +d.dataset.traces, svg: d.querySelectorAll('svg.main-svg').length,
                traces: d.querySelectorAll('svg.main-svg g.trace').length,
                paths: Array.from(d.querySelectorAll('svg.main-svg g.trace path'))
                    .filter(p => (p.getAttribute('d') || '').length > 2).length}))"""
        )
        wrong += [f"{page}: figure {f}" for f in drawn if not (f["svg"] and f["traces"] == f["want"] and f["paths"])]
        wrong += [f"{page}: console {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if url.split(":")[0] not in ("file", "data", "blob", "about"):
                    wrong.append(f"{page}: request {url}")
        for href in driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            target = urlparse(href)
            if target.scheme == "file" and not Path(unquote(target.path)).exists():
                wrong.append(f"{page}: link {href}")
    return wrong


@pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no Chromium and chromedriver: apt-get install chromium chromium-driver (.ci/run does)",
)
@pytest.mark.slow
def test_every_page_loads_offline_in_chromium_and_every_figure_draws(built):
    out, info = built
    driver = chromium()
    try:
        assert browse(driver, out, info["pages"]) == []
        driver.get((out / "sweeps" / "digits-mlp-sgd.html").as_uri())
        shown = driver.execute_script(
            """const d = document.getElementById('fig-digits-mlp-sgd-steps');
               Plotly.Fx.hover(d, [{curveNumber: 0, pointNumber: 1}]);
               const t = d.querySelector('.hoverlayer .hovertext'); return t ? t.textContent : null;"""
        )
        assert shown and "B = 4" in shown, shown  # the second point: B = 4 and its steps
        shots = os.environ.get("JBATCH_SITE_SHOTS")  # where to keep screenshots of a sweep page and the index
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(Path(shots) / "sweep.png"))
            driver.get((out / "index.html").as_uri())
            driver.save_screenshot(str(Path(shots) / "index.png"))
    finally:
        driver.quit()


def test_an_out_directory_that_is_not_a_site_or_overlaps_the_results_is_refused_untouched(tmp_path):
    pytest.importorskip("mkdocs", reason="jbatch site needs its extra: pip install -e '.[site]'")
    from jbatch.errors import ConfigError
    from jbatch.site.build import build_site

    results = tmp_path / "results"
    shutil.copytree(SMALL, results / "small")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a site jbatch built"):  # MkDocs would have emptied it
        build_site(results, mine, None)
    assert (mine / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="overlaps the results"):
        build_site(results, results / "site", None)
    with pytest.raises(ConfigError, match="overlaps the results"):
        build_site(results, tmp_path, None)  # a parent of the results: they would go too
    assert (results / "small" / "sweep.json").exists()
