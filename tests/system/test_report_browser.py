"""The smoke run's HTML report in a real browser: headless Debian Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from helpers import REPO, require_system

# Chromium as the README's screenshot command launches it (one list of flags).
sys.path.insert(0, str(REPO / "benchmarks"))
from screenshot_report import ARGS, CHROMIUM  # noqa: E402

IMAGES = "() => Array.from(document.images, i => ({src: i.src, ok: i.complete, w: i.naturalWidth}))"
MATH = """() => Array.from(document.querySelectorAll('math'), m => {
  const r = m.getBoundingClientRect();
  return {w: r.width, h: r.height, display: getComputedStyle(m).display};
})"""
# A rendered fraction puts the numerator above the denominator; as plain text they'd share a line.
FRACTIONS = """() => Array.from(document.querySelectorAll('mfrac'), f => {
  const [num, den] = f.children;
  return num.getBoundingClientRect().bottom <= den.getBoundingClientRect().top + 1;
})"""
LINKS = "() => Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))"
IDS = "() => Array.from(document.querySelectorAll('[id]'), e => e.id)"


@pytest.mark.system
@pytest.mark.slow
def test_report_renders_in_chromium(smoke_run):
    require_system(
        shutil.which("chromium") is not None and Path(CHROMIUM).exists(),
        "Debian chromium not installed: run tests/system/install-report-tools.sh",
    )
    from playwright.sync_api import sync_playwright

    index = smoke_run / "results" / "report" / "index.html"
    assert index.is_file()
    errors, failed = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            response = page.goto(index.as_uri(), wait_until="load")
            assert response is None or response.ok
            page.wait_for_load_state("networkidle")
            images = page.evaluate(IMAGES)
            maths = page.evaluate(MATH)
            fractions = page.evaluate(FRACTIONS)
            links = page.evaluate(LINKS)
            ids = set(page.evaluate(IDS))
            title = page.title()
            screenshot = smoke_run / "results" / "report" / "screenshot.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert errors == [], errors
    assert failed == [], failed
    assert title.startswith("HW5 reproduced")
    # every figure (8 of problem 6 at least) was loaded and decoded
    assert len(images) >= 8
    broken = [i["src"] for i in images if not (i["ok"] and i["w"] > 0)]
    assert broken == []
    assert all(urlparse(i["src"]).scheme == "file" for i in images)
    # MathML laid out as math, with real boxes, and fractions stacked
    assert len(maths) >= 5
    assert all(m["w"] > 0 and m["h"] > 0 for m in maths), maths
    assert {m["display"] for m in maths} <= {"math", "inline math", "block math"}, maths
    assert fractions and all(fractions)
    # links: anchors exist, local files exist, nothing points to the network
    assert any(h.startswith("#") for h in links)
    for href in links:
        if href.startswith("#"):
            assert href[1:] in ids, href
            continue
        url = urlparse(href)
        assert url.scheme in ("", "file"), f"external link {href}"
        target = (index.parent / unquote(url.path)).resolve()
        assert target.is_file(), f"broken link {href}"
    assert screenshot.stat().st_size > 10_000
    artifacts = os.environ.get("HW5_ARTIFACT_DIR")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(screenshot, Path(artifacts) / "report-screenshot.png")
