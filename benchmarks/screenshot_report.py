"""Screenshot the top of a rendered HTML report in a real browser (headless Chromium through
Playwright), for the README:

    python benchmarks/screenshot_report.py results/report/index.html docs/report.png

By default it drives Debian's /usr/bin/chromium (``--chromium`` to change it; its flags, ``ARGS``,
are also the browser test's). The page is loaded from the file, every image must have
decoded, and the viewport (``--width`` x ``--height``, CSS pixels) is saved as a PNG palette
image so that it stays small.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BROKEN_IMAGES = (
    "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
    ".map(i => i.src)"
)


def screenshot(index: Path, out: Path, width: int, height: int, chromium: str) -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(index.resolve().as_uri(), wait_until="load")
            page.wait_for_load_state("networkidle")
            broken = page.evaluate(BROKEN_IMAGES)
            if broken:
                raise SystemExit(f"images that did not load in {index}: {broken}")
            png = page.screenshot(full_page=False)
        finally:
            browser.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # a palette of 256 colours: a text-and-plots page stays legible at a fraction of the size
        from PIL import Image

        image = Image.open(io.BytesIO(png)).convert("RGB")
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    except ImportError:
        out.write_bytes(png)
    return out


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index", type=Path, help="the report's index.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1600)
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser executable")
    args = parser.parse_args(argv)
    if not args.index.is_file():
        parser.error(f"no report at {args.index}: run the workflow first")
    out = screenshot(args.index, args.out, args.width, args.height, args.chromium)
    print(f"{out}: {out.stat().st_size:,} bytes")
    return out


if __name__ == "__main__":
    main()
