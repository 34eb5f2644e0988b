#!/bin/sh
# System tools for the report's system tests (tests/system/test_report_browser.py, tests/system/test_report_pdf.py)
# and for report.pdf: TeX Live + latexmk (the packages report/report.tex.j2 uses: amsmath,
# graphicx, booktabs, longtable, adjustbox, caption, placeins, fancyvrb, xcolor, hyperref,
# geometry, lmodern), Debian's Chromium for the headless browser check and poppler-utils (pdfinfo).
# Debian 12; run as root. No Playwright browser download is needed or used.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    texlive-latex-base \
    texlive-latex-recommended \
    texlive-latex-extra \
    texlive-fonts-recommended \
    lmodern \
    latexmk \
    chromium \
    poppler-utils
