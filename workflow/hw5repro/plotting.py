"""What every figure of the workflow shares: a headless backend and saving as PNG + PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def save_figure(fig, stem: str | Path) -> None:
    """Lay out ``fig``, write ``stem``.png (150 dpi) and ``stem``.pdf, and close it."""
    stem = Path(stem)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=150)
    fig.savefig(stem.with_suffix(".pdf"))
    plt.close(fig)
