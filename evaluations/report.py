"""Per-epoch score tables and plots written by test_fid.py (CSV + PNG, both atomically)."""

from __future__ import annotations

import csv
import math
import textwrap

from util.image_io import atomic_path


def write_scores_csv(rows: list[dict], path: str) -> None:
    """One row per epoch; columns are the union of the rows' keys in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def best_row(rows: list[dict], key: str = "fid") -> dict:
    """The row with the lowest finite ``key`` (the first such row on ties)."""
    finite = [row for row in rows if isinstance(row.get(key), float) and math.isfinite(row[key])]
    if not finite:
        raise ValueError(f"no row has a finite {key}")
    return min(finite, key=lambda row: row[key])


def plot_scores(rows: list[dict], path: str, title: str, key: str = "fid", label: str = "FID") -> None:
    """PNG of ``key`` against the epoch (numeric epochs in order, then others such as 'latest'),
    with the best epoch marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    names = [str(row["epoch"]) for row in rows]
    values = [row[key] for row in rows]
    axes.plot(range(len(rows)), values, marker="o", linewidth=1.2)
    best = best_row(rows, key)
    index = rows.index(best)
    axes.plot(
        [index],
        [best[key]],
        marker="*",
        markersize=14,
        color="tab:red",
        label=f"best: epoch {best['epoch']} ({best[key]:.2f})",
    )
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels(names, rotation=45 if len(rows) > 12 else 0, fontsize="small")
    axes.set_xlabel("epoch")
    axes.set_ylabel(label)
    axes.set_title(textwrap.fill(title, 80, break_on_hyphens=False), fontsize="small")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
